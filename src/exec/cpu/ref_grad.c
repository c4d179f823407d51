/*
 * ref_grad.c: plain C kernels of the windowed and normalising backward ops
 * (src/ops/grad_ops.c): ConvGradData, ConvGradFilter, MaxPoolGrad,
 * AveragePoolGrad, GlobalAveragePoolGrad, GlobalMaxPoolGrad, BatchNormGrad,
 * and the private forward op BatchNormTrain.
 *
 * They reuse the forward kernels' window geometry (ot_ref_window): the
 * backward op carries the forward node's attributes, X's shape is the
 * gradient's and Y's is dY's. Conv gradients run on float and double
 * (accumulating dW in double); the pools and BatchNorm on every float type,
 * accumulating in double. Reductions write their outputs once; scatters
 * (ConvGradData, the pools) clear dX first, then add into it.
 *
 * Not here: spatial rank above 3, integer pools.
 *
 * References: the forward ops' ONNX pages; the BatchNorm backward formula as
 * in Ioffe & Szegedy 2015, section 3, simplified to
 * dX = scale * inv_std / M * (M dY - sum dY - xhat sum dY xhat).
 */
#include "dist/dist.h"
#include "exec/cpu/ref_impl.h"

static int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }
static int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

/* ------------------------------------------------------------ Conv grads */

/* dX[n, g*Cg + c, at(o, t)] += W[m, c, t] * dY[n, m, o] for m in group g */
#define CONV_DATA_IMPL(NAME, T)                                                                 \
    static void NAME(const ot_ref_geom *q, const T *dy, const T *w, T *dx)                     \
    {                                                                                           \
        int64_t isp = q->in[0] * q->in[1] * q->in[2], osp = q->o[0] * q->o[1] * q->o[2];        \
        int64_t ksp = q->k[0] * q->k[1] * q->k[2], Cg = q->C / q->G, Mg = q->M / q->G;          \
        memset(dx, 0, sizeof(T) * (size_t)(q->N * q->C * isp));                                 \
        for (int64_t nn = 0; nn < q->N; nn++)                                                   \
            for (int64_t m = 0; m < q->M; m++) {                                                \
                int64_t grp = m / Mg;                                                           \
                const T *yp = dy + (nn * q->M + m) * osp;                                       \
                for (int64_t c = 0; c < Cg; c++) {                                              \
                    T *xc = dx + (nn * q->C + grp * Cg + c) * isp;                              \
                    const T *wc = w + (m * Cg + c) * ksp;                                       \
                    for (int64_t kd = 0; kd < q->k[0]; kd++)                                    \
                        for (int64_t kh = 0; kh < q->k[1]; kh++)                                \
                            for (int64_t kw = 0; kw < q->k[2]; kw++) {                          \
                                T wv = wc[(kd * q->k[1] + kh) * q->k[2] + kw];                  \
                                int64_t off = kw * q->d[2] - q->pb[2];                          \
                                int64_t lo = ceil_div(-off, q->s[2]);                           \
                                int64_t hi = floor_div(q->in[2] - 1 - off, q->s[2]) + 1;        \
                                lo = lo < 0 ? 0 : lo;                                           \
                                hi = hi > q->o[2] ? q->o[2] : hi;                               \
                                for (int64_t od = 0; od < q->o[0]; od++) {                      \
                                    int64_t id = od * q->s[0] - q->pb[0] + kd * q->d[0];        \
                                    if (id < 0 || id >= q->in[0])                               \
                                        continue;                                               \
                                    for (int64_t oh = 0; oh < q->o[1]; oh++) {                  \
                                        int64_t ih = oh * q->s[1] - q->pb[1] + kh * q->d[1];    \
                                        if (ih < 0 || ih >= q->in[1])                           \
                                            continue;                                           \
                                        T *xr = xc + (id * q->in[1] + ih) * q->in[2];           \
                                        const T *yr = yp + (od * q->o[1] + oh) * q->o[2];       \
                                        for (int64_t ow = lo; ow < hi; ow++)                    \
                                            xr[ow * q->s[2] + off] += wv * yr[ow];              \
                                    }                                                           \
                                }                                                               \
                            }                                                                   \
                }                                                                               \
            }                                                                                   \
    }

