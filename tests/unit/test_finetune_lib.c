/*
 * test_finetune_lib.c: ot_finetune as a program calls it.
 *
 * The loop allocates nothing per step.
 * ot_finetune on a ResNet-18 built at 32x32 and a small CIFAR-10 folder, in
 * each mode, with a progress callback that reads the counting allocator
 * after every step: from the second step of an epoch to the last one it
 * reports as a step, the count does not move (the step binds the batch, runs the step graph, reads the
 * loss and logits; the loader refills its buffers in place; feature
 * extraction's later epochs read the prefix cache). What an epoch's start
 * and end may allocate (a validation pass, the cache's first fill) is not
 * counted.
 *
 * The written model's batch dim: a model that declares a fixed batch (as a
 * PyTorch export traced at batch 2 does) is written with a dynamic one by
 * default, or with the export_batch asked for.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/core.h"
#include "graph/graph.h"
#include "models/models.h"
#include "onnxtrain.h"
#include "test.h"

#define SIDE 32
#define N_TRAIN 40
#define BATCH 4
#define EPOCHS 2
#define REC 3073 /* CIFAR-10 record: label byte + 3 x 32 x 32 */

typedef struct watch {
    int epoch;              /* the epoch of the last step seen               */
    int64_t first_step;     /* the step whose count starts the comparison     */
    uint64_t at_first;      /* ot_alloc_count() after that step               */
    int64_t steps_checked;  /* steps compared with it                         */
    int64_t grew_at;        /* the first step that allocated (0: none)        */
    uint64_t grew_by;
    int grew_epoch;
} watch;

static void on_progress(const ot_ft_progress *p, void *user)
{
    watch *w = user;
    if (p->event != OT_FT_STEP)
        return;
    uint64_t now = ot_alloc_count();
    if (p->epoch != w->epoch) { /* a new epoch: its first step may allocate */
        w->epoch = p->epoch;
        w->first_step = -1;
        return;
    }
    if (w->first_step < 0) {
        w->first_step = p->step;
        w->at_first = now;
        return;
    }
    w->steps_checked++;
    if (now != w->at_first && !w->grew_at) {
        w->grew_at = p->step;
        w->grew_by = now - w->at_first;
        w->grew_epoch = p->epoch;
    }
}

/* A CIFAR-10 folder with N_TRAIN pseudo-random training images, written
   once per run under the scratch folder; returns its path. */
static const char *cifar_dir(void)
{
    static char dir[512];
    char path[600];
    snprintf(dir, sizeof dir, "%s/ft_alloc", ot_test_tmpdir());
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/data_batch_1.bin", dir);
    FILE *f = fopen(path, "rb");
    if (f) {
        fclose(f);
        return dir;
    }
    uint8_t *b = malloc((size_t)N_TRAIN * REC);
    if (!b)
        return NULL;
    uint32_t x = 2024;
    for (size_t i = 0; i < (size_t)N_TRAIN * REC; i++) {
        x = x * 1664525u + 1013904223u;
        b[i] = (uint8_t)(x >> 24);
    }
    for (int k = 0; k < N_TRAIN; k++)
        b[(size_t)k * REC] = (uint8_t)(k % 10);
    f = fopen(path, "wb");
    bool ok = f && fwrite(b, 1, (size_t)N_TRAIN * REC, f) == (size_t)N_TRAIN * REC;
    if (f)
        ok = fclose(f) == 0 && ok;
    free(b);
    return ok ? dir : NULL;
}

