/*
 * idx.c: IDX files as MNIST and Fashion-MNIST ship them
 * (http://yann.lecun.com/exdb/mnist/), plain or gzip'd.
 *
 * An IDX file is a 4-byte magic (0, 0, type, number of dims), one big-endian
 * uint32 per dim, then the items. We read type 0x08 (unsigned byte) only:
 * images with 3 dims (N, H, W), labels with 1 dim (N). zlib's gz* functions
 * read gzip'd and plain files alike. The header's claim is checked before
 * anything is allocated for it: a plain file must hold exactly the announced
 * bytes, a gzip'd one no more than OT_DATA_GZIP_MAX_RATIO times its size
 * (deflate cannot expand more), and images plus labels must fit the data
 * memory limit (ot_data_opts.max_bytes). Buffers then grow only as bytes
 * actually arrive, and never past the claim, so a gzip bomb costs at most the
 * limit.
 *
 * Not supported: other item types, colour IDX images (4 dims).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/file.h"
#include "data/data_impl.h"

#define IDX_TYPE_UBYTE 0x08
#define IDX_FIRST_CHUNK ((size_t)16 << 20) /* bytes allocated before any arrive */
#define IDX_READ_CHUNK ((size_t)1 << 30)   /* gzread takes an unsigned int     */

static const char *const fashion_names[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot",
};
static const char *const digit_names[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};

/* ---------------------------------------------------------------- finding */

/* Copies src into dst with the first `from` replaced by `to`; false when
   `from` does not occur or the result does not fit. */
static bool replace_once(char *dst, size_t cap, const char *src, const char *from, const char *to)
{
    const char *at = strstr(src, from);
    if (!at)
        return false;
    int w = snprintf(dst, cap, "%.*s%s%s", (int)(at - src), src, to, at + strlen(from));
    return w >= 0 && (size_t)w < cap;
}

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && strcmp(s + n - m, tail) == 0;
}

/* Finds `path` as given, or with ".gz" added or removed; writes the one that
   exists to out. */
static bool find_gz_variant(const char *path, char *out, size_t cap)
{
    char alt[OT_DATA_PATH_MAX];
    int w;
    if (ot_data_is_file(path)) {
        w = snprintf(out, cap, "%s", path);
        return w >= 0 && (size_t)w < cap;
    }
    if (ends_with(path, ".gz"))
        w = snprintf(alt, sizeof alt, "%.*s", (int)(strlen(path) - 3), path);
    else
        w = snprintf(alt, sizeof alt, "%s.gz", path);
    if (w < 0 || (size_t)w >= sizeof alt || !ot_data_is_file(alt))
        return false;
    w = snprintf(out, cap, "%s", alt);
    return w >= 0 && (size_t)w < cap;
}

/* The labels file that belongs to images file `images`. */
static bool labels_for(const char *images, char *labels, size_t cap, char *why, size_t why_cap)
{
    char want[OT_DATA_PATH_MAX];
    const char *base = ot_data_basename(images);
    size_t dir_len = (size_t)(base - images);
    int w = snprintf(want, sizeof want, "%.*s", (int)dir_len, images);
    bool ok = w >= 0 && (size_t)w < sizeof want &&
              (replace_once(want + dir_len, sizeof want - dir_len, base, "images-idx3",
                            "labels-idx1") ||
               replace_once(want + dir_len, sizeof want - dir_len, base, "images.idx3",
                            "labels.idx1"));
    if (!ok) {
        if (why)
            snprintf(why, why_cap,
                     "%s: cannot name its labels file: an IDX images file is named "
                     "*images-idx3-ubyte[.gz] and its labels *labels-idx1-ubyte[.gz]",
                     images);
        return false;
    }
    if (find_gz_variant(want, labels, cap))
        return true;
    if (why)
        snprintf(why, why_cap, "%s: labels file %s[.gz] is missing", images, want);
    return false;
}

/* The images file of a split inside an IDX folder. */
static bool images_in_dir(const char *dir, ot_data_split split, char *images, size_t cap)
{
    static const char *const forms[] = {"-images-idx3-ubyte", "-images.idx3-ubyte"};
    const char *prefix = split == OT_DATA_TRAIN ? "train" : "t10k";
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        char name[64], path[OT_DATA_PATH_MAX];
        snprintf(name, sizeof name, "%s%s", prefix, forms[i]);
        if (ot_data_path_join(path, sizeof path, dir, name) && find_gz_variant(path, images, cap))
            return true;
    }
    return false;
}

