/*
 * bench_infer.c: steady-state inference throughput of onnxtrain's executor,
 * for tests/bench/bench.py (`make bench`, workload "infer").
 *
 *   bench_infer MODEL [--batch N] [--threads N] [--warmup N] [--runs N] [--seed S]
 *               [--device NAME] [--autotune] [--plan-cache DIR]
 *
 * Imports MODEL, binds its first graph input that is not an initializer to a
 * seeded random float tensor of its declared shape with dim 0 set to --batch
 * (uniform in [-1, 1)), compiles once for --device (default cpu, with
 * Winograd convolutions where `onnxtrain run` has them; cuda, cuda:N
 * for the GPU, with --autotune and --plan-cache as the CLI takes them), runs
 * --warmup untimed runs, then --runs timed runs (monotonic clock around each
 * ot_exec_run and the read of output 0, which on a GPU copies it back to the
 * host). Prints one JSON line:
 *
 *   {"tool": "onnxtrain", "device", "batch", "threads", "warmup", "runs",
 *    "import_s", "compile_s", "median_s", "min_s", "max_s",
 *    "images_per_s" (batch / median_s), "peak_rss_bytes" (ru_maxrss),
 *    "checksum" (sum of output 0 after the last run)}
 *
 * Exit status 1 with a message on stderr on error, 2 on a usage error.
 *
 * Built by tests/bench/run.sh and by `make build/bench/bench_infer` against
 * build/libonnxtrain.a and the internal headers (src/onnx/onnx.h,
 * src/exec/exec.h); tests/gpu/check.sh carries it to the GPU machine (the
 * benchmark's inference rows).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "exec/exec.h"
#include "onnx/onnx.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int usage(const char *msg)
{
    fprintf(stderr, "bench_infer: %s\nusage: bench_infer MODEL [--batch N] [--threads N] "
            "[--warmup N] [--runs N] [--seed S] [--device NAME] [--autotune] "
            "[--plan-cache DIR]\n", msg);
    return 2;
}

/* splitmix64: repeatable data for a given seed. */
static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int main(int argc, char **argv)
{
    const char *model = NULL, *device = "cpu", *plan_cache = NULL;
    long batch = 1, threads = 2, warmup = 2, runs = 5;
    unsigned long long seed = 0;
    bool autotune = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long *dst = NULL;
        const char **str = NULL;
        if (!strcmp(a, "--autotune")) {
            autotune = true;
            continue;
        }
        if (!strcmp(a, "--device"))
            str = &device;
        else if (!strcmp(a, "--plan-cache"))
            str = &plan_cache;
        if (str) {
            if (i + 1 >= argc || !argv[i + 1][0])
                return usage("option needs a value");
            *str = argv[++i];
            continue;
        }
        if (!strcmp(a, "--batch"))
            dst = &batch;
        else if (!strcmp(a, "--threads"))
            dst = &threads;
        else if (!strcmp(a, "--warmup"))
            dst = &warmup;
        else if (!strcmp(a, "--runs"))
            dst = &runs;
        if (dst || !strcmp(a, "--seed")) {
            if (i + 1 >= argc)
                return usage("option needs a value");
            char *end;
            const char *v = argv[++i];
            if (dst)
                *dst = strtol(v, &end, 10);
            else
                seed = strtoull(v, &end, 10);
            if (*v == '\0' || *end != '\0')
                return usage("bad option value");
        } else if (a[0] == '-') {
            return usage("unknown option");
        } else if (!model) {
            model = a;
        } else {
            return usage("more than one model");
        }
    }
    if (!model)
        return usage("no model");
    if (batch < 1 || threads < 0 || warmup < 0 || runs < 1)
        return usage("--batch and --runs must be at least 1, --threads and --warmup at least 0");

    ot_err err;
    ot_err_init(&err);
    ot_device dev;
    if (ot_device_parse(device, &dev, &err) == OT_ERR_ARG)
        return usage(err.msg);
    /* a device this build or this machine cannot use: one line, exit 1 */
    if (ot_device_check(&dev, &err) != OT_OK) {
        fprintf(stderr, "bench_infer: %s\n", err.msg);
        return 1;
    }
    ot_exec_plan_opts plans = { .autotune = autotune, .cache_dir = plan_cache };
    if (ot_exec_set_plan_opts(&plans, &err) != OT_OK) {
        fprintf(stderr, "bench_infer: %s\n", err.msg);
        return 1;
    }
    ot_graph *g = NULL;
    ot_exec *x = NULL;
    ot_tensor in = { 0 };
    double *times = NULL;
    int rc = 1;

    double t0 = now_s();
    if (ot_onnx_import_file(model, NULL, &g, &err) != OT_OK) {
        fprintf(stderr, "bench_infer: %s\n", err.msg);
        goto done;
    }
    double import_s = now_s() - t0;

    int32_t vid = -1;
    for (int i = 0; i < g->n_inputs; i++) {
        int32_t v = g->inputs[i].value;
        if (!(g->values[v].flags & OT_VAL_INIT)) {
            vid = v;
            break;
        }
    }
    if (vid < 0) {
        fprintf(stderr, "bench_infer: %s: no graph input to bind\n", model);
        goto done;
    }
    const ot_value *val = &g->values[vid];
    if (val->dtype != OT_DTYPE_FLOAT || val->ndim < 1) {
        fprintf(stderr, "bench_infer: %s: input '%s' is not a float tensor of rank >= 1\n",
                model, val->name);
        goto done;
    }
    in.dtype = OT_DTYPE_FLOAT;
    in.ndim = val->ndim;
    int64_t numel = 1;
    for (int d = 0; d < val->ndim; d++) {
        int64_t n = d == 0 ? batch : val->dims[d];
        if (n < 0) {
            fprintf(stderr, "bench_infer: %s: input '%s' has a dynamic dim %d\n", model,
                    val->name, d);
            goto done;
        }
        in.dims[d] = n;
        numel *= n;
    }
    in.bytes = (size_t)numel * sizeof(float);
    in.data = malloc(in.bytes ? in.bytes : 1);
    times = malloc(sizeof *times * (size_t)runs);
    if (!in.data || !times) {
        fprintf(stderr, "bench_infer: out of memory\n");
        goto done;
    }
    uint64_t s = seed;
    float *p = in.data;
    for (int64_t i = 0; i < numel; i++)
        p[i] = (float)((double)(next_u64(&s) >> 11) * 0x1.0p-53 * 2.0 - 1.0);

    ot_exec_input xin = { .value = vid, .tensor = in, .const_value = false };
    ot_exec_opts opts = { .device = dev, .cpu = { .threads = (int)threads, .winograd = true } };
    t0 = now_s();
    if (ot_exec_compile(g, &xin, 1, &opts, &x, &err) != OT_OK) {
        fprintf(stderr, "bench_infer: %s: %s\n", model, err.msg);
        goto done;
    }
    double compile_s = now_s() - t0;

    for (long i = 0; i < warmup + runs; i++) {
        t0 = now_s();
        if (ot_exec_run(x, &in, 1, &err) != OT_OK) {
            fprintf(stderr, "bench_infer: %s: %s\n", model, err.msg);
            goto done;
        }
        if (ot_exec_n_outputs(x) > 0 && !ot_exec_output(x, 0)) {
            fprintf(stderr, "bench_infer: %s: cannot read output 0\n", model);
            goto done;
        }
        double dt = now_s() - t0;
        if (i >= warmup)
            times[i - warmup] = dt;
    }

    double checksum = 0;
    const ot_tensor *out = ot_exec_n_outputs(x) > 0 ? ot_exec_output(x, 0) : NULL;
    if (out && out->dtype == OT_DTYPE_FLOAT) {
        const float *o = out->data;
        for (int64_t i = 0; i < ot_tensor_numel(out); i++)
            checksum += (double)o[i];
    }

    qsort(times, (size_t)runs, sizeof *times, cmp_double);
    double median = runs % 2 ? times[runs / 2] : 0.5 * (times[runs / 2 - 1] + times[runs / 2]);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    char dname[32];
    printf("{\"tool\": \"onnxtrain\", \"device\": \"%s\", \"batch\": %ld, \"threads\": %ld, "
           "\"warmup\": %ld, \"runs\": %ld, \"import_s\": %.6f, \"compile_s\": %.6f, "
           "\"median_s\": %.6f, \"min_s\": %.6f, \"max_s\": %.6f, \"images_per_s\": %.3f, "
           "\"peak_rss_bytes\": %lld, \"checksum\": %.6g}\n",
           ot_device_name(&dev, dname, sizeof dname), batch, threads, warmup, runs, import_s,
           compile_s, median, times[0], times[runs - 1], (double)batch / median,
           (long long)ru.ru_maxrss * 1024, checksum);
    rc = 0;

done:
    ot_exec_free(x);
    ot_graph_free(g);
    free(in.data);
    free(times);
    return rc;
}
