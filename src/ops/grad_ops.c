/*
 * grad_ops.c: the ops of the private domain "ai.onnxtrain", opset 1: the
 * backward ops gradient rules emit, and the forward ops training needs that
 * ONNX lacks. None is ever exported.
 *
 * Backward ops (no_grad: autodiff never differentiates a backward graph):
 *   ConvGradData     (dY, W, x_shape) -> dX                  Conv's attributes
 *   ConvGradFilter   (dY, X) -> dW [, dB]                    Conv's attributes,
 *                                                            kernel_shape required
 *   ReluGrad         (dY, Y) -> dX = dY * (Y > 0)
 *   LeakyReluGrad    (dY, X) -> dX = dY * (X > 0 ? 1 : alpha)
 *   ClipGrad         (dY, X [, min, max]) -> dX = dY * (min <= X <= max);
 *                    min/max as inputs or attributes
 *   SigmoidGrad      (dY, Y) -> dX = dY * Y * (1 - Y)
 *   MaxPoolGrad      (dY, X) -> dX: dY routed to each window's first maximum
 *   AveragePoolGrad  (dY, x_shape) -> dX                     AveragePool's attributes
 *   GlobalAveragePoolGrad (dY, x_shape) -> dX = dY / (spatial size)
 *   GlobalMaxPoolGrad     (dY, X) -> dX: dY routed to the first maximum
 *   BatchNormGrad    (dY, X, scale, mean, inv_std | var) -> dX, dScale, dB;
 *                    training_mode=1 (default): batch statistics, input 4 is
 *                    the saved inverse std; 0: running statistics, input 4 is
 *                    the running variance and `epsilon` applies
 *   SoftmaxGrad      (dY, Y) -> dX = Y * (dY - sum(dY * Y))  along axis
 *   LogSoftmaxGrad   (dY, Y) -> dX = dY - exp(Y) * sum(dY)  along axis
 *                    (coerce_2d=1: the axis and all after it, as Softmax < 13)
 *   DropoutGrad      (dY, mask [, ratio, training_mode]) -> dX = dY * mask * scale,
 *                    scale 1/(1-ratio) in training mode, else 1
 *   SoftmaxCrossEntropyGrad (dloss, logits, labels) -> dlogits
 *   SliceAxis        (X) -> X[start:end] along axis (Concat's gradient), or
 *                    X[start:len - trim] (Pad's: whatever size the graph runs at)
 * Private forward ops (differentiable):
 *   BatchNormTrain   (X, scale, B, running_mean, running_var) -> Y,
 *                    new_running_mean, new_running_var, saved_mean,
 *                    saved_inv_std; batch statistics, running estimates as
 *                    ONNX: running * momentum + batch * (1 - momentum), the
 *                    variance estimate unbiased, the normalisation biased;
 *                    the new estimates overwrite the running ones in place
 *                    when those are executor state (a training step)
 *   SoftmaxCrossEntropy (logits (N, C), labels int (N)) -> loss: the mean
 *                    over N of -sum_c q log softmax, q = (1-eps) onehot + eps/C
 *   ReduceSumTo      (X [, shape]) -> X summed down to `shape` (numpy
 *                    broadcasting reversed; no shape: a scalar); axis: the dim
 *                    of X where the target's dim 0 sits (legacy broadcasting)
 *   BroadcastTo      (X, shape) -> X broadcast to `shape` (same alignment)
 *
 * Shape operands (x_shape, shape) are int64 vectors, normally a Shape node's
 * output, so that a symbolic batch dim stays symbolic until compilation.
 */
#include <string.h>

#include "ops/grad_util.h"
#include "ops/index_ops.h"
#include "ops/op_util.h"

/* ------------------------------------------------------------ attributes */

static const ot_attr_spec conv_attrs[] = {
    { "auto_pad", OT_ATTR_STRING, "NOTSET", ot_op_check_auto_pad, 0, 0, false },
    { "dilations", OT_ATTR_INTS, "1", ot_op_check_positive_ints, 0, 0, false },
    { "group", OT_ATTR_INT, "1", ot_op_check_positive, 0, 0, false },
    { "kernel_shape", OT_ATTR_INTS, NULL, ot_op_check_positive_ints, 0, 0, false },
    { "pads", OT_ATTR_INTS, "0", ot_op_check_pads, 0, 0, false },
    { "strides", OT_ATTR_INTS, "1", ot_op_check_positive_ints, 0, 0, false },
    { 0 },
};

