/*
 * pb.c: protobuf-c plumbing for import and export: arena allocator, packing
 * into the graph arena, the wire-format depth pre-scan and TensorProto
 * decoding (raw_data, typed fields, external data).
 *
 * Reference: protobuf encoding (varints, wire types 0, 1, 2, 5), ONNX
 * onnx.proto TensorProto and its external-data convention (location, offset,
 * length relative to the model's folder).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/file.h"
#include "pb.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "onnxtrain stores tensors in host order and assumes a little-endian host"
#endif

static void *arena_alloc(void *data, size_t size) { return ot_arena_alloc(data, size); }
static void arena_free(void *data, void *ptr)
{
    (void)data;
    (void)ptr;
}

void ot_pb_arena_allocator(ot_arena *a, ProtobufCAllocator *out)
{
    out->alloc = arena_alloc;
    out->free = arena_free;
    out->allocator_data = a;
}

bool ot_pb_pack(const ProtobufCMessage *m, ot_arena *a, ot_blob *out)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = ot_arena_alloc(a, n ? n : 1);
    if (!buf)
        return false;
    size_t w = protobuf_c_message_pack(m, buf);
    OT_ASSERT(w == n);
    out->data = buf;
    out->len = n;
    return true;
}

void *ot_pb_unpack(const ProtobufCMessageDescriptor *d, ot_blob b, ot_arena *a)
{
    ProtobufCAllocator al;
    ot_pb_arena_allocator(a, &al);
    return protobuf_c_message_unpack(d, &al, b.len, b.data);
}

/* ------------------------------------------------------------------ prescan */

static bool read_varint(const uint8_t *p, size_t end, size_t *pos, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (*pos >= end)
            return false;
        uint8_t b = p[(*pos)++];
        if (shift == 63 && b > 1)
            return false;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;
}

ot_status ot_pb_prescan(const uint8_t *data, size_t len, const ProtobufCMessageDescriptor *d,
                        int max_depth, ot_err *err)
{
    struct frame {
        const ProtobufCMessageDescriptor *desc;
        size_t end;
    } stack[OT_ONNX_MAX_DEPTH + 1];
    if (max_depth > OT_ONNX_MAX_DEPTH)
        max_depth = OT_ONNX_MAX_DEPTH;
    int depth = 0;
    stack[0].desc = d;
    stack[0].end = len;
    size_t pos = 0;
    for (;;) {
        while (depth > 0 && pos == stack[depth].end)
            depth--;
        if (depth == 0 && pos == len)
            return OT_OK;
        const struct frame *f = &stack[depth];
        size_t field_at = pos;
        uint64_t key;
        if (!read_varint(data, f->end, &pos, &key))
            return ot_err_set(err, OT_ERR_PARSE,
                              "not a valid ONNX model: truncated or corrupt field key at byte %zu",
                              field_at);
        uint32_t num = (uint32_t)(key >> 3);
        unsigned wt = (unsigned)(key & 7);
        if (num == 0 || key >> 3 > 0x1fffffff)
            return ot_err_set(err, OT_ERR_PARSE,
                              "not a valid ONNX model: invalid field number at byte %zu", field_at);
        uint64_t v;
        switch (wt) {
        case 0:
            if (!read_varint(data, f->end, &pos, &v))
                goto truncated;
            break;
        case 1:
            if (f->end - pos < 8)
                goto truncated;
            pos += 8;
            break;
        case 5:
            if (f->end - pos < 4)
                goto truncated;
            pos += 4;
            break;
        case 2: {
            if (!read_varint(data, f->end, &pos, &v) || v > f->end - pos)
                goto truncated;
            const ProtobufCFieldDescriptor *fd =
                f->desc ? protobuf_c_message_descriptor_get_field(f->desc, num) : NULL;
            if (fd && fd->type == PROTOBUF_C_TYPE_MESSAGE) {
                if (depth + 1 > max_depth)
                    return ot_err_set(err, OT_ERR_PARSE,
                                      "messages nested deeper than %d levels at byte %zu "
                                      "(refused before parsing)",
                                      max_depth, field_at);
                depth++;
                stack[depth].desc = fd->descriptor;
                stack[depth].end = pos + (size_t)v;
            } else {
                pos += (size_t)v;
            }
            break;
        }
        default:
            return ot_err_set(err, OT_ERR_PARSE,
                              "not a valid ONNX model: unsupported wire type %u at byte %zu", wt,
                              field_at);
        }
        continue;
    truncated:
        return ot_err_set(err, OT_ERR_PARSE,
                          "not a valid ONNX model: truncated (field %u at byte %zu runs past its "
                          "end)",
                          num, field_at);
    }
}

