/*
 * test_prefix_cache.c: where the frozen-prefix cache keeps its records
 * (ot_train_cache_place: the device, pinned host memory or the host), and
 * the executor's record store that keeps them where the executors compute
 * (ot_exec_store), here on the CPU backend, host-visible and behind the
 * memory hooks as a device's memory is.
 */
#include <math.h>
#include <stdint.h>

#include "exec/exec.h"
#include "exec/exec_impl.h"
#include "onnx/onnx.h"
#include "test.h"
#include "train/prefix_cache.h"

#define GiB ((uint64_t)1 << 30)
#define MiB ((uint64_t)1 << 20)

TEST(prefix_cache_place_decides)
{
    const char *why = NULL;
    /* not a device: the host, whatever the sizes */
    ot_cache_place_in in = { .need = 1, .device = false, .dev_free = 70 * GiB,
                             .dev_total = 80 * GiB };
    CHECK_EQ_INT(ot_train_cache_place(&in, &why), OT_CACHE_HOST);
    CHECK_STR(why, "the executors compute in host memory");
    /* an 80 GiB device with 70 free: the margin is 5 GiB, the reserve 3 */
    in = (ot_cache_place_in){ .need = 2 * GiB, .device = true, .dev_free = 70 * GiB,
                              .dev_total = 80 * GiB, .reserve = 3 * GiB };
    CHECK_EQ_INT(ot_train_cache_place(&in, &why), OT_CACHE_DEVICE);
    CHECK(strstr(why, "fits") != NULL);
    in.need = 62 * GiB; /* exactly what is left */
    CHECK_EQ_INT(ot_train_cache_place(&in, NULL), OT_CACHE_DEVICE);
    in.need = 62 * GiB + 1;
    in.host_budget = 64 * GiB;
    CHECK_EQ_INT(ot_train_cache_place(&in, &why), OT_CACHE_PINNED);
    CHECK(strstr(why, "needed by the run") != NULL);
    /* over the host budget too (0: 2 GiB): the host, memory or a file */
    in.host_budget = 0;
    CHECK_EQ_INT(ot_train_cache_place(&in, &why), OT_CACHE_HOST);
    in.need = 2 * GiB + 1;
    in.reserve = 68 * GiB;
    CHECK_EQ_INT(ot_train_cache_place(&in, NULL), OT_CACHE_HOST);
    in.need = 2 * GiB;
    CHECK_EQ_INT(ot_train_cache_place(&in, NULL), OT_CACHE_PINNED);
    /* a small device: the margin's floor (256 MiB) */
    in = (ot_cache_place_in){ .need = 244 * MiB, .device = true, .dev_free = 600 * MiB,
                              .dev_total = 1 * GiB, .reserve = 100 * MiB };
    CHECK_EQ_INT(ot_train_cache_place(&in, NULL), OT_CACHE_DEVICE);
    in.need++;
    CHECK_EQ_INT(ot_train_cache_place(&in, NULL), OT_CACHE_PINNED);
    /* less free than the margin, or sizes that would overflow a sum */
    in = (ot_cache_place_in){ .need = 1, .device = true, .dev_free = 200 * MiB,
                              .dev_total = 1 * GiB };
    CHECK_EQ_INT(ot_train_cache_place(&in, NULL), OT_CACHE_PINNED);
    in.dev_free = 70 * GiB;
    in.dev_total = 80 * GiB;
    in.reserve = UINT64_MAX;
    CHECK_EQ_INT(ot_train_cache_place(&in, NULL), OT_CACHE_PINNED);
    in.reserve = 0;
    in.need = UINT64_MAX;
    CHECK_EQ_INT(ot_train_cache_place(&in, NULL), OT_CACHE_HOST);
    in.need = 0; /* nothing to keep fits anywhere with room */
    CHECK_EQ_INT(ot_train_cache_place(&in, NULL), OT_CACHE_DEVICE);
}

/* ONNX's Relu node test: x [3, 4, 5] -> y, rows of 80 bytes. */
static ot_status relu_exec(const ot_backend *be, ot_graph **g, ot_exec **x, ot_err *err)
{
    ot_status st = ot_onnx_import_file("/usr/share/libonnx-testdata/data/node/test_relu/model.onnx",
                                       NULL, g, err);
    if (st != OT_OK)
        return st;
    ot_exec_input b = { .value = (*g)->inputs[0].value,
                        .tensor = { .dtype = OT_DTYPE_FLOAT, .ndim = 3, .dims = { 3, 4, 5 },
                                    .bytes = 240 } };
    return ot_exec_compile_on(be, *g, &b, 1, NULL, x, err);
}

