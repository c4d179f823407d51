/*
 * ref_optim.c: the optimizer updates and gradient clipping of a step graph
 * (SgdStep, AdamStep, AdamWStep, GradSumSquares, ClipGradCoef; ops in
 * src/ops/optim_ops.c).
 *
 * The rules are PyTorch 1.13's single-tensor (foreach=False) implementations
 * of torch.optim.SGD, Adam and AdamW (maximize=False, amsgrad=False), with the
 * same order of float32 operations, so that results agree with torch.optim to
 * a few ulps (tests/golden/optim_golden.txt). Scalars (1 - beta1,
 * lr / (1 - beta1^t), ...) are formed in double from the double
 * hyper-parameters and rounded to float once, as PyTorch does with Python
 * scalars. The inner loops run over contiguous arrays with no branches and no
 * aliasing (`restrict`), so that the compiler vectorises them, and split over
 * the threads when a tensor is large; every element is independent, so the
 * result does not depend on the thread count.
 *
 * In a training step the outputs are the inputs' buffers (the parameter and
 * its moments are executor state, updated in place); elsewhere (tests) the
 * inputs are copied to the outputs first and updated there.
 *
 * References: https://pytorch.org/docs/1.13/generated/torch.optim.SGD.html,
 * .../torch.optim.Adam.html, .../torch.optim.AdamW.html,
 * .../torch.nn.utils.clip_grad_norm_.html.
 */
#include "dist/dist.h"
#include "exec/cpu/ref_impl.h"

#if defined(_OPENMP)
#define SIMD _Pragma("omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)")
#else
#define SIMD
#endif
#define PARALLEL_MIN 65536

/*
 * SGD for one tensor of n elements, with lr, weight decay wd, momentum mu,
 * dampening tau, the gradient first scaled by gs (1: exact, no clipping):
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
 * which the vectoriser needs (a conditional float op may trap). Likewise
 * g * 1 is g.
 */
static void sgd_plain(float *restrict p, const float *restrict g, size_t n, float gs, float neg_lr,
                      float wd)
{
    SIMD
    for (size_t j = 0; j < n; j++) {
        float d = g[j] * gs + wd * p[j];
        p[j] = p[j] + neg_lr * d;
    }
}

/* The momentum case. The first step is the general rule with mu_b = 0 and
   c_d = 1 on a zeroed buffer: b = 0 * 0 + 1 * d = d exactly, as PyTorch's
   clone. Later steps use mu_b = mu and c_d = 1 - tau. */
static void sgd_momentum(float *restrict p, const float *restrict g, float *restrict b, size_t n,
                         float gs, float neg_lr, float wd, float mu, float mu_b, float c_d,
                         bool nesterov)
{
    if (nesterov) {
        SIMD
        for (size_t j = 0; j < n; j++) {
            float d = g[j] * gs + wd * p[j];
            float bj = b[j] * mu_b;
            bj = bj + c_d * d;
            b[j] = bj;
            p[j] = p[j] + neg_lr * (d + mu * bj);
        }
    } else {
        SIMD
        for (size_t j = 0; j < n; j++) {
            float d = g[j] * gs + wd * p[j];
            float bj = b[j] * mu_b;
            bj = bj + c_d * d;
            b[j] = bj;
            p[j] = p[j] + neg_lr * bj;
        }
    }
}

