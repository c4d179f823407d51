/*
 * batch.c: sets the batch dim a model declares (see batch.h).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "passes/batch.h"

/* The batch dim of one graph input before the rewrite. */
typedef struct batch_dim {
    int64_t dim;      /* >= 0, or OT_DIM_DYNAMIC          */
    const char *name; /* symbol of a dynamic dim, or NULL */
} batch_dim;

typedef struct batch_edit {
    int64_t dim;      /* the new dim 0                    */
    const char *name; /* "N" when dynamic, else NULL      */
    batch_dim *old;   /* the inputs' old dim 0, deduplicated */
    int n_old;
} batch_edit;

static bool same_name(const char *a, const char *b)
{
    if (!a || !b)
        return !a && !b;
    return strcmp(a, b) == 0;
}

static bool is_old_batch(const batch_edit *e, const ot_value *v)
{
    if (v->ndim < 1 || v->ndim > OT_MAX_DIMS)
        return false;
    for (int i = 0; i < e->n_old; i++) {
        if (e->old[i].dim >= 0 ? v->dims[0] == e->old[i].dim
                               : v->dims[0] < 0 && same_name(v->dim_names[0], e->old[i].name))
            return true;
    }
    return false;
}

static void set_batch(const batch_edit *e, ot_value *v)
{
    if (v->dims[0] == e->dim && same_name(v->dim_names[0], e->name))
        return; /* already so: keep the declaration as imported */
    v->dims[0] = e->dim;
    v->dim_names[0] = e->name;
    v->flags |= OT_VAL_SHAPE_DIRTY;
}

static const char *vname(const ot_value *v) { return v->name ? v->name : ""; }

/* Warns about Reshape nodes whose constant target shape starts with an old
   static batch size: they pin the batch no matter what the inputs declare. */
static void warn_fixed_reshapes(const ot_graph *g, const batch_edit *e)
{
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        if (!n->op_type || strcmp(n->op_type, "Reshape") != 0 || n->n_in < 2)
            continue;
        const ot_tensor *t = ot_graph_const(g, n->in[1]);
        if (!t || t->dtype != OT_DTYPE_INT64 || t->ndim != 1 || !t->data || t->bytes < 8)
            continue;
        int64_t first;
        memcpy(&first, t->data, sizeof first);
        for (int k = 0; k < e->n_old; k++) {
            if (e->old[k].dim > 0 && first == e->old[k].dim && first != e->dim) {
                char label[256];
                ot_log(OT_LOG_WARN,
                       "%s has a constant target shape with batch %" PRId64
                       "; the model may not run with another batch size",
                       ot_node_label(g, n, label, sizeof label), first);
                break;
            }
        }
    }
}

/* The largest batch that keeps every value to change within `limit` bytes;
   *worst gets the value that bounds it. */
static int64_t max_batch_within(const ot_graph *g, const bool *change, uint64_t limit,
                                const ot_value **worst)
{
    int64_t max_batch = INT64_MAX;
    for (int32_t i = 0; i < g->n_values; i++) {
        const ot_value *v = &g->values[i];
        if (!change[i])
            continue;
        /* bytes per batch entry; dims of unknown size count as 1, as on import */
        uint64_t per = ot_dtype_size(v->dtype) ? ot_dtype_size(v->dtype) : 1;
        for (int d = 1; d < v->ndim && per; d++)
            if (v->dims[d] >= 0)
                per = (uint64_t)v->dims[d] > limit ? limit + 1 : per * (uint64_t)v->dims[d];
        if (per > limit)
            per = limit + 1; /* checked on import, but keep the product bounded */
        int64_t most = per ? (int64_t)(limit / per) : INT64_MAX;
        if (most < max_batch)
            max_batch = most, *worst = v;
    }
    return max_batch;
}

