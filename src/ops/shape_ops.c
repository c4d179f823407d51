/*
 * shape_ops.c: ops that move data without arithmetic, ONNX opsets 1-21:
 * Concat, Flatten, Reshape, Squeeze, Unsqueeze, Transpose, Shape, Gather, Pad
 * and Constant.
 *
 * Besides output shapes, these fold small integer tensors (at most
 * OT_OP_FOLD_MAX elements) known at import, so that the shape arithmetic
 * exporters emit (PyTorch's flatten: Shape -> Gather -> Unsqueeze -> Concat
 * -> Reshape) gives Reshape a known target. A dynamic dim travels through
 * that chain as a symbol (see op_util.h, "partial shape vectors").
 *
 * Opset forms: Reshape takes `shape` as an attribute before opset 5 and
 * `allowzero` from 14; Squeeze/Unsqueeze take `axes` as an attribute before
 * 13 and as an input from 13; Shape has start/end from 15; Pad has `paddings`
 * in opset 1, `pads`/`value` attributes up to 10 and inputs (pads,
 * constant_value, axes from 18) from 11; Constant has value_* forms from 12.
 * Constant's string and sparse values are kept but not folded.
 *
 * Reference: https://onnx.ai/onnx/operators/ (the page of each op)
 */
#include <string.h>

#include "ops/expand_ops.h"
#include "ops/grad_shape.h"
#include "ops/grad_util.h"
#include "ops/op_util.h"

static const ot_attr_spec concat_attrs[] = {
    { "axis", OT_ATTR_INT, NULL, NULL, 0, 0, false },
    { 0 },
};

static const ot_attr_spec flatten_attrs[] = {
    { "axis", OT_ATTR_INT, "1", NULL, 0, 0, false },
    { 0 },
};

static const ot_attr_spec reshape_attrs[] = {
    { "allowzero", OT_ATTR_INT, "0", ot_op_check_bool, 14, 0, false },
    { "consumed_inputs", OT_ATTR_INTS, NULL, NULL, 1, 4, true },
    { "shape", OT_ATTR_INTS, NULL, NULL, 1, 4, false },
    { 0 },
};

static const ot_attr_spec axes_attrs[] = {
    { "axes", OT_ATTR_INTS, NULL, NULL, 1, 12, false },
    { 0 },
};

static const ot_attr_spec transpose_attrs[] = {
    { "perm", OT_ATTR_INTS, NULL, NULL, 0, 0, false },
    { 0 },
};

static const ot_attr_spec shape_attrs[] = {
    { "end", OT_ATTR_INT, NULL, NULL, 15, 0, false },
    { "start", OT_ATTR_INT, "0", NULL, 15, 0, false },
    { 0 },
};

static const ot_attr_spec gather_attrs[] = {
    { "axis", OT_ATTR_INT, "0", NULL, 0, 0, false },
    { 0 },
};

static ot_status check_pad_mode(const ot_graph *g, const ot_node *n, const ot_attr *a,
                                ot_err *err)
{
    (void)g;
    if (strcmp(a->s, "constant") == 0 || strcmp(a->s, "reflect") == 0 ||
        strcmp(a->s, "edge") == 0 || (n->opset >= 19 && strcmp(a->s, "wrap") == 0))
        return OT_OK;
    return ot_err_set(err, OT_ERR_MODEL, "is '%s', expected constant, reflect or edge%s", a->s,
                      n->opset >= 19 ? " or wrap" : "");
}

static const ot_attr_spec pad_attrs[] = {
    { "mode", OT_ATTR_STRING, "constant", check_pad_mode, 0, 0, false },
    { "paddings", OT_ATTR_INTS, NULL, NULL, 1, 1, false },
    { "pads", OT_ATTR_INTS, NULL, NULL, 2, 10, false },
    { "value", OT_ATTR_FLOAT, "0.0", NULL, 1, 10, false },
    { 0 },
};

static const ot_attr_spec constant_attrs[] = {
    { "sparse_value", OT_ATTR_SPARSE_TENSOR, NULL, NULL, 11, 0, false },
    { "value", OT_ATTR_TENSOR, NULL, NULL, 0, 0, false },
    { "value_float", OT_ATTR_FLOAT, NULL, NULL, 12, 0, false },
    { "value_floats", OT_ATTR_FLOATS, NULL, NULL, 12, 0, false },
    { "value_int", OT_ATTR_INT, NULL, NULL, 12, 0, false },
    { "value_ints", OT_ATTR_INTS, NULL, NULL, 12, 0, false },
    { "value_string", OT_ATTR_STRING, NULL, NULL, 12, 0, false },
    { "value_strings", OT_ATTR_STRINGS, NULL, NULL, 12, 0, false },
    { 0 },
};

/* Reads the values of a constant integer input (not partial) into vals;
   false when absent or not known. */
static bool const_input(ot_graph *g, const ot_node *n, int i, int64_t *vals, int *count)
{
    bool partial;
    if (i >= n->n_in || n->in[i] < 0)
        return false;
    const ot_tensor *t = ot_op_ints(g, n->in[i], &partial);
    if (!t || partial || t->ndim > 1)
        return false;
    int64_t numel = ot_tensor_numel(t);
    for (int64_t k = 0; k < numel; k++)
        vals[k] = ot_tensor_get_i64(t, k);
    *count = (int)numel;
    return true;
}

