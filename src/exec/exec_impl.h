/*
 * exec_impl.h: what src/exec/exec.c shares with the backends.
 *
 * exec.c specialises the graph (binds input shapes, re-runs inference, checks
 * that everything is static), then hands it to a backend. A backend builds a
 * list of steps and declares the buffers each step reads and writes;
 * exec.c plans them into one arena; the backend then binds its primitives to
 * the planned addresses. Running walks the steps.
 */
#ifndef OT_EXEC_IMPL_H
#define OT_EXEC_IMPL_H

#include "exec.h"
#include "plan.h"
#include "rewrite.h"

/* Where a tensor's bytes live. */
typedef enum {
    OT_LOC_NONE = 0,
    OT_LOC_BUF,    /* planned buffer `id` in the arena                     */
    OT_LOC_CONST,  /* constant data owned by the graph or the executor     */
    OT_LOC_INPUT,  /* input `id`: the caller's data during a run, or the
                      backend buffer it is copied into (not host-visible)  */
    OT_LOC_OUTPUT, /* output buffer `id`, owned by the executor            */
    OT_LOC_STATE,  /* mutable state buffer of value `id`                   */
} ot_loc_kind;

typedef struct ot_loc {
    ot_loc_kind kind;
    int id;
    const void *ptr; /* OT_LOC_CONST */
} ot_loc;

/* One copy of a record store (ot_exec_store): `bytes` of float32 data (the
   float side's bytes for a conversion) from src to dst, each in backend
   memory or in the store's host memory. */
typedef enum { OT_MOVE_COPY = 0, OT_MOVE_TO_BF16, OT_MOVE_FROM_BF16 } ot_move_conv;
typedef struct ot_exec_move {
    void *dst;
    const void *src;
    size_t bytes;
    ot_move_conv conv;
} ot_exec_move;

typedef struct ot_backend ot_backend;

struct ot_exec {
    ot_graph *g;          /* specialised clone of the caller's graph          */
    const ot_backend *be;
    void *be_state;
    ot_exec_opts opts;
    ot_precision precision; /* what the products compute in: opts.precision,
                               AUTO resolved by the backend's build          */

    int32_t *in_ids;      /* graph inputs in binding order                    */
    ot_tensor *in_shapes; /* their compiled dtype and dims                    */
    int n_in;
    const ot_tensor *in_now; /* the caller's inputs during a run               */

    void **in_mem;        /* backend buffers for the inputs (not host-visible) */
    bool *in_prefetch;    /* per input: opts.prefetch_input's (NULL: none)     */
    bool *in_ahead;       /* per input: handed in ahead for the next run       */
    ot_exec_u8 *in_u8;    /* per input: its uint8 transform (coef copied), or
                             zeroed (c_in 0); NULL when no input has one      */
    bool in_flight;       /* a launch not yet waited for                       */

    int32_t *out_ids;
    ot_tensor *outs;      /* plain outputs in backend memory, owned           */
    ot_tensor *host_outs; /* host copies of outs (not host-visible), owned    */
    bool *host_fresh;     /* host_outs[i] holds the last run's output         */
    int n_out;

    void **state;         /* per value id: backend buffer of an OT_VAL_STATE value */
    bool state_borrowed;  /* the buffers belong to opts.share_state           */
    /* per value id: the state value this node output overwrites in place (the
       op's in_place list, the input being state), -1 for none; NULL when no
       output does. A backend places such an output in that state buffer. */
    int32_t *state_out;

    unsigned rewrites;    /* OT_REWRITE_* the backend opted into              */
    ot_const_pool consts; /* constants the rewrites made (folded weights)      */
    ot_fuse_plan fuse;    /* with OT_REWRITE_FUSE: the fusion rules' counts    */

    ot_plan_buf *bufs;
    int n_bufs, cap_bufs;
    unsigned char *arena;
    size_t arena_bytes;
    int n_steps;          /* set by the backend before planning               */
};

/* Declares a buffer of `bytes` alive over steps [first, last]; returns its id
   through *id. Errors: OT_ERR_NOMEM. */
ot_status ot_exec_add_buf(ot_exec *x, size_t bytes, int first, int last, int *id, ot_err *err);
/* Extends a buffer's lifetime to include `step`. */
void ot_exec_buf_touch(ot_exec *x, int id, int step);
/* Address of a location in backend memory (valid after planning; a
   host-visible backend's inputs during a run). Only the backend may
   dereference it. */
void *ot_exec_loc_ptr(const ot_exec *x, ot_loc loc);

/* Bytes [off, off + bytes) of a location, copied from the host into backend
   memory and from backend memory out to the host, through the backend's
   hooks. Errors: OT_ERR_BACKEND. */
ot_status ot_exec_loc_write(ot_exec *x, ot_loc loc, size_t off, const void *src, size_t bytes,
                            ot_err *err);
