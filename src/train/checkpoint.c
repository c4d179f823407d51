/*
 * checkpoint.c: training checkpoints as ONNX files (see checkpoint.h and
 * docs/checkpoint.md): save onto a clone of the model graph, load and parse
 * the metadata, compare fingerprints, restore tensors, strip for export;
 * at the end, the trainer's glue (ot_train_ckpt_*): fingerprints of a run,
 * save, resume and the --keep best copies.
 *
 * Numbers in the metadata are decimal; doubles are written with 17
 * significant digits, which read back as the same double, so a resumed run
 * reports the same running loss as an uninterrupted one.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dist/dist.h"
#include "core/file.h"
#include "checkpoint.h"
#include "exec/exec.h"
#include "onnx/onnx.h"
#include "train/trainer.h"

uint64_t ot_train_hash(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t hash_u64(uint64_t h, uint64_t v)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i)); /* little-endian on every host */
    return ot_train_hash(h, b, sizeof b);
}

ot_status ot_train_hash_file(const char *path, uint64_t *out, ot_err *err)
{
    FILE *f;
    ot_status st = ot_file_fopen_read(path, &f, NULL, err);
    if (st != OT_OK)
        return st;
    unsigned char buf[1 << 16];
    uint64_t h = OT_HASH_INIT;
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        h = ot_train_hash(h, buf, n);
    bool bad = ferror(f) != 0;
    fclose(f);
    if (bad)
        return ot_err_set(err, OT_ERR_IO, "%s: read error", path);
    *out = h;
    return OT_OK;
}

ot_status ot_train_hash_data(const ot_dataset *ds, uint64_t *out, ot_err *err)
{
    int64_t n = ot_data_count(ds);
    int nc = ot_data_n_classes(ds), hgt, wid, ch;
    ot_data_shape(ds, &hgt, &wid, &ch);
    uint64_t h = OT_HASH_INIT;
    h = hash_u64(h, (uint64_t)n);
    h = hash_u64(h, (uint64_t)nc);
    h = hash_u64(h, (uint64_t)hgt);
    h = hash_u64(h, (uint64_t)wid);
    h = hash_u64(h, (uint64_t)ch);
    for (int c = 0; c < nc; c++) {
        const char *name = ot_data_class_name(ds, c);
        h = ot_train_hash(h, name ? name : "", name ? strlen(name) + 1 : 1);
    }
    int64_t n_sample = n < 256 ? n : 256;
    for (int64_t k = 0; k < n_sample; k++) {
        int64_t i = (int64_t)((uint64_t)k * (uint64_t)n / (uint64_t)n_sample);
        ot_image img;
        int label;
        ot_err e2;
        ot_err_init(&e2);
        /* the label alone cannot fail; an image file that cannot be decoded
           or read counts as its index and label (--skip-bad leaves it out of
           the run, and without it the run stops when it reaches it) */
        ot_status st = ot_data_get(ds, i, NULL, &label, err);
        if (st != OT_OK)
            return st;
        h = hash_u64(h, (uint64_t)i);
        h = hash_u64(h, (uint64_t)label);
        st = ot_data_get(ds, i, &img, NULL, &e2);
        if (st == OT_ERR_PARSE || st == OT_ERR_IO) {
            h = hash_u64(h, UINT64_MAX);
            continue;
        }
        if (st != OT_OK) {
            *err = e2;
            return st;
        }
        h = ot_train_hash(h, img.data,
                          (size_t)img.channels * (size_t)img.height * (size_t)img.width);
    }
    *out = h;
    return OT_OK;
}

void ot_train_checkpoint_fini(ot_train_checkpoint *ck)
{
    if (!ck)
        return;
    ot_free(ck->options);
    ot_free(ck->params);
    ot_free(ck->history);
    ck->options = ck->params = NULL;
    ck->history = NULL;
    ck->n_history = 0;
}

/* ------------------------------------------------------------------ save */

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static const char *meta_get(const ot_graph *g, const char *key)
{
    for (int32_t i = 0; i < g->n_metadata; i++)
        if (!strcmp(g->metadata[i].key, key))
            return g->metadata[i].value;
    return NULL;
}

/* Sets a metadata key of a graph whose metadata array it owns (a clone whose
   array was copied into its arena), adding the key when absent. */
static ot_status meta_set(ot_graph *g, int32_t *cap, const char *key, const char *value,
                          ot_err *err)
{
    char *v = ot_arena_strdup(&g->arena, value);
    if (!v)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < g->n_metadata; i++)
        if (!strcmp(g->metadata[i].key, key)) {
            g->metadata[i].value = v;
            return OT_OK;
        }
    if (g->n_metadata == *cap) {
        int32_t ncap = *cap ? *cap * 2 : 32;
        ot_kv *kv = ot_arena_alloc(&g->arena, sizeof *kv * (size_t)ncap);
        if (!kv)
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
        if (g->n_metadata)
            memcpy(kv, g->metadata, sizeof *kv * (size_t)g->n_metadata);
        g->metadata = kv;
        *cap = ncap;
    }
    char *k = ot_arena_strdup(&g->arena, key);
    if (!k)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    g->metadata[g->n_metadata].key = k;
    g->metadata[g->n_metadata].value = v;
    g->n_metadata++;
    return OT_OK;
}

/* Gives a clone private copies of the arrays the save appends to (the clone
   shares them with the model graph otherwise). */
static ot_status own_arrays(ot_graph *g, int32_t extra, int32_t *meta_cap, ot_err *err)
{
    int32_t *inits = ot_arena_alloc(&g->arena, sizeof *inits * (size_t)(g->n_inits + extra + 1));
    ot_io *inputs = ot_arena_alloc(&g->arena, sizeof *inputs * (size_t)(g->n_inputs + extra + 1));
    *meta_cap = g->n_metadata + 32;
    ot_kv *kv = ot_arena_alloc(&g->arena, sizeof *kv * (size_t)*meta_cap);
    if (!inits || !inputs || !kv)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    if (g->n_inits)
        memcpy(inits, g->inits, sizeof *inits * (size_t)g->n_inits);
    if (g->n_inputs)
        memcpy(inputs, g->inputs, sizeof *inputs * (size_t)g->n_inputs);
    if (g->n_metadata)
        memcpy(kv, g->metadata, sizeof *kv * (size_t)g->n_metadata);
    g->inits = inits;
    g->inputs = inputs;
    g->metadata = kv;
    return OT_OK;
}

/* Adds one state tensor as an initializer "<prefix><name>" that no node reads. */
static ot_status add_state_init(ot_graph *g, const char *prefix, const ot_optim_state *s,
                                ot_err *err)
{
    ot_status st = OT_OK;
    char name[128];
    snprintf(name, sizeof name, "%s%s", prefix, s->name);
    if (ot_graph_find_value(g, name) >= 0)
        return ot_err_set(err, OT_ERR_MODEL,
                          "the model already has a value named '%s', a name checkpoints reserve",
                          name);
    int32_t id;
    OT_TRY(ot_graph_intern_value(g, name, &id, err));
    ot_value *v = &g->values[id];
    v->dtype = s->dtype;
    v->ndim = 1;
    v->dims[0] = (int64_t)s->numel;
    v->producer = -1;
    v->flags = OT_VAL_INIT | OT_VAL_CONST | OT_VAL_DIRTY;
    v->storage = OT_STORE_RAW;
    v->data.dtype = s->dtype;
    v->data.ndim = 1;
    v->data.dims[0] = (int64_t)s->numel;
    v->data.data = s->data; /* borrowed from the optimizer for the export */
    v->data.bytes = s->numel * ot_dtype_size(s->dtype);
    g->inits[g->n_inits++] = id;
    if (g->ir_version < 4) { /* IR < 4: every initializer is also a graph input */
        v->flags |= OT_VAL_INPUT;
        g->inputs[g->n_inputs].value = id;
        g->inputs[g->n_inputs].info = (ot_blob){ 0 };
        g->n_inputs++;
    }
done:
    return st;
}

/* The history as text: one "epoch,loss,accuracy,val_loss,val_accuracy,lr"
   line per finished epoch, doubles with 17 digits, "nan" where absent.
   NULL when out of memory. */
