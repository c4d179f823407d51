/*
 * test_head.c: classifier-head detection (src/passes/head.c) on hand-built
 * graphs: Gemm with transB 1 and 0, MatMul+Add (bias on either side), a bare
 * MatMul, Flatten -> Gemm -> Softmax, a SqueezeNet-style Conv1x1 -> Relu ->
 * GlobalAveragePool -> Flatten -> Softmax tail, and graphs that have no head
 * (3x3 conv, grouped 1x1 conv, computed weights, residual Add, an op the walk
 * does not pass, no outputs).
 *
 * Nodes carry op_type only (op NULL): detection must not need the op table.
 * Weights are initializers whose shape is in v->data, as the brief for
 * hand-built graphs says; one test also sets the declared shape instead.
 */
#include <string.h>

#include "graph/graph.h"
#include "passes/head.h"
#include "test.h"

/* A graph under construction; helpers do nothing once one has failed. */
typedef struct builder {
    ot_graph *g;
    ot_err err;
    bool failed;
} builder;

static void b_init(builder *b)
{
    ot_err_init(&b->err);
    b->g = ot_graph_new();
    b->failed = b->g == NULL;
    if (b->failed)
        snprintf(b->err.msg, sizeof b->err.msg, "ot_graph_new failed");
}

static int32_t act(builder *b, const char *name)
{
    int32_t id = -1;
    if (!b->failed && ot_graph_intern_value(b->g, name, &id, &b->err) != OT_OK)
        b->failed = true;
    return id;
}

/* A float initializer of the given shape, with no bytes (detection reads only
   shapes). `declared` also fills the value's own dims, as the importer does. */
static int32_t init_shaped(builder *b, const char *name, int ndim, const int64_t *dims,
                           bool declared)
{
    int32_t id = act(b, name);
    if (b->failed)
        return -1;
    ot_value *v = &b->g->values[id];
    v->flags |= OT_VAL_INIT | OT_VAL_CONST | OT_VAL_PARAM;
    v->dtype = OT_DTYPE_FLOAT;
    v->data.dtype = OT_DTYPE_FLOAT;
    v->data.ndim = ndim;
    for (int i = 0; i < ndim; i++)
        v->data.dims[i] = dims[i];
    if (declared) {
        v->ndim = ndim;
        for (int i = 0; i < ndim; i++)
            v->dims[i] = dims[i];
    }
    return id;
}

static int32_t weight(builder *b, const char *name, int ndim, const int64_t *dims)
{
    return init_shaped(b, name, ndim, dims, false);
}

static int32_t *arena_ids(builder *b, const int32_t *ids, int n)
{
    int32_t *p = ot_arena_alloc(&b->g->arena, sizeof *p * (size_t)(n > 0 ? n : 1));
    if (!p) {
        b->failed = true;
        return NULL;
    }
    memcpy(p, ids, sizeof *p * (size_t)n);
    return p;
}

static int32_t node(builder *b, const char *op, const char *name, int n_in, const int32_t *in,
                    int32_t out)
{
    int32_t id = -1;
    if (b->failed)
        return -1;
    if (ot_graph_add_node(b->g, &id, &b->err) != OT_OK) {
        b->failed = true;
        return -1;
    }
    ot_node *n = &b->g->nodes[id];
    n->op_type = ot_arena_strdup(&b->g->arena, op);
    n->name = ot_arena_strdup(&b->g->arena, name);
    n->in = arena_ids(b, in, n_in);
    n->out = arena_ids(b, &out, 1);
    n->n_in = n_in;
    n->n_out = 1;
    if (!n->op_type || !n->name || b->failed) {
        b->failed = true;
        return -1;
    }
    b->g->values[out].producer = id;
    return id;
}

static void attr_int(builder *b, int32_t node_id, const char *name, int64_t value)
{
    if (b->failed)
        return;
    ot_node *n = &b->g->nodes[node_id];
    ot_attr *attrs = ot_arena_alloc(&b->g->arena, sizeof *attrs * (size_t)(n->n_attrs + 1));
    if (!attrs) {
        b->failed = true;
        return;
    }
    if (n->n_attrs)
        memcpy(attrs, n->attrs, sizeof *attrs * (size_t)n->n_attrs);
    attrs[n->n_attrs].name = ot_arena_strdup(&b->g->arena, name);
    attrs[n->n_attrs].type = OT_ATTR_INT;
    attrs[n->n_attrs].i = value;
    n->attrs = attrs;
    n->n_attrs++;
}

