/*
 * qdq.c: static int8 quantisation in the QDQ format (ot_int8_convert).
 *
 * Weights: symmetric int8, one scale per output channel (Conv axis 0, Gemm
 * axis 0 with transB=1 and 1 without, MatMul axis 1), zero point 0, stored as
 * initializers feeding DequantizeLinear, which is what TensorRT takes as a
 * quantised weight. Biases of Conv and Gemm whose input is quantised: int32
 * with scale input_scale * weight_scale[c], zero point 0, as onnxruntime's
 * QLinearConv fusion expects. Activations: one QuantizeLinear ->
 * DequantizeLinear pair per marked tensor, symmetric int8 (zero point 0),
 * scale = amax / 127 from calibration; every reader of the tensor reads the
 * DequantizeLinear output, graph outputs stay as they were.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "converters/edit.h"
#include "converters/quant.h"

static bool is_type(const ot_node *n, const char *t)
{
    return n->op_type && strcmp(n->op_type, t) == 0 && ot_domain_is_default(n->domain);
}

static bool is_activation(const ot_graph *g, int32_t v)
{
    if (v < 0)
        return false;
    const ot_value *x = &g->values[v];
    return x->dtype == OT_DTYPE_FLOAT && !(x->flags & (OT_VAL_CONST | OT_VAL_INIT));
}

/* A float initializer (its bytes known). */
static const ot_tensor *float_init(const ot_graph *g, int32_t v)
{
    if (v < 0 || !(g->values[v].flags & OT_VAL_INIT))
        return NULL;
    const ot_tensor *t = ot_graph_const(g, v);
    return t && t->dtype == OT_DTYPE_FLOAT && t->data ? t : NULL;
}

static int weight_axis(const ot_node *n, const ot_tensor *w);

void ot_int8_activations(const ot_graph *g, bool *want)
{
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        int n_act = 0;
        if (is_type(n, "Conv") || is_type(n, "Gemm"))
            n_act = 1;
        else if (is_type(n, "MatMul") || is_type(n, "Add"))
            n_act = 2;
        for (int k = 0; k < n_act && k < n->n_in; k++)
            if (is_activation(g, n->in[k]))
                want[n->in[k]] = true;
    }
}

int ot_int8_weight_axis(const ot_graph *g, const ot_node *n)
{
    if (n->n_in < 2 || !(is_type(n, "Conv") || is_type(n, "Gemm") || is_type(n, "MatMul")))
        return -1;
    const ot_tensor *w = float_init(g, n->in[1]);
    return w ? weight_axis(n, w) : -1;
}

/* Which axis of node n's weight holds its output channels; -1: not a
   quantisable weight form. */
static int weight_axis(const ot_node *n, const ot_tensor *w)
{
    if (is_type(n, "Conv"))
        return w->ndim >= 3 ? 0 : -1;
    if (is_type(n, "Gemm"))
        return w->ndim == 2 ? (ot_node_attr_int(n, "transB", 0) ? 0 : 1) : -1;
    if (is_type(n, "MatMul"))
        return w->ndim == 2 ? 1 : -1;
    return -1;
}

static ot_status add_scalar_consts(ot_graph *g, const char *base, float scale, int32_t *s_id,
                                   int32_t *zp_id, ot_err *err)
{
    char name[512];
    int8_t zp = 0;
    snprintf(name, sizeof name, "%s_scale", base);
    ot_status st = ot_quant_add_const(g, name, OT_DTYPE_FLOAT, NULL, 0, &scale, s_id, err);
    if (st != OT_OK)
        return st;
    snprintf(name, sizeof name, "%s_zero_point", base);
    return ot_quant_add_const(g, name, OT_DTYPE_INT8, NULL, 0, &zp, zp_id, err);
}

/* DequantizeLinear(q, scale, zp[, axis]) into a new float value shaped like
   `like`; *out receives it. */
static ot_status add_dequant(ot_graph *g, const char *base, int32_t q, int32_t s, int32_t zp,
                             int axis, int32_t like, int32_t *out, ot_err *err)
{
    char name[512];
    snprintf(name, sizeof name, "%s_dequantized", base);
    ot_status st = ot_quant_add_like(g, name, like, OT_DTYPE_FLOAT, out, err);
    if (st != OT_OK)
        return st;
    int32_t in[3] = { q, s, zp }, node;
    snprintf(name, sizeof name, "%s_DequantizeLinear", base);
    st = cv_add_node(g, "DequantizeLinear", name, in, 3, out, 1, &node, err);
    if (st == OT_OK && axis >= 0)
        st = cv_set_attr_int(g, node, "axis", axis, err);
    return st;
}

/* Replaces input `slot` of node `node` (a float weight) by int8 + DQ;
   wscale receives the per-channel scales (OC floats, caller's buffer of
   dims[axis]). */
