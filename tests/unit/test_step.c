/*
 * test_step.c: the step graph updates its own state (src/train/train_graph.c
 * with the optimizer pass of src/train/optim.c).
 *
 * On a ResNet-18 built at 32x32 with fc and the last BatchNorm trained: the
 * step graph holds one update node per trained parameter, after every other
 * node, and the clipping nodes; one run of the compiled step moves each
 * parameter exactly as SGD with momentum moves it from the gradients the
 * update-free step graph outputs, fills the momentum buffers, and writes the
 * training-mode BN's running statistics into the state (the same bytes as
 * the update-free graph's run). Runs allocate nothing, and an executor for
 * another batch size shares the parameters and the moments.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/cpu/cpu.h"
#include "exec/exec.h"
#include "exec/exec_impl.h"
#include "models/models.h"
#include "ops/ops.h"
#include "test.h"
#include "train/loss_scale.h"
#include "train/train_graph.h"

#define BATCH 2
#define SIDE 32

typedef struct step_run {
    ot_train_graph tg;
    ot_exec *prefix, *step;
    ot_tensor in[12];
    int n_in;
    int64_t labels[BATCH];
    double lr[2];
    int64_t t;
    float scale; /* the loss scale input, with go->loss_scaling */
} step_run;

/* Where the steps compute without base options: the CPU in fp32, unless a
   test says otherwise. */
static ot_device step_device;
static ot_precision step_precision;

static void run_free(step_run *r)
{
    ot_exec_free(r->step);
    ot_exec_free(r->prefix);
    ot_train_graph_fini(&r->tg);
}

static void scalar(ot_tensor *t, ot_dtype dtype, void *data)
{
    memset(t, 0, sizeof *t);
    t->dtype = dtype;
    t->bytes = ot_dtype_size(dtype);
    t->data = data;
}

/* Builds the graphs, compiles the prefix and the step for `batch` images,
   and runs the prefix on x (the step's cut inputs then point at its
   outputs). base: the step's executor options (NULL: defaults); share: an
   executor whose state the step shares (may be NULL). */
static ot_status run_new(const ot_graph *model, const ot_train_graph_opts *go, const float *x,
                         int batch, const ot_exec_opts *base, const ot_exec *share, step_run *r,
                         ot_err *err)
{
    ot_status st = OT_OK;
    memset(r, 0, sizeof *r);
    OT_TRY(ot_train_graph_build(model, go, &r->tg, err));
    ot_train_graph *tg = &r->tg;
    OT_ASSERT(tg->prefix && tg->n_cut <= 4);
    ot_tensor img;
    memset(&img, 0, sizeof img);
    img.dtype = OT_DTYPE_FLOAT;
    img.ndim = 4;
    img.dims[0] = batch;
    img.dims[1] = 3;
    img.dims[2] = img.dims[3] = SIDE;
    img.bytes = (size_t)batch * 3 * SIDE * SIDE * sizeof(float);
    ot_exec_input in = { .value = tg->image, .tensor = img };
    OT_TRY(ot_exec_compile(tg->prefix, &in, 1, NULL, &r->prefix, err));
    img.data = (void *)(uintptr_t)x;
    OT_TRY(ot_exec_run(r->prefix, &img, 1, err));
    ot_exec_input bind[12];
    memset(bind, 0, sizeof bind);
    for (int c = 0; c < tg->n_cut; c++) {
        r->in[c] = *ot_exec_output(r->prefix, c);
        bind[c].value = tg->cut[c];
    }
    int k = tg->n_cut;
    memset(&r->in[k], 0, sizeof r->in[k]);
    r->in[k].dtype = OT_DTYPE_INT64;
    r->in[k].ndim = 1;
    r->in[k].dims[0] = batch;
    r->in[k].bytes = (size_t)batch * sizeof(int64_t);
    r->in[k].data = r->labels;
    bind[k].value = tg->labels;
    r->n_in = k + 1;
    for (int grp = 0; grp < 2; grp++)
        if (tg->optim.lr[grp] >= 0) {
            bind[r->n_in].value = tg->optim.lr[grp];
            scalar(&r->in[r->n_in++], OT_DTYPE_DOUBLE, &r->lr[grp]);
        }
    if (tg->optim.step >= 0) {
        bind[r->n_in].value = tg->optim.step;
        scalar(&r->in[r->n_in++], OT_DTYPE_INT64, &r->t);
    }
    if (tg->loss_scale >= 0) {
        bind[r->n_in].value = tg->loss_scale;
        scalar(&r->in[r->n_in++], OT_DTYPE_FLOAT, &r->scale);
    }
    for (int i = 0; i < r->n_in; i++) {
        bind[i].tensor = r->in[i];
        bind[i].tensor.data = NULL;
    }
    ot_exec_opts eo = { .device = step_device, .precision = step_precision };
    if (base)
        eo = *base;
    eo.share_state = share;
    OT_TRY(ot_exec_compile(tg->step, bind, r->n_in, &eo, &r->step, err));
    for (int i = 0; i < batch; i++)
        r->labels[i] = i % 3;
    r->lr[0] = r->lr[1] = 0.0625;
    r->t = 1;
    r->scale = 65536.0f;
done:
    return st;
}

