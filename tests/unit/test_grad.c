/*
 * test_grad.c: finite-difference checks of every gradient rule (src/ops/
 * grad_rules.c) and the backward kernels behind them (src/exec/cpu/
 * ref_grad*.c), through ot_pass_autodiff and the executor.
 *
 * Each case builds a tiny graph whose differentiated operands are graph
 * inputs (the executor treats initializers as constants), adds the loss
 * L = sum(y * r) with a seeded random constant r (Mul, then ReduceSumTo to a
 * scalar), runs autodiff, and marks y, L and the gradients as outputs. One
 * compiled executor then gives the analytic gradient, and the central
 * difference (L(x + h) - L(x - h)) / 2h, with L summed in double from y,
 * gives the numeric one, for every element (at most MAX_SAMPLES sampled per
 * tensor). Pass: |g - g_num| <= ATOL + RTOL * |g_num|. Inputs stay off kinks:
 * ReLU-like inputs away from 0, max-pool inputs distinct and spaced wider than
 * h, Clip inputs away from the bounds.
 *
 * OT_TEST_DEVICE=cuda runs the checks' executors on the GPU (the oneDNN
 * cases then compare the GPU's outputs with the CPU's plain kernels):
 * tests/gpu/check.sh does, on a machine with one.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "exec/cpu/ref.h"
#include "exec/exec.h"
#include "exec/rewrite.h"
#include "ops/grad_util.h"
#include "passes/autodiff.h"
#include "test.h"

#define MAX_IN 24
#define MAX_SAMPLES 120
#define RTOL 1e-2
#define ATOL 1e-3

/* ------------------------------------------------------------------ rng */

typedef struct rng {
    uint64_t s;
} rng;

static double rnd(rng *r) /* [0, 1) */
{
    r->s = r->s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(r->s >> 11) / 9007199254740992.0;
}

static double uni(rng *r, double lo, double hi) { return lo + (hi - lo) * rnd(r); }

/* --------------------------------------------------------------- a case */

typedef enum { FILL_UNI, FILL_AWAY0, FILL_DISTINCT, FILL_POS } fill_kind;

typedef struct gcase {
    ot_graph *g;
    rng r;
    int n_in;
    int32_t in_ids[MAX_IN];
    ot_tensor in[MAX_IN];
    bool diff[MAX_IN];
    double h;
    bool onednn; /* compile with oneDNN allowed (default: plain kernels) */
    /* instead of finite differences, compare every output (y, the loss, the
       gradients) of a oneDNN executor with the plain kernels' */
    bool vs_plain;
    const char *fused[4]; /* step kinds the oneDNN executor must have      */
    /* with vs_plain: also the same bytes as a oneDNN executor without
       fusion (opts.cpu.no_fusion) */
    bool vs_unfused;
    ot_err err;
} gcase;

/* Where the checks compute: OT_TEST_DEVICE, else the CPU. A name that is not
   a usable device ends the program rather than checking the CPU instead. */
static ot_device test_device(void)
{
    ot_device d;
    ot_err e;
    ot_err_init(&e);
    if (ot_device_parse(getenv("OT_TEST_DEVICE"), &d, &e) != OT_OK) {
        fprintf(stderr, "OT_TEST_DEVICE: %s\n", e.msg);
        exit(2);
    }
    return d;
}

static void gc_init(gcase *c, uint64_t seed)
{
    memset(c, 0, sizeof *c);
    c->g = ot_graph_new();
    c->r.s = seed * 2654435761u + 12345;
    c->h = 1e-2;
    ot_err_init(&c->err);
}

static void gc_fini(gcase *c)
{
    for (int i = 0; i < c->n_in; i++)
        free(c->in[i].data);
    ot_graph_free(c->g);
}

static int64_t numel_of(int ndim, const int64_t *dims)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= dims[i];
    return n;
}

/* Adds a graph input with data; float inputs filled as `fill` says over
   [lo, hi), int64 inputs with integers in [lo, hi). Returns its value id. */
static int32_t gc_input(gcase *c, const char *name, ot_dtype dt, int ndim, const int64_t *dims,
                        fill_kind fill, double lo, double hi, bool diff)
{
    ot_graph *g = c->g;
    int32_t id;
    if (ot_graph_intern_value(g, name, &id, &c->err) != OT_OK || c->n_in >= MAX_IN)
        return -1;
    ot_value *v = &g->values[id];
    v->dtype = dt;
    v->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        v->dims[i] = dims[i];
    v->flags |= OT_VAL_INPUT | OT_VAL_SHAPE_DECLARED;
    ot_io *io = ot_arena_alloc(&g->arena, sizeof *io * (size_t)(g->n_inputs + 1));
    if (g->n_inputs)
        memcpy(io, g->inputs, sizeof *io * (size_t)g->n_inputs);
    io[g->n_inputs].value = id;
    g->inputs = io;
    g->n_inputs++;

    ot_tensor *t = &c->in[c->n_in];
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->dims[i] = dims[i];
    int64_t n = numel_of(ndim, dims);
    t->bytes = (size_t)n * ot_dtype_size(dt);
    t->data = calloc(t->bytes ? t->bytes : 1, 1);
    if (dt == OT_DTYPE_INT64) {
        for (int64_t i = 0; i < n; i++)
            ((int64_t *)t->data)[i] = (int64_t)uni(&c->r, lo, hi);
    } else {
        float *f = t->data;
        for (int64_t i = 0; i < n; i++) {
            double x = uni(&c->r, lo, hi);
            if (fill == FILL_AWAY0) /* |x| in [0.1, hi] with a random sign */
                x = (rnd(&c->r) < 0.5 ? -1 : 1) * uni(&c->r, 0.1, hi);
            f[i] = (float)x;
        }
        if (fill == FILL_DISTINCT) { /* a shuffled ramp: ties and near-ties apart by 0.05 */
            for (int64_t i = 0; i < n; i++)
                f[i] = (float)(lo + 0.05 * (double)i);
            for (int64_t i = n - 1; i > 0; i--) {
                int64_t j = (int64_t)(rnd(&c->r) * (double)(i + 1));
                float tmp = f[i];
                f[i] = f[j];
                f[j] = tmp;
            }
        }
    }
    c->in_ids[c->n_in] = id;
    c->diff[c->n_in] = diff && dt == OT_DTYPE_FLOAT;
    c->n_in++;
    return id;
}

/* A constant float initializer with random values in [lo, hi). */
static int32_t gc_const(gcase *c, const char *name, int ndim, const int64_t *dims, double lo,
                        double hi)
{
    int64_t n = numel_of(ndim, dims);
    float *f = malloc(sizeof *f * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++)
        f[i] = (float)uni(&c->r, lo, hi);
    int32_t id = -1;
    if (ot_op_grad_const_f32(c->g, name, dims, ndim, f, &id, &c->err) != OT_OK)
        id = -1;
    free(f);
    return id;
}

static int32_t gc_const_i64(gcase *c, const char *name, int ndim, const int64_t *dims,
                            const int64_t *vals)
{
    int32_t id = -1;
    if (ot_op_grad_const_i64(c->g, name, dims, ndim, vals, &id, &c->err) != OT_OK)
        id = -1;
    return id;
}

/* Adds a node of (domain, type, opset) with n_out fresh outputs; returns
   output 0 (or -1 on error, the message in c->err). */
static int32_t gc_node_n(gcase *c, const char *domain, const char *type, int opset,
                         const int32_t *in, int n_in, const ot_attr *attrs, int n_attrs,
                         int n_out, int32_t *outs)
{
    const ot_op_desc *d = ot_op_find(domain, type, opset);
    if (!d) {
        ot_err_set(&c->err, OT_ERR_ARG, "no op %s %d", type, opset);
        return -1;
    }
    char names[8][64];
    const char *pn[8];
    int32_t tmp[8];
    for (int i = 0; i < n_out && i < 8; i++) {
        snprintf(names[i], sizeof names[i], "%s_out%d", type, i);
        pn[i] = names[i];
    }
    if (!outs)
        outs = tmp;
    if (ot_op_grad_emit(c->g, d, opset, type, in, n_in, attrs, n_attrs, pn, outs, n_out,
                        &c->err) != OT_OK)
        return -1;
    return outs[0];
}

static int32_t gc_node(gcase *c, const char *type, int opset, const int32_t *in, int n_in,
                       const ot_attr *attrs, int n_attrs)
{
    return gc_node_n(c, "", type, opset, in, n_in, attrs, n_attrs, 1, NULL);
}

/* L = sum over the graph's y of y * r (r random, fixed); returns L's value. */
static int32_t gc_loss(gcase *c, int32_t y, int32_t *r_out)
{
    const ot_value *yv = &c->g->values[y];
    int ndim = yv->ndim;
    int64_t dims[OT_MAX_DIMS];
    for (int i = 0; i < ndim; i++)
        dims[i] = yv->dims[i];
    int32_t r = gc_const(c, "r", ndim, dims, -1.0, 1.0);
    int32_t in[2] = { y, r };
    int32_t z = gc_node(c, "Mul", 14, in, 2, NULL, 0);
    if (z < 0)
        return -1;
    *r_out = r;
    return gc_node_n(c, OT_OP_DOMAIN_PRIVATE, "ReduceSumTo", 1, &z, 1, NULL, 0, 1, NULL);
}

/* sum y * r in double over the executor's output 0 (y) */
static double loss_of(const ot_tensor *y, const ot_tensor *r)
{
    double s = 0;
    int64_t n = ot_tensor_numel(y);
    for (int64_t i = 0; i < n; i++)
        s += (double)((const float *)y->data)[i] * (double)((const float *)r->data)[i];
    return s;
}

/* How many of the executor's steps are of this kind ("reorder", "Conv+BN"...). */
static int gc_steps_of_kind(const ot_exec *fx, const char *kind)
{
    int n = 0;
    for (int i = 0; i < ot_exec_n_steps(fx); i++) {
        ot_exec_step_time t;
        ot_exec_step_profile(fx, i, &t);
        n += !strcmp(t.kind, kind);
    }
    return n;
}

/* Compiles c's graph with the plain kernels only and compares every output
   with x's (oneDNN's): |a - b| <= 1e-4 + 1e-4 |b|. */
static bool gc_vs_plain(gcase *c, ot_exec *x, const ot_exec_input *bind, const char *what)
{
    ot_exec *p = NULL;
    ot_exec_opts opts = { .cpu.threads = 1, .cpu.plain_only = true };
    bool ok = false;
    if (ot_exec_compile(c->g, bind, c->n_in, &opts, &p, &c->err) != OT_OK ||
        ot_exec_run(p, c->in, c->n_in, &c->err) != OT_OK) {
        ot_test_fail(__FILE__, __LINE__, "%s: plain kernels: %s", what, c->err.msg);
        goto out;
    }
    for (int i = 0; i < ot_exec_n_outputs(x); i++) {
        const ot_tensor *a = ot_exec_output(x, i), *b = ot_exec_output(p, i);
        int64_t n = ot_tensor_numel(a);
        if (n != ot_tensor_numel(b)) {
            ot_test_fail(__FILE__, __LINE__, "%s: output %d sizes differ", what, i);
            goto out;
        }
        for (int64_t k = 0; k < n; k++) {
            double va = (double)((const float *)a->data)[k];
            double vb = (double)((const float *)b->data)[k];
            if (!(fabs(va - vb) <= 1e-4 + 1e-4 * fabs(vb))) {
                ot_test_fail(__FILE__, __LINE__, "%s: output '%s'[%lld]: oneDNN %.7g, plain %.7g",
                             what, ot_exec_output_name(x, i), (long long)k, va, vb);
                goto out;
            }
        }
    }
    ok = true;
out:
    ot_exec_free(p);
    return ok;
}

/* Compiles c's graph on oneDNN without fusion and requires every output
   to have x's bytes. */
static bool gc_vs_unfused(gcase *c, ot_exec *x, const ot_exec_input *bind, const char *what)
{
    ot_exec *p = NULL;
    ot_exec_opts opts = { .cpu.threads = 1, .cpu.no_fusion = true };
    bool ok = false;
    if (ot_exec_compile(c->g, bind, c->n_in, &opts, &p, &c->err) != OT_OK ||
        ot_exec_run(p, c->in, c->n_in, &c->err) != OT_OK) {
        ot_test_fail(__FILE__, __LINE__, "%s: without fusion: %s", what, c->err.msg);
        goto out;
    }
    for (int i = 0; i < ot_exec_n_outputs(x); i++) {
        const ot_tensor *a = ot_exec_output(x, i), *b = ot_exec_output(p, i);
        int64_t n = ot_tensor_numel(a);
        if (n != ot_tensor_numel(b) || memcmp(a->data, b->data, (size_t)n * sizeof(float))) {
            ot_test_fail(__FILE__, __LINE__, "%s: output '%s' differs from the unfused one",
                         what, ot_exec_output_name(x, i));
            goto out;
        }
    }
    ok = true;
out:
    ot_exec_free(p);
    return ok;
}

/*
 * Runs the check for output y: autodiff w.r.t. every input marked diff,
 * compile, compare analytic and numeric gradients. Reports failures through
 * ot_test_fail and returns false on the first one.
 */
static bool gc_check(gcase *c, int32_t y, const char *what)
{
    ot_graph *g = c->g;
    ot_exec *x = NULL;
    bool ok = false;
    int32_t r, params[MAX_IN], grads[MAX_IN];
    int n_params = 0, which[MAX_IN];
    if (y < 0) {
        ot_test_fail(__FILE__, __LINE__, "%s: building the graph: %s", what, c->err.msg);
        return false;
    }
    int32_t L = gc_loss(c, y, &r);
    if (L < 0) {
        ot_test_fail(__FILE__, __LINE__, "%s: building the loss: %s", what, c->err.msg);
        return false;
    }
    for (int i = 0; i < c->n_in; i++)
        if (c->diff[i]) {
            which[n_params] = i;
            params[n_params++] = c->in_ids[i];
        }
    if (ot_pass_autodiff(g, L, params, n_params, grads, &c->err) != OT_OK) {
        ot_test_fail(__FILE__, __LINE__, "%s: autodiff: %s", what, c->err.msg);
        return false;
    }
    if (ot_pass_add_output(g, y, &c->err) != OT_OK || ot_pass_add_output(g, L, &c->err) != OT_OK)
        goto fail;
    for (int p = 0; p < n_params; p++) {
        if (grads[p] < 0) {
            ot_test_fail(__FILE__, __LINE__, "%s: no gradient for '%s'", what,
                         g->values[params[p]].name);
            return false;
        }
        if (ot_pass_add_output(g, grads[p], &c->err) != OT_OK)
            goto fail;
    }
    ot_exec_input bind[MAX_IN];
    for (int i = 0; i < c->n_in; i++) {
        bind[i].value = c->in_ids[i];
        bind[i].tensor = c->in[i];
        bind[i].const_value = false;
    }
    ot_exec_opts opts = { .device = test_device(), .cpu.threads = 1,
                          .cpu.plain_only = !c->onednn };
    if (ot_exec_compile(g, bind, c->n_in, &opts, &x, &c->err) != OT_OK)
        goto fail;
    if (ot_exec_run(x, c->in, c->n_in, &c->err) != OT_OK)
        goto fail;
    if (c->vs_plain) {
        for (int k = 0; k < 4 && c->fused[k] && opts.device.kind == OT_DEVICE_CPU; k++)
            if (gc_steps_of_kind(x, c->fused[k]) < 1) {
                ot_test_fail(__FILE__, __LINE__, "%s: no '%s' step", what, c->fused[k]);
                goto out;
            }
        ok = gc_vs_plain(c, x, bind, what) && (!c->vs_unfused || gc_vs_unfused(c, x, bind, what));
        goto out;
    }
    int base_out = ot_exec_n_outputs(x) - n_params - 2;
    const ot_tensor *rt = ot_graph_const(g, r);
    for (int p = 0; p < n_params; p++) {
        /* the analytic gradient at the unperturbed inputs: the runs of the
           previous parameter's differences overwrote the outputs */
        if (p > 0 && ot_exec_run(x, c->in, c->n_in, &c->err) != OT_OK)
            goto fail;
        const ot_tensor *gt = ot_exec_output(x, base_out + 2 + p);
        ot_tensor *xt = &c->in[which[p]];
        int64_t n = ot_tensor_numel(xt);
        if (ot_tensor_numel(gt) != n) {
            ot_test_fail(__FILE__, __LINE__, "%s: gradient of '%s' has %lld elements, not %lld",
                         what, g->values[params[p]].name, (long long)ot_tensor_numel(gt),
                         (long long)n);
            goto out;
        }
        double *ga = malloc(sizeof *ga * (size_t)(n ? n : 1));
        for (int64_t i = 0; i < n; i++)
            ga[i] = ((const float *)gt->data)[i];
        float *xv = xt->data;
        int64_t step = n > MAX_SAMPLES ? n / MAX_SAMPLES + 1 : 1;
        double worst = -1;
        int64_t worst_at = -1;
        double worst_num = 0;
        for (int64_t i = (int64_t)(rnd(&c->r) * (double)step) % (step ? step : 1); i < n;
             i += step) {
            float v = xv[i];
            float vp = (float)((double)v + c->h), vm = (float)((double)v - c->h);
            xv[i] = vp;
            if (ot_exec_run(x, c->in, c->n_in, &c->err) != OT_OK) {
                free(ga);
                goto fail;
            }
            double lp = loss_of(ot_exec_output(x, base_out), rt);
            xv[i] = vm;
            if (ot_exec_run(x, c->in, c->n_in, &c->err) != OT_OK) {
                free(ga);
                goto fail;
            }
            double lm = loss_of(ot_exec_output(x, base_out), rt);
            xv[i] = v;
            double num = (lp - lm) / ((double)vp - (double)vm);
            double excess = fabs(ga[i] - num) - (ATOL + RTOL * fabs(num));
            if (excess > worst) {
                worst = excess;
                worst_at = i;
                worst_num = num;
            }
        }
        if (worst > 0) {
            ot_test_fail(__FILE__, __LINE__,
                         "%s: d L / d '%s'[%lld]: analytic %.6g, numeric %.6g (tolerance %g + "
                         "%g * |numeric|, h %g)",
                         what, g->values[params[p]].name, (long long)worst_at, ga[worst_at],
                         worst_num, ATOL, RTOL, c->h);
            free(ga);
            goto out;
        }
        free(ga);
    }
    ok = true;
    goto out;
fail:
    ot_test_fail(__FILE__, __LINE__, "%s: %s", what, c->err.msg);
out:
    ot_exec_free(x);
    return ok;
}

