/*
 * logic.cu: the index and logic ops: Equal, Greater, Less, And, Not, Where
 * and Mod with numpy broadcasting; Tile, ConstantOfShape, Range, ScatterND;
 * the backward ops GatherGrad and ScatterNDGrad. (Split and Expand are
 * strided copies, data.cu.)
 *
 * As ref_logic.c: integers and bool compared exactly as int64, floats as
 * double. The scatters keep the plain kernel's order without atomics:
 * ScatterND gives each element of a slice one thread that applies the
 * updates in index order (the last write wins, reductions in order);
 * GatherGrad gives each dX element one thread that adds, in order, the dY
 * rows whose index names it. Indices out of range, an error on the CPU, are
 * skipped here (a kernel cannot fail); so is an integer Mod by zero (0).
 */
#include "exec/cuda/kernels/common.cuh"

__device__ __forceinline__ int64_t ld_int(int t, const void *p, int64_t i)
{
    switch (t) {
    case OTK_DT_INT64: return ((const int64_t *)p)[i];
    case OTK_DT_INT32: return ((const int32_t *)p)[i];
    case OTK_DT_BOOL: return ((const uint8_t *)p)[i] != 0;
    case OTK_DT_UINT8: return ((const uint8_t *)p)[i];
    case OTK_DT_INT8: return ((const int8_t *)p)[i];
    default: return 0;
    }
}

/* the offsets of element i of y's walk in operand k */
__device__ __forceinline__ int64_t bc_off(const otk_bc3 &it, int k, int64_t i)
{
    return otk_offset(it.nd, it.dims, it.s[k], i);
}

__global__ void k_compare(int op, int t, otk_bc3 it, const void *a, const void *b, uint8_t *y,
                          int64_t n)
{
    bool ints = t != OTK_DT_FLOAT;
    OTK_FOR(i, n)
    {
        bool r;
        if (op == OTK_NOT) {
            r = !ld_int(t, a, bc_off(it, 0, i));
        } else if (ints) {
            int64_t va = ld_int(t, a, bc_off(it, 0, i)), vb = ld_int(t, b, bc_off(it, 1, i));
            r = op == OTK_EQUAL ? va == vb : op == OTK_GREATER ? va > vb
                : op == OTK_LESS ? va < vb : (va && vb);
        } else {
            double va = ((const float *)a)[bc_off(it, 0, i)];
            double vb = ((const float *)b)[bc_off(it, 1, i)];
            r = op == OTK_EQUAL ? va == vb : op == OTK_GREATER ? va > vb
                : op == OTK_LESS ? va < vb : (va && vb);
        }
        y[i] = r;
    }
}

int otk_compare(void *stream, int op, int dtype, const otk_bc3 *it, const void *a, const void *b,
                uint8_t *y, int64_t n)
{
    OTK_LAUNCH(k_compare, n, stream, op, dtype, *it, a, b, y, n);
    return otk_status();
}

template <typename T>
__global__ void k_where(otk_bc3 it, const uint8_t *c, const T *a, const T *b, T *y, int64_t n)
{
    OTK_FOR(i, n)
    y[i] = c[bc_off(it, 0, i)] ? a[bc_off(it, 1, i)] : b[bc_off(it, 2, i)];
}

int otk_where(void *stream, int es, const otk_bc3 *it, const uint8_t *c, const void *a,
              const void *b, void *y, int64_t n)
{
    switch (es) {
    case 1: OTK_LAUNCH(k_where<uint8_t>, n, stream, *it, c, (const uint8_t *)a, (const uint8_t *)b, (uint8_t *)y, n); break;
    case 2: OTK_LAUNCH(k_where<uint16_t>, n, stream, *it, c, (const uint16_t *)a, (const uint16_t *)b, (uint16_t *)y, n); break;
    case 4: OTK_LAUNCH(k_where<uint32_t>, n, stream, *it, c, (const uint32_t *)a, (const uint32_t *)b, (uint32_t *)y, n); break;
    default: OTK_LAUNCH(k_where<uint64_t>, n, stream, *it, c, (const uint64_t *)a, (const uint64_t *)b, (uint64_t *)y, n); break;
    }
    return otk_status();
}

