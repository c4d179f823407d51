/*
 * rewrite.c: constant folding marks, BatchNormalization folding into Conv
 * and Gemm, and the fusion rules (see rewrite.h).
 *
 * Not here: how a backend computes a fused group (src/exec/cpu/cpu_dnnl.c
 * maps groups to oneDNN post-ops), or shape inference's own folding
 * (src/ops/, which fills the constant outputs this file marks).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "rewrite.h"

void ot_const_pool_free(ot_const_pool *pool)
{
    for (int i = 0; i < pool->n; i++)
        free(pool->blocks[i]);
    ot_free(pool->blocks);
    memset(pool, 0, sizeof *pool);
}

bool ot_const_pool_release(ot_const_pool *pool, const void *block)
{
    for (int i = 0; i < pool->n; i++)
        if (pool->blocks[i] == block) {
            free(pool->blocks[i]);
            pool->blocks[i] = pool->blocks[--pool->n];
            return true;
        }
    return false;
}

/* A zeroed, 64-byte aligned block the pool owns. */
static void *pool_alloc(ot_const_pool *pool, size_t bytes)
{
    if (pool->n == pool->cap) {
        int cap = pool->cap ? pool->cap * 2 : 16;
        void **nb = ot_realloc(pool->blocks, sizeof *nb * (size_t)cap);
        if (!nb)
            return NULL;
        pool->blocks = nb;
        pool->cap = cap;
    }
    size_t size = ((bytes ? bytes : 1) + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, size);
    if (!p)
        return NULL;
    memset(p, 0, size);
    pool->blocks[pool->n++] = p;
    return p;
}

/* ---------------------------------------------------------- constant folding */

int ot_rewrite_mark_folded(ot_graph *g)
{
    int n_marked = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        ot_node *n = &g->nodes[i];
        bool any = false, all = true;
        for (int k = 0; k < n->n_out && all; k++) {
            if (n->out[k] < 0)
                continue;
            all = (g->values[n->out[k]].flags & OT_VAL_CONST) != 0;
            any = true;
        }
        if (any && all) {
            n->flags |= OT_NODE_FOLDED;
            n_marked++;
        }
    }
    return n_marked;
}

/* ------------------------------------------------------------- use counts */

ot_status ot_fuse_plan_init(ot_fuse_plan *p, const ot_graph *g, ot_err *err)
{
    p->g = g;
    p->uses = ot_calloc((size_t)g->n_values + 1, sizeof *p->uses);
    if (!p->uses)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0)
                p->uses[n->in[k]]++;
    }
    for (int32_t i = 0; i < g->n_outputs; i++)
        p->uses[g->outputs[i].value]++;
    return OT_OK;
}

void ot_fuse_plan_fini(ot_fuse_plan *p)
{
    ot_free(p->uses);
    p->uses = NULL;
}

int32_t ot_fuse_sole_consumer(const ot_fuse_plan *p, int32_t vid, int32_t after,
                              const uint8_t *taken)
{
    const ot_graph *g = p->g;
    if (vid < 0 || p->uses[vid] != 1 || (g->values[vid].flags & OT_VAL_OUTPUT))
        return -1;
    for (int32_t i = after + 1; i < g->n_nodes; i++) {
        const ot_node *m = &g->nodes[i];
        for (int k = 0; k < m->n_in; k++)
            if (m->in[k] == vid)
                return taken && taken[i] ? -1 : i;
    }
    return -1;
}

/* ------------------------------------------------------- BatchNorm folding */

static bool is_f32(const ot_graph *g, int32_t vid)
{
    return vid >= 0 && g->values[vid].dtype == OT_DTYPE_FLOAT;
}

/* The bytes of a float32 constant that is not training state, or NULL. */
static const float *const_f32(const ot_graph *g, int32_t vid)
{
    if (!is_f32(g, vid))
        return NULL;
    const ot_value *v = &g->values[vid];
    if (!(v->flags & OT_VAL_CONST) || (v->flags & OT_VAL_STATE) || !v->data.data)
        return NULL;
    return v->data.data;
}

static bool has_zero_dim(const ot_value *v)
{
    for (int i = 0; i < v->ndim; i++)
        if (v->dims[i] == 0)
            return true;
    return false;
}

/* The number of output channels of Conv or Gemm n whose BatchNormalization
   could fold into it (constant float32 weights and bias, shapes the fold
   handles), or 0. A Gemm qualifies with a 2-D A, constant B, beta 1 and a
   bias C absent or of shape [N] or [1, N], so that the BN's channels are
   Gemm's output columns. */
