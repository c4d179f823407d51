/*
 * grad_util.h: what gradient rules (src/ops/grad_rules.c) and the autodiff
 * pass (src/passes/autodiff.c) use to append backward nodes: emitting a node
 * with fresh, uniquely named outputs and inferred shapes, constant
 * initializers, Shape / ReduceSumTo / Sum helpers, and the rule of every
 * forward op that has one (the descriptors point at them).
 *
 * Everything here edits the graph in place: values and nodes arrays may move,
 * so callers keep ids, never pointers, across calls. Strings, attributes and
 * arrays of new nodes live in g->arena; constant bytes are ot_malloc'ed and
 * owned by the graph like any initializer's.
 */
#ifndef OT_OPS_GRAD_UTIL_H
#define OT_OPS_GRAD_UTIL_H

#include "ops/ops.h"

/* The opset of default-domain nodes that rules emit (Reshape's allowzero
   needs 14). Private-domain nodes get opset 1. */
#define OT_OP_GRAD_ONNX_OPSET 14

/* Attribute builders for ot_op_grad_emit. The result borrows `name` and `v`;
   emit copies both into the graph. */
ot_attr ot_op_grad_attr_int(const char *name, int64_t v);
ot_attr ot_op_grad_attr_float(const char *name, float v);
ot_attr ot_op_grad_attr_ints(const char *name, const int64_t *v, size_t n);

/* Adds a value named `hint`, or `hint_1`, `hint_2`, ... when that name is
   taken. Errors: OT_ERR_NOMEM. */
ot_status ot_op_grad_new_value(ot_graph *g, const char *hint, int32_t *id, ot_err *err);

/*
 * Appends a node of `op` (opset 0: OT_OP_GRAD_ONNX_OPSET for the default
 * domain, 1 for the private one) named `name`, with inputs in[0..n_in) (-1:
 * omitted) and copies of the attributes. Output i is a new value named after
 * out_names[i] (made unique), or omitted (-1) when out_names[i] is NULL; its
 * id goes to out[i]. The op's shape inference then fills the outputs.
 * Errors: OT_ERR_NOMEM; the op's infer errors (OT_ERR_SHAPE, OT_ERR_MODEL).
 */
ot_status ot_op_grad_emit(ot_graph *g, const ot_op_desc *op, int opset, const char *name,
                          const int32_t *in, int n_in, const ot_attr *attrs, int n_attrs,
                          const char *const *out_names, int32_t *out, int n_out, ot_err *err);

/* Adds a constant initializer (OT_VAL_INIT | OT_VAL_CONST, never trainable)
   of float32 or int64 elements with the given shape; `data` holds the
   product of dims elements (ndim 0: one). Errors: OT_ERR_NOMEM. */
ot_status ot_op_grad_const_f32(ot_graph *g, const char *hint, const int64_t *dims, int ndim,
                               const float *data, int32_t *id, ot_err *err);
ot_status ot_op_grad_const_i64(ot_graph *g, const char *hint, const int64_t *dims, int ndim,
                               const int64_t *data, int32_t *id, ot_err *err);

/* The shape of x as an int64 vector: the output of a Shape(x) node that an
   earlier rule emitted, else a new Shape node. It folds to a
   constant once shapes are static. Errors: OT_ERR_NOMEM. */
ot_status ot_op_grad_shape_of(ot_graph *g, int32_t x, int32_t *id, ot_err *err);

/* dy summed down to the shape of x (the gradient of a broadcast): dy itself
   when both shapes are statically equal, else ReduceSumTo(dy, Shape(x)).
   axis < 0: x aligns with dy's last dims (numpy); else x's dim 0 sits at dy's
   dim `axis` (legacy broadcasting). Errors: as ot_op_grad_emit. */
ot_status ot_op_grad_reduce_to(ot_graph *g, const char *name, int32_t dy, int32_t x,
                               int64_t axis, int32_t *out, ot_err *err);

/* The sum of n gradient values of one shape: ids[0] when n is 1, else a Sum
   node whose output is named `hint`. Errors: as ot_op_grad_emit. */
ot_status ot_op_grad_sum(ot_graph *g, const char *hint, const int32_t *ids, int n, int32_t *out,
                         ot_err *err);

/* Gives node `node` output `index` when it has none (a new value named
   `hint`, the output array grown as needed) and re-runs its shape
   inference; *id receives the output's id either way. Errors: OT_ERR_NOMEM. */
ot_status ot_op_grad_add_output(ot_graph *g, int32_t node, int index, const char *hint,
                                int32_t *id, ot_err *err);

/* Where operand 1 of a legacy (opset < 7, broadcast=1) binary op (Add, Mul,
   Sub, Div) sits in the output: its `axis`, default right-aligned. -1 for
   numpy broadcasting. */
int64_t ot_op_grad_legacy_axis(const ot_graph *g, int32_t node);

/* The static shape of x equals that of y (ranks and every dim known, or
   dynamic with the same symbol). */
