/*
 * ref_norm.c: BatchNormalization, Softmax, LogSoftmax and LRN as plain C
 * loops on float types (float, double, float16, bfloat16), accumulating in
 * double.
 *
 * BatchNormalization: inference, y = scale * (x - mean) / sqrt(var + eps) + B
 * per channel of (N, C, D1, ...); spatial=0 with per-channel (C) parameters
 * is the same computation. From opset 14, training_mode=1 normalises with the
 * batch statistics (population variance) and writes the running statistics
 * running = input * momentum + batch * (1 - momentum), as ONNX's reference
 * does. Not here: the extra training outputs of opsets before 14.
 * Softmax/LogSoftmax: before opset 13 the input is coerced to 2-D at `axis`
 * (default 1) and normalised along its second dim; from 13 along `axis`
 * (default -1). Both subtract the maximum first.
 * LRN: y = x / (bias + alpha / size * sum of x^2 over channels
 * c - floor((size-1)/2) .. c + ceil((size-1)/2))^beta.
 *
 * References: https://onnx.ai/onnx/operators/onnx__BatchNormalization.html,
 * https://onnx.ai/onnx/operators/onnx__Softmax.html,
 * https://onnx.ai/onnx/operators/onnx__LRN.html
 */
#include "exec/cpu/ref_impl.h"

/* ------------------------------------------------------------- BatchNorm */

static bool bn_training(const ot_node *n)
{
    return n->opset >= 14 && ot_node_attr_int(n, "training_mode", 0) != 0;
}

bool ot_ref_batchnorm_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                               const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *x = ot_ref_in(n, in, 0);
    const ot_tensor *y = ot_ref_cout(n, out, 0);
    if (!x || !y || x->ndim < 2 || y->dtype != x->dtype) {
        *why = "BatchNormalization: X must be (N, C, ...) and Y like X";
        return false;
    }
    if (!ot_ref_is_float(x->dtype)) {
        *why = "BatchNormalization: only float, double, float16 and bfloat16 are supported";
        return false;
    }
    for (int i = 1; i < 5; i++) {
        const ot_tensor *p = ot_ref_in(n, in, i);
        if (!p || !ot_ref_is_float(p->dtype) || ot_tensor_numel(p) != x->dims[1]) {
            *why = "BatchNormalization: scale, B, mean and var must be float tensors of (C)";
            return false;
        }
    }
    for (int i = 1; i < n->n_out; i++) {
        const ot_tensor *s = ot_ref_cout(n, out, i);
        if (!s)
            continue;
        if (!bn_training(n) || i > 2) {
            *why = "BatchNormalization: training outputs are supported only with opset 14+ "
                   "training_mode=1 (running mean and var)";
            return false;
        }
        if (!ot_ref_is_float(s->dtype) || ot_tensor_numel(s) != x->dims[1]) {
            *why = "BatchNormalization: running statistics must be float tensors of (C)";
            return false;
        }
    }
    return true;
}

