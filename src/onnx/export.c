/*
 * export.c: graph IR -> ONNX file.
 *
 * Every object starts from the shell the importer kept (or from an empty
 * message when a pass made it), and the fields the IR holds are filled in.
 * Strings and flags equal to the shell's are left as the shell has them, so
 * an unchanged model keeps field presence exactly. All temporary protobuf-c
 * structs live in one arena; initializer bytes are referenced, not copied, and
 * the model is packed straight into the output file through a ProtobufCBuffer.
 *
 * Files are written to "<out>.tmp.XXXXXX" beside the target, synced and
 * renamed. External data goes to a new "<out basename>.<8 hex>.data" beside
 * the model on every write; the model's rename switches model and data
 * together, and the data of earlier versions is removed after it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "core/file.h"
#include "onnx.h"
#include "pb.h"

typedef struct exporter {
    const ot_graph *g;
    ot_arena ar; /* every temporary struct of this export */
    ProtobufCAllocator alloc;
    ot_export_opts opts;
    /* external data side file */
    FILE *data_file;         /* data_af.f while open                    */
    ot_atomic_file data_af;
    char *data_path;         /* "<out>.data" (owned)                    */
    const char *data_name;   /* the location written into the model     */
    uint64_t data_off;
    ot_err *err;
} exporter;

static bool str_eq(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

/* Points *field at s unless it already says the same. */
static void set_str(char **field, const char *s)
{
    if (!str_eq(*field, s))
        *field = (char *)(uintptr_t)s; /* protobuf-c fields are not const */
}

#define NEW(ex, type) ((type *)ot_arena_alloc(&(ex)->ar, sizeof(type)))
#define NEW_N(ex, type, n) ((type *)ot_arena_alloc(&(ex)->ar, sizeof(type) * ((n) ? (n) : 1)))

static void *unpack_or_new(exporter *ex, const ProtobufCMessageDescriptor *d, ot_blob b)
{
    if (b.data)
        return ot_pb_unpack(d, b, &ex->ar);
    ProtobufCMessage *m = ot_arena_alloc(&ex->ar, d->sizeof_message);
    if (m)
        d->message_init(m);
    return m;
}

/* ------------------------------------------------------------ external data */

/* The external data of a model goes to a new file on every write,
   "<out>.<8 hex digits>.data", never over the file the previous version of
   the model reads: the model's rename then switches both at once, and the
   previous version's data is removed only after it (remove_old_data). */
static ot_status open_data_file(exporter *ex, const char *out_path)
{
    ot_status st = OT_OK;
    if (ot_file_is_special(out_path))
        return ot_err_set(ex->err, OT_ERR_IO,
                          "%s: external data is written beside the model, which needs a regular "
                          "file as output (not a device or FIFO)",
                          out_path);
    char *copy = ot_strdup(out_path);
    if (!copy)
        return ot_err_set(ex->err, OT_ERR_NOMEM, "out of memory");
    const char *base = basename(copy);
    size_t n = strlen(out_path) + 16;
    ex->data_path = ot_malloc(n);
    char *name = ot_arena_alloc(&ex->ar, strlen(base) + 16);
    if (!ex->data_path || !name)
        OT_FAIL(ex->err, OT_ERR_NOMEM, "out of memory");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint32_t tag = (uint32_t)ts.tv_nsec ^ ((uint32_t)ts.tv_sec << 12) ^ ((uint32_t)getpid() << 20);
    for (int tries = 0;; tries++, tag = tag * 2654435761u + 1) {
        snprintf(ex->data_path, n, "%s.%08x.data", out_path, (unsigned)tag);
        struct stat sb;
        if (lstat(ex->data_path, &sb) != 0 && errno == ENOENT)
            break;
        if (tries >= 100)
            OT_FAIL(ex->err, OT_ERR_IO, "%s: cannot find a free name for the external data",
                    out_path);
    }
    snprintf(name, strlen(base) + 16, "%s.%08x.data", base, (unsigned)tag);
    ex->data_name = name;
    OT_TRY(ot_atomic_open(&ex->data_af, ex->data_path, ex->err));
    ex->data_file = ex->data_af.f;
done:
    ot_free(copy);
    return st;
}

/* True when `rest` (a file name after "<model base>.") names external data
   of a version of that model: "data" or "<8 hex digits>.data". */
static bool is_data_name(const char *rest)
{
    if (strcmp(rest, "data") == 0)
        return true;
    for (int i = 0; i < 8; i++)
        if (!((rest[i] >= '0' && rest[i] <= '9') || (rest[i] >= 'a' && rest[i] <= 'f')))
            return false;
    return strcmp(rest + 8, ".data") == 0;
}

/* True when `rest` starts with "<8 hex digits>.data" (a temporary file of
   such data then follows with ".tmp.<pid>.<n>"). */
static bool is_data_name_prefix(const char *rest)
{
    char head[14];
    memcpy(head, rest, 13);
    head[13] = '\0';
    return is_data_name(head);
}

/* After the model at out_path was renamed into place: removes the external
   data files of its earlier versions (and of writes that were killed before
   their model's rename), keeping `keep` (the new data's name, or NULL), and
   the stale temporary files of such data. A file that another model imported
   by this process read its data from (not `replaced`, the model the rename
   replaced) is kept even when its name matches. */
static void remove_old_data(const char *out_path, const char *keep, const struct stat *replaced)
{
    char *dcopy = ot_strdup(out_path), *bcopy = ot_strdup(out_path);
    DIR *d = NULL;
    if (!dcopy || !bcopy)
        goto done;
    const char *base = basename(bcopy);
    size_t bl = strlen(base);
    d = opendir(dirname(dcopy));
    if (!d)
        goto done;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *nm = e->d_name;
        if (strncmp(nm, base, bl) != 0 || nm[bl] != '.' || (keep && strcmp(nm, keep) == 0))
            continue;
        const char *rest = nm + bl + 1;
        bool old = is_data_name(rest);
        if (!old && strlen(rest) > 13 && is_data_name_prefix(rest))
            old = ot_atomic_temp_is_stale(rest + 13);
        struct stat sb;
        /* a file a model read its data from this run stays: that model
           (the input of a convert, say) still refers to it */
        if (old && fstatat(dirfd(d), nm, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode) &&
            !ot_pb_external_was_read(sb.st_dev, sb.st_ino, replaced != NULL,
                                     replaced ? replaced->st_dev : 0,
                                     replaced ? replaced->st_ino : 0))
            unlinkat(dirfd(d), nm, 0);
    }
done:
    if (d)
        closedir(d);
    ot_free(dcopy);
    ot_free(bcopy);
}

