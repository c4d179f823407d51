/*
 * norm.cu: BatchNormalization (inference, and opset 14's training mode),
 * the private BatchNormTrain and BatchNormGrad, LayerNormalization,
 * InstanceNormalization, GroupNormalization and their NormGrad, LRN and
 * LRNGrad.
 *
 * As ref_norm.c, ref_normalize.c, ref_grad.c and ref_index.c: statistics in
 * double (mean, then the squared deviations from it), the ONNX momentum
 * convention running * momentum + batch * (1 - momentum), the unbiased
 * variance for BatchNormTrain's running estimate.
 *
 * The per-channel sums of BatchNorm are deterministic: P partial sums per
 * channel, partial k taking the channel's elements k, k + P, k + 2P, ...
 * (neighbouring threads read neighbouring elements), then one thread per
 * channel adding its P partials in order; the scratch holds the partials
 * (see otk_bn_scratch_bytes). The other normalisations use one thread per
 * row, in the plain kernels' order.
 *
 * BatchNorm takes X channels-last too (nhwc): a channel's elements are then
 * visited in the same order j (image, then position), so the sums, and the
 * results, are those of NCHW bit for bit.
 */
#include "exec/cuda/kernels/common.cuh"

int64_t otk_bn_parts(int64_t M)
{
    int64_t p = M / 256;
    return p < 1 ? 1 : p > 1024 ? 1024 : p;
}

size_t otk_bn_scratch_bytes(int64_t C, int64_t M)
{
    return sizeof(double) * (size_t)(C * (2 * otk_bn_parts(M) + 8));
}

/* element j of channel c: image j / sp, position j % sp; channels-last
   (nhwc), the j-th pixel's channel c */
__device__ __forceinline__ int64_t bn_at(int64_t c, int64_t j, int64_t C, int64_t sp, int nhwc)
{
    return nhwc ? j * C + c : ((j / sp) * C + c) * sp + j % sp;
}

/* the channel of element i */
__device__ __forceinline__ int64_t bn_channel(int64_t i, int64_t C, int64_t sp, int nhwc)
{
    return nhwc ? i % C : (i / sp) % C;
}

/* part[c * P + k] = sum over j = k, k + P, ... < M of f(j), where f is x,
   or (x - mu[c])^2 when mu is given; with dy: part = sum dy, part2 = sum
   dy (x - mu) */
__global__ void k_bn_partial(const float *x, const float *dy, const double *mu, const float *muf,
                             double *part, double *part2, int64_t C, int64_t sp, int64_t M,
                             int64_t P, int nhwc)
{
    OTK_FOR(t, C * P)
    {
        int64_t c = t / P, k = t % P;
        double s = 0, s2 = 0;
        double m = mu ? mu[c] : muf ? (double)muf[c] : 0.0;
        for (int64_t j = k; j < M; j += P) {
            int64_t at = bn_at(c, j, C, sp, nhwc);
            double v = (double)x[at];
            if (dy) {
                double d = (double)dy[at];
                s += d;
                s2 += d * (v - m);
            } else if (mu) {
                double d = v - m;
                s += d * d;
            } else {
                s += v;
            }
        }
        part[t] = s;
        if (part2)
            part2[t] = s2;
    }
}

/* out[c] = (sum of the P partials of c in order) / div */
__global__ void k_bn_gather(const double *part, double *out, int64_t C, int64_t P, double div)
{
    OTK_FOR(c, C)
    {
        double s = 0;
        for (int64_t k = 0; k < P; k++)
            s += part[c * P + k];
        out[c] = div > 0 ? s / div : 0.0;
    }
}

/* stats[0..C) = mean, stats[C..2C) = sum of squared deviations, over the
   N * sp elements of each channel */
