/*
 * exec.c: compile a graph for concrete inputs and run it (see exec.h).
 *
 * Compilation: clone the graph, bind the inputs' shapes (and the values of
 * shape-deciding inputs), re-run shape inference so every value is static,
 * apply the shared rewrites the backend opts into (rewrite.c), let the
 * backend build its steps and declare buffers, plan the buffers into one
 * arena, allocate it, the state and the outputs through the backend's memory
 * hooks, and let the backend bind its primitives to their addresses.
 *
 * exec.c never dereferences backend memory: data crosses between the caller
 * and the backend through the copy hooks (ot_exec_loc_read/write).
 *
 * Not here: kernels (src/exec/cpu/), the choice of layouts (the backend's).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec_impl.h"
#include "ops/ops.h"
#if OT_CUDA
#include "cuda/cuda_backend.h"
#endif

#define ARENA_ALIGN 64

ot_status ot_exec_add_buf(ot_exec *x, size_t bytes, int first, int last, int *id, ot_err *err)
{
    if (x->n_bufs == x->cap_bufs) {
        int cap = x->cap_bufs ? x->cap_bufs * 2 : 64;
        ot_plan_buf *nb = ot_realloc(x->bufs, sizeof *nb * (size_t)cap);
        if (!nb)
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory planning buffers");
        x->bufs = nb;
        x->cap_bufs = cap;
    }
    ot_plan_buf *b = &x->bufs[x->n_bufs];
    b->bytes = bytes;
    b->first = first;
    b->last = last < first ? first : last;
    b->offset = 0;
    *id = x->n_bufs++;
    return OT_OK;
}

void ot_exec_buf_touch(ot_exec *x, int id, int step)
{
    OT_ASSERT(id >= 0 && id < x->n_bufs);
    ot_plan_buf *b = &x->bufs[id];
    if (step < b->first)
        b->first = step;
    if (step > b->last)
        b->last = step;
}

void *ot_exec_loc_ptr(const ot_exec *x, ot_loc loc)
{
    switch (loc.kind) {
    case OT_LOC_BUF: return x->arena + x->bufs[loc.id].offset;
    case OT_LOC_CONST: return (void *)(uintptr_t)loc.ptr;
    case OT_LOC_INPUT:
        if (x->in_mem)
            return x->in_mem[loc.id];
        return x->in_now ? x->in_now[loc.id].data : NULL;
    case OT_LOC_OUTPUT: return x->outs[loc.id].data;
    case OT_LOC_STATE: return x->state ? x->state[loc.id] : NULL;
    default: return NULL;
    }
}

ot_status ot_exec_loc_write(ot_exec *x, ot_loc loc, size_t off, const void *src, size_t bytes,
                            ot_err *err)
{
    unsigned char *p = ot_exec_loc_ptr(x, loc);
    if (!bytes)
        return OT_OK;
    if (!p)
        return ot_err_set(err, OT_ERR_BACKEND, "%s: nothing to copy into", x->be->name);
    return x->be->copy_in(x, p + off, src, bytes, err);
}

ot_status ot_exec_loc_read(const ot_exec *x, ot_loc loc, size_t off, void *dst, size_t bytes,
                           ot_err *err)
{
    const unsigned char *p = ot_exec_loc_ptr(x, loc);
    if (!bytes)
        return OT_OK;
    if (!p)
        return ot_err_set(err, OT_ERR_BACKEND, "%s: nothing to copy from", x->be->name);
    return x->be->copy_out(x, dst, p + off, bytes, err);
}

/* Waits for a launch in flight (no error when none). */
static ot_status settle(ot_exec *x, ot_err *err)
{
    if (!x->in_flight)
        return OT_OK;
    x->in_flight = false;
    return x->be->wait(x, err);
}

/* For the calls that read through a const executor: outputs, state. */
static ot_status settle_const(const ot_exec *x, ot_err *err)
{
    return settle((ot_exec *)(uintptr_t)x, err);
}

/* Consumers whose operand at this position decides output shapes or
   primitive parameters. */
static bool is_shape_operand(const ot_node *n, int k)
{
    const char *t = n->op_type;
    if (!ot_domain_is_default(n->domain))
        return false;
    if (!strcmp(t, "Reshape") || !strcmp(t, "Squeeze") || !strcmp(t, "Unsqueeze"))
        return k == 1;
    if (!strcmp(t, "Pad") || !strcmp(t, "Slice"))
        return k >= 1;
    if (!strcmp(t, "Clip") || !strcmp(t, "Dropout"))
        return k >= 1;
    if (!strncmp(t, "Reduce", 6))
        return k == 1; /* the axes */
    if (!strcmp(t, "Expand") || !strcmp(t, "Tile") || !strcmp(t, "Split"))
        return k == 1; /* the shape, the repeats, the sizes */
    if (!strcmp(t, "ConstantOfShape") || !strcmp(t, "Range"))
        return true;
    return false;
}

bool ot_exec_input_is_shape_operand(const ot_graph *g, int32_t value)
{
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] == value && is_shape_operand(n, k))
                return true;
    }
    return false;
}

