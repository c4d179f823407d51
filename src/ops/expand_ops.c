/*
 * expand_ops.c: the ops that split, repeat, generate and scatter tensors,
 * and the backward ops of Gather and ScatterND:
 *   Split (2-21): `split` as an attribute before opset 13, as an input from
 *     13; without it equal parts, or from opset 18 `num_outputs` parts of
 *     ceil(dim / n) with a smaller last one. dX = Concat of the outputs'
 *     gradients, zeros (ConstantOfShape) for outputs without one.
 *   Expand (8-21): X broadcast with `shape` (numpy rules, both ways); small
 *     integer data folds (fold.c). dX = dY summed down to X's shape.
 *   Tile (6-21): X repeated `repeats[d]` times along each dim. dX = dY
 *     reshaped to (r0, d0, r1, d1, ...) and summed over the r axes (static
 *     dims but at most one).
 *   ConstantOfShape (9-21), Range (11-21): no gradient; they fold into
 *     constants when their inputs are known and the result is small (fold.c).
 *   ScatterND (11-21): a copy of data with the slices that indices name
 *     replaced by updates (reduction none), or combined with them (add, mul,
 *     max, min). Reduction none: dData = dY with those slices zeroed and
 *     dUpdates = the slices of dY (ScatterNDGrad); the others have no
 *     gradient.
 *   GatherGrad (private): Gather's backward, dX = zeros of X's shape with
 *     dY's rows added at the gathered indices (repeated indices accumulate).
 *   ScatterNDGrad (private): ScatterND's backward, both outputs above.
 *   SliceGrad (private): the backward of a Slice with steps other than 1
 *     (Swin's patch merging, x[:, 0::2]): zeros with dY at the positions
 *     start + i * step of each dim.
 *
 * Reference: https://onnx.ai/onnx/operators/ (the page of each op)
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ops/expand_ops.h"
#include "ops/grad_util.h"
#include "ops/op_util.h"

#define NAME_MAX_ 512

/* ------------------------------------------------------------------ Split */

static const ot_attr_spec split_attrs[] = {
    { "axis", OT_ATTR_INT, "0", NULL, 0, 0, false },
    { "num_outputs", OT_ATTR_INT, NULL, ot_op_check_positive, 18, 0, false },
    { "split", OT_ATTR_INTS, NULL, NULL, 1, 12, false },
    { 0 },
};

bool ot_split_sizes(const ot_node *n, const ot_tensor *split, int64_t dim, int64_t *sizes,
                    const char **why)
{
    int n_out = n->n_out;
    size_t len = 0;
    const int64_t *attr = n->opset < 13 ? ot_node_attr_ints(n, "split", &len) : NULL;
    if (split || attr) {
        int64_t count = split ? ot_tensor_numel(split) : (int64_t)len, sum = 0;
        if (count != n_out) {
            *why = "'split' has not one entry per output";
            return false;
        }
        for (int i = 0; i < n_out; i++) {
            sizes[i] = split ? ot_tensor_get_i64(split, i) : attr[i];
            if (sizes[i] < 0 || !ot_op_i64_add(sum, sizes[i], &sum)) {
                *why = "'split' has a negative entry";
                return false;
            }
        }
        if (sum != dim) {
            *why = "'split' does not add up to the size of the axis";
            return false;
        }
        return true;
    }
    if (ot_node_find_attr(n, "num_outputs")) {
        int64_t parts = ot_node_attr_int(n, "num_outputs", 1);
        if (parts != n_out) {
            *why = "num_outputs differs from the number of outputs";
            return false;
        }
        int64_t each = (dim + parts - 1) / parts, left = dim;
        for (int i = 0; i < n_out; i++) {
            sizes[i] = left < each ? left : each;
            left -= sizes[i];
        }
        return true;
    }
    if (dim % n_out) {
        *why = "the axis does not split into equal parts";
        return false;
    }
    for (int i = 0; i < n_out; i++)
        sizes[i] = dim / n_out;
    return true;
}

