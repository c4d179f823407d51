/*
 * common.cuh: what the CUDA kernels' files share: the runtime header (or its
 * host emulation, emu.h, under OT_CUDA_EMU), the launch shape, the
 * grid-stride loop, and index arithmetic over row-major dims.
 *
 * Every kernel is a grid-stride loop over 64-bit indices, so any grid size
 * covers its range; a launch of nothing is skipped (a zero grid is an error
 * on the device). Launchers return the runtime's status as an int.
 */
#ifndef OT_EXEC_CUDA_KERNELS_COMMON_CUH
#define OT_EXEC_CUDA_KERNELS_COMMON_CUH

#include <stdint.h>

#ifdef OT_CUDA_EMU
#include "exec/cuda/kernels/emu.h"
#else
#include <cuda_runtime.h>
#endif

#include "exec/cuda/kernels/kernels.h"

#ifdef OT_CUDA_EMU
/* small blocks and few of them, so that the emulation walks each loop's
   stride more than once */
#define OTK_BLOCK 32u
#define OTK_MAX_GRID 3u
#else
#define OTK_BLOCK 256u
#define OTK_MAX_GRID 65535u
#endif

static inline unsigned otk_grid(int64_t n)
{
    int64_t g = (n + OTK_BLOCK - 1) / OTK_BLOCK;
    return g < 1 ? 1u : g > (int64_t)OTK_MAX_GRID ? OTK_MAX_GRID : (unsigned)g;
}

#ifdef OT_CUDA_EMU
#define OTK_LAUNCH(kern, n, stream, ...)                                                        \
    do {                                                                                        \
        if ((int64_t)(n) > 0) {                                                                 \
            unsigned g_ = otk_grid((int64_t)(n));                                               \
            (void)(stream);                                                                     \
            gridDim.x = g_;                                                                     \
            blockDim.x = OTK_BLOCK;                                                             \
            for (unsigned b_ = 0; b_ < g_; b_++)                                                \
                for (unsigned t_ = 0; t_ < OTK_BLOCK; t_++) {                                   \
                    blockIdx.x = b_;                                                            \
                    threadIdx.x = t_;                                                           \
                    kern(__VA_ARGS__);                                                          \
                }                                                                               \
        }                                                                                       \
    } while (0)
#else
#define OTK_LAUNCH(kern, n, stream, ...)                                                        \
    do {                                                                                        \
        if ((int64_t)(n) > 0)                                                                   \
            kern<<<otk_grid((int64_t)(n)), OTK_BLOCK, 0, (cudaStream_t)(stream)>>>(__VA_ARGS__); \
    } while (0)
#endif

/* for (i = this thread's first index; i < n; i += all threads) */
#define OTK_FOR(i, n)                                                                           \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (int64_t)(n);         \
         i += (int64_t)blockDim.x * gridDim.x)

/* The status of the launches so far. */
static inline int otk_status(void) { return (int)cudaGetLastError(); }

/* The offset, under strides s, of element i of a row-major walk over dims. */
__device__ __forceinline__ int64_t otk_offset(int nd, const int64_t *dims, const int64_t *s,
                                              int64_t i)
{
    int64_t off = 0;
    for (int k = nd - 1; k >= 0; k--) {
        int64_t d = dims[k];
        off += (i % d) * s[k];
        i /= d;
    }
    return off;
}

#endif
