/*
 * cpu_dnnl.c: nodes the CPU backend runs with oneDNN 2.6 primitives (v2 C
 * API: dnnl_*_desc_init, then a primitive descriptor, then the primitive).
 *
 * Float32 only. Conv lets oneDNN choose its layouts ("any") and keeps the
 * chosen (blocked) layout for its output; pools, batch norm, eltwise, LRN and
 * binary ops take their input as it is laid out. Gemm and MatMul run as
 * oneDNN matmul on plain data, transposes expressed as strides.
 * Fusion: the shared rules (src/exec/rewrite.c) offer groups, this file
 * maps them to post-ops: Conv followed by an activation becomes an eltwise
 * post-op; Conv whose only consumer is an Add (optionally followed by Relu)
 * accumulates into the Add's other operand with a sum post-op; Add or Mul
 * followed by an activation, a binary primitive with an eltwise post-op.
 * A Conv that absorbed a BatchNormalization (the shared BN folding) is a
 * plain Conv here, on the folded weights.
 * Nodes are found through a table indexed by op id (dn_table, at the end),
 * the same shape as the plain kernels' table (ref.c).
 * Anything oneDNN does not implement for the given shapes falls back to the
 * plain kernels (*done stays false), so compilation never fails for that.
 *
 * References: oneDNN v2.6 C API and its primitive docs (convolution, pooling
 * v2, batch normalization, eltwise, binary, sum, concat, softmax v2, LRN,
 * matmul, reorder, post-ops, user scratchpad mode).
 */
#include <float.h>
#include <stddef.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_dnnl_impl.h"
#include "ops/op_util.h"

bool dn_is_f32(const ot_graph *g, int32_t vid)
{
    return vid >= 0 && g->values[vid].dtype == OT_DTYPE_FLOAT;
}

void dn_md_any(const ot_value *v, dnnl_memory_desc_t *md)
{
    dnnl_dims_t dims;
    for (int i = 0; i < v->ndim; i++)
        dims[i] = v->dims[i];
    dnnl_memory_desc_init_by_tag(md, v->ndim, dims, dnnl_f32, dnnl_format_tag_any);
}

void dn_md_plain_dims(int nd, const int64_t *d, dnnl_memory_desc_t *md)
{
    dnnl_dims_t dims, strides;
    dnnl_dim_t s = 1;
    for (int i = nd - 1; i >= 0; i--) {
        dims[i] = d[i];
        strides[i] = s;
        s *= d[i] ? d[i] : 1;
    }
    dnnl_memory_desc_init_by_strides(md, nd, dims, dnnl_f32, strides);
}

void dn_md_bf16(dnnl_memory_desc_t *md, bool on)
{
    /* a descriptor of format `any` or with strides in elements: only the
       element type changes */
    md->data_type = on ? dnnl_bf16 : dnnl_f32;
}

bool dn_has_zero(const ot_value *v)
{
    for (int i = 0; i < v->ndim; i++)
        if (v->dims[i] == 0)
            return true;
    return false;
}

/* Creates a primitive descriptor; false when oneDNN has no implementation
   (the caller then falls back). */
bool dn_make_pd_hint(ctx *c, dnnl_primitive_desc_t *pd, const void *op_desc,
                     const_dnnl_primitive_desc_t hint)
{
    return dnnl_primitive_desc_create(pd, op_desc, c->attr, c->cs->eng, hint) == dnnl_success;
}

bool dn_make_pd(ctx *c, dnnl_primitive_desc_t *pd, const void *op_desc)
{
    return dn_make_pd_hint(c, pd, op_desc, NULL);
}

const dnnl_memory_desc_t *dn_pd_md(dnnl_primitive_desc_t pd, dnnl_query_t q)
{
    return dnnl_primitive_desc_query_md(pd, q, 0);
}

/* A primitive descriptor in the precision the executor computes in, or in
   fp32 when oneDNN has no bf16 implementation of the operation: make(c, bf16,
   arg, pd) initialises the operation's descriptors with bf16 operands (bf16
   true) or fp32 ones and creates *pd, false when it cannot. *bf16 (may be
   NULL) says which made *pd; false when neither did (the plain kernel runs
   the node). */
typedef bool (*dn_pd_maker)(ctx *c, bool bf16, void *arg, dnnl_primitive_desc_t *pd);

static bool dn_make_pd_prec(ctx *c, dn_pd_maker make, void *arg, dnnl_primitive_desc_t *pd,
                            bool *bf16)
{
    for (int b = c->cs->bf16 ? 1 : 0; b >= 0; b--)
        if (make(c, b != 0, arg, pd)) {
            if (bf16)
                *bf16 = b != 0;
            return true;
        }
    return false;
}

bool dn_get_window(const ot_graph *g, const ot_node *n, const ot_value *xv,
                       const ot_value *yv, const int64_t *kernel, window *w)
{
    int k = xv->ndim - 2;
    if (k < 1 || k > 3)
        return false;
    w->k = k;
    size_t ns, nd, np;
    const int64_t *strides = ot_node_attr_ints(n, "strides", &ns);
    const int64_t *dil = ot_node_attr_ints(n, "dilations", &nd);
    const int64_t *pads = ot_node_attr_ints(n, "pads", &np);
    const char *auto_pad = ot_node_attr_string(n, "auto_pad", "NOTSET");
    w->pads_grew = false;
    for (int i = 0; i < k; i++) {
        int64_t in = xv->dims[2 + i], out = yv->dims[2 + i];
        int64_t s = ns == (size_t)k ? strides[i] : 1;
        int64_t d = nd == (size_t)k ? dil[i] : 1;
        int64_t ext = (kernel[i] - 1) * d + 1;
        int64_t pb = 0, pe = 0;
        if (!strcmp(auto_pad, "SAME_UPPER") || !strcmp(auto_pad, "SAME_LOWER")) {
            int64_t total = (out - 1) * s + ext - in;
            if (total < 0)
                total = 0;
            pb = !strcmp(auto_pad, "SAME_UPPER") ? total / 2 : total - total / 2;
            pe = total - pb;
        } else if (!strcmp(auto_pad, "VALID")) {
            pb = pe = 0;
        } else if (np == (size_t)(2 * k)) {
            pb = pads[i];
            pe = pads[k + i];
        }
        if (pb < 0 || pe < 0 || s < 1 || d < 1)
            return false;
        /* oneDNN's output size is (in + pl + pr - ext) / s + 1 (floor); keep the
           file's right pad when it gives the inferred size, else the pad that
           does (ceil_mode asks for more) */
        int64_t pr = pe;
        if (in + pb + pr - ext < 0 || (in + pb + pr - ext) / s + 1 != out) {
            pr = (out - 1) * s + ext - in - pb;
            if (pr < 0 || (in + pb + pr - ext) / s + 1 != out)
                return false;
            if (pr > pe)
                w->pads_grew = true;
        }
        w->kernel[i] = kernel[i];
        w->strides[i] = s;
        w->dil[i] = d - 1;
        w->pl[i] = pb;
        w->pr[i] = pr;
    }
    (void)g;
    return true;
}

/* The math ops (math_ops.c) oneDNN's eltwise computes: alg and params.
   Pow only with a constant scalar exponent and no broadcast; Reciprocal is
   pow with exponent -1. */
static bool math_eltwise_params(const ot_graph *g, const ot_node *n, dnnl_alg_kind_t *alg,
                                float *alpha, float *beta)
{
    *alpha = 0;
    *beta = 0;
    switch (n->op->id) {
    case OT_OP_SQRT: *alg = dnnl_eltwise_sqrt; return true;
    case OT_OP_EXP: *alg = dnnl_eltwise_exp; return true;
    case OT_OP_LOG: *alg = dnnl_eltwise_log; return true;
    case OT_OP_TANH: *alg = dnnl_eltwise_tanh; return true;
    case OT_OP_HARDSWISH:
        *alg = dnnl_eltwise_hardswish;
        *alpha = 1.0f / 6.0f;
        *beta = 0.5f;
        return true;
    case OT_OP_ELU:
        *alg = dnnl_eltwise_elu;
        *alpha = ot_node_attr_float(n, "alpha", 1.0f);
        return true;
    case OT_OP_GELU:
        *alg = strcmp(ot_node_attr_string(n, "approximate", "none"), "tanh")
                   ? dnnl_eltwise_gelu_erf
                   : dnnl_eltwise_gelu_tanh;
        return true;
    case OT_OP_RECIPROCAL:
        *alg = dnnl_eltwise_pow;
        *alpha = 1.0f;
        *beta = -1.0f;
        return true;
    case OT_OP_POW: {
        const ot_tensor *e = n->n_in > 1 ? ot_graph_const(g, n->in[1]) : NULL;
        const ot_value *xv = &g->values[n->in[0]], *yv = &g->values[n->out[0]];
        if (!e || !e->data || ot_tensor_numel(e) != 1 || xv->ndim != yv->ndim)
            return false;
        for (int i = 0; i < xv->ndim; i++)
            if (xv->dims[i] != yv->dims[i])
                return false;
        *alg = dnnl_eltwise_pow;
        *alpha = 1.0f;
        *beta = (float)ot_tensor_get_f64(e, 0);
        return true;
    }
    default: return false;
    }
}

