/*
 * cuda_layout.c: the CUDA backend's layout pass (cuda_layout.h): which
 * values it keeps channels-last, which nodes run so, and where the edges
 * need a conversion.
 */
#include "cuda_layout.h"

#include <string.h>

#include "ops/grad_util.h"
#include "ops/ops.h"

bool ot_cuda_layout_free(const ot_value *v)
{
    if (v->ndim != 4)
        return true;
    for (int i = 0; i < 4; i++)
        if (v->dims[i] == 0)
            return true;
    return v->dims[1] == 1 || v->dims[2] * v->dims[3] == 1;
}

static bool is_rank4_float(const ot_graph *g, int32_t v)
{
    return v >= 0 && g->values[v].ndim == 4 && g->values[v].dtype == OT_DTYPE_FLOAT;
}

/* Element-wise ops whose kernels walk their operands by dims alone. */
static bool flat_op(const ot_node *n)
{
    static const ot_op_id ops[] = {
        OT_OP_RELU, OT_OP_LEAKYRELU, OT_OP_CLIP, OT_OP_SIGMOID, OT_OP_TANH, OT_OP_HARDSIGMOID,
        OT_OP_HARDSWISH, OT_OP_ELU, OT_OP_SELU, OT_OP_SOFTPLUS, OT_OP_GELU, OT_OP_SQRT,
        OT_OP_RECIPROCAL, OT_OP_EXP, OT_OP_LOG, OT_OP_ERF, OT_OP_ADD, OT_OP_SUM, OT_OP_MUL,
        OT_OP_SUB, OT_OP_DIV, OT_OP_MAX, OT_OP_MIN, OT_OP_MEAN, OT_OP_RELU_GRAD,
        OT_OP_LEAKYRELU_GRAD, OT_OP_CLIP_GRAD, OT_OP_SIGMOID_GRAD, OT_OP_UNARY_GRAD,
        OT_OP_IDENTITY, OT_OP_CAST,
    };
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
        if (ot_node_is(n, ops[i]))
            return true;
    return false;
}

/* A FLAT node's shape: its first output's (-1: none). */
static int32_t flat_shape(const ot_node *n)
{
    return n->n_out > 0 ? n->out[0] : -1;
}

/* Whether v, right-aligned to rank 4, is stored alike in both layouts. */
static bool aligned_free(const ot_value *v)
{
    if (v->ndim > 4)
        return false;
    ot_value a;
    a.ndim = 4;
    int64_t d[4];
    ot_cuda_nhwc_view(v->ndim, v->dims, d);
    /* the view is [d0, d2, d3, d1]: back to [N, C, H, W] */
    a.dims[0] = d[0], a.dims[1] = d[3], a.dims[2] = d[1], a.dims[3] = d[2];
    return ot_cuda_layout_free(&a);
}

static bool flat_ok(const ot_graph *g, const ot_node *n)
{
    int32_t yv = flat_shape(n);
    if (yv < 0 || g->values[yv].ndim != 4 || ot_cuda_layout_free(&g->values[yv]))
        return false;
    /* the broadcast before opset 7 places B by an axis, not right-aligned */
    if (n->opset < 7 && (ot_node_is(n, OT_OP_ADD) || ot_node_is(n, OT_OP_MUL) ||
                         ot_node_is(n, OT_OP_SUB) || ot_node_is(n, OT_OP_DIV)))
        return false;
    for (int k = 0; k < n->n_in + n->n_out; k++) {
        int32_t v = k < n->n_in ? n->in[k] : n->out[k - n->n_in];
        if (v < 0)
            continue;
        const ot_value *o = &g->values[v];
        if (o->ndim < 0 || (!ot_op_grad_same_shape(g, v, yv) && !aligned_free(o)))
            return false;
    }
    return true;
}

