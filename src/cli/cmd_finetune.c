/*
 * cmd_finetune.c: `onnxtrain finetune MODEL --data PATH -o OUT.onnx` and
 * `onnxtrain eval MODEL --data PATH`.
 *
 * finetune: import, find the head, swap it for --classes, freeze by --mode /
 * --train / --freeze / --freeze-until, train (src/train/trainer.c), score the
 * test split when the data set has one, record the preprocessing and class
 * names in metadata_props, and export a plain inference model.
 * Checkpoints (docs/checkpoint.md): --checkpoint FILE is written after every
 * epoch, every --checkpoint-every N steps, and on SIGINT/SIGTERM, whose
 * handler only sets a flag the training loop reads after each step; the run
 * then stops with status 130/143. --resume FILE continues a run.
 * eval: top-1 and top-5 accuracy, loss, per-class accuracy and the confusion
 * matrix, preprocessing as the model's metadata says unless overridden.
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
#include "core/file.h"
#include "data/data.h"
#include "onnx/onnx.h"
#include "passes/freeze.h"
#include "passes/head.h"
#include "train/checkpoint.h"
#include "train/meta.h"
#include "train/report.h"
#include "train/trainer.h"

static const ot_cli_text_opt finetune_opts[] = {
    { "data", 0, "PATH",
      "training data: an image folder (a folder of JPEG/PNG files per class), CIFAR-10 binary "
      "or IDX (MNIST) files" },
    { "output", 'o', "OUT.onnx", "where to write the fine-tuned model" },
    { "classes", 0, "N", "replace the head with a new one of N classes" },
    { "mode", 0, "MODE", "feature-extract (default), fine-tune or full" },
    { "train", 0, "PAT,...", "also train parameters or nodes matching these patterns" },
    { "freeze", 0, "PAT,...", "freeze parameters or nodes matching these patterns" },
    { "freeze-until", 0, "NAME", "freeze the node or value NAME and everything upstream" },
    { "bn", 0, "policy|train", "BatchNorm: by region (default), or train mode everywhere" },
    { "epochs", 0, "N", "passes over the training data (default 5)" },
    { "batch-size", 0, "N", "images per step (default 32)" },
    { "optimizer", 0, "NAME", "sgd, adam (default) or adamw" },
    { "lr", 0, "RATE", "learning rate (default 1e-3 feature-extract, else 1e-4)" },
    { "head-lr", 0, "RATE", "learning rate of the head's parameters" },
    { "momentum", 0, "M", "SGD momentum (default 0.9)" },
    { "weight-decay", 0, "WD", "weight decay (default 0; AdamW 0.01)" },
    { "label-smoothing", 0, "EPS", "cross-entropy label smoothing (default 0)" },
    { "lr-schedule", 0, "KIND", "constant (default), step or cosine" },
    { "lr-step", 0, "EPOCHS", "step schedule: epochs between decays (default 7)" },
    { "lr-gamma", 0, "G", "step schedule: decay factor (default 0.1)" },
    { "warmup", 0, "STEPS", "linear learning-rate warm-up over this many steps" },
    { "clip-grad", 0, "NORM", "clip the gradients' total L2 norm" },
    { "image-size", 0, "S", "resize the shorter side to S and center-crop SxS" },
    { "normalize", 0, "KIND", "imagenet (default), half or none" },
    { "mean", 0, "R,G,B", "per-channel mean, overriding --normalize (0..1 scale)" },
    { "std", 0, "R,G,B", "per-channel standard deviation, overriding --normalize" },
    { "threads", 0, "N", "threads (default OMP_NUM_THREADS, else all cores)" },
    { "device", 0, "NAME", OT_CLI_DEVICE_HELP },
    { "seed", 0, "S", "seed for the new head and the data order (default 0)" },
    { "no-cache", 0, NULL, "do not cache the frozen prefix's output across epochs" },
    { "cache-mem", 0, "BYTES", "memory for the prefix cache before it spills (default 2G)" },
    { "cache-dir", 0, "DIR", "folder for a spilled prefix cache (default $TMPDIR or /tmp)" },
    { "cache-dtype", 0, "f32|bf16", "f32 (default) or bf16: half the cache memory, rounded features" },
    { "max-steps", 0, "N", "stop after N steps in all (for quick checks)" },
    { "workers", 0, "N", "background threads preparing batches (default 1; 0: in the loop)" },
    { "data-classes", 0, "LIST", "use only these classes (\"5-9\", \"0,2,4\"), relabelled 0.." },
    { "per-class", 0, "N", "use at most N training images per class (seeded choice)" },
    { "augment", 0, NULL, "random resized crop and horizontal flip (turns the cache off)" },
    { "skip-bad", 0, NULL, "skip and count unreadable images instead of stopping" },
    { "val-split", 0, "F", "hold out this fraction of the training data (seeded, stratified)" },
    { "val-data", 0, "PATH", "validation data, scored after every epoch" },
    { "keep", 0, "best|last", "export the last epoch's weights (default) or the best one's" },
    { "patience", 0, "N", "stop after N epochs without a better validation accuracy" },
    { "log", 0, "FILE.csv", "write per-epoch metrics as CSV" },
    { "batch", 0, "N|dynamic", "batch dim of the exported model (default dynamic, N)" },
    { "profile", 0, NULL, "print the time per node type and per node, forward and backward" },
    { "plot", 0, "FILE.svg", "draw the loss and accuracy curves as SVG" },
    { "checkpoint", 0, "FILE", "write a checkpoint after every epoch and when interrupted" },
    { "checkpoint-every", 0, "N", "also write the checkpoint every N steps" },
    { "resume", 0, "FILE", "continue the run a checkpoint recorded (may equal --checkpoint)" },
    { "deterministic", 0, NULL, "bit-reproducible: one thread unless --threads is given" },
    { "json", 0, NULL, "print the final metrics as one JSON object" },
    { "dry-run", 0, NULL, "print the training plan and exit" },
    { "max-tensor-size", 0, "BYTES", "refuse larger tensors (suffix K, M, G; default 16G)" },
    { "max-data-size", 0, "BYTES", "memory for CIFAR-10/IDX data and file lists (default 4G)" },
    { "max-files", 0, "N", "entries an image folder's walk may visit (default 5000000)" },
    { NULL, 0, NULL, NULL },
};

static const ot_cli_cmd finetune_cmd = {
    .name = "finetune",
    .args = "MODEL",
    .summary = "Adapts a pretrained classifier to new data: swaps the head, freezes what\n"
               "the mode says, trains on the CPU and writes a plain inference ONNX file.",
    .details = "Modes: feature-extract trains only the head; fine-tune also trains the\n"
               "last stage (everything at the final spatial resolution before the global\n"
               "pooling); full trains everything. BatchNorm in the frozen part runs on its\n"
               "running statistics; in the trained part it uses batch statistics and\n"
               "updates them. The frozen prefix's output is computed once per image and\n"
               "reused in later epochs unless --no-cache.\n"
               "With --checkpoint FILE, SIGINT or SIGTERM stops the run after the current\n"
               "step, writes FILE and exits with 130 or 143; a second signal a second or\n"
               "more later ends it at once. --resume FILE continues it; with\n"
               "--deterministic the result is the same bytes as an uninterrupted run.\n"
               "`onnxtrain export FILE OUT.onnx` turns a checkpoint into the plain model.\n",
    .text_opts = finetune_opts,
    .n_pos_min = 1,
    .n_pos_max = 1,
};

static const ot_cli_text_opt eval_opts[] = {
    { "data", 0, "PATH",
      "data: an image folder (a folder of JPEG/PNG files per class), CIFAR-10 binary or IDX "
      "(MNIST) files" },
    { "batch-size", 0, "N", "images per run (default 32)" },
    { "image-size", 0, "S", "override the model's recorded image size" },
    { "normalize", 0, "KIND", "override the recorded normalization: imagenet, half or none" },
    { "data-classes", 0, "LIST", "score only these classes (\"5-9\", \"0,2,4\"), relabelled 0.." },
    { "mean", 0, "R,G,B", "override the recorded per-channel mean" },
    { "std", 0, "R,G,B", "override the recorded per-channel standard deviation" },
    { "threads", 0, "N", "threads (default OMP_NUM_THREADS, else all cores)" },
    { "device", 0, "NAME", OT_CLI_DEVICE_HELP },
    { "skip-bad", 0, NULL, "skip and count unreadable images instead of stopping" },
    { "json", 0, NULL, "print one JSON object" },
    { "max-tensor-size", 0, "BYTES", "refuse larger tensors (suffix K, M, G; default 16G)" },
    { "max-data-size", 0, "BYTES", "memory for CIFAR-10/IDX data and file lists (default 4G)" },
    { "max-files", 0, "N", "entries an image folder's walk may visit (default 5000000)" },
    { NULL, 0, NULL, NULL },
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
    .text_opts = eval_opts,
    .n_pos_min = 1,
    .n_pos_max = 1,
};

/* An int option within lo .. hi (hi at most INT_MAX) into *out. */
static int int_opt(const ot_cli_cmd *cmd, const ot_cli_args *a, const char *name, int lo,
                   int hi, int *out)
{
    int64_t v = *out;
    int rc = ot_cli_int_opt(cmd, a, name, lo, hi, &v);
    *out = (int)v;
    return rc;
}

