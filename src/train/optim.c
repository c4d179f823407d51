/*
 * optim.c: SGD, Adam and AdamW updates, gradient-norm clipping, and the state
 * enumeration for checkpoints (API in optim.h).
 *
 * The rules are PyTorch 1.13's single-tensor (foreach=False) implementations,
 * with the same order of float32 operations, so that results agree with
 * torch.optim to a few ulps. Scalars (1 - beta1, lr / (1 - beta1^t), ...) are
 * formed in double and rounded to float once, as PyTorch does with Python
 * scalars. The inner loops run over contiguous arrays with no branches and no
 * aliasing (`restrict`), so that the compiler vectorises them.
 *
 * All state lives in one block allocated by ot_optim_new: per parameter one
 * momentum buffer (SGD with momentum) or two moments (Adam, AdamW).
 *
 * References: https://pytorch.org/docs/1.13/generated/torch.optim.SGD.html,
 * .../torch.optim.Adam.html, .../torch.optim.AdamW.html,
 * .../torch.nn.utils.clip_grad_norm_.html.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "train/optim.h"

/* Element-wise loops over one tensor: vectorised, and split over the
   threads when the tensor is large enough to pay for the fork (each element
   is independent, so the result is the same for any thread count). */
#if defined(_OPENMP)
#define SIMD _Pragma("omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)")
#else
#define SIMD
#endif
#define PARALLEL_MIN 65536

struct ot_optim {
    ot_optim_opts opts;
    ot_optim_param *params; /* n_params, copied from the caller             */
    size_t n_params;
    int n_groups;
    int n_bufs;        /* state buffers per parameter: 0, 1 (SGD) or 2 (Adam) */
    float **buf;       /* n_params * n_bufs pointers into `state`            */
    float *state;      /* every buffer, zeroed at creation                   */
    int64_t step;      /* steps taken, PyTorch's state["step"]               */
};

ot_optim_opts ot_optim_opts_default(ot_optim_kind kind)
{
    ot_optim_opts o;
    memset(&o, 0, sizeof o);
    o.kind = kind;
    o.beta1 = 0.9;
    o.beta2 = 0.999;
    o.eps = 1e-8;
    if (kind == OT_OPTIM_ADAMW)
        o.weight_decay = 0.01;
    return o;
}

static ot_status check_opts(const ot_optim_opts *o, ot_err *err)
{
    if (o->kind != OT_OPTIM_SGD && o->kind != OT_OPTIM_ADAM && o->kind != OT_OPTIM_ADAMW)
        return ot_err_set(err, OT_ERR_ARG, "optimizer: unknown kind %d", (int)o->kind);
    if (!(o->weight_decay >= 0.0 && isfinite(o->weight_decay)))
        return ot_err_set(err, OT_ERR_ARG, "optimizer: weight decay %g, expected >= 0",
                          o->weight_decay);
    if (o->kind == OT_OPTIM_SGD) {
        if (!(o->momentum >= 0.0 && isfinite(o->momentum)))
            return ot_err_set(err, OT_ERR_ARG, "SGD: momentum %g, expected >= 0", o->momentum);
        if (!isfinite(o->dampening))
            return ot_err_set(err, OT_ERR_ARG, "SGD: dampening %g is not finite", o->dampening);
        if (o->nesterov && (o->momentum <= 0.0 || o->dampening != 0.0))
            return ot_err_set(err, OT_ERR_ARG,
                              "SGD: nesterov needs momentum > 0 and dampening 0 "
                              "(have momentum %g, dampening %g)",
                              o->momentum, o->dampening);
        return OT_OK;
    }
    if (!(o->beta1 >= 0.0 && o->beta1 < 1.0) || !(o->beta2 >= 0.0 && o->beta2 < 1.0))
        return ot_err_set(err, OT_ERR_ARG, "Adam: betas (%g, %g), expected each in [0, 1)",
                          o->beta1, o->beta2);
    if (!(o->eps >= 0.0 && isfinite(o->eps)))
        return ot_err_set(err, OT_ERR_ARG, "Adam: eps %g, expected >= 0", o->eps);
    return OT_OK;
}

