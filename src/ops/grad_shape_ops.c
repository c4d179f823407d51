/*
 * grad_shape_ops.c: the private backward ops of the shape-family rules
 * (grad_shape.c), domain "ai.onnxtrain", never exported:
 *
 *   LRNGrad(dY, X) -> dX   LRN's backward, with LRN's attributes
 *                          (alpha, beta, bias, size).
 */
#include "ops/op_util.h"

static const ot_attr_spec lrn_grad_attrs[] = {
    { "alpha", OT_ATTR_FLOAT, "0.0001", NULL, 0, 0, false },
    { "beta", OT_ATTR_FLOAT, "0.75", NULL, 0, 0, false },
    { "bias", OT_ATTR_FLOAT, "1.0", NULL, 0, 0, false },
    { "size", OT_ATTR_INT, NULL, ot_op_check_positive, 0, 0, false },
    { 0 },
};

/* dY, X -> dX shaped like X */
static ot_status like_x_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *dy = ot_op_in(g, n, 0), *x = ot_op_in(g, n, 1), *dx = ot_op_out(g, n, 0);
    if (!dx || !ot_op_known(dy) || !ot_op_known(x))
        return OT_OK;
    if (dy->ndim != x->ndim)
        return ot_op_err(err, OT_ERR_SHAPE, g, n, "dY '%s' has rank %d, '%s' has rank %d",
                         dy->name, dy->ndim, x->name, x->ndim);
    ot_op_copy(dx, x);
    dx->dtype = dy->dtype;
    return OT_OK;
}

/* no_grad: a backward op; second derivatives are not supported */
OT_OP_PRIVATE_NO_GRAD(ot_op_lrn_grad, OT_OP_LRN_GRAD, "LRNGrad", 2, 2, 1, 1, lrn_grad_attrs,
                      like_x_infer, NULL);