/* ----------------------------------------------------------------- Concat */

static ot_status concat_validate(ot_graph *g, ot_node *n, ot_err *err)
{
    if (n->opset >= 4 && !ot_node_find_attr(n, "axis"))
        return ot_op_err(err, OT_ERR_MODEL, g, n, "attribute 'axis' is required");
    return OT_OK;
}

/* inputs: same rank, same dims except on axis  ->  y: dims summed on axis */
static ot_status concat_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *y = ot_op_out(g, n, 0);
    if (!y || n->n_in < 1)
        return OT_OK;
    for (int i = 0; i < n->n_in; i++)
        if (!ot_op_known(ot_op_in(g, n, i)))
            return OT_OK;
    const ot_value *x0 = ot_op_in(g, n, 0);
    int r = x0->ndim, axis;
    int64_t ax = ot_node_attr_int(n, "axis", 1);
    if (r < 1 || !ot_op_axis(ax, r, &axis))
        return ot_op_err(err, OT_ERR_MODEL, g, n, "axis %lld is out of range for rank %d",
                         (long long)ax, r);
    ot_op_dims yd;
    ot_op_dims_of(x0, &yd);
    for (int i = 1; i < n->n_in; i++) {
        const ot_value *x = ot_op_in(g, n, i);
        if (x->dtype != x0->dtype)
            return ot_op_err(err, OT_ERR_MODEL, g, n, "input %d '%s' is %s, input 0 is %s", i,
                             x->name, ot_dtype_name(x->dtype), ot_dtype_name(x0->dtype));
        if (x->ndim != r)
            return ot_op_err(err, OT_ERR_SHAPE, g, n, "input %d '%s' has rank %d, input 0 %d",
                             i, x->name, x->ndim, r);
        for (int d = 0; d < r; d++) {
            int64_t a = yd.dims[d], b = x->dims[d];
            if (d == axis) {
                if (a >= 0 && b >= 0 && !ot_op_i64_add(a, b, &yd.dims[d]))
                    return ot_op_err(err, OT_ERR_SHAPE, g, n,
                                     "the sum of dim %d over the inputs overflows at input %d "
                                     "'%s' (%lld + %lld)",
                                     d, i, x->name, (long long)a, (long long)b);
                else if (a < 0 || b < 0)
                    yd.dims[d] = OT_DIM_DYNAMIC, yd.names[d] = NULL;
            } else if (a >= 0 && b >= 0 && a != b) {
                return ot_op_err(err, OT_ERR_SHAPE, g, n,
                                 "input %d '%s' has %lld in dim %d, input 0 has %lld (only "
                                 "axis %d may differ)",
                                 i, x->name, (long long)b, d, (long long)a, axis);
            } else if (a < 0 && b >= 0) {
                yd.dims[d] = b, yd.names[d] = NULL;
            }
        }
    }
    ot_op_set(y, x0->dtype, &yd);

    /* fold: every input known, output small */
    const ot_tensor *ts[OT_OP_FOLD_MAX];
    bool any_partial = false;
    if (n->n_in > OT_OP_FOLD_MAX)
        return OT_OK;
    int64_t numel = 1;
    for (int d = 0; d < r; d++) {
        if (yd.dims[d] < 0 || !ot_op_dim_mul(numel, yd.dims[d], &numel) || numel > OT_OP_FOLD_MAX)
            return OT_OK;
    }
    for (int i = 0; i < n->n_in; i++) {
        bool partial;
        ts[i] = ot_op_ints(g, n->in[i], &partial);
        if (!ts[i] || ts[i]->ndim != r)
            return OT_OK;
        any_partial |= partial;
    }
    int64_t inner = 1, outer = 1, vals[OT_OP_FOLD_MAX], k = 0;
    for (int d = axis + 1; d < r; d++)
        inner *= yd.dims[d];
    for (int d = 0; d < axis; d++)
        outer *= yd.dims[d];
    for (int64_t o = 0; o < outer; o++)
        for (int i = 0; i < n->n_in; i++) {
            int64_t chunk = ts[i]->dims[axis] * inner;
            for (int64_t e = 0; e < chunk && k < OT_OP_FOLD_MAX; e++)
                vals[k++] = ot_tensor_get_i64(ts[i], o * chunk + e);
        }
    if (k != numel)
        return OT_OK;
    return ot_op_set_ints(g, y, x0->dtype, &yd, vals, any_partial, err);
}

/* ---------------------------------------------------------------- Flatten */

