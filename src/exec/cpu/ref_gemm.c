/*
 * ref_gemm.c: Gemm and MatMul as plain C loops.
 *
 * Gemm: Y = alpha * A' * B' + beta * C, A' = transA ? A^T : A, C optional
 * and broadcast one way to (M, N) (scalar, (N), (1, N), (M, 1), (M, N));
 * float and double. MatMul: numpy matmul, 1-D operands promoted ((K) is
 * (1, K) on the left and (K, 1) on the right) and batch dims broadcast;
 * float, double, int32 and int64 (integers wrap around).
 *
 * The loops run i-k-j when B' rows are contiguous (so the inner loop streams
 * a row of B and a row of Y) and as dot products i-j-k when B is transposed
 * (the inner loop streams a row of B and, for transA=0, a row of A). Not a
 * fast kernel, but the ResNet head (1 x 512 x 1000) takes microseconds.
 * Not here: float16 and the unsigned integer types.
 *
 * References: https://onnx.ai/onnx/operators/onnx__Gemm.html,
 * https://onnx.ai/onnx/operators/onnx__MatMul.html
 */
#include "exec/cpu/ref_impl.h"

/* ------------------------------------------------------------------- Gemm */

typedef struct gemm_args {
    int64_t M, N, K;
    bool ta, tb;
    double alpha, beta;
    int64_t csm, csn; /* C's strides over (M, N); 0 on a broadcast dim */
} gemm_args;

/* a: (M, K) or (K, M)  b: (K, N) or (N, K)  c: broadcast to (M, N)  ->  y: (M, N) */
#define GEMM_IMPL(NAME, T, ACC)                                                                 \
    static void NAME(const gemm_args *q, const T *a, const T *b, const T *c, T *y)              \
    {                                                                                           \
        int64_t M = q->M, N = q->N, K = q->K;                                                   \
        for (int64_t i = 0; i < M; i++) {                                                       \
            T *yr = y + i * N;                                                                  \
            if (!q->tb) {                                                                       \
                for (int64_t j = 0; j < N; j++)                                                 \
                    yr[j] = 0;                                                                  \
                for (int64_t k = 0; k < K; k++) {                                               \
                    T av = q->ta ? a[k * M + i] : a[i * K + k];                                 \
                    const T *br = b + k * N;                                                    \
                    for (int64_t j = 0; j < N; j++)                                             \
                        yr[j] += av * br[j];                                                    \
                }                                                                               \
            } else {                                                                            \
                for (int64_t j = 0; j < N; j++) {                                               \
                    const T *br = b + j * K;                                                    \
                    ACC acc = 0;                                                                \
                    if (q->ta)                                                                  \
                        for (int64_t k = 0; k < K; k++)                                         \
                            acc += (ACC)a[k * M + i] * (ACC)br[k];                              \
                    else                                                                        \
                        for (int64_t k = 0; k < K; k++)                                         \
                            acc += (ACC)a[i * K + k] * (ACC)br[k];                              \
                    yr[j] = (T)acc;                                                             \
                }                                                                               \
            }                                                                                   \
            for (int64_t j = 0; j < N; j++) {                                                   \
                double v = q->alpha * (double)yr[j];                                            \
                if (c)                                                                          \
                    v += q->beta * (double)c[i * q->csm + j * q->csn];                          \
                yr[j] = (T)v;                                                                   \
            }                                                                                   \
        }                                                                                       \
    }

GEMM_IMPL(gemm_f32, float, double)
GEMM_IMPL(gemm_f64, double, double)

bool ot_ref_gemm_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                          const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *a = ot_ref_in(n, in, 0), *b = ot_ref_in(n, in, 1), *c = ot_ref_in(n, in, 2);
    const ot_tensor *y = ot_ref_cout(n, out, 0);
    if (!a || !b || !y || a->ndim != 2 || b->ndim != 2 || y->ndim != 2) {
        *why = "Gemm: A, B and Y must be matrices";
        return false;
    }
    if (a->dtype != OT_DTYPE_FLOAT && a->dtype != OT_DTYPE_DOUBLE) {
        *why = "Gemm: only float and double are supported";
        return false;
    }
    if (b->dtype != a->dtype || y->dtype != a->dtype || (c && c->dtype != a->dtype)) {
        *why = "Gemm: A, B, C and Y must have one dtype";
        return false;
    }
    bool ta = ot_node_attr_int(n, "transA", 0) != 0, tb = ot_node_attr_int(n, "transB", 0) != 0;
    int64_t M = a->dims[ta], K = a->dims[!ta], N = b->dims[!tb];
    if (b->dims[tb] != K || y->dims[0] != M || y->dims[1] != N) {
        *why = "Gemm: shapes of A, B and Y disagree";
        return false;
    }
    if (c) {
        bool ok = c->ndim <= 2;
        for (int i = 0; ok && i < c->ndim; i++) {
            int64_t want = y->dims[2 - c->ndim + i];
            ok = c->dims[i] == 1 || c->dims[i] == want;
        }
        if (!ok) {
            *why = "Gemm: C does not broadcast to (M, N)";
            return false;
        }
    }
    return true;
}

