/*
 * plan.c: liveness-based placement of activation buffers (see plan.h).
 */
#include <stdlib.h>
#include <string.h>

#include "plan.h"

static const ot_plan_buf *sort_base;

static int by_size_desc(const void *a, const void *b)
{
    const ot_plan_buf *x = &sort_base[*(const int *)a], *y = &sort_base[*(const int *)b];
    if (x->bytes != y->bytes)
        return x->bytes < y->bytes ? 1 : -1;
    return *(const int *)a - *(const int *)b; /* stable: deterministic plans */
}

typedef struct span {
    size_t lo, hi;
} span;

static int by_lo(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

ot_status ot_plan_assign(ot_plan_buf *bufs, int n, size_t align, size_t *total, ot_err *err)
{
    ot_status st = OT_OK;
    int *order = ot_malloc(sizeof *order * (size_t)(n + 1));
    int *placed = ot_malloc(sizeof *placed * (size_t)(n + 1));
    span *busy = ot_malloc(sizeof *busy * (size_t)(n + 1));
    int n_placed = 0;
    size_t end = 0;
    if (!order || !placed || !busy)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory planning buffers");
    for (int i = 0; i < n; i++)
        order[i] = i;
    sort_base = bufs;
    qsort(order, (size_t)n, sizeof *order, by_size_desc);
    for (int k = 0; k < n; k++) {
        ot_plan_buf *b = &bufs[order[k]];
        size_t size;
        if (!ot_size_add(b->bytes, align - 1, &size))
            OT_FAIL(err, OT_ERR_ARG, "buffer of %zu bytes is too large", b->bytes);
        size &= ~(align - 1);
        /* spans of placed buffers alive at the same time, by offset */
        int n_busy = 0;
        for (int j = 0; j < n_placed; j++) {
            const ot_plan_buf *o = &bufs[placed[j]];
            if (o->first <= b->last && b->first <= o->last && o->bytes) {
                busy[n_busy].lo = o->offset;
                busy[n_busy].hi = o->offset + ((o->bytes + align - 1) & ~(align - 1));
                n_busy++;
            }
        }
        qsort(busy, (size_t)n_busy, sizeof *busy, by_lo);
        size_t off = 0;
        for (int j = 0; j < n_busy; j++) {
            if (busy[j].lo >= off + size)
                break; /* fits in the gap before this span */
            if (busy[j].hi > off)
                off = busy[j].hi;
        }
        b->offset = off;
        if (!ot_size_add(off, size, &size))
            OT_FAIL(err, OT_ERR_ARG, "arena size overflows");
        if (size > end)
            end = size;
        placed[n_placed++] = order[k];
    }
    *total = end;
done:
    ot_free(order);
    ot_free(placed);
    ot_free(busy);
    return st;
}

size_t ot_plan_peak_live(const ot_plan_buf *bufs, int n)
{
    int last = 0;
    for (int i = 0; i < n; i++)
        if (bufs[i].last > last)
            last = bufs[i].last;
    size_t peak = 0;
    for (int s = 0; s <= last; s++) {
        size_t live = 0;
        for (int i = 0; i < n; i++)
            if (bufs[i].first <= s && s <= bufs[i].last)
                live += bufs[i].bytes;
        if (live > peak)
            peak = live;
    }
    return peak;
}
