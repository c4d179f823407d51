/*
 * json.c: the JSON reader of json.h. A recursive-descent parser over a byte
 * range with a depth bound; each value that fails releases what it built, so
 * the caller only ever frees complete subtrees.
 */
#include "core/file.h"
#include "cli/json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    const unsigned char *start, *p, *end;
    const char *source;
    ot_err *err;
} parser;

static ot_status fail_at(parser *ps, const unsigned char *at, ot_status code, const char *what)
{
    return ot_err_set(ps->err, code, "%s: byte %zu: %s", ps->source, (size_t)(at - ps->start),
                      what);
}

static ot_status fail(parser *ps, const char *what)
{
    return fail_at(ps, ps->p, OT_ERR_PARSE, what);
}

static ot_status fail_nomem(parser *ps)
{
    return fail_at(ps, ps->p, OT_ERR_NOMEM, "out of memory");
}

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end &&
           (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

/* Releases what v owns (not v itself). */
static void value_fini(ot_json *v)
{
    if (v->type == OT_JSON_STRING) {
        free(v->string);
    } else if (v->type == OT_JSON_ARRAY || v->type == OT_JSON_OBJECT) {
        for (size_t i = 0; i < v->len; i++) {
            value_fini(&v->items[i]);
            if (v->keys)
                free(v->keys[i]);
        }
        free(v->items);
        free(v->keys);
    }
    memset(v, 0, sizeof *v);
}

/* ------------------------------------------------------------- strings */

/* Growable byte buffer for a string's decoded bytes. */
typedef struct sbuf {
    char *data;
    size_t len, cap;
} sbuf;

static bool sbuf_put(sbuf *b, const void *bytes, size_t n)
{
    if (b->cap - b->len <= n) { /* keep room for the NUL */
        size_t cap = b->cap ? b->cap : 32;
        while (cap - b->len <= n) {
            if (cap > SIZE_MAX / 2)
                return false;
            cap *= 2;
        }
        char *d = realloc(b->data, cap);
        if (!d)
            return false;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, bytes, n);
    b->len += n;
    b->data[b->len] = '\0';
    return true;
}

static int hex_val(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads the 4 hex digits after "\u" at ps->p; advances past them. */
static bool read_hex4(parser *ps, unsigned *out)
{
    if (ps->end - ps->p < 4)
        return false;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_val(ps->p[i]);
        if (h < 0)
            return false;
        v = v * 16 + (unsigned)h;
    }
    ps->p += 4;
    *out = v;
    return true;
}

static size_t utf8_encode(unsigned cp, unsigned char *o)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xc0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xe0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Parses the string whose opening quote is at ps->p into a malloc'ed C
   string (*out) of *out_len bytes. */
static ot_status parse_string(parser *ps, char **out, size_t *out_len)
{
    const unsigned char *open = ps->p;
    ps->p++; /* the quote */
    sbuf b = { 0 };
    ot_status st;
    for (;;) {
        if (ps->p >= ps->end) {
            st = fail_at(ps, open, OT_ERR_PARSE, "unterminated string");
            goto bad;
        }
        /* the run of plain bytes up to the next quote, backslash or control */
        const unsigned char *run = ps->p;
        while (ps->p < ps->end && *ps->p != '"' && *ps->p != '\\' && *ps->p >= 0x20) {
            size_t n = ot_utf8_seq(ps->p, ps->end);
            if (n == 0) {
                st = fail(ps, "invalid UTF-8 in a string");
                goto bad;
            }
            ps->p += n;
        }
        if (ps->p > run && !sbuf_put(&b, run, (size_t)(ps->p - run))) {
            st = fail_nomem(ps);
            goto bad;
        }
        if (ps->p >= ps->end)
            continue; /* reports the unterminated string */
        unsigned char c = *ps->p;
        if (c == '"') {
            ps->p++;
            break;
        }
        if (c < 0x20) {
            st = fail(ps, "control character in a string (must be escaped)");
            goto bad;
        }
        /* a backslash */
        const unsigned char *esc = ps->p;
        ps->p++;
        if (ps->p >= ps->end) {
            st = fail_at(ps, open, OT_ERR_PARSE, "unterminated string");
            goto bad;
        }
        unsigned char e = *ps->p++;
        unsigned char o[4];
        size_t on = 1;
        switch (e) {
        case '"': o[0] = '"'; break;
        case '\\': o[0] = '\\'; break;
        case '/': o[0] = '/'; break;
        case 'b': o[0] = '\b'; break;
        case 'f': o[0] = '\f'; break;
        case 'n': o[0] = '\n'; break;
        case 'r': o[0] = '\r'; break;
        case 't': o[0] = '\t'; break;
        case 'u': {
            unsigned cp;
            if (!read_hex4(ps, &cp)) {
                st = fail_at(ps, esc, OT_ERR_PARSE, "\\u must be followed by 4 hex digits");
                goto bad;
            }
            if (cp >= 0xdc00 && cp <= 0xdfff) {
                st = fail_at(ps, esc, OT_ERR_PARSE, "unpaired low surrogate escape");
                goto bad;
            }
            if (cp >= 0xd800 && cp <= 0xdbff) {
                unsigned lo;
                if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u') {
                    st = fail_at(ps, esc, OT_ERR_PARSE, "unpaired high surrogate escape");
                    goto bad;
                }
                ps->p += 2;
                if (!read_hex4(ps, &lo)) {
                    st = fail_at(ps, ps->p - 2, OT_ERR_PARSE,
                                 "\\u must be followed by 4 hex digits");
                    goto bad;
                }
                if (lo < 0xdc00 || lo > 0xdfff) {
                    st = fail_at(ps, esc, OT_ERR_PARSE, "unpaired high surrogate escape");
                    goto bad;
                }
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            if (cp == 0) {
                st = fail_at(ps, esc, OT_ERR_PARSE, "\\u0000 in a string is not supported");
                goto bad;
            }
            on = utf8_encode(cp, o);
            break;
        }
        default:
            st = fail_at(ps, esc, OT_ERR_PARSE, "invalid escape in a string");
            goto bad;
        }
        if (!sbuf_put(&b, o, on)) {
            st = fail_nomem(ps);
            goto bad;
        }
    }
    if (!b.data && !sbuf_put(&b, "", 0)) {
        st = fail_nomem(ps);
        goto bad;
    }
    *out = b.data;
    *out_len = b.len;
    return OT_OK;
bad:
    free(b.data);
    return st;
}

/* ------------------------------------------------------------- numbers */

static bool is_digit(const parser *ps)
{
    return ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9';
}

static ot_status parse_number(parser *ps, ot_json *v)
{
    const unsigned char *s = ps->p;
    if (ps->p < ps->end && *ps->p == '-')
        ps->p++;
    if (!is_digit(ps))
        return fail(ps, "invalid number: expected a digit");
    if (*ps->p == '0') {
        ps->p++;
        if (is_digit(ps))
            return fail(ps, "invalid number: leading zero");
    } else {
        while (is_digit(ps))
            ps->p++;
    }
    if (ps->p < ps->end && *ps->p == '.') {
        ps->p++;
        if (!is_digit(ps))
            return fail(ps, "invalid number: expected a digit after '.'");
        while (is_digit(ps))
            ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
            ps->p++;
        if (!is_digit(ps))
            return fail(ps, "invalid number: expected a digit in the exponent");
        while (is_digit(ps))
            ps->p++;
    }
    /* strtod wants a NUL-terminated copy; the grammar above is all it reads */
    size_t n = (size_t)(ps->p - s);
    char small[64];
    char *copy = n < sizeof small ? small : malloc(n + 1);
    if (!copy)
        return fail_nomem(ps);
    memcpy(copy, s, n);
    copy[n] = '\0';
    errno = 0;
    double d = strtod(copy, NULL);
    int overflow = errno == ERANGE && isinf(d);
    if (copy != small)
        free(copy);
    if (overflow || !isfinite(d))
        return fail_at(ps, s, OT_ERR_PARSE, "number out of range");
    v->type = OT_JSON_NUMBER;
    v->number = d;
    return OT_OK;
}

/* -------------------------------------------------------------- values */

static ot_status parse_value(parser *ps, ot_json *v, int depth);

static bool match_word(parser *ps, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, w, n) != 0)
        return false;
    ps->p += n;
    return true;
}