static char *history_text(const ot_train_checkpoint *ck)
{
    size_t n = (size_t)ck->n_history * 160 + 1;
    char *s = ot_malloc(n), *at = s;
    if (!s)
        return NULL;
    *s = '\0';
    for (int i = 0; i < ck->n_history; i++) {
        const ot_train_checkpoint_epoch *h = &ck->history[i];
        double v[5] = { h->loss, h->accuracy, h->val_loss, h->val_accuracy, h->lr };
        at += snprintf(at, n - (size_t)(at - s), "%d", h->epoch);
        for (int k = 0; k < 5; k++)
            at += isnan(v[k]) ? snprintf(at, n - (size_t)(at - s), ",nan")
                              : snprintf(at, n - (size_t)(at - s), ",%.17g", v[k]);
        at += snprintf(at, n - (size_t)(at - s), "\n");
    }
    return s;
}

ot_status ot_train_checkpoint_save(const ot_graph *model, const ot_optim_state *state,
                                   size_t n_state, const ot_optim_state *best, size_t n_best,
                                   const ot_train_checkpoint *ck,
                                   ot_train_checkpoint_prepare prepare, void *user,
                                   const char *path, ot_err *err)
{
    ot_status st = OT_OK;
    ot_graph *g = NULL;
    char *hist = NULL;
    int32_t meta_cap = 0;
    OT_TRY(ot_graph_clone(model, &g, err));
    OT_TRY(own_arrays(g, (int32_t)(n_state + n_best), &meta_cap, err));
    /* drop checkpoint keys the input model may carry */
    int32_t kept = 0;
    for (int32_t i = 0; i < g->n_metadata; i++)
        if (!has_prefix(g->metadata[i].key, OT_CKPT_META_PREFIX))
            g->metadata[kept++] = g->metadata[i];
    g->n_metadata = kept;
    if (prepare) {
        OT_TRY(prepare(g, user, err));
        /* prepare may have replaced the array: copy it again before appending */
        ot_kv *kv = ot_arena_alloc(&g->arena, sizeof *kv * (size_t)(g->n_metadata + 32));
        if (!kv)
            OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
        if (g->n_metadata)
            memcpy(kv, g->metadata, sizeof *kv * (size_t)g->n_metadata);
        g->metadata = kv;
        meta_cap = g->n_metadata + 32;
    }
    for (size_t i = 0; i < n_state; i++)
        OT_TRY(add_state_init(g, OT_CKPT_OPTIM_PREFIX, &state[i], err));
    for (size_t i = 0; i < n_best; i++)
        OT_TRY(add_state_init(g, OT_CKPT_BEST_PREFIX, &best[i], err));

    char buf[64];
#define SET(key, ...)                                                                           \
    do {                                                                                        \
        snprintf(buf, sizeof buf, __VA_ARGS__);                                                 \
        OT_TRY(meta_set(g, &meta_cap, OT_CKPT_META_PREFIX key, buf, err));                      \
    } while (0)
    SET("format", "%d", OT_CKPT_FORMAT);
    SET("model", "%016" PRIx64, ck->model_hash);
    SET("data", "%016" PRIx64, ck->data_hash);
    SET("images", "%" PRId64, ck->n_images);
    SET("classes", "%d", ck->n_classes);
    OT_TRY(meta_set(g, &meta_cap, OT_CKPT_META_PREFIX "options", ck->options ? ck->options : "",
                    err));
    OT_TRY(meta_set(g, &meta_cap, OT_CKPT_META_PREFIX "params", ck->params ? ck->params : "",
                    err));
    SET("step", "%" PRId64, ck->step);
    SET("epoch", "%d", ck->epoch);
    SET("epoch_step", "%" PRId64, ck->epoch_step);
    SET("steps_per_epoch", "%" PRId64, ck->steps_per_epoch);
    SET("epochs", "%d", ck->epochs);
    SET("epoch_loss_sum", "%.17g", ck->epoch_loss_sum);
    SET("epoch_correct", "%" PRId64, ck->epoch_correct);
    SET("epoch_seen", "%" PRId64, ck->epoch_seen);
    SET("last_loss", "%.17g", ck->last_loss);
    SET("last_accuracy", "%.17g", ck->last_accuracy);
    SET("best_epoch", "%d", ck->best_epoch);
    SET("best_val_accuracy", "%.17g", ck->best_val_accuracy);
    if (ck->loss_scaling) { /* dynamic loss scaling's state (loss_scale.h) */
        SET("loss_scale", "%.9g", (double)ck->scaler.scale);
        SET("loss_scale_growth", "%" PRId64, ck->scaler.growth_tracker);
        SET("loss_scale_skipped", "%" PRId64, ck->scaler.skipped);
    }
#undef SET
    hist = history_text(ck);
    if (!hist)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    OT_TRY(meta_set(g, &meta_cap, OT_CKPT_META_PREFIX "history", hist, err));
    /* inline: one file, so that the rename replaces the whole checkpoint at
       once; the CRC-32 of all of it goes last */
    ot_export_opts eo = { .placement = OT_DATA_INLINE };
    OT_TRY(ot_onnx_export_file_crc(g, path, &eo, OT_CKPT_CRC_KEY, err));
done:
    if (st != OT_OK)
        ot_err_prefix(err, "checkpoint %s", path);
    ot_free(hist);
    ot_graph_free(g);
    return st;
}

/* -------------------------------------------------------------- checksum */

ot_status ot_train_checkpoint_check_bytes(const void *data, size_t len, const char *name,
                                          bool *sealed, ot_err *err)
{
    uint8_t want[160];
    size_t n = ot_onnx_crc_trailer(OT_CKPT_CRC_KEY, 0, want, sizeof want);
    const uint8_t *p = data;
    /* the trailer is fixed but for its last 8 bytes, the hex digits */
    *sealed = len >= n && memcmp(p + len - n, want, n - 8) == 0;
    if (!*sealed)
        return ot_err_set(err, OT_ERR_PARSE,
                          "%s: has no checkpoint checksum (metadata '" OT_CKPT_CRC_KEY
                          "' at the end of the file): not a checkpoint of this onnxtrain, "
                          "or its end is damaged",
                          name);
    uint32_t stored = 0;
    for (size_t i = len - 8; i < len; i++) {
        int c = p[i], d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return ot_err_set(err, OT_ERR_PARSE,
                              "%s: checkpoint checksum is not 8 lowercase hex digits: the file "
                              "is damaged",
                              name);
        stored = stored << 4 | (uint32_t)d;
    }
    uint32_t crc = ot_onnx_crc32(0, p, len - n);
    if (crc != stored)
        return ot_err_set(err, OT_ERR_PARSE,
                          "%s: checkpoint checksum mismatch (stored %08" PRIx32
                          ", computed %08" PRIx32 "): the file is damaged",
                          name, stored, crc);
    return OT_OK;
}

/* Reads a whole regular file into *buf (ot_malloc'ed). Errors: OT_ERR_IO,
   OT_ERR_PARSE (over protobuf's 2 GiB), OT_ERR_NOMEM. */
static ot_status read_file(const char *path, uint8_t **buf, size_t *len, ot_err *err)
{
    ot_status st = OT_OK;
    uint8_t *b = NULL;
    struct stat sb;
    int fd = -1;
    /* a FIFO must not hang the open; only regular files are read */
    OT_TRY(ot_file_open_read(path, &fd, &sb, err));
    if ((uint64_t)sb.st_size > (2ull << 30))
        OT_FAIL(err, OT_ERR_PARSE, "%s: %lld bytes is larger than a checkpoint can be (2 GiB)",
                path, (long long)sb.st_size);
    size_t n = (size_t)sb.st_size, got = 0;
    b = ot_malloc(n ? n : 1);
    if (!b)
        OT_FAIL(err, OT_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, n);
    while (got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            OT_FAIL(err, OT_ERR_IO, "%s: read error: %s", path, strerror(errno));
        if (r == 0)
            break;
        got += (size_t)r;
    }
    *buf = b;
    *len = got;
    b = NULL;
done:
    if (fd >= 0)
        close(fd);
    ot_free(b);
    return st;
}

