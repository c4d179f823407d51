/*
 * ref_pool.c: MaxPool, AveragePool, GlobalAveragePool and GlobalMaxPool as
 * plain C loops, spatial rank 1 to 3 for the windowed pools and any rank for
 * the global ones.
 *
 * MaxPool: float, double, float16, int8, uint8; dilations, ceil_mode, pads,
 * auto_pad; the optional Indices output (opset 8+) is the flattened index
 * into X (batch and channel included), row-major for storage_order 0 and
 * column-major over the spatial dims for 1. Ties keep the first element in
 * row-major window order; padding never wins.
 * AveragePool: float types; pads never enter the sum. The divisor counts the
 * window's positions inside X, or with count_include_pad inside X plus its
 * explicit (or SAME) pads; positions that ceil_mode adds past the padded
 * input are never counted, as in ONNX's reference and PyTorch.
 *
 * Not here: windowed pools of spatial rank above 3, LpPool.
 *
 * References: https://onnx.ai/onnx/operators/onnx__MaxPool.html,
 * https://onnx.ai/onnx/operators/onnx__AveragePool.html
 */
#include "exec/cpu/ref_impl.h"

static bool pool_dtype_ok(ot_dtype t, bool is_max)
{
    return ot_ref_is_float(t) || (is_max && (t == OT_DTYPE_INT8 || t == OT_DTYPE_UINT8));
}

static bool window_supports(const ot_node *n, const ot_tensor *const *in,
                            const ot_tensor *const *out, bool is_max, const char **why)
{
    const ot_tensor *x = ot_ref_in(n, in, 0);
    const ot_tensor *y = ot_ref_cout(n, out, 0);
    const ot_tensor *idx = ot_ref_cout(n, out, 1);
    size_t n_ks = 0;
    const int64_t *ks = ot_node_attr_ints(n, "kernel_shape", &n_ks);
    if (!x || !y) {
        *why = is_max ? "MaxPool: X and Y are required" : "AveragePool: X and Y are required";
        return false;
    }
    if (!pool_dtype_ok(x->dtype, is_max) || y->dtype != x->dtype) {
        *why = is_max ? "MaxPool: only float, double, float16, bfloat16, int8 and uint8 are "
                        "supported"
                      : "AveragePool: only float, double, float16 and bfloat16 are supported";
        return false;
    }
    if (x->ndim < 3 || x->ndim > 5 || y->ndim != x->ndim) {
        *why = is_max ? "MaxPool: only 1-D, 2-D and 3-D pooling is supported"
                      : "AveragePool: only 1-D, 2-D and 3-D pooling is supported";
        return false;
    }
    if (!ks || n_ks != (size_t)(x->ndim - 2)) {
        *why = is_max ? "MaxPool: kernel_shape does not match the rank of X"
                      : "AveragePool: kernel_shape does not match the rank of X";
        return false;
    }
    if (idx && (idx->dtype != OT_DTYPE_INT64 || idx->ndim != y->ndim)) {
        *why = "MaxPool: Indices must be int64 shaped like Y";
        return false;
    }
    if (y->dims[0] != x->dims[0] || y->dims[1] != x->dims[1]) {
        *why = is_max ? "MaxPool: Y's batch and channels differ from X's"
                      : "AveragePool: Y's batch and channels differ from X's";
        return false;
    }
    return true;
}

bool ot_ref_maxpool_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                             const ot_tensor *const *out, const char **why)
{
    (void)g;
    return window_supports(n, in, out, true, why);
}

bool ot_ref_avgpool_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                             const ot_tensor *const *out, const char **why)
{
    (void)g;
    return window_supports(n, in, out, false, why);
}

/* The taps t in [0, k) whose position o*s - pb + t*d lies in [lo, hi): the
   first in *t0, the count returned. */
static int64_t taps_in(const ot_ref_geom *q, int dim, int64_t o, int64_t lo, int64_t hi,
                       int64_t *t0)
{
    int64_t start = o * q->s[dim] - q->pb[dim], first = -1, count = 0;
    for (int64_t t = 0; t < q->k[dim]; t++) {
        int64_t pos = start + t * q->d[dim];
        if (pos >= lo && pos < hi) {
            if (first < 0)
                first = t;
            count++;
        }
    }
    *t0 = first < 0 ? 0 : first;
    return count;
}

