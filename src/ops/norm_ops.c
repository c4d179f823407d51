/*
 * norm_ops.c: LayerNormalization (opsets 17-21), InstanceNormalization
 * (1-21) and GroupNormalization (18-21), and their gradient rule.
 *
 * Each normalises rows of X to zero mean and unit variance (biased, plus
 * epsilon) and applies a scale and a bias:
 *   LayerNormalization: rows are X's dims [axis, rank) (axis default -1);
 *     Scale and B (optional) have those dims (or broadcast to them); outputs
 *     Y and the optional Mean and InvStdDev, shaped X[:axis] + 1s (float).
 *   InstanceNormalization: X (N, C, D...), a row per (n, c); scale, B (C).
 *   GroupNormalization: X (N, C, D...), a row per (n, group) of C/num_groups
 *     channels; scale and bias per group (opset 18) or per channel (21).
 *
 * Gradient: NormGrad (dY, X, scale [, B]) -> dX, dScale, dB (private, below),
 * which recomputes the row statistics from X.
 *
 * Reference: https://onnx.ai/onnx/operators/onnx__LayerNormalization.html and
 * the pages of the others
 */
#include <stdio.h>
#include <string.h>

#include "ops/grad_util.h"
#include "ops/op_util.h"

static const ot_attr_spec ln_attrs[] = {
    { "axis", OT_ATTR_INT, "-1", NULL, 0, 0, false },
    { "epsilon", OT_ATTR_FLOAT, "1e-5", NULL, 0, 0, false },
    { "stash_type", OT_ATTR_INT, "1", NULL, 0, 0, false },
    { 0 },
};

static const ot_attr_spec in_attrs[] = {
    { "consumed_inputs", OT_ATTR_INTS, NULL, NULL, 1, 5, true },
    { "epsilon", OT_ATTR_FLOAT, "1e-5", NULL, 0, 0, false },
    { 0 },
};

static const ot_attr_spec gn_attrs[] = {
    { "epsilon", OT_ATTR_FLOAT, "1e-5", NULL, 0, 0, false },
    { "num_groups", OT_ATTR_INT, NULL, ot_op_check_positive, 0, 0, false },
    { "stash_type", OT_ATTR_INT, "1", NULL, 21, 0, false },
    { 0 },
};

/* X float; its rank at least min_rank. */
static ot_status check_x(ot_graph *g, ot_node *n, const ot_value *x, int min_rank, ot_err *err)
{
    if (!ot_op_is_float(x->dtype))
        return ot_op_need_float(g, n, 0, x, err);
    if (x->ndim < min_rank)
        return ot_op_err(err, OT_ERR_SHAPE, g, n, "input X '%s' has rank %d, expected >= %d",
                         x->name, x->ndim, min_rank);
    return OT_OK;
}

/* A parameter (input i) of `want` elements when both are known. */
static ot_status check_param(ot_graph *g, ot_node *n, int i, int64_t want, const char *what,
                             ot_err *err)
{
    const ot_value *p = ot_op_in(g, n, i);
    if (!p || !ot_op_known(p) || want < 0)
        return OT_OK;
    int64_t numel = 1;
    for (int d = 0; d < p->ndim; d++) {
        if (p->dims[d] < 0)
            return OT_OK;
        numel *= p->dims[d];
    }
    if (numel != want)
        return ot_op_err(err, OT_ERR_SHAPE, g, n, "'%s' has %lld elements, expected %lld (%s)",
                         p->name, (long long)numel, (long long)want, what);
    return OT_OK;
}

