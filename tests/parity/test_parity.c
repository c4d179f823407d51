/*
 * test_parity.c: one training step of onnxtrain against PyTorch, per freeze
 * mode, on ResNet-18 at 64x64 with a batch of 4.
 *
 *   /usr/bin/python3 tests/golden/make_train_golden.py build/golden
 *   build/test_parity build/golden [MODE...]
 *   build/test_parity --model model.onnx --one-step DIR [MODE...]
 *
 * --model names the ONNX file in the golden folder (default resnet18_64.onnx);
 * --one-step checks the first step only (trained set, loss, logits, grads,
 * BN statistics, one SGD and one Adam step), with the references of
 * tests/golden/make_family_golden.py (a torchvision family per folder,
 * batch 2), which differ in three ways:
 *
 *   - each tensor is held to TOL or to F32_FACTOR times PyTorch's own
 *     float32 error on it (the reference's f32err/KEY), whichever is
 *     larger: some families' training-mode BNs at batch 2 amplify rounding
 *     far beyond TOL in PyTorch too;
 *   - a trained tensor whose reference gradient is zero by structure (a
 *     bias before a training-mode BN; its RMS below 1e-6 of the largest
 *     tensor's) is held to |got| <= TOL times the largest RMS gradient, and
 *     its optimizer steps need not move;
 *   - an optimizer step is held to at most half the tensor's reference move
 *     (a head of 1000 classes moves by 1e-5 relative in one SGD step, below
 *     TOL), and the _refs checks ask only for a move float32 resolves
 *     (MIN_MOVE).
 *
 * The references (tests/golden/make_train_golden.py, computed in float64)
 * are keyed by ONNX initializer name. For each mode this program imports
 * OUTDIR/resnet18_64.onnx (the head is not swapped, so the initial weights
 * are PyTorch's), freezes by the preset, builds the training graphs, compiles
 * the prefix and step executors for N = 4 and runs them the way
 * src/train/trainer.c's run_batch does. The batches are NCHW, as the data
 * loader gives them; a model that takes NHWC images (src/train/layout.h)
 * gets them transposed, as the trainer does. It compares:
 *
 *   trained set   the trained parameters and the training-mode BNs' running
 *                 statistics are exactly the reference's
 *   loss          step-0 loss, relative error <= 1e-4
 *   logits        relative L2 error <= 1e-4
 *   grads         every trained gradient, relative L2 error <= 1e-4 per tensor
 *   bn_stats      running statistics after the step, relative L2 <= 1e-4
 *   sgd/adam/adamw  weights after one step of SGD(0.1, momentum 0.9),
 *                 Adam(1e-3), AdamW(1e-3, wd 0.01) run by the step graph
 *                 with its update nodes, each from the initial
 *                 weights, relative L2 <= 1e-4 per tensor (Adam, AdamW:
 *                 elements whose true gradient is zero are held to Adam's
 *                 step bound instead, see agg_add_adam)
 *   curve         the losses of 5 Adam steps on 5 batches, relative <= 1e-2
 *   curve_bn_stats  the running statistics after those 5 steps (written into
 *                 the state by each step, as in training), relative
 *                 L2 <= 5e-2, and they must have moved from the initial ones
 *                 by 2x that. Looser than the rest because Adam's first steps
 *                 turn float32 rounding noise in zero gradients into steps of
 *                 up to lr (see agg_add_adam), so 5 steps drift: PyTorch's own
 *                 float32 run ends 5e-3 from its float64 run on these
 *                 statistics, onnxtrain 2e-2 (and 2e-5 with SGD instead of
 *                 Adam: the state handling itself is exact).
 *
 * and that each reference can make its check fail: the loss curve is not
 * constant and training moves it away from the untrained losses by more than
 * the tolerance; no gradient is all zeros, and none is more than 30% zeros;
 * every optimizer step and every running statistic moves away from the
 * initial value by more than twice the tolerance.
 *
 * Prints `ok NAME` or `FAIL NAME: detail` per check (plus `# ` lines of
 * detail), then `N passed, N failed`; exits 1 on any failure.
 * OT_PARITY_VERBOSE=1 prints the error of every tensor.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "exec/exec.h"
#include "onnx/onnx.h"
#include "passes/batch.h"
#include "passes/freeze.h"
#include "passes/head.h"
#include "train/layout.h"
#include "train/optim.h"
#include "train/train_graph.h"

#define TOL 1e-4
#define TOL_CURVE 1e-2
#define TOL_CURVE_STATS 5e-2
#define MAX_ZERO_FRACTION 0.30
#define N_CURVE 5
#define MODEL_FILE "resnet18_64.onnx"
#define F32_FACTOR 4.0
#define ZERO_GRAD 1e-6
#define MIN_MOVE 1e-6

static int n_pass, n_fail;
static bool verbose;
static const char *model_file = MODEL_FILE;
static bool one_step; /* no AdamW step, no loss curve */
/* A reference gradient with more zeros than this is suspicious. With
   --one-step (whole families, ReLU classifiers whose hidden units are half
   zero at batch 2) only a gradient that is nearly all zeros is. */
static double max_zero_fraction = MAX_ZERO_FRACTION;

static void ok(const char *mode, const char *what, const char *fmt, ...) OT_PRINTF(3, 4);
static void ok(const char *mode, const char *what, const char *fmt, ...)
{
    n_pass++;
    printf("ok %s/%s", mode, what);
    if (fmt && *fmt) {
        va_list ap;
        va_start(ap, fmt);
        printf(" (");
        vprintf(fmt, ap);
        printf(")");
        va_end(ap);
    }
    printf("\n");
    fflush(stdout);
}

