/*
 * onnxtrain.h: the public C API of onnxtrain.
 *
 * onnxtrain imports an ONNX model into an in-memory graph, lets the caller
 * inspect and edit it, and exports it back to ONNX without losing anything it
 * did not change. Handles are opaque; every function that can fail returns an
 * ot_status and fills an ot_err with a one-line message.
 *
 * Besides import and export, it offers the whole fine-tuning recipe of
 * `onnxtrain finetune` as one call (ot_finetune), and scoring and prediction
 * (ot_evaluate, ot_predict); docs/library.md walks through them.
 *
 * This header is the stable surface for programs that link libonnxtrain.
 * Internal headers (src/graph/graph.h and friends) expose more.
 */
#ifndef ONNXTRAIN_H
#define ONNXTRAIN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OT_VERSION_MAJOR 0
#define OT_VERSION_MINOR 1
#define OT_VERSION_PATCH 0
#define OT_VERSION_STRING "0.1.0"

typedef enum {
    OT_OK = 0,
    OT_ERR_NOMEM,
    OT_ERR_IO,
    OT_ERR_ARG,
    OT_ERR_SHAPE,
    OT_ERR_BACKEND,
    OT_ERR_INTERNAL,
    OT_ERR_PARSE,       /* bytes are not a valid protobuf or file format           */
    OT_ERR_MODEL,       /* valid protobuf, invalid graph (dangling names, cycles)   */
    OT_ERR_UNSUPPORTED, /* op, opset, dtype or attribute value we do not implement */
} ot_status;

#define OT_ERR_MSG_MAX 1024

/* An error: the code and a one-line message. Caller's storage. */
typedef struct ot_err {
    ot_status code;
    char msg[OT_ERR_MSG_MAX];
} ot_err;

/* A graph: the in-memory model. Owns everything it refers to. */
typedef struct ot_graph ot_graph;

/* Options for ot_model_import. Zero-initialise, then set what you need. */
typedef struct ot_import_opts {
    uint64_t max_tensor_bytes; /* 0: the default limit, 16 GiB                  */
    int skip_external_data;    /* 1: do not read external data (inspect only)   */
} ot_import_opts;

/* Where export puts tensor bytes. */
typedef enum {
    OT_DATA_KEEP = 0, /* as imported: external tensors stay external           */
    OT_DATA_INLINE,   /* every tensor inside the model file                    */
    OT_DATA_EXTERNAL, /* tensors of at least `external_threshold` bytes go to
                         a side file named after the output, `<out>.data`      */
} ot_data_placement;

typedef struct ot_export_opts {
    ot_data_placement placement;
    uint64_t external_threshold; /* 0: 1024 bytes */
} ot_export_opts;

/*
 * The arithmetic of convolutions and matrix products (docs/cli.md,
 * --precision). FP32 is the default: full single precision, no TF32 on a GPU.
 * TF32 lets a GPU's tensor cores round the inputs of products to TF32. BF16
 * and FP16 are mixed precision: the products take bfloat16 / float16
 * operands, while master weights, BatchNorm statistics, the loss and the
 * optimizer stay fp32, and an exported model stays fp32. AUTO picks, per
 * model and input shape, the fastest of what the device supports. A value
 * the device does not support (the CPU: tf32, fp16) is an OT_ERR_UNSUPPORTED
 * error saying why.
 */
typedef enum {
    OT_PRECISION_FP32 = 0,
    OT_PRECISION_TF32,
    OT_PRECISION_BF16,
    OT_PRECISION_FP16,
    OT_PRECISION_AUTO,
} ot_precision;

/* "fp32", "tf32", "bf16", "fp16", "auto"; "?" for another value. */
const char *ot_precision_name(ot_precision p);

/* Returns the library version, "MAJOR.MINOR.PATCH". Static storage. */
const char *ot_version(void);

/* Returns a short name for a status code ("parse error", ...). Static storage. */
const char *ot_status_str(ot_status s);