/* Builds and checks: the body fills `y` using case c, then gc_check runs. */
#define GRAD_CASE(name, seed, ...)                                                              \
    TEST(name)                                                                                  \
    {                                                                                           \
        gcase c_;                                                                               \
        gcase *c = &c_;                                                                         \
        int32_t y = -1;                                                                         \
        gc_init(c, seed);                                                                       \
        __VA_ARGS__;                                                                            \
        gc_check(c, y, #name);                                                                  \
        gc_fini(c);                                                                             \
    }

#define DIMS(...) ((const int64_t[]){ __VA_ARGS__ })
#define NDIMS(...) ((int)(sizeof((const int64_t[]){ __VA_ARGS__ }) / sizeof(int64_t)))
#define IN(c, name, fill, lo, hi, diff, ...)                                                    \
    gc_input(c, name, OT_DTYPE_FLOAT, NDIMS(__VA_ARGS__), DIMS(__VA_ARGS__), fill, lo, hi, diff)
#define INTS(name, ...)                                                                         \
    ot_op_grad_attr_ints(name, DIMS(__VA_ARGS__), (size_t)NDIMS(__VA_ARGS__))

/* ------------------------------------------------------------------- Conv */

GRAD_CASE(grad_conv_pads_bias, 1, {
    int32_t in[3] = { IN(c, "x", FILL_UNI, -1, 1, true, 2, 3, 5, 5),
                      IN(c, "w", FILL_UNI, -1, 1, true, 4, 3, 3, 3),
                      IN(c, "b", FILL_UNI, -1, 1, true, 4) };
    ot_attr a[1] = { INTS("pads", 1, 1, 1, 1) };
    y = gc_node(c, "Conv", 13, in, 3, a, 1);
})

GRAD_CASE(grad_conv_strides_dilations_asym_pads, 2, {
    int32_t in[3] = { IN(c, "x", FILL_UNI, -1, 1, true, 1, 2, 7, 6),
                      IN(c, "w", FILL_UNI, -1, 1, true, 3, 2, 2, 3),
                      IN(c, "b", FILL_UNI, -1, 1, true, 3) };
    ot_attr a[3] = { INTS("strides", 2, 1), INTS("dilations", 2, 1), INTS("pads", 1, 0, 0, 2) };
    y = gc_node(c, "Conv", 11, in, 3, a, 3);
})

GRAD_CASE(grad_conv_groups, 3, {
    int32_t in[2] = { IN(c, "x", FILL_UNI, -1, 1, true, 2, 4, 5, 5),
                      IN(c, "w", FILL_UNI, -1, 1, true, 6, 2, 3, 3) };
    ot_attr a[2] = { ot_op_grad_attr_int("group", 2), INTS("kernel_shape", 3, 3) };
    y = gc_node(c, "Conv", 13, in, 2, a, 2);
})

GRAD_CASE(grad_conv_depthwise_stride2, 4, {
    int32_t in[3] = { IN(c, "x", FILL_UNI, -1, 1, true, 1, 3, 6, 6),
                      IN(c, "w", FILL_UNI, -1, 1, true, 3, 1, 3, 3),
                      IN(c, "b", FILL_UNI, -1, 1, true, 3) };
    ot_attr a[3] = { ot_op_grad_attr_int("group", 3), INTS("strides", 2, 2),
                     INTS("pads", 1, 1, 1, 1) };
    y = gc_node(c, "Conv", 13, in, 3, a, 3);
})

GRAD_CASE(grad_conv_1d_same_upper, 5, {
    int32_t in[2] = { IN(c, "x", FILL_UNI, -1, 1, true, 2, 2, 7),
                      IN(c, "w", FILL_UNI, -1, 1, true, 3, 2, 3) };
    ot_attr a[2] = { INTS("strides", 2), { .name = "auto_pad", .type = OT_ATTR_STRING,
                                           .s = "SAME_UPPER", .s_len = 10 } };
    y = gc_node(c, "Conv", 13, in, 2, a, 2);
})

/* oneDNN runs the forward Conv; the private backward ops stay plain C */
GRAD_CASE(grad_conv_onednn_forward, 6, {
    c->onednn = true;
    int32_t in[3] = { IN(c, "x", FILL_UNI, -1, 1, true, 2, 3, 6, 6),
                      IN(c, "w", FILL_UNI, -1, 1, true, 4, 3, 3, 3),
                      IN(c, "b", FILL_UNI, -1, 1, true, 4) };
    ot_attr a[2] = { INTS("pads", 1, 1, 1, 1), INTS("strides", 2, 2) };
    y = gc_node(c, "Conv", 13, in, 3, a, 2);
})

/* depthwise convolutions with kernels other than 3x3 (ConvNeXt's 7x7,
   EfficientNet's 5x5): the filter gradient on oneDNN in nhwc, against the
   plain kernels; channels a multiple of 16 and not */
TEST(grad_conv_depthwise_large_kernel)
{
    static const struct {
        int64_t channels, k, stride;
    } cases[] = { { 16, 7, 1 }, { 24, 5, 2 }, { 32, 3, 1 } };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gcase c_, *c = &c_;
        gc_init(c, 7 + (uint64_t)i);
        c->onednn = c->vs_plain = true;
        int64_t ch = cases[i].channels, k = cases[i].k, p = k / 2, s = cases[i].stride;
        int32_t in[3] = { IN(c, "x", FILL_UNI, -1, 1, true, 2, ch, 9, 8),
                          IN(c, "w", FILL_UNI, -1, 1, true, ch, 1, k, k),
                          IN(c, "b", FILL_UNI, -1, 1, true, ch) };
        ot_attr a[3] = { ot_op_grad_attr_int("group", ch), INTS("pads", p, p, p, p),
                         INTS("strides", s, s) };
        int32_t y = gc_node(c, "Conv", 13, in, 3, a, 3);
        c->fused[0] = "ConvGradFilter";
        char what[64];
        snprintf(what, sizeof what, "depthwise %lldx%lld, %lld channels", (long long)k,
                 (long long)k, (long long)ch);
        gc_check(c, y, what);
        gc_fini(c);
    }
}

/* -------------------------------------------------------------- BatchNorm */

/* eval mode, frozen scale and var: dX is a Mul by a constant */
GRAD_CASE(grad_batchnorm_eval_dx, 10, {
    int32_t in[5] = { IN(c, "x", FILL_UNI, -2, 2, true, 2, 3, 4, 4),
                      gc_const(c, "scale", 1, DIMS(3), 0.5, 1.5),
                      gc_const(c, "bias", 1, DIMS(3), -1, 1),
                      gc_const(c, "mean", 1, DIMS(3), -0.5, 0.5),
                      gc_const(c, "var", 1, DIMS(3), 0.5, 2) };
    ot_attr a[1] = { ot_op_grad_attr_float("epsilon", 1e-3f) };
    y = gc_node(c, "BatchNormalization", 15, in, 5, a, 1);
})

/* eval mode with trainable scale and bias: BatchNormGrad, training_mode=0 */
GRAD_CASE(grad_batchnorm_eval_params, 11, {
    int32_t in[5] = { IN(c, "x", FILL_UNI, -2, 2, true, 2, 3, 3, 2),
                      IN(c, "scale", FILL_UNI, 0.5, 1.5, true, 3),
                      IN(c, "bias", FILL_UNI, -1, 1, true, 3),
                      gc_const(c, "mean", 1, DIMS(3), -0.5, 0.5),
                      gc_const(c, "var", 1, DIMS(3), 0.5, 2) };
    y = gc_node(c, "BatchNormalization", 9, in, 5, NULL, 0);
})

/* A BatchNormTrain on x [3, C, 3, 3] with trained scale and bias; its y. */
static int32_t gc_bn_train(gcase *c, int64_t C)
{
    c->h = 5e-3;
    int32_t in[5] = { IN(c, "x", FILL_UNI, -2, 2, true, 3, C, 3, 3),
                      IN(c, "scale", FILL_UNI, 0.5, 1.5, true, C),
                      IN(c, "bias", FILL_UNI, -1, 1, true, C),
                      gc_const(c, "running_mean", 1, DIMS(C), -0.5, 0.5),
                      gc_const(c, "running_var", 1, DIMS(C), 0.5, 2) };
    ot_attr a[2] = { ot_op_grad_attr_float("epsilon", 1e-5f),
                     ot_op_grad_attr_float("momentum", 0.9f) };
    return gc_node_n(c, OT_OP_DOMAIN_PRIVATE, "BatchNormTrain", 1, in, 5, a, 2, 3, NULL);
}

/* training mode (BatchNormTrain): dX, dScale, dB through batch statistics */
GRAD_CASE(grad_batchnorm_train, 12, { y = gc_bn_train(c, 2); })

/* the same with oneDNN's batch normalization forward and backward */
GRAD_CASE(grad_batchnorm_train_onednn, 14, {
    c->onednn = true;
    y = gc_bn_train(c, 16);
})

/* eval-mode BatchNormGrad (running statistics) on oneDNN */
GRAD_CASE(grad_batchnorm_eval_params_onednn, 15, {
    c->onednn = true;
    int32_t in[5] = { IN(c, "x", FILL_UNI, -2, 2, true, 2, 16, 3, 2),
                      IN(c, "scale", FILL_UNI, 0.5, 1.5, true, 16),
                      IN(c, "bias", FILL_UNI, -1, 1, true, 16),
                      gc_const(c, "mean", 1, DIMS(16), -0.5, 0.5),
                      gc_const(c, "var", 1, DIMS(16), 0.5, 2) };
    y = gc_node(c, "BatchNormalization", 9, in, 5, NULL, 0);
})

/* a residual block's training step on oneDNN end to end (Conv and
   BatchNormTrain, Relu, MaxPool and Add in the layout the convolutions chose,
   BatchNormTrain+Relu and Conv+Add+Relu fused)
   against the plain kernels: across ReLU and max kinks finite differences
   cannot check a whole block, the single-op cases above check the rules */
GRAD_CASE(grad_block_onednn, 16, {
    c->onednn = true;
    c->vs_plain = true;
    c->fused[0] = "BatchNormTrain+Relu"; /* Relu's gradient reads its output */
    c->fused[1] = "Conv+Add+Relu";
    int32_t x = IN(c, "x", FILL_UNI, -1, 1, true, 2, 3, 9, 9);
    int32_t w1 = IN(c, "w1", FILL_UNI, -0.5, 0.5, true, 16, 3, 3, 3);
    int32_t w2 = IN(c, "w2", FILL_UNI, -0.3, 0.3, true, 16, 16, 3, 3);
    int32_t sc = IN(c, "scale", FILL_UNI, 0.5, 1.5, true, 16);
    int32_t bi = IN(c, "bias", FILL_UNI, -0.5, 0.5, true, 16);
    int32_t rm = gc_const(c, "rm", 1, DIMS(16), -0.5, 0.5);
    int32_t rv = gc_const(c, "rv", 1, DIMS(16), 0.5, 2);
    ot_attr pads[1] = { INTS("pads", 1, 1, 1, 1) };
    int32_t cin[2] = { x, w1 };
    int32_t h1 = gc_node(c, "Conv", 13, cin, 2, pads, 1);
    int32_t bin[5] = { h1, sc, bi, rm, rv };
    int32_t h2 = gc_node_n(c, OT_OP_DOMAIN_PRIVATE, "BatchNormTrain", 1, bin, 5, NULL, 0, 3,
                           NULL);
    int32_t h3 = gc_node(c, "Relu", 14, &h2, 1, NULL, 0);
    ot_attr mp[3] = { INTS("kernel_shape", 3, 3), INTS("strides", 2, 2),
                      INTS("pads", 1, 1, 1, 1) };
    int32_t h4 = gc_node(c, "MaxPool", 12, &h3, 1, mp, 3);
    int32_t cin2[2] = { h4, w2 };
    int32_t h5 = gc_node(c, "Conv", 13, cin2, 2, pads, 1);
    int32_t ain[2] = { h5, h4 };
    int32_t h6 = gc_node(c, "Add", 14, ain, 2, NULL, 0);
    int32_t h7 = gc_node(c, "Relu", 14, &h6, 1, NULL, 0);
    y = gc_node(c, "GlobalAveragePool", 1, &h7, 1, NULL, 0);
})

/* the residual Add + Relu of a training graph as one binary primitive with
   a post-op, in forward and backward against the plain kernels */
GRAD_CASE(grad_add_relu_onednn, 20, {
    c->onednn = true;
    c->vs_plain = true;
    c->fused[0] = "Add+Relu";
    int32_t a = IN(c, "a", FILL_UNI, -1, 1, true, 2, 16, 5, 5);
    int32_t b = IN(c, "b", FILL_UNI, -1, 1, true, 2, 16, 5, 5);
    int32_t ain[2] = { a, b };
    int32_t h = gc_node(c, "Add", 14, ain, 2, NULL, 0);
    y = gc_node(c, "Relu", 14, &h, 1, NULL, 0);
})

/* A squeeze-excite block with hard activations in the layout the
   convolutions chose (24 channels: padded in a 16-channel blocked layout):
   the channel-scale Mul, its gradient's ReduceSumTo, HardSigmoid and the
   HardSwish / HardSigmoid gradients run as loops on that layout
   (cpu_blocked.c), against the plain kernels */
GRAD_CASE(grad_squeeze_excite_blocked, 21, {
    c->onednn = true;
    c->vs_plain = true;
    c->fused[0] = "Mul(channel scale)";
    c->fused[1] = "Mul+ReduceSumTo(channels)";
    c->fused[2] = "HardSigmoid(blocked)";
    c->fused[3] = "UnaryGrad(blocked)";
    int32_t x = IN(c, "x", FILL_UNI, -1, 1, true, 2, 3, 7, 7);
    int32_t w1 = IN(c, "w1", FILL_UNI, -0.8, 0.8, true, 24, 3, 3, 3);
    int32_t w2 = IN(c, "w2", FILL_UNI, -0.5, 0.5, true, 24, 24, 1, 1);
    int32_t w3 = IN(c, "w3", FILL_UNI, -0.5, 0.5, true, 8, 24, 1, 1);
    ot_attr pads[1] = { INTS("pads", 1, 1, 1, 1) };
    int32_t in[2] = { x, w1 };
    int32_t h = gc_node(c, "Conv", 13, in, 2, pads, 1);
    int32_t hs = gc_node(c, "HardSwish", 14, &h, 1, NULL, 0);
    int32_t sq = gc_node(c, "GlobalAveragePool", 1, &hs, 1, NULL, 0);
    in[0] = sq, in[1] = w2;
    int32_t e = gc_node(c, "Conv", 13, in, 2, NULL, 0);
    int32_t s = gc_node(c, "HardSigmoid", 6, &e, 1, NULL, 0);
    in[0] = s, in[1] = hs; /* the scale first: either order is found */
    int32_t m = gc_node(c, "Mul", 14, in, 2, NULL, 0);
    in[0] = m, in[1] = w3;
    y = gc_node(c, "Conv", 13, in, 2, NULL, 0);
})

/* A SiLU (Sigmoid then Mul, as PyTorch exports it) between convolutions
   in the 16-channel blocked layout they chose (24 channels: 8 of padding):
   its gradient's two Muls, SigmoidGrad and Sum are one loop on that layout
   (cpu_blocked.c), with the unfused steps' bytes */
static int32_t gc_silu_block(gcase *c, bool scale_first)
{
    int32_t x = IN(c, "x", FILL_UNI, -1, 1, true, 2, 3, 7, 7);
    int32_t w1 = IN(c, "w1", FILL_UNI, -0.8, 0.8, true, 24, 3, 3, 3);
    int32_t w2 = IN(c, "w2", FILL_UNI, -0.5, 0.5, true, 8, 24, 1, 1);
    ot_attr pads[1] = { INTS("pads", 1, 1, 1, 1) };
    int32_t in[2] = { x, w1 };
    int32_t h = gc_node(c, "Conv", 13, in, 2, pads, 1);
    int32_t s = gc_node(c, "Sigmoid", 13, &h, 1, NULL, 0);
    in[0] = scale_first ? s : h, in[1] = scale_first ? h : s;
    int32_t m = gc_node(c, "Mul", 14, in, 2, NULL, 0);
    in[0] = m, in[1] = w2;
    return gc_node(c, "Conv", 13, in, 2, NULL, 0);
}

GRAD_CASE(grad_silu_blocked, 224, {
    c->onednn = true;
    c->vs_plain = true;
    c->vs_unfused = true;
    c->fused[0] = "SiLUGrad(blocked)";
    y = gc_silu_block(c, false);
})

GRAD_CASE(grad_silu_blocked_sigmoid_first, 225, {
    c->onednn = true;
    c->vs_plain = true;
    c->vs_unfused = true;
    c->fused[0] = "SiLUGrad(blocked)";
    y = gc_silu_block(c, true);
})

/* the same on oneDNN against finite differences */
GRAD_CASE(grad_silu_onednn, 226, {
    c->onednn = true;
    y = gc_silu_block(c, false);
})

/* EfficientNet's squeeze-excite block: SiLUs, and the Sigmoid scale's
   gradient dY * X summed over H and W as one loop (the product not
   written) */
GRAD_CASE(grad_squeeze_excite_silu, 228, {
    c->onednn = true;
    c->vs_plain = true;
    c->fused[0] = "SiLUGrad(blocked)";
    c->fused[1] = "Mul+ReduceSumTo(channels)";
    c->fused[2] = "Mul(channel scale)";
    int32_t x = IN(c, "x", FILL_UNI, -1, 1, true, 2, 3, 7, 7);
    int32_t w1 = IN(c, "w1", FILL_UNI, -0.8, 0.8, true, 24, 3, 3, 3);
    int32_t b1 = IN(c, "b1", FILL_UNI, -0.5, 0.5, true, 24);
    int32_t w2 = IN(c, "w2", FILL_UNI, -0.5, 0.5, true, 8, 24, 1, 1);
    int32_t w3 = IN(c, "w3", FILL_UNI, -0.5, 0.5, true, 24, 8, 1, 1);
    int32_t w4 = IN(c, "w4", FILL_UNI, -0.5, 0.5, true, 8, 24, 1, 1);
    ot_attr pads[1] = { INTS("pads", 1, 1, 1, 1) };
    int32_t in3[3] = { x, w1, b1 };
    int32_t h = gc_node(c, "Conv", 13, in3, 3, pads, 1);
    int32_t s = gc_node(c, "Sigmoid", 13, &h, 1, NULL, 0);
    int32_t in[2] = { h, s };
    int32_t a = gc_node(c, "Mul", 14, in, 2, NULL, 0);
    int32_t sq = gc_node(c, "GlobalAveragePool", 1, &a, 1, NULL, 0);
    in[0] = sq, in[1] = w2;
    int32_t e = gc_node(c, "Conv", 13, in, 2, NULL, 0);
    int32_t es = gc_node(c, "Sigmoid", 13, &e, 1, NULL, 0);
    in[0] = e, in[1] = es;
    e = gc_node(c, "Mul", 14, in, 2, NULL, 0);
    in[0] = e, in[1] = w3;
    e = gc_node(c, "Conv", 13, in, 2, NULL, 0);
    int32_t g = gc_node(c, "Sigmoid", 13, &e, 1, NULL, 0);
    in[0] = g, in[1] = a;
    int32_t m = gc_node(c, "Mul", 14, in, 2, NULL, 0);
    in[0] = m, in[1] = w4;
    y = gc_node(c, "Conv", 13, in, 2, NULL, 0);
})

