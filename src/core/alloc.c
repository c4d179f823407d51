/*
 * alloc.c: the counting allocator and arenas.
 *
 * ot_malloc counts allocations in every build (one relaxed increment), so a test
 * can check that a training step allocates nothing, and can be told to fail
 * after n allocations so that the out-of-memory paths are exercised.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

/* Counters are atomic: decoders on loader threads allocate too. */
static _Atomic uint64_t n_allocs;
static _Atomic int64_t fail_after = -1;

static bool should_fail(void)
{
    int64_t f = atomic_load_explicit(&fail_after, memory_order_relaxed);
    if (f < 0)
        return false;
    if (f == 0)
        return true;
    atomic_fetch_sub_explicit(&fail_after, 1, memory_order_relaxed);
    return false;
}

void *ot_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
    return malloc(n ? n : 1);
}

void *ot_calloc(size_t count, size_t size)
{
    if (should_fail())
        return NULL;
    atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
    return calloc(count ? count : 1, size ? size : 1);
}

void *ot_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
    return realloc(p, n ? n : 1);
}

void ot_free(void *p) { free(p); }

char *ot_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = ot_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

uint64_t ot_alloc_count(void) { return atomic_load(&n_allocs); }
void ot_alloc_fail_after(int64_t n) { atomic_store(&fail_after, n); }

bool ot_size_mul(size_t a, size_t b, size_t *out)
{
    if (a && b > SIZE_MAX / a)
        return false;
    *out = a * b;
    return true;
}

bool ot_size_add(size_t a, size_t b, size_t *out)
{
    if (b > SIZE_MAX - a)
        return false;
    *out = a + b;
    return true;
}

struct ot_arena_block {
    ot_arena_block *next;
    size_t size, used;
    _Alignas(64) unsigned char data[];
};

void ot_arena_init(ot_arena *a, size_t block_size)
{
    a->head = NULL;
    a->block_size = block_size ? block_size : 64 * 1024;
    a->used_bytes = 0;
}

void ot_arena_fini(ot_arena *a)
{
    ot_arena_block *b = a->head;
    while (b) {
        ot_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->used_bytes = 0;
}

void *ot_arena_alloc(ot_arena *a, size_t n)
{
    size_t align = n >= 64 ? 64 : 16;
    if (n == 0)
        n = 1;
    ot_arena_block *b = a->head;
    if (b) {
        size_t off = (b->used + align - 1) & ~(align - 1);
        if (off <= b->size && n <= b->size - off) {
            b->used = off + n;
            a->used_bytes += n;
            return b->data + off;
        }
    }
    size_t size = n > a->block_size / 4 ? n : a->block_size;
    size_t total;
    if (!ot_size_add(sizeof(ot_arena_block), size, &total))
        return NULL;
    ot_arena_block *nb = aligned_alloc(64, (total + 63) & ~(size_t)63);
    if (!nb || should_fail()) {
        free(nb);
        return NULL;
    }
    atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
    nb->size = size;
    nb->used = n;
    memset(nb->data, 0, size);
    if (size > a->block_size / 4 && size != a->block_size && b) {
        /* a big one-off block goes behind the current one so that the current
           block keeps serving small requests */
        nb->next = b->next;
        b->next = nb;
    } else {
        nb->next = b;
        a->head = nb;
    }
    a->used_bytes += n;
    return nb->data;
}

void *ot_arena_memdup(ot_arena *a, const void *p, size_t n)
{
    void *d = ot_arena_alloc(a, n);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

char *ot_arena_strndup(ot_arena *a, const char *s, size_t n)
{
    char *d = ot_arena_alloc(a, n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

char *ot_arena_strdup(ot_arena *a, const char *s) { return ot_arena_strndup(a, s, strlen(s)); }