static void bn_stats(void *stream, const float *x, int64_t C, int64_t sp, int64_t M, int nhwc,
                     double *ws)
{
    int64_t P = otk_bn_parts(M);
    double *part = ws, *stats = ws + 2 * C * P;
    OTK_LAUNCH(k_bn_partial, C * P, stream, x, (const float *)NULL, (const double *)NULL,
               (const float *)NULL, part, (double *)NULL, C, sp, M, P, nhwc);
    OTK_LAUNCH(k_bn_gather, C, stream, part, stats, C, P, (double)M);
    OTK_LAUNCH(k_bn_partial, C * P, stream, x, (const float *)NULL, (const double *)stats,
               (const float *)NULL, part, (double *)NULL, C, sp, M, P, nhwc);
    OTK_LAUNCH(k_bn_gather, C, stream, part, stats + C, C, P, 1.0);
}

__device__ __forceinline__ void st_param(float *p, int64_t c, double v)
{
    if (p)
        p[c] = (float)v;
}

/* BatchNormTrain's per-channel results: running mean and var (unbiased),
   saved mean and inverse std; the affine a, b of y = x a + b in stats */
__global__ void k_bn_train_final(double *stats, const float *scale, const float *bias,
                                 const float *rmean, const float *rvar, float *o_rmean,
                                 float *o_rvar, float *o_mean, float *o_istd, double eps,
                                 double momentum, double M, int64_t C)
{
    OTK_FOR(c, C)
    {
        double mu = stats[c], s2 = stats[C + c];
        double var = M > 0 ? s2 / M : 0.0, unbiased = M > 1 ? s2 / (M - 1) : var;
        double inv_std = 1.0 / sqrt(var + eps);
        double a = (double)scale[c] * inv_std;
        double b = (double)bias[c] - mu * a;
        double rm = (double)rmean[c] * momentum + mu * (1 - momentum);
        double rv = (double)rvar[c] * momentum + unbiased * (1 - momentum);
        st_param(o_rmean, c, rm);
        st_param(o_rvar, c, rv);
        st_param(o_mean, c, mu);
        st_param(o_istd, c, inv_std);
        stats[2 * C + c] = a;
        stats[3 * C + c] = b;
    }
}

/* y = x a + b: in double (BatchNormTrain) or in float (BatchNormalization) */
__global__ void k_bn_apply(const float *x, const double *stats, float *y, int in_double,
                           int64_t C, int64_t sp, int nhwc, int64_t n)
{
    OTK_FOR(i, n)
    {
        int64_t c = bn_channel(i, C, sp, nhwc);
        double a = stats[2 * C + c], b = stats[3 * C + c];
        if (in_double)
            y[i] = (float)((double)x[i] * a + b);
        else
            y[i] = __fadd_rn(__fmul_rn(x[i], (float)a), (float)b);
    }
}

int otk_bn_train_f32(void *stream, const float *x, const float *scale, const float *bias,
                     const float *rmean, const float *rvar, float *y, float *o_rmean,
                     float *o_rvar, float *o_mean, float *o_istd, double eps, double momentum,
                     int64_t N, int64_t C, int64_t sp, int nhwc, void *scratch)
{
    int64_t M = N * sp;
    double *ws = (double *)scratch, *stats = ws + 2 * C * otk_bn_parts(M);
    bn_stats(stream, x, C, sp, M, nhwc, ws);
    OTK_LAUNCH(k_bn_train_final, C, stream, stats, scale, bias, rmean, rvar, o_rmean, o_rvar,
               o_mean, o_istd, eps, momentum, (double)M, C);
    OTK_LAUNCH(k_bn_apply, N * C * sp, stream, x, (const double *)stats, y, 1, C, sp, nhwc,
               N * C * sp);
    return otk_status();
}

/* BatchNormalization: running statistics (inference), or with training
   outputs the batch's (biased variance everywhere, as ref_norm.c) */
__global__ void k_bn_infer_final(double *stats, int training, const float *scale,
                                 const float *bias, const float *mean, const float *var,
                                 float *o_rmean, float *o_rvar, double eps, double momentum,
                                 double M, int64_t C)
{
    OTK_FOR(c, C)
    {
        double m = (double)mean[c], v = (double)var[c];
        if (training) {
            double bm = stats[c], bv = M > 0 ? stats[C + c] / M : 0.0;
            st_param(o_rmean, c, m * momentum + bm * (1 - momentum));
            st_param(o_rvar, c, v * momentum + bv * (1 - momentum));
            m = bm;
            v = bv;
        }
        double a = (double)scale[c] / sqrt(v + eps);
        stats[2 * C + c] = a;
        stats[3 * C + c] = (double)bias[c] - m * a;
    }
}