__global__ void k_mod_f32(otk_bc3 it, int fmod_c, const float *a, const float *b, float *y,
                          int64_t n)
{
    OTK_FOR(i, n)
    {
        double va = a[bc_off(it, 0, i)], vb = b[bc_off(it, 1, i)];
        double r = fmod(va, vb);
        if (!fmod_c && r != 0 && ((r < 0) != (vb < 0)))
            r += vb;
        y[i] = (float)r;
    }
}

template <typename T>
__global__ void k_mod_int(otk_bc3 it, int fmod_c, const T *a, const T *b, T *y, int64_t n)
{
    OTK_FOR(i, n)
    {
        int64_t va = a[bc_off(it, 0, i)], vb = b[bc_off(it, 1, i)], r = 0;
        if (vb != 0) {
            r = va == INT64_MIN && vb == -1 ? 0 : va % vb;
            if (!fmod_c && r != 0 && ((r < 0) != (vb < 0)))
                r += vb;
        }
        y[i] = (T)r;
    }
}

int otk_mod(void *stream, int dtype, int fmod_c, const otk_bc3 *it, const void *a, const void *b,
            void *y, int64_t n)
{
    if (dtype == OTK_DT_FLOAT)
        OTK_LAUNCH(k_mod_f32, n, stream, *it, fmod_c, (const float *)a, (const float *)b,
                   (float *)y, n);
    else if (dtype == OTK_DT_INT32)
        OTK_LAUNCH(k_mod_int<int32_t>, n, stream, *it, fmod_c, (const int32_t *)a,
                   (const int32_t *)b, (int32_t *)y, n);
    else
        OTK_LAUNCH(k_mod_int<int64_t>, n, stream, *it, fmod_c, (const int64_t *)a,
                   (const int64_t *)b, (int64_t *)y, n);
    return otk_status();
}

/* ------------------------------------------------------------------ Tile */

template <typename T>
__global__ void k_tile(otk_bc3 it, const T *x, T *y, int64_t n)
{
    /* it.dims: y's dims; it.s[0]: x's dims */
    OTK_FOR(i, n)
    {
        int64_t r = i, off = 0, mul = 1;
        for (int d = it.nd - 1; d >= 0; d--) {
            int64_t c = r % it.dims[d];
            r /= it.dims[d];
            off += (c % it.s[0][d]) * mul;
            mul *= it.s[0][d];
        }
        y[i] = x[off];
    }
}

int otk_tile(void *stream, int es, const otk_bc3 *it, const void *x, void *y, int64_t n)
{
    switch (es) {
    case 1: OTK_LAUNCH(k_tile<uint8_t>, n, stream, *it, (const uint8_t *)x, (uint8_t *)y, n); break;
    case 2: OTK_LAUNCH(k_tile<uint16_t>, n, stream, *it, (const uint16_t *)x, (uint16_t *)y, n); break;
    case 4: OTK_LAUNCH(k_tile<uint32_t>, n, stream, *it, (const uint32_t *)x, (uint32_t *)y, n); break;
    default: OTK_LAUNCH(k_tile<uint64_t>, n, stream, *it, (const uint64_t *)x, (uint64_t *)y, n); break;
    }
    return otk_status();
}

/* --------------------------------------------- ConstantOfShape, Range */

template <typename T>
__global__ void k_fill(T *y, T v, int64_t n)
{
    OTK_FOR(i, n)
    y[i] = v;
}

int otk_fill_bits(void *stream, int es, uint64_t bits, void *y, int64_t n)
{
    switch (es) {
    case 1: OTK_LAUNCH(k_fill<uint8_t>, n, stream, (uint8_t *)y, (uint8_t)bits, n); break;
    case 2: OTK_LAUNCH(k_fill<uint16_t>, n, stream, (uint16_t *)y, (uint16_t)bits, n); break;
    case 4: OTK_LAUNCH(k_fill<uint32_t>, n, stream, (uint32_t *)y, (uint32_t)bits, n); break;
    default: OTK_LAUNCH(k_fill<uint64_t>, n, stream, (uint64_t *)y, bits, n); break;
    }
    return otk_status();
}