/* x: (d0..d{r-1})  ->  y: (d0*..*d{axis-1}, d{axis}*..*d{r-1}) */
static ot_status flatten_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *x = ot_op_in(g, n, 0), *y = ot_op_out(g, n, 0);
    if (!y || !ot_op_known(x))
        return OT_OK;
    int64_t axis = ot_node_attr_int(n, "axis", 1);
    int r = x->ndim;
    if (axis < -(int64_t)r || axis > r || (axis < 0 && n->opset < 11))
        return ot_op_err(err, OT_ERR_MODEL, g, n, "axis %lld is out of range for rank %d",
                         (long long)axis, r);
    int a = (int)(axis < 0 ? axis + r : axis);
    ot_op_dims xd, yd = { .ndim = 2 };
    ot_op_dims_of(x, &xd);
    if (!ot_op_dims_prod(&xd, 0, a, &yd.dims[0], &yd.names[0]) ||
        !ot_op_dims_prod(&xd, a, r, &yd.dims[1], &yd.names[1])) {
        char sx[200];
        ot_op_dims_str(&xd, sx, sizeof sx);
        return ot_op_err(err, OT_ERR_SHAPE, g, n,
                         "flattening %s at axis %d: the product of the dims overflows", sx, a);
    }
    ot_op_set(y, x->dtype, &yd);
    return ot_op_fold_same(g, n->in[0], y, err);
}

/* ---------------------------------------------------------------- Reshape */

static ot_status reshape_validate(ot_graph *g, ot_node *n, ot_err *err)
{
    if (n->opset < 5 && !ot_node_find_attr(n, "shape"))
        return ot_op_err(err, OT_ERR_MODEL, g, n, "attribute 'shape' is required before opset 5");
    if (n->opset < 5 && n->n_in > 1)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "takes 1 input before opset 5");
    if (n->opset >= 5 && (n->n_in < 2 || n->in[1] < 0))
        return ot_op_err(err, OT_ERR_MODEL, g, n, "input 'shape' is required from opset 5");
    return OT_OK;
}

/* data: x's dims; shape: target with 0 (copy), -1 (infer), symbols  ->  y */
static ot_status reshape_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *x = ot_op_in(g, n, 0), *y = ot_op_out(g, n, 0);
    if (!y || !ot_op_known(x))
        return OT_OK;
    int64_t tgt[OT_OP_FOLD_MAX];
    int k = 0;
    bool partial = false;
    if (n->opset < 5) {
        size_t len = 0;
        const int64_t *s = ot_node_attr_ints(n, "shape", &len);
        if (!s || len > OT_MAX_DIMS)
            return OT_OK;
        k = (int)len;
        memcpy(tgt, s, len * sizeof *s);
    } else {
        const ot_value *sv = ot_op_in(g, n, 1);
        const ot_tensor *t = sv ? ot_op_ints(g, n->in[1], &partial) : NULL;
        if (!t || t->ndim != 1) {
            /* target unknown: its length still gives the rank */
            if (ot_op_known(sv) && sv->ndim == 1 && sv->dims[0] >= 0 &&
                sv->dims[0] <= OT_MAX_DIMS) {
                ot_op_dims yd = { .ndim = (int)sv->dims[0] };
                for (int i = 0; i < yd.ndim; i++)
                    yd.dims[i] = OT_DIM_DYNAMIC;
                ot_op_set(y, x->dtype, &yd);
            }
            return OT_OK;
        }
        if (t->dims[0] > OT_MAX_DIMS)
            return OT_OK;
        k = (int)t->dims[0];
        for (int i = 0; i < k; i++)
            tgt[i] = ot_tensor_get_i64(t, i);
    }
    bool allowzero = n->opset >= 14 && ot_node_attr_int(n, "allowzero", 0) != 0;

    /* resolve each target entry; origin: which dim of x a dynamic entry is */
    ot_op_dims yd = { .ndim = k };
    int origin[OT_MAX_DIMS];
    int neg = -1;
    bool has_zero = false;
    for (int i = 0; i < k; i++) {
        int64_t e = tgt[i];
        origin[i] = -1;
        yd.names[i] = NULL;
        if (partial && ot_op_is_sym(e)) {
            int32_t vid;
            int d;
            ot_op_sym_dim(g, e, &yd.dims[i], &yd.names[i], &vid, &d);
            if (vid == n->in[0])
                origin[i] = d;
        } else if (e == 0 && !allowzero) {
            if (i >= x->ndim)
                return ot_op_err(err, OT_ERR_SHAPE, g, n,
                                 "shape entry %d is 0 (copy), but the input has rank %d", i,
                                 x->ndim);
            yd.dims[i] = x->dims[i];
            yd.names[i] = x->dims[i] < 0 ? x->dim_names[i] : NULL;
            origin[i] = i;
        } else if (e == -1) {
            if (neg >= 0)
                return ot_op_err(err, OT_ERR_SHAPE, g, n, "shape has more than one -1");
            neg = i;
            yd.dims[i] = OT_DIM_DYNAMIC;
        } else if (e < -1) {
            return ot_op_err(err, OT_ERR_SHAPE, g, n, "shape entry %d is %lld", i, (long long)e);
        } else {
            has_zero |= e == 0;
            yd.dims[i] = e;
        }
    }
    if (allowzero && has_zero && neg >= 0)
        return ot_op_err(err, OT_ERR_SHAPE, g, n, "shape has both 0 and -1 with allowzero=1");

    /* cancel the dynamic dims that appear on both sides, then compare the rest */
    bool used[OT_MAX_DIMS] = { false };
    bool all_cancel = true, ok = true;
    int64_t static_in = 1, static_out = 1;
    for (int j = 0; j < x->ndim; j++)
        if (x->dims[j] >= 0)
            ok &= ot_op_dim_mul(static_in, x->dims[j], &static_in);
    for (int i = 0; i < k; i++) {
        if (i == neg)
            continue;
        if (yd.dims[i] >= 0) {
            ok &= ot_op_dim_mul(static_out, yd.dims[i], &static_out);
            continue;
        }
        int match = -1;
        for (int j = 0; j < x->ndim && match < 0; j++) {
            if (x->dims[j] >= 0 || used[j])
                continue;
            if (origin[i] == j || (yd.names[i] && x->dim_names[j] &&
                                   strcmp(yd.names[i], x->dim_names[j]) == 0))
                match = j;
        }
        if (match >= 0)
            used[match] = true;
        else
            all_cancel = false;
    }
    int remaining = 0, last = -1;
    for (int j = 0; j < x->ndim; j++)
        if (x->dims[j] < 0 && !used[j])
            remaining++, last = j;
    if (ok && all_cancel && neg >= 0) {
        if (remaining == 0 && static_out > 0) {
            if (static_in % static_out != 0)
                return ot_op_err(err, OT_ERR_SHAPE, g, n,
                                 "cannot reshape %lld elements into blocks of %lld (shape has -1)",
                                 (long long)static_in, (long long)static_out);
            yd.dims[neg] = static_in / static_out;
        } else if (remaining == 1 && static_in == static_out) {
            yd.names[neg] = x->dim_names[last];
        }
    } else if (ok && all_cancel && remaining == 0 && static_in != static_out) {
        char sx[200], sy[200];
        ot_op_dims xd;
        ot_op_dims_of(x, &xd);
        ot_op_dims_str(&xd, sx, sizeof sx);
        ot_op_dims_str(&yd, sy, sizeof sy);
        return ot_op_err(err, OT_ERR_SHAPE, g, n,
                         "cannot reshape %s (%lld elements) to %s (%lld elements)", sx,
                         (long long)static_in, sy, (long long)static_out);
    }
    ot_op_set(y, x->dtype, &yd);
    return ot_op_fold_same(g, n->in[0], y, err);
}

