/*
 * grad_util.c: appending backward nodes (see grad_util.h): node emission with
 * unique output names and shape inference, constant initializers, and the
 * Shape / ReduceSumTo / Sum helpers gradient rules share.
 *
 * It knows no op's derivative; those are in grad_rules.c.
 */
#include <stdio.h>
#include <string.h>

#include "ops/grad_util.h"
#include "ops/op_util.h"

ot_attr ot_op_grad_attr_int(const char *name, int64_t v)
{
    ot_attr a;
    memset(&a, 0, sizeof a);
    a.name = name;
    a.type = OT_ATTR_INT;
    a.i = v;
    return a;
}

ot_attr ot_op_grad_attr_float(const char *name, float v)
{
    ot_attr a;
    memset(&a, 0, sizeof a);
    a.name = name;
    a.type = OT_ATTR_FLOAT;
    a.f = v;
    return a;
}

ot_attr ot_op_grad_attr_ints(const char *name, const int64_t *v, size_t n)
{
    ot_attr a;
    memset(&a, 0, sizeof a);
    a.name = name;
    a.type = OT_ATTR_INTS;
    a.ints = (int64_t *)(uintptr_t)v; /* copied by emit; never written through */
    a.n = n;
    return a;
}

ot_status ot_op_grad_new_value(ot_graph *g, const char *hint, int32_t *id, ot_err *err)
{
    char name[512];
    snprintf(name, sizeof name, "%s", hint);
    for (int k = 1; ot_graph_find_value(g, name) >= 0; k++) {
        if (k > 1000000)
            return ot_err_set(err, OT_ERR_INTERNAL, "no free name for '%s'", hint);
        snprintf(name, sizeof name, "%s_%d", hint, k);
    }
    return ot_graph_intern_value(g, name, id, err);
}

/* A deep copy of one attribute into the graph's arena (the imported bytes
   are dropped: the node is the pass's own). */
static bool copy_attr(ot_graph *g, const ot_attr *src, ot_attr *dst)
{
    *dst = *src;
    memset(&dst->raw, 0, sizeof dst->raw);
    dst->name = ot_arena_strdup(&g->arena, src->name);
    if (!dst->name)
        return false;
    if (src->type == OT_ATTR_STRING && src->s) {
        dst->s = ot_arena_strndup(&g->arena, src->s, src->s_len);
        if (!dst->s)
            return false;
    }
    if (src->type == OT_ATTR_INTS && src->n) {
        dst->ints = ot_arena_memdup(&g->arena, src->ints, src->n * sizeof *src->ints);
        if (!dst->ints)
            return false;
    }
    if (src->type == OT_ATTR_FLOATS && src->n) {
        dst->floats = ot_arena_memdup(&g->arena, src->floats, src->n * sizeof *src->floats);
        if (!dst->floats)
            return false;
    }
    return true;
}

ot_status ot_op_grad_emit(ot_graph *g, const ot_op_desc *op, int opset, const char *name,
                          const int32_t *in, int n_in, const ot_attr *attrs, int n_attrs,
                          const char *const *out_names, int32_t *out, int n_out, ot_err *err)
{
    ot_status st = OT_OK;
    int32_t id;
    OT_ASSERT(op && n_in >= 0 && n_out >= 1 && n_attrs >= 0);
    int32_t *ins = ot_arena_alloc(&g->arena, sizeof *ins * (size_t)(n_in + 1));
    int32_t *outs = ot_arena_alloc(&g->arena, sizeof *outs * (size_t)(n_out + 1));
    ot_attr *as = ot_arena_alloc(&g->arena, sizeof *as * (size_t)(n_attrs + 1));
    const char *nm = ot_arena_strdup(&g->arena, name ? name : "");
    if (!ins || !outs || !as || !nm)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory adding a backward node");
    for (int i = 0; i < n_in; i++)
        ins[i] = in[i];
    for (int i = 0; i < n_attrs; i++)
        if (!copy_attr(g, &attrs[i], &as[i]))
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory adding a backward node");
    for (int i = 0; i < n_out; i++) {
        outs[i] = -1;
        if (out_names[i])
            OT_TRY(ot_op_grad_new_value(g, out_names[i], &outs[i], err));
        out[i] = outs[i];
    }
    OT_TRY(ot_graph_add_node(g, &id, err));
    ot_node *n = &g->nodes[id];
    n->op = op;
    n->op_type = op->type;
    n->domain = op->domain;
    n->opset = opset ? opset : op->domain[0] ? op->opset_min : OT_OP_GRAD_ONNX_OPSET;
    n->name = nm;
    n->in = ins;
    n->n_in = n_in;
    n->out = outs;
    n->n_out = n_out;
    n->attrs = as;
    n->n_attrs = n_attrs;
    n->flags = OT_NODE_DIRTY;
    for (int i = 0; i < n_out; i++)
        if (outs[i] >= 0)
            g->values[outs[i]].producer = id;
    if (op->infer)
        OT_TRY(op->infer(g, &g->nodes[id], err));
done:
    return st;
}

