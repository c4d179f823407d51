/*
 * fp16.c: float16 export (ot_fp16_convert).
 *
 * Every node is given a precision: float16, float32 (an island), or none
 * (it has no float operand: Shape, integer arithmetic). Each float value then
 * has a home dtype, the one its producer writes (graph inputs: float32 while
 * the I/O types are kept; initializers: float16 when every reader is a
 * float16 node), and a reader that wants the other dtype reads a Cast of it,
 * made once per value and direction. A value made by a Cast in the model is
 * not cast again: the new Cast reads that Cast's input instead, so no Cast
 * ever reads another Cast's output. Graph outputs produced in float16 get a
 * final Cast to float32 under their own name while the I/O types are kept.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "converters/edit.h"
#include "converters/quant.h"
#include "ops/ops.h"

enum { PREC_NONE = 0, PREC_16, PREC_32 };

static bool is_type(const ot_node *n, const char *t)
{
    return n->op_type && strcmp(n->op_type, t) == 0 && ot_domain_is_default(n->domain);
}

static bool is_float(const ot_graph *g, int32_t v)
{
    return v >= 0 && g->values[v].dtype == OT_DTYPE_FLOAT;
}

/* Ops whose results lose accuracy in float16: kept float32 always. */
static bool is_island_op(const ot_node *n)
{
    static const char *const ops[] = {
        "Softmax", "LogSoftmax", "BatchNormalization", "InstanceNormalization",
        "LayerNormalization", "GroupNormalization", "LpNormalization", "Exp", "Log", "Pow",
        "CumSum", "Constant", NULL,
    };
    for (int i = 0; ops[i]; i++)
        if (is_type(n, ops[i]))
            return true;
    return !n->op; /* not in the op table: its dtype rules are unknown here */
}

/* Elements each output element of a reduction sums over; -1 when unknown,
   0 when the node is not a reduction. */
static int64_t reduce_extent(const ot_graph *g, const ot_node *n)
{
    if (!n->op_type || strncmp(n->op_type, "Reduce", 6) != 0) {
        if (!is_type(n, "GlobalAveragePool") && !is_type(n, "GlobalLpPool"))
            return 0;
        const ot_value *x = &g->values[n->in[0]];
        int64_t e = 1;
        for (int d = 2; d < x->ndim; d++)
            e = x->dims[d] < 0 ? -1 : e * x->dims[d];
        return x->ndim < 2 ? -1 : e;
    }
    if (is_type(n, "ReduceMax") || is_type(n, "ReduceMin"))
        return 0; /* exact in any precision */
    const ot_value *x = &g->values[n->in[0]];
    if (x->ndim < 0)
        return -1;
    size_t n_axes = 0;
    const int64_t *axes = ot_node_attr_ints(n, "axes", &n_axes);
    const ot_tensor *at = NULL;
    if (!axes && n->n_in >= 2 && n->in[1] >= 0) {
        at = ot_graph_const(g, n->in[1]);
        if (!at || at->dtype != OT_DTYPE_INT64)
            return -1;
        n_axes = (size_t)ot_tensor_numel(at);
    }
    bool all = n_axes == 0;
    int64_t e = 1;
    for (int d = 0; d < x->ndim; d++) {
        bool in_axes = all;
        for (size_t k = 0; k < n_axes && !in_axes; k++) {
            int64_t a = axes ? axes[k] : ot_tensor_get_i64(at, (int64_t)k);
            in_axes = a == d || a + x->ndim == d;
        }
        if (in_axes)
            e = x->dims[d] < 0 ? -1 : e * x->dims[d];
        if (e < 0)
            return -1;
    }
    return e;
}

/* Whether |x| of a value exceeds float16: measured (ranges) for
   activations, read from the bytes for float initializers. */