/* dW[m, c, t] = sum_{n, o} dY[n, m, o] * X[n, g*Cg + c, at(o, t)];  dB[m] = sum_{n, o} dY */
#define CONV_FILTER_IMPL(NAME, T)                                                               \
    static void NAME(const ot_ref_geom *q, const T *dy, const T *x, T *dw, T *db)              \
    {                                                                                           \
        int64_t isp = q->in[0] * q->in[1] * q->in[2], osp = q->o[0] * q->o[1] * q->o[2];        \
        int64_t ksp = q->k[0] * q->k[1] * q->k[2], Cg = q->C / q->G, Mg = q->M / q->G;          \
        for (int64_t m = 0; m < q->M && dw; m++) {                                              \
            int64_t grp = m / Mg;                                                               \
            for (int64_t c = 0; c < Cg; c++)                                                    \
                for (int64_t kd = 0; kd < q->k[0]; kd++)                                        \
                    for (int64_t kh = 0; kh < q->k[1]; kh++)                                    \
                        for (int64_t kw = 0; kw < q->k[2]; kw++) {                              \
                            int64_t off = kw * q->d[2] - q->pb[2];                              \
                            int64_t lo = ceil_div(-off, q->s[2]);                               \
                            int64_t hi = floor_div(q->in[2] - 1 - off, q->s[2]) + 1;            \
                            lo = lo < 0 ? 0 : lo;                                               \
                            hi = hi > q->o[2] ? q->o[2] : hi;                                   \
                            double acc = 0;                                                     \
                            for (int64_t nn = 0; nn < q->N; nn++) {                             \
                                const T *xc = x + (nn * q->C + grp * Cg + c) * isp;             \
                                const T *yp = dy + (nn * q->M + m) * osp;                       \
                                for (int64_t od = 0; od < q->o[0]; od++) {                      \
                                    int64_t id = od * q->s[0] - q->pb[0] + kd * q->d[0];        \
                                    if (id < 0 || id >= q->in[0])                               \
                                        continue;                                               \
                                    for (int64_t oh = 0; oh < q->o[1]; oh++) {                  \
                                        int64_t ih = oh * q->s[1] - q->pb[1] + kh * q->d[1];    \
                                        if (ih < 0 || ih >= q->in[1])                           \
                                            continue;                                           \
                                        const T *xr = xc + (id * q->in[1] + ih) * q->in[2];     \
                                        const T *yr = yp + (od * q->o[1] + oh) * q->o[2];       \
                                        for (int64_t ow = lo; ow < hi; ow++)                    \
                                            acc += (double)yr[ow] *                     \
                                                   (double)xr[ow * q->s[2] + off];      \
                                    }                                                           \
                                }                                                               \
                            }                                                                   \
                            dw[(m * Cg + c) * ksp + (kd * q->k[1] + kh) * q->k[2] + kw] = (T)acc; \
                        }                                                                       \
        }                                                                                       \
        for (int64_t m = 0; m < q->M && db; m++) {                                              \
            double acc = 0;                                                                     \
            for (int64_t nn = 0; nn < q->N; nn++)                                               \
                for (int64_t i = 0; i < osp; i++)                                               \
                    acc += (double)dy[(nn * q->M + m) * osp + i];                               \
            db[m] = (T)acc;                                                                     \
        }                                                                                       \
    }

CONV_DATA_IMPL(conv_data_f32, float)
CONV_DATA_IMPL(conv_data_f64, double)
CONV_FILTER_IMPL(conv_filter_f32, float)
CONV_FILTER_IMPL(conv_filter_f64, double)

/* The shared checks: dY (N, M, O...) and X-shaped `x` (N, C, D...) of one
   float/double dtype, a W-shaped `w` (M, C/G, K...) consistent with group. */
static bool conv_grad_shapes(const ot_node *n, const ot_tensor *dy, const ot_tensor *x,
                             const int64_t *wdims, int wrank, const char **why)
{
    int64_t G = ot_node_attr_int(n, "group", 1);
    if (!dy || !x || (dy->dtype != OT_DTYPE_FLOAT && dy->dtype != OT_DTYPE_DOUBLE) ||
        x->dtype != dy->dtype) {
        *why = "ConvGrad: dY and X must be float or double, of one dtype";
        return false;
    }
    if (x->ndim < 3 || x->ndim > 5 || dy->ndim != x->ndim || wrank != x->ndim) {
        *why = "ConvGrad: only 1-D, 2-D and 3-D convolutions are supported";
        return false;
    }
    if (G < 1 || x->dims[1] != wdims[1] * G || wdims[0] % G != 0 || dy->dims[1] != wdims[0] ||
        dy->dims[0] != x->dims[0]) {
        *why = "ConvGrad: shapes of dY, X and W disagree";
        return false;
    }
    return true;
}

bool ot_ref_conv_grad_data_supports(const ot_graph *g, const ot_node *n,
                                    const ot_tensor *const *in, const ot_tensor *const *out,
                                    const char **why)
{
    (void)g;
    const ot_tensor *dy = ot_ref_in(n, in, 0), *w = ot_ref_in(n, in, 1);
    const ot_tensor *dx = ot_ref_cout(n, out, 0);
    if (!w || !dx || (dy && w->dtype != dy->dtype)) {
        *why = "ConvGradData: dY, W and dX are required, of one dtype";
        return false;
    }
    return conv_grad_shapes(n, dy, dx, w->dims, w->ndim, why);
}

/* dY: (N, M, O...)  W: (M, C/G, K...)  x_shape  ->  dX: (N, C, D...) */
ot_status ot_ref_conv_grad_data(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                                ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_conv_grad_data_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *dy = in[0], *w = in[1];
    ot_tensor *dx = out[0];
    ot_ref_geom q;
    ot_ref_window(n, dx, w->dims + 2, dy, &q);
    q.M = w->dims[0];
    q.G = ot_node_attr_int(n, "group", 1);
    if (ot_tensor_numel(dx) == 0)
        return OT_OK;
    if (dx->dtype == OT_DTYPE_FLOAT)
        conv_data_f32(&q, dy->data, w->data, dx->data);
    else
        conv_data_f64(&q, dy->data, w->data, dx->data);
    return OT_OK;
}

bool ot_ref_conv_grad_filter_supports(const ot_graph *g, const ot_node *n,
                                      const ot_tensor *const *in, const ot_tensor *const *out,
                                      const char **why)
{
    (void)g;
    const ot_tensor *dy = ot_ref_in(n, in, 0), *x = ot_ref_in(n, in, 1);
    const ot_tensor *dw = ot_ref_cout(n, out, 0), *db = ot_ref_cout(n, out, 1);
    size_t n_ks = 0;
    const int64_t *ks = ot_node_attr_ints(n, "kernel_shape", &n_ks);
    if (!dy || !x || !ks || n_ks + 2 != (size_t)x->ndim || n_ks > 3) {
        *why = "ConvGradFilter: dY, X and kernel_shape of X's spatial rank are required";
        return false;
    }
    int64_t wd[OT_MAX_DIMS];
    wd[0] = dy->dims[1];
    wd[1] = x->dims[1] / (ot_node_attr_int(n, "group", 1) > 0 ? ot_node_attr_int(n, "group", 1)
                                                               : 1);
    for (size_t i = 0; i < n_ks; i++)
        wd[2 + i] = ks[i];
    if ((dw && (dw->dtype != x->dtype || dw->ndim != x->ndim)) ||
        (db && (db->dtype != x->dtype || ot_tensor_numel(db) != dy->dims[1]))) {
        *why = "ConvGradFilter: dW must be shaped like W and dB (M), of X's dtype";
        return false;
    }
    for (int i = 0; dw && i < dw->ndim; i++)
        if (dw->dims[i] != wd[i]) {
            *why = "ConvGradFilter: dW must be shaped like W";
            return false;
        }
    return conv_grad_shapes(n, dy, x, wd, x->ndim, why);
}

