/*
 * ref_logic.c: plain kernels of the index and logic ops (src/ops/logic_ops.c,
 * src/ops/expand_ops.c): Equal, Greater, Less, And, Not, Where and Mod with
 * numpy broadcasting; Split, Expand, Tile, ConstantOfShape, Range and
 * ScatterND; the backward ops GatherGrad, ScatterNDGrad and SliceGrad.
 *
 * Comparisons read integers (and bool) exactly as int64 and every other
 * type as double. Data movement copies elements of any fixed-size dtype.
 * Indices out of range are an error naming the node, checked before
 * anything is written. Nothing allocates.
 *
 * Reference: https://onnx.ai/onnx/operators/ (the page of each op)
 */
#include <math.h>
#include <string.h>

#include "exec/cpu/ref_impl.h"
#include "ops/expand_ops.h"

/* Most outputs of a Split (the limit of its shape inference). */
#define OT_MAX_SPLIT 64

static bool plain_dtype(ot_dtype t) { return ot_dtype_size(t) > 0 && t != OT_DTYPE_STRING; }

/* ---------------------------------------------------- broadcast iteration */

/* Walks the elements of y in order, keeping the offset of each input
   (right-aligned, dims of 1 repeated). */
typedef struct bc_iter {
    int r, n;
    int64_t dims[OT_MAX_DIMS], idx[OT_MAX_DIMS];
    int64_t st[3][OT_MAX_DIMS];
    int64_t off[3];
} bc_iter;

/* Whether t broadcasts to y (numpy, right-aligned). */
static bool bc_fits(const ot_tensor *t, const ot_tensor *y)
{
    if (!t || t->ndim > y->ndim)
        return false;
    for (int d = 0; d < t->ndim; d++) {
        int64_t td = t->dims[d], yd = y->dims[y->ndim - t->ndim + d];
        if (td != 1 && td != yd)
            return false;
    }
    return true;
}

static void bc_init(bc_iter *it, const ot_tensor *y, const ot_tensor *const *xs, int n)
{
    memset(it, 0, sizeof *it);
    it->r = y->ndim;
    it->n = n;
    for (int d = 0; d < y->ndim; d++)
        it->dims[d] = y->dims[d];
    for (int k = 0; k < n; k++) {
        const ot_tensor *t = xs[k];
        int64_t s = 1;
        for (int d = t->ndim - 1; d >= 0; d--) {
            it->st[k][y->ndim - t->ndim + d] = t->dims[d] == 1 ? 0 : s;
            s *= t->dims[d];
        }
    }
}

static void bc_next(bc_iter *it)
{
    for (int d = it->r - 1; d >= 0; d--) {
        for (int k = 0; k < it->n; k++)
            it->off[k] += it->st[k][d];
        if (++it->idx[d] < it->dims[d])
            return;
        for (int k = 0; k < it->n; k++)
            it->off[k] -= it->st[k][d] * it->dims[d];
        it->idx[d] = 0;
    }
}

/* Element i of an integer or bool buffer, exactly. */
static int64_t ld_int(ot_dtype t, const void *p, int64_t i)
{
    switch (t) {
    case OT_DTYPE_INT64: return ((const int64_t *)p)[i];
    case OT_DTYPE_UINT64: return (int64_t)((const uint64_t *)p)[i];
    case OT_DTYPE_INT32: return ((const int32_t *)p)[i];
    case OT_DTYPE_UINT32: return ((const uint32_t *)p)[i];
    case OT_DTYPE_INT16: return ((const int16_t *)p)[i];
    case OT_DTYPE_UINT16: return ((const uint16_t *)p)[i];
    case OT_DTYPE_INT8: return ((const int8_t *)p)[i];
    case OT_DTYPE_UINT8: return ((const uint8_t *)p)[i];
    case OT_DTYPE_BOOL: return ((const uint8_t *)p)[i] != 0;
    default: return 0;
    }
}