static ot_status split_validate(ot_graph *g, ot_node *n, ot_err *err)
{
    if (n->opset < 13 && n->n_in > 1)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "takes 'split' as an attribute before opset 13");
    if (n->opset >= 18 && n->n_in > 1 && n->in[1] >= 0 && ot_node_find_attr(n, "num_outputs"))
        return ot_op_err(err, OT_ERR_MODEL, g, n, "takes 'split' or 'num_outputs', not both");
    return OT_OK;
}

/* x: (d0..)  split: n sizes  ->  y_i: x's shape with the axis dim sizes[i] */
static ot_status split_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *x = ot_op_in(g, n, 0);
    if (!ot_op_known(x))
        return OT_OK;
    int axis;
    int64_t ax = ot_node_attr_int(n, "axis", 0);
    if (x->ndim < 1 || !ot_op_axis(ax, x->ndim, &axis))
        return ot_op_err(err, OT_ERR_MODEL, g, n, "axis %lld is out of range for rank %d",
                         (long long)ax, x->ndim);
    if (n->n_out > OT_OP_FOLD_MAX)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "has more than %d outputs", OT_OP_FOLD_MAX);
    const ot_tensor *split = NULL;
    if (n->n_in > 1 && n->in[1] >= 0) {
        bool partial = false;
        split = ot_op_ints(g, n->in[1], &partial);
        if (!split || partial)
            split = NULL;
        if (!split) { /* sizes known only at run time */
            ot_op_dims d;
            ot_op_dims_of(x, &d);
            d.dims[axis] = OT_DIM_DYNAMIC, d.names[axis] = NULL;
            for (int i = 0; i < n->n_out; i++)
                if (ot_op_out(g, n, i))
                    ot_op_set(ot_op_out(g, n, i), x->dtype, &d);
            return OT_OK;
        }
    }
    int64_t sizes[OT_OP_FOLD_MAX];
    const char *why = "";
    bool known = x->dims[axis] >= 0;
    if (known && !ot_split_sizes(n, split, x->dims[axis], sizes, &why))
        return ot_op_err(err, OT_ERR_SHAPE, g, n, "%s (%lld)", why, (long long)x->dims[axis]);
    for (int i = 0; i < n->n_out; i++) {
        ot_value *y = ot_op_out(g, n, i);
        if (!y)
            continue;
        ot_op_dims d;
        ot_op_dims_of(x, &d);
        d.dims[axis] = known ? sizes[i] : OT_DIM_DYNAMIC;
        d.names[axis] = NULL;
        ot_op_set(y, x->dtype, &d);
    }
    return OT_OK;
}

/* dX = Concat(dY_0, ..., dY_{n-1}) along the axis; an output without a
   gradient contributes zeros of its shape. */
static ot_status split_grad(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                            const bool *need_dx, ot_err *err)
{
    char name[NAME_MAX_], hint[NAME_MAX_], sfx[32];
    ot_status st = OT_OK;
    int n_out = g->nodes[node].n_out;
    bool any = false;
    for (int i = 0; i < n_out; i++)
        any |= dy[i] >= 0;
    if (!any || !need_dx[0])
        return OT_OK;
    int32_t *parts = ot_arena_alloc(&g->arena, (size_t)n_out * sizeof *parts);
    if (!parts)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n_out; i++) {
        parts[i] = dy[i];
        if (parts[i] >= 0)
            continue;
        int32_t y = g->nodes[node].out[i], shape = -1;
        if (y < 0)
            return ot_op_err(err, OT_ERR_UNSUPPORTED, g, &g->nodes[node],
                             "no gradient for a Split with an omitted output");
        OT_TRY(ot_op_grad_shape_of(g, y, &shape, err));
        snprintf(hint, sizeof hint, "grad/%s/zeros", g->values[y].name);
        snprintf(sfx, sizeof sfx, "zeros%d", i);
        const char *names[1] = { hint };
        OT_TRY(ot_op_grad_emit(g, &ot_op_constant_of_shape, 0,
                               ot_op_grad_node_name(g, node, sfx, name, sizeof name), &shape, 1,
                               NULL, 0, names, &parts[i], 1, err));
    }
    int axis = (int)ot_node_attr_int(&g->nodes[node], "axis", 0);
    ot_attr a = ot_op_grad_attr_int("axis", axis);
    snprintf(hint, sizeof hint, "grad/%s", g->values[g->nodes[node].in[0]].name);
    const char *names[1] = { hint };
    OT_TRY(ot_op_grad_emit(g, &ot_op_concat, 0, ot_op_grad_node_name(g, node, NULL, name, sizeof name),
                           parts, n_out, &a, 1, names, &dx[0], 1, err));