static int count_op(const ot_graph *g, int op)
{
    int k = 0;
    for (int32_t i = 0; i < g->n_nodes; i++)
        k += g->nodes[i].op == ot_op_table[op];
    return k;
}

TEST(step_graph_updates_its_state)
{
    ot_err err;
    ot_err_init(&err);
    ot_graph *model = NULL;
    ot_model_spec spec = { .name = "resnet18", .classes = 3, .image_size = SIDE, .seed = 7 };
    CHECK_OK(ot_model_build(&spec, &model, &err), &err);
    static const char *const trained[] = { "fc.weight", "fc.bias", "layer4.1.bn2.weight",
                                           "layer4.1.bn2.bias" };
    for (int i = 0; i < 4; i++) {
        int32_t v = ot_graph_find_value(model, trained[i]);
        CHECK(v >= 0);
        model->values[v].flags |= OT_VAL_TRAINABLE;
    }
    static float x[BATCH * 3 * SIDE * SIDE];
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
        x[i] = (float)((i * 7919) % 255) / 255.0f - 0.5f;

    /* the reference: gradients as outputs, no updates */
    step_run ref, upd, small;
    ot_train_graph_opts go = { 0 };
    if (run_new(model, &go, x, BATCH, NULL, NULL, &ref, &err) != OT_OK) {
        ot_test_fail(__FILE__, __LINE__, "update-free step: %s", err.msg);
        run_free(&ref);
        ot_graph_free(model);
        return;
    }
    ot_optim_opts sgd = ot_optim_opts_default(OT_OPTIM_SGD);
    sgd.momentum = 0.5;
    go.optim = &sgd;
    go.clip_grad = 1e6; /* clipping nodes, coefficient far above 1: no scaling */
    if (run_new(model, &go, x, BATCH, NULL, NULL, &upd, &err) != OT_OK) {
        ot_test_fail(__FILE__, __LINE__, "step: %s", err.msg);
        run_free(&ref);
        run_free(&upd);
        ot_graph_free(model);
        return;
    }
    const ot_train_graph *tg = &upd.tg;
    const ot_graph *sg = tg->step;
    CHECK_EQ_INT(tg->n_params, 4);
    CHECK_EQ_INT(tg->n_stats, 2);
    CHECK_EQ_INT(count_op(sg, OT_OP_SGD_STEP), 4);
    CHECK_EQ_INT(count_op(sg, OT_OP_GRAD_SUM_SQUARES), 4);
    CHECK_EQ_INT(count_op(sg, OT_OP_CLIP_GRAD_COEF), 1);
    for (int32_t i = sg->n_nodes - 4; i < sg->n_nodes; i++)
        CHECK(sg->nodes[i].op == ot_op_table[OT_OP_SGD_STEP]);
    CHECK_EQ_INT(sg->n_outputs, 3); /* loss, logits, the gradient norm */
    CHECK_EQ_INT(ref.tg.step->n_outputs, 2 + 4);

    CHECK_OK(ot_exec_run(ref.step, ref.in, ref.n_in, &err), &err);
    CHECK_OK(ot_exec_run(upd.step, upd.in, upd.n_in, &err), &err);
    float loss_ref, loss_upd;
    memcpy(&loss_ref, ot_exec_output(ref.step, 0)->data, sizeof loss_ref);
    memcpy(&loss_upd, ot_exec_output(upd.step, 0)->data, sizeof loss_upd);
    CHECK(loss_ref == loss_upd);
    /* first SGD step with momentum: b = g, p' = p + (-lr) * g */
    for (int p = 0; p < tg->n_params; p++) {
        const ot_value *v = &model->values[tg->params[p]];
        size_t n = v->data.bytes / sizeof(float);
        const float *p0 = v->data.data, *g = ot_exec_output(ref.step, 2 + p)->data;
        float *p1 = malloc(v->data.bytes + 1), *b = malloc(v->data.bytes + 1);
        CHECK(p1 && b);
        size_t moved = 0, bad = 0;
        if (ot_exec_read_state(upd.step, tg->params[p], p1, v->data.bytes, &err) != OT_OK ||
            ot_exec_read_state(upd.step, tg->optim.bufs[p], b, v->data.bytes, &err) != OT_OK)
            bad = n + 1;
        for (size_t j = 0; j < n && !bad; j++) {
            float want = p0[j] + -0.0625f * g[j];
            moved += p1[j] != p0[j];
            bad += p1[j] != want || b[j] != g[j];
        }
        free(p1);
        free(b);
        if (bad || !moved) {
            ot_test_fail(__FILE__, __LINE__, "'%s': %zu of %zu values differ from SGD, %zu moved",
                         v->name, bad, n, moved);
            break;
        }
    }
    /* the running statistics: written in place by both steps, and changed */
    for (int s = 0; s < tg->n_stats; s++) {
        const ot_value *v = &model->values[tg->stats[s]];
        char *a = malloc(v->data.bytes + 1), *b = malloc(v->data.bytes + 1);
        bool same = a && b &&
                    ot_exec_read_state(ref.step, tg->stats[s], a, v->data.bytes, &err) == OT_OK &&
                    ot_exec_read_state(upd.step, tg->stats[s], b, v->data.bytes, &err) == OT_OK &&
                    memcmp(a, b, v->data.bytes) == 0;
        bool moved = same && memcmp(b, v->data.data, v->data.bytes) != 0;
        free(a);
        free(b);
        CHECK(same && moved);
    }
    float norm;
    memcpy(&norm, ot_exec_output(upd.step, 2)->data, sizeof norm);
    CHECK(isfinite(norm) && norm > 0.0f);

    /* the second step allocates nothing */
    upd.t = 2;
    uint64_t before = ot_alloc_count();
    CHECK_OK(ot_exec_run(upd.step, upd.in, upd.n_in, &err), &err);
    CHECK_EQ_INT(ot_alloc_count(), before);

    /* an executor for one image shares the parameters and the moments */
    if (run_new(model, &go, x, 1, NULL, upd.step, &small, &err) != OT_OK) {
        ot_test_fail(__FILE__, __LINE__, "shared step: %s", err.msg);
    } else {
        /* what one writes, the other reads */
        CHECK(small.tg.optim.bufs[0] == tg->optim.bufs[0]);
        const int32_t ids[2] = { tg->params[0], tg->optim.bufs[0] };
        for (int k = 0; k < 2; k++) {
            size_t nb = ot_exec_state_bytes(upd.step, ids[k]);
            float *w = malloc(nb + 1), *r = malloc(nb + 1);
            bool shared = w && r && nb == ot_exec_state_bytes(small.step, ids[k]) && nb >= 4 &&
                          ot_exec_read_state(upd.step, ids[k], w, nb, &err) == OT_OK;
            if (shared) {
                w[0] += 1.0f;
                shared = ot_exec_write_state(small.step, ids[k], w, nb, &err) == OT_OK &&
                         ot_exec_read_state(upd.step, ids[k], r, nb, &err) == OT_OK &&
                         memcmp(w, r, nb) == 0;
            }
            free(w);
            free(r);
            CHECK(shared);
        }
    }
    run_free(&small);
    run_free(&upd);
    run_free(&ref);
    ot_graph_free(model);
}

