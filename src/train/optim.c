/*
 * optim.c: the optimizer pass (API in optim.h): SGD, Adam and AdamW updates
 * and gradient-norm clipping as nodes at the end of a step graph, the checks
 * of their hyper-parameters, and the names checkpoints give their state.
 *
 * Per trained parameter P with gradient G:
 *   SGD        SgdStep(P, G, lr, step [, B] [, coef]) -> P' [, B']
 *   Adam(W)    Adam(W)Step(P, G, lr, step, M, V [, coef]) -> P', M', V'
 * where B, M and V are new state values (zero at the start) and P', B', M',
 * V' overwrite P, B, M, V in the executor (the ops' in_place lists). With
 * clipping, GradSumSquares nodes chain the squared norms of all gradients in
 * parameter order (s_0 = |G_0|^2, s_i = s_{i-1} + |G_i|^2, each in double),
 * and ClipGradCoef turns the total into the coefficient every update
 * applies to its gradient, and the norm itself. With dynamic loss scaling
 * (fp16) ClipGradCoef also takes the scale: the norm and the clipping are
 * those of the unscaled gradients, and the coefficient unscales them too
 * (or is NaN on an overflow, which skips the updates).
 *
 * Not here: the formulas (src/exec/cpu/ref_optim.c), the learning-rate
 * schedule (schedule.c).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ops/grad_util.h"
#include "train/optim.h"

ot_optim_opts ot_optim_opts_default(ot_optim_kind kind)
{
    ot_optim_opts o;
    memset(&o, 0, sizeof o);
    o.kind = kind;
    o.beta1 = 0.9;
    o.beta2 = 0.999;
    o.eps = 1e-8;
    if (kind == OT_OPTIM_ADAMW)
        o.weight_decay = 0.01;
    return o;
}

ot_status ot_optim_check_opts(const ot_optim_opts *o, ot_err *err)
{
    if (o->kind != OT_OPTIM_SGD && o->kind != OT_OPTIM_ADAM && o->kind != OT_OPTIM_ADAMW)
        return ot_err_set(err, OT_ERR_ARG, "optimizer: unknown kind %d", (int)o->kind);
    if (!(o->weight_decay >= 0.0 && isfinite(o->weight_decay)))
        return ot_err_set(err, OT_ERR_ARG, "optimizer: weight decay %g, expected >= 0",
                          o->weight_decay);
    if (o->kind == OT_OPTIM_SGD) {
        if (!(o->momentum >= 0.0 && isfinite(o->momentum)))
            return ot_err_set(err, OT_ERR_ARG, "SGD: momentum %g, expected >= 0", o->momentum);
        if (!isfinite(o->dampening))
            return ot_err_set(err, OT_ERR_ARG, "SGD: dampening %g is not finite", o->dampening);
        if (o->nesterov && (o->momentum <= 0.0 || o->dampening != 0.0))
            return ot_err_set(err, OT_ERR_ARG,
                              "SGD: nesterov needs momentum > 0 and dampening 0 "
                              "(have momentum %g, dampening %g)",
                              o->momentum, o->dampening);
        return OT_OK;
    }
    if (!(o->beta1 >= 0.0 && o->beta1 < 1.0) || !(o->beta2 >= 0.0 && o->beta2 < 1.0))
        return ot_err_set(err, OT_ERR_ARG, "Adam: betas (%g, %g), expected each in [0, 1)",
                          o->beta1, o->beta2);
    if (!(o->eps >= 0.0 && isfinite(o->eps)))
        return ot_err_set(err, OT_ERR_ARG, "Adam: eps %g, expected >= 0", o->eps);
    return OT_OK;
}

ot_status ot_optim_check_lr(const double *group_lr, int n_groups, ot_err *err)
{
    for (int k = 0; k < n_groups; k++)
        if (!(group_lr[k] >= 0.0 && isfinite(group_lr[k])))
            return ot_err_set(err, OT_ERR_ARG,
                              "optimizer step: learning rate %g of group %d, expected a "
                              "finite value >= 0",
                              group_lr[k], k);
    return OT_OK;
}

/* A 0-d double TENSOR attribute (the ops read them with ot_op_attr_double):
   its tensor and bytes live in g's arena. */