/*
 * Reads an ONNX model file into a new graph. `opts` may be NULL.
 * On success *out owns the graph (release with ot_graph_free).
 * Errors: OT_ERR_IO (cannot read), OT_ERR_PARSE (not an ONNX protobuf),
 * OT_ERR_MODEL (invalid graph), OT_ERR_UNSUPPORTED (opset or op too new).
 */
ot_status ot_model_import(const char *path, const ot_import_opts *opts, ot_graph **out,
                          ot_err *err);

/*
 * Writes the graph to an ONNX file. The file is written to a temporary name in
 * the same folder and renamed on success; on failure nothing is left behind.
 * `opts` may be NULL. Errors: OT_ERR_IO, OT_ERR_NOMEM, OT_ERR_ARG.
 */
ot_status ot_model_export(const ot_graph *g, const char *path, const ot_export_opts *opts,
                          ot_err *err);

/* Releases a graph and everything it owns. NULL does nothing. */
void ot_graph_free(ot_graph *g);

/* Counts, for callers that only need a summary. Cannot fail. */
size_t ot_graph_n_nodes(const ot_graph *g);
size_t ot_graph_n_initializers(const ot_graph *g);
/* Total number of elements over the graph's initializers. */
uint64_t ot_graph_n_params(const ot_graph *g);

/* ---------------------------------------------------------------- fine-tuning */

/* Which parameters train (docs/training.md). */
typedef enum {
    OT_FT_FEATURE_EXTRACT = 0, /* only the head                                     */
    OT_FT_FINE_TUNE,           /* the head and the last stage (everything at the
                                  final spatial resolution before global pooling)   */
    OT_FT_FULL,                /* everything                                        */
} ot_ft_mode;

typedef enum { OT_FT_ADAM = 0, OT_FT_SGD, OT_FT_ADAMW } ot_ft_optimizer;
typedef enum { OT_FT_LR_CONSTANT = 0, OT_FT_LR_STEP, OT_FT_LR_COSINE } ot_ft_schedule;

/* Pixel normalisation presets: ImageNet's mean and std, (x - 0.5) / 0.5, or
   none (pixels in 0 .. 1). */
typedef enum { OT_FT_NORM_IMAGENET = 0, OT_FT_NORM_HALF, OT_FT_NORM_NONE } ot_ft_norm;

/* What a progress report is about. */
typedef enum {
    OT_FT_MESSAGE = 0, /* a line of the run's account: the model and data, the
                          training plan, the outcome, the test score         */
    OT_FT_INFO,        /* a detail (-v in the command line)                  */
    OT_FT_WARNING,     /* something the caller should know and may fix       */
    OT_FT_PLAN,        /* the plan of a dry run (the run then ends)          */
    OT_FT_TRAIN_BEGIN, /* the loop starts: *stop is read from here on        */
    OT_FT_STEP,        /* after each step: the epoch's numbers so far        */
    OT_FT_EPOCH,       /* after each epoch (and a step that ends the run),
                          with validation when there is some                 */
    OT_FT_TRAIN_END,   /* the loop has ended                                 */
} ot_ft_event;

typedef struct ot_ft_progress {
    ot_ft_event event;
    const char *message;  /* MESSAGE, INFO, WARNING, PLAN: one line, no newline;
                             NULL for the others                              */
    /* STEP, EPOCH */
    int epoch, epochs;    /* 1-based                                         */
    int64_t step, steps;  /* steps done in this epoch, and per epoch         */
    double loss;          /* mean over the epoch's images so far             */
    double accuracy;      /* top-1 on the epoch's training images so far     */
    double lr;
    double images_per_s, seconds;
    int cached;           /* the epoch read the frozen prefix from the cache */
    double val_loss, val_accuracy; /* EPOCH with validation; else NaN        */
    int best;             /* the best validation accuracy so far             */
} ot_ft_progress;

typedef void (*ot_ft_progress_fn)(const ot_ft_progress *p, void *user);