static int64_t fold_channels(const ot_graph *g, const ot_node *n)
{
    int32_t xid = n->in[0], wid = n->in[1], bid = n->n_in > 2 ? n->in[2] : -1;
    if (!is_f32(g, xid) || !const_f32(g, wid) || (bid >= 0 && !const_f32(g, bid)) ||
        !is_f32(g, n->out[0]))
        return 0;
    const ot_value *xv = &g->values[xid], *wv = &g->values[wid], *yv = &g->values[n->out[0]];
    if (has_zero_dim(xv) || has_zero_dim(wv) || has_zero_dim(yv))
        return 0;
    if (ot_node_is(n, OT_OP_CONV)) {
        if (xv->ndim < 3 || xv->ndim > 5 || wv->ndim != xv->ndim)
            return 0;
        return wv->dims[0];
    }
    if (!ot_node_is(n, OT_OP_GEMM) || xv->ndim != 2 || wv->ndim != 2 || yv->ndim != 2 ||
        ot_node_attr_float(n, "beta", 1.0f) != 1.0f)
        return 0;
    int64_t cols = ot_node_attr_int(n, "transB", 0) ? wv->dims[0] : wv->dims[1];
    if (bid >= 0) {
        const ot_value *bv = &g->values[bid];
        if (!((bv->ndim == 1 && bv->dims[0] == cols) ||
              (bv->ndim == 2 && bv->dims[0] == 1 && bv->dims[1] == cols)))
            return 0;
    }
    return cols;
}

/* Whether BatchNormalization m folds into Conv or Gemm n: inference mode,
   spatial, float32, no training outputs, and every operand of both
   constant. */
static bool bn_folds(const ot_graph *g, const ot_node *n, const ot_node *m)
{
    int64_t oc = fold_channels(g, n);
    if (oc <= 0)
        return false;
    if (!ot_node_is(m, OT_OP_BATCHNORM) || m->n_in != 5 ||
        ot_node_attr_int(m, "training_mode", 0) != 0 || ot_node_attr_int(m, "spatial", 1) != 1 ||
        !is_f32(g, m->out[0]))
        return false;
    for (int k = 1; k < m->n_out; k++)
        if (m->out[k] >= 0)
            return false;
    for (int k = 1; k < 5; k++)
        if (!const_f32(g, m->in[k]) || g->values[m->in[k]].ndim != 1 ||
            g->values[m->in[k]].dims[0] != oc)
            return false;
    return true;
}

/* A new constant value named after `base`, shaped like `like`. */
static ot_status new_const(ot_graph *g, const ot_value *like, const char *base, void *data,
                           size_t bytes, int32_t *id, ot_err *err)
{
    char name[512];
    snprintf(name, sizeof name, "%s:bn_folded", base);
    for (int i = 2; ot_graph_find_value(g, name) >= 0; i++)
        snprintf(name, sizeof name, "%s:bn_folded%d", base, i);
    ot_status st = ot_graph_intern_value(g, name, id, err);
    if (st != OT_OK)
        return st;
    ot_value *v = &g->values[*id];
    v->dtype = OT_DTYPE_FLOAT;
    v->ndim = like->ndim;
    memcpy(v->dims, like->dims, sizeof v->dims);
    v->flags = OT_VAL_CONST | OT_VAL_INIT; /* INIT: the sort accepts it as defined; a clone
                                               never frees initializer bytes */
    v->producer = -1;
    v->data.dtype = OT_DTYPE_FLOAT;
    v->data.ndim = like->ndim;
    memcpy(v->data.dims, like->dims, sizeof v->data.dims);
    v->data.bytes = bytes;
    v->data.data = data;
    return OT_OK;
}

/* W' = W * k and b' = (b - mean) * k + shift per output channel, k = scale /
   sqrt(var + eps), in double, rounded once to float. A Conv's output
   channels are its weights' rows; a Gemm's are B's columns (rows with
   transB). Node `ci` then reads (X, W', b') and writes the BN's output; a
   Gemm's new bias has the shape of the BN's scale, [N]. */
