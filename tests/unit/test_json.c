/*
 * test_json.c: the CLI's JSON reader (src/cli/json.c): values of every kind,
 * string escapes (surrogate pairs, UTF-8 passed through), number grammar,
 * the depth limit, truncated documents at every length, junk, errors that
 * name the source and the byte, and a file read.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/json.h"
#include "test.h"

/* Parses a NUL-terminated text; the status. */
static ot_status parse(const char *text, ot_json **out, ot_err *err)
{
    ot_err_init(err);
    return ot_json_parse(text, strlen(text), "doc.json", out, err);
}

/* True when `text` is refused with OT_ERR_PARSE and a message containing
   `fragment` (and no tree). */
static bool refused(const char *text, const char *fragment)
{
    ot_json *v = (ot_json *)1;
    ot_err err;
    ot_status st = parse(text, &v, &err);
    bool ok = st == OT_ERR_PARSE && v == NULL && strstr(err.msg, "doc.json: byte ") == err.msg &&
              (!fragment || strstr(err.msg, fragment));
    if (!ok)
        fprintf(stderr, "  not refused as expected: %s -> %d \"%s\"\n", text, (int)st, err.msg);
    if (st == OT_OK)
        ot_json_free(v);
    return ok;
}

TEST(json_document)
{
    const char *text = " {\"a\": [1, -2.5, 3e2, true, false, null, \"s\", {}, []],\n"
                       "  \"b\": {\"c\": {\"d\": 0}}, \"empty\": \"\", \"a\": 7 } \r\n";
    ot_json *v;
    ot_err err;
    CHECK_OK(parse(text, &v, &err), &err);
    CHECK_EQ_INT(v->type, OT_JSON_OBJECT);
    CHECK_EQ_INT(v->len, 4);
    const ot_json *a = ot_json_get(v, "a"); /* the first of two "a" */
    CHECK(a && a->type == OT_JSON_ARRAY);
    CHECK_EQ_INT(a->len, 9);
    int64_t n;
    CHECK(ot_json_int(ot_json_at(a, 0), &n) && n == 1);
    CHECK(ot_json_at(a, 1)->number == -2.5);
    CHECK(!ot_json_int(ot_json_at(a, 1), &n));
    CHECK(ot_json_int(ot_json_at(a, 2), &n) && n == 300);
    CHECK(ot_json_at(a, 3)->type == OT_JSON_BOOL && ot_json_at(a, 3)->boolean);
    CHECK(ot_json_at(a, 4)->type == OT_JSON_BOOL && !ot_json_at(a, 4)->boolean);
    CHECK(ot_json_at(a, 5)->type == OT_JSON_NULL);
    CHECK_STR(ot_json_str(ot_json_at(a, 6)), "s");
    CHECK(ot_json_at(a, 7)->type == OT_JSON_OBJECT && ot_json_at(a, 7)->len == 0);
    CHECK(ot_json_at(a, 8)->type == OT_JSON_ARRAY && ot_json_at(a, 8)->len == 0);
    CHECK(ot_json_at(a, 9) == NULL);
    const ot_json *d = ot_json_get(ot_json_get(ot_json_get(v, "b"), "c"), "d");
    CHECK(ot_json_int(d, &n) && n == 0);
    CHECK_STR(ot_json_str(ot_json_get(v, "empty")), "");
    CHECK(ot_json_get(v, "missing") == NULL);
    CHECK(ot_json_get(a, "a") == NULL); /* not an object */
    CHECK(ot_json_str(a) == NULL);
    ot_json_free(v);

    /* scalars at the top level, and a byte-order mark */
    CHECK_OK(parse("42", &v, &err), &err);
    CHECK(ot_json_int(v, &n) && n == 42);
    ot_json_free(v);
    CHECK_OK(parse("\xef\xbb\xbf\"x\"", &v, &err), &err);
    CHECK_STR(ot_json_str(v), "x");
    ot_json_free(v);
    ot_json_free(NULL);
}