bool ot_train_checkpoint_is_one(const ot_graph *g)
{
    for (int32_t i = 0; i < g->n_metadata; i++)
        if (has_prefix(g->metadata[i].key, OT_CKPT_META_PREFIX))
            return true;
    for (int32_t i = 0; i < g->n_inits; i++)
        if (has_prefix(g->values[g->inits[i]].name, OT_CKPT_OPTIM_PREFIX) ||
            has_prefix(g->values[g->inits[i]].name, OT_CKPT_BEST_PREFIX))
            return true;
    return false;
}

ot_status ot_train_checkpoint_check_file(const char *path, bool *sealed, ot_err *err)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    *sealed = false;
    ot_status st = read_file(path, &buf, &len, err);
    if (st == OT_OK)
        st = ot_train_checkpoint_check_bytes(buf, len, path, sealed, err);
    ot_free(buf);
    return st;
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* OT_ERR_PARSE when a metadata key appears twice (which value a reader took
   would depend on the reader) or the format is newer than this build's. */
static ot_status check_meta(const char *path, const ot_graph *g, ot_err *err)
{
    ot_status st = OT_OK;
    const char **keys = NULL;
    if (g->n_metadata > 1) {
        keys = ot_malloc((size_t)g->n_metadata * sizeof *keys);
        if (!keys)
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
        for (int32_t i = 0; i < g->n_metadata; i++)
            keys[i] = g->metadata[i].key;
        qsort(keys, (size_t)g->n_metadata, sizeof *keys, cmp_key);
        for (int32_t i = 1; i < g->n_metadata; i++)
            if (!strcmp(keys[i - 1], keys[i]))
                OT_FAIL(err, OT_ERR_PARSE, "%s: metadata key '%s' appears twice", path, keys[i]);
    }
    const char *fmt = meta_get(g, OT_CKPT_META_PREFIX "format");
    char *end;
    errno = 0;
    long long f = fmt ? strtoll(fmt, &end, 10) : 1;
    if (fmt && (errno || end == fmt || *end || f < 1))
        OT_FAIL(err, OT_ERR_PARSE, "%s: checkpoint format '%s' is not a format number", path,
                fmt);
    if (f > OT_CKPT_FORMAT)
        OT_FAIL(err, OT_ERR_PARSE, "%s: checkpoint format %lld is newer than this onnxtrain "
                "reads (%d)", path, f, OT_CKPT_FORMAT);
done:
    ot_free(keys);
    return st;
}

ot_status ot_train_checkpoint_check_import(const char *path, const ot_graph *g, ot_status st,
                                           ot_err *err)
{
    bool sealed;
    ot_err e2;
    ot_err_init(&e2);
    if (st != OT_OK) { /* a damaged checkpoint: say so rather than what broke */
        if (ot_train_checkpoint_check_file(path, &sealed, &e2) != OT_OK && sealed)
            *err = e2;
        return st;
    }
    if (!ot_train_checkpoint_is_one(g))
        return OT_OK;
    ot_status mst = check_meta(path, g, err);
    if (mst != OT_OK)
        return mst;
    const char *fmt = meta_get(g, OT_CKPT_META_PREFIX "format");
    if (fmt && !strcmp(fmt, "1")) /* had no checksum */
        return OT_OK;
    return ot_train_checkpoint_check_file(path, &sealed, err);
}

/* ------------------------------------------------------------------ load */

/* Reading the metadata: each reader records the first problem in `bad`
   (the key and whether it was malformed or out of range) and then does
   nothing, so that the load reports one field. */
typedef struct meta_reader {
    const ot_graph *g;
    char msg[320]; /* empty: no problem yet */
} meta_reader;

static const char *mr_get(meta_reader *r, const char *key)
{
    if (r->msg[0])
        return NULL;
    const char *s = meta_get(r->g, key);
    if (!s || !*s)
        snprintf(r->msg, sizeof r->msg, "checkpoint metadata '%s' is missing", key);
    return s && *s ? s : NULL;
}

static void mr_bad(meta_reader *r, const char *key, const char *value, const char *why)
{
    if (!r->msg[0])
        snprintf(r->msg, sizeof r->msg, "checkpoint metadata '%s' = '%.40s%s' %s", key, value,
                 strlen(value) > 40 ? "..." : "", why);
}

/* A decimal integer in [lo, hi]. */
static int64_t mr_i64(meta_reader *r, const char *key, int64_t lo, int64_t hi)
{
    const char *s = mr_get(r, key);
    if (!s)
        return lo;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end || errno == EINVAL || end == s || (s[0] != '-' && (s[0] < '0' || s[0] > '9'))) {
        mr_bad(r, key, s, "is not a decimal integer");
        return lo;
    }
    if (errno == ERANGE || v < lo || v > hi) {
        char why[96];
        snprintf(why, sizeof why, "is out of range (expected %lld .. %lld)", (long long)lo,
                 (long long)hi);
        mr_bad(r, key, s, why);
        return lo;
    }
    return v;
}

/* 16 hex digits. */
static uint64_t mr_hex(meta_reader *r, const char *key)
{
    const char *s = mr_get(r, key);
    if (!s)
        return 0;
    uint64_t v = 0;
    size_t n = strlen(s);
    for (size_t i = 0; i < n && n == 16; i++) {
        int c = s[i], d = c >= '0' && c <= '9'   ? c - '0'
                          : c >= 'a' && c <= 'f' ? c - 'a' + 10
                          : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                 : -1;
        if (d < 0)
            n = 0;
        v = v << 4 | (uint64_t)(d < 0 ? 0 : d);
    }
    if (n != 16)
        mr_bad(r, key, s, "is not 16 hex digits");
    return v;
}

/* A finite double in [lo, hi]. */
static double mr_f64(meta_reader *r, const char *key, double lo, double hi)
{
    const char *s = mr_get(r, key);
    if (!s)
        return lo;
    char *end;
    double v = strtod(s, &end);
    if (*end || end == s) {
        mr_bad(r, key, s, "is not a number");
        return lo;
    }
    if (!(v >= lo && v <= hi)) { /* NaN too */
        char why[96];
        snprintf(why, sizeof why, "is out of range (expected a finite number in %g .. %g)", lo,
                 hi);
        mr_bad(r, key, s, why);
        return lo;
    }
    return v;
}

/* One number of a history line: finite in [lo, hi], or "nan" where allowed. */
static bool hist_num(const char **p, double lo, double hi, bool nan_ok, double *out)
{
    char *end;
    if (!strncmp(*p, "nan", 3)) {
        *out = NAN;
        *p += 3;
        return nan_ok;
    }
    if (!((**p >= '0' && **p <= '9') || **p == '-' || **p == '.'))
        return false;
    *out = strtod(*p, &end);
    if (end == *p || !(*out >= lo && *out <= hi))
        return false;
    *p = end;
    return true;
}

/* Parses the history: exactly `n` lines "epoch,loss,accuracy,val_loss,
   val_accuracy,lr" for epochs 1 .. n. */
static void mr_history(meta_reader *r, const char *key, int n, ot_train_checkpoint *ck)
{
    if (r->msg[0])
        return;
    const char *s = meta_get(r->g, key); /* empty when no epoch is finished */
    if (!s) {
        snprintf(r->msg, sizeof r->msg, "checkpoint metadata '%s' is missing", key);
        return;
    }
    ck->history = ot_calloc((size_t)n + 1, sizeof *ck->history);
    if (!ck->history) {
        snprintf(r->msg, sizeof r->msg, "out of memory");
        return;
    }
    const char *p = s;
    int i = 0;
    for (; i < n && *p; i++) {
        ot_train_checkpoint_epoch *h = &ck->history[i];
        char *end;
        errno = 0;
        long e = strtol(p, &end, 10);
        if (end == p || errno || e != i + 1)
            break;
        h->epoch = (int)e;
        p = end;
        double *f[5] = { &h->loss, &h->accuracy, &h->val_loss, &h->val_accuracy, &h->lr };
        static const double hi[5] = { HUGE_VAL, 1, HUGE_VAL, 1, HUGE_VAL };
        int k = 0;
        for (; k < 5; k++) {
            if (*p != ',')
                break;
            p++;
            if (!hist_num(&p, 0, hi[k] == HUGE_VAL ? 1e300 : hi[k], k == 2 || k == 3, f[k]))
                break;
        }
        if (k < 5 || *p != '\n' || isnan(h->val_loss) != isnan(h->val_accuracy))
            break;
        p++;
    }
    if (i < n || *p) {
        char why[160];
        snprintf(why, sizeof why, "is malformed at line %d (expected %d lines of "
                 "epoch,loss,accuracy,val_loss,val_accuracy,lr)", i + 1, n);
        mr_bad(r, key, s, why);
        return;
    }
    ck->n_history = n;
}

