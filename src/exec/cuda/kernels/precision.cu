/*
 * precision.cu: the conversions of --precision bf16 and fp16: float32 to
 * bfloat16 or float16 (round to nearest even, as the CPU's ot_f32_to_bf16
 * and ot_f32_to_f16 round), and back (exact). The backend converts a
 * convolution's or a product's float32 operands into half copies before
 * cuDNN or cuBLASLt reads them, and a half result back to float32.
 *
 * On the device the conversions are CUDA's correctly rounded intrinsics;
 * under the host emulation they are the CPU's own functions (src/core), so
 * the emulation checks the launch and the indexing, and the device check
 * compares the intrinsics with the CPU's rounding bit for bit.
 */
#include "exec/cuda/kernels/common.cuh"

#ifdef OT_CUDA_EMU
extern "C" {
float ot_f16_to_f32(uint16_t h);
uint16_t ot_f32_to_f16(float f);
float ot_bf16_to_f32(uint16_t h);
uint16_t ot_f32_to_bf16(float f);
}
static inline uint16_t to_half(float v, int bf16) { return bf16 ? ot_f32_to_bf16(v) : ot_f32_to_f16(v); }
static inline float from_half(uint16_t h, int bf16) { return bf16 ? ot_bf16_to_f32(h) : ot_f16_to_f32(h); }
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
__device__ __forceinline__ uint16_t to_half(float v, int bf16)
{
    return bf16 ? __bfloat16_as_ushort(__float2bfloat16_rn(v)) : __half_as_ushort(__float2half_rn(v));
}
__device__ __forceinline__ float from_half(uint16_t h, int bf16)
{
    return bf16 ? __bfloat162float(__ushort_as_bfloat16(h)) : __half2float(__ushort_as_half(h));
}
#endif

__global__ void k_to_half(const float *x, uint16_t *y, int64_t n, int bf16)
{
    OTK_FOR(i, n)
    y[i] = to_half(x[i], bf16);
}

__global__ void k_from_half(const uint16_t *x, float *y, int64_t n, int bf16)
{
    OTK_FOR(i, n)
    y[i] = from_half(x[i], bf16);
}

int otk_cast_half(void *stream, const void *x, void *y, int64_t n, int narrow, int bf16)
{
    if (narrow)
        OTK_LAUNCH(k_to_half, n, stream, (const float *)x, (uint16_t *)y, n, bf16);
    else
        OTK_LAUNCH(k_from_half, n, stream, (const uint16_t *)x, (float *)y, n, bf16);
    return otk_status();
}
