/*
 * loss_scale.h: dynamic loss scaling for fp16 training, as PyTorch's
 * torch.amp.GradScaler does it (its defaults: initial scale 65536, growth
 * factor 2 after 2000 consecutive steps without overflow, backoff factor
 * 0.5).
 *
 * Backend-neutral: the step graph multiplies the loss by the scale before
 * its backward pass, divides the gradients by it before the updates and
 * skips every update when a gradient is not finite (train_graph.h,
 * optim.h); the trainer keeps this state, binds the scale at every step,
 * reads whether the step overflowed and calls ot_loss_scaler_update. The
 * state is in checkpoints (docs/checkpoint.md), so a resumed run scales
 * and skips as the uninterrupted one.
 *
 * One difference from PyTorch: the scale never goes below 1 (the update
 * ops apply 1 / scale as a coefficient of at most 1). PyTorch's can; at a
 * scale below 1 the gradients overflow unscaled, and both skip every step.
 */
#ifndef OT_TRAIN_LOSS_SCALE_H
#define OT_TRAIN_LOSS_SCALE_H

#include "core/core.h"

#define OT_LOSS_SCALE_INIT 65536.0f
#define OT_LOSS_SCALE_GROWTH 2.0f
#define OT_LOSS_SCALE_BACKOFF 0.5f
#define OT_LOSS_SCALE_INTERVAL 2000

typedef struct ot_loss_scaler {
    float scale;             /* what the loss is multiplied by (float32, as
                                GradScaler's scale tensor)                   */
    int64_t growth_tracker;  /* consecutive steps without overflow since the
                                scale last changed                           */
    int64_t skipped;         /* steps skipped in all (the optimizer's step
                                count lags the position by this much)        */
    /* the rule; ot_loss_scaler_init sets PyTorch's defaults */
    float growth_factor, backoff_factor;
    int64_t growth_interval;
} ot_loss_scaler;

/* PyTorch's defaults, starting at `init` (0: 65536). */
void ot_loss_scaler_init(ot_loss_scaler *s, float init);

/* Whether any of n float32 values is an infinity or a NaN. */
bool ot_loss_scaler_nonfinite(const float *g, size_t n);

/* After a step whose gradients did (found_inf) or did not overflow: true
   when that step's updates were skipped. Overflow: the scale times the
   backoff factor (not below 1), the tracker reset. Otherwise the tracker
   counts the step, and at growth_interval the scale grows (when the grown
   scale is finite) and the tracker restarts. */
bool ot_loss_scaler_update(ot_loss_scaler *s, bool found_inf);

/* Checks a restored state: OT_ERR_PARSE naming what is out of range. */
ot_status ot_loss_scaler_check(const ot_loss_scaler *s, ot_err *err);

#endif