/* An eltwise node that can follow a primitive as a post-op: alg and params. */
static bool eltwise_params(const ot_graph *g, const ot_node *n, dnnl_alg_kind_t *alg, float *alpha,
                           float *beta)
{
    if (!n->op || !dn_is_f32(g, n->in[0]) || n->n_out < 1 || !dn_is_f32(g, n->out[0]))
        return false;
    *beta = 0;
    switch (n->op->id) {
    case OT_OP_RELU:
        *alg = dnnl_eltwise_relu;
        *alpha = 0;
        return true;
    case OT_OP_LEAKYRELU:
        *alg = dnnl_eltwise_relu;
        *alpha = ot_node_attr_float(n, "alpha", 0.01f);
        return true;
    case OT_OP_SIGMOID:
        *alg = dnnl_eltwise_logistic;
        *alpha = 0;
        return true;
    case OT_OP_CLIP: {
        float lo = -FLT_MAX, hi = FLT_MAX;
        if (n->opset < 11) {
            lo = ot_node_attr_float(n, "min", -FLT_MAX);
            hi = ot_node_attr_float(n, "max", FLT_MAX);
        } else {
            for (int k = 1; k < n->n_in && k < 3; k++) {
                if (n->in[k] < 0)
                    continue;
                const ot_tensor *t2 = ot_graph_const(g, n->in[k]);
                if (!t2 || t2->dtype != OT_DTYPE_FLOAT || ot_tensor_numel(t2) != 1)
                    return false;
                float v;
                memcpy(&v, t2->data, 4);
                if (k == 1)
                    lo = v;
                else
                    hi = v;
            }
        }
        *alg = dnnl_eltwise_clip;
        *alpha = lo;
        *beta = hi;
        return true;
    }
    default: return math_eltwise_params(g, n, alg, alpha, beta);
    }
}

/* The single consumer node of v (its index), or -1: the shared rule
   (rewrite.c), with the nodes this backend already took into groups. */
int32_t dn_sole_consumer(const ctx *c, int32_t vid, int32_t after)
{
    if (!c->x->fuse.uses)
        return -1; /* no fusion */
    return ot_fuse_sole_consumer(&c->x->fuse, vid, after, c->cs->skip);
}

/* Appends the step of a primitive with one source (x, laid out as xmd) and
   one destination (y, in the layout the primitive chose). Takes ownership of
   pd. */
ot_status dn_src_dst_step(ctx *c, dnnl_primitive_desc_t pd, int32_t xid,
                              const dnnl_memory_desc_t *xmd, int32_t yid, bool *done, ot_err *err)
{
    ot_status st = OT_OK;
    const dnnl_memory_desc_t *py = dn_pd_md(pd, dnnl_query_dst_md);
    ot_loc lx, ly;
    OT_TRY(cpu_val_as(c->x, xid, xmd, &lx, err));
    OT_TRY(cpu_val_define(c->x, yid, py, &ly, err));
    int kinds[2] = { DNNL_ARG_SRC, DNNL_ARG_DST };
    ot_loc locs[2] = { lx, ly };
    dnnl_memory_desc_t mds[2] = { *xmd, *py };
    dnnl_primitive_desc_t p = pd;
    pd = NULL;
    OT_TRY(cpu_prim_step(c->x, c->n, c->n->op_type, p, 2, kinds, locs, mds, err));
    *done = true;
done:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    return st;
}

/* ------------------------------------------------------------------- conv */

/* A Conv's weights W (OC, C/group, k...) as oneDNN sees them: grouped
   convolutions get a leading group dim (group, OC/group, C/group, k...).
   *any lets the primitive choose the layout; *plain is W's row-major one. */
static void conv_weight_mds(const ot_value *wv, int64_t group, dnnl_memory_desc_t *any,
                            dnnl_memory_desc_t *plain)
{
    int64_t d[OT_MAX_DIMS + 1];
    int nd = 0;
    if (group > 1) {
        d[nd++] = group;
        d[nd++] = wv->dims[0] / group;
    } else {
        d[nd++] = wv->dims[0];
    }
    for (int i = 1; i < wv->ndim; i++)
        d[nd++] = wv->dims[i];
    dnnl_dims_t dims;
    for (int i = 0; i < nd; i++)
        dims[i] = d[i];
    dnnl_memory_desc_init_by_tag(any, nd, dims, dnnl_f32, dnnl_format_tag_any);
    dn_md_plain_dims(nd, d, plain);
}

/* Whether a Conv fused with an Add may write into the Add's other operand's
   buffer: the shared rules say nothing reads it after the Add (f->other_dies),
   and it is a planned buffer already laid out as the Conv's dst (the caller
   makes sure it is not the Conv's own input). */
static bool can_take_over(const ctx *c, const ot_fusion *f, const dnnl_memory_desc_t *dst)
{
    const cpu_val *ov = &c->cs->vals[f->add_other];
    if (!f->other_dies || ov->loc.kind != OT_LOC_BUF)
        return false;
    dnnl_memory_desc_t omd;
    cpu_val_md(c->x, f->add_other, &omd);
    return dnnl_memory_desc_equal(&omd, dst);
}

/* A forward convolution's descriptors for dn_make_pd_prec: with bf16, bf16
   source and weights (converted by reorders), fp32 bias and result. */
typedef struct conv_args {
    dnnl_memory_desc_t x, w, y;
    const dnnl_memory_desc_t *b;
    const window *win;
    dnnl_prop_kind_t prop;
    dnnl_alg_kind_t alg; /* direct, or Winograd (conv_wino) */
} conv_args;

static bool conv_fwd_pd(ctx *c, bool bf16, void *arg, dnnl_primitive_desc_t *pd)
{
    const conv_args *a = arg;
    const window *w = a->win;
    dnnl_memory_desc_t x = a->x, wt = a->w;
    dn_md_bf16(&x, bf16);
    dn_md_bf16(&wt, bf16);
    dnnl_convolution_desc_t cd;
    return dnnl_dilated_convolution_forward_desc_init(&cd, a->prop, a->alg, &x, &wt, a->b, &a->y,
                                                      w->strides, w->dil, w->pl,
                                                      w->pr) == dnnl_success &&
           dn_make_pd(c, pd, &cd);
}

/* Whether Conv node n asks oneDNN for its Winograd algorithm
   (docs/executor.md, Winograd): the executor allows it (cs->wino: fp32,
   forward-only), the input and weights are fp32, the convolution is 2-D with
   a 3x3 kernel, stride 1, no dilation, padding 1 on every side and group 1,
   its channels are multiples of 16 (oneDNN 2.6's AVX-512 Winograd kernels
   take no others), and its output is at least 7x7 (the smallest measured:
   per ResNet-18 shape, 7x7 to 56x56 at batch 1 and 64, Winograd took 0.5-0.9
   of the direct kernels' time, tests/bench/conv_wino.c) */
static bool conv_wino(const cpu_state *cs, const ot_graph *g, const ot_node *n)
{
    if (!cs->wino || !ot_node_is(n, OT_OP_CONV) || n->n_in < 2 || n->n_out < 1 ||
        !dn_is_f32(g, n->in[0]) || !dn_is_f32(g, n->in[1]) || !dn_is_f32(g, n->out[0]) ||
        ot_node_attr_int(n, "group", 1) != 1)
        return false;
    const ot_value *xv = &g->values[n->in[0]], *wv = &g->values[n->in[1]];
    const ot_value *yv = &g->values[n->out[0]];
    window w;
    if (xv->ndim != 4 || wv->ndim != 4 || yv->ndim != 4 || wv->dims[2] != 3 || wv->dims[3] != 3 ||
        xv->dims[1] % 16 || wv->dims[0] % 16 || yv->dims[2] < 7 || yv->dims[3] < 7 ||
        !dn_get_window(g, n, xv, yv, wv->dims + 2, &w))
        return false;
    for (int i = 0; i < 2; i++)
        if (w.strides[i] != 1 || w.dil[i] != 0 || w.pl[i] != 1 || w.pr[i] != 1)
            return false;
    return true;
}

bool cpu_dnnl_wino_any(const ot_exec *x)
{
    const cpu_state *cs = x->be_state;
    for (int32_t i = 0; i < x->g->n_nodes; i++)
        if (conv_wino(cs, x->g, &x->g->nodes[i]))
            return true;
    return false;
}

static void keep_weights(ctx *c, const conv_args *ca, int32_t wid, const dnnl_memory_desc_t *pw);

