/*
 * test_loss_scale.c: dynamic loss scaling's rule (src/train/loss_scale.c)
 * fed the overflow flags of gradients with infinities and NaNs, against
 * PyTorch's GradScaler (initial scale 65536, x0.5 on an overflow, x2 after
 * 2000 clean steps), its state's round trip through a checkpoint, and the
 * trainer skipping overflowed steps and resuming the state.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/data.h"
#include "models/models.h"
#include "test.h"
#include "train/checkpoint.h"
#include "train/loss_scale.h"
#include "train/trainer.h"

TEST(loss_scale_follows_grad_scaler)
{
    ot_loss_scaler s;
    ot_loss_scaler_init(&s, 0);
    CHECK(s.scale == 65536.0f && s.growth_tracker == 0 && s.skipped == 0);
    CHECK_EQ_INT(s.growth_interval, 2000);
    /* gradients as a step leaves them: finite, one with an inf, one with a NaN */
    float clean[4] = { 1e-3f, -2.5f, 0.0f, 65504.0f };
    float inf[4] = { 1e-3f, INFINITY, 0.0f, 1.0f };
    float nan[4] = { 1e-3f, 1.0f, NAN, 1.0f };
    float ninf[1] = { -INFINITY };
    CHECK(!ot_loss_scaler_nonfinite(clean, 4));
    CHECK(ot_loss_scaler_nonfinite(inf, 4));
    CHECK(ot_loss_scaler_nonfinite(nan, 4));
    CHECK(ot_loss_scaler_nonfinite(ninf, 1));
    CHECK(!ot_loss_scaler_nonfinite(inf, 1));
    /* an overflow: skipped, halved, tracker reset */
    CHECK(!ot_loss_scaler_update(&s, ot_loss_scaler_nonfinite(clean, 4)));
    CHECK_EQ_INT(s.growth_tracker, 1);
    CHECK(ot_loss_scaler_update(&s, ot_loss_scaler_nonfinite(inf, 4)));
    CHECK(s.scale == 32768.0f && s.growth_tracker == 0 && s.skipped == 1);
    CHECK(ot_loss_scaler_update(&s, ot_loss_scaler_nonfinite(nan, 4)));
    CHECK(s.scale == 16384.0f && s.skipped == 2);
    /* 1999 clean steps keep the scale, the 2000th doubles it */
    for (int i = 0; i < 1999; i++)
        CHECK(!ot_loss_scaler_update(&s, false));
    CHECK(s.scale == 16384.0f && s.growth_tracker == 1999);
    CHECK(!ot_loss_scaler_update(&s, false));
    CHECK(s.scale == 32768.0f && s.growth_tracker == 0 && s.skipped == 2);
    /* an overflow one step before growing restarts the count */
    for (int i = 0; i < 1999; i++)
        ot_loss_scaler_update(&s, false);
    CHECK(ot_loss_scaler_update(&s, true));
    CHECK(s.scale == 16384.0f && s.growth_tracker == 0);
    /* growth that would overflow float32 keeps the scale */
    ot_loss_scaler big;
    ot_loss_scaler_init(&big, 3e38f);
    big.growth_interval = 1;
    CHECK(!ot_loss_scaler_update(&big, false));
    CHECK(big.scale == 3e38f && big.growth_tracker == 0);
    /* the floor: never below 1 */
    ot_loss_scaler low;
    ot_loss_scaler_init(&low, 2.0f);
    ot_loss_scaler_update(&low, true);
    ot_loss_scaler_update(&low, true);
    CHECK(low.scale == 1.0f && low.skipped == 2);
    ot_err err;
    ot_err_init(&err);
    CHECK_OK(ot_loss_scaler_check(&s, &err), &err);
    low.scale = 0.5f;
    CHECK_EQ_INT(ot_loss_scaler_check(&low, &err), OT_ERR_PARSE);
    low.scale = 1.0f;
    low.growth_tracker = 2000;
    CHECK_EQ_INT(ot_loss_scaler_check(&low, &err), OT_ERR_PARSE);
}

/* The scaler's state in a checkpoint: written when on, read back the same;
   absent when off. */
