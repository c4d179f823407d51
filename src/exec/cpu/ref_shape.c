/*
 * ref_shape.c: the data-movement ops as plain C, for any dtype of fixed
 * element size (they copy bytes): Concat, Flatten / Reshape / Squeeze /
 * Unsqueeze / Identity (one byte copy), Transpose, Shape, Gather, Pad and
 * Constant.
 *
 * Shape honours start/end (opset 15). Gather takes int32 or int64 indices,
 * negative ones counting from the end; an index out of range is an error
 * (OT_ERR_ARG), never a read outside the tensor. Pad takes its pads from the
 * `paddings` (opset 1) or `pads` (2-10) attribute or from the inputs (11+:
 * pads, optional constant_value, optional axes from 18); modes constant,
 * reflect, edge and wrap; negative pads crop. Constant writes its tensor
 * attribute or value_float / value_int / value_floats / value_ints.
 *
 * Not here: string tensors (Constant's value_string(s), sparse_value).
 *
 * Reference: https://onnx.ai/onnx/operators/ (the page of each op)
 */
#include "exec/cpu/ref_impl.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Copies one element of `es` bytes. */
static void copy_elem(void *dst, const void *src, size_t es)
{
    switch (es) {
    case 1: *(uint8_t *)dst = *(const uint8_t *)src; break;
    case 2: memcpy(dst, src, 2); break;
    case 4: memcpy(dst, src, 4); break;
    case 8: memcpy(dst, src, 8); break;
    default: memcpy(dst, src, es); break;
    }
}

static bool plain_dtype(ot_dtype t) { return ot_dtype_size(t) > 0 && t != OT_DTYPE_STRING; }

/* Copies and fills below this many bytes stay on one thread: a parallel
   region costs more than it saves on small tensors. */
#define PAR_BYTES ((int64_t)1 << 16)

/* Writes `count` elements of `es` bytes equal to `fill` (all zero: memset). */
static void fill_elems(char *dst, const unsigned char *fill, size_t es, int64_t count, bool zero)
{
    if (count <= 0)
        return;
    if (zero) {
        memset(dst, 0, (size_t)count * es);
        return;
    }
    for (int64_t i = 0; i < count; i++)
        memcpy(dst + (size_t)i * es, fill, es);
}

/* ----------------------------------------------------------------- Concat */

bool ot_ref_concat_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                            const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *y = ot_ref_cout(n, out, 0);
    int64_t ax = ot_node_attr_int(n, "axis", 1);
    if (!y || !plain_dtype(y->dtype) || y->ndim < 1) {
        *why = "Concat: output must be a tensor of a fixed-size dtype with rank >= 1";
        return false;
    }
    if (ax < -(int64_t)y->ndim || ax >= y->ndim) {
        *why = "Concat: axis out of range";
        return false;
    }
    int axis = (int)(ax < 0 ? ax + y->ndim : ax);
    int64_t total = 0;
    for (int i = 0; i < n->n_in; i++) {
        const ot_tensor *x = ot_ref_in(n, in, i);
        if (!x || x->dtype != y->dtype || x->ndim != y->ndim) {
            *why = "Concat: inputs must be present, of the output's dtype and rank";
            return false;
        }
        for (int d = 0; d < y->ndim; d++)
            if (d != axis && x->dims[d] != y->dims[d]) {
                *why = "Concat: inputs differ from the output outside the axis";
                return false;
            }
        total += x->dims[axis];
    }
    if (total != y->dims[axis]) {
        *why = "Concat: input sizes along the axis do not add up to the output's";
        return false;
    }
    return true;
}

/* x_i: (..., a_i, ...)  ->  y: (..., sum a_i, ...) */
ot_status ot_ref_concat(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                        ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_concat_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    ot_tensor *y = out[0];
    int64_t ax = ot_node_attr_int(n, "axis", 1);
    int axis = (int)(ax < 0 ? ax + y->ndim : ax);
    size_t es = ot_dtype_size(y->dtype);
    int64_t outer = ot_ref_prod(y, 0, axis), inner = ot_ref_prod(y, axis + 1, y->ndim);
    char *dst = y->data;
    if (y->bytes == 0)
        return OT_OK;
    for (int64_t o = 0; o < outer; o++)
        for (int i = 0; i < n->n_in; i++) {
            size_t chunk = (size_t)(in[i]->dims[axis] * inner) * es;
            if (chunk == 0)
                continue;
            memcpy(dst, (const char *)in[i]->data + (size_t)o * chunk, chunk);
            dst += chunk;
        }
    return OT_OK;
}

