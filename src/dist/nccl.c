/*
 * nccl.c: NCCL's communicator (dist.h, docs/distributed.md): libnccl.so.2
 * loaded at run time, its unique id exchanged over the MPI communicator,
 * one GPU per rank, and the reductions of the executor's buffers on a
 * stream of its own, ordered after the executor's work with events
 * (ot_dist_queue). Host buffers (the trainer's loss sums, fingerprints,
 * the state's broadcast through host copies) stay on MPI: the host ops
 * below hand them to the MPI communicator, or do nothing for one rank
 * alone. The MPI heartbeat polls ncclCommGetAsyncError and the reductions
 * in flight, and a dead, stopped or stuck rank ends the job through
 * ncclCommAbort, then MPI_Abort.
 *
 * Built with the CUDA backend (the Makefile's NCCL); nccl.h gives the
 * types and constants, the library itself is never linked.
 */
#include <dlfcn.h>
#include <glob.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nccl.h>

#include "dist/dist.h"
#include "dist/dist_impl.h"

/* returns the failure of a call that returns ot_status */
#define TRY_RET(call)                                                                           \
    do {                                                                                        \
        ot_status s_ = (call);                                                                  \
        if (s_ != OT_OK)                                                                        \
            return s_;                                                                          \
    } while (0)

#define NCCL_SONAME "libnccl.so.2"
#define NCCL_PATH_MAX (PATH_MAX + 64)
/* ncclCommAbort and ncclCommGetAsyncError exist since 2.4; 2.9 is the
   oldest release whose version code and behaviour the loader was checked
   against */
#define NCCL_MIN_CODE 20900
#define NCCL_MIN_TEXT "2.9"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------ the library */

typedef struct nccl_api {
    void *dl;
    char path[NCCL_PATH_MAX];
    int version;
    ncclResult_t (*get_version)(int *version);
    ncclResult_t (*get_unique_id)(ncclUniqueId *id);
    ncclResult_t (*comm_init_rank)(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank);
    ncclResult_t (*all_reduce)(const void *send, void *recv, size_t count, ncclDataType_t type,
                               ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream);
    ncclResult_t (*broadcast)(const void *send, void *recv, size_t count, ncclDataType_t type,
                              int root, ncclComm_t comm, cudaStream_t stream);
    ncclResult_t (*get_async_error)(ncclComm_t comm, ncclResult_t *async_error);
    ncclResult_t (*comm_abort)(ncclComm_t comm);
    ncclResult_t (*comm_destroy)(ncclComm_t comm);
    const char *(*error_string)(ncclResult_t r);
    const char *(*last_error)(ncclComm_t comm); /* optional (2.13) */
} nccl_api;

/* dlopen's one candidate; on failure appends dlerror's text to why. */
static void *try_open(const char *path, char *why, size_t size)
{
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        const char *e = dlerror();
        size_t at = strlen(why);
        if (at + 8 < size)
            snprintf(why + at, size - at, "%s%s", at ? "; " : "", e ? e : path);
    }
    return dl;
}

/* The first of a glob's matches that opens. */
static void *open_glob(const char *pattern, char *path, size_t psize, char *why, size_t size)
{
    glob_t g;
    void *dl = NULL;
    if (glob(pattern, 0, NULL, &g) != 0)
        return NULL;
    for (size_t i = 0; i < g.gl_pathc && !dl; i++)
        if ((dl = try_open(g.gl_pathv[i], why, size)))
            snprintf(path, psize, "%s", g.gl_pathv[i]);
    globfree(&g);
    return dl;
}

/*
 * libnccl.so.2 from: $ONNXTRAIN_NCCL_LIB alone when set; else beside the
 * executable; the loader's search path (LD_LIBRARY_PATH, the cache);
 * the CUDA toolkit ($CUDA_HOME, /usr/local/cuda); PyTorch's wheels
 * (nvidia/nccl/lib under a site-packages or dist-packages folder of
 * $VIRTUAL_ENV, $CONDA_PREFIX, ~/.local, /usr/local or /usr).
 */