/* Makes room for one more element (and key, for objects). */
static bool grow(ot_json *v, size_t *cap, bool keys)
{
    if (v->len < *cap)
        return true;
    size_t nc = *cap ? *cap * 2 : 4;
    if (nc > SIZE_MAX / sizeof(ot_json))
        return false;
    ot_json *items = realloc(v->items, nc * sizeof *items);
    if (!items)
        return false;
    v->items = items;
    if (keys) {
        char **k = realloc(v->keys, nc * sizeof *k);
        if (!k)
            return false;
        v->keys = k;
    }
    *cap = nc;
    return true;
}

static ot_status parse_array(parser *ps, ot_json *v, int depth)
{
    v->type = OT_JSON_ARRAY;
    size_t cap = 0;
    ps->p++; /* [ */
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        return OT_OK;
    }
    for (;;) {
        if (!grow(v, &cap, false))
            return fail_nomem(ps);
        ot_json *item = &v->items[v->len];
        memset(item, 0, sizeof *item);
        ot_status st = parse_value(ps, item, depth + 1);
        if (st != OT_OK)
            return st;
        v->len++;
        skip_ws(ps);
        if (ps->p >= ps->end)
            return fail(ps, "unexpected end of input in an array (expected ',' or ']')");
        if (*ps->p == ']') {
            ps->p++;
            return OT_OK;
        }
        if (*ps->p != ',')
            return fail(ps, "expected ',' or ']' in an array");
        ps->p++;
    }
}

