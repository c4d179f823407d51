/*
 * prefix_cache.c: the frozen-prefix cache (see prefix_cache.h). Record i
 * lies at i * rec_total, its cut values one after the other, in host
 * memory or the file; in a store (exec_store.c) when on a device.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "prefix_cache.h"

void ot_train_cache_init(ot_train_cache *c)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

/* Where the records live: memory within the budget, else an unlinked file. */
static ot_status place_records(ot_train_cache *c, size_t total, size_t max_rec, uint64_t budget,
                               const char *dir, ot_err *err)
{
    if (total <= (budget ? budget : (2ull << 30))) {
        c->mem = ot_malloc(total ? total : 1);
        if (c->mem)
            return OT_OK;
    }
    if (max_rec && !(c->rec_tmp = ot_malloc(max_rec)))
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    if (!dir)
        dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char path[4096];
    snprintf(path, sizeof path, "%s/onnxtrain-cache-XXXXXX", dir);
    c->fd = mkstemp(path);
    if (c->fd < 0)
        return ot_err_set(err, OT_ERR_IO, "cannot create the prefix cache under %s: %s", dir,
                          strerror(errno));
    unlink(path); /* the file disappears with the process */
    ot_log(OT_LOG_INFO, "prefix cache: %zu bytes in a file under %s", total, dir);
    return OT_OK;
}

ot_cache_place ot_train_cache_place(const ot_cache_place_in *in, const char **why)
{
    const char *w_;
    if (!why)
        why = &w_;
    uint64_t budget = in->host_budget ? in->host_budget : (2ull << 30);
    if (!in->device) {
        *why = "the executors compute in host memory";
        return OT_CACHE_HOST;
    }
    uint64_t margin = in->dev_total / 16;
    if (margin < OT_CACHE_DEVICE_MARGIN_MIN)
        margin = OT_CACHE_DEVICE_MARGIN_MIN;
    /* need + reserve + margin <= free, without overflow */
    uint64_t room = in->dev_free;
    bool fits = room >= margin && room - margin >= in->reserve &&
                room - margin - in->reserve >= in->need;
    if (fits) {
        *why = "it fits the device's free memory beside the run's";
        return OT_CACHE_DEVICE;
    }
    if (in->need <= budget) {
        *why = "the device's free memory is needed by the run";
        return OT_CACHE_PINNED;
    }
    *why = "larger than the device's free memory and the host memory budget";
    return OT_CACHE_HOST;
}

/* The records in a store of dev->x where ot_train_cache_place (or
   dev->force) says; a device store that cannot be had falls back to pinned
   memory, that to the host (c->store stays NULL). */
static ot_status place_on_device(ot_train_cache *c, int64_t n_images, size_t total,
                                 uint64_t budget, const ot_train_cache_dev *dev, ot_err *err)
{
    size_t f = 0, t = 0;
    ot_cache_place_in in = { .need = total, .reserve = dev->reserve, .host_budget = budget };
    in.device = ot_exec_mem_info(dev->x, &f, &t);
    in.dev_free = f;
    in.dev_total = t;
    c->place = ot_train_cache_place(&in, &c->place_why);
    if (dev->force && *dev->force) {
        if (!strcmp(dev->force, "device"))
            c->place = OT_CACHE_DEVICE;
        else if (!strcmp(dev->force, "pinned"))
            c->place = OT_CACHE_PINNED;
        else if (!strcmp(dev->force, "host"))
            c->place = OT_CACHE_HOST;
        else
            return ot_err_set(err, OT_ERR_ARG,
                              "ONNXTRAIN_CACHE_PLACE: '%s' is not device, pinned or host",
                              dev->force);
        c->place_why = "ONNXTRAIN_CACHE_PLACE";
    }
    while (c->place != OT_CACHE_HOST) {
        ot_err e;
        ot_err_init(&e);
        ot_status st = ot_exec_store_open(dev->x,
                                          c->place == OT_CACHE_DEVICE ? OT_STORE_DEVICE
                                                                      : OT_STORE_PINNED,
                                          c->cut_bytes, c->rec_bf16, c->n_cut, n_images,
                                          &c->store, &e);
        if (st == OT_OK)
            return OT_OK;
        if (st != OT_ERR_NOMEM)
            return ot_err_set(err, st, "%s", e.msg);
        c->place = c->place == OT_CACHE_DEVICE && total <= (budget ? budget : (2ull << 30))
                       ? OT_CACHE_PINNED
                       : OT_CACHE_HOST;
        c->place_why = "the memory could not be had";
        ot_log(OT_LOG_INFO, "prefix cache: %s; in %s instead", e.msg,
               c->place == OT_CACHE_PINNED ? "pinned host memory" : "host memory or a file");
    }
    return OT_OK;
}