/*
 * Everything a fine-tuning run can be told. Start from
 * ot_finetune_opts_default(), which gives the defaults of `onnxtrain
 * finetune`, and set what you need; docs/cli.md describes each option under
 * its command-line name. Strings and arrays are borrowed for the call.
 */
typedef struct ot_finetune_opts {
    /* the model: a file, or a graph of the caller's (then trained in place,
       and model_path, if set, only names it in messages) */
    const char *model_path;
    ot_graph *model;
    ot_import_opts import;
    /* data: an image folder, CIFAR-10 binary or IDX (MNIST) files */
    const char *data;
    uint64_t max_data_bytes;    /* memory for CIFAR-10/IDX data and file lists;
                                   0: 4 GiB                                    */
    int64_t max_files;          /* entries a folder's walk may visit; 0: 5M    */
    const int *data_classes;    /* use only these classes, relabelled 0 ..     */
    int n_data_classes;         /* 0: all                                      */
    int64_t per_class;          /* at most this many training images per class
                                   (a seeded choice); 0: all                   */
    int skip_bad;               /* leave out unreadable images                 */
    double val_split;           /* hold out this fraction for validation       */
    const char *val_data;       /* or validate on this data set                */
    /* head and freezing */
    int64_t classes;            /* 0: as many as the data has (the head is
                                   replaced when its outputs differ); else the
                                   new head's outputs, which must be the data's */
    ot_ft_mode mode;
    const char *const *train;   /* name patterns also trained                  */
    int n_train;
    const char *const *freeze;  /* name patterns frozen                        */
    int n_freeze;
    const char *freeze_until;   /* freeze this node or value and all upstream  */
    int bn_train;               /* 1: every BatchNorm in train mode; 0: by region */
    /* optimisation */
    ot_ft_optimizer optimizer;
    double lr;                  /* < 0: the mode's default (1e-3 feature-extract,
                                   1e-4 otherwise, 1e-5 for a model whose BN
                                   was folded into its convolutions)           */
    double head_lr;             /* 0: lr                                       */
    double momentum;            /* SGD; < 0: 0.9                               */
    double weight_decay;        /* < 0: 0 (AdamW 0.01)                         */
    double label_smoothing;
    double clip_grad;           /* the gradients' total L2 norm; 0: off        */
    ot_ft_schedule schedule;
    int64_t lr_step;            /* step schedule: epochs between decays (7)    */
    double lr_gamma;            /* step schedule: decay factor (0.1)           */
    int64_t warmup;             /* linear warm-up steps                        */
    int epochs;                 /* 5                                           */
    int batch_size;             /* 32                                          */
    int64_t max_steps;          /* stop after this many steps in all; 0: off   */
    /* images */
    int image_size;             /* 0: the model's input size (224 if dynamic)  */
    ot_ft_norm normalize;
    int has_mean, has_std;      /* mean / std below override the preset        */
    float mean[3], std[3];      /* per channel, on the 0 .. 1 scale            */
    int augment;                /* random resized crop and horizontal flip     */
    /* model selection */
    int keep_best;              /* export the best validation epoch's weights  */
    int patience;               /* stop after this many epochs without a better
                                   validation accuracy; 0: never               */
    /* checkpoints */
    const char *checkpoint;     /* written after every epoch and at a stop     */
    int64_t checkpoint_every;   /* also every N steps                          */
    const char *resume;         /* continue the run this checkpoint recorded   */
    /* the frozen prefix's cache */
    int no_cache;
    uint64_t cache_mem;         /* 0: 2 GiB                                    */
    const char *cache_dir;      /* NULL: $TMPDIR or /tmp                       */
    int cache_bf16;
    /* where and how it runs */
    const char *device;         /* "cpu", "cuda", "cuda:N" (NULL: "cpu"); a
                                   device this build lacks, or one not usable
                                   here, is an error saying why (docs/gpu.md) */
    ot_precision precision;     /* products' arithmetic (FP32)                 */
    int threads;                /* 0: OMP_NUM_THREADS, else all cores          */
    int workers;                /* threads preparing batches (1)               */
    uint64_t seed;              /* the new head, the data order, the split     */
    int deterministic;          /* bit-reproducible: one thread unless threads */
    /* data-parallel training under an MPI launcher (docs/distributed.md);
       the process must have called its set-up (the command line does) */
    double bucket_mb;           /* gradient all-reduce bucket (0: default)     */
    int sync_bn;                /* BN batch statistics over all ranks          */
    int no_overlap;             /* gradients reduced after the backward pass,
                                   not during it (the same sums)               */
    /* output: the plain inference model with the preprocessing and class
       names in its metadata; NULL writes nothing (the graph stays trained
       when `model` was given) */
    const char *output;
    ot_export_opts export_opts;
    int64_t export_batch;       /* the written model's batch dim: 0 dynamic ('N')
                                   when the model declares a fixed one (a
                                   PyTorch export traced at batch 2), else as
                                   it is; > 0 this size; -1 dynamic always   */
    /* quantisation-aware training: after the epochs, calibrate on up to
       calib_images training images (0: 1024) with calib_method (0 minmax,
       1 percentile, 2 entropy), insert fake quantisation, train qat_epochs
       more epochs (0: 1) at a tenth of the rate; the output is then the int8
       QDQ model (docs/deploy.md) */
    int qat;
    int qat_epochs;
    int64_t calib_images;
    int calib_method;
    int dry_run;                /* report the plan (OT_FT_PLAN) and stop       */
    /* Non-zero (a signal number) asks the loop to stop after the current
       step: the checkpoint is written, nothing is exported, and the call
       returns OT_OK with result->stopped_by set. May be set from a signal
       handler. NULL: never. */
    volatile sig_atomic_t *stop;
    ot_ft_progress_fn progress; /* NULL: silent                                */
    void *user;
} ot_finetune_opts;

