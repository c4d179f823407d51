/*
 * cuda_load.h: cuDNN and cuBLASLt, loaded at run time.
 *
 * The CUDA runtime is linked statically (it loads the driver, libcuda.so.1,
 * itself on first use); cuDNN and cuBLASLt are opened with dlopen into a
 * table of function pointers the first time a CUDA device is asked for, so
 * the same binary starts where there is no driver, no GPU and neither
 * library. ot_cuda_probe says whether a device is usable and, when not, why
 * in one line: a library missing or too old, no driver or one too old for
 * this runtime, no device, or fewer devices than the index asks for.
 *
 * ONNXTRAIN_CUDNN and ONNXTRAIN_CUBLASLT name a library file to open instead
 * of the default search (libcudnn.so.9, libcublasLt.so.13 then .12, in the
 * dynamic loader's path, then under CUDA_HOME or /usr/local/cuda).
 */
#ifndef OT_EXEC_CUDA_LOAD_H
#define OT_EXEC_CUDA_LOAD_H

#include <cublasLt.h>
#include <cudnn_backend.h>
#include <cudnn_graph.h>

#include "cuda_backend.h"

/* The oldest cuDNN the backend uses: its device-property descriptor
   (CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR) replaces the deprecated handle
   attributes of operation graphs and plans. */
#define OT_CUDNN_MIN_VERSION 90800
#define OT_CUBLASLT_MIN_VERSION 120000

#define OT_CUDNN_FNS(X)                                                                         \
    X(cudnnGetVersion) X(cudnnGetErrorString) X(cudnnGetLastErrorString) X(cudnnCreate)         \
    X(cudnnDestroy) X(cudnnSetStream) X(cudnnBackendCreateDescriptor)                            \
    X(cudnnBackendDestroyDescriptor) X(cudnnBackendFinalize) X(cudnnBackendSetAttribute)         \
    X(cudnnBackendGetAttribute) X(cudnnBackendExecute)

#define OT_CUBLASLT_FNS(X)                                                                      \
    X(cublasLtGetVersion) X(cublasLtGetStatusString) X(cublasLtCreate) X(cublasLtDestroy)       \
    X(cublasLtMatmul) X(cublasLtMatmulDescCreate) X(cublasLtMatmulDescDestroy)                  \
    X(cublasLtMatmulDescSetAttribute) X(cublasLtMatrixLayoutCreate)                             \
    X(cublasLtMatrixLayoutDestroy) X(cublasLtMatrixLayoutSetAttribute)                          \
    X(cublasLtMatmulPreferenceCreate) X(cublasLtMatmulPreferenceDestroy)                        \
    X(cublasLtMatmulPreferenceSetAttribute) X(cublasLtMatmulAlgoGetHeuristic)                  \
    X(cublasLtMatrixLayoutGetAttribute)

#define OT_CUDA_FN_FIELD(name) __typeof__(&name) name;

typedef struct ot_cudnn_api {
    size_t version; /* cudnnGetVersion(): 91900 for 9.19.0 */
    OT_CUDNN_FNS(OT_CUDA_FN_FIELD)
} ot_cudnn_api;

typedef struct ot_cublaslt_api {
    size_t version; /* cublasLtGetVersion(): 130100 for 13.1.0 */
    OT_CUBLASLT_FNS(OT_CUDA_FN_FIELD)
} ot_cublaslt_api;

/* cuDNN, opened on the first call (later calls return the same table or
   the same error). Errors: OT_ERR_UNSUPPORTED, naming the library and why. */
ot_status ot_cudnn_load(const ot_cudnn_api **out, ot_err *err);
ot_status ot_cublaslt_load(const ot_cublaslt_api **out, ot_err *err);

/* Opens one library file (or, with NULL, the default search) into a table
   without keeping it: what the loaders do, for tests. */
ot_status ot_cudnn_open(const char *path, ot_cudnn_api *api, void **dl, ot_err *err);
ot_status ot_cublaslt_open(const char *path, ot_cublaslt_api *api, void **dl, ot_err *err);

#endif