int otk_bn_infer_f32(void *stream, int training, const float *x, const float *scale,
                     const float *bias, const float *mean, const float *var, float *y,
                     float *o_rmean, float *o_rvar, double eps, double momentum, int64_t N,
                     int64_t C, int64_t sp, int nhwc, void *scratch)
{
    int64_t M = N * sp;
    double *ws = (double *)scratch, *stats = ws + 2 * C * otk_bn_parts(M);
    if (training)
        bn_stats(stream, x, C, sp, M, nhwc, ws);
    OTK_LAUNCH(k_bn_infer_final, C, stream, stats, training, scale, bias, mean, var, o_rmean,
               o_rvar, eps, momentum, (double)M, C);
    OTK_LAUNCH(k_bn_apply, N * C * sp, stream, x, (const double *)stats, y, 0, C, sp, nhwc,
               N * C * sp);
    return otk_status();
}

/* BatchNormGrad's per-channel results: dB = sum dY, dScale = sum dY xhat;
   dX = a dY + b x + c0 (stats 2C.. 5C) */
__global__ void k_bn_grad_final(double *stats, const float *scale, const float *mean,
                                const float *s4, int training, double eps, double M,
                                float *dscale, float *db, int64_t C)
{
    OTK_FOR(c, C)
    {
        double mu = (double)mean[c], v4 = (double)s4[c];
        double inv_std = training ? v4 : 1.0 / sqrt(v4 + eps);
        double sdy = stats[c], sdyx = stats[C + c] * inv_std;
        st_param(db, c, sdy);
        st_param(dscale, c, sdyx);
        double k = (double)scale[c] * inv_std;
        float a = (float)k, b = 0.0f, c0 = 0.0f;
        if (training && M > 0) {
            b = (float)(-k / M * sdyx * inv_std);
            c0 = (float)(-k / M * sdy + k / M * sdyx * inv_std * mu);
        }
        stats[2 * C + c] = a;
        stats[3 * C + c] = b;
        stats[4 * C + c] = c0;
    }
}

__global__ void k_bn_grad_apply(const float *dy, const float *x, const double *stats, float *dx,
                                int64_t C, int64_t sp, int nhwc, int64_t n)
{
    OTK_FOR(i, n)
    {
        int64_t c = bn_channel(i, C, sp, nhwc);
        float a = (float)stats[2 * C + c], b = (float)stats[3 * C + c],
              c0 = (float)stats[4 * C + c];
        dx[i] = __fadd_rn(__fadd_rn(__fmul_rn(a, dy[i]), __fmul_rn(b, x[i])), c0);
    }
}

int otk_bn_grad_f32(void *stream, const float *dy, const float *x, const float *scale,
                    const float *mean, const float *s4, int training, double eps, float *dx,
                    float *dscale, float *db, int64_t N, int64_t C, int64_t sp, int nhwc,
                    void *scratch)
{
    int64_t M = N * sp, P = otk_bn_parts(M);
    double *part = (double *)scratch, *stats = part + 2 * C * P;
    OTK_LAUNCH(k_bn_partial, C * P, stream, x, dy, (const double *)NULL, mean, part, part + C * P,
               C, sp, M, P, nhwc);
    OTK_LAUNCH(k_bn_gather, C, stream, (const double *)part, stats, C, P, 1.0);
    OTK_LAUNCH(k_bn_gather, C, stream, (const double *)(part + C * P), stats + C, C, P, 1.0);
    OTK_LAUNCH(k_bn_grad_final, C, stream, stats, scale, mean, s4, training, eps, (double)M,
               dscale, db, C);
    if (dx)
        OTK_LAUNCH(k_bn_grad_apply, N * C * sp, stream, dy, x, (const double *)stats, dx, C, sp,
                   nhwc, N * C * sp);
    return otk_status();
}

