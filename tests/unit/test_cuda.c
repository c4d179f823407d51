/*
 * test_cuda.c: the CUDA backend's parts that run without a GPU: device
 * names, the run-time loading of cuDNN and cuBLASLt and its errors, and
 * cuDNN's backend descriptors (tensors, convolutions, the forward,
 * backward-data and backward-filter operations), which finalize without a
 * device, as do cuBLASLt's matmul descriptors. In a build without CUDA
 * (make CUDA=0) only the device names are checked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/exec.h"
#include "test.h"
#if OT_CUDA
#include "exec/cuda/cuda.h"
#include "exec/cuda/cuda_layout.h"
#include "ops/ops.h"
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
    ot_gemm_geom tf32 = q;
    tf32.tf32 = true;
    CHECK_OK(ot_gemm_descs(lt, &tf32, &g, &err), &err);
    ot_gemm_free(&dev, &g);
    ot_gemm_geom empty = { .m = 0, .n = 4, .k = 4, .batch = 1 };
    CHECK_EQ_INT(ot_gemm_descs(lt, &empty, &g, &err), OT_ERR_UNSUPPORTED);
}


/* ------------------------------------------------------------ plan cache */

TEST(cuda_plan_keys)
{
    const int64_t x[] = { 2, 64, 8, 8 }, w[] = { 64, 64, 3, 3 }, y[] = { 2, 64, 8, 8 };
    ot_conv_geom q = geom(OT_CONV_FWD, 4, x, w, y, 1, 1, 1);
    ot_plan_env env = { .cudnn_version = 91900, .device_name = "NVIDIA H200", .cc_major = 9 };
    char a[OT_PLAN_KEY_MAX], b[OT_PLAN_KEY_MAX];
    CHECK(ot_conv_plan_key(&env, &q, a, sizeof a));
    CHECK_STR(a, "conv0/f32/nchw/2,64,8,8;64,64,3,3;2,64,8,8;1,1;1,1;1,1;1,1;/cudnn91900/"
                 "NVIDIA_H200/sm90");
    CHECK(!strpbrk(a, " \t\n"));
    /* every part of the key tells plans apart */
    ot_plan_env other[] = { env, env, env, env };
    other[0].cudnn_version = 91800;
    other[1].device_name = "NVIDIA H100 80GB HBM3";
    other[2].cc_major = 8;
    other[3].cc_minor = 1;
    for (int i = 0; i < 4; i++) {
        CHECK(ot_conv_plan_key(&other[i], &q, b, sizeof b));
        CHECK(strcmp(a, b) != 0);
    }
    ot_conv_geom q2 = q;
    q2.kind = OT_CONV_DGRAD;
    CHECK(ot_conv_plan_key(&env, &q2, b, sizeof b) && strcmp(a, b) != 0);
    q2 = q;
    q2.x[0] = 3, q2.y[0] = 3;
    CHECK(ot_conv_plan_key(&env, &q2, b, sizeof b) && strcmp(a, b) != 0);
    q2 = q;
    q2.stride[1] = 2;
    CHECK(ot_conv_plan_key(&env, &q2, b, sizeof b) && strcmp(a, b) != 0);
    q2 = q;
    q2.tf32 = true;
    CHECK(ot_conv_plan_key(&env, &q2, b, sizeof b) && strcmp(a, b) != 0);
    CHECK(strstr(b, "conv0/tf32/nchw/") == b);
    /* too long for the buffer: refused, never cut */
    CHECK(!ot_conv_plan_key(&env, &q, b, 40));
    /* folders: given, else XDG_CACHE_HOME, else HOME's .cache */
    char dir[256];
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char save_xdg[512] = "", save_home[512] = "";
    if (xdg)
        snprintf(save_xdg, sizeof save_xdg, "%s", xdg);
    if (home)
        snprintf(save_home, sizeof save_home, "%s", home);
    CHECK(ot_plan_store_dir("/tmp/given", dir, sizeof dir));
    CHECK_STR(dir, "/tmp/given");
    setenv("XDG_CACHE_HOME", "/tmp/xdg", 1);
    CHECK(ot_plan_store_dir(NULL, dir, sizeof dir));
    CHECK_STR(dir, "/tmp/xdg/onnxtrain");
    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", "/tmp/home", 1);
    CHECK(ot_plan_store_dir(NULL, dir, sizeof dir));
    CHECK_STR(dir, "/tmp/home/.cache/onnxtrain");
    unsetenv("HOME");
    CHECK(!ot_plan_store_dir(NULL, dir, sizeof dir));
    if (xdg)
        setenv("XDG_CACHE_HOME", save_xdg, 1);
    if (home)
        setenv("HOME", save_home, 1);
}

static ot_plan_rec plan_rec(const char *key, int64_t engine, int n_knobs, double ms)
{
    ot_plan_rec r;
    memset(&r, 0, sizeof r);
    snprintf(r.key, sizeof r.key, "%s", key);
    r.engine = engine;
    r.ws = 1024 * engine;
    r.ms = ms;
    r.n_knobs = n_knobs;
    for (int i = 0; i < n_knobs; i++)
        r.knob_type[i] = i + 1, r.knob_value[i] = -i * 3;
    return r;
}

static size_t slurp(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
    return n;
}

static void spit(const char *path, const char *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(buf, 1, n, f);
        fclose(f);
    }
}

static int dir_entries(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p) {
        if (fscanf(p, "%d", &n) != 1)
            n = -1;
        pclose(p);
    }
    return n;
}