ot_status ot_pass_set_batch(ot_graph *g, int64_t dim, uint64_t max_bytes, int *n_changed,
                            ot_err *err)
{
    ot_status st = OT_OK;
    bool *change = NULL;
    batch_edit e = { .dim = dim };
    if (n_changed)
        *n_changed = 0;
    if (dim < 1 && dim != OT_DIM_DYNAMIC)
        return ot_err_set(err, OT_ERR_ARG, "a batch size must be at least 1, not %" PRId64, dim);
    e.old = ot_malloc(sizeof *e.old * (size_t)(g->n_inputs > 0 ? g->n_inputs : 1));
    if (!e.old)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    if (dim == OT_DIM_DYNAMIC && !(e.name = ot_arena_strdup(&g->arena, "N")))
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");

    /* The old batch dims, and the inputs that cannot take a new one. */
    for (int32_t i = 0; i < g->n_inputs; i++) {
        const ot_value *v = &g->values[g->inputs[i].value];
        if (v->flags & OT_VAL_INIT)
            continue;
        if (v->ndim < 0 || v->ndim > OT_MAX_DIMS)
            OT_FAIL(err, OT_ERR_ARG, "input '%s' has an unknown rank, so no batch dim to set",
                    vname(v));
        if (v->ndim == 0)
            OT_FAIL(err, OT_ERR_ARG, "input '%s' is a scalar (rank 0) and has no batch dim",
                    vname(v));
        batch_dim b = { v->dims[0], v->dims[0] < 0 ? v->dim_names[0] : NULL };
        bool seen = false;
        for (int k = 0; k < e.n_old; k++)
            seen = seen || (e.old[k].dim == b.dim && same_name(e.old[k].name, b.name));
        if (!seen)
            e.old[e.n_old++] = b;
    }
    if (e.n_old == 0)
        OT_FAIL(err, OT_ERR_ARG, "the model has no graph inputs besides initializers");

    /* Decide for every value before changing any, so that a value listed in
       several places (input and value_info) is judged by its old shape. */
    change = ot_calloc((size_t)(g->n_values > 0 ? g->n_values : 1), sizeof *change);
    if (!change)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < g->n_inputs; i++)
        if (!(g->values[g->inputs[i].value].flags & OT_VAL_INIT))
            change[g->inputs[i].value] = true;
    for (int32_t i = 0; i < g->n_outputs; i++) {
        const ot_value *v = &g->values[g->outputs[i].value];
        if ((v->flags & OT_VAL_INIT) || v->ndim < 1 || v->ndim > OT_MAX_DIMS)
            continue;
        if (is_old_batch(&e, v) || (v->dims[0] < 0 && !v->dim_names[0]))
            change[g->outputs[i].value] = true;
        else if (v->dims[0] >= 0)
            ot_log(OT_LOG_WARN, "setting the batch: output '%s' has dim 0 = %" PRId64
                   ", not the inputs' batch dim; left unchanged", vname(v), v->dims[0]);
        else
            ot_log(OT_LOG_WARN, "setting the batch: output '%s' has dim 0 = %s, not the "
                   "inputs' batch dim; left unchanged", vname(v), v->dim_names[0]);
    }
    for (int32_t i = 0; i < g->n_value_info; i++) {
        const ot_value *v = &g->values[g->value_info[i].value];
        if (!(v->flags & OT_VAL_INIT) && is_old_batch(&e, v))
            change[g->value_info[i].value] = true;
    }
    /* The new shapes must stay within the tensor size limit, or the file
       written would be refused on import. */
    if (dim > 0) {
        uint64_t limit = max_bytes ? max_bytes : OT_DEFAULT_MAX_TENSOR_BYTES;
        const ot_value *worst = NULL;
        int64_t max_batch = max_batch_within(g, change, limit, &worst);
        if (dim > max_batch && max_batch < 1)
            OT_FAIL(err, OT_ERR_ARG, "'%s' exceeds the tensor size limit of %" PRIu64
                    " bytes at any batch size", vname(worst), limit);
        if (dim > max_batch)
            OT_FAIL(err, OT_ERR_ARG, "a batch of %" PRId64 " is too large: '%s' would exceed "
                    "the tensor size limit of %" PRIu64 " bytes; this model accepts a batch of "
                    "1 to %" PRId64 " or a dynamic one", dim, vname(worst), limit, max_batch);
    }
    int n = 0;
    for (int32_t i = 0; i < g->n_values; i++) {
        if (change[i]) {
            set_batch(&e, &g->values[i]);
            n++;
        }
    }
    if (n_changed)
        *n_changed = n;
    warn_fixed_reshapes(g, &e);
