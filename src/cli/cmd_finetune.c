/*
 * cmd_finetune.c: `onnxtrain finetune MODEL --data PATH -o OUT.onnx` and
 * `onnxtrain eval MODEL --data PATH`.
 *
 * finetune: maps the options to ot_finetune_opts and runs the recipe
 * (src/train/finetune.c: import, head from the data or --classes, freeze by
 * --mode / --train / --freeze / --freeze-until, train, score the test split
 * when the data set has one, record the preprocessing and class names in
 * metadata_props, export a plain inference model), printing its report.
 * Checkpoints (docs/checkpoint.md): --checkpoint FILE is written after every
 * epoch, every --checkpoint-every N steps, and on SIGINT/SIGTERM, whose
 * handler only sets a flag the training loop reads after each step; the run
 * then stops with status 130/143. --resume FILE continues a run.
 * eval: ot_evaluate: top-1 and top-5 accuracy, loss, per-class accuracy and
 * the confusion matrix, preprocessing as the model's metadata says unless
 * overridden.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/json.h"
#include "converters/converters.h"
#include "core/file.h"
#include "data/data.h"
#include "dist/dist.h"
#include "exec/exec.h"
#include "onnx/onnx.h"
#include "passes/freeze.h"
#include "passes/head.h"
#include "train/checkpoint.h"
#include "train/finetune.h"
#include "train/meta.h"
#include "train/report.h"
#include "train/trainer.h"

/* finetune's options: the recipe's own (ft, filled by the table) and what the
   command does itself with the rest. */
typedef struct finetune_args {
    ot_finetune_opts ft;
    const char *train, *freeze;     /* PAT,... lists, split into ft.train/freeze */
    const char *mean, *std;         /* R,G,B, read into ft.mean/std              */
    const char *data_classes;       /* "5-9", read into ft.data_classes          */
    const char *log, *plot;
    int64_t batch;                  /* --batch: the export's batch dim           */
    bool json, profile;
    ot_convert_opts conv;           /* --opset, --fold-bn ...: the export's      */
    int distributed;                /* ot_dist_mode                              */
    double rank_timeout;
    ot_cli_plan_args plans;
} finetune_args;

static const ot_cli_choice mode_choices[] = {
    { "feature-extract", OT_FT_FEATURE_EXTRACT, false },
    { "fine-tune", OT_FT_FINE_TUNE, false },
    { "full", OT_FT_FULL, false },
    { NULL, 0, false },
};

static const ot_cli_choice optimizer_choices[] = {
    { "sgd", OT_FT_SGD, false },
    { "adam", OT_FT_ADAM, false },
    { "adamw", OT_FT_ADAMW, false },
    { NULL, 0, false },
};

static const ot_cli_choice schedule_choices[] = {
    { "constant", OT_FT_LR_CONSTANT, false },
    { "step", OT_FT_LR_STEP, false },
    { "cosine", OT_FT_LR_COSINE, false },
    { NULL, 0, false },
};

static const ot_cli_choice normalize_choices[] = {
    { "imagenet", OT_FT_NORM_IMAGENET, false },
    { "half", OT_FT_NORM_HALF, false },
    { "none", OT_FT_NORM_NONE, false },
    { NULL, 0, false },
};

/* --cache-dtype: 1 stores bf16 */
static const ot_cli_choice cache_dtype_choices[] = {
    { "f32", 0, false },
    { "bf16", 1, false },
    { "float32", 0, true },
    { "float", 0, true },
    { "bfloat16", 1, true },
    { NULL, 0, false },
};

/* --keep: 1 exports the best epoch's weights */
/* --distributed */
static const ot_cli_choice distributed_choices[] = {
    { "auto", OT_DIST_AUTO, false },
    { "off", OT_DIST_OFF, false },
    { NULL, 0, false },
};
/* finetune's: also nccl (NCCL's communicator, also as one rank) */
static const ot_cli_choice ft_distributed_choices[] = {
    { "auto", OT_DIST_AUTO, false },
    { "off", OT_DIST_OFF, false },
    { "nccl", OT_DIST_NCCL, false },
    { NULL, 0, false },
};

static const ot_cli_choice keep_choices[] = {
    { "best", 1, false },
    { "last", 0, false },
    { NULL, 0, false },
};

enum {
    FT_DATA, FT_OUTPUT, FT_CLASSES, FT_MODE, FT_TRAIN, FT_FREEZE, FT_FREEZE_UNTIL, FT_BN,
    FT_EPOCHS, FT_BATCH_SIZE, FT_OPTIMIZER, FT_LR, FT_HEAD_LR, FT_MOMENTUM, FT_WEIGHT_DECAY,
    FT_LABEL_SMOOTHING, FT_LR_SCHEDULE, FT_LR_STEP, FT_LR_GAMMA, FT_WARMUP, FT_CLIP_GRAD,
    FT_IMAGE_SIZE, FT_NORMALIZE, FT_MEAN, FT_STD, FT_THREADS, FT_DEVICE, FT_PRECISION, OT_CLI_PLAN_IDS(FT), FT_SEED, FT_NO_CACHE,
    FT_CACHE_MEM, FT_CACHE_DIR, FT_CACHE_DTYPE, FT_MAX_STEPS, FT_WORKERS, FT_DATA_CLASSES,
    FT_PER_CLASS, FT_AUGMENT, FT_SKIP_BAD, FT_VAL_SPLIT, FT_VAL_DATA, FT_KEEP, FT_PATIENCE, FT_LOG,
    FT_BATCH, FT_PROFILE, FT_PLOT, FT_CHECKPOINT, FT_CHECKPOINT_EVERY, FT_RESUME, FT_DETERMINISTIC,
    FT_JSON, FT_DRY_RUN, FT_MAX_TENSOR_SIZE, FT_MAX_DATA_SIZE, FT_MAX_FILES, FT_QAT, FT_QAT_EPOCHS,
    FT_DISTRIBUTED, FT_BUCKET_MB, FT_SYNC_BN, FT_NO_OVERLAP, FT_RANK_TIMEOUT, OT_CLI_CONVERT_IDS(FT), FT_N_OPTS
};

