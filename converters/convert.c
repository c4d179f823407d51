/*
 * convert.c: the converters in their fixed order (ot_convert) and the graph
 * edits they share (edit.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "converters/edit.h"
#include "ops/ops.h"

/* ----------------------------------------------------------------- order */

static bool want_opset(const ot_convert_opts *o) { return o->opset != 0; }
static bool want_clean(const ot_convert_opts *o) { return o->clean_inputs; }
static bool want_fold(const ot_convert_opts *o) { return o->fold_bn; }
static bool want_simplify(const ot_convert_opts *o) { return o->simplify; }
static bool want_fp16(const ot_convert_opts *o) { return o->fp16; }
static bool want_int8(const ot_convert_opts *o) { return o->int8; }

/* The fixed order: the opset first (the later converters write nodes of the
   target opset), then the clean-ups, then the number formats, whose
   converters see the folded, simplified graph. */
const ot_converter ot_converters[] = {
    { "opset", want_opset, ot_convert_opset },
    { "clean-inputs", want_clean, ot_convert_clean_inputs },
    { "fold-bn", want_fold, ot_convert_fold_bn },
    { "simplify", want_simplify, ot_convert_simplify },
    { "fp16", want_fp16, ot_convert_fp16 },
    { "int8", want_int8, ot_convert_int8 },
};
const int ot_n_converters = (int)(sizeof ot_converters / sizeof ot_converters[0]);

bool ot_convert_wanted(const ot_convert_opts *opts)
{
    for (int i = 0; opts && i < ot_n_converters; i++)
        if (ot_converters[i].wanted(opts))
            return true;
    return false;
}

ot_status ot_convert(ot_graph *g, const ot_convert_opts *opts, ot_err *err)
{
    for (int i = 0; opts && i < ot_n_converters; i++) {
        if (!ot_converters[i].wanted(opts))
            continue;
        ot_status st = ot_converters[i].run(g, opts, err);
        if (st != OT_OK)
            return st;
    }
    return OT_OK;
}

/* ------------------------------------------------------------------ edits */

ot_status cv_node_err(ot_err *err, ot_status code, const ot_graph *g, const ot_node *n,
                      const char *fmt, ...)
{
    char label[256], msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ot_err_set(err, code, "%s: %s", ot_node_label(g, n, label, sizeof label), msg);
}

/* A name not used yet: base, else base_2, base_3 ... */
static const char *unique_name(ot_graph *g, const char *base, char *buf, size_t size)
{
    snprintf(buf, size, "%s", base);
    for (int i = 2; ot_graph_find_value(g, buf) >= 0; i++)
        snprintf(buf, size, "%s_%d", base, i);
    return buf;
}

ot_status cv_new_value(ot_graph *g, const char *base, int32_t *id, ot_err *err)
{
    char name[512];
    return ot_graph_intern_value(g, unique_name(g, base, name, sizeof name), id, err);
}

/* Grows an id list kept in the arena by one entry. */
static bool append_io(ot_graph *g, ot_io **list, int32_t *n, int32_t value)
{
    ot_io *nl = ot_arena_alloc(&g->arena, sizeof *nl * (size_t)(*n + 1));
    if (!nl)
        return false;
    if (*n)
        memcpy(nl, *list, sizeof *nl * (size_t)*n);
    nl[*n].value = value;
    nl[*n].info = (ot_blob){ 0 };
    *list = nl;
    (*n)++;
    return true;
}

ot_status cv_add_init(ot_graph *g, const char *base, ot_dtype dtype, int ndim,
                      const int64_t *dims, void *data, size_t bytes, int32_t *id, ot_err *err)
{
    char name[512];
    ot_status st = ot_graph_intern_value(g, unique_name(g, base, name, sizeof name), id, err);
    if (st != OT_OK) {
        ot_free(data);
        return st;
    }
    int32_t *inits = ot_arena_alloc(&g->arena, sizeof *inits * (size_t)(g->n_inits + 1));
    if (!inits) {
        ot_free(data);
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory adding '%s'", name);
    }
    ot_value *v = &g->values[*id];
    v->dtype = dtype;
    v->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        v->dims[i] = v->data.dims[i] = dims[i];
    v->producer = -1;
    v->flags = OT_VAL_INIT | OT_VAL_CONST | OT_VAL_DIRTY;
    if (dtype == OT_DTYPE_FLOAT || dtype == OT_DTYPE_FLOAT16 || dtype == OT_DTYPE_DOUBLE ||
        dtype == OT_DTYPE_BFLOAT16)
        v->flags |= OT_VAL_PARAM;
    v->storage = OT_STORE_RAW;
    v->data.dtype = dtype;
    v->data.ndim = ndim;
    v->data.data = data;
    v->data.bytes = bytes;
    if (g->n_inits)
        memcpy(inits, g->inits, sizeof *inits * (size_t)g->n_inits);
    inits[g->n_inits] = *id;
    g->inits = inits;
    g->n_inits++;
    if (g->ir_version < 4) { /* IR < 4: every initializer is also a graph input */
        if (!append_io(g, &g->inputs, &g->n_inputs, *id))
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory adding '%s'", name);
        v->flags |= OT_VAL_INPUT;
    }
    return OT_OK;
}

