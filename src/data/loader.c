/*
 * loader.c: the batch loader. Worker threads prepare the epoch's images in
 * the order of its permutation, ahead of the consumer, into a ring of batch
 * buffers; next() hands the batches out in order.
 *
 * Work is claimed one image at a time: image k of the epoch (perm[k]) goes
 * to position k % B of job k / B, and job j to slot j % n_slots. A worker
 * claims image k only when job k / B is fewer than n_slots jobs past the ones
 * the consumer has released, so it never writes a slot the consumer still
 * reads. Each image's output depends on its own index alone (and, with
 * augmentation, on (seed, epoch, index)), so which worker prepares it, and
 * when, does not change a byte. Without workers, next() claims and prepares
 * the images of the batch it needs itself, through the same code.
 *
 * Failures are recorded per slot: the lowest failing position and its error.
 * next() walks the images in order, so the error it returns is the first in
 * perm order, whatever finished first. With skip_bad, OT_ERR_PARSE and
 * OT_ERR_IO images are marked and left out: next() returns a job's buffer
 * as it is when nothing in it was skipped and the batch starts at its first
 * image; otherwise it copies the good images, in order, into one more buffer.
 * Which images are skipped depends on the data alone, and so do the batches.
 *
 * Not here: shuffling (the caller passes the permutation), dropping a last
 * partial batch (the caller can ignore it).
 */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "data/data_impl.h"
#include "data/loader.h"

#define MAX_BATCH 65536
#define MAX_WORKERS 256
#define MAX_PREFETCH 64

/* One batch buffer of the ring and the job it holds. */
typedef struct {
    int64_t job;      /* -1: none this epoch                                 */
    int n_items;      /* images in the job: batch_size, or fewer for the last */
    int n_done;       /* images finished, well or not                        */
    int n_bad;        /* images skipped                                      */
    int err_pos;      /* lowest position that failed and is not skipped;
                         n_items when none                                   */
    ot_status err_st; /* its status and message                              */
    ot_err err;
    uint8_t *bad;     /* [batch_size]: 1 where the image was skipped          */
    float *x;         /* (batch_size, C, S, S)                               */
    int64_t *labels;  /* [batch_size]                                        */
} slot;

/* A thread's own buffers (the caller's thread has them too when there are
   no workers). */
typedef struct {
    ot_data_loader *l;
    pthread_t thread;
    uint8_t *image;       /* ot_data_decode's output: the dataset's largest image */
    size_t image_bytes;
    void *scratch;        /* the transform's */
    size_t scratch_bytes;
} worker;

struct ot_data_loader {
    /* Fixed at creation. */
    const ot_dataset *ds;
    ot_data_transform t;
    int B, C;
    size_t per_image;  /* floats per image: C * S * S */
    bool augment, skip_bad;
    uint64_t seed;
    int n_workers;     /* threads; 0: the consumer prepares */
    int n_slots;
    int64_t cap;       /* longest permutation: the dataset's count */
    slot *slots;       /* n_slots */
    worker *workers;   /* max(n_workers, 1) */
    int n_started;     /* threads running */
    bool sync_ok;      /* mu and the conditions exist */
    float *out_x;      /* skip_bad: (batch_size, C, S, S), the assembled batch */
    int64_t *out_labels;

    /* Shared with the workers, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* an image may be claimed, or stop */
    pthread_cond_t done_cv; /* an image finished */
    bool stop;
    ot_data_source_fn source;
    void *source_user;
    int64_t *perm;     /* [cap]; the epoch's first n */
    int64_t n;
    int64_t epoch;
    int64_t next_item; /* next position of perm to claim */
    int64_t released;  /* jobs 0 .. released - 1 are done with */
    int in_flight;     /* images being prepared outside the lock */

    /* The consumer's alone. */
    bool has_epoch;
    int64_t n_jobs;
    int64_t cur_job;   /* job next() reads */
    int cur_pos;       /* its next position */
    bool holding;      /* the caller holds cur_job's buffer */
    int64_t bad_count;
    ot_status failed;  /* sticky until start_epoch */
    ot_err fail_err;
};

static bool can_claim(const ot_data_loader *l)
{
    return l->next_item < l->n && l->next_item / l->B < l->released + l->n_slots;
}

