/*
 * index_ops.c: Slice (opsets 1-21: starts, ends and axes as attributes
 * before opset 10, as inputs with steps from 10) and Cast (opsets 6-21).
 *
 * Both fold small integer tensors (the shape arithmetic PyTorch's exporter
 * writes: x.shape[2:], x.size(1) // 2 cast back to int64), partial shape
 * vectors included, so that a Reshape after them gets a constant shape.
 *
 * Slice's gradient pads dY with zeros back to X's shape (steps of 1; other
 * steps scatter dY into zeros with SliceGrad, expand_ops.c); Cast's casts dY
 * back to X's float type. Cast to or from a non-float type has no gradient
 * (a clear refusal when such a node lies between a trained parameter and the
 * loss).
 *
 * Reference: https://onnx.ai/onnx/operators/onnx__Slice.html, onnx__Cast.html
 */
#include <stdio.h>
#include <string.h>

#include "ops/expand_ops.h"
#include "ops/grad_util.h"
#include "ops/index_ops.h"
#include "ops/op_util.h"

#define NAME_MAX_ 512

/* ------------------------------------------------------------------ Slice */

static const ot_attr_spec slice_attrs[] = {
    { "axes", OT_ATTR_INTS, NULL, NULL, 1, 9, false },
    { "ends", OT_ATTR_INTS, NULL, NULL, 1, 9, false },
    { "starts", OT_ATTR_INTS, NULL, NULL, 1, 9, false },
    { 0 },
};

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

bool ot_slice_resolve(int r, const int64_t *dims, const int64_t *starts, const int64_t *ends,
                      const int64_t *axes, const int64_t *steps, int n, ot_slice_axis *out,
                      const char **why)
{
    bool seen[OT_MAX_DIMS] = { false };
    for (int d = 0; d < r; d++)
        out[d] = (ot_slice_axis){ 0, 1, dims[d] };
    if (n > r) {
        *why = "more starts than the input has dims";
        return false;
    }
    for (int i = 0; i < n; i++) {
        int64_t ax = axes ? axes[i] : i;
        if (ax < -r || ax >= r) {
            *why = "an axis is out of range";
            return false;
        }
        int a = (int)(ax < 0 ? ax + r : ax);
        if (seen[a]) {
            *why = "an axis is repeated";
            return false;
        }
        seen[a] = true;
        int64_t dim = dims[a], step = steps ? steps[i] : 1;
        if (step == 0) {
            *why = "a step is 0";
            return false;
        }
        int64_t s = starts[i], e = ends[i];
        if (s < 0)
            s = s < -dim ? -1 : s + dim; /* INT64_MIN stays below every index */
        if (e < 0)
            e = e < -dim ? -1 : e + dim;
        int64_t len;
        if (step > 0) {
            s = clamp64(s, 0, dim);
            e = clamp64(e, 0, dim);
            len = e > s ? (e - s + step - 1) / step : 0;
        } else {
            s = clamp64(s, 0, dim - 1);
            e = clamp64(e, -1, dim - 1);
            len = s > e ? (s - e + (-step) - 1) / (-step) : 0;
        }
        out[a] = (ot_slice_axis){ s, step, len };
    }
    return true;
}

/* The elements of t (int32/int64, at most OT_MAX_DIMS) into v. */
static bool read_ints(const ot_tensor *t, int64_t *v, int *count)
{
    if (!t || t->ndim > 1 || (t->dtype != OT_DTYPE_INT32 && t->dtype != OT_DTYPE_INT64))
        return false;
    int64_t numel = ot_tensor_numel(t);
    if (numel > OT_MAX_DIMS || (numel > 0 && !t->data))
        return false;
    for (int64_t i = 0; i < numel; i++)
        v[i] = ot_tensor_get_i64(t, i);
    *count = (int)numel;
    return true;
}

bool ot_slice_operands(const ot_node *n, const ot_tensor *const *in, int64_t *starts,
                       int64_t *ends, int64_t *axes, int64_t *steps, int *count, bool *has_axes,
                       bool *has_steps)
{
    int n_s = 0, n_e = 0, n_a = 0, n_st = 0;
    *has_axes = *has_steps = false;
    if (n->opset < 10) {
        size_t ls = 0, le = 0, la = 0;
        const int64_t *s = ot_node_attr_ints(n, "starts", &ls);
        const int64_t *e = ot_node_attr_ints(n, "ends", &le);
        const int64_t *a = ot_node_attr_ints(n, "axes", &la);
        if (!s || !e || ls != le || ls > OT_MAX_DIMS || (a && la != ls))
            return false;
        memcpy(starts, s, ls * sizeof *s);
        memcpy(ends, e, le * sizeof *e);
        if (a) {
            memcpy(axes, a, la * sizeof *a);
            *has_axes = true;
        }
        *count = (int)ls;
        return true;
    }
    if (n->n_in < 3 || !read_ints(in[1], starts, &n_s) || !read_ints(in[2], ends, &n_e) ||
        n_s != n_e)
        return false;
    if (n->n_in > 3 && in[3]) {
        if (!read_ints(in[3], axes, &n_a) || n_a != n_s)
            return false;
        *has_axes = true;
    }
    if (n->n_in > 4 && in[4]) {
        if (!read_ints(in[4], steps, &n_st) || n_st != n_s)
            return false;
        *has_steps = true;
    }
    *count = n_s;
    return true;
}

