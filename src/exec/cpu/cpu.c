/*
 * cpu.c: the CPU backend: steps, layouts, reorders, binding and running.
 *
 * build: walks the nodes in order; a node the shared constant folding marked
 * (OT_NODE_FOLDED, rewrite.c) is skipped; otherwise oneDNN takes it when it
 * can (cpu_dnnl.c), else the plain C kernel (ref.c), else compilation fails
 * naming the node. bind: creates oneDNN memory objects on the planned
 * addresses. run: executes the steps; nothing is allocated.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "cpu.h"
#include "dist/dist.h"

static cpu_state *state(const ot_exec *x) { return x->be_state; }

/* Carves a step's arrays out of one block: n_in inputs and n_out outputs of a
   plain kernel, or n_args arguments of a primitive. */
static ot_status step_arrays(cpu_step *s, int n_in, int n_out, int n_args, ot_err *err)
{
    size_t in = (size_t)n_in, out = (size_t)n_out, args = (size_t)n_args;
    size_t bytes = sizeof *s->tin * (in + out) + sizeof *s->pin * in + sizeof *s->pout * out +
                   sizeof *s->lin * (in + out) + sizeof *s->args * args +
                   sizeof *s->arg_loc * args;
    char *p = ot_calloc(1, bytes ? bytes : 1);
    if (!p)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    s->mem = p;
    /* largest alignment first: tensors, then pointers, then the small records */
    s->tin = (ot_tensor *)(void *)p;
    s->tout = s->tin + in;
    p += sizeof *s->tin * (in + out);
    s->pin = (const ot_tensor **)(void *)p;
    p += sizeof *s->pin * in;
    s->pout = (ot_tensor **)(void *)p;
    p += sizeof *s->pout * out;
    s->args = (dnnl_exec_arg_t *)(void *)p;
    p += sizeof *s->args * args;
    s->lin = (ot_loc *)(void *)p;
    s->lout = s->lin + in;
    p += sizeof *s->lin * (in + out);
    s->arg_loc = (ot_loc *)(void *)p;
    return OT_OK;
}

ot_status cpu_step_add(cpu_state *cs, cpu_step **out, ot_err *err)
{
    if (cs->n_steps == cs->cap_steps) {
        int cap = cs->cap_steps ? cs->cap_steps * 2 : 64;
        cpu_step *ns = ot_realloc(cs->steps, sizeof *ns * (size_t)cap);
        if (!ns)
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
        cs->steps = ns;
        cs->cap_steps = cap;
    }
    cpu_step *s = &cs->steps[cs->n_steps++];
    memset(s, 0, sizeof *s);
    *out = s;
    return OT_OK;
}

ot_status cpu_own(cpu_state *cs, void *p, ot_err *err)
{
    if (cs->n_owned == cs->cap_owned) {
        int cap = cs->cap_owned ? cs->cap_owned * 2 : 32;
        void **no = ot_realloc(cs->owned, sizeof *no * (size_t)cap);
        if (!no) {
            free(p);
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
        }
        cs->owned = no;
        cs->cap_owned = cap;
    }
    cs->owned[cs->n_owned++] = p;
    return OT_OK;
}

ot_status cpu_md_keep(dnnl_memory_desc_t **slot, const dnnl_memory_desc_t *md, ot_err *err)
{
    if (!*slot) {
        *slot = ot_malloc(sizeof **slot);
        if (!*slot)
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    }
    **slot = *md;
    return OT_OK;
}

static size_t value_bytes(const ot_value *v)
{
    size_t n = ot_dtype_size(v->dtype);
    for (int i = 0; i < v->ndim; i++)
        n *= (size_t)v->dims[i]; /* checked static and bounded by import */
    return n;
}

static dnnl_data_type_t dnnl_dt(ot_dtype t)
{
    switch (t) {
    case OT_DTYPE_FLOAT: return dnnl_f32;
    case OT_DTYPE_INT32: return dnnl_s32;
    case OT_DTYPE_INT8: return dnnl_s8;
    case OT_DTYPE_UINT8: return dnnl_u8;
    case OT_DTYPE_BFLOAT16: return dnnl_bf16;
    case OT_DTYPE_FLOAT16: return dnnl_f16;
    default: return dnnl_data_type_undef;
    }
}