static ot_status ln_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_status st = OT_OK;
    ot_value *x = ot_op_in(g, n, 0);
    if (!ot_op_known(x))
        return OT_OK;
    OT_TRY(check_x(g, n, x, 1, err));
    int axis;
    if (!ot_op_axis(ot_node_attr_int(n, "axis", -1), x->ndim, &axis))
        return ot_op_err(err, OT_ERR_MODEL, g, n, "axis %lld is out of range for rank %d",
                         (long long)ot_node_attr_int(n, "axis", -1), x->ndim);
    int64_t m = 1;
    for (int d = axis; d < x->ndim && m >= 0; d++)
        m = x->dims[d] < 0 ? -1 : m * x->dims[d];
    OT_TRY(check_param(g, n, 1, m, "the normalized dims", err));
    OT_TRY(check_param(g, n, 2, m, "the normalized dims", err));
    ot_value *y = ot_op_out(g, n, 0);
    if (y)
        ot_op_copy(y, x);
    ot_op_dims d;
    ot_op_dims_of(x, &d);
    for (int i = axis; i < d.ndim; i++) {
        d.dims[i] = 1;
        d.names[i] = NULL;
    }
    for (int k = 1; k < 3; k++) {
        ot_value *s = ot_op_out(g, n, k);
        if (s)
            ot_op_set(s, OT_DTYPE_FLOAT, &d);
    }
done:
    return st;
}

static ot_status in_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_status st = OT_OK;
    ot_value *x = ot_op_in(g, n, 0), *y = ot_op_out(g, n, 0);
    if (!ot_op_known(x))
        return OT_OK;
    OT_TRY(check_x(g, n, x, 3, err));
    OT_TRY(check_param(g, n, 1, x->dims[1], "one per channel", err));
    OT_TRY(check_param(g, n, 2, x->dims[1], "one per channel", err));
    if (y)
        ot_op_copy(y, x);
done:
    return st;
}

static ot_status gn_validate(ot_graph *g, ot_node *n, ot_err *err)
{
    if (!ot_node_find_attr(n, "num_groups"))
        return ot_op_err(err, OT_ERR_MODEL, g, n, "attribute 'num_groups' is required");
    return OT_OK;
}

static ot_status gn_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_status st = OT_OK;
    ot_value *x = ot_op_in(g, n, 0), *y = ot_op_out(g, n, 0);
    if (!ot_op_known(x))
        return OT_OK;
    OT_TRY(check_x(g, n, x, 3, err));
    int64_t groups = ot_node_attr_int(n, "num_groups", 1), c = x->dims[1];
    if (c >= 0 && (groups < 1 || c % groups != 0))
        return ot_op_err(err, OT_ERR_SHAPE, g, n, "%lld channels do not split into %lld groups",
                         (long long)c, (long long)groups);
    int64_t per = n->opset >= 21 ? c : groups;
    const char *what = n->opset >= 21 ? "one per channel" : "one per group";
    OT_TRY(check_param(g, n, 1, per, what, err));
    OT_TRY(check_param(g, n, 2, per, what, err));
    if (y)
        ot_op_copy(y, x);
done:
    return st;
}

#define NORM_DESC(sym, op_id, name, first, in_min, out_max, attr_list, infer_fn, validate_fn)   \
    const ot_op_desc sym = {                                                                    \
        .id = op_id,                                                                            \
        .domain = "",                                                                           \
        .type = name,                                                                           \
        .opset_min = first,                                                                     \
        .opset_max = 21,                                                                        \
        .n_in_min = in_min,                                                                     \
        .n_in_max = 3,                                                                          \
        .n_out_min = 1,                                                                         \
        .n_out_max = out_max,                                                                   \
        .attrs = attr_list,                                                                     \
        .infer = infer_fn,                                                                      \
        .validate = validate_fn,                                                                \
        .grad = ot_op_grad_norm,                                                                \
    }

NORM_DESC(ot_op_layernorm, OT_OP_LAYERNORM, "LayerNormalization", 17, 2, 3, ln_attrs, ln_infer,
          NULL);
NORM_DESC(ot_op_instancenorm, OT_OP_INSTANCENORM, "InstanceNormalization", 1, 3, 1, in_attrs,
          in_infer, NULL);
NORM_DESC(ot_op_groupnorm, OT_OP_GROUPNORM, "GroupNormalization", 18, 3, 1, gn_attrs, gn_infer,
          gn_validate);

/* ------------------------------------------------------------- gradient */