/* a: (M, K) or (K, M)  b: (K, N) or (N, K)  c: to (M, N)  ->  y: (M, N) */
ot_status ot_ref_gemm(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                      ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_gemm_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *a = in[0], *b = in[1], *c = ot_ref_in(n, in, 2);
    ot_tensor *y = out[0];
    gemm_args q = {
        .ta = ot_node_attr_int(n, "transA", 0) != 0,
        .tb = ot_node_attr_int(n, "transB", 0) != 0,
        .alpha = (double)ot_node_attr_float(n, "alpha", 1.0f),
        .beta = (double)ot_node_attr_float(n, "beta", 1.0f),
    };
    q.M = y->dims[0];
    q.N = y->dims[1];
    q.K = a->dims[!q.ta];
    if (c && ot_tensor_numel(c) == 0)
        c = NULL; /* an empty C (only possible when M or N is 0) adds nothing */
    if (c && c->ndim == 2) {
        q.csm = c->dims[0] == 1 ? 0 : c->dims[1];
        q.csn = c->dims[1] == 1 ? 0 : 1;
    } else if (c && c->ndim == 1) {
        q.csn = c->dims[0] == 1 ? 0 : 1;
    }
    if (q.M * q.N == 0)
        return OT_OK;
    if (a->dtype == OT_DTYPE_FLOAT)
        gemm_f32(&q, a->data, b->data, c ? c->data : NULL, y->data);
    else
        gemm_f64(&q, a->data, b->data, c ? c->data : NULL, y->data);
    return OT_OK;
}

/* ----------------------------------------------------------------- MatMul */

/* One (M, K) x (K, N) product, i-k-j; U is the type the products wrap in. */
#define MM_IMPL(NAME, T, U)                                                                     \
    static void NAME(int64_t M, int64_t N, int64_t K, const T *a, const T *b, T *y)             \
    {                                                                                           \
        for (int64_t i = 0; i < M; i++) {                                                       \
            T *yr = y + i * N;                                                                  \
            for (int64_t j = 0; j < N; j++)                                                     \
                yr[j] = 0;                                                                      \
            for (int64_t k = 0; k < K; k++) {                                                   \
                U av = (U)a[i * K + k];                                                         \
                const T *br = b + k * N;                                                        \
                for (int64_t j = 0; j < N; j++)                                                 \
                    yr[j] = (T)((U)yr[j] + av * (U)br[j]);                                      \
            }                                                                                   \
        }                                                                                       \
    }

MM_IMPL(mm_f32, float, float)
MM_IMPL(mm_f64, double, double)
MM_IMPL(mm_i32, int32_t, uint32_t)
MM_IMPL(mm_i64, int64_t, uint64_t)

/* A matmul operand seen as (batch..., rows, cols). */
typedef struct mm_operand {
    int nb;                     /* batch dims                              */
    int64_t rows, cols;
    const int64_t *batch;       /* its batch dims (nb of them)             */
} mm_operand;

static void mm_view(const ot_tensor *t, bool left, mm_operand *v)
{
    if (t->ndim == 1) {
        v->nb = 0;
        v->rows = left ? 1 : t->dims[0];
        v->cols = left ? t->dims[0] : 1;
    } else {
        v->nb = t->ndim - 2;
        v->rows = t->dims[t->ndim - 2];
        v->cols = t->dims[t->ndim - 1];
    }
    v->batch = t->dims;
}

/* y's batch dims and the matrix strides of a and b over them (0 when broadcast). */
typedef struct mm_iter {
    int nb;
    int64_t dims[OT_MAX_DIMS], sa[OT_MAX_DIMS], sb[OT_MAX_DIMS];
} mm_iter;

