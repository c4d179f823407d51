/*
 * cuda.h: the CUDA backend's internals, shared by cuda.c (steps, memory,
 * running), cudnn_conv.c (convolutions on cuDNN's graph API), cudnn_fused.c
 * (their fused epilogues), cudnn_desc.c (the descriptors both are built
 * from) and cublaslt.c (matrix products on cuBLASLt).
 *
 * Layout: the graph's edges are plain row-major (NCHW); inside, the layout
 * pass (cuda_layout.h) keeps rank-4 activations channels-last (NHWC) along
 * the convolutions' chains, and cuDNN gets NHWC strides for them and the
 * filter as KRSC (ot_conv_geom.nhwc); ONNXTRAIN_CUDA_NHWC=0 keeps every
 * tensor NCHW. Numerics: fp32 with TF32 off
 * (engines that would use tensor cores on fp32 data are skipped, cuBLASLt
 * computes in CUBLAS_COMPUTE_32F), so results compare with the CPU's;
 * --precision tf32 allows TF32 (tensor-core engines, and
 * CUBLAS_COMPUTE_32F_FAST_TF32).
 */
#ifndef OT_EXEC_CUDA_H
#define OT_EXEC_CUDA_H

#include <pthread.h>

#include "exec/exec_impl.h"
#include "cuda_kernels.h"
#include "cuda_load.h"
#include "plan_store.h"

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
    char name[256];       /* the device's name, in plan keys                  */
    int cc_major, cc_minor; /* compute capability, in plan keys             */
    ot_exec_plan_opts opts; /* as last configured (autotune)                */
    bool disk;            /* plans persist in dir                            */
    char dir[4096];
    ot_plan_store store;  /* the disk cache's records (loaded from dir)      */
    bool store_dirty;     /* records not yet written                         */
    int n_reused, n_made, n_timed; /* plans from disk, made, made by timing  */
} ot_cuda_dev;

ot_status ot_cuda_dev_get(int index, ot_cuda_dev **out, ot_err *err);

/* Applies the process's plan options to the device (reading the disk cache
   of a new folder), and writes plans made since the last write back to it
   (a failure is a warning: the run goes on). */
void ot_cuda_plans_configure(ot_cuda_dev *dev, const ot_exec_plan_opts *o);
void ot_cuda_plans_flush(ot_cuda_dev *dev);

/* Autotune: how many acceptable configurations of the heuristics' list are
   timed, and how many timed runs each gets after a warm-up. */
#define OT_CONV_TUNE_CANDIDATES 8
#define OT_CONV_TUNE_RUNS 3

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
    bool tf32; /* --precision tf32: engines may use TF32 tensor cores */
    ot_dtype half; /* --precision bf16 or fp16: x, w and y of this type
                      (OT_DTYPE_BFLOAT16, OT_DTYPE_FLOAT16), computed in
                      fp32; 0: float32 */
    bool nhwc;     /* x and y (dx, dy) channels-last, w (dw) KRSC; the dims
                      stay [N, C, H, W] and [K, C, R, S] (2-D only) */
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
/* The same, the convolution's output (y forward, dx backward-data) virtual
   when virtual_out: an epilogue reads it (cudnn_fused.c). */
ot_status ot_conv_descs_build_virtual(const ot_cudnn_api *api, const ot_conv_geom *q,
                                      bool virtual_out, ot_conv_descs *d, ot_err *err);

/* The tensors' unique ids in variant packs. */
enum {
    OT_CONV_UID_X = 1, OT_CONV_UID_W = 2, OT_CONV_UID_Y = 3,
    OT_CONV_UID_BIAS = 4,     /* fused forward: [1, C, 1, 1]                    */
    OT_CONV_UID_Z = 5,        /* fused forward: the residual added              */
    OT_CONV_UID_RELU = 6,     /* fused backward-data: the ReLU's tensor         */
    OT_CONV_UID_OUT = 7,      /* fused: what the graph writes                   */
    OT_CONV_UID_CONV_OUT = 99, /* fused: the convolution's virtual output       */
    OT_CONV_UID_VIRTUAL = 100, /* fused: further virtual tensors from here      */
};

