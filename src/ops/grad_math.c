/*
 * grad_math.c: the gradient rules of the math ops (math_ops.c, reduce.c) and
 * their two private backward ops (domain ai.onnxtrain, opset 1, no_grad):
 *
 *   UnaryGrad   (dY, X) -> dX = dY * f'(X)   op: the forward op's type
 *               (Sqrt, Reciprocal, Exp, Log, Tanh, Erf, HardSigmoid,
 *               HardSwish, Elu, Selu, Softplus, Gelu, Pow); alpha, beta,
 *               gamma, approximate: the forward's attributes (Pow: alpha is
 *               the exponent)
 *   PReluGrad   (dY, X, slope) -> dX, dSlope at X's shape (summed down to the
 *               slope's by ReduceSumTo)
 *   ExtremumGrad (dY, Y, X_0, ..., X_n-1) -> dY * (X_k == Y) / (number of
 *               inputs equal to Y), at Y's shape; index: k (Max and Min:
 *               ties share the gradient evenly)
 *   ReduceGrad  (dY, X [, Y]) -> dX, X's shape   mode: ReduceSum, ReduceMean,
 *               ReduceMax or ReduceL2; axes: the reduced dims (explicit,
 *               non-negative); keepdims as the forward. Y (the forward output)
 *               for ReduceMax and ReduceL2.
 *
 * Sub and Div emit ONNX ops (Mul, Div) and sum broadcast operands back down
 * (ReduceSumTo), as Add and Mul do (grad_rules.c).
 */
#include <stdio.h>
#include <string.h>

#include "ops/grad_util.h"
#include "ops/op_util.h"
#include "ops/reduce.h"

#define NAME_MAX_ 512

static ot_attr attr_string(const char *name, const char *s)
{
    ot_attr a = { .name = name, .type = OT_ATTR_STRING, .s = s, .s_len = strlen(s) };
    return a;
}

/* v * c for a scalar constant c. */
static ot_status times_const(ot_graph *g, int32_t node, const char *sfx, int32_t v, float c,
                             int32_t *out, ot_err *err)
{
    ot_status st = OT_OK;
    char name[NAME_MAX_], hint[NAME_MAX_];
    int32_t in[2] = { v, -1 };
    OT_TRY(ot_op_grad_const_f32(g, ot_op_grad_node_name(g, node, sfx, name, sizeof name), NULL,
                                0, &c, &in[1], err));
    snprintf(hint, sizeof hint, "%s/scaled", g->values[v].name);
    OT_TRY(ot_op_grad_emit1(g, &ot_op_mul, ot_op_grad_node_name(g, node, sfx, name, sizeof name),
                            in, 2, NULL, 0, hint, out, err));
done:
    return st;
}

/* UnaryGrad (dY, X) with the forward's type and its attributes, plus
   `alpha` as given when has_alpha (Pow's exponent). */
static ot_status unary_grad(ot_graph *g, int32_t node, int32_t dy, int32_t x, bool has_alpha,
                            float alpha, int32_t *dx, ot_err *err)
{
    char name[NAME_MAX_], hint[NAME_MAX_];
    const ot_node *n = &g->nodes[node];
    ot_attr as[5];
    int k = 0;
    as[k++] = attr_string("op", n->op->type);
    if (has_alpha)
        as[k++] = ot_op_grad_attr_float("alpha", alpha);
    static const char *const floats[3] = { "alpha", "beta", "gamma" };
    for (int i = 0; i < 3; i++) {
        const ot_attr *a = ot_node_find_attr(n, floats[i]);
        if (a && a->type == OT_ATTR_FLOAT && !has_alpha)
            as[k++] = ot_op_grad_attr_float(floats[i], a->f);
    }
    const ot_attr *ap = ot_node_find_attr(n, "approximate");
    if (ap && ap->type == OT_ATTR_STRING)
        as[k++] = *ap;
    int32_t in[2] = { dy, x };
    return ot_op_grad_emit1(g, &ot_op_unary_grad,
                            ot_op_grad_node_name(g, node, NULL, name, sizeof name), in, 2, as, k,
                            ot_op_grad_dx_name(g, node, 0, hint), dx, err);
}