ot_status ot_train_checkpoint_load(const char *path, ot_graph **graph, ot_train_checkpoint *ck,
                                   ot_err *err)
{
    ot_status st = OT_OK;
    ot_graph *g = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    memset(ck, 0, sizeof *ck);
    *graph = NULL;
    OT_TRY(read_file(path, &buf, &len, err));
    /* the checksum first: the metadata and tensors below are then as written */
    bool sealed;
    st = ot_train_checkpoint_check_bytes(buf, len, path, &sealed, err);
    if (st != OT_OK && !sealed) {
        ot_graph *probe = NULL;
        ot_err e2;
        ot_err_init(&e2);
        /* an ONNX file that is no checkpoint at all deserves that message */
        if (ot_onnx_import_buffer(buf, len, path, NULL, NULL, &probe, &e2) == OT_OK &&
            !meta_get(probe, OT_CKPT_META_PREFIX "format"))
            st = ot_err_set(err, OT_ERR_PARSE,
                            "%s: not an onnxtrain checkpoint (no metadata '" OT_CKPT_META_PREFIX
                            "format')",
                            path);
        else if (probe && !strcmp(meta_get(probe, OT_CKPT_META_PREFIX "format"), "1"))
            st = ot_err_set(err, OT_ERR_PARSE,
                            "%s: checkpoint format 1 (an older onnxtrain) has no checksum and "
                            "no best-epoch state; it cannot be resumed (start a new run from "
                            "it, or `onnxtrain export` it)",
                            path);
        ot_graph_free(probe);
    }
    if (st != OT_OK)
        goto done;
    /* checkpoints keep every tensor inline: no folder for external data */
    OT_TRY(ot_onnx_import_buffer(buf, len, path, NULL, NULL, &g, err));
    ot_free(buf);
    buf = NULL;
    if (ot_graph_check_finite(g, err) != OT_OK) {
        st = err->code;
        ot_err_prefix(err, "%s", path);
        goto done;
    }
    OT_TRY(check_meta(path, g, err));
    meta_reader r = { .g = g };
    if (!meta_get(g, OT_CKPT_META_PREFIX "format"))
        OT_FAIL(err, OT_ERR_PARSE,
                "%s: not an onnxtrain checkpoint (no metadata '" OT_CKPT_META_PREFIX "format')",
                path);
    int64_t format = mr_i64(&r, OT_CKPT_META_PREFIX "format", 1, INT32_MAX);
    if (!r.msg[0] && format > OT_CKPT_FORMAT)
        OT_FAIL(err, OT_ERR_PARSE,
                "%s: checkpoint format %lld is newer than this onnxtrain reads (%d)", path,
                (long long)format, OT_CKPT_FORMAT);
    if (!r.msg[0] && format < OT_CKPT_FORMAT)
        OT_FAIL(err, OT_ERR_PARSE, "%s: checkpoint format %lld is older than this onnxtrain "
                "resumes (%d)", path, (long long)format, OT_CKPT_FORMAT);
    ck->format = (int)format;
    /* Ranges: the epoch count is finetune's --epochs limit; images and steps
       below 2^40 keep every product and sum the loop forms far from
       overflow (the resume then checks them against this run exactly). */
    const int64_t big = INT64_C(1) << 40;
    ck->model_hash = mr_hex(&r, OT_CKPT_META_PREFIX "model");
    ck->data_hash = mr_hex(&r, OT_CKPT_META_PREFIX "data");
    ck->n_images = mr_i64(&r, OT_CKPT_META_PREFIX "images", 1, big);
    ck->n_classes = (int)mr_i64(&r, OT_CKPT_META_PREFIX "classes", 1, INT32_MAX);
    const char *options = mr_get(&r, OT_CKPT_META_PREFIX "options");
    const char *params = meta_get(g, OT_CKPT_META_PREFIX "params");
    if (!params && !r.msg[0])
        snprintf(r.msg, sizeof r.msg, "checkpoint metadata '%s' is missing",
                 OT_CKPT_META_PREFIX "params");
    ck->epochs = (int)mr_i64(&r, OT_CKPT_META_PREFIX "epochs", 1, OT_CKPT_MAX_EPOCHS);
    ck->epoch = (int)mr_i64(&r, OT_CKPT_META_PREFIX "epoch", 0, OT_CKPT_MAX_EPOCHS);
    ck->steps_per_epoch = mr_i64(&r, OT_CKPT_META_PREFIX "steps_per_epoch", 1, ck->n_images);
    ck->epoch_step =
        mr_i64(&r, OT_CKPT_META_PREFIX "epoch_step", 0, ck->steps_per_epoch - 1);
    /* every step is counted in one epoch: steps in all follow from the position */
    int64_t want_step = (int64_t)ck->epoch * ck->steps_per_epoch + ck->epoch_step;
    ck->step = mr_i64(&r, OT_CKPT_META_PREFIX "step", want_step, want_step);
    ck->epoch_seen = mr_i64(&r, OT_CKPT_META_PREFIX "epoch_seen", 0, ck->n_images);
    ck->epoch_correct = mr_i64(&r, OT_CKPT_META_PREFIX "epoch_correct", 0, ck->epoch_seen);
    ck->epoch_loss_sum = mr_f64(&r, OT_CKPT_META_PREFIX "epoch_loss_sum", 0, 1e300);
    ck->last_loss = mr_f64(&r, OT_CKPT_META_PREFIX "last_loss", 0, 1e300);
    ck->last_accuracy = mr_f64(&r, OT_CKPT_META_PREFIX "last_accuracy", 0, 1);
    ck->best_epoch = (int)mr_i64(&r, OT_CKPT_META_PREFIX "best_epoch", 0, ck->epoch);
    ck->best_val_accuracy = mr_f64(&r, OT_CKPT_META_PREFIX "best_val_accuracy", 0, 1);
    mr_history(&r, OT_CKPT_META_PREFIX "history", ck->epoch, ck);
    ck->loss_scaling = meta_get(g, OT_CKPT_META_PREFIX "loss_scale") != NULL;
    if (ck->loss_scaling) {
        ot_loss_scaler_init(&ck->scaler, 0);
        ck->scaler.scale = (float)mr_f64(&r, OT_CKPT_META_PREFIX "loss_scale", 1, 3.5e38);
        ck->scaler.growth_tracker = mr_i64(&r, OT_CKPT_META_PREFIX "loss_scale_growth", 0,
                                           ck->scaler.growth_interval - 1);
        ck->scaler.skipped = mr_i64(&r, OT_CKPT_META_PREFIX "loss_scale_skipped", 0, ck->step);
    }
    if (r.msg[0])
        OT_FAIL(err, OT_ERR_PARSE, "%s: %s", path, r.msg);
    ck->options = ot_strdup(options);
    ck->params = ot_strdup(params);
    if (!ck->options || !ck->params)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    *graph = g;
    g = NULL;
done:
    if (st != OT_OK)
        ot_train_checkpoint_fini(ck);
    ot_free(buf);
    ot_graph_free(g);
    return st;
}

/* ----------------------------------------------------------------- match */

/* The value of `key` in "key=value\n" lines: its start and length; NULL when
   absent. */
