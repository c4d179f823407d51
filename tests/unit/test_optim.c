/*
 * test_optim.c: losses, optimizers, gradient clipping and LR schedules
 * (src/train/loss.c, optim.c, schedule.c; the update kernels in
 * src/exec/cpu/ref_optim.c).
 *
 * The optimizer tests build a small graph per case: one state value per
 * parameter, its gradient as a graph input, and the nodes the optimizer pass
 * appends (SgdStep, AdamStep, AdamWStep, and the clipping nodes); they compile
 * it with the executor and run one step per run, so they check the pass, the
 * in-place state updates and the plain kernels together.
 *
 * Analytic tests: a one-Gemm model y = w.x + b with loss (y - t)^2, where one
 * SGD step and the first Adam step (lr * sign(g)) have closed forms; uniform
 * and extreme logits for cross-entropy; warm-up factors; state save/restore.
 *
 * Golden tests compare with PyTorch 1.13 through tests/golden/optim_golden.txt,
 * written by tests/golden/make_optim_golden.py (its header has the command):
 * 5 steps of SGD (plain, momentum, dampening, nesterov), Adam (with and
 * without weight decay) and AdamW over three tensors in two LR groups;
 * clip_grad_norm_; CrossEntropyLoss with label smoothing 0 and 0.1; StepLR,
 * CosineAnnealingLR (per epoch and per step) and warm-up + cosine.
 *
 * Tolerance: |actual - expected| <= 1e-6 * |expected| + atol, with atol 1e-7
 * for float32 tensors (values of order 0.01 to 1: a few ulps of the
 * smallest), and 1e-12 for double learning rates. The golden file is found
 * next to this source (tests/golden/), or in $OT_GOLDEN_DIR.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/exec.h"
#include "ops/grad_util.h"
#include "test.h"
#include "train/loss.h"
#include "train/optim.h"
#include "train/schedule.h"

#define RTOL 1e-6
#define ATOL_F32 1e-7
#define ATOL_LR 1e-12

/* ------------------------------------------------------------ golden file */

typedef struct golden {
    char *text;    /* the whole file, lines split in place */
    char **lines;  /* "key count values..." */
    size_t n_lines;
} golden;

static void golden_free(golden *g)
{
    free(g->text);
    free(g->lines);
    memset(g, 0, sizeof *g);
}

/* The path of the golden file: $OT_GOLDEN_DIR/optim_golden.txt, or
   tests/golden/ beside this source (tests run from the repository root). */
static void golden_path(char *buf, size_t size)
{
    const char *dir = getenv("OT_GOLDEN_DIR");
    if (dir) {
        snprintf(buf, size, "%s/optim_golden.txt", dir);
        return;
    }
    const char *src = __FILE__; /* ".../tests/unit/test_optim.c" */
    const char *slash = strstr(src, "unit/test_optim.c");
    int len = slash ? (int)(slash - src) : 0;
    snprintf(buf, size, "%.*sgolden/optim_golden.txt", len, src);
}

static bool golden_load(golden *g)
{
    char path[1024];
    memset(g, 0, sizeof *g);
    golden_path(path, sizeof path);
    FILE *f = fopen(path, "rb");
    if (!f) {
        ot_test_fail(__FILE__, __LINE__, "cannot open %s (run from the repository root, or set "
                     "OT_GOLDEN_DIR)", path);
        return false;
    }
    bool ok = fseek(f, 0, SEEK_END) == 0;
    long size = ok ? ftell(f) : -1;
    ok = ok && size > 0 && fseek(f, 0, SEEK_SET) == 0;
    g->text = ok ? malloc((size_t)size + 1) : NULL;
    ok = g->text && fread(g->text, 1, (size_t)size, f) == (size_t)size;
    fclose(f);
    if (!ok) {
        ot_test_fail(__FILE__, __LINE__, "cannot read %s", path);
        golden_free(g);
        return false;
    }
    g->text[size] = '\0';
    size_t n = 1;
    for (long i = 0; i < size; i++)
        n += g->text[i] == '\n';
    g->lines = calloc(n, sizeof *g->lines);
    if (!g->lines) {
        golden_free(g);
        return false;
    }
    for (char *line = g->text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (line[0] != '#' && line[0] != '\0')
            g->lines[g->n_lines++] = line;
        line = nl ? nl + 1 : NULL;
    }
    return true;
}

/* Reads record `key` into out[n] (doubles). Fails the test (returns false)
   when the key is missing or holds another count. */
static bool golden_get(const golden *g, const char *key, double *out, size_t n)
{
    size_t klen = strlen(key);
    for (size_t i = 0; i < g->n_lines; i++) {
        const char *line = g->lines[i];
        if (strncmp(line, key, klen) != 0 || line[klen] != ' ')
            continue;
        char *end;
        long long count = strtoll(line + klen, &end, 10);
        if (count != (long long)n) {
            ot_test_fail(__FILE__, __LINE__, "golden '%s' has %lld values, expected %zu", key,
                         count, n);
            return false;
        }
        for (size_t j = 0; j < n; j++) {
            const char *p = end;
            out[j] = strtod(p, &end);
            if (end == p) {
                ot_test_fail(__FILE__, __LINE__, "golden '%s': bad value %zu", key, j);
                return false;
            }
        }
        return true;
    }
    ot_test_fail(__FILE__, __LINE__, "golden record '%s' is missing", key);
    return false;
}

static bool golden_get_f32(const golden *g, const char *key, float *out, size_t n)
{
    double tmp[64];
    if (n > sizeof tmp / sizeof tmp[0]) {
        ot_test_fail(__FILE__, __LINE__, "golden '%s': %zu values is too many", key, n);
        return false;
    }
    if (!golden_get(g, key, tmp, n))
        return false;
    for (size_t j = 0; j < n; j++)
        out[j] = (float)tmp[j];
    return true;
}

/* ------------------------------------------------------------ comparison */

/* Compares actual[n] with expected[n]: |a - e| <= RTOL |e| + atol, NaN only
   against NaN. On failure prints the tensor, the worst element, both values
   and the tolerance. Also fails on a reference that is more than 30% zeros
   or constant, unless `zeros_ok` says that is expected. */