static ot_status write_external(exporter *ex, Onnx__TensorProto *tp, const ot_tensor *t,
                                const char *out_path)
{
    ot_status st = OT_OK;
    if (!ex->data_file)
        OT_TRY(open_data_file(ex, out_path));
    /* align each tensor to 64 bytes so that it can be mapped directly */
    static const char zeros[64];
    uint64_t pad = (64 - ex->data_off % 64) % 64;
    if (pad && fwrite(zeros, 1, pad, ex->data_file) != pad)
        OT_FAIL(ex->err, OT_ERR_IO, "%s.data: write error: %s", out_path, strerror(errno));
    ex->data_off += pad;
    if (t->bytes && fwrite(t->data, 1, t->bytes, ex->data_file) != t->bytes)
        OT_FAIL(ex->err, OT_ERR_IO, "%s.data: write error: %s", out_path, strerror(errno));
    Onnx__StringStringEntryProto **e = NEW_N(ex, Onnx__StringStringEntryProto *, 3);
    char *num = ot_arena_alloc(&ex->ar, 48);
    if (!e || !num)
        OT_FAIL(ex->err, OT_ERR_NOMEM, "out of memory");
    const char *keys[3] = { "location", "offset", "length" };
    snprintf(num, 24, "%llu", (unsigned long long)ex->data_off);
    snprintf(num + 24, 24, "%zu", t->bytes);
    const char *vals[3] = { ex->data_name, num, num + 24 };
    for (int i = 0; i < 3; i++) {
        e[i] = NEW(ex, Onnx__StringStringEntryProto);
        if (!e[i])
            OT_FAIL(ex->err, OT_ERR_NOMEM, "out of memory");
        onnx__string_string_entry_proto__init(e[i]);
        e[i]->key = (char *)(uintptr_t)keys[i];
        e[i]->value = (char *)(uintptr_t)vals[i];
    }
    tp->n_external_data = 3;
    tp->external_data = e;
    tp->has_data_location = 1;
    tp->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    ex->data_off += t->bytes;
done:
    return st;
}

