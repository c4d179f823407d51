/*
 * cpu_dnnl_train.c: training ops on oneDNN 2.6 primitives, in the layout the
 * forward pass left (in a training graph the convolutions choose a blocked
 * one, nChw16c on AVX-512), so that a training step needs no reorders
 * between its convolutions, batch norms, ReLUs and pools.
 *
 *   BatchNormTrain  batch normalization forward_training (mean and variance
 *                   out), then a small plain step for the running estimates
 *                   and the saved inverse std; the variance is kept beside
 *                   the inverse std (cpu_val.aux) for the backward primitive
 *   BatchNormGrad   batch normalization backward (or backward_data when
 *                   dScale and dB are not wanted), hinted by a forward one;
 *                   training_mode=0 uses the running statistics
 *   ReluGrad        eltwise backward, relu_use_dst_for_bwd (dY * (Y > 0)); on
 *                   the output of a BatchNormTrain+Relu, when only the
 *                   BatchNormGrad reads its result, joined with it: batch
 *                   normalization backward with fuse_norm_relu on the
 *                   workspace the forward kept (cpu_val.aux of the output)
 *   MaxPool         forward_training with a workspace (cpu_val.aux of its
 *                   output) when the graph holds its MaxPoolGrad
 *   MaxPoolGrad     pooling backward with that workspace
 *   GlobalAveragePoolGrad  average pooling backward, dX in the layout of the
 *                   forward pool's input
 *
 * Float32 only; anything else (or a shape oneDNN refuses) stays with the
 * plain kernels, which are also what the tests compare against.
 */
#include <math.h>
#include <string.h>

#include "cpu_dnnl_impl.h"
#include "ops/grad_util.h"

/* A buffer alive during the step about to be appended. */
static ot_status temp_buf(ctx *c, size_t bytes, ot_loc *loc, ot_err *err)
{
    int id;
    ot_status st = ot_exec_add_buf(c->x, bytes, c->cs->n_steps, c->cs->n_steps, &id, err);
    if (st == OT_OK)
        *loc = (ot_loc){ .kind = OT_LOC_BUF, .id = id };
    return st;
}

static bool is_vec(const ot_graph *g, int32_t vid, int64_t len)
{
    return dn_is_f32(g, vid) && g->values[vid].ndim == 1 && g->values[vid].dims[0] == len;
}

static ot_tensor vec_tensor(int64_t len)
{
    ot_tensor t = { .dtype = OT_DTYPE_FLOAT, .ndim = 1 };
    t.dims[0] = len;
    t.bytes = sizeof(float) * (size_t)len;
    return t;
}

static int32_t out_or_none(const ot_node *n, int k)
{
    return k < n->n_out ? n->out[k] : -1;
}

/* ---------------------------------------------------------- BatchNormTrain */

/* The running estimates and the saved inverse std from oneDNN's batch mean
   and (biased) variance. in: mean, var, running_mean, running_var; out:
   new_running_mean, new_running_var, saved_inv_std (each may be NULL). */
static ot_status bn_stats(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                          ot_tensor *const *out, ot_err *err)
{
    (void)err;
    const ot_value *xv = &g->values[n->in[0]];
    double M = 1;
    for (int i = 0; i < xv->ndim; i++)
        M *= i == 1 ? 1.0 : (double)xv->dims[i];
    double eps = ot_node_attr_float(n, "epsilon", 1e-5f);
    double momentum = ot_node_attr_float(n, "momentum", 0.9f);
    const float *mean = in[0]->data, *var = in[1]->data, *rm = in[2]->data, *rv = in[3]->data;
    float *nrm = out[0] ? out[0]->data : NULL, *nrv = out[1] ? out[1]->data : NULL;
    float *inv = out[2] ? out[2]->data : NULL;
    for (int64_t c = 0; c < in[0]->dims[0]; c++) {
        double v = (double)var[c], unbiased = M > 1 ? v * M / (M - 1) : v;
        if (nrm)
            nrm[c] = (float)((double)rm[c] * momentum + (double)mean[c] * (1 - momentum));
        if (nrv)
            nrv[c] = (float)((double)rv[c] * momentum + unbiased * (1 - momentum));
        if (inv)
            inv[c] = (float)(1.0 / sqrt(v + eps));
    }
    return OT_OK;
}