/* x: (N, C, D1..)  scale, b, mean, var: (C)  ->  y like x [, running mean, var: (C)] */
ot_status ot_ref_batchnorm(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                           ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_batchnorm_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *x = in[0], *scale = in[1], *bias = in[2], *mean = in[3], *var = in[4];
    ot_tensor *y = out[0];
    double eps = ot_node_attr_float(n, "epsilon", 1e-5f);
    double momentum = ot_node_attr_float(n, "momentum", 0.9f);
    bool training = bn_training(n);
    int64_t N = x->dims[0], C = x->dims[1], sp = ot_ref_prod(x, 2, x->ndim);
    for (int64_t c = 0; c < C; c++) {
        double m = ot_tensor_get_f64(mean, c), v = ot_tensor_get_f64(var, c);
        if (training) {
            double s1 = 0, s2 = 0, cnt = (double)(N * sp);
            for (int64_t nn = 0; nn < N; nn++)
                for (int64_t i = 0; i < sp; i++)
                    s1 += ot_ref_ld(x->dtype, x->data, (nn * C + c) * sp + i);
            double bm = cnt > 0 ? s1 / cnt : 0.0;
            for (int64_t nn = 0; nn < N; nn++)
                for (int64_t i = 0; i < sp; i++) {
                    double dv = ot_ref_ld(x->dtype, x->data, (nn * C + c) * sp + i) - bm;
                    s2 += dv * dv;
                }
            double bv = cnt > 0 ? s2 / cnt : 0.0;
            ot_tensor *rm = ot_ref_out(n, out, 1), *rv = ot_ref_out(n, out, 2);
            if (rm)
                ot_ref_st(rm->dtype, rm->data, c, m * momentum + bm * (1 - momentum));
            if (rv)
                ot_ref_st(rv->dtype, rv->data, c, v * momentum + bv * (1 - momentum));
            m = bm;
            v = bv;
        }
        double a = ot_tensor_get_f64(scale, c) / sqrt(v + eps);
        double b = ot_tensor_get_f64(bias, c) - m * a;
        for (int64_t nn = 0; nn < N; nn++) {
            int64_t base = (nn * C + c) * sp;
            if (x->dtype == OT_DTYPE_FLOAT) {
                const float *xp = (const float *)x->data + base;
                float *yp = (float *)y->data + base, fa = (float)a, fb = (float)b;
                for (int64_t i = 0; i < sp; i++)
                    yp[i] = xp[i] * fa + fb;
            } else {
                for (int64_t i = 0; i < sp; i++)
                    ot_ref_st(y->dtype, y->data, base + i,
                              ot_ref_ld(x->dtype, x->data, base + i) * a + b);
            }
        }
    }
    return OT_OK;
}

/* ---------------------------------------------------------------- Softmax */

/* Splits x into (outer, L, inner): the normalised axis has L elements at
   stride inner. False when the axis is out of range. */
static bool softmax_split(const ot_node *n, const ot_tensor *x, int64_t *outer, int64_t *L,
                          int64_t *inner)
{
    int r = x->ndim;
    int64_t axis = ot_node_attr_int(n, "axis", n->opset >= 13 ? -1 : 1);
    if (r == 0) { /* a scalar: one element along a length-1 axis */
        *outer = *L = *inner = 1;
        return axis == 0 || axis == -1;
    }
    if (axis < 0)
        axis += r;
    if (n->opset < 13) {
        if (axis < 0 || axis > r)
            return false;
        *outer = ot_ref_prod(x, 0, (int)axis);
        *L = ot_ref_prod(x, (int)axis, r);
        *inner = 1;
    } else {
        if (axis < 0 || axis >= r)
            return false;
        *outer = ot_ref_prod(x, 0, (int)axis);
        *L = x->dims[axis];
        *inner = ot_ref_prod(x, (int)axis + 1, r);
    }
    return true;
}

static bool softmax_supports_common(const ot_node *n, const ot_tensor *const *in,
                                    const ot_tensor *const *out, const char **why)
{
    const ot_tensor *x = ot_ref_in(n, in, 0);
    const ot_tensor *y = ot_ref_cout(n, out, 0);
    int64_t a, b, c;
    if (!x || !y || y->dtype != x->dtype || ot_tensor_numel(y) != ot_tensor_numel(x)) {
        *why = "Softmax: Y must be like X";
        return false;
    }
    if (!ot_ref_is_float(x->dtype)) {
        *why = "Softmax: only float, double, float16 and bfloat16 are supported";
        return false;
    }
    if (!softmax_split(n, x, &a, &b, &c)) {
        *why = "Softmax: axis out of range";
        return false;
    }
    return true;
}

bool ot_ref_softmax_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                             const ot_tensor *const *out, const char **why)
{
    (void)g;
    return softmax_supports_common(n, in, out, why);
}

bool ot_ref_logsoftmax_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                                const ot_tensor *const *out, const char **why)
{
    (void)g;
    return softmax_supports_common(n, in, out, why);
}

