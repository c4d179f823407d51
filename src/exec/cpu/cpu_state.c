/*
 * cpu_state.c: trained convolution weights kept in their forward
 * convolution's layout between steps.
 *
 * In a training step a trained Conv weight P is read by its forward
 * convolution, by its backward-data convolution, and overwritten in place by
 * its optimizer update (SgdStep, AdamStep, AdamWStep) from the gradient G
 * (ConvGradFilter's output, in the backward-weights primitive's layout) and
 * the moments (Adam's M and V, SGD's momentum buffer). Kept plain, every step
 * reorders P into the forward layout, P into the backward-data layout, and G
 * back to plain for the update. Kept in the forward layout, with the moments
 * in the same layout, the update runs elementwise over the buffers as they
 * are; what is left is the backward-data reorder, and G's when the
 * backward-weights primitive writes another layout than the forward one.
 *
 * Only layouts without padding are kept (the same bytes as the plain tensor,
 * e.g. OIhw16i16o for channels that are multiples of 16): the elementwise
 * updates then cover exactly the tensor's elements and no padding lane
 * exists to reach them. Grouped convolutions keep their weights plain.
 *
 * cpu_state_plan, before the steps are built, marks the weights that may be
 * kept (the first node reading P is a Conv with group 1 taking it as its
 * weights, the update is P's in-place writer, and each moment is read by the
 * update alone); cpu_state_keep, called by that Conv once its primitive is
 * chosen, fixes the layout of P and of its moments. Executors sharing state
 * (opts.share_state: the last, smaller batch) take the owner's layouts, so
 * they agree on the bytes. The state buffers are filled plain and reordered
 * when bound; ot_exec_read_state / ot_exec_write_state (checkpoints, export,
 * evaluation, data-parallel broadcasts) convert through cpu_state_copy, so
 * everything outside the executor sees plain row-major tensors.
 */
#include <string.h>

#include "cpu.h"

bool cpu_is_update(const ot_node *n)
{
    return ot_node_is(n, OT_OP_SGD_STEP) || ot_node_is(n, OT_OP_ADAM_STEP) ||
           ot_node_is(n, OT_OP_ADAMW_STEP);
}

/* Flagged state (its buffer is allocated after the build). */
static bool is_state(const ot_graph *g, int32_t v)
{
    return v >= 0 && (g->values[v].flags & OT_VAL_STATE) != 0;
}

/* Whether node u (an update of P) may keep P and its moments in a layout:
   P is float state of rank 3-5 that u overwrites in place, first read by a
   Conv with group 1 as its weights, and every other state operand of u is
   shaped like P and read by u alone. */
static bool may_keep(const ot_exec *x, const int32_t *first, const int32_t *readers, int32_t u)
{
    const ot_graph *g = x->g;
    const ot_node *n = &g->nodes[u];
    int32_t p = n->in[0];
    if (!is_state(g, p) || !x->state_out || n->out[0] < 0 || x->state_out[n->out[0]] != p)
        return false;
    const ot_value *pv = &g->values[p];
    if (pv->dtype != OT_DTYPE_FLOAT || pv->ndim < 3 || pv->ndim > 5 || first[p] < 0)
        return false;
    const ot_node *conv = &g->nodes[first[p]];
    if (!ot_node_is(conv, OT_OP_CONV) || conv->n_in < 2 || conv->in[1] != p ||
        conv->in[0] == p || ot_node_attr_int(conv, "group", 1) != 1)
        return false;
    for (int k = 1; k < n->n_in; k++) {
        int32_t v = n->in[k];
        if (!is_state(g, v))
            continue;
        if (v == p || readers[v] != 1 || !ot_value_same_dims(&g->values[v], pv))
            return false;
    }
    return true;
}

