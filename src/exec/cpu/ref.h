/*
 * ref.h: plain C kernels on row-major tensors, one per op of the table.
 *
 * They are the CPU backend's fallback for what oneDNN does not cover (data
 * movement ops, integer dtypes, odd broadcasts, 0-d and zero-element tensors)
 * and the naive reference the tests compare oneDNN against.
 *
 * Contract: a kernel reads its attributes from the node (ot_node_attr_*), its
 * inputs and outputs from `in` / `out` (dtype and dims set by the caller from
 * shape inference; out[i]->data points to a buffer of out[i]->bytes, already
 * allocated). in[i] is NULL for an omitted optional input; out[i] is NULL for
 * an omitted optional output. It never allocates, never prints, and returns
 * OT_ERR_UNSUPPORTED (naming the op and dtype) for a case it does not handle;
 * `ot_ref_supports` answers the same question at compile time so that run
 * never fails on data.
 */
#ifndef OT_EXEC_CPU_REF_H
#define OT_EXEC_CPU_REF_H

#include "ops/ops.h"

typedef ot_status (*ot_ref_fn)(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                               ot_tensor *const *out, ot_err *err);

/* The plain kernel for a node's op (NULL when there is none). */
ot_ref_fn ot_ref_kernel(const ot_node *n);

/* Whether the plain kernel handles this node with these input/output dtypes
   and shapes (the compiled ones). On false, *why says what is missing. */
bool ot_ref_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                     const ot_tensor *const *out, const char **why);

#endif
