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
 * a rank busy with a long step still sends it. Another library (NCCL) can
 * be watched from the same thread (otm_watch): its poll, about once a
 * second, can end the job too, and its abort runs before MPI_Abort.
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
int otm_grad_start(float *buf, size_t n, int *ticket, char *msg, int len);
int otm_grad_wait(int ticket, double *busy_s, char *msg, int len);
void otm_progress(void);
void otm_set_chunk(int floats);
void otm_abort(int code);
void otm_finalize(void);
void otm_watch(int (*poll)(void *, char *, int), void (*on_abort)(void *), void *arg);

static int g_rank, g_size;
static MPI_Comm g_hb_comm = MPI_COMM_NULL;
static pthread_t g_hb_thread;
static atomic_int g_hb_run;
static int g_hb_started;
static double g_timeout = 30.0;
static double *g_last_seen; /* per rank, the heartbeat thread's own */
static atomic_int g_silent = -1;  /* a rank found silent, -1: none */
/* otm_watch's: set before the heartbeat uses them, cleared under g_watch_mu */
static pthread_mutex_t g_watch_mu = PTHREAD_MUTEX_INITIALIZER;
static int (*g_watch_poll)(void *, char *, int);
static void (*g_watch_abort)(void *);
static void *g_watch_arg;

/*
 * Gradient all-reduces started ahead of their wait (otm_grad_start /
 * otm_grad_wait): MPI_Iallreduce on a communicator of their own (so that
 * other collectives issued meanwhile, synchronised BatchNorm's, cannot
 * interleave with them differently on different ranks). Open MPI moves a
 * non-blocking collective on only inside MPI calls: the executor's thread
 * calls otm_progress between the nodes of the step, and the heartbeat
 * thread makes an MPI call (a probe) about every millisecond while any is
 * pending, which moves them on within a long node (the requests
 * themselves are the executor's thread's: it never waits for the
 * heartbeat's).
 *
 * A bucket is reduced as consecutive chunks of at most g_chunk floats, each
 * an all-reduce of its own, all started at once: Open MPI's shared-memory
 * all-reduce of one message slows down tenfold past about 16 MB (257 MB/s
 * for 64 MB in one message, 2.4 GB/s as 1 MB messages, measured by
 * tests/bench/allreduce_bw.c), and a chunk's sum is the one the whole
 * message would give (element by element, the same algorithm), so the
 * chunking changes no bit. A ticket is a run of requests: a marker that
 * records their number, then one per chunk; tickets are handed out in
 * order and the table restarts whenever every ticket has been waited for
 * (once per step).
 */
static int g_chunk = (1 << 20) / 4; /* floats per request (1 MB; otm_set_chunk) */
typedef struct grad_req {
    atomic_int done; /* 1: complete, 2: the test failed */
    int rc;
    double t_start, t_done;
} grad_req;
static MPI_Comm g_grad_comm = MPI_COMM_NULL;
static pthread_mutex_t g_grad_mu = PTHREAD_MUTEX_INITIALIZER;
static grad_req *g_reqs;
static MPI_Request *g_rqs; /* g_reqs[i]'s request; MPI_REQUEST_NULL when done */
static int *g_idx;         /* MPI_Testsome's indices                          */
static int g_n_reqs, g_cap_reqs, g_n_waited;
static atomic_int g_pending; /* requests started, not yet complete */

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

/* MPI_Testsome on the pending gradient requests (one progress call for
   all), g_grad_mu held. */
static void test_grads(void)
{
    int lo = g_n_waited, n = g_n_reqs - lo, out = 0;
    if (n <= 0 || atomic_load(&g_pending) <= 0)
        return;
    int rc = MPI_Testsome(n, g_rqs + lo, &out, g_idx, MPI_STATUSES_IGNORE);
    double t = now_s();
    if (rc != MPI_SUCCESS) { /* every pending one fails */
        for (int i = lo; i < g_n_reqs; i++)
            if (!atomic_load(&g_reqs[i].done)) {
                g_reqs[i].rc = rc;
                g_reqs[i].t_done = t;
                atomic_store(&g_reqs[i].done, 2);
                atomic_fetch_sub(&g_pending, 1);
            }
        return;
    }
    if (out == MPI_UNDEFINED)
        return;
    for (int k = 0; k < out; k++) {
        grad_req *q = &g_reqs[lo + g_idx[k]];
        q->t_done = t;
        atomic_store(&q->done, 1);
        atomic_fetch_sub(&g_pending, 1);
    }
}

