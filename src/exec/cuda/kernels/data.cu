/*
 * data.cu: the data movement kernels of the index and shape ops, on any
 * element size (1, 2, 4 or 8 bytes): one strided copy that serves
 * Transpose, Slice, SliceAxis, Concat (one copy per input) and BroadcastTo;
 * Gather; Pad (constant, reflect, edge, wrap); Shape's dims; plain copies
 * (Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout at inference,
 * GradAllReduce in one process) and Constant's upload.
 *
 * As ref_shape.c and ref_index.c. Gather's index outside [-d, d), which the
 * plain kernel reports as an error, gives zeros here (a kernel cannot fail).
 */
#include "exec/cuda/kernels/common.cuh"

template <typename T>
__global__ void k_copy_plan(otk_copy p, const T *src, T *dst, int64_t n)
{
    OTK_FOR(i, n)
    {
        int64_t so = p.sbase, d_o = p.dbase, r = i;
        for (int k = p.nd - 1; k >= 0; k--) {
            int64_t c = r % p.dims[k];
            r /= p.dims[k];
            so += c * p.ss[k];
            d_o += c * p.ds[k];
        }
        dst[d_o] = src[so];
    }
}

int otk_copy_plan(void *stream, const otk_copy *p, int es, const void *src, void *dst)
{
    int64_t n = 1;
    for (int k = 0; k < p->nd; k++)
        n *= p->dims[k];
    switch (es) {
    case 1: OTK_LAUNCH(k_copy_plan<uint8_t>, n, stream, *p, (const uint8_t *)src, (uint8_t *)dst, n); break;
    case 2: OTK_LAUNCH(k_copy_plan<uint16_t>, n, stream, *p, (const uint16_t *)src, (uint16_t *)dst, n); break;
    case 4: OTK_LAUNCH(k_copy_plan<uint32_t>, n, stream, *p, (const uint32_t *)src, (uint32_t *)dst, n); break;
    default: OTK_LAUNCH(k_copy_plan<uint64_t>, n, stream, *p, (const uint64_t *)src, (uint64_t *)dst, n); break;
    }
    return otk_status();
}

int otk_memcpy_d2d(void *stream, void *dst, const void *src, size_t bytes)
{
    if (!bytes || dst == src)
        return 0;
    return (int)cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, (cudaStream_t)stream);
}

int otk_memcpy_h2d(void *stream, void *dst, const void *src, size_t bytes)
{
    if (!bytes)
        return 0;
    return (int)cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, (cudaStream_t)stream);
}

int otk_memset(void *stream, void *dst, int v, size_t bytes)
{
    if (!bytes)
        return 0;
    return (int)cudaMemsetAsync(dst, v, bytes, (cudaStream_t)stream);
}

/* --------------------------------------------------------------- Gather */

template <typename T>
__global__ void k_gather(const T *x, const void *idx, int idx64, T *y, int64_t n_idx, int64_t dax,
                         int64_t inner, int64_t n)
{
    OTK_FOR(i, n)
    {
        int64_t k = i % inner, j = (i / inner) % n_idx, o = i / (inner * n_idx);
        int64_t v = idx64 ? ((const int64_t *)idx)[j] : (int64_t)((const int32_t *)idx)[j];
        if (v < 0)
            v += dax;
        y[i] = v < 0 || v >= dax ? (T)0 : x[(o * dax + v) * inner + k];
    }
}

int otk_gather(void *stream, int es, const void *x, const void *idx, int idx64, void *y,
               int64_t outer, int64_t n_idx, int64_t dax, int64_t inner)
{
    int64_t n = outer * n_idx * inner;
    switch (es) {
    case 1: OTK_LAUNCH(k_gather<uint8_t>, n, stream, (const uint8_t *)x, idx, idx64, (uint8_t *)y, n_idx, dax, inner, n); break;
    case 2: OTK_LAUNCH(k_gather<uint16_t>, n, stream, (const uint16_t *)x, idx, idx64, (uint16_t *)y, n_idx, dax, inner, n); break;
    case 4: OTK_LAUNCH(k_gather<uint32_t>, n, stream, (const uint32_t *)x, idx, idx64, (uint32_t *)y, n_idx, dax, inner, n); break;
    default: OTK_LAUNCH(k_gather<uint64_t>, n, stream, (const uint64_t *)x, idx, idx64, (uint64_t *)y, n_idx, dax, inner, n); break;
    }
    return otk_status();
}

/* ------------------------------------------------------------------ Pad */

/* the source index in [0, D) for a position p outside it; -1: the fill */
__device__ __forceinline__ int64_t pad_source(int mode, int64_t p, int64_t D)
{
    switch (mode) {
    case OTK_PAD_EDGE: return p < 0 ? 0 : D - 1;
    case OTK_PAD_WRAP: return ((p % D) + D) % D;
    case OTK_PAD_REFLECT:
        if (D == 1)
            return 0;
        {
            int64_t period = 2 * (D - 1), q = ((p % period) + period) % period;
            return q < D ? q : period - q;
        }
    default: return -1;
    }
}

template <typename T>
__global__ void k_pad(otk_padding q, const T *x, const T *fill_p, T fill, T *y, int64_t n)
{
    if (fill_p)
        fill = *fill_p;
    OTK_FOR(i, n)
    {
        int64_t at = 0, r = i;
        bool is_fill = false;
        for (int d = q.nd - 1; d >= 0; d--) {
            int64_t c = r % q.ydims[d];
            r /= q.ydims[d];
            int64_t p = c - q.begin[d];
            if (p < 0 || p >= q.xdims[d]) {
                p = q.xdims[d] > 0 ? pad_source(q.mode, p, q.xdims[d]) : -1;
                if (p < 0)
                    is_fill = true;
            }
            at += p * q.xs[d];
        }
        y[i] = is_fill ? fill : x[at];
    }
}

int otk_pad(void *stream, const otk_padding *q, int es, const void *x, const void *fill_p,
            uint64_t fill_bits, void *y)
{
    int64_t n = 1;
    for (int k = 0; k < q->nd; k++)
        n *= q->ydims[k];
    switch (es) {
    case 1: OTK_LAUNCH(k_pad<uint8_t>, n, stream, *q, (const uint8_t *)x, (const uint8_t *)fill_p, (uint8_t)fill_bits, (uint8_t *)y, n); break;
    case 2: OTK_LAUNCH(k_pad<uint16_t>, n, stream, *q, (const uint16_t *)x, (const uint16_t *)fill_p, (uint16_t)fill_bits, (uint16_t *)y, n); break;
    case 4: OTK_LAUNCH(k_pad<uint32_t>, n, stream, *q, (const uint32_t *)x, (const uint32_t *)fill_p, (uint32_t)fill_bits, (uint32_t *)y, n); break;
    default: OTK_LAUNCH(k_pad<uint64_t>, n, stream, *q, (const uint64_t *)x, (const uint64_t *)fill_p, (uint64_t)fill_bits, (uint64_t *)y, n); break;
    }
    return otk_status();
}

/* ---------------------------------------------------------------- Shape */

__global__ void k_shape(otk_dims d, int64_t *y)
{
    OTK_FOR(i, d.n)
    y[i] = d.v[i];
}

int otk_shape(void *stream, const otk_dims *d, int64_t *y)
{
    OTK_LAUNCH(k_shape, d->n, stream, *d, y);
    return otk_status();
}
