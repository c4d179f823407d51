/*
 * prep.cu: the evaluation transform of the data loader on the device, for
 * images uploaded as uint8: PIL's bilinear resize of each image to the
 * shorter side S, the centre crop, an optional mirror, then ToTensor and
 * Normalize, as src/data/transform.c computes them.
 *
 * The host makes the fixed-point tables with the loader's own code
 * (ot_data_resample_plan, ot_data_resample_coefs). The horizontal pass
 * writes each image row resampled to the S cropped columns (uint8, rounded
 * as PIL does); the vertical pass resamples those to the S cropped rows and
 * normalises in float32 in torchvision's order, (v / 255 - mean) / std. A
 * pass whose side keeps its size copies the cropped window instead. Every
 * step is integer arithmetic or one correctly rounded float operation, so
 * the result equals the CPU loader's bit for bit. With --augment each
 * image has its own box (the random crop) and flip, and its own tables
 * (otk_prepare_u8_boxes), made on the host by the loader's code.
 */
#include "exec/cuda/kernels/common.cuh"

#define OTK_PREC_BITS 22

__device__ __forceinline__ uint8_t prep_clip8(int32_t acc)
{
    if (acc <= 0)
        return 0;
    acc >>= OTK_PREC_BITS;
    return acc > 255 ? 255 : (uint8_t)acc;
}

/* tmp[(n, c, y), j]: row y of plane (n, c) resampled to output column j */
__global__ void k_prep_rows(otk_prep q, const uint8_t *img, const int32_t *coef, uint8_t *tmp)
{
    const int S = q.S;
    const int32_t *kx = coef, *bx = kx + (int64_t)S * q.kw;
    OTK_FOR(t, (int64_t)q.n * q.c_in * q.h * S)
    {
        int64_t row = t / S; /* (n, c, y) */
        int j = (int)(t % S);
        const uint8_t *src = img + row * q.w;
        if (!q.kw) {
            tmp[t] = src[q.left + j];
            continue;
        }
        const int32_t *k = kx + (int64_t)j * q.kw;
        const uint8_t *in = src + bx[2 * j];
        int32_t acc = 1 << (OTK_PREC_BITS - 1);
        for (int x = 0; x < bx[2 * j + 1]; x++)
            acc += in[x] * k[x];
        tmp[t] = prep_clip8(acc);
    }
}

/* out[(n, oc, i, j)] from the resampled rows of input channel ic */
__global__ void k_prep_cols(otk_prep q, const int32_t *coef, const uint8_t *tmp, float *out)
{
    const int S = q.S;
    const int32_t *ky = coef + (int64_t)S * (q.kw + 2), *by = ky + (int64_t)S * q.kh;
    OTK_FOR(t, (int64_t)q.n * q.c_out * S * S)
    {
        int j = (int)(t % S);
        int i = (int)(t / S % S);
        int oc = (int)(t / ((int64_t)S * S) % q.c_out);
        int64_t n = t / ((int64_t)S * S * q.c_out);
        int ic = q.c_in == 1 ? 0 : oc;
        int col = q.flip ? S - 1 - j : j;
        const uint8_t *plane = tmp + (n * q.c_in + ic) * (int64_t)q.h * S;
        uint8_t v;
        if (!q.kh) {
            v = plane[(int64_t)(q.top + i) * S + col];
        } else {
            const int32_t *k = ky + (int64_t)i * q.kh;
            const uint8_t *in = plane + (int64_t)by[2 * i] * S + col;
            int32_t acc = 1 << (OTK_PREC_BITS - 1);
            for (int y = 0; y < by[2 * i + 1]; y++)
                acc += in[(int64_t)y * S] * k[y];
            v = prep_clip8(acc);
        }
        out[t] = ((float)v / 255.0f - q.mean[oc]) / q.std[oc];
    }
}

/* tmp[(n, c, y), j] for the rows y of image n's box: its row y resampled
   to output column j (rows below the box are not written) */
