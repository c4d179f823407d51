/*
 * checkpoint.h: training checkpoints, stored as ONNX files.
 *
 * A checkpoint is the model graph being trained (head swapped, current
 * trained parameters and BN running statistics as its initializers), plus:
 *   - the optimizer's state (ot_optim_state) as extra initializers named
 *     "onnxtrain.optim.<state name>" ("onnxtrain.optim.adam.m.3"). No node
 *     reads them; for IR versions below 4, where every initializer must be a
 *     graph input, they are listed as inputs too;
 *   - with --keep best, the best epoch's trained tensors as "onnxtrain.best.<i>";
 *   - the progress, the finished epochs' history, the best epoch and the
 *     fingerprints as metadata_props "onnxtrain.checkpoint.*";
 *   - last, the entry "onnxtrain.checkpoint.crc32": the CRC-32 of every byte
 *     before it, checked before anything else is read.
 * So the file passes onnx.checker and runs as the model it holds. The format
 * is in docs/checkpoint.md.
 *
 * Fingerprints are 64-bit FNV-1a hashes: of the input model file's bytes, of
 * the data set (count, classes, shape, and a sample of records: independent
 * of where the files lie) and of the options that change the run (a text of
 * "key=value" lines, kept verbatim so that a mismatch can name the option).
 *
 * The end of this header is the trainer's checkpoint glue (ot_train_ckpt_*):
 * the fingerprints of a run, saving the executor's state, resuming into it,
 * and the --keep best copies that a checkpoint carries. Not here: the
 * training loop (trainer.c decides when to save), signal handling (the CLI).
 */
#ifndef OT_TRAIN_CHECKPOINT_H
#define OT_TRAIN_CHECKPOINT_H

#include <pthread.h>

#include "data/data.h"
#include "graph/graph.h"
#include "train/loss_scale.h"
#include "train/optim.h"
#include "train/train_graph.h"

#define OT_CKPT_META_PREFIX "onnxtrain.checkpoint."
#define OT_CKPT_OPTIM_PREFIX "onnxtrain.optim."
#define OT_CKPT_BEST_PREFIX "onnxtrain.best."
/* The last metadata entry of the file: the CRC-32 of every byte before it. */
#define OT_CKPT_CRC_KEY OT_CKPT_META_PREFIX "crc32"
/* 2: the CRC-32 trailer, the epoch history and the best epoch's state. */
#define OT_CKPT_FORMAT 2
/* Largest epoch count a checkpoint may record (finetune's --epochs limit). */
#define OT_CKPT_MAX_EPOCHS 1000000

/* FNV-1a, 64-bit: h = (h ^ byte) * 0x100000001b3 per byte, from
   OT_HASH_INIT. Not cryptographic: it detects mistakes, not attacks. */
#define OT_HASH_INIT 0xcbf29ce484222325ull
uint64_t ot_train_hash(uint64_t h, const void *data, size_t n);

/* Hashes a file's bytes. Errors: OT_ERR_IO naming the file. */
ot_status ot_train_hash_file(const char *path, uint64_t *out, ot_err *err);

/* Hashes a data set: count, classes and their names, image shape, and up to
   256 records spread evenly over it (index, label, pixels). An image file
   that cannot be decoded or read (OT_ERR_PARSE, OT_ERR_IO) is recorded by
   index and label only; other errors of ot_data_get are passed on. */
ot_status ot_train_hash_data(const ot_dataset *ds, uint64_t *out, ot_err *err);

/* One finished epoch as the run reported it (the --log row without its
   timing, which is not kept so that the file does not depend on speed). */
typedef struct ot_train_checkpoint_epoch {
    int epoch;                      /* 1-based                                  */
    double loss, accuracy;          /* of the training images                   */
    double val_loss, val_accuracy;  /* NaN when there was no validation         */
    double lr;                      /* at the epoch's last step                 */
} ot_train_checkpoint_epoch;