/* Appends value id to the initializer list (an arena array: grown by copy). */
static ot_status add_init(ot_graph *g, int32_t id, ot_err *err)
{
    int32_t *ni = ot_arena_alloc(&g->arena, sizeof *ni * (size_t)(g->n_inits + 1));
    if (!ni)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory adding an initializer");
    if (g->n_inits)
        memcpy(ni, g->inits, sizeof *ni * (size_t)g->n_inits);
    ni[g->n_inits] = id;
    g->inits = ni;
    g->n_inits++;
    return OT_OK;
}

static ot_status add_const(ot_graph *g, const char *hint, ot_dtype dtype, const int64_t *dims,
                           int ndim, const void *data, int32_t *id, ot_err *err)
{
    ot_status st = OT_OK;
    OT_ASSERT(ndim >= 0 && ndim <= OT_MAX_DIMS);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        OT_ASSERT(dims[i] >= 0);
        if (!ot_size_mul(numel, (size_t)dims[i], &numel))
            return ot_err_set(err, OT_ERR_SHAPE, "constant '%s' is too large", hint);
    }
    size_t bytes = numel * ot_dtype_size(dtype);
    void *copy = NULL;
    /* a clone does not free initializer bytes (they are the original's), so
       its new constants live in its arena */
    if (bytes) {
        copy = g->borrows_data ? ot_arena_alloc(&g->arena, bytes) : ot_malloc(bytes);
        if (!copy)
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory for constant '%s'", hint);
        memcpy(copy, data, bytes);
    }
    st = ot_op_grad_new_value(g, hint, id, err);
    if (st != OT_OK) {
        if (!g->borrows_data)
            ot_free(copy);
        return st;
    }
    ot_value *v = &g->values[*id];
    v->dtype = dtype;
    v->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        v->dims[i] = dims[i];
    v->flags = OT_VAL_INIT | OT_VAL_CONST;
    v->producer = -1;
    v->storage = OT_STORE_RAW;
    v->data.dtype = dtype;
    v->data.ndim = ndim;
    for (int i = 0; i < ndim; i++)
        v->data.dims[i] = dims[i];
    v->data.data = copy;
    v->data.bytes = bytes;
    return add_init(g, *id, err);
}

ot_status ot_op_grad_const_f32(ot_graph *g, const char *hint, const int64_t *dims, int ndim,
                               const float *data, int32_t *id, ot_err *err)
{
    return add_const(g, hint, OT_DTYPE_FLOAT, dims, ndim, data, id, err);
}

ot_status ot_op_grad_const_i64(ot_graph *g, const char *hint, const int64_t *dims, int ndim,
                               const int64_t *data, int32_t *id, ot_err *err)
{
    return add_const(g, hint, OT_DTYPE_INT64, dims, ndim, data, id, err);
}

ot_status ot_op_grad_shape_of(ot_graph *g, int32_t x, int32_t *id, ot_err *err)
{
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        /* only the pass's own Shape nodes: a forward one may sit in a frozen
           prefix that a later pass cuts away */
        if (n->op == &ot_op_shape && n->n_in == 1 && n->in[0] == x && n->n_attrs == 0 &&
            n->n_out == 1 && n->out[0] >= 0 && (n->flags & OT_NODE_DIRTY) &&
            strncmp(n->name, "grad/", 5) == 0) {
            *id = n->out[0];
            return OT_OK;
        }
    }
    char hint[512];
    snprintf(hint, sizeof hint, "grad/%s/shape", g->values[x].name);
    const char *names[1] = { hint };
    return ot_op_grad_emit(g, &ot_op_shape, 0, hint, &x, 1, NULL, 0, names, id, 1, err);
}

