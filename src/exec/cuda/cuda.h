/*
 * cuda.h: the CUDA backend's internals, shared by cuda.c (steps, memory,
 * running), cudnn_conv.c (convolutions on cuDNN's graph API) and cublaslt.c
 * (matrix products on cuBLASLt).
 *
 * Layout: every tensor is plain row-major (NCHW) on the device, as on the
 * graph's edges; cuDNN gets NCHW strides. Numerics: fp32 with TF32 off
 * (engines that would use tensor cores on fp32 data are skipped, cuBLASLt
 * computes in CUBLAS_COMPUTE_32F), so results compare with the CPU's.
 */
#ifndef OT_EXEC_CUDA_H
#define OT_EXEC_CUDA_H

#include <pthread.h>

#include "exec/exec_impl.h"
#include "cuda_kernels.h"
#include "cuda_load.h"

typedef struct ot_conv_plan ot_conv_plan;

/* One CUDA device as the process uses it: the libraries' handles, cuDNN's
   device-property descriptor and the plan cache. Made on first use, kept
   for the process; runs on one device take its lock. */
typedef struct ot_cuda_dev {
    int index;
    const ot_cudnn_api *dnn;
    const ot_cublaslt_api *lt;
    cudnnHandle_t dnn_handle;
    cublasLtHandle_t lt_handle;
    cudnnBackendDescriptor_t devprop;
    int sm_count;
    size_t total_mem;
    pthread_mutex_t lock;
    ot_conv_plan *plans; /* the plan cache, a list */
    int n_plans;
} ot_cuda_dev;

ot_status ot_cuda_dev_get(int index, ot_cuda_dev **out, ot_err *err);

/* Largest workspace a convolution plan or a matrix product may take. */
#define OT_CUDA_WS_CAP ((size_t)512 << 20)

/* ---------------------------------------------------------------- cuDNN */

typedef enum { OT_CONV_FWD = 0, OT_CONV_DGRAD, OT_CONV_WGRAD } ot_conv_kind;

/* One convolution for cuDNN: dims of x, w and y (rank 4 or 5: 1-D
   convolutions get a spatial dim of 1), the spatial parameters, the kind. */
typedef struct ot_conv_geom {
    ot_conv_kind kind;
    int nd;
    int64_t x[5], w[5], y[5];
    int64_t pre[3], post[3], stride[3], dil[3];
} ot_conv_geom;

/* The geometry of a Conv (x, w, y), ConvGradData (dx, w, dy) or
   ConvGradFilter (x, dw, dy) node. Errors: OT_ERR_UNSUPPORTED (not float,
   spatial rank above 3). */
ot_status ot_conv_geom_of(const ot_graph *g, const ot_node *n, const ot_tensor *x,
                          const ot_tensor *w, const ot_tensor *y, ot_conv_kind kind,
                          ot_conv_geom *q, ot_err *err);

/* The descriptors of one convolution that need no device: x, w, y, the
   convolution and the operation. */
typedef struct ot_conv_descs {
    cudnnBackendDescriptor_t x, w, y, conv, op;
} ot_conv_descs;

ot_status ot_conv_descs_build(const ot_cudnn_api *api, const ot_conv_geom *q, ot_conv_descs *d,
                              ot_err *err);
void ot_conv_descs_free(const ot_cudnn_api *api, ot_conv_descs *d);

/* The plan of a convolution on the device: from the cache (keyed by the
   geometry, the dtype, the cuDNN version and the device), else the first
   configuration of heuristics mode A that finalizes within the workspace cap
   and does not use TF32; *ws its workspace bytes. */
ot_status ot_conv_plan_get(ot_cuda_dev *dev, const ot_conv_geom *q, const ot_conv_plan **out,
                           size_t *ws, ot_err *err);

/* The variant pack of a plan on fixed addresses (x, w, y in the geometry's
   roles: dx, dy and dw for the gradients). */
ot_status ot_conv_varpack(ot_cuda_dev *dev, const ot_conv_plan *p, void *x, void *w, void *y,
                          void *ws, cudnnBackendDescriptor_t *out, ot_err *err);
ot_status ot_conv_run(ot_cuda_dev *dev, const ot_conv_plan *p, cudnnBackendDescriptor_t vp,
                      ot_err *err);

/* ------------------------------------------------------------- cuBLASLt */

/* Row-major D[m, n] = alpha * op(A) op(B) + beta * C, `batch` times with
   element strides sa, sb between the items of A and B (0: the same matrix
   for every item); C is laid out like D (stride m * n; C may be D). A is
   stored [k, m] when ta, else [m, k]; B is stored [n, k] when tb, else
   [k, n]. */
typedef struct ot_gemm_geom {
    int64_t m, n, k;
    bool ta, tb;
    int64_t batch, sa, sb;
    float alpha, beta;
} ot_gemm_geom;

typedef struct ot_gemm {
    ot_gemm_geom q;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
    size_t ws;
    bool ready;
} ot_gemm;

/* The descriptors and the heuristic's first algorithm. */
ot_status ot_gemm_build(ot_cuda_dev *dev, const ot_gemm_geom *q, ot_gemm *out, ot_err *err);
ot_status ot_gemm_run(ot_cuda_dev *dev, const ot_gemm *g, void *stream, const void *a,
                      const void *b, const void *c, void *d, void *ws, ot_err *err);
void ot_gemm_free(ot_cuda_dev *dev, ot_gemm *g);
/* The descriptors alone (no device), for tests. */
ot_status ot_gemm_descs(const ot_cublaslt_api *lt, const ot_gemm_geom *q, ot_gemm *out,
                        ot_err *err);

#endif