static const ot_cli_opt finetune_opts[FT_N_OPTS + 1] = {
    [FT_DATA] = OT_CLI_PATH_OPT(finetune_args, ft.data, "data", 0, "PATH",
                                "training data: an image folder (a folder of JPEG/PNG files per "
                                "class), CIFAR-10 binary or IDX (MNIST) files"),
    [FT_OUTPUT] = OT_CLI_PATH_OPT(finetune_args, ft.output, "output", 'o', "OUT.onnx",
                                  "where to write the fine-tuned model"),
    [FT_CLASSES] =
        OT_CLI_INT_OPT(finetune_args, ft.classes, "classes", 0, "N", 1, OT_CLI_CLASSES_MAX,
                       "classes of the new head (default: the data's, replacing a head that "
                       "differs); an N other than the data's is an error (exit 1)"),
    [FT_MODE] = OT_CLI_ENUM_OPT(finetune_args, ft.mode, "mode", 0, "MODE", mode_choices,
                                "feature-extract (default), fine-tune or full"),
    [FT_TRAIN] = OT_CLI_STRING_OPT(finetune_args, train, "train", 0, "PAT,...",
                                   "also train parameters or nodes matching these patterns"),
    [FT_FREEZE] = OT_CLI_STRING_OPT(finetune_args, freeze, "freeze", 0, "PAT,...",
                                    "freeze parameters or nodes matching these patterns"),
    [FT_FREEZE_UNTIL] = OT_CLI_STRING_OPT(finetune_args, ft.freeze_until, "freeze-until", 0,
                                          "NAME",
                                          "freeze the node or value NAME and everything upstream"),
    [FT_BN] = OT_CLI_ENUM_OPT(finetune_args, ft.bn_train, "bn", 0, "policy|train",
                              ot_cli_bn_choices,
                              "BatchNorm: by region (default), or train mode everywhere"),
    [FT_EPOCHS] = OT_CLI_INT_OPT(finetune_args, ft.epochs, "epochs", 0, "N", 1, 1000000,
                                 "passes over the training data (default 5)"),
    [FT_BATCH_SIZE] = OT_CLI_INT_OPT(finetune_args, ft.batch_size, "batch-size", 0, "N", 1,
                                     1 << 16, "images per step (default 32)"),
    [FT_OPTIMIZER] = OT_CLI_ENUM_OPT(finetune_args, ft.optimizer, "optimizer", 0, "NAME",
                                     optimizer_choices, "sgd, adam (default) or adamw"),
    [FT_LR] = OT_CLI_REAL_OPT(finetune_args, ft.lr, "lr", 0, "RATE", 0, 1e30,
                              "learning rate (default 1e-3 feature-extract, else 1e-4, and 1e-5 "
                              "for a model whose BatchNorm was folded into its convolutions)"),
    [FT_HEAD_LR] = OT_CLI_REAL_OPT(finetune_args, ft.head_lr, "head-lr", 0, "RATE", 0, 1e30,
                                   "learning rate of the head's parameters"),
    [FT_MOMENTUM] = OT_CLI_REAL_OPT(finetune_args, ft.momentum, "momentum", 0, "M", 0, 1,
                                    "SGD momentum (default 0.9)"),
    [FT_WEIGHT_DECAY] = OT_CLI_REAL_OPT(finetune_args, ft.weight_decay, "weight-decay", 0, "WD", 0,
                                        1e6, "weight decay (default 0; AdamW 0.01)"),
    [FT_LABEL_SMOOTHING] = OT_CLI_REAL_OPT(finetune_args, ft.label_smoothing, "label-smoothing", 0,
                                           "EPS", 0, 1,
                                           "cross-entropy label smoothing (default 0)"),
    [FT_LR_SCHEDULE] = OT_CLI_ENUM_OPT(finetune_args, ft.schedule, "lr-schedule", 0, "KIND",
                                       schedule_choices, "constant (default), step or cosine"),
    [FT_LR_STEP] = OT_CLI_INT_OPT(finetune_args, ft.lr_step, "lr-step", 0, "EPOCHS", 1, 1000000,
                                  "step schedule: epochs between decays (default 7)"),
    [FT_LR_GAMMA] = OT_CLI_REAL_OPT(finetune_args, ft.lr_gamma, "lr-gamma", 0, "G", 0, 1e6,
                                    "step schedule: decay factor (default 0.1)"),
    [FT_WARMUP] = OT_CLI_INT_OPT(finetune_args, ft.warmup, "warmup", 0, "STEPS", 0, 1LL << 40,
                                 "linear learning-rate warm-up over this many steps"),
    [FT_CLIP_GRAD] = OT_CLI_REAL_OPT(finetune_args, ft.clip_grad, "clip-grad", 0, "NORM", 0, 1e30,
                                     "clip the gradients' total L2 norm"),
    [FT_IMAGE_SIZE] = OT_CLI_INT_OPT(finetune_args, ft.image_size, "image-size", 0, "S", 1,
                                     OT_DATA_MAX_SIZE,
                                     "resize the shorter side to S and center-crop SxS"),
    [FT_NORMALIZE] = OT_CLI_ENUM_OPT(finetune_args, ft.normalize, "normalize", 0, "KIND",
                                     normalize_choices, "imagenet (default), half or none"),
    [FT_MEAN] = OT_CLI_STRING_OPT(finetune_args, mean, "mean", 0, "R,G,B",
                                  "per-channel mean, overriding --normalize (0..1 scale)"),
    [FT_STD] = OT_CLI_STRING_OPT(finetune_args, std, "std", 0, "R,G,B",
                                 "per-channel standard deviation, overriding --normalize"),
    [FT_THREADS] = OT_CLI_INT_OPT(finetune_args, ft.threads, "threads", 0, "N", 1,
                                  OT_CLI_THREADS_MAX,
                                  "threads (default OMP_NUM_THREADS, else the free cores)"),
    [FT_DEVICE] = OT_CLI_DEVICE_OPT(finetune_args, ft.device),
    [FT_PRECISION] = OT_CLI_PRECISION_OPT(finetune_args, ft.precision),
    OT_CLI_PLAN_ROWS(FT, finetune_args, plans),
    [FT_SEED] = OT_CLI_INT_OPT(finetune_args, ft.seed, "seed", 0, "S", 0, OT_CLI_SEED_MAX,
                               "seed for the new head and the data order (default 0)"),
    [FT_NO_CACHE] = OT_CLI_FLAG_OPT(finetune_args, ft.no_cache, "no-cache", 0,
                                    "do not cache the frozen prefix's output across epochs"),
    [FT_CACHE_MEM] = OT_CLI_SIZE_OPT(finetune_args, ft.cache_mem, "cache-mem", 0, "BYTES", 0,
                                     UINT64_MAX,
                                     "memory for the prefix cache before it spills (default 2G)"),
    [FT_CACHE_DIR] =
        OT_CLI_PATH_OPT(finetune_args, ft.cache_dir, "cache-dir", 0, "DIR",
                        "folder for a spilled prefix cache (default $TMPDIR or /tmp)"),
    [FT_CACHE_DTYPE] = OT_CLI_ENUM_OPT(finetune_args, ft.cache_bf16, "cache-dtype", 0, "f32|bf16",
                                       cache_dtype_choices,
                                       "f32 (default) or bf16: half the cache memory, rounded "
                                       "features"),
    [FT_MAX_STEPS] = OT_CLI_INT_OPT(finetune_args, ft.max_steps, "max-steps", 0, "N", 1, INT64_MAX,
                                    "stop after N steps in all (for quick checks)"),
    [FT_WORKERS] = OT_CLI_INT_OPT(finetune_args, ft.workers, "workers", 0, "N", 0, 64,
                                  "background threads preparing batches (default 1; 0: in the "
                                  "loop)"),
    [FT_DATA_CLASSES] = OT_CLI_STRING_OPT(finetune_args, data_classes, "data-classes", 0, "LIST",
                                          "use only these classes (\"5-9\", \"0,2,4\"), "
                                          "relabelled 0.."),
    [FT_PER_CLASS] = OT_CLI_INT_OPT(finetune_args, ft.per_class, "per-class", 0, "N", 1, INT64_MAX,
                                    "use at most N training images per class (seeded choice)"),
    [FT_AUGMENT] =
        OT_CLI_FLAG_OPT(finetune_args, ft.augment, "augment", 0,
                        "random resized crop and horizontal flip (turns the cache off)"),
    [FT_SKIP_BAD] = OT_CLI_FLAG_OPT(finetune_args, ft.skip_bad, "skip-bad", 0,
                                    "skip and count unreadable images instead of stopping"),
    [FT_VAL_SPLIT] = OT_CLI_REAL_OPT(finetune_args, ft.val_split, "val-split", 0, "F", 1e-9,
                                     0.999999,
                                     "hold out this fraction of the training data (seeded, "
                                     "stratified)"),
    [FT_VAL_DATA] = OT_CLI_PATH_OPT(finetune_args, ft.val_data, "val-data", 0, "PATH",
                                    "validation data, scored after every epoch"),
    [FT_KEEP] = OT_CLI_ENUM_OPT(finetune_args, ft.keep_best, "keep", 0, "best|last", keep_choices,
                                "export the last epoch's weights (default) or the best one's"),
    [FT_PATIENCE] = OT_CLI_INT_OPT(finetune_args, ft.patience, "patience", 0, "N", 1, 1000000,
                                   "stop after N epochs without a better validation accuracy"),
    [FT_LOG] = OT_CLI_PATH_OPT(finetune_args, log, "log", 0, "FILE.csv",
                               "write per-epoch metrics as CSV"),
    [FT_BATCH] = OT_CLI_BATCH_OPT(finetune_args, batch, "batch", 0, "N|dynamic",
                                  "batch dim of the exported model (default dynamic, N)"),
    [FT_PROFILE] = OT_CLI_FLAG_OPT(finetune_args, profile, "profile", 0,
                                   "print the time per node type and per node, forward and "
                                   "backward"),
    [FT_PLOT] = OT_CLI_PATH_OPT(finetune_args, plot, "plot", 0, "FILE.svg",
                                "draw the loss and accuracy curves as SVG"),
    [FT_CHECKPOINT] = OT_CLI_PATH_OPT(finetune_args, ft.checkpoint, "checkpoint", 0, "FILE",
                                      "write a checkpoint after every epoch and when interrupted"),
    [FT_CHECKPOINT_EVERY] = OT_CLI_INT_OPT(finetune_args, ft.checkpoint_every, "checkpoint-every",
                                           0, "N", 1, INT64_MAX,
                                           "also write the checkpoint every N steps"),
    [FT_RESUME] = OT_CLI_PATH_OPT(finetune_args, ft.resume, "resume", 0, "FILE",
                                  "continue the run a checkpoint recorded (may equal "
                                  "--checkpoint)"),
    [FT_DETERMINISTIC] = OT_CLI_FLAG_OPT(finetune_args, ft.deterministic, "deterministic", 0,
                                         "bit-reproducible: one thread unless --threads is given"),
    [FT_JSON] = OT_CLI_FLAG_OPT(finetune_args, json, "json", 0,
                                "print the final metrics as one JSON object"),
    [FT_DRY_RUN] = OT_CLI_FLAG_OPT(finetune_args, ft.dry_run, "dry-run", 0,
                                   "print the training plan and exit"),
    [FT_QAT] = OT_CLI_FLAG_OPT(finetune_args, ft.qat, "qat", 0,
                               "end with quantisation-aware training; write the int8 QDQ model"),
    [FT_QAT_EPOCHS] = OT_CLI_INT_OPT(finetune_args, ft.qat_epochs, "qat-epochs", 0, "N", 1, 1000000,
                                     "epochs of quantisation-aware training (default 1)"),
    [FT_MAX_TENSOR_SIZE] = OT_CLI_MAX_TENSOR_SIZE_OPT(finetune_args, ft.import.max_tensor_bytes),
    [FT_MAX_DATA_SIZE] = OT_CLI_SIZE_OPT(finetune_args, ft.max_data_bytes, "max-data-size", 0,
                                         "BYTES", 1, UINT64_MAX,
                                         "memory for CIFAR-10/IDX data and file lists (default "
                                         "4G)"),
    [FT_MAX_FILES] = OT_CLI_INT_OPT(finetune_args, ft.max_files, "max-files", 0, "N", 1, INT64_MAX,
                                    "entries an image folder's walk may visit (default 5000000)"),
    [FT_DISTRIBUTED] = OT_CLI_ENUM_OPT(finetune_args, distributed, "distributed", 0,
                                       "auto|off|nccl", ft_distributed_choices,
                                       "under mpirun/srun run as its ranks (auto, default; NCCL "
                                       "with --device cuda), as one process (off), or on NCCL "
                                       "also as one rank without a launcher (nccl)"),
    [FT_BUCKET_MB] = OT_CLI_REAL_OPT(finetune_args, ft.bucket_mb, "bucket-mb", 0, "MB", 0.001,
                                     1e6, "gradients all-reduced per message (default "
                                     OT_DIST_STR(OT_DIST_BUCKET_MB) ")"),
    [FT_SYNC_BN] = OT_CLI_FLAG_OPT(finetune_args, ft.sync_bn, "sync-bn", 0,
                                   "BatchNorm batch statistics over all ranks"),
    [FT_NO_OVERLAP] = OT_CLI_FLAG_OPT(finetune_args, ft.no_overlap, "no-overlap", 0,
                                      "all-reduce the gradients after the backward pass, not "
                                      "during it"),
    [FT_RANK_TIMEOUT] = OT_CLI_REAL_OPT(finetune_args, rank_timeout, "rank-timeout", 0, "S", 1,
                                        86400,
                                        "end the job when a rank is silent this long "
                                        "(default 30)"),
    OT_CLI_CONVERT_ROWS(FT, finetune_args, conv),
};

