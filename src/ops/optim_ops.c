/*
 * optim_ops.c: the private ops (domain "ai.onnxtrain", opset 1) with which a
 * step graph updates its own state: one optimizer update per trained
 * parameter, and gradient-norm clipping. The optimizer pass
 * (src/train/optim.c) emits them after the backward nodes; none is ever
 * exported or differentiated.
 *
 *   SgdStep    (P, G, lr, step [, B] [, coef]) -> P' [, B']   (coef is input
 *              5 with or without B)
 *   AdamStep   (P, G, lr, step, M, V [, coef]) -> P', M', V'
 *   AdamWStep  (P, G, lr, step, M, V [, coef]) -> P', M', V'
 *              P the parameter, G its gradient, B the SGD momentum buffer,
 *              M and V Adam's first and second moments (all float, one
 *              shape); lr a double scalar (the group's rate this step), step
 *              an int64 scalar (1 at the first update); coef an optional
 *              float scalar from ClipGradCoef or the loss scaling (G is
 *              scaled by it when it is below 1; a coef that is not finite
 *              skips the update: P, B, M, V keep their values). The outputs overwrite P, B, M, V in place when those
 *              are executor state (in_place below), so a step updates the
 *              parameters and moments where they live.
 *              Hyper-parameters are 0-d double TENSOR attributes
 *              (weight_decay, momentum, dampening, beta1, beta2, eps), and
 *              nesterov an INT: the update forms its float scalars from
 *              doubles as PyTorch forms them from Python floats, which a
 *              FLOAT attribute would round first.
 *   GradSumSquares (G [, acc]) -> acc + sum_j G[j]^2, a double scalar (the
 *              squares summed in double in index order, then added to acc):
 *              chained over the gradients it gives the squared global norm.
 *   ClipGradCoef (sum_sq [, scale]) -> coef, norm: norm = sqrt(sum_sq)
 *              rounded to float, coef = max_norm / (norm + 1e-6) in float
 *              (attribute max_norm), as torch.nn.utils.clip_grad_norm_.
 *              With scale (a float scalar: fp16's loss scale, which the
 *              summed gradients carry), the clipping sees the unscaled
 *              gradients, as GradScaler.unscale_ before clip_grad_norm_:
 *              norm = sqrt(sum_sq) / scale, coef = min(1, max_norm / (norm
 *              + 1e-6)) * (1 / scale), and NaN (every update skipped) when
 *              sqrt(sum_sq) is not finite.
 *
 * The formulas are in src/exec/cpu/ref_optim.c.
 */
#include <string.h>

#include "ops/op_util.h"

double ot_op_attr_double(const ot_node *n, const char *name, double def)
{
    const ot_attr *a = ot_node_find_attr(n, name);
    if (!a || a->type != OT_ATTR_TENSOR || !a->t || a->t->dtype != OT_DTYPE_DOUBLE ||
        a->t->bytes != sizeof(double) || !a->t->data)
        return def;
    double v;
    memcpy(&v, a->t->data, sizeof v);
    return v;
}

/* Output k like value `like`. */
static void set_like(ot_graph *g, ot_node *n, int k, ot_dtype t, const ot_value *like)
{
    ot_value *v = ot_op_out(g, n, k);
    if (!v)
        return;
    ot_op_dims d;
    ot_op_dims_of(like, &d);
    ot_op_set(v, t, &d);
}

static void set_scalar(ot_graph *g, ot_node *n, int k, ot_dtype t)
{
    ot_value *v = ot_op_out(g, n, k);
    ot_op_dims d = { .ndim = 0 };
    if (v)
        ot_op_set(v, t, &d);
}

/* Input i, when present and known, must be a scalar of dtype t. */
static ot_status need_scalar(ot_graph *g, ot_node *n, int i, ot_dtype t, ot_err *err)
{
    const ot_value *v = ot_op_in(g, n, i);
    if (!ot_op_known(v))
        return OT_OK;
    if (v->dtype != t || v->ndim != 0)
        return ot_op_err(err, OT_ERR_SHAPE, g, n, "input %d '%s' must be a %s scalar", i,
                         v->name, ot_dtype_name(t));
    return OT_OK;
}