TEST(cuda_plan_store_file)
{
    char root[] = "/tmp/ot_plan_store_XXXXXX";
    CHECK(mkdtemp(root) != NULL);
    char dir[256], path[300], other[300];
    snprintf(dir, sizeof dir, "%s/a/b", root);
    snprintf(path, sizeof path, "%s/%s", dir, OT_PLAN_FILE);
    ot_err err;
    ot_err_init(&err);
    ot_plan_store s = { 0 }, t = { 0 };
    CHECK_EQ_INT(ot_plan_store_load(dir, &s), OT_PLAN_FILE_MISSING);
    ot_plan_rec r1 = plan_rec("conv0/k1/sm90", 3, 2, 0.25), r2 = plan_rec("conv1/k2/sm90", 7, 0, 0);
    CHECK_OK(ot_plan_store_put(&s, &r1, &err), &err);
    CHECK_OK(ot_plan_store_put(&s, &r2, &err), &err);
    ot_plan_rec bad = plan_rec("with blank", 1, 0, 0);
    CHECK_EQ_INT(ot_plan_store_put(&s, &bad, &err), OT_ERR_ARG);
    /* the folder and its parents are made; the write leaves only the file */
    CHECK_OK(ot_plan_store_save(&s, dir, &err), &err);
    CHECK_EQ_INT(dir_entries(dir), 1);
    CHECK_EQ_INT(ot_plan_store_load(dir, &t), OT_PLAN_FILE_OK);
    CHECK_EQ_INT(t.n, 2);
    const ot_plan_rec *g = ot_plan_store_find(&t, "conv0/k1/sm90");
    CHECK(g && g->engine == 3 && g->ws == 3072 && g->n_knobs == 2 && g->knob_type[1] == 2 &&
          g->knob_value[1] == -3 && g->ms > 0.2499 && g->ms < 0.2501);
    g = ot_plan_store_find(&t, "conv1/k2/sm90");
    CHECK(g && g->engine == 7 && g->n_knobs == 0);
    CHECK(!ot_plan_store_find(&t, "conv2"));
    /* a second writer merges with the file: its record replaces the same
       key, the others stay */
    ot_plan_store u = { 0 };
    ot_plan_rec r3 = plan_rec("conv0/k1/sm90", 9, 1, 0), r4 = plan_rec("conv9/k/sm80", 1, 0, 0);
    CHECK_OK(ot_plan_store_put(&u, &r3, &err), &err);
    CHECK_OK(ot_plan_store_put(&u, &r4, &err), &err);
    CHECK_OK(ot_plan_store_save(&u, dir, &err), &err);
    CHECK_EQ_INT(ot_plan_store_load(dir, &t), OT_PLAN_FILE_OK);
    CHECK_EQ_INT(t.n, 3);
    g = ot_plan_store_find(&t, "conv0/k1/sm90");
    CHECK(g && g->engine == 9);
    CHECK(ot_plan_store_find(&t, "conv1/k2/sm90") && ot_plan_store_find(&t, "conv9/k/sm80"));
    CHECK_EQ_INT(dir_entries(dir), 1);

    /* damaged files are ignored whole, and replaced by the next write */
    char good[8192], buf[8192];
    size_t n = slurp(path, good, sizeof good);
    CHECK(n > 0 && good[n - 1] == '\n');
    struct {
        const char *what;
        ot_plan_file_state want;
    } cases[] = { { "garbage", OT_PLAN_FILE_FOREIGN },  { "version", OT_PLAN_FILE_FOREIGN },
                  { "truncated", OT_PLAN_FILE_CORRUPT }, { "flipped", OT_PLAN_FILE_CORRUPT },
                  { "no end", OT_PLAN_FILE_CORRUPT },   { "empty", OT_PLAN_FILE_FOREIGN } };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        memcpy(buf, good, n);
        size_t m = n;
        if (!strcmp(cases[c].what, "garbage"))
            m = (size_t)snprintf(buf, sizeof buf, "\x7f" "ELF\x02\x01 not ours\n");
        else if (!strcmp(cases[c].what, "version"))
            buf[strlen("onnxtrain cudnn plan cache ")] = '2';
        else if (!strcmp(cases[c].what, "truncated"))
            m = n - 30;
        else if (!strcmp(cases[c].what, "flipped"))
            buf[40] ^= 1;
        else if (!strcmp(cases[c].what, "no end")) {
            m = n - 1;
            while (m > 0 && buf[m - 1] != '\n')
                m--;
        } else
            m = 0;
        spit(path, buf, m);
        CHECK_EQ_INT(ot_plan_store_load(dir, &t), cases[c].want);
        CHECK_EQ_INT(t.n, 0);
        CHECK_OK(ot_plan_store_save(&s, dir, &err), &err);
        CHECK_EQ_INT(ot_plan_store_load(dir, &t), OT_PLAN_FILE_OK);
        CHECK_EQ_INT(t.n, 2);
    }
    /* an end line whose count disagrees with the records */
    n = slurp(path, good, sizeof good);
    char *end = strstr(good, "\nend 2 ");
    CHECK(end != NULL);
    if (end) {
        end[5] = '3';
        spit(path, good, n);
        CHECK_EQ_INT(ot_plan_store_load(dir, &t), OT_PLAN_FILE_CORRUPT);
    }

    /* a folder that cannot be made: an error naming it, nothing written */
    snprintf(other, sizeof other, "%s/file", root);
    spit(other, "x", 1);
    char under[400];
    snprintf(under, sizeof under, "%s/sub", other);
    CHECK_EQ_INT(ot_plan_store_save(&s, under, &err), OT_ERR_IO);
    CHECK(strstr(err.msg, other) != NULL);
    CHECK_EQ_INT((int)slurp(other, buf, sizeof buf), 1);

    ot_plan_store_free(&s);
    ot_plan_store_free(&t);
    ot_plan_store_free(&u);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    CHECK(system(cmd) == 0);
}

/* An engine configuration rebuilt from its record: what the disk cache
   keeps and restores. Engine finalization may need a device; the part that
   does is reported skipped. */
TEST(cuda_engine_record_round_trip)
{
    const ot_cudnn_api *api = dnn_or_skip();
    if (!api)
        return;
    ot_err err;
    ot_err_init(&err);
    const int64_t x[] = { 2, 16, 8, 8 }, w[] = { 16, 16, 3, 3 }, y[] = { 2, 16, 8, 8 };
    ot_conv_geom q = geom(OT_CONV_FWD, 4, x, w, y, 1, 1, 1);
    ot_conv_descs d;
    cudnnBackendDescriptor_t graph = NULL, cfg = NULL;
    CHECK_OK(ot_conv_descs_build(api, &q, &d, &err), &err);
    ot_status st = ot_cudnn_graph(api, &d.op, 1, &graph, &err);
    if (st != OT_OK) {
        printf("  skipped (the operation graph needs a device): %s\n", err.msg);
        ot_conv_descs_free(api, &d);
        return;
    }
    ot_plan_rec r = plan_rec("k", 0, 0, 0), back;
    st = ot_conv_engine_cfg(api, graph, NULL, &r, &cfg, &err);
    if (st != OT_OK) {
        printf("  skipped (engines need a device): %s\n", err.msg);
    } else {
        memset(&back, 0, sizeof back);
        CHECK_OK(ot_conv_engine_rec(api, cfg, &back, &err), &err);
        CHECK(back.engine == 0);
        api->cudnnBackendDestroyDescriptor(cfg);
    }
    /* an engine index no cuDNN has: a one-line error, nothing left over */
    r.engine = 1 << 30;
    CHECK_EQ_INT(ot_conv_engine_cfg(api, graph, NULL, &r, &cfg, &err), OT_ERR_BACKEND);
    CHECK(!cfg && strstr(err.msg, "cuDNN: engine") == err.msg && !strchr(err.msg, '\n'));
    api->cudnnBackendDestroyDescriptor(graph);
    ot_conv_descs_free(api, &d);
}


static void sort_ids(int64_t *ids, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
            int64_t t = ids[j];
            ids[j] = ids[j - 1];
            ids[j - 1] = t;
        }
}

/* A fused graph's tensors: the unique ids of those in memory (sorted; at
   most 8), and whether each of those is of type `io` with the strides of
   the layout nhwc for its dims, and each virtual one float. Returns how
   many are in memory. */