/* The gradient all-reduce of data-parallel training, overlapped: with
   bucket_bytes and overlap, every bucket is a start (phase=1) placed right
   after the node that produces its last gradient (only other starts in
   between), so starts run inside the backward pass, and a wait (phase=2)
   after the whole backward pass; in one process the step computes what the
   step without reductions computes, bit for bit. */
TEST(step_graph_overlaps_all_reduce)
{
    ot_err err;
    ot_err_init(&err);
    ot_graph *model = NULL;
    ot_model_spec spec = { .name = "resnet18", .classes = 3, .image_size = SIDE, .seed = 7 };
    CHECK_OK(ot_model_build(&spec, &model, &err), &err);
    static const char *const trained[] = { "fc.weight", "fc.bias", "layer4.1.conv2.weight",
                                           "layer4.1.bn2.weight", "layer4.1.bn2.bias",
                                           "layer4.1.conv1.weight" };
    for (int i = 0; i < 6; i++) {
        int32_t v = ot_graph_find_value(model, trained[i]);
        CHECK(v >= 0);
        model->values[v].flags |= OT_VAL_TRAINABLE;
    }
    static float x[BATCH * 3 * SIDE * SIDE];
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
        x[i] = (float)((i * 7919) % 255) / 255.0f - 0.5f;
    ot_optim_opts sgd = ot_optim_opts_default(OT_OPTIM_SGD);
    ot_train_graph_opts go = { .optim = &sgd };
    step_run plain, ovl;
    if (run_new(model, &go, x, BATCH, NULL, NULL, &plain, &err) != OT_OK) {
        ot_test_fail(__FILE__, __LINE__, "step: %s", err.msg);
        run_free(&plain);
        ot_graph_free(model);
        return;
    }
    go.bucket_bytes = 1; /* one gradient a bucket */
    go.overlap = true;
    if (run_new(model, &go, x, BATCH, NULL, NULL, &ovl, &err) != OT_OK) {
        ot_test_fail(__FILE__, __LINE__, "overlapped step: %s", err.msg);
        run_free(&plain);
        run_free(&ovl);
        ot_graph_free(model);
        return;
    }
    const ot_graph *sg = ovl.tg.step;
    CHECK_EQ_INT(ovl.tg.n_buckets, 6);
    CHECK_EQ_INT(count_op(sg, OT_OP_GRAD_ALL_REDUCE), 12);
    size_t floats = 0;
    for (int p = 0; p < ovl.tg.n_params; p++)
        floats += model->values[ovl.tg.params[p]].data.bytes / sizeof(float);
    CHECK(ovl.tg.stage_numel == floats);
    int32_t last_backward = -1, first_wait = -1, early_starts = 0, starts = 0, start_at[6];
    for (int32_t i = 0; i < sg->n_nodes; i++) {
        const ot_node *n = &sg->nodes[i];
        bool ar = n->op == ot_op_table[OT_OP_GRAD_ALL_REDUCE];
        int64_t phase = ar ? ot_node_attr_int(n, "phase", 0) : -1;
        if (phase == 2 && first_wait < 0)
            first_wait = i;
        if (!ar && first_wait < 0)
            last_backward = i;
        if (phase != 1)
            continue;
        starts++;
        int32_t prod = -1;
        for (int k = 0; k < n->n_in; k++)
            if (sg->values[n->in[k]].producer > prod)
                prod = sg->values[n->in[k]].producer;
        bool only_starts = prod >= 0;
        for (int32_t j = prod + 1; j < i && only_starts; j++)
            only_starts = sg->nodes[j].op == ot_op_table[OT_OP_GRAD_ALL_REDUCE] &&
                          ot_node_attr_int(&sg->nodes[j], "phase", 0) == 1;
        CHECK(only_starts);
        if (starts <= 6)
            start_at[starts - 1] = i;
    }
    CHECK_EQ_INT(starts, 6);
    CHECK(first_wait > last_backward);
    for (int b = 0; b < 6 && b < starts; b++)
        early_starts += start_at[b] < last_backward;
    CHECK(early_starts >= 4); /* the head's and layer4.1's start before conv1's gradient */
    /* one process: the reductions copy */
    CHECK_OK(ot_exec_run(plain.step, plain.in, plain.n_in, &err), &err);
    CHECK_OK(ot_exec_run(ovl.step, ovl.in, ovl.n_in, &err), &err);
    for (int p = 0; p < ovl.tg.n_params; p++) {
        const ot_value *v = &model->values[ovl.tg.params[p]];
        char *a = malloc(v->data.bytes + 1), *b = malloc(v->data.bytes + 1);
        CHECK(plain.tg.params[p] == ovl.tg.params[p]);
        bool same = a && b &&
                    ot_exec_read_state(plain.step, plain.tg.params[p], a, v->data.bytes, &err) ==
                        OT_OK &&
                    ot_exec_read_state(ovl.step, ovl.tg.params[p], b, v->data.bytes, &err) ==
                        OT_OK &&
                    memcmp(a, b, v->data.bytes) == 0 && memcmp(a, v->data.data, v->data.bytes);
        free(a);
        free(b);
        CHECK(same);
    }
    run_free(&plain);
    run_free(&ovl);
    ot_graph_free(model);
}

