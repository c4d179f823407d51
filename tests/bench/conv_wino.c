/*
 * conv_wino.c: oneDNN 2.6's Winograd convolutions against its direct ones,
 * per ResNet-18 3x3 stride-1 shape, for forward inference in fp32.
 *
 * For each distinct 3x3 stride-1 convolution of ResNet-18 at --size (four
 * at 224: 64 channels at 56x56, 128 at 28, 256 at 14, 512 at 7; each occurs
 * 3 or 4 times) it creates, with the executor's post-ops (--post relu: an
 * eltwise ReLU; sum-relu: a sum into dst, then ReLU, as a residual block's
 * second convolution):
 *
 *   direct    dnnl_convolution_direct, every layout `any` (what the executor
 *             creates today)
 *   direct16  dnnl_convolution_direct with source and result in nChw16c (the
 *             layout the Winograd kernels read and write)
 *   winograd  dnnl_convolution_winograd, layouts `any`
 *   auto      dnnl_convolution_auto, layouts `any` (oneDNN's own choice)
 *   reorder   the reorder from the Winograd result's layout into the layout
 *             direct reads (the price of a layout change next to it)
 *
 * and runs them alternately in one process (warm-up rounds, then --reps
 * rounds of one run each, in turn), so that load from other processes falls
 * on all of them alike; it reports each one's median and minimum in ms,
 * GFLOP/s of the direct FLOP count, and the oneDNN implementation.
 *
 * Accuracy: the same seeded input (uniform in [-1, 1)) and weights (normal
 * with variance 2/fan-in, as a trained network's) go through direct and
 * winograd and come back in plain nchw; the largest absolute difference,
 * that difference over the largest |direct| value, and the number of
 * elements outside test-data's default tolerance (|a - b| <= 1e-5 + 1e-3 *
 * |direct|) are reported.
 *
 *   conv_wino [--batch N] [--size S] [--reps R] [--warmup W] [--post none|relu|sum-relu]
 *
 * Prints one JSON object. Not part of `make bench`; built by hand:
 *   cc -O2 -fopenmp tests/bench/conv_wino.c -ldnnl -lm -o build/bench/conv_wino
 *   OMP_NUM_THREADS=2 build/bench/conv_wino --batch 64 --reps 11
 */
#include <getopt.h>
#include <math.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { V_DIRECT, V_DIRECT16, V_WINO, V_AUTO, NV };
static const char *vnames[NV] = { "direct", "direct16", "winograd", "auto" };

static dnnl_engine_t engine;
static dnnl_stream_t stream;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void die(const char *what, dnnl_status_t st)
{
    fprintf(stderr, "conv_wino: %s failed (oneDNN status %d)\n", what, (int)st);
    exit(1);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static uint64_t rng = 0x2545f4914f6cdd1dull;
static double uniform(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) * (1.0 / 9007199254740992.0);
}

