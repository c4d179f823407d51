/*
 * graph.c: the IR container: values and nodes by id, the name index,
 * attribute getters and topological ordering.
 *
 * Shape inference lives in src/ops/infer.c, beside the op table it drives.
 */
#include <stdio.h>
#include <string.h>

#include "graph.h"

ot_graph *ot_graph_new(void)
{
    ot_graph *g = ot_calloc(1, sizeof *g);
    if (!g)
        return NULL;
    ot_arena_init(&g->arena, 256 * 1024);
    g->path = "";
    g->dir = NULL;
    return g;
}

void ot_graph_free(ot_graph *g)
{
    if (!g)
        return;
    for (int32_t i = 0; i < g->n_values && !g->borrows_data; i++)
        if (g->values[i].flags & OT_VAL_INIT)
            ot_free(g->values[i].data.data); /* initializer bytes are heap blocks */
    ot_free(g->values);
    ot_free(g->nodes);
    ot_free(g->name_index);
    ot_arena_fini(&g->arena);
    ot_free(g);
}

ot_status ot_graph_clone(const ot_graph *src, ot_graph **out, ot_err *err)
{
    *out = NULL;
    ot_graph *g = ot_graph_new();
    if (!g)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory cloning the graph");
    ot_arena arena = g->arena;
    *g = *src;
    g->arena = arena;
    g->borrows_data = true;
    g->values = ot_malloc(sizeof *g->values * (size_t)(src->n_values + 1));
    g->nodes = ot_malloc(sizeof *g->nodes * (size_t)(src->n_nodes + 1));
    g->name_index = ot_malloc(sizeof *g->name_index * (size_t)(src->name_index_cap + 1));
    if (!g->values || !g->nodes || !g->name_index) {
        ot_free(g->values);
        ot_free(g->nodes);
        ot_free(g->name_index);
        ot_arena_fini(&g->arena);
        ot_free(g);
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory cloning the graph");
    }
    /* a graph without nodes (or values) has NULL arrays: memcpy must not see them */
    if (src->n_values)
        memcpy(g->values, src->values, sizeof *g->values * (size_t)src->n_values);
    if (src->n_nodes)
        memcpy(g->nodes, src->nodes, sizeof *g->nodes * (size_t)src->n_nodes);
    if (src->name_index_cap)
        memcpy(g->name_index, src->name_index, sizeof *g->name_index * src->name_index_cap);
    g->cap_values = src->n_values;
    g->cap_nodes = src->n_nodes;
    *out = g;
    return OT_OK;
}

size_t ot_graph_n_nodes(const ot_graph *g) { return (size_t)g->n_nodes; }
size_t ot_graph_n_initializers(const ot_graph *g) { return (size_t)g->n_inits; }

uint64_t ot_graph_n_params(const ot_graph *g)
{
    uint64_t n = 0;
    for (int32_t i = 0; i < g->n_inits; i++) {
        const ot_value *v = &g->values[g->inits[i]];
        uint64_t numel = 1;
        if (v->ndim < 0)
            continue;
        for (int d = 0; d < v->ndim; d++)
            numel *= (uint64_t)(v->dims[d] > 0 ? v->dims[d] : 0);
        n += numel;
    }
    return n;
}