/* Synchronised BatchNorm (--sync-bn over several ranks, NCCL): the
   per-channel sums of every rank added by `reduce` (which enqueues the sum
   over the ranks of n doubles at p on the stream) between the passes.
   Forward: the mean is the sum of each rank's sums over M_all (all ranks'
   elements per channel), then the squared deviations from it; the running
   statistics use M_all. Backward (as ref_grad.c's bn_grad_sync): dScale and
   dB stay this rank's sums; dX takes the ranks' sums weighted by their
   shares w (this rank's w given) and this rank's own count M. */
int otk_bn_train_sync_f32(void *stream, const float *x, const float *scale, const float *bias,
                          const float *rmean, const float *rvar, float *y, float *o_rmean,
                          float *o_rvar, float *o_mean, float *o_istd, double eps,
                          double momentum, int64_t N, int64_t C, int64_t sp, int nhwc,
                          double M_all,
                          otk_reduce_fn reduce, void *ctx, void *scratch)
{
    int64_t M = N * sp, P = otk_bn_parts(M);
    double *part = (double *)scratch, *stats = part + 2 * C * P;
    OTK_LAUNCH(k_bn_partial, C * P, stream, x, (const float *)NULL, (const double *)NULL,
               (const float *)NULL, part, (double *)NULL, C, sp, M, P, nhwc);
    OTK_LAUNCH(k_bn_gather, C, stream, (const double *)part, stats, C, P, M_all);
    if (reduce(ctx, stats, C, stream))
        return -1;
    OTK_LAUNCH(k_bn_partial, C * P, stream, x, (const float *)NULL, (const double *)stats,
               (const float *)NULL, part, (double *)NULL, C, sp, M, P, nhwc);
    OTK_LAUNCH(k_bn_gather, C, stream, (const double *)part, stats + C, C, P, 1.0);
    if (reduce(ctx, stats + C, C, stream))
        return -1;
    OTK_LAUNCH(k_bn_train_final, C, stream, stats, scale, bias, rmean, rvar, o_rmean, o_rvar,
               o_mean, o_istd, eps, momentum, M_all, C);
    OTK_LAUNCH(k_bn_apply, N * C * sp, stream, x, (const double *)stats, y, 1, C, sp, nhwc,
               N * C * sp);
    return otk_status();
}

int otk_bn_grad_sync_f32(void *stream, const float *dy, const float *x, const float *scale,
                         const float *mean, const float *s4, double eps, double w, float *dx,
                         float *dscale, float *db, int64_t N, int64_t C, int64_t sp, int nhwc,
                         otk_reduce_fn reduce, void *ctx, void *scratch)
{
    int64_t M = N * sp, P = otk_bn_parts(M);
    double *part = (double *)scratch, *stats = part + 2 * C * P;
    OTK_LAUNCH(k_bn_partial, C * P, stream, x, dy, (const double *)NULL, mean, part, part + C * P,
               C, sp, M, P, nhwc);
    /* this rank's dB and dScale */
    OTK_LAUNCH(k_bn_gather, C, stream, (const double *)part, stats, C, P, 1.0);
    OTK_LAUNCH(k_bn_gather, C, stream, (const double *)(part + C * P), stats + C, C, P, 1.0);
    OTK_LAUNCH(k_bn_grad_final, C, stream, stats, scale, mean, s4, 1, eps, (double)M, dscale, db,
               C);
    /* the ranks' sums, each weighted by its share, for dX */
    OTK_LAUNCH(k_bn_gather, C, stream, (const double *)part, stats, C, P, 1.0 / w);
    OTK_LAUNCH(k_bn_gather, C, stream, (const double *)(part + C * P), stats + C, C, P, 1.0 / w);
    if (reduce(ctx, stats, 2 * C, stream))
        return -1;
    OTK_LAUNCH(k_bn_grad_final, C, stream, stats, scale, mean, s4, 1, eps, (double)M,
               (float *)NULL, (float *)NULL, C);
    if (dx)
        OTK_LAUNCH(k_bn_grad_apply, N * C * sp, stream, dy, x, (const double *)stats, dx, C, sp,
                   nhwc, N * C * sp);
    return otk_status();
}

/* --------------------------------------- Layer, Instance, GroupNormalization */

