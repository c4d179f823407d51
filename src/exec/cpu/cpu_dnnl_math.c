/*
 * cpu_dnnl_math.c: the reductions (ReduceMean, ReduceSum, ReduceMax,
 * ReduceL2; src/ops/reduce.c) as oneDNN 2.6 reduction primitives, and
 * LayerNormalization (src/ops/norm_ops.c) as its layer normalization, and
 * the Einsum equations that are batched matrix products as its matmul (v2 C
 * API).
 *
 * Float32 only. The destination is described with the reduced dims kept as
 * 1s (keepdims=0 drops them, which leaves the row-major bytes the same) and
 * written row-major. A reduction over no dim, or anything oneDNN declines,
 * runs the plain kernel (src/exec/cpu/ref_math.c).
 *
 * Reference: oneDNN v2.6 reduction, layer normalization and matmul primitives.
 */
#include "cpu_dnnl_impl.h"
#include <string.h>

#include "ops/einsum.h"
#include "ops/grad_util.h"
#include "ops/op_util.h"
#include "ops/reduce.h"

/* A descriptor of dims [N, C, 1, ...] whose bytes are those of the
   row-major [N, C]: plain, nhwc, or channels blocked by a block that
   divides C (no padding). */
static bool md_rows_plain(const dnnl_memory_desc_t *md)
{
    if (md->format_kind != dnnl_blocked || md->offset0 != 0 || md->ndims < 3)
        return false;
    for (int i = 2; i < md->ndims; i++)
        if (md->dims[i] != 1)
            return false;
    const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
    int64_t n = md->dims[0], ch = md->dims[1];
    if (md->padded_dims[0] != n || md->padded_dims[1] != ch || (n > 1 && b->strides[0] != ch))
        return false;
    if (b->inner_nblks == 0)
        return ch == 1 || b->strides[1] == 1;
    return b->inner_nblks == 1 && b->inner_idxs[0] == 1 && b->strides[1] == b->inner_blks[0];
}

/* The reduced dims of a 3-5-D X are exactly its spatial ones. */
static bool spatial_only(const ot_value *xv, const bool *mask)
{
    if (xv->ndim < 3 || xv->ndim > 5 || mask[0] || mask[1])
        return false;
    for (int d = 2; d < xv->ndim; d++)
        if (!mask[d])
            return false;
    return true;
}

/* ReduceMean or ReduceMax over every spatial dim as a global pooling: oneDNN
   2.6 pools with its jit kernels in the input's blocked layout, where its
   reduction primitive has only a reference kernel (ShuffleNet's and
   RegNet's final x.mean([2, 3]) read the last convolution's blocked output).
   The result is written as the plain [N, C] (or [N, C, 1, 1]) it is, so the
   pooling's destination must have those bytes; otherwise false and the
   reduction primitive runs. */
static ot_status reduce_as_pool(ctx *c, const ot_value *xv, const int64_t *yd, bool *done,
                                ot_err *err)
{
    ot_status st = OT_OK;
    const ot_node *n = c->n;
    int32_t xid = n->in[0], yid = n->out[0];
    dnnl_alg_kind_t alg = n->op->id == OT_OP_REDUCE_MAX ? dnnl_pooling_max
                                                        : dnnl_pooling_avg_exclude_padding;
    dnnl_memory_desc_t xmd, ymd;
    cpu_val_md(c->x, xid, &xmd);
    dnnl_dims_t dims, strides, kernel, dil, pads;
    int k = xv->ndim - 2;
    for (int i = 0; i < xv->ndim; i++)
        dims[i] = yd[i];
    for (int i = 0; i < k; i++) {
        kernel[i] = xv->dims[2 + i];
        strides[i] = 1;
        dil[i] = pads[i] = 0;
    }
    dnnl_memory_desc_init_by_tag(&ymd, xv->ndim, dims, dnnl_f32, dnnl_format_tag_any);
    dnnl_pooling_v2_desc_t pdsc;
    if (dnnl_pooling_v2_forward_desc_init(&pdsc, dnnl_forward_inference, alg, &xmd, &ymd, strides,
                                          kernel, dil, pads, pads) != dnnl_success)
        return OT_OK;
    dnnl_primitive_desc_t pd = NULL;
    if (!dn_make_pd(c, &pd, &pdsc))
        return OT_OK;
    const dnnl_memory_desc_t *py = dn_pd_md(pd, dnnl_query_dst_md);
    if (dn_blk_is_ref(pd) || !md_rows_plain(py)) {
        dnnl_primitive_desc_destroy(pd);
        return OT_OK;
    }
    ot_loc l[2];
    OT_TRY(cpu_val_as(c->x, xid, &xmd, &l[0], err));
    OT_TRY(cpu_val_define(c->x, yid, NULL, &l[1], err));
    int kinds[2] = { DNNL_ARG_SRC, DNNL_ARG_DST };
    dnnl_memory_desc_t mds[2] = { xmd, *py };
    dnnl_primitive_desc_t p = pd;
    pd = NULL;
    OT_TRY(cpu_prim_step(c->x, n, alg == dnnl_pooling_max ? "ReduceMax(pool)" : "ReduceMean(pool)",
                         p, 2, kinds, l, mds, err));
    *done = true;
done:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    return st;
}