static int count_reorders(const ot_exec *x)
{
    int k = 0;
    for (int i = 0; i < ot_exec_n_steps(x); i++) {
        ot_exec_step_time t;
        ot_exec_step_profile(x, i, &t);
        k += strcmp(t.kind, "reorder") == 0;
    }
    return k;
}

/* Every state value of the step, plain, equal between two executors. */
static bool same_state(const step_run *a, const step_run *b, ot_err *err)
{
    const ot_graph *g = a->tg.step;
    bool same = true;
    for (int32_t v = 0; v < g->n_values && same; v++) {
        size_t nb = ot_exec_state_bytes(a->step, v);
        if (!nb)
            continue;
        char *p = malloc(nb), *q = malloc(nb);
        same = p && q && nb == ot_exec_state_bytes(b->step, v) &&
               ot_exec_read_state(a->step, v, p, nb, err) == OT_OK &&
               ot_exec_read_state(b->step, v, q, nb, err) == OT_OK && memcmp(p, q, nb) == 0;
        if (!same)
            ot_test_fail(__FILE__, __LINE__, "state '%s' differs", g->values[v].name);
        free(p);
        free(q);
    }
    return same;
}

/* Trained convolution weights, their gradients and Adam's moments stay in
   the forward convolution's layout between steps (src/exec/cpu/cpu_state.c):
   two reorders fewer per trained convolution weight in fp32 than with
   everything plain (one with clipping, one in bf16); the same bytes after steps of two batch sizes sharing the state
   (the clipping norm summed in plain order), in fp32 and in bf16; the state
   really blocked inside and plain through ot_exec_read_state/write_state. */
