/*
 * import.c: ONNX file -> graph IR.
 *
 * Order of work: read the file; pre-scan the wire format for depth and
 * truncation; unpack with protobuf-c; convert model fields, initializers,
 * inputs, outputs, value_info and nodes into the IR, keeping every field the
 * IR does not model as a packed shell; check op types and attributes against
 * the op table; sort topologically; infer shapes. protobuf-c structs are freed
 * before returning (initializer raw_data buffers are taken over, not copied).
 *
 * Not done here: opset conversion, and execution-time checks (an opaque node
 * is fine to import; the commands that execute refuse it).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ops/ops.h"
#include "core/file.h"
#include "pb.h"

/* protobuf limits a message to 2 GiB; anything bigger is not a model file. */
#define MAX_FILE_BYTES ((size_t)2 << 30)

typedef struct importer {
    ot_graph *g;
    ot_tensor_src src;
    ot_err *err;
} importer;

static const char *str_or_empty(const char *s) { return s ? s : ""; }

/* Checks a declared shape's byte size against the limit; dims of unknown size
   count as 1. */
static ot_status check_declared_size(importer *im, const ot_value *v, const char *what)
{
    size_t esize = ot_dtype_size(v->dtype);
    if (v->ndim < 0 || !esize)
        return OT_OK;
    size_t bytes = esize;
    for (int i = 0; i < v->ndim; i++) {
        if (v->dims[i] < 0)
            continue;
        if ((uint64_t)v->dims[i] > SIZE_MAX || !ot_size_mul(bytes, (size_t)v->dims[i], &bytes))
            return ot_err_set(im->err, OT_ERR_MODEL,
                              "%s '%s': the product of its declared dimensions overflows", what,
                              v->name);
    }
    if (bytes > im->src.max_bytes) {
        char shape[256];
        ot_value_shape_str(v, shape, sizeof shape);
        return ot_err_set(im->err, OT_ERR_MODEL,
                          "%s '%s': declared shape %s is %zu bytes, which exceeds the tensor size "
                          "limit of %llu bytes (--max-tensor-size)",
                          what, v->name, shape, bytes, (unsigned long long)im->src.max_bytes);
    }
    return OT_OK;
}

/* A graph input, output or value_info that names an initializer declares what
   the initializer already says: its elem_type and its static dims must match
   (IR 3 lists every initializer as a graph input). Dims without a value and
   elem_type 0 match anything. */