static bool close_f64(const char *what, const double *actual, const double *expected, size_t n,
                      double atol, bool zeros_ok)
{
    size_t worst = 0, n_zero = 0, n_bad = 0;
    double worst_excess = -1.0, max_abs = 0.0, max_rel = 0.0;
    bool constant = n > 1;
    for (size_t i = 0; i < n; i++) {
        double a = actual[i], e = expected[i];
        n_zero += e == 0.0;
        constant = constant && e == expected[0];
        if (isnan(a) || isnan(e)) {
            if (isnan(a) != isnan(e)) {
                n_bad++;
                worst = i;
                worst_excess = (double)INFINITY;
            }
            continue;
        }
        double diff = a == e ? 0.0 : fabs(a - e); /* inf == inf */
        double tol = RTOL * fabs(e) + atol;
        if (diff > max_abs)
            max_abs = diff;
        if (e != 0.0 && diff / fabs(e) > max_rel)
            max_rel = diff / fabs(e);
        if (diff > tol) {
            n_bad++;
            if (diff - tol > worst_excess) {
                worst_excess = diff - tol;
                worst = i;
            }
        }
    }
    if (n_bad) {
        ot_test_fail(__FILE__, __LINE__,
                     "%s: %zu of %zu elements differ; worst [%zu]: actual %.9g expected %.9g "
                     "(tolerance %.3g rel + %.3g abs); max abs err %.3g, max rel err %.3g",
                     what, n_bad, n, worst, actual[worst], expected[worst], RTOL, atol, max_abs,
                     max_rel);
        return false;
    }
    if (!zeros_ok && (n_zero * 10 > n * 3 || constant)) {
        ot_test_fail(__FILE__, __LINE__, "%s: the reference is %s, which is suspicious", what,
                     constant ? "constant" : "more than 30% zeros");
        return false;
    }
    return true;
}

static bool close_f32(const char *what, const float *actual, const float *expected, size_t n)
{
    double a[64], e[64];
    if (n > 64) {
        ot_test_fail(__FILE__, __LINE__, "%s: %zu values is too many", what, n);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        a[i] = (double)actual[i];
        e[i] = (double)expected[i];
    }
    return close_f64(what, a, e, n, ATOL_F32, false);
}

/* ------------------------------------------------ the optimizer harness */

#define N_PARAMS 3
#define N_STEPS 5
#define MAX_NUMEL 16


/* One parameter tensor: its length and its group (0 base, 1 head). */
typedef struct pdesc {
    size_t numel;
    int group;
} pdesc;

#define H_MAX 4

/* A step graph with only updates: parameters p<i> (state), gradients g<i>
   (inputs), the rates, the step number. */
typedef struct optim_h {
    ot_graph *g;
    ot_exec *x;
    ot_optim_graph og;
    int n;
    int32_t p[H_MAX], gin[H_MAX];
    size_t numel[H_MAX];
    ot_tensor in[H_MAX + 3];
    int n_in;
    double lr[2];
    int64_t step;  /* steps taken */
    int64_t t;     /* the bound step number */
    float norm;    /* with clipping: the last norm */
} optim_h;

static void h_free(optim_h *h)
{
    ot_exec_free(h->x);
    ot_optim_graph_fini(&h->og);
    ot_graph_free(h->g);
    memset(h, 0, sizeof *h);
}

static void h_vec(ot_tensor *t, ot_dtype dtype, int ndim, size_t numel, void *data)
{
    memset(t, 0, sizeof *t);
    t->dtype = dtype;
    t->ndim = ndim;
    t->dims[0] = (int64_t)numel;
    t->bytes = (ndim ? numel : 1) * ot_dtype_size(dtype);
    t->data = data;
}

/* Builds and compiles the graph of n parameters (all zero; h_step writes
   them). Errors: what the pass and the compilation return. */
static ot_status h_new(const ot_optim_opts *o, const pdesc *d, int n, double clip, optim_h *h,
                       ot_err *err)
{
    ot_status st = OT_OK;
    memset(h, 0, sizeof *h);
    OT_ASSERT(n <= H_MAX);
    h->g = ot_graph_new();
    if (!h->g)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    ot_graph *g = h->g;
    int groups[H_MAX];
    g->inputs = ot_arena_alloc(&g->arena, sizeof *g->inputs * H_MAX);
    if (!g->inputs)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        char name[16];
        float zeros[MAX_NUMEL] = { 0 };
        int64_t dims[1] = { (int64_t)d[i].numel };
        OT_ASSERT(d[i].numel <= MAX_NUMEL);
        snprintf(name, sizeof name, "p%d", i);
        OT_TRY(ot_op_grad_const_f32(g, name, dims, 1, zeros, &h->p[i], err));
        g->values[h->p[i]].flags = OT_VAL_INIT | OT_VAL_PARAM | OT_VAL_STATE;
        snprintf(name, sizeof name, "g%d", i);
        OT_TRY(ot_graph_intern_value(g, name, &h->gin[i], err));
        ot_value *v = &g->values[h->gin[i]];
        v->dtype = OT_DTYPE_FLOAT;
        v->ndim = 1;
        v->dims[0] = dims[0];
        v->producer = -1;
        v->flags = OT_VAL_INPUT | OT_VAL_SHAPE_DECLARED;
        g->inputs[g->n_inputs].value = h->gin[i];
        g->inputs[g->n_inputs].info = (ot_blob){ 0 };
        g->n_inputs++;
        h->numel[i] = d[i].numel;
        groups[i] = d[i].group;
    }
    h->n = n;
    OT_TRY(ot_optim_add_updates(g, o, h->p, h->gin, groups, n, clip, -1, &h->og, err));
    if (h->og.grad_norm >= 0) {
        g->outputs = ot_arena_alloc(&g->arena, sizeof *g->outputs);
        if (!g->outputs)
            OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
        g->outputs[0].value = h->og.grad_norm;
        g->outputs[0].info = (ot_blob){ 0 };
        g->n_outputs = 1;
        g->values[h->og.grad_norm].flags |= OT_VAL_OUTPUT;
    }
    ot_exec_input bind[H_MAX + 3];
    memset(bind, 0, sizeof bind);
    for (int i = 0; i < n; i++) {
        bind[h->n_in].value = h->gin[i];
        h_vec(&h->in[h->n_in++], OT_DTYPE_FLOAT, 1, d[i].numel, NULL);
    }
    for (int grp = 0; grp < 2; grp++)
        if (h->og.lr[grp] >= 0) {
            bind[h->n_in].value = h->og.lr[grp];
            h_vec(&h->in[h->n_in++], OT_DTYPE_DOUBLE, 0, 1, &h->lr[grp]);
        }
    bind[h->n_in].value = h->og.step;
    h_vec(&h->in[h->n_in++], OT_DTYPE_INT64, 0, 1, &h->t);
    for (int i = 0; i < h->n_in; i++)
        bind[i].tensor = h->in[i];
    ot_exec_opts eo = { .cpu.threads = 1 };
    OT_TRY(ot_exec_compile(g, bind, h->n_in, &eo, &h->x, err));
