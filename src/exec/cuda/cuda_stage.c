/*
 * cuda_stage.c: the inputs' pinned staging and asynchronous copies (the
 * contract is in cuda_stage.h).
 */
#include "cuda_stage.h"

#include <stdint.h>
#include <string.h>

#include "cuda_backend.h"

static uint64_t n_host_allocs;

uint64_t ot_cuda_host_alloc_count(void)
{
    return __atomic_load_n(&n_host_allocs, __ATOMIC_RELAXED);
}

#define CU(call, what)                                                                          \
    do {                                                                                        \
        cudaError_t e_ = (call);                                                                \
        if (e_ != cudaSuccess)                                                                  \
            return ot_err_set(err, OT_ERR_BACKEND, "CUDA: %s: %s", what,                        \
                              cudaGetErrorString(e_));                                          \
    } while (0)

#define STAGE_ALIGN ((size_t)256)

_Static_assert(OT_EXEC_U8_BOX_HEAD == OTK_BOX_HEAD, "one box record layout");

/* The bytes of input i's uint8 images, with their boxes (0: not such an
   input). */
static size_t u8_bytes(const ot_exec *x, int i)
{
    if (!x->in_u8 || !x->in_u8[i].c_in)
        return 0;
    return ot_exec_u8_bytes(&x->in_u8[i], (int)x->in_shapes[i].dims[0]);
}

/* Input i's transform: its slot, row buffer and tables (device), the
   tables uploaded later. */
static ot_status u8_slot(ot_cuda_stage *s, ot_exec *x, int i, ot_err *err)
{
    const ot_exec_u8 *u = &x->in_u8[i];
    const ot_tensor *t = &x->in_shapes[i];
    otk_prep *q = &s->prep[i];
    *q = (otk_prep){ .n = (int)t->dims[0], .c_in = u->c_in, .c_out = (int)t->dims[1], .h = u->h,
                     .w = u->w, .S = (int)t->dims[3], .top = u->top, .left = u->left,
                     .kw = u->kw, .kh = u->kh, .box_stride = u->box_ints };
    for (int c = 0; c < 3; c++) {
        q->mean[c] = u->mean[c];
        q->std[c] = u->std[c];
    }
    size_t tmp = (size_t)q->n * (size_t)q->c_in * (size_t)q->h * (size_t)q->S;
    ot_status st = x->be->mem_alloc(x, u8_bytes(x, i), &s->slot[i], err);
    if (st == OT_OK)
        st = x->be->mem_alloc(x, tmp ? tmp : 1, &s->u8_tmp[i], err);
    if (st == OT_OK)
        st = x->be->mem_alloc(x, (u->n_coef ? u->n_coef : 1) * sizeof(int32_t), &s->u8_coef[i],
                              err);
    return st;
}

ot_status ot_cuda_stage_init(ot_cuda_stage *s, const ot_exec *x, ot_err *err)
{
    memset(s, 0, sizeof *s);
    if (!x->in_mem || x->n_in < 1)
        return OT_OK;
    s->off = ot_calloc((size_t)x->n_in, sizeof *s->off);
    s->pending = ot_calloc((size_t)x->n_in, sizeof *s->pending);
    if (!s->off || !s->pending)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    s->n_in = x->n_in;
    size_t total = 0;
    for (int i = 0; i < x->n_in; i++) {
        s->off[i] = total;
        size_t b = x->in_shapes[i].bytes, u = u8_bytes(x, i);
        total += ((b > u ? b : u) + STAGE_ALIGN - 1) & ~(STAGE_ALIGN - 1);
    }
    if (!total)
        return OT_OK;
    void *p = NULL;
    CU(cudaHostAlloc(&p, total, cudaHostAllocDefault), "allocating pinned host memory");
    s->host = p;
    __atomic_add_fetch(&n_host_allocs, 1, __ATOMIC_RELAXED);
    CU(cudaStreamCreateWithFlags(&s->copy, cudaStreamNonBlocking), "creating the copy stream");
    CU(cudaEventCreateWithFlags(&s->copied, cudaEventDisableTiming), "creating an event");
    return OT_OK;
}