static void *open_nccl(char *path, size_t psize, char *why, size_t size)
{
    const char *env = getenv("ONNXTRAIN_NCCL_LIB");
    if (env && *env) {
        snprintf(path, psize, "%s", env);
        return try_open(env, why, size);
    }
    char exe[PATH_MAX], cand[NCCL_PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            snprintf(cand, sizeof cand, "%s/" NCCL_SONAME, exe);
            if (access(cand, F_OK) == 0) {
                snprintf(path, psize, "%s", cand);
                return try_open(cand, why, size);
            }
        }
    }
    void *dl = dlopen(NCCL_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (dl) {
        snprintf(path, psize, "%s", NCCL_SONAME);
        return dl;
    }
    const char *dirs[] = { getenv("CUDA_HOME"), "/usr/local/cuda" };
    for (int i = 0; i < 2; i++) {
        if (!dirs[i] || !*dirs[i])
            continue;
        snprintf(cand, sizeof cand, "%s/lib64/" NCCL_SONAME, dirs[i]);
        if (access(cand, F_OK) == 0) {
            snprintf(path, psize, "%s", cand);
            return try_open(cand, why, size);
        }
    }
    const char *home = getenv("HOME");
    const char *roots[] = { getenv("VIRTUAL_ENV"), getenv("CONDA_PREFIX"), home, "/usr/local",
                            "/usr" };
    for (int i = 0; i < 5; i++) {
        if (!roots[i] || !*roots[i])
            continue;
        const char *forms[] = { "lib/python3*/site-packages", "lib/python3*/dist-packages",
                                "lib/python3/dist-packages", ".local/lib/python3*/site-packages" };
        for (int f = 0; f < 4; f++) {
            if ((f == 3) != (roots[i] == home))
                continue;
            snprintf(cand, sizeof cand, "%s/%s/nvidia/nccl/lib/" NCCL_SONAME, roots[i], forms[f]);
            if ((dl = open_glob(cand, path, psize, why, size)))
                return dl;
        }
    }
    if (!why[0])
        snprintf(why, size, "not found");
    return NULL;
}

static void version_text(int code, char *buf, size_t size)
{
    if (code >= 10000)
        snprintf(buf, size, "%d.%d.%d", code / 10000, code / 100 % 100, code % 100);
    else
        snprintf(buf, size, "%d.%d.%d", code / 1000, code / 100 % 10, code % 100);
}

static ot_status load_api(nccl_api *a, ot_err *err)
{
    char why[1024] = "";
    memset(a, 0, sizeof *a);
    a->dl = open_nccl(a->path, sizeof a->path, why, sizeof why);
    if (!a->dl)
        return ot_err_set(err, OT_ERR_UNSUPPORTED,
                          "NCCL: cannot load " NCCL_SONAME
                          " (looked in $ONNXTRAIN_NCCL_LIB, beside onnxtrain, the loader's path, "
                          "the CUDA toolkit and PyTorch's nvidia/nccl/lib): %s; install NCCL "
                          NCCL_MIN_TEXT " or newer, or set ONNXTRAIN_NCCL_LIB",
                          why);
    struct {
        void **fn;
        const char *name;
    } syms[] = {
        { (void **)&a->get_version, "ncclGetVersion" },
        { (void **)&a->get_unique_id, "ncclGetUniqueId" },
        { (void **)&a->comm_init_rank, "ncclCommInitRank" },
        { (void **)&a->all_reduce, "ncclAllReduce" },
        { (void **)&a->broadcast, "ncclBroadcast" },
        { (void **)&a->get_async_error, "ncclCommGetAsyncError" },
        { (void **)&a->comm_abort, "ncclCommAbort" },
        { (void **)&a->comm_destroy, "ncclCommDestroy" },
        { (void **)&a->error_string, "ncclGetErrorString" },
    };
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++)
        if (!(*syms[i].fn = dlsym(a->dl, syms[i].name))) {
            dlclose(a->dl);
            a->dl = NULL;
            return ot_err_set(err, OT_ERR_UNSUPPORTED,
                              "NCCL: %s lacks %s (NCCL " NCCL_MIN_TEXT " or newer is needed)",
                              a->path, syms[i].name);
        }
    *(void **)&a->last_error = dlsym(a->dl, "ncclGetLastError");
    ncclResult_t r = a->get_version(&a->version);
    char have[32];
    version_text(a->version, have, sizeof have);
    if (r != ncclSuccess || a->version < NCCL_MIN_CODE) {
        dlclose(a->dl);
        a->dl = NULL;
        return ot_err_set(err, OT_ERR_UNSUPPORTED,
                          "NCCL: %s is NCCL %s; " NCCL_MIN_TEXT " or newer is needed", a->path,
                          r == ncclSuccess ? have : "of unknown version");
    }
    return OT_OK;
}