/* ------------------------------------------- Flatten, Reshape, Squeeze... */

bool ot_ref_copy_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                          const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *x = ot_ref_in(n, in, 0);
    const ot_tensor *y = ot_ref_cout(n, out, 0);
    if (!x || !y || !plain_dtype(x->dtype) || y->dtype != x->dtype) {
        *why = "Reshape/Flatten/Squeeze/Unsqueeze/Identity: input and output must be tensors "
               "of one fixed-size dtype";
        return false;
    }
    if (ot_tensor_numel(x) != ot_tensor_numel(y)) {
        *why = "Reshape/Flatten/Squeeze/Unsqueeze/Identity: element counts differ";
        return false;
    }
    return true;
}

/* x  ->  y: the same bytes under y's shape */
ot_status ot_ref_copy(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                      ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_copy_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    OT_ASSERT(out[0]->bytes == in[0]->bytes);
    if (in[0]->bytes && out[0]->data != in[0]->data)
        memcpy(out[0]->data, in[0]->data, in[0]->bytes);
    return OT_OK;
}

/* -------------------------------------------------------------- Transpose */

/* perm from the attribute, or reversed; false when it is not a permutation. */
static bool get_perm(const ot_node *n, int r, int *perm)
{
    size_t len = 0;
    const int64_t *p = ot_node_attr_ints(n, "perm", &len);
    bool seen[OT_MAX_DIMS] = { false };
    if (p && len != (size_t)r)
        return false;
    for (int i = 0; i < r; i++) {
        int64_t v = p ? p[i] : r - 1 - i;
        if (v < 0 || v >= r || seen[v])
            return false;
        seen[v] = true;
        perm[i] = (int)v;
    }
    return true;
}

bool ot_ref_transpose_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                               const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *x = ot_ref_in(n, in, 0);
    const ot_tensor *y = ot_ref_cout(n, out, 0);
    int perm[OT_MAX_DIMS];
    if (!x || !y || !plain_dtype(x->dtype) || y->dtype != x->dtype || y->ndim != x->ndim) {
        *why = "Transpose: input and output must be tensors of one dtype and rank";
        return false;
    }
    if (!get_perm(n, x->ndim, perm)) {
        *why = "Transpose: perm is not a permutation of the input's dims";
        return false;
    }
    for (int i = 0; i < x->ndim; i++)
        if (y->dims[i] != x->dims[perm[i]]) {
            *why = "Transpose: output dims are not the permuted input dims";
            return false;
        }
    return true;
}

/* x: (d0..d{r-1})  ->  y: (d{perm[0]}..d{perm[r-1]}) */
ot_status ot_ref_transpose(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                           ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_transpose_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *x = in[0];
    ot_tensor *y = out[0];
    int r = x->ndim, perm[OT_MAX_DIMS];
    get_perm(n, r, perm);
    int64_t numel = ot_tensor_numel(y);
    if (numel == 0)
        return OT_OK;
    size_t es = ot_dtype_size(x->dtype);
    int64_t xs[OT_MAX_DIMS], s[OT_MAX_DIMS];
    int64_t stride = 1;
    for (int i = r - 1; i >= 0; i--) { /* x's row-major strides */
        xs[i] = stride;
        stride *= x->dims[i];
    }
    for (int i = 0; i < r; i++) /* y's dim i walks x's dim perm[i] */
        s[i] = xs[perm[i]];
    /* the trailing dims the permutation leaves in place are one contiguous
       block in both tensors: copy blocks, walking the dims before them */
    int m = r;
    while (m > 0 && perm[m - 1] == m - 1)
        m--;
    int64_t blk = 1;
    for (int i = m; i < r; i++)
        blk *= x->dims[i];
    const char *src = x->data;
    char *dst = y->data;
    if (m == 0) {
        memcpy(dst, src, (size_t)numel * es);
        return OT_OK;
    }
    int64_t rows = numel / blk;
    size_t bytes = (size_t)blk * es;
#pragma omp parallel if (numel * (int64_t)es >= PAR_BYTES)
    {
        int64_t lo = 0, hi = rows;
#ifdef _OPENMP
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        lo = rows * t / nt;
        hi = rows * (t + 1) / nt;
#endif
        int64_t idx[OT_MAX_DIMS] = { 0 }, at = 0, rem = lo;
        for (int d = m - 1; d >= 0; d--) { /* the multi-index of row lo */
            idx[d] = rem % y->dims[d];
            rem /= y->dims[d];
            at += idx[d] * s[d];
        }
        for (int64_t o = lo; o < hi; o++) {
            if (blk == 1)
                copy_elem(dst + (size_t)o * es, src + (size_t)at * es, es);
            else
                memcpy(dst + (size_t)o * bytes, src + (size_t)at * es, bytes);
            for (int d = m - 1; d >= 0; d--) {
                idx[d]++;
                at += s[d];
                if (idx[d] < y->dims[d])
                    break;
                at -= s[d] * y->dims[d];
                idx[d] = 0;
            }
        }
    }
    return OT_OK;
}