TEST(step_keeps_conv_weights_in_layout)
{
    ot_err err;
    ot_err_init(&err);
    ot_graph *model = NULL;
    ot_model_spec spec = { .name = "resnet18", .classes = 3, .image_size = SIDE, .seed = 7 };
    CHECK_OK(ot_model_build(&spec, &model, &err), &err);
    static const char *const trained[] = { "fc.weight", "fc.bias", "layer4.1.conv1.weight",
                                           "layer4.1.conv2.weight", "layer4.1.bn2.weight",
                                           "layer4.1.bn2.bias" };
    for (int i = 0; i < 6; i++) {
        int32_t v = ot_graph_find_value(model, trained[i]);
        CHECK(v >= 0);
        model->values[v].flags |= OT_VAL_TRAINABLE;
    }
    static float x[BATCH * 3 * SIDE * SIDE];
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
        x[i] = (float)((i * 7919) % 255) / 255.0f - 0.5f;
    ot_optim_opts adam = ot_optim_opts_default(OT_OPTIM_ADAMW);
    ot_train_graph_opts go = { .optim = &adam, .clip_grad = 0.01 };
    int32_t w = ot_graph_find_value(model, "layer4.1.conv2.weight");
    /* fp32 with and without clipping, bf16 without */
    for (int run = 0; run < 3; run++) {
        bool bf16 = run == 2;
        go.clip_grad = run == 0 ? 0.01 : 0.0;
        if (bf16 && !ot_cpu_has_bf16()) {
            printf("  skipped (no AVX-512): the bf16 half\n");
            break;
        }
        ot_exec_opts kept_o = { .precision = bf16 ? OT_PRECISION_BF16 : OT_PRECISION_FP32 };
        ot_exec_opts plain_o = kept_o;
        plain_o.cpu.plain_state = true;
        step_run kept, kept1, plain, plain1;
        memset(&kept, 0, sizeof kept);
        memset(&plain, 0, sizeof plain);
        memset(&kept1, 0, sizeof kept1);
        memset(&plain1, 0, sizeof plain1);
        if (run_new(model, &go, x, BATCH, &kept_o, NULL, &kept, &err) != OT_OK ||
            run_new(model, &go, x, BATCH, &plain_o, NULL, &plain, &err) != OT_OK ||
            run_new(model, &go, x, 1, &kept_o, kept.step, &kept1, &err) != OT_OK ||
            run_new(model, &go, x, 1, &plain_o, plain.step, &plain1, &err) != OT_OK) {
            ot_test_fail(__FILE__, __LINE__, "step: %s", err.msg);
        } else {
            /* two trained convolutions: each loses its gradient's reorder
               to plain, unless clipping reads the gradient plain for the
               norm, and in fp32 its forward reorder (bf16 converts) */
            int fewer = (go.clip_grad > 0 ? 0 : 2) + (bf16 ? 0 : 2);
            CHECK_EQ_INT(count_reorders(kept.step), count_reorders(plain.step) - fewer);
            CHECK_EQ_INT(count_reorders(kept1.step), count_reorders(plain1.step) - fewer);
            /* the bytes inside are not the plain tensor's */
            size_t nb = ot_exec_state_bytes(kept.step, w);
            char *raw = malloc(nb), *pl = malloc(nb), *pl2 = malloc(nb);
            CHECK(raw && pl && pl2);
            ot_loc loc = { .kind = OT_LOC_STATE, .id = w };
            CHECK_OK(ot_exec_loc_read(kept.step, loc, 0, raw, nb, &err), &err);
            CHECK_OK(ot_exec_read_state(kept.step, w, pl, nb, &err), &err);
            CHECK(memcmp(raw, pl, nb) != 0 && memcmp(pl, model->values[w].data.data, nb) == 0);
            /* steps of both batch sizes, the smaller one on the shared state */
            for (int64_t t = 1; t <= 3; t++) {
                step_run *a = t == 2 ? &kept1 : &kept, *b = t == 2 ? &plain1 : &plain;
                a->t = b->t = t;
                CHECK_OK(ot_exec_run(a->step, a->in, a->n_in, &err), &err);
                CHECK_OK(ot_exec_run(b->step, b->in, b->n_in, &err), &err);
                CHECK(memcmp(ot_exec_output(a->step, 0)->data, ot_exec_output(b->step, 0)->data,
                             sizeof(float)) == 0);
            }
            CHECK(same_state(&kept, &plain, &err));
            /* written plain (a checkpoint's resume), read back plain */
            CHECK_OK(ot_exec_read_state(kept.step, w, pl, nb, &err), &err);
            CHECK(memcmp(pl, model->values[w].data.data, nb) != 0);
            ((float *)(void *)pl)[1] += 1.0f;
            CHECK_OK(ot_exec_write_state(kept1.step, w, pl, nb, &err), &err);
            CHECK_OK(ot_exec_read_state(kept.step, w, pl2, nb, &err), &err);
            CHECK(memcmp(pl, pl2, nb) == 0);
            free(raw);
            free(pl);
            free(pl2);
        }
        run_free(&kept1);
        run_free(&plain1);
        run_free(&kept);
        run_free(&plain);
    }
    ot_graph_free(model);
}