/* The size of the messages buckets are cut into, in floats (> 0). */
void otm_set_chunk(int floats)
{
    if (floats > 0)
        g_chunk = floats;
}

/* Between the nodes of a step (the executor's thread) and while waiting
   for a reduction: MPI_Testsome on the pending gradient requests, unless
   none is pending (never blocks). */
void otm_progress(void)
{
    if (atomic_load(&g_pending) <= 0 || pthread_mutex_trylock(&g_grad_mu) != 0)
        return;
    test_grads();
    pthread_mutex_unlock(&g_grad_mu);
}

void otm_watch(int (*poll)(void *, char *, int), void (*on_abort)(void *), void *arg)
{
    pthread_mutex_lock(&g_watch_mu);
    g_watch_poll = poll;
    g_watch_abort = poll ? on_abort : NULL;
    g_watch_arg = arg;
    pthread_mutex_unlock(&g_watch_mu);
}

/* The watched library's abort, then MPI_Abort. */
static void end_job(void)
{
    pthread_mutex_lock(&g_watch_mu);
    if (g_watch_abort)
        g_watch_abort(g_watch_arg);
    pthread_mutex_unlock(&g_watch_mu);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

/* The watched library's poll: non-zero ends the job. */
static int watch_failed(void)
{
    char msg[512] = "";
    int bad = 0;
    pthread_mutex_lock(&g_watch_mu);
    if (g_watch_poll)
        bad = g_watch_poll(g_watch_arg, msg, (int)sizeof msg);
    pthread_mutex_unlock(&g_watch_mu);
    if (!bad)
        return 0;
    char line[640];
    int n = snprintf(line, sizeof line, "onnxtrain: rank %d: %s: ending the job\n", g_rank, msg);
    fwrite(line, 1, n > 0 && (size_t)n < sizeof line ? (size_t)n : strlen(line), stderr);
    fflush(stderr);
    return 1;
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
            if (watch_failed()) {
                end_job();
                return NULL;
            }
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
                end_job();
                return NULL;
            }
        /* pending gradient reductions: any MPI call moves them on (Open
           MPI's progress is the process's), so probe about every
           millisecond while there are any; their requests stay the
           executor's thread's (otm_progress), which never waits for this
           one */
        int polls = 0;
        while (atomic_load(&g_pending) > 0 && polls++ < 20) {
            int flag = 0;
            MPI_Status s;
            if (MPI_Iprobe(MPI_ANY_SOURCE, HB_TAG, g_hb_comm, &flag, &s) != MPI_SUCCESS || flag)
                break;
            nap(1000 * 1000);
        }
        if (polls == 0)
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
        if (MPI_Comm_dup(MPI_COMM_WORLD, &g_grad_comm) != MPI_SUCCESS) {
            snprintf(msg, (size_t)len, "MPI_Comm_dup failed");
            return 1;
        }
        atomic_store(&g_hb_run, 1);
        if (pthread_create(&g_hb_thread, NULL, heartbeat, NULL) == 0)
            g_hb_started = 1;
    }
    return 0;
}

/* Whether a wait for `what` begun at t0 is past the deadline (the
   heartbeat's time-out and 5 s); if so msg names the silent rank, when the
   heartbeat knows one. */
