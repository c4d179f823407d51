/*
 * grad_rules.c: the gradient rule of every differentiable op in the table
 * (ot_op_grad_fn, see ops.h). Each rule states the derivative it implements
 * and emits backward nodes whose inputs are the forward values they need.
 *
 * Where an ONNX op expresses a gradient (Transpose, Reshape, Mul, Gemm,
 * MatMul, Sum), the rule emits it; the rest are private backward ops
 * (grad_ops.c). Broadcast operands get their gradient summed back down to
 * their shape (ReduceSumTo), reading the shape through a Shape node so that a
 * symbolic batch dim stays symbolic until compilation.
 *
 * Not differentiated: integer operands and shape operands (Reshape's shape,
 * Clip's bounds, Dropout's ratio), BatchNormalization's mean and var, which
 * are statistics, not parameters. MatMul with a 1-D operand and training-mode
 * BatchNormalization (which the BN policy pass replaces with BatchNormTrain)
 * are OT_ERR_UNSUPPORTED.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ops/grad_util.h"
#include "ops/op_util.h"

#define NAME_MAX_ 512

/* The value id of input i of node, or -1. */
static int32_t in_id(const ot_graph *g, int32_t node, int i)
{
    const ot_node *n = &g->nodes[node];
    return i < n->n_in ? n->in[i] : -1;
}

static int32_t out_id(const ot_graph *g, int32_t node, int i)
{
    const ot_node *n = &g->nodes[node];
    return i < n->n_out ? n->out[i] : -1;
}

/* Conv: y = conv(x, w) + b.
   dX = ConvGradData(dY, W): dX[n,c,i] = sum over m in c's group, taps t and
        outputs o with i = o*s - pad + t*d of W[m,c,t] * dY[n,m,o];
   dW[m,c,t] = sum_{n,o} dY[n,m,o] * X[n, group(m)*C/G + c, o*s - pad + t*d];
   dB[m] = sum_{n,o} dY[n,m,o]. */
ot_status ot_op_grad_conv(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                          const bool *need_dx, ot_err *err)
{
    ot_status st = OT_OK;
    char name[NAME_MAX_], hint[NAME_MAX_], hint2[NAME_MAX_];
    if (dy[0] < 0)
        return OT_OK;
    ot_node *n = &g->nodes[node];
    const ot_attr *attrs = n->attrs;
    int n_attrs = n->n_attrs;
    int32_t x = in_id(g, node, 0), w = in_id(g, node, 1);
    if (need_dx[0]) {
        int32_t shape, in[3];
        OT_TRY(ot_op_grad_shape_of(g, x, &shape, err));
        in[0] = dy[0];
        in[1] = w;
        in[2] = shape;
        OT_TRY(ot_op_grad_emit1(g, &ot_op_conv_grad_data,
                                ot_op_grad_node_name(g, node, "data", name, sizeof name), in, 3,
                                attrs, n_attrs, ot_op_grad_dx_name(g, node, 0, hint), &dx[0], err));
    }
    bool need_b = in_id(g, node, 2) >= 0 && need_dx[2];
    if (need_dx[1] || need_b) {
        /* kernel_shape made explicit: dW's shape follows from it */
        ot_attr as[16];
        int k = 0;
        bool has_ks = false;
        for (int i = 0; i < n_attrs && k < 15; i++) {
            as[k++] = attrs[i];
            has_ks |= strcmp(attrs[i].name, "kernel_shape") == 0;
        }
        const ot_value *wv = &g->values[w];
        int64_t ks[OT_MAX_DIMS];
        if (!has_ks) {
            if (wv->ndim < 3)
                return ot_op_grad_unsupported(g, node, "a weight of unknown rank", err);
            for (int i = 2; i < wv->ndim; i++) {
                if (wv->dims[i] < 0)
                    return ot_op_grad_unsupported(g, node, "a weight with dynamic kernel dims",
                                                  err);
                ks[i - 2] = wv->dims[i];
            }
            as[k++] = ot_op_grad_attr_ints("kernel_shape", ks, (size_t)(wv->ndim - 2));
        }
        int32_t in[2] = { dy[0], x }, outs[2];
        const char *names[2] = { need_dx[1] ? ot_op_grad_dx_name(g, node, 1, hint) : NULL,
                                 need_b ? ot_op_grad_dx_name(g, node, 2, hint2) : NULL };
        OT_TRY(ot_op_grad_emit(g, &ot_op_conv_grad_filter, 0,
                               ot_op_grad_node_name(g, node, "filter", name, sizeof name), in, 2,
                               as, k, names, outs, need_b ? 2 : 1, err));
        dx[1] = outs[0];
        if (need_b)
            dx[2] = outs[1];
    }
done:
    return st;
}

/* A per-channel float constant usable at pass time: an initializer that no
   training step changes. */
static const float *frozen_f32(const ot_graph *g, int32_t id, int64_t C)
{
    const ot_tensor *t = ot_graph_const(g, id);
    if (!t || t->dtype != OT_DTYPE_FLOAT || ot_tensor_numel(t) != C || !t->data)
        return NULL;
    if (g->values[id].flags & (OT_VAL_TRAINABLE | OT_VAL_STATE))
        return NULL;
    return t->data;
}