ot_nhwc_kind ot_cuda_nhwc_kind(const ot_graph *g, const ot_node *n)
{
    if (!n->op)
        return OT_NHWC_NO;
    int32_t in0 = n->n_in > 0 ? n->in[0] : -1, in1 = n->n_in > 1 ? n->in[1] : -1;
    int32_t out0 = n->n_out > 0 ? n->out[0] : -1;
    switch (n->op->id) {
    case OT_OP_CONV:
        return is_rank4_float(g, in0) && is_rank4_float(g, in1) ? OT_NHWC_CONV : OT_NHWC_NO;
    case OT_OP_CONV_GRAD_DATA:
        return is_rank4_float(g, out0) && is_rank4_float(g, in0) ? OT_NHWC_CONV : OT_NHWC_NO;
    case OT_OP_CONV_GRAD_FILTER:
        return is_rank4_float(g, in1) && is_rank4_float(g, in0) ? OT_NHWC_CONV : OT_NHWC_NO;
    case OT_OP_BATCHNORM:
    case OT_OP_BATCHNORM_TRAIN:
    case OT_OP_AVGPOOL:
    case OT_OP_GLOBALAVGPOOL:
    case OT_OP_GLOBALMAXPOOL:
        return is_rank4_float(g, in0) && is_rank4_float(g, out0) ? OT_NHWC_KERNEL : OT_NHWC_NO;
    case OT_OP_MAXPOOL:
        /* Indices are NCHW offsets: that form stays NCHW */
        if (n->n_out > 1 && n->out[1] >= 0)
            return OT_NHWC_NO;
        return is_rank4_float(g, in0) && is_rank4_float(g, out0) ? OT_NHWC_KERNEL : OT_NHWC_NO;
    case OT_OP_REDUCE_MEAN:
    case OT_OP_REDUCE_SUM:
    case OT_OP_REDUCE_MAX:
    case OT_OP_REDUCE_L2:
        /* the result walks [N, C, H, W] order: only one stored alike in both
           layouts (over H and W, or over C, or of another rank) */
        return is_rank4_float(g, in0) && out0 >= 0 && ot_cuda_layout_free(&g->values[out0])
                   ? OT_NHWC_KERNEL
                   : OT_NHWC_NO;
    case OT_OP_BATCHNORM_GRAD:
    case OT_OP_MAXPOOL_GRAD:
    case OT_OP_GLOBALMAXPOOL_GRAD:
        return is_rank4_float(g, in1) && is_rank4_float(g, in0) ? OT_NHWC_KERNEL : OT_NHWC_NO;
    case OT_OP_AVGPOOL_GRAD:
    case OT_OP_GLOBALAVGPOOL_GRAD:
        return is_rank4_float(g, out0) && is_rank4_float(g, in0) ? OT_NHWC_KERNEL : OT_NHWC_NO;
    default: return flat_op(n) && flat_ok(g, n) ? OT_NHWC_FLAT : OT_NHWC_NO;
    }
}

bool ot_cuda_nhwc_follows(const ot_graph *g, const ot_node *n, ot_nhwc_kind k, int32_t v)
{
    if (v < 0 || k == OT_NHWC_NO || g->values[v].ndim != 4)
        return false;
    if (k != OT_NHWC_FLAT)
        return true;
    int32_t yv = flat_shape(n);
    return yv >= 0 && ot_op_grad_same_shape(g, v, yv);
}

int ot_cuda_nhwc_view(int ndim, const int64_t *dims, int64_t *out)
{
    if (ndim > 4) {
        memcpy(out, dims, sizeof *dims * (size_t)ndim);
        return ndim;
    }
    int64_t a[4] = { 1, 1, 1, 1 };
    for (int i = 0; i < ndim; i++)
        a[4 - ndim + i] = dims[i];
    out[0] = a[0], out[1] = a[2], out[2] = a[3], out[3] = a[1];
    return 4;
}

