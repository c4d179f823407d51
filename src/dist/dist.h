/*
 * dist.h: the communicator of data-parallel training (docs/distributed.md).
 *
 * A communicator is N ranks running the same training; it offers what the
 * trainer needs of them: broadcast from a root, all-reduce (sum) of float
 * and double buffers, and abort. Every collective is bounded in time: a rank
 * that does not take part within the time-out (`--rank-timeout`) makes the
 * call fail with OT_ERR_BACKEND naming the ranks that were missing, so a
 * dead or stopped rank ends the job instead of hanging it.
 *
 * Implementations sit behind ot_comm_ops. The one of this build is MPI:
 * src/dist/mpi_shim.c, compiled against the system's <mpi.h> into a small
 * shared library (libonnxtrain_mpi.so) that ot_dist_init loads with dlopen
 * only when the process was started by an MPI launcher, so the binary runs
 * where no MPI is installed, and without a launcher exactly as before. A
 * device backend (NCCL on GPUs) would be another ot_comm_ops whose buffers
 * are device pointers, set up over this one (its unique id broadcast with
 * ot_comm_bcast).
 *
 * One communicator per process: ot_dist_init makes it current, the
 * trainer and the kernels that reduce (GradAllReduce) read ot_dist_current.
 */
#ifndef OT_DIST_DIST_H
#define OT_DIST_DIST_H

#include "core/core.h"

/* --bucket-mb's default, in MB of 10^6 bytes: the smallest message within
   90% of the peak MPI_Iallreduce bandwidth between 2 ranks, rounded up to a
   whole MB (docs/distributed.md; `make bench-dist` prints it). */
#define OT_DIST_BUCKET_MB 2
#define OT_DIST_STR_(x) #x
#define OT_DIST_STR(x) OT_DIST_STR_(x)

typedef struct ot_comm ot_comm;
typedef struct ot_dist_queue ot_dist_queue;
typedef struct ot_comm_dev_ops ot_comm_dev_ops;

typedef struct ot_comm_ops {
    const char *name; /* "mpi" */
    ot_status (*bcast)(ot_comm *c, void *buf, size_t bytes, int root, ot_err *err);
    /* in place: buf[i] = sum over the ranks of their buf[i] */
    ot_status (*allreduce_f32)(ot_comm *c, float *buf, size_t n, ot_err *err);
    ot_status (*allreduce_f64)(ot_comm *c, double *buf, size_t n, ot_err *err);
    /* gradient reductions that overlap the computation: grad_start starts
       the in-place sum over the ranks of buf[0..n) and names it by *ticket;
       grad_wait waits for it (tickets in the order they were started), with
       *busy_s the seconds from its start to its completion. buf stays
       untouched between the two. Additions as allreduce_f32's would make on
       the same buffer: a reduction waited for at once gives what a blocking
       one gives. */
    ot_status (*grad_start)(ot_comm *c, float *buf, size_t n, int *ticket, ot_err *err);
    ot_status (*grad_wait)(ot_comm *c, int ticket, double *busy_s, ot_err *err);
    /* moves the started gradient reductions on (MPI progresses a
       non-blocking collective only inside MPI calls); the executor calls it
       between the nodes of a step. Never blocks: returns at once when none
       is pending or another thread is moving them on. NULL: nothing to do. */
    void (*progress)(ot_comm *c);
    /* ends every rank of the job with `code` (never returns) */
    void (*abort)(ot_comm *c, int code);
    void (*fini)(ot_comm *c);
} ot_comm_ops;

/*
 * The executor's side of device reductions: its work queue (a CUDA stream)
 * and markers in it (CUDA events), as the NCCL communicator uses them. The
 * CUDA backend's (src/dist/nccl_cuda.c) works on the GPU; the host's
 * (`host`, src/dist/nccl.c) stands in for it under the test-only switch
 * ONNXTRAIN_NCCL_HOST: "device" buffers are host memory, the CPU executor
 * runs each step's work before it calls a reduction (so record and wait
 * have nothing to do), and a reduction is done when its call returns.
 */
struct ot_dist_queue {
    const char *name; /* "cuda", "host" */
    bool host;        /* buffers are host memory; streams are NULL          */
    int (*device_count)(void);
    /* makes `device` current for this thread */
    ot_status (*set_device)(int device, ot_err *err);
    /* a text naming the device machine-wide (its PCI bus id) */
    ot_status (*device_id)(int device, char *buf, size_t size, ot_err *err);
    ot_status (*stream_new)(void **s, ot_err *err);
    void (*stream_free)(void *s);
    ot_status (*event_new)(void **e, ot_err *err);
    void (*event_free)(void *e);
    /* e marks the work enqueued on s so far; s waits for what e marks */
    ot_status (*record)(void *e, void *s, ot_err *err);
    ot_status (*wait)(void *s, void *e, ot_err *err);
    /* whether the work e marks is done (any thread) */
    bool (*done)(void *e);
    ot_status (*mem_alloc)(size_t bytes, void **p, ot_err *err);
    void (*mem_free)(void *p);
};

