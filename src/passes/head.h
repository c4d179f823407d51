/*
 * head.h: finds the classifier head, the layer that produces the logits.
 *
 * A classification network ends in one linear map from features to classes,
 * often followed by shape and activation ops. The head is that linear map:
 *
 *   Gemm        y = x B (+ C), B an initializer: [out,in] with transB=1,
 *               [in,out] with transB=0 (torchvision's nn.Linear export).
 *   MatMul+Add  y = x W + b, W an initializer [in,out], b an initializer
 *               (TF/Keras exports, some older PyTorch exports).
 *   MatMul      y = x W without a bias (nn.Linear(bias=False)).
 *   Conv1x1     a 1x1 convolution, group 1, weight [out,in,1,1] (SqueezeNet,
 *               MobileNetV2-7 from the model zoo).
 *
 * The search starts at the first graph output and walks back through trailing
 * ops that do not mix features (Softmax, LogSoftmax, Identity, Flatten,
 * Reshape, Squeeze, Dropout, GlobalAveragePool, AveragePool, Relu). It does
 * not look past any other op, so a head hidden behind, say, a Concat or a
 * second output is not found. Finding nothing is not an error.
 *
 * The swap-head pass uses the result to replace the head; inspect prints it.
 */
#ifndef OT_PASSES_HEAD_H
#define OT_PASSES_HEAD_H

#include "graph/graph.h"

typedef struct ot_head {
    int32_t node;        /* the Gemm, MatMul or Conv node; -1 when not found      */
    int32_t bias_node;   /* the Add of a MatMul+Add head; -1 otherwise            */
    const char *kind;    /* "Gemm", "MatMul+Add", "MatMul", "Conv1x1"; static     */
    int64_t in_features, out_features;
    int32_t weight, bias; /* value ids, or -1 (bias absent)                       */
    bool found;
} ot_head;

/*
 * Looks for the classifier head of `g` and fills *head (found=false and ids -1
 * when there is none). Reads the graph only; *head holds ids, not pointers,
 * and `kind` points to static storage.
 * Errors: OT_ERR_ARG (NULL graph or head), OT_ERR_MODEL (a value or node id
 * out of range, which an imported graph never has).
 */
ot_status ot_pass_find_head(const ot_graph *g, ot_head *head, ot_err *err);

#endif
