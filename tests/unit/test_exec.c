/*
 * test_exec.c: the memory planner, and the executor on ONNX's node tests
 * (oneDNN kernels and the plain C kernels must both match the reference).
 */
#include <math.h>
#include <stdlib.h>

#include "dist/dist_impl.h"
#include "exec/exec.h"
#include "exec/exec_impl.h"
#include "exec/plan.h"
#include "onnx/onnx.h"
#include "ops/ops.h"
#include "test.h"

#define NODE "/usr/share/libonnx-testdata/data/node/"

TEST(plan_disjoint_lifetimes_share_space)
{
    ot_plan_buf b[4] = {
        { .bytes = 100, .first = 0, .last = 1 },
        { .bytes = 100, .first = 2, .last = 3 }, /* can reuse b0 */
        { .bytes = 50, .first = 1, .last = 2 },  /* overlaps both */
        { .bytes = 10, .first = 4, .last = 4 },
    };
    ot_err err;
    size_t total;
    CHECK_OK(ot_plan_assign(b, 4, 64, &total, &err), &err);
    CHECK(b[0].offset == b[1].offset);
    CHECK(total == 192); /* 128 + 64 */
    CHECK(ot_plan_peak_live(b, 4) == 150);
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++) {
            bool live = b[i].first <= b[j].last && b[j].first <= b[i].last;
            bool mem = b[i].offset < b[j].offset + b[j].bytes &&
                       b[j].offset < b[i].offset + b[i].bytes;
            CHECK(!(live && mem));
        }
}

TEST(plan_random_never_overlaps_live_buffers)
{
    srand(3);
    ot_plan_buf b[200];
    for (int i = 0; i < 200; i++) {
        b[i].bytes = (size_t)(rand() % 5000);
        b[i].first = rand() % 100;
        b[i].last = b[i].first + rand() % 20;
    }
    ot_err err;
    size_t total;
    CHECK_OK(ot_plan_assign(b, 200, 64, &total, &err), &err);
    for (int i = 0; i < 200; i++) {
        CHECK(b[i].offset % 64 == 0);
        CHECK(b[i].offset + b[i].bytes <= total);
        for (int j = i + 1; j < 200; j++) {
            bool live = b[i].first <= b[j].last && b[j].first <= b[i].last;
            bool mem = b[i].offset < b[j].offset + b[j].bytes &&
                       b[j].offset < b[i].offset + b[i].bytes;
            if (live && mem && b[i].bytes && b[j].bytes) {
                ot_test_fail(__FILE__, __LINE__, "buffers %d and %d overlap", i, j);
                return;
            }
        }
    }
    CHECK(total >= ot_plan_peak_live(b, 200));
}

/* Runs a node-test folder's data set 0 and compares output 0. */
static void run_node_test(const char *dir, bool plain_only)
{
    char path[512];
    ot_err err;
    ot_graph *g = NULL;
    ot_exec *x = NULL;
    ot_tensor in[8], want;
    int n_in = 0;
    memset(in, 0, sizeof in);
    memset(&want, 0, sizeof want);
    snprintf(path, sizeof path, "%s%s/model.onnx", NODE, dir);
    CHECK_OK(ot_onnx_import_file(path, NULL, &g, &err), &err);
    ot_exec_input bind[8];
    for (int32_t i = 0; i < g->n_inputs && n_in < 8; i++) {
        int32_t vid = g->inputs[i].value;
        if (g->values[vid].flags & OT_VAL_INIT)
            continue;
        snprintf(path, sizeof path, "%s%s/test_data_set_0/input_%d.pb", NODE, dir, n_in);
        ot_status st = ot_onnx_read_tensor(path, &in[n_in], NULL, &err);
        if (st != OT_OK)
            goto fail;
        bind[n_in].value = vid;
        bind[n_in].tensor = in[n_in];
        bind[n_in].const_value = ot_exec_input_is_shape_operand(g, vid);
        n_in++;
    }
    ot_exec_opts opts = { .cpu.threads = 1, .cpu.plain_only = plain_only };
    if (ot_exec_compile(g, bind, n_in, &opts, &x, &err) != OT_OK)
        goto fail;
    if (ot_exec_run(x, in, n_in, &err) != OT_OK)
        goto fail;
    snprintf(path, sizeof path, "%s%s/test_data_set_0/output_0.pb", NODE, dir);
    if (ot_onnx_read_tensor(path, &want, NULL, &err) != OT_OK)
        goto fail;
    const ot_tensor *got = ot_exec_output(x, 0);
    if (got->bytes != want.bytes || got->dtype != want.dtype) {
        ot_test_fail(__FILE__, __LINE__, "%s: output size/dtype differ", dir);
        goto out;
    }
    int64_t numel = ot_tensor_numel(&want);
    for (int64_t i = 0; i < numel; i++) {
        double a = ot_tensor_get_f64(got, i), b = ot_tensor_get_f64(&want, i);
        if (!(fabs(a - b) <= 1e-5 + 1e-4 * fabs(b))) {
            ot_test_fail(__FILE__, __LINE__, "%s%s: element %lld: got %g want %g", dir,
                         plain_only ? " (plain)" : "", (long long)i, a, b);
            goto out;
        }
    }
    goto out;
fail:
    ot_test_fail(__FILE__, __LINE__, "%s: %s", dir, err.msg);
out:
    for (int i = 0; i < n_in; i++)
        ot_free(in[i].data);
    ot_free(want.data);
    ot_exec_free(x);
    ot_graph_free(g);
}