/* Reductions of the executor's buffers (NCCL), each ordered after the work
   enqueued on `queue` so far, and the work enqueued on `queue` after it
   ordered after its end. */
struct ot_comm_dev_ops {
    /* buf[0..n) = the sum over the ranks (float32 when !f64, else float64) */
    ot_status (*allreduce)(ot_comm *c, void *buf, size_t n, bool f64, void *queue, ot_err *err);
    /* the sum over the ranks of the bucket buf[0..n) starts, named by key
       (its offset in c->stage); grad_wait orders `queue` after its end */
    ot_status (*grad_start)(ot_comm *c, float *buf, size_t n, int64_t key, void *queue,
                            ot_err *err);
    ot_status (*grad_wait)(ot_comm *c, int64_t key, void *queue, ot_err *err);
    /* buf[0..bytes) from rank root to every rank */
    ot_status (*bcast)(ot_comm *c, void *buf, size_t bytes, int root, void *queue, ot_err *err);
};

struct ot_comm {
    int rank, size;
    const ot_comm_ops *ops;
    void *impl;
    double timeout_s;      /* bound of every collective (--rank-timeout)       */
    double reduce_s;       /* seconds spent in all-reduces (profiling): the
                              calls, and the waits of started ones            */
    double grad_busy_s;    /* seconds the gradients' reductions took from their
                              start to their completion (overlapped or not)   */
    uint64_t reduce_bytes; /* bytes all-reduced                                */
    double grad_wait_s;    /* of reduce_s: the waits for the gradients'
                              reductions (what the backward pass did not hide) */
    double step_t0;        /* when the current step began (CLOCK_MONOTONIC
                              seconds; the trainer sets it): -vv's timeline   */
    /* the weight of this rank's gradients in the current step: its images
       over the step's images in all (GradAllReduce scales by it) */
    float grad_weight;
    float *stage;          /* every bucket, packed (ot_dist_reserve)           */
    size_t stage_n;
    double *dstage;        /* per-channel sums of synchronised BatchNorm       */
    size_t dstage_n;
    /* NCCL: reductions of the executor's buffers, on this queue; stage and
       dstage are then in the queue's memory (device memory, or host memory
       under the test-only host queue), and a communicator of one rank
       reduces too (the identity, through the same path) */
    const ot_comm_dev_ops *dev;
    const ot_dist_queue *queue;
};

typedef enum {
    OT_DIST_AUTO = 0, /* MPI when an MPI launcher started the process        */
    OT_DIST_OFF,      /* one process, whatever the environment says          */
    OT_DIST_NCCL,     /* NCCL's communicator, also without a launcher (one
                         rank) */
} ot_dist_mode;

/* Where the environment says this process is one of several: the size an
   MPI launcher (OpenMPI's mpirun, Slurm's srun, a PMI/PMIx launcher)
   announced, and the variable that said so (static text); 1 and NULL when
   none did. Cannot fail. */
int ot_dist_detect(const char **var);

/*
 * Sets up the current communicator: with OT_DIST_AUTO under a launcher
 * (ot_dist_detect > 1), loads the MPI library and joins the job; otherwise
 * nothing (ot_dist_current stays NULL: one process). timeout_s bounds each
 * collective (0: 30 s). Errors: OT_ERR_UNSUPPORTED (launched by MPI but the
 * MPI library cannot be loaded, saying why and that --distributed off runs
 * one process), OT_ERR_BACKEND (MPI failed to start).
 */
ot_status ot_dist_init(ot_dist_mode mode, double timeout_s, ot_err *err);

/*
 * NCCL (src/dist/nccl.c): makes the current communicator NCCL's, set up
 * over the MPI one (or alone, as one rank, without a launcher). `device`:
 * the CUDA device index every rank uses, or -1 for the local rank's (the
 * ranks on one machine numbered in rank order); *device_out gets the one
 * chosen. `queue`: the executor's stream/event abstraction
 * (ot_dist_cuda_queue, or the host's stand-in). libnccl.so.2 is loaded at run time ($ONNXTRAIN_NCCL_LIB,
 * beside the executable, the loader's path, the CUDA toolkit's lib64,
 * PyTorch's nvidia/nccl/lib). Errors (every rank fails; *quiet is set on
 * the ranks that should not print, the others' message says why):
 * OT_ERR_UNSUPPORTED (no NCCL in this build, libnccl missing, lacking a
 * symbol or too old, two ranks on one GPU, more ranks on a machine than
 * GPUs), OT_ERR_BACKEND (NCCL failed to start).
 */