/* dY: (N, M, O...)  X: (N, C, D...)  ->  dW: (M, C/G, K...) [, dB: (M)] */
ot_status ot_ref_conv_grad_filter(const ot_graph *g, const ot_node *n,
                                  const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_conv_grad_filter_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *dy = in[0], *x = in[1];
    ot_tensor *dw = ot_ref_out(n, out, 0), *db = ot_ref_out(n, out, 1);
    ot_ref_geom q;
    ot_ref_window(n, x, ot_node_attr_ints(n, "kernel_shape", &(size_t){ 0 }), dy, &q);
    q.M = dy->dims[1];
    q.G = ot_node_attr_int(n, "group", 1);
    if (x->dtype == OT_DTYPE_FLOAT)
        conv_filter_f32(&q, dy->data, x->data, dw ? dw->data : NULL, db ? db->data : NULL);
    else
        conv_filter_f64(&q, dy->data, x->data, dw ? dw->data : NULL, db ? db->data : NULL);
    return OT_OK;
}

/* ------------------------------------------------------------ pool grads */

/* dY and dX of one float dtype, X-shaped dX, rank 3..5, kernel_shape. */
static bool pool_grad_supports(const ot_node *n, const ot_tensor *dy, const ot_tensor *xlike,
                               const ot_tensor *dx, const char **why)
{
    size_t n_ks = 0;
    const int64_t *ks = ot_node_attr_ints(n, "kernel_shape", &n_ks);
    if (!dy || !xlike || !dx || !ot_ref_is_float(dy->dtype) || dx->dtype != dy->dtype) {
        *why = "PoolGrad: dY and dX must be float tensors of one dtype";
        return false;
    }
    if (dx->ndim < 3 || dx->ndim > 5 || dy->ndim != dx->ndim || !ks ||
        n_ks + 2 != (size_t)dx->ndim) {
        *why = "PoolGrad: only 1-D, 2-D and 3-D pooling with kernel_shape is supported";
        return false;
    }
    if (dy->dims[0] != dx->dims[0] || dy->dims[1] != dx->dims[1] ||
        ot_tensor_numel(xlike) != ot_tensor_numel(dx)) {
        *why = "PoolGrad: dY's batch and channels differ from X's";
        return false;
    }
    return true;
}

bool ot_ref_maxpool_grad_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                                  const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *x = ot_ref_in(n, in, 1);
    if (x && !ot_ref_is_float(x->dtype)) {
        *why = "MaxPoolGrad: X must be a float tensor";
        return false;
    }
    return pool_grad_supports(n, ot_ref_in(n, in, 0), x, ot_ref_cout(n, out, 0), why);
}

/* dY: (N, C, O...)  X: (N, C, D...)  ->  dX like X: each dY goes to its
   window's first maximum (padding never wins), as ot_ref_maxpool picks it. */
ot_status ot_ref_maxpool_grad(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                              ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_maxpool_grad_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *dy = in[0], *x = in[1];
    ot_tensor *dx = out[0];
    ot_ref_geom q;
    ot_ref_window(n, x, ot_node_attr_ints(n, "kernel_shape", &(size_t){ 0 }), dy, &q);
    int64_t NC = x->dims[0] * x->dims[1];
    int64_t isp = q.in[0] * q.in[1] * q.in[2], osp = q.o[0] * q.o[1] * q.o[2];
    if (x->dtype == OT_DTYPE_FLOAT && dy->dtype == OT_DTYPE_FLOAT && dx->dtype == OT_DTYPE_FLOAT) {
        /* float32: the same routing (first maximum of each window), one
           (n, c) plane per iteration so that planes run in parallel */
        const float *xs = x->data, *dys = dy->data;
        float *dxs = dx->data;
#pragma omp parallel for schedule(static)
        for (int64_t nc = 0; nc < NC; nc++) {
            const float *xp = xs + nc * isp, *dyp = dys + nc * osp;
            float *dxp = dxs + nc * isp;
            memset(dxp, 0, sizeof *dxp * (size_t)isp);
            for (int64_t od = 0; od < q.o[0]; od++)
                for (int64_t oh = 0; oh < q.o[1]; oh++)
                    for (int64_t ow = 0; ow < q.o[2]; ow++) {
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
                                const float *row = xp + (id * q.in[1] + ih) * q.in[2];
                                for (int64_t kw = 0; kw < q.k[2]; kw++) {
                                    int64_t iw = ow * q.s[2] - q.pb[2] + kw * q.d[2];
                                    if (iw < 0 || iw >= q.in[2])
                                        continue;
                                    if (best_at < 0 || row[iw] > best) {
                                        best = row[iw];
                                        best_at = (id * q.in[1] + ih) * q.in[2] + iw;
                                    }
                                }
                            }
                        }
                        if (best_at >= 0)
                            dxp[best_at] += dyp[(od * q.o[1] + oh) * q.o[2] + ow];
                    }
        }
        return OT_OK;
    }
    for (int64_t i = 0; i < NC * isp; i++)
        ot_ref_st(dx->dtype, dx->data, i, 0.0);
    for (int64_t nc = 0; nc < NC; nc++)
        for (int64_t od = 0; od < q.o[0]; od++)
            for (int64_t oh = 0; oh < q.o[1]; oh++)
                for (int64_t ow = 0; ow < q.o[2]; ow++) {
                    double best = -HUGE_VAL;
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
                                int64_t at = nc * isp + (id * q.in[1] + ih) * q.in[2] + iw;
                                double v = ot_ref_ld(x->dtype, x->data, at);
                                if (best_at < 0 || v > best) {
                                    best = v;
                                    best_at = at;
                                }
                            }
                        }
                    }
                    if (best_at < 0)
                        continue;
                    int64_t o = nc * osp + (od * q.o[1] + oh) * q.o[2] + ow;
                    ot_ref_st(dx->dtype, dx->data, best_at,
                              ot_ref_ld(dx->dtype, dx->data, best_at) +
                                  ot_ref_ld(dy->dtype, dy->data, o));
                }
    return OT_OK;
}