/* ------------------------------------------------------------------ Shape */

bool ot_ref_shape_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                           const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *x = ot_ref_in(n, in, 0);
    const ot_tensor *y = ot_ref_cout(n, out, 0);
    if (!x || !y || y->dtype != OT_DTYPE_INT64 || y->ndim != 1) {
        *why = "Shape: output must be a 1-D int64 tensor";
        return false;
    }
    return true;
}

/* x: rank r  ->  y: int64 (dims of x from start to end) */
ot_status ot_ref_shape(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                       ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_shape_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *x = in[0];
    ot_tensor *y = out[0];
    int64_t r = x->ndim, start = 0, end = r;
    if (n->opset >= 15) {
        start = ot_node_attr_int(n, "start", 0);
        end = ot_node_attr_int(n, "end", r);
    }
    start = start < 0 ? start + r : start;
    end = end < 0 ? end + r : end;
    start = start < 0 ? 0 : start > r ? r : start;
    end = end < 0 ? 0 : end > r ? r : end;
    int64_t len = end > start ? end - start : 0;
    if (len != y->dims[0])
        return ot_err_set(err, OT_ERR_SHAPE, "Shape: output has %lld elements, expected %lld",
                          (long long)y->dims[0], (long long)len);
    for (int64_t i = 0; i < len; i++)
        ((int64_t *)y->data)[i] = x->dims[start + i];
    return OT_OK;
}

/* ----------------------------------------------------------------- Gather */

bool ot_ref_gather_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                            const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *x = ot_ref_in(n, in, 0), *idx = ot_ref_in(n, in, 1);
    const ot_tensor *y = ot_ref_cout(n, out, 0);
    int64_t ax = ot_node_attr_int(n, "axis", 0);
    if (!x || !idx || !y || !plain_dtype(x->dtype) || y->dtype != x->dtype) {
        *why = "Gather: data and output must be tensors of one fixed-size dtype";
        return false;
    }
    if (idx->dtype != OT_DTYPE_INT32 && idx->dtype != OT_DTYPE_INT64) {
        *why = "Gather: indices must be int32 or int64";
        return false;
    }
    if (x->ndim < 1 || ax < -(int64_t)x->ndim || ax >= x->ndim ||
        y->ndim != x->ndim - 1 + idx->ndim) {
        *why = "Gather: axis out of range or output rank wrong";
        return false;
    }
    int axis = (int)(ax < 0 ? ax + x->ndim : ax);
    if (ot_tensor_numel(y) != ot_ref_prod(x, 0, axis) * ot_tensor_numel(idx) *
                                  ot_ref_prod(x, axis + 1, x->ndim)) {
        *why = "Gather: output element count wrong";
        return false;
    }
    return true;
}