/* ------------------------------------------------------ Squeeze/Unsqueeze */

static ot_status squeeze_validate(ot_graph *g, ot_node *n, ot_err *err)
{
    if (n->opset < 13 && n->n_in > 1)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "takes axes as an input only from opset 13");
    if (n->op == &ot_op_unsqueeze) {
        if (n->opset < 13 && !ot_node_find_attr(n, "axes"))
            return ot_op_err(err, OT_ERR_MODEL, g, n, "attribute 'axes' is required");
        if (n->opset >= 13 && (n->n_in < 2 || n->in[1] < 0))
            return ot_op_err(err, OT_ERR_MODEL, g, n, "input 'axes' is required from opset 13");
    }
    return OT_OK;
}

/* The axes of Squeeze/Unsqueeze: *given false when absent; false when they
   exist but are not known at import. */
static bool get_axes(ot_graph *g, const ot_node *n, int64_t *axes, int *count, bool *given)
{
    *count = 0;
    *given = false;
    if (n->opset < 13) {
        size_t len = 0;
        const int64_t *a = ot_node_attr_ints(n, "axes", &len);
        if (!a)
            return true;
        if (len > OT_OP_FOLD_MAX)
            return false;
        memcpy(axes, a, len * sizeof *a);
        *count = (int)len;
        *given = true;
        return true;
    }
    if (n->n_in < 2 || n->in[1] < 0)
        return true;
    *given = true;
    return const_input(g, n, 1, axes, count);
}

/* x  ->  y without the listed size-1 dims (all size-1 dims when none listed) */
static ot_status squeeze_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *x = ot_op_in(g, n, 0), *y = ot_op_out(g, n, 0);
    if (!y || !ot_op_known(x))
        return OT_OK;
    int64_t axes[OT_OP_FOLD_MAX];
    int count;
    bool given;
    y->dtype = x->dtype; /* even when the rank is not known */
    if (!get_axes(g, n, axes, &count, &given))
        return OT_OK;
    bool drop[OT_MAX_DIMS] = { false };
    if (given) {
        for (int i = 0; i < count; i++) {
            int a;
            if (!ot_op_axis(axes[i], x->ndim, &a))
                return ot_op_err(err, OT_ERR_MODEL, g, n, "axis %lld is out of range for rank %d",
                                 (long long)axes[i], x->ndim);
            if (x->dims[a] >= 0 && x->dims[a] != 1)
                return ot_op_err(err, OT_ERR_SHAPE, g, n,
                                 "cannot squeeze dim %d of '%s': it has size %lld", a, x->name,
                                 (long long)x->dims[a]);
            drop[a] = true;
        }
    } else {
        for (int d = 0; d < x->ndim; d++) {
            if (x->dims[d] < 0)
                return OT_OK; /* could be 1: the rank is not known */
            drop[d] = x->dims[d] == 1;
        }
    }
    ot_op_dims xd, yd = { .ndim = 0 };
    ot_op_dims_of(x, &xd);
    for (int d = 0; d < x->ndim; d++) {
        if (drop[d])
            continue;
        yd.dims[yd.ndim] = xd.dims[d];
        yd.names[yd.ndim] = xd.names[d];
        yd.ndim++;
    }
    ot_op_set(y, x->dtype, &yd);
    return ot_op_fold_same(g, n->in[0], y, err);
}