/* that loop against the unfused Mul and ReduceSumTo(channels) on the Mul's
   blocked output, byte for byte (no other fusion in this graph) */
GRAD_CASE(grad_scale_sum_unfused, 229, {
    c->onednn = true;
    c->vs_plain = true;
    c->vs_unfused = true;
    c->fused[0] = "Mul+ReduceSumTo(channels)";
    int32_t x = IN(c, "x", FILL_UNI, -1, 1, true, 2, 3, 6, 6);
    int32_t w1 = IN(c, "w1", FILL_UNI, -0.8, 0.8, true, 24, 3, 3, 3);
    int32_t w2 = IN(c, "w2", FILL_UNI, -0.5, 0.5, true, 8, 24, 1, 1);
    ot_attr pads[1] = { INTS("pads", 1, 1, 1, 1) };
    int32_t in[2] = { x, w1 };
    int32_t h = gc_node(c, "Conv", 13, in, 2, pads, 1);
    int32_t p = gc_node(c, "GlobalAveragePool", 1, &h, 1, NULL, 0);
    int32_t g = gc_node(c, "Sigmoid", 13, &p, 1, NULL, 0);
    in[0] = h, in[1] = g;
    int32_t m = gc_node(c, "Mul", 14, in, 2, NULL, 0);
    in[0] = m, in[1] = w2;
    y = gc_node(c, "Conv", 13, in, 2, NULL, 0);
})

/* x read by a third node (its gradient a Sum of three): the four steps
   stay apart, with the plain kernels' results */
GRAD_CASE(grad_silu_third_reader, 227, {
    c->onednn = true;
    c->vs_plain = true;
    c->vs_unfused = true;
    int32_t x = IN(c, "x", FILL_UNI, -1, 1, true, 2, 16, 5, 5);
    int32_t s = gc_node(c, "Sigmoid", 13, &x, 1, NULL, 0);
    int32_t in[2] = { x, s };
    int32_t m = gc_node(c, "Mul", 14, in, 2, NULL, 0);
    in[0] = m, in[1] = x;
    y = gc_node(c, "Add", 14, in, 2, NULL, 0);
})

/* a RegNet-like block on oneDNN against the plain kernels: 1x1
   convolutions around a grouped 3x3 one with 8 channels per group (40
   channels: not a multiple of 16, so oneDNN's 1x1 convolutions may leave
   nhwc, which the grouped one then keeps), its weight gradient from a
   grouped blocked layout reordered into the plain tensor */
GRAD_CASE(grad_grouped_conv_onednn, 22, {
    c->onednn = true;
    c->vs_plain = true;
    c->fused[0] = "ConvGradFilter";
    int32_t x = IN(c, "x", FILL_UNI, -1, 1, true, 2, 16, 28, 28);
    int32_t w1 = IN(c, "w1", FILL_UNI, -0.5, 0.5, true, 40, 16, 1, 1);
    int32_t w2 = IN(c, "w2", FILL_UNI, -0.5, 0.5, true, 40, 8, 3, 3);
    int32_t w3 = IN(c, "w3", FILL_UNI, -0.5, 0.5, true, 24, 40, 1, 1);
    int32_t in[2] = { x, w1 };
    int32_t h = gc_node(c, "Conv", 13, in, 2, NULL, 0);
    in[0] = h, in[1] = w2;
    ot_attr a[2] = { ot_op_grad_attr_int("group", 5), INTS("pads", 1, 1, 1, 1) };
    h = gc_node(c, "Conv", 13, in, 2, a, 2);
    in[0] = h, in[1] = w3;
    y = gc_node(c, "Conv", 13, in, 2, NULL, 0);
})

/* the gradient Sum where a 24-channel activation (padded in a 16-channel
   blocked layout, which oneDNN 2.6 sums only in its reference
   implementation) feeds two convolutions: one loop over the layout */
GRAD_CASE(grad_sum_padded_blocked, 23, {
    c->onednn = true;
    c->vs_plain = true;
    c->fused[0] = "Sum(loop)";
    int32_t x = IN(c, "x", FILL_UNI, -1, 1, true, 2, 3, 8, 8);
    int32_t w1 = IN(c, "w1", FILL_UNI, -0.5, 0.5, true, 24, 3, 3, 3);
    int32_t w2 = IN(c, "w2", FILL_UNI, -0.5, 0.5, true, 16, 24, 3, 3);
    int32_t w3 = IN(c, "w3", FILL_UNI, -0.5, 0.5, true, 16, 24, 1, 1);
    ot_attr pads[1] = { INTS("pads", 1, 1, 1, 1) };
    int32_t in[2] = { x, w1 };
    int32_t h = gc_node(c, "Conv", 13, in, 2, pads, 1);
    in[0] = h, in[1] = w2;
    int32_t a = gc_node(c, "Conv", 13, in, 2, pads, 1);
    in[1] = w3;
    int32_t b = gc_node(c, "Conv", 13, in, 2, NULL, 0);
    in[0] = a, in[1] = b;
    y = gc_node(c, "Add", 14, in, 2, NULL, 0);
})

/* Compiles the case for its first input (one thread) and runs it once. */
static ot_exec *gc_compile_run(gcase *c, ot_exec_input *bind)
{
    *bind = (ot_exec_input){ .value = c->in_ids[0], .tensor = c->in[0] };
    ot_exec *fx = NULL;
    ot_exec_opts opts = { .device = test_device(), .cpu.threads = 1 };
    if (ot_exec_compile(c->g, bind, 1, &opts, &fx, &c->err) != OT_OK ||
        ot_exec_run(fx, c->in, 1, &c->err) != OT_OK) {
        fprintf(stderr, "  %s\n", c->err.msg);
        ot_exec_free(fx);
        return NULL;
    }
    return fx;
}

/* A 16 -> 16 channel 3x3 Conv (pads 1) of x with constant weights named w. */
static int32_t gc_conv3x3(gcase *c, int32_t x, const char *w)
{
    ot_attr pads[1] = { INTS("pads", 1, 1, 1, 1) };
    int32_t in[2] = { x, gc_const(c, w, 4, DIMS(16, 16, 3, 3), -0.3, 0.3) };
    return gc_node(c, "Conv", 13, in, 2, pads, 1);
}

/* Inference fusions: Conv + BatchNormalization on constants folded into the
   weights, + Add + Relu as post-ops, accumulating into the shortcut's buffer
   (no copy); outputs as the plain kernels' */
TEST(exec_conv_bn_add_relu_fusion)
{
    gcase c_, *c = &c_;
    gc_init(c, 17);
    int32_t x = IN(c, "x", FILL_UNI, -1, 1, false, 2, 16, 6, 6);
    int32_t a0 = gc_conv3x3(c, x, "w0");
    int32_t a = gc_node(c, "Relu", 14, &a0, 1, NULL, 0);
    int32_t h = gc_conv3x3(c, gc_conv3x3(c, a, "w1"), "w2");
    int32_t bin[5] = { h, gc_const(c, "scale", 1, DIMS(16), 0.5, 1.5),
                       gc_const(c, "bias", 1, DIMS(16), -1, 1),
                       gc_const(c, "mean", 1, DIMS(16), -0.5, 0.5),
                       gc_const(c, "var", 1, DIMS(16), 0.5, 2) };
    int32_t b = gc_node(c, "BatchNormalization", 15, bin, 5, NULL, 0);
    int32_t ain[2] = { b, a };
    int32_t s = gc_node(c, "Add", 14, ain, 2, NULL, 0);
    int32_t y = gc_node(c, "Relu", 14, &s, 1, NULL, 0);
    CHECK(y >= 0);
    CHECK_OK(ot_pass_add_output(c->g, y, &c->err), &c->err);
    ot_exec_input bind;
    ot_exec *fx = gc_compile_run(c, &bind);
    CHECK(fx);
    CHECK(gc_steps_of_kind(fx, "Conv+BN+Add+Relu") == 1);
    CHECK(gc_steps_of_kind(fx, "reorder") <= 2); /* x in, y out: the shortcut is not copied */
    CHECK(gc_vs_plain(c, fx, &bind, "conv_bn_add_relu"));
    ot_exec_free(fx);
    gc_fini(c);
}

/* The same where the shortcut is the fused Conv's own input: it is copied
   into the output first, never overwritten while the Conv reads it */
TEST(exec_conv_add_shortcut_is_input)
{
    gcase c_, *c = &c_;
    gc_init(c, 18);
    int32_t x = IN(c, "x", FILL_UNI, -1, 1, false, 2, 16, 6, 6);
    int32_t a0 = gc_conv3x3(c, x, "w0");
    int32_t a = gc_node(c, "Relu", 14, &a0, 1, NULL, 0);
    int32_t h = gc_conv3x3(c, a, "w1");
    int32_t ain[2] = { h, a };
    int32_t y = gc_node(c, "Add", 14, ain, 2, NULL, 0);
    CHECK(y >= 0);
    CHECK_OK(ot_pass_add_output(c->g, y, &c->err), &c->err);
    ot_exec_input bind;
    ot_exec *fx = gc_compile_run(c, &bind);
    CHECK(fx);
    CHECK(gc_vs_plain(c, fx, &bind, "conv_add_shortcut_is_input"));
    ot_exec_free(fx);
    gc_fini(c);
}

/* One plain input read by two convolutions that want the same blocked
   layout: it is reordered once, and both read that copy */
TEST(exec_reorder_shared_by_readers)
{
    gcase c_, *c = &c_;
    gc_init(c, 19);
    int32_t x = IN(c, "x", FILL_UNI, -1, 1, false, 2, 16, 6, 6);
    int32_t ca = gc_conv3x3(c, x, "wa");
    int32_t cin[2] = { ca, gc_conv3x3(c, x, "wb") };
    int32_t y = gc_node(c, "Mul", 14, cin, 2, NULL, 0);
    CHECK(y >= 0);
    CHECK_OK(ot_pass_add_output(c->g, y, &c->err), &c->err);
    ot_exec_input bind;
    ot_exec *fx = gc_compile_run(c, &bind);
    CHECK(fx);
    CHECK(gc_steps_of_kind(fx, "reorder") <= 2); /* x in once, y out */
    CHECK(gc_vs_plain(c, fx, &bind, "reorder_shared"));
    ot_exec_free(fx);
    gc_fini(c);
}

/* BatchNormTrain's running statistics: momentum as ONNX, unbiased variance */
static void bn_running_stats(bool plain_only)
{
    gcase c_, *c = &c_;
    gc_init(c, 13);
    float rm0[2] = { 0.25f, -0.5f }, rv0[2] = { 1.5f, 0.75f };
    int32_t outs[5], in[5];
    in[0] = IN(c, "x", FILL_UNI, -2, 2, false, 2, 2, 3);
    in[1] = IN(c, "scale", FILL_UNI, 0.5, 1.5, false, 2);
    in[2] = IN(c, "bias", FILL_UNI, -1, 1, false, 2);
    CHECK_OK(ot_op_grad_const_f32(c->g, "rm", DIMS(2), 1, rm0, &in[3], &c->err), &c->err);
    CHECK_OK(ot_op_grad_const_f32(c->g, "rv", DIMS(2), 1, rv0, &in[4], &c->err), &c->err);
    ot_attr a[2] = { ot_op_grad_attr_float("epsilon", 1e-5f),
                     ot_op_grad_attr_float("momentum", 0.8f) };
    CHECK(gc_node_n(c, OT_OP_DOMAIN_PRIVATE, "BatchNormTrain", 1, in, 5, a, 2, 5, outs) >= 0);
    for (int i = 0; i < 5; i++)
        CHECK_OK(ot_pass_add_output(c->g, outs[i], &c->err), &c->err);
    ot_exec_input bind[3];
    for (int i = 0; i < 3; i++)
        bind[i] = (ot_exec_input){ .value = c->in_ids[i], .tensor = c->in[i] };
    ot_exec *x = NULL;
    ot_exec_opts opts = { .cpu.threads = 1, .cpu.plain_only = plain_only };
    CHECK_OK(ot_exec_compile(c->g, bind, 3, &opts, &x, &c->err), &c->err);
    CHECK_OK(ot_exec_run(x, c->in, 3, &c->err), &c->err);
    const float *xf = c->in[0].data, *sf = c->in[1].data, *bf = c->in[2].data;
    for (int ch = 0; ch < 2; ch++) {
        double s1 = 0, s2 = 0, xd[6];
        for (int n = 0; n < 2; n++)
            for (int i = 0; i < 3; i++)
                s1 += (xd[n * 3 + i] = (double)xf[(n * 2 + ch) * 3 + i]);
        double mu = s1 / 6;
        for (int i = 0; i < 6; i++)
            s2 += (xd[i] - mu) * (xd[i] - mu);
        double var = s2 / 6, inv = 1 / sqrt(var + 1e-5);
        double want[5] = { (xd[0] - mu) * inv * (double)sf[ch] + (double)bf[ch],
                           (double)rm0[ch] * 0.8 + mu * 0.2, (double)rv0[ch] * 0.8 + s2 / 5 * 0.2,
                           mu, inv };
        for (int k = 0; k < 5; k++) {
            double got = (double)((const float *)ot_exec_output(x, k)->data)[k == 0 ? ch * 3 : ch];
            if (fabs(got - want[k]) > 1e-5 + 1e-5 * fabs(want[k])) {
                ot_test_fail(__FILE__, __LINE__, "%s: output %d channel %d: got %.7g want %.7g",
                             plain_only ? "plain" : "oneDNN", k, ch, got, want[k]);
                break;
            }
        }
    }
    ot_exec_free(x);
    gc_fini(c);
}

TEST(grad_batchnorm_train_running_stats)
{
    bn_running_stats(true);
    bn_running_stats(false);
}

/* ------------------------------------------------------------ activations */

GRAD_CASE(grad_relu, 20, {
    int32_t in = IN(c, "x", FILL_AWAY0, -1, 1, true, 3, 4, 2);
    y = gc_node(c, "Relu", 14, &in, 1, NULL, 0);
})

GRAD_CASE(grad_leakyrelu, 21, {
    int32_t in = IN(c, "x", FILL_AWAY0, -1, 1, true, 3, 5);
    ot_attr a = ot_op_grad_attr_float("alpha", 0.2f);
    y = gc_node(c, "LeakyRelu", 6, &in, 1, &a, 1);
})

GRAD_CASE(grad_sigmoid, 22, {
    int32_t in = IN(c, "x", FILL_UNI, -3, 3, true, 4, 5);
    y = gc_node(c, "Sigmoid", 13, &in, 1, NULL, 0);
})

/* Clip 11+: bounds as inputs; inputs kept 0.05 away from them */
GRAD_CASE(grad_clip_inputs, 23, {
    int32_t in[3] = { IN(c, "x", FILL_UNI, -2, 2, true, 4, 6), -1, -1 };
    float lo = -0.5f, hi = 0.8f;
    ot_op_grad_const_f32(c->g, "lo", NULL, 0, &lo, &in[1], &c->err);
    ot_op_grad_const_f32(c->g, "hi", NULL, 0, &hi, &in[2], &c->err);
    float *xd = c->in[0].data;
    for (int i = 0; i < 24; i++)
        if (fabsf(xd[i] - lo) < 0.05f || fabsf(xd[i] - hi) < 0.05f)
            xd[i] += 0.11f;
    y = gc_node(c, "Clip", 13, in, 3, NULL, 0);
})

/* Clip 6: bounds as attributes */
GRAD_CASE(grad_clip_attrs, 24, {
    int32_t in = IN(c, "x", FILL_UNI, -2, 2, true, 5, 5);
    float *xd = c->in[0].data;
    for (int i = 0; i < 25; i++)
        if (fabsf(xd[i] + 1.0f) < 0.05f || fabsf(xd[i] - 0.5f) < 0.05f)
            xd[i] += 0.11f;
    ot_attr a[2] = { ot_op_grad_attr_float("min", -1.0f), ot_op_grad_attr_float("max", 0.5f) };
    y = gc_node(c, "Clip", 6, &in, 1, a, 2);
})

GRAD_CASE(grad_identity, 25, {
    int32_t in = IN(c, "x", FILL_UNI, -1, 1, true, 3, 2);
    y = gc_node(c, "Identity", 13, &in, 1, NULL, 0);
})

/* ------------------------------------------------------------------ pools */

GRAD_CASE(grad_maxpool_pads_ceil, 30, {
    int32_t in = IN(c, "x", FILL_DISTINCT, -2, 2, true, 2, 2, 6, 6);
    ot_attr a[4] = { INTS("kernel_shape", 3, 3), INTS("strides", 2, 2), INTS("pads", 1, 1, 0, 0),
                     ot_op_grad_attr_int("ceil_mode", 1) };
    y = gc_node(c, "MaxPool", 12, &in, 1, a, 4);
})

GRAD_CASE(grad_maxpool_dilations_overlap, 31, {
    int32_t in = IN(c, "x", FILL_DISTINCT, -2, 2, true, 1, 3, 7, 7);
    ot_attr a[3] = { INTS("kernel_shape", 2, 3), INTS("dilations", 2, 1),
                     INTS("pads", 1, 1, 1, 1) };
    y = gc_node(c, "MaxPool", 12, &in, 1, a, 3);
})

GRAD_CASE(grad_avgpool_include_pad_ceil, 32, {
    int32_t in = IN(c, "x", FILL_UNI, -1, 1, true, 2, 2, 5, 5);
    ot_attr a[5] = { INTS("kernel_shape", 3, 3), INTS("strides", 2, 2), INTS("pads", 1, 1, 1, 0),
                     ot_op_grad_attr_int("ceil_mode", 1),
                     ot_op_grad_attr_int("count_include_pad", 1) };
    y = gc_node(c, "AveragePool", 11, &in, 1, a, 5);
})

GRAD_CASE(grad_avgpool_exclude_pad, 33, {
    int32_t in = IN(c, "x", FILL_UNI, -1, 1, true, 1, 2, 6, 5);
    ot_attr a[3] = { INTS("kernel_shape", 2, 3), INTS("strides", 1, 2), INTS("pads", 1, 1, 0, 1) };
    y = gc_node(c, "AveragePool", 11, &in, 1, a, 3);
})

GRAD_CASE(grad_globalavgpool, 34, {
    int32_t in = IN(c, "x", FILL_UNI, -1, 1, true, 2, 3, 3, 4);
    y = gc_node(c, "GlobalAveragePool", 1, &in, 1, NULL, 0);
})

GRAD_CASE(grad_globalavgpool_onednn, 36, {
    c->onednn = true;
    int32_t in = IN(c, "x", FILL_UNI, -1, 1, true, 2, 16, 3, 4);
    y = gc_node(c, "GlobalAveragePool", 1, &in, 1, NULL, 0);
})

GRAD_CASE(grad_globalmaxpool, 35, {
    int32_t in = IN(c, "x", FILL_DISTINCT, -2, 2, true, 2, 3, 3, 3);
    y = gc_node(c, "GlobalMaxPool", 1, &in, 1, NULL, 0);
})

/* -------------------------------------------------------- broadcasting ops */