static const ot_cli_cmd finetune_cmd = {
    .name = "finetune",
    .args = "MODEL",
    .summary = "Adapts a pretrained classifier to new data: swaps the head, freezes what\n"
               "the mode says, trains (on the CPU or a GPU) and writes a plain inference ONNX file.",
    .details = "Modes: feature-extract trains only the head; fine-tune also trains the\n"
               "last stage (everything at the final spatial resolution before the global\n"
               "pooling; for a classifier of three or more linear layers, as in AlexNet\n"
               "and VGG, its layers after the first); full trains everything. BatchNorm\n"
               "in the frozen part runs on its running statistics; in the trained part\n"
               "it uses batch statistics and updates them. The frozen prefix's output is\n"
               "computed once per image and reused in later epochs unless --no-cache.\n"
               "With --checkpoint FILE, SIGINT or SIGTERM stops the run after the current\n"
               "step, writes FILE and exits with 130 or 143; a second signal a second or\n"
               "more later ends it at once. --resume FILE continues it; with\n"
               "--deterministic the result is the same bytes as an uninterrupted run.\n"
               "`onnxtrain export FILE OUT.onnx` turns a checkpoint into the plain model.\n"
               "--opset, --clean-inputs, --fold-bn and --simplify convert the written model\n"
               "for deployment as `onnxtrain convert` does (docs/deploy.md).\n",
    .opts = finetune_opts,
    .n_pos_min = 1,
    .n_pos_max = 1,
};

/* eval's options: the scoring's own (ev) and the rest. */
typedef struct eval_args {
    ot_evaluate_opts ev;
    const char *mean, *std, *data_classes;
    bool json;
    int distributed;      /* ot_dist_mode */
    double rank_timeout;
    ot_cli_plan_args plans;
} eval_args;

enum {
    EV_DATA, EV_BATCH_SIZE, EV_IMAGE_SIZE, EV_NORMALIZE, EV_DATA_CLASSES, EV_MEAN, EV_STD,
    EV_THREADS, EV_DEVICE, EV_PRECISION, OT_CLI_PLAN_IDS(EV), EV_SKIP_BAD, EV_JSON, EV_MAX_TENSOR_SIZE, EV_MAX_DATA_SIZE,
    EV_MAX_FILES, EV_DISTRIBUTED, EV_RANK_TIMEOUT, EV_N_OPTS
};

static const ot_cli_opt eval_opts[EV_N_OPTS + 1] = {
    [EV_DATA] = OT_CLI_PATH_OPT(eval_args, ev.data, "data", 0, "PATH",
                                "data: an image folder (a folder of JPEG/PNG files per class), "
                                "CIFAR-10 binary or IDX (MNIST) files"),
    [EV_BATCH_SIZE] = OT_CLI_INT_OPT(eval_args, ev.batch_size, "batch-size", 0, "N", 1, 1 << 16,
                                     "images per run (default 32)"),
    [EV_IMAGE_SIZE] = OT_CLI_INT_OPT(eval_args, ev.image_size, "image-size", 0, "S", 1,
                                     OT_DATA_MAX_SIZE, "override the model's recorded image size"),
    [EV_NORMALIZE] =
        OT_CLI_ENUM_OPT(eval_args, ev.normalize, "normalize", 0, "KIND", normalize_choices,
                        "override the recorded normalization: imagenet, half or none"),
    [EV_DATA_CLASSES] = OT_CLI_STRING_OPT(eval_args, data_classes, "data-classes", 0, "LIST",
                                          "score only these classes (\"5-9\", \"0,2,4\"), "
                                          "relabelled 0.."),
    [EV_MEAN] = OT_CLI_STRING_OPT(eval_args, mean, "mean", 0, "R,G,B",
                                  "override the recorded per-channel mean"),
    [EV_STD] = OT_CLI_STRING_OPT(eval_args, std, "std", 0, "R,G,B",
                                 "override the recorded per-channel standard deviation"),
    [EV_THREADS] = OT_CLI_INT_OPT(eval_args, ev.threads, "threads", 0, "N", 1, OT_CLI_THREADS_MAX,
                                  "threads (default OMP_NUM_THREADS, else the free cores)"),
    [EV_DEVICE] = OT_CLI_DEVICE_OPT(eval_args, ev.device),
    [EV_PRECISION] = OT_CLI_PRECISION_OPT(eval_args, ev.precision),
    OT_CLI_PLAN_ROWS(EV, eval_args, plans),
    [EV_SKIP_BAD] = OT_CLI_FLAG_OPT(eval_args, ev.skip_bad, "skip-bad", 0,
                                    "skip and count unreadable images instead of stopping"),
    [EV_JSON] = OT_CLI_FLAG_OPT(eval_args, json, "json", 0, "print one JSON object"),
    [EV_MAX_TENSOR_SIZE] = OT_CLI_MAX_TENSOR_SIZE_OPT(eval_args, ev.import.max_tensor_bytes),
    [EV_MAX_DATA_SIZE] = OT_CLI_SIZE_OPT(eval_args, ev.max_data_bytes, "max-data-size", 0, "BYTES",
                                         1, UINT64_MAX,
                                         "memory for CIFAR-10/IDX data and file lists (default "
                                         "4G)"),
    [EV_MAX_FILES] = OT_CLI_INT_OPT(eval_args, ev.max_files, "max-files", 0, "N", 1, INT64_MAX,
                                    "entries an image folder's walk may visit (default 5000000)"),
    [EV_DISTRIBUTED] = OT_CLI_ENUM_OPT(eval_args, distributed, "distributed", 0, "auto|off",
                                       distributed_choices,
                                       "under mpirun/srun each rank scores its share (auto, "
                                       "default), or every process all (off)"),
    [EV_RANK_TIMEOUT] = OT_CLI_REAL_OPT(eval_args, rank_timeout, "rank-timeout", 0, "S", 1,
                                        86400,
                                        "end the job when a rank is silent this long "
                                        "(default 30)"),
};

