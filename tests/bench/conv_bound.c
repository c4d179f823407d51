/*
 * conv_bound.c: the isolated convolution bound of a ResNet-18 training step.
 *
 * ResNet-18's 20 convolutions are created as oneDNN 2.6 primitives with
 * memory format `any` (each primitive in the blocked layout it prefers;
 * nothing is reordered inside the timed loop) and run as each training mode
 * would run them, one "step" after another:
 *
 *   fe    feature extraction's prefix pass: the 20 forward convolutions
 *         (forward_inference)
 *   ft    fine-tuning (layer4 + fc): conv1..layer3 forward_inference, layer4's
 *         five convolutions forward_training, their weight gradients, and
 *         the data gradients of the three that do not read the frozen prefix
 *   full  full training: the 20 forward_training convolutions, the 20 weight
 *         gradients and the data gradients of all but conv1
 *
 * for fp32 and bf16 (bf16 sources, weights and destinations, fp32 weight
 * gradients as mixed precision keeps them). Each mode runs WARMUP steps, then
 * REPS timed steps; the median step time gives the bound in images/s. A
 * dtype whose primitives oneDNN cannot create, or creates only as its
 * reference ("ref:") implementation, is reported as not supported.
 *
 *   conv_bound [--batch N] [--size S] [--reps R] [--warmup W]
 *              [--modes fe,ft,full] [--dtypes f32,bf16] [--winograd]
 *
 * --winograd (not a bound: an inference experiment) asks oneDNN for its
 * Winograd algorithm for the forward_inference primitives of the 3x3
 * stride-1 convolutions, falling back to direct where it has none; "winograd"
 * in the JSON counts the primitives that got it. Winograd changes the
 * rounding (fewer multiplications, larger intermediate sums).
 *
 * Prints one JSON object. Built and run by tests/bench/run.sh (make bench).
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

#define NCONV 20

/* one convolution: channels in/out, kernel, stride, pad, input side at 224 */
struct conv {
    int ic, oc, k, s, p;
    int in; /* input height/width */
    int out;
};

/* the per-layer primitives of one convolution, for one dtype */
struct prims {
    dnnl_primitive_t fwd_inf, fwd_train, bwd_d, bwd_w;
    dnnl_memory_t inf[3];     /* src, weights, dst */
    dnnl_memory_t train[3];   /* src, weights, dst */
    dnnl_memory_t bd[3];      /* diff_dst, weights, diff_src */
    dnnl_memory_t bw[3];      /* src, diff_dst, diff_weights */
    char impl[4][64];
};

static dnnl_engine_t engine;
static dnnl_stream_t stream;
static int winograd, n_winograd;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ResNet-18's convolutions in forward order for input side `size` */
static void resnet18(struct conv *c, int size)
{
    int n = 0;
    int side = size;
#define ADD(ic_, oc_, k_, s_, p_)                                                                  \
    do {                                                                                           \
        c[n].ic = ic_;                                                                             \
        c[n].oc = oc_;                                                                             \
        c[n].k = k_;                                                                               \
        c[n].s = s_;                                                                               \
        c[n].p = p_;                                                                               \
        c[n].in = side;                                                                            \
        c[n].out = (side + 2 * (p_) - (k_)) / (s_) + 1;                                            \
        n++;                                                                                       \
    } while (0)
    ADD(3, 64, 7, 2, 3);
    side = c[0].out;
    side = (side + 2 - 3) / 2 + 1; /* max pool 3x3 stride 2 pad 1 */
    for (int i = 0; i < 4; i++)
        ADD(64, 64, 3, 1, 1);
    int ch = 64;
    for (int stage = 0; stage < 3; stage++) {
        int oc = ch * 2;
        ADD(ch, oc, 3, 2, 1); /* block 1, conv 1 */
        ADD(ch, oc, 1, 2, 0); /* downsample */
        side = c[n - 1].out;
        for (int i = 0; i < 3; i++)
            ADD(oc, oc, 3, 1, 1);
        ch = oc;
    }
#undef ADD
}

static void die(const char *what, dnnl_status_t st)
{
    fprintf(stderr, "conv_bound: %s failed (oneDNN status %d)\n", what, (int)st);
    exit(1);
}