/* x  ->  y with size-1 dims inserted at the listed positions of y */
static ot_status unsqueeze_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *x = ot_op_in(g, n, 0), *y = ot_op_out(g, n, 0);
    if (!y || !ot_op_known(x))
        return OT_OK;
    int64_t axes[OT_OP_FOLD_MAX];
    int count;
    bool given;
    y->dtype = x->dtype; /* even when the rank is not known */
    if (!get_axes(g, n, axes, &count, &given)) {
        /* axes not known: their count still gives the rank */
        const ot_value *av = ot_op_in(g, n, 1);
        if (ot_op_known(av) && av->ndim == 1 && av->dims[0] >= 0 &&
            x->ndim + av->dims[0] <= OT_MAX_DIMS) {
            ot_op_dims yd = { .ndim = x->ndim + (int)av->dims[0] };
            for (int d = 0; d < yd.ndim; d++)
                yd.dims[d] = OT_DIM_DYNAMIC;
            ot_op_set(y, x->dtype, &yd);
        }
        return OT_OK;
    }
    if (!given)
        return OT_OK;
    int r = x->ndim + count;
    if (r > OT_MAX_DIMS)
        return OT_OK;
    bool ins[OT_MAX_DIMS] = { false };
    for (int i = 0; i < count; i++) {
        int a;
        if (!ot_op_axis(axes[i], r, &a))
            return ot_op_err(err, OT_ERR_MODEL, g, n, "axis %lld is out of range for rank %d",
                             (long long)axes[i], r);
        if (ins[a])
            return ot_op_err(err, OT_ERR_MODEL, g, n, "axis %lld is listed twice",
                             (long long)axes[i]);
        ins[a] = true;
    }
    ot_op_dims xd, yd = { .ndim = r };
    ot_op_dims_of(x, &xd);
    for (int d = 0, j = 0; d < r; d++) {
        if (ins[d]) {
            yd.dims[d] = 1;
            yd.names[d] = NULL;
        } else {
            yd.dims[d] = xd.dims[j];
            yd.names[d] = xd.names[j];
            j++;
        }
    }
    ot_op_set(y, x->dtype, &yd);
    return ot_op_fold_same(g, n->in[0], y, err);
}

/* -------------------------------------------------------------- Transpose */

/* x: (d0..d{r-1})  ->  y: (d{perm[0]}..d{perm[r-1]}); perm defaults to reversed */
static ot_status transpose_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *x = ot_op_in(g, n, 0), *y = ot_op_out(g, n, 0);
    if (!y || !ot_op_known(x))
        return OT_OK;
    size_t len = 0;
    const int64_t *perm = ot_node_attr_ints(n, "perm", &len);
    int r = x->ndim;
    if (perm && len != (size_t)r)
        return ot_op_err(err, OT_ERR_MODEL, g, n,
                         "attribute 'perm' has %zu values, expected %d (input rank)", len, r);
    ot_op_dims xd, yd = { .ndim = r };
    bool seen[OT_MAX_DIMS] = { false };
    ot_op_dims_of(x, &xd);
    for (int i = 0; i < r; i++) {
        int64_t p = perm ? perm[i] : r - 1 - i;
        if (p < 0 || p >= r || seen[p])
            return ot_op_err(err, OT_ERR_MODEL, g, n,
                             "attribute 'perm' is not a permutation of 0..%d", r - 1);
        seen[p] = true;
        yd.dims[i] = xd.dims[p];
        yd.names[i] = xd.names[p];
    }
    ot_op_set(y, x->dtype, &yd);

    /* fold: small known data (Swin's pads are a transposed index pair) */
    bool partial = false;
    const ot_tensor *t = ot_op_ints(g, n->in[0], &partial);
    if (!t || t->ndim != r)
        return OT_OK;
    int64_t numel = ot_tensor_numel(t), vals[OT_OP_FOLD_MAX], idx[OT_MAX_DIMS] = { 0 };
    int64_t stride[OT_MAX_DIMS];
    for (int d = r - 1, s = 1; d >= 0; d--) {
        stride[d] = s;
        s *= (int)t->dims[d];
    }
    for (int d = 0; d < r; d++)
        yd.dims[d] = t->dims[perm ? perm[d] : r - 1 - d];
    for (int64_t e = 0; e < numel; e++) {
        int64_t off = 0;
        for (int d = 0; d < r; d++)
            off += idx[d] * stride[perm ? perm[d] : r - 1 - d];
        vals[e] = ot_tensor_get_i64(t, off);
        for (int d = r - 1; d >= 0; d--) {
            if (++idx[d] < yd.dims[d])
                break;
            idx[d] = 0;
        }
    }
    return ot_op_set_ints(g, y, t->dtype, &yd, vals, partial, err);
}