/* Reads state value v of a step (bytes of the model's value, or of its
   moments' shape) into a new buffer; NULL on failure. */
static float *read_state(const step_run *r, int32_t v, size_t bytes)
{
    ot_err err;
    ot_err_init(&err);
    float *p = malloc(bytes + 1);
    if (p && ot_exec_read_state(r->step, v, p, bytes, &err) != OT_OK) {
        free(p);
        p = NULL;
    }
    return p;
}

/* Dynamic loss scaling (train/loss_scale.h) in the step graph: the backward
   pass starts from loss * scale, the updates take 1 / scale, so a power of
   two gives the unscaled step's parameters and moments bit for bit (Adam,
   two steps); a scale at which the gradients overflow skips every update
   (parameters and moments keep their values) and output 2, the gradients'
   norm, says so by not being finite.
   OT_TEST_DEVICE=cuda OT_TEST_PRECISION=fp16 (tests/gpu/check.sh) runs the
   steps there: the scaled step then has to move the parameters to finite
   values (fp16 rounds the scaled and the unscaled gradients differently),
   and the overflow must skip exactly as on the CPU. */
/* OT_TEST_DEVICE and OT_TEST_PRECISION (fp16, bf16; else fp32) as the
   steps' device and precision: false (and the test says skipped) when the
   device is not usable here; *exact: the steps compute in fp32. */
static bool step_env(bool *exact)
{
    ot_err err;
    ot_err_init(&err);
    *exact = true;
    if (!getenv("OT_TEST_DEVICE"))
        return true;
    const char *p = getenv("OT_TEST_PRECISION");
    if (ot_device_parse(getenv("OT_TEST_DEVICE"), &step_device, &err) != OT_OK) {
        printf("  skipped: %s\n", err.msg);
        return false;
    }
    step_precision = p && !strcmp(p, "fp16")   ? OT_PRECISION_FP16
                     : p && !strcmp(p, "bf16") ? OT_PRECISION_BF16
                                               : OT_PRECISION_FP32;
    *exact = step_precision == OT_PRECISION_FP32;
    return true;
}