static void fail(const char *mode, const char *what, const char *fmt, ...) OT_PRINTF(3, 4);
static void fail(const char *mode, const char *what, const char *fmt, ...)
{
    n_fail++;
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL %s/%s: ", mode, what);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
}

/* ------------------------------------------------------------ reference files */

typedef struct rec {
    char *name;
    int dtype; /* ONNX: 1 float32, 7 int64 */
    int ndim;
    int64_t dims[8];
    int64_t numel;
    void *data;
} rec;

typedef struct blob {
    unsigned char *buf;
    rec *recs;
    int n;
} blob;

static bool read_u32(unsigned char **p, const unsigned char *end, uint32_t *v)
{
    if ((size_t)(end - *p) < 4)
        return false;
    memcpy(v, *p, 4);
    *p += 4;
    return true;
}

/* Loads a .bin container (format in make_train_golden.py). */
static bool blob_load(blob *b, const char *dir, const char *file)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    memset(b, 0, sizeof *b);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fail("setup", file, "cannot open %s", path);
        return false;
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    b->buf = malloc(len > 0 ? (size_t)len : 1);
    bool good = b->buf && len >= 8 && fread(b->buf, 1, (size_t)len, f) == (size_t)len;
    fclose(f);
    if (!good || memcmp(b->buf, "OTGD", 4) != 0) {
        fail("setup", file, "%s is not a golden container", path);
        return false;
    }
    unsigned char *p = b->buf + 8;
    const unsigned char *end = b->buf + len;
    int cap = 0;
    while (p < end) {
        uint32_t nl, dt, nd;
        if (!read_u32(&p, end, &nl) || (size_t)(end - p) < nl)
            goto bad;
        char *name = malloc(nl + 1);
        memcpy(name, p, nl);
        name[nl] = 0;
        p += nl;
        if (!read_u32(&p, end, &dt) || !read_u32(&p, end, &nd) || nd > 8 ||
            (size_t)(end - p) < 8 * (size_t)nd || (dt != 1 && dt != 7)) {
            free(name);
            goto bad;
        }
        if (b->n == cap) {
            cap = cap ? 2 * cap : 64;
            b->recs = realloc(b->recs, sizeof *b->recs * (size_t)cap);
        }
        rec *r = &b->recs[b->n++];
        memset(r, 0, sizeof *r);
        r->name = name;
        r->dtype = (int)dt;
        r->ndim = (int)nd;
        r->numel = 1;
        for (uint32_t d = 0; d < nd; d++) {
            memcpy(&r->dims[d], p, 8);
            p += 8;
            r->numel *= r->dims[d];
        }
        size_t bytes = (size_t)r->numel * (dt == 7 ? 8 : 4);
        if ((size_t)(end - p) < bytes)
            goto bad;
        /* an aligned copy: the executor reads labels as int64 */
        r->data = malloc(bytes ? bytes : 1);
        if (!r->data)
            goto bad;
        memcpy(r->data, p, bytes);
        p += bytes;
    }
    free(b->buf);
    b->buf = NULL;
    return true;
bad:
    fail("setup", file, "%s is truncated or malformed", path);
    return false;
}

static void blob_free(blob *b)
{
    for (int i = 0; i < b->n; i++) {
        free(b->recs[i].name);
        free(b->recs[i].data);
    }
    free(b->recs);
    free(b->buf);
    memset(b, 0, sizeof *b);
}

static const rec *blob_find(const blob *b, const char *name)
{
    for (int i = 0; i < b->n; i++)
        if (!strcmp(b->recs[i].name, name))
            return &b->recs[i];
    return NULL;
}

static const rec *blob_findf(const blob *b, const char *fmt, ...) OT_PRINTF(2, 3);
static const rec *blob_findf(const blob *b, const char *fmt, ...)
{
    char name[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return blob_find(b, name);
}

static int blob_count_prefix(const blob *b, const char *prefix)
{
    int n = 0;
    for (int i = 0; i < b->n; i++)
        n += !strncmp(b->recs[i].name, prefix, strlen(prefix));
    return n;
}

/* ------------------------------------------------------------ comparisons */

typedef struct cmp {
    double rel;      /* ||got - ref|| / ||ref|| */
    double max_abs;
    int64_t worst;   /* index of the largest absolute difference */
    double want, got;
    bool nonfinite;  /* a NaN or Inf where the reference has none, or the reverse */
} cmp;

static cmp compare(const float *got, const float *ref, int64_t n)
{
    cmp c = { 0 };
    double d2 = 0, r2 = 0;
    for (int64_t i = 0; i < n; i++) {
        double g = got[i], r = ref[i];
        if (isfinite(g) != isfinite(r) || (isnan(g) != isnan(r))) {
            c.nonfinite = true;
            c.worst = i;
            c.want = r;
            c.got = g;
            continue;
        }
        if (!isfinite(r))
            continue;
        double d = fabs(g - r);
        d2 += d * d;
        r2 += r * r;
        if (d > c.max_abs && !c.nonfinite) {
            c.max_abs = d;
            c.worst = i;
            c.want = r;
            c.got = g;
        }
    }
    c.rel = r2 > 0 ? sqrt(d2) / sqrt(r2) : (d2 > 0 ? (double)INFINITY : 0);
    if (c.nonfinite)
        c.rel = INFINITY;
    return c;
}

/* ||a - b|| / ||b|| */
static double rel_l2(const float *a, const float *b, int64_t n)
{
    double d2 = 0, b2 = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        d2 += d * d;
        b2 += (double)b[i] * (double)b[i];
    }
    return b2 > 0 ? sqrt(d2 / b2) : (d2 > 0 ? (double)INFINITY : 0);
}