static int fused_tensors(const ot_cudnn_api *api, const ot_conv_fused *f, cudnnDataType_t io,
                         bool nhwc, int64_t *uids, bool *types_ok)
{
    cudnnBackendDescriptor_t all[OT_CONV_FUSED_MAX_DESCS + 3] = { f->conv.x, f->conv.w,
                                                                   f->conv.y };
    int n_all = 3, n = 0;
    for (int i = 0; i < f->n_descs; i++)
        all[n_all++] = f->descs[i];
    *types_ok = true;
    for (int i = 0; i < n_all; i++) {
        int64_t uid = 0, got = 0, dims[5] = { 0 }, strides[5] = { 0 }, want[5];
        bool virt = false;
        cudnnDataType_t dt = CUDNN_DATA_INT8;
        /* only tensor descriptors have a unique id */
        if (api->cudnnBackendGetAttribute(all[i], CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1,
                                          &got, &uid) != CUDNN_STATUS_SUCCESS)
            continue;
        api->cudnnBackendGetAttribute(all[i], CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1,
                                      &got, &virt);
        api->cudnnBackendGetAttribute(all[i], CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1,
                                      &got, &dt);
        int64_t nd = 0;
        api->cudnnBackendGetAttribute(all[i], CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 5,
                                      &nd, dims);
        api->cudnnBackendGetAttribute(all[i], CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 5,
                                      &got, strides);
        ot_cudnn_strides((int)nd, dims, nhwc, want);
        if (nd != got || nd < 3 || memcmp(strides, want, sizeof(int64_t) * (size_t)nd))
            *types_ok = false;
        if (virt) {
            *types_ok = *types_ok && dt == CUDNN_DATA_FLOAT;
            continue;
        }
        *types_ok = *types_ok && dt == io;
        if (n < 8)
            uids[n++] = uid;
    }
    sort_ids(uids, n);
    return n;
}

/* Fused epilogues: the operation graphs of conv + bias + ReLU, conv + bias +
   residual Add + ReLU and backward-data + ReLU backward finalize without a
   device, in NCHW and in NHWC; their tensors in memory are exactly the ones
   the variant pack names (ot_conv_fused_uids: the executor's addresses
   reach every operand, and nothing else), all with the layout's strides,
   and the pack finalizes; forms that have no fused graph are refused. */
TEST(cuda_fused_graphs_finalize_without_a_device)
{
    const ot_cudnn_api *api = dnn_or_skip();
    if (!api)
        return;
    ot_err err;
    ot_err_init(&err);
    const int64_t x[] = { 2, 64, 8, 8 }, w[] = { 64, 64, 3, 3 }, y[] = { 2, 64, 8, 8 };
    const int64_t xs[] = { 2, 3, 32, 32 }, ws[] = { 64, 3, 7, 7 }, ys[] = { 2, 64, 16, 16 };
    const struct {
        ot_conv_kind kind;
        bool stem;
        ot_conv_epilogue e;
        int ops;
    } cases[] = {
        { OT_CONV_FWD, true, { .bias = true, .relu = true }, 3 },
        { OT_CONV_FWD, false, { .bias = true, .add = true, .relu = true }, 4 },
        { OT_CONV_FWD, false, { .add = true, .relu = true }, 3 },
        { OT_CONV_FWD, false, { .relu = true }, 2 },
        { OT_CONV_FWD, false, { .bias = true }, 2 },
        { OT_CONV_DGRAD, false, { .relu = true }, 2 },
        { OT_CONV_DGRAD, true, { .relu = true }, 2 },
    };
    for (int lay = 0; lay < 2; lay++)
        for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
            ot_conv_geom q = cases[c].stem ? geom(cases[c].kind, 4, xs, ws, ys, 3, 2, 1)
                                           : geom(cases[c].kind, 4, x, w, y, 1, 1, 1);
            q.nhwc = lay == 1;
            ot_conv_fused f;
            ot_status st = ot_conv_fused_build(api, &q, &cases[c].e, &f, &err);
            if (st != OT_OK)
                printf("  case %zu%s: %s\n", c, lay ? " (NHWC)" : "", err.msg);
            CHECK_OK(st, &err);
            if (st != OT_OK)
                continue;
            CHECK(f.graph != NULL);
            CHECK_EQ_INT(f.n_ops, cases[c].ops);
            int64_t in_mem[8], packed[8];
            bool types_ok;
            int n_mem = fused_tensors(api, &f, CUDNN_DATA_FLOAT, q.nhwc, in_mem, &types_ok);
            CHECK(types_ok);
            /* x (dy), w, out, and the epilogue's operands: the variant pack's ids */
            CHECK_EQ_INT(n_mem, 3 + cases[c].e.bias + cases[c].e.add +
                                    (cases[c].kind == OT_CONV_DGRAD));
            int n_packed = ot_conv_fused_uids(cases[c].kind, &cases[c].e, packed);
            sort_ids(packed, n_packed);
            CHECK(n_packed == n_mem &&
                  memcmp(packed, in_mem, sizeof(int64_t) * (size_t)n_mem) == 0);
            ot_cuda_dev dev = { .dnn = api };
            cudnnBackendDescriptor_t vp = NULL;
            char mem[8];
            CHECK_OK(ot_conv_fused_varpack(&dev, cases[c].kind, &cases[c].e, mem, mem + 1,
                                           mem + 2, mem + 3, mem + 4, mem + 5, &vp, &err),
                     &err);
            if (vp)
                api->cudnnBackendDestroyDescriptor(vp);
            ot_conv_fused_free(api, &f);
            CHECK(!f.graph && !f.n_descs && !f.conv.op);
        }
    /* no fused form: backward-filter, backward-data with a bias, no epilogue */
    ot_conv_geom q = geom(OT_CONV_WGRAD, 4, x, w, y, 1, 1, 1);
    ot_conv_fused f;
    ot_conv_epilogue relu = { .relu = true }, bias = { .bias = true, .relu = true }, none = { 0 };
    CHECK_EQ_INT(ot_conv_fused_build(api, &q, &relu, &f, &err), OT_ERR_UNSUPPORTED);
    q.kind = OT_CONV_DGRAD;
    CHECK_EQ_INT(ot_conv_fused_build(api, &q, &bias, &f, &err), OT_ERR_UNSUPPORTED);
    q.kind = OT_CONV_FWD;
    CHECK_EQ_INT(ot_conv_fused_build(api, &q, &none, &f, &err), OT_ERR_UNSUPPORTED);
    /* a wrong output shape: cuDNN's reason, nothing left over */
    ot_conv_geom bad = geom(OT_CONV_FWD, 4, xs, ws, (const int64_t[]){ 2, 64, 15, 15 }, 3, 2, 1);
    CHECK_EQ_INT(ot_conv_fused_build(api, &bad, &relu, &f, &err), OT_ERR_BACKEND);
    CHECK(strstr(err.msg, "cuDNN: ") == err.msg && !strchr(err.msg, '\n'));
    CHECK(!f.graph && !f.n_descs);
}

/* The dtype a finalized tensor descriptor holds. */
static cudnnDataType_t tensor_type(const ot_cudnn_api *api, cudnnBackendDescriptor_t t)
{
    cudnnDataType_t dt = CUDNN_DATA_INT8;
    int64_t n = 0;
    api->cudnnBackendGetAttribute(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &n, &dt);
    return dt;
}

/* --precision bf16 and fp16: every kind of convolution with half x, w and y
   (fp32 compute) makes its operation and a one-operation graph; every fused
   form has half tensors in memory and float virtual ones (NCHW and NHWC);
   plan keys tell the types apart;
   cuBLASLt takes half A and B with float C and D. */
