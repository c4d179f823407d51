/*
 * freeze.c: which parameters train (ot_pass_freeze) and a new classifier head
 * (ot_pass_swap_head). See freeze.h.
 *
 * Fine-tune preset: the network's last stage is found from shapes, not from
 * names: the global pooling's input has the final spatial resolution R; every
 * node upstream of the pooling whose output is a 4-D (or 3-D/5-D) tensor at
 * resolution R belongs to the last stage, which includes the strided ops that
 * make the change to R and their shortcut branch. Everything downstream of
 * the pooling belongs to the head. For ResNet-18 that is layer4 and fc; for
 * MobileNetV2 the blocks at 7x7 and the classifier.
 *
 * Transformers (ViT, Swin) are found first: walking back from the head
 * through the token selection (the class token's Gather or Slice) or the
 * token pooling and the final norm reaches the last residual Add; the block
 * ends there and begins at the residual junction before the block's
 * attention (its Softmax). The block, the final norm and the head train.
 */
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "freeze.h"

static bool is_float(ot_dtype t)
{
    return t == OT_DTYPE_FLOAT || t == OT_DTYPE_FLOAT16 || t == OT_DTYPE_BFLOAT16 ||
           t == OT_DTYPE_DOUBLE;
}

int32_t ot_pass_source_init(const ot_graph *g, int32_t v)
{
    for (int hops = 0; v >= 0 && hops < 64; hops++) {
        const ot_value *val = &g->values[v];
        if (val->flags & OT_VAL_INIT)
            return v;
        if (val->producer < 0)
            return -1;
        const ot_node *p = &g->nodes[val->producer];
        if (strcmp(p->op_type, "Identity") != 0 || p->n_in < 1)
            return -1;
        v = p->in[0];
    }
    return -1;
}

/* True when input k of node n is a weight (not BN's running statistics). */
static bool is_weight_input(const ot_node *n, int k)
{
    if (!strcmp(n->op_type, "BatchNormalization"))
        return k == 1 || k == 2;
    if (!strcmp(n->op_type, "Reshape") || !strcmp(n->op_type, "Pad") ||
        !strcmp(n->op_type, "Clip") || !strcmp(n->op_type, "Squeeze") ||
        !strcmp(n->op_type, "Unsqueeze") || !strcmp(n->op_type, "Gather") ||
        !strcmp(n->op_type, "Dropout"))
        return false;
    return true;
}

bool ot_pass_is_param(const ot_graph *g, int32_t v)
{
    const ot_value *val = &g->values[v];
    if (!(val->flags & OT_VAL_INIT) || (val->flags & OT_VAL_OPAQUE) || !is_float(val->dtype))
        return false;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0 && ot_pass_source_init(g, n->in[k]) == v) {
                if (n->in[k] != v && strcmp(n->op_type, "Identity") == 0)
                    continue;
                if (strcmp(n->op_type, "Identity") == 0)
                    continue; /* look at what reads the Identity's output */
                if (is_weight_input(n, k))
                    return true;
            }
    }
    return false;
}

/* Marks the parameters read by node i (through Identity) with `on`. */
static void mark_node_params(ot_graph *g, const bool *is_param, int32_t i, bool on)
{
    const ot_node *n = &g->nodes[i];
    for (int k = 0; k < n->n_in; k++) {
        if (n->in[k] < 0 || !is_weight_input(n, k))
            continue;
        int32_t s = ot_pass_source_init(g, n->in[k]);
        if (s >= 0 && is_param[s]) {
            if (on)
                g->values[s].flags |= OT_VAL_TRAINABLE;
            else
                g->values[s].flags &= ~(uint32_t)OT_VAL_TRAINABLE;
        }
    }
}

/* The axes a ReduceMean / ReduceMax reduces over (attribute before opset 18,
   a constant input from 18 on); false when they are not known. */
