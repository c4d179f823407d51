/*
 * file.c: atomic file writes (see file.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"

ot_status ot_atomic_open(ot_atomic_file *af, const char *path, ot_err *err)
{
    memset(af, 0, sizeof *af);
    size_t n = strlen(path) + sizeof ".tmp.XXXXXX";
    char *tmp = ot_malloc(n);
    if (!tmp)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    snprintf(tmp, n, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        ot_free(tmp);
        return ot_err_set(err, OT_ERR_IO, "%s: cannot create: %s", path, strerror(e));
    }
    if (fchmod(fd, 0644) != 0) {
        /* permissions are cosmetic here; the file stays usable */
    }
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        int e = errno;
        close(fd);
        unlink(tmp);
        ot_free(tmp);
        return ot_err_set(err, OT_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    af->f = f;
    af->tmp = tmp;
    af->path = path;
    return OT_OK;
}

ot_status ot_atomic_commit(ot_atomic_file *af, int write_errno, ot_err *err)
{
    int e = write_errno;
    if (!e && (fflush(af->f) != 0 || fsync(fileno(af->f)) != 0))
        e = errno ? errno : EIO;
    if (fclose(af->f) != 0 && !e)
        e = errno ? errno : EIO;
    af->f = NULL;
    if (!e && rename(af->tmp, af->path) != 0) {
        e = errno;
        unlink(af->tmp);
        ot_free(af->tmp);
        af->tmp = NULL;
        return ot_err_set(err, OT_ERR_IO, "%s: cannot rename into place: %s", af->path,
                          strerror(e));
    }
    if (e) {
        unlink(af->tmp);
        ot_free(af->tmp);
        af->tmp = NULL;
        return ot_err_set(err, OT_ERR_IO, "%s: write error: %s", af->path, strerror(e));
    }
    ot_free(af->tmp);
    af->tmp = NULL;
    return OT_OK;
}

void ot_atomic_abort(ot_atomic_file *af)
{
    if (af->f)
        fclose(af->f);
    af->f = NULL;
    if (af->tmp) {
        unlink(af->tmp);
        ot_free(af->tmp);
        af->tmp = NULL;
    }
}

ot_status ot_atomic_write(const char *path, const void *data, size_t len, ot_err *err)
{
    ot_atomic_file af;
    ot_status st = ot_atomic_open(&af, path, err);
    if (st != OT_OK)
        return st;
    int e = 0;
    if (len && fwrite(data, 1, len, af.f) != len)
        e = errno ? errno : EIO;
    return ot_atomic_commit(&af, e, err);
}
