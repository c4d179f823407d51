/*
 * json.c: the CLI's JSON through jansson (json.h): safe values, the printer
 * of --json outputs, and the file reader of the zoo manifest.
 */
#include "cli/json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/file.h"

json_t *ot_json_text(const char *s)
{
    if (!s)
        return json_null();
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s), bad = 0;
    /* the NUL fails the continuation-byte test, so no byte past it is read */
    for (size_t i = 0; i < len;) {
        size_t n = ot_utf8_seq(p + i, p + i + 4);
        bad += n == 0;
        i += n ? n : 1;
    }
    if (!bad)
        return json_stringn(s, len);
    /* U+FFFD is 3 bytes for each bad one */
    char *fixed = malloc(len + 2 * bad + 1);
    if (!fixed)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < len;) {
        size_t n = ot_utf8_seq(p + i, p + i + 4);
        if (n) {
            memcpy(fixed + k, s + i, n);
            k += n;
            i += n;
        } else {
            memcpy(fixed + k, "\xef\xbf\xbd", 3);
            k += 3;
            i++;
        }
    }
    json_t *v = json_stringn(fixed, k);
    free(fixed);
    return v;
}

json_t *ot_json_real(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

json_t *ot_json_fixed(double v, int decimals)
{
    if (!isfinite(v))
        return json_null();
    double scale = pow(10.0, decimals), r = round(v * scale) / scale;
    return json_real(isfinite(r) ? r : v);
}

json_t *ot_json_set(json_t *obj, const char *key, json_t *v)
{
    if (!obj || !v) {
        json_decref(obj);
        json_decref(v);
        return NULL;
    }
    if (json_object_set_new(obj, key, v) != 0) { /* v is released */
        json_decref(obj);
        return NULL;
    }
    return obj;
}

json_t *ot_json_push(json_t *arr, json_t *v)
{
    if (!arr || !v) {
        json_decref(arr);
        json_decref(v);
        return NULL;
    }
    if (json_array_append_new(arr, v) != 0) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

/* Nine significant digits: a float's value exactly, a double's to print. */
#define DUMP_FLAGS (JSON_ENCODE_ANY | JSON_REAL_PRECISION(9))

bool ot_json_write(FILE *f, json_t *root)
{
    bool ok = root && json_dumpf(root, f, DUMP_FLAGS) == 0;
    fputc('\n', f);
    return ok;
}

bool ot_json_write_line(FILE *f, const json_t *v)
{
    return v && json_dumpf(v, f, DUMP_FLAGS) == 0;
}

bool ot_json_get_int(const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return true;
    }
    if (!json_is_real(v))
        return false;
    double d = json_real_value(v);
    /* 2^63 itself does not fit */
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || d != floor(d))
        return false;
    *out = (int64_t)d;
    return true;
}

ot_status ot_json_load_file(const char *path, json_t **out, ot_err *err)
{
    *out = NULL;
    FILE *f;
    ot_status fst = ot_file_fopen_read(path, &f, NULL, err);
    if (fst != OT_OK)
        return fst;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    ot_status st = OT_OK;
    for (;;) {
        if (cap - len < 65536) {
            size_t nc = cap ? cap * 2 : 65536;
            if (nc > OT_JSON_MAX_FILE_BYTES + 65536)
                nc = OT_JSON_MAX_FILE_BYTES + 65536;
            char *b = realloc(buf, nc);
            if (!b) {
                st = ot_err_set(err, OT_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            buf = b;
            cap = nc;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (len > OT_JSON_MAX_FILE_BYTES) {
            st = ot_err_set(err, OT_ERR_IO, "%s: larger than %zu bytes", path,
                            OT_JSON_MAX_FILE_BYTES);
            break;
        }
        if (n == 0) {
            if (ferror(f))
                st = ot_err_set(err, OT_ERR_IO, "%s: read error", path);
            break;
        }
    }
    fclose(f);
    if (st == OT_OK) {
        size_t skip = len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
        json_error_t je;
        *out = json_loadb(buf ? buf + skip : "", len - skip, JSON_REJECT_DUPLICATES, &je);
        if (!*out) {
            /* jansson counts the bytes it read, the bad one included */
            size_t at = skip + (je.position > 0 ? (size_t)je.position - 1 : 0);
            st = ot_err_set(err, OT_ERR_PARSE, "%s: byte %zu: %s", path, at, je.text);
        }
    }
    free(buf);
    return st;
}
