/*
 * loss_scale.c: dynamic loss scaling's state and rule (loss_scale.h), the
 * rule of PyTorch's _amp_update_scale_.
 */
#include <math.h>

#include "loss_scale.h"

void ot_loss_scaler_init(ot_loss_scaler *s, float init)
{
    *s = (ot_loss_scaler){ .scale = init > 0 ? init : OT_LOSS_SCALE_INIT,
                           .growth_factor = OT_LOSS_SCALE_GROWTH,
                           .backoff_factor = OT_LOSS_SCALE_BACKOFF,
                           .growth_interval = OT_LOSS_SCALE_INTERVAL };
}

bool ot_loss_scaler_nonfinite(const float *g, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(g[i]))
            return true;
    return false;
}

bool ot_loss_scaler_update(ot_loss_scaler *s, bool found_inf)
{
    if (found_inf) {
        float next = s->scale * s->backoff_factor;
        s->scale = next >= 1.0f ? next : 1.0f;
        s->growth_tracker = 0;
        s->skipped++;
        return true;
    }
    if (++s->growth_tracker >= s->growth_interval) {
        float next = s->scale * s->growth_factor;
        if (isfinite(next))
            s->scale = next;
        s->growth_tracker = 0;
    }
    return false;
}

ot_status ot_loss_scaler_check(const ot_loss_scaler *s, ot_err *err)
{
    if (!isfinite(s->scale) || s->scale < 1.0f)
        return ot_err_set(err, OT_ERR_PARSE, "loss scale %g: expected a finite value >= 1",
                          (double)s->scale);
    if (s->growth_tracker < 0 || s->growth_tracker >= s->growth_interval)
        return ot_err_set(err, OT_ERR_PARSE, "loss scale growth tracker %lld: expected 0 to %lld",
                          (long long)s->growth_tracker, (long long)s->growth_interval - 1);
    if (s->skipped < 0)
        return ot_err_set(err, OT_ERR_PARSE, "loss scale skipped steps %lld: expected >= 0",
                          (long long)s->skipped);
    return OT_OK;
}