static ot_status do_conv(ctx *c, bool *done, ot_err *err)
{
    ot_status st = OT_OK;
    int32_t node_id = c->node_id;
    ot_graph *g = c->g;
    const ot_node *n = c->n;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_post_ops_t po = NULL;
    int32_t xid = n->in[0], wid = n->in[1], bid = n->n_in > 2 ? n->in[2] : -1;
    int32_t yid = n->out[0];
    if (!dn_is_f32(g, xid) || !dn_is_f32(g, wid) || (bid >= 0 && !dn_is_f32(g, bid)) ||
        !dn_is_f32(g, yid))
        return OT_OK;
    const ot_value *xv = &g->values[xid], *wv = &g->values[wid], *yv = &g->values[yid];
    if (dn_has_zero(xv) || dn_has_zero(yv) || dn_has_zero(wv))
        return OT_OK;
    int64_t group = ot_node_attr_int(n, "group", 1);
    window w;
    if (!dn_get_window(g, n, xv, yv, wv->dims + 2, &w))
        return OT_OK;

    /* the group the shared fusion rules offer (rewrite.c): an activation as
       an eltwise post-op, or an Add (+ Relu) as a sum post-op; a Conv that
       absorbed a BatchNormalization (OT_REWRITE_BN_FOLD) reads the folded
       weights and bias like its own */
    int32_t out_vid = yid, add_other = -1;
    int32_t fuse_nodes[2] = { -1, -1 };
    bool bn_folded = (n->flags & OT_NODE_BN_FOLDED) != 0;
    dnnl_alg_kind_t alg = dnnl_eltwise_relu;
    float alpha = 0, beta = 0;
    ot_fusion f = { .kind = OT_FUSE_NONE };
    if (c->x->fuse.uses)
        ot_fuse_find(&c->x->fuse, node_id, c->cs->skip, &f);
    if (f.kind == OT_FUSE_ACT && eltwise_params(g, &g->nodes[f.act], &alg, &alpha, &beta)) {
        fuse_nodes[0] = f.act;
        out_vid = f.out;
    } else if (f.kind == OT_FUSE_ADD) {
        fuse_nodes[0] = f.add;
        fuse_nodes[1] = f.act;
        add_other = f.add_other;
        out_vid = f.out;
    }

    dnnl_memory_desc_t xmd, wmd, bmd, ymd, wplain;
    dn_md_any(xv, &xmd);
    dn_md_any(yv, &ymd);
    conv_weight_mds(wv, group, &wmd, &wplain);
    ot_loc wplain_loc = { 0 }, lb = { 0 };
    bool has_bias = bid >= 0;
    if (bid >= 0)
        OT_TRY(cpu_val_plain(c->x, bid, &lb, err));
    if (has_bias)
        dn_md_plain_dims(1, &wv->dims[0], &bmd);
    /* in a training graph the forward convolutions take the layout their
       backward primitives use, so activations need no reorders between them */
    bool nxc = dn_blk_grouped_nxc(c, xid, group, xv->dims[1], xv, &xmd, yv, &ymd);
    if (fuse_nodes[0] >= 0) {
        CPU_TRY(dnnl_post_ops_create(&po), err, "conv");
        if (add_other >= 0)
            CPU_TRY(dnnl_post_ops_append_sum(po, 1.0f), err, "conv");
        if (add_other < 0 || fuse_nodes[1] >= 0)
            CPU_TRY(dnnl_post_ops_append_eltwise(po, 1.0f, add_other >= 0 ? dnnl_eltwise_relu : alg,
                                                 add_other >= 0 ? 0.0f : alpha,
                                                 add_other >= 0 ? 0.0f : beta),
                    err, "conv");
        CPU_TRY(dnnl_primitive_attr_set_post_ops(c->attr, po), err, "conv");
    }
    conv_args ca = { .x = xmd, .w = wmd, .b = has_bias ? &bmd : NULL, .y = ymd, .win = &w,
                     .prop = c->cs->training ? dnnl_forward_training : dnnl_forward_inference,
                     .alg = dnnl_convolution_direct };
    if (!nxc && conv_wino(c->cs, g, n)) {
        /* Winograd when oneDNN has it with these post-ops, else direct */
        ca.alg = dnnl_convolution_winograd;
        if (!dn_make_pd_prec(c, conv_fwd_pd, &ca, &pd, NULL) || dn_blk_is_ref(pd)) {
            if (pd)
                dnnl_primitive_desc_destroy(pd);
            pd = NULL;
            ca.alg = dnnl_convolution_direct;
        }
    } else if (!nxc && c->cs->wino_blk && group == 1 && xv->ndim == 4) {
        /* the Winograd convolutions read and write nChw16c: the others of
           the graph keep their activations in it too, so that no reorder
           goes between them (what the direct kernels would pick, nhwc at
           inference, costs a reorder each way) */
        conv_args cb = ca;
        dnnl_dims_t xd = { xv->dims[0], xv->dims[1], xv->dims[2], xv->dims[3] };
        dnnl_dims_t yd = { yv->dims[0], yv->dims[1], yv->dims[2], yv->dims[3] };
        if (xv->dims[1] % 16 == 0)
            dnnl_memory_desc_init_by_tag(&cb.x, 4, xd, dnnl_f32, dnnl_nChw16c);
        if (yv->dims[1] % 16 == 0)
            dnnl_memory_desc_init_by_tag(&cb.y, 4, yd, dnnl_f32, dnnl_nChw16c);
        if (!dn_make_pd_prec(c, conv_fwd_pd, &cb, &pd, NULL) || dn_blk_is_ref(pd)) {
            if (pd)
                dnnl_primitive_desc_destroy(pd);
            pd = NULL;
        }
    }
    if (!pd && nxc && (!dn_make_pd_prec(c, conv_fwd_pd, &ca, &pd, NULL) || dn_blk_is_ref(pd))) {
        if (pd)
            dnnl_primitive_desc_destroy(pd);
        pd = NULL;
        dn_md_any(xv, &ca.x);
        dn_md_any(yv, &ca.y);
    }
    if (!pd && !dn_make_pd_prec(c, conv_fwd_pd, &ca, &pd, NULL))
        goto done; /* not implemented: plain kernel */

    ot_loc lx, lw, ly;
    const dnnl_memory_desc_t *px = dn_pd_md(pd, dnnl_query_src_md);
    const dnnl_memory_desc_t *pw = dn_pd_md(pd, dnnl_query_weights_md);
    const dnnl_memory_desc_t *py = dn_pd_md(pd, dnnl_query_dst_md);
    OT_TRY(cpu_val_as(c->x, xid, px, &lx, err));
    if (c->cs->state_update && c->cs->state_update[wid] >= 0)
        keep_weights(c, &ca, wid, pw);
    if (c->cs->vals[wid].has_md) {
        /* a trained weight kept in a layout between steps (cpu_state.c) */
        OT_TRY(cpu_val_as(c->x, wid, pw, &lw, err));
    } else {
        OT_TRY(cpu_val_plain(c->x, wid, &wplain_loc, err));
        OT_TRY(cpu_reorder(c->x, &wplain, wplain_loc, pw, &lw, err));
    }
    if (bn_folded && lw.ptr != wplain_loc.ptr &&
        ot_const_pool_release(&c->x->consts, wplain_loc.ptr)) {
        /* the folded weights, now copied in the Conv's layout, are read by
           nothing else */
        c->cs->vals[wid].loc = (ot_loc){ .kind = OT_LOC_NONE };
        g->values[wid].data.data = NULL;
    }
    if (add_other >= 0 && add_other != xid && can_take_over(c, &f, py)) {
        /* the sum post-op accumulates into dst: the other operand's buffer
           becomes the output when nothing reads that operand later */
        cpu_val *ov = &c->cs->vals[add_other], *yc = &c->cs->vals[out_vid];
        ly = ov->loc;
        memset(yc, 0, sizeof *yc);
        yc->loc = ly;
        yc->has_md = !cpu_md_is_plain(py, &g->values[out_vid]);
        yc->md = *py;
    } else {
        OT_TRY(cpu_val_define(c->x, out_vid, py, &ly, err));
        if (add_other >= 0) {
            /* otherwise dst starts as a copy of the other operand */
            dnnl_memory_desc_t omd;
            cpu_val_md(c->x, add_other, &omd);
            ot_loc lo = c->cs->vals[add_other].loc;
            OT_TRY(cpu_reorder_into(c->x, &omd, lo, py, ly, err));
        }
    }
    int kinds[4] = { DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST, DNNL_ARG_BIAS };
    ot_loc locs[4] = { lx, lw, ly, lb };
    dnnl_memory_desc_t mds[4] = { *px, *pw, *py, bmd };
    dnnl_primitive_desc_t p = pd;
    pd = NULL;
    static const char *const whats[2][3] = { { "Conv", "Conv+eltwise", "Conv+Add" },
                                             { "Conv+BN", "Conv+BN+eltwise", "Conv+BN+Add" } };
    const char *what = whats[bn_folded][add_other >= 0 ? 2 : fuse_nodes[0] >= 0 ? 1 : 0];
    if (add_other >= 0 && fuse_nodes[1] >= 0)
        what = bn_folded ? "Conv+BN+Add+Relu" : "Conv+Add+Relu";
    OT_TRY(cpu_prim_step(c->x, n, what, p, has_bias ? 4 : 3, kinds, locs, mds, err));
    for (int i = 0; i < 2; i++)
        if (fuse_nodes[i] >= 0)
            c->cs->skip[fuse_nodes[i]] = 1;
    *done = true;
done:
    if (po)
        dnnl_post_ops_destroy(po);
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    return st;
}

