/*
 * ref_quant.c: plain C kernels of the quantisation ops (src/ops/quant_ops.c):
 * QuantizeLinear, DequantizeLinear, FakeQuant, FakeQuantGrad. Per tensor or
 * per slice along an axis; rounding half to even (nearbyint in the default
 * rounding mode), saturating to the integer type.
 */
#include "exec/cpu/ref_impl.h"

/* How a scale tensor applies to x: one value (n_ch 1) or one per slice of
   x along `axis` (channel of element i: (i / inner) % n_ch). */
typedef struct q_layout {
    int64_t n_ch, inner;
} q_layout;

static bool layout_of(const ot_node *n, const ot_tensor *x, const ot_tensor *s, int64_t def_axis,
                      q_layout *l)
{
    l->n_ch = 1;
    l->inner = 1;
    int64_t ns = s ? ot_tensor_numel(s) : 1;
    if (ns == 1)
        return true;
    int64_t axis = ot_node_attr_int(n, "axis", def_axis);
    if (axis < 0)
        axis += x->ndim;
    if (axis < 0 || axis >= x->ndim || x->dims[axis] != ns)
        return false;
    l->n_ch = ns;
    l->inner = ot_ref_prod(x, (int)axis + 1, x->ndim);
    return true;
}

static int64_t chan(const q_layout *l, int64_t i)
{
    return l->n_ch == 1 ? 0 : (i / l->inner) % l->n_ch;
}

static void q_range(ot_dtype t, double *lo, double *hi)
{
    switch (t) {
    case OT_DTYPE_INT8: *lo = -128; *hi = 127; break;
    case OT_DTYPE_UINT8: *lo = 0; *hi = 255; break;
    case OT_DTYPE_INT16: *lo = -32768; *hi = 32767; break;
    case OT_DTYPE_UINT16: *lo = 0; *hi = 65535; break;
    default: *lo = -2147483648.0; *hi = 2147483647.0; break;
    }
}

static bool qdq_supports(const ot_node *n, const ot_tensor *const *in, const ot_tensor *const *out,
                         bool quantize, const char **why)
{
    const ot_tensor *x = ot_ref_in(n, in, 0), *s = ot_ref_in(n, in, 1), *zp = ot_ref_in(n, in, 2);
    const ot_tensor *y = ot_ref_cout(n, out, 0);
    q_layout l;
    if (!x || !s || !y || !ot_ref_is_float(s->dtype) ||
        !ot_ref_is_float(quantize ? x->dtype : y->dtype) ||
        (quantize ? !ot_ref_is_int(y->dtype) : !ot_ref_is_int(x->dtype))) {
        *why = "QuantizeLinear/DequantizeLinear: float and integer tensors expected";
        return false;
    }
    if (!layout_of(n, x, s, 1, &l) || (zp && ot_tensor_numel(zp) != ot_tensor_numel(s))) {
        *why = "QuantizeLinear/DequantizeLinear: the scale and zero point must be scalars or "
               "one per slice along axis";
        return false;
    }
    if (ot_node_attr_int(n, "block_size", 0) != 0) {
        *why = "blocked quantisation is not supported";
        return false;
    }
    return true;
}

bool ot_ref_quantize_linear_supports(const ot_graph *g, const ot_node *n,
                                     const ot_tensor *const *in, const ot_tensor *const *out,
                                     const char **why)
{
    (void)g;
    return qdq_supports(n, in, out, true, why);
}

bool ot_ref_dequantize_linear_supports(const ot_graph *g, const ot_node *n,
                                       const ot_tensor *const *in, const ot_tensor *const *out,
                                       const char **why)
{
    (void)g;
    return qdq_supports(n, in, out, false, why);
}

ot_status ot_ref_quantize_linear(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                                 ot_tensor *const *out, ot_err *err)
{
    (void)g;
    (void)err;
    const ot_tensor *x = in[0], *s = in[1], *zp = ot_ref_in(n, in, 2);
    ot_tensor *y = out[0];
    q_layout l;
    layout_of(n, x, s, 1, &l);
    double lo, hi;
    q_range(y->dtype, &lo, &hi);
    int64_t numel = ot_tensor_numel(x);
    for (int64_t i = 0; i < numel; i++) {
        int64_t c = chan(&l, i);
        double sc = ot_ref_ld(s->dtype, s->data, c);
        double z = zp ? ot_ref_ld(zp->dtype, zp->data, c) : 0;
        double q = nearbyint(ot_ref_ld(x->dtype, x->data, i) / sc) + z;
        ot_ref_st(y->dtype, y->data, i, q < lo ? lo : q > hi ? hi : q);
    }
    return OT_OK;
}

ot_status ot_ref_dequantize_linear(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                                   ot_tensor *const *out, ot_err *err)
{
    (void)g;
    (void)err;
    const ot_tensor *x = in[0], *s = in[1], *zp = ot_ref_in(n, in, 2);
    ot_tensor *y = out[0];
    q_layout l;
    layout_of(n, x, s, 1, &l);
    int64_t numel = ot_tensor_numel(x);
    for (int64_t i = 0; i < numel; i++) {
        int64_t c = chan(&l, i);
        double z = zp ? ot_ref_ld(zp->dtype, zp->data, c) : 0;
        ot_ref_st(y->dtype, y->data, i,
                  (ot_ref_ld(x->dtype, x->data, i) - z) * ot_ref_ld(s->dtype, s->data, c));
    }
    return OT_OK;
}

/* FakeQuant's layout: per channel along axis (dynamic, per_channel=1, or a
   1-D scale input), else per tensor. */