done:
    return st;
}

/* ----------------------------------------------------------------- Expand */

/* x: (d..)  shape: (s..)  ->  y: broadcast(d, s) */
static ot_status expand_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *x = ot_op_in(g, n, 0), *s = ot_op_in(g, n, 1), *y = ot_op_out(g, n, 0);
    if (!y || !ot_op_known(x) || !ot_op_known(s))
        return OT_OK;
    if (s->dtype != OT_DTYPE_INT64 || s->ndim != 1)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "shape '%s' must be a 1-D int64 tensor", s->name);
    ot_op_dims xd, sd, yd;
    if (!ot_op_shape_operand(g, n, 1, false, &sd))
        return OT_OK;
    ot_op_dims_of(x, &xd);
    ot_status st = ot_op_broadcast(g, n, &xd, &sd, &yd, err);
    if (st != OT_OK)
        return st;
    ot_op_set(y, x->dtype, &yd);
    return OT_OK;
}
static ot_status expand_grad(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                             const bool *need_dx, ot_err *err)
{
    char name[NAME_MAX_];
    if (dy[0] < 0 || !need_dx[0])
        return OT_OK;
    return ot_op_grad_reduce_to(g, ot_op_grad_node_name(g, node, NULL, name, sizeof name), dy[0],
                                g->nodes[node].in[0], -1, &dx[0], err);
}

/* ------------------------------------------------------------------- Tile */

/* x: (d..)  repeats: one per dim  ->  y: d * repeats */
static ot_status tile_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *x = ot_op_in(g, n, 0), *y = ot_op_out(g, n, 0);
    if (!y || !ot_op_known(x))
        return OT_OK;
    ot_op_dims d;
    ot_op_dims_of(x, &d);
    bool partial = false;
    const ot_tensor *r = ot_op_ints(g, n->in[1], &partial);
    if (r && !partial && ot_tensor_numel(r) != x->ndim)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "has %lld repeats for an input of rank %d",
                         (long long)ot_tensor_numel(r), x->ndim);
    for (int i = 0; i < d.ndim; i++) {
        int64_t k = r && !partial ? ot_tensor_get_i64(r, i) : -1;
        if (r && !partial && k < 0)
            return ot_op_err(err, OT_ERR_MODEL, g, n, "repeat %lld is negative", (long long)k);
        if (k == 1)
            continue;
        if (k < 0 || d.dims[i] < 0 || !ot_op_dim_mul(d.dims[i], k, &d.dims[i]))
            d.dims[i] = OT_DIM_DYNAMIC;
        d.names[i] = NULL;
    }
    ot_op_set(y, x->dtype, &d);
    return OT_OK;
}