static const ot_attr_spec pool_attrs[] = {
    { "auto_pad", OT_ATTR_STRING, "NOTSET", ot_op_check_auto_pad, 0, 0, false },
    { "ceil_mode", OT_ATTR_INT, "0", ot_op_check_bool, 0, 0, false },
    { "count_include_pad", OT_ATTR_INT, "0", ot_op_check_bool, 0, 0, false },
    { "dilations", OT_ATTR_INTS, "1", ot_op_check_positive_ints, 0, 0, false },
    { "kernel_shape", OT_ATTR_INTS, NULL, ot_op_check_positive_ints, 0, 0, false },
    { "pads", OT_ATTR_INTS, "0", ot_op_check_pads, 0, 0, false },
    { "storage_order", OT_ATTR_INT, "0", ot_op_check_bool, 0, 0, false },
    { "strides", OT_ATTR_INTS, "1", ot_op_check_positive_ints, 0, 0, false },
    { 0 },
};

static const ot_attr_spec no_attrs[] = { { 0 } };

static const ot_attr_spec leakyrelu_attrs[] = {
    { "alpha", OT_ATTR_FLOAT, "0.01", NULL, 0, 0, false },
    { 0 },
};

static const ot_attr_spec clip_attrs[] = {
    { "max", OT_ATTR_FLOAT, "3.4028234663852886e+38", NULL, 0, 0, false },
    { "min", OT_ATTR_FLOAT, "-3.4028234663852886e+38", NULL, 0, 0, false },
    { 0 },
};

static const ot_attr_spec bn_grad_attrs[] = {
    { "epsilon", OT_ATTR_FLOAT, "1e-5", NULL, 0, 0, false },
    { "training_mode", OT_ATTR_INT, "1", ot_op_check_bool, 0, 0, false },
    /* 1: batch statistics over the ranks of data-parallel training */
    { "sync", OT_ATTR_INT, "0", ot_op_check_bool, 0, 0, false },
    { 0 },
};

static const ot_attr_spec bn_train_attrs[] = {
    { "epsilon", OT_ATTR_FLOAT, "1e-5", NULL, 0, 0, false },
    { "momentum", OT_ATTR_FLOAT, "0.9", NULL, 0, 0, false },
    { "sync", OT_ATTR_INT, "0", ot_op_check_bool, 0, 0, false },
    { 0 },
};

static ot_status check_nonneg(const ot_graph *g, const ot_node *n, const ot_attr *a, ot_err *err)
{
    (void)g, (void)n;
    if (a->i < 0)
        return ot_err_set(err, OT_ERR_MODEL, "is %lld, expected >= 0", (long long)a->i);
    return OT_OK;
}

static const ot_attr_spec reduce_attrs[] = {
    { "axis", OT_ATTR_INT, NULL, check_nonneg, 0, 0, false },
    { 0 },
};

static const ot_attr_spec softmax_attrs[] = {
    { "axis", OT_ATTR_INT, "-1", NULL, 0, 0, false },
    { "coerce_2d", OT_ATTR_INT, "0", ot_op_check_bool, 0, 0, false },
    { 0 },
};

static const ot_attr_spec dropout_attrs[] = {
    { "ratio", OT_ATTR_FLOAT, "0.5", NULL, 0, 0, false },
    { 0 },
};

static ot_status check_smoothing(const ot_graph *g, const ot_node *n, const ot_attr *a,
                                 ot_err *err)
{
    (void)g, (void)n;
    if (!(a->f >= 0.0f && a->f <= 1.0f))
        return ot_err_set(err, OT_ERR_MODEL, "is %g, expected a value in [0, 1]", (double)a->f);
    return OT_OK;
}

static const ot_attr_spec xent_attrs[] = {
    { "label_smoothing", OT_ATTR_FLOAT, "0.0", check_smoothing, 0, 0, false },
    { 0 },
};