static void st_int(ot_dtype t, void *p, int64_t i, int64_t v)
{
    switch (t) {
    case OT_DTYPE_INT64: ((int64_t *)p)[i] = v; break;
    case OT_DTYPE_UINT64: ((uint64_t *)p)[i] = (uint64_t)v; break;
    case OT_DTYPE_INT32: ((int32_t *)p)[i] = (int32_t)v; break;
    case OT_DTYPE_UINT32: ((uint32_t *)p)[i] = (uint32_t)v; break;
    case OT_DTYPE_INT16: ((int16_t *)p)[i] = (int16_t)v; break;
    case OT_DTYPE_UINT16: ((uint16_t *)p)[i] = (uint16_t)v; break;
    case OT_DTYPE_INT8: ((int8_t *)p)[i] = (int8_t)v; break;
    case OT_DTYPE_UINT8: ((uint8_t *)p)[i] = (uint8_t)v; break;
    case OT_DTYPE_BOOL: ((uint8_t *)p)[i] = v != 0; break;
    default: break;
    }
}

static bool exact_int(ot_dtype t) { return ot_ref_is_int(t) || t == OT_DTYPE_UINT64 || t == OT_DTYPE_BOOL; }

/* Inputs [0, n_in) of one of the listed kinds broadcast to output 0. */
static bool bc_supports(const ot_node *n, const ot_tensor *const *in, const ot_tensor *const *out,
                        int first_same, ot_dtype out_t, const char *what, const char **why)
{
    const ot_tensor *y = ot_ref_cout(n, out, 0);
    if (!y || n->n_in < 1) {
        *why = what;
        return false;
    }
    for (int i = 0; i < n->n_in; i++) {
        const ot_tensor *t = ot_ref_in(n, in, i);
        if (!t || !bc_fits(t, y) || t->dtype == OT_DTYPE_STRING ||
            (!exact_int(t->dtype) && !ot_ref_is_float(t->dtype)) ||
            (i > first_same && t->dtype != in[first_same]->dtype)) {
            *why = t && t->dtype == OT_DTYPE_STRING ? "string tensors are not supported" : what;
            return false;
        }
    }
    ot_dtype want = out_t == OT_DTYPE_UNDEFINED ? in[first_same]->dtype : out_t;
    if (y->dtype != want) {
        *why = what;
        return false;
    }
    return true;
}

/* ---------------------------------------------- Equal, Greater, Less, And, Not */

bool ot_ref_compare_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                             const ot_tensor *const *out, const char **why)
{
    (void)g;
    return bc_supports(n, in, out, 0, OT_DTYPE_BOOL,
                       "Equal/Greater/Less/And/Not: inputs of one numeric or bool type that "
                       "broadcast to a bool output",
                       why);
}

ot_status ot_ref_compare(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                         ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_compare_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    ot_tensor *y = out[0];
    ot_op_id op = n->op->id;
    int n_in = op == OT_OP_NOT ? 1 : 2;
    ot_dtype t = in[0]->dtype;
    bool ints = exact_int(t);
    bc_iter it;
    bc_init(&it, y, in, n_in);
    uint8_t *dst = y->data;
    int64_t numel = ot_tensor_numel(y);
    for (int64_t e = 0; e < numel; e++, bc_next(&it)) {
        bool r;
        if (op == OT_OP_NOT) {
            r = !ld_int(t, in[0]->data, it.off[0]);
        } else if (ints) {
            int64_t a = ld_int(t, in[0]->data, it.off[0]), b = ld_int(t, in[1]->data, it.off[1]);
            if (t == OT_DTYPE_UINT64 && op != OT_OP_EQUAL)
                r = op == OT_OP_GREATER ? (uint64_t)a > (uint64_t)b : (uint64_t)a < (uint64_t)b;
            else
                r = op == OT_OP_EQUAL ? a == b : op == OT_OP_GREATER ? a > b
                  : op == OT_OP_LESS  ? a < b
                                      : (a && b);
        } else {
            double a = ot_ref_ld(t, in[0]->data, it.off[0]), b = ot_ref_ld(t, in[1]->data, it.off[1]);
            r = op == OT_OP_EQUAL ? a == b : op == OT_OP_GREATER ? a > b : op == OT_OP_LESS ? a < b
                                                                                       : (a && b);
        }
        dst[e] = r;
    }
    return OT_OK;
}

/* ------------------------------------------------------------------ Where */