/* The defaults of `onnxtrain finetune`. */
ot_finetune_opts ot_finetune_opts_default(void);

typedef struct ot_finetune_result {
    int64_t n_train, n_val;     /* images trained on and validated on          */
    int n_classes;
    int head_replaced;          /* the head was swapped for a new one          */
    int bn_folded;              /* the trained part has convolutions and no
                                   normalisation (BN folded at export)         */
    double lr;                  /* the learning rate used                      */
    uint64_t trainable_values;
    int trainable_tensors;
    /* training */
    int64_t steps;
    double train_loss, train_accuracy; /* of the last epoch                    */
    int cache_used, cache_bf16;
    uint64_t cache_bytes;
    ot_precision precision;     /* what the training step computed in (auto:
                                   what it picked)                             */
    int64_t n_bad;              /* images skip_bad left out                    */
    int best_epoch;             /* keep_best: the epoch exported; else 0       */
    double best_val_accuracy;
    int early_stopped;          /* patience ended the run                      */
    /* a stop request (opts->stop) */
    int stopped_by;             /* the signal number; 0: ran to the end        */
    /* data-parallel */
    int ranks;                  /* processes that trained together: 1         */
    int n_buckets;              /* gradient all-reduces per step               */
    int n_bn_train;             /* BatchNorm layers that train                 */
    int sync_bn;                /* their batch statistics spanned the ranks    */
    double reduce_s;            /* this rank's seconds in all-reduces in the
                                   training loop (waits for reductions started
                                   earlier included)                           */
    double grad_busy_s;         /* seconds its gradient reductions took from
                                   their start to their completion             */
    uint64_t reduce_bytes;      /* the bytes it all-reduced                    */
    int agreed_error;           /* the failure is every rank's (all stop)      */
    int epoch;                  /* epochs completed                            */
    int64_t epoch_step;         /* steps done in the epoch in progress         */
    int64_t steps_per_epoch;
    int64_t checkpoint_step;    /* the last checkpoint written; -1: none       */
    ot_err checkpoint_err;      /* code OT_OK, or why the last checkpoint could
                                   not be written (training went on)          */
    /* the data set's test split, when it has one */
    int has_test;
    double test_top1, test_top5, test_loss;
    int64_t test_n;
    int usage_error;            /* the error is in the options (a bad pattern) */
    /* qat: the test top-1 of the float model and of its int8 post-training
       quantisation (NaN without a test split); test_top1 is then the int8
       model's after quantisation-aware training */
    int qat;
    double fp32_top1, ptq_top1;
    int64_t qat_steps;
} ot_finetune_result;