static ot_status quantize_weight(ot_graph *g, int32_t node, int slot, int axis, float *wscale,
                                 ot_err *err)
{
    ot_status st = OT_OK;
    int32_t wv = g->nodes[node].in[slot];
    const ot_tensor *w = float_init(g, wv);
    int64_t OC = w->dims[axis], inner = 1, outer = 1;
    for (int d = axis + 1; d < w->ndim; d++)
        inner *= w->dims[d];
    for (int d = 0; d < axis; d++)
        outer *= w->dims[d];
    int64_t numel = ot_tensor_numel(w);
    int8_t *q = ot_malloc((size_t)numel + 1);
    int8_t *zp = ot_calloc((size_t)OC + 1, 1);
    if (!q || !zp)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory quantising '%s'", g->values[wv].name);
    const float *x = w->data;
    for (int64_t c = 0; c < OC; c++) {
        float amax = 0;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t k = 0; k < inner; k++) {
                float a = fabsf(x[(o * OC + c) * inner + k]);
                amax = a > amax ? a : amax;
            }
        wscale[c] = amax > 0 && isfinite(amax) ? amax / 127.0f : 1.0f;
    }
    for (int64_t o = 0; o < outer; o++)
        for (int64_t c = 0; c < OC; c++)
            for (int64_t k = 0; k < inner; k++) {
                int64_t i = (o * OC + c) * inner + k;
                float r = nearbyintf(x[i] / wscale[c]);
                q[i] = (int8_t)(r > 127 ? 127 : r < -127 ? -127 : r);
            }
    char base[480], name[512];
    snprintf(base, sizeof base, "%s", g->values[wv].name);
    int32_t q_id, s_id, zp_id, dq;
    int64_t dims[OT_MAX_DIMS];
    memcpy(dims, w->dims, sizeof dims);
    int ndim = w->ndim;
    snprintf(name, sizeof name, "%s_quantized", base);
    OT_TRY(ot_quant_add_const(g, name, OT_DTYPE_INT8, dims, ndim, q, &q_id, err));
    snprintf(name, sizeof name, "%s_scale", base);
    OT_TRY(ot_quant_add_const(g, name, OT_DTYPE_FLOAT, &OC, 1, wscale, &s_id, err));
    snprintf(name, sizeof name, "%s_zero_point", base);
    OT_TRY(ot_quant_add_const(g, name, OT_DTYPE_INT8, &OC, 1, zp, &zp_id, err));
    OT_TRY(add_dequant(g, base, q_id, s_id, zp_id, axis, wv, &dq, err));
    g->nodes[node].in[slot] = dq;
done:
    ot_free(q);
    ot_free(zp);
    return st;
}

/* Replaces the bias in slot `slot` by int32 + DQ with scale sx * wscale[c];
   left float when a value would not fit int32. */
static ot_status quantize_bias(ot_graph *g, int32_t node, int slot, float sx, const float *wscale,
                               int64_t OC, ot_err *err)
{
    ot_status st = OT_OK;
    int32_t bv = g->nodes[node].in[slot];
    const ot_tensor *b = float_init(g, bv);
    if (!b || b->ndim != 1 || b->dims[0] != OC)
        return OT_OK;
    int32_t *q = ot_malloc((size_t)OC * sizeof *q + 1);
    int32_t *zp = ot_calloc((size_t)OC + 1, sizeof *zp);
    float *bs = ot_malloc((size_t)OC * sizeof *bs + 1);
    if (!q || !zp || !bs)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory quantising '%s'", g->values[bv].name);
    const float *x = b->data;
    for (int64_t c = 0; c < OC; c++) {
        bs[c] = sx * wscale[c];
        double r = bs[c] > 0 ? nearbyint((double)x[c] / (double)bs[c]) : (double)INFINITY;
        if (!(fabs(r) < 2147483647.0))
            goto done; /* stays float */
        q[c] = (int32_t)r;
    }
    char base[480], name[512];
    snprintf(base, sizeof base, "%s", g->values[bv].name);
    int32_t q_id, s_id, zp_id, dq;
    snprintf(name, sizeof name, "%s_quantized", base);
    OT_TRY(ot_quant_add_const(g, name, OT_DTYPE_INT32, &OC, 1, q, &q_id, err));
    snprintf(name, sizeof name, "%s_scale", base);
    OT_TRY(ot_quant_add_const(g, name, OT_DTYPE_FLOAT, &OC, 1, bs, &s_id, err));
    snprintf(name, sizeof name, "%s_zero_point", base);
    OT_TRY(ot_quant_add_const(g, name, OT_DTYPE_INT32, &OC, 1, zp, &zp_id, err));
    OT_TRY(add_dequant(g, base, q_id, s_id, zp_id, 0, bv, &dq, err));
    g->nodes[node].in[slot] = dq;
done:
    ot_free(q);
    ot_free(zp);
    ot_free(bs);
    return st;
}

static float act_scale(float amax)
{
    return amax > 0 && isfinite(amax) ? amax / 127.0f : 1.0f;
}