done:
    if (st != OT_OK)
        h_free(h);
    return st;
}

/* One update of every parameter: params[i] (written into the state, then
   read back) from grads[i] at lr[group]. */
static ot_status h_step(optim_h *h, const double *lr, float *const *params,
                        const float *const *grads, ot_err *err)
{
    ot_status st = OT_OK;
    OT_TRY(ot_optim_check_lr(lr, 2, err));
    for (int i = 0; i < h->n; i++) {
        OT_TRY(ot_exec_write_state(h->x, h->p[i], params[i], h->numel[i] * sizeof(float), err));
        h->in[i].data = (void *)(uintptr_t)grads[i];
    }
    h->lr[0] = lr[0];
    h->lr[1] = lr[1];
    h->t = h->step + 1;
    OT_TRY(ot_exec_run(h->x, h->in, h->n_in, err));
    h->step++;
    for (int i = 0; i < h->n; i++)
        OT_TRY(ot_exec_read_state(h->x, h->p[i], params[i], h->numel[i] * sizeof(float), err));
    if (h->og.grad_norm >= 0)
        memcpy(&h->norm, ot_exec_output(h->x, 0)->data, sizeof h->norm);
done:
    return st;
}

/* ------------------------------------------------------- golden optimizers */


typedef struct golden_params {
    pdesc desc[N_PARAMS];
    float init[N_PARAMS][MAX_NUMEL];
    float grad[N_STEPS][N_PARAMS][MAX_NUMEL];
} golden_params;

static bool load_params(const golden *g, golden_params *gp)
{
    char key[64];
    for (int i = 0; i < N_PARAMS; i++) {
        double shape[2];
        snprintf(key, sizeof key, "param.%d.shape", i);
        if (!golden_get(g, key, shape, 2))
            return false;
        if (shape[0] < 1 || shape[0] > MAX_NUMEL) {
            ot_test_fail(__FILE__, __LINE__, "golden %s: numel %g out of range", key, shape[0]);
            return false;
        }
        gp->desc[i].numel = (size_t)shape[0];
        gp->desc[i].group = (int)shape[1];
        snprintf(key, sizeof key, "param.%d.init", i);
        if (!golden_get_f32(g, key, gp->init[i], gp->desc[i].numel))
            return false;
        for (int k = 0; k < N_STEPS; k++) {
            snprintf(key, sizeof key, "grad.%d.%d", k, i);
            if (!golden_get_f32(g, key, gp->grad[k][i], gp->desc[i].numel))
                return false;
        }
    }
    return true;
}

/* Runs golden case `name` (its options from the file) and compares every
   parameter after every step. */
static bool run_golden_case(const golden *g, const golden_params *gp, const char *name)
{
    char key[96];
    double o[5];
    snprintf(key, sizeof key, "%s.opts", name);
    if (!golden_get(g, key, o, 5))
        return false;
    ot_optim_kind kind = (ot_optim_kind)(int)o[0];
    ot_optim_opts opts = ot_optim_opts_default(kind);
    opts.momentum = o[1];
    opts.dampening = o[2];
    opts.nesterov = o[3] != 0.0;
    opts.weight_decay = o[4];

    ot_err err;
    ot_err_init(&err);
    optim_h h;
    if (h_new(&opts, gp->desc, N_PARAMS, 0.0, &h, &err) != OT_OK) {
        ot_test_fail(__FILE__, __LINE__, "%s: the optimizer graph: %s", name, err.msg);
        return false;
    }
    float p[N_PARAMS][MAX_NUMEL];
    float *pp[N_PARAMS];
    const float *gg[N_PARAMS];
    memcpy(p, gp->init, sizeof p);
    for (int i = 0; i < N_PARAMS; i++)
        pp[i] = p[i];
    bool ok = true;
    for (int k = 0; k < N_STEPS && ok; k++) {
        double lr[2];
        snprintf(key, sizeof key, "%s.lr.%d", name, k);
        ok = golden_get(g, key, lr, 2);
        for (int i = 0; i < N_PARAMS; i++)
            gg[i] = gp->grad[k][i];
        if (ok && h_step(&h, lr, pp, gg, &err) != OT_OK) {
            ot_test_fail(__FILE__, __LINE__, "%s: step %d: %s", name, k, err.msg);
            ok = false;
        }
        for (int i = 0; i < N_PARAMS && ok; i++) {
            float want[MAX_NUMEL];
            snprintf(key, sizeof key, "%s.after.%d.%d", name, k, i);
            ok = golden_get_f32(g, key, want, gp->desc[i].numel) &&
                 close_f32(key, p[i], want, gp->desc[i].numel);
        }
    }
    h_free(&h);
    return ok;
}

static void golden_cases(const char *const *names, size_t n_names)
{
    golden g;
    golden_params gp;
    if (!golden_load(&g))
        return;
    if (load_params(&g, &gp))
        for (size_t c = 0; c < n_names; c++)
            if (!run_golden_case(&g, &gp, names[c]))
                break;
    golden_free(&g);
}

TEST(optim_golden_sgd)
{
    static const char *const names[] = {"sgd_plain", "sgd_momentum", "sgd_dampening",
                                        "sgd_nesterov"};
    golden_cases(names, sizeof names / sizeof names[0]);
}

TEST(optim_golden_adam)
{
    static const char *const names[] = {"adam", "adam_wd", "adamw"};
    golden_cases(names, sizeof names / sizeof names[0]);
}