static const char *opt_find(const char *text, const char *key, size_t key_len, size_t *len)
{
    for (const char *p = text; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t line = eol ? (size_t)(eol - p) : strlen(p);
        if (line > key_len && p[key_len] == '=' && !strncmp(p, key, key_len)) {
            *len = line - key_len - 1;
            return p + key_len + 1;
        }
        p = eol ? eol + 1 : NULL;
    }
    return NULL;
}

/* Finds the first key whose value differs between the two texts (or that
   only one has) and describes it. False when the texts agree key by key. */
static bool opt_diff(const char *now, const char *saved, char *out, size_t n, const char *where)
{
    for (int pass = 0; pass < 2; pass++) {
        const char *a = pass ? saved : now, *b = pass ? now : saved;
        for (const char *p = a; p && *p;) {
            const char *eol = strchr(p, '\n');
            size_t line = eol ? (size_t)(eol - p) : strlen(p);
            const char *eq = memchr(p, '=', line);
            if (eq) {
                size_t key_len = (size_t)(eq - p), la = line - key_len - 1, lb = 0;
                const char *vb = opt_find(b, p, key_len, &lb);
                if (!vb || la != lb || memcmp(eq + 1, vb, la) != 0) {
                    const char *vnow = pass ? vb : eq + 1, *vsaved = pass ? eq + 1 : vb;
                    size_t lnow = pass ? lb : la, lsaved = pass ? la : lb;
                    snprintf(out, n, "%.*s is %s%.*s%s here, %s%.*s%s %s",
                             (int)key_len, p, vnow ? "'" : "", vnow ? (int)lnow : 6,
                             vnow ? vnow : "absent", vnow ? "'" : "", vsaved ? "'" : "",
                             vsaved ? (int)lsaved : 6, vsaved ? vsaved : "absent",
                             vsaved ? "'" : "", where);
                    return true;
                }
            }
            p = eol ? eol + 1 : NULL;
        }
    }
    return false;
}

ot_status ot_train_checkpoint_match(const ot_train_checkpoint *saved,
                                    const ot_train_checkpoint *now, ot_err *err)
{
    if (saved->model_hash != now->model_hash)
        return ot_err_set(err, OT_ERR_ARG,
                          "the checkpoint was made from another model file (fingerprint "
                          "%016" PRIx64 ", this model %016" PRIx64 ")",
                          saved->model_hash, now->model_hash);
    if (saved->data_hash != now->data_hash)
        return ot_err_set(err, OT_ERR_ARG,
                          "the checkpoint was made on other data (%lld images, %d classes, "
                          "fingerprint %016" PRIx64 "; this data: %lld images, %d classes, "
                          "%016" PRIx64 ")",
                          (long long)saved->n_images, saved->n_classes, saved->data_hash,
                          (long long)now->n_images, now->n_classes, now->data_hash);
    char diff[512];
    if (opt_diff(now->options ? now->options : "", saved->options ? saved->options : "", diff,
                 sizeof diff, "in the checkpoint"))
        return ot_err_set(err, OT_ERR_ARG, "the options differ from the checkpoint's: %s",
                          diff);
    if (strcmp(saved->params ? saved->params : "", now->params ? now->params : "") != 0)
        return ot_err_set(err, OT_ERR_ARG,
                          "the checkpoint trains other parameters than this run does");
    if (saved->steps_per_epoch != now->steps_per_epoch)
        return ot_err_set(err, OT_ERR_ARG,
                          "the checkpoint has %lld steps per epoch, this run %lld",
                          (long long)saved->steps_per_epoch, (long long)now->steps_per_epoch);
    return OT_OK;
}

ot_status ot_train_fingerprint_match(const ot_train_checkpoint *ref,
                                     const ot_train_checkpoint *now, const char *ref_name,
                                     ot_err *err)
{
    if (ref->model_hash != now->model_hash)
        return ot_err_set(err, OT_ERR_ARG,
                          "the model file differs from %s's (fingerprint %016" PRIx64
                          " here, %016" PRIx64 " there)",
                          ref_name, now->model_hash, ref->model_hash);
    if (ref->data_hash != now->data_hash)
        return ot_err_set(err, OT_ERR_ARG,
                          "the data differs from %s's (%lld images, %d classes, fingerprint "
                          "%016" PRIx64 " here; %lld images, %d classes, %016" PRIx64 " there)",
                          ref_name, (long long)now->n_images, now->n_classes, now->data_hash,
                          (long long)ref->n_images, ref->n_classes, ref->data_hash);
    char diff[512], where[64];
    snprintf(where, sizeof where, "on %s", ref_name);
    if (opt_diff(now->options ? now->options : "", ref->options ? ref->options : "", diff,
                 sizeof diff, where))
        return ot_err_set(err, OT_ERR_ARG, "the options differ from %s's: %s", ref_name, diff);
    return OT_OK;
}

/* --------------------------------------------------------------- restore */

ot_status ot_train_checkpoint_tensor(const ot_graph *ckg, const char *name, ot_dtype dtype,
                                     void *dst, size_t bytes, ot_err *err)
{
    int32_t id = ot_graph_find_value(ckg, name);
    if (id < 0 || !(ckg->values[id].flags & OT_VAL_INIT))
        return ot_err_set(err, OT_ERR_MODEL, "the checkpoint has no tensor '%s'", name);
    const ot_tensor *t = &ckg->values[id].data;
    if (t->dtype != dtype || t->bytes != bytes || (bytes && !t->data))
        return ot_err_set(err, OT_ERR_MODEL,
                          "checkpoint tensor '%s' is %s of %zu bytes, expected %s of %zu bytes",
                          name, ot_dtype_name(t->dtype), t->bytes, ot_dtype_name(dtype), bytes);
    if (bytes)
        memcpy(dst, t->data, bytes);
    return OT_OK;
}

ot_status ot_train_checkpoint_restore_optim(const ot_graph *ckg, const ot_optim_state *state,
                                            size_t n_state, ot_err *err)
{
    ot_status st = OT_OK;
    for (size_t i = 0; i < n_state; i++) {
        const ot_optim_state *s = &state[i];
        char name[128];
        snprintf(name, sizeof name, "%s%s", OT_CKPT_OPTIM_PREFIX, s->name);
        OT_TRY(ot_train_checkpoint_tensor(ckg, name, s->dtype, s->data,
                                          s->numel * ot_dtype_size(s->dtype), err));
    }
done:
    return st;
}

/* ----------------------------------------------------------------- strip */

static bool is_state_value(const ot_graph *g, int32_t id)
{
    return has_prefix(g->values[id].name, OT_CKPT_OPTIM_PREFIX) ||
           has_prefix(g->values[id].name, OT_CKPT_BEST_PREFIX);
}

ot_status ot_train_checkpoint_strip(ot_graph *g, ot_err *err)
{
    if (!meta_get(g, OT_CKPT_META_PREFIX "format"))
        return ot_err_set(err, OT_ERR_ARG,
                          "not an onnxtrain checkpoint (no metadata '" OT_CKPT_META_PREFIX
                          "format')");
    /* the arrays belong to g (an imported graph): compact them in place */
    int32_t k = 0;
    for (int32_t i = 0; i < g->n_inits; i++)
        if (!is_state_value(g, g->inits[i]))
            g->inits[k++] = g->inits[i];
    g->n_inits = k;
    k = 0;
    for (int32_t i = 0; i < g->n_inputs; i++)
        if (!is_state_value(g, g->inputs[i].value))
            g->inputs[k++] = g->inputs[i];
    g->n_inputs = k;
    k = 0;
    for (int32_t i = 0; i < g->n_metadata; i++)
        if (!has_prefix(g->metadata[i].key, OT_CKPT_META_PREFIX))
            g->metadata[k++] = g->metadata[i];
    g->n_metadata = k;
    return OT_OK;
}

/* ---- the trainer's checkpoint glue ------------------------------------ */