/* ------------------------------------------------------------ the communicator */

/* A bucket's reduction: started (ready recorded on the executor's queue,
   the all-reduce enqueued on the communicator's stream after it, done
   recorded there), then waited for (the executor's queue waits for done). */
typedef struct bucket_slot {
    int64_t key;
    void *ready, *done;
    bool started;        /* not yet waited for                              */
    double t_start;
} bucket_slot;

typedef struct nccl_comm {
    ot_comm base;        /* current: rank, size, ops, dev, queue              */
    ot_comm *host;       /* the MPI communicator; NULL for one rank alone    */
    nccl_api api;
    ncclComm_t nc;
    const ot_dist_queue *q;
    void *stream;        /* the reductions' own stream                       */
    void *ev_in, *ev_out; /* a blocking reduction's two markers               */
    pthread_mutex_t mu;  /* slots, against the heartbeat's poll              */
    bucket_slot *slots;
    int n_slots, cap_slots;
    double timeout_s;
    atomic_int aborted;
} nccl_comm;

static nccl_comm g_nccl;

static const char *nccl_text(nccl_comm *n, ncclResult_t r)
{
    const char *last = n->api.last_error && n->nc ? n->api.last_error(n->nc) : NULL;
    return last && *last ? last : n->api.error_string(r);
}

#define NC(call, what)                                                                          \
    do {                                                                                        \
        ncclResult_t r_ = (call);                                                               \
        if (r_ != ncclSuccess)                                                                  \
            return ot_err_set(err, OT_ERR_BACKEND, "NCCL: %s: %s", what, nccl_text(n, r_));     \
    } while (0)

/* host buffers: over MPI, or nothing to do for one rank */
static ot_status h_bcast(ot_comm *c, void *buf, size_t bytes, int root, ot_err *err)
{
    ot_comm *h = ((nccl_comm *)c)->host;
    return h ? h->ops->bcast(h, buf, bytes, root, err) : OT_OK;
}

static ot_status h_allreduce_f32(ot_comm *c, float *buf, size_t n, ot_err *err)
{
    ot_comm *h = ((nccl_comm *)c)->host;
    return h ? h->ops->allreduce_f32(h, buf, n, err) : OT_OK;
}

static ot_status h_allreduce_f64(ot_comm *c, double *buf, size_t n, ot_err *err)
{
    ot_comm *h = ((nccl_comm *)c)->host;
    return h ? h->ops->allreduce_f64(h, buf, n, err) : OT_OK;
}

static ot_status h_grad_start(ot_comm *c, float *buf, size_t n, int *ticket, ot_err *err)
{
    ot_comm *h = ((nccl_comm *)c)->host;
    *ticket = 0;
    return h ? h->ops->grad_start(h, buf, n, ticket, err) : OT_OK;
}

static ot_status h_grad_wait(ot_comm *c, int ticket, double *busy_s, ot_err *err)
{
    ot_comm *h = ((nccl_comm *)c)->host;
    *busy_s = 0;
    return h ? h->ops->grad_wait(h, ticket, busy_s, err) : OT_OK;
}

static void nccl_abort_now(nccl_comm *n)
{
    if (n->nc && !atomic_exchange(&n->aborted, 1))
        n->api.comm_abort(n->nc);
}

static void h_abort(ot_comm *c, int code)
{
    nccl_comm *n = (nccl_comm *)c;
    ot_dist_watch(NULL, NULL, NULL);
    nccl_abort_now(n);
    if (n->host)
        n->host->ops->abort(n->host, code);
    exit(code);
}

