/*
 * quant_edit.c: the graph edits the precision converters share: new nodes,
 * constants and activations, and dropping the initializers they replaced.
 */
#include <math.h>
#include <string.h>

#include "converters/edit.h"
#include "converters/quant.h"
#include "ops/grad_util.h"

ot_status ot_calib_ranges_init(ot_calib_ranges *r, int32_t n_values, ot_err *err)
{
    memset(r, 0, sizeof *r);
    size_t n = n_values > 0 ? (size_t)n_values : 1;
    r->amax = ot_malloc(n * sizeof *r->amax);
    r->lo = ot_malloc(n * sizeof *r->lo);
    r->hi = ot_malloc(n * sizeof *r->hi);
    if (!r->amax || !r->lo || !r->hi) {
        ot_calib_ranges_fini(r);
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory for the ranges of %d values",
                          (int)n_values);
    }
    for (size_t i = 0; i < n; i++)
        r->amax[i] = r->lo[i] = r->hi[i] = NAN;
    r->n_values = n_values;
    return OT_OK;
}

void ot_calib_ranges_fini(ot_calib_ranges *r)
{
    ot_free(r->amax);
    ot_free(r->lo);
    ot_free(r->hi);
    memset(r, 0, sizeof *r);
}

ot_status ot_quant_add_const(ot_graph *g, const char *hint, ot_dtype dtype, const int64_t *dims,
                             int ndim, const void *data, int32_t *id, ot_err *err)
{
    size_t numel = 1;
    for (int i = 0; i < ndim; i++)
        numel *= (size_t)dims[i];
    size_t bytes = numel * ot_dtype_size(dtype);
    void *copy = ot_malloc(bytes ? bytes : 1);
    if (!copy)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory for constant '%s'", hint);
    memcpy(copy, data, bytes);
    return cv_add_init(g, hint, dtype, ndim, dims, copy, bytes, id, err);
}

ot_status ot_quant_add_like(ot_graph *g, const char *hint, int32_t src, ot_dtype dtype,
                            int32_t *id, ot_err *err)
{
    ot_status st = ot_op_grad_new_value(g, hint, id, err);
    if (st != OT_OK)
        return st;
    const ot_value *s = &g->values[src];
    ot_value *v = &g->values[*id];
    v->dtype = dtype;
    v->ndim = s->ndim;
    for (int i = 0; i < s->ndim && i < OT_MAX_DIMS; i++) {
        v->dims[i] = s->dims[i];
        v->dim_names[i] = s->dim_names[i];
    }
    v->producer = -1;
    return OT_OK;
}

int ot_quant_n_readers(const ot_graph *g, int32_t v)
{
    int n = 0;
    for (int32_t i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++)
            n += g->nodes[i].in[k] == v;
    return n;
}

/* Keeps the entries of an io list whose value is not dropped. */
static void filter_io(ot_io *io, int32_t *n, const bool *drop)
{
    int32_t k = 0;
    for (int32_t i = 0; i < *n; i++)
        if (!drop[io[i].value])
            io[k++] = io[i];
    *n = k;
}

void ot_quant_drop_inits(ot_graph *g, const bool *cand)
{
    bool *drop = ot_calloc((size_t)g->n_values + 1, sizeof *drop);
    if (!drop)
        return; /* the file keeps an unused initializer: harmless */
    for (int32_t i = 0; i < g->n_inits; i++) {
        int32_t v = g->inits[i];
        drop[v] = cand[v] && !(g->values[v].flags & OT_VAL_OUTPUT);
    }
    for (int32_t i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] >= 0)
                drop[g->nodes[i].in[k]] = false;
    int32_t k = 0;
    for (int32_t i = 0; i < g->n_inits; i++)
        if (!drop[g->inits[i]])
            g->inits[k++] = g->inits[i];
    g->n_inits = k;
    filter_io(g->inputs, &g->n_inputs, drop);
    filter_io(g->value_info, &g->n_value_info, drop);
    for (int32_t v = 0; v < g->n_values; v++)
        if (drop[v]) {
            ot_value *x = &g->values[v];
            if (!g->borrows_data)
                ot_free(x->data.data);
            x->data.data = NULL;
            x->data.bytes = 0;
            x->flags &= ~(uint32_t)(OT_VAL_INIT | OT_VAL_INPUT | OT_VAL_CONST | OT_VAL_PARAM);
        }
    ot_free(drop);
}
