/*
 * conv.c: Conv, ONNX opsets 1-21.
 *
 * Shape inference for any spatial rank (1-D, 2-D, 3-D: it is arithmetic);
 * what a backend executes is decided later by its `supports` hook. Grouped
 * and depthwise convolutions are shapes like any other.
 *
 * Reference: https://onnx.ai/onnx/operators/onnx__Conv.html
 */
#include "ops/grad_util.h"
#include "ops/op_util.h"

static const ot_attr_spec conv_attrs[] = {
    { "auto_pad", OT_ATTR_STRING, "NOTSET", ot_op_check_auto_pad, 0, 0, false },
    { "dilations", OT_ATTR_INTS, "1", ot_op_check_positive_ints, 0, 0, false },
    { "group", OT_ATTR_INT, "1", ot_op_check_positive, 0, 0, false },
    { "kernel_shape", OT_ATTR_INTS, NULL, ot_op_check_positive_ints, 0, 0, false },
    { "pads", OT_ATTR_INTS, "0", ot_op_check_pads, 0, 0, false },
    { "strides", OT_ATTR_INTS, "1", ot_op_check_positive_ints, 0, 0, false },
    { 0 },
};

/* x: (N, C, D1..Dk)  w: (M, C/group, K1..Kk)  b: (M)  ->  y: (N, M, O1..Ok) */
static ot_status conv_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_status st = OT_OK;
    ot_value *x = ot_op_in(g, n, 0), *w = ot_op_in(g, n, 1), *b = ot_op_in(g, n, 2);
    ot_value *y = ot_op_out(g, n, 0);
    if (!y || !ot_op_known(x) || !ot_op_known(w))
        return OT_OK;
    OT_TRY(ot_op_need_float(g, n, 0, x, err));
    OT_TRY(ot_op_need_float(g, n, 1, w, err));
    if (x->dtype != w->dtype)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "X is %s but W is %s",
                         ot_dtype_name(x->dtype), ot_dtype_name(w->dtype));
    if (x->ndim < 3)
        return ot_op_err(err, OT_ERR_SHAPE, g, n,
                         "input X '%s' has rank %d, expected (N, C, D1, ...) of rank >= 3",
                         x->name, x->ndim);
    if (w->ndim != x->ndim)
        return ot_op_err(err, OT_ERR_SHAPE, g, n, "W '%s' has rank %d, expected %d (rank of X)",
                         w->name, w->ndim, x->ndim);
    int k = x->ndim - 2;
    int64_t group = ot_node_attr_int(n, "group", 1);
    int64_t C = x->dims[1], WC = w->dims[1], M = w->dims[0];
    if (group <= 0)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "group is %lld, expected positive",
                         (long long)group);
    int64_t WCg;
    if (WC >= 0 && !ot_op_i64_mul(WC, group, &WCg))
        return ot_op_err(err, OT_ERR_SHAPE, g, n,
                         "W '%s' has %lld channels per group, and %lld groups overflow", w->name,
                         (long long)WC, (long long)group);
    if (C >= 0 && WC >= 0 && C != WCg)
        return ot_op_err(err, OT_ERR_SHAPE, g, n,
                         "input X '%s' has %lld channels, but W '%s' expects %lld (C/group %lld "
                         "x group %lld)",
                         x->name, (long long)C, w->name, (long long)WCg, (long long)WC,
                         (long long)group);
    if (M >= 0 && M % group != 0)
        return ot_op_err(err, OT_ERR_SHAPE, g, n,
                         "W '%s' has %lld output channels, not a multiple of group %lld", w->name,
                         (long long)M, (long long)group);
    if (ot_op_known(b)) {
        if (b->ndim != 1 || (b->dims[0] >= 0 && M >= 0 && b->dims[0] != M))
            return ot_op_err(err, OT_ERR_SHAPE, g, n, "B '%s' must have shape [%lld]", b->name,
                             (long long)M);
    }

    int64_t kernel[OT_MAX_DIMS];
    size_t n_ks = 0;
    const int64_t *ks = ot_node_attr_ints(n, "kernel_shape", &n_ks);
    for (int i = 0; i < k; i++)
        kernel[i] = w->dims[2 + i];
    if (ks) {
        if (n_ks != (size_t)k)
            return ot_op_err(err, OT_ERR_MODEL, g, n,
                             "attribute 'kernel_shape' has %zu values, expected %d (spatial rank)",
                             n_ks, k);
        for (int i = 0; i < k; i++) {
            if (kernel[i] >= 0 && kernel[i] != ks[i])
                return ot_op_err(err, OT_ERR_SHAPE, g, n,
                                 "attribute 'kernel_shape' says %lld in spatial dim %d, W '%s' "
                                 "has %lld",
                                 (long long)ks[i], i, w->name, (long long)kernel[i]);
            kernel[i] = ks[i];
        }
    }

    ot_op_dims xd, yd;
    ot_op_dims_of(x, &xd);
    yd = xd;
    yd.dims[1] = M;
    yd.names[1] = M < 0 ? w->dim_names[0] : NULL;
    OT_TRY(ot_op_window(g, n, &xd, kernel, false, &yd, err));
    ot_op_set(y, x->dtype, &yd);
done:
    return st;
}

const ot_op_desc ot_op_conv = {
    .id = OT_OP_CONV,
    .domain = "",
    .type = "Conv",
    .opset_min = 1,
    .opset_max = 21,
    .n_in_min = 2,
    .n_in_max = 3,
    .n_out_min = 1,
    .n_out_max = 1,
    .attrs = conv_attrs,
    .infer = conv_infer,
    .grad = ot_op_grad_conv,
};
