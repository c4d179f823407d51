/*
 * cudnn_fused.c: convolutions with fused epilogues as cuDNN operation
 * graphs (the backend API's runtime fusion):
 *
 *   forward:        y = relu?(conv(x, w) + bias? + z?)
 *   backward-data:  dx = relu_bwd(dgrad(dy, w), r)   (r: the ReLU's input
 *                   or output before the convolution; dx is 0 where r <= 0)
 *
 * The intermediate tensors are virtual (never in memory) and float; bias is
 * [1, C, 1, 1] (broadcast), z and r have the shape of the convolution's
 * output or input, all in the convolution's layout (ot_conv_geom.nhwc).
 * Every pointwise step computes in fp32. Under --precision bf16/fp16
 * (ot_conv_geom.half) every tensor in memory (x or dy, w, bias, z, r and
 * the output) is of the half type, as the plain convolution's operands
 * are; the convolution still accumulates in fp32 into its float virtual
 * output. The descriptors come from cudnn_desc.c.
 * Only the graph is built here, which needs no device; a plan for it is
 * made like the plain convolution's, and when no engine finalizes one, the
 * executor keeps the unfused steps.
 */
#include <stdio.h>
#include <string.h>

#include "cuda.h"

void ot_conv_fused_free(const ot_cudnn_api *api, ot_conv_fused *f)
{
    if (f->graph)
        api->cudnnBackendDestroyDescriptor(f->graph);
    for (int i = f->n_descs - 1; i >= 0; i--)
        if (f->descs[i])
            api->cudnnBackendDestroyDescriptor(f->descs[i]);
    ot_conv_descs_free(api, &f->conv);
    memset(f, 0, sizeof *f);
}

static void keep(ot_conv_fused *f, cudnnBackendDescriptor_t d)
{
    OT_ASSERT(f->n_descs < OT_CONV_FUSED_MAX_DESCS);
    f->descs[f->n_descs++] = d;
}

/* A tensor the graph reads or writes (of the operands' dtype, q->half or
   float), or a virtual one between two of its operations (float), in the
   convolution's layout; kept in f. */
static ot_status tensor(const ot_cudnn_api *api, ot_conv_fused *f, const ot_conv_geom *q,
                        const int64_t *dims, int64_t uid, bool is_virtual,
                        cudnnBackendDescriptor_t *out, ot_err *err)
{
    ot_dtype dt = is_virtual ? OT_DTYPE_FLOAT : q->half;
    ot_status st = ot_cudnn_conv_tensor(api, q, dims, uid, is_virtual, dt, out, err);
    if (st == OT_OK)
        keep(f, *out);
    return st;
}

/* A pointwise operation out = mode(a, b) (b NULL: unary; relu_bwd: a is
   dy, b the ReLU's tensor), its descriptors kept in f. */
static ot_status pointwise(const ot_cudnn_api *api, ot_conv_fused *f, cudnnPointwiseMode_t mode,
                           cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b,
                           cudnnBackendDescriptor_t out, cudnnBackendDescriptor_t *op, ot_err *err)
{
    cudnnBackendDescriptor_t pw;
    ot_status st = ot_cudnn_pointwise(api, mode, a, b, out, &pw, op, err);
    if (st == OT_OK) {
        keep(f, pw);
        keep(f, *op);
    }
    return st;
}