/* dX = ReduceSum(Reshape(dY, (r0, d0, r1, d1, ...)), axes 0, 2, 4, ...) */
static ot_status tile_grad(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                           const bool *need_dx, ot_err *err)
{
    char name[NAME_MAX_], hint[NAME_MAX_];
    ot_status st = OT_OK;
    if (dy[0] < 0 || !need_dx[0])
        return OT_OK;
    const ot_node *n = &g->nodes[node];
    const ot_value *x = &g->values[n->in[0]];
    bool partial = false;
    const ot_tensor *r = ot_op_ints(g, n->in[1], &partial);
    int rank = x->ndim, dynamic = 0;
    if (!r || partial || rank < 0 || ot_tensor_numel(r) != rank || 2 * rank > OT_MAX_DIMS)
        return ot_op_err(err, OT_ERR_UNSUPPORTED, g, n,
                         "no gradient for a Tile of rank above %d or with repeats known only "
                         "at run time",
                         OT_MAX_DIMS / 2);
    int64_t shape[OT_MAX_DIMS], axes[OT_MAX_DIMS / 2], two = 2 * rank, na = rank;
    for (int d = 0; d < rank; d++) {
        shape[2 * d] = ot_tensor_get_i64(r, d);
        shape[2 * d + 1] = x->dims[d] >= 0 ? x->dims[d] : -1;
        dynamic += x->dims[d] < 0;
        axes[d] = 2 * d;
    }
    if (dynamic > 1)
        return ot_op_err(err, OT_ERR_UNSUPPORTED, g, n,
                         "no gradient for a Tile whose input has more than one dynamic dim");
    int32_t in[2] = { dy[0], -1 }, folded = -1;
    snprintf(hint, sizeof hint, "grad/%s/tiles", x->name);
    OT_TRY(ot_op_grad_const_i64(g, hint, &two, 1, shape, &in[1], err));
    snprintf(hint, sizeof hint, "grad/%s/tiled", g->values[g->nodes[node].in[0]].name);
    const char *n1[1] = { hint };
    OT_TRY(ot_op_grad_emit(g, &ot_op_reshape, 0,
                           ot_op_grad_node_name(g, node, "reshape", name, sizeof name), in, 2,
                           NULL, 0, n1, &folded, 1, err));
    in[0] = folded;
    snprintf(hint, sizeof hint, "grad/%s/axes", g->values[g->nodes[node].in[0]].name);
    OT_TRY(ot_op_grad_const_i64(g, hint, &na, 1, axes, &in[1], err));
    ot_attr keep = ot_op_grad_attr_int("keepdims", 0);
    snprintf(hint, sizeof hint, "grad/%s", g->values[g->nodes[node].in[0]].name);
    const char *n2[1] = { hint };
    OT_TRY(ot_op_grad_emit(g, &ot_op_reduce_sum, 0,
                           ot_op_grad_node_name(g, node, NULL, name, sizeof name), in, 2, &keep,
                           1, n2, &dx[0], 1, err));
done:
    return st;
}

/* -------------------------------------------------------- ConstantOfShape */

static const ot_attr_spec constant_of_shape_attrs[] = {
    { "value", OT_ATTR_TENSOR, NULL, NULL, 0, 0, false },
    { 0 },
};

static ot_status constant_of_shape_validate(ot_graph *g, ot_node *n, ot_err *err)
{
    const ot_attr *a = ot_node_find_attr(n, "value");
    if (a && (!a->t || ot_tensor_numel(a->t) != 1 || !a->t->data))
        return ot_op_err(err, OT_ERR_MODEL, g, n, "attribute 'value' must hold one number");
    return OT_OK;
}

/* shape: 1-D int64  ->  y: that shape, value's dtype (float by default) */
static ot_status constant_of_shape_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *s = ot_op_in(g, n, 0), *y = ot_op_out(g, n, 0);
    if (!y || !ot_op_known(s))
        return OT_OK;
    if (s->dtype != OT_DTYPE_INT64 || s->ndim != 1)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "input '%s' must be a 1-D int64 tensor",
                         s->name);
    const ot_attr *a = ot_node_find_attr(n, "value");
    ot_dtype t = a && a->t ? a->t->dtype : OT_DTYPE_FLOAT;
    ot_op_dims d;
    if (!ot_op_shape_operand(g, n, 0, false, &d))
        return OT_OK;
    const ot_tensor *c = ot_graph_const(g, n->in[0]);
    for (int64_t i = 0; c && c->data && i < ot_tensor_numel(c); i++)
        if (ot_tensor_get_i64(c, i) < 0)
            return ot_op_err(err, OT_ERR_MODEL, g, n, "dim %lld of the shape is negative",
                             (long long)i);
    ot_op_set(y, t, &d);
    return OT_OK;
}

/* ------------------------------------------------------------------ Range */

