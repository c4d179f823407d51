/*
 * test_op_table.c: walks the op table (every row well formed, names unique,
 * lookup by name and opset) and checks ot_op_check_node on hand-made nodes.
 */
#include <string.h>

#include "ops/ops.h"
#include "test.h"

TEST(op_table_rows_are_well_formed)
{
    for (int i = 0; i < OT_OP_COUNT_; i++) {
        const ot_op_desc *d = ot_op_table[i];
        CHECK(d != NULL);
        CHECK_EQ_INT(d->id, i); /* backends find kernels by this id */
        CHECK(d->type && d->type[0]);
        CHECK(d->domain != NULL);
        CHECK(d->infer != NULL);
        CHECK(d->opset_min >= 1 && d->opset_min <= d->opset_max);
        CHECK(d->n_in_min >= 0 && (d->n_in_max < 0 || d->n_in_max >= d->n_in_min));
        CHECK(d->n_out_min >= 1 && d->n_out_max >= d->n_out_min);
        CHECK(d->attrs != NULL);
        int n_attrs = 0;
        for (const ot_attr_spec *s = d->attrs; s->name; s++) {
            CHECK(n_attrs++ < 64); /* the list is terminated */
            CHECK(s->type > OT_ATTR_UNDEFINED && s->type <= OT_ATTR_TYPE_PROTOS);
            CHECK(s->opset_max == 0 || s->opset_max >= s->opset_min);
        }
        for (int j = 0; j < i; j++)
            CHECK(strcmp(ot_op_table[j]->type, d->type) != 0 ||
                  strcmp(ot_op_table[j]->domain, d->domain) != 0);
        if (d->domain[0]) {
            /* private rows: backward ops and training forms, never exported */
            CHECK_STR(d->domain, OT_OP_DOMAIN_PRIVATE);
            CHECK(d->no_grad || d->grad);
        } else {
            CHECK(ot_op_is_onnx_defined(d->type));
            /* every ONNX row differentiates, or says why not; the ops below have
               no rule yet and autodiff refuses them by name on a trained path */
            bool known_gap = !strcmp(d->type, "LRN") || !strcmp(d->type, "Pad");
            if (!known_gap && !d->grad && !d->no_grad) {
                ot_test_fail(__FILE__, __LINE__, "%s has neither grad nor no_grad", d->type);
                return;
            }
            CHECK(!(d->grad && d->no_grad));
        }
    }
}

TEST(op_table_find)
{
    for (int i = 0; i < OT_OP_COUNT_; i++) {
        const ot_op_desc *d = ot_op_table[i];
        CHECK(ot_op_find(d->domain, d->type, d->opset_min) == d);
        CHECK(ot_op_find(d->domain, d->type, d->opset_max) == d);
        if (!d->domain[0])
            CHECK(ot_op_find("ai.onnx", d->type, d->opset_max) == d);
        CHECK(ot_op_find(d->domain, d->type, d->opset_max + 1) == NULL);
        CHECK(ot_op_find(d->domain, d->type, 0) == NULL);
    }
    CHECK(ot_op_find("", "Foo", 13) == NULL);
    CHECK(ot_op_find("com.microsoft", "Conv", 13) == NULL);
    CHECK(ot_op_find("", "Conv", 13) == ot_op_table[OT_OP_CONV]);
    CHECK(ot_op_find("", "BatchNormalization", 17) == ot_op_table[OT_OP_BATCHNORM]);
}

TEST(op_table_onnx_names)
{
    CHECK(ot_op_is_onnx_defined("Conv"));
    CHECK(ot_op_is_onnx_defined("Upsample"));
    CHECK(ot_op_is_onnx_defined("Abs"));
    CHECK(!ot_op_is_onnx_defined("Foo"));
    CHECK(!ot_op_is_onnx_defined("conv"));
    CHECK(!ot_op_is_onnx_defined(""));
}

/* A graph with one node of `type` whose inputs and outputs are fresh values. */
static ot_node *one_node(ot_graph *g, const char *type, int opset, int n_in, int n_out,
                         int n_attrs)
{
    ot_err err;
    int32_t id;
    if (ot_graph_add_node(g, &id, &err) != OT_OK)
        return NULL;
    ot_node *n = &g->nodes[id];
    n->name = "n0";
    n->op_type = type;
    n->opset = opset;
    n->op = ot_op_find("", type, opset);
    n->in = ot_arena_alloc(&g->arena, sizeof(int32_t) * (size_t)(n_in + 1));
    n->out = ot_arena_alloc(&g->arena, sizeof(int32_t) * (size_t)(n_out + 1));
    n->attrs = ot_arena_alloc(&g->arena, sizeof(ot_attr) * (size_t)(n_attrs + 1));
    n->n_in = n_in;
    n->n_out = n_out;
    n->n_attrs = n_attrs;
    for (int i = 0; i < n_in + n_out; i++) {
        char name[16];
        int32_t v;
        snprintf(name, sizeof name, "v%d", i);
        if (ot_graph_intern_value(g, name, &v, &err) != OT_OK)
            return NULL;
        n = &g->nodes[id];
        if (i < n_in)
            n->in[i] = v;
        else
            n->out[i - n_in] = v;
    }
    return n;
}

