/*
 * cpu.h: the CPU backend's internals, shared by its files: the per-value
 * layout record, steps (a plain C kernel or a oneDNN primitive), and the
 * helpers that place values and insert reorders.
 *
 * Layouts: a value produced by a oneDNN primitive keeps the primitive's
 * chosen memory descriptor (often blocked, e.g. nChw8c); the next oneDNN op
 * takes it as it is. A plain C kernel needs row-major data, so a reorder step
 * makes a plain copy once and later plain readers share it.
 */
#ifndef OT_EXEC_CPU_H
#define OT_EXEC_CPU_H

#include <dnnl.h>
#include <dnnl_debug.h>

#include "exec/exec_impl.h"
#include "ref.h"

/* oneDNN has bf16 kernels for this CPU (AVX-512); they run on native bf16
   instructions (AVX512-BF16 or AMX) rather than emulated. */
bool ot_cpu_has_bf16(void);
bool ot_cpu_bf16_native(void);
/* Winograd convolutions are allowed in this process: oneDNN has its AVX-512
   Winograd kernels for this CPU and ONNXTRAIN_WINOGRAD is not "0". */
bool cpu_wino_enabled(void);

struct cpu_state;
/* --precision auto (cpu_auto.c): whether the graph's convolutions are faster
   in bf16 here, from the per-machine cache or measured now. */
bool cpu_auto_bf16(const ot_exec *x, const struct cpu_state *cs);

typedef struct cpu_val {
    ot_loc loc;              /* where the data is                               */
    bool has_md;             /* data is laid out as `md` (else plain row-major)  */
    dnnl_memory_desc_t md;
    ot_loc plain;            /* a plain copy, once a reorder made one           */
    ot_loc alt;              /* the latest copy in another layout, `alt_md`,    */
    dnnl_memory_desc_t *alt_md; /* shared by later readers wanting that layout  */
    /* what a oneDNN training primitive keeps beside the value for its
       backward primitive: the batch variance beside BatchNormTrain's saved
       inverse std, MaxPool's workspace beside its output */
    ot_loc aux;
    dnnl_memory_desc_t *aux_md;
    /* alt_md and aux_md are heap copies (cpu_md_keep), NULL until set: few
       values need them, and inline they tripled the record (2 KB a value) */
} cpu_val;

/* One step. Its argument arrays are sized for the step and live in one heap
   block, `mem` (fixed inline arrays, with a memory descriptor per
   argument, made a step about 15 KB and a 200,000-node chain 4 GB). A
   primitive's memories are made with the step, without data; cpu_bind points
   them at their buffers. */
typedef struct cpu_step {
    const ot_node *node;     /* NULL for a reorder                              */
    const char *what;        /* "reorder", op type, for messages and profiles   */
    /* a plain C kernel: n_in / n_out entries each */
    ot_ref_fn fn;
    int n_in, n_out;
    ot_tensor *tin, *tout;
    const ot_tensor **pin;
    ot_tensor **pout;
    ot_loc *lin, *lout;
    /* a oneDNN primitive: n_args entries (room for one more, the scratchpad) */
    dnnl_primitive_t prim;
    int n_args;
    dnnl_exec_arg_t *args;
    ot_loc *arg_loc;
    bool patch_inputs;       /* has an OT_LOC_INPUT argument: set handles per run */
    uint64_t runs;           /* profile                                         */
    double seconds;
    void *mem;               /* owns tin ... lout, args and arg_loc             */
} cpu_step;

typedef struct cpu_state {
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    cpu_val *vals;
    cpu_step *steps;
    int n_steps, cap_steps;
    void **owned;            /* constant buffers made at compile time          */
    int n_owned, cap_owned;
    uint8_t *skip;           /* nodes fused into an earlier step              */
    int *copy_out;           /* graph outputs copied after the steps (-1: none) */
    bool training;           /* the graph has backward convolutions             */
    bool bf16;               /* convolutions and matrix products take bf16
                                operands (fp32 results): --precision bf16     */
    bool wino;               /* 3x3 stride-1 convolutions may take oneDNN's
                                Winograd algorithm (opts.cpu.winograd, fp32,
                                forward-only; cpu_dnnl.c)                      */
    bool wino_blk;           /* some do: every convolution's activations are
                                nChw16c                                        */
    /* per value id: for a trained convolution weight whose layout its first
       reader (a Conv) may still choose, its optimizer update's node; else -1
       (cpu_state.c). NULL when no weight qualifies. */
    int32_t *state_update;
} cpu_state;