static bool beyond_fp16(const ot_graph *g, int32_t v, const ot_calib_ranges *r)
{
    if (v < 0)
        return false;
    const ot_value *x = &g->values[v];
    if ((x->flags & OT_VAL_INIT) && x->dtype == OT_DTYPE_FLOAT && x->data.data) {
        const float *p = x->data.data;
        int64_t n = ot_tensor_numel(&x->data);
        for (int64_t i = 0; i < n; i++)
            if (fabsf(p[i]) > OT_FP16_MAX)
                return true;
        return false;
    }
    return r && v < r->n_values &&
           (fabsf(r->lo[v]) > OT_FP16_MAX || fabsf(r->hi[v]) > OT_FP16_MAX);
}

/* Whether a node reads or writes a value beyond float16. */
static bool out_of_range(const ot_graph *g, const ot_node *n, const ot_calib_ranges *r)
{
    for (int k = 0; k < n->n_in; k++)
        if (beyond_fp16(g, n->in[k], r))
            return true;
    for (int k = 0; k < n->n_out; k++)
        if (beyond_fp16(g, n->out[k], r))
            return true;
    return false;
}

static int node_prec(const ot_graph *g, const ot_node *n, const ot_fp16_opts *o, bool *range_kept)
{
    bool any_float = false, unknown_in = false;
    for (int k = 0; k < n->n_in; k++) {
        any_float |= is_float(g, n->in[k]);
        unknown_in |= n->in[k] >= 0 && g->values[n->in[k]].dtype == OT_DTYPE_UNDEFINED;
    }
    for (int k = 0; k < n->n_out; k++)
        any_float |= is_float(g, n->out[k]);
    if (!any_float)
        return PREC_NONE;
    if (is_type(n, "Cast") || is_type(n, "Shape") || is_type(n, "Size"))
        return PREC_NONE;
    if (is_island_op(n) || unknown_in)
        return PREC_32;
    int64_t e = reduce_extent(g, n);
    int64_t max_reduce = o->max_reduce > 0 ? o->max_reduce : 4096;
    if (e < 0 || e > max_reduce)
        return PREC_32;
    if (out_of_range(g, n, o->ranges)) {
        *range_kept = true;
        return PREC_32;
    }
    return PREC_16;
}

/* Sets a Cast node's `to`. */
static ot_status set_cast_to(ot_graph *g, int32_t node, ot_dtype to, ot_err *err)
{
    if (ot_node_attr_int(&g->nodes[node], "to", 0) == to)
        return OT_OK;
    return cv_set_attr_int(g, node, "to", to, err);
}

/* Whether value v has readers among the first NN nodes and all of them are
   float16 nodes. */
static bool read_in_16(const ot_graph *g, int32_t v, const uint8_t *prec, int32_t NN)
{
    int readers = 0;
    for (int32_t i = 0; i < NN; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] == v) {
                if (prec[i] != PREC_16)
                    return false;
                readers++;
            }
    return readers > 0;
}

static ot_status add_cast(ot_graph *g, int32_t src, ot_dtype to, const char *out_name,
                          int32_t out_value, int32_t *out, ot_err *err)
{
    char name[512];
    const char *tag = to == OT_DTYPE_FLOAT16 ? "fp16" : "fp32";
    int32_t v = out_value;
    if (v < 0) {
        snprintf(name, sizeof name, "%s_%s", out_name, tag);
        ot_status st = ot_quant_add_like(g, name, src, to, &v, err);
        if (st != OT_OK)
            return st;
    }
    int32_t node;
    snprintf(name, sizeof name, "%s_Cast_%s", out_name, tag);
    *out = v;
    ot_status st = cv_add_node(g, "Cast", name, &src, 1, &v, 1, &node, err);
    if (st == OT_OK)
        st = cv_set_attr_int(g, node, "to", to, err);
    if (st == OT_OK)
        g->values[v].producer = node;
    return st;
}

static void to_half(const float *x, uint16_t *h, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        h[i] = ot_f32_to_f16(x[i]);
}