ot_status ot_train_ckpt_sync(ot_train_ckpt_run *r, ot_err *err)
{
    pthread_mutex_lock(&r->lock);
    ot_status st = OT_OK;
    const ot_train_graph *tg = r->tg;
    for (int kind = 0; kind < 2; kind++) {
        int n = kind ? tg->n_stats : tg->n_params;
        const int32_t *ids = kind ? tg->stats : tg->params;
        for (int i = 0; i < n; i++) {
            ot_value *v = &r->model->values[ids[i]];
            if (!v->data.data || !ot_exec_state_bytes(r->step, ids[i]))
                continue;
            st = ot_exec_read_state(r->step, ids[i], v->data.data, v->data.bytes, err);
            if (st != OT_OK)
                goto done;
            v->flags |= OT_VAL_DIRTY;
        }
    }
done:
    pthread_mutex_unlock(&r->lock);
    return st;
}

/* The options that change a run, as "key=value" lines (checkpoint.h). */
static char *options_text(const ot_train_ckpt_run *r, uint64_t train_hash, const char *val,
                          bool cache_bf16)
{
    const ot_train_opts *o = r->o;
    const ot_optim_opts *op = &o->optim;
    static const char *const kinds[] = { "sgd", "adam", "adamw" };
    static const char *const scheds[] = { "constant", "step", "cosine" };
    uint64_t h = OT_HASH_INIT;
    for (int p = 0; p < r->tg->n_params; p++) {
        const ot_value *v = &r->model->values[r->tg->params[p]];
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
        "patience=%d\n%s%s%s%s%s",
        o->batch_size, o->lr, o->head_lr > 0 ? o->head_lr : o->lr,
        (unsigned)op->kind < 3 ? kinds[op->kind] : "?", op->weight_decay, op->momentum,
        op->dampening, op->nesterov, op->beta1, op->beta2, op->eps,
        (unsigned)o->schedule.kind < 3 ? scheds[o->schedule.kind] : "?",
        (long long)o->schedule.step_size, o->schedule.gamma, (long long)o->schedule.t_max,
        o->schedule.per_step, (long long)o->schedule.warmup_steps, o->clip_grad,
        (double)o->graph.label_smoothing, o->graph.bn_all_train ? "train" : "policy", t->size,
        (double)t->mean[0], (double)t->mean[1], (double)t->mean[2], (double)t->std[0],
        (double)t->std[1], (double)t->std[2], t->to_rgb, (unsigned long long)o->seed,
        r->tg->n_params, h, o->augment, (long long)r->ck.n_images, train_hash, val,
        o->keep_best ? "best" : "last", o->patience,
        /* bfloat16 records change what the steps see; f32 ones do not */
        cache_bf16 ? "cache-dtype=bf16\n" : "",
        /* so does any precision but the default */
        o->precision != OT_PRECISION_FP32 ? "precision=" : "",
        o->precision != OT_PRECISION_FP32 ? ot_precision_name(o->precision) : "",
        o->precision != OT_PRECISION_FP32 ? "\n" : "",
        /* and dynamic loss scaling where fp16 does not imply it */
        o->loss_scaling && o->precision != OT_PRECISION_FP16 ? "loss-scaling=dynamic\n" : "");
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
static char *params_text(const ot_graph *model, const ot_train_graph *tg)
{
    size_t n = 1;
    for (int p = 0; p < tg->n_params; p++)
        n += strlen(model->values[tg->params[p]].name) + 1;
    char *s = ot_malloc(n), *at = s;
    if (!s)
        return NULL;
    for (int p = 0; p < tg->n_params; p++) {
        const char *name = model->values[tg->params[p]].name;
        size_t l = strlen(name);
        memcpy(at, name, l);
        at += l;
        *at++ = '\n';
    }
    *at = '\0';
    return s;
}

/* The first non-finite float state tensor (trained parameter or BN
   statistic) through *bad, or NULL: each is copied out of the executor into
   one scratch buffer, the model's bytes are left as they are. */
static ot_status non_finite_state(const ot_train_ckpt_run *r, const char **bad, ot_err *err)
{
    ot_status st = OT_OK;
    const ot_train_graph *tg = r->tg;
    float *x = NULL;
    size_t cap = 0;
    *bad = NULL;
    for (int kind = 0; kind < 2 && !*bad; kind++) {
        int n = kind ? tg->n_stats : tg->n_params;
        const int32_t *ids = kind ? tg->stats : tg->params;
        for (int i = 0; i < n && !*bad; i++) {
            const ot_value *v = &r->model->values[ids[i]];
            size_t bytes = ot_exec_state_bytes(r->step, ids[i]);
            if (!bytes || v->dtype != OT_DTYPE_FLOAT)
                continue;
            if (bytes > cap) {
                ot_free(x);
                cap = bytes;
                if (!(x = ot_malloc(cap)))
                    OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
            }
            OT_TRY(ot_exec_read_state(r->step, ids[i], x, bytes, err));
            for (size_t j = 0; j < bytes / sizeof(float); j++)
                if (!isfinite(x[j])) {
                    *bad = v->name;
                    break;
                }
        }
    }
done:
    ot_free(x);
    return st;
}

ot_status ot_train_ckpt_check_finite(const ot_train_ckpt_run *r, ot_err *err)
{
    const char *bad;
    ot_status st = non_finite_state(r, &bad, err);
    if (st == OT_OK && bad)
        return ot_err_set(err, OT_ERR_ARG,
                          "after step %lld the trained tensor '%s' holds NaN or infinite values "
                          "(is the learning rate too high?)",
                          (long long)r->ck.step, bad);
    return st;
}

static ot_status save_locked(ot_train_ckpt_run *r, ot_err *err)
{
    if (!r->o->checkpoint || r->saved_step == r->ck.step)
        return OT_OK;
    ot_status st = ot_train_ckpt_check_finite(r, err);
    if (st != OT_OK)
        return st;
    st = ot_train_ckpt_sync(r, err);
    if (st != OT_OK)
        return st;
    const ot_train_graph *tg = r->tg;
    size_t n_best = 0;
    if (r->best) { /* --keep best: the best epoch's tensors, to resume with */
        n_best = (size_t)(tg->n_params + tg->n_stats);
        if (!r->best_state && !(r->best_state = ot_calloc(n_best, sizeof *r->best_state)))
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < n_best; i++) {
            int32_t id = (int)i < tg->n_params ? tg->params[i] : tg->stats[(int)i - tg->n_params];
            const ot_value *v = &r->model->values[id];
            ot_optim_state *b = &r->best_state[i];
            snprintf(b->name, sizeof b->name, "%zu", i);
            b->dtype = v->dtype;
            b->numel = v->data.bytes / ot_dtype_size(v->dtype);
            b->data = r->best[i];
        }
    }
    /* The checkpoint is auxiliary: a file that cannot be written (a full
       disk) costs the checkpoint, not the run. Training goes on, the next
       checkpoint tries again, and the result reports the last failure. */
    bool was_ok = r->save_err.code == OT_OK;
    r->ostep = r->ck.step - (r->ck.loss_scaling ? r->ck.scaler.skipped : 0);
    for (size_t i = 0; i < r->n_ostate; i++)
        if (r->ostate_id[i] >= 0) {
            st = ot_exec_read_state(r->step, r->ostate_id[i], r->ostate[i].data,
                                    ot_exec_state_bytes(r->step, r->ostate_id[i]), err);
            if (st != OT_OK)
                return st;
        }
    st = ot_train_checkpoint_save(r->model, r->ostate, r->n_ostate, r->best_state, n_best, &r->ck,
                                  r->o->checkpoint_prepare, r->o->checkpoint_user,
                                  r->o->checkpoint, &r->save_err);
    if (st == OT_OK) {
        r->saved_step = r->ck.step;
        ot_err_init(&r->save_err);
        return OT_OK;
    }
    if (st != OT_ERR_IO) {
        *err = r->save_err;
        return st;
    }
    if (was_ok) /* once per run of failures */
        ot_log(OT_LOG_WARN, "%s; training goes on", r->save_err.msg);
    return OT_OK;
}

ot_status ot_train_ckpt_save(ot_train_ckpt_run *r, ot_err *err)
{
    pthread_mutex_lock(&r->lock);
    ot_status st = save_locked(r, err);
    pthread_mutex_unlock(&r->lock);
    return st;
}