static bool reduce_axes(const ot_graph *g, const ot_node *n, int64_t *axes, size_t *n_axes)
{
    size_t na = 0;
    const int64_t *a = ot_node_attr_ints(n, "axes", &na);
    if (!a && n->n_in > 1 && n->in[1] >= 0) {
        const ot_value *v = &g->values[n->in[1]];
        if (!(v->flags & OT_VAL_CONST) || v->dtype != OT_DTYPE_INT64 || !v->data.data)
            return false;
        a = v->data.data;
        na = v->data.bytes / sizeof *a;
    }
    if (!a || na > OT_MAX_DIMS)
        return false;
    memcpy(axes, a, na * sizeof *a);
    *n_axes = na;
    return true;
}

/* A ReduceMean or ReduceMax over every spatial dim of an (N, C, spatial...)
   input: the global pooling of MNASNet, ConvNeXt and EfficientNet exports
   (x.mean([2, 3])). */
static bool is_spatial_reduce(const ot_graph *g, const ot_node *n)
{
    if (strcmp(n->op_type, "ReduceMean") != 0 && strcmp(n->op_type, "ReduceMax") != 0)
        return false;
    if (n->n_in < 1 || n->in[0] < 0)
        return false;
    const ot_value *x = &g->values[n->in[0]];
    int64_t axes[OT_MAX_DIMS];
    size_t na = 0;
    if (x->ndim < 3 || !reduce_axes(g, n, axes, &na) || na != (size_t)(x->ndim - 2))
        return false;
    bool seen[OT_MAX_DIMS] = { false };
    for (size_t i = 0; i < na; i++) {
        int64_t ax = axes[i] < 0 ? axes[i] + x->ndim : axes[i];
        if (ax < 2 || ax >= x->ndim || seen[ax])
            return false;
        seen[ax] = true;
    }
    return true;
}

/* The node that pools to 1x1: the last GlobalAveragePool / GlobalMaxPool, a
   ReduceMean / ReduceMax over the spatial dims, or a pool whose output is 1x1
   (an adaptive pooling exported as AveragePool, before the head as in
   ResNet, or after a 1x1 Conv head as in SqueezeNet). */
static int32_t find_global_pool(const ot_graph *g)
{
    int32_t last = -1;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        if (!strcmp(n->op_type, "GlobalAveragePool") || !strcmp(n->op_type, "GlobalMaxPool") ||
            is_spatial_reduce(g, n))
            last = i;
        else if ((!strcmp(n->op_type, "AveragePool") || !strcmp(n->op_type, "MaxPool")) &&
                 n->out[0] >= 0) {
            const ot_value *y = &g->values[n->out[0]];
            bool one = y->ndim >= 3;
            for (int d = 2; one && d < y->ndim; d++)
                one = y->dims[d] == 1;
            if (one)
                last = i;
        }
    }
    return last;
}

static bool spatial_is(const ot_value *v, const ot_value *ref)
{
    if (v->ndim != ref->ndim || v->ndim < 3)
        return false;
    for (int d = 2; d < v->ndim; d++)
        if (v->dims[d] < 0 || v->dims[d] != ref->dims[d])
            return false;
    return true;
}

/* Marks nodes upstream of `target` (inclusive) in `up`. */
static void mark_upstream(const ot_graph *g, int32_t target_node, bool *up)
{
    up[target_node] = true;
    for (int32_t i = target_node; i >= 0; i--) {
        if (!up[i])
            continue;
        const ot_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++) {
            if (n->in[k] < 0)
                continue;
            int32_t p = g->values[n->in[k]].producer;
            if (p >= 0)
                up[p] = true;
        }
    }
}

/* A linear layer: Gemm or MatMul whose weight is a rank-2 initializer. */
static bool is_linear(const ot_graph *g, const ot_node *n)
{
    if ((strcmp(n->op_type, "Gemm") != 0 && strcmp(n->op_type, "MatMul") != 0) || n->n_in < 2 ||
        n->in[1] < 0)
        return false;
    int32_t w = ot_pass_source_init(g, n->in[1]);
    return w >= 0 && g->values[w].ndim == 2;
}