bool ot_data_idx_detect(const char *path)
{
    char images[OT_DATA_PATH_MAX];
    return ot_data_is_dir(path) && (images_in_dir(path, OT_DATA_TRAIN, images, sizeof images) ||
                                    images_in_dir(path, OT_DATA_TEST, images, sizeof images));
}

bool ot_data_idx_find(const char *path, ot_data_split split, char *images, char *labels,
                      size_t cap, char *why, size_t why_cap)
{
    const char *split_name = split == OT_DATA_TRAIN ? "train" : "test";
    if (ot_data_is_dir(path)) {
        if (!images_in_dir(path, split, images, cap)) {
            if (why)
                snprintf(why, why_cap, "%s: IDX folder has no %s split (no %s-images-idx3-ubyte[.gz])",
                         path, split_name, split == OT_DATA_TRAIN ? "train" : "t10k");
            return false;
        }
        return labels_for(images, labels, cap, why, why_cap);
    }
    if (!ot_data_is_file(path)) {
        if (why)
            snprintf(why, why_cap, "%s: no such file or folder", path);
        return false;
    }
    /* An images file: a train-/t10k- prefix names the split's sibling. */
    const char *base = ot_data_basename(path);
    size_t dir_len = (size_t)(base - path);
    const char *rest = NULL;
    if (strncmp(base, "train-", 6) == 0)
        rest = base + 6;
    else if (strncmp(base, "t10k-", 5) == 0)
        rest = base + 5;
    if (!rest) {
        if (split == OT_DATA_TEST) {
            if (why)
                snprintf(why, why_cap,
                         "%s: no test split (only files named train-* and t10k-* pair up)", path);
            return false;
        }
        int w = snprintf(images, cap, "%s", path);
        if (w < 0 || (size_t)w >= cap)
            return false;
    } else {
        char want[OT_DATA_PATH_MAX];
        int w = snprintf(want, sizeof want, "%.*s%s-%s", (int)dir_len, path,
                         split == OT_DATA_TRAIN ? "train" : "t10k", rest);
        if (w < 0 || (size_t)w >= sizeof want || !find_gz_variant(want, images, cap)) {
            if (why)
                snprintf(why, why_cap, "%s: no %s split (%s[.gz] is missing)", path, split_name,
                         w >= 0 && (size_t)w < sizeof want ? want : "path too long");
            return false;
        }
    }
    return labels_for(images, labels, cap, why, why_cap);
}

/* ---------------------------------------------------------------- reading */

/* Reads up to `want` bytes; *got says how many arrived before the end of the
   file. A read error (corrupt or truncated gzip stream) is OT_ERR_PARSE. */
static ot_status gz_read(gzFile gz, const char *path, uint8_t *dst, size_t want, size_t *got,
                         ot_err *err)
{
    *got = 0;
    while (*got < want) {
        size_t ask = want - *got;
        if (ask > IDX_READ_CHUNK)
            ask = IDX_READ_CHUNK;
        int r = gzread(gz, dst + *got, (unsigned)ask);
        if (r < 0) {
            int code = 0;
            const char *msg = gzerror(gz, &code);
            if (code == Z_ERRNO)
                return ot_err_set(err, OT_ERR_IO, "%s: read error: %s", path, strerror(errno));
            return ot_err_set(err, OT_ERR_PARSE, "%s: corrupt gzip data after %zu bytes: %s",
                              path, (size_t)gztell(gz), msg ? msg : "?");
        }
        if (r == 0)
            break;
        *got += (size_t)r;
    }
    return OT_OK;
}

/* What an IDX file holds: n items of item_bytes each, in data (owned). */
typedef struct {
    uint32_t dims[3];
    size_t n, item_bytes;
    uint8_t *data;
} idx_file;

/* Reads an IDX file of unsigned bytes with `ndims` dims (1: labels, 3: images),
   whose items may take at most `budget` bytes of memory. */