/* FNV-1a: names are short and this is not security sensitive. */
static uint32_t hash_name(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

int32_t ot_graph_find_value(const ot_graph *g, const char *name)
{
    if (!g->name_index_cap)
        return -1;
    uint32_t mask = g->name_index_cap - 1;
    for (uint32_t i = hash_name(name) & mask;; i = (i + 1) & mask) {
        int32_t id = g->name_index[i];
        if (id < 0)
            return -1;
        if (strcmp(g->values[id].name, name) == 0)
            return id;
    }
}

static bool index_grow(ot_graph *g)
{
    uint32_t cap = g->name_index_cap ? g->name_index_cap * 2 : 256;
    int32_t *idx = ot_malloc(sizeof *idx * cap);
    if (!idx)
        return false;
    memset(idx, 0xff, sizeof *idx * cap);
    for (int32_t v = 0; v < g->n_values; v++) {
        uint32_t i = hash_name(g->values[v].name) & (cap - 1);
        while (idx[i] >= 0)
            i = (i + 1) & (cap - 1);
        idx[i] = v;
    }
    ot_free(g->name_index);
    g->name_index = idx;
    g->name_index_cap = cap;
    return true;
}

ot_status ot_graph_intern_value(ot_graph *g, const char *name, int32_t *id, ot_err *err)
{
    int32_t found = ot_graph_find_value(g, name);
    if (found >= 0) {
        *id = found;
        return OT_OK;
    }
    if (g->n_values == g->cap_values) {
        int32_t cap = g->cap_values ? g->cap_values * 2 : 64;
        ot_value *nv = ot_realloc(g->values, sizeof *nv * (size_t)cap);
        if (!nv)
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory adding value '%s'", name);
        g->values = nv;
        g->cap_values = cap;
    }
    if ((uint32_t)(g->n_values + 1) * 2 > g->name_index_cap && !index_grow(g))
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory adding value '%s'", name);
    ot_value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    v->name = ot_arena_strdup(&g->arena, name);
    if (!v->name)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory adding value '%s'", name);
    v->ndim = -1;
    v->producer = -1;
    uint32_t mask = g->name_index_cap - 1;
    uint32_t i = hash_name(name) & mask;
    while (g->name_index[i] >= 0)
        i = (i + 1) & mask;
    g->name_index[i] = g->n_values;
    *id = g->n_values++;
    return OT_OK;
}

ot_status ot_graph_add_node(ot_graph *g, int32_t *id, ot_err *err)
{
    if (g->n_nodes == g->cap_nodes) {
        int32_t cap = g->cap_nodes ? g->cap_nodes * 2 : 64;
        ot_node *nn = ot_realloc(g->nodes, sizeof *nn * (size_t)cap);
        if (!nn)
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory adding a node");
        g->nodes = nn;
        g->cap_nodes = cap;
    }
    ot_node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->name = "";
    n->op_type = "";
    n->domain = "";
    *id = g->n_nodes++;
    return OT_OK;
}

bool ot_domain_is_default(const char *domain)
{
    return !domain || !domain[0] || strcmp(domain, "ai.onnx") == 0;
}

int64_t ot_graph_opset(const ot_graph *g, const char *domain)
{
    bool dflt = ot_domain_is_default(domain);
    for (int32_t i = 0; i < g->n_opsets; i++) {
        const char *d = g->opsets[i].domain;
        if (dflt ? ot_domain_is_default(d) : strcmp(d, domain) == 0)
            return g->opsets[i].version;
    }
    return 0;
}

const char *ot_attr_type_name(ot_attr_type t)
{
    static const char *const names[] = {
        "undefined", "float", "int", "string", "tensor", "graph", "floats", "ints",
        "strings", "tensors", "graphs", "sparse_tensor", "sparse_tensors", "type_proto",
        "type_protos",
    };
    if ((unsigned)t < sizeof names / sizeof names[0])
        return names[t];
    return "unknown";
}

const ot_attr *ot_node_find_attr(const ot_node *n, const char *name)
{
    for (int i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0)
            return &n->attrs[i];
    return NULL;
}

int64_t ot_node_attr_int(const ot_node *n, const char *name, int64_t def)
{
    const ot_attr *a = ot_node_find_attr(n, name);
    return a && a->type == OT_ATTR_INT ? a->i : def;
}

float ot_node_attr_float(const ot_node *n, const char *name, float def)
{
    const ot_attr *a = ot_node_find_attr(n, name);
    return a && a->type == OT_ATTR_FLOAT ? a->f : def;
}

const char *ot_node_attr_string(const ot_node *n, const char *name, const char *def)
{
    const ot_attr *a = ot_node_find_attr(n, name);
    return a && a->type == OT_ATTR_STRING ? a->s : def;
}

const int64_t *ot_node_attr_ints(const ot_node *n, const char *name, size_t *n_out)
{
    const ot_attr *a = ot_node_find_attr(n, name);
    if (!a || a->type != OT_ATTR_INTS) {
        *n_out = 0;
        return NULL;
    }
    *n_out = a->n;
    return a->ints;
}

const ot_tensor *ot_graph_const(const ot_graph *g, int32_t value)
{
    if (value < 0 || value >= g->n_values)
        return NULL;
    const ot_value *v = &g->values[value];
    if (!(v->flags & OT_VAL_CONST) || (v->flags & OT_VAL_OPAQUE))
        return NULL;
    return &v->data;
}

bool ot_value_same_dims(const ot_value *a, const ot_value *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->dims[i] != b->dims[i])
            return false;
    return true;
}

