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
#define OT_DIST_BUCKET_MB 25
#define OT_DIST_STR_(x) #x
#define OT_DIST_STR(x) OT_DIST_STR_(x)

typedef struct ot_comm ot_comm;

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
    /* ends every rank of the job with `code` (never returns) */
    void (*abort)(ot_comm *c, int code);
    void (*fini)(ot_comm *c);
} ot_comm_ops;

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
    /* the weight of this rank's gradients in the current step: its images
       over the step's images in all (GradAllReduce scales by it) */
    float grad_weight;
    float *stage;          /* every bucket, packed (ot_dist_reserve)           */
    size_t stage_n;
    double *dstage;        /* per-channel sums of synchronised BatchNorm       */
    size_t dstage_n;
};

typedef enum {
    OT_DIST_AUTO = 0, /* MPI when an MPI launcher started the process        */
    OT_DIST_OFF,      /* one process, whatever the environment says          */
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

/* The current communicator, NULL for one process (also after ot_dist_fini). */
ot_comm *ot_dist_current(void);

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

/* Makes c->stage hold at least n floats and c->dstage nd doubles (the
   buffers the kernels that reduce use, so that they allocate nothing while
   running). Errors: OT_ERR_NOMEM. */
ot_status ot_dist_reserve(ot_comm *c, size_t n, size_t nd, ot_err *err);

/* The share of `total` items rank `rank` of `size` takes: total / size, one
   more for the first total % size ranks; *offset gets where it starts, so
   that the ranks' shares in rank order are 0 .. total. */
int64_t ot_dist_share(int64_t total, int rank, int size, int64_t *offset);

#endif
