/*
 * folder.c: image-folder datasets, laid out as for torchvision's ImageFolder
 * (torchvision/datasets/folder.py):
 *     <root>/<class>/.../<image>.{jpg,jpeg,png}
 * and what every dataset offers per image: decoding into caller memory, the
 * scratch a batch needs, the error a bad image gives, and the stratified
 * validation split behind --val-split.
 *
 * As find_classes does, classes are the root's sub-folders sorted by name
 * (byte order, as Python sorts str); as make_dataset does, a class's images
 * are every file with an image extension (lower-cased) under its folder, in
 * the order of sorted(os.walk(class_dir)) then sorted(file names): by
 * (folder path, file name). Ours differs in that names starting with '.' are
 * skipped (".ipynb_checkpoints", macOS "._x.jpg"), recursion stops 16 folders
 * down and at symlink loops (a link to the split folder or to a folder on the
 * way down), an empty class folder stays a class (with a warning), and only
 * .jpg, .jpeg and .png count (torchvision also reads .bmp, .ppm, .pgm, .tif,
 * .tiff, .webp: they are counted as ignored). A walk looks at no more than
 * max_entries folder entries and keeps a file list no larger than max_bytes
 * (ot_data_opts), so `--data /` or a tree of symlinks ends in an error naming
 * the limit instead of walking the whole file system.
 *
 * Opening lists the folders and keeps the relative paths, one NUL-separated
 * buffer, and int32 labels: ImageNet's 1.28 M files take about 50 MB. Images
 * are decoded (decode.c) only when asked for, each at its own size.
 *
 * Thread safety: the file list is immutable once open. ot_data_decode and
 * ot_data_load_batch write only the caller's buffers. ot_data_get decodes
 * into a buffer per calling thread, found under the folder's mutex.
 */
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/data_impl.h"

#define FOLDER_MAX_DEPTH 16 /* folders below a class folder that are searched */
#define SPLIT_SEED_SALT 0x76616c2d73706c69ull /* "val-spli": decorrelates from shuffles */

/* A buffer ot_data_get decodes into for one thread. */
typedef struct thread_buf {
    pthread_t tid;
    uint8_t *data;
    size_t cap;
    struct thread_buf *next;
} thread_buf;

struct ot_data_folder {
    char *root;       /* owned: the split's folder                            */
    char *names;      /* owned: relative paths "<class>/.../<file>", NUL-ended */
    size_t *off;      /* owned: n offsets into names                          */
    int32_t *labels;  /* owned: n labels                                      */
    pthread_mutex_t lock; /* guards bufs (the list, not the buffers)          */
    bool has_lock;
    thread_buf *bufs; /* owned                                                */
};

/* ------------------------------------------------------------ names */

static bool is_hidden(const char *name) { return name[0] == '.'; }

