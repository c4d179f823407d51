/*
 * schedule.h: learning-rate schedules, as pure functions of the position in
 * training.
 *
 *   constant   lr = base
 *   step       lr = base * gamma^floor(epoch / step_size)
 *              (torch.optim.lr_scheduler.StepLR, stepped once per epoch)
 *   cosine     lr = base * (1 + cos(pi * t / T)) / 2
 *              (CosineAnnealingLR with eta_min 0; t = epoch and T = t_max,
 *              stepped per epoch, or with per_step t = global step and
 *              T = t_max * steps_per_epoch). Past T it rises again, as
 *              PyTorch's does; a trainer sets t_max to the number of epochs.
 *   warm-up    any of the above times (s + 1) / W while the global step
 *              s = epoch * steps_per_epoch + step_in_epoch is below W
 *              (LinearLR(start_factor=1/W, total_iters=W-1), stepped per step
 *              and chained with the schedule above).
 *
 * Epochs and steps count from 0. Not supported: eta_min, restarts, plateau
 * detection, cycles. References:
 * https://pytorch.org/docs/1.13/optim.html#how-to-adjust-learning-rate;
 * Loshchilov & Hutter, "SGDR", ICLR 2017 (cosine); Goyal et al., "Accurate,
 * Large Minibatch SGD", 2017 (linear warm-up).
 */
#ifndef OT_TRAIN_SCHEDULE_H
#define OT_TRAIN_SCHEDULE_H

#include "core/core.h"

typedef enum {
    OT_SCHED_CONSTANT = 0,
    OT_SCHED_STEP,
    OT_SCHED_COSINE,
} ot_optim_schedule_kind;

/* A schedule. Zero-initialised, it is constant with no warm-up. */
typedef struct ot_optim_schedule {
    ot_optim_schedule_kind kind;
    int64_t step_size;    /* step: epochs between decays, >= 1          */
    double gamma;         /* step: factor per decay, >= 0               */
    int64_t t_max;        /* cosine: epochs from base to 0, >= 1        */
    bool per_step;        /* cosine: anneal every step, not every epoch */
    int64_t warmup_steps; /* W; 0: no warm-up                           */
} ot_optim_schedule;

/* Checks the fields that the kind uses. Errors: OT_ERR_ARG (NULL schedule,
   unknown kind, step_size or t_max below 1, gamma negative or not finite,
   warmup_steps negative), with the field named. */
ot_status ot_optim_schedule_check(const ot_optim_schedule *s, ot_err *err);

/*
 * The learning rate at (epoch, step_in_epoch) for a group whose base rate is
 * base_lr. Cannot fail: a schedule that ot_optim_schedule_check rejects gives
 * base_lr times the parts that are valid, and a steps_per_epoch below 1
 * counts as 1.
 */
double ot_optim_schedule_lr(const ot_optim_schedule *s, double base_lr, int64_t epoch,
                            int64_t step_in_epoch, int64_t steps_per_epoch);

#endif
