/*
 * reduce.c: ReduceMean, ReduceSum, ReduceMax and ReduceL2, ONNX opsets 1-21.
 *
 * The axes are an attribute before opset 13 (ReduceSum) or 18 (the others)
 * and an optional int64 input from then on; it must be a constant for the
 * output shape to be known (the executor binds it as one). No axes: every
 * dim is reduced, or none when noop_with_empty_axes is 1 (from 13/18).
 * keepdims (default 1) keeps reduced dims as 1s. Numeric types; the output
 * has the input's.
 *
 * Gradients: grad_math.c (ReduceGrad).
 *
 * Reference: https://onnx.ai/onnx/operators/onnx__ReduceSum.html and the
 * pages of the others
 */
#include "ops/grad_util.h"
#include "ops/op_util.h"
#include "ops/reduce.h"

static const ot_attr_spec sum_attrs[] = {
    { "axes", OT_ATTR_INTS, NULL, NULL, 1, 12, false },
    { "keepdims", OT_ATTR_INT, "1", ot_op_check_bool, 0, 0, false },
    { "noop_with_empty_axes", OT_ATTR_INT, "0", ot_op_check_bool, 13, 0, false },
    { 0 },
};

static const ot_attr_spec reduce_attrs[] = {
    { "axes", OT_ATTR_INTS, NULL, NULL, 1, 17, false },
    { "keepdims", OT_ATTR_INT, "1", ot_op_check_bool, 0, 0, false },
    { "noop_with_empty_axes", OT_ATTR_INT, "0", ot_op_check_bool, 18, 0, false },
    { 0 },
};

bool ot_op_reduce_axes(const ot_node *n, const ot_tensor *axes, int rank, bool *mask)
{
    size_t len = 0;
    const int64_t *attr = ot_node_attr_ints(n, "axes", &len);
    int64_t count = attr ? (int64_t)len : axes ? ot_tensor_numel(axes) : 0;
    for (int d = 0; d < rank; d++)
        mask[d] = count == 0 && ot_node_attr_int(n, "noop_with_empty_axes", 0) == 0;
    for (int64_t i = 0; i < count; i++) {
        int64_t a = attr ? attr[i] : (int64_t)ot_tensor_get_f64(axes, i);
        int d;
        if (!ot_op_axis(a, rank, &d) || mask[d])
            return false;
        mask[d] = true;
    }
    return true;
}

/* The first opset whose node takes the axes as an input. */
static int axes_input_opset(const ot_node *n)
{
    return n->op == &ot_op_reduce_sum ? 13 : 18;
}

static ot_status reduce_validate(ot_graph *g, ot_node *n, ot_err *err)
{
    if (n->n_in > 1 && n->opset < axes_input_opset(n))
        return ot_op_err(err, OT_ERR_MODEL, g, n,
                         "takes the axes as an input only from opset %d (model has %d)",
                         axes_input_opset(n), n->opset);
    return OT_OK;
}

/* data [, axes] -> reduced, of data's dtype */
static ot_status reduce_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *x = ot_op_in(g, n, 0), *y = ot_op_out(g, n, 0);
    if (!y || !ot_op_known(x))
        return OT_OK;
    if (!ot_op_is_float(x->dtype) && !ot_op_is_int(x->dtype))
        return ot_op_err(err, OT_ERR_MODEL, g, n, "input '%s' is %s, expected a numeric type",
                         x->name, ot_dtype_name(x->dtype));
    const ot_tensor *axes = NULL;
    int32_t aid = n->n_in > 1 ? n->in[1] : -1;
    if (aid >= 0 && !ot_node_find_attr(n, "axes")) {
        axes = ot_graph_const(g, aid);
        if (!axes || (axes->dtype != OT_DTYPE_INT64 && axes->dtype != OT_DTYPE_INT32))
            return OT_OK; /* not known here: the output shape stays unknown */
        if (ot_tensor_numel(axes) > 0 && !axes->data)
            return OT_OK;
    }
    bool mask[OT_MAX_DIMS];
    if (!ot_op_reduce_axes(n, axes, x->ndim, mask))
        return ot_op_err(err, OT_ERR_MODEL, g, n,
                         "axes are out of range for rank %d or repeated", x->ndim);
    bool keep = ot_node_attr_int(n, "keepdims", 1) != 0;
    ot_op_dims xd, yd;
    ot_op_dims_of(x, &xd);
    yd.ndim = 0;
    for (int d = 0; d < xd.ndim; d++) {
        if (mask[d] && !keep)
            continue;
        yd.dims[yd.ndim] = mask[d] ? 1 : xd.dims[d];
        yd.names[yd.ndim++] = mask[d] ? NULL : xd.names[d];
    }
    ot_op_set(y, x->dtype, &yd);
    return OT_OK;
}

#define REDUCE_DESC(sym, op_id, name, attr_list)                                                \
    const ot_op_desc sym = {                                                                    \
        .id = op_id,                                                                            \
        .domain = "",                                                                           \
        .type = name,                                                                           \
        .opset_min = 1,                                                                         \
        .opset_max = 21,                                                                        \
        .n_in_min = 1,                                                                          \
        .n_in_max = 2,                                                                          \
        .n_out_min = 1,                                                                         \
        .n_out_max = 1,                                                                         \
        .attrs = attr_list,                                                                     \
        .infer = reduce_infer,                                                                  \
        .validate = reduce_validate,                                                            \
        .grad = ot_op_grad_reduce,                                                              \
    }

REDUCE_DESC(ot_op_reduce_mean, OT_OP_REDUCE_MEAN, "ReduceMean", reduce_attrs);
REDUCE_DESC(ot_op_reduce_sum, OT_OP_REDUCE_SUM, "ReduceSum", sum_attrs);
REDUCE_DESC(ot_op_reduce_max, OT_OP_REDUCE_MAX, "ReduceMax", reduce_attrs);
REDUCE_DESC(ot_op_reduce_l2, OT_OP_REDUCE_L2, "ReduceL2", reduce_attrs);
