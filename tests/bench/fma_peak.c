/*
 * fma_peak.c: a measured fp32 FMA ceiling for tests/bench/bench.py, the
 * denominator of "% of peak" in the inference table.
 *
 *   fma_peak [--threads N] [--seconds S]
 *
 * Each of N OpenMP threads runs independent chains of vector fused
 * multiply-adds on registers (ACC accumulators, enough to hide the FMA
 * latency on two ports), with no memory traffic. The vector width is the
 * widest the compiler was told to use: 64 bytes when built with -mavx512f,
 * else 32 (-mavx2 -mfma), else 16. Build it, e.g.
 *
 *   cc -O2 -fopenmp -mfma -mavx2 tests/bench/fma_peak.c -o fma_peak_avx2
 *   cc -O2 -fopenmp -mfma -mavx2 -mavx512f tests/bench/fma_peak.c -o fma_peak_avx512
 *
 * The kernel repeats until S seconds (default 0.5) have passed and is timed
 * three times; the best rate is printed as one JSON line:
 *
 *   {"isa", "vector_bytes", "threads", "gflops", "gflops_per_thread", "check"}
 *
 * One FMA counts as 2 flops per lane.
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__AVX512F__)
#define VEC_BYTES 64
#define ISA "avx512"
#define ACC 16
#elif defined(__AVX2__) && defined(__FMA__)
#define VEC_BYTES 32
#define ISA "avx2+fma"
#define ACC 12
#else
#define VEC_BYTES 16
#define ISA "sse/native"
#define ACC 12
#endif

#define LANES (VEC_BYTES / 4)
#define INNER 1024

typedef float vec __attribute__((vector_size(VEC_BYTES)));

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Runs `iters` blocks of INNER x ACC vector FMAs; returns a sum that depends
   on every chain, so nothing is optimised away. */
__attribute__((noinline)) static float kernel(long iters, float seed)
{
    vec acc[ACC];
    vec m, c;
    for (int l = 0; l < LANES; l++) {
        m[l] = 0.999999f;
        c[l] = 1e-7f * seed;
    }
    for (int k = 0; k < ACC; k++)
        for (int l = 0; l < LANES; l++)
            acc[k][l] = seed + (float)(k * LANES + l) * 1e-3f;
    for (long it = 0; it < iters; it++) {
        for (int j = 0; j < INNER; j++) {
            /* keep m and c opaque so the chains are not folded */
            __asm__ volatile("" : "+x"(m), "+x"(c));
#pragma GCC unroll 16
            for (int k = 0; k < ACC; k++)
                acc[k] = acc[k] * m + c; /* contracted to one FMA (GNU C default) */
        }
    }
    vec s = acc[0];
    for (int k = 1; k < ACC; k++)
        s += acc[k];
    float r = 0;
    for (int l = 0; l < LANES; l++)
        r += s[l];
    return r;
}

int main(int argc, char **argv)
{
    int threads = 2;
    double seconds = 0.5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: fma_peak [--threads N] [--seconds S]\n");
            return 2;
        }
    }
    if (threads < 1 || seconds <= 0) {
        fprintf(stderr, "fma_peak: --threads must be >= 1 and --seconds > 0\n");
        return 2;
    }
    omp_set_num_threads(threads);

    /* Calibrate on one thread: blocks per second. */
    long iters = 16;
    for (;;) {
        double t0 = now_s();
        volatile float sink = kernel(iters, 1.0f);
        (void)sink;
        double dt = now_s() - t0;
        if (dt > 0.05 || iters > (1L << 40)) {
            iters = (long)((double)iters * seconds / dt) + 1;
            break;
        }
        iters *= 4;
    }

    double best = 0, check = 0;
    for (int rep = 0; rep < 3; rep++) {
        double sum = 0;
        double t0 = now_s();
#pragma omp parallel num_threads(threads) reduction(+ : sum)
        sum += kernel(iters, 1.0f + (float)omp_get_thread_num());
        double dt = now_s() - t0;
        double flops = 2.0 * LANES * ACC * (double)INNER * (double)iters * threads;
        if (flops / dt > best)
            best = flops / dt;
        check = sum;
    }
    printf("{\"isa\": \"%s\", \"vector_bytes\": %d, \"threads\": %d, \"gflops\": %.2f, "
           "\"gflops_per_thread\": %.2f, \"check\": %.6g}\n",
           ISA, VEC_BYTES, threads, best / 1e9, best / 1e9 / threads, check);
    return 0;
}
