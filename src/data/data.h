/*
 * data.h: training data. Datasets on disk (CIFAR-10 binary, IDX as in MNIST
 * and Fashion-MNIST, JPEG/PNG image folders as torchvision's ImageFolder), the
 * image transform that feeds a pretrained CNN, and a deterministic shuffle,
 * validation split and batch loader.
 *
 * CIFAR-10 and IDX datasets are read fully into memory when opened (CIFAR-10's
 * training split is 150 MB); their images all have one size and are kept as
 * the files store them, planar (CHW) uint8, and handed out as borrowed views.
 * Image folders keep only the file list and labels in memory; each image has
 * its own size and is decoded when asked for (ot_data_decode, ot_data_get,
 * ot_data_load_batch). Datasets are read-only once open, so any number of
 * threads may call ot_data_get, ot_data_decode and ot_data_load_batch on one
 * dataset at once, each with its own scratch buffer.
 *
 * The transform reproduces torchvision's PIL path:
 *     Resize(S) -> CenterCrop(S) -> ToTensor() -> Normalize(mean, std)
 * Resize is PIL's BILINEAR resample: a triangle filter whose support grows by
 * the downscale factor (antialiased when shrinking; plain bilinear with
 * half-pixel centres when enlarging), separable, horizontal pass first, each
 * pass rounded to uint8 in PIL's 22-bit fixed point. The outputs match
 * torchvision bit for bit on the golden cases in tests/golden/.
 *
 * Not here: random augmentation, CIFAR-100, image formats other than JPEG and
 * PNG.
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
/* Most class names a CIFAR-10 or IDX dataset may have (their labels are bytes). */
#define OT_DATA_MAX_CLASSES 256
/* Most classes of an image folder (one per class folder; labels are int32). */
#define OT_DATA_MAX_FOLDER_CLASSES 65536
/* Most pixels (height x width) of one image in an image folder: 64 MPixels.
   Each side is also at most OT_DATA_MAX_SIDE. */
#define OT_DATA_MAX_PIXELS (64 * 1024 * 1024)

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

/* Opens one split of the dataset at `path`, reading it into memory (for an
 * image folder: its file list).
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
 *   - an image folder (format "imagefolder"): a folder whose sub-folders
 *     hold .jpg, .jpeg or .png files (extension in any case), laid out as for
 *     torchvision's ImageFolder: `<root>/<class>/.../<image>`. Classes are the
 *     sub-folders sorted by name in byte order (class c is the c-th); a class's
 *     images are every image file under its folder, at any depth (up to 16),
 *     sorted by (folder path, file name) as torchvision sorts os.walk. Names
 *     starting with '.' (files and folders) and other extensions are ignored
 *     (counted in one log line). A class folder with no images still counts
 *     as a class, with a warning through ot_log (torchvision would refuse).
 *     Splits: when `<root>/train` and `<root>/val` (or `<root>/test`) are
 *     folders, they are the train and test splits (val wins over test), and
 *     the classes are train's for both, so labels agree; a class folder in
 *     the test split that train lacks is OT_ERR_PARSE. Otherwise `<root>`
 *     itself is the train split and there is no test split (see
 *     ot_data_split_indices). Nothing but the folder listing is read here:
 *     a bad image shows when it is decoded.
 * IDX class names: one per line in a sibling `classes.txt`; else Fashion-
 * MNIST's when the path contains "fashion" (any case); else "0" .. "9".
 * Every count and length is checked against the bytes present, and every label
 * against the classes. Class names, from any source, must be valid UTF-8 and
 * unique (OT_ERR_PARSE naming the class, or the duplicate and both classes).
 *
 * On success *out owns the data; release it with ot_data_free.
 * Returns OT_ERR_IO (missing file or split, read error), OT_ERR_PARSE
 * (truncated file, wrong IDX magic, label outside the classes, image and label
 * counts that differ, corrupt gzip; an image folder split with no images or
 * more than OT_DATA_MAX_FOLDER_CLASSES classes), OT_ERR_UNSUPPORTED (a folder
 * in none of the formats, e.g. with no class folders), OT_ERR_NOMEM,
 * OT_ERR_ARG. Messages name the file, and the record where there is one.
 */
ot_status ot_data_open(const char *path, ot_data_split split, ot_dataset **out, ot_err *err);

