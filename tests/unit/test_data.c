/*
 * test_data.c: the data module (src/data/). Synthetic CIFAR-10 folders and
 * IDX files (plain and gzip'd, written here with zlib) read back byte for
 * byte; class names, splits, counts; truncated and corrupted files give one
 * clear error naming the file; the shuffle is a fixed permutation; the
 * transform matches torchvision (tests/golden/data_transform.bin, made by
 * tests/fixtures/make_transform_golden.py); batches equal per-image prepares.
 * Fashion-MNIST from Debian's dataset-fashion-mnist opens when installed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "data/data.h"
#include "test.h"

#define GOLDEN "tests/golden/data_transform.bin"
#define FASHION_DIR "/usr/share/datasets/fashion-mnist"
#define REC 3073 /* CIFAR-10 record: label byte + 3 x 32 x 32 */

/* ------------------------------------------------------------- helpers */

/* A fresh folder under the run's scratch folder. */
static const char *tmp_dir(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", ot_test_tmpdir(), name);
    mkdir(buf, 0755);
    return buf;
}

static bool write_bytes(const char *dir, const char *name, const void *p, size_t n, bool gz)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (gz) {
        gzFile f = gzopen(path, "wb");
        if (!f)
            return false;
        bool ok = n == 0 || gzwrite(f, p, (unsigned)n) == (int)n;
        return gzclose(f) == Z_OK && ok;
    }
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    bool ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static bool write_text(const char *dir, const char *name, const char *text)
{
    return write_bytes(dir, name, text, strlen(text), false);
}

/* Deterministic filler bytes. */
static uint8_t pix(size_t i, unsigned salt) { return (uint8_t)((i * 131u + salt * 17u) ^ (i >> 7)); }

/* A CIFAR-10 batch of n records: labels (k + salt) % 10. */
static uint8_t *cifar_batch(int n, unsigned salt)
{
    uint8_t *b = malloc((size_t)n * REC);
    for (int k = 0; k < n; k++) {
        b[(size_t)k * REC] = (uint8_t)((k + salt) % 10);
        for (size_t i = 1; i < REC; i++)
            b[(size_t)k * REC + i] = pix((size_t)k * REC + i, salt);
    }
    return b;
}

/* An IDX file of unsigned bytes: ndims dims, then items (item i = pix(i, salt)
   for images, i % 10 for labels). *n_bytes gets the size. */
static uint8_t *idx_file(int ndims, const uint32_t *dims, unsigned salt, bool labels,
                         size_t *n_bytes)
{
    size_t items = 1;
    for (int d = 0; d < ndims; d++)
        items *= dims[d];
    size_t head = 4 + 4 * (size_t)ndims;
    uint8_t *b = malloc(head + items);
    b[0] = b[1] = 0;
    b[2] = 0x08;
    b[3] = (uint8_t)ndims;
    for (int d = 0; d < ndims; d++) {
        b[4 + 4 * d] = (uint8_t)(dims[d] >> 24);
        b[5 + 4 * d] = (uint8_t)(dims[d] >> 16);
        b[6 + 4 * d] = (uint8_t)(dims[d] >> 8);
        b[7 + 4 * d] = (uint8_t)dims[d];
    }
    for (size_t i = 0; i < items; i++)
        b[head + i] = labels ? (uint8_t)((i + salt) % 10) : pix(i, salt);
    *n_bytes = head + items;
    return b;
}

/* Writes an MNIST-style pair for one split ("train" or "t10k"): n images of
   h x w, labels (i + salt) % 10. */
static bool write_idx_pair(const char *dir, const char *prefix, uint32_t n, uint32_t h,
                           uint32_t w, unsigned salt, bool gz)
{
    uint32_t idims[3] = {n, h, w}, ldims[1] = {n};
    size_t ni, nl;
    uint8_t *im = idx_file(3, idims, salt, false, &ni);
    uint8_t *lb = idx_file(1, ldims, salt, true, &nl);
    char iname[128], lname[128];
    snprintf(iname, sizeof iname, "%s-images-idx3-ubyte%s", prefix, gz ? ".gz" : "");
    snprintf(lname, sizeof lname, "%s-labels-idx1-ubyte%s", prefix, gz ? ".gz" : "");
    bool ok = write_bytes(dir, iname, im, ni, gz) && write_bytes(dir, lname, lb, nl, gz);
    free(im);
    free(lb);
    return ok;
}