/* ------------------------------------------------------------ tensor decode */

/* The external data files this process has read (device and inode): the
   exporter leaves them alone (ot_pb_external_was_read). Past N_READ_FILES
   every file counts as read, so nothing is removed. */
enum { N_READ_FILES = 256 };
static struct {
    dev_t dev, model_dev;
    ino_t ino, model_ino;
    bool has_model;
} read_files[N_READ_FILES];
static int n_read_files;
static struct {
    bool has;
    dev_t dev;
    ino_t ino;
} reading_model;
static bool read_files_full;
static pthread_mutex_t read_files_lock = PTHREAD_MUTEX_INITIALIZER;

static void note_external_read(const struct stat *sb)
{
    pthread_mutex_lock(&read_files_lock);
    bool seen = false;
    for (int i = 0; i < n_read_files && !seen; i++)
        seen = read_files[i].dev == sb->st_dev && read_files[i].ino == sb->st_ino &&
               read_files[i].has_model == reading_model.has &&
               read_files[i].model_dev == reading_model.dev &&
               read_files[i].model_ino == reading_model.ino;
    if (!seen) {
        if (n_read_files < N_READ_FILES) {
            read_files[n_read_files].dev = sb->st_dev;
            read_files[n_read_files].ino = sb->st_ino;
            read_files[n_read_files].has_model = reading_model.has;
            read_files[n_read_files].model_dev = reading_model.dev;
            read_files[n_read_files].model_ino = reading_model.ino;
            n_read_files++;
        } else {
            read_files_full = true;
        }
    }
    pthread_mutex_unlock(&read_files_lock);
}

void ot_pb_set_reading_model(bool has, dev_t dev, ino_t ino)
{
    pthread_mutex_lock(&read_files_lock);
    reading_model.has = has;
    reading_model.dev = has ? dev : 0;
    reading_model.ino = has ? ino : 0;
    pthread_mutex_unlock(&read_files_lock);
}

bool ot_pb_external_was_read(dev_t dev, ino_t ino, bool has_model, dev_t model_dev,
                             ino_t model_ino)
{
    pthread_mutex_lock(&read_files_lock);
    bool seen = read_files_full;
    for (int i = 0; i < n_read_files && !seen; i++)
        seen = read_files[i].dev == dev && read_files[i].ino == ino &&
               !(has_model && read_files[i].has_model && read_files[i].model_dev == model_dev &&
                 read_files[i].model_ino == model_ino);
    pthread_mutex_unlock(&read_files_lock);
    return seen;
}