#define CPU_TRY(call, err, what)                                                                \
    do {                                                                                        \
        dnnl_status_t s_ = (call);                                                              \
        if (s_ != dnnl_success) {                                                               \
            st = ot_err_set((err), OT_ERR_BACKEND, "%s: oneDNN %s failed: %s (%s:%d)", (what),  \
                            #call, dnnl_status2str(s_), __FILE__, __LINE__);                    \
            goto done;                                                                          \
        }                                                                                       \
    } while (0)

/* Appends a step; *out is valid until the next append. */
ot_status cpu_step_add(cpu_state *cs, cpu_step **out, ot_err *err);

/* A row-major memory descriptor for a value's shape (rank 0 counts as [1]). */
void cpu_plain_md(const ot_value *v, dnnl_memory_desc_t *md);
bool cpu_md_is_plain(const dnnl_memory_desc_t *md, const ot_value *v);

/* Reorders data at `from` (laid out as src) into `want` layout: constants now,
   into memory the executor keeps; anything else by a step appended now, into
   a new buffer (*to) or into a given location (cpu_reorder_into). */
ot_status cpu_reorder(ot_exec *x, const dnnl_memory_desc_t *src, ot_loc from,
                      const dnnl_memory_desc_t *want, ot_loc *to, ot_err *err);
ot_status cpu_reorder_into(ot_exec *x, const dnnl_memory_desc_t *src, ot_loc from,
                           const dnnl_memory_desc_t *dst, ot_loc to, ot_err *err);

/* The location of v's data laid out as `want`: the current one when it already
   is, else a new buffer filled by a reorder step appended now. */
ot_status cpu_val_as(ot_exec *x, int32_t vid, const dnnl_memory_desc_t *want, ot_loc *loc,
                     ot_err *err);
/* The location of v's data in plain row-major layout (reordering once). */
ot_status cpu_val_plain(ot_exec *x, int32_t vid, ot_loc *loc, ot_err *err);
/* v's current layout: its md, or the plain md. */
void cpu_val_md(const ot_exec *x, int32_t vid, dnnl_memory_desc_t *md);

/* Allocates where a step writes value v laid out as md (NULL: plain): the
   graph output slot when v is an output written plain, else a new buffer.
   Records the layout in v's cpu_val. */
ot_status cpu_val_define(ot_exec *x, int32_t vid, const dnnl_memory_desc_t *md, ot_loc *loc,
                         ot_err *err);

/* Runs a reorder now, between host-addressable buffers (a constant's bytes,
   a state buffer). Errors: OT_ERR_BACKEND. */
ot_status cpu_reorder_now(const cpu_state *cs, const dnnl_memory_desc_t *src, const void *from,
                          const dnnl_memory_desc_t *dst, void *to, ot_err *err);

/* cpu_state.c: trained convolution weights, their gradients' updates and
   their moments kept in the forward convolution's layout between steps.
   cpu_state_plan (before the steps): which weights may be kept, or the
   owner's layouts for an executor sharing its state; cpu_state_keep: the
   first Conv reading p fixes its layout (`weights`: the primitive's weights
   descriptor); cpu_state_bind: the initial bytes reordered into the kept
   layouts; cpu_state_copy: the backend's state_copy hook (plain outside). */
bool cpu_is_update(const ot_node *n);
ot_status cpu_state_plan(ot_exec *x, ot_err *err);
void cpu_state_keep(ot_exec *x, int32_t p, const dnnl_memory_desc_t *weights);
ot_status cpu_state_bind(ot_exec *x, ot_err *err);
ot_status cpu_state_copy(const ot_exec *x, int32_t v, void *host, bool to_host, bool *done,
                         ot_err *err);

/* Keeps a compile-time buffer for the executor's lifetime. */
ot_status cpu_own(cpu_state *cs, void *p, ot_err *err);

/* Sets *slot (a cpu_val's alt_md or aux_md) to a copy of md, allocating it the
   first time; cpu_free releases it. Errors: OT_ERR_NOMEM. */
ot_status cpu_md_keep(dnnl_memory_desc_t **slot, const dnnl_memory_desc_t *md, ot_err *err);

/* Creates a primitive from pd, records its scratchpad as a buffer, and
   appends a step with args (arg kinds, locations, descriptors).
   Takes ownership of pd (destroyed here). */
ot_status cpu_prim_step(ot_exec *x, const ot_node *n, const char *what, dnnl_primitive_desc_t pd,
                        int n_args, const int *kinds, const ot_loc *locs,
                        const dnnl_memory_desc_t *mds, ot_err *err);

/* Appends a plain C step that is not a node's own kernel: fn runs with n as
   its node on tensors shaped as tin/tout at locations lin/lout (a location
   of kind OT_LOC_NONE passes NULL). */
ot_status cpu_fn_step(ot_exec *x, const ot_node *n, const char *what, ot_ref_fn fn, int n_in,
                      const ot_tensor *tin, const ot_loc *lin, int n_out, const ot_tensor *tout,
                      const ot_loc *lout, ot_err *err);

/* Tries to run node n with oneDNN. *done is false when the node is left to the
   plain kernels (unsupported dtype, shape or attribute). */
ot_status cpu_dnnl_node(ot_exec *x, int32_t node_id, bool *done, ot_err *err);
/* Whether a convolution of the graph takes the Winograd algorithm (with
   cs->wino set). */
bool cpu_dnnl_wino_any(const ot_exec *x);

#endif