static const ot_attr_spec slice_attrs[] = {
    { "axis", OT_ATTR_INT, NULL, NULL, 0, 0, false },
    { "end", OT_ATTR_INT, NULL, check_nonneg, 0, 0, false },
    { "start", OT_ATTR_INT, NULL, check_nonneg, 0, 0, false },
    { "trim", OT_ATTR_INT, NULL, check_nonneg, 0, 0, false },
    { 0 },
};

/* -------------------------------------------------------------- helpers */

/* Output i gets dtype t and shape d, when present. */
static void set_out(ot_graph *g, ot_node *n, int i, ot_dtype t, const ot_op_dims *d)
{
    ot_value *v = ot_op_out(g, n, i);
    if (v)
        ot_op_set(v, t, d);
}

/* Output i like value `like`, with dtype t. */
static void set_like(ot_graph *g, ot_node *n, int i, ot_dtype t, const ot_value *like)
{
    ot_op_dims d;
    ot_op_dims_of(like, &d);
    set_out(g, n, i, t, &d);
}

/* The gradient dY (input 0) must be a float tensor. */
static ot_status need_dy(ot_graph *g, ot_node *n, ot_value **dy, ot_err *err)
{
    *dy = ot_op_in(g, n, 0);
    if (!ot_op_known(*dy))
        return OT_OK;
    return ot_op_need_float(g, n, 0, *dy, err);
}

/* -------------------------------------------------------------- infer */

/* dY, v, ...  ->  dX like input 1 (the forward value the op reads: Y, X or
   the mask), of dY's dtype. Elementwise grads, MaxPoolGrad, GlobalMaxPoolGrad,
   SoftmaxCrossEntropyGrad (whose dY, dloss, is a scalar). */
static ot_status like_in1_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_status st = OT_OK;
    ot_value *dy, *x = ot_op_in(g, n, 1);
    OT_TRY(need_dy(g, n, &dy, err));
    if (!ot_op_known(dy) || !ot_op_known(x))
        return OT_OK;
    if (x->ndim != dy->ndim && n->op != &ot_op_softmax_xent_grad)
        return ot_op_err(err, OT_ERR_SHAPE, g, n, "dY '%s' has rank %d, '%s' has rank %d",
                         dy->name, dy->ndim, x->name, x->ndim);
    set_like(g, n, 0, dy->dtype, x);
done:
    return st;
}

/* ConvGradData, AveragePoolGrad, GlobalAveragePoolGrad: dX shaped by input
   `i` (x_shape). */
static ot_status from_shape_infer(ot_graph *g, ot_node *n, int i, ot_err *err)
{
    ot_status st = OT_OK;
    ot_value *dy;
    ot_op_dims d;
    OT_TRY(need_dy(g, n, &dy, err));
    if (!ot_op_known(dy) || !ot_op_shape_operand(g, n, i, false, &d))
        return OT_OK;
    if (d.ndim != dy->ndim)
        return ot_op_err(err, OT_ERR_SHAPE, g, n, "x_shape has %d dims, dY '%s' has rank %d",
                         d.ndim, dy->name, dy->ndim);
    set_out(g, n, 0, dy->dtype, &d);
done:
    return st;
}

static ot_status conv_grad_data_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    return from_shape_infer(g, n, 2, err);
}

static ot_status pool_grad_from_shape_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    return from_shape_infer(g, n, 1, err);
}