/* --------------------------------------------------------------- tensors */

/* Fills the typed field that holds this dtype (the inverse of decoding). */
static ot_status fill_typed(exporter *ex, Onnx__TensorProto *tp, const ot_tensor *t)
{
    size_t esize = ot_dtype_size(t->dtype);
    size_t numel = esize ? t->bytes / esize : 0;
    const unsigned char *d = t->data;
    switch (t->dtype) {
    case OT_DTYPE_FLOAT:
    case OT_DTYPE_COMPLEX64:
        tp->n_float_data = t->bytes / 4;
        tp->float_data = (float *)(uintptr_t)t->data;
        return OT_OK;
    case OT_DTYPE_DOUBLE:
    case OT_DTYPE_COMPLEX128:
        tp->n_double_data = t->bytes / 8;
        tp->double_data = (double *)(uintptr_t)t->data;
        return OT_OK;
    case OT_DTYPE_INT64:
        tp->n_int64_data = numel;
        tp->int64_data = (int64_t *)(uintptr_t)t->data;
        return OT_OK;
    case OT_DTYPE_UINT64:
        tp->n_uint64_data = numel;
        tp->uint64_data = (uint64_t *)(uintptr_t)t->data;
        return OT_OK;
    case OT_DTYPE_UINT32: {
        uint64_t *u = NEW_N(ex, uint64_t, numel);
        if (!u)
            return ot_err_set(ex->err, OT_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < numel; i++) {
            uint32_t v;
            memcpy(&v, d + i * 4, 4);
            u[i] = v;
        }
        tp->n_uint64_data = numel;
        tp->uint64_data = u;
        return OT_OK;
    }
    default: {
        int32_t *v = NEW_N(ex, int32_t, numel);
        if (!v)
            return ot_err_set(ex->err, OT_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < numel; i++) {
            switch (t->dtype) {
            case OT_DTYPE_INT32: memcpy(&v[i], d + i * 4, 4); break;
            case OT_DTYPE_INT16: { int16_t x; memcpy(&x, d + i * 2, 2); v[i] = x; break; }
            case OT_DTYPE_UINT16:
            case OT_DTYPE_FLOAT16:
            case OT_DTYPE_BFLOAT16: { uint16_t x; memcpy(&x, d + i * 2, 2); v[i] = x; break; }
            case OT_DTYPE_INT8: v[i] = (int8_t)d[i]; break;
            default: v[i] = d[i]; break; /* uint8, bool */
            }
        }
        tp->n_int32_data = numel;
        tp->int32_data = v;
        return OT_OK;
    }
    }
}

