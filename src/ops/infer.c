/*
 * infer.c: shape inference over a sorted graph (ot_graph_infer_shapes).
 *
 * Each node's op computes its outputs from its inputs (op->infer); this file
 * merges that with what the file declared (value_info, graph outputs): what
 * inference leaves unknown keeps the declaration, a declared static dim wins
 * over an inferred dynamic one, and two static dims that differ are an error.
 * Opaque nodes (no op) keep their outputs as declared.
 *
 * It does not check attributes (table.c, ot_op_check_node) and does not
 * evaluate anything beyond the small integer folding the ops do and the
 * integer arithmetic of ot_op_fold_ints (fold.c).
 */
#include <string.h>

#include "ops/op_util.h"

/* What the file said about one output before inference ran. */
typedef struct declared {
    ot_dtype dtype;
    ot_op_dims dims;
} declared;

#define MAX_OUTS 16

static ot_status merge(ot_graph *g, const ot_node *n, ot_value *v, const declared *dc,
                       ot_err *err)
{
    if (dc->dtype != OT_DTYPE_UNDEFINED) {
        if (v->dtype == OT_DTYPE_UNDEFINED)
            v->dtype = dc->dtype;
        else if (v->dtype != dc->dtype)
            return ot_op_err(err, OT_ERR_SHAPE, g, n, "output '%s' inferred as %s, declared %s",
                             v->name, ot_dtype_name(v->dtype), ot_dtype_name(dc->dtype));
    }
    if (dc->dims.ndim < 0)
        return OT_OK;
    if (v->ndim < 0) {
        ot_op_set(v, v->dtype, &dc->dims);
        return OT_OK;
    }
    ot_op_dims inf;
    ot_op_dims_of(v, &inf);
    bool conflict = inf.ndim != dc->dims.ndim;
    for (int i = 0; i < inf.ndim && !conflict; i++) {
        int64_t a = inf.dims[i], b = dc->dims.dims[i];
        if (a >= 0 && b >= 0 && a != b)
            conflict = true;
        else if (a < 0 && b >= 0)
            inf.dims[i] = b, inf.names[i] = NULL;
        else if (a < 0 && b < 0 && dc->dims.names[i])
            inf.names[i] = dc->dims.names[i];
    }
    if (conflict) {
        char si[200], sd[200];
        ot_op_dims_str(&inf, si, sizeof si);
        ot_op_dims_str(&dc->dims, sd, sizeof sd);
        return ot_op_err(err, OT_ERR_SHAPE, g, n, "output '%s' inferred as %s, declared %s",
                         v->name, si, sd);
    }
    ot_op_set(v, v->dtype, &inf);
    return OT_OK;
}

/* An inferred shape must have a size that fits: the product of its static dims
   (zeros left out, so that a zero cannot hide an overflow that a later
   Reshape or Flatten would meet) times the element size, in int64 and size_t.
   Hostile attributes (pads, a Reshape target) can otherwise ask for more. */
static ot_status check_size(ot_graph *g, const ot_node *n, const ot_value *v, ot_err *err)
{
    if (v->ndim < 0)
        return OT_OK;
    size_t esize = ot_dtype_size(v->dtype);
    int64_t numel = 1, bytes;
    bool fits = true;
    for (int i = 0; i < v->ndim && fits; i++)
        if (v->dims[i] > 0)
            fits = ot_op_i64_mul(numel, v->dims[i], &numel);
    fits = fits && ot_op_i64_mul(numel, esize ? (int64_t)esize : 1, &bytes) &&
           (uint64_t)bytes <= SIZE_MAX;
    if (fits)
        return OT_OK;
    char shape[200];
    ot_value_shape_str(v, shape, sizeof shape);
    return ot_op_err(err, OT_ERR_SHAPE, g, n,
                     "output '%s' would have shape %s, whose size overflows", v->name, shape);
}

ot_status ot_graph_infer_shapes(ot_graph *g, ot_err *err)
{
    ot_status st = OT_OK;
    declared dc[MAX_OUTS];
    for (int32_t k = 0; k < g->n_nodes; k++) {
        ot_node *n = &g->nodes[k];
        if (!n->op || !n->op->infer)
            continue;
        if (n->n_out > MAX_OUTS)
            return ot_op_err(err, OT_ERR_MODEL, g, n, "has %d outputs, at most %d supported",
                             n->n_out, MAX_OUTS);
        /* remember declarations, then start the outputs from unknown */
        for (int i = 0; i < n->n_out; i++) {
            ot_value *v = ot_op_out(g, n, i);
            if (!v)
                continue;
            /* only what the file declared counts; earlier inference does not */
            bool declared_by_file = (v->flags & OT_VAL_SHAPE_DECLARED) != 0;
            dc[i].dtype = declared_by_file ? v->dtype : OT_DTYPE_UNDEFINED;
            if (declared_by_file && v->ndim >= 0 && v->ndim <= OT_MAX_DIMS)
                ot_op_dims_of(v, &dc[i].dims);
            else
                dc[i].dims.ndim = -1;
            v->dtype = OT_DTYPE_UNDEFINED;
            v->ndim = -1;
            if (!(v->flags & OT_VAL_INIT)) {
                v->flags &= ~(uint32_t)OT_VAL_CONST;
                memset(&v->data, 0, sizeof v->data);
            }
        }
        st = n->op->infer(g, n, err);
        if (st != OT_OK) { /* leave the outputs as declared */
            for (int i = 0; i < n->n_out; i++) {
                ot_value *v = ot_op_out(g, n, i);
                if (v) {
                    ot_op_set(v, dc[i].dtype, &dc[i].dims);
                    v->ndim = dc[i].dims.ndim;
                }
            }
            return st;
        }
        /* an output rank past OT_MAX_DIMS stays unknown */
        for (int i = 0; i < n->n_out; i++) {
            ot_value *v = ot_op_out(g, n, i);
            if (!v)
                continue;
            if (v->ndim > OT_MAX_DIMS)
                v->ndim = -1;
            OT_TRY(merge(g, n, v, &dc[i], err));
            OT_TRY(check_size(g, n, v, err));
        }
        OT_TRY(ot_op_fold_ints(g, n, err));
    }
done:
    return st;
}