/* BatchNormalization in inference mode: y = scale * (x - mean) / sqrt(var + eps) + B.
   dX = dY * scale / sqrt(var + eps) per channel; dScale = sum_{n,i} dY * (x - mean) /
   sqrt(var + eps); dB = sum_{n,i} dY. With scale and var frozen and only dX
   wanted, dX is a Mul by a constant (C, 1, ...); otherwise BatchNormGrad with
   training_mode=0. mean and var get no gradient. */
ot_status ot_op_grad_batchnorm(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                               const bool *need_dx, ot_err *err)
{
    ot_status st = OT_OK;
    char name[NAME_MAX_], h0[NAME_MAX_], h1[NAME_MAX_], h2[NAME_MAX_];
    float *k = NULL;
    if (dy[0] < 0)
        return OT_OK;
    const ot_node *n = &g->nodes[node];
    if (n->opset >= 14 && ot_node_attr_int(n, "training_mode", 0) != 0)
        return ot_op_grad_unsupported(
            g, node,
            "training-mode BatchNormalization (the BN policy pass turns it into "
            "BatchNormTrain)",
            err);
    float eps = ot_node_attr_float(n, "epsilon", 1e-5f);
    int32_t x = in_id(g, node, 0), scale = in_id(g, node, 1), var = in_id(g, node, 4);
    const ot_value *xv = &g->values[x];
    int64_t C = xv->ndim >= 2 ? xv->dims[1] : -1;
    const float *sp = C > 0 ? frozen_f32(g, scale, C) : NULL;
    const float *vp = C > 0 ? frozen_f32(g, var, C) : NULL;
    if (!need_dx[1] && !need_dx[2] && !need_dx[0])
        return OT_OK;
    if (need_dx[0] && !need_dx[1] && !need_dx[2] && sp && vp) {
        int64_t dims[OT_MAX_DIMS];
        dims[0] = C;
        for (int i = 1; i < xv->ndim - 1; i++)
            dims[i] = 1;
        k = ot_malloc(sizeof *k * (size_t)C);
        if (!k)
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
        for (int64_t c = 0; c < C; c++)
            k[c] = (float)((double)sp[c] / sqrt((double)vp[c] + (double)eps));
        int32_t kid, in[2];
        OT_TRY(ot_op_grad_const_f32(g, ot_op_grad_node_name(g, node, "dx_scale", name,
                                                            sizeof name),
                                    dims, xv->ndim - 1, k, &kid, err));
        in[0] = dy[0];
        in[1] = kid;
        OT_TRY(ot_op_grad_emit1(g, &ot_op_mul,
                                ot_op_grad_node_name(g, node, NULL, name, sizeof name), in, 2, NULL,
                                0, ot_op_grad_dx_name(g, node, 0, h0), &dx[0], err));
        goto done;
    }
    {
        int32_t in[5] = { dy[0], x, scale, in_id(g, node, 3), var }, outs[3];
        ot_attr as[2] = { ot_op_grad_attr_int("training_mode", 0),
                          ot_op_grad_attr_float("epsilon", eps) };
        const char *names[3] = { need_dx[0] ? ot_op_grad_dx_name(g, node, 0, h0) : NULL,
                                 need_dx[1] ? ot_op_grad_dx_name(g, node, 1, h1) : NULL,
                                 need_dx[2] ? ot_op_grad_dx_name(g, node, 2, h2) : NULL };
        int n_out = need_dx[2] ? 3 : need_dx[1] ? 2 : 1;
        OT_TRY(ot_op_grad_emit(g, &ot_op_batchnorm_grad, 0,
                               ot_op_grad_node_name(g, node, NULL, name, sizeof name), in, 5, as,
                               2, names, outs, n_out, err));
        for (int i = 0; i < n_out; i++)
            dx[i] = outs[i];
    }
done:
    ot_free(k);
    return st;
}

/* BatchNormTrain: y = scale * xhat + B, xhat = (x - mu) * inv_std with the batch
   mean mu and inv_std = 1 / sqrt(biased var + eps), over M = N * spatial
   elements per channel. dB = sum dY; dScale = sum dY * xhat;
   dX = scale * inv_std / M * (M * dY - dB - xhat * dScale). The running
   statistics get no gradient. The saved statistics (outputs 3 and 4) are
   added to the forward node when it lacks them. */
ot_status ot_op_grad_batchnorm_train(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                                     const bool *need_dx, ot_err *err)
{
    ot_status st = OT_OK;
    char name[NAME_MAX_], h0[NAME_MAX_], h1[NAME_MAX_], h2[NAME_MAX_];
    if (dy[0] < 0 || !(need_dx[0] || need_dx[1] || need_dx[2]))
        return OT_OK;
    int32_t mean, inv_std;
    const char *yname = g->values[out_id(g, node, 0)].name;
    snprintf(h0, sizeof h0, "%s/saved_mean", yname);
    OT_TRY(ot_op_grad_add_output(g, node, 3, h0, &mean, err));
    snprintf(h0, sizeof h0, "%s/saved_inv_std", yname);
    OT_TRY(ot_op_grad_add_output(g, node, 4, h0, &inv_std, err));
    {
        float eps = ot_node_attr_float(&g->nodes[node], "epsilon", 1e-5f);
        int32_t in[5] = { dy[0], in_id(g, node, 0), in_id(g, node, 1), mean, inv_std }, outs[3];
        ot_attr as[2] = { ot_op_grad_attr_int("training_mode", 1),
                          ot_op_grad_attr_float("epsilon", eps) };
        const char *names[3] = { need_dx[0] ? ot_op_grad_dx_name(g, node, 0, h0) : NULL,
                                 need_dx[1] ? ot_op_grad_dx_name(g, node, 1, h1) : NULL,
                                 need_dx[2] ? ot_op_grad_dx_name(g, node, 2, h2) : NULL };
        int n_out = need_dx[2] ? 3 : need_dx[1] ? 2 : 1;
        OT_TRY(ot_op_grad_emit(g, &ot_op_batchnorm_grad, 0,
                               ot_op_grad_node_name(g, node, NULL, name, sizeof name), in, 5, as,
                               2, names, outs, n_out, err));
        for (int i = 0; i < n_out; i++)
            dx[i] = outs[i];
    }
done:
    return st;
}

