/*
 * reduce.h: the axes of ReduceMean, ReduceSum, ReduceMax and ReduceL2 (and of
 * their backward op ReduceGrad), shared by shape inference (reduce.c), the
 * gradient rule (grad_math.c) and the kernels (src/exec/cpu/ref_math.c).
 */
#ifndef OT_OPS_REDUCE_H
#define OT_OPS_REDUCE_H

#include "ops/ops.h"

/* Which dims of a rank-`rank` input node n reduces: the `axes` attribute
   when the node has one, else the elements of `axes` (the axes input, int32
   or int64; NULL when omitted). No axes: every dim, or none when
   noop_with_empty_axes is 1. mask[d] is set for a reduced dim. False when an
   axis is out of range or repeated. */
bool ot_op_reduce_axes(const ot_node *n, const ot_tensor *axes, int rank, bool *mask);

#endif
