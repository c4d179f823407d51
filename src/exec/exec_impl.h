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

/* Where a tensor's bytes live. */
typedef enum {
    OT_LOC_NONE = 0,
    OT_LOC_BUF,    /* planned buffer `id` in the arena                     */
    OT_LOC_CONST,  /* constant data owned by the graph or the executor     */
    OT_LOC_INPUT,  /* the caller's input `id`, set at every run            */
    OT_LOC_OUTPUT, /* output tensor `id`, owned by the executor            */
    OT_LOC_STATE,  /* mutable state buffer of value `id`                   */
} ot_loc_kind;

typedef struct ot_loc {
    ot_loc_kind kind;
    int id;
    const void *ptr; /* OT_LOC_CONST */
} ot_loc;

typedef struct ot_backend ot_backend;

struct ot_exec {
    ot_graph *g;          /* specialised clone of the caller's graph          */
    const ot_backend *be;
    void *be_state;
    ot_exec_opts opts;

    int32_t *in_ids;      /* graph inputs in binding order                    */
    ot_tensor *in_shapes; /* their compiled dtype and dims                    */
    int n_in;
    const ot_tensor *in_now; /* the caller's inputs during a run               */

    int32_t *out_ids;
    ot_tensor *outs;      /* plain outputs, owned                              */
    int n_out;

    void **state;         /* per value id: mutable copy of an OT_VAL_STATE value */
    bool state_borrowed;  /* the buffers belong to opts.share_state           */

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
/* Address of a location (valid after planning; inputs during a run). */
void *ot_exec_loc_ptr(const ot_exec *x, ot_loc loc);

struct ot_backend {
    const char *name;
    /* Builds steps and declares buffers. Errors name the node. */
    ot_status (*build)(ot_exec *x, ot_err *err);
    /* Binds to the planned arena (x->arena is allocated). */
    ot_status (*bind)(ot_exec *x, ot_err *err);
    ot_status (*run)(ot_exec *x, ot_err *err);
    void (*step_profile)(const ot_exec *x, int i, ot_exec_step_time *out);
    void (*free)(ot_exec *x);
};

extern const ot_backend ot_backend_cpu;

#endif