static const char *const node_tests[] = {
    "test_conv_with_strides_padding", "test_conv_with_strides_and_asymmetric_padding",
    "test_basic_conv_with_padding", "test_conv_with_autopad_same",
    "test_maxpool_2d_pads", "test_maxpool_2d_ceil", "test_averagepool_2d_pads",
    "test_averagepool_2d_pads_count_include_pad", "test_averagepool_2d_ceil",
    "test_globalaveragepool", "test_globalmaxpool", "test_batchnorm_epsilon",
    "test_relu", "test_leakyrelu", "test_sigmoid", "test_clip", "test_add_bcast",
    "test_mul_bcast", "test_sum_example", "test_concat_3d_axis_1", "test_softmax_axis_1",
    "test_logsoftmax_axis_1", "test_lrn", "test_gemm_default_matrix_bias",
    "test_gemm_transposeA", "test_gemm_alpha", "test_matmul_3d", "test_matmul_4d",
    "test_reshape_negative_dim", "test_flatten_axis1", "test_transpose_default",
    "test_maxpool_3d_default", "test_conv_with_strides_no_padding",
};

TEST(exec_node_tests_onednn)
{
    for (size_t i = 0; i < sizeof node_tests / sizeof node_tests[0]; i++)
        run_node_test(node_tests[i], false);
}

TEST(exec_node_tests_plain)
{
    for (size_t i = 0; i < sizeof node_tests / sizeof node_tests[0]; i++)
        run_node_test(node_tests[i], true);
}

TEST(exec_run_allocates_nothing)
{
    char path[512];
    ot_err err;
    ot_graph *g = NULL;
    ot_exec *x = NULL;
    ot_tensor in[2];
    memset(in, 0, sizeof in);
    CHECK_OK(ot_onnx_import_file(NODE "test_conv_with_strides_padding/model.onnx", NULL, &g, &err),
             &err);
    ot_exec_input bind[2];
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, NODE "test_conv_with_strides_padding/test_data_set_0/input_%d.pb",
                 i);
        CHECK_OK(ot_onnx_read_tensor(path, &in[i], NULL, &err), &err);
        bind[i].value = g->inputs[i].value;
        bind[i].tensor = in[i];
        bind[i].const_value = false;
    }
    CHECK_OK(ot_exec_compile(g, bind, 2, NULL, &x, &err), &err);
    CHECK_OK(ot_exec_run(x, in, 2, &err), &err);
    uint64_t before = ot_alloc_count();
    for (int r = 0; r < 3; r++)
        CHECK_OK(ot_exec_run(x, in, 2, &err), &err);
    CHECK_EQ_INT(ot_alloc_count(), before);
    /* a wrong shape at run time is an error naming the input, not a crash */
    ot_tensor bad = in[0];
    bad.dims[2] = 3;
    ot_tensor two[2] = { bad, in[1] };
    CHECK_EQ_INT(ot_exec_run(x, two, 2, &err), OT_ERR_ARG);
    CHECK(strstr(err.msg, "'x'") != NULL);
    for (int i = 0; i < 2; i++)
        ot_free(in[i].data);
    ot_exec_free(x);
    ot_graph_free(g);
}

