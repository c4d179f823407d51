/*
 * cpu_auto.c: --precision auto on the CPU: whether a graph's convolutions run
 * faster with bf16 operands than in fp32 on this machine.
 *
 * The answer is keyed by the CPU (its brand string and oneDNN's ISA), the
 * thread count, whether the graph trains, and the shapes of its
 * convolutions. A key seen before is answered from the cache file,
 * $XDG_CACHE_HOME/onnxtrain/precision-auto (else ~/.cache/onnxtrain/...),
 * one line per key:
 *
 *     KEY PICK FP32_MS BF16_MS
 *
 * (KEY 16 hex digits, PICK fp32 or bf16). Otherwise every distinct
 * convolution is timed as a oneDNN forward primitive in fp32 and in bf16 (the
 * bf16 time includes converting its input to bf16, as the executor does),
 * each time the best of a few runs after a warm-up, weighted by how often
 * the shape occurs; bf16 is picked when it takes less than 90% of fp32's
 * time. The line is then added to the file, which is rewritten under a
 * temporary name and renamed (core/file.h), so a reader never sees half a
 * file. A cache that cannot be read or written only costs the measurement.
 * Without native bf16 instructions (oneDNN would emulate them) the answer
 * is fp32 without measuring.
 */
#include <cpuid.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/file.h"
#include "cpu_dnnl_impl.h"

#define AUTO_RUNS 3        /* timed runs per shape and precision           */
#define AUTO_MARGIN 0.9    /* bf16 must take under this share of fp32's time */
#define AUTO_MAX_SHAPES 512

typedef struct conv_shape {
    int64_t x[4], w[4], y[4];
    int64_t group;
    window win;
    int count;
} conv_shape;

/* The latest decision of the largest workload, for ot_exec_auto_note. */
static pthread_mutex_t note_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    bool set, bf16, cached, emulated, none;
    double f32_ms, bf16_ms;
    char path[512];
} note;

static void cpu_brand(char *buf, size_t size)
{
    unsigned r[12] = { 0 };
    unsigned a, b, c, d;
    snprintf(buf, size, "unknown-cpu");
    if (!__get_cpuid(0x80000000u, &a, &b, &c, &d) || a < 0x80000004u)
        return;
    for (unsigned i = 0; i < 3; i++)
        __get_cpuid(0x80000002u + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
    char s[49];
    memcpy(s, r, 48);
    s[48] = 0;
    snprintf(buf, size, "%s", s);
}

static uint64_t fnv(uint64_t h, const char *s)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

/* The cache file's path into buf; false when there is no home to put it in. */
static bool cache_path(char *buf, size_t size)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n;
    if (xdg && xdg[0] == '/')
        n = snprintf(buf, size, "%s/onnxtrain/precision-auto", xdg);
    else if (home && home[0] == '/')
        n = snprintf(buf, size, "%s/.cache/onnxtrain/precision-auto", home);
    else
        return false;
    return n > 0 && (size_t)n < size;
}

/* The distinct 2-D convolutions of the graph (Conv only: their gradients
   have the same shapes), with how often each occurs. */
static int collect(const ot_graph *g, conv_shape *out, int cap)
{
    int n = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const ot_node *nd = &g->nodes[i];
        if (!ot_node_is(nd, OT_OP_CONV) || nd->n_in < 2 || nd->n_out < 1)
            continue;
        const ot_value *xv = &g->values[nd->in[0]], *wv = &g->values[nd->in[1]];
        const ot_value *yv = &g->values[nd->out[0]];
        if (xv->ndim != 4 || wv->ndim != 4 || yv->ndim != 4 || xv->dtype != OT_DTYPE_FLOAT ||
            dn_has_zero(xv) || dn_has_zero(wv) || dn_has_zero(yv))
            continue;
        conv_shape s = { .group = ot_node_attr_int(nd, "group", 1), .count = 1 };
        if (s.group < 1 || !dn_get_window(g, nd, xv, yv, wv->dims + 2, &s.win))
            continue;
        for (int d = 0; d < 4; d++) {
            s.x[d] = xv->dims[d];
            s.w[d] = wv->dims[d];
            s.y[d] = yv->dims[d];
        }
        int j = 0;
        for (; j < n; j++)
            if (!memcmp(out[j].x, s.x, sizeof s.x) && !memcmp(out[j].w, s.w, sizeof s.w) &&
                !memcmp(out[j].y, s.y, sizeof s.y) && out[j].group == s.group &&
                !memcmp(&out[j].win, &s.win, sizeof s.win))
                break;
        if (j < n)
            out[j].count++;
        else if (n < cap)
            out[n++] = s;
    }
    return n;
}

