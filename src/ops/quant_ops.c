/*
 * quant_ops.c: quantisation ops.
 *
 * QuantizeLinear and DequantizeLinear (opsets 10-21): the QDQ form of int8
 * models (converters/qdq.c writes them), so that onnxtrain runs and scores
 * what it exports. Per tensor (scalar scale) or per axis (1-D scale, opset
 * 13 on); blocked quantisation (block_size, opset 21) is refused. No
 * gradient: their outputs are integers; training uses FakeQuant.
 *
 * FakeQuant and FakeQuantGrad (private domain): quantisation-aware training
 * (finetune --qat). FakeQuant(x[, scale]) = clamp(round(x / s), qmin, qmax)
 * * s, rounding half to even as QuantizeLinear does; the scale is the input
 * (a scalar, or one per slice along `axis`), or with dynamic=1 computed from
 * x at every run: max |x| / qmax, per slice along `axis` when per_channel=1
 * (the weights' form, whose scale the int8 export computes the same way).
 * Its gradient is straight-through: dX = dY where x lies inside [qmin*s,
 * qmax*s], else 0 (FakeQuantGrad); with a dynamic scale nothing is clipped,
 * so dX = dY.
 */
#include <stdio.h>
#include <string.h>

#include "ops/grad_util.h"
#include "ops/op_util.h"

static const ot_attr_spec q_attrs[] = {
    { "axis", OT_ATTR_INT, "1", NULL, 13, 0, false },
    { "saturate", OT_ATTR_INT, "1", NULL, 19, 0, false },
    { "block_size", OT_ATTR_INT, "0", NULL, 21, 0, false },
    { "output_dtype", OT_ATTR_INT, "0", NULL, 21, 0, false },
    { 0 },
};

static const ot_attr_spec dq_attrs[] = {
    { "axis", OT_ATTR_INT, "1", NULL, 13, 0, false },
    { "block_size", OT_ATTR_INT, "0", NULL, 21, 0, false },
    { 0 },
};

static const ot_attr_spec fq_attrs[] = {
    { "qmin", OT_ATTR_INT, "-127", NULL, 0, 0, false },
    { "qmax", OT_ATTR_INT, "127", NULL, 0, 0, false },
    { "axis", OT_ATTR_INT, "0", NULL, 0, 0, false },
    { "per_channel", OT_ATTR_INT, "0", NULL, 0, 0, false },
    { "dynamic", OT_ATTR_INT, "0", NULL, 0, 0, false },
    { 0 },
};

static bool is_q_int(ot_dtype t)
{
    return t == OT_DTYPE_INT8 || t == OT_DTYPE_UINT8 || t == OT_DTYPE_INT16 ||
           t == OT_DTYPE_UINT16 || t == OT_DTYPE_INT32;
}

/* The scale (input 1): a scalar, or 1-D with one element per slice of x
   along axis. */
static ot_status check_scale(ot_graph *g, ot_node *n, const ot_value *x, ot_err *err)
{
    const ot_value *s = ot_op_in(g, n, 1);
    if (!s || !ot_op_known(s) || !ot_op_known(x))
        return OT_OK;
    if (ot_node_attr_int(n, "block_size", 0) != 0)
        return ot_op_err(err, OT_ERR_UNSUPPORTED, g, n, "blocked quantisation (block_size) is "
                         "not supported");
    if (s->ndim == 0 || (s->ndim == 1 && s->dims[0] == 1))
        return OT_OK;
    int axis;
    if (s->ndim != 1 || !ot_op_axis(ot_node_attr_int(n, "axis", 1), x->ndim, &axis))
        return ot_op_err(err, OT_ERR_SHAPE, g, n, "scale '%s' must be a scalar or 1-D along a "
                         "valid axis of '%s'", s->name, x->name);
    if (s->dims[0] >= 0 && x->dims[axis] >= 0 && s->dims[0] != x->dims[axis])
        return ot_op_err(err, OT_ERR_SHAPE, g, n, "scale '%s' has %lld elements, axis %d of "
                         "'%s' %lld", s->name, (long long)s->dims[0], axis, x->name,
                         (long long)x->dims[axis]);
    return OT_OK;
}