static void output(builder *b, int32_t value)
{
    if (b->failed)
        return;
    b->g->outputs = ot_arena_alloc(&b->g->arena, sizeof *b->g->outputs);
    if (!b->g->outputs) {
        b->failed = true;
        return;
    }
    b->g->outputs[0].value = value;
    b->g->n_outputs = 1;
    b->g->values[value].flags |= OT_VAL_OUTPUT;
}

static void input(builder *b, int32_t value)
{
    if (!b->failed)
        b->g->values[value].flags |= OT_VAL_INPUT;
}

/* Runs detection and releases the graph; the status of the call. */
static ot_status find(builder *b, ot_head *head)
{
    ot_status st = ot_pass_find_head(b->g, head, &b->err);
    ot_graph_free(b->g);
    b->g = NULL;
    return st;
}

#define BUILT(b)                                                                                \
    do {                                                                                        \
        if ((b)->failed) {                                                                      \
            ot_test_fail(__FILE__, __LINE__, "building the graph failed: %s", (b)->err.msg);    \
            ot_graph_free((b)->g);                                                              \
            return;                                                                             \
        }                                                                                       \
    } while (0)

/* x [N,512] -> Gemm(W, b) -> logits, with W as transB says. */
static void build_gemm(builder *b, int trans_b, bool set_attr)
{
    b_init(b);
    int32_t x = act(b, "x"), y = act(b, "logits");
    int64_t wd[2] = { trans_b ? 10 : 512, trans_b ? 512 : 10 };
    int32_t w = weight(b, "fc.weight", 2, wd);
    int32_t bias = weight(b, "fc.bias", 1, (const int64_t[]){ 10 });
    input(b, x);
    int32_t gemm = node(b, "Gemm", "/fc/Gemm", 3, (const int32_t[]){ x, w, bias }, y);
    if (set_attr)
        attr_int(b, gemm, "transB", trans_b);
    output(b, y);
}

TEST(head_gemm_transb1)
{
    builder b;
    ot_head h;
    build_gemm(&b, 1, true);
    BUILT(&b);
    int32_t w = ot_graph_find_value(b.g, "fc.weight"), bias = ot_graph_find_value(b.g, "fc.bias");
    CHECK_OK(find(&b, &h), &b.err);
    CHECK(h.found);
    CHECK_STR(h.kind, "Gemm");
    CHECK_EQ_INT(h.node, 0);
    CHECK_EQ_INT(h.bias_node, -1);
    CHECK_EQ_INT(h.in_features, 512);
    CHECK_EQ_INT(h.out_features, 10);
    CHECK_EQ_INT(h.weight, w);
    CHECK_EQ_INT(h.bias, bias);
}

TEST(head_gemm_transb0)
{
    builder b;
    ot_head h;
    build_gemm(&b, 0, true);
    BUILT(&b);
    CHECK_OK(find(&b, &h), &b.err);
    CHECK(h.found);
    CHECK_STR(h.kind, "Gemm");
    CHECK_EQ_INT(h.in_features, 512);
    CHECK_EQ_INT(h.out_features, 10);

    /* transB absent means 0: W is [in,out] */
    build_gemm(&b, 0, false);
    BUILT(&b);
    CHECK_OK(find(&b, &h), &b.err);
    CHECK(h.found);
    CHECK_EQ_INT(h.in_features, 512);
    CHECK_EQ_INT(h.out_features, 10);
}

TEST(head_gemm_declared_shape)
{
    /* an imported initializer: shape in v->dims as well, data empty */
    builder b;
    ot_head h;
    b_init(&b);
    int32_t x = act(&b, "x"), y = act(&b, "y");
    int32_t w = init_shaped(&b, "W", 2, (const int64_t[]){ 100, 2048 }, true);
    if (!b.failed)
        b.g->values[w].data.ndim = 0; /* only the declaration says the shape */
    int32_t gemm = node(&b, "Gemm", "fc", 2, (const int32_t[]){ x, w }, y);
    attr_int(&b, gemm, "alpha", 1);
    attr_int(&b, gemm, "transB", 1);
    output(&b, y);
    BUILT(&b);
    CHECK_OK(find(&b, &h), &b.err);
    CHECK(h.found);
    CHECK_EQ_INT(h.in_features, 2048);
    CHECK_EQ_INT(h.out_features, 100);
    CHECK_EQ_INT(h.bias, -1);
}

