/*
 * math_ops.c: element-wise math ops, ONNX opsets 1-21.
 *
 * Unary, float types only, output shaped like the input: Sqrt, Reciprocal,
 * Exp, Log, Tanh, Erf (from 9), HardSigmoid (alpha 0.2, beta 0.5),
 * HardSwish (from 14), Elu (alpha 1), Selu (alpha, gamma), Softplus and Gelu
 * (from 20; approximate "none" or "tanh").
 * Binary, numpy broadcasting as Add and Mul (legacy broadcast/axis before
 * opset 7): Sub and Div (one numeric dtype), Pow (from opset 12 the exponent
 * may be of another numeric type than the base; the output has the base's).
 * PRelu: Y = X < 0 ? slope * X : X, slope broadcast to X (right-aligned;
 * before opset 7 a 1-D slope is per channel, dim 1); float types.
 * Variadic, any number of inputs broadcast together (from opset 8; before,
 * of one shape): Max and Min (numeric), Mean (float).
 *
 * Gradients: grad_math.c. Reductions: reduce.c.
 *
 * Reference: https://onnx.ai/onnx/operators/ (the page of each op)
 */
#include <string.h>

#include "ops/grad_util.h"
#include "ops/op_util.h"

static const ot_attr_spec legacy_attrs[] = {
    { "consumed_inputs", OT_ATTR_INTS, NULL, NULL, 1, 5, true },
    { 0 },
};

static const ot_attr_spec no_attrs[] = { { 0 } };

static const ot_attr_spec hardsigmoid_attrs[] = {
    { "alpha", OT_ATTR_FLOAT, "0.2", NULL, 0, 0, false },
    { "beta", OT_ATTR_FLOAT, "0.5", NULL, 0, 0, false },
    { "consumed_inputs", OT_ATTR_INTS, NULL, NULL, 1, 5, true },
    { 0 },
};

static const ot_attr_spec elu_attrs[] = {
    { "alpha", OT_ATTR_FLOAT, "1.0", NULL, 0, 0, false },
    { "consumed_inputs", OT_ATTR_INTS, NULL, NULL, 1, 5, true },
    { 0 },
};

static const ot_attr_spec selu_attrs[] = {
    { "alpha", OT_ATTR_FLOAT, "1.67326319217681884765625", NULL, 0, 0, false },
    { "consumed_inputs", OT_ATTR_INTS, NULL, NULL, 1, 5, true },
    { "gamma", OT_ATTR_FLOAT, "1.05070102214813232421875", NULL, 0, 0, false },
    { 0 },
};

static ot_status check_approximate(const ot_graph *g, const ot_node *n, const ot_attr *a,
                                   ot_err *err)
{
    (void)g, (void)n;
    if (a->s_len == 4 && !memcmp(a->s, "none", 4))
        return OT_OK;
    if (a->s_len == 4 && !memcmp(a->s, "tanh", 4))
        return OT_OK;
    return ot_err_set(err, OT_ERR_MODEL, "is '%.*s', expected 'none' or 'tanh'", (int)a->s_len,
                      a->s);
}

static const ot_attr_spec gelu_attrs[] = {
    { "approximate", OT_ATTR_STRING, "none", check_approximate, 0, 0, false },
    { 0 },
};

static const ot_attr_spec binary_attrs[] = {
    { "axis", OT_ATTR_INT, NULL, NULL, 1, 6, false },
    { "broadcast", OT_ATTR_INT, "0", ot_op_check_bool, 1, 6, false },
    { "consumed_inputs", OT_ATTR_INTS, NULL, NULL, 1, 5, true },
    { 0 },
};

/* x -> y of the same float dtype and shape. */
static ot_status float_unary_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *x = ot_op_in(g, n, 0), *y = ot_op_out(g, n, 0);
    if (!y || !ot_op_known(x))
        return OT_OK;
    if (!ot_op_is_float(x->dtype))
        return ot_op_need_float(g, n, 0, x, err);
    ot_op_copy(y, x);
    return OT_OK;
}

/* Pow: from opset 12 base and exponent may differ in (numeric) type; Y has
   the base's. Before, as Add. */
static ot_status pow_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_status st = OT_OK;
    if (n->opset < 12)
        return ot_op_broadcast_infer(g, n, err);
    ot_value *a = ot_op_in(g, n, 0), *b = ot_op_in(g, n, 1), *y = ot_op_out(g, n, 0);
    if (!y || !ot_op_known(a) || !ot_op_known(b))
        return OT_OK;
    for (int i = 0; i < 2; i++) {
        const ot_value *v = i ? b : a;
        if (!ot_op_is_float(v->dtype) && !ot_op_is_int(v->dtype))
            return ot_op_err(err, OT_ERR_MODEL, g, n, "input '%s' is %s, expected a numeric type",
                             v->name, ot_dtype_name(v->dtype));
    }
    ot_op_dims ad, bd;
    ot_op_dims_of(a, &ad);
    ot_op_dims_of(b, &bd);
    OT_TRY(ot_op_broadcast(g, n, &ad, &bd, &ad, err));
    ot_op_set(y, a->dtype, &ad);
done:
    return st;
}

