/*
 * cifar.c: the CIFAR-10 binary format (https://www.cs.toronto.edu/~kriz/cifar.html).
 *
 * A batch file is a run of 3073-byte records: one label byte (0-9), then
 * 1024 red, 1024 green and 1024 blue bytes, each 32 x 32 row-major (CHW).
 * The train split is every data_batch_<k>.bin, k = 1..5, that is present; the
 * test split is test_batch.bin. The files are read whole into one buffer and
 * images are views into it, so records keep their label byte in front.
 *
 * Not supported: CIFAR-100 (two label bytes), the Python pickle version.
 */
#include <stdio.h>
#include <sys/stat.h>

#include "core/file.h"
#include "data/data_impl.h"

#define CIFAR_SIDE 32
#define CIFAR_IMAGE_BYTES (3 * CIFAR_SIDE * CIFAR_SIDE)
#define CIFAR_RECORD_BYTES (1 + CIFAR_IMAGE_BYTES)
#define CIFAR_N_TRAIN_BATCHES 5
#define CIFAR_SUBDIR "cifar-10-batches-bin"

static const char *const cifar10_names[10] = {
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
};

/* File name of train batch k (1-based), or of the test batch when k == 0. */
static void batch_name(char *buf, size_t cap, int k)
{
    if (k == 0)
        snprintf(buf, cap, "test_batch.bin");
    else
        snprintf(buf, cap, "data_batch_%d.bin", k);
}

static bool has_batch(const char *root, int k)
{
    char name[32], path[OT_DATA_PATH_MAX];
    batch_name(name, sizeof name, k);
    return ot_data_path_join(path, sizeof path, root, name) && ot_data_is_file(path);
}

/* True when `dir` itself holds CIFAR-10 batches or their names file. */
static bool is_cifar_dir(const char *dir)
{
    char path[OT_DATA_PATH_MAX];
    for (int k = 0; k <= CIFAR_N_TRAIN_BATCHES; k++)
        if (has_batch(dir, k))
            return true;
    return ot_data_path_join(path, sizeof path, dir, "batches.meta.txt") &&
           ot_data_is_file(path);
}

bool ot_data_cifar_detect(const char *path, char *root, size_t cap)
{
    char sub[OT_DATA_PATH_MAX];
    if (is_cifar_dir(path)) {
        int w = snprintf(root, cap, "%s", path);
        return w >= 0 && (size_t)w < cap;
    }
    if (ot_data_path_join(sub, sizeof sub, path, CIFAR_SUBDIR) && is_cifar_dir(sub)) {
        int w = snprintf(root, cap, "%s", sub);
        return w >= 0 && (size_t)w < cap;
    }
    return false;
}

bool ot_data_cifar_has_split(const char *root, ot_data_split split)
{
    if (split == OT_DATA_TEST)
        return has_batch(root, 0);
    for (int k = 1; k <= CIFAR_N_TRAIN_BATCHES; k++)
        if (has_batch(root, k))
            return true;
    return false;
}

/* Reads one batch file of `bytes` bytes (already checked) into dst. */
static ot_status read_batch(const char *path, uint8_t *dst, size_t bytes, ot_err *err)
{
    ot_status st = OT_OK;
    FILE *f = NULL;
    OT_TRY(ot_file_fopen_read(path, &f, NULL, err));
    size_t got = fread(dst, 1, bytes, f);
    if (got != bytes)
        OT_FAIL(err, OT_ERR_IO, "%s: read %zu of %zu bytes (file changed while reading?)", path,
                got, bytes);
done:
    if (f)
        fclose(f);
    return st;
}