TEST(cuda_half_descriptors_finalize_without_a_device)
{
    const ot_cudnn_api *api = dnn_or_skip();
    if (!api)
        return;
    ot_err err;
    ot_err_init(&err);
    const int64_t xs[] = { 2, 3, 32, 32 }, ws[] = { 64, 3, 7, 7 }, ys[] = { 2, 64, 16, 16 };
    const int64_t x[] = { 2, 64, 8, 8 }, w[] = { 64, 64, 3, 3 }, y[] = { 2, 64, 8, 8 };
    const ot_dtype halves[2] = { OT_DTYPE_BFLOAT16, OT_DTYPE_FLOAT16 };
    const cudnnDataType_t want[2] = { CUDNN_DATA_BFLOAT16, CUDNN_DATA_HALF };
    for (int h = 0; h < 2; h++)
        for (int stem = 0; stem < 2; stem++)
            for (int k = OT_CONV_FWD; k <= OT_CONV_WGRAD; k++) {
                ot_conv_geom q = stem ? geom((ot_conv_kind)k, 4, xs, ws, ys, 3, 2, 1)
                                      : geom((ot_conv_kind)k, 4, x, w, y, 1, 1, 1);
                q.half = halves[h];
                ot_conv_descs d;
                ot_status st = ot_conv_descs_build(api, &q, &d, &err);
                if (st != OT_OK)
                    printf("  %s kind %d: %s\n", h ? "fp16" : "bf16", k, err.msg);
                CHECK_OK(st, &err);
                if (st != OT_OK)
                    continue;
                CHECK_EQ_INT(tensor_type(api, d.x), want[h]);
                CHECK_EQ_INT(tensor_type(api, d.w), want[h]);
                CHECK_EQ_INT(tensor_type(api, d.y), want[h]);
                cudnnBackendDescriptor_t graph = NULL;
                CHECK_OK(ot_cudnn_graph(api, &d.op, 1, &graph, &err), &err);
                if (graph)
                    api->cudnnBackendDestroyDescriptor(graph);
                ot_conv_descs_free(api, &d);
            }
    /* fused: every form on half tensors in memory (x or dy, w, bias, z, the
       ReLU's tensor, the output), the virtual ones float, in both layouts */
    const struct {
        ot_conv_kind kind;
        ot_conv_epilogue e;
        int in_mem;
    } forms[] = {
        { OT_CONV_FWD, { .bias = true, .relu = true }, 4 },
        { OT_CONV_FWD, { .bias = true, .add = true, .relu = true }, 5 },
        { OT_CONV_FWD, { .add = true, .relu = true }, 4 },
        { OT_CONV_FWD, { .relu = true }, 3 },
        { OT_CONV_DGRAD, { .relu = true }, 4 },
    };
    for (int h = 0; h < 2; h++)
        for (int lay = 0; lay < 2; lay++)
            for (size_t k = 0; k < sizeof forms / sizeof *forms; k++) {
                ot_conv_geom q = forms[k].kind == OT_CONV_FWD
                                     ? geom(OT_CONV_FWD, 4, xs, ws, ys, 3, 2, 1)
                                     : geom(OT_CONV_DGRAD, 4, x, w, y, 1, 1, 1);
                q.half = halves[h];
                q.nhwc = lay == 1;
                ot_conv_fused f;
                ot_status st = ot_conv_fused_build(api, &q, &forms[k].e, &f, &err);
                if (st != OT_OK)
                    printf("  %s form %zu%s: %s\n", h ? "fp16" : "bf16", k, lay ? " (NHWC)" : "",
                           err.msg);
                CHECK_OK(st, &err);
                if (st != OT_OK)
                    continue;
                int64_t uids[8];
                bool types_ok;
                CHECK_EQ_INT(fused_tensors(api, &f, want[h], q.nhwc, uids, &types_ok),
                             forms[k].in_mem);
                CHECK(types_ok);
                /* the convolution's own output is the virtual float one */
                CHECK_EQ_INT(tensor_type(api, forms[k].kind == OT_CONV_FWD ? f.conv.y : f.conv.x),
                             CUDNN_DATA_FLOAT);
                ot_conv_fused_free(api, &f);
            }
    /* plan keys */
    ot_plan_env env = { .cudnn_version = 91900, .device_name = "NVIDIA H200", .cc_major = 9 };
    ot_conv_geom q = geom(OT_CONV_FWD, 4, x, w, y, 1, 1, 1);
    char kf[OT_PLAN_KEY_MAX], kb[OT_PLAN_KEY_MAX], kh[OT_PLAN_KEY_MAX];
    CHECK(ot_conv_plan_key(&env, &q, kf, sizeof kf));
    q.half = OT_DTYPE_BFLOAT16;
    CHECK(ot_conv_plan_key(&env, &q, kb, sizeof kb));
    q.half = OT_DTYPE_FLOAT16;
    q.tf32 = true; /* half operands name the type, whatever tf32 says */
    CHECK(ot_conv_plan_key(&env, &q, kh, sizeof kh));
    CHECK(strstr(kb, "conv0/bf16/nchw/") == kb);
    CHECK(strstr(kh, "conv0/f16/nchw/") == kh);
    CHECK_STR(strstr(kf, "/nchw/"), strstr(kb, "/nchw/")); /* the rest of the key is the same */
    /* cuBLASLt: half A and B, float C and D */
    const ot_cublaslt_api *lt = NULL;
    if (ot_cublaslt_load(&lt, &err) != OT_OK) {
        printf("  skipped (cuBLASLt): %s\n", err.msg);
        return;
    }
    ot_cuda_dev dev = { .lt = lt };
    for (int h = 0; h < 2; h++) {
        ot_gemm g;
        ot_gemm_geom gq = { .m = 8, .n = 10, .k = 512, .tb = true, .batch = 1, .alpha = 1.0f,
                            .half = halves[h] };
        CHECK_OK(ot_gemm_descs(lt, &gq, &g, &err), &err);
        cudaDataType_t ta = CUDA_R_32F, tc = CUDA_R_16F;
        size_t got = 0;
        lt->cublasLtMatrixLayoutGetAttribute(g.la, CUBLASLT_MATRIX_LAYOUT_TYPE, &ta, sizeof ta, &got);
        lt->cublasLtMatrixLayoutGetAttribute(g.lc, CUBLASLT_MATRIX_LAYOUT_TYPE, &tc, sizeof tc, &got);
        CHECK_EQ_INT(ta, h ? CUDA_R_16F : CUDA_R_16BF);
        CHECK_EQ_INT(tc, CUDA_R_32F);
        ot_gemm_free(&dev, &g);
        ot_gemm_geom batched = { .m = 4, .n = 4, .k = 8, .batch = 3, .sa = 32, .sb = 0,
                                 .alpha = 1.0f, .half = halves[h] };
        CHECK_OK(ot_gemm_descs(lt, &batched, &g, &err), &err);
        ot_gemm_free(&dev, &g);
    }
}

/* ------------------------------------------------ channels-last layout */

/* A float value of the given dims and flags. */
static int32_t lay_val(ot_graph *g, const char *name, int nd, const int64_t *dims, uint32_t flags)
{
    ot_err err;
    int32_t id = -1;
    ot_err_init(&err);
    if (ot_graph_intern_value(g, name, &id, &err) != OT_OK)
        return -1;
    ot_value *v = &g->values[id];
    v->dtype = OT_DTYPE_FLOAT;
    v->ndim = nd;
    memcpy(v->dims, dims, sizeof *dims * (size_t)nd);
    v->flags = flags;
    return id;
}

#define V4(a, b, c, d) 4, (const int64_t[]){ a, b, c, d }
#define V1(a) 1, (const int64_t[]){ a }

