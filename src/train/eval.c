/*
 * eval.c: scores a model on a dataset: top-1, top-5, mean cross-entropy and
 * the confusion matrix, from the logits (the input of a trailing Softmax).
 * Data-parallel (ot_eval_run_ranks): each rank scores its contiguous share
 * of the images and the counts are summed over the ranks.
 */
#include <stdlib.h>
#include <string.h>

#include "dist/dist.h"
#include "exec/exec.h"
#include "passes/autodiff.h"
#include "train/layout.h"
#include "train/loss.h"
#include "trainer.h"

void ot_eval_result_fini(ot_eval_result *res)
{
    ot_free(res->confusion);
    memset(res, 0, sizeof *res);
}

ot_status ot_eval_logits_graph(const ot_graph *model, int32_t *image, ot_graph **out, ot_err *err)
{
    ot_status st = OT_OK;
    ot_graph *g = NULL;
    bool *keep = NULL;
    int32_t logits = ot_train_find_logits(model);
    *image = -1;
    for (int32_t i = 0; i < model->n_inputs && *image < 0; i++)
        if (!(model->values[model->inputs[i].value].flags & OT_VAL_INIT))
            *image = model->inputs[i].value;
    if (logits < 0 || *image < 0)
        return ot_err_set(err, OT_ERR_ARG, "the model has no image input or no output");
    OT_TRY(ot_graph_clone(model, &g, err));
    ot_train_free_image_size(g, *image);
    OT_TRY(ot_pass_logits_2d(g, logits, &logits, err)); /* [N, C, 1, 1]: its (N, C) view */
    ot_io *io = ot_arena_alloc(&g->arena, sizeof *io);
    keep = ot_calloc((size_t)g->n_nodes + 1, sizeof *keep);
    if (!io || !keep)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    io->value = logits;
    io->info = (ot_blob){ 0 };
    g->outputs = io;
    g->n_outputs = 1;
    g->values[logits].flags |= OT_VAL_OUTPUT;
    ot_graph_mark_ancestors(g, &logits, 1, keep);
    OT_TRY(ot_graph_keep_nodes(g, keep, err));
    *out = g;
    g = NULL;
done:
    ot_free(keep);
    ot_graph_free(g);
    return st;
}

ot_status ot_eval_run(const ot_graph *model, const ot_dataset *data,
                      const ot_data_transform *transform, int batch_size,
                      const ot_exec_opts *xo, ot_eval_result *res, ot_err *err)
{
    return ot_eval_run_subset(model, data, NULL, 0, transform, batch_size, xo, res, err);
}

ot_status ot_eval_run_subset(const ot_graph *model, const ot_dataset *data, const int64_t *sub,
                             int64_t n_sub, const ot_data_transform *transform, int batch_size,
                             const ot_exec_opts *xo, ot_eval_result *res, ot_err *err)
{
    return ot_eval_run_ranks(model, data, sub, n_sub, transform, batch_size, xo, NULL, res, err);
}

/* Sums the counts of every rank's share (loss_sum, top1, top5, then the
   confusion matrix) into *loss_sum, *top1, *top5 and res->confusion. */
static ot_status reduce_counts(ot_comm *comm, ot_eval_result *res, double *loss_sum,
                               int64_t *top1, int64_t *top5, ot_err *err)
{
    size_t nc = (size_t)res->n_classes * (size_t)res->n_classes;
    double *v = ot_malloc((nc + 3) * sizeof *v);
    if (!v)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    v[0] = *loss_sum;
    v[1] = (double)*top1;
    v[2] = (double)*top5;
    for (size_t i = 0; i < nc; i++)
        v[3 + i] = (double)res->confusion[i];
    ot_status st = ot_comm_allreduce_f64(comm, v, nc + 3, err);
    if (st == OT_OK) {
        *loss_sum = v[0];
        *top1 = (int64_t)v[1];
        *top5 = (int64_t)v[2];
        for (size_t i = 0; i < nc; i++)
            res->confusion[i] = (int64_t)v[3 + i];
    }
    ot_free(v);
    return st;
}