static double normal(void)
{
    double u = uniform(), v = uniform();
    if (u < 1e-300)
        u = 1e-300;
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static dnnl_memory_t mem(const dnnl_memory_desc_t *md)
{
    dnnl_memory_t m;
    dnnl_status_t st = dnnl_memory_create(&m, md, engine, DNNL_MEMORY_ALLOCATE);
    if (st != dnnl_success)
        die("dnnl_memory_create", st);
    return m;
}

static void *ptr(dnnl_memory_t m)
{
    void *p = NULL;
    dnnl_memory_get_data_handle(m, &p);
    return p;
}

static void reorder(dnnl_memory_t from, dnnl_memory_t to)
{
    const dnnl_memory_desc_t *a, *b;
    dnnl_memory_get_memory_desc(from, &a);
    dnnl_memory_get_memory_desc(to, &b);
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t p;
    dnnl_status_t st = dnnl_reorder_primitive_desc_create(&pd, a, engine, b, engine, NULL);
    if (st != dnnl_success)
        die("reorder descriptor", st);
    if ((st = dnnl_primitive_create(&p, pd)) != dnnl_success)
        die("reorder primitive", st);
    dnnl_exec_arg_t args[2] = { { DNNL_ARG_SRC, from }, { DNNL_ARG_DST, to } };
    if ((st = dnnl_primitive_execute(p, stream, 2, args)) != dnnl_success)
        die("reorder", st);
    dnnl_stream_wait(stream);
    dnnl_primitive_destroy(p);
    dnnl_primitive_desc_destroy(pd);
}

/* one variant of one shape */
struct var {
    int ok;
    dnnl_primitive_t prim;
    dnnl_memory_t src, wei, bias, dst;
    char impl[64];
    double *t;
};

static int post_kind; /* 0 none, 1 relu, 2 sum + relu */

static int make_var(struct var *v, int kind, int batch, int ch, int side, dnnl_memory_t psrc,
                    dnnl_memory_t pwei, dnnl_memory_t pbias, dnnl_memory_t pdst)
{
    dnnl_dims_t sd = { batch, ch, side, side }, wd = { ch, ch, 3, 3 }, bd = { ch };
    dnnl_dims_t strides = { 1, 1 }, pad = { 1, 1 };
    dnnl_format_tag_t act = kind == V_DIRECT16 ? dnnl_nChw16c : dnnl_format_tag_any;
    dnnl_memory_desc_t s, w, b, d;
    dnnl_memory_desc_init_by_tag(&s, 4, sd, dnnl_f32, act);
    dnnl_memory_desc_init_by_tag(&w, 4, wd, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&b, 1, bd, dnnl_f32, dnnl_x);
    dnnl_memory_desc_init_by_tag(&d, 4, sd, dnnl_f32, act);
    dnnl_alg_kind_t alg = kind == V_WINO   ? dnnl_convolution_winograd
                          : kind == V_AUTO ? dnnl_convolution_auto
                                           : dnnl_convolution_direct;
    dnnl_convolution_desc_t cd;
    if (dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, alg, &s, &w, &b, &d,
                                           strides, pad, pad) != dnnl_success)
        return 0;
    dnnl_primitive_attr_t attr;
    dnnl_post_ops_t po;
    dnnl_primitive_attr_create(&attr);
    dnnl_post_ops_create(&po);
    if (post_kind == 2)
        dnnl_post_ops_append_sum(po, 1.0f);
    if (post_kind >= 1)
        dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
    dnnl_primitive_attr_set_post_ops(attr, po);
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &cd, attr, engine, NULL);
    dnnl_post_ops_destroy(po);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success)
        return 0;
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    snprintf(v->impl, sizeof v->impl, "%s", impl ? impl : "?");
    if ((st = dnnl_primitive_create(&v->prim, pd)) != dnnl_success)
        die("dnnl_primitive_create", st);
    v->src = mem(dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0));
    v->wei = mem(dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0));
    v->bias = mem(dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 1));
    v->dst = mem(dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0));
    dnnl_primitive_desc_destroy(pd);
    reorder(psrc, v->src);
    reorder(pwei, v->wei);
    reorder(pbias, v->bias);
    reorder(pdst, v->dst); /* the sum post-op's operand */
    return v->ok = 1;
}

static double run_var(struct var *v, dnnl_memory_t dst_init)
{
    if (post_kind == 2) /* dst accumulates: restore it untimed */
        reorder(dst_init, v->dst);
    dnnl_exec_arg_t args[4] = { { DNNL_ARG_SRC, v->src },
                                { DNNL_ARG_WEIGHTS, v->wei },
                                { DNNL_ARG_BIAS, v->bias },
                                { DNNL_ARG_DST, v->dst } };
    double t0 = now();
    dnnl_status_t st = dnnl_primitive_execute(v->prim, stream, 4, args);
    if (st != dnnl_success)
        die("dnnl_primitive_execute", st);
    dnnl_stream_wait(stream);
    return now() - t0;
}