/* Appends node op (opset 17) reading in and writing out. */
static int32_t lay_node(ot_graph *g, ot_op_id op, int n_in, const int32_t *in, int n_out,
                        const int32_t *out)
{
    ot_err err;
    int32_t id = -1;
    ot_err_init(&err);
    if (ot_graph_add_node(g, &id, &err) != OT_OK)
        return -1;
    ot_node *n = &g->nodes[id];
    n->op = ot_op_table[op];
    n->op_type = n->op->type;
    n->domain = n->op->domain;
    n->name = n->op->type;
    n->opset = 17;
    n->n_in = n_in;
    n->n_out = n_out;
    n->in = ot_arena_memdup(&g->arena, in, sizeof *in * (size_t)n_in);
    n->out = ot_arena_memdup(&g->arena, out, sizeof *out * (size_t)n_out);
    return id;
}

#define IN_ (OT_VAL_INPUT)
#define CONST_ (OT_VAL_INIT | OT_VAL_CONST | OT_VAL_PARAM)
#define OUT_ (OT_VAL_OUTPUT)

/* Conv, BN, Relu, MaxPool, GlobalAveragePool run NHWC; Flatten and Gemm
   NCHW; the input and the weight are converted (the filter to KRSC),
   GlobalAveragePool's [N, C, 1, 1] needs nothing. */
TEST(cuda_layout_conv_chain_runs_nhwc)
{
    ot_err err;
    ot_err_init(&err);
    ot_graph *g = ot_graph_new();
    int32_t x = lay_val(g, "x", V4(2, 3, 8, 8), IN_), w = lay_val(g, "w", V4(4, 3, 3, 3), CONST_);
    int32_t c = lay_val(g, "c", V4(2, 4, 8, 8), 0), b = lay_val(g, "b", V4(2, 4, 8, 8), 0);
    int32_t r = lay_val(g, "r", V4(2, 4, 8, 8), 0), p = lay_val(g, "p", V4(2, 4, 4, 4), 0);
    int32_t gp = lay_val(g, "gp", V4(2, 4, 1, 1), 0);
    int32_t f = lay_val(g, "f", 2, (const int64_t[]){ 2, 4 }, 0);
    int32_t fw = lay_val(g, "fw", 2, (const int64_t[]){ 10, 4 }, CONST_);
    int32_t y = lay_val(g, "y", 2, (const int64_t[]){ 2, 10 }, OUT_);
    int32_t bn[4];
    for (int i = 0; i < 4; i++) {
        char name[8];
        snprintf(name, sizeof name, "bn%d", i);
        bn[i] = lay_val(g, name, V1(4), CONST_);
    }
    int32_t nodes[7];
    nodes[0] = lay_node(g, OT_OP_CONV, 2, (int32_t[]){ x, w }, 1, &c);
    nodes[1] = lay_node(g, OT_OP_BATCHNORM, 5, (int32_t[]){ c, bn[0], bn[1], bn[2], bn[3] }, 1, &b);
    nodes[2] = lay_node(g, OT_OP_RELU, 1, &b, 1, &r);
    nodes[3] = lay_node(g, OT_OP_MAXPOOL, 1, &r, 1, &p);
    nodes[4] = lay_node(g, OT_OP_GLOBALAVGPOOL, 1, &p, 1, &gp);
    nodes[5] = lay_node(g, OT_OP_FLATTEN, 1, &gp, 1, &f);
    nodes[6] = lay_node(g, OT_OP_GEMM, 2, (int32_t[]){ f, fw }, 1, &y);
    CHECK_EQ_INT(ot_cuda_nhwc_kind(g, &g->nodes[nodes[0]]), OT_NHWC_CONV);
    CHECK_EQ_INT(ot_cuda_nhwc_kind(g, &g->nodes[nodes[1]]), OT_NHWC_KERNEL);
    CHECK_EQ_INT(ot_cuda_nhwc_kind(g, &g->nodes[nodes[2]]), OT_NHWC_FLAT);
    CHECK_EQ_INT(ot_cuda_nhwc_kind(g, &g->nodes[nodes[3]]), OT_NHWC_KERNEL);
    CHECK_EQ_INT(ot_cuda_nhwc_kind(g, &g->nodes[nodes[5]]), OT_NHWC_NO);
    ot_cuda_layout l;
    CHECK_OK(ot_cuda_layout_plan(g, NULL, NULL, &l, &err), &err);
    for (int i = 0; i < 7; i++)
        CHECK_EQ_INT(l.node[nodes[i]], i < 5);
    CHECK(l.val[c] && l.val[b] && l.val[r] && l.val[p]);
    CHECK(!l.val[x] && !l.val[w] && !l.val[gp] && !l.val[f] && !l.val[y]);
    CHECK_EQ_INT(l.n_nhwc_nodes, 5);
    CHECK_EQ_INT(l.n_to_nhwc, 2); /* x and w */
    CHECK_EQ_INT(l.n_to_nchw, 0);
    ot_cuda_layout_release(&l);
    /* a folded Conv (no step) starts nothing */
    uint8_t skip[8] = { 1 };
    CHECK_OK(ot_cuda_layout_plan(g, NULL, skip, &l, &err), &err);
    CHECK_EQ_INT(l.n_nhwc_nodes, 0);
    ot_cuda_layout_release(&l);
    ot_graph_free(g);
}

/* Concat on axis 1 and Reshape need NCHW: the Conv outputs they read are
   converted back, each once; the Concat's output is converted for the next
   Conv; the graph input, read by two Convs, is converted once; a 1x1
   filter is stored alike as OIHW and KRSC and is not converted. */
TEST(cuda_layout_concat_and_reshape_edges)
{
    ot_err err;
    ot_err_init(&err);
    ot_graph *g = ot_graph_new();
    int32_t x = lay_val(g, "x", V4(2, 3, 8, 8), IN_);
    int32_t w1 = lay_val(g, "w1", V4(4, 3, 1, 1), CONST_), w2 = lay_val(g, "w2", V4(4, 3, 1, 1), CONST_);
    int32_t w3 = lay_val(g, "w3", V4(4, 8, 3, 3), CONST_);
    int32_t a = lay_val(g, "a", V4(2, 4, 8, 8), 0), b = lay_val(g, "b", V4(2, 4, 8, 8), 0);
    int32_t cc = lay_val(g, "cc", V4(2, 8, 8, 8), 0), d = lay_val(g, "d", V4(2, 4, 8, 8), 0);
    int32_t e = lay_val(g, "e", V4(2, 4, 8, 8), 0);
    int32_t shp = lay_val(g, "shape", V1(2), CONST_);
    g->values[shp].dtype = OT_DTYPE_INT64;
    int32_t f = lay_val(g, "f", 2, (const int64_t[]){ 2, 256 }, OUT_);
    int32_t n1 = lay_node(g, OT_OP_CONV, 2, (int32_t[]){ x, w1 }, 1, &a);
    int32_t n2 = lay_node(g, OT_OP_CONV, 2, (int32_t[]){ x, w2 }, 1, &b);
    int32_t n3 = lay_node(g, OT_OP_CONCAT, 2, (int32_t[]){ a, b }, 1, &cc);
    int32_t n4 = lay_node(g, OT_OP_CONV, 2, (int32_t[]){ cc, w3 }, 1, &d);
    int32_t n5 = lay_node(g, OT_OP_RELU, 1, &d, 1, &e);
    int32_t n6 = lay_node(g, OT_OP_RESHAPE, 2, (int32_t[]){ e, shp }, 1, &f);
    ot_cuda_layout l;
    CHECK_OK(ot_cuda_layout_plan(g, NULL, NULL, &l, &err), &err);
    CHECK(l.node[n1] && l.node[n2] && !l.node[n3] && l.node[n4] && l.node[n5] && !l.node[n6]);
    CHECK(l.val[a] && l.val[b] && !l.val[cc] && l.val[d] && l.val[e] && !l.val[f]);
    CHECK_EQ_INT(l.n_to_nhwc, 3); /* x, w3, cc (1x1 filters are KRSC already) */
    CHECK_EQ_INT(l.n_to_nchw, 3); /* a, b, e */
    ot_cuda_layout_release(&l);
    ot_graph_free(g);
}

