/*
 * transform.c: torchvision's evaluation transform on PIL images, in C:
 *     Resize(S) -> CenterCrop(S) -> ToTensor() -> Normalize(mean, std)
 *
 * Resize(S) scales the shorter side to S and the longer to
 * int(S * long / short) (torchvision's _compute_resized_output_size), with
 * PIL's BILINEAR resample (Pillow, src/libImaging/Resample.c). For each output
 * pixel xx of a pass from `in` to `out` samples, scale = in / out:
 *     center  = (xx + 0.5) * scale
 *     support = max(scale, 1)                     (filter support 1, widened)
 *     taps x in [(int)(center - support + 0.5), (int)(center + support + 0.5))
 *     w(x)    = tri((x - center + 0.5) / max(scale, 1)),  tri(t) = max(0, 1 - |t|)
 * normalised to sum 1 and rounded to 22-bit fixed point. The horizontal pass
 * runs first and both passes round to uint8 as PIL does; a pass whose size
 * does not change is skipped. So shrinking is antialiased (the triangle widens
 * with the scale) and enlarging is bilinear with half-pixel centres.
 *
 * CenterCrop: top = round((H - S) / 2), left = round((W - S) / 2), rounding
 * half to even as Python's round does. Only the cropped S x S window is ever
 * computed: every output pixel depends on its own coefficients alone, so the
 * result equals resizing the whole image and then cropping.
 *
 * ToTensor and Normalize run in float32, in torchvision's order:
 * (v / 255 - mean) / std.
 *
 * Also here: the batch loader that applies the transform, the seeded shuffle
 * that orders an epoch, and ot_data_prepare_box, which resizes one box of the
 * image to S x S (and may mirror it) for augment.c: torchvision's
 * resized_crop (PIL crop, then resize to (S, S)) and hflip. The box is read in
 * place; the same plan, with the box as the input and no crop offset, runs it.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "data/data_impl.h"
#include "data/loader.h"

#define PRECISION_BITS 22 /* PIL's fixed point for 8-bit images: 32 - 8 - 2 */

/* The geometry of one transform on one image size. */
typedef struct {
    int S;
    int h, w;          /* input size: the image, or the box of it      */
    int y0, x0;        /* the input's origin in the image              */
    int stride;        /* image row length                             */
    int plane_h;       /* image rows per channel plane                 */
    int rh, rw;        /* size after Resize(S)                         */
    int top, left;     /* crop offset in the resized image             */
    bool flip;         /* mirror the output left to right              */
    bool need_h;       /* horizontal pass runs (rw != w)               */
    bool need_v;       /* vertical pass runs (rh != h)                 */
    int kw, kh;        /* taps per output pixel in each pass (0: none) */
    size_t bytes;      /* scratch                                      */
} plan;

/* Python's round(d / 2.0) for d >= 0: half to even. */
static int half_round_even(int d)
{
    int q = d / 2;
    if (d % 2 != 0 && q % 2 != 0)
        q++;
    return q;
}

/* Taps per output pixel for a pass from `in` to `out` samples (PIL's ksize). */
static int taps(int in, int out)
{
    double support = (double)in / out;
    if (support < 1.0)
        support = 1.0;
    return (int)ceil(support) * 2 + 1;
}

static bool transform_ok(const ot_data_transform *t, int out_channels)
{
    if (!t || t->size < 1 || t->size > OT_DATA_MAX_SIZE)
        return false;
    for (int c = 0; c < out_channels; c++)
        if (!(t->mean[c] >= (float)OT_DATA_MEAN_MIN && t->mean[c] <= (float)OT_DATA_MEAN_MAX) ||
            !(t->std[c] >= (float)OT_DATA_STD_MIN && t->std[c] <= (float)OT_DATA_STD_MAX))
            return false;
    return true;
}