static ot_status check_init_declaration(importer *im, const ot_value *v,
                                        const Onnx__TypeProto__Tensor *tt, const char *what)
{
    if (v->flags & OT_VAL_OPAQUE)
        return OT_OK; /* kept whole; the IR knows too little to compare */
    if (tt->has_elem_type && tt->elem_type != 0 && tt->elem_type != (int32_t)v->dtype)
        return ot_err_set(im->err, OT_ERR_MODEL,
                          "%s '%s' is declared %s, but its initializer is %s", what, v->name,
                          ot_dtype_name((ot_dtype)(tt->elem_type < OT_DTYPE_COUNT_
                                                       ? tt->elem_type : 0)),
                          ot_dtype_name(v->dtype));
    const Onnx__TensorShapeProto *sh = tt->shape;
    if (!sh)
        return OT_OK;
    bool same = sh->n_dim == (size_t)v->ndim;
    for (size_t i = 0; i < sh->n_dim && same; i++)
        if (sh->dim[i]->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
            same = sh->dim[i]->dim_value == v->dims[i];
    if (same)
        return OT_OK;
    char decl[256], init[256];
    size_t len = (size_t)snprintf(decl, sizeof decl, "[");
    for (size_t i = 0; i < sh->n_dim && len < sizeof decl; i++) {
        const Onnx__TensorShapeProto__Dimension *d = sh->dim[i];
        if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
            len += (size_t)snprintf(decl + len, sizeof decl - len, "%s%lld", i ? "," : "",
                                    (long long)d->dim_value);
        else
            len += (size_t)snprintf(decl + len, sizeof decl - len, "%s?", i ? "," : "");
    }
    if (len < sizeof decl)
        snprintf(decl + len, sizeof decl - len, "]");
    ot_value_shape_str(v, init, sizeof init);
    return ot_err_set(im->err, OT_ERR_MODEL,
                      "%s '%s' is declared with shape %s, but its initializer has shape %s", what,
                      v->name, decl, init);
}

/* Reads dtype and shape of a ValueInfoProto into a value whose type is not
   yet known. Non-tensor types (sequence, map, optional) stay unknown. */
static ot_status read_value_type(importer *im, const Onnx__ValueInfoProto *vi, int32_t id,
                                 const char *what)
{
    ot_graph *g = im->g;
    ot_value *v = &g->values[id];
    const Onnx__TypeProto *tp = vi->type;
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
        return OT_OK;
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    if (tt->has_elem_type && (tt->elem_type < 0 || tt->elem_type > OT_ONNX_MAX_ELEM_TYPE))
        return ot_err_set(im->err, OT_ERR_MODEL,
                          "%s '%s': elem_type %d is not an ONNX data type (0 to %d)", what,
                          v->name, (int)tt->elem_type, OT_ONNX_MAX_ELEM_TYPE);
    if (v->flags & OT_VAL_INIT)
        return check_init_declaration(im, v, tt, what);
    if (v->ndim >= 0 || v->dtype != OT_DTYPE_UNDEFINED)
        return OT_OK; /* an earlier declaration wins */
    if (tt->has_elem_type && tt->elem_type < OT_DTYPE_COUNT_)
        v->dtype = (ot_dtype)tt->elem_type;
    v->flags |= OT_VAL_SHAPE_DECLARED;
    if (!tt->shape)
        return OT_OK;
    const Onnx__TensorShapeProto *sh = tt->shape;
    /* check the size limit over all dims, even beyond OT_MAX_DIMS */
    size_t bytes = ot_dtype_size(v->dtype) ? ot_dtype_size(v->dtype) : 1;
    size_t nonzero = 1; /* a zero dim must not hide an overflow of the others */
    for (size_t i = 0; i < sh->n_dim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = sh->dim[i];
        if (d->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
            continue;
        if (d->dim_value < 0)
            return ot_err_set(im->err, OT_ERR_MODEL, "%s '%s': negative dimension %lld at axis %zu",
                              what, v->name, (long long)d->dim_value, i);
        if ((uint64_t)d->dim_value > SIZE_MAX || !ot_size_mul(bytes, (size_t)d->dim_value, &bytes) ||
            (d->dim_value && !ot_size_mul(nonzero, (size_t)d->dim_value, &nonzero)) ||
            nonzero > INT64_MAX)
            return ot_err_set(im->err, OT_ERR_MODEL,
                              "%s '%s': the product of its declared dimensions overflows", what,
                              v->name);
    }
    if (sh->n_dim > OT_MAX_DIMS) {
        if (bytes > im->src.max_bytes)
            return ot_err_set(im->err, OT_ERR_MODEL,
                              "%s '%s': declared shape is %zu bytes, which exceeds the tensor "
                              "size limit of %llu bytes (--max-tensor-size)",
                              what, v->name, bytes, (unsigned long long)im->src.max_bytes);
        return OT_OK; /* rank beyond what the IR models: kept in the blob only */
    }
    v->ndim = (int)sh->n_dim;
    for (size_t i = 0; i < sh->n_dim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = sh->dim[i];
        if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            v->dims[i] = d->dim_value;
        } else {
            v->dims[i] = OT_DIM_DYNAMIC;
            if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
                d->dim_param && d->dim_param[0]) {
                v->dim_names[i] = ot_arena_strdup(&g->arena, d->dim_param);
                if (!v->dim_names[i])
                    return ot_err_set(im->err, OT_ERR_NOMEM, "out of memory");
            }
        }
    }
    return check_declared_size(im, v, what);
}

