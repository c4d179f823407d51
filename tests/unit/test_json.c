/*
 * test_json.c: the CLI's JSON through jansson (src/cli/json.c): string
 * values that are valid JSON whatever the bytes, NaN and infinities written
 * as null, failures carried to the root, the printed layout (one line,
 * members in the order added), and the file reader (byte-order mark,
 * duplicate names, the byte of an error, what strict JSON refuses).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/json.h"
#include "test.h"

/* What ot_json_write makes of v (malloc'ed), v released; NULL on failure. */
static char *written(json_t *v)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        json_decref(v);
        return NULL;
    }
    bool ok = ot_json_write(f, v);
    fclose(f);
    json_decref(v);
    if (!ok) {
        free(buf);
        return NULL;
    }
    return buf;
}

TEST(json_text_is_valid_utf8)
{
    json_t *v = ot_json_text("r\xc3\xa9snet");
    CHECK(json_is_string(v) && strcmp(json_string_value(v), "r\xc3\xa9snet") == 0);
    json_decref(v);
    /* a lone continuation byte, a truncated sequence, an overlong '/' */
    v = ot_json_text("a\x80" "b\xe2\x82" "c\xc0\xaf");
    CHECK(json_is_string(v));
    CHECK_STR(json_string_value(v), "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd"
                                    "c\xef\xbf\xbd\xef\xbf\xbd");
    json_decref(v);
    v = ot_json_text(NULL);
    CHECK(json_is_null(v));
    json_decref(v);

    /* the written document reads back, control characters escaped */
    json_t *o = ot_json_set(json_object(), "name", ot_json_text("x\xff\n\"y\""));
    char *text = written(o);
    CHECK(text);
    json_error_t je;
    json_t *back = json_loads(text, 0, &je);
    free(text);
    CHECK(back);
    CHECK_STR(json_string_value(json_object_get(back, "name")), "x\xef\xbf\xbd\n\"y\"");
    json_decref(back);
}

TEST(json_nonfinite_is_null)
{
    json_t *o = json_object();
    o = ot_json_set(o, "nan", ot_json_real(NAN));
    o = ot_json_set(o, "inf", ot_json_real(INFINITY));
    o = ot_json_set(o, "ninf", ot_json_real(-INFINITY));
    o = ot_json_set(o, "half", ot_json_real(0.5));
    o = ot_json_set(o, "third", ot_json_real(1.0 / 3.0));
    char *text = written(o);
    CHECK(text);
    bool ok = strcmp(text, "{\"nan\": null, \"inf\": null, \"ninf\": null, \"half\": 0.5, "
                           "\"third\": 0.333333333}\n") == 0;
    if (!ok)
        fprintf(stderr, "  written: %s", text);
    free(text);
    CHECK(ok);
}

TEST(json_layout_and_order)
{
    json_t *o = json_object();
    o = ot_json_set(o, "z", json_integer(1));
    o = ot_json_set(o, "a", ot_json_push(ot_json_push(json_array(), json_integer(2)),
                                         json_integer(-3)));
    o = ot_json_set(o, "m", json_object());
    char *text = written(o);
    CHECK(text);
    bool ok = strcmp(text, "{\"z\": 1, \"a\": [2, -3], \"m\": {}}\n") == 0;
    if (!ok)
        fprintf(stderr, "  written: %s", text);
    free(text);
    CHECK(ok);
    text = written(json_array());
    CHECK(text && strcmp(text, "[]\n") == 0);
    free(text);
}

TEST(json_failure_reaches_the_root)
{
    /* a NULL value (out of memory) releases the container and gives NULL */
    json_t *o = ot_json_set(json_object(), "a", json_integer(1));
    CHECK(o);
    o = ot_json_set(o, "b", NULL);
    CHECK(o == NULL);
    o = ot_json_set(o, "c", json_integer(3)); /* released, still NULL */
    CHECK(o == NULL);
    json_t *a = ot_json_push(json_array(), NULL);
    CHECK(a == NULL);
    CHECK(ot_json_push(NULL, json_string("x")) == NULL);
    /* a key that is not UTF-8 is refused by jansson: a failure, not a crash */
    CHECK(ot_json_set(json_object(), "\xff", json_null()) == NULL);
}