bool ot_ref_where_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                           const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *c = ot_ref_in(n, in, 0);
    if (!c || c->dtype != OT_DTYPE_BOOL) {
        *why = "Where: the condition must be bool";
        return false;
    }
    return bc_supports(n, in, out, 1, OT_DTYPE_UNDEFINED,
                       "Where: X and Y of one type that broadcast with the condition to the output",
                       why);
}

ot_status ot_ref_where(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                       ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_where_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    ot_tensor *y = out[0];
    size_t es = ot_dtype_size(y->dtype);
    bc_iter it;
    bc_init(&it, y, in, 3);
    const uint8_t *c = in[0]->data;
    const char *a = in[1]->data, *b = in[2]->data;
    char *dst = y->data;
    int64_t numel = ot_tensor_numel(y);
    for (int64_t e = 0; e < numel; e++, bc_next(&it)) {
        const char *src = c[it.off[0]] ? a + (size_t)it.off[1] * es : b + (size_t)it.off[2] * es;
        memcpy(dst + (size_t)e * es, src, es);
    }
    return OT_OK;
}

/* -------------------------------------------------------------------- Mod */

bool ot_ref_mod_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                         const ot_tensor *const *out, const char **why)
{
    (void)g;
    if (!bc_supports(n, in, out, 0, OT_DTYPE_UNDEFINED,
                     "Mod: two inputs of one numeric type that broadcast to the output", why))
        return false;
    if (in[0]->dtype == OT_DTYPE_BOOL) {
        *why = "Mod: bool inputs";
        return false;
    }
    return true;
}

ot_status ot_ref_mod(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                     ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    char label[256];
    if (!ot_ref_mod_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    ot_tensor *y = out[0];
    ot_dtype t = y->dtype;
    bool fmod_c = ot_node_attr_int(n, "fmod", 0) != 0;
    bc_iter it;
    bc_init(&it, y, in, 2);
    int64_t numel = ot_tensor_numel(y);
    for (int64_t e = 0; e < numel; e++, bc_next(&it)) {
        if (ot_ref_is_float(t)) {
            double a = ot_ref_ld(t, in[0]->data, it.off[0]), b = ot_ref_ld(t, in[1]->data, it.off[1]);
            double r = fmod(a, b);
            if (!fmod_c && r != 0 && ((r < 0) != (b < 0)))
                r += b;
            ot_ref_st(t, y->data, e, r);
            continue;
        }
        int64_t a = ld_int(t, in[0]->data, it.off[0]), b = ld_int(t, in[1]->data, it.off[1]);
        if (b == 0)
            return ot_err_set(err, OT_ERR_ARG, "%s: integer Mod by zero",
                              ot_node_label(g, n, label, sizeof label));
        int64_t r;
        if (t == OT_DTYPE_UINT64) {
            r = (int64_t)((uint64_t)a % (uint64_t)b);
        } else {
            r = a == INT64_MIN && b == -1 ? 0 : a % b;
            if (!fmod_c && r != 0 && ((r < 0) != (b < 0)))
                r += b; /* the divisor's sign */
        }
        st_int(t, y->data, e, r);
    }
    return OT_OK;
}

/* ------------------------------------------------------------------ Split */

static bool split_plan(const ot_node *n, const ot_tensor *const *in, int *axis, int64_t *sizes,
                       const char **why)
{
    const ot_tensor *x = in[0];
    int64_t ax = ot_node_attr_int(n, "axis", 0);
    if (x->ndim < 1 || ax < -(int64_t)x->ndim || ax >= x->ndim || n->n_out > OT_MAX_SPLIT) {
        *why = "Split: axis out of range or too many outputs";
        return false;
    }
    *axis = (int)(ax < 0 ? ax + x->ndim : ax);
    const ot_tensor *split = ot_ref_in(n, in, 1);
    if (split && (split->dtype != OT_DTYPE_INT64 || (!split->data && split->bytes))) {
        *why = "Split: 'split' must be a constant int64 tensor";
        return false;
    }
    return ot_split_sizes(n, split, x->dims[*axis], sizes, why);
}

bool ot_ref_split_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                           const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *x = ot_ref_in(n, in, 0);
    int64_t sizes[OT_MAX_SPLIT];
    int axis;
    if (!x || !plain_dtype(x->dtype)) {
        *why = "Split: data of a fixed-size dtype";
        return false;
    }
    if (!split_plan(n, in, &axis, sizes, why))
        return false;
    for (int i = 0; i < n->n_out; i++) {
        const ot_tensor *y = ot_ref_cout(n, out, i);
        if (!y)
            continue;
        bool ok = y->dtype == x->dtype && y->ndim == x->ndim;
        for (int d = 0; ok && d < x->ndim; d++)
            ok = y->dims[d] == (d == axis ? sizes[i] : x->dims[d]);
        if (!ok) {
            *why = "Split: an output's shape differs from its part";
            return false;
        }
    }
    return true;
}

