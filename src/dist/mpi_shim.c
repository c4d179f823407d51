/*
 * mpi_shim.c: the MPI side of the communicator (dist.h), built apart from
 * the library as libonnxtrain_mpi.so against the system's <mpi.h> and
 * libmpi. dist.c loads it with dlopen only under an MPI launcher, so nothing
 * else in onnxtrain links MPI. Its interface is plain C with no MPI types:
 * the otm_* functions below, each returning 0 or an error whose text goes
 * into msg.
 *
 * Collectives are non-blocking MPI calls waited for with a deadline, so a
 * rank that never joins makes the others fail instead of hanging. A
 * heartbeat thread on a duplicate of MPI_COMM_WORLD sends a small message to
 * every other rank each second and notes when each rank was last heard of;
 * a rank silent for the time-out (dead, or stopped) is named, and the job
 * is ended with MPI_Abort. The heartbeat does not depend on the step time:
 * a rank busy with a long step still sends it.
 */
#include <mpi.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HB_TAG 7301

/* The entry points dist.c looks up with dlsym. */
int otm_init(int *rank, int *size, double timeout_s, char *msg, int len);
int otm_bcast(void *buf, size_t bytes, int root, char *msg, int len);
int otm_allreduce_sum(void *buf, size_t n, int is_double, char *msg, int len);
void otm_abort(int code);
void otm_finalize(void);

static int g_rank, g_size;
static MPI_Comm g_hb_comm = MPI_COMM_NULL;
static pthread_t g_hb_thread;
static atomic_int g_hb_run;
static int g_hb_started;
static double g_timeout = 30.0;
static double *g_last_seen; /* per rank, the heartbeat thread's own */
static atomic_int g_silent = -1;  /* a rank found silent, -1: none */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void nap(long ns)
{
    struct timespec ts = { 0, ns };
    nanosleep(&ts, NULL);
}

static void mpi_msg(int rc, const char *what, char *msg, int len)
{
    char text[MPI_MAX_ERROR_STRING];
    int n = 0;
    if (MPI_Error_string(rc, text, &n) != MPI_SUCCESS)
        snprintf(text, sizeof text, "error %d", rc);
    snprintf(msg, (size_t)len, "%s: %s", what, text);
}

static void *heartbeat(void *arg)
{
    (void)arg;
    char byte = 1, in;
    double t0 = now_s(), next = 0;
    for (int r = 0; r < g_size; r++)
        g_last_seen[r] = t0;
    while (atomic_load(&g_hb_run)) {
        double t = now_s();
        if (t >= next) {
            for (int r = 0; r < g_size; r++) {
                if (r == g_rank)
                    continue;
                MPI_Request rq;
                if (MPI_Isend(&byte, 1, MPI_CHAR, r, HB_TAG, g_hb_comm, &rq) == MPI_SUCCESS)
                    MPI_Request_free(&rq);
            }
            next = t + 1.0;
        }
        for (;;) {
            int flag = 0;
            MPI_Status s;
            if (MPI_Iprobe(MPI_ANY_SOURCE, HB_TAG, g_hb_comm, &flag, &s) != MPI_SUCCESS || !flag)
                break;
            MPI_Recv(&in, 1, MPI_CHAR, s.MPI_SOURCE, HB_TAG, g_hb_comm, MPI_STATUS_IGNORE);
            g_last_seen[s.MPI_SOURCE] = now_s();
        }
        t = now_s();
        for (int r = 0; r < g_size; r++)
            if (r != g_rank && t - g_last_seen[r] > g_timeout) {
                fprintf(stderr,
                        "onnxtrain: rank %d: rank %d sent no heartbeat for %.0f s (dead or "
                        "stopped; --rank-timeout): ending the job\n",
                        g_rank, r, g_timeout);
                fflush(stderr);
                atomic_store(&g_silent, r);
                MPI_Abort(MPI_COMM_WORLD, 1);
                return NULL;
            }
        nap(20 * 1000 * 1000);
    }
    return NULL;
}