ot_status dn_bn_train(ctx *c, bool *done, ot_err *err)
{
    ot_status st = OT_OK;
    ot_graph *g = c->g;
    const ot_node *n = c->n;
    dnnl_primitive_desc_t pd = NULL;
    /* sync: statistics over the ranks, which the plain kernel reduces */
    if (n->n_in != 5 || n->out[0] < 0 || ot_node_attr_int(n, "sync", 0))
        return OT_OK;
    int32_t xid = n->in[0], yid = n->out[0];
    const ot_value *xv = &g->values[xid];
    if (!dn_is_f32(g, xid) || !dn_is_f32(g, yid) || xv->ndim < 2 || xv->ndim > 5 ||
        dn_has_zero(xv))
        return OT_OK;
    int64_t C = xv->dims[1];
    for (int k = 1; k < 5; k++)
        if (!is_vec(g, n->in[k], C))
            return OT_OK;
    for (int k = 1; k < 5; k++)
        if (out_or_none(n, k) >= 0 && !is_vec(g, n->out[k], C))
            return OT_OK;
    float eps = ot_node_attr_float(n, "epsilon", 1e-5f);
    dnnl_memory_desc_t xmd, cmd;
    cpu_val_md(c->x, xid, &xmd);
    dn_md_plain_dims(1, &C, &cmd);
    /* a Relu that alone reads the normalised output is fused: the primitive
       writes the Relu's output (its gradient needs only that), and the
       pre-activation values are never stored */
    int32_t relu = -1;
    ot_fusion f = { .kind = OT_FUSE_NONE };
    if (c->x->fuse.uses)
        ot_fuse_find(&c->x->fuse, c->node_id, c->cs->skip, &f);
    if (f.kind == OT_FUSE_ACT)
        relu = f.act;
    dnnl_batch_normalization_desc_t bd;
    for (int fused = relu >= 0; fused >= 0 && !pd; fused--) {
        unsigned flags = dnnl_use_scale | dnnl_use_shift | (fused ? dnnl_fuse_norm_relu : 0u);
        if (dnnl_batch_normalization_forward_desc_init(&bd, dnnl_forward_training, &xmd, eps,
                                                       flags) == dnnl_success &&
            dn_make_pd(c, &pd, &bd))
            break;
        relu = -1;
    }
    if (!pd)
        return OT_OK;
    int32_t out = relu >= 0 ? g->nodes[relu].out[0] : yid;
    const dnnl_memory_desc_t *py = dn_pd_md(pd, dnnl_query_dst_md);
    ot_loc lx, lscale, lshift, ly, lmean, lvar, lws = { 0 };
    OT_TRY(cpu_val_as(c->x, xid, &xmd, &lx, err));
    OT_TRY(cpu_val_plain(c->x, n->in[1], &lscale, err));
    OT_TRY(cpu_val_plain(c->x, n->in[2], &lshift, err));
    OT_TRY(cpu_val_define(c->x, out, py, &ly, err));
    if (out_or_none(n, 3) >= 0)
        OT_TRY(cpu_val_define(c->x, n->out[3], NULL, &lmean, err));
    else
        OT_TRY(temp_buf(c, sizeof(float) * (size_t)C, &lmean, err));
    OT_TRY(temp_buf(c, sizeof(float) * (size_t)C, &lvar, err));
    const dnnl_memory_desc_t *pws = relu >= 0 ? dn_pd_md(pd, dnnl_query_workspace_md) : NULL;
    dnnl_memory_desc_t wsmd; /* a copy: the step below owns (and frees) pd */
    if (pws) {
        wsmd = *pws;
        OT_TRY(temp_buf(c, dnnl_memory_desc_get_size(pws), &lws, err));
    }
    {
        int kinds[7] = { DNNL_ARG_SRC, DNNL_ARG_SCALE,    DNNL_ARG_SHIFT,    DNNL_ARG_DST,
                         DNNL_ARG_MEAN, DNNL_ARG_VARIANCE, DNNL_ARG_WORKSPACE };
        ot_loc locs[7] = { lx, lscale, lshift, ly, lmean, lvar, lws };
        dnnl_memory_desc_t mds[7] = { xmd, cmd, cmd, *py, cmd, cmd, pws ? *pws : cmd };
        dnnl_primitive_desc_t p = pd;
        pd = NULL;
        OT_TRY(cpu_prim_step(c->x, n, relu >= 0 ? "BatchNormTrain+Relu" : n->op_type, p,
                             pws ? 7 : 6, kinds, locs, mds, err));
    }
    if (relu >= 0) {
        /* the ReLU mask, for a BatchNormGrad that applies it (bn_grad) */
        cpu_val *ov = &c->cs->vals[out];
        OT_TRY(cpu_md_keep(&ov->aux_md, pws ? &wsmd : NULL, err));
        ov->aux = lws;
        c->cs->skip[relu] = 1;
    }
    /* running estimates and the saved inverse std */
    ot_tensor tin[4], tout[3];
    ot_loc lin[4] = { lmean, lvar }, lout[3] = { { 0 } };
    OT_TRY(cpu_val_plain(c->x, n->in[3], &lin[2], err));
    OT_TRY(cpu_val_plain(c->x, n->in[4], &lin[3], err));
    for (int k = 0; k < 4; k++)
        tin[k] = vec_tensor(C);
    const int outs[3] = { 1, 2, 4 };
    for (int k = 0; k < 3; k++) {
        tout[k] = vec_tensor(C);
        if (out_or_none(n, outs[k]) >= 0)
            OT_TRY(cpu_val_define(c->x, n->out[outs[k]], NULL, &lout[k], err));
    }
    OT_TRY(cpu_fn_step(c->x, n, "BatchNormStats", bn_stats, 4, tin, lin, 3, tout, lout, err));
    if (out_or_none(n, 4) >= 0) {
        cpu_val *inv = &c->cs->vals[n->out[4]];
        OT_TRY(cpu_md_keep(&inv->aux_md, &cmd, err));
        inv->aux = lvar;
    }
    *done = true;
done:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    return st;
}

