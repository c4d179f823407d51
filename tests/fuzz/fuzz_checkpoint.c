/*
 * fuzz_checkpoint.c: libFuzzer harness for the checkpoint loader
 * (ot_train_checkpoint_load: the ONNX import and the onnxtrain.checkpoint.*
 * metadata), the preprocessing metadata (ot_train_meta_read) and
 * ot_train_checkpoint_strip, as `finetune --resume` and `export` use them.
 *
 * Each input is written to a file of this process's own under /tmp and
 * loaded. When that succeeds, the checkpoint is compared with itself (which
 * must match), its metadata read and the graph stripped. Besides the
 * sanitizers' reports, the harness aborts when a load fails without a message
 * or returns a graph, or a checkpoint does not match itself.
 *
 *   make fuzz FUZZ_TARGETS=checkpoint    builds and runs it
 *   build/fuzz/fuzz_checkpoint CRASH     replays one input
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "train/checkpoint.h"
#include "train/meta.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];

static void remove_file(void) { unlink(path); }

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(path, sizeof path, "/tmp/ot-fuzz-ckpt-%ld.onnx", (long)getpid());
    atexit(remove_file);
    return 0;
}

static void die(const char *what, const ot_err *err)
{
    fprintf(stderr, "fuzz_checkpoint: %s: %s\n", what, err ? err->msg : "");
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (path[0] == '\0')
        LLVMFuzzerInitialize(NULL, NULL);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size))
        die("cannot write the input", NULL);
    fclose(f);

    ot_graph *g = NULL;
    ot_train_checkpoint ck = {0};
    ot_err err = {0};
    if (ot_train_checkpoint_load(path, &g, &ck, &err) != OT_OK) {
        if (g)
            die("a failed load returned a graph", &err);
        if (!err.msg[0])
            die("a load failed without a message", &err);
        ot_train_checkpoint_fini(&ck);
        return 0;
    }
    if (ot_train_checkpoint_match(&ck, &ck, &err) != OT_OK)
        die("a checkpoint does not match itself", &err);
    ot_data_transform t;
    ot_data_transform_init(&t, 224, OT_DATA_NORM_IMAGENET);
    if (ot_train_meta_read(g, &t) &&
        (t.size < 1 || t.size > OT_DATA_MAX_SIZE || !(t.std[0] >= (float)OT_DATA_STD_MIN) ||
         !(t.std[0] <= (float)OT_DATA_STD_MAX)))
        die("the preprocessing metadata gave a transform outside the limits", NULL);
    if (ot_train_checkpoint_strip(g, &err) != OT_OK && err.code != OT_ERR_NOMEM)
        die("a loaded checkpoint cannot be stripped", &err);
    ot_graph_free(g);
    ot_train_checkpoint_fini(&ck);
    return 0;
}