bool ot_op_grad_same_shape(const ot_graph *g, int32_t x, int32_t y)
{
    const ot_value *a = &g->values[x], *b = &g->values[y];
    if (a->ndim < 0 || a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++) {
        if (a->dims[i] >= 0 || b->dims[i] >= 0) {
            if (a->dims[i] != b->dims[i])
                return false;
        } else if (!a->dim_names[i] || !b->dim_names[i] ||
                   strcmp(a->dim_names[i], b->dim_names[i]) != 0) {
            return false;
        }
    }
    return true;
}

ot_status ot_op_grad_reduce_to(ot_graph *g, const char *name, int32_t dy, int32_t x,
                               int64_t axis, int32_t *out, ot_err *err)
{
    ot_status st = OT_OK;
    if (axis < 0 && ot_op_grad_same_shape(g, dy, x)) {
        *out = dy;
        return OT_OK;
    }
    int32_t shape, in[2];
    OT_TRY(ot_op_grad_shape_of(g, x, &shape, err));
    char hint[512];
    snprintf(hint, sizeof hint, "grad/%s", g->values[x].name);
    const char *names[1] = { hint };
    ot_attr a = ot_op_grad_attr_int("axis", axis);
    in[0] = dy;
    in[1] = shape;
    OT_TRY(ot_op_grad_emit(g, &ot_op_reduce_sum_to, 0, name, in, 2, &a, axis >= 0 ? 1 : 0, names,
                           out, 1, err));
done:
    return st;
}

ot_status ot_op_grad_sum(ot_graph *g, const char *hint, const int32_t *ids, int n, int32_t *out,
                         ot_err *err)
{
    OT_ASSERT(n >= 1);
    if (n == 1) {
        *out = ids[0];
        return OT_OK;
    }
    const char *names[1] = { hint };
    return ot_op_grad_emit(g, &ot_op_sum, 0, hint, ids, n, NULL, 0, names, out, 1, err);
}

ot_status ot_op_grad_add_output(ot_graph *g, int32_t node, int index, const char *hint,
                                int32_t *id, ot_err *err)
{
    ot_status st = OT_OK;
    ot_node *n = &g->nodes[node];
    if (index < n->n_out && n->out[index] >= 0) {
        *id = n->out[index];
        return OT_OK;
    }
    int n_out = index + 1 > n->n_out ? index + 1 : n->n_out;
    int32_t *outs = ot_arena_alloc(&g->arena, sizeof *outs * (size_t)(n_out + 1));
    if (!outs)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory adding an output");
    for (int i = 0; i < n_out; i++)
        outs[i] = i < n->n_out ? n->out[i] : -1;
    OT_TRY(ot_op_grad_new_value(g, hint, id, err));
    n = &g->nodes[node];
    outs[index] = *id;
    n->out = outs;
    n->n_out = n_out;
    n->flags |= OT_NODE_DIRTY;
    g->values[*id].producer = node;
    if (n->op && n->op->infer)
        OT_TRY(n->op->infer(g, n, err));
done:
    return st;
}

const char *ot_op_grad_node_name(const ot_graph *g, int32_t node, const char *suffix, char *buf,
                                 size_t size)
{
    const ot_node *n = &g->nodes[node];
    char base[400];
    if (n->name && n->name[0])
        snprintf(base, sizeof base, "grad/%s", n->name);
    else
        snprintf(base, sizeof base, "grad/#%d", (int)node);
    if (suffix)
        snprintf(buf, size, "%s/%s", base, suffix);
    else
        snprintf(buf, size, "%s", base);
    return buf;
}

const char *ot_op_grad_dx_name(const ot_graph *g, int32_t node, int i, char *buf)
{
    snprintf(buf, OT_GRAD_NAME_MAX, "grad/%s", g->values[g->nodes[node].in[i]].name);
    return buf;
}

ot_status ot_op_grad_emit1(ot_graph *g, const ot_op_desc *op, const char *name, const int32_t *in,
                           int n_in, const ot_attr *attrs, int n_attrs, const char *out_name,
                           int32_t *out, ot_err *err)
{
    const char *names[1] = { out_name };
    return ot_op_grad_emit(g, op, 0, name, in, n_in, attrs, n_attrs, names, out, 1, err);
}

ot_status ot_op_grad_unsupported(ot_graph *g, int32_t node, const char *what, ot_err *err)
{
    return ot_op_err(err, OT_ERR_UNSUPPORTED, g, &g->nodes[node], "no gradient for %s", what);
}