TEST(json_get_int)
{
    int64_t n = 0;
    json_t *v = json_integer(7);
    CHECK(ot_json_get_int(v, &n) && n == 7);
    json_decref(v);
    v = json_real(7.0);
    CHECK(ot_json_get_int(v, &n) && n == 7);
    json_decref(v);
    v = json_real(7.5);
    CHECK(!ot_json_get_int(v, &n));
    json_decref(v);
    v = json_real(1e300);
    CHECK(!ot_json_get_int(v, &n));
    json_decref(v);
    v = json_string("7");
    CHECK(!ot_json_get_int(v, &n));
    json_decref(v);
    CHECK(!ot_json_get_int(NULL, &n));
}

/* Writes text to a file in the scratch folder; its path in buf. */
static bool put(char *buf, size_t size, const char *text, size_t len)
{
    snprintf(buf, size, "%s/json_test.json", ot_test_tmpdir());
    FILE *f = fopen(buf, "wb");
    if (!f)
        return false;
    bool ok = fwrite(text, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

/* True when the file holding `text` is refused as OT_ERR_PARSE with a
   message "PATH: byte N: ..." that contains `fragment`. */
static bool refused(const char *text, size_t len, const char *fragment)
{
    char path[512];
    if (!put(path, sizeof path, text, len))
        return false;
    json_t *v = (json_t *)1;
    ot_err err;
    ot_err_init(&err);
    ot_status st = ot_json_load_file(path, &v, &err);
    bool ok = st == OT_ERR_PARSE && v == NULL && strstr(err.msg, path) == err.msg &&
              strstr(err.msg, ": byte ") && (!fragment || strstr(err.msg, fragment));
    if (!ok)
        fprintf(stderr, "  not refused as expected: %d \"%s\"\n", (int)st, err.msg);
    if (st == OT_OK)
        json_decref(v);
    return ok;
}

#define REFUSED(lit, fragment) refused(lit, sizeof(lit) - 1, fragment)

TEST(json_read_file)
{
    char path[512];
    const char doc[] = "\xef\xbb\xbf{\"models\": [{\"name\": \"m\", \"opset\": 7}]}\n";
    CHECK(put(path, sizeof path, doc, sizeof doc - 1));
    json_t *v;
    ot_err err;
    ot_err_init(&err);
    CHECK_OK(ot_json_load_file(path, &v, &err), &err);
    int64_t opset;
    CHECK(ot_json_get_int(
        json_object_get(json_array_get(json_object_get(v, "models"), 0), "opset"), &opset));
    CHECK_EQ_INT(opset, 7);
    json_decref(v);

    /* the byte of the error, counted from 0: the '}' after a trailing comma */
    CHECK(REFUSED("{\"models\": [\n  {\"name\": \"a\", \"opset\": 7,}\n]}\n", "byte 40:"));
    CHECK(REFUSED("{\"models\": [}", "byte 12:"));
    CHECK(REFUSED("{\"a\": 1, \"a\": 2}", NULL));          /* a name given twice */
    CHECK(REFUSED("{\"a\": \"x\\u0000y\"}", NULL));       /* NUL in a string    */
    CHECK(REFUSED("{\"a\": \"\\ud800\"}", NULL));         /* a lone surrogate   */
    CHECK(REFUSED("{\"a\": \"\xff\"}", NULL));            /* not UTF-8          */
    CHECK(REFUSED("{\"a\": \"x\ny\"}", NULL));            /* raw control char   */
    CHECK(REFUSED("{\"a\": 1e999}", NULL));               /* not a finite double */
    CHECK(REFUSED("{\"a\": NaN}", NULL));
    CHECK(REFUSED("{\"a\": 1} x", NULL));                 /* after the value    */
    CHECK(REFUSED("{\"a\": [1,]}", NULL));                /* trailing comma     */
    CHECK(REFUSED("{\"a\": 1 /* c */}", NULL));           /* comments           */
    CHECK(REFUSED("", NULL));
    CHECK(REFUSED("{\"a\": \"x\0\"}", NULL));             /* a NUL byte         */

    remove(path);
    ot_err_init(&err);
    v = (json_t *)1;
    CHECK(ot_json_load_file(path, &v, &err) == OT_ERR_IO && !v);
    CHECK(strstr(err.msg, path));
}
