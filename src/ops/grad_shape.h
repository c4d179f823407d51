/*
 * grad_shape.h: gradient rules of the shape and index ops (grad_shape.c),
 * which the descriptors in shape_ops.c point at. Contract: ot_op_grad_fn in
 * ops.h.
 */
#ifndef OT_OPS_GRAD_SHAPE_H
#define OT_OPS_GRAD_SHAPE_H

#include "ops/ops.h"

ot_status ot_op_grad_lrn(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                         const bool *need_dx, ot_err *err);
ot_status ot_op_grad_pad(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                         const bool *need_dx, ot_err *err);

#endif
