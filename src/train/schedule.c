/*
 * schedule.c: learning-rate schedules (formulas in schedule.h).
 *
 * Each schedule is the closed form of PyTorch's recursive scheduler, so the
 * rate at any point is computed without replaying the run (resuming from a
 * checkpoint needs only the epoch and step). The two agree to double
 * rounding.
 *
 * Reference: torch.optim.lr_scheduler (PyTorch 1.13): StepLR,
 * CosineAnnealingLR._get_closed_form_lr, LinearLR.
 */
#include <math.h>

#include "train/schedule.h"

ot_status ot_optim_schedule_check(const ot_optim_schedule *s, ot_err *err)
{
    if (!s)
        return ot_err_set(err, OT_ERR_ARG, "LR schedule: NULL");
    switch (s->kind) {
    case OT_SCHED_CONSTANT:
        break;
    case OT_SCHED_STEP:
        if (s->step_size < 1)
            return ot_err_set(err, OT_ERR_ARG, "LR schedule: step_size %lld, expected >= 1",
                              (long long)s->step_size);
        if (!(s->gamma >= 0.0 && isfinite(s->gamma)))
            return ot_err_set(err, OT_ERR_ARG, "LR schedule: gamma %g, expected >= 0",
                              s->gamma);
        break;
    case OT_SCHED_COSINE:
        if (s->t_max < 1)
            return ot_err_set(err, OT_ERR_ARG, "LR schedule: t_max %lld, expected >= 1",
                              (long long)s->t_max);
        break;
    default:
        return ot_err_set(err, OT_ERR_ARG, "LR schedule: unknown kind %d", (int)s->kind);
    }
    if (s->warmup_steps < 0)
        return ot_err_set(err, OT_ERR_ARG, "LR schedule: warmup_steps %lld, expected >= 0",
                          (long long)s->warmup_steps);
    return OT_OK;
}

double ot_optim_schedule_lr(const ot_optim_schedule *s, double base_lr, int64_t epoch,
                            int64_t step_in_epoch, int64_t steps_per_epoch)
{
    if (!s)
        return base_lr;
    const int64_t spe = steps_per_epoch < 1 ? 1 : steps_per_epoch;
    const int64_t global_step = epoch * spe + step_in_epoch;
    double lr = base_lr;

    if (s->kind == OT_SCHED_STEP && s->step_size >= 1) {
        /* StepLR: lr = base * gamma^floor(epoch / step_size). */
        lr *= pow(s->gamma, (double)(epoch / s->step_size));
    } else if (s->kind == OT_SCHED_COSINE && s->t_max >= 1) {
        /* CosineAnnealingLR, eta_min 0: lr = base * (1 + cos(pi * t / T)) / 2. */
        double t = s->per_step ? (double)global_step : (double)epoch;
        double T = s->per_step ? (double)s->t_max * (double)spe : (double)s->t_max;
        lr *= (1.0 + cos(M_PI * t / T)) / 2.0;
    }
    /* Linear warm-up: factor (s + 1) / W for global step s < W. */
    if (s->warmup_steps > 0 && global_step < s->warmup_steps)
        lr *= (double)(global_step + 1) / (double)s->warmup_steps;
    return lr;
}
