/*
 * json.h: a small JSON reader for the CLI's data files (models/
 * zoo_manifest.json). RFC 8259 documents into a tree of ot_json values.
 *
 * Strict: one value with optional white space around it (a leading UTF-8
 * byte-order mark is skipped), no comments, no trailing commas, strings must
 * be valid UTF-8 without raw control characters, escapes as the RFC lists
 * them (\uXXXX with surrogate pairs; lone surrogates and \u0000 are refused,
 * so every string is a C string), numbers in the RFC's grammar and finite as
 * a double. Nesting deeper than OT_JSON_MAX_DEPTH arrays and objects is
 * refused, so neither the parser nor ot_json_free recurses without bound.
 * Errors are OT_ERR_PARSE with "SOURCE: byte N: what" (N counted from 0).
 * An object may repeat a name; ot_json_get returns the first member.
 */
#ifndef OT_CLI_JSON_H
#define OT_CLI_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

#define OT_JSON_MAX_DEPTH 64
/* ot_json_parse_file refuses larger files. */
#define OT_JSON_MAX_FILE_BYTES ((size_t)64 << 20)

typedef enum ot_json_type {
    OT_JSON_NULL,
    OT_JSON_BOOL,
    OT_JSON_NUMBER,
    OT_JSON_STRING,
    OT_JSON_ARRAY,
    OT_JSON_OBJECT,
} ot_json_type;

typedef struct ot_json ot_json;
struct ot_json {
    ot_json_type type;
    bool boolean;   /* OT_JSON_BOOL                                          */
    double number;  /* OT_JSON_NUMBER                                        */
    char *string;   /* OT_JSON_STRING: UTF-8, NUL-terminated; `len` bytes    */
    size_t len;     /* string bytes, or the count of elements / members      */
    ot_json *items; /* OT_JSON_ARRAY: elements; OT_JSON_OBJECT: member values */
    char **keys;    /* OT_JSON_OBJECT: member names, parallel to items       */
};

/* Parses text[0 .. len) (need not be NUL-terminated). `source` names the
   text in error messages (a file name). On success *out owns the tree;
   release it with ot_json_free. Errors: OT_ERR_PARSE, OT_ERR_NOMEM. */
ot_status ot_json_parse(const char *text, size_t len, const char *source, ot_json **out,
                        ot_err *err);

/* Reads and parses the file at `path`. Adds OT_ERR_IO (cannot open or read,
   larger than OT_JSON_MAX_FILE_BYTES). */
ot_status ot_json_parse_file(const char *path, ot_json **out, ot_err *err);

/* Releases a tree from ot_json_parse. NULL does nothing. */
void ot_json_free(ot_json *v);

/* The value of member `key` of an object; NULL when v is NULL, not an
   object, or has no such member. */
const ot_json *ot_json_get(const ot_json *v, const char *key);

/* Element i of an array; NULL when v is not an array or i is out of range. */
const ot_json *ot_json_at(const ot_json *v, size_t i);

/* The string of a string value; NULL for anything else (NULL included). */
const char *ot_json_str(const ot_json *v);

/* True, with *out set, when v is a number with an integral value that fits
   an int64_t. */
bool ot_json_int(const ot_json *v, int64_t *out);

#endif