static ot_status read_external(Onnx__TensorProto *tp, const ot_tensor_src *src, const char *what,
                               size_t want, void **out, ot_err *err)
{
    ot_status st = OT_OK;
    const char *location = NULL;
    uint64_t offset = 0, length = 0;
    bool has_length = false;
    int fd = -1;
    char *real_dir = NULL, *real_file = NULL, *joined = NULL;
    void *buf = NULL;

    for (size_t i = 0; i < tp->n_external_data; i++) {
        const Onnx__StringStringEntryProto *e = tp->external_data[i];
        if (!e->key || !e->value)
            continue;
        char *endp = NULL;
        if (strcmp(e->key, "location") == 0) {
            location = e->value;
        } else if (strcmp(e->key, "offset") == 0 || strcmp(e->key, "length") == 0) {
            errno = 0;
            unsigned long long n = strtoull(e->value, &endp, 10);
            if (errno || !*e->value || *endp || e->value[0] == '-')
                OT_FAIL(err, OT_ERR_MODEL, "%s: external data %s '%s' is not a number", what,
                        e->key, e->value);
            if (e->key[0] == 'o') {
                offset = n;
            } else {
                length = n;
                has_length = true;
            }
        }
    }
    if (!location || !*location)
        OT_FAIL(err, OT_ERR_MODEL, "%s: external data without a location", what);
    if (!src->dir)
        OT_FAIL(err, OT_ERR_UNSUPPORTED,
                "%s: external data '%s' cannot be resolved (model read from memory)", what,
                location);
    if (location[0] == '/')
        OT_FAIL(err, OT_ERR_MODEL,
                "%s: external data location '%s' is an absolute path; it must be relative to "
                "the model's folder",
                what, location);
    if (has_length && length != want)
        OT_FAIL(err, OT_ERR_MODEL, "%s: external data length %llu, expected %zu bytes", what,
                (unsigned long long)length, want);
    size_t jn = strlen(src->dir) + strlen(location) + 2;
    joined = ot_malloc(jn);
    if (!joined)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    snprintf(joined, jn, "%s/%s", src->dir, location);
    real_dir = realpath(src->dir, NULL);
    real_file = realpath(joined, NULL);
    if (!real_dir)
        OT_FAIL(err, OT_ERR_IO, "%s: cannot resolve the model folder: %s", what, strerror(errno));
    if (!real_file)
        OT_FAIL(err, OT_ERR_IO, "%s: external data file '%s' not found (%s)", what, location,
                strerror(errno));
    size_t dl = strlen(real_dir);
    bool inside = strncmp(real_file, real_dir, dl) == 0 &&
                  (real_file[dl] == '/' || (dl == 1 && real_dir[0] == '/'));
    if (!inside)
        OT_FAIL(err, OT_ERR_MODEL,
                "%s: external data location '%s' resolves outside the model's folder", what,
                location);
    struct stat sb;
    if (ot_file_open_read(real_file, &fd, &sb, err) != OT_OK) {
        /* the helper's message names the resolved path; name the location */
        char why[OT_ERR_MSG_MAX];
        size_t rl = strlen(real_file);
        const char *w = strncmp(err->msg, real_file, rl) == 0 && err->msg[rl] == ':'
                            ? err->msg + rl + 2
                            : err->msg;
        snprintf(why, sizeof why, "%s", w);
        OT_FAIL(err, OT_ERR_IO, "%s: external data '%s' %s", what, location, why);
    }
    note_external_read(&sb);
    if (offset > (uint64_t)sb.st_size || want > (uint64_t)sb.st_size - offset)
        OT_FAIL(err, OT_ERR_MODEL,
                "%s: external data '%s' holds %lld bytes, but offset %llu + %zu bytes runs past "
                "its end",
                what, location, (long long)sb.st_size, (unsigned long long)offset, want);
    if (src->skip_external || want == 0)
        goto done;
    buf = ot_malloc(want);
    if (!buf)
        OT_FAIL(err, OT_ERR_NOMEM, "%s: out of memory for %zu bytes", what, want);
    for (size_t got = 0; got < want;) {
        ssize_t r = pread(fd, (char *)buf + got, want - got, (off_t)(offset + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            OT_FAIL(err, OT_ERR_IO, "%s: reading external data '%s': %s", what, location,
                    r < 0 ? strerror(errno) : "unexpected end of file");
        got += (size_t)r;
    }
    *out = buf;
    buf = NULL;
done:
    if (fd >= 0)
        close(fd);
    free(real_dir);
    free(real_file);
    ot_free(joined);
    ot_free(buf);
    return st;
}

/* Number of typed-field elements that hold one tensor element, and which field. */
typedef enum { F_NONE, F_FLOAT, F_INT32, F_INT64, F_DOUBLE, F_UINT64 } typed_field;

static typed_field field_of(int dtype, size_t *per_elem)
{
    *per_elem = 1;
    switch (dtype) {
    case OT_DTYPE_FLOAT: return F_FLOAT;
    case OT_DTYPE_COMPLEX64: *per_elem = 2; return F_FLOAT;
    case OT_DTYPE_DOUBLE: return F_DOUBLE;
    case OT_DTYPE_COMPLEX128: *per_elem = 2; return F_DOUBLE;
    case OT_DTYPE_INT64: return F_INT64;
    case OT_DTYPE_UINT32: case OT_DTYPE_UINT64: return F_UINT64;
    case OT_DTYPE_INT32: case OT_DTYPE_INT16: case OT_DTYPE_INT8: case OT_DTYPE_UINT16:
    case OT_DTYPE_UINT8: case OT_DTYPE_BOOL: case OT_DTYPE_FLOAT16: case OT_DTYPE_BFLOAT16:
        return F_INT32;
    default: return F_NONE;
    }
}

ot_status ot_pb_decode_tensor(Onnx__TensorProto *tp, const ot_tensor_src *src, bool steal,
                              const char *what, ot_tensor *t, ot_storage *storage,
                              bool *is_external, ot_err *err)
{
    ot_status st = OT_OK;
    void *data = NULL;
    memset(t, 0, sizeof *t);
    *is_external = false;
    *storage = OT_STORE_NONE;

    int dtype = tp->has_data_type ? tp->data_type : 0;
    size_t esize = ot_dtype_size(dtype);
    if (dtype == OT_DTYPE_STRING)
        OT_FAIL(err, OT_ERR_UNSUPPORTED, "%s: string tensors are not supported here", what);
    if (!esize)
        OT_FAIL(err, OT_ERR_UNSUPPORTED, "%s: data type %d is not supported", what, dtype);
    if (tp->n_dims > OT_MAX_DIMS)
        OT_FAIL(err, OT_ERR_UNSUPPORTED, "%s: rank %zu exceeds the maximum of %d", what, tp->n_dims,
                OT_MAX_DIMS);
    size_t numel = 1;
    for (size_t i = 0; i < tp->n_dims; i++) {
        if (tp->dims[i] < 0)
            OT_FAIL(err, OT_ERR_MODEL, "%s: negative dimension %lld at axis %zu", what,
                    (long long)tp->dims[i], i);
        if ((uint64_t)tp->dims[i] > SIZE_MAX || !ot_size_mul(numel, (size_t)tp->dims[i], &numel))
            OT_FAIL(err, OT_ERR_MODEL, "%s: the product of its dimensions overflows", what);
    }
    size_t bytes;
    if (!ot_size_mul(numel, esize, &bytes))
        OT_FAIL(err, OT_ERR_MODEL, "%s: its size in bytes overflows", what);
    if (bytes > src->max_bytes)
        OT_FAIL(err, OT_ERR_MODEL,
                "%s: %zu bytes exceeds the tensor size limit of %llu bytes (--max-tensor-size)",
                what, bytes, (unsigned long long)src->max_bytes);
    t->dtype = (ot_dtype)dtype;
    t->ndim = (int)tp->n_dims;
    for (size_t i = 0; i < tp->n_dims; i++)
        t->dims[i] = tp->dims[i];
    t->bytes = bytes;

    size_t per;
    typed_field tf = field_of(dtype, &per);
    size_t n_typed = tf == F_FLOAT    ? tp->n_float_data
                     : tf == F_INT32  ? tp->n_int32_data
                     : tf == F_INT64  ? tp->n_int64_data
                     : tf == F_DOUBLE ? tp->n_double_data
                     : tf == F_UINT64 ? tp->n_uint64_data
                                      : 0;

    if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        *is_external = true;
        *storage = OT_STORE_RAW;
        OT_TRY(read_external(tp, src, what, bytes, &data, err));
    } else if (tp->has_raw_data) {
        *storage = OT_STORE_RAW;
        if (tp->raw_data.len != bytes)
            OT_FAIL(err, OT_ERR_MODEL, "%s: raw_data holds %zu bytes, expected %zu (%zu x %s)",
                    what, tp->raw_data.len, bytes, numel, ot_dtype_name(dtype));
        if (bytes && steal) {
            data = tp->raw_data.data;
            tp->raw_data.data = NULL;
            tp->raw_data.len = 0;
            tp->has_raw_data = 0;
        } else if (bytes) {
            data = ot_malloc(bytes);
            if (!data)
                OT_FAIL(err, OT_ERR_NOMEM, "%s: out of memory for %zu bytes", what, bytes);
            memcpy(data, tp->raw_data.data, bytes);
        }
    } else if (n_typed || numel == 0) {
        *storage = n_typed ? OT_STORE_TYPED : OT_STORE_NONE;
        size_t want;
        if (!ot_size_mul(numel, per, &want) || n_typed != want)
            OT_FAIL(err, OT_ERR_MODEL, "%s: holds %zu values, expected %zu (dims say %zu elements)",
                    what, n_typed, want, numel);
        if (bytes) {
            data = ot_malloc(bytes);
            if (!data)
                OT_FAIL(err, OT_ERR_NOMEM, "%s: out of memory for %zu bytes", what, bytes);
        }
        unsigned char *d = data;
        for (size_t i = 0; i < n_typed && d; i++) {
            switch (tf) {
            case F_FLOAT: memcpy(d + i * 4, &tp->float_data[i], 4); break;
            case F_DOUBLE: memcpy(d + i * 8, &tp->double_data[i], 8); break;
            case F_INT64: memcpy(d + i * 8, &tp->int64_data[i], 8); break;
            case F_UINT64:
                if (esize == 8) {
                    memcpy(d + i * 8, &tp->uint64_data[i], 8);
                } else {
                    uint32_t u = (uint32_t)tp->uint64_data[i];
                    memcpy(d + i * 4, &u, 4);
                }
                break;
            case F_INT32: {
                int32_t v = tp->int32_data[i];
                if (esize == 4) {
                    memcpy(d + i * 4, &v, 4);
                } else if (esize == 2) {
                    uint16_t h = (uint16_t)v;
                    memcpy(d + i * 2, &h, 2);
                } else {
                    d[i] = (unsigned char)v;
                }
                break;
            }
            case F_NONE: break;
            }
        }
    } else {
        OT_FAIL(err, OT_ERR_MODEL, "%s: has %zu elements but no data", what, numel);
    }
    t->data = data;
    data = NULL;
done:
    ot_free(data);
    return st;
}
