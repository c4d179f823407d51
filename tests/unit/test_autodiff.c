/*
 * test_autodiff.c: the structure ot_pass_autodiff gives a graph (numbers are
 * test_grad.c's business): a frozen prefix gets no backward nodes, fan-out
 * gets an explicit Sum, unreachable parameters get -1, a node without a rule
 * on the path is an error naming it, Dropout gains its mask, a symbolic
 * batch dim survives until compilation, and logits [N, C, 1, 1] get the
 * (N, C) view the loss reads (ot_pass_logits_2d), with the loss and gradient
 * of the same network ending in a Flatten.
 */
#include <stdlib.h>
#include <string.h>

#include "exec/exec.h"
#include "ops/grad_util.h"
#include "passes/autodiff.h"
#include "test.h"

#define DIMS(...) ((const int64_t[]){ __VA_ARGS__ })

/* A float graph input of the given shape (dims < 0: dynamic, named "N"). */
static int32_t input(ot_graph *g, const char *name, int ndim, const int64_t *dims)
{
    ot_err err;
    int32_t id;
    if (ot_graph_intern_value(g, name, &id, &err) != OT_OK)
        return -1;
    ot_value *v = &g->values[id];
    v->dtype = OT_DTYPE_FLOAT;
    v->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        v->dims[i] = dims[i] < 0 ? OT_DIM_DYNAMIC : dims[i];
        v->dim_names[i] = dims[i] < 0 ? "N" : NULL;
    }
    v->flags |= OT_VAL_INPUT | OT_VAL_SHAPE_DECLARED;
    ot_io *io = ot_arena_alloc(&g->arena, sizeof *io * (size_t)(g->n_inputs + 1));
    if (g->n_inputs)
        memcpy(io, g->inputs, sizeof *io * (size_t)g->n_inputs);
    io[g->n_inputs].value = id;
    g->inputs = io;
    g->n_inputs++;
    return id;
}

/* A constant initializer of ones (a frozen parameter). */
static int32_t ones(ot_graph *g, const char *name, int ndim, const int64_t *dims)
{
    ot_err err;
    float buf[256];
    int32_t id;
    for (int i = 0; i < 256; i++)
        buf[i] = 0.5f;
    if (ot_op_grad_const_f32(g, name, dims, ndim, buf, &id, &err) != OT_OK)
        return -1;
    return id;
}

static int32_t node(ot_graph *g, const char *domain, const char *type, int opset,
                    const int32_t *in, int n_in, const ot_attr *attrs, int n_attrs)
{
    ot_err err;
    int32_t out;
    char name[64];
    snprintf(name, sizeof name, "%s_out", type);
    const char *names[1] = { name };
    const ot_op_desc *d = ot_op_find(domain, type, opset);
    if (!d || ot_op_grad_emit(g, d, opset, type, in, n_in, attrs, n_attrs, names, &out, 1,
                              &err) != OT_OK)
        return -1;
    return out;
}

static int32_t sum_all(ot_graph *g, int32_t x)
{
    return node(g, OT_OP_DOMAIN_PRIVATE, "ReduceSumTo", 1, &x, 1, NULL, 0);
}

static int count_type(const ot_graph *g, int32_t from, const char *type)
{
    int k = 0;
    for (int32_t i = from; i < g->n_nodes; i++)
        k += strcmp(g->nodes[i].op_type, type) == 0;
    return k;
}