static const ot_cli_cmd eval_cmd = {
    .name = "eval",
    .args = "MODEL",
    .summary = "Scores a classifier on a data set's test split (else its training split):\n"
               "top-1 and top-5 accuracy, loss, per-class accuracy, confusion matrix.",
    .details = "Images are prepared as the model's metadata says (onnxtrain.image_size,\n"
               "onnxtrain.mean, onnxtrain.std, written by finetune), else resized to the\n"
               "model's input size (224 when dynamic) with ImageNet normalization.\n"
               "JSON keys: top1, top5, loss, n, per_class, confusion.\n",
    .opts = eval_opts,
    .n_pos_min = 1,
    .n_pos_max = 1,
};

/* Splits "a,b,c" into an array of strings (malloc'ed copy). */
static char **split_list(const char *s, int *n)
{
    *n = 0;
    if (!s)
        return NULL;
    size_t len = strlen(s);
    char **out = calloc(len + 2, sizeof *out);
    char *copy = malloc(len + 1);
    if (!out || !copy) {
        free(out);
        free(copy);
        return NULL;
    }
    memcpy(copy, s, len + 1);
    out[0] = copy; /* owner of the text, freed through out[-1] semantics below */
    int k = 0;
    for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ","))
        if (*tok)
            out[1 + k++] = tok;
    *n = k;
    return out;
}

static void free_list(char **l)
{
    if (l) {
        free(l[0]);
        free(l);
    }
}

/* Parses "a,b,c" (or one value for all channels), each a decimal number in
   lo .. hi, into v[3]. */
static bool parse_triple(const char *s, double lo, double hi, float *v)
{
    double d[3];
    int n = 0;
    char word[64];
    for (const char *p = s;; n++) {
        size_t len = strcspn(p, ",");
        if (n == 3 || len >= sizeof word)
            return false;
        memcpy(word, p, len);
        word[len] = '\0';
        if (!ot_cli_parse_real(word, lo, hi, &d[n]))
            return false;
        if (p[len] == '\0') {
            n++;
            break;
        }
        p += len + 1;
    }
    if (n != 1 && n != 3)
        return false;
    for (int i = 0; i < 3; i++)
        v[i] = (float)d[n == 1 ? 0 : i];
    return true;
}

/* Reads the values m of --mean and s of --std (NULL: not given) into mean and
   std, setting has_mean and has_std. Returns an exit status. */
static int read_mean_std(const ot_cli_cmd *cmd, const char *m, const char *s, int *has_mean,
                         float *mean, int *has_std, float *std)
{
    if (m && !parse_triple(m, OT_DATA_MEAN_MIN, OT_DATA_MEAN_MAX, mean))
        return ot_cli_usage_error(cmd, "bad value '%s' for --mean (expected one decimal number "
                                       "or three, comma-separated, each from %g to %g)",
                                  m, OT_DATA_MEAN_MIN, OT_DATA_MEAN_MAX);
    if (s && !parse_triple(s, OT_DATA_STD_MIN, OT_DATA_STD_MAX, std))
        return ot_cli_usage_error(cmd, "bad value '%s' for --std (expected one decimal number "
                                       "or three, comma-separated, each from %g to %g)",
                                  s, OT_DATA_STD_MIN, OT_DATA_STD_MAX);
    *has_mean = m != NULL;
    *has_std = s != NULL;
    return OT_EXIT_OK;
}

/* Reads a class number (decimal digits, below OT_DATA_MAX_FOLDER_CLASSES)
   at *s and moves *s past it. */
static bool class_number(const char **s, long *out)
{
    long v = 0;
    const char *p = *s;
    if (*p < '0' || *p > '9')
        return false;
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (*p - '0');
        if (v >= OT_DATA_MAX_FOLDER_CLASSES)
            return false;
    }
    *s = p;
    *out = v;
    return true;
}

/* Parses "5-9" / "0,2,4" / "1,3-5" into classes[]; false on bad syntax. */
static bool parse_class_list(const char *s, int *classes, int *n, int cap)
{
    *n = 0;
    while (*s) {
        long a, b;
        if (!class_number(&s, &a))
            return false;
        b = a;
        if (*s == '-') {
            s++;
            if (!class_number(&s, &b) || b < a)
                return false;
        }
        for (long c = a; c <= b; c++) {
            if (*n >= cap)
                return false;
            classes[(*n)++] = (int)c;
        }
        if (*s == ',')
            s++;
        else if (*s)
            return false;
    }
    return *n > 0;
}

int ot_cli_read_data_classes(const ot_cli_cmd *cmd, const char *list, int *classes, int *n)
{
    *n = 0;
    if (list && !parse_class_list(list, classes, n, OT_DATA_MAX_CLASSES))
        return ot_cli_usage_error(cmd, "--data-classes: expected numbers and ranges like 5-9");
    return OT_EXIT_OK;
}

typedef struct progress_ctx {
    FILE *f;
    bool tty;
    struct sigaction old_actions[2]; /* SIGINT, SIGTERM while the loop runs */
    int export_rc;         /* the exit status of a failed conversion        */
    const ot_convert_opts *convert; /* conversions of the exported model     */
    const char *resume;
    int epochs, patience;
    ot_train_log *log;     /* --log / --plot                                 */
    const char *log_path, *plot_path;
    ot_err log_err;        /* the last attempt's error writing them (each
                              attempt rewrites both whole)                   */
} progress_ctx;

/* After the log's rows were added (log_st: how writing the CSV went), writes
   the plot of them; a failure of either stays in p->log_err until a later
   attempt succeeds (each attempt rewrites both files whole). */
static void write_plot(progress_ctx *p, ot_status log_st)
{
    int n;
    const ot_train_log_row *rows = ot_train_log_rows(p->log, &n);
    if (log_st == OT_OK && p->plot_path && n > 0)
        log_st = ot_train_plot_svg(p->plot_path, rows, n, &p->log_err);
    if (log_st == OT_OK)
        ot_err_init(&p->log_err);
}

static void on_resumed(const ot_train_checkpoint *ck, void *user)
{
    progress_ctx *p = user;
    int epoch = ck->epoch;
    int64_t epoch_step = ck->epoch_step, step = ck->step;
    /* the rows of the epochs before the stop, as the log had them (their
       timing is not kept: left empty) */
    if (p->log && ck->n_history > 0) {
        ot_status st = OT_OK;
        for (int i = 0; i < ck->n_history && st == OT_OK; i++) {
            const ot_train_checkpoint_epoch *h = &ck->history[i];
            ot_train_log_row row = { .epoch = h->epoch, .loss = h->loss,
                                     .accuracy = h->accuracy, .val_loss = h->val_loss,
                                     .val_accuracy = h->val_accuracy, .lr = h->lr,
                                     .images_per_s = NAN, .seconds = NAN };
            st = ot_train_log_add(p->log, &row, &p->log_err);
        }
        write_plot(p, st);
    }
    fprintf(p->f, "resumed from %s ", p->resume);
    if (epoch >= p->epochs)
        fprintf(p->f, "after epoch %d: the run was finished, nothing left to train\n", epoch);
    else if (p->patience && epoch_step == 0 && ck->best_epoch &&
             epoch - ck->best_epoch >= p->patience)
        fprintf(p->f, "after epoch %d: --patience had ended the run, nothing left to train\n",
                epoch);
    else if (epoch_step == 0)
        fprintf(p->f, "after epoch %d (step %lld in all)\n", epoch, (long long)step);
    else
        fprintf(p->f, "in epoch %d after step %lld (step %lld in all)\n", epoch + 1,
                (long long)epoch_step, (long long)step);
    fflush(p->f);
}

static void on_profile(const struct ot_exec *const *xs, const char *const *names, int n,
                       double data_wait_s, void *user)
{
    progress_ctx *p = user;
    const char *extra[1] = { "waiting for data" };
    ot_cli_print_profile(p->f, xs, names, n, extra, &data_wait_s, 1);
}

static void catch_stop_signals(struct sigaction *old);
static void restore_signals(const struct sigaction *old);

