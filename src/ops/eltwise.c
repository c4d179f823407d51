/*
 * eltwise.c: element-wise ops, ONNX opsets 1-21: Relu, LeakyRelu, Sigmoid,
 * Clip, Identity, Dropout (unary, output shaped like the input) and Add, Mul,
 * Sum (numpy broadcasting from opset 7; Sum from 8).
 *
 * Legacy forms: consumed_inputs (opsets < 6) and Dropout's is_test (< 7) are
 * harmless and kept. Add/Mul before opset 7 broadcast only when broadcast=1,
 * B's shape matching a run of A's dims starting at `axis` (default: A's last
 * dims); the output has A's shape. Clip takes min/max as attributes before
 * opset 11 and as optional scalar inputs from 11. Dropout's ratio is an
 * attribute before opset 12 and an input (with training_mode) from 12; its
 * mask is bool from opset 10 and of the input's type before.
 *
 * Reference: https://onnx.ai/onnx/operators/ (the pages of each op)
 */
#include "ops/grad_util.h"
#include "ops/op_util.h"

static const ot_attr_spec legacy_attrs[] = {
    { "consumed_inputs", OT_ATTR_INTS, NULL, NULL, 1, 5, true },
    { 0 },
};

static const ot_attr_spec leakyrelu_attrs[] = {
    { "alpha", OT_ATTR_FLOAT, "0.01", NULL, 0, 0, false },
    { "consumed_inputs", OT_ATTR_INTS, NULL, NULL, 1, 5, true },
    { 0 },
};

static const ot_attr_spec clip_attrs[] = {
    { "consumed_inputs", OT_ATTR_INTS, NULL, NULL, 1, 5, true },
    { "max", OT_ATTR_FLOAT, "3.4028234663852886e+38", NULL, 1, 10, false },
    { "min", OT_ATTR_FLOAT, "-3.4028234663852886e+38", NULL, 1, 10, false },
    { 0 },
};

static const ot_attr_spec binary_attrs[] = {
    { "axis", OT_ATTR_INT, NULL, NULL, 1, 6, false },
    { "broadcast", OT_ATTR_INT, "0", ot_op_check_bool, 1, 6, false },
    { "consumed_inputs", OT_ATTR_INTS, NULL, NULL, 1, 5, true },
    { 0 },
};

static const ot_attr_spec no_attrs[] = { { 0 } };

static const ot_attr_spec dropout_attrs[] = {
    { "consumed_inputs", OT_ATTR_INTS, NULL, NULL, 1, 5, true },
    { "is_test", OT_ATTR_INT, "0", NULL, 1, 6, true },
    { "ratio", OT_ATTR_FLOAT, "0.5", NULL, 1, 11, false },
    { "seed", OT_ATTR_INT, NULL, NULL, 12, 0, false },
    { 0 },
};

/* x -> y of the same dtype and shape; numeric types only. */
static ot_status unary_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *x = ot_op_in(g, n, 0), *y = ot_op_out(g, n, 0);
    if (!y || !ot_op_known(x))
        return OT_OK;
    if (!ot_op_is_float(x->dtype) && !ot_op_is_int(x->dtype))
        return ot_op_err(err, OT_ERR_MODEL, g, n, "input '%s' is %s, expected a numeric type",
                         x->name, ot_dtype_name(x->dtype));
    ot_op_copy(y, x);
    return OT_OK;
}

/* Like unary_infer, for any dtype, and folds small integer tensors. */
static ot_status identity_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *x = ot_op_in(g, n, 0), *y = ot_op_out(g, n, 0);
    if (!y || !ot_op_known(x))
        return OT_OK;
    ot_op_copy(y, x);
    return ot_op_fold_same(g, n->in[0], y, err);
}

static ot_status clip_validate(ot_graph *g, ot_node *n, ot_err *err)
{
    if (n->opset < 11 && n->n_in > 1)
        return ot_op_err(err, OT_ERR_MODEL, g, n,
                         "takes min and max as inputs only from opset 11 (model has %d)",
                         n->opset);
    return OT_OK;
}