/* Input i, when present and known, must be float and shaped like P. */
static ot_status need_like_p(ot_graph *g, ot_node *n, int i, const ot_value *p, ot_err *err)
{
    const ot_value *v = ot_op_in(g, n, i);
    if (!ot_op_known(v) || !ot_op_known(p))
        return OT_OK;
    bool same = v->dtype == OT_DTYPE_FLOAT && v->ndim == p->ndim;
    for (int d = 0; same && d < v->ndim; d++)
        same = v->dims[d] == p->dims[d];
    if (!same)
        return ot_op_err(err, OT_ERR_SHAPE, g, n,
                         "input %d '%s' must be float and shaped like the parameter '%s'", i,
                         v->name, p->name);
    return OT_OK;
}

/* P, G, lr, step, then n_bufs state buffers like P, and an optional coef at
   input coef_at. */
static ot_status update_infer(ot_graph *g, ot_node *n, int n_bufs, int coef_at, ot_err *err)
{
    ot_status st = OT_OK;
    ot_value *p = ot_op_in(g, n, 0);
    if (!ot_op_known(p))
        return OT_OK;
    if (p->dtype != OT_DTYPE_FLOAT)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "parameter '%s' is %s, expected float",
                         p->name, ot_dtype_name(p->dtype));
    OT_TRY(need_like_p(g, n, 1, p, err));
    OT_TRY(need_scalar(g, n, 2, OT_DTYPE_DOUBLE, err));
    OT_TRY(need_scalar(g, n, 3, OT_DTYPE_INT64, err));
    for (int b = 0; b < n_bufs; b++)
        OT_TRY(need_like_p(g, n, 4 + b, p, err));
    OT_TRY(need_scalar(g, n, coef_at, OT_DTYPE_FLOAT, err));
    for (int k = 0; k < n->n_out; k++)
        set_like(g, n, k, OT_DTYPE_FLOAT, p);
done:
    return st;
}

static ot_status sgd_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    /* the momentum buffer is input 4 when there are two outputs */
    int n_bufs = n->n_out > 1 && n->out[1] >= 0 ? 1 : 0;
    if (n_bufs && (n->n_in < 5 || n->in[4] < 0))
        return ot_op_err(err, OT_ERR_MODEL, g, n, "output B' needs the momentum buffer input");
    return update_infer(g, n, n_bufs, 5, err);
}

static ot_status adam_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    return update_infer(g, n, 2, 6, err);
}

static ot_status sum_squares_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_status st = OT_OK;
    ot_value *x = ot_op_in(g, n, 0);
    if (ot_op_known(x) && x->dtype != OT_DTYPE_FLOAT)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "gradient '%s' is %s, expected float",
                         x->name, ot_dtype_name(x->dtype));
    OT_TRY(need_scalar(g, n, 1, OT_DTYPE_DOUBLE, err));
    set_scalar(g, n, 0, OT_DTYPE_DOUBLE);
done:
    return st;
}

static ot_status clip_coef_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_status st = OT_OK;
    OT_TRY(need_scalar(g, n, 0, OT_DTYPE_DOUBLE, err));
    if (n->n_in > 1)
        OT_TRY(need_scalar(g, n, 1, OT_DTYPE_FLOAT, err));
    set_scalar(g, n, 0, OT_DTYPE_FLOAT);
    set_scalar(g, n, 1, OT_DTYPE_FLOAT);
done:
    return st;
}

/* GradAllReduce: outputs like its inputs, float gradients all. With
   phase=1 it only starts the bucket's reduction (one output: the token that
   names it); with phase=2 it takes that token first and the gradients after
   it (their shapes), and gives the reduced gradients. */