/* The descriptors every graph is made of (cudnn_desc.c); on error nothing
   is left to free, and *out is NULL.
   - ot_cudnn_strides: the element strides of dims [N, C, spatial...] (rank
     nd) stored row-major, or channels-last when nhwc ([N, spatial..., C]);
   - a tensor of nd dims with their strides in elements (NULL: packed
     row-major), its unique id, virtual (never in memory) or not, of dtype
     dt (OT_DTYPE_FLOAT, OT_DTYPE_BFLOAT16, OT_DTYPE_FLOAT16; 0: float);
     ot_cudnn_conv_tensor: one in a convolution's layout (q->nhwc);
   - a convolution (cross-correlation, fp32 compute) of `spatial` dims, and
     its forward, backward-data or backward-filter operation on x, w and y
     (dx, w, dy for backward-data; x, dw, dy for backward-filter);
   - a pointwise operation out = mode(a, b) (b NULL: unary; RELU_BWD reads
     a as dy and b as the ReLU's tensor, and writes dx), computing in fp32:
     *pw its pointwise descriptor and *op the operation, both the caller's;
   - an operation graph of finalized operations;
   - a variant pack of n device addresses by unique id, and the workspace.
   None of these needs a device. With the device's property descriptor
   (NULL: the current device):
   - heuristics mode A's engine configurations for a graph (*cfgs: n of
     them, freed with ot_cudnn_cfgs_free);
   - the execution plan of a configuration, or NULL when it does not
     finalize or needs more than `cap` bytes of workspace (*ws).
   ot_cudnn_fail: a cuDNN failure as one line "cuDNN: WHAT: STATUS: LAST
   ERROR". */
void ot_cudnn_strides(int nd, const int64_t *dims, bool nhwc, int64_t *strides);
ot_status ot_cudnn_tensor(const ot_cudnn_api *api, int nd, const int64_t *dims,
                          const int64_t *strides, int64_t uid, bool is_virtual, ot_dtype dt,
                          cudnnBackendDescriptor_t *out, ot_err *err);
ot_status ot_cudnn_conv_tensor(const ot_cudnn_api *api, const ot_conv_geom *q,
                               const int64_t *dims, int64_t uid, bool is_virtual, ot_dtype dt,
                               cudnnBackendDescriptor_t *out, ot_err *err);
ot_status ot_cudnn_conv(const ot_cudnn_api *api, int spatial, const int64_t *pre,
                        const int64_t *post, const int64_t *stride, const int64_t *dil,
                        cudnnBackendDescriptor_t *out, ot_err *err);
ot_status ot_cudnn_conv_op(const ot_cudnn_api *api, ot_conv_kind kind,
                           cudnnBackendDescriptor_t conv, cudnnBackendDescriptor_t x,
                           cudnnBackendDescriptor_t w, cudnnBackendDescriptor_t y,
                           cudnnBackendDescriptor_t *out, ot_err *err);
ot_status ot_cudnn_pointwise(const ot_cudnn_api *api, cudnnPointwiseMode_t mode,
                             cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b,
                             cudnnBackendDescriptor_t out, cudnnBackendDescriptor_t *pw,
                             cudnnBackendDescriptor_t *op, ot_err *err);
ot_status ot_cudnn_graph(const ot_cudnn_api *api, cudnnBackendDescriptor_t *ops, int n_ops,
                         cudnnBackendDescriptor_t *graph, ot_err *err);
ot_status ot_cudnn_varpack(const ot_cudnn_api *api, int n, void *const *ptrs,
                           const int64_t *uids, void *ws, cudnnBackendDescriptor_t *out,
                           ot_err *err);
ot_status ot_cudnn_heuristics(const ot_cudnn_api *api, cudnnBackendDescriptor_t graph,
                              cudnnBackendDescriptor_t devprop, cudnnBackendDescriptor_t **cfgs,
                              int64_t *n, ot_err *err);
void ot_cudnn_cfgs_free(const ot_cudnn_api *api, cudnnBackendDescriptor_t *cfgs, int64_t n);
cudnnBackendDescriptor_t ot_cudnn_plan(const ot_cudnn_api *api, cudnnBackendDescriptor_t cfg,
                                       cudnnBackendDescriptor_t devprop, size_t cap, int64_t *ws);
ot_status ot_cudnn_fail(const ot_cudnn_api *api, cudnnStatus_t s, const char *what, ot_err *err);

/* In a function with `api`, `st`, `err` and a `done:` label: a cuDNN call
   whose failure becomes the error (ot_cudnn_fail), and a shorter
   cudnnBackendSetAttribute. */
#define OT_DNN(call, what)                                                                      \
    do {                                                                                        \
        cudnnStatus_t s_ = (call);                                                              \
        if (s_ != CUDNN_STATUS_SUCCESS) {                                                       \
            st = ot_cudnn_fail(api, s_, what, err);                                             \
            goto done;                                                                          \
        }                                                                                       \
    } while (0)
