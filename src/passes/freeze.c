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
 */
#include <fnmatch.h>
#include <math.h>
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

/* The node that pools to 1x1: the last GlobalAveragePool / GlobalMaxPool, or
   a pool whose output is 1x1 (before the head as in ResNet, or after a 1x1
   Conv head as in SqueezeNet). */
static int32_t find_global_pool(const ot_graph *g)
{
    int32_t last = -1;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        if (!strcmp(n->op_type, "GlobalAveragePool") || !strcmp(n->op_type, "GlobalMaxPool"))
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
        int32_t pool = find_global_pool(g);
        if (pool < 0 || g->nodes[pool].in[0] < 0)
            OT_FAIL(err, OT_ERR_ARG,
                    "fine-tune mode trains the last stage before the global pooling, and the "
                    "graph has no global pooling (use --train PATTERN or --freeze-until NAME)");
        const ot_value *r = &g->values[g->nodes[pool].in[0]];
        mark_upstream(g, pool, up);
        for (int32_t i = 0; i < g->n_nodes; i++) {
            const ot_node *n = &g->nodes[i];
            bool in_stage = false;
            if (!up[i]) {
                in_stage = true; /* downstream of the pooling: the head */
            } else {
                for (int k = 0; k < n->n_out && !in_stage; k++)
                    in_stage = n->out[k] >= 0 && spatial_is(&g->values[n->out[k]], r);
            }
            if (in_stage)
                mark_node_params(g, is_param, i, true);
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