/* True when open fails with `code` and the message mentions `needle`s. */
static bool open_fails(const char *path, ot_data_split split, ot_status code, const char *needle,
                       const char *needle2)
{
    ot_err err;
    ot_dataset *ds = NULL;
    ot_err_init(&err);
    ot_status st = ot_data_open(path, split, &ds, &err);
    ot_data_free(ds);
    bool ok = st == code && ds == NULL && strstr(err.msg, needle) &&
              (!needle2 || strstr(err.msg, needle2)) && !strchr(err.msg, '\n');
    if (!ok)
        printf("  open %s: status %d (want %d), message: %s\n", path, (int)st, (int)code,
               err.msg);
    return ok;
}

/* ------------------------------------------------------------- CIFAR-10 */

TEST(data_cifar_read_back)
{
    char dir[512];
    tmp_dir(dir, sizeof dir, "cifar");
    uint8_t *b1 = cifar_batch(3, 1), *b2 = cifar_batch(2, 2), *bt = cifar_batch(4, 7);
    bool ok = write_bytes(dir, "data_batch_1.bin", b1, 3 * REC, false) &&
              write_bytes(dir, "data_batch_3.bin", b2, 2 * REC, false) &&
              write_bytes(dir, "test_batch.bin", bt, 4 * REC, false) &&
              write_text(dir, "batches.meta.txt",
                         "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\n"
                         "truck\n\n");
    ot_err err;
    ot_dataset *ds = NULL;
    int fails = 0;
    if (ok && ot_data_open(dir, OT_DATA_TRAIN, &ds, &err) == OT_OK) {
        int h, w, c;
        ot_data_shape(ds, &h, &w, &c);
        fails += ot_data_count(ds) != 5 || h != 32 || w != 32 || c != 3;
        fails += ot_data_n_classes(ds) != 10 || strcmp(ot_data_format(ds), "cifar10") != 0;
        fails += strcmp(ot_data_class_name(ds, 1), "automobile") != 0;
        fails += strcmp(ot_data_class_name(ds, 9), "truck") != 0;
        fails += ot_data_class_name(ds, 10) != NULL || ot_data_class_name(ds, -1) != NULL;
        for (int i = 0; i < 5; i++) {
            const uint8_t *rec = i < 3 ? b1 + (size_t)i * REC : b2 + (size_t)(i - 3) * REC;
            ot_image img;
            int label = -1;
            if (ot_data_get(ds, i, &img, &label, &err) != OT_OK) {
                fails++;
                continue;
            }
            fails += label != rec[0] || img.height != 32 || img.width != 32 || img.channels != 3;
            fails += memcmp(img.data, rec + 1, REC - 1) != 0;
        }
        ot_image img;
        fails += ot_data_get(ds, 5, &img, NULL, &err) != OT_ERR_ARG;
        fails += ot_data_get(ds, -1, &img, NULL, &err) != OT_ERR_ARG;
    } else {
        printf("  %s\n", err.msg);
        fails++;
    }
    ot_data_free(ds);
    ds = NULL;
    if (ok && ot_data_open(dir, OT_DATA_TEST, &ds, &err) == OT_OK) {
        ot_image img;
        int label;
        fails += ot_data_count(ds) != 4;
        fails += ot_data_get(ds, 3, &img, &label, &err) != OT_OK || label != bt[3 * REC] ||
                 memcmp(img.data, bt + 3 * REC + 1, REC - 1) != 0;
    } else {
        fails++;
    }
    ot_data_free(ds);
    free(b1);
    free(b2);
    free(bt);
    CHECK(ok);
    CHECK_EQ_INT(fails, 0);
    CHECK(ot_data_has_split(dir, OT_DATA_TRAIN));
    CHECK(ot_data_has_split(dir, OT_DATA_TEST));
}

TEST(data_cifar_default_names_subfolder_and_missing_split)
{
    char top[512], dir[600];
    tmp_dir(top, sizeof top, "cifar_top");
    snprintf(dir, sizeof dir, "%s/cifar-10-batches-bin", top);
    mkdir(dir, 0755);
    uint8_t *b = cifar_batch(2, 3);
    CHECK(write_bytes(dir, "data_batch_2.bin", b, 2 * REC, false));
    free(b);
    ot_err err;
    ot_dataset *ds = NULL;
    CHECK_OK(ot_data_open(top, OT_DATA_TRAIN, &ds, &err), &err);
    int n = (int)ot_data_count(ds), nc = ot_data_n_classes(ds);
    bool names = strcmp(ot_data_class_name(ds, 0), "airplane") == 0 &&
                 strcmp(ot_data_class_name(ds, 9), "truck") == 0;
    ot_data_free(ds);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(nc, 10);
    CHECK(names);
    CHECK(ot_data_has_split(top, OT_DATA_TRAIN));
    CHECK(!ot_data_has_split(top, OT_DATA_TEST));
    CHECK(open_fails(top, OT_DATA_TEST, OT_ERR_IO, "test_batch.bin", "no test split"));
}