/* x  ->  y like x: exp(x - max) / sum, or x - max - log(sum), along the axis */
static ot_status softmax_run(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                             ot_tensor *const *out, bool is_log, ot_err *err)
{
    const char *why = NULL;
    (void)g;
    if (!softmax_supports_common(n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *x = in[0];
    ot_tensor *y = out[0];
    ot_dtype dt = x->dtype;
    int64_t outer, L, inner;
    softmax_split(n, x, &outer, &L, &inner);
    if (ot_tensor_numel(x) == 0)
        return OT_OK;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * L * inner + i;
            double mx = -HUGE_VAL, sum = 0;
            for (int64_t l = 0; l < L; l++) {
                double v = ot_ref_ld(dt, x->data, base + l * inner);
                mx = v > mx ? v : mx;
            }
            if (mx == -HUGE_VAL) /* all -inf: avoid inf - inf */
                mx = 0;
            for (int64_t l = 0; l < L; l++)
                sum += exp(ot_ref_ld(dt, x->data, base + l * inner) - mx);
            double lsum = log(sum);
            for (int64_t l = 0; l < L; l++) {
                double v = ot_ref_ld(dt, x->data, base + l * inner) - mx;
                ot_ref_st(dt, y->data, base + l * inner, is_log ? v - lsum : exp(v) / sum);
            }
        }
    return OT_OK;
}

ot_status ot_ref_softmax(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                         ot_tensor *const *out, ot_err *err)
{
    return softmax_run(g, n, in, out, false, err);
}

ot_status ot_ref_logsoftmax(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                            ot_tensor *const *out, ot_err *err)
{
    return softmax_run(g, n, in, out, true, err);
}

/* -------------------------------------------------------------------- LRN */

bool ot_ref_lrn_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                         const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *x = ot_ref_in(n, in, 0);
    const ot_tensor *y = ot_ref_cout(n, out, 0);
    if (!x || !y || x->ndim < 2 || y->dtype != x->dtype ||
        ot_tensor_numel(y) != ot_tensor_numel(x)) {
        *why = "LRN: X must be (N, C, ...) and Y like X";
        return false;
    }
    if (!ot_ref_is_float(x->dtype)) {
        *why = "LRN: only float, double, float16 and bfloat16 are supported";
        return false;
    }
    if (ot_node_attr_int(n, "size", 0) < 1) {
        *why = "LRN: attribute 'size' must be positive";
        return false;
    }
    return true;
}

/* x: (N, C, D1..)  ->  y like x */
ot_status ot_ref_lrn(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                     ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_lrn_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *x = in[0];
    ot_tensor *y = out[0];
    ot_dtype dt = x->dtype;
    double alpha = ot_node_attr_float(n, "alpha", 1e-4f);
    double beta = ot_node_attr_float(n, "beta", 0.75f);
    double bias = ot_node_attr_float(n, "bias", 1.0f);
    int64_t size = ot_node_attr_int(n, "size", 1);
    int64_t before = (size - 1) / 2, after = size - 1 - before; /* floor, ceil */
    int64_t N = x->dims[0], C = x->dims[1], sp = ot_ref_prod(x, 2, x->ndim);
    for (int64_t nn = 0; nn < N; nn++)
        for (int64_t c = 0; c < C; c++) {
            int64_t lo = c - before < 0 ? 0 : c - before;
            int64_t hi = c + after >= C ? C - 1 : c + after;
            for (int64_t i = 0; i < sp; i++) {
                double sq = 0;
                for (int64_t cc = lo; cc <= hi; cc++) {
                    double v = ot_ref_ld(dt, x->data, (nn * C + cc) * sp + i);
                    sq += v * v;
                }
                int64_t at = (nn * C + c) * sp + i;
                double v = ot_ref_ld(dt, x->data, at);
                ot_ref_st(dt, y->data, at, v / pow(bias + alpha / (double)size * sq, beta));
            }
        }
    return OT_OK;
}
