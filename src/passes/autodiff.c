/*
 * autodiff.c: reverse-mode differentiation over the graph (see autodiff.h).
 *
 * Three sweeps over the forward nodes, which are in topological order:
 *   1. forward: which values depend on a parameter (through float values and
 *      ops that are differentiable at all: not Shape, not Constant);
 *   2. backward: which values the loss depends on;
 *   3. backward again, over the nodes on both paths: the gradient of each
 *      output is made final (its contributions summed by a Sum node when
 *      there are several), then the op's rule appends the backward nodes and
 *      hands back one contribution per input.
 * A node off those paths (the frozen prefix, the statistics of BatchNorm)
 * gets nothing.
 *
 * It does not simplify the backward graph (no dead-code elimination, no
 * fusion); later passes may.
 */
#include <stdio.h>
#include <string.h>

#include "ops/grad_util.h"
#include "ops/op_util.h"
#include "passes/autodiff.h"

/* Contributions to the gradient of one forward value: a linked list in one
   growing array. */
typedef struct contrib {
    int32_t grad; /* value id of one contribution   */
    int32_t next; /* index of the next one, or -1   */
} contrib;

typedef struct ad_state {
    int32_t nv;       /* forward values: ids below this               */
    int32_t *head;    /* per forward value: first contribution or -1  */
    int32_t *final;   /* per forward value: the summed gradient or -1 */
    contrib *list;
    int32_t n_list, cap_list;
} ad_state;

static ot_status add_contrib(ad_state *s, int32_t v, int32_t grad, ot_err *err)
{
    OT_ASSERT(v >= 0 && v < s->nv && s->final[v] < 0);
    if (s->n_list == s->cap_list) {
        int32_t cap = s->cap_list ? s->cap_list * 2 : 256;
        contrib *nl = ot_realloc(s->list, sizeof *nl * (size_t)cap);
        if (!nl)
            return ot_err_set(err, OT_ERR_NOMEM, "autodiff: out of memory");
        s->list = nl;
        s->cap_list = cap;
    }
    s->list[s->n_list] = (contrib){ .grad = grad, .next = s->head[v] };
    s->head[v] = s->n_list++;
    return OT_OK;
}

/* The gradient of forward value v: its contributions summed (in the order
   they arrived), -1 when there are none. Computed once. */
static ot_status finalize(ot_graph *g, ad_state *s, int32_t v, int32_t *out, ot_err *err)
{
    ot_status st = OT_OK;
    int32_t *ids = NULL;
    if (s->final[v] >= 0 || s->head[v] < 0) {
        *out = s->final[v];
        return OT_OK;
    }
    int n = 0;
    for (int32_t c = s->head[v]; c >= 0; c = s->list[c].next)
        n++;
    ids = ot_malloc(sizeof *ids * (size_t)n);
    if (!ids)
        return ot_err_set(err, OT_ERR_NOMEM, "autodiff: out of memory");
    int k = n;
    for (int32_t c = s->head[v]; c >= 0; c = s->list[c].next)
        ids[--k] = s->list[c].grad; /* the list is newest first */
    char hint[512];
    snprintf(hint, sizeof hint, "grad/%s/sum", g->values[v].name);
    OT_TRY(ot_op_grad_sum(g, hint, ids, n, &s->final[v], err));
    *out = s->final[v];
done:
    ot_free(ids);
    return st;
}

static bool is_float_or_unknown(const ot_value *v)
{
    return v->dtype == OT_DTYPE_UNDEFINED || ot_op_is_float(v->dtype);
}

/* The loss must be one float element with a known shape. */
static ot_status check_loss(const ot_graph *g, int32_t loss, ot_err *err)
{
    if (loss < 0 || loss >= g->n_values)
        return ot_err_set(err, OT_ERR_ARG, "autodiff: loss value id %d is out of range",
                          (int)loss);
    const ot_value *v = &g->values[loss];
    bool one = v->ndim >= 0 && v->ndim <= OT_MAX_DIMS;
    for (int i = 0; one && i < v->ndim; i++)
        one = v->dims[i] == 1;
    if (!ot_op_is_float(v->dtype) || !one) {
        char shape[200];
        ot_value_shape_str(v, shape, sizeof shape);
        return ot_err_set(err, OT_ERR_ARG,
                          "autodiff: loss '%s' is %s %s, expected a float scalar", v->name,
                          ot_dtype_name(v->dtype), shape);
    }
    return OT_OK;
}