/* Accumulates per-tensor comparisons of one check: the worst tensor wins. */
typedef struct agg {
    const char *mode, *what;
    int n;
    double worst_rel;
    char worst_name[256];
    cmp worst;
    double tol;
    double worst_tol;  /* the worst tensor's tolerance                        */
    double worst_ratio;
    const blob *tols;  /* --one-step: the f32err/ records widen tolerances    */
    double cap;        /* the next tensor's tolerance at most this            */
    double adam_tau;   /* agg_add_adam: |g| below this times the RMS is ~0    */
    double zero_scale; /* > 0: tensors whose reference RMS is below ZERO_GRAD
                          of this are held to |got| <= tol * zero_scale     */
    int n_widened, n_zero;
    int64_t n_masked;  /* Adam: elements checked by the step bound only       */
    int64_t n_moved;   /* ... of which the step moved (a nonzero gradient here) */
    char problem[512]; /* a structural problem (missing tensor, wrong size) */
} agg;

static void agg_init(agg *a, const char *mode, const char *what, double tol)
{
    memset(a, 0, sizeof *a);
    a->mode = mode;
    a->what = what;
    a->tol = tol;
    a->worst_rel = -1;
    a->worst_ratio = -1;
    a->cap = INFINITY;
    a->adam_tau = 1e-4;
}

static double rms(const float *x, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)x[i] * (double)x[i];
    return n ? sqrt(s / (double)n) : 0;
}

/* The tolerance of reference record `key`: `tol`, or F32_FACTOR times
   PyTorch's float32 error on it where that is larger (--one-step). */
static double widened_tol(const blob *tols, const char *key, double tol)
{
    const rec *e = tols ? blob_findf(tols, "f32err/%s", key) : NULL;
    if (e && e->dtype == 1 && e->numel == 1)
        tol = fmax(tol, F32_FACTOR * (double)((const float *)e->data)[0]);
    return tol;
}

/* --one-step: the gradient of trained tensor `name` is zero by structure. */
static bool zero_grad(const blob *ref, const char *name, double scale)
{
    const rec *g = blob_findf(ref, "grad/%s", name);
    return one_step && g && g->dtype == 1 && rms(g->data, g->numel) < ZERO_GRAD * scale;
}

/* A host copy of an executor's state value, valid until the next call
   (NULL when the value is not state or the copy fails). */
static float *state_buf;
static size_t state_cap;

static const float *state_view(const ot_exec *x, int32_t id)
{
    size_t bytes = ot_exec_state_bytes(x, id);
    ot_err err;
    if (!bytes)
        return NULL;
    if (bytes > state_cap) {
        float *nb = realloc(state_buf, bytes);
        if (!nb)
            return NULL;
        state_buf = nb;
        state_cap = bytes;
    }
    return ot_exec_read_state(x, id, state_buf, bytes, &err) == OT_OK ? state_buf : NULL;
}

static void agg_add(agg *a, const char *name, const float *got, const rec *ref, int64_t numel)
{
    if (!ref) {
        if (!a->problem[0])
            snprintf(a->problem, sizeof a->problem, "no reference for '%s'", name);
        return;
    }
    if (ref->dtype != 1 || ref->numel != numel) {
        if (!a->problem[0])
            snprintf(a->problem, sizeof a->problem,
                     "'%s': %lld elements here, %lld in the reference", name, (long long)numel,
                     (long long)ref->numel);
        return;
    }
    if (!got) {
        if (!a->problem[0])
            snprintf(a->problem, sizeof a->problem, "'%s': no value to compare", name);
        return;
    }
    double cap = a->cap;
    a->cap = INFINITY;
    if (a->zero_scale > 0 && rms(ref->data, numel) < ZERO_GRAD * a->zero_scale) {
        double g = rms(got, numel);
        a->n_zero++;
        if (!(g <= a->tol * a->zero_scale) && !a->problem[0])
            snprintf(a->problem, sizeof a->problem,
                     "'%s': reference gradient zero (RMS %.2g), got RMS %.3g > %.0e x %.3g", name,
                     rms(ref->data, numel), g, a->tol, a->zero_scale);
        return;
    }
    double tol = widened_tol(a->tols, ref->name, a->tol);
    a->n_widened += tol > a->tol;
    tol = fmin(tol, cap);
    cmp c = compare(got, ref->data, numel);
    a->n++;
    if (verbose)
        printf("#   %s/%s %-40s rel %.3e (tolerance %.2e)  max abs %.3e at %lld\n", a->mode,
               a->what, name, c.rel, tol, c.max_abs, (long long)c.worst);
    double ratio = c.rel / tol;
    if (ratio > a->worst_ratio || isnan(c.rel)) {
        a->worst_ratio = ratio;
        a->worst_rel = c.rel;
        a->worst_tol = tol;
        a->worst = c;
        snprintf(a->worst_name, sizeof a->worst_name, "%s", name);
    }
}

/*
 * Adam and AdamW, one step from the initial weights: the update of element i
 * is lr * g/(|g| + eps) (plus the decay), about lr * sign(g). Where the true
 * gradient is zero (a ReLU dead over the whole batch: the float64 reference
 * gives 1e-17) float32 gives rounding noise of either sign, 1e-8 or so, and
 * Adam turns it into a step of up to lr in a random direction; PyTorch's own
 * float32 run does the same. Such elements (|g_ref| below 1e-4 of the
 * tensor's RMS gradient, or below 100 eps; with --one-step below 10 times the
 * tensor's gradient tolerance, since a gradient within its tolerance of zero
 * has no certain sign) are checked against Adam's
 * first-step bound |w - w0| <= lr (1 + wd |w0|) only; all others by relative
 * L2 error against the whole tensor's norm.
 */
