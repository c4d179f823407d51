/*
 * ref_conv.c: Conv as plain C loops, float32 and float64, spatial rank 1 to
 * 3 (1-D and 2-D run as 3-D with leading spatial dims of size 1), with
 * groups (depthwise included), strides, dilations, explicit pads and
 * auto_pad SAME_UPPER / SAME_LOWER / VALID, and the optional bias.
 *
 * Not here: spatial rank above 3, float16 and integer convolutions
 * (ConvInteger is another op). The loop order (kernel tap outside, output
 * row inside) keeps the innermost loop contiguous in y without a bounds test
 * per element; it is a reference, not a fast kernel.
 *
 * Reference: https://onnx.ai/onnx/operators/onnx__Conv.html
 */
#include "exec/cpu/ref_impl.h"

static int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }
static int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

void ot_ref_window(const ot_node *n, const ot_tensor *x, const int64_t *kernel,
                   const ot_tensor *y, ot_ref_geom *q)
{
    int k = x->ndim - 2;
    size_t n_s = 0, n_d = 0, n_p = 0;
    const int64_t *s = ot_node_attr_ints(n, "strides", &n_s);
    const int64_t *d = ot_node_attr_ints(n, "dilations", &n_d);
    const int64_t *p = ot_node_attr_ints(n, "pads", &n_p);
    const char *auto_pad = ot_node_attr_string(n, "auto_pad", "NOTSET");
    bool upper = strcmp(auto_pad, "SAME_UPPER") == 0, lower = strcmp(auto_pad, "SAME_LOWER") == 0;
    bool valid = strcmp(auto_pad, "VALID") == 0;
    OT_ASSERT(k >= 1 && k <= 3);
    q->N = x->dims[0];
    q->C = x->dims[1];
    for (int i = 0; i < 3; i++) {
        q->in[i] = q->k[i] = q->o[i] = q->s[i] = q->d[i] = 1;
        q->pb[i] = q->pe[i] = 0;
    }
    q->M = 0;
    q->G = 1;
    for (int i = 0; i < k; i++) {
        int j = 3 - k + i;
        q->in[j] = x->dims[2 + i];
        q->k[j] = kernel[i];
        q->o[j] = y->dims[2 + i];
        q->s[j] = s && n_s == (size_t)k ? s[i] : 1;
        q->d[j] = d && n_d == (size_t)k ? d[i] : 1;
        if (upper || lower) {
            int64_t total = (q->o[j] - 1) * q->s[j] + (q->k[j] - 1) * q->d[j] + 1 - q->in[j];
            if (total < 0)
                total = 0;
            q->pb[j] = upper ? total / 2 : total - total / 2;
            q->pe[j] = total - q->pb[j];
        } else if (!valid && p && n_p == 2 * (size_t)k) {
            q->pb[j] = p[i];
            q->pe[j] = p[k + i];
        }
    }
}