static float bf16_round(float v) { return ot_bf16_to_f32(ot_f32_to_bf16(v)); }

/* Rows of a run's output into records and back into another executor's
   input: float32 exactly, bfloat16 rounded as the CPU's cache rounds;
   records kept across runs; the errors. `opaque`: the CPU behind the
   memory hooks (the input taken as a device takes it, not from the
   caller's buffer). */
static void store_round_trip(bool opaque, bool bf16, ot_store_place place)
{
    ot_err err;
    ot_backend be = ot_backend_cpu;
    be.host_visible = !opaque;
    ot_graph *g = NULL, *g2 = NULL;
    ot_exec *a = NULL, *b = NULL;
    ot_exec_store *s = NULL;
    CHECK_OK(relu_exec(&be, &g, &a, &err), &err);
    CHECK_OK(relu_exec(&be, &g2, &b, &err), &err);
    size_t fr, tot;
    CHECK(!ot_exec_mem_info(a, &fr, &tot) && fr == 0 && tot == 0);
    size_t row = 80;
    CHECK_OK(ot_exec_store_open(a, place, &row, &bf16, 1, 5, &s, &err), &err);
    CHECK_EQ_INT(ot_exec_store_bytes(s), bf16 ? 200 : 400);
    float x[60], junk[60], host[60];
    for (int i = 0; i < 60; i++) {
        x[i] = (float)((i * 37) % 23) / 7.0f - 1.5f + 1e-3f * (float)i;
        junk[i] = 1e6f;
    }
    ot_tensor in = { .dtype = OT_DTYPE_FLOAT, .ndim = 3, .dims = { 3, 4, 5 }, .bytes = 240,
                     .data = x };
    CHECK_OK(ot_exec_run(a, &in, 1, &err), &err);
    int64_t put[3] = { 4, 0, 2 };
    CHECK_OK(ot_exec_store_put(s, a, 0, 0, put, 3, &err), &err);
    /* a's next run does not change the records */
    for (int i = 0; i < 60; i++)
        junk[i] = -junk[i];
    in.data = junk;
    CHECK_OK(ot_exec_run(a, &in, 1, &err), &err);
    int64_t take[3] = { 2, 4, 0 }; /* rows 2, 0, 1 of the first run */
    const int from[3] = { 2, 0, 1 };
    for (int i = 0; i < 60; i++)
        host[i] = 7.0f;
    CHECK_OK(ot_exec_store_take(s, b, 0, 0, take, 3, host, &err), &err);
    /* the next run takes the records; the caller's buffer is host on the
       CPU, ignored behind the hooks */
    in.data = opaque ? junk : host;
    CHECK_OK(ot_exec_run(b, &in, 1, &err), &err);
    const float *y = ot_exec_output(b, 0)->data;
    for (int r = 0; r < 3; r++)
        for (int k = 0; k < 20; k++) {
            float want = fmaxf(x[from[r] * 20 + k], 0.0f);
            if (bf16)
                want = bf16_round(want);
            CHECK(y[r * 20 + k] == want);
            if (!opaque)
                CHECK(host[r * 20 + k] == want);
        }
    if (opaque) /* behind the hooks the host buffer is not written */
        CHECK(host[0] == 7.0f);
    /* the run after copies its input again */
    in.data = x;
    CHECK_OK(ot_exec_run(b, &in, 1, &err), &err);
    CHECK(ot_exec_output(b, 0)->data != NULL &&
          ((const float *)ot_exec_output(b, 0)->data)[0] == fmaxf(x[0], 0.0f));
    /* errors: the part, a record out of range, no rows, an output or input
       that is not there, rows of another size */
    CHECK_EQ_INT(ot_exec_store_put(s, a, 0, 1, put, 3, &err), OT_ERR_ARG);
    int64_t bad[1] = { 5 };
    CHECK_EQ_INT(ot_exec_store_put(s, a, 0, 0, bad, 1, &err), OT_ERR_ARG);
    CHECK(strstr(err.msg, "record 5 of 5") != NULL);
    bad[0] = -1;
    CHECK_EQ_INT(ot_exec_store_take(s, b, 0, 0, bad, 1, host, &err), OT_ERR_ARG);
    CHECK_EQ_INT(ot_exec_store_put(s, a, 0, 0, put, 0, &err), OT_ERR_ARG);
    CHECK_EQ_INT(ot_exec_store_put(s, a, 0, 0, put, 4, &err), OT_ERR_ARG);
    CHECK_EQ_INT(ot_exec_store_put(s, a, 1, 0, put, 3, &err), OT_ERR_ARG);
    CHECK_EQ_INT(ot_exec_store_take(s, b, 1, 0, put, 3, host, &err), OT_ERR_ARG);
    ot_exec_store *s2 = NULL;
    size_t other = 40;
    CHECK_OK(ot_exec_store_open(a, place, &other, NULL, 1, 2, &s2, &err), &err);
    int64_t one[1] = { 1 };
    CHECK_EQ_INT(ot_exec_store_put(s2, a, 0, 0, one, 1, &err), OT_ERR_ARG);
    CHECK(strstr(err.msg, "has no 1 rows of 40 bytes") != NULL);
    ot_exec_store_free(s2);
    /* bfloat16 parts hold float32 rows */
    bool half = true;
    size_t odd = 6;
    CHECK_EQ_INT(ot_exec_store_open(a, place, &odd, &half, 1, 2, &s2, &err), OT_ERR_ARG);
    CHECK(s2 == NULL);
    CHECK_EQ_INT(ot_exec_store_open(a, place, &row, NULL, 0, 2, &s2, &err), OT_ERR_ARG);
    ot_exec_store_free(s);
    ot_exec_free(a);
    ot_exec_free(b);
    ot_graph_free(g);
    ot_graph_free(g2);
}