ot_status ot_ref_split(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                       ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    int64_t sizes[OT_MAX_SPLIT];
    int axis = 0;
    if (!ot_ref_split_supports(g, n, in, (const ot_tensor *const *)out, &why) ||
        !split_plan(n, in, &axis, sizes, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *x = in[0];
    size_t es = ot_dtype_size(x->dtype);
    int64_t outer = ot_ref_prod(x, 0, axis), inner = ot_ref_prod(x, axis + 1, x->ndim);
    int64_t dax = x->dims[axis], start = 0;
    for (int i = 0; i < n->n_out; i++) {
        ot_tensor *y = ot_ref_out(n, out, i);
        size_t chunk = (size_t)(sizes[i] * inner) * es;
        for (int64_t o = 0; y && chunk && o < outer; o++)
            memcpy((char *)y->data + (size_t)o * chunk,
                   (const char *)x->data + (size_t)((o * dax + start) * inner) * es, chunk);
        start += sizes[i];
    }
    return OT_OK;
}

/* ---------------------------------------------------------- Expand, Tile */

bool ot_ref_expand_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                            const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *x = ot_ref_in(n, in, 0), *y = ot_ref_cout(n, out, 0);
    if (!x || !y || !plain_dtype(x->dtype) || y->dtype != x->dtype || !bc_fits(x, y)) {
        *why = "Expand: data of a fixed-size dtype that broadcasts to the output";
        return false;
    }
    return true;
}

ot_status ot_ref_expand(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                        ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_expand_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    ot_tensor *y = out[0];
    size_t es = ot_dtype_size(y->dtype);
    bc_iter it;
    bc_init(&it, y, in, 1);
    int64_t numel = ot_tensor_numel(y);
    for (int64_t e = 0; e < numel; e++, bc_next(&it))
        memcpy((char *)y->data + (size_t)e * es, (const char *)in[0]->data + (size_t)it.off[0] * es,
               es);
    return OT_OK;
}

bool ot_ref_tile_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                          const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *x = ot_ref_in(n, in, 0), *r = ot_ref_in(n, in, 1), *y = ot_ref_cout(n, out, 0);
    if (!x || !r || !y || !plain_dtype(x->dtype) || y->dtype != x->dtype || y->ndim != x->ndim ||
        (r->dtype != OT_DTYPE_INT64 && r->dtype != OT_DTYPE_INT32) || ot_tensor_numel(r) != x->ndim ||
        (!r->data && r->bytes)) {
        *why = "Tile: data of a fixed-size dtype and constant repeats, one per dim";
        return false;
    }
    for (int d = 0; d < x->ndim; d++)
        if (y->dims[d] != x->dims[d] * ot_tensor_get_i64(r, d)) {
            *why = "Tile: output shape differs from data x repeats";
            return false;
        }
    return true;
}

ot_status ot_ref_tile(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                      ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_tile_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *x = in[0];
    ot_tensor *y = out[0];
    size_t es = ot_dtype_size(y->dtype);
    int r = y->ndim;
    int64_t numel = ot_tensor_numel(y), idx[OT_MAX_DIMS] = { 0 };
    for (int64_t e = 0; e < numel; e++) {
        int64_t off = 0;
        for (int d = 0; d < r; d++)
            off = off * x->dims[d] + idx[d] % x->dims[d];
        memcpy((char *)y->data + (size_t)e * es, (const char *)x->data + (size_t)off * es, es);
        for (int d = r - 1; d >= 0; d--) {
            if (++idx[d] < y->dims[d])
                break;
            idx[d] = 0;
        }
    }
    return OT_OK;
}

/* ------------------------------------------------ ConstantOfShape, Range */