/* x: (N, C, D1..Dk)  ->  y: (N, C, O1..Ok) [, indices: int64 like y] */
ot_status ot_ref_maxpool(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                         ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_maxpool_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *x = in[0];
    ot_tensor *y = out[0], *idx = ot_ref_out(n, out, 1);
    ot_dtype dt = x->dtype;
    ot_ref_geom q;
    ot_ref_window(n, x, ot_node_attr_ints(n, "kernel_shape", &(size_t){ 0 }), y, &q);
    bool col_major = n->opset >= 8 && ot_node_attr_int(n, "storage_order", 0) != 0;
    int64_t NC = x->dims[0] * x->dims[1];
    int64_t isp = q.in[0] * q.in[1] * q.in[2], osp = q.o[0] * q.o[1] * q.o[2];
    if (NC * osp == 0)
        return OT_OK;
    for (int64_t nc = 0; nc < NC; nc++) {
        for (int64_t od = 0; od < q.o[0]; od++)
            for (int64_t oh = 0; oh < q.o[1]; oh++)
                for (int64_t ow = 0; ow < q.o[2]; ow++) {
                    double best = -HUGE_VAL;
                    int64_t best_at = -1, best_pos[3] = { 0, 0, 0 };
                    for (int64_t kd = 0; kd < q.k[0]; kd++) {
                        int64_t id = od * q.s[0] - q.pb[0] + kd * q.d[0];
                        if (id < 0 || id >= q.in[0])
                            continue;
                        for (int64_t kh = 0; kh < q.k[1]; kh++) {
                            int64_t ih = oh * q.s[1] - q.pb[1] + kh * q.d[1];
                            if (ih < 0 || ih >= q.in[1])
                                continue;
                            for (int64_t kw = 0; kw < q.k[2]; kw++) {
                                int64_t iw = ow * q.s[2] - q.pb[2] + kw * q.d[2];
                                if (iw < 0 || iw >= q.in[2])
                                    continue;
                                int64_t at = nc * isp + (id * q.in[1] + ih) * q.in[2] + iw;
                                double v = ot_ref_ld(dt, x->data, at);
                                if (best_at < 0 || v > best) {
                                    best = v;
                                    best_at = at;
                                    best_pos[0] = id, best_pos[1] = ih, best_pos[2] = iw;
                                }
                            }
                        }
                    }
                    int64_t o = nc * osp + (od * q.o[1] + oh) * q.o[2] + ow;
                    ot_ref_st(dt, y->data, o, best_at < 0 ? 0.0 : best);
                    if (idx) {
                        int64_t at = best_at < 0 ? 0 : best_at;
                        if (col_major && best_at >= 0)
                            at = nc * isp + best_pos[0] + best_pos[1] * q.in[0] +
                                 best_pos[2] * q.in[0] * q.in[1];
                        ((int64_t *)idx->data)[o] = at;
                    }
                }
    }
    return OT_OK;
}