/* ----------------------------------------------------------- BatchNormGrad */

/* BatchNormGrad; with relu (a ReluGrad node whose result only this node
   reads, on the output of a BatchNormTrain+Relu that kept its workspace),
   batch normalization backward with fuse_norm_relu: the ReluGrad's incoming
   gradient, masked by the workspace inside the primitive, replaces the
   ReluGrad step (the mask multiplies by 1 or 0: the same values). */
static ot_status bn_grad(ctx *c, const ot_node *relu, bool *done, ot_err *err)
{
    ot_status st = OT_OK;
    ot_graph *g = c->g;
    const ot_node *n = c->n;
    dnnl_primitive_desc_t fwd = NULL, pd = NULL;
    if (n->n_in != 5 || ot_node_attr_int(n, "sync", 0))
        return OT_OK;
    int32_t dy = relu ? relu->in[0] : n->in[0], xid = n->in[1];
    const cpu_val *wsv = relu ? &c->cs->vals[relu->in[1]] : NULL;
    if (wsv && (wsv->aux.kind == OT_LOC_NONE || !wsv->aux_md))
        return OT_OK;
    int32_t dx = out_or_none(n, 0), dscale = out_or_none(n, 1), dbias = out_or_none(n, 2);
    const ot_value *xv = &g->values[xid];
    if (!dn_is_f32(g, dy) || !dn_is_f32(g, xid) || xv->ndim < 2 || xv->ndim > 5 ||
        dn_has_zero(xv) || !ot_op_grad_same_shape(g, dy, xid))
        return OT_OK;
    int64_t C = xv->dims[1];
    for (int k = 2; k < 5; k++)
        if (!is_vec(g, n->in[k], C))
            return OT_OK;
    if ((dx >= 0 && (!dn_is_f32(g, dx) || !ot_op_grad_same_shape(g, dx, xid))) ||
        (dscale >= 0 && !is_vec(g, dscale, C)) || (dbias >= 0 && !is_vec(g, dbias, C)))
        return OT_OK;
    bool training = ot_node_attr_int(n, "training_mode", 1) != 0;
    ot_loc lvar = { 0 };
    if (training) {
        /* the batch variance BatchNormTrain's primitive kept beside inv_std */
        const cpu_val *inv = &c->cs->vals[n->in[4]];
        if (inv->aux.kind == OT_LOC_NONE)
            return OT_OK;
        lvar = inv->aux;
    }
    float eps = ot_node_attr_float(n, "epsilon", 1e-5f);
    unsigned flags = dnnl_use_scale | dnnl_use_shift | (training ? 0u : dnnl_use_global_stats) |
                     (wsv ? dnnl_fuse_norm_relu : 0u);
    bool params = dscale >= 0 || dbias >= 0;
    dnnl_memory_desc_t xmd, cmd;
    cpu_val_md(c->x, xid, &xmd);
    dn_md_plain_dims(1, &C, &cmd);
    dnnl_batch_normalization_desc_t fd, bd;
    if (dnnl_batch_normalization_forward_desc_init(&fd, dnnl_forward_training, &xmd, eps, flags) !=
            dnnl_success ||
        !dn_make_pd(c, &fwd, &fd) ||
        dnnl_batch_normalization_backward_desc_init(&bd,
                                                    params ? dnnl_backward : dnnl_backward_data,
                                                    &xmd, &xmd, eps, flags) != dnnl_success ||
        !dn_make_pd_hint(c, &pd, &bd, fwd))
        goto done;
    const dnnl_memory_desc_t *pdy = dn_pd_md(pd, dnnl_query_diff_dst_md);
    const dnnl_memory_desc_t *pdx = dn_pd_md(pd, dnnl_query_diff_src_md);
    const dnnl_memory_desc_t *pws = wsv ? dn_pd_md(pd, dnnl_query_workspace_md) : NULL;
    if (wsv && (!pws || !dnnl_memory_desc_equal(pws, wsv->aux_md)))
        goto done;
    ot_loc l[10];
    OT_TRY(cpu_val_as(c->x, xid, &xmd, &l[0], err));
    OT_TRY(cpu_val_plain(c->x, n->in[3], &l[1], err));
    if (!training)
        OT_TRY(cpu_val_plain(c->x, n->in[4], &lvar, err));
    l[2] = lvar;
    OT_TRY(cpu_val_as(c->x, dy, pdy, &l[3], err));
    OT_TRY(cpu_val_plain(c->x, n->in[2], &l[4], err));
    if (dx >= 0)
        OT_TRY(cpu_val_define(c->x, dx, pdx, &l[5], err));
    else
        OT_TRY(temp_buf(c, dnnl_memory_desc_get_size(pdx), &l[5], err));
    const int32_t pv[2] = { dscale, dbias };
    for (int k = 0; k < 2 && params; k++) {
        if (pv[k] >= 0)
            OT_TRY(cpu_val_define(c->x, pv[k], NULL, &l[6 + k], err));
        else
            OT_TRY(temp_buf(c, sizeof(float) * (size_t)C, &l[6 + k], err));
    }
    l[8] = l[4]; /* oneDNN 2.6 wants a shift argument with use_shift even in backward,
                    where the result does not depend on it: any [C] buffer */
    l[9] = wsv ? wsv->aux : l[4];
    int kinds[10] = { DNNL_ARG_SRC,        DNNL_ARG_MEAN,       DNNL_ARG_VARIANCE,
                      DNNL_ARG_DIFF_DST,   DNNL_ARG_SCALE,      DNNL_ARG_DIFF_SRC,
                      DNNL_ARG_DIFF_SCALE, DNNL_ARG_DIFF_SHIFT, DNNL_ARG_SHIFT,
                      DNNL_ARG_WORKSPACE };
    dnnl_memory_desc_t mds[10] = { xmd, cmd, cmd, *pdy, cmd, *pdx, cmd, cmd, cmd,
                                   wsv ? *pws : cmd };
    dnnl_primitive_desc_t p = pd;
    pd = NULL;
    OT_TRY(cpu_prim_step(c->x, n, wsv ? "ReluGrad+BatchNormGrad" : n->op_type, p, wsv ? 10 : 9,
                         kinds, l, mds, err));
    *done = true;
done:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (fwd)
        dnnl_primitive_desc_destroy(fwd);
    return st;
}

