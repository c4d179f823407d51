/*
 * index_ops.h: what the Slice descriptor (index_ops.c) shares with its
 * kernels and its gradient rule: the ONNX rules that turn starts, ends,
 * axes and steps into a start, step and length per axis.
 */
#ifndef OT_OPS_INDEX_OPS_H
#define OT_OPS_INDEX_OPS_H

#include "ops/ops.h"

/* One axis of a Slice: the first element read, the stride and the count. */
typedef struct ot_slice_axis {
    int64_t start, step, len;
} ot_slice_axis;

/*
 * The end of a SliceAxis node (X -> X[start:end] along axis) over an axis of
 * `dim` elements: its attribute "end", or, where it has "trim" instead,
 * dim - trim (a slice that drops `trim` trailing elements whatever the size
 * the graph runs at: Pad's gradient).
 */
static inline int64_t ot_slice_axis_end(const ot_node *n, int64_t dim)
{
    int64_t trim = ot_node_attr_int(n, "trim", -1);
    return trim >= 0 ? dim - trim : ot_node_attr_int(n, "end", 0);
}

/*
 * Resolves a Slice over an input of rank r and dims `dims` (all >= 0) into
 * one ot_slice_axis per dim (an axis not sliced: 0, 1, dims[d]). The
 * operands are starts, ends, axes (NULL: 0..n-1) and steps (NULL: 1), n
 * elements each, from the attributes (opset < 10) or the inputs. Negative
 * starts and ends count from the end; both are clamped as ONNX says, for
 * positive and negative steps. False with *why set when the operands are
 * inconsistent (lengths, an axis out of range or repeated, a zero step).
 */
bool ot_slice_resolve(int r, const int64_t *dims, const int64_t *starts, const int64_t *ends,
                      const int64_t *axes, const int64_t *steps, int n, ot_slice_axis *out,
                      const char **why);

/*
 * The Slice operands of node n as int64 arrays (at most OT_MAX_DIMS each):
 * from the attributes before opset 10, else from the tensors in[1..4]
 * (NULL entries: omitted). *has_axes / *has_steps say whether axes and
 * steps were given. False when an operand is missing or too long.
 */
bool ot_slice_operands(const ot_node *n, const ot_tensor *const *in, int64_t *starts,
                       int64_t *ends, int64_t *axes, int64_t *steps, int *count, bool *has_axes,
                       bool *has_steps);

#endif
