/*
 * test_loss_scale.c: dynamic loss scaling's rule (src/train/loss_scale.c)
 * fed the overflow flags of gradients with infinities and NaNs, against
 * PyTorch's GradScaler (initial scale 65536, x0.5 on an overflow, x2 after
 * 2000 clean steps), and its state's round trip through a checkpoint.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "models/models.h"
#include "test.h"
#include "train/checkpoint.h"
#include "train/loss_scale.h"

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
