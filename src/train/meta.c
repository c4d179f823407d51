/*
 * meta.c: preprocessing and class names in metadata_props (see meta.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meta.h"

const char *ot_graph_meta(const ot_graph *g, const char *key)
{
    for (int32_t i = 0; i < g->n_metadata; i++)
        if (!strcmp(g->metadata[i].key, key))
            return g->metadata[i].value;
    return NULL;
}

static ot_status set_meta(ot_graph *g, const char *key, const char *value, ot_err *err)
{
    char *v = ot_arena_strdup(&g->arena, value);
    if (!v)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < g->n_metadata; i++)
        if (!strcmp(g->metadata[i].key, key)) {
            g->metadata[i].value = v;
            return OT_OK;
        }
    ot_kv *kv = ot_arena_alloc(&g->arena, sizeof *kv * (size_t)(g->n_metadata + 1));
    char *k = ot_arena_strdup(&g->arena, key);
    if (!kv || !k)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    if (g->n_metadata)
        memcpy(kv, g->metadata, sizeof *kv * (size_t)g->n_metadata);
    kv[g->n_metadata].key = k;
    kv[g->n_metadata].value = v;
    g->metadata = kv;
    g->n_metadata++;
    return OT_OK;
}

/* The shortest decimal that reads back as the same float. */
static void fmt1(char *buf, size_t n, float v)
{
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, n, "%.*g", digits, (double)v);
        if (strtof(buf, NULL) == v)
            return;
    }
}

static void fmt3(char *buf, size_t n, const float *v)
{
    char a[32], b[32], c[32];
    fmt1(a, sizeof a, v[0]);
    fmt1(b, sizeof b, v[1]);
    fmt1(c, sizeof c, v[2]);
    snprintf(buf, n, "%s,%s,%s", a, b, c);
}

ot_status ot_train_meta_write(ot_graph *g, const ot_data_transform *t, const char *const *classes,
                              int n_classes, ot_err *err)
{
    ot_status st = OT_OK;
    char buf[128];
    char *names = NULL;
    snprintf(buf, sizeof buf, "%d", t->size);
    OT_TRY(set_meta(g, "onnxtrain.image_size", buf, err));
    fmt3(buf, sizeof buf, t->mean);
    OT_TRY(set_meta(g, "onnxtrain.mean", buf, err));
    fmt3(buf, sizeof buf, t->std);
    OT_TRY(set_meta(g, "onnxtrain.std", buf, err));
    OT_TRY(set_meta(g, "onnxtrain.channel_order", "RGB", err));
    OT_TRY(set_meta(g, "onnxtrain.layout", "NCHW", err));
    if (classes && n_classes > 0) {
        size_t len = 1;
        for (int i = 0; i < n_classes; i++)
            len += strlen(classes[i]) + 1;
        names = ot_malloc(len);
        if (!names)
            OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
        names[0] = '\0';
        size_t at = 0;
        for (int i = 0; i < n_classes; i++) {
            size_t l = strlen(classes[i]);
            memcpy(names + at, classes[i], l);
            at += l;
            if (i + 1 < n_classes)
                names[at++] = '\n';
        }
        names[at] = '\0';
        OT_TRY(set_meta(g, "onnxtrain.classes", names, err));
    }
done:
    ot_free(names);
    return st;
}

static bool parse3(const char *s, float *out)
{
    char *end;
    for (int i = 0; i < 3; i++) {
        out[i] = strtof(s, &end);
        if (end == s)
            return false;
        s = end;
        if (i < 2) {
            if (*s != ',')
                return false;
            s++;
        }
    }
    return *s == '\0';
}

bool ot_train_meta_read(const ot_graph *g, ot_data_transform *t)
{
    const char *size = ot_graph_meta(g, "onnxtrain.image_size");
    if (!size)
        return false;
    char *end;
    long s = strtol(size, &end, 10);
    if (*end || s < 1 || s > OT_DATA_MAX_SIZE)
        return false;
    t->size = (int)s;
    float m[3], d[3];
    const char *ms = ot_graph_meta(g, "onnxtrain.mean"), *ds = ot_graph_meta(g, "onnxtrain.std");
    if (ms && ds && parse3(ms, m) && parse3(ds, d) && d[0] > 0 && d[1] > 0 && d[2] > 0) {
        memcpy(t->mean, m, sizeof m);
        memcpy(t->std, d, sizeof d);
    }
    return true;
}