/* With xhat = (x - mean) * r over a row of M elements (r = 1/sqrt(var + eps))
   and y = xhat * scale[s] + B[s] (s: the parameter index of the element):
   dB[s] = sum dY, dScale[s] = sum dY * xhat, and with g = dY * scale[s],
   dX = r * (g - mean_row(g) - xhat * mean_row(g * xhat)). */
ot_status ot_op_grad_norm(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                          const bool *need_dx, ot_err *err)
{
    ot_status st = OT_OK;
    char name[512], h[3][512];
    const ot_node *n = &g->nodes[node];
    bool any = false;
    for (int i = 0; i < n->n_in && i < 3; i++) /* need_dx has one entry per input */
        any = any || need_dx[i];
    if (dy[0] < 0 || !any)
        return OT_OK;
    int32_t x = n->in[0], b = n->n_in > 2 ? n->in[2] : -1;
    int axis = 1;
    if (n->op == &ot_op_layernorm &&
        !ot_op_axis(ot_node_attr_int(n, "axis", -1), g->values[x].ndim, &axis))
        return ot_op_err(err, OT_ERR_UNSUPPORTED, g, n, "no gradient for an input of unknown rank");
    ot_attr as[4] = {
        { .name = "mode", .type = OT_ATTR_STRING, .s = n->op->type, .s_len = strlen(n->op->type) },
        ot_op_grad_attr_int("axis", axis),
        ot_op_grad_attr_float("epsilon", ot_node_attr_float(n, "epsilon", 1e-5f)),
        ot_op_grad_attr_int("num_groups", ot_node_attr_int(n, "num_groups", 1)),
    };
    const char *names[3] = { NULL, NULL, NULL };
    for (int i = 0; i < 3; i++)
        if (i < n->n_in && need_dx[i] && n->in[i] >= 0) {
            snprintf(h[i], sizeof h[i], "grad/%s", g->values[n->in[i]].name);
            names[i] = h[i];
        }
    int n_out = names[2] ? 3 : names[1] ? 2 : 1;
    int32_t in[4] = { dy[0], x, n->in[1], b }, outs[3];
    OT_TRY(ot_op_grad_emit(g, &ot_op_norm_grad, 0,
                           ot_op_grad_node_name(g, node, NULL, name, sizeof name), in,
                           b >= 0 ? 4 : 3, as, 4, names, outs, n_out, err));
    for (int i = 0; i < n_out; i++)
        if (names[i])
            dx[i] = outs[i];
done:
    return st;
}

static const ot_attr_spec norm_grad_attrs[] = {
    { "axis", OT_ATTR_INT, "1", NULL, 0, 0, false },
    { "epsilon", OT_ATTR_FLOAT, "1e-5", NULL, 0, 0, false },
    { "mode", OT_ATTR_STRING, NULL, NULL, 0, 0, false },
    { "num_groups", OT_ATTR_INT, "1", NULL, 0, 0, false },
    { 0 },
};

/* dY, X, scale [, B] -> dX like X, dScale like scale, dB like B (or scale) */
static ot_status norm_grad_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *dyv = ot_op_in(g, n, 0);
    if (!ot_op_known(dyv))
        return OT_OK;
    if (!ot_op_is_float(dyv->dtype))
        return ot_op_need_float(g, n, 0, dyv, err);
    const ot_value *like[3] = { ot_op_in(g, n, 1), ot_op_in(g, n, 2),
                                ot_op_in(g, n, 3) ? ot_op_in(g, n, 3) : ot_op_in(g, n, 2) };
    for (int i = 0; i < 3; i++) {
        ot_value *o = ot_op_out(g, n, i);
        if (!o || !like[i] || !ot_op_known(like[i]))
            continue;
        ot_op_dims d;
        ot_op_dims_of(like[i], &d);
        ot_op_set(o, dyv->dtype, &d);
    }
    return OT_OK;
}

OT_OP_PRIVATE_NO_GRAD(ot_op_norm_grad, OT_OP_NORM_GRAD, "NormGrad", 3, 4, 1, 3, norm_grad_attrs,
                      norm_grad_infer, NULL);