static uint64_t make_key(const conv_shape *s, int n, bool training, int threads)
{
    char buf[256];
    cpu_brand(buf, sizeof buf);
    uint64_t h = fnv(0xcbf29ce484222325ull, buf);
    snprintf(buf, sizeof buf, "|isa %x|threads %d|train %d|", (unsigned)dnnl_get_effective_cpu_isa(),
             threads, (int)training);
    h = fnv(h, buf);
    for (int i = 0; i < n; i++) {
        snprintf(buf, sizeof buf,
                 "x%lld,%lld,%lld,%lld w%lld,%lld,%lld,%lld g%lld s%lld,%lld d%lld,%lld "
                 "p%lld,%lld,%lld,%lld n%d;",
                 (long long)s[i].x[0], (long long)s[i].x[1], (long long)s[i].x[2],
                 (long long)s[i].x[3], (long long)s[i].w[0], (long long)s[i].w[1],
                 (long long)s[i].w[2], (long long)s[i].w[3], (long long)s[i].group,
                 (long long)s[i].win.strides[0], (long long)s[i].win.strides[1],
                 (long long)s[i].win.dil[0], (long long)s[i].win.dil[1],
                 (long long)s[i].win.pl[0], (long long)s[i].win.pl[1],
                 (long long)s[i].win.pr[0], (long long)s[i].win.pr[1], s[i].count);
        h = fnv(h, buf);
    }
    return h;
}

/* Looks the key up; true with *bf16 and the recorded times when found. */
static bool cache_find(const char *path, uint64_t key, bool *bf16, double *f32_ms,
                       double *bf16_ms)
{
    FILE *f = NULL;
    ot_err err;
    ot_err_init(&err);
    if (ot_file_fopen_read(path, &f, NULL, &err) != OT_OK)
        return false;
    char line[256], pick[8];
    unsigned long long k;
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        double a, b;
        if (sscanf(line, "%16llx %7s %lf %lf", &k, pick, &a, &b) == 4 && k == key &&
            (!strcmp(pick, "fp32") || !strcmp(pick, "bf16")) && isfinite(a) && isfinite(b)) {
            *bf16 = !strcmp(pick, "bf16");
            *f32_ms = a;
            *bf16_ms = b;
            found = true;
        }
    }
    fclose(f);
    return found;
}

/* Adds the key's line: the file's other well-formed lines, then this one,
   written to a temporary name and renamed. Failures are only logged. */
static void cache_add(const char *path, uint64_t key, bool bf16, double f32_ms, double bf16_ms)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s", path);
    for (char *p = dir + 1; *p; p++) { /* create the folders, mode 0700 */
        if (*p != '/')
            continue;
        *p = 0;
        mkdir(dir, 0700);
        *p = '/';
    }
    size_t cap = 4096, len = 0;
    char *text = ot_malloc(cap);
    if (!text)
        return;
    FILE *f = NULL;
    ot_err err;
    ot_err_init(&err);
    if (ot_file_fopen_read(path, &f, NULL, &err) == OT_OK) {
        char line[256], pick[8];
        unsigned long long k;
        double a, b;
        int kept = 0;
        while (fgets(line, sizeof line, f) && kept < 10000) {
            if (sscanf(line, "%16llx %7s %lf %lf", &k, pick, &a, &b) != 4 || k == key)
                continue;
            size_t l = strlen(line);
            if (l == 0 || line[l - 1] != '\n')
                continue;
            if (len + l + 1 > cap) {
                char *t = ot_realloc(text, cap * 2);
                if (!t)
                    break;
                text = t;
                cap *= 2;
            }
            memcpy(text + len, line, l);
            len += l;
            kept++;
        }
        fclose(f);
    }
    char mine[128];
    int l = snprintf(mine, sizeof mine, "%016llx %s %.3f %.3f\n", (unsigned long long)key,
                     bf16 ? "bf16" : "fp32", f32_ms, bf16_ms);
    if (len + (size_t)l + 1 > cap) {
        char *t = ot_realloc(text, len + (size_t)l + 1);
        if (!t) {
            ot_free(text);
            return;
        }
        text = t;
    }
    memcpy(text + len, mine, (size_t)l);
    len += (size_t)l;
    if (ot_atomic_write(path, text, len, &err) != OT_OK)
        ot_log(OT_LOG_INFO, "--precision auto: the measurement is not cached: %s", err.msg);
    ot_free(text);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Seconds of one forward convolution of shape s (the best of AUTO_RUNS after
   a warm-up), in bf16 including its input's conversion; a negative value
   when oneDNN has no such primitive. */
