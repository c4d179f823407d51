/*
 * trainer.h: the training loop and evaluation.
 *
 * ot_train_run fine-tunes a model graph in place: it builds the prefix and
 * step graphs (train_graph.h), compiles them, and for each epoch shuffles the
 * data, computes (or reads from the cache) the frozen prefix's output, and
 * runs the step graph with this step's learning rates and number: the step
 * itself updates the parameters, the optimizer's moments and the BN running
 * statistics in the executor's state. At the end the trained tensors are written back
 * into the model graph's initializers (marked DIRTY) for export.
 *
 * The frozen-prefix cache (prefix_cache.h): when the prefix is deterministic (BN there in eval
 * mode; no random augmentation), its output for each image is computed in the
 * first epoch and reused in the later ones: in memory up to `cache_mem`
 * bytes, beyond that in an unlinked file under `cache_dir`. With
 * `cache_bf16` the records hold bfloat16 (round to nearest even) and the
 * prefix's output is rounded the same way before every step, so the first
 * epoch, the cached ones and a resumed run all see the same features.
 *
 * Checkpoints (checkpoint.h, docs/checkpoint.md): with `checkpoint` set the
 * loop writes one after every epoch, every `checkpoint_every` steps, when
 * `*stop` becomes non-zero and at the end; `resume` restores one before the
 * first step (trained tensors, BN statistics, optimizer state, position, the
 * finished epochs' numbers, the best epoch and, with keep_best, its tensors),
 * so that the resumed run ends as the uninterrupted one would. The cache is
 * rebuilt after a resume by replaying the first epoch's batches through the
 * prefix, so its contents are the same bytes as in the uninterrupted run.
 */
#ifndef OT_TRAIN_TRAINER_H
#define OT_TRAIN_TRAINER_H

#include "data/data.h"
#include "exec/exec.h"
#include "graph/graph.h"
#include <signal.h>

#include "train/checkpoint.h"
#include "train/optim.h"
#include "train/schedule.h"
#include "train/train_graph.h"

typedef struct ot_train_epoch {
    int epoch;           /* 1-based                                        */
    int epochs;
    int64_t step, steps; /* steps done in this epoch, and per epoch        */
    double loss;         /* mean over the images so far                    */
    double accuracy;     /* top-1 on the training images so far            */
    double lr;
    double images_per_s;
    double seconds;
    bool cached;         /* this epoch read the prefix from the cache      */
    double val_loss;     /* validation after the epoch; NaN when none      */
    double val_accuracy;
    bool best;           /* the best validation accuracy so far            */
} ot_train_epoch;

struct ot_exec;