/* Fills it from the operands; false when the batch dims do not broadcast. */
static bool mm_batch(const mm_operand *a, const mm_operand *b, mm_iter *it)
{
    it->nb = a->nb > b->nb ? a->nb : b->nb;
    int64_t stra = a->rows * a->cols, strb = b->rows * b->cols;
    for (int i = it->nb - 1; i >= 0; i--) {
        int ja = i - (it->nb - a->nb), jb = i - (it->nb - b->nb);
        int64_t da = ja >= 0 ? a->batch[ja] : 1, db = jb >= 0 ? b->batch[jb] : 1;
        if (da != db && da != 1 && db != 1)
            return false;
        it->dims[i] = da == 1 ? db : da;
        it->sa[i] = da == 1 ? 0 : stra;
        it->sb[i] = db == 1 ? 0 : strb;
        stra *= da;
        strb *= db;
    }
    return true;
}

bool ot_ref_matmul_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                            const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *a = ot_ref_in(n, in, 0), *b = ot_ref_in(n, in, 1);
    const ot_tensor *y = ot_ref_cout(n, out, 0);
    if (!a || !b || !y || a->ndim < 1 || b->ndim < 1) {
        *why = "MatMul: A and B must have rank >= 1";
        return false;
    }
    ot_dtype t = a->dtype;
    if (t != OT_DTYPE_FLOAT && t != OT_DTYPE_DOUBLE && t != OT_DTYPE_INT32 &&
        t != OT_DTYPE_INT64) {
        *why = "MatMul: only float, double, int32 and int64 are supported";
        return false;
    }
    if (b->dtype != t || y->dtype != t) {
        *why = "MatMul: A, B and Y must have one dtype";
        return false;
    }
    mm_operand va, vb;
    mm_iter it;
    mm_view(a, true, &va);
    mm_view(b, false, &vb);
    int64_t numel = va.rows * vb.cols;
    bool ok = va.cols == vb.rows && mm_batch(&va, &vb, &it);
    for (int i = 0; ok && i < it.nb; i++)
        numel *= it.dims[i];
    if (!ok || numel != ot_tensor_numel(y)) {
        *why = "MatMul: shapes of A, B and Y disagree";
        return false;
    }
    return true;
}

/* a: (..., M, K) or (K)  b: (..., K, N) or (K)  ->  y: (broadcast..., M, N) */
ot_status ot_ref_matmul(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                        ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_matmul_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *a = in[0], *b = in[1];
    ot_tensor *y = out[0];
    mm_operand va, vb;
    mm_iter it;
    mm_view(a, true, &va);
    mm_view(b, false, &vb);
    mm_batch(&va, &vb, &it);
    int64_t M = va.rows, K = va.cols, N = vb.cols, numel = ot_tensor_numel(y);
    if (numel == 0)
        return OT_OK;
    size_t es = ot_dtype_size(y->dtype);
    int64_t n_mats = numel / (M * N), idx[OT_MAX_DIMS] = { 0 }, ao = 0, bo = 0;
    for (int64_t m = 0; m < n_mats; m++) {
        const char *ap = (const char *)a->data + (size_t)ao * es;
        const char *bp = (const char *)b->data + (size_t)bo * es;
        char *yp = (char *)y->data + (size_t)(m * M * N) * es;
        switch (y->dtype) {
        case OT_DTYPE_FLOAT:
            mm_f32(M, N, K, (const float *)ap, (const float *)bp, (float *)yp);
            break;
        case OT_DTYPE_DOUBLE:
            mm_f64(M, N, K, (const double *)ap, (const double *)bp, (double *)yp);
            break;
        case OT_DTYPE_INT32:
            mm_i32(M, N, K, (const int32_t *)ap, (const int32_t *)bp, (int32_t *)yp);
            break;
        default: mm_i64(M, N, K, (const int64_t *)ap, (const int64_t *)bp, (int64_t *)yp); break;
        }
        for (int d = it.nb - 1; d >= 0; d--) { /* odometer over the batch dims */
            idx[d]++;
            ao += it.sa[d];
            bo += it.sb[d];
            if (idx[d] < it.dims[d])
                break;
            ao -= it.sa[d] * it.dims[d];
            bo -= it.sb[d] * it.dims[d];
            idx[d] = 0;
        }
    }
    return OT_OK;
}