bool ot_ref_constant_of_shape_supports(const ot_graph *g, const ot_node *n,
                                       const ot_tensor *const *in, const ot_tensor *const *out,
                                       const char **why)
{
    (void)g, (void)in;
    const ot_tensor *y = ot_ref_cout(n, out, 0);
    const ot_attr *a = ot_node_find_attr(n, "value");
    ot_dtype t = a && a->t ? a->t->dtype : OT_DTYPE_FLOAT;
    if (!y || y->dtype != t || !plain_dtype(t) || (a && (!a->t || !a->t->data))) {
        *why = "ConstantOfShape: a value of a fixed-size dtype";
        return false;
    }
    return true;
}

ot_status ot_ref_constant_of_shape(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                                   ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_constant_of_shape_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    ot_tensor *y = out[0];
    const ot_attr *a = ot_node_find_attr(n, "value");
    size_t es = ot_dtype_size(y->dtype);
    int64_t numel = ot_tensor_numel(y);
    if (!a) {
        memset(y->data, 0, (size_t)numel * es);
        return OT_OK;
    }
    for (int64_t e = 0; e < numel; e++)
        memcpy((char *)y->data + (size_t)e * es, a->t->data, es);
    return OT_OK;
}

bool ot_ref_range_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                           const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *y = ot_ref_cout(n, out, 0);
    for (int i = 0; i < 3; i++) {
        const ot_tensor *t = ot_ref_in(n, in, i);
        if (!t || !y || t->dtype != y->dtype || ot_tensor_numel(t) != 1 || y->ndim != 1) {
            *why = "Range: three scalars of the output's type";
            return false;
        }
    }
    return true;
}

ot_status ot_ref_range(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                       ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    char label[256];
    if (!ot_ref_range_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    ot_tensor *y = out[0];
    int64_t count;
    if (!ot_range_count(y->dtype, in[0], in[1], in[2], &count) || count != y->dims[0])
        return ot_err_set(err, OT_ERR_ARG, "%s: the range has not %lld elements",
                          ot_node_label(g, n, label, sizeof label), (long long)y->dims[0]);
    ot_dtype t = y->dtype;
    if (ot_ref_is_float(t)) {
        double s = ot_ref_ld(t, in[0]->data, 0), d = ot_ref_ld(t, in[2]->data, 0);
        for (int64_t i = 0; i < count; i++)
            ot_ref_st(t, y->data, i, s + (double)i * d);
    } else {
        int64_t s = ld_int(t, in[0]->data, 0), d = ld_int(t, in[2]->data, 0);
        for (int64_t i = 0; i < count; i++)
            st_int(t, y->data, i, s + i * d);
    }
    return OT_OK;
}

/* -------------------------------------------------------------- ScatterND */

/* The slices of a ScatterND over data of shape `data` (dims `r`): indices
   (q dims, last k), each naming a slice of `slice` elements at `offsets`.
   Checks every index. */
static bool nd_plan(const ot_tensor *data, const ot_tensor *idx, int64_t *k, int64_t *slice,
                    int64_t *count, const char **why)
{
    if (idx->dtype != OT_DTYPE_INT64 || idx->ndim < 1 || data->ndim < 1) {
        *why = "ScatterND: int64 indices of rank 1 or more";
        return false;
    }
    *k = idx->dims[idx->ndim - 1];
    if (*k > data->ndim || *k < 1) {
        *why = "ScatterND: the last dim of indices exceeds the data's rank";
        return false;
    }
    *slice = ot_ref_prod(data, (int)*k, data->ndim);
    *count = ot_ref_prod(idx, 0, idx->ndim - 1);
    return true;
}

/* Element offset in data of slice j; false when an index is out of range. */
static bool nd_offset(const ot_tensor *data, const ot_tensor *idx, int64_t k, int64_t slice,
                      int64_t j, int64_t *off)
{
    const int64_t *iv = (const int64_t *)idx->data + j * k;
    int64_t o = 0;
    for (int64_t d = 0; d < k; d++) {
        int64_t i = iv[d], dim = data->dims[d];
        if (i < -dim || i >= dim)
            return false;
        o = o * dim + (i < 0 ? i + dim : i);
    }
    *off = o * slice;
    return true;
}

static ot_status nd_check(const ot_graph *g, const ot_node *n, const ot_tensor *data,
                          const ot_tensor *idx, int64_t k, int64_t slice, int64_t count,
                          ot_err *err)
{
    char label[256];
    int64_t off;
    for (int64_t j = 0; j < count; j++)
        if (!nd_offset(data, idx, k, slice, j, &off))
            return ot_err_set(err, OT_ERR_ARG, "%s: index tuple %lld is out of range",
                              ot_node_label(g, n, label, sizeof label), (long long)j);
    return OT_OK;
}

bool ot_ref_scatter_nd_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                                const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *x = ot_ref_in(n, in, 0), *idx = ot_ref_in(n, in, 1), *u = ot_ref_in(n, in, 2);
    const ot_tensor *y = ot_ref_cout(n, out, 0);
    int64_t k, slice, count;
    if (!x || !idx || !u || !y || !plain_dtype(x->dtype) || u->dtype != x->dtype ||
        y->dtype != x->dtype || ot_tensor_numel(y) != ot_tensor_numel(x)) {
        *why = "ScatterND: data, updates and output of one fixed-size dtype";
        return false;
    }
    if (!nd_plan(x, idx, &k, &slice, &count, why))
        return false;
    const char *red = ot_node_attr_string(n, "reduction", "none");
    if (strcmp(red, "none") && !ot_ref_is_float(x->dtype) && !exact_int(x->dtype)) {
        *why = "ScatterND: a reduction on numbers only";
        return false;
    }
    if (ot_tensor_numel(u) != count * slice) {
        *why = "ScatterND: updates have not indices[:-1] x data[k:] elements";
        return false;
    }
    return true;
}