static ot_status fold_one(ot_graph *g, int32_t ci, int32_t bi, ot_const_pool *pool, ot_err *err)
{
    ot_status st = OT_OK;
    const ot_node *bn = &g->nodes[bi];
    int32_t wid = g->nodes[ci].in[1];
    int32_t bid = g->nodes[ci].n_in > 2 ? g->nodes[ci].in[2] : -1;
    const ot_value *wv = &g->values[wid];
    int64_t total = 1;
    for (int i = 0; i < wv->ndim; i++)
        total *= wv->dims[i];
    /* element i belongs to channel (i / per) % oc: per = 1 and oc = the
       columns for a Gemm without transB, per = the rest of the row
       otherwise */
    int64_t oc = fold_channels(g, &g->nodes[ci]), per = total / oc;
    if (ot_node_is(&g->nodes[ci], OT_OP_GEMM) && !ot_node_attr_int(&g->nodes[ci], "transB", 0))
        per = 1;
    size_t wbytes = sizeof(float) * (size_t)total, bbytes = sizeof(float) * (size_t)oc;
    float *w2 = pool_alloc(pool, wbytes), *b2 = pool_alloc(pool, bbytes);
    if (!w2 || !b2)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory folding a BatchNormalization");
    const float *w = const_f32(g, wid), *b = bid >= 0 ? const_f32(g, bid) : NULL;
    const float *scale = const_f32(g, bn->in[1]), *shift = const_f32(g, bn->in[2]);
    const float *mean = const_f32(g, bn->in[3]), *var = const_f32(g, bn->in[4]);
    double eps = ot_node_attr_float(bn, "epsilon", 1e-5f);
    for (int64_t i = 0; i < total; i++) {
        int64_t o = (i / per) % oc;
        w2[i] = (float)((double)w[i] * ((double)scale[o] / sqrt((double)var[o] + eps)));
    }
    for (int64_t o = 0; o < oc; o++) {
        double k = (double)scale[o] / sqrt((double)var[o] + eps);
        b2[o] = (float)(((b ? (double)b[o] : 0.0) - (double)mean[o]) * k + (double)shift[o]);
    }
    /* interning values may move g->values: copies of the shapes */
    int32_t w_new, b_new, y = bn->out[0];
    const ot_value wshape = *wv, bshape = g->values[bn->in[1]];
    OT_TRY(new_const(g, &wshape, wshape.name, w2, wbytes, &w_new, err));
    OT_TRY(new_const(g, &bshape, wshape.name, b2, bbytes, &b_new, err));
    /* the clone shares its nodes' input and output arrays with the caller's
       graph: the Conv gets arrays of its own */
    ot_node *n = &g->nodes[ci];
    int32_t *in = ot_arena_alloc(&g->arena, sizeof *in * 3);
    int32_t *out = ot_arena_alloc(&g->arena, sizeof *out * (size_t)n->n_out);
    if (!in || !out)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory folding a BatchNormalization");
    memcpy(out, n->out, sizeof *out * (size_t)n->n_out);
    in[0] = n->in[0];
    in[1] = w_new;
    in[2] = b_new;
    out[0] = y;
    n->in = in;
    n->n_in = 3;
    n->out = out;
    n->flags |= OT_NODE_BN_FOLDED;
done:
    return st;
}

ot_status ot_rewrite_fold_bn(ot_graph *g, ot_const_pool *pool, int *n_folded, ot_err *err)
{
    ot_status st = OT_OK;
    ot_fuse_plan p = { 0 };
    bool *keep = NULL;
    int count = 0;
    if (n_folded)
        *n_folded = 0;
    if (!g->borrows_data)
        return ot_err_set(err, OT_ERR_ARG, "BatchNormalization folding works on a clone");
    OT_TRY(ot_fuse_plan_init(&p, g, err));
    keep = ot_malloc(sizeof *keep * ((size_t)g->n_nodes + 1));
    if (!keep)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < g->n_nodes; i++)
        keep[i] = true;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        if (!(ot_node_is(n, OT_OP_CONV) || ot_node_is(n, OT_OP_GEMM)) ||
            (n->flags & OT_NODE_FOLDED) || n->n_in < 2 ||
            n->n_out < 1 || n->out[0] < 0)
            continue;
        int32_t m = ot_fuse_sole_consumer(&p, n->out[0], i, NULL);
        if (m < 0 || !bn_folds(g, n, &g->nodes[m]))
            continue;
        OT_TRY(fold_one(g, i, m, pool, err));
        keep[m] = false;
        count++;
    }
    if (count) {
        /* the interned values moved g->values; the plan's counts are stale
           past this point and not used */
        OT_TRY(ot_graph_keep_nodes(g, keep, err));
    }
    if (n_folded)
        *n_folded = count;
done:
    ot_fuse_plan_fini(&p);
    ot_free(keep);
    return st;
}

/* ------------------------------------------------------------------ fusion */