/* A graph without a convolution stays NCHW, even with BN and pools. */
TEST(cuda_layout_no_convolution_stays_nchw)
{
    ot_err err;
    ot_err_init(&err);
    ot_graph *g = ot_graph_new();
    int32_t x = lay_val(g, "x", V4(2, 3, 8, 8), IN_), r = lay_val(g, "r", V4(2, 3, 8, 8), 0);
    int32_t b = lay_val(g, "b", V4(2, 3, 8, 8), 0), p = lay_val(g, "p", V4(2, 3, 4, 4), 0);
    int32_t q = lay_val(g, "q", V4(2, 3, 4, 4), OUT_);
    int32_t bn[4];
    for (int i = 0; i < 4; i++) {
        char name[8];
        snprintf(name, sizeof name, "bn%d", i);
        bn[i] = lay_val(g, name, V1(3), CONST_);
    }
    lay_node(g, OT_OP_RELU, 1, &x, 1, &r);
    lay_node(g, OT_OP_BATCHNORM, 5, (int32_t[]){ r, bn[0], bn[1], bn[2], bn[3] }, 1, &b);
    lay_node(g, OT_OP_MAXPOOL, 1, &b, 1, &p);
    lay_node(g, OT_OP_ADD, 2, (int32_t[]){ p, p }, 1, &q);
    ot_cuda_layout l;
    CHECK_OK(ot_cuda_layout_plan(g, NULL, NULL, &l, &err), &err);
    CHECK_EQ_INT(l.n_nhwc_nodes, 0);
    CHECK_EQ_INT(l.n_to_nhwc + l.n_to_nchw, 0);
    for (int32_t v = 0; v < g->n_values; v++)
        CHECK(!l.val[v]);
    ot_cuda_layout_release(&l);
    ot_graph_free(g);
}

/* Broadcasts stored alike in both layouts ([1, C, 1, 1], [C, 1, 1]) keep an
   element-wise node NHWC without a conversion; a [C, H, W] operand does
   not; a Conv whose output is a graph output runs NCHW. */
TEST(cuda_layout_broadcasts_and_pinned_outputs)
{
    ot_err err;
    ot_err_init(&err);
    ot_graph *g = ot_graph_new();
    int32_t x = lay_val(g, "x", V4(2, 3, 8, 8), IN_), w = lay_val(g, "w", V4(4, 3, 3, 3), CONST_);
    int32_t c = lay_val(g, "c", V4(2, 4, 8, 8), 0), m = lay_val(g, "m", V4(2, 4, 8, 8), 0);
    int32_t a = lay_val(g, "a", V4(2, 4, 8, 8), 0), z = lay_val(g, "z", V4(2, 4, 8, 8), 0);
    int32_t y = lay_val(g, "y", V4(2, 4, 8, 8), OUT_);
    int32_t s1 = lay_val(g, "s", V4(1, 4, 1, 1), CONST_);
    int32_t k = lay_val(g, "k", 3, (const int64_t[]){ 4, 1, 1 }, CONST_);
    int32_t big = lay_val(g, "big", 3, (const int64_t[]){ 4, 8, 8 }, CONST_);
    int32_t n0 = lay_node(g, OT_OP_CONV, 2, (int32_t[]){ x, w }, 1, &c);
    int32_t n1 = lay_node(g, OT_OP_MUL, 2, (int32_t[]){ c, s1 }, 1, &m);
    int32_t n2 = lay_node(g, OT_OP_ADD, 2, (int32_t[]){ k, m }, 1, &a);
    int32_t n3 = lay_node(g, OT_OP_ADD, 2, (int32_t[]){ a, big }, 1, &z);
    int32_t n4 = lay_node(g, OT_OP_RELU, 1, &z, 1, &y);
    CHECK_EQ_INT(ot_cuda_nhwc_kind(g, &g->nodes[n1]), OT_NHWC_FLAT);
    CHECK_EQ_INT(ot_cuda_nhwc_kind(g, &g->nodes[n2]), OT_NHWC_FLAT);
    CHECK_EQ_INT(ot_cuda_nhwc_kind(g, &g->nodes[n3]), OT_NHWC_NO);
    CHECK(ot_cuda_nhwc_follows(g, &g->nodes[n1], OT_NHWC_FLAT, c));
    CHECK(!ot_cuda_nhwc_follows(g, &g->nodes[n1], OT_NHWC_FLAT, s1));
    ot_cuda_layout l;
    CHECK_OK(ot_cuda_layout_plan(g, NULL, NULL, &l, &err), &err);
    CHECK(l.node[n0] && l.node[n1] && l.node[n2] && !l.node[n3] && !l.node[n4]);
    CHECK(l.val[c] && l.val[m] && l.val[a] && !l.val[z] && !l.val[y]);
    CHECK_EQ_INT(l.n_to_nhwc, 2); /* x, w */
    CHECK_EQ_INT(l.n_to_nchw, 1); /* a, for the Add with [C, H, W] */
    ot_cuda_layout_release(&l);
    /* the Conv's output pinned: everything NCHW */
    uint8_t *pin = calloc((size_t)g->n_values, 1);
    CHECK(pin != NULL);
    pin[x] = pin[w] = pin[c] = 1;
    CHECK_OK(ot_cuda_layout_plan(g, pin, NULL, &l, &err), &err);
    CHECK_EQ_INT(l.n_nhwc_nodes, 0);
    ot_cuda_layout_release(&l);
    free(pin);
    /* the operands' views */
    int64_t d[8];
    CHECK_EQ_INT(ot_cuda_nhwc_view(3, (const int64_t[]){ 4, 1, 1 }, d), 4);
    CHECK(d[0] == 1 && d[1] == 1 && d[2] == 1 && d[3] == 4);
    CHECK_EQ_INT(ot_cuda_nhwc_view(1, (const int64_t[]){ 7 }, d), 4);
    CHECK(d[0] == 1 && d[1] == 1 && d[2] == 7 && d[3] == 1);
    CHECK_EQ_INT(ot_cuda_nhwc_view(4, (const int64_t[]){ 2, 3, 4, 5 }, d), 4);
    CHECK(d[0] == 2 && d[1] == 4 && d[2] == 5 && d[3] == 3);
    ot_graph_free(g);
}

/* A training step's chain: the backward ops follow the forward's layout
   (GlobalAveragePoolGrad from a [N, C, 1, 1] gradient included), the
   weight gradient comes out KRSC and is converted once for the optimizer,
   which reads the state NCHW; the input is converted once for both of its
   readers. */