TEST(exec_compile_refuses_wrong_binding)
{
    ot_err err;
    ot_graph *g = NULL;
    ot_exec *x = NULL;
    CHECK_OK(ot_onnx_import_file(NODE "test_relu/model.onnx", NULL, &g, &err), &err);
    ot_exec_input b = { .value = g->inputs[0].value };
    b.tensor.dtype = OT_DTYPE_FLOAT;
    b.tensor.ndim = 2;
    b.tensor.dims[0] = 3;
    b.tensor.dims[1] = 4;
    CHECK_EQ_INT(ot_exec_compile(g, &b, 1, NULL, &x, &err), OT_ERR_ARG);
    CHECK(strstr(err.msg, "does not match the declared") != NULL);
    b.tensor.dtype = OT_DTYPE_INT64;
    CHECK_EQ_INT(ot_exec_compile(g, &b, 1, NULL, &x, &err), OT_ERR_ARG);
    CHECK(strstr(err.msg, "dtype") != NULL);
    CHECK_EQ_INT(ot_exec_compile(g, NULL, 0, NULL, &x, &err), OT_ERR_ARG);
    CHECK(strstr(err.msg, "not bound") != NULL);
    CHECK(x == NULL);
    ot_graph_free(g);
}

/* ONNX's pytorch-converted Linear test model with its bias flagged as state,
   and its test input. */
static ot_status linear_with_state_bias(ot_graph **g, ot_tensor *in, int32_t *bias,
                                        int32_t *input, ot_err *err)
{
    const char *dir = "/usr/share/libonnx-testdata/data/pytorch-converted/test_Linear/";
    char path[512];
    snprintf(path, sizeof path, "%smodel.onnx", dir);
    ot_status st = ot_onnx_import_file(path, NULL, g, err);
    if (st != OT_OK)
        return st;
    snprintf(path, sizeof path, "%stest_data_set_0/input_0.pb", dir);
    st = ot_onnx_read_tensor(path, in, NULL, err);
    if (st != OT_OK)
        return st;
    const ot_graph *m = *g;
    for (int32_t i = 0; i < m->n_inits; i++)
        if (m->values[m->inits[i]].ndim == 1)
            *bias = m->inits[i];
    for (int32_t i = 0; i < m->n_inputs; i++)
        if (!(m->values[m->inputs[i].value].flags & OT_VAL_INIT))
            *input = m->inputs[i].value;
    if (*bias < 0 || *input < 0)
        return ot_err_set(err, OT_ERR_MODEL, "test_Linear has no bias or no input");
    (*g)->values[*bias].flags |= OT_VAL_STATE;
    return OT_OK;
}

/* A state value (a trained parameter) is a mutable copy: changing it between
   runs changes the output; the graph's own bytes stay as they were. */
TEST(exec_state_values_are_mutable_copies)
{
    ot_err err;
    ot_graph *g = NULL;
    ot_exec *x = NULL;
    ot_tensor in;
    int32_t bias = -1, input = -1;
    CHECK_OK(linear_with_state_bias(&g, &in, &bias, &input, &err), &err);
    float orig0;
    memcpy(&orig0, g->values[bias].data.data, 4);
    ot_exec_input b = { .value = input, .tensor = in };
    CHECK_OK(ot_exec_compile(g, &b, 1, NULL, &x, &err), &err);
    CHECK_OK(ot_exec_run(x, &in, 1, &err), &err);
    float y0;
    memcpy(&y0, ot_exec_output(x, 0)->data, 4);
    size_t nb = ot_exec_state_bytes(x, bias);
    CHECK(nb == g->values[bias].data.bytes && nb >= 4);
    CHECK_EQ_INT(ot_exec_state_bytes(x, input), 0);
    float state[64];
    CHECK(nb <= sizeof state);
    CHECK_OK(ot_exec_read_state(x, bias, state, nb, &err), &err);
    CHECK(state[0] == orig0);
    state[0] += 1.0f;
    CHECK_OK(ot_exec_write_state(x, bias, state, nb, &err), &err);
    CHECK_OK(ot_exec_run(x, &in, 1, &err), &err);
    float y1, now0;
    memcpy(&y1, ot_exec_output(x, 0)->data, 4);
    memcpy(&now0, g->values[bias].data.data, 4);
    CHECK(fabsf(y1 - y0 - 1.0f) < 1e-5f);
    CHECK(now0 == orig0);
    /* the wrong size, or a value that is not state, is an error */
    CHECK_EQ_INT(ot_exec_read_state(x, bias, state, nb - 4, &err), OT_ERR_ARG);
    CHECK_EQ_INT(ot_exec_write_state(x, input, state, 4, &err), OT_ERR_ARG);
    CHECK(strstr(err.msg, "not a state value") != NULL);
    ot_free(in.data);
    ot_exec_free(x);
    ot_graph_free(g);
}