static ot_status build_initializer(exporter *ex, const ot_value *v, const char *out_path,
                                   Onnx__TensorProto **out)
{
    ot_status st = OT_OK;
    Onnx__TensorProto *tp =
        unpack_or_new(ex, &onnx__tensor_proto__descriptor, v->tensor_shell);
    if (!tp)
        return ot_err_set(ex->err, OT_ERR_NOMEM, "out of memory");
    *out = tp;
    if (v->flags & OT_VAL_OPAQUE)
        return OT_OK; /* the shell is the whole tensor */
    set_str(&tp->name, v->name);
    const ot_tensor *t = &v->data;
    bool same_dims = tp->n_dims == (size_t)t->ndim;
    for (int i = 0; same_dims && i < t->ndim; i++)
        same_dims = tp->dims[i] == t->dims[i];
    if (!same_dims) {
        tp->n_dims = (size_t)t->ndim;
        tp->dims = (int64_t *)(uintptr_t)t->dims;
    }
    if (!tp->has_data_type || tp->data_type != (int32_t)t->dtype) {
        tp->has_data_type = 1;
        tp->data_type = (int32_t)t->dtype;
    }
    if (!t->data && t->bytes)
        return ot_err_set(ex->err, OT_ERR_ARG,
                          "initializer '%s': its external data was not loaded", v->name);
    bool external;
    switch (ex->opts.placement) {
    case OT_DATA_INLINE: external = false; break;
    case OT_DATA_EXTERNAL: external = t->bytes >= ex->opts.external_threshold; break;
    default: external = (v->flags & OT_VAL_EXTERNAL) != 0; break;
    }
    if (external) {
        OT_TRY(write_external(ex, tp, t, out_path));
    } else if (v->storage == OT_STORE_TYPED && !(v->flags & OT_VAL_EXTERNAL)) {
        OT_TRY(fill_typed(ex, tp, t));
    } else if (v->storage != OT_STORE_NONE || t->bytes) {
        tp->has_raw_data = 1;
        tp->raw_data.len = t->bytes;
        tp->raw_data.data = t->data;
    }
done:
    return st;
}

/* --------------------------------------------------------- value infos */

static Onnx__TensorShapeProto__Dimension *new_dim(exporter *ex, const ot_value *v, int i)
{
    Onnx__TensorShapeProto__Dimension *d = NEW(ex, Onnx__TensorShapeProto__Dimension);
    if (!d)
        return NULL;
    onnx__tensor_shape_proto__dimension__init(d);
    if (v->dims[i] >= 0) {
        d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        d->dim_value = v->dims[i];
    } else if (v->dim_names[i]) {
        d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
        d->dim_param = (char *)(uintptr_t)v->dim_names[i];
    }
    return d;
}

static ot_status build_value_info(exporter *ex, const ot_io *io, Onnx__ValueInfoProto **out)
{
    const ot_value *v = &ex->g->values[io->value];
    Onnx__ValueInfoProto *vi = unpack_or_new(ex, &onnx__value_info_proto__descriptor, io->info);
    if (!vi)
        return ot_err_set(ex->err, OT_ERR_NOMEM, "out of memory");
    *out = vi;
    set_str(&vi->name, v->name);
    if (io->info.data && !(v->flags & OT_VAL_SHAPE_DIRTY))
        return OT_OK;
    /* made by a pass, or its shape changed: write type and shape from the IR,
       keeping the doc_string and denotations of the original */
    if (!vi->type) {
        vi->type = NEW(ex, Onnx__TypeProto);
        if (!vi->type)
            return ot_err_set(ex->err, OT_ERR_NOMEM, "out of memory");
        onnx__type_proto__init(vi->type);
    }
    Onnx__TypeProto *tp = vi->type;
    if (tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type) {
        tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
        tp->tensor_type = NEW(ex, Onnx__TypeProto__Tensor);
        if (!tp->tensor_type)
            return ot_err_set(ex->err, OT_ERR_NOMEM, "out of memory");
        onnx__type_proto__tensor__init(tp->tensor_type);
    }
    Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    if (v->dtype != OT_DTYPE_UNDEFINED) {
        tt->has_elem_type = 1;
        tt->elem_type = (int32_t)v->dtype;
    }
    if (v->ndim < 0) {
        tt->shape = NULL;
        return OT_OK;
    }
    Onnx__TensorShapeProto *sh = tt->shape;
    if (!sh) {
        sh = tt->shape = NEW(ex, Onnx__TensorShapeProto);
        if (!sh)
            return ot_err_set(ex->err, OT_ERR_NOMEM, "out of memory");
        onnx__tensor_shape_proto__init(sh);
    }
    Onnx__TensorShapeProto__Dimension **dims = NEW_N(ex, Onnx__TensorShapeProto__Dimension *,
                                                     (size_t)v->ndim);
    if (!dims)
        return ot_err_set(ex->err, OT_ERR_NOMEM, "out of memory");
    for (int i = 0; i < v->ndim; i++) {
        dims[i] = new_dim(ex, v, i);
        if (!dims[i])
            return ot_err_set(ex->err, OT_ERR_NOMEM, "out of memory");
        if ((size_t)i < sh->n_dim && sh->dim[i]->denotation)
            dims[i]->denotation = sh->dim[i]->denotation;
    }
    sh->n_dim = (size_t)v->ndim;
    sh->dim = dims;
    return OT_OK;
}

