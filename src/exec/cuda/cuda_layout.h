/*
 * cuda_layout.h: where the CUDA backend keeps its rank-4 activations
 * channels-last (NHWC), and the conversions at the edges.
 *
 * The graph's tensors are NCHW (row-major [N, C, H, W]); inside the backend
 * a pass over the specialised graph marks values NHWC along chains of ops
 * that can run on channels-last data: convolutions (cuDNN with NHWC strides
 * for x, y, dx, dy, and the filter as KRSC, the same permutation of OIHW),
 * BatchNorm and pooling on kernels that take the layout (ot_cuda_ctx.nhwc),
 * and element-wise ops whose operands are either of the output's shape or
 * broadcast in a way that both layouts store alike. It starts at the
 * convolutions: a graph without one stays NCHW. Graph inputs and outputs,
 * the executor's state and constants stay NCHW ("pinned"); where an NHWC
 * value meets a reader that needs NCHW (Reshape, Flatten, Concat, Gemm, an
 * optimizer update, anything else) or an NCHW value meets a reader running
 * NHWC, the executor converts it once into a copy that every such reader
 * shares.
 *
 * A rank-4 tensor with C == 1 or H * W == 1 has the same bytes in both
 * layouts ("layout-free": GlobalAveragePool's [N, C, 1, 1], a per-channel
 * bias [1, C, 1, 1]); it is never converted. Everything here is a pure
 * function of the graph (no device).
 */
#ifndef OT_EXEC_CUDA_LAYOUT_H
#define OT_EXEC_CUDA_LAYOUT_H

#include "graph/graph.h"

/* How a node can run on channels-last data. */
typedef enum {
    OT_NHWC_NO = 0, /* NCHW only                                               */
    OT_NHWC_CONV,   /* Conv, ConvGradData, ConvGradFilter on 2-D maps: every
                       rank-4 operand NHWC (the filter KRSC)                  */
    OT_NHWC_KERNEL, /* BatchNorm, pooling and their backward, reductions whose
                       result is layout-free: every rank-4 operand NHWC, the
                       kernel told by ot_cuda_ctx.nhwc                         */
    OT_NHWC_FLAT,   /* element-wise: operands of the node's shape NHWC, the
                       others layout-free; the kernel sees every operand with
                       its dims permuted to [N, H, W, C] (ot_cuda_nhwc_view)   */
} ot_nhwc_kind;

/* The kind of a node (shapes and attributes from the specialised graph). */
ot_nhwc_kind ot_cuda_nhwc_kind(const ot_graph *g, const ot_node *n);

/* Whether v is stored alike in both layouts: not rank 4, no elements,
   C == 1 or H * W == 1. */
bool ot_cuda_layout_free(const ot_value *v);

/* Whether operand v of node n (kind k) is in the node's layout: its rank-4
   operands for CONV and KERNEL, those of the node's shape for FLAT. */
bool ot_cuda_nhwc_follows(const ot_graph *g, const ot_node *n, ot_nhwc_kind k, int32_t v);

/* The pass's result: per value, 1 when it is stored NHWC; per node, 1 when
   it runs NHWC; and how many converted copies the edges need. */
typedef struct ot_cuda_layout {
    uint8_t *val, *node;
    int n_nhwc_nodes;
    int n_to_nhwc, n_to_nchw; /* values read in the other layout, each counted once */
} ot_cuda_layout;

/* Marks the layouts. pinned[v] != 0: value v stays NCHW (NULL: the graph's
   inputs and outputs, state and constants). skip[i] != 0: node i has no
   step (folded). The nodes are visited in order (topological): a
   convolution runs NHWC unless an output it writes in the node's layout is
   pinned; a KERNEL or FLAT node runs NHWC when one of its operands in the
   node's layout is stored NHWC, or when all of them are layout-free and an
   earlier node runs NHWC, and again none of its outputs is pinned.
   Errors: OT_ERR_NOMEM. */
ot_status ot_cuda_layout_plan(const ot_graph *g, const uint8_t *pinned, const uint8_t *skip,
                              ot_cuda_layout *out, ot_err *err);
void ot_cuda_layout_release(ot_cuda_layout *l);

/* dims of a FLAT node's operand as its kernel sees it when the node runs
   NHWC: right-aligned to rank 4, then [d0, d2, d3, d1]. Returns the rank
   (4), or the operand's own rank when it is above 4 (not permuted). */
int ot_cuda_nhwc_view(int ndim, const int64_t *dims, int64_t *out);

#endif
