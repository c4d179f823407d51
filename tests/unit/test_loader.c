/*
 * test_loader.c: augmentation and the batch loader (src/data/augment.c,
 * loader.c). The crop box statistics follow RandomResizedCrop's (area
 * fraction, aspect ratio, fallback, flip rate); a fixed box and flip match
 * torchvision's resized_crop + hflip exactly (tests/golden/data_augment.bin,
 * made by tests/fixtures/make_augment_golden.py). The loader's batches equal
 * ot_data_load_batch's bit for bit for 0 to 3 workers, in order, with the last
 * partial batch, across epochs; augmented batches are the same for any worker
 * count; a failing image's error reaches next() as the first in order;
 * skip_bad drops exactly the failing images; free mid-epoch joins cleanly.
 * Images that fail to read come from the loader's test source hook.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "data/loader.h"
#include "test.h"

#define GOLDEN "tests/golden/data_augment.bin"
#define REC 3073 /* CIFAR-10 record: label byte + 3 x 32 x 32 */
#define N_IMAGES 23

/* ------------------------------------------------------------- helpers */

/* Opens a CIFAR-10 test split of N_IMAGES pseudo-random images, written once
   per run under the scratch folder. */
static ot_dataset *tiny_cifar(void)
{
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/loader", ot_test_tmpdir());
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/test_batch.bin", dir);
    FILE *f = fopen(path, "rb");
    if (f) {
        fclose(f);
    } else {
        uint8_t *b = malloc((size_t)N_IMAGES * REC);
        uint32_t x = 12345;
        for (size_t i = 0; i < (size_t)N_IMAGES * REC; i++) {
            x = x * 1664525u + 1013904223u;
            b[i] = (uint8_t)(x >> 24);
        }
        for (int k = 0; k < N_IMAGES; k++)
            b[(size_t)k * REC] = (uint8_t)(k % 10);
        f = fopen(path, "wb");
        bool ok = f && fwrite(b, 1, (size_t)N_IMAGES * REC, f) == (size_t)N_IMAGES * REC;
        if (f)
            ok = fclose(f) == 0 && ok;
        free(b);
        if (!ok)
            return NULL;
    }
    ot_err err;
    ot_dataset *ds = NULL;
    if (ot_data_open(dir, OT_DATA_TEST, &ds, &err) != OT_OK) {
        printf("  open %s: %s\n", dir, err.msg);
        return NULL;
    }
    return ds;
}

/* A test image source: the dataset's images, except that those in bad[]
   fail with code[] and a message naming them. */
typedef struct {
    const ot_dataset *ds;
    int n_bad;
    int64_t bad[8];
    ot_status code[8];
} source;

static ot_status source_get(void *user, int64_t index, ot_image *img, int *label, ot_err *err)
{
    const source *s = user;
    for (int i = 0; i < s->n_bad; i++)
        if (s->bad[i] == index)
            return ot_err_set(err, s->code[i], "corrupt record %lld", (long long)index);
    return ot_data_get(s->ds, index, img, label, err);
}

/* Everything one epoch produced, concatenated, plus the batch sizes. */
typedef struct {
    float *x;
    int64_t labels[N_IMAGES];
    int sizes[N_IMAGES + 1];
    int n_batches, n_images;
    ot_status st;
    ot_err err;
    uint64_t allocs; /* allocations made during the next() calls */
} epoch_out;

/* Runs one epoch of `perm` through a loader with these options; fills *o
   (o->x is malloc'd, per_image floats each). Stops at the first error. */
static void run_epoch(const ot_dataset *ds, const ot_data_transform *t,
                      const ot_data_loader_opts *opts, source *src, const int64_t *perm,
                      int64_t n, int64_t epoch, epoch_out *o)
{
    size_t per = 3 * (size_t)t->size * t->size;
    memset(o, 0, sizeof *o);
    o->x = calloc(N_IMAGES * per, sizeof(float));
    ot_data_loader *l = NULL;
    o->st = ot_data_loader_new(ds, t, opts, &l, &o->err);
    if (o->st != OT_OK)
        return;
    if (src)
        ot_data_loader_set_source(l, source_get, src);
    o->st = ot_data_loader_start_epoch(l, perm, n, epoch, &o->err);
    uint64_t before = ot_alloc_count();
    while (o->st == OT_OK) {
        float *x;
        int64_t *labels;
        int got;
        o->st = ot_data_loader_next(l, &x, &labels, &got, &o->err);
        if (o->st != OT_OK || got == 0)
            break;
        if (o->n_images + got > N_IMAGES || o->n_batches >= N_IMAGES) {
            o->st = OT_ERR_INTERNAL;
            break;
        }
        memcpy(o->x + (size_t)o->n_images * per, x, (size_t)got * per * sizeof(float));
        memcpy(o->labels + o->n_images, labels, (size_t)got * sizeof *labels);
        o->sizes[o->n_batches++] = got;
        o->n_images += got;
    }
    o->allocs = ot_alloc_count() - before;
    if (o->st == OT_OK) {
        /* After the end: empty again. */
        float *x;
        int64_t *labels;
        int got = -1;
        ot_status st = ot_data_loader_next(l, &x, &labels, &got, &o->err);
        if (st != OT_OK || got != 0)
            o->st = OT_ERR_INTERNAL;
    }
    ot_data_loader_free(l);
}

/* The reference: ot_data_load_batch over order[0 .. n-1] in batches of B;
   returns the number of mismatching batches (or -1 when load_batch fails). */
