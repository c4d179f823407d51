/*
 * plan_store.c: the plan cache on disk (see plan_store.h for the format).
 */
#include "plan_store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/file.h"

#define HEADER "onnxtrain cudnn plan cache "
#define VERSION 1
#define MAX_FILE ((size_t)16 << 20)

bool ot_plan_key(const ot_plan_env *env, const char *what, char *key, size_t size)
{
    char name[128];
    snprintf(name, sizeof name, "%s", env->device_name ? env->device_name : "unknown");
    for (char *c = name; *c; c++)
        if (*c == ' ' || *c == '\t' || *c == '\n' || *c == '\r' || *c == '/')
            *c = '_';
    int n = snprintf(key, size, "%s/cudnn%zu/%s/sm%d%d", what, env->cudnn_version, name,
                     env->cc_major, env->cc_minor);
    if (n < 0 || (size_t)n >= size || strpbrk(what, " \t\r\n"))
        return false;
    return true;
}

bool ot_plan_store_dir(const char *dir, char *out, size_t size)
{
    int n;
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (dir && dir[0])
        n = snprintf(out, size, "%s", dir);
    else if (xdg && xdg[0] == '/')
        n = snprintf(out, size, "%s/onnxtrain", xdg);
    else if (home && home[0])
        n = snprintf(out, size, "%s/.cache/onnxtrain", home);
    else
        return false;
    return n > 0 && (size_t)n < size;
}

static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static bool file_path(const char *dir, char *out, size_t size)
{
    int n = snprintf(out, size, "%s/%s", dir, OT_PLAN_FILE);
    return n > 0 && (size_t)n < size;
}

void ot_plan_store_free(ot_plan_store *s)
{
    ot_free(s->recs);
    memset(s, 0, sizeof *s);
}

const ot_plan_rec *ot_plan_store_find(const ot_plan_store *s, const char *key)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->recs[i].key, key))
            return &s->recs[i];
    return NULL;
}

ot_status ot_plan_store_put(ot_plan_store *s, const ot_plan_rec *rec, ot_err *err)
{
    if (!rec->key[0] || strpbrk(rec->key, " \t\r\n") || rec->n_knobs < 0 ||
        rec->n_knobs > OT_PLAN_MAX_KNOBS || !memchr(rec->key, '\0', sizeof rec->key))
        return ot_err_set(err, OT_ERR_ARG, "plan cache: a record with an invalid key or knobs");
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->recs[i].key, rec->key)) {
            s->recs[i] = *rec;
            return OT_OK;
        }
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        ot_plan_rec *r = ot_realloc(s->recs, sizeof *r * (size_t)cap);
        if (!r)
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
        s->recs = r;
        s->cap = cap;
    }
    s->recs[s->n++] = *rec;
    return OT_OK;
}

/* One record line (without its newline); false when malformed. */
static bool parse_rec(const char *line, size_t len, ot_plan_rec *r)
{
    char buf[OT_PLAN_KEY_MAX + 64 * OT_PLAN_MAX_KNOBS + 128];
    if (len >= sizeof buf)
        return false;
    memcpy(buf, line, len);
    buf[len] = '\0';
    memset(r, 0, sizeof *r);
    char *sp = strchr(buf, ' ');
    if (!sp || sp == buf || (size_t)(sp - buf) >= sizeof r->key)
        return false;
    memcpy(r->key, buf, (size_t)(sp - buf));
    char *p = sp + 1, *end;
    if (strncmp(p, "engine=", 7))
        return false;
    errno = 0;
    r->engine = strtoll(p + 7, &end, 10);
    if (end == p + 7 || *end != ' ' || r->engine < 0 || errno)
        return false;
    p = end + 1;
    if (strncmp(p, "ws=", 3))
        return false;
    r->ws = strtoll(p + 3, &end, 10);
    if (end == p + 3 || *end != ' ' || r->ws < 0 || errno)
        return false;
    p = end + 1;
    if (strncmp(p, "ms=", 3))
        return false;
    r->ms = strtod(p + 3, &end);
    if (end == p + 3 || *end != ' ' || !(r->ms >= 0) || errno)
        return false;
    p = end + 1;
    if (strncmp(p, "knobs=", 6))
        return false;
    p += 6;
    if (!strcmp(p, "-"))
        return true;
    for (;;) {
        if (r->n_knobs == OT_PLAN_MAX_KNOBS)
            return false;
        int64_t t = strtoll(p, &end, 10);
        if (end == p || *end != ':' || t < 0)
            return false;
        p = end + 1;
        int64_t v = strtoll(p, &end, 10);
        if (end == p || errno)
            return false;
        r->knob_type[r->n_knobs] = t;
        r->knob_value[r->n_knobs++] = v;
        if (!*end)
            return true;
        if (*end != ',')
            return false;
        p = end + 1;
    }
}