/* Fills *p for an h x w image; false when the sizes are out of range. */
static bool make_plan(int h, int w, const ot_data_transform *t, plan *p)
{
    if (!t || h < 1 || w < 1 || h > OT_DATA_MAX_SIDE || w > OT_DATA_MAX_SIDE || t->size < 1 ||
        t->size > OT_DATA_MAX_SIZE)
        return false;
    int S = t->size;
    int short_side = w <= h ? w : h, long_side = w <= h ? h : w;
    /* Python: int(S * long / short), an exact product then a rounded quotient. */
    int new_long = (int)((double)((int64_t)S * long_side) / short_side);
    p->S = S;
    p->h = h;
    p->w = w;
    p->y0 = 0;
    p->x0 = 0;
    p->stride = w;
    p->plane_h = h;
    p->flip = false;
    p->rw = w <= h ? S : new_long;
    p->rh = w <= h ? new_long : S;
    p->top = half_round_even(p->rh - S);
    p->left = half_round_even(p->rw - S);
    p->need_h = p->rw != w;
    p->need_v = p->rh != h;
    p->kw = p->need_h ? taps(w, p->rw) : 0;
    p->kh = p->need_v ? taps(h, p->rh) : 0;
    /* int32 coefficients and bounds for both passes, the horizontal result for
       every input row (h x S), the final plane (S x S). Bounded by the limits
       above, so size_t arithmetic cannot overflow on 64-bit hosts. */
    size_t ints = (size_t)S * ((size_t)p->kw + 2) + (size_t)S * ((size_t)p->kh + 2);
    p->bytes = ints * sizeof(int32_t) + (size_t)h * S + (size_t)S * S;
    return true;
}

int ot_data_out_channels(const ot_data_transform *t, int in_channels)
{
    return (t->to_rgb || in_channels == 3) ? 3 : 1;
}

void ot_data_transform_init(ot_data_transform *t, int size, ot_data_norm norm)
{
    static const float imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
    static const float imagenet_std[3] = {0.229f, 0.224f, 0.225f};
    memset(t, 0, sizeof *t);
    t->size = size;
    t->to_rgb = true;
    for (int c = 0; c < 3; c++) {
        switch (norm) {
        case OT_DATA_NORM_IMAGENET:
            t->mean[c] = imagenet_mean[c];
            t->std[c] = imagenet_std[c];
            break;
        case OT_DATA_NORM_HALF:
            t->mean[c] = 0.5f;
            t->std[c] = 0.5f;
            break;
        case OT_DATA_NORM_NONE:
        default:
            t->mean[c] = 0.0f;
            t->std[c] = 1.0f;
            break;
        }
    }
}

size_t ot_data_prepare_scratch_bytes(int height, int width, const ot_data_transform *t)
{
    plan p;
    if (!transform_ok(t, 1) || !make_plan(height, width, t, &p))
        return 0;
    return p.bytes;
}

/* PIL's precompute_coeffs + normalize_coeffs_8bpc for output samples
   first .. first + count - 1 of a pass from `in` to `out` samples. k holds
   `ksize` coefficients per output sample; bounds holds (xmin, n_taps). */
static void coefficients(int in, int out, int first, int count, int ksize, int32_t *k,
                         int32_t *bounds)
{
    double scale = (double)in / out;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = filterscale; /* the triangle's support is 1 */
    double ss = 1.0 / filterscale;
    for (int j = 0; j < count; j++) {
        double center = (first + j + 0.5) * scale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0)
            xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in)
            xmax = in;
        xmax -= xmin;
        OT_ASSERT(xmax >= 0 && xmax <= ksize);
        double ww = 0.0;
        for (int x = 0; x < xmax; x++) {
            double d = fabs(((double)(x + xmin) - center + 0.5) * ss);
            ww += d < 1.0 ? 1.0 - d : 0.0;
        }
        int32_t *kj = k + (size_t)j * ksize;
        for (int x = 0; x < xmax; x++) {
            double d = fabs(((double)(x + xmin) - center + 0.5) * ss);
            double v = d < 1.0 ? 1.0 - d : 0.0;
            if (ww != 0.0)
                v /= ww;
            kj[x] = (int32_t)(v < 0 ? -0.5 + v * (1 << PRECISION_BITS)
                                    : 0.5 + v * (1 << PRECISION_BITS));
        }
        bounds[2 * j] = xmin;
        bounds[2 * j + 1] = xmax;
    }
}

/* PIL's clip8: the fixed-point sum back to a byte. */
static inline uint8_t clip8(int32_t acc)
{
    if (acc <= 0)
        return 0;
    acc >>= PRECISION_BITS;
    return acc > 255 ? 255 : (uint8_t)acc;
}

/* Resizes and crops one channel plane (h x w) into dst (S x S), using the
   coefficients already in scratch. tmp: h x S. */