GRAD_CASE(grad_add_broadcast, 40, {
    int32_t in[2] = { IN(c, "a", FILL_UNI, -1, 1, true, 2, 3, 4),
                      IN(c, "b", FILL_UNI, -1, 1, true, 3, 1) };
    y = gc_node(c, "Add", 14, in, 2, NULL, 0);
})

GRAD_CASE(grad_add_both_broadcast, 41, {
    int32_t in[2] = { IN(c, "a", FILL_UNI, -1, 1, true, 1, 3, 1),
                      IN(c, "b", FILL_UNI, -1, 1, true, 2, 1, 4) };
    y = gc_node(c, "Add", 14, in, 2, NULL, 0);
})

/* opset 6: B placed at `axis` */
GRAD_CASE(grad_add_legacy_axis, 42, {
    int32_t in[2] = { IN(c, "a", FILL_UNI, -1, 1, true, 2, 3, 4),
                      IN(c, "b", FILL_UNI, -1, 1, true, 3) };
    ot_attr a[2] = { ot_op_grad_attr_int("broadcast", 1), ot_op_grad_attr_int("axis", 1) };
    y = gc_node(c, "Add", 6, in, 2, a, 2);
})

GRAD_CASE(grad_mul_broadcast, 43, {
    int32_t in[2] = { IN(c, "a", FILL_UNI, -1, 1, true, 2, 3, 4),
                      IN(c, "b", FILL_UNI, -1, 1, true, 4) };
    y = gc_node(c, "Mul", 14, in, 2, NULL, 0);
})

GRAD_CASE(grad_mul_both_broadcast, 44, {
    int32_t in[2] = { IN(c, "a", FILL_UNI, -1, 1, true, 1, 3, 1),
                      IN(c, "b", FILL_UNI, -1, 1, true, 2, 1, 4) };
    y = gc_node(c, "Mul", 14, in, 2, NULL, 0);
})

GRAD_CASE(grad_mul_legacy_axis, 45, {
    int32_t in[2] = { IN(c, "a", FILL_UNI, -1, 1, true, 2, 3, 4),
                      IN(c, "b", FILL_UNI, -1, 1, true, 3, 1) };
    ot_attr a[2] = { ot_op_grad_attr_int("broadcast", 1), ot_op_grad_attr_int("axis", 1) };
    y = gc_node(c, "Mul", 6, in, 2, a, 2);
})

/* the same value on both sides: dX = 2 x, through a Sum of two contributions */
GRAD_CASE(grad_mul_square, 46, {
    int32_t x = IN(c, "x", FILL_UNI, -1, 1, true, 3, 3);
    int32_t in[2] = { x, x };
    y = gc_node(c, "Mul", 14, in, 2, NULL, 0);
})

GRAD_CASE(grad_sum_broadcast, 47, {
    int32_t in[3] = { IN(c, "a", FILL_UNI, -1, 1, true, 2, 3),
                      IN(c, "b", FILL_UNI, -1, 1, true, 3),
                      IN(c, "c", FILL_UNI, -1, 1, true, 2, 1) };
    y = gc_node(c, "Sum", 13, in, 3, NULL, 0);
})

/* --------------------------------------------------------- data movement */

GRAD_CASE(grad_concat, 50, {
    int32_t in[3] = { IN(c, "a", FILL_UNI, -1, 1, true, 2, 1, 3),
                      IN(c, "b", FILL_UNI, -1, 1, true, 2, 3, 3),
                      IN(c, "c", FILL_UNI, -1, 1, true, 2, 2, 3) };
    ot_attr a = ot_op_grad_attr_int("axis", -2);
    y = gc_node(c, "Concat", 13, in, 3, &a, 1);
})

GRAD_CASE(grad_flatten, 51, {
    int32_t in = IN(c, "x", FILL_UNI, -1, 1, true, 2, 3, 2, 2);
    ot_attr a = ot_op_grad_attr_int("axis", 2);
    y = gc_node(c, "Flatten", 13, &in, 1, &a, 1);
})

GRAD_CASE(grad_reshape, 52, {
    int32_t in[2] = { IN(c, "x", FILL_UNI, -1, 1, true, 2, 3, 4), -1 };
    in[1] = gc_const_i64(c, "shape", 1, DIMS(3), DIMS(4, -1, 2));
    y = gc_node(c, "Reshape", 13, in, 2, NULL, 0);
})

GRAD_CASE(grad_squeeze_unsqueeze, 53, {
    int32_t in[2] = { IN(c, "x", FILL_UNI, -1, 1, true, 2, 1, 3), -1 };
    in[1] = gc_const_i64(c, "axes", 1, DIMS(1), DIMS(1));
    int32_t s = gc_node(c, "Squeeze", 13, in, 2, NULL, 0);
    ot_attr a = INTS("axes", 0, 3);
    y = gc_node(c, "Unsqueeze", 11, &s, 1, &a, 1);
})

GRAD_CASE(grad_transpose, 54, {
    int32_t in = IN(c, "x", FILL_UNI, -1, 1, true, 2, 3, 4);
    ot_attr a = INTS("perm", 1, 2, 0);
    y = gc_node(c, "Transpose", 13, &in, 1, &a, 1);
})

GRAD_CASE(grad_transpose_default, 55, {
    int32_t in = IN(c, "x", FILL_UNI, -1, 1, true, 2, 3, 4);
    y = gc_node(c, "Transpose", 13, &in, 1, NULL, 0);
})

/* Concat and Sum past the 16 arguments a kernel step once had (DenseNet) */
GRAD_CASE(grad_concat_many, 56, {
    int32_t in[20];
    char nm[16];
    c->onednn = true; /* oneDNN's concat, past its former 8 inputs */
    for (int i = 0; i < 20; i++) {
        snprintf(nm, sizeof nm, "x%d", i);
        in[i] = IN(c, nm, FILL_UNI, -1, 1, i % 3 != 1, 2, 1 + i % 2, 2);
    }
    ot_attr a = ot_op_grad_attr_int("axis", 1);
    y = gc_node(c, "Concat", 13, in, 20, &a, 1);
})

GRAD_CASE(grad_sum_many, 57, {
    int32_t in[18];
    char nm[16];
    for (int i = 0; i < 18; i++) {
        snprintf(nm, sizeof nm, "x%d", i);
        /* shapes (2, 3), (3), (2, 1) in turn; the first three get gradients
           (same-shaped ones would share one gradient value) */
        in[i] = i % 3 == 0   ? IN(c, nm, FILL_UNI, -1, 1, i < 3, 2, 3)
                : i % 3 == 1 ? IN(c, nm, FILL_UNI, -1, 1, i < 3, 3)
                             : IN(c, nm, FILL_UNI, -1, 1, i < 3, 2, 1);
    }
    y = gc_node(c, "Sum", 13, in, 18, NULL, 0);
})

/* Pad (constant): dX is dY inside the padding */
GRAD_CASE(grad_pad_input, 58, {
    int32_t in[3] = { IN(c, "x", FILL_UNI, -1, 1, true, 2, 3, 3, 2), -1, -1 };
    in[1] = gc_const_i64(c, "pads", 1, DIMS(8), DIMS(0, 1, 2, 0, 0, 0, 1, 3));
    in[2] = gc_const(c, "value", 0, NULL, 0.5, 0.5);
    y = gc_node(c, "Pad", 13, in, 3, NULL, 0);
})

GRAD_CASE(grad_pad_attr, 59, {
    int32_t in = IN(c, "x", FILL_UNI, -1, 1, true, 1, 2, 3);
    ot_attr a = INTS("pads", 0, 2, 1, 0, 1, 0);
    y = gc_node(c, "Pad", 2, &in, 1, &a, 1);
})

/* Slice: dX is dY padded with zeros back to X's shape */
GRAD_CASE(grad_slice, 61, {
    int32_t in[5] = { IN(c, "x", FILL_UNI, -1, 1, true, 2, 5, 4), -1, -1, -1, -1 };
    in[1] = gc_const_i64(c, "starts", 1, DIMS(2), DIMS(1, -3));
    in[2] = gc_const_i64(c, "ends", 1, DIMS(2), DIMS(1000, -1));
    in[3] = gc_const_i64(c, "axes", 1, DIMS(2), DIMS(1, 2));
    in[4] = gc_const_i64(c, "steps", 1, DIMS(2), DIMS(1, 1));
    y = gc_node(c, "Slice", 13, in, 5, NULL, 0);
})

GRAD_CASE(grad_slice_attr, 62, {
    int32_t in = IN(c, "x", FILL_UNI, -1, 1, true, 3, 4);
    ot_attr a[2] = { INTS("starts", 1), INTS("ends", 3) };
    y = gc_node(c, "Slice", 1, &in, 1, a, 2);
})

/* Cast float -> double -> float: dX = dY through both */
GRAD_CASE(grad_cast_float, 63, {
    int32_t in = IN(c, "x", FILL_UNI, -1, 1, true, 2, 3);
    ot_attr to_d = ot_op_grad_attr_int("to", OT_DTYPE_DOUBLE);
    ot_attr to_f = ot_op_grad_attr_int("to", OT_DTYPE_FLOAT);
    int32_t d = gc_node(c, "Cast", 13, &in, 1, &to_d, 1);
    y = gc_node(c, "Cast", 13, &d, 1, &to_f, 1);
})

/* Slice with steps other than 1 (Swin's patch merging x[:, 0::2], and a
   reversed axis): dX is zeros with dY at the sliced positions (SliceGrad) */
GRAD_CASE(grad_slice_steps, 64, {
    int32_t in[5] = { IN(c, "x", FILL_UNI, -1, 1, true, 2, 6, 5), -1, -1, -1, -1 };
    in[1] = gc_const_i64(c, "starts", 1, DIMS(2), DIMS(1, -1));
    in[2] = gc_const_i64(c, "ends", 1, DIMS(2), DIMS(6, 0));
    in[3] = gc_const_i64(c, "axes", 1, DIMS(2), DIMS(1, 2));
    in[4] = gc_const_i64(c, "steps", 1, DIMS(2), DIMS(2, -2));
    y = gc_node(c, "Slice", 13, in, 5, NULL, 0);
})

/* LRN, odd and even windows (AlexNet's size 5, GoogLeNet's; 4 is lopsided),
   with a large alpha so that the normalisation matters */
GRAD_CASE(grad_lrn, 65, {
    int32_t in = IN(c, "x", FILL_UNI, -1, 1, true, 2, 6, 2, 2);
    ot_attr a[4] = { ot_op_grad_attr_float("alpha", 0.8f), ot_op_grad_attr_float("beta", 0.75f),
                     ot_op_grad_attr_float("bias", 1.5f), ot_op_grad_attr_int("size", 3) };
    y = gc_node(c, "LRN", 13, &in, 1, a, 4);
})

GRAD_CASE(grad_lrn_even, 66, {
    int32_t in = IN(c, "x", FILL_UNI, -1, 1, true, 1, 5, 3);
    ot_attr a[2] = { ot_op_grad_attr_float("alpha", 0.5f), ot_op_grad_attr_int("size", 4) };
    y = gc_node(c, "LRN", 13, &in, 1, a, 2);
})

TEST(grad_pad_refusals)
{
    /* reflect mode and a crop keep the clear refusal */
    for (int k = 0; k < 2; k++) {
        gcase c_, *c = &c_;
        gc_init(c, 60 + (uint64_t)k);
        int32_t in[2] = { IN(c, "x", FILL_UNI, -1, 1, true, 2, 4), -1 };
        in[1] = gc_const_i64(c, "pads", 1, DIMS(4), k ? DIMS(0, -1, 0, 1) : DIMS(0, 1, 0, 1));
        ot_attr a = { .name = "mode", .type = OT_ATTR_STRING, .s = "reflect" };
        int32_t y = gc_node(c, "Pad", 13, in, 2, &a, k ? 0 : 1), r, dx = -1;
        CHECK(y >= 0);
        int32_t L = y >= 0 ? gc_loss(c, y, &r) : -1;
        CHECK(L >= 0);
        ot_status st = ot_pass_autodiff(c->g, L, &c->in_ids[0], 1, &dx, &c->err);
        CHECK(st == OT_ERR_UNSUPPORTED);
        CHECK(strstr(c->err.msg, k ? "negative pads" : "reflect") != NULL);
        gc_fini(c);
    }
}

/* ------------------------------------------------------------ Gemm/MatMul */

/* transA x transB, alpha, beta, C broadcast as (N) or (M, 1) */
static void gemm_case(int ta, int tb, int c_kind, uint64_t seed, const char *what)
{
    gcase c_, *c = &c_;
    gc_init(c, seed);
    int64_t M = 3, K = 4, N = 5;
    int32_t in[3];
    in[0] = ta ? IN(c, "a", FILL_UNI, -1, 1, true, K, M) : IN(c, "a", FILL_UNI, -1, 1, true, M, K);
    in[1] = tb ? IN(c, "b", FILL_UNI, -1, 1, true, N, K) : IN(c, "b", FILL_UNI, -1, 1, true, K, N);
    in[2] = c_kind == 0 ? IN(c, "c", FILL_UNI, -1, 1, true, N)
                        : IN(c, "c", FILL_UNI, -1, 1, true, M, 1);
    ot_attr a[4] = { ot_op_grad_attr_int("transA", ta), ot_op_grad_attr_int("transB", tb),
                     ot_op_grad_attr_float("alpha", 0.7f), ot_op_grad_attr_float("beta", 1.3f) };
    gc_check(c, gc_node(c, "Gemm", 13, in, 3, a, 4), what);
    gc_fini(c);
}

TEST(grad_gemm_transposes_alpha_beta)
{
    gemm_case(0, 0, 0, 60, "gemm nn, C (N)");
    gemm_case(0, 1, 1, 61, "gemm nt, C (M,1)");
    gemm_case(1, 0, 0, 62, "gemm tn, C (N)");
    gemm_case(1, 1, 1, 63, "gemm tt, C (M,1)");
}

GRAD_CASE(grad_gemm_no_c, 64, {
    int32_t in[2] = { IN(c, "a", FILL_UNI, -1, 1, true, 2, 3),
                      IN(c, "b", FILL_UNI, -1, 1, true, 4, 3) };
    ot_attr a = ot_op_grad_attr_int("transB", 1);
    y = gc_node(c, "Gemm", 13, in, 2, &a, 1);
})

GRAD_CASE(grad_matmul_2d, 65, {
    int32_t in[2] = { IN(c, "a", FILL_UNI, -1, 1, true, 3, 4),
                      IN(c, "b", FILL_UNI, -1, 1, true, 4, 2) };
    y = gc_node(c, "MatMul", 13, in, 2, NULL, 0);
})

GRAD_CASE(grad_matmul_batched_broadcast, 66, {
    int32_t in[2] = { IN(c, "a", FILL_UNI, -1, 1, true, 2, 3, 4),
                      IN(c, "b", FILL_UNI, -1, 1, true, 4, 2) };
    y = gc_node(c, "MatMul", 13, in, 2, NULL, 0);
})

GRAD_CASE(grad_matmul_batched_both, 67, {
    int32_t in[2] = { IN(c, "a", FILL_UNI, -1, 1, true, 2, 1, 3, 4),
                      IN(c, "b", FILL_UNI, -1, 1, true, 3, 4, 2) };
    y = gc_node(c, "MatMul", 13, in, 2, NULL, 0);
})

/* a Linear layer on an [N, H, W, C] map (ConvNeXt's, Swin's): the weight's
   gradient is one Gemm of the flattened rows, with no per-row [K, N] product
   reduced afterwards; by finite differences, then on oneDNN against the
   plain kernels */
TEST(grad_matmul_weight_rows)
{
    for (int k = 0; k < 2; k++) {
        gcase c_, *c = &c_;
        gc_init(c, 68 + (uint64_t)k);
        c->onednn = c->vs_plain = k == 1;
        int32_t in[2] = { IN(c, "a", FILL_UNI, -1, 1, true, 2, 3, 2, 4),
                          IN(c, "b", FILL_UNI, -1, 1, true, 4, 5) };
        int32_t y = gc_node(c, "MatMul", 13, in, 2, NULL, 0);
        if (!gc_check(c, y, k ? "MatMul rows on oneDNN" : "MatMul rows")) {
            gc_fini(c);
            return;
        }
        int sums = 0, gemms = 0;
        for (int32_t i = 0; i < c->g->n_nodes; i++) {
            const ot_op_desc *op = c->g->nodes[i].op;
            sums += op && !strcmp(op->type, "ReduceSumTo");
            gemms += op && !strcmp(op->type, "Gemm");
        }
        CHECK(sums == 1); /* the loss's own */
        CHECK(gemms == 1);
        gc_fini(c);
    }
}

/* ---------------------------------------------------------- softmax, loss */

GRAD_CASE(grad_softmax_axis, 70, {
    int32_t in = IN(c, "x", FILL_UNI, -2, 2, true, 2, 3, 4);
    ot_attr a = ot_op_grad_attr_int("axis", 1);
    y = gc_node(c, "Softmax", 13, &in, 1, &a, 1);
})

/* before opset 13: the axis and every dim after it */
GRAD_CASE(grad_softmax_legacy_coerce, 71, {
    int32_t in = IN(c, "x", FILL_UNI, -2, 2, true, 2, 3, 4);
    y = gc_node(c, "Softmax", 11, &in, 1, NULL, 0);
})

GRAD_CASE(grad_logsoftmax, 72, {
    int32_t in = IN(c, "x", FILL_UNI, -2, 2, true, 3, 5);
    y = gc_node(c, "LogSoftmax", 13, &in, 1, NULL, 0);
})

GRAD_CASE(grad_logsoftmax_legacy, 73, {
    int32_t in = IN(c, "x", FILL_UNI, -2, 2, true, 2, 2, 3);
    ot_attr a = ot_op_grad_attr_int("axis", 1);
    y = gc_node(c, "LogSoftmax", 11, &in, 1, &a, 1);
})

GRAD_CASE(grad_softmax_cross_entropy_smoothing, 74, {
    int32_t in[2] = { IN(c, "logits", FILL_UNI, -2, 2, true, 4, 5),
                      gc_input(c, "labels", OT_DTYPE_INT64, 1, DIMS(4), FILL_UNI, 0, 5, false) };
    ot_attr a = ot_op_grad_attr_float("label_smoothing", 0.1f);
    y = gc_node_n(c, OT_OP_DOMAIN_PRIVATE, "SoftmaxCrossEntropy", 1, in, 2, &a, 1, 1, NULL);
})

/* ------------------------------------------------------------- math ops */

GRAD_CASE(grad_sub_broadcast, 90, {
    int32_t in[2] = { IN(c, "a", FILL_UNI, -1, 1, true, 2, 1, 4),
                      IN(c, "b", FILL_UNI, -1, 1, true, 3, 1) };
    y = gc_node(c, "Sub", 14, in, 2, NULL, 0);
})