static ot_status range_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *y = ot_op_out(g, n, 0);
    const ot_value *v[3];
    for (int i = 0; i < 3; i++) {
        v[i] = ot_op_in(g, n, i);
        if (!ot_op_known(v[i]))
            return OT_OK;
        if (v[i]->ndim != 0 && !(v[i]->ndim == 1 && v[i]->dims[0] == 1))
            return ot_op_err(err, OT_ERR_MODEL, g, n, "input '%s' must be a scalar", v[i]->name);
        if (v[i]->dtype != v[0]->dtype)
            return ot_op_err(err, OT_ERR_MODEL, g, n, "inputs '%s' and '%s' differ in type",
                             v[0]->name, v[i]->name);
    }
    ot_dtype t = v[0]->dtype;
    if (t != OT_DTYPE_FLOAT && t != OT_DTYPE_DOUBLE && t != OT_DTYPE_INT16 &&
        t != OT_DTYPE_INT32 && t != OT_DTYPE_INT64)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "inputs are %s, expected float, double, "
                         "int16, int32 or int64", ot_dtype_name(t));
    ot_op_dims d = { .ndim = 1, .dims = { OT_DIM_DYNAMIC } };
    const ot_tensor *c[3];
    for (int i = 0; i < 3; i++)
        c[i] = ot_graph_const(g, n->in[i]);
    if (c[0] && c[1] && c[2]) {
        int64_t count;
        if (!ot_range_count(t, c[0], c[1], c[2], &count))
            return ot_op_err(err, OT_ERR_MODEL, g, n, "delta is 0 or the range is too long");
        d.dims[0] = count;
    }
    if (y)
        ot_op_set(y, t, &d);
    return OT_OK;
}

bool ot_range_count(ot_dtype t, const ot_tensor *start, const ot_tensor *limit,
                    const ot_tensor *delta, int64_t *count)
{
    if (!start->data || !limit->data || !delta->data || ot_tensor_numel(start) != 1 ||
        ot_tensor_numel(limit) != 1 || ot_tensor_numel(delta) != 1)
        return false;
    double n;
    if (t == OT_DTYPE_FLOAT || t == OT_DTYPE_DOUBLE) {
        double s = ot_tensor_get_f64(start, 0), l = ot_tensor_get_f64(limit, 0),
               dl = ot_tensor_get_f64(delta, 0);
        if (dl == 0 || s != s || l != l || dl != dl)
            return false;
        n = ceil((l - s) / dl);
    } else {
        int64_t s = ot_tensor_get_i64(start, 0), l = ot_tensor_get_i64(limit, 0),
                dl = ot_tensor_get_i64(delta, 0);
        if (dl == 0)
            return false;
        /* ceil((l - s) / dl) in exact integers (|l - s| < 2^63 for int32) */
        double span = (double)l - (double)s;
        if (span > 9e18 || span < -9e18)
            return false;
        int64_t num = l - s, q = num / dl;
        if (num % dl != 0 && ((num < 0) == (dl < 0)))
            q++;
        n = (double)q;
    }
    if (n < 0)
        n = 0;
    if (n > (double)((int64_t)1 << 40))
        return false;
    *count = (int64_t)n;
    return true;
}

/* -------------------------------------------------------------- ScatterND */

static ot_status check_reduction(const ot_graph *g, const ot_node *n, const ot_attr *a,
                                 ot_err *err)
{
    (void)g, (void)n;
    static const char *const ok[] = { "none", "add", "mul", "max", "min" };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (a->s_len == strlen(ok[i]) && !memcmp(a->s, ok[i], a->s_len))
            return OT_OK;
    return ot_err_set(err, OT_ERR_MODEL, "is '%.*s', expected none, add, mul, max or min",
                      (int)a->s_len, a->s);
}

static const ot_attr_spec scatter_nd_attrs[] = {
    { "reduction", OT_ATTR_STRING, "none", check_reduction, 16, 0, false },
    { 0 },
};

/* Checks indices (q dims, last k) and updates (indices[:-1] + data[k:])
   against data's shape where known. */
