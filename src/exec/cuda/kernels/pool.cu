/*
 * pool.cu: MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool and their
 * backward ops, spatial rank 1 to 3 (padded to 3 as ot_ref_geom does).
 *
 * As ref_pool.c and ref_grad.c: the first maximum of a window in row-major
 * window order wins (padding never does); the average's divisor counts the
 * taps inside X, or with count_include_pad inside X plus its pads. The
 * backward ops gather instead of scattering: each dX element sums, in a
 * fixed order, the windows that cover it (MaxPoolGrad: those whose first
 * maximum it is), so the result has no atomics and is reproducible.
 *
 * Channels-last (otk_geom.nhwc, [N, spatial..., C] in memory): the same
 * windows in the same order, one thread per element in memory order, each
 * plane read with a stride of C; the results are those of NCHW bit for bit.
 */
#include "exec/cuda/kernels/common.cuh"

/* Element i of a tensor of sp positions per plane: its plane (n * C + c)
   and its position. */
__device__ __forceinline__ void pool_decode(const otk_geom &q, int64_t i, int64_t sp,
                                            int64_t *nc, int64_t *r)
{
    if (q.nhwc) {
        int64_t n = i / (sp * q.C), rem = i % (sp * q.C);
        *nc = n * q.C + rem % q.C;
        *r = rem / q.C;
    } else {
        *nc = i / sp;
        *r = i % sp;
    }
}

/* Where plane nc of a tensor of sp positions per plane starts. */
__device__ __forceinline__ int64_t pool_base(const otk_geom &q, int64_t nc, int64_t sp)
{
    return q.nhwc ? (nc / q.C) * sp * q.C + nc % q.C : nc * sp;
}

/* The stride between neighbouring positions of a plane. */
__device__ __forceinline__ int64_t pool_cs(const otk_geom &q) { return q.nhwc ? q.C : 1; }

/* The taps t in [0, k) whose position o*s - pb + t*d lies in [lo, hi): the
   first in *t0, the count returned. */
__device__ __forceinline__ int64_t taps_in(const otk_geom &q, int dim, int64_t o, int64_t lo,
                                           int64_t hi, int64_t *t0)
{
    int64_t start = o * q.s[dim] - q.pb[dim], first = -1, count = 0;
    for (int64_t t = 0; t < q.k[dim]; t++) {
        int64_t pos = start + t * q.d[dim];
        if (pos >= lo && pos < hi) {
            if (first < 0)
                first = t;
            count++;
        }
    }
    *t0 = first < 0 ? 0 : first;
    return count;
}

/* The first maximum of window (od, oh, ow) of plane xp: its spatial offset,
   -1 when the window holds no element of X. */
__device__ __forceinline__ int64_t window_argmax(const otk_geom &q, const float *xp, int64_t od,
                                                 int64_t oh, int64_t ow, float *best_v)
{
    float best = 0.0f;
    int64_t best_at = -1;
    for (int64_t kd = 0; kd < q.k[0]; kd++) {
        int64_t id = od * q.s[0] - q.pb[0] + kd * q.d[0];
        if (id < 0 || id >= q.in[0])
            continue;
        for (int64_t kh = 0; kh < q.k[1]; kh++) {
            int64_t ih = oh * q.s[1] - q.pb[1] + kh * q.d[1];
            if (ih < 0 || ih >= q.in[1])
                continue;
            for (int64_t kw = 0; kw < q.k[2]; kw++) {
                int64_t iw = ow * q.s[2] - q.pb[2] + kw * q.d[2];
                if (iw < 0 || iw >= q.in[2])
                    continue;
                int64_t at = (id * q.in[1] + ih) * q.in[2] + iw;
                float v = xp[at * pool_cs(q)];
                if (best_at < 0 || v > best) {
                    best = v;
                    best_at = at;
                }
            }
        }
    }
    *best_v = best;
    return best_at;
}