static ot_status double_attr(ot_graph *g, const char *name, double v, ot_attr *a, ot_err *err)
{
    ot_tensor *t = ot_arena_alloc(&g->arena, sizeof *t);
    double *d = ot_arena_alloc(&g->arena, sizeof *d);
    if (!t || !d)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    *d = v;
    memset(t, 0, sizeof *t);
    t->dtype = OT_DTYPE_DOUBLE;
    t->ndim = 0;
    t->bytes = sizeof *d;
    t->data = d;
    memset(a, 0, sizeof *a);
    a->name = name;
    a->type = OT_ATTR_TENSOR;
    a->t = t;
    return OT_OK;
}

/* A scalar graph input of dtype t, appended to g's inputs. */
ot_status ot_optim_add_scalar_input(ot_graph *g, const char *name, ot_dtype t, int32_t *id,
                                    ot_err *err)
{
    ot_status st = OT_OK;
    OT_TRY(ot_op_grad_new_value(g, name, id, err));
    ot_value *v = &g->values[*id];
    v->dtype = t;
    v->ndim = 0;
    v->producer = -1;
    v->flags |= OT_VAL_INPUT | OT_VAL_SHAPE_DECLARED;
    ot_io *io = ot_arena_alloc(&g->arena, sizeof *io * ((size_t)g->n_inputs + 1));
    if (!io)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    if (g->n_inputs)
        memcpy(io, g->inputs, sizeof *io * (size_t)g->n_inputs);
    io[g->n_inputs].value = *id;
    io[g->n_inputs].info = (ot_blob){ 0 };
    g->inputs = io;
    g->n_inputs++;
done:
    return st;
}

/* A zero-initialised state value shaped like parameter p (the executor fills
   a state value without bytes with zeros). */
static ot_status add_moment(ot_graph *g, int32_t p, const char *suffix, int32_t *id, ot_err *err)
{
    char hint[512];
    snprintf(hint, sizeof hint, "%s/%s", g->values[p].name, suffix);
    ot_status st = ot_op_grad_new_value(g, hint, id, err);
    if (st != OT_OK)
        return st;
    const ot_value *pv = &g->values[p];
    ot_value *v = &g->values[*id];
    v->dtype = OT_DTYPE_FLOAT;
    v->ndim = pv->ndim;
    memcpy(v->dims, pv->dims, sizeof v->dims);
    v->producer = -1;
    v->flags = OT_VAL_INIT | OT_VAL_STATE | OT_VAL_SHAPE_DECLARED;
    v->storage = OT_STORE_RAW;
    v->data = pv->data;
    v->data.dtype = OT_DTYPE_FLOAT;
    v->data.data = NULL;
    return OT_OK;
}

/* GradSumSquares nodes chaining the squared norms of the gradients in
   parameter order (`prefix` names them); *acc the total. */
static ot_status sum_squares(ot_graph *g, const char *prefix, const int32_t *params,
                             const int32_t *grads, int n_params, int32_t *acc, ot_err *err)
{
    *acc = -1;
    for (int i = 0; i < n_params; i++) {
        char name[512], out[64];
        snprintf(name, sizeof name, "%s/%s", prefix, g->values[params[i]].name);
        snprintf(out, sizeof out, "%s/sum_squares", prefix);
        const char *out_names[1] = { out };
        int32_t in[2] = { grads[i], *acc };
        ot_status st = ot_op_grad_emit(g, ot_op_table[OT_OP_GRAD_SUM_SQUARES], 0, name, in,
                                       *acc >= 0 ? 2 : 1, NULL, 0, out_names, acc, 1, err);
        if (st != OT_OK)
            return st;
    }
    return OT_OK;
}

/* Dynamic loss scaling (train/loss_scale.h): the gradients' global norm
   (*norm: not finite when one of them overflowed) and the coefficient the
   updates apply, 1 / scale, or NaN when the norm is not finite (norm - norm
   is 0 or NaN), which skips every update. */