/* Reads and transforms one image into x and *label. Runs outside the lock. */
static ot_status load_item(const ot_data_loader *l, worker *w, ot_data_source_fn source,
                           void *user, int64_t index, int64_t epoch, float *x, int64_t *label,
                           ot_err *err)
{
    ot_image img;
    int lab = 0;
    ot_status st;
    if (source) {
        st = source(user, index, &img, &lab, err);
    } else {
        /* Into the worker's own buffer: ot_data_get would keep a buffer per
           thread inside an image folder dataset. */
        st = ot_data_decode(l->ds, index, &img, w->image, w->image_bytes, err);
        if (st == OT_OK)
            st = ot_data_get(l->ds, index, NULL, &lab, err);
    }
    if (st == OT_OK && (img.channels != 1 && img.channels != 3))
        st = ot_err_set(err, OT_ERR_ARG, "%d channels, expected 1 or 3", img.channels);
    if (st == OT_OK && ot_data_out_channels(&l->t, img.channels) != l->C)
        st = ot_err_set(err, OT_ERR_ARG, "%d channels, the loader's batches have %d",
                        img.channels, l->C);
    if (st == OT_OK) {
        /* Sized at creation for any image of the dataset, so only a test
           source's larger image gets here; the transform reports an invalid
           size (need 0) itself. */
        size_t need = l->augment ? ot_data_augment_scratch_bytes(img.height, img.width, &l->t)
                                 : ot_data_prepare_scratch_bytes(img.height, img.width, &l->t);
        if (need > w->scratch_bytes) {
            void *grown = ot_realloc(w->scratch, need);
            if (!grown)
                st = ot_err_set(err, OT_ERR_NOMEM, "scratch of %zu bytes", need);
            else {
                w->scratch = grown;
                w->scratch_bytes = need;
            }
        }
    }
    if (st == OT_OK)
        st = l->augment ? ot_data_prepare_augmented(&img, &l->t, l->seed, epoch, index, x,
                                                    w->scratch, w->scratch_bytes, err)
                        : ot_data_prepare(&img, &l->t, x, w->scratch, w->scratch_bytes, err);
    if (st != OT_OK) {
        ot_err_prefix(err, "image %lld", (long long)index);
        return st;
    }
    *label = lab;
    return OT_OK;
}

/* Claims the next image and prepares it. Called with mu held and
   can_claim true; returns with mu held. */
static void run_one(ot_data_loader *l, worker *w)
{
    int64_t k = l->next_item++;
    int64_t job = k / l->B;
    int pos = (int)(k % l->B);
    slot *s = &l->slots[job % l->n_slots];
    if (pos == 0) {
        /* Claims run in order, so this precedes every other claim of the job. */
        int64_t left = l->n - job * l->B;
        s->job = job;
        s->n_items = left < l->B ? (int)left : l->B;
        s->n_done = 0;
        s->n_bad = 0;
        s->err_pos = s->n_items;
        s->err_st = OT_OK;
    }
    int64_t index = l->perm[k], epoch = l->epoch;
    ot_data_source_fn source = l->source;
    void *user = l->source_user;
    l->in_flight++;
    pthread_mutex_unlock(&l->mu);

    ot_err e;
    ot_err_init(&e);
    ot_status st = load_item(l, w, source, user, index, epoch, s->x + (size_t)pos * l->per_image,
                             &s->labels[pos], &e);

    pthread_mutex_lock(&l->mu);
    l->in_flight--;
    s->bad[pos] = 0;
    if (st != OT_OK && l->skip_bad && (st == OT_ERR_PARSE || st == OT_ERR_IO)) {
        s->bad[pos] = 1;
        s->n_bad++;
    } else if (st != OT_OK && pos < s->err_pos) {
        s->err_pos = pos;
        s->err_st = st;
        s->err = e;
    }
    s->n_done++;
    if (s->n_done == s->n_items || l->in_flight == 0)
        pthread_cond_broadcast(&l->done_cv);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    ot_data_loader *l = w->l;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && !can_claim(l))
            pthread_cond_wait(&l->work_cv, &l->mu);
        if (l->stop)
            break;
        run_one(l, w);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* Waits until every image of `job` is finished (preparing them itself when
   there are no workers). Called and returns with mu held. */
static slot *wait_job(ot_data_loader *l, int64_t job)
{
    slot *s = &l->slots[job % l->n_slots];
    while (s->job != job || s->n_done < s->n_items) {
        if (l->n_workers == 0) {
            OT_ASSERT(can_claim(l));
            run_one(l, &l->workers[0]);
        } else {
            pthread_cond_wait(&l->done_cv, &l->mu);
        }
    }
    return s;
}