void cpu_plain_md(const ot_value *v, dnnl_memory_desc_t *md)
{
    dnnl_dims_t dims, strides;
    int nd = v->ndim ? v->ndim : 1;
    for (int i = 0; i < nd; i++)
        dims[i] = v->ndim ? v->dims[i] : 1;
    dnnl_dim_t s = 1;
    for (int i = nd - 1; i >= 0; i--) {
        strides[i] = s;
        s *= dims[i] ? dims[i] : 1;
    }
    dnnl_data_type_t dt = dnnl_dt(v->dtype);
    if (dt == dnnl_data_type_undef)
        dt = dnnl_u8; /* only used for byte-size reasoning; never computed on */
    if (dnnl_memory_desc_init_by_strides(md, nd, dims, dt, strides) != dnnl_success)
        memset(md, 0, sizeof *md);
}

bool cpu_md_is_plain(const dnnl_memory_desc_t *md, const ot_value *v)
{
    dnnl_memory_desc_t p;
    cpu_plain_md(v, &p);
    return dnnl_memory_desc_equal(md, &p) != 0;
}

void cpu_val_md(const ot_exec *x, int32_t vid, dnnl_memory_desc_t *md)
{
    const cpu_val *cv = &state(x)->vals[vid];
    if (cv->has_md)
        *md = cv->md;
    else
        cpu_plain_md(&x->g->values[vid], md);
}

ot_status cpu_val_define(ot_exec *x, int32_t vid, const dnnl_memory_desc_t *md, ot_loc *loc,
                         ot_err *err)
{
    cpu_state *cs = state(x);
    const ot_value *v = &x->g->values[vid];
    cpu_val *cv = &cs->vals[vid];
    bool plain = !md || cpu_md_is_plain(md, v);
    memset(cv, 0, sizeof *cv);
    if (x->state_out && x->state_out[vid] >= 0) {
        /* the step overwrites a state value in place, in its buffer's layout:
           plain (BN statistics, most parameters) or the one a trained
           convolution weight and its moments are kept in (cpu_state.c) */
        const cpu_val *sv = &cs->vals[x->state_out[vid]];
        OT_ASSERT(sv->has_md ? md && dnnl_memory_desc_equal(md, &sv->md) : plain);
        cv->has_md = sv->has_md;
        cv->md = sv->md;
        cv->loc.kind = OT_LOC_STATE;
        cv->loc.id = x->state_out[vid];
        *loc = cv->loc;
        return OT_OK;
    }
    if (plain && (v->flags & OT_VAL_OUTPUT)) {
        for (int i = 0; i < x->n_out; i++)
            if (x->out_ids[i] == vid) {
                cv->loc.kind = OT_LOC_OUTPUT;
                cv->loc.id = i;
                *loc = cv->loc;
                return OT_OK;
            }
    }
    size_t bytes = value_bytes(v);
    if (md && !plain) {
        size_t mb = dnnl_memory_desc_get_size(md);
        if (mb > bytes)
            bytes = mb;
        cv->has_md = true;
        cv->md = *md;
    }
    int id;
    ot_status st = ot_exec_add_buf(x, bytes, cs->n_steps, cs->n_steps, &id, err);
    if (st != OT_OK)
        return st;
    cv->loc.kind = OT_LOC_BUF;
    cv->loc.id = id;
    *loc = cv->loc;
    return OT_OK;
}

ot_status cpu_prim_step(ot_exec *x, const ot_node *n, const char *what, dnnl_primitive_desc_t pd,
                        int n_args, const int *kinds, const ot_loc *locs,
                        const dnnl_memory_desc_t *mds, ot_err *err)
{
    ot_status st = OT_OK;
    cpu_state *cs = state(x);
    dnnl_primitive_t prim = NULL;
    cpu_step *s;
    CPU_TRY(dnnl_primitive_create(&prim, pd), err, what);
    const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t sp_bytes = sp ? dnnl_memory_desc_get_size(sp) : 0;
    OT_TRY(cpu_step_add(cs, &s, err));
    s->node = n;
    s->what = what;
    s->prim = prim;
    prim = NULL;
    OT_TRY(step_arrays(s, 0, 0, n_args + (sp_bytes ? 1 : 0), err));
    for (int i = 0; i < n_args; i++) {
        s->args[i].arg = kinds[i];
        s->arg_loc[i] = locs[i];
        CPU_TRY(dnnl_memory_create(&s->args[i].memory, &mds[i], cs->eng, DNNL_MEMORY_NONE), err,
                what);
        s->n_args = i + 1;
        if (locs[i].kind == OT_LOC_INPUT)
            s->patch_inputs = true;
    }
    if (sp_bytes) {
        int id;
        OT_TRY(ot_exec_add_buf(x, sp_bytes, cs->n_steps - 1, cs->n_steps - 1, &id, err));
        s = &cs->steps[cs->n_steps - 1];
        s->args[s->n_args].arg = DNNL_ARG_SCRATCHPAD;
        s->arg_loc[s->n_args] = (ot_loc){ .kind = OT_LOC_BUF, .id = id };
        CPU_TRY(dnnl_memory_create(&s->args[s->n_args].memory, sp, cs->eng, DNNL_MEMORY_NONE),
                err, what);
        s->n_args++;
    }
done:
    if (prim)
        dnnl_primitive_destroy(prim);
    dnnl_primitive_desc_destroy(pd);
    return st;
}