static bool fq_layout(const ot_node *n, const ot_tensor *x, const ot_tensor *s, q_layout *l)
{
    if (ot_node_attr_int(n, "dynamic", 0)) {
        l->n_ch = 1;
        l->inner = 1;
        if (!ot_node_attr_int(n, "per_channel", 0))
            return true;
        int64_t axis = ot_node_attr_int(n, "axis", 0);
        if (axis < 0)
            axis += x->ndim;
        if (axis < 0 || axis >= x->ndim)
            return false;
        l->n_ch = x->dims[axis];
        l->inner = ot_ref_prod(x, (int)axis + 1, x->ndim);
        return true;
    }
    return s && layout_of(n, x, s, 0, l);
}

static bool fq_supports(const ot_node *n, const ot_tensor *x, const ot_tensor *s,
                        const ot_tensor *y, const char **why)
{
    q_layout l;
    if (!x || !y || x->dtype != OT_DTYPE_FLOAT || y->dtype != OT_DTYPE_FLOAT ||
        (s && s->dtype != OT_DTYPE_FLOAT) || !fq_layout(n, x, s, &l) ||
        ot_node_attr_int(n, "qmin", -127) >= ot_node_attr_int(n, "qmax", 127)) {
        *why = "FakeQuant: float tensors, a scale per tensor or per slice along axis, "
               "qmin < qmax";
        return false;
    }
    return true;
}

bool ot_ref_fake_quant_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                                const ot_tensor *const *out, const char **why)
{
    (void)g;
    return fq_supports(n, ot_ref_in(n, in, 0), ot_ref_in(n, in, 1), ot_ref_cout(n, out, 0), why);
}

bool ot_ref_fake_quant_grad_supports(const ot_graph *g, const ot_node *n,
                                     const ot_tensor *const *in, const ot_tensor *const *out,
                                     const char **why)
{
    (void)g;
    const ot_tensor *dy = ot_ref_in(n, in, 0), *x = ot_ref_in(n, in, 1);
    if (!dy || !x || dy->dtype != OT_DTYPE_FLOAT || ot_tensor_numel(dy) != ot_tensor_numel(x)) {
        *why = "FakeQuantGrad: dY and X of one shape, float";
        return false;
    }
    return fq_supports(n, x, ot_ref_in(n, in, 2), ot_ref_cout(n, out, 0), why);
}

/* The scale of channel c: the input's, or max |x| / qmax over its slices
   (outer x inner elements). */
static float fq_scale(const ot_node *n, const ot_tensor *x, const ot_tensor *s, const q_layout *l,
                      int64_t c, int64_t outer, double qmax)
{
    if (!ot_node_attr_int(n, "dynamic", 0))
        return ((const float *)s->data)[l->n_ch == 1 ? 0 : c];
    const float *xp = x->data;
    float m = 0;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < l->inner; k++) {
            float a = fabsf(xp[(o * l->n_ch + c) * l->inner + k]);
            m = a > m ? a : m;
        }
    return m > 0 ? (float)((double)m / qmax) : 1.0f;
}

ot_status ot_ref_fake_quant(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                            ot_tensor *const *out, ot_err *err)
{
    (void)g;
    (void)err;
    const ot_tensor *x = in[0], *s = ot_ref_in(n, in, 1);
    q_layout l;
    fq_layout(n, x, s, &l);
    double qmin = (double)ot_node_attr_int(n, "qmin", -127);
    double qmax = (double)ot_node_attr_int(n, "qmax", 127);
    const float *xp = x->data;
    float *yp = out[0]->data;
    int64_t numel = ot_tensor_numel(x);
    /* channel-major walk: for c, the elements of its slices */
    int64_t outer = numel / (l.n_ch * l.inner);
#pragma omp parallel for if (numel > 65536 && l.n_ch > 1)
    for (int64_t c = 0; c < l.n_ch; c++) {
        float sc = fq_scale(n, x, s, &l, c, outer, qmax);
        for (int64_t o = 0; o < outer; o++)
            for (int64_t k = 0; k < l.inner; k++) {
                int64_t i = (o * l.n_ch + c) * l.inner + k;
                double q = nearbyint((double)xp[i] / (double)sc);
                q = q < qmin ? qmin : q > qmax ? qmax : q;
                yp[i] = (float)(q * (double)sc);
            }
    }
    return OT_OK;
}

ot_status ot_ref_fake_quant_grad(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                                 ot_tensor *const *out, ot_err *err)
{
    (void)g;
    (void)err;
    const ot_tensor *dy = in[0], *x = in[1], *s = ot_ref_in(n, in, 2);
    q_layout l;
    fq_layout(n, x, s, &l);
    double qmin = (double)ot_node_attr_int(n, "qmin", -127);
    double qmax = (double)ot_node_attr_int(n, "qmax", 127);
    const float *dyp = dy->data, *xp = x->data;
    float *dxp = out[0]->data;
    int64_t numel = ot_tensor_numel(x);
    int64_t outer = numel / (l.n_ch * l.inner);
#pragma omp parallel for if (numel > 65536 && l.n_ch > 1)
    for (int64_t c = 0; c < l.n_ch; c++) {
        float sc = fq_scale(n, x, s, &l, c, outer, qmax);
        double lo = qmin * (double)sc, hi = qmax * (double)sc;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t k = 0; k < l.inner; k++) {
                int64_t i = (o * l.n_ch + c) * l.inner + k;
                dxp[i] = (double)xp[i] >= lo && (double)xp[i] <= hi ? dyp[i] : 0.0f;
            }
    }
    return OT_OK;
}