/* Ops an MLP classifier has between its linear layers: activations, dropout,
   and the bias Add of a MatMul+Add layer. */
static bool is_mlp_glue(const ot_graph *g, const ot_node *n)
{
    static const char *const glue[] = { "Relu",  "LeakyRelu",   "Clip",        "Sigmoid",
                                        "Tanh",  "HardSigmoid", "HardSwish",   "Gelu",
                                        "Elu",   "Selu",        "Dropout",     "Identity" };
    for (size_t i = 0; i < sizeof glue / sizeof glue[0]; i++)
        if (!strcmp(n->op_type, glue[i]))
            return true;
    if (!strcmp(n->op_type, "Add") && n->n_in == 2)
        for (int k = 0; k < 2; k++)
            if (n->in[k] >= 0 && ot_pass_source_init(g, n->in[k]) >= 0)
                return true;
    return false;
}

#define MAX_MLP 16

/* The linear layers of the classifier, from the head back: the head, then
   each linear layer that feeds the previous one through glue ops only.
   Returns how many (at least 1 when the head is linear); `stop` gets the
   node the walk stopped at (-1 when none), the one that feeds the MLP. */
static int mlp_layers(const ot_graph *g, const ot_head *head, int32_t *layers, int32_t *stop)
{
    int n_layers = 0;
    *stop = -1;
    if (!head || !head->found || !is_linear(g, &g->nodes[head->node]))
        return 0;
    layers[n_layers++] = head->node;
    int32_t i = head->node;
    for (int hops = 0; hops < g->n_nodes; hops++) {
        const ot_node *n = &g->nodes[i];
        if (n->n_in < 1 || n->in[0] < 0)
            return n_layers;
        int32_t p = g->values[n->in[0]].producer;
        if (p < 0)
            return n_layers;
        const ot_node *m = &g->nodes[p];
        if (is_linear(g, m)) {
            if (n_layers == MAX_MLP)
                return n_layers;
            layers[n_layers++] = p;
        } else if (!is_mlp_glue(g, m)) {
            *stop = p;
            return n_layers;
        }
        i = p;
    }
    return n_layers;
}

/* A Flatten or Reshape that turns the feature map (an input with static
   spatial dims) into the classifier's vector: where the head's chain began,
   when the graph has no global pooling. -1 when `n` is not one. */
static int32_t flatten_point(const ot_graph *g, int32_t node)
{
    if (node < 0)
        return -1;
    const ot_node *n = &g->nodes[node];
    if ((strcmp(n->op_type, "Flatten") != 0 && strcmp(n->op_type, "Reshape") != 0) ||
        n->n_in < 1 || n->in[0] < 0)
        return -1;
    const ot_value *x = &g->values[n->in[0]];
    if (x->ndim < 3)
        return -1;
    for (int d = 2; d < x->ndim; d++)
        if (x->dims[d] < 1)
            return -1;
    return node;
}

/* Appends to buf the spatial resolutions the graph's feature maps go
   through, in order, each with the first node that produces it. */
static void list_stages(const ot_graph *g, char *buf, size_t size)
{
    size_t len = 0;
    int n_listed = 0;
    const ot_value *prev = NULL;
    buf[0] = 0;
    for (int32_t i = 0; i < g->n_nodes && len + 1 < size; i++) {
        const ot_node *n = &g->nodes[i];
        if (n->n_out < 1 || n->out[0] < 0)
            continue;
        const ot_value *y = &g->values[n->out[0]];
        if (y->ndim != 4 || y->dims[2] < 1 || y->dims[3] < 1 ||
            (prev && y->dims[2] == prev->dims[2] && y->dims[3] == prev->dims[3]))
            continue;
        bool seen = false;
        for (int32_t j = 0; j < i && !seen; j++) {
            const ot_node *m = &g->nodes[j];
            if (m->n_out < 1 || m->out[0] < 0)
                continue;
            const ot_value *z = &g->values[m->out[0]];
            seen = z->ndim == 4 && z->dims[2] == y->dims[2] && z->dims[3] == y->dims[3];
        }
        prev = y;
        if (seen)
            continue;
        if (n_listed == 12) {
            len += (size_t)snprintf(buf + len, size - len, ", ...");
            break;
        }
        int w = snprintf(buf + len, size - len, "%s%lldx%lld from '%s'", n_listed ? ", " : "",
                         (long long)y->dims[2], (long long)y->dims[3], n->name ? n->name : "");
        if (w < 0)
            break;
        len += (size_t)w;
        n_listed++;
    }
    if (len >= size)
        buf[size - 1] = 0;
}

