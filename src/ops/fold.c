/*
 * fold.c: integer arithmetic on small constant tensors during shape
 * inference (ot_op_fold_ints), for the element-wise ops that exporters use
 * on shapes: Add, Sub, Mul, Div, Mod, Neg, Abs, Max, Min; the comparisons
 * and logic that pick between shape elements (Equal, Greater, Less, And,
 * Not, Where); Expand; and the generators ConstantOfShape and Range.
 *
 * PyTorch's exporter computes sizes at run time (x.size(1) // 2 becomes
 * Shape -> Gather -> Div -> Cast -> Unsqueeze -> Concat -> Reshape). With the
 * input shape bound, every element is known; this folds the arithmetic step
 * so that the Reshape after it gets a constant shape and the chain needs no
 * step at run time. The data-movement ops (Shape, Gather, Concat, Unsqueeze,
 * Slice, Cast...) fold in their own infer functions; this file covers the
 * ops whose infer only computes a shape, whichever file defines them.
 *
 * It folds only int32/int64/bool outputs of at most OT_OP_FOLD_MAX elements
 * whose inputs are all fully known, with numpy broadcasting. Two forms also
 * fold over partial vectors (symbols of dynamic dims, op_util.h), because
 * PyTorch's Expand writes `Where(Equal(shape, -1), 1, shape)`: Equal of a
 * symbol and a negative number is false (a dim is never negative) and of a
 * symbol and itself true; Where with a known condition carries the symbols
 * it picks. Arithmetic with a symbol gives an unknown element
 * (OT_OP_SYM_NONE; x * 1 and x + 0 keep the symbol), so that a Reshape to
 * (L * N, C) still knows C.
 * Integer division truncates toward zero as C (and onnxruntime) does; a
 * division by zero is not folded (the kernel meets it at run time).
 */
#include <string.h>

#include "ops/op_util.h"

typedef enum {
    F_NONE, F_ADD, F_SUB, F_MUL, F_DIV, F_MOD, F_NEG, F_ABS, F_MAX, F_MIN,
    F_EQUAL, F_GREATER, F_LESS, F_AND, F_NOT, F_WHERE, F_EXPAND
} fold_kind;