/* x: (N, C, D1..Dk)  ->  y: (N, C, O1..Ok) */
ot_status ot_ref_avgpool(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                         ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_avgpool_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *x = in[0];
    ot_tensor *y = out[0];
    ot_dtype dt = x->dtype;
    ot_ref_geom q;
    ot_ref_window(n, x, ot_node_attr_ints(n, "kernel_shape", &(size_t){ 0 }), y, &q);
    bool include_pad = n->opset >= 7 && ot_node_attr_int(n, "count_include_pad", 0) != 0;
    int64_t NC = x->dims[0] * x->dims[1];
    int64_t isp = q.in[0] * q.in[1] * q.in[2], osp = q.o[0] * q.o[1] * q.o[2];
    if (NC * osp == 0)
        return OT_OK;
    for (int64_t od = 0; od < q.o[0]; od++)
        for (int64_t oh = 0; oh < q.o[1]; oh++)
            for (int64_t ow = 0; ow < q.o[2]; ow++) {
                int64_t o3[3] = { od, oh, ow }, t0[3], cnt[3], div = 1;
                for (int i = 0; i < 3; i++) {
                    cnt[i] = taps_in(&q, i, o3[i], 0, q.in[i], &t0[i]);
                    if (include_pad) {
                        int64_t unused;
                        div *= taps_in(&q, i, o3[i], -q.pb[i], q.in[i] + q.pe[i], &unused);
                    } else {
                        div *= cnt[i];
                    }
                }
                for (int64_t nc = 0; nc < NC; nc++) {
                    double sum = 0;
                    for (int64_t kd = t0[0]; kd < t0[0] + cnt[0]; kd++) {
                        int64_t id = od * q.s[0] - q.pb[0] + kd * q.d[0];
                        for (int64_t kh = t0[1]; kh < t0[1] + cnt[1]; kh++) {
                            int64_t ih = oh * q.s[1] - q.pb[1] + kh * q.d[1];
                            int64_t row = nc * isp + (id * q.in[1] + ih) * q.in[2];
                            for (int64_t kw = t0[2]; kw < t0[2] + cnt[2]; kw++)
                                sum += ot_ref_ld(dt, x->data,
                                                 row + ow * q.s[2] - q.pb[2] + kw * q.d[2]);
                        }
                    }
                    int64_t o = nc * osp + (od * q.o[1] + oh) * q.o[2] + ow;
                    ot_ref_st(dt, y->data, o, div > 0 ? sum / (double)div : 0.0);
                }
            }
    return OT_OK;
}

/* ------------------------------------------------------------ global pools */

static bool global_supports(const ot_node *n, const ot_tensor *const *in,
                            const ot_tensor *const *out, const char **why)
{
    const ot_tensor *x = ot_ref_in(n, in, 0);
    const ot_tensor *y = ot_ref_cout(n, out, 0);
    if (!x || !y || x->ndim < 2 || y->dtype != x->dtype ||
        ot_tensor_numel(y) != x->dims[0] * x->dims[1]) {
        *why = "GlobalPool: X must be (N, C, ...) and Y (N, C, 1, ...)";
        return false;
    }
    if (!ot_ref_is_float(x->dtype)) {
        *why = "GlobalPool: only float, double, float16 and bfloat16 are supported";
        return false;
    }
    return true;
}

bool ot_ref_globalavgpool_supports(const ot_graph *g, const ot_node *n,
                                   const ot_tensor *const *in, const ot_tensor *const *out,
                                   const char **why)
{
    (void)g;
    return global_supports(n, in, out, why);
}

bool ot_ref_globalmaxpool_supports(const ot_graph *g, const ot_node *n,
                                   const ot_tensor *const *in, const ot_tensor *const *out,
                                   const char **why)
{
    (void)g;
    return global_supports(n, in, out, why);
}

/* x: (N, C, D1..Dk)  ->  y: (N, C, 1..1): mean or max over D1..Dk. An empty
   spatial extent gives NaN (mean) or -inf (max), as numpy would. */
static ot_status global_pool(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                             ot_tensor *const *out, bool is_max, ot_err *err)
{
    const char *why = NULL;
    if (!global_supports(n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    (void)g;
    const ot_tensor *x = in[0];
    ot_tensor *y = out[0];
    int64_t NC = x->dims[0] * x->dims[1], sp = ot_ref_prod(x, 2, x->ndim);
    for (int64_t nc = 0; nc < NC; nc++) {
        double acc = is_max ? -HUGE_VAL : 0.0;
        for (int64_t i = 0; i < sp; i++) {
            double v = ot_ref_ld(x->dtype, x->data, nc * sp + i);
            if (is_max)
                acc = v > acc ? v : acc;
            else
                acc += v;
        }
        if (!is_max)
            acc = sp > 0 ? acc / (double)sp : (double)NAN;
        ot_ref_st(y->dtype, y->data, nc, acc);
    }
    return OT_OK;
}

ot_status ot_ref_globalavgpool(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                               ot_tensor *const *out, ot_err *err)
{
    return global_pool(g, n, in, out, false, err);
}

ot_status ot_ref_globalmaxpool(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                               ot_tensor *const *out, ot_err *err)
{
    return global_pool(g, n, in, out, true, err);
}