/* opset 6: B placed at `axis` */
GRAD_CASE(grad_sub_legacy_axis, 91, {
    int32_t in[2] = { IN(c, "a", FILL_UNI, -1, 1, true, 2, 3, 4),
                      IN(c, "b", FILL_UNI, -1, 1, true, 3) };
    ot_attr a[2] = { ot_op_grad_attr_int("broadcast", 1), ot_op_grad_attr_int("axis", 1) };
    y = gc_node(c, "Sub", 6, in, 2, a, 2);
})

GRAD_CASE(grad_div_broadcast, 92, {
    int32_t in[2] = { IN(c, "a", FILL_UNI, -1, 1, true, 2, 3, 4),
                      IN(c, "b", FILL_UNI, 0.5, 2, true, 3, 1) };
    y = gc_node(c, "Div", 14, in, 2, NULL, 0);
})

GRAD_CASE(grad_div_legacy_axis, 93, {
    int32_t in[2] = { IN(c, "a", FILL_UNI, -1, 1, true, 2, 3, 4),
                      IN(c, "b", FILL_UNI, 0.5, 2, true, 3, 4) };
    ot_attr a[2] = { ot_op_grad_attr_int("broadcast", 1), ot_op_grad_attr_int("axis", 1) };
    y = gc_node(c, "Div", 6, in, 2, a, 2);
})

GRAD_CASE(grad_pow_const_exponent, 94, {
    int32_t in[2] = { IN(c, "x", FILL_UNI, 0.5, 2, true, 2, 3, 4), -1 };
    in[1] = gc_const(c, "e", 0, NULL, 1.5, 1.5);
    y = gc_node(c, "Pow", 15, in, 2, NULL, 0);
})

/* an int64 exponent, a negative base */
GRAD_CASE(grad_pow_int_exponent, 95, {
    int32_t in[2] = { IN(c, "x", FILL_UNI, -2, 2, true, 3, 4), -1 };
    in[1] = gc_const_i64(c, "e", 1, DIMS(1), DIMS(3));
    y = gc_node(c, "Pow", 15, in, 2, NULL, 0);
})

/* a trained or computed exponent: a one-line refusal naming the node */
TEST(grad_pow_exponent_refused)
{
    for (int trained = 0; trained < 2; trained++) {
        gcase c_, *c = &c_;
        gc_init(c, 96);
        int32_t in[2] = { IN(c, "x", FILL_UNI, 0.5, 2, true, 3),
                          IN(c, "e", FILL_UNI, 1, 2, trained != 0, 1) };
        int32_t yv = gc_node(c, "Pow", 15, in, 2, NULL, 0), r, params[2] = { in[0], in[1] };
        int32_t grads[2];
        int32_t L = gc_loss(c, yv, &r);
        CHECK(L >= 0);
        ot_status st = ot_pass_autodiff(c->g, L, params, trained ? 2 : 1, grads, &c->err);
        CHECK_EQ_INT(st, OT_ERR_UNSUPPORTED);
        CHECK(strstr(c->err.msg, "Pow") != NULL);
        CHECK(strstr(c->err.msg, trained ? "trained exponent" : "non-constant exponent") != NULL);
        gc_fini(c);
    }
}

/* Ops oneDNN's eltwise runs (cpu_dnnl.c); the others stay plain C. */
static bool has_onednn_eltwise(const char *type)
{
    static const char *const t[] = { "Sqrt", "Reciprocal", "Exp", "Log", "Tanh",
                                     "HardSwish", "Elu", "Gelu", "Pow" };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        if (!strcmp(t[i], type))
            return true;
    return false;
}

/* One unary op on x in [lo, hi): finite differences, then oneDNN's forward
   against the plain kernels (a step of the op's kind required where oneDNN
   has the op). */
static void unary_case(const char *type, int opset, double lo, double hi, const ot_attr *attrs,
                       int n_attrs, uint64_t seed)
{
    for (int vs = 0; vs < 2; vs++) {
        gcase c_, *c = &c_;
        gc_init(c, seed);
        c->onednn = c->vs_plain = vs == 1;
        if (vs && has_onednn_eltwise(type))
            c->fused[0] = type;
        int32_t x = IN(c, "x", FILL_UNI, lo, hi, true, 2, 3, 4);
        gc_check(c, gc_node(c, type, opset, &x, 1, attrs, n_attrs), type);
        gc_fini(c);
    }
}

TEST(grad_unary_math)
{
    ot_attr hs[2] = { ot_op_grad_attr_float("alpha", 0.3f), ot_op_grad_attr_float("beta", 0.4f) };
    ot_attr elu = ot_op_grad_attr_float("alpha", 0.7f);
    ot_attr selu[2] = { ot_op_grad_attr_float("alpha", 1.5f),
                        ot_op_grad_attr_float("gamma", 1.1f) };
    ot_attr tanh_form = { .name = "approximate", .type = OT_ATTR_STRING, .s = "tanh", .s_len = 4 };
    unary_case("Sqrt", 13, 0.5, 2, NULL, 0, 100);
    unary_case("Reciprocal", 13, 0.5, 2, NULL, 0, 101);
    unary_case("Exp", 13, -2, 2, NULL, 0, 102);
    unary_case("Log", 13, 0.5, 2, NULL, 0, 103);
    unary_case("Tanh", 13, -2, 2, NULL, 0, 104);
    unary_case("Erf", 13, -2, 2, NULL, 0, 105);
    unary_case("HardSigmoid", 6, -1, 1, hs, 2, 106); /* kinks at -4/3 and 2 */
    unary_case("HardSigmoid", 6, 1.1, 1.9, hs, 2, 107);
    unary_case("HardSwish", 14, -2.5, 2.5, NULL, 0, 108);
    unary_case("Elu", 6, -2, 2, &elu, 1, 109);
    unary_case("Selu", 6, -2, 2, selu, 2, 110);
    unary_case("Softplus", 1, -3, 3, NULL, 0, 111);
    unary_case("Gelu", 20, -3, 3, NULL, 0, 112);
    unary_case("Gelu", 20, -3, 3, &tanh_form, 1, 113);
}

GRAD_CASE(grad_reduce_mean_axes_attr, 120, {
    int32_t x = IN(c, "x", FILL_UNI, -1, 1, true, 2, 3, 4, 2);
    ot_attr a = INTS("axes", 2, -1);
    y = gc_node(c, "ReduceMean", 13, &x, 1, &a, 1);
})

GRAD_CASE(grad_reduce_sum_axes_input_no_keepdims, 121, {
    int32_t in[2] = { IN(c, "x", FILL_UNI, -1, 1, true, 2, 3, 4), -1 };
    in[1] = gc_const_i64(c, "axes", 1, DIMS(2), DIMS(0, 2));
    ot_attr a = ot_op_grad_attr_int("keepdims", 0);
    y = gc_node(c, "ReduceSum", 13, in, 2, &a, 1);
})

/* distinct values: the maximum is unique */
GRAD_CASE(grad_reduce_max, 122, {
    int32_t x = IN(c, "x", FILL_DISTINCT, -1, 1, true, 2, 3, 4);
    ot_attr a = INTS("axes", 1);
    y = gc_node(c, "ReduceMax", 13, &x, 1, &a, 1);
})

GRAD_CASE(grad_reduce_l2_opset18, 123, {
    int32_t in[2] = { IN(c, "x", FILL_AWAY0, -1, 1, true, 2, 3, 4), -1 };
    in[1] = gc_const_i64(c, "axes", 1, DIMS(1), DIMS(-1));
    y = gc_node(c, "ReduceL2", 18, in, 2, NULL, 0);
})

/* no axes: every dim (keepdims: a [1, 1] result) */
GRAD_CASE(grad_reduce_mean_all, 124, {
    int32_t x = IN(c, "x", FILL_UNI, -1, 1, true, 3, 4);
    y = gc_node(c, "ReduceMean", 13, &x, 1, NULL, 0);
})

/* empty axes with noop_with_empty_axes: Y = X, dX = dY */
GRAD_CASE(grad_reduce_sum_noop, 125, {
    int32_t in[2] = { IN(c, "x", FILL_UNI, -1, 1, true, 3, 4), -1 };
    in[1] = gc_const_i64(c, "axes", 1, DIMS(0), NULL);
    ot_attr a = ot_op_grad_attr_int("noop_with_empty_axes", 1);
    y = gc_node(c, "ReduceSum", 13, in, 2, &a, 1);
})

/* oneDNN's reduction, binary Sub/Div and eltwise against the plain kernels:
   a ReduceMean over H and W, as the exported global pooling, and LayerNorm
   written out as ONNX ops (Sub, Pow, ReduceMean, Add, Sqrt, Div) */
TEST(grad_math_onednn_vs_plain)
{
    for (int k = 0; k < 2; k++) {
        gcase c_, *c = &c_;
        gc_init(c, 126 + (uint64_t)k);
        c->onednn = c->vs_plain = true;
        int32_t x = IN(c, "x", FILL_UNI, -1, 1, true, 2, 3, 4, 5), y;
        if (k == 0) {
            ot_attr a = INTS("axes", 2, 3);
            y = gc_node(c, "ReduceMean", 13, &x, 1, &a, 1);
            c->fused[0] = "ReduceMean(pool)";
            c->fused[1] = "ReduceGrad(pool)";
        } else {
            ot_attr a = INTS("axes", -1);
            int32_t mu = gc_node(c, "ReduceMean", 13, &x, 1, &a, 1);
            int32_t in[2] = { x, mu };
            int32_t d = gc_node(c, "Sub", 14, in, 2, NULL, 0);
            in[0] = d;
            in[1] = gc_const(c, "two", 0, NULL, 2, 2);
            int32_t sq = gc_node(c, "Pow", 15, in, 2, NULL, 0);
            int32_t var = gc_node(c, "ReduceMean", 13, &sq, 1, &a, 1);
            in[0] = var;
            in[1] = gc_const(c, "eps", 0, NULL, 1e-5, 1e-5);
            int32_t ve = gc_node(c, "Add", 14, in, 2, NULL, 0);
            int32_t sd = gc_node(c, "Sqrt", 13, &ve, 1, NULL, 0);
            in[0] = d;
            in[1] = sd;
            y = gc_node(c, "Div", 14, in, 2, NULL, 0);
            c->fused[0] = "Sub";
            c->fused[1] = "Div";
            c->fused[2] = "Pow";
        }
        gc_check(c, y, k ? "layernorm as ONNX ops" : "ReduceMean over H, W");
        gc_fini(c);
    }
}

/* ReduceMean and ReduceMax over H and W of a convolution's blocked output
   (ShuffleNet's, MNASNet's x.mean([2, 3])): a global pooling on oneDNN in
   that layout with the [N, C] result written plain, and ReduceMean's
   gradient as average pooling's backward; with 12 channels (padded to a
   block of 16) the reduction primitive instead. Against the plain kernels,
   and the step kinds each takes. */
TEST(grad_spatial_reduce_as_pool)
{
    static const struct {
        const char *op;
        int64_t channels, keepdims;
        const char *fwd, *bwd;
    } cases[] = {
        { "ReduceMean", 16, 0, "ReduceMean(pool)", "ReduceGrad(pool)" },
        { "ReduceMean", 32, 1, "ReduceMean(pool)", "ReduceGrad(pool)" },
        { "ReduceMean", 12, 0, "ReduceMean", NULL },
        { "ReduceMax", 16, 0, "ReduceMax(pool)", NULL },
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        gcase c_, *c = &c_;
        gc_init(c, 140 + (uint64_t)k);
        c->onednn = c->vs_plain = true;
        int32_t in[2] = { IN(c, "x", FILL_UNI, -1, 1, true, 2, 3, 6, 5),
                          IN(c, "w", FILL_UNI, -1, 1, true, cases[k].channels, 3, 3, 3) };
        int32_t conv = gc_node(c, "Conv", 13, in, 2, NULL, 0);
        ot_attr a[2] = { INTS("axes", 2, 3), ot_op_grad_attr_int("keepdims", cases[k].keepdims) };
        int32_t y = gc_node(c, cases[k].op, 13, &conv, 1, a, 2);
        c->fused[0] = cases[k].fwd;
        c->fused[1] = cases[k].bwd;
        gc_check(c, y, cases[k].op);
        gc_fini(c);
    }
}

/* the same LayerNorm by finite differences */
GRAD_CASE(grad_layernorm_as_onnx_ops, 128, {
    int32_t x = IN(c, "x", FILL_UNI, -1, 1, true, 2, 3, 5);
    ot_attr a = INTS("axes", -1);
    int32_t mu = gc_node(c, "ReduceMean", 13, &x, 1, &a, 1);
    int32_t in[2] = { x, mu };
    int32_t d = gc_node(c, "Sub", 14, in, 2, NULL, 0);
    in[0] = d;
    in[1] = gc_const(c, "two", 0, NULL, 2, 2);
    int32_t sq = gc_node(c, "Pow", 15, in, 2, NULL, 0);
    int32_t var = gc_node(c, "ReduceMean", 13, &sq, 1, &a, 1);
    in[0] = var;
    in[1] = gc_const(c, "eps", 0, NULL, 1e-5, 1e-5);
    int32_t ve = gc_node(c, "Add", 14, in, 2, NULL, 0);
    int32_t sd = gc_node(c, "Sqrt", 13, &ve, 1, NULL, 0);
    in[0] = d;
    in[1] = sd;
    y = gc_node(c, "Div", 14, in, 2, NULL, 0);
})

/* attention: softmax(Q K^T / sqrt(d)) V with batched MatMuls */
GRAD_CASE(grad_attention, 129, {
    int32_t q = IN(c, "q", FILL_UNI, -1, 1, true, 2, 2, 3, 4);
    int32_t k = IN(c, "k", FILL_UNI, -1, 1, true, 2, 2, 3, 4);
    int32_t v = IN(c, "v", FILL_UNI, -1, 1, true, 2, 2, 3, 4);
    ot_attr perm = INTS("perm", 0, 1, 3, 2);
    int32_t kt = gc_node(c, "Transpose", 13, &k, 1, &perm, 1);
    int32_t in[2] = { q, kt };
    int32_t s = gc_node(c, "MatMul", 13, in, 2, NULL, 0);
    in[0] = s;
    in[1] = gc_const(c, "scale", 0, NULL, 2, 2);
    int32_t sc = gc_node(c, "Div", 14, in, 2, NULL, 0);
    ot_attr ax = ot_op_grad_attr_int("axis", -1);
    int32_t p = gc_node(c, "Softmax", 13, &sc, 1, &ax, 1);
    in[0] = p;
    in[1] = v;
    y = gc_node(c, "MatMul", 13, in, 2, NULL, 0);
})

/* 20 inputs (the executor's plain kernels take any number); the gradient
   is itself a Sum of 20 contributions */
GRAD_CASE(grad_sum_many_inputs, 130, {
    int32_t x = IN(c, "x", FILL_UNI, -1, 1, true, 2, 3), in[20];
    for (int i = 0; i < 20; i++)
        in[i] = x;
    y = gc_node(c, "Sum", 13, in, 20, NULL, 0);
})

/* ------------------------------------------------ normalizations, PRelu */

GRAD_CASE(grad_layernorm_axis1, 131, {
    int32_t in[3] = { IN(c, "x", FILL_UNI, -1, 1, true, 2, 3, 4),
                      IN(c, "scale", FILL_UNI, 0.5, 1.5, true, 3, 4),
                      IN(c, "b", FILL_UNI, -1, 1, true, 3, 4) };
    ot_attr a[2] = { ot_op_grad_attr_int("axis", 1), ot_op_grad_attr_float("epsilon", 1e-3f) };
    y = gc_node(c, "LayerNormalization", 17, in, 3, a, 2);
})

/* the last axis, no bias, Mean and InvStdDev outputs present */
GRAD_CASE(grad_layernorm_last_axis_stats, 132, {
    int32_t in[2] = { IN(c, "x", FILL_UNI, -1, 1, true, 2, 3, 5),
                      IN(c, "scale", FILL_UNI, 0.5, 1.5, true, 5) };
    y = gc_node_n(c, "", "LayerNormalization", 17, in, 2, NULL, 0, 3, NULL);
})

GRAD_CASE(grad_instancenorm, 133, {
    int32_t in[3] = { IN(c, "x", FILL_UNI, -1, 1, true, 2, 3, 4, 2),
                      IN(c, "scale", FILL_UNI, 0.5, 1.5, true, 3),
                      IN(c, "b", FILL_UNI, -1, 1, true, 3) };
    y = gc_node(c, "InstanceNormalization", 6, in, 3, NULL, 0);
})

/* opset 18: scale and bias per group */
GRAD_CASE(grad_groupnorm_18, 134, {
    int32_t in[3] = { IN(c, "x", FILL_UNI, -1, 1, true, 2, 4, 3, 2),
                      IN(c, "scale", FILL_UNI, 0.5, 1.5, true, 2),
                      IN(c, "b", FILL_UNI, -1, 1, true, 2) };
    ot_attr a = ot_op_grad_attr_int("num_groups", 2);
    y = gc_node(c, "GroupNormalization", 18, in, 3, &a, 1);
})

/* opset 21: per channel */
GRAD_CASE(grad_groupnorm_21, 135, {
    int32_t in[3] = { IN(c, "x", FILL_UNI, -1, 1, true, 2, 4, 3),
                      IN(c, "scale", FILL_UNI, 0.5, 1.5, true, 4),
                      IN(c, "b", FILL_UNI, -1, 1, true, 4) };
    ot_attr a = ot_op_grad_attr_int("num_groups", 2);
    y = gc_node(c, "GroupNormalization", 21, in, 3, &a, 1);
})

/* oneDNN's layer normalization (the forward) against the plain kernels */
GRAD_CASE(grad_layernorm_onednn_vs_plain, 137, {
    c->onednn = c->vs_plain = true;
    c->fused[0] = "LayerNormalization";
    int32_t in[3] = { IN(c, "x", FILL_UNI, -1, 1, true, 2, 3, 8),
                      IN(c, "scale", FILL_UNI, 0.5, 1.5, true, 3, 8),
                      IN(c, "b", FILL_UNI, -1, 1, true, 3, 8) };
    ot_attr a = ot_op_grad_attr_int("axis", -2);
    y = gc_node(c, "LayerNormalization", 17, in, 3, &a, 1);
})

GRAD_CASE(grad_prelu_slope_broadcast, 136, {
    int32_t in[2] = { IN(c, "x", FILL_AWAY0, -1, 1, true, 2, 3, 4),
                      IN(c, "slope", FILL_UNI, 0.1, 0.5, true, 3, 1) };
    y = gc_node(c, "PRelu", 16, in, 2, NULL, 0);
})

/* opset 6: a 1-D slope is per channel */
GRAD_CASE(grad_prelu_legacy_per_channel, 143, {
    int32_t in[2] = { IN(c, "x", FILL_AWAY0, -1, 1, true, 2, 3, 4),
                      IN(c, "slope", FILL_UNI, 0.1, 0.5, true, 3) };
    y = gc_node(c, "PRelu", 6, in, 2, NULL, 0);
})

/* ------------------------------------------------------- Max, Min, Mean */

