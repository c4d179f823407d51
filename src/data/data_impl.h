/*
 * data_impl.h: what the dataset readers (cifar.c, idx.c, folder.c) and the
 * image decoders (decode.c) share with dataset.c and transform.c. Private to
 * src/data/.
 */
#ifndef OT_DATA_IMPL_H
#define OT_DATA_IMPL_H

#include <limits.h>

#include "data/data.h"

/* Longest path the readers build (a folder joined with a file name). */
#define OT_DATA_PATH_MAX 4096

/* An image folder's file list and decoding state (folder.c). */
typedef struct ot_data_folder ot_data_folder;

struct ot_dataset {
    const char *format;    /* "cifar10", "idx" or "imagefolder"; static       */
    int64_t n;             /* number of images                                */
    int height, width;     /* shared by every image; 0 for an image folder    */
    int channels;          /* 1 or 3 (3 for an image folder)                  */
    uint8_t *buf;          /* owned: image bytes (CIFAR: whole records)       */
    uint8_t *label_buf;    /* owned: IDX labels; NULL for CIFAR               */
    const uint8_t *images; /* image 0, planar CHW; image i at i * image_stride */
    size_t image_stride;
    const uint8_t *labels; /* label 0; label i at i * label_stride           */
    size_t label_stride;
    int n_classes;
    const char **class_names; /* n_classes strings, all in the arena         */
    ot_arena arena;
    ot_data_folder *folder; /* owned: set for an image folder, whose images
                               and labels live there (images, labels NULL) */
    uint64_t max_bytes;     /* limits while opening (ot_data_opts, resolved) */
    int64_t max_entries;
};

/* dir + "/" + name into buf; false when it does not fit. */
bool ot_data_path_join(char *buf, size_t cap, const char *dir, const char *name);
/* True for an existing regular file (after symlinks) / directory. */
bool ot_data_is_file(const char *path);
bool ot_data_is_dir(const char *path);
/* The last component of a path (after the last '/'). */
const char *ot_data_basename(const char *path);

/* Class names: one per line of the text file `path` (blank lines and
   surrounding white space dropped). OT_ERR_IO, OT_ERR_PARSE, OT_ERR_NOMEM. */
ot_status ot_data_read_names(ot_dataset *ds, const char *path, ot_err *err);
/* An optional names file (batches.meta.txt, classes.txt): reads it into ds
   and sets *found when `path` exists; leaves ds alone when nothing has that
   name. Something there that is not a regular file (a folder, a device, a
   dangling symlink) is OT_ERR_IO rather than a silent fall-back. */
ot_status ot_data_read_names_if_present(ot_dataset *ds, const char *path, bool *found,
                                        ot_err *err);
/* Copies n names into the dataset's arena. OT_ERR_NOMEM. */
ot_status ot_data_set_names(ot_dataset *ds, const char *const *names, int n, ot_err *err);

/* CIFAR-10 binary (cifar.c). detect: true when `path` is a CIFAR-10 folder, or
   holds `cifar-10-batches-bin/`; writes the folder with the batches to root. */
bool ot_data_cifar_detect(const char *path, char *root, size_t cap);
bool ot_data_cifar_has_split(const char *root, ot_data_split split);
ot_status ot_data_cifar_load(ot_dataset *ds, const char *root, ot_data_split split,
                             ot_err *err);

/* IDX (idx.c). find: the images and labels files of the split, for a folder
   or an images file; false when `path` is neither or the split is absent
   (then `why` says what is missing, when not NULL). */
bool ot_data_idx_find(const char *path, ot_data_split split, char *images, char *labels,
                      size_t cap, char *why, size_t why_cap);
/* True when `path` is an IDX folder (holds an images file of either split). */
bool ot_data_idx_detect(const char *path);
ot_status ot_data_idx_load(ot_dataset *ds, const char *path, const char *images,
                           const char *labels, ot_err *err);

/* Image folders (folder.c). detect: true when `path` is a folder with class
   sub-folders holding at least one image (in `train/` for the split layout);
   reads folder listings only, stopping at the first image. has_split: the
   train split whenever detect is true, the test split in the train/ + val/
   (or test/) layout. why: a one-line reason `path` is not an image folder,
   for the error of a folder in no format. */
bool ot_data_folder_detect(const char *path);
/* detect with a budget of max_entries folder entries (0: the default):
   *found as detect; running out of the budget is OT_ERR_ARG naming it. */
ot_status ot_data_folder_probe(const char *path, int64_t max_entries, bool *found, ot_err *err);
bool ot_data_folder_has_split(const char *path, ot_data_split split, int64_t max_entries);
void ot_data_folder_why(const char *path, char *why, size_t cap);
/* Lists the split's classes and images into ds (see ot_data_open). */
ot_status ot_data_folder_load(ot_dataset *ds, const char *path, ot_data_split split,
                              ot_err *err);
void ot_data_folder_free(ot_data_folder *f);
/* ot_data_get, ot_data_load_batch for a dataset with ds->folder set. */
ot_status ot_data_folder_get(const ot_dataset *ds, int64_t i, ot_image *img, int *label,
                             ot_err *err);
ot_status ot_data_folder_load_batch(const ot_dataset *ds, const int64_t *indices, int n,
                                    const ot_data_transform *t, float *x, int64_t *labels,
                                    void *scratch, size_t scratch_bytes, ot_err *err);

#endif