/* The CPU backend as if the host could not address its memory: the executor
   then copies inputs in, state and outputs out through the hooks, and never
   touches backend memory itself; results match the host-visible run. */
static int copies_in, copies_out;

static ot_status counting_copy_in(ot_exec *x, void *dst, const void *src, size_t bytes,
                                  ot_err *err)
{
    copies_in++;
    return ot_backend_cpu.copy_in(x, dst, src, bytes, err);
}

static ot_status counting_copy_out(const ot_exec *x, void *dst, const void *src, size_t bytes,
                                   ot_err *err)
{
    copies_out++;
    return ot_backend_cpu.copy_out(x, dst, src, bytes, err);
}

TEST(exec_backend_memory_goes_through_hooks)
{
    ot_err err;
    ot_graph *g = NULL;
    ot_exec *host = NULL, *dev = NULL, *dev2 = NULL;
    ot_tensor in;
    int32_t bias = -1, input = -1;
    CHECK_OK(linear_with_state_bias(&g, &in, &bias, &input, &err), &err);
    ot_backend opaque = ot_backend_cpu;
    opaque.host_visible = false;
    opaque.copy_in = counting_copy_in;
    opaque.copy_out = counting_copy_out;
    ot_exec_input b = { .value = input, .tensor = in };
    CHECK_OK(ot_exec_compile(g, &b, 1, NULL, &host, &err), &err);
    copies_in = copies_out = 0;
    CHECK_OK(ot_exec_compile_on(&opaque, g, &b, 1, NULL, &dev, &err), &err);
    CHECK_EQ_INT(copies_in, 1); /* the state's initial bytes */
    CHECK_OK(ot_exec_run(host, &in, 1, &err), &err);
    CHECK_OK(ot_exec_run(dev, &in, 1, &err), &err);
    CHECK_EQ_INT(copies_in, 2); /* the input */
    CHECK_EQ_INT(copies_out, 0); /* nothing asked for yet */
    const ot_tensor *a = ot_exec_output(host, 0), *d = ot_exec_output(dev, 0);
    CHECK(d != NULL && d->data != NULL && d->data != a->data);
    CHECK(a->bytes == d->bytes && memcmp(a->data, d->data, a->bytes) == 0);
    CHECK(ot_exec_output(dev, 0) == d);
    CHECK_EQ_INT(copies_out, 1); /* copied once per run */
    /* state written through one executor is seen by one that shares it */
    ot_exec_opts share = { .share_state = dev };
    CHECK_OK(ot_exec_compile_on(&opaque, g, &b, 1, &share, &dev2, &err), &err);
    size_t nb = ot_exec_state_bytes(dev, bias);
    float st[64];
    CHECK(nb >= 4 && nb <= sizeof st);
    CHECK_OK(ot_exec_read_state(dev, bias, st, nb, &err), &err);
    CHECK(memcmp(st, g->values[bias].data.data, nb) == 0);
    st[0] += 1.0f;
    CHECK_OK(ot_exec_write_state(dev, bias, st, nb, &err), &err);
    CHECK_OK(ot_exec_run(dev2, &in, 1, &err), &err);
    float y0, y1;
    memcpy(&y0, a->data, 4);
    memcpy(&y1, ot_exec_output(dev2, 0)->data, 4);
    CHECK(fabsf(y1 - y0 - 1.0f) < 1e-5f);
    /* a backend given directly checks the precision as ot_exec_compile does:
       one without the hook computes in fp32 only */
    ot_exec *narrow = NULL;
    opaque.precision = NULL;
    ot_exec_opts bf16 = { .precision = OT_PRECISION_BF16 };
    CHECK_EQ_INT(ot_exec_compile_on(&opaque, g, &b, 1, &bf16, &narrow, &err), OT_ERR_UNSUPPORTED);
    CHECK_STR(err.msg, "--precision bf16 on cpu: this backend computes in fp32 only");
    CHECK(narrow == NULL);
    bf16.precision = (ot_precision)42;
    CHECK_EQ_INT(ot_exec_compile_on(&opaque, g, &b, 1, &bf16, &narrow, &err), OT_ERR_ARG);
    /* executors of different backends share nothing */
    ot_exec *mixed = NULL;
    CHECK_EQ_INT(ot_exec_compile(g, &b, 1, &share, &mixed, &err), OT_ERR_ARG);
    CHECK(mixed == NULL);
    ot_free(in.data);
    ot_exec_free(dev2);
    ot_exec_free(dev);
    ot_exec_free(host);
    ot_graph_free(g);
}