ot_status dn_bn_grad(ctx *c, bool *done, ot_err *err) { return bn_grad(c, NULL, done, err); }

/* ---------------------------------------------------------------- ReluGrad */

ot_status dn_relu_grad(ctx *c, bool *done, ot_err *err)
{
    ot_status st = OT_OK;
    ot_graph *g = c->g;
    const ot_node *n = c->n;
    dnnl_primitive_desc_t fwd = NULL, pd = NULL;
    int32_t dy = n->in[0], yid = n->in[1], dx = n->out[0];
    if (!dn_is_f32(g, dy) || !dn_is_f32(g, yid) || !dn_is_f32(g, dx))
        return OT_OK;
    /* the ReLU of a BatchNormTrain+Relu whose gradient only the
       BatchNormGrad reads: one fused backward step, built now */
    int32_t bn = c->cs->vals[yid].aux_md ? dn_sole_consumer(c, dx, c->node_id) : -1;
    if (bn >= 0 && ot_node_is(&g->nodes[bn], OT_OP_BATCHNORM_GRAD) && g->nodes[bn].in[0] == dx &&
        !c->cs->skip[bn]) {
        ctx bc = *c;
        bc.n = &g->nodes[bn];
        bc.node_id = bn;
        OT_TRY(bn_grad(&bc, n, done, err));
        if (*done) {
            c->cs->skip[bn] = 1;
            return OT_OK;
        }
    }
    const ot_value *yv = &g->values[yid];
    if (yv->ndim < 1 || dn_has_zero(yv) || !ot_op_grad_same_shape(g, yid, dy) ||
        !ot_op_grad_same_shape(g, yid, dx))
        return OT_OK;
    dnnl_memory_desc_t ymd;
    cpu_val_md(c->x, yid, &ymd);
    dnnl_eltwise_desc_t fd, bd;
    if (dnnl_eltwise_forward_desc_init(&fd, dnnl_forward_training,
                                       dnnl_eltwise_relu_use_dst_for_bwd, &ymd, 0.0f,
                                       0.0f) != dnnl_success ||
        !dn_make_pd(c, &fwd, &fd) ||
        dnnl_eltwise_backward_desc_init(&bd, dnnl_eltwise_relu_use_dst_for_bwd, &ymd, &ymd, 0.0f,
                                        0.0f) != dnnl_success ||
        !dn_make_pd_hint(c, &pd, &bd, fwd))
        goto done;
    const dnnl_memory_desc_t *pdy = dn_pd_md(pd, dnnl_query_diff_dst_md);
    const dnnl_memory_desc_t *pdx = dn_pd_md(pd, dnnl_query_diff_src_md);
    ot_loc l[3];
    OT_TRY(cpu_val_as(c->x, dy, pdy, &l[0], err));
    OT_TRY(cpu_val_as(c->x, yid, &ymd, &l[1], err));
    OT_TRY(cpu_val_define(c->x, dx, pdx, &l[2], err));
    int kinds[3] = { DNNL_ARG_DIFF_DST, DNNL_ARG_DST, DNNL_ARG_DIFF_SRC };
    dnnl_memory_desc_t mds[3] = { *pdy, ymd, *pdx };
    dnnl_primitive_desc_t p = pd;
    pd = NULL;
    OT_TRY(cpu_prim_step(c->x, n, n->op_type, p, 3, kinds, l, mds, err));
    *done = true;
done:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (fwd)
        dnnl_primitive_desc_destroy(fwd);
    return st;
}

