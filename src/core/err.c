/*
 * err.c: error records, assertions and the log router.
 *
 * Messages are single lines; ot_err_prefix adds context on the way up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

void ot_err_init(ot_err *err)
{
    if (!err)
        return;
    err->code = OT_OK;
    err->msg[0] = '\0';
}

/* Replaces control characters so that a message stays on one line. */
static void flatten(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = ' ';
}

ot_status ot_err_set(ot_err *err, ot_status code, const char *fmt, ...)
{
    if (!err)
        return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    flatten(err->msg);
    err->code = code;
    return code;
}

void ot_err_prefix(ot_err *err, const char *fmt, ...)
{
    if (!err)
        return;
    char head[OT_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    char tmp[2 * OT_ERR_MSG_MAX + 4];
    snprintf(tmp, sizeof tmp, "%s: %s", head, err->msg);
    size_t n = strlen(tmp);
    if (n >= sizeof err->msg)
        n = sizeof err->msg - 1;
    memcpy(err->msg, tmp, n);
    err->msg[n] = '\0';
    flatten(err->msg);
}

void ot_assert_fail(const char *file, int line, const char *cond)
{
    fprintf(stderr, "onnxtrain: internal error: %s:%d: assertion failed: %s\n", file, line, cond);
    abort();
}

const char *ot_status_str(ot_status s)
{
    switch (s) {
    case OT_OK: return "ok";
    case OT_ERR_NOMEM: return "out of memory";
    case OT_ERR_IO: return "i/o error";
    case OT_ERR_ARG: return "invalid argument";
    case OT_ERR_SHAPE: return "shape error";
    case OT_ERR_BACKEND: return "backend error";
    case OT_ERR_INTERNAL: return "internal error";
    case OT_ERR_PARSE: return "parse error";
    case OT_ERR_MODEL: return "invalid model";
    case OT_ERR_UNSUPPORTED: return "unsupported";
    }
    return "unknown status";
}

const char *ot_version(void) { return OT_VERSION_STRING; }

/* The log callback is one of the few globals: set once by the program. */
static ot_log_fn log_fn;
static void *log_user;
static ot_log_level log_max = OT_LOG_WARN;

void ot_log_set(ot_log_fn fn, void *user, ot_log_level max_level)
{
    log_fn = fn;
    log_user = user;
    log_max = max_level;
}

bool ot_log_enabled(ot_log_level level) { return log_fn && level <= log_max; }

void ot_log(ot_log_level level, const char *fmt, ...)
{
    if (!ot_log_enabled(level))
        return;
    char msg[OT_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    flatten(msg);
    log_fn(level, msg, log_user);
}