ot_status ot_ref_scatter_nd(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                            ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_scatter_nd_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *x = in[0], *idx = in[1], *u = in[2];
    ot_tensor *y = out[0];
    int64_t k, slice, count, off;
    nd_plan(x, idx, &k, &slice, &count, &why);
    ot_status st = nd_check(g, n, x, idx, k, slice, count, err);
    if (st != OT_OK)
        return st;
    size_t es = ot_dtype_size(x->dtype);
    if (y->data != x->data)
        memcpy(y->data, x->data, (size_t)ot_tensor_numel(x) * es);
    const char *red = ot_node_attr_string(n, "reduction", "none");
    int mode = !strcmp(red, "add") ? 1 : !strcmp(red, "mul") ? 2 : !strcmp(red, "max") ? 3
             : !strcmp(red, "min") ? 4 : 0;
    for (int64_t j = 0; j < count; j++) {
        nd_offset(x, idx, k, slice, j, &off);
        if (mode == 0) {
            memcpy((char *)y->data + (size_t)off * es, (const char *)u->data + (size_t)(j * slice) * es,
                   (size_t)slice * es);
            continue;
        }
        for (int64_t e = 0; e < slice; e++) {
            int64_t yo = off + e, uo = j * slice + e;
            if (exact_int(y->dtype)) {
                int64_t a = ld_int(y->dtype, y->data, yo), b = ld_int(y->dtype, u->data, uo);
                int64_t r = mode == 1 ? (int64_t)((uint64_t)a + (uint64_t)b)
                          : mode == 2 ? (int64_t)((uint64_t)a * (uint64_t)b)
                          : mode == 3 ? (a > b ? a : b) : (a < b ? a : b);
                st_int(y->dtype, y->data, yo, r);
            } else {
                double a = ot_ref_ld(y->dtype, y->data, yo), b = ot_ref_ld(y->dtype, u->data, uo);
                double r = mode == 1 ? a + b : mode == 2 ? a * b : mode == 3 ? fmax(a, b) : fmin(a, b);
                ot_ref_st(y->dtype, y->data, yo, r);
            }
        }
    }
    return OT_OK;
}

/* ------------------------------------------------------------ backward ops */

