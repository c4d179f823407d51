/*
 * data_impl.h: what the dataset readers (cifar.c, idx.c) share with
 * dataset.c. Private to src/data/.
 */
#ifndef OT_DATA_IMPL_H
#define OT_DATA_IMPL_H

#include <limits.h>

#include "data/data.h"

/* Longest path the readers build (a folder joined with a file name). */
#define OT_DATA_PATH_MAX 4096

struct ot_dataset {
    const char *format;    /* "cifar10" or "idx"; static storage             */
    int64_t n;             /* number of images                                */
    int height, width;     /* shared by every image                           */
    int channels;          /* 1 or 3                                          */
    uint8_t *buf;          /* owned: image bytes (CIFAR: whole records)       */
    uint8_t *label_buf;    /* owned: IDX labels; NULL for CIFAR               */
    const uint8_t *images; /* image 0, planar CHW; image i at i * image_stride */
    size_t image_stride;
    const uint8_t *labels; /* label 0; label i at i * label_stride           */
    size_t label_stride;
    int n_classes;
    const char **class_names; /* n_classes strings, all in the arena         */
    ot_arena arena;
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

#endif