done:
    ot_free(change);
    ot_free(e.old);
    return st;
}

ot_status ot_pass_export_batch(ot_graph *g, int64_t dim, bool *made_dynamic, ot_err *err)
{
    if (made_dynamic)
        *made_dynamic = false;
    if (dim != 0)
        return ot_pass_set_batch(g, dim, 0, NULL, err);
    bool fixed = false;
    for (int32_t i = 0; i < g->n_inputs; i++) {
        const ot_value *v = &g->values[g->inputs[i].value];
        if (v->flags & OT_VAL_INIT)
            continue;
        if (v->ndim < 1 || v->ndim > OT_MAX_DIMS)
            return OT_OK;
        fixed = fixed || v->dims[0] >= 0;
    }
    if (!fixed)
        return OT_OK;
    ot_status st = ot_pass_set_batch(g, OT_DIM_DYNAMIC, 0, NULL, err);
    if (st == OT_OK && made_dynamic)
        *made_dynamic = true;
    return st;
}

/* Reshape before opset 5: the target shape is the `shape` attribute (0
   copies the input's dim there too). Returns 1 when its batch was made 0. */
static int batch_reshape_attr(ot_graph *g, ot_node *node, int64_t b)
{
    const ot_value *x = &g->values[node->in[0]];
    if (x->ndim < 1 || x->dims[0] != b)
        return 0;
    for (int32_t k = 0; k < node->n_attrs; k++) {
        ot_attr *a = &node->attrs[k];
        if (strcmp(a->name, "shape") != 0 || a->type != OT_ATTR_INTS || a->n < 1 ||
            a->ints[0] != b)
            continue;
        a->ints[0] = 0;
        memset(&a->raw, 0, sizeof a->raw); /* written from the fields on export */
        return 1;
    }
    return 0;
}

int ot_pass_batch_reshapes(ot_graph *g)
{
    int64_t b = 0;
    for (int32_t i = 0; i < g->n_inputs; i++) {
        const ot_value *v = &g->values[g->inputs[i].value];
        if (v->flags & OT_VAL_INIT)
            continue;
        if (v->ndim < 1 || v->dims[0] < 1 || (b && v->dims[0] != b))
            return 0;
        b = v->dims[0];
    }
    int n = 0;
    for (int32_t i = 0; b && i < g->n_nodes; i++) {
        ot_node *node = &g->nodes[i];
        if (!node->op_type || strcmp(node->op_type, "Reshape") != 0 || node->n_in < 1 ||
            node->in[0] < 0 || ot_node_attr_int(node, "allowzero", 0) != 0)
            continue;
        if (node->n_in == 1) {
            n += batch_reshape_attr(g, node, b);
            continue;
        }
        if (node->in[1] < 0)
            continue;
        const ot_value *x = &g->values[node->in[0]];
        ot_value *s = &g->values[node->in[1]];
        if (!ot_graph_const(g, node->in[1]) || x->ndim < 1 || x->dims[0] != b)
            continue;
        ot_tensor *t = &s->data;
        int64_t first;
        if (t->dtype != OT_DTYPE_INT64 || t->ndim != 1 || !t->data || t->bytes < sizeof first)
            continue;
        memcpy(&first, t->data, sizeof first);
        if (first != b)
            continue;
        first = 0;
        memcpy(t->data, &first, sizeof first);
        n++;
    }
    return n;
}