TEST(autodiff_frozen_prefix_gets_no_backward_nodes)
{
    ot_graph *g = ot_graph_new();
    ot_err err;
    int32_t x = input(g, "x", 4, DIMS(1, 2, 5, 5));
    int32_t w1 = ones(g, "w1", 4, DIMS(2, 2, 3, 3)); /* frozen */
    int32_t w2 = input(g, "w2", 4, DIMS(3, 2, 3, 3)); /* trained */
    int32_t in[2] = { x, w1 };
    int32_t h = node(g, "", "Conv", 13, in, 2, NULL, 0);
    h = node(g, "", "Relu", 14, &h, 1, NULL, 0);
    in[0] = h;
    in[1] = w2;
    h = node(g, "", "Conv", 13, in, 2, NULL, 0);
    int32_t loss = sum_all(g, h);
    CHECK(loss >= 0);
    int32_t n_fwd = g->n_nodes, grad;
    CHECK_OK(ot_pass_autodiff(g, loss, &w2, 1, &grad, &err), &err);
    CHECK(grad >= 0);
    CHECK_EQ_INT(count_type(g, n_fwd, "ConvGradFilter"), 1);
    CHECK_EQ_INT(count_type(g, n_fwd, "ConvGradData"), 0); /* dX of the trained conv: not needed */
    CHECK_EQ_INT(count_type(g, n_fwd, "ReluGrad"), 0);
    for (int32_t i = n_fwd; i < g->n_nodes; i++) /* no backward node reads the prefix's conv */
        for (int k = 0; k < g->nodes[i].n_in; k++)
            CHECK(g->nodes[i].in[k] != w1);
    ot_value *gv = &g->values[grad];
    CHECK_EQ_INT(gv->ndim, 4);
    CHECK_EQ_INT(gv->dims[0], 3);
    CHECK_STR(gv->name, "grad/w2");
    ot_graph_free(g);
}

TEST(autodiff_fan_out_inserts_sum)
{
    ot_graph *g = ot_graph_new();
    ot_err err;
    int32_t x = input(g, "x", 2, DIMS(2, 3));
    int32_t r = node(g, "", "Relu", 14, &x, 1, NULL, 0);
    int32_t in[2] = { r, ones(g, "c1", 2, DIMS(2, 3)) };
    int32_t a = node(g, "", "Mul", 14, in, 2, NULL, 0);
    in[1] = ones(g, "c2", 1, DIMS(3));
    int32_t b = node(g, "", "Mul", 14, in, 2, NULL, 0);
    in[0] = a;
    in[1] = b;
    int32_t loss = sum_all(g, node(g, "", "Add", 14, in, 2, NULL, 0));
    int32_t n_fwd = g->n_nodes, grad;
    CHECK_OK(ot_pass_autodiff(g, loss, &x, 1, &grad, &err), &err);
    CHECK_EQ_INT(count_type(g, n_fwd, "Sum"), 1);
    int32_t relu_grad = -1, sum = -1;
    for (int32_t i = n_fwd; i < g->n_nodes; i++) {
        if (!strcmp(g->nodes[i].op_type, "Sum"))
            sum = i;
        if (!strcmp(g->nodes[i].op_type, "ReluGrad"))
            relu_grad = i;
    }
    CHECK(sum >= 0 && relu_grad > sum);
    CHECK_EQ_INT(g->nodes[sum].n_in, 2);
    CHECK_EQ_INT(g->nodes[relu_grad].in[0], g->nodes[sum].out[0]); /* dY of Relu = the sum */
    CHECK_EQ_INT(g->nodes[relu_grad].in[1], r);                    /* and Relu's output */
    CHECK_EQ_INT(grad, g->nodes[relu_grad].out[0]);
    ot_graph_free(g);
}

TEST(autodiff_unreachable_params_get_minus_one)
{
    ot_graph *g = ot_graph_new();
    ot_err err;
    int32_t x = input(g, "x", 2, DIMS(2, 3));
    int32_t p_used = input(g, "p_used", 1, DIMS(3));
    int32_t p_side = input(g, "p_side", 1, DIMS(3));   /* feeds a side output only */
    int32_t p_unused = input(g, "p_unused", 1, DIMS(3));
    int32_t in[2] = { x, p_used };
    int32_t loss = sum_all(g, node(g, "", "Add", 14, in, 2, NULL, 0));
    in[1] = p_side;
    int32_t side = node(g, "", "Mul", 14, in, 2, NULL, 0);
    CHECK(side >= 0 && loss >= 0);
    int32_t params[3] = { p_used, p_side, p_unused }, grads[3];
    int32_t n_fwd = g->n_nodes;
    CHECK_OK(ot_pass_autodiff(g, loss, params, 3, grads, &err), &err);
    CHECK(grads[0] >= 0);
    CHECK_EQ_INT(grads[1], -1);
    CHECK_EQ_INT(grads[2], -1);
    CHECK_EQ_INT(count_type(g, n_fwd, "Mul"), 0); /* the side branch got nothing */

    /* a loss no parameter reaches: every gradient -1, no nodes */
    int32_t only_x = sum_all(g, x);
    n_fwd = g->n_nodes;
    CHECK_OK(ot_pass_autodiff(g, only_x, params, 3, grads, &err), &err);
    CHECK(grads[0] == -1 && grads[1] == -1 && grads[2] == -1);
    CHECK_EQ_INT(g->n_nodes, n_fwd);
    ot_graph_free(g);
}