/* Parses a whole file's bytes into *s. */
static ot_plan_file_state parse(const char *buf, size_t len, ot_plan_store *s, const char **why)
{
    size_t hl = strlen(HEADER);
    *why = "not an onnxtrain plan cache";
    const char *nl = memchr(buf, '\n', len);
    if (!nl || len < hl || memcmp(buf, HEADER, hl))
        return OT_PLAN_FILE_FOREIGN;
    char ver[16];
    size_t vl = (size_t)(nl - buf) - hl;
    if (vl == 0 || vl >= sizeof ver)
        return OT_PLAN_FILE_FOREIGN;
    memcpy(ver, buf + hl, vl);
    ver[vl] = '\0';
    if (strtol(ver, NULL, 10) != VERSION || strspn(ver, "0123456789") != vl) {
        *why = "another format version";
        return OT_PLAN_FILE_FOREIGN;
    }
    *why = "truncated or altered";
    /* the last line: "end COUNT CHECKSUM\n" over every byte before it */
    if (len < 2 || buf[len - 1] != '\n')
        return OT_PLAN_FILE_CORRUPT;
    size_t last = len - 1;
    while (last > 0 && buf[last - 1] != '\n')
        last--;
    char tail[64];
    if (len - last >= sizeof tail || memchr(buf, '\0', len))
        return OT_PLAN_FILE_CORRUPT;
    memcpy(tail, buf + last, len - last);
    tail[len - last] = '\0';
    unsigned long long sum = 0;
    int count = -1, used = 0;
    if (sscanf(tail, "end %d %16llx\n%n", &count, &sum, &used) != 2 ||
        (size_t)used != len - last || count < 0 || sum != fnv1a(buf, last))
        return OT_PLAN_FILE_CORRUPT;
    ot_err err;
    ot_err_init(&err);
    for (const char *p = nl + 1; p < buf + last;) {
        const char *e = memchr(p, '\n', (size_t)(buf + last - p));
        ot_plan_rec r;
        if (!e || !parse_rec(p, (size_t)(e - p), &r) || ot_plan_store_put(s, &r, &err) != OT_OK)
            return OT_PLAN_FILE_CORRUPT;
        p = e + 1;
    }
    if (s->n != count)
        return OT_PLAN_FILE_CORRUPT;
    return OT_PLAN_FILE_OK;
}

static ot_plan_file_state load_quiet(const char *dir, ot_plan_store *s, char *path, size_t size,
                                     const char **why)
{
    ot_plan_store_free(s);
    *why = "";
    if (!file_path(dir, path, size)) {
        *why = "path too long";
        return OT_PLAN_FILE_CORRUPT;
    }
    struct stat sb;
    if (stat(path, &sb) != 0 && errno == ENOENT)
        return OT_PLAN_FILE_MISSING;
    ot_err err;
    ot_err_init(&err);
    FILE *f = NULL;
    if (ot_file_fopen_read(path, &f, &sb, &err) != OT_OK) {
        *why = "unreadable";
        return OT_PLAN_FILE_CORRUPT;
    }
    if ((size_t)sb.st_size > MAX_FILE) {
        fclose(f);
        *why = "too large";
        return OT_PLAN_FILE_CORRUPT;
    }
    size_t len = (size_t)sb.st_size;
    char *buf = ot_malloc(len + 1);
    ot_plan_file_state fs = OT_PLAN_FILE_CORRUPT;
    *why = "unreadable";
    if (buf && fread(buf, 1, len, f) == len)
        fs = parse(buf, len, s, why);
    fclose(f);
    ot_free(buf);
    if (fs != OT_PLAN_FILE_OK)
        ot_plan_store_free(s);
    return fs;
}

