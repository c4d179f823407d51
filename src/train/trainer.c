/*
 * trainer.c: the training loop, the frozen-prefix cache and evaluation (see
 * trainer.h). The loop allocates nothing per step: batch buffers, executors
 * (one per batch size: the full one and the last, smaller one, sharing their
 * parameters) and the cache are set up before the first step.
 *
 * Checkpoints: the position is (epochs completed, steps done in the epoch in
 * progress, steps in all); everything else a step depends on is a function
 * of it (the shuffle of seed and epoch, the Dropout seed of seed and step,
 * the learning rate of epoch and step, the augmentation of seed, epoch and
 * image), so restoring the position, the trained tensors, the BN statistics
 * and the optimizer state resumes the steps exactly; what the finished epochs
 * decided (their validation, the best epoch and its tensors, which --keep
 * best exports and --patience counts from) is restored too. Validation runs
 * before an epoch's checkpoint, so that the checkpoint holds its outcome. A
 * checkpoint is written only after a finished step whose loss and
 * parameters are finite.
 */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "data/loader.h"
#include "exec/exec.h"
#include "train/loss.h"
#include "trainer.h"

void ot_train_opts_default(ot_train_opts *o)
{
    memset(o, 0, sizeof *o);
    o->epochs = 5;
    o->batch_size = 32;
    o->optim = ot_optim_opts_default(OT_OPTIM_ADAM);
    o->lr = 1e-3;
    o->schedule.kind = OT_SCHED_CONSTANT;
    o->seed = 0;
    o->cache_mem = 2ull << 30;
    ot_data_transform_init(&o->transform, 224, OT_DATA_NORM_IMAGENET);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Executors for one batch size. */
typedef struct runner {
    int n;
    ot_exec *prefix, *step;
    ot_tensor *cut_in;   /* step inputs: the cut values, then the labels      */
} runner;

typedef struct trainer {
    ot_graph *model;
    const ot_dataset *data;
    const ot_train_opts *o;
    ot_train_graph tg;
    runner full, last;
    int C, S;            /* channels and side of the image input              */
    size_t x_bytes;      /* one image                                         */
    float *x;            /* batch of images (warm_cache)                      */
    float *xb;           /* the current batch: the loader's buffer            */
    ot_data_loader *loader;
    const int64_t *map;  /* position in the training list -> dataset index    */
    int64_t *good;       /* owned map after --skip-bad dropped images          */
    int64_t *didx;       /* this epoch's order as dataset indices             */
    float **best;        /* --keep best: parameters and statistics            */
    ot_optim_state *best_state; /* the same, as the checkpoint stores them     */
    int64_t *labels;
    void *scratch;
    size_t scratch_bytes;
    size_t *cut_bytes;   /* per cut value, bytes of one image's slice          */
    size_t cut_total;    /* sum of cut_bytes                                  */
    size_t *rec_bytes;   /* per cut value, bytes of one image's cache record  */
    size_t rec_total;    /* sum of rec_bytes                                  */
    bool *rec_bf16;      /* per cut value: its records are bfloat16           */
    uint16_t *rec_tmp;   /* one bfloat16 record, for the cache file           */
    uint64_t cache_bytes; /* the cache's size                                 */
    bool cache_bf16;     /* some record is bfloat16: the steps see rounded values */
    float **cut_buf;     /* per cut value: a batch's worth, for the cache path */
    /* cache */
    bool cache_on;
    unsigned char *cache_mem;
    int cache_fd;
    uint8_t *cached;     /* per image: its record is valid                    */
    ot_optim *opt;
    ot_optim_param *oparams;
    float **pptr, **gptr;
    int64_t seed;        /* Dropout masks of the current step               */
    double data_wait_s;  /* time spent waiting for the loader (--profile)     */
    int *group;
    /* checkpoints */
    ot_train_checkpoint ck; /* fingerprints; progress filled at each save    */
    int64_t ckpt_step;   /* step of the last checkpoint written; -1: none    */
    ot_err ckpt_err;     /* the last attempt's write error; code OT_OK: none */
} trainer;

static ot_status bind_tensor(ot_tensor *t, ot_dtype dtype, int ndim, const int64_t *dims, void *data)
{
    memset(t, 0, sizeof *t);
    t->dtype = dtype;
    t->ndim = ndim;
    size_t n = ot_dtype_size(dtype);
    for (int i = 0; i < ndim; i++) {
        t->dims[i] = dims[i];
        n *= (size_t)dims[i];
    }
    t->bytes = n;
    t->data = data;
    return OT_OK;
}

static ot_status make_runner(trainer *T, runner *r, int n, const ot_exec *share, ot_err *err)
{
    ot_status st = OT_OK;
    ot_train_graph *tg = &T->tg;
    r->n = n;
    ot_exec_opts eo = { .threads = T->o->threads, .profile = T->o->profile };
    int64_t xd[4] = { n, T->C, T->S, T->S };
    ot_tensor img;
    bind_tensor(&img, OT_DTYPE_FLOAT, 4, xd, NULL);
    r->cut_in = ot_calloc((size_t)tg->n_cut + 2, sizeof *r->cut_in);
    if (!r->cut_in)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    if (tg->prefix) {
        ot_exec_input in = { .value = tg->image, .tensor = img };
        OT_TRY(ot_exec_compile(tg->prefix, &in, 1, &eo, &r->prefix, err));
        for (int c = 0; c < tg->n_cut; c++)
            r->cut_in[c] = *ot_exec_output(r->prefix, c);
    } else {
        r->cut_in[0] = img;
    }
    int64_t ld[1] = { n };
    bind_tensor(&r->cut_in[tg->n_cut], OT_DTYPE_INT64, 1, ld, T->labels);
    int n_in = tg->n_cut + 1;
    if (tg->seed >= 0)
        bind_tensor(&r->cut_in[n_in++], OT_DTYPE_INT64, 0, NULL, &T->seed);
    ot_exec_input *ins = ot_calloc((size_t)n_in, sizeof *ins);
    if (!ins)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    for (int c = 0; c < n_in; c++) {
        ins[c].value = c < tg->n_cut ? tg->cut[c] : c == tg->n_cut ? tg->labels : tg->seed;
        ins[c].tensor = r->cut_in[c];
        ins[c].tensor.data = NULL;
    }
    eo.share_state = share;
    st = ot_exec_compile(tg->step, ins, n_in, &eo, &r->step, err);
    ot_free(ins);
done:
    return st;
}

static void free_runner(runner *r)
{
    ot_exec_free(r->prefix);
    ot_exec_free(r->step);
    ot_free(r->cut_in);
    memset(r, 0, sizeof *r);
}

/* Rounds n floats to the nearest bfloat16 in place (what the cache keeps). */
static void round_bf16(float *p, size_t n)
{
#pragma omp parallel for if (n >= 65536)
    for (size_t i = 0; i < n; i++)
        p[i] = ot_bf16_to_f32(ot_f32_to_bf16(p[i]));
}

/* Rounds the prefix's output for n images in place where the cache keeps
   bfloat16, so that a step sees the same values whether they come from the
   prefix or from the cache. */
static void round_cut(trainer *T, int c, float *p, int n)
{
    if (T->rec_bf16 && T->rec_bf16[c])
        round_bf16(p, T->cut_bytes[c] / sizeof(float) * (size_t)n);
}

/* The cache record of image i, cut value c: buf holds the image's slice as
   the executor has it (cut_bytes[c]); the record may be bfloat16. */
static ot_status cache_io(trainer *T, int64_t i, int c, void *buf, bool write, ot_err *err)
{
    size_t off = (size_t)i * T->rec_total;
    for (int k = 0; k < c; k++)
        off += T->rec_bytes[k];
    size_t n = T->rec_bytes[c];
    bool bf = T->rec_bf16[c];
    float *f = buf;
    uint16_t *h = T->cache_mem ? (uint16_t *)(void *)(T->cache_mem + off) : T->rec_tmp;
    if (bf && write)
        for (size_t k = 0; k < n / 2; k++)
            h[k] = ot_f32_to_bf16(f[k]);
    if (T->cache_mem) {
        if (!bf)
            memcpy(write ? T->cache_mem + off : buf, write ? buf : T->cache_mem + off, n);
    } else {
        void *rec = bf ? (void *)T->rec_tmp : buf;
        ssize_t r = write ? pwrite(T->cache_fd, rec, n, (off_t)off)
                          : pread(T->cache_fd, rec, n, (off_t)off);
        if (r != (ssize_t)n)
            return ot_err_set(err, OT_ERR_IO, "prefix cache file: %s",
                              r < 0 ? strerror(errno) : "short read or write");
    }
    if (bf && !write)
        for (size_t k = 0; k < n / 2; k++)
            f[k] = ot_bf16_to_f32(h[k]);
    return OT_OK;
}

static ot_status setup_cache(trainer *T, int64_t n_images, ot_err *err)
{
    const ot_train_opts *o = T->o;
    if (!T->tg.prefix || o->no_cache || !T->tg.cacheable || o->epochs < 2 || o->augment)
        return OT_OK;
    int n_cut = T->tg.n_cut;
    T->rec_bytes = ot_calloc((size_t)n_cut + 1, sizeof *T->rec_bytes);
    T->rec_bf16 = ot_calloc((size_t)n_cut + 1, sizeof *T->rec_bf16);
    if (!T->rec_bytes || !T->rec_bf16)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    size_t max_rec = 0;
    for (int c = 0; c < n_cut; c++) {
        /* only float values can be kept as bfloat16 */
        T->rec_bf16[c] = o->cache_bf16 && T->full.cut_in[c].dtype == OT_DTYPE_FLOAT;
        T->rec_bytes[c] = T->rec_bf16[c] ? T->cut_bytes[c] / 2 : T->cut_bytes[c];
        T->rec_total += T->rec_bytes[c];
        T->cache_bf16 |= T->rec_bf16[c];
        if (T->rec_bf16[c] && T->rec_bytes[c] > max_rec)
            max_rec = T->rec_bytes[c];
    }
    size_t total;
    if (!ot_size_mul((size_t)n_images, T->rec_total, &total))
        return OT_OK;
    T->cached = ot_calloc((size_t)n_images + 1, 1);
    if (!T->cached)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    T->cache_bytes = total;
    uint64_t budget = o->cache_mem ? o->cache_mem : (2ull << 30);
    if (total <= budget) {
        T->cache_mem = malloc(total ? total : 1);
        if (T->cache_mem) {
            T->cache_on = true;
            return OT_OK;
        }
    }
    if (max_rec && !(T->rec_tmp = malloc(max_rec)))
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    const char *dir = o->cache_dir ? o->cache_dir : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    char path[4096];
    snprintf(path, sizeof path, "%s/onnxtrain-cache-XXXXXX", dir);
    T->cache_fd = mkstemp(path);
    if (T->cache_fd < 0)
        return ot_err_set(err, OT_ERR_IO, "cannot create the prefix cache under %s: %s", dir,
                          strerror(errno));
    unlink(path); /* the file disappears with the process */
    T->cache_on = true;
    ot_log(OT_LOG_INFO, "prefix cache: %zu bytes in a file under %s", total, dir);
    return OT_OK;
}

static void copy_back(trainer *T, const ot_exec *x)
{
    const ot_train_graph *tg = &T->tg;
    for (int kind = 0; kind < 2; kind++) {
        int n = kind ? tg->n_stats : tg->n_params;
        const int32_t *ids = kind ? tg->stats : tg->params;
        for (int i = 0; i < n; i++) {
            ot_value *v = &T->model->values[ids[i]];
            const void *s = ot_exec_state(x, ids[i]);
            if (s && v->data.data) {
                memcpy(v->data.data, s, v->data.bytes);
                v->flags |= OT_VAL_DIRTY;
            }
        }
    }
}

/* Replays the first `n_steps` batches of epoch 0 through the prefix and
   stores their outputs in the cache: after a resume, the cache then holds
   the bytes the uninterrupted run computed (same batches, same executors). */
static ot_status warm_cache(trainer *T, int64_t *perm, int64_t N, int bs, int64_t n_steps,
                            int64_t steps_per_epoch, ot_err *err)
{
    ot_status st = OT_OK;
    ot_data_shuffle(N, T->o->seed, 0, perm);
    for (int64_t k = 0; k < N; k++)
        T->didx[k] = T->map ? T->map[perm[k]] : perm[k];
    for (int64_t s = 0; s < n_steps; s++) {
        int64_t *idx = perm + s * bs;
        int n = (int)(s == steps_per_epoch - 1 && N % bs ? N % bs : bs);
        runner *r = n == bs ? &T->full : &T->last;
        OT_TRY(ot_data_load_batch(T->data, T->didx + s * bs, n, &T->o->transform, T->x, T->labels,
                                  T->scratch, T->scratch_bytes, err));
        ot_tensor img;
        int64_t xd[4] = { n, T->C, T->S, T->S };
        bind_tensor(&img, OT_DTYPE_FLOAT, 4, xd, T->x);
        OT_TRY(ot_exec_run(r->prefix, &img, 1, err));
        for (int c = 0; c < T->tg.n_cut; c++) {
            char *out = ot_exec_output(r->prefix, c)->data;
            round_cut(T, c, (float *)(void *)out, n);
            for (int i = 0; i < n; i++)
                OT_TRY(cache_io(T, idx[i], c, out + (size_t)i * T->cut_bytes[c], true, err));
        }
        for (int i = 0; i < n; i++)
            T->cached[idx[i]] = 1;
    }
done:
    return st;
}

/* The options that change a run, as "key=value" lines (checkpoint.h). */
static char *options_text(const trainer *T, uint64_t train_hash, const char *val)
{
    const ot_train_opts *o = T->o;
    const ot_optim_opts *op = &o->optim;
    static const char *const kinds[] = { "sgd", "adam", "adamw" };
    static const char *const scheds[] = { "constant", "step", "cosine" };
    uint64_t h = OT_HASH_INIT;
    for (int p = 0; p < T->tg.n_params; p++) {
        const ot_value *v = &T->model->values[T->tg.params[p]];
        h = ot_train_hash(h, v->name, strlen(v->name) + 1);
        h = ot_train_hash(h, &v->data.bytes, sizeof v->data.bytes);
    }
    const ot_data_transform *t = &o->transform;
    size_t extra = o->run_options ? strlen(o->run_options) : 0;
    size_t n = 2048 + extra;
    char *s = ot_malloc(n);
    if (!s)
        return NULL;
    int len = snprintf(
        s, n,
        "batch-size=%d\nlr=%.17g\nhead-lr=%.17g\noptimizer=%s\nweight-decay=%.17g\n"
        "momentum=%.17g\ndampening=%.17g\nnesterov=%d\nbetas=%.17g,%.17g\neps=%.17g\n"
        "lr-schedule=%s\nlr-step=%lld\nlr-gamma=%.17g\ncosine-epochs=%lld\ncosine-per-step=%d\n"
        "warmup=%lld\n"
        "clip-grad=%.17g\nlabel-smoothing=%.9g\nbn=%s\nimage-size=%d\nmean=%.9g,%.9g,%.9g\n"
        "std=%.9g,%.9g,%.9g\nto-rgb=%d\nseed=%llu\ntrained=%d tensors, %016" PRIx64 "\n"
        "augment=%d\ntrain-set=%lld images, %016" PRIx64 "\nvalidation=%s\nkeep=%s\n"
        "patience=%d\n%s",
        o->batch_size, o->lr, o->head_lr > 0 ? o->head_lr : o->lr,
        (unsigned)op->kind < 3 ? kinds[op->kind] : "?", op->weight_decay, op->momentum,
        op->dampening, op->nesterov, op->beta1, op->beta2, op->eps,
        (unsigned)o->schedule.kind < 3 ? scheds[o->schedule.kind] : "?",
        (long long)o->schedule.step_size, o->schedule.gamma, (long long)o->schedule.t_max,
        o->schedule.per_step, (long long)o->schedule.warmup_steps, o->clip_grad,
        (double)o->graph.label_smoothing, o->graph.bn_all_train ? "train" : "policy", t->size,
        (double)t->mean[0], (double)t->mean[1], (double)t->mean[2], (double)t->std[0],
        (double)t->std[1], (double)t->std[2], t->to_rgb, (unsigned long long)o->seed,
        T->tg.n_params, h, o->augment, (long long)T->ck.n_images, train_hash, val,
        o->keep_best ? "best" : "last", o->patience,
        /* bfloat16 records change what the steps see; f32 ones do not */
        T->cache_on && T->cache_bf16 ? "cache-dtype=bf16\n" : "");
    if (len < 0 || (size_t)len >= n - extra - 1) {
        ot_free(s);
        return NULL;
    }
    if (extra) { /* the caller's options first: a mismatch names them first */
        memmove(s + extra, s, (size_t)len + 1);
        memcpy(s, o->run_options, extra);
    }
    return s;
}

/* Trained parameter names, one per line, in the optimizer's order. */
static char *params_text(const trainer *T)
{
    size_t n = 1;
    for (int p = 0; p < T->tg.n_params; p++)
        n += strlen(T->model->values[T->tg.params[p]].name) + 1;
    char *s = ot_malloc(n), *at = s;
    if (!s)
        return NULL;
    for (int p = 0; p < T->tg.n_params; p++) {
        const char *name = T->model->values[T->tg.params[p]].name;
        size_t l = strlen(name);
        memcpy(at, name, l);
        at += l;
        *at++ = '\n';
    }
    *at = '\0';
    return s;
}

/* The first non-finite float state tensor (trained parameter or BN
   statistic), or NULL. */
static const char *non_finite_state(const trainer *T)
{
    const ot_train_graph *tg = &T->tg;
    for (int kind = 0; kind < 2; kind++) {
        int n = kind ? tg->n_stats : tg->n_params;
        const int32_t *ids = kind ? tg->stats : tg->params;
        for (int i = 0; i < n; i++) {
            const ot_value *v = &T->model->values[ids[i]];
            const float *x = ot_exec_state(T->full.step, ids[i]);
            if (!x || v->dtype != OT_DTYPE_FLOAT)
                continue;
            size_t numel = v->data.bytes / sizeof(float);
            for (size_t j = 0; j < numel; j++)
                if (!isfinite(x[j]))
                    return v->name;
        }
    }
    return NULL;
}

/* OT_ERR_ARG naming the step and the tensor when a state tensor is not finite. */
static ot_status check_finite(const trainer *T, ot_err *err)
{
    const char *bad = non_finite_state(T);
    if (bad)
        return ot_err_set(err, OT_ERR_ARG,
                          "after step %lld the trained tensor '%s' holds NaN or infinite values "
                          "(is the learning rate too high?)",
                          (long long)T->ck.step, bad);
    return OT_OK;
}

/* Writes a checkpoint of the executor's current state at the position in
   T->ck (unless one was written at this step already). */
static ot_status save_checkpoint(trainer *T, ot_err *err)
{
    if (!T->o->checkpoint || T->ckpt_step == T->ck.step)
        return OT_OK;
    ot_status st = check_finite(T, err);
    if (st != OT_OK)
        return st;
    copy_back(T, T->full.step);
    const ot_train_graph *tg = &T->tg;
    size_t n_best = 0;
    if (T->best) { /* --keep best: the best epoch's tensors, to resume with */
        n_best = (size_t)(tg->n_params + tg->n_stats);
        if (!T->best_state && !(T->best_state = ot_calloc(n_best, sizeof *T->best_state)))
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < n_best; i++) {
            int32_t id = (int)i < tg->n_params ? tg->params[i] : tg->stats[(int)i - tg->n_params];
            const ot_value *v = &T->model->values[id];
            ot_optim_state *b = &T->best_state[i];
            snprintf(b->name, sizeof b->name, "%zu", i);
            b->dtype = v->dtype;
            b->numel = v->data.bytes / ot_dtype_size(v->dtype);
            b->data = T->best[i];
        }
    }
    /* The checkpoint is auxiliary: a file that cannot be written (a full
       disk) costs the checkpoint, not the run. Training goes on, the next
       checkpoint tries again, and the result reports the last failure. */
    bool was_ok = T->ckpt_err.code == OT_OK;
    st = ot_train_checkpoint_save(T->model, T->opt, T->best_state, n_best, &T->ck,
                                  T->o->checkpoint_prepare, T->o->checkpoint_user,
                                  T->o->checkpoint, &T->ckpt_err);
    if (st == OT_OK) {
        T->ckpt_step = T->ck.step;
        ot_err_init(&T->ckpt_err);
        return OT_OK;
    }
    if (st != OT_ERR_IO) {
        *err = T->ckpt_err;
        return st;
    }
    if (was_ok) /* once per run of failures */
        ot_log(OT_LOG_WARN, "%s; training goes on", T->ckpt_err.msg);
    return OT_OK;
}