static ot_status slice_validate(ot_graph *g, ot_node *n, ot_err *err)
{
    if (n->opset < 10 && n->n_in > 1)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "takes 1 input before opset 10");
    if (n->opset >= 10 && (n->n_in < 3 || n->in[1] < 0 || n->in[2] < 0))
        return ot_op_err(err, OT_ERR_MODEL, g, n, "inputs 'starts' and 'ends' are required");
    if (n->opset < 10 && (!ot_node_find_attr(n, "starts") || !ot_node_find_attr(n, "ends")))
        return ot_op_err(err, OT_ERR_MODEL, g, n, "attributes 'starts' and 'ends' are required");
    return OT_OK;
}

/* data: (d0..)  ->  y: per axis, the count of start, start + step, ... within
   the clamped range; dynamic where the data's dim or an operand is not known */
static ot_status slice_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *x = ot_op_in(g, n, 0), *y = ot_op_out(g, n, 0);
    if (!y || !ot_op_known(x))
        return OT_OK;
    int r = x->ndim;
    if (r < 1)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "input '%s' is a scalar", x->name);
    const ot_tensor *ops[5] = { NULL };
    for (int i = 1; i < n->n_in && i < 5; i++) {
        bool partial = false;
        ops[i] = n->in[i] >= 0 ? ot_op_ints(g, n->in[i], &partial) : NULL;
        if (ops[i] && partial)
            ops[i] = NULL;
        if (n->in[i] >= 0 && !ops[i]) { /* an operand known only at run time */
            ot_op_dims yd;
            ot_op_dims_of(x, &yd);
            for (int d = 0; d < r; d++)
                yd.dims[d] = OT_DIM_DYNAMIC, yd.names[d] = NULL;
            ot_op_set(y, x->dtype, &yd);
            return OT_OK;
        }
    }
    int64_t starts[OT_MAX_DIMS], ends[OT_MAX_DIMS], axes[OT_MAX_DIMS], steps[OT_MAX_DIMS];
    int count = 0;
    bool has_axes, has_steps;
    if (!ot_slice_operands(n, ops, starts, ends, axes, steps, &count, &has_axes, &has_steps))
        return ot_op_err(err, OT_ERR_MODEL, g, n,
                         "starts, ends, axes and steps must be 1-D integer lists of one length "
                         "(at most %d)",
                         OT_MAX_DIMS);
    ot_op_dims xd, yd;
    ot_op_dims_of(x, &xd);
    yd = xd;
    /* resolve with the known dims; a dynamic one is resolved as 0 and then
       made dynamic again when the slice touches it */
    int64_t dims[OT_MAX_DIMS];
    for (int d = 0; d < r; d++)
        dims[d] = xd.dims[d] >= 0 ? xd.dims[d] : 0;
    ot_slice_axis sa[OT_MAX_DIMS];
    const char *why = "";
    if (!ot_slice_resolve(r, dims, starts, ends, has_axes ? axes : NULL,
                          has_steps ? steps : NULL, count, sa, &why))
        return ot_op_err(err, OT_ERR_MODEL, g, n, "%s", why);
    bool touched[OT_MAX_DIMS] = { false };
    for (int i = 0; i < count; i++) {
        int64_t ax = has_axes ? axes[i] : i;
        touched[ax < 0 ? ax + r : ax] = true;
    }
    for (int d = 0; d < r; d++) {
        if (!touched[d])
            continue;
        if (xd.dims[d] < 0) {
            yd.dims[d] = OT_DIM_DYNAMIC;
            yd.names[d] = NULL;
        } else {
            yd.dims[d] = sa[d].len;
            yd.names[d] = NULL;
        }
    }
    ot_op_set(y, x->dtype, &yd);

    /* fold: known (or partial) small data, static dims */
    bool partial = false;
    const ot_tensor *t = ot_op_ints(g, n->in[0], &partial);
    if (!t || t->ndim != r)
        return OT_OK;
    int64_t numel = 1;
    for (int d = 0; d < r; d++) {
        if (yd.dims[d] < 0)
            return OT_OK;
        numel *= yd.dims[d];
    }
    if (numel > OT_OP_FOLD_MAX)
        return OT_OK;
    int64_t vals[OT_OP_FOLD_MAX], idx[OT_MAX_DIMS] = { 0 };
    for (int64_t k = 0; k < numel; k++) {
        int64_t off = 0;
        for (int d = 0; d < r; d++)
            off = off * t->dims[d] + sa[d].start + idx[d] * sa[d].step;
        vals[k] = ot_tensor_get_i64(t, off);
        for (int d = r - 1; d >= 0; d--) {
            if (++idx[d] < yd.dims[d])
                break;
            idx[d] = 0;
        }
    }
    return ot_op_set_ints(g, y, t->dtype, &yd, vals, partial, err);
}