static ot_status q_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *x = ot_op_in(g, n, 0), *zp = ot_op_in(g, n, 2), *y = ot_op_out(g, n, 0);
    if (!y || !ot_op_known(x))
        return OT_OK;
    ot_status st = ot_op_need_float(g, n, 0, x, err);
    if (st != OT_OK)
        return st;
    OT_TRY(check_scale(g, n, x, err));
    ot_dtype out = OT_DTYPE_UINT8;
    int64_t od = ot_node_attr_int(n, "output_dtype", 0);
    if (zp && zp->dtype != OT_DTYPE_UNDEFINED)
        out = zp->dtype;
    else if (od)
        out = (ot_dtype)od;
    if (!is_q_int(out))
        return ot_op_err(err, OT_ERR_UNSUPPORTED, g, n, "quantised dtype %s is not supported",
                         ot_dtype_name(out));
    ot_op_dims d;
    ot_op_dims_of(x, &d);
    ot_op_set(y, out, &d);
done:
    return st;
}

/* In a graph being specialised for execution (a clone: borrows_data), a
   DequantizeLinear of constants (an int8 weight) is evaluated here, so that
   the executor sees float constant weights and its fast kernels take them
   as they take a float model's. The bytes live in the clone's arena. */
static ot_status fold_weights(ot_graph *g, ot_node *n, ot_value *y, ot_err *err)
{
    const ot_tensor *x = ot_graph_const(g, n->in[0]), *s = ot_graph_const(g, n->in[1]);
    const ot_tensor *zp = n->n_in > 2 && n->in[2] >= 0 ? ot_graph_const(g, n->in[2]) : NULL;
    if (!g->borrows_data || !x || !s || !x->data || !s->data || s->dtype != OT_DTYPE_FLOAT ||
        (n->n_in > 2 && n->in[2] >= 0 && (!zp || !zp->data)))
        return OT_OK;
    int64_t numel = ot_tensor_numel(x), ns = ot_tensor_numel(s), inner = 1;
    if (ns > 1) {
        int axis;
        if (!ot_op_axis(ot_node_attr_int(n, "axis", 1), x->ndim, &axis) || x->dims[axis] != ns)
            return OT_OK;
        for (int i = axis + 1; i < x->ndim; i++)
            inner *= x->dims[i];
    }
    if (zp && ot_tensor_numel(zp) != ns)
        return OT_OK;
    float *out = ot_arena_alloc(&g->arena, (size_t)(numel ? numel : 1) * sizeof *out);
    if (!out)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory folding '%s'", y->name);
    const float *sc = s->data;
    for (int64_t i = 0; i < numel; i++) {
        int64_t c = ns > 1 ? (i / inner) % ns : 0;
        double z = zp ? ot_tensor_get_f64(zp, c) : 0;
        out[i] = (float)((ot_tensor_get_f64(x, i) - z) * (double)sc[c]);
    }
    memset(&y->data, 0, sizeof y->data);
    y->data.dtype = OT_DTYPE_FLOAT;
    y->data.ndim = x->ndim;
    for (int i = 0; i < x->ndim; i++)
        y->data.dims[i] = x->dims[i];
    y->data.data = out;
    y->data.bytes = (size_t)numel * sizeof *out;
    y->flags |= OT_VAL_CONST;
    return OT_OK;
}

static ot_status dq_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *x = ot_op_in(g, n, 0), *s = ot_op_in(g, n, 1), *y = ot_op_out(g, n, 0);
    if (!y || !ot_op_known(x) || !s || s->dtype == OT_DTYPE_UNDEFINED)
        return OT_OK;
    if (!is_q_int(x->dtype))
        return ot_op_err(err, OT_ERR_UNSUPPORTED, g, n, "quantised dtype %s is not supported",
                         ot_dtype_name(x->dtype));
    ot_status st = check_scale(g, n, x, err);
    if (st != OT_OK)
        return st;
    ot_op_dims d;
    ot_op_dims_of(x, &d);
    ot_op_set(y, s->dtype, &d);
    return fold_weights(g, n, y, err);
}