static void h_fini(ot_comm *c)
{
    nccl_comm *n = (nccl_comm *)c;
    ot_dist_watch(NULL, NULL, NULL);
    if (n->nc && !atomic_load(&n->aborted))
        n->api.comm_destroy(n->nc);
    n->nc = NULL;
    for (int i = 0; i < n->n_slots; i++) {
        n->q->event_free(n->slots[i].ready);
        n->q->event_free(n->slots[i].done);
    }
    ot_free(n->slots);
    n->slots = NULL;
    n->n_slots = n->cap_slots = 0;
    if (n->ev_in)
        n->q->event_free(n->ev_in);
    if (n->ev_out)
        n->q->event_free(n->ev_out);
    if (n->stream)
        n->q->stream_free(n->stream);
    n->ev_in = n->ev_out = n->stream = NULL;
    /* the library stays loaded: its threads may outlive the communicator */
    if (n->host) {
        ot_dist_set_current(n->host);
        n->host->ops->fini(n->host);
    }
    n->host = NULL;
}

static const ot_comm_ops nccl_host_ops = {
    .name = "nccl",
    .bcast = h_bcast,
    .allreduce_f32 = h_allreduce_f32,
    .allreduce_f64 = h_allreduce_f64,
    .grad_start = h_grad_start,
    .grad_wait = h_grad_wait,
    .abort = h_abort,
    .fini = h_fini,
};

/* device buffers: on the communicator's stream, between two markers */
static ot_status d_allreduce(ot_comm *c, void *buf, size_t cnt, bool f64, void *queue,
                             ot_err *err)
{
    nccl_comm *n = (nccl_comm *)c;
    TRY_RET(n->q->record(n->ev_in, queue, err));
    TRY_RET(n->q->wait(n->stream, n->ev_in, err));
    NC(n->api.all_reduce(buf, buf, cnt, f64 ? ncclFloat64 : ncclFloat32, ncclSum, n->nc,
                         (cudaStream_t)n->stream),
       "ncclAllReduce");
    TRY_RET(n->q->record(n->ev_out, n->stream, err));
    return n->q->wait(queue, n->ev_out, err);
}

static ot_status d_bcast(ot_comm *c, void *buf, size_t bytes, int root, void *queue, ot_err *err)
{
    nccl_comm *n = (nccl_comm *)c;
    TRY_RET(n->q->record(n->ev_in, queue, err));
    TRY_RET(n->q->wait(n->stream, n->ev_in, err));
    NC(n->api.broadcast(buf, buf, bytes, ncclUint8, root, n->nc, (cudaStream_t)n->stream),
       "ncclBroadcast");
    TRY_RET(n->q->record(n->ev_out, n->stream, err));
    return n->q->wait(queue, n->ev_out, err);
}

/* The slot of bucket `key`, made on first use (the same buckets every
   step: the table stops growing after the first). */
static ot_status slot_of(nccl_comm *n, int64_t key, bool make, bucket_slot **out, ot_err *err)
{
    *out = NULL;
    for (int i = 0; i < n->n_slots; i++)
        if (n->slots[i].key == key) {
            *out = &n->slots[i];
            return OT_OK;
        }
    if (!make)
        return ot_err_set(err, OT_ERR_INTERNAL,
                          "NCCL: no all-reduce was started for the bucket at %lld",
                          (long long)key);
    if (n->n_slots == n->cap_slots) {
        int cap = n->cap_slots ? 2 * n->cap_slots : 16;
        bucket_slot *s = ot_realloc(n->slots, (size_t)cap * sizeof *s);
        if (!s)
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
        n->slots = s;
        n->cap_slots = cap;
    }
    bucket_slot *s = &n->slots[n->n_slots];
    memset(s, 0, sizeof *s);
    s->key = key;
    TRY_RET(n->q->event_new(&s->ready, err));
    if (n->q->event_new(&s->done, err) != OT_OK) {
        n->q->event_free(s->ready);
        return err->code;
    }
    n->n_slots++;
    *out = s;
    return OT_OK;
}