TEST(data_cifar_errors_name_the_file)
{
    char dir[512];
    uint8_t *b = cifar_batch(3, 0);

    /* A truncated last record. */
    tmp_dir(dir, sizeof dir, "cifar_trunc");
    CHECK(write_bytes(dir, "data_batch_1.bin", b, 3 * REC, false));
    CHECK(write_bytes(dir, "data_batch_2.bin", b, 2 * REC + 100, false));
    CHECK(open_fails(dir, OT_DATA_TRAIN, OT_ERR_PARSE, "data_batch_2.bin", "truncated record 2"));

    /* A label byte of 10. */
    tmp_dir(dir, sizeof dir, "cifar_label");
    b[REC] = 10;
    CHECK(write_bytes(dir, "test_batch.bin", b, 3 * REC, false));
    CHECK(open_fails(dir, OT_DATA_TEST, OT_ERR_PARSE, "test_batch.bin", "record 1: label 10"));

    /* A label outside a shorter names file. */
    tmp_dir(dir, sizeof dir, "cifar_meta");
    b[REC] = 2;
    CHECK(write_bytes(dir, "test_batch.bin", b, 3 * REC, false));
    CHECK(write_text(dir, "batches.meta.txt", "cat\r\ndog\r\n"));
    CHECK(open_fails(dir, OT_DATA_TEST, OT_ERR_PARSE, "test_batch.bin", "record 1: label 2"));

    /* An empty batch, and a folder that is no dataset. */
    tmp_dir(dir, sizeof dir, "cifar_empty");
    CHECK(write_bytes(dir, "data_batch_1.bin", b, 0, false));
    CHECK(open_fails(dir, OT_DATA_TRAIN, OT_ERR_PARSE, "data_batch_1.bin", "empty"));
    tmp_dir(dir, sizeof dir, "not_a_dataset");
    CHECK(open_fails(dir, OT_DATA_TRAIN, OT_ERR_UNSUPPORTED, "not_a_dataset", "not a dataset"));
    CHECK(!ot_data_has_split(dir, OT_DATA_TRAIN));
    CHECK(open_fails("/nonexistent/cifar", OT_DATA_TRAIN, OT_ERR_IO, "/nonexistent/cifar",
                     NULL));
    free(b);
}

/* ------------------------------------------------------------------ IDX */

/* Checks an open IDX dataset against what write_idx_pair wrote. */
static int idx_mismatches(const ot_dataset *ds, uint32_t n, uint32_t h, uint32_t w,
                          unsigned salt)
{
    int fails = 0, hh, ww, cc;
    ot_err err;
    ot_data_shape(ds, &hh, &ww, &cc);
    fails += ot_data_count(ds) != n || hh != (int)h || ww != (int)w || cc != 1;
    fails += strcmp(ot_data_format(ds), "idx") != 0;
    for (uint32_t i = 0; i < n; i++) {
        ot_image img;
        int label;
        if (ot_data_get(ds, i, &img, &label, &err) != OT_OK)
            return fails + 1;
        fails += label != (int)((i + salt) % 10) || img.channels != 1;
        for (size_t p = 0; p < (size_t)h * w; p++)
            fails += img.data[p] != pix((size_t)i * h * w + p, salt);
    }
    return fails;
}

TEST(data_idx_plain_and_gzip)
{
    for (int gz = 0; gz < 2; gz++) {
        char dir[512];
        tmp_dir(dir, sizeof dir, gz ? "mnist_gz" : "mnist");
        CHECK(write_idx_pair(dir, "train", 7, 5, 4, 3, gz));
        CHECK(write_idx_pair(dir, "t10k", 3, 5, 4, 8, gz));
        ot_err err;
        ot_dataset *ds = NULL;
        CHECK_OK(ot_data_open(dir, OT_DATA_TRAIN, &ds, &err), &err);
        int fails = idx_mismatches(ds, 7, 5, 4, 3);
        int nc = ot_data_n_classes(ds);
        bool names = strcmp(ot_data_class_name(ds, 0), "0") == 0 &&
                     strcmp(ot_data_class_name(ds, 9), "9") == 0;
        ot_data_free(ds);
        CHECK_EQ_INT(fails, 0);
        CHECK_EQ_INT(nc, 10);
        CHECK(names);
        CHECK_OK(ot_data_open(dir, OT_DATA_TEST, &ds, &err), &err);
        fails = idx_mismatches(ds, 3, 5, 4, 8);
        ot_data_free(ds);
        CHECK_EQ_INT(fails, 0);
        CHECK(ot_data_has_split(dir, OT_DATA_TRAIN) && ot_data_has_split(dir, OT_DATA_TEST));

        /* A path to the images file: its split, or its sibling's. */
        char file[700];
        snprintf(file, sizeof file, "%s/t10k-images-idx3-ubyte%s", dir, gz ? ".gz" : "");
        CHECK_OK(ot_data_open(file, OT_DATA_TEST, &ds, &err), &err);
        fails = idx_mismatches(ds, 3, 5, 4, 8);
        ot_data_free(ds);
        CHECK_EQ_INT(fails, 0);
        CHECK_OK(ot_data_open(file, OT_DATA_TRAIN, &ds, &err), &err);
        fails = idx_mismatches(ds, 7, 5, 4, 3);
        ot_data_free(ds);
        CHECK_EQ_INT(fails, 0);
    }
}