/* dY: (N, M, O1..Ok)  X: (N, C, D1..Dk)  ->  dW: (M, C/group, K1..Kk) [, dB: (M)] */
static ot_status conv_grad_filter_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_status st = OT_OK;
    ot_value *dy, *x = ot_op_in(g, n, 1);
    OT_TRY(need_dy(g, n, &dy, err));
    if (!ot_op_known(dy) || !ot_op_known(x))
        return OT_OK;
    size_t n_ks = 0;
    const int64_t *ks = ot_node_attr_ints(n, "kernel_shape", &n_ks);
    int64_t group = ot_node_attr_int(n, "group", 1);
    if (x->ndim < 3 || dy->ndim != x->ndim || !ks || n_ks != (size_t)(x->ndim - 2) || group < 1)
        return ot_op_err(err, OT_ERR_SHAPE, g, n,
                         "needs dY and X of one rank >= 3 and kernel_shape of rank - 2");
    ot_op_dims w = { .ndim = x->ndim };
    w.dims[0] = dy->dims[1];
    w.names[0] = dy->dims[1] < 0 ? dy->dim_names[1] : NULL;
    w.dims[1] = x->dims[1] >= 0 ? x->dims[1] / group : OT_DIM_DYNAMIC;
    for (size_t i = 0; i < n_ks; i++)
        w.dims[2 + i] = ks[i];
    set_out(g, n, 0, dy->dtype, &w);
    ot_op_dims b = { .ndim = 1 };
    b.dims[0] = w.dims[0];
    b.names[0] = w.names[0];
    set_out(g, n, 1, dy->dtype, &b);
done:
    return st;
}

/* dY, X, scale, mean, inv_std|var  ->  dX like X, dScale and dB like scale */
static ot_status bn_grad_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_status st = OT_OK;
    ot_value *dy, *x = ot_op_in(g, n, 1), *scale = ot_op_in(g, n, 2);
    OT_TRY(need_dy(g, n, &dy, err));
    if (!ot_op_known(dy) || !ot_op_known(x))
        return OT_OK;
    if (x->ndim < 2 || dy->ndim != x->ndim)
        return ot_op_err(err, OT_ERR_SHAPE, g, n, "dY and X must be (N, C, ...) of one rank");
    set_like(g, n, 0, dy->dtype, x);
    ot_op_dims c = { .ndim = 1 };
    c.dims[0] = x->dims[1];
    c.names[0] = x->dims[1] < 0 ? x->dim_names[1] : NULL;
    ot_dtype pt = ot_op_known(scale) ? scale->dtype : dy->dtype;
    set_out(g, n, 1, pt, &c);
    set_out(g, n, 2, pt, &c);
done:
    return st;
}

/* X: (N, C, D...)  scale, B, running_mean, running_var: (C)  ->  Y like X,
   four statistics of (C) */
static ot_status bn_train_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_status st = OT_OK;
    ot_value *x = ot_op_in(g, n, 0);
    if (!ot_op_known(x))
        return OT_OK;
    OT_TRY(ot_op_need_float(g, n, 0, x, err));
    if (x->ndim < 2)
        return ot_op_err(err, OT_ERR_SHAPE, g, n,
                         "input X '%s' has rank %d, expected (N, C, ...) of rank >= 2", x->name,
                         x->ndim);
    for (int i = 1; i < 5; i++) {
        const ot_value *p = ot_op_in(g, n, i);
        if (!ot_op_known(p))
            continue;
        OT_TRY(ot_op_need_float(g, n, i, p, err));
        if (p->ndim != 1 || (p->dims[0] >= 0 && x->dims[1] >= 0 && p->dims[0] != x->dims[1]))
            return ot_op_err(err, OT_ERR_SHAPE, g, n,
                             "input %d '%s' must have shape [%lld] (the channels of X)", i,
                             p->name, (long long)x->dims[1]);
    }
    set_like(g, n, 0, x->dtype, x);
    const ot_value *mean = ot_op_in(g, n, 3);
    ot_dtype stat = ot_op_known(mean) ? mean->dtype : x->dtype;
    ot_op_dims c = { .ndim = 1 };
    c.dims[0] = x->dims[1];
    c.names[0] = x->dims[1] < 0 ? x->dim_names[1] : NULL;
    for (int i = 1; i < 5; i++)
        set_out(g, n, i, i < 3 ? stat : x->dtype, &c);
done:
    return st;
}

/* Where the target's dims sit in the bigger shape: from `axis` when given,
   else right-aligned. False when they do not fit. */
static bool target_start(const ot_node *n, int big, int small, int *start)
{
    const ot_attr *a = ot_node_find_attr(n, "axis");
    *start = a && a->type == OT_ATTR_INT ? (int)a->i : big - small;
    return *start >= 0 && *start + small <= big;
}