/* What a checkpoint records besides tensors. */
typedef struct ot_train_checkpoint {
    int format;               /* OT_CKPT_FORMAT                                */
    /* fingerprints */
    uint64_t model_hash;      /* of the input model file                       */
    uint64_t data_hash;       /* ot_train_hash_data                            */
    int64_t n_images;         /* for messages                                  */
    int n_classes;
    char *options;            /* "key=value\n" lines; owned (ot_malloc)        */
    char *params;             /* trained parameter names, one per line, in the
                                 optimizer's order; owned                      */
    /* progress */
    int64_t step;             /* steps done in all                             */
    int epoch;                /* epochs completed                              */
    int64_t epoch_step;       /* steps done in the epoch in progress           */
    int64_t steps_per_epoch;
    int epochs;               /* --epochs of the run that wrote it (for info)  */
    double epoch_loss_sum;    /* the epoch in progress: sum of loss * images   */
    int64_t epoch_correct, epoch_seen;
    double last_loss, last_accuracy; /* of the last epoch trained so far       */
    /* validation and model selection */
    int best_epoch;           /* 1-based epoch of the best validation accuracy;
                                 0: none (no validation, or no epoch yet)      */
    double best_val_accuracy;
    ot_train_checkpoint_epoch *history; /* the `epoch` finished epochs; owned */
    int n_history;
    /* dynamic loss scaling (loss_scale.h): its state after `step`; in the
       file only when loss_scaling ("loss_scale", "loss_scale_growth",
       "loss_scale_skipped") */
    bool loss_scaling;
    ot_loss_scaler scaler;
} ot_train_checkpoint;

/* Releases the owned strings and the history. */
void ot_train_checkpoint_fini(ot_train_checkpoint *ck);

/* Decorates the graph a checkpoint exports (the CLI writes the preprocessing
   metadata and the trained input size): called on a private clone. */
typedef ot_status (*ot_train_checkpoint_prepare)(ot_graph *g, void *user, ot_err *err);

/*
 * Writes a checkpoint of `model` (whose initializers already hold the current
 * trained tensors) to `path`, atomically: a temporary file beside it, synced
 * and renamed, every tensor inline (one file, replaced whole), the CRC-32
 * trailer last. The model graph is not changed (the extra initializers and
 * metadata go on a clone). `prepare` may be NULL. state[0 .. n_state) is the
 * optimizer's state (optim.h; borrowed; none when n_state is 0). best[0 .. n_best) are float tensors stored as
 * "onnxtrain.best.<i>" (the best epoch's parameters and statistics; borrowed).
 * Errors: OT_ERR_IO, OT_ERR_NOMEM, OT_ERR_MODEL (the model already has a
 * value with a reserved name), and what `prepare` returns; on error the
 * previous file at `path` is untouched.
 */
ot_status ot_train_checkpoint_save(const ot_graph *model, const ot_optim_state *state,
                                   size_t n_state, const ot_optim_state *best, size_t n_best,
                                   const ot_train_checkpoint *ck,
                                   ot_train_checkpoint_prepare prepare, void *user,
                                   const char *path, ot_err *err);

/*
 * Checks the CRC-32 trailer of the checkpoint bytes data[0 .. len) (`name`
 * for messages); *sealed gets whether the trailer is there at all. Errors:
 * OT_ERR_PARSE "...: checkpoint checksum mismatch (stored X, computed Y): the
 * file is damaged", or "...: has no checkpoint checksum ..." (no format-2
 * checkpoint, or its last bytes are damaged).
 */
ot_status ot_train_checkpoint_check_bytes(const void *data, size_t len, const char *name,
                                          bool *sealed, ot_err *err);

/* The same on a file (only a regular file is read; a FIFO does not block).
   Errors: also OT_ERR_IO, OT_ERR_NOMEM. */
ot_status ot_train_checkpoint_check_file(const char *path, bool *sealed, ot_err *err);

/*
 * For commands that import a file that may be a checkpoint (export, finetune
 * MODEL), after ot_onnx_import_file(path) returned `st` (with graph g when
 * OT_OK): when the import failed and the file carries a checksum trailer that
 * does not match, *err becomes the checksum message (the file is a damaged
 * checkpoint); when it succeeded and g is a checkpoint
 * (ot_train_checkpoint_is_one) of a format other than 1 (which had no
 * checksum), the file's checksum must match. Returns `st`, or the checksum
 * error.
 */
ot_status ot_train_checkpoint_check_import(const char *path, const ot_graph *g, ot_status st,
                                           ot_err *err);

/* Whether an imported graph looks like a checkpoint: any "onnxtrain.
   checkpoint.*" metadata key or "onnxtrain.optim.*" / "onnxtrain.best.*"
   initializer (one damaged key does not hide it). Cannot fail. */
bool ot_train_checkpoint_is_one(const ot_graph *g);