/* ------------------------------------------------------------------ Shape */

/* x: rank r  ->  y: int64 (end - start), folded; dynamic dims as symbols */
static ot_status shape_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *x = ot_op_in(g, n, 0), *y = ot_op_out(g, n, 0);
    if (!y || !x || x->ndim < 0 || x->ndim > OT_MAX_DIMS)
        return OT_OK;
    int64_t r = x->ndim, start = 0, end = r;
    if (n->opset >= 15) {
        start = ot_node_attr_int(n, "start", 0);
        end = ot_node_attr_int(n, "end", r);
    }
    start = start < 0 ? start + r : start;
    end = end < 0 ? end + r : end;
    start = start < 0 ? 0 : start > r ? r : start;
    end = end < 0 ? 0 : end > r ? r : end;
    ot_op_dims yd = { .ndim = 1 };
    yd.dims[0] = end > start ? end - start : 0;
    int64_t vals[OT_MAX_DIMS];
    bool partial = false;
    for (int64_t i = 0; i < yd.dims[0]; i++) {
        int d = (int)(start + i);
        partial |= x->dims[d] < 0;
        vals[i] = x->dims[d] >= 0 ? x->dims[d] : ot_op_sym(n->in[0], d);
    }
    return ot_op_set_ints(g, y, OT_DTYPE_INT64, &yd, vals, partial, err);
}

/* ----------------------------------------------------------------- Gather */

/* data: (d0..d{r-1})  indices: (q dims)  ->  y: d[:axis] + indices + d[axis+1:] */
static ot_status gather_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *x = ot_op_in(g, n, 0), *idx = ot_op_in(g, n, 1), *y = ot_op_out(g, n, 0);
    if (!y || !ot_op_known(x) || !ot_op_known(idx))
        return OT_OK;
    if (idx->dtype != OT_DTYPE_INT32 && idx->dtype != OT_DTYPE_INT64)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "indices '%s' are %s, expected int32 or int64",
                         idx->name, ot_dtype_name(idx->dtype));
    int r = x->ndim, q = idx->ndim, axis;
    int64_t ax = ot_node_attr_int(n, "axis", 0);
    if (r < 1 || !ot_op_axis(ax, r, &axis))
        return ot_op_err(err, OT_ERR_MODEL, g, n, "axis %lld is out of range for rank %d",
                         (long long)ax, r);
    if (r - 1 + q > OT_MAX_DIMS)
        return OT_OK;
    ot_op_dims xd, id, yd = { .ndim = r - 1 + q };
    ot_op_dims_of(x, &xd);
    ot_op_dims_of(idx, &id);
    for (int d = 0; d < axis; d++)
        yd.dims[d] = xd.dims[d], yd.names[d] = xd.names[d];
    for (int d = 0; d < q; d++)
        yd.dims[axis + d] = id.dims[d], yd.names[axis + d] = id.names[d];
    for (int d = axis + 1; d < r; d++)
        yd.dims[q + d - 1] = xd.dims[d], yd.names[q + d - 1] = xd.names[d];
    ot_op_set(y, x->dtype, &yd);

    /* fold: known data, constant indices */
    bool partial, idx_partial;
    const ot_tensor *t = ot_op_ints(g, n->in[0], &partial);
    const ot_tensor *it = ot_op_ints(g, n->in[1], &idx_partial);
    if (!t || !it || idx_partial || t->ndim != r)
        return OT_OK;
    int64_t outer = 1, inner = 1, dax = t->dims[axis], n_idx = ot_tensor_numel(it);
    for (int d = 0; d < axis; d++)
        outer *= t->dims[d];
    for (int d = axis + 1; d < r; d++)
        inner *= t->dims[d];
    if (outer * n_idx * inner > OT_OP_FOLD_MAX)
        return OT_OK;
    int64_t vals[OT_OP_FOLD_MAX], k = 0;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < n_idx; j++) {
            int64_t i = ot_tensor_get_i64(it, j);
            if (i < -dax || i >= dax)
                return ot_op_err(err, OT_ERR_SHAPE, g, n,
                                 "index %lld is out of range for dim %d of size %lld",
                                 (long long)i, axis, (long long)dax);
            if (i < 0)
                i += dax;
            for (int64_t e = 0; e < inner; e++)
                vals[k++] = ot_tensor_get_i64(t, (o * dax + i) * inner + e);
        }
    for (int d = 0; d < yd.ndim; d++) /* the folded shape is static */
        yd.dims[d] = d < axis ? t->dims[d] : d < axis + q ? it->dims[d - axis]
                                                             : t->dims[d - q + 1];
    return ot_op_set_ints(g, y, t->dtype, &yd, vals, partial, err);
}

/* -------------------------------------------------------------------- Pad */

static ot_status pad_validate(ot_graph *g, ot_node *n, ot_err *err)
{
    if (n->opset < 11 && n->n_in > 1)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "takes 1 input before opset 11");
    if (n->opset >= 11 && (n->n_in < 2 || n->in[1] < 0))
        return ot_op_err(err, OT_ERR_MODEL, g, n, "input 'pads' is required from opset 11");
    if (n->opset < 18 && n->n_in > 3)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "input 'axes' exists only from opset 18");
    if (n->opset < 11 && !ot_node_find_attr(n, n->opset < 2 ? "paddings" : "pads"))
        return ot_op_err(err, OT_ERR_MODEL, g, n, "attribute '%s' is required",
                         n->opset < 2 ? "paddings" : "pads");
    return OT_OK;
}