/* True for a name ending .jpg, .jpeg or .png in any case. */
static bool is_image_name(const char *name)
{
    static const char *const exts[] = {".jpg", ".jpeg", ".png"};
    size_t n = strlen(name);
    for (size_t e = 0; e < sizeof exts / sizeof exts[0]; e++) {
        size_t k = strlen(exts[e]);
        if (n <= k)
            continue;
        bool same = true;
        for (size_t i = 0; i < k && same; i++) {
            char c = name[n - k + i];
            if (c >= 'A' && c <= 'Z')
                c = (char)(c - 'A' + 'a');
            same = c == exts[e][i];
        }
        if (same)
            return true;
    }
    return false;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The folder holding `split`: <path>/train and <path>/val (else test) when
   <path>/train and one of those exist; else <path> for the train split. False
   when the split is absent or the name does not fit. */
static bool split_root(const char *path, ot_data_split split, char *out, size_t cap)
{
    char train[OT_DATA_PATH_MAX], val[OT_DATA_PATH_MAX], test[OT_DATA_PATH_MAX];
    bool layout = ot_data_path_join(train, sizeof train, path, "train") && ot_data_is_dir(train) &&
                  ot_data_path_join(val, sizeof val, path, "val") &&
                  ot_data_path_join(test, sizeof test, path, "test") &&
                  (ot_data_is_dir(val) || ot_data_is_dir(test));
    const char *pick = NULL;
    if (layout)
        pick = split == OT_DATA_TRAIN ? train : ot_data_is_dir(val) ? val : test;
    else if (split == OT_DATA_TRAIN)
        pick = path;
    if (!pick)
        return false;
    int w = snprintf(out, cap, "%s", pick);
    if (w < 0 || (size_t)w >= cap)
        return false;
    /* No trailing '/': relative paths start right after root and one '/'. */
    while (w > 1 && out[w - 1] == '/')
        out[--w] = '\0';
    return true;
}

/* Counts one folder entry against the walk's budget (NULL: no budget). */
static ot_status spend_entry(int64_t *left, int64_t limit, const char *dir, ot_err *err)
{
    if (!left)
        return OT_OK;
    if (*left <= 0)
        return ot_err_set(err, OT_ERR_ARG,
                          "%s: the image folder walk looked at more than %lld files and folders "
                          "(raise the limit with --max-files)",
                          dir, (long long)limit);
    (*left)--;
    return OT_OK;
}

/* The non-hidden sub-folders of dir (symlinks followed), sorted. *names and
   each name are ot_malloc'd; free with free_names. Each entry read costs one
   from *left (NULL: no budget) of `limit`. */
static ot_status list_dirs(const char *dir, char ***names, int *n, int64_t *left, int64_t limit,
                           ot_err *err)
{
    ot_status st = OT_OK;
    char path[OT_DATA_PATH_MAX];
    char **v = NULL;
    int count = 0, cap = 0;
    DIR *d = opendir(dir);
    if (!d)
        OT_FAIL(err, OT_ERR_IO, "%s: cannot list folder", dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        OT_TRY(spend_entry(left, limit, dir, err));
        if (is_hidden(e->d_name))
            continue;
        bool sub = e->d_type == DT_DIR;
        if (e->d_type == DT_UNKNOWN || e->d_type == DT_LNK)
            sub = ot_data_path_join(path, sizeof path, dir, e->d_name) && ot_data_is_dir(path);
        if (!sub)
            continue;
        if (count == OT_DATA_MAX_FOLDER_CLASSES)
            OT_FAIL(err, OT_ERR_PARSE, "%s: more than %d class folders", dir,
                    OT_DATA_MAX_FOLDER_CLASSES);
        if (count == cap) {
            int ncap = cap ? 2 * cap : 64;
            char **nv = ot_realloc(v, (size_t)ncap * sizeof *v);
            if (!nv)
                OT_FAIL(err, OT_ERR_NOMEM, "%s: out of memory", dir);
            v = nv;
            cap = ncap;
        }
        v[count] = ot_strdup(e->d_name);
        if (!v[count])
            OT_FAIL(err, OT_ERR_NOMEM, "%s: out of memory", dir);
        count++;
    }
    if (count > 0)
        qsort(v, (size_t)count, sizeof *v, cmp_str);
    *names = v;
    *n = count;
    v = NULL;
done:
    if (d)
        closedir(d);
    if (v) {
        for (int i = 0; i < count; i++)
            ot_free(v[i]);
        ot_free(v);
    }
    return st;
}

static void free_names(char **names, int n)
{
    if (!names)
        return;
    for (int i = 0; i < n; i++)
        ot_free(names[i]);
    ot_free(names);
}

/* --------------------------------------------------------------- walking */

/* One image of the class being scanned: its relative path at names + off;
   the folder part is its first dir_len bytes. */
typedef struct {
    size_t off;
    size_t dir_len;
    const char *s; /* names + off, set once the class is complete */
} item;

/* A folder's identity, for the set of folders a class walk has seen. */
typedef struct {
    dev_t dev;
    ino_t ino;
    bool used;
} dir_id;

static size_t dir_hash(dev_t dev, ino_t ino)
{
    uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ull ^ (uint64_t)dev * 0xc2b2ae3d27d4eb4full;
    return (size_t)(h ^ h >> 29);
}

typedef struct {
    const char *root;  /* the split folder                          */
    size_t root_len;   /* strlen(root) + 1 for the '/'              */
    bool detect;       /* stop at the first image; collect nothing  */
    bool found;        /* detect: an image was seen                 */
    char *names;       /* relative paths, NUL-ended                 */
    size_t names_len, names_cap;
    item *items;       /* this class's images                       */
    size_t n_items, items_cap;
    int64_t n_ignored; /* files that are not .jpg/.jpeg/.png        */
    bool deep_warned;
    dev_t dev[FOLDER_MAX_DEPTH + 2]; /* the folders being walked, for loops */
    ino_t ino[FOLDER_MAX_DEPTH + 2];
    dev_t root_dev;    /* the split folder, also a loop target      */
    ino_t root_ino;
    int64_t entries_left; /* folder entries the walk may still read */
    int64_t max_entries;
    uint64_t max_bytes;   /* most bytes of file list                */
    int64_t n_listed;     /* images listed so far, all classes      */
    dir_id *seen;         /* folders walked for this class (hash set) */
    size_t seen_cap, n_seen;
} walk;

/* Adds folder (dev, ino) to the walk's set of folders seen; false when it
   was there already (a second symlink to it), or memory ran out (*nomem). */
static bool seen_add(walk *w, dev_t dev, ino_t ino, bool *nomem)
{
    if (2 * (w->n_seen + 1) > w->seen_cap) {
        size_t ncap = w->seen_cap ? 2 * w->seen_cap : 64;
        dir_id *ns = ot_calloc(ncap, sizeof *ns);
        if (!ns) {
            *nomem = true;
            return false;
        }
        for (size_t i = 0; i < w->seen_cap; i++) {
            if (!w->seen[i].used)
                continue;
            size_t h = dir_hash(w->seen[i].dev, w->seen[i].ino) & (ncap - 1);
            while (ns[h].used)
                h = (h + 1) & (ncap - 1);
            ns[h] = w->seen[i];
        }
        ot_free(w->seen);
        w->seen = ns;
        w->seen_cap = ncap;
    }
    size_t h = dir_hash(dev, ino) & (w->seen_cap - 1);
    for (; w->seen[h].used; h = (h + 1) & (w->seen_cap - 1))
        if (w->seen[h].dev == dev && w->seen[h].ino == ino)
            return false;
    w->seen[h] = (dir_id){.dev = dev, .ino = ino, .used = true};
    w->n_seen++;
    return true;
}

/* Forgets the folders seen (a new class starts). A large table is dropped
   rather than cleared, so that many small classes after a big one stay cheap. */
static void seen_clear(walk *w)
{
    if (w->seen_cap > 1024) {
        ot_free(w->seen);
        w->seen = NULL;
        w->seen_cap = 0;
    } else if (w->seen) {
        memset(w->seen, 0, w->seen_cap * sizeof *w->seen);
    }
    w->n_seen = 0;
}

/* Sets up w's limits and the split folder's identity; OT_ERR_IO when the
   folder cannot be read. */
static ot_status walk_init(walk *w, const char *root, int64_t max_entries, uint64_t max_bytes,
                           ot_err *err)
{
    struct stat s;
    if (stat(root, &s) != 0)
        return ot_err_set(err, OT_ERR_IO, "%s: cannot read", root);
    w->root = root;
    w->root_len = strlen(root) + 1;
    w->root_dev = s.st_dev;
    w->root_ino = s.st_ino;
    w->max_entries = max_entries > 0 ? max_entries : OT_DATA_DEFAULT_MAX_ENTRIES;
    w->entries_left = w->max_entries;
    w->max_bytes = max_bytes > 0 ? max_bytes : OT_DATA_DEFAULT_MAX_BYTES;
    return OT_OK;
}

static ot_status add_image(walk *w, const char *path, ot_err *err)
{
    const char *rel = path + w->root_len;
    size_t len = strlen(rel) + 1;
    /* The list costs its names plus, per image, an offset, a label and a
       sort item. */
    uint64_t per_image = sizeof(size_t) + sizeof(int32_t) + sizeof(item);
    uint64_t bytes = (uint64_t)w->names_len + len + per_image * (uint64_t)(w->n_listed + 1);
    if (bytes > w->max_bytes)
        return ot_err_set(err, OT_ERR_ARG,
                          "%s: the list of %lld image files needs more than the data memory "
                          "limit of %llu bytes (raise it with --max-data-size)",
                          w->root, (long long)w->n_listed + 1, (unsigned long long)w->max_bytes);
    if (w->names_len + len > w->names_cap) {
        size_t ncap = w->names_cap ? w->names_cap : 1 << 16;
        while (ncap < w->names_len + len)
            ncap *= 2;
        char *nn = ot_realloc(w->names, ncap);
        if (!nn)
            return ot_err_set(err, OT_ERR_NOMEM, "%s: out of memory for the file list", w->root);
        w->names = nn;
        w->names_cap = ncap;
    }
    if (w->n_items == w->items_cap) {
        size_t ncap = w->items_cap ? 2 * w->items_cap : 256;
        item *ni = ot_realloc(w->items, ncap * sizeof *ni);
        if (!ni)
            return ot_err_set(err, OT_ERR_NOMEM, "%s: out of memory for the file list", w->root);
        w->items = ni;
        w->items_cap = ncap;
    }
    const char *slash = strrchr(rel, '/');
    item *it = &w->items[w->n_items++];
    it->off = w->names_len;
    it->dir_len = slash ? (size_t)(slash - rel) : 0;
    it->s = NULL;
    memcpy(w->names + w->names_len, rel, len);
    w->names_len += len;
    w->n_listed++;
    return OT_OK;
}

/* Walks the folder in path (a buffer of OT_DATA_PATH_MAX bytes, restored on
   return) at the given depth below the class folder. */
static ot_status walk_dir(walk *w, char *path, int depth, ot_err *err)
{
    ot_status st = OT_OK;
    size_t len = strlen(path);
    struct stat s;
    if (stat(path, &s) != 0)
        return ot_err_set(err, OT_ERR_IO, "%s: cannot read", path);
    bool loop = s.st_dev == w->root_dev && s.st_ino == w->root_ino;
    for (int k = 0; k < depth && !loop; k++)
        loop = w->dev[k] == s.st_dev && w->ino[k] == s.st_ino;
    if (loop) {
        ot_log(OT_LOG_WARN, "%s: skipped: a symlink back to a folder above it", path);
        return OT_OK;
    }
    /* Symlinks can reach one folder by many paths (n links per level give
       n^depth paths): each folder is walked once per class. */
    bool nomem = false;
    if (!seen_add(w, s.st_dev, s.st_ino, &nomem)) {
        if (nomem)
            return ot_err_set(err, OT_ERR_NOMEM, "%s: out of memory", path);
        ot_log(OT_LOG_DEBUG, "%s: skipped: its folder was walked already", path);
        return OT_OK;
    }
    w->dev[depth] = s.st_dev;
    w->ino[depth] = s.st_ino;
    DIR *d = opendir(path);
    if (!d)
        return ot_err_set(err, OT_ERR_IO, "%s: cannot list folder", path);
    struct dirent *e;
    while (!w->found && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        path[len] = '\0';
        OT_TRY(spend_entry(&w->entries_left, w->max_entries, path, err));
        if (is_hidden(e->d_name))
            continue;
        size_t name_len = strlen(e->d_name);
        if (len + 1 + name_len >= OT_DATA_PATH_MAX)
            OT_FAIL(err, OT_ERR_IO, "%s/%s: path over %d bytes", path, e->d_name,
                    OT_DATA_PATH_MAX);
        path[len] = '/';
        memcpy(path + len + 1, e->d_name, name_len + 1);
        bool dir = e->d_type == DT_DIR, file = e->d_type == DT_REG;
        if (e->d_type == DT_UNKNOWN || e->d_type == DT_LNK) {
            dir = ot_data_is_dir(path);
            file = !dir && ot_data_is_file(path);
        }
        if (dir) {
            if (depth + 1 > FOLDER_MAX_DEPTH) {
                if (!w->deep_warned)
                    ot_log(OT_LOG_WARN, "%s: skipped: more than %d folders below its class",
                           path, FOLDER_MAX_DEPTH);
                w->deep_warned = true;
                continue;
            }
            OT_TRY(walk_dir(w, path, depth + 1, err));
        } else if (file && is_image_name(e->d_name)) {
            if (w->detect)
                w->found = true;
            else
                OT_TRY(add_image(w, path, err));
        } else if (file) {
            w->n_ignored++;
        }
    }
done:
    path[len] = '\0';
    closedir(d);
    return st;
}

/* By folder path, then file name, as sorted(os.walk) and sorted(files). */
static int cmp_item(const void *pa, const void *pb)
{
    const item *a = pa, *b = pb;
    size_t n = a->dir_len < b->dir_len ? a->dir_len : b->dir_len;
    int c = memcmp(a->s, b->s, n);
    if (c != 0)
        return c;
    if (a->dir_len != b->dir_len)
        return a->dir_len < b->dir_len ? -1 : 1;
    return strcmp(a->s + a->dir_len, b->s + b->dir_len);
}

/* *found: some sub-folder of root holds an image (at any searched depth).
   A folder that cannot be read counts as holding none; the walk's entry
   budget running out is an error. */
static ot_status has_images(const char *root, int64_t max_entries, bool *found, ot_err *err)
{
    ot_status st = OT_OK;
    char **classes = NULL;
    int n = 0;
    ot_err ignored;
    *found = false;
    walk w = {.detect = true};
    if (walk_init(&w, root, max_entries, 0, &ignored) != OT_OK)
        return OT_OK;
    st = list_dirs(root, &classes, &n, &w.entries_left, w.max_entries, err);
    if (st != OT_OK)
        return err->code == OT_ERR_ARG ? st : OT_OK;
    char path[OT_DATA_PATH_MAX];
    for (int c = 0; c < n && !*found && st == OT_OK; c++) {
        if (!ot_data_path_join(path, sizeof path, root, classes[c]))
            continue;
        seen_clear(&w);
        if (walk_dir(&w, path, 0, err) == OT_OK)
            *found = w.found;
        else if (err->code == OT_ERR_ARG)
            st = OT_ERR_ARG; /* the budget ran out */
    }
    if (st != OT_OK)
        *found = false;
    ot_free(w.seen);
    free_names(classes, n);
    return st;
}

ot_status ot_data_folder_probe(const char *path, int64_t max_entries, bool *found, ot_err *err)
{
    char root[OT_DATA_PATH_MAX];
    *found = false;
    if (!ot_data_is_dir(path) || !split_root(path, OT_DATA_TRAIN, root, sizeof root))
        return OT_OK;
    return has_images(root, max_entries, found, err);
}

bool ot_data_folder_detect(const char *path)
{
    bool found = false;
    ot_err err;
    return ot_data_folder_probe(path, 0, &found, &err) == OT_OK && found;
}

bool ot_data_folder_has_split(const char *path, ot_data_split split, int64_t max_entries)
{
    char root[OT_DATA_PATH_MAX];
    bool found = false;
    ot_err err;
    return ot_data_folder_probe(path, max_entries, &found, &err) == OT_OK && found &&
           split_root(path, split, root, sizeof root);
}

void ot_data_folder_why(const char *path, char *why, size_t cap)
{
    char root[OT_DATA_PATH_MAX];
    char **classes = NULL;
    int n = 0;
    ot_err err;
    if (!split_root(path, OT_DATA_TRAIN, root, sizeof root) ||
        list_dirs(root, &classes, &n, NULL, 0, &err) != OT_OK)
        snprintf(why, cap, "cannot list %s", path);
    else if (n == 0)
        snprintf(why, cap, "%s has no class folders", root);
    else
        snprintf(why, cap, "the %d sub-folders of %s hold no .jpg, .jpeg or .png images", n,
                 root);
    free_names(classes, n);
}

/* ----------------------------------------------------------------- open */

void ot_data_folder_free(ot_data_folder *f)
{
    if (!f)
        return;
    for (thread_buf *b = f->bufs, *next; b; b = next) {
        next = b->next;
        ot_free(b->data);
        ot_free(b);
    }
    if (f->has_lock)
        pthread_mutex_destroy(&f->lock);
    ot_free(f->root);
    ot_free(f->names);
    ot_free(f->off);
    ot_free(f->labels);
    ot_free(f);
}

/* Scans class folder `name` (label `label`) and appends its images, sorted. */
static ot_status scan_class(walk *w, const char *name, int label, size_t **off, int32_t **labels,
                            int64_t *n, int64_t *cap, ot_err *err)
{
    char path[OT_DATA_PATH_MAX];
    if (!ot_data_path_join(path, sizeof path, w->root, name))
        return ot_err_set(err, OT_ERR_IO, "%s/%s: path over %d bytes", w->root, name,
                          OT_DATA_PATH_MAX);
    w->n_items = 0;
    seen_clear(w);
    ot_status st = walk_dir(w, path, 0, err);
    if (st != OT_OK)
        return st;
    for (size_t k = 0; k < w->n_items; k++)
        w->items[k].s = w->names + w->items[k].off;
    if (w->n_items > 1)
        qsort(w->items, w->n_items, sizeof *w->items, cmp_item);
    if (w->n_items == 0)
        ot_log(OT_LOG_WARN, "%s: class folder holds no images; it stays class %d ('%s')", path,
               label, name);
    if (*n + (int64_t)w->n_items > *cap) {
        int64_t ncap = *cap ? *cap : 1024;
        while (ncap < *n + (int64_t)w->n_items)
            ncap *= 2;
        size_t *no = ot_realloc(*off, (size_t)ncap * sizeof *no);
        if (no)
            *off = no;
        int32_t *nl = ot_realloc(*labels, (size_t)ncap * sizeof *nl);
        if (nl)
            *labels = nl;
        if (!no || !nl)
            return ot_err_set(err, OT_ERR_NOMEM, "%s: out of memory for the file list", w->root);
        *cap = ncap;
    }
    for (size_t k = 0; k < w->n_items; k++) {
        (*off)[*n] = w->items[k].off;
        (*labels)[*n] = label;
        (*n)++;
    }
    return OT_OK;
}

ot_status ot_data_folder_load(ot_dataset *ds, const char *path, ot_data_split split, ot_err *err)
{
    ot_status st = OT_OK;
    char root[OT_DATA_PATH_MAX], train_root[OT_DATA_PATH_MAX];
    char **classes = NULL, **here = NULL;
    int n_classes = 0, n_here = 0;
    walk w = {0};
    size_t *off = NULL;
    int32_t *labels = NULL;
    int64_t n = 0, cap = 0;
    ot_data_folder *f = NULL;

    if (!split_root(path, split, root, sizeof root))
        OT_FAIL(err, OT_ERR_IO,
                "%s: image folder has no %s split (expected %s/train and %s/val or %s/test)", path,
                split == OT_DATA_TRAIN ? "train" : "test", path, path, path);
    OT_TRY(walk_init(&w, root, ds->max_entries, ds->max_bytes, err));
    /* Classes and their labels come from the train split, so both splits agree. */
    OT_TRY(split_root(path, OT_DATA_TRAIN, train_root, sizeof train_root)
               ? list_dirs(train_root, &classes, &n_classes, &w.entries_left, w.max_entries, err)
               : ot_err_set(err, OT_ERR_IO, "%s: path too long", path));
    if (n_classes == 0)
        OT_FAIL(err, OT_ERR_UNSUPPORTED, "%s: image folder has no class folders", train_root);
    bool other = strcmp(root, train_root) != 0; /* the test split of train/ + val/ */
    if (other) {
        OT_TRY(list_dirs(root, &here, &n_here, &w.entries_left, w.max_entries, err));
        for (int c = 0; c < n_here; c++)
            if (!bsearch(&here[c], classes, (size_t)n_classes, sizeof *classes, cmp_str))
                OT_FAIL(err, OT_ERR_PARSE,
                        "%s/%s: class folder has no counterpart in %s (classes are the train "
                        "split's)",
                        root, here[c], train_root);
    }

    for (int c = 0; c < n_classes; c++) {
        if (other &&
            (n_here == 0 || !bsearch(&classes[c], here, (size_t)n_here, sizeof *here, cmp_str)))
            continue; /* a class the test split lacks */
        OT_TRY(scan_class(&w, classes[c], c, &off, &labels, &n, &cap, err));
    }
    if (n == 0)
        OT_FAIL(err, OT_ERR_PARSE, "%s: no .jpg, .jpeg or .png images in its %d class folders",
                root, other ? n_here : n_classes);
    if (other && n_here < n_classes)
        ot_log(OT_LOG_INFO, "%s: images of %d of the %d classes", root, n_here, n_classes);
    if (w.n_ignored > 0)
        ot_log(OT_LOG_INFO, "%s: ignored %lld files that are not .jpg, .jpeg or .png", root,
               (long long)w.n_ignored);
    OT_TRY(ot_data_set_names(ds, (const char *const *)classes, n_classes, err));

    f = ot_calloc(1, sizeof *f);
    if (!f || !(f->root = ot_strdup(root)))
        OT_FAIL(err, OT_ERR_NOMEM, "%s: out of memory", root);
    if (pthread_mutex_init(&f->lock, NULL) != 0)
        OT_FAIL(err, OT_ERR_NOMEM, "%s: cannot make a mutex", root);
    f->has_lock = true;
    f->names = w.names;
    f->off = off;
    f->labels = labels;
    w.names = NULL;
    off = NULL;
    labels = NULL;
    ds->folder = f;
    f = NULL;
    ds->format = "imagefolder";
    ds->n = n;
    ds->height = 0;
    ds->width = 0;
    ds->channels = 3;
done:
    free_names(classes, n_classes);
    free_names(here, n_here);
    ot_free(w.names);
    ot_free(w.items);
    ot_free(w.seen);
    ot_free(off);
    ot_free(labels);
    ot_data_folder_free(f);
    return st;
}

/* --------------------------------------------------------------- images */

/* root + "/" + the i-th relative path. */
static ot_status image_path(const ot_data_folder *f, int64_t i, char *buf, size_t cap, ot_err *err)
{
    if (!ot_data_path_join(buf, cap, f->root, f->names + f->off[i]))
        return ot_err_set(err, OT_ERR_IO, "%s/%s: path over %zu bytes", f->root,
                          f->names + f->off[i], cap);
    return OT_OK;
}

static ot_status check_index(const ot_dataset *ds, int64_t i, ot_err *err)
{
    if (i < 0 || i >= ds->n)
        return ot_err_set(err, OT_ERR_ARG, "image index %lld is outside 0 .. %lld", (long long)i,
                          (long long)ds->n - 1);
    return OT_OK;
}

/* dest for ot_data_get: the calling thread's buffer, grown to fit. */
static uint8_t *thread_dest(void *user, int h, int w, int c, ot_err *err)
{
    thread_buf *b = user;
    size_t need = (size_t)c * (size_t)h * (size_t)w;
    if (need > b->cap) {
        uint8_t *nd = ot_realloc(b->data, need);
        if (!nd) {
            ot_err_set(err, OT_ERR_NOMEM, "out of memory for a %d x %d image", h, w);
            return NULL;
        }
        b->data = nd;
        b->cap = need;
    }
    return b->data;
}

ot_status ot_data_folder_get(const ot_dataset *ds, int64_t i, ot_image *img, int *label,
                             ot_err *err)
{
    ot_data_folder *f = ds->folder;
    ot_status st = check_index(ds, i, err);
    if (st != OT_OK)
        return st;
    if (img) {
        char path[OT_DATA_PATH_MAX];
        OT_TRY(image_path(f, i, path, sizeof path, err));
        pthread_t self = pthread_self();
        pthread_mutex_lock(&f->lock);
        thread_buf *b = f->bufs;
        while (b && !pthread_equal(b->tid, self))
            b = b->next;
        if (!b && (b = ot_calloc(1, sizeof *b)) != NULL) {
            b->tid = self;
            b->next = f->bufs;
            f->bufs = b;
        }
        pthread_mutex_unlock(&f->lock);
        if (!b)
            OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
        /* Only this thread uses b from here on. */
        ot_image got;
        OT_TRY(ot_data_decode_file(path, thread_dest, b, &got, err));
        *img = got;
    }
    if (label)
        *label = f->labels[i];
done:
    return st;
}

typedef struct {
    uint8_t *buf;
    size_t bytes;
} caller_room;

/* dest for ot_data_decode: the caller's buffer, if the image fits. */
static uint8_t *caller_dest(void *user, int h, int w, int c, ot_err *err)
{
    caller_room *r = user;
    size_t need = (size_t)c * (size_t)h * (size_t)w;
    if (need > r->bytes) {
        ot_err_set(err, OT_ERR_ARG, "a %d x %d x %d image needs %zu bytes, the buffer has %zu", c,
                   h, w, need, r->bytes);
        return NULL;
    }
    return r->buf;
}

ot_status ot_data_decode(const ot_dataset *ds, int64_t i, ot_image *img, void *buf,
                         size_t buf_bytes, ot_err *err)
{
    ot_status st = OT_OK;
    if (!ds || !img || (!buf && buf_bytes > 0))
        return ot_err_set(err, OT_ERR_ARG, "ot_data_decode: invalid arguments");
    OT_TRY(check_index(ds, i, err));
    if (!ds->folder) {
        ot_image view;
        OT_TRY(ot_data_get(ds, i, &view, NULL, err));
        size_t need = (size_t)view.channels * view.height * view.width;
        if (need > buf_bytes)
            OT_FAIL(err, OT_ERR_ARG, "image %lld needs %zu bytes, the buffer has %zu",
                    (long long)i, need, buf_bytes);
        memcpy(buf, view.data, need);
        view.data = buf;
        *img = view;
        return OT_OK;
    }
    char path[OT_DATA_PATH_MAX];
    OT_TRY(image_path(ds->folder, i, path, sizeof path, err));
    caller_room room = {buf, buf_bytes};
    ot_image got;
    st = ot_data_decode_file(path, caller_dest, &room, &got, err);
    if (st == OT_OK)
        *img = got;
    else if (st == OT_ERR_ARG)
        ot_err_prefix(err, "%s", path);
done:
    return st;
}

size_t ot_data_max_image_bytes(const ot_dataset *ds)
{
    if (ds->folder)
        return (size_t)3 * OT_DATA_MAX_PIXELS;
    return (size_t)ds->channels * ds->height * ds->width;
}

bool ot_data_is_bad_image_error(const ot_err *err) { return err && err->code == OT_ERR_PARSE; }

/* ---------------------------------------------------------------- batches */

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* The transform as image folders apply it: always 3 channels out. */
static bool rgb_transform(const ot_data_transform *t, ot_data_transform *out)
{
    if (!t || t->size < 1 || t->size > OT_DATA_MAX_SIZE)
        return false;
    for (int c = 0; c < 3; c++)
        if (!isfinite(t->mean[c]) || !isfinite(t->std[c]) || t->std[c] == 0.0f)
            return false;
    *out = *t;
    out->to_rgb = true;
    return true;
}

size_t ot_data_batch_scratch_bytes(const ot_dataset *ds, const ot_data_transform *t)
{
    if (!ds->folder)
        return ot_data_prepare_scratch_bytes(ds->height, ds->width, t);
    ot_data_transform t3;
    if (!rgb_transform(t, &t3))
        return 0;
    size_t tr = ot_data_prepare_scratch_bytes(OT_DATA_MAX_SIDE, OT_DATA_MAX_SIDE, &t3);
    if (tr == 0)
        return 0;
    /* A long side of an image that is not square can round to a few more
       filter taps than the square's; 16 taps per output pixel more covers it. */
    return align64(ot_data_max_image_bytes(ds)) + tr + 16 * sizeof(int32_t) * (size_t)t3.size;
}

typedef struct {
    uint8_t *scratch;
    size_t bytes;
    const ot_data_transform *t;
    void *prep;        /* set by batch_dest: the transform's scratch */
    size_t prep_bytes;
} batch_room;

/* dest for ot_data_load_batch: the image at the front of scratch, the
   transform's scratch behind it, 64-byte aligned. */
static uint8_t *batch_dest(void *user, int h, int w, int c, ot_err *err)
{
    batch_room *r = user;
    size_t at = align64((size_t)c * (size_t)h * (size_t)w);
    size_t need = ot_data_prepare_scratch_bytes(h, w, r->t);
    if (need == 0 || at + need > r->bytes) {
        ot_err_set(err, OT_ERR_ARG,
                   "scratch of %zu bytes, a %d x %d image needs %zu (size it with "
                   "ot_data_batch_scratch_bytes)",
                   r->bytes, h, w, at + need);
        return NULL;
    }
    r->prep = r->scratch + at;
    r->prep_bytes = r->bytes - at;
    return r->scratch;
}

ot_status ot_data_folder_load_batch(const ot_dataset *ds, const int64_t *indices, int n,
                                    const ot_data_transform *t, float *x, int64_t *labels,
                                    void *scratch, size_t scratch_bytes, ot_err *err)
{
    ot_status st = OT_OK;
    ot_data_transform t3;
    if (!rgb_transform(t, &t3))
        return ot_err_set(err, OT_ERR_ARG,
                          "transform: size %d is outside 1 .. %d, or a mean or std is not finite "
                          "or a std is zero",
                          t ? t->size : 0, OT_DATA_MAX_SIZE);
    if (n > 0 && (!scratch || (uintptr_t)scratch % sizeof(int32_t) != 0))
        return ot_err_set(err, OT_ERR_ARG, "ot_data_load_batch: no scratch, or misaligned");
    const size_t per_image = (size_t)3 * t3.size * t3.size;
    char path[OT_DATA_PATH_MAX];
    int b = 0;
    for (; b < n; b++) {
        OT_TRY(check_index(ds, indices[b], err));
        OT_TRY(image_path(ds->folder, indices[b], path, sizeof path, err));
        batch_room room = {.scratch = scratch, .bytes = scratch_bytes, .t = &t3};
        ot_image img;
        st = ot_data_decode_file(path, batch_dest, &room, &img, err);
        if (st == OT_ERR_ARG)
            ot_err_prefix(err, "%s", path);
        if (st != OT_OK)
            goto done;
        OT_TRY(ot_data_prepare(&img, &t3, x + (size_t)b * per_image, room.prep, room.prep_bytes,
                               err));
        labels[b] = ds->folder->labels[indices[b]];
    }
done:
    if (st != OT_OK)
        ot_err_prefix(err, "batch item %d", b);
    return st;
}

/* ------------------------------------------------------ validation split */

/* Label of image i for any format. */
static int label_of(const ot_dataset *ds, int64_t i)
{
    if (ds->folder)
        return ds->folder->labels[i];
    return ds->labels[(size_t)i * ds->label_stride];
}

ot_status ot_data_split_indices(const ot_dataset *ds, double fraction, uint64_t seed,
                                int64_t **train_idx, int64_t *n_train, int64_t **val_idx,
                                int64_t *n_val, ot_err *err)
{
    ot_status st = OT_OK;
    int64_t *count = NULL, *start = NULL, *order = NULL, *perm = NULL, *tr = NULL, *va = NULL;
    uint8_t *is_val = NULL;
    if (!train_idx || !n_train || !val_idx || !n_val)
        return ot_err_set(err, OT_ERR_ARG, "ot_data_split_indices: NULL output");
    *train_idx = *val_idx = NULL;
    *n_train = *n_val = 0;
    if (!ds || !(fraction > 0.0 && fraction < 1.0))
        return ot_err_set(err, OT_ERR_ARG, "validation fraction %g is not inside (0, 1)",
                          fraction);
    const int K = ds->n_classes;
    const int64_t N = ds->n;
    count = ot_calloc((size_t)K + 1, sizeof *count);
    start = ot_calloc((size_t)K + 1, sizeof *start);
    order = ot_malloc((size_t)N * sizeof *order);
    perm = ot_malloc((size_t)N * sizeof *perm);
    is_val = ot_calloc((size_t)N, 1);
    if (!count || !start || !order || !perm || !is_val)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory for the split of %lld images", (long long)N);
    /* The indices of each class, in index order (a counting sort). */
    for (int64_t i = 0; i < N; i++)
        count[label_of(ds, i)]++;
    for (int c = 0; c < K; c++)
        start[c + 1] = start[c] + count[c];
    for (int64_t i = 0; i < N; i++) {
        int c = label_of(ds, i);
        order[start[c]++] = i;
    }
    int64_t total_val = 0;
    for (int c = 0; c < K; c++) {
        int64_t nc = count[c], first = start[c] - nc; /* start[c] moved past the class */
        int64_t nv = (int64_t)(fraction * (double)nc + 0.5);
        if (nv > nc - 1)
            nv = nc > 0 ? nc - 1 : 0;
        if (nv == 0)
            continue;
        ot_data_shuffle(nc, seed ^ SPLIT_SEED_SALT, c, perm);
        for (int64_t k = 0; k < nv; k++)
            is_val[order[first + perm[k]]] = 1;
        total_val += nv;
    }
    tr = ot_malloc((size_t)(N - total_val + 1) * sizeof *tr);
    va = ot_malloc((size_t)(total_val + 1) * sizeof *va);
    if (!tr || !va)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory for the split of %lld images", (long long)N);
    int64_t a = 0, v = 0;
    for (int64_t i = 0; i < N; i++) {
        if (is_val[i])
            va[v++] = i;
        else
            tr[a++] = i;
    }
    *train_idx = tr;
    *val_idx = va;
    *n_train = a;
    *n_val = v;
    tr = va = NULL;
done:
    ot_free(count);
    ot_free(start);
    ot_free(order);
    ot_free(perm);
    ot_free(is_val);
    ot_free(tr);
    ot_free(va);
    return st;
}