/* Appends to an error what became of the checkpoint file. */
static void note_checkpoint(const trainer *T, ot_err *err)
{
    if (!T->o->checkpoint)
        return;
    size_t len = strlen(err->msg);
    if (T->ckpt_step >= 0)
        snprintf(err->msg + len, sizeof err->msg - len,
                 "; the last checkpoint, at step %lld, is kept in %s", (long long)T->ckpt_step,
                 T->o->checkpoint);
    else
        snprintf(err->msg + len, sizeof err->msg - len, "; no checkpoint was written");
}

/* The i-th tensor --keep best copies: the trained parameters, then the BN
   statistics. */
static const ot_value *best_value(const trainer *T, int i)
{
    const ot_train_graph *tg = &T->tg;
    return &T->model->values[i < tg->n_params ? tg->params[i] : tg->stats[i - tg->n_params]];
}

/* Allocates T->best, one buffer per best_value, unless it exists. */
static ot_status alloc_best(trainer *T, ot_err *err)
{
    if (T->best)
        return OT_OK;
    int n = T->tg.n_params + T->tg.n_stats;
    if (!(T->best = ot_calloc((size_t)n + 1, sizeof *T->best)))
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        size_t bytes = best_value(T, i)->data.bytes;
        if (!(T->best[i] = malloc(bytes ? bytes : 1)))
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    }
    return OT_OK;
}

