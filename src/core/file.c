/*
 * file.c: input files that are opened without waiting, and atomic output
 * files (see file.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "file.h"

/* ------------------------------------------------------------- inputs */

static const char *kind_of(mode_t m)
{
    if (S_ISFIFO(m))
        return "a FIFO";
    if (S_ISSOCK(m))
        return "a socket";
    if (S_ISCHR(m))
        return "a character device";
    if (S_ISBLK(m))
        return "a block device";
    if (S_ISLNK(m))
        return "a symbolic link";
    return "a special file";
}

static ot_status not_regular(const char *path, mode_t m, ot_err *err)
{
    if (S_ISDIR(m))
        return ot_err_set(err, OT_ERR_IO, "%s: is a folder, not a regular file", path);
    return ot_err_set(err, OT_ERR_IO, "%s: is not a regular file (%s)", path, kind_of(m));
}

ot_status ot_file_open_read(const char *path, int *fd_out, struct stat *sb_out, ot_err *err)
{
    struct stat sb;
    *fd_out = -1;
    /* stat first, so that a device is not even opened (opening some has
       side effects); fstat after the open closes the race with a rename */
    if (stat(path, &sb) != 0)
        return ot_err_set(err, OT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return not_regular(path, sb.st_mode, err);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return ot_err_set(err, OT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return ot_err_set(err, OT_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return not_regular(path, sb.st_mode, err);
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    *fd_out = fd;
    if (sb_out)
        *sb_out = sb;
    return OT_OK;
}

ot_status ot_file_fopen_read(const char *path, FILE **out, struct stat *sb_out, ot_err *err)
{
    int fd;
    *out = NULL;
    ot_status st = ot_file_open_read(path, &fd, sb_out, err);
    if (st != OT_OK)
        return st;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        int e = errno;
        close(fd);
        return ot_err_set(err, e == ENOMEM ? OT_ERR_NOMEM : OT_ERR_IO, "%s: cannot open: %s",
                          path, strerror(e));
    }
    *out = f;
    return OT_OK;
}

bool ot_file_same(const char *a, const char *b)
{
    struct stat sa, sb;
    if (!a || !b || stat(a, &sa) != 0 || stat(b, &sb) != 0)
        return false;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

bool ot_file_is_special(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && !S_ISREG(sb.st_mode);
}

/* ------------------------------------------- the temporary-file table */

/* The temporary files this process has open, for ot_atomic_remove_temps.
   A slot's name is written before `used` is set and `used` is cleared
   before the name is reused, so a handler sees whole names only. */
#define N_SLOTS 16
#define SLOT_NAME_MAX 4096

static char slot_name[N_SLOTS][SLOT_NAME_MAX];
static volatile sig_atomic_t slot_used[N_SLOTS];
static pthread_mutex_t slot_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned temp_counter; /* under slot_lock */

static int slot_add(const char *name)
{
    size_t n = strlen(name);
    if (n >= SLOT_NAME_MAX)
        return -1; /* not listed: the next write's clean-up removes it */
    int got = -1;
    pthread_mutex_lock(&slot_lock);
    for (int i = 0; i < N_SLOTS && got < 0; i++) {
        if (!slot_used[i]) {
            memcpy(slot_name[i], name, n + 1);
            __atomic_signal_fence(__ATOMIC_SEQ_CST);
            slot_used[i] = 1;
            got = i;
        }
    }
    pthread_mutex_unlock(&slot_lock);
    return got;
}

static void slot_remove(int i)
{
    if (i < 0)
        return;
    pthread_mutex_lock(&slot_lock);
    slot_used[i] = 0;
    pthread_mutex_unlock(&slot_lock);
}

void ot_atomic_remove_temps(void)
{
    for (int i = 0; i < N_SLOTS; i++)
        if (slot_used[i])
            unlink(slot_name[i]);
}

/* ------------------------------------------------- stale temporaries */

bool ot_atomic_temp_is_stale(const char *s)
{
    static const char tag[] = ".tmp.";
    if (strncmp(s, tag, sizeof tag - 1) != 0)
        return false;
    s += sizeof tag - 1;
    long pid = 0;
    const char *p = s;
    while (*p >= '0' && *p <= '9' && pid < 100000000)
        pid = pid * 10 + (*p++ - '0');
    if (p == s || *p != '.' || pid <= 0 || pid >= 100000000)
        return false;
    const char *q = ++p;
    while ((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f'))
        q++;
    if (q == p || *q)
        return false;
    if ((pid_t)pid == getpid())
        return false;
    /* EPERM: alive under another user; only ESRCH says it is gone */
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

void ot_atomic_clean(const char *target)
{
    char *dcopy = ot_strdup(target), *bcopy = ot_strdup(target);
    DIR *d = NULL;
    if (!dcopy || !bcopy)
        goto done;
    const char *dir = dirname(dcopy), *base = basename(bcopy);
    size_t bl = strlen(base);
    d = opendir(dir);
    if (!d)
        goto done;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, base, bl) != 0 || !ot_atomic_temp_is_stale(e->d_name + bl))
            continue;
        struct stat sb;
        if (fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode))
            unlinkat(dirfd(d), e->d_name, 0);
    }
done:
    if (d)
        closedir(d);
    ot_free(dcopy);
    ot_free(bcopy);
}

/* ------------------------------------------------------------ outputs */

/* Opens a device or FIFO target for writing. O_NONBLOCK makes the open of a
   FIFO without a reader fail (ENXIO) instead of waiting for one. */
static ot_status open_direct(ot_atomic_file *af, const char *path, ot_err *err)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        if (errno == ENXIO)
            return ot_err_set(err, OT_ERR_IO, "%s: no process is reading the FIFO", path);
        return ot_err_set(err, OT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !(S_ISCHR(sb.st_mode) || S_ISFIFO(sb.st_mode))) {
        close(fd);
        return ot_err_set(err, OT_ERR_IO, "%s: changed while it was opened", path);
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        int e = errno;
        close(fd);
        return ot_err_set(err, OT_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    af->direct = true;
    af->path = path;
    return OT_OK;
}

ot_status ot_atomic_open(ot_atomic_file *af, const char *path, ot_err *err)
{
    ot_status st = OT_OK;
    memset(af, 0, sizeof *af);
    af->slot = -1;
    char *target = NULL, *tmp = NULL;
    int fd = -1;
    struct stat sb, lsb;
    bool replace = false;
    if (stat(path, &sb) == 0) {
        if (S_ISDIR(sb.st_mode))
            OT_FAIL(err, OT_ERR_IO, "%s: is a folder", path);
        if (S_ISCHR(sb.st_mode) || S_ISFIFO(sb.st_mode))
            return open_direct(af, path, err);
        if (!S_ISREG(sb.st_mode))
            OT_FAIL(err, OT_ERR_IO, "%s: is not a regular file (%s); give a file name", path,
                    kind_of(sb.st_mode));
        replace = true;
    }
    /* a link to a regular file: replace the file it names and keep the link */
    if (replace && lstat(path, &lsb) == 0 && S_ISLNK(lsb.st_mode)) {
        target = realpath(path, NULL);
        if (!target)
            OT_FAIL(err, OT_ERR_IO, "%s: cannot resolve the link: %s", path, strerror(errno));
    } else {
        target = strdup(path); /* malloc'ed, like realpath's */
        if (!target)
            OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    }
    ot_atomic_clean(target);

    size_t n = strlen(target) + 48;
    tmp = ot_malloc(n);
    if (!tmp)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    for (int tries = 0; fd < 0; tries++) {
        pthread_mutex_lock(&slot_lock);
        unsigned k = ++temp_counter;
        pthread_mutex_unlock(&slot_lock);
        snprintf(tmp, n, "%s.tmp.%ld.%x", target, (long)getpid(), k);
        /* 0666 less the umask for a new file; a replaced one gets its mode
           back below (0600 until then, so nobody else can open it early) */
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                  replace ? 0600 : 0666);
        if (fd < 0 && (errno != EEXIST || tries >= 100))
            OT_FAIL(err, OT_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    }
    af->slot = slot_add(tmp);
    if (replace && fchmod(fd, sb.st_mode & 0777) != 0) {
        /* the file stays usable; its mode is then 0600 */
    }
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        int e = errno;
        close(fd);
        unlink(tmp);
        slot_remove(af->slot);
        af->slot = -1;
        OT_FAIL(err, OT_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    af->tmp = tmp;
    af->target = target;
    af->path = path;
    tmp = target = NULL;
done:
    ot_free(tmp);
    free(target);
    return st;
}

/* Forgets the temporary file: removes it when `unlink_it`. */
static void drop_temp(ot_atomic_file *af, bool unlink_it)
{
    if (!af->tmp)
        return;
    if (unlink_it)
        unlink(af->tmp);
    slot_remove(af->slot);
    af->slot = -1;
    ot_free(af->tmp);
    af->tmp = NULL;
    free(af->target);
    af->target = NULL;
}

ot_status ot_atomic_finish(ot_atomic_file *af, int write_errno, ot_err *err)
{
    int e = write_errno;
    if (!af->f)
        return af->finished ? OT_OK
                            : ot_err_set(err, OT_ERR_INTERNAL, "%s: not open", af->path);
    if (!e && fflush(af->f) != 0)
        e = errno ? errno : EIO;
    /* a device or FIFO has nothing to sync */
    if (!e && !af->direct && fsync(fileno(af->f)) != 0)
        e = errno ? errno : EIO;
    if (fclose(af->f) != 0 && !e)
        e = errno ? errno : EIO;
    af->f = NULL;
    if (e) {
        drop_temp(af, true);
        return ot_err_set(err, OT_ERR_IO, "%s: write error: %s", af->path, strerror(e));
    }
    af->finished = true;
    return OT_OK;
}

ot_status ot_atomic_rename(ot_atomic_file *af, ot_err *err)
{
    if (!af->finished)
        return ot_err_set(err, OT_ERR_INTERNAL, "%s: renamed before it was finished", af->path);
    af->finished = false;
    if (af->direct || !af->tmp)
        return OT_OK;
    if (rename(af->tmp, af->target) != 0) {
        int e = errno;
        drop_temp(af, true);
        return ot_err_set(err, OT_ERR_IO, "%s: cannot rename into place: %s", af->path,
                          strerror(e));
    }
    drop_temp(af, false);
    return OT_OK;
}

ot_status ot_atomic_commit(ot_atomic_file *af, int write_errno, ot_err *err)
{
    ot_status st = ot_atomic_finish(af, write_errno, err);
    if (st != OT_OK)
        return st;
    return ot_atomic_rename(af, err);
}

void ot_atomic_abort(ot_atomic_file *af)
{
    if (af->f)
        fclose(af->f);
    af->f = NULL;
    af->finished = false;
    drop_temp(af, true);
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
