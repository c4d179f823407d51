/*
 * cublaslt.c: matrix products on cuBLASLt (Gemm, MatMul, and the rank-1
 * products the backend uses for biases and their gradients).
 *
 * cuBLASLt is column-major: a row-major D[m, n] is its D^T[n, m], so the
 * product D = op(A) op(B) is computed as D^T = op(B)^T op(A)^T, B first.
 * fp32 in and out, CUBLAS_COMPUTE_32F (no TF32; --precision tf32 allows it;
 * bf16 and fp16 take half A and B with float C and D), one algorithm from
 * the heuristic within the workspace cap, chosen when the step is built.
 */
#include <string.h>

#include "cuda.h"

#define LT(call, what)                                                                          \
    do {                                                                                        \
        cublasStatus_t s_ = (call);                                                             \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                      \
            st = ot_err_set(err, OT_ERR_BACKEND, "cuBLASLt: %s: %s", what,                      \
                            lt->cublasLtGetStatusString(s_));                                   \
            goto done;                                                                          \
        }                                                                                       \
    } while (0)

static ot_status layout(const ot_cublaslt_api *lt, cublasLtMatrixLayout_t *out, cudaDataType_t type,
                        int64_t rows, int64_t cols, int64_t batch, int64_t stride, ot_err *err)
{
    ot_status st = OT_OK;
    int32_t count = (int32_t)batch;
    LT(lt->cublasLtMatrixLayoutCreate(out, type, (uint64_t)rows, (uint64_t)cols, rows),
       "layout");
    if (batch > 1) {
        LT(lt->cublasLtMatrixLayoutSetAttribute(*out, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                                                sizeof count), "layout");
        LT(lt->cublasLtMatrixLayoutSetAttribute(*out, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                &stride, sizeof stride), "layout");
    }
done:
    return st;
}

void ot_gemm_free(ot_cuda_dev *dev, ot_gemm *g)
{
    const ot_cublaslt_api *lt = dev ? dev->lt : NULL;
    if (!lt)
        return;
    if (g->desc)
        lt->cublasLtMatmulDescDestroy(g->desc);
    if (g->la)
        lt->cublasLtMatrixLayoutDestroy(g->la);
    if (g->lb)
        lt->cublasLtMatrixLayoutDestroy(g->lb);
    if (g->lc)
        lt->cublasLtMatrixLayoutDestroy(g->lc);
    memset(g, 0, sizeof *g);
}

ot_status ot_gemm_descs(const ot_cublaslt_api *lt, const ot_gemm_geom *q, ot_gemm *g, ot_err *err)
{
    ot_status st = OT_OK;
    memset(g, 0, sizeof *g);
    g->q = *q;
    if (q->m <= 0 || q->n <= 0 || q->k <= 0 || q->batch <= 0 || q->batch > INT32_MAX)
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "cuBLASLt: an empty or oversized product");
    /* cuBLAS's first operand is B: stored row-major [n, k] when tb, else
       [k, n]; as column-major that is (k x n) to transpose, or (n x k) */
    cublasOperation_t opa = q->tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opb = q->ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    LT(lt->cublasLtMatmulDescCreate(&g->desc,
                                    q->tf32 && !q->half ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                        : CUBLAS_COMPUTE_32F,
                                    CUDA_R_32F), "matmul");
    LT(lt->cublasLtMatmulDescSetAttribute(g->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa),
       "matmul");
    LT(lt->cublasLtMatmulDescSetAttribute(g->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb),
       "matmul");
    /* --precision bf16/fp16: half A and B, float C and D, fp32 sums */
    cudaDataType_t ab = q->half == OT_DTYPE_BFLOAT16 ? CUDA_R_16BF
                        : q->half == OT_DTYPE_FLOAT16 ? CUDA_R_16F
                                                      : CUDA_R_32F;
    OT_TRY(layout(lt, &g->la, ab, q->tb ? q->k : q->n, q->tb ? q->n : q->k, q->batch, q->sb, err));
    OT_TRY(layout(lt, &g->lb, ab, q->ta ? q->m : q->k, q->ta ? q->k : q->m, q->batch, q->sa, err));
    OT_TRY(layout(lt, &g->lc, CUDA_R_32F, q->n, q->m, q->batch, q->m * q->n, err));
done:
    if (st != OT_OK) {
        ot_cuda_dev tmp = { .lt = lt };
        ot_gemm_free(&tmp, g);
    }
    return st;
}

ot_status ot_gemm_build(ot_cuda_dev *dev, const ot_gemm_geom *q, ot_gemm *g, ot_err *err)
{
    ot_status st = OT_OK;
    const ot_cublaslt_api *lt = dev->lt;
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    uint64_t cap = OT_CUDA_WS_CAP;
    OT_TRY(ot_gemm_descs(lt, q, g, err));
    LT(lt->cublasLtMatmulPreferenceCreate(&pref), "preference");
    LT(lt->cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                &cap, sizeof cap), "preference");
    memset(&res, 0, sizeof res);
    /* C is laid out like D (lc for both) */
    LT(lt->cublasLtMatmulAlgoGetHeuristic(dev->lt_handle, g->desc, g->la, g->lb, g->lc, g->lc,
                                          pref, 1, &res, &found), "heuristic");
    if (found < 1)
        OT_FAIL(err, OT_ERR_BACKEND, "cuBLASLt: no algorithm for a %lldx%lldx%lld product",
                (long long)q->m, (long long)q->n, (long long)q->k);
    g->algo = res.algo;
    g->ws = res.workspaceSize;
    g->ready = true;
done:
    if (pref)
        lt->cublasLtMatmulPreferenceDestroy(pref);
    if (st != OT_OK)
        ot_gemm_free(dev, g);
    return st;
}

ot_status ot_gemm_run(ot_cuda_dev *dev, const ot_gemm *g, void *stream, const void *a,
                      const void *b, const void *c, void *d, void *ws, ot_err *err)
{
    ot_status st = OT_OK;
    const ot_cublaslt_api *lt = dev->lt;
    float alpha = g->q.alpha, beta = g->q.beta;
    LT(lt->cublasLtMatmul(dev->lt_handle, g->desc, &alpha, b, g->la, a, g->lb, &beta,
                          beta != 0.0f && c ? c : d, g->lc, d, g->lc, &g->algo, ws, g->ws,
                          (cudaStream_t)stream), "matmul");
done:
    return st;
}
