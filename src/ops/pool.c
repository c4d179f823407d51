/*
 * pool.c: MaxPool, AveragePool (opsets 1-21), GlobalAveragePool and
 * GlobalMaxPool (opsets 1-21).
 *
 * Shape inference for any spatial rank. MaxPool's optional second output
 * (Indices, opset 8+) is int64 of the output's shape. ceil_mode exists from
 * opset 10, dilations on MaxPool from 10 and on AveragePool from 19.
 *
 * References: https://onnx.ai/onnx/operators/onnx__MaxPool.html,
 * https://onnx.ai/onnx/operators/onnx__AveragePool.html
 */
#include "ops/grad_util.h"
#include "ops/op_util.h"

static const ot_attr_spec maxpool_attrs[] = {
    { "auto_pad", OT_ATTR_STRING, "NOTSET", ot_op_check_auto_pad, 0, 0, false },
    { "ceil_mode", OT_ATTR_INT, "0", ot_op_check_bool, 10, 0, false },
    { "dilations", OT_ATTR_INTS, "1", ot_op_check_positive_ints, 10, 0, false },
    { "kernel_shape", OT_ATTR_INTS, NULL, ot_op_check_positive_ints, 0, 0, false },
    { "pads", OT_ATTR_INTS, "0", ot_op_check_pads, 0, 0, false },
    { "storage_order", OT_ATTR_INT, "0", ot_op_check_bool, 8, 0, false },
    { "strides", OT_ATTR_INTS, "1", ot_op_check_positive_ints, 0, 0, false },
    { 0 },
};

static const ot_attr_spec avgpool_attrs[] = {
    { "auto_pad", OT_ATTR_STRING, "NOTSET", ot_op_check_auto_pad, 0, 0, false },
    { "ceil_mode", OT_ATTR_INT, "0", ot_op_check_bool, 10, 0, false },
    { "count_include_pad", OT_ATTR_INT, "0", ot_op_check_bool, 7, 0, false },
    { "dilations", OT_ATTR_INTS, "1", ot_op_check_positive_ints, 19, 0, false },
    { "kernel_shape", OT_ATTR_INTS, NULL, ot_op_check_positive_ints, 0, 0, false },
    { "pads", OT_ATTR_INTS, "0", ot_op_check_pads, 0, 0, false },
    { "strides", OT_ATTR_INTS, "1", ot_op_check_positive_ints, 0, 0, false },
    { 0 },
};

static const ot_attr_spec no_attrs[] = { { 0 } };

static ot_status pool_validate(ot_graph *g, ot_node *n, ot_err *err)
{
    size_t k = 0;
    if (!ot_node_attr_ints(n, "kernel_shape", &k) || k == 0)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "attribute 'kernel_shape' is required");
    if (n->n_out > 1 && n->out[1] >= 0 && n->opset < 8)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "output Indices exists from opset 8, model "
                         "has opset %d", n->opset);
    return OT_OK;
}

static bool pool_dtype_ok(ot_dtype t, bool is_max)
{
    return ot_op_is_float(t) || (is_max && (t == OT_DTYPE_INT8 || t == OT_DTYPE_UINT8));
}