ot_status ot_cuda_stage_slots(ot_cuda_stage *s, ot_exec *x, cudaStream_t compute, ot_err *err)
{
    if (!x->in_prefetch || !s->host)
        return OT_OK;
    size_t n = (size_t)x->n_in;
    s->slot = ot_calloc(n, sizeof *s->slot);
    s->ready = ot_calloc(n, sizeof *s->ready);
    s->prep = ot_calloc(n, sizeof *s->prep);
    s->u8_tmp = ot_calloc(n, sizeof *s->u8_tmp);
    s->u8_coef = ot_calloc(n, sizeof *s->u8_coef);
    if (!s->slot || !s->ready || !s->prep || !s->u8_tmp || !s->u8_coef)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    bool any = false, tables = false;
    for (int i = 0; i < x->n_in; i++) {
        if (!x->in_prefetch[i] || !x->in_shapes[i].bytes)
            continue;
        ot_status st = u8_bytes(x, i) ? u8_slot(s, x, i, err)
                                      : x->be->mem_alloc(x, x->in_shapes[i].bytes, &s->slot[i],
                                                         err);
        if (st != OT_OK)
            return st;
        any = true;
        tables |= u8_bytes(x, i) != 0;
    }
    if (any)
        CU(cudaEventCreateWithFlags(&s->taken, cudaEventDisableTiming), "creating an event");
    if (tables) /* after the zeroing of the new memory on the compute stream */
        CU(cudaStreamSynchronize(compute), "zeroing memory");
    for (int i = 0; tables && i < x->n_in; i++)
        if (s->u8_coef[i] && x->in_u8[i].n_coef)
            CU(cudaMemcpy(s->u8_coef[i], x->in_u8[i].coef, x->in_u8[i].n_coef * sizeof(int32_t),
                          cudaMemcpyHostToDevice), "uploading the resize tables");
    return OT_OK;
}

ot_status ot_cuda_stage_prefetch(ot_cuda_stage *s, const ot_exec *x, int i, const void *src,
                                 size_t bytes, bool u8, ot_err *err)
{
    if (i < 0 || i >= s->n_in || !s->slot || !s->slot[i] || !s->taken)
        return ot_err_set(err, OT_ERR_ARG, "input %d was not compiled to be handed in ahead", i);
    size_t want = u8 ? u8_bytes(x, i) : x->in_shapes[i].bytes;
    if ((s->prep[i].n != 0) != u8)
        return ot_err_set(err, OT_ERR_ARG, "input %d takes %s", i,
                          u8 ? "no uint8 images" : "only uint8 images");
    if (bytes != want)
        return ot_err_set(err, OT_ERR_ARG, "input %d: %zu bytes handed in ahead, it has %zu", i,
                          bytes, want);
    unsigned char *h = s->host + s->off[i];
    /* the region's last copy may still be reading it (the fence waited on
       the device, not here) */
    if (s->pending[i] || s->ready[i])
        CU(cudaEventSynchronize(s->copied), "waiting for a copy");
    memcpy(h, src, bytes);
    /* the slot is free once the last run's fence copied it out */
    CU(cudaStreamWaitEvent(s->copy, s->taken, 0), "waiting for the slot");
    CU(cudaMemcpyAsync(s->slot[i], h, bytes, cudaMemcpyHostToDevice, s->copy), "copying ahead");
    CU(cudaEventRecord(s->copied, s->copy), "recording a copy");
    s->ready[i] = true;
    s->any = true;
    return OT_OK;
}