/* A unary op whose backward op takes (dY, v) with v input 0 or output 0. */
static ot_status unary_rule(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                            const bool *need_dx, const ot_op_desc *op, bool use_output,
                            const ot_attr *attrs, int n_attrs, ot_err *err)
{
    char name[NAME_MAX_], hint[NAME_MAX_];
    if (dy[0] < 0 || !need_dx[0])
        return OT_OK;
    int32_t in[2] = { dy[0], use_output ? out_id(g, node, 0) : in_id(g, node, 0) };
    return ot_op_grad_emit1(g, op, ot_op_grad_node_name(g, node, NULL, name, sizeof name), in, 2,
                            attrs, n_attrs, ot_op_grad_dx_name(g, node, 0, hint), &dx[0], err);
}

/* Relu: dX = dY * (Y > 0) (0 at the kink, as PyTorch). */
ot_status ot_op_grad_relu(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                          const bool *need_dx, ot_err *err)
{
    return unary_rule(g, node, dy, dx, need_dx, &ot_op_relu_grad, true, NULL, 0, err);
}

/* LeakyRelu: dX = dY * (X > 0 ? 1 : alpha). */
ot_status ot_op_grad_leakyrelu(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                               const bool *need_dx, ot_err *err)
{
    ot_attr a = ot_op_grad_attr_float("alpha",
                                      ot_node_attr_float(&g->nodes[node], "alpha", 0.01f));
    return unary_rule(g, node, dy, dx, need_dx, &ot_op_leakyrelu_grad, false, &a, 1, err);
}

/* Sigmoid: dX = dY * Y * (1 - Y). */
ot_status ot_op_grad_sigmoid(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                             const bool *need_dx, ot_err *err)
{
    return unary_rule(g, node, dy, dx, need_dx, &ot_op_sigmoid_grad, true, NULL, 0, err);
}

/* Clip: dX = dY where min <= X <= max, else 0. The bounds get no gradient. */
ot_status ot_op_grad_clip(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                          const bool *need_dx, ot_err *err)
{
    char name[NAME_MAX_], hint[NAME_MAX_];
    if (dy[0] < 0 || !need_dx[0])
        return OT_OK;
    const ot_node *n = &g->nodes[node];
    int32_t in[4] = { dy[0], n->in[0], -1, -1 };
    ot_attr as[2];
    int n_attrs = 0, n_in = 2;
    if (n->opset < 11) {
        as[n_attrs++] = ot_op_grad_attr_float("min", ot_node_attr_float(n, "min", -3.4028234e38f));
        as[n_attrs++] = ot_op_grad_attr_float("max", ot_node_attr_float(n, "max", 3.4028234e38f));
    } else {
        for (int i = 1; i < 3 && i < n->n_in; i++)
            if (n->in[i] >= 0) {
                in[1 + i] = n->in[i];
                n_in = 2 + i;
            }
    }
    return ot_op_grad_emit1(g, &ot_op_clip_grad,
                            ot_op_grad_node_name(g, node, NULL, name, sizeof name), in, n_in, as,
                            n_attrs, ot_op_grad_dx_name(g, node, 0, hint), &dx[0], err);
}

/* Window pools and GlobalMaxPool take (dY, X); AveragePool and
   GlobalAveragePool only X's shape. */
static ot_status pool_rule(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                           const bool *need_dx, const ot_op_desc *op, bool shape_only,
                           ot_err *err)
{
    ot_status st = OT_OK;
    char name[NAME_MAX_], hint[NAME_MAX_];
    if (dy[0] < 0 || !need_dx[0])
        return OT_OK;
    int32_t in[2] = { dy[0], in_id(g, node, 0) };
    if (shape_only)
        OT_TRY(ot_op_grad_shape_of(g, in[1], &in[1], err));
    const ot_node *n = &g->nodes[node];
    OT_TRY(ot_op_grad_emit1(g, op, ot_op_grad_node_name(g, node, NULL, name, sizeof name), in, 2,
                            n->attrs, n->n_attrs, ot_op_grad_dx_name(g, node, 0, hint), &dx[0],
                            err));
done:
    return st;
}

/* MaxPool: dX[i] = sum of dY[o] over the windows o whose first maximum is at
   i (ties: the first in row-major window order, as the forward kernel). */
ot_status ot_op_grad_maxpool(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                             const bool *need_dx, ot_err *err)
{
    return pool_rule(g, node, dy, dx, need_dx, &ot_op_maxpool_grad, false, err);
}

