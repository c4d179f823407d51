/*
 * head.c: classifier-head detection (see head.h for the forms recognised).
 *
 * The walk follows the first input of each trailing op back from the first
 * graph output. Every id read from the graph is range-checked, and the walk
 * takes at most n_nodes steps, so a malformed graph cannot make it loop.
 *
 * It does not check dtypes, or that the head's output feeds nothing else: a
 * caller that rewrites the head (swap-head) checks what it needs.
 */
#include <string.h>

#include "passes/head.h"

/* The ops a head may hide behind: they reshape, normalise or pool, but do not
   mix the class dimension with anything else. Input 0 carries the logits. */
static const char *const trailing_ops[] = {
    "Softmax", "LogSoftmax", "Identity",          "Flatten",     "Reshape",
    "Squeeze", "Dropout",    "GlobalAveragePool", "AveragePool", "Relu",
};

static bool op_is(const ot_node *n, const char *type)
{
    return n->op_type && ot_domain_is_default(n->domain) && strcmp(n->op_type, type) == 0;
}

static bool is_trailing(const ot_node *n)
{
    for (size_t i = 0; i < sizeof trailing_ops / sizeof trailing_ops[0]; i++)
        if (op_is(n, trailing_ops[i]))
            return true;
    return false;
}

static bool value_in_range(const ot_graph *g, int32_t id)
{
    return id >= 0 && id < g->n_values;
}

/* Input i of a node, or -1 when absent or omitted. */
static int32_t node_in(const ot_node *n, int i)
{
    return i < n->n_in && n->in ? n->in[i] : -1;
}

/* The shape of an initializer whose dims are all known. Initializers carry
   their shape in `data` (hand-built graphs may set only that) and, once
   imported, in dims as well. False when `id` is not a usable initializer. */
static bool init_shape(const ot_graph *g, int32_t id, int *ndim, const int64_t **dims)
{
    if (!value_in_range(g, id))
        return false;
    const ot_value *v = &g->values[id];
    if (!(v->flags & OT_VAL_INIT) || (v->flags & OT_VAL_OPAQUE))
        return false;
    if (v->ndim >= 1 && v->ndim <= OT_MAX_DIMS) {
        bool known = true;
        for (int i = 0; i < v->ndim; i++)
            if (v->dims[i] < 0)
                known = false;
        if (known) {
            *ndim = v->ndim;
            *dims = v->dims;
            return true;
        }
    }
    if (v->data.ndim < 0 || v->data.ndim > OT_MAX_DIMS)
        return false;
    for (int i = 0; i < v->data.ndim; i++)
        if (v->data.dims[i] < 0)
            return false;
    *ndim = v->data.ndim;
    *dims = v->data.dims;
    return true;
}

/* Gemm: y = A B + C with B an initializer of rank 2. */
static void try_gemm(const ot_graph *g, int32_t node_id, ot_head *head)
{
    const ot_node *n = &g->nodes[node_id];
    int ndim;
    const int64_t *w;
    if (!init_shape(g, node_in(n, 1), &ndim, &w) || ndim != 2)
        return;
    bool trans_b = ot_node_attr_int(n, "transB", 0) != 0;
    head->node = node_id;
    head->kind = "Gemm";
    head->weight = n->in[1];
    head->in_features = trans_b ? w[1] : w[0];   /* B: [out,in] or [in,out] */
    head->out_features = trans_b ? w[0] : w[1];
    head->bias = node_in(n, 2);
    head->found = true;
}

/* MatMul: y = x W with W an initializer [in,out]. */
static bool matmul_weight(const ot_graph *g, const ot_node *n, int64_t *in, int64_t *out)
{
    int ndim;
    const int64_t *w;
    if (!init_shape(g, node_in(n, 1), &ndim, &w) || ndim != 2)
        return false;
    *in = w[0];
    *out = w[1];
    return true;
}

static void try_matmul(const ot_graph *g, int32_t node_id, ot_head *head)
{
    const ot_node *n = &g->nodes[node_id];
    if (!matmul_weight(g, n, &head->in_features, &head->out_features))
        return;
    head->node = node_id;
    head->kind = "MatMul";
    head->weight = n->in[1];
    head->found = true;
}

