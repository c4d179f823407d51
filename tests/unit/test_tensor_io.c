/*
 * test_tensor_io.c: TensorProto files (ot_onnx_read_tensor, ot_onnx_write_tensor)
 * on ONNX's backend test data (Debian libonnx-testdata) and on round trips of
 * every dtype family, scalars, empty tensors and broken files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnx/onnx.h"
#include "test.h"

#define NODE_DATA "/usr/share/libonnx-testdata/data/node"

static float f32_at(const ot_tensor *t, size_t i)
{
    float v;
    memcpy(&v, (const char *)t->data + i * 4, 4);
    return v;
}

TEST(tensor_io_read_relu_input)
{
    ot_err err;
    ot_tensor t;
    char *name = NULL;
    CHECK_OK(ot_onnx_read_tensor(NODE_DATA "/test_relu/test_data_set_0/input_0.pb", &t, &name,
                                 &err),
             &err);
    int ok = t.dtype == OT_DTYPE_FLOAT && t.ndim == 3 && t.dims[0] == 3 && t.dims[1] == 4 &&
             t.dims[2] == 5 && t.bytes == 60 * 4 && name && strcmp(name, "x") == 0;
    /* numpy.random.seed(0); randn: the first value is 1.7640524 */
    float first = ok ? f32_at(&t, 0) : 0.0f;
    ot_free(t.data);
    ot_free(name);
    CHECK(ok);
    CHECK(first > 1.76405f && first < 1.76406f);
}

TEST(tensor_io_read_int64_bool_float16_outputs)
{
    ot_err err;
    ot_tensor t;
    CHECK_OK(ot_onnx_read_tensor(
                 NODE_DATA "/test_argmax_default_axis_example/test_data_set_0/output_0.pb", &t,
                 NULL, &err),
             &err);
    int ok = t.dtype == OT_DTYPE_INT64 && t.ndim == 2 && t.dims[0] == 1 && t.dims[1] == 2 &&
             ot_tensor_get_i64(&t, 0) == 1 && ot_tensor_get_i64(&t, 1) == 1;
    ot_free(t.data);
    CHECK(ok);

    CHECK_OK(ot_onnx_read_tensor(NODE_DATA "/test_and2d/test_data_set_0/output_0.pb", &t, NULL,
                                 &err),
             &err);
    ok = t.dtype == OT_DTYPE_BOOL && t.ndim == 2 && t.bytes == 12;
    ot_free(t.data);
    CHECK(ok);

    CHECK_OK(ot_onnx_read_tensor(NODE_DATA "/test_cast_FLOAT_to_FLOAT16/test_data_set_0/output_0.pb",
                                 &t, NULL, &err),
             &err);
    ok = t.dtype == OT_DTYPE_FLOAT16 && t.ndim == 2 && t.bytes == 24;
    double v0 = ok ? ot_tensor_get_f64(&t, 0) : 0.0;
    ot_free(t.data);
    CHECK(ok);
    CHECK(v0 > 0.548 && v0 < 0.550);
}

/* Writes `t` as `file` in the scratch folder, reads it back and compares. */
static int roundtrip(const char *file, const char *name, const ot_tensor *t)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", ot_test_tmpdir(), file);
    ot_err err;
    if (ot_onnx_write_tensor(path, name, t, &err) != OT_OK) {
        printf("  write %s: %s\n", file, err.msg);
        return 0;
    }
    ot_tensor back;
    char *back_name = NULL;
    if (ot_onnx_read_tensor(path, &back, &back_name, &err) != OT_OK) {
        printf("  read %s: %s\n", file, err.msg);
        return 0;
    }
    int ok = back.dtype == t->dtype && back.ndim == t->ndim && back.bytes == t->bytes &&
             strcmp(back_name, name) == 0;
    for (int i = 0; ok && i < t->ndim; i++)
        ok = back.dims[i] == t->dims[i];
    if (ok && t->bytes)
        ok = back.data && memcmp(back.data, t->data, t->bytes) == 0;
    if (ok && !t->bytes)
        ok = back.data == NULL;
    ot_free(back.data);
    ot_free(back_name);
    return ok;
}

TEST(tensor_io_roundtrip_dtypes)
{
    float f[6] = { 1.5f, -2.0f, 0.0f, 3.25f, -0.0f, 1e30f };
    ot_tensor t = { .dtype = OT_DTYPE_FLOAT, .ndim = 2, .dims = { 2, 3 }, .data = f,
                    .bytes = sizeof f };
    CHECK(roundtrip("f32.pb", "logits", &t));

    int64_t i64[4] = { -1, 0, INT64_MAX, INT64_MIN };
    t = (ot_tensor){ .dtype = OT_DTYPE_INT64, .ndim = 1, .dims = { 4 }, .data = i64,
                     .bytes = sizeof i64 };
    CHECK(roundtrip("i64.pb", "shape", &t));

    uint8_t b[5] = { 1, 0, 1, 1, 0 };
    t = (ot_tensor){ .dtype = OT_DTYPE_BOOL, .ndim = 3, .dims = { 1, 5, 1 }, .data = b,
                     .bytes = sizeof b };
    CHECK(roundtrip("bool.pb", "mask", &t));

    uint16_t h[3] = { ot_f32_to_f16(1.0f), ot_f32_to_f16(-0.5f), 0x7c00 /* +inf */ };
    t = (ot_tensor){ .dtype = OT_DTYPE_FLOAT16, .ndim = 1, .dims = { 3 }, .data = h,
                     .bytes = sizeof h };
    CHECK(roundtrip("f16.pb", "", &t));
}