ot_status cv_make_init(ot_graph *g, int32_t vid, ot_err *err)
{
    ot_value *v = &g->values[vid];
    void *copy = NULL;
    if (v->data.bytes) {
        copy = ot_malloc(v->data.bytes);
        if (!copy)
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
        memcpy(copy, v->data.data, v->data.bytes);
    }
    int32_t *inits = ot_arena_alloc(&g->arena, sizeof *inits * (size_t)(g->n_inits + 1));
    if (!inits) {
        ot_free(copy);
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    }
    v->data.data = copy;
    v->flags |= OT_VAL_INIT | OT_VAL_CONST | OT_VAL_DIRTY;
    if (v->dtype == OT_DTYPE_FLOAT || v->dtype == OT_DTYPE_FLOAT16 ||
        v->dtype == OT_DTYPE_DOUBLE || v->dtype == OT_DTYPE_BFLOAT16)
        v->flags |= OT_VAL_PARAM;
    v->storage = OT_STORE_RAW;
    v->tensor_shell = (ot_blob){ 0 };
    if (g->n_inits)
        memcpy(inits, g->inits, sizeof *inits * (size_t)g->n_inits);
    inits[g->n_inits++] = vid;
    g->inits = inits;
    if (g->ir_version < 4 && !(v->flags & OT_VAL_INPUT)) {
        if (!append_io(g, &g->inputs, &g->n_inputs, vid))
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
        g->values[vid].flags |= OT_VAL_INPUT;
    }
    return OT_OK;
}

ot_status cv_make_init_from(ot_graph *g, int32_t vid, ot_dtype dtype, int ndim,
                            const int64_t *dims, void *data, size_t bytes, ot_err *err)
{
    ot_value *v = &g->values[vid];
    v->dtype = v->data.dtype = dtype;
    v->ndim = v->data.ndim = ndim;
    for (int i = 0; i < ndim; i++)
        v->dims[i] = v->data.dims[i] = dims[i];
    v->data.data = data;
    v->data.bytes = bytes;
    ot_status st = cv_make_init(g, vid, err); /* copies the bytes */
    if (st != OT_OK)
        v->data = (ot_tensor){ 0 };
    ot_free(data);
    return st;
}

ot_status cv_add_i64(ot_graph *g, const char *base, const int64_t *v, int n, int32_t *id,
                     ot_err *err)
{
    int64_t *d = ot_malloc(sizeof *d * (size_t)(n > 0 ? n : 1));
    if (!d)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    if (n)
        memcpy(d, v, sizeof *d * (size_t)n);
    int64_t dims[1] = { n };
    return cv_add_init(g, base, OT_DTYPE_INT64, 1, dims, n ? d : (ot_free(d), NULL),
                       sizeof *d * (size_t)n, id, err);
}

ot_status cv_add_scalar(ot_graph *g, const char *base, ot_dtype dtype, double v, int32_t *id,
                        ot_err *err)
{
    size_t size = ot_dtype_size(dtype);
    void *d = ot_malloc(size ? size : 1);
    if (!d)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    switch (dtype) {
    case OT_DTYPE_DOUBLE: { double x = v; memcpy(d, &x, 8); break; }
    case OT_DTYPE_FLOAT16: { uint16_t h = ot_f32_to_f16((float)v); memcpy(d, &h, 2); break; }
    case OT_DTYPE_FLOAT: { float x = (float)v; memcpy(d, &x, 4); break; }
    default:
        ot_free(d);
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "no scalar constant of type %s",
                          ot_dtype_name(dtype));
    }
    return cv_add_init(g, base, dtype, 0, NULL, d, size, id, err);
}

static int32_t *copy_ids(ot_graph *g, const int32_t *ids, int n)
{
    int32_t *a = ot_arena_alloc(&g->arena, sizeof *a * (size_t)(n > 0 ? n : 1));
    if (a && n)
        memcpy(a, ids, sizeof *a * (size_t)n);
    return a;
}