/* distinct values, and the inputs' ramps offset from each other by more
   than h: no ties */
GRAD_CASE(grad_max_broadcast, 138, {
    int32_t in[3] = { IN(c, "a", FILL_DISTINCT, -1, 0, true, 2, 3),
                      IN(c, "b", FILL_DISTINCT, -0.975, 0, true, 3),
                      IN(c, "c", FILL_DISTINCT, -0.9875, 0, true, 2, 1) };
    y = gc_node(c, "Max", 13, in, 3, NULL, 0);
})

GRAD_CASE(grad_min_broadcast, 139, {
    int32_t in[3] = { IN(c, "a", FILL_DISTINCT, -1, 0, true, 2, 3),
                      IN(c, "b", FILL_DISTINCT, -0.975, 0, true, 3),
                      IN(c, "c", FILL_DISTINCT, -0.9875, 0, true, 2, 1) };
    y = gc_node(c, "Min", 13, in, 3, NULL, 0);
})

/* Max(x, x) = x: the tie shares dY, so dX = dY (not 2 dY) */
GRAD_CASE(grad_max_tie, 140, {
    int32_t x = IN(c, "x", FILL_UNI, -1, 1, true, 2, 3);
    int32_t in[2] = { x, x };
    y = gc_node(c, "Max", 13, in, 2, NULL, 0);
})

GRAD_CASE(grad_mean_broadcast, 141, {
    int32_t in[3] = { IN(c, "a", FILL_UNI, -1, 1, true, 2, 3),
                      IN(c, "b", FILL_UNI, -1, 1, true, 3),
                      IN(c, "c", FILL_UNI, -1, 1, true, 2, 1) };
    y = gc_node(c, "Mean", 13, in, 3, NULL, 0);
})

/* 18 inputs */
GRAD_CASE(grad_mean_many_inputs, 142, {
    int32_t x = IN(c, "x", FILL_UNI, -1, 1, true, 2, 3), in[18];
    for (int i = 0; i < 18; i++)
        in[i] = x;
    y = gc_node(c, "Mean", 13, in, 18, NULL, 0);
})

/* ---------------------------------------------------------------- Einsum */

/* Finite differences; with `onednn`, the oneDNN executor (an Einsum step
   required: its matmul) against the plain kernels instead. */
static void einsum_case_on(const char *eq, uint64_t seed, int n_a, const int64_t *a_dims, int n_b,
                           const int64_t *b_dims, bool onednn)
{
    gcase c_, *c = &c_;
    gc_init(c, seed);
    c->onednn = c->vs_plain = onednn;
    if (onednn)
        c->fused[0] = "Einsum";
    int32_t in[2] = { gc_input(c, "a", OT_DTYPE_FLOAT, n_a, a_dims, FILL_UNI, -1, 1, true),
                      n_b ? gc_input(c, "b", OT_DTYPE_FLOAT, n_b, b_dims, FILL_UNI, -1, 1, true)
                          : -1 };
    ot_attr a = { .name = "equation", .type = OT_ATTR_STRING, .s = eq, .s_len = strlen(eq) };
    gc_check(c, gc_node(c, "Einsum", 12, in, n_b ? 2 : 1, &a, 1), eq);
    gc_fini(c);
}

static void einsum_case(const char *eq, uint64_t seed, int n_a, const int64_t *a_dims, int n_b,
                        const int64_t *b_dims)
{
    einsum_case_on(eq, seed, n_a, a_dims, n_b, b_dims, false);
}

TEST(grad_einsum_onednn_vs_plain)
{
    einsum_case_on("bhid,bhjd->bhij", 157, 4, DIMS(2, 2, 3, 4), 4, DIMS(2, 2, 5, 4), true);
    einsum_case_on("bhij,bhjd->bhid", 158, 4, DIMS(2, 2, 3, 5), 4, DIMS(2, 2, 5, 4), true);
    einsum_case_on("...ij,...jk->...ik", 159, 4, DIMS(2, 1, 3, 4), 3, DIMS(3, 4, 2), true);
    einsum_case_on("bji,bkj->bki", 160, 3, DIMS(2, 4, 3), 3, DIMS(2, 5, 4), true);
}

/* attention's forms, a broadcast batch through the ellipsis, a transposed
   operand, the implicit output, a transpose */
TEST(grad_einsum_matmul_forms)
{
    einsum_case("bhid,bhjd->bhij", 150, 4, DIMS(2, 2, 3, 4), 4, DIMS(2, 2, 5, 4));
    einsum_case("bhij,bhjd->bhid", 151, 4, DIMS(2, 2, 3, 5), 4, DIMS(2, 2, 5, 4));
    einsum_case("...ij,...jk->...ik", 152, 4, DIMS(2, 1, 3, 4), 3, DIMS(3, 4, 2));
    einsum_case("bij,bkj->bik", 153, 3, DIMS(2, 3, 4), 3, DIMS(2, 5, 4));
    einsum_case("ij,jk", 154, 2, DIMS(3, 4), 2, DIMS(4, 2));
    einsum_case("ij->ji", 155, 2, DIMS(3, 4), 0, NULL);
}

/* a diagonal, a sum over a label only one input has: forward yes, gradient
   refused naming the equation */
TEST(grad_einsum_refusals)
{
    static const char *const eqs[2] = { "ii->i", "ij->i" };
    for (int k = 0; k < 2; k++) {
        gcase c_, *c = &c_;
        gc_init(c, 156);
        int32_t x = IN(c, "x", FILL_UNI, -1, 1, true, 3, 3), r, g;
        ot_attr a = { .name = "equation", .type = OT_ATTR_STRING, .s = eqs[k],
                      .s_len = strlen(eqs[k]) };
        int32_t y = gc_node(c, "Einsum", 12, &x, 1, &a, 1);
        CHECK(y >= 0);
        CHECK_EQ_INT(c->g->values[y].ndim, 1);
        int32_t L = gc_loss(c, y, &r);
        CHECK_EQ_INT(ot_pass_autodiff(c->g, L, &x, 1, &g, &c->err), OT_ERR_UNSUPPORTED);
        CHECK(strstr(c->err.msg, eqs[k]) != NULL);
        gc_fini(c);
    }
}

/* the helper: labels input added, loss a scalar */
TEST(grad_add_loss_helper)
{
    gcase c_, *c = &c_;
    gc_init(c, 75);
    int32_t logits = IN(c, "logits", FILL_UNI, -2, 2, true, 3, 4), loss, labels;
    CHECK_OK(ot_pass_add_loss(c->g, logits, "labels", 0.0f, &loss, &labels, &c->err), &c->err);
    CHECK(c->g->values[labels].dtype == OT_DTYPE_INT64);
    CHECK_EQ_INT(c->g->values[labels].ndim, 1);
    CHECK_EQ_INT(c->g->values[labels].dims[0], 3);
    CHECK(c->g->values[labels].flags & OT_VAL_INPUT);
    CHECK_EQ_INT(c->g->values[loss].ndim, 0);
    CHECK_STR(c->g->values[loss].name, "loss");
    /* the labels as a bound input of the check */
    c->in_ids[c->n_in] = labels;
    c->in[c->n_in] = (ot_tensor){ .dtype = OT_DTYPE_INT64, .ndim = 1, .dims = { 3 },
                                  .bytes = 24, .data = calloc(3, 8) };
    ((int64_t *)c->in[c->n_in].data)[0] = 3;
    ((int64_t *)c->in[c->n_in].data)[1] = 0;
    ((int64_t *)c->in[c->n_in].data)[2] = 2;
    c->n_in++;
    gc_check(c, loss, "add_loss");
    gc_fini(c);
}

/* inference-mode Dropout (opset 12, no training_mode): identity, mask all true */
GRAD_CASE(grad_dropout_inference, 80, {
    int32_t in = IN(c, "x", FILL_UNI, -1, 1, true, 3, 4);
    y = gc_node(c, "Dropout", 13, &in, 1, NULL, 0);
})

/* DropoutGrad with a fixed mask in training mode: dX = dY * mask / (1 - ratio) */
TEST(grad_dropout_fixed_mask)
{
    gcase c_, *c = &c_;
    gc_init(c, 81);
    int32_t dy = IN(c, "dy", FILL_UNI, -1, 1, false, 2, 5);
    uint8_t maskv[10] = { 1, 0, 0, 1, 1, 1, 0, 1, 0, 1 };
    int32_t mask, ratio, mode, out;
    CHECK_OK(ot_graph_intern_value(c->g, "mask", &mask, &c->err), &c->err);
    {
        ot_value *v = &c->g->values[mask];
        v->dtype = OT_DTYPE_BOOL;
        v->ndim = 2;
        v->dims[0] = 2;
        v->dims[1] = 5;
        v->flags = OT_VAL_INIT | OT_VAL_CONST;
        v->data = (ot_tensor){ .dtype = OT_DTYPE_BOOL, .ndim = 2, .dims = { 2, 5 }, .bytes = 10 };
        v->data.data = ot_malloc(10);
        memcpy(v->data.data, maskv, 10);
    }
    float r = 0.25f;
    int64_t one = 1;
    CHECK_OK(ot_op_grad_const_f32(c->g, "ratio", NULL, 0, &r, &ratio, &c->err), &c->err);
    CHECK_OK(ot_op_grad_const_i64(c->g, "mode", NULL, 0, &one, &mode, &c->err), &c->err);
    c->g->values[mode].dtype = OT_DTYPE_INT64; /* the kernel reads any numeric flag */
    int32_t in[4] = { dy, mask, ratio, mode };
    out = gc_node_n(c, OT_OP_DOMAIN_PRIVATE, "DropoutGrad", 1, in, 4, NULL, 0, 1, NULL);
    CHECK(out >= 0);
    CHECK_OK(ot_pass_add_output(c->g, out, &c->err), &c->err);
    ot_exec_input bind = { .value = dy, .tensor = c->in[0] };
    ot_exec *x = NULL;
    ot_exec_opts opts = { .cpu.threads = 1, .cpu.plain_only = true };
    CHECK_OK(ot_exec_compile(c->g, &bind, 1, &opts, &x, &c->err), &c->err);
    CHECK_OK(ot_exec_run(x, c->in, 1, &c->err), &c->err);
    const float *got = ot_exec_output(x, 0)->data, *d = c->in[0].data;
    for (int i = 0; i < 10; i++) {
        float want = maskv[i] ? d[i] / 0.75f : 0.0f;
        if (fabsf(got[i] - want) > 1e-6f) {
            ot_test_fail(__FILE__, __LINE__, "element %d: got %g want %g", i, (double)got[i],
                         (double)want);
            break;
        }
    }
    ot_exec_free(x);
    gc_fini(c);
}

/* ------------------------------------------------------- a ResNet block */

/* conv -> BatchNormTrain -> relu -> maxpool -> conv -> eval BN -> add(skip) ->
   relu -> GAP -> flatten -> gemm -> cross-entropy: every parameter at once */
TEST(grad_resnet_block)
{
    gcase c_, *c = &c_;
    gc_init(c, 90);
    c->h = 5e-3;
    int32_t x = IN(c, "image", FILL_UNI, -1, 1, false, 2, 2, 6, 6);
    int32_t w1 = IN(c, "w1", FILL_UNI, -0.5, 0.5, true, 3, 2, 3, 3);
    int32_t s1 = IN(c, "s1", FILL_UNI, 0.5, 1.5, true, 3);
    int32_t b1 = IN(c, "b1", FILL_UNI, -0.5, 0.5, true, 3);
    int32_t w2 = IN(c, "w2", FILL_UNI, -0.5, 0.5, true, 3, 3, 3, 3);
    int32_t fw = IN(c, "fc_w", FILL_UNI, -0.5, 0.5, true, 4, 3);
    int32_t fb = IN(c, "fc_b", FILL_UNI, -0.5, 0.5, true, 4);
    int32_t lab = gc_input(c, "labels", OT_DTYPE_INT64, 1, DIMS(2), FILL_UNI, 0, 4, false);
    ot_attr pad1 = INTS("pads", 1, 1, 1, 1);
    int32_t in[5] = { x, w1 };
    int32_t h = gc_node(c, "Conv", 13, in, 2, &pad1, 1);
    int32_t bn_in[5] = { h, s1, b1, gc_const(c, "rm", 1, DIMS(3), -0.1, 0.1),
                         gc_const(c, "rv", 1, DIMS(3), 0.9, 1.1) };
    h = gc_node_n(c, OT_OP_DOMAIN_PRIVATE, "BatchNormTrain", 1, bn_in, 5, NULL, 0, 1, NULL);
    h = gc_node(c, "Relu", 14, &h, 1, NULL, 0);
    ot_attr mp[3] = { INTS("kernel_shape", 2, 2), INTS("strides", 2, 2) };
    int32_t skip = gc_node(c, "MaxPool", 12, &h, 1, mp, 2);
    in[0] = skip;
    in[1] = w2;
    h = gc_node(c, "Conv", 13, in, 2, &pad1, 1);
    int32_t bn2[5] = { h, gc_const(c, "s2", 1, DIMS(3), 0.5, 1.5),
                       gc_const(c, "b2", 1, DIMS(3), -0.5, 0.5),
                       gc_const(c, "m2", 1, DIMS(3), -0.1, 0.1),
                       gc_const(c, "v2", 1, DIMS(3), 0.9, 1.1) };
    h = gc_node(c, "BatchNormalization", 15, bn2, 5, NULL, 0);
    in[0] = h;
    in[1] = skip;
    h = gc_node(c, "Add", 14, in, 2, NULL, 0);
    h = gc_node(c, "Relu", 14, &h, 1, NULL, 0);
    h = gc_node(c, "GlobalAveragePool", 1, &h, 1, NULL, 0);
    h = gc_node(c, "Flatten", 13, &h, 1, NULL, 0);
    ot_attr tb = ot_op_grad_attr_int("transB", 1);
    int32_t g_in[3] = { h, fw, fb };
    h = gc_node(c, "Gemm", 13, g_in, 3, &tb, 1);
    int32_t ce[2] = { h, lab };
    int32_t y = gc_node_n(c, OT_OP_DOMAIN_PRIVATE, "SoftmaxCrossEntropy", 1, ce, 2, NULL, 0, 1,
                          NULL);
    gc_check(c, y, "resnet block");
    gc_fini(c);
}

/* DropoutTrain's mask is fixed by its seed, so central differences apply:
   dX = dY * mask / (1 - ratio). */
TEST(grad_dropout_train)
{
    gcase c_, *c = &c_;
    gc_init(c, 91);
    int32_t x = IN(c, "x", FILL_UNI, -1, 1, true, 2, 50);
    int64_t sv = 12345;
    int32_t seed = gc_const_i64(c, "seed", 0, NULL, &sv);
    ot_attr a[2] = { ot_op_grad_attr_float("ratio", 0.3f), ot_op_grad_attr_int("salt", 7) };
    int32_t in[2] = { x, seed };
    int32_t outs[2];
    int32_t y = gc_node_n(c, OT_OP_DOMAIN_PRIVATE, "DropoutTrain", 1, in, 2, a, 2, 2, outs);
    CHECK(gc_check(c, y, "DropoutTrain"));
    gc_fini(c);
}

/* The mask keeps about 1 - ratio of the elements, scales them by
   1 / (1 - ratio), and is the same for the same seed and different for
   another. */
TEST(ref_dropout_train_mask_statistics)
{
    enum { N = 20000 };
    static float xs[N], y1[N], y2[N], y3[N];
    static uint8_t m1[N], m2[N], m3[N];
    for (int i = 0; i < N; i++)
        xs[i] = 1.0f;
    ot_attr a[2] = { { .name = "ratio", .type = OT_ATTR_FLOAT, .f = 0.3f },
                     { .name = "salt", .type = OT_ATTR_INT, .i = 2 } };
    int32_t ids[2] = { 0, 1 };
    ot_node n = { .op = ot_op_table[OT_OP_DROPOUT_TRAIN], .name = "d", .op_type = "DropoutTrain",
                  .domain = OT_OP_DOMAIN_PRIVATE, .in = ids, .out = ids, .n_in = 2, .n_out = 2,
                  .attrs = a, .n_attrs = 2 };
    int64_t seeds[3] = { 5, 5, 6 };
    float *ys[3] = { y1, y2, y3 };
    uint8_t *ms[3] = { m1, m2, m3 };
    ot_err err;
    for (int r = 0; r < 3; r++) {
        ot_tensor tx = { .dtype = OT_DTYPE_FLOAT, .ndim = 1, .dims = { N }, .data = xs,
                         .bytes = sizeof xs };
        ot_tensor ts = { .dtype = OT_DTYPE_INT64, .ndim = 0, .data = &seeds[r], .bytes = 8 };
        ot_tensor ty = { .dtype = OT_DTYPE_FLOAT, .ndim = 1, .dims = { N }, .data = ys[r],
                         .bytes = sizeof y1 };
        ot_tensor tm = { .dtype = OT_DTYPE_BOOL, .ndim = 1, .dims = { N }, .data = ms[r],
                         .bytes = N };
        const ot_tensor *in[2] = { &tx, &ts };
        ot_tensor *out[2] = { &ty, &tm };
        const char *why = NULL;
        CHECK(ot_ref_kernel(&n) != NULL);
        CHECK(ot_ref_supports(NULL, &n, in, (const ot_tensor *const *)out, &why));
        CHECK_OK(ot_ref_kernel(&n)(NULL, &n, in, out, &err), &err);
    }
    int kept = 0, same = 1, differ = 0;
    for (int i = 0; i < N; i++) {
        kept += m1[i];
        same &= m1[i] == m2[i] && y1[i] == y2[i];
        differ += m1[i] != m3[i];
        if (m1[i] && fabsf(y1[i] - 1.0f / 0.7f) > 1e-6f) {
            ot_test_fail(__FILE__, __LINE__, "kept element %d is %g", i, (double)y1[i]);
            return;
        }
        if (!m1[i] && y1[i] != 0.0f) {
            ot_test_fail(__FILE__, __LINE__, "dropped element %d is %g", i, (double)y1[i]);
            return;
        }
    }
    CHECK(kept > N * 0.68 && kept < N * 0.72);
    CHECK(same);
    CHECK(differ > N / 5);
}

/* ------------------------------------------- shared rewrites (exec/rewrite.c) */

/* The node that writes value v, or -1. */
static int32_t producer_of(const ot_graph *g, int32_t v)
{
    for (int32_t i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_out; k++)
            if (g->nodes[i].out[k] == v)
                return i;
    return -1;
}

/* The operands of a 16-channel BatchNormalization of h: h, then constant
   scale, bias, mean and variance. */
static void rw_bn_operands(gcase *c, int32_t h, int32_t *bin)
{
    bin[0] = h;
    bin[1] = gc_const(c, "scale", 1, DIMS(16), 0.5, 1.5);
    bin[2] = gc_const(c, "bias", 1, DIMS(16), -1, 1);
    bin[3] = gc_const(c, "mean", 1, DIMS(16), -0.5, 0.5);
    bin[4] = gc_const(c, "var", 1, DIMS(16), 0.5, 2);
}