static ot_status add_io(importer *im, Onnx__ValueInfoProto **vis, size_t n, ot_io **out,
                        int32_t *n_out, uint32_t flag, const char *what)
{
    ot_status st = OT_OK;
    ot_graph *g = im->g;
    if (n > INT32_MAX / 2)
        return ot_err_set(im->err, OT_ERR_MODEL, "too many %ss", what);
    *out = ot_arena_alloc(&g->arena, sizeof **out * (n ? n : 1));
    if (!*out)
        return ot_err_set(im->err, OT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const Onnx__ValueInfoProto *vi = vis[i];
        const char *name = str_or_empty(vi->name);
        int32_t id;
        OT_TRY(ot_graph_intern_value(g, name, &id, im->err));
        ot_value *v = &g->values[id];
        if (flag && (v->flags & flag))
            return ot_err_set(im->err, OT_ERR_MODEL, "%s '%s' is listed twice", what, name);
        v->flags |= flag;
        if (!flag && !(v->flags & (OT_VAL_INPUT | OT_VAL_INIT)))
            v->flags |= OT_VAL_DECLARED;
        (*out)[i].value = id;
        if (!ot_pb_pack(&vi->base, &g->arena, &(*out)[i].info))
            return ot_err_set(im->err, OT_ERR_NOMEM, "out of memory");
        OT_TRY(read_value_type(im, vi, id, what));
    }
    *n_out = (int32_t)n;
done:
    return st;
}

static ot_status add_initializers(importer *im, Onnx__GraphProto *gp)
{
    ot_status st = OT_OK;
    ot_graph *g = im->g;
    char what[300];
    g->inits = ot_arena_alloc(&g->arena, sizeof *g->inits * (gp->n_initializer + 1));
    if (!g->inits)
        return ot_err_set(im->err, OT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < gp->n_initializer; i++) {
        Onnx__TensorProto *tp = gp->initializer[i];
        const char *name = str_or_empty(tp->name);
        if (!*name)
            return ot_err_set(im->err, OT_ERR_MODEL, "initializer #%zu has no name", i);
        snprintf(what, sizeof what, "initializer '%s'", name);
        int32_t id;
        OT_TRY(ot_graph_intern_value(g, name, &id, im->err));
        ot_value *v = &g->values[id];
        if (v->flags & OT_VAL_INIT)
            return ot_err_set(im->err, OT_ERR_MODEL, "%s is defined twice", what);
        v->flags |= OT_VAL_INIT | OT_VAL_CONST;
        g->inits[g->n_inits++] = id;

        int dtype = tp->has_data_type ? tp->data_type : 0;
        bool opaque = dtype == OT_DTYPE_STRING || tp->n_dims > OT_MAX_DIMS || !ot_dtype_size(dtype);
        if (opaque) {
            /* kept whole; still check dims for sanity and size */
            for (size_t d = 0; d < tp->n_dims; d++)
                if (tp->dims[d] < 0)
                    return ot_err_set(im->err, OT_ERR_MODEL,
                                      "%s: negative dimension %lld at axis %zu", what,
                                      (long long)tp->dims[d], d);
            v->flags |= OT_VAL_OPAQUE;
            v->dtype = (ot_dtype)(dtype >= 0 && dtype < OT_DTYPE_COUNT_ ? dtype : 0);
            if (tp->n_dims <= OT_MAX_DIMS) {
                v->ndim = (int)tp->n_dims;
                for (size_t d = 0; d < tp->n_dims; d++)
                    v->dims[d] = tp->dims[d];
            }
            if (!ot_pb_pack(&tp->base, &g->arena, &v->tensor_shell))
                return ot_err_set(im->err, OT_ERR_NOMEM, "out of memory");
            continue;
        }
        bool ext;
        v->data.data = NULL; /* set only on success, so that free sees NULL otherwise */
        ot_tensor t;
        OT_TRY(ot_pb_decode_tensor(tp, &im->src, true, what, &t, &v->storage, &ext, im->err));
        v->data = t;
        v->dtype = t.dtype;
        v->ndim = t.ndim;
        memcpy(v->dims, t.dims, sizeof v->dims);
        if (ext)
            v->flags |= OT_VAL_EXTERNAL;
        if (dtype == OT_DTYPE_FLOAT || dtype == OT_DTYPE_FLOAT16 || dtype == OT_DTYPE_BFLOAT16 ||
            dtype == OT_DTYPE_DOUBLE)
            v->flags |= OT_VAL_PARAM;
        /* the shell: everything but the data fields */
        Onnx__TensorProto shell = *tp;
        shell.has_raw_data = 0;
        shell.raw_data.len = 0;
        shell.raw_data.data = NULL;
        shell.n_float_data = shell.n_int32_data = shell.n_int64_data = 0;
        shell.n_double_data = shell.n_uint64_data = shell.n_string_data = 0;
        shell.n_external_data = 0;
        shell.has_data_location = 0;
        shell.data_location = 0;
        if (!ot_pb_pack(&shell.base, &g->arena, &v->tensor_shell))
            return ot_err_set(im->err, OT_ERR_NOMEM, "out of memory");
    }
    /* sparse initializers stay in the graph shell; their names are defined */
    for (size_t i = 0; i < gp->n_sparse_initializer; i++) {
        const Onnx__SparseTensorProto *sp = gp->sparse_initializer[i];
        const char *name = sp->values ? str_or_empty(sp->values->name) : "";
        if (!*name)
            continue;
        int32_t id;
        OT_TRY(ot_graph_intern_value(g, name, &id, im->err));
        g->values[id].flags |= OT_VAL_INIT | OT_VAL_OPAQUE;
    }
done:
    return st;
}