void ot_value_shape_str(const ot_value *v, char *buf, size_t n)
{
    if (n == 0)
        return;
    if (v->ndim < 0) {
        snprintf(buf, n, "?");
        return;
    }
    size_t len = 0;
    buf[0] = '\0';
    len += (size_t)snprintf(buf + len, n - len, "[");
    for (int i = 0; i < v->ndim && len < n; i++) {
        const char *sep = i ? "," : "";
        if (v->dims[i] >= 0)
            len += (size_t)snprintf(buf + len, n - len, "%s%lld", sep, (long long)v->dims[i]);
        else if (v->dim_names[i])
            len += (size_t)snprintf(buf + len, n - len, "%s%s", sep, v->dim_names[i]);
        else
            len += (size_t)snprintf(buf + len, n - len, "%s?", sep);
    }
    if (len < n)
        snprintf(buf + len, n - len, "]");
}

const char *ot_node_label(const ot_graph *g, const ot_node *n, char *buf, size_t size)
{
    if (n->name && n->name[0])
        snprintf(buf, size, "node '%s' (%s)", n->name, n->op_type);
    else
        snprintf(buf, size, "node #%d (%s)", (int)(n - g->nodes), n->op_type);
    return buf;
}

/*
 * Topological sort (Kahn's algorithm, stable: among ready nodes the one that
 * came first in the file goes first, so a valid file keeps its order).
 */