typedef struct ot_train_opts {
    int epochs;
    int batch_size;
    ot_optim_opts optim;
    double lr;             /* base learning rate                              */
    double head_lr;        /* for the head's parameters; 0: same as lr        */
    ot_optim_schedule schedule;
    double clip_grad;      /* 0: off                                          */
    int threads;           /* 0: OMP_NUM_THREADS, else all cores              */
    const char *device;    /* where to compute (ot_device_parse); NULL: cpu   */
    ot_precision precision; /* products' arithmetic (ot_precision_check)      */
    bool loss_scaling;     /* dynamic loss scaling (loss_scale.h); on by itself
                              with OT_PRECISION_FP16                          */
    float loss_scale_init; /* its first scale; 0: 65536                       */
    uint64_t seed;
    bool no_cache;
    uint64_t cache_mem;    /* 0: 2 GiB                                        */
    const char *cache_dir; /* NULL: $TMPDIR or /tmp                           */
    bool cache_bf16;       /* store the cached prefix output as bfloat16: half
                              the bytes; when the cache is used, every epoch
                              (the first included) trains on the rounded
                              values. Changes the numerics; off by default.   */
    ot_data_transform transform;
    ot_train_graph_opts graph;
    const int32_t *head_params; /* parameters that get head_lr                */
    int n_head_params;
    int64_t max_steps;     /* stop after this many steps in all (tests); 0: off */
    /* data */
    const int64_t *train_idx; /* train on these dataset indices (NULL: all)   */
    int64_t n_train_idx;
    const ot_dataset *val_data; /* validation set scored after every epoch     */
    const int64_t *val_idx;     /* its indices (NULL: all)                     */
    int64_t n_val_idx;
    int workers;           /* loader threads; 0 prepares batches in the loop  */
    bool augment;          /* random resized crop + flip (turns the cache off) */
    bool skip_bad;         /* drop unreadable images (found by a first scan)  */
    bool keep_best;        /* export the weights of the best validation epoch */
    bool profile;          /* time every step; profile_report gets the result */
    /* called once at the end with the executors (prefix and step, for the
       full and the last batch size; NULL where absent) and the seconds the
       loop waited for data */
    void (*profile_report)(const struct ot_exec *const *xs, const char *const *names, int n,
                           double data_wait_s, void *user);
    int patience;          /* stop after this many epochs without a better
                              validation accuracy; 0: never                    */
    bool deterministic;    /* the caller fixed the threads; nothing order-dependent */
    /* data-parallel (src/dist/dist.h; used when ot_dist_current() has more
       than one rank): each rank trains on its share of every batch */
    size_t bucket_bytes;   /* gradients all-reduced per bucket; 0: default  */
    bool sync_bn;          /* BN batch statistics over all ranks             */
    bool no_overlap;       /* reduce each bucket after the backward pass,
                              not during it (the same sums)                  */
    /* checkpoints */
    const char *checkpoint;     /* write checkpoints here; NULL: none            */
    int64_t checkpoint_every;   /* also every N steps in all; 0: epochs only     */
    const char *resume;         /* continue from this checkpoint; NULL: start    */
    uint64_t model_hash;        /* fingerprint of the input model file
                                   (ot_train_hash_file)                         */
    const char *run_options;    /* "key=value\n" lines of the caller's options that
                                   change the run and the trainer cannot see
                                   (freeze mode, patterns, classes); may be NULL */
    ot_train_checkpoint_prepare checkpoint_prepare; /* decorates the exported
                                   checkpoint graph (may be NULL)               */
    void *checkpoint_user;
    /* Non-zero (a signal number) asks the loop to stop after the current step,
       write a checkpoint when `checkpoint` is set, and return OT_OK with
       res->stopped_by set. Written by a signal handler; may be NULL. */
    volatile sig_atomic_t *stop;
    /* progress: after every step and at the end of each epoch (end = true) */
    void (*progress)(const ot_train_epoch *e, bool end, void *user);
    void *user;
    /* after a checkpoint was restored, before the first step: what it
       recorded (the position: ck->epoch, ->epoch_step, ->step; the finished
       epochs: ck->history; borrowed for the call) */
    void (*resumed)(const ot_train_checkpoint *ck, void *user);
} ot_train_opts;

typedef struct ot_train_result {
    double final_loss, final_accuracy; /* of the last epoch                  */
    int64_t steps;
    bool cache_used;
    bool cache_bf16;         /* the cache held bfloat16 records                 */
    ot_precision precision;  /* what the step computed in (auto: its pick)      */
    bool loss_scaling;       /* dynamic loss scaling was on                     */
    int64_t skipped_steps;   /* steps whose updates it skipped (in all, a
                                resumed run's earlier ones included)            */
    float loss_scale;        /* the scale at the end                            */
    uint64_t cache_bytes;    /* size of the cache (memory or file)              */
    const char *cache_where; /* where its records were when kept where the
                                executors compute (a device's memory, pinned
                                host memory); NULL: the host's memory or file */
    int64_t prefix_runs;     /* runs of the frozen prefix (a cached epoch has none) */
    const char *cache_off_reason;      /* static text when the cache was off   */
    int n_trainable;
    uint64_t numel_trainable;
    int stopped_by;          /* *opts->stop when the loop stopped early; else 0  */
    int64_t n_bad;           /* images --skip-bad dropped (training and
                                validation sets together)                       */
    int best_epoch;          /* 1-based epoch whose weights were kept; 0: last  */
    double best_val_accuracy;
    bool early_stopped;      /* --patience ended the run                        */
    int epoch;               /* where training ended: epochs completed, and   */
    int64_t epoch_step;      /* steps done in the epoch in progress           */
    int64_t steps_per_epoch;
    bool resumed;            /* started from opts->resume at:                 */
    int resumed_epoch;       /* epochs completed                              */
    int64_t resumed_epoch_step, resumed_step; /* step in that epoch, in all   */
    int64_t checkpoint_step; /* step of the last checkpoint written; -1: none  */
    ot_err checkpoint_err;   /* why the last checkpoint could not be written
                                (I/O: training went on); code OT_OK: it was  */
    int ranks;               /* processes that trained (data-parallel): 1   */
    int n_buckets;           /* gradient all-reduces per step               */
    int n_bn_train;          /* BatchNorm layers in training mode           */
    bool sync_bn;            /* their statistics were reduced over the ranks */
    double reduce_s;         /* seconds this rank spent in all-reduces in
                                the training loop                           */
    double grad_busy_s;      /* seconds its gradient reductions took from
                                their start to their completion             */
    uint64_t reduce_bytes;   /* bytes it all-reduced in the loop            */
    /* of reduce_s: the waits for the gradients' reductions, the step's sums
       (loss, accuracy, stop requests: with the wait for the slowest rank),
       the BatchNorm running statistics' mean (without --sync-bn) */
    double grad_wait_s, sums_s, stats_s;
    /* the communication no rank's compute hid: per step, the seconds in
       all-reduces of the rank that spent least in them before the step's
       sums (it waited for no other rank's compute), and the BatchNorm
       statistics' mean */
    double least_s;
    bool agreed_error;       /* the error is every rank's (no abort needed) */
} ot_train_result;