ot_status ot_optim_new(const ot_optim_opts *opts, const ot_optim_param *params, size_t n_params,
                       int n_groups, ot_optim **out, ot_err *err)
{
    ot_status st = OT_OK;
    ot_optim *opt = NULL;
    if (!opts || !out || (!params && n_params > 0))
        OT_FAIL(err, OT_ERR_ARG, "optimizer: NULL options, parameters or output");
    *out = NULL;
    if (n_groups < 1)
        OT_FAIL(err, OT_ERR_ARG, "optimizer: %d parameter groups, expected at least 1", n_groups);
    OT_TRY(check_opts(opts, err));
    for (size_t i = 0; i < n_params; i++)
        if (params[i].group < 0 || params[i].group >= n_groups)
            OT_FAIL(err, OT_ERR_ARG, "optimizer: parameter %zu is in group %d, expected [0, %d)",
                    i, params[i].group, n_groups);

    opt = ot_calloc(1, sizeof *opt);
    if (!opt)
        OT_FAIL(err, OT_ERR_NOMEM, "optimizer: out of memory");
    opt->opts = *opts;
    opt->n_params = n_params;
    opt->n_groups = n_groups;
    if (opts->kind == OT_OPTIM_SGD)
        opt->n_bufs = opts->momentum != 0.0 ? 1 : 0;
    else
        opt->n_bufs = 2;

    size_t n_ptrs, total = 0;
    if (!ot_size_mul(n_params, (size_t)opt->n_bufs, &n_ptrs))
        OT_FAIL(err, OT_ERR_NOMEM, "optimizer: state too large");
    for (size_t i = 0; i < n_params; i++)
        if (!ot_size_add(total, params[i].numel, &total))
            OT_FAIL(err, OT_ERR_NOMEM, "optimizer: state too large");
    if (!ot_size_mul(total, (size_t)opt->n_bufs, &total) ||
        !ot_size_mul(total, sizeof(float), &total))
        OT_FAIL(err, OT_ERR_NOMEM, "optimizer: state too large");

    opt->params = ot_calloc(n_params ? n_params : 1, sizeof *opt->params);
    opt->buf = ot_calloc(n_ptrs ? n_ptrs : 1, sizeof *opt->buf);
    opt->state = ot_calloc(1, total ? total : 1);
    if (!opt->params || !opt->buf || !opt->state)
        OT_FAIL(err, OT_ERR_NOMEM, "optimizer: out of memory for %zu bytes of state", total);
    if (n_params)
        memcpy(opt->params, params, n_params * sizeof *params);

    /* Buffer b of parameter i is buf[i * n_bufs + b]; all of buffer 0 first. */
    float *p = opt->state;
    for (int b = 0; b < opt->n_bufs; b++)
        for (size_t i = 0; i < n_params; i++) {
            opt->buf[i * (size_t)opt->n_bufs + (size_t)b] = p;
            p += params[i].numel;
        }
    *out = opt;
    opt = NULL;
done:
    ot_optim_free(opt);
    return st;
}

void ot_optim_free(ot_optim *opt)
{
    if (!opt)
        return;
    ot_free(opt->state);
    ot_free(opt->buf);
    ot_free(opt->params);
    ot_free(opt);
}

const ot_optim_opts *ot_optim_get_opts(const ot_optim *opt) { return &opt->opts; }

int64_t ot_optim_get_step(const ot_optim *opt) { return opt->step; }

/* ------------------------------------------------------------------ kernels */

/*
 * SGD (torch.optim.SGD), for one tensor of n elements, with lr, weight decay
 * wd, momentum mu, dampening tau:
 *   d = g + wd * p
 *   b = d                                first step
 *   b = mu * b + (1 - tau) * d           later steps
 *   d = d + mu * b  (nesterov)  or  d = b
 *   p = p - lr * d
 * Without momentum, p = p - lr * d directly. The float roundings follow
 * PyTorch's: d.add(p, alpha=wd), b.mul_(mu).add_(d, alpha=1 - tau),
 * p.add_(d, alpha=-lr).
 *
 * PyTorch skips the decay term when wd is 0; adding wd * p = +-0 instead gives
 * the same bits for every finite p (only an inf or nan parameter differs,
 * which is a diverged run either way) and keeps the loop free of branches,
 * which the vectoriser needs (a conditional float op may trap).
 */
static void sgd_plain(float *restrict p, const float *restrict g, size_t n, float neg_lr, float wd)
{
    SIMD
    for (size_t j = 0; j < n; j++) {
        float d = g[j] + wd * p[j];
        p[j] = p[j] + neg_lr * d;
    }
}

/* The momentum case. The first step is the general rule with mu_b = 0 and
   c_d = 1 on a zeroed buffer: b = 0 * 0 + 1 * d = d exactly, as PyTorch's
   clone. Later steps use mu_b = mu and c_d = 1 - tau. */