/* data: (d0..d{r-1})  indices: (q dims)  ->  y: d[:axis] + indices + d[axis+1:] */
ot_status ot_ref_gather(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                        ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_gather_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *x = in[0], *idx = in[1];
    ot_tensor *y = out[0];
    int64_t ax = ot_node_attr_int(n, "axis", 0);
    int axis = (int)(ax < 0 ? ax + x->ndim : ax);
    int64_t outer = ot_ref_prod(x, 0, axis), inner = ot_ref_prod(x, axis + 1, x->ndim);
    int64_t dax = x->dims[axis], n_idx = ot_tensor_numel(idx);
    size_t es = ot_dtype_size(x->dtype), chunk = (size_t)inner * es;
    if (ot_tensor_numel(y) == 0)
        return OT_OK;
    for (int64_t j = 0; j < n_idx; j++) { /* check every index before writing */
        int64_t i = ot_tensor_get_i64(idx, j);
        if (i < -dax || i >= dax) {
            char label[256];
            return ot_err_set(err, OT_ERR_ARG,
                              "%s: index %lld is out of range for dim %d of size %lld",
                              ot_node_label(g, n, label, sizeof label), (long long)i, axis,
                              (long long)dax);
        }
    }
    char *dst = y->data;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < n_idx; j++) {
            int64_t i = ot_tensor_get_i64(idx, j);
            if (i < 0)
                i += dax;
            memcpy(dst, (const char *)x->data + (size_t)((o * dax + i) * inner) * es, chunk);
            dst += chunk;
        }
    return OT_OK;
}

/* -------------------------------------------------------------------- Pad */

typedef enum { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP } pad_mode;

bool ot_ref_pad_begins(const ot_node *n, const ot_tensor *pads, const ot_tensor *axes, int r,
                       int64_t *begin)
{
    for (int i = 0; i < r; i++)
        begin[i] = 0;
    if (n->opset < 11) {
        size_t len = 0;
        const int64_t *p = ot_node_attr_ints(n, n->opset < 2 ? "paddings" : "pads", &len);
        if (!p || len != 2 * (size_t)r)
            return false;
        for (int i = 0; i < r; i++)
            begin[i] = p[i];
        return true;
    }
    if (!pads || !pads->data || (pads->dtype != OT_DTYPE_INT64 && pads->dtype != OT_DTYPE_INT32))
        return false;
    int64_t n_pads = ot_tensor_numel(pads), n_axes = r;
    if (axes) {
        if (!axes->data || (axes->dtype != OT_DTYPE_INT64 && axes->dtype != OT_DTYPE_INT32))
            return false;
        n_axes = ot_tensor_numel(axes);
    }
    if (n_pads != 2 * n_axes)
        return false;
    for (int64_t i = 0; i < n_axes; i++) {
        int64_t a = axes ? ot_tensor_get_i64(axes, i) : i;
        if (a < 0)
            a += r;
        if (a < 0 || a >= r)
            return false;
        begin[a] = ot_tensor_get_i64(pads, i);
    }
    return true;
}

static bool pad_get_mode(const ot_node *n, pad_mode *m)
{
    const char *s = ot_node_attr_string(n, "mode", "constant");
    if (strcmp(s, "constant") == 0)
        *m = PAD_CONSTANT;
    else if (strcmp(s, "reflect") == 0)
        *m = PAD_REFLECT;
    else if (strcmp(s, "edge") == 0)
        *m = PAD_EDGE;
    else if (strcmp(s, "wrap") == 0)
        *m = PAD_WRAP;
    else
        return false;
    return true;
}

bool ot_ref_pad_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                         const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *x = ot_ref_in(n, in, 0), *cv = ot_ref_in(n, in, 2);
    const ot_tensor *y = ot_ref_cout(n, out, 0);
    int64_t begin[OT_MAX_DIMS];
    pad_mode mode;
    if (!x || !y || !plain_dtype(x->dtype) || y->dtype != x->dtype || y->ndim != x->ndim) {
        *why = "Pad: input and output must be tensors of one fixed-size dtype and rank";
        return false;
    }
    if (!pad_get_mode(n, &mode)) {
        *why = "Pad: mode must be constant, reflect, edge or wrap";
        return false;
    }
    if (n->opset >= 11 && cv && (cv->dtype != x->dtype || ot_tensor_numel(cv) > 1)) {
        *why = "Pad: constant_value must be a scalar of the input's dtype";
        return false;
    }
    if (mode == PAD_CONSTANT && n->opset < 11 && !ot_ref_is_float(x->dtype) &&
        !ot_ref_is_int(x->dtype)) {
        *why = "Pad: attribute value needs a numeric input";
        return false;
    }
    /* pads may be unknown at compile time only when they come as an input */
    if ((n->opset < 11 || (ot_ref_in(n, in, 1) && in[1]->data)) &&
        !ot_ref_pad_begins(n, ot_ref_in(n, in, 1), ot_ref_in(n, in, 3), x->ndim, begin)) {
        *why = "Pad: pads do not match the input's rank (or axes)";
        return false;
    }
    for (int i = 0; i < x->ndim; i++)
        if (mode != PAD_CONSTANT && x->dims[i] == 0 && y->dims[i] > 0) {
            *why = "Pad: reflect, edge and wrap need a non-empty input dim";
            return false;
        }
    return true;
}

