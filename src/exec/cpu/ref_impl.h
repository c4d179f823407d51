/*
 * ref_impl.h: private to the plain C kernels (src/exec/cpu/ref*.c). Declares
 * each kernel and its `supports` check, and small helpers they share: element
 * load/store through a dtype, numel, row-major strides, the op ids.
 *
 * Not a public interface: ref.h is. Nothing here allocates.
 */
#ifndef OT_EXEC_CPU_REF_IMPL_H
#define OT_EXEC_CPU_REF_IMPL_H

#include <math.h>
#include <string.h>

#include "exec/cpu/ref.h"

/* Element-wise kernels split their loop over the executor's OpenMP threads
   from this many elements (each element computed alone, so the bytes do
   not depend on the split). */
#define OT_REF_PARALLEL_MIN 16384

/* One kernel and its compile-time check, as ref.c's table holds them. */
#define OT_REF_DECL(name)                                                                       \
    ot_status ot_ref_##name(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,    \
                            ot_tensor *const *out, ot_err *err);                                \
    bool ot_ref_##name##_supports(const ot_graph *g, const ot_node *n,                          \
                                  const ot_tensor *const *in, const ot_tensor *const *out,      \
                                  const char **why)

/* ref_conv.c */
OT_REF_DECL(conv);
/* ref_pool.c */
OT_REF_DECL(maxpool);
OT_REF_DECL(avgpool);
OT_REF_DECL(globalavgpool);
OT_REF_DECL(globalmaxpool);
/* ref_norm.c */
OT_REF_DECL(batchnorm);
OT_REF_DECL(softmax);
OT_REF_DECL(logsoftmax);
OT_REF_DECL(lrn);
/* ref_eltwise.c */
OT_REF_DECL(relu);
OT_REF_DECL(leakyrelu);
OT_REF_DECL(clip);
OT_REF_DECL(sigmoid);
OT_REF_DECL(dropout);
OT_REF_DECL(add);
OT_REF_DECL(mul);
OT_REF_DECL(sum);
OT_REF_DECL(sub);
OT_REF_DECL(div);
OT_REF_DECL(max); /* Max and Min */
OT_REF_DECL(mean);
/* ref_math.c */
OT_REF_DECL(math_unary); /* Sqrt, Reciprocal, Exp, Log, Tanh, Erf, HardSigmoid, ... */
OT_REF_DECL(pow);
OT_REF_DECL(reduce); /* ReduceMean, ReduceSum, ReduceMax, ReduceL2 */
OT_REF_DECL(unary_grad);
OT_REF_DECL(reduce_grad);
OT_REF_DECL(prelu);
OT_REF_DECL(prelu_grad);
OT_REF_DECL(extremum_grad);
OT_REF_DECL(einsum);
/* ref_normalize.c */
OT_REF_DECL(normalize); /* LayerNormalization, InstanceNormalization, GroupNormalization */
OT_REF_DECL(norm_grad);
/* ref_gemm.c */
OT_REF_DECL(gemm);
OT_REF_DECL(matmul);
/* ref_shape.c */
OT_REF_DECL(concat);
OT_REF_DECL(copy); /* Flatten, Reshape, Squeeze, Unsqueeze, Identity */
OT_REF_DECL(transpose);
OT_REF_DECL(shape);
OT_REF_DECL(gather);
OT_REF_DECL(pad);
OT_REF_DECL(constant);
/* ref_index.c */
OT_REF_DECL(slice);
OT_REF_DECL(cast);
OT_REF_DECL(lrn_grad);
/* ref_logic.c: index and logic ops, and their backward ops */
OT_REF_DECL(compare); /* Equal, Greater, Less, And, Not */
OT_REF_DECL(where);
OT_REF_DECL(mod);
OT_REF_DECL(split);
OT_REF_DECL(expand);
OT_REF_DECL(tile);
OT_REF_DECL(constant_of_shape);
OT_REF_DECL(range);
OT_REF_DECL(scatter_nd);
OT_REF_DECL(gather_grad);
OT_REF_DECL(scatter_nd_grad);
OT_REF_DECL(slice_grad);
/* ref_grad.c: backward ops of the private domain (src/ops/grad_ops.c) */
OT_REF_DECL(conv_grad_data);
OT_REF_DECL(conv_grad_filter);
OT_REF_DECL(maxpool_grad);
OT_REF_DECL(avgpool_grad);
OT_REF_DECL(globalavgpool_grad);
OT_REF_DECL(globalmaxpool_grad);
OT_REF_DECL(batchnorm_grad);
OT_REF_DECL(batchnorm_train);
OT_REF_DECL(dropout_train);
/* ref_optim.c: optimizer updates and gradient clipping (src/ops/optim_ops.c) */
OT_REF_DECL(sgd_step);
OT_REF_DECL(adam_step); /* AdamStep and AdamWStep */
OT_REF_DECL(grad_sum_squares);
OT_REF_DECL(grad_all_reduce);
OT_REF_DECL(clip_grad_coef);
/* ref_grad_eltwise.c */
OT_REF_DECL(relu_grad);
OT_REF_DECL(leakyrelu_grad);
OT_REF_DECL(clip_grad);
OT_REF_DECL(sigmoid_grad);
OT_REF_DECL(dropout_grad);
OT_REF_DECL(softmax_grad);
OT_REF_DECL(logsoftmax_grad);
OT_REF_DECL(reduce_sum_to);
OT_REF_DECL(broadcast_to);
OT_REF_DECL(slice_axis);
OT_REF_DECL(softmax_xent);
OT_REF_DECL(softmax_xent_grad);
/* ref_quant.c: QuantizeLinear, DequantizeLinear, FakeQuant and its gradient */
OT_REF_DECL(quantize_linear);
OT_REF_DECL(dequantize_linear);
OT_REF_DECL(fake_quant);
OT_REF_DECL(fake_quant_grad);