/* Fills options with the defaults of `onnxtrain finetune`. */
void ot_train_opts_default(ot_train_opts *o);

/*
 * Trains `model` (OT_VAL_TRAINABLE set by ot_pass_freeze) on `data` and writes
 * the result into the model's initializers. Errors: OT_ERR_ARG (options, a
 * dataset whose images do not fit the model's input), OT_ERR_UNSUPPORTED,
 * OT_ERR_BACKEND, OT_ERR_NOMEM, OT_ERR_IO (cache file, checkpoint); a
 * non-finite loss or parameter is OT_ERR_ARG naming the step (the last
 * checkpoint is kept, never overwritten with the bad state); a checkpoint to
 * resume from that does not match this run is OT_ERR_ARG saying what differs.
 * A stop request is OT_OK with res->stopped_by set (the model's initializers
 * then hold the state at the stop).
 */
ot_status ot_train_run(ot_graph *model, const ot_dataset *data, const ot_train_opts *opts,
                       ot_train_result *res, ot_err *err);

typedef struct ot_eval_result {
    int64_t n;
    double top1, top5, loss;  /* fractions in [0,1]; mean cross-entropy       */
    int n_classes;
    int64_t *confusion;       /* n_classes x n_classes, [true][predicted];
                                 owned, release with ot_eval_result_fini      */
} ot_eval_result;

/* Runs the model on every image of `data` and scores its outputs (the logits,
   before a trailing Softmax), compiled with `xo` (device, CPU threads; NULL:
   the CPU with its defaults; share_state and profile are not used). Errors as
   ot_train_run. */
ot_status ot_eval_run(const ot_graph *model, const ot_dataset *data,
                      const ot_data_transform *transform, int batch_size,
                      const ot_exec_opts *xo, ot_eval_result *res, ot_err *err);
/* The same on the images idx[0..n) of data (idx NULL: all of them). */
ot_status ot_eval_run_subset(const ot_graph *model, const ot_dataset *data, const int64_t *idx,
                             int64_t n, const ot_data_transform *transform, int batch_size,
                             const ot_exec_opts *xo, ot_eval_result *res, ot_err *err);
/* The same, sharded over the ranks of `comm` (every rank calls it with the
   same images): each scores its share (ot_dist_share of the images, in
   order) and every rank gets the scores of all of them. comm NULL or of one
   rank: ot_eval_run_subset. Errors: also those of the all-reduce. */
struct ot_comm;
ot_status ot_eval_run_ranks(const ot_graph *model, const ot_dataset *data, const int64_t *idx,
                            int64_t n, const ot_data_transform *transform, int batch_size,
                            const ot_exec_opts *xo, struct ot_comm *comm, ot_eval_result *res,
                            ot_err *err);
void ot_eval_result_fini(ot_eval_result *res);

/* A clone of `model` whose only output is the logits (the input of a trailing
   Softmax/LogSoftmax; the (N, C) view of logits of shape [N, C, 1, 1], see
   ot_pass_logits_2d), with the image input's batch and spatial dims left to
   the data; *image gets the image input's id. The clone borrows the model's
   tensors (free it first). Errors: OT_ERR_ARG (no image input or output),
   OT_ERR_NOMEM, OT_ERR_MODEL. */
ot_status ot_eval_logits_graph(const ot_graph *model, int32_t *image, ot_graph **out, ot_err *err);

#endif