ot_status cv_add_node(ot_graph *g, const char *op_type, const char *name, const int32_t *in,
                      int n_in, const int32_t *out, int n_out, int32_t *id, ot_err *err)
{
    ot_status st = ot_graph_add_node(g, id, err);
    if (st != OT_OK)
        return st;
    ot_node *n = &g->nodes[*id];
    n->opset = (int)ot_graph_opset(g, "");
    n->op_type = ot_arena_strdup(&g->arena, op_type);
    n->name = ot_arena_strdup(&g->arena, name ? name : "");
    n->domain = "";
    n->op = ot_op_find("", op_type, n->opset);
    n->in = copy_ids(g, in, n_in);
    n->out = copy_ids(g, out, n_out);
    n->n_in = n_in;
    n->n_out = n_out;
    n->flags = OT_NODE_DIRTY | (n->op ? 0 : OT_NODE_OPAQUE);
    if (!n->op_type || !n->name || !n->in || !n->out)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory adding a %s node", op_type);
    return OT_OK;
}

/* The node's attribute `name`, appended when absent, with its imported
   bytes dropped. NULL when out of memory. */
static ot_attr *attr_slot(ot_graph *g, int32_t node, const char *name)
{
    ot_node *n = &g->nodes[node];
    n->flags |= OT_NODE_DIRTY;
    for (int i = 0; i < n->n_attrs; i++) {
        if (strcmp(n->attrs[i].name, name) == 0) {
            ot_attr *a = &n->attrs[i];
            const char *nm = a->name;
            memset(a, 0, sizeof *a);
            a->name = nm;
            return a;
        }
    }
    ot_attr *na = ot_arena_alloc(&g->arena, sizeof *na * (size_t)(n->n_attrs + 1));
    const char *nm = ot_arena_strdup(&g->arena, name);
    if (!na || !nm)
        return NULL;
    if (n->n_attrs)
        memcpy(na, n->attrs, sizeof *na * (size_t)n->n_attrs);
    memset(&na[n->n_attrs], 0, sizeof *na);
    na[n->n_attrs].name = nm;
    n->attrs = na;
    return &na[n->n_attrs++];
}

ot_status cv_set_attr_int(ot_graph *g, int32_t node, const char *name, int64_t v, ot_err *err)
{
    ot_attr *a = attr_slot(g, node, name);
    if (!a)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    a->type = OT_ATTR_INT;
    a->i = v;
    return OT_OK;
}

ot_status cv_set_attr_float(ot_graph *g, int32_t node, const char *name, float v, ot_err *err)
{
    ot_attr *a = attr_slot(g, node, name);
    if (!a)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    a->type = OT_ATTR_FLOAT;
    a->f = v;
    return OT_OK;
}

ot_status cv_set_attr_ints(ot_graph *g, int32_t node, const char *name, const int64_t *v,
                           size_t n, ot_err *err)
{
    int64_t *c = ot_arena_alloc(&g->arena, sizeof *c * (n ? n : 1));
    ot_attr *a = c ? attr_slot(g, node, name) : NULL;
    if (!a)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    if (n)
        memcpy(c, v, sizeof *c * n);
    a->type = OT_ATTR_INTS;
    a->ints = c;
    a->n = n;
    return OT_OK;
}

ot_status cv_set_attr_floats(ot_graph *g, int32_t node, const char *name, const float *v,
                             size_t n, ot_err *err)
{
    float *c = ot_arena_alloc(&g->arena, sizeof *c * (n ? n : 1));
    ot_attr *a = c ? attr_slot(g, node, name) : NULL;
    if (!a)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    if (n)
        memcpy(c, v, sizeof *c * n);
    a->type = OT_ATTR_FLOATS;
    a->floats = c;
    a->n = n;
    return OT_OK;
}

ot_status cv_set_attr_string(ot_graph *g, int32_t node, const char *name, const char *v,
                             ot_err *err)
{
    const char *c = ot_arena_strdup(&g->arena, v);
    ot_attr *a = c ? attr_slot(g, node, name) : NULL;
    if (!a)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    a->type = OT_ATTR_STRING;
    a->s = c;
    a->s_len = strlen(c);
    return OT_OK;
}