__global__ void k_maxpool_f32(otk_geom q, const float *x, float *y, int64_t *idx, int col_major,
                              int64_t n)
{
    int64_t isp = q.in[0] * q.in[1] * q.in[2], osp = q.o[0] * q.o[1] * q.o[2];
    OTK_FOR(o, n)
    {
        int64_t nc, r;
        pool_decode(q, o, osp, &nc, &r);
        int64_t ow = r % q.o[2], oh = (r / q.o[2]) % q.o[1], od = r / (q.o[2] * q.o[1]);
        float best;
        int64_t at = window_argmax(q, x + pool_base(q, nc, isp), od, oh, ow, &best);
        y[o] = at < 0 ? 0.0f : best;
        if (idx) {
            int64_t v = 0;
            if (at >= 0 && col_major) {
                int64_t iw = at % q.in[2], ih = (at / q.in[2]) % q.in[1],
                        id = at / (q.in[2] * q.in[1]);
                v = nc * isp + id + ih * q.in[0] + iw * q.in[0] * q.in[1];
            } else if (at >= 0) {
                v = nc * isp + at;
            }
            idx[o] = v;
        }
    }
}

int otk_maxpool_f32(void *stream, const otk_geom *q, const float *x, float *y, int64_t *idx,
                    int col_major)
{
    int64_t n = q->N * q->C * q->o[0] * q->o[1] * q->o[2];
    OTK_LAUNCH(k_maxpool_f32, n, stream, *q, x, y, idx, col_major, n);
    return otk_status();
}

/* the divisor of window (od, oh, ow), and its taps inside X */
__device__ __forceinline__ int64_t avg_window(const otk_geom &q, int include_pad, int64_t od,
                                              int64_t oh, int64_t ow, int64_t *t0, int64_t *cnt)
{
    int64_t o3[3] = { od, oh, ow }, div = 1;
    for (int i = 0; i < 3; i++) {
        cnt[i] = taps_in(q, i, o3[i], 0, q.in[i], &t0[i]);
        if (include_pad) {
            int64_t unused;
            div *= taps_in(q, i, o3[i], -q.pb[i], q.in[i] + q.pe[i], &unused);
        } else {
            div *= cnt[i];
        }
    }
    return div;
}

__global__ void k_avgpool_f32(otk_geom q, int include_pad, const float *x, float *y, int64_t n)
{
    int64_t isp = q.in[0] * q.in[1] * q.in[2], osp = q.o[0] * q.o[1] * q.o[2];
    OTK_FOR(o, n)
    {
        int64_t nc, r;
        pool_decode(q, o, osp, &nc, &r);
        int64_t ow = r % q.o[2], oh = (r / q.o[2]) % q.o[1], od = r / (q.o[2] * q.o[1]);
        int64_t t0[3], cnt[3], base = pool_base(q, nc, isp), cs = pool_cs(q);
        int64_t div = avg_window(q, include_pad, od, oh, ow, t0, cnt);
        double sum = 0;
        for (int64_t kd = t0[0]; kd < t0[0] + cnt[0]; kd++) {
            int64_t id = od * q.s[0] - q.pb[0] + kd * q.d[0];
            for (int64_t kh = t0[1]; kh < t0[1] + cnt[1]; kh++) {
                int64_t ih = oh * q.s[1] - q.pb[1] + kh * q.d[1];
                int64_t row = (id * q.in[1] + ih) * q.in[2];
                for (int64_t kw = t0[2]; kw < t0[2] + cnt[2]; kw++)
                    sum += (double)x[base + (row + ow * q.s[2] - q.pb[2] + kw * q.d[2]) * cs];
            }
        }
        y[o] = (float)(div > 0 ? sum / (double)div : 0.0);
    }
}

int otk_avgpool_f32(void *stream, const otk_geom *q, int include_pad, const float *x, float *y)
{
    int64_t n = q->N * q->C * q->o[0] * q->o[1] * q->o[2];
    OTK_LAUNCH(k_avgpool_f32, n, stream, *q, include_pad, x, y, n);
    return otk_status();
}

/* The outputs o in [lo, hi) along dim whose window covers input position p:
   o*s - pb + t*d == p for some tap t. */
