/*
 * dist.c: the current communicator (dist.h): detection of an MPI launch,
 * loading the MPI shim (mpi_shim.c) at run time, and the MPI ops over it;
 * the calls every communicator shares (NCCL's, src/dist/nccl.c, is made
 * current over the MPI one through dist_impl.h).
 */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dist/dist.h"
#include "dist/dist_impl.h"

#define SHIM_NAME "libonnxtrain_mpi.so"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int ot_dist_detect(const char **var)
{
    /* OpenMPI's mpirun; PMIx/PMI launchers (MPICH's hydra, srun --mpi=pmix);
       Slurm's srun: SLURM_NTASKS alone is set in an allocation (sbatch,
       salloc) too, so only with SLURM_STEP_ID and a SLURM_PROCID, inside a
       step that srun started */
    static const char *const vars[] = { "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE",
                                        "SLURM_STEP_NUM_TASKS" };
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (!v || !*v)
            continue;
        if (i == 3 && !getenv("SLURM_PROCID"))
            continue;
        char *end;
        long n = strtol(v, &end, 10);
        if (*end || n < 1 || n > INT_MAX)
            continue;
        if (var)
            *var = vars[i];
        return (int)n;
    }
    if (var)
        *var = NULL;
    return 1;
}

int ot_dist_local_rank(const char **var)
{
    static const char *const vars[] = { "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID",
                                        "SLURM_LOCALID" };
    if (var)
        *var = NULL;
    if (ot_dist_detect(NULL) <= 1)
        return -1;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (!v || !*v)
            continue;
        if (i == 2 && !getenv("SLURM_PROCID"))
            continue; /* an allocation's, not a task's */
        char *end;
        long n = strtol(v, &end, 10);
        if (*end || n < 0 || n > INT_MAX)
            continue;
        if (var)
            *var = vars[i];
        return (int)n;
    }
    return -1;
}

int ot_dist_local_device(int local, int count)
{
    if (local < 0)
        return 0;
    return count > 0 ? local % count : local;
}

/* The shim's entry points. */
typedef struct shim {
    void *dl;
    int (*init)(int *rank, int *size, double timeout_s, char *msg, int len);
    int (*bcast)(void *buf, size_t bytes, int root, char *msg, int len);
    int (*allreduce_sum)(void *buf, size_t n, int is_double, char *msg, int len);
    int (*grad_start)(float *buf, size_t n, int *ticket, char *msg, int len);
    int (*grad_wait)(int ticket, double *busy_s, char *msg, int len);
    void (*progress)(void);
    void (*set_chunk)(int floats);
    void (*abort)(int code);
    void (*finalize)(void);
    void (*watch)(int (*poll)(void *, char *, int), void (*on_abort)(void *), void *arg);
} shim;

static shim g_shim;
static ot_comm g_comm;
static ot_comm *g_current;

static ot_status mpi_bcast(ot_comm *c, void *buf, size_t bytes, int root, ot_err *err)
{
    char msg[256] = "";
    if (g_shim.bcast(buf, bytes, root, msg, (int)sizeof msg))
        return ot_err_set(err, OT_ERR_BACKEND, "rank %d: %s", c->rank, msg);
    return OT_OK;
}

static ot_status mpi_allreduce_f32(ot_comm *c, float *buf, size_t n, ot_err *err)
{
    char msg[256] = "";
    if (g_shim.allreduce_sum(buf, n, 0, msg, (int)sizeof msg))
        return ot_err_set(err, OT_ERR_BACKEND, "rank %d: %s", c->rank, msg);
    return OT_OK;
}

static ot_status mpi_allreduce_f64(ot_comm *c, double *buf, size_t n, ot_err *err)
{
    char msg[256] = "";
    if (g_shim.allreduce_sum(buf, n, 1, msg, (int)sizeof msg))
        return ot_err_set(err, OT_ERR_BACKEND, "rank %d: %s", c->rank, msg);
    return OT_OK;
}

static ot_status mpi_grad_start(ot_comm *c, float *buf, size_t n, int *ticket, ot_err *err)
{
    char msg[256] = "";
    if (g_shim.grad_start(buf, n, ticket, msg, (int)sizeof msg))
        return ot_err_set(err, OT_ERR_BACKEND, "rank %d: %s", c->rank, msg);
    return OT_OK;
}