TEST(optim_golden_clip)
{
    golden g;
    golden_params gp;
    if (!golden_load(&g))
        return;
    bool ok = load_params(&g, &gp);
    double max_norm = 0.0, want_norm = 0.0;
    ok = ok && golden_get(&g, "clip.max_norm", &max_norm, 1) &&
         golden_get(&g, "clip.norm", &want_norm, 1);
    /* plain SGD at rate 1 from zero parameters: p' = -(g * coef) exactly */
    float grads[N_PARAMS][MAX_NUMEL], p[N_PARAMS][MAX_NUMEL];
    float *pp[N_PARAMS];
    const float *gg[N_PARAMS];
    memset(p, 0, sizeof p);
    for (int i = 0; i < N_PARAMS; i++) {
        gg[i] = gp.grad[0][i];
        pp[i] = p[i];
        gp.desc[i].group = 0;
    }
    ot_err err;
    ot_err_init(&err);
    ot_optim_opts sgd = ot_optim_opts_default(OT_OPTIM_SGD);
    optim_h h;
    const double lr[2] = { 1.0, 1.0 };
    if (ok && (h_new(&sgd, gp.desc, N_PARAMS, (double)(float)max_norm, &h, &err) != OT_OK ||
               h_step(&h, lr, pp, gg, &err) != OT_OK)) {
        ot_test_fail(__FILE__, __LINE__, "clip: %s", err.msg);
        ok = false;
    }
    for (int i = 0; i < N_PARAMS; i++)
        for (size_t j = 0; j < MAX_NUMEL; j++)
            grads[i][j] = -p[i][j];
    double got_norm = ok ? (double)h.norm : 0.0;
    if (h.g)
        h_free(&h);
    ok = ok && close_f64("clip.norm", &got_norm, &want_norm, 1, ATOL_F32, false);
    for (int i = 0; i < N_PARAMS && ok; i++) {
        char key[32];
        float want[MAX_NUMEL];
        snprintf(key, sizeof key, "clip.after.%d", i);
        ok = golden_get_f32(&g, key, want, gp.desc[i].numel) &&
             close_f32(key, grads[i], want, gp.desc[i].numel);
    }
    golden_free(&g);
}

TEST(optim_golden_xent)
{
    golden g;
    if (!golden_load(&g))
        return;
    enum { N = 4, C = 10 };
    float logits[N * C], dlogits[N * C], want_d[N * C];
    double labels_d[N], correct_d = 0.0;
    int64_t labels[N];
    bool ok = golden_get_f32(&g, "xent.logits", logits, N * C) &&
              golden_get(&g, "xent.labels", labels_d, N) &&
              golden_get(&g, "xent.correct", &correct_d, 1);
    for (int n = 0; n < N; n++)
        labels[n] = (int64_t)labels_d[n];
    static const char *const tags[] = {"ls0", "ls0.1"};
    for (int t = 0; t < 2 && ok; t++) {
        char key[64];
        double eps = 0.0, want_loss = 0.0;
        snprintf(key, sizeof key, "xent.%s.smoothing", tags[t]);
        ok = golden_get(&g, key, &eps, 1);
        snprintf(key, sizeof key, "xent.%s.loss", tags[t]);
        ok = ok && golden_get(&g, key, &want_loss, 1);
        snprintf(key, sizeof key, "xent.%s.dlogits", tags[t]);
        ok = ok && golden_get_f32(&g, key, want_d, N * C);
        if (!ok)
            break;
        ot_err err;
        ot_err_init(&err);
        float loss = 0.0f;
        int64_t correct = -1;
        if (ot_loss_xent_forward(logits, labels, N, C, (float)eps, &loss, &correct, &err) ||
            ot_loss_xent_backward(logits, labels, N, C, (float)eps, dlogits, &err)) {
            ot_test_fail(__FILE__, __LINE__, "xent %s: %s", tags[t], err.msg);
            ok = false;
            break;
        }
        double got_loss = (double)loss;
        snprintf(key, sizeof key, "xent.%s.loss", tags[t]);
        ok = close_f64(key, &got_loss, &want_loss, 1, ATOL_F32, false);
        snprintf(key, sizeof key, "xent.%s.dlogits", tags[t]);
        ok = ok && close_f32(key, dlogits, want_d, N * C);
        if (ok && correct != (int64_t)correct_d) {
            ot_test_fail(__FILE__, __LINE__, "xent: %lld correct, expected %g", (long long)correct,
                         correct_d);
            ok = false;
        }
    }
    golden_free(&g);
}

TEST(optim_golden_schedule)
{
    golden g;
    if (!golden_load(&g))
        return;
    double cfg[3], base = 0.0;
    bool ok = golden_get(&g, "sched.config", cfg, 3) && golden_get(&g, "sched.base_lr", &base, 1);
    enum { MAX_LR = 64 };
    const int64_t epochs = ok ? (int64_t)cfg[0] : 0, spe = ok ? (int64_t)cfg[1] : 0;
    if (ok && (epochs < 1 || epochs * spe > MAX_LR || spe < 1)) {
        ot_test_fail(__FILE__, __LINE__, "golden sched.config out of range");
        ok = false;
    }
    struct {
        const char *key;
        ot_optim_schedule s;
        bool per_step; /* one value per step, not per epoch */
    } cases[] = {
        {"sched.step", {.kind = OT_SCHED_STEP, .step_size = 3, .gamma = 0.1}, false},
        {"sched.cosine", {.kind = OT_SCHED_COSINE, .t_max = epochs}, false},
        {"sched.cosine_per_step", {.kind = OT_SCHED_COSINE, .t_max = epochs, .per_step = true},
         true},
        {"sched.warmup_cosine",
         {.kind = OT_SCHED_COSINE, .t_max = epochs, .warmup_steps = ok ? (int64_t)cfg[2] : 0},
         true},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0] && ok; c++) {
        ot_err err;
        ot_err_init(&err);
        if (ot_optim_schedule_check(&cases[c].s, &err) != OT_OK) {
            ot_test_fail(__FILE__, __LINE__, "%s: %s", cases[c].key, err.msg);
            break;
        }
        double want[MAX_LR], got[MAX_LR];
        size_t n = (size_t)(cases[c].per_step ? epochs * spe : epochs);
        ok = golden_get(&g, cases[c].key, want, n);
        for (size_t i = 0; i < n && ok; i++) {
            int64_t epoch = cases[c].per_step ? (int64_t)i / spe : (int64_t)i;
            int64_t step = cases[c].per_step ? (int64_t)i % spe : 0;
            got[i] = ot_optim_schedule_lr(&cases[c].s, base, epoch, step, spe);
        }
        ok = ok && close_f64(cases[c].key, got, want, n, ATOL_LR, false);
    }
    golden_free(&g);
}

/* ------------------------------------------------------------- analytic */

/* One-Gemm model y = w.x + b, loss L = (y - t)^2: dL/dw = 2 (y - t) x,
   dL/db = 2 (y - t). One SGD step: w' = w - lr * dL/dw. */
enum { GEMM_K = 4 };
static void gemm_grads(const float *w, float b, const float *x, float t, float *dw, float *db)
{
    float y = b;
    for (int k = 0; k < GEMM_K; k++)
        y += w[k] * x[k];
    float r = 2.0f * (y - t);
    for (int k = 0; k < GEMM_K; k++)
        dw[k] = r * x[k];
    *db = r;
}

