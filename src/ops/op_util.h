/*
 * op_util.h: helpers shared by the op descriptors in src/ops/: access to a
 * node's inputs and outputs, messages that name the node, attribute checks,
 * broadcasting, the window arithmetic of Conv and the pools, and the folding
 * of small integer tensors (the shape arithmetic exporters emit).
 *
 * Private to src/ops/. Nothing here allocates outside the graph's arena.
 *
 * Partial shape vectors. `Shape` of a tensor with a dynamic batch dim cannot
 * be folded into a constant, but Reshape still wants to know that element 0
 * of its target is "dim 0 of x". So a node output may carry a *partial*
 * vector: v->data holds int64 elements as usual, OT_VAL_CONST stays clear
 * (ot_graph_const returns NULL, nothing outside shape inference sees it), and
 * an element that is not known is a symbol, ot_op_sym(value, dim), standing
 * for that dim of that value (with its dim_name). Data-movement ops (Gather,
 * Concat, Unsqueeze, Squeeze, Identity, Reshape, Flatten) carry symbols along;
 * Reshape resolves them. ot_graph_infer_shapes clears node outputs' data
 * before each run, so a stale partial vector never survives a graph edit.
 */
#ifndef OT_OP_UTIL_H
#define OT_OP_UTIL_H

#include "ops/ops.h"

/* Every descriptor, declared from ops.def so each op file sees its own. */
#define OT_OP(id, desc) extern const ot_op_desc desc;
#include "ops/ops.def"
#undef OT_OP

/* Largest integer tensor (elements) that shape inference folds. */
#define OT_OP_FOLD_MAX 64

/* A shape being computed: dims >= 0 or OT_DIM_DYNAMIC, with the symbol of a
   dynamic dim in names[i] (or NULL). Caller's storage. */
typedef struct ot_op_dims {
    int ndim;
    int64_t dims[OT_MAX_DIMS];
    const char *names[OT_MAX_DIMS];
} ot_op_dims;

/* Input / output i of n, or NULL when absent or omitted (id -1). Borrowed. */
ot_value *ot_op_in(ot_graph *g, const ot_node *n, int i);
ot_value *ot_op_out(ot_graph *g, const ot_node *n, int i);

/* True when a value's dtype and rank are both known (rank <= OT_MAX_DIMS). */
bool ot_op_known(const ot_value *v);

/* dtype classes used by the ONNX type constraints. */
bool ot_op_is_float(ot_dtype t); /* float, float16, bfloat16, double        */
bool ot_op_is_int(ot_dtype t);   /* signed and unsigned integers            */

/* Records "node 'x' (Op): <message>" in err; returns code. */
ot_status ot_op_err(ot_err *err, ot_status code, const ot_graph *g, const ot_node *n,
                    const char *fmt, ...) OT_PRINTF(5, 6);

/* Checks that input i is of a floating-point type. Errors: OT_ERR_MODEL. */
ot_status ot_op_need_float(const ot_graph *g, const ot_node *n, int i, const ot_value *v,
                           ot_err *err);

/* Shapes. */
void ot_op_dims_of(const ot_value *v, ot_op_dims *d);
/* Sets an output's dtype and shape; names of static dims are dropped. */
void ot_op_set(ot_value *out, ot_dtype dtype, const ot_op_dims *d);
/* Output = input's dtype and shape. */
void ot_op_copy(ot_value *out, const ot_value *in);
/* "[N,3,224,224]"; "?" for an unnamed dynamic dim. */
void ot_op_dims_str(const ot_op_dims *d, char *buf, size_t size);
/* Normalises an axis in [-rank, rank) to [0, rank); false when out of range. */
bool ot_op_axis(int64_t axis, int rank, int *out);

/* Product of dims [from, to): static, or OT_DIM_DYNAMIC keeping the symbol
   when exactly one factor is dynamic and the others are 1. False when the
   product of the static dims overflows. */