static ot_status clip_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    for (int i = 1; i < 3; i++) {
        const ot_value *b = ot_op_in(g, n, i);
        const ot_value *x = ot_op_in(g, n, 0);
        if (!ot_op_known(b) || !ot_op_known(x))
            continue;
        if (b->dtype != x->dtype)
            return ot_op_err(err, OT_ERR_MODEL, g, n, "%s '%s' is %s, expected %s (as input)",
                             i == 1 ? "min" : "max", b->name, ot_dtype_name(b->dtype),
                             ot_dtype_name(x->dtype));
    }
    return unary_infer(g, n, err);
}

static ot_status dropout_validate(ot_graph *g, ot_node *n, ot_err *err)
{
    if (n->opset < 12 && n->n_in > 1)
        return ot_op_err(err, OT_ERR_MODEL, g, n,
                         "takes ratio and training_mode as inputs only from opset 12 (model "
                         "has %d)",
                         n->opset);
    return OT_OK;
}

/* data -> output like data [, mask: bool (opset >= 10) or data's dtype] */
static ot_status dropout_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *x = ot_op_in(g, n, 0), *y = ot_op_out(g, n, 0), *mask = ot_op_out(g, n, 1);
    if (!ot_op_known(x))
        return OT_OK;
    if (!ot_op_is_float(x->dtype))
        return ot_op_need_float(g, n, 0, x, err);
    if (y)
        ot_op_copy(y, x);
    if (mask) {
        ot_op_dims d;
        ot_op_dims_of(x, &d);
        ot_op_set(mask, n->opset >= 10 ? OT_DTYPE_BOOL : x->dtype, &d);
    }
    return OT_OK;
}

/* Add/Mul before opset 7: no numpy broadcasting. */
static ot_status legacy_binary_infer(ot_graph *g, ot_node *n, const ot_value *a,
                                     const ot_value *b, ot_value *y, ot_err *err)
{
    bool bcast = ot_node_attr_int(n, "broadcast", 0) != 0;
    char sa[200], sb[200];
    ot_op_dims ad, bd;
    ot_op_dims_of(a, &ad);
    ot_op_dims_of(b, &bd);
    ot_op_dims_str(&ad, sa, sizeof sa);
    ot_op_dims_str(&bd, sb, sizeof sb);
    int start = 0;
    if (!bcast) {
        if (a->ndim != b->ndim)
            return ot_op_err(err, OT_ERR_SHAPE, g, n,
                             "inputs %s and %s differ and broadcast=0 (opset %d)", sa, sb,
                             n->opset);
    } else {
        const ot_attr *ax = ot_node_find_attr(n, "axis");
        if (b->ndim > a->ndim)
            return ot_op_err(err, OT_ERR_SHAPE, g, n,
                             "B %s has a higher rank than A %s (legacy broadcast)", sb, sa);
        start = a->ndim - b->ndim;
        if (ax && ax->type == OT_ATTR_INT && !ot_op_axis(ax->i, a->ndim, &start))
            return ot_op_err(err, OT_ERR_MODEL, g, n, "axis %lld is out of range for rank %d",
                             (long long)ax->i, a->ndim);
        if (start + b->ndim > a->ndim)
            return ot_op_err(err, OT_ERR_SHAPE, g, n,
                             "B %s does not fit A %s from axis %d (legacy broadcast)", sb, sa,
                             start);
    }
    for (int i = 0; i < b->ndim; i++) {
        int64_t da = a->dims[start + i], db = b->dims[i];
        if (da >= 0 && db >= 0 && da != db && !(bcast && db == 1))
            return ot_op_err(err, OT_ERR_SHAPE, g, n,
                             "B %s does not match A %s from axis %d (broadcast=%d, opset %d)",
                             sb, sa, start, bcast, n->opset);
    }
    ot_op_copy(y, a);
    return OT_OK;
}

/* Add, Mul, Sum (and Sub, Div, Pow before opset 12: math_ops.c): numpy
   broadcasting over all inputs; all of one dtype. */