/* Restores the state of a checkpoint into the executors and the optimizer
   and sets T->ck's progress, history and best epoch from it. *finished: the
   run it records has ended (--patience stopped it). */
static ot_status resume(trainer *T, ot_train_result *res, bool *finished, ot_err *err)
{
    ot_status st = OT_OK;
    const ot_train_opts *o = T->o;
    ot_graph *ckg = NULL;
    ot_train_checkpoint saved = { 0 };
    const ot_train_graph *tg = &T->tg;
    st = ot_train_checkpoint_load(o->resume, &ckg, &saved, err);
    if (st != OT_OK) { /* the message names the file already */
        ot_err_prefix(err, "--resume");
        return st;
    }
    OT_TRY(ot_train_checkpoint_match(&saved, &T->ck, err));
    if (saved.epoch + (saved.epoch_step > 0) > o->epochs)
        OT_FAIL(err, OT_ERR_ARG,
                "the checkpoint is at epoch %d%s; --epochs %d is fewer (epochs may be raised on "
                "resume, not lowered)",
                saved.epoch + (saved.epoch_step > 0), saved.epoch_step > 0 ? " (in progress)" : "",
                o->epochs);
    /* the steps done in the epoch in progress are full batches */
    if (saved.n_images != T->ck.n_images ||
        saved.epoch_seen != saved.epoch_step * (int64_t)T->full.n)
        OT_FAIL(err, OT_ERR_PARSE,
                "checkpoint metadata 'images' = %lld and 'epoch_seen' = %lld do not fit this "
                "run (%lld images; %lld steps of %d images)",
                (long long)saved.n_images, (long long)saved.epoch_seen,
                (long long)T->ck.n_images, (long long)saved.epoch_step, T->full.n);
    for (int kind = 0; kind < 2; kind++) {
        int n = kind ? tg->n_stats : tg->n_params;
        const int32_t *ids = kind ? tg->stats : tg->params;
        for (int i = 0; i < n; i++) {
            const ot_value *v = &T->model->values[ids[i]];
            void *dst = ot_exec_state(T->full.step, ids[i]);
            if (dst)
                OT_TRY(ot_train_checkpoint_tensor(ckg, v->name, v->dtype, dst, v->data.bytes,
                                                  err));
        }
    }
    OT_TRY(ot_train_checkpoint_restore_optim(ckg, T->opt, err));
    if (ot_optim_get_step(T->opt) != saved.step)
        OT_FAIL(err, OT_ERR_PARSE,
                "the optimizer's step count (%lld) differs from the checkpoint's step (%lld)",
                (long long)ot_optim_get_step(T->opt), (long long)saved.step);
    /* validation after every finished epoch: a best epoch exactly when an
       epoch is finished and there is validation, its accuracy the history's */
    if (o->val_data ? (saved.best_epoch == 0) != (saved.epoch == 0) : saved.best_epoch != 0)
        OT_FAIL(err, OT_ERR_PARSE, "checkpoint metadata 'best_epoch' = %d does not fit %d "
                "finished epochs %s validation", saved.best_epoch, saved.epoch,
                o->val_data ? "with" : "without");
    for (int i = 0; i < saved.n_history; i++)
        if (isnan(saved.history[i].val_accuracy) != !o->val_data)
            OT_FAIL(err, OT_ERR_PARSE, "checkpoint metadata 'history': epoch %d %s validation "
                    "numbers, and this run %s validation", i + 1,
                    o->val_data ? "lacks" : "has", o->val_data ? "has" : "has no");
    if (saved.best_epoch &&
        saved.history[saved.best_epoch - 1].val_accuracy != saved.best_val_accuracy)
        OT_FAIL(err, OT_ERR_PARSE, "checkpoint metadata 'best_val_accuracy' = %.17g is not "
                "epoch %d's validation accuracy", saved.best_val_accuracy, saved.best_epoch);
    if (o->keep_best && saved.best_epoch) {
        OT_TRY(alloc_best(T, err));
        for (int i = 0; i < tg->n_params + tg->n_stats; i++) {
            const ot_value *v = best_value(T, i);
            char name[64];
            snprintf(name, sizeof name, OT_CKPT_BEST_PREFIX "%d", i);
            OT_TRY(ot_train_checkpoint_tensor(ckg, name, v->dtype, T->best[i], v->data.bytes,
                                              err));
        }
    }
    for (int i = 0; i < saved.n_history; i++)
        T->ck.history[i] = saved.history[i];
    T->ck.n_history = saved.n_history;
    T->ck.best_epoch = saved.best_epoch;
    T->ck.best_val_accuracy = saved.best_val_accuracy;
    res->best_epoch = saved.best_epoch;
    res->best_val_accuracy = saved.best_val_accuracy;
    *finished = o->patience > 0 && saved.epoch_step == 0 && saved.best_epoch &&
                saved.epoch - saved.best_epoch >= o->patience;
    res->early_stopped = *finished;
    T->ck.step = saved.step;
    T->ck.epoch = saved.epoch;
    T->ck.epoch_step = saved.epoch_step;
    T->ck.epoch_loss_sum = saved.epoch_loss_sum;
    T->ck.epoch_correct = saved.epoch_correct;
    T->ck.epoch_seen = saved.epoch_seen;
    T->ck.last_loss = saved.last_loss;
    T->ck.last_accuracy = saved.last_accuracy;
    res->resumed = true;
    res->resumed_epoch = saved.epoch;
    res->resumed_epoch_step = saved.epoch_step;
    res->resumed_step = saved.step;
    /* the same file may be the one we write: it is already the state here */
    if (o->checkpoint && !strcmp(o->checkpoint, o->resume))
        T->ckpt_step = saved.step;
done:
    if (st != OT_OK)
        ot_err_prefix(err, "--resume %s", o->resume);
    ot_train_checkpoint_fini(&saved);
    ot_graph_free(ckg);
    return st;
}