/* y[n, m] = b[m] + sum over c in m's group, taps t of w[m, c, t] * x[n, c, at(t)] */
#define CONV_IMPL(NAME, T)                                                                      \
    static void NAME(const ot_ref_geom *q, const T *x, const T *w, const T *b, T *y)            \
    {                                                                                           \
        int64_t isp = q->in[0] * q->in[1] * q->in[2], osp = q->o[0] * q->o[1] * q->o[2];        \
        int64_t ksp = q->k[0] * q->k[1] * q->k[2], Cg = q->C / q->G, Mg = q->M / q->G;          \
        for (int64_t nn = 0; nn < q->N; nn++) {                                                 \
            for (int64_t m = 0; m < q->M; m++) {                                                \
                int64_t grp = m / Mg;                                                           \
                T *yp = y + (nn * q->M + m) * osp;                                              \
                T bias = b ? b[m] : (T)0;                                                       \
                for (int64_t i = 0; i < osp; i++)                                               \
                    yp[i] = bias;                                                               \
                for (int64_t c = 0; c < Cg; c++) {                                              \
                    const T *xc = x + (nn * q->C + grp * Cg + c) * isp;                         \
                    const T *wc = w + (m * Cg + c) * ksp;                                       \
                    for (int64_t kd = 0; kd < q->k[0]; kd++)                                    \
                        for (int64_t kh = 0; kh < q->k[1]; kh++)                                \
                            for (int64_t kw = 0; kw < q->k[2]; kw++) {                          \
                                T wv = wc[(kd * q->k[1] + kh) * q->k[2] + kw];                  \
                                int64_t off = kw * q->d[2] - q->pb[2];                          \
                                int64_t lo = ceil_div(-off, q->s[2]);                           \
                                int64_t hi = floor_div(q->in[2] - 1 - off, q->s[2]) + 1;        \
                                lo = lo < 0 ? 0 : lo;                                           \
                                hi = hi > q->o[2] ? q->o[2] : hi;                               \
                                for (int64_t od = 0; od < q->o[0]; od++) {                      \
                                    int64_t id = od * q->s[0] - q->pb[0] + kd * q->d[0];        \
                                    if (id < 0 || id >= q->in[0])                               \
                                        continue;                                               \
                                    for (int64_t oh = 0; oh < q->o[1]; oh++) {                  \
                                        int64_t ih = oh * q->s[1] - q->pb[1] + kh * q->d[1];    \
                                        if (ih < 0 || ih >= q->in[1])                           \
                                            continue;                                           \
                                        const T *xr = xc + (id * q->in[1] + ih) * q->in[2];     \
                                        T *yr = yp + (od * q->o[1] + oh) * q->o[2];             \
                                        if (q->s[2] == 1) /* contiguous: vectorises */          \
                                            for (int64_t ow = lo; ow < hi; ow++)                \
                                                yr[ow] += wv * xr[ow + off];                    \
                                        else                                                    \
                                            for (int64_t ow = lo; ow < hi; ow++)                \
                                                yr[ow] += wv * xr[ow * q->s[2] + off];          \
                                    }                                                           \
                                }                                                               \
                            }                                                                   \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
    }

CONV_IMPL(conv_f32, float)
CONV_IMPL(conv_f64, double)

bool ot_ref_conv_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                          const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *x = ot_ref_in(n, in, 0), *w = ot_ref_in(n, in, 1), *b = ot_ref_in(n, in, 2);
    const ot_tensor *y = ot_ref_cout(n, out, 0);
    if (!x || !w || !y) {
        *why = "Conv: X, W and Y are required";
        return false;
    }
    if (x->dtype != OT_DTYPE_FLOAT && x->dtype != OT_DTYPE_DOUBLE) {
        *why = "Conv: only float and double are supported";
        return false;
    }
    if (w->dtype != x->dtype || y->dtype != x->dtype || (b && b->dtype != x->dtype)) {
        *why = "Conv: X, W, B and Y must have one dtype";
        return false;
    }
    if (x->ndim < 3 || x->ndim > 5) {
        *why = "Conv: only 1-D, 2-D and 3-D convolutions are supported";
        return false;
    }
    int64_t G = ot_node_attr_int(n, "group", 1);
    if (w->ndim != x->ndim || y->ndim != x->ndim || G < 1 || x->dims[1] != w->dims[1] * G ||
        w->dims[0] % G != 0 || y->dims[1] != w->dims[0] ||
        (b && ot_tensor_numel(b) != w->dims[0])) {
        *why = "Conv: shapes of X, W, B and Y disagree";
        return false;
    }
    return true;
}

/* x: (N, C, D1..Dk)  w: (M, C/group, K1..Kk)  b: (M)  ->  y: (N, M, O1..Ok) */
ot_status ot_ref_conv(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                      ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_conv_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *x = in[0], *w = in[1], *b = ot_ref_in(n, in, 2);
    ot_tensor *y = out[0];
    OT_ASSERT(y->dims[0] == x->dims[0]);
    ot_ref_geom q;
    ot_ref_window(n, x, w->dims + 2, y, &q);
    q.M = w->dims[0];
    q.G = ot_node_attr_int(n, "group", 1);
    if (ot_tensor_numel(y) == 0)
        return OT_OK;
    if (x->dtype == OT_DTYPE_FLOAT)
        conv_f32(&q, x->data, w->data, b ? b->data : NULL, y->data);
    else
        conv_f64(&q, x->data, w->data, b ? b->data : NULL, y->data);
    return OT_OK;
}