ot_status ot_op_broadcast_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_status st = OT_OK;
    ot_value *y = ot_op_out(g, n, 0);
    if (!y || n->n_in < 1)
        return OT_OK;
    for (int i = 0; i < n->n_in; i++)
        if (!ot_op_known(ot_op_in(g, n, i)))
            return OT_OK;
    ot_value *a = ot_op_in(g, n, 0);
    for (int i = 1; i < n->n_in; i++) {
        const ot_value *b = ot_op_in(g, n, i);
        if (b->dtype != a->dtype)
            return ot_op_err(err, OT_ERR_MODEL, g, n,
                             "input %d '%s' is %s, but input 0 '%s' is %s", i, b->name,
                             ot_dtype_name(b->dtype), a->name, ot_dtype_name(a->dtype));
    }
    if (!ot_op_is_float(a->dtype) && !ot_op_is_int(a->dtype))
        return ot_op_err(err, OT_ERR_MODEL, g, n, "input '%s' is %s, expected a numeric type",
                         a->name, ot_dtype_name(a->dtype));
    if (n->op != &ot_op_sum && n->opset < 7 && n->n_in == 2)
        return legacy_binary_infer(g, n, a, ot_op_in(g, n, 1), y, err);
    ot_op_dims acc;
    ot_op_dims_of(a, &acc);
    for (int i = 1; i < n->n_in; i++) {
        ot_op_dims bd;
        ot_op_dims_of(ot_op_in(g, n, i), &bd);
        OT_TRY(ot_op_broadcast(g, n, &acc, &bd, &acc, err));
    }
    ot_op_set(y, a->dtype, &acc);
done:
    return st;
}

#define UNARY_DESC(sym, op_id, name, attr_list, infer_fn, validate_fn, in_max, out_max, grad_fn) \
    const ot_op_desc sym = {                                                                    \
        .id = op_id,                                                                            \
        .domain = "",                                                                           \
        .type = name,                                                                           \
        .opset_min = 1,                                                                         \
        .opset_max = 21,                                                                        \
        .n_in_min = 1,                                                                          \
        .n_in_max = in_max,                                                                     \
        .n_out_min = 1,                                                                         \
        .n_out_max = out_max,                                                                   \
        .attrs = attr_list,                                                                     \
        .infer = infer_fn,                                                                      \
        .validate = validate_fn,                                                                \
        .grad = grad_fn,                                                                        \
    }

UNARY_DESC(ot_op_relu, OT_OP_RELU, "Relu", legacy_attrs, unary_infer, NULL, 1, 1, ot_op_grad_relu);
UNARY_DESC(ot_op_leakyrelu, OT_OP_LEAKYRELU, "LeakyRelu", leakyrelu_attrs, unary_infer, NULL, 1, 1,
           ot_op_grad_leakyrelu);
UNARY_DESC(ot_op_sigmoid, OT_OP_SIGMOID, "Sigmoid", legacy_attrs, unary_infer, NULL, 1, 1,
           ot_op_grad_sigmoid);
UNARY_DESC(ot_op_clip, OT_OP_CLIP, "Clip", clip_attrs, clip_infer, clip_validate, 3, 1,
           ot_op_grad_clip);
UNARY_DESC(ot_op_identity, OT_OP_IDENTITY, "Identity", no_attrs, identity_infer, NULL, 1, 1,
           ot_op_grad_identity);
UNARY_DESC(ot_op_dropout, OT_OP_DROPOUT, "Dropout", dropout_attrs, dropout_infer, dropout_validate,
           3, 2, ot_op_grad_dropout);

const ot_op_desc ot_op_add = {
    .id = OT_OP_ADD,
    .domain = "",
    .type = "Add",
    .opset_min = 1,
    .opset_max = 21,
    .n_in_min = 2,
    .n_in_max = 2,
    .n_out_min = 1,
    .n_out_max = 1,
    .attrs = binary_attrs,
    .infer = ot_op_broadcast_infer,
    .grad = ot_op_grad_add,
};

const ot_op_desc ot_op_mul = {
    .id = OT_OP_MUL,
    .domain = "",
    .type = "Mul",
    .opset_min = 1,
    .opset_max = 21,
    .n_in_min = 2,
    .n_in_max = 2,
    .n_out_min = 1,
    .n_out_max = 1,
    .attrs = binary_attrs,
    .infer = ot_op_broadcast_infer,
    .grad = ot_op_grad_mul,
};

const ot_op_desc ot_op_sum = {
    .id = OT_OP_SUM,
    .domain = "",
    .type = "Sum",
    .opset_min = 1,
    .opset_max = 21,
    .n_in_min = 1,
    .n_in_max = -1,
    .n_out_min = 1,
    .n_out_max = 1,
    .attrs = legacy_attrs,
    .infer = ot_op_broadcast_infer,
    .grad = ot_op_grad_sum_op,
};