/* Sqrt: 1/(2 sqrt x); Reciprocal: -1/x^2; Exp: exp x; Log: 1/x; Tanh:
   1 - tanh^2 x; Erf: 2/sqrt(pi) exp(-x^2); HardSigmoid: alpha inside
   0 < alpha x + beta < 1, else 0; HardSwish: 0 below -3, 1 above 3, else
   (2x + 3)/6; Elu: 1 for x > 0, else alpha exp x; Selu: gamma, or gamma alpha
   exp x; Softplus: sigmoid x; Gelu: Phi(x) + x phi(x), or the derivative of
   the tanh form. dX = dY * f'(X) (UnaryGrad). */
ot_status ot_op_grad_unary_math(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                                const bool *need_dx, ot_err *err)
{
    if (dy[0] < 0 || !need_dx[0])
        return OT_OK;
    return unary_grad(g, node, dy[0], g->nodes[node].in[0], false, 0, &dx[0], err);
}

/* Sub: dA = dY and dB = -dY, each summed over its operand's broadcast dims. */
ot_status ot_op_grad_sub(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                         const bool *need_dx, ot_err *err)
{
    ot_status st = OT_OK;
    char name[NAME_MAX_];
    if (dy[0] < 0)
        return OT_OK;
    int64_t axis = ot_op_grad_legacy_axis(g, node);
    if (need_dx[0])
        OT_TRY(ot_op_grad_reduce_to(g, ot_op_grad_node_name(g, node, "a", name, sizeof name),
                                    dy[0], g->nodes[node].in[0], -1, &dx[0], err));
    if (need_dx[1]) {
        int32_t neg;
        OT_TRY(times_const(g, node, "neg", dy[0], -1.0f, &neg, err));
        OT_TRY(ot_op_grad_reduce_to(g, ot_op_grad_node_name(g, node, "b", name, sizeof name),
                                    neg, g->nodes[node].in[1], axis, &dx[1], err));
    }
done:
    return st;
}

/* Div: Y = A / B, so dA = dY / B and dB = -dY A / B^2 = -(dY / B) Y, each
   summed over its operand's broadcast dims. */
ot_status ot_op_grad_div(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                         const bool *need_dx, ot_err *err)
{
    ot_status st = OT_OK;
    char name[NAME_MAX_], hint[NAME_MAX_];
    if (dy[0] < 0 || !(need_dx[0] || need_dx[1]))
        return OT_OK;
    int64_t axis = ot_op_grad_legacy_axis(g, node);
    const ot_node *n = &g->nodes[node];
    int32_t a = n->in[0], b = n->in[1], y = n->out[0], q;
    {
        /* dY has A's shape in the legacy form: keep B's legacy placement */
        int32_t in[2] = { dy[0], b };
        snprintf(hint, sizeof hint, "grad/%s/over_b", g->values[a].name);
        OT_TRY(ot_op_grad_emit(g, &ot_op_div, axis >= 0 ? n->opset : 0,
                               ot_op_grad_node_name(g, node, "q", name, sizeof name), in, 2,
                               axis >= 0 ? n->attrs : NULL, axis >= 0 ? n->n_attrs : 0,
                               (const char *const[]){ hint }, &q, 1, err));
    }
    if (need_dx[0])
        OT_TRY(ot_op_grad_reduce_to(g, ot_op_grad_node_name(g, node, "a", name, sizeof name), q,
                                    a, -1, &dx[0], err));
    if (need_dx[1]) {
        int32_t in[2] = { q, y }, prod, neg;
        snprintf(hint, sizeof hint, "grad/%s/times_y", g->values[b].name);
        OT_TRY(ot_op_grad_emit1(g, &ot_op_mul,
                                ot_op_grad_node_name(g, node, "qy", name, sizeof name), in, 2, NULL,
                                0, hint, &prod, err));
        OT_TRY(times_const(g, node, "neg", prod, -1.0f, &neg, err));
        OT_TRY(ot_op_grad_reduce_to(g, ot_op_grad_node_name(g, node, "b", name, sizeof name),
                                    neg, b, axis, &dx[1], err));
    }
done:
    return st;
}