TEST(autodiff_errors_name_the_node)
{
    ot_graph *g = ot_graph_new();
    ot_err err;
    int32_t x = input(g, "x", 4, DIMS(1, 3, 4, 4));
    /* a Pad in reflect mode has no gradient */
    int32_t in[2] = { x, -1 };
    CHECK_OK(ot_op_grad_const_i64(g, "pads", DIMS(8), 1, DIMS(0, 0, 1, 1, 0, 0, 1, 1), &in[1],
                                  &err),
             &err);
    ot_attr mode = { .name = "mode", .type = OT_ATTR_STRING, .s = "reflect", .s_len = 7 };
    int32_t l = node(g, "", "Pad", 13, in, 2, &mode, 1);
    CHECK(l >= 0);
    int32_t loss = sum_all(g, l), grad;
    CHECK(loss >= 0);
    CHECK_EQ_INT(ot_pass_autodiff(g, loss, &x, 1, &grad, &err), OT_ERR_UNSUPPORTED);
    CHECK(strstr(err.msg, "'Pad' (Pad)") != NULL);
    /* the loss must be a float scalar */
    CHECK_EQ_INT(ot_pass_autodiff(g, l, &x, 1, &grad, &err), OT_ERR_ARG);
    CHECK(strstr(err.msg, "scalar") != NULL);
    CHECK_EQ_INT(ot_pass_autodiff(g, 9999, &x, 1, &grad, &err), OT_ERR_ARG);
    ot_graph_free(g);
}

TEST(autodiff_dropout_gains_mask_output)
{
    ot_graph *g = ot_graph_new();
    ot_err err;
    int32_t x = input(g, "x", 2, DIMS(2, 3));
    int32_t d = node(g, "", "Dropout", 13, &x, 1, NULL, 0);
    int32_t drop = g->n_nodes - 1;
    int32_t loss = sum_all(g, d), grad;
    CHECK_EQ_INT(g->nodes[drop].n_out, 1);
    CHECK_OK(ot_pass_autodiff(g, loss, &x, 1, &grad, &err), &err);
    CHECK_EQ_INT(g->nodes[drop].n_out, 2);
    int32_t mask = g->nodes[drop].out[1];
    CHECK(mask >= 0 && g->values[mask].dtype == OT_DTYPE_BOOL);
    CHECK_EQ_INT(g->values[mask].producer, drop);
    CHECK_EQ_INT(count_type(g, 0, "DropoutGrad"), 1);
    ot_graph_free(g);
}

