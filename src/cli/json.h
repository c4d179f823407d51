/*
 * json.h: JSON for the CLI through jansson: the values of every --json
 * output, how they are printed, and the reader of its data files
 * (models/zoo_manifest.json).
 *
 * Output: strings are always valid JSON (NULL becomes null, bytes that are
 * not valid UTF-8 become U+FFFD), NaN and infinities become null, members
 * keep the order they were added in. Building never fails half-way without
 * notice: ot_json_set and ot_json_push pass a NULL (out of memory) up to the
 * root, and ot_cli_print_json reports it.
 *
 * Reading: strict RFC 8259 as jansson reads it (valid UTF-8, no \u0000, no
 * lone surrogates, numbers that fit a double, nothing after the value, at
 * most 2048 levels of nesting), a leading UTF-8 byte-order mark skipped, and
 * an object that names a member twice refused.
 */
#ifndef OT_CLI_JSON_H
#define OT_CLI_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "core/core.h"

/* ot_json_load_file refuses larger files. */
#define OT_JSON_MAX_FILE_BYTES ((size_t)64 << 20)

/* A string value of s: NULL gives null, each byte of s that does not start a
   valid UTF-8 sequence gives U+FFFD. NULL when out of memory. */
json_t *ot_json_text(const char *s);

/* A number value of v; null when v is NaN or infinite. NULL when out of
   memory. */
json_t *ot_json_real(double v);

/* ot_json_real of v rounded to `decimals` places (as "%.*f" would show it). */
json_t *ot_json_fixed(double v, int decimals);

/* Adds v (the reference is taken) to object obj under key and returns obj.
   When obj or v is NULL, or the add fails, releases both and returns NULL,
   so `obj = ot_json_set(obj, "k", v)` carries a failure to the root. */
json_t *ot_json_set(json_t *obj, const char *key, json_t *v);

/* As ot_json_set, appending v to array arr. */
json_t *ot_json_push(json_t *arr, json_t *v);

/* Writes root to f on one line (", " and ": " between items, so that a line
   tool can take the document with `tail -n 1`), then a newline. Numbers
   with 9 significant digits. False when a value could not be written (out
   of memory). */
bool ot_json_write(FILE *f, json_t *root);

/* Writes v on one line, no newline after it: for outputs that stream one
   record per line. False as ot_json_write. */
bool ot_json_write_line(FILE *f, const json_t *v);

/* ot_json_write to stdout, then releases root; NULL (a failed build) or a
   failed write prints the error line "out of memory". Returns an exit
   status. Lives in main.c with the other error lines. */
int ot_cli_print_json(json_t *root);

/* Reads the JSON file at `path` (a regular file of at most
   OT_JSON_MAX_FILE_BYTES) into *out (release with json_decref). Errors:
   OT_ERR_IO (cannot open or read, too large), OT_ERR_PARSE ("PATH: byte N:
   what", N counted from 0), OT_ERR_NOMEM. */
ot_status ot_json_load_file(const char *path, json_t **out, ot_err *err);

/* True, with *out set, when v is a number with an integral value that fits
   an int64_t (7 and 7.0 alike). */
bool ot_json_get_int(const json_t *v, int64_t *out);

#endif
