/*
 * cuda_stage.h: how a CUDA executor's inputs cross from the host: through
 * pinned (page-locked) host memory allocated once when the executor is
 * bound, one region per graph input sized from the compiled shapes, and an
 * asynchronous copy on a copy stream of its own. The compute stream waits
 * on the copy's event at the start of the next run instead of the host
 * waiting for the copy, so the host returns from a copy as soon as the
 * bytes are in pinned memory and the device's DMA engine does the rest.
 *
 * Nothing is allocated per run: the pinned block, the copy stream and the
 * event are made at bind time (ot_cuda_host_alloc_count counts the pinned
 * allocations for the tests). A region is rewritten only after its previous
 * copy finished: after a run that synchronised its stream (which waited on
 * the event) without waiting, else after waiting on the event.
 *
 * Prefetch (double buffering): the input of opts.prefetch_input also gets a
 * device slot of its size, allocated at bind time. ot_cuda_stage_prefetch
 * copies the next run's bytes into the input's pinned region and from there
 * into the slot on the copy stream while the run before is still computing
 * (the input buffer itself is still being read by it). The next run's fence
 * makes the compute stream wait for the copy, copies the slot into the
 * input buffer on the compute stream (device to device) and records an
 * event after it; a later prefetch into the slot waits on that event, on the
 * copy stream, never on the host.
 */
#ifndef OT_EXEC_CUDA_STAGE_H
#define OT_EXEC_CUDA_STAGE_H

#include <stdbool.h>
#include <stddef.h>

#ifdef OT_CUDA_EMU
#include "exec/cuda/kernels/emu.h"
#else
#include <cuda_runtime_api.h>
#endif

#include "exec/exec_impl.h"
#include "exec/cuda/kernels/kernels.h"

typedef struct ot_cuda_stage {
    cudaStream_t copy;    /* the copy stream                                   */
    cudaEvent_t copied;   /* recorded after the last copy on it                */
    unsigned char *host;  /* pinned: every input's region                      */
    size_t *off;          /* per input: its region's offset in host            */
    bool *pending;        /* per input: copied since the last run              */
    bool any;             /* some input is pending                             */
    int n_in;
    void **slot;          /* per input: its prefetch slot (device), or NULL    */
    bool *ready;          /* per input: the slot holds the next run's bytes    */
    cudaEvent_t taken;    /* recorded on the compute stream after the slots
                             were copied into the input buffers                */
    otk_prep *prep;       /* per input with x->in_u8: the transform (n 0: none) */
    void **u8_tmp;        /* its rows pass's output (device)                   */
    void **u8_coef;       /* its tables (device)                               */
} ot_cuda_stage;

/* The pinned block, stream and event for the executor's inputs (nothing
   when it has none, or when its inputs are host-visible). */
ot_status ot_cuda_stage_init(ot_cuda_stage *s, const ot_exec *x, ot_err *err);

/* The prefetch slots of the inputs x->in_prefetch marks, from
   x->be->mem_alloc (after ot_cuda_stage_init); an input with uint8 images
   (x->in_u8) gets a slot of their size, the transform's row buffer and its
   tables, uploaded after `compute` (which zeroes new memory) is synchronised. */
ot_status ot_cuda_stage_slots(ot_cuda_stage *s, ot_exec *x, cudaStream_t compute, ot_err *err);

/* Input i's bytes of the next run (whole: bytes == its size; with u8, its
   uint8 images), into its slot while a run may still be in flight; the
   fence then copies it, or runs the transform (otk_prepare_u8) into the
   input buffer. Errors: OT_ERR_ARG (no slot: not compiled for prefetch; u8
   and the input's kind differ; another size), OT_ERR_BACKEND. */
ot_status ot_cuda_stage_prefetch(ot_cuda_stage *s, const ot_exec *x, int i, const void *src,
                                 size_t bytes, bool u8, ot_err *err);

/* Copies host src into backend memory dst through the input's pinned region
   when dst lies in an input buffer (*handled true), else leaves it to the
   caller (*handled false). */
ot_status ot_cuda_stage_copy(ot_cuda_stage *s, const ot_exec *x, void *dst, const void *src,
                             size_t bytes, bool *handled, ot_err *err);

/* Makes `compute` wait for the pending copies and copies the ready slots
   into their input buffers (at the start of a run). */
ot_status ot_cuda_stage_fence(ot_cuda_stage *s, const ot_exec *x, cudaStream_t compute,
                               ot_err *err);

/* After the run's stream was synchronised: the copies it waited for are
   done, so their regions may be rewritten without waiting (a slot handed in
   since, for the run after, stays ready). (A run that
   failed leaves them pending: the next copy into one waits on the event.) */
void ot_cuda_stage_done(ot_cuda_stage *s);

/* Frees the slots through x->be->mem_free, then everything else. */
void ot_cuda_stage_free(ot_cuda_stage *s, ot_exec *x);

#endif
