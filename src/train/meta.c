/*
 * meta.c: preprocessing and class names in metadata_props (see meta.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meta.h"
#include "train/layout.h"

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

/* Appends `name` to out (at *at) as a JSON string: quote and backslash
   escaped, control characters as \n, \t, \r or \u00XX, everything else
   (valid UTF-8) as is. out must hold 6 bytes per input byte plus 2. */
static void json_string(char *out, size_t *at, const char *name)
{
    static const char hex[] = "0123456789abcdef";
    size_t k = *at;
    out[k++] = '"';
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (*p == '"' || *p == '\\') {
            out[k++] = '\\';
            out[k++] = (char)*p;
        } else if (*p == '\n' || *p == '\t' || *p == '\r') {
            out[k++] = '\\';
            out[k++] = *p == '\n' ? 'n' : *p == '\t' ? 't' : 'r';
        } else if (*p < 0x20 || *p == 0x7f) {
            memcpy(out + k, "\\u00", 4);
            k += 4;
            out[k++] = hex[*p >> 4];
            out[k++] = hex[*p & 15];
        } else {
            out[k++] = (char)*p;
        }
    }
    out[k++] = '"';
    *at = k;
}

ot_status ot_train_meta_set_classes(ot_graph *g, const char *const *classes, int n_classes,
                                    ot_err *err)
{
    ot_status st = OT_OK;
    char *names = NULL;
    OT_TRY(ot_names_check(classes, n_classes, OT_ERR_ARG, "class names", err));
    size_t len = 3, l;
    for (int i = 0; i < n_classes; i++)
        if (!ot_size_mul(strlen(classes[i]), 6, &l) || !ot_size_add(len, l + 3, &len))
            OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    names = ot_malloc(len);
    if (!names)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    size_t at = 0;
    names[at++] = '[';
    for (int i = 0; i < n_classes; i++) {
        if (i)
            names[at++] = ',';
        json_string(names, &at, classes[i]);
    }
    names[at++] = ']';
    names[at] = '\0';
    OT_TRY(set_meta(g, "onnxtrain.classes", names, err));
done:
    ot_free(names);
    return st;
}

/* Whether the image input (the first that is not an initializer) is NHWC. */
static bool image_nhwc(const ot_graph *g)
{
    for (int32_t i = 0; i < g->n_inputs; i++) {
        int32_t v = g->inputs[i].value;
        if (!(g->values[v].flags & OT_VAL_INIT))
            return ot_image_layout_find(g, v).nhwc;
    }
    return false;
}

ot_status ot_train_meta_write(ot_graph *g, const ot_data_transform *t, const char *const *classes,
                              int n_classes, ot_err *err)
{
    ot_status st = OT_OK;
    char buf[128];
    snprintf(buf, sizeof buf, "%d", t->size);
    OT_TRY(set_meta(g, "onnxtrain.image_size", buf, err));
    fmt3(buf, sizeof buf, t->mean);
    OT_TRY(set_meta(g, "onnxtrain.mean", buf, err));
    fmt3(buf, sizeof buf, t->std);
    OT_TRY(set_meta(g, "onnxtrain.std", buf, err));
    OT_TRY(set_meta(g, "onnxtrain.channel_order", "RGB", err));
    OT_TRY(set_meta(g, "onnxtrain.layout", image_nhwc(g) ? "NHWC" : "NCHW", err));
    if (classes && n_classes > 0)
        OT_TRY(ot_train_meta_set_classes(g, classes, n_classes, err));
done:
    return st;
}

