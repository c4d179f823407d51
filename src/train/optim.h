/*
 * optim.h: optimizers (SGD, Adam, AdamW) over a fixed set of float32
 * parameter tensors, and gradient-norm clipping.
 *
 * The trainer owns the parameters and their gradients and hands them to each
 * step as arrays of pointers, in the order given at creation. The optimizer
 * owns its state (momentum buffers, first and second moments, the step count),
 * allocated once by ot_optim_new; ot_optim_step allocates nothing.
 *
 * Each parameter belongs to a group; a step takes one learning rate per group
 * (PyTorch's param_groups), so a new classifier head can learn at `--head-lr`
 * while the body uses the base rate, each scaled by the same LR schedule.
 *
 * The update rules follow PyTorch 1.13's torch.optim.SGD, Adam and AdamW with
 * maximize=False, amsgrad=False, foreach=False (formulas in optim.c). Not
 * supported: sparse gradients, per-group momentum or weight decay, parameters
 * without a gradient (every step updates every parameter).
 * References: https://pytorch.org/docs/1.13/optim.html,
 * Kingma & Ba, "Adam", ICLR 2015; Loshchilov & Hutter, "Decoupled Weight
 * Decay Regularization" (AdamW), ICLR 2019.
 */
#ifndef OT_TRAIN_OPTIM_H
#define OT_TRAIN_OPTIM_H

#include "core/core.h"

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

/* One parameter tensor: its length and its group (index into the per-group
   learning rates of ot_optim_step). */
typedef struct ot_optim_param {
    size_t numel;
    int group;
} ot_optim_param;

typedef struct ot_optim ot_optim;

/* PyTorch's defaults for `kind`: SGD momentum 0, dampening 0, no nesterov,
   weight decay 0; Adam betas (0.9, 0.999), eps 1e-8, weight decay 0; AdamW the
   same with weight decay 0.01. Cannot fail. */
ot_optim_opts ot_optim_opts_default(ot_optim_kind kind);

/*
 * Creates an optimizer for n_params tensors described by params[] (copied),
 * in n_groups groups, and allocates its state, zeroed. On success *out is
 * owned by the caller (release with ot_optim_free).
 * Errors: OT_ERR_ARG (NULL pointer, n_groups < 1, a group outside
 * [0, n_groups), a hyper-parameter out of range, nesterov without momentum or
 * with dampening), OT_ERR_NOMEM.
 */
ot_status ot_optim_new(const ot_optim_opts *opts, const ot_optim_param *params, size_t n_params,
                       int n_groups, ot_optim **out, ot_err *err);

/* Releases the optimizer and its state. NULL does nothing. */
void ot_optim_free(ot_optim *opt);

/* The options the optimizer was created with. Borrowed from opt. */
const ot_optim_opts *ot_optim_get_opts(const ot_optim *opt);

/* Steps taken so far (0 after creation). */
int64_t ot_optim_get_step(const ot_optim *opt);

/*
 * One update of every parameter: params[i] (numel floats, updated in place)
 * from grads[i] (read only), with learning rate group_lr[group of i].
 * group_lr has n_groups entries. Allocates nothing.
 * Errors: OT_ERR_ARG (NULL pointer, a negative or non-finite learning rate, a
 * negative step count restored from a checkpoint); nothing is updated then.
 */
ot_status ot_optim_step(ot_optim *opt, const double *group_lr, float *const *params,
                        const float *const *grads, ot_err *err);

/*
 * Gradient-norm clipping as torch.nn.utils.clip_grad_norm_ (L2):
 *   norm = sqrt(sum_i sum_j grads[i][j]^2),
 *   coef = max_norm / (norm + 1e-6); when coef < 1, every grad *= coef.
 * params[] gives the lengths (the same array as for ot_optim_new). Writes
 * the norm before clipping to *total_norm when it is not NULL.
 * Errors: OT_ERR_ARG (NULL pointer, max_norm not positive, or a non-finite
 * norm, as torch with error_if_nonfinite=True; grads are untouched then).
 */
ot_status ot_optim_clip_grad_norm(const ot_optim_param *params, size_t n_params,
                                  float *const *grads, float max_norm, float *total_norm,
                                  ot_err *err);

/*
 * Checkpoint hooks. The state is a list of named tensors:
 *   "step"                       int64, 1 element
 *   "sgd.momentum_buffer.<i>"    float, numel of param i (SGD with momentum)
 *   "adam.m.<i>", "adam.v.<i>"   float, numel of param i (Adam and AdamW:
 *                                first moment exp_avg, second moment exp_avg_sq)
 * ot_optim_state_count gives their number; ot_optim_state_get describes entry
 * `index`: `data` points into the optimizer (borrowed, valid until
 * ot_optim_free) and is writable, so saving reads it and restoring copies a
 * saved tensor into it. A momentum buffer is meaningful only once step > 0,
 * as in PyTorch, where it is created by the first step.
 */
typedef struct ot_optim_state {
    char name[48];
    ot_dtype dtype; /* OT_DTYPE_FLOAT or OT_DTYPE_INT64 */
    void *data;
    size_t numel;
} ot_optim_state;

size_t ot_optim_state_count(const ot_optim *opt);

/* Errors: OT_ERR_ARG (NULL pointer, index >= ot_optim_state_count). */
ot_status ot_optim_state_get(ot_optim *opt, size_t index, ot_optim_state *out, ot_err *err);

#endif
