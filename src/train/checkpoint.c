/*
 * checkpoint.c: training checkpoints as ONNX files (see checkpoint.h and
 * docs/checkpoint.md): save onto a clone of the model graph, load and parse
 * the metadata, compare fingerprints, restore tensors, strip for export.
 *
 * Numbers in the metadata are decimal; doubles are written with 17
 * significant digits, which read back as the same double, so a resumed run
 * reports the same running loss as an uninterrupted one.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "onnx/onnx.h"

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
    FILE *f = fopen(path, "rb");
    if (!f)
        return ot_err_set(err, OT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
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
        ot_status st = ot_data_get(ds, i, &img, &label, err);
        if (st != OT_OK)
            return st;
        h = hash_u64(h, (uint64_t)i);
        h = hash_u64(h, (uint64_t)label);
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
    ck->options = ck->params = NULL;
}

/* ------------------------------------------------------------------ save */

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
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

/* Adds one optimizer state tensor as an initializer that no node reads. */
static ot_status add_state_init(ot_graph *g, const ot_optim_state *s, ot_err *err)
{
    ot_status st = OT_OK;
    char name[128];
    snprintf(name, sizeof name, "%s%s", OT_CKPT_OPTIM_PREFIX, s->name);
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

ot_status ot_train_checkpoint_save(const ot_graph *model, ot_optim *opt,
                                   const ot_train_checkpoint *ck,
                                   ot_train_checkpoint_prepare prepare, void *user,
                                   const char *path, ot_err *err)
{
    ot_status st = OT_OK;
    ot_graph *g = NULL;
    int32_t meta_cap = 0;
    size_t n_state = opt ? ot_optim_state_count(opt) : 0;
    OT_TRY(ot_graph_clone(model, &g, err));
    OT_TRY(own_arrays(g, (int32_t)n_state, &meta_cap, err));
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
    for (size_t i = 0; i < n_state; i++) {
        ot_optim_state s;
        OT_TRY(ot_optim_state_get(opt, i, &s, err));
        OT_TRY(add_state_init(g, &s, err));
    }

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
#undef SET
    /* inline: one file, so that the rename replaces the whole checkpoint at once */
    ot_export_opts eo = { .placement = OT_DATA_INLINE };
    OT_TRY(ot_model_export(g, path, &eo, err));
done:
    if (st != OT_OK)
        ot_err_prefix(err, "checkpoint %s", path);
    ot_graph_free(g);
    return st;
}

/* ------------------------------------------------------------------ load */

static const char *meta_get(const ot_graph *g, const char *key)
{
    for (int32_t i = 0; i < g->n_metadata; i++)
        if (!strcmp(g->metadata[i].key, key))
            return g->metadata[i].value;
    return NULL;
}

static bool read_i64(const ot_graph *g, const char *key, int64_t lo, int64_t *out)
{
    const char *s = meta_get(g, key);
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end || errno || v < lo)
        return false;
    *out = v;
    return true;
}

static bool read_hex(const ot_graph *g, const char *key, uint64_t *out)
{
    const char *s = meta_get(g, key);
    if (!s || strlen(s) != 16)
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 16);
    if (*end || errno)
        return false;
    *out = v;
    return true;
}

static bool read_f64(const ot_graph *g, const char *key, double *out)
{
    const char *s = meta_get(g, key);
    if (!s || !*s)
        return false;
    char *end;
    *out = strtod(s, &end);
    return *end == '\0';
}

