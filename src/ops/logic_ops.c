/*
 * logic_ops.c: comparisons, logic, selection and the remainder, with numpy
 * broadcasting (opset 7 on for the binary ones; the legacy broadcast/axis
 * form before it is not implemented):
 *   Equal, Greater, Less (7-21): two inputs of one numeric or bool type ->
 *     bool. No gradient: their outputs are masks.
 *   And (7-21), Not (1-21): bool -> bool. No gradient.
 *   Where (9-21): condition (bool), X, Y of one type -> X's type.
 *     dX = Where(cond, dY, 0) and dY = Where(cond, 0, dY), each summed down
 *     to its input's shape; the condition takes no gradient.
 *   Mod (10-21): one numeric type; fmod 0 (the sign of the divisor, as
 *     Python's %, integers only) or 1 (the sign of the dividend, C's fmod).
 *     No gradient for a float Mod (refused naming the node); an integer one
 *     never carries a gradient.
 *
 * All of them fold on small integer (and bool) tensors (fold.c): PyTorch
 * writes them into the shape arithmetic of Expand (ViT's class token) and of
 * Swin's window partition.
 *
 * Reference: https://onnx.ai/onnx/operators/ (the page of each op)
 */
#include <stdio.h>
#include <string.h>

#include "ops/grad_util.h"
#include "ops/op_util.h"

#define NAME_MAX_ 512

static const ot_attr_spec no_attrs[] = { { 0 } };

static const ot_attr_spec mod_attrs[] = {
    { "fmod", OT_ATTR_INT, "0", ot_op_check_bool, 0, 0, false },
    { 0 },
};

/* Broadcasts the shapes of inputs [from, n_in) of n into *out; checks that
   they share the dtype of input `from` and returns it in *t. False when a
   rank or a dtype is not known yet. */
static bool broadcast_inputs(ot_graph *g, ot_node *n, int from, ot_op_dims *out, ot_dtype *t,
                             ot_status *st, ot_err *err)
{
    *st = OT_OK;
    for (int i = 0; i < n->n_in; i++)
        if (!ot_op_known(ot_op_in(g, n, i)))
            return false;
    const ot_value *first = ot_op_in(g, n, from);
    *t = first->dtype;
    ot_op_dims_of(first, out);
    for (int i = from + 1; i < n->n_in; i++) {
        const ot_value *v = ot_op_in(g, n, i);
        if (v->dtype != *t) {
            *st = ot_op_err(err, OT_ERR_MODEL, g, n, "inputs '%s' (%s) and '%s' (%s) differ in type",
                            first->name, ot_dtype_name(*t), v->name, ot_dtype_name(v->dtype));
            return false;
        }
        ot_op_dims d, r;
        ot_op_dims_of(v, &d);
        if ((*st = ot_op_broadcast(g, n, out, &d, &r, err)) != OT_OK)
            return false;
        *out = r;
    }
    return true;
}

static bool numeric_or_bool(ot_dtype t) { return t == OT_DTYPE_BOOL || ot_dtype_is_numeric(t); }

/* Equal, Greater, Less, And, Not, Mod: inputs of one type, broadcast ->
   bool (the comparisons and logic) or that type (Mod). Equal takes numbers
   and bool (strings import and are refused when compiled), Greater, Less
   and Mod numbers (Mod's fmod must be 1 for floats), And and Not bool. */
static ot_status same_type_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_op_dims d;
    ot_dtype t;
    ot_status st;
    ot_value *y = ot_op_out(g, n, 0);
    if (!broadcast_inputs(g, n, 0, &d, &t, &st, err))
        return st;
    ot_op_id id = n->op->id;
    bool logic = id == OT_OP_AND || id == OT_OP_NOT;
    bool ok = logic               ? t == OT_DTYPE_BOOL
              : id == OT_OP_EQUAL ? numeric_or_bool(t) || t == OT_DTYPE_STRING
                                  : ot_dtype_is_numeric(t) && t != OT_DTYPE_BOOL;
    if (!ok)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "input '%s' is %s, expected %s",
                         ot_op_in(g, n, 0)->name, ot_dtype_name(t),
                         logic ? "bool" : "a numeric type");
    if (id == OT_OP_MOD && ot_op_is_float(t) && ot_node_attr_int(n, "fmod", 0) == 0)
        return ot_op_err(err, OT_ERR_MODEL, g, n,
                         "fmod must be 1 for floating-point inputs ('%s' is %s)",
                         ot_op_in(g, n, 0)->name, ot_dtype_name(t));
    if (y)
        ot_op_set(y, id == OT_OP_MOD ? t : OT_DTYPE_BOOL, &d);
    return OT_OK;
}