/* ------------------------------------------------------------ class names */

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Four hex digits at p, or -1. */
static long hex4(const char *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

static size_t utf8_put(unsigned long cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

/* Parses the JSON array of strings at text into names (pointers into buf,
   which has room for strlen(text) + 1 bytes; names for strlen(text) entries).
   Returns the count, or -1 with *why set. */
static int parse_json_names(const char *text, char *buf, char **names, const char **why)
{
    const char *p = skip_ws(text);
    int n = 0;
    char *o = buf;
    if (*p++ != '[') {
        *why = "expected '['";
        return -1;
    }
    p = skip_ws(p);
    if (*p == ']')
        return *skip_ws(p + 1) ? (*why = "text after the array", -1) : 0;
    for (;;) {
        if (*p++ != '"') {
            *why = "expected a string";
            return -1;
        }
        names[n++] = o;
        for (;;) {
            unsigned char c = (unsigned char)*p;
            if (c == '"') {
                p++;
                break;
            }
            if (c == '\0') {
                *why = "unterminated string";
                return -1;
            }
            if (c < 0x20) {
                *why = "raw control character in a string";
                return -1;
            }
            if (c != '\\') {
                *o++ = (char)c;
                p++;
                continue;
            }
            p++;
            char e = *p++;
            switch (e) {
            case '"': case '\\': case '/': *o++ = e; break;
            case 'b': *o++ = '\b'; break;
            case 'f': *o++ = '\f'; break;
            case 'n': *o++ = '\n'; break;
            case 'r': *o++ = '\r'; break;
            case 't': *o++ = '\t'; break;
            case 'u': {
                long cp = hex4(p);
                if (cp < 0) {
                    *why = "bad \\u escape";
                    return -1;
                }
                p += 4;
                if (cp >= 0xd800 && cp <= 0xdbff && p[0] == '\\' && p[1] == 'u') {
                    long lo = hex4(p + 2);
                    if (lo >= 0xdc00 && lo <= 0xdfff) {
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                        p += 6;
                    }
                }
                if (cp == 0 || (cp >= 0xd800 && cp <= 0xdfff)) {
                    *why = cp ? "unpaired surrogate escape" : "\\u0000 in a name";
                    return -1;
                }
                o += utf8_put((unsigned long)cp, o);
                break;
            }
            default:
                *why = "bad escape";
                return -1;
            }
        }
        *o++ = '\0';
        p = skip_ws(p);
        if (*p == ',') {
            p = skip_ws(p + 1);
            continue;
        }
        if (*p++ != ']') {
            *why = "expected ',' or ']'";
            return -1;
        }
        if (*skip_ws(p)) {
            *why = "text after the array";
            return -1;
        }
        return n;
    }
}

ot_status ot_train_meta_classes(const ot_graph *g, char ***out, int *n_out, ot_err *err)
{
    ot_status st = OT_OK;
    char **names = NULL;
    *out = NULL;
    *n_out = 0;
    const char *text = ot_graph_meta(g, "onnxtrain.classes");
    if (!text)
        return OT_OK;
    size_t len = strlen(text), ptr_bytes, total;
    /* at most len + 1 names; their bytes never outgrow the text */
    if (!ot_size_mul(len + 1, sizeof *names, &ptr_bytes) ||
        !ot_size_add(ptr_bytes, len + 1, &total) || !(names = ot_malloc(total)))
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory for the class names");
    char *buf = (char *)(names + len + 1);
    int n = 0;
    if (*skip_ws(text) == '[') {
        const char *why = NULL;
        n = parse_json_names(text, buf, names, &why);
        if (n < 0)
            OT_FAIL(err, OT_ERR_MODEL, "metadata 'onnxtrain.classes' is not a JSON array of "
                                       "strings: %s", why);
    } else { /* files of earlier versions: names joined by newlines, no escaping */
        memcpy(buf, text, len + 1);
        names[n++] = buf;
        for (char *c = buf; *c; c++)
            if (*c == '\n') {
                *c = '\0';
                names[n++] = c + 1;
            }
    }
    if (n == 0)
        OT_FAIL(err, OT_ERR_MODEL, "metadata 'onnxtrain.classes' names no class");
    OT_TRY(ot_names_check((const char *const *)names, n, OT_ERR_MODEL,
                       "metadata 'onnxtrain.classes'", err));
    *out = names;
    *n_out = n;
    names = NULL;
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
    if (ms && ds && parse3(ms, m) && parse3(ds, d)) {
        bool ok = true;
        for (int c = 0; c < 3; c++)
            ok = ok && m[c] >= (float)OT_DATA_MEAN_MIN && m[c] <= (float)OT_DATA_MEAN_MAX &&
                 d[c] >= (float)OT_DATA_STD_MIN && d[c] <= (float)OT_DATA_STD_MAX;
        if (ok) {
            memcpy(t->mean, m, sizeof m);
            memcpy(t->std, d, sizeof d);
        } else {
            ot_log(OT_LOG_WARN, "model metadata: onnxtrain.mean '%s' or onnxtrain.std '%s' is "
                   "outside %g .. %g / %g .. %g; using the default normalization", ms, ds,
                   OT_DATA_MEAN_MIN, OT_DATA_MEAN_MAX, OT_DATA_STD_MIN, OT_DATA_STD_MAX);
        }
    }
    return true;
}

/* ------------------------------------------------------------ class setup */

ot_status ot_train_check_classes(const ot_dataset *data, const int64_t *idx, int64_t n_idx,
                                 int64_t n_outputs, ot_err *err)
{
    ot_status st = OT_OK;
    int nc = ot_data_n_classes(data);
    if (nc < 2)
        return ot_err_set(err, OT_ERR_ARG,
                          "the data has %d class ('%s'); classification needs at least 2", nc,
                          nc == 1 ? ot_data_class_name(data, 0) : "");
    if (n_outputs > 0 && n_outputs < 2)
        return ot_err_set(err, OT_ERR_ARG,
                          "the head has %lld output; classification needs at least 2 classes "
                          "(--classes %d)",
                          (long long)n_outputs, nc);
    if (n_outputs > 0 && n_outputs != nc)
        return ot_err_set(err, OT_ERR_ARG,
                          "the data has %d classes but the head has %lld outputs; the class names "
                          "must match the outputs one to one (use --classes %d, or --data-classes "
                          "to pick %lld classes)",
                          nc, (long long)n_outputs, nc, (long long)n_outputs);
    int64_t K = n_outputs > 0 ? n_outputs : nc;
    int64_t n = idx ? n_idx : ot_data_count(data);
    for (int64_t k = 0; k < n; k++) {
        int64_t i = idx ? idx[k] : k;
        int label;
        OT_TRY(ot_data_get(data, i, NULL, &label, err));
        if (label < 0 || label >= K)
            OT_FAIL(err, OT_ERR_ARG, "image %lld has label %d, outside the classes 0 .. %lld",
                    (long long)i, label, (long long)(K - 1));
    }
done:
    return st;
}