/* Pow with a constant scalar exponent e: dA = dY * e * A^(e-1) (UnaryGrad
   with alpha e). A trained or computed exponent has no rule. */
ot_status ot_op_grad_pow(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                         const bool *need_dx, ot_err *err)
{
    if (dy[0] < 0 || !(need_dx[0] || need_dx[1]))
        return OT_OK;
    const ot_node *n = &g->nodes[node];
    int32_t a = n->in[0], b = n->in[1];
    if (need_dx[1])
        return ot_op_grad_unsupported(
            g, node, "a trained exponent (Pow trains only with a constant exponent)", err);
    const ot_tensor *e = ot_graph_const(g, b);
    if (!e || ot_tensor_numel(e) != 1 || !e->data ||
        (g->values[b].flags & (OT_VAL_TRAINABLE | OT_VAL_STATE)))
        return ot_op_grad_unsupported(
            g, node,
            "a non-constant exponent (Pow trains only with a constant scalar "
            "exponent)",
            err);
    if (!ot_op_grad_same_shape(g, dy[0], a))
        return ot_op_grad_unsupported(
            g, node, "an exponent that broadcasts the base to a larger shape", err);
    return unary_grad(g, node, dy[0], a, true, (float)ot_tensor_get_f64(e, 0), &dx[0], err);
}

/* ReduceSum: dX = dY broadcast back over the reduced dims; ReduceMean: the
   same divided by the number of reduced elements; ReduceMax: dY shared
   evenly by the elements equal to the maximum (as torch.amax); ReduceL2:
   dY * X / Y (0 where Y is 0). ReduceGrad, with the axes made explicit. */
ot_status ot_op_grad_reduce(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                            const bool *need_dx, ot_err *err)
{
    char name[NAME_MAX_], hint[NAME_MAX_];
    if (dy[0] < 0 || !need_dx[0])
        return OT_OK;
    const ot_node *n = &g->nodes[node];
    int32_t x = n->in[0];
    const ot_value *xv = &g->values[x];
    const ot_tensor *axes = NULL;
    if (n->n_in > 1 && n->in[1] >= 0 && !ot_node_find_attr(n, "axes")) {
        axes = ot_graph_const(g, n->in[1]);
        if (!axes || (ot_tensor_numel(axes) > 0 && !axes->data))
            return ot_op_grad_unsupported(g, node, "axes that are not a constant", err);
    }
    bool mask[OT_MAX_DIMS];
    if (xv->ndim < 0 || xv->ndim > OT_MAX_DIMS || !ot_op_reduce_axes(n, axes, xv->ndim, mask))
        return ot_op_grad_unsupported(g, node, "axes out of range or an input of unknown rank",
                                      err);
    int64_t list[OT_MAX_DIMS];
    size_t k = 0;
    for (int d = 0; d < xv->ndim; d++)
        if (mask[d])
            list[k++] = d;
    if (k == 0) { /* noop_with_empty_axes: Y = X */
        dx[0] = dy[0];
        return OT_OK;
    }
    bool uses_y = n->op == &ot_op_reduce_max || n->op == &ot_op_reduce_l2;
    ot_attr as[3] = { attr_string("mode", n->op->type), ot_op_grad_attr_ints("axes", list, k),
                      ot_op_grad_attr_int("keepdims", ot_node_attr_int(n, "keepdims", 1)) };
    int32_t in[3] = { dy[0], x, uses_y ? n->out[0] : -1 };
    return ot_op_grad_emit1(
        g, &ot_op_reduce_grad, ot_op_grad_node_name(g, node, NULL, name, sizeof name), in,
        uses_y ? 3 : 2, as, 3, ot_op_grad_dx_name(g, node, 0, hint), &dx[0], err);
}