/* -------------------------------------------------------------------- pool */

bool dn_pool_params(const ot_graph *g, const ot_node *n, const ot_value *xv, const ot_value *yv,
                    window *w, dnnl_alg_kind_t *alg)
{
    if (dn_has_zero(xv) || dn_has_zero(yv) || xv->ndim < 3 || xv->ndim > 5 ||
        yv->ndim != xv->ndim)
        return false;
    ot_op_id id = n->op ? n->op->id : OT_OP_COUNT_;
    bool global = id == OT_OP_GLOBALAVGPOOL || id == OT_OP_GLOBALMAXPOOL ||
                  id == OT_OP_GLOBALAVGPOOL_GRAD || id == OT_OP_GLOBALMAXPOOL_GRAD;
    bool is_max = id == OT_OP_MAXPOOL || id == OT_OP_GLOBALMAXPOOL || id == OT_OP_MAXPOOL_GRAD ||
                  id == OT_OP_GLOBALMAXPOOL_GRAD;
    if (global) {
        w->k = xv->ndim - 2;
        for (int i = 0; i < w->k; i++) {
            w->kernel[i] = xv->dims[2 + i];
            w->strides[i] = 1;
            w->dil[i] = 0;
            w->pl[i] = w->pr[i] = 0;
        }
        w->pads_grew = false;
    } else {
        size_t nk;
        int64_t kernel[3];
        const int64_t *ks = ot_node_attr_ints(n, "kernel_shape", &nk);
        if (!ks || nk != (size_t)(xv->ndim - 2))
            return false;
        for (size_t i = 0; i < nk; i++)
            kernel[i] = ks[i];
        if (!dn_get_window(g, n, xv, yv, kernel, w))
            return false;
        if (ot_node_attr_int(n, "storage_order", 0) != 0)
            return false;
    }
    *alg = dnnl_pooling_max;
    if (!is_max) {
        bool include = ot_node_attr_int(n, "count_include_pad", 0) != 0;
        if (include && w->pads_grew)
            return false; /* ceil_mode's extra cells must not count: plain kernel */
        *alg = include ? dnnl_pooling_avg_include_padding : dnnl_pooling_avg_exclude_padding;
    }
    return true;
}

static ot_status do_pool(ctx *c, bool *done, ot_err *err)
{
    ot_graph *g = c->g;
    const ot_node *n = c->n;
    int32_t xid = n->in[0], yid = n->out[0];
    if (!dn_is_f32(g, xid) || !dn_is_f32(g, yid) || (n->n_out > 1 && n->out[1] >= 0))
        return OT_OK;
    const ot_value *xv = &g->values[xid], *yv = &g->values[yid];
    window w;
    dnnl_alg_kind_t alg;
    if (!dn_pool_params(g, n, xv, yv, &w, &alg))
        return OT_OK;
    if (alg == dnnl_pooling_max && dn_maxpool_has_grad(c, xid))
        return dn_maxpool_train(c, &w, done, err);
    dnnl_memory_desc_t xmd, ymd;
    cpu_val_md(c->x, xid, &xmd);
    dn_md_any(yv, &ymd);
    dnnl_pooling_v2_desc_t pdsc;
    if (dnnl_pooling_v2_forward_desc_init(&pdsc, dnnl_forward_inference, alg, &xmd, &ymd,
                                          w.strides, w.kernel, w.dil, w.pl, w.pr) != dnnl_success)
        return OT_OK;
    dnnl_primitive_desc_t pd = NULL;
    if (!dn_make_pd(c, &pd, &pdsc))
        return OT_OK;
    return dn_src_dst_step(c, pd, xid, &xmd, yid, done, err);
}

/* --------------------------------------------------------------- batchnorm */

static ot_status do_bn(ctx *c, bool *done, ot_err *err)
{
    ot_status st = OT_OK;
    ot_graph *g = c->g;
    const ot_node *n = c->n;
    if (n->n_in != 5 || n->n_out < 1)
        return OT_OK;
    for (int k = 1; k < n->n_out; k++)
        if (n->out[k] >= 0)
            return OT_OK; /* training-mode outputs: plain kernel */
    if (ot_node_attr_int(n, "training_mode", 0) != 0)
        return OT_OK;
    for (int k = 0; k < 5; k++)
        if (!dn_is_f32(g, n->in[k]))
            return OT_OK;
    int32_t xid = n->in[0], yid = n->out[0];
    const ot_value *xv = &g->values[xid];
    if (!dn_is_f32(g, yid) || dn_has_zero(xv) || xv->ndim < 2 || xv->ndim > 5)
        return OT_OK;
    for (int k = 1; k < 5; k++)
        if (g->values[n->in[k]].ndim != 1)
            return OT_OK;
    float eps = ot_node_attr_float(n, "epsilon", 1e-5f);
    dnnl_memory_desc_t xmd;
    cpu_val_md(c->x, xid, &xmd);
    dnnl_batch_normalization_desc_t bd;
    if (dnnl_batch_normalization_forward_desc_init(
            &bd, dnnl_forward_inference, &xmd, eps,
            dnnl_use_global_stats | dnnl_use_scale | dnnl_use_shift) != dnnl_success)
        return OT_OK;
    dnnl_primitive_desc_t pd = NULL;
    if (!dn_make_pd(c, &pd, &bd))
        return OT_OK;
    const dnnl_memory_desc_t *py = dn_pd_md(pd, dnnl_query_dst_md);
    ot_loc l[6];
    OT_TRY(cpu_val_as(c->x, xid, &xmd, &l[0], err));
    for (int k = 1; k < 5; k++)
        OT_TRY(cpu_val_plain(c->x, n->in[k], &l[k], err));
    OT_TRY(cpu_val_define(c->x, yid, py, &l[5], err));
    dnnl_memory_desc_t cmd;
    dn_md_plain_dims(1, &g->values[n->in[1]].dims[0], &cmd);
    int kinds[6] = { DNNL_ARG_SRC, DNNL_ARG_SCALE, DNNL_ARG_SHIFT, DNNL_ARG_MEAN,
                     DNNL_ARG_VARIANCE, DNNL_ARG_DST };
    dnnl_memory_desc_t mds[6] = { xmd, cmd, cmd, cmd, cmd, *py };
    dnnl_primitive_desc_t p = pd;
    pd = NULL;
    OT_TRY(cpu_prim_step(c->x, n, n->op_type, p, 6, kinds, l, mds, err));
    *done = true;
done:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    return st;
}

/* ----------------------------------------------------------------- eltwise */

static ot_status do_eltwise(ctx *c, bool *done, ot_err *err)
{
    ot_graph *g = c->g;
    const ot_node *n = c->n;
    dnnl_alg_kind_t alg;
    float alpha, beta;
    if (!eltwise_params(g, n, &alg, &alpha, &beta))
        return OT_OK;
    int32_t xid = n->in[0], yid = n->out[0];
    const ot_value *xv = &g->values[xid];
    if (dn_has_zero(xv) || xv->ndim < 1)
        return OT_OK;
    dnnl_memory_desc_t xmd;
    cpu_val_md(c->x, xid, &xmd);
    dnnl_eltwise_desc_t ed;
    if (dnnl_eltwise_forward_desc_init(&ed, dnnl_forward_inference, alg, &xmd, alpha, beta) !=
        dnnl_success)
        return OT_OK;
    dnnl_primitive_desc_t pd = NULL;
    if (!dn_make_pd(c, &pd, &ed))
        return OT_OK;
    return dn_src_dst_step(c, pd, xid, &xmd, yid, done, err);
}

/* ------------------------------------------------------------------ binary */