static int timed_out(double t0, const char *what, char *msg, int len)
{
    if (now_s() - t0 <= g_timeout + 5.0)
        return 0;
    int s = atomic_load(&g_silent);
    if (s >= 0)
        snprintf(msg, (size_t)len, "%s: rank %d stopped answering", what, s);
    else
        snprintf(msg, (size_t)len,
                 "%s: the other ranks did not take part for %.0f s (one died or is stopped)",
                 what, g_timeout + 5.0);
    return 1;
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
        if (timed_out(t0, what, msg, len))
            return 1;
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

/* Starts the sum over the ranks of buf[0..n) in place; *ticket names it for
   otm_grad_wait. buf must stay untouched until then. */
int otm_grad_start(float *buf, size_t n, int *ticket, char *msg, int len)
{
    MPI_Comm comm = g_grad_comm != MPI_COMM_NULL ? g_grad_comm : MPI_COMM_WORLD;
    size_t chunk = (size_t)g_chunk;
    int chunks = (int)((n + chunk - 1) / chunk);
    if (chunks < 1)
        chunks = 1;
    pthread_mutex_lock(&g_grad_mu);
    if (g_n_waited == g_n_reqs)
        g_n_reqs = g_n_waited = 0; /* all waited for: the table restarts */
    if (g_n_reqs + chunks + 1 > g_cap_reqs) {
        int cap = (g_n_reqs + chunks + 1) * 2;
        grad_req *r = realloc(g_reqs, (size_t)cap * sizeof *r);
        if (r)
            g_reqs = r;
        MPI_Request *m = r ? realloc(g_rqs, (size_t)cap * sizeof *m) : NULL;
        if (m)
            g_rqs = m;
        int *x = m ? realloc(g_idx, (size_t)cap * sizeof *x) : NULL;
        if (!x) {
            pthread_mutex_unlock(&g_grad_mu);
            snprintf(msg, (size_t)len, "out of memory for the all-reduce requests");
            return 1;
        }
        g_idx = x;
        g_cap_reqs = cap;
    }
    int first = g_n_reqs;
    /* the marker: how many requests the ticket spans */
    g_reqs[first].rc = chunks;
    atomic_store(&g_reqs[first].done, 1);
    g_rqs[first] = MPI_REQUEST_NULL;
    g_n_reqs++;
    double t0 = now_s();
    for (int c = 0; c < chunks; c++) {
        size_t off = (size_t)c * chunk;
        int k = n - off > chunk ? (int)chunk : (int)(n - off);
        int i = g_n_reqs;
        grad_req *q = &g_reqs[i];
        q->t_start = t0;
        q->rc = MPI_SUCCESS;
        int rc = MPI_Iallreduce(MPI_IN_PLACE, buf + off, k, MPI_FLOAT, MPI_SUM, comm, &g_rqs[i]);
        if (rc != MPI_SUCCESS) {
            pthread_mutex_unlock(&g_grad_mu);
            mpi_msg(rc, "MPI_Iallreduce", msg, len);
            return 1;
        }
        atomic_store(&q->done, 0);
        atomic_fetch_add(&g_pending, 1);
        g_n_reqs++;
    }
    pthread_mutex_unlock(&g_grad_mu);
    *ticket = first;
    return 0;
}

/* Waits (until the deadline) for the reduction `ticket` names; *busy_s gets
   the seconds from its start to its completion. Tickets are waited for in
   the order they were started. */
int otm_grad_wait(int ticket, double *busy_s, char *msg, int len)
{
    pthread_mutex_lock(&g_grad_mu);
    int ok = ticket >= g_n_waited && ticket < g_n_reqs;
    int chunks = ok ? g_reqs[ticket].rc : 0;
    pthread_mutex_unlock(&g_grad_mu);
    if (!ok) {
        snprintf(msg, (size_t)len, "all-reduce: no such request %d", ticket);
        return 1;
    }
    double t0 = now_s();
    long spins = 0;
    for (;;) {
        int all = 1, failed = 0;
        pthread_mutex_lock(&g_grad_mu);
        for (int c = 1; c <= chunks; c++) {
            int d = atomic_load(&g_reqs[ticket + c].done);
            all &= d != 0;
            if (d == 2)
                failed = g_reqs[ticket + c].rc;
        }
        pthread_mutex_unlock(&g_grad_mu);
        if (failed) {
            mpi_msg(failed, "all-reduce", msg, len);
            return 1;
        }
        if (all)
            break;
        otm_progress();
        if (++spins > 200)
            nap(20 * 1000);
        if (timed_out(t0, "all-reduce", msg, len))
            return 1;
    }
    pthread_mutex_lock(&g_grad_mu);
    double busy = 0;
    for (int c = 1; c <= chunks; c++)
        if (g_reqs[ticket + c].t_done - g_reqs[ticket + c].t_start > busy)
            busy = g_reqs[ticket + c].t_done - g_reqs[ticket + c].t_start;
    if (ticket + chunks + 1 > g_n_waited)
        g_n_waited = ticket + chunks + 1;
    pthread_mutex_unlock(&g_grad_mu);
    if (busy_s)
        *busy_s = busy;
    return 0;
}

void otm_abort(int code)
{
    pthread_mutex_lock(&g_watch_mu);
    if (g_watch_abort)
        g_watch_abort(g_watch_arg);
    g_watch_poll = NULL;
    g_watch_abort = NULL;
    pthread_mutex_unlock(&g_watch_mu);
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
    if (g_grad_comm != MPI_COMM_NULL)
        MPI_Comm_free(&g_grad_comm);
    free(g_reqs);
    free(g_rqs);
    free(g_idx);
    g_reqs = NULL;
    g_rqs = NULL;
    g_idx = NULL;
    free(g_last_seen);
    g_last_seen = NULL;
    MPI_Finalize();
}