/* --skip-bad: decodes every training image once and keeps the readable ones,
   so that batches, the cache and checkpoints all see one fixed list. */
static ot_status scan_bad(trainer *T, int64_t *N, ot_train_result *res, ot_err *err)
{
    ot_status st = OT_OK;
    size_t bytes = ot_data_max_image_bytes(T->data);
    void *buf = malloc(bytes ? bytes : 1);
    T->good = ot_malloc(sizeof *T->good * (size_t)(*N + 1));
    if (!buf || !T->good)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory scanning the images");
    int64_t kept = 0;
    for (int64_t k = 0; k < *N; k++) {
        int64_t i = T->map ? T->map[k] : k;
        ot_image img;
        ot_err e2;
        ot_err_init(&e2);
        ot_status s2 = ot_data_decode(T->data, i, &img, buf, bytes, &e2);
        if (s2 == OT_OK) {
            T->good[kept++] = i;
        } else if (s2 == OT_ERR_PARSE || s2 == OT_ERR_IO) {
            res->n_bad++;
            ot_log(OT_LOG_INFO, "skipped: %s", e2.msg);
        } else {
            *err = e2;
            st = s2;
            goto done;
        }
    }
    *N = kept;
done:
    free(buf);
    return st;
}

/* Scores the validation set with the weights of now; tracks the best epoch
   and, with keep_best, keeps a copy of its parameters and statistics. */