/* y[i] = start + i * delta: in double for float32, exactly for integers */
__global__ void k_range(int t, const void *start, const void *delta, void *y, int64_t n)
{
    OTK_FOR(i, n)
    {
        if (t == OTK_DT_FLOAT) {
            double s = *(const float *)start, d = *(const float *)delta;
            ((float *)y)[i] = (float)(s + (double)i * d);
        } else if (t == OTK_DT_INT32) {
            int64_t s = *(const int32_t *)start, d = *(const int32_t *)delta;
            ((int32_t *)y)[i] = (int32_t)(s + i * d);
        } else {
            int64_t s = *(const int64_t *)start, d = *(const int64_t *)delta;
            ((int64_t *)y)[i] = s + i * d;
        }
    }
}

int otk_range(void *stream, int dtype, const void *start, const void *delta, void *y, int64_t n)
{
    OTK_LAUNCH(k_range, n, stream, dtype, start, delta, y, n);
    return otk_status();
}

/* ------------------------------------------------------------ ScatterND */

/* the element offset of index tuple j in data of dims (nd.k leading ones
   indexed), or -1 when an index is out of range */
__device__ __forceinline__ int64_t nd_offset(const otk_nd &q, const int64_t *idx, int64_t j)
{
    const int64_t *iv = idx + j * q.k;
    int64_t o = 0;
    for (int64_t d = 0; d < q.k; d++) {
        int64_t i = iv[d], dim = q.dims[d];
        if (i < -dim || i >= dim)
            return -1;
        o = o * dim + (i < 0 ? i + dim : i);
    }
    return o * q.slice;
}

__device__ __forceinline__ float scatter_red(int mode, float a, float b)
{
    double r = mode == OTK_SCATTER_ADD ? (double)a + b
               : mode == OTK_SCATTER_MUL ? (double)a * b
               : mode == OTK_SCATTER_MAX ? fmax((double)a, (double)b)
                                         : fmin((double)a, (double)b);
    return (float)r;
}

template <typename T>
__device__ __forceinline__ T scatter_red(int mode, T a, T b)
{
    int64_t x = a, v = b;
    int64_t r = mode == OTK_SCATTER_ADD ? (int64_t)((uint64_t)x + (uint64_t)v)
                : mode == OTK_SCATTER_MUL ? (int64_t)((uint64_t)x * (uint64_t)v)
                : mode == OTK_SCATTER_MAX ? (x > v ? x : v)
                                          : (x < v ? x : v);
    return (T)r;
}

/* y (already a copy of data): for slice element e, the updates in order
   (reduction none: the last write wins) */
template <typename T>
__global__ void k_scatter_nd(otk_nd q, int mode, const int64_t *idx, const T *u, T *y)
{
    OTK_FOR(e, q.slice)
    {
        for (int64_t j = 0; j < q.count; j++) {
            int64_t off = nd_offset(q, idx, j);
            if (off < 0)
                continue;
            T b = u[j * q.slice + e];
            y[off + e] = mode == OTK_SCATTER_NONE ? b : scatter_red(mode, y[off + e], b);
        }
    }
}