static ot_status loss_scale_coef(ot_graph *g, const int32_t *params, const int32_t *grads,
                                 int n_params, int32_t scale, int32_t *coef, int32_t *norm,
                                 ot_err *err)
{
    ot_status st = OT_OK;
    int32_t acc, outs[2], zero, inv;
    OT_TRY(sum_squares(g, "loss_scale", params, grads, n_params, &acc, err));
    ot_attr a = ot_op_grad_attr_float("max_norm", 1.0f);
    const char *norm_names[2] = { "loss_scale/unused", "loss_scale/norm" };
    OT_TRY(ot_op_grad_emit(g, ot_op_table[OT_OP_CLIP_GRAD_COEF], 0, "loss_scale/norm", &acc, 1,
                           &a, 1, norm_names, outs, 2, err));
    *norm = outs[1];
    int32_t twice[2] = { *norm, *norm };
    OT_TRY(ot_op_grad_emit1(g, ot_op_table[OT_OP_SUB], "loss_scale/overflow", twice, 2, NULL, 0,
                            "loss_scale/overflow", &zero, err));
    OT_TRY(ot_op_grad_emit1(g, ot_op_table[OT_OP_RECIPROCAL], "loss_scale/inverse", &scale, 1,
                            NULL, 0, "loss_scale/inverse", &inv, err));
    int32_t sum[2] = { inv, zero };
    OT_TRY(ot_op_grad_emit1(g, ot_op_table[OT_OP_ADD], "loss_scale/coef", sum, 2, NULL, 0,
                            "loss_scale/coef", coef, err));
done:
    return st;
}

ot_status ot_optim_add_updates(ot_graph *g, const ot_optim_opts *o, const int32_t *params,
                               const int32_t *grads, const int *groups, int n_params,
                               double clip_norm, int32_t loss_scale, ot_optim_graph *og,
                               ot_err *err)
{
    ot_status st = OT_OK;
    memset(og, 0, sizeof *og);
    og->lr[0] = og->lr[1] = og->step = og->grad_norm = -1;
    OT_TRY(ot_optim_check_opts(o, err));
    if (!(clip_norm >= 0.0) || isinf(clip_norm))
        OT_FAIL(err, OT_ERR_ARG, "clip_grad_norm: max_norm %g, expected > 0", clip_norm);
    for (int i = 0; i < n_params; i++) {
        const ot_value *v = &g->values[params[i]];
        if (groups && groups[i] != 0 && groups[i] != 1)
            OT_FAIL(err, OT_ERR_ARG, "optimizer: parameter %d is in group %d, expected 0 or 1",
                    i, groups[i]);
        if (v->dtype != OT_DTYPE_FLOAT)
            OT_FAIL(err, OT_ERR_UNSUPPORTED, "parameter '%s' is %s; training needs float",
                    v->name, ot_dtype_name(v->dtype));
        if (!(v->flags & OT_VAL_STATE))
            OT_FAIL(err, OT_ERR_ARG, "optimizer: parameter '%s' is not executor state",
                    v->name);
    }
    int32_t before = g->n_nodes;
    og->n_params = n_params;
    og->n_bufs = o->kind == OT_OPTIM_SGD ? (o->momentum != 0.0 ? 1 : 0) : 2;
    og->bufs = ot_calloc((size_t)(og->n_bufs * n_params) + 1, sizeof *og->bufs);
    if (!og->bufs)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");

    for (int grp = 0; grp < 2; grp++) {
        bool used = false;
        for (int i = 0; i < n_params && !used; i++)
            used = (groups ? groups[i] : 0) == grp;
        if (used)
            OT_TRY(ot_optim_add_scalar_input(g, grp ? "onnxtrain/lr_head" : "onnxtrain/lr",
                                             OT_DTYPE_DOUBLE, &og->lr[grp], err));
    }
    OT_TRY(ot_optim_add_scalar_input(g, "onnxtrain/step", OT_DTYPE_INT64, &og->step, err));

    /* clipping: the squared norms chained in parameter order, then the
       coefficient; with loss scaling, of the unscaled gradients (the scale
       an input of ClipGradCoef, whose coefficient then also unscales and
       skips an overflowed step); loss scaling alone: its own coefficient */
    int32_t coef = -1;
    if (clip_norm > 0.0) {
        int32_t acc = -1;
        OT_TRY(sum_squares(g, "clip", params, grads, n_params, &acc, err));
        ot_attr a = ot_op_grad_attr_float("max_norm", (float)clip_norm);
        const char *out_names[2] = { "clip/coef", "clip/norm" };
        int32_t in[2] = { acc, loss_scale }, outs[2];
        OT_TRY(ot_op_grad_emit(g, ot_op_table[OT_OP_CLIP_GRAD_COEF], 0, "clip", in,
                               loss_scale >= 0 ? 2 : 1, &a, 1, out_names, outs, 2, err));
        coef = outs[0];
        og->grad_norm = outs[1];
    } else if (loss_scale >= 0) {
        OT_TRY(loss_scale_coef(g, params, grads, n_params, loss_scale, &coef, &og->grad_norm,
                               err));
    }

    /* the updates */
    ot_attr attrs[4];
    int n_attrs = 0;
    const ot_op_desc *op;
    if (o->kind == OT_OPTIM_SGD) {
        op = ot_op_table[OT_OP_SGD_STEP];
        OT_TRY(double_attr(g, "weight_decay", o->weight_decay, &attrs[0], err));
        OT_TRY(double_attr(g, "momentum", o->momentum, &attrs[1], err));
        OT_TRY(double_attr(g, "dampening", o->dampening, &attrs[2], err));
        attrs[3] = ot_op_grad_attr_int("nesterov", o->nesterov ? 1 : 0);
        n_attrs = 4;
    } else {
        op = ot_op_table[o->kind == OT_OPTIM_ADAMW ? OT_OP_ADAMW_STEP : OT_OP_ADAM_STEP];
        OT_TRY(double_attr(g, "weight_decay", o->weight_decay, &attrs[0], err));
        OT_TRY(double_attr(g, "beta1", o->beta1, &attrs[1], err));
        OT_TRY(double_attr(g, "beta2", o->beta2, &attrs[2], err));
        OT_TRY(double_attr(g, "eps", o->eps, &attrs[3], err));
        n_attrs = 4;
    }
    static const char *const buf_names[2][2] = { { "momentum_buffer", "" },
                                                 { "exp_avg", "exp_avg_sq" } };
    for (int i = 0; i < n_params; i++) {
        int32_t p = params[i];
        for (int b = 0; b < og->n_bufs; b++)
            OT_TRY(add_moment(g, p, buf_names[o->kind == OT_OPTIM_SGD ? 0 : 1][b],
                              &og->bufs[b * n_params + i], err));
        int32_t in[7];
        int n_in = 0;
        in[n_in++] = p;
        in[n_in++] = grads[i];
        in[n_in++] = og->lr[groups ? groups[i] : 0];
        in[n_in++] = og->step;
        for (int b = 0; b < og->n_bufs; b++)
            in[n_in++] = og->bufs[b * n_params + i];
        if (coef >= 0) {
            if (o->kind == OT_OPTIM_SGD && og->n_bufs == 0)
                in[n_in++] = -1; /* no momentum buffer */
            in[n_in++] = coef;
        }
        char name[512], hint[3][520];
        const char *base = g->values[p].name;
        snprintf(name, sizeof name, "update/%s", base);
        snprintf(hint[0], sizeof hint[0], "%s/updated", base);
        const char *out_names[3] = { hint[0], NULL, NULL };
        for (int b = 0; b < og->n_bufs; b++) {
            snprintf(hint[1 + b], sizeof hint[1 + b], "%s/%s_updated", base,
                     buf_names[o->kind == OT_OPTIM_SGD ? 0 : 1][b]);
            out_names[1 + b] = hint[1 + b];
        }
        int32_t outs[3];
        OT_TRY(ot_op_grad_emit(g, op, 0, name, in, n_in, attrs, n_attrs, out_names, outs,
                               1 + og->n_bufs, err));
    }
    og->n_nodes = g->n_nodes - before;
done:
    if (st != OT_OK)
        ot_optim_graph_fini(og);
    return st;
}