/* Marks the params of nodes in the last stage: the nodes upstream of `pool`
   whose output has the spatial size of `r`, and every node downstream of
   `pool`. Returns how many parameterised nodes upstream were marked. */
static int mark_stage(ot_graph *g, const bool *is_param, int32_t pool, const ot_value *r, bool *up)
{
    int n_stage = 0;
    memset(up, 0, sizeof *up * (size_t)g->n_nodes);
    mark_upstream(g, pool, up);
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        bool in_stage = false;
        if (!up[i]) {
            in_stage = true; /* downstream of the pooling: the head */
        } else {
            for (int k = 0; k < n->n_out && !in_stage; k++)
                in_stage = n->out[k] >= 0 && spatial_is(&g->values[n->out[k]], r);
            if (in_stage)
                for (int k = 0; k < n->n_in; k++)
                    if (n->in[k] >= 0 && is_weight_input(n, k)) {
                        int32_t src = ot_pass_source_init(g, n->in[k]);
                        if (src >= 0 && is_param[src]) {
                            n_stage++;
                            break;
                        }
                    }
        }
        if (in_stage)
            mark_node_params(g, is_param, i, true);
    }
    return n_stage;
}

/* The output of the last node upstream of `pool` (inclusive) that reads a
   parameter and writes a feature map with static spatial dims, or NULL. */
static const ot_value *last_param_map(const ot_graph *g, const bool *is_param, int32_t pool,
                                      const bool *up)
{
    for (int32_t i = pool; i >= 0; i--) {
        const ot_node *n = &g->nodes[i];
        if (!up[i] || n->n_out < 1 || n->out[0] < 0)
            continue;
        const ot_value *y = &g->values[n->out[0]];
        bool map = y->ndim >= 3;
        for (int d = 2; map && d < y->ndim; d++)
            map = y->dims[d] > 0;
        if (!map)
            continue;
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0 && is_weight_input(n, k)) {
                int32_t src = ot_pass_source_init(g, n->in[k]);
                if (src >= 0 && is_param[src])
                    return y;
            }
    }
    return NULL;
}

/* ------------------------------------------------------- transformers */

/* A value computed from the input (not an initializer, a Constant or a
   folded constant). */
static bool is_activation(const ot_graph *g, int32_t v)
{
    return v >= 0 && !(g->values[v].flags & OT_VAL_CONST) && ot_pass_source_init(g, v) < 0 &&
           g->values[v].producer >= 0;
}

/* Whether node `a` is upstream of node `b` (a == b counts). */
static bool upstream_of(const ot_graph *g, int32_t a, int32_t b, bool *scratch)
{
    if (a < 0 || b < 0 || a > b)
        return false;
    memset(scratch, 0, sizeof *scratch * (size_t)g->n_nodes);
    mark_upstream(g, b, scratch);
    return scratch[a];
}

/* A residual junction: an Add of two activations where one (the skip, its
   value in *skip) is computed upstream of the other (the branch). */
static bool is_residual(const ot_graph *g, int32_t node, int32_t *skip, bool *scratch)
{
    const ot_node *n = &g->nodes[node];
    if (strcmp(n->op_type, "Add") != 0 || n->n_in != 2 || !is_activation(g, n->in[0]) ||
        !is_activation(g, n->in[1]))
        return false;
    int32_t p0 = g->values[n->in[0]].producer, p1 = g->values[n->in[1]].producer;
    if (upstream_of(g, p0, p1, scratch)) {
        *skip = n->in[0];
        return true;
    }
    if (upstream_of(g, p1, p0, scratch)) {
        *skip = n->in[1];
        return true;
    }
    return false;
}