/* ---------------------------------------------------------- MaxPool(Grad) */

bool dn_maxpool_has_grad(const ctx *c, int32_t xid)
{
    for (int32_t i = 0; i < c->g->n_nodes; i++) {
        const ot_node *m = &c->g->nodes[i];
        if (m->op == ot_op_table[OT_OP_MAXPOOL_GRAD] && m->n_in > 1 && m->in[1] == xid)
            return true;
    }
    return false;
}

static bool window_eq(const window *a, const window *b)
{
    if (a->k != b->k)
        return false;
    for (int i = 0; i < a->k; i++)
        if (a->kernel[i] != b->kernel[i] || a->strides[i] != b->strides[i] ||
            a->dil[i] != b->dil[i] || a->pl[i] != b->pl[i] || a->pr[i] != b->pr[i])
            return false;
    return true;
}

/* The pooling forward descriptor of a max pool over X (as xmd) into Y (as ymd). */
static bool maxpool_fwd(ctx *c, const window *w, const dnnl_memory_desc_t *xmd,
                        const dnnl_memory_desc_t *ymd, dnnl_primitive_desc_t *pd)
{
    dnnl_pooling_v2_desc_t d;
    return dnnl_pooling_v2_forward_desc_init(&d, dnnl_forward_training, dnnl_pooling_max, xmd,
                                             ymd, w->strides, w->kernel, w->dil, w->pl,
                                             w->pr) == dnnl_success &&
           dn_make_pd(c, pd, &d);
}