TEST(data_idx_names_and_lone_file)
{
    char dir[512];
    ot_err err;
    ot_dataset *ds = NULL;

    /* "fashion" in the path: Fashion-MNIST's names. */
    tmp_dir(dir, sizeof dir, "Fashion-MNIST");
    CHECK(write_idx_pair(dir, "t10k", 2, 3, 3, 0, true));
    CHECK(!ot_data_has_split(dir, OT_DATA_TRAIN));
    CHECK(ot_data_has_split(dir, OT_DATA_TEST));
    CHECK_OK(ot_data_open(dir, OT_DATA_TEST, &ds, &err), &err);
    bool ok = strcmp(ot_data_class_name(ds, 0), "T-shirt/top") == 0 &&
              strcmp(ot_data_class_name(ds, 9), "Ankle boot") == 0;
    ot_data_free(ds);
    CHECK(ok);
    CHECK(open_fails(dir, OT_DATA_TRAIN, OT_ERR_IO, "no train split", "train-images-idx3-ubyte"));

    /* classes.txt beside the files, with labels up to 11. */
    tmp_dir(dir, sizeof dir, "letters");
    uint32_t idims[3] = {12, 2, 2}, ldims[1] = {12};
    size_t ni, nl;
    uint8_t *im = idx_file(3, idims, 0, false, &ni);
    uint8_t *lb = idx_file(1, ldims, 0, true, &nl);
    lb[8 + 11] = 11;
    CHECK(write_bytes(dir, "my-images-idx3-ubyte", im, ni, false));
    CHECK(write_bytes(dir, "my-labels-idx1-ubyte", lb, nl, false));
    char file[700];
    snprintf(file, sizeof file, "%s/my-images-idx3-ubyte", dir);
    CHECK(open_fails(file, OT_DATA_TRAIN, OT_ERR_PARSE, "my-labels-idx1-ubyte",
                     "record 11: label 11 is outside 0 .. 9 (name the classes"));
    CHECK(write_text(dir, "classes.txt", "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\n  el  \n"));
    CHECK_OK(ot_data_open(file, OT_DATA_TRAIN, &ds, &err), &err);
    int nc = ot_data_n_classes(ds);
    ok = strcmp(ot_data_class_name(ds, 11), "el") == 0 && ot_data_count(ds) == 12;
    ot_data_free(ds);
    CHECK_EQ_INT(nc, 12);
    CHECK(ok);
    /* A lone file has no test split. */
    CHECK(ot_data_has_split(file, OT_DATA_TRAIN));
    CHECK(!ot_data_has_split(file, OT_DATA_TEST));
    CHECK(open_fails(file, OT_DATA_TEST, OT_ERR_IO, "my-images-idx3-ubyte", "no test split"));
    free(im);
    free(lb);
}