ot_status cpu_reorder_into(ot_exec *x, const dnnl_memory_desc_t *src, ot_loc from,
                              const dnnl_memory_desc_t *dst, ot_loc to, ot_err *err)
{
    ot_status st = OT_OK;
    cpu_state *cs = state(x);
    dnnl_primitive_desc_t pd = NULL;
    CPU_TRY(dnnl_reorder_primitive_desc_create(&pd, src, cs->eng, dst, cs->eng, NULL), err,
            "reorder");
    int kinds[2] = { DNNL_ARG_SRC, DNNL_ARG_DST };
    ot_loc locs[2] = { from, to };
    dnnl_memory_desc_t mds[2] = { *src, *dst };
    return cpu_prim_step(x, NULL, "reorder", pd, 2, kinds, locs, mds, err);
done:
    return st;
}

ot_status cpu_reorder_now(const cpu_state *cs, const dnnl_memory_desc_t *src, const void *from,
                          const dnnl_memory_desc_t *dst, void *to, ot_err *err)
{
    ot_status st = OT_OK;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    dnnl_memory_t ms = NULL, md = NULL;
    if (dnnl_reorder_primitive_desc_create(&pd, src, cs->eng, dst, cs->eng, NULL) ||
        dnnl_primitive_create(&prim, pd) ||
        dnnl_memory_create(&ms, src, cs->eng, (void *)(uintptr_t)from) ||
        dnnl_memory_create(&md, dst, cs->eng, to))
        st = ot_err_set(err, OT_ERR_BACKEND, "reorder: oneDNN could not set it up");
    if (st == OT_OK) {
        dnnl_exec_arg_t args[2] = { { DNNL_ARG_SRC, ms }, { DNNL_ARG_DST, md } };
        if (dnnl_primitive_execute(prim, cs->stream, 2, args) || dnnl_stream_wait(cs->stream))
            st = ot_err_set(err, OT_ERR_BACKEND, "reorder: oneDNN failed to run it");
    }
    dnnl_memory_destroy(ms);
    dnnl_memory_destroy(md);
    dnnl_primitive_destroy(prim);
    dnnl_primitive_desc_destroy(pd);
    return st;
}

ot_status cpu_reorder(ot_exec *x, const dnnl_memory_desc_t *src, ot_loc from,
                      const dnnl_memory_desc_t *want, ot_loc *to, ot_err *err)
{
    cpu_state *cs = state(x);
    size_t bytes = dnnl_memory_desc_get_size(want);
    ot_status st = OT_OK;
    if (dnnl_memory_desc_equal(src, want)) {
        *to = from;
        return OT_OK;
    }
    if (from.kind == OT_LOC_CONST) {
        /* constants are reordered once, now, into memory the executor keeps */
        void *buf = aligned_alloc(64, ((bytes ? bytes : 1) + 63) & ~(size_t)63);
        if (!buf)
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
        st = cpu_own(cs, buf, err);
        if (st != OT_OK)
            return st;
        st = cpu_reorder_now(cs, src, from.ptr, want, buf, err);
        to->kind = OT_LOC_CONST;
        to->id = 0;
        to->ptr = buf;
        return st;
    }
    int id;
    st = ot_exec_add_buf(x, bytes, cs->n_steps, cs->n_steps, &id, err);
    if (st != OT_OK)
        return st;
    *to = (ot_loc){ .kind = OT_LOC_BUF, .id = id };
    return cpu_reorder_into(x, src, from, want, *to, err);
}