/*
 * Reads a checkpoint: checks its checksum, then *graph gets the imported file
 * (owned by the caller, release with ot_graph_free; external data is refused)
 * and *ck its metadata (release with ot_train_checkpoint_fini), each field
 * checked for syntax and range. Errors: those of import and of
 * ot_train_checkpoint_check_bytes; OT_ERR_PARSE when the file is ONNX but not
 * an onnxtrain checkpoint, of an older or newer format, or a metadata field
 * is malformed or out of range (the message names the field).
 */
ot_status ot_train_checkpoint_load(const char *path, ot_graph **graph, ot_train_checkpoint *ck,
                                   ot_err *err);

/*
 * Compares the fingerprints of a saved checkpoint with those of this run.
 * OT_ERR_ARG with a message that says what differs (the model file, the data
 * set, or the options by name, with both values).
 */
ot_status ot_train_checkpoint_match(const ot_train_checkpoint *saved,
                                    const ot_train_checkpoint *now, ot_err *err);

/* The same for two runs that must agree (the ranks of a data-parallel
   run): the model file, the data and the options of `now` against those of
   `ref`, named `ref_name` ("rank 0") in the message. */
ot_status ot_train_fingerprint_match(const ot_train_checkpoint *ref,
                                     const ot_train_checkpoint *now, const char *ref_name,
                                     ot_err *err);

/*
 * Copies the initializer `name` of a checkpoint graph into dst (`bytes` bytes
 * of `dtype`). Errors: OT_ERR_MODEL when it is missing or its dtype or size
 * differs.
 */
ot_status ot_train_checkpoint_tensor(const ot_graph *ckg, const char *name, ot_dtype dtype,
                                     void *dst, size_t bytes, ot_err *err);

/* Restores every optimizer state tensor state[0 .. n_state) from
   "onnxtrain.optim.<name>" into its data. Errors: as
   ot_train_checkpoint_tensor. */
ot_status ot_train_checkpoint_restore_optim(const ot_graph *ckg, const ot_optim_state *state,
                                            size_t n_state, ot_err *err);

/*
 * Turns an imported checkpoint into the plain inference model: removes the
 * optimizer and best-epoch initializers (and their graph inputs) and the
 * "onnxtrain.checkpoint.*" metadata; keeps everything else (the
 * preprocessing metadata included). Errors: OT_ERR_ARG when `g` is not a
 * checkpoint, OT_ERR_NOMEM.
 */
ot_status ot_train_checkpoint_strip(ot_graph *g, ot_err *err);

/* ---- the trainer's checkpoint glue ------------------------------------ */

struct ot_exec;
struct ot_train_opts;
struct ot_train_result;

/* What a training run's checkpoints, its resume and --keep best need. */
typedef struct ot_train_ckpt_run {
    /* set by the trainer (step before ot_train_ckpt_begin) */
    ot_graph *model;
    const ot_train_graph *tg;
    const struct ot_train_opts *o;
    struct ot_exec *step;     /* the executor holding the trained state (the
                                 parameters, BN statistics and moments)       */
    int batch;                /* images in a full step                         */
    /* owned */
    ot_optim_state *ostate;   /* the optimizer's state as checkpoints name it
                                 (optim.h): the step count, then host copies
                                 of the moments in the executor's state (made
                                 at each save, written back on resume; no
                                 copies without --checkpoint or --resume)     */
    int32_t *ostate_id;       /* the state value of each moment; -1: the count */
    size_t n_ostate;
    int64_t ostep;            /* the step count ostate[0] holds                */
    ot_train_checkpoint ck;   /* fingerprints; progress filled at each save    */
    int64_t saved_step;       /* step of the last checkpoint written; -1: none */
    ot_err save_err;          /* the last attempt's write error; OT_OK: none   */
    float **best;             /* --keep best: the best epoch's tensors, in the
                                 order of ot_train_ckpt_best_value             */
    ot_optim_state *best_state; /* the same, as the checkpoint stores them     */
    /* data-parallel stops (ot_train_ckpt_snap): host copies of the state
       after the last completed step, which another thread writes at a stop
       while the next step runs; lock guards them and the model's tensors */
    pthread_mutex_t lock;
    void **snap;              /* the trained parameters, then BN statistics   */
    ot_optim_state *snap_ostate; /* the optimizer's state, own copies         */
    int64_t snap_ostep;
    ot_train_checkpoint snap_ck; /* the position (strings and history shared) */
    int64_t snap_step;        /* step of the copies; -1: none                  */
} ot_train_ckpt_run;