TEST(cuda_layout_training_step)
{
    ot_err err;
    ot_err_init(&err);
    ot_graph *g = ot_graph_new();
    int32_t x = lay_val(g, "x", V4(2, 3, 8, 8), IN_);
    int32_t w = lay_val(g, "w", V4(4, 3, 3, 3), OT_VAL_INIT | OT_VAL_PARAM | OT_VAL_STATE);
    int32_t c = lay_val(g, "c", V4(2, 4, 8, 8), 0), r = lay_val(g, "r", V4(2, 4, 8, 8), 0);
    int32_t gp = lay_val(g, "gp", V4(2, 4, 1, 1), OUT_);
    int32_t dg = lay_val(g, "dg", V4(2, 4, 1, 1), IN_);
    int32_t shp = lay_val(g, "shape", V1(4), CONST_);
    g->values[shp].dtype = OT_DTYPE_INT64;
    int32_t dr = lay_val(g, "dr", V4(2, 4, 8, 8), 0), dc = lay_val(g, "dc", V4(2, 4, 8, 8), 0);
    int32_t dw = lay_val(g, "dw", V4(4, 3, 3, 3), 0), w2 = lay_val(g, "w2", V4(4, 3, 3, 3), OUT_);
    int32_t n[6];
    n[0] = lay_node(g, OT_OP_CONV, 2, (int32_t[]){ x, w }, 1, &c);
    n[1] = lay_node(g, OT_OP_RELU, 1, &c, 1, &r);
    n[2] = lay_node(g, OT_OP_GLOBALAVGPOOL, 1, &r, 1, &gp);
    n[3] = lay_node(g, OT_OP_GLOBALAVGPOOL_GRAD, 2, (int32_t[]){ dg, shp }, 1, &dr);
    n[4] = lay_node(g, OT_OP_RELU_GRAD, 2, (int32_t[]){ dr, r }, 1, &dc);
    n[5] = lay_node(g, OT_OP_CONV_GRAD_FILTER, 2, (int32_t[]){ dc, x }, 1, &dw);
    lay_node(g, OT_OP_SGD_STEP, 2, (int32_t[]){ w, dw }, 1, &w2);
    ot_cuda_layout l;
    CHECK_OK(ot_cuda_layout_plan(g, NULL, NULL, &l, &err), &err);
    for (int i = 0; i < 6; i++)
        CHECK_EQ_INT(l.node[n[i]], 1);
    CHECK_EQ_INT(l.n_nhwc_nodes, 6);
    CHECK(l.val[c] && l.val[r] && l.val[dr] && l.val[dc] && l.val[dw] && !l.val[w2] && !l.val[w]);
    CHECK_EQ_INT(l.n_to_nhwc, 2); /* x (read by the Conv and its filter gradient), w */
    CHECK_EQ_INT(l.n_to_nchw, 1); /* dw for SgdStep */
    ot_cuda_layout_release(&l);
    ot_graph_free(g);
}

/* Channels-last convolutions: the strides, every kind's descriptors and the
   fused graphs finalize with NHWC strides and a KRSC filter, and the plan
   keys say the layout. */
