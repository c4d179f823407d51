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
 * On a device (the CUDA backend) the records are kept where the executors
 * compute (an ot_exec_store, exec.h): in the device's memory when they fit
 * beside what the run still needs there, else in pinned host memory within
 * the budget, else as on the CPU (ot_train_cache_place decides). Then rows
 * move between the prefix's outputs, the records and the step's inputs on
 * the device, and bf16 records are rounded there, with the CPU's rounding.
 *
 * The cache only stores and returns bytes: which images it holds is marked
 * by the loop (`cached`), which also decides when to fill it.
 */
#ifndef OT_TRAIN_PREFIX_CACHE_H
#define OT_TRAIN_PREFIX_CACHE_H

#include "core/core.h"
#include "exec/exec.h"

/* Where the records are kept. */
typedef enum {
    OT_CACHE_HOST = 0, /* host memory within the budget, else a file          */
    OT_CACHE_DEVICE,   /* the device's memory                                  */
    OT_CACHE_PINNED,   /* pinned host memory the device copies from directly   */
} ot_cache_place;

/* What the placement depends on (bytes). */
typedef struct ot_cache_place_in {
    uint64_t need;        /* the records                                        */
    bool device;          /* the executors compute in a device's own memory     */
    uint64_t dev_free;    /* free there, the training executors allocated       */
    uint64_t dev_total;
    uint64_t reserve;     /* what the run still allocates there (validation)    */
    uint64_t host_budget; /* host memory for the records (0: 2 GiB)             */
} ot_cache_place_in;

/* Device memory left free beyond the reserve: 1/16 of the device's, at
   least this much (allocations of the libraries, fragmentation). */
#define OT_CACHE_DEVICE_MARGIN_MIN ((uint64_t)256 << 20)

/* Where the records go: the device when need + reserve + margin fit its
   free memory; else pinned host memory when need fits the host budget;
   else the host (memory within the budget, else a file). Not a device:
   the host. *why (may be NULL): the reason, static text. */
ot_cache_place ot_train_cache_place(const ot_cache_place_in *in, const char **why);

/* Where a cache may go beyond host memory: the prefix's executor (NULL:
   the host only), what the run still allocates on its device, and a
   placement forced ("device", "pinned", "host"; NULL: decided): on a
   backend that computes in host memory "device" and "pinned" keep the
   records in its memory through the same store (the tests' path). */
typedef struct ot_train_cache_dev {
    ot_exec *x;
    uint64_t reserve;
    const char *force;
} ot_train_cache_dev;

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
    ot_cache_place place;
    const char *place_why; /* why there (static text)                         */
    ot_exec_store *store; /* the records where the executors compute (place
                             DEVICE or PINNED); NULL: mem or the file       */
} ot_train_cache;

/* An unused cache (off, no file). Cannot fail. */
void ot_train_cache_init(ot_train_cache *c);

/* Turns the cache on for n_images images: cut[0 .. n_cut) are the prefix's
   output tensors for a batch of `batch` images (their sizes and dtypes;
   only float values are kept as bfloat16 with `bf16`). In memory when the
   records fit `budget` bytes (0: 2 GiB), else in a file under `dir` (NULL:
   $TMPDIR or /tmp). With `dev`, on a device where ot_train_cache_place
   says so (or dev->force), in an ot_exec_store of dev->x instead (a device
   store that cannot be had falls back to pinned, then to the host). A
   record size that overflows leaves the cache off (OT_OK). Errors:
   OT_ERR_NOMEM, OT_ERR_IO (the file), OT_ERR_ARG (dev->force unknown),
   OT_ERR_BACKEND. */
ot_status ot_train_cache_open(ot_train_cache *c, const ot_tensor *cut, int n_cut, int batch,
                              int64_t n_images, bool bf16, uint64_t budget, const char *dir,
                              const ot_train_cache_dev *dev, ot_err *err);

/* Writes (write) or reads the record of image i, cut value c, from or into
   buf, which holds the image's slice as the executor has it (cut_bytes[c]);
   not for records in a store (c->store: ot_exec_store_put/take).
   Errors: OT_ERR_IO (the cache file). */
ot_status ot_train_cache_io(ot_train_cache *c, int64_t i, int cut, void *buf, bool write,
                            ot_err *err);

/* Rounds the prefix's output of cut value `cut` for n images in place where
   the cache keeps bfloat16, so that a step sees the same values whether they
   come from the prefix or from the cache. */
void ot_train_cache_round(const ot_train_cache *c, int cut, float *p, int n);

/* Whether all of the images idx[0 .. n) have a valid record. */
bool ot_train_cache_has(const ot_train_cache *c, const int64_t *idx, int n);

/* Where the records are, for messages: "device memory", "pinned host
   memory", "host memory" or "a file". */
const char *ot_train_cache_where(const ot_train_cache *c);

/* Releases the buffers, the store and closes the file (the store first: before
   the executor it was opened on). */
void ot_train_cache_fini(ot_train_cache *c);

#endif
