/*
 * simplify.c: `--simplify`. Repeats, until nothing changes:
 *
 *   - constant folding: a node whose every output shape inference evaluated
 *     (Constant; Shape of a static shape; the Gather, Concat, Unsqueeze,
 *     Squeeze, Slice, Cast ... chains over such values that PyTorch exports
 *     write, src/ops/shape_ops.c) becomes initializers of the same names; so
 *     does a float32 node whose inputs are all constant when its result is
 *     exact IEEE arithmetic or element movement (converters/fold_float.c:
 *     Add, Sub, Mul, Div, Neg, Abs, Sqrt, Reciprocal, Relu, Transpose,
 *     Concat, Reshape ...);
 *   - pass-through nodes: Identity; Dropout in inference (no mask read, no
 *     constant training_mode true); a Reshape whose output shape is its
 *     input's (static dims, or dynamic ones of the same symbol); a Reshape
 *     of a Reshape reads the first one's input; a Transpose whose perm keeps the order; a Cast to the
 *     type its input already has. Their readers read the input instead;
 *   - dead nodes: those no graph output depends on;
 *   - initializers that nothing reads (and their graph-input listing).
 *
 * Graph input and output names stay: when a removed node wrote a graph
 * output, the node before it writes that name instead; a pass-through from
 * a graph input (or initializer) straight to a graph output is kept. Running
 * it on its own output changes nothing (tests/cli/test_convert.sh checks the
 * bytes). Float ops whose last bits depend on the runtime (Exp, Tanh,
 * MatMul, reductions ...) are left for it.
 */
#include <string.h>

#include "converters/edit.h"
#include "ops/ops.h"

/* Whether every output of n is a constant shape inference computed. */
static bool all_const(const ot_graph *g, const ot_node *n)
{
    if (!n->op || n->n_out < 1)
        return false;
    for (int k = 0; k < n->n_out; k++)
        if (n->out[k] < 0 || !ot_graph_const(g, n->out[k]) || cv_is_output(g, n->out[k]))
            return false;
    return true;
}

/* Same dtype and shape: static dims equal, dynamic ones of the same symbol. */
static bool same_shape(const ot_value *a, const ot_value *b)
{
    if (a->ndim < 0 || a->ndim > OT_MAX_DIMS || a->ndim != b->ndim || a->dtype != b->dtype)
        return false;
    for (int i = 0; i < a->ndim; i++) {
        if (a->dims[i] != b->dims[i])
            return false;
        if (a->dims[i] < 0 &&
            (!a->dim_names[i] || !b->dim_names[i] || strcmp(a->dim_names[i], b->dim_names[i])))
            return false;
    }
    return true;
}

/* Reshape(Reshape(x, a), b) reads x directly when the inner one has no
   other reader and b has no 0 (copy) entry, which would read the inner
   shape. Returns whether it rewired node i. */
static bool skip_inner_reshape(ot_graph *g, int32_t i, const int *uses)
{
    const ot_node *n = &g->nodes[i];
    if (!ot_node_is(n, OT_OP_RESHAPE) || n->n_in < 2 || n->in[0] < 0)
        return false;
    int32_t mid = n->in[0], p = g->values[mid].producer;
    if (p < 0 || !ot_node_is(&g->nodes[p], OT_OP_RESHAPE) || uses[mid] != 1 ||
        g->nodes[p].in[0] < 0)
        return false;
    const ot_tensor *t = ot_graph_const(g, n->in[1]);
    if (!t || t->dtype != OT_DTYPE_INT64 || ot_node_attr_int(n, "allowzero", 0) != 0)
        return false;
    for (size_t k = 0; k < t->bytes / 8; k++) {
        int64_t e;
        memcpy(&e, (const char *)t->data + 8 * k, 8);
        if (e == 0)
            return false;
    }
    g->nodes[i].in[0] = g->nodes[p].in[0];
    g->nodes[i].flags |= OT_NODE_DIRTY;
    return true;
}

/* The input that node n passes through unchanged as its output 0, or -1. */
static int32_t pass_through(const ot_graph *g, const ot_node *n, const int *uses)
{
    if (n->n_in < 1 || n->in[0] < 0 || n->n_out < 1 || n->out[0] < 0)
        return -1;
    int32_t x = n->in[0];
    for (int k = 1; k < n->n_out; k++) /* extra outputs must be unused */
        if (n->out[k] >= 0 && uses[n->out[k]] > 0)
            return -1;
    const ot_value *xv = &g->values[x], *yv = &g->values[n->out[0]];
    if (ot_node_is(n, OT_OP_IDENTITY))
        return x;
    if (ot_node_is(n, OT_OP_DROPOUT)) {
        if (n->n_in > 2 && n->in[2] >= 0) {
            const ot_tensor *t = ot_graph_const(g, n->in[2]);
            if (!t || t->bytes < 1 || ((const uint8_t *)t->data)[0] != 0)
                return -1; /* training mode, or not known to be off */
        }
        return x;
    }
    if (ot_node_is(n, OT_OP_RESHAPE))
        return same_shape(xv, yv) ? x : -1;
    if (ot_node_is(n, OT_OP_TRANSPOSE)) {
        size_t np;
        const int64_t *perm = ot_node_attr_ints(n, "perm", &np);
        if (!perm)
            return xv->ndim >= 0 && xv->ndim <= 1 ? x : -1;
        for (size_t i = 0; i < np; i++)
            if (perm[i] != (int64_t)i)
                return -1;
        return x;
    }
    if (n->op_type && strcmp(n->op_type, "Cast") == 0 && ot_domain_is_default(n->domain) &&
        xv->dtype != OT_DTYPE_UNDEFINED &&
        ot_node_attr_int(n, "to", -1) == (int64_t)xv->dtype)
        return x;
    return -1;
}