/* PRelu: dX = dY * (X < 0 ? slope : 1); dSlope = dY * (X < 0 ? X : 0)
   summed over the dims the slope is broadcast along (before opset 7, a 1-D
   slope sits at dim 1). */
ot_status ot_op_grad_prelu(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                           const bool *need_dx, ot_err *err)
{
    ot_status st = OT_OK;
    char name[NAME_MAX_], h0[NAME_MAX_], h1[NAME_MAX_];
    if (dy[0] < 0 || !(need_dx[0] || need_dx[1]))
        return OT_OK;
    const ot_node *n = &g->nodes[node];
    int32_t x = n->in[0], slope = n->in[1], outs[2];
    const char *names[2] = { need_dx[0] ? ot_op_grad_dx_name(g, node, 0, h0) : NULL, NULL };
    if (need_dx[1]) {
        snprintf(h1, sizeof h1, "grad/%s/full", g->values[slope].name);
        names[1] = h1;
    }
    int32_t in[3] = { dy[0], x, slope };
    OT_TRY(ot_op_grad_emit(g, &ot_op_prelu_grad, 0,
                           ot_op_grad_node_name(g, node, NULL, name, sizeof name), in, 3, NULL, 0,
                           names, outs, need_dx[1] ? 2 : 1, err));
    if (need_dx[0])
        dx[0] = outs[0];
    if (need_dx[1]) {
        const ot_value *sv = &g->values[slope];
        int64_t axis = n->opset < 7 && sv->ndim == 1 && sv->dims[0] != 1 ? 1 : -1;
        OT_TRY(ot_op_grad_reduce_to(g, ot_op_grad_node_name(g, node, "slope", name, sizeof name),
                                    outs[1], slope, axis, &dx[1], err));
    }
done:
    return st;
}

/* Max, Min: dX_k = dY where X_k is the chosen value, shared evenly among the
   inputs that tie (ExtremumGrad), summed over X_k's broadcast dims. */
ot_status ot_op_grad_max_min(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                             const bool *need_dx, ot_err *err)
{
    ot_status st = OT_OK;
    char name[NAME_MAX_], hint[NAME_MAX_], sfx[32];
    int32_t *in = NULL;
    if (dy[0] < 0)
        return OT_OK;
    int n_in = g->nodes[node].n_in;
    in = ot_malloc(sizeof *in * (size_t)(n_in + 2));
    if (!in)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    in[0] = dy[0];
    in[1] = g->nodes[node].out[0];
    for (int k = 0; k < n_in; k++)
        in[2 + k] = g->nodes[node].in[k];
    for (int k = 0; k < n_in; k++) {
        if (!need_dx[k])
            continue;
        int32_t full;
        ot_attr a = ot_op_grad_attr_int("index", k);
        snprintf(sfx, sizeof sfx, "%d", k);
        snprintf(hint, sizeof hint, "grad/%s/full", g->values[in[2 + k]].name);
        OT_TRY(ot_op_grad_emit1(g, &ot_op_extremum_grad,
                                ot_op_grad_node_name(g, node, sfx, name, sizeof name), in, n_in + 2,
                                &a, 1, hint, &full, err));
        snprintf(sfx, sizeof sfx, "%d_sum", k);
        OT_TRY(ot_op_grad_reduce_to(g, ot_op_grad_node_name(g, node, sfx, name, sizeof name),
                                    full, in[2 + k], -1, &dx[k], err));
    }
done:
    ot_free(in);
    return st;
}