static ot_status do_binary(ctx *c, bool *done, ot_err *err)
{
    ot_status st = OT_OK;
    ot_graph *g = c->g;
    const ot_node *n = c->n;
    if (n->n_in != 2 || n->opset < 7 || !dn_is_f32(g, n->in[0]) || !dn_is_f32(g, n->in[1]) ||
        !dn_is_f32(g, n->out[0]))
        return OT_OK;
    /* the gradient of a SiLU, and X [N, C, ...] * S [N, C, 1...]: cpu_blocked.c */
    if (ot_node_is(n, OT_OP_MUL) && ((st = dn_blk_silu_grad(c, done, err)) != OT_OK || *done))
        return st;
    if (ot_node_is(n, OT_OP_MUL) && ((st = dn_blk_mul_sum_to(c, done, err)) != OT_OK || *done))
        return st;
    if (ot_node_is(n, OT_OP_MUL) && ((st = dn_blk_scale(c, done, err)) != OT_OK || *done))
        return st;
    int32_t a = n->in[0], b = n->in[1], yid = n->out[0];
    const ot_value *yv = &g->values[yid];
    if (yv->ndim < 1 || dn_has_zero(yv))
        return OT_OK;
    const ot_value *av = &g->values[a], *bv = &g->values[b];
    bool a_full = av->ndim == yv->ndim, b_full = bv->ndim == yv->ndim;
    for (int i = 0; a_full && i < yv->ndim; i++)
        a_full = av->dims[i] == yv->dims[i];
    for (int i = 0; b_full && i < yv->ndim; i++)
        b_full = bv->dims[i] == yv->dims[i];
    bool commutes = ot_node_is(n, OT_OP_ADD) || ot_node_is(n, OT_OP_MUL);
    if (!a_full && b_full && commutes) { /* the full-size one goes first */
        int32_t t = a;
        a = b;
        b = t;
        const ot_value *tv = av;
        av = bv;
        bv = tv;
        a_full = true;
        b_full = false;
    }
    if (!a_full)
        return OT_OK;
    dnnl_memory_desc_t amd, bmd, ymd;
    cpu_val_md(c->x, a, &amd);
    if (b_full && a != b) {
        bmd = amd;
    } else if (a == b) {
        bmd = amd;
    } else {
        int64_t d[OT_MAX_DIMS];
        int off = yv->ndim - bv->ndim;
        for (int i = 0; i < yv->ndim; i++)
            d[i] = i < off ? 1 : bv->dims[i - off];
        dn_md_plain_dims(yv->ndim, d, &bmd);
    }
    dn_md_any(yv, &ymd);
    dnnl_binary_desc_t bd;
    dnnl_alg_kind_t alg = ot_node_is(n, OT_OP_ADD)   ? dnnl_binary_add
                          : ot_node_is(n, OT_OP_SUB) ? dnnl_binary_sub
                          : ot_node_is(n, OT_OP_DIV) ? dnnl_binary_div
                                                     : dnnl_binary_mul;
    if (dnnl_binary_desc_init(&bd, alg, &amd, &bmd, &ymd) != dnnl_success)
        return OT_OK;
    /* an activation that alone reads the result becomes a post-op (the
       residual Add + Relu of a training graph, whose gradient needs only the
       Relu's output) */
    int32_t act = -1;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_alg_kind_t ealg;
    float alpha, beta;
    ot_fusion f = { .kind = OT_FUSE_NONE };
    if (c->x->fuse.uses)
        ot_fuse_find(&c->x->fuse, c->node_id, c->cs->skip, &f);
    if (f.kind == OT_FUSE_ACT) {
        int32_t m = f.act;
        if (eltwise_params(g, &g->nodes[m], &ealg, &alpha, &beta) &&
            dnnl_post_ops_create(&po) == dnnl_success &&
            dnnl_post_ops_append_eltwise(po, 1.0f, ealg, alpha, beta) == dnnl_success &&
            dnnl_primitive_attr_set_post_ops(c->attr, po) == dnnl_success)
            act = m;
    }
    if (!dn_make_pd(c, &pd, &bd)) {
        if (act < 0)
            goto done;
        /* without the post-op */
        act = -1;
        dnnl_post_ops_t none = NULL;
        if (dnnl_post_ops_create(&none) != dnnl_success)
            goto done;
        dnnl_status_t ps = dnnl_primitive_attr_set_post_ops(c->attr, none);
        dnnl_post_ops_destroy(none);
        if (ps != dnnl_success || !dn_make_pd(c, &pd, &bd))
            goto done;
    }
    int32_t out = act >= 0 ? g->nodes[act].out[0] : yid;
    const dnnl_memory_desc_t *py = dn_pd_md(pd, dnnl_query_dst_md);
    ot_loc la, lb, ly;
    OT_TRY(cpu_val_as(c->x, a, &amd, &la, err));
    if (b_full || a == b)
        OT_TRY(cpu_val_as(c->x, b, &amd, &lb, err));
    else
        OT_TRY(cpu_val_plain(c->x, b, &lb, err));
    OT_TRY(cpu_val_define(c->x, out, py, &ly, err));
    int kinds[3] = { DNNL_ARG_SRC_0, DNNL_ARG_SRC_1, DNNL_ARG_DST };
    ot_loc locs[3] = { la, lb, ly };
    dnnl_memory_desc_t mds[3] = { amd, bmd, *py };
    dnnl_primitive_desc_t p = pd;
    pd = NULL;
    bool is_add = alg == dnnl_binary_add;
    const char *what = act < 0 ? n->op_type
                       : ot_node_is(&g->nodes[act], OT_OP_RELU) ? (is_add ? "Add+Relu" : "Mul+Relu")
                                                                : (is_add ? "Add+eltwise" : "Mul+eltwise");
    OT_TRY(cpu_prim_step(c->x, n, what, p, 3, kinds, locs, mds, err));
    if (act >= 0)
        c->cs->skip[act] = 1;
    *done = true;
done:
    if (po)
        dnnl_post_ops_destroy(po);
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    return st;
}

/* ------------------------------------------------------------ sum, concat */

/* Which operand of a Sum may hold its result (dst laid out as dst): one whose
   planned buffer has that layout, that is read by no later node, is not a
   graph output and appears once among the operands, when the Sum's result
   is neither a graph output nor state. oneDNN's sum runs in
   place on its first source, so only operand 0 qualifies, or either of two
   (a + b and b + a round alike). -1: none; the sum gets a buffer of its own.
   The gradient Sums at residual joins accumulate this way. */
static int sum_in_place_operand(const ctx *c, const dnnl_memory_desc_t *dst)
{
    const ot_graph *g = c->g;
    const ot_node *n = c->n;
    int32_t yid = n->out[0];
    if (!c->x->fuse.uses || n->n_in < 2 || (g->values[yid].flags & OT_VAL_OUTPUT) ||
        (c->x->state_out && c->x->state_out[yid] >= 0))
        return -1;
    for (int k = 0; k < (n->n_in == 2 ? 2 : 1); k++) {
        int32_t vid = n->in[k];
        const cpu_val *cv = &c->cs->vals[vid];
        if (cv->loc.kind != OT_LOC_BUF || (g->values[vid].flags & OT_VAL_OUTPUT))
            continue;
        dnnl_memory_desc_t md;
        cpu_val_md(c->x, vid, &md);
        if (!dnnl_memory_desc_equal(&md, dst))
            continue;
        int reads = 0;
        for (int j = 0; j < n->n_in; j++)
            reads += n->in[j] == vid;
        for (int32_t i = c->node_id + 1; i < g->n_nodes && reads == 1; i++)
            for (int j = 0; j < g->nodes[i].n_in; j++)
                reads += g->nodes[i].in[j] == vid;
        if (reads == 1)
            return k;
    }
    return -1;
}