static void sgd_momentum(float *restrict p, const float *restrict g, float *restrict b, size_t n,
                         float neg_lr, float wd, float mu, float mu_b, float c_d, bool nesterov)
{
    if (nesterov) {
        SIMD
        for (size_t j = 0; j < n; j++) {
            float d = g[j] + wd * p[j];
            float bj = b[j] * mu_b;
            bj = bj + c_d * d;
            b[j] = bj;
            p[j] = p[j] + neg_lr * (d + mu * bj);
        }
    } else {
        SIMD
        for (size_t j = 0; j < n; j++) {
            float d = g[j] + wd * p[j];
            float bj = b[j] * mu_b;
            bj = bj + c_d * d;
            b[j] = bj;
            p[j] = p[j] + neg_lr * bj;
        }
    }
}

/*
 * Adam / AdamW (torch.optim.Adam, torch.optim.AdamW), for one tensor, at step
 * t (1 for the first step):
 *   AdamW:  p = p * (1 - lr * wd)                 decoupled decay
 *   Adam:   g = g + wd * p                         L2 (wd = 0 adds +-0, see sgd_plain)
 *   m = beta1 * m + (1 - beta1) * g
 *   v = beta2 * v + (1 - beta2) * g * g
 *   p = p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * The float operations follow PyTorch's mul_/add_/addcmul_/sqrt/div/add_/
 * addcdiv_ sequence; the scalars come in already rounded to float.
 * The build uses -fno-math-errno, so sqrtf is the vector square root (correctly
 * rounded, as the scalar one) and the loop vectorises.
 */
typedef struct adam_scalars {
    float decay;     /* AdamW: 1 - lr * wd; 1 for Adam        */
    float l2;        /* Adam: wd; 0 for AdamW                 */
    float beta1, one_minus_beta1;
    float beta2, one_minus_beta2;
    float bc2_sqrt;  /* sqrt(1 - beta2^t)                     */
    float eps;
    float neg_step;  /* -lr / (1 - beta1^t)                   */
} adam_scalars;

static void adam_update(float *restrict p, const float *restrict g, float *restrict m,
                        float *restrict v, size_t n, const adam_scalars *s)
{
    const float decay = s->decay, l2 = s->l2, b1 = s->beta1, c1 = s->one_minus_beta1;
    const float b2 = s->beta2, c2 = s->one_minus_beta2, bc2 = s->bc2_sqrt, eps = s->eps;
    const float neg_step = s->neg_step;
    SIMD
    for (size_t j = 0; j < n; j++) {
        float pj = p[j] * decay; /* exact when decay is 1 (Adam) */
        float gj = g[j] + l2 * pj; /* l2 = 0: the same bits, see sgd_plain */
        float mj = m[j] * b1;
        mj = mj + c1 * gj;
        float vj = v[j] * b2;
        vj = vj + c2 * gj * gj;
        float denom = sqrtf(vj) / bc2 + eps;
        m[j] = mj;
        v[j] = vj;
        p[j] = pj + neg_step * mj / denom;
    }
}

ot_status ot_optim_step(ot_optim *opt, const double *group_lr, float *const *params,
                        const float *const *grads, ot_err *err)
{
    if (!opt || !group_lr || (opt->n_params && (!params || !grads)))
        return ot_err_set(err, OT_ERR_ARG, "optimizer step: NULL argument");
    for (int k = 0; k < opt->n_groups; k++)
        if (!(group_lr[k] >= 0.0 && isfinite(group_lr[k])))
            return ot_err_set(err, OT_ERR_ARG,
                              "optimizer step: learning rate %g of group %d, expected a "
                              "finite value >= 0",
                              group_lr[k], k);
    for (size_t i = 0; i < opt->n_params; i++)
        if (opt->params[i].numel && (!params[i] || !grads[i]))
            return ot_err_set(err, OT_ERR_ARG, "optimizer step: parameter %zu has no %s", i,
                              params[i] ? "gradient" : "data");
    if (opt->step < 0 || opt->step == INT64_MAX)
        return ot_err_set(err, OT_ERR_ARG, "optimizer step: step count %lld is out of range",
                          (long long)opt->step);

    const ot_optim_opts *o = &opt->opts;
    const bool first = opt->step == 0;
    opt->step++;
    const double t = (double)opt->step;

    for (size_t i = 0; i < opt->n_params; i++) {
        const size_t n = opt->params[i].numel;
        const double lr = group_lr[opt->params[i].group];
        if (n == 0)
            continue;
        if (o->kind == OT_OPTIM_SGD) {
            if (opt->n_bufs == 0)
                sgd_plain(params[i], grads[i], n, (float)-lr, (float)o->weight_decay);
            else {
                if (first)
                    memset(opt->buf[i], 0, n * sizeof(float));
                sgd_momentum(params[i], grads[i], opt->buf[i], n, (float)-lr,
                             (float)o->weight_decay, (float)o->momentum,
                             first ? 0.0f : (float)o->momentum,
                             first ? 1.0f : (float)(1.0 - o->dampening), o->nesterov);
            }
            continue;
        }
        const bool is_adamw = o->kind == OT_OPTIM_ADAMW;
        adam_scalars s = {
            .decay = is_adamw ? (float)(1.0 - lr * o->weight_decay) : 1.0f,
            .l2 = is_adamw ? 0.0f : (float)o->weight_decay,
            .beta1 = (float)o->beta1,
            .one_minus_beta1 = (float)(1.0 - o->beta1),
            .beta2 = (float)o->beta2,
            .one_minus_beta2 = (float)(1.0 - o->beta2),
            .bc2_sqrt = (float)sqrt(1.0 - pow(o->beta2, t)),
            .eps = (float)o->eps,
            .neg_step = (float)(-(lr / (1.0 - pow(o->beta1, t)))),
        };
        adam_update(params[i], grads[i], opt->buf[2 * i], opt->buf[2 * i + 1], n, &s);
    }
    return OT_OK;
}

