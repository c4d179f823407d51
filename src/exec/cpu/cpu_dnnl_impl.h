/*
 * cpu_dnnl_impl.h: what the oneDNN files of the CPU backend share:
 * cpu_dnnl.c (forward ops and the backward convolutions),
 * cpu_dnnl_train.c (the other training ops) and cpu_dnnl_math.c (reductions,
 * layer normalization).
 */
#ifndef OT_EXEC_CPU_DNNL_IMPL_H
#define OT_EXEC_CPU_DNNL_IMPL_H

#include "cpu.h"

/* One node being compiled. */
typedef struct ctx {
    ot_exec *x;
    cpu_state *cs;
    ot_graph *g;
    const ot_node *n;
    int32_t node_id;            /* n's index in g->nodes                   */
    dnnl_primitive_attr_t attr; /* user scratchpad mode */
} ctx;

/* Windows: pads, strides, dilations (oneDNN's, i.e. ONNX's minus one) and the
   right padding that makes oneDNN's output size equal the inferred one. */
typedef struct window {
    int k;
    dnnl_dims_t kernel, strides, dil, pl, pr;
    bool pads_grew; /* pr was raised above the file's pads (ceil_mode)       */
} window;

bool dn_is_f32(const ot_graph *g, int32_t vid);
bool dn_has_zero(const ot_value *v);
/* A descriptor of v's dims in a layout the primitive chooses. */
void dn_md_any(const ot_value *v, dnnl_memory_desc_t *md);
/* Sets an fp32 descriptor's element type to bf16 (on) or back to fp32. */
void dn_md_bf16(dnnl_memory_desc_t *md, bool on);
/* A row-major descriptor of the given dims. */
void dn_md_plain_dims(int nd, const int64_t *d, dnnl_memory_desc_t *md);
/* A primitive descriptor (hint: a forward one, for backward primitives); false
   when oneDNN has no implementation, and the caller falls back. */
bool dn_make_pd(ctx *c, dnnl_primitive_desc_t *pd, const void *op_desc);
bool dn_make_pd_hint(ctx *c, dnnl_primitive_desc_t *pd, const void *op_desc,
                     const_dnnl_primitive_desc_t hint);
const dnnl_memory_desc_t *dn_pd_md(dnnl_primitive_desc_t pd, dnnl_query_t q);
/* Conv and pool windows; false when oneDNN cannot express them. */
bool dn_get_window(const ot_graph *g, const ot_node *n, const ot_value *xv, const ot_value *yv,
                   const int64_t *kernel, window *w);
/* A pooling node's (or its gradient's) window and algorithm, X and Y shaped
   as xv and yv. */
bool dn_pool_params(const ot_graph *g, const ot_node *n, const ot_value *xv, const ot_value *yv,
                    window *w, dnnl_alg_kind_t *alg);
/* The node after `after` that reads vid, when it is vid's only reader and
   vid is not a graph output; else -1. */
int32_t dn_sole_consumer(const ctx *c, int32_t vid, int32_t after);
/* Appends a primitive with one source (x as xmd) and one destination (y, in
   the layout the primitive chose). Takes ownership of pd. */
ot_status dn_src_dst_step(ctx *c, dnnl_primitive_desc_t pd, int32_t xid,
                          const dnnl_memory_desc_t *xmd, int32_t yid, bool *done, ot_err *err);

/* cpu_dnnl_train.c: MaxPool that keeps oneDNN's workspace for its gradient,
   BatchNormTrain, BatchNormGrad, ReluGrad, MaxPoolGrad and
   GlobalAveragePoolGrad. */
bool dn_maxpool_has_grad(const ctx *c, int32_t xid);
ot_status dn_maxpool_train(ctx *c, const window *w, bool *done, ot_err *err);
ot_status dn_maxpool_grad(ctx *c, bool *done, ot_err *err);
ot_status dn_bn_train(ctx *c, bool *done, ot_err *err);
ot_status dn_bn_grad(ctx *c, bool *done, ot_err *err);
ot_status dn_relu_grad(ctx *c, bool *done, ot_err *err);
ot_status dn_gap_grad(ctx *c, bool *done, ot_err *err);

/* cpu_dnnl_math.c: ReduceMean, ReduceSum, ReduceMax and ReduceL2 (over the
   spatial dims as a pooling, and ReduceMean's gradient so);
   LayerNormalization; Einsum as a batched matrix product. */
ot_status dn_reduce(ctx *c, bool *done, ot_err *err);
ot_status dn_reduce_grad(ctx *c, bool *done, ot_err *err);
ot_status dn_layernorm(ctx *c, bool *done, ot_err *err);
ot_status dn_einsum(ctx *c, bool *done, ot_err *err);

/* cpu_blocked.c: plain loops on oneDNN's activation layouts: Mul by a
   [N, C, 1...] scale, ReduceSumTo to [N or 1, C, 1...], HardSigmoid, the
   UnaryGrad of HardSigmoid and HardSwish, and SiLU's gradient. */
ot_status dn_blk_scale(ctx *c, bool *done, ot_err *err);
ot_status dn_blk_sum_to(ctx *c, bool *done, ot_err *err);
/* A Mul whose product only such a ReduceSumTo reads: both as one loop. */
ot_status dn_blk_mul_sum_to(ctx *c, bool *done, ot_err *err);
ot_status dn_blk_eltwise(ctx *c, bool *done, ot_err *err);
/* The gradient of a SiLU (y = x * Sigmoid(x)): the two Muls, the SigmoidGrad
   and the Sum autodiff writes for it as one loop, built at the first Mul. */
ot_status dn_blk_silu_grad(ctx *c, bool *done, ot_err *err);
/* Convolutions (forward or backward) in nhwc: every one of a training
   graph that holds a grouped convolution with groups of other than a
   multiple of 16 channels (RegNet, ResNeXt), and a grouped, not depthwise,
   one whose deciding operand vid is already nhwc. Sets a and b
   (descriptors of av and bv) to nhwc and returns true; the caller returns
   to `any` when the primitive it gets is dn_blk_is_ref. Without it RegNet's
   8-channel groups pick nChw8c between convolutions in nChw16c and reorder
   twice per convolution and pass. */
bool dn_blk_grouped_nxc(ctx *c, int32_t vid, int64_t group, int64_t in_channels,
                        const ot_value *av, dnnl_memory_desc_t *a, const ot_value *bv,
                        dnnl_memory_desc_t *b);
/* A depthwise convolution's filter gradient (ConvGradFilter) with a kernel
   (nk spatial dims) other than 3x3: a and b in nhwc, as dn_blk_grouped_nxc;
   false for others and with bf16. */
bool dn_blk_depthwise_grad_nxc(ctx *c, int64_t group, int64_t in_channels, const int64_t *kernel,
                               int nk, const ot_value *av, dnnl_memory_desc_t *a,
                               const ot_value *bv, dnnl_memory_desc_t *b);
/* Sum of operands that share md, as one loop over md's elements: where
   oneDNN 2.6 has only its reference sum (blocked layouts with padded
   channels: 104 or 440 channels in nChw16c). */
ot_status dn_blk_sum(ctx *c, const dnnl_memory_desc_t *md, bool *done, ot_err *err);
/* oneDNN chose its reference (slow) implementation. */
bool dn_blk_is_ref(const_dnnl_primitive_desc_t pd);

#endif
