/*
 * bench_loader.c: throughput of the batch loader (src/data/loader.h) on an
 * image folder, for tests/bench/bench.py (`make bench`, workload "loader").
 *
 *   bench_loader FOLDER [--workers N] [--batch N] [--size S] [--epochs N]
 *                       [--augment] [--seed S]
 *
 * Opens FOLDER's train split, makes a loader (ImageNet normalisation, output
 * S x S, --workers background threads, 0: inline in next()), runs one
 * untimed epoch (page cache, the decoders' first allocations), then --epochs
 * timed epochs over a fresh shuffle each: start_epoch, next() until the end,
 * touching each batch as a consumer would (a checksum over it). Prints one
 * JSON line:
 *
 *   {"tool": "onnxtrain", "workers", "batch", "size", "augment", "images",
 *    "epochs", "epoch_s" [...], "median_s", "images_per_s" (images /
 *    median_s), "cpu_s" (process CPU time over the timed epochs),
 *    "peak_rss_bytes", "checksum"}
 *
 * Exit status 1 with a message on stderr on error, 2 on a usage error.
 * Built by tests/bench/run.sh against build/libonnxtrain.a and the internal
 * headers, like bench_infer.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "data/data.h"
#include "data/loader.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int usage(const char *msg)
{
    fprintf(stderr, "bench_loader: %s\nusage: bench_loader FOLDER [--workers N] [--batch N] "
            "[--size S] [--epochs N] [--augment] [--seed S]\n", msg);
    return 2;
}

/* One epoch: returns images seen, or -1 on error (message printed). */
static int64_t run_epoch(ot_data_loader *l, const int64_t *perm, int64_t n, int64_t epoch,
                         size_t image_floats, double *checksum)
{
    ot_err err;
    ot_err_init(&err);
    if (ot_data_loader_start_epoch(l, perm, n, epoch, &err) != OT_OK) {
        fprintf(stderr, "bench_loader: start_epoch: %s\n", err.msg);
        return -1;
    }
    int64_t seen = 0;
    for (;;) {
        float *x;
        int64_t *labels;
        int got;
        if (ot_data_loader_next(l, &x, &labels, &got, &err) != OT_OK) {
            fprintf(stderr, "bench_loader: next: %s\n", err.msg);
            return -1;
        }
        if (got == 0)
            break;
        /* read the batch as the training step would: one pass over it */
        double s = 0;
        size_t total = (size_t)got * image_floats;
        for (size_t i = 0; i < total; i += 61)
            s += (double)x[i];
        for (int i = 0; i < got; i++)
            s += (double)labels[i];
        *checksum += s;
        seen += got;
    }
    return seen;
}

int main(int argc, char **argv)
{
    const char *folder = NULL;
    long workers = 0, batch = 32, size = 224, epochs = 3;
    unsigned long long seed = 0;
    int augment = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long *dst = NULL;
        if (!strcmp(a, "--augment")) {
            augment = 1;
            continue;
        }
        if (!strcmp(a, "--workers"))
            dst = &workers;
        else if (!strcmp(a, "--batch"))
            dst = &batch;
        else if (!strcmp(a, "--size"))
            dst = &size;
        else if (!strcmp(a, "--epochs"))
            dst = &epochs;
        if (dst || !strcmp(a, "--seed")) {
            if (i + 1 >= argc)
                return usage("option needs a value");
            char *end;
            const char *v = argv[++i];
            if (dst) {
                *dst = strtol(v, &end, 10);
                if (*end || *dst < 0 || *dst > 65536)
                    return usage("bad number");
            } else {
                seed = strtoull(v, &end, 10);
                if (*end)
                    return usage("bad seed");
            }
        } else if (a[0] == '-') {
            return usage("unknown option");
        } else if (!folder) {
            folder = a;
        } else {
            return usage("one FOLDER");
        }
    }
    if (!folder)
        return usage("missing FOLDER");
    if (batch < 1 || size < 1 || epochs < 1 || workers > 256)
        return usage("--batch, --size, --epochs must be positive, --workers at most 256");

    ot_err err;
    ot_err_init(&err);
    ot_dataset *ds = NULL;
    ot_data_loader *l = NULL;
    int64_t *perm = NULL;
    double *times = NULL;
    int rc = 1;
    if (ot_data_open(folder, OT_DATA_TRAIN, &ds, &err) != OT_OK) {
        fprintf(stderr, "bench_loader: %s\n", err.msg);
        goto out;
    }
    int64_t n = ot_data_count(ds);
    int h, w, c;
    ot_data_shape(ds, &h, &w, &c);
    ot_data_transform t;
    ot_data_transform_init(&t, (int)size, OT_DATA_NORM_IMAGENET);
    ot_data_loader_opts lo = { .batch_size = (int)batch, .n_workers = (int)workers,
                               .augment = augment != 0, .seed = seed };
    if (ot_data_loader_new(ds, &t, &lo, &l, &err) != OT_OK) {
        fprintf(stderr, "bench_loader: %s\n", err.msg);
        goto out;
    }
    size_t image_floats = (size_t)ot_data_out_channels(&t, c) * (size_t)size * (size_t)size;
    perm = malloc((size_t)n * sizeof *perm);
    times = malloc((size_t)epochs * sizeof *times);
    if (!perm || !times) {
        fprintf(stderr, "bench_loader: out of memory\n");
        goto out;
    }
    double checksum = 0;
    ot_data_shuffle(n, seed, 0, perm);
    if (run_epoch(l, perm, n, 0, image_floats, &checksum) != n)
        goto out;
    checksum = 0;
    double cpu0 = cpu_s();
    for (long e = 0; e < epochs; e++) {
        ot_data_shuffle(n, seed, e + 1, perm);
        double t0 = now_s();
        int64_t seen = run_epoch(l, perm, n, e + 1, image_floats, &checksum);
        times[e] = now_s() - t0;
        if (seen != n) {
            if (seen >= 0)
                fprintf(stderr, "bench_loader: epoch gave %lld images of %lld\n",
                        (long long)seen, (long long)n);
            goto out;
        }
    }
    double cpu = cpu_s() - cpu0;
    printf("{\"tool\": \"onnxtrain\", \"workers\": %ld, \"batch\": %ld, \"size\": %ld, "
           "\"augment\": %s, \"images\": %lld, \"epochs\": %ld, \"epoch_s\": [",
           workers, batch, size, augment ? "true" : "false", (long long)n, epochs);
    for (long e = 0; e < epochs; e++)
        printf("%s%.6f", e ? ", " : "", times[e]);
    qsort(times, (size_t)epochs, sizeof *times, cmp_double);
    double med = epochs % 2 ? times[epochs / 2]
                            : 0.5 * (times[epochs / 2 - 1] + times[epochs / 2]);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("], \"median_s\": %.6f, \"images_per_s\": %.3f, \"cpu_s\": %.3f, "
           "\"peak_rss_bytes\": %lld, \"checksum\": %.6g}\n",
           med, (double)n / med, cpu, (long long)ru.ru_maxrss * 1024, checksum);
    rc = 0;
out:
    free(times);
    free(perm);
    ot_data_loader_free(l);
    ot_data_free(ds);
    return rc;
}
