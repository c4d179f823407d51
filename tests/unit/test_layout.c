/*
 * test_layout.c: the image input's layout (src/train/layout.c): NHWC found
 * from a leading Transpose [0, 3, 1, 2] that is the input's only consumer,
 * or from the dims alone ([N, H, W, 3] with dim 1 neither 1 nor 3); NCHW for
 * [N, 3, H, W], a Transpose with another perm, a Transpose that is one of
 * two consumers of an NCHW-shaped input, and ranks other than 4; the dims of
 * the bound tensor and the host transpose of an NCHW batch.
 */
#include "graph/graph.h"
#include "ops/ops.h"
#include "test.h"
#include "train/layout.h"

/* A graph of one input x with the given dims, read by `op` (NULL: none)
   with perm `perm` and, when `second`, by a Relu too. */
static ot_graph *one_input(int ndim, const int64_t *dims, ot_op_id op, const int64_t *perm,
                           bool second, int32_t *x)
{
    static int32_t ins[2][1], outs[2][1];
    static int64_t perms[4];
    static ot_attr attr;
    ot_err err;
    ot_err_init(&err);
    ot_graph *g = ot_graph_new();
    if (!g || ot_graph_intern_value(g, "x", x, &err) != OT_OK)
        return g;
    ot_value *v = &g->values[*x];
    v->dtype = OT_DTYPE_FLOAT;
    v->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        v->dims[d] = dims[d];
    v->flags |= OT_VAL_INPUT;
    for (int k = 0; k < (second ? 2 : 1) && op != OT_OP_COUNT_; k++) {
        int32_t id, y;
        if (ot_graph_add_node(g, &id, &err) != OT_OK ||
            ot_graph_intern_value(g, k ? "r" : "y", &y, &err) != OT_OK)
            return g;
        ot_node *n = &g->nodes[id];
        n->op = ot_op_table[k ? OT_OP_RELU : op];
        n->op_type = n->op->type;
        ins[k][0] = *x;
        outs[k][0] = y;
        n->in = ins[k];
        n->n_in = 1;
        n->out = outs[k];
        n->n_out = 1;
        if (!k && perm) {
            memcpy(perms, perm, sizeof perms);
            attr = (ot_attr){ .name = "perm", .type = OT_ATTR_INTS, .ints = perms, .n = 4 };
            n->attrs = &attr;
            n->n_attrs = 1;
        }
    }
    return g;
}

/* The layout of that graph's input: 'h' (NHWC), 'c' (NCHW), '?' (no graph). */
static char layout_of(int ndim, const int64_t *dims, ot_op_id op, const int64_t *perm, bool second)
{
    int32_t x = -1;
    ot_graph *g = one_input(ndim, dims, op, perm, second, &x);
    char r = !g || x < 0 ? '?' : ot_image_layout_find(g, x).nhwc ? 'h' : 'c';
    ot_graph_free(g);
    return r;
}

TEST(layout_found)
{
    const int64_t to_nchw[4] = { 0, 3, 1, 2 }, other[4] = { 0, 2, 3, 1 };
    const int64_t nhwc[4] = { -1, 64, 64, 3 }, nchw[4] = { -1, 3, 64, 64 };
    const int64_t dyn[4] = { -1, -1, -1, -1 }, gray[4] = { 1, 28, 28, 1 };
    const int64_t odd[4] = { 1, 3, 32, 3 }, r3[3] = { 1, 64, 3 };
    /* a leading Transpose, whatever the dims say */
    CHECK_EQ_INT(layout_of(4, dyn, OT_OP_TRANSPOSE, to_nchw, false), 'h');
    CHECK_EQ_INT(layout_of(4, nchw, OT_OP_TRANSPOSE, to_nchw, false), 'h');
    /* the dims alone */
    CHECK_EQ_INT(layout_of(4, nhwc, OT_OP_RELU, NULL, false), 'h');
    CHECK_EQ_INT(layout_of(4, gray, OT_OP_COUNT_, NULL, false), 'h');
    CHECK_EQ_INT(layout_of(4, nchw, OT_OP_RELU, NULL, false), 'c');
    CHECK_EQ_INT(layout_of(4, dyn, OT_OP_RELU, NULL, false), 'c');
    CHECK_EQ_INT(layout_of(4, odd, OT_OP_RELU, NULL, false), 'c');
    /* a Transpose of another perm, or not the only consumer: the dims decide */
    CHECK_EQ_INT(layout_of(4, nchw, OT_OP_TRANSPOSE, other, false), 'c');
    CHECK_EQ_INT(layout_of(4, nchw, OT_OP_TRANSPOSE, to_nchw, true), 'c');
    CHECK_EQ_INT(layout_of(4, dyn, OT_OP_TRANSPOSE, to_nchw, true), 'c');
    CHECK_EQ_INT(layout_of(3, r3, OT_OP_TRANSPOSE, to_nchw, false), 'c');
}

TEST(layout_tensor_and_batch)
{
    const ot_image_layout c = { .nhwc = false, .c = 1, .h = 2, .w = 3 };
    const ot_image_layout h = { .nhwc = true, .c = 3, .h = 1, .w = 2 };
    ot_tensor t = ot_image_tensor(&h, 2, 3, 5, NULL);
    CHECK(t.ndim == 4 && t.dims[0] == 2 && t.dims[1] == 5 && t.dims[2] == 5 && t.dims[3] == 3);
    CHECK_EQ_INT(t.bytes, 2 * 3 * 5 * 5 * sizeof(float));
    t = ot_image_tensor(&c, 2, 3, 5, NULL);
    CHECK(t.dims[0] == 2 && t.dims[1] == 3 && t.dims[2] == 5 && t.dims[3] == 5);
    float x[2 * 3 * 2 * 2], y[2 * 3 * 2 * 2];
    for (int i = 0; i < 24; i++)
        x[i] = (float)i;
    CHECK(ot_image_batch(&c, x, y, 2, 3, 2) == x);
    CHECK(ot_image_batch(&h, x, y, 2, 3, 2) == y);
    /* y[n][i][j][ch] == x[n][ch][i][j] */
    for (int n = 0; n < 2; n++)
        for (int ch = 0; ch < 3; ch++)
            for (int p = 0; p < 4; p++)
                CHECK(y[(n * 4 + p) * 3 + ch] == x[(n * 3 + ch) * 4 + p]);
}