static ot_status mpi_grad_wait(ot_comm *c, int ticket, double *busy_s, ot_err *err)
{
    char msg[256] = "";
    if (g_shim.grad_wait(ticket, busy_s, msg, (int)sizeof msg))
        return ot_err_set(err, OT_ERR_BACKEND, "rank %d: %s", c->rank, msg);
    return OT_OK;
}

static void mpi_progress(ot_comm *c)
{
    (void)c;
    g_shim.progress();
}

static void mpi_abort(ot_comm *c, int code)
{
    (void)c;
    g_shim.abort(code);
}

static void mpi_fini(ot_comm *c)
{
    (void)c;
    g_shim.finalize();
}

static const ot_comm_ops mpi_ops = {
    .name = "mpi",
    .bcast = mpi_bcast,
    .allreduce_f32 = mpi_allreduce_f32,
    .allreduce_f64 = mpi_allreduce_f64,
    .grad_start = mpi_grad_start,
    .grad_wait = mpi_grad_wait,
    .progress = mpi_progress,
    .abort = mpi_abort,
    .fini = mpi_fini,
};

/* dlopen's the shim: $ONNXTRAIN_MPI_LIB, else beside the executable, else
   in ../lib/onnxtrain (installed), else the loader's search path. */
static void *open_shim(char *why, size_t size)
{
    const char *env = getenv("ONNXTRAIN_MPI_LIB");
    if (env && *env) {
        void *dl = dlopen(env, RTLD_NOW | RTLD_LOCAL);
        if (!dl)
            snprintf(why, size, "%s", dlerror());
        return dl;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            char path[PATH_MAX + 64];
            const char *rel[] = { "/" SHIM_NAME, "/../lib/onnxtrain/" SHIM_NAME };
            for (int i = 0; i < 2; i++) {
                snprintf(path, sizeof path, "%s%s", exe, rel[i]);
                if (access(path, F_OK) != 0)
                    continue;
                void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
                if (!dl)
                    snprintf(why, size, "%s", dlerror());
                return dl;
            }
        }
    }
    void *dl = dlopen(SHIM_NAME, RTLD_NOW | RTLD_LOCAL);
    if (!dl)
        snprintf(why, size, "%s", dlerror());
    return dl;
}

ot_status ot_dist_init(ot_dist_mode mode, double timeout_s, ot_err *err)
{
    const char *var;
    int n = ot_dist_detect(&var);
    if (mode == OT_DIST_OFF || n <= 1 || g_current)
        return OT_OK;
    char why[512] = "";
    void *dl = open_shim(why, sizeof why);
    if (!dl)
        return ot_err_set(err, OT_ERR_UNSUPPORTED,
                          "started by an MPI launcher (%s=%d) but the MPI library cannot be "
                          "loaded: %s (install OpenMPI, or --distributed off runs one process)",
                          var, n, why);
    shim s = { .dl = dl };
    *(void **)&s.init = dlsym(dl, "otm_init");
    *(void **)&s.bcast = dlsym(dl, "otm_bcast");
    *(void **)&s.allreduce_sum = dlsym(dl, "otm_allreduce_sum");
    *(void **)&s.grad_start = dlsym(dl, "otm_grad_start");
    *(void **)&s.grad_wait = dlsym(dl, "otm_grad_wait");
    *(void **)&s.progress = dlsym(dl, "otm_progress");
    *(void **)&s.set_chunk = dlsym(dl, "otm_set_chunk");
    *(void **)&s.abort = dlsym(dl, "otm_abort");
    *(void **)&s.finalize = dlsym(dl, "otm_finalize");
    *(void **)&s.watch = dlsym(dl, "otm_watch");
    if (!s.init || !s.bcast || !s.allreduce_sum || !s.grad_start || !s.grad_wait ||
        !s.progress || !s.set_chunk || !s.abort || !s.finalize || !s.watch) {
        dlclose(dl);
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s lacks the otm_* entry points", SHIM_NAME);
    }
    if (timeout_s <= 0)
        timeout_s = 30;
    /* the messages the gradients' buckets are cut into (docs/distributed.md) */
    const char *ck = getenv("ONNXTRAIN_ALLREDUCE_CHUNK_KB");
    if (ck && *ck) {
        char *end;
        long kb = strtol(ck, &end, 10);
        if (*end || kb < 1 || kb > (1L << 20)) {
            dlclose(dl);
            return ot_err_set(err, OT_ERR_ARG,
                              "ONNXTRAIN_ALLREDUCE_CHUNK_KB: expected 1 to 1048576 (KB), got '%s'",
                              ck);
        }
        s.set_chunk((int)(kb * 256));
    }
    char msg[256] = "";
    int rank = 0, size = 1;
    if (s.init(&rank, &size, timeout_s, msg, (int)sizeof msg)) {
        dlclose(dl);
        return ot_err_set(err, OT_ERR_BACKEND, "MPI: %s", msg);
    }
    g_shim = s;
    g_comm = (ot_comm){ .rank = rank, .size = size, .ops = &mpi_ops, .timeout_s = timeout_s,
                        .grad_weight = 1.0f };
    g_current = &g_comm;
    return OT_OK;
}