static ot_status d_grad_start(ot_comm *c, float *buf, size_t cnt, int64_t key, void *queue,
                              ot_err *err)
{
    nccl_comm *n = (nccl_comm *)c;
    ot_status st = OT_OK;
    pthread_mutex_lock(&n->mu);
    bucket_slot *s;
    if ((st = slot_of(n, key, true, &s, err)) != OT_OK)
        goto done;
    if (s->started) {
        st = ot_err_set(err, OT_ERR_INTERNAL,
                        "NCCL: the bucket at %lld was started twice", (long long)key);
        goto done;
    }
    if ((st = n->q->record(s->ready, queue, err)) != OT_OK ||
        (st = n->q->wait(n->stream, s->ready, err)) != OT_OK)
        goto done;
    ncclResult_t r = n->api.all_reduce(buf, buf, cnt, ncclFloat32, ncclSum, n->nc,
                                       (cudaStream_t)n->stream);
    if (r != ncclSuccess) {
        st = ot_err_set(err, OT_ERR_BACKEND, "NCCL: ncclAllReduce: %s", nccl_text(n, r));
        goto done;
    }
    if ((st = n->q->record(s->done, n->stream, err)) != OT_OK)
        goto done;
    s->started = true;
    s->t_start = now_s();
done:
    pthread_mutex_unlock(&n->mu);
    return st;
}

static ot_status d_grad_wait(ot_comm *c, int64_t key, void *queue, ot_err *err)
{
    nccl_comm *n = (nccl_comm *)c;
    ot_status st;
    pthread_mutex_lock(&n->mu);
    bucket_slot *s;
    if ((st = slot_of(n, key, false, &s, err)) == OT_OK) {
        if (!s->started)
            st = ot_err_set(err, OT_ERR_INTERNAL,
                            "NCCL: the bucket at %lld was not started", (long long)key);
        else
            st = n->q->wait(queue, s->done, err);
        s->started = false;
    }
    pthread_mutex_unlock(&n->mu);
    return st;
}

static const ot_comm_dev_ops nccl_dev_ops = {
    .allreduce = d_allreduce,
    .grad_start = d_grad_start,
    .grad_wait = d_grad_wait,
    .bcast = d_bcast,
};

/* The heartbeat's poll: NCCL's asynchronous error, or a bucket's
   reduction not done long after its start (a rank stuck elsewhere). */
static int watch_poll(void *arg, char *msg, int len)
{
    nccl_comm *n = arg;
    if (!n->nc || atomic_load(&n->aborted))
        return 0;
    ncclResult_t ae = ncclSuccess;
    ncclResult_t r = n->api.get_async_error(n->nc, &ae);
    if (r != ncclSuccess || (ae != ncclSuccess && ae != ncclInProgress)) {
        snprintf(msg, (size_t)len, "NCCL: %s", nccl_text(n, r != ncclSuccess ? r : ae));
        return 1;
    }
    double t = now_s(), limit = n->timeout_s + 5.0;
    int bad = 0;
    if (pthread_mutex_trylock(&n->mu) != 0)
        return 0;
    for (int i = 0; i < n->n_slots && !bad; i++) {
        bucket_slot *s = &n->slots[i];
        if (s->t_start > 0 && t - s->t_start > limit && !n->q->done(s->done)) {
            snprintf(msg, (size_t)len,
                     "NCCL: the all-reduce of the gradients' bucket at %lld has not completed in "
                     "%.0f s (a rank died, is stopped or runs another reduction; --rank-timeout)",
                     (long long)s->key, limit);
            bad = 1;
        } else if (s->t_start > 0 && n->q->done(s->done)) {
            s->t_start = 0;
        }
    }
    pthread_mutex_unlock(&n->mu);
    return bad;
}

static void watch_abort(void *arg)
{
    nccl_abort_now(arg);
}

/* ------------------------------------------------------------ set-up */

/* A 48-bit hash of a text (exact in a double). */
static double hash48(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (double)(h >> 16);
}

/* Every rank's value v, in rank order (vals[size]), over the host
   communicator (a sum of zeros but one slot per rank). */
static ot_status gather(ot_comm *host, int rank, int size, double v, double *vals, ot_err *err)
{
    memset(vals, 0, (size_t)size * sizeof *vals);
    vals[rank] = v;
    return host ? host->ops->allreduce_f64(host, vals, (size_t)size, err) : OT_OK;
}