/* What opening a data set may cost. Files are untrusted: an IDX header can
 * promise terabytes from a few bytes of gzip, and a folder walk can reach a
 * whole file system. */
typedef struct ot_data_opts {
    /* Memory for what opening reads: CIFAR-10 and IDX images and labels, an
       image folder's file list. 0: OT_DATA_DEFAULT_MAX_BYTES. */
    uint64_t max_bytes;
    /* Folder entries (files and folders) one walk of an image folder looks
       at, following symlinks. 0: OT_DATA_DEFAULT_MAX_ENTRIES. */
    int64_t max_entries;
} ot_data_opts;

#define OT_DATA_DEFAULT_MAX_BYTES ((uint64_t)4 << 30)
#define OT_DATA_DEFAULT_MAX_ENTRIES ((int64_t)5000000)

/* ot_data_open within the limits of `opts` (NULL: the defaults). Before any
 * image memory is allocated, an IDX header's claim is checked against the
 * file (a plain file must hold exactly the bytes the header announces; a
 * gzip'd one can hold at most OT_DATA_GZIP_MAX_RATIO times its size) and
 * against max_bytes, as are the CIFAR-10 batch sizes. Going over max_bytes or
 * max_entries is OT_ERR_ARG with a message that names the limit and the
 * option that raises it (--max-data-size, --max-files).
 */
ot_status ot_data_open_with(const char *path, ot_data_split split, const ot_data_opts *opts,
                            ot_dataset **out, ot_err *err);

/* Deflate's largest expansion is about 1032:1; a gzip'd IDX file whose header
   promises more than this many times the file's size is refused unread. */
#define OT_DATA_GZIP_MAX_RATIO 1040

/* True when `path` is a dataset that has the split (its files exist; they are
   not read). Lets the trainer decide whether to evaluate on a test split. */
bool ot_data_has_split(const char *path, ot_data_split split);
/* ot_data_has_split with the walk limit of `opts` (NULL: the defaults). */
bool ot_data_has_split_with(const char *path, ot_data_split split, const ot_data_opts *opts);

/* Releases a dataset and every view into it. NULL does nothing. */
void ot_data_free(ot_dataset *ds);

/* Number of images. */
int64_t ot_data_count(const ot_dataset *ds);

/* Number of classes; every label lies in 0 .. n_classes - 1. */
int ot_data_n_classes(const ot_dataset *ds);

/* Name of class `c`, owned by the dataset; NULL when c is out of range. */
const char *ot_data_class_name(const ot_dataset *ds, int c);

/* The image shape shared by every image of the dataset. Any pointer may be NULL.
   An image folder has no shared size: height and width are 0 and channels 3
   (ot_data_load_batch turns gray images into RGB there). Size scratch buffers
   with ot_data_batch_scratch_bytes and ot_data_max_image_bytes instead. */
void ot_data_shape(const ot_dataset *ds, int *height, int *width, int *channels);

/* "cifar10", "idx" or "imagefolder". Static storage. */
const char *ot_data_format(const ot_dataset *ds);

/* Image i and its label; img or label may be NULL. Returns OT_ERR_ARG when i is
 * outside 0 .. count - 1.
 * CIFAR-10 and IDX: *img is a view into the dataset, valid until ot_data_free.
 * Image folders: with img NULL only the label is looked up (nothing is read
 * from disk, so this cannot fail on a bad image). Otherwise the file is
 * decoded into a buffer the dataset keeps for the calling thread: *img is
 * valid until the same thread's next ot_data_get on this dataset, or
 * ot_data_free. Safe from several threads at once; each thread's buffer grows
 * to its largest image and lives until ot_data_free, so a loader should
 * prefer ot_data_decode into its own buffer. A file that cannot be decoded
 * is OT_ERR_PARSE naming it (see ot_data_is_bad_image_error), one that cannot
 * be opened or read OT_ERR_IO, and OT_ERR_NOMEM when memory runs out.
 */
ot_status ot_data_get(const ot_dataset *ds, int64_t i, ot_image *img, int *label, ot_err *err);

/* Bytes that hold any one image of the dataset, decoded (channels x height x
   width): the shared size for CIFAR-10 and IDX, 3 * OT_DATA_MAX_PIXELS
   (192 MiB) for an image folder, whose sizes are known only when decoded.
   Pages of a malloc'd buffer that large cost memory only once touched. */
size_t ot_data_max_image_bytes(const ot_dataset *ds);