/* the scale/bias index of element m of row o (ref_normalize.c's param_at) */
__device__ __forceinline__ int64_t param_at(const otk_norm &q, int64_t o, int64_t m)
{
    switch (q.kind) {
    case OTK_NORM_LAYER: return m;
    case OTK_NORM_INSTANCE: return o % q.C;
    default: return q.per_channel ? (o % q.G) * (q.C / q.G) + m / q.S : o % q.G;
    }
}

__device__ __forceinline__ void row_stats(const float *x, const otk_norm &q, int64_t o,
                                          double eps, double *mean, double *inv_std)
{
    double s = 0, v = 0;
    const float *xr = x + o * q.M;
    for (int64_t m = 0; m < q.M; m++)
        s += (double)xr[m];
    *mean = q.M ? s / (double)q.M : 0;
    for (int64_t m = 0; m < q.M; m++) {
        double d = (double)xr[m] - *mean;
        v += d * d;
    }
    *inv_std = 1.0 / sqrt((q.M ? v / (double)q.M : 0) + eps);
}

__global__ void k_normalize(otk_norm q, double eps, const float *x, const float *scale,
                            const float *bias, float *y, float *mo, float *ro)
{
    OTK_FOR(o, q.rows)
    {
        double mean, r;
        row_stats(x, q, o, eps, &mean, &r);
        if (mo)
            mo[o] = (float)mean;
        if (ro)
            ro[o] = (float)r;
        for (int64_t m = 0; m < q.M; m++) {
            int64_t i = o * q.M + m, p = param_at(q, o, m);
            double v = ((double)x[i] - mean) * r * (double)scale[p] + (bias ? (double)bias[p] : 0);
            y[i] = (float)v;
        }
    }
}

int otk_normalize_f32(void *stream, const otk_norm *q, double eps, const float *x,
                      const float *scale, const float *bias, float *y, float *mean,
                      float *inv_std)
{
    OTK_LAUNCH(k_normalize, q->rows, stream, *q, eps, x, scale, bias, y, mean, inv_std);
    return otk_status();
}

/* per row: the statistics (kept in ws for the parameter pass) and dX */
__global__ void k_norm_grad_rows(otk_norm q, double eps, const float *dy, const float *x,
                                 const float *scale, float *dx, double *ws)
{
    OTK_FOR(o, q.rows)
    {
        double mean, r, sg = 0, sgx = 0;
        row_stats(x, q, o, eps, &mean, &r);
        ws[2 * o] = mean;
        ws[2 * o + 1] = r;
        if (!dx)
            continue;
        for (int64_t m = 0; m < q.M; m++) {
            int64_t i = o * q.M + m, p = param_at(q, o, m);
            double xhat = ((double)x[i] - mean) * r;
            double gs = (double)dy[i] * (double)scale[p];
            sg += gs;
            sgx += gs * xhat;
        }
        double M = (double)q.M;
        for (int64_t m = 0; m < q.M; m++) {
            int64_t i = o * q.M + m, p = param_at(q, o, m);
            double xhat = ((double)x[i] - mean) * r;
            double gs = (double)dy[i] * (double)scale[p];
            dx[i] = (float)(r * (gs - sg / M - xhat * sgx / M));
        }
    }
}

/* per parameter p: dScale[p] = sum dY xhat, dB[p] = sum dY over the
   elements that use p, rows in order (rounded to float after each term,
   as the plain kernel accumulates in its output) */