/* x: (N, C, D1..Dk)  ->  y: (N, C, O1..Ok) [, indices: int64 like y] */
static ot_status window_pool_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_status st = OT_OK;
    ot_value *x = ot_op_in(g, n, 0), *y = ot_op_out(g, n, 0), *idx = ot_op_out(g, n, 1);
    bool is_max = n->op == &ot_op_maxpool;
    if (!ot_op_known(x))
        return OT_OK;
    if (!pool_dtype_ok(x->dtype, is_max))
        return ot_op_err(err, OT_ERR_MODEL, g, n, "input X '%s' is %s, expected a float type",
                         x->name, ot_dtype_name(x->dtype));
    if (x->ndim < 3)
        return ot_op_err(err, OT_ERR_SHAPE, g, n,
                         "input X '%s' has rank %d, expected (N, C, D1, ...) of rank >= 3",
                         x->name, x->ndim);
    int k = x->ndim - 2;
    size_t n_ks = 0;
    const int64_t *ks = ot_node_attr_ints(n, "kernel_shape", &n_ks);
    if (!ks || n_ks != (size_t)k)
        return ot_op_err(err, OT_ERR_MODEL, g, n,
                         "attribute 'kernel_shape' has %zu values, expected %d (spatial rank)",
                         n_ks, k);
    bool ceil_mode = n->opset >= 10 && ot_node_attr_int(n, "ceil_mode", 0) != 0;
    ot_op_dims xd, yd;
    ot_op_dims_of(x, &xd);
    yd = xd;
    OT_TRY(ot_op_window(g, n, &xd, ks, ceil_mode, &yd, err));
    if (y)
        ot_op_set(y, x->dtype, &yd);
    if (idx)
        ot_op_set(idx, OT_DTYPE_INT64, &yd);
done:
    return st;
}

/* x: (N, C, D1..Dk)  ->  y: (N, C, 1..1) */
static ot_status global_pool_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *x = ot_op_in(g, n, 0), *y = ot_op_out(g, n, 0);
    if (!y || !ot_op_known(x))
        return OT_OK;
    if (!ot_op_is_float(x->dtype))
        return ot_op_need_float(g, n, 0, x, err);
    if (x->ndim < 2)
        return ot_op_err(err, OT_ERR_SHAPE, g, n,
                         "input X '%s' has rank %d, expected (N, C, D1, ...) of rank >= 2",
                         x->name, x->ndim);
    ot_op_dims d;
    ot_op_dims_of(x, &d);
    for (int i = 2; i < d.ndim; i++) {
        d.dims[i] = 1;
        d.names[i] = NULL;
    }
    ot_op_set(y, x->dtype, &d);
    return OT_OK;
}

const ot_op_desc ot_op_maxpool = {
    .id = OT_OP_MAXPOOL,
    .domain = "",
    .type = "MaxPool",
    .opset_min = 1,
    .opset_max = 21,
    .n_in_min = 1,
    .n_in_max = 1,
    .n_out_min = 1,
    .n_out_max = 2,
    .attrs = maxpool_attrs,
    .infer = window_pool_infer,
    .validate = pool_validate,
    .grad = ot_op_grad_maxpool,
};

const ot_op_desc ot_op_avgpool = {
    .id = OT_OP_AVGPOOL,
    .domain = "",
    .type = "AveragePool",
    .opset_min = 1,
    .opset_max = 21,
    .n_in_min = 1,
    .n_in_max = 1,
    .n_out_min = 1,
    .n_out_max = 1,
    .attrs = avgpool_attrs,
    .infer = window_pool_infer,
    .validate = pool_validate,
    .grad = ot_op_grad_avgpool,
};

const ot_op_desc ot_op_globalavgpool = {
    .id = OT_OP_GLOBALAVGPOOL,
    .domain = "",
    .type = "GlobalAveragePool",
    .opset_min = 1,
    .opset_max = 21,
    .n_in_min = 1,
    .n_in_max = 1,
    .n_out_min = 1,
    .n_out_max = 1,
    .attrs = no_attrs,
    .infer = global_pool_infer,
    .grad = ot_op_grad_globalavgpool,
};

const ot_op_desc ot_op_globalmaxpool = {
    .id = OT_OP_GLOBALMAXPOOL,
    .domain = "",
    .type = "GlobalMaxPool",
    .opset_min = 1,
    .opset_max = 21,
    .n_in_min = 1,
    .n_in_max = 1,
    .n_out_min = 1,
    .n_out_max = 1,
    .attrs = no_attrs,
    .infer = global_pool_infer,
    .grad = ot_op_grad_globalmaxpool,
};
