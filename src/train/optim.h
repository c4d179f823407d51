/*
 * optim.h: the optimizer pass, which makes a step graph update its own state,
 * and the optimizers' hyper-parameters (SGD, Adam, AdamW) and
 * gradient-norm clipping.
 *
 * ot_optim_add_updates appends to a step graph (after autodiff), per trained
 * parameter, one update node of a private op (SgdStep, AdamStep, AdamWStep;
 * src/ops/optim_ops.c) that overwrites the parameter and its moments in the
 * executor's state, and, with clipping, the nodes that compute the global
 * gradient norm and the clipping coefficient the updates apply. The moments
 * (SGD momentum buffers, Adam's first and second moments) are state values
 * of the graph that start at zero; the learning rate of each parameter group
 * and the step count are scalar graph inputs the caller binds at every run.
 * A run of the compiled step then trains one step with nothing done on the
 * host.
 *
 * Each parameter belongs to a group (PyTorch's param_groups), so a new
 * classifier head can learn at `--head-lr` while the body uses the base rate,
 * each scaled by the same LR schedule.
 *
 * The update rules follow PyTorch 1.13's torch.optim.SGD, Adam and AdamW with
 * maximize=False, amsgrad=False, foreach=False (formulas in
 * src/exec/cpu/ref_optim.c). Not supported: sparse gradients, per-group
 * momentum or weight decay, parameters without a gradient (every step
 * updates every parameter).
 * References: https://pytorch.org/docs/1.13/optim.html,
 * Kingma & Ba, "Adam", ICLR 2015; Loshchilov & Hutter, "Decoupled Weight
 * Decay Regularization" (AdamW), ICLR 2019.
 */
#ifndef OT_TRAIN_OPTIM_H
#define OT_TRAIN_OPTIM_H

#include "graph/graph.h"

typedef enum {
    OT_OPTIM_SGD = 0,
    OT_OPTIM_ADAM,
    OT_OPTIM_ADAMW,
} ot_optim_kind;

/* Hyper-parameters. Fill with ot_optim_opts_default, then change what you need.
   They are doubles, as PyTorch's are (Python floats): scalars such as 1 - beta1
   and lr / (1 - beta1^t) are formed in double and rounded to float once, as
   PyTorch rounds a Python scalar when it reaches a float32 kernel. */
typedef struct ot_optim_opts {
    ot_optim_kind kind;
    double weight_decay; /* SGD, Adam: L2 term wd*param added to the gradient;
                            AdamW: decoupled, param *= 1 - lr*wd              */
    /* SGD */
    double momentum;     /* 0: plain SGD, no buffers                          */
    double dampening;    /* applied from the second step on                   */
    bool nesterov;       /* needs momentum > 0 and dampening == 0             */
    /* Adam, AdamW */
    double beta1, beta2; /* in [0, 1)                                         */
    double eps;          /* added to sqrt(v_hat)                              */
} ot_optim_opts;

/* PyTorch's defaults for `kind`: SGD momentum 0, dampening 0, no nesterov,
   weight decay 0; Adam betas (0.9, 0.999), eps 1e-8, weight decay 0; AdamW the
   same with weight decay 0.01. Cannot fail. */
ot_optim_opts ot_optim_opts_default(ot_optim_kind kind);

/* Checks the hyper-parameters. Errors: OT_ERR_ARG (unknown kind, a value out
   of range, nesterov without momentum or with dampening). */
ot_status ot_optim_check_opts(const ot_optim_opts *opts, ot_err *err);

/* Checks learning rates before a step: OT_ERR_ARG naming the group when one
   is negative or not finite. */
ot_status ot_optim_check_lr(const double *group_lr, int n_groups, ot_err *err);

