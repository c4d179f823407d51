/*
 * cuda_load.c: opening cuDNN and cuBLASLt with dlopen, and telling whether a
 * CUDA device is usable here (see cuda_load.h).
 *
 * Every symbol the backend calls is looked up by name into the tables; a
 * library without one of them is reported as not being the library asked
 * for. The first load's result (the table or the error) is kept for the
 * process.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "cuda_load.h"

/* One library: a path given in the environment, else the sonames in the
   loader's path, else the same names under the toolkit's folder. */
static void *open_lib(const char *env, const char *const *names, char *tried, size_t size)
{
    const char *path = getenv(env);
    if (path && path[0]) {
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!h)
            snprintf(tried, size, "%s", dlerror());
        return h;
    }
    for (int i = 0; names[i]; i++) {
        void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (h)
            return h;
    }
    const char *home = getenv("CUDA_HOME");
    char full[512];
    for (int i = 0; names[i]; i++) {
        snprintf(full, sizeof full, "%s/lib64/%s", home && home[0] ? home : "/usr/local/cuda",
                 names[i]);
        void *h = dlopen(full, RTLD_NOW | RTLD_LOCAL);
        if (h)
            return h;
    }
    snprintf(tried, size, "%s not found (set %s to its path)", names[0], env);
    return NULL;
}

#define LOOKUP(name)                                                                            \
    if (!missing) {                                                                             \
        *(void **)&api->name = dlsym(h, #name);                                                 \
        if (!api->name)                                                                         \
            missing = #name;                                                                    \
    }

/* cuDNN 9 numbers its versions major * 10000 + minor * 100 + patch, cuDNN 8
   and older major * 1000 + minor * 100 + patch. */
static void cudnn_version_str(size_t v, char *buf, size_t size)
{
    if (v >= 10000)
        snprintf(buf, size, "%zu.%zu.%zu", v / 10000, v / 100 % 100, v % 100);
    else
        snprintf(buf, size, "%zu.%zu.%zu", v / 1000, v / 100 % 10, v % 100);
}

static const char *const cudnn_names[] = { "libcudnn.so.9", NULL };
static const char *const cublaslt_names[] = { "libcublasLt.so.13", "libcublasLt.so.12", NULL };

ot_status ot_cudnn_open(const char *path, ot_cudnn_api *api, void **dl, ot_err *err)
{
    char tried[512] = "";
    void *h = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : open_lib("ONNXTRAIN_CUDNN", cudnn_names,
                                                                    tried, sizeof tried);
    memset(api, 0, sizeof *api);
    *dl = NULL;
    if (!h) {
        if (path)
            snprintf(tried, sizeof tried, "%s", dlerror());
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "cuDNN library missing: %s", tried);
    }
    const char *missing = NULL;
    OT_CUDNN_FNS(LOOKUP)
    if (missing) {
        dlclose(h);
        return ot_err_set(err, OT_ERR_UNSUPPORTED,
                          "cuDNN library unusable: it has no %s (cuDNN 9 is needed)", missing);
    }
    api->version = api->cudnnGetVersion();
    if (api->version < OT_CUDNN_MIN_VERSION) {
        char v[32];
        cudnn_version_str(api->version, v, sizeof v);
        dlclose(h);
        return ot_err_set(err, OT_ERR_UNSUPPORTED,
                          "cuDNN %s is too old (%d.%d or newer is needed)", v,
                          OT_CUDNN_MIN_VERSION / 10000, OT_CUDNN_MIN_VERSION / 100 % 100);
    }
    *dl = h;
    return OT_OK;
}

ot_status ot_cublaslt_open(const char *path, ot_cublaslt_api *api, void **dl, ot_err *err)
{
    char tried[512] = "";
    void *h = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL)
                   : open_lib("ONNXTRAIN_CUBLASLT", cublaslt_names, tried, sizeof tried);
    memset(api, 0, sizeof *api);
    *dl = NULL;
    if (!h) {
        if (path)
            snprintf(tried, sizeof tried, "%s", dlerror());
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "cuBLASLt library missing: %s", tried);
    }
    const char *missing = NULL;
    OT_CUBLASLT_FNS(LOOKUP)
    if (missing) {
        dlclose(h);
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "cuBLASLt library unusable: it has no %s",
                          missing);
    }
    api->version = api->cublasLtGetVersion();
    if (api->version < OT_CUBLASLT_MIN_VERSION) {
        size_t v = api->version;
        dlclose(h);
        return ot_err_set(err, OT_ERR_UNSUPPORTED,
                          "cuBLASLt %zu.%zu.%zu is too old (%d.0 or newer is needed)", v / 10000,
                          v / 100 % 100, v % 100, OT_CUBLASLT_MIN_VERSION / 10000);
    }
    *dl = h;
    return OT_OK;
}