void ot_cuda_layout_release(ot_cuda_layout *l)
{
    ot_free(l->val);
    ot_free(l->node);
    memset(l, 0, sizeof *l);
}

ot_status ot_cuda_layout_plan(const ot_graph *g, const uint8_t *pinned, const uint8_t *skip,
                              ot_cuda_layout *out, ot_err *err)
{
    memset(out, 0, sizeof *out);
    uint8_t *pin = NULL, *need = NULL;
    out->val = ot_calloc((size_t)g->n_values + 1, 1);
    out->node = ot_calloc((size_t)g->n_nodes + 1, 1);
    need = ot_calloc((size_t)g->n_values + 1, 1);
    if (!pinned) {
        if ((pin = ot_calloc((size_t)g->n_values + 1, 1))) {
            for (int32_t v = 0; v < g->n_values; v++)
                pin[v] = (g->values[v].flags & (OT_VAL_INPUT | OT_VAL_OUTPUT | OT_VAL_STATE |
                                                OT_VAL_CONST | OT_VAL_INIT)) != 0;
            for (int i = 0; i < g->n_inputs; i++)
                pin[g->inputs[i].value] = 1;
            for (int i = 0; i < g->n_outputs; i++)
                pin[g->outputs[i].value] = 1;
        }
        pinned = pin;
    }
    if (!out->val || !out->node || !need || !pinned) {
        ot_free(pin);
        ot_free(need);
        ot_cuda_layout_release(out);
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    }
    bool any = false;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        if (skip && skip[i])
            continue;
        ot_nhwc_kind k = ot_cuda_nhwc_kind(g, n);
        if (k == OT_NHWC_NO)
            continue;
        bool blocked = false;
        for (int j = 0; j < n->n_out; j++) {
            int32_t v = n->out[j];
            if (ot_cuda_nhwc_follows(g, n, k, v) && !ot_cuda_layout_free(&g->values[v]) &&
                pinned[v])
                blocked = true;
        }
        if (blocked)
            continue;
        if (k != OT_NHWC_CONV) {
            int nh = 0, nc = 0;
            for (int j = 0; j < n->n_in; j++) {
                int32_t v = n->in[j];
                if (!ot_cuda_nhwc_follows(g, n, k, v) || ot_cuda_layout_free(&g->values[v]))
                    continue;
                if (out->val[v])
                    nh++;
                else
                    nc++;
            }
            if (!(nh > 0 || (nc == 0 && any)))
                continue;
        }
        out->node[i] = 1;
        out->n_nhwc_nodes++;
        any = true;
        for (int j = 0; j < n->n_out; j++) {
            int32_t v = n->out[j];
            if (ot_cuda_nhwc_follows(g, n, k, v) && !ot_cuda_layout_free(&g->values[v]))
                out->val[v] = 1;
        }
    }
    /* the edges: need bit 1, read NHWC while stored NCHW; bit 2, the reverse */
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        if (skip && skip[i])
            continue;
        ot_nhwc_kind k = out->node[i] ? ot_cuda_nhwc_kind(g, n) : OT_NHWC_NO;
        for (int j = 0; j < n->n_in; j++) {
            int32_t v = n->in[j];
            if (v < 0 || ot_cuda_layout_free(&g->values[v]))
                continue;
            bool want = out->node[i] && ot_cuda_nhwc_follows(g, n, k, v);
            if (want && !out->val[v])
                need[v] |= 1;
            else if (!want && out->val[v])
                need[v] |= 2;
        }
    }
    for (int i = 0; i < g->n_outputs; i++) {
        int32_t v = g->outputs[i].value;
        if (v >= 0 && out->val[v])
            need[v] |= 2;
    }
    for (int32_t v = 0; v < g->n_values; v++) {
        out->n_to_nhwc += (need[v] & 1) != 0;
        out->n_to_nchw += (need[v] & 2) != 0;
    }
    ot_free(pin);
    ot_free(need);
    return OT_OK;
}