static ot_status scatter_nd_check(ot_graph *g, ot_node *n, const ot_value *data,
                                  const ot_value *idx, const ot_value *upd, ot_err *err)
{
    if (idx->dtype != OT_DTYPE_INT64)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "indices '%s' are %s, expected int64",
                         idx->name, ot_dtype_name(idx->dtype));
    int q = idx->ndim, r = data->ndim;
    int64_t k = q >= 1 ? idx->dims[q - 1] : -1;
    if (q < 1 || r < 1)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "data and indices must have rank 1 or more");
    if (k > r)
        return ot_op_err(err, OT_ERR_SHAPE, g, n, "indices '%s' index %lld dims of rank-%d data",
                         idx->name, (long long)k, r);
    if (k < 0 || !upd)
        return OT_OK;
    if (upd->ndim != q - 1 + r - (int)k)
        return ot_op_err(err, OT_ERR_SHAPE, g, n, "updates '%s' have rank %d, expected %d",
                         upd->name, upd->ndim, q - 1 + r - (int)k);
    for (int d = 0; d < upd->ndim; d++) {
        int64_t want = d < q - 1 ? idx->dims[d] : data->dims[k + d - (q - 1)];
        if (want >= 0 && upd->dims[d] >= 0 && want != upd->dims[d])
            return ot_op_err(err, OT_ERR_SHAPE, g, n, "updates '%s' dim %d is %lld, expected %lld",
                             upd->name, d, (long long)upd->dims[d], (long long)want);
    }
    return OT_OK;
}

static ot_status scatter_nd_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *x = ot_op_in(g, n, 0), *idx = ot_op_in(g, n, 1), *u = ot_op_in(g, n, 2);
    ot_value *y = ot_op_out(g, n, 0);
    if (!ot_op_known(x) || !ot_op_known(idx) || !ot_op_known(u))
        return OT_OK;
    if (u->dtype != x->dtype)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "updates '%s' (%s) and data '%s' (%s) differ "
                         "in type", u->name, ot_dtype_name(u->dtype), x->name,
                         ot_dtype_name(x->dtype));
    ot_status st = scatter_nd_check(g, n, x, idx, u, err);
    if (st != OT_OK)
        return st;
    if (y)
        ot_op_copy(y, x);
    return OT_OK;
}

/* reduction none: dData, dUpdates = ScatterNDGrad(dY, indices) */
static ot_status scatter_nd_grad(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                                 const bool *need_dx, ot_err *err)
{
    char name[NAME_MAX_], h0[NAME_MAX_], h2[NAME_MAX_];
    if (dy[0] < 0 || (!need_dx[0] && !need_dx[2]))
        return OT_OK;
    const ot_node *n = &g->nodes[node];
    const char *red = ot_node_attr_string(n, "reduction", "none");
    if (strcmp(red, "none"))
        return ot_op_err(err, OT_ERR_UNSUPPORTED, g, n,
                         "no gradient for a ScatterND with reduction '%s'", red);
    snprintf(h0, sizeof h0, "grad/%s", g->values[n->in[0]].name);
    snprintf(h2, sizeof h2, "grad/%s", g->values[n->in[2]].name);
    const char *names[2] = { need_dx[0] ? h0 : NULL, need_dx[2] ? h2 : NULL };
    int32_t in[2] = { dy[0], n->in[1] }, out[2] = { -1, -1 };
    ot_status st = ot_op_grad_emit(g, &ot_op_scatter_nd_grad, 0,
                                   ot_op_grad_node_name(g, node, NULL, name, sizeof name), in, 2,
                                   NULL, 0, names, out, 2, err);
    dx[0] = need_dx[0] ? out[0] : -1;
    dx[2] = need_dx[2] ? out[1] : -1;
    return st;
}

/* ------------------------------------------------------- Gather backward */

/* dX = GatherGrad(dY, indices, Shape(X)): zeros with dY's rows added at the
   indices along the axis. The indices take no gradient. */