/* The gradient of ReduceMean over every spatial dim (ReduceGrad, mode
   ReduceMean): average pooling's backward, dY read as the plain [N, C] it
   is, dX in the layout X has (the next backward step reads it there). */
ot_status dn_reduce_grad(ctx *c, bool *done, ot_err *err)
{
    ot_status st = OT_OK;
    ot_graph *g = c->g;
    const ot_node *n = c->n;
    if (n->n_in < 2 || strcmp(ot_node_attr_string(n, "mode", ""), "ReduceMean") != 0)
        return OT_OK;
    int32_t dy = n->in[0], xid = n->in[1], dx = n->out[0];
    if (dy < 0 || xid < 0 || !dn_is_f32(g, dy) || !dn_is_f32(g, dx))
        return OT_OK;
    const ot_value *xv = &g->values[xid], *dxv = &g->values[dx];
    bool mask[OT_MAX_DIMS];
    if (xv->ndim < 3 || dn_has_zero(xv) || !ot_op_grad_same_shape(g, xid, dx) ||
        !ot_op_reduce_axes(n, NULL, xv->ndim, mask) || !spatial_only(xv, mask))
        return OT_OK;
    int k = xv->ndim - 2;
    dnnl_dims_t ydims, strides, kernel, dil, pads;
    ydims[0] = xv->dims[0];
    ydims[1] = xv->dims[1];
    for (int i = 0; i < k; i++) {
        ydims[2 + i] = 1;
        kernel[i] = xv->dims[2 + i];
        strides[i] = 1;
        dil[i] = pads[i] = 0;
    }
    dnnl_memory_desc_t xmd, ymd;
    if (c->cs->vals[xid].loc.kind != OT_LOC_NONE)
        cpu_val_md(c->x, xid, &xmd);
    else
        cpu_plain_md(dxv, &xmd);
    dnnl_memory_desc_init_by_tag(&ymd, xv->ndim, ydims, dnnl_f32, dnnl_format_tag_any);
    dnnl_primitive_desc_t fwd = NULL, pd = NULL;
    dnnl_pooling_v2_desc_t fd, bd;
    const dnnl_alg_kind_t alg = dnnl_pooling_avg_exclude_padding;
    if (dnnl_pooling_v2_forward_desc_init(&fd, dnnl_forward_training, alg, &xmd, &ymd, strides,
                                          kernel, dil, pads, pads) != dnnl_success ||
        !dn_make_pd(c, &fwd, &fd) ||
        dnnl_pooling_v2_backward_desc_init(&bd, alg, &xmd, dn_pd_md(fwd, dnnl_query_dst_md),
                                           strides, kernel, dil, pads, pads) != dnnl_success ||
        !dn_make_pd_hint(c, &pd, &bd, fwd))
        goto done;
    const dnnl_memory_desc_t *pdy = dn_pd_md(pd, dnnl_query_diff_dst_md);
    const dnnl_memory_desc_t *pdx = dn_pd_md(pd, dnnl_query_diff_src_md);
    if (dn_blk_is_ref(pd) || !md_rows_plain(pdy))
        goto done;
    ot_loc l[2];
    OT_TRY(cpu_val_plain(c->x, dy, &l[0], err));
    OT_TRY(cpu_val_define(c->x, dx, pdx, &l[1], err));
    int kinds[2] = { DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_SRC };
    dnnl_memory_desc_t mds[2] = { *pdy, *pdx };
    dnnl_primitive_desc_t p = pd;
    pd = NULL;
    OT_TRY(cpu_prim_step(c->x, n, "ReduceGrad(pool)", p, 2, kinds, l, mds, err));
    *done = true;
done:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (fwd)
        dnnl_primitive_desc_destroy(fwd);
    return st;
}