static dnnl_memory_t make_mem(const_dnnl_primitive_desc_t pd, dnnl_query_t q, int idx)
{
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, q, idx);
    dnnl_memory_t m;
    dnnl_status_t st = dnnl_memory_create(&m, md, engine, DNNL_MEMORY_ALLOCATE);
    if (st != dnnl_success)
        die("dnnl_memory_create", st);
    void *p = NULL;
    dnnl_memory_get_data_handle(m, &p);
    size_t bytes = dnnl_memory_desc_get_size(md);
    /* small values that keep every product normal: 0.01 in either format */
    if (md->data_type == dnnl_bf16) {
        uint16_t *h = p;
        for (size_t i = 0; i < bytes / 2; i++)
            h[i] = 0x3c24;
    } else {
        float *f = p;
        for (size_t i = 0; i < bytes / 4; i++)
            f[i] = 0.01f;
    }
    return m;
}

static void impl_name(const_dnnl_primitive_desc_t pd, char *out)
{
    const char *s = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &s);
    snprintf(out, 64, "%s", s ? s : "?");
}

/* Creates the four primitives of convolution `c` for dtype `dt`; returns 0,
 * or -1 (with `why` filled) where oneDNN has no optimized implementation. */
static int build(const struct conv *c, int batch, dnnl_data_type_t dt, struct prims *p,
                 char *why)
{
    dnnl_dims_t src = { batch, c->ic, c->in, c->in };
    dnnl_dims_t wei = { c->oc, c->ic, c->k, c->k };
    dnnl_dims_t dst = { batch, c->oc, c->out, c->out };
    dnnl_dims_t strides = { c->s, c->s };
    dnnl_dims_t pad = { c->p, c->p };
    dnnl_memory_desc_t s_md, w_md, d_md, dw_md;
    dnnl_memory_desc_init_by_tag(&s_md, 4, src, dt, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&w_md, 4, wei, dt, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&d_md, 4, dst, dt, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&dw_md, 4, wei, dnnl_f32, dnnl_format_tag_any);

    dnnl_primitive_desc_t pd[4];
    dnnl_convolution_desc_t cd;
    dnnl_prop_kind_t props[2] = { dnnl_forward_inference, dnnl_forward_training };
    for (int i = 0; i < 2; i++) {
        if (i == 0 && winograd && c->k == 3 && c->s == 1 &&
            dnnl_convolution_forward_desc_init(&cd, props[i], dnnl_convolution_winograd, &s_md,
                                               &w_md, NULL, &d_md, strides, pad,
                                               pad) == dnnl_success &&
            dnnl_primitive_desc_create(&pd[i], &cd, NULL, engine, NULL) == dnnl_success) {
            n_winograd++;
            continue;
        }
        dnnl_convolution_forward_desc_init(&cd, props[i], dnnl_convolution_direct, &s_md, &w_md,
                                           NULL, &d_md, strides, pad, pad);
        if (dnnl_primitive_desc_create(&pd[i], &cd, NULL, engine, NULL) != dnnl_success) {
            snprintf(why, 128, "no forward convolution for this data type");
            return -1;
        }
    }
    dnnl_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &s_md, &w_md, &d_md,
                                             strides, pad, pad);
    if (dnnl_primitive_desc_create(&pd[2], &cd, NULL, engine, pd[1]) != dnnl_success) {
        snprintf(why, 128, "no backward-data convolution for this data type");
        return -1;
    }
    dnnl_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, &s_md, &dw_md, NULL,
                                                &d_md, strides, pad, pad);
    if (dnnl_primitive_desc_create(&pd[3], &cd, NULL, engine, pd[1]) != dnnl_success) {
        snprintf(why, 128, "no backward-weights convolution for this data type");
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        impl_name(pd[i], p->impl[i]);
        if (strncmp(p->impl[i], "ref", 3) == 0) {
            snprintf(why, 128, "only oneDNN's reference implementation (%s)", p->impl[i]);
            return -1;
        }
    }
    dnnl_primitive_t *prim[4] = { &p->fwd_inf, &p->fwd_train, &p->bwd_d, &p->bwd_w };
    for (int i = 0; i < 4; i++) {
        dnnl_status_t st = dnnl_primitive_create(prim[i], pd[i]);
        if (st != dnnl_success)
            die("dnnl_primitive_create", st);
    }
    p->inf[0] = make_mem(pd[0], dnnl_query_src_md, 0);
    p->inf[1] = make_mem(pd[0], dnnl_query_weights_md, 0);
    p->inf[2] = make_mem(pd[0], dnnl_query_dst_md, 0);
    p->train[0] = make_mem(pd[1], dnnl_query_src_md, 0);
    p->train[1] = make_mem(pd[1], dnnl_query_weights_md, 0);
    p->train[2] = make_mem(pd[1], dnnl_query_dst_md, 0);
    p->bd[0] = make_mem(pd[2], dnnl_query_diff_dst_md, 0);
    p->bd[1] = make_mem(pd[2], dnnl_query_weights_md, 0);
    p->bd[2] = make_mem(pd[2], dnnl_query_diff_src_md, 0);
    p->bw[0] = make_mem(pd[3], dnnl_query_src_md, 0);
    p->bw[1] = make_mem(pd[3], dnnl_query_diff_dst_md, 0);
    p->bw[2] = make_mem(pd[3], dnnl_query_diff_weights_md, 0);
    for (int i = 0; i < 4; i++)
        dnnl_primitive_desc_destroy(pd[i]);
    return 0;
}