static void agg_add_adam(agg *a, const char *name, const float *got, const rec *ref,
                         const rec *gref, const float *w0, int64_t numel, double lr, double wd)
{
    if (!ref || !gref || gref->numel != numel || ref->numel != numel || !got) {
        agg_add(a, name, got, ref, numel); /* reports the problem */
        return;
    }
    const float *g = gref->data, *w = ref->data;
    double g2 = 0;
    for (int64_t i = 0; i < numel; i++)
        g2 += (double)g[i] * (double)g[i];
    double tau = fmax(a->adam_tau * sqrt(g2 / (double)numel), 1e-6);
    float *masked = malloc(sizeof *masked * (size_t)numel);
    int64_t n_masked = 0;
    int64_t bad = -1;
    for (int64_t i = 0; i < numel; i++) {
        if (fabs((double)g[i]) < tau) {
            double move = fabs((double)got[i] - (double)w0[i]);
            double bound = lr * (1 + 1e-5) + lr * wd * fabs((double)w0[i]) + 1e-7;
            if (!(move <= bound) && bad < 0)
                bad = i;
            /* moved by more than the decay: the gradient here was not zero */
            double decayed = (double)w0[i] * (1 - lr * wd);
            a->n_moved += fabs((double)got[i] - decayed) > 1e-6 * fabs((double)w0[i]) + 1e-12;
            masked[i] = w[i]; /* out of the L2 comparison */
            n_masked++;
        } else {
            masked[i] = got[i];
        }
    }
    if (bad >= 0 && !a->problem[0])
        snprintf(a->problem, sizeof a->problem,
                 "'%s' element %lld (reference gradient %.3g ~ 0): moved by %.3g > lr from %.8g",
                 name, (long long)bad, (double)g[bad], fabs((double)got[bad] - (double)w0[bad]),
                 (double)w0[bad]);
    a->n_masked += n_masked;
    agg_add(a, name, masked, ref, numel);
    free(masked);
}

static void agg_report(agg *a)
{
    if (a->problem[0]) {
        fail(a->mode, a->what, "%s", a->problem);
        return;
    }
    if (a->n == 0) {
        fail(a->mode, a->what, "nothing compared");
        return;
    }
    if (!(a->worst_rel <= a->worst_tol)) {
        fail(a->mode, a->what,
             "tensor '%s' relative L2 error %.3e > %.2g; worst element %lld: expected %.8g, "
             "got %.8g (%d tensors)",
             a->worst_name, a->worst_rel, a->worst_tol, (long long)a->worst.worst,
             a->worst.want, a->worst.got, a->n);
        return;
    }
    if (a->n_widened || a->n_zero)
        printf("# %s/%s: %d tolerances widened to %.0fx PyTorch's float32 error; %d zero "
               "gradients held to %.0e of the largest RMS; the worst tensor's tolerance %.2g\n",
               a->mode, a->what, a->n_widened, F32_FACTOR, a->n_zero, a->tol, a->worst_tol);
    if (a->n_masked)
        ok(a->mode, a->what,
           "%d tensors, max relative L2 %.2e in '%s', max abs %.2e; %lld elements with a zero "
           "reference gradient held to the step bound, %lld of them moved",
           a->n, a->worst_rel, a->worst_name, a->worst.max_abs, (long long)a->n_masked,
           (long long)a->n_moved);
    else
        ok(a->mode, a->what, "%d tensors, max relative L2 %.2e in '%s', max abs %.2e", a->n,
           a->worst_rel, a->worst_name, a->worst.max_abs);
}

/* ------------------------------------------------------------ one mode */

typedef struct mode_desc {
    const char *name;
    ot_freeze_mode mode;
    bool bn_all_train;
} mode_desc;

static const mode_desc MODES[] = {
    { "feature_extract", OT_FREEZE_FEATURE_EXTRACT, false },
    { "fine_tune", OT_FREEZE_FINE_TUNE, false },
    { "full", OT_FREEZE_FULL, false },
    { "feature_extract_bn_train", OT_FREEZE_FEATURE_EXTRACT, true },
};

typedef struct ctx {
    const mode_desc *md;
    ot_graph *model;
    ot_train_graph tg;
    ot_exec *prefix, *step;
    ot_tensor *step_in; /* cut values, labels, the Dropout seed where the step
                           has one, then (with an optimizer) the learning
                           rate and the step number */
    int n_in;
    ot_tensor img;      /* the image input, in the layout the model takes   */
    ot_image_layout lay;
    int n, ch, side;
    float *xt;          /* an NHWC model's batch, transposed from NCHW      */
    ot_optim_opts optim;
    double lr;
    int64_t t;          /* the step number of the next run */
    double grad_scale;  /* --one-step: the largest RMS reference gradient */
    int64_t seed;       /* the Dropout seed input: the references' Dropouts
                           have ratio 0 (Swin's attention) or are removed */
} ctx;

static ot_optim_opts optim_opts(const char *kind, double *lr);

static void ctx_free(ctx *c)
{
    ot_exec_free(c->prefix);
    ot_exec_free(c->step);
    free(c->step_in);
    free(c->xt);
    ot_train_graph_fini(&c->tg);
    ot_graph_free(c->model);
    memset(c, 0, sizeof *c);
}