ot_status cpu_val_as(ot_exec *x, int32_t vid, const dnnl_memory_desc_t *want, ot_loc *loc,
                     ot_err *err)
{
    cpu_state *cs = state(x);
    const ot_value *v = &x->g->values[vid];
    cpu_val *cv = &cs->vals[vid];
    dnnl_memory_desc_t cur;
    cpu_val_md(x, vid, &cur);
    if (dnnl_memory_desc_equal(&cur, want)) {
        *loc = cv->loc;
        return OT_OK;
    }
    if (cpu_md_is_plain(want, v))
        return cpu_val_plain(x, vid, loc, err);
    /* values are written once, so a copy made for an earlier reader serves
       the later ones (its buffer lives until the last of them) */
    if (cv->alt.kind != OT_LOC_NONE && cv->alt_md && dnnl_memory_desc_equal(cv->alt_md, want)) {
        *loc = cv->alt;
        return OT_OK;
    }
    ot_status st = cpu_reorder(x, &cur, cv->loc, want, loc, err);
    if (st == OT_OK)
        st = cpu_md_keep(&cv->alt_md, want, err);
    if (st == OT_OK)
        cv->alt = *loc;
    return st;
}

ot_status cpu_val_plain(ot_exec *x, int32_t vid, ot_loc *loc, ot_err *err)
{
    cpu_state *cs = state(x);
    cpu_val *cv = &cs->vals[vid];
    if (!cv->has_md) {
        *loc = cv->loc;
        return OT_OK;
    }
    if (cv->plain.kind != OT_LOC_NONE) {
        *loc = cv->plain;
        return OT_OK;
    }
    const ot_value *v = &x->g->values[vid];
    dnnl_memory_desc_t p;
    cpu_plain_md(v, &p);
    int id;
    ot_status st = ot_exec_add_buf(x, value_bytes(v), cs->n_steps, cs->n_steps, &id, err);
    if (st != OT_OK)
        return st;
    ot_loc to = { .kind = OT_LOC_BUF, .id = id };
    st = cpu_reorder_into(x, &cv->md, cv->loc, &p, to, err);
    cs->vals[vid].plain = to;
    *loc = to;
    return st;
}

static bool same_shape(const ot_value *a, const ot_value *b)
{
    return a->dtype == b->dtype && ot_value_same_dims(a, b);
}