bool ot_op_dims_prod(const ot_op_dims *d, int from, int to, int64_t *dim, const char **name);
/* a * b for non-negative dims; false on overflow. */
bool ot_op_dim_mul(int64_t a, int64_t b, int64_t *out);

/* Checked signed arithmetic: false when the result does not fit int64. */
bool ot_op_i64_add(int64_t a, int64_t b, int64_t *out);
bool ot_op_i64_sub(int64_t a, int64_t b, int64_t *out);
bool ot_op_i64_mul(int64_t a, int64_t b, int64_t *out);

/* numpy broadcasting of two shapes. Errors: OT_ERR_SHAPE naming both shapes. */
ot_status ot_op_broadcast(const ot_graph *g, const ot_node *n, const ot_op_dims *a,
                          const ot_op_dims *b, ot_op_dims *out, ot_err *err);

/* Shape inference of the broadcasting element-wise ops (Add, Mul, Sum, Sub,
   Div): numpy broadcasting over all inputs of one numeric dtype, and the
   legacy form (broadcast, axis) of two-input ops before opset 7. */
ot_status ot_op_broadcast_infer(ot_graph *g, ot_node *n, ot_err *err);

/* Sliding windows (Conv, MaxPool, AveragePool). x: (N, C, D1, ..., Dk);
   kernel: k dims (OT_DIM_DYNAMIC when unknown). Reads strides, pads,
   dilations and auto_pad from the node and checks their lengths; fills the
   spatial dims of y (y->dims[0..1] are the caller's). ceil_mode: pools.
   Errors: OT_ERR_MODEL (attribute lengths), OT_ERR_SHAPE (window too big). */
ot_status ot_op_window(const ot_graph *g, const ot_node *n, const ot_op_dims *x,
                       const int64_t *kernel, bool ceil_mode, ot_op_dims *y, ot_err *err);

/* Attribute checks (ot_attr_check_fn); messages continue "attribute 'x' ...". */
ot_status ot_op_check_positive(const ot_graph *g, const ot_node *n, const ot_attr *a,
                               ot_err *err);
ot_status ot_op_check_bool(const ot_graph *g, const ot_node *n, const ot_attr *a, ot_err *err);
ot_status ot_op_check_auto_pad(const ot_graph *g, const ot_node *n, const ot_attr *a,
                               ot_err *err);
ot_status ot_op_check_positive_ints(const ot_graph *g, const ot_node *n, const ot_attr *a,
                                    ot_err *err);
/* Non-negative; one per spatial dim when kernel_shape is there. */
ot_status ot_op_check_spatial_ints(const ot_graph *g, const ot_node *n, const ot_attr *a,
                                   ot_err *err);
/* Non-negative, begin and end per spatial dim (2 x kernel_shape's length). */
ot_status ot_op_check_pads(const ot_graph *g, const ot_node *n, const ot_attr *a, ot_err *err);

/* ---------------------------------------------------------------- folding */

/* A symbol for dim `dim` of value `vid` inside a partial shape vector. */
#define OT_OP_SYM_NONE INT64_MIN /* unknown, origin unknown */
static inline int64_t ot_op_sym(int32_t vid, int dim)
{
    return INT64_MIN + 1 + (int64_t)vid * OT_MAX_DIMS + dim;
}
static inline bool ot_op_is_sym(int64_t e) { return e < INT64_MIN + 1 + ((int64_t)1 << 40); }
/* The dim a symbol stands for: its current size (OT_DIM_DYNAMIC) and name,
   and the value and dim it came from (-1 when unknown). */
void ot_op_sym_dim(const ot_graph *g, int64_t e, int64_t *dim, const char **name, int32_t *vid,
                   int *d);

/* The elements of a small integer tensor when known at import: a constant
   int32/int64 tensor with at most OT_OP_FOLD_MAX elements, or a partial
   vector (*partial true). NULL otherwise. Borrowed from the graph. */
const ot_tensor *ot_op_ints(const ot_graph *g, int32_t vid, bool *partial);