/*
 * Adam / AdamW for one tensor, at step t (1 for the first step):
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
    float gs;        /* gradient scale (clipping); 1: none    */
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
    const float gs = s->gs, decay = s->decay, l2 = s->l2, b1 = s->beta1, c1 = s->one_minus_beta1;
    const float b2 = s->beta2, c2 = s->one_minus_beta2, bc2 = s->bc2_sqrt, eps = s->eps;
    const float neg_step = s->neg_step;
    SIMD
    for (size_t j = 0; j < n; j++) {
        float pj = p[j] * decay;        /* exact when decay is 1 (Adam) */
        float gj = g[j] * gs + l2 * pj; /* l2 = 0: the same bits, see sgd_plain */
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

/* ------------------------------------------------------------- checks */

static bool is_f32_like(const ot_tensor *t, const ot_tensor *p)
{
    if (!t || t->dtype != OT_DTYPE_FLOAT || t->bytes != p->bytes)
        return false;
    return true;
}

static bool is_scalar(const ot_tensor *t, ot_dtype dtype)
{
    return t && t->dtype == dtype && t->bytes == ot_dtype_size(dtype);
}

/* P, G, lr, step, n_bufs buffers, an optional coef at input `coef_at`;
   outputs P' and the buffers. */
static bool update_supports(const ot_node *n, const ot_tensor *const *in,
                            const ot_tensor *const *out, int n_bufs, int coef_at, const char **why)
{
    const ot_tensor *p = ot_ref_in(n, in, 0);
    if (!p || p->dtype != OT_DTYPE_FLOAT || !is_f32_like(ot_ref_in(n, in, 1), p)) {
        *why = "the parameter and its gradient must be float tensors of one size";
        return false;
    }
    if (!is_scalar(ot_ref_in(n, in, 2), OT_DTYPE_DOUBLE) ||
        !is_scalar(ot_ref_in(n, in, 3), OT_DTYPE_INT64)) {
        *why = "the learning rate must be a double scalar and the step an int64 scalar";
        return false;
    }
    const ot_tensor *coef = ot_ref_in(n, in, coef_at);
    if (coef && !is_scalar(coef, OT_DTYPE_FLOAT)) {
        *why = "the clipping coefficient must be a float scalar";
        return false;
    }
    if (!is_f32_like(ot_ref_cout(n, out, 0), p)) {
        *why = "the updated parameter must be a float tensor like the parameter";
        return false;
    }
    for (int b = 0; b < n_bufs; b++)
        if (!is_f32_like(ot_ref_in(n, in, 4 + b), p) ||
            !is_f32_like(ot_ref_cout(n, out, 1 + b), p)) {
            *why = "the optimizer state must be float tensors like the parameter, in and out";
            return false;
        }
    return true;
}

/* The buffer output k updates: the input's own when the executor placed them
   together (state updated in place), else the output after a copy. */
static float *in_out(const ot_tensor *in, ot_tensor *out)
{
    if (out->data != in->data && out->bytes)
        memcpy(out->data, in->data, out->bytes);
    return out->data;
}

static float grad_scale(const ot_tensor *coef)
{
    if (!coef)
        return 1.0f;
    float c;
    memcpy(&c, coef->data, sizeof c);
    return c < 1.0f ? c : 1.0f; /* clip_grad_norm_ scales only when coef < 1 */
}

/* A coefficient that is not finite skips the update (dynamic loss scaling,
   train/loss_scale.h: a gradient overflowed): the parameter and its
   buffers keep their values. */
static bool update_skipped(const ot_tensor *coef)
{
    if (!coef)
        return false;
    float c;
    memcpy(&c, coef->data, sizeof c);
    return !isfinite(c);
}

static double scalar_f64(const ot_tensor *t)
{
    double v;
    memcpy(&v, t->data, sizeof v);
    return v;
}

static int64_t scalar_i64(const ot_tensor *t)
{
    int64_t v;
    memcpy(&v, t->data, sizeof v);
    return v;
}

/* ---------------------------------------------------------------- SGD */

/* SgdStep has a momentum buffer when it has output B'; the clipping
   coefficient is input 5 either way (input 4 omitted without momentum). */
static int sgd_bufs(const ot_node *n) { return n->n_out > 1 && n->out[1] >= 0 ? 1 : 0; }

bool ot_ref_sgd_step_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                              const ot_tensor *const *out, const char **why)
{
    (void)g;
    return update_supports(n, in, out, sgd_bufs(n), 5, why);
}

ot_status ot_ref_sgd_step(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                          ot_tensor *const *out, ot_err *err)
{
    (void)g, (void)err;
    const int n_bufs = sgd_bufs(n);
    const size_t numel = in[0]->bytes / sizeof(float);
    float *p = in_out(in[0], out[0]);
    const float *gr = in[1]->data;
    const double lr = scalar_f64(in[2]);
    const bool first = scalar_i64(in[3]) <= 1;
    const float gs = grad_scale(ot_ref_in(n, in, 5));
    const double wd = ot_op_attr_double(n, "weight_decay", 0.0);
    if (update_skipped(ot_ref_in(n, in, 5))) {
        if (n_bufs)
            in_out(in[4], out[1]);
        return OT_OK;
    }
    const double mu = ot_op_attr_double(n, "momentum", 0.0);
    const double tau = ot_op_attr_double(n, "dampening", 0.0);
    if (n_bufs == 0) {
        sgd_plain(p, gr, numel, gs, (float)-lr, (float)wd);
        return OT_OK;
    }
    float *b = in_out(in[4], out[1]);
    if (first)
        memset(b, 0, numel * sizeof(float));
    sgd_momentum(p, gr, b, numel, gs, (float)-lr, (float)wd, (float)mu, first ? 0.0f : (float)mu,
                 first ? 1.0f : (float)(1.0 - tau), ot_node_attr_int(n, "nesterov", 0) != 0);
    return OT_OK;
}