static ot_status bind_inputs(ot_exec *x, const ot_exec_input *inputs, int n_inputs, ot_err *err)
{
    ot_graph *g = x->g;
    char have[256], want[256];
    x->in_ids = ot_calloc((size_t)n_inputs + 1, sizeof *x->in_ids);
    x->in_shapes = ot_calloc((size_t)n_inputs + 1, sizeof *x->in_shapes);
    if (!x->in_ids || !x->in_shapes)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n_inputs; i++) {
        const ot_exec_input *in = &inputs[i];
        if (in->value < 0 || in->value >= g->n_values || !(g->values[in->value].flags & OT_VAL_INPUT))
            return ot_err_set(err, OT_ERR_ARG, "binding #%d is not a graph input", i);
        ot_value *v = &g->values[in->value];
        for (int j = 0; j < i; j++)
            if (x->in_ids[j] == in->value)
                return ot_err_set(err, OT_ERR_ARG, "input '%s' is bound twice", v->name);
        const ot_tensor *t = &in->tensor;
        ot_value got = *v;
        got.dtype = t->dtype;
        got.ndim = t->ndim;
        memcpy(got.dims, t->dims, sizeof got.dims);
        memset(got.dim_names, 0, sizeof got.dim_names);
        ot_value_shape_str(&got, have, sizeof have);
        ot_value_shape_str(v, want, sizeof want);
        if (v->dtype != OT_DTYPE_UNDEFINED && v->dtype != t->dtype)
            return ot_err_set(err, OT_ERR_ARG, "input '%s': dtype %s, the model declares %s",
                              v->name, ot_dtype_name(t->dtype), ot_dtype_name(v->dtype));
        if (t->ndim < 0 || t->ndim > OT_MAX_DIMS)
            return ot_err_set(err, OT_ERR_ARG, "input '%s': rank %d is not supported", v->name,
                              t->ndim);
        bool ok = v->ndim < 0 || v->ndim == t->ndim;
        for (int d = 0; ok && v->ndim >= 0 && d < t->ndim; d++)
            ok = t->dims[d] >= 0 && (v->dims[d] < 0 || v->dims[d] == t->dims[d]);
        if (!ok)
            return ot_err_set(err, OT_ERR_ARG, "input '%s': shape %s does not match the declared %s",
                              v->name, have, want);
        *v = got;
        v->flags |= OT_VAL_SHAPE_DECLARED;
        if (in->const_value) {
            if (!t->data && t->bytes)
                return ot_err_set(err, OT_ERR_ARG, "input '%s': no data for a constant binding",
                                  v->name);
            v->data = *t;
            v->data.data = t->bytes ? ot_arena_memdup(&g->arena, t->data, t->bytes) : NULL;
            if (t->bytes && !v->data.data)
                return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
            v->flags |= OT_VAL_CONST;
            v->flags &= ~(uint32_t)OT_VAL_INIT; /* bytes are the executor's, not freed */
        } else {
            v->flags &= ~(uint32_t)(OT_VAL_CONST | OT_VAL_INIT);
            memset(&v->data, 0, sizeof v->data);
        }
        x->in_ids[i] = in->value;
        x->in_shapes[i] = *t;
        x->in_shapes[i].data = NULL;
    }
    x->n_in = n_inputs;
    x->in_ahead = ot_calloc((size_t)n_inputs + 1, sizeof *x->in_ahead);
    if (!x->in_ahead)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    int pi = x->opts.prefetch_input - 1; /* the input handed in ahead, if any */
    if (pi >= n_inputs || (pi >= 0 && inputs[pi].const_value))
        return ot_err_set(err, OT_ERR_ARG, "the input to hand in ahead is not a bound input");
    if (pi >= 0) {
        if (!(x->in_prefetch = ot_calloc((size_t)n_inputs, sizeof(bool))))
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
        x->in_prefetch[pi] = true;
        const ot_exec_u8 *u = x->opts.prefetch_u8;
        const ot_tensor *t = &inputs[pi].tensor;
        if (u) {
            if (t->dtype != OT_DTYPE_FLOAT || t->ndim != 4 || t->dims[2] != t->dims[3] ||
                u->c_in < 1 || u->h < 1 || u->w < 1 || !u->host ||
                (u->c_in != 1 && u->c_in != t->dims[1]) || t->dims[1] > 3 ||
                (!u->coef && u->n_coef) || u->box_ints < 0 ||
                (u->box_ints && u->box_ints <= OT_EXEC_U8_BOX_HEAD))
                return ot_err_set(err, OT_ERR_ARG, "input '%s': not a float [n, C, S, S] input "
                                  "of uint8 images of C or 1 planes",
                                  g->values[inputs[pi].value].name);
            if (!(x->in_u8 = ot_calloc((size_t)n_inputs, sizeof *x->in_u8)))
                return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
            x->in_u8[pi] = *u;
            int32_t *coef = ot_malloc((u->n_coef ? u->n_coef : 1) * sizeof *coef);
            if (!coef)
                return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
            if (u->n_coef)
                memcpy(coef, u->coef, u->n_coef * sizeof *coef);
            x->in_u8[pi].coef = coef;
        }
    }
    for (int32_t i = 0; i < g->n_inputs; i++) {
        const ot_value *v = &g->values[g->inputs[i].value];
        bool bound = false;
        for (int j = 0; j < n_inputs; j++)
            bound |= x->in_ids[j] == g->inputs[i].value;
        if (!bound && !(v->flags & OT_VAL_INIT))
            return ot_err_set(err, OT_ERR_ARG, "input '%s' is not bound", v->name);
    }
    return OT_OK;
}