TEST(step_graph_scales_the_loss)
{
    ot_err err;
    ot_err_init(&err);
    bool exact;
    if (!step_env(&exact))
        return;
    ot_graph *model = NULL;
    ot_model_spec spec = { .name = "resnet18", .classes = 3, .image_size = SIDE, .seed = 11 };
    CHECK_OK(ot_model_build(&spec, &model, &err), &err);
    static const char *const trained[] = { "fc.weight", "fc.bias", "layer4.1.bn2.weight",
                                           "layer4.1.bn2.bias", "layer4.1.conv2.weight" };
    for (int i = 0; i < 5; i++) {
        int32_t v = ot_graph_find_value(model, trained[i]);
        CHECK(v >= 0);
        model->values[v].flags |= OT_VAL_TRAINABLE;
    }
    static float x[BATCH * 3 * SIDE * SIDE];
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
        x[i] = (float)((i * 104729) % 251) / 251.0f - 0.5f;
    ot_optim_opts adam = ot_optim_opts_default(OT_OPTIM_ADAM);
    ot_train_graph_opts go = { .optim = &adam };
    step_run plain, scaled, over;
    memset(&scaled, 0, sizeof scaled);
    memset(&over, 0, sizeof over);
    CHECK_OK(run_new(model, &go, x, BATCH, NULL, NULL, &plain, &err), &err);
    go.loss_scaling = true;
    CHECK_OK(run_new(model, &go, x, BATCH, NULL, NULL, &scaled, &err), &err);
    CHECK_OK(run_new(model, &go, x, BATCH, NULL, NULL, &over, &err), &err);
    if (err.code != OT_OK)
        goto done;
    const ot_train_graph *tg = &scaled.tg;
    CHECK(tg->loss_scale >= 0 && plain.tg.loss_scale < 0);
    CHECK_EQ_INT(tg->step->n_outputs, 3); /* loss, logits, the scaled gradients' norm */
    CHECK_EQ_INT(plain.tg.step->n_outputs, 2);
    CHECK_EQ_INT(count_op(tg->step, OT_OP_GRAD_SUM_SQUARES), tg->n_params);
    for (int64_t t = 1; t <= 2; t++) {
        plain.t = scaled.t = t;
        CHECK_OK(ot_exec_run(plain.step, plain.in, plain.n_in, &err), &err);
        CHECK_OK(ot_exec_run(scaled.step, scaled.in, scaled.n_in, &err), &err);
        float lp, ls, norm;
        memcpy(&lp, ot_exec_output(plain.step, 0)->data, sizeof lp);
        memcpy(&ls, ot_exec_output(scaled.step, 0)->data, sizeof ls);
        memcpy(&norm, ot_exec_output(scaled.step, 2)->data, sizeof norm);
        CHECK(lp == ls); /* the loss output is not scaled */
        CHECK(isfinite(norm) && norm > 0.0f);
    }
    over.scale = 3e38f; /* loss * scale overflows: every gradient is inf or NaN */
    CHECK_OK(ot_exec_run(over.step, over.in, over.n_in, &err), &err);
    float norm;
    memcpy(&norm, ot_exec_output(over.step, 2)->data, sizeof norm);
    CHECK(!isfinite(norm));
    for (int p = 0; p < tg->n_params; p++) {
        const ot_value *v = &model->values[tg->params[p]];
        size_t bytes = v->data.bytes;
        float *a = read_state(&plain, tg->params[p], bytes);
        float *b = read_state(&scaled, tg->params[p], bytes);
        float *c = read_state(&over, tg->params[p], bytes);
        float *m = read_state(&over, over.tg.optim.bufs[p], bytes);
        float *v2 = read_state(&over, over.tg.optim.bufs[tg->n_params + p], bytes);
        float *ma = read_state(&plain, plain.tg.optim.bufs[p], bytes);
        float *mb = read_state(&scaled, tg->optim.bufs[p], bytes);
        bool ok = a && b && c && m && v2 && ma && mb;
        CHECK(ok);
        if (ok) {
            if (exact) {
                CHECK(memcmp(a, b, bytes) == 0); /* scaled step == plain step */
                CHECK(memcmp(ma, mb, bytes) == 0);
            } else {
                CHECK(!ot_loss_scaler_nonfinite(b, bytes / sizeof(float)));
            }
            CHECK(memcmp(b, v->data.data, bytes) != 0); /* and it moved */
            CHECK(memcmp(c, v->data.data, bytes) == 0); /* the overflow: skipped */
            bool zero = true;
            for (size_t j = 0; j < bytes / sizeof(float); j++)
                zero = zero && m[j] == 0.0f && v2[j] == 0.0f;
            CHECK(zero);
        }
        free(a), free(b), free(c), free(m), free(v2), free(ma), free(mb);
    }
done:
    step_device = (ot_device){ 0 };
    step_precision = OT_PRECISION_FP32;
    run_free(&plain);
    run_free(&scaled);
    run_free(&over);
    ot_graph_free(model);
}

/* --clip-grad with dynamic loss scaling: the clipping sees the unscaled
   gradients, as PyTorch's GradScaler.unscale_ before clip_grad_norm_. One
   chain of squared norms and one ClipGradCoef taking the scale; at a power
   of two scale, two Adam steps end bit for bit where the unscaled clipped
   steps end (parameters, moments, and the norm output, the unscaled
   gradients' norm), with a max_norm that clips and with one that does not;
   at a scale that overflows the step is skipped before clipping (the
   parameters keep their values, the moments stay zero, the norm is not
   finite). OT_TEST_DEVICE=cuda OT_TEST_PRECISION=fp16 (tests/gpu/check.sh,
   fp16_clip_grad) runs it there: the norm is then the unscaled one within
   5% (fp16 rounds the scaled and the unscaled gradients differently; a
   clipping of the scaled gradients would be 65536 times off), the
   parameters move to finite values, and the overflow skips as here. */