/*
 * The last encoder block of a transformer, as the node its input comes from
 * (*start): walking back from the head along the activations (the token
 * selection, Gather or Slice of the class token, or the token pooling, then
 * the final norm) to the first residual Add R; then back along the residual
 * stream (each junction's skip input) to the first junction whose segment up
 * to R holds an attention (a Softmax). The block is everything upstream of R
 * and not upstream of *start. False when the graph has no such structure
 * (the CNN presets apply then).
 */
static bool last_encoder_block(const ot_graph *g, const ot_head *head, int32_t *start, bool *a,
                               bool *b)
{
    if (!head || !head->found)
        return false;
    int32_t r = -1, skip = -1, i = head->node;
    for (int hops = 0; hops < g->n_nodes && r < 0; hops++) {
        const ot_node *n = &g->nodes[i];
        int32_t next = -1;
        for (int k = 0; k < n->n_in && next < 0; k++)
            if (is_activation(g, n->in[k]))
                next = g->values[n->in[k]].producer;
        if (next < 0)
            return false;
        if (is_residual(g, next, &skip, a))
            r = next;
        i = next;
    }
    if (r < 0)
        return false;
    for (int steps = 0; steps < 64; steps++) {
        int32_t p = g->values[skip].producer;
        /* a: upstream of R; b: upstream of p. Attention between them? */
        memset(a, 0, sizeof *a * (size_t)g->n_nodes);
        mark_upstream(g, r, a);
        memset(b, 0, sizeof *b * (size_t)g->n_nodes);
        mark_upstream(g, p, b);
        for (int32_t k = 0; k < g->n_nodes; k++)
            if (a[k] && !b[k] && !strcmp(g->nodes[k].op_type, "Softmax")) {
                *start = p;
                return true;
            }
        if (!is_residual(g, p, &skip, a))
            return false;
    }
    return false;
}

static bool name_matches(const char *pat, const char *name)
{
    return name && name[0] && fnmatch(pat, name, 0) == 0;
}

/* Applies one pattern list; returns false when a pattern matched nothing. */
static bool apply_patterns(ot_graph *g, const bool *is_param, const char *const *pats, int n_pats,
                           bool on, const char **unmatched)
{
    for (int p = 0; p < n_pats; p++) {
        bool any = false;
        for (int32_t v = 0; v < g->n_values; v++)
            if (is_param[v] && name_matches(pats[p], g->values[v].name)) {
                any = true;
                if (on)
                    g->values[v].flags |= OT_VAL_TRAINABLE;
                else
                    g->values[v].flags &= ~(uint32_t)OT_VAL_TRAINABLE;
            }
        for (int32_t i = 0; i < g->n_nodes; i++)
            if (name_matches(pats[p], g->nodes[i].name)) {
                any = true;
                mark_node_params(g, is_param, i, on);
            }
        if (!any) {
            *unmatched = pats[p];
            return false;
        }
    }
    return true;
}