bool ot_ref_avgpool_grad_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                                  const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *dx = ot_ref_cout(n, out, 0);
    return pool_grad_supports(n, ot_ref_in(n, in, 0), dx, dx, why);
}

/* The taps t in [0, k) whose position o*s - pb + t*d lies in [lo, hi): the
   first in *t0, the count returned (as ref_pool.c counts them). */
static int64_t taps_in(const ot_ref_geom *q, int dim, int64_t o, int64_t lo, int64_t hi,
                       int64_t *t0)
{
    int64_t start = o * q->s[dim] - q->pb[dim], first = -1, count = 0;
    for (int64_t t = 0; t < q->k[dim]; t++) {
        int64_t pos = start + t * q->d[dim];
        if (pos >= lo && pos < hi) {
            if (first < 0)
                first = t;
            count++;
        }
    }
    *t0 = first < 0 ? 0 : first;
    return count;
}

/* dY: (N, C, O...)  x_shape  ->  dX: (N, C, D...): each window's dY / divisor
   added to the positions of X it covers; the divisor as the forward's. */
ot_status ot_ref_avgpool_grad(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                              ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_avgpool_grad_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *dy = in[0];
    ot_tensor *dx = out[0];
    ot_dtype dt = dx->dtype;
    ot_ref_geom q;
    ot_ref_window(n, dx, ot_node_attr_ints(n, "kernel_shape", &(size_t){ 0 }), dy, &q);
    bool include_pad = ot_node_attr_int(n, "count_include_pad", 0) != 0;
    int64_t NC = dx->dims[0] * dx->dims[1];
    int64_t isp = q.in[0] * q.in[1] * q.in[2], osp = q.o[0] * q.o[1] * q.o[2];
    for (int64_t i = 0; i < NC * isp; i++)
        ot_ref_st(dt, dx->data, i, 0.0);
    for (int64_t od = 0; od < q.o[0]; od++)
        for (int64_t oh = 0; oh < q.o[1]; oh++)
            for (int64_t ow = 0; ow < q.o[2]; ow++) {
                int64_t o3[3] = { od, oh, ow }, t0[3], cnt[3], div = 1;
                for (int i = 0; i < 3; i++) {
                    cnt[i] = taps_in(&q, i, o3[i], 0, q.in[i], &t0[i]);
                    if (include_pad) {
                        int64_t unused;
                        div *= taps_in(&q, i, o3[i], -q.pb[i], q.in[i] + q.pe[i], &unused);
                    } else {
                        div *= cnt[i];
                    }
                }
                if (div <= 0)
                    continue;
                for (int64_t nc = 0; nc < NC; nc++) {
                    int64_t o = nc * osp + (od * q.o[1] + oh) * q.o[2] + ow;
                    double gv = ot_ref_ld(dy->dtype, dy->data, o) / (double)div;
                    for (int64_t kd = t0[0]; kd < t0[0] + cnt[0]; kd++) {
                        int64_t id = od * q.s[0] - q.pb[0] + kd * q.d[0];
                        for (int64_t kh = t0[1]; kh < t0[1] + cnt[1]; kh++) {
                            int64_t ih = oh * q.s[1] - q.pb[1] + kh * q.d[1];
                            int64_t row = nc * isp + (id * q.in[1] + ih) * q.in[2];
                            for (int64_t kw = t0[2]; kw < t0[2] + cnt[2]; kw++) {
                                int64_t at = row + ow * q.s[2] - q.pb[2] + kw * q.d[2];
                                ot_ref_st(dt, dx->data, at, ot_ref_ld(dt, dx->data, at) + gv);
                            }
                        }
                    }
                }
            }
    return OT_OK;
}

/* dY: (N, C, 1...) and dX: (N, C, D...) of one float dtype */
static bool global_grad_supports(const ot_node *n, const ot_tensor *const *in,
                                 const ot_tensor *const *out, const char **why)
{
    const ot_tensor *dy = ot_ref_in(n, in, 0), *dx = ot_ref_cout(n, out, 0);
    if (!dy || !dx || !ot_ref_is_float(dy->dtype) || dx->dtype != dy->dtype || dx->ndim < 2 ||
        ot_tensor_numel(dy) != dx->dims[0] * dx->dims[1]) {
        *why = "GlobalPoolGrad: dY must be (N, C, 1...) and dX (N, C, ...), float";
        return false;
    }
    return true;
}

bool ot_ref_globalavgpool_grad_supports(const ot_graph *g, const ot_node *n,
                                        const ot_tensor *const *in, const ot_tensor *const *out,
                                        const char **why)
{
    (void)g;
    return global_grad_supports(n, in, out, why);
}

