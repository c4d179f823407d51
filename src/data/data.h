/*
 * data.h: training data. Datasets on disk (CIFAR-10 binary, IDX as in MNIST
 * and Fashion-MNIST), the image transform that feeds a pretrained CNN, and a
 * deterministic shuffle and batch loader.
 *
 * Datasets are read fully into memory when opened (CIFAR-10's training split
 * is 150 MB) and are read-only afterwards, so any number of threads may call
 * ot_data_get and ot_data_load_batch on one dataset at once, each with its own
 * scratch buffer. Images are kept as the files store them, planar (CHW) uint8,
 * and handed out as borrowed views.
 *
 * The transform reproduces torchvision's PIL path:
 *     Resize(S) -> CenterCrop(S) -> ToTensor() -> Normalize(mean, std)
 * Resize is PIL's BILINEAR resample: a triangle filter whose support grows by
 * the downscale factor (antialiased when shrinking; plain bilinear with
 * half-pixel centres when enlarging), separable, horizontal pass first, each
 * pass rounded to uint8 in PIL's 22-bit fixed point. The outputs match
 * torchvision bit for bit on the golden cases in tests/golden/.
 *
 * Not here: JPEG/PNG image folders, random augmentation, CIFAR-100.
 */
#ifndef OT_DATA_H
#define OT_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

/* Largest image side a dataset may declare, and the largest transform size. */
#define OT_DATA_MAX_SIDE 16384
#define OT_DATA_MAX_SIZE 8192
/* Most class names a dataset may have (labels are bytes in both formats). */
#define OT_DATA_MAX_CLASSES 256

typedef enum {
    OT_DATA_TRAIN = 0,
    OT_DATA_TEST = 1,
} ot_data_split;

/* An open dataset. Owns every image, label and class name it hands out. */
typedef struct ot_dataset ot_dataset;

/* A borrowed view of one image. */
typedef struct ot_image {
    const uint8_t *data; /* (channels, height, width), planar CHW, row-major */
    int height, width;
    int channels; /* 1 (gray) or 3 (RGB) */
} ot_image;

/* ------------------------------------------------------------- datasets */

/* Opens one split of the dataset at `path`, reading it into memory.
 *
 * `path` is one of
 *   - a CIFAR-10 binary folder (or one that holds `cifar-10-batches-bin/`):
 *     the train split is every `data_batch_1.bin` .. `data_batch_5.bin`
 *     present, the test split `test_batch.bin`. A record is 1 label byte and
 *     3072 pixel bytes (3 x 32 x 32, CHW). Class names come from
 *     `batches.meta.txt` (one per line, blank lines ignored), else CIFAR-10's.
 *   - an IDX folder: `train-images-idx3-ubyte` with `train-labels-idx1-ubyte`
 *     for train, `t10k-images-idx3-ubyte` with `t10k-labels-idx1-ubyte` for
 *     test, each plain or gzip'd (`.gz`); `.idx3-ubyte` is accepted for
 *     `-idx3-ubyte`. Images are gray, (N, H, W).
 *   - an IDX images file: its labels file is the sibling whose name has
 *     `labels-idx1` for `images-idx3`. A name starting `train-` or `t10k-`
 *     picks its split's sibling (opening `t10k-images...` for OT_DATA_TRAIN
 *     opens `train-images...`); any other name is a train split alone.
 * IDX class names: one per line in a sibling `classes.txt`; else Fashion-
 * MNIST's when the path contains "fashion" (any case); else "0" .. "9".
 * Every count and length is checked against the bytes present, and every label
 * against the classes.
 *
 * On success *out owns the data; release it with ot_data_free.
 * Returns OT_ERR_IO (missing file or split, read error), OT_ERR_PARSE
 * (truncated file, wrong IDX magic, label outside the classes, image and label
 * counts that differ, corrupt gzip), OT_ERR_UNSUPPORTED (a folder in neither
 * format), OT_ERR_NOMEM, OT_ERR_ARG. Messages name the file, and the record
 * where there is one.
 */
ot_status ot_data_open(const char *path, ot_data_split split, ot_dataset **out, ot_err *err);

/* True when `path` is a dataset that has the split (its files exist; they are
   not read). Lets the trainer decide whether to evaluate on a test split. */
