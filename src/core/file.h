/*
 * file.h: writing a file so that it is never seen half-written: the bytes go
 * to "<path>.tmp.XXXXXX" in the same folder, are flushed and synced, and the
 * temporary file is renamed over `path` only when all went well. On any
 * failure the temporary file is removed and `path` is left as it was.
 */
#ifndef OT_CORE_FILE_H
#define OT_CORE_FILE_H

#include <stdio.h>

#include "core.h"

typedef struct ot_atomic_file {
    FILE *f;          /* write here between open and commit                  */
    char *tmp;        /* the temporary name (owned)                          */
    const char *path; /* borrowed; must live until commit or abort           */
} ot_atomic_file;

/* Creates the temporary file (mode 0644). Errors: OT_ERR_IO naming `path`,
   OT_ERR_NOMEM. On failure *af needs no abort. */
ot_status ot_atomic_open(ot_atomic_file *af, const char *path, ot_err *err);

/* Flushes, syncs, closes and renames into place; `write_errno` (non-zero when
   the caller's writes failed) turns it into an abort with that error.
   Errors: OT_ERR_IO naming `path`. Afterwards *af is closed either way. */
ot_status ot_atomic_commit(ot_atomic_file *af, int write_errno, ot_err *err);

/* Closes and removes the temporary file if still open. Safe after commit. */
void ot_atomic_abort(ot_atomic_file *af);

/* Writes data[0 .. len) to `path` atomically. */
ot_status ot_atomic_write(const char *path, const void *data, size_t len, ot_err *err);

#endif