/*
 * Runs the fine-tuning recipe: import the model, open the data, replace the
 * head, freeze by mode and patterns, train (with validation, checkpoints,
 * resume), score the test split when the data has one, record the
 * preprocessing and class names in the model's metadata and export it to
 * opts->output. Progress goes to opts->progress. A checkpoint that cannot be
 * written does not stop the run (result->checkpoint_err says why).
 * Errors: OT_ERR_ARG (options, data that do not fit the model, a loss or
 * parameter that became non-finite), OT_ERR_IO, OT_ERR_PARSE,
 * OT_ERR_MODEL, OT_ERR_UNSUPPORTED, OT_ERR_NOMEM, each with a one-line
 * message; nothing is exported then.
 */
ot_status ot_finetune(const ot_finetune_opts *opts, ot_finetune_result *result, ot_err *err);

/* ---------------------------------------------------------------- scoring */

typedef struct ot_evaluate_opts {
    const char *model_path;     /* or model (borrowed, not changed)            */
    const ot_graph *model;
    ot_import_opts import;
    const char *data;           /* scored on its test split, else its training split */
    uint64_t max_data_bytes;
    int64_t max_files;
    const int *data_classes;    /* score only these classes, relabelled 0 ..   */
    int n_data_classes;
    int skip_bad;
    /* preprocessing: the model's metadata (written by ot_finetune), else its
       input size (224 if dynamic) and ImageNet normalisation; these override */
    int image_size;             /* 0: as recorded                              */
    int has_normalize;
    ot_ft_norm normalize;
    int has_mean, has_std;
    float mean[3], std[3];
    int batch_size;             /* 32                                          */
    const char *device;         /* NULL: "cpu"; as ot_finetune_opts.device     */
    ot_precision precision;     /* as ot_finetune_opts.precision               */
    int threads;
    ot_ft_progress_fn progress; /* warnings (class names that differ); may be NULL */
    void *user;
} ot_evaluate_opts;

ot_evaluate_opts ot_evaluate_opts_default(void);

typedef struct ot_evaluation {
    int64_t n;                  /* images scored                               */
    int64_t n_bad;              /* left out by skip_bad                        */
    int test_split;             /* 1: the test split was scored                */
    double top1, top5, loss;    /* fractions; mean cross-entropy              */
    int n_classes;
    char **class_names;         /* n_classes names of the data                 */
    int64_t *confusion;         /* n_classes x n_classes, [true][predicted]    */
} ot_evaluation;

/* Scores a classifier on a data set. Release the result with
   ot_evaluation_fini. Errors as ot_finetune. */
ot_status ot_evaluate(const ot_evaluate_opts *opts, ot_evaluation *result, ot_err *err);
void ot_evaluation_fini(ot_evaluation *result);

/* ---------------------------------------------------------------- prediction */

typedef struct ot_prediction {
    int n_classes;
    float *prob;                /* softmax of the logits, n_classes            */
    int top;                    /* the most probable class                     */
    char *top_name;             /* its name from the model's metadata, or NULL */
} ot_prediction;

/*
 * Classifies one image file (JPEG or PNG) with a model, preprocessed
 * as ot_evaluate does (the model's metadata, else its input size and
 * ImageNet normalisation). `model` is borrowed. Release the result with
 * ot_prediction_fini. Errors: OT_ERR_IO, OT_ERR_PARSE (the image),
 * OT_ERR_ARG (no image input), those of the executor.
 */
ot_status ot_predict(const ot_graph *model, const char *image_path, int threads,
                     ot_prediction *result, ot_err *err);
void ot_prediction_fini(ot_prediction *result);

#ifdef __cplusplus
}
#endif
#endif
