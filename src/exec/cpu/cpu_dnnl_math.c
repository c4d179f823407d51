/*
 * cpu_dnnl_math.c: the reductions (ReduceMean, ReduceSum, ReduceMax,
 * ReduceL2; src/ops/reduce.c) as oneDNN 2.6 reduction primitives, and
 * LayerNormalization (src/ops/norm_ops.c) as its layer normalization (v2 C
 * API).
 *
 * Float32 only. The destination is described with the reduced dims kept as
 * 1s (keepdims=0 drops them, which leaves the row-major bytes the same) and
 * written row-major. A reduction over no dim, or anything oneDNN declines,
 * runs the plain kernel (src/exec/cpu/ref_math.c).
 *
 * Reference: oneDNN v2.6 reduction and layer normalization primitives.
 */
#include "cpu_dnnl_impl.h"
#include "ops/op_util.h"
#include "ops/reduce.h"

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