ot_status ot_cuda_stage_copy(ot_cuda_stage *s, const ot_exec *x, void *dst, const void *src,
                             size_t bytes, bool *handled, ot_err *err)
{
    *handled = false;
    if (!s->host || !s->copied)
        return OT_OK;
    uintptr_t d = (uintptr_t)dst;
    for (int i = 0; i < s->n_in; i++) {
        uintptr_t b = (uintptr_t)x->in_mem[i];
        if (!b || d < b || bytes > x->in_shapes[i].bytes ||
            (size_t)(d - b) > x->in_shapes[i].bytes - bytes)
            continue;
        unsigned char *h = s->host + s->off[i] + (size_t)(d - b);
        if (s->pending[i]) /* the region's previous copy may still be reading it */
            CU(cudaEventSynchronize(s->copied), "waiting for a copy");
        memcpy(h, src, bytes);
        CU(cudaMemcpyAsync(dst, h, bytes, cudaMemcpyHostToDevice, s->copy), "copying in");
        CU(cudaEventRecord(s->copied, s->copy), "recording a copy");
        s->pending[i] = true;
        s->any = true;
        *handled = true;
        return OT_OK;
    }
    return OT_OK;
}

ot_status ot_cuda_stage_fence(ot_cuda_stage *s, const ot_exec *x, cudaStream_t compute,
                               ot_err *err)
{
    if (!s->any)
        return OT_OK;
    CU(cudaStreamWaitEvent(compute, s->copied, 0), "waiting for the inputs");
    bool took = false;
    for (int i = 0; s->ready && i < s->n_in; i++)
        if (s->ready[i] && s->prep[i].n) {
            const otk_prep *q = &s->prep[i];
            const uint8_t *img = s->slot[i];
            int e = q->box_stride
                        ? otk_prepare_u8_boxes(compute, q, img,
                                               (const int32_t *)(const void *)(
                                                   img + ot_exec_u8_box_offset(&x->in_u8[i], q->n)),
                                               s->u8_tmp[i], x->in_mem[i])
                        : otk_prepare_u8(compute, q, img, s->u8_coef[i], s->u8_tmp[i],
                                         x->in_mem[i]);
            if (e != 0)
                return ot_err_set(err, OT_ERR_BACKEND, "CUDA: resizing the images: %s",
                                  cudaGetErrorString(cudaGetLastError()));
            s->ready[i] = false;
            s->pending[i] = true;
            took = true;
        } else if (s->ready[i]) {
            CU(cudaMemcpyAsync(x->in_mem[i], s->slot[i], x->in_shapes[i].bytes,
                               cudaMemcpyDeviceToDevice, compute), "taking an input handed in ahead");
            s->ready[i] = false;
            s->pending[i] = true; /* its region: read by a copy not yet known done */
            took = true;
        }
    if (took)
        CU(cudaEventRecord(s->taken, compute), "recording the inputs taken");
    return OT_OK;
}

void ot_cuda_stage_done(ot_cuda_stage *s)
{
    s->any = false;
    for (int i = 0; i < s->n_in; i++) {
        s->pending[i] = false;
        s->any |= s->ready && s->ready[i]; /* handed in for the run after */
    }
}

void ot_cuda_stage_free(ot_cuda_stage *s, ot_exec *x)
{
    if (s->copy)
        cudaStreamSynchronize(s->copy);
    for (int i = 0; s->slot && i < s->n_in; i++) {
        if (s->slot[i])
            x->be->mem_free(x, s->slot[i]);
        if (s->u8_tmp && s->u8_tmp[i])
            x->be->mem_free(x, s->u8_tmp[i]);
        if (s->u8_coef && s->u8_coef[i])
            x->be->mem_free(x, s->u8_coef[i]);
    }
    if (s->taken)
        cudaEventDestroy(s->taken);
    if (s->copied)
        cudaEventDestroy(s->copied);
    if (s->copy)
        cudaStreamDestroy(s->copy);
    if (s->host)
        cudaFreeHost(s->host);
    ot_free(s->off);
    ot_free(s->pending);
    ot_free(s->slot);
    ot_free(s->ready);
    ot_free(s->prep);
    ot_free(s->u8_tmp);
    ot_free(s->u8_coef);
    memset(s, 0, sizeof *s);
}