/* x [N,256] -> MatMul(W [256,10]) -> Add(b [10]) -> logits */
static void build_matmul_add(builder *b, bool bias_first, bool bias_is_init)
{
    b_init(b);
    int32_t x = act(b, "x"), mm = act(b, "mm"), y = act(b, "logits");
    int32_t w = weight(b, "W", 2, (const int64_t[]){ 256, 10 });
    int32_t bias = bias_is_init ? weight(b, "b", 1, (const int64_t[]){ 10 }) : act(b, "skip");
    input(b, x);
    if (!bias_is_init)
        input(b, bias);
    node(b, "MatMul", "dense/MatMul", 2, (const int32_t[]){ x, w }, mm);
    if (bias_first)
        node(b, "Add", "dense/BiasAdd", 2, (const int32_t[]){ bias, mm }, y);
    else
        node(b, "Add", "dense/BiasAdd", 2, (const int32_t[]){ mm, bias }, y);
    output(b, y);
}

TEST(head_matmul_add)
{
    builder b;
    ot_head h;
    for (int bias_first = 0; bias_first < 2; bias_first++) {
        build_matmul_add(&b, bias_first, true);
        BUILT(&b);
        int32_t w = ot_graph_find_value(b.g, "W"), bias = ot_graph_find_value(b.g, "b");
        CHECK_OK(find(&b, &h), &b.err);
        CHECK(h.found);
        CHECK_STR(h.kind, "MatMul+Add");
        CHECK_EQ_INT(h.node, 0);
        CHECK_EQ_INT(h.bias_node, 1);
        CHECK_EQ_INT(h.in_features, 256);
        CHECK_EQ_INT(h.out_features, 10);
        CHECK_EQ_INT(h.weight, w);
        CHECK_EQ_INT(h.bias, bias);
    }
}

TEST(head_matmul_without_bias)
{
    builder b;
    ot_head h;
    b_init(&b);
    int32_t x = act(&b, "x"), y = act(&b, "y");
    int32_t w = weight(&b, "W", 2, (const int64_t[]){ 64, 5 });
    node(&b, "MatMul", "mm", 2, (const int32_t[]){ x, w }, y);
    output(&b, y);
    BUILT(&b);
    CHECK_OK(find(&b, &h), &b.err);
    CHECK(h.found);
    CHECK_STR(h.kind, "MatMul");
    CHECK_EQ_INT(h.in_features, 64);
    CHECK_EQ_INT(h.out_features, 5);
    CHECK_EQ_INT(h.bias, -1);
    CHECK_EQ_INT(h.bias_node, -1);
}

TEST(head_flatten_gemm_softmax)
{
    /* torchvision: avgpool -> Flatten -> Gemm (fc) -> Softmax (an export with
       probabilities) */
    builder b;
    ot_head h;
    b_init(&b);
    int32_t feat = act(&b, "feat"), pooled = act(&b, "pooled"), flat = act(&b, "flat");
    int32_t logits = act(&b, "logits"), prob = act(&b, "prob");
    int32_t w = weight(&b, "fc.weight", 2, (const int64_t[]){ 1000, 512 });
    int32_t bias = weight(&b, "fc.bias", 1, (const int64_t[]){ 1000 });
    input(&b, feat);
    node(&b, "GlobalAveragePool", "/avgpool/GlobalAveragePool", 1, &feat, pooled);
    int32_t fl = node(&b, "Flatten", "/Flatten", 1, &pooled, flat);
    attr_int(&b, fl, "axis", 1);
    int32_t gemm = node(&b, "Gemm", "/fc/Gemm", 3, (const int32_t[]){ flat, w, bias }, logits);
    attr_int(&b, gemm, "transB", 1);
    node(&b, "Softmax", "/Softmax", 1, &logits, prob);
    output(&b, prob);
    BUILT(&b);
    CHECK_OK(find(&b, &h), &b.err);
    CHECK(h.found);
    CHECK_STR(h.kind, "Gemm");
    CHECK_EQ_INT(h.node, gemm);
    CHECK_EQ_INT(h.in_features, 512);
    CHECK_EQ_INT(h.out_features, 1000);
    CHECK_EQ_INT(h.weight, w);
    CHECK_EQ_INT(h.bias, bias);
}