ot_status ot_fp16_convert(ot_graph *g, const ot_fp16_opts *o, ot_quant_report *rep,
                          ot_err *err)
{
    ot_status st = OT_OK;
    memset(rep, 0, sizeof *rep);
    int32_t NV = g->n_values, NN = g->n_nodes;
    uint8_t *prec = ot_calloc((size_t)NN + 1, 1);
    uint8_t *home = ot_calloc((size_t)NV + 1, 1);  /* PREC_16 / PREC_32 per float value */
    int32_t *cast16 = ot_malloc(((size_t)NV + 1) * sizeof *cast16);
    int32_t *cast32 = ot_malloc(((size_t)NV + 1) * sizeof *cast32);
    if (!prec || !home || !cast16 || !cast32)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    for (int32_t v = 0; v < NV; v++) {
        cast16[v] = cast32[v] = -1;
        ot_dtype d = g->values[v].dtype;
        if (d == OT_DTYPE_FLOAT16 && (g->values[v].flags & OT_VAL_INIT))
            OT_FAIL(err, OT_ERR_UNSUPPORTED, "the model already holds float16 ('%s')",
                    g->values[v].name);
    }
    for (int32_t i = 0; i < NN; i++) {
        bool range_kept = false;
        prec[i] = (uint8_t)node_prec(g, &g->nodes[i], o, &range_kept);
        rep->n_converted += prec[i] == PREC_16;
        rep->n_kept += prec[i] == PREC_32;
        rep->n_range_kept += range_kept;
    }
    /* homes: producers first, then initializers and inputs by their readers */
    for (int32_t v = 0; v < NV; v++) {
        const ot_value *x = &g->values[v];
        if (x->dtype != OT_DTYPE_FLOAT)
            continue;
        if (x->producer >= 0 && x->producer < NN) {
            const ot_node *p = &g->nodes[x->producer];
            home[v] = prec[x->producer] == PREC_16 ? PREC_16 : PREC_32;
            if (is_type(p, "Cast")) {
                /* an existing Cast to float: writes float16 when all its
                   readers are float16 nodes and it is no kept output */
                bool out = (x->flags & OT_VAL_OUTPUT) && !o->no_keep_io_types;
                home[v] = !out && read_in_16(g, v, prec, NN) ? PREC_16 : PREC_32;
            }
        } else if (x->flags & OT_VAL_INIT) {
            bool out = x->flags & OT_VAL_OUTPUT;
            home[v] = !out && x->data.data && read_in_16(g, v, prec, NN) ? PREC_16 : PREC_32;
        } else if (x->flags & OT_VAL_INPUT) {
            home[v] = o->no_keep_io_types ? PREC_16 : PREC_32;
        } else {
            home[v] = PREC_32;
        }
    }
    /* initializer bytes */
    for (int32_t v = 0; v < NV; v++) {
        ot_value *x = &g->values[v];
        if (home[v] != PREC_16 || !(x->flags & OT_VAL_INIT))
            continue;
        int64_t n = ot_tensor_numel(&x->data);
        size_t bytes = (size_t)n * 2;
        uint16_t *h = g->borrows_data ? ot_arena_alloc(&g->arena, bytes + 2) : ot_malloc(bytes + 2);
        if (!h)
            OT_FAIL(err, OT_ERR_NOMEM, "out of memory converting '%s'", x->name);
        to_half(x->data.data, h, n);
        if (!g->borrows_data)
            ot_free(x->data.data);
        x->data.data = h;
        x->data.bytes = bytes;
        x->data.dtype = OT_DTYPE_FLOAT16;
        x->storage = OT_STORE_RAW;
        x->flags |= OT_VAL_DIRTY;
        x->flags &= ~(uint32_t)OT_VAL_PARAM;
    }
    /* existing Casts to float that now write float16 */
    for (int32_t i = 0; i < NN; i++)
        if (is_type(&g->nodes[i], "Cast") && g->nodes[i].n_out == 1 &&
            is_float(g, g->nodes[i].out[0]) && home[g->nodes[i].out[0]] == PREC_16)
            OT_TRY(set_cast_to(g, i, OT_DTYPE_FLOAT16, err));
    /* graph outputs written in float16 */
    for (int32_t j = 0; j < g->n_outputs; j++) {
        int32_t v = g->outputs[j].value;
        if (v >= NV || home[v] != PREC_16 || o->no_keep_io_types)
            continue;
        int32_t p = g->values[v].producer;
        if (p >= 0 && is_type(&g->nodes[p], "Cast")) {
            home[v] = PREC_32; /* the Cast writes float32 again */
            OT_TRY(set_cast_to(g, p, OT_DTYPE_FLOAT, err));
            continue;
        }
        /* the producer writes a new float16 value, a Cast gives the output
           its float32 under the old name */
        char base[480], name[512];
        snprintf(base, sizeof base, "%s", g->values[v].name);
        snprintf(name, sizeof name, "%s_fp16", base);
        int32_t h;
        OT_TRY(ot_quant_add_like(g, name, v, OT_DTYPE_FLOAT16, &h, err));
        if (p >= 0) {
            ot_node *pn = &g->nodes[p];
            int32_t *outs = ot_arena_memdup(&g->arena, pn->out, sizeof *outs * (size_t)pn->n_out);
            if (!outs)
                OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
            for (int k = 0; k < pn->n_out; k++)
                if (outs[k] == v)
                    outs[k] = h;
            pn->out = outs;
            pn->flags |= OT_NODE_DIRTY;
            g->values[h].producer = p;
        }
        int32_t out;
        OT_TRY(add_cast(g, h, OT_DTYPE_FLOAT, base, v, &out, err));
        home[v] = PREC_32;
        cast16[v] = h; /* float16 readers read the producer's value */
        rep->n_casts++;
    }
    /* readers that want the other dtype */
    for (int32_t i = 0; i < NN; i++) {
        if (prec[i] == PREC_NONE)
            continue;
        for (int k = 0; k < g->nodes[i].n_in; k++) {
            int32_t v = g->nodes[i].in[k];
            if (v < 0 || v >= NV || g->values[v].dtype != OT_DTYPE_FLOAT)
                continue;
            int want = prec[i];
            if (home[v] == want)
                continue;
            int32_t *slot = want == PREC_16 ? &cast16[v] : &cast32[v];
            if (*slot < 0) {
                int32_t src = v;
                int32_t p = g->values[v].producer;
                if (p >= 0 && p < NN && is_type(&g->nodes[p], "Cast"))
                    src = g->nodes[p].in[0]; /* cast the Cast's input instead */
                char base[480];
                snprintf(base, sizeof base, "%s", g->values[v].name);
                OT_TRY(add_cast(g, src, want == PREC_16 ? OT_DTYPE_FLOAT16 : OT_DTYPE_FLOAT,
                                base, -1, slot, err));
                g->values[*slot].dtype = want == PREC_16 ? OT_DTYPE_FLOAT16 : OT_DTYPE_FLOAT;
                rep->n_casts++;
            }
            g->nodes[i].in[k] = *slot;
        }
    }
    /* dtypes of the values that are float16 now */
    for (int32_t v = 0; v < NV; v++)
        if (home[v] == PREC_16 && g->values[v].dtype == OT_DTYPE_FLOAT) {
            g->values[v].dtype = OT_DTYPE_FLOAT16;
            g->values[v].flags |= OT_VAL_SHAPE_DIRTY;
        }
    OT_TRY(ot_graph_sort(g, err));
done:
    ot_free(prec);
    ot_free(home);
    ot_free(cast16);
    ot_free(cast32);
    return st;
}

ot_status ot_convert_fp16(ot_graph *g, const ot_convert_opts *opts, ot_err *err)
{
    ot_fp16_opts o = { .no_keep_io_types = opts->no_keep_io_types, .ranges = opts->ranges };
    ot_quant_report r;
    ot_status st = ot_fp16_convert(g, &o, &r, err);
    if (st == OT_OK)
        ot_log(OT_LOG_INFO, "fp16: %d nodes in float16, %d kept in float32 (%d for their "
               "calibrated range), %d Casts", r.n_converted, r.n_kept, r.n_range_kept, r.n_casts);
    return st;
}