TEST(data_idx_errors_name_the_file)
{
    char dir[512];
    uint32_t idims[3] = {4, 3, 3}, ldims[1] = {4};
    size_t ni, nl;
    uint8_t *im = idx_file(3, idims, 0, false, &ni);
    uint8_t *lb = idx_file(1, ldims, 0, true, &nl);

    for (int gz = 0; gz < 2; gz++) {
        const char *iname = gz ? "train-images-idx3-ubyte.gz" : "train-images-idx3-ubyte";
        const char *lname = gz ? "train-labels-idx1-ubyte.gz" : "train-labels-idx1-ubyte";
        char name[64];

        /* Truncated pixels: the record index is named. */
        snprintf(name, sizeof name, "idx_trunc%d", gz);
        tmp_dir(dir, sizeof dir, name);
        CHECK(write_bytes(dir, iname, im, ni - 10, gz) && write_bytes(dir, lname, lb, nl, gz));
        CHECK(open_fails(dir, OT_DATA_TRAIN, OT_ERR_PARSE, iname, "truncated at record 2 of 4"));

        /* Truncated header. */
        snprintf(name, sizeof name, "idx_head%d", gz);
        tmp_dir(dir, sizeof dir, name);
        CHECK(write_bytes(dir, iname, im, 9, gz) && write_bytes(dir, lname, lb, nl, gz));
        CHECK(open_fails(dir, OT_DATA_TRAIN, OT_ERR_PARSE, iname, "truncated IDX header"));

        /* Wrong magic: labels where images belong. */
        snprintf(name, sizeof name, "idx_magic%d", gz);
        tmp_dir(dir, sizeof dir, name);
        CHECK(write_bytes(dir, iname, lb, nl, gz) && write_bytes(dir, lname, lb, nl, gz));
        CHECK(open_fails(dir, OT_DATA_TRAIN, OT_ERR_PARSE, iname, "wrong IDX magic 0x00000801"));

        /* Counts that differ. */
        snprintf(name, sizeof name, "idx_count%d", gz);
        tmp_dir(dir, sizeof dir, name);
        uint32_t three[1] = {3};
        size_t n3;
        uint8_t *lb3 = idx_file(1, three, 0, true, &n3);
        CHECK(write_bytes(dir, iname, im, ni, gz) && write_bytes(dir, lname, lb3, n3, gz));
        free(lb3);
        CHECK(open_fails(dir, OT_DATA_TRAIN, OT_ERR_PARSE, lname, "3 labels for the 4 images"));

        /* A label of 10, and trailing bytes. */
        snprintf(name, sizeof name, "idx_label%d", gz);
        tmp_dir(dir, sizeof dir, name);
        lb[8 + 2] = 10;
        CHECK(write_bytes(dir, iname, im, ni, gz) && write_bytes(dir, lname, lb, nl, gz));
        lb[8 + 2] = 2;
        CHECK(open_fails(dir, OT_DATA_TRAIN, OT_ERR_PARSE, lname, "record 2: label 10"));
        CHECK(write_bytes(dir, lname, lb, nl, gz));
        uint8_t *longer = malloc(ni + 5);
        memcpy(longer, im, ni);
        memset(longer + ni, 0, 5);
        CHECK(write_bytes(dir, iname, longer, ni + 5, gz));
        free(longer);
        CHECK(open_fails(dir, OT_DATA_TRAIN, OT_ERR_PARSE, iname, "bytes follow the 4 images"));

        /* A missing labels file. */
        snprintf(name, sizeof name, "idx_nolabels%d", gz);
        tmp_dir(dir, sizeof dir, name);
        CHECK(write_bytes(dir, iname, im, ni, gz));
        CHECK(open_fails(dir, OT_DATA_TRAIN, OT_ERR_IO, "train-labels-idx1-ubyte", "missing"));
    }

    /* A header that promises 2^32 - 1 images of 16384 x 16384: fails on the
       bytes present, without allocating what the header claims. */
    tmp_dir(dir, sizeof dir, "idx_huge");
    uint8_t head[16] = {0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0, 0, 0x40, 0, 0, 0, 0x40, 0};
    CHECK(write_bytes(dir, "train-images-idx3-ubyte", head, sizeof head, false));
    CHECK(write_bytes(dir, "train-labels-idx1-ubyte", lb, nl, false));
    CHECK(open_fails(dir, OT_DATA_TRAIN, OT_ERR_PARSE, "train-images-idx3-ubyte", "truncated"));
    head[11] = 0x41; /* width 16640 > OT_DATA_MAX_SIDE */
    CHECK(write_bytes(dir, "train-images-idx3-ubyte", head, sizeof head, false));
    CHECK(open_fails(dir, OT_DATA_TRAIN, OT_ERR_PARSE, "train-images-idx3-ubyte", "image side"));

    /* Corrupt gzip: a flipped byte in the deflate stream or its CRC. */
    tmp_dir(dir, sizeof dir, "idx_badgz");
    CHECK(write_bytes(dir, "train-labels-idx1-ubyte", lb, nl, false));
    CHECK(write_bytes(dir, "train-images-idx3-ubyte.gz", im, ni, true));
    char path[700];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
    FILE *f = fopen(path, "r+b");
    CHECK(f);
    fseek(f, -6, SEEK_END); /* inside the CRC-32 */
    int c = fgetc(f);
    fseek(f, -6, SEEK_END);
    fputc(c ^ 0x55, f);
    fclose(f);
    CHECK(open_fails(dir, OT_DATA_TRAIN, OT_ERR_PARSE, "train-images-idx3-ubyte.gz", "gzip"));
    free(im);
    free(lb);
}

/* Every truncation and many single-byte corruptions of small valid files:
   open either succeeds or fails with a message naming the file. */
