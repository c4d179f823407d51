/*
 * autodiff.h: reverse-mode differentiation as a graph pass, and the loss the
 * training graph ends in.
 *
 * ot_pass_autodiff appends to the graph the nodes that compute the gradient
 * of a scalar loss with respect to chosen values (normally the trainable
 * initializers). Backward nodes are emitted by each op's gradient rule
 * (ops.h, ot_op_grad_fn), in reverse topological order, and only for nodes
 * that lie on a path from a parameter to the loss: a frozen prefix gets no
 * backward nodes at all. Where a value feeds several nodes, its gradient
 * contributions are added by an explicit Sum node. The seed dL/dloss = 1 is
 * a constant initializer the pass adds.
 *
 * The pass does not run the graph, choose kernels or update parameters; the
 * optimizer pass and the trainer do.
 */
#ifndef OT_PASSES_AUTODIFF_H
#define OT_PASSES_AUTODIFF_H

#include "graph/graph.h"

/*
 * Appends the backward graph of `loss` (a float value with one element:
 * shape () or all dims 1) to g, whose nodes must be in topological order
 * (ot_graph_sort). params[0..n_params) are the values to differentiate
 * (initializers or graph inputs alike); grads[i] receives the id of the value
 * holding dL/dparams[i], shaped like params[i], or -1 when the loss does not
 * depend on it. New values are named "grad/<value>" (made unique) and have
 * their shapes inferred; new nodes come after the existing ones, in order.
 * The graph owns everything added. On error the graph may hold some backward
 * nodes already; discard it.
 * Errors: OT_ERR_ARG (loss or a param out of range, loss not a float scalar),
 * OT_ERR_UNSUPPORTED (a node between a param and the loss whose op has no
 * gradient rule, named with its op), OT_ERR_SHAPE, OT_ERR_NOMEM.
 */
ot_status ot_pass_autodiff(ot_graph *g, int32_t loss, const int32_t *params, int n_params,
                           int32_t *grads, ot_err *err);

/*
 * Adds the classification loss: a graph input of class indices, int64 [N]
 * (N as the logits' first dim, symbol included), named `labels_name` (made
 * unique), and a SoftmaxCrossEntropy node (mean over N of the cross-entropy
 * of softmax(logits) against the labels smoothed by label_smoothing, as
 * torch.nn.CrossEntropyLoss) whose scalar output is the loss. *loss and
 * *labels receive the value ids. The caller binds the labels when compiling.
 * Errors: OT_ERR_ARG (logits out of range, not a float (N, C) value;
 * label_smoothing outside [0, 1]), OT_ERR_NOMEM.
 */
ot_status ot_pass_add_loss(ot_graph *g, int32_t logits, const char *labels_name,
                           float label_smoothing, int32_t *loss, int32_t *labels, ot_err *err);

/*
 * The (N, C) logits the loss and the scores read. *out receives `logits`
 * itself unless it is a float value of rank 3 or more whose dims after the
 * second are all known to be 1 (SqueezeNet 1.0's [N, C, 1, 1]: a 1x1
 * convolution head, the global pooling after it, no Flatten); for such a
 * value a Squeeze of those dims is appended to g and *out receives its
 * output. The model's own output keeps its shape: only the graphs that
 * train or score read the view. Should a later shape inference find one of
 * those dims other than 1, the Squeeze refuses it (OT_ERR_SHAPE) rather
 * than merge it into the classes. Errors: OT_ERR_ARG (logits out of range),
 * OT_ERR_NOMEM.
 */
ot_status ot_pass_logits_2d(ot_graph *g, int32_t logits, int32_t *out, ot_err *err);

/* Appends `value` to the graph outputs (nothing when it is one already) and
   flags it OT_VAL_OUTPUT. Errors: OT_ERR_ARG (id out of range), OT_ERR_NOMEM. */
ot_status ot_pass_add_output(ot_graph *g, int32_t value, ot_err *err);

#endif
