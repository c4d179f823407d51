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

typedef struct ot_cuda_stage {
    cudaStream_t copy;    /* the copy stream                                   */
    cudaEvent_t copied;   /* recorded after the last copy on it                */
    unsigned char *host;  /* pinned: every input's region                      */
    size_t *off;          /* per input: its region's offset in host            */
    bool *pending;        /* per input: copied since the last run              */
    bool any;             /* some input is pending                             */
    int n_in;
} ot_cuda_stage;

/* The pinned block, stream and event for the executor's inputs (nothing
   when it has none, or when its inputs are host-visible). */
ot_status ot_cuda_stage_init(ot_cuda_stage *s, const ot_exec *x, ot_err *err);

/* Copies host src into backend memory dst through the input's pinned region
   when dst lies in an input buffer (*handled true), else leaves it to the
   caller (*handled false). */
ot_status ot_cuda_stage_copy(ot_cuda_stage *s, const ot_exec *x, void *dst, const void *src,
                             size_t bytes, bool *handled, ot_err *err);

/* Makes `compute` wait for the pending copies (at the start of a run). */
ot_status ot_cuda_stage_fence(ot_cuda_stage *s, cudaStream_t compute, ot_err *err);

/* After the run's stream was synchronised: the copies it waited for are
   done, so their regions may be rewritten without waiting. (A run that
   failed leaves them pending: the next copy into one waits on the event.) */
void ot_cuda_stage_done(ot_cuda_stage *s);

void ot_cuda_stage_free(ot_cuda_stage *s);

#endif