static ot_status check_static(ot_exec *x, ot_err *err)
{
    const ot_graph *g = x->g;
    char label[400], shape[256];
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        if (!n->op)
            return ot_err_set(err, OT_ERR_UNSUPPORTED,
                              "%s: op '%s%s%s' is not in onnxtrain's op table, so the model cannot "
                              "run",
                              ot_node_label(g, n, label, sizeof label), n->domain,
                              n->domain[0] ? "." : "", n->op_type);
        if (n->flags & OT_NODE_UNKNOWN_ATTR) {
            const char *bad = "?";
            for (int a = 0; a < n->n_attrs; a++) {
                bool known = false;
                for (const ot_attr_spec *s = n->op->attrs; s && s->name; s++)
                    if (!strcmp(s->name, n->attrs[a].name) &&
                        (!s->opset_min || n->opset >= s->opset_min) &&
                        (!s->opset_max || n->opset <= s->opset_max))
                        known = true;
                if (!known) {
                    bad = n->attrs[a].name;
                    break;
                }
            }
            return ot_err_set(err, OT_ERR_UNSUPPORTED,
                              "%s: attribute '%s' is not understood, and computing without it "
                              "could be wrong",
                              ot_node_label(g, n, label, sizeof label), bad);
        }
        for (int k = 0; k < n->n_in + n->n_out; k++) {
            int32_t id = k < n->n_in ? n->in[k] : n->out[k - n->n_in];
            if (id < 0)
                continue;
            const ot_value *v = &g->values[id];
            bool ok = v->ndim >= 0 && ot_dtype_size(v->dtype);
            size_t bytes = ot_dtype_size(v->dtype);
            for (int d = 0; ok && d < v->ndim; d++)
                ok = v->dims[d] >= 0;
            for (int d = 0; ok && d < v->ndim; d++)
                if ((uint64_t)v->dims[d] > SIZE_MAX || !ot_size_mul(bytes, (size_t)v->dims[d], &bytes) ||
                    bytes > OT_DEFAULT_MAX_TENSOR_BYTES)
                    return ot_err_set(err, OT_ERR_SHAPE, "%s: '%s' would need more than %llu bytes",
                                      ot_node_label(g, n, label, sizeof label), v->name,
                                      (unsigned long long)OT_DEFAULT_MAX_TENSOR_BYTES);
            if (!ok) {
                ot_value_shape_str(v, shape, sizeof shape);
                return ot_err_set(err, v->dtype == OT_DTYPE_STRING ? OT_ERR_UNSUPPORTED : OT_ERR_SHAPE,
                                  "%s: %s '%s' has no static shape and numeric dtype after binding "
                                  "the inputs (%s %s)",
                                  ot_node_label(g, n, label, sizeof label),
                                  k < n->n_in ? "input" : "output", v->name,
                                  ot_dtype_name(v->dtype), shape);
            }
        }
    }
    return OT_OK;
}

/* Marks state values, before the backend sees the graph: nothing may fold
   or pre-reorder them. With opts.share_state, checks that the shared
   executor holds each one. */
static ot_status mark_state(ot_exec *x, ot_err *err)
{
    ot_graph *g = x->g;
    const ot_exec *sh = x->opts.share_state;
    for (int32_t v = 0; v < g->n_values; v++) {
        ot_value *val = &g->values[v];
        if (!(val->flags & OT_VAL_STATE))
            continue;
        /* no bytes: state that starts at zero (the optimizer's moments) */
        if (!(val->flags & OT_VAL_INIT) || (!val->data.data && val->data.bytes == 0) ||
            !ot_dtype_size(val->dtype))
            return ot_err_set(err, OT_ERR_ARG, "state value '%s' is not an initializer with data",
                              val->name);
        if (!x->state) {
            x->state = ot_calloc((size_t)g->n_values + 1, sizeof *x->state);
            if (!x->state)
                return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
        }
        if (sh) {
            if (sh->be != x->be || !sh->state || v >= sh->g->n_values || !sh->state[v] ||
                sh->g->values[v].data.bytes != val->data.bytes)
                return ot_err_set(err, OT_ERR_ARG, "state value '%s' is not in the shared executor",
                                  val->name);
            x->state[v] = sh->state[v];
            x->state_borrowed = true;
        }
        val->flags &= ~(uint32_t)OT_VAL_CONST;
    }
    return OT_OK;
}

/* The node outputs that overwrite a state value in place (ot_op_desc's
   in_place), in x->state_out. The state is read, then written: the writer
   must be the only one and the last node reading the old value, so that
   every reader sees the value from before the step. */