bool ot_op_grad_same_shape(const ot_graph *g, int32_t x, int32_t y);

/* A name for backward nodes of forward node `node`: "grad/<node name>" or
   "grad/#<id>" (with "/<suffix>" when suffix is not NULL), in buf. */
const char *ot_op_grad_node_name(const ot_graph *g, int32_t node, const char *suffix, char *buf,
                                 size_t size);

/* Size of the name buffers the rules pass to the helpers below. */
#define OT_GRAD_NAME_MAX 512

/* "grad/<name of input i of node>" in buf (OT_GRAD_NAME_MAX bytes). */
const char *ot_op_grad_dx_name(const ot_graph *g, int32_t node, int i, char *buf);

/* ot_op_grad_emit for a node with one output named `out_name`. */
ot_status ot_op_grad_emit1(ot_graph *g, const ot_op_desc *op, const char *name, const int32_t *in,
                           int n_in, const ot_attr *attrs, int n_attrs, const char *out_name,
                           int32_t *out, ot_err *err);

/* The refusal of a rule: OT_ERR_UNSUPPORTED, "no gradient for <what>", naming
   the node. */
ot_status ot_op_grad_unsupported(ot_graph *g, int32_t node, const char *what, ot_err *err);

/* ------------------------------------------------------- gradient rules */

/* Each states its derivative beside its definition in grad_rules.c. */
ot_status ot_op_grad_conv(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                          const bool *need_dx, ot_err *err);
ot_status ot_op_grad_batchnorm(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                               const bool *need_dx, ot_err *err);
ot_status ot_op_grad_batchnorm_train(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                                     const bool *need_dx, ot_err *err);
ot_status ot_op_grad_relu(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                          const bool *need_dx, ot_err *err);
ot_status ot_op_grad_leakyrelu(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                               const bool *need_dx, ot_err *err);
ot_status ot_op_grad_clip(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                          const bool *need_dx, ot_err *err);
ot_status ot_op_grad_sigmoid(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                             const bool *need_dx, ot_err *err);
ot_status ot_op_grad_maxpool(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                             const bool *need_dx, ot_err *err);
ot_status ot_op_grad_avgpool(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                             const bool *need_dx, ot_err *err);
ot_status ot_op_grad_globalavgpool(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                                   const bool *need_dx, ot_err *err);
ot_status ot_op_grad_globalmaxpool(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                                   const bool *need_dx, ot_err *err);
ot_status ot_op_grad_add(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                         const bool *need_dx, ot_err *err);
ot_status ot_op_grad_sum_op(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                            const bool *need_dx, ot_err *err);
ot_status ot_op_grad_mul(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                         const bool *need_dx, ot_err *err);
/* grad_math.c: the math ops (math_ops.c, reduce.c) */
ot_status ot_op_grad_sub(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                         const bool *need_dx, ot_err *err);
ot_status ot_op_grad_div(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                         const bool *need_dx, ot_err *err);
ot_status ot_op_grad_pow(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                         const bool *need_dx, ot_err *err);
ot_status ot_op_grad_unary_math(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                                const bool *need_dx, ot_err *err);
ot_status ot_op_grad_reduce(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                            const bool *need_dx, ot_err *err);
ot_status ot_op_grad_prelu(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                           const bool *need_dx, ot_err *err);
ot_status ot_op_grad_max_min(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                             const bool *need_dx, ot_err *err);
ot_status ot_op_grad_mean(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                          const bool *need_dx, ot_err *err);
/* einsum.c */
ot_status ot_op_grad_einsum(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                            const bool *need_dx, ot_err *err);
/* norm_ops.c: LayerNormalization, InstanceNormalization, GroupNormalization */
ot_status ot_op_grad_norm(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                          const bool *need_dx, ot_err *err);
ot_status ot_op_grad_concat(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                            const bool *need_dx, ot_err *err);
ot_status ot_op_grad_reshape_like(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                                  const bool *need_dx, ot_err *err);
ot_status ot_op_grad_transpose(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                               const bool *need_dx, ot_err *err);
ot_status ot_op_grad_gemm(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                          const bool *need_dx, ot_err *err);
ot_status ot_op_grad_matmul(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                            const bool *need_dx, ot_err *err);
ot_status ot_op_grad_dropout_train(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                                   const bool *need_dx, ot_err *err);
ot_status ot_op_grad_dropout(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                             const bool *need_dx, ot_err *err);
ot_status ot_op_grad_softmax(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                             const bool *need_dx, ot_err *err);
ot_status ot_op_grad_identity(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                              const bool *need_dx, ot_err *err);
ot_status ot_op_grad_reduce_sum_to(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                                   const bool *need_dx, ot_err *err);
ot_status ot_op_grad_broadcast_to(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                                  const bool *need_dx, ot_err *err);
ot_status ot_op_grad_softmax_xent(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                                  const bool *need_dx, ot_err *err);

#endif
