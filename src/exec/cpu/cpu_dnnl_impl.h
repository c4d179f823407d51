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

/* cpu_dnnl_math.c: ReduceMean, ReduceSum, ReduceMax and ReduceL2;
   LayerNormalization; Einsum as a batched matrix product. */
ot_status dn_reduce(ctx *c, bool *done, ot_err *err);
ot_status dn_layernorm(ctx *c, bool *done, ot_err *err);
ot_status dn_einsum(ctx *c, bool *done, ot_err *err);

#endif