static ot_status validate(trainer *T, ot_train_epoch *e, ot_train_result *res, ot_err *err)
{
    ot_status st = OT_OK;
    const ot_train_opts *o = T->o;
    const ot_train_graph *tg = &T->tg;
    ot_eval_result ev;
    copy_back(T, T->full.step);
    OT_TRY(ot_eval_run_subset(T->model, o->val_data, o->val_idx, o->val_idx ? o->n_val_idx : 0,
                              &o->transform, o->batch_size, o->threads, &ev, err));
    e->val_loss = ev.loss;
    e->val_accuracy = ev.top1;
    ot_eval_result_fini(&ev);
    if (res->best_epoch == 0 || e->val_accuracy > res->best_val_accuracy) {
        res->best_epoch = e->epoch;
        res->best_val_accuracy = e->val_accuracy;
        e->best = true;
        if (o->keep_best) {
            OT_TRY(alloc_best(T, err));
            for (int i = 0; i < tg->n_params + tg->n_stats; i++)
                memcpy(T->best[i], best_value(T, i)->data.data, best_value(T, i)->data.bytes);
        }
    }
done:
    return st;
}

static ot_status run_batch(trainer *T, runner *r, const int64_t *idx, const int64_t *didx, int n,
                           int64_t *correct, double *loss_sum, ot_err *err)
{
    ot_status st = OT_OK;
    const ot_train_graph *tg = &T->tg;
    bool all_cached = T->cache_on;
    for (int i = 0; i < n && all_cached; i++)
        all_cached = T->cached[idx[i]] != 0;
    if (!all_cached || !tg->prefix) {
        float *x;
        int64_t *labels;
        int got;
        double w0 = T->o->profile ? now_s() : 0;
        OT_TRY(ot_data_loader_next(T->loader, &x, &labels, &got, err));
        if (T->o->profile)
            T->data_wait_s += now_s() - w0;
        if (got != n)
            OT_FAIL(err, OT_ERR_INTERNAL, "the loader gave %d images, the step expected %d", got,
                    n);
        T->xb = x;
        memcpy(T->labels, labels, sizeof *labels * (size_t)n);
    } else {
        for (int i = 0; i < n; i++) {
            int label;
            OT_TRY(ot_data_get(T->data, didx[i], NULL, &label, err));
            T->labels[i] = label;
        }
    }
    if (tg->prefix) {
        if (all_cached) {
            for (int c = 0; c < tg->n_cut; c++)
                for (int i = 0; i < n; i++)
                    OT_TRY(cache_io(T, idx[i], c, (char *)T->cut_buf[c] + (size_t)i * T->cut_bytes[c],
                                    false, err));
            for (int c = 0; c < tg->n_cut; c++)
                r->cut_in[c].data = T->cut_buf[c];
        } else {
            ot_tensor img;
            int64_t xd[4] = { n, T->C, T->S, T->S };
            bind_tensor(&img, OT_DTYPE_FLOAT, 4, xd, T->xb);
            OT_TRY(ot_exec_run(r->prefix, &img, 1, err));
            for (int c = 0; c < tg->n_cut; c++) {
                r->cut_in[c].data = ot_exec_output(r->prefix, c)->data;
                if (!T->cache_on)
                    continue;
                round_cut(T, c, r->cut_in[c].data, n);
                for (int i = 0; i < n; i++)
                    OT_TRY(cache_io(T, idx[i], c,
                                    (char *)r->cut_in[c].data + (size_t)i * T->cut_bytes[c], true,
                                    err));
            }
            if (T->cache_on)
                for (int i = 0; i < n; i++)
                    T->cached[idx[i]] = 1;
        }
    } else {
        r->cut_in[0].data = T->xb;
    }
    r->cut_in[tg->n_cut].data = T->labels;
    if (tg->seed >= 0)
        r->cut_in[tg->n_cut + 1].data = &T->seed;
    OT_TRY(ot_exec_run(r->step, r->cut_in, tg->n_cut + 1 + (tg->seed >= 0), err));
    const ot_tensor *lt = ot_exec_output(r->step, 0), *logits = ot_exec_output(r->step, 1);
    float loss;
    memcpy(&loss, lt->data, sizeof loss);
    if (!isfinite(loss))
        OT_FAIL(err, OT_ERR_ARG, "the loss became %s", isnan(loss) ? "NaN" : "infinite");
    int64_t C = logits->dims[logits->ndim - 1];
    const float *lg = logits->data;
    for (int i = 0; i < n; i++) {
        int64_t best = 0;
        for (int64_t k = 1; k < C; k++)
            if (lg[i * C + k] > lg[i * C + best])
                best = k;
        *correct += best == T->labels[i];
    }
    *loss_sum += (double)loss * n;
    for (int p = 0; p < tg->n_params; p++) {
        T->pptr[p] = ot_exec_state(r->step, tg->params[p]);
        T->gptr[p] = ot_exec_output(r->step, 2 + p)->data;
    }
    for (int s = 0; s < tg->n_stats; s++) {
        void *dst = ot_exec_state(r->step, tg->stats[s]);
        const ot_tensor *src = ot_exec_output(r->step, 2 + tg->n_params + s);
        memcpy(dst, src->data, src->bytes);
    }
done:
    return st;
}

