/*
 * eltwise.cu: element-wise kernels: the unary activations and math ops and
 * their backward (UnaryGrad and the pair gradients ReluGrad, LeakyReluGrad,
 * SigmoidGrad, ClipGrad, DropoutGrad), the broadcasting binary ops (Add,
 * Sub, Mul, Div, Max, Min, Pow, PRelu, BroadcastTo as a copy), PReluGrad,
 * ExtremumGrad, Cast, fills, and the training-mode dropout mask.
 *
 * The arithmetic is ref_eltwise.c's, ref_math.c's and ref_grad_eltwise.c's:
 * float Add/Sub/Mul/Div/Max/Min in float, the transcendental ops and the
 * gradients in double rounded once to float, integers wrapping as two's
 * complement with 0 for a zero divisor. The dropout mask is the plain
 * kernel's counter-based hash of (seed, salt, index), so both backends draw
 * the same mask.
 */
#include "exec/cuda/kernels/common.cuh"

#define SQRT_2 1.4142135623730951
#define SQRT_2_OVER_PI 0.7978845608028654
#define TWO_OVER_SQRT_PI 1.1283791670955126
#define INV_SQRT_2PI 0.3989422804014327

__device__ __forceinline__ double hard_sigmoid(double x, double alpha, double beta)
{
    double v = alpha * x + beta;
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

__device__ __forceinline__ double sigmoid(double v)
{
    if (v >= 0)
        return 1.0 / (1.0 + exp(-v));
    double e = exp(v);
    return e / (1.0 + e);
}

/* f(x) for the unary ops (alpha, beta, gamma: the op's attributes; Clip's
   bounds in alpha and beta) */
__device__ __forceinline__ double unary_f(int op, double x, double a, double b, double g)
{
    switch (op) {
    case OTK_RELU: return x < 0 ? 0 : x;
    case OTK_LEAKYRELU: return x < 0 ? x * a : x;
    case OTK_SIGMOID: return sigmoid(x);
    case OTK_CLIP: x = x < a ? a : x; return x > b ? b : x;
    case OTK_SQRT: return sqrt(x);
    case OTK_RECIPROCAL: return 1.0 / x;
    case OTK_EXP: return exp(x);
    case OTK_LOG: return log(x);
    case OTK_TANH: return tanh(x);
    case OTK_ERF: return erf(x);
    case OTK_HARDSIGMOID: return hard_sigmoid(x, a, b);
    case OTK_HARDSWISH: return x * hard_sigmoid(x, 1.0 / 6.0, 0.5);
    case OTK_ELU: return x > 0 ? x : a * expm1(x);
    case OTK_SELU: return g * (x > 0 ? x : a * expm1(x));
    case OTK_SOFTPLUS: return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
    case OTK_GELU: return 0.5 * x * (1.0 + erf(x / SQRT_2));
    case OTK_GELU_TANH: return 0.5 * x * (1.0 + tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
    case OTK_POW_SCALAR: return pow(x, a);
    default: return 0;
    }
}

/* f'(x) */
__device__ __forceinline__ double unary_df(int op, double x, double a, double b, double g)
{
    switch (op) {
    case OTK_SQRT: return 0.5 / sqrt(x);
    case OTK_RECIPROCAL: return -1.0 / (x * x);
    case OTK_EXP: return exp(x);
    case OTK_LOG: return 1.0 / x;
    case OTK_TANH: {
        double t = tanh(x);
        return 1.0 - t * t;
    }
    case OTK_ERF: return TWO_OVER_SQRT_PI * exp(-x * x);
    case OTK_HARDSIGMOID: {
        double v = a * x + b;
        return v > 0 && v < 1 ? a : 0;
    }
    case OTK_HARDSWISH: return x < -3 ? 0 : x <= 3 ? x / 3.0 + 0.5 : 1;
    case OTK_ELU: return x > 0 ? 1 : a * exp(x);
    case OTK_SELU: return g * (x > 0 ? 1 : a * exp(x));
    case OTK_SOFTPLUS: return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
    case OTK_GELU: return 0.5 * (1.0 + erf(x / SQRT_2)) + x * INV_SQRT_2PI * exp(-0.5 * x * x);
    case OTK_GELU_TANH: {
        double u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
        double t = tanh(u);
        return 0.5 * (1.0 + t) +
               0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x);
    }
    case OTK_POW_SCALAR: return a * pow(x, a - 1.0);
    default: return 0;
    }
}

__global__ void k_unary_f32(int op, double a, double b, double g, const float *lo, const float *hi,
                            const float *__restrict__ x, float *__restrict__ y, int64_t n)
{
    if (lo)
        a = (double)*lo;
    if (hi)
        b = (double)*hi;
    OTK_FOR(i, n)
    {
        float v = x[i];
        if (op == OTK_RELU)
            y[i] = v < 0.0f ? 0.0f : v;
        else
            y[i] = (float)unary_f(op, (double)v, a, b, g);
    }
}

int otk_unary_f32(void *stream, int op, double alpha, double beta, double gamma, const float *lo,
                  const float *hi, const float *x, float *y, int64_t n)
{
    OTK_LAUNCH(k_unary_f32, n, stream, op, alpha, beta, gamma, lo, hi, x, y, n);
    return otk_status();
}

template <typename T>
__global__ void k_unary_int(int op, const T *lo, const T *hi, const T *x, T *y, int64_t n)
{
    OTK_FOR(i, n)
    {
        T v = x[i];
        if (op == OTK_RELU) {
            v = v < 0 ? 0 : v;
        } else {
            if (lo && v < *lo)
                v = *lo;
            if (hi && v > *hi)
                v = *hi;
        }
        y[i] = v;
    }
}

int otk_unary_int(void *stream, int op, int is64, const void *lo, const void *hi, const void *x,
                  void *y, int64_t n)
{
    if (is64)
        OTK_LAUNCH(k_unary_int<int64_t>, n, stream, op, (const int64_t *)lo, (const int64_t *)hi,
                   (const int64_t *)x, (int64_t *)y, n);
    else
        OTK_LAUNCH(k_unary_int<int32_t>, n, stream, op, (const int32_t *)lo, (const int32_t *)hi,
                   (const int32_t *)x, (int32_t *)y, n);
    return otk_status();
}

__global__ void k_unary_grad_f32(int op, double a, double b, double g, const float *dy,
                                 const float *x, float *dx, int64_t n)
{
    OTK_FOR(i, n)
    dx[i] = (float)((double)dy[i] * unary_df(op, (double)x[i], a, b, g));
}

int otk_unary_grad_f32(void *stream, int op, double alpha, double beta, double gamma,
                       const float *dy, const float *x, float *dx, int64_t n)
{
    OTK_LAUNCH(k_unary_grad_f32, n, stream, op, alpha, beta, gamma, dy, x, dx, n);
    return otk_status();
}

/* dY and the forward value v (Y, X or the mask, float or bool) -> dX */
__global__ void k_pair_grad_f32(int kind, double alpha, const float *lo_p, const float *hi_p,
                                double lo, double hi, double scale, const float *dy,
                                const void *v, int v_is_bool, float *dx, int64_t n)
{
    if (lo_p)
        lo = (double)*lo_p;
    if (hi_p)
        hi = (double)*hi_p;
    const float *vf = (const float *)v;
    const uint8_t *vb = (const uint8_t *)v;
    OTK_FOR(i, n)
    {
        double x = v_is_bool ? (double)(vb[i] != 0) : (double)vf[i];
        double d = (double)dy[i], r;
        switch (kind) {
        case OTK_G_RELU:
            dx[i] = vf[i] > 0 ? dy[i] : 0.0f;
            continue;
        case OTK_G_LEAKY: r = x > 0 ? d : d * alpha; break;
        case OTK_G_SIGMOID: r = d * x * (1.0 - x); break;
        case OTK_G_CLIP: r = x >= lo && x <= hi ? d : 0.0; break;
        default: r = x != 0 ? d * scale : 0.0; break;
        }
        dx[i] = (float)r;
    }
}

int otk_pair_grad_f32(void *stream, int kind, double alpha, const float *lo_p, const float *hi_p,
                      double lo, double hi, double scale, const float *dy, const void *v,
                      int v_is_bool, float *dx, int64_t n)
{
    OTK_LAUNCH(k_pair_grad_f32, n, stream, kind, alpha, lo_p, hi_p, lo, hi, scale, dy, v,
               v_is_bool, dx, n);
    return otk_status();
}

/* ------------------------------------------------------------ binary ops */

__device__ __forceinline__ float bin_f32(int op, float a, float b)
{
    switch (op) {
    case OTK_ADD: return a + b;
    case OTK_SUB: return a - b;
    case OTK_MUL: return a * b;
    case OTK_DIV: return a / b;
    case OTK_MAX: return a > b || a != a ? a : b;
    case OTK_MIN: return a < b || a != a ? a : b;
    case OTK_POW: return (float)pow((double)a, (double)b);
    case OTK_PRELU: return a < 0 ? (float)((double)a * (double)b) : a;
    default: return a; /* OTK_COPY */
    }
}

template <typename T>
__device__ __forceinline__ T bin_int(int op, T a, T b)
{
    switch (op) {
    case OTK_ADD: return (T)((uint64_t)a + (uint64_t)b);
    case OTK_SUB: return (T)((uint64_t)a - (uint64_t)b);
    case OTK_MUL: return (T)((uint64_t)a * (uint64_t)b);
    case OTK_DIV:
        if (b == 0)
            return 0;
        return b == -1 ? (T)(0 - (uint64_t)a) : (T)(a / b);
    case OTK_MAX: return a > b ? a : b;
    case OTK_MIN: return a < b ? a : b;
    default: return a;
    }
}

__global__ void k_binary_f32(int op, otk_bcast it, const float *a, const float *b, float *y,
                             int64_t n)
{
    OTK_FOR(i, n)
    {
        int64_t ia = 0, ib = 0, r = i;
        for (int k = it.nd - 1; k >= 0; k--) {
            int64_t c = r % it.dims[k];
            r /= it.dims[k];
            ia += c * it.sa[k];
            ib += c * it.sb[k];
        }
        y[i] = bin_f32(op, a[ia], b[ib]);
    }
}

template <typename T>
__global__ void k_binary_int(int op, otk_bcast it, const T *a, const T *b, T *y, int64_t n)
{
    OTK_FOR(i, n)
    {
        int64_t ia = 0, ib = 0, r = i;
        for (int k = it.nd - 1; k >= 0; k--) {
            int64_t c = r % it.dims[k];
            r /= it.dims[k];
            ia += c * it.sa[k];
            ib += c * it.sb[k];
        }
        y[i] = bin_int<T>(op, a[ia], b[ib]);
    }
}

/* y = a op b over it's dims (y contiguous); elem: 4 for float, 32 for int32,
   64 for int64, 1 for a byte copy (OTK_COPY only) */
int otk_binary(void *stream, int op, int kind, const otk_bcast *it, const void *a, const void *b,
               void *y, int64_t n)
{
    switch (kind) {
    case OTK_T_F32:
        OTK_LAUNCH(k_binary_f32, n, stream, op, *it, (const float *)a, (const float *)b,
                   (float *)y, n);
        break;
    case OTK_T_I32:
        OTK_LAUNCH(k_binary_int<int32_t>, n, stream, op, *it, (const int32_t *)a,
                   (const int32_t *)b, (int32_t *)y, n);
        break;
    case OTK_T_I64:
        OTK_LAUNCH(k_binary_int<int64_t>, n, stream, op, *it, (const int64_t *)a,
                   (const int64_t *)b, (int64_t *)y, n);
        break;
    case OTK_T_I16:
        OTK_LAUNCH(k_binary_int<int16_t>, n, stream, OTK_COPY, *it, (const int16_t *)a,
                   (const int16_t *)a, (int16_t *)y, n);
        break;
    default:
        OTK_LAUNCH(k_binary_int<int8_t>, n, stream, OTK_COPY, *it, (const int8_t *)a,
                   (const int8_t *)a, (int8_t *)y, n);
        break;
    }
    return otk_status();
}

__global__ void k_div_f32(float *y, double k, int64_t n)
{
    OTK_FOR(i, n)
    y[i] = (float)((double)y[i] / k);
}

int otk_div_f32(void *stream, float *y, double k, int64_t n)
{
    OTK_LAUNCH(k_div_f32, n, stream, y, k, n);
    return otk_status();
}

__global__ void k_fill_f32(float *y, float v, int64_t n)
{
    OTK_FOR(i, n)
    y[i] = v;
}

int otk_fill_f32(void *stream, float *y, float v, int64_t n)
{
    OTK_LAUNCH(k_fill_f32, n, stream, y, v, n);
    return otk_status();
}

/* dY, X, slope (placed by it.sb) -> dX = dY * (X < 0 ? slope : 1), dSlope at
   X's shape = X < 0 ? dY * X : 0 */
__global__ void k_prelu_grad_f32(otk_bcast it, const float *dy, const float *x, const float *slope,
                                 float *dx, float *ds, int64_t n)
{
    OTK_FOR(i, n)
    {
        int64_t k = otk_offset(it.nd, it.dims, it.sb, i);
        double v = (double)x[i], g = (double)dy[i];
        if (dx)
            dx[i] = (float)(v < 0 ? g * (double)slope[k] : g);
        if (ds)
            ds[i] = (float)(v < 0 ? g * v : 0);
    }
}

int otk_prelu_grad_f32(void *stream, const otk_bcast *it, const float *dy, const float *x,
                       const float *slope, float *dx, float *ds, int64_t n)
{
    OTK_LAUNCH(k_prelu_grad_f32, n, stream, *it, dy, x, slope, dx, ds, n);
    return otk_status();
}

/* dX_k at Y's shape: dY where X_k equals Y, divided by how many inputs do */
__global__ void k_extremum_grad_f32(otk_multi m, int k, const float *dy, const float *y, float *dx,
                                    int64_t n)
{
    OTK_FOR(i, n)
    {
        float yv = y[i];
        double ties = 0, mine = 0;
        for (int j = 0; j < m.n; j++) {
            const float *xj = (const float *)m.p[j];
            bool eq = xj[otk_offset(m.nd, m.dims, m.s[j], i)] == yv;
            ties += eq;
            if (j == k)
                mine = eq;
        }
        dx[i] = (float)(mine != 0 && ties > 0 ? (double)dy[i] / ties : 0.0);
    }
}

int otk_extremum_grad_f32(void *stream, const otk_multi *m, int k, const float *dy,
                          const float *y, float *dx, int64_t n)
{
    OTK_LAUNCH(k_extremum_grad_f32, n, stream, *m, k, dy, y, dx, n);
    return otk_status();
}

/* ---------------------------------------------------------------- Cast */

/* element i of a buffer of ONNX dtype t, as double / int64 */
__device__ __forceinline__ double ld_f64(int t, const void *p, int64_t i)
{
    switch (t) {
    case OTK_DT_FLOAT: return ((const float *)p)[i];
    case OTK_DT_DOUBLE: return ((const double *)p)[i];
    case OTK_DT_INT8: return ((const int8_t *)p)[i];
    case OTK_DT_UINT8: return ((const uint8_t *)p)[i];
    case OTK_DT_BOOL: return ((const uint8_t *)p)[i] != 0;
    case OTK_DT_INT16: return ((const int16_t *)p)[i];
    case OTK_DT_UINT16: return ((const uint16_t *)p)[i];
    case OTK_DT_INT32: return ((const int32_t *)p)[i];
    case OTK_DT_UINT32: return ((const uint32_t *)p)[i];
    case OTK_DT_INT64: return (double)((const int64_t *)p)[i];
    default: return 0;
    }
}

__device__ __forceinline__ int64_t ld_i64(int t, const void *p, int64_t i)
{
    switch (t) {
    case OTK_DT_INT8: return ((const int8_t *)p)[i];
    case OTK_DT_UINT8: return ((const uint8_t *)p)[i];
    case OTK_DT_BOOL: return ((const uint8_t *)p)[i] != 0;
    case OTK_DT_INT16: return ((const int16_t *)p)[i];
    case OTK_DT_UINT16: return ((const uint16_t *)p)[i];
    case OTK_DT_INT32: return ((const int32_t *)p)[i];
    case OTK_DT_UINT32: return ((const uint32_t *)p)[i];
    case OTK_DT_INT64: return ((const int64_t *)p)[i];
    default: return 0;
    }
}

/* v clamped into [lo, hi] and truncated; 0 for NaN (as ot_ref_to_int) */
__device__ __forceinline__ int64_t to_int(double v, double lo, double hi)
{
    if (v != v)
        return 0;
    v = v < lo ? lo : v;
    v = v > hi ? hi : v;
    return (int64_t)v;
}

/* stores v (integers saturate, as ot_ref_st) */
__device__ __forceinline__ void st_f64(int t, void *p, int64_t i, double v)
{
    switch (t) {
    case OTK_DT_FLOAT: ((float *)p)[i] = (float)v; break;
    case OTK_DT_DOUBLE: ((double *)p)[i] = v; break;
    case OTK_DT_INT8: ((int8_t *)p)[i] = (int8_t)to_int(v, -128.0, 127.0); break;
    case OTK_DT_UINT8: ((uint8_t *)p)[i] = (uint8_t)to_int(v, 0.0, 255.0); break;
    case OTK_DT_BOOL: ((uint8_t *)p)[i] = v != 0; break;
    case OTK_DT_INT16: ((int16_t *)p)[i] = (int16_t)to_int(v, -32768.0, 32767.0); break;
    case OTK_DT_UINT16: ((uint16_t *)p)[i] = (uint16_t)to_int(v, 0.0, 65535.0); break;
    case OTK_DT_INT32:
        ((int32_t *)p)[i] = (int32_t)to_int(v, -2147483648.0, 2147483647.0);
        break;
    case OTK_DT_UINT32: ((uint32_t *)p)[i] = (uint32_t)to_int(v, 0.0, 4294967295.0); break;
    case OTK_DT_INT64:
        ((int64_t *)p)[i] = to_int(v, -9223372036854775808.0, 9223372036854774784.0);
        break;
    default: break;
    }
}

/* stores v wrapping as C converts */
__device__ __forceinline__ void st_i64(int t, void *p, int64_t i, int64_t v)
{
    switch (t) {
    case OTK_DT_INT8: ((int8_t *)p)[i] = (int8_t)v; break;
    case OTK_DT_UINT8: ((uint8_t *)p)[i] = (uint8_t)v; break;
    case OTK_DT_BOOL: ((uint8_t *)p)[i] = v != 0; break;
    case OTK_DT_INT16: ((int16_t *)p)[i] = (int16_t)v; break;
    case OTK_DT_UINT16: ((uint16_t *)p)[i] = (uint16_t)v; break;
    case OTK_DT_INT32: ((int32_t *)p)[i] = (int32_t)v; break;
    case OTK_DT_UINT32: ((uint32_t *)p)[i] = (uint32_t)v; break;
    case OTK_DT_INT64: ((int64_t *)p)[i] = v; break;
    default: break;
    }
}

__global__ void k_cast(int from, int to, int ints, const void *x, void *y, int64_t n)
{
    OTK_FOR(i, n)
    {
        if (ints)
            st_i64(to, y, i, ld_i64(from, x, i));
        else
            st_f64(to, y, i, ld_f64(from, x, i));
    }
}

int otk_cast(void *stream, int from, int to, int ints, const void *x, void *y, int64_t n)
{
    OTK_LAUNCH(k_cast, n, stream, from, to, ints, x, y, n);
    return otk_status();
}

/* ------------------------------------------------------- QDQ, FakeQuant */

/* y = saturate(round_half_even(x / scale[c]) + zp[c]) */
__global__ void k_quantize(int xt, int st, int zt, int yt, const void *x, const void *s,
                           const void *zp, void *y, double lo, double hi, int64_t n_ch,
                           int64_t inner, int64_t n)
{
    OTK_FOR(i, n)
    {
        int64_t c = n_ch == 1 ? 0 : (i / inner) % n_ch;
        double sc = ld_f64(st, s, c), z = zp ? ld_f64(zt, zp, c) : 0;
        double q = nearbyint(ld_f64(xt, x, i) / sc) + z;
        st_f64(yt, y, i, q < lo ? lo : q > hi ? hi : q);
    }
}

int otk_quantize(void *stream, int xt, int st, int zt, int yt, const void *x, const void *s,
                 const void *zp, void *y, double lo, double hi, int64_t n_ch, int64_t inner,
                 int64_t n)
{
    OTK_LAUNCH(k_quantize, n, stream, xt, st, zt, yt, x, s, zp, y, lo, hi, n_ch, inner, n);
    return otk_status();
}

__global__ void k_dequantize(int xt, int st, int zt, int yt, const void *x, const void *s,
                             const void *zp, void *y, int64_t n_ch, int64_t inner, int64_t n)
{
    OTK_FOR(i, n)
    {
        int64_t c = n_ch == 1 ? 0 : (i / inner) % n_ch;
        double z = zp ? ld_f64(zt, zp, c) : 0;
        st_f64(yt, y, i, (ld_f64(xt, x, i) - z) * ld_f64(st, s, c));
    }
}

int otk_dequantize(void *stream, int xt, int st, int zt, int yt, const void *x, const void *s,
                   const void *zp, void *y, int64_t n_ch, int64_t inner, int64_t n)
{
    OTK_LAUNCH(k_dequantize, n, stream, xt, st, zt, yt, x, s, zp, y, n_ch, inner, n);
    return otk_status();
}

/* FakeQuant's per-channel dynamic scales: max |x| over the channel's slices
   / qmax (1 for an all-zero channel), one thread per channel, in order */
__global__ void k_fq_dyn_scale(const float *x, float *scale, int64_t n_ch, int64_t inner,
                               int64_t outer, double qmax)
{
    OTK_FOR(c, n_ch)
    {
        float m = 0;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t k = 0; k < inner; k++) {
                float a = fabsf(x[(o * n_ch + c) * inner + k]);
                m = a > m ? a : m;
            }
        scale[c] = m > 0 ? (float)((double)m / qmax) : 1.0f;
    }
}