static ot_status all_reduce_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    int64_t phase = ot_node_attr_int(n, "phase", 0);
    int first = phase == 2 ? 1 : 0;
    if (phase < 0 || phase > 2 || ot_node_attr_int(n, "offset", 0) < 0)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "phase must be 0, 1 or 2 and offset >= 0");
    if (phase == 1 ? n->n_out != 1 : n->n_out != n->n_in - first)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "%d inputs but %d outputs", n->n_in, n->n_out);
    if (n->n_in - first > 16)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "more than 16 gradients");
    for (int i = 0; i < n->n_in; i++) {
        ot_value *x = ot_op_in(g, n, i);
        if (!x)
            return ot_op_err(err, OT_ERR_MODEL, g, n, "input %d is missing", i);
        if (!ot_op_known(x))
            continue;
        if (x->dtype != OT_DTYPE_FLOAT)
            return ot_op_err(err, OT_ERR_MODEL, g, n, "gradient '%s' is %s, expected float",
                             x->name, ot_dtype_name(x->dtype));
        if (phase != 1 && i >= first)
            set_like(g, n, i - first, OT_DTYPE_FLOAT, x);
    }
    if (phase == 1)
        set_scalar(g, n, 0, OT_DTYPE_FLOAT);
    return OT_OK;
}

static const ot_attr_spec sgd_attrs[] = {
    { "weight_decay", OT_ATTR_TENSOR, NULL, NULL, 0, 0, false },
    { "momentum", OT_ATTR_TENSOR, NULL, NULL, 0, 0, false },
    { "dampening", OT_ATTR_TENSOR, NULL, NULL, 0, 0, false },
    { "nesterov", OT_ATTR_INT, "0", ot_op_check_bool, 0, 0, false },
    { 0 },
};

static const ot_attr_spec adam_attrs[] = {
    { "weight_decay", OT_ATTR_TENSOR, NULL, NULL, 0, 0, false },
    { "beta1", OT_ATTR_TENSOR, NULL, NULL, 0, 0, false },
    { "beta2", OT_ATTR_TENSOR, NULL, NULL, 0, 0, false },
    { "eps", OT_ATTR_TENSOR, NULL, NULL, 0, 0, false },
    { 0 },
};

static const ot_attr_spec no_attrs[] = { { 0 } };

static const ot_attr_spec all_reduce_attrs[] = {
    /* 0: reduce and wait; 1: start (output: a token); 2: wait for the token */
    { "phase", OT_ATTR_INT, "0", NULL, 0, 0, false },
    /* where the bucket sits in the communicator's buffer, in floats */
    { "offset", OT_ATTR_INT, "0", NULL, 0, 0, false },
    { 0 },
};

static const ot_attr_spec clip_coef_attrs[] = {
    { "max_norm", OT_ATTR_FLOAT, NULL, NULL, 0, 0, false },
    { 0 },
};

/* Output k overwrites input in_place[k] when that input is executor state. */
static const int8_t sgd_in_place[2] = { 0, 4 };
static const int8_t adam_in_place[3] = { 0, 4, 5 };

/* no_grad: they run after the backward pass; nothing differentiates them */
OT_OP_PRIVATE_NO_GRAD(ot_op_sgd_step, OT_OP_SGD_STEP, "SgdStep", 4, 6, 1, 2, sgd_attrs,
                      sgd_infer, sgd_in_place);
OT_OP_PRIVATE_NO_GRAD(ot_op_adam_step, OT_OP_ADAM_STEP, "AdamStep", 6, 7, 3, 3, adam_attrs,
                      adam_infer, adam_in_place);
OT_OP_PRIVATE_NO_GRAD(ot_op_adamw_step, OT_OP_ADAMW_STEP, "AdamWStep", 6, 7, 3, 3, adam_attrs,
                      adam_infer, adam_in_place);
OT_OP_PRIVATE_NO_GRAD(ot_op_grad_sum_squares, OT_OP_GRAD_SUM_SQUARES, "GradSumSquares", 1, 2, 1,
                      1, no_attrs, sum_squares_infer, NULL);
/* runs between the backward pass and the updates, one node per bucket */
OT_OP_PRIVATE_NO_GRAD(ot_op_grad_all_reduce, OT_OP_GRAD_ALL_REDUCE, "GradAllReduce", 1, 17, 1, 16,
                      all_reduce_attrs, all_reduce_infer, NULL);
OT_OP_PRIVATE_NO_GRAD(ot_op_clip_grad_coef, OT_OP_CLIP_GRAD_COEF, "ClipGradCoef", 1, 2, 2, 2,
                      clip_coef_attrs, clip_coef_infer, NULL);