static int compare_with_load_batch(const ot_dataset *ds, const ot_data_transform *t,
                                   const int64_t *order, int n, int B, const epoch_out *o)
{
    size_t per = 3 * (size_t)t->size * t->size;
    size_t sb = ot_data_prepare_scratch_bytes(32, 32, t);
    void *scratch = malloc(sb);
    float *x = malloc((size_t)B * per * sizeof *x);
    int64_t labels[N_IMAGES];
    int bad = 0, batch = 0;
    for (int k = 0; k < n; k += B, batch++) {
        int m = n - k < B ? n - k : B;
        ot_err err;
        if (ot_data_load_batch(ds, order + k, m, t, x, labels, scratch, sb, &err) != OT_OK) {
            bad = -1;
            break;
        }
        bool same = batch < o->n_batches && o->sizes[batch] == m &&
                    memcmp(x, o->x + (size_t)k * per, (size_t)m * per * sizeof *x) == 0 &&
                    memcmp(labels, o->labels + k, (size_t)m * sizeof *labels) == 0;
        bad += !same;
    }
    if (bad == 0 && batch != o->n_batches)
        bad = 1;
    free(scratch);
    free(x);
    return bad;
}

/* ------------------------------------------------------- augmentation */

static bool same_crop(const ot_data_crop *a, const ot_data_crop *b)
{
    return a->top == b->top && a->left == b->left && a->height == b->height &&
           a->width == b->width && a->flip == b->flip && a->fallback == b->fallback;
}

TEST(augment_params_follow_random_resized_crop)
{
    enum { N = 4000 };
    static const int sizes[][2] = {{32, 32}, {28, 40}, {224, 180}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int H = sizes[s][0], W = sizes[s][1];
        int n_flip = 0, n_fallback = 0;
        double min_frac = 2, max_frac = 0, sum_top = 0;
        for (int i = 0; i < N; i++) {
            ot_data_crop c, again;
            ot_data_augment_params(H, W, 99, 4, i, &c);
            ot_data_augment_params(H, W, 99, 4, i, &again);
            CHECK(same_crop(&c, &again));
            CHECK(c.height >= 1 && c.width >= 1 && c.top >= 0 && c.left >= 0);
            CHECK(c.top + c.height <= H && c.left + c.width <= W);
            n_flip += c.flip;
            n_fallback += c.fallback;
            if (c.fallback)
                continue;
            /* w = round(sqrt(A r)), h = round(sqrt(A / r)): A and r within the
               ranges, up to the rounding of each side by half a pixel. */
            double area = (double)H * W, w = c.width, h = c.height;
            CHECK((w + 0.5) * (h + 0.5) >= OT_DATA_AUG_SCALE_MIN * area);
            CHECK((w - 0.5) * (h - 0.5) <= OT_DATA_AUG_SCALE_MAX * area);
            CHECK((w + 0.5) / (h - 0.5) >= OT_DATA_AUG_RATIO_MIN);
            CHECK((w - 0.5) / (h + 0.5) <= OT_DATA_AUG_RATIO_MAX);
            double frac = w * h / area;
            min_frac = frac < min_frac ? frac : min_frac;
            max_frac = frac > max_frac ? frac : max_frac;
            sum_top += H > c.height ? (double)c.top / (H - c.height) : 0.5;
        }
        /* Flips: 0.5 with sd 0.008 at N = 4000. Fallbacks are rare for
           near-square images (large fractions with extreme ratios). */
        double flip_rate = (double)n_flip / N;
        int n_tried = N - n_fallback;
        if (flip_rate < 0.46 || flip_rate > 0.54 || n_fallback > N / 50 || min_frac > 0.1 ||
            max_frac < 0.9 || fabs(sum_top / n_tried - 0.5) > 0.05)
            printf("  %dx%d: flip rate %.3f, %d fallbacks, area fraction %.3f .. %.3f, mean "
                   "relative top %.3f\n",
                   H, W, flip_rate, n_fallback, min_frac, max_frac, sum_top / n_tried);
        CHECK(flip_rate >= 0.46 && flip_rate <= 0.54);
        CHECK(n_fallback <= N / 50);
        CHECK(min_frac <= 0.1 && max_frac >= 0.9);
        CHECK(fabs(sum_top / n_tried - 0.5) <= 0.05);
    }
    /* The key covers seed, epoch and index: changing any one changes the box
       of most images. */
    int same_seed = 0, same_epoch = 0, same_index = 0;
    for (int i = 0; i < 200; i++) {
        ot_data_crop a, b;
        ot_data_augment_params(64, 64, 1, 0, i, &a);
        ot_data_augment_params(64, 64, 2, 0, i, &b);
        same_seed += same_crop(&a, &b);
        ot_data_augment_params(64, 64, 1, 1, i, &b);
        same_epoch += same_crop(&a, &b);
        ot_data_augment_params(64, 64, 1, 0, i + 1000, &b);
        same_index += same_crop(&a, &b);
    }
    CHECK(same_seed < 10 && same_epoch < 10 && same_index < 10);
}

TEST(augment_params_fallback_is_torchvisions_centre_crop)
{
    /* 4 x 100: no try fits (h = round(sqrt(A / r)) <= 4 needs A < 21.4, and
       A >= 0.08 * 400 = 32), so every draw falls back: h = 4, w =
       round(4 * 4/3) = 5, centred with floor division. */
    for (int i = 0; i < 50; i++) {
        ot_data_crop c;
        ot_data_augment_params(4, 100, 3, 0, i, &c);
        CHECK(c.fallback);
        CHECK_EQ_INT(c.height, 4);
        CHECK_EQ_INT(c.width, 5);
        CHECK_EQ_INT(c.top, 0);
        CHECK_EQ_INT(c.left, 47);
        ot_data_augment_params(100, 4, 3, 0, i, &c);
        CHECK(c.fallback);
        CHECK_EQ_INT(c.width, 4);
        CHECK_EQ_INT(c.height, 5); /* round(4 / (3/4)) = round(5.33) */
        CHECK_EQ_INT(c.top, 47);
        CHECK_EQ_INT(c.left, 0);
    }
    /* A 1 x 1 image: the box is the image. */
    ot_data_crop c;
    ot_data_augment_params(1, 1, 0, 0, 0, &c);
    CHECK(c.top == 0 && c.left == 0 && c.height == 1 && c.width == 1);
}