static ot_status find_state_writes(ot_exec *x, ot_err *err)
{
    const ot_graph *g = x->g;
    char label[400], other[400];
    int32_t *writer = NULL;
    for (int32_t i = 0; x->state && i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        if (!n->op || !n->op->in_place)
            continue;
        for (int k = 0; k < n->n_out && k < n->op->n_out_max; k++) {
            int j = n->op->in_place[k];
            if (j < 0 || j >= n->n_in || n->out[k] < 0 || n->in[j] < 0 ||
                !(g->values[n->in[j]].flags & OT_VAL_STATE))
                continue;
            int32_t sv = n->in[j];
            if (!x->state_out) {
                x->state_out = ot_malloc(sizeof *x->state_out * ((size_t)g->n_values + 1));
                writer = ot_malloc(sizeof *writer * ((size_t)g->n_values + 1));
                if (!x->state_out || !writer) {
                    ot_free(writer);
                    return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
                }
                for (int32_t v = 0; v < g->n_values; v++)
                    x->state_out[v] = writer[v] = -1;
            }
            if (writer[sv] >= 0) {
                ot_node_label(g, &g->nodes[writer[sv]], other, sizeof other);
                ot_free(writer);
                return ot_err_set(err, OT_ERR_MODEL, "%s and %s both update state '%s' in place",
                                  other, ot_node_label(g, n, label, sizeof label),
                                  g->values[sv].name);
            }
            writer[sv] = i;
            x->state_out[n->out[k]] = sv;
        }
    }
    for (int32_t i = 0; writer && i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++) {
            int32_t v = n->in[k];
            if (v < 0 || writer[v] < 0 || writer[v] >= i)
                continue;
            ot_node_label(g, &g->nodes[writer[v]], other, sizeof other);
            ot_free(writer);
            return ot_err_set(err, OT_ERR_MODEL,
                              "%s updates state '%s' in place before %s reads it", other,
                              g->values[v].name, ot_node_label(g, n, label, sizeof label));
        }
    }
    ot_free(writer);
    return OT_OK;
}

/* Backend buffers for the state values (initialised from the graph's bytes),
   unless they are borrowed. */
static ot_status alloc_state(ot_exec *x, ot_err *err)
{
    ot_graph *g = x->g;
    for (int32_t v = 0; x->state && !x->state_borrowed && v < g->n_values; v++) {
        const ot_value *val = &g->values[v];
        if (!(val->flags & OT_VAL_STATE))
            continue;
        ot_status st = x->be->mem_alloc(x, val->data.bytes, &x->state[v], err);
        if (st != OT_OK)
            return st;
        if (!val->data.data)
            continue; /* mem_alloc zeroed it */
        st = x->be->copy_in(x, x->state[v], val->data.data, val->data.bytes, err);
        if (st != OT_OK)
            return st;
    }
    return OT_OK;
}

static bool is_state(const ot_exec *x, int32_t value)
{
    return x->state && value >= 0 && value < x->g->n_values && x->state[value];
}

size_t ot_exec_state_bytes(const ot_exec *x, int32_t value)
{
    return is_state(x, value) ? x->g->values[value].data.bytes : 0;
}

static ot_status state_loc(const ot_exec *x, int32_t value, size_t bytes, ot_loc *loc,
                           ot_err *err)
{
    if (!is_state(x, value))
        return ot_err_set(err, OT_ERR_ARG, "value %d is not a state value of this executor",
                          (int)value);
    const ot_value *v = &x->g->values[value];
    if (bytes != v->data.bytes)
        return ot_err_set(err, OT_ERR_ARG, "state value '%s' has %zu bytes, not %zu", v->name,
                          v->data.bytes, bytes);
    *loc = (ot_loc){ .kind = OT_LOC_STATE, .id = value };
    return OT_OK;
}

/* State crosses plain: a backend that keeps a value in a layout of its own
   (trained convolution weights, blocked) converts it on the way. */
ot_status ot_exec_read_state(const ot_exec *x, int32_t value, void *dst, size_t bytes,
                             ot_err *err)
{
    ot_loc loc;
    bool done = false;
    ot_status st = state_loc(x, value, bytes, &loc, err);
    if (st == OT_OK)
        st = settle_const(x, err);
    if (st == OT_OK && x->be->state_copy)
        st = x->be->state_copy(x, value, dst, true, &done, err);
    return st != OT_OK || done ? st : ot_exec_loc_read(x, loc, 0, dst, bytes, err);
}

ot_status ot_exec_write_state(ot_exec *x, int32_t value, const void *src, size_t bytes,
                              ot_err *err)
{
    ot_loc loc;
    bool done = false;
    ot_status st = state_loc(x, value, bytes, &loc, err);
    if (st == OT_OK)
        st = settle(x, err);
    if (st == OT_OK && x->be->state_copy)
        st = x->be->state_copy(x, value, (void *)(uintptr_t)src, false, &done, err);
    return st != OT_OK || done ? st : ot_exec_loc_write(x, loc, 0, src, bytes, err);
}