static void on_epoch(progress_ctx *p, const ot_train_epoch *e, bool end)
{
    if (p->tty && !end) {
        double eta = e->images_per_s > 0 && e->step > 0
                         ? e->seconds / (double)e->step * (double)(e->steps - e->step)
                         : 0;
        fprintf(p->f, "\repoch %d/%d  step %lld/%lld  loss %.4f  acc %.3f  %.1f img/s  eta %.0fs   ",
                e->epoch, e->epochs, (long long)e->step, (long long)e->steps, e->loss, e->accuracy,
                e->images_per_s, eta);
        fflush(p->f);
        return;
    }
    if (!end)
        return;
    if (p->tty)
        fprintf(p->f, "\r%80s\r", "");
    fprintf(p->f, "epoch %d/%d  loss %.4f  acc %.4f", e->epoch, e->epochs, e->loss, e->accuracy);
    if (!isnan(e->val_accuracy))
        fprintf(p->f, "  val loss %.4f  val acc %.4f%s", e->val_loss, e->val_accuracy,
                e->best ? " *" : "");
    fprintf(p->f, "  lr %.3g  %.1f img/s  %.1fs%s\n", e->lr, e->images_per_s, e->seconds,
            e->cached ? "  (prefix cached)" : "");
    fflush(p->f);
    if (p->log) /* a failure here costs the log, never the run: reported at the end */
        write_plot(p, ot_train_log_epoch(p->log, e, e->val_loss, e->val_accuracy, &p->log_err));
}

/* The run's report: its lines to the log stream (stderr with --json), the
   dry run's plan to stdout, details and warnings through the log, the
   epochs as the progress line; SIGINT and SIGTERM are caught while the loop
   runs. */
static void on_progress(const ot_ft_progress *r, void *user)
{
    progress_ctx *p = user;
    switch (r->event) {
    case OT_FT_MESSAGE:
        fprintf(p->f, "%s\n", r->message);
        break;
    case OT_FT_PLAN:
        fprintf(stdout, "%s\n", r->message);
        break;
    case OT_FT_INFO:
        ot_log(OT_LOG_INFO, "%s", r->message);
        break;
    case OT_FT_WARNING:
        ot_log(OT_LOG_WARN, "%s", r->message);
        break;
    case OT_FT_TRAIN_BEGIN:
        catch_stop_signals(p->old_actions);
        break;
    case OT_FT_TRAIN_END:
        restore_signals(p->old_actions);
        break;
    case OT_FT_STEP:
    case OT_FT_EPOCH: {
        ot_train_epoch e = { .epoch = r->epoch, .epochs = r->epochs, .step = r->step,
                             .steps = r->steps, .loss = r->loss, .accuracy = r->accuracy,
                             .lr = r->lr, .images_per_s = r->images_per_s,
                             .seconds = r->seconds, .cached = r->cached != 0,
                             .val_loss = r->val_loss, .val_accuracy = r->val_accuracy,
                             .best = r->best != 0 };
        on_epoch(p, &e, r->event == OT_FT_EPOCH);
        break;
    }
    }
}

/* The export's conversions (--opset, --fold-bn ...). A failure was
   reported; its exit status waits in export_rc. */
static ot_status prepare_export(ot_graph *g, const char *model, void *user, ot_err *err)
{
    progress_ctx *p = user;
    p->export_rc = ot_cli_convert(g, model, p->convert);
    if (p->export_rc == OT_EXIT_OK)
        return OT_OK;
    return ot_err_set(err, OT_ERR_ARG, "the export's conversion");
}

/* eval --json: the metrics with 6 decimals as the text shows them (NaN and
   infinities as null), per-class accuracy, the confusion matrix; n_bad: images
   --skip-bad left out (-1: not given). */
static int print_eval_json(const ot_evaluation *r, int64_t n_bad)
{
    json_t *o = ot_json_set(json_object(), "n", json_integer(r->n));
    if (n_bad >= 0)
        o = ot_json_set(o, "skipped", json_integer(n_bad));
    o = ot_json_set(o, "top1", ot_json_fixed(r->top1, 6));
    o = ot_json_set(o, "top5", ot_json_fixed(r->top5, 6));
    o = ot_json_set(o, "loss", ot_json_fixed(r->loss, 6));
    json_t *per = json_array(), *conf = json_array();
    for (int c = 0; c < r->n_classes; c++) {
        int64_t tot = 0;
        json_t *row = json_array();
        for (int k = 0; k < r->n_classes; k++) {
            tot += r->confusion[c * r->n_classes + k];
            row = ot_json_push(row, json_integer(r->confusion[c * r->n_classes + k]));
        }
        json_t *e = ot_json_set(json_object(), "class", ot_json_text(r->class_names[c]));
        e = ot_json_set(e, "n", json_integer(tot));
        e = ot_json_set(e, "accuracy",
                        ot_json_fixed(tot ? (double)r->confusion[c * r->n_classes + c] / (double)tot
                                          : 0.0,
                                      6));
        per = ot_json_push(per, e);
        conf = ot_json_push(conf, row);
    }
    o = ot_json_set(o, "per_class", per);
    o = ot_json_set(o, "confusion", conf);
    return ot_cli_print_json(o);
}

static void print_eval_text(FILE *f, const ot_evaluation *r)
{
    fprintf(f, "images: %lld\ntop-1: %.4f\ntop-5: %.4f\nloss: %.4f\nper class:\n", (long long)r->n,
            r->top1, r->top5, r->loss);
    for (int c = 0; c < r->n_classes; c++) {
        int64_t tot = 0;
        for (int k = 0; k < r->n_classes; k++)
            tot += r->confusion[c * r->n_classes + k];
        fprintf(f, "  %-16s %.4f (%lld)\n", r->class_names[c],
                tot ? (double)r->confusion[c * r->n_classes + c] / (double)tot : 0.0,
                (long long)tot);
    }
    fprintf(f, "confusion (rows: true class, columns: predicted):\n");
    for (int c = 0; c < r->n_classes; c++) {
        fprintf(f, " ");
        for (int k = 0; k < r->n_classes; k++)
            fprintf(f, " %5lld", (long long)r->confusion[c * r->n_classes + k]);
        fprintf(f, "\n");
    }
}

int ot_cli_inspect_training(ot_graph *g, const char *path, const ot_cli_cmd *cmd,
                            const ot_cli_plan *plan, bool json)
{
    int rc = OT_EXIT_OK;
    char **train_pats = NULL, **freeze_pats = NULL;
    ot_train_graph tg;
    bool built = false;
    ot_err err;
    ot_err_init(&err);
    ot_freeze_opts fo = { .mode = (ot_freeze_mode)plan->mode };
    ot_train_graph_opts go = { .bn_all_train = plan->bn_train != 0 };
    int64_t classes = plan->classes;
    int n_train = 0, n_freeze = 0;
    train_pats = split_list(plan->train, &n_train);
    freeze_pats = split_list(plan->freeze, &n_freeze);
    fo.train = train_pats ? (const char *const *)train_pats + 1 : NULL;
    fo.n_train = n_train;
    fo.freeze = freeze_pats ? (const char *const *)freeze_pats + 1 : NULL;
    fo.n_freeze = n_freeze;
    fo.until = plan->freeze_until;
    ot_head head;
    ot_freeze_report fr;
    if (ot_pass_find_head(g, &head, &err) != OT_OK) {
        rc = ot_cli_error("%s: %s", path, err.msg);
        goto out;
    }
    if (classes && ot_pass_swap_head(g, &head, classes, 0, &err) != OT_OK) {
        rc = ot_cli_error("%s: %s", path, err.msg);
        goto out;
    }
    if (ot_pass_freeze_at_size(g, &fo, &head, 224, &fr, &err) != OT_OK) {
        rc = ot_cli_usage_error(cmd, "%s", err.msg);
        goto out;
    }
    if (ot_train_graph_build(g, &go, &tg, &err) != OT_OK) {
        rc = ot_cli_error("%s: %s", path, err.msg);
        goto out;
    }
    built = true;
    const char *first = fr.first_trained_node >= 0 ? g->nodes[fr.first_trained_node].name : NULL;
    const char *cache = !tg.prefix ? "off: nothing is frozen before the first trained node"
                        : !tg.cacheable ? tg.why_not_cacheable
                                        : NULL;
    if (json) {
        json_t *j = ot_json_set(json_object(), "model", ot_json_text(path));
        j = ot_json_set(j, "trainable_params", json_integer((json_int_t)fr.numel_trainable));
        j = ot_json_set(j, "frozen_params", json_integer((json_int_t)fr.numel_frozen));
        j = ot_json_set(j, "trainable_tensors", json_integer(fr.n_trainable));
        j = ot_json_set(j, "frozen_tensors", json_integer(fr.n_params - fr.n_trainable));
        j = ot_json_set(j, "first_trained_node", ot_json_text(first));
        json_t *cut = json_array();
        for (int c = 0; c < tg.n_cut; c++)
            cut = ot_json_push(cut, ot_json_text(g->values[tg.cut[c]].name));
        j = ot_json_set(j, "cut", cut);
        j = ot_json_set(j, "bn_train", json_integer(tg.n_bn_train));
        j = ot_json_set(j, "bn_eval", json_integer(tg.n_bn_eval));
        j = ot_json_set(j, "dropout_train", json_integer(tg.n_dropout_train));
        j = ot_json_set(j, "backward_nodes", json_integer(tg.n_backward_nodes));
        j = ot_json_set(j, "cache", json_boolean(!cache));
        j = ot_json_set(j, "cache_note",
                        ot_json_text(cache ? cache : "applies when there is more than one epoch"));
        json_t *trainable = json_array();
        for (int p = 0; p < tg.n_params; p++)
            trainable = ot_json_push(trainable, ot_json_text(g->values[tg.params[p]].name));
        j = ot_json_set(j, "trainable", trainable);
        if ((rc = ot_cli_print_json(j)) != OT_EXIT_OK)
            goto out;
    } else {
        char t1[32], t2[32];
        ot_cli_group_digits(fr.numel_trainable, t1, sizeof t1);
        ot_cli_group_digits(fr.numel_frozen, t2, sizeof t2);
        printf("\ntraining plan:\n  trainable: %d tensors, %s values\n  frozen: %d tensors, %s "
               "values\n  first trained node: ",
               fr.n_trainable, t1, fr.n_params - fr.n_trainable, t2);
        ot_cli_text_str(stdout, first ? first : "-");
        printf("\n  cut (frozen prefix output):");
        for (int c = 0; c < tg.n_cut; c++) {
            printf(" ");
            ot_cli_text_str(stdout, g->values[tg.cut[c]].name);
        }
        printf("\n  BatchNorm: %d in train mode, %d on running statistics\n  Dropout in train "
               "mode: %d\n  backward nodes: %d\n  prefix cache: %s\n",
               tg.n_bn_train, tg.n_bn_eval, tg.n_dropout_train, tg.n_backward_nodes,
               cache ? cache : "applies (with more than one epoch)");
    }
    rc = ot_cli_finish_stdout();
out:
    if (built)
        ot_train_graph_fini(&tg);
    free_list(train_pats);
    free_list(freeze_pats);
    return rc;
}