#define OT_DNN_SET(desc, attr, type, count, ptr)                                                \
    api->cudnnBackendSetAttribute(desc, attr, type, count, ptr)

/* A convolution's fused epilogue (cudnn_fused.c): forward, any of + bias,
   + z (a residual of y's shape), then ReLU; backward-data, relu alone
   (ReLU's backward on dx, by the sign of the ReLU's tensor). Every tensor
   in memory is of the geometry's layout and dtype (q->nhwc, q->half), the
   virtual ones float. */
typedef struct ot_conv_epilogue {
    bool bias, add, relu;
} ot_conv_epilogue;

#define OT_CONV_FUSED_MAX_DESCS 24
typedef struct ot_conv_fused {
    ot_conv_descs conv;
    cudnnBackendDescriptor_t descs[OT_CONV_FUSED_MAX_DESCS]; /* tensors, pointwise ops */
    int n_descs, n_ops;
    cudnnBackendDescriptor_t graph;
} ot_conv_fused;

/* The operation graph of a convolution with its epilogue (needs no device).
   Errors: OT_ERR_UNSUPPORTED (backward-filter, an epilogue the kind has no
   form for, or none), OT_ERR_BACKEND (cuDNN refused a descriptor: its reason
   in one line). On error *f holds nothing. */
ot_status ot_conv_fused_build(const ot_cudnn_api *api, const ot_conv_geom *q,
                              const ot_conv_epilogue *e, ot_conv_fused *f, ot_err *err);
void ot_conv_fused_free(const ot_cudnn_api *api, ot_conv_fused *f);

/* The plan of a convolution with its epilogue (forward or backward-data),
   cached and kept on disk as ot_conv_plan_get's under a key naming the
   epilogue; never timed (--autotune times the plain convolutions). Errors:
   as ot_conv_plan_get's, and when no engine takes the graph: the caller
   then runs the steps unfused. */
ot_status ot_conv_fused_plan_get(ot_cuda_dev *dev, const ot_conv_geom *q,
                                 const ot_conv_epilogue *e, const ot_conv_plan **out, size_t *ws,
                                 ot_err *err);
/* Its variant pack: the convolution's input (x forward, dy backward-data)
   and w; forward, then bias (e->bias) and z (e->add: `other`);
   backward-data, the ReLU's tensor (`other`); and out. */
ot_status ot_conv_fused_varpack(ot_cuda_dev *dev, ot_conv_kind kind, const ot_conv_epilogue *e,
                                void *in, void *w, void *bias, void *other, void *out, void *ws,
                                cudnnBackendDescriptor_t *vp, ot_err *err);
/* The unique ids that variant pack gives its addresses, in its order (at
   most 5); how many. */
int ot_conv_fused_uids(ot_conv_kind kind, const ot_conv_epilogue *e, int64_t *uids);
void ot_conv_descs_free(const ot_cudnn_api *api, ot_conv_descs *d);

/* The plan key of a convolution (ot_plan_key of its kind, dtype, layout and
   shapes); false when it does not fit. */
bool ot_conv_plan_key(const ot_plan_env *env, const ot_conv_geom *q, char *key, size_t size);

/* An engine configuration as a record (engine index, knob choices), and a
   configuration of `graph` rebuilt from one (devprop may be NULL). */
ot_status ot_conv_engine_rec(const ot_cudnn_api *api, cudnnBackendDescriptor_t cfg,
                            ot_plan_rec *r, ot_err *err);
ot_status ot_conv_engine_cfg(const ot_cudnn_api *api, cudnnBackendDescriptor_t graph,
                             cudnnBackendDescriptor_t devprop, const ot_plan_rec *r,
                             cudnnBackendDescriptor_t *cfg, ot_err *err);

/* The plan of a convolution on the device: from the in-memory cache (keyed
   by ot_conv_plan_key), else from the disk cache's record of that key, else
   the first configuration of heuristics mode A that finalizes within the
   workspace cap and does not use TF32 (with autotune: the fastest of the
   first OT_CONV_TUNE_CANDIDATES such, timed with CUDA events), which the
   disk cache then records; *ws its workspace bytes. */
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
    bool tf32; /* CUBLAS_COMPUTE_32F_FAST_TF32 instead of CUBLAS_COMPUTE_32F */
    ot_dtype half; /* A and B of this type (OT_DTYPE_BFLOAT16, OT_DTYPE_FLOAT16),
                      C and D float32, CUBLAS_COMPUTE_32F; 0: all float32 */
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