/* The set-up's steps end on every rank together: `mine` says this rank
   failed (err holds why). Where another rank failed, this one fails too,
   quiet but for rank 0, which names the step. */
static ot_status agree(nccl_comm *n, bool mine, const char *what, bool *quiet, ot_err *err)
{
    double v = mine;
    ot_err e;
    ot_err_init(&e);
    if (n->host && n->host->ops->allreduce_f64(n->host, &v, 1, &e) != OT_OK)
        return mine ? err->code : ot_err_set(err, e.code, "%s", e.msg);
    if (mine)
        return err->code;
    if (v > 0) {
        *quiet = n->base.rank != 0;
        return ot_err_set(err, OT_ERR_UNSUPPORTED,
                          "NCCL: %s failed on another rank (its message says why)", what);
    }
    return OT_OK;
}

#define AGREE(failed, what)                                                                     \
    do {                                                                                        \
        if ((st = agree(n, (failed), what, quiet, err)) != OT_OK)                               \
            goto done;                                                                          \
    } while (0)

bool ot_dist_nccl_built(void)
{
    return true;
}

ot_status ot_dist_nccl_init(int device, const ot_dist_queue *queue, int *device_out, bool *quiet,
                            ot_err *err)
{
    ot_status st = OT_OK;
    nccl_comm *n = &g_nccl;
    ot_comm *host = ot_dist_current();
    double *vals = NULL;
    *device_out = -1;
    *quiet = false;
    if (host && host->dev)
        return OT_OK; /* already */
    if (!queue)
        return ot_err_set(err, OT_ERR_UNSUPPORTED,
                          "NCCL: this build's CUDA backend has no device queue");
    memset(n, 0, sizeof *n);
    pthread_mutex_init(&n->mu, NULL);
    n->host = host;
    n->q = queue;
    n->timeout_s = host ? host->timeout_s : 30;
    int rank = host ? host->rank : 0, size = host ? host->size : 1;
    n->base = (ot_comm){ .rank = rank, .size = size, .ops = &nccl_host_ops,
                         .timeout_s = n->timeout_s, .grad_weight = 1.0f, .dev = &nccl_dev_ops,
                         .queue = queue };
    if (!(vals = ot_calloc((size_t)size, sizeof *vals)))
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");

    /* the library, on every rank */
    AGREE(load_api(&n->api, err) != OT_OK, "loading " NCCL_SONAME);

    /* the machine of each rank: local rank = the ranks before on the same one */
    char hostname[256] = "";
    gethostname(hostname, sizeof hostname - 1);
    OT_TRY(gather(host, rank, size, hash48(hostname), vals, err));
    int local = 0, on_host = 0;
    for (int r = 0; r < size; r++)
        if (vals[r] == vals[rank]) {
            local += r < rank;
            on_host++;
        }
    int count = queue->device_count();
    int dev = device >= 0 ? device : count > 0 ? ot_dist_local_device(local, count) : local;
    bool bad = false;
    if (dev >= count) {
        bad = true;
        if (device >= 0)
            ot_err_set(err, OT_ERR_UNSUPPORTED,
                       "NCCL: --device cuda:%d, but %s has %d GPU%s", device,
                       hostname, count, count == 1 ? "" : "s");
        else
            ot_err_set(err, OT_ERR_UNSUPPORTED,
                       "NCCL takes one GPU per rank: %s runs %d ranks but has %d GPU%s "
                       "(start at most %d rank%s on it)",
                       hostname, on_host, count, count == 1 ? "" : "s", count,
                       count == 1 ? "" : "s");
    }
    AGREE(bad, "choosing the GPU");
    char busid[128] = "";
    AGREE(queue->set_device(dev, err) != OT_OK ||
              queue->device_id(dev, busid, sizeof busid, err) != OT_OK,
          "opening the GPU");
    /* two ranks on one GPU: NCCL refuses them; say so first */
    char where[512];
    snprintf(where, sizeof where, "%s/%s", hostname, busid);
    OT_TRY(gather(host, rank, size, hash48(where), vals, err));
    for (int r = 0; r < size; r++)
        for (int s = r + 1; s < size; s++)
            if (vals[r] == vals[s]) {
                *quiet = rank != 0;
                st = ot_err_set(err, OT_ERR_UNSUPPORTED,
                                "NCCL takes one GPU per rank: ranks %d and %d would share %s%s "
                                "(--device cuda gives each rank the GPU of its local rank; "
                                "start at most one rank per GPU)",
                                r, s, queue->host ? "the device " : "GPU ",
                                rank == r || rank == s ? where : "one GPU");
                goto done;
            }

    /* the unique id: rank 0's, to every rank over MPI */
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    ncclResult_t r0 = ncclSuccess;
    if (rank == 0)
        r0 = n->api.get_unique_id(&id);
    if (r0 != ncclSuccess)
        ot_err_set(err, OT_ERR_BACKEND, "NCCL: ncclGetUniqueId: %s",
                   n->api.error_string(r0));
    AGREE(r0 != ncclSuccess, "ncclGetUniqueId");
    if (host)
        OT_TRY(host->ops->bcast(host, &id, sizeof id, 0, err));
    ncclResult_t ri = n->api.comm_init_rank(&n->nc, size, id, rank);
    if (ri != ncclSuccess) {
        ot_err_set(err, OT_ERR_BACKEND, "NCCL: ncclCommInitRank on %s: %s", where,
                   n->api.error_string(ri));
        n->nc = NULL;
    }
    AGREE(ri != ncclSuccess, "ncclCommInitRank");
    AGREE(queue->stream_new(&n->stream, err) != OT_OK ||
              queue->event_new(&n->ev_in, err) != OT_OK ||
              queue->event_new(&n->ev_out, err) != OT_OK,
          "creating the reductions' stream");
    *device_out = dev;
    ot_free(vals);
    ot_dist_set_current(&n->base);
    ot_dist_watch(watch_poll, watch_abort, n);
    ot_log(OT_LOG_DEBUG, "NCCL %d from %s: rank %d of %d on device %d (%s)", n->api.version,
           n->api.path, rank, size, dev, where);
    return OT_OK;
done:
    ot_free(vals);
    if (n->nc)
        n->api.comm_destroy(n->nc);
    n->nc = NULL;
    if (n->ev_in)
        queue->event_free(n->ev_in);
    if (n->ev_out)
        queue->event_free(n->ev_out);
    if (n->stream)
        queue->stream_free(n->stream);
    n->ev_in = n->ev_out = n->stream = NULL;
    return st != OT_OK ? st : err->code;
}