/* One step of a harness graph built for the case (h_new + h_step + h_free). */
static ot_status one_step(const ot_optim_opts *o, const pdesc *d, int n, const double *lr,
                          float *const *params, const float *const *grads, ot_err *err)
{
    optim_h h;
    ot_status st = h_new(o, d, n, 0.0, &h, err);
    if (st != OT_OK)
        return st;
    st = h_step(&h, lr, params, grads, err);
    h_free(&h);
    return st;
}

TEST(optim_sgd_one_gemm_closed_form)
{
    float w[GEMM_K] = {0.5f, -1.0f, 0.25f, 2.0f}, b = 0.125f;
    const float x[GEMM_K] = {1.0f, 2.0f, -1.0f, 0.5f}, t = 3.0f;
    float dw[GEMM_K], db;
    gemm_grads(w, b, x, t, dw, &db);
    /* y = 0.5 - 2 - 0.25 + 1 + 0.125 = -0.625; dL/dy = 2 (y - t) = -7.25. */
    CHECK(db == -7.25f);
    const pdesc desc[2] = {{GEMM_K, 0}, {1, 0}};
    ot_optim_opts opts = ot_optim_opts_default(OT_OPTIM_SGD);
    ot_err err;
    ot_err_init(&err);
    float *params[2] = {w, &b};
    const float *grads[2] = {dw, &db};
    const double lr[2] = {0.0625, 0.0625}; /* a power of two: every product below is exact */
    CHECK_OK(one_step(&opts, desc, 2, lr, params, grads, &err), &err);
    /* w' = w + 0.0625 * 7.25 * x, b' = b + 0.0625 * 7.25 = 0.578125 */
    const float want_w[GEMM_K] = {0.5f + 0.453125f, -1.0f + 0.90625f, 0.25f - 0.453125f,
                                  2.0f + 0.2265625f};
    for (int k = 0; k < GEMM_K; k++)
        CHECK(w[k] == want_w[k]);
    CHECK(b == 0.578125f);
}

TEST(optim_sgd_momentum_closed_form)
{
    /* Two steps, mu = 0.5, tau = 0.5, wd = 0.25, lr = 0.5, p0 = 1, g = 1 each:
       step 1: d = 1 + 0.25 = 1.25, b = d = 1.25 (no dampening), p = 1 - 0.625 = 0.375
       step 2: d = 1 + 0.09375 = 1.09375, b = 0.625 + 0.546875 = 1.171875,
               p = 0.375 - 0.5859375 = -0.2109375
       nesterov (tau 0): step 1: p = 1 - 0.5 (1.25 + 0.625) = 0.0625. */
    float p = 1.0f;
    const float g = 1.0f;
    float *params[1] = {&p};
    const float *grads[1] = {&g};
    const pdesc desc[1] = {{1, 0}};
    ot_optim_opts opts = ot_optim_opts_default(OT_OPTIM_SGD);
    opts.momentum = 0.5;
    opts.dampening = 0.5;
    opts.weight_decay = 0.25;
    const double lr[2] = {0.5, 0.5};
    ot_err err;
    ot_err_init(&err);
    optim_h h;
    CHECK_OK(h_new(&opts, desc, 1, 0.0, &h, &err), &err);
    ot_status st = h_step(&h, lr, params, grads, &err);
    float p1 = p;
    if (st == OT_OK)
        st = h_step(&h, lr, params, grads, &err);
    /* the momentum buffer is state of the executor, updated by the step */
    float buf = 0.0f;
    if (st == OT_OK)
        st = ot_exec_read_state(h.x, h.og.bufs[0], &buf, sizeof buf, &err);
    h_free(&h);
    CHECK_OK(st, &err);
    CHECK(p1 == 0.375f);
    CHECK(p == -0.2109375f);
    CHECK(buf == 1.171875f);

    opts.dampening = 0.0;
    opts.nesterov = true;
    p = 1.0f;
    CHECK_OK(one_step(&opts, desc, 1, lr, params, grads, &err), &err);
    CHECK(p == 0.0625f);
}

/* Adam's first step: m_hat = g, v_hat = g^2, so p' = p - lr g / (|g| + eps),
   which is lr * sign(g) when eps is negligible against |g|. The one-Gemm
   model gives g; the head group runs at 10x the rate (per-group LR). */
TEST(optim_adam_first_step_sign)
{
    float w[GEMM_K] = {0.5f, -1.0f, 0.25f, 2.0f}, b = 0.125f;
    const float x[GEMM_K] = {1.0f, 2.0f, -1.0f, 0.5f}, t = 3.0f;
    float dw[GEMM_K], db;
    gemm_grads(w, b, x, t, dw, &db);
    const float w0[GEMM_K] = {0.5f, -1.0f, 0.25f, 2.0f}, b0 = 0.125f;
    static const ot_optim_kind kinds[2] = {OT_OPTIM_ADAM, OT_OPTIM_ADAMW};
    for (int kk = 0; kk < 2; kk++) {
        memcpy(w, w0, sizeof w);
        b = b0;
        const pdesc desc[2] = {{GEMM_K, 0}, {1, 1}};
        ot_optim_opts opts = ot_optim_opts_default(kinds[kk]);
        opts.weight_decay = 0.0;
        ot_err err;
        ot_err_init(&err);
        float *params[2] = {w, &b};
        const float *grads[2] = {dw, &db};
        const double lr[2] = {1e-3, 1e-2};
        CHECK_OK(one_step(&opts, desc, 2, lr, params, grads, &err), &err);
        for (int k = 0; k < GEMM_K; k++) {
            float want = w0[k] - (dw[k] > 0.0f ? 1e-3f : -1e-3f);
            if (!(fabsf(w[k] - want) <= 1e-6f * fabsf(want) + 1e-9f)) {
                ot_test_fail(__FILE__, __LINE__, "kind %d w[%d] = %.9g, expected %.9g", kk, k,
                             (double)w[k], (double)want);
                return;
            }
        }
        /* db < 0: b moves up by the head group's rate. */
        CHECK(fabsf(b - (b0 + 1e-2f)) <= 1e-6f * (b0 + 1e-2f));
    }
}