TEST(check_node_attributes)
{
    ot_graph *g = ot_graph_new();
    ot_err err;
    int64_t pads3[3] = { 1, 1, 1 }, ks[2] = { 3, 3 };
    ot_node *n = one_node(g, "Conv", 13, 2, 1, 2);
    CHECK(n && n->op);
    n->attrs[0] = (ot_attr){ .name = "kernel_shape", .type = OT_ATTR_INTS, .ints = ks, .n = 2 };
    n->attrs[1] = (ot_attr){ .name = "pads", .type = OT_ATTR_INTS, .ints = pads3, .n = 3 };
    ot_err_init(&err);
    CHECK_EQ_INT(ot_op_check_node(g, n, &err), OT_ERR_MODEL);
    CHECK(strstr(err.msg, "node 'n0' (Conv): attribute 'pads' has 3 values, expected 4") != NULL);

    /* wrong kind */
    n->attrs[1] = (ot_attr){ .name = "pads", .type = OT_ATTR_INT, .i = 1 };
    CHECK_EQ_INT(ot_op_check_node(g, n, &err), OT_ERR_MODEL);
    CHECK(strstr(err.msg, "attribute 'pads' is int, expected ints") != NULL);

    /* unknown attribute: flagged, not an error */
    n->attrs[1] = (ot_attr){ .name = "frobnicate", .type = OT_ATTR_INT, .i = 1 };
    CHECK_OK(ot_op_check_node(g, n, &err), &err);
    CHECK(n->flags & OT_NODE_UNKNOWN_ATTR);

    /* input count */
    n->n_in = 1;
    CHECK_EQ_INT(ot_op_check_node(g, n, &err), OT_ERR_MODEL);
    CHECK(strstr(err.msg, "has 1 inputs, expected 2 to 3") != NULL);
    ot_graph_free(g);
}

TEST(check_node_legacy_and_opset_attrs)
{
    ot_graph *g = ot_graph_new();
    ot_err err;
    int64_t consumed[1] = { 0 };
    ot_node *n = one_node(g, "Relu", 1, 1, 1, 1);
    n->attrs[0] = (ot_attr){ .name = "consumed_inputs", .type = OT_ATTR_INTS, .ints = consumed,
                             .n = 1 };
    CHECK_OK(ot_op_check_node(g, n, &err), &err);
    CHECK(!(n->flags & OT_NODE_UNKNOWN_ATTR));
    /* the same attribute at opset 13 is unknown there */
    n->opset = 13;
    n->op = ot_op_find("", "Relu", 13);
    CHECK_OK(ot_op_check_node(g, n, &err), &err);
    CHECK(n->flags & OT_NODE_UNKNOWN_ATTR);

    /* a check function rejects a bad value */
    n = one_node(g, "Gemm", 13, 2, 1, 1);
    n->attrs[0] = (ot_attr){ .name = "transB", .type = OT_ATTR_INT, .i = 2 };
    CHECK_EQ_INT(ot_op_check_node(g, n, &err), OT_ERR_MODEL);
    CHECK(strstr(err.msg, "attribute 'transB' is 2, expected 0 or 1") != NULL);
    ot_graph_free(g);
}

TEST(check_node_batchnorm_spatial0)
{
    ot_graph *g = ot_graph_new();
    ot_err err;
    ot_node *n = one_node(g, "BatchNormalization", 7, 5, 1, 1);
    n->attrs[0] = (ot_attr){ .name = "spatial", .type = OT_ATTR_INT, .i = 0 };
    for (int i = 1; i < 5; i++) {
        ot_value *v = &g->values[n->in[i]];
        v->dtype = OT_DTYPE_FLOAT;
        v->ndim = 1;
        v->dims[0] = 64;
    }
    CHECK_OK(ot_op_check_node(g, n, &err), &err); /* per-channel: accepted */
    ot_value *s = &g->values[n->in[1]];
    s->ndim = 3;
    s->dims[1] = s->dims[2] = 56;
    CHECK_EQ_INT(ot_op_check_node(g, n, &err), OT_ERR_UNSUPPORTED);
    CHECK(strstr(err.msg, "spatial=0") && strstr(err.msg, "unsupported"));
    ot_graph_free(g);
}

TEST(check_node_constant_needs_one_value)
{
    ot_graph *g = ot_graph_new();
    ot_err err;
    ot_node *n = one_node(g, "Constant", 13, 0, 1, 0);
    CHECK_EQ_INT(ot_op_check_node(g, n, &err), OT_ERR_MODEL);
    CHECK(strstr(err.msg, "expected exactly one") != NULL);
    ot_graph_free(g);
}