/* The i-th of the trained parameters, then the BN statistics. */
static int32_t state_id(const ot_train_graph *tg, int i)
{
    return i < tg->n_params ? tg->params[i] : tg->stats[i - tg->n_params];
}

static ot_status snap_alloc(ot_train_ckpt_run *r, ot_err *err)
{
    const ot_train_graph *tg = r->tg;
    int n = tg->n_params + tg->n_stats;
    if (!(r->snap = ot_calloc((size_t)n + 1, sizeof *r->snap)) ||
        !(r->snap_ostate = ot_calloc(r->n_ostate + 1, sizeof *r->snap_ostate)))
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        size_t bytes = ot_exec_state_bytes(r->step, state_id(tg, i));
        if (bytes && !(r->snap[i] = ot_malloc(bytes)))
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory for the state's copy");
    }
    for (size_t i = 0; i < r->n_ostate; i++) {
        r->snap_ostate[i] = r->ostate[i];
        if (r->ostate_id[i] < 0) {
            r->snap_ostate[i].data = &r->snap_ostep;
            continue;
        }
        size_t bytes = ot_exec_state_bytes(r->step, r->ostate_id[i]);
        if (!(r->snap_ostate[i].data = ot_malloc(bytes ? bytes : 1)))
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory for the state's copy");
    }
    return OT_OK;
}

ot_status ot_train_ckpt_snap(ot_train_ckpt_run *r, ot_err *err)
{
    if (!r->o->checkpoint)
        return OT_OK;
    ot_status st = OT_OK;
    const ot_train_graph *tg = r->tg;
    pthread_mutex_lock(&r->lock);
    if (!r->snap)
        OT_TRY(snap_alloc(r, err));
    for (int i = 0; i < tg->n_params + tg->n_stats; i++)
        if (r->snap[i])
            OT_TRY(ot_exec_read_state(r->step, state_id(tg, i), r->snap[i],
                                      ot_exec_state_bytes(r->step, state_id(tg, i)), err));
    for (size_t i = 0; i < r->n_ostate; i++)
        if (r->ostate_id[i] >= 0)
            OT_TRY(ot_exec_read_state(r->step, r->ostate_id[i], r->snap_ostate[i].data,
                                      ot_exec_state_bytes(r->step, r->ostate_id[i]), err));
    r->snap_ostep = r->ck.step - (r->ck.loss_scaling ? r->ck.scaler.skipped : 0);
    r->snap_ck = r->ck;
    r->snap_step = r->ck.step;
done:
    pthread_mutex_unlock(&r->lock);
    return st;
}

ot_status ot_train_ckpt_save_snap(ot_train_ckpt_run *r, int64_t *step, ot_err *err)
{
    ot_status st = OT_OK;
    const ot_train_graph *tg = r->tg;
    *step = -1;
    pthread_mutex_lock(&r->lock);
    if (!r->o->checkpoint || r->snap_step < 0 || r->snap_step == r->saved_step)
        goto done;
    for (int i = 0; i < tg->n_params + tg->n_stats; i++) {
        ot_value *v = &r->model->values[state_id(tg, i)];
        if (!r->snap[i] || !v->data.data)
            continue;
        if (v->dtype == OT_DTYPE_FLOAT)
            for (size_t k = 0; k < v->data.bytes / sizeof(float); k++)
                if (!isfinite(((const float *)r->snap[i])[k]))
                    OT_FAIL(err, OT_ERR_ARG,
                            "after step %lld the trained tensor '%s' holds NaN or infinite "
                            "values: no checkpoint written",
                            (long long)r->snap_step, v->name);
        memcpy(v->data.data, r->snap[i], v->data.bytes);
        v->flags |= OT_VAL_DIRTY;
    }
    size_t n_best = r->best_state ? (size_t)(tg->n_params + tg->n_stats) : 0;
    st = ot_train_checkpoint_save(r->model, r->snap_ostate, r->n_ostate, r->best_state, n_best,
                                  &r->snap_ck, r->o->checkpoint_prepare, r->o->checkpoint_user,
                                  r->o->checkpoint, err);
    if (st == OT_OK) {
        r->saved_step = r->snap_step;
        *step = r->snap_step;
    }
done:
    pthread_mutex_unlock(&r->lock);
    return st;
}

void ot_train_ckpt_note(const ot_train_ckpt_run *r, ot_err *err)
{
    if (!r->o->checkpoint)
        return;
    size_t len = strlen(err->msg);
    if (r->saved_step >= 0)
        snprintf(err->msg + len, sizeof err->msg - len,
                 "; the last checkpoint, at step %lld, is kept in %s", (long long)r->saved_step,
                 r->o->checkpoint);
    else
        snprintf(err->msg + len, sizeof err->msg - len, "; no checkpoint was written");
}

const ot_value *ot_train_ckpt_best_value(const ot_train_ckpt_run *r, int i)
{
    const ot_train_graph *tg = r->tg;
    return &r->model->values[i < tg->n_params ? tg->params[i] : tg->stats[i - tg->n_params]];
}

/* Allocates r->best, one buffer per best value, unless it exists. */
static ot_status alloc_best(ot_train_ckpt_run *r, ot_err *err)
{
    if (r->best)
        return OT_OK;
    int n = r->tg->n_params + r->tg->n_stats;
    if (!(r->best = ot_calloc((size_t)n + 1, sizeof *r->best)))
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        size_t bytes = ot_train_ckpt_best_value(r, i)->data.bytes;
        if (!(r->best[i] = ot_malloc(bytes ? bytes : 1)))
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    }
    return OT_OK;
}

