/*
 * test_quant.c: quantisation: the QuantizeLinear/DequantizeLinear and
 * FakeQuant kernels against values worked out by hand, FakeQuant's
 * straight-through gradient through autodiff, the calibration thresholds,
 * and the structure the int8 and float16 converters write.
 */
#include <math.h>
#include <stdlib.h>

#include "converters/quant.h"
#include "exec/exec.h"
#include "ops/grad_util.h"
#include "ops/ops.h"
#include "passes/autodiff.h"
#include "test.h"
#include "train/calibrate.h"

static int32_t add_input(ot_graph *g, const char *name, int ndim, const int64_t *dims)
{
    int32_t id;
    ot_err err;
    ot_err_init(&err);
    if (ot_graph_intern_value(g, name, &id, &err) != OT_OK)
        return -1;
    ot_value *v = &g->values[id];
    v->dtype = OT_DTYPE_FLOAT;
    v->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        v->dims[i] = dims[i];
    v->flags |= OT_VAL_INPUT | OT_VAL_SHAPE_DECLARED;
    ot_io *io = ot_arena_alloc(&g->arena, sizeof *io * (size_t)(g->n_inputs + 1));
    if (g->n_inputs)
        memcpy(io, g->inputs, sizeof *io * (size_t)g->n_inputs);
    io[g->n_inputs] = (ot_io){ .value = id };
    g->inputs = io;
    g->n_inputs++;
    return id;
}

static int32_t node(ot_graph *g, const char *domain, const char *type, int opset,
                    const int32_t *in, int n_in, const ot_attr *a, int n_a, ot_err *err)
{
    const ot_op_desc *d = ot_op_find(domain, type, opset);
    int32_t out = -1;
    char hint[64];
    snprintf(hint, sizeof hint, "%s_out", type);
    const char *names[1] = { hint };
    if (!d || ot_op_grad_emit(g, d, opset, type, in, n_in, a, n_a, names, &out, 1, err) != OT_OK)
        return -1;
    return out;
}

/* Runs g (outputs added for `outs`) on one input; returns the executor. */
static ot_exec *run1(ot_graph *g, int32_t x, ot_tensor *xt, const int32_t *outs, int n_outs,
                     ot_err *err)
{
    ot_exec *ex = NULL;
    for (int i = 0; i < n_outs; i++)
        if (ot_pass_add_output(g, outs[i], err) != OT_OK)
            return NULL;
    ot_exec_input b = { .value = x, .tensor = *xt };
    ot_exec_opts o = { .cpu.threads = 1 };
    if (ot_exec_compile(g, &b, 1, &o, &ex, err) != OT_OK || ot_exec_run(ex, xt, 1, err) != OT_OK) {
        ot_exec_free(ex);
        return NULL;
    }
    return ex;
}

TEST(quant_qdq_kernels)
{
    ot_err err;
    ot_err_init(&err);
    ot_graph *g = ot_graph_new();
    int64_t dims[2] = { 2, 4 };
    int32_t x = add_input(g, "x", 2, dims);
    float s = 0.5f;
    int8_t zp = 0;
    int32_t s_id, zp_id, s2_id;
    CHECK_OK(ot_op_grad_const_f32(g, "s", NULL, 0, &s, &s_id, &err), &err);
    CHECK_OK(ot_quant_add_const(g, "zp", OT_DTYPE_INT8, NULL, 0, &zp, &zp_id, &err), &err);
    int32_t in[3] = { x, s_id, zp_id };
    int32_t q = node(g, "", "QuantizeLinear", 13, in, 3, NULL, 0, &err);
    CHECK(q >= 0);
    CHECK_EQ_INT(g->values[q].dtype, OT_DTYPE_INT8);
    /* per-axis dequantisation along axis 0: scales 1 and 2 */
    float s2[2] = { 1.0f, 2.0f };
    int64_t two = 2;
    CHECK_OK(ot_op_grad_const_f32(g, "s2", &two, 1, s2, &s2_id, &err), &err);
    ot_attr ax = ot_op_grad_attr_int("axis", 0);
    int32_t in2[2] = { q, s2_id };
    int32_t y = node(g, "", "DequantizeLinear", 13, in2, 2, &ax, 1, &err);
    CHECK(y >= 0);
    /* 0.25 / 0.5 = 0.5 rounds to 0 (half to even), 0.75 -> 2, -100 saturates */
    float xv[8] = { 0.25f, 0.75f, -1.25f, -100.0f, 1.0f, 3.0f, 200.0f, -0.74f };
    int8_t want_q[8] = { 0, 2, -2, -128, 2, 6, 127, -1 };
    float want_y[8] = { 0, 2, -2, -128, 4, 12, 254, -2 };
    ot_tensor xt = { .dtype = OT_DTYPE_FLOAT, .ndim = 2, .dims = { 2, 4 }, .data = xv,
                     .bytes = sizeof xv };
    int32_t outs[2] = { q, y };
    ot_exec *ex = run1(g, x, &xt, outs, 2, &err);
    CHECK(ex != NULL);
    const int8_t *qp = ot_exec_output(ex, 0)->data;
    const float *yp = ot_exec_output(ex, 1)->data;
    for (int i = 0; i < 8; i++) {
        CHECK_EQ_INT(qp[i], want_q[i]);
        CHECK(yp[i] == want_y[i]);
    }
    ot_exec_free(ex);
    ot_graph_free(g);
}