TEST(cuda_nhwc_descriptors_finalize_without_a_device)
{
    int64_t st[5];
    ot_cudnn_strides(4, (const int64_t[]){ 2, 64, 8, 6 }, true, st);
    CHECK(st[0] == 3072 && st[1] == 1 && st[2] == 384 && st[3] == 64);
    ot_cudnn_strides(4, (const int64_t[]){ 2, 64, 8, 6 }, false, st);
    CHECK(st[0] == 3072 && st[1] == 48 && st[2] == 6 && st[3] == 1);
    const ot_cudnn_api *api = dnn_or_skip();
    if (!api)
        return;
    ot_err err;
    ot_err_init(&err);
    const struct {
        int64_t x[4], w[4], y[4], pad, stride;
    } cases[] = {
        { { 2, 3, 32, 32 }, { 64, 3, 7, 7 }, { 2, 64, 16, 16 }, 3, 2 },
        { { 2, 64, 8, 8 }, { 128, 64, 1, 1 }, { 2, 128, 4, 4 }, 0, 2 },
        { { 2, 64, 8, 8 }, { 64, 64, 3, 3 }, { 2, 64, 8, 8 }, 1, 1 },
        { { 2, 32, 8, 8 }, { 32, 1, 3, 3 }, { 2, 32, 8, 8 }, 1, 1 },
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
        for (int k = OT_CONV_FWD; k <= OT_CONV_WGRAD; k++) {
            ot_conv_geom q = geom((ot_conv_kind)k, 4, cases[c].x, cases[c].w, cases[c].y,
                                  cases[c].pad, cases[c].stride, 1);
            q.nhwc = true;
            ot_conv_descs d;
            ot_status s = ot_conv_descs_build(api, &q, &d, &err);
            if (s != OT_OK)
                printf("  case %zu kind %d: %s\n", c, k, err.msg);
            CHECK_OK(s, &err);
            /* the strides cuDNN holds: x channels-last, w KRSC */
            int64_t got[4] = { 0 }, n = 0, want[4];
            api->cudnnBackendGetAttribute(d.x, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, &n,
                                          got);
            ot_cudnn_strides(4, q.x, true, want);
            CHECK(n == 4 && !memcmp(got, want, sizeof want));
            api->cudnnBackendGetAttribute(d.w, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, &n,
                                          got);
            CHECK(n == 4 && got[1] == 1 && got[3] == q.w[1] && got[0] == q.w[1] * q.w[2] * q.w[3]);
            cudnnBackendDescriptor_t graph = NULL;
            CHECK_OK(ot_cudnn_graph(api, &d.op, 1, &graph, &err), &err);
            if (graph)
                api->cudnnBackendDestroyDescriptor(graph);
            ot_conv_descs_free(api, &d);
        }
    /* fused forms in NHWC */
    const ot_conv_epilogue eps[] = { { .bias = true, .relu = true },
                                     { .bias = true, .add = true, .relu = true },
                                     { .relu = true } };
    for (int e = 0; e < 3; e++) {
        ot_conv_geom q = geom(e == 2 ? OT_CONV_DGRAD : OT_CONV_FWD, 4, cases[2].x, cases[2].w,
                              cases[2].y, 1, 1, 1);
        q.nhwc = true;
        ot_conv_fused f;
        ot_status s = ot_conv_fused_build(api, &q, &eps[e], &f, &err);
        if (s != OT_OK)
            printf("  fused %d: %s\n", e, err.msg);
        CHECK_OK(s, &err);
        ot_conv_fused_free(api, &f);
    }
    /* plan keys differ by layout */
    ot_plan_env env = { .cudnn_version = 91900, .device_name = "NVIDIA H200", .cc_major = 9 };
    ot_conv_geom q = geom(OT_CONV_FWD, 4, cases[2].x, cases[2].w, cases[2].y, 1, 1, 1);
    char kc[OT_PLAN_KEY_MAX], kn[OT_PLAN_KEY_MAX];
    CHECK(ot_conv_plan_key(&env, &q, kc, sizeof kc));
    q.nhwc = true;
    CHECK(ot_conv_plan_key(&env, &q, kn, sizeof kn));
    CHECK(strstr(kc, "/nchw/") && strstr(kn, "/nhwc/") && strcmp(kc, kn));
}

/* The descriptor builders (cudnn_desc.c) on their own: a tensor keeps the
   strides it is given (NHWC), one without gets packed row-major strides,
   one of a convolution's layout gets NHWC or NCHW strides by q.nhwc, a
   rank out of range is refused; a convolution and its operation of every
   kind finalize; a pointwise ReLU backward and an Add finalize, one missing
   its output is refused in one line with nothing left over; a variant pack
   finalizes; heuristics on a graph either answer or, without a device,
   fail in one line. */
TEST(cuda_descriptor_builders_without_a_device)
{
    const ot_cudnn_api *api = dnn_or_skip();
    if (!api)
        return;
    ot_err err;
    ot_err_init(&err);
    const int64_t dims[4] = { 2, 64, 8, 8 }, nhwc[4] = { 4096, 1, 512, 64 };
    const int64_t packed[4] = { 4096, 64, 8, 1 };
    cudnnBackendDescriptor_t t = NULL, u = NULL, v = NULL, c = NULL;
    int64_t back[4] = { 0 }, got = 0;
    CHECK_OK(ot_cudnn_tensor(api, 4, dims, nhwc, 11, false, OT_DTYPE_FLOAT16, &t, &err), &err);
    if (t) {
        api->cudnnBackendGetAttribute(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, &got, back);
        CHECK(got == 4 && memcmp(back, nhwc, sizeof back) == 0);
        CHECK_EQ_INT(tensor_type(api, t), CUDNN_DATA_HALF);
    }
    CHECK_OK(ot_cudnn_tensor(api, 4, dims, NULL, 12, false, OT_DTYPE_FLOAT, &u, &err), &err);
    if (u) {
        api->cudnnBackendGetAttribute(u, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, &got, back);
        CHECK(got == 4 && memcmp(back, packed, sizeof back) == 0);
    }
    CHECK_OK(ot_cudnn_tensor(api, 4, dims, NULL, 13, true, OT_DTYPE_FLOAT, &v, &err), &err);
    for (int lay = 0; lay < 2; lay++) {
        ot_conv_geom q = geom(OT_CONV_FWD, 4, dims, (const int64_t[]){ 64, 64, 3, 3 }, dims, 1, 1,
                              1);
        q.nhwc = lay == 1;
        CHECK_OK(ot_cudnn_conv_tensor(api, &q, dims, 15, false, OT_DTYPE_BFLOAT16, &c, &err),
                 &err);
        if (c) {
            api->cudnnBackendGetAttribute(c, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, &got,
                                          back);
            CHECK(got == 4 && memcmp(back, lay ? nhwc : packed, sizeof back) == 0);
            CHECK_EQ_INT(tensor_type(api, c), CUDNN_DATA_BFLOAT16);
            api->cudnnBackendDestroyDescriptor(c);
            c = NULL;
        }
    }
    cudnnBackendDescriptor_t bad = (void *)&err; /* anything but NULL */
    CHECK_EQ_INT(ot_cudnn_tensor(api, 0, dims, NULL, 14, false, OT_DTYPE_FLOAT, &bad, &err),
                 OT_ERR_UNSUPPORTED);
    CHECK(bad == NULL);
    CHECK_EQ_INT(ot_cudnn_tensor(api, OT_MAX_DIMS + 1, dims, NULL, 14, false, OT_DTYPE_FLOAT, &bad,
                                 &err), OT_ERR_UNSUPPORTED);
    /* the convolution and its operation, each kind, on x = t, w, y = u */
    const int64_t pad[2] = { 1, 1 }, one[2] = { 1, 1 };
    cudnnBackendDescriptor_t conv = NULL, w = NULL;
    CHECK_OK(ot_cudnn_conv(api, 2, pad, pad, one, one, &conv, &err), &err);
    CHECK_OK(ot_cudnn_tensor(api, 4, (const int64_t[]){ 64, 64, 3, 3 }, NULL, 16, false,
                             OT_DTYPE_FLOAT, &w, &err), &err);
    for (int k = OT_CONV_FWD; conv && w && u && k <= OT_CONV_WGRAD; k++) {
        cudnnBackendDescriptor_t x = NULL, op = NULL;
        CHECK_OK(ot_cudnn_tensor(api, 4, dims, NULL, 17, false, OT_DTYPE_FLOAT, &x, &err), &err);
        if (x)
            CHECK_OK(ot_cudnn_conv_op(api, (ot_conv_kind)k, conv, x, w, u, &op, &err), &err);
        if (op)
            api->cudnnBackendDestroyDescriptor(op);
        if (x)
            api->cudnnBackendDestroyDescriptor(x);
    }
    cudnnBackendDescriptor_t pw = NULL, op = NULL;
    if (t && u && v) {
        /* dx (u) = relu_bwd(dy: v, the ReLU's tensor: t) */
        CHECK_OK(ot_cudnn_pointwise(api, CUDNN_POINTWISE_RELU_BWD, v, t, u, &pw, &op, &err),
                 &err);
        CHECK(pw && op);
        if (op)
            api->cudnnBackendDestroyDescriptor(op);
        if (pw)
            api->cudnnBackendDestroyDescriptor(pw);
        CHECK_OK(ot_cudnn_pointwise(api, CUDNN_POINTWISE_ADD, v, u, t, &pw, &op, &err), &err);
        if (op)
            api->cudnnBackendDestroyDescriptor(op);
        if (pw)
            api->cudnnBackendDestroyDescriptor(pw);
        CHECK_EQ_INT(ot_cudnn_pointwise(api, CUDNN_POINTWISE_ADD, v, u, NULL, &pw, &op, &err),
                     OT_ERR_BACKEND);
        CHECK(!pw && !op && strstr(err.msg, "cuDNN: pointwise") == err.msg &&
              !strchr(err.msg, '\n'));
    }
    char mem[4];
    void *const ptrs[3] = { mem, mem + 1, mem + 2 };
    const int64_t uids[3] = { 11, 12, 13 };
    cudnnBackendDescriptor_t vp = NULL;
    CHECK_OK(ot_cudnn_varpack(api, 3, ptrs, uids, mem + 3, &vp, &err), &err);
    if (vp)
        api->cudnnBackendDestroyDescriptor(vp);
    cudnnBackendDescriptor_t *all[5] = { &t, &u, &v, &conv, &w };
    for (int i = 0; i < 5; i++)
        if (*all[i])
            api->cudnnBackendDestroyDescriptor(*all[i]);
    /* heuristics: the device decides; without one, a one-line error */
    const int64_t x[] = { 2, 16, 8, 8 }, wd[] = { 16, 16, 3, 3 }, y[] = { 2, 16, 8, 8 };
    ot_conv_geom q = geom(OT_CONV_FWD, 4, x, wd, y, 1, 1, 1);
    ot_conv_descs d;
    cudnnBackendDescriptor_t graph = NULL, *cfgs = NULL;
    int64_t n_cfg = 0;
    CHECK_OK(ot_conv_descs_build(api, &q, &d, &err), &err);
    if (d.op && ot_cudnn_graph(api, &d.op, 1, &graph, &err) == OT_OK) {
        ot_status st = ot_cudnn_heuristics(api, graph, NULL, &cfgs, &n_cfg, &err);
        if (st == OT_OK) {
            CHECK(n_cfg >= 0 && (n_cfg == 0 || cfgs != NULL));
            ot_cudnn_cfgs_free(api, cfgs, n_cfg);
        } else {
            CHECK(!cfgs && n_cfg == 0 && !strchr(err.msg, '\n'));
            printf("  heuristics without a device: %s\n", err.msg);
        }
        api->cudnnBackendDestroyDescriptor(graph);
    }
    ot_conv_descs_free(api, &d);
}

#endif
