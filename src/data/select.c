/*
 * select.c: a new in-memory data set made of some classes of another (their
 * labels renumbered 0..k-1 in the order given) and at most `per_class`
 * images of each, chosen by a seeded shuffle. It is how a transfer-learning
 * experiment carves "pretraining classes" and "a few labelled images of new
 * classes" out of one data set (make demo does that with Fashion-MNIST).
 *
 * CIFAR-10 and IDX data sets only (they are in memory); an image folder is
 * arranged on disk instead.
 */
#include <string.h>

#include "data.h"
#include "data_impl.h"

ot_status ot_data_select(const ot_dataset *ds, const int *classes, int n_classes,
                         int64_t per_class, uint64_t seed, ot_dataset **out, ot_err *err)
{
    ot_status st = OT_OK;
    ot_dataset *d = NULL;
    int64_t *perm = NULL;
    *out = NULL;
    if (ds->folder)
        return ot_err_set(err, OT_ERR_UNSUPPORTED,
                          "selecting classes needs an in-memory data set (CIFAR-10 or IDX); "
                          "arrange an image folder on disk instead");
    if (n_classes < 1 || n_classes > ds->n_classes)
        return ot_err_set(err, OT_ERR_ARG, "select %d classes of %d", n_classes, ds->n_classes);
    int map[OT_DATA_MAX_CLASSES];
    for (int c = 0; c < OT_DATA_MAX_CLASSES; c++)
        map[c] = -1;
    for (int k = 0; k < n_classes; k++) {
        if (classes[k] < 0 || classes[k] >= ds->n_classes)
            return ot_err_set(err, OT_ERR_ARG, "class %d is outside 0 .. %d", classes[k],
                              ds->n_classes - 1);
        if (map[classes[k]] >= 0)
            return ot_err_set(err, OT_ERR_ARG, "class %d is selected twice", classes[k]);
        map[classes[k]] = k;
    }
    perm = ot_malloc(sizeof *perm * (size_t)(ds->n + 1));
    d = ot_calloc(1, sizeof *d);
    if (!perm || !d)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    ot_arena_init(&d->arena, 4096);
    size_t img_bytes = (size_t)ds->channels * (size_t)ds->height * (size_t)ds->width;
    int64_t taken[OT_DATA_MAX_CLASSES] = { 0 }, n = 0;
    ot_data_shuffle(ds->n, seed, 0, perm);
    for (int64_t k = 0; k < ds->n; k++) {
        int c = ds->labels[(size_t)perm[k] * ds->label_stride];
        if (map[c] >= 0 && (per_class <= 0 || taken[c] < per_class)) {
            taken[c]++;
            n++;
        }
    }
    if (n == 0)
        OT_FAIL(err, OT_ERR_ARG, "the selection holds no images");
    d->buf = ot_malloc(img_bytes * (size_t)n + 1);
    d->label_buf = ot_malloc((size_t)n + 1);
    d->class_names = ot_arena_alloc(&d->arena, sizeof *d->class_names * (size_t)n_classes);
    if (!d->buf || !d->label_buf || !d->class_names)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    memset(taken, 0, sizeof taken);
    int64_t at = 0;
    /* keep the data set's own order among the chosen images */
    uint8_t *chosen = ot_calloc((size_t)ds->n + 1, 1);
    if (!chosen)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    for (int64_t k = 0; k < ds->n; k++) {
        int c = ds->labels[(size_t)perm[k] * ds->label_stride];
        if (map[c] >= 0 && (per_class <= 0 || taken[c] < per_class)) {
            taken[c]++;
            chosen[perm[k]] = 1;
        }
    }
    for (int64_t i = 0; i < ds->n; i++) {
        if (!chosen[i])
            continue;
        memcpy(d->buf + (size_t)at * img_bytes, ds->images + (size_t)i * ds->image_stride,
               img_bytes);
        d->label_buf[at] = (uint8_t)map[ds->labels[(size_t)i * ds->label_stride]];
        at++;
    }
    ot_free(chosen);
    for (int k = 0; k < n_classes; k++)
        d->class_names[k] = ds->class_names[classes[k]];
    d->format = ds->format;
    d->n = n;
    d->height = ds->height;
    d->width = ds->width;
    d->channels = ds->channels;
    d->images = d->buf;
    d->image_stride = img_bytes;
    d->labels = d->label_buf;
    d->label_stride = 1;
    d->n_classes = n_classes;
    /* class names point into the source's arena: keep copies of our own */
    for (int k = 0; k < n_classes; k++) {
        d->class_names[k] = ot_arena_strdup(&d->arena, d->class_names[k]);
        if (!d->class_names[k])
            OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    }
    *out = d;
    d = NULL;
done:
    ot_data_free(d);
    ot_free(perm);
    return st;
}
