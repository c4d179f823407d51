/*
 * ref_index.c: plain kernels of Slice and Cast (src/ops/index_ops.c).
 *
 * Slice copies elements of any fixed-size dtype with a stride per axis
 * (negative steps included), the operands resolved as shape inference
 * resolved them (ot_slice_resolve). Cast converts between the numeric
 * dtypes and bool: integers to integers exactly, through double otherwise
 * (floats to integers truncate toward zero and saturate; NaN becomes 0).
 * LRNGrad is LRN's backward (src/ops/grad_shape.c states the derivative).
 *
 * Reference: https://onnx.ai/onnx/operators/onnx__Slice.html, onnx__Cast.html
 */
#include <math.h>
#include <string.h>

#include "exec/cpu/ref_impl.h"
#include "ops/index_ops.h"

static bool plain_dtype(ot_dtype t) { return ot_dtype_size(t) > 0 && t != OT_DTYPE_STRING; }

/* ------------------------------------------------------------------ Slice */

static bool slice_plan(const ot_node *n, const ot_tensor *const *in, const ot_tensor *x,
                       const ot_tensor *y, ot_slice_axis *sa, const char **why)
{
    int64_t starts[OT_MAX_DIMS], ends[OT_MAX_DIMS], axes[OT_MAX_DIMS], steps[OT_MAX_DIMS];
    int count = 0;
    bool has_axes, has_steps;
    const ot_tensor *ops[5] = { NULL };
    for (int i = 1; i < 5; i++)
        ops[i] = ot_ref_in(n, in, i);
    if (!ot_slice_operands(n, ops, starts, ends, axes, steps, &count, &has_axes, &has_steps)) {
        *why = "Slice: starts, ends, axes and steps must be constant 1-D integer lists";
        return false;
    }
    if (!ot_slice_resolve(x->ndim, x->dims, starts, ends, has_axes ? axes : NULL,
                          has_steps ? steps : NULL, count, sa, why))
        return false;
    for (int d = 0; d < x->ndim; d++)
        if (sa[d].len != y->dims[d]) {
            *why = "Slice: output shape differs from the slice";
            return false;
        }
    return true;
}

bool ot_ref_slice_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                           const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *x = ot_ref_in(n, in, 0), *y = ot_ref_cout(n, out, 0);
    ot_slice_axis sa[OT_MAX_DIMS];
    if (!x || !y || !plain_dtype(x->dtype) || y->dtype != x->dtype || x->ndim < 1 ||
        y->ndim != x->ndim) {
        *why = "Slice: data and output must be tensors of one fixed-size dtype and rank";
        return false;
    }
    for (int i = 1; i < 5; i++) {
        const ot_tensor *t = ot_ref_in(n, in, i);
        if (t && !t->data && t->bytes) {
            *why = "Slice: starts, ends, axes and steps must be known when compiling";
            return false;
        }
    }
    return slice_plan(n, in, x, y, sa, why);
}