/* FakeQuant(x, 0.1) forward, and dL/dx = dL/dy inside [-12.7, 12.7], 0
   outside (straight-through); a dynamic FakeQuant passes dy unchanged. */
TEST(quant_fake_quant_straight_through)
{
    ot_err err;
    ot_err_init(&err);
    for (int dyn = 0; dyn < 2; dyn++) {
        ot_graph *g = ot_graph_new();
        int64_t dims[2] = { 2, 5 };
        int32_t x = add_input(g, "x", 2, dims);
        float s = 0.1f;
        int32_t s_id;
        CHECK_OK(ot_op_grad_const_f32(g, "s", NULL, 0, &s, &s_id, &err), &err);
        int32_t in[2] = { x, s_id };
        ot_attr a[3] = { ot_op_grad_attr_int("dynamic", 1), ot_op_grad_attr_int("per_channel", 1),
                         ot_op_grad_attr_int("axis", 0) };
        int32_t y = node(g, OT_OP_DOMAIN_PRIVATE, "FakeQuant", 1, in, dyn ? 1 : 2, dyn ? a : NULL,
                         dyn ? 3 : 0, &err);
        CHECK(y >= 0);
        float rv[10] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
        int32_t r;
        CHECK_OK(ot_op_grad_const_f32(g, "r", dims, 2, rv, &r, &err), &err);
        int32_t m_in[2] = { y, r };
        int32_t m = node(g, "", "Mul", 14, m_in, 2, NULL, 0, &err);
        int32_t L = node(g, OT_OP_DOMAIN_PRIVATE, "ReduceSumTo", 1, &m, 1, NULL, 0, &err);
        CHECK(m >= 0 && L >= 0);
        int32_t dx = -1;
        CHECK_OK(ot_pass_autodiff(g, L, &x, 1, &dx, &err), &err);
        CHECK(dx >= 0);
        float xv[10] = { 0.04f, 0.06f, -0.26f, 12.0f, 12.69f, 12.8f, -13.0f, 20.0f, -12.7f, 0 };
        ot_tensor xt = { .dtype = OT_DTYPE_FLOAT, .ndim = 2, .dims = { 2, 5 }, .data = xv,
                         .bytes = sizeof xv };
        int32_t outs[2] = { y, dx };
        ot_exec *ex = run1(g, x, &xt, outs, 2, &err);
        CHECK(ex != NULL);
        const float *yp = ot_exec_output(ex, 0)->data, *gp = ot_exec_output(ex, 1)->data;
        for (int i = 0; i < 10; i++) {
            if (!dyn) {
                double q = nearbyint((double)xv[i] / 0.1);
                q = q > 127 ? 127 : q < -127 ? -127 : q;
                CHECK(fabs((double)yp[i] - q * (double)0.1f) < 1e-6);
                bool inside = fabs((double)xv[i]) <= 127 * (double)0.1f;
                CHECK(gp[i] == (inside ? rv[i] : 0.0f));
            } else {
                /* rows of 5 scaled by their own max |x| / 127 */
                CHECK(gp[i] == rv[i]);
                float amax = i < 5 ? 12.69f : 20.0f;
                double sc = (double)amax / 127;
                CHECK(fabs((double)yp[i] - nearbyint((double)xv[i] / sc) * sc) < 1e-5);
            }
        }
        ot_exec_free(ex);
        ot_graph_free(g);
    }
}

