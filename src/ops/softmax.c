/*
 * softmax.c: Softmax, LogSoftmax and LRN, ONNX opsets 1-21. Output shape =
 * input shape.
 *
 * Softmax/LogSoftmax: `axis` defaults to 1 before opset 13 (the input is
 * coerced to 2-D at axis) and to -1 from 13 (one axis); either way the shape
 * is unchanged. LRN: across channels of (N, C, D1, ...); `size` is required.
 *
 * References: https://onnx.ai/onnx/operators/onnx__Softmax.html,
 * https://onnx.ai/onnx/operators/onnx__LRN.html
 */
#include "ops/grad_shape.h"
#include "ops/grad_util.h"
#include "ops/op_util.h"

static const ot_attr_spec softmax_attrs[] = {
    { "axis", OT_ATTR_INT, "1", NULL, 1, 12, false },
    { "axis", OT_ATTR_INT, "-1", NULL, 13, 0, false },
    { 0 },
};

static const ot_attr_spec lrn_attrs[] = {
    { "alpha", OT_ATTR_FLOAT, "0.0001", NULL, 0, 0, false },
    { "beta", OT_ATTR_FLOAT, "0.75", NULL, 0, 0, false },
    { "bias", OT_ATTR_FLOAT, "1.0", NULL, 0, 0, false },
    { "size", OT_ATTR_INT, NULL, ot_op_check_positive, 0, 0, false },
    { 0 },
};

/* x -> y of the same shape; axis checked against the rank */
static ot_status softmax_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *x = ot_op_in(g, n, 0), *y = ot_op_out(g, n, 0);
    if (!y || !ot_op_known(x))
        return OT_OK;
    if (!ot_op_is_float(x->dtype))
        return ot_op_need_float(g, n, 0, x, err);
    int64_t axis = ot_node_attr_int(n, "axis", n->opset >= 13 ? -1 : 1);
    int ax;
    /* before opset 13 axis == rank is allowed (coerced to [N, 1]) */
    if (!ot_op_axis(axis, x->ndim, &ax) && !(n->opset < 13 && axis == x->ndim))
        return ot_op_err(err, OT_ERR_MODEL, g, n, "axis %lld is out of range for rank %d",
                         (long long)axis, x->ndim);
    ot_op_copy(y, x);
    return OT_OK;
}

static ot_status lrn_validate(ot_graph *g, ot_node *n, ot_err *err)
{
    if (!ot_node_find_attr(n, "size"))
        return ot_op_err(err, OT_ERR_MODEL, g, n, "attribute 'size' is required");
    return OT_OK;
}

/* x: (N, C, D1, ...) -> y like x */
static ot_status lrn_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *x = ot_op_in(g, n, 0), *y = ot_op_out(g, n, 0);
    if (!y || !ot_op_known(x))
        return OT_OK;
    if (!ot_op_is_float(x->dtype))
        return ot_op_need_float(g, n, 0, x, err);
    if (x->ndim < 2)
        return ot_op_err(err, OT_ERR_SHAPE, g, n,
                         "input X '%s' has rank %d, expected (N, C, ...) of rank >= 2", x->name,
                         x->ndim);
    ot_op_copy(y, x);
    return OT_OK;
}

const ot_op_desc ot_op_softmax = {
    .id = OT_OP_SOFTMAX,
    .domain = "",
    .type = "Softmax",
    .opset_min = 1,
    .opset_max = 21,
    .n_in_min = 1,
    .n_in_max = 1,
    .n_out_min = 1,
    .n_out_max = 1,
    .attrs = softmax_attrs,
    .infer = softmax_infer,
    .grad = ot_op_grad_softmax,
};

const ot_op_desc ot_op_logsoftmax = {
    .id = OT_OP_LOGSOFTMAX,
    .domain = "",
    .type = "LogSoftmax",
    .opset_min = 1,
    .opset_max = 21,
    .n_in_min = 1,
    .n_in_max = 1,
    .n_out_min = 1,
    .n_out_max = 1,
    .attrs = softmax_attrs,
    .infer = softmax_infer,
    .grad = ot_op_grad_softmax,
};

const ot_op_desc ot_op_lrn = {
    .id = OT_OP_LRN,
    .domain = "",
    .type = "LRN",
    .opset_min = 1,
    .opset_max = 21,
    .n_in_min = 1,
    .n_in_max = 1,
    .n_out_min = 1,
    .n_out_max = 1,
    .attrs = lrn_attrs,
    .infer = lrn_infer,
    .validate = lrn_validate,
    .grad = ot_op_grad_lrn,
};