ot_status dn_reduce(ctx *c, bool *done, ot_err *err)
{
    ot_graph *g = c->g;
    const ot_node *n = c->n;
    int32_t xid = n->in[0], yid = n->out[0];
    if (!dn_is_f32(g, xid) || !dn_is_f32(g, yid))
        return OT_OK;
    const ot_value *xv = &g->values[xid];
    if (xv->ndim < 1 || dn_has_zero(xv))
        return OT_OK;
    const ot_tensor *axes = NULL;
    if (n->n_in > 1 && n->in[1] >= 0) {
        axes = ot_graph_const(g, n->in[1]);
        if (!axes || (ot_tensor_numel(axes) > 0 && !axes->data))
            return OT_OK;
    }
    bool mask[OT_MAX_DIMS];
    if (!ot_op_reduce_axes(n, axes, xv->ndim, mask))
        return OT_OK;
    int64_t yd[OT_MAX_DIMS];
    bool any = false;
    for (int d = 0; d < xv->ndim; d++) {
        yd[d] = mask[d] ? 1 : xv->dims[d];
        any |= mask[d] && xv->dims[d] != 1;
    }
    if (!any)
        return OT_OK; /* nothing to reduce: oneDNN refuses src == dst */
    if ((n->op->id == OT_OP_REDUCE_MEAN || n->op->id == OT_OP_REDUCE_MAX) &&
        spatial_only(xv, mask)) {
        ot_status ps = reduce_as_pool(c, xv, yd, done, err);
        if (ps != OT_OK || *done)
            return ps;
    }
    dnnl_alg_kind_t alg;
    switch (n->op->id) {
    case OT_OP_REDUCE_MEAN: alg = dnnl_reduction_mean; break;
    case OT_OP_REDUCE_SUM: alg = dnnl_reduction_sum; break;
    case OT_OP_REDUCE_MAX: alg = dnnl_reduction_max; break;
    case OT_OP_REDUCE_L2: alg = dnnl_reduction_norm_lp_sum; break;
    default: return OT_OK;
    }
    dnnl_memory_desc_t xmd, ymd;
    cpu_val_md(c->x, xid, &xmd);
    dn_md_plain_dims(xv->ndim, yd, &ymd);
    dnnl_reduction_desc_t rd;
    if (dnnl_reduction_desc_init(&rd, alg, &xmd, &ymd, 2.0f, 0.0f) != dnnl_success)
        return OT_OK;
    dnnl_primitive_desc_t pd = NULL;
    if (!dn_make_pd(c, &pd, &rd))
        return OT_OK;
    ot_status st = OT_OK;
    ot_loc lx, ly;
    OT_TRY(cpu_val_as(c->x, xid, &xmd, &lx, err));
    OT_TRY(cpu_val_define(c->x, yid, NULL, &ly, err));
    int kinds[2] = { DNNL_ARG_SRC, DNNL_ARG_DST };
    ot_loc locs[2] = { lx, ly };
    dnnl_memory_desc_t mds[2] = { xmd, ymd };
    dnnl_primitive_desc_t p = pd;
    pd = NULL;
    OT_TRY(cpu_prim_step(c->x, n, n->op_type, p, 2, kinds, locs, mds, err));
    *done = true;
done:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    return st;
}

/* LayerNormalization without the Mean and InvStdDev outputs, its scale and
   bias of the normalized size: oneDNN's layer normalization over X seen as
   row-major [rows, M] (forward_inference; the gradient, NormGrad,
   recomputes the statistics). */
