/*
 * tensor_io.c: one TensorProto per file, the format of ONNX's backend test
 * data (input_N.pb and output_N.pb in test_data_set_N folders) and of `onnxtrain run
 * --output-dir`.
 *
 * Reading checks the wire format first (ot_pb_prescan: lengths within their
 * parents, nesting depth), then unpacks with protobuf-c and decodes through
 * ot_pb_decode_tensor, so sizes are checked before anything is allocated.
 * External data is refused: a lone tensor file has no model folder that
 * locations could resolve against. Writing always uses raw_data and goes to a
 * temporary file beside the target that is renamed on success.
 *
 * Not done here: string tensors, sequences, maps (OT_ERR_UNSUPPORTED).
 * Reference: onnx.proto TensorProto; onnx.numpy_helper.{to,from}_array.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/file.h"
#include "pb.h"

/* A TensorProto file is one protobuf message, which protobuf caps at 2 GiB. */
#define MAX_TENSOR_FILE_BYTES ((size_t)2 << 30)

/* The pre-scan speaks of models; a tensor file is not one. */
static void reword_prescan(ot_err *err, const char *path)
{
    static const char model[] = "not a valid ONNX model: ";
    char rest[OT_ERR_MSG_MAX];
    const char *r = err->msg;
    if (strncmp(r, model, sizeof model - 1) == 0)
        r += sizeof model - 1;
    memcpy(rest, r, strlen(r) + 1);
    ot_err_set(err, OT_ERR_PARSE, "%s: not a valid TensorProto file: %s", path, rest);
}

static ot_status read_whole(const char *path, uint8_t **out, size_t *len_out, ot_err *err)
{
    ot_status st = OT_OK;
    uint8_t *buf = NULL;
    int fd = -1;
    struct stat sb;
    OT_TRY(ot_file_open_read(path, &fd, &sb, err));
    if ((uint64_t)sb.st_size > MAX_TENSOR_FILE_BYTES)
        OT_FAIL(err, OT_ERR_PARSE, "%s: %lld bytes is larger than a protobuf can be (2 GiB)",
                path, (long long)sb.st_size);
    size_t len = (size_t)sb.st_size;
    buf = ot_malloc(len ? len : 1);
    if (!buf)
        OT_FAIL(err, OT_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, len);
    for (size_t got = 0; got < len;) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            OT_FAIL(err, OT_ERR_IO, "%s: read error: %s", path, strerror(errno));
        if (r == 0) { /* shrank while we read: take what is there */
            len = got;
            break;
        }
        got += (size_t)r;
    }
    *out = buf;
    *len_out = len;
    buf = NULL;
done:
    if (fd >= 0)
        close(fd);
    ot_free(buf);
    return st;
}