/* AveragePool: dX[i] = sum over windows o containing i of dY[o] / count(o),
   count as the forward (count_include_pad, ceil_mode). */
ot_status ot_op_grad_avgpool(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                             const bool *need_dx, ot_err *err)
{
    return pool_rule(g, node, dy, dx, need_dx, &ot_op_avgpool_grad, true, err);
}

/* GlobalAveragePool: dX[n,c,i] = dY[n,c] / (spatial size). */
ot_status ot_op_grad_globalavgpool(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                                   const bool *need_dx, ot_err *err)
{
    return pool_rule(g, node, dy, dx, need_dx, &ot_op_globalavgpool_grad, true, err);
}

/* GlobalMaxPool: dX[n,c,i] = dY[n,c] at the first maximum of X[n,c], else 0. */
ot_status ot_op_grad_globalmaxpool(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                                   const bool *need_dx, ot_err *err)
{
    return pool_rule(g, node, dy, dx, need_dx, &ot_op_globalmaxpool_grad, false, err);
}

int64_t ot_op_grad_legacy_axis(const ot_graph *g, int32_t node)
{
    const ot_node *n = &g->nodes[node];
    if (n->opset >= 7 || ot_node_attr_int(n, "broadcast", 0) == 0)
        return -1;
    const ot_value *a = &g->values[n->in[0]], *b = &g->values[n->in[1]];
    int64_t axis = ot_node_attr_int(n, "axis", a->ndim - b->ndim);
    return axis < 0 ? axis + a->ndim : axis;
}

/* Add: dA = sum of dY over A's broadcast dims, dB likewise. */
ot_status ot_op_grad_add(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                         const bool *need_dx, ot_err *err)
{
    ot_status st = OT_OK;
    char name[NAME_MAX_];
    if (dy[0] < 0)
        return OT_OK;
    int64_t axis = ot_op_grad_legacy_axis(g, node);
    for (int i = 0; i < 2; i++)
        if (need_dx[i])
            OT_TRY(ot_op_grad_reduce_to(g, ot_op_grad_node_name(g, node, i ? "b" : "a", name,
                                                                sizeof name),
                                        dy[0], in_id(g, node, i), i == 1 ? axis : -1, &dx[i],
                                        err));
done:
    return st;
}

/* Sum: dX_i = sum of dY over X_i's broadcast dims. */
ot_status ot_op_grad_sum_op(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                            const bool *need_dx, ot_err *err)
{
    ot_status st = OT_OK;
    char name[NAME_MAX_], sfx[32];
    if (dy[0] < 0)
        return OT_OK;
    for (int i = 0; i < g->nodes[node].n_in; i++) {
        if (!need_dx[i])
            continue;
        snprintf(sfx, sizeof sfx, "%d", i);
        OT_TRY(ot_op_grad_reduce_to(g, ot_op_grad_node_name(g, node, sfx, name, sizeof name),
                                    dy[0], in_id(g, node, i), -1, &dx[i], err));
    }
done:
    return st;
}

/* Mul: dA = reduce(dY * B) to A's shape, dB = reduce(dY * A) to B's shape. */
ot_status ot_op_grad_mul(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                         const bool *need_dx, ot_err *err)
{
    ot_status st = OT_OK;
    char name[NAME_MAX_], hint[NAME_MAX_];
    if (dy[0] < 0)
        return OT_OK;
    int64_t axis = ot_op_grad_legacy_axis(g, node);
    int32_t a = in_id(g, node, 0), b = in_id(g, node, 1), prod;
    if (need_dx[0]) {
        /* dY has A's shape in the legacy form: keep B's legacy placement */
        const ot_node *n = &g->nodes[node];
        int32_t in[2] = { dy[0], b };
        snprintf(hint, sizeof hint, "grad/%s/times_b", g->values[a].name);
        OT_TRY(ot_op_grad_emit(g, &ot_op_mul, axis >= 0 ? n->opset : 0,
                               ot_op_grad_node_name(g, node, "a", name, sizeof name), in, 2,
                               axis >= 0 ? n->attrs : NULL, axis >= 0 ? n->n_attrs : 0,
                               (const char *const[]){ hint }, &prod, 1, err));
        OT_TRY(ot_op_grad_reduce_to(g, ot_op_grad_node_name(g, node, "a_sum", name, sizeof name),
                                    prod, a, -1, &dx[0], err));
    }
    if (need_dx[1]) {
        int32_t in[2] = { dy[0], a };
        snprintf(hint, sizeof hint, "grad/%s/times_a", g->values[b].name);
        OT_TRY(ot_op_grad_emit1(g, &ot_op_mul,
                                ot_op_grad_node_name(g, node, "b", name, sizeof name), in, 2, NULL,
                                0, hint, &prod, err));
        OT_TRY(ot_op_grad_reduce_to(g, ot_op_grad_node_name(g, node, "b_sum", name, sizeof name),
                                    prod, b, axis, &dx[1], err));
    }
done:
    return st;
}

/* Concat: dX_i = dY[..., start_i:end_i, ...] along axis (SliceAxis). The
   inputs' sizes along the axis must be static. */