int otk_fq_dyn_scale(void *stream, const float *x, float *scale, int64_t n_ch, int64_t inner,
                     int64_t outer, double qmax)
{
    OTK_LAUNCH(k_fq_dyn_scale, n_ch, stream, x, scale, n_ch, inner, outer, qmax);
    return otk_status();
}

/* FakeQuant (dy NULL): y = clamp(round(x / s), qmin, qmax) * s; its gradient
   (dy given): dx = dy where qmin s <= x <= qmax s, else 0 */
__global__ void k_fake_quant(const float *x, const float *scale, int per_ch, const float *dy,
                             float *y, double qmin, double qmax, int64_t n_ch, int64_t inner,
                             int64_t n)
{
    OTK_FOR(i, n)
    {
        int64_t c = n_ch == 1 ? 0 : (i / inner) % n_ch;
        double sc = (double)scale[per_ch ? c : 0];
        double v = (double)x[i];
        if (dy) {
            y[i] = v >= qmin * sc && v <= qmax * sc ? dy[i] : 0.0f;
        } else {
            double q = nearbyint(v / sc);
            q = q < qmin ? qmin : q > qmax ? qmax : q;
            y[i] = (float)(q * sc);
        }
    }
}

int otk_fake_quant(void *stream, const float *x, const float *scale, int per_ch, const float *dy,
                   float *y, double qmin, double qmax, int64_t n_ch, int64_t inner, int64_t n)
{
    OTK_LAUNCH(k_fake_quant, n, stream, x, scale, per_ch, dy, y, qmin, qmax, n_ch, inner, n);
    return otk_status();
}

/* ---------------------------------------------------------------- Dropout */

__device__ __forceinline__ uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* keep element i when u(i) >= ratio, u(i) = mix64(key + i) / 2^64 with 53
   bits, key = mix64(seed ^ mix64(salt)); kept elements scaled by 1/(1-ratio) */
__global__ void k_dropout_train(const float *x, const int64_t *seed, double ratio, uint64_t salt,
                                float *y, uint8_t *mask, int64_t n)
{
    uint64_t key = mix64((uint64_t)*seed ^ mix64(salt));
    float scale = ratio < 1.0 ? (float)(1.0 / (1.0 - ratio)) : 0.0f;
    OTK_FOR(i, n)
    {
        double u = (double)(mix64(key + (uint64_t)i) >> 11) * (1.0 / 9007199254740992.0);
        bool keep = u >= ratio;
        mask[i] = keep;
        y[i] = keep ? x[i] * scale : 0.0f;
    }
}

int otk_dropout_train(void *stream, const float *x, const int64_t *seed, double ratio,
                      uint64_t salt, float *y, uint8_t *mask, int64_t n)
{
    OTK_LAUNCH(k_dropout_train, n, stream, x, seed, ratio, salt, y, mask, n);
    return otk_status();
}
