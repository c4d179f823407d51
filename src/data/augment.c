/*
 * augment.c: torchvision's default training augmentation,
 *     RandomResizedCrop(S, scale=(0.08, 1), ratio=(3/4, 4/3))
 *     -> RandomHorizontalFlip(0.5) -> ToTensor() -> Normalize(mean, std),
 * with the crop box resized by transform.c's PIL bilinear resample
 * (ot_data_prepare_box).
 *
 * The box follows RandomResizedCrop.get_params (torchvision/transforms/
 * transforms.py): up to ten tries of
 *     target_area  = H * W * uniform(scale)
 *     aspect_ratio = exp(uniform(log(ratio[0]), log(ratio[1])))
 *     w = round(sqrt(target_area * aspect_ratio)), h = round(sqrt(target_area / aspect_ratio))
 * taking the first with 0 < w <= W and 0 < h <= H at top = randint(0, H - h + 1),
 * left = randint(0, W - w + 1); else the fallback: the whole image with its
 * aspect ratio clamped into `ratio`, centred (floor division). round() is
 * Python's, half to even; the arithmetic is double (torch draws float32).
 *
 * Random numbers: counter-based, so that any thread can draw image i's
 * numbers in any order. key = SplitMix64's mixer over (seed, epoch, index);
 * draw k = mix(key + (k + 1) * golden gamma), SplitMix64's output for counter
 * k. Draw 0 decides the flip, draws 1, 2, ... the crop, so the flip does not
 * depend on how many tries the crop took. Not torch's generator: the boxes
 * are torchvision's in distribution, not in value.
 */
#include <math.h>
#include <stdint.h>

#include "data/data_impl.h"
#include "data/loader.h"

#define GAMMA 0x9e3779b97f4a7c15ull

/* SplitMix64's output function (Steele, Lea and Flood 2014). */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

typedef struct {
    uint64_t key;
    uint64_t ctr; /* next draw */
} stream;

static uint64_t draw(stream *s)
{
    s->ctr++;
    return mix64(s->key + s->ctr * GAMMA);
}

/* Uniform in [0, 1) with 53 random bits. */
static double draw_unit(stream *s) { return (double)(draw(s) >> 11) * 0x1p-53; }

/* Uniform in lo .. hi - 1 (hi > lo), as torch.randint(lo, hi); draws below
   2^64 mod range are rejected so that no value is favoured. */
static int draw_int(stream *s, int lo, int hi)
{
    uint64_t range = (uint64_t)((int64_t)hi - lo);
    uint64_t reject_below = (0 - range) % range;
    for (;;) {
        uint64_t r = draw(s);
        if (r >= reject_below)
            return lo + (int)(r % range);
    }
}

void ot_data_augment_params(int height, int width, uint64_t seed, int64_t epoch, int64_t index,
                            ot_data_crop *crop)
{
    uint64_t key = mix64(seed + GAMMA);
    key = mix64(key ^ ((uint64_t)epoch * 0xd1b54a32d192ed03ull + GAMMA));
    key = mix64(key ^ ((uint64_t)index * 0xaef17502108ef2d9ull + GAMMA));
    stream s = {key, 0};

    crop->flip = draw_unit(&s) < 0.5;
    crop->fallback = false;

    const double area = (double)height * width;
    const double log_lo = log(OT_DATA_AUG_RATIO_MIN), log_hi = log(OT_DATA_AUG_RATIO_MAX);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target_area =
            area * (OT_DATA_AUG_SCALE_MIN +
                    (OT_DATA_AUG_SCALE_MAX - OT_DATA_AUG_SCALE_MIN) * draw_unit(&s));
        double aspect = exp(log_lo + (log_hi - log_lo) * draw_unit(&s));
        /* rint rounds half to even in the default rounding mode, as round(). */
        double wd = rint(sqrt(target_area * aspect));
        double hd = rint(sqrt(target_area / aspect));
        if (wd > 0 && wd <= width && hd > 0 && hd <= height) {
            int w = (int)wd, h = (int)hd;
            crop->top = draw_int(&s, 0, height - h + 1);
            crop->left = draw_int(&s, 0, width - w + 1);
            crop->height = h;
            crop->width = w;
            return;
        }
    }
    /* Fallback to a central crop, as torchvision does. */
    double in_ratio = (double)width / height;
    int w = width, h = height;
    if (in_ratio < OT_DATA_AUG_RATIO_MIN) {
        h = (int)rint(w / OT_DATA_AUG_RATIO_MIN);
    } else if (in_ratio > OT_DATA_AUG_RATIO_MAX) {
        w = (int)rint(h * OT_DATA_AUG_RATIO_MAX);
    }
    /* Rounding can exceed the side by one; torchvision's PIL crop would pad
       there, so keep the box inside the image instead. */
    if (h > height)
        h = height;
    if (w > width)
        w = width;
    if (h < 1)
        h = 1;
    if (w < 1)
        w = 1;
    crop->top = (height - h) / 2;
    crop->left = (width - w) / 2;
    crop->height = h;
    crop->width = w;
    crop->fallback = true;
}

size_t ot_data_augment_scratch_bytes(int height, int width, const ot_data_transform *t)
{
    return ot_data_box_scratch_bytes(height, width, t);
}

ot_status ot_data_prepare_augmented(const ot_image *img, const ot_data_transform *t,
                                    uint64_t seed, int64_t epoch, int64_t index, float *out,
                                    void *scratch, size_t scratch_bytes, ot_err *err)
{
    if (!img || !img->data || !out)
        return ot_err_set(err, OT_ERR_ARG, "ot_data_prepare_augmented: NULL image or output");
    if (img->height < 1 || img->width < 1 || img->height > OT_DATA_MAX_SIDE ||
        img->width > OT_DATA_MAX_SIDE)
        return ot_err_set(err, OT_ERR_ARG, "augment: image of %d x %d is outside 1 .. %d",
                          img->height, img->width, OT_DATA_MAX_SIDE);
    ot_data_crop c;
    ot_data_augment_params(img->height, img->width, seed, epoch, index, &c);
    return ot_data_prepare_box(img, t, c.top, c.left, c.height, c.width, c.flip, out, scratch,
                               scratch_bytes, err);
}