ot_status ot_op_grad_concat(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                            const bool *need_dx, ot_err *err)
{
    ot_status st = OT_OK;
    char name[NAME_MAX_], hint[NAME_MAX_], sfx[32];
    if (dy[0] < 0)
        return OT_OK;
    const ot_value *yv = &g->values[dy[0]];
    int axis;
    if (yv->ndim < 1 || !ot_op_axis(ot_node_attr_int(&g->nodes[node], "axis", 1), yv->ndim, &axis))
        return ot_op_grad_unsupported(g, node, "a Concat of unknown rank", err);
    int64_t start = 0;
    int n_in = g->nodes[node].n_in;
    for (int i = 0; i < n_in; i++) {
        int32_t x = in_id(g, node, i);
        const ot_value *xv = &g->values[x];
        if (xv->ndim != yv->ndim || xv->dims[axis] < 0)
            return ot_op_grad_unsupported(g, node, "a Concat input of dynamic size along the axis",
                                          err);
        int64_t len = xv->dims[axis];
        if (need_dx[i]) {
            ot_attr as[3] = { ot_op_grad_attr_int("axis", axis),
                              ot_op_grad_attr_int("start", start),
                              ot_op_grad_attr_int("end", start + len) };
            snprintf(sfx, sizeof sfx, "%d", i);
            OT_TRY(ot_op_grad_emit1(g, &ot_op_slice_axis,
                                    ot_op_grad_node_name(g, node, sfx, name, sizeof name), &dy[0],
                                    1, as, 3, ot_op_grad_dx_name(g, node, i, hint), &dx[i], err));
        }
        start += len;
        yv = &g->values[dy[0]];
    }
done:
    return st;
}

/* Flatten, Reshape, Squeeze, Unsqueeze: the elements are unchanged, so
   dX = Reshape(dY, Shape(X)) (allowzero=1: a 0 in X's shape is a 0). Shape
   operands get no gradient. */
ot_status ot_op_grad_reshape_like(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                                  const bool *need_dx, ot_err *err)
{
    ot_status st = OT_OK;
    char name[NAME_MAX_], hint[NAME_MAX_];
    if (dy[0] < 0 || !need_dx[0])
        return OT_OK;
    int32_t x = in_id(g, node, 0);
    if (ot_op_grad_same_shape(g, dy[0], x)) {
        dx[0] = dy[0];
        return OT_OK;
    }
    int32_t in[2] = { dy[0], -1 };
    OT_TRY(ot_op_grad_shape_of(g, x, &in[1], err));
    ot_attr a = ot_op_grad_attr_int("allowzero", 1);
    OT_TRY(ot_op_grad_emit1(g, &ot_op_reshape,
                            ot_op_grad_node_name(g, node, NULL, name, sizeof name), in, 2, &a, 1,
                            ot_op_grad_dx_name(g, node, 0, hint), &dx[0], err));
done:
    return st;
}

/* Transpose: y = x permuted by p, so dX = dY permuted by p's inverse q,
   q[p[i]] = i (the reversal is its own inverse). */
ot_status ot_op_grad_transpose(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                               const bool *need_dx, ot_err *err)
{
    char name[NAME_MAX_], hint[NAME_MAX_];
    if (dy[0] < 0 || !need_dx[0])
        return OT_OK;
    size_t len = 0;
    const int64_t *p = ot_node_attr_ints(&g->nodes[node], "perm", &len);
    int64_t q[OT_MAX_DIMS];
    ot_attr a;
    if (p) {
        if (len > OT_MAX_DIMS)
            return ot_op_grad_unsupported(g, node, "a permutation of that rank", err);
        for (size_t i = 0; i < len; i++) {
            if (p[i] < 0 || (size_t)p[i] >= len)
                return ot_op_grad_unsupported(g, node, "an invalid permutation", err);
            q[p[i]] = (int64_t)i;
        }
        a = ot_op_grad_attr_ints("perm", q, len);
    }
    return ot_op_grad_emit1(g, &ot_op_transpose,
                            ot_op_grad_node_name(g, node, NULL, name, sizeof name), &dy[0], 1, &a,
                            p ? 1 : 0, ot_op_grad_dx_name(g, node, 0, hint), &dx[0], err);
}

/* Multiplies v by a scalar constant c (unless c is 1). */
static ot_status scale_by(ot_graph *g, int32_t node, const char *sfx, int32_t v, float c,
                          int32_t *out, ot_err *err)
{
    ot_status st = OT_OK;
    char name[NAME_MAX_], hint[NAME_MAX_];
    if (c == 1.0f) {
        *out = v;
        return OT_OK;
    }
    int32_t in[2] = { v, -1 };
    OT_TRY(ot_op_grad_const_f32(g, ot_op_grad_node_name(g, node, sfx, name, sizeof name), NULL,
                                0, &c, &in[1], err));
    snprintf(hint, sizeof hint, "%s/scaled", g->values[v].name);
    OT_TRY(ot_op_grad_emit1(g, &ot_op_mul, ot_op_grad_node_name(g, node, sfx, name, sizeof name),
                            in, 2, NULL, 0, hint, out, err));
done:
    return st;
}

/* Emits Gemm(a, b) with transposes and alpha. */
static ot_status gemm2(ot_graph *g, int32_t node, const char *sfx, int32_t a, int32_t b, int ta,
                       int tb, float alpha, const char *out_name, int32_t *out, ot_err *err)
{
    char name[NAME_MAX_];
    ot_attr as[3];
    int k = 0;
    if (ta)
        as[k++] = ot_op_grad_attr_int("transA", 1);
    if (tb)
        as[k++] = ot_op_grad_attr_int("transB", 1);
    if (alpha != 1.0f)
        as[k++] = ot_op_grad_attr_float("alpha", alpha);
    int32_t in[2] = { a, b };
    return ot_op_grad_emit1(g, &ot_op_gemm, ot_op_grad_node_name(g, node, sfx, name, sizeof name),
                            in, 2, as, k, out_name, out, err);
}