static double time_conv(const cpu_state *cs, const conv_shape *s, bool bf16)
{
    double best = -1;
    dnnl_memory_desc_t xmd, wmd, ymd, xplain;
    dnnl_dims_t xd = { s->x[0], s->x[1], s->x[2], s->x[3] };
    dnnl_dims_t yd = { s->y[0], s->y[1], s->y[2], s->y[3] };
    dnnl_dims_t wd;
    int wn = 0;
    if (s->group > 1) {
        wd[wn++] = s->group;
        wd[wn++] = s->w[0] / s->group;
    } else {
        wd[wn++] = s->w[0];
    }
    for (int i = 1; i < 4; i++)
        wd[wn++] = s->w[i];
    dnnl_data_type_t dt = bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_init_by_tag(&xmd, 4, xd, dt, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&wmd, wn, wd, dt, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&ymd, 4, yd, dnnl_f32, dnnl_format_tag_any);
    dnnl_convolution_desc_t cd;
    dnnl_primitive_desc_t pd = NULL, rpd = NULL;
    dnnl_primitive_t prim = NULL, reorder = NULL;
    dnnl_memory_t mx = NULL, mw = NULL, my = NULL, mxp = NULL;
    if (dnnl_dilated_convolution_forward_desc_init(
            &cd, dnnl_forward_inference, dnnl_convolution_direct, &xmd, &wmd, NULL, &ymd,
            s->win.strides, s->win.dil, s->win.pl, s->win.pr) != dnnl_success ||
        dnnl_primitive_desc_create(&pd, &cd, NULL, cs->eng, NULL) != dnnl_success ||
        dnnl_primitive_create(&prim, pd) != dnnl_success)
        goto done;
    const dnnl_memory_desc_t *px = dn_pd_md(pd, dnnl_query_src_md);
    xplain = *px; /* the fp32 input, in the layout the convolution reads */
    xplain.data_type = dnnl_f32;
    if (dnnl_memory_create(&mx, px, cs->eng, DNNL_MEMORY_ALLOCATE) ||
        dnnl_memory_create(&mw, dn_pd_md(pd, dnnl_query_weights_md), cs->eng,
                           DNNL_MEMORY_ALLOCATE) ||
        dnnl_memory_create(&my, dn_pd_md(pd, dnnl_query_dst_md), cs->eng, DNNL_MEMORY_ALLOCATE))
        goto done;
    if (bf16 && (dnnl_reorder_primitive_desc_create(&rpd, &xplain, cs->eng, px, cs->eng, NULL) ||
                 dnnl_primitive_create(&reorder, rpd) ||
                 dnnl_memory_create(&mxp, &xplain, cs->eng, DNNL_MEMORY_ALLOCATE)))
        goto done;
    dnnl_memory_t zero[4] = { mx, mw, my, mxp };
    for (int i = 0; i < 4; i++) { /* zeros: no denormals or NaNs to slow a run */
        void *p = NULL;
        const dnnl_memory_desc_t *md = NULL;
        if (zero[i] && dnnl_memory_get_data_handle(zero[i], &p) == dnnl_success && p &&
            dnnl_memory_get_memory_desc(zero[i], &md) == dnnl_success)
            memset(p, 0, dnnl_memory_desc_get_size(md));
    }
    dnnl_exec_arg_t args[3] = { { DNNL_ARG_SRC, mx }, { DNNL_ARG_WEIGHTS, mw },
                                { DNNL_ARG_DST, my } };
    dnnl_exec_arg_t rargs[2] = { { DNNL_ARG_SRC, mxp }, { DNNL_ARG_DST, mx } };
    for (int r = 0; r <= AUTO_RUNS; r++) {
        double t0 = now_s();
        if ((reorder && dnnl_primitive_execute(reorder, cs->stream, 2, rargs)) ||
            dnnl_primitive_execute(prim, cs->stream, 3, args) || dnnl_stream_wait(cs->stream)) {
            best = -1;
            goto done;
        }
        double t = now_s() - t0;
        if (r > 0 && (best < 0 || t < best))
            best = t;
    }
done:
    dnnl_memory_destroy(mx);
    dnnl_memory_destroy(mw);
    dnnl_memory_destroy(my);
    dnnl_memory_destroy(mxp);
    dnnl_primitive_destroy(prim);
    dnnl_primitive_destroy(reorder);
    dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_desc_destroy(rpd);
    return best;
}

