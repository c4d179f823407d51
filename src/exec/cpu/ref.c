/*
 * ref.c: the table of plain C kernels, one row per op of the op table
 * indexed by op id (ops.def), and the two lookups ref.h promises (kernel,
 * supports).
 *
 * It does not choose between these kernels and oneDNN's; the CPU backend
 * does, asking ot_ref_supports for what oneDNN lacks. Every row of ops.def
 * has a kernel here; tests/unit/test_ref.c checks that.
 *
 * Reference: the kernels' files (ref_conv.c, ref_pool.c, ref_norm.c,
 * ref_eltwise.c, ref_math.c, ref_gemm.c, ref_shape.c) cite the ONNX operator pages.
 */
#include "exec/cpu/ref_impl.h"

typedef bool (*ref_supports_fn)(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                                const ot_tensor *const *out, const char **why);

typedef struct ref_row {
    ot_ref_fn run;
    ref_supports_fn supports;
} ref_row;

#define ROW(name) { ot_ref_##name, ot_ref_##name##_supports }

static const ref_row ref_table[OT_OP_COUNT_] = {
    [OT_OP_CONV] = ROW(conv),
    [OT_OP_BATCHNORM] = ROW(batchnorm),
    [OT_OP_RELU] = ROW(relu),
    [OT_OP_LEAKYRELU] = ROW(leakyrelu),
    [OT_OP_CLIP] = ROW(clip),
    [OT_OP_SIGMOID] = ROW(sigmoid),
    [OT_OP_MAXPOOL] = ROW(maxpool),
    [OT_OP_AVGPOOL] = ROW(avgpool),
    [OT_OP_GLOBALAVGPOOL] = ROW(globalavgpool),
    [OT_OP_GLOBALMAXPOOL] = ROW(globalmaxpool),
    [OT_OP_ADD] = ROW(add),
    [OT_OP_SUM] = ROW(sum),
    [OT_OP_MUL] = ROW(mul),
    [OT_OP_SUB] = ROW(sub),
    [OT_OP_DIV] = ROW(div),
    [OT_OP_POW] = ROW(pow),
    [OT_OP_SQRT] = ROW(math_unary),
    [OT_OP_RECIPROCAL] = ROW(math_unary),
    [OT_OP_EXP] = ROW(math_unary),
    [OT_OP_LOG] = ROW(math_unary),
    [OT_OP_TANH] = ROW(math_unary),
    [OT_OP_ERF] = ROW(math_unary),
    [OT_OP_HARDSIGMOID] = ROW(math_unary),
    [OT_OP_HARDSWISH] = ROW(math_unary),
    [OT_OP_ELU] = ROW(math_unary),
    [OT_OP_SELU] = ROW(math_unary),
    [OT_OP_SOFTPLUS] = ROW(math_unary),
    [OT_OP_GELU] = ROW(math_unary),
    [OT_OP_REDUCE_MEAN] = ROW(reduce),
    [OT_OP_REDUCE_SUM] = ROW(reduce),
    [OT_OP_REDUCE_MAX] = ROW(reduce),
    [OT_OP_REDUCE_L2] = ROW(reduce),
    [OT_OP_PRELU] = ROW(prelu),
    [OT_OP_LAYERNORM] = ROW(normalize),
    [OT_OP_INSTANCENORM] = ROW(normalize),
    [OT_OP_GROUPNORM] = ROW(normalize),
    [OT_OP_MAX] = ROW(max),
    [OT_OP_MIN] = ROW(max),
    [OT_OP_MEAN] = ROW(mean),
    [OT_OP_EINSUM] = ROW(einsum),
    [OT_OP_CONCAT] = ROW(concat),
    [OT_OP_FLATTEN] = ROW(copy),
    [OT_OP_RESHAPE] = ROW(copy),
    [OT_OP_SQUEEZE] = ROW(copy),
    [OT_OP_UNSQUEEZE] = ROW(copy),
    [OT_OP_TRANSPOSE] = ROW(transpose),
    [OT_OP_GEMM] = ROW(gemm),
    [OT_OP_MATMUL] = ROW(matmul),
    [OT_OP_DROPOUT] = ROW(dropout),
    [OT_OP_SOFTMAX] = ROW(softmax),
    [OT_OP_LOGSOFTMAX] = ROW(logsoftmax),
    [OT_OP_LRN] = ROW(lrn),
    [OT_OP_IDENTITY] = ROW(copy),
    [OT_OP_CONSTANT] = ROW(constant),
    [OT_OP_SHAPE] = ROW(shape),
    [OT_OP_GATHER] = ROW(gather),
    [OT_OP_PAD] = ROW(pad),
    [OT_OP_SLICE] = ROW(slice),
    [OT_OP_CAST] = ROW(cast),
    [OT_OP_SPLIT] = ROW(split),
    [OT_OP_EXPAND] = ROW(expand),
    [OT_OP_TILE] = ROW(tile),
    [OT_OP_CONSTANT_OF_SHAPE] = ROW(constant_of_shape),
    [OT_OP_RANGE] = ROW(range),
    [OT_OP_SCATTER_ND] = ROW(scatter_nd),
    [OT_OP_EQUAL] = ROW(compare),
    [OT_OP_GREATER] = ROW(compare),
    [OT_OP_LESS] = ROW(compare),
    [OT_OP_NOT] = ROW(compare),
    [OT_OP_AND] = ROW(compare),
    [OT_OP_WHERE] = ROW(where),
    [OT_OP_MOD] = ROW(mod),
    [OT_OP_GATHER_GRAD] = ROW(gather_grad),
    [OT_OP_SCATTER_ND_GRAD] = ROW(scatter_nd_grad),
    [OT_OP_SLICE_GRAD] = ROW(slice_grad),
    [OT_OP_CONV_GRAD_DATA] = ROW(conv_grad_data),
    [OT_OP_CONV_GRAD_FILTER] = ROW(conv_grad_filter),
    [OT_OP_RELU_GRAD] = ROW(relu_grad),
    [OT_OP_LEAKYRELU_GRAD] = ROW(leakyrelu_grad),
    [OT_OP_CLIP_GRAD] = ROW(clip_grad),
    [OT_OP_SIGMOID_GRAD] = ROW(sigmoid_grad),
    [OT_OP_MAXPOOL_GRAD] = ROW(maxpool_grad),
    [OT_OP_AVGPOOL_GRAD] = ROW(avgpool_grad),
    [OT_OP_GLOBALAVGPOOL_GRAD] = ROW(globalavgpool_grad),
    [OT_OP_GLOBALMAXPOOL_GRAD] = ROW(globalmaxpool_grad),
    [OT_OP_BATCHNORM_GRAD] = ROW(batchnorm_grad),
    [OT_OP_BATCHNORM_TRAIN] = ROW(batchnorm_train),
    [OT_OP_DROPOUT_TRAIN] = ROW(dropout_train),
    [OT_OP_UNARY_GRAD] = ROW(unary_grad),
    [OT_OP_REDUCE_GRAD] = ROW(reduce_grad),
    [OT_OP_PRELU_GRAD] = ROW(prelu_grad),
    [OT_OP_EXTREMUM_GRAD] = ROW(extremum_grad),
    [OT_OP_NORM_GRAD] = ROW(norm_grad),
    [OT_OP_REDUCE_SUM_TO] = ROW(reduce_sum_to),
    [OT_OP_BROADCAST_TO] = ROW(broadcast_to),
    [OT_OP_LRN_GRAD] = ROW(lrn_grad),
    [OT_OP_SOFTMAX_GRAD] = ROW(softmax_grad),
    [OT_OP_LOGSOFTMAX_GRAD] = ROW(logsoftmax_grad),
    [OT_OP_DROPOUT_GRAD] = ROW(dropout_grad),
    [OT_OP_SOFTMAX_XENT] = ROW(softmax_xent),
    [OT_OP_SOFTMAX_XENT_GRAD] = ROW(softmax_xent_grad),
    [OT_OP_SLICE_AXIS] = ROW(slice_axis),
    [OT_OP_SGD_STEP] = ROW(sgd_step),
    [OT_OP_ADAM_STEP] = ROW(adam_step),
    [OT_OP_ADAMW_STEP] = ROW(adam_step),
    [OT_OP_GRAD_SUM_SQUARES] = ROW(grad_sum_squares),
    [OT_OP_CLIP_GRAD_COEF] = ROW(clip_grad_coef),
    [OT_OP_QUANTIZE_LINEAR] = ROW(quantize_linear),
    [OT_OP_DEQUANTIZE_LINEAR] = ROW(dequantize_linear),
    [OT_OP_FAKE_QUANT] = ROW(fake_quant),
    [OT_OP_FAKE_QUANT_GRAD] = ROW(fake_quant_grad),
    [OT_OP_GRAD_ALL_REDUCE] = ROW(grad_all_reduce),
};

/* The row for a node's op, by the op's id, or NULL (opaque node, or an op
   without a kernel). */
static const ref_row *find_row(const ot_node *n)
{
    if (!n->op || (unsigned)n->op->id >= OT_OP_COUNT_ || ot_op_table[n->op->id] != n->op)
        return NULL;
    const ref_row *r = &ref_table[n->op->id];
    return r->run ? r : NULL;
}

ot_ref_fn ot_ref_kernel(const ot_node *n)
{
    const ref_row *r = find_row(n);
    return r ? r->run : NULL;
}

bool ot_ref_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                     const ot_tensor *const *out, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    *why = NULL;
    const ref_row *r = find_row(n);
    if (!r) {
        *why = "no plain C kernel for this op";
        return false;
    }
    /* Every present output needs its buffer's dtype; a missing one (dtype
       unknown after inference) cannot be executed. */
    for (int i = 0; i < n->n_out; i++) {
        if (n->out[i] >= 0 && out[i] && out[i]->dtype == OT_DTYPE_UNDEFINED) {
            *why = "output dtype unknown";
            return false;
        }
    }
    return r->supports(g, n, in, out, why);
}