static ot_status do_sum_concat(ctx *c, bool is_concat, bool *done, ot_err *err)
{
    ot_status st = OT_OK;
    ot_graph *g = c->g;
    const ot_node *n = c->n;
    int32_t yid = n->out[0];
    const ot_value *yv = &g->values[yid];
    dnnl_primitive_desc_t pd = NULL;
    dnnl_memory_desc_t *mds = NULL;
    float *scales = NULL;
    int *kinds = NULL;
    ot_loc *locs = NULL;
    /* any number of inputs up to oneDNN's argument range (DenseNet
       concatenates dozens); beyond it the plain kernel runs the node */
    if (!dn_is_f32(g, yid) || yv->ndim < 1 || dn_has_zero(yv) || n->n_in < 1 ||
        n->n_in > DNNL_ARG_MULTIPLE_DST - DNNL_ARG_MULTIPLE_SRC)
        return OT_OK;
    size_t n_args = (size_t)n->n_in + 1;
    mds = ot_calloc(n_args, sizeof *mds);
    scales = ot_calloc(n_args, sizeof *scales);
    kinds = ot_calloc(n_args, sizeof *kinds);
    locs = ot_calloc(n_args, sizeof *locs);
    if (!mds || !scales || !kinds || !locs)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    dnnl_memory_desc_t ymd;
    for (int k = 0; k < n->n_in; k++) {
        if (!dn_is_f32(g, n->in[k]))
            goto done;
        const ot_value *v = &g->values[n->in[k]];
        if (v->ndim != yv->ndim || dn_has_zero(v))
            goto done;
        for (int i = 0; !is_concat && i < v->ndim; i++)
            if (v->dims[i] != yv->dims[i])
                goto done;
        cpu_val_md(c->x, n->in[k], &mds[k]);
        if (!is_concat && k > 0)
            mds[k] = mds[0];
        scales[k] = 1.0f;
    }
    dn_md_any(yv, &ymd);
    int axis = 0;
    if (is_concat && !ot_op_axis(ot_node_attr_int(n, "axis", 1), yv->ndim, &axis))
        goto done;
    dnnl_status_t s = is_concat ? dnnl_concat_primitive_desc_create(&pd, &ymd, n->n_in, axis, mds,
                                                                    c->attr, c->cs->eng)
                                : dnnl_sum_primitive_desc_create(&pd, &ymd, n->n_in, scales, mds,
                                                                 c->attr, c->cs->eng);
    if (s != dnnl_success) {
        pd = NULL;
        goto done;
    }
    if (!is_concat && dn_blk_is_ref(pd)) { /* cpu_blocked.c */
        st = dn_blk_sum(c, &mds[0], done, err);
        goto done;
    }
    const dnnl_memory_desc_t *py = dn_pd_md(pd, dnnl_query_dst_md);
    for (int k = 0; k < n->n_in; k++) {
        kinds[k] = DNNL_ARG_MULTIPLE_SRC + k;
        OT_TRY(cpu_val_as(c->x, n->in[k], &mds[k], &locs[k], err));
    }
    kinds[n->n_in] = DNNL_ARG_DST;
    int own = is_concat ? -1 : sum_in_place_operand(c, py);
    if (own >= 0 && dnnl_memory_desc_equal(&mds[0], py)) {
        /* every operand is laid out as dst; the one that dies here becomes
           the first source and the destination */
        ot_loc lo = locs[own];
        locs[own] = locs[0];
        locs[0] = lo;
        cpu_val *yc = &c->cs->vals[yid];
        memset(yc, 0, sizeof *yc);
        yc->loc = lo;
        yc->has_md = !cpu_md_is_plain(py, yv);
        yc->md = *py;
        locs[n->n_in] = lo;
    } else {
        OT_TRY(cpu_val_define(c->x, yid, py, &locs[n->n_in], err));
    }
    mds[n->n_in] = *py;
    dnnl_primitive_desc_t p = pd;
    pd = NULL;
    OT_TRY(cpu_prim_step(c->x, n, n->op_type, p, n->n_in + 1, kinds, locs, mds, err));
    *done = true;
done:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    ot_free(mds);
    ot_free(scales);
    ot_free(kinds);
    ot_free(locs);
    return st;
}

/* ------------------------------------------------------------ softmax, lrn */

static ot_status do_softmax_lrn(ctx *c, bool *done, ot_err *err)
{
    ot_graph *g = c->g;
    const ot_node *n = c->n;
    int32_t xid = n->in[0], yid = n->out[0];
    if (!dn_is_f32(g, xid) || !dn_is_f32(g, yid))
        return OT_OK;
    const ot_value *xv = &g->values[xid];
    if (xv->ndim < 1 || dn_has_zero(xv))
        return OT_OK;
    dnnl_memory_desc_t xmd, ymd;
    cpu_val_md(c->x, xid, &xmd);
    dn_md_any(xv, &ymd);
    dnnl_primitive_desc_t pd = NULL;
    if (ot_node_is(n, OT_OP_LRN)) {
        int64_t size = ot_node_attr_int(n, "size", 1);
        if (size % 2 == 0 || xv->ndim < 3)
            return OT_OK; /* oneDNN's window is symmetric */
        dnnl_lrn_desc_t ld;
        if (dnnl_lrn_forward_desc_init(&ld, dnnl_forward_inference, dnnl_lrn_across_channels,
                                       &xmd, size, ot_node_attr_float(n, "alpha", 1e-4f),
                                       ot_node_attr_float(n, "beta", 0.75f),
                                       ot_node_attr_float(n, "bias", 1.0f)) != dnnl_success ||
            !dn_make_pd(c, &pd, &ld))
            return OT_OK;
    } else {
        int64_t axis = ot_node_attr_int(n, "axis", n->opset < 13 ? 1 : -1);
        int ax;
        if (!ot_op_axis(axis, xv->ndim, &ax))
            return OT_OK;
        if (n->opset < 13 && ax != xv->ndim - 1)
            return OT_OK; /* the 2-D coercion differs from a one-axis softmax */
        dnnl_softmax_v2_desc_t sd;
        dnnl_alg_kind_t alg = ot_node_is(n, OT_OP_SOFTMAX) ? dnnl_softmax_accurate
                                                             : dnnl_softmax_log;
        if (dnnl_softmax_v2_forward_desc_init(&sd, dnnl_forward_inference, alg, &xmd, &ymd, ax) !=
                dnnl_success ||
            !dn_make_pd(c, &pd, &sd))
            return OT_OK;
    }
    return dn_src_dst_step(c, pd, xid, &xmd, yid, done, err);
}

/* ----------------------------------------------------------- gemm, matmul */

/* A plain 2-D md of logical [rows, cols] over data stored as [rows, cols]
   (trans false) or [cols, rows] (trans true). */
static void md_2d(int64_t rows, int64_t cols, bool trans, dnnl_memory_desc_t *md)
{
    dnnl_dims_t dims = { rows, cols };
    dnnl_dims_t strides = { trans ? 1 : cols, trans ? rows : 1 };
    dnnl_memory_desc_init_by_strides(md, 2, dims, dnnl_f32, strides);
}

/* A matrix product's descriptors for dn_make_pd_prec: with bf16, bf16 copies
   of A and B (same strides), fp32 result. */
typedef struct matmul_args {
    dnnl_memory_desc_t a, b;
    const dnnl_memory_desc_t *c, *y;
} matmul_args;

static bool matmul_pd(ctx *c, bool bf16, void *arg, dnnl_primitive_desc_t *pd)
{
    const matmul_args *m = arg;
    dnnl_memory_desc_t a = m->a, b = m->b;
    dn_md_bf16(&a, bf16);
    dn_md_bf16(&b, bf16);
    dnnl_matmul_desc_t md;
    return dnnl_matmul_desc_init(&md, &a, &b, m->c, m->y) == dnnl_success && dn_make_pd(c, pd, &md);
}

static ot_status do_matmul(ctx *c, bool is_gemm, bool *done, ot_err *err)
{
    ot_status st = OT_OK;
    ot_graph *g = c->g;
    const ot_node *n = c->n;
    int32_t a = n->in[0], b = n->in[1], cid = is_gemm && n->n_in > 2 ? n->in[2] : -1;
    int32_t yid = n->out[0];
    if (!dn_is_f32(g, a) || !dn_is_f32(g, b) || !dn_is_f32(g, yid) ||
        (cid >= 0 && !dn_is_f32(g, cid)))
        return OT_OK;
    const ot_value *av = &g->values[a], *bv = &g->values[b], *yv = &g->values[yid];
    if (dn_has_zero(av) || dn_has_zero(bv) || dn_has_zero(yv))
        return OT_OK;
    dnnl_memory_desc_t amd, bmd, cmd, ymd;
    float alpha = 1.0f;
    if (is_gemm) {
        if (av->ndim != 2 || bv->ndim != 2 || yv->ndim != 2)
            return OT_OK;
        bool ta = ot_node_attr_int(n, "transA", 0) != 0, tb = ot_node_attr_int(n, "transB", 0) != 0;
        alpha = ot_node_attr_float(n, "alpha", 1.0f);
        float beta = ot_node_attr_float(n, "beta", 1.0f);
        if (cid >= 0 && beta != 1.0f)
            return OT_OK;
        int64_t M = yv->dims[0], N = yv->dims[1], K = ta ? av->dims[0] : av->dims[1];
        md_2d(M, K, ta, &amd);
        md_2d(K, N, tb, &bmd);
        md_2d(M, N, false, &ymd);
        if (cid >= 0) {
            const ot_value *cv = &g->values[cid];
            int64_t d[2] = { 1, 1 };
            if (cv->ndim == 1) {
                d[1] = cv->dims[0];
            } else if (cv->ndim == 2) {
                d[0] = cv->dims[0];
                d[1] = cv->dims[1];
            } else if (cv->ndim != 0) {
                return OT_OK;
            }
            dn_md_plain_dims(2, d, &cmd);
        }
    } else {
        if (av->ndim < 2 || bv->ndim < 2 || yv->ndim < 2)
            return OT_OK;
        int nd = yv->ndim;
        int64_t ad[OT_MAX_DIMS], bd[OT_MAX_DIMS];
        for (int i = 0; i < nd; i++) {
            int ia = i - (nd - av->ndim), ib = i - (nd - bv->ndim);
            ad[i] = ia >= 0 ? av->dims[ia] : 1;
            bd[i] = ib >= 0 ? bv->dims[ib] : 1;
        }
        dn_md_plain_dims(nd, ad, &amd);
        dn_md_plain_dims(nd, bd, &bmd);
        dn_md_plain_dims(nd, yv->dims, &ymd);
    }
    if (alpha != 1.0f)
        CPU_TRY(dnnl_primitive_attr_set_output_scales(c->attr, 1, 0, &alpha), err, n->op_type);
    dnnl_primitive_desc_t pd = NULL;
    matmul_args ma = { .a = amd, .b = bmd, .c = cid >= 0 ? &cmd : NULL, .y = &ymd };
    bool bf16;
    if (!dn_make_pd_prec(c, matmul_pd, &ma, &pd, &bf16))
        return OT_OK;
    dnnl_memory_desc_t amd16 = amd, bmd16 = bmd;
    dn_md_bf16(&amd16, bf16);
    dn_md_bf16(&bmd16, bf16);
    ot_loc la, lb, lc = { 0 }, ly;
    OT_TRY(cpu_val_plain(c->x, a, &la, err));
    OT_TRY(cpu_val_plain(c->x, b, &lb, err));
    if (bf16) {
        OT_TRY(cpu_reorder(c->x, &amd, la, &amd16, &la, err));
        OT_TRY(cpu_reorder(c->x, &bmd, lb, &bmd16, &lb, err));
    }
    if (cid >= 0)
        OT_TRY(cpu_val_plain(c->x, cid, &lc, err));
    OT_TRY(cpu_val_define(c->x, yid, NULL, &ly, err));
    int kinds[4] = { DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST, DNNL_ARG_BIAS };
    ot_loc locs[4] = { la, lb, ly, lc };
    dnnl_memory_desc_t mds[4] = { amd16, bmd16, ymd, cmd };
    dnnl_primitive_desc_t p = pd;
    pd = NULL;
    OT_TRY(cpu_prim_step(c->x, n, n->op_type, p, cid >= 0 ? 4 : 3, kinds, locs, mds, err));
    *done = true;
done:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    return st;
}

