/*
 * reduce.cu: ReduceSum, ReduceMean, ReduceMax, ReduceL2, their backward
 * ReduceGrad, the private ReduceSumTo (a broadcast's gradient) and
 * GradSumSquares (the squared norm for gradient clipping).
 *
 * Sums are in double and deterministic: each output has P partials (partial
 * k takes the reduced elements k, k + P, ...), which one thread per output
 * adds in order; P is 1 when there are enough outputs to fill the device.
 * The order differs from the plain kernels' single pass, so results agree to
 * rounding, not bit for bit. ReduceMax keeps a NaN, as numpy's maximum.
 */
#include "exec/cuda/kernels/common.cuh"

int64_t otk_red_parts(int64_t n_out, int64_t n_red)
{
    if (n_out >= 4096)
        return 1;
    int64_t p = n_red / 256;
    return p < 1 ? 1 : p > 1024 ? 1024 : p;
}

size_t otk_red_scratch_bytes(int64_t n_out, int64_t n_red)
{
    return sizeof(double) * (size_t)(n_out * otk_red_parts(n_out, n_red) + 1);
}

__device__ __forceinline__ double red_step(int kind, double acc, double v)
{
    if (kind == OTK_RED_MAX)
        return v > acc || v != v ? v : acc;
    return acc + (kind == OTK_RED_L2 ? v * v : v);
}

__global__ void k_red_partial(otk_red w, int kind, const float *x, double *part, int64_t P)
{
    OTK_FOR(t, w.n_out * P)
    {
        int64_t o = t / P, k = t % P;
        int64_t base = otk_offset(w.nk, w.kd, w.ks, o);
        double acc = kind == OTK_RED_MAX ? -HUGE_VAL : 0.0;
        for (int64_t r = k; r < w.n_red; r += P)
            acc = red_step(kind, acc, (double)x[base + otk_offset(w.nr, w.rd, w.rs, r)]);
        part[t] = acc;
    }
}

__global__ void k_red_final(otk_red w, int kind, const double *part, int64_t P, float *y)
{
    OTK_FOR(o, w.n_out)
    {
        double acc = kind == OTK_RED_MAX ? -HUGE_VAL : 0.0;
        for (int64_t k = 0; k < P; k++) {
            double v = part[o * P + k];
            acc = kind == OTK_RED_MAX ? red_step(kind, acc, v) : acc + v;
        }
        if (kind == OTK_RED_MEAN)
            acc = w.n_red ? acc / (double)w.n_red : (double)NAN;
        else if (kind == OTK_RED_L2)
            acc = sqrt(acc);
        y[o] = (float)acc;
    }
}

int otk_reduce_f32(void *stream, const otk_red *w, int kind, const float *x, float *y,
                   void *scratch)
{
    int64_t P = otk_red_parts(w->n_out, w->n_red);
    double *part = (double *)scratch;
    OTK_LAUNCH(k_red_partial, w->n_out * P, stream, *w, kind, x, part, P);
    OTK_LAUNCH(k_red_final, w->n_out, stream, *w, kind, (const double *)part, P, y);
    return otk_status();
}

/* ReduceMax's ties: how many reduced elements equal Y, per output */
__global__ void k_red_ties(otk_red w, const float *x, const float *y, double *ties)
{
    OTK_FOR(o, w.n_out)
    {
        int64_t base = otk_offset(w.nk, w.kd, w.ks, o);
        double yo = (double)y[o], t = 0;
        for (int64_t r = 0; r < w.n_red; r++)
            t += (double)x[base + otk_offset(w.nr, w.rd, w.rs, r)] == yo;
        ties[o] = t;
    }
}

/* dX[i] from dY[o(i)]: Sum dY, Mean dY / n, Max dY / ties where X == Y,
   L2 dY X / Y (0 where Y is 0) */
__global__ void k_red_grad(otk_red w, int kind, const float *dy, const float *x, const float *y,
                           const double *ties, float *dx, int64_t n)
{
    OTK_FOR(i, n)
    {
        int64_t o = 0, r = i, mul = 1;
        for (int k = w.nd - 1; k >= 0; k--) { /* the kept coordinates, row-major */
            int64_t c = r % w.dims[k];
            r /= w.dims[k];
            if (w.kept[k]) {
                o += c * mul;
                mul *= w.dims[k];
            }
        }
        double g0 = (double)dy[o], v = (double)x[i], d = g0;
        double yo = y ? (double)y[o] : 0.0;
        if (kind == OTK_RED_MEAN)
            d = g0 / (double)w.n_red;
        else if (kind == OTK_RED_MAX)
            d = v == yo ? g0 / ties[o] : 0;
        else if (kind == OTK_RED_L2)
            d = yo != 0 ? g0 * v / yo : 0;
        dx[i] = (float)d;
    }
}

int otk_reduce_grad_f32(void *stream, const otk_red *w, int kind, const float *dy, const float *x,
                        const float *y, float *dx, void *scratch)
{
    double *ties = (double *)scratch;
    if (kind == OTK_RED_MAX)
        OTK_LAUNCH(k_red_ties, w->n_out, stream, *w, x, y, ties);
    int64_t n = w->n_out * w->n_red;
    OTK_LAUNCH(k_red_grad, n, stream, *w, kind, dy, x, y, (const double *)ties, dx, n);
    return otk_status();
}

/* ------------------------------------------------------- GradSumSquares */

__global__ void k_sumsq_partial(const float *g, int64_t n, double *part, int64_t P)
{
    OTK_FOR(k, P)
    {
        double s = 0;
        for (int64_t j = k; j < n; j += P)
            s += (double)g[j] * (double)g[j];
        part[k] = s;
    }
}

__global__ void k_sumsq_final(const double *part, int64_t P, const double *acc, double *out)
{
    OTK_FOR(t, 1)
    {
        double s = 0;
        for (int64_t k = 0; k < P; k++)
            s += part[k];
        out[0] = (acc ? acc[0] : 0.0) + s;
    }
}

int64_t otk_sumsq_parts(int64_t n)
{
    int64_t p = n / 256;
    return p < 1 ? 1 : p > 4096 ? 4096 : p;
}

int otk_grad_sum_squares_f32(void *stream, const float *g, int64_t n, const double *acc,
                             double *out, void *scratch)
{
    int64_t P = otk_sumsq_parts(n);
    double *part = (double *)scratch;
    OTK_LAUNCH(k_sumsq_partial, P, stream, g, n, part, P);
    OTK_LAUNCH(k_sumsq_final, 1, stream, (const double *)part, P, acc, out);
    return otk_status();
}