ot_status ot_exec_loc_read(const ot_exec *x, ot_loc loc, size_t off, void *dst, size_t bytes,
                           ot_err *err);

/*
 * A backend. exec.c calls, in order: rewrites (optional: which shared
 * rewrites of rewrite.h to apply to x->g before the backend sees it), open
 * (optional: the device context, x->be_state), build (steps and buffer
 * declarations, with x->fuse when it opted into OT_REWRITE_FUSE), mem_alloc for the
 * arena, the state, the outputs and (when not host-visible) the inputs, bind,
 * then run per ot_exec_run; copy_in / copy_out whenever the caller's data
 * crosses; at the end mem_free for each buffer, then free.
 *
 * exec.c never dereferences what mem_alloc returns: it only stores the
 * address, adds offsets to it, and hands it back to the hooks. A backend
 * whose memory the host can address sets host_visible: the executor then
 * passes the caller's inputs by address and returns outputs without copies.
 */
struct ot_backend {
    const char *name;
    bool host_visible;
    unsigned (*rewrites)(const ot_exec *x);
    ot_status (*open)(ot_exec *x, ot_err *err);
    /* `bytes` (> 0) of zeroed backend memory, aligned to at least 64 bytes. */
    ot_status (*mem_alloc)(ot_exec *x, size_t bytes, void **out, ot_err *err);
    void (*mem_free)(ot_exec *x, void *p);
    /* Host `src` into backend memory at `dst`, and backend `src` to host `dst`
       (addresses from ot_exec_loc_ptr). */
    ot_status (*copy_in)(ot_exec *x, void *dst, const void *src, size_t bytes, ot_err *err);
    ot_status (*copy_out)(const ot_exec *x, void *dst, const void *src, size_t bytes,
                          ot_err *err);
    /* Builds steps and declares buffers. Errors name the node. */
    ot_status (*build)(ot_exec *x, ot_err *err);
    /* Binds to the planned arena, the state and the outputs (all allocated). */
    ot_status (*bind)(ot_exec *x, ot_err *err);
    ot_status (*run)(ot_exec *x, ot_err *err);
    /* Optional, together (ot_exec_launch): run's steps enqueued without
       waiting for them, the wait, and input i's bytes of the next run taken
       while a launch may be in flight (an input with x->in_prefetch). */
    ot_status (*launch)(ot_exec *x, ot_err *err);
    ot_status (*wait)(ot_exec *x, ot_err *err);
    ot_status (*prefetch)(ot_exec *x, int i, const void *src, size_t bytes, ot_err *err);
    /* Optional: input i's uint8 images (x->in_u8[i]) of the next run, the
       transform run on the device when that run starts. */
    ot_status (*prefetch_u8)(ot_exec *x, int i, const uint8_t *images, size_t bytes,
                             ot_err *err);
    void (*step_profile)(const ot_exec *x, int i, ot_exec_step_time *out);
    /* Optional: copies state value `value` between its buffer and plain
       row-major host bytes (to_host: out to `host`, else in from it) when the
       backend keeps that value in a layout of its own; *done false when it
       does not (exec.c then copies the bytes as they are). */
    ot_status (*state_copy)(const ot_exec *x, int32_t value, void *host, bool to_host,
                            bool *done, ot_err *err);
    /* Optional: the queue its runs are ordered on (a cudaStream_t), for
       collectives on its memory; NULL (or no hook): runs are synchronous. */
    void *(*queue)(const ot_exec *x);
    /* Whether it computes in precision `p` other than FP32 and AUTO, or why
       not (OT_ERR_UNSUPPORTED, the reason after "--precision P on DEVICE: ").
       NULL: FP32 only. */
    ot_status (*precision)(ot_precision p, ot_err *err);
    /* Optional, for record stores (exec_store.c): host memory the device
       reads and writes directly (pinned), its release, the moves (on the
       executor's stream in order with its runs; waited for when `wait`;
       NULL: the backend's memory is the host's, exec_store.c copies), and
       the device's free and total memory (NULL: host memory). */
    ot_status (*host_alloc)(ot_exec *x, size_t bytes, void **out, ot_err *err);
    void (*host_free)(ot_exec *x, void *p);
    ot_status (*move)(ot_exec *x, const ot_exec_move *m, int n, bool wait, ot_err *err);
    bool (*mem_info)(const ot_exec *x, size_t *free_bytes, size_t *total_bytes);
    void (*free)(ot_exec *x);
};

extern const ot_backend ot_backend_cpu;

/* ot_exec_compile on a given backend (tests run the CPU backend as if its
   memory were not host-visible). */
ot_status ot_exec_compile_on(const ot_backend *be, const ot_graph *g, const ot_exec_input *inputs,
                             int n_inputs, const ot_exec_opts *opts, ot_exec **out, ot_err *err);

#endif
