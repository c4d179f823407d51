/*
 * dataset.c: opening a dataset (format detection, splits), the accessors,
 * and what the readers share: paths and class-name files.
 *
 * The formats themselves are read in cifar.c, idx.c and folder.c. Datasets are
 * immutable once open, so every accessor here is safe to call from several
 * threads at once.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/file.h"
#include "data/data_impl.h"

/* Longest class name kept, and the largest names file read. */
#define NAME_MAX_LEN 255
#define NAMES_FILE_MAX (1 << 20)

bool ot_data_path_join(char *buf, size_t cap, const char *dir, const char *name)
{
    size_t n = strlen(dir);
    const char *sep = (n > 0 && dir[n - 1] == '/') ? "" : "/";
    int w = snprintf(buf, cap, "%s%s%s", dir, sep, name);
    return w >= 0 && (size_t)w < cap;
}

bool ot_data_is_file(const char *path)
{
    struct stat s;
    return stat(path, &s) == 0 && S_ISREG(s.st_mode);
}

bool ot_data_is_dir(const char *path)
{
    struct stat s;
    return stat(path, &s) == 0 && S_ISDIR(s.st_mode);
}

const char *ot_data_basename(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

ot_status ot_data_set_names(ot_dataset *ds, const char *const *names, int n, ot_err *err)
{
    ds->class_names = ot_arena_alloc(&ds->arena, (size_t)n * sizeof *ds->class_names);
    if (!ds->class_names)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory for %d class names", n);
    for (int i = 0; i < n; i++) {
        ds->class_names[i] = ot_arena_strdup(&ds->arena, names[i]);
        if (!ds->class_names[i])
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory for %d class names", n);
    }
    ds->n_classes = n;
    return OT_OK;
}

ot_status ot_data_read_names(ot_dataset *ds, const char *path, ot_err *err)
{
    ot_status st = OT_OK;
    char *text = NULL;
    const char **names = NULL;
    FILE *f = NULL;
    struct stat s;
    OT_TRY(ot_file_fopen_read(path, &f, &s, err));
    if (s.st_size > NAMES_FILE_MAX)
        OT_FAIL(err, OT_ERR_PARSE, "%s: class names file is over %d bytes", path, NAMES_FILE_MAX);
    size_t size = (size_t)s.st_size;
    text = ot_malloc(size + 1);
    names = ot_malloc(OT_DATA_MAX_CLASSES * sizeof *names);
    if (!text || !names)
        OT_FAIL(err, OT_ERR_NOMEM, "%s: out of memory", path);
    if (fread(text, 1, size, f) != size)
        OT_FAIL(err, OT_ERR_IO, "%s: read error", path);
    text[size] = '\0';
    if (memchr(text, '\0', size))
        OT_FAIL(err, OT_ERR_PARSE, "%s: class names file holds a NUL byte", path);

    int n = 0, line = 0;
    for (char *p = text; *p;) {
        char *end = strchr(p, '\n');
        char *next = end ? end + 1 : p + strlen(p);
        if (!end)
            end = next;
        line++;
        while (p < end && isspace((unsigned char)*p))
            p++;
        while (end > p && isspace((unsigned char)end[-1]))
            end--;
        if (end > p) {
            if (n == OT_DATA_MAX_CLASSES)
                OT_FAIL(err, OT_ERR_PARSE, "%s: more than %d class names", path,
                        OT_DATA_MAX_CLASSES);
            if (end - p > NAME_MAX_LEN)
                OT_FAIL(err, OT_ERR_PARSE, "%s: line %d: class name over %d bytes", path, line,
                        NAME_MAX_LEN);
            *end = '\0';
            names[n++] = p;
        }
        p = next;
    }
    if (n == 0)
        OT_FAIL(err, OT_ERR_PARSE, "%s: no class names", path);
    st = ot_data_set_names(ds, names, n, err);
done:
    if (f)
        fclose(f);
    ot_free(text);
    ot_free(names);
    return st;
}

ot_status ot_data_read_names_if_present(ot_dataset *ds, const char *path, bool *found,
                                        ot_err *err)
{
    struct stat s;
    *found = false;
    if (lstat(path, &s) != 0)
        return OT_OK;
    if (stat(path, &s) != 0)
        return ot_err_set(err, OT_ERR_IO, "%s: class names file is a dangling symlink", path);
    if (!S_ISREG(s.st_mode))
        return ot_err_set(err, OT_ERR_IO, "%s: class names file is not a regular file (a %s)",
                          path, S_ISDIR(s.st_mode) ? "folder" : "device, FIFO or socket");
    *found = true;
    return ot_data_read_names(ds, path, err);
}

ot_status ot_data_open(const char *path, ot_data_split split, ot_dataset **out, ot_err *err)
{
    return ot_data_open_with(path, split, NULL, out, err);
}

ot_status ot_data_open_with(const char *path, ot_data_split split, const ot_data_opts *opts,
                            ot_dataset **out, ot_err *err)
{
    ot_status st = OT_OK;
    ot_dataset *ds = NULL;
    char *root = NULL, *images = NULL, *labels = NULL;
    char why[2 * OT_DATA_PATH_MAX + 128];
    if (!path || !out || (split != OT_DATA_TRAIN && split != OT_DATA_TEST))
        return ot_err_set(err, OT_ERR_ARG, "ot_data_open: invalid arguments");
    *out = NULL;
    ds = ot_calloc(1, sizeof *ds);
    root = ot_malloc(OT_DATA_PATH_MAX);
    images = ot_malloc(OT_DATA_PATH_MAX);
    labels = ot_malloc(OT_DATA_PATH_MAX);
    if (!ds || !root || !images || !labels)
        OT_FAIL(err, OT_ERR_NOMEM, "%s: out of memory", path);
    ot_arena_init(&ds->arena, 4096);
    ds->max_bytes = opts && opts->max_bytes ? opts->max_bytes : OT_DATA_DEFAULT_MAX_BYTES;
    ds->max_entries = opts && opts->max_entries > 0 ? opts->max_entries
                                                    : OT_DATA_DEFAULT_MAX_ENTRIES;
    bool is_folder = false;

    const char *split_name = split == OT_DATA_TRAIN ? "train" : "test";
    if (!ot_data_is_dir(path) && !ot_data_is_file(path))
        OT_FAIL(err, OT_ERR_IO, "%s: no such file or folder", path);
    if (ot_data_is_dir(path) && ot_data_cifar_detect(path, root, OT_DATA_PATH_MAX)) {
        if (!ot_data_cifar_has_split(root, split))
            OT_FAIL(err, OT_ERR_IO, "%s: CIFAR-10 folder has no %s split (expected %s)", root,
                    split_name,
                    split == OT_DATA_TRAIN ? "data_batch_1.bin .. data_batch_5.bin"
                                           : "test_batch.bin");
        OT_TRY(ot_data_cifar_load(ds, root, split, err));
    } else if (ot_data_is_file(path) || ot_data_idx_detect(path)) {
        if (!ot_data_idx_find(path, split, images, labels, OT_DATA_PATH_MAX, why, sizeof why))
            OT_FAIL(err, OT_ERR_IO, "%s", why);
        OT_TRY(ot_data_idx_load(ds, path, images, labels, err));
    } else if ((st = ot_data_folder_probe(path, ds->max_entries, &is_folder, err)) != OT_OK) {
        goto done;
    } else if (is_folder) {
        OT_TRY(ot_data_folder_load(ds, path, split, err));
    } else {
        ot_data_folder_why(path, why, sizeof why);
        OT_FAIL(err, OT_ERR_UNSUPPORTED,
                "%s: not a dataset folder: expected CIFAR-10 binary batches (data_batch_1.bin "
                ".. data_batch_5.bin, test_batch.bin), IDX files (train-images-idx3-ubyte[.gz], "
                "train-labels-idx1-ubyte[.gz], t10k-...) or an image folder "
                "(<class>/<image>.jpg|.jpeg|.png); %s",
                path, why);
    }
    OT_ASSERT(ds->n > 0 && ds->n_classes > 0 && ds->class_names);
    /* Every class name must be valid UTF-8 (it ends up in a protobuf string and
       in JSON) and name one class only (a model's outputs are shown by name).
       The readers take names from folder names and text files, so this is
       checked once here, for every format. */
    OT_TRY(ot_names_check((const char *const *)ds->class_names, ds->n_classes, OT_ERR_PARSE,
                          path, err));
    *out = ds;
    ds = NULL;
done:
    ot_data_free(ds);
    ot_free(root);
    ot_free(images);
    ot_free(labels);
    return st;
}

bool ot_data_has_split(const char *path, ot_data_split split)
{
    return ot_data_has_split_with(path, split, NULL);
}

bool ot_data_has_split_with(const char *path, ot_data_split split, const ot_data_opts *opts)
{
    char root[OT_DATA_PATH_MAX], images[OT_DATA_PATH_MAX], labels[OT_DATA_PATH_MAX];
    if (!path || (split != OT_DATA_TRAIN && split != OT_DATA_TEST))
        return false;
    if (ot_data_is_dir(path) && ot_data_cifar_detect(path, root, sizeof root))
        return ot_data_cifar_has_split(root, split);
    if (ot_data_is_file(path) || ot_data_idx_detect(path))
        return ot_data_idx_find(path, split, images, labels, sizeof images, NULL, 0);
    return ot_data_folder_has_split(path, split, opts ? opts->max_entries : 0);
}

void ot_data_free(ot_dataset *ds)
{
    if (!ds)
        return;
    ot_free(ds->buf);
    ot_free(ds->label_buf);
    ot_data_folder_free(ds->folder);
    ot_arena_fini(&ds->arena);
    ot_free(ds);
}

int64_t ot_data_count(const ot_dataset *ds) { return ds->n; }

int ot_data_n_classes(const ot_dataset *ds) { return ds->n_classes; }

const char *ot_data_class_name(const ot_dataset *ds, int c)
{
    if (c < 0 || c >= ds->n_classes)
        return NULL;
    return ds->class_names[c];
}

void ot_data_shape(const ot_dataset *ds, int *height, int *width, int *channels)
{
    if (height)
        *height = ds->height;
    if (width)
        *width = ds->width;
    if (channels)
        *channels = ds->channels;
}

const char *ot_data_format(const ot_dataset *ds) { return ds->format; }

ot_status ot_data_get(const ot_dataset *ds, int64_t i, ot_image *img, int *label, ot_err *err)
{
    if (ds->folder)
        return ot_data_folder_get(ds, i, img, label, err);
    if (i < 0 || i >= ds->n)
        return ot_err_set(err, OT_ERR_ARG, "image index %lld is outside 0 .. %lld", (long long)i,
                          (long long)ds->n - 1);
    if (img) {
        img->data = ds->images + (size_t)i * ds->image_stride;
        img->height = ds->height;
        img->width = ds->width;
        img->channels = ds->channels;
    }
    if (label)
        *label = ds->labels[(size_t)i * ds->label_stride];
    return OT_OK;
}