typedef struct {
    uint8_t *bytes;
    size_t n, at;
} blob;

static bool blob_u32(blob *b, uint32_t *v)
{
    if (b->at + 4 > b->n)
        return false;
    const uint8_t *p = b->bytes + b->at;
    *v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    b->at += 4;
    return true;
}

static bool read_all(const char *path, blob *b)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    b->bytes = malloc(n > 0 ? (size_t)n : 1);
    b->n = fread(b->bytes, 1, (size_t)(n > 0 ? n : 0), f);
    b->at = 0;
    fclose(f);
    return n > 0 && b->n == (size_t)n;
}

TEST(augment_box_matches_torchvision_resized_crop_hflip)
{
    blob b = {0};
    if (!read_all(GOLDEN, &b)) {
        free(b.bytes);
        ot_test_fail(__FILE__, __LINE__, "cannot read %s (run from the repository root; "
                     "regenerate with tests/fixtures/make_augment_golden.py)", GOLDEN);
        return;
    }
    enum { MAX_IMAGES = 4 };
    ot_image imgs[MAX_IMAGES];
    uint32_t version = 0, n_images = 0, n_cases = 0;
    bool ok = b.n > 4 && memcmp(b.bytes, "OTDA", 4) == 0;
    b.at = 4;
    ok = ok && blob_u32(&b, &version) && version == 1 && blob_u32(&b, &n_images) &&
         blob_u32(&b, &n_cases) && n_images <= MAX_IMAGES;
    for (uint32_t i = 0; ok && i < n_images; i++) {
        uint32_t h, w, c;
        ok = blob_u32(&b, &h) && blob_u32(&b, &w) && blob_u32(&b, &c) &&
             b.at + (size_t)h * w * c <= b.n;
        if (ok) {
            imgs[i] = (ot_image){b.bytes + b.at, (int)h, (int)w, (int)c};
            b.at += (size_t)h * w * c;
        }
    }
    static const ot_data_norm norms[3] = {OT_DATA_NORM_NONE, OT_DATA_NORM_IMAGENET,
                                          OT_DATA_NORM_HALF};
    int n_checked = 0, n_flipped = 0;
    for (uint32_t k = 0; ok && k < n_cases; k++) {
        uint32_t f[9];
        for (int i = 0; ok && i < 9; i++)
            ok = blob_u32(&b, &f[i]);
        uint32_t idx = f[0], size = f[1], norm = f[2], out_c = f[3];
        ok = ok && idx < n_images && norm < 3 && out_c <= 3 && size >= 1 && size <= 256 &&
             b.at + (size_t)out_c * size * size * 4 <= b.n;
        if (!ok)
            break;
        const ot_image *img = &imgs[idx];
        ot_data_transform t;
        ot_data_transform_init(&t, (int)size, norms[norm]);
        size_t plane = (size_t)size * size;
        float *want = malloc(out_c * plane * sizeof *want);
        memcpy(want, b.bytes + b.at, out_c * plane * sizeof *want);
        b.at += out_c * plane * sizeof *want;
        size_t sb = ot_data_box_scratch_bytes(img->height, img->width, &t);
        void *scratch = malloc(sb);
        float *got = malloc(3 * plane * sizeof *got);
        ot_err err;
        ot_status st = ot_data_prepare_box(img, &t, (int)f[4], (int)f[5], (int)f[6], (int)f[7],
                                           f[8] != 0, got, scratch, sb, &err);
        double worst = 0;
        size_t worst_at = 0;
        for (int c = 0; st == OT_OK && c < 3; c++)
            for (size_t q = 0; q < plane; q++) {
                double d = fabs((double)got[c * plane + q] -
                                (double)want[(out_c == 1 ? 0 : c) * plane + q]);
                if (d > worst) {
                    worst = d;
                    worst_at = c * plane + q;
                }
            }
        /* Exact: the same integer resample and the same float32 arithmetic. */
        if (st != OT_OK || worst != 0)
            printf("  case %u (%dx%dx%d box %ux%u at (%u,%u) -> %u, flip %u): status %d %s; "
                   "max |err| %.3g at %zu (want %g, got %g)\n",
                   k, img->height, img->width, img->channels, f[6], f[7], f[4], f[5], size, f[8],
                   (int)st, st == OT_OK ? "" : err.msg, worst, worst_at,
                   (double)want[out_c == 1 ? worst_at % plane : worst_at],
                   (double)got[worst_at]);
        ok = st == OT_OK && worst == 0;
        n_flipped += f[8] != 0;
        n_checked++;
        free(want);
        free(got);
        free(scratch);
    }
    free(b.bytes);
    CHECK(ok);
    CHECK_EQ_INT(n_checked, (int)n_cases);
    CHECK(n_checked >= 8 && n_flipped >= 3);
}