ot_status dn_layernorm(ctx *c, bool *done, ot_err *err)
{
    ot_status st = OT_OK;
    ot_graph *g = c->g;
    const ot_node *n = c->n;
    int32_t xid = n->in[0], sid = n->in[1], bid = n->n_in > 2 ? n->in[2] : -1;
    int32_t yid = n->out[0];
    for (int k = 1; k < n->n_out; k++)
        if (n->out[k] >= 0)
            return OT_OK;
    if (!dn_is_f32(g, xid) || !dn_is_f32(g, sid) || !dn_is_f32(g, yid) ||
        (bid >= 0 && !dn_is_f32(g, bid)))
        return OT_OK;
    const ot_value *xv = &g->values[xid];
    int axis;
    if (xv->ndim < 1 || dn_has_zero(xv) ||
        !ot_op_axis(ot_node_attr_int(n, "axis", -1), xv->ndim, &axis))
        return OT_OK;
    int64_t d[2] = { 1, 1 };
    for (int i = 0; i < xv->ndim; i++)
        d[i >= axis] *= xv->dims[i];
    for (int k = 1; k < 3; k++) {
        int32_t p = k == 1 ? sid : bid;
        if (p < 0)
            continue;
        const ot_value *pv = &g->values[p];
        int64_t numel = 1;
        for (int i = 0; i < pv->ndim; i++)
            numel *= pv->dims[i];
        if (numel != d[1])
            return OT_OK; /* a broadcast scale or bias: plain kernel */
    }
    dnnl_memory_desc_t xmd, pmd;
    dn_md_plain_dims(2, d, &xmd);
    dn_md_plain_dims(1, &d[1], &pmd);
    unsigned flags = dnnl_use_scale | (bid >= 0 ? dnnl_use_shift : 0);
    dnnl_layer_normalization_desc_t ld;
    if (dnnl_layer_normalization_forward_desc_init(&ld, dnnl_forward_inference, &xmd, NULL,
                                                   ot_node_attr_float(n, "epsilon", 1e-5f),
                                                   flags) != dnnl_success)
        return OT_OK;
    dnnl_primitive_desc_t pd = NULL;
    if (!dn_make_pd(c, &pd, &ld))
        return OT_OK;
    ot_loc l[4] = { 0 };
    OT_TRY(cpu_val_plain(c->x, xid, &l[0], err));
    OT_TRY(cpu_val_plain(c->x, sid, &l[1], err));
    if (bid >= 0)
        OT_TRY(cpu_val_plain(c->x, bid, &l[2], err));
    OT_TRY(cpu_val_define(c->x, yid, NULL, &l[3], err));
    int kinds[4] = { DNNL_ARG_SRC, DNNL_ARG_SCALE, DNNL_ARG_DST, DNNL_ARG_SHIFT };
    ot_loc locs[4] = { l[0], l[1], l[3], l[2] };
    dnnl_memory_desc_t mds[4] = { xmd, pmd, xmd, pmd };
    dnnl_primitive_desc_t p = pd;
    pd = NULL;
    OT_TRY(cpu_prim_step(c->x, n, n->op_type, p, bid >= 0 ? 4 : 3, kinds, locs, mds, err));
    *done = true;
done:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    return st;
}

/* Einsum of two inputs that is a batched matrix product: every label is a
   batch label (in both inputs and the output; an ellipsis dim may be
   missing from one input, which then broadcasts), or the one row label (A
   and Y), the one column label (B and Y) or the one summed label (A and B).
   oneDNN's matmul then reads A as [batch..., M, K], B as [batch..., K, N] and
   writes Y as [batch..., M, N], the permutations of the equation expressed
   as strides over the row-major tensors. Anything else: plain kernel. */