ot_status ot_graph_sort(ot_graph *g, ot_err *err)
{
    ot_status st = OT_OK;
    int32_t N = g->n_nodes;
    int32_t *producer = NULL, *pending = NULL, *order = NULL, *heap = NULL;
    int32_t *succ_start = NULL, *succ = NULL;
    ot_node *sorted = NULL;
    char label[600];

    producer = ot_malloc(sizeof *producer * (size_t)(g->n_values + 1));
    pending = ot_calloc((size_t)N + 1, sizeof *pending);
    order = ot_malloc(sizeof *order * ((size_t)N + 1));
    heap = ot_malloc(sizeof *heap * ((size_t)N + 1));
    succ_start = ot_calloc((size_t)N + 2, sizeof *succ_start);
    if (!producer || !pending || !order || !heap || !succ_start)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory sorting nodes");

    for (int32_t v = 0; v < g->n_values; v++)
        producer[v] = -1;
    /* producers: each value at most once, and never an input or initializer */
    for (int32_t i = 0; i < N; i++) {
        const ot_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_out; k++) {
            int32_t v = n->out[k];
            if (v < 0)
                continue;
            const ot_value *val = &g->values[v];
            if (producer[v] >= 0)
                OT_FAIL(err, OT_ERR_MODEL, "%s: output '%s' is already produced by %s",
                        ot_node_label(g, n, label, sizeof label), val->name,
                        g->nodes[producer[v]].name[0] ? g->nodes[producer[v]].name : "another node");
            if (val->flags & (OT_VAL_INPUT | OT_VAL_INIT))
                OT_FAIL(err, OT_ERR_MODEL, "%s: output '%s' is also a graph %s",
                        ot_node_label(g, n, label, sizeof label), val->name,
                        val->flags & OT_VAL_INIT ? "initializer" : "input");
            producer[v] = i;
        }
    }
    /* edges: producer -> consumer, counted per input occurrence */
    size_t n_edges = 0;
    for (int32_t i = 0; i < N; i++) {
        const ot_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++) {
            int32_t v = n->in[k];
            if (v < 0)
                continue;
            const ot_value *val = &g->values[v];
            if (producer[v] < 0) {
                if (!(val->flags & (OT_VAL_INPUT | OT_VAL_INIT)))
                    OT_FAIL(err, OT_ERR_MODEL,
                            "%s: input '%s' is not defined (no graph input, initializer or "
                            "node output has that name)",
                            ot_node_label(g, n, label, sizeof label), val->name);
                continue;
            }
            succ_start[producer[v] + 1]++;
            pending[i]++;
            n_edges++;
        }
    }
    for (int32_t i = 0; i < N; i++)
        succ_start[i + 1] += succ_start[i];
    succ = ot_malloc(sizeof *succ * (n_edges + 1));
    if (!succ)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory sorting nodes");
    {
        int32_t *fill = heap; /* reuse as a cursor array */
        for (int32_t i = 0; i < N; i++)
            fill[i] = succ_start[i];
        for (int32_t i = 0; i < N; i++) {
            const ot_node *n = &g->nodes[i];
            for (int k = 0; k < n->n_in; k++) {
                int32_t v = n->in[k];
                if (v >= 0 && producer[v] >= 0)
                    succ[fill[producer[v]]++] = i;
            }
        }
    }
    /* min-heap of ready node indices */
    int32_t n_heap = 0, n_order = 0;
    for (int32_t i = 0; i < N; i++)
        if (pending[i] == 0)
            heap[n_heap++] = i; /* increasing, so already a heap */
    while (n_heap > 0) {
        int32_t top = heap[0];
        heap[0] = heap[--n_heap];
        for (int32_t p = 0;;) { /* sift down */
            int32_t l = 2 * p + 1, r = l + 1, m = p;
            if (l < n_heap && heap[l] < heap[m])
                m = l;
            if (r < n_heap && heap[r] < heap[m])
                m = r;
            if (m == p)
                break;
            int32_t t = heap[p];
            heap[p] = heap[m];
            heap[m] = t;
            p = m;
        }
        order[n_order++] = top;
        for (int32_t e = succ_start[top]; e < succ_start[top + 1]; e++) {
            int32_t c = succ[e];
            if (--pending[c] == 0) {
                int32_t p = n_heap++;
                heap[p] = c;
                while (p > 0 && heap[(p - 1) / 2] > heap[p]) { /* sift up */
                    int32_t t = heap[p];
                    heap[p] = heap[(p - 1) / 2];
                    heap[(p - 1) / 2] = t;
                    p = (p - 1) / 2;
                }
            }
        }
    }
    if (n_order < N) {
        int32_t first = -1;
        for (int32_t i = 0; i < N; i++)
            if (pending[i] > 0) {
                first = i;
                break;
            }
        OT_ASSERT(first >= 0);
        OT_FAIL(err, OT_ERR_MODEL, "the graph has a cycle through %s (%d nodes on or after it)",
                ot_node_label(g, &g->nodes[first], label, sizeof label), (int)(N - n_order));
    }
    bool in_order = true;
    for (int32_t i = 0; i < N; i++)
        if (order[i] != i)
            in_order = false;
    if (!in_order) {
        ot_log(OT_LOG_INFO, "%s: nodes were not in topological order; sorted", g->path);
        sorted = ot_malloc(sizeof *sorted * ((size_t)N + 1));
        if (!sorted)
            OT_FAIL(err, OT_ERR_NOMEM, "out of memory sorting nodes");
        for (int32_t i = 0; i < N; i++)
            sorted[i] = g->nodes[order[i]];
        memcpy(g->nodes, sorted, sizeof *sorted * (size_t)N);
    }
    for (int32_t v = 0; v < g->n_values; v++)
        g->values[v].producer = -1;
    for (int32_t i = 0; i < N; i++) {
        const ot_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_out; k++)
            if (n->out[k] >= 0)
                g->values[n->out[k]].producer = i;
    }
done:
    ot_free(producer);
    ot_free(pending);
    ot_free(order);
    ot_free(heap);
    ot_free(succ_start);
    ot_free(succ);
    ot_free(sorted);
    return st;
}

void ot_graph_mark_ancestors(const ot_graph *g, const int32_t *targets, int n_targets, bool *keep)
{
    for (int t = 0; t < n_targets; t++)
        if (targets[t] >= 0 && g->values[targets[t]].producer >= 0)
            keep[g->values[targets[t]].producer] = true;
    for (int32_t i = g->n_nodes - 1; i >= 0; i--) { /* topological order: one sweep */
        if (!keep[i])
            continue;
        const ot_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0 && g->values[n->in[k]].producer >= 0)
                keep[g->values[n->in[k]].producer] = true;
    }
}

ot_status ot_graph_keep_nodes(ot_graph *g, const bool *keep, ot_err *err)
{
    int32_t n = 0;
    for (int32_t i = 0; i < g->n_nodes; i++)
        if (keep[i])
            g->nodes[n++] = g->nodes[i];
    g->n_nodes = n;
    for (int32_t v = 0; v < g->n_values; v++)
        g->values[v].producer = -1;
    return ot_graph_sort(g, err);
}