ot_status ot_ref_slice(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                       ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    const ot_tensor *x = in[0];
    ot_tensor *y = out[0];
    ot_slice_axis sa[OT_MAX_DIMS];
    if (!ot_ref_slice_supports(g, n, in, (const ot_tensor *const *)out, &why) ||
        !slice_plan(n, in, x, y, sa, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    int r = x->ndim;
    int64_t numel = ot_tensor_numel(y);
    if (numel == 0)
        return OT_OK;
    /* strides of x in elements; the last axis is copied element by element
       (or as one run when its step is 1) */
    int64_t stride[OT_MAX_DIMS], idx[OT_MAX_DIMS] = { 0 };
    stride[r - 1] = 1;
    for (int d = r - 2; d >= 0; d--)
        stride[d] = stride[d + 1] * x->dims[d + 1];
    size_t es = ot_dtype_size(x->dtype);
    int64_t inner = y->dims[r - 1];
    const char *src = x->data;
    char *dst = y->data;
    for (int64_t k = 0; k < numel; k += inner) {
        int64_t off = 0;
        for (int d = 0; d < r - 1; d++)
            off += (sa[d].start + idx[d] * sa[d].step) * stride[d];
        off += sa[r - 1].start;
        if (sa[r - 1].step == 1) {
            memcpy(dst, src + (size_t)off * es, (size_t)inner * es);
        } else {
            for (int64_t j = 0; j < inner; j++)
                memcpy(dst + (size_t)j * es, src + (size_t)(off + j * sa[r - 1].step) * es, es);
        }
        dst += (size_t)inner * es;
        for (int d = r - 2; d >= 0; d--) {
            if (++idx[d] < y->dims[d])
                break;
            idx[d] = 0;
        }
    }
    return OT_OK;
}

/* ------------------------------------------------------------------- Cast */

static bool cast_dtype(ot_dtype t) { return ot_ref_is_float(t) || ot_ref_is_int(t) || t == OT_DTYPE_BOOL; }

bool ot_ref_cast_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                          const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *x = ot_ref_in(n, in, 0), *y = ot_ref_cout(n, out, 0);
    if (!x || !y || !cast_dtype(x->dtype) || !cast_dtype(y->dtype) ||
        ot_tensor_numel(x) != ot_tensor_numel(y)) {
        *why = "Cast: from and to float, integer (not uint64) or bool tensors of one size";
        return false;
    }
    return true;
}

static void store_i64(ot_dtype t, void *p, int64_t i, int64_t v)
{
    switch (t) {
    case OT_DTYPE_INT8: ((int8_t *)p)[i] = (int8_t)v; break;
    case OT_DTYPE_UINT8: ((uint8_t *)p)[i] = (uint8_t)v; break;
    case OT_DTYPE_INT16: ((int16_t *)p)[i] = (int16_t)v; break;
    case OT_DTYPE_UINT16: ((uint16_t *)p)[i] = (uint16_t)v; break;
    case OT_DTYPE_INT32: ((int32_t *)p)[i] = (int32_t)v; break;
    case OT_DTYPE_UINT32: ((uint32_t *)p)[i] = (uint32_t)v; break;
    case OT_DTYPE_INT64: ((int64_t *)p)[i] = v; break;
    case OT_DTYPE_BOOL: ((uint8_t *)p)[i] = v != 0; break;
    default: break;
    }
}

ot_status ot_ref_cast(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                      ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_cast_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *x = in[0];
    ot_tensor *y = out[0];
    int64_t numel = ot_tensor_numel(x);
    bool ints = (ot_ref_is_int(x->dtype) || x->dtype == OT_DTYPE_BOOL) &&
                (ot_ref_is_int(y->dtype) || y->dtype == OT_DTYPE_BOOL);
    if (x->dtype == y->dtype) {
        if (x->bytes)
            memcpy(y->data, x->data, x->bytes);
    } else if (ints) { /* exact, wrapping as C converts (two's complement) */
        for (int64_t i = 0; i < numel; i++)
            store_i64(y->dtype, y->data, i, ot_tensor_get_i64(x, i));
    } else {
        for (int64_t i = 0; i < numel; i++)
            ot_ref_st(y->dtype, y->data, i, ot_ref_ld(x->dtype, x->data, i));
    }
    return OT_OK;
}

/* ---------------------------------------------------------------- LRNGrad */

bool ot_ref_lrn_grad_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                              const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *dy = ot_ref_in(n, in, 0), *x = ot_ref_in(n, in, 1);
    const ot_tensor *dx = ot_ref_cout(n, out, 0);
    if (!dy || !x || !dx || x->ndim < 2 || !ot_ref_is_float(x->dtype) ||
        dy->dtype != x->dtype || dx->dtype != x->dtype ||
        ot_tensor_numel(dy) != ot_tensor_numel(x) || ot_tensor_numel(dx) != ot_tensor_numel(x)) {
        *why = "LRNGrad: dY, X and dX must be float tensors (N, C, ...) of one shape";
        return false;
    }
    if (ot_node_attr_int(n, "size", 0) < 1) {
        *why = "LRNGrad: attribute 'size' must be positive";
        return false;
    }
    return true;
}

/* dX_k = dY_k s_k^-b - (2 alpha b / size) x_k sum_{c: k in W(c)} dY_c x_c s_c^(-b-1),
   s_c = bias + (alpha / size) sum_{j in W(c)} x_j^2; in double, one spatial
   position of one image at a time, without a buffer: s is recomputed */
ot_status ot_ref_lrn_grad(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                          ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_lrn_grad_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *dy = in[0], *x = in[1];
    ot_tensor *dx = out[0];
    ot_dtype dt = x->dtype;
    double alpha = ot_node_attr_float(n, "alpha", 1e-4f);
    double beta = ot_node_attr_float(n, "beta", 0.75f);
    double bias = ot_node_attr_float(n, "bias", 1.0f);
    int64_t size = ot_node_attr_int(n, "size", 1);
    int64_t before = (size - 1) / 2, after = size - 1 - before; /* floor, ceil */
    int64_t N = x->dims[0], C = x->dims[1], sp = ot_ref_prod(x, 2, x->ndim);
    double k = alpha / (double)size;
    for (int64_t nn = 0; nn < N; nn++)
        for (int64_t i = 0; i < sp; i++) {
#define AT(c) ((nn * C + (c)) * sp + i)
            for (int64_t kk = 0; kk < C; kk++) {
                /* the channels c whose window holds kk: kk - after .. kk + before */
                int64_t clo = kk - after < 0 ? 0 : kk - after;
                int64_t chi = kk + before >= C ? C - 1 : kk + before;
                double acc = 0, s_k = 0;
                for (int64_t c = clo; c <= chi; c++) {
                    int64_t lo = c - before < 0 ? 0 : c - before;
                    int64_t hi = c + after >= C ? C - 1 : c + after;
                    double sq = 0;
                    for (int64_t j = lo; j <= hi; j++) {
                        double v = ot_ref_ld(dt, x->data, AT(j));
                        sq += v * v;
                    }
                    double s = bias + k * sq;
                    acc += ot_ref_ld(dt, dy->data, AT(c)) * ot_ref_ld(dt, x->data, AT(c)) *
                           pow(s, -beta - 1);
                    if (c == kk)
                        s_k = s;
                }
                double xk = ot_ref_ld(dt, x->data, AT(kk));
                double v = ot_ref_ld(dt, dy->data, AT(kk)) * pow(s_k, -beta) -
                           2.0 * k * beta * xk * acc;
                ot_ref_st(dt, dx->data, AT(kk), v);
            }
#undef AT
        }
    return OT_OK;
}
