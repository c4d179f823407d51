/*
 * finetune.c: the fine-tuning recipe (ot_finetune) and scoring (ot_evaluate);
 * see finetune.h and include/onnxtrain.h.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dist/dist.h"
#include "core/file.h"
#include "exec/exec.h"
#include "finetune.h"
#include "onnx/onnx.h"
#include "passes/batch.h"
#include "passes/freeze.h"
#include "passes/head.h"
#include "train/checkpoint.h"
#include "train/layout.h"
#include "train/meta.h"
#include "train/calibrate.h"
#include "train/qat.h"

ot_finetune_opts ot_finetune_opts_default(void)
{
    ot_finetune_opts o;
    memset(&o, 0, sizeof o);
    o.mode = OT_FT_FEATURE_EXTRACT;
    o.optimizer = OT_FT_ADAM;
    o.lr = -1;
    o.momentum = -1;
    o.weight_decay = -1;
    o.schedule = OT_FT_LR_CONSTANT;
    o.lr_step = 7;
    o.lr_gamma = 0.1;
    o.epochs = 5;
    o.batch_size = 32;
    o.normalize = OT_FT_NORM_IMAGENET;
    o.cache_mem = 2ull << 30;
    o.workers = 1;
    return o;
}

/* Reports one line through the progress callback. */
static void say(const ot_finetune_opts *o, ot_ft_event ev, const char *fmt, ...)
    OT_PRINTF(3, 4);
static void say(const ot_finetune_opts *o, ot_ft_event ev, const char *fmt, ...)
{
    if (!o->progress)
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    ot_ft_progress p = { .event = ev, .message = line, .val_loss = NAN, .val_accuracy = NAN };
    o->progress(&p, o->user);
}

static void event(const ot_finetune_opts *o, ot_ft_event ev)
{
    if (!o->progress)
        return;
    ot_ft_progress p = { .event = ev, .val_loss = NAN, .val_accuracy = NAN };
    o->progress(&p, o->user);
}

static ot_data_norm norm_of(ot_ft_norm n)
{
    return n == OT_FT_NORM_HALF ? OT_DATA_NORM_HALF
           : n == OT_FT_NORM_NONE ? OT_DATA_NORM_NONE
                                  : OT_DATA_NORM_IMAGENET;
}

/* The model's image side when its input is static and square, else 224. */
static int default_size(const ot_graph *g)
{
    for (int32_t i = 0; i < g->n_inputs; i++) {
        const ot_value *v = &g->values[g->inputs[i].value];
        if (v->flags & OT_VAL_INIT)
            continue;
        int32_t id = g->inputs[i].value;
        ot_image_layout l = ot_image_layout_find(g, id);
        if (ot_image_side(g, id, &l) > 0)
            return (int)ot_image_side(g, id, &l);
        break;
    }
    return 224;
}