__global__ void k_norm_grad_params(otk_norm q, int64_t np, const float *dy, const float *x,
                                   const double *ws, float *ds, float *db)
{
    OTK_FOR(p, np)
    {
        float as = 0.0f, ab = 0.0f;
        int64_t n_img = q.kind == OTK_NORM_LAYER ? 0 : q.rows / (q.kind == OTK_NORM_INSTANCE ? q.C : q.G);
        int64_t n_rows = q.kind == OTK_NORM_LAYER ? q.rows : n_img;
        for (int64_t t = 0; t < n_rows; t++) {
            int64_t o, m0, m1;
            if (q.kind == OTK_NORM_LAYER) {
                o = t, m0 = p, m1 = p + 1;
            } else if (q.kind == OTK_NORM_INSTANCE) {
                o = t * q.C + p, m0 = 0, m1 = q.M;
            } else if (q.per_channel) {
                int64_t cg = q.C / q.G, g = p / cg;
                o = t * q.G + g, m0 = (p % cg) * q.S, m1 = m0 + q.S;
            } else {
                o = t * q.G + p, m0 = 0, m1 = q.M;
            }
            double mean = ws[2 * o], r = ws[2 * o + 1];
            for (int64_t m = m0; m < m1; m++) {
                int64_t i = o * q.M + m;
                double gy = (double)dy[i], xhat = ((double)x[i] - mean) * r;
                as = (float)((double)as + gy * xhat);
                ab = (float)((double)ab + gy);
            }
        }
        if (ds)
            ds[p] = as;
        if (db)
            db[p] = ab;
    }
}

int otk_norm_grad_f32(void *stream, const otk_norm *q, double eps, int64_t np, const float *dy,
                      const float *x, const float *scale, float *dx, float *ds, float *db,
                      void *scratch)
{
    double *ws = (double *)scratch;
    OTK_LAUNCH(k_norm_grad_rows, q->rows, stream, *q, eps, dy, x, scale, dx, ws);
    if (ds || db)
        OTK_LAUNCH(k_norm_grad_params, np, stream, *q, np, dy, x, (const double *)ws, ds, db);
    return otk_status();
}

/* -------------------------------------------------------------------- LRN */

__device__ __forceinline__ double lrn_sq(const float *x, int64_t nn, int64_t c, int64_t i,
                                         int64_t C, int64_t sp, int64_t before, int64_t after)
{
    int64_t lo = c - before < 0 ? 0 : c - before;
    int64_t hi = c + after >= C ? C - 1 : c + after;
    double sq = 0;
    for (int64_t cc = lo; cc <= hi; cc++) {
        double v = (double)x[(nn * C + cc) * sp + i];
        sq += v * v;
    }
    return sq;
}

__global__ void k_lrn(const float *x, float *y, double alpha, double beta, double bias,
                      int64_t size, int64_t C, int64_t sp, int64_t n)
{
    int64_t before = (size - 1) / 2, after = size - 1 - before;
    OTK_FOR(at, n)
    {
        int64_t i = at % sp, c = (at / sp) % C, nn = at / (sp * C);
        double sq = lrn_sq(x, nn, c, i, C, sp, before, after);
        y[at] = (float)((double)x[at] / pow(bias + alpha / (double)size * sq, beta));
    }
}

__global__ void k_lrn_grad(const float *dy, const float *x, float *dx, double alpha, double beta,
                           double bias, int64_t size, int64_t C, int64_t sp, int64_t n)
{
    int64_t before = (size - 1) / 2, after = size - 1 - before;
    double k = alpha / (double)size;
    OTK_FOR(at, n)
    {
        int64_t i = at % sp, kk = (at / sp) % C, nn = at / (sp * C);
        int64_t clo = kk - after < 0 ? 0 : kk - after;
        int64_t chi = kk + before >= C ? C - 1 : kk + before;
        double acc = 0, s_k = 0;
        for (int64_t c = clo; c <= chi; c++) {
            double s = bias + k * lrn_sq(x, nn, c, i, C, sp, before, after);
            int64_t ac = (nn * C + c) * sp + i;
            acc += (double)dy[ac] * (double)x[ac] * pow(s, -beta - 1);
            if (c == kk)
                s_k = s;
        }
        double v = (double)dy[at] * pow(s_k, -beta) - 2.0 * k * beta * (double)x[at] * acc;
        dx[at] = (float)v;
    }
}

int otk_lrn_f32(void *stream, const float *dy, const float *x, float *y, double alpha,
                double beta, double bias, int64_t size, int64_t N, int64_t C, int64_t sp)
{
    int64_t n = N * C * sp;
    if (dy)
        OTK_LAUNCH(k_lrn_grad, n, stream, dy, x, y, alpha, beta, bias, size, C, sp, n);
    else
        OTK_LAUNCH(k_lrn, n, stream, x, y, alpha, beta, bias, size, C, sp, n);
    return otk_status();
}