static void bind(ot_tensor *t, ot_dtype dtype, int ndim, const int64_t *dims, void *data)
{
    memset(t, 0, sizeof *t);
    t->dtype = dtype;
    t->ndim = ndim;
    size_t n = ot_dtype_size(dtype);
    for (int i = 0; i < ndim; i++) {
        t->dims[i] = dims[i];
        n *= (size_t)dims[i];
    }
    t->bytes = n;
    t->data = data;
}

/* Import, freeze, build, compile (as trainer.c's make_runner does). With
   `kind` ("sgd", "adam", "adamw") the step graph updates the parameters (the
   trainer's graph); without, it outputs the gradients. */
static bool ctx_setup(ctx *c, const mode_desc *md, const char *onnx_path, int n, int ch, int side,
                      const char *kind)
{
    ot_err err;
    ot_err_init(&err);
    ot_status st = OT_OK;
    memset(c, 0, sizeof *c);
    c->md = md;
    const char *stage = "import";
    st = ot_onnx_import_file(onnx_path, NULL, &c->model, &err);
    /* a zoo form's Reshape head with its declared batch follows the batch,
       as finetune makes it */
    if (st == OT_OK)
        ot_pass_batch_reshapes(c->model);
    ot_head head;
    if (st == OT_OK) {
        stage = "find head";
        st = ot_pass_find_head(c->model, &head, &err);
    }
    if (st == OT_OK && !head.found) {
        fail(md->name, "setup", "no head found");
        return false;
    }
    ot_freeze_report rep;
    if (st == OT_OK) {
        stage = "freeze";
        ot_freeze_opts fo = { .mode = md->mode };
        st = ot_pass_freeze(c->model, &fo, &head, &rep, &err);
    }
    if (st == OT_OK) {
        stage = "train graph";
        ot_train_graph_opts to = { .bn_all_train = md->bn_all_train, .label_smoothing = 0 };
        if (kind) {
            c->optim = optim_opts(kind, &c->lr);
            to.optim = &c->optim;
        }
        c->t = 1;
        st = ot_train_graph_build(c->model, &to, &c->tg, &err);
    }
    ot_train_graph *tg = &c->tg;
    /* the batches are NCHW, as the loader's: an NHWC model gets them
       transposed, as the trainer does (src/train/layout.h) */
    c->n = n;
    c->ch = ch;
    c->side = side;
    if (st == OT_OK) {
        c->lay = ot_image_layout_find(c->model, tg->image);
        c->img = ot_image_tensor(&c->lay, n, ch, side, NULL);
        if (c->lay.nhwc && !(c->xt = malloc(c->img.bytes))) {
            fail(md->name, "setup", "out of memory");
            return false;
        }
        c->step_in = calloc((size_t)tg->n_cut + 4, sizeof *c->step_in);
        if (tg->prefix) {
            stage = "compile prefix";
            ot_exec_input in = { .value = tg->image, .tensor = c->img };
            st = ot_exec_compile(tg->prefix, &in, 1, NULL, &c->prefix, &err);
            for (int k = 0; st == OT_OK && k < tg->n_cut; k++)
                c->step_in[k] = *ot_exec_output(c->prefix, k);
        } else {
            c->step_in[0] = c->img;
        }
    }
    if (st == OT_OK) {
        stage = "compile step";
        int64_t ld[1] = { n };
        bind(&c->step_in[tg->n_cut], OT_DTYPE_INT64, 1, ld, NULL);
        ot_exec_input *ins = calloc((size_t)tg->n_cut + 4, sizeof *ins);
        for (int k = 0; k <= tg->n_cut; k++)
            ins[k].value = k < tg->n_cut ? tg->cut[k] : tg->labels;
        c->n_in = tg->n_cut + 1;
        if (tg->seed >= 0) {
            ins[c->n_in].value = tg->seed;
            bind(&c->step_in[c->n_in++], OT_DTYPE_INT64, 0, NULL, &c->seed);
        }
        if (kind) {
            ins[c->n_in].value = tg->optim.lr[0];
            bind(&c->step_in[c->n_in++], OT_DTYPE_DOUBLE, 0, NULL, &c->lr);
            ins[c->n_in].value = tg->optim.step;
            bind(&c->step_in[c->n_in++], OT_DTYPE_INT64, 0, NULL, &c->t);
        }
        for (int k = 0; k < c->n_in; k++) {
            ins[k].tensor = c->step_in[k];
            ins[k].tensor.data = NULL;
        }
        st = ot_exec_compile(tg->step, ins, c->n_in, NULL, &c->step, &err);
        free(ins);
    }
    if (st != OT_OK) {
        fail(md->name, "setup", "%s: %s", stage, err.msg);
        return false;
    }
    printf("# %s: %d trained tensors, %d BN train, %d BN eval, %d cut values, prefix %s\n",
           md->name, tg->n_params, tg->n_bn_train, tg->n_bn_eval, tg->n_cut,
           tg->prefix ? "yes" : "empty");
    return true;
}

/* Runs the prefix and the step on one batch; the step's outputs are then
   readable, and the step has updated its state (the BN statistics, and with
   an optimizer the parameters), as in trainer.c's run_batch. */
