/*
 * einsum.cu: Einsum, any equation the plain kernel takes, on float32.
 *
 * One thread per output element walks the summed labels in row-major order
 * (the labels in id order, as the plain kernel does) and adds the products
 * of the inputs' elements in double, in input order, then rounds once: the
 * same operations in the same order as src/exec/cpu/ref_math.c, so the two
 * agree bit for bit. The host (cuda_kernels.c) parses the equation and hands
 * over each input's element stride per output dim and per summed label (0 on
 * a broadcast dim; a label repeated within an input adds its strides, which
 * walks the diagonal).
 */
#include "exec/cuda/kernels/common.cuh"

/* off[k] += input k's offset of index i of a row-major walk over nd dims
   with strides st[k] */
__device__ __forceinline__ void ein_offsets(int n_in, int nd, const int64_t *dims,
                                            const int64_t (*st)[OTK_MAX_DIMS], int64_t i,
                                            int64_t *off)
{
    for (int j = nd - 1; j >= 0; j--) {
        int64_t v = i % dims[j];
        i /= dims[j];
        for (int k = 0; k < n_in; k++)
            off[k] += v * st[k][j];
    }
}

__global__ void k_einsum(otk_einsum e, float *y)
{
    OTK_FOR(o, e.n_out)
    {
        int64_t base[OTK_EIN_MAX_IN] = { 0 };
        ein_offsets(e.n_in, e.no, e.od, e.os, o, base);
        double acc = 0;
        for (int64_t r = 0; r < e.n_red; r++) {
            int64_t off[OTK_EIN_MAX_IN];
            for (int k = 0; k < e.n_in; k++)
                off[k] = base[k];
            ein_offsets(e.n_in, e.ns, e.sd, e.ss, r, off);
            double p = 1;
            for (int k = 0; k < e.n_in; k++)
                p *= (double)e.x[k][off[k]];
            acc += p;
        }
        y[o] = (float)acc;
    }
}

int otk_einsum_f32(void *stream, const otk_einsum *e, float *y)
{
    OTK_LAUNCH(k_einsum, e->n_out, stream, *e, y);
    return otk_status();
}
