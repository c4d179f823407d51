/*
 * test_cuda.c: the CUDA backend's parts that run without a GPU: device
 * names, the run-time loading of cuDNN and cuBLASLt and its errors, and
 * cuDNN's backend descriptors (tensors, convolutions, the forward,
 * backward-data and backward-filter operations), which finalize without a
 * device, as do cuBLASLt's matmul descriptors. In a build without CUDA
 * (make CUDA=0) only the device names are checked.
 */
#include <stdio.h>
#include <string.h>

#include "exec/exec.h"
#include "test.h"
#if OT_CUDA
#include "exec/cuda/cuda.h"
#endif

TEST(cuda_device_names)
{
    ot_device d;
    ot_err err;
    ot_err_init(&err);
    CHECK_EQ_INT(ot_device_parse("cuda:x", &d, &err), OT_ERR_ARG);
    CHECK_EQ_INT(ot_device_parse("cuda:01", &d, &err), OT_ERR_ARG);
    CHECK_EQ_INT(ot_device_parse("gpu", &d, &err), OT_ERR_ARG);
    CHECK(strstr(err.msg, "cpu, cuda, cuda:N") != NULL);
    ot_status st = ot_device_parse("cuda:3", &d, &err);
    CHECK_EQ_INT(d.kind, OT_DEVICE_CUDA);
    CHECK_EQ_INT(d.index, 3);
    char name[32];
    CHECK_STR(ot_device_name(&d, name, sizeof name), "cuda:3");
    char all[2048];
    ot_device_backends(all, sizeof all);
    CHECK(strstr(all, "cpu: built in, usable\n") != NULL);
#if OT_CUDA
    /* usable only where a GPU is; otherwise the one line says why */
    if (st != OT_OK) {
        CHECK_EQ_INT(st, OT_ERR_UNSUPPORTED);
        CHECK(strstr(err.msg, "device 'cuda:3' is not usable: ") == err.msg);
        CHECK(!strchr(err.msg, '\n'));
    }
    CHECK(strstr(all, "cuda: built in, ") != NULL);
#else
    CHECK_EQ_INT(st, OT_ERR_UNSUPPORTED);
    CHECK(strstr(err.msg, "this build has no CUDA backend") != NULL);
    CHECK(strstr(all, "cuda: not built in\n") != NULL);
#endif
}

#if OT_CUDA

TEST(cuda_loader_errors)
{
    ot_cudnn_api dnn;
    ot_cublaslt_api lt;
    void *dl = (void *)1;
    ot_err err;
    ot_err_init(&err);
    CHECK_EQ_INT(ot_cudnn_open("/nonexistent/libcudnn.so.9", &dnn, &dl, &err), OT_ERR_UNSUPPORTED);
    CHECK(strstr(err.msg, "cuDNN library missing: ") == err.msg);
    CHECK(dl == NULL);
    CHECK_EQ_INT(ot_cublaslt_open("/nonexistent/libcublasLt.so.13", &lt, &dl, &err),
                 OT_ERR_UNSUPPORTED);
    CHECK(strstr(err.msg, "cuBLASLt library missing: ") == err.msg);
    /* a library that is not the one asked for */
    CHECK_EQ_INT(ot_cudnn_open("libz.so.1", &dnn, &dl, &err), OT_ERR_UNSUPPORTED);
    CHECK_STR(err.msg, "cuDNN library unusable: it has no cudnnGetVersion (cuDNN 9 is needed)");
    CHECK_EQ_INT(ot_cublaslt_open("libz.so.1", &lt, &dl, &err), OT_ERR_UNSUPPORTED);
    CHECK_STR(err.msg, "cuBLASLt library unusable: it has no cublasLtGetVersion");
}

/* The toolkit's cuDNN, or NULL (then the descriptor tests say skipped). */
static const ot_cudnn_api *dnn_or_skip(void)
{
    const ot_cudnn_api *api = NULL;
    ot_err err;
    ot_err_init(&err);
    if (ot_cudnn_load(&api, &err) != OT_OK) {
        printf("  skipped: %s\n", err.msg);
        return NULL;
    }
    return api;
}