/* Sets up r for the trainer's model, train graphs and options (nothing
   saved yet). Cannot fail. */
void ot_train_ckpt_run_init(ot_train_ckpt_run *r, ot_graph *model, const ot_train_graph *tg,
                            const struct ot_train_opts *o);

/* Releases what r owns. */
void ot_train_ckpt_run_fini(ot_train_ckpt_run *r);

/*
 * Before the first step: the optimizer's state list (r->ostate, from the step
 * graph's optimizer pass and the executor r->step), the run's shape (steps per epoch) and, when the run
 * writes or resumes checkpoints, its fingerprints: the data set, the n
 * training images (dataset indices map[0 .. n), NULL: 0 .. n), the
 * validation set, and the options that change the run (cache_bf16: the
 * prefix cache hands the steps bfloat16-rounded values). Errors:
 * OT_ERR_NOMEM, those of ot_train_hash_data.
 */
ot_status ot_train_ckpt_begin(ot_train_ckpt_run *r, const ot_dataset *data, int64_t n,
                              const int64_t *map, int64_t steps_per_epoch, bool cache_bf16,
                              ot_err *err);

/* Copies the executor's trained parameters and BN statistics into the
   model's initializers (marked OT_VAL_DIRTY). Errors: the executor's copy
   (OT_ERR_BACKEND). */
ot_status ot_train_ckpt_sync(ot_train_ckpt_run *r, ot_err *err);

/* OT_ERR_ARG naming the step and the tensor when a trained parameter or BN
   statistic of the executor is not finite (read by copy; OT_ERR_NOMEM,
   OT_ERR_BACKEND). */
ot_status ot_train_ckpt_check_finite(const ot_train_ckpt_run *r, ot_err *err);

/*
 * Writes a checkpoint of the executor's state at the position in r->ck
 * (unless one was written at this step already, or the run has none). A
 * file that cannot be written (OT_ERR_IO) costs the checkpoint, not the run:
 * the error goes to r->save_err, one warning per run of failures, OT_OK.
 * Errors: that of ot_train_ckpt_check_finite, and what the save returns
 * other than OT_ERR_IO.
 */
ot_status ot_train_ckpt_save(ot_train_ckpt_run *r, ot_err *err);

/*
 * Data-parallel runs with a checkpoint: ot_train_ckpt_snap copies the state
 * and position of the step just completed (call it after each step and once
 * before the first); ot_train_ckpt_save_snap, safe to call from another
 * thread while a step runs, writes the checkpoint of those copies at once,
 * so that a stop need not wait for the step in progress (*step: the step
 * written; -1: none, the run has no checkpoint or it was written already).
 * Errors: OT_ERR_NOMEM, OT_ERR_BACKEND (snap); those of
 * ot_train_checkpoint_save and OT_ERR_ARG for a non-finite tensor (save_snap).
 */
ot_status ot_train_ckpt_snap(ot_train_ckpt_run *r, ot_err *err);
ot_status ot_train_ckpt_save_snap(ot_train_ckpt_run *r, int64_t *step, ot_err *err);

/* Appends to an error message what became of the checkpoint file. */
void ot_train_ckpt_note(const ot_train_ckpt_run *r, ot_err *err);

/*
 * Restores the checkpoint o->resume into the executor (parameters, BN
 * statistics, the optimizer's moments and step count) and
 * sets r->ck's progress, history and best epoch from it; res gets the resume
 * position and the best epoch. *finished: the run it records has ended
 * (--patience stopped it). Errors: OT_ERR_ARG (it does not fit this run,
 * saying what differs), OT_ERR_PARSE, and those of ot_train_checkpoint_load,
 * each prefixed with "--resume FILE".
 */
ot_status ot_train_ckpt_resume(ot_train_ckpt_run *r, struct ot_train_result *res,
                               bool *finished, ot_err *err);

/* The i-th tensor --keep best copies: the trained parameters, then the BN
   statistics. */
const ot_value *ot_train_ckpt_best_value(const ot_train_ckpt_run *r, int i);

/* --keep best: copies the model's current trained tensors (after
   ot_train_ckpt_sync) as the best epoch's. Errors: OT_ERR_NOMEM. */
ot_status ot_train_ckpt_keep_best(ot_train_ckpt_run *r, ot_err *err);

/* Writes the kept best epoch's tensors into the model's initializers;
   false when none were kept. */
bool ot_train_ckpt_restore_best(ot_train_ckpt_run *r);

#endif
