/*
 * allreduce_bw.c: the all-reduce bandwidth of this MPI installation, as the
 * data-parallel trainer uses it (MPI_Iallreduce of floats, summed in place,
 * waited for). For sizes from 4 KB to 64 MB, prints one line per size:
 * "bytes seconds MB_per_s chunked_seconds chunked_MB_per_s", the best of
 * several calls after a warm-up (rank 0 prints); "chunked" sends the
 * buffer as consecutive all-reduces of at most CHUNK bytes (argv[1], default
 * 1 MB), as src/dist/mpi_shim.c does. Built and run by tests/bench/bench_dist.sh:
 *
 *   mpicc -O2 allreduce_bw.c -o allreduce_bw && mpirun -np 2 ./allreduce_bw
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    size_t chunk = argc > 1 ? (size_t)atol(argv[1]) : (size_t)1 << 20;
    if (chunk < 64)
        chunk = 64;
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    size_t most = (size_t)64 << 20;
    float *buf = malloc(most);
    if (!buf) {
        fprintf(stderr, "allreduce_bw: out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    for (size_t i = 0; i < most / sizeof *buf; i++)
        buf[i] = 1.0f;
    for (size_t bytes = 4096; bytes <= most; bytes *= 4) {
        int n = (int)(bytes / sizeof *buf);
        int reps = bytes <= (1u << 20) ? 50 : 5;
        double best[2] = { 1e30, 1e30 };
        for (int way = 0; way < 2; way++)
            for (int r = 0; r < reps + 1; r++) {
                int step = way ? (int)(chunk / sizeof *buf) : n;
                MPI_Barrier(MPI_COMM_WORLD);
                double t0 = MPI_Wtime();
                for (int at = 0; at < n; at += step) {
                    MPI_Request rq;
                    MPI_Iallreduce(MPI_IN_PLACE, buf + at, n - at < step ? n - at : step,
                                   MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &rq);
                    MPI_Wait(&rq, MPI_STATUS_IGNORE);
                }
                double t = MPI_Wtime() - t0;
                if (r > 0 && t < best[way]) /* the first call warms up */
                    best[way] = t;
            }
        if (rank == 0)
            printf("%zu %.6g %.1f %.6g %.1f\n", bytes, best[0], (double)bytes / best[0] / 1e6,
                   best[1], (double)bytes / best[1] / 1e6);
    }
    free(buf);
    MPI_Finalize();
    return 0;
}