/* The consumer is done with cur_job: its slot may take a later job. */
static void release_job(ot_data_loader *l)
{
    l->cur_job++;
    l->cur_pos = 0;
    l->released = l->cur_job;
    pthread_cond_broadcast(&l->work_cv);
}

ot_status ot_data_loader_new(const ot_dataset *ds, const ot_data_transform *t,
                             const ot_data_loader_opts *opts, ot_data_loader **out, ot_err *err)
{
    ot_status st = OT_OK;
    ot_data_loader *l = NULL;
    if (!ds || !t || !opts || !out)
        OT_FAIL(err, OT_ERR_ARG, "ot_data_loader_new: NULL argument");
    *out = NULL;
    if (opts->batch_size < 1 || opts->batch_size > MAX_BATCH)
        OT_FAIL(err, OT_ERR_ARG, "loader: batch size %d is outside 1 .. %d", opts->batch_size,
                MAX_BATCH);
    if (opts->n_workers < 0 || opts->n_workers > MAX_WORKERS)
        OT_FAIL(err, OT_ERR_ARG, "loader: %d workers is outside 0 .. %d", opts->n_workers,
                MAX_WORKERS);
    if (opts->prefetch < 0 || opts->prefetch > MAX_PREFETCH)
        OT_FAIL(err, OT_ERR_ARG, "loader: prefetch %d is outside 0 .. %d", opts->prefetch,
                MAX_PREFETCH);
    int h, w, c;
    ot_data_shape(ds, &h, &w, &c);
    /* Image folders have no shared size (0 x 0): size for the largest side.
       The box bound covers ot_data_prepare too, and every smaller image. */
    if (h < 1 || w < 1)
        h = w = OT_DATA_MAX_SIDE;
    int C = ot_data_out_channels(t, c);
    size_t scratch_bytes = ot_data_box_scratch_bytes(h, w, t);
    size_t image_bytes = ot_data_max_image_bytes(ds);
    bool t_ok = scratch_bytes > 0;
    for (int ch = 0; t_ok && ch < C; ch++)
        t_ok = isfinite(t->mean[ch]) && isfinite(t->std[ch]) && t->std[ch] != 0.0f;
    if (!t_ok)
        OT_FAIL(err, OT_ERR_ARG,
                "loader: transform size %d is outside 1 .. %d, a mean or std is not finite or "
                "a std is zero, or the images (%d x %d) are too large",
                t->size, OT_DATA_MAX_SIZE, h, w);

    size_t S = (size_t)t->size, per_image = (size_t)C * S * S, batch_bytes;
    if (!ot_size_mul(per_image * sizeof(float), (size_t)opts->batch_size, &batch_bytes))
        OT_FAIL(err, OT_ERR_ARG, "loader: a batch of %d x %d x %zu x %zu floats is too large",
                opts->batch_size, C, S, S);

    l = ot_calloc(1, sizeof *l);
    if (!l)
        OT_FAIL(err, OT_ERR_NOMEM, "loader: out of memory");
    l->ds = ds;
    l->t = *t;
    /* RGB datasets give RGB batches; an image folder's gray images too, as
       ot_data_load_batch does there. */
    if (C == 3)
        l->t.to_rgb = true;
    l->B = opts->batch_size;
    l->C = C;
    l->per_image = per_image;
    l->augment = opts->augment;
    l->skip_bad = opts->skip_bad;
    l->seed = opts->seed;
    l->n_workers = opts->n_workers;
    int prefetch = opts->prefetch ? opts->prefetch : (opts->n_workers > 1 ? opts->n_workers : 1);
    l->n_slots = l->n_workers == 0 ? 1 : prefetch + 1;
    l->cap = ot_data_count(ds);
    l->failed = OT_OK;

    if (pthread_mutex_init(&l->mu, NULL) != 0)
        OT_FAIL(err, OT_ERR_INTERNAL, "loader: cannot create a mutex");
    if (pthread_cond_init(&l->work_cv, NULL) != 0) {
        pthread_mutex_destroy(&l->mu);
        OT_FAIL(err, OT_ERR_INTERNAL, "loader: cannot create a condition variable");
    }
    if (pthread_cond_init(&l->done_cv, NULL) != 0) {
        pthread_cond_destroy(&l->work_cv);
        pthread_mutex_destroy(&l->mu);
        OT_FAIL(err, OT_ERR_INTERNAL, "loader: cannot create a condition variable");
    }
    l->sync_ok = true;

    l->slots = ot_calloc((size_t)l->n_slots, sizeof *l->slots);
    l->perm = ot_malloc((size_t)(l->cap > 0 ? l->cap : 1) * sizeof *l->perm);
    int n_scratch = l->n_workers > 0 ? l->n_workers : 1;
    l->workers = ot_calloc((size_t)n_scratch, sizeof *l->workers);
    if (!l->slots || !l->perm || !l->workers)
        OT_FAIL(err, OT_ERR_NOMEM, "loader: out of memory");
    for (int i = 0; i < l->n_slots; i++) {
        slot *s = &l->slots[i];
        s->job = -1;
        s->x = ot_malloc(batch_bytes);
        s->labels = ot_malloc((size_t)l->B * sizeof *s->labels);
        s->bad = ot_calloc((size_t)l->B, 1);
        if (!s->x || !s->labels || !s->bad)
            OT_FAIL(err, OT_ERR_NOMEM, "loader: out of memory for %d batches of %zu bytes",
                    l->n_slots, batch_bytes);
    }
    if (l->skip_bad) {
        l->out_x = ot_malloc(batch_bytes);
        l->out_labels = ot_malloc((size_t)l->B * sizeof *l->out_labels);
        if (!l->out_x || !l->out_labels)
            OT_FAIL(err, OT_ERR_NOMEM, "loader: out of memory");
    }
    for (int i = 0; i < n_scratch; i++) {
        /* For an image folder the image buffer is large (192 MiB) but only
           the pages its images use are ever touched. */
        worker *wk = &l->workers[i];
        wk->l = l;
        wk->scratch = ot_malloc(scratch_bytes);
        wk->image = ot_malloc(image_bytes);
        if (!wk->scratch || !wk->image)
            OT_FAIL(err, OT_ERR_NOMEM, "loader: out of memory for per-thread buffers of %zu "
                    "and %zu bytes", scratch_bytes, image_bytes);
        wk->scratch_bytes = scratch_bytes;
        wk->image_bytes = image_bytes;
    }
    for (int i = 0; i < l->n_workers; i++) {
        if (pthread_create(&l->workers[i].thread, NULL, worker_main, &l->workers[i]) != 0)
            OT_FAIL(err, OT_ERR_INTERNAL, "loader: cannot start worker thread %d of %d", i + 1,
                    l->n_workers);
        l->n_started++;
    }
    *out = l;
    l = NULL;
done:
    ot_data_loader_free(l);
    return st;
}