TEST(quant_calib_thresholds)
{
    enum { B = 2048 };
    static uint64_t h[B];
    memset(h, 0, sizeof h);
    /* a half-normal-like bulk below 1/8 of the range and a few outliers */
    for (int i = 0; i < B / 8; i++)
        h[i] = (uint64_t)(100000.0 * exp(-(double)i * i / (2.0 * 60 * 60)));
    h[B - 1] = 3;
    float range = 16.0f, amax = 16.0f;
    CHECK(ot_calib_threshold(h, B, range, amax, OT_CALIB_MINMAX, 0) == amax);
    float p = ot_calib_threshold(h, B, range, amax, OT_CALIB_PERCENTILE, 99.99);
    float e = ot_calib_threshold(h, B, range, amax, OT_CALIB_ENTROPY, 0);
    /* both clip the outliers and keep the bulk (60 bins = 0.47 is its sd) */
    CHECK(p > 0.9f && p < 2.5f);
    CHECK(e > 0.9f && e < 2.5f);
    CHECK(ot_calib_threshold(h, B, 0, 0, OT_CALIB_ENTROPY, 0) == 0);
}

/* x -> Conv(W, B) -> Relu -> Softmax; returns the graph. */
static ot_graph *small_net(int32_t *xo, ot_err *err)
{
    ot_graph *g = ot_graph_new();
    g->ir_version = 8;
    g->opsets = ot_arena_alloc(&g->arena, sizeof *g->opsets);
    g->opsets[0] = (ot_opset){ .domain = "", .version = 13 };
    g->n_opsets = 1;
    int64_t xd[4] = { 1, 2, 3, 3 }, wd[4] = { 3, 2, 1, 1 }, bd[1] = { 3 };
    int32_t x = add_input(g, "x", 4, xd), w, b;
    float wv[6] = { 0.5f, -1.0f, 0.25f, 0.125f, -2.0f, 0.001f }, bv[3] = { 0.1f, -0.2f, 0.3f };
    if (ot_op_grad_const_f32(g, "W", wd, 4, wv, &w, err) != OT_OK ||
        ot_op_grad_const_f32(g, "B", bd, 1, bv, &b, err) != OT_OK)
        return g;
    int32_t in[3] = { x, w, b };
    int32_t c = node(g, "", "Conv", 13, in, 3, NULL, 0, err);
    int32_t r = node(g, "", "Relu", 13, &c, 1, NULL, 0, err);
    int32_t s = node(g, "", "Softmax", 13, &r, 1, NULL, 0, err);
    ot_pass_add_output(g, s, err);
    *xo = x;
    return g;
}

TEST(quant_int8_structure)
{
    ot_err err;
    ot_err_init(&err);
    int32_t x = -1;
    ot_graph *g = small_net(&x, &err);
    CHECK(x >= 0);
    ot_calib_ranges r;
    CHECK_OK(ot_calib_ranges_init(&r, g->n_values, &err), &err);
    bool *want = calloc((size_t)g->n_values, 1);
    ot_int8_activations(g, want);
    CHECK(want[x]);
    r.amax[x] = 2.54f;
    ot_quant_report rep;
    CHECK_OK(ot_int8_convert(g, &r, &rep, &err), &err);
    CHECK_EQ_INT(rep.n_converted, 1);
    CHECK_EQ_INT(rep.n_kept, 1);
    int n_dq = 0, n_q = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        if (!strcmp(n->op_type, "QuantizeLinear"))
            n_q++;
        if (strcmp(n->op_type, "DequantizeLinear"))
            continue;
        n_dq++;
        const ot_tensor *q = ot_graph_const(g, n->in[0]), *s = ot_graph_const(g, n->in[1]),
                        *z = ot_graph_const(g, n->in[2]);
        if (!q)
            continue; /* the activation's */
        CHECK(s && z);
        CHECK_EQ_INT(ot_node_attr_int(n, "axis", -5), 0);
        CHECK(ot_tensor_numel(s) == 3 && ot_tensor_numel(z) == 3);
        for (int c = 0; c < 3; c++)
            CHECK(ot_tensor_get_f64(z, c) == 0);
        if (q->dtype == OT_DTYPE_INT8) { /* W: symmetric, max |q| 127 per channel */
            CHECK_EQ_INT(z->dtype, OT_DTYPE_INT8);
            const float want_s[3] = { 1.0f / 127, 0.25f / 127, 2.0f / 127 };
            for (int c = 0; c < 3; c++) {
                CHECK(fabs(ot_tensor_get_f64(s, c) - (double)want_s[c]) < 1e-9);
                double m = 0;
                for (int k = 0; k < 2; k++)
                    m = fmax(m, fabs(ot_tensor_get_f64(q, c * 2 + k)));
                CHECK(m == 127);
            }
        } else { /* B: int32 at input scale x weight scale */
            CHECK_EQ_INT(q->dtype, OT_DTYPE_INT32);
            CHECK(fabs(ot_tensor_get_f64(s, 0) - (2.54 / 127) * (1.0 / 127)) < 1e-9);
        }
    }
    CHECK_EQ_INT(n_q, 1);
    CHECK_EQ_INT(n_dq, 3);
    free(want);
    ot_calib_ranges_fini(&r);
    ot_graph_free(g);
}

