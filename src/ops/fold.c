/*
 * fold.c: integer arithmetic on small constant tensors during shape
 * inference (ot_op_fold_ints), for the element-wise ops that exporters use
 * on shapes: Add, Sub, Mul, Div, Mod, Neg, Abs, Max, Min.
 *
 * PyTorch's exporter computes sizes at run time (x.size(1) // 2 becomes
 * Shape -> Gather -> Div -> Cast -> Unsqueeze -> Concat -> Reshape). With the
 * input shape bound, every element is known; this folds the arithmetic step
 * so that the Reshape after it gets a constant shape and the chain needs no
 * step at run time. The data-movement ops (Shape, Gather, Concat, Unsqueeze,
 * Slice, Cast...) fold in their own infer functions; this file covers the
 * ops whose infer only computes a shape, whichever file defines them.
 *
 * It folds only int32/int64 outputs of at most OT_OP_FOLD_MAX elements whose
 * inputs are all fully known (not partial vectors), with numpy broadcasting.
 * Integer division truncates toward zero as C (and onnxruntime) does; a
 * division by zero is not folded (the kernel meets it at run time).
 */
#include <string.h>

#include "ops/op_util.h"

typedef enum { F_NONE, F_ADD, F_SUB, F_MUL, F_DIV, F_MOD, F_NEG, F_ABS, F_MAX, F_MIN } fold_kind;

static fold_kind kind_of(const char *t)
{
    static const struct {
        const char *type;
        fold_kind kind;
    } ops[] = { { "Add", F_ADD }, { "Sub", F_SUB }, { "Mul", F_MUL }, { "Div", F_DIV },
                { "Mod", F_MOD }, { "Neg", F_NEG }, { "Abs", F_ABS }, { "Max", F_MAX },
                { "Min", F_MIN } };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (!strcmp(t, ops[i].type))
            return ops[i].kind;
    return F_NONE;
}

/* a op b; false when the result is not defined (division by zero) */
static bool apply(fold_kind k, bool fmod_c, int64_t a, int64_t b, int64_t *r)
{
    switch (k) {
    case F_ADD: *r = (int64_t)((uint64_t)a + (uint64_t)b); return true;
    case F_SUB: *r = (int64_t)((uint64_t)a - (uint64_t)b); return true;
    case F_MUL: *r = (int64_t)((uint64_t)a * (uint64_t)b); return true;
    case F_DIV:
        if (b == 0 || (a == INT64_MIN && b == -1))
            return false;
        *r = a / b;
        return true;
    case F_MOD:
        if (b == 0 || (a == INT64_MIN && b == -1))
            return false;
        *r = a % b;
        if (!fmod_c && *r != 0 && ((*r < 0) != (b < 0)))
            *r += b; /* fmod=0: the sign of the divisor, as Python's % */
        return true;
    case F_MAX: *r = a > b ? a : b; return true;
    case F_MIN: *r = a < b ? a : b; return true;
    case F_NEG: *r = (int64_t)(0 - (uint64_t)a); return true;
    case F_ABS: *r = a < 0 ? (int64_t)(0 - (uint64_t)a) : a; return true;
    default: return false;
    }
}

/* Offset into t (right-aligned against y's rank yr) of y's index idx. */
static int64_t bcast_offset(const ot_tensor *t, int yr, const int64_t *idx)
{
    int64_t off = 0;
    for (int d = 0; d < t->ndim; d++) {
        int64_t i = t->dims[d] == 1 ? 0 : idx[yr - t->ndim + d];
        off = off * t->dims[d] + i;
    }
    return off;
}

ot_status ot_op_fold_ints(ot_graph *g, ot_node *n, ot_err *err)
{
    if (!n->op || !ot_domain_is_default(n->domain) || n->n_out != 1 || n->n_in < 1)
        return OT_OK;
    fold_kind k = kind_of(n->op_type);
    if (k == F_NONE)
        return OT_OK;
    ot_value *y = ot_op_out(g, n, 0);
    if (!y || (y->flags & OT_VAL_CONST) || y->ndim < 0 ||
        (y->dtype != OT_DTYPE_INT64 && y->dtype != OT_DTYPE_INT32))
        return OT_OK;
    bool unary = k == F_NEG || k == F_ABS;
    if ((unary && n->n_in != 1) || (!unary && n->n_in < 2) ||
        (n->n_in > 2 && k != F_MAX && k != F_MIN))
        return OT_OK;
    ot_op_dims yd;
    ot_op_dims_of(y, &yd);
    int64_t numel = 1;
    for (int d = 0; d < yd.ndim; d++) {
        if (yd.dims[d] < 0)
            return OT_OK;
        numel *= yd.dims[d];
        if (numel > OT_OP_FOLD_MAX)
            return OT_OK;
    }
    const ot_tensor *ts[OT_OP_FOLD_MAX];
    if (n->n_in > OT_OP_FOLD_MAX)
        return OT_OK;
    for (int i = 0; i < n->n_in; i++) {
        bool partial = false;
        ts[i] = n->in[i] >= 0 ? ot_op_ints(g, n->in[i], &partial) : NULL;
        if (!ts[i] || partial || ts[i]->ndim > yd.ndim)
            return OT_OK;
        for (int d = 0; d < ts[i]->ndim; d++) {
            int64_t td = ts[i]->dims[d], want = yd.dims[yd.ndim - ts[i]->ndim + d];
            if (td != 1 && td != want)
                return OT_OK;
        }
    }
    bool fmod_c = ot_node_attr_int(n, "fmod", 0) != 0;
    int64_t vals[OT_OP_FOLD_MAX], idx[OT_MAX_DIMS] = { 0 };
    for (int64_t e = 0; e < numel; e++) {
        int64_t acc = ot_tensor_get_i64(ts[0], bcast_offset(ts[0], yd.ndim, idx));
        if (unary && !apply(k, fmod_c, acc, 0, &acc))
            return OT_OK;
        for (int i = 1; i < n->n_in; i++) {
            int64_t b = ot_tensor_get_i64(ts[i], bcast_offset(ts[i], yd.ndim, idx));
            if (!apply(k, fmod_c, acc, b, &acc))
                return OT_OK;
        }
        vals[e] = y->dtype == OT_DTYPE_INT32 ? (int64_t)(int32_t)acc : acc;
        for (int d = yd.ndim - 1; d >= 0; d--) {
            if (++idx[d] < yd.dims[d])
                break;
            idx[d] = 0;
        }
    }
    return ot_op_set_ints(g, y, y->dtype, &yd, vals, false, err);
}