/* Handing the next run's input in ahead (ot_exec_prefetch) on a backend
   whose runs overlap the host (here the CPU behind the hooks, its launch
   finishing at once): the next launch waits for the one in flight, takes
   the prefetched bytes instead of copying its inputs[i], and the run after
   copies again; an input not compiled for it, or of another size, is
   refused. */
static int waits;

static ot_status counting_wait(ot_exec *x, ot_err *err)
{
    (void)x, (void)err;
    waits++;
    return OT_OK;
}

TEST(exec_prefetch_hands_the_next_input_in)
{
    ot_err err;
    ot_graph *g = NULL;
    ot_exec *host = NULL, *dev = NULL, *plain = NULL;
    ot_tensor in;
    int32_t bias = -1, input = -1;
    CHECK_OK(linear_with_state_bias(&g, &in, &bias, &input, &err), &err);
    ot_backend opaque = ot_backend_cpu;
    opaque.host_visible = false;
    opaque.launch = ot_backend_cpu.run;
    opaque.wait = counting_wait;
    ot_exec_input b = { .value = input, .tensor = in };
    ot_exec_opts po = { .prefetch_input = 1 };
    CHECK_OK(ot_exec_compile(g, &b, 1, &po, &host, &err), &err);
    CHECK_OK(ot_exec_compile_on(&opaque, g, &b, 1, &po, &dev, &err), &err);
    CHECK(ot_exec_overlaps(dev) && !ot_exec_overlaps(host));
    size_t nf = in.bytes / sizeof(float);
    float *next = ot_malloc(in.bytes), *junk = ot_malloc(in.bytes), y1[64], y2[64];
    CHECK(next && junk);
    for (size_t i = 0; i < nf; i++) {
        next[i] = 0.25f * (float)(i % 7) - 0.5f;
        junk[i] = 1e6f;
    }
    ot_tensor tn = in, tj = in;
    tn.data = next;
    tj.data = junk;
    const ot_tensor *o = NULL;
    CHECK_OK(ot_exec_run(host, &in, 1, &err), &err);
    o = ot_exec_output(host, 0);
    CHECK(o->bytes <= sizeof y1);
    memcpy(y1, o->data, o->bytes);
    CHECK_OK(ot_exec_run(host, &tn, 1, &err), &err);
    memcpy(y2, ot_exec_output(host, 0)->data, o->bytes);
    CHECK(memcmp(y1, y2, o->bytes) != 0);
    waits = 0;
    CHECK_OK(ot_exec_launch(dev, &in, 1, &err), &err);
    CHECK_OK(ot_exec_prefetch(dev, 0, &tn, &err), &err);
    CHECK_EQ_INT(waits, 0);
    CHECK_OK(ot_exec_launch(dev, &tj, 1, &err), &err); /* takes `next`, not `junk` */
    CHECK_EQ_INT(waits, 1);
    o = ot_exec_output(dev, 0); /* waits for the launch */
    CHECK_EQ_INT(waits, 2);
    CHECK(o != NULL && memcmp(o->data, y2, o->bytes) == 0);
    CHECK_OK(ot_exec_run(dev, &in, 1, &err), &err); /* copies again */
    CHECK(memcmp(ot_exec_output(dev, 0)->data, y1, o->bytes) == 0);
    CHECK_OK(ot_exec_wait(dev, &err), &err); /* nothing in flight: nothing to wait for */
    CHECK_EQ_INT(waits, 3);
    ot_tensor short_t = tn;
    short_t.bytes -= 4;
    CHECK_EQ_INT(ot_exec_prefetch(dev, 0, &short_t, &err), OT_ERR_ARG);
    CHECK_EQ_INT(ot_exec_prefetch(dev, 1, &tn, &err), OT_ERR_ARG);
    CHECK_OK(ot_exec_compile_on(&opaque, g, &b, 1, NULL, &plain, &err), &err);
    CHECK_EQ_INT(ot_exec_prefetch(plain, 0, &tn, &err), OT_ERR_ARG);
    /* uint8 images: only for an input compiled with them, and only a float
       [n, C, S, S] input takes them (test_Linear's is 2-D) */
    uint8_t img[16] = { 0 };
    CHECK_EQ_INT(ot_exec_prefetch_u8(dev, 0, img, next, &err), OT_ERR_ARG);
    ot_exec_u8 u8 = { .c_in = 1, .h = 4, .w = 4, .host = NULL };
    ot_exec *bad = NULL;
    po.prefetch_u8 = &u8;
    CHECK_EQ_INT(ot_exec_compile_on(&opaque, g, &b, 1, &po, &bad, &err), OT_ERR_ARG);
    CHECK(bad == NULL);
    ot_exec_opts far = { .prefetch_input = 2 }; /* one input bound */
    CHECK_EQ_INT(ot_exec_compile_on(&opaque, g, &b, 1, &far, &bad, &err), OT_ERR_ARG);
    /* the CPU reads the caller's memory: a prefetch takes nothing */
    CHECK_OK(ot_exec_prefetch(host, 0, &tn, &err), &err);
    CHECK_OK(ot_exec_run(host, &in, 1, &err), &err);
    CHECK(memcmp(ot_exec_output(host, 0)->data, y1, o->bytes) == 0);
    ot_free(next);
    ot_free(junk);
    ot_free(in.data);
    ot_exec_free(plain);
    ot_exec_free(dev);
    ot_exec_free(host);
    ot_graph_free(g);
}