/* A plain C kernel step. */
static ot_status ref_step(ot_exec *x, int32_t node_id, ot_err *err)
{
    ot_status st = OT_OK;
    cpu_state *cs = state(x);
    const ot_graph *g = x->g;
    const ot_node *n = &g->nodes[node_id];
    char label[400];
    ot_ref_fn fn = ot_ref_kernel(n);
    if (!fn)
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s: no CPU kernel for this op",
                          ot_node_label(g, n, label, sizeof label));
    /* any number of inputs and outputs (Sum, Concat, Max...): the argument
       arrays are sized for the node */
    size_t n_args = (size_t)n->n_in + (size_t)n->n_out + 1;
    ot_loc *lin = ot_calloc(n_args, sizeof *lin), *lout = lin + n->n_in;
    ot_tensor *tin = ot_calloc(n_args, sizeof *tin), *tout = tin + n->n_in;
    const ot_tensor **pin = ot_calloc(n_args, sizeof *pin);
    ot_tensor **pout = ot_calloc(n_args, sizeof *pout);
    if (!lin || !tin || !pin || !pout) {
        st = ot_err_set(err, OT_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* an optimizer update of a weight kept in a layout (cpu_state.c) runs
       elementwise over its operands in that layout: those shaped like the
       weight (gradient, moments) are taken in it, and written in it */
    const dnnl_memory_desc_t *kept = NULL;
    if (cpu_is_update(n) && n->in[0] >= 0 && cs->vals[n->in[0]].has_md &&
        (g->values[n->in[0]].flags & OT_VAL_STATE))
        kept = &cs->vals[n->in[0]].md;
    const ot_value *kv = kept ? &g->values[n->in[0]] : NULL;
    for (int k = 0; k < n->n_in; k++) {
        pin[k] = NULL;
        memset(&lin[k], 0, sizeof lin[k]);
        if (n->in[k] < 0)
            continue;
        const ot_value *v = &g->values[n->in[k]];
        if (kept && same_shape(v, kv))
            OT_TRY(cpu_val_as(x, n->in[k], kept, &lin[k], err));
        else
            OT_TRY(cpu_val_plain(x, n->in[k], &lin[k], err));
        tin[k].dtype = v->dtype;
        tin[k].ndim = v->ndim;
        memcpy(tin[k].dims, v->dims, sizeof tin[k].dims);
        tin[k].bytes = value_bytes(v);
        tin[k].data = lin[k].kind == OT_LOC_CONST ? (void *)(uintptr_t)lin[k].ptr : NULL;
        pin[k] = &tin[k];
    }
    for (int k = 0; k < n->n_out; k++) {
        pout[k] = NULL;
        memset(&lout[k], 0, sizeof lout[k]);
        if (n->out[k] < 0)
            continue;
        const ot_value *v = &g->values[n->out[k]];
        tout[k].dtype = v->dtype;
        tout[k].ndim = v->ndim;
        memcpy(tout[k].dims, v->dims, sizeof tout[k].dims);
        tout[k].bytes = value_bytes(v);
        tout[k].data = NULL;
        pout[k] = &tout[k];
    }
    const char *why = "unsupported";
    if (!ot_ref_supports(g, n, pin, (const ot_tensor *const *)pout, &why)) {
        st = ot_err_set(err, OT_ERR_UNSUPPORTED, "%s: not supported by the CPU backend: %s",
                        ot_node_label(g, n, label, sizeof label), why);
        goto done;
    }
    for (int k = 0; k < n->n_out; k++)
        if (n->out[k] >= 0)
            OT_TRY(cpu_val_define(x, n->out[k],
                                  kept && same_shape(&g->values[n->out[k]], kv) ? kept : NULL,
                                  &lout[k], err));
    cpu_step *s;
    OT_TRY(cpu_step_add(cs, &s, err));
    s->node = n;
    s->what = n->op_type;
    s->fn = fn;
    OT_TRY(step_arrays(s, n->n_in, n->n_out, 0, err));
    s->n_in = n->n_in;
    s->n_out = n->n_out;
    for (int k = 0; k < n->n_in; k++) {
        s->tin[k] = tin[k];
        s->lin[k] = lin[k];
        s->pin[k] = pin[k] ? &s->tin[k] : NULL;
    }
    for (int k = 0; k < n->n_out; k++) {
        s->tout[k] = tout[k];
        s->lout[k] = lout[k];
        s->pout[k] = pout[k] ? &s->tout[k] : NULL;
    }
done:
    ot_free(lin);
    ot_free(tin);
    ot_free(pin);
    ot_free(pout);
    return st;
}

ot_status cpu_fn_step(ot_exec *x, const ot_node *n, const char *what, ot_ref_fn fn, int n_in,
                      const ot_tensor *tin, const ot_loc *lin, int n_out, const ot_tensor *tout,
                      const ot_loc *lout, ot_err *err)
{
    cpu_step *s;
    ot_status st = cpu_step_add(state(x), &s, err);
    if (st != OT_OK)
        return st;
    s->node = n;
    s->what = what;
    s->fn = fn;
    st = step_arrays(s, n_in, n_out, 0, err);
    if (st != OT_OK)
        return st;
    s->n_in = n_in;
    s->n_out = n_out;
    for (int k = 0; k < n_in; k++) {
        s->tin[k] = tin[k];
        s->lin[k] = lin[k];
        s->pin[k] = lin[k].kind != OT_LOC_NONE ? &s->tin[k] : NULL;
    }
    for (int k = 0; k < n_out; k++) {
        s->tout[k] = tout[k];
        s->lout[k] = lout[k];
        s->pout[k] = lout[k].kind != OT_LOC_NONE ? &s->tout[k] : NULL;
    }
    return OT_OK;
}

static ot_status cpu_build(ot_exec *x, ot_err *err)
{
    ot_status st = OT_OK;
    ot_graph *g = x->g;
    cpu_state *cs = ot_calloc(1, sizeof *cs);
    if (!cs)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    x->be_state = cs;
    CPU_TRY(dnnl_engine_create(&cs->eng, dnnl_cpu, 0), err, "cpu");
    CPU_TRY(dnnl_stream_create(&cs->stream, cs->eng, dnnl_stream_default_flags), err, "cpu");
#ifdef _OPENMP
    {
        int threads = x->opts.cpu.threads;
        if (threads <= 0 && !getenv("OMP_NUM_THREADS"))
            threads = omp_get_num_procs();
        if (threads > 0)
            omp_set_num_threads(threads);
    }
#endif
    cs->vals = ot_calloc((size_t)g->n_values + 1, sizeof *cs->vals);
    cs->copy_out = ot_malloc(sizeof *cs->copy_out * ((size_t)x->n_out + 1));
    cs->skip = ot_calloc((size_t)g->n_nodes + 1, 1);
    if (!cs->vals || !cs->copy_out || !cs->skip)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    for (int32_t v = 0; v < g->n_values; v++) {
        const ot_value *val = &g->values[v];
        cpu_val *cv = &cs->vals[v];
        if (val->flags & OT_VAL_STATE) {
            cv->loc.kind = OT_LOC_STATE;
            cv->loc.id = v;
        } else if (val->flags & OT_VAL_CONST) {
            cv->loc.kind = OT_LOC_CONST;
            cv->loc.ptr = val->data.data;
        }
    }
    for (int i = 0; i < x->n_in; i++) {
        cpu_val *cv = &cs->vals[x->in_ids[i]];
        if (cv->loc.kind == OT_LOC_NONE) {
            cv->loc.kind = OT_LOC_INPUT;
            cv->loc.id = i;
        }
    }
    for (int32_t i = 0; i < g->n_nodes; i++)
        if (ot_node_is(&g->nodes[i], OT_OP_CONV_GRAD_DATA) ||
            ot_node_is(&g->nodes[i], OT_OP_CONV_GRAD_FILTER))
            cs->training = true;
    cs->bf16 = x->opts.precision == OT_PRECISION_BF16 && ot_cpu_has_bf16();
    if (x->opts.precision == OT_PRECISION_AUTO && !x->opts.cpu.plain_only)
        cs->bf16 = cpu_auto_bf16(x, cs);
    x->precision = cs->bf16 ? OT_PRECISION_BF16 : OT_PRECISION_FP32;
    cs->wino = x->opts.cpu.winograd && !cs->training && !cs->bf16 && !x->opts.cpu.plain_only &&
               cpu_wino_enabled();
    cs->wino_blk = cs->wino && cpu_dnnl_wino_any(x);

    OT_TRY(cpu_state_plan(x, err));
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        if (cs->skip[i] || (n->flags & OT_NODE_FOLDED))
            continue;
        bool done = false;
        if (!x->opts.cpu.plain_only)
            OT_TRY(cpu_dnnl_node(x, i, &done, err));
        if (!done)
            OT_TRY(ref_step(x, i, err));
    }
    /* graph outputs not written in place: reorder or copy after the steps */
    for (int i = 0; i < x->n_out; i++) {
        int32_t vid = x->out_ids[i];
        cpu_val *cv = &cs->vals[vid];
        cs->copy_out[i] = -1;
        if (cv->loc.kind == OT_LOC_OUTPUT && cv->loc.id == i)
            continue;
        if (cv->has_md) {
            dnnl_memory_desc_t p;
            cpu_plain_md(&g->values[vid], &p);
            OT_TRY(cpu_reorder_into(x, &cv->md, cv->loc, &p,
                                (ot_loc){ .kind = OT_LOC_OUTPUT, .id = i }, err));
        } else {
            cs->copy_out[i] = vid; /* an input, a constant, or a second listing */
        }
    }
    x->n_steps = cs->n_steps;
    /* lifetimes: every step that reads or writes a buffer */
    for (int s = 0; s < cs->n_steps; s++) {
        const cpu_step *sp = &cs->steps[s];
        for (int k = 0; k < sp->n_in; k++)
            if (sp->lin[k].kind == OT_LOC_BUF)
                ot_exec_buf_touch(x, sp->lin[k].id, s);
        for (int k = 0; k < sp->n_out; k++)
            if (sp->lout[k].kind == OT_LOC_BUF)
                ot_exec_buf_touch(x, sp->lout[k].id, s);
        for (int k = 0; k < sp->n_args; k++)
            if (sp->arg_loc[k].kind == OT_LOC_BUF)
                ot_exec_buf_touch(x, sp->arg_loc[k].id, s);
    }
    for (int i = 0; i < x->n_out; i++)
        if (cs->copy_out[i] >= 0 && cs->vals[cs->copy_out[i]].loc.kind == OT_LOC_BUF)
            ot_exec_buf_touch(x, cs->vals[cs->copy_out[i]].loc.id, cs->n_steps);
done:
    return st;
}

