/*
 * plan.h: the memory planner. Buffers with a size and a lifetime (first and
 * last step that touch them) get offsets in one arena such that buffers whose
 * lifetimes overlap never overlap in memory.
 *
 * Greedy by size (largest first), each placed at the lowest aligned offset
 * that clears every already-placed buffer alive at the same time. Not optimal,
 * but within a few percent of the peak live size on CNNs, and deterministic.
 */
#ifndef OT_EXEC_PLAN_H
#define OT_EXEC_PLAN_H

#include "core/core.h"

typedef struct ot_plan_buf {
    size_t bytes;
    int first, last; /* inclusive step range; first <= last */
    size_t offset;   /* filled by ot_plan_assign */
} ot_plan_buf;

/* Assigns offsets (multiples of `align`, a power of two) and returns the arena
   size through *total. Errors: OT_ERR_NOMEM, OT_ERR_ARG (size overflow). */
ot_status ot_plan_assign(ot_plan_buf *bufs, int n, size_t align, size_t *total, ot_err *err);

/* The largest sum of sizes of buffers alive at one step (a lower bound for
   any plan), for tests and reports. */
size_t ot_plan_peak_live(const ot_plan_buf *bufs, int n);

#endif