ot_status ot_exec_state_mem(ot_exec *x, int32_t value, void **ptr, size_t *bytes, void **queue,
                            ot_err *err)
{
    ot_loc loc;
    ot_status st = state_loc(x, value, ot_exec_state_bytes(x, value), &loc, err);
    if (st == OT_OK)
        st = settle(x, err);
    if (st != OT_OK)
        return st;
    *ptr = ot_exec_loc_ptr(x, loc);
    *bytes = ot_exec_state_bytes(x, value);
    *queue = x->be->queue ? x->be->queue(x) : NULL;
    return OT_OK;
}

/* The outputs' dtypes, shapes and sizes (their memory comes after build). */
static ot_status make_outputs(ot_exec *x, ot_err *err)
{
    const ot_graph *g = x->g;
    x->n_out = g->n_outputs;
    x->out_ids = ot_calloc((size_t)x->n_out + 1, sizeof *x->out_ids);
    x->outs = ot_calloc((size_t)x->n_out + 1, sizeof *x->outs);
    if (!x->out_ids || !x->outs)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    for (int i = 0; i < x->n_out; i++) {
        const ot_value *v = &g->values[g->outputs[i].value];
        x->out_ids[i] = g->outputs[i].value;
        ot_tensor *t = &x->outs[i];
        bool ok = v->ndim >= 0 && ot_dtype_size(v->dtype);
        for (int d = 0; ok && d < v->ndim; d++)
            ok = v->dims[d] >= 0;
        if (!ok)
            return ot_err_set(err, OT_ERR_SHAPE, "graph output '%s' has no static shape", v->name);
        t->dtype = v->dtype;
        t->ndim = v->ndim;
        memcpy(t->dims, v->dims, sizeof t->dims);
        size_t numel = 1;
        for (int d = 0; d < v->ndim; d++)
            if (!ot_size_mul(numel, (size_t)v->dims[d], &numel))
                return ot_err_set(err, OT_ERR_SHAPE, "graph output '%s' is too large", v->name);
        if (!ot_size_mul(numel, ot_dtype_size(v->dtype), &t->bytes))
            return ot_err_set(err, OT_ERR_SHAPE, "graph output '%s' is too large", v->name);
    }
    return OT_OK;
}

/* Backend memory for the arena, the state, the outputs (zeroed) and, when
   the host cannot address it, the inputs; host copies of the outputs then. */
static ot_status alloc_memory(ot_exec *x, ot_err *err)
{
    ot_status st = OT_OK;
    const ot_backend *be = x->be;
    if (x->arena_bytes) {
        void *p = NULL;
        OT_TRY(be->mem_alloc(x, x->arena_bytes, &p, err));
        x->arena = p;
    }
    OT_TRY(alloc_state(x, err));
    for (int i = 0; i < x->n_out; i++)
        if (x->outs[i].bytes)
            OT_TRY(be->mem_alloc(x, x->outs[i].bytes, &x->outs[i].data, err));
    if (be->host_visible)
        goto done;
    x->in_mem = ot_calloc((size_t)x->n_in + 1, sizeof *x->in_mem);
    x->host_outs = ot_calloc((size_t)x->n_out + 1, sizeof *x->host_outs);
    x->host_fresh = ot_calloc((size_t)x->n_out + 1, sizeof *x->host_fresh);
    if (!x->in_mem || !x->host_outs || !x->host_fresh)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    for (int i = 0; i < x->n_in; i++)
        if (x->in_shapes[i].bytes)
            OT_TRY(be->mem_alloc(x, x->in_shapes[i].bytes, &x->in_mem[i], err));
    for (int i = 0; i < x->n_out; i++) {
        ot_tensor *h = &x->host_outs[i];
        *h = x->outs[i];
        h->data = NULL;
        if (!h->bytes)
            continue;
        h->data = aligned_alloc(ARENA_ALIGN, (h->bytes + ARENA_ALIGN - 1) &
                                                 ~(size_t)(ARENA_ALIGN - 1));
        if (!h->data)
            OT_FAIL(err, OT_ERR_NOMEM, "out of memory for output '%s'", ot_exec_output_name(x, i));
        memset(h->data, 0, h->bytes);
    }
done:
    return st;
}

/* -------------------------------------------------------------- devices */

const char *ot_device_name(const ot_device *dev, char *buf, size_t size)
{
    if (dev->kind == OT_DEVICE_CUDA)
        snprintf(buf, size, "cuda:%d", dev->index);
    else
        snprintf(buf, size, "cpu");
    return buf;
}

/* The backend of a device kind in this build, or NULL. */
/* The process's plan options (ot_exec_set_plan_opts). */
static pthread_mutex_t plan_opts_lock = PTHREAD_MUTEX_INITIALIZER;
static ot_exec_plan_opts plan_opts;
static char *plan_dir;

ot_status ot_exec_set_plan_opts(const ot_exec_plan_opts *o, ot_err *err)
{
    char *dir = NULL;
    if (o->cache_dir && !(dir = ot_strdup(o->cache_dir)))
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    pthread_mutex_lock(&plan_opts_lock);
    ot_free(plan_dir);
    plan_dir = dir;
    plan_opts = *o;
    plan_opts.cache_dir = plan_dir;
    pthread_mutex_unlock(&plan_opts_lock);
    return OT_OK;
}