ot_status ot_train_checkpoint_load(const char *path, ot_graph **graph, ot_train_checkpoint *ck,
                                   ot_err *err)
{
    ot_status st = OT_OK;
    ot_graph *g = NULL;
    memset(ck, 0, sizeof *ck);
    *graph = NULL;
    OT_TRY(ot_onnx_import_file(path, NULL, &g, err));
    if (ot_graph_check_finite(g, err) != OT_OK) {
        st = err->code;
        ot_err_prefix(err, "%s", path);
        goto done;
    }
    int64_t v;
    if (!read_i64(g, OT_CKPT_META_PREFIX "format", 1, &v))
        OT_FAIL(err, OT_ERR_PARSE,
                "%s: not an onnxtrain checkpoint (no metadata '" OT_CKPT_META_PREFIX "format')",
                path);
    if (v > OT_CKPT_FORMAT)
        OT_FAIL(err, OT_ERR_PARSE,
                "%s: checkpoint format %lld is newer than this onnxtrain reads (%d)", path,
                (long long)v, OT_CKPT_FORMAT);
    ck->format = (int)v;
    const char *bad = NULL;
    int64_t images = 0, classes = 0, epoch = 0, epochs = 0;
#define NEED(cond, key)                                                                         \
    if (!bad && !(cond))                                                                        \
    bad = OT_CKPT_META_PREFIX key
    NEED(read_hex(g, OT_CKPT_META_PREFIX "model", &ck->model_hash), "model");
    NEED(read_hex(g, OT_CKPT_META_PREFIX "data", &ck->data_hash), "data");
    NEED(read_i64(g, OT_CKPT_META_PREFIX "images", 0, &images), "images");
    NEED(read_i64(g, OT_CKPT_META_PREFIX "classes", 0, &classes) && classes <= INT32_MAX,
         "classes");
    NEED(meta_get(g, OT_CKPT_META_PREFIX "options"), "options");
    NEED(meta_get(g, OT_CKPT_META_PREFIX "params"), "params");
    NEED(read_i64(g, OT_CKPT_META_PREFIX "step", 0, &ck->step), "step");
    NEED(read_i64(g, OT_CKPT_META_PREFIX "epoch", 0, &epoch) && epoch <= INT32_MAX, "epoch");
    NEED(read_i64(g, OT_CKPT_META_PREFIX "steps_per_epoch", 1, &ck->steps_per_epoch),
         "steps_per_epoch");
    NEED(read_i64(g, OT_CKPT_META_PREFIX "epoch_step", 0, &ck->epoch_step) &&
             ck->epoch_step < ck->steps_per_epoch,
         "epoch_step");
    NEED(read_i64(g, OT_CKPT_META_PREFIX "epochs", 0, &epochs) && epochs <= INT32_MAX, "epochs");
    NEED(read_f64(g, OT_CKPT_META_PREFIX "epoch_loss_sum", &ck->epoch_loss_sum),
         "epoch_loss_sum");
    NEED(read_i64(g, OT_CKPT_META_PREFIX "epoch_correct", 0, &ck->epoch_correct),
         "epoch_correct");
    NEED(read_i64(g, OT_CKPT_META_PREFIX "epoch_seen", 0, &ck->epoch_seen) &&
             ck->epoch_correct <= ck->epoch_seen,
         "epoch_seen");
    NEED(read_f64(g, OT_CKPT_META_PREFIX "last_loss", &ck->last_loss), "last_loss");
    NEED(read_f64(g, OT_CKPT_META_PREFIX "last_accuracy", &ck->last_accuracy), "last_accuracy");
#undef NEED
    if (bad)
        OT_FAIL(err, OT_ERR_PARSE, "%s: checkpoint metadata '%s' is missing or malformed", path,
                bad);
    ck->n_images = images;
    ck->n_classes = (int)classes;
    ck->epoch = (int)epoch;
    ck->epochs = (int)epochs;
    ck->options = ot_strdup(meta_get(g, OT_CKPT_META_PREFIX "options"));
    ck->params = ot_strdup(meta_get(g, OT_CKPT_META_PREFIX "params"));
    if (!ck->options || !ck->params)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    *graph = g;
    g = NULL;
done:
    if (st != OT_OK)
        ot_train_checkpoint_fini(ck);
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
static bool opt_diff(const char *now, const char *saved, char *out, size_t n)
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
                    snprintf(out, n, "%.*s is %s%.*s%s here, %s%.*s%s in the checkpoint",
                             (int)key_len, p, vnow ? "'" : "", vnow ? (int)lnow : 6,
                             vnow ? vnow : "absent", vnow ? "'" : "", vsaved ? "'" : "",
                             vsaved ? (int)lsaved : 6, vsaved ? vsaved : "absent",
                             vsaved ? "'" : "");
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
                 sizeof diff))
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

ot_status ot_train_checkpoint_restore_optim(const ot_graph *ckg, ot_optim *opt, ot_err *err)
{
    ot_status st = OT_OK;
    size_t n = ot_optim_state_count(opt);
    for (size_t i = 0; i < n; i++) {
        ot_optim_state s;
        OT_TRY(ot_optim_state_get(opt, i, &s, err));
        char name[128];
        snprintf(name, sizeof name, "%s%s", OT_CKPT_OPTIM_PREFIX, s.name);
        OT_TRY(ot_train_checkpoint_tensor(ckg, name, s.dtype, s.data,
                                          s.numel * ot_dtype_size(s.dtype), err));
    }
done:
    return st;
}

/* ----------------------------------------------------------------- strip */

static bool is_state_value(const ot_graph *g, int32_t id)
{
    return has_prefix(g->values[id].name, OT_CKPT_OPTIM_PREFIX);
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