ot_comm *ot_dist_current(void)
{
    return g_current;
}

void ot_dist_set_current(ot_comm *c)
{
    g_current = c;
}

void ot_dist_watch(int (*poll)(void *arg, char *msg, int len), void (*on_abort)(void *arg),
                   void *arg)
{
    if (g_shim.watch)
        g_shim.watch(poll, on_abort, arg);
}

/* The communicator's buffers, in its queue's memory when it has one. */
static void stage_free(ot_comm *c, void *p)
{
    if (!p)
        return;
    if (c->queue)
        c->queue->mem_free(p);
    else
        ot_free(p);
}

static void *stage_alloc(ot_comm *c, size_t bytes)
{
    if (!c->queue)
        return ot_malloc(bytes);
    void *p = NULL;
    ot_err e;
    ot_err_init(&e);
    return c->queue->mem_alloc(bytes, &p, &e) == OT_OK ? p : NULL;
}

int ot_dist_rank(void)
{
    return g_current ? g_current->rank : 0;
}

void ot_dist_fini(void)
{
    ot_comm *c = g_current;
    if (!c)
        return;
    stage_free(c, c->stage);
    stage_free(c, c->dstage);
    c->stage = NULL;
    c->dstage = NULL;
    c->stage_n = c->dstage_n = 0;
    c->ops->fini(c); /* NCCL's ends the MPI communicator under it too */
    g_current = NULL;
    /* the shim stays loaded: MPI's own libraries may still run exit handlers */
}

void ot_dist_abort(int code)
{
    if (g_current)
        g_current->ops->abort(g_current, code);
    exit(code);
}

ot_status ot_comm_allreduce_f32(ot_comm *c, float *buf, size_t n, ot_err *err)
{
    double t0 = now_s();
    ot_status st = c->ops->allreduce_f32(c, buf, n, err);
    c->reduce_s += now_s() - t0;
    c->reduce_bytes += n * sizeof *buf;
    return st;
}

ot_status ot_comm_allreduce_f64(ot_comm *c, double *buf, size_t n, ot_err *err)
{
    double t0 = now_s();
    ot_status st = c->ops->allreduce_f64(c, buf, n, err);
    c->reduce_s += now_s() - t0;
    c->reduce_bytes += n * sizeof *buf;
    return st;
}

/* -vv's timeline of the gradients' reductions, by ticket: when each
   started (c->step_t0's clock) and how long the call took (it may move
   earlier reductions on) */
#define TRACE_TICKETS 256
static double g_trace_start[TRACE_TICKETS], g_trace_call[TRACE_TICKETS];

ot_status ot_comm_grad_start(ot_comm *c, float *buf, size_t n, int *ticket, ot_err *err)
{
    double t0 = now_s();
    ot_status st = c->ops->grad_start(c, buf, n, ticket, err);
    double t1 = now_s();
    c->reduce_s += t1 - t0;
    c->reduce_bytes += n * sizeof *buf;
    if (st == OT_OK && *ticket >= 0 && *ticket < TRACE_TICKETS) {
        g_trace_start[*ticket] = t0;
        g_trace_call[*ticket] = t1 - t0;
    }
    return st;
}