ot_status ot_dist_nccl_init(int device, const ot_dist_queue *queue, int *device_out, bool *quiet,
                            ot_err *err);

/* Whether this build has NCCL (the CUDA backend is built). */
bool ot_dist_nccl_built(void);

/* The host's stand-in queue (test-only: ONNXTRAIN_NCCL_HOST), and the
   CUDA runtime's (src/dist/nccl_cuda.c); NULL where not built. */
const ot_dist_queue *ot_dist_host_queue(void);
const ot_dist_queue *ot_dist_cuda_queue(void);

/* The current communicator, NULL for one process (also after ot_dist_fini). */
ot_comm *ot_dist_current(void);

/* The rank of this process among those of its launch on the same machine,
   as the launcher announced it: OpenMPI's OMPI_COMM_WORLD_LOCAL_RANK,
   MPICH's MPI_LOCALRANKID, Slurm's SLURM_LOCALID inside a step
   (SLURM_PROCID set); *var names the variable (static text). -1 and NULL
   where ot_dist_detect finds no launch of several processes or none of
   these is set to a number. Cannot fail. */
int ot_dist_local_rank(const char **var);

/* The CUDA device `--device cuda` means for local rank `local` of a launch
   (docs/distributed.md): local modulo `count`, the devices this process
   sees (so that ranks each given one GPU by CUDA_VISIBLE_DEVICES take their
   own as 0, and more ranks than GPUs share them in turn); local itself
   where count is unknown (<= 0). */
int ot_dist_local_device(int local, int count);

/* Rank of this process, 0 for one process. */
int ot_dist_rank(void);

/* Leaves the job (MPI_Finalize) and forgets the communicator. */
void ot_dist_fini(void);

/* Ends every rank at once with `code` (MPI_Abort); for one process, exit. */
OT_NORETURN void ot_dist_abort(int code);

static inline ot_status ot_comm_bcast(ot_comm *c, void *buf, size_t bytes, int root, ot_err *err)
{
    return c->ops->bcast(c, buf, bytes, root, err);
}
ot_status ot_comm_allreduce_f32(ot_comm *c, float *buf, size_t n, ot_err *err);
ot_status ot_comm_allreduce_f64(ot_comm *c, double *buf, size_t n, ot_err *err);
/* c->ops->grad_start / grad_wait, counted in reduce_s, reduce_bytes and
   grad_busy_s. */
ot_status ot_comm_grad_start(ot_comm *c, float *buf, size_t n, int *ticket, ot_err *err);
ot_status ot_comm_grad_wait(ot_comm *c, int ticket, ot_err *err);

/* Moves c's started gradient reductions on without blocking (c->ops's
   progress); nothing for NULL or a communicator without one. */
static inline void ot_comm_progress(ot_comm *c)
{
    if (c && c->ops->progress)
        c->ops->progress(c);
}

/* c->dev's calls, counted in reduce_bytes (device reductions are timed
   by the queue, not the host: reduce_s does not count them). Errors:
   OT_ERR_INTERNAL without c->dev. */
ot_status ot_comm_dev_allreduce(ot_comm *c, void *buf, size_t n, bool f64, void *queue,
                                ot_err *err);
ot_status ot_comm_dev_grad_start(ot_comm *c, float *buf, size_t n, int64_t key, void *queue,
                                 ot_err *err);
ot_status ot_comm_dev_grad_wait(ot_comm *c, int64_t key, void *queue, ot_err *err);
ot_status ot_comm_dev_bcast(ot_comm *c, void *buf, size_t bytes, int root, void *queue,
                            ot_err *err);

/* Whether the CPU kernels reduce through c->dev with host buffers (the
   test-only host queue); otherwise they use the host ops. */
static inline bool ot_comm_dev_on_host(const ot_comm *c)
{
    return c && c->dev && c->queue && c->queue->host;
}

/* Whether a kernel reduces over c at all: several ranks, or NCCL's
   communicator of one rank (whose sum is the identity, through NCCL). */
static inline bool ot_comm_reduces(const ot_comm *c)
{
    return c && (c->size > 1 || c->dev);
}

/* Makes c->stage hold at least n floats and c->dstage nd doubles (the
   buffers the kernels that reduce use, so that they allocate nothing while
   running), in c->queue's memory when c->dev. Errors: OT_ERR_NOMEM. */
ot_status ot_dist_reserve(ot_comm *c, size_t n, size_t nd, ot_err *err);

/* The share of `total` items rank `rank` of `size` takes: total / size, one
   more for the first total % size ranks; *offset gets where it starts, so
   that the ranks' shares in rank order are 0 .. total. */
int64_t ot_dist_share(int64_t total, int rank, int size, int64_t *offset);

#endif