int otk_scatter_nd(void *stream, const otk_nd *q, int mode, int dtype, int es,
                   const int64_t *idx, const void *u, void *y)
{
    if (mode != OTK_SCATTER_NONE) {
        if (dtype == OTK_DT_FLOAT)
            OTK_LAUNCH(k_scatter_nd<float>, q->slice, stream, *q, mode, idx, (const float *)u, (float *)y);
        else if (dtype == OTK_DT_INT32)
            OTK_LAUNCH(k_scatter_nd<int32_t>, q->slice, stream, *q, mode, idx, (const int32_t *)u, (int32_t *)y);
        else
            OTK_LAUNCH(k_scatter_nd<int64_t>, q->slice, stream, *q, mode, idx, (const int64_t *)u, (int64_t *)y);
        return otk_status();
    }
    switch (es) {
    case 1: OTK_LAUNCH(k_scatter_nd<uint8_t>, q->slice, stream, *q, mode, idx, (const uint8_t *)u, (uint8_t *)y); break;
    case 2: OTK_LAUNCH(k_scatter_nd<uint16_t>, q->slice, stream, *q, mode, idx, (const uint16_t *)u, (uint16_t *)y); break;
    case 4: OTK_LAUNCH(k_scatter_nd<uint32_t>, q->slice, stream, *q, mode, idx, (const uint32_t *)u, (uint32_t *)y); break;
    default: OTK_LAUNCH(k_scatter_nd<uint64_t>, q->slice, stream, *q, mode, idx, (const uint64_t *)u, (uint64_t *)y); break;
    }
    return otk_status();
}

/* ScatterNDGrad: dUpdates[j] = dY's slice at tuple j unless a later tuple
   names the same slice (0 then); dData = dY with every named slice 0 */
template <typename T>
__global__ void k_scatter_nd_grad(otk_nd q, const int64_t *idx, const T *dy, T *dd, T *du,
                                  int64_t n)
{
    OTK_FOR(t, n)
    {
        int64_t j = t / q.slice, e = t % q.slice;
        int64_t off = nd_offset(q, idx, j);
        if (du) {
            bool later = off < 0;
            for (int64_t l = j + 1; l < q.count && !later; l++)
                later = nd_offset(q, idx, l) == off;
            du[t] = later ? (T)0 : dy[off + e];
        }
        if (dd && off >= 0)
            dd[off + e] = (T)0; /* every writer writes the same zero */
    }
}

int otk_scatter_nd_grad(void *stream, const otk_nd *q, int es, const int64_t *idx, const void *dy,
                        void *dd, void *du)
{
    int64_t n = q->count * q->slice;
    switch (es) {
    case 1: OTK_LAUNCH(k_scatter_nd_grad<uint8_t>, n, stream, *q, idx, (const uint8_t *)dy, (uint8_t *)dd, (uint8_t *)du, n); break;
    case 2: OTK_LAUNCH(k_scatter_nd_grad<uint16_t>, n, stream, *q, idx, (const uint16_t *)dy, (uint16_t *)dd, (uint16_t *)du, n); break;
    case 4: OTK_LAUNCH(k_scatter_nd_grad<uint32_t>, n, stream, *q, idx, (const uint32_t *)dy, (uint32_t *)dd, (uint32_t *)du, n); break;
    default: OTK_LAUNCH(k_scatter_nd_grad<uint64_t>, n, stream, *q, idx, (const uint64_t *)dy, (uint64_t *)dd, (uint64_t *)du, n); break;
    }
    return otk_status();
}

/* ------------------------------------------------------------ GatherGrad */

/* dX[o, i, e] = sum over j in order with idx[j] naming i of dY[o, j, e] */
__global__ void k_gather_grad(const float *dy, const void *idx, int idx64, float *dx,
                              int64_t n_idx, int64_t dax, int64_t inner, int64_t n)
{
    OTK_FOR(t, n)
    {
        int64_t e = t % inner, i = (t / inner) % dax, o = t / (inner * dax);
        float acc = 0.0f;
        for (int64_t j = 0; j < n_idx; j++) {
            int64_t v = idx64 ? ((const int64_t *)idx)[j] : (int64_t)((const int32_t *)idx)[j];
            if (v < 0)
                v += dax;
            if (v == i)
                acc += dy[(o * n_idx + j) * inner + e];
        }
        dx[t] = acc;
    }
}

int otk_gather_grad_f32(void *stream, const float *dy, const void *idx, int idx64, float *dx,
                        int64_t outer, int64_t n_idx, int64_t dax, int64_t inner)
{
    int64_t n = outer * dax * inner;
    OTK_LAUNCH(k_gather_grad, n, stream, dy, idx, idx64, dx, n_idx, dax, inner, n);
    return otk_status();
}