bool ot_ref_gather_grad_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                                 const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *dy = ot_ref_in(n, in, 0), *idx = ot_ref_in(n, in, 1);
    const ot_tensor *dx = ot_ref_cout(n, out, 0);
    int64_t ax = ot_node_attr_int(n, "axis", 0);
    if (!dy || !idx || !dx || !ot_ref_is_float(dy->dtype) || dx->dtype != dy->dtype ||
        (idx->dtype != OT_DTYPE_INT32 && idx->dtype != OT_DTYPE_INT64) || dx->ndim < 1 ||
        ax < -(int64_t)dx->ndim || ax >= dx->ndim || dy->ndim != dx->ndim - 1 + idx->ndim) {
        *why = "GatherGrad: float dY and dX, integer indices, matching ranks";
        return false;
    }
    int axis = (int)(ax < 0 ? ax + dx->ndim : ax);
    if (ot_tensor_numel(dy) != ot_ref_prod(dx, 0, axis) * ot_tensor_numel(idx) *
                                   ot_ref_prod(dx, axis + 1, dx->ndim)) {
        *why = "GatherGrad: dY's element count differs from the gathered one";
        return false;
    }
    return true;
}

/* dX = 0; dX[.., idx[j], ..] += dY[.., j, ..] */
ot_status ot_ref_gather_grad(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                             ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    char label[256];
    if (!ot_ref_gather_grad_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *dy = in[0], *idx = in[1];
    ot_tensor *dx = out[0];
    int64_t ax = ot_node_attr_int(n, "axis", 0);
    int axis = (int)(ax < 0 ? ax + dx->ndim : ax);
    int64_t outer = ot_ref_prod(dx, 0, axis), inner = ot_ref_prod(dx, axis + 1, dx->ndim);
    int64_t dax = dx->dims[axis], n_idx = ot_tensor_numel(idx);
    for (int64_t j = 0; j < n_idx; j++) {
        int64_t i = ot_tensor_get_i64(idx, j);
        if (i < -dax || i >= dax)
            return ot_err_set(err, OT_ERR_ARG, "%s: index %lld is out of range for dim %d of size %lld",
                              ot_node_label(g, n, label, sizeof label), (long long)i, axis,
                              (long long)dax);
    }
    int64_t numel = ot_tensor_numel(dx);
    ot_dtype t = dx->dtype;
    if (t == OT_DTYPE_FLOAT) {
        float *d = dx->data;
        const float *s = dy->data;
        memset(d, 0, (size_t)numel * sizeof *d);
        for (int64_t o = 0; o < outer; o++)
            for (int64_t j = 0; j < n_idx; j++) {
                int64_t i = ot_tensor_get_i64(idx, j);
                float *row = d + (o * dax + (i < 0 ? i + dax : i)) * inner;
                const float *src = s + (o * n_idx + j) * inner;
                for (int64_t e = 0; e < inner; e++)
                    row[e] += src[e];
            }
        return OT_OK;
    }
    for (int64_t e = 0; e < numel; e++)
        ot_ref_st(t, dx->data, e, 0.0);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < n_idx; j++) {
            int64_t i = ot_tensor_get_i64(idx, j);
            int64_t row = (o * dax + (i < 0 ? i + dax : i)) * inner, src = (o * n_idx + j) * inner;
            for (int64_t e = 0; e < inner; e++)
                ot_ref_st(t, dx->data, row + e,
                          ot_ref_ld(t, dx->data, row + e) + ot_ref_ld(t, dy->data, src + e));
        }
    return OT_OK;
}

bool ot_ref_scatter_nd_grad_supports(const ot_graph *g, const ot_node *n,
                                     const ot_tensor *const *in, const ot_tensor *const *out,
                                     const char **why)
{
    (void)g;
    const ot_tensor *dy = ot_ref_in(n, in, 0), *idx = ot_ref_in(n, in, 1);
    const ot_tensor *dd = ot_ref_cout(n, out, 0), *du = ot_ref_cout(n, out, 1);
    int64_t k, slice, count;
    if (!dy || !idx || !plain_dtype(dy->dtype) || (dd && (dd->dtype != dy->dtype ||
                                                          ot_tensor_numel(dd) != ot_tensor_numel(dy))) ||
        (du && du->dtype != dy->dtype)) {
        *why = "ScatterNDGrad: dY and the outputs of one dtype";
        return false;
    }
    if (!nd_plan(dy, idx, &k, &slice, &count, why))
        return false;
    if (du && ot_tensor_numel(du) != count * slice) {
        *why = "ScatterNDGrad: dUpdates have not indices[:-1] x dY[k:] elements";
        return false;
    }
    return true;
}