static void run(dnnl_primitive_t prim, int a0, dnnl_memory_t m0, int a1, dnnl_memory_t m1, int a2,
                dnnl_memory_t m2)
{
    dnnl_exec_arg_t args[3] = { { a0, m0 }, { a1, m1 }, { a2, m2 } };
    dnnl_status_t st = dnnl_primitive_execute(prim, stream, 3, args);
    if (st != dnnl_success)
        die("dnnl_primitive_execute", st);
}

enum { MODE_FE, MODE_FT, MODE_FULL, NMODES };
static const char *mode_names[NMODES] = { "fe", "ft", "full" };

/* first convolution of layer4: the one fine-tuning trains from */
#define FT_FIRST 15

/* one training step's convolutions in `mode` */
static void step(struct prims *p, int mode)
{
    for (int i = 0; i < NCONV; i++) {
        int train = mode == MODE_FULL || (mode == MODE_FT && i >= FT_FIRST);
        if (train)
            run(p[i].fwd_train, DNNL_ARG_SRC, p[i].train[0], DNNL_ARG_WEIGHTS, p[i].train[1],
                DNNL_ARG_DST, p[i].train[2]);
        else
            run(p[i].fwd_inf, DNNL_ARG_SRC, p[i].inf[0], DNNL_ARG_WEIGHTS, p[i].inf[1],
                DNNL_ARG_DST, p[i].inf[2]);
    }
    if (mode == MODE_FE)
        return;
    int first = mode == MODE_FULL ? 0 : FT_FIRST;
    for (int i = NCONV - 1; i >= first; i--) {
        /* data gradients: not for conv1 (the image) nor, in fine-tuning,
         * for the two layer4 convolutions reading the frozen prefix */
        int data = mode == MODE_FULL ? i > 0 : i >= FT_FIRST + 2;
        if (data)
            run(p[i].bwd_d, DNNL_ARG_DIFF_DST, p[i].bd[0], DNNL_ARG_WEIGHTS, p[i].bd[1],
                DNNL_ARG_DIFF_SRC, p[i].bd[2]);
        run(p[i].bwd_w, DNNL_ARG_SRC, p[i].bw[0], DNNL_ARG_DIFF_DST, p[i].bw[1],
            DNNL_ARG_DIFF_WEIGHTS, p[i].bw[2]);
    }
}

static double flops(const struct conv *c, int batch, int mode)
{
    double total = 0;
    for (int i = 0; i < NCONV; i++) {
        double f = 2.0 * batch * c[i].oc * c[i].out * c[i].out * c[i].ic * c[i].k * c[i].k;
        total += f;
        if (mode == MODE_FE)
            continue;
        int first = mode == MODE_FULL ? 0 : FT_FIRST;
        if (i < first)
            continue;
        total += f; /* weight gradient */
        if (mode == MODE_FULL ? i > 0 : i >= FT_FIRST + 2)
            total += f; /* data gradient */
    }
    return total;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int in_list(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *s = list; *s;) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len == n && strncmp(s, name, n) == 0)
            return 1;
        if (!e)
            break;
        s = e + 1;
    }
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: conv_bound [--batch N] [--size S] [--reps R] [--warmup W]\n"
               "                  [--modes fe,ft,full] [--dtypes f32,bf16] [--winograd]\n");
}