/* Mean of n inputs: dX_k = dY / n summed over X_k's broadcast dims. */
ot_status ot_op_grad_mean(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                          const bool *need_dx, ot_err *err)
{
    ot_status st = OT_OK;
    char name[NAME_MAX_], sfx[32];
    if (dy[0] < 0)
        return OT_OK;
    int n_in = g->nodes[node].n_in, need = 0;
    for (int k = 0; k < n_in; k++)
        need += need_dx[k];
    if (!need)
        return OT_OK;
    int32_t part = dy[0];
    if (n_in > 1)
        OT_TRY(times_const(g, node, "share", dy[0], 1.0f / (float)n_in, &part, err));
    for (int k = 0; k < n_in; k++) {
        if (!need_dx[k])
            continue;
        snprintf(sfx, sizeof sfx, "%d", k);
        OT_TRY(ot_op_grad_reduce_to(g, ot_op_grad_node_name(g, node, sfx, name, sizeof name),
                                    part, g->nodes[node].in[k], -1, &dx[k], err));
    }
done:
    return st;
}

/* ------------------------------------------------------- backward ops */

static const ot_attr_spec unary_grad_attrs[] = {
    { "alpha", OT_ATTR_FLOAT, NULL, NULL, 0, 0, false },
    { "approximate", OT_ATTR_STRING, "none", NULL, 0, 0, false },
    { "beta", OT_ATTR_FLOAT, NULL, NULL, 0, 0, false },
    { "gamma", OT_ATTR_FLOAT, NULL, NULL, 0, 0, false },
    { "op", OT_ATTR_STRING, NULL, NULL, 0, 0, false },
    { 0 },
};

static const ot_attr_spec no_attrs[] = { { 0 } };

static const ot_attr_spec reduce_grad_attrs[] = {
    { "axes", OT_ATTR_INTS, NULL, NULL, 0, 0, false },
    { "keepdims", OT_ATTR_INT, "1", ot_op_check_bool, 0, 0, false },
    { "mode", OT_ATTR_STRING, NULL, NULL, 0, 0, false },
    { 0 },
};

/* dY, X, ... -> every output (dX, PReluGrad's dSlope) shaped like X, of dY's
   (float) dtype */
static ot_status like_x_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *dyv = ot_op_in(g, n, 0), *x = ot_op_in(g, n, 1);
    if (!ot_op_known(dyv) || !ot_op_known(x))
        return OT_OK;
    if (!ot_op_is_float(dyv->dtype))
        return ot_op_need_float(g, n, 0, dyv, err);
    ot_op_dims d;
    ot_op_dims_of(x, &d);
    for (int i = 0; i < n->n_out; i++) {
        ot_value *out = ot_op_out(g, n, i);
        if (out)
            ot_op_set(out, dyv->dtype, &d);
    }
    return OT_OK;
}

OT_OP_PRIVATE_NO_GRAD(ot_op_unary_grad, OT_OP_UNARY_GRAD, "UnaryGrad", 2, 2, 1, 1,
                      unary_grad_attrs, like_x_infer, NULL);

OT_OP_PRIVATE_NO_GRAD(ot_op_prelu_grad, OT_OP_PRELU_GRAD, "PReluGrad", 3, 3, 1, 2, no_attrs,
                      like_x_infer, NULL);
static const ot_attr_spec extremum_grad_attrs[] = {
    { "index", OT_ATTR_INT, "0", NULL, 0, 0, false },
    { 0 },
};

/* dY, Y, X... -> like Y */
static ot_status extremum_grad_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *dyv = ot_op_in(g, n, 0), *out = ot_op_out(g, n, 0);
    if (!out || !ot_op_known(dyv))
        return OT_OK;
    if (!ot_op_is_float(dyv->dtype))
        return ot_op_need_float(g, n, 0, dyv, err);
    ot_op_copy(out, dyv);
    return OT_OK;
}

OT_OP_PRIVATE_NO_GRAD(ot_op_extremum_grad, OT_OP_EXTREMUM_GRAD, "ExtremumGrad", 3, -1, 1, 1,
                      extremum_grad_attrs, extremum_grad_infer, NULL);
OT_OP_PRIVATE_NO_GRAD(ot_op_reduce_grad, OT_OP_REDUCE_GRAD, "ReduceGrad", 2, 3, 1, 1,
                      reduce_grad_attrs, like_x_infer, NULL);