ot_status ot_pass_freeze(ot_graph *g, const ot_freeze_opts *opts, const ot_head *head,
                         ot_freeze_report *rep, ot_err *err)
{
    ot_status st = OT_OK;
    bool *is_param = ot_calloc((size_t)g->n_values + 1, sizeof *is_param);
    bool *up = ot_calloc((size_t)g->n_nodes + 1, sizeof *up);
    if (!is_param || !up)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    for (int32_t v = 0; v < g->n_values; v++) {
        is_param[v] = ot_pass_is_param(g, v);
        g->values[v].flags &= ~(uint32_t)OT_VAL_TRAINABLE;
    }

    switch (opts->mode) {
    case OT_FREEZE_FULL:
        for (int32_t v = 0; v < g->n_values; v++)
            if (is_param[v])
                g->values[v].flags |= OT_VAL_TRAINABLE;
        break;
    case OT_FREEZE_FEATURE_EXTRACT:
        if (!head || !head->found)
            OT_FAIL(err, OT_ERR_ARG,
                    "feature-extract mode trains the classifier head, and none was found "
                    "(use --mode full or --train PATTERN)");
        mark_node_params(g, is_param, head->node, true);
        if (head->bias_node >= 0)
            mark_node_params(g, is_param, head->bias_node, true);
        break;
    case OT_FREEZE_FINE_TUNE: {
        /* An MLP classifier of three or more linear layers (AlexNet, VGG):
           its layers after the first, which maps the flattened features.
           Otherwise the last stage before the global pooling, or, without
           one, before the Flatten that feeds the classifier. */
        int32_t layers[MAX_MLP], stop = -1;
        int n_layers = mlp_layers(g, head, layers, &stop);
        if (n_layers >= 3) {
            mark_upstream(g, layers[n_layers - 1], up);
            for (int32_t i = 0; i < g->n_nodes; i++)
                if (!up[i])
                    mark_node_params(g, is_param, i, true);
            break;
        }
        /* A transformer (ViT, Swin): the last encoder block, the final norm
           and the head, whatever reads the tokens (a class token, a pooling) */
        bool *other = ot_calloc((size_t)g->n_nodes + 1, sizeof *other);
        if (!other)
            OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
        int32_t start = -1;
        bool block = last_encoder_block(g, head, &start, up, other);
        ot_free(other);
        if (block) {
            memset(up, 0, sizeof *up * (size_t)g->n_nodes);
            mark_upstream(g, start, up);
            for (int32_t i = 0; i < g->n_nodes; i++)
                if (!up[i])
                    mark_node_params(g, is_param, i, true);
            break;
        }
        int32_t pool = find_global_pool(g);
        if (pool < 0)
            pool = flatten_point(g, stop);
        if (pool < 0 || g->nodes[pool].in[0] < 0) {
            char stages[600];
            list_stages(g, stages, sizeof stages);
            OT_FAIL(err, OT_ERR_ARG,
                    "fine-tune mode trains the last stage before the global pooling, and the "
                    "graph has no global pooling nor a flattened feature map before its head "
                    "(stages found: %s); choose with --train PATTERN (the parameters or nodes "
                    "to train) or --freeze-until NAME (the last frozen node)",
                    stages[0] ? stages : "none");
        }
        const ot_value *r = &g->values[g->nodes[pool].in[0]];
        if (mark_stage(g, is_param, pool, r, up) == 0) {
            /* the pooled map comes after the last stage's layers (a MaxPool
               before the Flatten): take the resolution those layers work at */
            const ot_value *last = last_param_map(g, is_param, pool, up);
            if (last)
                mark_stage(g, is_param, pool, last, up);
        }
        break;
    }
    }
    const char *unmatched = NULL;
    if (!apply_patterns(g, is_param, opts->train, opts->n_train, true, &unmatched))
        OT_FAIL(err, OT_ERR_ARG, "--train pattern '%s' matches no parameter or node", unmatched);
    if (!apply_patterns(g, is_param, opts->freeze, opts->n_freeze, false, &unmatched))
        OT_FAIL(err, OT_ERR_ARG, "--freeze pattern '%s' matches no parameter or node", unmatched);
    if (opts->until) {
        int32_t target = -1;
        for (int32_t i = 0; i < g->n_nodes && target < 0; i++)
            if (!strcmp(g->nodes[i].name, opts->until))
                target = i;
        if (target < 0) {
            int32_t v = ot_graph_find_value(g, opts->until);
            if (v >= 0)
                target = g->values[v].producer;
            if (v >= 0 && target < 0)
                OT_FAIL(err, OT_ERR_ARG, "--freeze-until '%s' is a graph input or initializer",
                        opts->until);
        }
        if (target < 0)
            OT_FAIL(err, OT_ERR_ARG, "--freeze-until '%s' names no node or value", opts->until);
        memset(up, 0, sizeof *up * (size_t)g->n_nodes);
        mark_upstream(g, target, up);
        for (int32_t i = 0; i < g->n_nodes; i++)
            if (up[i])
                mark_node_params(g, is_param, i, false);
    }
    if (rep) {
        memset(rep, 0, sizeof *rep);
        rep->first_trained_node = -1;
        for (int32_t v = 0; v < g->n_values; v++) {
            if (!is_param[v])
                continue;
            const ot_value *val = &g->values[v];
            uint64_t numel = 1;
            for (int d = 0; d < val->ndim; d++)
                numel *= (uint64_t)val->dims[d];
            rep->n_params++;
            if (val->flags & OT_VAL_TRAINABLE) {
                rep->n_trainable++;
                rep->numel_trainable += numel;
            } else {
                rep->numel_frozen += numel;
            }
        }
        for (int32_t i = 0; i < g->n_nodes && rep->first_trained_node < 0; i++) {
            const ot_node *n = &g->nodes[i];
            for (int k = 0; k < n->n_in; k++) {
                int32_t s = n->in[k] >= 0 ? ot_pass_source_init(g, n->in[k]) : -1;
                if (s >= 0 && is_param[s] && (g->values[s].flags & OT_VAL_TRAINABLE) &&
                    is_weight_input(n, k) && strcmp(n->op_type, "Identity") != 0) {
                    rep->first_trained_node = i;
                    break;
                }
            }
        }
    }
done:
    ot_free(is_param);
    ot_free(up);
    return st;
}