void ot_data_loader_set_source(ot_data_loader *l, ot_data_source_fn fn, void *user)
{
    pthread_mutex_lock(&l->mu);
    l->source = fn;
    l->source_user = user;
    pthread_mutex_unlock(&l->mu);
}

ot_status ot_data_loader_start_epoch(ot_data_loader *l, const int64_t *perm, int64_t n,
                                     int64_t epoch, ot_err *err)
{
    if (!l || (n > 0 && !perm))
        return ot_err_set(err, OT_ERR_ARG, "ot_data_loader_start_epoch: NULL argument");
    if (n < 0 || n > l->cap)
        return ot_err_set(err, OT_ERR_ARG,
                          "loader: epoch of %lld images, expected 0 .. %lld (the dataset's count)",
                          (long long)n, (long long)l->cap);
    for (int64_t k = 0; k < n; k++)
        if (perm[k] < 0 || perm[k] >= l->cap)
            return ot_err_set(err, OT_ERR_ARG,
                              "loader: permutation entry %lld is %lld, outside 0 .. %lld",
                              (long long)k, (long long)perm[k], (long long)l->cap - 1);

    pthread_mutex_lock(&l->mu);
    /* Abandon the current epoch: no more claims, and wait for the images in
       hand, which write into the slots. */
    l->next_item = l->n;
    while (l->in_flight > 0)
        pthread_cond_wait(&l->done_cv, &l->mu);
    if (n > 0)
        memcpy(l->perm, perm, (size_t)n * sizeof *perm);
    l->n = n;
    l->epoch = epoch;
    l->next_item = 0;
    l->released = 0;
    for (int i = 0; i < l->n_slots; i++)
        l->slots[i].job = -1;
    pthread_cond_broadcast(&l->work_cv);
    pthread_mutex_unlock(&l->mu);

    l->has_epoch = true;
    l->n_jobs = (n + l->B - 1) / l->B;
    l->cur_job = 0;
    l->cur_pos = 0;
    l->holding = false;
    l->bad_count = 0;
    l->failed = OT_OK;
    ot_err_init(&l->fail_err);
    return OT_OK;
}