/* ---------------------------------------------------- conv backward (data, filter) */

/* ConvGradData (dY, W, x_shape) -> dX and ConvGradFilter (dY, X) -> dW [, dB]:
   oneDNN's backward convolutions, hinted by a forward-training primitive
   descriptor of the same shapes (the v2 API requires the hint). */
/* A backward convolution's descriptors for dn_make_pd_prec, hinted by a
   forward-training descriptor of the same shapes (the v2 API requires the
   hint). With bf16: bf16 dY and the forward operand the gradient reads (W
   for dX, X for dW); the gradient itself in fp32, for the optimizer. */
typedef struct conv_grad_args {
    dnnl_memory_desc_t x, w, dy;
    const dnnl_memory_desc_t *b;
    const window *win;
    bool is_data;
    dnnl_primitive_desc_t fwd; /* the hint of the descriptor made: the caller
                                  destroys it after the primitive is made */
} conv_grad_args;

static bool conv_bwd_pd(ctx *c, bool bf16, void *arg, dnnl_primitive_desc_t *pd)
{
    conv_grad_args *a = arg;
    const window *w = a->win;
    dnnl_memory_desc_t fx = a->x, fw = a->w, fy = a->dy, bx = a->x, bw = a->w, by = a->dy;
    dn_md_bf16(&fx, bf16);
    dn_md_bf16(&fw, bf16);
    dn_md_bf16(&by, bf16);
    dn_md_bf16(a->is_data ? &bw : &bx, bf16);
    dnnl_convolution_desc_t fd, bd;
    dnnl_primitive_desc_t fwd = NULL;
    if (dnnl_dilated_convolution_forward_desc_init(&fd, dnnl_forward_training,
                                                   dnnl_convolution_direct, &fx, &fw, a->b, &fy,
                                                   w->strides, w->dil, w->pl,
                                                   w->pr) != dnnl_success ||
        !dn_make_pd(c, &fwd, &fd))
        return false;
    dnnl_status_t s2 =
        a->is_data ? dnnl_dilated_convolution_backward_data_desc_init(
                         &bd, dnnl_convolution_direct, &bx, &bw, &by, w->strides, w->dil, w->pl,
                         w->pr)
                   : dnnl_dilated_convolution_backward_weights_desc_init(
                         &bd, dnnl_convolution_direct, &bx, &bw, a->b, &by, w->strides, w->dil,
                         w->pl, w->pr);
    if (s2 == dnnl_success && dn_make_pd_hint(c, pd, &bd, fwd)) {
        a->fwd = fwd;
        return true;
    }
    dnnl_primitive_desc_destroy(fwd);
    return false;
}

static ot_status do_conv_grad(ctx *c, bool is_data, bool *done, ot_err *err)
{
    ot_status st = OT_OK;
    ot_graph *g = c->g;
    const ot_node *n = c->n;
    dnnl_primitive_desc_t pd = NULL;
    int32_t dy = n->in[0], other = n->in[1];
    int32_t out0 = n->out[0], db = !is_data && n->n_out > 1 ? n->out[1] : -1;
    if (!dn_is_f32(g, dy) || !dn_is_f32(g, other) || !dn_is_f32(g, out0) ||
        (db >= 0 && !dn_is_f32(g, db)))
        return OT_OK;
    const ot_value *dyv = &g->values[dy];
    /* x: the forward input's shape; w: the weights' */
    const ot_value *xv = is_data ? &g->values[out0] : &g->values[other];
    const ot_value *wv = is_data ? &g->values[other] : &g->values[out0];
    if (dn_has_zero(xv) || dn_has_zero(dyv) || dn_has_zero(wv) || xv->ndim < 3 || xv->ndim > 5)
        return OT_OK;
    int64_t group = ot_node_attr_int(n, "group", 1);
    window w;
    if (!dn_get_window(g, n, xv, dyv, wv->dims + 2, &w))
        return OT_OK;
    dnnl_memory_desc_t xmd, wmd, dymd, bmd, wplain;
    dn_md_any(xv, &xmd);
    dn_md_any(dyv, &dymd);
    conv_weight_mds(wv, group, &wmd, &wplain);
    int64_t oc = wv->dims[0];
    dn_md_plain_dims(1, &oc, &bmd);
    bool nxc = dn_blk_grouped_nxc(c, is_data ? dy : other, group, xv->dims[1], xv, &xmd, dyv,
                                  &dymd) ||
               (!is_data && dn_blk_depthwise_grad_nxc(c, group, xv->dims[1], wv->dims + 2,
                                                      wv->ndim - 2, xv, &xmd, dyv, &dymd));
    conv_grad_args ga = { .x = xmd, .w = wmd, .dy = dymd, .b = db >= 0 ? &bmd : NULL, .win = &w,
                          .is_data = is_data };
    if (nxc && (!dn_make_pd_prec(c, conv_bwd_pd, &ga, &pd, NULL) || dn_blk_is_ref(pd))) {
        if (pd)
            dnnl_primitive_desc_destroy(pd);
        if (ga.fwd)
            dnnl_primitive_desc_destroy(ga.fwd);
        pd = ga.fwd = NULL;
        dn_md_any(xv, &ga.x);
        dn_md_any(dyv, &ga.dy);
    }
    if (!pd && !dn_make_pd_prec(c, conv_bwd_pd, &ga, &pd, NULL))
        goto done;
    const dnnl_memory_desc_t *pdy = dn_pd_md(pd, dnnl_query_diff_dst_md);
    ot_loc ldy, l1, l2, lb = { 0 }, dw_plain = { .kind = OT_LOC_NONE };
    dnnl_memory_desc_t dw_md;
    OT_TRY(cpu_val_as(c->x, dy, pdy, &ldy, err));
    int kinds[4];
    ot_loc locs[4];
    dnnl_memory_desc_t mds[4];
    int na;
    if (is_data) {
        const dnnl_memory_desc_t *pw = dn_pd_md(pd, dnnl_query_weights_md);
        const dnnl_memory_desc_t *pdx = dn_pd_md(pd, dnnl_query_diff_src_md);
        if (c->cs->vals[other].has_md) { /* kept in a layout (cpu_state.c) */
            OT_TRY(cpu_val_as(c->x, other, pw, &l1, err));
        } else {
            ot_loc wplain_loc;
            OT_TRY(cpu_val_plain(c->x, other, &wplain_loc, err));
            OT_TRY(cpu_reorder(c->x, &wplain, wplain_loc, pw, &l1, err));
        }
        OT_TRY(cpu_val_define(c->x, out0, pdx, &l2, err));
        kinds[0] = DNNL_ARG_DIFF_DST, kinds[1] = DNNL_ARG_WEIGHTS, kinds[2] = DNNL_ARG_DIFF_SRC;
        locs[0] = ldy, locs[1] = l1, locs[2] = l2;
        mds[0] = *pdy, mds[1] = *pw, mds[2] = *pdx;
        na = 3;
    } else {
        const dnnl_memory_desc_t *px = dn_pd_md(pd, dnnl_query_src_md);
        const dnnl_memory_desc_t *pdw = dn_pd_md(pd, dnnl_query_diff_weights_md);
        OT_TRY(cpu_val_as(c->x, other, px, &l1, err));
        /* dW is read as the plain [OC, C/group, k...] tensor, so a grouped
           layout is reordered by hand, from a buffer of this step, after
           it; otherwise the output takes pdw */
        OT_TRY(cpu_val_define(c->x, out0, group > 1 ? NULL : pdw, &l2, err));
        if (group > 1 && !dnnl_memory_desc_equal(pdw, &wplain)) {
            int id;
            dw_plain = l2;
            dw_md = *pdw;
            OT_TRY(ot_exec_add_buf(c->x, dnnl_memory_desc_get_size(pdw), c->cs->n_steps,
                                   c->cs->n_steps + 1, &id, err));
            l2 = (ot_loc){ .kind = OT_LOC_BUF, .id = id };
        }
        if (db >= 0)
            OT_TRY(cpu_val_define(c->x, db, NULL, &lb, err));
        kinds[0] = DNNL_ARG_DIFF_DST, kinds[1] = DNNL_ARG_SRC, kinds[2] = DNNL_ARG_DIFF_WEIGHTS;
        kinds[3] = DNNL_ARG_DIFF_BIAS;
        locs[0] = ldy, locs[1] = l1, locs[2] = l2, locs[3] = lb;
        mds[0] = *pdy, mds[1] = *px, mds[2] = *pdw, mds[3] = bmd;
        na = db >= 0 ? 4 : 3;
    }
    dnnl_primitive_desc_t p = pd;
    pd = NULL;
    OT_TRY(cpu_prim_step(c->x, n, n->op_type, p, na, kinds, locs, mds, err));
    if (dw_plain.kind != OT_LOC_NONE)
        OT_TRY(cpu_reorder_into(c->x, &dw_md, l2, &wplain, dw_plain, err));
    *done = true;
done:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (ga.fwd)
        dnnl_primitive_desc_destroy(ga.fwd);
    return st;
}

