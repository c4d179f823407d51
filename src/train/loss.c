/*
 * loss.c: softmax cross-entropy with label smoothing (formulas in loss.h).
 *
 * Each row is reduced in double: the maximum, the sum of exp(x - max), the sum
 * of x. The results are rounded to float once, so the loss is at least as
 * accurate as PyTorch's float32 log_softmax. Labels are all checked before
 * anything is written, so a bad batch leaves the outputs untouched.
 *
 * Reference: torch.nn.CrossEntropyLoss (PyTorch 1.13), label smoothing as in
 * Szegedy et al., "Rethinking the Inception Architecture", 2016, section 7.
 */
#include <math.h>

#include "train/loss.h"

static ot_status check_args(const float *logits, const int64_t *labels, int64_t N, int64_t C,
                            float label_smoothing, const void *out, ot_err *err)
{
    if (!logits || !labels || !out)
        return ot_err_set(err, OT_ERR_ARG, "cross-entropy: NULL logits, labels or output");
    if (N < 1 || C < 1)
        return ot_err_set(err, OT_ERR_ARG,
                          "cross-entropy: logits are [%lld, %lld], expected at least [1, 1]",
                          (long long)N, (long long)C);
    if (!(label_smoothing >= 0.0f && label_smoothing <= 1.0f))
        return ot_err_set(err, OT_ERR_ARG,
                          "cross-entropy: label smoothing %g is outside [0, 1]",
                          (double)label_smoothing);
    for (int64_t n = 0; n < N; n++)
        if (labels[n] < 0 || labels[n] >= C)
            return ot_err_set(err, OT_ERR_ARG,
                              "cross-entropy: label %lld at index %lld is outside [0, %lld)",
                              (long long)labels[n], (long long)n, (long long)C);
    return OT_OK;
}

/* x: (C). Returns log sum_c exp x[c] = m + log sum_c exp(x[c] - m), m = max x. */
static double row_logsumexp(const float *x, int64_t C)
{
    double m = (double)x[0];
    for (int64_t c = 1; c < C; c++)
        if ((double)x[c] > m)
            m = (double)x[c];
    if (isinf(m))
        return m; /* +inf: the loss is inf or nan; -inf everywhere: all exp are 0 */
    double s = 0.0;
    for (int64_t c = 0; c < C; c++)
        s += exp((double)x[c] - m);
    return m + log(s);
}

ot_status ot_loss_xent_forward(const float *logits, const int64_t *labels, int64_t N, int64_t C,
                               float label_smoothing, float *loss, int64_t *n_correct,
                               ot_err *err)
{
    ot_status st = check_args(logits, labels, N, C, label_smoothing, loss, err);
    if (st != OT_OK)
        return st;

    const double eps = (double)label_smoothing;
    double total = 0.0;
    int64_t correct = 0;
    for (int64_t n = 0; n < N; n++) {
        const float *x = logits + n * C; /* x: (C) */
        double lse = row_logsumexp(x, C);
        double sum_x = 0.0;
        int64_t arg = 0;
        for (int64_t c = 0; c < C; c++) {
            sum_x += (double)x[c];
            if (x[c] > x[arg])
                arg = c;
        }
        /* -sum_c q_c log p_c with log p_c = x_c - lse and sum_c q_c = 1. */
        double nll = lse - (double)x[labels[n]];
        double smooth = lse - sum_x / (double)C;
        total += eps == 0.0 ? nll : (1.0 - eps) * nll + eps * smooth;
        correct += arg == labels[n];
    }
    *loss = (float)(total / (double)N);
    if (n_correct)
        *n_correct = correct;
    return OT_OK;
}

ot_status ot_loss_xent_backward(const float *logits, const int64_t *labels, int64_t N, int64_t C,
                                float label_smoothing, float *dlogits, ot_err *err)
{
    ot_status st = check_args(logits, labels, N, C, label_smoothing, dlogits, err);
    if (st != OT_OK)
        return st;

    const double eps = (double)label_smoothing;
    const double inv_n = 1.0 / (double)N;
    const double q_off = eps / (double)C; /* q[c] for c != y          */
    const double q_on = 1.0 - eps + q_off; /* q[y] = (1 - eps) + eps/C */
    for (int64_t n = 0; n < N; n++) {
        const float *x = logits + n * C; /* x, dx: (C); may be the same row */
        float *dx = dlogits + n * C;
        double lse = row_logsumexp(x, C);
        int64_t y = labels[n];
        /* d/dx_c of -sum q log softmax(x) is p_c - q_c; the mean divides by N. */
        for (int64_t c = 0; c < C; c++) {
            double p = exp((double)x[c] - lse);
            dx[c] = (float)((p - (c == y ? q_on : q_off)) * inv_n);
        }
    }
    return OT_OK;
}