/* dX[n, c, i] = dY[n, c] / (spatial size) */
ot_status ot_ref_globalavgpool_grad(const ot_graph *g, const ot_node *n,
                                    const ot_tensor *const *in, ot_tensor *const *out,
                                    ot_err *err)
{
    const char *why = NULL;
    if (!global_grad_supports(n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    (void)g;
    const ot_tensor *dy = in[0];
    ot_tensor *dx = out[0];
    int64_t NC = dx->dims[0] * dx->dims[1], sp = ot_ref_prod(dx, 2, dx->ndim);
    for (int64_t nc = 0; nc < NC; nc++) {
        double v = ot_ref_ld(dy->dtype, dy->data, nc) / (double)(sp > 0 ? sp : 1);
        for (int64_t i = 0; i < sp; i++)
            ot_ref_st(dx->dtype, dx->data, nc * sp + i, v);
    }
    return OT_OK;
}

bool ot_ref_globalmaxpool_grad_supports(const ot_graph *g, const ot_node *n,
                                        const ot_tensor *const *in, const ot_tensor *const *out,
                                        const char **why)
{
    (void)g;
    const ot_tensor *x = ot_ref_in(n, in, 1), *dx = ot_ref_cout(n, out, 0);
    if (!x || !dx || x->dtype != dx->dtype || x->bytes != dx->bytes) {
        *why = "GlobalMaxPoolGrad: X must be shaped like dX";
        return false;
    }
    return global_grad_supports(n, in, out, why);
}

/* dX[n, c, i] = dY[n, c] at the first maximum of X[n, c, :], else 0 */
ot_status ot_ref_globalmaxpool_grad(const ot_graph *g, const ot_node *n,
                                    const ot_tensor *const *in, ot_tensor *const *out,
                                    ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_globalmaxpool_grad_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *dy = in[0], *x = in[1];
    ot_tensor *dx = out[0];
    int64_t NC = dx->dims[0] * dx->dims[1], sp = ot_ref_prod(dx, 2, dx->ndim);
    for (int64_t nc = 0; nc < NC; nc++) {
        double best = -HUGE_VAL;
        int64_t arg = 0;
        for (int64_t i = 0; i < sp; i++) {
            double v = ot_ref_ld(x->dtype, x->data, nc * sp + i);
            ot_ref_st(dx->dtype, dx->data, nc * sp + i, 0.0);
            if (v > best) {
                best = v;
                arg = i;
            }
        }
        if (sp > 0)
            ot_ref_st(dx->dtype, dx->data, nc * sp + arg, ot_ref_ld(dy->dtype, dy->data, nc));
    }
    return OT_OK;
}

/* ------------------------------------------------------------ BatchNorm */

/* X: (N, C, ...) float; inputs 1.. `n_stats` float tensors of (C). */
static bool bn_shapes(const ot_node *n, const ot_tensor *const *in, int x_at, int first,
                      int last, const char **why)
{
    const ot_tensor *x = ot_ref_in(n, in, x_at);
    if (!x || x->ndim < 2 || !ot_ref_is_float(x->dtype)) {
        *why = "BatchNorm: X must be a float tensor (N, C, ...)";
        return false;
    }
    for (int i = first; i <= last; i++) {
        const ot_tensor *p = ot_ref_in(n, in, i);
        if (!p || !ot_ref_is_float(p->dtype) || ot_tensor_numel(p) != x->dims[1]) {
            *why = "BatchNorm: per-channel inputs must be float tensors of (C)";
            return false;
        }
    }
    return true;
}

bool ot_ref_batchnorm_grad_supports(const ot_graph *g, const ot_node *n,
                                    const ot_tensor *const *in, const ot_tensor *const *out,
                                    const char **why)
{
    (void)g;
    const ot_tensor *dy = ot_ref_in(n, in, 0), *x = ot_ref_in(n, in, 1);
    if (!bn_shapes(n, in, 1, 2, 4, why))
        return false;
    if (!dy || dy->dtype != x->dtype || dy->bytes != x->bytes) {
        *why = "BatchNormGrad: dY must be shaped like X";
        return false;
    }
    const ot_tensor *dx = ot_ref_cout(n, out, 0);
    if (dx && (dx->dtype != x->dtype || dx->bytes != x->bytes)) {
        *why = "BatchNormGrad: dX must be shaped like X";
        return false;
    }
    for (int i = 1; i < 3; i++) {
        const ot_tensor *p = ot_ref_cout(n, out, i);
        if (p && (!ot_ref_is_float(p->dtype) || ot_tensor_numel(p) != x->dims[1])) {
            *why = "BatchNormGrad: dScale and dB must be float tensors of (C)";
            return false;
        }
    }
    return true;
}

/* ----------------------------------------------- synchronised BatchNorm */

/* The communicator a node with sync=1 reduces over; NULL: local statistics
   (no sync attribute, or one process). */
static ot_comm *bn_comm(const ot_node *n)
{
    if (!ot_node_attr_int(n, "sync", 0))
        return NULL;
    ot_comm *c = ot_dist_current();
    return c && c->size > 1 ? c : NULL;
}

/* The sum over the ranks of n per-channel sums: through NCCL's
   communicator on the host's stand-in queue (test-only,
   ONNXTRAIN_NCCL_HOST), else over the host communicator. */
static ot_status bn_reduce(ot_comm *cm, double *s, size_t n, ot_err *err)
{
    if (ot_comm_dev_on_host(cm))
        return ot_comm_dev_allreduce(cm, s, n, true, NULL, err);
    return ot_comm_allreduce_f64(cm, s, n, err);
}

/* BatchNormTrain over all ranks (float32): the batch is the union of the
   ranks' images, so mean and variance are the sums over the ranks divided
   by the images in all (two all-reduces: the sums and the count, then the
   squared deviations from the common mean). */
static ot_status bn_train_sync(ot_comm *cm, const ot_node *n, const ot_tensor *const *in,
                               ot_tensor *const *out, ot_err *err)
{
    const ot_tensor *x = in[0], *scale = in[1], *bias = in[2], *rmean = in[3], *rvar = in[4];
    ot_tensor *stat[5] = { NULL, ot_ref_out(n, out, 1), ot_ref_out(n, out, 2),
                           ot_ref_out(n, out, 3), ot_ref_out(n, out, 4) };
    double eps = ot_node_attr_float(n, "epsilon", 1e-5f);
    double momentum = ot_node_attr_float(n, "momentum", 0.9f);
    int64_t N = x->dims[0], C = x->dims[1], sp = ot_ref_prod(x, 2, x->ndim);
    if (cm->dstage_n < 2 * (size_t)C + 2)
        return ot_err_set(err, OT_ERR_INTERNAL, "BatchNormTrain sync: no room for %lld channels",
                          (long long)C);
    const float *xs = x->data;
    float *ys = out[0]->data;
    double *s = cm->dstage, *q = cm->dstage + C + 1;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < C; c++) {
        double s1 = 0;
        for (int64_t nn = 0; nn < N; nn++) {
            const float *xr = xs + (nn * C + c) * sp;
            for (int64_t i = 0; i < sp; i++)
                s1 += (double)xr[i];
        }
        s[c] = s1;
    }
    s[C] = (double)(N * sp);
    ot_status st = bn_reduce(cm, s, (size_t)C + 1, err);
    if (st != OT_OK)
        return st;
    double M = s[C];
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < C; c++) {
        double mu = M > 0 ? s[c] / M : 0.0, s2 = 0;
        for (int64_t nn = 0; nn < N; nn++) {
            const float *xr = xs + (nn * C + c) * sp;
            for (int64_t i = 0; i < sp; i++) {
                double d = (double)xr[i] - mu;
                s2 += d * d;
            }
        }
        q[c] = s2;
    }
    st = bn_reduce(cm, q, (size_t)C, err);
    if (st != OT_OK)
        return st;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < C; c++) {
        double mu = M > 0 ? s[c] / M : 0.0;
        double var = M > 0 ? q[c] / M : 0.0, unbiased = M > 1 ? q[c] / (M - 1) : var;
        double inv_std = 1.0 / sqrt(var + eps);
        double a = ot_tensor_get_f64(scale, c) * inv_std;
        double b = ot_tensor_get_f64(bias, c) - mu * a;
        for (int64_t nn = 0; nn < N; nn++) {
            const float *xr = xs + (nn * C + c) * sp;
            float *yr = ys + (nn * C + c) * sp;
            for (int64_t i = 0; i < sp; i++)
                yr[i] = (float)((double)xr[i] * a + b);
        }
        double val[5] = { 0, ot_tensor_get_f64(rmean, c) * momentum + mu * (1 - momentum),
                          ot_tensor_get_f64(rvar, c) * momentum + unbiased * (1 - momentum), mu,
                          inv_std };
        for (int i = 1; i < 5; i++)
            if (stat[i])
                ot_ref_st(stat[i]->dtype, stat[i]->data, c, val[i]);
    }
    return OT_OK;
}