static bool ctx_run(ctx *c, void *x, void *labels, float *loss)
{
    ot_err err;
    ot_err_init(&err);
    ot_status st = OT_OK;
    ot_train_graph *tg = &c->tg;
    x = ot_image_batch(&c->lay, x, c->xt, c->n, c->ch, c->side);
    if (tg->prefix) {
        ot_tensor img = c->img;
        img.data = x;
        st = ot_exec_run(c->prefix, &img, 1, &err);
        for (int k = 0; st == OT_OK && k < tg->n_cut; k++)
            c->step_in[k].data = ot_exec_output(c->prefix, k)->data;
    } else {
        c->step_in[0].data = x;
    }
    c->step_in[tg->n_cut].data = labels;
    if (st == OT_OK)
        st = ot_exec_run(c->step, c->step_in, c->n_in, &err);
    c->t++;
    if (st != OT_OK) {
        fail(c->md->name, "run", "%s", err.msg);
        return false;
    }
    memcpy(loss, ot_exec_output(c->step, 0)->data, sizeof *loss);
    return true; /* the step updated the BN statistics in its state */
}

static const char *vname(const ctx *c, int32_t id)
{
    return c->model->values[id].name;
}

static int64_t vnumel(const ctx *c, int32_t id)
{
    return (int64_t)(c->model->values[id].data.bytes / sizeof(float));
}

static const float *vinit(const ctx *c, int32_t id)
{
    return c->model->values[id].data.data;
}

/* The trained parameters and the BN statistics match the reference's sets. */
static void check_sets(const ctx *c, const blob *ref)
{
    const char *m = c->md->name;
    const ot_train_graph *tg = &c->tg;
    int nref = blob_count_prefix(ref, "grad/");
    int missing = 0;
    const char *first = NULL;
    for (int i = 0; i < tg->n_params; i++)
        if (!blob_findf(ref, "grad/%s", vname(c, tg->params[i]))) {
            missing++;
            first = first ? first : vname(c, tg->params[i]);
        }
    if (missing || nref != tg->n_params)
        fail(m, "trained_set",
             "onnxtrain trains %d tensors, PyTorch %d; %d not trained by PyTorch (first: %s)",
             tg->n_params, nref, missing, first ? first : "-");
    else
        ok(m, "trained_set", "%d tensors", nref);

    nref = blob_count_prefix(ref, "stats/");
    missing = 0;
    first = NULL;
    for (int i = 0; i < tg->n_stats; i++)
        if (!blob_findf(ref, "stats/%s", vname(c, tg->stats[i]))) {
            missing++;
            first = first ? first : vname(c, tg->stats[i]);
        }
    if (missing || nref != tg->n_stats)
        fail(m, "bn_train_set",
             "onnxtrain updates %d running statistics, PyTorch %d; %d only here (first: %s)",
             tg->n_stats, nref, missing, first ? first : "-");
    else
        ok(m, "bn_train_set", "%d running statistics (%d BN in training mode)", nref,
           tg->n_bn_train);
}

/* Each reference can fail its check: checks the gradients' zeros. */
static void check_grad_refs(const ctx *c, const blob *ref)
{
    const char *m = c->md->name;
    const ot_train_graph *tg = &c->tg;
    double worst = 0;
    const char *wname = "-";
    for (int i = 0; i < tg->n_params; i++) {
        const rec *r = blob_findf(ref, "grad/%s", vname(c, tg->params[i]));
        if (!r || r->dtype != 1)
            continue;
        const float *g = r->data;
        int64_t zeros = 0;
        for (int64_t k = 0; k < r->numel; k++)
            zeros += g[k] == 0.0f;
        double frac = r->numel ? (double)zeros / (double)r->numel : 1.0;
        if (frac > worst || !strcmp(wname, "-")) {
            worst = frac;
            wname = vname(c, tg->params[i]);
        }
    }
    if (worst > max_zero_fraction)
        fail(m, "grad_refs", "reference gradient '%s' is %.0f%% zeros (suspicious, > %.0f%%)",
             wname, 100 * worst, 100 * max_zero_fraction);
    else
        ok(m, "grad_refs", "at most %.1f%% zeros, in '%s'", 100 * worst, wname);
}

/* The largest relative move of a reference away from the initial tensors,
   over a check's tensors; the check can fail only when it is well above
   the tolerance. `minmove` is the smallest such move. */
static void check_moves(const ctx *c, const blob *ref, const char *prefix, const int32_t *ids,
                        int n, const char *what, double tol)
{
    const char *m = c->md->name;
    double least = INFINITY;
    const char *lname = "-";
    for (int i = 0; i < n; i++) {
        const rec *r = blob_findf(ref, "%s/%s", prefix, vname(c, ids[i]));
        if (!r || r->dtype != 1 || r->numel != vnumel(c, ids[i]) ||
            zero_grad(ref, vname(c, ids[i]), c->grad_scale))
            continue;
        double mv = rel_l2(vinit(c, ids[i]), r->data, r->numel);
        if (mv < least) {
            least = mv;
            lname = vname(c, ids[i]);
        }
    }
    if (n == 0)
        return;
    /* every tensor must move by more than the tolerance, or the check could
       pass on an update that never happened */
    /* --one-step: each step is held to half its move (agg.cap) instead */
    if (one_step && !(least > MIN_MOVE))
        fail(m, what, "reference '%s' moves by %.2e only (relative), not above %.0e", lname,
             least, MIN_MOVE);
    else if (!one_step && !(least > 2 * tol))
        fail(m, what, "reference '%s' moves by %.2e only (relative), not above 2x tolerance",
             lname, least);
    else
        ok(m, what, "smallest reference move %.2e in '%s'", least, lname);
}

static ot_optim_opts optim_opts(const char *kind, double *lr)
{
    ot_optim_opts o;
    if (!strcmp(kind, "sgd")) {
        o = ot_optim_opts_default(OT_OPTIM_SGD);
        o.momentum = 0.9;
        *lr = 0.1;
    } else if (!strcmp(kind, "adam")) {
        o = ot_optim_opts_default(OT_OPTIM_ADAM);
        *lr = 1e-3;
    } else {
        o = ot_optim_opts_default(OT_OPTIM_ADAMW);
        o.weight_decay = 0.01;
        *lr = 1e-3;
    }
    return o;
}