/* Add(MatMul(x, W), b) or Add(b, MatMul(x, W)), b an initializer whose last
   dim is the number of classes. */
static void try_matmul_add(const ot_graph *g, int32_t add_id, ot_head *head)
{
    const ot_node *add = &g->nodes[add_id];
    if (add->n_in != 2)
        return;
    for (int side = 0; side < 2; side++) {
        int32_t x = node_in(add, side), b = node_in(add, 1 - side);
        if (!value_in_range(g, x))
            continue;
        int32_t p = g->values[x].producer;
        if (p < 0 || p >= g->n_nodes || !op_is(&g->nodes[p], "MatMul"))
            continue;
        int64_t in, out;
        if (!matmul_weight(g, &g->nodes[p], &in, &out))
            continue;
        int ndim;
        const int64_t *bd;
        if (!init_shape(g, b, &ndim, &bd) || ndim < 1 || bd[ndim - 1] != out)
            continue;
        head->node = p;
        head->bias_node = add_id;
        head->kind = "MatMul+Add";
        head->in_features = in;
        head->out_features = out;
        head->weight = g->nodes[p].in[1];
        head->bias = b;
        head->found = true;
        return;
    }
}

/* Conv with an initializer weight [out,in,1,1] (or 1 in every spatial dim of
   a 1-D or 3-D kernel) and a single group. */
static void try_conv(const ot_graph *g, int32_t node_id, ot_head *head)
{
    const ot_node *n = &g->nodes[node_id];
    int ndim;
    const int64_t *w;
    if (!init_shape(g, node_in(n, 1), &ndim, &w) || ndim < 3)
        return;
    for (int i = 2; i < ndim; i++)
        if (w[i] != 1)
            return;
    if (ot_node_attr_int(n, "group", 1) != 1)
        return;
    head->node = node_id;
    head->kind = "Conv1x1";
    head->weight = n->in[1];
    head->in_features = w[1];
    head->out_features = w[0];
    head->bias = node_in(n, 2);
    head->found = true;
}

ot_status ot_pass_find_head(const ot_graph *g, ot_head *head, ot_err *err)
{
    ot_status st = OT_OK;
    if (!head)
        return ot_err_set(err, OT_ERR_ARG, "find head: no result to fill");
    *head = (ot_head){ .node = -1, .bias_node = -1, .weight = -1, .bias = -1 };
    if (!g)
        OT_FAIL(err, OT_ERR_ARG, "find head: no graph");
    if (g->n_outputs < 1)
        goto done;

    int32_t v = g->outputs[0].value;
    for (int32_t step = 0; step <= g->n_nodes; step++) {
        if (v == -1)
            goto done;
        if (!value_in_range(g, v))
            OT_FAIL(err, OT_ERR_MODEL, "find head: value id %d out of range", (int)v);
        int32_t p = g->values[v].producer;
        if (p < 0)
            goto done; /* a graph input or an initializer: no node to look at */
        if (p >= g->n_nodes)
            OT_FAIL(err, OT_ERR_MODEL, "find head: value '%s' has producer %d out of range",
                    g->values[v].name ? g->values[v].name : "", (int)p);
        const ot_node *n = &g->nodes[p];
        if (n->n_out < 1 || !n->out || n->out[0] != v)
            goto done; /* a secondary output (Dropout's mask): not the logits */
        if (is_trailing(n)) {
            v = node_in(n, 0);
            continue;
        }
        if (op_is(n, "Gemm"))
            try_gemm(g, p, head);
        else if (op_is(n, "Add"))
            try_matmul_add(g, p, head);
        else if (op_is(n, "MatMul"))
            try_matmul(g, p, head);
        else if (op_is(n, "Conv"))
            try_conv(g, p, head);
        goto done;
    }

done:
    if (!head->found)
        *head = (ot_head){ .node = -1, .bias_node = -1, .weight = -1, .bias = -1 };
    return st;
}