static fold_kind kind_of(const char *t)
{
    static const struct {
        const char *type;
        fold_kind kind;
    } ops[] = { { "Add", F_ADD }, { "Sub", F_SUB }, { "Mul", F_MUL }, { "Div", F_DIV },
                { "Mod", F_MOD }, { "Neg", F_NEG }, { "Abs", F_ABS }, { "Max", F_MAX },
                { "Min", F_MIN }, { "Equal", F_EQUAL }, { "Greater", F_GREATER },
                { "Less", F_LESS }, { "And", F_AND }, { "Not", F_NOT }, { "Where", F_WHERE },
                { "Expand", F_EXPAND } };
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
    case F_GREATER: *r = a > b; return true;
    case F_LESS: *r = a < b; return true;
    case F_AND: *r = a && b; return true;
    case F_NOT: *r = !a; return true;
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

/* Equal of two elements of which one at least may be a symbol; false when
   the answer depends on the run-time size. */
static bool equal_elems(bool partial, int64_t a, int64_t b, int64_t *r)
{
    bool sa = partial && ot_op_is_sym(a), sb = partial && ot_op_is_sym(b);
    if (!sa && !sb) {
        *r = a == b;
        return true;
    }
    if (sa && sb) { /* the same dim of the same value, or unknown */
        *r = 1;
        return a == b && a != OT_OP_SYM_NONE;
    }
    *r = 0;
    return (sa ? b : a) < 0; /* a dim is never negative */
}

/* ConstantOfShape and Range: y's shape is inferred and static; its elements
   follow from the attribute or the scalar inputs. */
static ot_status fold_generator(ot_graph *g, ot_node *n, ot_value *y, int64_t numel,
                                ot_err *err)
{
    int64_t vals[OT_OP_FOLD_MAX];
    ot_op_dims yd;
    ot_op_dims_of(y, &yd);
    if (!strcmp(n->op_type, "ConstantOfShape")) {
        const ot_attr *a = ot_node_find_attr(n, "value");
        int64_t v = a && a->t && a->t->data && ot_tensor_numel(a->t) == 1
                        ? ot_tensor_get_i64(a->t, 0) : 0;
        if (n->n_in < 1 || !ot_graph_const(g, n->in[0]))
            return OT_OK;
        for (int64_t i = 0; i < numel; i++)
            vals[i] = v;
    } else {
        int64_t s[3];
        for (int i = 0; i < 3; i++) {
            bool partial = false;
            const ot_tensor *t = i < n->n_in ? ot_op_ints(g, n->in[i], &partial) : NULL;
            if (!t || partial || ot_tensor_numel(t) != 1)
                return OT_OK;
            s[i] = ot_tensor_get_i64(t, 0);
        }
        for (int64_t i = 0; i < numel; i++)
            vals[i] = s[0] + i * s[2]; /* numel elements lie within [start, limit) */
    }
    for (int64_t i = 0; y->dtype == OT_DTYPE_INT32 && i < numel; i++)
        vals[i] = (int32_t)vals[i];
    return ot_op_set_ints(g, y, y->dtype, &yd, vals, false, err);
}

ot_status ot_op_fold_ints(ot_graph *g, ot_node *n, ot_err *err)
{
    if (!n->op || !ot_domain_is_default(n->domain) || n->n_out != 1)
        return OT_OK;
    bool generator = !strcmp(n->op_type, "ConstantOfShape") || !strcmp(n->op_type, "Range");
    fold_kind k = kind_of(n->op_type);
    if (k == F_NONE && !generator)
        return OT_OK;
    ot_value *y = ot_op_out(g, n, 0);
    bool logic = k == F_EQUAL || k == F_GREATER || k == F_LESS || k == F_AND || k == F_NOT;
    if (!y || (y->flags & OT_VAL_CONST) || y->ndim < 0 ||
        (y->dtype != OT_DTYPE_INT64 && y->dtype != OT_DTYPE_INT32 &&
         (y->dtype != OT_DTYPE_BOOL || (!logic && !generator))))
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
    if (generator)
        return fold_generator(g, n, y, numel, err);
    if (n->n_in < 1)
        return OT_OK;
    bool unary = k == F_NEG || k == F_ABS || k == F_NOT;
    int want = unary ? 1 : k == F_WHERE ? 3 : 2;
    if (n->n_in != want && !(n->n_in > 2 && (k == F_MAX || k == F_MIN)))
        return OT_OK;
    int n_data = k == F_EXPAND ? 1 : n->n_in; /* Expand's shape is no operand */
    const ot_tensor *ts[OT_OP_FOLD_MAX];
    bool partial[OT_OP_FOLD_MAX];
    if (n->n_in > OT_OP_FOLD_MAX)
        return OT_OK;
    for (int i = 0; i < n_data; i++) {
        partial[i] = false;
        ts[i] = n->in[i] >= 0 ? ot_op_ints_or_bools(g, n->in[i], &partial[i]) : NULL;
        bool may_be_partial = k == F_EQUAL || (k == F_WHERE && i > 0) || k == F_EXPAND ||
                              (!logic && k != F_WHERE && y->dtype == OT_DTYPE_INT64);
        if (!ts[i] || (partial[i] && !may_be_partial) || ts[i]->ndim > yd.ndim)
            return OT_OK;
        for (int d = 0; d < ts[i]->ndim; d++) {
            int64_t td = ts[i]->dims[d], want_d = yd.dims[yd.ndim - ts[i]->ndim + d];
            if (td != 1 && td != want_d)
                return OT_OK;
        }
    }
    bool fmod_c = ot_node_attr_int(n, "fmod", 0) != 0;
    bool any_partial = false;
    int64_t vals[OT_OP_FOLD_MAX], idx[OT_MAX_DIMS] = { 0 }, a[3];
    for (int64_t e = 0; e < numel; e++) {
        for (int i = 0; i < n_data && i < 3; i++)
            a[i] = ot_tensor_get_i64(ts[i], bcast_offset(ts[i], yd.ndim, idx));
        int64_t acc = a[0];
        if (k == F_EXPAND) {
            any_partial |= partial[0]; /* the elements, symbols included, repeat */
        } else if (k == F_WHERE) {
            acc = a[0] ? a[1] : a[2];
            any_partial |= partial[a[0] ? 1 : 2];
        } else if (k == F_EQUAL) {
            if (!equal_elems(partial[0] || partial[1], a[0], a[1], &acc))
                return OT_OK;
        } else if (unary) {
            if (partial[0] && ot_op_is_sym(acc))
                acc = OT_OP_SYM_NONE, any_partial = true;
            else if (!apply(k, fmod_c, acc, 0, &acc))
                return OT_OK;
        } else {
            for (int i = 1; i < n->n_in; i++) {
                int64_t b = ot_tensor_get_i64(ts[i], bcast_offset(ts[i], yd.ndim, idx));
                bool sa = (i == 1 ? partial[0] : any_partial) && ot_op_is_sym(acc);
                bool sb = partial[i] && ot_op_is_sym(b);
                if (sa || sb) { /* a size known only at run time */
                    if (!(sa && !sb && ((k == F_MUL && b == 1) || ((k == F_ADD || k == F_SUB) &&
                                                                  b == 0))))
                        acc = OT_OP_SYM_NONE;
                    any_partial = true;
                } else if (!apply(k, fmod_c, acc, b, &acc)) {
                    return OT_OK;
                }
            }
        }
        vals[e] = y->dtype == OT_DTYPE_INT32 ? (int64_t)(int32_t)acc : acc;
        for (int d = yd.ndim - 1; d >= 0; d--) {
            if (++idx[d] < yd.dims[d])
                break;
            idx[d] = 0;
        }
    }
    return ot_op_set_ints(g, y, y->dtype, &yd, vals, any_partial, err);
}