void cv_del_attr(ot_graph *g, int32_t node, const char *name)
{
    ot_node *n = &g->nodes[node];
    for (int i = 0; i < n->n_attrs; i++) {
        if (strcmp(n->attrs[i].name, name) == 0) {
            /* the array may be shared with a clone's source: write a new one */
            ot_attr *na = ot_arena_alloc(&g->arena, sizeof *na * (size_t)n->n_attrs);
            if (!na)
                return; /* keeps the attribute; the caller's check reports it */
            int k = 0;
            for (int j = 0; j < n->n_attrs; j++)
                if (j != i)
                    na[k++] = n->attrs[j];
            n->attrs = na;
            n->n_attrs = k;
            n->flags |= OT_NODE_DIRTY;
            return;
        }
    }
}

ot_status cv_set_inputs(ot_graph *g, int32_t node, const int32_t *in, int n, ot_err *err)
{
    int32_t *a = copy_ids(g, in, n);
    if (!a)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    g->nodes[node].in = a;
    g->nodes[node].n_in = n;
    g->nodes[node].flags |= OT_NODE_DIRTY;
    return OT_OK;
}

ot_status cv_set_outputs(ot_graph *g, int32_t node, const int32_t *out, int n, ot_err *err)
{
    int32_t *a = copy_ids(g, out, n);
    if (!a)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    g->nodes[node].out = a;
    g->nodes[node].n_out = n;
    g->nodes[node].flags |= OT_NODE_DIRTY;
    return OT_OK;
}

void cv_replace_uses(ot_graph *g, int32_t from, int32_t to)
{
    for (int32_t i = 0; i < g->n_nodes; i++) {
        ot_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++) {
            if (n->in[k] == from) {
                n->in[k] = to;
                n->flags |= OT_NODE_DIRTY;
            }
        }
    }
}

int *cv_count_uses(const ot_graph *g)
{
    int *uses = ot_calloc((size_t)g->n_values + 1, sizeof *uses);
    if (!uses)
        return NULL;
    for (int32_t i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] >= 0)
                uses[g->nodes[i].in[k]]++;
    for (int32_t i = 0; i < g->n_outputs; i++)
        uses[g->outputs[i].value]++;
    return uses;
}

bool cv_is_output(const ot_graph *g, int32_t v)
{
    for (int32_t i = 0; i < g->n_outputs; i++)
        if (g->outputs[i].value == v)
            return true;
    return false;
}

ot_status cv_keep_nodes(ot_graph *g, const bool *keep, ot_err *err)
{
    return ot_graph_keep_nodes(g, keep, err);
}

int cv_drop_unused_inits(ot_graph *g)
{
    int *uses = cv_count_uses(g);
    if (!uses)
        return 0;
    int32_t k = 0, dropped = 0;
    for (int32_t i = 0; i < g->n_inits; i++) {
        int32_t v = g->inits[i];
        if (uses[v] > 0) {
            g->inits[k++] = v;
            continue;
        }
        g->values[v].flags &= ~(uint32_t)OT_VAL_INPUT;
        dropped++;
    }
    g->n_inits = k;
    if (dropped) { /* and their listing as graph inputs */
        int32_t m = 0;
        for (int32_t i = 0; i < g->n_inputs; i++) {
            const ot_value *v = &g->values[g->inputs[i].value];
            if (!(v->flags & OT_VAL_INIT) || uses[g->inputs[i].value] > 0)
                g->inputs[m++] = g->inputs[i];
        }
        g->n_inputs = m;
    }
    ot_free(uses);
    return dropped;
}

ot_status cv_refresh(ot_graph *g, ot_err *err)
{
    for (int32_t v = 0; v < g->n_values; v++)
        g->values[v].producer = -1;
    ot_status st = ot_graph_sort(g, err);
    /* value_info of values that no longer exist (a folded node's output) */
    int32_t k = 0;
    for (int32_t i = 0; st == OT_OK && i < g->n_value_info; i++) {
        const ot_value *v = &g->values[g->value_info[i].value];
        if (v->producer >= 0 || (v->flags & (OT_VAL_INPUT | OT_VAL_INIT)))
            g->value_info[k++] = g->value_info[i];
    }
    if (st == OT_OK)
        g->n_value_info = k;
    if (st == OT_OK)
        st = ot_graph_infer_shapes(g, err);
    return st;
}

const float *cv_const_f32(const ot_graph *g, int32_t vid)
{
    if (vid < 0 || g->values[vid].dtype != OT_DTYPE_FLOAT)
        return NULL;
    const ot_value *v = &g->values[vid];
    if (!(v->flags & OT_VAL_CONST) || (v->flags & OT_VAL_STATE) || !v->data.data ||
        v->data.dtype != OT_DTYPE_FLOAT)
        return NULL;
    return v->data.data;
}