TEST(optim_adamw_decoupled_decay)
{
    /* With g = 0, m = v = 0 and the Adam term is 0 / (0 + eps) = 0, so one
       AdamW step is p' = p (1 - lr wd) exactly; Adam's L2 would move p by lr. */
    float p[2] = {2.0f, -4.0f};
    const float g[2] = {0.0f, 0.0f};
    float *params[1] = {p};
    const float *grads[1] = {g};
    const pdesc desc[1] = {{2, 0}};
    ot_optim_opts opts = ot_optim_opts_default(OT_OPTIM_ADAMW);
    CHECK(opts.weight_decay == 0.01);
    opts.weight_decay = 0.5;
    const double lr[2] = {0.25, 0.25};
    ot_err err;
    ot_err_init(&err);
    CHECK_OK(one_step(&opts, desc, 1, lr, params, grads, &err), &err);
    CHECK(p[0] == 1.75f);
    CHECK(p[1] == -3.5f);
}

TEST(optim_pass_rejects_bad_options)
{
    const pdesc desc[2] = {{3, 0}, {2, 1}};
    optim_h h;
    ot_err err;
    ot_err_init(&err);
    ot_optim_opts o = ot_optim_opts_default(OT_OPTIM_SGD);
    o.nesterov = true; /* without momentum */
    CHECK_EQ_INT(h_new(&o, desc, 2, 0.0, &h, &err), OT_ERR_ARG);
    CHECK(strstr(err.msg, "nesterov") != NULL);
    o.momentum = 0.9;
    o.dampening = 0.1;
    CHECK_EQ_INT(h_new(&o, desc, 2, 0.0, &h, &err), OT_ERR_ARG);
    o = ot_optim_opts_default(OT_OPTIM_ADAM);
    const pdesc bad_group[2] = {{3, 0}, {2, 2}};
    CHECK_EQ_INT(h_new(&o, bad_group, 2, 0.0, &h, &err), OT_ERR_ARG);
    CHECK(strstr(err.msg, "parameter 1") != NULL);
    CHECK_EQ_INT(h_new(&o, desc, 2, -1.0, &h, &err), OT_ERR_ARG); /* clip norm */
    o.beta2 = 1.0;
    CHECK_EQ_INT(h_new(&o, desc, 2, 0.0, &h, &err), OT_ERR_ARG);
    CHECK(h.x == NULL && h.g == NULL);

    const double bad_lr[2] = {0.1, (double)NAN};
    CHECK_EQ_INT(ot_optim_check_lr(bad_lr, 2, &err), OT_ERR_ARG);
    CHECK(strstr(err.msg, "group 1") != NULL);
}

/* The step graph: one update node per parameter, last; the moments are
   state values without bytes (zero at the start); the rate and step inputs
   are there; the node that reads a parameter after its update is refused. */
TEST(optim_pass_graph_shape)
{
    const pdesc desc[2] = {{3, 0}, {2, 1}};
    optim_h h;
    ot_err err;
    ot_err_init(&err);
    ot_optim_opts o = ot_optim_opts_default(OT_OPTIM_ADAM);
    CHECK_OK(h_new(&o, desc, 2, 0.5, &h, &err), &err);
    const ot_graph *g = h.g;
    int n_updates = 0, n_sums = 0, n_coef = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        n_updates += n->op == ot_op_table[OT_OP_ADAM_STEP];
        n_sums += n->op == ot_op_table[OT_OP_GRAD_SUM_SQUARES];
        n_coef += n->op == ot_op_table[OT_OP_CLIP_GRAD_COEF];
    }
    CHECK_EQ_INT(n_updates, 2);
    CHECK_EQ_INT(n_sums, 2);
    CHECK_EQ_INT(n_coef, 1);
    CHECK_EQ_INT(h.og.n_nodes, 5);
    CHECK(g->nodes[g->n_nodes - 1].op == ot_op_table[OT_OP_ADAM_STEP]);
    CHECK_EQ_INT(h.og.n_bufs, 2);
    for (int k = 0; k < 4; k++) {
        const ot_value *m = &g->values[h.og.bufs[k]];
        CHECK((m->flags & OT_VAL_STATE) && m->data.data == NULL);
        CHECK(m->data.bytes == desc[k % 2].numel * sizeof(float));
    }
    CHECK(h.og.lr[0] >= 0 && h.og.lr[1] >= 0 && h.og.step >= 0 && h.og.grad_norm >= 0);
    CHECK_EQ_INT(g->values[h.og.lr[0]].dtype, OT_DTYPE_DOUBLE);
    CHECK_EQ_INT(g->values[h.og.step].dtype, OT_DTYPE_INT64);
    /* a Relu reading p0 after its update: the executor refuses the order */
    int32_t id, y;
    CHECK_OK(ot_graph_add_node(h.g, &id, &err), &err);
    CHECK_OK(ot_graph_intern_value(h.g, "late", &y, &err), &err);
    ot_node *n = &h.g->nodes[id];
    n->op = ot_op_table[OT_OP_RELU];
    n->op_type = "Relu";
    n->domain = "";
    n->opset = 14;
    n->name = "late_reader";
    n->in = ot_arena_alloc(&h.g->arena, sizeof *n->in);
    n->out = ot_arena_alloc(&h.g->arena, sizeof *n->out);
    CHECK(n->in && n->out);
    n->in[0] = h.p[0];
    n->out[0] = y;
    n->n_in = n->n_out = 1;
    h.g->values[y].producer = id;
    ot_exec *x = NULL;
    ot_exec_input bind[H_MAX + 3];
    memset(bind, 0, sizeof bind);
    int nb = 0;
    for (int i = 0; i < 2; i++)
        bind[nb++] = (ot_exec_input){ .value = h.gin[i], .tensor = h.in[i] };
    bind[nb++] = (ot_exec_input){ .value = h.og.lr[0], .tensor = h.in[2] };
    bind[nb++] = (ot_exec_input){ .value = h.og.lr[1], .tensor = h.in[3] };
    bind[nb++] = (ot_exec_input){ .value = h.og.step, .tensor = h.in[4] };
    ot_status st = ot_exec_compile(h.g, bind, nb, NULL, &x, &err);
    ot_exec_free(x);
    h_free(&h);
    CHECK_EQ_INT(st, OT_ERR_MODEL);
    if (!strstr(err.msg, "in place before node 'late_reader'"))
        ot_test_fail(__FILE__, __LINE__, "message: %s", err.msg);
}

/* Checkpoint names and sizes; copying the moments and the step count of one
   executor into a fresh one makes the next step bit-identical. */