/* The source index in [0, D) for an output position p (already shifted by
   the begin pad) outside [0, D); -1 for constant fill. */
static int64_t pad_source(pad_mode m, int64_t p, int64_t D)
{
    switch (m) {
    case PAD_EDGE: return p < 0 ? 0 : D - 1;
    case PAD_WRAP: return ((p % D) + D) % D;
    case PAD_REFLECT:
        if (D == 1)
            return 0;
        {
            int64_t period = 2 * (D - 1), q = ((p % period) + period) % period;
            return q < D ? q : period - q;
        }
    default: return -1;
    }
}

/* Constant padding without cropping, as row copies: the dims after the
   last padded one are one contiguous block of `inner` elements, so every
   output row along that dim is the fill, a copy of one input row, the fill.
   Returns false where pads are negative (cropping) and the general loop
   below is needed. The gradient of Slice is this Pad, on large tensors. */
static bool pad_constant_rows(const ot_tensor *x, ot_tensor *y, const int64_t *begin,
                              const unsigned char *fill, size_t es)
{
    int r = x->ndim, k = -1;
    for (int i = 0; i < r; i++) {
        int64_t end = y->dims[i] - x->dims[i] - begin[i];
        if (begin[i] < 0 || end < 0)
            return false;
        if (begin[i] || end)
            k = i;
    }
    int64_t numel = ot_tensor_numel(y);
    if (k < 0) {
        memcpy(y->data, x->data, (size_t)numel * es);
        return true;
    }
    int64_t inner = 1, rows = 1;
    for (int i = k + 1; i < r; i++)
        inner *= y->dims[i];
    for (int i = 0; i < k; i++)
        rows *= y->dims[i];
    int64_t xrow = x->dims[k] * inner, yrow = y->dims[k] * inner, lead = begin[k] * inner;
    int64_t tail = yrow - lead - xrow;
    bool zero = true;
    for (size_t b = 0; b < es; b++)
        zero = zero && fill[b] == 0;
    const char *src = x->data;
    char *dst = y->data;
#pragma omp parallel for schedule(static) if (numel * (int64_t)es >= PAR_BYTES)
    for (int64_t o = 0; o < rows; o++) {
        int64_t rem = o, xo = 0, mul = 1;
        bool inside = true;
        for (int d = k - 1; d >= 0 && inside; d--) {
            int64_t p = rem % y->dims[d] - begin[d];
            rem /= y->dims[d];
            inside = p >= 0 && p < x->dims[d];
            xo += p * mul;
            mul *= x->dims[d];
        }
        char *row = dst + (size_t)(o * yrow) * es;
        if (!inside) {
            fill_elems(row, fill, es, yrow, zero);
        } else {
            fill_elems(row, fill, es, lead, zero);
            memcpy(row + (size_t)lead * es, src + (size_t)(xo * xrow) * es, (size_t)xrow * es);
            fill_elems(row + (size_t)(lead + xrow) * es, fill, es, tail, zero);
        }
    }
    return true;
}

