/*
 * batchnorm.c: BatchNormalization, ONNX opsets 1-15.
 *
 * Inputs X, scale, B, mean, var; output Y and, in training mode, the
 * running/saved statistics: opsets up to 13 allow five outputs (Y, mean, var,
 * saved_mean, saved_var), opsets 14-15 three (Y, running_mean, running_var)
 * under the training_mode attribute. Every statistic has shape (C).
 *
 * Legacy attributes: consumed_inputs (opsets < 6) and is_test (< 7) do not
 * change the result and are kept. spatial (opsets < 9, default 1): spatial=0
 * with per-channel (C) parameters computes the same thing and is accepted
 * with one warning per model (naming the first such node and counting the
 * others); with per-activation (C, D1, ...) parameters it is refused.
 *
 * Reference: https://onnx.ai/onnx/operators/onnx__BatchNormalization.html
 */
#include "ops/grad_util.h"
#include "ops/op_util.h"

static const ot_attr_spec bn_attrs[] = {
    { "consumed_inputs", OT_ATTR_INTS, NULL, NULL, 1, 5, true },
    { "epsilon", OT_ATTR_FLOAT, "1e-5", NULL, 0, 0, false },
    { "is_test", OT_ATTR_INT, "0", NULL, 1, 6, true },
    { "momentum", OT_ATTR_FLOAT, "0.9", NULL, 0, 0, false },
    { "spatial", OT_ATTR_INT, "1", ot_op_check_bool, 1, 8, false },
    { "training_mode", OT_ATTR_INT, "0", ot_op_check_bool, 14, 0, false },
    { 0 },
};

static const char *const param_names[] = { "X", "scale", "B", "mean", "var" };

/* An old BatchNormalization with spatial=0 whose parameters are all at most
   1-D (per-channel), so that it computes what spatial=1 does. */
static bool spatial0_per_channel(const ot_graph *g, const ot_node *n)
{
    if (n->op != &ot_op_batchnorm || n->opset > 8 || ot_node_attr_int(n, "spatial", 1) != 0)
        return false;
    for (int i = 1; i < 5 && i < n->n_in; i++) {
        const ot_value *p = n->in[i] >= 0 ? &g->values[n->in[i]] : NULL;
        if (p && p->ndim > 1)
            return false;
    }
    return true;
}

static ot_status bn_validate(ot_graph *g, ot_node *n, ot_err *err)
{
    int max_out = n->opset >= 14 ? 3 : 5;
    int n_out = n->n_out;
    while (n_out > 0 && n->out[n_out - 1] < 0)
        n_out--;
    if (n_out > max_out)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "has %d outputs, expected at most %d at "
                         "opset %d", n_out, max_out, n->opset);
    if (n->opset > 8 || ot_node_attr_int(n, "spatial", 1) != 0)
        return OT_OK;
    for (int i = 1; i < 5; i++) {
        const ot_value *p = ot_op_in(g, n, i);
        if (p && p->ndim > 1) {
            char s[200];
            ot_op_dims d;
            ot_op_dims_of(p, &d);
            ot_op_dims_str(&d, s, sizeof s);
            return ot_op_err(err, OT_ERR_UNSUPPORTED, g, n,
                             "spatial=0 with per-activation %s '%s' %s is unsupported "
                             "(only per-channel parameters of shape (C))",
                             param_names[i], p->name, s);
        }
    }
    /* One warning per model: the first such node counts the others and marks
       them, so that their checks stay quiet. */
    if (n->flags & OT_NODE_NOTED)
        return OT_OK;
    int n_more = 0;
    for (ot_node *m = n + 1; m < g->nodes + g->n_nodes; m++)
        if (spatial0_per_channel(g, m)) {
            m->flags |= OT_NODE_NOTED;
            n_more++;
        }
    char label[512];
    if (n_more)
        ot_log(OT_LOG_WARN, "%d BatchNormalization nodes (the first: %s) have spatial=0 with "
               "per-channel parameters; computed as spatial=1", n_more + 1,
               ot_node_label(g, n, label, sizeof label));
    else
        ot_log(OT_LOG_WARN, "%s: spatial=0 with per-channel parameters; computed as spatial=1",
               ot_node_label(g, n, label, sizeof label));
    return OT_OK;
}

/* x: (N, C, D1..Dk)  scale, b, mean, var: (C)  ->  y like x; statistics (C) */
static ot_status bn_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_status st = OT_OK;
    ot_value *x = ot_op_in(g, n, 0), *y = ot_op_out(g, n, 0);
    if (!ot_op_known(x))
        return OT_OK;
    OT_TRY(ot_op_need_float(g, n, 0, x, err));
    if (x->ndim < 2)
        return ot_op_err(err, OT_ERR_SHAPE, g, n,
                         "input X '%s' has rank %d, expected (N, C, ...) of rank >= 2", x->name,
                         x->ndim);
    int64_t C = x->dims[1];
    bool spatial = n->opset > 8 || ot_node_attr_int(n, "spatial", 1) != 0;
    for (int i = 1; i < 5; i++) {
        const ot_value *p = ot_op_in(g, n, i);
        if (!ot_op_known(p))
            continue;
        OT_TRY(ot_op_need_float(g, n, i, p, err));
        if (!spatial && p->ndim > 1)
            return ot_op_err(err, OT_ERR_UNSUPPORTED, g, n,
                             "spatial=0 with per-activation parameters is unsupported");
        if (p->ndim != 1 || (p->dims[0] >= 0 && C >= 0 && p->dims[0] != C))
            return ot_op_err(err, OT_ERR_SHAPE, g, n,
                             "input %s '%s' must have shape [%lld] (the channels of X)",
                             param_names[i], p->name, (long long)C);
    }
    if (y)
        ot_op_copy(y, x);
    const ot_value *mean = ot_op_in(g, n, 3);
    ot_dtype stat_dtype = mean && mean->dtype != OT_DTYPE_UNDEFINED ? mean->dtype : x->dtype;
    ot_op_dims cd = { .ndim = 1 };
    cd.dims[0] = C;
    cd.names[0] = C < 0 ? x->dim_names[1] : NULL;
    for (int i = 1; i < n->n_out && i < 5; i++) {
        ot_value *s = ot_op_out(g, n, i);
        if (s)
            ot_op_set(s, stat_dtype, &cd);
    }
done:
    return st;
}

const ot_op_desc ot_op_batchnorm = {
    .id = OT_OP_BATCHNORM,
    .domain = "",
    .type = "BatchNormalization",
    .opset_min = 1,
    .opset_max = 21,
    .n_in_min = 5,
    .n_in_max = 5,
    .n_out_min = 1,
    .n_out_max = 5,
    .attrs = bn_attrs,
    .infer = bn_infer,
    .validate = bn_validate,
    .grad = ot_op_grad_batchnorm,
};