/* A trained weight read first by this Conv is kept between steps in the
   layout its fp32 gradient comes in (cpu_state.c): the diff-weights layout
   of the backward-weights primitive of the same shapes (without this Conv's
   post-ops), which for fp32 is the forward weights' layout here, so neither
   the forward convolution nor the update reorders; else the forward
   weights' layout (pw). */
static void keep_weights(ctx *c, const conv_args *ca, int32_t wid, const dnnl_memory_desc_t *pw)
{
    ctx bc = *c;
    dnnl_primitive_desc_t pd = NULL;
    conv_grad_args ga = { .x = ca->x, .w = ca->w, .dy = ca->y, .b = ca->b, .win = ca->win };
    if (dnnl_primitive_attr_create(&bc.attr) == dnnl_success) {
        if (dnnl_primitive_attr_set_scratchpad_mode(bc.attr, dnnl_scratchpad_mode_user) ==
                dnnl_success &&
            dn_make_pd_prec(&bc, conv_bwd_pd, &ga, &pd, NULL))
            pw = dn_pd_md(pd, dnnl_query_diff_weights_md);
        dnnl_primitive_attr_destroy(bc.attr);
    }
    cpu_state_keep(c->x, wid, pw);
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (ga.fwd)
        dnnl_primitive_desc_destroy(ga.fwd);
}

static ot_status do_gemm(ctx *c, bool *done, ot_err *err) { return do_matmul(c, true, done, err); }
static ot_status do_matmul_op(ctx *c, bool *done, ot_err *err)
{
    return do_matmul(c, false, done, err);
}
static ot_status do_sum(ctx *c, bool *done, ot_err *err) { return do_sum_concat(c, false, done, err); }
static ot_status do_concat(ctx *c, bool *done, ot_err *err)
{
    return do_sum_concat(c, true, done, err);
}
static ot_status do_conv_grad_data(ctx *c, bool *done, ot_err *err)
{
    return do_conv_grad(c, true, done, err);
}
static ot_status do_conv_grad_filter(ctx *c, bool *done, ot_err *err)
{
    return do_conv_grad(c, false, done, err);
}

/* The oneDNN builders, indexed by op id (ops.def) like the plain kernels'
   table (ref.c). A builder appends the node's steps, or leaves *done false
   when oneDNN cannot take the node as compiled (the plain kernel runs it);
   an op without a row always runs its plain kernel. */
typedef ot_status (*dn_build_fn)(ctx *c, bool *done, ot_err *err);

static const dn_build_fn dn_table[OT_OP_COUNT_] = {
    [OT_OP_CONV] = do_conv,
    [OT_OP_MAXPOOL] = do_pool,
    [OT_OP_AVGPOOL] = do_pool,
    [OT_OP_GLOBALAVGPOOL] = do_pool,
    [OT_OP_GLOBALMAXPOOL] = do_pool,
    [OT_OP_BATCHNORM] = do_bn,
    [OT_OP_RELU] = do_eltwise,
    [OT_OP_LEAKYRELU] = do_eltwise,
    [OT_OP_SIGMOID] = do_eltwise,
    [OT_OP_CLIP] = do_eltwise,
    [OT_OP_ADD] = do_binary,
    [OT_OP_MUL] = do_binary,
    [OT_OP_SUB] = do_binary,
    [OT_OP_DIV] = do_binary,
    [OT_OP_POW] = do_eltwise,
    [OT_OP_SQRT] = do_eltwise,
    [OT_OP_RECIPROCAL] = do_eltwise,
    [OT_OP_EXP] = do_eltwise,
    [OT_OP_LOG] = do_eltwise,
    [OT_OP_TANH] = do_eltwise,
    [OT_OP_HARDSWISH] = do_eltwise,
    [OT_OP_ELU] = do_eltwise,
    [OT_OP_GELU] = do_eltwise,
    [OT_OP_REDUCE_MEAN] = dn_reduce,
    [OT_OP_REDUCE_SUM] = dn_reduce,
    [OT_OP_REDUCE_MAX] = dn_reduce,
    [OT_OP_REDUCE_L2] = dn_reduce,
    [OT_OP_REDUCE_GRAD] = dn_reduce_grad,
    [OT_OP_LAYERNORM] = dn_layernorm,
    [OT_OP_EINSUM] = dn_einsum,
    [OT_OP_SUM] = do_sum,
    [OT_OP_CONCAT] = do_concat,
    [OT_OP_SOFTMAX] = do_softmax_lrn,
    [OT_OP_LOGSOFTMAX] = do_softmax_lrn,
    [OT_OP_LRN] = do_softmax_lrn,
    [OT_OP_GEMM] = do_gemm,
    [OT_OP_MATMUL] = do_matmul_op,
    [OT_OP_CONV_GRAD_DATA] = do_conv_grad_data,
    [OT_OP_CONV_GRAD_FILTER] = do_conv_grad_filter,
    [OT_OP_BATCHNORM_TRAIN] = dn_bn_train,
    [OT_OP_BATCHNORM_GRAD] = dn_bn_grad,
    [OT_OP_RELU_GRAD] = dn_relu_grad,
    [OT_OP_MAXPOOL_GRAD] = dn_maxpool_grad,
    [OT_OP_GLOBALAVGPOOL_GRAD] = dn_gap_grad,
    [OT_OP_HARDSIGMOID] = dn_blk_eltwise,
    [OT_OP_UNARY_GRAD] = dn_blk_eltwise,
    [OT_OP_REDUCE_SUM_TO] = dn_blk_sum_to,
};

ot_status cpu_dnnl_node(ot_exec *x, int32_t node_id, bool *done, ot_err *err)
{
    ot_status st = OT_OK;
    ctx c = { .x = x, .cs = x->be_state, .g = x->g, .n = &x->g->nodes[node_id],
              .node_id = node_id };
    *done = false;
    const ot_op_desc *op = c.n->op;
    if (!op || (unsigned)op->id >= OT_OP_COUNT_ || ot_op_table[op->id] != op || !dn_table[op->id])
        return OT_OK;
    if (c.n->n_out < 1 || c.n->out[0] < 0)
        return OT_OK;
    const char *t = c.n->op_type;
    CPU_TRY(dnnl_primitive_attr_create(&c.attr), err, t);
    CPU_TRY(dnnl_primitive_attr_set_scratchpad_mode(c.attr, dnnl_scratchpad_mode_user), err, t);
    st = dn_table[op->id](&c, done, err);
done:
    if (c.attr)
        dnnl_primitive_attr_destroy(c.attr);
    return st;
}