/* ---------------------------------------------------------- Adam, AdamW */

bool ot_ref_adam_step_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                               const ot_tensor *const *out, const char **why)
{
    (void)g;
    return update_supports(n, in, out, 2, 6, why);
}

ot_status ot_ref_adam_step(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                           ot_tensor *const *out, ot_err *err)
{
    (void)g, (void)err;
    const size_t numel = in[0]->bytes / sizeof(float);
    float *p = in_out(in[0], out[0]);
    float *m = in_out(in[4], out[1]);
    float *v = in_out(in[5], out[2]);
    if (update_skipped(ot_ref_in(n, in, 6)))
        return OT_OK;
    const double lr = scalar_f64(in[2]);
    const double t = (double)scalar_i64(in[3]);
    const bool is_adamw = n->op == ot_op_table[OT_OP_ADAMW_STEP];
    const double wd = ot_op_attr_double(n, "weight_decay", 0.0);
    const double beta1 = ot_op_attr_double(n, "beta1", 0.9);
    const double beta2 = ot_op_attr_double(n, "beta2", 0.999);
    const double eps = ot_op_attr_double(n, "eps", 1e-8);
    adam_scalars s = {
        .gs = grad_scale(ot_ref_in(n, in, 6)),
        .decay = is_adamw ? (float)(1.0 - lr * wd) : 1.0f,
        .l2 = is_adamw ? 0.0f : (float)wd,
        .beta1 = (float)beta1,
        .one_minus_beta1 = (float)(1.0 - beta1),
        .beta2 = (float)beta2,
        .one_minus_beta2 = (float)(1.0 - beta2),
        .bc2_sqrt = (float)sqrt(1.0 - pow(beta2, t)),
        .eps = (float)eps,
        .neg_step = (float)(-(lr / (1.0 - pow(beta1, t)))),
    };
    adam_update(p, in[1]->data, m, v, numel, &s);
    return OT_OK;
}

/* ------------------------------------------------------------ clipping */

bool ot_ref_grad_sum_squares_supports(const ot_graph *g, const ot_node *n,
                                      const ot_tensor *const *in, const ot_tensor *const *out,
                                      const char **why)
{
    (void)g;
    const ot_tensor *acc = ot_ref_in(n, in, 1);
    if (!in[0] || in[0]->dtype != OT_DTYPE_FLOAT || (acc && !is_scalar(acc, OT_DTYPE_DOUBLE)) ||
        !is_scalar(ot_ref_cout(n, out, 0), OT_DTYPE_DOUBLE)) {
        *why = "expects a float gradient, a double sum in and a double sum out";
        return false;
    }
    return true;
}

/* acc + the squares of G summed in double, in index order (the order of
   clip_grad_norm_'s reference implementation here since the start, so that
   the norm has the same bits). */
ot_status ot_ref_grad_sum_squares(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                                  ot_tensor *const *out, ot_err *err)
{
    (void)g, (void)err;
    const float *x = in[0]->data;
    const size_t numel = in[0]->bytes / sizeof(float);
    double s = 0.0;
    for (size_t j = 0; j < numel; j++)
        s += (double)x[j] * (double)x[j];
    const ot_tensor *acc = ot_ref_in(n, in, 1);
    double total = (acc ? scalar_f64(acc) : 0.0) + s;
    memcpy(out[0]->data, &total, sizeof total);
    return OT_OK;
}

bool ot_ref_clip_grad_coef_supports(const ot_graph *g, const ot_node *n,
                                    const ot_tensor *const *in, const ot_tensor *const *out,
                                    const char **why)
{
    (void)g;
    const ot_tensor *scale = ot_ref_in(n, in, 1);
    if (!is_scalar(in[0], OT_DTYPE_DOUBLE) || (scale && !is_scalar(scale, OT_DTYPE_FLOAT)) ||
        !is_scalar(ot_ref_cout(n, out, 0), OT_DTYPE_FLOAT) ||
        (ot_ref_cout(n, out, 1) && !is_scalar(ot_ref_cout(n, out, 1), OT_DTYPE_FLOAT))) {
        *why = "expects a double sum of squares and an optional float scale in, float scalars "
               "out";
        return false;
    }
    return true;
}