/* x: (d0..)  pads: (begin per axis, end per axis)  ->  y: d + begin + end */
static ot_status pad_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *x = ot_op_in(g, n, 0), *y = ot_op_out(g, n, 0);
    if (!y || !ot_op_known(x))
        return OT_OK;
    int r = x->ndim;
    int64_t pads[OT_OP_FOLD_MAX], axes[OT_OP_FOLD_MAX];
    int n_pads = 0, n_axes = r;
    bool known = true;
    for (int i = 0; i < r; i++)
        axes[i] = i;
    if (n->opset < 11) {
        size_t len = 0;
        const int64_t *p = ot_node_attr_ints(n, n->opset < 2 ? "paddings" : "pads", &len);
        known = p && len <= OT_OP_FOLD_MAX;
        if (known) {
            memcpy(pads, p, len * sizeof *p);
            n_pads = (int)len;
        }
    } else {
        known = const_input(g, n, 1, pads, &n_pads);
        if (n->n_in > 3 && n->in[3] >= 0)
            known = known && const_input(g, n, 3, axes, &n_axes);
    }
    ot_op_dims yd;
    ot_op_dims_of(x, &yd);
    if (!known) {
        for (int d = 0; d < r; d++)
            yd.dims[d] = OT_DIM_DYNAMIC, yd.names[d] = NULL;
        ot_op_set(y, x->dtype, &yd);
        return OT_OK;
    }
    if (n_pads != 2 * n_axes)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "pads has %d values, expected %d (2 x %s)",
                         n_pads, 2 * n_axes, n_axes == r ? "input rank" : "axes");
    for (int i = 0; i < n_axes; i++) {
        int a;
        if (!ot_op_axis(axes[i], r, &a))
            return ot_op_err(err, OT_ERR_MODEL, g, n, "axis %lld is out of range for rank %d",
                             (long long)axes[i], r);
        int64_t add, sum;
        if (!ot_op_i64_add(pads[i], pads[n_axes + i], &add) ||
            (yd.dims[a] >= 0 && !ot_op_i64_add(yd.dims[a], add, &sum)))
            return ot_op_err(err, OT_ERR_SHAPE, g, n,
                             "pads %lld and %lld on dim %d of size %lld overflow",
                             (long long)pads[i], (long long)pads[n_axes + i], a,
                             (long long)yd.dims[a]);
        if (yd.dims[a] < 0) {
            if (add != 0)
                yd.names[a] = NULL;
            continue;
        }
        if (sum < 0)
            return ot_op_err(err, OT_ERR_SHAPE, g, n,
                             "pads %lld and %lld make dim %d of size %lld negative",
                             (long long)pads[i], (long long)pads[n_axes + i], a,
                             (long long)yd.dims[a]);
        yd.dims[a] = sum;
    }
    ot_op_set(y, x->dtype, &yd);
    return OT_OK;
}

/* --------------------------------------------------------------- Constant */

static const char *const constant_forms[] = {
    "value", "value_float", "value_floats", "value_int", "value_ints",
    "value_string", "value_strings", "sparse_value",
};
#define N_CONSTANT_FORMS (sizeof constant_forms / sizeof constant_forms[0])

static ot_status constant_validate(ot_graph *g, ot_node *n, ot_err *err)
{
    int found = 0;
    for (size_t i = 0; i < N_CONSTANT_FORMS; i++)
        found += ot_node_find_attr(n, constant_forms[i]) != NULL;
    if (found != 1)
        return ot_op_err(err, OT_ERR_MODEL, g, n,
                         "has %d value attributes, expected exactly one (value, value_float, "
                         "value_floats, value_int, value_ints, value_string, value_strings or "
                         "sparse_value)",
                         found);
    return OT_OK;
}

/* Makes v a constant tensor holding a copy of `bytes` bytes in the arena. */
static ot_status set_tensor(ot_graph *g, ot_value *v, ot_dtype dtype, const ot_op_dims *d,
                            const void *src, size_t bytes, ot_err *err)
{
    void *data = NULL;
    if (bytes) {
        data = ot_arena_memdup(&g->arena, src, bytes);
        if (!data)
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory for constant '%s'", v->name);
    }
    ot_op_set(v, dtype, d);
    memset(&v->data, 0, sizeof v->data);
    v->data.dtype = dtype;
    v->data.ndim = d->ndim;
    for (int i = 0; i < d->ndim; i++)
        v->data.dims[i] = d->dims[i];
    v->data.data = data;
    v->data.bytes = bytes;
    v->flags |= OT_VAL_CONST;
    return OT_OK;
}