int otm_init(int *rank, int *size, double timeout_s, char *msg, int len)
{
    int provided = 0, rc, inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided);
        if (rc != MPI_SUCCESS) {
            mpi_msg(rc, "MPI_Init_thread", msg, len);
            return 1;
        }
    } else {
        MPI_Query_thread(&provided);
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    *rank = g_rank;
    *size = g_size;
    if (timeout_s > 0)
        g_timeout = timeout_s;
    if (g_size > 1 && provided >= MPI_THREAD_MULTIPLE) {
        g_last_seen = calloc((size_t)g_size, sizeof *g_last_seen);
        if (!g_last_seen || MPI_Comm_dup(MPI_COMM_WORLD, &g_hb_comm) != MPI_SUCCESS) {
            snprintf(msg, (size_t)len, "out of memory for the heartbeat");
            return 1;
        }
        atomic_store(&g_hb_run, 1);
        if (pthread_create(&g_hb_thread, NULL, heartbeat, NULL) == 0)
            g_hb_started = 1;
    }
    return 0;
}

/* Waits for rq until the deadline. */
static int wait_for(MPI_Request *rq, const char *what, char *msg, int len)
{
    double t0 = now_s();
    long spins = 0;
    for (;;) {
        int flag = 0;
        int rc = MPI_Test(rq, &flag, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) {
            mpi_msg(rc, what, msg, len);
            return 1;
        }
        if (flag)
            return 0;
        if (++spins > 2000)
            nap(50 * 1000);
        if (now_s() - t0 > g_timeout + 5.0) {
            int s = atomic_load(&g_silent);
            if (s >= 0)
                snprintf(msg, (size_t)len, "%s: rank %d stopped answering", what, s);
            else
                snprintf(msg, (size_t)len,
                         "%s: the other ranks did not take part for %.0f s (one died or is "
                         "stopped)",
                         what, g_timeout + 5.0);
            return 1;
        }
    }
}

int otm_bcast(void *buf, size_t bytes, int root, char *msg, int len)
{
    char *p = buf;
    while (bytes) {
        int n = bytes > (1u << 30) ? 1 << 30 : (int)bytes;
        MPI_Request rq;
        int rc = MPI_Ibcast(p, n, MPI_BYTE, root, MPI_COMM_WORLD, &rq);
        if (rc != MPI_SUCCESS) {
            mpi_msg(rc, "MPI_Ibcast", msg, len);
            return 1;
        }
        if (wait_for(&rq, "broadcast", msg, len))
            return 1;
        p += n;
        bytes -= (size_t)n;
    }
    return 0;
}

/* is_double: 0 float, 1 double */
int otm_allreduce_sum(void *buf, size_t n, int is_double, char *msg, int len)
{
    size_t esz = is_double ? sizeof(double) : sizeof(float);
    char *p = buf;
    while (n) {
        int k = n > (1u << 28) ? 1 << 28 : (int)n;
        MPI_Request rq;
        int rc = MPI_Iallreduce(MPI_IN_PLACE, p, k, is_double ? MPI_DOUBLE : MPI_FLOAT, MPI_SUM,
                                MPI_COMM_WORLD, &rq);
        if (rc != MPI_SUCCESS) {
            mpi_msg(rc, "MPI_Iallreduce", msg, len);
            return 1;
        }
        if (wait_for(&rq, "all-reduce", msg, len))
            return 1;
        p += (size_t)k * esz;
        n -= (size_t)k;
    }
    return 0;
}

void otm_abort(int code)
{
    MPI_Abort(MPI_COMM_WORLD, code);
    _Exit(code);
}

void otm_finalize(void)
{
    if (g_hb_started) {
        atomic_store(&g_hb_run, 0);
        pthread_join(g_hb_thread, NULL);
        g_hb_started = 0;
    }
    /* every rank stops its heartbeat before the last ones are drained */
    MPI_Request rq;
    char msg[256];
    if (MPI_Ibarrier(MPI_COMM_WORLD, &rq) != MPI_SUCCESS || wait_for(&rq, "barrier", msg, 256))
        return; /* a rank is gone: leave without MPI_Finalize, which would wait for it */
    if (g_hb_comm != MPI_COMM_NULL) {
        for (;;) {
            int flag = 0;
            MPI_Status s;
            char in;
            if (MPI_Iprobe(MPI_ANY_SOURCE, HB_TAG, g_hb_comm, &flag, &s) != MPI_SUCCESS || !flag)
                break;
            MPI_Recv(&in, 1, MPI_CHAR, s.MPI_SOURCE, HB_TAG, g_hb_comm, MPI_STATUS_IGNORE);
        }
        MPI_Comm_free(&g_hb_comm);
    }
    free(g_last_seen);
    g_last_seen = NULL;
    MPI_Finalize();
}