static ot_status build_io(exporter *ex, const ot_io *ios, int32_t n, size_t *n_out,
                          Onnx__ValueInfoProto ***out)
{
    Onnx__ValueInfoProto **arr = NEW_N(ex, Onnx__ValueInfoProto *, (size_t)n);
    if (!arr)
        return ot_err_set(ex->err, OT_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < n; i++) {
        ot_status st = build_value_info(ex, &ios[i], &arr[i]);
        if (st != OT_OK)
            return st;
    }
    *n_out = (size_t)n;
    *out = arr;
    return OT_OK;
}

/* ------------------------------------------------------------------ nodes */

static ot_status build_attr(exporter *ex, const ot_attr *a, Onnx__AttributeProto **out)
{
    if (a->raw.data) {
        *out = ot_pb_unpack(&onnx__attribute_proto__descriptor, a->raw, &ex->ar);
        return *out ? OT_OK : ot_err_set(ex->err, OT_ERR_NOMEM, "out of memory");
    }
    Onnx__AttributeProto *ap = NEW(ex, Onnx__AttributeProto);
    if (!ap)
        return ot_err_set(ex->err, OT_ERR_NOMEM, "out of memory");
    onnx__attribute_proto__init(ap);
    ap->name = (char *)(uintptr_t)a->name;
    ap->has_type = 1;
    ap->type = (Onnx__AttributeProto__AttributeType)a->type;
    switch (a->type) {
    case OT_ATTR_FLOAT: ap->has_f = 1; ap->f = a->f; break;
    case OT_ATTR_INT: ap->has_i = 1; ap->i = a->i; break;
    case OT_ATTR_STRING:
        ap->has_s = 1;
        ap->s.data = (uint8_t *)(uintptr_t)a->s;
        ap->s.len = a->s_len;
        break;
    case OT_ATTR_INTS: ap->n_ints = a->n; ap->ints = a->ints; break;
    case OT_ATTR_FLOATS: ap->n_floats = a->n; ap->floats = a->floats; break;
    case OT_ATTR_STRINGS: {
        ap->strings = NEW_N(ex, ProtobufCBinaryData, a->n);
        if (!ap->strings)
            return ot_err_set(ex->err, OT_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < a->n; i++) {
            ap->strings[i].data = (uint8_t *)(uintptr_t)a->strings[i];
            ap->strings[i].len = strlen(a->strings[i]);
        }
        ap->n_strings = a->n;
        break;
    }
    case OT_ATTR_TENSOR: {
        if (!a->t)
            return ot_err_set(ex->err, OT_ERR_INTERNAL, "attribute '%s' has no tensor", a->name);
        Onnx__TensorProto *tp = NEW(ex, Onnx__TensorProto);
        if (!tp)
            return ot_err_set(ex->err, OT_ERR_NOMEM, "out of memory");
        onnx__tensor_proto__init(tp);
        tp->n_dims = (size_t)a->t->ndim;
        tp->dims = (int64_t *)(uintptr_t)a->t->dims;
        tp->has_data_type = 1;
        tp->data_type = (int32_t)a->t->dtype;
        tp->has_raw_data = 1;
        tp->raw_data.len = a->t->bytes;
        tp->raw_data.data = a->t->data;
        ap->t = tp;
        break;
    }
    default:
        return ot_err_set(ex->err, OT_ERR_INTERNAL, "attribute '%s' of kind %s cannot be rebuilt",
                          a->name, ot_attr_type_name(a->type));
    }
    *out = ap;
    return OT_OK;
}