/* norm = sqrt(sum) in float; coef = max_norm / (norm + 1e-6) in float, as
   PyTorch forms it from a float32 norm. A norm that is not finite leaves the
   gradients unscaled (coef 1): the caller reads the norm output and stops, as
   clip_grad_norm_ with error_if_nonfinite=True.
   With the loss scale s (the gradients summed are s times the true ones):
   the norm is sqrt(sum) / s in float, the clipping coefficient clamped to 1
   as clip_grad_norm_ clamps it, times 1 / s, so that one product unscales
   and clips (bit for bit the two products PyTorch applies when s is a
   power of two); not finite (NaN: every update skipped, GradScaler's
   skipped step) when sqrt(sum) is not. */
ot_status ot_ref_clip_grad_coef(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                                ot_tensor *const *out, ot_err *err)
{
    (void)g, (void)err;
    const float max_norm = ot_node_attr_float(n, "max_norm", 1.0f);
    const ot_tensor *st = ot_ref_in(n, in, 1);
    float norm = (float)sqrt(scalar_f64(in[0]));
    float coef;
    if (st) {
        float scale, inv;
        memcpy(&scale, st->data, sizeof scale);
        inv = 1.0f / scale;
        if (isfinite(norm)) {
            norm = norm / scale;
            float c = max_norm / (norm + 1e-6f);
            coef = c < 1.0f ? c * inv : inv;
        } else {
            coef = NAN;
        }
    } else {
        coef = isfinite(norm) ? max_norm / (norm + 1e-6f) : 1.0f;
    }
    memcpy(out[0]->data, &coef, sizeof coef);
    ot_tensor *nt = ot_ref_out(n, out, 1);
    if (nt)
        memcpy(nt->data, &norm, sizeof norm);
    return OT_OK;
}

/* ------------------------------------------------------- gradient all-reduce */

bool ot_ref_grad_all_reduce_supports(const ot_graph *g, const ot_node *n,
                                     const ot_tensor *const *in, const ot_tensor *const *out,
                                     const char **why)
{
    (void)g;
    int64_t phase = ot_node_attr_int(n, "phase", 0);
    int first = phase == 2 ? 1 : 0;
    for (int i = 0; i < n->n_in; i++)
        if (!in[i] || in[i]->dtype != OT_DTYPE_FLOAT) {
            *why = "expects float gradients";
            return false;
        }
    if (phase == 1) {
        if (!out[0] || out[0]->dtype != OT_DTYPE_FLOAT || out[0]->bytes != sizeof(float)) {
            *why = "expects a float scalar token";
            return false;
        }
        return true;
    }
    if (phase == 2 && in[0]->bytes != sizeof(float)) {
        *why = "expects a float scalar token first";
        return false;
    }
    for (int i = first; i < n->n_in; i++)
        if (!out[i - first] || out[i - first]->bytes != in[i]->bytes) {
            *why = "expects outputs of the gradients' sizes";
            return false;
        }
    return true;
}

/* The bucket's place in the communicator's buffer: `offset` floats in, the
   gradients in[first..n_in) one after the other. */
static ot_status bucket_stage(const ot_node *n, const ot_comm *c, const ot_tensor *const *in,
                              int first, float **stage, size_t *total, ot_err *err)
{
    size_t off = (size_t)ot_node_attr_int(n, "offset", 0), k = 0;
    for (int i = first; i < n->n_in; i++)
        k += in[i]->bytes / sizeof(float);
    if (off + k > c->stage_n)
        return ot_err_set(err, OT_ERR_INTERNAL,
                          "GradAllReduce: bucket of %zu floats at %zu, buffer of %zu", k, off,
                          c->stage_n);
    *stage = c->stage + off;
    *total = k;
    return OT_OK;
}

/* Packs grad_weight * in[first..] into the bucket's place and starts its
   reduction. */
