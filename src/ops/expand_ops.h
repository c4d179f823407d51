/*
 * expand_ops.h: what the descriptors of expand_ops.c share with their plain
 * kernels: the sizes of Split's outputs and the length of a Range.
 */
#ifndef OT_OPS_EXPAND_OPS_H
#define OT_OPS_EXPAND_OPS_H

#include "ops/index_ops.h"
#include "ops/ops.h"

/* The sizes along the axis (of size dim) of Split node n's n->n_out
   outputs: from `split` (the input from opset 13, NULL when absent) or the
   attribute before 13, else num_outputs (opset 18: ceil(dim / n) each, the
   last smaller), else equal parts. False with *why set when they do not add
   up or dim does not divide. */
bool ot_split_sizes(const ot_node *n, const ot_tensor *split, int64_t dim, int64_t *sizes,
                    const char **why);

/* The element count of Range(start, limit, delta) of dtype t (scalars):
   max(ceil((limit - start) / delta), 0). False when delta is 0, a value is
   NaN or the count exceeds 2^40. */
bool ot_range_count(ot_dtype t, const ot_tensor *start, const ot_tensor *limit,
                    const ot_tensor *delta, int64_t *count);

/* The gradient of a Slice (node) whose resolved axes `sa` (one per dim of
   its input) have a step other than 1: dX = SliceGrad(dY, Shape(X)), zeros
   with dY at the sliced positions; stored in dx[0]. */
ot_status ot_op_grad_strided_slice(ot_graph *g, int32_t node, int32_t dy, const ot_slice_axis *sa,
                                   int32_t *dx, ot_err *err);

/* Gather's gradient rule (the descriptor is in shape_ops.c). */
ot_status ot_op_grad_gather(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                            const bool *need_dx, ot_err *err);

#endif