bool ot_data_has_split(const char *path, ot_data_split split);

/* Releases a dataset and every view into it. NULL does nothing. */
void ot_data_free(ot_dataset *ds);

/* Number of images. */
int64_t ot_data_count(const ot_dataset *ds);

/* Number of classes; every label lies in 0 .. n_classes - 1. */
int ot_data_n_classes(const ot_dataset *ds);

/* Name of class `c`, owned by the dataset; NULL when c is out of range. */
const char *ot_data_class_name(const ot_dataset *ds, int c);

/* The image shape shared by every image of the dataset. Any pointer may be NULL. */
void ot_data_shape(const ot_dataset *ds, int *height, int *width, int *channels);

/* "cifar10" or "idx". Static storage. */
const char *ot_data_format(const ot_dataset *ds);

/* Image i and its label. *img is a view into the dataset, valid until
   ot_data_free. Returns OT_ERR_ARG when i is outside 0 .. count - 1. */
ot_status ot_data_get(const ot_dataset *ds, int64_t i, ot_image *img, int *label, ot_err *err);

/* ------------------------------------------------------------ transform */

typedef enum {
    OT_DATA_NORM_NONE = 0, /* mean 0, std 1: the output is x / 255                  */
    OT_DATA_NORM_IMAGENET, /* mean (.485, .456, .406), std (.229, .224, .225)       */
    OT_DATA_NORM_HALF,     /* mean .5, std .5: the output lies in [-1, 1]           */
} ot_data_norm;

/* Resize(size) -> CenterCrop(size) -> x / 255 -> (x - mean[c]) / std[c]. */
typedef struct ot_data_transform {
    int size;       /* output side S, 1 .. OT_DATA_MAX_SIZE                     */
    float mean[3];  /* per output channel                                      */
    float std[3];   /* per output channel; nonzero                             */
    bool to_rgb;    /* gray images are replicated to 3 channels                */
} ot_data_transform;

/* Fills *t with size S, the preset's mean and std, and to_rgb = true. */
void ot_data_transform_init(ot_data_transform *t, int size, ot_data_norm norm);

/* Channels the transform writes for an image of `in_channels`: 3 when to_rgb
   is set or the image is RGB, else 1. */
int ot_data_out_channels(const ot_data_transform *t, int in_channels);

/* Scratch bytes ot_data_prepare needs for an image of height x width; enough
   for any smaller image too. 0 when the size or the transform is invalid. */
size_t ot_data_prepare_scratch_bytes(int height, int width, const ot_data_transform *t);

/* Transforms one image into out: (C, S, S) floats, CHW, C from
 * ot_data_out_channels. `scratch` holds `scratch_bytes` bytes, aligned as
 * malloc aligns, and is overwritten; nothing is allocated, so a training step
 * may call this per image. Returns OT_ERR_ARG for an invalid transform or
 * image, or a scratch buffer smaller than ot_data_prepare_scratch_bytes.
 */
ot_status ot_data_prepare(const ot_image *img, const ot_data_transform *t, float *out,
                          void *scratch, size_t scratch_bytes, ot_err *err);

/* --------------------------------------------------------------- batches */

/* Writes a permutation of 0 .. n-1 into perm[n], determined by seed and epoch
   alone: the same on every machine (xoshiro256** seeded by splitmix64,
   Fisher-Yates with unbiased bounded draws). n <= 0 writes nothing. */
void ot_data_shuffle(int64_t n, uint64_t seed, int64_t epoch, int64_t *perm);

/* Transforms the images indices[0 .. n-1] into x: (n, C, S, S) floats, C from
 * ot_data_out_channels for the dataset's channels, and their labels into
 * labels[n]. Allocates nothing; `scratch` as for ot_data_prepare with the
 * dataset's shape. Returns OT_ERR_ARG for an index out of range (naming it),
 * an invalid transform, or too small a scratch buffer.
 */
ot_status ot_data_load_batch(const ot_dataset *ds, const int64_t *indices, int n,
                             const ot_data_transform *t, float *x, int64_t *labels,
                             void *scratch, size_t scratch_bytes, ot_err *err);

#endif