/* Checks that `small` broadcasts into `big` (placed from start). */
static ot_status check_broadcast(ot_graph *g, ot_node *n, const ot_op_dims *big,
                                 const ot_op_dims *small, ot_err *err)
{
    int start;
    char sb[200], ss[200];
    ot_op_dims_str(big, sb, sizeof sb);
    ot_op_dims_str(small, ss, sizeof ss);
    if (!target_start(n, big->ndim, small->ndim, &start))
        return ot_op_err(err, OT_ERR_SHAPE, g, n, "%s does not fit into %s", ss, sb);
    for (int i = 0; i < small->ndim; i++) {
        int64_t s = small->dims[i], b = big->dims[start + i];
        if (s >= 0 && b >= 0 && s != 1 && s != b)
            return ot_op_err(err, OT_ERR_SHAPE, g, n, "%s does not broadcast to %s (dim %d)", ss,
                             sb, start + i);
    }
    return OT_OK;
}

/* X [, shape]  ->  Y of `shape` (scalar when absent) */
static ot_status reduce_sum_to_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_status st = OT_OK;
    ot_value *x;
    ot_op_dims d, xd;
    OT_TRY(need_dy(g, n, &x, err));
    if (!ot_op_known(x) || !ot_op_shape_operand(g, n, 1, true, &d))
        return OT_OK;
    ot_op_dims_of(x, &xd);
    OT_TRY(check_broadcast(g, n, &xd, &d, err));
    set_out(g, n, 0, x->dtype, &d);
done:
    return st;
}

/* X, shape  ->  Y of `shape` */
static ot_status broadcast_to_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_status st = OT_OK;
    ot_value *x;
    ot_op_dims d, xd;
    OT_TRY(need_dy(g, n, &x, err));
    if (!ot_op_known(x) || !ot_op_shape_operand(g, n, 1, false, &d))
        return OT_OK;
    ot_op_dims_of(x, &xd);
    OT_TRY(check_broadcast(g, n, &d, &xd, err));
    set_out(g, n, 0, x->dtype, &d);
done:
    return st;
}

/* logits: (N, C) float  labels: (N) int  ->  loss: () */
static ot_status xent_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_status st = OT_OK;
    ot_value *x = ot_op_in(g, n, 0), *lab = ot_op_in(g, n, 1);
    if (!ot_op_known(x))
        return OT_OK;
    OT_TRY(ot_op_need_float(g, n, 0, x, err));
    if (x->ndim != 2)
        return ot_op_err(err, OT_ERR_SHAPE, g, n, "logits '%s' have rank %d, expected (N, C)",
                         x->name, x->ndim);
    if (ot_op_known(lab)) {
        if (lab->dtype != OT_DTYPE_INT64 && lab->dtype != OT_DTYPE_INT32)
            return ot_op_err(err, OT_ERR_MODEL, g, n, "labels '%s' are %s, expected int64",
                             lab->name, ot_dtype_name(lab->dtype));
        if (lab->ndim != 1 || (lab->dims[0] >= 0 && x->dims[0] >= 0 && lab->dims[0] != x->dims[0]))
            return ot_op_err(err, OT_ERR_SHAPE, g, n,
                             "labels '%s' must have shape [N] with N = %lld (the logits' rows)",
                             lab->name, (long long)x->dims[0]);
    }
    ot_op_dims s = { .ndim = 0 };
    set_out(g, n, 0, x->dtype, &s);
done:
    return st;
}

/* X  ->  X[start:end] along axis */
static ot_status slice_axis_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *x = ot_op_in(g, n, 0);
    if (!ot_op_known(x))
        return OT_OK;
    int axis;
    if (!ot_op_axis(ot_node_attr_int(n, "axis", 0), x->ndim, &axis))
        return ot_op_err(err, OT_ERR_MODEL, g, n, "axis is out of range for rank %d", x->ndim);
    bool trims = ot_node_attr_int(n, "trim", -1) >= 0;
    if (trims && x->dims[axis] < 0)
        return OT_OK;
    int64_t start = ot_node_attr_int(n, "start", 0), end = ot_slice_axis_end(n, x->dims[axis]);
    if (start < 0 || end < start || (x->dims[axis] >= 0 && end > x->dims[axis]))
        return ot_op_err(err, OT_ERR_SHAPE, g, n, "slice [%lld, %lld) does not fit dim %lld",
                         (long long)start, (long long)end, (long long)x->dims[axis]);
    ot_op_dims d;
    ot_op_dims_of(x, &d);
    d.dims[axis] = end - start;
    d.names[axis] = NULL;
    set_out(g, n, 0, x->dtype, &d);
    return OT_OK;
}