ot_status ot_pass_freeze_at_size(ot_graph *g, const ot_freeze_opts *opts, const ot_head *head,
                                 int64_t image_size, ot_freeze_report *rep, ot_err *err)
{
    ot_status st = OT_OK;
    ot_graph *c = NULL;
    int32_t image = -1;
    for (int32_t i = 0; i < g->n_inputs && image < 0; i++)
        if (!(g->values[g->inputs[i].value].flags & OT_VAL_INIT))
            image = g->inputs[i].value;
    const ot_value *iv = image >= 0 ? &g->values[image] : NULL;
    bool dynamic = iv && iv->ndim >= 3;
    for (int d = 2; dynamic && d < iv->ndim; d++)
        dynamic = iv->dims[d] < 0;
    if (!dynamic || image_size <= 0 || opts->mode != OT_FREEZE_FINE_TUNE)
        return ot_pass_freeze(g, opts, head, rep, err);
    OT_TRY(ot_graph_clone(g, &c, err));
    ot_value *cv = &c->values[image];
    for (int d = 2; d < cv->ndim; d++) {
        cv->dims[d] = image_size;
        cv->dim_names[d] = NULL;
    }
    for (int32_t v = 0; v < c->n_values; v++)
        if (!(c->values[v].flags & (OT_VAL_INIT | OT_VAL_INPUT)))
            c->values[v].flags &= ~(uint32_t)OT_VAL_SHAPE_DECLARED;
    OT_TRY(ot_graph_infer_shapes(c, err));
    OT_TRY(ot_pass_freeze(c, opts, head, rep, err));
    for (int32_t v = 0; v < g->n_values; v++) {
        g->values[v].flags &= ~(uint32_t)OT_VAL_TRAINABLE;
        g->values[v].flags |= c->values[v].flags & OT_VAL_TRAINABLE;
    }
done:
    ot_graph_free(c);
    return st;
}

/* splitmix64: a small, well-mixed generator; the same on every machine. */
static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [-bound, bound). */
static float uniform(uint64_t *s, float bound)
{
    double u = (double)(next_u64(s) >> 11) * (1.0 / 9007199254740992.0);
    return (float)((2.0 * u - 1.0) * (double)bound);
}