ot_status ot_pass_autodiff(ot_graph *g, int32_t loss, const int32_t *params, int n_params,
                           int32_t *grads, ot_err *err)
{
    ot_status st = OT_OK;
    ad_state s = { 0 };
    bool *from_param = NULL, *to_loss = NULL;
    int32_t *dy = NULL, *dx = NULL;
    bool *need = NULL;
    char label[512];

    if (!g || (n_params > 0 && (!params || !grads)) || n_params < 0)
        return ot_err_set(err, OT_ERR_ARG, "autodiff: no graph, parameters or gradient array");
    for (int i = 0; i < n_params; i++)
        grads[i] = -1;
    OT_TRY(check_loss(g, loss, err));
    for (int i = 0; i < n_params; i++)
        if (params[i] < 0 || params[i] >= g->n_values)
            OT_FAIL(err, OT_ERR_ARG, "autodiff: parameter #%d: value id %d is out of range", i,
                    (int)params[i]);

    s.nv = g->n_values;
    int32_t n_fwd = g->n_nodes;
    int max_io = 1;
    for (int32_t i = 0; i < n_fwd; i++) {
        const ot_node *n = &g->nodes[i];
        max_io = n->n_in > max_io ? n->n_in : max_io;
        max_io = n->n_out > max_io ? n->n_out : max_io;
    }
    from_param = ot_calloc((size_t)s.nv, sizeof *from_param);
    to_loss = ot_calloc((size_t)s.nv, sizeof *to_loss);
    s.head = ot_malloc(sizeof *s.head * (size_t)s.nv);
    s.final = ot_malloc(sizeof *s.final * (size_t)s.nv);
    dy = ot_malloc(sizeof *dy * (size_t)max_io);
    dx = ot_malloc(sizeof *dx * (size_t)max_io);
    need = ot_malloc(sizeof *need * (size_t)max_io);
    if (!from_param || !to_loss || !s.head || !s.final || !dy || !dx || !need)
        OT_FAIL(err, OT_ERR_NOMEM, "autodiff: out of memory");
    for (int32_t v = 0; v < s.nv; v++)
        s.head[v] = s.final[v] = -1;

    /* 1. values that depend on a parameter */
    for (int i = 0; i < n_params; i++)
        from_param[params[i]] = true;
    for (int32_t i = 0; i < n_fwd; i++) {
        const ot_node *n = &g->nodes[i];
        bool any = false;
        for (int k = 0; k < n->n_in; k++)
            any |= n->in[k] >= 0 && from_param[n->in[k]];
        if (!any || (n->op && n->op->no_grad))
            continue;
        for (int k = 0; k < n->n_out; k++)
            if (n->out[k] >= 0 && is_float_or_unknown(&g->values[n->out[k]]))
                from_param[n->out[k]] = true;
    }
    /* 2. values the loss depends on */
    to_loss[loss] = true;
    for (int32_t i = n_fwd - 1; i >= 0; i--) {
        const ot_node *n = &g->nodes[i];
        bool any = false;
        for (int k = 0; k < n->n_out; k++)
            any |= n->out[k] >= 0 && to_loss[n->out[k]];
        for (int k = 0; any && k < n->n_in; k++)
            if (n->in[k] >= 0)
                to_loss[n->in[k]] = true;
    }
    if (!from_param[loss])
        goto done; /* no parameter reaches the loss: every gradient is -1 */

    /* the seed: dL/dloss = 1, shaped like the loss */
    {
        int64_t dims[OT_MAX_DIMS];
        int32_t seed;
        float one = 1.0f;
        char hint[512];
        for (int i = 0; i < g->values[loss].ndim; i++)
            dims[i] = 1;
        snprintf(hint, sizeof hint, "grad/%s", g->values[loss].name);
        OT_TRY(ot_op_grad_const_f32(g, hint, dims, g->values[loss].ndim, &one, &seed, err));
        OT_TRY(add_contrib(&s, loss, seed, err));
    }

    /* 3. the rules, last node first */
    for (int32_t i = n_fwd - 1; i >= 0; i--) {
        const ot_node *n = &g->nodes[i];
        bool flows = false, wanted = false;
        int n_in = n->n_in, n_out = n->n_out;
        for (int k = 0; k < n_out; k++) {
            int32_t v = n->out[k];
            dy[k] = -1;
            if (v >= 0 && v < s.nv && from_param[v] && to_loss[v])
                flows = true;
        }
        if (!flows)
            continue;
        for (int k = 0; k < n_in; k++) {
            int32_t v = n->in[k];
            need[k] = v >= 0 && from_param[v] && ot_op_is_float(g->values[v].dtype);
            wanted |= need[k];
            dx[k] = -1;
        }
        if (!wanted)
            continue;
        bool any_dy = false;
        for (int k = 0; k < n_out; k++) {
            int32_t v = g->nodes[i].out[k];
            if (v >= 0 && v < s.nv && from_param[v] && to_loss[v])
                OT_TRY(finalize(g, &s, v, &dy[k], err));
            any_dy |= dy[k] >= 0;
        }
        if (!any_dy)
            continue;
        n = &g->nodes[i];
        if (!n->op || !n->op->grad)
            OT_FAIL(err, OT_ERR_UNSUPPORTED,
                    "autodiff: %s lies between a trained parameter and the loss, but %s",
                    ot_node_label(g, n, label, sizeof label),
                    !n->op ? "its op is not in the table"
                    : n->op->no_grad ? "its op is not differentiable"
                                     : "its op has no gradient rule yet");
        st = n->op->grad(g, i, dy, dx, need, err);
        if (st != OT_OK) {
            ot_err_prefix(err, "autodiff");
            goto done;
        }
        n = &g->nodes[i];
        for (int k = 0; k < n_in; k++)
            if (need[k] && dx[k] >= 0)
                OT_TRY(add_contrib(&s, n->in[k], dx[k], err));
    }
    for (int i = 0; i < n_params; i++)
        if (to_loss[params[i]])
            OT_TRY(finalize(g, &s, params[i], &grads[i], err));
done:
    ot_free(from_param);
    ot_free(to_loss);
    ot_free(s.head);
    ot_free(s.final);
    ot_free(s.list);
    ot_free(dy);
    ot_free(dx);
    ot_free(need);
    return st;
}