/* Decodes image i into the caller's buf (buf_bytes bytes; no alignment
 * needed) and points *img at it. For CIFAR-10 and IDX this copies the image.
 * Reads no shared mutable state: any number of threads may call it at once
 * with their own buffers. The JPEG and PNG decoders allocate and free their
 * own working memory inside the call. Returns OT_ERR_ARG for i out of range or
 * a buffer smaller than the image (the message gives the size needed;
 * ot_data_max_image_bytes is always enough), OT_ERR_PARSE naming the file for
 * an image that cannot be decoded (corrupt or truncated data, not a JPEG or
 * PNG, an unsupported JPEG colour space, larger than OT_DATA_MAX_SIDE per side
 * or OT_DATA_MAX_PIXELS), OT_ERR_IO when the file cannot be opened or read,
 * OT_ERR_NOMEM. On failure *img is untouched and buf may hold partial data.
 *
 * JPEG (libjpeg-turbo, as PIL decodes it: islow IDCT, fancy upsampling):
 * baseline and progressive; gray stays 1 channel; YCbCr and RGB give 3;
 * CMYK and YCCK are taken as Adobe's inverted CMYK (as PIL assumes) and
 * turned into RGB with PIL's formula R = K' - K'(255 - C')/255 on stored
 * values C', K' (rounded as PIL's MULDIV255). Every libjpeg warning about
 * corrupt data (a truncated file, bad Huffman codes, extraneous bytes) is an
 * error, so damaged data is never filled in silently.
 * PNG (libpng): gray, gray + alpha, palette, RGB and RGBA, 1 to 16 bits,
 * interlaced or not. Alpha and tRNS transparency are dropped (PIL's
 * convert("RGB")), palettes expanded, 16-bit samples cut to their high byte,
 * low bit depths scaled to 0..255; no gamma correction. Gray and gray + alpha
 * give 1 channel, everything else 3. A bad CRC in a critical chunk is an error.
 */
ot_status ot_data_decode(const ot_dataset *ds, int64_t i, ot_image *img, void *buf,
                         size_t buf_bytes, ot_err *err);

/* True when err holds the error ot_data_get, ot_data_decode or
   ot_data_load_batch give for an image file that cannot be decoded (status
   OT_ERR_PARSE; the message names the file). Only image folders give it after
   ot_data_open, so a trainer may count such images and skip them. Missing or
   unreadable files (OT_ERR_IO), out of memory and argument errors are not. */
bool ot_data_is_bad_image_error(const ot_err *err);

/* Splits the dataset's indices into a training and a validation part, per
 * class: of class c's n_c images, round(fraction * n_c) (half up) go to
 * validation, but at most n_c - 1, so each class keeps a training image. Which
 * ones is decided by ot_data_shuffle on that class's images (in index order)
 * with a seed derived from `seed` and c, so the split depends only on the
 * labels, fraction and seed. Both lists come out sorted ascending, disjoint,
 * and together hold every index; *n_val may be 0 for a tiny dataset.
 * *train_idx and *val_idx are allocated with ot_malloc and owned by the
 * caller (release with ot_free); on failure both are NULL. Returns OT_ERR_ARG
 * when fraction is not inside (0, 1), OT_ERR_NOMEM.
 */
ot_status ot_data_split_indices(const ot_dataset *ds, double fraction, uint64_t seed,
                                int64_t **train_idx, int64_t *n_train, int64_t **val_idx,
                                int64_t *n_val, ot_err *err);

/* ------------------------------------------------------------ transform */

typedef enum {
    OT_DATA_NORM_NONE = 0, /* mean 0, std 1: the output is x / 255                  */
    OT_DATA_NORM_IMAGENET, /* mean (.485, .456, .406), std (.229, .224, .225)       */
    OT_DATA_NORM_HALF,     /* mean .5, std .5: the output lies in [-1, 1]           */
} ot_data_norm;

/* The accepted normalization: pixels are scaled to 0 .. 1 before it, so a
   mean outside -1 .. 2 or a std outside 0.001 .. 1000 is a mistake (a 0..255
   scale, a typo) that would feed the network huge or infinite values. */
#define OT_DATA_MEAN_MIN (-1.0)
#define OT_DATA_MEAN_MAX 2.0
#define OT_DATA_STD_MIN 0.001
#define OT_DATA_STD_MAX 1000.0