static void resample_plane(const plan *p, const uint8_t *src, const int32_t *kx,
                           const int32_t *bx, const int32_t *ky, const int32_t *by, uint8_t *tmp,
                           uint8_t *dst)
{
    const int S = p->S;
    /* Input rows the vertical pass reads. */
    int r0 = p->top, r1 = p->top + S;
    if (p->need_v) {
        r0 = by[0];
        r1 = by[2 * (S - 1)] + by[2 * (S - 1) + 1];
    }
    for (int y = r0; y < r1; y++) {
        const uint8_t *row = src + (size_t)(p->y0 + y) * p->stride + p->x0;
        uint8_t *out = tmp + (size_t)y * S;
        if (!p->need_h) {
            memcpy(out, row + p->left, (size_t)S);
            continue;
        }
        for (int j = 0; j < S; j++) {
            const int32_t *k = kx + (size_t)j * p->kw;
            const uint8_t *in = row + bx[2 * j];
            int32_t acc = 1 << (PRECISION_BITS - 1);
            for (int x = 0; x < bx[2 * j + 1]; x++)
                acc += in[x] * k[x];
            out[j] = clip8(acc);
        }
    }
    for (int i = 0; i < S; i++) {
        uint8_t *out = dst + (size_t)i * S;
        if (!p->need_v) {
            memcpy(out, tmp + (size_t)(p->top + i) * S, (size_t)S);
            continue;
        }
        const int32_t *k = ky + (size_t)i * p->kh;
        const uint8_t *in = tmp + (size_t)by[2 * i] * S;
        int n = by[2 * i + 1];
        for (int j = 0; j < S; j++) {
            int32_t acc = 1 << (PRECISION_BITS - 1);
            for (int y = 0; y < n; y++)
                acc += in[(size_t)y * S + j] * k[y];
            out[j] = clip8(acc);
        }
    }
}

/* The transform with a plan already checked against the image and scratch. */
static void prepare_planned(const plan *p, const ot_image *img, const ot_data_transform *t,
                            float *out, void *scratch)
{
    const int S = p->S;
    const size_t plane = (size_t)S * S;
    int32_t *kx = scratch;
    int32_t *bx = kx + (size_t)S * p->kw;
    int32_t *ky = bx + 2 * (size_t)S;
    int32_t *by = ky + (size_t)S * p->kh;
    uint8_t *tmp = (uint8_t *)(by + 2 * (size_t)S);
    uint8_t *res = tmp + (size_t)p->h * S;
    if (p->need_h)
        coefficients(p->w, p->rw, p->left, S, p->kw, kx, bx);
    if (p->need_v)
        coefficients(p->h, p->rh, p->top, S, p->kh, ky, by);

    int out_c = ot_data_out_channels(t, img->channels);
    for (int ic = 0; ic < img->channels; ic++) {
        resample_plane(p, img->data + (size_t)ic * p->plane_h * p->stride, kx, bx, ky, by, tmp,
                       res);
        /* A gray image feeds every output channel, an RGB one its own. */
        int oc_first = img->channels == 1 ? 0 : ic;
        int oc_last = img->channels == 1 ? out_c - 1 : ic;
        for (int oc = oc_first; oc <= oc_last; oc++) {
            float *o = out + (size_t)oc * plane;
            float mean = t->mean[oc], std = t->std[oc];
            if (!p->flip) {
                for (size_t q = 0; q < plane; q++)
                    o[q] = ((float)res[q] / 255.0f - mean) / std;
                continue;
            }
            for (size_t i = 0; i < (size_t)S; i++) {
                const uint8_t *r = res + i * S;
                float *orow = o + i * S;
                for (size_t j = 0; j < (size_t)S; j++)
                    orow[j] = ((float)r[S - 1 - j] / 255.0f - mean) / std;
            }
        }
    }
}

/* ---------------------------------------------- the resample as tables */

bool ot_data_resample_plan(int h, int w, const ot_data_transform *t, ot_data_resample *r)
{
    plan p;
    if (!transform_ok(t, 1) || !make_plan(h, w, t, &p))
        return false;
    r->S = p.S;
    r->h = h;
    r->w = w;
    r->rh = p.rh;
    r->rw = p.rw;
    r->top = p.top;
    r->left = p.left;
    r->kw = p.kw;
    r->kh = p.kh;
    r->n_coef = (size_t)p.S * ((size_t)p.kw + 2) + (size_t)p.S * ((size_t)p.kh + 2);
    return true;
}

void ot_data_resample_coefs(const ot_data_resample *r, int32_t *coef)
{
    int S = r->S;
    int32_t *kx = coef, *bx = kx + (size_t)S * r->kw;
    int32_t *ky = bx + 2 * (size_t)S, *by = ky + (size_t)S * r->kh;
    if (r->kw)
        coefficients(r->w, r->rw, r->left, S, r->kw, kx, bx);
    if (r->kh)
        coefficients(r->h, r->rh, r->top, S, r->kh, ky, by);
}