TEST(tensor_io_roundtrip_scalar_and_empty)
{
    float s = 42.0f;
    ot_tensor t = { .dtype = OT_DTYPE_FLOAT, .ndim = 0, .data = &s, .bytes = 4 };
    CHECK(roundtrip("scalar.pb", "s", &t));

    t = (ot_tensor){ .dtype = OT_DTYPE_FLOAT, .ndim = 2, .dims = { 0, 3 }, .data = NULL,
                     .bytes = 0 };
    CHECK(roundtrip("empty.pb", "e", &t));

    t = (ot_tensor){ .dtype = OT_DTYPE_INT64, .ndim = 1, .dims = { 0 }, .data = NULL,
                     .bytes = 0 };
    CHECK(roundtrip("empty_i64.pb", "e64", &t));
}

TEST(tensor_io_write_leaves_no_temp_file)
{
    char path[512];
    snprintf(path, sizeof path, "%s/only", ot_test_tmpdir());
    CHECK_EQ_INT(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/only/out.pb", ot_test_tmpdir());
    float v = 1.0f;
    ot_tensor t = { .dtype = OT_DTYPE_FLOAT, .ndim = 1, .dims = { 1 }, .data = &v, .bytes = 4 };
    ot_err err;
    CHECK_OK(ot_onnx_write_tensor(path, "y", &t, &err), &err);
    CHECK_OK(ot_onnx_write_tensor(path, "y", &t, &err), &err); /* overwrite */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "test \"$(ls '%s/only')\" = out.pb", ot_test_tmpdir());
    CHECK_EQ_INT(system(cmd), 0);
    /* a missing folder is an I/O error, and nothing appears */
    snprintf(path, sizeof path, "%s/no/such/dir/out.pb", ot_test_tmpdir());
    CHECK_EQ_INT(ot_onnx_write_tensor(path, "y", &t, &err), OT_ERR_IO);
    CHECK(strstr(err.msg, path) == err.msg);
}

TEST(tensor_io_truncated_file_is_parse_error)
{
    FILE *in = fopen(NODE_DATA "/test_relu/test_data_set_0/input_0.pb", "rb");
    CHECK(in != NULL);
    unsigned char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, in);
    fclose(in);
    CHECK(n > 100);
    char path[512];
    snprintf(path, sizeof path, "%s/truncated.pb", ot_test_tmpdir());
    FILE *out = fopen(path, "wb");
    CHECK(out != NULL);
    CHECK_EQ_INT(fwrite(buf, 1, n / 2, out), n / 2);
    fclose(out);
    ot_err err;
    ot_tensor t;
    char *name = NULL;
    CHECK_EQ_INT(ot_onnx_read_tensor(path, &t, &name, &err), OT_ERR_PARSE);
    CHECK(strstr(err.msg, path) == err.msg);
    CHECK(name == NULL && t.data == NULL);

    /* garbage that is not protobuf at all */
    out = fopen(path, "wb");
    CHECK(out != NULL);
    fputs("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", out);
    fclose(out);
    CHECK_EQ_INT(ot_onnx_read_tensor(path, &t, NULL, &err), OT_ERR_PARSE);
}

TEST(tensor_io_size_mismatch_is_model_error)
{
    /* dims [4], float, raw_data of 8 bytes: field 1 (dims) = 4, field 2
       (data_type) = 1, field 9 (raw_data) length 8 */
    static const unsigned char pb[] = { 0x08, 0x04, 0x10, 0x01, 0x4a, 0x08, 0, 0, 0, 0,
                                        0,    0,    0,    0 };
    char path[512];
    snprintf(path, sizeof path, "%s/short.pb", ot_test_tmpdir());
    FILE *out = fopen(path, "wb");
    CHECK(out != NULL);
    CHECK_EQ_INT(fwrite(pb, 1, sizeof pb, out), sizeof pb);
    fclose(out);
    ot_err err;
    ot_tensor t;
    CHECK_EQ_INT(ot_onnx_read_tensor(path, &t, NULL, &err), OT_ERR_MODEL);
    CHECK(strstr(err.msg, path) == err.msg);
}

TEST(tensor_io_missing_file_is_io_error)
{
    ot_err err;
    ot_tensor t;
    char *name = NULL;
    CHECK_EQ_INT(ot_onnx_read_tensor("/nonexistent/input_0.pb", &t, &name, &err), OT_ERR_IO);
    CHECK(strstr(err.msg, "/nonexistent/input_0.pb") == err.msg);
    CHECK(name == NULL);
    CHECK_EQ_INT(ot_onnx_read_tensor(ot_test_tmpdir(), &t, NULL, &err), OT_ERR_IO);
}