ot_status dn_maxpool_train(ctx *c, const window *w, bool *done, ot_err *err)
{
    ot_status st = OT_OK;
    const ot_node *n = c->n;
    dnnl_primitive_desc_t pd = NULL;
    int32_t xid = n->in[0], yid = n->out[0];
    dnnl_memory_desc_t xmd, ymd;
    cpu_val_md(c->x, xid, &xmd);
    dn_md_any(&c->g->values[yid], &ymd);
    if (!maxpool_fwd(c, w, &xmd, &ymd, &pd))
        return OT_OK;
    const dnnl_memory_desc_t *py = dn_pd_md(pd, dnnl_query_dst_md);
    const dnnl_memory_desc_t *pws = dn_pd_md(pd, dnnl_query_workspace_md);
    if (!pws)
        goto done;
    ot_loc l[3];
    OT_TRY(cpu_val_as(c->x, xid, &xmd, &l[0], err));
    OT_TRY(cpu_val_define(c->x, yid, py, &l[1], err));
    OT_TRY(temp_buf(c, dnnl_memory_desc_get_size(pws), &l[2], err));
    cpu_val *yv = &c->cs->vals[yid];
    OT_TRY(cpu_md_keep(&yv->aux_md, pws, err));
    yv->aux = l[2];
    int kinds[3] = { DNNL_ARG_SRC, DNNL_ARG_DST, DNNL_ARG_WORKSPACE };
    dnnl_memory_desc_t mds[3] = { xmd, *py, *pws };
    dnnl_primitive_desc_t p = pd;
    pd = NULL;
    OT_TRY(cpu_prim_step(c->x, n, "MaxPool", p, 3, kinds, l, mds, err));
    *done = true;
done:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    return st;
}

ot_status dn_maxpool_grad(ctx *c, bool *done, ot_err *err)
{
    ot_status st = OT_OK;
    ot_graph *g = c->g;
    const ot_node *n = c->n;
    dnnl_primitive_desc_t fwd = NULL, pd = NULL;
    if (n->n_in != 2)
        return OT_OK;
    int32_t dy = n->in[0], xid = n->in[1], dx = n->out[0];
    if (!dn_is_f32(g, dy) || !dn_is_f32(g, xid) || !dn_is_f32(g, dx))
        return OT_OK;
    const ot_value *xv = &g->values[xid], *dyv = &g->values[dy];
    /* the forward MaxPool of the same window that kept its workspace */
    int32_t yid = -1;
    for (int32_t i = 0; i < g->n_nodes && yid < 0; i++) {
        const ot_node *m = &g->nodes[i];
        if (!ot_node_is(m, OT_OP_MAXPOOL) ||
            m->in[0] != xid || m->out[0] < 0 || c->cs->vals[m->out[0]].aux.kind == OT_LOC_NONE ||
            !ot_op_grad_same_shape(g, m->out[0], dy))
            continue;
        window wf, wb;
        dnnl_alg_kind_t af, ab;
        if (dn_pool_params(g, m, xv, dyv, &wf, &af) && dn_pool_params(g, n, xv, dyv, &wb, &ab) &&
            window_eq(&wf, &wb) && af == ab)
            yid = m->out[0];
    }
    if (yid < 0 || !ot_op_grad_same_shape(g, dx, xid))
        return OT_OK;
    window w;
    dnnl_alg_kind_t alg;
    if (!dn_pool_params(g, n, xv, dyv, &w, &alg))
        return OT_OK;
    const cpu_val *yc = &c->cs->vals[yid];
    dnnl_memory_desc_t xmd, ymd;
    cpu_val_md(c->x, xid, &xmd);
    cpu_val_md(c->x, yid, &ymd);
    dnnl_pooling_v2_desc_t bd;
    if (!maxpool_fwd(c, &w, &xmd, &ymd, &fwd) ||
        dnnl_pooling_v2_backward_desc_init(&bd, dnnl_pooling_max, &xmd, &ymd, w.strides, w.kernel,
                                           w.dil, w.pl, w.pr) != dnnl_success ||
        !dn_make_pd_hint(c, &pd, &bd, fwd))
        goto done;
    const dnnl_memory_desc_t *pws = dn_pd_md(pd, dnnl_query_workspace_md);
    if (!pws || !yc->aux_md || !dnnl_memory_desc_equal(pws, yc->aux_md))
        goto done;
    const dnnl_memory_desc_t *pdy = dn_pd_md(pd, dnnl_query_diff_dst_md);
    const dnnl_memory_desc_t *pdx = dn_pd_md(pd, dnnl_query_diff_src_md);
    ot_loc l[3];
    OT_TRY(cpu_val_as(c->x, dy, pdy, &l[0], err));
    OT_TRY(cpu_val_define(c->x, dx, pdx, &l[1], err));
    l[2] = yc->aux;
    int kinds[3] = { DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_SRC, DNNL_ARG_WORKSPACE };
    dnnl_memory_desc_t mds[3] = { *pdy, *pdx, *yc->aux_md };
    dnnl_primitive_desc_t p = pd;
    pd = NULL;
    OT_TRY(cpu_prim_step(c->x, n, n->op_type, p, 3, kinds, l, mds, err));
    *done = true;
done:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (fwd)
        dnnl_primitive_desc_destroy(fwd);
    return st;
}