static struct {
    pthread_once_t once;
    ot_cudnn_api dnn;
    ot_cublaslt_api lt;
    ot_status dnn_st, lt_st;
    ot_err dnn_err, lt_err;
} libs = { .once = PTHREAD_ONCE_INIT };

static void load_once(void)
{
    void *dl;
    ot_err_init(&libs.dnn_err);
    ot_err_init(&libs.lt_err);
    libs.dnn_st = ot_cudnn_open(NULL, &libs.dnn, &dl, &libs.dnn_err);
    libs.lt_st = ot_cublaslt_open(NULL, &libs.lt, &dl, &libs.lt_err);
    /* the libraries stay open for the process */
}

ot_status ot_cudnn_load(const ot_cudnn_api **out, ot_err *err)
{
    pthread_once(&libs.once, load_once);
    *out = NULL;
    if (libs.dnn_st != OT_OK)
        return ot_err_set(err, libs.dnn_st, "%s", libs.dnn_err.msg);
    *out = &libs.dnn;
    return OT_OK;
}

ot_status ot_cublaslt_load(const ot_cublaslt_api **out, ot_err *err)
{
    pthread_once(&libs.once, load_once);
    *out = NULL;
    if (libs.lt_st != OT_OK)
        return ot_err_set(err, libs.lt_st, "%s", libs.lt_err.msg);
    *out = &libs.lt;
    return OT_OK;
}

ot_status ot_cuda_probe(int index, ot_err *err)
{
    const ot_cudnn_api *dnn;
    const ot_cublaslt_api *lt;
    ot_status st = ot_cudnn_load(&dnn, err);
    if (st == OT_OK)
        st = ot_cublaslt_load(&lt, err);
    if (st != OT_OK)
        return st;
    int drv = 0, n = 0;
    if (cudaDriverGetVersion(&drv) != cudaSuccess || drv == 0)
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "no CUDA driver (libcuda.so.1 not found)");
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e == cudaErrorInsufficientDriver || drv < CUDART_VERSION)
        return ot_err_set(err, OT_ERR_UNSUPPORTED,
                          "the CUDA driver (%d.%d) is too old for this build (CUDA %d.%d)",
                          drv / 1000, drv % 1000 / 10, CUDART_VERSION / 1000,
                          CUDART_VERSION % 1000 / 10);
    if (e == cudaErrorNoDevice || (e == cudaSuccess && n == 0))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "no CUDA device");
    if (e != cudaSuccess)
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "CUDA: %s", cudaGetErrorString(e));
    if (index >= n)
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "no CUDA device %d (%d device%s here)", index,
                          n, n == 1 ? "" : "s");
    return OT_OK;
}

int ot_cuda_device_count(void)
{
    int drv = 0, n = 0;
    if (cudaDriverGetVersion(&drv) != cudaSuccess || drv == 0)
        return 0;
    return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

void ot_cuda_describe(char *buf, size_t size)
{
    const ot_cudnn_api *dnn = NULL;
    const ot_cublaslt_api *lt = NULL;
    ot_err err;
    ot_err_init(&err);
    int drv = 0, n = 0;
    struct cudaDeviceProp p;
    ot_cudnn_load(&dnn, &err);
    ot_cublaslt_load(&lt, &err);
    cudaDriverGetVersion(&drv);
    if (cudaGetDeviceCount(&n) != cudaSuccess)
        n = 0;
    memset(&p, 0, sizeof p);
    if (n > 0 && cudaGetDeviceProperties(&p, 0) != cudaSuccess)
        snprintf(p.name, sizeof p.name, "?");
    size_t dv = dnn ? dnn->version : 0, lv = lt ? lt->version : 0;
    snprintf(buf, size, "cuDNN %zu.%zu.%zu, cuBLASLt %zu.%zu.%zu, driver %d.%d, %d device%s%s%s%s",
             dv / 10000, dv / 100 % 100, dv % 100, lv / 10000, lv / 100 % 100, lv % 100,
             drv / 1000, drv % 1000 / 10, n, n == 1 ? "" : "s", n > 0 ? " (" : "",
             n > 0 ? p.name : "", n > 0 ? ")" : "");
}