__device__ __forceinline__ void covering(const otk_geom &q, int dim, int64_t p, int64_t *lo,
                                         int64_t *hi)
{
    /* o*s <= p + pb and o*s >= p + pb - (k-1)*d */
    int64_t a = p + q.pb[dim] - (q.k[dim] - 1) * q.d[dim], b = p + q.pb[dim];
    int64_t s = q.s[dim];
    int64_t l = a <= 0 ? 0 : (a + s - 1) / s;
    int64_t h = b < 0 ? -1 : b / s;
    *lo = l;
    *hi = h + 1 > q.o[dim] ? q.o[dim] : h + 1;
}

/* whether input position p is a tap of output o along dim */
__device__ __forceinline__ bool is_tap(const otk_geom &q, int dim, int64_t o, int64_t p)
{
    int64_t r = p - (o * q.s[dim] - q.pb[dim]);
    return r >= 0 && r % q.d[dim] == 0 && r / q.d[dim] < q.k[dim];
}

__global__ void k_maxpool_grad_f32(otk_geom q, const float *dy, const float *x, float *dx,
                                   int64_t n)
{
    int64_t isp = q.in[0] * q.in[1] * q.in[2], osp = q.o[0] * q.o[1] * q.o[2];
    OTK_FOR(i, n)
    {
        int64_t nc, r, cs = pool_cs(q);
        pool_decode(q, i, isp, &nc, &r);
        int64_t iw = r % q.in[2], ih = (r / q.in[2]) % q.in[1], id = r / (q.in[2] * q.in[1]);
        int64_t lo[3], hi[3], p3[3] = { id, ih, iw };
        for (int k = 0; k < 3; k++)
            covering(q, k, p3[k], &lo[k], &hi[k]);
        const float *xp = x + pool_base(q, nc, isp);
        const float *dyp = dy + pool_base(q, nc, osp);
        float acc = 0.0f;
        for (int64_t od = lo[0]; od < hi[0]; od++) {
            if (!is_tap(q, 0, od, id))
                continue;
            for (int64_t oh = lo[1]; oh < hi[1]; oh++) {
                if (!is_tap(q, 1, oh, ih))
                    continue;
                for (int64_t ow = lo[2]; ow < hi[2]; ow++) {
                    if (!is_tap(q, 2, ow, iw))
                        continue;
                    float best;
                    if (window_argmax(q, xp, od, oh, ow, &best) == r)
                        acc += dyp[((od * q.o[1] + oh) * q.o[2] + ow) * cs];
                }
            }
        }
        dx[i] = acc;
    }
}

int otk_maxpool_grad_f32(void *stream, const otk_geom *q, const float *dy, const float *x,
                         float *dx)
{
    int64_t n = q->N * q->C * q->in[0] * q->in[1] * q->in[2];
    OTK_LAUNCH(k_maxpool_grad_f32, n, stream, *q, dy, x, dx, n);
    return otk_status();
}

__global__ void k_avgpool_grad_f32(otk_geom q, int include_pad, const float *dy, float *dx,
                                   int64_t n)
{
    int64_t isp = q.in[0] * q.in[1] * q.in[2], osp = q.o[0] * q.o[1] * q.o[2];
    OTK_FOR(i, n)
    {
        int64_t nc, r, cs = pool_cs(q);
        pool_decode(q, i, isp, &nc, &r);
        int64_t iw = r % q.in[2], ih = (r / q.in[2]) % q.in[1], id = r / (q.in[2] * q.in[1]);
        int64_t lo[3], hi[3], p3[3] = { id, ih, iw };
        for (int k = 0; k < 3; k++)
            covering(q, k, p3[k], &lo[k], &hi[k]);
        const float *dyp = dy + pool_base(q, nc, osp);
        float acc = 0.0f; /* rounded after each window, as the plain kernel's */
        for (int64_t od = lo[0]; od < hi[0]; od++) {
            if (!is_tap(q, 0, od, id))
                continue;
            for (int64_t oh = lo[1]; oh < hi[1]; oh++) {
                if (!is_tap(q, 1, oh, ih))
                    continue;
                for (int64_t ow = lo[2]; ow < hi[2]; ow++) {
                    if (!is_tap(q, 2, ow, iw))
                        continue;
                    int64_t t0[3], cnt[3];
                    int64_t div = avg_window(q, include_pad, od, oh, ow, t0, cnt);
                    if (div > 0)
                        acc = (float)((double)acc +
                                      (double)dyp[((od * q.o[1] + oh) * q.o[2] + ow) * cs] /
                                          (double)div);
                }
            }
        }
        dx[i] = acc;
    }
}

