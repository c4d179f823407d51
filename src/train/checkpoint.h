/*
 * checkpoint.h: training checkpoints, stored as ONNX files.
 *
 * A checkpoint is the model graph being trained (head swapped, current
 * trained parameters and BN running statistics as its initializers), plus:
 *   - the optimizer's state (ot_optim_state_get) as extra initializers named
 *     "onnxtrain.optim.<state name>" ("onnxtrain.optim.adam.m.3"). No node
 *     reads them; for IR versions below 4, where every initializer must be a
 *     graph input, they are listed as inputs too;
 *   - the progress and fingerprints as metadata_props "onnxtrain.checkpoint.*".
 * So the file passes onnx.checker and runs as the model it holds. The format
 * is in docs/checkpoint.md.
 *
 * Fingerprints are 64-bit FNV-1a hashes: of the input model file's bytes, of
 * the data set (count, classes, shape, and a sample of records: independent
 * of where the files lie) and of the options that change the run (a text of
 * "key=value" lines, kept verbatim so that a mismatch can name the option).
 *
 * Not here: the training loop (trainer.c decides when to save and restores
 * the executor's state), signal handling (the CLI).
 */
#ifndef OT_TRAIN_CHECKPOINT_H
#define OT_TRAIN_CHECKPOINT_H

#include "data/data.h"
#include "graph/graph.h"
#include "train/optim.h"

#define OT_CKPT_META_PREFIX "onnxtrain.checkpoint."
#define OT_CKPT_OPTIM_PREFIX "onnxtrain.optim."
#define OT_CKPT_FORMAT 1

/* FNV-1a, 64-bit: h = (h ^ byte) * 0x100000001b3 per byte, from
   OT_HASH_INIT. Not cryptographic: it detects mistakes, not attacks. */
#define OT_HASH_INIT 0xcbf29ce484222325ull
uint64_t ot_train_hash(uint64_t h, const void *data, size_t n);

/* Hashes a file's bytes. Errors: OT_ERR_IO naming the file. */
ot_status ot_train_hash_file(const char *path, uint64_t *out, ot_err *err);

/* Hashes a data set: count, classes and their names, image shape, and up to
   256 records spread evenly over it (index, label, pixels). Cannot fail on a
   valid data set; errors from ot_data_get are passed on. */
ot_status ot_train_hash_data(const ot_dataset *ds, uint64_t *out, ot_err *err);

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
} ot_train_checkpoint;

/* Releases the owned strings. */
void ot_train_checkpoint_fini(ot_train_checkpoint *ck);

/* Decorates the graph a checkpoint exports (the CLI writes the preprocessing
   metadata and the trained input size): called on a private clone. */
typedef ot_status (*ot_train_checkpoint_prepare)(ot_graph *g, void *user, ot_err *err);

/*
 * Writes a checkpoint of `model` (whose initializers already hold the current
 * trained tensors) to `path`, atomically: a temporary file beside it, synced
 * and renamed, every tensor inline (one file, replaced whole). The model
 * graph is not changed (the extra initializers and metadata go on a clone).
 * `prepare` may be NULL. `opt` may be NULL (no optimizer state).
 * Errors: OT_ERR_IO, OT_ERR_NOMEM, OT_ERR_MODEL (the model already has a
 * value with a reserved name), and what `prepare` returns; on error the
 * previous file at `path` is untouched.
 */
ot_status ot_train_checkpoint_save(const ot_graph *model, ot_optim *opt,
                                   const ot_train_checkpoint *ck,
                                   ot_train_checkpoint_prepare prepare, void *user,
                                   const char *path, ot_err *err);

/*
 * Reads a checkpoint: *graph gets the imported file (owned by the caller,
 * release with ot_graph_free) and *ck its metadata (release with
 * ot_train_checkpoint_fini). Errors: those of import; OT_ERR_PARSE when the
 * file is ONNX but not an onnxtrain checkpoint, or its metadata is malformed
 * or of a newer format.
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

/*
 * Copies the initializer `name` of a checkpoint graph into dst (`bytes` bytes
 * of `dtype`). Errors: OT_ERR_MODEL when it is missing or its dtype or size
 * differs.
 */
ot_status ot_train_checkpoint_tensor(const ot_graph *ckg, const char *name, ot_dtype dtype,
                                     void *dst, size_t bytes, ot_err *err);

/* Restores every optimizer state tensor from "onnxtrain.optim.<name>".
   Errors: as ot_train_checkpoint_tensor. */
ot_status ot_train_checkpoint_restore_optim(const ot_graph *ckg, ot_optim *opt, ot_err *err);

/*
 * Turns an imported checkpoint into the plain inference model: removes the
 * optimizer initializers (and their graph inputs) and the
 * "onnxtrain.checkpoint.*" metadata; keeps everything else (the
 * preprocessing metadata included). Errors: OT_ERR_ARG when `g` is not a
 * checkpoint, OT_ERR_NOMEM.
 */
ot_status ot_train_checkpoint_strip(ot_graph *g, ot_err *err);

#endif