TEST(augment_prepare_uses_its_box_and_checks_arguments)
{
    ot_dataset *ds = tiny_cifar();
    CHECK(ds);
    ot_data_transform t;
    ot_data_transform_init(&t, 24, OT_DATA_NORM_IMAGENET);
    enum { PER = 3 * 24 * 24 };
    size_t sb = ot_data_augment_scratch_bytes(32, 32, &t);
    void *scratch = malloc(sb);
    float *a = malloc(PER * sizeof *a), *b = malloc(PER * sizeof *b);
    ot_err err;
    ot_image img;
    int fails = 0, differ = 0;
    ot_status st = ot_data_get(ds, 5, &img, NULL, &err);
    uint64_t allocs = ot_alloc_count();
    for (int64_t i = 0; st == OT_OK && i < 20; i++) {
        ot_data_crop c;
        ot_data_augment_params(32, 32, 11, 2, i, &c);
        fails += ot_data_prepare_augmented(&img, &t, 11, 2, i, a, scratch, sb, &err) != OT_OK;
        fails += ot_data_prepare_box(&img, &t, c.top, c.left, c.height, c.width, c.flip, b,
                                     scratch, sb, &err) != OT_OK;
        fails += memcmp(a, b, PER * sizeof *a) != 0;
        /* Another epoch, another crop. */
        fails += ot_data_prepare_augmented(&img, &t, 11, 3, i, b, scratch, sb, &err) != OT_OK;
        differ += memcmp(a, b, PER * sizeof *a) != 0;
    }
    uint64_t allocs_after = ot_alloc_count();
    /* The whole image, unflipped, is the plain transform's Resize + centre crop
       of a square image. */
    ot_status st_full = ot_data_prepare_box(&img, &t, 0, 0, 32, 32, false, a, scratch, sb, &err);
    ot_status st_plain = ot_data_prepare(&img, &t, b, scratch, sb, &err);
    bool full_same = memcmp(a, b, PER * sizeof *a) == 0;
    ot_status st_out = ot_data_prepare_box(&img, &t, 1, 0, 32, 32, false, a, scratch, sb, &err);
    ot_status st_small = ot_data_prepare_augmented(&img, &t, 0, 0, 0, a, scratch, sb - 1, &err);
    ot_image empty = img;
    empty.height = 0;
    ot_status st_empty = ot_data_prepare_augmented(&empty, &t, 0, 0, 0, a, scratch, sb, &err);
    free(scratch);
    free(a);
    free(b);
    ot_data_free(ds);
    CHECK_EQ_INT(st, OT_OK);
    CHECK_EQ_INT(fails, 0);
    CHECK(differ >= 15);
    CHECK_EQ_INT(allocs_after, allocs);
    CHECK_EQ_INT(st_full, OT_OK);
    CHECK_EQ_INT(st_plain, OT_OK);
    CHECK(full_same);
    CHECK_EQ_INT(st_out, OT_ERR_ARG);
    CHECK_EQ_INT(st_small, OT_ERR_ARG);
    CHECK_EQ_INT(st_empty, OT_ERR_ARG);
}

/* --------------------------------------------------------------- loader */

TEST(loader_batches_equal_load_batch_for_any_worker_count)
{
    ot_dataset *ds = tiny_cifar();
    CHECK(ds);
    ot_data_transform t;
    ot_data_transform_init(&t, 20, OT_DATA_NORM_IMAGENET);
    int64_t perm[N_IMAGES];
    static const int workers[] = {0, 1, 2, 3};
    static const int prefetch[] = {0, 1, 3};
    int n_runs = 0, bad_runs = 0;
    for (int e = 0; e < 2; e++) {
        ot_data_shuffle(N_IMAGES, 5, e, perm);
        for (size_t wi = 0; wi < 4; wi++)
            for (size_t pi = 0; pi < 3; pi++) {
                ot_data_loader_opts o = {.batch_size = 5, .n_workers = workers[wi],
                                         .prefetch = prefetch[pi]};
                epoch_out out;
                run_epoch(ds, &t, &o, NULL, perm, N_IMAGES, e, &out);
                int mismatches = out.st == OT_OK
                                     ? compare_with_load_batch(ds, &t, perm, N_IMAGES, 5, &out)
                                     : -1;
                /* 23 = 4 x 5 + 3: the last batch is partial. */
                bool ok = out.st == OT_OK && mismatches == 0 && out.n_batches == 5 &&
                          out.sizes[4] == 3 && out.allocs == 0;
                if (!ok)
                    printf("  epoch %d, %d workers, prefetch %d: status %d %s, %d batches, %d "
                           "mismatches, %llu allocations\n",
                           e, workers[wi], prefetch[pi], (int)out.st,
                           out.st ? out.err.msg : "", out.n_batches, mismatches,
                           (unsigned long long)out.allocs);
                bad_runs += !ok;
                n_runs++;
                free(out.x);
            }
    }
    /* A subset, one batch larger than the epoch, and an empty epoch. */
    ot_data_loader_opts o = {.batch_size = 64, .n_workers = 2};
    epoch_out out;
    run_epoch(ds, &t, &o, NULL, perm, 7, 0, &out);
    int sub_mismatches = out.st == OT_OK ? compare_with_load_batch(ds, &t, perm, 7, 64, &out) : -1;
    free(out.x);
    run_epoch(ds, &t, &o, NULL, perm, 0, 0, &out);
    ot_status st_empty = out.st;
    int n_empty = out.n_batches;
    free(out.x);
    ot_data_free(ds);
    CHECK_EQ_INT(bad_runs, 0);
    CHECK_EQ_INT(n_runs, 24);
    CHECK_EQ_INT(sub_mismatches, 0);
    CHECK_EQ_INT(st_empty, OT_OK);
    CHECK_EQ_INT(n_empty, 0);
}