static ot_status fq_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *x = ot_op_in(g, n, 0), *y = ot_op_out(g, n, 0);
    if (!y || !ot_op_known(x))
        return OT_OK;
    if (!ot_node_attr_int(n, "dynamic", 0) && !ot_op_in(g, n, 1))
        return ot_op_err(err, OT_ERR_MODEL, g, n, "a scale input or dynamic=1 is needed");
    ot_op_copy(y, x);
    return OT_OK;
}

/* FakeQuantGrad(dY, X[, scale]) -> dX like dY. */
static ot_status fq_grad_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *dy = ot_op_in(g, n, 0), *y = ot_op_out(g, n, 0);
    (void)err;
    if (!y || !ot_op_known(dy))
        return OT_OK;
    ot_op_copy(y, dy);
    return OT_OK;
}

/* FakeQuant: dX = dY inside the representable range (straight-through),
   0 outside; a dynamic scale clips nothing, so dX is dY itself. */
static ot_status fq_grad(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                         const bool *need_dx, ot_err *err)
{
    if (dy[0] < 0 || !need_dx[0])
        return OT_OK;
    const ot_node *n = &g->nodes[node];
    if (ot_node_attr_int(n, "dynamic", 0)) {
        dx[0] = dy[0];
        return OT_OK;
    }
    ot_attr a[3] = {
        ot_op_grad_attr_int("qmin", ot_node_attr_int(n, "qmin", -127)),
        ot_op_grad_attr_int("qmax", ot_node_attr_int(n, "qmax", 127)),
        ot_op_grad_attr_int("axis", ot_node_attr_int(n, "axis", 0)),
    };
    int32_t in[3] = { dy[0], n->in[0], n->in[1] };
    char name[512], hint[512];
    snprintf(hint, sizeof hint, "grad/%s", g->values[n->in[0]].name);
    const char *outs[1] = { hint };
    return ot_op_grad_emit(g, &ot_op_fake_quant_grad, 0,
                           ot_op_grad_node_name(g, node, NULL, name, sizeof name), in, 3, a, 3,
                           outs, dx, 1, err);
}

const ot_op_desc ot_op_quantize_linear = {
    .id = OT_OP_QUANTIZE_LINEAR,
    .domain = "",
    .type = "QuantizeLinear",
    .opset_min = 10,
    .opset_max = 21,
    .n_in_min = 2,
    .n_in_max = 3,
    .n_out_min = 1,
    .n_out_max = 1,
    .attrs = q_attrs,
    .infer = q_infer,
    .no_grad = true, /* an integer output; training uses FakeQuant */
};

const ot_op_desc ot_op_dequantize_linear = {
    .id = OT_OP_DEQUANTIZE_LINEAR,
    .domain = "",
    .type = "DequantizeLinear",
    .opset_min = 10,
    .opset_max = 21,
    .n_in_min = 2,
    .n_in_max = 3,
    .n_out_min = 1,
    .n_out_max = 1,
    .attrs = dq_attrs,
    .infer = dq_infer,
    .no_grad = true, /* an integer input */
};

const ot_op_desc ot_op_fake_quant = {
    .id = OT_OP_FAKE_QUANT,
    .domain = OT_OP_DOMAIN_PRIVATE,
    .type = "FakeQuant",
    .opset_min = 1,
    .opset_max = 1,
    .n_in_min = 1,
    .n_in_max = 2,
    .n_out_min = 1,
    .n_out_max = 1,
    .attrs = fq_attrs,
    .infer = fq_infer,
    .grad = fq_grad,
};

OT_OP_PRIVATE_NO_GRAD(ot_op_fake_quant_grad, OT_OP_FAKE_QUANT_GRAD, "FakeQuantGrad", 2, 3, 1, 1,
                      fq_attrs, fq_grad_infer, NULL);
