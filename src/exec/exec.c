/*
 * exec.c: compile a graph for concrete inputs and run it (see exec.h).
 *
 * Compilation: clone the graph, bind the inputs' shapes (and the values of
 * shape-deciding inputs), re-run shape inference so every value is static,
 * let the backend build its steps and declare buffers, plan the buffers into
 * one arena, and let the backend bind its primitives to their addresses.
 *
 * Not here: kernels (src/exec/cpu/), the choice of layouts (the backend's).
 */
#include <stdlib.h>
#include <string.h>

#include "exec_impl.h"
#include "ops/ops.h"

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
    case OT_LOC_INPUT: return x->in_now ? x->in_now[loc.id].data : NULL;
    case OT_LOC_OUTPUT: return x->outs[loc.id].data;
    case OT_LOC_STATE: return x->state ? x->state[loc.id] : NULL;
    default: return NULL;
    }
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
    if (!strcmp(t, "Pad"))
        return k >= 1;
    if (!strcmp(t, "Clip") || !strcmp(t, "Dropout"))
        return k >= 1;
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

/* Mutable copies of state values, before the backend sees the graph. */
static ot_status make_state(ot_exec *x, ot_err *err)
{
    ot_graph *g = x->g;
    for (int32_t v = 0; v < g->n_values; v++) {
        ot_value *val = &g->values[v];
        if (!(val->flags & OT_VAL_STATE))
            continue;
        if (!(val->flags & OT_VAL_INIT) || !val->data.data || !ot_dtype_size(val->dtype))
            return ot_err_set(err, OT_ERR_ARG, "state value '%s' is not an initializer with data",
                              val->name);
        if (!x->state) {
            x->state = ot_calloc((size_t)g->n_values + 1, sizeof *x->state);
            if (!x->state)
                return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
        }
        const ot_exec *sh = x->opts.share_state;
        if (sh) {
            void *p = ot_exec_state(sh, v);
            if (!p || sh->g->values[v].data.bytes != val->data.bytes)
                return ot_err_set(err, OT_ERR_ARG, "state value '%s' is not in the shared executor",
                                  val->name);
            x->state[v] = p;
            x->state_borrowed = true;
            val->flags &= ~(uint32_t)OT_VAL_CONST;
            continue;
        }
        x->state[v] = aligned_alloc(ARENA_ALIGN, (val->data.bytes + ARENA_ALIGN - 1) &
                                                     ~(size_t)(ARENA_ALIGN - 1));
        if (!x->state[v])
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory for '%s'", val->name);
        memcpy(x->state[v], val->data.data, val->data.bytes);
        val->flags &= ~(uint32_t)OT_VAL_CONST; /* nothing may fold or pre-reorder it */
    }
    return OT_OK;
}

void *ot_exec_state(const ot_exec *x, int32_t value)
{
    if (!x->state || value < 0 || value >= x->g->n_values)
        return NULL;
    return x->state[value];
}

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
        t->data = t->bytes ? aligned_alloc(ARENA_ALIGN, (t->bytes + ARENA_ALIGN - 1) &
                                                            ~(size_t)(ARENA_ALIGN - 1))
                           : NULL;
        if (t->bytes && !t->data)
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory for output '%s'", v->name);
        if (t->data)
            memset(t->data, 0, t->bytes);
    }
    return OT_OK;
}

ot_status ot_exec_compile(const ot_graph *g, const ot_exec_input *inputs, int n_inputs,
                          const ot_exec_opts *opts, ot_exec **out, ot_err *err)
{
    ot_status st = OT_OK;
    *out = NULL;
    ot_exec *x = ot_calloc(1, sizeof *x);
    if (!x)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    if (opts)
        x->opts = *opts;
    x->be = &ot_backend_cpu;
    OT_TRY(ot_graph_clone(g, &x->g, err));
    OT_TRY(bind_inputs(x, inputs, n_inputs, err));
    OT_TRY(make_state(x, err));
    OT_TRY(ot_graph_infer_shapes(x->g, err));
    OT_TRY(check_static(x, err));
    OT_TRY(make_outputs(x, err));
    OT_TRY(x->be->build(x, err));
    OT_TRY(ot_plan_assign(x->bufs, x->n_bufs, ARENA_ALIGN, &x->arena_bytes, err));
    if (x->arena_bytes) {
        x->arena = aligned_alloc(ARENA_ALIGN, x->arena_bytes);
        if (!x->arena)
            OT_FAIL(err, OT_ERR_NOMEM, "out of memory for a %zu-byte activation arena",
                    x->arena_bytes);
    }
    OT_TRY(x->be->bind(x, err));
    *out = x;
    x = NULL;
done:
    ot_exec_free(x);
    return st;
}

ot_status ot_exec_run(ot_exec *x, const ot_tensor *inputs, int n_inputs, ot_err *err)
{
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
    x->in_now = inputs;
    ot_status st = x->be->run(x, err);
    x->in_now = NULL;
    return st;
}

int ot_exec_n_outputs(const ot_exec *x) { return x->n_out; }
const ot_tensor *ot_exec_output(const ot_exec *x, int i) { return &x->outs[i]; }
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
    if (x->be && x->be->free)
        x->be->free(x);
    for (int i = 0; i < x->n_out && x->outs; i++)
        free(x->outs[i].data);
    ot_free(x->outs);
    ot_free(x->out_ids);
    ot_free(x->in_ids);
    ot_free(x->in_shapes);
    for (int32_t v = 0; x->state && !x->state_borrowed && v < x->g->n_values; v++)
        free(x->state[v]);
    ot_free(x->state);
    ot_free(x->bufs);
    free(x->arena);
    ot_graph_free(x->g);
    ot_free(x);
}