/* Device names: cpu, cuda and cuda:N are known; this build runs only cpu, so
   a CUDA device is a one-line "no CUDA backend" error, at parse and at
   compile; anything else is not a device name. */
TEST(exec_device_names)
{
    ot_err err;
    ot_device d;
    char name[32];
    CHECK_OK(ot_device_parse("cpu", &d, &err), &err);
    CHECK(d.kind == OT_DEVICE_CPU);
    CHECK_OK(ot_device_parse(NULL, &d, &err), &err);
    CHECK(d.kind == OT_DEVICE_CPU);
    CHECK_STR(ot_device_name(&d, name, sizeof name), "cpu");
    /* without a CUDA backend, or without a usable GPU (test_cuda.c and
       test_cuda.sh check the reasons); the tests never run where cuda:12 is */
    char all[2048];
    ot_device_backends(all, sizeof all);
    bool built = strstr(all, "cuda: not built in") == NULL;
    ot_status st = ot_device_parse("cuda", &d, &err);
    CHECK(d.kind == OT_DEVICE_CUDA && d.index == 0);
    if (!built) {
        CHECK_EQ_INT(st, OT_ERR_UNSUPPORTED);
        CHECK_STR(err.msg, "device 'cuda:0': this build has no CUDA backend");
    } else if (st != OT_OK) {
        CHECK_EQ_INT(st, OT_ERR_UNSUPPORTED);
        CHECK(strstr(err.msg, "device 'cuda:0' is not usable: ") == err.msg);
    }
    CHECK_EQ_INT(ot_device_parse("cuda:12", &d, &err), OT_ERR_UNSUPPORTED);
    CHECK(d.kind == OT_DEVICE_CUDA && d.index == 12);
    CHECK_STR(ot_device_name(&d, name, sizeof name), "cuda:12");
    const char *bad[] = { "gpu", "CPU", "cuda:", "cuda:-1", "cuda:01", "cuda:1x", "cuda0",
                          "cpu:0", " cpu", "cuda:9999999999" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ_INT(ot_device_parse(bad[i], &d, &err), OT_ERR_ARG);
        CHECK(strstr(err.msg, "unknown device") && strstr(err.msg, "cpu, cuda, cuda:N"));
    }
    /* compiling for a device without a backend fails before any work */
    ot_graph *g = NULL;
    ot_exec *x = NULL;
    CHECK_OK(ot_onnx_import_file(NODE "test_relu/model.onnx", NULL, &g, &err), &err);
    ot_exec_input b = { .value = g->inputs[0].value };
    b.tensor.dtype = OT_DTYPE_FLOAT;
    b.tensor.ndim = 3;
    b.tensor.dims[0] = 3;
    b.tensor.dims[1] = 4;
    b.tensor.dims[2] = 5;
    ot_exec_opts o = { .device = { .kind = OT_DEVICE_CUDA, .index = 1 } };
    o.device.index = 12;
    CHECK_EQ_INT(ot_exec_compile(g, &b, 1, &o, &x, &err), OT_ERR_UNSUPPORTED);
    CHECK(x == NULL);
    CHECK(strstr(err.msg, built ? "device 'cuda:12' is not usable: "
                                : "device 'cuda:12': this build has no CUDA backend") == err.msg);
    o.device.kind = OT_DEVICE_CPU;
    CHECK_OK(ot_exec_compile(g, &b, 1, &o, &x, &err), &err);
    ot_exec_free(x);
    ot_graph_free(g);
}