ot_status ot_eval_run_ranks(const ot_graph *model, const ot_dataset *data, const int64_t *sub,
                            int64_t n_sub, const ot_data_transform *transform, int batch_size,
                            const ot_exec_opts *xo, ot_comm *comm, ot_eval_result *res,
                            ot_err *err)
{
    ot_status st = OT_OK;
    ot_graph *g = NULL;
    ot_exec *full = NULL, *last = NULL;
    float *x = NULL, *xt = NULL;
    int64_t *labels = NULL, *idx = NULL;
    void *scratch = NULL;
    memset(res, 0, sizeof *res);
    int64_t N = sub ? n_sub : ot_data_count(data);
    if (N < 1 || batch_size < 1)
        return ot_err_set(err, OT_ERR_ARG, "nothing to evaluate");
    if (comm && comm->size < 2)
        comm = NULL;
    /* this rank's images: [first, first + mine) of the N */
    int64_t first = 0, mine = comm ? ot_dist_share(N, comm->rank, comm->size, &first) : N;
    int32_t image;
    OT_TRY(ot_eval_logits_graph(model, &image, &g, err));
    ot_image_layout lay = ot_image_layout_find(model, image);
    int C = ot_image_channels(g, image, &lay, 3), S = transform->size;
    int h, w, ch;
    ot_data_shape(data, &h, &w, &ch);
    if (ot_data_out_channels(transform, ch) != C)
        OT_FAIL(err, OT_ERR_ARG, "the model takes %d channels, the data gives %d", C,
                ot_data_out_channels(transform, ch));
    int bs = batch_size > N ? (int)N : batch_size;
    if (comm && bs > mine)
        bs = mine > 0 ? (int)mine : 1;
    size_t img_floats = (size_t)C * (size_t)S * (size_t)S;
    size_t scratch_bytes = ot_data_batch_scratch_bytes(data, transform);
    x = ot_malloc(img_floats * sizeof *x * (size_t)bs);
    if (lay.nhwc && !(xt = ot_malloc(img_floats * sizeof *x * (size_t)bs)))
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    labels = ot_calloc((size_t)bs, sizeof *labels);
    idx = ot_calloc((size_t)bs, sizeof *idx);
    scratch = ot_malloc(scratch_bytes ? scratch_bytes : 1);
    res->n_classes = ot_data_n_classes(data);
    res->confusion = ot_calloc((size_t)res->n_classes * (size_t)res->n_classes + 1,
                               sizeof *res->confusion);
    if (!x || !labels || !idx || !scratch || !res->confusion)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    ot_exec_opts eo = { 0 };
    if (xo) {
        eo.device = xo->device;
        eo.precision = xo->precision;
        eo.cpu = xo->cpu;
    }
    double loss_sum = 0;
    int64_t top1 = 0, top5 = 0;
    for (int64_t start = first; start < first + mine; start += bs) {
        int n = (int)(first + mine - start < bs ? first + mine - start : bs);
        ot_exec **xp = n == bs ? &full : &last;
        ot_tensor in = ot_image_tensor(&lay, n, C, S, NULL);
        if (!*xp) {
            ot_exec_input b = { .value = image, .tensor = in };
            b.tensor.data = NULL;
            OT_TRY(ot_exec_compile(g, &b, 1, &eo, xp, err));
        }
        for (int i = 0; i < n; i++)
            idx[i] = sub ? sub[start + i] : start + i;
        OT_TRY(ot_data_load_batch(data, idx, n, transform, x, labels, scratch, scratch_bytes, err));
        in.data = ot_image_batch(&lay, x, xt, n, C, S);
        OT_TRY(ot_exec_run(*xp, &in, 1, err));
        const ot_tensor *y = ot_exec_output(*xp, 0);
        int64_t K = y->ndim >= 2 ? y->dims[y->ndim - 1] : 0;
        if (y->dtype != OT_DTYPE_FLOAT || K < 1 || ot_tensor_numel(y) != (int64_t)n * K)
            OT_FAIL(err, OT_ERR_SHAPE, "the model's output is not [N, classes] float");
        if (K < res->n_classes)
            OT_FAIL(err, OT_ERR_ARG, "the model has %lld outputs, the data set %d classes",
                    (long long)K, res->n_classes);
        const float *lg = y->data;
        float loss;
        OT_TRY(ot_loss_xent_forward(lg, labels, n, K, 0.0f, &loss, NULL, err));
        loss_sum += (double)loss * n;
        for (int i = 0; i < n; i++) {
            const float *r = lg + (size_t)i * (size_t)K;
            int64_t best = 0, rank = 0;
            for (int64_t k = 1; k < K; k++)
                if (r[k] > r[best])
                    best = k;
            for (int64_t k = 0; k < K; k++)
                if (r[k] > r[labels[i]])
                    rank++;
            top1 += best == labels[i];
            top5 += rank < 5;
            if (best < res->n_classes)
                res->confusion[labels[i] * res->n_classes + best]++;
        }
    }
    if (comm)
        OT_TRY(reduce_counts(comm, res, &loss_sum, &top1, &top5, err));
    res->n = N;
    res->top1 = (double)top1 / (double)N;
    res->top5 = (double)top5 / (double)N;
    res->loss = loss_sum / (double)N;
done:
    ot_exec_free(full);
    ot_exec_free(last);
    ot_graph_free(g);
    ot_free(x);
    ot_free(xt);
    ot_free(scratch);
    ot_free(labels);
    ot_free(idx);
    if (st != OT_OK)
        ot_eval_result_fini(res);
    return st;
}