ot_status cpu_state_plan(ot_exec *x, ot_err *err)
{
    cpu_state *cs = x->be_state;
    const ot_graph *g = x->g;
    if (!x->state)
        return OT_OK;
    if (x->state_borrowed) {
        /* the owner chose: its buffers are laid out that way */
        const ot_exec *sh = x->opts.share_state;
        const cpu_state *own = sh->be_state;
        for (int32_t v = 0; v < g->n_values; v++)
            if (is_state(g, v) && own->vals[v].has_md &&
                ot_value_same_dims(&g->values[v], &sh->g->values[v])) {
                cs->vals[v].has_md = true;
                cs->vals[v].md = own->vals[v].md;
            }
        return OT_OK;
    }
    if (!cs->training || x->opts.cpu.plain_only || x->opts.cpu.plain_state)
        return OT_OK;
    ot_status st = OT_OK;
    size_t nv = (size_t)g->n_values + 1;
    int32_t *first = ot_malloc(sizeof *first * nv), *readers = ot_calloc(nv, sizeof *readers);
    cs->state_update = ot_malloc(sizeof *cs->state_update * nv);
    if (!first || !readers || !cs->state_update) {
        st = ot_err_set(err, OT_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t v = 0; v < nv; v++)
        first[v] = cs->state_update[v] = -1;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        if (n->flags & OT_NODE_FOLDED)
            continue;
        for (int k = 0; k < n->n_in; k++) {
            int32_t v = n->in[k];
            if (v < 0)
                continue;
            if (first[v] < 0)
                first[v] = i;
            readers[v]++;
        }
    }
    for (int32_t i = 0; i < g->n_nodes; i++)
        if (cpu_is_update(&g->nodes[i]) && !(g->nodes[i].flags & OT_NODE_FOLDED) &&
            may_keep(x, first, readers, i))
            cs->state_update[g->nodes[i].in[0]] = i;
done:
    ot_free(first);
    ot_free(readers);
    return st;
}

void cpu_state_keep(ot_exec *x, int32_t p, const dnnl_memory_desc_t *weights)
{
    cpu_state *cs = x->be_state;
    if (!cs->state_update || cs->state_update[p] < 0)
        return;
    const ot_node *u = &x->g->nodes[cs->state_update[p]];
    cs->state_update[p] = -1; /* decided, by the first reader */
    const ot_value *pv = &x->g->values[p];
    dnnl_memory_desc_t md = *weights, plain;
    md.data_type = dnnl_f32; /* master weights stay fp32 under --precision bf16 */
    cpu_plain_md(pv, &plain);
    if (dnnl_memory_desc_equal(&md, &plain) ||
        dnnl_memory_desc_get_size(&md) != dnnl_memory_desc_get_size(&plain))
        return; /* plain already, or padded */
    for (int k = 0; k < u->n_in; k++) {
        int32_t v = u->in[k];
        if (is_state(x->g, v)) {
            cs->vals[v].has_md = true;
            cs->vals[v].md = md;
        }
    }
}

/* Reorders host data between plain row-major and a kept layout. */
static ot_status reorder_state(const ot_exec *x, int32_t v, const void *from, void *to,
                               bool to_plain, ot_err *err)
{
    const cpu_state *cs = x->be_state;
    dnnl_memory_desc_t plain;
    cpu_plain_md(&x->g->values[v], &plain);
    const dnnl_memory_desc_t *kept = &cs->vals[v].md;
    return cpu_reorder_now(cs, to_plain ? kept : &plain, from, to_plain ? &plain : kept, to,
                           err);
}

ot_status cpu_state_bind(ot_exec *x, ot_err *err)
{
    ot_status st = OT_OK;
    const cpu_state *cs = x->be_state;
    const ot_graph *g = x->g;
    for (int32_t v = 0; x->state && !x->state_borrowed && v < g->n_values; v++)
        if (x->state[v] && cs->vals[v].has_md && cs->vals[v].loc.kind == OT_LOC_STATE &&
            g->values[v].data.data) /* without bytes: zeros, the same in any layout */
            OT_TRY(reorder_state(x, v, g->values[v].data.data, x->state[v], false, err));
done:
    return st;
}

ot_status cpu_state_copy(const ot_exec *x, int32_t v, void *host, bool to_host, bool *done,
                         ot_err *err)
{
    const cpu_state *cs = x->be_state;
    const cpu_val *cv = &cs->vals[v];
    *done = cv->has_md && cv->loc.kind == OT_LOC_STATE;
    if (!*done)
        return OT_OK;
    return to_host ? reorder_state(x, v, x->state[v], host, true, err)
                   : reorder_state(x, v, host, x->state[v], false, err);
}
