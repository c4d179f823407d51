/*
 * cuda_kernels.h: the CUDA backend's own kernels, one per op of the table,
 * with the contract of the plain C kernels (src/exec/cpu/ref.h) on device
 * memory.
 *
 * A kernel reads its attributes from the node, its inputs and outputs from
 * `in` / `out` (dtype and dims from shape inference; data points to device
 * memory of `bytes`, already allocated; in[i] NULL for an omitted optional
 * input, out[i] NULL for an omitted optional output). It enqueues its work on
 * c->stream and returns without synchronising; it never allocates (scratch
 * comes from c->scratch, sized at compile time by ot_cuda_scratch_bytes),
 * never prints, and returns OT_ERR_UNSUPPORTED for a case it does not handle.
 * ot_cuda_supports answers that at compile time, so a run never fails on
 * data. Convolutions and matrix products are not here: the backend runs them
 * on cuDNN and cuBLASLt.
 */
#ifndef OT_EXEC_CUDA_KERNELS_H
#define OT_EXEC_CUDA_KERNELS_H

#include "ops/ops.h"

typedef struct ot_cuda_ctx {
    void *stream;          /* cudaStream_t the kernels are enqueued on      */
    void *scratch;         /* device workspace shared by all steps          */
    size_t scratch_bytes;
    uint64_t seed;         /* the run's seed, for dropout masks             */
    uint64_t counter;      /* advanced by the backend once per run          */
    int sm_count;          /* multiprocessors of the device (grid sizing)   */
    int nhwc;              /* the step's rank-4 activations are channels-last
                              (cuda_layout.h): set per step for the kernels
                              that take it (BatchNorm, pooling); logical
                              NCHW dims in the tensors either way            */
} ot_cuda_ctx;

typedef ot_status (*ot_cuda_fn)(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                                const ot_tensor *const *in, ot_tensor *const *out, ot_err *err);

/* The kernel for a node's op (NULL when there is none). */
ot_cuda_fn ot_cuda_kernel(const ot_node *n);

/* Whether the kernel handles this node with these dtypes and shapes; on
   false, *why says what is missing. */
bool ot_cuda_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                      const ot_tensor *const *out, const char **why);

/* Device scratch bytes the kernel needs for this node (0 for most). */
size_t ot_cuda_scratch_bytes(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                             const ot_tensor *const *out);

/* The file of src/exec/cuda/kernels/ that holds op id's kernels, or NULL
   with *reason saying why there is none (the backend runs the op itself;
   NULL for an op nobody covers). */
const char *ot_cuda_kernel_file(ot_op_id id, const char **reason);

#endif