int otk_avgpool_grad_f32(void *stream, const otk_geom *q, int include_pad, const float *dy,
                         float *dx)
{
    int64_t n = q->N * q->C * q->in[0] * q->in[1] * q->in[2];
    OTK_LAUNCH(k_avgpool_grad_f32, n, stream, *q, include_pad, dy, dx, n);
    return otk_status();
}

/* ------------------------------------------------------------ global pools */

/* the plane of (n, c) = nc and the stride of its positions, channels-last
   (nhwc) or not */
__device__ __forceinline__ int64_t gp_base(int64_t nc, int64_t C, int64_t sp, int nhwc)
{
    return nhwc ? (nc / C) * sp * C + nc % C : nc * sp;
}

/* one thread per (n, c) plane: mean (NaN for an empty plane) or max */
__global__ void k_global_pool_f32(int is_max, const float *x, float *y, int64_t NC, int64_t sp,
                                  int64_t C, int nhwc)
{
    OTK_FOR(nc, NC)
    {
        const float *xp = x + gp_base(nc, C, sp, nhwc);
        int64_t cs = nhwc ? C : 1;
        double acc = is_max ? -HUGE_VAL : 0.0;
        for (int64_t i = 0; i < sp; i++) {
            double v = (double)xp[i * cs];
            if (is_max)
                acc = v > acc ? v : acc;
            else
                acc += v;
        }
        if (!is_max)
            acc = sp > 0 ? acc / (double)sp : (double)NAN;
        y[nc] = (float)acc;
    }
}

int otk_global_pool_f32(void *stream, int is_max, const float *x, float *y, int64_t NC,
                        int64_t sp, int64_t C, int nhwc)
{
    OTK_LAUNCH(k_global_pool_f32, NC, stream, is_max, x, y, NC, sp, C, nhwc);
    return otk_status();
}

__global__ void k_globalavgpool_grad_f32(const float *dy, float *dx, int64_t sp, int64_t C,
                                         int nhwc, int64_t n)
{
    OTK_FOR(i, n)
    dx[i] = (float)((double)dy[nhwc ? (i / (sp * C)) * C + i % C : i / sp] / (double)sp);
}

/* one thread per plane: dY at the plane's first maximum, 0 elsewhere */
__global__ void k_globalmaxpool_grad_f32(const float *dy, const float *x, float *dx, int64_t NC,
                                         int64_t sp, int64_t C, int nhwc)
{
    OTK_FOR(nc, NC)
    {
        int64_t base = gp_base(nc, C, sp, nhwc), cs = nhwc ? C : 1;
        const float *xp = x + base;
        float *dp = dx + base;
        double best = -HUGE_VAL;
        int64_t arg = 0;
        for (int64_t i = 0; i < sp; i++) {
            double v = (double)xp[i * cs];
            dp[i * cs] = 0.0f;
            if (v > best) {
                best = v;
                arg = i;
            }
        }
        if (sp > 0)
            dp[arg * cs] = dy[nc];
    }
}

int otk_global_pool_grad_f32(void *stream, int is_max, const float *dy, const float *x, float *dx,
                             int64_t NC, int64_t sp, int64_t C, int nhwc)
{
    if (is_max)
        OTK_LAUNCH(k_globalmaxpool_grad_f32, NC, stream, dy, x, dx, NC, sp, C, nhwc);
    else if (sp > 0)
        OTK_LAUNCH(k_globalavgpool_grad_f32, NC * sp, stream, dy, dx, sp, C, nhwc, NC * sp);
    return otk_status();
}
