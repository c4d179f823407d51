/*
 * plan_store.h: the CUDA backend's plan cache on disk.
 *
 * One text file per folder, DIR/cudnn-plans-v1.txt, holds the engine choice
 * of every convolution plan made on this machine: a line per plan, keyed by
 * a string that names the operation graph, the shapes, the layout, the
 * dtype, the cuDNN version, the device's name and its compute capability
 * (ot_plan_key), with the engine's global index, its knob choices, its
 * workspace bytes and, when it was timed (--autotune), its time. A run that
 * finds its key rebuilds the plan from that engine without heuristics or
 * timing. The file starts with a header line and ends with a line holding
 * the record count and a checksum of everything before it; a file that is
 * not ours, of another format version, truncated or altered is ignored as a
 * whole, with a warning, and replaced at the next write. Writes merge with
 * the records already on disk (another process may have added some) and go
 * through ot_atomic_write, so no reader ever sees half a file.
 */
#ifndef OT_EXEC_CUDA_PLAN_STORE_H
#define OT_EXEC_CUDA_PLAN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

#define OT_PLAN_KEY_MAX 640
#define OT_PLAN_MAX_KNOBS 32
#define OT_PLAN_FILE "cudnn-plans-v1.txt"

typedef struct ot_plan_rec {
    char key[OT_PLAN_KEY_MAX];
    int64_t engine; /* CUDNN_ATTR_ENGINE_GLOBAL_INDEX */
    int n_knobs;
    int64_t knob_type[OT_PLAN_MAX_KNOBS], knob_value[OT_PLAN_MAX_KNOBS];
    int64_t ws;  /* workspace bytes */
    double ms;   /* measured milliseconds per run; 0: not timed */
} ot_plan_rec;

typedef struct ot_plan_store {
    ot_plan_rec *recs;
    int n, cap;
} ot_plan_store;

/* What ot_plan_store_load found. */
typedef enum {
    OT_PLAN_FILE_OK = 0,
    OT_PLAN_FILE_MISSING, /* no file yet: nothing said                          */
    OT_PLAN_FILE_FOREIGN, /* not a plan cache, or another format version       */
    OT_PLAN_FILE_CORRUPT, /* truncated, altered or unreadable                  */
} ot_plan_file_state;

/* What goes into a key besides the operation's own text. */
typedef struct ot_plan_env {
    size_t cudnn_version;
    const char *device_name; /* "NVIDIA H200"; blanks become '_' in the key */
    int cc_major, cc_minor;
} ot_plan_env;

/* The key of an operation graph described by `what` ("conv0/f32/nchw/..."
   with its shapes: no blanks) in `env`; false when it does not fit. */
bool ot_plan_key(const ot_plan_env *env, const char *what, char *key, size_t size);

/* The folder of the cache: `dir` when given, else $XDG_CACHE_HOME/onnxtrain,
   else $HOME/.cache/onnxtrain; false when none can be named. */
bool ot_plan_store_dir(const char *dir, char *out, size_t size);

/* Reads DIR/OT_PLAN_FILE into *s (emptied first). A foreign or corrupt file
   leaves *s empty and logs one warning naming the file and why. */
ot_plan_file_state ot_plan_store_load(const char *dir, ot_plan_store *s);

const ot_plan_rec *ot_plan_store_find(const ot_plan_store *s, const char *key);

/* Adds or replaces the record of rec->key. Errors: OT_ERR_NOMEM, OT_ERR_ARG
   (a key with blanks or too many knobs). */
ot_status ot_plan_store_put(ot_plan_store *s, const ot_plan_rec *rec, ot_err *err);

/* Writes *s merged with what DIR/OT_PLAN_FILE holds now (records of *s win),
   creating DIR (and its parents) when missing; atomically. Errors: OT_ERR_IO
   naming the path. */
ot_status ot_plan_store_save(const ot_plan_store *s, const char *dir, ot_err *err);

void ot_plan_store_free(ot_plan_store *s);

#endif