/* The signal that asked the training loop to stop (0: none). The handler
   only sets it; the loop reads it after each step. */
static volatile sig_atomic_t stop_signal;
static struct timespec stop_first; /* when it came; read only by the handler */

/* The first SIGINT or SIGTERM asks the loop to stop. One that follows
   within a second is the same request delivered twice (timeout(1), for one,
   signals the process and then its process group) and is ignored; a later
   one removes the temporary files of outputs being written and takes the
   default action, ending the process at once (the last checkpoint stays
   whole, since it is only ever replaced by a rename). */
static void on_stop_signal(int sig)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (!stop_signal) {
        stop_first = now;
        stop_signal = sig;
        return;
    }
    double waited = (double)(now.tv_sec - stop_first.tv_sec) +
                    (double)(now.tv_nsec - stop_first.tv_nsec) * 1e-9;
    if (waited < 1.0)
        return;
    ot_atomic_remove_temps(); /* a checkpoint being written is dropped */
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Routes SIGINT and SIGTERM to on_stop_signal for the training loop, keeping
   the previous actions in old[2]. Each blocks the other while it runs. */
static void catch_stop_signals(struct sigaction *old)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    sa.sa_flags = SA_RESTART;
    stop_signal = 0;
    sigaction(SIGINT, &sa, &old[0]);
    sigaction(SIGTERM, &sa, &old[1]);
}

static void restore_signals(const struct sigaction *old)
{
    sigaction(SIGINT, &old[0], NULL);
    sigaction(SIGTERM, &old[1], NULL);
}

/* Prints how a stop request ended the run (stderr) and returns its exit
   status, 128 + the signal. Under a launcher only rank 0 says it: the other
   ranks stop with it and print only errors. */
static int report_stop(const ot_finetune_result *tr, const char *checkpoint, progress_ctx *pc)
{
    if (ot_dist_current() && ot_dist_rank() != 0)
        return 128 + tr->stopped_by;
    if (pc->tty)
        fprintf(pc->f, "\n");
    fflush(pc->f);
    const char *sig = tr->stopped_by == SIGINT ? "SIGINT" : tr->stopped_by == SIGTERM ? "SIGTERM"
                                                                                 : "a signal";
    char where[96];
    if (tr->epoch_step)
        snprintf(where, sizeof where, "step %lld of %lld in epoch %d",
                 (long long)tr->epoch_step, (long long)tr->steps_per_epoch, tr->epoch + 1);
    else
        snprintf(where, sizeof where, "the end of epoch %d", tr->epoch);
    if (checkpoint && tr->checkpoint_err.code != OT_OK) {
        fprintf(stderr, "onnxtrain: stopped by %s after step %lld (%s); %s; ", sig,
                (long long)tr->steps, where, tr->checkpoint_err.msg);
        if (tr->checkpoint_step >= 0)
            fprintf(stderr, "the last checkpoint, at step %lld, is in %s\n",
                    (long long)tr->checkpoint_step, checkpoint);
        else
            fprintf(stderr, "no checkpoint was kept\n");
    } else if (checkpoint && tr->checkpoint_step >= 0)
        fprintf(stderr,
                "onnxtrain: stopped by %s after step %lld (%s); checkpoint in %s; continue "
                "with --resume %s\n",
                sig, (long long)tr->steps, where, checkpoint, checkpoint);
    else
        fprintf(stderr,
                "onnxtrain: stopped by %s after step %lld; no checkpoint was written (use "
                "--checkpoint FILE to keep the progress)\n",
                sig, (long long)tr->steps);
    if (pc->log_err.code != OT_OK)
        ot_cli_error("%s", pc->log_err.msg);
    return 128 + tr->stopped_by;
}

/* `--device cuda` in a launch of several processes (mpirun, srun): the GPU
   of the process's local rank, modulo the GPUs it sees
   (ot_dist_local_device), so that the ranks of a machine do not all take
   cuda:0; -v says which. A name with an index (cuda:N) stays: every rank
   on GPU N. Returns the name to use (buf, or `name`). */
static const char *rank_device(const char *name, char *buf, size_t size)
{
    const char *var;
    int local;
    if (!name || strcmp(name, "cuda") != 0 || (local = ot_dist_local_rank(&var)) < 0)
        return name;
    int dev = ot_dist_local_device(local, ot_device_count(OT_DEVICE_CUDA));
    snprintf(buf, size, "cuda:%d", dev);
    ot_log(OT_LOG_INFO, "--device cuda: cuda:%d, the GPU of local rank %d (%s)", dev, local,
           var);
    return buf;
}

/* Under an MPI launcher (--distributed auto): joins the job; ranks other
   than 0 write nothing (no model, log, plot or checkpoint; their standard
   output is discarded) and report only errors, prefixed with their rank. */
static int start_ranks(const finetune_args *fa, ot_finetune_opts *o, progress_ctx *pc,
                       const char **out)
{
    ot_err err;
    ot_err_init(&err);
    if (ot_dist_init((ot_dist_mode)fa->distributed, fa->rank_timeout, &err) != OT_OK)
        return ot_cli_error("%s", err.msg);
    if (ot_dist_rank() == 0)
        return OT_EXIT_OK;
    o->checkpoint = NULL; /* besides: the trainer saves on rank 0 only */
    pc->log_path = pc->plot_path = NULL;
    (void)out;
    if (!freopen("/dev/null", "w", stdout))
        return ot_cli_error("rank %d: cannot discard standard output", ot_dist_rank());
    pc->f = stdout;
    ot_cli_errors_only();
    return OT_EXIT_OK;
}

/* NCCL's communicator (src/dist/nccl.c) over the MPI one: with --device
   cuda under a launcher (--distributed auto), or --distributed nccl (also
   one rank alone). --device cuda gives each rank its local rank's GPU,
   cuda:N GPU N. Test-only: ONNXTRAIN_NCCL_HOST=1 runs it on the host's
   stand-in queue with --device cpu (the CPU executor's buffers as "device"
   buffers; =device:N puts every rank on stand-in device N). A failure ends
   every rank, in one line from the ranks that know why. */
