/*
 * nccl_standin.c: a stand-in for libnccl.so.2 that tests/cli/test_nccl.sh
 * builds, so that NCCL's communicator (src/dist/nccl.c) runs on a machine
 * without a GPU: the calls onnxtrain makes, on host buffers ("device"
 * buffers are host memory, streams must be NULL: the host's stand-in
 * queue), reduced through MPI (OpenMPI, already started by onnxtrain's MPI
 * shim) on a communicator of its own. Each call is done when it returns.
 *
 * Build variants: -DSTANDIN_NO_ABORT leaves out ncclCommAbort,
 * -DSTANDIN_OLD says it is NCCL 2.3.7.
 *
 * Environment: NCCL_STANDIN_LOG=FILE appends one line per call
 * ("rank R init N ID", "rank R allreduce f32 COUNT", "rank R abort", ...);
 * NCCL_STANDIN_FAIL_AFTER=K makes ncclCommGetAsyncError report a remote
 * error after K all-reduces on rank 1 (or rank 0 of one).
 */
#include <fcntl.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nccl.h>

struct ncclComm {
    int rank, size;
    MPI_Comm mc;
    long n_reduce;
    long fail_after;
    int failed;
};

static void say(int rank, const char *fmt, ...)
{
    const char *path = getenv("NCCL_STANDIN_LOG");
    if (!path || !*path)
        return;
    char line[512];
    int n = snprintf(line, sizeof line, "rank %d ", rank);
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd >= 0) {
        if (write(fd, line, (size_t)n) < 0)
            (void)0;
        close(fd);
    }
}

ncclResult_t ncclGetVersion(int *version)
{
#ifdef STANDIN_OLD
    *version = 2307;
#else
    *version = 22809;
#endif
    return ncclSuccess;
}

ncclResult_t ncclGetUniqueId(ncclUniqueId *id)
{
    memset(id, 0, sizeof *id);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(id->internal, sizeof id->internal, "standin-%ld-%ld-%ld", (long)getpid(),
             (long)ts.tv_sec, ts.tv_nsec);
    return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank)
{
    struct ncclComm *c = calloc(1, sizeof *c);
    if (!c)
        return ncclSystemError;
    c->rank = rank;
    c->size = nranks;
    c->mc = MPI_COMM_NULL;
    const char *fa = getenv("NCCL_STANDIN_FAIL_AFTER");
    c->fail_after = fa && *fa && rank == (nranks > 1 ? 1 : 0) ? atol(fa) : -1;
    if (nranks > 1) {
        int inited = 0, wr = -1, ws = 0;
        MPI_Initialized(&inited);
        if (!inited) {
            free(c);
            return ncclInvalidUsage;
        }
        MPI_Comm_rank(MPI_COMM_WORLD, &wr);
        MPI_Comm_size(MPI_COMM_WORLD, &ws);
        if (wr != rank || ws != nranks || MPI_Comm_dup(MPI_COMM_WORLD, &c->mc) != MPI_SUCCESS) {
            free(c);
            return ncclInvalidArgument;
        }
        /* every rank must hold rank 0's id */
        ncclUniqueId root = id;
        MPI_Bcast(&root, (int)sizeof root, MPI_BYTE, 0, c->mc);
        int same = memcmp(&root, &id, sizeof id) == 0, all = 0;
        MPI_Allreduce(&same, &all, 1, MPI_INT, MPI_LAND, c->mc);
        if (!all) {
            say(rank, "init refused: the ranks hold different ids");
            MPI_Comm_free(&c->mc);
            free(c);
            return ncclInvalidArgument;
        }
    }
    say(rank, "init %d %.40s", nranks, id.internal);
    *comm = c;
    return ncclSuccess;
}

static ncclResult_t reduce(const void *send, void *recv, size_t count, ncclDataType_t type,
                           ncclComm_t c, cudaStream_t stream, int root)
{
    if (stream != NULL || !c)
        return ncclInvalidArgument;
    if (type != ncclFloat32 && type != ncclFloat64 && type != ncclUint8)
        return ncclInvalidArgument;
    size_t es = type == ncclFloat64 ? 8 : type == ncclFloat32 ? 4 : 1;
    if (send != recv)
        memcpy(recv, send, count * es);
    if (c->size < 2)
        return ncclSuccess;
    MPI_Datatype dt = type == ncclFloat64 ? MPI_DOUBLE : type == ncclFloat32 ? MPI_FLOAT : MPI_BYTE;
    char *p = recv;
    while (count) {
        int k = count > (1u << 28) ? 1 << 28 : (int)count;
        int rc = root >= 0 ? MPI_Bcast(p, k, dt, root, c->mc)
                           : MPI_Allreduce(MPI_IN_PLACE, p, k, dt, MPI_SUM, c->mc);
        if (rc != MPI_SUCCESS)
            return ncclRemoteError;
        p += (size_t)k * es;
        count -= (size_t)k;
    }
    return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void *send, void *recv, size_t count, ncclDataType_t type,
                           ncclRedOp_t op, ncclComm_t c, cudaStream_t stream)
{
    if (op != ncclSum || type == ncclUint8)
        return ncclInvalidArgument;
    if (c) {
        c->n_reduce++;
        say(c->rank, "allreduce %s %zu", type == ncclFloat64 ? "f64" : "f32", count);
    }
    return reduce(send, recv, count, type, c, stream, -1);
}

ncclResult_t ncclBroadcast(const void *send, void *recv, size_t count, ncclDataType_t type,
                           int root, ncclComm_t c, cudaStream_t stream)
{
    if (c)
        say(c->rank, "broadcast %zu from %d", count, root);
    return reduce(send, recv, count, type, c, stream, root);
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t c, ncclResult_t *err)
{
    *err = ncclSuccess;
    if (c && c->fail_after >= 0 && c->n_reduce >= c->fail_after) {
        *err = ncclRemoteError;
        c->failed = 1;
    }
    return ncclSuccess;
}

#ifndef STANDIN_NO_ABORT
ncclResult_t ncclCommAbort(ncclComm_t c)
{
    if (c)
        say(c->rank, "abort");
    return ncclSuccess;
}
#endif

ncclResult_t ncclCommDestroy(ncclComm_t c)
{
    if (!c)
        return ncclInvalidArgument;
    say(c->rank, "destroy");
    if (c->mc != MPI_COMM_NULL)
        MPI_Comm_free(&c->mc);
    free(c);
    return ncclSuccess;
}

const char *ncclGetErrorString(ncclResult_t r)
{
    switch (r) {
    case ncclSuccess: return "no error";
    case ncclInvalidArgument: return "invalid argument";
    case ncclInvalidUsage: return "invalid usage";
    case ncclRemoteError: return "remote process exited or there was a network error";
    case ncclSystemError: return "unhandled system error";
    default: return "unknown result";
    }
}

const char *ncclGetLastError(ncclComm_t c)
{
    return c && c->failed ? "stand-in: a remote rank failed (NCCL_STANDIN_FAIL_AFTER)" : "";
}