/* N symbolic: gradients keep "N"; compiling for two batch sizes works */
TEST(autodiff_symbolic_batch)
{
    ot_graph *g = ot_graph_new();
    ot_err err;
    int32_t x = input(g, "x", 4, DIMS(-1, 2, 4, 4));
    int32_t w = input(g, "w", 4, DIMS(3, 2, 3, 3));
    int32_t b = input(g, "b", 1, DIMS(3));
    int32_t fc = input(g, "fc", 2, DIMS(5, 3));
    int32_t in[3] = { x, w, -1 };
    int32_t h = node(g, "", "Conv", 13, in, 2, NULL, 0);
    h = node(g, "", "GlobalAveragePool", 1, &h, 1, NULL, 0);
    h = node(g, "", "Flatten", 13, &h, 1, NULL, 0);
    in[0] = h;
    in[1] = b;
    h = node(g, "", "Add", 14, in, 2, NULL, 0);
    ot_attr tb = ot_op_grad_attr_int("transB", 1);
    in[0] = h;
    in[1] = fc;
    h = node(g, "", "Gemm", 13, in, 2, &tb, 1);
    int32_t loss, labels;
    CHECK_OK(ot_pass_add_loss(g, h, "labels", 0.1f, &loss, &labels, &err), &err);
    CHECK(g->values[labels].dims[0] < 0);
    CHECK_STR(g->values[labels].dim_names[0], "N");
    int32_t params[4] = { x, w, b, fc }, grads[4];
    CHECK_OK(ot_pass_autodiff(g, loss, params, 4, grads, &err), &err);
    for (int i = 0; i < 4; i++) {
        CHECK(grads[i] >= 0);
        CHECK_OK(ot_pass_add_output(g, grads[i], &err), &err);
    }
    CHECK(g->values[grads[0]].dims[0] < 0);
    CHECK_STR(g->values[grads[0]].dim_names[0], "N");
    CHECK_EQ_INT(g->values[grads[1]].dims[0], 3);
    for (int64_t N = 2; N <= 3; N++) {
        ot_tensor t[5];
        ot_exec_input bind[5];
        int32_t ids[5] = { x, w, b, fc, labels };
        memset(t, 0, sizeof t);
        for (int i = 0; i < 5; i++) {
            const ot_value *v = &g->values[ids[i]];
            t[i].dtype = v->dtype;
            t[i].ndim = v->ndim;
            int64_t numel = 1;
            for (int d = 0; d < v->ndim; d++) {
                t[i].dims[d] = v->dims[d] < 0 ? N : v->dims[d];
                numel *= t[i].dims[d];
            }
            t[i].bytes = (size_t)numel * ot_dtype_size(v->dtype);
            t[i].data = calloc((size_t)numel, 8);
            for (int64_t k = 0; k < numel && v->dtype == OT_DTYPE_FLOAT; k++)
                ((float *)t[i].data)[k] = (float)((k * 7 + i) % 5) * 0.1f;
            bind[i] = (ot_exec_input){ .value = ids[i], .tensor = t[i] };
        }
        ot_exec *ex = NULL;
        ot_exec_opts opts = { .cpu.threads = 1 };
        ot_status st = ot_exec_compile(g, bind, 5, &opts, &ex, &err);
        if (st == OT_OK)
            st = ot_exec_run(ex, t, 5, &err);
        if (st == OT_OK)
            CHECK_EQ_INT(ot_exec_output(ex, 0)->dims[0], N); /* grad of x */
        ot_exec_free(ex);
        for (int i = 0; i < 5; i++)
            free(t[i].data);
        CHECK_OK(st, &err);
    }
    ot_graph_free(g);
}

/* x [N,2,3,3] -> Conv 1x1 (w [5,2,1,1]) -> GlobalAveragePool: logits
   [N,5,1,1], then the loss on their (N, C) view (spatial) or on a Flatten
   (the twin); *loss, *labels, *grad (of w) and the graph's ids of x and w. */
static ot_graph *pooled_logits(bool spatial, int32_t *x, int32_t *w, int32_t *loss,
                               int32_t *labels, int32_t *grad, ot_err *err)
{
    ot_graph *g = ot_graph_new();
    *x = input(g, "x", 4, DIMS(-1, 2, 3, 3));
    *w = input(g, "w", 4, DIMS(5, 2, 1, 1));
    int32_t in[2] = { *x, *w };
    int32_t h = node(g, "", "Conv", 13, in, 2, NULL, 0);
    h = h < 0 ? -1 : node(g, "", "GlobalAveragePool", 1, &h, 1, NULL, 0);
    int32_t logits = -1;
    if (h >= 0 && spatial && ot_pass_logits_2d(g, h, &logits, err) != OT_OK)
        logits = -1;
    else if (h >= 0 && !spatial)
        logits = node(g, "", "Flatten", 13, &h, 1, NULL, 0);
    if (logits < 0 || ot_pass_add_loss(g, logits, "labels", 0.0f, loss, labels, err) != OT_OK ||
        ot_pass_autodiff(g, *loss, w, 1, grad, err) != OT_OK || *grad < 0 ||
        ot_pass_add_output(g, *loss, err) != OT_OK ||
        ot_pass_add_output(g, *grad, err) != OT_OK) {
        ot_graph_free(g);
        return NULL;
    }
    return g;
}