/* Gemm: Y = alpha * A' B' + beta * C with A' = transA ? A^T : A, B' likewise.
   dA' = alpha * dY B'^T and dB' = alpha * A'^T dY, transposed back where the
   operand was transposed:
     dA = alpha * dY B^T (tA=0, tB=0)   alpha * dY B (tA=0, tB=1)
          alpha * B dY^T (tA=1, tB=0)   alpha * B^T dY^T (tA=1, tB=1)
     dB = alpha * A^T dY (tA=0, tB=0)   alpha * dY^T A (tA=0, tB=1)
          alpha * A dY (tA=1, tB=0)     alpha * dY^T A^T (tA=1, tB=1)
   dC = beta * dY summed over C's broadcast dims. */
ot_status ot_op_grad_gemm(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                          const bool *need_dx, ot_err *err)
{
    ot_status st = OT_OK;
    char hint[NAME_MAX_], name[NAME_MAX_];
    if (dy[0] < 0)
        return OT_OK;
    const ot_node *n = &g->nodes[node];
    int ta = ot_node_attr_int(n, "transA", 0) != 0, tb = ot_node_attr_int(n, "transB", 0) != 0;
    float alpha = ot_node_attr_float(n, "alpha", 1.0f), beta = ot_node_attr_float(n, "beta", 1.0f);
    int32_t a = in_id(g, node, 0), b = in_id(g, node, 1), c = in_id(g, node, 2), d = dy[0];
    if (need_dx[0]) {
        ot_op_grad_dx_name(g, node, 0, hint);
        if (!ta)
            OT_TRY(gemm2(g, node, "a", d, b, 0, !tb, alpha, hint, &dx[0], err));
        else
            OT_TRY(gemm2(g, node, "a", b, d, tb, 1, alpha, hint, &dx[0], err));
    }
    if (need_dx[1]) {
        ot_op_grad_dx_name(g, node, 1, hint);
        if (!tb)
            OT_TRY(gemm2(g, node, "b", a, d, !ta, 0, alpha, hint, &dx[1], err));
        else
            OT_TRY(gemm2(g, node, "b", d, a, 1, ta, alpha, hint, &dx[1], err));
    }
    if (c >= 0 && need_dx[2]) {
        int32_t r;
        OT_TRY(ot_op_grad_reduce_to(g, ot_op_grad_node_name(g, node, "c", name, sizeof name), d,
                                    c, -1, &r, err));
        OT_TRY(scale_by(g, node, "beta", r, beta, &dx[2], err));
    }
done:
    return st;
}

/* Transpose of the last two dims of v. */
static ot_status swap_last2(ot_graph *g, int32_t node, const char *sfx, int32_t v, int32_t *out,
                            ot_err *err)
{
    char name[NAME_MAX_], hint[NAME_MAX_];
    int r = g->values[v].ndim;
    int64_t perm[OT_MAX_DIMS];
    for (int i = 0; i < r; i++)
        perm[i] = i;
    perm[r - 2] = r - 1;
    perm[r - 1] = r - 2;
    ot_attr a = ot_op_grad_attr_ints("perm", perm, (size_t)r);
    snprintf(hint, sizeof hint, "grad/%s/T", g->values[v].name);
    return ot_op_grad_emit1(g, &ot_op_transpose,
                            ot_op_grad_node_name(g, node, sfx, name, sizeof name), &v, 1, &a, 1,
                            hint, out, err);
}

/* dB of MatMul(A, B) with B 2-D [K, N] and A of rank > 2 [..., K]: the sum
   over A's batch dims of A^T dY is one product of the flattened rows,
   Gemm(Reshape(A, [-1, K]), Reshape(dY, [-1, N]), transA=1), instead of a
   batched MatMul whose [..., K, N] result is then reduced (a K x N matrix per
   row of the batch: gigabytes for a Linear layer on an [N, H, W, C] map).
   *out stays -1 where K or N is not known. */
static ot_status matmul_grad_b_rows(ot_graph *g, int32_t node, int32_t a, int32_t d,
                                    int32_t b, int32_t *out, ot_err *err)
{
    ot_status st = OT_OK;
    char name[NAME_MAX_], hint[NAME_MAX_];
    int64_t k = g->values[b].dims[0], nn = g->values[b].dims[1];
    *out = -1;
    if (k < 1 || nn < 1 || g->values[a].dims[g->values[a].ndim - 1] != k)
        return OT_OK;
    int32_t rows[2];
    const int32_t src[2] = { a, d };
    const int64_t cols[2] = { k, nn };
    static const char *const sfx[2][2] = { { "a_rows_shape", "a_rows" },
                                           { "dy_rows_shape", "dy_rows" } };
    for (int i = 0; i < 2; i++) {
        int64_t shape[2] = { -1, cols[i] }, two = 2;
        int32_t in[2] = { src[i], -1 };
        OT_TRY(ot_op_grad_const_i64(g, ot_op_grad_node_name(g, node, sfx[i][0], name, sizeof name),
                                    &two, 1, shape, &in[1], err));
        snprintf(hint, sizeof hint, "grad/%s/rows", g->values[src[i]].name);
        OT_TRY(ot_op_grad_emit1(g, &ot_op_reshape,
                                ot_op_grad_node_name(g, node, sfx[i][1], name, sizeof name), in, 2,
                                NULL, 0, hint, &rows[i], err));
    }
    OT_TRY(gemm2(g, node, "b", rows[0], rows[1], 1, 0, 1.0f, ot_op_grad_dx_name(g, node, 1, hint),
                 out, err));
done:
    return st;
}