TEST(step_graph_clips_unscaled_gradients)
{
    ot_err err;
    ot_err_init(&err);
    bool exact;
    if (!step_env(&exact))
        return;
    ot_graph *model = NULL;
    ot_model_spec spec = { .name = "resnet18", .classes = 3, .image_size = SIDE, .seed = 13 };
    CHECK_OK(ot_model_build(&spec, &model, &err), &err);
    static const char *const trained[] = { "fc.weight", "fc.bias", "layer4.1.bn2.weight",
                                           "layer4.1.bn2.bias", "layer4.1.conv2.weight" };
    for (int i = 0; i < 5; i++) {
        int32_t v = ot_graph_find_value(model, trained[i]);
        CHECK(v >= 0);
        model->values[v].flags |= OT_VAL_TRAINABLE;
    }
    static float x[BATCH * 3 * SIDE * SIDE];
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
        x[i] = (float)((i * 7877) % 253) / 253.0f - 0.5f;
    ot_optim_opts adam = ot_optim_opts_default(OT_OPTIM_ADAM);
    /* max_norm 1e-4 clips both steps; 1e6 never does (only the unscaling) */
    const double max_norm[2] = { 1e-4, 1e6 };
    for (int c = 0; c < 2; c++) {
        ot_train_graph_opts go = { .optim = &adam, .clip_grad = max_norm[c] };
        step_run plain, scaled, over;
        memset(&scaled, 0, sizeof scaled);
        memset(&over, 0, sizeof over);
        if (run_new(model, &go, x, BATCH, NULL, NULL, &plain, &err) != OT_OK) {
            ot_test_fail(__FILE__, __LINE__, "clipped step: %s", err.msg);
            run_free(&plain);
            break;
        }
        go.loss_scaling = true;
        if (run_new(model, &go, x, BATCH, NULL, NULL, &scaled, &err) != OT_OK ||
            run_new(model, &go, x, BATCH, NULL, NULL, &over, &err) != OT_OK) {
            ot_test_fail(__FILE__, __LINE__, "clipped step with loss scaling: %s", err.msg);
            run_free(&plain);
            run_free(&scaled);
            run_free(&over);
            break;
        }
        const ot_train_graph *tg = &scaled.tg;
        CHECK_EQ_INT(count_op(tg->step, OT_OP_GRAD_SUM_SQUARES), tg->n_params);
        CHECK_EQ_INT(count_op(tg->step, OT_OP_CLIP_GRAD_COEF), 1);
        CHECK_EQ_INT(tg->step->n_outputs, 3);
        for (int64_t t = 1; t <= 2; t++) {
            plain.t = scaled.t = t;
            CHECK_OK(ot_exec_run(plain.step, plain.in, plain.n_in, &err), &err);
            CHECK_OK(ot_exec_run(scaled.step, scaled.in, scaled.n_in, &err), &err);
            float np, ns;
            memcpy(&np, ot_exec_output(plain.step, 2)->data, sizeof np);
            memcpy(&ns, ot_exec_output(scaled.step, 2)->data, sizeof ns);
            CHECK(isfinite(np) && np > 0.0f);
            if (c == 0 && !(np > 1e-4f)) /* the clip bites */
                ot_test_fail(__FILE__, __LINE__, "step %lld: norm %g", (long long)t, (double)np);
            if (exact)
                CHECK(np == ns);
            else if (!(fabsf(ns - np) <= 0.05f * np))
                ot_test_fail(__FILE__, __LINE__, "norm with loss scaling %g, without %g",
                             (double)ns, (double)np);
        }
        over.scale = 3e38f; /* every gradient inf or NaN */
        CHECK_OK(ot_exec_run(over.step, over.in, over.n_in, &err), &err);
        float norm;
        memcpy(&norm, ot_exec_output(over.step, 2)->data, sizeof norm);
        CHECK(!isfinite(norm));
        for (int p = 0; p < tg->n_params; p++) {
            const ot_value *v = &model->values[tg->params[p]];
            size_t bytes = v->data.bytes;
            float *a = read_state(&plain, tg->params[p], bytes);
            float *b = read_state(&scaled, tg->params[p], bytes);
            float *o = read_state(&over, tg->params[p], bytes);
            float *ma = read_state(&plain, plain.tg.optim.bufs[p], bytes);
            float *mb = read_state(&scaled, tg->optim.bufs[p], bytes);
            float *mo = read_state(&over, over.tg.optim.bufs[p], bytes);
            bool ok = a && b && o && ma && mb && mo;
            CHECK(ok);
            if (ok) {
                if (exact) {
                    CHECK(memcmp(a, b, bytes) == 0);
                    CHECK(memcmp(ma, mb, bytes) == 0);
                } else {
                    CHECK(!ot_loss_scaler_nonfinite(b, bytes / sizeof(float)));
                }
                CHECK(memcmp(b, v->data.data, bytes) != 0);
                CHECK(memcmp(o, v->data.data, bytes) == 0);
                bool zero = true;
                for (size_t j = 0; j < bytes / sizeof(float); j++)
                    zero = zero && mo[j] == 0.0f;
                CHECK(zero);
            }
            free(a), free(b), free(o), free(ma), free(mb), free(mo);
        }
        run_free(&plain);
        run_free(&scaled);
        run_free(&over);
    }
    step_device = (ot_device){ 0 };
    step_precision = OT_PRECISION_FP32;
    ot_graph_free(model);
}