/* The window geometry of one Conv or pool, spatial dims padded to 3 (1-D and
   2-D windows get leading spatial dims of size 1). */
typedef struct ot_ref_geom {
    int64_t N, C, M, G;        /* batch, in channels, out channels, groups    */
    int64_t in[3], k[3], o[3]; /* input, kernel, output spatial dims           */
    int64_t s[3], d[3];        /* strides, dilations                           */
    int64_t pb[3], pe[3];      /* begin and end pads                           */
} ot_ref_geom;

/* Fills the geometry from x: (N, C, D1..Dk) with k in 1..3, the kernel dims,
   y's dims (trusted) and the node's strides, dilations, pads and auto_pad
   (SAME_* pads follow from y's dims). M and G are left to the caller. */
void ot_ref_window(const ot_node *n, const ot_tensor *x, const int64_t *kernel,
                   const ot_tensor *y, ot_ref_geom *q);

/* Input i of a node's kernel call, or NULL when omitted or past the end. */
static inline const ot_tensor *ot_ref_in(const ot_node *n, const ot_tensor *const *in, int i)
{
    return i < n->n_in && n->in[i] >= 0 ? in[i] : NULL;
}

/* Output i, or NULL when omitted or past the end. */
static inline ot_tensor *ot_ref_out(const ot_node *n, ot_tensor *const *out, int i)
{
    return i < n->n_out && n->out[i] >= 0 ? out[i] : NULL;
}

/* The same for the output list `supports` sees. */
static inline const ot_tensor *ot_ref_cout(const ot_node *n, const ot_tensor *const *out, int i)
{
    return i < n->n_out && n->out[i] >= 0 ? out[i] : NULL;
}

/* Elements of dims [from, to) of t (1 for an empty range). */
static inline int64_t ot_ref_prod(const ot_tensor *t, int from, int to)
{
    int64_t p = 1;
    for (int i = from; i < to; i++)
        p *= t->dims[i];
    return p;
}

/* True for the floating dtypes the kernels compute on. */
static inline bool ot_ref_is_float(ot_dtype t)
{
    return t == OT_DTYPE_FLOAT || t == OT_DTYPE_DOUBLE || t == OT_DTYPE_FLOAT16 ||
           t == OT_DTYPE_BFLOAT16;
}