/* The data-set limits --max-data-size and --max-files (finetune, eval). */
static int data_opts(const ot_cli_cmd *cmd, const ot_cli_args *a, ot_data_opts *o)
{
    int rc;
    int64_t files = OT_DATA_DEFAULT_MAX_ENTRIES;
    o->max_bytes = OT_DATA_DEFAULT_MAX_BYTES;
    if ((rc = ot_cli_size_opt(cmd, a, "max-data-size", 1, UINT64_MAX, &o->max_bytes)) !=
            OT_EXIT_OK ||
        (rc = ot_cli_int_opt(cmd, a, "max-files", 1, INT64_MAX, &files)) != OT_EXIT_OK)
        return rc;
    o->max_entries = files;
    return OT_EXIT_OK;
}

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

static ot_status norm_of(const char *s, ot_data_norm *n)
{
    if (!s || !strcmp(s, "imagenet"))
        *n = OT_DATA_NORM_IMAGENET;
    else if (!strcmp(s, "half"))
        *n = OT_DATA_NORM_HALF;
    else if (!strcmp(s, "none"))
        *n = OT_DATA_NORM_NONE;
    else
        return OT_ERR_ARG;
    return OT_OK;
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

/* Applies --mean/--std over the transform. Returns an exit status. */
static int apply_mean_std(const ot_cli_cmd *cmd, const ot_cli_args *a, ot_data_transform *t)
{
    const char *m = ot_cli_value(cmd, a, "mean"), *s = ot_cli_value(cmd, a, "std");
    if (m && !parse_triple(m, OT_DATA_MEAN_MIN, OT_DATA_MEAN_MAX, t->mean))
        return ot_cli_usage_error(cmd, "bad value '%s' for --mean (expected one decimal number "
                                       "or three, comma-separated, each from %g to %g)",
                                  m, OT_DATA_MEAN_MIN, OT_DATA_MEAN_MAX);
    if (s && !parse_triple(s, OT_DATA_STD_MIN, OT_DATA_STD_MAX, t->std))
        return ot_cli_usage_error(cmd, "bad value '%s' for --std (expected one decimal number "
                                       "or three, comma-separated, each from %g to %g)",
                                  s, OT_DATA_STD_MIN, OT_DATA_STD_MAX);
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

/* Applies --data-classes / --per-class to *ds (replacing it). Returns an exit
   status. */
static int select_data(const ot_cli_cmd *cmd, const ot_cli_args *a, ot_dataset **ds,
                       int64_t per_class, uint64_t seed)
{
    const char *list = ot_cli_value(cmd, a, "data-classes");
    if (!list && per_class <= 0)
        return OT_EXIT_OK;
    int classes[OT_DATA_MAX_CLASSES], n = 0;
    if (list) {
        if (!parse_class_list(list, classes, &n, OT_DATA_MAX_CLASSES))
            return ot_cli_usage_error(cmd, "--data-classes: expected numbers and ranges like 5-9");
    } else {
        n = ot_data_n_classes(*ds);
        for (int c = 0; c < n; c++)
            classes[c] = c;
    }
    ot_dataset *sel = NULL;
    ot_err err;
    if (ot_data_select(*ds, classes, n, per_class, seed, &sel, &err) != OT_OK)
        return ot_cli_error("%s", err.msg);
    ot_data_free(*ds);
    *ds = sel;
    return OT_EXIT_OK;
}

/* The model's image side when its input is static and square, else 224. */
static int default_size(const ot_graph *g)
{
    for (int32_t i = 0; i < g->n_inputs; i++) {
        const ot_value *v = &g->values[g->inputs[i].value];
        if (v->flags & OT_VAL_INIT)
            continue;
        if (v->ndim == 4 && v->dims[2] > 0 && v->dims[2] == v->dims[3])
            return (int)v->dims[2];
        break;
    }
    return 224;
}

/* A model that declares a static image size other than the one it was
   trained at gets the trained size declared, so that a runtime feeds it what
   the recorded preprocessing produces. value_info shapes are then rewritten
   from inference. */
static ot_status fit_input_size(ot_graph *g, int size, ot_err *err)
{
    for (int32_t i = 0; i < g->n_inputs; i++) {
        ot_value *v = &g->values[g->inputs[i].value];
        if (v->flags & OT_VAL_INIT)
            continue;
        if (v->ndim != 4 || (v->dims[2] < 0 && v->dims[3] < 0) ||
            (v->dims[2] == size && v->dims[3] == size))
            return OT_OK;
        ot_log(OT_LOG_INFO, "input '%s': declared image size set to the trained %dx%d", v->name,
               size, size);
        v->dims[2] = v->dims[3] = size;
        v->dim_names[2] = v->dim_names[3] = NULL;
        v->flags |= OT_VAL_SHAPE_DIRTY;
        for (int32_t k = 0; k < g->n_value_info; k++) {
            ot_value *w = &g->values[g->value_info[k].value];
            w->flags &= ~(uint32_t)OT_VAL_SHAPE_DECLARED;
            w->flags |= OT_VAL_SHAPE_DIRTY;
        }
        return ot_graph_infer_shapes(g, err);
    }
    return OT_OK;
}

typedef struct progress_ctx {
    FILE *f;
    bool tty;
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

static void on_progress(const ot_train_epoch *e, bool end, void *user)
{
    progress_ctx *p = user;
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

/* n_bad: images --skip-bad left out (-1: the option was not given). */
/* eval --json: the metrics with 6 decimals as the text shows them (NaN and
   infinities as null), per-class accuracy, the confusion matrix. */
static int print_eval_json(const ot_eval_result *r, const ot_dataset *ds, int64_t n_bad)
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
        json_t *e = ot_json_set(json_object(), "class", ot_json_text(ot_data_class_name(ds, c)));
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

static void print_eval_text(FILE *f, const ot_eval_result *r, const ot_dataset *ds)
{
    fprintf(f, "images: %lld\ntop-1: %.4f\ntop-5: %.4f\nloss: %.4f\nper class:\n", (long long)r->n,
            r->top1, r->top5, r->loss);
    for (int c = 0; c < r->n_classes; c++) {
        int64_t tot = 0;
        for (int k = 0; k < r->n_classes; k++)
            tot += r->confusion[c * r->n_classes + k];
        fprintf(f, "  %-16s %.4f (%lld)\n", ot_data_class_name(ds, c),
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

/* What a checkpoint carries besides the training state: the trained input
   size and the preprocessing metadata, as the final export writes them, so
   that `onnxtrain export` of the last checkpoint gives the same file. */
typedef struct ckpt_ctx {
    int size;
    const ot_data_transform *t;
    const char *const *names;
    int n_classes;
} ckpt_ctx;

static ot_status prepare_checkpoint(ot_graph *g, void *user, ot_err *err)
{
    const ckpt_ctx *c = user;
    ot_status st = fit_input_size(g, c->size, err);
    if (st == OT_OK)
        st = ot_train_meta_write(g, c->t, c->names, c->n_classes, err);
    return st;
}

/* Reads the model's class names (ot_train_meta_classes: malformed ones are an
   error) and warns when they are not the data's, since the scores go by label
   index. Returns an exit code. */
static int check_model_names(const char *model, const ot_graph *g, const ot_dataset *ds)
{
    ot_err err;
    ot_err_init(&err);
    char **names = NULL;
    int n = 0;
    if (ot_train_meta_classes(g, &names, &n, &err) != OT_OK)
        return ot_cli_error("%s: %s", model, err.msg);
    int nc = ot_data_n_classes(ds);
    if (names && n != nc)
        ot_log(OT_LOG_WARN, "%s: the model names %d classes (onnxtrain.classes), the data %d; "
                            "labels are matched by index",
               model, n, nc);
    else
        for (int c = 0; c < n; c++)
            if (strcmp(names[c], ot_data_class_name(ds, c))) {
                ot_log(OT_LOG_WARN, "%s: class %d is '%s' in the model (onnxtrain.classes) "
                                    "but '%s' in the data; labels are matched by index",
                       model, c, names[c], ot_data_class_name(ds, c));
                break;
            }
    ot_free(names);
    return OT_EXIT_OK;
}

/* Outputs of the model's first output when it is [N, K] with K known; else 0. */
static int64_t output_classes(const ot_graph *g)
{
    if (g->n_outputs < 1)
        return 0;
    const ot_value *v = &g->values[g->outputs[0].value];
    return v->ndim == 2 && v->dims[1] > 0 ? v->dims[1] : 0;
}

int ot_cmd_finetune(int argc, char **argv)
{
    ot_cli_args a;
    int rc = ot_cli_parse(&finetune_cmd, argc, argv, &a);
    if (rc != OT_EXIT_OK)
        return rc;
    const ot_cli_cmd *cmd = &finetune_cmd;
    ot_graph *g = NULL;
    ot_dataset *train = NULL, *test = NULL, *val = NULL;
    int64_t *train_idx = NULL, *val_idx = NULL;
    progress_ctx pc = { 0 };
    char **train_pats = NULL, **freeze_pats = NULL;
    const char **names = NULL;
    char *run_options = NULL;
    ot_eval_result ev = { 0 };
    ot_err err;
    ot_err_init(&err);
    if (a.help) {
        ot_cli_print_usage(cmd, stdout);
        goto out;
    }
#define V(name) ot_cli_value(cmd, &a, name)
    const char *model = a.pos[0], *data = V("data"), *out = V("output");
    if (!data) {
        rc = ot_cli_usage_error(cmd, "missing --data PATH");
        goto out;
    }
    if (!out && !ot_cli_count(cmd, &a, "dry-run")) {
        rc = ot_cli_usage_error(cmd, "missing -o OUT.onnx");
        goto out;
    }
    ot_train_opts o;
    ot_train_opts_default(&o);
    ot_freeze_opts fo = { .mode = OT_FREEZE_FEATURE_EXTRACT };
    const char *mode = V("mode");
    if (mode && !strcmp(mode, "fine-tune"))
        fo.mode = OT_FREEZE_FINE_TUNE;
    else if (mode && !strcmp(mode, "full"))
        fo.mode = OT_FREEZE_FULL;
    else if (mode && strcmp(mode, "feature-extract") != 0) {
        rc = ot_cli_usage_error(cmd, "--mode must be feature-extract, fine-tune or full");
        goto out;
    }
    double d;
    int64_t classes = 0;
    if ((rc = ot_cli_int_opt(cmd, &a, "classes", 1, 1 << 20, &classes)) != OT_EXIT_OK ||
        (rc = int_opt(cmd, &a, "epochs", 1, 1000000, &o.epochs)) != OT_EXIT_OK ||
        (rc = int_opt(cmd, &a, "batch-size", 1, 1 << 16, &o.batch_size)) != OT_EXIT_OK)
        goto out;
    const char *optname = V("optimizer");
    ot_optim_kind kind = OT_OPTIM_ADAM;
    if (optname && !strcmp(optname, "sgd"))
        kind = OT_OPTIM_SGD;
    else if (optname && !strcmp(optname, "adamw"))
        kind = OT_OPTIM_ADAMW;
    else if (optname && strcmp(optname, "adam") != 0) {
        rc = ot_cli_usage_error(cmd, "--optimizer must be sgd, adam or adamw");
        goto out;
    }
    o.optim = ot_optim_opts_default(kind);
    if (kind == OT_OPTIM_SGD)
        o.optim.momentum = 0.9;
    o.lr = fo.mode == OT_FREEZE_FEATURE_EXTRACT ? 1e-3 : 1e-4;
    struct {
        const char *name;
        double lo, hi;
        double *dst;
    } reals[] = {
        { "lr", 0, 1e30, &o.lr },
        { "head-lr", 0, 1e30, &o.head_lr },
        { "momentum", 0, 1, &o.optim.momentum },
        { "weight-decay", 0, 1e6, &o.optim.weight_decay },
        { "clip-grad", 0, 1e30, &o.clip_grad },
    };
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++)
        if ((rc = ot_cli_real_opt(cmd, &a, reals[i].name, reals[i].lo, reals[i].hi,
                                  reals[i].dst)) != OT_EXIT_OK)
            goto out;
    if (!V("lr"))
        ot_log(OT_LOG_INFO, "learning rate %g (the default for this mode)", o.lr);
    d = o.graph.label_smoothing;
    if ((rc = ot_cli_real_opt(cmd, &a, "label-smoothing", 0, 1, &d)) != OT_EXIT_OK)
        goto out;
    o.graph.label_smoothing = (float)d;
    const char *bn = V("bn");
    if (bn && !strcmp(bn, "train"))
        o.graph.bn_all_train = true;
    else if (bn && strcmp(bn, "policy") != 0) {
        rc = ot_cli_usage_error(cmd, "--bn must be policy or train");
        goto out;
    }
    const char *sched = V("lr-schedule");
    o.schedule.kind = OT_SCHED_CONSTANT;
    o.schedule.step_size = 7;
    o.schedule.gamma = 0.1;
    if (sched && !strcmp(sched, "step"))
        o.schedule.kind = OT_SCHED_STEP;
    else if (sched && !strcmp(sched, "cosine")) {
        /* CosineAnnealingLR(T_max = epochs), stepped once per epoch. */
        o.schedule.kind = OT_SCHED_COSINE;
        o.schedule.t_max = o.epochs;
    }
    else if (sched && strcmp(sched, "constant") != 0) {
        rc = ot_cli_usage_error(cmd, "--lr-schedule must be constant, step or cosine");
        goto out;
    }
    int64_t ll;
    o.workers = 1;
    ot_exec_opts xo = { 0 };
    if ((rc = ot_cli_device(cmd, V("device"), &xo.device)) != OT_EXIT_OK)
        goto out;
    o.device = V("device");
    if ((rc = ot_cli_int_opt(cmd, &a, "lr-step", 1, 1000000, &o.schedule.step_size)) !=
            OT_EXIT_OK ||
        (rc = ot_cli_real_opt(cmd, &a, "lr-gamma", 0, 1e6, &o.schedule.gamma)) != OT_EXIT_OK ||
        (rc = ot_cli_int_opt(cmd, &a, "warmup", 0, 1LL << 40, &o.schedule.warmup_steps)) !=
            OT_EXIT_OK ||
        (rc = ot_cli_threads_opt(cmd, &a, &o.threads)) != OT_EXIT_OK ||
        (rc = ot_cli_seed_opt(cmd, &a, &o.seed)) != OT_EXIT_OK ||
        (rc = ot_cli_int_opt(cmd, &a, "max-steps", 1, INT64_MAX, &o.max_steps)) != OT_EXIT_OK ||
        (rc = int_opt(cmd, &a, "workers", 0, 64, &o.workers)) != OT_EXIT_OK)
        goto out;
    o.augment = ot_cli_count(cmd, &a, "augment") > 0;
    o.skip_bad = ot_cli_count(cmd, &a, "skip-bad") > 0;
    double val_split = 0;
    if ((rc = ot_cli_real_opt(cmd, &a, "val-split", 1e-9, 0.999999, &val_split)) != OT_EXIT_OK)
        goto out;
    if (V("val-split") && V("val-data")) {
        rc = ot_cli_usage_error(cmd, "--val-split and --val-data are exclusive");
        goto out;
    }
    const char *keep = V("keep");
    if (keep && strcmp(keep, "best") != 0 && strcmp(keep, "last") != 0) {
        rc = ot_cli_usage_error(cmd, "--keep must be best or last");
        goto out;
    }
    o.keep_best = keep && !strcmp(keep, "best");
    int64_t export_batch = 0;
    if (V("batch") && !ot_cli_parse_batch(V("batch"), &export_batch)) {
        rc = ot_cli_usage_error(cmd, "--batch must be a positive integer or 'dynamic'");
        goto out;
    }
    if ((rc = int_opt(cmd, &a, "patience", 1, 1000000, &o.patience)) != OT_EXIT_OK)
        goto out;
    if ((o.keep_best || o.patience) && !V("val-split") && !V("val-data")) {
        rc = ot_cli_usage_error(cmd, "--keep best and --patience need --val-split or --val-data");
        goto out;
    }
    o.checkpoint = V("checkpoint");
    o.resume = V("resume");
    if (o.checkpoint && out && !strcmp(o.checkpoint, out) && !ot_file_is_special(out)) {
        rc = ot_cli_usage_error(cmd, "--checkpoint and -o must name different files");
        goto out;
    }
    /* --resume and --checkpoint may be the same file: it is read first */
    if ((rc = ot_cli_distinct(out, "output", model, "model")) != OT_EXIT_OK ||
        (rc = ot_cli_distinct(out, "output", o.resume, "checkpoint to resume")) != OT_EXIT_OK ||
        (rc = ot_cli_distinct(out, "output", o.checkpoint, "checkpoint")) != OT_EXIT_OK ||
        (rc = ot_cli_distinct(o.checkpoint, "checkpoint", model, "model")) != OT_EXIT_OK ||
        (rc = ot_cli_distinct(V("log"), "log", model, "model")) != OT_EXIT_OK ||
        (rc = ot_cli_distinct(V("log"), "log", o.resume, "checkpoint to resume")) != OT_EXIT_OK ||
        (rc = ot_cli_distinct(V("log"), "log", out, "output")) != OT_EXIT_OK ||
        (rc = ot_cli_distinct(V("log"), "log", o.checkpoint, "checkpoint")) != OT_EXIT_OK ||
        (rc = ot_cli_distinct(V("plot"), "plot", model, "model")) != OT_EXIT_OK ||
        (rc = ot_cli_distinct(V("plot"), "plot", o.resume, "checkpoint to resume")) !=
            OT_EXIT_OK ||
        (rc = ot_cli_distinct(V("plot"), "plot", out, "output")) != OT_EXIT_OK ||
        (rc = ot_cli_distinct(V("plot"), "plot", o.checkpoint, "checkpoint")) != OT_EXIT_OK ||
        (rc = ot_cli_distinct(V("plot"), "plot", V("log"), "log")) != OT_EXIT_OK)
        goto out;
    if (V("checkpoint-every")) {
        if ((rc = ot_cli_int_opt(cmd, &a, "checkpoint-every", 1, INT64_MAX, &ll)) != OT_EXIT_OK)
            goto out;
        if (!o.checkpoint) {
            rc = ot_cli_usage_error(cmd, "--checkpoint-every needs --checkpoint FILE");
            goto out;
        }
        o.checkpoint_every = ll;
    }
    if (ot_cli_count(cmd, &a, "deterministic")) {
        o.deterministic = true;
        if (!V("threads"))
            o.threads = 1;
    }
    o.no_cache = ot_cli_count(cmd, &a, "no-cache") > 0;
    if ((rc = ot_cli_size_opt(cmd, &a, "cache-mem", 0, UINT64_MAX, &o.cache_mem)) != OT_EXIT_OK)
        goto out;
    o.cache_dir = V("cache-dir");
    if (V("cache-dtype")) {
        const char *cd = V("cache-dtype");
        if (!strcmp(cd, "bf16") || !strcmp(cd, "bfloat16"))
            o.cache_bf16 = true;
        else if (strcmp(cd, "f32") && strcmp(cd, "float32") && strcmp(cd, "float")) {
            rc = ot_cli_usage_error(cmd, "--cache-dtype must be f32 or bf16");
            goto out;
        }
    }
    ot_data_norm norm;
    if (norm_of(V("normalize"), &norm) != OT_OK) {
        rc = ot_cli_usage_error(cmd, "--normalize must be imagenet, half or none");
        goto out;
    }
    int n_train = 0, n_freeze = 0;
    train_pats = split_list(V("train"), &n_train);
    freeze_pats = split_list(V("freeze"), &n_freeze);
    fo.train = train_pats ? (const char *const *)train_pats + 1 : NULL;
    fo.n_train = n_train;
    fo.freeze = freeze_pats ? (const char *const *)freeze_pats + 1 : NULL;
    fo.n_freeze = n_freeze;
    fo.until = V("freeze-until");
    bool json = ot_cli_count(cmd, &a, "json") > 0;

    ot_import_opts io = { 0 };
    ot_data_transform early; /* --mean/--std are checked before any file is read */
    ot_data_transform_init(&early, 1, OT_DATA_NORM_NONE);
    if ((rc = ot_cli_import_opts(cmd, &a, &io)) != OT_EXIT_OK ||
        (rc = apply_mean_std(cmd, &a, &early)) != OT_EXIT_OK)
        goto out;
    ot_data_opts dopts;
    if ((rc = data_opts(cmd, &a, &dopts)) != OT_EXIT_OK)
        goto out;
    /* a checkpoint given as MODEL: its checksum must match (format 1 had none) */
    ot_status ist = ot_onnx_import_file(model, &io, &g, &err);
    if (ot_train_checkpoint_check_import(model, g, ist, &err) != OT_OK ||
        ot_data_open_with(data, OT_DATA_TRAIN, &dopts, &train, &err) != OT_OK) {
        rc = ot_cli_error("%s", err.msg);
        goto out;
    }
    {
        int64_t per_class = 0;
        if ((rc = ot_cli_int_opt(cmd, &a, "per-class", 1, INT64_MAX, &per_class)) != OT_EXIT_OK)
            goto out;
        if ((rc = select_data(cmd, &a, &train, per_class, o.seed)) != OT_EXIT_OK)
            goto out;
    }
    if (val_split > 0) {
        if (ot_data_split_indices(train, val_split, o.seed, &train_idx, &o.n_train_idx, &val_idx,
                                  &o.n_val_idx, &err) != OT_OK) {
            rc = ot_cli_error("%s", err.msg);
            goto out;
        }
        o.train_idx = train_idx;
        o.val_idx = val_idx;
        o.val_data = train;
        if (o.n_val_idx == 0) {
            rc = ot_cli_error("%s: --val-split %g leaves no validation images", data, val_split);
            goto out;
        }
    } else if (V("val-data")) {
        if (ot_data_open_with(V("val-data"), OT_DATA_TRAIN, &dopts, &val, &err) != OT_OK) {
            rc = ot_cli_error("%s", err.msg);
            goto out;
        }
        if (ot_data_n_classes(val) != ot_data_n_classes(train)) {
            rc = ot_cli_error("%s: %d classes, the training data has %d", V("val-data"),
                              ot_data_n_classes(val), ot_data_n_classes(train));
            goto out;
        }
        o.val_data = val;
    }
    if (ot_train_checkpoint_is_one(g)) { /* its checksum was checked at the import */
        if (ot_train_checkpoint_strip(g, &err) != OT_OK) {
            rc = ot_cli_error("%s: %s", model, err.msg);
            goto out;
        }
        ot_log(OT_LOG_WARN, "%s is a training checkpoint: a new run starts from its weights "
               "(use --resume to continue that run)", model);
    }
    if (ot_graph_check_finite(g, &err) != OT_OK) {
        rc = ot_cli_error("%s: %s", model, err.msg);
        goto out;
    }
    if ((o.checkpoint || o.resume) && ot_train_hash_file(model, &o.model_hash, &err) != OT_OK) {
        rc = ot_cli_error("%s", err.msg);
        goto out;
    }
    int size = default_size(g);
    if ((rc = int_opt(cmd, &a, "image-size", 1, OT_DATA_MAX_SIZE, &size)) != OT_EXIT_OK)
        goto out;
    ot_data_transform_init(&o.transform, size, norm);
    if ((rc = apply_mean_std(cmd, &a, &o.transform)) != OT_EXIT_OK)
        goto out;
    ot_head head;
    if (ot_pass_find_head(g, &head, &err) != OT_OK) {
        rc = ot_cli_error("%s", err.msg);
        goto out;
    }
    if (classes) {
        if (ot_pass_swap_head(g, &head, classes, o.seed, &err) != OT_OK) {
            rc = ot_cli_error("%s: %s", model, err.msg);
            goto out;
        }
        head.out_features = classes;
    } else if (head.found && head.out_features < ot_data_n_classes(train)) {
        rc = ot_cli_error("%s: the head has %lld outputs but the data has %d classes; use "
                          "--classes %d",
                          model, (long long)head.out_features, ot_data_n_classes(train),
                          ot_data_n_classes(train));
        goto out;
    }
    if (!classes && (rc = check_model_names(model, g, train)) != OT_EXIT_OK)
        goto out;
    {
        int64_t n_out = head.found ? head.out_features : output_classes(g);
        if (ot_train_check_classes(train, o.train_idx, o.n_train_idx, n_out, &err) != OT_OK) {
            rc = ot_cli_error("%s: %s", data, err.msg);
            goto out;
        }
        if (o.val_data && ot_train_check_classes(o.val_data, o.val_idx, o.n_val_idx, n_out,
                                                 &err) != OT_OK) {
            rc = ot_cli_error("%s: %s", val ? V("val-data") : data, err.msg);
            goto out;
        }
    }
    ot_freeze_report fr;
    if (ot_pass_freeze_at_size(g, &fo, &head, size, &fr, &err) != OT_OK) {
        rc = ot_cli_usage_error(cmd, "%s", err.msg);
        goto out;
    }
    int32_t head_params[2] = { head.weight, head.bias };
    o.head_params = head_params;
    o.n_head_params = head.found ? (head.bias >= 0 ? 2 : 1) : 0;
    FILE *log = json ? stderr : stdout;
    fprintf(log, "model: %s\ndata: %s (%s, %lld images, %d classes)\n", model, data,
            ot_data_format(train), (long long)ot_data_count(train), ot_data_n_classes(train));
    fprintf(log, "training %d of %d parameters (%llu of %llu values), first trained node: %s\n",
            fr.n_trainable, fr.n_params, (unsigned long long)fr.numel_trainable,
            (unsigned long long)(fr.numel_trainable + fr.numel_frozen),
            fr.first_trained_node >= 0 ? g->nodes[fr.first_trained_node].name : "-");
    if (ot_cli_count(cmd, &a, "dry-run")) {
        ot_train_graph tg;
        if (ot_train_graph_build(g, &o.graph, &tg, &err) != OT_OK) {
            rc = ot_cli_error("%s: %s", model, err.msg);
            goto out;
        }
        fprintf(stdout,
                "plan: %d epochs, batch %d, image %dx%d, lr %g; BatchNorm: %d train mode, %d "
                "eval mode; %d Dropout in train mode; %d backward nodes; frozen prefix: %s; cache: %s\n",
                o.epochs, o.batch_size, size, size, o.lr, tg.n_bn_train, tg.n_bn_eval, tg.n_dropout_train,
                tg.n_backward_nodes, tg.prefix ? "yes" : "none",
                !tg.prefix         ? "off (nothing frozen upstream)"
                : o.no_cache       ? "off (--no-cache)"
                : !tg.cacheable    ? tg.why_not_cacheable
                : o.epochs < 2     ? "off (one epoch)"
                : o.cache_bf16     ? "on (bf16)"
                                   : "on");
        ot_train_graph_fini(&tg);
        goto out;
    }
    int nc = ot_data_n_classes(train);
    names = calloc((size_t)nc + 1, sizeof *names);
    const char *mode_names[] = { [OT_FREEZE_FEATURE_EXTRACT] = "feature-extract",
                                 [OT_FREEZE_FINE_TUNE] = "fine-tune", [OT_FREEZE_FULL] = "full" };
    size_t ro_len = 128 + (V("train") ? strlen(V("train")) : 0) +
                    (V("freeze") ? strlen(V("freeze")) : 0) +
                    (V("freeze-until") ? strlen(V("freeze-until")) : 0);
    run_options = malloc(ro_len);
    if (!names || !run_options) {
        rc = ot_cli_error("out of memory");
        goto out;
    }
    for (int c = 0; c < nc; c++)
        names[c] = ot_data_class_name(train, c);
    snprintf(run_options, ro_len, "mode=%s\nclasses=%lld\ntrain=%s\nfreeze=%s\nfreeze-until=%s\n",
             mode_names[fo.mode], (long long)classes, V("train") ? V("train") : "",
             V("freeze") ? V("freeze") : "", V("freeze-until") ? V("freeze-until") : "");
    o.run_options = run_options;
    ckpt_ctx cc = { .size = size, .t = &o.transform, .names = names, .n_classes = nc };
    o.checkpoint_prepare = prepare_checkpoint;
    o.checkpoint_user = &cc;
    o.stop = &stop_signal;
    pc.f = log;
    pc.tty = isatty(fileno(log)) != 0;
    pc.resume = o.resume;
    pc.epochs = o.epochs;
    pc.patience = o.patience;
    o.progress = on_progress;
    o.resumed = on_resumed;
    o.profile = ot_cli_count(cmd, &a, "profile") > 0;
    o.profile_report = on_profile;
    o.user = &pc;
    pc.plot_path = V("plot");
    pc.log_path = V("log");
    if ((pc.log_path || pc.plot_path) &&
        ot_train_log_new(pc.log_path, &pc.log, &err) != OT_OK) {
        rc = ot_cli_error("%s", err.msg);
        goto out;
    }
    if (o.checkpoint) { /* fail now, not after the first epoch, when it cannot be written */
        ot_atomic_file af;
        if (ot_atomic_open(&af, o.checkpoint, &err) != OT_OK) {
            rc = ot_cli_error("checkpoint %s", err.msg);
            goto out;
        }
        ot_atomic_abort(&af);
    }
    ot_train_result tr;
    struct sigaction old_actions[2];
    catch_stop_signals(old_actions);
    ot_status tst = ot_train_run(g, train, &o, &tr, &err);
    restore_signals(old_actions);
    ot_train_log_free(pc.log);
    pc.log = NULL;
    if (tst != OT_OK) {
        rc = ot_cli_error("%s: %s", model, err.msg);
        goto out;
    }
    if (tr.n_bad)
        fprintf(log, "skipped %lld unreadable images (--skip-bad)\n", (long long)tr.n_bad);
    if (tr.early_stopped)
        fprintf(log, "stopped early: no better validation accuracy for %d epochs\n", o.patience);
    if (o.keep_best && tr.best_epoch)
        fprintf(log, "kept the weights of epoch %d (validation accuracy %.4f)\n", tr.best_epoch,
                tr.best_val_accuracy);
    if (tr.stopped_by) {
        if (pc.tty)
            fprintf(log, "\n");
        fflush(log);
        const char *sig = tr.stopped_by == SIGINT ? "SIGINT" : tr.stopped_by == SIGTERM ? "SIGTERM"
                                                                                   : "a signal";
        char where[96];
        if (tr.epoch_step)
            snprintf(where, sizeof where, "step %lld of %lld in epoch %d",
                     (long long)tr.epoch_step, (long long)tr.steps_per_epoch, tr.epoch + 1);
        else
            snprintf(where, sizeof where, "the end of epoch %d", tr.epoch);
        if (o.checkpoint && tr.checkpoint_err.code != OT_OK) {
            fprintf(stderr, "onnxtrain: stopped by %s after step %lld (%s); %s; ", sig,
                    (long long)tr.steps, where, tr.checkpoint_err.msg);
            if (tr.checkpoint_step >= 0)
                fprintf(stderr, "the last checkpoint, at step %lld, is in %s\n",
                        (long long)tr.checkpoint_step, o.checkpoint);
            else
                fprintf(stderr, "no checkpoint was kept\n");
        } else if (o.checkpoint && tr.checkpoint_step >= 0)
            fprintf(stderr,
                    "onnxtrain: stopped by %s after step %lld (%s); checkpoint in %s; continue "
                    "with --resume %s\n",
                    sig, (long long)tr.steps, where, o.checkpoint, o.checkpoint);
        else
            fprintf(stderr,
                    "onnxtrain: stopped by %s after step %lld; no checkpoint was written (use "
                    "--checkpoint FILE to keep the progress)\n",
                    sig, (long long)tr.steps);
        if (pc.log_err.code != OT_OK)
            ot_cli_error("%s", pc.log_err.msg);
        rc = 128 + tr.stopped_by;
        goto out;
    }
    if (!tr.cache_used && tr.cache_off_reason)
        fprintf(log, "prefix cache off: %s%s\n", tr.cache_off_reason,
                o.cache_bf16 ? " (--cache-dtype bf16 had no effect)" : "");
    else if (tr.cache_used)
        fprintf(log, "prefix cache: %.1f MB of %s\n", (double)tr.cache_bytes / 1e6,
                tr.cache_bf16 ? "bf16 (features rounded in every epoch)" : "f32");
    bool have_test = ot_data_has_split_with(data, OT_DATA_TEST, &dopts);
    if (have_test) {
        if (ot_data_open_with(data, OT_DATA_TEST, &dopts, &test, &err) != OT_OK) {
            rc = ot_cli_error("%s", err.msg);
            goto out;
        }
        if ((rc = select_data(cmd, &a, &test, 0, o.seed)) != OT_EXIT_OK)
            goto out;
        xo.cpu.threads = o.threads;
        if (ot_eval_run(g, test, &o.transform, o.batch_size, &xo, &ev, &err) != OT_OK) {
            rc = ot_cli_error("%s", err.msg);
            goto out;
        }
        fprintf(log, "test: top-1 %.4f  top-5 %.4f  loss %.4f  (%lld images)\n", ev.top1, ev.top5,
                ev.loss, (long long)ev.n);
    }
    {
        if ((rc = ot_cli_export_batch(g, model, V("batch") ? &export_batch : NULL)) !=
            OT_EXIT_OK)
            goto out;
        ot_status st = fit_input_size(g, size, &err);
        if (st == OT_OK)
            st = ot_train_meta_write(g, &o.transform, names, nc, &err);
        if (st != OT_OK || ot_model_export(g, out, NULL, &err) != OT_OK) {
            rc = ot_cli_error("%s", err.msg);
            goto out;
        }
    }
    fprintf(log, "wrote %s\n", out);
    if (json) {
        json_t *j = ot_json_set(json_object(), "epochs", json_integer(o.epochs));
        j = ot_json_set(j, "steps", json_integer(tr.steps));
        j = ot_json_set(j, "train_loss", ot_json_fixed(tr.final_loss, 6));
        j = ot_json_set(j, "train_accuracy", ot_json_fixed(tr.final_accuracy, 6));
        j = ot_json_set(j, "trainable_params", json_integer((json_int_t)tr.numel_trainable));
        j = ot_json_set(j, "cache", json_boolean(tr.cache_used));
        j = ot_json_set(j, "cache_dtype", ot_json_text(tr.cache_bf16 ? "bf16" : "f32"));
        j = ot_json_set(j, "cache_bytes", json_integer((json_int_t)tr.cache_bytes));
        if (have_test) {
            json_t *t = ot_json_set(json_object(), "top1", ot_json_fixed(ev.top1, 6));
            t = ot_json_set(t, "top5", ot_json_fixed(ev.top5, 6));
            t = ot_json_set(t, "loss", ot_json_fixed(ev.loss, 6));
            j = ot_json_set(j, "test", ot_json_set(t, "n", json_integer(ev.n)));
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
#undef V
    ot_eval_result_fini(&ev);
    free(names);
    free(run_options);
    free_list(train_pats);
    free_list(freeze_pats);
    ot_train_log_free(pc.log);
    ot_free(train_idx);
    ot_free(val_idx);
    ot_data_free(val);
    ot_data_free(train);
    ot_data_free(test);
    ot_graph_free(g);
    ot_cli_args_fini(&a);
    return rc;
}

int ot_cmd_eval(int argc, char **argv)
{
    ot_cli_args a;
    int rc = ot_cli_parse(&eval_cmd, argc, argv, &a);
    if (rc != OT_EXIT_OK)
        return rc;
    const ot_cli_cmd *cmd = &eval_cmd;
    ot_graph *g = NULL;
    ot_dataset *ds = NULL;
    ot_eval_result ev = { 0 };
    int64_t *good = NULL;
    ot_err err;
    ot_err_init(&err);
    if (a.help) {
        ot_cli_print_usage(cmd, stdout);
        goto out;
    }
    const char *data = ot_cli_value(cmd, &a, "data");
    if (!data) {
        rc = ot_cli_usage_error(cmd, "missing --data PATH");
        goto out;
    }
    int bs = 32;
    ot_exec_opts xo = { 0 };
    ot_data_opts dopts;
    if ((rc = int_opt(cmd, &a, "batch-size", 1, 1 << 16, &bs)) != OT_EXIT_OK ||
        (rc = ot_cli_threads_opt(cmd, &a, &xo.cpu.threads)) != OT_EXIT_OK ||
        (rc = ot_cli_device(cmd, ot_cli_value(cmd, &a, "device"), &xo.device)) != OT_EXIT_OK ||
        (rc = data_opts(cmd, &a, &dopts)) != OT_EXIT_OK)
        goto out;
    ot_import_opts io = { 0 };
    ot_data_transform early; /* --mean/--std are checked before any file is read */
    ot_data_transform_init(&early, 1, OT_DATA_NORM_NONE);
    if ((rc = ot_cli_import_opts(cmd, &a, &io)) != OT_EXIT_OK ||
        (rc = apply_mean_std(cmd, &a, &early)) != OT_EXIT_OK)
        goto out;
    if (ot_onnx_import_file(a.pos[0], &io, &g, &err) != OT_OK) {
        rc = ot_cli_error("%s", err.msg);
        goto out;
    }
    if (ot_graph_check_finite(g, &err) != OT_OK) {
        rc = ot_cli_error("%s: %s", a.pos[0], err.msg);
        goto out;
    }
    ot_data_split split =
        ot_data_has_split_with(data, OT_DATA_TEST, &dopts) ? OT_DATA_TEST : OT_DATA_TRAIN;
    if (ot_data_open_with(data, split, &dopts, &ds, &err) != OT_OK) {
        rc = ot_cli_error("%s", err.msg);
        goto out;
    }
    if ((rc = select_data(cmd, &a, &ds, 0, 0)) != OT_EXIT_OK ||
        (rc = check_model_names(a.pos[0], g, ds)) != OT_EXIT_OK)
        goto out;
    ot_data_transform t;
    ot_data_transform_init(&t, default_size(g), OT_DATA_NORM_IMAGENET);
    ot_train_meta_read(g, &t);
    if ((rc = int_opt(cmd, &a, "image-size", 1, OT_DATA_MAX_SIZE, &t.size)) != OT_EXIT_OK)
        goto out;
    if (ot_cli_value(cmd, &a, "normalize")) {
        ot_data_norm norm;
        if (norm_of(ot_cli_value(cmd, &a, "normalize"), &norm) != OT_OK) {
            rc = ot_cli_usage_error(cmd, "--normalize must be imagenet, half or none");
            goto out;
        }
        int s = t.size;
        ot_data_transform_init(&t, s, norm);
    }
    if ((rc = apply_mean_std(cmd, &a, &t)) != OT_EXIT_OK)
        goto out;
    /* --skip-bad: the readable images, found before any is scored */
    bool skip_bad = ot_cli_count(cmd, &a, "skip-bad") > 0;
    int64_t n_good = 0, n_bad = -1;
    if (skip_bad) {
        if (ot_data_scan_readable(ds, NULL, ot_data_count(ds), &good, &n_good, &n_bad, &err) !=
            OT_OK) {
            rc = ot_cli_error("%s", err.msg);
            goto out;
        }
        if (n_good == 0) {
            rc = ot_cli_error("%s: none of the %lld images can be read (--skip-bad)", data,
                              (long long)n_bad);
            goto out;
        }
    }
    if ((skip_bad ? ot_eval_run_subset(g, ds, good, n_good, &t, bs, &xo, &ev, &err)
                  : ot_eval_run(g, ds, &t, bs, &xo, &ev, &err)) != OT_OK) {
        rc = ot_cli_error("%s", err.msg);
        goto out;
    }
    if (ot_cli_count(cmd, &a, "json")) {
        if ((rc = print_eval_json(&ev, ds, n_bad)) != OT_EXIT_OK)
            goto out;
    } else {
        printf("model: %s\ndata: %s (%s split)\n", a.pos[0], data,
               split == OT_DATA_TEST ? "test" : "train");
        if (skip_bad)
            printf("skipped %lld unreadable images (--skip-bad)\n", (long long)n_bad);
        print_eval_text(stdout, &ev, ds);
    }
    rc = ot_cli_finish_stdout();
out:
    ot_eval_result_fini(&ev);
    ot_free(good);
    ot_data_free(ds);
    ot_graph_free(g);
    ot_cli_args_fini(&a);
    return rc;
}
