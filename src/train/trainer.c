/*
 * trainer.c: the training loop (see trainer.h). The loop allocates nothing
 * per step: batch buffers, executors (one per batch size: the full one and
 * the last, smaller one, sharing their parameters) and the prefix cache
 * (prefix_cache.c) are set up before the first step. What checkpoints,
 * resume and --keep best need of the run is the glue at the end of
 * checkpoint.c; evaluation is in eval.c.
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
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "data/loader.h"
#include "dist/dist.h"
#include "exec/exec.h"
#include "train/layout.h"
#include "train/loss.h"
#include "train/loss_scale.h"
#include "train/prefix_cache.h"
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
    ot_tensor *cut_in;   /* step inputs: the cut values, the labels, the Dropout
                            seed, the learning rates, the step number         */
    int n_in;
} runner;

typedef struct trainer {
    ot_graph *model;
    const ot_dataset *data;
    const ot_train_opts *o;
    ot_train_graph tg;
    runner full, last;
    int C, S;            /* channels and side of the image input              */
    ot_image_layout lay; /* where the image input has its channels            */
    size_t x_bytes;      /* one image                                         */
    float *x;            /* batch of images (warm_cache)                      */
    float *xb;           /* the current batch as the model takes it           */
    float *xt;           /* an NHWC input: the batch transposed (else NULL)   */
    ot_data_loader *loader;
    const int64_t *map;  /* position in the training list -> dataset index    */
    int64_t *good;       /* owned map after --skip-bad dropped images          */
    int64_t *val_good;   /* --skip-bad: the readable validation images (owned) */
    int64_t n_val_good;
    int64_t *didx;       /* this epoch's order as dataset indices             */
    int64_t *labels;
    void *scratch;
    size_t scratch_bytes;
    ot_train_cache cache; /* the frozen prefix's outputs (prefix_cache.h)      */
    double lr[2];        /* the step's learning rates: base and head          */
    int64_t step_no;     /* the step's number, 1 at the first (the updates')  */
    int64_t seed;        /* Dropout masks of the current step               */
    double data_wait_s;  /* time spent waiting for the loader (--profile)     */
    ot_train_ckpt_run ckpt; /* checkpoints, resume, --keep best (checkpoint.h) */
    /* data-parallel: this rank's share of each batch (docs/distributed.md) */
    ot_comm *comm;       /* NULL for one process                            */
    int rank, ranks;
    /* the training loop's share of the communicator's counts: theirs when
       it began, and the seconds in the step's sums and the BatchNorm
       statistics' mean */
    double reduce0, busy0, wait0, sums_s, stats_s;
    uint64_t bytes0;
    double *sums;        /* the step's sums: 4 and one per rank             */
    double step_reduce0; /* reduce_s when the step began                    */
    double least_s;      /* per step, the least a rank spent in all-reduces
                            (before the sums), and the BatchNorm mean       */
    int64_t *rdidx;      /* this rank's images of the epoch, for the loader   */
    bool loader_on;      /* the loader runs this epoch; else the cache, and
                            what a rank's cache lacks is read in the loop    */
    /* The next step's batch handed in ahead (ONNXTRAIN_PREFETCH, on by
       default where runs overlap the host: CUDA): fetched from the loader
       and prefetched into its executor while this step computes. */
    bool ahead_on;
    /* In-memory data sets (CIFAR-10, IDX) without --augment: the uint8
       images handed to the executor, which resizes and normalises them
       where it runs (ONNXTRAIN_DEVICE_PREP, on by default on CUDA). */
    bool u8_on;
    ot_exec_u8 u8;
    int32_t *u8_coef;
    uint8_t *u8_img;     /* a batch of uint8 images (with --augment, then
                            their boxes: ot_exec_u8's box_ints)              */
    int64_t epoch;       /* the epoch in progress (--augment's boxes)         */
    int u8_h, u8_w, u8_c;
    size_t u8_px;        /* bytes of one                                      */
    int ahead_n;         /* its images (0: none handed in)                    */
    float *ahead_x;      /* the loader's buffer (valid until its next call), or
                            T->xt for an NHWC input                          */
    int64_t *ahead_labels;
    int64_t prefix_runs; /* the frozen prefix's runs                         */
    int64_t ahead_count; /* batches handed in ahead                          */
    bool scaling;        /* dynamic loss scaling (loss_scale.h)              */
    ot_loss_scaler scaler;
    float scale;         /* the step's loss scale input                      */
    pthread_t watch;     /* data-parallel: acts on a stop request at once    */
    atomic_int watch_on;
    bool watching;
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

/* The executors' options: the run's device and threads. */
static ot_status exec_opts(const ot_train_opts *o, ot_exec_opts *eo, ot_err *err)
{
    *eo = (ot_exec_opts){ .cpu.threads = o->threads, .profile = o->profile,
                          .precision = o->precision };
    return ot_device_parse(o->device, &eo->device, err);
}

static ot_status make_runner(trainer *T, runner *r, int n, const ot_exec *share, ot_err *err)
{
    ot_status st = OT_OK;
    ot_train_graph *tg = &T->tg;
    r->n = n;
    ot_exec_opts eo;
    OT_TRY(exec_opts(T->o, &eo, err));
    ot_tensor img = ot_image_tensor(&T->lay, n, T->C, T->S, NULL);
    r->cut_in = ot_calloc((size_t)tg->n_cut + 7, sizeof *r->cut_in);
    if (!r->cut_in)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    if (tg->prefix) {
        ot_exec_input in = { .value = tg->image, .tensor = img };
        ot_exec_opts po = eo;
        po.prefetch_input = T->u8_on || T->ahead_on; /* the images (with u8: as uint8) */
        po.prefetch_u8 = T->u8_on ? &T->u8 : NULL;
        OT_TRY(ot_exec_compile(tg->prefix, &in, 1, &po, &r->prefix, err));
        for (int c = 0; c < tg->n_cut; c++)
            r->cut_in[c] = *ot_exec_output(r->prefix, c);
    } else {
        r->cut_in[0] = img;
    }
    int64_t ld[1] = { n };
    ot_exec_input *ins = ot_calloc((size_t)tg->n_cut + 7, sizeof *ins);
    if (!ins)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    for (int c = 0; c < tg->n_cut; c++)
        ins[c].value = tg->cut[c];
    int n_in = tg->n_cut;
    ins[n_in].value = tg->labels;
    bind_tensor(&r->cut_in[n_in++], OT_DTYPE_INT64, 1, ld, T->labels);
    if (tg->seed >= 0) {
        ins[n_in].value = tg->seed;
        bind_tensor(&r->cut_in[n_in++], OT_DTYPE_INT64, 0, NULL, &T->seed);
    }
    for (int grp = 0; grp < 2; grp++)
        if (tg->optim.lr[grp] >= 0) {
            ins[n_in].value = tg->optim.lr[grp];
            bind_tensor(&r->cut_in[n_in++], OT_DTYPE_DOUBLE, 0, NULL, &T->lr[grp]);
        }
    ins[n_in].value = tg->optim.step;
    bind_tensor(&r->cut_in[n_in++], OT_DTYPE_INT64, 0, NULL, &T->step_no);
    if (tg->loss_scale >= 0) {
        ins[n_in].value = tg->loss_scale;
        bind_tensor(&r->cut_in[n_in++], OT_DTYPE_FLOAT, 0, NULL, &T->scale);
    }
    r->n_in = n_in;
    for (int c = 0; c < n_in; c++) {
        ins[c].tensor = r->cut_in[c];
        ins[c].tensor.data = NULL;
    }
    eo.prefetch_input = (T->ahead_on || T->u8_on) && !tg->prefix; /* the images: input 0 */
    eo.prefetch_u8 = T->u8_on && !tg->prefix ? &T->u8 : NULL;
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

/* The prefix's outputs of its last run (images idx) into the cache: on the
   device through its store, else rounded in place where the records are
   bfloat16 (the step then reads them so) and written record by record. */
static ot_status cache_store(trainer *T, runner *r, const int64_t *idx, int n, ot_err *err)
{
    ot_status st = OT_OK;
    ot_train_cache *cache = &T->cache;
    for (int c = 0; c < T->tg.n_cut; c++) {
        if (cache->store) {
            OT_TRY(ot_exec_store_put(cache->store, r->prefix, c, c, idx, n, err));
            continue;
        }
        char *out = ot_exec_output(r->prefix, c)->data;
        ot_train_cache_round(cache, c, (float *)(void *)out, n);
        for (int i = 0; i < n; i++)
            OT_TRY(ot_train_cache_io(cache, idx[i], c, out + (size_t)i * cache->cut_bytes[c],
                                     true, err));
    }
    for (int i = 0; i < n; i++)
        cache->cached[idx[i]] = 1;
done:
    return st;
}

/* The records of images idx as the step's cut inputs: on the device handed
   in by its store (the host's buffers only for a backend that reads them),
   else read into the buffers. */
static ot_status cache_load(trainer *T, runner *r, const int64_t *idx, int n, ot_err *err)
{
    ot_status st = OT_OK;
    ot_train_cache *cache = &T->cache;
    for (int c = 0; c < T->tg.n_cut; c++) {
        char *buf = (char *)cache->cut_buf[c];
        if (cache->store)
            OT_TRY(ot_exec_store_take(cache->store, r->step, c, c, idx, n, buf, err));
        else
            for (int i = 0; i < n; i++)
                OT_TRY(ot_train_cache_io(cache, idx[i], c, buf + (size_t)i * cache->cut_bytes[c],
                                         false, err));
        r->cut_in[c].data = buf;
    }
done:
    return st;
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
        ot_tensor img = ot_image_tensor(&T->lay, n, T->C, T->S,
                                        ot_image_batch(&T->lay, T->x, T->xt, n, T->C, T->S));
        OT_TRY(ot_exec_run(r->prefix, &img, 1, err));
        T->prefix_runs++;
        OT_TRY(cache_store(T, r, idx, n, err));
    }
done:
    return st;
}

/* --skip-bad: decodes every training and validation image once and keeps
   the readable ones, so that batches, the cache, checkpoints and every
   validation see one fixed list. */
static ot_status scan_bad(trainer *T, int64_t *N, ot_train_result *res, ot_err *err)
{
    ot_status st = OT_OK;
    const ot_train_opts *o = T->o;
    int64_t n_good = 0, n_bad = 0;
    OT_TRY(ot_data_scan_readable(T->data, T->map, *N, &T->good, &n_good, &res->n_bad, err));
    *N = n_good;
    if (o->val_data) {
        int64_t nv = o->val_idx ? o->n_val_idx : ot_data_count(o->val_data);
        OT_TRY(ot_data_scan_readable(o->val_data, o->val_idx, nv, &T->val_good, &T->n_val_good,
                                     &n_bad, err));
        res->n_bad += n_bad;
        if (T->n_val_good == 0)
            OT_FAIL(err, OT_ERR_ARG, "none of the %lld validation images can be read",
                    (long long)nv);
    }
done:
    return st;
}

/* Scores the validation set with the weights of now; tracks the best epoch
   and, with keep_best, keeps a copy of its parameters and statistics. */
static ot_status validate(trainer *T, ot_train_epoch *e, ot_train_result *res, ot_err *err)
{
    ot_status st = OT_OK;
    const ot_train_opts *o = T->o;
    ot_eval_result ev;
    ot_exec_opts eo;
    OT_TRY(ot_train_ckpt_sync(&T->ckpt, err));
    OT_TRY(exec_opts(o, &eo, err));
    /* data-parallel: each rank scores its share, the counts are summed */
    if (T->val_good)
        OT_TRY(ot_eval_run_ranks(T->model, o->val_data, T->val_good, T->n_val_good,
                                 &o->transform, o->batch_size, &eo, T->comm, &ev, err));
    else
        OT_TRY(ot_eval_run_ranks(T->model, o->val_data, o->val_idx,
                                 o->val_idx ? o->n_val_idx : 0, &o->transform, o->batch_size,
                                 &eo, T->comm, &ev, err));
    e->val_loss = ev.loss;
    e->val_accuracy = ev.top1;
    ot_eval_result_fini(&ev);
    if (res->best_epoch == 0 || e->val_accuracy > res->best_val_accuracy) {
        res->best_epoch = e->epoch;
        res->best_val_accuracy = e->val_accuracy;
        e->best = true;
        if (o->keep_best)
            OT_TRY(ot_train_ckpt_keep_best(&T->ckpt, err));
    }
done:
    return st;
}

/* Whether the run's device is a CUDA one. */
static bool on_cuda(const ot_train_opts *o)
{
    ot_device d;
    ot_err err;
    ot_err_init(&err);
    return ot_device_parse(o->device, &d, &err) == OT_OK && d.kind == OT_DEVICE_CUDA;
}

/* Whether batches are handed in ahead: ONNXTRAIN_PREFETCH=0 never, =1
   always (the CPU too, where it changes nothing but the order of the
   loader's calls), else where the device's runs overlap the host. */
static bool ahead_wanted(const ot_train_opts *o)
{
    const char *e = getenv("ONNXTRAIN_PREFETCH");
    if (e && *e)
        return strcmp(e, "0") != 0;
    return on_cuda(o);
}

/* ONNXTRAIN_DEVICE_PREP=0 never, =1 always (on the CPU, the executor calls
   u8_host: the loader's own transform), else on CUDA; only for a data set
   in memory, one process, an NCHW image input. With --augment each image
   comes with its box and flip (u8_boxes). */
static bool u8_wanted(const trainer *T)
{
    const ot_train_opts *o = T->o;
    int h = 0, w = 0, c = 0;
    ot_data_shape(T->data, &h, &w, &c);
    if (T->ranks > 1 || T->lay.nhwc || h < 1 || w < 1 || (c != 1 && c != 3) ||
        ot_data_out_channels(&o->transform, c) != T->C)
        return false;
    const char *e = getenv("ONNXTRAIN_DEVICE_PREP");
    if (e && *e)
        return strcmp(e, "0") != 0;
    return on_cuda(o);
}

/* The transform on the host, for an executor that computes there. */
static ot_status u8_host(void *user, const uint8_t *images, int n, float *out, ot_err *err)
{
    trainer *T = user;
    ot_status st = OT_OK;
    size_t po = T->x_bytes / sizeof *out;
    const int32_t *boxes = NULL;
    if (T->u8.box_ints) /* --augment: each image's box after the images */
        boxes = (const int32_t *)(const void *)(images + ot_exec_u8_box_offset(&T->u8, n));
    for (int b = 0; b < n; b++) {
        ot_image im = { images + (size_t)b * T->u8_px, T->u8_h, T->u8_w, T->u8_c };
        const int32_t *q = boxes ? boxes + (size_t)b * (size_t)T->u8.box_ints : NULL;
        if (q)
            OT_TRY(ot_data_prepare_box(&im, &T->o->transform, q[0], q[1], q[2], q[3], q[6] != 0,
                                       out + (size_t)b * po, T->scratch, T->scratch_bytes, err));
        else
            OT_TRY(ot_data_prepare(&im, &T->o->transform, out + (size_t)b * po, T->scratch,
                                   T->scratch_bytes, err));
    }
done:
    return st;
}

/* The uint8 transform's tables and buffers; false (u8 off) when the plan
   does not fit. */
static ot_status u8_setup(trainer *T, int lbs, ot_err *err)
{
    ot_data_resample r;
    ot_data_shape(T->data, &T->u8_h, &T->u8_w, &T->u8_c);
    if (!ot_data_resample_plan(T->u8_h, T->u8_w, &T->o->transform, &r) || r.S != T->S) {
        T->u8_on = false;
        return OT_OK;
    }
    T->u8_px = (size_t)T->u8_c * (size_t)T->u8_h * (size_t)T->u8_w;
    T->u8_coef = ot_malloc((r.n_coef ? r.n_coef : 1) * sizeof *T->u8_coef);
    if (!T->u8_coef)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    ot_data_resample_coefs(&r, T->u8_coef);
    T->u8 = (ot_exec_u8){ .c_in = T->u8_c, .h = T->u8_h, .w = T->u8_w, .top = r.top,
                          .left = r.left, .kw = r.kw, .kh = r.kh, .coef = T->u8_coef,
                          .n_coef = r.n_coef, .host = u8_host, .user = T };
    if (T->o->augment) { /* a box and tables per image, no shared tables */
        size_t most = ot_data_box_coef_max(T->u8_h, T->u8_w, &T->o->transform);
        size_t need = ot_data_augment_scratch_bytes(T->u8_h, T->u8_w, &T->o->transform);
        if (!most || !need || most > (size_t)INT32_MAX - OT_EXEC_U8_BOX_HEAD) {
            T->u8_on = false;
            return OT_OK;
        }
        T->u8.box_ints = OT_EXEC_U8_BOX_HEAD + (int)most;
        T->u8.coef = NULL;
        T->u8.n_coef = 0;
        if (need > T->scratch_bytes) { /* u8_host's boxes */
            void *grown = ot_realloc(T->scratch, need);
            if (!grown)
                return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
            T->scratch = grown;
            T->scratch_bytes = need;
        }
    }
    T->u8_img = ot_malloc(ot_exec_u8_bytes(&T->u8, lbs));
    if (!T->u8_img)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    for (int c = 0; c < 3; c++) {
        T->u8.mean[c] = T->o->transform.mean[c];
        T->u8.std[c] = T->o->transform.std[c];
    }
    return OT_OK;
}

/* --augment: the box, flip and tables of each of the n images (dataset
   indices didx) after them in T->u8_img: the loader's draw for (seed,
   epoch, index) (ot_data_augment_params), so the same crops and flips. */
static ot_status u8_boxes(trainer *T, const int64_t *didx, int n, ot_err *err)
{
    int32_t *boxes = (int32_t *)(void *)(T->u8_img + ot_exec_u8_box_offset(&T->u8, n));
    for (int b = 0; b < n; b++) {
        int32_t *q = boxes + (size_t)b * (size_t)T->u8.box_ints;
        ot_data_crop c;
        ot_data_resample r;
        ot_data_augment_params(T->u8_h, T->u8_w, T->o->seed, T->epoch, didx[b], &c);
        if (!ot_data_box_resample_plan(T->u8_h, T->u8_w, c.top, c.left, c.height, c.width,
                                       &T->o->transform, &r) ||
            OT_EXEC_U8_BOX_HEAD + r.n_coef > (size_t)T->u8.box_ints)
            return ot_err_set(err, OT_ERR_INTERNAL, "image %lld: no resample plan for its crop",
                              (long long)didx[b]);
        int32_t head[OT_EXEC_U8_BOX_HEAD] = { c.top, c.left, c.height, c.width,
                                              r.kw,  r.kh,   c.flip,   0 };
        memcpy(q, head, sizeof head);
        ot_data_resample_coefs(&r, q + OT_EXEC_U8_BOX_HEAD);
    }
    return OT_OK;
}

/* n images (dataset indices didx) and their labels into T->u8_img, then
   handed to `x`'s image input for its next run. */
static ot_status u8_batch(trainer *T, ot_exec *x, const int64_t *didx, int n, int64_t *labels,
                          ot_err *err)
{
    ot_status st = OT_OK;
    double w0 = T->o->profile ? now_s() : 0;
    for (int b = 0; b < n; b++) {
        ot_image im;
        int label;
        OT_TRY(ot_data_get(T->data, didx[b], &im, &label, err));
        if (im.height != T->u8_h || im.width != T->u8_w || im.channels != T->u8_c)
            OT_FAIL(err, OT_ERR_INTERNAL, "image %lld is not of the data set's shape",
                    (long long)didx[b]);
        memcpy(T->u8_img + (size_t)b * T->u8_px, im.data, T->u8_px);
        labels[b] = label;
    }
    if (T->u8.box_ints)
        OT_TRY(u8_boxes(T, didx, n, err));
    OT_TRY(ot_exec_prefetch_u8(x, 0, T->u8_img, T->x, err));
    if (T->o->profile)
        T->data_wait_s += now_s() - w0;
done:
    return st;
}

/* The loader's next batch of n images (*x: its buffer, valid until its next
   call) and their labels; the wait counts as waiting for data. */
static ot_status loader_batch(trainer *T, int n, float **x, int64_t *labels_out, ot_err *err)
{
    ot_status st = OT_OK;
    int64_t *labels;
    int got;
    double w0 = T->o->profile ? now_s() : 0;
    OT_TRY(ot_data_loader_next(T->loader, x, &labels, &got, err));
    if (T->o->profile)
        T->data_wait_s += now_s() - w0;
    if (got != n)
        OT_FAIL(err, OT_ERR_INTERNAL, "the loader gave %d images, the step expected %d", got, n);
    memcpy(labels_out, labels, sizeof *labels * (size_t)n);
done:
    return st;
}

/* The next step's batch (n images, for runner `next`), from the loader into
   its executor while the step in flight computes. */
static ot_status fetch_ahead(trainer *T, runner *next, const int64_t *didx, int n, ot_err *err)
{
    ot_status st = OT_OK;
    float *x = T->x;
    ot_exec *to = T->tg.prefix ? next->prefix : next->step; /* takes the images */
    if (T->u8_on) {
        OT_TRY(u8_batch(T, to, didx, n, T->ahead_labels, err));
    } else {
        OT_TRY(loader_batch(T, n, &x, T->ahead_labels, err));
        /* an NHWC batch is transposed into T->xt: the step in flight has
           taken its input (ot_exec_launch: the CPU's has ended, a device's
           has its bytes) */
        x = ot_image_batch(&T->lay, x, T->xt, n, T->C, T->S);
        ot_tensor img = ot_image_tensor(&T->lay, n, T->C, T->S, x);
        OT_TRY(ot_exec_prefetch(to, 0, &img, err));
    }
    T->ahead_x = x;
    T->ahead_n = n;
    T->ahead_count++;
done:
    return st;
}

/* One step. `next` (with next_n images) is the step after this one when
   its batch may be handed in ahead, else NULL. */
static ot_status run_batch(trainer *T, runner *r, const int64_t *idx, const int64_t *didx, int n,
                           runner *next, const int64_t *next_didx, int next_n, int64_t *correct,
                           double *loss_sum, ot_err *err)
{
    ot_status st = OT_OK;
    const ot_train_graph *tg = &T->tg;
    ot_train_cache *cache = &T->cache;
    bool all_cached = ot_train_cache_has(cache, idx, n);
    bool need_image = !all_cached || !tg->prefix, laid_out = false;
    if (T->u8_on && !T->ahead_n && need_image) { /* u8_on: NCHW inputs only */
        OT_TRY(u8_batch(T, tg->prefix ? r->prefix : r->step, didx, n, T->labels, err));
        T->xb = T->x;
        laid_out = true;
    } else if (need_image && !T->loader_on) {
        /* a rank's cache holds the images it met; this one it did not */
        OT_TRY(ot_data_load_batch(T->data, didx, n, &T->o->transform, T->x, T->labels, T->scratch,
                                  T->scratch_bytes, err));
        T->xb = T->x;
    } else if (T->ahead_n) { /* handed in ahead by the step before */
        if (T->ahead_n != n)
            OT_FAIL(err, OT_ERR_INTERNAL, "a batch of %d images was handed in ahead, the step "
                    "expected %d", T->ahead_n, n);
        T->xb = T->ahead_x; /* as the model takes it (fetch_ahead) */
        laid_out = true;
        memcpy(T->labels, T->ahead_labels, sizeof *T->labels * (size_t)n);
        T->ahead_n = 0;
    } else if (need_image) {
        OT_TRY(loader_batch(T, n, &T->xb, T->labels, err));
    } else {
        for (int i = 0; i < n; i++) {
            int label;
            OT_TRY(ot_data_get(T->data, didx[i], NULL, &label, err));
            T->labels[i] = label;
        }
    }
    if (need_image && !laid_out) /* as the model takes it */
        T->xb = ot_image_batch(&T->lay, T->xb, T->xt, n, T->C, T->S);
    if (tg->prefix) {
        if (!all_cached) {
            ot_tensor img = ot_image_tensor(&T->lay, n, T->C, T->S, T->xb);
            OT_TRY(ot_exec_run(r->prefix, &img, 1, err));
            T->prefix_runs++;
            if (cache->on)
                OT_TRY(cache_store(T, r, idx, n, err));
        }
        if (all_cached || cache->store) /* a store: from the records, on the device */
            OT_TRY(cache_load(T, r, idx, n, err));
        else
            for (int c = 0; c < tg->n_cut; c++)
                r->cut_in[c].data = ot_exec_output(r->prefix, c)->data;
    } else {
        r->cut_in[0].data = T->xb;
    }
    OT_TRY(ot_exec_launch(r->step, r->cut_in, r->n_in, err));
    if (next && T->loader_on) /* the next step reads images: a cached epoch does not */
        OT_TRY(fetch_ahead(T, next, next_didx, next_n, err));
    OT_TRY(ot_exec_wait(r->step, err));
    const ot_tensor *lt = ot_exec_output(r->step, 0), *logits = ot_exec_output(r->step, 1);
    float loss;
    memcpy(&loss, lt->data, sizeof loss);
    if (!isfinite(loss) && T->ranks == 1) /* ranks: checked on the sum of all */
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
    if (tg->optim.grad_norm >= 0 && T->scaling) { /* an overflow skipped the updates */
        float norm;
        memcpy(&norm, ot_exec_output(r->step, 2)->data, sizeof norm);
        float was = T->scaler.scale;
        if (ot_loss_scaler_update(&T->scaler, !isfinite(norm)))
            ot_log(OT_LOG_INFO, "step skipped: a gradient overflowed at loss scale %g (now %g)",
                   (double)was, (double)T->scaler.scale);
    } else if (tg->optim.grad_norm >= 0) { /* as clip_grad_norm_(error_if_nonfinite=True) */
        float norm;
        memcpy(&norm, ot_exec_output(r->step, 2)->data, sizeof norm);
        if (!isfinite(norm))
            OT_FAIL(err, OT_ERR_ARG, "clip_grad_norm: the total gradient norm is %g, cannot clip",
                    (double)norm);
    }
done:
    return st;
}

/* Data-parallel: every rank takes rank 0's trained parameters, BN
   statistics and optimizer moments, so that all start from the same state
   (the new head's initialisation included): with NCCL's communicator on
   the executor's buffers (ncclBroadcast on its queue), else through host
   copies over MPI. */
static ot_status bcast_state(trainer *T, ot_err *err)
{
    ot_status st = OT_OK;
    const ot_train_graph *tg = &T->tg;
    void *buf = NULL;
    size_t cap = 0;
    int n_ids = tg->n_params + tg->n_stats + tg->optim.n_bufs * tg->n_params;
    for (int i = 0; i < n_ids; i++) {
        int32_t id = i < tg->n_params                ? tg->params[i]
                     : i < tg->n_params + tg->n_stats ? tg->stats[i - tg->n_params]
                                                      : tg->optim.bufs[i - tg->n_params - tg->n_stats];
        size_t bytes = ot_exec_state_bytes(T->full.step, id);
        if (!bytes)
            continue;
        if (T->comm->dev) {
            void *mem, *queue;
            OT_TRY(ot_exec_state_mem(T->full.step, id, &mem, &bytes, &queue, err));
            /* the executor's memory is what the communicator's queue reduces */
            if ((queue == NULL) == T->comm->queue->host) {
                OT_TRY(ot_comm_dev_bcast(T->comm, mem, bytes, 0, queue, err));
                continue;
            }
        }
        if (bytes > cap) {
            ot_free(buf);
            cap = bytes;
            if (!(buf = ot_malloc(cap)))
                OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
        }
        OT_TRY(ot_exec_read_state(T->full.step, id, buf, bytes, err));
        OT_TRY(ot_comm_bcast(T->comm, buf, bytes, 0, err));
        OT_TRY(ot_exec_write_state(T->full.step, id, buf, bytes, err));
    }
done:
    ot_free(buf);
    return st;
}

/* Data-parallel without --sync-bn: each rank normalised its own images, so
   its BN running statistics differ; after every step they become the mean
   over the ranks, all of them in one all-reduce (buf: room for them all). */
static ot_status avg_stats(trainer *T, float *buf, ot_err *err)
{
    ot_status st = OT_OK;
    size_t at = 0;
    for (int i = 0; i < T->tg.n_stats; i++) {
        int32_t id = T->tg.stats[i];
        size_t bytes = ot_exec_state_bytes(T->full.step, id);
        OT_TRY(ot_exec_read_state(T->full.step, id, buf + at, bytes, err));
        at += bytes / sizeof *buf;
    }
    OT_TRY(ot_comm_allreduce_f32(T->comm, buf, at, err));
    for (size_t k = 0; k < at; k++)
        buf[k] /= (float)T->ranks;
    at = 0;
    for (int i = 0; i < T->tg.n_stats; i++) {
        int32_t id = T->tg.stats[i];
        size_t bytes = ot_exec_state_bytes(T->full.step, id);
        OT_TRY(ot_exec_write_state(T->full.step, id, buf + at, bytes, err));
        at += bytes / sizeof *buf;
    }
done:
    return st;
}

/* Data-parallel, rank 0: a stop request (SIGINT, SIGTERM) ends the job at
   once instead of at the end of the step. A launcher passes the signal to
   every rank and kills them soon after (OpenMPI's mpirun: SIGKILL a second
   after SIGTERM), so rank 0 writes the checkpoint of the last completed
   step from its copies (ot_train_ckpt_snap) while the step in progress runs
   on, and exits with 128 + the signal; the launcher then ends the other
   ranks (which keep running till then: one that exited first would make
   the launcher kill rank 0 at once). A signal that reaches another rank
   alone stops every rank at the end of the step (the loop's reduction). */
static void *watch_stop(void *arg)
{
    trainer *T = arg;
    const struct timespec nap = { 0, 5 * 1000 * 1000 };
    while (atomic_load(&T->watch_on)) {
        int sig = *T->o->stop;
        if (!sig) {
            nanosleep(&nap, NULL);
            continue;
        }
        const char *name = sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal";
        ot_err e;
        ot_err_init(&e);
        int64_t step = -1;
        if (ot_train_ckpt_save_snap(&T->ckpt, &step, &e) != OT_OK)
            ot_log(OT_LOG_ERROR, "stopped by %s; %s", name, e.msg);
        else if (step >= 0 || T->ckpt.saved_step >= 0)
            ot_log(OT_LOG_WARN,
                   "stopped by %s after step %lld; checkpoint in %s; continue with --resume %s",
                   name, (long long)(step >= 0 ? step : T->ckpt.saved_step), T->o->checkpoint,
                   T->o->checkpoint);
        else
            ot_log(OT_LOG_WARN,
                   "stopped by %s; no checkpoint was written (use --checkpoint FILE to keep "
                   "the progress)",
                   name);
        fflush(stdout);
        fflush(stderr);
        _exit(128 + sig);
    }
    return NULL;
}

static ot_status watch_start(trainer *T, ot_err *err)
{
    if (!T->comm || !T->o->stop || T->rank != 0)
        return OT_OK;
    ot_status st = ot_train_ckpt_snap(&T->ckpt, err);
    if (st != OT_OK)
        return st;
    atomic_store(&T->watch_on, 1);
    if (pthread_create(&T->watch, NULL, watch_stop, T) != 0)
        return ot_err_set(err, OT_ERR_NOMEM, "cannot start the thread that watches for stops");
    T->watching = true;
    return OT_OK;
}

static void watch_stop_end(trainer *T)
{
    if (!T->watching)
        return;
    atomic_store(&T->watch_on, 0);
    pthread_join(T->watch, NULL);
    T->watching = false;
}

/* Data-parallel: compares this rank's fingerprints (model file, data,
   options; ot_train_ckpt_begin) with rank 0's. Every rank learns whether
   any differs; those that do say what differs, rank 0 which ranks. */
static ot_status check_ranks_agree(trainer *T, ot_train_result *res, ot_err *err)
{
    ot_status st = OT_OK;
    const ot_train_checkpoint *mine = &T->ckpt.ck;
    ot_train_checkpoint ref = { 0 };
    double *bad = ot_calloc((size_t)T->ranks, sizeof *bad);
    uint64_t head[5] = { mine->model_hash, mine->data_hash, (uint64_t)mine->n_images,
                         (uint64_t)mine->n_classes,
                         mine->options ? strlen(mine->options) + 1 : 1 };
    if (!bad)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    OT_TRY(ot_comm_bcast(T->comm, head, sizeof head, 0, err));
    ref.model_hash = head[0];
    ref.data_hash = head[1];
    ref.n_images = (int64_t)head[2];
    ref.n_classes = (int)head[3];
    if (head[4] > (1u << 24) || !(ref.options = ot_calloc(head[4] + 1, 1)))
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory for rank 0's options");
    if (T->rank == 0 && mine->options)
        memcpy(ref.options, mine->options, head[4]);
    OT_TRY(ot_comm_bcast(T->comm, ref.options, head[4], 0, err));
    ot_err mismatch;
    ot_err_init(&mismatch);
    bool differs = ot_train_fingerprint_match(&ref, mine, "rank 0", &mismatch) != OT_OK;
    bad[T->rank] = differs;
    OT_TRY(ot_comm_allreduce_f64(T->comm, bad, (size_t)T->ranks, err));
    if (differs) {
        res->agreed_error = true;
        OT_FAIL(err, OT_ERR_ARG, "%s", mismatch.msg);
    }
    for (int r = 0; r < T->ranks; r++)
        if (bad[r] > 0) {
            char list[256] = "";
            size_t at = 0;
            for (int k = r; k < T->ranks && at < sizeof list - 16; k++)
                if (bad[k] > 0)
                    at += (size_t)snprintf(list + at, sizeof list - at, "%s%d", at ? ", " : "", k);
            res->agreed_error = true;
            OT_FAIL(err, OT_ERR_ARG,
                    "the ranks disagree: rank%s %s ran with another model, data or options "
                    "than rank 0 (their messages say what differs)",
                    strchr(list, ',') ? "s" : "", list);
        }
done:
    ot_free(ref.options);
    ot_free(bad);
    return st;
}

ot_status ot_train_run(ot_graph *model, const ot_dataset *data, const ot_train_opts *o,
                       ot_train_result *res, ot_err *err)
{
    ot_status st = OT_OK;
    trainer T = { .model = model, .data = data, .o = o, .ranks = 1, .loader_on = true };
    T.comm = ot_dist_current();
    if (ot_comm_reduces(T.comm)) { /* several ranks, or NCCL's of one */
        T.rank = T.comm->rank;
        T.ranks = T.comm->size;
    } else {
        T.comm = NULL;
    }
    ot_train_cache_init(&T.cache);
    ot_train_ckpt_run_init(&T.ckpt, model, &T.tg, o);
    int64_t *perm = NULL;
    float *stats_buf = NULL; /* data-parallel: the BN statistics (avg_stats) */
    memset(res, 0, sizeof *res);
    res->checkpoint_step = -1;
    res->ranks = T.ranks;
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

    {
        ot_train_graph_opts go = o->graph;
        go.optim = &o->optim;
        go.clip_grad = o->clip_grad;
        go.head_params = o->head_lr > 0 ? o->head_params : NULL;
        go.n_head_params = o->head_lr > 0 ? o->n_head_params : 0;
        go.bucket_bytes = o->bucket_bytes ? o->bucket_bytes : (size_t)(OT_DIST_BUCKET_MB * 1e6);
        if (!T.comm)
            go.bucket_bytes = 0;
        go.sync_bn = o->sync_bn;
        go.overlap = !o->no_overlap;
        T.scaling = o->loss_scaling || o->precision == OT_PRECISION_FP16;
        go.loss_scaling = T.scaling;
        ot_loss_scaler_init(&T.scaler, o->loss_scale_init);
        OT_TRY(ot_train_graph_build(model, &go, &T.tg, err));
        res->n_buckets = T.tg.n_buckets;
        res->n_bn_train = T.tg.n_bn_train;
        res->sync_bn = T.ranks > 1 && o->sync_bn && T.tg.n_bn_train > 0;
        if (T.comm)
            OT_TRY(ot_dist_reserve(T.comm, T.tg.stage_numel,
                                   2 * (size_t)T.tg.max_bn_channels + 2, err));
    }
    ot_train_graph *tg = &T.tg;
    const ot_value *iv = &model->values[tg->image];
    if (iv->ndim != 4)
        OT_FAIL(err, OT_ERR_ARG, "image input '%s' must be 4-D (N, C, H, W)", iv->name);
    T.lay = ot_image_layout_find(model, tg->image);
    T.C = ot_image_channels(model, tg->image, &T.lay, 3);
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
    int last_n = (int)(N % bs);
    /* this rank's share of a full batch and of the last one */
    int lbs = (int)ot_dist_share(bs, T.rank, T.ranks, NULL);
    int llast = (int)ot_dist_share(last_n, T.rank, T.ranks, NULL);
    if (T.ranks > 1 && (bs < T.ranks || (last_n && last_n < T.ranks))) {
        res->agreed_error = true;
        OT_FAIL(err, OT_ERR_ARG,
                "%d ranks need at least one image each in every batch: --batch-size %d over "
                "%lld images leaves %s of %d; choose a batch size that leaves none or at "
                "least %d",
                T.ranks, o->batch_size, (long long)N, bs < T.ranks ? "batches" : "a last batch",
                bs < T.ranks ? bs : last_n, T.ranks);
    }
    T.x = ot_malloc(T.x_bytes * (size_t)lbs);
    if (T.lay.nhwc && !(T.xt = ot_malloc(T.x_bytes * (size_t)lbs)))
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory for the batch buffers");
    T.labels = ot_calloc((size_t)lbs, sizeof *T.labels);
    T.ahead_labels = ot_calloc((size_t)lbs, sizeof *T.ahead_labels);
    T.ahead_on = ahead_wanted(o);
    T.u8_on = u8_wanted(&T);
    T.rdidx = ot_malloc(sizeof *T.rdidx * (size_t)N);
    (void)h;
    (void)w;
    T.scratch_bytes = ot_data_batch_scratch_bytes(data, &o->transform);
    T.didx = ot_malloc(sizeof *T.didx * (size_t)N);
    if (!T.didx || !T.rdidx)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    {
        ot_data_loader_opts lo = { .batch_size = lbs, .n_workers = o->workers,
                                   .augment = o->augment, .seed = o->seed };
        OT_TRY(ot_data_loader_new(data, &o->transform, &lo, &T.loader, err));
    }
    T.scratch = ot_malloc(T.scratch_bytes ? T.scratch_bytes : 1);
    perm = ot_malloc(sizeof *perm * (size_t)N);
    if (!T.x || !T.labels || !T.ahead_labels || !T.scratch || !perm)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory for the batch buffers");

    if (T.u8_on)
        OT_TRY(u8_setup(&T, lbs, err));
    if (T.u8_on)
        ot_log(OT_LOG_INFO, "batches: the uint8 images, resized where the model runs%s",
               T.u8.box_ints ? ", each with its crop and flip" : "");
    OT_TRY(make_runner(&T, &T.full, lbs, NULL, err));
    if (last_n && llast != lbs)
        OT_TRY(make_runner(&T, &T.last, llast, T.full.step, err));

    if (tg->prefix && !o->no_cache && tg->cacheable && o->epochs >= 2 && !o->augment) {
        /* on a device: what validation's executor will still allocate there
           (an arena and the model's weights, at most those of the training
           executors and the graph's initializers) */
        ot_train_cache_dev cd = { .x = T.full.prefix, .force = getenv("ONNXTRAIN_CACHE_PLACE"),
                                  .reserve = ot_exec_arena_bytes(T.full.prefix) +
                                             ot_exec_arena_bytes(T.full.step) };
        for (int32_t v = 0; v < model->n_values; v++)
            if (model->values[v].flags & OT_VAL_INIT)
                cd.reserve += model->values[v].data.bytes;
        OT_TRY(ot_train_cache_open(&T.cache, T.full.cut_in, tg->n_cut, lbs, N, o->cache_bf16,
                                   o->cache_mem, o->cache_dir, &cd, err));
        if (T.cache.on)
            ot_log(OT_LOG_INFO, "prefix cache: %llu bytes in %s (%s)",
                   (unsigned long long)T.cache.bytes, ot_train_cache_where(&T.cache),
                   T.cache.place_why ? T.cache.place_why : "the host's");
    }
    res->cache_used = T.cache.on;
    res->precision = ot_exec_precision(T.full.step);
    if (T.cache.on) {
        res->cache_bytes = T.cache.bytes;
        res->cache_bf16 = T.cache.bf16;
        res->cache_where = T.cache.store ? ot_train_cache_where(&T.cache) : NULL;
    }
    res->cache_off_reason = !tg->prefix       ? "nothing is frozen before the first trained layer"
                            : o->no_cache     ? "--no-cache"
                            : !tg->cacheable  ? tg->why_not_cacheable
                            : o->augment      ? "--augment changes the images every epoch"
                            : o->epochs < 2   ? "one epoch: nothing to reuse"
                                              : NULL;

    for (int p = 0; p < tg->n_params; p++)
        res->numel_trainable += model->values[tg->params[p]].data.bytes / sizeof(float);
    res->n_trainable = tg->n_params;

    int64_t steps_per_epoch = (N + bs - 1) / bs;
    res->steps_per_epoch = steps_per_epoch;
    T.ckpt.step = T.full.step;
    T.ckpt.batch = bs;
    OT_TRY(ot_train_ckpt_begin(&T.ckpt, data, N, T.map, steps_per_epoch,
                               T.cache.on && T.cache.bf16, err));
    ot_train_checkpoint *ck = &T.ckpt.ck;
    ck->loss_scaling = T.scaling;
    ck->scaler = T.scaler;
    bool finished = false;
    if (T.comm)
        OT_TRY(check_ranks_agree(&T, res, err));
    if (o->resume) {
        OT_TRY(ot_train_ckpt_resume(&T.ckpt, res, &finished, err));
        T.scaler = ck->scaler;
        if (o->resumed)
            o->resumed(ck, o->user);
        /* ranks fill their caches as they go (run_batch) */
        if (T.cache.on && T.ranks == 1 && (ck->epoch > 0 || ck->epoch_step > 0))
            OT_TRY(warm_cache(&T, perm, N, bs, ck->epoch > 0 ? steps_per_epoch : ck->epoch_step,
                              steps_per_epoch, err));
    }
    if (T.comm)
        OT_TRY(bcast_state(&T, err));
    OT_TRY(watch_start(&T, err));
    res->final_loss = ck->last_loss;
    res->final_accuracy = ck->last_accuracy;
    int64_t total_steps = ck->step;
    bool stopped = finished;
    int stop_sig = 0; /* data-parallel: a stop request any rank received */
    if (T.comm) { /* the loop's all-reduces (the result's): from here on */
        T.reduce0 = T.comm->reduce_s;
        T.busy0 = T.comm->grad_busy_s;
        T.wait0 = T.comm->grad_wait_s;
        T.bytes0 = T.comm->reduce_bytes;
    }
    if (T.comm && !(T.sums = ot_calloc((size_t)T.ranks + 4, sizeof *T.sums)))
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    if (T.comm && tg->n_stats) {
        size_t all = 0;
        for (int i = 0; i < tg->n_stats; i++)
            all += ot_exec_state_bytes(T.full.step, tg->stats[i]);
        if (!(stats_buf = ot_malloc(all)))
            OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    }
    for (int epoch = ck->epoch; epoch < o->epochs && !stopped; epoch++) {
        ot_data_shuffle(N, o->seed, epoch, perm);
        T.epoch = epoch;
        double t0 = now_s(), loss_sum = 0;
        int64_t correct = 0, seen = 0, seen_here = 0, s0 = 0;
        if (epoch == ck->epoch) { /* the epoch a checkpoint left in progress */
            s0 = ck->epoch_step;
            loss_sum = ck->epoch_loss_sum;
            correct = ck->epoch_correct;
            seen = ck->epoch_seen;
        }
        bool cached_epoch = T.cache.on && epoch > 0;
        for (int64_t k = 0; k < N; k++)
            T.didx[k] = T.map ? T.map[perm[k]] : perm[k];
        T.loader_on = !cached_epoch;
        T.ahead_n = 0;
        if (T.u8_on) /* batches come from u8_batch */
            ;
        else if (!cached_epoch && s0 < steps_per_epoch && T.ranks == 1)
            OT_TRY(ot_data_loader_start_epoch(T.loader, T.didx + s0 * bs, N - s0 * bs, epoch,
                                              err));
        else if (!cached_epoch && s0 < steps_per_epoch) { /* this rank's share of each batch */
            int64_t m = 0;
            for (int64_t s = s0; s < steps_per_epoch; s++) {
                int64_t off, ng = s == steps_per_epoch - 1 && last_n ? last_n : bs;
                int64_t k = ot_dist_share(ng, T.rank, T.ranks, &off);
                memcpy(T.rdidx + m, T.didx + s * bs + off, sizeof *T.rdidx * (size_t)k);
                m += k;
            }
            OT_TRY(ot_data_loader_start_epoch(T.loader, T.rdidx, m, epoch, err));
        }
        ot_train_epoch e = { .epoch = epoch + 1, .epochs = o->epochs, .steps = steps_per_epoch,
                             .cached = cached_epoch, .val_loss = NAN, .val_accuracy = NAN };
        for (int64_t s = s0; s < steps_per_epoch; s++) {
            if ((T.ranks > 1 ? stop_sig : (o->stop && *o->stop)) ||
                (o->max_steps && total_steps >= o->max_steps)) {
                stopped = true;
                break;
            }
            int ng = (int)(s == steps_per_epoch - 1 && last_n ? last_n : bs);
            int64_t off;
            int n = (int)ot_dist_share(ng, T.rank, T.ranks, &off);
            runner *r = n == lbs ? &T.full : &T.last;
            if (T.comm) {
                T.comm->grad_weight = (float)((double)n / (double)ng);
                T.comm->step_t0 = now_s();
                T.step_reduce0 = T.comm->reduce_s;
            }
            double lr = ot_optim_schedule_lr(&o->schedule, o->lr, epoch, s, steps_per_epoch);
            double hlr = ot_optim_schedule_lr(&o->schedule, o->head_lr > 0 ? o->head_lr : o->lr,
                                              epoch, s, steps_per_epoch);
            T.seed = (int64_t)(o->seed * 1000003u + (uint64_t)total_steps); /* per step */
            T.lr[0] = lr;
            T.lr[1] = hlr;
            /* the optimizer's count: updates skipped by loss scaling are not steps */
            T.step_no = total_steps + 1 - T.scaler.skipped;
            T.scale = T.scaler.scale;
            st = ot_optim_check_lr(T.lr, 2, err);
            /* the step after, when its batch may be handed in ahead */
            runner *next = NULL;
            int next_n = 0;
            if (T.ahead_on && T.ranks == 1 && s + 1 < steps_per_epoch &&
                !(o->max_steps && total_steps + 1 >= o->max_steps)) {
                next_n = (int)(s + 1 == steps_per_epoch - 1 && last_n ? last_n : bs);
                next = next_n == lbs ? &T.full : &T.last;
            }
            if (st == OT_OK && T.ranks == 1)
                st = run_batch(&T, r, perm + s * bs, T.didx + s * bs, n, next,
                               T.didx + (s + 1) * bs, next_n, &correct, &loss_sum, err);
            else if (st == OT_OK) { /* the step's numbers over all ranks */
                int64_t c1 = 0;
                double l1 = 0;
                st = run_batch(&T, r, perm + s * bs + off, T.didx + s * bs + off, n, NULL, NULL,
                               0, &c1, &l1, err);
                /* the step's sums, and each rank's seconds in all-reduces
                   this step in its own place (the report's) */
                double *v = T.sums;
                memset(v, 0, sizeof *v * (size_t)(4 + T.ranks));
                v[0] = l1;
                v[1] = (double)c1;
                v[2] = o->stop && *o->stop ? (double)*o->stop : 0;
                v[3] = o->stop && *o->stop ? 1 : 0;
                v[4 + T.rank] = T.comm->reduce_s - T.step_reduce0;
                double t1 = now_s();
                if (st == OT_OK)
                    st = ot_comm_allreduce_f64(T.comm, v, (size_t)(4 + T.ranks), err);
                double t2 = now_s();
                if (st == OT_OK && tg->n_stats && !res->sync_bn)
                    st = avg_stats(&T, stats_buf, err);
                T.sums_s += t2 - t1;
                T.stats_s += now_s() - t2;
                /* the rank that waited least waited for no other's compute:
                   its waits are the communication its compute did not hide */
                double least = v[4];
                for (int k = 1; k < T.ranks; k++)
                    least = fmin(least, v[4 + k]);
                T.least_s += least + (now_s() - t2);
                if (ot_log_enabled(OT_LOG_DEBUG))
                    ot_log(OT_LOG_DEBUG,
                           "step %lld: ran %.1f ms (the waits for its gradients included); "
                           "its sums waited %.1f ms (for the slowest rank), the BatchNorm "
                           "statistics %.1f ms",
                           (long long)total_steps + 1, 1e3 * (t1 - T.comm->step_t0),
                           1e3 * (t2 - t1), 1e3 * (now_s() - t2));
                if (st == OT_OK && !isfinite(v[0])) {
                    res->agreed_error = true;
                    st = ot_err_set(err, OT_ERR_ARG, "the loss became %s",
                                    isnan(v[0]) ? "NaN" : "infinite");
                }
                loss_sum += v[0];
                correct += (int64_t)v[1];
                if (v[3] > 0)
                    stop_sig = (int)(v[2] / v[3] + 0.5);
                n = ng;
            }
            if (st != OT_OK) {
                ot_err_prefix(err, "epoch %d, step %lld (step %lld in all)", epoch + 1,
                              (long long)s + 1, (long long)total_steps + 1);
                ot_train_ckpt_note(&T.ckpt, err);
                goto done;
            }
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
            ck->step = total_steps;
            ck->epoch = epoch_end ? epoch + 1 : epoch;
            ck->epoch_step = epoch_end ? 0 : s + 1;
            ck->epoch_loss_sum = epoch_end ? 0 : loss_sum;
            ck->epoch_correct = epoch_end ? 0 : correct;
            ck->epoch_seen = epoch_end ? 0 : seen;
            ck->last_loss = e.loss;
            ck->last_accuracy = e.accuracy;
            ck->scaler = T.scaler;
            bool stop = o->max_steps && total_steps >= o->max_steps;
            if (epoch_end) { /* validation first: the checkpoint records its outcome */
                if (o->val_data)
                    OT_TRY(validate(&T, &e, res, err));
                ck->history[ck->n_history++] = (ot_train_checkpoint_epoch){
                    .epoch = epoch + 1, .loss = e.loss, .accuracy = e.accuracy,
                    .val_loss = e.val_loss, .val_accuracy = e.val_accuracy, .lr = e.lr };
                ck->best_epoch = res->best_epoch;
                ck->best_val_accuracy = res->best_val_accuracy;
            }
            if (T.rank == 0 &&
                (epoch_end || (o->checkpoint_every > 0 && total_steps % o->checkpoint_every == 0))) {
                st = ot_train_ckpt_save(&T.ckpt, err);
                if (st != OT_OK) {
                    ot_train_ckpt_note(&T.ckpt, err);
                    goto done;
                }
            }
            if (T.watching) { /* what a stop writes at once */
                st = ot_train_ckpt_snap(&T.ckpt, err);
                if (st != OT_OK)
                    goto done;
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
    if (T.ranks > 1 ? stop_sig : (o->stop && *o->stop))
        res->stopped_by = T.ranks > 1 ? stop_sig : (int)*o->stop;
    /* at a stop, or where max_steps ended the run; and never a NaN model */
    st = o->checkpoint && T.rank == 0 ? ot_train_ckpt_save(&T.ckpt, err)
                                      : ot_train_ckpt_check_finite(&T.ckpt, err);
    if (st != OT_OK) {
        ot_train_ckpt_note(&T.ckpt, err);
        goto done;
    }
    if (o->profile && o->profile_report) {
        const struct ot_exec *xs[4] = { T.full.prefix, T.full.step, T.last.prefix, T.last.step };
        const char *names[4] = { "prefix", "step", "prefix*", "step*" };
        o->profile_report(xs, names, 4, T.data_wait_s, o->user);
    }
    res->steps = total_steps;
    res->prefix_runs = T.prefix_runs;
    if (tg->prefix)
        ot_log(OT_LOG_INFO, "frozen prefix: %lld runs in %lld steps", (long long)T.prefix_runs,
               (long long)total_steps);
    if (T.ahead_on)
        ot_log(OT_LOG_INFO, "batches handed in ahead: %lld (to the %s's executor)",
               (long long)T.ahead_count, tg->prefix ? "frozen prefix" : "step");
    res->loss_scaling = T.scaling;
    res->skipped_steps = T.scaler.skipped;
    res->loss_scale = T.scaler.scale;
    res->epoch = ck->epoch;
    res->epoch_step = ck->epoch_step;
    OT_TRY(ot_train_ckpt_sync(&T.ckpt, err));
    /* the best validation epoch's weights */
    if (!(o->keep_best && ot_train_ckpt_restore_best(&T.ckpt)))
        res->best_epoch = 0;
done:
    watch_stop_end(&T);
    ot_train_cache_fini(&T.cache); /* its store before the executors */
    free_runner(&T.full);
    free_runner(&T.last);
    ot_free(T.x);
    ot_free(T.xt);
    ot_data_loader_free(T.loader);
    ot_free(T.didx);
    ot_free(T.rdidx);
    ot_free(stats_buf);
    ot_free(T.sums);
    if (T.comm) {
        res->reduce_s = T.comm->reduce_s - T.reduce0;
        res->grad_busy_s = T.comm->grad_busy_s - T.busy0;
        res->grad_wait_s = T.comm->grad_wait_s - T.wait0;
        res->reduce_bytes = T.comm->reduce_bytes - T.bytes0;
        res->sums_s = T.sums_s;
        res->stats_s = T.stats_s;
        res->least_s = T.least_s;
    }
    ot_free(T.good);
    ot_free(T.val_good);
    ot_free(T.labels);
    ot_free(T.ahead_labels);
    ot_free(T.u8_coef);
    ot_free(T.u8_img);
    ot_free(T.scratch);
    ot_free(perm);
    res->checkpoint_step = T.ckpt.saved_step;
    res->checkpoint_err = T.ckpt.save_err;
    ot_train_ckpt_run_fini(&T.ckpt);
    ot_train_graph_fini(&T.tg);
    return st;
}