/* Slice with steps of 1: dX = Pad(dY) with zeros, start[d] before and
   X[d] - start[d] - len[d] after along each axis. */
static ot_status slice_grad(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                            const bool *need_dx, ot_err *err)
{
    char name[NAME_MAX_], hint[NAME_MAX_];
    if (dy[0] < 0 || !need_dx[0])
        return OT_OK;
    const ot_node *n = &g->nodes[node];
    const ot_value *x = &g->values[n->in[0]];
    int r = x->ndim;
    const ot_tensor *ops[5] = { NULL };
    for (int i = 1; i < n->n_in && i < 5; i++) {
        bool partial = false;
        ops[i] = n->in[i] >= 0 ? ot_op_ints(g, n->in[i], &partial) : NULL;
        if (n->in[i] >= 0 && (!ops[i] || partial))
            return ot_op_err(err, OT_ERR_UNSUPPORTED, g, n,
                             "no gradient for a Slice whose operands are not constant");
    }
    int64_t starts[OT_MAX_DIMS], ends[OT_MAX_DIMS], axes[OT_MAX_DIMS], steps[OT_MAX_DIMS];
    int count = 0;
    bool has_axes, has_steps;
    if (r < 1 || r > OT_MAX_DIMS ||
        !ot_slice_operands(n, ops, starts, ends, axes, steps, &count, &has_axes, &has_steps))
        return ot_op_err(err, OT_ERR_UNSUPPORTED, g, n, "no gradient for this Slice");
    /* the sliced axes need static sizes; another one (the batch) gets no
       padding whatever its size */
    bool touched[OT_MAX_DIMS] = { false };
    int64_t dims[OT_MAX_DIMS];
    for (int i = 0; i < count; i++) {
        int64_t ax = has_axes ? axes[i] : i;
        if (ax >= -r && ax < r)
            touched[ax < 0 ? ax + r : ax] = true;
    }
    for (int d = 0; d < r; d++) {
        if (touched[d] && x->dims[d] < 0)
            return ot_op_err(err, OT_ERR_UNSUPPORTED, g, n,
                             "no gradient for a Slice along a dim of dynamic size");
        dims[d] = x->dims[d] < 0 ? 0 : x->dims[d];
    }
    ot_slice_axis sa[OT_MAX_DIMS];
    const char *why = "";
    if (!ot_slice_resolve(r, dims, starts, ends, has_axes ? axes : NULL,
                          has_steps ? steps : NULL, count, sa, &why))
        return ot_op_err(err, OT_ERR_MODEL, g, n, "%s", why);
    int64_t pads[2 * OT_MAX_DIMS];
    for (int d = 0; d < r; d++)
        if (sa[d].step != 1)
            return ot_op_grad_strided_slice(g, node, dy[0], sa, dx, err);
    for (int d = 0; d < r; d++) {
        pads[d] = sa[d].start;
        pads[r + d] = dims[d] - sa[d].start - sa[d].len;
    }
    ot_status st = OT_OK;
    int32_t in[2] = { dy[0], -1 };
    int64_t pd = 2 * r;
    snprintf(hint, sizeof hint, "grad/%s/pads", x->name);
    OT_TRY(ot_op_grad_const_i64(g, hint, &pd, 1, pads, &in[1], err));
    snprintf(hint, sizeof hint, "grad/%s", g->values[g->nodes[node].in[0]].name);
    const char *names[1] = { hint };
    OT_TRY(ot_op_grad_emit(g, &ot_op_pad, 13, ot_op_grad_node_name(g, node, NULL, name, sizeof name),
                           in, 2, NULL, 0, names, &dx[0], 1, err));
done:
    return st;
}

/* ------------------------------------------------------------------- Cast */