TEST(loader_epoch_restart_and_free_mid_epoch)
{
    ot_dataset *ds = tiny_cifar();
    CHECK(ds);
    ot_data_transform t;
    ot_data_transform_init(&t, 16, OT_DATA_NORM_HALF);
    int64_t perm[N_IMAGES], perm2[N_IMAGES];
    ot_data_shuffle(N_IMAGES, 1, 0, perm);
    ot_data_shuffle(N_IMAGES, 1, 1, perm2);
    ot_err err;
    int fails = 0;
    for (int w = 0; w <= 3; w++) {
        ot_data_loader_opts o = {.batch_size = 4, .n_workers = w, .prefetch = 2};
        ot_data_loader *l = NULL;
        CHECK_OK(ot_data_loader_new(ds, &t, &o, &l, &err), &err);
        float *x;
        int64_t *labels;
        int n = -1;
        /* next() before any epoch is an argument error. */
        fails += ot_data_loader_next(l, &x, &labels, &n, &err) != OT_ERR_ARG;
        /* Two batches of one epoch, then a restart with another order: the
           restarted epoch is whole and right. */
        fails += ot_data_loader_start_epoch(l, perm, N_IMAGES, 0, &err) != OT_OK;
        fails += ot_data_loader_next(l, &x, &labels, &n, &err) != OT_OK || n != 4;
        fails += ot_data_loader_next(l, &x, &labels, &n, &err) != OT_OK || n != 4;
        fails += ot_data_loader_start_epoch(l, perm2, N_IMAGES, 1, &err) != OT_OK;
        int total = 0;
        size_t per = 3 * 16 * 16, sb = ot_data_prepare_scratch_bytes(32, 32, &t);
        float *ref = malloc(4 * per * sizeof *ref);
        int64_t ref_labels[4];
        void *scratch = malloc(sb);
        while (ot_data_loader_next(l, &x, &labels, &n, &err) == OT_OK && n > 0) {
            fails += ot_data_load_batch(ds, perm2 + total, n, &t, ref, ref_labels, scratch, sb,
                                        &err) != OT_OK;
            fails += memcmp(ref, x, (size_t)n * per * sizeof *x) != 0;
            fails += memcmp(ref_labels, labels, (size_t)n * sizeof *labels) != 0;
            total += n;
        }
        fails += total != N_IMAGES;
        free(ref);
        free(scratch);
        /* Mid-epoch free: workers are busy or waiting on full slots. */
        fails += ot_data_loader_start_epoch(l, perm, N_IMAGES, 2, &err) != OT_OK;
        fails += ot_data_loader_next(l, &x, &labels, &n, &err) != OT_OK;
        ot_data_loader_free(l);
        /* A loader freed before any epoch, and one freed right after starting. */
        CHECK_OK(ot_data_loader_new(ds, &t, &o, &l, &err), &err);
        ot_data_loader_free(l);
        CHECK_OK(ot_data_loader_new(ds, &t, &o, &l, &err), &err);
        fails += ot_data_loader_start_epoch(l, perm, N_IMAGES, 0, &err) != OT_OK;
        ot_data_loader_free(l);
        if (fails)
            printf("  %d workers: %d failures\n", w, fails);
    }
    ot_data_free(ds);
    CHECK_EQ_INT(fails, 0);
}

TEST(loader_arguments)
{
    ot_dataset *ds = tiny_cifar();
    CHECK(ds);
    ot_data_transform t;
    ot_data_transform_init(&t, 16, OT_DATA_NORM_HALF);
    ot_err err;
    ot_data_loader *l = NULL;
    ot_data_loader_opts o = {.batch_size = 0};
    ot_status st_batch = ot_data_loader_new(ds, &t, &o, &l, &err);
    o.batch_size = 4;
    o.n_workers = -1;
    ot_status st_workers = ot_data_loader_new(ds, &t, &o, &l, &err);
    o.n_workers = 1;
    t.std[1] = 0.0f;
    ot_status st_std = ot_data_loader_new(ds, &t, &o, &l, &err);
    t.std[1] = 0.5f;
    t.size = 0;
    ot_status st_size = ot_data_loader_new(ds, &t, &o, &l, &err);
    t.size = 16;
    ot_status st_ok = ot_data_loader_new(ds, &t, &o, &l, &err);
    int64_t perm[2] = {0, N_IMAGES};
    ot_status st_range = l ? ot_data_loader_start_epoch(l, perm, 2, 0, &err) : OT_OK;
    bool msg_ok = strstr(err.msg, "entry 1") != NULL;
    ot_status st_long = l ? ot_data_loader_start_epoch(l, perm, N_IMAGES + 1, 0, &err) : OT_OK;
    ot_data_loader_free(l);
    ot_data_free(ds);
    CHECK_EQ_INT(st_batch, OT_ERR_ARG);
    CHECK_EQ_INT(st_workers, OT_ERR_ARG);
    CHECK_EQ_INT(st_std, OT_ERR_ARG);
    CHECK_EQ_INT(st_size, OT_ERR_ARG);
    CHECK_EQ_INT(st_ok, OT_OK);
    CHECK_EQ_INT(st_range, OT_ERR_ARG);
    CHECK(msg_ok);
    CHECK_EQ_INT(st_long, OT_ERR_ARG);
}