ot_exec_plan_opts ot_exec_get_plan_opts(void)
{
    pthread_mutex_lock(&plan_opts_lock);
    ot_exec_plan_opts o = plan_opts;
    pthread_mutex_unlock(&plan_opts_lock);
    return o;
}

static const ot_backend *backend_of(const ot_device *dev)
{
    switch (dev->kind) {
    case OT_DEVICE_CPU: return &ot_backend_cpu;
#if OT_CUDA
    case OT_DEVICE_CUDA: return &ot_backend_cuda;
#endif
    default: return NULL;
    }
}

ot_status ot_device_check(const ot_device *dev, ot_err *err)
{
    char name[32];
    ot_device_name(dev, name, sizeof name);
    if (!backend_of(dev))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "device '%s': this build has no %s backend",
                          name, dev->kind == OT_DEVICE_CUDA ? "CUDA" : "such");
#if OT_CUDA
    ot_err why;
    ot_err_init(&why);
    if (dev->kind == OT_DEVICE_CUDA && ot_cuda_probe(dev->index, &why) != OT_OK)
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "device '%s' is not usable: %s", name,
                          why.msg);
#endif
    return OT_OK;
}

int ot_device_count(ot_device_kind kind)
{
    if (kind == OT_DEVICE_CPU)
        return 1;
#if OT_CUDA
    if (kind == OT_DEVICE_CUDA)
        return ot_cuda_device_count();
#endif
    return 0;
}

void ot_device_backends(char *buf, size_t size)
{
    char cuda[OT_ERR_MSG_MAX + 64] = "not built in";
#if OT_CUDA
    ot_err err;
    ot_err_init(&err);
    char found[256];
    if (ot_cuda_probe(0, &err) == OT_OK) {
        ot_cuda_describe(found, sizeof found);
        snprintf(cuda, sizeof cuda, "built in, usable (%s)", found);
    } else {
        snprintf(cuda, sizeof cuda, "built in, not usable here: %s", err.msg);
    }
#endif
    snprintf(buf, size, "cpu: built in, usable\ncuda: %s\n", cuda);
}

ot_status ot_device_parse(const char *name, ot_device *out, ot_err *err)
{
    memset(out, 0, sizeof *out);
    if (!name || !name[0] || !strcmp(name, "cpu"))
        return OT_OK;
    bool cuda = !strncmp(name, "cuda", 4) && (!name[4] || name[4] == ':');
    if (cuda && name[4] == ':') {
        /* a decimal index without sign, spaces or leading zeros */
        const char *p = name + 5;
        long v = 0;
        cuda = *p >= '0' && *p <= '9' && !(p[0] == '0' && p[1]);
        for (; cuda && *p; p++) {
            cuda = *p >= '0' && *p <= '9' && v <= 99999;
            v = v * 10 + (*p - '0');
        }
        out->index = cuda ? (int)v : 0;
    }
    if (!cuda)
        return ot_err_set(err, OT_ERR_ARG, "unknown device '%s' (known: cpu, cuda, cuda:N)",
                          name);
    out->kind = OT_DEVICE_CUDA;
    return ot_device_check(out, err);
}

const char *ot_precision_name(ot_precision p)
{
    switch (p) {
    case OT_PRECISION_FP32: return "fp32";
    case OT_PRECISION_TF32: return "tf32";
    case OT_PRECISION_BF16: return "bf16";
    case OT_PRECISION_FP16: return "fp16";
    case OT_PRECISION_AUTO: return "auto";
    }
    return "?";
}

/* Whether backend `be` (NULL: none built in for dev) computes in p. */
static ot_status precision_on(const ot_backend *be, const ot_device *dev, ot_precision p,
                              ot_err *err)
{
    char name[32];
    ot_device_name(dev, name, sizeof name);
    if ((unsigned)p > OT_PRECISION_AUTO)
        return ot_err_set(err, OT_ERR_ARG, "precision %d is not one of fp32, tf32, bf16, fp16, auto",
                          (int)p);
    if (p == OT_PRECISION_FP32 || p == OT_PRECISION_AUTO)
        return OT_OK;
    if (!be)
        return ot_device_check(dev, err);
    if (!be->precision)
        return ot_err_set(err, OT_ERR_UNSUPPORTED,
                          "--precision %s on %s: this backend computes in fp32 only",
                          ot_precision_name(p), name);
    ot_err why;
    ot_err_init(&why);
    if (be->precision(p, &why) != OT_OK)
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "--precision %s on %s: %s",
                          ot_precision_name(p), name, why.msg);
    return OT_OK;
}

ot_status ot_precision_check(const ot_device *dev, ot_precision p, ot_err *err)
{
    return precision_on(backend_of(dev), dev, p, err);
}

ot_status ot_exec_compile(const ot_graph *g, const ot_exec_input *inputs, int n_inputs,
                          const ot_exec_opts *opts, ot_exec **out, ot_err *err)
{
    static const ot_exec_opts defaults;
    const ot_device *dev = opts ? &opts->device : &defaults.device;
    *out = NULL;
    ot_status st = ot_device_check(dev, err);
    if (st != OT_OK)
        return st;
    return ot_exec_compile_on(backend_of(dev), g, inputs, n_inputs, opts, out, err);
}