/* An inference BatchNormalization of h on constants; *scale gets its scale's
   value id. */
static int32_t rw_bn(gcase *c, int32_t h, int32_t *scale)
{
    int32_t bin[5];
    rw_bn_operands(c, h, bin);
    if (scale)
        *scale = bin[1];
    return gc_node(c, "BatchNormalization", 15, bin, 5, NULL, 0);
}

/* Folds a clone of c->g, with value `state` (unless -1) flagged as training
   state; returns how many BatchNormalizations folded (-1: error). */
static int rw_fold_count(gcase *c, int32_t state)
{
    ot_graph *g = NULL;
    ot_const_pool pool = { 0 };
    int n = -1;
    if (ot_graph_clone(c->g, &g, &c->err) == OT_OK) {
        if (state >= 0)
            g->values[state].flags |= OT_VAL_STATE;
        if (ot_rewrite_fold_bn(g, &pool, &n, &c->err) != OT_OK)
            n = -1;
    }
    ot_const_pool_free(&pool);
    ot_graph_free(g);
    return n;
}

/* A Conv on constant weights whose only reader is an inference BN on
   constants folds: W' = W * scale / sqrt(var + eps), b' = (0 - mean) * k +
   bias; the Conv writes the BN's output and the caller's graph is unchanged.
   The executor then has one Conv+BN+eltwise step and the plain kernels'
   result. */
TEST(rewrite_bn_folds_into_conv)
{
    gcase c_, *c = &c_;
    gc_init(c, 31);
    int32_t x = IN(c, "x", FILL_UNI, -1, 1, false, 2, 16, 6, 6);
    int32_t h = gc_conv3x3(c, x, "w");
    int32_t scale;
    int32_t b = rw_bn(c, h, &scale);
    int32_t y = gc_node(c, "Relu", 14, &b, 1, NULL, 0);
    CHECK(y >= 0);
    CHECK_OK(ot_pass_add_output(c->g, y, &c->err), &c->err);
    int32_t ci = producer_of(c->g, h), bi = producer_of(c->g, b);
    int32_t wid = c->g->nodes[ci].in[1];
    ot_graph *g = NULL;
    ot_const_pool pool = { 0 };
    int n = 0;
    CHECK_OK(ot_graph_clone(c->g, &g, &c->err), &c->err);
    CHECK_OK(ot_rewrite_fold_bn(g, &pool, &n, &c->err), &c->err);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(g->n_nodes, c->g->n_nodes - 1);
    int32_t conv = producer_of(g, b);
    CHECK(conv >= 0 && ot_node_is(&g->nodes[conv], OT_OP_CONV));
    const ot_node *cn = &g->nodes[conv];
    CHECK((cn->flags & OT_NODE_BN_FOLDED) != 0);
    CHECK_EQ_INT(cn->n_in, 3);
    const ot_node *bn = &c->g->nodes[bi];
    const float *w = c->g->values[wid].data.data, *w2 = g->values[cn->in[1]].data.data;
    const float *sc = c->g->values[bn->in[1]].data.data, *sh = c->g->values[bn->in[2]].data.data;
    const float *mu = c->g->values[bn->in[3]].data.data, *va = c->g->values[bn->in[4]].data.data;
    const float *b2 = g->values[cn->in[2]].data.data;
    for (int o = 0; o < 16; o += 5) {
        double k = (double)sc[o] / sqrt((double)va[o] + 1e-5);
        CHECK(w2[o * 144 + 7] == (float)((double)w[o * 144 + 7] * k));
        CHECK(b2[o] == (float)((0.0 - (double)mu[o]) * k + (double)sh[o]));
    }
    CHECK((g->values[cn->in[1]].flags & OT_VAL_CONST) && g->values[cn->in[1]].ndim == 4);
    /* the caller's graph still has its BN and the Conv's own operands */
    CHECK_EQ_INT(c->g->nodes[ci].n_in, 2);
    CHECK_EQ_INT(c->g->nodes[ci].in[1], wid);
    CHECK_EQ_INT(c->g->nodes[ci].out[0], h);
    CHECK((c->g->nodes[ci].flags & OT_NODE_BN_FOLDED) == 0);
    ot_const_pool_free(&pool);
    ot_graph_free(g);
    c->onednn = true;
    ot_exec_input bind;
    ot_exec *fx = gc_compile_run(c, &bind);
    CHECK(fx);
    CHECK_EQ_INT(gc_steps_of_kind(fx, "Conv+BN+eltwise"), 1);
    CHECK(gc_vs_plain(c, fx, &bind, "conv_bn_relu"));
    ot_exec_free(fx);
    gc_fini(c);
}

/* A Gemm on a constant B whose only reader is an inference BN (BatchNorm1d
   after Linear) folds: B's columns (rows with transB) scaled by k, bias
   (c - mean) * k + shift; with a C of shape [N], [1, N] or none. Outputs as
   the plain kernels', which do not fold. Not folded: beta != 1, a C of
   shape [M, N]. */
TEST(rewrite_bn_folds_into_gemm)
{
    for (int kind = 0; kind < 6; kind++) {
        gcase c_, *c = &c_;
        gc_init(c, 40 + (uint64_t)kind);
        int tb = kind & 1, K = 5;
        int32_t x = IN(c, "x", FILL_UNI, -1, 1, false, 3, 5);
        int32_t in[3] = { x,
                          tb ? gc_const(c, "w", 2, DIMS(16, 5), -0.5, 0.5)
                             : gc_const(c, "w", 2, DIMS(5, 16), -0.5, 0.5),
                          -1 };
        int n_in = 2;
        if (kind == 2 || kind == 4)
            in[n_in++] = gc_const(c, "c", 1, DIMS(16), -1, 1);
        else if (kind == 3)
            in[n_in++] = gc_const(c, "c", 2, DIMS(1, 16), -1, 1);
        else if (kind == 5)
            in[n_in++] = gc_const(c, "c", 2, DIMS(3, 16), -1, 1);
        ot_attr a[2] = { ot_op_grad_attr_int("transB", tb),
                         ot_op_grad_attr_float("beta", kind == 4 ? 0.5f : 1.0f) };
        int32_t h = gc_node(c, "Gemm", 13, in, n_in, a, 2);
        int32_t b = rw_bn(c, h, NULL);
        CHECK(b >= 0);
        CHECK_OK(ot_pass_add_output(c->g, b, &c->err), &c->err);
        int want = kind < 4 ? 1 : 0;
        ot_graph *g = NULL;
        ot_const_pool pool = { 0 };
        int n = -1;
        CHECK_OK(ot_graph_clone(c->g, &g, &c->err), &c->err);
        CHECK_OK(ot_rewrite_fold_bn(g, &pool, &n, &c->err), &c->err);
        if (n != want)
            ot_test_fail(__FILE__, __LINE__, "case %d: %d folded, want %d", kind, n, want);
        if (n == 1) {
            int32_t gi = producer_of(g, b);
            CHECK(gi >= 0 && ot_node_is(&g->nodes[gi], OT_OP_GEMM));
            const ot_node *gn = &g->nodes[gi], *bn = &c->g->nodes[producer_of(c->g, b)];
            CHECK_EQ_INT(gn->n_in, 3);
            const float *w = c->g->values[in[1]].data.data, *w2 = g->values[gn->in[1]].data.data;
            const float *cb = n_in > 2 ? c->g->values[in[2]].data.data : NULL;
            const float *b2 = g->values[gn->in[2]].data.data;
            const float *sc = c->g->values[bn->in[1]].data.data;
            const float *sh = c->g->values[bn->in[2]].data.data;
            const float *mu = c->g->values[bn->in[3]].data.data;
            const float *va = c->g->values[bn->in[4]].data.data;
            for (int o = 0; o < 16; o += 3) {
                double k = (double)sc[o] / sqrt((double)va[o] + 1e-5);
                for (int i = 0; i < K; i++) {
                    int at = tb ? o * K + i : i * 16 + o;
                    CHECK(w2[at] == (float)((double)w[at] * k));
                }
                CHECK(b2[o] == (float)(((cb ? (double)cb[o] : 0.0) - (double)mu[o]) * k +
                                       (double)sh[o]));
            }
            CHECK(g->values[gn->in[2]].ndim == 1 && g->values[gn->in[2]].dims[0] == 16);
        }
        ot_const_pool_free(&pool);
        ot_graph_free(g);
        c->onednn = true;
        ot_exec_input bind;
        ot_exec *fx = gc_compile_run(c, &bind);
        CHECK(fx);
        if (fx)
            CHECK(gc_vs_plain(c, fx, &bind, "gemm_bn"));
        ot_exec_free(fx);
        gc_fini(c);
    }
}

/* What must not fold: a Conv output that something else reads too (a graph
   output, or a second node), a BN whose scale is trained (state), a
   BatchNormTrain (training mode). */
TEST(rewrite_bn_fold_refusals)
{
    for (int kind = 0; kind < 4; kind++) {
        gcase c_, *c = &c_;
        gc_init(c, 32 + (uint64_t)kind);
        int32_t x = IN(c, "x", FILL_UNI, -1, 1, false, 2, 16, 6, 6);
        int32_t h = gc_conv3x3(c, x, "w");
        int32_t scale = -1, b;
        if (kind == 3) {
            int32_t bin[5];
            rw_bn_operands(c, h, bin);
            b = gc_node_n(c, OT_OP_DOMAIN_PRIVATE, "BatchNormTrain", 1, bin, 5, NULL, 0, 3, NULL);
        } else {
            b = rw_bn(c, h, &scale);
        }
        CHECK(b >= 0);
        CHECK_OK(ot_pass_add_output(c->g, b, &c->err), &c->err);
        if (kind == 0)
            CHECK_OK(ot_pass_add_output(c->g, h, &c->err), &c->err);
        if (kind == 1)
            CHECK(gc_node(c, "Relu", 14, &h, 1, NULL, 0) >= 0);
        int n = rw_fold_count(c, kind == 2 ? scale : -1);
        if (n != 0)
            ot_test_fail(__FILE__, __LINE__, "case %d: %d folded (%s)", kind, n, c->err.msg);
        gc_fini(c);
        if (n != 0)
            return;
    }
}

/* Marks: a node whose outputs inference folded (Shape of a static input). */
TEST(rewrite_marks_folded_nodes)
{
    gcase c_, *c = &c_;
    gc_init(c, 36);
    int32_t x = IN(c, "x", FILL_UNI, -1, 1, false, 2, 16, 6, 6);
    int32_t s = gc_node(c, "Shape", 13, &x, 1, NULL, 0);
    int32_t y = gc_node(c, "Relu", 14, &x, 1, NULL, 0);
    CHECK(s >= 0 && y >= 0);
    CHECK(c->g->values[s].flags & OT_VAL_CONST);
    CHECK_EQ_INT(ot_rewrite_mark_folded(c->g), 1);
    CHECK(c->g->nodes[producer_of(c->g, s)].flags & OT_NODE_FOLDED);
    CHECK(!(c->g->nodes[producer_of(c->g, y)].flags & OT_NODE_FOLDED));
    gc_fini(c);
}

/* The fusion rules on one graph:
     a = Relu(Conv0(x))         Conv0 + Relu: an activation
     h = Conv1(a)               Conv1 + Add(a) + Relu: a computed earlier,
     z = Relu(Add(h, a))          read by nothing after Conv1 but the Add
     k = Conv2(z)               Conv2 + Add(q): q comes after Conv2, so no
     q = Sigmoid(z)               group
     t = Add(k, q)              Add + LeakyRelu: an activation
     u = LeakyRelu(t)
     v = Conv3(u), out v and w  Conv3 read twice: no group
     w = Relu(v)
   and BatchNormTrain + Relu, BatchNormTrain + Sigmoid (no group). */
TEST(rewrite_fusion_rules)
{
    gcase c_, *c = &c_;
    gc_init(c, 37);
    int32_t x = IN(c, "x", FILL_UNI, -1, 1, false, 2, 16, 6, 6);
    int32_t a0 = gc_conv3x3(c, x, "w0");
    int32_t a = gc_node(c, "Relu", 14, &a0, 1, NULL, 0);
    int32_t h = gc_conv3x3(c, a, "w1");
    int32_t in1[2] = { h, a };
    int32_t s = gc_node(c, "Add", 14, in1, 2, NULL, 0);
    int32_t z = gc_node(c, "Relu", 14, &s, 1, NULL, 0);
    int32_t k = gc_conv3x3(c, z, "w2");
    int32_t q = gc_node(c, "Sigmoid", 13, &z, 1, NULL, 0);
    int32_t in2[2] = { k, q };
    int32_t t = gc_node(c, "Add", 14, in2, 2, NULL, 0);
    int32_t u = gc_node(c, "LeakyRelu", 6, &t, 1, NULL, 0);
    int32_t v = gc_conv3x3(c, u, "w3");
    int32_t w = gc_node(c, "Relu", 14, &v, 1, NULL, 0);
    int32_t bin[5];
    rw_bn_operands(c, w, bin);
    int32_t n1 = gc_node_n(c, OT_OP_DOMAIN_PRIVATE, "BatchNormTrain", 1, bin, 5, NULL, 0, 3, NULL);
    int32_t r1 = gc_node(c, "Relu", 14, &n1, 1, NULL, 0);
    bin[0] = r1;
    int32_t n2 = gc_node_n(c, OT_OP_DOMAIN_PRIVATE, "BatchNormTrain", 1, bin, 5, NULL, 0, 3, NULL);
    int32_t r2 = gc_node(c, "Sigmoid", 13, &n2, 1, NULL, 0);
    CHECK(r2 >= 0);
    CHECK_OK(ot_pass_add_output(c->g, v, &c->err), &c->err);
    CHECK_OK(ot_pass_add_output(c->g, r2, &c->err), &c->err);
    const ot_graph *g = c->g;
    ot_fuse_plan p;
    ot_fusion f;
    CHECK_OK(ot_fuse_plan_init(&p, g, &c->err), &c->err);

    ot_fuse_find(&p, producer_of(g, a0), NULL, &f);
    CHECK(f.kind == OT_FUSE_ACT && f.act == producer_of(g, a) && f.out == a);
    ot_fuse_find(&p, producer_of(g, h), NULL, &f);
    CHECK(f.kind == OT_FUSE_ADD && f.add == producer_of(g, s) && f.add_other == a);
    CHECK(f.act == producer_of(g, z) && f.out == z && f.other_dies);
    ot_fuse_find(&p, producer_of(g, k), NULL, &f);
    CHECK(f.kind == OT_FUSE_NONE);
    ot_fuse_find(&p, producer_of(g, t), NULL, &f);
    CHECK(f.kind == OT_FUSE_ACT && f.act == producer_of(g, u));
    ot_fuse_find(&p, producer_of(g, v), NULL, &f);
    CHECK(f.kind == OT_FUSE_NONE);
    ot_fuse_find(&p, producer_of(g, n1), NULL, &f);
    CHECK(f.kind == OT_FUSE_ACT && f.act == producer_of(g, r1));
    ot_fuse_find(&p, producer_of(g, n2), NULL, &f);
    CHECK(f.kind == OT_FUSE_NONE);
    /* a follower already taken into another group is not offered again */
    uint8_t *taken = calloc((size_t)g->n_nodes, 1);
    CHECK(taken);
    taken[producer_of(g, a)] = 1;
    ot_fuse_find(&p, producer_of(g, a0), taken, &f);
    free(taken);
    CHECK(f.kind == OT_FUSE_NONE);
    /* the Add's other operand read again later: the group may not write over it */
    ot_fuse_plan_fini(&p);
    CHECK_OK(ot_pass_add_output(c->g, a, &c->err), &c->err);
    CHECK_OK(ot_fuse_plan_init(&p, c->g, &c->err), &c->err);
    ot_fuse_find(&p, producer_of(g, h), NULL, &f);
    ot_fuse_plan_fini(&p);
    CHECK(f.kind == OT_FUSE_ADD && !f.other_dies);
    gc_fini(c);
}

/* x -> Conv0 -> Relu (a) -> Conv1 [-> Add(a)] -> y, the loss and its
   gradient with respect to x (the weights constant): the backward pass
   has a ConvGradData per convolution. *dgrad1: Conv1's (its dY the
   gradient of Conv1's output), *dgrad0: Conv0's; *a: the Relu's output. */
static bool dgrad_graph(gcase *c, bool add, int32_t *dgrad1, int32_t *dgrad0, int32_t *a)
{
    int32_t x = IN(c, "x", FILL_UNI, -1, 1, true, 2, 16, 6, 6);
    int32_t a0 = gc_conv3x3(c, x, "w0");
    *a = gc_node(c, "Relu", 14, &a0, 1, NULL, 0);
    int32_t h = gc_conv3x3(c, *a, "w1"), y = h;
    if (add) {
        int32_t in[2] = { h, *a };
        y = gc_node(c, "Add", 14, in, 2, NULL, 0);
    }
    int32_t r, gx;
    int32_t L = y >= 0 ? gc_loss(c, y, &r) : -1;
    *dgrad1 = *dgrad0 = -1;
    if (L < 0 || ot_pass_autodiff(c->g, L, &x, 1, &gx, &c->err) != OT_OK ||
        ot_pass_add_output(c->g, gx, &c->err) != OT_OK)
        return false;
    const ot_graph *g = c->g;
    int32_t h_node = producer_of(g, h);
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        if (!ot_node_is(n, OT_OP_CONV_GRAD_DATA))
            continue;
        /* Conv1's weights are its second input, as its forward node's */
        if (n->in[1] == g->nodes[h_node].in[1])
            *dgrad1 = i;
        else
            *dgrad0 = i;
    }
    return *dgrad1 >= 0 && *dgrad0 >= 0;
}

/* The fusion rule of the backward pass: a ConvGradData whose dX only a
   ReluGrad reads as its dY (the ReLU before the convolution) may take it
   along; not when dX also flows into a Sum with the shortcut's gradient,
   not when the ReluGrad is taken already, nor when dX is a graph output
   (the gradient of x). */
TEST(rewrite_fusion_rules_dgrad_relu)
{
    for (int add = 0; add < 2; add++) {
        gcase c_, *c = &c_;
        gc_init(c, 43);
        int32_t d1, d0, a;
        bool built = dgrad_graph(c, add, &d1, &d0, &a);
        CHECK(built);
        if (!built) {
            printf("  no ConvGradData: %s\n", c->err.msg);
            gc_fini(c);
            continue;
        }
        const ot_graph *g = c->g;
        ot_fuse_plan p;
        ot_fusion f;
        CHECK_OK(ot_fuse_plan_init(&p, g, &c->err), &c->err);
        ot_fuse_find(&p, d1, NULL, &f);
        if (add) {
            CHECK(f.kind == OT_FUSE_NONE);
        } else {
            CHECK(f.kind == OT_FUSE_ACT && f.act >= 0);
            if (f.act >= 0) {
                const ot_node *rg = &g->nodes[f.act];
                CHECK(ot_node_is(rg, OT_OP_RELU_GRAD));
                CHECK(rg->in[0] == g->nodes[d1].out[0] && rg->in[1] == a);
                CHECK(f.out == rg->out[0]);
                uint8_t *taken = calloc((size_t)g->n_nodes, 1);
                CHECK(taken);
                if (taken) {
                    taken[f.act] = 1;
                    ot_fusion f2;
                    ot_fuse_find(&p, d1, taken, &f2);
                    CHECK(f2.kind == OT_FUSE_NONE);
                }
                free(taken);
            }
        }
        ot_fuse_find(&p, d0, NULL, &f); /* its dX is the graph's output */
        CHECK(f.kind == OT_FUSE_NONE);
        ot_fuse_plan_fini(&p);
        gc_fini(c);
    }
}

