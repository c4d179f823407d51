/*
 * layout.cu: the conversion between NCHW and channels-last (NHWC) that the
 * backend inserts where a value meets a reader in the other layout
 * (cuda_layout.h), on any element size (1, 2, 4 or 8 bytes): [N, C, S] to
 * [N, S, C] or back, S the spatial positions. One thread per element of the
 * result, which it writes in order.
 */
#include "exec/cuda/kernels/common.cuh"

template <typename T>
__global__ void k_nhwc(const T *x, T *y, int64_t C, int64_t S, int to_nhwc, int64_t n)
{
    OTK_FOR(i, n)
    {
        int64_t b = i / (C * S), r = i % (C * S), at;
        if (to_nhwc)
            at = (b * C + r % C) * S + r / C;
        else
            at = (b * S + r % S) * C + r / S;
        y[i] = x[at];
    }
}

int otk_nhwc_transpose(void *stream, int es, const void *x, void *y, int64_t N, int64_t C,
                       int64_t S, int to_nhwc)
{
    int64_t n = N * C * S;
    switch (es) {
    case 1: OTK_LAUNCH(k_nhwc<uint8_t>, n, stream, (const uint8_t *)x, (uint8_t *)y, C, S, to_nhwc, n); break;
    case 2: OTK_LAUNCH(k_nhwc<uint16_t>, n, stream, (const uint16_t *)x, (uint16_t *)y, C, S, to_nhwc, n); break;
    case 4: OTK_LAUNCH(k_nhwc<uint32_t>, n, stream, (const uint32_t *)x, (uint32_t *)y, C, S, to_nhwc, n); break;
    default: OTK_LAUNCH(k_nhwc<uint64_t>, n, stream, (const uint64_t *)x, (uint64_t *)y, C, S, to_nhwc, n); break;
    }
    return otk_status();
}
