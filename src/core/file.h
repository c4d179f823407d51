/*
 * file.h: opening input files without ever waiting, and writing output files
 * so that they are never seen half-written.
 *
 * Inputs: ot_file_open_read refuses anything but a regular file (a FIFO, a
 * socket, a device, a folder) before reading a byte, and never blocks in
 * open(2) waiting for a FIFO's writer. Every reader of a named file uses it.
 *
 * Outputs: the bytes go to "<target>.tmp.<pid>.<n>" in the target's folder,
 * are flushed and synced, and the temporary file is renamed over the target
 * only when all went well. On any failure the temporary file is removed and
 * the target is left as it was. The target is `path`, or the regular file a
 * symbolic link at `path` names (the link stays). A target that exists and is
 * not a regular file is never renamed over: a character device (/dev/null) or
 * a FIFO with a reader (/dev/stdout in a pipe) is written directly, without a
 * temporary file; a folder, a socket, a block device and a FIFO without a
 * reader are refused. A new file gets mode 0666 less the umask; a replaced
 * file keeps its permission bits.
 *
 * Temporary names carry the writer's process id. Opening a target first
 * removes the temporary files of that target whose writer is gone (killed
 * before it could clean up); those of live processes are never touched. The
 * temporary files of this process are listed in a small table that
 * ot_atomic_remove_temps (async-signal-safe) unlinks, so that a stop signal
 * leaves none behind. This table is the one piece of mutable global state of
 * this module.
 */
#ifndef OT_CORE_FILE_H
#define OT_CORE_FILE_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>

#include "core.h"

typedef struct ot_atomic_file {
    FILE *f;          /* write here between open and commit                  */
    char *tmp;        /* the temporary name (owned); NULL when direct        */
    char *target;     /* what the rename replaces (owned)                    */
    const char *path; /* borrowed; must live until commit or abort           */
    int slot;         /* entry in the signal clean-up table, or -1           */
    bool direct;      /* writing straight to a device or FIFO                */
    bool finished;    /* closed and synced, waiting for ot_atomic_rename     */
} ot_atomic_file;

/* Opens `path` for reading: refuses what is not a regular file without
   waiting (a FIFO has no writer to wait for: the open is non-blocking and
   the type is checked before any read). On success *fd_out is a blocking
   descriptor the caller closes, and *sb_out (if not NULL) its fstat. Errors:
   OT_ERR_IO "PATH: cannot open: REASON", "PATH: is a folder, not a regular file",
   "PATH: is not a regular file (a FIFO)" (or socket, device). */
ot_status ot_file_open_read(const char *path, int *fd_out, struct stat *sb_out, ot_err *err);

/* The same, as a stdio stream ("rb") the caller fcloses. */
ot_status ot_file_fopen_read(const char *path, FILE **out, struct stat *sb_out, ot_err *err);

/* True when `a` and `b` both exist and are the same file (same device and
   inode: the same path, a hard link or a symbolic link to it). */
bool ot_file_same(const char *a, const char *b);

/* True when `path` exists and is not a regular file (after symbolic links):
   a device or FIFO that ot_atomic_open would write directly. */
bool ot_file_is_special(const char *path);

/* Creates the temporary file, or opens a device or FIFO target for a direct
   write (see above). Errors: OT_ERR_IO naming `path` ("is a folder", "is not
   a regular file (a socket)", "no process is reading the FIFO", "cannot
   create: REASON"), OT_ERR_NOMEM. On failure *af needs no abort. */
ot_status ot_atomic_open(ot_atomic_file *af, const char *path, ot_err *err);

/* Flushes, syncs and closes, without renaming yet; `write_errno` (non-zero
   when the caller's writes failed) turns it into an abort with that error.
   Used to write several files and then rename them together. Errors:
   OT_ERR_IO naming `path`; on error the temporary file is gone. */
ot_status ot_atomic_finish(ot_atomic_file *af, int write_errno, ot_err *err);

/* Renames a finished temporary file into place (nothing for a direct
   write). Errors: OT_ERR_IO naming `path`; the temporary file is then gone. */
ot_status ot_atomic_rename(ot_atomic_file *af, ot_err *err);

/* ot_atomic_finish, then ot_atomic_rename. Afterwards *af is closed either
   way. */
ot_status ot_atomic_commit(ot_atomic_file *af, int write_errno, ot_err *err);

/* Closes and removes the temporary file if still there. Safe after commit. */
void ot_atomic_abort(ot_atomic_file *af);

/* Writes data[0 .. len) to `path` atomically. */
ot_status ot_atomic_write(const char *path, const void *data, size_t len, ot_err *err);

/* Removes the stale temporary files of `target`: "<target>.tmp.<pid>.<n>"
   whose process is gone. ot_atomic_open does this itself. Never fails. */
void ot_atomic_clean(const char *target);

/* True when `suffix` is the tail ".tmp.<pid>.<n>" of a temporary name whose
   writer is gone (not this process, and no process with that id exists). */
bool ot_atomic_temp_is_stale(const char *suffix);

/* Unlinks every temporary file this process has open. Async-signal-safe:
   for signal handlers that then end the process. */
void ot_atomic_remove_temps(void);

#endif