ot_status ot_data_cifar_load(ot_dataset *ds, const char *root, ot_data_split split, ot_err *err)
{
    ot_status st = OT_OK;
    char paths[CIFAR_N_TRAIN_BATCHES][OT_DATA_PATH_MAX];
    size_t sizes[CIFAR_N_TRAIN_BATCHES];
    int n_files = 0;
    size_t total = 0;

    /* Which files, and is each a whole number of records? */
    int k_first = split == OT_DATA_TEST ? 0 : 1;
    int k_last = split == OT_DATA_TEST ? 0 : CIFAR_N_TRAIN_BATCHES;
    for (int k = k_first; k <= k_last; k++) {
        char name[32];
        batch_name(name, sizeof name, k);
        char *path = paths[n_files];
        if (!ot_data_path_join(path, OT_DATA_PATH_MAX, root, name))
            OT_FAIL(err, OT_ERR_ARG, "%s: path too long", root);
        struct stat s;
        if (stat(path, &s) != 0 || !S_ISREG(s.st_mode))
            continue;
        size_t size = (size_t)s.st_size;
        if (size == 0)
            OT_FAIL(err, OT_ERR_PARSE, "%s: empty file, expected %d-byte records", path,
                    CIFAR_RECORD_BYTES);
        if (size % CIFAR_RECORD_BYTES != 0)
            OT_FAIL(err, OT_ERR_PARSE,
                    "%s: truncated record %zu: %zu of %d bytes (records are 1 label byte + "
                    "3072 pixel bytes)",
                    path, size / CIFAR_RECORD_BYTES, size % CIFAR_RECORD_BYTES,
                    CIFAR_RECORD_BYTES);
        if (!ot_size_add(total, size, &total))
            OT_FAIL(err, OT_ERR_PARSE, "%s: file too large", path);
        sizes[n_files++] = size;
    }
    if (n_files == 0)
        OT_FAIL(err, OT_ERR_IO, "%s: no CIFAR-10 batch files for this split", root);

    /* Class names before the labels, which are checked against them. */
    char meta[OT_DATA_PATH_MAX];
    bool named = false;
    if (ot_data_path_join(meta, sizeof meta, root, "batches.meta.txt"))
        OT_TRY(ot_data_read_names_if_present(ds, meta, &named, err));
    if (!named)
        OT_TRY(ot_data_set_names(ds, cifar10_names, 10, err));

    if (total > ds->max_bytes)
        OT_FAIL(err, OT_ERR_ARG,
                "%s: the %d batch files hold %zu bytes, over the data memory limit of %llu "
                "bytes (raise it with --max-data-size)",
                root, n_files, total, (unsigned long long)ds->max_bytes);
    ds->buf = ot_malloc(total);
    if (!ds->buf)
        OT_FAIL(err, OT_ERR_NOMEM, "%s: out of memory for %zu bytes", root, total);
    size_t at = 0;
    for (int f = 0; f < n_files; f++) {
        OT_TRY(read_batch(paths[f], ds->buf + at, sizes[f], err));
        size_t n_rec = sizes[f] / CIFAR_RECORD_BYTES;
        for (size_t r = 0; r < n_rec; r++) {
            int label = ds->buf[at + r * CIFAR_RECORD_BYTES];
            if (label >= ds->n_classes)
                OT_FAIL(err, OT_ERR_PARSE, "%s: record %zu: label %d is outside 0 .. %d", paths[f],
                        r, label, ds->n_classes - 1);
        }
        at += sizes[f];
    }

    ds->format = "cifar10";
    ds->n = (int64_t)(total / CIFAR_RECORD_BYTES);
    ds->height = CIFAR_SIDE;
    ds->width = CIFAR_SIDE;
    ds->channels = 3;
    ds->labels = ds->buf;
    ds->label_stride = CIFAR_RECORD_BYTES;
    ds->images = ds->buf + 1;
    ds->image_stride = CIFAR_RECORD_BYTES;
    if (split == OT_DATA_TRAIN && n_files < CIFAR_N_TRAIN_BATCHES)
        ot_log(OT_LOG_INFO, "%s: %d of %d training batches present, %lld images", root, n_files,
               CIFAR_N_TRAIN_BATCHES, (long long)ds->n);
done:
    return st;
}