ot_status ot_conv_fused_build(const ot_cudnn_api *api, const ot_conv_geom *q,
                              const ot_conv_epilogue *e, ot_conv_fused *f, ot_err *err)
{
    ot_status st = OT_OK;
    memset(f, 0, sizeof *f);
    bool fwd = q->kind == OT_CONV_FWD;
    if (q->kind == OT_CONV_WGRAD || (fwd && !e->bias && !e->add && !e->relu) ||
        (!fwd && (e->bias || e->add || !e->relu)))
        return ot_err_set(err, OT_ERR_UNSUPPORTED,
                          "cuDNN: no fused form for this convolution and epilogue");
    /* the convolution writes a virtual (float) tensor */
    OT_TRY(ot_conv_descs_build_virtual(api, q, true, &f->conv, err));
    cudnnBackendDescriptor_t ops[5] = { f->conv.op };
    int n_ops = 1;
    /* the value flowing through the epilogue: the convolution's output (its
       y forward, its dx backward) */
    cudnnBackendDescriptor_t cur = fwd ? f->conv.y : f->conv.x, t, op;
    const int64_t *dims = fwd ? q->y : q->x;
    int64_t vuid = OT_CONV_UID_VIRTUAL;
    int steps = fwd ? (e->bias + e->add + e->relu) : 1, done_steps = 0;
    /* + bias, then + z: each into the output when it is the last step */
    const bool adds[2] = { fwd && e->bias, fwd && e->add };
    for (int k = 0; k < 2; k++) {
        if (!adds[k])
            continue;
        int64_t bd[5] = { 1, q->y[1], 1, 1, 1 };
        cudnnBackendDescriptor_t other;
        OT_TRY(tensor(api, f, q, k == 0 ? bd : dims, k == 0 ? OT_CONV_UID_BIAS : OT_CONV_UID_Z,
                      false, &other, err));
        bool last = ++done_steps == steps;
        OT_TRY(tensor(api, f, q, dims, last ? OT_CONV_UID_OUT : vuid++, !last, &t, err));
        OT_TRY(pointwise(api, f, CUDNN_POINTWISE_ADD, cur, other, t, &op, err));
        ops[n_ops++] = op;
        cur = t;
    }
    if (e->relu) {
        OT_TRY(tensor(api, f, q, dims, OT_CONV_UID_OUT, false, &t, err));
        cudnnBackendDescriptor_t r = NULL;
        if (!fwd)
            OT_TRY(tensor(api, f, q, dims, OT_CONV_UID_RELU, false, &r, err));
        OT_TRY(pointwise(api, f, fwd ? CUDNN_POINTWISE_RELU_FWD : CUDNN_POINTWISE_RELU_BWD, cur,
                         r, t, &op, err));
        ops[n_ops++] = op;
    }
    OT_TRY(ot_cudnn_graph(api, ops, n_ops, &f->graph, err));
    f->n_ops = n_ops;
done:
    if (st != OT_OK)
        ot_conv_fused_free(api, f);
    return st;
}

/* The operands a fused graph reads and writes, as indices into (the
   convolution's input, w, bias, z or the ReLU's tensor, out); how many. */
static int fused_roles(ot_conv_kind kind, const ot_conv_epilogue *e, int *roles)
{
    bool dgrad = kind == OT_CONV_DGRAD;
    int n = 0;
    roles[n++] = 0;
    roles[n++] = 1;
    if (!dgrad && e->bias)
        roles[n++] = 2;
    if (dgrad || e->add)
        roles[n++] = 3;
    roles[n++] = 4;
    return n;
}

int ot_conv_fused_uids(ot_conv_kind kind, const ot_conv_epilogue *e, int64_t *uids)
{
    bool dgrad = kind == OT_CONV_DGRAD;
    const int64_t by_role[5] = { dgrad ? OT_CONV_UID_Y : OT_CONV_UID_X, OT_CONV_UID_W,
                                 OT_CONV_UID_BIAS, dgrad ? OT_CONV_UID_RELU : OT_CONV_UID_Z,
                                 OT_CONV_UID_OUT };
    int roles[5], n = fused_roles(kind, e, roles);
    for (int i = 0; i < n; i++)
        uids[i] = by_role[roles[i]];
    return n;
}

ot_status ot_conv_fused_varpack(ot_cuda_dev *dev, ot_conv_kind kind, const ot_conv_epilogue *e,
                                void *in, void *w, void *bias, void *other, void *out, void *ws,
                                cudnnBackendDescriptor_t *vp, ot_err *err)
{
    void *const by_role[5] = { in, w, bias, other, out };
    void *ptrs[5];
    int64_t uids[5];
    int roles[5], n = fused_roles(kind, e, roles);
    ot_conv_fused_uids(kind, e, uids);
    for (int i = 0; i < n; i++)
        ptrs[i] = by_role[roles[i]];
    return ot_cudnn_varpack(dev->dnn, n, ptrs, uids, ws, vp, err);
}
