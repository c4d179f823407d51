/*
 * fuzz_data.c: libFuzzer harness for the data-set readers: IDX (plain and
 * gzip'd), CIFAR-10 batches, and the class-name files beside them.
 *
 * An input is a small archive: byte 0 picks the layout, bytes 1..4 and 5..8
 * (little-endian) are the lengths of parts A and B, the rest is part C. The
 * parts are written as files into a folder of this process's own under /tmp:
 *   0: A train-images-idx3-ubyte     B train-labels-idx1-ubyte     C classes.txt
 *   1: A train-images-idx3-ubyte.gz  B train-labels-idx1-ubyte.gz  C classes.txt
 *   2: A data_batch_1.bin            B test_batch.bin              C batches.meta.txt
 * (C only when it is not empty). The folder is opened as a data set with a
 * 64 MiB memory limit; when that succeeds every image and label is visited
 * (up to 64), a batch is transformed, a class selection made and the data
 * hashed. Besides the sanitizers' reports, the harness aborts when an open
 * data set breaks its contract (no images, a label outside the classes, an
 * image of the wrong shape).
 *
 *   make fuzz FUZZ_TARGETS=data          builds and runs it
 *   build/fuzz/fuzz_data CRASH           replays one input
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/data.h"
#include "train/checkpoint.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

static const char *const names[3][3] = {
    {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "classes.txt"},
    {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "classes.txt"},
    {"data_batch_1.bin", "test_batch.bin", "batches.meta.txt"},
};

static void clean(void)
{
    char path[128];
    for (int m = 0; m < 3; m++)
        for (int p = 0; p < 3; p++) {
            snprintf(path, sizeof path, "%s/%s", dir, names[m][p]);
            unlink(path);
        }
}

static void remove_dir(void)
{
    clean();
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(dir, sizeof dir, "/tmp/ot-fuzz-data-%ld", (long)getpid());
    mkdir(dir, 0700);
    atexit(remove_dir);
    return 0;
}

static void die(const char *what)
{
    fprintf(stderr, "fuzz_data: %s\n", what);
    abort();
}

static void put(const char *name, const uint8_t *p, size_t n)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        die("cannot write a part");
    if (n && fwrite(p, 1, n, f) != n)
        die("cannot write a part");
    fclose(f);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void visit(const ot_dataset *ds)
{
    ot_err err;
    int64_t n = ot_data_count(ds);
    int nc = ot_data_n_classes(ds), h, w, c;
    ot_data_shape(ds, &h, &w, &c);
    if (n < 1 || nc < 1 || nc > OT_DATA_MAX_CLASSES || h < 1 || w < 1 || (c != 1 && c != 3))
        die("an open data set has no images, no classes or no shape");
    for (int k = 0; k < nc; k++)
        if (!ot_data_class_name(ds, k))
            die("a class has no name");
    int64_t step = n > 64 ? n / 64 : 1;
    for (int64_t i = 0; i < n; i += step) {
        ot_image img;
        int label;
        if (ot_data_get(ds, i, &img, &label, &err) != OT_OK)
            die("ot_data_get failed on an open CIFAR-10/IDX data set");
        if (label < 0 || label >= nc || img.height != h || img.width != w || img.channels != c)
            die("an image or label breaks the data set's shape or classes");
    }
    /* One batch through the transform. */
    ot_data_transform t;
    ot_data_transform_init(&t, 8, OT_DATA_NORM_IMAGENET);
    int nb = n < 4 ? (int)n : 4;
    int64_t idx[4] = {0, n - 1, n / 2, n / 3};
    size_t scratch_bytes = ot_data_batch_scratch_bytes(ds, &t);
    void *scratch = malloc(scratch_bytes ? scratch_bytes : 1);
    float *x = malloc(sizeof(float) * 4 * 3 * 8 * 8);
    int64_t labels[4];
    if (!scratch || !x)
        die("out of memory");
    if (ot_data_load_batch(ds, idx, nb, &t, x, labels, scratch, scratch_bytes, &err) != OT_OK)
        die("ot_data_load_batch failed on an open CIFAR-10/IDX data set");
    free(scratch);
    free(x);
    /* A selection of the first and last class, two images each. */
    int classes[2] = {0, nc - 1};
    ot_dataset *sel = NULL;
    if (ot_data_select(ds, classes, nc > 1 ? 2 : 1, 2, 7, &sel, &err) == OT_OK) {
        if (ot_data_count(sel) < 1 || ot_data_n_classes(sel) != (nc > 1 ? 2 : 1))
            die("a selection breaks its contract");
        ot_data_free(sel);
    }
    uint64_t hash;
    if (ot_train_hash_data(ds, &hash, &err) != OT_OK)
        die("ot_train_hash_data failed on an open data set");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (dir[0] == '\0')
        LLVMFuzzerInitialize(NULL, NULL);
    if (size < 9)
        return 0;
    int mode = data[0] % 3;
    size_t rest = size - 9;
    size_t a = le32(data + 1), b = le32(data + 5);
    if (a > rest)
        a = rest;
    if (b > rest - a)
        b = rest - a;
    const uint8_t *pa = data + 9, *pb = pa + a, *pc = pb + b;
    size_t c = rest - a - b;
    clean();
    put(names[mode][0], pa, a);
    put(names[mode][1], pb, b);
    if (c)
        put(names[mode][2], pc, c);

    ot_data_opts opts = {.max_bytes = 64u << 20, .max_entries = 1000};
    for (int split = 0; split < 2; split++) {
        ot_dataset *ds = NULL;
        ot_err err = {0};
        ot_status st = ot_data_open_with(dir, split ? OT_DATA_TEST : OT_DATA_TRAIN, &opts, &ds,
                                         &err);
        if (st != OT_OK) {
            if (ds)
                die("ot_data_open failed but returned a data set");
            if (!err.msg[0])
                die("ot_data_open failed without a message");
            continue;
        }
        visit(ds);
        ot_data_free(ds);
    }
    return 0;
}