void ot_optim_graph_fini(ot_optim_graph *og)
{
    ot_free(og->bufs);
    memset(og, 0, sizeof *og);
}

size_t ot_optim_state_count(const ot_optim_graph *og)
{
    return 1 + (size_t)og->n_params * (size_t)og->n_bufs;
}

void ot_optim_state_describe(const ot_graph *g, const ot_optim_graph *og, ot_optim_kind kind,
                             size_t index, ot_optim_state *out, int32_t *value)
{
    memset(out, 0, sizeof *out);
    if (index == 0) {
        snprintf(out->name, sizeof out->name, "step");
        out->dtype = OT_DTYPE_INT64;
        out->numel = 1;
        *value = -1;
        return;
    }
    /* entries 1.. list buffer 0 of every parameter, then buffer 1 */
    size_t k = index - 1;
    size_t b = k / (size_t)og->n_params, i = k % (size_t)og->n_params;
    static const char *const names[2][2] = { { "sgd.momentum_buffer", "" },
                                             { "adam.m", "adam.v" } };
    snprintf(out->name, sizeof out->name, "%s.%zu", names[kind == OT_OPTIM_SGD ? 0 : 1][b], i);
    *value = og->bufs[k];
    out->dtype = OT_DTYPE_FLOAT;
    out->numel = g->values[*value].data.bytes / sizeof(float);
}