static double median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: conv_wino [--batch N] [--size S] [--reps R] [--warmup W] "
               "[--post none|relu|sum-relu]\n");
}

int main(int argc, char **argv)
{
    int batch = 1, size = 224, reps = 21, warmup = 3;
    const char *post = "relu";
    static const struct option longopts[] = {
        { "batch", required_argument, NULL, 'b' }, { "size", required_argument, NULL, 's' },
        { "reps", required_argument, NULL, 'r' },  { "warmup", required_argument, NULL, 'w' },
        { "post", required_argument, NULL, 'p' },  { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int o;
    while ((o = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (o) {
        case 'b': batch = atoi(optarg); break;
        case 's': size = atoi(optarg); break;
        case 'r': reps = atoi(optarg); break;
        case 'w': warmup = atoi(optarg); break;
        case 'p': post = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    post_kind = !strcmp(post, "none") ? 0 : !strcmp(post, "relu") ? 1
                : !strcmp(post, "sum-relu") ? 2 : -1;
    if (optind < argc || batch < 1 || batch > 1024 || size < 32 || size > 1024 || reps < 1 ||
        reps > 1000 || warmup < 0 || warmup > 100 || post_kind < 0) {
        fprintf(stderr, "conv_wino: --batch 1..1024, --size 32..1024, --reps 1..1000, "
                        "--warmup 0..100, --post none|relu|sum-relu, no other arguments\n");
        return 2;
    }
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) != dnnl_success) {
        fprintf(stderr, "conv_wino: cannot create a oneDNN CPU engine\n");
        return 1;
    }
    const dnnl_version_t *ver = dnnl_version();
    printf("{\"batch\": %d, \"size\": %d, \"threads\": %d, \"reps\": %d, \"warmup\": %d, "
           "\"post\": \"%s\", \"onednn\": \"%d.%d.%d\", \"shapes\": [",
           batch, size, omp_get_max_threads(), reps, warmup, post, ver->major, ver->minor,
           ver->patch);
    /* ResNet-18: after conv1 (stride 2) and the max pool (stride 2) the side
       is size/4; each stage halves it and doubles the channels */
    int side = ((size + 6 - 7) / 2 + 1 + 2 - 3) / 2 + 1;
    static const int count[4] = { 4, 3, 3, 3 };
    for (int stage = 0, ch = 64; stage < 4; stage++, ch *= 2) {
        if (stage > 0)
            side = (side + 2 - 3) / 2 + 1;
        dnnl_dims_t sd = { batch, ch, side, side }, wd = { ch, ch, 3, 3 }, bd = { ch };
        dnnl_memory_desc_t ps, pw, pb;
        dnnl_memory_desc_init_by_tag(&ps, 4, sd, dnnl_f32, dnnl_nchw);
        dnnl_memory_desc_init_by_tag(&pw, 4, wd, dnnl_f32, dnnl_oihw);
        dnnl_memory_desc_init_by_tag(&pb, 1, bd, dnnl_f32, dnnl_x);
        dnnl_memory_t msrc = mem(&ps), mwei = mem(&pw), mbias = mem(&pb), mdst = mem(&ps);
        size_t ns = (size_t)batch * ch * side * side, nw = (size_t)ch * ch * 9;
        float *fs = ptr(msrc), *fw = ptr(mwei), *fb = ptr(mbias), *fd = ptr(mdst);
        for (size_t i = 0; i < ns; i++) {
            fs[i] = (float)(2 * uniform() - 1);
            fd[i] = (float)(2 * uniform() - 1);
        }
        double sdev = sqrt(2.0 / (ch * 9.0));
        for (size_t i = 0; i < nw; i++)
            fw[i] = (float)(sdev * normal());
        for (int i = 0; i < ch; i++)
            fb[i] = (float)(0.1 * normal());
        struct var v[NV];
        memset(v, 0, sizeof v);
        for (int k = 0; k < NV; k++) {
            make_var(&v[k], k, batch, ch, side, msrc, mwei, mbias, mdst);
            v[k].t = calloc((size_t)reps, sizeof(double));
        }
        /* the reorder a layout change next to a Winograd convolution costs */
        dnnl_primitive_t rp = NULL;
        dnnl_memory_t rto = NULL;
        double *rt = calloc((size_t)reps, sizeof(double));
        if (v[V_WINO].ok && v[V_DIRECT].ok) {
            const dnnl_memory_desc_t *a, *b;
            dnnl_memory_get_memory_desc(v[V_WINO].dst, &a);
            dnnl_memory_get_memory_desc(v[V_DIRECT].src, &b);
            dnnl_primitive_desc_t rpd;
            if (!dnnl_memory_desc_equal(a, b) &&
                dnnl_reorder_primitive_desc_create(&rpd, a, engine, b, engine, NULL) ==
                    dnnl_success) {
                dnnl_primitive_create(&rp, rpd);
                dnnl_primitive_desc_destroy(rpd);
                rto = mem(b);
            }
        }
        for (int r = -warmup; r < reps; r++) {
            for (int k = 0; k < NV; k++) {
                if (!v[k].ok)
                    continue;
                double t = run_var(&v[k], mdst);
                if (r >= 0)
                    v[k].t[r] = t;
            }
            if (rp) {
                dnnl_exec_arg_t args[2] = { { DNNL_ARG_SRC, v[V_WINO].dst },
                                            { DNNL_ARG_DST, rto } };
                double t0 = now();
                dnnl_primitive_execute(rp, stream, 2, args);
                dnnl_stream_wait(stream);
                if (r >= 0)
                    rt[r] = now() - t0;
            }
        }
        /* accuracy: each variant's result back in nchw against direct's */
        float *out[NV] = { 0 };
        for (int k = 0; k < NV; k++) {
            if (!v[k].ok)
                continue;
            run_var(&v[k], mdst);
            dnnl_memory_t back = mem(&ps);
            reorder(v[k].dst, back);
            out[k] = malloc(ns * sizeof(float));
            memcpy(out[k], ptr(back), ns * sizeof(float));
            dnnl_memory_destroy(back);
        }
        double gflop = 2.0 * batch * ch * side * side * ch * 9 / 1e9;
        printf("%s\n  {\"channels\": %d, \"side\": %d, \"count\": %d, \"gflop\": %.4f, ",
               stage ? "," : "", ch, side, count[stage], gflop);
        for (int k = 0; k < NV; k++) {
            if (!v[k].ok) {
                printf("\"%s\": null, ", vnames[k]);
                continue;
            }
            double med = median(v[k].t, reps);
            double maxd = 0, maxy = 0;
            long bad = 0;
            for (size_t i = 0; i < ns && out[V_DIRECT]; i++) {
                double a = out[V_DIRECT][i], d = fabs(out[k][i] - a);
                maxd = d > maxd ? d : maxd;
                maxy = fabs(a) > maxy ? fabs(a) : maxy;
                bad += d > 1e-5 + 1e-3 * fabs(a);
            }
            printf("\"%s\": {\"median_ms\": %.4f, \"min_ms\": %.4f, \"gflops\": %.1f, "
                   "\"impl\": \"%s\", \"max_abs_diff\": %.3g, \"max_diff_over_max\": %.3g, "
                   "\"outside_tol\": %ld}, ",
                   vnames[k], med * 1e3, v[k].t[0] * 1e3, gflop / med, v[k].impl, maxd,
                   maxy > 0 ? maxd / maxy : 0.0, bad);
        }
        if (rp)
            printf("\"reorder_ms\": %.4f}", median(rt, reps) * 1e3);
        else
            printf("\"reorder_ms\": 0}");
        fflush(stdout);
    }
    printf("\n]}\n");
    return 0;
}