TEST(exec_store_rows_on_the_host)
{
    store_round_trip(false, false, OT_STORE_DEVICE);
    store_round_trip(false, true, OT_STORE_PINNED);
}

TEST(exec_store_rows_behind_the_memory_hooks)
{
    store_round_trip(true, false, OT_STORE_DEVICE);
    store_round_trip(true, true, OT_STORE_DEVICE);
    store_round_trip(true, false, OT_STORE_PINNED);
}

/* The cache opened with an executor: on the CPU the host's memory unless
   forced; forced, in the executor's store; an unknown placement refused. */
TEST(prefix_cache_open_places_the_records)
{
    ot_err err;
    ot_graph *g = NULL;
    ot_exec *x = NULL;
    CHECK_OK(relu_exec(&ot_backend_cpu, &g, &x, &err), &err);
    ot_tensor cut = { .dtype = OT_DTYPE_FLOAT, .ndim = 3, .dims = { 3, 4, 5 }, .bytes = 240 };
    const char *force[] = { NULL, "device", "pinned", "host", "gpu" };
    const char *where[] = { "host memory", "device memory", "pinned host memory", "host memory",
                            NULL };
    for (int k = 0; k < 5; k++) {
        ot_train_cache c;
        ot_train_cache_init(&c);
        ot_train_cache_dev dev = { .x = x, .force = force[k] };
        ot_status st = ot_train_cache_open(&c, &cut, 1, 3, 10, k == 2, 0, NULL, &dev, &err);
        if (!where[k]) {
            CHECK_EQ_INT(st, OT_ERR_ARG);
            CHECK_STR(err.msg, "ONNXTRAIN_CACHE_PLACE: 'gpu' is not device, pinned or host");
        } else {
            CHECK_OK(st, &err);
            CHECK(c.on);
            CHECK_STR(ot_train_cache_where(&c), where[k]);
            CHECK((c.store != NULL) == (k == 1 || k == 2));
            CHECK_EQ_INT(c.bytes, k == 2 ? 400 : 800);
            if (c.store)
                CHECK_EQ_INT(ot_exec_store_bytes(c.store), c.bytes);
        }
        if (k == 0)
            CHECK_STR(c.place_why, "the executors compute in host memory");
        ot_train_cache_fini(&c);
    }
    ot_exec_free(x);
    ot_graph_free(g);
}

/* What --augment hands in with the uint8 images: the images, then at the
   next multiple of 4 bytes a record of box_ints int32 per image; an executor
   refuses records shorter than their head. */
TEST(exec_u8_bytes_with_boxes)
{
    ot_exec_u8 u = { .c_in = 3, .h = 5, .w = 5 };
    CHECK_EQ_INT(ot_exec_u8_bytes(&u, 3), 225);
    u.box_ints = 20;
    CHECK_EQ_INT(ot_exec_u8_box_offset(&u, 3), 228);
    CHECK_EQ_INT(ot_exec_u8_bytes(&u, 3), 228 + 3 * 20 * 4);
    CHECK_EQ_INT(ot_exec_u8_box_offset(&u, 4), 300);
}