static ot_status read_idx(const char *path, int ndims, const char *what, uint64_t budget,
                          idx_file *f, ot_err *err)
{
    ot_status st = OT_OK;
    uint8_t head[4 + 4 * 3];
    size_t got = 0;
    memset(f, 0, sizeof *f);
    gzFile gz = NULL;
    int fd = -1;
    OT_TRY(ot_file_open_read(path, &fd, NULL, err));
    gz = gzdopen(fd, "rb");
    if (!gz) {
        close(fd);
        OT_FAIL(err, OT_ERR_NOMEM, "%s: cannot open: out of memory", path);
    }
    gzbuffer(gz, 1 << 17);

    size_t head_bytes = 4 + 4 * (size_t)ndims;
    OT_TRY(gz_read(gz, path, head, 4, &got, err));
    if (got < 4)
        OT_FAIL(err, OT_ERR_PARSE, "%s: truncated IDX header: %zu of %zu bytes", path, got,
                head_bytes);
    if (head[0] != 0 || head[1] != 0 || head[2] != IDX_TYPE_UBYTE || head[3] != ndims)
        OT_FAIL(err, OT_ERR_PARSE,
                "%s: wrong IDX magic 0x%02x%02x%02x%02x, expected 0x000008%02x (%s: unsigned "
                "bytes, %d dims)",
                path, head[0], head[1], head[2], head[3], ndims, what, ndims);
    OT_TRY(gz_read(gz, path, head + 4, head_bytes - 4, &got, err));
    if (got < head_bytes - 4)
        OT_FAIL(err, OT_ERR_PARSE, "%s: truncated IDX header: %zu of %zu bytes", path, 4 + got,
                head_bytes);
    f->item_bytes = 1;
    for (int d = 0; d < ndims; d++) {
        const uint8_t *p = head + 4 + 4 * d;
        f->dims[d] = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (d > 0) {
            if (f->dims[d] == 0 || f->dims[d] > OT_DATA_MAX_SIDE)
                OT_FAIL(err, OT_ERR_PARSE, "%s: image side %u is outside 1 .. %d", path,
                        f->dims[d], OT_DATA_MAX_SIDE);
            f->item_bytes *= f->dims[d];
        }
    }
    f->n = f->dims[0];
    if (f->n == 0)
        OT_FAIL(err, OT_ERR_PARSE, "%s: holds no %s", path, what);
    size_t total;
    if (!ot_size_mul(f->n, f->item_bytes, &total))
        OT_FAIL(err, OT_ERR_PARSE, "%s: %zu %s of %zu bytes overflow", path, f->n, what,
                f->item_bytes);

    /* Is the claim possible for this file, and affordable? */
    struct stat sb;
    if (stat(path, &sb) != 0)
        OT_FAIL(err, OT_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    uint64_t file_bytes = sb.st_size > (off_t)head_bytes ? (uint64_t)sb.st_size : head_bytes;
    if (gzdirect(gz)) {
        if (file_bytes < head_bytes + (uint64_t)total)
            OT_FAIL(err, OT_ERR_PARSE,
                    "%s: truncated at record %llu of %zu: the header promises %zu data bytes, "
                    "the file holds %llu",
                    path, (unsigned long long)((file_bytes - head_bytes) / f->item_bytes), f->n,
                    total, (unsigned long long)(file_bytes - head_bytes));
        if (file_bytes > head_bytes + (uint64_t)total)
            OT_FAIL(err, OT_ERR_PARSE, "%s: bytes follow the %zu %s that the header announces",
                    path, f->n, what);
    } else if ((uint64_t)total / OT_DATA_GZIP_MAX_RATIO > file_bytes) {
        OT_FAIL(err, OT_ERR_PARSE,
                "%s: the header promises %zu %s (%zu bytes), more than a gzip file of %llu "
                "bytes can hold (deflate expands at most %d:1)",
                path, f->n, what, total, (unsigned long long)file_bytes,
                OT_DATA_GZIP_MAX_RATIO);
    }
    if ((uint64_t)total > budget)
        OT_FAIL(err, OT_ERR_ARG,
                "%s: %zu %s of %zu bytes need %zu bytes, over what is left of the data memory "
                "limit (%llu bytes; raise it with --max-data-size)",
                path, f->n, what, f->item_bytes, total, (unsigned long long)budget);

    /* Grow the buffer as data arrives. */
    size_t cap = total < IDX_FIRST_CHUNK ? total : IDX_FIRST_CHUNK, have = 0;
    f->data = ot_malloc(cap);
    if (!f->data)
        OT_FAIL(err, OT_ERR_NOMEM, "%s: out of memory", path);
    for (;;) {
        OT_TRY(gz_read(gz, path, f->data + have, cap - have, &got, err));
        have += got;
        if (have < cap || cap == total)
            break;
        size_t next = cap > total / 2 ? total : cap * 2;
        uint8_t *grown = ot_realloc(f->data, next);
        if (!grown)
            OT_FAIL(err, OT_ERR_NOMEM, "%s: out of memory for %zu bytes", path, next);
        f->data = grown;
        cap = next;
    }
    if (have < total)
        OT_FAIL(err, OT_ERR_PARSE,
                "%s: truncated at record %zu of %zu: the header promises %zu data bytes, the "
                "file holds %zu",
                path, have / f->item_bytes, f->n, total, have);
    uint8_t extra;
    OT_TRY(gz_read(gz, path, &extra, 1, &got, err));
    if (got != 0)
        OT_FAIL(err, OT_ERR_PARSE, "%s: bytes follow the %zu %s that the header announces", path,
                f->n, what);
done:
    if (gz && gzclose_r(gz) != Z_OK && st == OT_OK)
        st = ot_err_set(err, OT_ERR_IO, "%s: error closing", path);
    if (st != OT_OK) {
        ot_free(f->data);
        f->data = NULL;
    }
    return st;
}

/* True when s contains "fashion" in any case. */
static bool mentions_fashion(const char *s)
{
    static const char word[] = "fashion";
    for (; *s; s++) {
        size_t i = 0;
        while (word[i] && tolower((unsigned char)s[i]) == word[i])
            i++;
        if (!word[i])
            return true;
    }
    return false;
}

ot_status ot_data_idx_load(ot_dataset *ds, const char *path, const char *images,
                           const char *labels, ot_err *err)
{
    ot_status st = OT_OK;
    idx_file im = {0}, lb = {0};
    bool default_names = false;

    /* Class names: classes.txt beside the images, else by the path's name. */
    char names[OT_DATA_PATH_MAX];
    const char *base = ot_data_basename(images);
    int w = snprintf(names, sizeof names, "%.*sclasses.txt", (int)(base - images), images);
    bool named = false;
    if (w >= 0 && (size_t)w < sizeof names)
        OT_TRY(ot_data_read_names_if_present(ds, names, &named, err));
    if (named) {
        /* classes.txt names them */
    } else if (mentions_fashion(path) || mentions_fashion(images)) {
        OT_TRY(ot_data_set_names(ds, fashion_names, 10, err));
    } else {
        OT_TRY(ot_data_set_names(ds, digit_names, 10, err));
        default_names = true;
    }

    OT_TRY(read_idx(images, 3, "images", ds->max_bytes, &im, err));
    OT_TRY(read_idx(labels, 1, "labels", ds->max_bytes - (uint64_t)im.n * im.item_bytes, &lb,
                    err));
    if (lb.n != im.n)
        OT_FAIL(err, OT_ERR_PARSE, "%s: %zu labels for the %zu images of %s", labels, lb.n, im.n,
                images);
    for (size_t i = 0; i < lb.n; i++)
        if (lb.data[i] >= ds->n_classes)
            OT_FAIL(err, OT_ERR_PARSE, "%s: record %zu: label %d is outside 0 .. %d%s", labels, i,
                    lb.data[i], ds->n_classes - 1,
                    default_names ? " (name the classes, one per line, in classes.txt)" : "");

    ds->format = "idx";
    ds->n = (int64_t)im.n;
    ds->height = (int)im.dims[1];
    ds->width = (int)im.dims[2];
    ds->channels = 1;
    ds->buf = im.data;
    ds->label_buf = lb.data;
    im.data = lb.data = NULL;
    ds->images = ds->buf;
    ds->image_stride = im.item_bytes;
    ds->labels = ds->label_buf;
    ds->label_stride = 1;
done:
    ot_free(im.data);
    ot_free(lb.data);
    return st;
}