/* BatchNormGrad after bn_train_sync (float32, training mode). Rank r's dY
   is the gradient of its own mean loss, 1/w of the whole batch's (w =
   cm->grad_weight, its share of the images); the sums over the batch are
   the ranks' sums weighted by w, and dX keeps rank r's scale:
   dX = k/M_r (M_r dY - SDY - xhat SDYX), k = scale inv_std, M_r its own
   count. dScale and dB stay this rank's sums (GradAllReduce weighs them). */
static ot_status bn_grad_sync(ot_comm *cm, const ot_node *n, const ot_tensor *const *in,
                              ot_tensor *const *out, ot_err *err)
{
    const ot_tensor *dy = in[0], *x = in[1], *scale = in[2], *mean = in[3], *istd = in[4];
    ot_tensor *dx = ot_ref_out(n, out, 0), *dscale = ot_ref_out(n, out, 1),
              *db = ot_ref_out(n, out, 2);
    int64_t N = x->dims[0], C = x->dims[1], sp = ot_ref_prod(x, 2, x->ndim);
    double M = (double)(N * sp), w = cm->grad_weight;
    if (cm->dstage_n < 2 * (size_t)C + 2)
        return ot_err_set(err, OT_ERR_INTERNAL, "BatchNormGrad sync: no room for %lld channels",
                          (long long)C);
    const float *xs = x->data, *dys = dy->data;
    double *s = cm->dstage;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < C; c++) {
        double mu = ot_tensor_get_f64(mean, c), inv_std = ot_tensor_get_f64(istd, c);
        double sdy = 0, sdyx = 0;
        for (int64_t nn = 0; nn < N; nn++) {
            const float *xr = xs + (nn * C + c) * sp, *dr = dys + (nn * C + c) * sp;
            for (int64_t i = 0; i < sp; i++) {
                sdy += (double)dr[i];
                sdyx += (double)dr[i] * ((double)xr[i] - mu);
            }
        }
        sdyx *= inv_std;
        if (db)
            ot_ref_st(db->dtype, db->data, c, sdy);
        if (dscale)
            ot_ref_st(dscale->dtype, dscale->data, c, sdyx);
        s[c] = w * sdy;
        s[C + c] = w * sdyx;
    }
    ot_status st = bn_reduce(cm, s, 2 * (size_t)C, err);
    if (st != OT_OK || !dx)
        return st;
    float *dxs = dx->data;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < C; c++) {
        double mu = ot_tensor_get_f64(mean, c), inv_std = ot_tensor_get_f64(istd, c);
        double k = ot_tensor_get_f64(scale, c) * inv_std, sdy = s[c], sdyx = s[C + c];
        float a = (float)k, b = 0.0f, c0 = 0.0f;
        if (M > 0) {
            b = (float)(-k / M * sdyx * inv_std);
            c0 = (float)(-k / M * sdy + k / M * sdyx * inv_std * mu);
        }
        for (int64_t nn = 0; nn < N; nn++) {
            const float *xr = xs + (nn * C + c) * sp, *dr = dys + (nn * C + c) * sp;
            float *o = dxs + (nn * C + c) * sp;
            for (int64_t i = 0; i < sp; i++)
                o[i] = a * dr[i] + b * xr[i] + c0;
        }
    }
    return OT_OK;
}