ot_status ot_op_grad_gather(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                            const bool *need_dx, ot_err *err)
{
    char name[NAME_MAX_], hint[NAME_MAX_];
    ot_status st = OT_OK;
    if (dy[0] < 0 || !need_dx[0])
        return OT_OK;
    int32_t shape = -1;
    OT_TRY(ot_op_grad_shape_of(g, g->nodes[node].in[0], &shape, err));
    const ot_node *n = &g->nodes[node];
    int32_t in[3] = { dy[0], n->in[1], shape };
    ot_attr a = ot_op_grad_attr_int("axis", ot_node_attr_int(n, "axis", 0));
    snprintf(hint, sizeof hint, "grad/%s", g->values[n->in[0]].name);
    const char *names[1] = { hint };
    OT_TRY(ot_op_grad_emit(g, &ot_op_gather_grad, 0,
                           ot_op_grad_node_name(g, node, NULL, name, sizeof name), in, 3, &a, 1,
                           names, &dx[0], 1, err));
done:
    return st;
}

/* ------------------------------------------------ strided Slice backward */

ot_status ot_op_grad_strided_slice(ot_graph *g, int32_t node, int32_t dy, const ot_slice_axis *sa,
                                   int32_t *dx, ot_err *err)
{
    char name[NAME_MAX_], hint[NAME_MAX_];
    ot_status st = OT_OK;
    int32_t x = g->nodes[node].in[0], shape = -1;
    int r = g->values[x].ndim;
    int64_t starts[OT_MAX_DIMS], steps[OT_MAX_DIMS];
    for (int d = 0; d < r; d++)
        starts[d] = sa[d].start, steps[d] = sa[d].step;
    OT_TRY(ot_op_grad_shape_of(g, x, &shape, err));
    ot_attr a[2] = { ot_op_grad_attr_ints("starts", starts, (size_t)r),
                     ot_op_grad_attr_ints("steps", steps, (size_t)r) };
    int32_t in[2] = { dy, shape };
    snprintf(hint, sizeof hint, "grad/%s", g->values[x].name);
    const char *names[1] = { hint };
    OT_TRY(ot_op_grad_emit(g, &ot_op_slice_grad, 0,
                           ot_op_grad_node_name(g, node, NULL, name, sizeof name), in, 2, a, 2,
                           names, &dx[0], 1, err));
done:
    return st;
}

static const ot_attr_spec slice_grad_attrs[] = {
    { "starts", OT_ATTR_INTS, NULL, NULL, 0, 0, false },
    { "steps", OT_ATTR_INTS, NULL, NULL, 0, 0, false },
    { 0 },
};

/* dY, shape of X  ->  dX (dY's dtype, that shape); one start and step per dim */
static ot_status slice_grad_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *dy = ot_op_in(g, n, 0), *y = ot_op_out(g, n, 0);
    ot_op_dims d;
    if (!y || !ot_op_known(dy) || !ot_op_shape_operand(g, n, 1, false, &d))
        return OT_OK;
    size_t ns = 0, nt = 0;
    const int64_t *st = ot_node_attr_ints(n, "starts", &ns);
    const int64_t *sp = ot_node_attr_ints(n, "steps", &nt);
    if (d.ndim != dy->ndim || !st || !sp || ns != (size_t)d.ndim || nt != ns)
        return ot_op_err(err, OT_ERR_SHAPE, g, n,
                         "dY '%s', the shape and one start and step per dim must agree",
                         dy->name);
    ot_op_set(y, dy->dtype, &d);
    return OT_OK;
}

static const ot_attr_spec gather_grad_attrs[] = {
    { "axis", OT_ATTR_INT, "0", NULL, 0, 0, false },
    { 0 },
};

/* dY, indices, shape of X  ->  dX (dY's dtype, that shape) */
static ot_status gather_grad_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *dy = ot_op_in(g, n, 0), *idx = ot_op_in(g, n, 1), *y = ot_op_out(g, n, 0);
    ot_op_dims d;
    if (!y || !ot_op_known(dy) || !ot_op_known(idx) || !ot_op_shape_operand(g, n, 2, false, &d))
        return OT_OK;
    int axis;
    if (d.ndim < 1 || !ot_op_axis(ot_node_attr_int(n, "axis", 0), d.ndim, &axis) ||
        dy->ndim != d.ndim - 1 + idx->ndim)
        return ot_op_err(err, OT_ERR_SHAPE, g, n, "dY '%s' does not match the gathered shape",
                         dy->name);
    ot_op_set(y, dy->dtype, &d);
    return OT_OK;
}