TEST(data_fuzz_truncate_and_flip)
{
    char dir[512];
    uint32_t idims[3] = {3, 4, 5}, ldims[1] = {3};
    size_t ni, nl;
    uint8_t *im = idx_file(3, idims, 1, false, &ni);
    uint8_t *lb = idx_file(1, ldims, 1, true, &nl);
    uint8_t *cif = cifar_batch(2, 5);
    int bad = 0, runs = 0;
    uint64_t rng = 12345;
    for (int gz = 0; gz < 2; gz++) {
        char name[32];
        snprintf(name, sizeof name, "fuzz_idx%d", gz);
        tmp_dir(dir, sizeof dir, name);
        const char *iname = gz ? "train-images-idx3-ubyte.gz" : "train-images-idx3-ubyte";
        const char *lname = gz ? "train-labels-idx1-ubyte.gz" : "train-labels-idx1-ubyte";
        for (size_t cut = 0; cut <= ni; cut += gz ? 7 : 1) {
            write_bytes(dir, iname, im, cut, gz);
            write_bytes(dir, lname, lb, nl, gz);
            ot_err err;
            ot_dataset *ds = NULL;
            ot_status st = ot_data_open(dir, OT_DATA_TRAIN, &ds, &err);
            bad += (st == OT_OK) != (cut == ni) || (st != OT_OK && !strstr(err.msg, iname));
            ot_data_free(ds);
            runs++;
        }
        for (int k = 0; k < 40; k++) {
            uint8_t copy[64];
            memcpy(copy, lb, nl);
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            copy[(rng >> 33) % nl] ^= (uint8_t)(1u << ((rng >> 20) % 8));
            write_bytes(dir, iname, im, ni, gz);
            write_bytes(dir, lname, copy, nl, gz);
            ot_err err;
            ot_dataset *ds = NULL;
            ot_status st = ot_data_open(dir, OT_DATA_TRAIN, &ds, &err);
            bad += st != OT_OK && !strstr(err.msg, "idx");
            ot_data_free(ds);
            runs++;
        }
    }
    tmp_dir(dir, sizeof dir, "fuzz_cifar");
    for (size_t cut = 1; cut < 2 * REC; cut += 97) {
        write_bytes(dir, "test_batch.bin", cif, cut, false);
        ot_err err;
        ot_dataset *ds = NULL;
        ot_status st = ot_data_open(dir, OT_DATA_TEST, &ds, &err);
        bad += (st == OT_OK) != (cut == REC) || (st != OT_OK && !strstr(err.msg, "test_batch"));
        ot_data_free(ds);
        runs++;
    }
    free(im);
    free(lb);
    free(cif);
    CHECK(runs > 100);
    CHECK_EQ_INT(bad, 0);
}

/* ---------------------------------------------------------------- shuffle */

TEST(data_shuffle_deterministic_permutation)
{
    enum { N = 1000 };
    static int64_t a[N], b[N], c[N];
    static char seen[N];
    ot_data_shuffle(N, 42, 3, a);
    ot_data_shuffle(N, 42, 3, b);
    ot_data_shuffle(N, 42, 4, c);
    memset(seen, 0, sizeof seen);
    int dup = 0, same_epoch_diff = 0, moved = 0, other_epoch_same = 0;
    for (int i = 0; i < N; i++) {
        if (a[i] < 0 || a[i] >= N || seen[a[i]]++)
            dup++;
        same_epoch_diff += a[i] != b[i];
        moved += a[i] != i;
        other_epoch_same += a[i] == c[i];
    }
    CHECK_EQ_INT(dup, 0);
    CHECK_EQ_INT(same_epoch_diff, 0);
    CHECK(moved > N * 9 / 10);
    CHECK(other_epoch_same < N / 10);

    /* Pinned: the order must not change across machines or releases (checked
       against an independent Python transcription of splitmix64 + xoshiro256**
       + Fisher-Yates with rejection). */
    int64_t p[10];
    ot_data_shuffle(10, 1, 0, p);
    static const int64_t want[10] = {7, 3, 6, 0, 4, 2, 8, 1, 9, 5};
    for (int i = 0; i < 10; i++)
        CHECK_EQ_INT(p[i], want[i]);
    int64_t one = -1;
    ot_data_shuffle(1, 7, 0, &one);
    CHECK_EQ_INT(one, 0);
}

/* -------------------------------------------------------------- transform */

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