/* Checks everything ot_data_prepare and ot_data_load_batch rely on. */
static ot_status check_prepare(int h, int w, int channels, const ot_data_transform *t,
                               const void *scratch, size_t scratch_bytes, plan *p, ot_err *err)
{
    if (channels != 1 && channels != 3)
        return ot_err_set(err, OT_ERR_ARG, "transform: image has %d channels, expected 1 or 3",
                          channels);
    if (!t || !transform_ok(t, ot_data_out_channels(t, channels)))
        return ot_err_set(err, OT_ERR_ARG,
                          "transform: size %d is outside 1 .. %d, or a mean is outside %g .. %g "
                          "or a std outside %g .. %g",
                          t ? t->size : 0, OT_DATA_MAX_SIZE, OT_DATA_MEAN_MIN, OT_DATA_MEAN_MAX,
                          OT_DATA_STD_MIN, OT_DATA_STD_MAX);
    if (!make_plan(h, w, t, p))
        return ot_err_set(err, OT_ERR_ARG, "transform: image of %d x %d is outside 1 .. %d", h, w,
                          OT_DATA_MAX_SIDE);
    if (!scratch || scratch_bytes < p->bytes || (uintptr_t)scratch % sizeof(int32_t) != 0)
        return ot_err_set(err, OT_ERR_ARG,
                          "transform: scratch of %zu bytes, %d x %d -> %d needs %zu (aligned)",
                          scratch_bytes, h, w, t->size, p->bytes);
    return OT_OK;
}

ot_status ot_data_prepare(const ot_image *img, const ot_data_transform *t, float *out,
                          void *scratch, size_t scratch_bytes, ot_err *err)
{
    plan p;
    if (!img || !img->data || !out)
        return ot_err_set(err, OT_ERR_ARG, "ot_data_prepare: NULL image or output");
    ot_status st = check_prepare(img->height, img->width, img->channels, t, scratch,
                                 scratch_bytes, &p, err);
    if (st != OT_OK)
        return st;
    prepare_planned(&p, img, t, out, scratch);
    return OT_OK;
}

/* ------------------------------------------------------------- boxes */

/* Fills *p for the box (top, left, bh, bw) of an h x w image resized to
   S x S; false when a size is out of range or the box leaves the image. */
static bool make_box_plan(int h, int w, int top, int left, int bh, int bw, bool flip,
                          const ot_data_transform *t, plan *p)
{
    if (!make_plan(h, w, t, p) || bh < 1 || bw < 1 || top < 0 || left < 0 || top > h - bh ||
        left > w - bw)
        return false;
    int S = t->size;
    p->h = bh;
    p->w = bw;
    p->y0 = top;
    p->x0 = left;
    p->stride = w;
    p->plane_h = h;
    p->flip = flip;
    p->rh = S;
    p->rw = S;
    p->top = 0;
    p->left = 0;
    p->need_h = bw != S;
    p->need_v = bh != S;
    p->kw = p->need_h ? taps(bw, S) : 0;
    p->kh = p->need_v ? taps(bh, S) : 0;
    size_t ints = (size_t)S * ((size_t)p->kw + 2) + (size_t)S * ((size_t)p->kh + 2);
    p->bytes = ints * sizeof(int32_t) + (size_t)bh * S + (size_t)S * S;
    return true;
}

bool ot_data_box_resample_plan(int h, int w, int top, int left, int bh, int bw,
                               const ot_data_transform *t, ot_data_resample *r)
{
    plan p;
    if (!transform_ok(t, 1) || !make_box_plan(h, w, top, left, bh, bw, false, t, &p))
        return false;
    r->S = p.S;
    r->h = bh;
    r->w = bw;
    r->rh = p.S;
    r->rw = p.S;
    r->top = 0;
    r->left = 0;
    r->kw = p.kw;
    r->kh = p.kh;
    r->n_coef = (size_t)p.S * ((size_t)p.kw + 2) + (size_t)p.S * ((size_t)p.kh + 2);
    return true;
}

size_t ot_data_box_coef_max(int h, int w, const ot_data_transform *t)
{
    plan p;
    if (!transform_ok(t, 1) || !make_plan(h, w, t, &p))
        return 0;
    size_t S = (size_t)p.S;
    return S * ((size_t)taps(w, p.S) + 2) + S * ((size_t)taps(h, p.S) + 2);
}