/* Conv -> Relu -> Conv, x and both weights trained: the second
   convolution's backward-data feeds ReLU's backward alone, which the CUDA
   executor computes as one fused cuDNN graph; finite differences wherever
   the executors run (OT_TEST_DEVICE=cuda: the device check's
   backward_rules). */
TEST(grad_conv_relu_conv)
{
    gcase c_, *c = &c_;
    gc_init(c, 41);
    c->h = 1e-3; /* fewer pre-activations within h of the ReLU's kink */
    int32_t x = IN(c, "x", FILL_UNI, -1, 1, true, 2, 3, 6, 6);
    int32_t w1 = IN(c, "w1", FILL_UNI, -0.5, 0.5, true, 4, 3, 3, 3);
    int32_t w2 = IN(c, "w2", FILL_UNI, -0.5, 0.5, true, 5, 4, 3, 3);
    ot_attr pad1 = INTS("pads", 1, 1, 1, 1);
    int32_t in[2] = { x, w1 };
    int32_t h = gc_node(c, "Conv", 13, in, 2, &pad1, 1);
    h = gc_node(c, "Relu", 14, &h, 1, NULL, 0);
    in[0] = h;
    in[1] = w2;
    h = gc_node(c, "Conv", 13, in, 2, &pad1, 1);
    gc_check(c, h, "conv relu conv");
    gc_fini(c);
}

/* Counts the CUDA executor's debug lines naming a fused backward-data +
   ReLU backward step in each layout. */
typedef struct {
    int nhwc, nchw;
} dgrad_log;

static void dgrad_capture(ot_log_level level, const char *msg, void *user)
{
    dgrad_log *l = user;
    (void)level;
    if (strstr(msg, "ConvGradData+ReluGrad (cuDNN fused) (NHWC)"))
        l->nhwc++;
    if (strstr(msg, "ConvGradData+ReluGrad (cuDNN fused) (NCHW)"))
        l->nchw++;
}

/* Compiles and runs c's graph on dev at precision prec, with
   ONNXTRAIN_CUDNN_FUSION set to `fusion` (NULL: unset) while compiling;
   *out the executor. */
static ot_status fusion_run(gcase *c, const ot_exec_input *bind, ot_device dev, ot_precision prec,
                            const char *fusion, ot_exec **out)
{
    ot_exec_opts opts = { .device = dev, .precision = prec };
    const char *was = getenv("ONNXTRAIN_CUDNN_FUSION");
    char *saved = was ? strdup(was) : NULL;
    if (fusion)
        setenv("ONNXTRAIN_CUDNN_FUSION", fusion, 1);
    else
        unsetenv("ONNXTRAIN_CUDNN_FUSION");
    ot_status st = ot_exec_compile(c->g, bind, c->n_in, &opts, out, &c->err);
    if (saved)
        setenv("ONNXTRAIN_CUDNN_FUSION", saved, 1);
    else
        unsetenv("ONNXTRAIN_CUDNN_FUSION");
    free(saved);
    if (st == OT_OK)
        st = ot_exec_run(*out, c->in, c->n_in, &c->err);
    return st;
}

/* Every output of executor a against b's: |a - b| <= abs_tol * (b's largest
   magnitude) + rel_tol * |b|; the worst element reported. */
static void fusion_compare(const ot_exec *a, const ot_exec *b, const char *what, double abs_tol,
                           double rel_tol)
{
    for (int o = 0; o < ot_exec_n_outputs(a); o++) {
        const ot_tensor *ta = ot_exec_output(a, o), *tb = ot_exec_output(b, o);
        int64_t n = ot_tensor_numel(tb);
        if (ot_tensor_numel(ta) != n) {
            ot_test_fail(__FILE__, __LINE__, "%s: output %d sizes differ", what, o);
            continue;
        }
        const float *va = ta->data, *vb = tb->data;
        double top = 0, worst = 0;
        for (int64_t i = 0; i < n; i++)
            top = fmax(top, fabs((double)vb[i]));
        int64_t at = -1;
        for (int64_t i = 0; i < n; i++) {
            double d = fabs((double)va[i] - (double)vb[i]);
            double tol = abs_tol * top + rel_tol * fabs((double)vb[i]);
            if (!(d <= tol) && d - tol >= worst) {
                worst = d - tol;
                at = i;
            }
        }
        if (at >= 0)
            ot_test_fail(__FILE__, __LINE__, "%s: output %d [%lld]: %.8g against %.8g (largest %.4g)",
                         what, o, (long long)at, (double)va[at], (double)vb[at], top);
    }
}

/* The CUDA executor's fused cuDNN graphs (OT_TEST_DEVICE=cuda; the device
   check's fused_dgrad_relu, run in both layouts, NHWC by default and NCHW
   with ONNXTRAIN_CUDA_NHWC=0, and fused_conv_half with
   OT_TEST_PRECISION=bf16 or fp16): on
     x -> Conv(+bias) -> Relu (a) -> Conv -> Add(a) -> Relu (h) -> Conv -> y
   with every weight and bias trained, the forward Conv+Bias+Relu and
   Conv+Add+Relu and the backward ConvGradData+ReluGrad (the last
   convolution's dX masked by h) each run as one step, the backward one in
   the layout asked for, and every output (y, the loss, the gradients)
   equals the unfused executor's (ONNXTRAIN_CUDNN_FUSION=0) and the CPU's:
   fp32 within 1e-5 of the tensor's largest value + 1e-4 |x| against the
   unfused run (other engines sum in another order) and 1e-4 + 1e-4 |x|
   against the CPU; bf16/fp16 within 2% of the tensor's largest value
   against the unfused run (the epilogue's operands and result are rounded
   to the half type where the unfused steps keep them float) and 5% against
   the CPU's fp32. On the CPU: skipped. */
TEST(exec_cuda_conv_fusions)
{
    ot_device dev = test_device();
    if (dev.kind != OT_DEVICE_CUDA) {
        printf("  skipped: the cuDNN fusions need OT_TEST_DEVICE=cuda\n");
        return;
    }
    const char *pe = getenv("OT_TEST_PRECISION"), *lay = getenv("ONNXTRAIN_CUDA_NHWC");
    ot_precision prec = pe && !strcmp(pe, "fp16")   ? OT_PRECISION_FP16
                        : pe && !strcmp(pe, "bf16") ? OT_PRECISION_BF16
                                                    : OT_PRECISION_FP32;
    bool nchw = lay && !strcmp(lay, "0");
    printf("  precision %s, layout %s\n", pe ? pe : "fp32",
           nchw ? "NCHW (ONNXTRAIN_CUDA_NHWC=0)" : "NHWC");
    gcase c_, *c = &c_;
    gc_init(c, 47);
    int32_t x = IN(c, "x", FILL_UNI, -1, 1, false, 2, 16, 8, 8);
    int32_t w[3], b = IN(c, "b0", FILL_UNI, -0.2, 0.2, true, 16);
    for (int k = 0; k < 3; k++) {
        char name[16];
        snprintf(name, sizeof name, "w%d", k);
        w[k] = IN(c, name, FILL_UNI, -0.3, 0.3, true, 16, 16, 3, 3);
    }
    ot_attr pad1 = INTS("pads", 1, 1, 1, 1);
    int32_t in[3] = { x, w[0], b };
    int32_t a = gc_node(c, "Conv", 13, in, 3, &pad1, 1);
    a = gc_node(c, "Relu", 14, &a, 1, NULL, 0);
    in[0] = a;
    in[1] = w[1];
    int32_t h = gc_node(c, "Conv", 13, in, 2, &pad1, 1);
    int32_t sum[2] = { h, a };
    h = gc_node(c, "Add", 14, sum, 2, NULL, 0);
    h = gc_node(c, "Relu", 14, &h, 1, NULL, 0);
    in[0] = h;
    in[1] = w[2];
    int32_t y = gc_node(c, "Conv", 13, in, 2, &pad1, 1);
    int32_t r, params[4] = { b, w[0], w[1], w[2] }, grads[4];
    int32_t L = y >= 0 ? gc_loss(c, y, &r) : -1;
    CHECK(L >= 0);
    if (L < 0) {
        gc_fini(c);
        return;
    }
    CHECK_OK(ot_pass_autodiff(c->g, L, params, 4, grads, &c->err), &c->err);
    CHECK_OK(ot_pass_add_output(c->g, y, &c->err), &c->err);
    CHECK_OK(ot_pass_add_output(c->g, L, &c->err), &c->err);
    for (int p = 0; p < 4; p++)
        CHECK_OK(ot_pass_add_output(c->g, grads[p], &c->err), &c->err);
    ot_exec_input bind[MAX_IN];
    for (int i = 0; i < c->n_in; i++) {
        bind[i].value = c->in_ids[i];
        bind[i].tensor = c->in[i];
        bind[i].const_value = false;
    }
    ot_exec *fx = NULL, *ux = NULL, *cx = NULL;
    dgrad_log lg = { 0 };
    ot_log_set(dgrad_capture, &lg, OT_LOG_DEBUG);
    ot_status st = fusion_run(c, bind, dev, prec, NULL, &fx);
    ot_log_set(NULL, NULL, OT_LOG_WARN);
    if (st == OT_OK)
        st = fusion_run(c, bind, dev, prec, "0", &ux);
    ot_device cpu = { .kind = OT_DEVICE_CPU };
    if (st == OT_OK)
        st = fusion_run(c, bind, cpu, OT_PRECISION_FP32, NULL, &cx);
    CHECK_OK(st, &c->err);
    if (st == OT_OK) {
        static const char *const kinds[3] = { "Conv+Bias+Relu (cuDNN fused)",
                                              "Conv+Add+Relu (cuDNN fused)",
                                              "ConvGradData+ReluGrad (cuDNN fused)" };
        for (int k = 0; k < 3; k++) {
            int nf = gc_steps_of_kind(fx, kinds[k]), nu = gc_steps_of_kind(ux, kinds[k]);
            printf("  %s: %d step%s fused, %d with the fusion off\n", kinds[k], nf,
                   nf == 1 ? "" : "s", nu);
            if (nf != 1 || nu != 0)
                ot_test_fail(__FILE__, __LINE__, "%s: %d fused steps (-vv says why not)",
                             kinds[k], nf);
        }
        printf("  ConvGradData+ReluGrad fused in NHWC: %d, in NCHW: %d\n", lg.nhwc, lg.nchw);
        CHECK_EQ_INT(nchw ? lg.nchw : lg.nhwc, 1);
        CHECK_EQ_INT(nchw ? lg.nhwc : lg.nchw, 0);
        bool half = prec != OT_PRECISION_FP32;
        fusion_compare(fx, ux, "fused against unfused", half ? 2e-2 : 1e-5, half ? 0 : 1e-4);
        fusion_compare(fx, cx, "fused against the CPU", half ? 5e-2 : 1e-4, half ? 0 : 1e-4);
    }
    ot_exec_free(fx);
    ot_exec_free(ux);
    ot_exec_free(cx);
    gc_fini(c);
}

/* ------------------------------------------------- index and logic ops */

/* Split (sizes as an input): dX is the outputs' gradients concatenated;
   output 1 does not reach the loss and contributes zeros */
GRAD_CASE(grad_split_input, 301, {
    int32_t in[2] = { IN(c, "x", FILL_UNI, -1, 1, true, 2, 6, 3), -1 }, outs[3];
    in[1] = gc_const_i64(c, "split", 1, DIMS(3), DIMS(1, 2, 3));
    ot_attr a = ot_op_grad_attr_int("axis", 1);
    gc_node_n(c, "", "Split", 13, in, 2, &a, 1, 3, outs);
    int32_t cat[2] = { outs[2], outs[0] };
    ot_attr ca = ot_op_grad_attr_int("axis", 1);
    y = gc_node(c, "Concat", 13, cat, 2, &ca, 1);
})

/* Split before opset 13 (attribute) and at 18 (num_outputs, a short last part) */
GRAD_CASE(grad_split_attr, 302, {
    int32_t in = IN(c, "x", FILL_UNI, -1, 1, true, 4, 5), outs[2];
    ot_attr a[2] = { ot_op_grad_attr_int("axis", -1), INTS("split", 2, 3) };
    gc_node_n(c, "", "Split", 11, &in, 1, a, 2, 2, outs);
    int32_t m[2] = { outs[1], outs[1] };
    y = gc_node(c, "Mul", 14, m, 2, NULL, 0);
})

GRAD_CASE(grad_split_num_outputs, 303, {
    int32_t in = IN(c, "x", FILL_UNI, -1, 1, true, 7, 2), outs[3];
    ot_attr a = ot_op_grad_attr_int("num_outputs", 3);
    gc_node_n(c, "", "Split", 18, &in, 1, &a, 1, 3, outs);
    int32_t cat[2] = { outs[2], outs[0] }; /* sizes 1 and 3 */
    ot_attr ca = ot_op_grad_attr_int("axis", 0);
    y = gc_node(c, "Concat", 13, cat, 2, &ca, 1);
})

/* Expand: dX sums dY over the broadcast dims (ViT's class token) */
GRAD_CASE(grad_expand, 304, {
    int32_t in[2] = { IN(c, "x", FILL_UNI, -1, 1, true, 1, 1, 4), -1 };
    in[1] = gc_const_i64(c, "shape", 1, DIMS(3), DIMS(3, 2, 1));
    y = gc_node(c, "Expand", 13, in, 2, NULL, 0);
})

GRAD_CASE(grad_expand_inner, 305, {
    int32_t in[2] = { IN(c, "x", FILL_UNI, -1, 1, true, 3, 1), -1 };
    in[1] = gc_const_i64(c, "shape", 1, DIMS(3), DIMS(2, 1, 5));
    y = gc_node(c, "Expand", 13, in, 2, NULL, 0);
})

/* Tile: dX sums dY over the copies */
GRAD_CASE(grad_tile, 306, {
    int32_t in[2] = { IN(c, "x", FILL_UNI, -1, 1, true, 2, 3, 1), -1 };
    in[1] = gc_const_i64(c, "repeats", 1, DIMS(3), DIMS(3, 1, 2));
    y = gc_node(c, "Tile", 13, in, 2, NULL, 0);
})

/* Where: each branch gets dY where it was chosen, summed to its shape; the
   condition (from Greater) takes none */
GRAD_CASE(grad_where, 307, {
    int32_t u = IN(c, "u", FILL_UNI, -1, 1, false, 2, 3);
    int32_t zero = gc_const(c, "zero", 0, NULL, 0.0, 0.0);
    int32_t gin[2] = { u, zero };
    int32_t cond = gc_node(c, "Greater", 13, gin, 2, NULL, 0);
    int32_t in[3] = { cond, IN(c, "a", FILL_UNI, -1, 1, true, 2, 3),
                      IN(c, "b", FILL_UNI, -1, 1, true, 3) };
    y = gc_node(c, "Where", 16, in, 3, NULL, 0);
})

/* Gather: dX is dY scattered back, repeated indices adding up (embeddings) */
GRAD_CASE(grad_gather_rows, 308, {
    int32_t in[2] = { IN(c, "x", FILL_UNI, -1, 1, true, 5, 3), -1 };
    in[1] = gc_const_i64(c, "idx", 2, DIMS(2, 2), DIMS(0, 2, 2, -1));
    y = gc_node(c, "Gather", 13, in, 2, NULL, 0);
})

/* Gather of one token along axis 1 (ViT's class token: x[:, 0]) */
GRAD_CASE(grad_gather_token, 309, {
    int32_t in[2] = { IN(c, "x", FILL_UNI, -1, 1, true, 2, 4, 3), -1 };
    in[1] = gc_const_i64(c, "idx", 0, NULL, DIMS(0));
    ot_attr a = ot_op_grad_attr_int("axis", 1);
    y = gc_node(c, "Gather", 13, in, 2, &a, 1);
})

/* ScatterND: dData is dY outside the written rows, dUpdates dY's rows */
GRAD_CASE(grad_scatter_nd, 310, {
    int32_t in[3] = { IN(c, "data", FILL_UNI, -1, 1, true, 4, 3), -1,
                      IN(c, "upd", FILL_UNI, -1, 1, true, 2, 3) };
    in[1] = gc_const_i64(c, "idx", 2, DIMS(2, 1), DIMS(3, 1));
    y = gc_node(c, "ScatterND", 13, in, 3, NULL, 0);
})

/* element indices (k = rank): single elements replaced */
GRAD_CASE(grad_scatter_nd_elements, 311, {
    int32_t in[3] = { IN(c, "data", FILL_UNI, -1, 1, true, 2, 3), -1,
                      IN(c, "upd", FILL_UNI, -1, 1, true, 3) };
    in[1] = gc_const_i64(c, "idx", 2, DIMS(3, 2), DIMS(0, 1, 1, 2, -2, 0));
    y = gc_node(c, "ScatterND", 13, in, 3, NULL, 0);
})

/* refusals that name the node's form: a float Mod, a ScatterND that adds */
TEST(grad_index_refusals)
{
    for (int k = 0; k < 2; k++) {
        gcase c_, *c = &c_;
        gc_init(c, 312 + (uint64_t)k);
        int32_t x = IN(c, "x", FILL_AWAY0, -1, 1, true, 2, 3), y, r, dx = -1;
        if (k == 0) {
            int32_t in[2] = { x, gc_const(c, "m", 0, NULL, 0.7, 0.7) };
            ot_attr a = ot_op_grad_attr_int("fmod", 1);
            y = gc_node(c, "Mod", 13, in, 2, &a, 1);
        } else {
            int32_t in[3] = { x, gc_const_i64(c, "idx", 2, DIMS(1, 1), DIMS(1)),
                              gc_const(c, "u", 2, DIMS(1, 3), 0, 1) };
            ot_attr a = { .name = "reduction", .type = OT_ATTR_STRING, .s = "add", .s_len = 3 };
            y = gc_node(c, "ScatterND", 16, in, 3, &a, 1);
        }
        CHECK(y >= 0);
        int32_t L = y >= 0 ? gc_loss(c, y, &r) : -1;
        CHECK(L >= 0);
        CHECK(ot_pass_autodiff(c->g, L, &c->in_ids[0], 1, &dx, &c->err) == OT_ERR_UNSUPPORTED);
        CHECK(strstr(c->err.msg, k ? "reduction 'add'" : "floating-point Mod") != NULL);
        gc_fini(c);
    }
}