/* MatMul: Y = A B (batch dims broadcast). dA = dY B^T and dB = A^T dY (B^T:
   the last two dims swapped), each summed over its broadcast batch dims.
   Both 2-D: Gemm with transposes instead; B 2-D under a batched A: dB from
   the flattened rows (matmul_grad_b_rows). 1-D operands are unsupported. */
ot_status ot_op_grad_matmul(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                            const bool *need_dx, ot_err *err)
{
    ot_status st = OT_OK;
    char hint[NAME_MAX_], name[NAME_MAX_];
    if (dy[0] < 0)
        return OT_OK;
    int32_t a = in_id(g, node, 0), b = in_id(g, node, 1), d = dy[0];
    int ra = g->values[a].ndim, rb = g->values[b].ndim;
    if (ra < 2 || rb < 2)
        return ot_op_grad_unsupported(g, node, "MatMul with a 1-D (or unknown-rank) operand", err);
    if (ra == 2 && rb == 2) {
        if (need_dx[0])
            OT_TRY(gemm2(g, node, "a", d, b, 0, 1, 1.0f, ot_op_grad_dx_name(g, node, 0, hint),
                         &dx[0], err));
        if (need_dx[1])
            OT_TRY(gemm2(g, node, "b", a, d, 1, 0, 1.0f, ot_op_grad_dx_name(g, node, 1, hint),
                         &dx[1], err));
        return OT_OK;
    }
    if (need_dx[0]) {
        int32_t bt, in[2], prod;
        OT_TRY(swap_last2(g, node, "bT", b, &bt, err));
        in[0] = d;
        in[1] = bt;
        snprintf(hint, sizeof hint, "grad/%s/full", g->values[a].name);
        OT_TRY(ot_op_grad_emit1(g, &ot_op_matmul,
                                ot_op_grad_node_name(g, node, "a", name, sizeof name), in, 2, NULL,
                                0, hint, &prod, err));
        OT_TRY(ot_op_grad_reduce_to(g, ot_op_grad_node_name(g, node, "a_sum", name, sizeof name),
                                    prod, a, -1, &dx[0], err));
    }
    if (need_dx[1] && rb == 2)
        OT_TRY(matmul_grad_b_rows(g, node, a, d, b, &dx[1], err));
    if (need_dx[1] && dx[1] < 0) {
        int32_t at, in[2], prod;
        OT_TRY(swap_last2(g, node, "aT", a, &at, err));
        in[0] = at;
        in[1] = d;
        snprintf(hint, sizeof hint, "grad/%s/full", g->values[b].name);
        OT_TRY(ot_op_grad_emit1(g, &ot_op_matmul,
                                ot_op_grad_node_name(g, node, "b", name, sizeof name), in, 2, NULL,
                                0, hint, &prod, err));
        OT_TRY(ot_op_grad_reduce_to(g, ot_op_grad_node_name(g, node, "b_sum", name, sizeof name),
                                    prod, b, -1, &dx[1], err));
    }
done:
    return st;
}

/* Dropout: y = x * mask * scale with scale = 1 / (1 - ratio) in training mode
   (opset 12+ training_mode true), else y = x and the mask is all true; so
   dX = dY * mask * scale. The forward node gets its mask output when it has
   none. ratio and training_mode get no gradient. */
ot_status ot_op_grad_dropout(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                             const bool *need_dx, ot_err *err)
{
    ot_status st = OT_OK;
    char name[NAME_MAX_], hint[NAME_MAX_];
    if (dy[0] < 0 || !need_dx[0])
        return OT_OK;
    int32_t mask;
    snprintf(hint, sizeof hint, "%s/mask", g->values[out_id(g, node, 0)].name);
    OT_TRY(ot_op_grad_add_output(g, node, 1, hint, &mask, err));
    {
        const ot_node *n = &g->nodes[node];
        int32_t in[4] = { dy[0], mask, -1, -1 };
        int n_in = 2;
        ot_attr a = ot_op_grad_attr_float("ratio", ot_node_attr_float(n, "ratio", 0.5f));
        if (n->opset >= 12) {
            for (int i = 1; i < 3 && i < n->n_in; i++)
                if (n->in[i] >= 0) {
                    in[1 + i] = n->in[i];
                    n_in = 2 + i;
                }
        }
        OT_TRY(ot_op_grad_emit1(
            g, &ot_op_dropout_grad, ot_op_grad_node_name(g, node, NULL, name, sizeof name), in,
            n_in, &a, n->opset < 12 ? 1 : 0, ot_op_grad_dx_name(g, node, 0, hint), &dx[0], err));
    }
done:
    return st;
}