ot_status ot_data_loader_next(ot_data_loader *l, float **x, int64_t **labels, int *n,
                              ot_err *err)
{
    if (!l || !x || !labels || !n)
        return ot_err_set(err, OT_ERR_ARG, "ot_data_loader_next: NULL argument");
    *x = NULL;
    *labels = NULL;
    *n = 0;
    if (!l->has_epoch)
        return ot_err_set(err, OT_ERR_ARG, "loader: next() before start_epoch()");
    if (l->failed != OT_OK) {
        if (err)
            *err = l->fail_err;
        return l->failed;
    }

    pthread_mutex_lock(&l->mu);
    if (l->holding) {
        l->holding = false;
        release_job(l);
    }
    if (l->cur_job >= l->n_jobs)
        goto done;
    if (l->cur_pos == 0) {
        /* The common case: the job is the batch, handed out in place. */
        slot *s = wait_job(l, l->cur_job);
        if (s->err_pos == s->n_items && s->n_bad == 0) {
            *x = s->x;
            *labels = s->labels;
            *n = s->n_items;
            l->holding = true;
            goto done;
        }
        if (!l->skip_bad) {
            OT_ASSERT(s->err_pos < s->n_items);
            l->failed = s->err_st;
            l->fail_err = s->err;
            goto done;
        }
    }
    /* Skipped images: gather the next batch_size good ones, in order. A
       finished job's slot is not written until released, so the copy runs
       outside the lock. */
    OT_ASSERT(l->skip_bad);
    int out_n = 0;
    while (out_n < l->B && l->cur_job < l->n_jobs) {
        slot *s = wait_job(l, l->cur_job);
        pthread_mutex_unlock(&l->mu);
        bool hit_error = false;
        while (l->cur_pos < s->n_items && out_n < l->B) {
            int p = l->cur_pos;
            if (p == s->err_pos) {
                hit_error = true;
                break;
            }
            l->cur_pos++;
            if (s->bad[p]) {
                l->bad_count++;
                continue;
            }
            memcpy(l->out_x + (size_t)out_n * l->per_image, s->x + (size_t)p * l->per_image,
                   l->per_image * sizeof(float));
            l->out_labels[out_n++] = s->labels[p];
        }
        pthread_mutex_lock(&l->mu);
        if (hit_error) {
            l->failed = s->err_st;
            l->fail_err = s->err;
            goto done;
        }
        if (l->cur_pos == s->n_items)
            release_job(l);
    }
    if (out_n > 0) {
        *x = l->out_x;
        *labels = l->out_labels;
        *n = out_n;
    }
done:
    pthread_mutex_unlock(&l->mu);
    if (l->failed != OT_OK) {
        *n = 0;
        *x = NULL;
        *labels = NULL;
        if (err)
            *err = l->fail_err;
        return l->failed;
    }
    return OT_OK;
}

int64_t ot_data_loader_bad_count(const ot_data_loader *l) { return l ? l->bad_count : 0; }

void ot_data_loader_free(ot_data_loader *l)
{
    if (!l)
        return;
    if (l->sync_ok) {
        pthread_mutex_lock(&l->mu);
        l->stop = true;
        pthread_cond_broadcast(&l->work_cv);
        pthread_mutex_unlock(&l->mu);
        for (int i = 0; i < l->n_started; i++)
            pthread_join(l->workers[i].thread, NULL);
        pthread_cond_destroy(&l->done_cv);
        pthread_cond_destroy(&l->work_cv);
        pthread_mutex_destroy(&l->mu);
    }
    if (l->workers) {
        int n_scratch = l->n_workers > 0 ? l->n_workers : 1;
        for (int i = 0; i < n_scratch; i++) {
            ot_free(l->workers[i].scratch);
            ot_free(l->workers[i].image);
        }
    }
    if (l->slots) {
        for (int i = 0; i < l->n_slots; i++) {
            ot_free(l->slots[i].x);
            ot_free(l->slots[i].labels);
            ot_free(l->slots[i].bad);
        }
    }
    ot_free(l->slots);
    ot_free(l->workers);
    ot_free(l->perm);
    ot_free(l->out_x);
    ot_free(l->out_labels);
    ot_free(l);
}