static void run_mode(const mode_desc *md, const char *dir, const blob *batches)
{
    const char *m = md->name;
    char path[4096], file[256];
    snprintf(path, sizeof path, "%s/%s", dir, model_file);
    snprintf(file, sizeof file, "%s.bin", m);
    blob ref;
    if (!blob_load(&ref, dir, file)) {
        blob_free(&ref);
        return;
    }
    const rec *x0 = blob_find(batches, "input.0"), *y0 = blob_find(batches, "labels.0");
    if (!x0 || !y0 || x0->ndim != 4 || x0->dtype != 1 || y0->dtype != 7) {
        fail(m, "setup", "batches.bin lacks input.0 / labels.0");
        blob_free(&ref);
        return;
    }
    int n = (int)x0->dims[0];
    ctx c;
    if (!ctx_setup(&c, md, path, n, (int)x0->dims[1], (int)x0->dims[2], NULL)) {
        ctx_free(&c);
        blob_free(&ref);
        return;
    }
    ot_train_graph *tg = &c.tg;
    check_sets(&c, &ref);
    const blob *tols = one_step ? &ref : NULL;
    for (int p = 0; p < tg->n_params; p++) {
        const rec *g = blob_findf(&ref, "grad/%s", vname(&c, tg->params[p]));
        if (g && g->dtype == 1)
            c.grad_scale = fmax(c.grad_scale, rms(g->data, g->numel));
    }

    /* step 0 */
    float loss;
    if (!ctx_run(&c, x0->data, y0->data, &loss))
        goto done;
    const rec *rl = blob_find(&ref, "loss");
    if (!rl || rl->dtype != 1) {
        fail(m, "loss", "no reference");
    } else {
        double want = ((const float *)rl->data)[0];
        double e = fabs((double)loss - want) / fabs(want);
        double tol = widened_tol(tols, "loss", TOL);
        if (!(e <= tol))
            fail(m, "loss", "expected %.8g, got %.8g, relative error %.3e > %.2g", want,
                 (double)loss, e, tol);
        else
            ok(m, "loss", "%.6f, relative error %.2e", (double)loss, e);
    }
    {
        agg a;
        agg_init(&a, m, "logits", TOL);
        a.tols = tols;
        const ot_tensor *lg = ot_exec_output(c.step, 1);
        agg_add(&a, "logits", lg->data, blob_find(&ref, "logits"), (int64_t)(lg->bytes / 4));
        agg_report(&a);
    }
    {
        check_grad_refs(&c, &ref);
        agg a;
        agg_init(&a, m, "grads", TOL);
        a.tols = tols;
        a.zero_scale = one_step ? c.grad_scale : 0;
        for (int p = 0; p < tg->n_params; p++) {
            const ot_tensor *g = ot_exec_output(c.step, 2 + p);
            agg_add(&a, vname(&c, tg->params[p]), g->data,
                    blob_findf(&ref, "grad/%s", vname(&c, tg->params[p])),
                    (int64_t)(g->bytes / 4));
        }
        agg_report(&a);
    }
    if (tg->n_stats) {
        check_moves(&c, &ref, "stats", tg->stats, tg->n_stats, "bn_stats_refs", TOL);
        agg a;
        agg_init(&a, m, "bn_stats", TOL);
        a.tols = tols;
        for (int s = 0; s < tg->n_stats; s++)
            agg_add(&a, vname(&c, tg->stats[s]), state_view(c.step, tg->stats[s]),
                    blob_findf(&ref, "stats/%s", vname(&c, tg->stats[s])), vnumel(&c, tg->stats[s]));
        agg_report(&a);
    }

    /* one step of each optimizer from the initial weights, by the step graph
       the trainer runs (the updates are its nodes) */
    static const char *const kinds[3] = { "sgd", "adam", "adamw" };
    for (int k = 0; k < (one_step ? 2 : 3); k++) {
        char what[64];
        snprintf(what, sizeof what, "%s_refs", kinds[k]);
        check_moves(&c, &ref, kinds[k], tg->params, tg->n_params, what, TOL);
        ctx oc;
        float oloss;
        bool ran = ctx_setup(&oc, md, path, n, (int)x0->dims[1], (int)x0->dims[2], kinds[k]) &&
                   ctx_run(&oc, x0->data, y0->data, &oloss);
        if (ran) {
            double lr = oc.lr;
            agg a;
            agg_init(&a, m, kinds[k], TOL);
            a.tols = tols;
            for (int p = 0; p < tg->n_params; p++) {
                const char *pn = vname(&c, tg->params[p]);
                const float *w = state_view(oc.step, oc.tg.params[p]);
                const rec *r = blob_findf(&ref, "%s/%s", kinds[k], pn);
                if (one_step && r && r->dtype == 1 && r->numel == vnumel(&c, tg->params[p]) &&
                    !zero_grad(&ref, pn, c.grad_scale))
                    a.cap = rel_l2(vinit(&c, tg->params[p]), r->data, r->numel) / 2;
                /* a gradient element within 10x its tensor's tolerance of
                   zero may have either sign here */
                char key[512];
                snprintf(key, sizeof key, "grad/%s", pn);
                a.adam_tau = one_step ? fmax(1e-4, 10 * widened_tol(tols, key, TOL)) : 1e-4;
                if (k == 0)
                    agg_add(&a, pn, w, r, vnumel(&c, tg->params[p]));
                else
                    agg_add_adam(&a, pn, w, r, blob_findf(&ref, "grad/%s", pn),
                                 vinit(&c, tg->params[p]), vnumel(&c, tg->params[p]), lr,
                                 k == 2 ? 0.01 : 0.0);
            }
            agg_report(&a);
        }
        ctx_free(&oc);
    }

    /* the Adam loss curve over 5 batches, from the initial state */
    if (!one_step) {
        const rec *rc = blob_find(&ref, "curve"), *rf = blob_find(&ref, "curve_frozen");
        if (!rc || !rf || rc->numel != N_CURVE || rf->numel != N_CURVE) {
            fail(m, "curve", "no reference curve");
            goto done;
        }
        const float *want = rc->data, *frozen = rf->data;
        /* non-degenerate: not constant, and training changes it by more than
           the tolerance (a run that never updated would fail) */
        double lo = want[0], hi = want[0], moved = 0;
        for (int s = 0; s < N_CURVE; s++) {
            lo = fmin(lo, want[s]);
            hi = fmax(hi, want[s]);
            moved = fmax(moved, fabs((double)want[s] - (double)frozen[s]) / fabs((double)frozen[s]));
        }
        if (!(hi - lo > TOL_CURVE * fabs(hi)) || !(moved > 2 * TOL_CURVE))
            fail(m, "curve_refs",
                 "reference curve spans %.3g, moves %.3g from the untrained losses: cannot fail",
                 hi - lo, moved);
        else
            ok(m, "curve_refs", "spans %.3f; training moves it by up to %.1f%%", hi - lo,
               100 * moved);
        ctx_free(&c);
        if (!ctx_setup(&c, md, path, n, (int)x0->dims[1], (int)x0->dims[2], "adam"))
            goto done;
        tg = &c.tg;
        float got[N_CURVE];
        bool ran = true;
        for (int s = 0; s < N_CURVE && ran; s++) {
            const rec *x = blob_findf(batches, "input.%d", s), *y = blob_findf(batches, "labels.%d", s);
            if (!x || !y || x->numel != x0->numel || y->numel != y0->numel) {
                fail(m, "curve", "batches.bin lacks batch %d", s);
                ran = false;
                break;
            }
            ran = ctx_run(&c, x->data, y->data, &got[s]);
        }
        if (ran) {
            double worst = 0;
            int ws = 0;
            for (int s = 0; s < N_CURVE; s++) {
                double e = fabs((double)got[s] - (double)want[s]) / fabs((double)want[s]);
                if (e > worst || isnan(e)) {
                    worst = e;
                    ws = s;
                }
            }
            char line[256];
            int off = 0;
            for (int s = 0; s < N_CURVE; s++)
                off += snprintf(line + off, sizeof line - (size_t)off, " %.4f/%.4f",
                                (double)got[s], (double)want[s]);
            if (!(worst <= TOL_CURVE))
                fail(m, "curve", "step %d: expected %.6g, got %.6g, relative error %.3e > %.0e;"
                     " got/expected:%s", ws, (double)want[ws], (double)got[ws], worst, TOL_CURVE,
                     line);
            else
                ok(m, "curve", "max relative error %.2e; got/expected:%s", worst, line);
            if (tg->n_stats) {
                check_moves(&c, &ref, "curve_stats", tg->stats, tg->n_stats, "curve_bn_stats_refs",
                            TOL_CURVE_STATS);
                agg a;
                agg_init(&a, m, "curve_bn_stats", TOL_CURVE_STATS);
                for (int s = 0; s < tg->n_stats; s++)
                    agg_add(&a, vname(&c, tg->stats[s]), state_view(c.step, tg->stats[s]),
                            blob_findf(&ref, "curve_stats/%s", vname(&c, tg->stats[s])),
                            vnumel(&c, tg->stats[s]));
                agg_report(&a);
            }
        }
    }
done:
    ctx_free(&c);
    blob_free(&ref);
}