/* Appends v to an ot_io list kept in the arena (grown by copy). */
static ot_status append_io(ot_graph *g, ot_io **list, int32_t *n, int32_t v, ot_err *err)
{
    ot_io *io = ot_arena_alloc(&g->arena, sizeof *io * (size_t)(*n + 1));
    if (!io)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    if (*n)
        memcpy(io, *list, sizeof *io * (size_t)*n);
    io[*n].value = v;
    io[*n].info = (ot_blob){ 0 };
    *list = io;
    (*n)++;
    return OT_OK;
}

ot_status ot_pass_add_output(ot_graph *g, int32_t value, ot_err *err)
{
    ot_status st = OT_OK;
    if (!g || value < 0 || value >= g->n_values)
        return ot_err_set(err, OT_ERR_ARG, "add output: value id %d is out of range", (int)value);
    for (int32_t i = 0; i < g->n_outputs; i++)
        if (g->outputs[i].value == value)
            return OT_OK;
    OT_TRY(append_io(g, &g->outputs, &g->n_outputs, value, err));
    g->values[value].flags |= OT_VAL_OUTPUT;
done:
    return st;
}

ot_status ot_pass_add_loss(ot_graph *g, int32_t logits, const char *labels_name,
                           float label_smoothing, int32_t *loss, int32_t *labels, ot_err *err)
{
    ot_status st = OT_OK;
    if (!g || logits < 0 || logits >= g->n_values)
        return ot_err_set(err, OT_ERR_ARG, "add loss: logits value id %d is out of range",
                          (int)logits);
    const ot_value *lv = &g->values[logits];
    if (!ot_op_is_float(lv->dtype) || lv->ndim != 2) {
        char shape[200];
        ot_value_shape_str(lv, shape, sizeof shape);
        return ot_err_set(err, OT_ERR_ARG, "add loss: logits '%s' are %s %s, expected float (N, C)",
                          lv->name, ot_dtype_name(lv->dtype), shape);
    }
    if (!(label_smoothing >= 0.0f && label_smoothing <= 1.0f))
        return ot_err_set(err, OT_ERR_ARG, "add loss: label smoothing %g is outside [0, 1]",
                          (double)label_smoothing);
    int32_t lab, in[2];
    OT_TRY(ot_op_grad_new_value(g, labels_name && labels_name[0] ? labels_name : "labels", &lab,
                                err));
    {
        ot_value *v = &g->values[lab];
        lv = &g->values[logits];
        v->dtype = OT_DTYPE_INT64;
        v->ndim = 1;
        v->dims[0] = lv->dims[0];
        v->dim_names[0] = lv->dims[0] < 0 ? lv->dim_names[0] : NULL;
        v->flags |= OT_VAL_INPUT | OT_VAL_SHAPE_DECLARED;
        v->producer = -1;
    }
    OT_TRY(append_io(g, &g->inputs, &g->n_inputs, lab, err));
    in[0] = logits;
    in[1] = lab;
    {
        ot_attr a = ot_op_grad_attr_float("label_smoothing", label_smoothing);
        const char *names[1] = { "loss" };
        OT_TRY(ot_op_grad_emit(g, &ot_op_softmax_xent, 0, "loss", in, 2, &a, 1, names, loss, 1,
                               err));
    }
    *labels = lab;
done:
    return st;
}

ot_status ot_pass_logits_2d(ot_graph *g, int32_t logits, int32_t *out, ot_err *err)
{
    if (!g || logits < 0 || logits >= g->n_values)
        return ot_err_set(err, OT_ERR_ARG, "logits: value id %d is out of range", (int)logits);
    *out = logits;
    const ot_value *lv = &g->values[logits];
    if (!ot_op_is_float(lv->dtype) || lv->ndim < 3 || lv->ndim > OT_MAX_DIMS)
        return OT_OK;
    int64_t axes[OT_MAX_DIMS];
    int n_axes = 0;
    for (int d = 2; d < lv->ndim; d++) {
        if (lv->dims[d] != 1)
            return OT_OK;
        axes[n_axes++] = d;
    }
    ot_status st = OT_OK;
    char name[OT_GRAD_NAME_MAX];
    int32_t in[2] = { logits, -1 };
    int64_t n = n_axes;
    snprintf(name, sizeof name, "%s/squeeze", lv->name ? lv->name : "logits");
    OT_TRY(ot_op_grad_const_i64(g, "logits/squeeze_axes", &n, 1, axes, &in[1], err));
    OT_TRY(ot_op_grad_emit1(g, ot_op_table[OT_OP_SQUEEZE], name, in, 2, NULL, 0, name, out, err));
done:
    return st;
}