TEST(loss_scale_checkpoint_round_trip)
{
    ot_err err;
    ot_err_init(&err);
    ot_graph *model = NULL;
    ot_model_spec spec = { .name = "resnet18", .classes = 3, .image_size = 32, .seed = 3 };
    CHECK_OK(ot_model_build(&spec, &model, &err), &err);
    if (!model)
        return;
    char path[256];
    snprintf(path, sizeof path, "/tmp/onnxtrain_loss_scale_%d.ckpt", (int)getpid());
    for (int on = 0; on < 2; on++) {
        ot_train_checkpoint ck;
        memset(&ck, 0, sizeof ck);
        ck.format = OT_CKPT_FORMAT;
        ck.n_images = 100;
        ck.n_classes = 3;
        ck.options = (char *)"batch-size=2\n";
        ck.params = (char *)"fc.weight\n";
        ck.step = 7;
        ck.epoch = 0;
        ck.epoch_step = 7;
        ck.steps_per_epoch = 50;
        ck.epochs = 1;
        ck.epoch_seen = 14;
        ck.loss_scaling = on;
        ot_loss_scaler_init(&ck.scaler, 0);
        ck.scaler.scale = 8192.0f;
        ck.scaler.growth_tracker = 4;
        ck.scaler.skipped = 3;
        if (ot_train_checkpoint_save(model, NULL, 0, NULL, 0, &ck, NULL, NULL, path, &err) !=
            OT_OK) {
            ot_test_fail(__FILE__, __LINE__, "save: %s", err.msg);
            break;
        }
        ot_graph *g = NULL;
        ot_train_checkpoint back;
        memset(&back, 0, sizeof back);
        if (ot_train_checkpoint_load(path, &g, &back, &err) != OT_OK) {
            ot_test_fail(__FILE__, __LINE__, "load: %s", err.msg);
            break;
        }
        CHECK_EQ_INT(back.loss_scaling, on);
        if (on) {
            CHECK(back.scaler.scale == 8192.0f);
            CHECK_EQ_INT(back.scaler.growth_tracker, 4);
            CHECK_EQ_INT(back.scaler.skipped, 3);
            CHECK_EQ_INT(back.scaler.growth_interval, 2000);
        }
        ot_train_checkpoint_fini(&back);
        ot_graph_free(g);
    }
    unlink(path);
    ot_graph_free(model);
}

/* A CIFAR-10 training split of n images (label k % 10) in `dir`. */
static bool write_cifar(const char *dir, int n)
{
    char path[600];
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/data_batch_1.bin", dir);
    FILE *f = fopen(path, "wb");
    bool ok = f != NULL;
    for (int k = 0; ok && k < n; k++) {
        unsigned char rec[3073];
        rec[0] = (unsigned char)(k % 10);
        for (int i = 1; i < 3073; i++)
            rec[i] = (unsigned char)((k * 131 + i * 7 + (i >> 5) * 3) & 255);
        ok = fwrite(rec, 1, sizeof rec, f) == sizeof rec;
    }
    if (f)
        ok = fclose(f) == 0 && ok;
    return ok;
}

/* A ResNet-18 at 32x32 for 10 classes with fc trained. */
static ot_graph *head_model(ot_err *err)
{
    ot_graph *model = NULL;
    ot_model_spec spec = { .name = "resnet18", .classes = 10, .image_size = 32, .seed = 5 };
    if (ot_model_build(&spec, &model, err) != OT_OK)
        return NULL;
    const char *const names[2] = { "fc.weight", "fc.bias" };
    for (int i = 0; i < 2; i++) {
        int32_t v = ot_graph_find_value(model, names[i]);
        if (v < 0) {
            ot_graph_free(model);
            return NULL;
        }
        model->values[v].flags |= OT_VAL_TRAINABLE;
    }
    return model;
}

/* The trainer with loss scaling forced on (the CPU refuses fp16): at a
   scale that overflows, the steps are skipped (the head keeps its values)
   and the scale halves each time; stopped after two steps and resumed from
   the checkpoint, a run ends where the uninterrupted one does (the same
   skipped steps, scale and weights: the state and the optimizer's step
   count, which leaves the skipped steps out, carry over); at 65536 the
   steps are taken. */