TEST(quant_int8_refuses_old_opset_and_missing_ranges)
{
    ot_err err;
    ot_err_init(&err);
    int32_t x;
    ot_graph *g = small_net(&x, &err);
    ot_quant_report rep;
    CHECK(ot_int8_convert(g, NULL, &rep, &err) == OT_ERR_ARG);
    CHECK(strstr(err.msg, "'x'") != NULL);
    g->opsets[0].version = 12;
    CHECK(ot_int8_convert(g, NULL, &rep, &err) == OT_ERR_UNSUPPORTED);
    CHECK(strstr(err.msg, "opset 13") != NULL);
    ot_graph_free(g);
}

static bool casts_chain(const ot_graph *g)
{
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        int32_t p = n->n_in ? g->values[n->in[0]].producer : -1;
        if (!strcmp(n->op_type, "Cast") && p >= 0 && !strcmp(g->nodes[p].op_type, "Cast"))
            return true;
    }
    return false;
}

TEST(quant_fp16_islands_and_io)
{
    ot_err err;
    ot_err_init(&err);
    for (int keep = 1; keep >= 0; keep--) {
        int32_t x;
        ot_graph *g = small_net(&x, &err);
        ot_fp16_opts o = { .no_keep_io_types = !keep };
        ot_quant_report rep;
        CHECK_OK(ot_fp16_convert(g, &o, &rep, &err), &err);
        CHECK(!casts_chain(g));
        int32_t out = g->outputs[0].value;
        CHECK_EQ_INT(g->values[x].dtype, keep ? OT_DTYPE_FLOAT : OT_DTYPE_FLOAT16);
        CHECK_EQ_INT(g->values[out].dtype, OT_DTYPE_FLOAT); /* Softmax stays float32 */
        for (int32_t i = 0; i < g->n_nodes; i++) {
            const ot_node *n = &g->nodes[i];
            if (!strcmp(n->op_type, "Conv")) {
                CHECK_EQ_INT(g->values[n->in[1]].dtype, OT_DTYPE_FLOAT16);
                CHECK_EQ_INT(g->values[n->in[0]].dtype, OT_DTYPE_FLOAT16);
            }
            if (!strcmp(n->op_type, "Softmax"))
                CHECK_EQ_INT(g->values[n->in[0]].dtype, OT_DTYPE_FLOAT);
        }
        /* casts: x in (keep only), Relu's output back to float32 */
        CHECK_EQ_INT(rep.n_casts, keep ? 2 : 1);
        ot_graph_free(g);
    }
}

TEST(quant_fp16_range_kept_float32)
{
    ot_err err;
    ot_err_init(&err);
    int32_t x;
    ot_graph *g = small_net(&x, &err);
    ot_calib_ranges r;
    CHECK_OK(ot_calib_ranges_init(&r, g->n_values, &err), &err);
    int32_t conv = -1;
    for (int32_t i = 0; i < g->n_nodes; i++)
        if (!strcmp(g->nodes[i].op_type, "Conv"))
            conv = i;
    int32_t y = g->nodes[conv].out[0];
    r.lo[y] = -1;
    r.hi[y] = 1e6f;
    ot_fp16_opts o = { .ranges = &r };
    ot_quant_report rep;
    CHECK_OK(ot_fp16_convert(g, &o, &rep, &err), &err);
    CHECK_EQ_INT(rep.n_range_kept, 2); /* the Conv that writes it, the Relu that reads it */
    CHECK_EQ_INT(g->values[y].dtype, OT_DTYPE_FLOAT);
    CHECK(!casts_chain(g));
    ot_calib_ranges_fini(&r);
    ot_graph_free(g);
}