/* ---------------------------------------------------------- descriptors */

/* no_grad: a backward op; second derivatives are not supported */
#define PRIVATE_OP(sym, op_id, name, in_min, in_max, out_min, out_max, attr_list, infer_fn)     \
    OT_OP_PRIVATE_NO_GRAD(sym, op_id, name, in_min, in_max, out_min, out_max, attr_list,       \
                          infer_fn, NULL)

PRIVATE_OP(ot_op_conv_grad_data, OT_OP_CONV_GRAD_DATA, "ConvGradData", 3, 3, 1, 1, conv_attrs,
           conv_grad_data_infer);
PRIVATE_OP(ot_op_conv_grad_filter, OT_OP_CONV_GRAD_FILTER, "ConvGradFilter", 2, 2, 1, 2, conv_attrs,
           conv_grad_filter_infer);
PRIVATE_OP(ot_op_relu_grad, OT_OP_RELU_GRAD, "ReluGrad", 2, 2, 1, 1, no_attrs, like_in1_infer);
PRIVATE_OP(ot_op_leakyrelu_grad, OT_OP_LEAKYRELU_GRAD, "LeakyReluGrad", 2, 2, 1, 1, leakyrelu_attrs,
           like_in1_infer);
PRIVATE_OP(ot_op_clip_grad, OT_OP_CLIP_GRAD, "ClipGrad", 2, 4, 1, 1, clip_attrs, like_in1_infer);
PRIVATE_OP(ot_op_sigmoid_grad, OT_OP_SIGMOID_GRAD, "SigmoidGrad", 2, 2, 1, 1, no_attrs,
           like_in1_infer);
PRIVATE_OP(ot_op_maxpool_grad, OT_OP_MAXPOOL_GRAD, "MaxPoolGrad", 2, 2, 1, 1, pool_attrs,
           like_in1_infer);
PRIVATE_OP(ot_op_avgpool_grad, OT_OP_AVGPOOL_GRAD, "AveragePoolGrad", 2, 2, 1, 1, pool_attrs,
           pool_grad_from_shape_infer);
PRIVATE_OP(ot_op_globalavgpool_grad, OT_OP_GLOBALAVGPOOL_GRAD, "GlobalAveragePoolGrad", 2, 2, 1, 1,
           no_attrs, pool_grad_from_shape_infer);
PRIVATE_OP(ot_op_globalmaxpool_grad, OT_OP_GLOBALMAXPOOL_GRAD, "GlobalMaxPoolGrad", 2, 2, 1, 1,
           no_attrs, like_in1_infer);
PRIVATE_OP(ot_op_batchnorm_grad, OT_OP_BATCHNORM_GRAD, "BatchNormGrad", 5, 5, 1, 3, bn_grad_attrs,
           bn_grad_infer);
PRIVATE_OP(ot_op_softmax_grad, OT_OP_SOFTMAX_GRAD, "SoftmaxGrad", 2, 2, 1, 1, softmax_attrs,
           like_in1_infer);
PRIVATE_OP(ot_op_logsoftmax_grad, OT_OP_LOGSOFTMAX_GRAD, "LogSoftmaxGrad", 2, 2, 1, 1,
           softmax_attrs, like_in1_infer);
PRIVATE_OP(ot_op_dropout_grad, OT_OP_DROPOUT_GRAD, "DropoutGrad", 2, 4, 1, 1, dropout_attrs,
           like_in1_infer);
PRIVATE_OP(ot_op_softmax_xent_grad, OT_OP_SOFTMAX_XENT_GRAD, "SoftmaxCrossEntropyGrad", 3, 3, 1, 1,
           xent_attrs, like_in1_infer);
PRIVATE_OP(ot_op_slice_axis, OT_OP_SLICE_AXIS, "SliceAxis", 1, 1, 1, 1, slice_attrs,
           slice_axis_infer);