static void quiet_log(ot_log_level level, const char *msg, void *user)
{
    (void)user;
    if (level <= OT_LOG_WARN)
        printf("# log: %s\n", msg);
}

int main(int argc, char **argv)
{
    int a0 = 1;
    for (; a0 < argc && argv[a0][0] == '-'; a0++) {
        if (!strcmp(argv[a0], "--model") && a0 + 1 < argc)
            model_file = argv[++a0];
        else if (!strcmp(argv[a0], "--one-step")) {
            one_step = true;
            max_zero_fraction = 0.90;
        }
        else
            break;
    }
    if (a0 >= argc || argv[a0][0] == '-') {
        fprintf(stderr, "usage: %s [--model FILE] [--one-step] GOLDEN_DIR [MODE...]\n", argv[0]);
        return 2;
    }
    const char *v = getenv("OT_PARITY_VERBOSE");
    verbose = v && *v && strcmp(v, "0") != 0;
    ot_log_set(quiet_log, NULL, OT_LOG_WARN);
    blob batches;
    if (blob_load(&batches, argv[a0], "batches.bin")) {
        for (size_t i = 0; i < sizeof MODES / sizeof MODES[0]; i++) {
            bool run = argc == a0 + 1;
            for (int a = a0 + 1; a < argc; a++)
                run |= !strcmp(argv[a], MODES[i].name);
            if (run)
                run_mode(&MODES[i], argv[a0], &batches);
        }
    }
    blob_free(&batches);
    printf("%d passed, %d failed\n", n_pass, n_fail);
    free(state_buf);
    return n_fail ? 1 : 0;
}