/* Resize(size) -> CenterCrop(size) -> x / 255 -> (x - mean[c]) / std[c]. */
typedef struct ot_data_transform {
    int size;       /* output side S, 1 .. OT_DATA_MAX_SIZE                     */
    float mean[3];  /* per output channel, OT_DATA_MEAN_MIN .. OT_DATA_MEAN_MAX */
    float std[3];   /* per output channel, OT_DATA_STD_MIN .. OT_DATA_STD_MAX   */
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
 * labels[n]. `scratch` holds scratch_bytes bytes (ot_data_batch_scratch_bytes
 * is enough), aligned as malloc aligns. Returns OT_ERR_ARG for an index out
 * of range (naming it), an invalid transform, or too small a scratch buffer.
 * CIFAR-10 and IDX: allocates nothing.
 * Image folders: each image is decoded into the front of scratch (as
 * ot_data_decode; the decoders allocate and free working memory per image)
 * and transformed with the scratch behind it; C is always 3 (gray images are
 * replicated whatever t->to_rgb says). A file that cannot be decoded stops the
 * batch with its ot_data_decode error, prefixed with "batch item <b>"; x and
 * labels are then partly written.
 */
ot_status ot_data_load_batch(const ot_dataset *ds, const int64_t *indices, int n,
                             const ot_data_transform *t, float *x, int64_t *labels,
                             void *scratch, size_t scratch_bytes, ot_err *err);

/* Scratch bytes ot_data_load_batch needs for any batch of this dataset with
   transform t; 0 when t is invalid. CIFAR-10 and IDX: exactly
   ot_data_prepare_scratch_bytes for the dataset's shape. Image folders: room
   for the largest image allowed (ot_data_max_image_bytes, 192 MiB) plus the
   transform's scratch for a side of OT_DATA_MAX_SIDE, about 196 MiB for S =
   224; only what a batch's images use is ever touched. */
size_t ot_data_batch_scratch_bytes(const ot_dataset *ds, const ot_data_transform *t);

/* ------------------------------------------------------- single files */

/* Where a decoder writes pixels: called once the header is read, it returns
   channels x height x width bytes for the planar image, or NULL after
   setting err (its code is then what the decoder returns). */
typedef uint8_t *(*ot_data_dest_fn)(void *user, int height, int width, int channels,
                                    ot_err *err);

/* Decodes the JPEG or PNG file at `path` (told apart by content, not name)
 * into planar uint8 at the memory dest gives, and describes it in *img (1 or
 * 3 channels; see ot_data_decode for colour handling). Thread-safe: all state
 * is per call. Returns OT_ERR_IO (cannot open or read), OT_ERR_PARSE (not JPEG
 * or PNG, corrupt or truncated, unsupported colour space, over the size
 * limits), OT_ERR_NOMEM, or dest's error. Messages start with the path.
 */
ot_status ot_data_decode_file(const char *path, ot_data_dest_fn dest, void *user, ot_image *img,
                              ot_err *err);

/* The images idx[0 .. n) of ds (idx NULL: 0 .. n-1) that decode, in that
   order, into *good (ot_malloc'd, owned by the caller; release with ot_free),
   their count in *n_good and the count of the others in *n_bad. An image that
   cannot be decoded (OT_ERR_PARSE) or read (OT_ERR_IO) is skipped, and a
   warning names it; any other error (OT_ERR_NOMEM, OT_ERR_ARG) stops the
   scan and is returned, with *good NULL. */
ot_status ot_data_scan_readable(const ot_dataset *ds, const int64_t *idx, int64_t n,
                                int64_t **good, int64_t *n_good, int64_t *n_bad, ot_err *err);

/* --------------------------------------------------------- selections */

/* A new data set (owned by the caller, release with ot_data_free) holding the
   images of classes[0 .. n_classes) of `ds`, relabelled 0 .. n_classes-1 in
   that order and named as in `ds`, at most `per_class` images of each (0:
   all), chosen by ot_data_shuffle(seed) and kept in `ds`'s order. CIFAR-10
   and IDX only. Errors: OT_ERR_UNSUPPORTED (an image folder), OT_ERR_ARG (a
   class out of range or twice, an empty selection), OT_ERR_NOMEM. */
ot_status ot_data_select(const ot_dataset *ds, const int *classes, int n_classes,
                         int64_t per_class, uint64_t seed, ot_dataset **out, ot_err *err);

#endif