/* Where: (cond bool, X, Y of one type) -> X's type, the three broadcast */
static ot_status where_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_op_dims d, c, r;
    ot_dtype t;
    ot_status st;
    ot_value *y = ot_op_out(g, n, 0);
    if (!broadcast_inputs(g, n, 1, &d, &t, &st, err))
        return st;
    const ot_value *cond = ot_op_in(g, n, 0);
    if (cond->dtype != OT_DTYPE_BOOL)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "condition '%s' is %s, expected bool",
                         cond->name, ot_dtype_name(cond->dtype));
    ot_op_dims_of(cond, &c);
    if ((st = ot_op_broadcast(g, n, &c, &d, &r, err)) != OT_OK)
        return st;
    if (y)
        ot_op_set(y, t, &r);
    return OT_OK;
}

/* Where: dX = Where(cond, dY, 0), dY_ = Where(cond, 0, dY), each reduced to
   its input's shape. */
static ot_status where_grad(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                            const bool *need_dx, ot_err *err)
{
    char name[NAME_MAX_], hint[NAME_MAX_];
    ot_status st = OT_OK;
    if (dy[0] < 0 || (!need_dx[1] && !need_dx[2]))
        return OT_OK;
    if (g->values[dy[0]].dtype != OT_DTYPE_FLOAT)
        return ot_op_err(err, OT_ERR_UNSUPPORTED, g, &g->nodes[node],
                         "no gradient for a Where of %s (float32 only)",
                         ot_dtype_name(g->values[dy[0]].dtype));
    int32_t zero = -1;
    float z = 0.0f;
    snprintf(hint, sizeof hint, "grad/%s/zero", g->values[g->nodes[node].out[0]].name);
    OT_TRY(ot_op_grad_const_f32(g, hint, NULL, 0, &z, &zero, err));
    for (int k = 1; k <= 2; k++) {
        if (!need_dx[k])
            continue;
        const ot_node *n = &g->nodes[node];
        int32_t x = n->in[k], in[3] = { n->in[0], k == 1 ? dy[0] : zero, k == 1 ? zero : dy[0] };
        int32_t sel = -1;
        snprintf(hint, sizeof hint, "grad/%s/full", g->values[x].name);
        const char *names[1] = { hint };
        OT_TRY(ot_op_grad_emit(g, &ot_op_where, 16,
                               ot_op_grad_node_name(g, node, k == 1 ? "x" : "y", name, sizeof name),
                               in, 3, NULL, 0, names, &sel, 1, err));
        OT_TRY(ot_op_grad_reduce_to(g, ot_op_grad_node_name(g, node, k == 1 ? "x_sum" : "y_sum",
                                                            name, sizeof name),
                                    sel, x, -1, &dx[k], err));
    }
done:
    return st;
}

static ot_status mod_grad(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                          const bool *need_dx, ot_err *err)
{
    (void)dy, (void)dx, (void)need_dx;
    return ot_op_err(err, OT_ERR_UNSUPPORTED, g, &g->nodes[node],
                     "no gradient for a floating-point Mod");
}

/* No gradient: bool outputs (masks). */
OT_OP_DEFAULT_DESC(ot_op_equal, OT_OP_EQUAL, "Equal", 7, 2, 2, 1, no_attrs, same_type_infer, NULL,
                   NULL);
OT_OP_DEFAULT_DESC(ot_op_greater, OT_OP_GREATER, "Greater", 7, 2, 2, 1, no_attrs,
                   same_type_infer, NULL, NULL);
OT_OP_DEFAULT_DESC(ot_op_less, OT_OP_LESS, "Less", 7, 2, 2, 1, no_attrs, same_type_infer, NULL,
                   NULL);
OT_OP_DEFAULT_DESC(ot_op_and, OT_OP_AND, "And", 7, 2, 2, 1, no_attrs, same_type_infer, NULL, NULL);
OT_OP_DEFAULT_DESC(ot_op_not, OT_OP_NOT, "Not", 1, 1, 1, 1, no_attrs, same_type_infer, NULL, NULL);
OT_OP_DEFAULT_DESC(ot_op_where, OT_OP_WHERE, "Where", 9, 3, 3, 1, no_attrs, where_infer, NULL,
                   where_grad);
OT_OP_DEFAULT_DESC(ot_op_mod, OT_OP_MOD, "Mod", 10, 2, 2, 1, mod_attrs, same_type_infer, NULL,
                   mod_grad);