/* Private forward ops: differentiable, so they carry rules instead. */

/* The new running statistics overwrite the running statistics when those are
   executor state (a training step), instead of being copied back. */
static const int8_t bn_train_in_place[5] = { -1, 3, 4, -1, -1 };

const ot_op_desc ot_op_batchnorm_train = {
    .id = OT_OP_BATCHNORM_TRAIN,
    .domain = OT_OP_DOMAIN_PRIVATE,
    .type = "BatchNormTrain",
    .opset_min = 1,
    .opset_max = 1,
    .n_in_min = 5,
    .n_in_max = 5,
    .n_out_min = 1,
    .n_out_max = 5,
    .attrs = bn_train_attrs,
    .infer = bn_train_infer,
    .grad = ot_op_grad_batchnorm_train,
    .in_place = bn_train_in_place,
};

/* DropoutTrain (X, seed) -> Y, mask: y = x * mask / (1 - ratio), mask drawn per
   element from a counter-based generator keyed by (seed, salt, index), so a
   step is reproducible from its seed. The trainer feeds a new seed per step. */
static const ot_attr_spec dropout_train_attrs[] = {
    { "ratio", OT_ATTR_FLOAT, "0.5", NULL, 0, 0, false },
    { "salt", OT_ATTR_INT, "0", NULL, 0, 0, false },
    { 0 },
};

static ot_status dropout_train_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *x = ot_op_in(g, n, 0);
    if (!ot_op_known(x))
        return OT_OK;
    ot_status st = ot_op_need_float(g, n, 0, x, err);
    if (st != OT_OK)
        return st;
    ot_op_copy(ot_op_out(g, n, 0), x);
    ot_value *mask = n->n_out > 1 ? ot_op_out(g, n, 1) : NULL;
    if (mask) {
        ot_op_dims d;
        ot_op_dims_of(x, &d);
        ot_op_set(mask, OT_DTYPE_BOOL, &d);
    }
    return OT_OK;
}

const ot_op_desc ot_op_dropout_train = {
    .id = OT_OP_DROPOUT_TRAIN,
    .domain = OT_OP_DOMAIN_PRIVATE,
    .type = "DropoutTrain",
    .opset_min = 1,
    .opset_max = 1,
    .n_in_min = 2,
    .n_in_max = 2,
    .n_out_min = 2,
    .n_out_max = 2,
    .attrs = dropout_train_attrs,
    .infer = dropout_train_infer,
    .grad = ot_op_grad_dropout_train,
};

const ot_op_desc ot_op_softmax_xent = {
    .id = OT_OP_SOFTMAX_XENT,
    .domain = OT_OP_DOMAIN_PRIVATE,
    .type = "SoftmaxCrossEntropy",
    .opset_min = 1,
    .opset_max = 1,
    .n_in_min = 2,
    .n_in_max = 2,
    .n_out_min = 1,
    .n_out_max = 1,
    .attrs = xent_attrs,
    .infer = xent_infer,
    .grad = ot_op_grad_softmax_xent,
};

const ot_op_desc ot_op_reduce_sum_to = {
    .id = OT_OP_REDUCE_SUM_TO,
    .domain = OT_OP_DOMAIN_PRIVATE,
    .type = "ReduceSumTo",
    .opset_min = 1,
    .opset_max = 1,
    .n_in_min = 1,
    .n_in_max = 2,
    .n_out_min = 1,
    .n_out_max = 1,
    .attrs = reduce_attrs,
    .infer = reduce_sum_to_infer,
    .grad = ot_op_grad_reduce_sum_to,
};

const ot_op_desc ot_op_broadcast_to = {
    .id = OT_OP_BROADCAST_TO,
    .domain = OT_OP_DOMAIN_PRIVATE,
    .type = "BroadcastTo",
    .opset_min = 1,
    .opset_max = 1,
    .n_in_min = 2,
    .n_in_max = 2,
    .n_out_min = 1,
    .n_out_max = 1,
    .attrs = reduce_attrs,
    .infer = broadcast_to_infer,
    .grad = ot_op_grad_broadcast_to,
};