int main(int argc, char **argv)
{
    int batch = 32, size = 224, reps = 5, warmup = 2;
    const char *modes = "fe,ft,full", *dtypes = "f32,bf16";
    static const struct option longopts[] = {
        { "batch", required_argument, NULL, 'b' },  { "size", required_argument, NULL, 's' },
        { "reps", required_argument, NULL, 'r' },   { "warmup", required_argument, NULL, 'w' },
        { "modes", required_argument, NULL, 'm' },  { "dtypes", required_argument, NULL, 'd' },
        { "winograd", no_argument, NULL, 'W' },     { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int o;
    while ((o = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (o) {
        case 'b':
            batch = atoi(optarg);
            break;
        case 's':
            size = atoi(optarg);
            break;
        case 'r':
            reps = atoi(optarg);
            break;
        case 'w':
            warmup = atoi(optarg);
            break;
        case 'm':
            modes = optarg;
            break;
        case 'd':
            dtypes = optarg;
            break;
        case 'W':
            winograd = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc || batch < 1 || batch > 4096 || size < 32 || size > 1024 || reps < 1 ||
        reps > 1000 || warmup < 0 || warmup > 100) {
        fprintf(stderr, "conv_bound: --batch 1..4096, --size 32..1024, --reps 1..1000, "
                        "--warmup 0..100, no other arguments\n");
        return 2;
    }
    struct conv c[NCONV];
    resnet18(c, size);
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) != dnnl_success) {
        fprintf(stderr, "conv_bound: cannot create a oneDNN CPU engine\n");
        return 1;
    }
    const dnnl_version_t *v = dnnl_version();
    printf("{\"batch\": %d, \"size\": %d, \"threads\": %d, \"reps\": %d, \"warmup\": %d, "
           "\"onednn\": \"%d.%d.%d\", \"isa\": %d, \"results\": [",
           batch, size, omp_get_max_threads(), reps, warmup, v->major, v->minor, v->patch,
           (int)dnnl_get_effective_cpu_isa());
    static const struct {
        const char *name;
        dnnl_data_type_t dt;
    } types[2] = { { "f32", dnnl_f32 }, { "bf16", dnnl_bf16 } };
    int first = 1;
    double *t = malloc(sizeof *t * (size_t)reps);
    if (!t)
        return 1;
    for (int ti = 0; ti < 2; ti++) {
        if (!in_list(dtypes, types[ti].name))
            continue;
        struct prims *p = calloc(NCONV, sizeof *p);
        if (!p)
            return 1;
        char why[128] = "";
        int ok = 1;
        for (int i = 0; i < NCONV && ok; i++)
            ok = build(&c[i], batch, types[ti].dt, &p[i], why) == 0;
        for (int m = 0; m < NMODES; m++) {
            if (!in_list(modes, mode_names[m]))
                continue;
            printf("%s\n  {\"mode\": \"%s\", \"dtype\": \"%s\", ", first ? "" : ",", mode_names[m],
                   types[ti].name);
            first = 0;
            if (!ok) {
                printf("\"supported\": false, \"why\": \"%s\"}", why);
                continue;
            }
            for (int r = 0; r < warmup; r++)
                step(p, m);
            dnnl_stream_wait(stream);
            for (int r = 0; r < reps; r++) {
                double t0 = now();
                step(p, m);
                dnnl_stream_wait(stream);
                t[r] = now() - t0;
            }
            qsort(t, (size_t)reps, sizeof *t, cmp_double);
            double med = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
            double f = flops(c, batch, m);
            printf("\"supported\": true, \"step_ms\": %.3f, \"min_ms\": %.3f, "
                   "\"images_per_s\": %.3f, \"gflop\": %.3f, \"gflops\": %.1f, "
                   "\"impl\": \"%s\"}",
                   med * 1e3, t[0] * 1e3, batch / med, f / 1e9, f / med / 1e9, p[1].impl[0]);
            fflush(stdout);
        }
        /* the primitives and memories live until the process ends */
    }
    printf("\n], \"winograd\": %d}\n", n_winograd);
    free(t);
    return 0;
}