ot_status ot_train_ckpt_resume(ot_train_ckpt_run *r, ot_train_result *res, bool *finished,
                               ot_err *err)
{
    ot_status st = OT_OK;
    const ot_train_opts *o = r->o;
    ot_graph *ckg = NULL;
    ot_train_checkpoint saved = { 0 };
    const ot_train_graph *tg = r->tg;
    st = ot_train_checkpoint_load(o->resume, &ckg, &saved, err);
    if (st != OT_OK) { /* the message names the file already */
        ot_err_prefix(err, "--resume");
        return st;
    }
    OT_TRY(ot_train_checkpoint_match(&saved, &r->ck, err));
    if (saved.epoch + (saved.epoch_step > 0) > o->epochs)
        OT_FAIL(err, OT_ERR_ARG,
                "the checkpoint is at epoch %d%s; --epochs %d is fewer (epochs may be raised on "
                "resume, not lowered)",
                saved.epoch + (saved.epoch_step > 0), saved.epoch_step > 0 ? " (in progress)" : "",
                o->epochs);
    /* the steps done in the epoch in progress are full batches */
    if (saved.n_images != r->ck.n_images ||
        saved.epoch_seen != saved.epoch_step * (int64_t)r->batch)
        OT_FAIL(err, OT_ERR_PARSE,
                "checkpoint metadata 'images' = %lld and 'epoch_seen' = %lld do not fit this "
                "run (%lld images; %lld steps of %d images)",
                (long long)saved.n_images, (long long)saved.epoch_seen,
                (long long)r->ck.n_images, (long long)saved.epoch_step, r->batch);
    for (int kind = 0; kind < 2; kind++) {
        int n = kind ? tg->n_stats : tg->n_params;
        const int32_t *ids = kind ? tg->stats : tg->params;
        for (int i = 0; i < n; i++) {
            /* through the model's bytes (the run ends by copying the state
               over them) into the executor */
            const ot_value *v = &r->model->values[ids[i]];
            if (!v->data.data || !ot_exec_state_bytes(r->step, ids[i]))
                continue;
            OT_TRY(ot_train_checkpoint_tensor(ckg, v->name, v->dtype, v->data.data,
                                              v->data.bytes, err));
            OT_TRY(ot_exec_write_state(r->step, ids[i], v->data.data, v->data.bytes, err));
        }
    }
    OT_TRY(ot_train_checkpoint_restore_optim(ckg, r->ostate, r->n_ostate, err));
    for (size_t i = 0; i < r->n_ostate; i++)
        if (r->ostate_id[i] >= 0)
            OT_TRY(ot_exec_write_state(r->step, r->ostate_id[i], r->ostate[i].data,
                                       ot_exec_state_bytes(r->step, r->ostate_id[i]), err));
    /* updates skipped by loss scaling are steps the optimizer did not take */
    int64_t taken = saved.step - (saved.loss_scaling ? saved.scaler.skipped : 0);
    if (r->ostep != taken)
        OT_FAIL(err, OT_ERR_PARSE,
                "the optimizer's step count (%lld) differs from the checkpoint's step (%lld)",
                (long long)r->ostep, (long long)taken);
    if (saved.loss_scaling != r->ck.loss_scaling)
        OT_FAIL(err, OT_ERR_ARG, "the checkpoint was written %s dynamic loss scaling, this run "
                "trains %s it", saved.loss_scaling ? "with" : "without",
                r->ck.loss_scaling ? "with" : "without");
    r->ck.scaler = saved.scaler;
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
        OT_TRY(alloc_best(r, err));
        for (int i = 0; i < tg->n_params + tg->n_stats; i++) {
            const ot_value *v = ot_train_ckpt_best_value(r, i);
            char name[64];
            snprintf(name, sizeof name, OT_CKPT_BEST_PREFIX "%d", i);
            OT_TRY(ot_train_checkpoint_tensor(ckg, name, v->dtype, r->best[i], v->data.bytes,
                                              err));
        }
    }
    for (int i = 0; i < saved.n_history; i++)
        r->ck.history[i] = saved.history[i];
    r->ck.n_history = saved.n_history;
    r->ck.best_epoch = saved.best_epoch;
    r->ck.best_val_accuracy = saved.best_val_accuracy;
    res->best_epoch = saved.best_epoch;
    res->best_val_accuracy = saved.best_val_accuracy;
    *finished = o->patience > 0 && saved.epoch_step == 0 && saved.best_epoch &&
                saved.epoch - saved.best_epoch >= o->patience;
    res->early_stopped = *finished;
    r->ck.step = saved.step;
    r->ck.epoch = saved.epoch;
    r->ck.epoch_step = saved.epoch_step;
    r->ck.epoch_loss_sum = saved.epoch_loss_sum;
    r->ck.epoch_correct = saved.epoch_correct;
    r->ck.epoch_seen = saved.epoch_seen;
    r->ck.last_loss = saved.last_loss;
    r->ck.last_accuracy = saved.last_accuracy;
    res->resumed = true;
    res->resumed_epoch = saved.epoch;
    res->resumed_epoch_step = saved.epoch_step;
    res->resumed_step = saved.step;
    /* the same file may be the one we write: it is already the state here */
    if (o->checkpoint && !strcmp(o->checkpoint, o->resume))
        r->saved_step = saved.step;
done:
    if (st != OT_OK)
        ot_err_prefix(err, "--resume %s", o->resume);
    ot_train_checkpoint_fini(&saved);
    ot_graph_free(ckg);
    return st;
}


void ot_train_ckpt_run_init(ot_train_ckpt_run *r, ot_graph *model, const ot_train_graph *tg,
                            const ot_train_opts *o)
{
    memset(r, 0, sizeof *r);
    r->model = model;
    r->tg = tg;
    r->o = o;
    r->saved_step = -1;
    r->snap_step = -1;
    ot_err_init(&r->save_err);
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE); /* save holds it over sync */
    pthread_mutex_init(&r->lock, &a);
    pthread_mutexattr_destroy(&a);
}

void ot_train_ckpt_run_fini(ot_train_ckpt_run *r)
{
    for (int i = 0; r->best && i < r->tg->n_params + r->tg->n_stats; i++)
        ot_free(r->best[i]);
    ot_free(r->best);
    ot_free(r->best_state);
    for (size_t i = 0; r->ostate && r->ostate_id && i < r->n_ostate; i++)
        if (r->ostate_id[i] >= 0)
            ot_free(r->ostate[i].data);
    ot_free(r->ostate);
    for (int i = 0; r->snap && i < r->tg->n_params + r->tg->n_stats; i++)
        ot_free(r->snap[i]);
    for (size_t i = 0; r->snap_ostate && i < r->n_ostate; i++)
        if (r->ostate_id[i] >= 0)
            ot_free(r->snap_ostate[i].data);
    ot_free(r->snap);
    ot_free(r->snap_ostate);
    r->snap = NULL;
    r->snap_ostate = NULL;
    ot_free(r->ostate_id);
    r->ostate_id = NULL;
    ot_train_checkpoint_fini(&r->ck);
    r->best = NULL;
    r->best_state = NULL;
    r->ostate = NULL;
    pthread_mutex_destroy(&r->lock);
}

ot_status ot_train_ckpt_begin(ot_train_ckpt_run *r, const ot_dataset *data, int64_t n,
                              const int64_t *map, int64_t steps_per_epoch, bool cache_bf16,
                              ot_err *err)
{
    ot_status st = OT_OK;
    const ot_train_opts *o = r->o;
    /* the moments live in the step executor's state, the step count here;
       checkpoints see them through host copies */
    const ot_train_graph *tg = r->tg;
    bool copies = o->checkpoint || o->resume;
    r->n_ostate = ot_optim_state_count(&tg->optim);
    r->ostate = ot_calloc(r->n_ostate, sizeof *r->ostate);
    r->ostate_id = ot_calloc(r->n_ostate + 1, sizeof *r->ostate_id);
    if (!r->ostate || !r->ostate_id)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < r->n_ostate; i++) {
        int32_t id;
        ot_optim_state_describe(tg->step, &tg->optim, o->optim.kind, i, &r->ostate[i], &id);
        r->ostate_id[i] = id;
        if (id < 0) {
            r->ostate[i].data = &r->ostep;
            continue;
        }
        size_t bytes = ot_exec_state_bytes(r->step, id);
        if (!bytes)
            OT_FAIL(err, OT_ERR_INTERNAL, "no executor state for '%s'", r->ostate[i].name);
        if (copies && !(r->ostate[i].data = ot_malloc(bytes)))
            OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    }
    r->ck.steps_per_epoch = steps_per_epoch;
    r->ck.epochs = o->epochs;
    ot_comm *comm = ot_dist_current();
    if (o->checkpoint || o->resume || (comm && comm->size > 1)) { /* ranks compare them */
        r->ck.format = OT_CKPT_FORMAT;
        r->ck.model_hash = o->model_hash;
        r->ck.n_images = n;
        r->ck.n_classes = ot_data_n_classes(data);
        OT_TRY(ot_train_hash_data(data, &r->ck.data_hash, err));
        /* which images train (--val-split, --skip-bad, ...) and which validate */
        uint64_t train_hash = OT_HASH_INIT;
        for (int64_t k = 0; k < n; k++) {
            int64_t i = map ? map[k] : k;
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
        r->ck.options = options_text(r, train_hash, val, cache_bf16);
        r->ck.params = params_text(r->model, r->tg);
        if (!r->ck.options || !r->ck.params)
            OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    }
    r->ck.history = ot_calloc((size_t)o->epochs + 1, sizeof *r->ck.history);
    if (!r->ck.history)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
done:
    return st;
}

ot_status ot_train_ckpt_keep_best(ot_train_ckpt_run *r, ot_err *err)
{
    pthread_mutex_lock(&r->lock);
    ot_status st = alloc_best(r, err);
    for (int i = 0; st == OT_OK && i < r->tg->n_params + r->tg->n_stats; i++) {
        const ot_value *v = ot_train_ckpt_best_value(r, i);
        memcpy(r->best[i], v->data.data, v->data.bytes);
    }
    pthread_mutex_unlock(&r->lock);
    return st;
}

bool ot_train_ckpt_restore_best(ot_train_ckpt_run *r)
{
    if (!r->best)
        return false;
    for (int i = 0; i < r->tg->n_params + r->tg->n_stats; i++) {
        ot_value *v = &r->model->values[i < r->tg->n_params ? r->tg->params[i]
                                                             : r->tg->stats[i - r->tg->n_params]];
        memcpy(v->data.data, r->best[i], v->data.bytes);
    }
    return true;
}