/* no inputs  ->  y: the attribute's tensor (constant) */
static ot_status constant_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *y = ot_op_out(g, n, 0);
    const ot_attr *a = NULL;
    if (!y)
        return OT_OK;
    for (size_t i = 0; i < N_CONSTANT_FORMS && !a; i++)
        a = ot_node_find_attr(n, constant_forms[i]);
    if (!a)
        return OT_OK;
    ot_op_dims d = { .ndim = 0 };
    size_t bytes;
    switch (a->type) {
    case OT_ATTR_TENSOR:
        if (!a->t || a->t->ndim < 0 || a->t->ndim > OT_MAX_DIMS)
            return OT_OK; /* string or undecoded tensor: type unknown here */
        d.ndim = a->t->ndim;
        for (int i = 0; i < d.ndim; i++)
            d.dims[i] = a->t->dims[i];
        ot_op_set(y, a->t->dtype, &d);
        y->data = *a->t; /* the bytes stay the attribute's, owned by the graph */
        y->flags |= OT_VAL_CONST;
        return OT_OK;
    case OT_ATTR_FLOAT:
        return set_tensor(g, y, OT_DTYPE_FLOAT, &d, &a->f, sizeof a->f, err);
    case OT_ATTR_INT:
        return set_tensor(g, y, OT_DTYPE_INT64, &d, &a->i, sizeof a->i, err);
    case OT_ATTR_FLOATS:
        d.ndim = 1;
        d.dims[0] = (int64_t)a->n;
        if (!ot_size_mul(a->n, sizeof(float), &bytes))
            return OT_OK;
        return set_tensor(g, y, OT_DTYPE_FLOAT, &d, a->floats, bytes, err);
    case OT_ATTR_INTS:
        d.ndim = 1;
        d.dims[0] = (int64_t)a->n;
        if (!ot_size_mul(a->n, sizeof(int64_t), &bytes))
            return OT_OK;
        return set_tensor(g, y, OT_DTYPE_INT64, &d, a->ints, bytes, err);
    case OT_ATTR_STRING:
        ot_op_set(y, OT_DTYPE_STRING, &d);
        return OT_OK;
    case OT_ATTR_STRINGS:
        d.ndim = 1;
        d.dims[0] = (int64_t)a->n;
        ot_op_set(y, OT_DTYPE_STRING, &d);
        return OT_OK;
    default: /* sparse_value: dtype and shape stay unknown */
        return OT_OK;
    }
}

/* ------------------------------------------------------------ descriptors */

#define DESC(sym, op_id, name, in_min, in_max, attr_list, infer_fn, validate_fn, grad_fn, nograd) \
    const ot_op_desc sym = {                                                                    \
        .id = op_id,                                                                            \
        .domain = "",                                                                           \
        .type = name,                                                                           \
        .opset_min = 1,                                                                         \
        .opset_max = 21,                                                                        \
        .n_in_min = in_min,                                                                     \
        .n_in_max = in_max,                                                                     \
        .n_out_min = 1,                                                                         \
        .n_out_max = 1,                                                                         \
        .attrs = attr_list,                                                                     \
        .infer = infer_fn,                                                                      \
        .validate = validate_fn,                                                                \
        .grad = grad_fn,                                                                        \
        .no_grad = nograd,                                                                      \
    }

DESC(ot_op_concat, OT_OP_CONCAT, "Concat", 1, -1, concat_attrs, concat_infer, concat_validate,
     ot_op_grad_concat, false);
DESC(ot_op_flatten, OT_OP_FLATTEN, "Flatten", 1, 1, flatten_attrs, flatten_infer, NULL,
     ot_op_grad_reshape_like, false);
DESC(ot_op_reshape, OT_OP_RESHAPE, "Reshape", 1, 2, reshape_attrs, reshape_infer, reshape_validate,
     ot_op_grad_reshape_like, false);
DESC(ot_op_squeeze, OT_OP_SQUEEZE, "Squeeze", 1, 2, axes_attrs, squeeze_infer, squeeze_validate,
     ot_op_grad_reshape_like, false);
DESC(ot_op_unsqueeze, OT_OP_UNSQUEEZE, "Unsqueeze", 1, 2, axes_attrs, unsqueeze_infer,
     squeeze_validate, ot_op_grad_reshape_like, false);
DESC(ot_op_transpose, OT_OP_TRANSPOSE, "Transpose", 1, 1, transpose_attrs, transpose_infer, NULL,
     ot_op_grad_transpose, false);
/* Shape: its output is an integer vector, a function of shapes only. */
DESC(ot_op_shape, OT_OP_SHAPE, "Shape", 1, 1, shape_attrs, shape_infer, NULL, NULL, true);
/* Gather's gradient: expand_ops.c (GatherGrad, a scatter-add). */
DESC(ot_op_gather, OT_OP_GATHER, "Gather", 2, 2, gather_attrs, gather_infer, NULL,
     ot_op_grad_gather, false);
DESC(ot_op_pad, OT_OP_PAD, "Pad", 1, 4, pad_attrs, pad_infer, pad_validate, ot_op_grad_pad,
     false);
/* Constant: no inputs, nothing to differentiate. */
DESC(ot_op_constant, OT_OP_CONSTANT, "Constant", 0, 0, constant_attrs, constant_infer,
     constant_validate, NULL, true);
