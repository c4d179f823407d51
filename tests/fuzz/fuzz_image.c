/*
 * fuzz_image.c: libFuzzer harness for the JPEG and PNG decoders
 * (ot_data_decode_file) and the transform behind them.
 *
 * Each input is written to a file of this process's own under /tmp and
 * decoded. The destination refuses images over 4 MPixels (a harness limit, so
 * that each run stays fast; the decoders' own limits are 16384 per side and 64
 * MPixels, checked before the destination is asked). A decoded image is
 * resized and normalized to 16x16. Besides the sanitizers' reports, the
 * harness aborts when a decode succeeds with a shape other than the one the
 * destination was given, or fails without a message.
 *
 *   make fuzz FUZZ_TARGETS=image         builds and runs it
 *   build/fuzz/fuzz_image CRASH          replays one input
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/data.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_PIXELS (4 << 20)

static char path[64];

typedef struct {
    uint8_t *buf;
    int h, w, c;
} dest_state;

static void remove_file(void) { unlink(path); }

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(path, sizeof path, "/tmp/ot-fuzz-image-%ld", (long)getpid());
    atexit(remove_file);
    return 0;
}

static void die(const char *what)
{
    fprintf(stderr, "fuzz_image: %s\n", what);
    abort();
}

static uint8_t *dest(void *user, int h, int w, int c, ot_err *err)
{
    dest_state *d = user;
    if (h < 1 || w < 1 || h > OT_DATA_MAX_SIDE || w > OT_DATA_MAX_SIDE || (c != 1 && c != 3))
        die("the decoder asked for memory for an image outside its limits");
    if ((int64_t)h * w > FUZZ_MAX_PIXELS) {
        ot_err_set(err, OT_ERR_ARG, "over the harness's limit");
        return NULL;
    }
    d->buf = malloc((size_t)h * (size_t)w * (size_t)c);
    if (!d->buf) {
        ot_err_set(err, OT_ERR_NOMEM, "out of memory");
        return NULL;
    }
    d->h = h;
    d->w = w;
    d->c = c;
    return d->buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (path[0] == '\0')
        LLVMFuzzerInitialize(NULL, NULL);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size))
        die("cannot write the input");
    fclose(f);

    dest_state d = {0};
    ot_image img;
    ot_err err = {0};
    if (ot_data_decode_file(path, dest, &d, &img, &err) != OT_OK) {
        if (!err.msg[0])
            die("a decode failed without a message");
        free(d.buf);
        return 0;
    }
    if (!d.buf || img.data != d.buf || img.height != d.h || img.width != d.w ||
        img.channels != d.c)
        die("a decoded image does not match what the destination was given");
    ot_data_transform t;
    ot_data_transform_init(&t, 16, OT_DATA_NORM_HALF);
    size_t sb = ot_data_prepare_scratch_bytes(img.height, img.width, &t);
    void *scratch = malloc(sb ? sb : 1);
    float *out = malloc(sizeof(float) * 3 * 16 * 16);
    if (!scratch || !out)
        die("out of memory");
    if (ot_data_prepare(&img, &t, out, scratch, sb, &err) != OT_OK)
        die("the transform refused a decoded image");
    for (int i = 0; i < 3 * 16 * 16 && i < ot_data_out_channels(&t, img.channels) * 256; i++)
        if (!(out[i] >= -1.0f && out[i] <= 1.0f))
            die("a transformed pixel is outside [-1, 1] with mean 0.5, std 0.5");
    free(scratch);
    free(out);
    free(d.buf);
    return 0;
}