static int start_nccl(const finetune_args *fa, ot_finetune_opts *o)
{
    static char device_name[32];
    ot_device want;
    ot_err err;
    ot_err_init(&err);
    if (ot_device_parse(o->device, &want, &err) != OT_OK)
        want.kind = OT_DEVICE_CUDA; /* refused already, or cuda where it is not usable */
    const char *host = getenv("ONNXTRAIN_NCCL_HOST");
    bool on_host = host && *host && strcmp(host, "0") != 0;
    ot_comm *c = ot_dist_current();
    bool cuda = want.kind == OT_DEVICE_CUDA;
    if (fa->distributed == OT_DIST_OFF ||
        (fa->distributed == OT_DIST_AUTO && !(cuda && c && c->size > 1)))
        return OT_EXIT_OK;
    if (cuda == on_host) {
        if (ot_dist_rank() != 0)
            return OT_EXIT_ERROR;
        return ot_cli_error(on_host ? "ONNXTRAIN_NCCL_HOST (a test's stand-in) runs on --device "
                                      "cpu"
                                    : "--distributed nccl reduces on GPUs: it needs --device "
                                      "cuda");
    }
    int index = -1, chosen = -1;
    if (on_host && !strncmp(host, "device:", 7))
        index = atoi(host + 7);
    else if (!on_host && o->device && strcmp(o->device, "cuda") != 0)
        index = want.index;
    bool quiet = false;
    if (ot_dist_nccl_init(index, on_host ? ot_dist_host_queue() : ot_dist_cuda_queue(), &chosen,
                          &quiet, &err) != OT_OK)
        return quiet ? OT_EXIT_ERROR : ot_cli_error("%s", err.msg);
    if (!on_host) {
        snprintf(device_name, sizeof device_name, "cuda:%d", chosen);
        o->device = device_name;
    }
    return OT_EXIT_OK;
}

/* Maps the command line to the recipe's options (ot_finetune_opts), runs it
   (src/train/finetune.c) and prints its report. */
int ot_cmd_finetune(int argc, char **argv)
{
    ot_cli_args a;
    const ot_cli_cmd *cmd = &finetune_cmd;
    finetune_args fa = { .ft = ot_finetune_opts_default() };
    ot_finetune_opts *const po = &fa.ft;
    int rc = ot_cli_parse_into(cmd, argc, argv, &a, &fa);
    if (rc != OT_EXIT_OK)
        return rc;
    progress_ctx pc = { 0 };
    char **train_pats = NULL, **freeze_pats = NULL;
    ot_err err;
    ot_err_init(&err);
    if (a.help) {
        ot_cli_print_usage(cmd, stdout);
        goto out;
    }
    ot_finetune_opts o = *po;
    const char *model = a.pos[0], *data = o.data, *out = o.output;
    o.model_path = model;
    if (!data) {
        rc = ot_cli_usage_error(cmd, "missing --data PATH");
        goto out;
    }
    if (!out && !o.dry_run) {
        rc = ot_cli_usage_error(cmd, "missing -o OUT.onnx");
        goto out;
    }
    /* processes of a launch that train alone: each on its local rank's GPU
       (together, NCCL gives each rank its GPU: start_nccl) */
    char rank_dev[32];
    if (fa.distributed == OT_DIST_OFF)
        o.device = rank_device(o.device, rank_dev, sizeof rank_dev);
    ot_device device;
    if ((rc = ot_cli_device(cmd, o.device, &device)) != OT_EXIT_OK ||
        (rc = ot_cli_precision(&device, o.precision)) != OT_EXIT_OK ||
        (rc = ot_cli_plans(&fa.plans)) != OT_EXIT_OK)
        goto out;
    bool val = a.count[FT_VAL_SPLIT] || a.count[FT_VAL_DATA];
    if (a.count[FT_VAL_SPLIT] && a.count[FT_VAL_DATA]) {
        rc = ot_cli_usage_error(cmd, "--val-split and --val-data are exclusive");
        goto out;
    }
    o.export_batch = a.count[FT_BATCH] ? fa.batch : 0;
    pc.convert = &fa.conv;
    if ((o.keep_best || o.patience) && !val) {
        rc = ot_cli_usage_error(cmd, "--keep best and --patience need --val-split or --val-data");
        goto out;
    }
    if (o.checkpoint && out && !strcmp(o.checkpoint, out) && !ot_file_is_special(out)) {
        rc = ot_cli_usage_error(cmd, "--checkpoint and -o must name different files");
        goto out;
    }
    /* --resume and --checkpoint may be the same file: it is read first */
    if ((rc = ot_cli_distinct(out, "output", model, "model")) != OT_EXIT_OK ||
        (rc = ot_cli_distinct(out, "output", o.resume, "checkpoint to resume")) != OT_EXIT_OK ||
        (rc = ot_cli_distinct(out, "output", o.checkpoint, "checkpoint")) != OT_EXIT_OK ||
        (rc = ot_cli_distinct(o.checkpoint, "checkpoint", model, "model")) != OT_EXIT_OK ||
        (rc = ot_cli_distinct(fa.log, "log", model, "model")) != OT_EXIT_OK ||
        (rc = ot_cli_distinct(fa.log, "log", o.resume, "checkpoint to resume")) != OT_EXIT_OK ||
        (rc = ot_cli_distinct(fa.log, "log", out, "output")) != OT_EXIT_OK ||
        (rc = ot_cli_distinct(fa.log, "log", o.checkpoint, "checkpoint")) != OT_EXIT_OK ||
        (rc = ot_cli_distinct(fa.plot, "plot", model, "model")) != OT_EXIT_OK ||
        (rc = ot_cli_distinct(fa.plot, "plot", o.resume, "checkpoint to resume")) !=
            OT_EXIT_OK ||
        (rc = ot_cli_distinct(fa.plot, "plot", out, "output")) != OT_EXIT_OK ||
        (rc = ot_cli_distinct(fa.plot, "plot", o.checkpoint, "checkpoint")) != OT_EXIT_OK ||
        (rc = ot_cli_distinct(fa.plot, "plot", fa.log, "log")) != OT_EXIT_OK)
        goto out;
    if (a.count[FT_CHECKPOINT_EVERY] && !o.checkpoint) {
        rc = ot_cli_usage_error(cmd, "--checkpoint-every needs --checkpoint FILE");
        goto out;
    }
    int n_train = 0, n_freeze = 0;
    train_pats = split_list(fa.train, &n_train);
    freeze_pats = split_list(fa.freeze, &n_freeze);
    o.train = train_pats ? (const char *const *)train_pats + 1 : NULL;
    o.n_train = n_train;
    o.freeze = freeze_pats ? (const char *const *)freeze_pats + 1 : NULL;
    o.n_freeze = n_freeze;
    bool json = fa.json;
    int data_classes[OT_DATA_MAX_CLASSES];
    if ((rc = read_mean_std(cmd, fa.mean, fa.std, &o.has_mean, o.mean, &o.has_std, o.std)) !=
            OT_EXIT_OK ||
        (rc = ot_cli_read_data_classes(cmd, fa.data_classes, data_classes, &o.n_data_classes)) !=
            OT_EXIT_OK)
        goto out;
    o.data_classes = data_classes;
    /* the export's calibration (--int8, --fp16): the training data as it
       was fed; --qat calibrates inside the run and writes int8 itself */
    ot_evaluate_opts calib = ot_evaluate_opts_default();
    calib.image_size = o.image_size;
    calib.has_normalize = 1;
    calib.normalize = o.normalize;
    calib.has_mean = o.has_mean;
    calib.has_std = o.has_std;
    memcpy(calib.mean, o.mean, sizeof calib.mean);
    memcpy(calib.std, o.std, sizeof calib.std);
    calib.data_classes = o.data_classes;
    calib.n_data_classes = o.n_data_classes;
    calib.threads = o.threads;
    calib.device = o.device;
    if (!fa.conv.calib_data)
        fa.conv.calib_data = o.data;
    fa.conv.calib_prep = &calib;
    o.calib_images = fa.conv.calib_images;
    o.calib_method = (int)fa.conv.calib_method;
    if (o.qat && fa.conv.fp16) {
        rc = ot_cli_usage_error(cmd, "--qat writes an int8 model: --fp16 excludes it");
        goto out;
    }
    if (o.qat)
        fa.conv.int8 = false;

    FILE *log = json ? stderr : stdout;
    pc.f = log;
    pc.tty = isatty(fileno(log)) != 0;
    pc.resume = o.resume;
    pc.epochs = o.epochs;
    pc.patience = o.patience;
    pc.plot_path = fa.plot;
    pc.log_path = fa.log;
    if (!o.dry_run && ((rc = start_ranks(&fa, &o, &pc, &out)) != OT_EXIT_OK ||
                       (rc = start_nccl(&fa, &o)) != OT_EXIT_OK))
        goto out;
    calib.device = o.device; /* NCCL: the rank's own GPU */
    /* --deterministic alone means one thread (the library's rule); the ranks
       of a distributed run keep the library's default */
    if (!o.deterministic && !o.dry_run && !ot_dist_current())
        calib.threads = o.threads = ot_cli_threads(o.threads, log);
    if (!o.dry_run && (pc.log_path || pc.plot_path) &&
        ot_train_log_new(pc.log_path, &pc.log, &err) != OT_OK) {
        rc = ot_cli_error("%s", err.msg);
        goto out;
    }
    o.stop = &stop_signal;
    o.progress = on_progress;
    o.user = &pc;
    ot_finetune_hooks hooks = { .resumed = on_resumed,
                                .profile = fa.profile,
                                .profile_report = on_profile,
                                .prepare_export = prepare_export,
                                .user = &pc };
    ot_finetune_result tr;
    ot_status st = ot_finetune_run(&o, &hooks, &tr, &err);
    ot_train_log_free(pc.log);
    if (st != OT_OK && ot_dist_current() && !tr.agreed_error) {
        /* the other ranks may wait for this one in a collective */
        ot_cli_error("%s", err.msg);
        fflush(stderr);
        ot_dist_abort(OT_EXIT_ERROR);
    }
    pc.log = NULL;
    if (st != OT_OK) {
        rc = pc.export_rc                 ? pc.export_rc
             : tr.usage_error             ? ot_cli_usage_error(cmd, "%s", err.msg)
                                          : ot_cli_error("%s", err.msg);
        goto out;
    }
    if (o.dry_run)
        goto out;
    if (tr.stopped_by) {
        rc = report_stop(&tr, o.checkpoint, &pc);
        goto out;
    }
    ot_cli_precision_said(log, o.precision);
    fprintf(log, "wrote %s\n", out);
    if (json) {
        json_t *j = ot_json_set(json_object(), "epochs", json_integer(o.epochs));
        j = ot_json_set(j, "steps", json_integer(tr.steps));
        j = ot_json_set(j, "train_loss", ot_json_fixed(tr.train_loss, 6));
        j = ot_json_set(j, "train_accuracy", ot_json_fixed(tr.train_accuracy, 6));
        j = ot_json_set(j, "trainable_params", json_integer((json_int_t)tr.trainable_values));
        j = ot_json_set(j, "cache", json_boolean(tr.cache_used));
        j = ot_json_set(j, "cache_dtype", ot_json_text(tr.cache_bf16 ? "bf16" : "f32"));
        j = ot_json_set(j, "cache_bytes", json_integer((json_int_t)tr.cache_bytes));
        j = ot_json_set(j, "precision", ot_json_text(ot_precision_name(tr.precision)));
        j = ot_json_set(j, "train_images", json_integer(tr.n_train));
        j = ot_json_set(j, "val_images", json_integer(tr.n_val));
        j = ot_json_set(j, "classes", json_integer(tr.n_classes));
        if (tr.has_test) {
            json_t *t = ot_json_set(json_object(), "top1", ot_json_fixed(tr.test_top1, 6));
            t = ot_json_set(t, "top5", ot_json_fixed(tr.test_top5, 6));
            t = ot_json_set(t, "loss", ot_json_fixed(tr.test_loss, 6));
            j = ot_json_set(j, "test", ot_json_set(t, "n", json_integer(tr.test_n)));
        }
        if (tr.qat) {
            json_t *q = ot_json_set(json_object(), "steps", json_integer(tr.qat_steps));
            q = ot_json_set(q, "fp32_top1", ot_json_fixed(tr.fp32_top1, 6));
            q = ot_json_set(q, "int8_ptq_top1", ot_json_fixed(tr.ptq_top1, 6));
            q = ot_json_set(q, "int8_qat_top1", ot_json_fixed(tr.has_test ? tr.test_top1 : (double)NAN, 6));
            j = ot_json_set(j, "qat", q);
        }
        j = ot_json_set(j, "output", ot_json_text(out));
        if ((rc = ot_cli_print_json(j)) != OT_EXIT_OK)
            goto out;
    }
    rc = ot_cli_finish_stdout();
    /* The model is written; the checkpoint or the log is not. */
    bool ck_failed = tr.checkpoint_err.code != OT_OK, log_failed = pc.log_err.code != OT_OK;
    if (rc == OT_EXIT_OK && (ck_failed || log_failed))
        rc = ot_cli_error("%s%s%s (the trained model was written to %s)",
                          ck_failed ? tr.checkpoint_err.msg : "",
                          ck_failed && log_failed ? "; " : "",
                          log_failed ? pc.log_err.msg : "", out);
out:
    free_list(train_pats);
    free_list(freeze_pats);
    ot_train_log_free(pc.log);
    ot_cli_args_fini(&a);
    ot_dist_fini();
    return rc;
}