void ot_finetune_model_transform(const ot_graph *g, ot_data_transform *t)
{
    ot_data_transform_init(t, default_size(g), OT_DATA_NORM_IMAGENET);
    ot_train_meta_read(g, t);
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
        ot_image_layout l = ot_image_layout_find(g, g->inputs[i].value);
        if (v->ndim != 4 || (v->dims[l.h] < 0 && v->dims[l.w] < 0) ||
            (v->dims[l.h] == size && v->dims[l.w] == size))
            return OT_OK;
        ot_log(OT_LOG_INFO, "input '%s': declared image size set to the trained %dx%d", v->name,
               size, size);
        v->dims[l.h] = v->dims[l.w] = size;
        v->dim_names[l.h] = v->dim_names[l.w] = NULL;
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

/* The written model's batch dim (o->export_batch; 0: a fixed one becomes
   dynamic). */
static ot_status export_batch(const ot_finetune_opts *o, ot_graph *g, ot_err *err)
{
    bool made_dynamic = false;
    ot_status st = ot_pass_export_batch(g, o->export_batch, &made_dynamic, err);
    if (st != OT_OK) {
        ot_err_prefix(err, "--batch: ");
        return st;
    }
    if (made_dynamic)
        say(o, OT_FT_INFO, "the model declares a fixed batch; the exported model's is dynamic "
            "(N)");
    return OT_OK;
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
   index. Errors: OT_ERR_MODEL naming the model. */
static ot_status check_model_names(const char *model, const ot_graph *g, const ot_dataset *ds,
                                   const ot_finetune_opts *o, ot_err *err)
{
    char **names = NULL;
    int n = 0;
    ot_status st = ot_train_meta_classes(g, &names, &n, err);
    if (st != OT_OK) {
        ot_err_prefix(err, "%s", model);
        return st;
    }
    int nc = ot_data_n_classes(ds);
    if (names && n != nc)
        say(o, OT_FT_WARNING, "%s: the model names %d classes (onnxtrain.classes), the data %d; "
            "labels are matched by index", model, n, nc);
    else
        for (int c = 0; c < n; c++)
            if (strcmp(names[c], ot_data_class_name(ds, c))) {
                say(o, OT_FT_WARNING, "%s: class %d is '%s' in the model (onnxtrain.classes) "
                    "but '%s' in the data; labels are matched by index",
                    model, c, names[c], ot_data_class_name(ds, c));
                break;
            }
    ot_free(names);
    return OT_OK;
}

/* Outputs of the model's first output when it is [N, K] with K known; else 0. */
static int64_t output_classes(const ot_graph *g)
{
    if (g->n_outputs < 1)
        return 0;
    const ot_value *v = &g->values[g->outputs[0].value];
    return v->ndim == 2 && v->dims[1] > 0 ? v->dims[1] : 0;
}

static bool is_norm(const char *type)
{
    return !strcmp(type, "BatchNormalization") || !strcmp(type, "InstanceNormalization") ||
           !strcmp(type, "LayerNormalization") || !strcmp(type, "GroupNormalization") ||
           !strcmp(type, "LpNormalization") || !strcmp(type, "MeanVarianceNormalization");
}

bool ot_finetune_bn_folded(const ot_graph *g, int32_t first_trained_node, int32_t head_node)
{
    if (first_trained_node < 0)
        return false;
    int n_conv = 0;
    for (int32_t i = first_trained_node; i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        if (is_norm(n->op_type))
            return false;
        /* a 1x1 convolution head (SqueezeNet's) is not the trained body */
        if (i == head_node || strcmp(n->op_type, "Conv") != 0 || n->n_in < 2 || n->in[1] < 0)
            continue;
        int32_t w = ot_pass_source_init(g, n->in[1]);
        if (w >= 0 && (g->values[w].flags & OT_VAL_TRAINABLE))
            n_conv++;
    }
    return n_conv > 0;
}

/* "a,b" from patterns (the run's fingerprint names them as given). */
static void join(char *out, size_t cap, const char *const *p, int n)
{
    size_t at = 0;
    out[0] = '\0';
    for (int i = 0; i < n && at < cap; i++)
        at += (size_t)snprintf(out + at, cap - at, "%s%s", i ? "," : "", p[i]);
}

static const char *const mode_names[] = { [OT_FT_FEATURE_EXTRACT] = "feature-extract",
                                          [OT_FT_FINE_TUNE] = "fine-tune",
                                          [OT_FT_FULL] = "full" };

/* Fills the trainer's options from the recipe's (the data parts excepted). */
static ot_status train_opts_of(const ot_finetune_opts *o, ot_train_opts *t, ot_err *err)
{
    ot_train_opts_default(t);
    if (o->epochs < 1 || o->batch_size < 1)
        return ot_err_set(err, OT_ERR_ARG, "epochs and batch size must be at least 1");
    if (o->export_batch < -1)
        return ot_err_set(err, OT_ERR_ARG, "export_batch must be -1 (dynamic), 0 (dynamic "
                          "when fixed) or a batch size, not %lld", (long long)o->export_batch);
    if ((unsigned)o->mode > OT_FT_FULL || (unsigned)o->optimizer > OT_FT_ADAMW ||
        (unsigned)o->schedule > OT_FT_LR_COSINE || (unsigned)o->normalize > OT_FT_NORM_NONE)
        return ot_err_set(err, OT_ERR_ARG, "an option holds an unknown mode, optimizer, "
                          "schedule or normalisation");
    ot_device device;
    ot_status st = ot_device_parse(o->device, &device, err);
    if (st == OT_OK)
        st = ot_precision_check(&device, o->precision, err);
    if (st != OT_OK)
        return st;
    t->device = o->device;
    t->precision = o->precision;
    t->epochs = o->epochs;
    t->batch_size = o->batch_size;
    ot_optim_kind kind = o->optimizer == OT_FT_SGD     ? OT_OPTIM_SGD
                         : o->optimizer == OT_FT_ADAMW ? OT_OPTIM_ADAMW
                                                       : OT_OPTIM_ADAM;
    t->optim = ot_optim_opts_default(kind);
    if (kind == OT_OPTIM_SGD)
        t->optim.momentum = 0.9;
    if (o->momentum >= 0)
        t->optim.momentum = o->momentum;
    if (o->weight_decay >= 0)
        t->optim.weight_decay = o->weight_decay;
    t->head_lr = o->head_lr;
    t->clip_grad = o->clip_grad;
    t->graph.label_smoothing = (float)o->label_smoothing;
    t->graph.bn_all_train = o->bn_train != 0;
    t->schedule.kind = o->schedule == OT_FT_LR_STEP     ? OT_SCHED_STEP
                       : o->schedule == OT_FT_LR_COSINE ? OT_SCHED_COSINE
                                                        : OT_SCHED_CONSTANT;
    t->schedule.step_size = o->lr_step;
    t->schedule.gamma = o->lr_gamma;
    if (t->schedule.kind == OT_SCHED_COSINE) /* CosineAnnealingLR(T_max = epochs) per epoch */
        t->schedule.t_max = o->epochs;
    t->schedule.warmup_steps = o->warmup;
    t->threads = o->deterministic && !o->threads ? 1 : o->threads;
    t->deterministic = o->deterministic != 0;
    t->seed = o->seed;
    t->max_steps = o->max_steps;
    t->workers = o->workers;
    t->augment = o->augment != 0;
    t->skip_bad = o->skip_bad != 0;
    t->keep_best = o->keep_best != 0;
    t->patience = o->patience;
    t->checkpoint = o->checkpoint;
    t->checkpoint_every = o->checkpoint_every;
    t->resume = o->resume;
    t->no_cache = o->no_cache != 0;
    t->cache_mem = o->cache_mem;
    t->cache_dir = o->cache_dir;
    /* bf16 products: the frozen prefix computes in bf16, so its cache keeps
       bf16 too */
    t->cache_bf16 = o->cache_bf16 != 0 || o->precision == OT_PRECISION_BF16;
    t->stop = o->stop;
    if ((o->keep_best || o->patience) && o->val_split <= 0 && !o->val_data)
        return ot_err_set(err, OT_ERR_ARG, "--keep best and --patience need --val-split or "
                          "--val-data");
    if (o->val_split > 0 && o->val_data)
        return ot_err_set(err, OT_ERR_ARG, "--val-split and --val-data are exclusive");
    return OT_OK;
}

/* The progress of the trainer, passed on as the public report. */
typedef struct run_ctx {
    const ot_finetune_opts *o;
    const ot_finetune_hooks *h;
} run_ctx;

static void on_progress(const ot_train_epoch *e, bool end, void *user)
{
    const run_ctx *c = user;
    if (!c->o->progress)
        return;
    ot_ft_progress p = { .event = end ? OT_FT_EPOCH : OT_FT_STEP, .epoch = e->epoch,
                         .epochs = e->epochs, .step = e->step, .steps = e->steps,
                         .loss = e->loss, .accuracy = e->accuracy, .lr = e->lr,
                         .images_per_s = e->images_per_s, .seconds = e->seconds,
                         .cached = e->cached, .val_loss = e->val_loss,
                         .val_accuracy = e->val_accuracy, .best = e->best };
    c->o->progress(&p, c->o->user);
}

static void on_resumed(const ot_train_checkpoint *ck, void *user)
{
    const run_ctx *c = user;
    if (c->h && c->h->resumed)
        c->h->resumed(ck, c->h->user);
}

static void on_profile(const struct ot_exec *const *xs, const char *const *names, int n,
                       double data_wait_s, void *user)
{
    const run_ctx *c = user;
    if (c->h && c->h->profile_report)
        c->h->profile_report(xs, names, n, data_wait_s, c->h->user);
}

/* The data sets of a run. */
typedef struct run_data {
    ot_dataset *train, *val, *test;
    int64_t *train_idx, *val_idx;
} run_data;

static ot_status open_data(const ot_finetune_opts *o, const ot_data_opts *dopts, run_data *d,
                           ot_train_opts *t, ot_err *err)
{
    ot_status st = OT_OK;
    OT_TRY(ot_data_open_with(o->data, OT_DATA_TRAIN, dopts, &d->train, err));
    if (o->n_data_classes > 0 || o->per_class > 0) {
        int *all = NULL, n = o->n_data_classes;
        const int *cls = o->data_classes;
        if (n == 0) {
            n = ot_data_n_classes(d->train);
            if (!(all = ot_calloc((size_t)n + 1, sizeof *all)))
                OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
            for (int c = 0; c < n; c++)
                all[c] = c;
            cls = all;
        }
        ot_dataset *sel = NULL;
        st = ot_data_select(d->train, cls, n, o->per_class, o->seed, &sel, err);
        ot_free(all);
        if (st != OT_OK)
            goto done;
        ot_data_free(d->train);
        d->train = sel;
    }
    if (o->val_split > 0) {
        OT_TRY(ot_data_split_indices(d->train, o->val_split, o->seed, &d->train_idx,
                                     &t->n_train_idx, &d->val_idx, &t->n_val_idx, err));
        t->train_idx = d->train_idx;
        t->val_idx = d->val_idx;
        t->val_data = d->train;
        if (t->n_val_idx == 0)
            OT_FAIL(err, OT_ERR_ARG, "%s: --val-split %g leaves no validation images", o->data,
                    o->val_split);
    } else if (o->val_data) {
        OT_TRY(ot_data_open_with(o->val_data, OT_DATA_TRAIN, dopts, &d->val, err));
        if (ot_data_n_classes(d->val) != ot_data_n_classes(d->train))
            OT_FAIL(err, OT_ERR_ARG, "%s: %d classes, the training data has %d", o->val_data,
                    ot_data_n_classes(d->val), ot_data_n_classes(d->train));
        t->val_data = d->val;
    }
done:
    return st;
}

/* The test split, scored with the trained model; *have: there is one. */
/* Scores g on the test split (opened on the first call) under `label`. */
static ot_status score_test(const ot_finetune_opts *o, const ot_data_opts *dopts, ot_graph *g,
                            const ot_train_opts *t, run_data *d, const char *label,
                            ot_finetune_result *res, ot_err *err)
{
    ot_status st = OT_OK;
    ot_eval_result ev = { 0 };
    int64_t *good = NULL, n_good = 0, n_bad = 0;
    if (!d->test && !ot_data_has_split_with(o->data, OT_DATA_TEST, dopts))
        return OT_OK;
    if (!d->test) {
        OT_TRY(ot_data_open_with(o->data, OT_DATA_TEST, dopts, &d->test, err));
        if (o->n_data_classes > 0) {
            ot_dataset *sel = NULL;
            OT_TRY(ot_data_select(d->test, o->data_classes, o->n_data_classes, 0, o->seed, &sel,
                                  err));
            ot_data_free(d->test);
            d->test = sel;
        }
    }
    ot_exec_opts xo = { .cpu.threads = t->threads, .precision = t->precision };
    OT_TRY(ot_device_parse(t->device, &xo.device, err));
    if (o->skip_bad) {
        /* unreadable test images are left out and counted, as in training */
        OT_TRY(ot_data_scan_readable(d->test, NULL, ot_data_count(d->test), &good, &n_good,
                                     &n_bad, err));
        if (n_bad > 0)
            say(o, OT_FT_WARNING, "test: left out %lld unreadable image%s (--skip-bad)",
                (long long)n_bad, n_bad == 1 ? "" : "s");
        if (n_good == 0)
            goto done;
        OT_TRY(ot_eval_run_ranks(g, d->test, good, n_good, &t->transform, t->batch_size, &xo,
                                 ot_dist_current(), &ev, err));
    } else { /* data-parallel: sharded over the ranks */
        OT_TRY(ot_eval_run_ranks(g, d->test, NULL, 0, &t->transform, t->batch_size, &xo,
                                 ot_dist_current(), &ev, err));
    }
    res->has_test = 1;
    res->test_top1 = ev.top1;
    res->test_top5 = ev.top5;
    res->test_loss = ev.loss;
    res->test_n = ev.n;
    say(o, OT_FT_MESSAGE, "%s: top-1 %.4f  top-5 %.4f  loss %.4f  (%lld images)", label,
        ev.top1, ev.top5, ev.loss, (long long)ev.n);
done:
    ot_free(good);
    ot_eval_result_fini(&ev);
    return st;
}

/* finetune --qat: the float model's test score; calibration on the
   training images; fake quantisation in the graph (the test score then is
   that of int8 post-training quantisation, as the QDQ export computes it);
   qat_epochs more epochs at a tenth of the rate; the fake quantisation out,
   the int8 QDQ conversion with the same scales in, and its test score. */
static ot_status qat_phase(const ot_finetune_opts *o, const ot_data_opts *dopts, ot_graph *g,
                           const ot_train_opts *t, run_data *d, ot_finetune_result *res,
                           ot_err *err)
{
    ot_status st = OT_OK;
    ot_calib_ranges ranges = { 0 };
    bool *want = NULL;
    res->qat = 1;
    res->fp32_top1 = res->ptq_top1 = NAN;
    OT_TRY(score_test(o, dopts, g, t, d, "test, float32", res, err));
    if (res->has_test)
        res->fp32_top1 = res->test_top1;
    want = ot_calloc((size_t)g->n_values + 1, sizeof *want);
    if (!want)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    ot_int8_activations(g, want);
    ot_calib_opts co = { .method = (ot_calib_method)o->calib_method,
                         .max_images = o->calib_images > 0 ? o->calib_images : 1024,
                         .batch_size = 8 };
    co.exec.cpu.threads = t->threads;
    OT_TRY(ot_device_parse(t->device, &co.exec.device, err));
    ot_calib_stats cs;
    OT_TRY(ot_calibrate(g, want, d->train, &t->transform, &co, &ranges, &cs, err));
    int n_fq;
    OT_TRY(ot_qat_insert(g, &ranges, &n_fq, err));
    say(o, OT_FT_MESSAGE, "quantisation-aware training: %d activations calibrated on %lld "
        "images, %d fake-quantisation points", cs.n_values, (long long)cs.n_images, n_fq);
    OT_TRY(score_test(o, dopts, g, t, d, "test, int8 before QAT", res, err));
    if (res->has_test)
        res->ptq_top1 = res->test_top1;
    ot_train_opts qt = *t;
    qt.epochs = o->qat_epochs > 0 ? o->qat_epochs : 1;
    qt.lr = t->lr * 0.1;
    qt.head_lr = t->head_lr * 0.1;
    qt.checkpoint = NULL;
    qt.resume = NULL;
    qt.keep_best = false;
    qt.patience = 0;
    ot_train_result tr;
    event(o, OT_FT_TRAIN_BEGIN);
    st = ot_train_run(g, d->train, &qt, &tr, err);
    event(o, OT_FT_TRAIN_END);
    OT_TRY(st);
    res->qat_steps = tr.steps;
    res->steps += tr.steps;
    OT_TRY(ot_qat_strip(g, err));
    ot_quant_report rep;
    OT_TRY(ot_int8_convert(g, &ranges, &rep, err));
    say(o, OT_FT_MESSAGE, "int8 QDQ: %d weights per channel, %d activations per tensor",
        rep.n_converted, rep.n_kept);
    OT_TRY(score_test(o, dopts, g, t, d, "test, int8 after QAT", res, err));
done:
    ot_free(want);
    ot_calib_ranges_fini(&ranges);
    return st;
}

/* The dry run's plan line. */
static ot_status plan(const ot_finetune_opts *o, ot_graph *g, const ot_train_opts *t,
                      const char *model, ot_err *err)
{
    ot_train_graph tg;
    ot_status st = ot_train_graph_build(g, &t->graph, &tg, err);
    if (st != OT_OK) {
        ot_err_prefix(err, "%s", model);
        return st;
    }
    int size = t->transform.size;
    say(o, OT_FT_PLAN,
        "plan: %d epochs, batch %d, image %dx%d, lr %g; BatchNorm: %d train mode, %d "
        "eval mode; %d Dropout in train mode; %d backward nodes; frozen prefix: %s; cache: %s",
        t->epochs, t->batch_size, size, size, t->lr, tg.n_bn_train, tg.n_bn_eval,
        tg.n_dropout_train, tg.n_backward_nodes, tg.prefix ? "yes" : "none",
        !tg.prefix        ? "off (nothing frozen upstream)"
        : t->no_cache     ? "off (--no-cache)"
        : !tg.cacheable   ? tg.why_not_cacheable
        : t->epochs < 2   ? "off (one epoch)"
        : t->cache_bf16   ? "on (bf16)"
                          : "on");
    ot_train_graph_fini(&tg);
    return OT_OK;
}

ot_status ot_finetune_run(const ot_finetune_opts *o, const ot_finetune_hooks *h,
                          ot_finetune_result *res, ot_err *err)
{
    ot_status st = OT_OK;
    ot_graph *owned = NULL, *g = o->model;
    run_data d = { 0 };
    const char **names = NULL;
    char *run_options = NULL;
    char *pat_train = NULL, *pat_freeze = NULL;
    memset(res, 0, sizeof *res);
    res->checkpoint_step = -1;
    ot_err_init(&res->checkpoint_err);
    const char *model = o->model_path ? o->model_path : "model";
    if (!o->data)
        return ot_err_set(err, OT_ERR_ARG, "no training data");
    if (!g && !o->model_path)
        return ot_err_set(err, OT_ERR_ARG, "no model");
    if (!o->output && !o->dry_run && !o->model)
        return ot_err_set(err, OT_ERR_ARG, "no output path");
    ot_train_opts t;
    OT_TRY(train_opts_of(o, &t, err));
    ot_data_opts dopts = { .max_bytes = o->max_data_bytes ? o->max_data_bytes
                                                          : OT_DATA_DEFAULT_MAX_BYTES,
                           .max_entries = o->max_files ? o->max_files
                                                       : OT_DATA_DEFAULT_MAX_ENTRIES };
    if (!g) {
        /* a checkpoint given as the model: its checksum must match (format 1
           had none) */
        ot_status ist = ot_onnx_import_file(o->model_path, &o->import, &owned, err);
        OT_TRY(ot_train_checkpoint_check_import(o->model_path, owned, ist, err));
        g = owned;
    }
    OT_TRY(open_data(o, &dopts, &d, &t, err));
    if (ot_train_checkpoint_is_one(g)) { /* its checksum was checked at the import */
        st = ot_train_checkpoint_strip(g, err);
        if (st != OT_OK) {
            ot_err_prefix(err, "%s", model);
            goto done;
        }
        say(o, OT_FT_WARNING, "%s is a training checkpoint: a new run starts from its weights "
            "(use --resume to continue that run)", model);
    }
    st = ot_graph_check_finite(g, err);
    if (st != OT_OK) {
        ot_err_prefix(err, "%s", model);
        goto done;
    }
    if ((o->checkpoint || o->resume || ot_dist_current()) && o->model_path)
        OT_TRY(ot_train_hash_file(o->model_path, &t.model_hash, err));
    int size = o->image_size > 0 ? o->image_size : default_size(g);
    ot_data_transform_init(&t.transform, size, norm_of(o->normalize));
    if (o->has_mean)
        memcpy(t.transform.mean, o->mean, sizeof t.transform.mean);
    if (o->has_std)
        memcpy(t.transform.std, o->std, sizeof t.transform.std);

    /* a Reshape head with the declared batch as a constant follows the batch */
    int n_reshapes = ot_pass_batch_reshapes(g);
    if (n_reshapes)
        say(o, OT_FT_INFO, "%d Reshape target shape%s starting with the declared batch now "
            "copy%s the batch", n_reshapes, n_reshapes == 1 ? "" : "s", n_reshapes == 1 ? "ies" : "");

    /* the head: as many classes as the data has, unless told */
    ot_head head;
    OT_TRY(ot_pass_find_head(g, &head, err));
    int nc = ot_data_n_classes(d.train);
    int64_t swapped = 0;     /* the new head's outputs; 0: kept */
    int64_t old_outputs = 0; /* the replaced head's */
    if (o->classes >= 2 && nc >= 2 && o->classes != nc)
        OT_FAIL(err, OT_ERR_ARG,
                "--classes %lld disagrees with the data: it has %d classes, the new head "
                "would have %lld outputs (leave --classes out to take the number from the "
                "data, or pick %lld classes with --data-classes)",
                (long long)o->classes, nc, (long long)o->classes, (long long)o->classes);
    if (o->classes)
        swapped = o->classes;
    else if (head.found && head.out_features != nc && nc >= 2)
        swapped = nc;
    if (swapped) {
        st = ot_pass_swap_head(g, &head, swapped, o->seed, err);
        if (st != OT_OK) {
            ot_err_prefix(err, "%s", model);
            goto done;
        }
        old_outputs = head.out_features;
        head.out_features = swapped;
        res->head_replaced = 1;
    } else {
        OT_TRY(check_model_names(model, g, d.train, o, err));
    }
    {
        int64_t n_out = head.found ? head.out_features : output_classes(g);
        st = ot_train_check_classes(d.train, t.train_idx, t.n_train_idx, n_out, err);
        if (st != OT_OK) {
            ot_err_prefix(err, "%s", o->data);
            goto done;
        }
        if (t.val_data)
            st = ot_train_check_classes(t.val_data, t.val_idx, t.n_val_idx, n_out, err);
        if (st != OT_OK) {
            ot_err_prefix(err, "%s", d.val ? o->val_data : o->data);
            goto done;
        }
    }

    /* freeze */
    ot_freeze_opts fo = { .mode = o->mode == OT_FT_FULL        ? OT_FREEZE_FULL
                                  : o->mode == OT_FT_FINE_TUNE ? OT_FREEZE_FINE_TUNE
                                                               : OT_FREEZE_FEATURE_EXTRACT,
                          .train = o->train, .n_train = o->n_train, .freeze = o->freeze,
                          .n_freeze = o->n_freeze, .until = o->freeze_until };
    ot_freeze_report fr;
    st = ot_pass_freeze_at_size(g, &fo, &head, size, &fr, err);
    if (st != OT_OK) {
        res->usage_error = 1;
        goto done;
    }
    int32_t head_params[2] = { head.weight, head.bias };
    t.head_params = head_params;
    t.n_head_params = head.found ? (head.bias >= 0 ? 2 : 1) : 0;

    /* the learning rate: a model whose BatchNorm was folded away trains its
       body with no normalisation, which a rate safe with BN makes diverge */
    res->bn_folded = ot_finetune_bn_folded(g, fr.first_trained_node, head.found ? head.node : -1);
    t.lr = o->lr >= 0                        ? o->lr
           : o->mode == OT_FT_FEATURE_EXTRACT ? 1e-3
           : res->bn_folded                   ? 1e-5
                                              : 1e-4;
    res->lr = t.lr;
    if (res->bn_folded)
        say(o, OT_FT_WARNING,
            "%s: the trained layers have convolutions and no normalisation: its BatchNorm was "
            "probably folded into the convolutions at export (PyTorch's default eval-mode "
            "export), which makes training unstable; %s. Better: re-export keeping BN "
            "(torch.onnx.export(..., training=torch.onnx.TrainingMode.TRAINING) or "
            "do_constant_folding=False), or use --mode feature-extract",
            model, o->lr >= 0 ? "consider a lower learning rate (1e-5)"
                             : "the default learning rate is 1e-5 for it (--lr overrides)");
    if (o->lr < 0)
        say(o, OT_FT_INFO, "learning rate %g (the default for this mode)", t.lr);

    res->n_classes = nc;
    res->n_train = t.train_idx ? t.n_train_idx : ot_data_count(d.train);
    res->n_val = !t.val_data ? 0 : t.val_idx ? t.n_val_idx : ot_data_count(t.val_data);
    res->trainable_values = fr.numel_trainable;
    res->trainable_tensors = fr.n_trainable;
    say(o, OT_FT_MESSAGE, "model: %s", model);
    say(o, OT_FT_MESSAGE, "data: %s (%s, %lld images, %d classes)", o->data,
        ot_data_format(d.train), (long long)ot_data_count(d.train), nc);
    if (res->n_val)
        say(o, OT_FT_MESSAGE, "training on %lld images, validating on %lld (%d classes)",
            (long long)res->n_train, (long long)res->n_val, nc);
    else
        say(o, OT_FT_MESSAGE, "training on %lld images, no validation (%d classes)",
            (long long)res->n_train, nc);
    if (swapped && !o->classes)
        say(o, OT_FT_MESSAGE, "new head: %d classes, from the data (the model's head has %lld "
            "outputs)", nc, (long long)old_outputs);
    say(o, OT_FT_MESSAGE,
        "training %d of %d parameters (%llu of %llu values), first trained node: %s",
        fr.n_trainable, fr.n_params, (unsigned long long)fr.numel_trainable,
        (unsigned long long)(fr.numel_trainable + fr.numel_frozen),
        fr.first_trained_node >= 0 ? g->nodes[fr.first_trained_node].name : "-");
    if (o->dry_run) {
        st = plan(o, g, &t, model, err);
        goto done;
    }

    /* what checkpoints record: class names, the options the trainer cannot see */
    names = ot_calloc((size_t)nc + 1, sizeof *names);
    size_t pat_len = 16, ro_len;
    for (int i = 0; i < o->n_train; i++)
        pat_len += strlen(o->train[i]) + 1;
    for (int i = 0; i < o->n_freeze; i++)
        pat_len += strlen(o->freeze[i]) + 1;
    pat_train = ot_malloc(pat_len);
    pat_freeze = ot_malloc(pat_len);
    ro_len = 128 + 2 * pat_len + (o->freeze_until ? strlen(o->freeze_until) : 0);
    run_options = ot_malloc(ro_len);
    if (!names || !pat_train || !pat_freeze || !run_options)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    for (int c = 0; c < nc; c++)
        names[c] = ot_data_class_name(d.train, c);
    join(pat_train, pat_len, o->train, o->n_train);
    join(pat_freeze, pat_len, o->freeze, o->n_freeze);
    snprintf(run_options, ro_len, "mode=%s\nclasses=%lld\ntrain=%s\nfreeze=%s\nfreeze-until=%s\n",
             mode_names[o->mode], (long long)o->classes, pat_train, pat_freeze,
             o->freeze_until ? o->freeze_until : "");
    t.run_options = run_options;
    ckpt_ctx cc = { .size = size, .t = &t.transform, .names = names, .n_classes = nc };
    t.checkpoint_prepare = prepare_checkpoint;
    t.checkpoint_user = &cc;
    run_ctx rc = { .o = o, .h = h };
    t.progress = on_progress;
    t.resumed = on_resumed;
    t.profile = h && h->profile;
    t.profile_report = on_profile;
    t.user = &rc;
    if (o->checkpoint) { /* fail now, not after the first epoch, when it cannot be written */
        ot_atomic_file af;
        st = ot_atomic_open(&af, o->checkpoint, err);
        if (st != OT_OK) {
            char msg[OT_ERR_MSG_MAX];
            snprintf(msg, sizeof msg, "checkpoint %.1000s", err->msg);
            memcpy(err->msg, msg, sizeof msg);
            goto done;
        }
        ot_atomic_abort(&af);
    }

    t.bucket_bytes = (size_t)(o->bucket_mb * 1e6);
    t.sync_bn = o->sync_bn;
    t.no_overlap = o->no_overlap;
    ot_train_result tr;
    event(o, OT_FT_TRAIN_BEGIN);
    st = ot_train_run(g, d.train, &t, &tr, err);
    event(o, OT_FT_TRAIN_END);
    res->ranks = tr.ranks;
    res->n_buckets = tr.n_buckets;
    res->n_bn_train = tr.n_bn_train;
    res->sync_bn = tr.sync_bn;
    const ot_comm *cm = ot_dist_current();
    const char *on = !cm || !cm->dev ? "" : cm->queue && cm->queue->host
                                               ? "; reduced through NCCL's calls on the host "
                                                 "(test stand-in)"
                                               : "; reduced with NCCL on the GPUs";
    if (st == OT_OK && (tr.ranks > 1 || (cm && cm->dev)))
        say(o, OT_FT_MESSAGE,
            "data-parallel: %d rank%s, each batch of %d split between them; gradients "
            "all-reduced in %d bucket%s per step; BatchNorm: %s%s",
            tr.ranks, tr.ranks == 1 ? "" : "s", t.batch_size, tr.n_buckets,
            tr.n_buckets == 1 ? "" : "s",
            tr.n_bn_train == 0 ? "none trains"
            : tr.sync_bn       ? "batch statistics over all ranks (--sync-bn)"
                               : "each rank normalises its own images, running statistics "
                                 "averaged (no --sync-bn)",
            on);
    if (st == OT_OK && tr.ranks > 1 && tr.reduce_s > 0)
        say(o, OT_FT_MESSAGE,
            "all-reduce: %.1f MB in %.3f s on this rank (not hidden behind compute: the "
            "calls, and the waits for the other ranks); the gradients' reductions took "
            "%.3f s from start to end (%s); of the %.3f s: %.3f s waiting for the "
            "gradients' reductions, %.3f s in the steps' sums (waiting for the slowest "
            "rank), %.3f s averaging BatchNorm statistics, %.3f s other; without the "
            "waits for a slower rank (per step, the rank that waited least): %.3f s",
            (double)tr.reduce_bytes / 1e6, tr.reduce_s, tr.grad_busy_s,
            o->no_overlap ? "after the backward pass, --no-overlap"
                          : "started during the backward pass",
            tr.reduce_s, tr.grad_wait_s, tr.sums_s, tr.stats_s,
            fmax(0.0, tr.reduce_s - tr.grad_wait_s - tr.sums_s - tr.stats_s), tr.least_s);
    res->reduce_s = tr.reduce_s;
    res->grad_busy_s = tr.grad_busy_s;
    res->reduce_bytes = tr.reduce_bytes;
    res->agreed_error = tr.agreed_error;
    if (st != OT_OK) {
        ot_err_prefix(err, "%s", model);
        goto done;
    }
    res->steps = tr.steps;
    res->train_loss = tr.final_loss;
    res->train_accuracy = tr.final_accuracy;
    res->cache_used = tr.cache_used;
    res->cache_bf16 = tr.cache_bf16;
    res->precision = tr.precision;
    res->cache_bytes = tr.cache_bytes;
    res->n_bad = tr.n_bad;
    res->best_epoch = tr.best_epoch;
    res->best_val_accuracy = tr.best_val_accuracy;
    res->early_stopped = tr.early_stopped;
    res->stopped_by = tr.stopped_by;
    res->epoch = tr.epoch;
    res->epoch_step = tr.epoch_step;
    res->steps_per_epoch = tr.steps_per_epoch;
    res->checkpoint_step = tr.checkpoint_step;
    res->checkpoint_err = tr.checkpoint_err;
    res->trainable_values = tr.numel_trainable;
    if (tr.n_bad)
        say(o, OT_FT_MESSAGE, "skipped %lld unreadable images (--skip-bad)", (long long)tr.n_bad);
    if (tr.early_stopped)
        say(o, OT_FT_MESSAGE, "stopped early: no better validation accuracy for %d epochs",
            o->patience);
    if (o->keep_best && tr.best_epoch)
        say(o, OT_FT_MESSAGE, "kept the weights of epoch %d (validation accuracy %.4f)",
            tr.best_epoch, tr.best_val_accuracy);
    if (tr.stopped_by)
        goto done; /* the checkpoint holds the run; nothing is exported */
    if (!tr.cache_used && tr.cache_off_reason)
        say(o, OT_FT_MESSAGE, "prefix cache off: %s%s", tr.cache_off_reason,
            o->cache_bf16 ? " (--cache-dtype bf16 had no effect)" : "");
    else if (tr.cache_used)
        say(o, OT_FT_MESSAGE, "prefix cache: %.1f MB of %s%s%s", (double)tr.cache_bytes / 1e6,
            tr.cache_bf16 ? "bf16 (features rounded in every epoch)" : "f32",
            tr.cache_where ? " in " : "", tr.cache_where ? tr.cache_where : "");
    if (o->qat)
        OT_TRY(qat_phase(o, &dopts, g, &t, &d, res, err));
    else
        OT_TRY(score_test(o, &dopts, g, &t, &d, "test", res, err));
    if (h && h->prepare_export)
        OT_TRY(h->prepare_export(g, model, h->user, err));
    OT_TRY(export_batch(o, g, err));
    OT_TRY(fit_input_size(g, size, err));
    OT_TRY(ot_train_meta_write(g, &t.transform, names, nc, err));
    if (o->output && ot_dist_rank() == 0) /* data-parallel: rank 0 writes */
        OT_TRY(ot_model_export(g, o->output, &o->export_opts, err));
done:
    ot_free(names);
    ot_free(run_options);
    ot_free(pat_train);
    ot_free(pat_freeze);
    ot_free(d.train_idx);
    ot_free(d.val_idx);
    ot_data_free(d.val);
    ot_data_free(d.train);
    ot_data_free(d.test);
    ot_graph_free(owned);
    return st;
}

ot_status ot_finetune(const ot_finetune_opts *opts, ot_finetune_result *result, ot_err *err)
{
    return ot_finetune_run(opts, NULL, result, err);
}

ot_evaluate_opts ot_evaluate_opts_default(void)
{
    ot_evaluate_opts o;
    memset(&o, 0, sizeof o);
    o.batch_size = 32;
    return o;
}

void ot_evaluation_fini(ot_evaluation *r)
{
    ot_free(r->class_names);
    ot_free(r->confusion);
    memset(r, 0, sizeof *r);
}

/* Copies the data's class names into one block: the pointers, then the text. */
static char **copy_names(const ot_dataset *ds)
{
    int n = ot_data_n_classes(ds);
    size_t bytes = sizeof(char *) * ((size_t)n + 1);
    for (int c = 0; c < n; c++)
        bytes += strlen(ot_data_class_name(ds, c)) + 1;
    char **names = ot_malloc(bytes);
    if (!names)
        return NULL;
    char *at = (char *)(names + n + 1);
    for (int c = 0; c < n; c++) {
        size_t len = strlen(ot_data_class_name(ds, c)) + 1;
        memcpy(at, ot_data_class_name(ds, c), len);
        names[c] = at;
        at += len;
    }
    names[n] = NULL;
    return names;
}

ot_status ot_evaluate_data(const ot_evaluate_opts *o, const ot_graph *g, ot_data_split split,
                           ot_dataset **out, ot_data_transform *t, ot_err *err)
{
    ot_status st = OT_OK;
    ot_dataset *ds = NULL;
    *out = NULL;
    const char *model = o->model_path ? o->model_path : "model";
    ot_data_opts dopts = { .max_bytes = o->max_data_bytes ? o->max_data_bytes
                                                          : OT_DATA_DEFAULT_MAX_BYTES,
                           .max_entries = o->max_files ? o->max_files
                                                       : OT_DATA_DEFAULT_MAX_ENTRIES };
    OT_TRY(ot_data_open_with(o->data, split, &dopts, &ds, err));
    if (o->n_data_classes > 0) {
        ot_dataset *sel = NULL;
        OT_TRY(ot_data_select(ds, o->data_classes, o->n_data_classes, 0, 0, &sel, err));
        ot_data_free(ds);
        ds = sel;
    }
    ot_finetune_opts fo = ot_finetune_opts_default();
    fo.progress = o->progress;
    fo.user = o->user;
    OT_TRY(check_model_names(model, g, ds, &fo, err));
    ot_finetune_model_transform(g, t);
    if (o->image_size > 0)
        t->size = o->image_size;
    if (o->has_normalize)
        ot_data_transform_init(t, t->size, norm_of(o->normalize));
    if (o->has_mean)
        memcpy(t->mean, o->mean, sizeof t->mean);
    if (o->has_std)
        memcpy(t->std, o->std, sizeof t->std);
    *out = ds;
    ds = NULL;
done:
    ot_data_free(ds);
    return st;
}

ot_status ot_evaluate(const ot_evaluate_opts *o, ot_evaluation *res, ot_err *err)
{
    ot_status st = OT_OK;
    ot_graph *owned = NULL;
    const ot_graph *g = o->model;
    ot_dataset *ds = NULL;
    int64_t *good = NULL;
    ot_eval_result ev = { 0 };
    memset(res, 0, sizeof *res);
    res->n_bad = -1;
    const char *model = o->model_path ? o->model_path : "model";
    if (!o->data || (!g && !o->model_path))
        return ot_err_set(err, OT_ERR_ARG, "no %s", o->data ? "model" : "data");
    if (o->batch_size < 1)
        return ot_err_set(err, OT_ERR_ARG, "the batch size must be at least 1");
    ot_exec_opts xo = { .cpu.threads = o->threads, .precision = o->precision };
    OT_TRY(ot_device_parse(o->device, &xo.device, err));
    OT_TRY(ot_precision_check(&xo.device, o->precision, err));
    ot_data_opts dopts = { .max_bytes = o->max_data_bytes ? o->max_data_bytes
                                                          : OT_DATA_DEFAULT_MAX_BYTES,
                           .max_entries = o->max_files ? o->max_files
                                                       : OT_DATA_DEFAULT_MAX_ENTRIES };
    if (!g) {
        OT_TRY(ot_onnx_import_file(o->model_path, &o->import, &owned, err));
        g = owned;
    }
    st = ot_graph_check_finite(g, err);
    if (st != OT_OK) {
        ot_err_prefix(err, "%s", model);
        goto done;
    }
    ot_data_split split =
        ot_data_has_split_with(o->data, OT_DATA_TEST, &dopts) ? OT_DATA_TEST : OT_DATA_TRAIN;
    res->test_split = split == OT_DATA_TEST;
    ot_data_transform t;
    OT_TRY(ot_evaluate_data(o, g, split, &ds, &t, err));
    /* skip_bad: the readable images, found before any is scored */
    int64_t n_good = 0;
    if (o->skip_bad) {
        OT_TRY(ot_data_scan_readable(ds, NULL, ot_data_count(ds), &good, &n_good, &res->n_bad,
                                     err));
        if (n_good == 0)
            OT_FAIL(err, OT_ERR_ARG, "%s: none of the %lld images can be read (--skip-bad)",
                    o->data, (long long)res->n_bad);
    }
    /* under an MPI launcher: each rank scores its share */
    OT_TRY(ot_eval_run_ranks(g, ds, o->skip_bad ? good : NULL, o->skip_bad ? n_good : 0, &t,
                             o->batch_size, &xo, ot_dist_current(), &ev, err));
    if (!(res->class_names = copy_names(ds)))
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    res->n = ev.n;
    res->top1 = ev.top1;
    res->top5 = ev.top5;
    res->loss = ev.loss;
    res->n_classes = ev.n_classes;
    res->confusion = ev.confusion;
    ev.confusion = NULL;
done:
    if (st != OT_OK)
        ot_evaluation_fini(res);
    ot_eval_result_fini(&ev);
    ot_free(good);
    ot_data_free(ds);
    ot_graph_free(owned);
    return st;
}

void ot_prediction_fini(ot_prediction *r)
{
    ot_free(r->prob);
    ot_free(r->top_name);
    memset(r, 0, sizeof *r);
}

static uint8_t *pixels_dest(void *user, int h, int w, int c, ot_err *err)
{
    uint8_t **px = user;
    *px = ot_malloc((size_t)h * (size_t)w * (size_t)c);
    if (!*px)
        ot_err_set(err, OT_ERR_NOMEM, "out of memory for a %dx%d image", w, h);
    return *px;
}

ot_status ot_predict(const ot_graph *model, const char *image_path, int threads,
                     ot_prediction *r, ot_err *err)
{
    ot_status st = OT_OK;
    ot_graph *g = NULL;
    ot_exec *x = NULL;
    uint8_t *pixels = NULL;
    float *in = NULL, *tmp = NULL;
    void *scratch = NULL;
    char **names = NULL;
    int n_names = 0;
    memset(r, 0, sizeof *r);
    OT_TRY(ot_graph_check_finite(model, err));
    int32_t image;
    OT_TRY(ot_eval_logits_graph(model, &image, &g, err));
    const ot_value *iv = &model->values[image];
    if (iv->ndim != 4)
        OT_FAIL(err, OT_ERR_ARG, "input '%s' has rank %d; an image classifier takes (N, C, H, W)",
                iv->name, iv->ndim);
    ot_data_transform t;
    ot_finetune_model_transform(model, &t);
    ot_image img;
    OT_TRY(ot_data_decode_file(image_path, pixels_dest, &pixels, &img, err));
    int C = ot_data_out_channels(&t, img.channels), S = t.size;
    ot_image_layout lay = ot_image_layout_find(model, image);
    if (ot_image_channels(model, image, &lay, C) != C)
        OT_FAIL(err, OT_ERR_ARG, "%s: the model takes %d channels, the image gives %d",
                image_path, ot_image_channels(model, image, &lay, C), C);
    size_t scratch_bytes = ot_data_prepare_scratch_bytes(img.height, img.width, &t);
    in = ot_malloc(sizeof *in * (size_t)C * (size_t)S * (size_t)S);
    tmp = lay.nhwc ? ot_malloc(sizeof *in * (size_t)C * (size_t)S * (size_t)S) : NULL;
    scratch = ot_malloc(scratch_bytes ? scratch_bytes : 1);
    if (!in || !scratch || (lay.nhwc && !tmp))
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    st = ot_data_prepare(&img, &t, in, scratch, scratch_bytes, err);
    if (st != OT_OK) {
        ot_err_prefix(err, "%s", image_path);
        goto done;
    }
    ot_tensor tin = ot_image_tensor(&lay, 1, C, S, NULL);
    ot_exec_input b = { .value = image, .tensor = tin };
    ot_exec_opts eo = { .cpu.threads = threads };
    OT_TRY(ot_exec_compile(g, &b, 1, &eo, &x, err));
    tin.data = ot_image_batch(&lay, in, tmp, 1, C, S);
    OT_TRY(ot_exec_run(x, &tin, 1, err));
    const ot_tensor *y = ot_exec_output(x, 0);
    int64_t K = y->ndim >= 2 ? y->dims[y->ndim - 1] : 0;
    if (y->dtype != OT_DTYPE_FLOAT || K < 1 || ot_tensor_numel(y) != K)
        OT_FAIL(err, OT_ERR_ARG, "the model's output is not [N, classes] float");
    if (!(r->prob = ot_malloc(sizeof *r->prob * (size_t)K)))
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    const float *lg = y->data;
    double m = -INFINITY, sum = 0;
    for (int64_t k = 0; k < K; k++)
        m = (double)lg[k] > m ? (double)lg[k] : m;
    for (int64_t k = 0; k < K; k++)
        sum += exp((double)lg[k] - m);
    for (int64_t k = 0; k < K; k++) {
        r->prob[k] = (float)(exp((double)lg[k] - m) / sum);
        if (r->prob[k] > r->prob[r->top])
            r->top = (int)k;
    }
    r->n_classes = (int)K;
    OT_TRY(ot_train_meta_classes(model, &names, &n_names, err));
    if (names && n_names == K && !(r->top_name = ot_strdup(names[r->top])))
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
done:
    if (st != OT_OK)
        ot_prediction_fini(r);
    ot_free(names);
    ot_free(in);
    ot_free(tmp);
    ot_free(scratch);
    ot_free(pixels);
    ot_exec_free(x);
    ot_graph_free(g);
    return st;
}