/* x: (d0..)  ->  y: (d0 + begin0 + end0, ...) */
ot_status ot_ref_pad(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                     ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_pad_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *x = in[0], *cv = ot_ref_in(n, in, 2);
    ot_tensor *y = out[0];
    int r = x->ndim;
    int64_t begin[OT_MAX_DIMS], xs[OT_MAX_DIMS], idx[OT_MAX_DIMS] = { 0 };
    pad_mode mode;
    pad_get_mode(n, &mode);
    if (!ot_ref_pad_begins(n, ot_ref_in(n, in, 1), ot_ref_in(n, in, 3), x->ndim, begin))
        return ot_err_set(err, OT_ERR_ARG, "Pad: pads do not match the input's rank (or axes)");
    for (int i = 0; i < r; i++) {
        int64_t end = y->dims[i] - x->dims[i] - begin[i];
        if (x->dims[i] + begin[i] + end != y->dims[i] || y->dims[i] < 0)
            return ot_err_set(err, OT_ERR_SHAPE, "Pad: output dim %d is wrong", i);
    }
    int64_t numel = ot_tensor_numel(y);
    if (numel == 0)
        return OT_OK;
    size_t es = ot_dtype_size(x->dtype);
    unsigned char fill[16] = { 0 };
    if (mode == PAD_CONSTANT) {
        if (n->opset >= 11) {
            if (cv && ot_tensor_numel(cv) == 1)
                memcpy(fill, cv->data, es);
        } else {
            ot_ref_st(x->dtype, fill, 0, (double)ot_node_attr_float(n, "value", 0.0f));
        }
    }
    if (mode == PAD_CONSTANT && pad_constant_rows(x, y, begin, fill, es))
        return OT_OK;
    int64_t stride = 1;
    for (int i = r - 1; i >= 0; i--) {
        xs[i] = stride;
        stride *= x->dims[i];
    }
    char *dst = y->data;
    const char *src = x->data;
    for (int64_t e = 0; e < numel; e++) {
        int64_t at = 0;
        bool is_fill = false;
        for (int d = 0; d < r && !is_fill; d++) {
            int64_t p = idx[d] - begin[d];
            if (p < 0 || p >= x->dims[d]) {
                p = x->dims[d] > 0 ? pad_source(mode, p, x->dims[d]) : -1;
                is_fill = p < 0;
            }
            at += p * xs[d];
        }
        copy_elem(dst + (size_t)e * es, is_fill ? (const void *)fill : src + (size_t)at * es, es);
        for (int d = r - 1; d >= 0; d--) {
            if (++idx[d] < y->dims[d])
                break;
            idx[d] = 0;
        }
    }
    return OT_OK;
}

/* --------------------------------------------------------------- Constant */

/* The attribute Constant copies from: its bytes and element count. */
static bool constant_source(const ot_node *n, const void **data, size_t *bytes, ot_dtype *dtype)
{
    const ot_attr *a;
    if ((a = ot_node_find_attr(n, "value")) && a->type == OT_ATTR_TENSOR && a->t) {
        *data = a->t->data, *bytes = a->t->bytes, *dtype = a->t->dtype;
    } else if ((a = ot_node_find_attr(n, "value_float")) && a->type == OT_ATTR_FLOAT) {
        *data = &a->f, *bytes = sizeof a->f, *dtype = OT_DTYPE_FLOAT;
    } else if ((a = ot_node_find_attr(n, "value_int")) && a->type == OT_ATTR_INT) {
        *data = &a->i, *bytes = sizeof a->i, *dtype = OT_DTYPE_INT64;
    } else if ((a = ot_node_find_attr(n, "value_floats")) && a->type == OT_ATTR_FLOATS) {
        *data = a->floats, *bytes = a->n * sizeof(float), *dtype = OT_DTYPE_FLOAT;
    } else if ((a = ot_node_find_attr(n, "value_ints")) && a->type == OT_ATTR_INTS) {
        *data = a->ints, *bytes = a->n * sizeof(int64_t), *dtype = OT_DTYPE_INT64;
    } else {
        return false;
    }
    return true;
}

bool ot_ref_constant_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                              const ot_tensor *const *out, const char **why)
{
    (void)g, (void)in;
    const ot_tensor *y = ot_ref_cout(n, out, 0);
    const void *data;
    size_t bytes;
    ot_dtype dtype;
    if (!constant_source(n, &data, &bytes, &dtype)) {
        *why = "Constant: only numeric value, value_float(s) and value_int(s) are supported";
        return false;
    }
    if (!y || y->dtype != dtype || y->bytes != bytes) {
        *why = "Constant: output differs from the attribute's dtype or size";
        return false;
    }
    return true;
}

/* no inputs  ->  y: the attribute's elements */
ot_status ot_ref_constant(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                          ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    const void *data = NULL;
    size_t bytes = 0;
    ot_dtype dtype;
    if (!ot_ref_constant_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    constant_source(n, &data, &bytes, &dtype);
    if (bytes)
        memcpy(out[0]->data, data, bytes);
    return OT_OK;
}