ot_status ot_comm_grad_wait(ot_comm *c, int ticket, ot_err *err)
{
    double t0 = now_s(), busy = 0;
    ot_status st = c->ops->grad_wait(c, ticket, &busy, err);
    double t1 = now_s();
    c->reduce_s += t1 - t0;
    c->grad_wait_s += t1 - t0;
    c->grad_busy_s += busy;
    if (st == OT_OK && ot_log_enabled(OT_LOG_DEBUG) && ticket >= 0 && ticket < TRACE_TICKETS) {
        double s = g_trace_start[ticket] - c->step_t0;
        ot_log(OT_LOG_DEBUG,
               "gradients' all-reduce %d: started at %.1f ms of the step (the call took "
               "%.1f ms), done at %.1f ms, waited for from %.1f to %.1f ms",
               ticket, 1e3 * s, 1e3 * g_trace_call[ticket], 1e3 * (s + busy),
               1e3 * (t0 - c->step_t0), 1e3 * (t1 - c->step_t0));
    }
    return st;
}

ot_status ot_comm_dev_allreduce(ot_comm *c, void *buf, size_t n, bool f64, void *queue,
                                ot_err *err)
{
    if (!c->dev)
        return ot_err_set(err, OT_ERR_INTERNAL, "device all-reduce on a host communicator");
    c->reduce_bytes += n * (f64 ? sizeof(double) : sizeof(float));
    return c->dev->allreduce(c, buf, n, f64, queue, err);
}

ot_status ot_comm_dev_grad_start(ot_comm *c, float *buf, size_t n, int64_t key, void *queue,
                                 ot_err *err)
{
    if (!c->dev)
        return ot_err_set(err, OT_ERR_INTERNAL, "device all-reduce on a host communicator");
    c->reduce_bytes += n * sizeof *buf;
    return c->dev->grad_start(c, buf, n, key, queue, err);
}

ot_status ot_comm_dev_grad_wait(ot_comm *c, int64_t key, void *queue, ot_err *err)
{
    if (!c->dev)
        return ot_err_set(err, OT_ERR_INTERNAL, "device all-reduce on a host communicator");
    return c->dev->grad_wait(c, key, queue, err);
}

ot_status ot_comm_dev_bcast(ot_comm *c, void *buf, size_t bytes, int root, void *queue,
                            ot_err *err)
{
    if (!c->dev)
        return ot_err_set(err, OT_ERR_INTERNAL, "device broadcast on a host communicator");
    return c->dev->bcast(c, buf, bytes, root, queue, err);
}

#if !OT_NCCL
bool ot_dist_nccl_built(void)
{
    return false;
}

const ot_dist_queue *ot_dist_host_queue(void)
{
    return NULL;
}

const ot_dist_queue *ot_dist_cuda_queue(void)
{
    return NULL;
}

ot_status ot_dist_nccl_init(int device, const ot_dist_queue *queue, int *device_out, bool *quiet,
                            ot_err *err)
{
    (void)device, (void)queue;
    *device_out = -1;
    *quiet = ot_dist_rank() != 0;
    return ot_err_set(err, OT_ERR_UNSUPPORTED,
                      "NCCL: this build has no CUDA backend (build with the CUDA toolkit and "
                      "its nccl.h)");
}
#endif

int64_t ot_dist_share(int64_t total, int rank, int size, int64_t *offset)
{
    int64_t q = total / size, rem = total % size;
    if (offset)
        *offset = q * rank + (rank < rem ? rank : rem);
    return q + (rank < rem ? 1 : 0);
}

ot_status ot_dist_reserve(ot_comm *c, size_t n, size_t nd, ot_err *err)
{
    if (n > c->stage_n) {
        float *p = stage_alloc(c, n * sizeof *p);
        if (!p)
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory for the all-reduce buffer");
        stage_free(c, c->stage);
        c->stage = p;
        c->stage_n = n;
    }
    if (nd > c->dstage_n) {
        double *p = stage_alloc(c, nd * sizeof *p);
        if (!p)
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory for the all-reduce buffer");
        stage_free(c, c->dstage);
        c->dstage = p;
        c->dstage_n = nd;
    }
    return OT_OK;
}