ot_status ot_train_run(ot_graph *model, const ot_dataset *data, const ot_train_opts *o,
                       ot_train_result *res, ot_err *err)
{
    ot_status st = OT_OK;
    trainer T = { .model = model, .data = data, .o = o, .cache_fd = -1, .ckpt_step = -1 };
    ot_err_init(&T.ckpt_err);
    int64_t *perm = NULL;
    memset(res, 0, sizeof *res);
    res->checkpoint_step = -1;
    if (o->epochs < 1 || o->batch_size < 1)
        return ot_err_set(err, OT_ERR_ARG, "--epochs and --batch-size must be at least 1");
    OT_TRY(ot_optim_schedule_check(&o->schedule, err));
    int64_t N = o->train_idx ? o->n_train_idx : ot_data_count(data);
    T.map = o->train_idx;
    if (o->skip_bad) {
        OT_TRY(scan_bad(&T, &N, res, err));
        T.map = T.good;
    }
    if (N < 1)
        OT_FAIL(err, OT_ERR_ARG, "the training set is empty");

    OT_TRY(ot_train_graph_build(model, &o->graph, &T.tg, err));
    ot_train_graph *tg = &T.tg;
    const ot_value *iv = &model->values[tg->image];
    if (iv->ndim != 4)
        OT_FAIL(err, OT_ERR_ARG, "image input '%s' must be 4-D (N, C, H, W)", iv->name);
    T.C = iv->dims[1] > 0 ? (int)iv->dims[1] : 3;
    T.S = o->transform.size;
    int h, w, ch;
    ot_data_shape(data, &h, &w, &ch);
    if (ot_data_out_channels(&o->transform, ch) != T.C)
        OT_FAIL(err, OT_ERR_ARG, "the model takes %d channels, the data gives %d", T.C,
                ot_data_out_channels(&o->transform, ch));
    T.x_bytes = (size_t)T.C * (size_t)T.S * (size_t)T.S * sizeof(float);
    int bs = o->batch_size;
    if (bs > N)
        bs = (int)N;
    T.x = malloc(T.x_bytes * (size_t)bs);
    T.labels = ot_calloc((size_t)bs, sizeof *T.labels);
    (void)h;
    (void)w;
    T.scratch_bytes = ot_data_batch_scratch_bytes(data, &o->transform);
    T.didx = ot_malloc(sizeof *T.didx * (size_t)N);
    if (!T.didx)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    {
        ot_data_loader_opts lo = { .batch_size = bs, .n_workers = o->workers,
                                   .augment = o->augment, .seed = o->seed };
        OT_TRY(ot_data_loader_new(data, &o->transform, &lo, &T.loader, err));
    }
    T.scratch = malloc(T.scratch_bytes ? T.scratch_bytes : 1);
    perm = ot_malloc(sizeof *perm * (size_t)N);
    if (!T.x || !T.labels || !T.scratch || !perm)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory for the batch buffers");

    OT_TRY(make_runner(&T, &T.full, bs, NULL, err));
    int last_n = (int)(N % bs);
    if (last_n)
        OT_TRY(make_runner(&T, &T.last, last_n, T.full.step, err));

    T.cut_bytes = ot_calloc((size_t)tg->n_cut + 1, sizeof *T.cut_bytes);
    T.cut_buf = ot_calloc((size_t)tg->n_cut + 1, sizeof *T.cut_buf);
    if (!T.cut_bytes || !T.cut_buf)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    for (int c = 0; c < tg->n_cut; c++) {
        T.cut_bytes[c] = T.full.cut_in[c].bytes / (size_t)bs;
        T.cut_total += T.cut_bytes[c];
    }
    OT_TRY(setup_cache(&T, N, err));
    if (T.cache_on)
        for (int c = 0; c < tg->n_cut; c++) {
            T.cut_buf[c] = malloc(T.cut_bytes[c] * (size_t)bs + 1);
            if (!T.cut_buf[c])
                OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
        }
    res->cache_used = T.cache_on;
    if (T.cache_on) {
        res->cache_bytes = T.cache_bytes;
        res->cache_bf16 = T.cache_bf16;
    }
    res->cache_off_reason = !tg->prefix       ? "nothing is frozen before the first trained layer"
                            : o->no_cache     ? "--no-cache"
                            : !tg->cacheable  ? tg->why_not_cacheable
                            : o->augment      ? "--augment changes the images every epoch"
                            : o->epochs < 2   ? "one epoch: nothing to reuse"
                                              : NULL;

    /* optimizer: one group for the head when it has its own rate */
    T.oparams = ot_calloc((size_t)tg->n_params + 1, sizeof *T.oparams);
    T.pptr = ot_calloc((size_t)tg->n_params + 1, sizeof *T.pptr);
    T.gptr = ot_calloc((size_t)tg->n_params + 1, sizeof *T.gptr);
    if (!T.oparams || !T.pptr || !T.gptr)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    for (int p = 0; p < tg->n_params; p++) {
        const ot_value *v = &model->values[tg->params[p]];
        T.oparams[p].numel = v->data.bytes / sizeof(float);
        for (int h2 = 0; h2 < o->n_head_params; h2++)
            if (o->head_params[h2] == tg->params[p] && o->head_lr > 0)
                T.oparams[p].group = 1;
        res->numel_trainable += T.oparams[p].numel;
        if (v->dtype != OT_DTYPE_FLOAT)
            OT_FAIL(err, OT_ERR_UNSUPPORTED, "parameter '%s' is %s; training needs float", v->name,
                    ot_dtype_name(v->dtype));
    }
    res->n_trainable = tg->n_params;
    OT_TRY(ot_optim_new(&o->optim, T.oparams, (size_t)tg->n_params, 2, &T.opt, err));

    int64_t steps_per_epoch = (N + bs - 1) / bs;
    res->steps_per_epoch = steps_per_epoch;
    T.ck.steps_per_epoch = steps_per_epoch;
    T.ck.epochs = o->epochs;
    if (o->checkpoint || o->resume) {
        T.ck.format = OT_CKPT_FORMAT;
        T.ck.model_hash = o->model_hash;
        T.ck.n_images = N;
        T.ck.n_classes = ot_data_n_classes(data);
        OT_TRY(ot_train_hash_data(data, &T.ck.data_hash, err));
        /* which images train (--val-split, --skip-bad, ...) and which validate */
        uint64_t train_hash = OT_HASH_INIT;
        for (int64_t k = 0; k < N; k++) {
            int64_t i = T.map ? T.map[k] : k;
            train_hash = ot_train_hash(train_hash, &i, sizeof i);
        }
        char val[96] = "none";
        if (o->val_data) {
            uint64_t vh;
            OT_TRY(ot_train_hash_data(o->val_data, &vh, err));
            int64_t nv = o->val_idx ? o->n_val_idx : ot_data_count(o->val_data);
            for (int64_t k = 0; o->val_idx && k < nv; k++)
                vh = ot_train_hash(vh, &o->val_idx[k], sizeof o->val_idx[k]);
            snprintf(val, sizeof val, "%lld images, %016" PRIx64, (long long)nv, vh);
        }
        T.ck.options = options_text(&T, train_hash, val);
        T.ck.params = params_text(&T);
        if (!T.ck.options || !T.ck.params)
            OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    }
    T.ck.history = ot_calloc((size_t)o->epochs + 1, sizeof *T.ck.history);
    if (!T.ck.history)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    bool finished = false;
    if (o->resume) {
        OT_TRY(resume(&T, res, &finished, err));
        if (o->resumed)
            o->resumed(&T.ck, o->user);
        if (T.cache_on && (T.ck.epoch > 0 || T.ck.epoch_step > 0))
            OT_TRY(warm_cache(&T, perm, N, bs, T.ck.epoch > 0 ? steps_per_epoch : T.ck.epoch_step,
                              steps_per_epoch, err));
    }
    res->final_loss = T.ck.last_loss;
    res->final_accuracy = T.ck.last_accuracy;
    int64_t total_steps = T.ck.step;
    bool stopped = finished;
    for (int epoch = T.ck.epoch; epoch < o->epochs && !stopped; epoch++) {
        ot_data_shuffle(N, o->seed, epoch, perm);
        double t0 = now_s(), loss_sum = 0;
        int64_t correct = 0, seen = 0, seen_here = 0, s0 = 0;
        if (epoch == T.ck.epoch) { /* the epoch a checkpoint left in progress */
            s0 = T.ck.epoch_step;
            loss_sum = T.ck.epoch_loss_sum;
            correct = T.ck.epoch_correct;
            seen = T.ck.epoch_seen;
        }
        bool cached_epoch = T.cache_on && epoch > 0;
        for (int64_t k = 0; k < N; k++)
            T.didx[k] = T.map ? T.map[perm[k]] : perm[k];
        if (!cached_epoch && s0 < steps_per_epoch)
            OT_TRY(ot_data_loader_start_epoch(T.loader, T.didx + s0 * bs, N - s0 * bs, epoch,
                                              err));
        ot_train_epoch e = { .epoch = epoch + 1, .epochs = o->epochs, .steps = steps_per_epoch,
                             .cached = cached_epoch, .val_loss = NAN, .val_accuracy = NAN };
        for (int64_t s = s0; s < steps_per_epoch; s++) {
            if ((o->stop && *o->stop) || (o->max_steps && total_steps >= o->max_steps)) {
                stopped = true;
                break;
            }
            int n = (int)(s == steps_per_epoch - 1 && last_n ? last_n : bs);
            runner *r = n == bs ? &T.full : &T.last;
            double lr = ot_optim_schedule_lr(&o->schedule, o->lr, epoch, s, steps_per_epoch);
            double hlr = ot_optim_schedule_lr(&o->schedule, o->head_lr > 0 ? o->head_lr : o->lr,
                                              epoch, s, steps_per_epoch);
            T.seed = (int64_t)(o->seed * 1000003u + (uint64_t)total_steps); /* per step */
            st = run_batch(&T, r, perm + s * bs, T.didx + s * bs, n, &correct, &loss_sum, err);
            if (st != OT_OK) {
                ot_err_prefix(err, "epoch %d, step %lld (step %lld in all)", epoch + 1,
                              (long long)s + 1, (long long)total_steps + 1);
                note_checkpoint(&T, err);
                goto done;
            }
            if (o->clip_grad > 0) {
                float norm;
                OT_TRY(ot_optim_clip_grad_norm(T.oparams, (size_t)tg->n_params, T.gptr,
                                               (float)o->clip_grad, &norm, err));
            }
            double lrs[2] = { lr, hlr };
            OT_TRY(ot_optim_step(T.opt, lrs, T.pptr, (const float *const *)T.gptr, err));
            seen += n;
            seen_here += n;
            total_steps++;
            e.step = s + 1;
            e.loss = loss_sum / (double)seen;
            e.accuracy = (double)correct / (double)seen;
            e.lr = lr;
            e.seconds = now_s() - t0;
            e.images_per_s = e.seconds > 0 ? (double)seen_here / e.seconds : 0;
            res->final_loss = e.loss;
            res->final_accuracy = e.accuracy;
            /* the position after this step */
            bool epoch_end = s == steps_per_epoch - 1;
            T.ck.step = total_steps;
            T.ck.epoch = epoch_end ? epoch + 1 : epoch;
            T.ck.epoch_step = epoch_end ? 0 : s + 1;
            T.ck.epoch_loss_sum = epoch_end ? 0 : loss_sum;
            T.ck.epoch_correct = epoch_end ? 0 : correct;
            T.ck.epoch_seen = epoch_end ? 0 : seen;
            T.ck.last_loss = e.loss;
            T.ck.last_accuracy = e.accuracy;
            bool stop = o->max_steps && total_steps >= o->max_steps;
            if (epoch_end) { /* validation first: the checkpoint records its outcome */
                if (o->val_data)
                    OT_TRY(validate(&T, &e, res, err));
                T.ck.history[T.ck.n_history++] = (ot_train_checkpoint_epoch){
                    .epoch = epoch + 1, .loss = e.loss, .accuracy = e.accuracy,
                    .val_loss = e.val_loss, .val_accuracy = e.val_accuracy, .lr = e.lr };
                T.ck.best_epoch = res->best_epoch;
                T.ck.best_val_accuracy = res->best_val_accuracy;
            }
            if (epoch_end || (o->checkpoint_every > 0 && total_steps % o->checkpoint_every == 0)) {
                st = save_checkpoint(&T, err);
                if (st != OT_OK) {
                    note_checkpoint(&T, err);
                    goto done;
                }
            }
            if (epoch_end && o->val_data && o->patience > 0 &&
                epoch + 1 - (res->best_epoch ? res->best_epoch : epoch + 1) >= o->patience) {
                res->early_stopped = true;
                stop = true;
            }
            if (o->progress)
                o->progress(&e, epoch_end || stop, o->user);
            if (stop) {
                stopped = true; /* not a stop request: ends the run like the last epoch */
                break;
            }
        }
    }
    if (o->stop && *o->stop)
        res->stopped_by = (int)*o->stop;
    /* at a stop, or where max_steps ended the run; and never a NaN model */
    st = o->checkpoint ? save_checkpoint(&T, err) : check_finite(&T, err);
    if (st != OT_OK) {
        note_checkpoint(&T, err);
        goto done;
    }
    if (o->profile && o->profile_report) {
        const struct ot_exec *xs[4] = { T.full.prefix, T.full.step, T.last.prefix, T.last.step };
        const char *names[4] = { "prefix", "step", "prefix*", "step*" };
        o->profile_report(xs, names, 4, T.data_wait_s, o->user);
    }
    res->steps = total_steps;
    res->epoch = T.ck.epoch;
    res->epoch_step = T.ck.epoch_step;
    copy_back(&T, T.full.step);
    if (o->keep_best && T.best) { /* the best validation epoch's weights */
        for (int i = 0; i < tg->n_params + tg->n_stats; i++) {
            int32_t id = i < tg->n_params ? tg->params[i] : tg->stats[i - tg->n_params];
            ot_value *v = &model->values[id];
            memcpy(v->data.data, T.best[i], v->data.bytes);
        }
    } else {
        res->best_epoch = 0;
    }
done:
    free_runner(&T.full);
    free_runner(&T.last);
    ot_optim_free(T.opt);
    ot_free(T.oparams);
    ot_free(T.pptr);
    ot_free(T.gptr);
    for (int c = 0; T.cut_buf && c < T.tg.n_cut; c++)
        free(T.cut_buf[c]);
    ot_free(T.cut_buf);
    ot_free(T.cut_bytes);
    free(T.cache_mem);
    if (T.cache_fd >= 0)
        close(T.cache_fd);
    ot_free(T.cached);
    ot_free(T.rec_bytes);
    ot_free(T.rec_bf16);
    free(T.rec_tmp);
    free(T.x);
    ot_data_loader_free(T.loader);
    ot_free(T.didx);
    ot_free(T.good);
    for (int i = 0; T.best && i < T.tg.n_params + T.tg.n_stats; i++)
        free(T.best[i]);
    ot_free(T.best);
    ot_free(T.best_state);
    ot_free(T.labels);
    free(T.scratch);
    ot_free(perm);
    ot_train_graph_fini(&T.tg);
    res->checkpoint_step = T.ckpt_step;
    res->checkpoint_err = T.ckpt_err;
    ot_train_checkpoint_fini(&T.ck);
    return st;
}