static ot_status build_node(exporter *ex, const ot_node *n, Onnx__NodeProto **out)
{
    const ot_graph *g = ex->g;
    Onnx__NodeProto *np = unpack_or_new(ex, &onnx__node_proto__descriptor, n->shell);
    if (!np)
        return ot_err_set(ex->err, OT_ERR_NOMEM, "out of memory");
    *out = np;
    if (!n->shell.data || !str_eq(np->name, n->name))
        np->name = (char *)(uintptr_t)n->name;
    set_str(&np->op_type, n->op_type);
    set_str(&np->domain, n->domain);
    np->input = NEW_N(ex, char *, (size_t)n->n_in);
    np->output = NEW_N(ex, char *, (size_t)n->n_out);
    np->attribute = NEW_N(ex, Onnx__AttributeProto *, (size_t)n->n_attrs);
    if (!np->input || !np->output || !np->attribute)
        return ot_err_set(ex->err, OT_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n->n_in; i++)
        np->input[i] = (char *)(uintptr_t)(n->in[i] >= 0 ? g->values[n->in[i]].name : "");
    for (int i = 0; i < n->n_out; i++)
        np->output[i] = (char *)(uintptr_t)(n->out[i] >= 0 ? g->values[n->out[i]].name : "");
    np->n_input = (size_t)n->n_in;
    np->n_output = (size_t)n->n_out;
    for (int i = 0; i < n->n_attrs; i++) {
        ot_status st = build_attr(ex, &n->attrs[i], &np->attribute[i]);
        if (st != OT_OK)
            return st;
    }
    np->n_attribute = (size_t)n->n_attrs;
    return OT_OK;
}

/* ------------------------------------------------------------------ model */

static bool opsets_same(const Onnx__ModelProto *mp, const ot_graph *g)
{
    if (mp->n_opset_import != (size_t)g->n_opsets)
        return false;
    for (int32_t i = 0; i < g->n_opsets; i++) {
        const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
        if (!str_eq(o->domain, g->opsets[i].domain) || o->version != g->opsets[i].version)
            return false;
    }
    return true;
}

static bool metadata_same(const Onnx__ModelProto *mp, const ot_graph *g)
{
    if (mp->n_metadata_props != (size_t)g->n_metadata)
        return false;
    for (int32_t i = 0; i < g->n_metadata; i++)
        if (!str_eq(mp->metadata_props[i]->key, g->metadata[i].key) ||
            !str_eq(mp->metadata_props[i]->value, g->metadata[i].value))
            return false;
    return true;
}