TEST(loader_augmented_batches_do_not_depend_on_workers)
{
    ot_dataset *ds = tiny_cifar();
    CHECK(ds);
    ot_data_transform t;
    ot_data_transform_init(&t, 24, OT_DATA_NORM_IMAGENET);
    const size_t per = 3 * 24 * 24;
    int64_t perm[N_IMAGES];
    ot_data_shuffle(N_IMAGES, 9, 3, perm);
    epoch_out ref, out;
    ot_data_loader_opts o = {.batch_size = 6, .augment = true, .seed = 42};
    run_epoch(ds, &t, &o, NULL, perm, N_IMAGES, 3, &ref);
    /* Each image is ot_data_prepare_augmented of (seed, epoch, its index). */
    size_t sb = ot_data_augment_scratch_bytes(32, 32, &t);
    void *scratch = malloc(sb);
    float *one = malloc(per * sizeof *one);
    int fails = ref.st != OT_OK || ref.n_images != N_IMAGES;
    for (int k = 0; !fails && k < N_IMAGES; k++) {
        ot_image img;
        int label;
        ot_err err;
        fails += ot_data_get(ds, perm[k], &img, &label, &err) != OT_OK;
        fails += ot_data_prepare_augmented(&img, &t, 42, 3, perm[k], one, scratch, sb, &err) !=
                 OT_OK;
        fails += memcmp(one, ref.x + (size_t)k * per, per * sizeof *one) != 0;
        fails += ref.labels[k] != label;
    }
    free(scratch);
    free(one);
    for (int w = 1; w <= 3; w++) {
        o.n_workers = w;
        o.prefetch = w == 3 ? 1 : 0;
        run_epoch(ds, &t, &o, NULL, perm, N_IMAGES, 3, &out);
        bool same = out.st == OT_OK && out.n_images == N_IMAGES &&
                    memcmp(out.x, ref.x, N_IMAGES * per * sizeof(float)) == 0 &&
                    memcmp(out.labels, ref.labels, sizeof ref.labels) == 0;
        if (!same)
            printf("  %d workers: status %d, %d images, differs from 0 workers\n", w,
                   (int)out.st, out.n_images);
        fails += !same;
        free(out.x);
    }
    /* Another epoch augments differently; no augmentation differs too. */
    o.n_workers = 2;
    run_epoch(ds, &t, &o, NULL, perm, N_IMAGES, 4, &out);
    bool epoch_differs = out.st == OT_OK && memcmp(out.x, ref.x, per * sizeof(float)) != 0;
    free(out.x);
    free(ref.x);
    ot_data_free(ds);
    CHECK_EQ_INT(fails, 0);
    CHECK(epoch_differs);
}

TEST(loader_error_is_the_first_in_order)
{
    ot_dataset *ds = tiny_cifar();
    CHECK(ds);
    ot_data_transform t;
    ot_data_transform_init(&t, 16, OT_DATA_NORM_HALF);
    int64_t perm[N_IMAGES];
    ot_data_shuffle(N_IMAGES, 2, 0, perm);
    /* Positions 11 and 13 of the epoch fail (batch 2 of batch size 5, items 1
       and 3); position 13 fails first in time when workers race, but 11's
       error is the one reported. */
    source src = {.ds = ds, .n_bad = 2, .bad = {perm[13], perm[11]},
                  .code = {OT_ERR_IO, OT_ERR_PARSE}};
    char want[64];
    snprintf(want, sizeof want, "image %lld: corrupt record %lld", (long long)perm[11],
             (long long)perm[11]);
    int fails = 0;
    for (int w = 0; w <= 3; w++) {
        ot_data_loader_opts o = {.batch_size = 5, .n_workers = w};
        epoch_out out;
        run_epoch(ds, &t, &o, &src, perm, N_IMAGES, 0, &out);
        bool ok = out.st == OT_ERR_PARSE && strstr(out.err.msg, want) && out.n_batches == 2 &&
                  compare_with_load_batch(ds, &t, perm, 10, 5, &out) == 0;
        if (!ok)
            printf("  %d workers: status %d \"%s\", %d batches before it\n", w, (int)out.st,
                   out.err.msg, out.n_batches);
        fails += !ok;
        free(out.x);
    }
    /* The error sticks until the next epoch, which can then run clean. */
    ot_err err;
    ot_data_loader *l = NULL;
    ot_data_loader_opts o = {.batch_size = 5, .n_workers = 2};
    CHECK_OK(ot_data_loader_new(ds, &t, &o, &l, &err), &err);
    ot_data_loader_set_source(l, source_get, &src);
    float *x;
    int64_t *labels;
    int n;
    fails += ot_data_loader_start_epoch(l, perm, N_IMAGES, 0, &err) != OT_OK;
    for (int b = 0; b < 2; b++)
        fails += ot_data_loader_next(l, &x, &labels, &n, &err) != OT_OK || n != 5;
    fails += ot_data_loader_next(l, &x, &labels, &n, &err) != OT_ERR_PARSE || n != 0;
    fails += ot_data_loader_next(l, &x, &labels, &n, &err) != OT_ERR_PARSE ||
             !strstr(err.msg, want);
    fails += ot_data_loader_start_epoch(l, perm, 10, 1, &err) != OT_OK;
    int total = 0;
    while (ot_data_loader_next(l, &x, &labels, &n, &err) == OT_OK && n > 0)
        total += n;
    fails += total != 10;
    ot_data_loader_free(l);
    ot_data_free(ds);
    CHECK_EQ_INT(fails, 0);
}