/* Appends node `type` (one output) to g at the opset of its Relu. */
static int32_t add_node(ot_graph *g, const char *type, const int32_t *in, int n_in,
                        const char *out)
{
    ot_err err;
    int32_t id, y;
    int64_t opset = g->nodes[0].opset;
    if (ot_graph_intern_value(g, out, &y, &err) != OT_OK || ot_graph_add_node(g, &id, &err) != OT_OK)
        return -1;
    ot_node *n = &g->nodes[id];
    n->name = ot_arena_strdup(&g->arena, out);
    n->op_type = ot_arena_strdup(&g->arena, type);
    n->opset = opset;
    n->op = ot_op_find("", type, opset);
    n->n_in = n_in;
    n->n_out = 1;
    n->in = ot_arena_memdup(&g->arena, in, sizeof *in * (size_t)n_in);
    n->out = ot_arena_memdup(&g->arena, &y, sizeof y);
    return y;
}

/* A Sum whose operand dies at it writes into that operand's buffer (as the
   gradient Sums at residual joins do): z = Relu(Relu(x) + Sigmoid(x)) needs
   two activation buffers instead of three, and computes the same bytes as
   the executor without fusion, where the Sum has a buffer of its own. */
TEST(exec_sum_in_place)
{
    ot_err err;
    for (int order = 0; order < 2; order++) {
        /* the dying operand that takes the result is the first, or (swapped
           into first place) the second */
        ot_graph *g = NULL;
        CHECK_OK(ot_onnx_import_file(NODE "test_relu/model.onnx", NULL, &g, &err), &err);
        int32_t xid = g->inputs[0].value, rid = g->nodes[0].out[0];
        g->values[rid].flags &= ~OT_VAL_OUTPUT;
        int32_t sid = add_node(g, "Sigmoid", &xid, 1, "b");
        int32_t both[2] = { order ? sid : rid, order ? rid : sid };
        int32_t s = add_node(g, "Sum", both, 2, "s");
        int32_t z = add_node(g, "Relu", &s, 1, "z");
        CHECK(sid >= 0 && s >= 0 && z >= 0);
        g->outputs[0].value = z;
        g->values[z].flags |= OT_VAL_OUTPUT;
        CHECK_OK(ot_graph_sort(g, &err), &err);
        ot_tensor in = { .dtype = OT_DTYPE_FLOAT, .ndim = 3, .dims = { 3, 4, 5 } };
        float xs[60];
        for (int i = 0; i < 60; i++)
            xs[i] = (float)((i * 37) % 23) / 7.0f - 1.5f;
        in.data = xs;
        in.bytes = sizeof xs;
        ot_exec_input b = { .value = xid, .tensor = in };
        ot_exec *x[2] = { NULL, NULL };
        for (int k = 0; k < 2; k++) {
            ot_exec_opts o = { .cpu.no_fusion = k == 1 };
            CHECK_OK(ot_exec_compile(g, &b, 1, &o, &x[k], &err), &err);
            CHECK_OK(ot_exec_run(x[k], &in, 1, &err), &err);
        }
        /* 60 floats, each buffer 64-byte aligned */
        CHECK_EQ_INT(ot_exec_arena_bytes(x[0]), 2 * 256);
        CHECK_EQ_INT(ot_exec_arena_bytes(x[1]), 3 * 256);
        const ot_tensor *y0 = ot_exec_output(x[0], 0), *y1 = ot_exec_output(x[1], 0);
        CHECK(y0 && y1 && y0->bytes == sizeof xs && memcmp(y0->data, y1->data, sizeof xs) == 0);
        const float *yv = y0->data;
        for (int i = 0; i < 60; i++) {
            float want = fmaxf(xs[i], 0.0f) + 1.0f / (1.0f + expf(-xs[i]));
            CHECK(fabsf(yv[i] - want) < 1e-5f);
        }
        for (int k = 0; k < 2; k++)
            ot_exec_free(x[k]);
        ot_graph_free(g);
    }
}