/* Warnings of ot_evaluate through the log. */
static void on_eval_progress(const ot_ft_progress *r, void *user)
{
    (void)user;
    if (r->message)
        ot_log(r->event == OT_FT_WARNING ? OT_LOG_WARN : OT_LOG_INFO, "%s", r->message);
}

/* Maps the command line to ot_evaluate's options and prints the scores. */
int ot_cmd_eval(int argc, char **argv)
{
    ot_cli_args a;
    const ot_cli_cmd *cmd = &eval_cmd;
    eval_args ea = { .ev = ot_evaluate_opts_default() };
    int rc = ot_cli_parse_into(cmd, argc, argv, &a, &ea);
    if (rc != OT_EXIT_OK)
        return rc;
    ot_evaluation ev = { 0 };
    ot_err err;
    ot_err_init(&err);
    if (a.help) {
        ot_cli_print_usage(cmd, stdout);
        goto out;
    }
    ot_evaluate_opts o = ea.ev;
    o.model_path = a.pos[0];
    if (!o.data) {
        rc = ot_cli_usage_error(cmd, "missing --data PATH");
        goto out;
    }
    /* under a launcher each rank scores on its local rank's GPU */
    char rank_dev[32];
    o.device = rank_device(o.device, rank_dev, sizeof rank_dev);
    ot_device device;
    if ((rc = ot_cli_device(cmd, o.device, &device)) != OT_EXIT_OK ||
        (rc = ot_cli_precision(&device, o.precision)) != OT_EXIT_OK ||
        (rc = ot_cli_plans(&ea.plans)) != OT_EXIT_OK)
        goto out;
    int data_classes[OT_DATA_MAX_CLASSES];
    if ((rc = read_mean_std(cmd, ea.mean, ea.std, &o.has_mean, o.mean, &o.has_std, o.std)) !=
            OT_EXIT_OK ||
        (rc = ot_cli_read_data_classes(cmd, ea.data_classes, data_classes, &o.n_data_classes)) !=
            OT_EXIT_OK)
        goto out;
    o.data_classes = data_classes;
    o.has_normalize = a.count[EV_NORMALIZE] > 0;
    o.progress = on_eval_progress;
    /* under a launcher: each rank scores its share, rank 0 prints the scores */
    if (ot_dist_init((ot_dist_mode)ea.distributed, ea.rank_timeout, &err) != OT_OK) {
        rc = ot_cli_error("%s", err.msg);
        goto out;
    }
    if (ot_dist_rank() != 0) {
        if (!freopen("/dev/null", "w", stdout)) {
            rc = ot_cli_error("rank %d: cannot discard standard output", ot_dist_rank());
            goto out;
        }
        ot_cli_errors_only();
    }
    if (!ot_dist_current()) /* the ranks keep the library's default */
        o.threads = ot_cli_threads(o.threads, NULL);
    if (ot_evaluate(&o, &ev, &err) != OT_OK) {
        rc = ot_cli_error("%s", err.msg);
        if (ot_dist_current()) /* the other ranks may wait in a reduction */
            ot_dist_abort(OT_EXIT_ERROR);
        goto out;
    }
    ot_cli_precision_said(stderr, o.precision);
    if (ea.json) {
        if ((rc = print_eval_json(&ev, ev.n_bad)) != OT_EXIT_OK)
            goto out;
    } else {
        printf("model: %s\ndata: %s (%s split)\n", a.pos[0], o.data,
               ev.test_split ? "test" : "train");
        if (o.skip_bad)
            printf("skipped %lld unreadable images (--skip-bad)\n", (long long)ev.n_bad);
        print_eval_text(stdout, &ev);
    }
    rc = ot_cli_finish_stdout();
out:
    ot_dist_fini();
    ot_evaluation_fini(&ev);
    ot_cli_args_fini(&a);
    return rc;
}