static ot_status bucket_start(const ot_node *n, ot_comm *c, const ot_tensor *const *in,
                              int first, int *ticket, ot_err *err)
{
    float *stage;
    size_t total;
    ot_status st = bucket_stage(n, c, in, first, &stage, &total, err);
    if (st != OT_OK)
        return st;
    const float w = c->grad_weight;
    float *p = stage;
    for (int i = first; i < n->n_in; i++) {
        const float *x = in[i]->data;
        size_t k = in[i]->bytes / sizeof(float);
        for (size_t j = 0; j < k; j++)
            p[j] = w * x[j];
        p += k;
    }
    return ot_comm_grad_start(c, stage, total, ticket, err);
}

/* Waits for the bucket's reduction and unpacks it into out[]. */
static ot_status bucket_finish(const ot_node *n, ot_comm *c, const ot_tensor *const *in,
                               int first, int ticket, ot_tensor *const *out, ot_err *err)
{
    float *stage;
    size_t total;
    ot_status st = bucket_stage(n, c, in, first, &stage, &total, err);
    if (st == OT_OK)
        st = ot_comm_grad_wait(c, ticket, err);
    if (st != OT_OK)
        return st;
    const float *p = stage;
    for (int i = first; i < n->n_in; i++) {
        size_t k = in[i]->bytes / sizeof(float);
        memcpy(out[i - first]->data, p, k * sizeof(float));
        p += k;
    }
    return OT_OK;
}

/* GradAllReduce through NCCL's communicator on the host's stand-in queue
   (test-only, ONNXTRAIN_NCCL_HOST): the bucket packed as bucket_start
   packs it, its reduction started and waited for by key (its offset), as
   the CUDA kernel does on the device; the token carries nothing. */
static ot_status dev_all_reduce(const ot_node *n, ot_comm *c, int64_t phase,
                                const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    int first = phase == 2 ? 1 : 0;
    int64_t key = ot_node_attr_int(n, "offset", 0);
    float *stage;
    size_t total;
    ot_status st = bucket_stage(n, c, in, first, &stage, &total, err);
    if (st != OT_OK)
        return st;
    if (phase != 2) {
        const float w = c->grad_weight;
        float *p = stage;
        for (int i = 0; i < n->n_in; i++) {
            const float *x = in[i]->data;
            size_t k = in[i]->bytes / sizeof(float);
            for (size_t j = 0; j < k; j++)
                p[j] = w * x[j];
            p += k;
        }
        if ((st = ot_comm_dev_grad_start(c, stage, total, key, NULL, err)) != OT_OK)
            return st;
        if (phase == 1) {
            memset(out[0]->data, 0, sizeof(float));
            return OT_OK;
        }
    }
    if ((st = ot_comm_dev_grad_wait(c, key, NULL, err)) != OT_OK)
        return st;
    const float *p = stage;
    for (int i = first; i < n->n_in; i++) {
        size_t k = in[i]->bytes / sizeof(float);
        memcpy(out[i - first]->data, p, k * sizeof(float));
        p += k;
    }
    return OT_OK;
}

/* out[i] = the sum over the ranks of grad_weight * in[i], the bucket packed
   into its place in the communicator's buffer and reduced as one message;
   with one process (no communicator), out = in. phase=1 starts the
   reduction as soon as the gradients exist (during the backward pass) and
   writes the request's ticket into its token; phase=2, before the updates,
   waits for it: the same packing and the same message, so the same sums as
   phase 0's start-then-wait. */
ot_status ot_ref_grad_all_reduce(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                                 ot_tensor *const *out, ot_err *err)
{
    (void)g;
    ot_comm *c = ot_dist_current();
    int64_t phase = ot_node_attr_int(n, "phase", 0);
    int first = phase == 2 ? 1 : 0;
    if (ot_comm_dev_on_host(c))
        return dev_all_reduce(n, c, phase, in, out, err);
    if (!c || c->size < 2) {
        if (phase == 1)
            memset(out[0]->data, 0, sizeof(float));
        else
            for (int i = first; i < n->n_in; i++)
                memcpy(out[i - first]->data, in[i]->data, in[i]->bytes);
        return OT_OK;
    }
    int ticket = 0;
    ot_status st = OT_OK;
    if (phase == 2) {
        float t;
        memcpy(&t, in[0]->data, sizeof t);
        ticket = (int)t;
    } else {
        st = bucket_start(n, c, in, 0, &ticket, err);
    }
    if (st != OT_OK)
        return st;
    if (phase == 1) {
        const float t = (float)ticket; /* tickets stay far below 2^24 */
        memcpy(out[0]->data, &t, sizeof t);
        return OT_OK;
    }
    return bucket_finish(n, c, in, first, ticket, out, err);
}