/* dY, indices  ->  dData (dY's shape), dUpdates (indices[:-1] + dY[k:]) */
static ot_status scatter_nd_grad_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *dy = ot_op_in(g, n, 0), *idx = ot_op_in(g, n, 1);
    if (!ot_op_known(dy) || !ot_op_known(idx))
        return OT_OK;
    ot_status st = scatter_nd_check(g, n, dy, idx, NULL, err);
    if (st != OT_OK)
        return st;
    int q = idx->ndim;
    int64_t k = idx->dims[q - 1];
    if (ot_op_out(g, n, 0))
        ot_op_copy(ot_op_out(g, n, 0), dy);
    ot_value *du = ot_op_out(g, n, 1);
    if (!du)
        return OT_OK;
    if (k < 0)
        return ot_op_err(err, OT_ERR_SHAPE, g, n, "the last dim of indices '%s' is not known",
                         idx->name);
    ot_op_dims d = { .ndim = q - 1 + dy->ndim - (int)k };
    if (d.ndim > OT_MAX_DIMS)
        return ot_op_err(err, OT_ERR_SHAPE, g, n, "updates would have rank %d", d.ndim);
    ot_op_dims id, yd;
    ot_op_dims_of(idx, &id);
    ot_op_dims_of(dy, &yd);
    for (int i = 0; i < d.ndim; i++) {
        bool from_idx = i < q - 1;
        d.dims[i] = from_idx ? id.dims[i] : yd.dims[k + i - (q - 1)];
        d.names[i] = from_idx ? id.names[i] : yd.names[k + i - (q - 1)];
    }
    ot_op_set(du, dy->dtype, &d);
    return OT_OK;
}

/* ------------------------------------------------------------ descriptors */

static const ot_attr_spec no_attrs[] = { { 0 } };

OT_OP_DEFAULT_DESC(ot_op_split, OT_OP_SPLIT, "Split", 2, 1, 2, OT_OP_FOLD_MAX, split_attrs,
                   split_infer, split_validate, split_grad);
OT_OP_DEFAULT_DESC(ot_op_expand, OT_OP_EXPAND, "Expand", 8, 2, 2, 1, no_attrs, expand_infer, NULL,
                   expand_grad);
OT_OP_DEFAULT_DESC(ot_op_tile, OT_OP_TILE, "Tile", 6, 2, 2, 1, no_attrs, tile_infer, NULL,
                   tile_grad);
/* No gradient: generated from shapes and scalars. */
OT_OP_DEFAULT_DESC(ot_op_constant_of_shape, OT_OP_CONSTANT_OF_SHAPE, "ConstantOfShape", 9, 1, 1,
                   1, constant_of_shape_attrs, constant_of_shape_infer,
                   constant_of_shape_validate, NULL);
OT_OP_DEFAULT_DESC(ot_op_range, OT_OP_RANGE, "Range", 11, 3, 3, 1, no_attrs, range_infer, NULL,
                   NULL);
OT_OP_DEFAULT_DESC(ot_op_scatter_nd, OT_OP_SCATTER_ND, "ScatterND", 11, 3, 3, 1,
                   scatter_nd_attrs, scatter_nd_infer, NULL, scatter_nd_grad);

OT_OP_PRIVATE_NO_GRAD(ot_op_gather_grad, OT_OP_GATHER_GRAD, "GatherGrad", 3, 3, 1, 1,
                      gather_grad_attrs, gather_grad_infer, NULL);
OT_OP_PRIVATE_NO_GRAD(ot_op_slice_grad, OT_OP_SLICE_GRAD, "SliceGrad", 2, 2, 1, 1,
                      slice_grad_attrs, slice_grad_infer, NULL);
OT_OP_PRIVATE_NO_GRAD(ot_op_scatter_nd_grad, OT_OP_SCATTER_ND_GRAD, "ScatterNDGrad", 2, 2, 1, 2,
                      no_attrs, scatter_nd_grad_infer, NULL);