TEST(loader_skip_bad_drops_and_counts_failing_images)
{
    ot_dataset *ds = tiny_cifar();
    CHECK(ds);
    ot_data_transform t;
    ot_data_transform_init(&t, 16, OT_DATA_NORM_IMAGENET);
    int64_t perm[N_IMAGES], good[N_IMAGES];
    ot_data_shuffle(N_IMAGES, 3, 0, perm);
    /* Bad at positions 1, 5 .. 8 (a whole batch of 4), 22 (the last). */
    static const int bad_pos[] = {1, 5, 6, 7, 8, 22};
    enum { N_BAD = 6 };
    source src = {.ds = ds, .n_bad = N_BAD};
    for (int i = 0; i < N_BAD; i++) {
        src.bad[i] = perm[bad_pos[i]];
        src.code[i] = i % 2 ? OT_ERR_IO : OT_ERR_PARSE;
    }
    int n_good = 0;
    for (int k = 0; k < N_IMAGES; k++) {
        bool is_bad = false;
        for (int i = 0; i < N_BAD; i++)
            is_bad |= bad_pos[i] == k;
        if (!is_bad)
            good[n_good++] = perm[k];
    }
    int fails = 0;
    for (int w = 0; w <= 3; w++) {
        ot_data_loader_opts o = {.batch_size = 4, .n_workers = w, .skip_bad = true};
        ot_err err;
        ot_data_loader *l = NULL;
        CHECK_OK(ot_data_loader_new(ds, &t, &o, &l, &err), &err);
        ot_data_loader_set_source(l, source_get, &src);
        epoch_out out;
        memset(&out, 0, sizeof out);
        size_t per = 3 * 16 * 16;
        out.x = malloc(N_IMAGES * per * sizeof(float));
        int64_t counts[N_IMAGES];
        int n_counts = 0;
        ot_status st = ot_data_loader_start_epoch(l, perm, N_IMAGES, 0, &err);
        uint64_t allocs = ot_alloc_count();
        while (st == OT_OK) {
            float *x;
            int64_t *labels;
            int n;
            st = ot_data_loader_next(l, &x, &labels, &n, &err);
            if (st != OT_OK || n == 0 || out.n_images + n > N_IMAGES)
                break;
            memcpy(out.x + (size_t)out.n_images * per, x, (size_t)n * per * sizeof(float));
            memcpy(out.labels + out.n_images, labels, (size_t)n * sizeof *labels);
            out.sizes[out.n_batches++] = n;
            out.n_images += n;
            counts[n_counts++] = ot_data_loader_bad_count(l);
        }
        uint64_t allocs_after = ot_alloc_count();
        /* 17 good images: batches of 4, 4, 4, 4, 1, equal to load_batch over
           the good images alone. The count grows as next() passes the bad
           images: 1 after the first batch, all 6 after the last. */
        bool ok = st == OT_OK && out.n_images == n_good &&
                  compare_with_load_batch(ds, &t, good, n_good, 4, &out) == 0 &&
                  ot_data_loader_bad_count(l) == N_BAD && counts[0] == 1 &&
                  counts[n_counts - 1] == N_BAD && allocs_after == allocs;
        if (!ok)
            printf("  %d workers: status %d %s, %d images in %d batches, bad count %lld, %llu "
                   "allocations\n",
                   w, (int)st, st ? err.msg : "", out.n_images, out.n_batches,
                   (long long)ot_data_loader_bad_count(l),
                   (unsigned long long)(allocs_after - allocs));
        fails += !ok;
        /* A new epoch restarts the count. */
        st = ot_data_loader_start_epoch(l, perm, 4, 1, &err);
        fails += st != OT_OK || ot_data_loader_bad_count(l) != 0;
        free(out.x);
        ot_data_loader_free(l);
    }
    /* Errors other than PARSE and IO still stop the epoch. */
    src.code[0] = OT_ERR_ARG;
    ot_data_loader_opts o = {.batch_size = 4, .n_workers = 2, .skip_bad = true};
    epoch_out out;
    run_epoch(ds, &t, &o, &src, perm, N_IMAGES, 0, &out);
    free(out.x);
    ot_data_free(ds);
    CHECK_EQ_INT(fails, 0);
    CHECK_EQ_INT(out.st, OT_ERR_ARG);
    CHECK_EQ_INT(out.n_batches, 0);
}

/* A source whose image 0 is larger than the dataset's shape, as an image
   folder's may be: the worker grows its scratch. */
static uint8_t big_pixels[3 * 48 * 40];

static ot_status big_source(void *user, int64_t index, ot_image *img, int *label, ot_err *err)
{
    if (index == 0) {
        *img = (ot_image){big_pixels, 48, 40, 3};
        *label = 7;
        return OT_OK;
    }
    return ot_data_get(user, index, img, label, err);
}

TEST(loader_grows_scratch_for_larger_images)
{
    ot_dataset *ds = tiny_cifar();
    CHECK(ds);
    for (size_t i = 0; i < sizeof big_pixels; i++)
        big_pixels[i] = (uint8_t)(i * 7 + (i >> 5));
    ot_data_transform t;
    ot_data_transform_init(&t, 12, OT_DATA_NORM_NONE);
    size_t per = 3 * 12 * 12;
    float *want = malloc(per * sizeof *want);
    size_t sb = ot_data_prepare_scratch_bytes(48, 40, &t);
    void *scratch = malloc(sb);
    ot_err err;
    ot_image big = {big_pixels, 48, 40, 3};
    ot_status st = ot_data_prepare(&big, &t, want, scratch, sb, &err);
    free(scratch);
    int64_t perm[3] = {2, 0, 1};
    ot_data_loader_opts o = {.batch_size = 3, .n_workers = 1};
    ot_data_loader *l = NULL;
    int fails = st != OT_OK;
    fails += ot_data_loader_new(ds, &t, &o, &l, &err) != OT_OK;
    if (l) {
        ot_data_loader_set_source(l, big_source, ds);
        float *x;
        int64_t *labels;
        int n = 0;
        fails += ot_data_loader_start_epoch(l, perm, 3, 0, &err) != OT_OK;
        fails += ot_data_loader_next(l, &x, &labels, &n, &err) != OT_OK || n != 3;
        if (n == 3)
            fails += memcmp(x + per, want, per * sizeof *want) != 0 || labels[1] != 7;
    }
    ot_data_loader_free(l);
    free(want);
    ot_data_free(ds);
    CHECK_EQ_INT(fails, 0);
}

/* ------------------------------------------------------- image folders */

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static bool write_chunk(FILE *f, const char *type, const uint8_t *data, uint32_t n)
{
    uint8_t head[8], tail[4];
    put_be32(head, n);
    memcpy(head + 4, type, 4);
    uLong crc = crc32(crc32(0, head + 4, 4), data, n);
    put_be32(tail, (uint32_t)crc);
    return fwrite(head, 1, 8, f) == 8 && (n == 0 || fwrite(data, 1, n, f) == n) &&
           fwrite(tail, 1, 4, f) == 4;
}