static ot_conv_geom geom(ot_conv_kind kind, int nd, const int64_t *x, const int64_t *w,
                         const int64_t *y, int64_t pad, int64_t stride, int64_t dil)
{
    ot_conv_geom q;
    memset(&q, 0, sizeof q);
    q.kind = kind;
    q.nd = nd;
    memcpy(q.x, x, sizeof(int64_t) * (size_t)nd);
    memcpy(q.w, w, sizeof(int64_t) * (size_t)nd);
    memcpy(q.y, y, sizeof(int64_t) * (size_t)nd);
    for (int i = 0; i < nd - 2; i++) {
        q.pre[i] = q.post[i] = pad;
        q.stride[i] = stride;
        q.dil[i] = dil;
    }
    return q;
}

TEST(cuda_cudnn_descriptors_finalize_without_a_device)
{
    const ot_cudnn_api *api = dnn_or_skip();
    if (!api)
        return;
    ot_err err;
    ot_err_init(&err);
    ot_conv_descs d;
    /* ResNet-18's stem, a strided 1x1, a depthwise 3x3, a dilated one, a 3-D one */
    const struct {
        int nd;
        int64_t x[5], w[5], y[5], pad, stride, dil;
    } cases[] = {
        { 4, { 2, 3, 32, 32 }, { 64, 3, 7, 7 }, { 2, 64, 16, 16 }, 3, 2, 1 },
        { 4, { 2, 64, 8, 8 }, { 128, 64, 1, 1 }, { 2, 128, 4, 4 }, 0, 2, 1 },
        { 4, { 2, 32, 8, 8 }, { 32, 1, 3, 3 }, { 2, 32, 8, 8 }, 1, 1, 1 },
        { 4, { 1, 8, 16, 16 }, { 8, 8, 3, 3 }, { 1, 8, 16, 16 }, 2, 1, 2 },
        { 5, { 1, 4, 6, 6, 6 }, { 8, 4, 3, 3, 3 }, { 1, 8, 6, 6, 6 }, 1, 1, 1 },
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
        for (int k = OT_CONV_FWD; k <= OT_CONV_WGRAD; k++) {
            ot_conv_geom q = geom((ot_conv_kind)k, cases[c].nd, cases[c].x, cases[c].w,
                                  cases[c].y, cases[c].pad, cases[c].stride, cases[c].dil);
            ot_status st = ot_conv_descs_build(api, &q, &d, &err);
            if (st != OT_OK)
                printf("  case %zu kind %d: %s\n", c, k, err.msg);
            CHECK_OK(st, &err);
            CHECK(d.x && d.w && d.y && d.conv && d.op);
            ot_conv_descs_free(api, &d);
            CHECK(!d.op && !d.x);
        }
    /* an output shape that does not follow from the input fails to finalize,
       with cuDNN's reason in one line */
    ot_conv_geom bad = geom(OT_CONV_FWD, 4, (const int64_t[]){ 2, 3, 32, 32 },
                            (const int64_t[]){ 64, 3, 7, 7 }, (const int64_t[]){ 2, 64, 15, 15 }, 3,
                            2, 1);
    CHECK_EQ_INT(ot_conv_descs_build(api, &bad, &d, &err), OT_ERR_BACKEND);
    CHECK(strstr(err.msg, "cuDNN: operation: ") == err.msg);
    CHECK(!strchr(err.msg, '\n'));
    CHECK(!d.op && !d.x);
}

TEST(cuda_cublaslt_descriptors_without_a_device)
{
    const ot_cublaslt_api *lt = NULL;
    ot_err err;
    ot_err_init(&err);
    if (ot_cublaslt_load(&lt, &err) != OT_OK) {
        printf("  skipped: %s\n", err.msg);
        return;
    }
    ot_gemm g;
    ot_gemm_geom q = { .m = 8, .n = 10, .k = 512, .tb = true, .batch = 1, .alpha = 1.0f };
    CHECK_OK(ot_gemm_descs(lt, &q, &g, &err), &err);
    CHECK(g.desc && g.la && g.lb && g.lc);
    ot_cuda_dev dev = { .lt = lt };
    ot_gemm_free(&dev, &g);
    CHECK(!g.desc);
    ot_gemm_geom batched = { .m = 4, .n = 4, .k = 4, .batch = 3, .sa = 16, .sb = 0, .alpha = 1.0f };
    CHECK_OK(ot_gemm_descs(lt, &batched, &g, &err), &err);
    ot_gemm_free(&dev, &g);
    ot_gemm_geom empty = { .m = 0, .n = 4, .k = 4, .batch = 1 };
    CHECK_EQ_INT(ot_gemm_descs(lt, &empty, &g, &err), OT_ERR_UNSUPPORTED);
}

#endif
