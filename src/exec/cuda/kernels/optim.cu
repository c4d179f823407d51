/*
 * optim.cu: the optimizer updates SgdStep, AdamStep and AdamWStep, and the
 * clipping coefficient ClipGradCoef (GradSumSquares is in reduce.cu).
 *
 * The arithmetic is ref_optim.c's, operation for operation in float (each
 * product and sum rounded, never fused, so that both backends produce the
 * same bits from the same inputs); the scalars (learning rate, step, the
 * clipping coefficient) are read from device memory, where the step graph
 * keeps them, and the bias corrections formed in double from them. A
 * coefficient that is not finite skips the update, as on the CPU.
 */
#include "exec/cuda/kernels/common.cuh"

#define FM __fmul_rn
#define FA __fadd_rn

__device__ __forceinline__ float grad_scale(const float *coef)
{
    if (!coef)
        return 1.0f;
    float c = coef[0];
    return c < 1.0f ? c : 1.0f;
}

/* A coefficient that is not finite skips the update (dynamic loss scaling:
   a gradient overflowed); the parameter and its buffers stay. */
__device__ __forceinline__ bool update_skipped(const float *coef)
{
    return coef && !isfinite(coef[0]);
}

/* p, g, b: the parameter, its gradient, the momentum buffer (NULL: none) */
__global__ void k_sgd(float *p, const float *g, float *b, const double *lr_p,
                      const int64_t *step_p, const float *coef, double wd_d, double mu_d,
                      double tau_d, int nesterov, int64_t n)
{
    if (update_skipped(coef))
        return;
    const float gs = grad_scale(coef), neg_lr = (float)-*lr_p, wd = (float)wd_d;
    const bool first = *step_p <= 1;
    const float mu = (float)mu_d, mu_b = first ? 0.0f : (float)mu_d;
    const float c_d = first ? 1.0f : (float)(1.0 - tau_d);
    OTK_FOR(j, n)
    {
        float d = FA(FM(g[j], gs), FM(wd, p[j]));
        if (!b) {
            p[j] = FA(p[j], FM(neg_lr, d));
            continue;
        }
        float bj = first ? 0.0f : FM(b[j], mu_b); /* the first step: a zeroed buffer */
        bj = FA(bj, FM(c_d, d));
        b[j] = bj;
        p[j] = FA(p[j], FM(neg_lr, nesterov ? FA(d, FM(mu, bj)) : bj));
    }
}

int otk_sgd_f32(void *stream, float *p, const float *g, float *b, const double *lr,
                const int64_t *step, const float *coef, double wd, double momentum,
                double dampening, int nesterov, int64_t n)
{
    OTK_LAUNCH(k_sgd, n, stream, p, g, b, lr, step, coef, wd, momentum, dampening, nesterov, n);
    return otk_status();
}

__global__ void k_adam(float *p, const float *g, float *m, float *v, const double *lr_p,
                       const int64_t *step_p, const float *coef, int adamw, double wd_d,
                       double beta1_d, double beta2_d, double eps_d, int64_t n)
{
    if (update_skipped(coef))
        return;
    const double lr = *lr_p, t = (double)*step_p;
    const float gs = grad_scale(coef);
    const float decay = adamw ? (float)(1.0 - lr * wd_d) : 1.0f;
    const float l2 = adamw ? 0.0f : (float)wd_d;
    const float b1 = (float)beta1_d, c1 = (float)(1.0 - beta1_d);
    const float b2 = (float)beta2_d, c2 = (float)(1.0 - beta2_d);
    const float bc2 = (float)sqrt(1.0 - pow(beta2_d, t));
    const float eps = (float)eps_d;
    const float neg_step = (float)(-(lr / (1.0 - pow(beta1_d, t))));
    OTK_FOR(j, n)
    {
        float pj = FM(p[j], decay);
        float gj = FA(FM(g[j], gs), FM(l2, pj));
        float mj = FM(m[j], b1);
        mj = FA(mj, FM(c1, gj));
        float vj = FM(v[j], b2);
        vj = FA(vj, FM(FM(c2, gj), gj));
        float denom = FA(__fdiv_rn(sqrtf(vj), bc2), eps);
        m[j] = mj;
        v[j] = vj;
        p[j] = FA(pj, __fdiv_rn(FM(neg_step, mj), denom));
    }
}

int otk_adam_f32(void *stream, float *p, const float *g, float *m, float *v, const double *lr,
                 const int64_t *step, const float *coef, int adamw, double wd, double beta1,
                 double beta2, double eps, int64_t n)
{
    OTK_LAUNCH(k_adam, n, stream, p, g, m, v, lr, step, coef, adamw, wd, beta1, beta2, eps, n);
    return otk_status();
}

/* norm = sqrt(sum) in float; coef = max_norm / (norm + 1e-6), 1 when the
   norm is not finite. With the loss scale (scale not NULL): norm / scale,
   the coefficient clamped to 1 times 1 / scale, NaN when the norm is not
   finite (ref_optim.c's rule, the same float operations). */
__global__ void k_clip_coef(const double *sum, const float *scale, float max_norm, float *coef,
                            float *norm_out)
{
    OTK_FOR(t, 1)
    {
        float norm = (float)sqrt(sum[0]);
        if (scale) {
            float s = scale[0], inv = 1.0f / s;
            if (isfinite(norm)) {
                norm = norm / s;
                float c = max_norm / (norm + 1e-6f);
                coef[0] = c < 1.0f ? c * inv : inv;
            } else {
                coef[0] = (float)NAN;
            }
        } else {
            coef[0] = isfinite(norm) ? max_norm / (norm + 1e-6f) : 1.0f;
        }
        if (norm_out)
            norm_out[0] = norm;
    }
}

int otk_clip_coef_f32(void *stream, const double *sum, const float *scale, float max_norm,
                      float *coef, float *norm)
{
    OTK_LAUNCH(k_clip_coef, 1, stream, sum, scale, max_norm, coef, norm);
    return otk_status();
}