static ot_status parse_object(parser *ps, ot_json *v, int depth)
{
    v->type = OT_JSON_OBJECT;
    size_t cap = 0;
    ps->p++; /* { */
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        return OT_OK;
    }
    for (;;) {
        skip_ws(ps);
        if (ps->p >= ps->end)
            return fail(ps, "unexpected end of input in an object (expected a name)");
        if (*ps->p != '"')
            return fail(ps, "expected a string as an object member name");
        char *key;
        size_t key_len;
        ot_status st = parse_string(ps, &key, &key_len);
        if (st != OT_OK)
            return st;
        if (!grow(v, &cap, true)) {
            free(key);
            return fail_nomem(ps);
        }
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != ':') {
            free(key);
            return ps->p >= ps->end ? fail(ps, "unexpected end of input (expected ':')")
                                    : fail(ps, "expected ':' after an object member name");
        }
        ps->p++;
        ot_json *item = &v->items[v->len];
        memset(item, 0, sizeof *item);
        st = parse_value(ps, item, depth + 1);
        if (st != OT_OK) {
            free(key);
            return st;
        }
        v->keys[v->len] = key;
        v->len++;
        skip_ws(ps);
        if (ps->p >= ps->end)
            return fail(ps, "unexpected end of input in an object (expected ',' or '}')");
        if (*ps->p == '}') {
            ps->p++;
            return OT_OK;
        }
        if (*ps->p != ',')
            return fail(ps, "expected ',' or '}' in an object");
        ps->p++;
    }
}

/* Parses one value (after white space) into *v, which is zeroed. On failure
   *v is released and zeroed again. */
static ot_status parse_value(parser *ps, ot_json *v, int depth)
{
    skip_ws(ps);
    if (ps->p >= ps->end)
        return fail(ps, "unexpected end of input (expected a value)");
    ot_status st;
    switch (*ps->p) {
    case '{':
    case '[':
        if (depth >= OT_JSON_MAX_DEPTH) {
            char msg[80];
            snprintf(msg, sizeof msg, "nesting deeper than %d arrays and objects",
                     OT_JSON_MAX_DEPTH);
            return fail(ps, msg);
        }
        st = *ps->p == '{' ? parse_object(ps, v, depth) : parse_array(ps, v, depth);
        break;
    case '"':
        v->type = OT_JSON_STRING;
        st = parse_string(ps, &v->string, &v->len);
        if (st != OT_OK)
            v->type = OT_JSON_NULL;
        break;
    case 't':
    case 'f':
    case 'n':
        if (match_word(ps, "true")) {
            v->type = OT_JSON_BOOL;
            v->boolean = true;
        } else if (match_word(ps, "false")) {
            v->type = OT_JSON_BOOL;
        } else if (match_word(ps, "null")) {
            v->type = OT_JSON_NULL;
        } else {
            return fail(ps, "invalid literal (expected true, false or null)");
        }
        return OT_OK;
    default:
        if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
            return parse_number(ps, v);
        return fail(ps, "unexpected character (expected a value)");
    }
    if (st != OT_OK)
        value_fini(v);
    return st;
}

ot_status ot_json_parse(const char *text, size_t len, const char *source, ot_json **out,
                        ot_err *err)
{
    *out = NULL;
    parser ps = {
        .start = (const unsigned char *)text,
        .p = (const unsigned char *)text,
        .end = (const unsigned char *)text + len,
        .source = source ? source : "<json>",
        .err = err,
    };
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        ps.p += 3;
    skip_ws(&ps);
    if (ps.p >= ps.end)
        return fail(&ps, "empty document");
    ot_json *root = calloc(1, sizeof *root);
    if (!root)
        return fail_nomem(&ps);
    ot_status st = parse_value(&ps, root, 0);
    if (st == OT_OK) {
        skip_ws(&ps);
        if (ps.p < ps.end) {
            st = fail(&ps, "unexpected data after the document");
            value_fini(root);
        }
    }
    if (st != OT_OK) {
        free(root);
        return st;
    }
    *out = root;
    return OT_OK;
}

ot_status ot_json_parse_file(const char *path, ot_json **out, ot_err *err)
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
            if (cap >= OT_JSON_MAX_FILE_BYTES + 1) {
                st = ot_err_set(err, OT_ERR_IO, "%s: larger than %zu bytes", path,
                                OT_JSON_MAX_FILE_BYTES);
                break;
            }
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
    if (st == OT_OK)
        st = ot_json_parse(buf ? buf : "", len, path, out, err);
    free(buf);
    return st;
}

void ot_json_free(ot_json *v)
{
    if (!v)
        return;
    value_fini(v);
    free(v);
}

const ot_json *ot_json_get(const ot_json *v, const char *key)
{
    if (!v || v->type != OT_JSON_OBJECT)
        return NULL;
    for (size_t i = 0; i < v->len; i++)
        if (strcmp(v->keys[i], key) == 0)
            return &v->items[i];
    return NULL;
}

const ot_json *ot_json_at(const ot_json *v, size_t i)
{
    if (!v || v->type != OT_JSON_ARRAY || i >= v->len)
        return NULL;
    return &v->items[i];
}

const char *ot_json_str(const ot_json *v)
{
    return v && v->type == OT_JSON_STRING ? v->string : NULL;
}

bool ot_json_int(const ot_json *v, int64_t *out)
{
    if (!v || v->type != OT_JSON_NUMBER)
        return false;
    double d = v->number;
    if (d != floor(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0)
        return false;
    *out = (int64_t)d;
    return true;
}