/* dY, X: (N, C, D...)  scale, mean, inv_std|var: (C)  ->  dX, dScale, dB.
   xhat = (x - mean) * inv_std; dB = sum dY; dScale = sum dY xhat; training:
   dX = scale inv_std / M (M dY - dB - xhat dScale); else dX = dY scale inv_std. */
ot_status ot_ref_batchnorm_grad(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                                ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_batchnorm_grad_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *dy = in[0], *x = in[1], *scale = in[2], *mean = in[3], *s4 = in[4];
    ot_tensor *dx = ot_ref_out(n, out, 0), *dscale = ot_ref_out(n, out, 1),
              *db = ot_ref_out(n, out, 2);
    bool training = ot_node_attr_int(n, "training_mode", 1) != 0;
    double eps = ot_node_attr_float(n, "epsilon", 1e-5f);
    int64_t N = x->dims[0], C = x->dims[1], sp = ot_ref_prod(x, 2, x->ndim);
    double M = (double)(N * sp);
    ot_dtype t = x->dtype;
    ot_comm *cm = training ? bn_comm(n) : NULL;
    if (cm && t == OT_DTYPE_FLOAT && dy->dtype == OT_DTYPE_FLOAT && (!dx || dx->dtype == t))
        return bn_grad_sync(cm, n, in, out, err);
    if (t == OT_DTYPE_FLOAT && dy->dtype == OT_DTYPE_FLOAT && (!dx || dx->dtype == t)) {
        /* float32: the same sums in double, channels in parallel */
        const float *xs = x->data, *dys = dy->data;
#pragma omp parallel for schedule(static)
        for (int64_t c = 0; c < C; c++) {
            double mu = ot_tensor_get_f64(mean, c), v4 = ot_tensor_get_f64(s4, c);
            double inv_std = training ? v4 : 1.0 / sqrt(v4 + eps);
            double gamma = ot_tensor_get_f64(scale, c);
            double sdy = 0, sdyx = 0;
            for (int64_t nn = 0; nn < N; nn++) {
                const float *xr = xs + (nn * C + c) * sp, *dr = dys + (nn * C + c) * sp;
                for (int64_t i = 0; i < sp; i++) {
                    sdy += (double)dr[i];
                    sdyx += (double)dr[i] * ((double)xr[i] - mu);
                }
            }
            sdyx *= inv_std;
            if (db)
                ot_ref_st(db->dtype, db->data, c, sdy);
            if (dscale)
                ot_ref_st(dscale->dtype, dscale->data, c, sdyx);
            if (!dx)
                continue;
            double k = gamma * inv_std;
            /* dx = k/M * (M dy - sdy - xhat sdyx) = a dy + b x + c0 */
            float a = (float)k, b = 0.0f, c0 = 0.0f;
            if (training && M > 0) {
                b = (float)(-k / M * sdyx * inv_std);
                c0 = (float)(-k / M * sdy + k / M * sdyx * inv_std * mu);
            }
            float *dxs = dx->data;
            for (int64_t nn = 0; nn < N; nn++) {
                const float *xr = xs + (nn * C + c) * sp, *dr = dys + (nn * C + c) * sp;
                float *o = dxs + (nn * C + c) * sp;
                for (int64_t i = 0; i < sp; i++)
                    o[i] = a * dr[i] + b * xr[i] + c0;
            }
        }
        return OT_OK;
    }
    for (int64_t c = 0; c < C; c++) {
        double mu = ot_tensor_get_f64(mean, c), v4 = ot_tensor_get_f64(s4, c);
        double inv_std = training ? v4 : 1.0 / sqrt(v4 + eps);
        double gamma = ot_tensor_get_f64(scale, c);
        double sdy = 0, sdyx = 0;
        for (int64_t nn = 0; nn < N; nn++)
            for (int64_t i = 0; i < sp; i++) {
                int64_t at = (nn * C + c) * sp + i;
                double d = ot_ref_ld(t, dy->data, at);
                sdy += d;
                sdyx += d * (ot_ref_ld(t, x->data, at) - mu) * inv_std;
            }
        if (db)
            ot_ref_st(db->dtype, db->data, c, sdy);
        if (dscale)
            ot_ref_st(dscale->dtype, dscale->data, c, sdyx);
        if (!dx)
            continue;
        double k = gamma * inv_std;
        for (int64_t nn = 0; nn < N; nn++)
            for (int64_t i = 0; i < sp; i++) {
                int64_t at = (nn * C + c) * sp + i;
                double d = ot_ref_ld(t, dy->data, at), r = d * k;
                if (training && M > 0) {
                    double xhat = (ot_ref_ld(t, x->data, at) - mu) * inv_std;
                    r = k / M * (M * d - sdy - xhat * sdyx);
                }
                ot_ref_st(t, dx->data, at, r);
            }
    }
    return OT_OK;
}