/* X, slope -> Y like X; slope broadcasts to X */
static ot_status prelu_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *x = ot_op_in(g, n, 0), *slope = ot_op_in(g, n, 1), *y = ot_op_out(g, n, 0);
    if (!ot_op_known(x) || !ot_op_known(slope))
        return OT_OK;
    if (!ot_op_is_float(x->dtype))
        return ot_op_need_float(g, n, 0, x, err);
    if (slope->dtype != x->dtype)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "slope '%s' is %s, but X '%s' is %s",
                         slope->name, ot_dtype_name(slope->dtype), x->name,
                         ot_dtype_name(x->dtype));
    /* before opset 7 a 1-D slope of more than one element is per channel */
    int start = n->opset < 7 && slope->ndim == 1 && slope->dims[0] != 1 && x->ndim >= 2
                    ? 1
                    : x->ndim - slope->ndim;
    bool fits = start >= 0 && start + slope->ndim <= x->ndim;
    for (int i = 0; fits && i < slope->ndim; i++) {
        int64_t ds = slope->dims[i], dx = x->dims[start + i];
        fits = ds == 1 || ds < 0 || dx < 0 || ds == dx;
    }
    if (!fits) {
        char sx[200], ss[200];
        ot_op_dims xd, sd;
        ot_op_dims_of(x, &xd);
        ot_op_dims_of(slope, &sd);
        ot_op_dims_str(&xd, sx, sizeof sx);
        ot_op_dims_str(&sd, ss, sizeof ss);
        return ot_op_err(err, OT_ERR_SHAPE, g, n, "slope %s does not broadcast to X %s", ss, sx);
    }
    if (y)
        ot_op_copy(y, x);
    return OT_OK;
}

#define MATH_DESC(sym, op_id, name, first, in_min, in_max, attr_list, infer_fn, grad_fn)        \
    const ot_op_desc sym = {                                                                    \
        .id = op_id,                                                                            \
        .domain = "",                                                                           \
        .type = name,                                                                           \
        .opset_min = first,                                                                     \
        .opset_max = 21,                                                                        \
        .n_in_min = in_min,                                                                     \
        .n_in_max = in_max,                                                                     \
        .n_out_min = 1,                                                                         \
        .n_out_max = 1,                                                                         \
        .attrs = attr_list,                                                                     \
        .infer = infer_fn,                                                                      \
        .grad = grad_fn,                                                                        \
    }

#define UNARY(sym, op_id, name, first, attr_list)                                               \
    MATH_DESC(sym, op_id, name, first, 1, 1, attr_list, float_unary_infer, ot_op_grad_unary_math)

UNARY(ot_op_sqrt, OT_OP_SQRT, "Sqrt", 1, legacy_attrs);
UNARY(ot_op_reciprocal, OT_OP_RECIPROCAL, "Reciprocal", 1, legacy_attrs);
UNARY(ot_op_exp, OT_OP_EXP, "Exp", 1, legacy_attrs);
UNARY(ot_op_log, OT_OP_LOG, "Log", 1, legacy_attrs);
UNARY(ot_op_tanh, OT_OP_TANH, "Tanh", 1, legacy_attrs);
UNARY(ot_op_erf, OT_OP_ERF, "Erf", 9, no_attrs);
UNARY(ot_op_hardsigmoid, OT_OP_HARDSIGMOID, "HardSigmoid", 1, hardsigmoid_attrs);
UNARY(ot_op_hardswish, OT_OP_HARDSWISH, "HardSwish", 14, no_attrs);
UNARY(ot_op_elu, OT_OP_ELU, "Elu", 1, elu_attrs);
UNARY(ot_op_selu, OT_OP_SELU, "Selu", 1, selu_attrs);
UNARY(ot_op_softplus, OT_OP_SOFTPLUS, "Softplus", 1, no_attrs);
UNARY(ot_op_gelu, OT_OP_GELU, "Gelu", 20, gelu_attrs);

MATH_DESC(ot_op_sub, OT_OP_SUB, "Sub", 1, 2, 2, binary_attrs, ot_op_broadcast_infer,
          ot_op_grad_sub);
MATH_DESC(ot_op_div, OT_OP_DIV, "Div", 1, 2, 2, binary_attrs, ot_op_broadcast_infer,
          ot_op_grad_div);
MATH_DESC(ot_op_max, OT_OP_MAX, "Max", 1, 1, -1, legacy_attrs, ot_op_broadcast_infer,
          ot_op_grad_max_min);
MATH_DESC(ot_op_min, OT_OP_MIN, "Min", 1, 1, -1, legacy_attrs, ot_op_broadcast_infer,
          ot_op_grad_max_min);
MATH_DESC(ot_op_mean, OT_OP_MEAN, "Mean", 1, 1, -1, legacy_attrs, ot_op_broadcast_infer,
          ot_op_grad_mean);

MATH_DESC(ot_op_prelu, OT_OP_PRELU, "PRelu", 1, 2, 2, legacy_attrs, prelu_infer,
          ot_op_grad_prelu);
MATH_DESC(ot_op_pow, OT_OP_POW, "Pow", 1, 2, 2, binary_attrs, pow_infer, ot_op_grad_pow);