static void keep_note(bool bf16, bool cached, bool emulated, bool none, double f32_ms,
                      double bf16_ms, const char *path)
{
    pthread_mutex_lock(&note_lock);
    if (!note.set || f32_ms >= note.f32_ms) {
        note.set = true;
        note.bf16 = bf16;
        note.cached = cached;
        note.emulated = emulated;
        note.none = none;
        note.f32_ms = f32_ms;
        note.bf16_ms = bf16_ms;
        snprintf(note.path, sizeof note.path, "%s", path ? path : "");
    }
    pthread_mutex_unlock(&note_lock);
}

bool cpu_auto_bf16(const ot_exec *x, const cpu_state *cs)
{
    if (!ot_cpu_bf16_native()) {
        keep_note(false, false, true, false, 0, 0, NULL);
        return false;
    }
    conv_shape *s = ot_malloc(sizeof *s * AUTO_MAX_SHAPES);
    if (!s)
        return false;
    int n = collect(x->g, s, AUTO_MAX_SHAPES);
    if (n == 0) {
        ot_free(s);
        keep_note(false, false, false, true, 0, 0, NULL);
        return false;
    }
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    uint64_t key = make_key(s, n, cs->training, threads);
    char path[512];
    bool have_path = cache_path(path, sizeof path);
    bool bf16 = false;
    double f32_ms = 0, bf16_ms = 0;
    if (have_path && cache_find(path, key, &bf16, &f32_ms, &bf16_ms)) {
        ot_free(s);
        keep_note(bf16, true, false, false, f32_ms, bf16_ms, path);
        return bf16;
    }
    bool ok = true;
    for (int i = 0; i < n && ok; i++) {
        double a = time_conv(cs, &s[i], false), b = time_conv(cs, &s[i], true);
        if (a < 0 || b < 0)
            ok = false; /* a shape bf16 cannot run: fp32 */
        f32_ms += 1e3 * a * s[i].count;
        bf16_ms += 1e3 * b * s[i].count;
    }
    ot_free(s);
    bf16 = ok && bf16_ms < AUTO_MARGIN * f32_ms;
    if (have_path)
        cache_add(path, key, bf16, f32_ms, bf16_ms);
    keep_note(bf16, false, false, false, f32_ms, bf16_ms, have_path ? path : NULL);
    return bf16;
}

bool ot_exec_auto_note(char *buf, size_t size)
{
    pthread_mutex_lock(&note_lock);
    bool set = note.set;
    if (!set)
        snprintf(buf, size, "fp32");
    else if (note.emulated)
        snprintf(buf, size, "fp32 (this CPU has no AVX512-BF16 or AMX: bf16 would be emulated)");
    else if (note.none)
        snprintf(buf, size, "fp32 (no convolutions for bf16 to speed up)");
    else
        snprintf(buf, size, "%s (convolutions %.1f ms in fp32, %.1f ms in bf16 on this CPU; %s%s)",
                 note.bf16 ? "bf16" : "fp32", note.f32_ms, note.bf16_ms,
                 note.cached ? "measured before, cached in " : "measured now",
                 note.cached ? note.path : "");
    pthread_mutex_unlock(&note_lock);
    return set;
}