/* One sweep; *changed says whether it did anything. */
static ot_status sweep(ot_graph *g, bool *changed, int *n_folded, int *n_float,
                       int *n_bypassed, int *n_dead, int *n_inits, ot_err *err)
{
    ot_status st = OT_OK;
    int *uses = cv_count_uses(g);
    bool *keep = ot_malloc(sizeof *keep * ((size_t)g->n_nodes + 1));
    int32_t *targets = ot_malloc(sizeof *targets * ((size_t)g->n_outputs + 1));
    *changed = false;
    if (!uses || !keep || !targets)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    int32_t n_nodes = g->n_nodes;
    for (int32_t i = 0; i < n_nodes; i++)
        keep[i] = true;

    for (int32_t i = 0; i < n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        if (all_const(g, n)) {
            int n_out = n->n_out;
            for (int k = 0; k < n_out; k++)
                OT_TRY(cv_make_init(g, g->nodes[i].out[k], err));
            keep[i] = false;
            (*n_folded)++;
            *changed = true;
            continue;
        }
        float *fv;
        size_t fb;
        int fr;
        int64_t fd[OT_MAX_DIMS];
        if (n->n_out == 1 && n->out[0] >= 0 && !cv_is_output(g, n->out[0]) &&
            cv_fold_float(g, n, &fv, &fb, &fr, fd)) {
            OT_TRY(cv_make_init_from(g, g->nodes[i].out[0], OT_DTYPE_FLOAT, fr, fd, fv, fb,
                                     err));
            keep[i] = false;
            (*n_float)++;
            *changed = true;
            continue;
        }
        if (skip_inner_reshape(g, i, uses)) {
            (*n_bypassed)++;
            *changed = true;
            continue;
        }
        int32_t x = pass_through(g, n, uses);
        if (x < 0)
            continue;
        int32_t y = n->out[0];
        if (cv_is_output(g, y)) {
            /* the node before writes y instead, when x is its own value */
            int32_t p = g->values[x].producer;
            if (p < 0 || cv_is_output(g, x) || !keep[p])
                continue;
            ot_node *pn = &g->nodes[p];
            int32_t *outs = ot_arena_alloc(&g->arena, sizeof *outs * (size_t)pn->n_out);
            if (!outs)
                OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
            for (int k = 0; k < pn->n_out; k++)
                outs[k] = pn->out[k] == x ? y : pn->out[k];
            OT_TRY(cv_set_outputs(g, p, outs, pn->n_out, err));
            g->values[y].producer = p;
            g->values[x].producer = -1;
            keep[i] = false;
            cv_replace_uses(g, x, y);
        } else {
            keep[i] = false;
            cv_replace_uses(g, y, x);
        }
        /* counts for later nodes: the bypassed node no longer reads x */
        uses[x] += uses[y] - 1;
        (*n_bypassed)++;
        *changed = true;
    }

    /* dead nodes: what no graph output depends on */
    bool *live = ot_calloc((size_t)g->n_nodes + 1, sizeof *live);
    if (!live)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < g->n_outputs; i++)
        targets[i] = g->outputs[i].value;
    ot_graph_mark_ancestors(g, targets, g->n_outputs, live);
    int dead = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        if (keep[i] && !live[i]) {
            keep[i] = false;
            dead++;
        }
    }
    ot_free(live);
    if (dead) {
        *changed = true;
        *n_dead += dead;
    }
    if (*changed)
        OT_TRY(cv_keep_nodes(g, keep, err));
    int dropped = cv_drop_unused_inits(g);
    if (dropped) {
        *changed = true;
        *n_inits += dropped;
    }
    if (*changed)
        OT_TRY(cv_refresh(g, err));
done:
    ot_free(uses);
    ot_free(keep);
    ot_free(targets);
    return st;
}

ot_status ot_convert_simplify(ot_graph *g, const ot_convert_opts *opts, ot_err *err)
{
    (void)opts;
    int n_folded = 0, n_float = 0, n_bypassed = 0, n_dead = 0, n_inits = 0;
    for (int round = 0; round < 64; round++) {
        bool changed;
        ot_status st = sweep(g, &changed, &n_folded, &n_float, &n_bypassed, &n_dead, &n_inits,
                             err);
        if (st != OT_OK)
            return st;
        if (!changed)
            break;
    }
    ot_log(OT_LOG_INFO, "--simplify: %d nodes folded into constants (%d of them float "
           "arithmetic), %d pass-through nodes removed, %d dead nodes removed, %d unused "
           "initializers removed", n_folded + n_float, n_float, n_bypassed, n_dead, n_inits);
    return OT_OK;
}