TEST(optim_state_save_restore)
{
    const pdesc desc[2] = {{3, 0}, {2, 1}};
    const float g[2][3] = {{0.5f, -0.25f, 1.0f}, {2.0f, -1.0f, 0.0f}};
    float a0[3] = {1, 2, 3}, a1[2] = {-1, 1};
    float *pa[2] = {a0, a1};
    const float *gr[2] = {g[0], g[1]};
    const double lr[2] = {0.01, 0.1};
    ot_err err;
    ot_err_init(&err);

    static const ot_optim_kind kinds[2] = {OT_OPTIM_ADAMW, OT_OPTIM_SGD};
    for (int kk = 0; kk < 2; kk++) {
        ot_optim_opts o = ot_optim_opts_default(kinds[kk]);
        o.momentum = 0.9;
        optim_h a, b;
        CHECK_OK(h_new(&o, desc, 2, 0.0, &a, &err), &err);
        if (h_new(&o, desc, 2, 0.0, &b, &err) != OT_OK) {
            h_free(&a);
            CHECK_OK(err.code, &err);
        }
        bool ok = h_step(&a, lr, pa, gr, &err) == OT_OK && h_step(&a, lr, pa, gr, &err) == OT_OK;
        size_t count = ot_optim_state_count(&a.og);
        size_t want_count = kinds[kk] == OT_OPTIM_SGD ? 3 : 5;
        static const char *const adam_names[] = {"step", "adam.m.0", "adam.m.1", "adam.v.0",
                                                 "adam.v.1"};
        static const char *const sgd_names[] = {"step", "sgd.momentum_buffer.0",
                                                "sgd.momentum_buffer.1"};
        const char *const *names = kinds[kk] == OT_OPTIM_SGD ? sgd_names : adam_names;
        ok = ok && count == want_count;
        for (size_t i = 0; i < count && ok; i++) {
            ot_optim_state sa;
            int32_t va, vb;
            ot_optim_state_describe(a.g, &a.og, o.kind, i, &sa, &vb);
            ot_optim_state_describe(b.g, &b.og, o.kind, i, &sa, &va);
            ok = strcmp(sa.name, names[i]) == 0 && va == vb &&
                 sa.numel == (i == 0 ? 1 : desc[(i - 1) % 2].numel) &&
                 sa.dtype == (i == 0 ? OT_DTYPE_INT64 : OT_DTYPE_FLOAT);
            if (ok && i == 0) {
                b.step = a.step;
                continue;
            }
            float buf[3];
            size_t bytes = sa.numel * sizeof(float);
            ok = ok && ot_exec_read_state(a.x, va, buf, bytes, &err) == OT_OK &&
                 ot_exec_write_state(b.x, vb, buf, bytes, &err) == OT_OK;
        }
        ok = ok && b.step == 2;
        float b0[3], b1[2];
        memcpy(b0, a0, sizeof b0);
        memcpy(b1, a1, sizeof b1);
        float *pb[2] = {b0, b1};
        ok = ok && h_step(&a, lr, pa, gr, &err) == OT_OK && h_step(&b, lr, pb, gr, &err) == OT_OK;
        h_free(&a);
        h_free(&b);
        if (!ok) {
            ot_test_fail(__FILE__, __LINE__, "kind %d: state enumeration or copy failed: %s",
                         (int)kinds[kk], err.msg);
            return;
        }
        CHECK(memcmp(a0, b0, sizeof b0) == 0);
        CHECK(memcmp(a1, b1, sizeof b1) == 0);
    }
}

TEST(optim_step_allocates_nothing)
{
    const pdesc desc[1] = {{4, 0}};
    float p[4] = {1, 2, 3, 4};
    const float g[4] = {0.1f, 0.2f, -0.3f, 0.4f};
    float *params[1] = {p};
    const float *grads[1] = {g};
    const double lr[2] = {0.1, 0.1};
    ot_err err;
    ot_err_init(&err);
    ot_optim_opts o = ot_optim_opts_default(OT_OPTIM_ADAM);
    optim_h h;
    CHECK_OK(h_new(&o, desc, 1, 1.0, &h, &err), &err);
    ot_status st = h_step(&h, lr, params, grads, &err);
    uint64_t before = ot_alloc_count();
    if (st == OT_OK)
        st = h_step(&h, lr, params, grads, &err);
    uint64_t after = ot_alloc_count();
    h_free(&h);
    CHECK_OK(st, &err);
    CHECK(before == after);
}

TEST(optim_clip_grad_norm)
{
    /* Norm of {3, 4} and {12} is 13. max_norm 26.5: unchanged; 6.5: halved
       (coef 6.5 / (13 + 1e-6), within 1e-7 of 0.5). Plain SGD at rate 1 from
       zero parameters gives back -(g * coef). */
    const float g0[2] = {3, 4}, g1[1] = {12};
    const float *grads[2] = {g0, g1};
    float p0[2], p1[1];
    float *params[2] = {p0, p1};
    const pdesc desc[2] = {{2, 0}, {1, 0}};
    const double lr[2] = {1.0, 1.0};
    ot_optim_opts o = ot_optim_opts_default(OT_OPTIM_SGD);
    ot_err err;
    ot_err_init(&err);
    static const double max_norm[2] = {26.5, 6.5};
    for (int c = 0; c < 2; c++) {
        optim_h h;
        memset(p0, 0, sizeof p0);
        memset(p1, 0, sizeof p1);
        CHECK_OK(h_new(&o, desc, 2, max_norm[c], &h, &err), &err);
        ot_status st = h_step(&h, lr, params, grads, &err);
        float norm = h.norm;
        h_free(&h);
        CHECK_OK(st, &err);
        CHECK(norm == 13.0f);
        if (c == 0)
            CHECK(p0[0] == -3.0f && p0[1] == -4.0f && p1[0] == -12.0f);
        else
            CHECK(fabsf(p0[0] + 1.5f) < 1e-6f && fabsf(p0[1] + 2.0f) < 1e-6f &&
                  fabsf(p1[0] + 6.0f) < 1e-5f);
    }
    /* a norm that is not finite: the norm says so, the gradients go unscaled
       (the trainer stops on it) */
    const float ginf[1] = {INFINITY};
    const float *grads_inf[2] = {g0, ginf};
    optim_h h;
    memset(p0, 0, sizeof p0);
    CHECK_OK(h_new(&o, desc, 2, 1.0, &h, &err), &err);
    ot_status st = h_step(&h, lr, params, grads_inf, &err);
    float norm = h.norm;
    h_free(&h);
    CHECK_OK(st, &err);
    CHECK(isinf(norm));
    CHECK(p0[0] == -3.0f);
}

/* ------------------------------------------------------------ loss checks */