TEST(loss_scale_in_the_trainer)
{
    ot_err err;
    ot_err_init(&err);
    char dir[512], ckpt[600];
    snprintf(dir, sizeof dir, "%s/loss_scale", ot_test_tmpdir());
    snprintf(ckpt, sizeof ckpt, "%s/run.ckpt", dir);
    CHECK(write_cifar(dir, 20));
    ot_dataset *ds = NULL;
    ot_graph *a = head_model(&err), *b = head_model(&err);
    float *w0 = NULL;
    CHECK_OK(ot_data_open(dir, OT_DATA_TRAIN, &ds, &err), &err);
    CHECK(a && b);
    if (!ds || !a || !b)
        goto done;
    int32_t fc = ot_graph_find_value(a, "fc.weight");
    size_t wb = a->values[fc].data.bytes;
    w0 = malloc(wb);
    CHECK(w0 != NULL);
    if (!w0)
        goto done;
    memcpy(w0, a->values[fc].data.data, wb);
    ot_train_opts o;
    ot_train_opts_default(&o);
    o.epochs = 1;
    o.batch_size = 4;
    o.optim = ot_optim_opts_default(OT_OPTIM_ADAM);
    o.lr = 0.01;
    o.threads = 1;
    o.deterministic = true;
    o.no_cache = true;
    ot_data_transform_init(&o.transform, 32, OT_DATA_NORM_HALF);
    o.loss_scaling = true;
    o.loss_scale_init = 3e38f;
    ot_train_result ra, rb;
    o.max_steps = 5; /* the whole epoch, uninterrupted */
    CHECK_OK(ot_train_run(a, ds, &o, &ra, &err), &err);
    CHECK(ra.loss_scaling);
    CHECK_EQ_INT(ra.steps, 5);
    CHECK(ra.skipped_steps >= 2 && ra.skipped_steps < 5); /* 3e38, 1.5e38 overflow */
    CHECK(ra.loss_scale == 3e38f * powf(0.5f, (float)ra.skipped_steps));
    CHECK(memcmp(w0, a->values[fc].data.data, wb) != 0);
    o.max_steps = 2;
    o.checkpoint = ckpt;
    CHECK_OK(ot_train_run(b, ds, &o, &rb, &err), &err);
    CHECK_EQ_INT(rb.skipped_steps, 2);
    CHECK(rb.loss_scale == 3e38f * 0.25f);
    CHECK(memcmp(w0, b->values[fc].data.data, wb) == 0); /* nothing applied */
    o.resume = ckpt;
    o.max_steps = 5;
    CHECK_OK(ot_train_run(b, ds, &o, &rb, &err), &err);
    CHECK(rb.resumed);
    CHECK_EQ_INT(rb.steps, 5);
    CHECK_EQ_INT(rb.skipped_steps, ra.skipped_steps);
    CHECK(rb.loss_scale == ra.loss_scale);
    CHECK(memcmp(a->values[fc].data.data, b->values[fc].data.data, wb) == 0);
    /* a scale that does not overflow: every step is taken */
    o.resume = NULL;
    o.checkpoint = NULL;
    o.loss_scale_init = 0;
    CHECK_OK(ot_train_run(b, ds, &o, &rb, &err), &err);
    CHECK_EQ_INT(rb.skipped_steps, 0);
    CHECK(rb.loss_scale == 65536.0f);
done:
    free(w0);
    unlink(ckpt);
    ot_graph_free(a);
    ot_graph_free(b);
    ot_data_free(ds);
}

/* --clip-grad with loss scaling forced on in the trainer: at 65536 the run
   ends with the bytes of the same run clipped without loss scaling (the
   clipping sees the unscaled gradients); at a scale that overflows, the
   first steps are skipped and the scale halves, where clipping alone would
   stop on the non-finite norm; without clipping the run ends elsewhere
   (the clipping applied). */
TEST(loss_scale_with_clipping_in_the_trainer)
{
    ot_err err;
    ot_err_init(&err);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/loss_scale_clip", ot_test_tmpdir());
    CHECK(write_cifar(dir, 20));
    ot_dataset *ds = NULL;
    ot_graph *a = head_model(&err), *b = head_model(&err), *c = head_model(&err);
    ot_graph *d = head_model(&err);
    CHECK_OK(ot_data_open(dir, OT_DATA_TRAIN, &ds, &err), &err);
    CHECK(a && b && c && d);
    if (!ds || !a || !b || !c || !d)
        goto done;
    int32_t fc = ot_graph_find_value(a, "fc.weight");
    size_t wb = a->values[fc].data.bytes;
    ot_train_opts o;
    ot_train_opts_default(&o);
    o.epochs = 1;
    o.batch_size = 4;
    o.optim = ot_optim_opts_default(OT_OPTIM_ADAM);
    o.lr = 0.01;
    o.threads = 1;
    o.deterministic = true;
    o.no_cache = true;
    o.max_steps = 5;
    o.clip_grad = 0.01; /* below the head's gradient norm: every step clips */
    ot_data_transform_init(&o.transform, 32, OT_DATA_NORM_HALF);
    ot_train_result ra, rb, rc;
    CHECK_OK(ot_train_run(a, ds, &o, &ra, &err), &err);
    o.loss_scaling = true;
    CHECK_OK(ot_train_run(b, ds, &o, &rb, &err), &err);
    CHECK(rb.loss_scaling && rb.skipped_steps == 0 && rb.loss_scale == 65536.0f);
    CHECK(memcmp(a->values[fc].data.data, b->values[fc].data.data, wb) == 0);
    o.loss_scale_init = 3e38f;
    CHECK_OK(ot_train_run(c, ds, &o, &rc, &err), &err);
    CHECK(rc.skipped_steps >= 2 && rc.skipped_steps < 5);
    CHECK(rc.loss_scale == 3e38f * powf(0.5f, (float)rc.skipped_steps));
    /* the clipping bit: unclipped, the same run ends elsewhere */
    o.loss_scale_init = 0;
    o.clip_grad = 0;
    CHECK_OK(ot_train_run(d, ds, &o, &rc, &err), &err);
    CHECK(memcmp(a->values[fc].data.data, d->values[fc].data.data, wb) != 0);
done:
    ot_graph_free(a);
    ot_graph_free(b);
    ot_graph_free(c);
    ot_graph_free(d);
    ot_data_free(ds);
}