/* True for integer dtypes whose values fit int64 (every one but uint64). */
static inline bool ot_ref_is_int(ot_dtype t)
{
    return t == OT_DTYPE_INT8 || t == OT_DTYPE_UINT8 || t == OT_DTYPE_INT16 ||
           t == OT_DTYPE_UINT16 || t == OT_DTYPE_INT32 || t == OT_DTYPE_UINT32 ||
           t == OT_DTYPE_INT64;
}

/* Element i of a float or integer buffer, as double. */
static inline double ot_ref_ld(ot_dtype t, const void *p, int64_t i)
{
    const unsigned char *b = (const unsigned char *)p;
    switch (t) {
    case OT_DTYPE_FLOAT: return ((const float *)p)[i];
    case OT_DTYPE_DOUBLE: return ((const double *)p)[i];
    case OT_DTYPE_FLOAT16: return ot_f16_to_f32(((const uint16_t *)p)[i]);
    case OT_DTYPE_BFLOAT16: return ot_bf16_to_f32(((const uint16_t *)p)[i]);
    case OT_DTYPE_INT8: return ((const int8_t *)p)[i];
    case OT_DTYPE_UINT8: return b[i];
    case OT_DTYPE_BOOL: return b[i] != 0;
    case OT_DTYPE_INT16: return ((const int16_t *)p)[i];
    case OT_DTYPE_UINT16: return ((const uint16_t *)p)[i];
    case OT_DTYPE_INT32: return ((const int32_t *)p)[i];
    case OT_DTYPE_UINT32: return ((const uint32_t *)p)[i];
    case OT_DTYPE_INT64: return (double)((const int64_t *)p)[i];
    case OT_DTYPE_UINT64: return (double)((const uint64_t *)p)[i];
    default: return 0;
    }
}

/* Clamps v into [lo, hi] and truncates, so the conversion is defined. */
static inline int64_t ot_ref_to_int(double v, double lo, double hi)
{
    if (v != v)
        return 0;
    if (v < lo)
        v = lo;
    if (v > hi)
        v = hi;
    return (int64_t)v;
}

/* Stores v as element i of a float or integer buffer (integers saturate). */
static inline void ot_ref_st(ot_dtype t, void *p, int64_t i, double v)
{
    switch (t) {
    case OT_DTYPE_FLOAT: ((float *)p)[i] = (float)v; break;
    case OT_DTYPE_DOUBLE: ((double *)p)[i] = v; break;
    case OT_DTYPE_FLOAT16: ((uint16_t *)p)[i] = ot_f32_to_f16((float)v); break;
    case OT_DTYPE_BFLOAT16: ((uint16_t *)p)[i] = ot_f32_to_bf16((float)v); break;
    case OT_DTYPE_INT8: ((int8_t *)p)[i] = (int8_t)ot_ref_to_int(v, -128.0, 127.0); break;
    case OT_DTYPE_UINT8: ((uint8_t *)p)[i] = (uint8_t)ot_ref_to_int(v, 0.0, 255.0); break;
    case OT_DTYPE_BOOL: ((uint8_t *)p)[i] = v != 0; break;
    case OT_DTYPE_INT16: ((int16_t *)p)[i] = (int16_t)ot_ref_to_int(v, -32768.0, 32767.0); break;
    case OT_DTYPE_UINT16: ((uint16_t *)p)[i] = (uint16_t)ot_ref_to_int(v, 0.0, 65535.0); break;
    case OT_DTYPE_INT32:
        ((int32_t *)p)[i] = (int32_t)ot_ref_to_int(v, -2147483648.0, 2147483647.0);
        break;
    case OT_DTYPE_UINT32: ((uint32_t *)p)[i] = (uint32_t)ot_ref_to_int(v, 0.0, 4294967295.0); break;
    case OT_DTYPE_INT64:
        ((int64_t *)p)[i] = ot_ref_to_int(v, -9223372036854775808.0, 9223372036854774784.0);
        break;
    default: break;
    }
}

/* Pad's begin pads per dim of a rank-r input (the end pads follow from the
   output's dims): from the attribute before opset 11, else from the constant
   `pads` and optional `axes` tensors (host memory; axes NULL: all dims).
   False when they are missing or malformed. */
bool ot_ref_pad_begins(const ot_node *n, const ot_tensor *pads, const ot_tensor *axes, int r,
                       int64_t *begin);

#endif