static ot_status check_to(const ot_graph *g, const ot_node *n, const ot_attr *a, ot_err *err)
{
    (void)g;
    (void)n;
    /* strings import (inspect, convert) and are refused when compiled */
    if (a->i == OT_DTYPE_BOOL || a->i == OT_DTYPE_STRING ||
        (a->i > 0 && a->i < OT_DTYPE_COUNT_ && ot_dtype_is_numeric((int)a->i)))
        return OT_OK;
    return ot_err_set(err, OT_ERR_MODEL, "is %lld, expected an ONNX tensor type",
                      (long long)a->i);
}

static const ot_attr_spec cast_attrs[] = {
    { "saturate", OT_ATTR_INT, "1", NULL, 19, 0, true }, /* float8 targets only */
    { "to", OT_ATTR_INT, NULL, check_to, 0, 0, false },
    { 0 },
};

static ot_status cast_validate(ot_graph *g, ot_node *n, ot_err *err)
{
    if (!ot_node_find_attr(n, "to"))
        return ot_op_err(err, OT_ERR_MODEL, g, n, "attribute 'to' is required");
    return OT_OK;
}

/* x -> y of dtype `to`, x's shape; small integer results fold */
static ot_status cast_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *x = ot_op_in(g, n, 0), *y = ot_op_out(g, n, 0);
    if (!y || !ot_op_known(x))
        return OT_OK;
    ot_dtype to = (ot_dtype)ot_node_attr_int(n, "to", OT_DTYPE_FLOAT);
    ot_op_dims d;
    ot_op_dims_of(x, &d);
    ot_op_set(y, to, &d);
    if (to != OT_DTYPE_INT64 && to != OT_DTYPE_INT32)
        return OT_OK;
    bool partial = false;
    const ot_tensor *t = ot_op_ints(g, n->in[0], &partial);
    if (!t)
        return OT_OK;
    if (partial && to != OT_DTYPE_INT64)
        return OT_OK; /* symbols need 64 bits */
    int64_t numel = ot_tensor_numel(t), vals[OT_OP_FOLD_MAX];
    if (numel > OT_OP_FOLD_MAX)
        return OT_OK;
    for (int64_t i = 0; i < numel; i++) {
        int64_t v = ot_tensor_get_i64(t, i);
        vals[i] = to == OT_DTYPE_INT32 && !partial ? (int64_t)(int32_t)v : v;
    }
    ot_op_dims_of(y, &d);
    for (int i = 0; i < d.ndim; i++)
        if (d.dims[i] < 0)
            return OT_OK;
    return ot_op_set_ints(g, y, to, &d, vals, partial, err);
}

/* Cast between float types: dX = Cast(dY, to = X's type); the identity when
   the types agree. */
static ot_status cast_grad(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                           const bool *need_dx, ot_err *err)
{
    char name[NAME_MAX_], hint[NAME_MAX_];
    if (dy[0] < 0 || !need_dx[0])
        return OT_OK;
    const ot_node *n = &g->nodes[node];
    ot_dtype from = g->values[n->in[0]].dtype, to = g->values[dy[0]].dtype;
    if (!ot_op_is_float(from) || !ot_op_is_float(to))
        return ot_op_err(err, OT_ERR_UNSUPPORTED, g, n,
                         "no gradient for a Cast from %s to %s (float types only)",
                         ot_dtype_name(from), ot_dtype_name(to));
    if (from == to) {
        dx[0] = dy[0];
        return OT_OK;
    }
    ot_attr a = ot_op_grad_attr_int("to", from);
    snprintf(hint, sizeof hint, "grad/%s", g->values[n->in[0]].name);
    const char *names[1] = { hint };
    return ot_op_grad_emit(g, &ot_op_cast, 13, ot_op_grad_node_name(g, node, NULL, name, sizeof name),
                           &dy[0], 1, &a, 1, names, &dx[0], 1, err);
}

/* ------------------------------------------------------------ descriptors */

const ot_op_desc ot_op_slice = {
    .id = OT_OP_SLICE,
    .domain = "",
    .type = "Slice",
    .opset_min = 1,
    .opset_max = 21,
    .n_in_min = 1,
    .n_in_max = 5,
    .n_out_min = 1,
    .n_out_max = 1,
    .attrs = slice_attrs,
    .infer = slice_infer,
    .validate = slice_validate,
    .grad = slice_grad,
};

const ot_op_desc ot_op_cast = {
    .id = OT_OP_CAST,
    .domain = "",
    .type = "Cast",
    .opset_min = 6, /* 'to' is a type name string before opset 6 */
    .opset_max = 21,
    .n_in_min = 1,
    .n_in_max = 1,
    .n_out_min = 1,
    .n_out_max = 1,
    .attrs = cast_attrs,
    .infer = cast_infer,
    .validate = cast_validate,
    .grad = cast_grad,
};