/* As ot_op_ints, bool tensors too (elements read as 0 and 1): what the
   folding of comparisons and Where reads. */
const ot_tensor *ot_op_ints_or_bools(const ot_graph *g, int32_t vid, bool *partial);

/* The shape that input i of n (an int64 shape vector) asks for: known
   elements, symbols of dynamic dims resolved, unknown entries dynamic. An
   absent input is a scalar when absent_scalar. False when not even the rank
   is known. */
bool ot_op_shape_operand(const ot_graph *g, const ot_node *n, int i, bool absent_scalar,
                         ot_op_dims *d);

/* Makes v a constant (or partial, when `partial` and some element is a
   symbol) tensor of dtype (int32, int64 or bool) and shape d (static) holding
   vals. Data goes to g->arena.
   Errors: OT_ERR_NOMEM. */
ot_status ot_op_set_ints(ot_graph *g, ot_value *v, ot_dtype dtype, const ot_op_dims *d,
                         const int64_t *vals, bool partial, ot_err *err);

/* Folds an op that keeps the elements and changes only the shape (Identity,
   Flatten, Reshape, Squeeze, Unsqueeze): when x's elements are known and y's
   inferred shape is static, y gets the same elements. Errors: OT_ERR_NOMEM. */
ot_status ot_op_fold_same(ot_graph *g, int32_t x_id, ot_value *y, ot_err *err);

/* Folds integer arithmetic (Add, Sub, Mul, Div, Mod, Neg, Abs, Max, Min) on
   small, fully known int32/int64 tensors into n's output, after n's own
   infer ran (ot_graph_infer_shapes calls it for every node; fold.c).
   Errors: OT_ERR_NOMEM. */
ot_status ot_op_fold_ints(ot_graph *g, ot_node *n, ot_err *err);

/* A descriptor of the default domain for opsets first..21, with one to
   out_max outputs; validate_fn may be NULL; no_grad when grad_fn is NULL
   (say why beside the row). */
#define OT_OP_DEFAULT_DESC(sym, op_id, name, first, in_min, in_max, out_max, attr_list,        \
                           infer_fn, validate_fn, grad_fn)                                     \
    const ot_op_desc sym = {                                                                    \
        .id = op_id,                                                                            \
        .domain = "",                                                                           \
        .type = name,                                                                           \
        .opset_min = first,                                                                     \
        .opset_max = 21,                                                                        \
        .n_in_min = in_min,                                                                     \
        .n_in_max = in_max,                                                                     \
        .n_out_min = 1,                                                                         \
        .n_out_max = out_max,                                                                   \
        .attrs = attr_list,                                                                     \
        .infer = infer_fn,                                                                      \
        .validate = validate_fn,                                                                \
        .grad = grad_fn,                                                                        \
        .no_grad = grad_fn == NULL,                                                             \
    }

/* A descriptor of the private domain "ai.onnxtrain", opset 1, that autodiff
   never differentiates (backward ops, the optimizer updates): `inplace` as
   ot_op_desc's in_place (NULL: none). */
#define OT_OP_PRIVATE_NO_GRAD(sym, op_id, name, in_min, in_max, out_min, out_max, attr_list,   \
                              infer_fn, inplace)                                                \
    const ot_op_desc sym = {                                                                    \
        .id = op_id,                                                                            \
        .domain = OT_OP_DOMAIN_PRIVATE,                                                         \
        .type = name,                                                                           \
        .opset_min = 1,                                                                         \
        .opset_max = 1,                                                                         \
        .n_in_min = in_min,                                                                     \
        .n_in_max = in_max,                                                                     \
        .n_out_min = out_min,                                                                   \
        .n_out_max = out_max,                                                                   \
        .attrs = attr_list,                                                                     \
        .infer = infer_fn,                                                                      \
        .in_place = inplace,                                                                    \
        .no_grad = true,                                                                        \
    }

#endif