/* dData = dY with the scattered slices zeroed; dUpdates = those slices.
   When indices repeat, the last write won the forward pass; only that
   update gets the gradient (the others are overwritten: zero). */
ot_status ot_ref_scatter_nd_grad(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                                 ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_scatter_nd_grad_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *dy = in[0], *idx = in[1];
    ot_tensor *dd = ot_ref_out(n, out, 0), *du = ot_ref_out(n, out, 1);
    int64_t k, slice, count, off, other;
    nd_plan(dy, idx, &k, &slice, &count, &why);
    ot_status st = nd_check(g, n, dy, idx, k, slice, count, err);
    if (st != OT_OK)
        return st;
    size_t es = ot_dtype_size(dy->dtype), bytes = (size_t)slice * es;
    if (du) {
        for (int64_t j = 0; j < count; j++) {
            nd_offset(dy, idx, k, slice, j, &off);
            bool later = false; /* a later tuple overwrote this slice */
            for (int64_t l = j + 1; l < count && !later; l++) {
                nd_offset(dy, idx, k, slice, l, &other);
                later = other == off;
            }
            char *dst = (char *)du->data + (size_t)j * bytes;
            if (later)
                memset(dst, 0, bytes);
            else
                memcpy(dst, (const char *)dy->data + (size_t)off * es, bytes);
        }
    }
    if (dd) {
        if (dd->data != dy->data)
            memcpy(dd->data, dy->data, (size_t)ot_tensor_numel(dy) * es);
        for (int64_t j = 0; j < count; j++) {
            nd_offset(dy, idx, k, slice, j, &off);
            memset((char *)dd->data + (size_t)off * es, 0, bytes);
        }
    }
    return OT_OK;
}

bool ot_ref_slice_grad_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                                const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *dy = ot_ref_in(n, in, 0), *dx = ot_ref_cout(n, out, 0);
    size_t ns = 0, nt = 0;
    const int64_t *st = ot_node_attr_ints(n, "starts", &ns);
    const int64_t *sp = ot_node_attr_ints(n, "steps", &nt);
    if (!dy || !dx || !plain_dtype(dy->dtype) || dx->dtype != dy->dtype || dx->ndim != dy->ndim ||
        dx->ndim < 1 || !st || !sp || ns != (size_t)dx->ndim || nt != ns) {
        *why = "SliceGrad: dY and dX of one dtype and rank, a start and step per dim";
        return false;
    }
    for (int d = 0; d < dx->ndim; d++) {
        int64_t last = st[d] + (dy->dims[d] - 1) * sp[d];
        if (dy->dims[d] > 0 && (st[d] < 0 || st[d] >= dx->dims[d] || last < 0 ||
                                last >= dx->dims[d] || sp[d] == 0)) {
            *why = "SliceGrad: a slice position is outside dX";
            return false;
        }
    }
    return true;
}

/* dX = 0; dX[start + i * step] = dY[i] along every dim */
ot_status ot_ref_slice_grad(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                            ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_slice_grad_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *dy = in[0];
    ot_tensor *dx = out[0];
    const int64_t *st = ot_node_attr_ints(n, "starts", &(size_t){ 0 });
    const int64_t *sp = ot_node_attr_ints(n, "steps", &(size_t){ 0 });
    size_t es = ot_dtype_size(dx->dtype);
    int r = dx->ndim;
    memset(dx->data, 0, (size_t)ot_tensor_numel(dx) * es);
    int64_t numel = ot_tensor_numel(dy), stride[OT_MAX_DIMS], idx[OT_MAX_DIMS] = { 0 };
    stride[r - 1] = 1;
    for (int d = r - 2; d >= 0; d--)
        stride[d] = stride[d + 1] * dx->dims[d + 1];
    for (int64_t e = 0; e < numel; e++) {
        int64_t off = 0;
        for (int d = 0; d < r; d++)
            off += (st[d] + idx[d] * sp[d]) * stride[d];
        memcpy((char *)dx->data + (size_t)off * es, (const char *)dy->data + (size_t)e * es, es);
        for (int d = r - 1; d >= 0; d--) {
            if (++idx[d] < dy->dims[d])
                break;
            idx[d] = 0;
        }
    }
    return OT_OK;
}