/* ------------------------------------------------------------ the host's stand-in queue */

static int hq_count(void)
{
    return INT_MAX;
}

static ot_status hq_set_device(int device, ot_err *err)
{
    (void)device, (void)err;
    return OT_OK;
}

static ot_status hq_device_id(int device, char *buf, size_t size, ot_err *err)
{
    (void)err;
    snprintf(buf, size, "host:%d", device);
    return OT_OK;
}

static ot_status hq_new(void **p, ot_err *err)
{
    (void)err;
    *p = NULL;
    return OT_OK;
}

static void hq_free(void *p)
{
    (void)p;
}

static ot_status hq_mark(void *a, void *b, ot_err *err)
{
    (void)a, (void)b, (void)err;
    return OT_OK;
}

static bool hq_done(void *e)
{
    (void)e;
    return true;
}

static ot_status hq_alloc(size_t bytes, void **p, ot_err *err)
{
    if (!(*p = ot_calloc(1, bytes)))
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    return OT_OK;
}

static const ot_dist_queue host_queue = {
    .name = "host",
    .host = true,
    .device_count = hq_count,
    .set_device = hq_set_device,
    .device_id = hq_device_id,
    .stream_new = hq_new,
    .stream_free = hq_free,
    .event_new = hq_new,
    .event_free = hq_free,
    .record = hq_mark,
    .wait = hq_mark,
    .done = hq_done,
    .mem_alloc = hq_alloc,
    .mem_free = ot_free,
};

const ot_dist_queue *ot_dist_host_queue(void)
{
    return &host_queue;
}