TEST(data_transform_matches_torchvision)
{
    blob b = {0};
    if (!read_all(GOLDEN, &b)) {
        free(b.bytes);
        ot_test_fail(__FILE__, __LINE__, "cannot read %s (run from the repository root; "
                     "regenerate with tests/fixtures/make_transform_golden.py)", GOLDEN);
        return;
    }
    enum { MAX_IMAGES = 8 };
    ot_image imgs[MAX_IMAGES];
    uint32_t version = 0, n_images = 0, n_cases = 0;
    bool ok = b.n > 4 && memcmp(b.bytes, "OTDG", 4) == 0;
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
    double worst = 0, worst_tol_ratio = 0;
    int n_checked = 0, n_off = 0;
    for (uint32_t k = 0; ok && k < n_cases; k++) {
        uint32_t idx, size, norm, out_c;
        ok = blob_u32(&b, &idx) && blob_u32(&b, &size) && blob_u32(&b, &norm) &&
             blob_u32(&b, &out_c) && idx < n_images && norm < 3 && out_c <= 3 &&
             b.at + (size_t)out_c * size * size * 4 <= b.n;
        if (!ok)
            break;
        const ot_image *img = &imgs[idx];
        ot_data_transform t;
        ot_data_transform_init(&t, (int)size, norms[norm]);
        /* RGB cases compare 3 channels; gray ones were made as 1 channel
           (identical per-channel normalisation), which to_rgb replicates. */
        size_t plane = (size_t)size * size;
        float *want = malloc(out_c * plane * sizeof *want);
        memcpy(want, b.bytes + b.at, out_c * plane * sizeof *want);
        b.at += out_c * plane * sizeof *want;
        size_t scratch_bytes = ot_data_prepare_scratch_bytes(img->height, img->width, &t);
        void *scratch = malloc(scratch_bytes);
        float *got = malloc(3 * plane * sizeof *got);
        ot_err err;
        ot_status st = ot_data_prepare(img, &t, got, scratch, scratch_bytes, &err);
        double tol = 1.0 / 255.0 / (double)t.std[0] + 1e-5;
        double case_worst = 0;
        size_t worst_at = 0;
        for (int c = 0; st == OT_OK && c < 3; c++)
            for (size_t q = 0; q < plane; q++) {
                double d = fabs((double)got[c * plane + q] -
                                (double)want[(out_c == 1 ? 0 : c) * plane + q]);
                n_off += d > 1e-6;
                if (d > case_worst) {
                    case_worst = d;
                    worst_at = c * plane + q;
                }
            }
        if (st != OT_OK || case_worst > tol)
            printf("  case %u (%dx%dx%d -> %u): status %d %s; max |err| %.3g at %zu, tol %.3g\n",
                   k, img->height, img->width, img->channels, size, (int)st,
                   st == OT_OK ? "" : err.msg, case_worst, worst_at, tol);
        ok = st == OT_OK && case_worst <= tol;
        if (case_worst > worst)
            worst = case_worst;
        if (case_worst / tol > worst_tol_ratio)
            worst_tol_ratio = case_worst / tol;
        n_checked++;
        free(want);
        free(got);
        free(scratch);
    }
    free(b.bytes);
    if (getenv("OT_DATA_VERBOSE"))
        printf("  transform golden: %d cases, max |err| %.3g (%.3g of tol), %d values off by "
               "more than 1e-6\n",
               n_checked, worst, worst_tol_ratio, n_off);
    CHECK(ok);
    CHECK_EQ_INT(n_checked, (int)n_cases);
    CHECK(n_checked >= 10);
}

TEST(data_transform_arguments)
{
    uint8_t px[4 * 6] = {0};
    ot_image img = {px, 4, 6, 1};
    ot_data_transform t;
    ot_data_transform_init(&t, 3, OT_DATA_NORM_NONE);
    t.to_rgb = false;
    size_t need = ot_data_prepare_scratch_bytes(4, 6, &t);
    CHECK(need > 0);
    CHECK_EQ_INT(ot_data_out_channels(&t, 1), 1);
    CHECK_EQ_INT(ot_data_out_channels(&t, 3), 3);
    /* Larger images never need less scratch. */
    CHECK(ot_data_prepare_scratch_bytes(40, 60, &t) >= need);
    static uint64_t scratch[512];
    float out[9];
    ot_err err;
    CHECK_EQ_INT(ot_data_prepare(&img, &t, out, scratch, need - 1, &err), OT_ERR_ARG);
    CHECK_OK(ot_data_prepare(&img, &t, out, scratch, need, &err), &err);
    CHECK(out[0] == 0.0f && out[8] == 0.0f);
    t.std[0] = 0.0f;
    CHECK_EQ_INT(ot_data_prepare(&img, &t, out, scratch, sizeof scratch, &err), OT_ERR_ARG);
    t.std[0] = 1.0f;
    t.size = 0;
    CHECK_EQ_INT(ot_data_prepare_scratch_bytes(4, 6, &t), 0);
    CHECK_EQ_INT(ot_data_prepare(&img, &t, out, scratch, sizeof scratch, &err), OT_ERR_ARG);
    t.size = 3;
    img.channels = 2;
    CHECK_EQ_INT(ot_data_prepare(&img, &t, out, scratch, sizeof scratch, &err), OT_ERR_ARG);
    /* A constant image stays constant whatever the resize. */
    memset(px, 200, sizeof px);
    img.channels = 1;
    ot_data_transform_init(&t, 9, OT_DATA_NORM_HALF);
    static float big[3 * 81];
    CHECK(ot_data_prepare_scratch_bytes(4, 6, &t) <= sizeof scratch);
    CHECK_OK(ot_data_prepare(&img, &t, big, scratch, sizeof scratch, &err), &err);
    float v = (200.0f / 255.0f - 0.5f) / 0.5f;
    for (int i = 0; i < 3 * 81; i++)
        CHECK(big[i] == v);
}

