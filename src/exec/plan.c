/*
 * plan.c: liveness-based placement of activation buffers (see plan.h).
 */
#include <limits.h>
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

/*
 * Which placed buffers are alive during a step range. Buffers are kept sorted
 * by first step, in a binary tree whose nodes hold the largest last step of
 * the placed buffers below them (INT_MIN: none placed). The buffers alive during
 * [first, last] are the placed ones with b.first <= last (a prefix of the
 * order) and b.last >= first (the subtrees whose maximum reaches it), so a
 * query costs O((k + 1) log n) for k overlapping buffers, and planning a long
 * chain is n log n instead of n^2.
 */
typedef struct life_index {
    int size;      /* leaves: a power of two >= n             */
    int *by_first; /* buffer ids sorted by first step         */
    int *pos;      /* pos[id]: leaf of buffer id              */
    int *max_last; /* 2 * size entries; node 1 is the root    */
} life_index;

static const ot_plan_buf *first_base;

static int by_first_step(const void *a, const void *b)
{
    const ot_plan_buf *x = &first_base[*(const int *)a], *y = &first_base[*(const int *)b];
    if (x->first != y->first)
        return x->first < y->first ? -1 : 1;
    return *(const int *)a - *(const int *)b;
}

static bool life_init(life_index *li, const ot_plan_buf *bufs, int n)
{
    li->size = 1;
    while (li->size < n)
        li->size *= 2;
    li->by_first = ot_malloc(sizeof *li->by_first * (size_t)(n + 1));
    li->pos = ot_malloc(sizeof *li->pos * (size_t)(n + 1));
    li->max_last = ot_malloc(sizeof *li->max_last * 2 * (size_t)li->size);
    if (!li->by_first || !li->pos || !li->max_last)
        return false;
    for (int i = 0; i < n; i++)
        li->by_first[i] = i;
    first_base = bufs;
    qsort(li->by_first, (size_t)n, sizeof *li->by_first, by_first_step);
    for (int i = 0; i < n; i++)
        li->pos[li->by_first[i]] = i;
    for (int i = 0; i < 2 * li->size; i++)
        li->max_last[i] = INT_MIN;
    return true;
}

static void life_fini(life_index *li)
{
    ot_free(li->by_first);
    ot_free(li->pos);
    ot_free(li->max_last);
}

static void life_place(life_index *li, const ot_plan_buf *bufs, int id)
{
    int node = li->size + li->pos[id];
    li->max_last[node] = bufs[id].last;
    for (node /= 2; node >= 1; node /= 2) {
        int l = li->max_last[2 * node], r = li->max_last[2 * node + 1];
        li->max_last[node] = l > r ? l : r;
    }
}

/* Appends to busy[] the spans of the placed buffers among leaves [lo, hi)
   of `node` that are alive at or after `first` and start before leaf `end`. */
static void life_query(const life_index *li, const ot_plan_buf *bufs, size_t align, int node,
                       int lo, int hi, int end, int first, span *busy, int *n_busy)
{
    if (lo >= end || li->max_last[node] < first)
        return;
    if (hi - lo == 1) {
        const ot_plan_buf *o = &bufs[li->by_first[lo]];
        if (o->bytes) {
            busy[*n_busy].lo = o->offset;
            busy[*n_busy].hi = o->offset + ((o->bytes + align - 1) & ~(align - 1));
            (*n_busy)++;
        }
        return;
    }
    int mid = lo + (hi - lo) / 2;
    life_query(li, bufs, align, 2 * node, lo, mid, end, first, busy, n_busy);
    life_query(li, bufs, align, 2 * node + 1, mid, hi, end, first, busy, n_busy);
}

ot_status ot_plan_assign(ot_plan_buf *bufs, int n, size_t align, size_t *total, ot_err *err)
{
    ot_status st = OT_OK;
    int *order = ot_malloc(sizeof *order * (size_t)(n + 1));
    span *busy = ot_malloc(sizeof *busy * (size_t)(n + 1));
    life_index li = { 0 };
    size_t end = 0;
    if (!order || !busy || !life_init(&li, bufs, n))
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
        /* spans of placed buffers alive at the same time, by offset: the
           buffers that start by b->last, among those, the ones alive at b->first */
        int lo = 0, hi = n; /* first leaf whose buffer starts after b->last */
        while (lo < hi) {
            int mid = lo + (hi - lo) / 2;
            if (bufs[li.by_first[mid]].first <= b->last)
                lo = mid + 1;
            else
                hi = mid;
        }
        int n_busy = 0;
        life_query(&li, bufs, align, 1, 0, li.size, lo, b->first, busy, &n_busy);
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
        life_place(&li, bufs, order[k]);
    }
    *total = end;
done:
    ot_free(order);
    ot_free(busy);
    life_fini(&li);
    return st;
}

size_t ot_plan_peak_live(const ot_plan_buf *bufs, int n)
{
    /* live bytes change only where a buffer starts or ends: a difference array */
    int last = 0;
    for (int i = 0; i < n; i++)
        if (bufs[i].last > last)
            last = bufs[i].last;
    size_t *delta = ot_calloc((size_t)last + 2, sizeof *delta);
    if (!delta)
        return 0;
    for (int i = 0; i < n; i++) {
        if (bufs[i].last < 0)
            continue;
        delta[bufs[i].first > 0 ? bufs[i].first : 0] += bufs[i].bytes;
        delta[bufs[i].last + 1] -= bufs[i].bytes; /* modular: the prefix sums come out right */
    }
    size_t peak = 0, live = 0;
    for (int s = 0; s <= last; s++) {
        live += delta[s];
        if (live > peak)
            peak = live;
    }
    ot_free(delta);
    return peak;
}