ot_status ot_onnx_read_tensor(const char *path, ot_tensor *t, char **name_out, ot_err *err)
{
    ot_status st = OT_OK;
    uint8_t *buf = NULL;
    size_t len = 0;
    Onnx__TensorProto *tp = NULL;
    char *name = NULL;
    memset(t, 0, sizeof *t);
    if (name_out)
        *name_out = NULL;

    OT_TRY(read_whole(path, &buf, &len, err));
    if (ot_pb_prescan(buf, len, &onnx__tensor_proto__descriptor, OT_ONNX_MAX_DEPTH, err) !=
        OT_OK) {
        reword_prescan(err, path);
        st = OT_ERR_PARSE;
        goto done;
    }
    tp = onnx__tensor_proto__unpack(NULL, len, buf);
    if (!tp)
        OT_FAIL(err, OT_ERR_PARSE, "%s: not a valid TensorProto file (protobuf decoding failed)",
                path);
    ot_free(buf);
    buf = NULL;
    if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        OT_FAIL(err, OT_ERR_UNSUPPORTED,
                "%s: the tensor keeps its data in an external file, which a tensor file "
                "cannot refer to",
                path);
    if (tp->has_data_type && tp->data_type == OT_DTYPE_STRING)
        OT_FAIL(err, OT_ERR_UNSUPPORTED, "%s: string tensors are not supported", path);

    ot_tensor_src src = { .dir = NULL, .max_bytes = OT_DEFAULT_MAX_TENSOR_BYTES };
    ot_storage storage;
    bool is_external;
    char what[64];
    snprintf(what, sizeof what, "tensor '%.40s'", tp->name ? tp->name : "");
    st = ot_pb_decode_tensor(tp, &src, true, what, t, &storage, &is_external, err);
    if (st != OT_OK) {
        ot_err_prefix(err, "%s", path);
        goto done;
    }
    if (name_out) {
        name = ot_strdup(tp->name ? tp->name : "");
        if (!name)
            OT_FAIL(err, OT_ERR_NOMEM, "%s: out of memory", path);
        *name_out = name;
        name = NULL;
    }
done:
    if (st != OT_OK) {
        ot_free(t->data);
        memset(t, 0, sizeof *t);
    }
    if (tp)
        onnx__tensor_proto__free_unpacked(tp, NULL);
    ot_free(buf);
    ot_free(name);
    return st;
}

/* ----------------------------------------------------------------- writing */

typedef struct file_buffer {
    ProtobufCBuffer base;
    FILE *f;
    int error;
} file_buffer;

static void file_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
    file_buffer *fb = (file_buffer *)b;
    if (!fb->error && len && fwrite(data, 1, len, fb->f) != len)
        fb->error = errno ? errno : EIO;
}

ot_status ot_onnx_write_tensor(const char *path, const char *name, const ot_tensor *t,
                               ot_err *err)
{
    ot_atomic_file af;
    ot_status st = ot_onnx_write_tensor_staged(path, name, t, &af, err);
    if (st == OT_OK)
        st = ot_atomic_rename(&af, err);
    return st;
}

ot_status ot_onnx_write_tensor_staged(const char *path, const char *name, const ot_tensor *t,
                                      ot_atomic_file *af, ot_err *err)
{
    ot_status st = OT_OK;
    memset(af, 0, sizeof *af);
    af->slot = -1;
    char *name_copy = NULL;
    int64_t dims[OT_MAX_DIMS];

    size_t esize = ot_dtype_size(t->dtype);
    if (!esize)
        OT_FAIL(err, OT_ERR_ARG, "%s: cannot write a tensor of dtype %s", path,
                ot_dtype_name(t->dtype));
    if (t->ndim < 0 || t->ndim > OT_MAX_DIMS)
        OT_FAIL(err, OT_ERR_ARG, "%s: rank %d is out of range", path, t->ndim);
    if (t->bytes && !t->data)
        OT_FAIL(err, OT_ERR_ARG, "%s: tensor of %zu bytes has no data", path, t->bytes);
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        OT_FAIL(err, OT_ERR_IO, "%s: is a folder", path);

    name_copy = ot_strdup(name ? name : "");
    if (!name_copy)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    Onnx__TensorProto tp;
    onnx__tensor_proto__init(&tp);
    for (int i = 0; i < t->ndim; i++)
        dims[i] = t->dims[i];
    tp.n_dims = (size_t)t->ndim;
    tp.dims = dims;
    tp.has_data_type = 1;
    tp.data_type = (int32_t)t->dtype;
    tp.name = name_copy;
    tp.has_raw_data = 1;
    tp.raw_data.len = t->bytes;
    tp.raw_data.data = t->data;

    OT_TRY(ot_atomic_open(af, path, err));
    file_buffer fb = { .base = { .append = file_append }, .f = af->f };
    errno = 0;
    protobuf_c_message_pack_to_buffer(&tp.base, &fb.base);
    OT_TRY(ot_atomic_finish(af, fb.error, err));
done:
    ot_free(name_copy);
    return st;
}