/* ---------------------------------------------------------------- batches */

TEST(data_load_batch_equals_prepare)
{
    char dir[512];
    tmp_dir(dir, sizeof dir, "batch");
    uint8_t *bt = cifar_batch(6, 4);
    CHECK(write_bytes(dir, "test_batch.bin", bt, 6 * REC, false));
    free(bt);
    ot_err err;
    ot_dataset *ds = NULL;
    CHECK_OK(ot_data_open(dir, OT_DATA_TEST, &ds, &err), &err);
    ot_data_transform t;
    ot_data_transform_init(&t, 40, OT_DATA_NORM_IMAGENET);
    size_t sb = ot_data_prepare_scratch_bytes(32, 32, &t);
    enum { B = 4, S = 40, PER = 3 * S * S };
    void *scratch = malloc(sb);
    float *x = malloc(B * PER * sizeof *x), *one = malloc(PER * sizeof *one);
    int64_t idx[B] = {5, 0, 3, 5}, labels[B];
    uint64_t allocs = ot_alloc_count();
    ot_status st = ot_data_load_batch(ds, idx, B, &t, x, labels, scratch, sb, &err);
    uint64_t allocs_after = ot_alloc_count();
    int fails = 0;
    for (int b = 0; st == OT_OK && b < B; b++) {
        ot_image img;
        int label;
        fails += ot_data_get(ds, idx[b], &img, &label, &err) != OT_OK;
        fails += ot_data_prepare(&img, &t, one, scratch, sb, &err) != OT_OK;
        fails += memcmp(one, x + (size_t)b * PER, PER * sizeof *one) != 0;
        fails += labels[b] != label || label != (int)((idx[b] + 4) % 10);
    }
    int64_t bad_idx[2] = {1, 6};
    ot_status st_bad = ot_data_load_batch(ds, bad_idx, 2, &t, x, labels, scratch, sb, &err);
    bool msg_ok = strstr(err.msg, "batch item 1") && strstr(err.msg, "index 6");
    ot_status st_small = ot_data_load_batch(ds, idx, B, &t, x, labels, scratch, sb / 2, &err);
    free(scratch);
    free(x);
    free(one);
    ot_data_free(ds);
    CHECK_EQ_INT(st, OT_OK);
    CHECK_EQ_INT(allocs_after, allocs);
    CHECK_EQ_INT(fails, 0);
    CHECK_EQ_INT(st_bad, OT_ERR_ARG);
    CHECK(msg_ok);
    CHECK_EQ_INT(st_small, OT_ERR_ARG);
}

/* ------------------------------------------------------- system datasets */

TEST(data_fashion_mnist_system)
{
    if (!ot_data_has_split(FASHION_DIR, OT_DATA_TEST)) {
        printf("  skipped: %s absent (Debian package dataset-fashion-mnist)\n", FASHION_DIR);
        return;
    }
    CHECK(ot_data_has_split(FASHION_DIR, OT_DATA_TRAIN));
    ot_err err;
    ot_dataset *ds = NULL;
    CHECK_OK(ot_data_open(FASHION_DIR, OT_DATA_TEST, &ds, &err), &err);
    int h, w, c;
    ot_data_shape(ds, &h, &w, &c);
    int64_t n = ot_data_count(ds);
    int nc = ot_data_n_classes(ds);
    bool names = strcmp(ot_data_class_name(ds, 0), "T-shirt/top") == 0 &&
                 strcmp(ot_data_class_name(ds, 9), "Ankle boot") == 0;
    /* Every class appears 1000 times in the test split. */
    int64_t counts[10] = {0};
    for (int64_t i = 0; i < n; i++) {
        int label = -1;
        if (ot_data_get(ds, i, NULL, &label, &err) == OT_OK && label >= 0 && label < 10)
            counts[label]++;
    }
    ot_data_free(ds);
    CHECK_EQ_INT(n, 10000);
    CHECK(h == 28 && w == 28 && c == 1);
    CHECK_EQ_INT(nc, 10);
    CHECK(names);
    for (int k = 0; k < 10; k++)
        CHECK_EQ_INT(counts[k], 1000);
}