static void check_mode(ot_ft_mode mode, int augment, const char *what)
{
    ot_err err;
    ot_err_init(&err);
    const char *data = cifar_dir();
    if (!data) {
        ot_test_fail(__FILE__, __LINE__, "%s: could not write the data", what);
        return;
    }
    ot_graph *model = NULL;
    ot_model_spec spec = { .name = "resnet18", .classes = 10, .image_size = SIDE, .seed = 3 };
    if (ot_model_build(&spec, &model, &err) != OT_OK) {
        ot_test_fail(__FILE__, __LINE__, "%s: %s", what, err.msg);
        return;
    }
    watch w = { .epoch = 0, .first_step = -1 };
    ot_finetune_opts o = ot_finetune_opts_default();
    o.model = model;
    o.model_path = "resnet18";
    o.data = data;
    o.mode = mode;
    o.epochs = EPOCHS;
    o.batch_size = BATCH;
    o.image_size = SIDE;
    o.augment = augment;
    o.threads = 1;
    o.seed = 5;
    o.progress = on_progress;
    o.user = &w;
    ot_finetune_result r;
    ot_status st = ot_finetune(&o, &r, &err);
    ot_graph_free(model);
    if (st != OT_OK) {
        ot_test_fail(__FILE__, __LINE__, "%s: %s", what, err.msg);
        return;
    }
    /* steps 3 .. last-but-one of every epoch were compared with step 2 (the
       last step of an epoch is reported as OT_FT_EPOCH) */
    CHECK_EQ_INT(w.steps_checked, (int64_t)EPOCHS * (N_TRAIN / BATCH - 3));
    if (w.grew_at)
        ot_test_fail(__FILE__, __LINE__, "%s: epoch %d step %lld allocated %llu blocks", what,
                     w.grew_epoch, (long long)w.grew_at, (unsigned long long)w.grew_by);
}

TEST(finetune_steps_allocate_nothing)
{
    check_mode(OT_FT_FULL, 0, "full");
    check_mode(OT_FT_FINE_TUNE, 1, "fine-tune with augmentation");
    check_mode(OT_FT_FEATURE_EXTRACT, 0, "feature-extract (epoch 2 from the cache)");
}

/* Fine-tunes (feature extraction, one epoch) a ResNet-18 whose input
   declares batch 2, writes it with export_batch, and returns the written
   input's dim 0 and its name (or -2 on failure). */
static int64_t written_batch(int64_t export_batch, char *name, size_t name_size)
{
    ot_err err;
    ot_err_init(&err);
    const char *data = cifar_dir();
    ot_graph *model = NULL, *back = NULL;
    ot_model_spec spec = { .name = "resnet18", .classes = 10, .image_size = SIDE, .seed = 3 };
    char out[600];
    snprintf(out, sizeof out, "%s/ft_batch_%lld.onnx", ot_test_tmpdir(), (long long)export_batch);
    int64_t dim = -2;
    if (!data || ot_model_build(&spec, &model, &err) != OT_OK)
        goto out;
    ot_value *in = &model->values[model->inputs[0].value];
    in->dims[0] = 2;
    in->dim_names[0] = NULL;
    in->flags |= OT_VAL_SHAPE_DIRTY;
    ot_finetune_opts o = ot_finetune_opts_default();
    o.model = model;
    o.model_path = "resnet18";
    o.data = data;
    o.mode = OT_FT_FEATURE_EXTRACT;
    o.epochs = 1;
    o.batch_size = BATCH;
    o.image_size = SIDE;
    o.threads = 1;
    o.output = out;
    o.export_batch = export_batch;
    ot_finetune_result r;
    if (ot_finetune(&o, &r, &err) != OT_OK || ot_model_import(out, NULL, &back, &err) != OT_OK)
        goto out;
    const ot_value *v = &back->values[back->inputs[0].value];
    dim = v->dims[0];
    snprintf(name, name_size, "%s", v->dim_names[0] ? v->dim_names[0] : "");
out:
    if (dim == -2)
        ot_test_fail(__FILE__, __LINE__, "export_batch %lld: %s", (long long)export_batch,
                     err.msg);
    ot_graph_free(back);
    ot_graph_free(model);
    return dim;
}

TEST(finetune_exports_batch_dynamic_by_default)
{
    char name[64] = "";
    CHECK_EQ_INT(written_batch(0, name, sizeof name), OT_DIM_DYNAMIC);
    CHECK_STR(name, "N");
    CHECK_EQ_INT(written_batch(3, name, sizeof name), 3);
    CHECK_EQ_INT(written_batch(-1, name, sizeof name), OT_DIM_DYNAMIC);
}