ot_status ot_exec_compile_on(const ot_backend *be, const ot_graph *g, const ot_exec_input *inputs,
                             int n_inputs, const ot_exec_opts *opts, ot_exec **out, ot_err *err)
{
    ot_status st = OT_OK;
    *out = NULL;
    if (opts && (st = precision_on(be, &opts->device, opts->precision, err)) != OT_OK)
        return st;
    ot_exec *x = ot_calloc(1, sizeof *x);
    if (!x)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    if (opts)
        x->opts = *opts;
    x->precision = x->opts.precision == OT_PRECISION_AUTO ? OT_PRECISION_FP32 : x->opts.precision;
    x->be = be;
    OT_TRY(ot_graph_clone(g, &x->g, err));
    OT_TRY(bind_inputs(x, inputs, n_inputs, err));
    OT_TRY(mark_state(x, err));
    OT_TRY(find_state_writes(x, err));
    OT_TRY(ot_graph_infer_shapes(x->g, err));
    OT_TRY(check_static(x, err));
    OT_TRY(make_outputs(x, err));
    x->rewrites = be->rewrites ? be->rewrites(x) : 0;
    if (x->rewrites & OT_REWRITE_CONST)
        ot_rewrite_mark_folded(x->g);
    if (x->rewrites & OT_REWRITE_BN_FOLD)
        OT_TRY(ot_rewrite_fold_bn(x->g, &x->consts, NULL, err));
    if (x->rewrites & OT_REWRITE_FUSE)
        OT_TRY(ot_fuse_plan_init(&x->fuse, x->g, err));
    if (be->open)
        OT_TRY(be->open(x, err));
    OT_TRY(be->build(x, err));
    OT_TRY(ot_plan_assign(x->bufs, x->n_bufs, ARENA_ALIGN, &x->arena_bytes, err));
    OT_TRY(alloc_memory(x, err));
    OT_TRY(be->bind(x, err));
    *out = x;
    x = NULL;
done:
    ot_exec_free(x);
    return st;
}

ot_precision ot_exec_precision(const ot_exec *x) { return x->precision; }

bool ot_exec_overlaps(const ot_exec *x) { return x->be->launch != NULL; }

ot_status ot_exec_wait(ot_exec *x, ot_err *err) { return settle(x, err); }

ot_status ot_exec_prefetch(ot_exec *x, int i, const ot_tensor *t, ot_err *err)
{
    if (i < 0 || i >= x->n_in || !x->in_prefetch || !x->in_prefetch[i])
        return ot_err_set(err, OT_ERR_ARG, "input %d was not compiled to be handed in ahead", i);
    if (t->bytes != x->in_shapes[i].bytes || (t->bytes && !t->data))
        return ot_err_set(err, OT_ERR_ARG, "input '%s': %zu bytes handed in ahead, it has %zu",
                          x->g->values[x->in_ids[i]].name, t->bytes, x->in_shapes[i].bytes);
    if (!x->in_mem)
        return OT_OK; /* the run reads the caller's memory */
    ot_status st;
    if (x->be->prefetch) /* while a launch may be in flight */
        st = x->be->prefetch(x, i, t->data, t->bytes, err);
    else /* no launch stays in flight here: the input buffer is free now */
        st = ot_exec_loc_write(x, (ot_loc){ .kind = OT_LOC_INPUT, .id = i }, 0, t->data,
                               t->bytes, err);
    x->in_ahead[i] = st == OT_OK;
    return st;
}

size_t ot_exec_u8_box_offset(const ot_exec_u8 *u, int n)
{
    size_t px = (size_t)n * (size_t)u->c_in * (size_t)u->h * (size_t)u->w;
    return (px + 3) & ~(size_t)3;
}

size_t ot_exec_u8_bytes(const ot_exec_u8 *u, int n)
{
    if (u->box_ints <= 0)
        return (size_t)n * (size_t)u->c_in * (size_t)u->h * (size_t)u->w;
    return ot_exec_u8_box_offset(u, n) + (size_t)n * (size_t)u->box_ints * sizeof(int32_t);
}

ot_status ot_exec_prefetch_u8(ot_exec *x, int i, const uint8_t *images, float *host_out,
                              ot_err *err)
{
    if (i < 0 || i >= x->n_in || !x->in_u8 || !x->in_u8[i].c_in)
        return ot_err_set(err, OT_ERR_ARG, "input %d was not compiled for uint8 images", i);
    const ot_exec_u8 *u = &x->in_u8[i];
    int n = (int)x->in_shapes[i].dims[0];
    if (x->in_mem && x->be->prefetch_u8) {
        ot_status st = x->be->prefetch_u8(x, i, images, ot_exec_u8_bytes(u, n), err);
        x->in_ahead[i] = st == OT_OK;
        return st;
    }
    ot_status st = u->host(u->user, images, n, host_out, err);
    if (st != OT_OK)
        return st;
    ot_tensor t = x->in_shapes[i];
    t.data = host_out;
    return ot_exec_prefetch(x, i, &t, err);
}