/* An 8-bit gray (channels 1) or RGB PNG of pseudo-random pixels. */
static bool write_png(const char *path, int h, int w, int channels, unsigned salt)
{
    size_t row = 1 + (size_t)w * channels, raw_n = row * h;
    uint8_t *raw = malloc(raw_n);
    for (size_t i = 0; i < raw_n; i++)
        raw[i] = i % row == 0 ? 0 : (uint8_t)(i * 37u + salt * 101u + (i >> 4));
    uLongf z_n = compressBound((uLong)raw_n);
    uint8_t *z = malloc(z_n);
    bool ok = compress2(z, &z_n, raw, (uLong)raw_n, 6) == Z_OK;
    uint8_t ihdr[13];
    put_be32(ihdr, (uint32_t)w);
    put_be32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8;
    ihdr[9] = channels == 1 ? 0 : 2;
    ihdr[10] = ihdr[11] = ihdr[12] = 0;
    FILE *f = ok ? fopen(path, "wb") : NULL;
    ok = f && fwrite("\x89PNG\r\n\x1a\n", 1, 8, f) == 8 && write_chunk(f, "IHDR", ihdr, 13) &&
         write_chunk(f, "IDAT", z, (uint32_t)z_n) && write_chunk(f, "IEND", NULL, 0);
    if (f)
        ok = fclose(f) == 0 && ok;
    free(raw);
    free(z);
    return ok;
}

TEST(loader_image_folder_skips_undecodable_files)
{
    /* Two classes, images of several sizes, one gray, and two files that are
       not PNGs: the loader skips those and otherwise equals load_batch. */
    char root[512], dir[600], path[700];
    snprintf(root, sizeof root, "%s/loader_folder", ot_test_tmpdir());
    mkdir(root, 0755);
    static const struct {
        const char *cls, *name;
        int h, w, c; /* c 0: garbage bytes */
    } files[] = {
        {"cat", "a.png", 20, 30, 3}, {"cat", "b.png", 17, 17, 1}, {"cat", "c.png", 0, 0, 0},
        {"cat", "d.png", 33, 21, 3}, {"dog", "e.png", 40, 25, 3}, {"dog", "f.png", 9, 50, 3},
        {"dog", "g.png", 0, 0, 0},   {"dog", "h.png", 24, 24, 3},
    };
    enum { N_FILES = sizeof files / sizeof files[0] };
    bool ok = true;
    for (int i = 0; ok && i < N_FILES; i++) {
        snprintf(dir, sizeof dir, "%s/%s", root, files[i].cls);
        mkdir(dir, 0755);
        snprintf(path, sizeof path, "%s/%s", dir, files[i].name);
        if (files[i].c) {
            ok = write_png(path, files[i].h, files[i].w, files[i].c, (unsigned)i);
        } else {
            FILE *f = fopen(path, "wb");
            ok = f && fwrite("\x89PNG\r\n\x1a\nnot really", 1, 18, f) == 18;
            if (f)
                ok = fclose(f) == 0 && ok;
        }
    }
    CHECK(ok);
    ot_err err;
    ot_dataset *ds = NULL;
    CHECK_OK(ot_data_open(root, OT_DATA_TRAIN, &ds, &err), &err);
    CHECK_EQ_INT(ot_data_count(ds), N_FILES);
    ot_data_transform t;
    ot_data_transform_init(&t, 12, OT_DATA_NORM_IMAGENET);
    t.to_rgb = false; /* image folders give RGB all the same */
    const size_t per = 3 * 12 * 12;
    int64_t perm[N_FILES], good[N_FILES];
    ot_data_shuffle(N_FILES, 4, 0, perm);
    int n_good = 0;
    for (int k = 0; k < N_FILES; k++) {
        int label;
        CHECK_OK(ot_data_get(ds, perm[k], NULL, &label, &err), &err);
        /* Files are indexed in name order within each class. */
        int64_t i = perm[k];
        if (files[i].c)
            good[n_good++] = i;
    }
    CHECK_EQ_INT(n_good, N_FILES - 2);
    size_t sb = ot_data_batch_scratch_bytes(ds, &t);
    void *scratch = malloc(sb);
    float *want = malloc((size_t)n_good * per * sizeof *want);
    int64_t want_labels[N_FILES];
    ot_status st = ot_data_load_batch(ds, good, n_good, &t, want, want_labels, scratch, sb, &err);
    free(scratch);
    int fails = st != OT_OK;
    for (int w = 0; st == OT_OK && w <= 2; w++) {
        for (int skip = 0; skip <= 1; skip++) {
            ot_data_loader_opts o = {.batch_size = 3, .n_workers = w, .skip_bad = skip};
            ot_data_loader *l = NULL;
            fails += ot_data_loader_new(ds, &t, &o, &l, &err) != OT_OK;
            if (!l)
                continue;
            fails += ot_data_loader_start_epoch(l, perm, N_FILES, 0, &err) != OT_OK;
            int total = 0;
            float *x;
            int64_t *labels;
            int n;
            while ((st = ot_data_loader_next(l, &x, &labels, &n, &err)) == OT_OK && n > 0) {
                fails += total + n > n_good ||
                         memcmp(x, want + (size_t)total * per, (size_t)n * per * sizeof *x) != 0 ||
                         memcmp(labels, want_labels + total, (size_t)n * sizeof *labels) != 0;
                total += n;
            }
            if (skip)
                fails += st != OT_OK || total != n_good || ot_data_loader_bad_count(l) != 2;
            else
                fails += st != OT_ERR_PARSE || !strstr(err.msg, ".png");
            if (fails)
                printf("  %d workers, skip %d: status %d \"%s\", %d images\n", w, skip, (int)st,
                       st ? err.msg : "", total);
            st = OT_OK;
            ot_data_loader_free(l);
        }
    }
    free(want);
    ot_data_free(ds);
    CHECK_EQ_INT(fails, 0);
}