/* ------------------------------------------------- GlobalAveragePoolGrad */

ot_status dn_gap_grad(ctx *c, bool *done, ot_err *err)
{
    ot_status st = OT_OK;
    ot_graph *g = c->g;
    const ot_node *n = c->n;
    dnnl_primitive_desc_t fwd = NULL, pd = NULL;
    int32_t dy = n->in[0], dx = n->out[0];
    if (!dn_is_f32(g, dy) || !dn_is_f32(g, dx))
        return OT_OK;
    const ot_value *dyv = &g->values[dy], *dxv = &g->values[dx];
    if (dxv->ndim < 3 || dxv->ndim > 5 || dyv->ndim != dxv->ndim || dn_has_zero(dxv))
        return OT_OK;
    for (int i = 0; i < dxv->ndim; i++)
        if (i < 2 ? dyv->dims[i] != dxv->dims[i] : dyv->dims[i] != 1)
            return OT_OK;
    window w;
    dnnl_alg_kind_t alg;
    if (!dn_pool_params(g, n, dxv, dyv, &w, &alg))
        return OT_OK;
    /* dX in the layout of the forward pool's input (the next backward op
       reads it there), plain when there is none */
    dnnl_memory_desc_t xmd, ymd;
    cpu_plain_md(dxv, &xmd);
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const ot_node *m = &g->nodes[i];
        if (ot_node_is(m, OT_OP_GLOBALAVGPOOL) && m->n_in == 1 && m->in[0] >= 0 &&
            ot_op_grad_same_shape(g, m->in[0], dx) &&
            c->cs->vals[m->in[0]].loc.kind != OT_LOC_NONE) {
            cpu_val_md(c->x, m->in[0], &xmd);
            break;
        }
    }
    dn_md_any(dyv, &ymd);
    dnnl_pooling_v2_desc_t fd, bd;
    if (dnnl_pooling_v2_forward_desc_init(&fd, dnnl_forward_training, alg, &xmd, &ymd,
                                          w.strides, w.kernel, w.dil, w.pl, w.pr) != dnnl_success ||
        !dn_make_pd(c, &fwd, &fd) ||
        dnnl_pooling_v2_backward_desc_init(&bd, alg, &xmd,
                                           dn_pd_md(fwd, dnnl_query_dst_md), w.strides, w.kernel,
                                           w.dil, w.pl, w.pr) != dnnl_success ||
        !dn_make_pd_hint(c, &pd, &bd, fwd))
        goto done;
    const dnnl_memory_desc_t *pdy = dn_pd_md(pd, dnnl_query_diff_dst_md);
    const dnnl_memory_desc_t *pdx = dn_pd_md(pd, dnnl_query_diff_src_md);
    ot_loc l[2];
    OT_TRY(cpu_val_as(c->x, dy, pdy, &l[0], err));
    OT_TRY(cpu_val_define(c->x, dx, pdx, &l[1], err));
    int kinds[2] = { DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_SRC };
    dnnl_memory_desc_t mds[2] = { *pdy, *pdx };
    dnnl_primitive_desc_t p = pd;
    pd = NULL;
    OT_TRY(cpu_prim_step(c->x, n, n->op_type, p, 2, kinds, l, mds, err));
    *done = true;
done:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (fwd)
        dnnl_primitive_desc_destroy(fwd);
    return st;
}