ot_status dn_einsum(ctx *c, bool *done, ot_err *err)
{
    ot_status st = OT_OK;
    ot_graph *g = c->g;
    const ot_node *n = c->n;
    if (n->n_in != 2 || !dn_is_f32(g, n->in[0]) || !dn_is_f32(g, n->in[1]) ||
        !dn_is_f32(g, n->out[0]))
        return OT_OK;
    const ot_value *v[3] = { &g->values[n->in[0]], &g->values[n->in[1]],
                             &g->values[n->out[0]] };
    int ranks[2] = { v[0]->ndim, v[1]->ndim };
    const int64_t *dims[2] = { v[0]->dims, v[1]->dims };
    const char *why = NULL;
    ot_einsum e;
    int64_t size[OT_EINSUM_MAX_LABELS];
    for (int k = 0; k < 3; k++)
        if (dn_has_zero(v[k]))
            return OT_OK;
    if (!ot_einsum_parse(ot_node_attr_string(n, "equation", ""), 2, ranks, &e, &why) ||
        !ot_einsum_sizes(&e, dims, size, &why))
        return OT_OK;
    /* where[k][l]: the dim of label l in operand k (A, B, Y), -1 if absent */
    int where[3][OT_EINSUM_MAX_LABELS];
    memset(where, -1, sizeof where);
    const int8_t *labs[3] = { e.in_lab[0], e.in_lab[1], e.out_lab };
    int rk[3] = { e.in_rank[0], e.in_rank[1], e.out_rank };
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < rk[k]; i++) {
            if (where[k][labs[k][i]] >= 0)
                return OT_OK; /* a diagonal */
            where[k][labs[k][i]] = i;
        }
    int lm = -1, ln = -1, lk = -1, batch[OT_MAX_DIMS], nb = 0;
    for (int i = 0; i < e.out_rank; i++) {
        int l = e.out_lab[i];
        bool a = where[0][l] >= 0, b = where[1][l] >= 0;
        if ((a && b) || l >= OT_EINSUM_LETTERS)
            batch[nb++] = l;
        else if (a && lm < 0)
            lm = l;
        else if (b && ln < 0)
            ln = l;
        else
            return OT_OK;
    }
    for (int l = 0; l < OT_EINSUM_MAX_LABELS; l++) {
        if (!e.used[l] || where[2][l] >= 0)
            continue;
        if (where[0][l] < 0 || where[1][l] < 0 || lk >= 0)
            return OT_OK; /* summed in one input only, or two summed labels */
        lk = l;
    }
    if (lm < 0 || ln < 0 || lk < 0 || nb + 2 > DNNL_MAX_NDIMS)
        return OT_OK;
    /* the three descriptors: batch dims, then (M, K), (K, N), (M, N) */
    int order[3][2] = { { lm, lk }, { lk, ln }, { lm, ln } };
    dnnl_memory_desc_t md[3];
    for (int k = 0; k < 3; k++) {
        int64_t rs[OT_MAX_DIMS];
        int64_t s = 1;
        for (int i = v[k]->ndim - 1; i >= 0; i--) {
            rs[i] = s;
            s *= v[k]->dims[i];
        }
        dnnl_dims_t dd, ss;
        for (int i = 0; i < nb + 2; i++) {
            int l = i < nb ? batch[i] : order[k][i - nb];
            int at = where[k][l];
            dd[i] = at >= 0 ? v[k]->dims[at] : 1;
            ss[i] = at >= 0 ? rs[at] : 1;
        }
        if (dnnl_memory_desc_init_by_strides(&md[k], nb + 2, dd, dnnl_f32, ss) != dnnl_success)
            return OT_OK;
    }
    dnnl_matmul_desc_t mmd;
    if (dnnl_matmul_desc_init(&mmd, &md[0], &md[1], NULL, &md[2]) != dnnl_success)
        return OT_OK;
    dnnl_primitive_desc_t pd = NULL;
    if (!dn_make_pd(c, &pd, &mmd))
        return OT_OK;
    ot_loc l[3];
    OT_TRY(cpu_val_plain(c->x, n->in[0], &l[0], err));
    OT_TRY(cpu_val_plain(c->x, n->in[1], &l[1], err));
    OT_TRY(cpu_val_define(c->x, n->out[0], NULL, &l[2], err));
    int kinds[3] = { DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST };
    dnnl_primitive_desc_t p = pd;
    pd = NULL;
    OT_TRY(cpu_prim_step(c->x, n, n->op_type, p, 3, kinds, l, md, err));
    *done = true;
done:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    return st;
}