/* Decodes an attribute into the typed view, and keeps its packed bytes. */
static ot_status read_attr(importer *im, const ot_node *n, Onnx__AttributeProto *ap, ot_attr *a)
{
    ot_graph *g = im->g;
    ot_arena *ar = &g->arena;
    char label[400];
    a->name = ot_arena_strdup(ar, str_or_empty(ap->name));
    if (!a->name)
        return ot_err_set(im->err, OT_ERR_NOMEM, "out of memory");
    if (!a->name[0])
        return ot_err_set(im->err, OT_ERR_MODEL, "%s: an attribute has no name",
                          ot_node_label(g, n, label, sizeof label));
    if (ap->has_type) {
        a->type = (ot_attr_type)ap->type;
    } else { /* IR 1 files: guess from the field present */
        a->type = ap->has_f ? OT_ATTR_FLOAT
                  : ap->has_i ? OT_ATTR_INT
                  : ap->has_s ? OT_ATTR_STRING
                  : ap->t ? OT_ATTR_TENSOR
                  : ap->g ? OT_ATTR_GRAPH
                  : ap->n_floats ? OT_ATTR_FLOATS
                  : ap->n_ints ? OT_ATTR_INTS
                  : ap->n_strings ? OT_ATTR_STRINGS
                  : ap->n_tensors ? OT_ATTR_TENSORS
                  : ap->n_graphs ? OT_ATTR_GRAPHS
                                : OT_ATTR_UNDEFINED;
    }
    if (a->type == OT_ATTR_UNDEFINED && !ap->ref_attr_name)
        return ot_err_set(im->err, OT_ERR_MODEL, "%s: attribute '%s' has no type and no value",
                          ot_node_label(g, n, label, sizeof label), a->name);
    a->i = ap->i;
    a->f = ap->f;
    if (ap->has_s || a->type == OT_ATTR_STRING) {
        a->s = ot_arena_strndup(ar, ap->s.data ? (const char *)ap->s.data : "", ap->s.len);
        a->s_len = ap->s.len;
        if (!a->s)
            return ot_err_set(im->err, OT_ERR_NOMEM, "out of memory");
    }
    switch (a->type) {
    case OT_ATTR_INTS:
        a->n = ap->n_ints;
        a->ints = ot_arena_memdup(ar, ap->ints, sizeof *ap->ints * ap->n_ints);
        if (!a->ints)
            return ot_err_set(im->err, OT_ERR_NOMEM, "out of memory");
        break;
    case OT_ATTR_FLOATS:
        a->n = ap->n_floats;
        a->floats = ot_arena_memdup(ar, ap->floats, sizeof *ap->floats * ap->n_floats);
        if (!a->floats)
            return ot_err_set(im->err, OT_ERR_NOMEM, "out of memory");
        break;
    case OT_ATTR_STRINGS:
        a->n = ap->n_strings;
        a->strings = ot_arena_alloc(ar, sizeof *a->strings * (ap->n_strings + 1));
        if (!a->strings)
            return ot_err_set(im->err, OT_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < ap->n_strings; i++) {
            a->strings[i] = ot_arena_strndup(
                ar, ap->strings[i].data ? (const char *)ap->strings[i].data : "",
                ap->strings[i].len);
            if (!a->strings[i])
                return ot_err_set(im->err, OT_ERR_NOMEM, "out of memory");
        }
        break;
    case OT_ATTR_TENSORS: a->n = ap->n_tensors; break;
    case OT_ATTR_GRAPHS: a->n = ap->n_graphs; break;
    case OT_ATTR_SPARSE_TENSORS: a->n = ap->n_sparse_tensors; break;
    case OT_ATTR_TYPE_PROTOS: a->n = ap->n_type_protos; break;
    case OT_ATTR_TENSOR:
        if (ap->t && ap->t->has_data_type && ot_dtype_is_numeric(ap->t->data_type) &&
            !(ap->t->has_data_location &&
              ap->t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)) {
            char what[600];
            snprintf(what, sizeof what, "%s: attribute '%s'",
                     ot_node_label(g, n, label, sizeof label), a->name);
            ot_tensor t;
            ot_storage storage;
            bool ext;
            ot_status st = ot_pb_decode_tensor(ap->t, &im->src, false, what, &t, &storage, &ext,
                                               im->err);
            if (st != OT_OK)
                return st;
            a->t = ot_arena_alloc(ar, sizeof *a->t);
            if (!a->t) {
                ot_free(t.data);
                return ot_err_set(im->err, OT_ERR_NOMEM, "out of memory");
            }
            *a->t = t;
            if (t.data) { /* move into the arena so the graph frees it */
                a->t->data = ot_arena_memdup(ar, t.data, t.bytes);
                ot_free(t.data);
                if (!a->t->data)
                    return ot_err_set(im->err, OT_ERR_NOMEM, "out of memory");
            }
        }
        break;
    default: break;
    }
    if (!ot_pb_pack(&ap->base, ar, &a->raw))
        return ot_err_set(im->err, OT_ERR_NOMEM, "out of memory");
    return OT_OK;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Refuses a node with two attributes of one name: sorts the names, so that the
   check is n log n. */
static ot_status check_attr_names(importer *im, const ot_node *n)
{
    char label[400];
    const char *names[OT_ONNX_MAX_NODE_ATTRS];
    OT_ASSERT(n->n_attrs <= OT_ONNX_MAX_NODE_ATTRS);
    if (n->n_attrs < 2)
        return OT_OK;
    for (int i = 0; i < n->n_attrs; i++)
        names[i] = n->attrs[i].name;
    qsort(names, (size_t)n->n_attrs, sizeof *names, by_name);
    for (int i = 1; i < n->n_attrs; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            return ot_err_set(im->err, OT_ERR_MODEL, "%s: attribute '%s' appears twice",
                              ot_node_label(im->g, n, label, sizeof label), names[i]);
    return OT_OK;
}

static ot_status add_nodes(importer *im, Onnx__GraphProto *gp)
{
    ot_status st = OT_OK;
    ot_graph *g = im->g;
    ot_arena *ar = &g->arena;
    char label[400];
    /* unknown default-domain op types, collected so that all are named at once */
    char unknown[OT_ERR_MSG_MAX] = "";
    size_t unknown_len = 0;
    int n_unknown = 0;

    for (size_t i = 0; i < gp->n_node; i++) {
        Onnx__NodeProto *np = gp->node[i];
        int32_t id;
        OT_TRY(ot_graph_add_node(g, &id, im->err));
        ot_node *n = &g->nodes[id];
        n->name = ot_arena_strdup(ar, str_or_empty(np->name));
        n->op_type = ot_arena_strdup(ar, str_or_empty(np->op_type));
        n->domain = ot_arena_strdup(ar, str_or_empty(np->domain));
        n->in = ot_arena_alloc(ar, sizeof *n->in * (np->n_input + 1));
        n->out = ot_arena_alloc(ar, sizeof *n->out * (np->n_output + 1));
        if (!n->name || !n->op_type || !n->domain || !n->in || !n->out)
            OT_FAIL(im->err, OT_ERR_NOMEM, "out of memory");
        if (np->n_input > INT32_MAX / 2 || np->n_output > INT32_MAX / 2 ||
            np->n_attribute > INT32_MAX / 2)
            OT_FAIL(im->err, OT_ERR_MODEL, "node #%zu has too many inputs or outputs", i);
        n->n_in = (int)np->n_input;
        n->n_out = (int)np->n_output;
        if (!*n->op_type)
            OT_FAIL(im->err, OT_ERR_MODEL, "%s has no op_type",
                    ot_node_label(g, n, label, sizeof label));
        n->opset = (int)ot_graph_opset(g, n->domain);
        for (size_t k = 0; k < np->n_input; k++) {
            const char *name = str_or_empty(np->input[k]);
            if (!*name) {
                n->in[k] = -1;
                continue;
            }
            int32_t vid;
            OT_TRY(ot_graph_intern_value(g, name, &vid, im->err));
            n = &g->nodes[id];
            n->in[k] = vid;
        }
        for (size_t k = 0; k < np->n_output; k++) {
            const char *name = str_or_empty(np->output[k]);
            if (!*name) {
                n->out[k] = -1;
                continue;
            }
            int32_t vid;
            OT_TRY(ot_graph_intern_value(g, name, &vid, im->err));
            n = &g->nodes[id];
            n->out[k] = vid;
            g->values[vid].flags &= ~(uint32_t)OT_VAL_DECLARED;
        }
        if (np->n_attribute > OT_ONNX_MAX_NODE_ATTRS)
            OT_FAIL(im->err, OT_ERR_MODEL, "%s has %zu attributes, at most %d are accepted",
                    ot_node_label(g, n, label, sizeof label), np->n_attribute,
                    OT_ONNX_MAX_NODE_ATTRS);
        n->attrs = ot_arena_alloc(ar, sizeof *n->attrs * (np->n_attribute + 1));
        if (!n->attrs)
            OT_FAIL(im->err, OT_ERR_NOMEM, "out of memory");
        for (size_t k = 0; k < np->n_attribute; k++) {
            OT_TRY(read_attr(im, n, np->attribute[k], &n->attrs[k]));
            n->n_attrs++;
        }
        OT_TRY(check_attr_names(im, n));
        /* the shell keeps name, op_type, domain, doc_string and unknown fields */
        Onnx__NodeProto shell = *np;
        shell.n_input = shell.n_output = shell.n_attribute = 0;
        if (!ot_pb_pack(&shell.base, ar, &n->shell))
            OT_FAIL(im->err, OT_ERR_NOMEM, "out of memory");

        bool is_default = ot_domain_is_default(n->domain);
        if (is_default)
            n->op = ot_op_find("", n->op_type, n->opset);
        if (!n->op) {
            n->flags |= OT_NODE_OPAQUE;
            if (is_default && !ot_op_is_onnx_defined(n->op_type)) {
                if (n_unknown < 16 && unknown_len < sizeof unknown - 1) {
                    int w = snprintf(unknown + unknown_len, sizeof unknown - unknown_len,
                                     "%s%s", n_unknown ? ", " : "",
                                     ot_node_label(g, n, label, sizeof label));
                    if (w > 0)
                        unknown_len += (size_t)w;
                    if (unknown_len >= sizeof unknown)
                        unknown_len = sizeof unknown - 1;
                }
                n_unknown++;
            }
        }
    }
    if (n_unknown)
        OT_FAIL(im->err, OT_ERR_UNSUPPORTED,
                "%d node%s use%s op types that ONNX does not define in the default domain: %s%s",
                n_unknown, n_unknown == 1 ? "" : "s", n_unknown == 1 ? "s" : "", unknown,
                n_unknown > 16 ? ", ..." : "");
done:
    return st;
}

static ot_status convert_model(importer *im, Onnx__ModelProto *mp)
{
    ot_status st = OT_OK;
    ot_graph *g = im->g;
    ot_arena *ar = &g->arena;
    char label[400];
    if (!mp->graph)
        return ot_err_set(im->err, OT_ERR_MODEL, "the model has no graph");
    Onnx__GraphProto *gp = mp->graph;

    g->ir_version = mp->has_ir_version ? mp->ir_version : 0;
    if (g->ir_version < 0)
        return ot_err_set(im->err, OT_ERR_MODEL,
                          "IR version %lld is not valid (supported: 3 to 10; 0 or absent for "
                          "files older than IR 3)",
                          (long long)g->ir_version);
    if (g->ir_version > 10)
        return ot_err_set(im->err, OT_ERR_UNSUPPORTED,
                          "IR version %lld is newer than supported (3 to 10)",
                          (long long)g->ir_version);
    g->opsets = ot_arena_alloc(ar, sizeof *g->opsets * (mp->n_opset_import + 1));
    if (!g->opsets)
        return ot_err_set(im->err, OT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
        g->opsets[i].domain = ot_arena_strdup(ar, str_or_empty(o->domain));
        g->opsets[i].version = o->has_version ? o->version : 0;
        if (!g->opsets[i].domain)
            return ot_err_set(im->err, OT_ERR_NOMEM, "out of memory");
        if (ot_domain_is_default(g->opsets[i].domain) && g->opsets[i].version < 1)
            return ot_err_set(im->err, OT_ERR_MODEL,
                              "opset %lld of the default domain is not valid (supported: 1 to "
                              "%d)",
                              (long long)g->opsets[i].version, OT_ONNX_MAX_OPSET);
        if (g->opsets[i].version < 0)
            return ot_err_set(im->err, OT_ERR_MODEL,
                              "opset %lld of domain '%s' is not valid (expected a version >= 1)",
                              (long long)g->opsets[i].version, g->opsets[i].domain);
        if (ot_domain_is_default(g->opsets[i].domain) &&
            g->opsets[i].version > OT_ONNX_MAX_OPSET)
            return ot_err_set(im->err, OT_ERR_UNSUPPORTED,
                              "opset %lld of the default domain is newer than supported (1 to %d)",
                              (long long)g->opsets[i].version, OT_ONNX_MAX_OPSET);
        g->n_opsets++;
    }
    if (mp->n_opset_import == 0 && g->ir_version >= 3)
        return ot_err_set(im->err, OT_ERR_MODEL, "the model imports no opset (opset_import is empty)");
    g->producer_name = ot_arena_strdup(ar, str_or_empty(mp->producer_name));
    g->producer_version = ot_arena_strdup(ar, str_or_empty(mp->producer_version));
    g->doc_string = ot_arena_strdup(ar, str_or_empty(mp->doc_string));
    g->graph_name = ot_arena_strdup(ar, str_or_empty(gp->name));
    g->metadata = ot_arena_alloc(ar, sizeof *g->metadata * (mp->n_metadata_props + 1));
    if (!g->producer_name || !g->producer_version || !g->doc_string || !g->graph_name ||
        !g->metadata)
        return ot_err_set(im->err, OT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < mp->n_metadata_props; i++) {
        g->metadata[i].key = ot_arena_strdup(ar, str_or_empty(mp->metadata_props[i]->key));
        g->metadata[i].value = ot_arena_strdup(ar, str_or_empty(mp->metadata_props[i]->value));
        if (!g->metadata[i].key || !g->metadata[i].value)
            return ot_err_set(im->err, OT_ERR_NOMEM, "out of memory");
        g->n_metadata++;
    }

    OT_TRY(add_initializers(im, gp));
    OT_TRY(add_io(im, gp->input, gp->n_input, &g->inputs, &g->n_inputs, OT_VAL_INPUT,
                  "graph input"));
    OT_TRY(add_io(im, gp->output, gp->n_output, &g->outputs, &g->n_outputs, OT_VAL_OUTPUT,
                  "graph output"));
    OT_TRY(add_io(im, gp->value_info, gp->n_value_info, &g->value_info, &g->n_value_info, 0,
                  "value_info"));
    OT_TRY(add_nodes(im, gp));

    /* shells: the model without its graph, the graph without what the IR holds */
    {
        Onnx__GraphProto gshell = *gp;
        gshell.n_node = gshell.n_initializer = gshell.n_input = gshell.n_output = 0;
        gshell.n_value_info = 0;
        if (!ot_pb_pack(&gshell.base, ar, &g->graph_shell))
            OT_FAIL(im->err, OT_ERR_NOMEM, "out of memory");
        Onnx__ModelProto mshell = *mp;
        mshell.graph = NULL;
        if (!ot_pb_pack(&mshell.base, ar, &g->model_shell))
            OT_FAIL(im->err, OT_ERR_NOMEM, "out of memory");
    }

    for (int32_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op)
            OT_TRY(ot_op_check_node(g, &g->nodes[i], im->err));
    OT_TRY(ot_graph_sort(g, im->err));
    for (int32_t i = 0; i < g->n_outputs; i++) {
        const ot_value *v = &g->values[g->outputs[i].value];
        if (v->producer < 0 && !(v->flags & (OT_VAL_INPUT | OT_VAL_INIT)))
            OT_FAIL(im->err, OT_ERR_MODEL, "graph output '%s' is not produced by any node",
                    v->name);
    }
    OT_TRY(ot_graph_infer_shapes(g, im->err));
    (void)label;
done:
    return st;
}

ot_status ot_onnx_import_buffer(const void *data, size_t len, const char *name, const char *dir,
                                const ot_import_opts *opts, ot_graph **out, ot_err *err)
{
    ot_status st = OT_OK;
    ot_graph *g = NULL;
    Onnx__ModelProto *mp = NULL;
    *out = NULL;
    if (!name)
        name = "<memory>";
    if (len == 0)
        OT_FAIL(err, OT_ERR_PARSE, "%s: empty file, not an ONNX model", name);
    OT_TRY(ot_pb_prescan(data, len, &onnx__model_proto__descriptor, OT_ONNX_MAX_DEPTH, err));
    mp = onnx__model_proto__unpack(NULL, len, data);
    if (!mp)
        OT_FAIL(err, OT_ERR_PARSE, "not a valid ONNX model (the protobuf does not parse)");
    g = ot_graph_new();
    if (!g)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    g->path = ot_arena_strdup(&g->arena, name);
    g->dir = dir ? ot_arena_strdup(&g->arena, dir) : NULL;
    if (!g->path || (dir && !g->dir))
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    importer im = {
        .g = g,
        .src = { .dir = g->dir,
                 .max_bytes = opts && opts->max_tensor_bytes ? opts->max_tensor_bytes
                                                             : OT_DEFAULT_MAX_TENSOR_BYTES,
                 .skip_external = opts && opts->skip_external_data },
        .err = err,
    };
    OT_TRY(convert_model(&im, mp));
    *out = g;
    g = NULL;
done:
    if (mp)
        onnx__model_proto__free_unpacked(mp, NULL);
    ot_graph_free(g);
    if (st != OT_OK && strncmp(err->msg, name, strlen(name)) != 0)
        ot_err_prefix(err, "%s", name);
    return st;
}

ot_status ot_onnx_import_file(const char *path, const ot_import_opts *opts, ot_graph **out,
                              ot_err *err)
{
    ot_status st = OT_OK;
    uint8_t *buf = NULL;
    char *dircopy = NULL;
    int fd = -1;
    *out = NULL;
    struct stat sb;
    OT_TRY(ot_file_open_read(path, &fd, &sb, err));
    if ((uint64_t)sb.st_size > MAX_FILE_BYTES)
        OT_FAIL(err, OT_ERR_PARSE,
                "%s: %lld bytes is larger than a protobuf can be (2 GiB); large models keep "
                "their weights in external data",
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
        if (r == 0) {
            len = got;
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    fd = -1;
    dircopy = ot_strdup(path);
    if (!dircopy)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    ot_pb_set_reading_model(true, sb.st_dev, sb.st_ino);
    st = ot_onnx_import_buffer(buf, len, path, dirname(dircopy), opts, out, err);
    ot_pb_set_reading_model(false, 0, 0);
done:
    if (fd >= 0)
        close(fd);
    ot_free(buf);
    ot_free(dircopy);
    return st;
}

ot_status ot_model_import(const char *path, const ot_import_opts *opts, ot_graph **out,
                          ot_err *err)
{
    return ot_onnx_import_file(path, opts, out, err);
}

ot_status ot_pb_prescan_model_for_test(const void *data, size_t len, ot_err *err)
{
    return ot_pb_prescan(data, len, &onnx__model_proto__descriptor, OT_ONNX_MAX_DEPTH, err);
}