ot_status ot_exec_run(ot_exec *x, const ot_tensor *inputs, int n_inputs, ot_err *err)
{
    ot_status st = ot_exec_launch(x, inputs, n_inputs, err);
    if (st != OT_OK)
        return st;
    return settle(x, err);
}

ot_status ot_exec_launch(ot_exec *x, const ot_tensor *inputs, int n_inputs, ot_err *err)
{
    ot_status st = settle(x, err);
    if (st != OT_OK)
        return st;
    if (n_inputs != x->n_in)
        return ot_err_set(err, OT_ERR_ARG, "%d inputs given, the executor was compiled for %d",
                          n_inputs, x->n_in);
    for (int i = 0; i < n_inputs; i++) {
        const ot_tensor *t = &inputs[i], *c = &x->in_shapes[i];
        bool same = t->dtype == c->dtype && t->ndim == c->ndim && t->bytes == c->bytes &&
                    (t->data || !t->bytes);
        for (int d = 0; same && d < t->ndim; d++)
            same = t->dims[d] == c->dims[d];
        if (!same)
            return ot_err_set(err, OT_ERR_ARG,
                              "input '%s': dtype or shape differs from the compiled one",
                              x->g->values[x->in_ids[i]].name);
    }
    if (x->in_mem) {
        for (int i = 0; i < n_inputs; i++) {
            if (x->in_ahead[i]) { /* its bytes were handed in ahead */
                x->in_ahead[i] = false;
                continue;
            }
            OT_TRY(ot_exec_loc_write(x, (ot_loc){ .kind = OT_LOC_INPUT, .id = i }, 0,
                                     inputs[i].data, inputs[i].bytes, err));
        }
        for (int i = 0; i < x->n_out; i++)
            x->host_fresh[i] = false;
    } else {
        x->in_now = inputs;
    }
    if (x->be->launch) {
        st = x->be->launch(x, err);
        x->in_flight = st == OT_OK;
    } else {
        st = x->be->run(x, err);
    }
    x->in_now = NULL;
done:
    return st;
}

int ot_exec_n_outputs(const ot_exec *x) { return x->n_out; }

const ot_tensor *ot_exec_output(const ot_exec *x, int i)
{
    if (!x->host_outs)
        return &x->outs[i];
    if (!x->host_fresh[i]) {
        ot_err err;
        ot_err_init(&err);
        if (settle_const(x, &err) != OT_OK ||
            ot_exec_loc_read(x, (ot_loc){ .kind = OT_LOC_OUTPUT, .id = i }, 0,
                             x->host_outs[i].data, x->host_outs[i].bytes, &err) != OT_OK) {
            ot_log(OT_LOG_ERROR, "%s", err.msg);
            return NULL;
        }
        x->host_fresh[i] = true;
    }
    return &x->host_outs[i];
}
const char *ot_exec_output_name(const ot_exec *x, int i)
{
    return x->g->values[x->out_ids[i]].name;
}
size_t ot_exec_arena_bytes(const ot_exec *x) { return x->arena_bytes; }
int ot_exec_n_steps(const ot_exec *x) { return x->n_steps; }

void ot_exec_step_profile(const ot_exec *x, int i, ot_exec_step_time *out)
{
    memset(out, 0, sizeof *out);
    if (i >= 0 && i < x->n_steps && x->be->step_profile)
        x->be->step_profile(x, i, out);
}

void ot_exec_free(ot_exec *x)
{
    if (!x)
        return;
    const ot_backend *be = x->be;
    if (x->in_flight) {
        ot_err err;
        ot_err_init(&err);
        if (settle(x, &err) != OT_OK)
            ot_log(OT_LOG_WARN, "%s", err.msg);
    }
    for (int i = 0; i < x->n_out && x->outs; i++)
        if (x->outs[i].data)
            be->mem_free(x, x->outs[i].data);
    for (int i = 0; i < x->n_out && x->host_outs; i++)
        free(x->host_outs[i].data);
    for (int i = 0; i < x->n_in && x->in_mem; i++)
        if (x->in_mem[i])
            be->mem_free(x, x->in_mem[i]);
    for (int32_t v = 0; x->state && !x->state_borrowed && v < x->g->n_values; v++)
        if (x->state[v])
            be->mem_free(x, x->state[v]);
    if (x->arena)
        be->mem_free(x, x->arena);
    if (be && be->free)
        be->free(x);
    ot_free(x->outs);
    ot_free(x->host_outs);
    ot_free(x->host_fresh);
    ot_free(x->in_mem);
    ot_free(x->in_prefetch);
    ot_free(x->in_ahead);
    for (int i = 0; x->in_u8 && i < x->n_in; i++)
        ot_free((void *)(uintptr_t)x->in_u8[i].coef);
    ot_free(x->in_u8);
    ot_free(x->out_ids);
    ot_free(x->in_ids);
    ot_free(x->in_shapes);
    ot_free(x->state);
    ot_free(x->state_out);
    ot_free(x->bufs);
    ot_fuse_plan_fini(&x->fuse);
    ot_const_pool_free(&x->consts);
    ot_graph_free(x->g);
    ot_free(x);
}