TEST(json_string_escapes)
{
    ot_json *v;
    ot_err err;
    CHECK_OK(parse("\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t \\u0041\\u00e9\\u20ac \\ud83d\\ude00 "
                   "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"",
                   &v, &err),
             &err);
    CHECK_STR(v->string, "q\" b\\ s/ \b\f\n\r\t A\xc3\xa9\xe2\x82\xac \xf0\x9f\x98\x80 "
                         "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    CHECK_EQ_INT(v->len, strlen(v->string));
    ot_json_free(v);
    /* keys are unescaped too */
    CHECK_OK(parse("{\"a\\u0062\": 1}", &v, &err), &err);
    CHECK(ot_json_get(v, "ab") != NULL);
    ot_json_free(v);

    CHECK(refused("\"\\x\"", "invalid escape"));
    CHECK(refused("\"\\u12g4\"", "4 hex digits"));
    CHECK(refused("\"\\u12\"", "4 hex digits"));
    CHECK(refused("\"\\ud83d\"", "unpaired high surrogate"));
    CHECK(refused("\"\\ud83d\\u0041\"", "unpaired high surrogate"));
    CHECK(refused("\"\\ude00\"", "unpaired low surrogate"));
    CHECK(refused("\"\\u0000\"", "\\u0000"));
    CHECK(refused("\"a\nb\"", "control character"));
    CHECK(refused("\"a\tb\"", "control character"));
    CHECK(refused("\"\xc3\"", "UTF-8"));          /* truncated sequence */
    CHECK(refused("\"\xc0\x80\"", "UTF-8"));      /* overlong */
    CHECK(refused("\"\xed\xa0\x80\"", "UTF-8"));  /* encoded surrogate */
    CHECK(refused("\"\xf4\x90\x80\x80\"", "UTF-8")); /* above U+10FFFF */
    CHECK(refused("\"\xff\"", "UTF-8"));
    CHECK(refused("'single'", "unexpected character"));
}

TEST(json_numbers)
{
    static const struct {
        const char *text;
        double value;
    } good[] = {
        { "0", 0 }, { "-0", 0 }, { "12", 12 }, { "-3.25", -3.25 }, { "1e3", 1000 },
        { "1E+2", 100 }, { "25e-2", 0.25 }, { "0.5", 0.5 }, { "9007199254740993", 9007199254740992.0 },
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        ot_json *v;
        ot_err err;
        CHECK_OK(parse(good[i].text, &v, &err), &err);
        CHECK(v->type == OT_JSON_NUMBER && v->number == good[i].value);
        ot_json_free(v);
    }
    static const char *const bad[] = { "01", "-", "+1", "1.", ".5", "1e", "1e+", "0x10",
                                       "1.5.2", "Infinity", "NaN", "-inf", "1e999" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(refused(bad[i], NULL));
    CHECK(refused("1e999", "out of range"));
    CHECK(refused("01", "leading zero"));
    int64_t n;
    ot_json *v;
    ot_err err;
    CHECK_OK(parse("[1e19, -9223372036854775808, 3.0]", &v, &err), &err);
    CHECK(!ot_json_int(ot_json_at(v, 0), &n));
    CHECK(ot_json_int(ot_json_at(v, 1), &n) && n == INT64_MIN);
    CHECK(ot_json_int(ot_json_at(v, 2), &n) && n == 3);
    ot_json_free(v);
}

/* "[[[...]]]" with `depth` brackets each way. */
static char *nested(int depth, char open, char close)
{
    char *s = malloc((size_t)depth * 2 + 1);
    if (!s)
        return NULL;
    memset(s, open, (size_t)depth);
    memset(s + depth, close, (size_t)depth);
    s[depth * 2] = '\0';
    return s;
}

TEST(json_depth_limit)
{
    ot_json *v;
    ot_err err;
    char *ok_text = nested(OT_JSON_MAX_DEPTH, '[', ']');
    CHECK(ok_text);
    ot_status st = parse(ok_text, &v, &err);
    free(ok_text);
    CHECK_OK(st, &err);
    ot_json_free(v);

    char *deep = nested(OT_JSON_MAX_DEPTH + 1, '[', ']');
    CHECK(deep);
    bool r = refused(deep, "nesting deeper");
    free(deep);
    CHECK(r);
    /* objects count too, and a huge depth fails as fast, without recursing */
    char *obj = malloc(OT_JSON_MAX_DEPTH * 6 + 16);
    CHECK(obj);
    char *p = obj;
    for (int i = 0; i <= OT_JSON_MAX_DEPTH; i++)
        p += sprintf(p, "{\"a\":");
    strcpy(p, "1");
    r = refused(obj, "nesting deeper");
    free(obj);
    CHECK(r);
    char *huge = nested(1000000, '[', ']');
    CHECK(huge);
    r = refused(huge, "byte 64:");
    free(huge);
    CHECK(r);
}

TEST(json_truncated)
{
    /* every proper prefix of a valid document is refused, with no leak */
    const char *text = "{\"name\": \"r\\u00e9snet\", \"shape\": [\"N\", 3, 224, -1.5e2],"
                       " \"ok\": true, \"no\": null, \"x\": {\"y\": []}}";
    size_t len = strlen(text);
    for (size_t n = 0; n < len; n++) {
        ot_json *v = (ot_json *)1;
        ot_err err;
        ot_err_init(&err);
        ot_status st = ot_json_parse(text, n, "t.json", &v, &err);
        if (st != OT_ERR_PARSE || v != NULL || !strstr(err.msg, "t.json: byte ")) {
            ot_test_fail(__FILE__, __LINE__, "prefix of %zu bytes: status %d, \"%s\"", n,
                         (int)st, err.msg);
            if (st == OT_OK)
                ot_json_free(v);
            return;
        }
    }
    ot_json *v;
    ot_err err;
    ot_err_init(&err);
    CHECK_OK(ot_json_parse(text, len, "t.json", &v, &err), &err);
    CHECK_STR(ot_json_str(ot_json_get(v, "name")), "r\xc3\xa9snet");
    ot_json_free(v);
    CHECK(refused("[1, 2", "end of input"));
    CHECK(refused("\"abc", "unterminated string"));
    CHECK(refused("", "empty document"));
    CHECK(refused("   \n", "empty document"));
}

TEST(json_junk)
{
    CHECK(refused("{} x", "after the document"));
    CHECK(refused("[1,]", "expected a value"));
    CHECK(refused("[,1]", "expected a value"));
    CHECK(refused("[1 2]", "expected ',' or ']'"));
    CHECK(refused("{\"a\" 1}", "expected ':'"));
    CHECK(refused("{\"a\": 1,}", "member name"));
    CHECK(refused("{a: 1}", "member name"));
    CHECK(refused("{\"a\": 1 \"b\": 2}", "expected ',' or '}'"));
    CHECK(refused("tru", "invalid literal"));
    CHECK(refused("nul", "invalid literal"));
    CHECK(refused("// c\n{}", "unexpected character"));
    CHECK(refused("\x01", "unexpected character"));
    /* the byte offset is the offending byte's */
    CHECK(refused("[1, 2, x]", "byte 7:"));
    CHECK(refused("{\n  \"a\": [1,\n   ]}", "byte 16:"));
    /* an embedded NUL is junk, not the end of the text */
    ot_json *v = (ot_json *)1;
    ot_err err;
    ot_err_init(&err);
    CHECK(ot_json_parse("[1]\0junk", 8, "doc.json", &v, &err) == OT_ERR_PARSE && !v);
    CHECK(strstr(err.msg, "byte 3:"));
    ot_err_init(&err);
    CHECK(ot_json_parse("\"a\0b\"", 5, "doc.json", &v, &err) == OT_ERR_PARSE);
    CHECK(strstr(err.msg, "control character"));
    /* pseudo-random bytes never crash, and a refusal leaves no tree */
    uint64_t s = 12345;
    char buf[64];
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = (size_t)(iter % 63) + 1;
        for (size_t i = 0; i < n; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            static const char alphabet[] = "[]{}\",:0123456789-+.eEtrufalsn \\u\x80\xc3";
            buf[i] = alphabet[(s >> 33) % (sizeof alphabet - 1)];
        }
        ot_err_init(&err);
        ot_status st = ot_json_parse(buf, n, "fuzz", &v, &err);
        CHECK(st == OT_OK || st == OT_ERR_PARSE);
        CHECK(st == OT_OK || v == NULL);
        ot_json_free(v);
    }
}

TEST(json_file)
{
    char path[512];
    snprintf(path, sizeof path, "%s/json_test.json", ot_test_tmpdir());
    FILE *f = fopen(path, "wb");
    CHECK(f);
    fputs("{\"models\": [{\"name\": \"m\", \"opset\": 7}]}\n", f);
    fclose(f);
    ot_json *v;
    ot_err err;
    ot_err_init(&err);
    CHECK_OK(ot_json_parse_file(path, &v, &err), &err);
    int64_t opset;
    CHECK(ot_json_int(ot_json_get(ot_json_at(ot_json_get(v, "models"), 0), "opset"), &opset));
    CHECK_EQ_INT(opset, 7);
    ot_json_free(v);

    f = fopen(path, "wb");
    CHECK(f);
    fputs("{\"models\": [}", f);
    fclose(f);
    ot_err_init(&err);
    CHECK(ot_json_parse_file(path, &v, &err) == OT_ERR_PARSE && !v);
    CHECK(strstr(err.msg, path) == err.msg && strstr(err.msg, ": byte 12:"));
    remove(path);
    ot_err_init(&err);
    CHECK(ot_json_parse_file(path, &v, &err) == OT_ERR_IO && !v);
    CHECK(strstr(err.msg, path));
}