static ot_status new_param(ot_graph *g, int32_t vid, int ndim, const int64_t *dims, float bound,
                           uint64_t *rng, ot_err *err)
{
    ot_value *v = &g->values[vid];
    if (v->dtype != OT_DTYPE_FLOAT)
        return ot_err_set(err, OT_ERR_UNSUPPORTED,
                          "head parameter '%s' is %s; only float heads can be replaced", v->name,
                          ot_dtype_name(v->dtype));
    size_t numel = 1;
    for (int d = 0; d < ndim; d++)
        numel *= (size_t)dims[d];
    float *data = ot_malloc(numel * sizeof *data);
    if (!data)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < numel; i++)
        data[i] = uniform(rng, bound);
    if (!g->borrows_data)
        ot_free(v->data.data);
    v->data.data = data;
    v->data.bytes = numel * sizeof *data;
    v->data.ndim = ndim;
    v->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        v->data.dims[d] = v->dims[d] = dims[d];
    v->storage = OT_STORE_RAW;
    v->flags |= OT_VAL_DIRTY | OT_VAL_SHAPE_DIRTY;
    return OT_OK;
}

ot_status ot_pass_swap_head(ot_graph *g, const ot_head *head, int64_t n_classes, uint64_t seed,
                            ot_err *err)
{
    ot_status st = OT_OK;
    bool *down = NULL;
    if (n_classes < 1)
        return ot_err_set(err, OT_ERR_ARG, "--classes must be at least 1");
    if (!head || !head->found)
        return ot_err_set(err, OT_ERR_ARG, "no classifier head found to replace");
    if (g->borrows_data)
        return ot_err_set(err, OT_ERR_ARG, "swap-head needs a graph that owns its tensors");
    int64_t in = head->in_features, old_out = head->out_features;
    float bound = 1.0f / sqrtf((float)in);
    uint64_t rng = seed;
    const ot_value *w = &g->values[head->weight];
    int64_t wd[OT_MAX_DIMS];
    memcpy(wd, w->dims, sizeof wd);
    /* keep the layout: the old out_features axis gets n_classes */
    int out_axis;
    if (!strcmp(head->kind, "Gemm")) {
        const ot_node *n = &g->nodes[head->node];
        out_axis = ot_node_attr_int(n, "transB", 0) ? 0 : 1;
    } else if (!strcmp(head->kind, "Conv1x1")) {
        out_axis = 0;
    } else {
        out_axis = w->ndim - 1; /* MatMul: [in, out] */
    }
    wd[out_axis] = n_classes;
    OT_TRY(new_param(g, head->weight, w->ndim, wd, bound, &rng, err));
    if (head->bias >= 0) {
        const ot_value *b = &g->values[head->bias];
        int64_t bd[OT_MAX_DIMS];
        memcpy(bd, b->dims, sizeof bd);
        int ax = -1;
        for (int d = 0; d < b->ndim; d++)
            if (b->dims[d] == old_out)
                ax = d;
        if (ax < 0)
            OT_FAIL(err, OT_ERR_SHAPE, "head bias '%s' has no axis of size %lld", b->name,
                    (long long)old_out);
        bd[ax] = n_classes;
        OT_TRY(new_param(g, head->bias, b->ndim, bd, bound, &rng, err));
    }
    /* downstream values: forget inferred shapes; declared outputs follow */
    down = ot_calloc((size_t)g->n_values + 1, sizeof *down);
    if (!down)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    for (int32_t i = head->node; i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        bool reached = i == head->node;
        for (int k = 0; k < n->n_in && !reached; k++)
            reached = n->in[k] >= 0 && down[n->in[k]];
        if (!reached)
            continue;
        for (int k = 0; k < n->n_out; k++) {
            if (n->out[k] < 0)
                continue;
            ot_value *v = &g->values[n->out[k]];
            down[n->out[k]] = true;
            if (v->flags & OT_VAL_SHAPE_DECLARED) {
                for (int d = 0; d < v->ndim; d++)
                    if (v->dims[d] == old_out && d > 0)
                        v->dims[d] = n_classes;
                v->flags |= OT_VAL_SHAPE_DIRTY;
            }
        }
    }
    OT_TRY(ot_graph_infer_shapes(g, err));
done:
    ot_free(down);
    return st;
}