ot_plan_file_state ot_plan_store_load(const char *dir, ot_plan_store *s)
{
    char path[4096];
    const char *why;
    ot_plan_file_state fs = load_quiet(dir, s, path, sizeof path, &why);
    if (fs == OT_PLAN_FILE_FOREIGN || fs == OT_PLAN_FILE_CORRUPT)
        ot_log(OT_LOG_WARN, "plan cache %s ignored: %s", path, why);
    return fs;
}

/* mkdir -p */
static ot_status make_dirs(const char *dir, ot_err *err)
{
    char p[4096];
    int n = snprintf(p, sizeof p, "%s", dir);
    if (n <= 0 || (size_t)n >= sizeof p)
        return ot_err_set(err, OT_ERR_IO, "%s: path too long", dir);
    for (char *c = p + 1;; c++) {
        if (*c == '/' || !*c) {
            char keep = *c;
            *c = '\0';
            if (mkdir(p, 0777) != 0 && errno != EEXIST)
                return ot_err_set(err, OT_ERR_IO, "%s: cannot create: %s", p, strerror(errno));
            *c = keep;
            if (!keep)
                break;
        }
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return ot_err_set(err, OT_ERR_IO, "%s: not a folder", dir);
    return OT_OK;
}

ot_status ot_plan_store_save(const ot_plan_store *s, const char *dir, ot_err *err)
{
    ot_status st = OT_OK;
    ot_plan_store all = { 0 };
    char path[4096], *buf = NULL;
    const char *why;
    size_t len = 0, cap = 0;
    OT_TRY(make_dirs(dir, err));
    /* what is there now, if it is ours; else it is replaced */
    load_quiet(dir, &all, path, sizeof path, &why);
    for (int i = 0; i < s->n; i++)
        OT_TRY(ot_plan_store_put(&all, &s->recs[i], err));
    for (int i = -1; i <= all.n; i++) {
        char line[OT_PLAN_KEY_MAX + 64 * OT_PLAN_MAX_KNOBS + 128];
        int n;
        if (i < 0) {
            n = snprintf(line, sizeof line, "%s%d\n", HEADER, VERSION);
        } else if (i == all.n) {
            n = snprintf(line, sizeof line, "end %d %016llx\n", all.n,
                         (unsigned long long)fnv1a(buf, len));
        } else {
            const ot_plan_rec *r = &all.recs[i];
            n = snprintf(line, sizeof line, "%s engine=%" PRId64 " ws=%" PRId64 " ms=%.6g knobs=",
                         r->key, r->engine, r->ws, r->ms);
            for (int k = 0; k < r->n_knobs && n > 0 && (size_t)n < sizeof line; k++)
                n += snprintf(line + n, sizeof line - (size_t)n, "%s%" PRId64 ":%" PRId64,
                              k ? "," : "", r->knob_type[k], r->knob_value[k]);
            if (n > 0 && (size_t)n < sizeof line)
                n += snprintf(line + n, sizeof line - (size_t)n, "%s\n", r->n_knobs ? "" : "-");
        }
        if (n <= 0 || (size_t)n >= sizeof line)
            OT_FAIL(err, OT_ERR_IO, "%s: a record too long", path);
        if (len + (size_t)n + 1 > cap) {
            size_t nc = 2 * (len + (size_t)n + 1) + 4096;
            char *nb = ot_realloc(buf, nc);
            if (!nb)
                OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
            buf = nb;
            cap = nc;
        }
        memcpy(buf + len, line, (size_t)n);
        len += (size_t)n;
    }
    st = ot_atomic_write(path, buf, len, err);
done:
    ot_free(buf);
    ot_plan_store_free(&all);
    return st;
}
