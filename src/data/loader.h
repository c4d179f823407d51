/*
 * loader.h: training-time data loading on top of data.h. Random augmentation
 * (augment.c) and a batch loader that prepares batches ahead on background
 * threads (loader.c).
 *
 * Augmentation is torchvision's default training pipeline for a pretrained
 * CNN, on PIL images:
 *     RandomResizedCrop(S, scale=(0.08, 1.0), ratio=(3/4, 4/3))
 *     -> RandomHorizontalFlip(0.5) -> ToTensor() -> Normalize(mean, std)
 * The crop box is drawn by torchvision's algorithm (ten tries of an area
 * fraction and a log-uniform aspect ratio, then the centre-crop fallback),
 * and the box is resized to S x S with the same PIL bilinear resample as
 * ot_data_prepare. The random numbers cannot be torch's: they come from a
 * counter-based generator keyed by (seed, epoch, image index), so an image's
 * augmentation depends on nothing else, whatever thread prepares it.
 *
 * The loader hands out batches in the order of a permutation the caller
 * gives per epoch. The batches are the same, bit for bit, for any number of
 * worker threads, and without augmentation equal ot_data_load_batch's.
 *
 * Not here: the shuffle (ot_data_shuffle makes the permutation), image
 * decoding (ot_data_get), other augmentations (colour jitter, rotation).
 */
#ifndef OT_DATA_LOADER_H
#define OT_DATA_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "data/data.h"

/* --------------------------------------------------------- augmentation */

/* RandomResizedCrop's parameters, as torchvision fixes them by default. */
#define OT_DATA_AUG_SCALE_MIN 0.08
#define OT_DATA_AUG_SCALE_MAX 1.0
#define OT_DATA_AUG_RATIO_MIN (3.0 / 4.0)
#define OT_DATA_AUG_RATIO_MAX (4.0 / 3.0)

/* Scratch bytes ot_data_prepare_augmented needs for an image of height x
   width (any crop of it); enough for any smaller image too. 0 when the size
   or the transform is invalid. */
size_t ot_data_augment_scratch_bytes(int height, int width, const ot_data_transform *t);

/* Augments one image into out: (C, S, S) floats, CHW, C from
 * ot_data_out_channels, S = t->size. The crop box and the flip come from
 * (seed, epoch, index) alone: the same arguments give the same bytes on any
 * thread. `index` is the image's index in its dataset. Nothing is allocated;
 * `scratch` holds `scratch_bytes` bytes, aligned as malloc aligns, and is
 * overwritten. Thread-safe for distinct out and scratch. Returns OT_ERR_ARG
 * for an invalid transform or image, or too small a scratch buffer.
 */
ot_status ot_data_prepare_augmented(const ot_image *img, const ot_data_transform *t,
                                    uint64_t seed, int64_t epoch, int64_t index, float *out,
                                    void *scratch, size_t scratch_bytes, ot_err *err);

/* --------------------------------------------------------------- loader */

/* Prepares batches, on background threads or the caller's. Owns its batch
   buffers, threads and a copy of the epoch's permutation; borrows the
   dataset, which must outlive it. One consumer thread calls start_epoch,
   next, bad_count and free. */
typedef struct ot_data_loader ot_data_loader;

/* Zero-initialise, then set what you need. */
typedef struct ot_data_loader_opts {
    int batch_size; /* images per batch, 1 .. 65536                                */
    int n_workers;  /* 0: prepare in the caller's thread inside next(); 1 .. 256:
                       background threads                                        */
    int prefetch;   /* batches prepared ahead of the one the caller holds; 0 picks
                       n_workers (one batch per worker in flight; a worker is
                       20x faster than a training step, so one suffices and
                       each extra batch is memory). Ignored without workers    */
    bool augment;   /* ot_data_prepare_augmented instead of ot_data_prepare      */
    uint64_t seed;  /* augmentation seed                                          */
    bool skip_bad;  /* skip images whose read or transform fails with
                       OT_ERR_PARSE or OT_ERR_IO, and count them                  */
} ot_data_loader_opts;

/* Creates a loader for `ds` (borrowed) and a copy of `t`, allocating every
 * buffer it will use: (prefetch + 1) batches of (batch_size, C, S, S) floats
 * (one batch without workers), one more with skip_bad, and per thread an
 * image buffer (ot_data_max_image_bytes: 192 MiB of address space for an
 * image folder, touched only as far as its images need) and the transform's
 * scratch. C is ot_data_out_channels for the dataset's channels; an RGB
 * dataset's gray images (image folders) are replicated to RGB, as
 * ot_data_load_batch does.
 * Starts the worker threads, which wait for ot_data_loader_start_epoch.
 * On success *out owns it all; release with ot_data_loader_free.
 * Returns OT_ERR_ARG (options out of range, invalid transform), OT_ERR_NOMEM,
 * OT_ERR_INTERNAL (a thread could not be started).
 */
ot_status ot_data_loader_new(const ot_dataset *ds, const ot_data_transform *t,
                             const ot_data_loader_opts *opts, ot_data_loader **out, ot_err *err);