/*
 * clip_grad_norm_: norm = ||(||g_0||, ||g_1||, ...)||_2, the L2 norm of all
 * gradients together; coef = max_norm / (norm + 1e-6) in float, as PyTorch
 * forms it from a float32 norm; gradients are scaled when coef < 1 (PyTorch
 * multiplies by min(coef, 1), which is the same).
 */
ot_status ot_optim_clip_grad_norm(const ot_optim_param *params, size_t n_params,
                                  float *const *grads, float max_norm, float *total_norm,
                                  ot_err *err)
{
    if ((!params || !grads) && n_params > 0)
        return ot_err_set(err, OT_ERR_ARG, "clip_grad_norm: NULL parameters or gradients");
    if (!(max_norm > 0.0f) || isinf(max_norm))
        return ot_err_set(err, OT_ERR_ARG, "clip_grad_norm: max_norm %g, expected > 0",
                          (double)max_norm);
    double sum_sq = 0.0;
    for (size_t i = 0; i < n_params; i++) {
        const float *g = grads[i];
        if (params[i].numel && !g)
            return ot_err_set(err, OT_ERR_ARG, "clip_grad_norm: gradient %zu is NULL", i);
        double s = 0.0;
        for (size_t j = 0; j < params[i].numel; j++)
            s += (double)g[j] * (double)g[j];
        sum_sq += s;
    }
    const float norm = (float)sqrt(sum_sq);
    if (!isfinite(norm))
        return ot_err_set(err, OT_ERR_ARG,
                          "clip_grad_norm: the total gradient norm is %g, cannot clip",
                          (double)norm);
    if (total_norm)
        *total_norm = norm;
    const float coef = max_norm / (norm + 1e-6f);
    if (coef < 1.0f)
        for (size_t i = 0; i < n_params; i++) {
            float *restrict g = grads[i];
            const size_t n = params[i].numel;
            SIMD
            for (size_t j = 0; j < n; j++)
                g[j] = g[j] * coef;
        }
    return OT_OK;
}

/* ------------------------------------------------------------------- state */

size_t ot_optim_state_count(const ot_optim *opt)
{
    return opt ? 1 + opt->n_params * (size_t)opt->n_bufs : 0;
}

ot_status ot_optim_state_get(ot_optim *opt, size_t index, ot_optim_state *out, ot_err *err)
{
    if (!opt || !out)
        return ot_err_set(err, OT_ERR_ARG, "optimizer state: NULL argument");
    size_t count = ot_optim_state_count(opt);
    if (index >= count)
        return ot_err_set(err, OT_ERR_ARG, "optimizer state: entry %zu, expected < %zu", index,
                          count);
    memset(out, 0, sizeof *out);
    if (index == 0) {
        snprintf(out->name, sizeof out->name, "step");
        out->dtype = OT_DTYPE_INT64;
        out->data = &opt->step;
        out->numel = 1;
        return OT_OK;
    }
    /* Entries 1.. list buffer 0 of every parameter, then buffer 1. */
    size_t k = index - 1;
    size_t b = k / opt->n_params, i = k % opt->n_params;
    static const char *const names[2][2] = {{"sgd.momentum_buffer", ""}, {"adam.m", "adam.v"}};
    const char *base = names[opt->opts.kind == OT_OPTIM_SGD ? 0 : 1][b];
    snprintf(out->name, sizeof out->name, "%s.%zu", base, i);
    out->dtype = OT_DTYPE_FLOAT;
    out->data = opt->buf[i * (size_t)opt->n_bufs + b];
    out->numel = opt->params[i].numel;
    return OT_OK;
}
