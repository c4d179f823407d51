/*
 * loss.cu: Softmax and LogSoftmax (any axis: outer x L x inner), their
 * backward SoftmaxGrad and LogSoftmaxGrad, and the fused softmax +
 * cross-entropy loss with label smoothing (SoftmaxCrossEntropy) and its
 * gradient.
 *
 * As ref_norm.c and ref_grad_eltwise.c, in double. One thread per softmax
 * row. The loss is the mean over rows of (1 - eps) nll + eps (lse - mean x):
 * one thread per row writes its term to the scratch, one thread adds them in
 * order. A label outside [0, C), which the plain kernel reports as an error,
 * makes the loss NaN and that row's gradient NaN here (a kernel cannot fail).
 */
#include "exec/cuda/kernels/common.cuh"

__global__ void k_softmax(int is_log, const float *x, float *y, int64_t outer, int64_t L,
                          int64_t inner)
{
    OTK_FOR(t, outer * inner)
    {
        int64_t o = t / inner, i = t % inner;
        int64_t base = o * L * inner + i;
        double mx = -HUGE_VAL, sum = 0;
        for (int64_t l = 0; l < L; l++) {
            double v = (double)x[base + l * inner];
            mx = v > mx ? v : mx;
        }
        if (mx == -HUGE_VAL)
            mx = 0;
        for (int64_t l = 0; l < L; l++)
            sum += exp((double)x[base + l * inner] - mx);
        double lsum = log(sum);
        for (int64_t l = 0; l < L; l++) {
            double v = (double)x[base + l * inner] - mx;
            y[base + l * inner] = (float)(is_log ? v - lsum : exp(v) / sum);
        }
    }
}

int otk_softmax_f32(void *stream, int is_log, const float *x, float *y, int64_t outer, int64_t L,
                    int64_t inner)
{
    OTK_LAUNCH(k_softmax, outer * inner, stream, is_log, x, y, outer, L, inner);
    return otk_status();
}

__global__ void k_softmax_grad(int is_log, const float *dy, const float *y, float *dx,
                               int64_t outer, int64_t L, int64_t inner)
{
    OTK_FOR(t, outer * inner)
    {
        int64_t o = t / inner, k = t % inner;
        int64_t base = o * L * inner + k;
        double s = 0;
        for (int64_t l = 0; l < L; l++) {
            int64_t at = base + l * inner;
            double d = (double)dy[at];
            s += is_log ? d : d * (double)y[at];
        }
        for (int64_t l = 0; l < L; l++) {
            int64_t at = base + l * inner;
            double d = (double)dy[at], yv = (double)y[at];
            dx[at] = (float)(is_log ? d - exp(yv) * s : yv * (d - s));
        }
    }
}

int otk_softmax_grad_f32(void *stream, int is_log, const float *dy, const float *y, float *dx,
                         int64_t outer, int64_t L, int64_t inner)
{
    OTK_LAUNCH(k_softmax_grad, outer * inner, stream, is_log, dy, y, dx, outer, L, inner);
    return otk_status();
}

__device__ __forceinline__ int64_t label_at(const void *lab, int lab64, int64_t r)
{
    return lab64 ? ((const int64_t *)lab)[r] : (int64_t)((const int32_t *)lab)[r];
}

/* log-sum-exp of row r */
__device__ __forceinline__ double row_lse(const float *x, int64_t r, int64_t C)
{
    double m = -HUGE_VAL;
    for (int64_t c = 0; c < C; c++) {
        double v = (double)x[r * C + c];
        m = v > m ? v : m;
    }
    if (isinf(m))
        return m;
    double s = 0;
    for (int64_t c = 0; c < C; c++)
        s += exp((double)x[r * C + c] - m);
    return m + log(s);
}

/* ws[r] = row r's term of the loss, or its lse (for the gradient) */
__global__ void k_xent_rows(const float *x, const void *lab, int lab64, double eps, int want_lse,
                            double *ws, int64_t N, int64_t C)
{
    OTK_FOR(r, N)
    {
        double lse = row_lse(x, r, C);
        if (want_lse) {
            ws[r] = lse;
            continue;
        }
        int64_t y = label_at(lab, lab64, r);
        if (y < 0 || y >= C) {
            ws[r] = (double)NAN;
            continue;
        }
        double sum_x = 0;
        for (int64_t c = 0; c < C; c++)
            sum_x += (double)x[r * C + c];
        double nll = lse - (double)x[r * C + y];
        ws[r] = (1.0 - eps) * nll + eps * (lse - sum_x / (double)C);
    }
}

__global__ void k_xent_total(const double *ws, float *loss, int64_t N)
{
    OTK_FOR(t, 1)
    {
        double total = 0;
        for (int64_t r = 0; r < N; r++)
            total += ws[r];
        loss[0] = (float)(N > 0 ? total / (double)N : 0.0);
    }
}

int otk_xent_f32(void *stream, const float *x, const void *lab, int lab64, double eps,
                 float *loss, int64_t N, int64_t C, void *scratch)
{
    double *ws = (double *)scratch;
    OTK_LAUNCH(k_xent_rows, N, stream, x, lab, lab64, eps, 0, ws, N, C);
    OTK_LAUNCH(k_xent_total, 1, stream, (const double *)ws, loss, N);
    return otk_status();
}

/* dX = dloss / N (softmax(x) - q), q = (1 - eps) onehot(y) + eps / C */
__global__ void k_xent_grad(const float *dl, const float *x, const void *lab, int lab64,
                            double eps, const double *lse, float *dx, int64_t N, int64_t C)
{
    double k = N > 0 ? (double)dl[0] / (double)N : 0.0;
    double q_off = eps / (double)C, q_on = 1.0 - eps + q_off;
    OTK_FOR(i, N * C)
    {
        int64_t r = i / C, c = i % C;
        int64_t y = label_at(lab, lab64, r);
        double p = exp((double)x[i] - lse[r]);
        dx[i] = y < 0 || y >= C ? (float)NAN : (float)(k * (p - (c == y ? q_on : q_off)));
    }
}

int otk_xent_grad_f32(void *stream, const float *dl, const float *x, const void *lab, int lab64,
                      double eps, float *dx, int64_t N, int64_t C, void *scratch)
{
    double *ws = (double *)scratch;
    OTK_LAUNCH(k_xent_rows, N, stream, x, lab, lab64, eps, 1, ws, N, C);
    OTK_LAUNCH(k_xent_grad, N * C, stream, dl, x, lab, lab64, eps, (const double *)ws, dx, N, C);
    return otk_status();
}