ot_status ot_int8_convert(ot_graph *g, const ot_calib_ranges *ranges, ot_quant_report *rep,
                          ot_err *err)
{
    ot_status st = OT_OK;
    bool *want = NULL, *replaced = NULL;
    float *wscale = NULL;
    memset(rep, 0, sizeof *rep);
    int64_t opset = ot_graph_opset(g, "");
    if (opset < 13)
        return ot_err_set(err, OT_ERR_UNSUPPORTED,
                          "int8 QDQ with per-channel weights needs opset 13 or later; the "
                          "model has opset %lld (convert with --opset 13)",
                          (long long)opset);
    int32_t n_values0 = g->n_values, n_nodes0 = g->n_nodes;
    want = ot_calloc((size_t)n_values0 + 1, sizeof *want);
    replaced = ot_calloc((size_t)n_values0 + 1, sizeof *replaced);
    if (!want || !replaced)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    ot_int8_activations(g, want);
    for (int32_t v = 0; v < n_values0; v++) {
        if (!want[v])
            continue;
        if (!ranges || v >= ranges->n_values || isnan(ranges->amax[v]))
            OT_FAIL(err, OT_ERR_ARG, "activation '%s' has no calibrated range",
                    g->values[v].name);
    }
    /* weights and biases first, while node inputs still name the activations */
    for (int32_t i = 0; i < n_nodes0; i++) {
        const ot_node *n = &g->nodes[i];
        if (n->n_in < 2 || !(is_type(n, "Conv") || is_type(n, "Gemm") || is_type(n, "MatMul")))
            continue;
        const ot_tensor *w = float_init(g, n->in[1]);
        int axis = w ? weight_axis(n, w) : -1;
        if (axis < 0)
            continue;
        int64_t OC = w->dims[axis];
        int32_t x = n->in[0], wv = n->in[1];
        ot_free(wscale);
        wscale = ot_malloc((size_t)OC * sizeof *wscale + 1);
        if (!wscale)
            OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
        OT_TRY(quantize_weight(g, i, 1, axis, wscale, err));
        replaced[wv] = true;
        rep->n_converted++;
        n = &g->nodes[i];
        bool plain_gemm = !is_type(n, "Gemm") || (ot_node_attr_float(n, "alpha", 1) == 1.0f &&
                                                  ot_node_attr_float(n, "beta", 1) == 1.0f);
        if (n->n_in >= 3 && n->in[2] >= 0 && !is_type(n, "MatMul") && plain_gemm &&
            x >= 0 && x < n_values0 && want[x]) {
            int32_t bv = n->in[2];
            OT_TRY(quantize_bias(g, i, 2, act_scale(ranges->amax[x]), wscale, OC, err));
            if (g->nodes[i].in[2] != bv)
                replaced[bv] = true;
        }
    }
    /* activations: one Q/DQ pair each, read by every reader */
    for (int32_t v = 0; v < n_values0; v++) {
        if (!want[v])
            continue;
        char base[480], name[512];
        snprintf(base, sizeof base, "%s", g->values[v].name);
        int32_t s_id, zp_id, q, dq;
        OT_TRY(add_scalar_consts(g, base, act_scale(ranges->amax[v]), &s_id, &zp_id, err));
        snprintf(name, sizeof name, "%s_quantized", base);
        OT_TRY(ot_quant_add_like(g, name, v, OT_DTYPE_INT8, &q, err));
        int32_t in[3] = { v, s_id, zp_id }, q_node;
        snprintf(name, sizeof name, "%s_QuantizeLinear", base);
        OT_TRY(cv_add_node(g, "QuantizeLinear", name, in, 3, &q, 1, &q_node, err));
        OT_TRY(add_dequant(g, base, q, s_id, zp_id, -1, v, &dq, err));
        int32_t dq_node = g->n_nodes - 1;
        for (int32_t i = 0; i < g->n_nodes; i++) {
            if (i == q_node || i == dq_node)
                continue;
            ot_node *n = &g->nodes[i];
            for (int k = 0; k < n->n_in; k++)
                if (n->in[k] == v)
                    n->in[k] = dq;
        }
        rep->n_kept++;
    }
    bool *cand = ot_realloc(replaced, (size_t)g->n_values + 1);
    if (!cand)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    replaced = cand;
    memset(replaced + n_values0, 0, (size_t)(g->n_values - n_values0));
    ot_quant_drop_inits(g, replaced);
    OT_TRY(ot_graph_sort(g, err));
done:
    ot_free(want);
    ot_free(replaced);
    ot_free(wscale);
    return st;
}

ot_status ot_convert_int8(ot_graph *g, const ot_convert_opts *opts, ot_err *err)
{
    if (!opts->ranges)
        return ot_err_set(err, OT_ERR_ARG, "int8 needs the activations' calibrated ranges "
                          "(--calib-data)");
    ot_quant_report r;
    ot_status st = ot_int8_convert(g, opts->ranges, &r, err);
    if (st == OT_OK)
        ot_log(OT_LOG_INFO, "int8: %d weights per channel, %d activations per tensor",
               r.n_converted, r.n_kept);
    return st;
}