ot_status ot_train_cache_open(ot_train_cache *c, const ot_tensor *cut, int n_cut, int batch,
                              int64_t n_images, bool bf16, uint64_t budget, const char *dir,
                              const ot_train_cache_dev *dev, ot_err *err)
{
    c->n_cut = n_cut;
    c->cut_bytes = ot_calloc((size_t)n_cut + 1, sizeof *c->cut_bytes);
    c->cut_buf = ot_calloc((size_t)n_cut + 1, sizeof *c->cut_buf);
    c->rec_bytes = ot_calloc((size_t)n_cut + 1, sizeof *c->rec_bytes);
    c->rec_bf16 = ot_calloc((size_t)n_cut + 1, sizeof *c->rec_bf16);
    if (!c->cut_bytes || !c->cut_buf || !c->rec_bytes || !c->rec_bf16)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    size_t max_rec = 0;
    for (int k = 0; k < n_cut; k++) {
        /* only float values can be kept as bfloat16 */
        c->cut_bytes[k] = cut[k].bytes / (size_t)batch;
        c->rec_bf16[k] = bf16 && cut[k].dtype == OT_DTYPE_FLOAT;
        c->rec_bytes[k] = c->rec_bf16[k] ? c->cut_bytes[k] / 2 : c->cut_bytes[k];
        c->rec_total += c->rec_bytes[k];
        c->bf16 |= c->rec_bf16[k];
        if (c->rec_bf16[k] && c->rec_bytes[k] > max_rec)
            max_rec = c->rec_bytes[k];
    }
    size_t total;
    if (!ot_size_mul((size_t)n_images, c->rec_total, &total))
        return OT_OK;
    c->cached = ot_calloc((size_t)n_images + 1, 1);
    if (!c->cached)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    c->bytes = total;
    ot_status st = dev && dev->x ? place_on_device(c, n_images, total, budget, dev, err) : OT_OK;
    if (st == OT_OK && !c->store)
        st = place_records(c, total, max_rec, budget, dir, err);
    if (st != OT_OK)
        return st;
    c->on = true;
    for (int k = 0; k < n_cut; k++)
        if (!(c->cut_buf[k] = ot_malloc(c->cut_bytes[k] * (size_t)batch + 1)))
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    return OT_OK;
}

ot_status ot_train_cache_io(ot_train_cache *c, int64_t i, int cut, void *buf, bool write,
                            ot_err *err)
{
    size_t off = (size_t)i * c->rec_total;
    for (int k = 0; k < cut; k++)
        off += c->rec_bytes[k];
    size_t n = c->rec_bytes[cut];
    bool bf = c->rec_bf16[cut];
    float *f = buf;
    uint16_t *h = c->mem ? (uint16_t *)(void *)(c->mem + off) : c->rec_tmp;
    if (bf && write)
        for (size_t k = 0; k < n / 2; k++)
            h[k] = ot_f32_to_bf16(f[k]);
    if (c->mem) {
        if (!bf)
            memcpy(write ? c->mem + off : buf, write ? buf : c->mem + off, n);
    } else {
        void *rec = bf ? (void *)c->rec_tmp : buf;
        ssize_t r = write ? pwrite(c->fd, rec, n, (off_t)off) : pread(c->fd, rec, n, (off_t)off);
        if (r != (ssize_t)n)
            return ot_err_set(err, OT_ERR_IO, "prefix cache file: %s",
                              r < 0 ? strerror(errno) : "short read or write");
    }
    if (bf && !write)
        for (size_t k = 0; k < n / 2; k++)
            f[k] = ot_bf16_to_f32(h[k]);
    return OT_OK;
}

/* Rounds n floats to the nearest bfloat16 in place (what the cache keeps). */
static void round_bf16(float *p, size_t n)
{
#pragma omp parallel for if (n >= 65536)
    for (size_t i = 0; i < n; i++)
        p[i] = ot_bf16_to_f32(ot_f32_to_bf16(p[i]));
}

void ot_train_cache_round(const ot_train_cache *c, int cut, float *p, int n)
{
    if (c->rec_bf16 && c->rec_bf16[cut])
        round_bf16(p, c->cut_bytes[cut] / sizeof(float) * (size_t)n);
}

bool ot_train_cache_has(const ot_train_cache *c, const int64_t *idx, int n)
{
    bool all = c->on;
    for (int i = 0; i < n && all; i++)
        all = c->cached[idx[i]] != 0;
    return all;
}

const char *ot_train_cache_where(const ot_train_cache *c)
{
    return c->store ? (c->place == OT_CACHE_DEVICE ? "device memory" : "pinned host memory")
           : c->mem ? "host memory"
                    : "a file";
}

void ot_train_cache_fini(ot_train_cache *c)
{
    ot_exec_store_free(c->store);
    for (int k = 0; c->cut_buf && k < c->n_cut; k++)
        ot_free(c->cut_buf[k]);
    ot_free(c->cut_buf);
    ot_free(c->cut_bytes);
    ot_free(c->mem);
    if (c->fd >= 0)
        close(c->fd);
    ot_free(c->cached);
    ot_free(c->rec_bytes);
    ot_free(c->rec_bf16);
    ot_free(c->rec_tmp);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}