/* What ot_optim_add_updates added to a graph (value ids of that graph). */
typedef struct ot_optim_graph {
    int n_params;
    int n_bufs;        /* state buffers per parameter: 0, 1 (SGD momentum) or 2 (Adam) */
    int32_t *bufs;     /* n_bufs * n_params ids; buffer b of parameter i at
                          [b * n_params + i]; owned, see ot_optim_graph_fini */
    int32_t lr[2];     /* double scalar inputs: the rate of group 0 (base) and
                          of group 1 (head); -1 for a group without parameters */
    int32_t step;      /* int64 scalar input: the step's number, 1 at the first */
    int32_t grad_norm; /* float scalar: the global gradient norm before
                          clipping (with loss scaling: of the unscaled
                          gradients), or with loss scaling alone the scaled
                          one (make it a graph output to read it; not
                          finite with loss scaling: the step was skipped);
                          -1 without either                                 */
    int n_nodes;       /* nodes added                                        */
} ot_optim_graph;

/*
 * Appends the updates to `g`: params[i] (float initializers flagged
 * OT_VAL_STATE) are updated from grads[i] (their gradients in g) at the rate
 * of group groups[i] (0 or 1; groups NULL: all 0). With clip_norm > 0 the
 * gradients are first scaled as torch.nn.utils.clip_grad_norm_(max_norm =
 * clip_norm) does. With loss_scale >= 0 (a float scalar value of g: dynamic
 * loss scaling, train/loss_scale.h) the gradients are those of the loss
 * times that scale: the updates apply 1 / scale to them, and all are
 * skipped when one is not finite; grad_norm is then the scaled gradients'
 * global norm (not finite: the step was skipped). With both, the clipping
 * sees the unscaled gradients, as GradScaler.unscale_ before
 * clip_grad_norm_: grad_norm is their norm, and one coefficient unscales
 * and clips (NaN, skipping the updates, on an overflow). Adds the moments
 * as zero-initialised state values and
 * the rate and step inputs to the graph's inputs. The update nodes come
 * last, after every node that reads a parameter. On success *og describes
 * them (release with ot_optim_graph_fini).
 * Errors: OT_ERR_ARG (options, a group outside {0, 1}, a parameter that is
 * not a state value), OT_ERR_UNSUPPORTED (a parameter that is not float),
 * OT_ERR_NOMEM, and shape inference's errors.
 */
ot_status ot_optim_add_updates(ot_graph *g, const ot_optim_opts *opts, const int32_t *params,
                               const int32_t *grads, const int *groups, int n_params,
                               double clip_norm, int32_t loss_scale, ot_optim_graph *og,
                               ot_err *err);

void ot_optim_graph_fini(ot_optim_graph *og);

/* Adds a scalar graph input of dtype t named after `name` (made unique);
   its value id into *id. Errors: OT_ERR_NOMEM. */
ot_status ot_optim_add_scalar_input(ot_graph *g, const char *name, ot_dtype t, int32_t *id,
                                    ot_err *err);

/*
 * The optimizer's state as checkpoints store it, a list of named tensors:
 *   "step"                       int64, 1 element: steps taken
 *   "sgd.momentum_buffer.<i>"    float, numel of param i (SGD with momentum)
 *   "adam.m.<i>", "adam.v.<i>"   float, numel of param i (Adam and AdamW:
 *                                first moment exp_avg, second moment exp_avg_sq)
 * Entry 0 is the step count; entry k >= 1 is og->bufs[k - 1]. A momentum
 * buffer is meaningful only once step > 0, as in PyTorch, where it is
 * created by the first step.
 */
typedef struct ot_optim_state {
    char name[48];
    ot_dtype dtype; /* OT_DTYPE_FLOAT or OT_DTYPE_INT64 */
    void *data;     /* borrowed */
    size_t numel;
} ot_optim_state;

/* Number of entries: 1 + n_params * n_bufs. */
size_t ot_optim_state_count(const ot_optim_graph *og);

/* Entry `index`'s name (into out->name) and, for k >= 1, the value id of its
   buffer (*value; -1 for the step count); out->dtype and out->numel from
   the graph g; out->data is left NULL for the caller to point at the bytes.
   `kind` names the buffers. Cannot fail for index < ot_optim_state_count. */
void ot_optim_state_describe(const ot_graph *g, const ot_optim_graph *og, ot_optim_kind kind,
                             size_t index, ot_optim_state *out, int32_t *value);

#endif