bool ot_ref_batchnorm_train_supports(const ot_graph *g, const ot_node *n,
                                     const ot_tensor *const *in, const ot_tensor *const *out,
                                     const char **why)
{
    (void)g;
    if (!bn_shapes(n, in, 0, 1, 4, why))
        return false;
    const ot_tensor *x = in[0], *y = ot_ref_cout(n, out, 0);
    if (!y || y->dtype != x->dtype || y->bytes != x->bytes) {
        *why = "BatchNormTrain: Y must be shaped like X";
        return false;
    }
    for (int i = 1; i < 5; i++) {
        const ot_tensor *s = ot_ref_cout(n, out, i);
        if (s && (!ot_ref_is_float(s->dtype) || ot_tensor_numel(s) != x->dims[1])) {
            *why = "BatchNormTrain: statistics must be float tensors of (C)";
            return false;
        }
    }
    return true;
}

/* X: (N, C, D...)  scale, B, running_mean, running_var: (C)  ->  Y like X,
   new running mean and var, saved mean and inverse std: (C). Batch
   statistics over M = N * spatial: mean, biased var for Y, unbiased
   (M / (M - 1)) for the running estimate; running * momentum + batch *
   (1 - momentum). */
ot_status ot_ref_batchnorm_train(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                                 ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_batchnorm_train_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *x = in[0], *scale = in[1], *bias = in[2], *rmean = in[3], *rvar = in[4];
    ot_tensor *y = out[0];
    ot_tensor *stat[5] = { NULL, ot_ref_out(n, out, 1), ot_ref_out(n, out, 2),
                           ot_ref_out(n, out, 3), ot_ref_out(n, out, 4) };
    double eps = ot_node_attr_float(n, "epsilon", 1e-5f);
    double momentum = ot_node_attr_float(n, "momentum", 0.9f);
    int64_t N = x->dims[0], C = x->dims[1], sp = ot_ref_prod(x, 2, x->ndim);
    double M = (double)(N * sp);
    ot_dtype t = x->dtype;
    ot_comm *cm = bn_comm(n);
    if (cm && t == OT_DTYPE_FLOAT && y->dtype == t)
        return bn_train_sync(cm, n, in, out, err);
    if (cm)
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "BatchNormTrain sync: float32 only");
    if (t == OT_DTYPE_FLOAT) {
        /* float32: the same statistics in double, channels in parallel */
        const float *xs = x->data;
        float *ys = y->data;
#pragma omp parallel for schedule(static)
        for (int64_t c = 0; c < C; c++) {
            double s1 = 0, s2 = 0;
            for (int64_t nn = 0; nn < N; nn++) {
                const float *xr = xs + (nn * C + c) * sp;
                for (int64_t i = 0; i < sp; i++)
                    s1 += (double)xr[i];
            }
            double mu = M > 0 ? s1 / M : 0.0;
            for (int64_t nn = 0; nn < N; nn++) {
                const float *xr = xs + (nn * C + c) * sp;
                for (int64_t i = 0; i < sp; i++) {
                    double d = (double)xr[i] - mu;
                    s2 += d * d;
                }
            }
            double var = M > 0 ? s2 / M : 0.0, unbiased = M > 1 ? s2 / (M - 1) : var;
            double inv_std = 1.0 / sqrt(var + eps);
            double a = ot_tensor_get_f64(scale, c) * inv_std;
            double b = ot_tensor_get_f64(bias, c) - mu * a;
            for (int64_t nn = 0; nn < N; nn++) {
                const float *xr = xs + (nn * C + c) * sp;
                float *yr = ys + (nn * C + c) * sp;
                for (int64_t i = 0; i < sp; i++)
                    yr[i] = (float)((double)xr[i] * a + b);
            }
            double val[5] = { 0,
                              ot_tensor_get_f64(rmean, c) * momentum + mu * (1 - momentum),
                              ot_tensor_get_f64(rvar, c) * momentum + unbiased * (1 - momentum),
                              mu, inv_std };
            for (int i = 1; i < 5; i++)
                if (stat[i])
                    ot_ref_st(stat[i]->dtype, stat[i]->data, c, val[i]);
        }
        return OT_OK;
    }
    for (int64_t c = 0; c < C; c++) {
        double s1 = 0, s2 = 0;
        for (int64_t nn = 0; nn < N; nn++)
            for (int64_t i = 0; i < sp; i++)
                s1 += ot_ref_ld(t, x->data, (nn * C + c) * sp + i);
        double mu = M > 0 ? s1 / M : 0.0;
        for (int64_t nn = 0; nn < N; nn++)
            for (int64_t i = 0; i < sp; i++) {
                double d = ot_ref_ld(t, x->data, (nn * C + c) * sp + i) - mu;
                s2 += d * d;
            }
        double var = M > 0 ? s2 / M : 0.0, unbiased = M > 1 ? s2 / (M - 1) : var;
        double inv_std = 1.0 / sqrt(var + eps);
        double a = ot_tensor_get_f64(scale, c) * inv_std;
        double b = ot_tensor_get_f64(bias, c) - mu * a;
        for (int64_t nn = 0; nn < N; nn++)
            for (int64_t i = 0; i < sp; i++) {
                int64_t at = (nn * C + c) * sp + i;
                ot_ref_st(t, y->data, at, ot_ref_ld(t, x->data, at) * a + b);
            }
        double val[5] = { 0,
                          ot_tensor_get_f64(rmean, c) * momentum + mu * (1 - momentum),
                          ot_tensor_get_f64(rvar, c) * momentum + unbiased * (1 - momentum), mu,
                          inv_std };
        for (int i = 1; i < 5; i++)
            if (stat[i])
                ot_ref_st(stat[i]->dtype, stat[i]->data, c, val[i]);
    }
    return OT_OK;
}