/* DropoutTrain: y = x * mask / (1 - ratio), so dX = dY * mask / (1 - ratio):
   DropoutGrad with the ratio and training_mode = 1 as constants. The seed
   gets no gradient. */
ot_status ot_op_grad_dropout_train(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                                   const bool *need_dx, ot_err *err)
{
    ot_status st = OT_OK;
    char name[NAME_MAX_], hint[NAME_MAX_];
    if (dy[0] < 0 || !need_dx[0])
        return OT_OK;
    const ot_node *n = &g->nodes[node];
    float ratio = ot_node_attr_float(n, "ratio", 0.5f);
    int32_t mask = n->out[1], ratio_id, train_id;
    int64_t one = 1;
    snprintf(hint, sizeof hint, "%s/ratio", g->values[out_id(g, node, 0)].name);
    OT_TRY(ot_op_grad_const_f32(g, hint, NULL, 0, &ratio, &ratio_id, err));
    snprintf(hint, sizeof hint, "%s/training", g->values[out_id(g, node, 0)].name);
    OT_TRY(ot_op_grad_const_i64(g, hint, NULL, 0, &one, &train_id, err));
    {
        int32_t in[4] = { dy[0], mask, ratio_id, train_id };
        ot_attr a = ot_op_grad_attr_float("ratio", ratio);
        OT_TRY(ot_op_grad_emit1(g, &ot_op_dropout_grad,
                                ot_op_grad_node_name(g, node, NULL, name, sizeof name), in, 4, &a,
                                1, ot_op_grad_dx_name(g, node, 0, hint), &dx[0], err));
    }
done:
    return st;
}

/* Softmax: dX = Y * (dY - sum(dY * Y)); LogSoftmax: dX = dY - exp(Y) * sum(dY);
   sums along the normalised axis (before opset 13: the axis and all dims
   after it). */
ot_status ot_op_grad_softmax(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                             const bool *need_dx, ot_err *err)
{
    const ot_node *n = &g->nodes[node];
    bool legacy = n->opset < 13;
    ot_attr as[2] = { ot_op_grad_attr_int("axis", ot_node_attr_int(n, "axis", legacy ? 1 : -1)),
                      ot_op_grad_attr_int("coerce_2d", legacy) };
    const ot_op_desc *op =
        n->op == &ot_op_logsoftmax ? &ot_op_logsoftmax_grad : &ot_op_softmax_grad;
    return unary_rule(g, node, dy, dx, need_dx, op, true, as, 2, err);
}

/* Identity: dX = dY. */
ot_status ot_op_grad_identity(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                              const bool *need_dx, ot_err *err)
{
    (void)g, (void)node, (void)err;
    if (need_dx[0])
        dx[0] = dy[0];
    return OT_OK;
}

/* ReduceSumTo: every element of X adds into one of Y, so dX = dY broadcast
   back to X's shape (BroadcastTo, same alignment). */
ot_status ot_op_grad_reduce_sum_to(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                                   const bool *need_dx, ot_err *err)
{
    ot_status st = OT_OK;
    char name[NAME_MAX_], hint[NAME_MAX_];
    if (dy[0] < 0 || !need_dx[0])
        return OT_OK;
    const ot_node *n = &g->nodes[node];
    const ot_attr *axis = ot_node_find_attr(n, "axis");
    int32_t in[2] = { dy[0], -1 };
    OT_TRY(ot_op_grad_shape_of(g, in_id(g, node, 0), &in[1], err));
    OT_TRY(ot_op_grad_emit1(g, &ot_op_broadcast_to,
                            ot_op_grad_node_name(g, node, NULL, name, sizeof name), in, 2, axis,
                            axis ? 1 : 0, ot_op_grad_dx_name(g, node, 0, hint), &dx[0], err));
done:
    return st;
}

/* BroadcastTo: dX = dY summed over the broadcast dims (ReduceSumTo). */
ot_status ot_op_grad_broadcast_to(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                                  const bool *need_dx, ot_err *err)
{
    char name[NAME_MAX_];
    if (dy[0] < 0 || !need_dx[0])
        return OT_OK;
    const ot_node *n = &g->nodes[node];
    int64_t axis = ot_node_attr_int(n, "axis", -1);
    return ot_op_grad_reduce_to(g, ot_op_grad_node_name(g, node, NULL, name, sizeof name), dy[0],
                                in_id(g, node, 0), axis, &dx[0], err);
}

/* SoftmaxCrossEntropy: loss = (1/N) sum_n -sum_c q[n,c] log softmax(x)[n,c], so
   dlogits = dloss * (softmax(x) - q) / N. Labels get no gradient. */
ot_status ot_op_grad_softmax_xent(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                                  const bool *need_dx, ot_err *err)
{
    char name[NAME_MAX_], hint[NAME_MAX_];
    if (dy[0] < 0 || !need_dx[0])
        return OT_OK;
    const ot_node *n = &g->nodes[node];
    ot_attr a = ot_op_grad_attr_float("label_smoothing",
                                      ot_node_attr_float(n, "label_smoothing", 0.0f));
    int32_t in[3] = { dy[0], n->in[0], n->in[1] };
    return ot_op_grad_emit1(g, &ot_op_softmax_xent_grad,
                            ot_op_grad_node_name(g, node, NULL, name, sizeof name), in, 3, &a, 1,
                            ot_op_grad_dx_name(g, node, 0, hint), &dx[0], err);
}