static ot_status cpu_bind(ot_exec *x, ot_err *err)
{
    ot_status st = OT_OK;
    cpu_state *cs = state(x);
    for (int s = 0; s < cs->n_steps; s++) {
        cpu_step *sp = &cs->steps[s];
        /* the steps array moved while it grew: point into its final place */
        for (int k = 0; k < sp->n_in; k++)
            if (sp->pin[k]) {
                sp->pin[k] = &sp->tin[k];
                sp->tin[k].data = ot_exec_loc_ptr(x, sp->lin[k]);
            }
        for (int k = 0; k < sp->n_out; k++)
            if (sp->pout[k]) {
                sp->pout[k] = &sp->tout[k];
                sp->tout[k].data = ot_exec_loc_ptr(x, sp->lout[k]);
            }
        for (int k = 0; k < sp->n_args; k++) {
            void *p = ot_exec_loc_ptr(x, sp->arg_loc[k]);
            if (p) /* inputs get theirs per run (patch_inputs) */
                CPU_TRY(dnnl_memory_set_data_handle(sp->args[k].memory, p), err, sp->what);
        }
    }
    st = cpu_state_bind(x, err);
done:
    return st;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static ot_status cpu_run(ot_exec *x, ot_err *err)
{
    ot_status st = OT_OK;
    cpu_state *cs = state(x);
    bool prof = x->opts.profile;
    double t0 = prof ? now_seconds() : 0;
    /* data-parallel: gradient reductions started by earlier nodes move on
       between the nodes (docs/distributed.md, "Overlap") */
    ot_comm *comm = ot_dist_current();
    for (int s = 0; s < cs->n_steps; s++) {
        cpu_step *sp = &cs->steps[s];
        if (s > 0)
            ot_comm_progress(comm);
        if (prof && s > 0) {
            CPU_TRY(dnnl_stream_wait(cs->stream), err, "cpu");
            double t1 = now_seconds();
            cs->steps[s - 1].seconds += t1 - t0;
            cs->steps[s - 1].runs++;
            t0 = t1;
        }
        if (sp->fn) {
            for (int k = 0; k < sp->n_in; k++)
                if (sp->pin[k] && sp->lin[k].kind == OT_LOC_INPUT)
                    sp->tin[k].data = ot_exec_loc_ptr(x, sp->lin[k]);
            OT_TRY(sp->fn(x->g, sp->node, sp->pin, sp->pout, err));
            continue;
        }
        if (sp->patch_inputs)
            for (int k = 0; k < sp->n_args; k++)
                if (sp->arg_loc[k].kind == OT_LOC_INPUT)
                    CPU_TRY(dnnl_memory_set_data_handle(sp->args[k].memory,
                                                        ot_exec_loc_ptr(x, sp->arg_loc[k])),
                            err, sp->what);
        CPU_TRY(dnnl_primitive_execute(sp->prim, cs->stream, sp->n_args, sp->args), err,
                sp->what);
    }
    CPU_TRY(dnnl_stream_wait(cs->stream), err, "cpu");
    if (prof && cs->n_steps > 0) {
        cs->steps[cs->n_steps - 1].seconds += now_seconds() - t0;
        cs->steps[cs->n_steps - 1].runs++;
    }
    for (int i = 0; i < x->n_out; i++) {
        int32_t vid = cs->copy_out[i];
        if (vid < 0 || !x->outs[i].bytes)
            continue;
        const void *src = ot_exec_loc_ptr(x, cs->vals[vid].loc);
        memcpy(x->outs[i].data, src, x->outs[i].bytes);
    }
done:
    return st;
}

static void cpu_step_profile(const ot_exec *x, int i, ot_exec_step_time *out)
{
    const cpu_step *sp = &state(x)->steps[i];
    out->node = sp->node ? sp->node->name : NULL;
    out->kind = sp->what;
    out->kernel = sp->fn ? "plain" : "onednn";
    out->runs = sp->runs;
    out->seconds = sp->seconds;
}

static void cpu_free(ot_exec *x)
{
    cpu_state *cs = state(x);
    if (!cs)
        return;
    for (int s = 0; s < cs->n_steps; s++) {
        cpu_step *sp = &cs->steps[s];
        for (int k = 0; k < sp->n_args; k++)
            if (sp->args[k].memory)
                dnnl_memory_destroy(sp->args[k].memory);
        if (sp->prim)
            dnnl_primitive_destroy(sp->prim);
        ot_free(sp->mem);
    }
    for (int i = 0; i < cs->n_owned; i++)
        free(cs->owned[i]);
    for (int32_t v = 0; cs->vals && v < x->g->n_values; v++) {
        ot_free(cs->vals[v].alt_md);
        ot_free(cs->vals[v].aux_md);
    }
    ot_free(cs->owned);
    ot_free(cs->steps);
    ot_free(cs->vals);
    ot_free(cs->copy_out);
    ot_free(cs->skip);
    ot_free(cs->state_update);
    if (cs->stream)
        dnnl_stream_destroy(cs->stream);
    if (cs->eng)
        dnnl_engine_destroy(cs->eng);
    ot_free(cs);
    x->be_state = NULL;
}

/* Zeroed, 64-byte aligned memory from calloc, which hands large blocks out
   as fresh zero pages without writing them (a multi-gigabyte arena costs
   nothing until a step touches it); the block's own address sits just before
   the aligned one. */
static ot_status cpu_mem_alloc(ot_exec *x, size_t bytes, void **out, ot_err *err)
{
    (void)x;
    size_t size;
    if (!ot_size_add(bytes, 64 + sizeof(void *), &size))
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory for %zu bytes", bytes);
    char *block = calloc(1, size);
    if (!block)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory for %zu bytes", bytes);
    uintptr_t at = ((uintptr_t)block + sizeof(void *) + 63) & ~(uintptr_t)63;
    void **p = (void **)at;
    p[-1] = block;
    *out = p;
    return OT_OK;
}

static void cpu_mem_free(ot_exec *x, void *p)
{
    (void)x;
    if (p)
        free(((void **)p)[-1]);
}

static ot_status cpu_copy_in(ot_exec *x, void *dst, const void *src, size_t bytes, ot_err *err)
{
    (void)x, (void)err;
    memcpy(dst, src, bytes);
    return OT_OK;
}

static ot_status cpu_copy_out(const ot_exec *x, void *dst, const void *src, size_t bytes,
                              ot_err *err)
{
    (void)x, (void)err;
    memcpy(dst, src, bytes);
    return OT_OK;
}

/* Every node whose outputs inference folded is skipped; BN folding and the
   fusion rules go with the oneDNN path, which maps them to post-ops. */
static unsigned cpu_rewrites(const ot_exec *x)
{
    unsigned r = OT_REWRITE_CONST;
    if (!x->opts.cpu.plain_only && !x->opts.cpu.no_fusion)
        r |= OT_REWRITE_BN_FOLD | OT_REWRITE_FUSE;
    return r;
}

/* bf16 needs oneDNN's AVX-512 kernels. Without AVX512-BF16 or AMX they
   emulate the bf16 products with fp32 FMAs: the same numbers, more slowly;
   that is allowed (auto never picks it there). TF32 is a GPU tensor-core
   format and the x86 kernels have no fp16 arithmetic. */
static ot_status cpu_precision(ot_precision p, ot_err *err)
{
    if (p == OT_PRECISION_TF32)
        return ot_err_set(err, OT_ERR_UNSUPPORTED,
                          "TF32 is a GPU tensor-core format, the CPU has no TF32 arithmetic "
                          "(use fp32, bf16 or auto)");
    if (p == OT_PRECISION_FP16)
        return ot_err_set(err, OT_ERR_UNSUPPORTED,
                          "the CPU kernels (oneDNN 2.6 on x86) have no fp16 arithmetic "
                          "(use bf16, fp32 or auto)");
    if (p == OT_PRECISION_BF16 && !ot_cpu_has_bf16())
        return ot_err_set(err, OT_ERR_UNSUPPORTED,
                          "this CPU has no AVX-512, which oneDNN's bf16 kernels need "
                          "(use fp32 or auto)");
    return OT_OK;
}

bool ot_cpu_has_bf16(void)
{
    unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    return (isa & (unsigned)dnnl_cpu_isa_avx512_core) == (unsigned)dnnl_cpu_isa_avx512_core;
}

bool cpu_wino_enabled(void)
{
    /* oneDNN 2.6's fp32 Winograd kernels are AVX-512 ones (avx512_core) */
    unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    const char *e = getenv("ONNXTRAIN_WINOGRAD");
    return (isa & (unsigned)dnnl_cpu_isa_avx512_core) == (unsigned)dnnl_cpu_isa_avx512_core &&
           !(e && !strcmp(e, "0"));
}

bool ot_cpu_bf16_native(void)
{
    unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    return (isa & (unsigned)dnnl_cpu_isa_avx512_core_bf16) ==
           (unsigned)dnnl_cpu_isa_avx512_core_bf16;
}

const ot_backend ot_backend_cpu = {
    .name = "cpu",
    .host_visible = true,
    .rewrites = cpu_rewrites,
    .mem_alloc = cpu_mem_alloc,
    .mem_free = cpu_mem_free,
    .copy_in = cpu_copy_in,
    .copy_out = cpu_copy_out,
    .build = cpu_build,
    .bind = cpu_bind,
    .run = cpu_run,
    .step_profile = cpu_step_profile,
    .state_copy = cpu_state_copy,
    .precision = cpu_precision,
    .free = cpu_free,
};