static ot_status build_model(exporter *ex, const char *out_path, Onnx__ModelProto **out)
{
    ot_status st = OT_OK;
    const ot_graph *g = ex->g;
    Onnx__ModelProto *mp = unpack_or_new(ex, &onnx__model_proto__descriptor, g->model_shell);
    Onnx__GraphProto *gp = unpack_or_new(ex, &onnx__graph_proto__descriptor, g->graph_shell);
    if (!mp || !gp)
        return ot_err_set(ex->err, OT_ERR_NOMEM, "out of memory");
    *out = mp;
    mp->graph = gp;
    if (!mp->has_ir_version || mp->ir_version != g->ir_version) {
        mp->has_ir_version = 1;
        mp->ir_version = g->ir_version;
    }
    if (!opsets_same(mp, g)) {
        mp->opset_import = NEW_N(ex, Onnx__OperatorSetIdProto *, (size_t)g->n_opsets);
        if (!mp->opset_import)
            return ot_err_set(ex->err, OT_ERR_NOMEM, "out of memory");
        for (int32_t i = 0; i < g->n_opsets; i++) {
            Onnx__OperatorSetIdProto *o = NEW(ex, Onnx__OperatorSetIdProto);
            if (!o)
                return ot_err_set(ex->err, OT_ERR_NOMEM, "out of memory");
            onnx__operator_set_id_proto__init(o);
            o->domain = (char *)(uintptr_t)g->opsets[i].domain;
            o->has_version = 1;
            o->version = g->opsets[i].version;
            mp->opset_import[i] = o;
        }
        mp->n_opset_import = (size_t)g->n_opsets;
    }
    set_str(&mp->producer_name, g->producer_name);
    set_str(&mp->producer_version, g->producer_version);
    set_str(&mp->doc_string, g->doc_string);
    if (!metadata_same(mp, g)) {
        mp->metadata_props = NEW_N(ex, Onnx__StringStringEntryProto *, (size_t)g->n_metadata);
        if (!mp->metadata_props)
            return ot_err_set(ex->err, OT_ERR_NOMEM, "out of memory");
        for (int32_t i = 0; i < g->n_metadata; i++) {
            Onnx__StringStringEntryProto *e = NEW(ex, Onnx__StringStringEntryProto);
            if (!e)
                return ot_err_set(ex->err, OT_ERR_NOMEM, "out of memory");
            onnx__string_string_entry_proto__init(e);
            e->key = (char *)(uintptr_t)g->metadata[i].key;
            e->value = (char *)(uintptr_t)g->metadata[i].value;
            mp->metadata_props[i] = e;
        }
        mp->n_metadata_props = (size_t)g->n_metadata;
    }
    set_str(&gp->name, g->graph_name);

    gp->node = NEW_N(ex, Onnx__NodeProto *, (size_t)g->n_nodes);
    gp->initializer = NEW_N(ex, Onnx__TensorProto *, (size_t)g->n_inits);
    if (!gp->node || !gp->initializer)
        return ot_err_set(ex->err, OT_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < g->n_nodes; i++)
        OT_TRY(build_node(ex, &g->nodes[i], &gp->node[i]));
    gp->n_node = (size_t)g->n_nodes;
    for (int32_t i = 0; i < g->n_inits; i++)
        OT_TRY(build_initializer(ex, &g->values[g->inits[i]], out_path, &gp->initializer[i]));
    gp->n_initializer = (size_t)g->n_inits;
    OT_TRY(build_io(ex, g->inputs, g->n_inputs, &gp->n_input, &gp->input));
    OT_TRY(build_io(ex, g->outputs, g->n_outputs, &gp->n_output, &gp->output));
    OT_TRY(build_io(ex, g->value_info, g->n_value_info, &gp->n_value_info, &gp->value_info));
done:
    return st;
}

/* A ProtobufCBuffer that appends to a FILE, remembering the first error and
   the CRC-32 of what it wrote. */
typedef struct file_buffer {
    ProtobufCBuffer base;
    FILE *f;
    int error;
    uLong crc;
} file_buffer;

static void file_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
    file_buffer *fb = (file_buffer *)b;
    if (!fb->error && len && fwrite(data, 1, len, fb->f) != len)
        fb->error = errno ? errno : EIO;
    /* zlib takes uInt lengths: feed large blocks in pieces */
    for (size_t at = 0; at < len;) {
        uInt n = len - at > (1u << 30) ? (1u << 30) : (uInt)(len - at);
        fb->crc = crc32(fb->crc, data + at, n);
        at += n;
    }
}

uint32_t ot_onnx_crc32(uint32_t crc, const void *data, size_t len)
{
    uLong c = crc;
    const Bytef *p = data;
    for (size_t at = 0; at < len;) {
        uInt n = len - at > (1u << 30) ? (1u << 30) : (uInt)(len - at);
        c = crc32(c, p + at, n);
        at += n;
    }
    return (uint32_t)c;
}

size_t ot_onnx_crc_trailer(const char *key, uint32_t crc, uint8_t *out, size_t cap)
{
    /* ModelProto.metadata_props is field 14 (tag 0x72); StringStringEntryProto
       has key = 1 (tag 0x0a) and value = 2 (tag 0x12). One-byte lengths keep the
       trailer's size a function of the key alone. */
    size_t klen = strlen(key), entry = 2 + klen + 2 + 8;
    if (entry > 127 || 2 + entry > cap)
        return 0;
    uint8_t *p = out;
    *p++ = 0x72;
    *p++ = (uint8_t)entry;
    *p++ = 0x0a;
    *p++ = (uint8_t)klen;
    memcpy(p, key, klen);
    p += klen;
    *p++ = 0x12;
    *p++ = 8;
    static const char hex[] = "0123456789abcdef";
    for (int i = 7; i >= 0; i--)
        *p++ = (uint8_t)hex[(crc >> (4 * i)) & 15];
    return (size_t)(p - out);
}