bool ot_fuse_is_activation(const ot_graph *g, const ot_node *n)
{
    if (!n->op || n->n_in < 1 || !is_f32(g, n->in[0]) || n->n_out < 1 || !is_f32(g, n->out[0]))
        return false;
    switch (n->op->id) {
    case OT_OP_RELU:
    case OT_OP_LEAKYRELU:
    case OT_OP_SIGMOID: return true;
    case OT_OP_CLIP:
        if (n->opset < 11)
            return true; /* bounds are attributes */
        for (int k = 1; k < n->n_in && k < 3; k++) {
            if (n->in[k] < 0)
                continue;
            const ot_tensor *t = ot_graph_const(g, n->in[k]);
            if (!t || t->dtype != OT_DTYPE_FLOAT || ot_tensor_numel(t) != 1)
                return false;
        }
        return true;
    default: return false;
    }
}

/* Whether value v is available before node `head` runs: a graph input, a
   constant or state, or the output of an earlier node. */
static bool computed_before(const ot_graph *g, int32_t v, int32_t head)
{
    const ot_value *val = &g->values[v];
    if (val->producer >= 0)
        return val->producer < head;
    return (val->flags & (OT_VAL_INPUT | OT_VAL_CONST | OT_VAL_STATE)) != 0;
}

/* Conv -> Add [-> Relu]: the Add's other operand must already be computed
   (the Conv accumulates into it) and shaped like the Conv's output. */
static bool conv_add(const ot_fuse_plan *p, int32_t head, int32_t add, const uint8_t *taken,
                     ot_fusion *f)
{
    const ot_graph *g = p->g;
    const ot_node *m = &g->nodes[add];
    int32_t yid = g->nodes[head].out[0];
    if (!ot_node_is(m, OT_OP_ADD) || m->n_in != 2 || m->opset < 7 || m->n_out < 1 ||
        !is_f32(g, m->out[0]))
        return false;
    int32_t other = m->in[0] == yid ? m->in[1] : m->in[0];
    if (other < 0 || other == yid || !is_f32(g, other) || !computed_before(g, other, head))
        return false;
    const ot_value *yv = &g->values[yid];
    if (!ot_value_same_dims(&g->values[other], yv) || !ot_value_same_dims(&g->values[m->out[0]], yv))
        return false;
    f->kind = OT_FUSE_ADD;
    f->add = add;
    f->add_other = other;
    f->out = m->out[0];
    int later = 0;
    for (int32_t i = head + 1; i < g->n_nodes; i++) {
        const ot_node *r = &g->nodes[i];
        for (int k = 0; k < r->n_in; k++)
            later += r->in[k] == other;
    }
    f->other_dies = later == 1 && !(g->values[other].flags & OT_VAL_OUTPUT);
    int32_t r = ot_fuse_sole_consumer(p, f->out, add, taken);
    if (r >= 0 && ot_node_is(&g->nodes[r], OT_OP_RELU) && ot_fuse_is_activation(g, &g->nodes[r])) {
        f->act = r;
        f->out = g->nodes[r].out[0];
    }
    return true;
}

void ot_fuse_find(const ot_fuse_plan *p, int32_t head, const uint8_t *taken, ot_fusion *f)
{
    const ot_graph *g = p->g;
    const ot_node *n = &g->nodes[head];
    memset(f, 0, sizeof *f);
    f->act = f->add = f->add_other = f->out = -1;
    if (!n->op || n->n_out < 1 || n->out[0] < 0)
        return;
    int32_t y = n->out[0];
    int32_t m = ot_fuse_sole_consumer(p, y, head, taken);
    if (m < 0)
        return;
    const ot_node *mn = &g->nodes[m];
    switch (n->op->id) {
    case OT_OP_CONV:
        if (ot_fuse_is_activation(g, mn))
            break;
        conv_add(p, head, m, taken, f);
        return;
    case OT_OP_ADD:
    case OT_OP_MUL:
        if (!ot_fuse_is_activation(g, mn))
            return;
        break;
    case OT_OP_BATCHNORM_TRAIN:
        if (!ot_node_is(mn, OT_OP_RELU) || !is_f32(g, mn->out[0]))
            return;
        break;
    case OT_OP_CONV_GRAD_DATA:
        /* dX of the convolution, then ReLU's backward masking it by the
           ReLU's output (another float value of dX's shape) */
        if (!ot_node_is(mn, OT_OP_RELU_GRAD) || mn->n_in < 2 || mn->in[0] != y ||
            mn->in[1] < 0 || mn->in[1] == y || mn->n_out < 1 || mn->out[0] < 0 ||
            !is_f32(g, y) || !is_f32(g, mn->in[1]) || !is_f32(g, mn->out[0]) ||
            !ot_value_same_dims(&g->values[y], &g->values[mn->in[1]]))
            return;
        break;
    default: return;
    }
    f->kind = OT_FUSE_ACT;
    f->act = m;
    f->out = mn->out[0];
}