/* Data-parallel training: the CPU executor moves the communicator's started
   gradient reductions on between the nodes of a step (MPI progresses them
   only inside its calls; docs/distributed.md, "Overlap"): one progress call
   before every step but the first. */
static int progress_calls;

static void counting_progress(ot_comm *c)
{
    (void)c;
    progress_calls++;
}

TEST(exec_progresses_reductions_between_steps)
{
    ot_err err;
    ot_graph *g = NULL;
    CHECK_OK(ot_onnx_import_file(NODE "test_relu/model.onnx", NULL, &g, &err), &err);
    int32_t xid = g->inputs[0].value, rid = g->nodes[0].out[0];
    g->values[rid].flags &= ~OT_VAL_OUTPUT;
    int32_t sid = add_node(g, "Sigmoid", &xid, 1, "b");
    int32_t both[2] = { rid, sid };
    int32_t s = add_node(g, "Sum", both, 2, "s");
    int32_t z = add_node(g, "Relu", &s, 1, "z");
    CHECK(sid >= 0 && s >= 0 && z >= 0);
    g->outputs[0].value = z;
    g->values[z].flags |= OT_VAL_OUTPUT;
    CHECK_OK(ot_graph_sort(g, &err), &err);
    ot_tensor in = { .dtype = OT_DTYPE_FLOAT, .ndim = 3, .dims = { 3, 4, 5 } };
    float xs[60] = { 0 };
    in.data = xs;
    in.bytes = sizeof xs;
    ot_exec_input b = { .value = xid, .tensor = in };
    ot_exec *x = NULL;
    ot_exec_opts o = { .cpu.no_fusion = true };
    CHECK_OK(ot_exec_compile(g, &b, 1, &o, &x, &err), &err);
    static const ot_comm_ops ops = { .name = "counting", .progress = counting_progress };
    ot_comm c = { .rank = 0, .size = 2, .ops = &ops, .grad_weight = 1.0f };
    progress_calls = 0;
    ot_dist_set_current(&c);
    ot_status st = ot_exec_run(x, &in, 1, &err);
    ot_dist_set_current(NULL);
    CHECK_OK(st, &err);
    CHECK(ot_exec_n_steps(x) >= 3);
    CHECK_EQ_INT(progress_calls, ot_exec_n_steps(x) - 1);
    /* one process: nothing to move on, and nothing called */
    progress_calls = 0;
    CHECK_OK(ot_exec_run(x, &in, 1, &err), &err);
    CHECK_EQ_INT(progress_calls, 0);
    ot_exec_free(x);
    ot_graph_free(g);
}