static ot_status export_file(const ot_graph *g, const char *path, const ot_export_opts *opts,
                             const char *crc_key, ot_err *err)
{
    ot_status st = OT_OK;
    exporter ex = { .g = g, .err = err };
    ot_atomic_file af;
    bool model_open = false, data_renamed = false;
    ot_arena_init(&ex.ar, 64 * 1024);
    if (opts)
        ex.opts = *opts;
    if (!ex.opts.external_threshold)
        ex.opts.external_threshold = 1024;

    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        OT_FAIL(err, OT_ERR_IO, "%s: is a folder", path);
    Onnx__ModelProto *mp = NULL;
    OT_TRY(build_model(&ex, path, &mp));

    OT_TRY(ot_atomic_open(&af, path, err));
    model_open = true;
    file_buffer fb = { .base = { .append = file_append }, .f = af.f, .crc = crc32(0L, Z_NULL, 0) };
    errno = 0;
    protobuf_c_message_pack_to_buffer(&mp->base, &fb.base);
    if (crc_key) { /* one more metadata entry: the CRC-32 of every byte before it */
        uint8_t trailer[160];
        size_t n = ot_onnx_crc_trailer(crc_key, (uint32_t)fb.crc, trailer, sizeof trailer);
        if (!n)
            OT_FAIL(err, OT_ERR_INTERNAL, "checksum key '%s' is too long", crc_key);
        file_append(&fb.base, n, trailer);
    }
    if (fb.error)
        OT_FAIL(err, OT_ERR_IO, "%s: write error: %s", path, strerror(fb.error));
    /* Both files are complete on disk before either is renamed. The data
       takes a name nothing else uses, so until the model's rename the old
       model still reads its old data; the model's rename is the one step
       that switches the pair. */
    if (ex.data_file) {
        ex.data_file = NULL;
        OT_TRY(ot_atomic_finish(&ex.data_af, 0, err));
    }
    OT_TRY(ot_atomic_finish(&af, 0, err));
    if (ex.data_path) {
        OT_TRY(ot_atomic_rename(&ex.data_af, err));
        data_renamed = true;
    }
    /* the model the rename replaces: the data it read may go */
    struct stat replaced_sb;
    bool replaced = stat(path, &replaced_sb) == 0;
    model_open = false;
    OT_TRY(ot_atomic_rename(&af, err));
    if (!ot_file_is_special(path)) {
        const char *keep = NULL;
        if (ex.data_path) {
            keep = strrchr(ex.data_path, '/');
            keep = keep ? keep + 1 : ex.data_path;
        }
        remove_old_data(path, keep, replaced ? &replaced_sb : NULL);
    }
done:
    if (model_open)
        ot_atomic_abort(&af);
    ot_atomic_abort(&ex.data_af);
    if (st != OT_OK && data_renamed)
        unlink(ex.data_path); /* the new data no model refers to */
    ot_free(ex.data_path);
    ot_arena_fini(&ex.ar);
    return st;
}

ot_status ot_onnx_export_file(const ot_graph *g, const char *path, const ot_export_opts *opts,
                              ot_err *err)
{
    return export_file(g, path, opts, NULL, err);
}

ot_status ot_onnx_export_file_crc(const ot_graph *g, const char *path,
                                  const ot_export_opts *opts, const char *crc_key, ot_err *err)
{
    return export_file(g, path, opts, crc_key, err);
}

ot_status ot_model_export(const ot_graph *g, const char *path, const ot_export_opts *opts,
                          ot_err *err)
{
    return ot_onnx_export_file(g, path, opts, err);
}