size_t ot_data_box_scratch_bytes(int height, int width, const ot_data_transform *t)
{
    plan p;
    if (!transform_ok(t, 1) || !make_plan(height, width, t, &p))
        return 0;
    /* The largest box plan: taps grow with the box side, and a pass that an
       equal side skips may run for a smaller box. */
    size_t S = (size_t)p.S;
    size_t ints = S * ((size_t)taps(width, p.S) + 2) + S * ((size_t)taps(height, p.S) + 2);
    return ints * sizeof(int32_t) + (size_t)height * S + S * S;
}

ot_status ot_data_prepare_box(const ot_image *img, const ot_data_transform *t, int top, int left,
                              int box_h, int box_w, bool flip, float *out, void *scratch,
                              size_t scratch_bytes, ot_err *err)
{
    plan p;
    if (!img || !img->data || !out)
        return ot_err_set(err, OT_ERR_ARG, "ot_data_prepare_box: NULL image or output");
    /* The box bound first, so that a short buffer is reported with what it
       needs; check_prepare then checks the rest (its own bound is lower). */
    size_t need = ot_data_box_scratch_bytes(img->height, img->width, t);
    if (need != 0 && scratch_bytes < need)
        return ot_err_set(err, OT_ERR_ARG,
                          "transform: scratch of %zu bytes, boxes of %d x %d -> %d need %zu",
                          scratch_bytes, img->height, img->width, t->size, need);
    ot_status st = check_prepare(img->height, img->width, img->channels, t, scratch,
                                 scratch_bytes, &p, err);
    if (st != OT_OK)
        return st;
    if (!make_box_plan(img->height, img->width, top, left, box_h, box_w, flip, t, &p))
        return ot_err_set(err, OT_ERR_ARG,
                          "transform: box %d x %d at (%d, %d) is not inside the %d x %d image",
                          box_h, box_w, top, left, img->height, img->width);
    OT_ASSERT(p.bytes <= scratch_bytes);
    prepare_planned(&p, img, t, out, scratch);
    return OT_OK;
}

/* ---------------------------------------------------------------- batches */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** (Blackman and Vigna, https://prng.di.unimi.it/). */
static uint64_t xoshiro_next(uint64_t s[4])
{
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in 0 .. bound - 1 (bound >= 1): draws below 2^64 mod bound are
   rejected, so no value is favoured. */
static uint64_t bounded(uint64_t s[4], uint64_t bound)
{
    uint64_t reject_below = (0 - bound) % bound;
    for (;;) {
        uint64_t r = xoshiro_next(s);
        if (r >= reject_below)
            return r % bound;
    }
}

void ot_data_shuffle(int64_t n, uint64_t seed, int64_t epoch, int64_t *perm)
{
    if (n <= 0)
        return;
    uint64_t x = seed;
    x = splitmix64(&x) ^ ((uint64_t)epoch * 0xd1b54a32d192ed03ull);
    uint64_t s[4];
    for (int i = 0; i < 4; i++)
        s[i] = splitmix64(&x);
    if ((s[0] | s[1] | s[2] | s[3]) == 0)
        s[0] = 1;
    for (int64_t i = 0; i < n; i++)
        perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)bounded(s, (uint64_t)i + 1);
        int64_t tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
}

ot_status ot_data_load_batch(const ot_dataset *ds, const int64_t *indices, int n,
                             const ot_data_transform *t, float *x, int64_t *labels,
                             void *scratch, size_t scratch_bytes, ot_err *err)
{
    plan p;
    if (!ds || (n > 0 && (!indices || !x || !labels)) || n < 0)
        return ot_err_set(err, OT_ERR_ARG, "ot_data_load_batch: invalid arguments");
    if (ds->folder) /* images of their own sizes, decoded per item */
        return ot_data_folder_load_batch(ds, indices, n, t, x, labels, scratch, scratch_bytes,
                                         err);
    ot_status st = check_prepare(ds->height, ds->width, ds->channels, t, scratch, scratch_bytes,
                                 &p, err);
    if (st != OT_OK)
        return st;
    size_t per_image = (size_t)ot_data_out_channels(t, ds->channels) * p.S * p.S;
    for (int b = 0; b < n; b++) {
        ot_image img;
        int label;
        st = ot_data_get(ds, indices[b], &img, &label, err);
        if (st != OT_OK) {
            ot_err_prefix(err, "batch item %d", b);
            return st;
        }
        prepare_planned(&p, &img, t, x + (size_t)b * per_image, scratch);
        labels[b] = label;
    }
    return OT_OK;
}
