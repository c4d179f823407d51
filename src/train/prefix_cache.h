/*
 * prefix_cache.h: the frozen-prefix cache of the training loop.
 *
 * When the frozen prefix is deterministic (BN there in eval mode; no random
 * augmentation), its output for each image is computed in the first epoch
 * and reused in the later ones. One record per image holds the image's slice
 * of every cut value, in memory up to a byte budget, beyond that in an
 * unlinked file under a folder. With bf16 the records of float cut values
 * hold bfloat16 (round to nearest even) and the prefix's output is rounded
 * the same way before every step (ot_train_cache_round), so the first epoch,
 * the cached ones and a resumed run all see the same features.
 *
 * The cache only stores and returns bytes: which images it holds is marked
 * by the loop (`cached`), which also decides when to fill it.
 */
#ifndef OT_TRAIN_PREFIX_CACHE_H
#define OT_TRAIN_PREFIX_CACHE_H

#include "core/core.h"

typedef struct ot_train_cache {
    bool on;              /* the cache is in use                              */
    int n_cut;
    size_t *cut_bytes;    /* per cut value, bytes of one image's slice        */
    float **cut_buf;      /* per cut value, a batch's worth read from the cache */
    size_t *rec_bytes;    /* per cut value, bytes of one image's record       */
    size_t rec_total;     /* sum of rec_bytes                                 */
    bool *rec_bf16;       /* per cut value: its records are bfloat16          */
    bool bf16;            /* some record is bfloat16: the steps see rounded values */
    uint16_t *rec_tmp;    /* one bfloat16 record, for the cache file          */
    uint64_t bytes;       /* the cache's size                                 */
    unsigned char *mem;   /* the records in memory; NULL: in the file         */
    int fd;               /* the unlinked cache file; -1: none                */
    uint8_t *cached;      /* per image: its record is valid                   */
} ot_train_cache;

/* An unused cache (off, no file). Cannot fail. */
void ot_train_cache_init(ot_train_cache *c);

/* Turns the cache on for n_images images: cut[0 .. n_cut) are the prefix's
   output tensors for a batch of `batch` images (their sizes and dtypes;
   only float values are kept as bfloat16 with `bf16`). In memory when the
   records fit `budget` bytes (0: 2 GiB), else in a file under `dir` (NULL:
   $TMPDIR or /tmp). A record size that overflows leaves the cache off
   (OT_OK). Errors: OT_ERR_NOMEM, OT_ERR_IO (the file). */
ot_status ot_train_cache_open(ot_train_cache *c, const ot_tensor *cut, int n_cut, int batch,
                              int64_t n_images, bool bf16, uint64_t budget, const char *dir,
                              ot_err *err);

/* Writes (write) or reads the record of image i, cut value c, from or into
   buf, which holds the image's slice as the executor has it (cut_bytes[c]).
   Errors: OT_ERR_IO (the cache file). */
ot_status ot_train_cache_io(ot_train_cache *c, int64_t i, int cut, void *buf, bool write,
                            ot_err *err);

/* Rounds the prefix's output of cut value `cut` for n images in place where
   the cache keeps bfloat16, so that a step sees the same values whether they
   come from the prefix or from the cache. */
void ot_train_cache_round(const ot_train_cache *c, int cut, float *p, int n);

/* Whether all of the images idx[0 .. n) have a valid record. */
bool ot_train_cache_has(const ot_train_cache *c, const int64_t *idx, int n);

/* Releases the buffers and closes the file. */
void ot_train_cache_fini(ot_train_cache *c);

#endif