TEST(optim_xent_uniform_and_extreme_logits)
{
    enum { N = 2, C = 4 };
    /* Uniform logits: p = 1/C, loss = log C for any smoothing, and
       dx = (1/C - q) / N. */
    float x[N * C] = {0};
    const int64_t y[N] = {1, 3};
    float loss = 0.0f, dx[N * C];
    int64_t correct = -1;
    ot_err err;
    ot_err_init(&err);
    CHECK_OK(ot_loss_xent_forward(x, y, N, C, 0.2f, &loss, &correct, &err), &err);
    CHECK(fabsf(loss - logf((float)C)) < 1e-6f);
    CHECK_EQ_INT(correct, 0); /* ties go to index 0 */
    CHECK_OK(ot_loss_xent_backward(x, y, N, C, 0.2f, dx, &err), &err);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            float q = (c == y[n] ? 0.8f : 0.0f) + 0.2f / C;
            CHECK(fabsf(dx[n * C + c] - (0.25f - q) / N) < 1e-7f);
        }

    /* Logits far apart: no overflow. Row 0 is right (loss ~ 0), row 1 is
       wrong by 2000 (loss 2000); mean 1000. */
    float big[N * C] = {1000, -1000, 0, 0, 1000, -1000, 0, 0};
    const int64_t yb[N] = {0, 1};
    CHECK_OK(ot_loss_xent_forward(big, yb, N, C, 0.0f, &loss, &correct, &err), &err);
    CHECK(isfinite(loss) && fabsf(loss - 1000.0f) < 1e-3f);
    CHECK_EQ_INT(correct, 1);
    CHECK_OK(ot_loss_xent_backward(big, yb, N, C, 0.0f, dx, &err), &err);
    CHECK(fabsf(dx[0]) < 1e-7f && fabsf(dx[4] - 0.5f) < 1e-7f && fabsf(dx[5] + 0.5f) < 1e-7f);
}

TEST(optim_xent_backward_matches_finite_differences)
{
    enum { N = 3, C = 5 };
    float x[N * C], dx[N * C];
    for (int i = 0; i < N * C; i++)
        x[i] = (float)((i * 7) % 11) * 0.3f - 1.5f;
    const int64_t y[N] = {4, 0, 2};
    ot_err err;
    ot_err_init(&err);
    CHECK_OK(ot_loss_xent_backward(x, y, N, C, 0.1f, dx, &err), &err);
    const float h = 1e-2f;
    for (int i = 0; i < N * C; i++) {
        float xi = x[i], lp = 0.0f, lm = 0.0f;
        x[i] = xi + h;
        CHECK_OK(ot_loss_xent_forward(x, y, N, C, 0.1f, &lp, NULL, &err), &err);
        x[i] = xi - h;
        CHECK_OK(ot_loss_xent_forward(x, y, N, C, 0.1f, &lm, NULL, &err), &err);
        x[i] = xi;
        float num = (lp - lm) / (2.0f * h);
        if (!(fabsf(dx[i] - num) <= 2e-4f + 1e-2f * fabsf(num))) {
            ot_test_fail(__FILE__, __LINE__, "dx[%d] = %.7g, finite difference %.7g", i,
                         (double)dx[i], (double)num);
            return;
        }
    }
}

TEST(optim_xent_rejects_bad_labels)
{
    float x[6] = {0}, loss = -1.0f, dx[6] = {7, 7, 7, 7, 7, 7};
    int64_t y[2] = {1, 3}; /* C = 3 */
    ot_err err;
    ot_err_init(&err);
    CHECK_EQ_INT(ot_loss_xent_forward(x, y, 2, 3, 0.0f, &loss, NULL, &err), OT_ERR_ARG);
    CHECK(strstr(err.msg, "label 3 at index 1") != NULL);
    CHECK(loss == -1.0f);
    y[1] = -100; /* PyTorch's ignore_index is not supported */
    CHECK_EQ_INT(ot_loss_xent_backward(x, y, 2, 3, 0.0f, dx, &err), OT_ERR_ARG);
    CHECK(strstr(err.msg, "label -100 at index 1") != NULL);
    CHECK(dx[0] == 7.0f);
    y[1] = 0;
    CHECK_EQ_INT(ot_loss_xent_forward(x, y, 0, 3, 0.0f, &loss, NULL, &err), OT_ERR_ARG);
    CHECK_EQ_INT(ot_loss_xent_forward(x, y, 2, 3, 1.5f, &loss, NULL, &err), OT_ERR_ARG);
}

/* ---------------------------------------------------------- schedule checks */

TEST(optim_schedule_warmup_and_checks)
{
    /* Constant with warm-up over 4 steps, 3 steps per epoch: base * (s+1)/4
       for s = 0..3, then base. */
    ot_optim_schedule s = {.kind = OT_SCHED_CONSTANT, .warmup_steps = 4};
    const double want[6] = {0.25, 0.5, 0.75, 1.0, 1.0, 1.0};
    for (int i = 0; i < 6; i++)
        CHECK(ot_optim_schedule_lr(&s, 2.0, i / 3, i % 3, 3) == 2.0 * want[i]);
    /* Step: gamma^floor(epoch / step_size). */
    s = (ot_optim_schedule){.kind = OT_SCHED_STEP, .step_size = 2, .gamma = 0.5};
    CHECK(ot_optim_schedule_lr(&s, 1.0, 3, 0, 10) == 0.5);
    CHECK(ot_optim_schedule_lr(&s, 1.0, 4, 9, 10) == 0.25);
    /* Cosine: half-way is half the base rate, the end is 0. */
    s = (ot_optim_schedule){.kind = OT_SCHED_COSINE, .t_max = 8};
    CHECK(fabs(ot_optim_schedule_lr(&s, 1.0, 4, 0, 5) - 0.5) < 1e-15);
    CHECK(fabs(ot_optim_schedule_lr(&s, 1.0, 8, 0, 5)) < 1e-15);

    ot_err err;
    ot_err_init(&err);
    s = (ot_optim_schedule){.kind = OT_SCHED_STEP, .step_size = 0, .gamma = 0.1};
    CHECK_EQ_INT(ot_optim_schedule_check(&s, &err), OT_ERR_ARG);
    CHECK(strstr(err.msg, "step_size") != NULL);
    s = (ot_optim_schedule){.kind = OT_SCHED_COSINE, .t_max = 0};
    CHECK_EQ_INT(ot_optim_schedule_check(&s, &err), OT_ERR_ARG);
    s = (ot_optim_schedule){.kind = OT_SCHED_CONSTANT, .warmup_steps = -1};
    CHECK_EQ_INT(ot_optim_schedule_check(&s, &err), OT_ERR_ARG);
}