/* Starts an epoch over perm[0 .. n-1] (dataset indices, usually from
 * ot_data_shuffle; copied, so the caller keeps perm). `epoch` keys the
 * augmentation. Abandons the current epoch, if any: the workers finish the
 * image in hand first. Batches from earlier next() calls become invalid, and
 * the bad count restarts at 0. Allocates nothing. Returns OT_ERR_ARG when n
 * is negative or above the dataset's count, or an index is out of range.
 */
ot_status ot_data_loader_start_epoch(ot_data_loader *l, const int64_t *perm, int64_t n,
                                     int64_t epoch, ot_err *err);

/* The epoch's next batch: *x (n, C, S, S) floats and *labels[n], pointers into
 * the loader, valid until the next call of next, start_epoch or free. Batches
 * come in the order of perm, batch_size images each but the last; *n = 0 at
 * the end of the epoch (and on every call after). With skip_bad, a skipped
 * image's place goes to the images after it, so the batches follow the good
 * images and the count of batches is known only at the end. Images are read
 * with ot_data_decode into the thread's buffer. Allocates nothing (image
 * folders' decoders allocate inside the workers). Returns the error of the
 * first image in perm order whose read or transform fails (and is not
 * skipped), with its message prefixed by "image <index>"; the same error
 * again until the next start_epoch. OT_ERR_ARG when no epoch was started.
 */
ot_status ot_data_loader_next(ot_data_loader *l, float **x, int64_t **labels, int *n,
                              ot_err *err);

/* Images skipped so far this epoch, counted as next() passes them: the same
   for any number of workers. */
int64_t ot_data_loader_bad_count(const ot_data_loader *l);

/* Stops the workers (each finishes the image in hand), joins them, and
   releases everything, mid-epoch or not. NULL does nothing. */
void ot_data_loader_free(ot_data_loader *l);

/* ------------------------------------------------- internal: src/data, tests */

/* One RandomResizedCrop + RandomHorizontalFlip draw: the box in the image. */
typedef struct ot_data_crop {
    int top, left, height, width;
    bool flip;
    bool fallback; /* no try fitted: torchvision's centre crop of clamped ratio */
} ot_data_crop;

/* The crop and flip ot_data_prepare_augmented uses for image `index` of size
   height x width (both >= 1) in `epoch`. Cannot fail. */
void ot_data_augment_params(int height, int width, uint64_t seed, int64_t epoch, int64_t index,
                            ot_data_crop *crop);

/* transform.c: scratch for ot_data_prepare_box on any box of a height x width
   image; 0 when the size or the transform is invalid. */
size_t ot_data_box_scratch_bytes(int height, int width, const ot_data_transform *t);

/* transform.c: torchvision's resized_crop(img, top, left, box_h, box_w, (S, S),
 * BILINEAR) on the PIL image, then hflip when `flip`, ToTensor and Normalize,
 * into out (C, S, S). Allocates nothing. Returns OT_ERR_ARG for a box outside
 * the image, an invalid transform or image, or scratch smaller than
 * ot_data_box_scratch_bytes.
 */
ot_status ot_data_prepare_box(const ot_image *img, const ot_data_transform *t, int top, int left,
                              int box_h, int box_w, bool flip, float *out, void *scratch,
                              size_t scratch_bytes, ot_err *err);

/* transform.c: ot_data_prepare's resample of an h x w image as tables, for
   a device that runs it on many images of that size (the CUDA backend's
   otk_prepare_u8): the output side S, the resized size rh x rw, the crop
   offset (top, left), the taps per output sample of the horizontal and
   vertical passes (kw, kh; 0 where a pass does not run because that side
   keeps its size), and n_coef, the int32 count of the tables. */
typedef struct ot_data_resample {
    int S, h, w, rh, rw, top, left, kw, kh;
    size_t n_coef;
} ot_data_resample;

/* Fills *r; false when the sizes or the transform are out of range. */
bool ot_data_resample_plan(int h, int w, const ot_data_transform *t, ot_data_resample *r);

/* Writes the tables to coef (n_coef int32): the horizontal pass's
   coefficients (S x kw) and bounds (S pairs of first tap and tap count),
   then the vertical pass's (S x kh, S pairs), in PIL's 22-bit fixed point. */
void ot_data_resample_coefs(const ot_data_resample *r, int32_t *coef);

/* The same for ot_data_prepare_box's box (top, left, bh, bw) of an h x w
   image resized to S x S (rh = rw = S, top = left = 0 in *r; the box's
   origin is the caller's): false when the box leaves the image or a size
   is out of range. ot_data_resample_coefs then writes its tables. */
bool ot_data_box_resample_plan(int h, int w, int top, int left, int bh, int bw,
                               const ot_data_transform *t, ot_data_resample *r);

/* The largest n_coef of any box of an h x w image; 0 when out of range. */
size_t ot_data_box_coef_max(int h, int w, const ot_data_transform *t);

/* A replacement for ot_data_get, for tests that need images that fail to
   read. Called from the worker threads at once; must be thread-safe. */
typedef ot_status (*ot_data_source_fn)(void *user, int64_t index, ot_image *img, int *label,
                                       ot_err *err);

/* Reads images through fn(user, ...) instead of ot_data_get from now on.
   Call between epochs (before start_epoch). */
void ot_data_loader_set_source(ot_data_loader *l, ot_data_source_fn fn, void *user);

#endif