__global__ void k_prep_box_rows(otk_prep q, const uint8_t *img, const int32_t *boxes,
                                uint8_t *tmp)
{
    const int S = q.S;
    OTK_FOR(t, (int64_t)q.n * q.c_in * q.h * S)
    {
        int j = (int)(t % S);
        int y = (int)(t / S % q.h);
        int64_t plane = t / ((int64_t)S * q.h); /* (n, c) */
        const int32_t *b = boxes + plane / q.c_in * q.box_stride;
        if (y >= b[2])
            continue;
        const uint8_t *src = img + (plane * q.h + b[0] + y) * q.w + b[1];
        int kw = b[4];
        if (!kw) {
            tmp[t] = src[j];
            continue;
        }
        const int32_t *kx = b + OTK_BOX_HEAD, *bx = kx + (int64_t)S * kw;
        const int32_t *k = kx + (int64_t)j * kw;
        const uint8_t *in = src + bx[2 * j];
        int32_t acc = 1 << (OTK_PREC_BITS - 1);
        for (int x = 0; x < bx[2 * j + 1]; x++)
            acc += in[x] * k[x];
        tmp[t] = prep_clip8(acc);
    }
}

/* out[(n, oc, i, j)] from the resampled box rows of input channel ic */
__global__ void k_prep_box_cols(otk_prep q, const int32_t *boxes, const uint8_t *tmp,
                                float *out)
{
    const int S = q.S;
    OTK_FOR(t, (int64_t)q.n * q.c_out * S * S)
    {
        int j = (int)(t % S);
        int i = (int)(t / S % S);
        int oc = (int)(t / ((int64_t)S * S) % q.c_out);
        int64_t n = t / ((int64_t)S * S * q.c_out);
        int ic = q.c_in == 1 ? 0 : oc;
        const int32_t *b = boxes + n * q.box_stride;
        int kw = b[4], kh = b[5];
        int col = b[6] ? S - 1 - j : j;
        const uint8_t *plane = tmp + (n * q.c_in + ic) * (int64_t)q.h * S;
        uint8_t v;
        if (!kh) {
            v = plane[(int64_t)i * S + col];
        } else {
            const int32_t *ky = b + OTK_BOX_HEAD + (int64_t)S * (kw + 2);
            const int32_t *by = ky + (int64_t)S * kh;
            const int32_t *k = ky + (int64_t)i * kh;
            const uint8_t *in = plane + (int64_t)by[2 * i] * S + col;
            int32_t acc = 1 << (OTK_PREC_BITS - 1);
            for (int y = 0; y < by[2 * i + 1]; y++)
                acc += in[(int64_t)y * S] * k[y];
            v = prep_clip8(acc);
        }
        out[t] = ((float)v / 255.0f - q.mean[oc]) / q.std[oc];
    }
}

int otk_prepare_u8_boxes(void *stream, const otk_prep *q, const uint8_t *img,
                         const int32_t *boxes, uint8_t *tmp, float *out)
{
    OTK_LAUNCH(k_prep_box_rows, (int64_t)q->n * q->c_in * q->h * q->S, stream, *q, img, boxes,
               tmp);
    OTK_LAUNCH(k_prep_box_cols, (int64_t)q->n * q->c_out * q->S * q->S, stream, *q, boxes,
               (const uint8_t *)tmp, out);
    return otk_status();
}

int otk_prepare_u8(void *stream, const otk_prep *q, const uint8_t *img, const int32_t *coef,
                   uint8_t *tmp, float *out)
{
    OTK_LAUNCH(k_prep_rows, (int64_t)q->n * q->c_in * q->h * q->S, stream, *q, img, coef, tmp);
    OTK_LAUNCH(k_prep_cols, (int64_t)q->n * q->c_out * q->S * q->S, stream, *q, coef,
               (const uint8_t *)tmp, out);
    return otk_status();
}