/* Runs a pooled_logits graph at N = 2; out: the loss then dL/dw (10). */
static ot_status run_pooled(ot_graph *g, int32_t x, int32_t w, int32_t labels, float *out,
                            ot_err *err)
{
    float xs[2 * 2 * 3 * 3], ws[5 * 2];
    int64_t lab[2] = { 3, 1 };
    for (int i = 0; i < 36; i++)
        xs[i] = (float)((i * 7) % 11) * 0.1f - 0.4f;
    for (int i = 0; i < 10; i++)
        ws[i] = (float)((i * 5) % 7) * 0.2f - 0.6f;
    ot_tensor t[3] = {
        { .dtype = OT_DTYPE_FLOAT, .ndim = 4, .dims = { 2, 2, 3, 3 }, .bytes = sizeof xs,
          .data = xs },
        { .dtype = OT_DTYPE_FLOAT, .ndim = 4, .dims = { 5, 2, 1, 1 }, .bytes = sizeof ws,
          .data = ws },
        { .dtype = OT_DTYPE_INT64, .ndim = 1, .dims = { 2 }, .bytes = sizeof lab, .data = lab },
    };
    ot_exec_input bind[3] = { { .value = x, .tensor = t[0] }, { .value = w, .tensor = t[1] },
                              { .value = labels, .tensor = t[2] } };
    ot_exec *ex = NULL;
    ot_exec_opts opts = { .cpu.threads = 1 };
    ot_status st = ot_exec_compile(g, bind, 3, &opts, &ex, err);
    if (st == OT_OK)
        st = ot_exec_run(ex, t, 3, err);
    if (st == OT_OK) {
        const ot_tensor *l = ot_exec_output(ex, 0), *gw = ot_exec_output(ex, 1);
        out[0] = *(const float *)l->data;
        memcpy(out + 1, gw->data, sizeof(float) * 10);
    }
    ot_exec_free(ex);
    return st;
}

/* Logits [N, C, 1, 1] (a 1x1 convolution head before the global pooling, no
   Flatten): ot_pass_logits_2d gives a Squeeze to (N, C) that the loss reads,
   and the loss and gradient are those of the same network with a Flatten;
   (N, C) logits and a spatial map are left as they are. */
TEST(logits_2d_squeezes_pooled_logits)
{
    ot_err err;
    ot_err_init(&err);
    int32_t x, w, loss, labels, grad;
    ot_graph *g = pooled_logits(true, &x, &w, &loss, &labels, &grad, &err);
    CHECK_OK(g ? OT_OK : OT_ERR_ARG, &err);
    if (!g)
        return;
    int32_t sq = g->nodes[g->values[loss].producer].in[0]; /* the loss's logits */
    CHECK_EQ_INT(g->values[sq].ndim, 2);
    CHECK(g->values[sq].dims[0] < 0);
    CHECK_EQ_INT(g->values[sq].dims[1], 5);
    CHECK_STR(g->nodes[g->values[sq].producer].op_type, "Squeeze");
    int32_t pooled = g->nodes[g->values[sq].producer].in[0];
    CHECK_EQ_INT(g->values[pooled].ndim, 4); /* the model's value keeps its shape */
    int32_t same = -1;
    CHECK_OK(ot_pass_logits_2d(g, sq, &same, &err), &err);
    CHECK_EQ_INT(same, sq);
    int32_t conv = g->nodes[g->values[pooled].producer].in[0]; /* [N,5,3,3] */
    int32_t n_nodes = g->n_nodes;
    CHECK_OK(ot_pass_logits_2d(g, conv, &same, &err), &err);
    CHECK_EQ_INT(same, conv);
    CHECK_EQ_INT(g->n_nodes, n_nodes);
    CHECK_EQ_INT(ot_pass_logits_2d(g, g->n_values, &same, &err), OT_ERR_ARG);

    float got[11], want[11];
    int32_t x2, w2, loss2, labels2, grad2;
    ot_graph *twin = pooled_logits(false, &x2, &w2, &loss2, &labels2, &grad2, &err);
    CHECK_OK(twin ? OT_OK : OT_ERR_ARG, &err);
    if (twin) {
        CHECK_OK(run_pooled(g, x, w, labels, got, &err), &err);
        CHECK_OK(run_pooled(twin, x2, w2, labels2, want, &err), &err);
        CHECK(want[0] > 0.1f);
        for (int i = 0; i < 11; i++)
            CHECK(got[i] == want[i]);
    }
    ot_graph_free(twin);
    ot_graph_free(g);
}