TEST(head_squeezenet_conv1x1)
{
    /* SqueezeNet 1.1: dropout -> conv10 (1x1) -> relu -> global pool ->
       flatten -> softmax */
    builder b;
    ot_head h;
    b_init(&b);
    int32_t x = act(&b, "fire9"), d = act(&b, "drop"), c = act(&b, "conv10");
    int32_t r = act(&b, "relu10"), p = act(&b, "pool10"), f = act(&b, "flat");
    int32_t prob = act(&b, "softmaxout_1");
    int32_t w = weight(&b, "conv10_w_0", 4, (const int64_t[]){ 1000, 512, 1, 1 });
    int32_t bias = weight(&b, "conv10_b_0", 1, (const int64_t[]){ 1000 });
    input(&b, x);
    node(&b, "Dropout", "drop9", 1, &x, d);
    int32_t conv = node(&b, "Conv", "conv10", 3, (const int32_t[]){ d, w, bias }, c);
    node(&b, "Relu", "relu10", 1, &c, r);
    node(&b, "GlobalAveragePool", "pool10", 1, &r, p);
    node(&b, "Flatten", "flatten", 1, &p, f);
    node(&b, "Softmax", "softmax", 1, &f, prob);
    output(&b, prob);
    BUILT(&b);
    CHECK_OK(find(&b, &h), &b.err);
    CHECK(h.found);
    CHECK_STR(h.kind, "Conv1x1");
    CHECK_EQ_INT(h.node, conv);
    CHECK_EQ_INT(h.bias_node, -1);
    CHECK_EQ_INT(h.in_features, 512);
    CHECK_EQ_INT(h.out_features, 1000);
    CHECK_EQ_INT(h.weight, w);
    CHECK_EQ_INT(h.bias, bias);
}

/* x -> Conv(W) -> Relu -> output, W of the given shape and group. */
static void build_conv_tail(builder *b, const int64_t *wd, int64_t group)
{
    b_init(b);
    int32_t x = act(b, "x"), c = act(b, "c"), r = act(b, "r");
    int32_t w = weight(b, "W", 4, wd);
    input(b, x);
    int32_t conv = node(b, "Conv", "conv", 2, (const int32_t[]){ x, w }, c);
    if (group != 1)
        attr_int(b, conv, "group", group);
    node(b, "Relu", "relu", 1, &c, r);
    output(b, r);
}

TEST(head_none_found)
{
    builder b;
    ot_head h;

    /* a 3x3 convolution is a feature layer, not a classifier */
    build_conv_tail(&b, (const int64_t[]){ 64, 3, 3, 3 }, 1);
    BUILT(&b);
    CHECK_OK(find(&b, &h), &b.err);
    CHECK(!h.found);
    CHECK_EQ_INT(h.node, -1);
    CHECK_EQ_INT(h.bias_node, -1);
    CHECK_EQ_INT(h.weight, -1);
    CHECK_EQ_INT(h.bias, -1);

    /* a depthwise 1x1 convolution does not mix channels */
    build_conv_tail(&b, (const int64_t[]){ 32, 1, 1, 1 }, 32);
    BUILT(&b);
    CHECK_OK(find(&b, &h), &b.err);
    CHECK(!h.found);

    /* Gemm whose B is computed, not an initializer */
    b_init(&b);
    int32_t x = act(&b, "x"), wt = act(&b, "w_computed"), y = act(&b, "y");
    input(&b, x);
    input(&b, wt);
    node(&b, "Gemm", "g", 2, (const int32_t[]){ x, wt }, y);
    output(&b, y);
    BUILT(&b);
    CHECK_OK(find(&b, &h), &b.err);
    CHECK(!h.found);

    /* MatMul + Add where the addend is an activation (a residual) */
    build_matmul_add(&b, false, false);
    BUILT(&b);
    CHECK_OK(find(&b, &h), &b.err);
    CHECK(!h.found);

    /* the walk does not pass ops that mix features (Concat) */
    b_init(&b);
    int32_t a = act(&b, "a"), l = act(&b, "l"), cat = act(&b, "cat");
    int32_t w = weight(&b, "W", 2, (const int64_t[]){ 10, 8 });
    input(&b, a);
    int32_t gemm = node(&b, "Gemm", "fc", 2, (const int32_t[]){ a, w }, l);
    attr_int(&b, gemm, "transB", 1);
    node(&b, "Concat", "cat", 2, (const int32_t[]){ l, a }, cat);
    output(&b, cat);
    BUILT(&b);
    CHECK_OK(find(&b, &h), &b.err);
    CHECK(!h.found);

    /* the output is a graph input: no node at all */
    b_init(&b);
    int32_t only = act(&b, "only");
    input(&b, only);
    output(&b, only);
    BUILT(&b);
    CHECK_OK(find(&b, &h), &b.err);
    CHECK(!h.found);

    /* no outputs */
    b_init(&b);
    BUILT(&b);
    CHECK_OK(find(&b, &h), &b.err);
    CHECK(!h.found);
}

TEST(head_bad_arguments)
{
    ot_err err;
    ot_head h;
    ot_err_init(&err);
    CHECK_EQ_INT(ot_pass_find_head(NULL, &h, &err), OT_ERR_ARG);
    CHECK(!h.found);
    ot_err_init(&err);
    ot_graph *g = ot_graph_new();
    CHECK(g != NULL);
    ot_status st = ot_pass_find_head(g, NULL, &err);
    ot_graph_free(g);
    CHECK_EQ_INT(st, OT_ERR_ARG);
}
