/*
 * train_graph.c: the prefix and step graphs of a training run (see
 * train_graph.h), the BN policy, and the frozen-prefix cut.
 *
 * The cut: a node is "trained" when it reads a trained parameter, is a
 * training-mode BatchNorm, or reads a value a trained node produced. Every
 * other node is in the frozen prefix. The cut values are the prefix's values
 * that trained nodes read. Only trained nodes get backward nodes (autodiff
 * differentiates from the loss back to the parameters), and the prefix keeps
 * no activations for backward: it is a separate graph.
 */
#include <stdio.h>
#include <string.h>

#include "ops/grad_util.h"
#include "ops/ops.h"
#include "passes/autodiff.h"
#include "passes/freeze.h"
#include "train/layout.h"
#include "train_graph.h"

static const ot_op_desc *find_private(const char *type)
{
    for (int i = 0; i < OT_OP_COUNT_; i++) {
        const ot_op_desc *d = ot_op_table[i];
        if (d && !strcmp(d->type, type) && strcmp(d->domain, "") != 0)
            return d;
    }
    return NULL;
}

static bool reads_trained(const ot_graph *g, const ot_node *n)
{
    for (int k = 0; k < n->n_in; k++) {
        int32_t s = n->in[k] >= 0 ? ot_pass_source_init(g, n->in[k]) : -1;
        if (s >= 0 && (g->values[s].flags & OT_VAL_TRAINABLE))
            return true;
    }
    return false;
}

static bool is_bn(const ot_node *n)
{
    return n->op && !strcmp(n->op_type, "BatchNormalization") && ot_domain_is_default(n->domain);
}

int32_t ot_train_find_logits(const ot_graph *g)
{
    if (g->n_outputs < 1)
        return -1;
    int32_t v = g->outputs[0].value;
    int32_t p = g->values[v].producer;
    if (p >= 0) {
        const ot_node *n = &g->nodes[p];
        if ((!strcmp(n->op_type, "Softmax") || !strcmp(n->op_type, "LogSoftmax")) && n->n_in > 0)
            return n->in[0];
    }
    return v;
}

static ot_status new_value(ot_graph *g, const char *base, const char *suffix, int32_t *id,
                           ot_err *err)
{
    char name[512];
    snprintf(name, sizeof name, "%s%s", base, suffix);
    for (int k = 1; ot_graph_find_value(g, name) >= 0 && k < 1000; k++)
        snprintf(name, sizeof name, "%s%s_%d", base, suffix, k);
    return ot_graph_intern_value(g, name, id, err);
}

/* The error for a BatchNorm in the trained part whose running statistic
   (input k: 3 mean, 4 variance) is not a float initializer: training updates
   the statistics in place, so they must be stored tensors. Says what the
   input is instead, and the ways out. */
static ot_status stats_not_stored(const ot_graph *g, const ot_node *n, int k, ot_err *err)
{
    char label[400], what[700];
    const char *stat = k == 3 ? "running mean" : "running variance";
    int32_t id = n->in[k];
    const ot_value *v = id >= 0 ? &g->values[id] : NULL;
    const char *name = v && v->name ? v->name : "";
    if (!v)
        snprintf(what, sizeof what, "its %s (input %d) is omitted", stat, k);
    else if (v->flags & OT_VAL_INIT)
        snprintf(what, sizeof what, "its %s '%s' is a %s initializer, not float", stat, name,
                 ot_dtype_name(v->dtype));
    else if (v->producer >= 0) {
        char plabel[400];
        snprintf(what, sizeof what, "its %s '%s' is computed by %s, not stored as a float "
                 "initializer", stat, name,
                 ot_node_label(g, &g->nodes[v->producer], plabel, sizeof plabel));
    } else
        snprintf(what, sizeof what, "its %s '%s' is a graph input, not stored as a float "
                 "initializer", stat, name);
    return ot_err_set(err, OT_ERR_UNSUPPORTED,
                      "%s: %s, so training cannot update it (the statistics of a trained "
                      "BatchNorm are model tensors updated in place); re-export the model in "
                      "eval mode (torch.onnx.export with training=TrainingMode.EVAL, the default, "
                      "and do_constant_folding=True) or keep this BatchNorm frozen "
                      "(--mode feature-extract, or --freeze-until a node after it)",
                      ot_node_label(g, n, label, sizeof label), what);
}

/* Replaces BN node i of the step graph by BatchNormTrain and records its
   running statistics. */
static ot_status bn_to_train(ot_graph *g, int32_t i, ot_train_graph *tg, ot_err *err)
{
    ot_status st = OT_OK;
    char label[400];
    const ot_op_desc *d = find_private("BatchNormTrain");
    if (!d)
        return ot_err_set(err, OT_ERR_INTERNAL, "the op table has no BatchNormTrain");
    ot_node *n = &g->nodes[i];
    if (n->n_in != 5)
        return ot_err_set(err, OT_ERR_MODEL, "%s: expected 5 inputs",
                          ot_node_label(g, n, label, sizeof label));
    for (int k = 3; k < 5; k++)
        if (n->in[k] < 0 || !(g->values[n->in[k]].flags & OT_VAL_INIT) ||
            g->values[n->in[k]].dtype != OT_DTYPE_FLOAT)
            return stats_not_stored(g, n, k, err);
    float eps = ot_node_attr_float(n, "epsilon", 1e-5f);
    float momentum = ot_node_attr_float(n, "momentum", 0.9f);
    int32_t *out = ot_arena_alloc(&g->arena, sizeof *out * 5);
    ot_attr *attrs = ot_arena_alloc(&g->arena, sizeof *attrs * 2);
    if (!out || !attrs)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    const char *base = g->values[n->out[0]].name;
    out[0] = n->out[0];
    static const char *const sfx[4] = { "/running_mean_new", "/running_var_new", "/saved_mean",
                                        "/saved_inv_std" };
    for (int k = 0; k < 4; k++) {
        OT_TRY(new_value(g, base, sfx[k], &out[k + 1], err));
        n = &g->nodes[i];
    }
    attrs[0] = (ot_attr){ .name = "epsilon", .type = OT_ATTR_FLOAT, .f = eps };
    attrs[1] = (ot_attr){ .name = "momentum", .type = OT_ATTR_FLOAT, .f = momentum };
    n->op = d;
    n->op_type = d->type;
    n->domain = d->domain;
    n->opset = 1;
    n->out = out;
    n->n_out = 5;
    n->attrs = attrs;
    n->n_attrs = 2;
    n->flags = OT_NODE_DIRTY;
    for (int k = 0; k < 2; k++) {
        int32_t s = n->in[3 + k];
        g->values[s].flags |= OT_VAL_STATE;
        tg->stats[tg->n_stats] = s;
        tg->stats_new[tg->n_stats] = out[1 + k];
        tg->n_stats++;
    }
done:
    return st;
}

static bool is_dropout(const ot_node *n)
{
    return n->op && !strcmp(n->op_type, "Dropout") && ot_domain_is_default(n->domain);
}

/* Replaces Dropout node i of the step graph by DropoutTrain (a random mask
   per step, drawn from the step graph's seed input). */
static ot_status dropout_to_train(ot_graph *g, int32_t i, int32_t *seed, ot_err *err)
{
    ot_status st = OT_OK;
    char label[400];
    ot_node *n = &g->nodes[i];
    float ratio = 0.5f;
    if (n->opset < 12) {
        ratio = ot_node_attr_float(n, "ratio", 0.5f);
    } else if (n->n_in > 1 && n->in[1] >= 0) {
        const ot_tensor *t = ot_graph_const(g, n->in[1]);
        if (!t || ot_tensor_numel(t) != 1)
            return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s: the ratio must be a constant to train",
                              ot_node_label(g, n, label, sizeof label));
        ratio = (float)ot_tensor_get_f64(t, 0);
    }
    if (*seed < 0) {
        OT_TRY(ot_graph_intern_value(g, "onnxtrain/dropout_seed", seed, err));
        ot_value *s = &g->values[*seed];
        s->dtype = OT_DTYPE_INT64;
        s->ndim = 0;
        s->flags |= OT_VAL_SHAPE_DECLARED;
        n = &g->nodes[i];
    }
    int32_t *in = ot_arena_alloc(&g->arena, sizeof *in * 2);
    int32_t *out = ot_arena_alloc(&g->arena, sizeof *out * 2);
    ot_attr *attrs = ot_arena_alloc(&g->arena, sizeof *attrs * 2);
    if (!in || !out || !attrs)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    in[0] = n->in[0];
    in[1] = *seed;
    out[0] = n->out[0];
    out[1] = n->n_out > 1 ? n->out[1] : -1;
    if (out[1] < 0) {
        OT_TRY(new_value(g, g->values[n->out[0]].name, "/mask", &out[1], err));
        n = &g->nodes[i];
    }
    attrs[0] = (ot_attr){ .name = "ratio", .type = OT_ATTR_FLOAT, .f = ratio };
    attrs[1] = (ot_attr){ .name = "salt", .type = OT_ATTR_INT, .i = i };
    n->op = ot_op_table[OT_OP_DROPOUT_TRAIN];
    n->op_type = n->op->type;
    n->domain = n->op->domain;
    n->opset = 1;
    n->in = in;
    n->n_in = 2;
    n->out = out;
    n->n_out = 2;
    n->attrs = attrs;
    n->n_attrs = 2;
    n->flags = OT_NODE_DIRTY;
done:
    return st;
}

void ot_train_free_image_size(ot_graph *g, int32_t image)
{
    ot_image_layout l = ot_image_layout_find(g, image);
    ot_value *v = &g->values[image];
    for (int d = 0; d < v->ndim; d++)
        if (d != l.c) { /* batch and spatial dims: the run chooses them */
            v->dims[d] = OT_DIM_DYNAMIC;
            v->dim_names[d] = d == 0 ? "N" : NULL;
        }
    for (int32_t i = 0; i < g->n_values; i++)
        if (!(g->values[i].flags & (OT_VAL_INIT | OT_VAL_INPUT)))
            g->values[i].flags &= ~(uint32_t)OT_VAL_SHAPE_DECLARED;
}

/* Sets a graph's outputs to `ids` (arena memory). */
static ot_status set_outputs(ot_graph *g, const int32_t *ids, int n, ot_err *err)
{
    ot_io *io = ot_arena_alloc(&g->arena, sizeof *io * (size_t)(n ? n : 1));
    if (!io)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < g->n_outputs; i++)
        g->values[g->outputs[i].value].flags &= ~(uint32_t)OT_VAL_OUTPUT;
    for (int i = 0; i < n; i++) {
        io[i].value = ids[i];
        io[i].info = (ot_blob){ 0 };
        g->values[ids[i]].flags |= OT_VAL_OUTPUT;
    }
    g->outputs = io;
    g->n_outputs = n;
    return OT_OK;
}

static ot_status set_inputs(ot_graph *g, const int32_t *ids, int n, ot_err *err)
{
    ot_io *io = ot_arena_alloc(&g->arena, sizeof *io * (size_t)(n ? n : 1));
    if (!io)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < g->n_inputs; i++)
        g->values[g->inputs[i].value].flags &= ~(uint32_t)OT_VAL_INPUT;
    for (int i = 0; i < n; i++) {
        io[i].value = ids[i];
        io[i].info = (ot_blob){ 0 };
        g->values[ids[i]].flags |= OT_VAL_INPUT;
        g->values[ids[i]].flags &= ~(uint32_t)OT_VAL_CONST;
    }
    g->inputs = io;
    g->n_inputs = n;
    return OT_OK;
}

/* Moves node `from` (> to) to position `to`, the nodes in between one
   further; producers follow. */
static void move_node(ot_graph *g, int32_t from, int32_t to)
{
    ot_node n = g->nodes[from];
    memmove(&g->nodes[to + 1], &g->nodes[to], sizeof n * (size_t)(from - to));
    g->nodes[to] = n;
    for (int32_t i = to; i <= from; i++)
        for (int o = 0; o < g->nodes[i].n_out; o++)
            if (g->nodes[i].out[o] >= 0)
                g->values[g->nodes[i].out[o]].producer = i;
}

/* Data-parallel training: GradAllReduce nodes over the gradients in the
   order the backward pass produces them (the order of their producing
   nodes), one per bucket of about `bytes`; red[i] becomes the reduced
   gradient of parameter i. The schedule is fixed here, from the trained
   parameters only, so every rank runs the same reductions in the same
   order. With `overlap`, each bucket is a pair: a start (phase=1) placed
   right after the node that completes the bucket, so that its reduction
   runs during the rest of the backward pass, and a wait (phase=2) where the
   single node would be, before the updates. Bucket b sits at
   offset[b] floats in the communicator's buffer (tg->stage_numel in all). */
static ot_status add_all_reduce(ot_graph *g, ot_train_graph *tg, size_t bytes, bool overlap,
                                int32_t *red, ot_err *err)
{
    ot_status st = OT_OK;
    int n = tg->n_params;
    int *order = ot_calloc((size_t)n + 1, sizeof *order);
    int32_t *prod = ot_calloc((size_t)n + 1, sizeof *prod);
    int32_t *in = ot_calloc((size_t)n + 2, sizeof *in), *out = ot_calloc((size_t)n + 1, sizeof *out);
    const char **names = ot_calloc((size_t)n + 1, sizeof *names);
    /* per bucket: its start node and the node after which it runs */
    int32_t *start = ot_calloc((size_t)n + 1, sizeof *start);
    int32_t *after = ot_calloc((size_t)n + 1, sizeof *after);
    int n_pairs = 0;
    if (!order || !prod || !in || !out || !names || !start || !after)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        prod[i] = -1;
        for (int32_t k = g->n_nodes - 1; k >= 0 && prod[i] < 0; k--)
            for (int o = 0; o < g->nodes[k].n_out; o++)
                if (g->nodes[k].out[o] == tg->grads[i])
                    prod[i] = k;
        order[i] = i;
    }
    for (int i = 1; i < n; i++) { /* stable insertion sort by producer */
        int v = order[i], j = i;
        while (j > 0 && prod[order[j - 1]] > prod[v]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = v;
    }
    for (int i = 0; i < n;) {
        int k = 0;
        size_t b = 0;
        /* shape inference takes at most 16 outputs a node */
        while (i + k < n && k < 16 && (k == 0 || b < bytes)) {
            int p = order[i + k];
            in[k + 1] = tg->grads[p];
            names[k] = "allreduce/grad";
            b += g->values[tg->params[p]].data.bytes;
            k++;
        }
        char name[64];
        ot_attr a[2] = { ot_op_grad_attr_int("phase", overlap ? 2 : 0),
                         ot_op_grad_attr_int("offset", (int64_t)tg->stage_numel) };
        snprintf(name, sizeof name, "allreduce/bucket%d", tg->n_buckets);
        if (overlap) {
            char sname[80];
            snprintf(sname, sizeof sname, "%s/start", name);
            ot_attr sa[2] = { ot_op_grad_attr_int("phase", 1), a[1] };
            const char *tname = "allreduce/token";
            start[n_pairs] = g->n_nodes;
            after[n_pairs] = prod[order[i + k - 1]];
            n_pairs++;
            OT_TRY(ot_op_grad_emit(g, ot_op_table[OT_OP_GRAD_ALL_REDUCE], 0, sname, in + 1, k, sa,
                                   2, &tname, in, 1, err));
        }
        OT_TRY(ot_op_grad_emit(g, ot_op_table[OT_OP_GRAD_ALL_REDUCE], 0, name,
                               overlap ? in : in + 1, overlap ? k + 1 : k, a, 2, names, out, k,
                               err));
        for (int j = 0; j < k; j++)
            red[order[i + j]] = out[j];
        if (b / sizeof(float) > tg->max_bucket_numel)
            tg->max_bucket_numel = b / sizeof(float);
        tg->stage_numel += b / sizeof(float);
        tg->n_buckets++;
        i += k;
    }
    /* each start right after the node that completes its bucket (in bucket
       order, which is the order of those nodes) */
    for (int p = 0; p < n_pairs; p++) {
        int32_t to = after[p] + 1;
        if (to < start[p]) {
            move_node(g, start[p], to);
            for (int q = p + 1; q < n_pairs; q++)
                if (after[q] >= to)
                    after[q]++;
        }
    }
done:
    ot_free(order);
    ot_free(prod);
    ot_free(in);
    ot_free(out);
    ot_free(names);
    ot_free(start);
    ot_free(after);
    return st;
}

/* --sync-bn: every training-mode BatchNormTrain and BatchNormGrad gets
   sync=1, so that its kernel reduces the batch statistics (and, backward,
   their gradients' sums) over the ranks. */
static ot_status mark_sync_bn(ot_graph *g, ot_train_graph *tg, ot_err *err)
{
    for (int32_t k = 0; k < g->n_nodes; k++) {
        ot_node *n = &g->nodes[k];
        bool fwd = ot_node_is(n, OT_OP_BATCHNORM_TRAIN);
        if (!fwd && !(ot_node_is(n, OT_OP_BATCHNORM_GRAD) &&
                      ot_node_attr_int(n, "training_mode", 1) != 0))
            continue;
        ot_attr *a = ot_arena_alloc(&g->arena, sizeof *a * ((size_t)n->n_attrs + 1));
        if (!a)
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
        int m = 0;
        for (int i = 0; i < n->n_attrs; i++)
            if (strcmp(n->attrs[i].name, "sync") != 0)
                a[m++] = n->attrs[i];
        a[m++] = ot_op_grad_attr_int("sync", 1);
        n->attrs = a;
        n->n_attrs = m;
        const ot_value *x = &g->values[n->in[fwd ? 0 : 1]];
        if (x->ndim >= 2 && x->dims[1] > tg->max_bn_channels)
            tg->max_bn_channels = x->dims[1];
    }
    return OT_OK;
}


/*
 * Shape arithmetic on the image's own shape (ViT's x.reshape(n, hidden, -1)
 * with n = x.shape[0]) that the step reads is computed in the step when the
 * step reads the image anyway (full mode): with the batch dynamic while the
 * graphs are built, such a vector is not a constant that could become step
 * data, and it would cross the cut as an input the step cannot see at
 * compile time. A node moves when it is not trained, its outputs are not
 * float, and it reads only constants, shape-only values and (Shape) the
 * image.
 */
static ot_status shape_chains_to_step(const ot_graph *step, int32_t image, bool *trained,
                                      ot_err *err)
{
    bool image_in_step = false;
    for (int32_t i = 0; i < step->n_nodes && !image_in_step; i++)
        for (int k = 0; trained[i] && k < step->nodes[i].n_in; k++)
            image_in_step |= step->nodes[i].in[k] == image;
    if (!image_in_step)
        return OT_OK;
    bool *shape_only = ot_calloc((size_t)step->n_nodes + 1, sizeof *shape_only);
    if (!shape_only)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < step->n_nodes; i++) {
        const ot_node *n = &step->nodes[i];
        bool ok = !trained[i] && n->op && n->n_out > 0;
        for (int k = 0; ok && k < n->n_out; k++) {
            const ot_value *v = n->out[k] >= 0 ? &step->values[n->out[k]] : NULL;
            ok = !v || (v->dtype == OT_DTYPE_INT64 || v->dtype == OT_DTYPE_INT32 ||
                        v->dtype == OT_DTYPE_BOOL);
        }
        for (int k = 0; ok && k < n->n_in; k++) {
            int32_t v = n->in[k];
            if (v < 0 || (step->values[v].flags & OT_VAL_CONST))
                continue;
            int32_t p = step->values[v].producer;
            ok = (v == image && ot_node_is(n, OT_OP_SHAPE)) || (p >= 0 && shape_only[p]);
        }
        shape_only[i] = ok;
    }
    for (int32_t i = 0; i < step->n_nodes; i++)
        trained[i] |= shape_only[i];
    ot_free(shape_only);
    return OT_OK;
}
ot_status ot_train_graph_build(const ot_graph *model, const ot_train_graph_opts *opts,
                               ot_train_graph *tg, ot_err *err)
{
    ot_status st = OT_OK;
    ot_graph *step = NULL, *prefix = NULL;
    bool *trained = NULL, *keep = NULL;
    int32_t *outs = NULL, *reduced = NULL;
    memset(tg, 0, sizeof *tg);
    tg->image = tg->logits = tg->loss = tg->labels = tg->loss_scale = -1;
    tg->optim.lr[0] = tg->optim.lr[1] = tg->optim.step = tg->optim.grad_norm = -1;

    for (int32_t i = 0; i < model->n_inputs && tg->image < 0; i++)
        if (!(model->values[model->inputs[i].value].flags & OT_VAL_INIT))
            tg->image = model->inputs[i].value;
    if (tg->image < 0)
        OT_FAIL(err, OT_ERR_ARG, "the model has no image input");
    tg->logits = ot_train_find_logits(model);
    if (tg->logits < 0)
        OT_FAIL(err, OT_ERR_ARG, "the model has no output to train");

    OT_TRY(ot_graph_clone(model, &step, err));
    ot_train_free_image_size(step, tg->image);
    size_t nv = (size_t)step->n_values + 16, nn = (size_t)step->n_nodes + 1;
    tg->params = ot_calloc(nv, sizeof *tg->params);
    tg->grads = ot_calloc(nv, sizeof *tg->grads);
    tg->stats = ot_calloc(nv, sizeof *tg->stats);
    tg->stats_new = ot_calloc(nv, sizeof *tg->stats_new);
    tg->cut = ot_calloc(nv, sizeof *tg->cut);
    trained = ot_calloc(nn, sizeof *trained);
    keep = ot_calloc(nn, sizeof *keep);
    if (!tg->params || !tg->grads || !tg->stats || !tg->stats_new || !tg->cut || !trained || !keep)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");

    /* trained parameters become mutable state */
    for (int32_t v = 0; v < step->n_values; v++)
        if (step->values[v].flags & OT_VAL_TRAINABLE) {
            step->values[v].flags |= OT_VAL_STATE;
            tg->params[tg->n_params++] = v;
        }
    if (tg->n_params == 0)
        OT_FAIL(err, OT_ERR_ARG, "no parameter is trainable (check --mode, --train, --freeze)");

    /* BN policy, and which nodes are trained (in topological order) */
    int32_t n_nodes = step->n_nodes;
    for (int32_t i = 0; i < n_nodes; i++) {
        const ot_node *n = &step->nodes[i];
        bool t = reads_trained(step, n);
        for (int k = 0; k < n->n_in && !t; k++)
            if (n->in[k] >= 0 && step->values[n->in[k]].producer >= 0)
                t = trained[step->values[n->in[k]].producer];
        if (is_bn(n)) {
            bool train_mode = opts->bn_all_train || reads_trained(step, n);
            if (train_mode) {
                OT_TRY(bn_to_train(step, i, tg, err));
                tg->n_bn_train++;
                t = true;
            } else {
                tg->n_bn_eval++;
            }
        }
        trained[i] = t;
    }
    /* Dropout: active in training where it feeds the trained part (the
       classifier's Dropout in MobileNetV2 and SqueezeNet), or everywhere with
       --bn train (PyTorch's model.train()). An active Dropout joins the
       trained part, so the cut moves before it and the cache stays valid. */
    tg->seed = -1;
    {
        bool changed = false;
        for (int32_t i = 0; i < n_nodes; i++) {
            const ot_node *n = &step->nodes[i];
            if (!is_dropout(n) || n->n_out < 1 || n->out[0] < 0)
                continue;
            bool feeds = trained[i] || opts->bn_all_train;
            for (int32_t j = i + 1; j < n_nodes && !feeds; j++) {
                const ot_node *m = &step->nodes[j];
                for (int k = 0; k < m->n_in; k++)
                    feeds |= m->in[k] == n->out[0] && trained[j];
            }
            if (!feeds)
                continue;
            OT_TRY(dropout_to_train(step, i, &tg->seed, err));
            tg->n_dropout_train++;
            trained[i] = changed = true;
        }
        for (int32_t i = 0; changed && i < n_nodes; i++) { /* propagate again */
            const ot_node *n = &step->nodes[i];
            for (int k = 0; k < n->n_in && !trained[i]; k++)
                if (n->in[k] >= 0 && step->values[n->in[k]].producer >= 0)
                    trained[i] = trained[step->values[n->in[k]].producer];
        }
    }
    OT_TRY(shape_chains_to_step(step, tg->image, trained, err));
    tg->cacheable = !opts->bn_all_train;
    tg->why_not_cacheable =
        opts->bn_all_train ? "--bn train: BatchNorm in the frozen prefix uses batch statistics"
                           : NULL;

    /* the cut: prefix values (or the image) that trained nodes read */
    for (int32_t i = 0; i < n_nodes; i++) {
        if (!trained[i])
            continue;
        const ot_node *n = &step->nodes[i];
        for (int k = 0; k < n->n_in; k++) {
            int32_t v = n->in[k];
            if (v < 0)
                continue;
            const ot_value *val = &step->values[v];
            bool from_prefix = val->producer >= 0 ? !trained[val->producer]
                                                  : (val->flags & OT_VAL_INPUT) &&
                                                        !(val->flags & OT_VAL_INIT);
            if (!from_prefix || (val->flags & OT_VAL_CONST))
                continue;
            bool seen = false;
            for (int c = 0; c < tg->n_cut; c++)
                seen |= tg->cut[c] == v;
            if (!seen)
                tg->cut[tg->n_cut++] = v;
        }
    }
    if (tg->n_cut == 0)
        OT_FAIL(err, OT_ERR_ARG, "the trained part of the graph reads nothing from the image");
    bool prefix_empty = tg->n_cut == 1 && tg->cut[0] == tg->image;

    /* prefix graph: image -> cut values, nothing else */
    if (!prefix_empty) {
        OT_TRY(ot_graph_clone(model, &prefix, err));
        ot_train_free_image_size(prefix, tg->image);
        memset(keep, 0, nn);
        ot_graph_mark_ancestors(prefix, tg->cut, tg->n_cut, keep);
        OT_TRY(set_outputs(prefix, tg->cut, tg->n_cut, err));
        OT_TRY(set_inputs(prefix, &tg->image, 1, err));
        OT_TRY(ot_graph_keep_nodes(prefix, keep, err));
    }

    /* step graph: cut values + labels -> loss, logits, gradients, statistics;
       the loss and the step's logits output read the (N, C) view of logits
       of shape [N, C, 1, 1] (the model's own output keeps its shape) */
    OT_TRY(ot_pass_logits_2d(step, tg->logits, &tg->logits, err));
    OT_TRY(ot_pass_add_loss(step, tg->logits, "labels", opts->label_smoothing, &tg->loss,
                            &tg->labels, err));
    step->values[tg->labels].dims[0] = OT_DIM_DYNAMIC; /* any batch */
    step->values[tg->labels].dim_names[0] = "N";
    {
        int32_t *ins = ot_arena_alloc(&step->arena, sizeof *ins * (size_t)(tg->n_cut + 2));
        if (!ins)
            OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
        memcpy(ins, tg->cut, sizeof *ins * (size_t)tg->n_cut);
        ins[tg->n_cut] = tg->labels;
        if (tg->seed >= 0)
            ins[tg->n_cut + 1] = tg->seed;
        OT_TRY(set_inputs(step, ins, tg->n_cut + 1 + (tg->seed >= 0), err));
        /* cut values take whatever batch and image size the run has (the
           image keeps its channels where its layout has them) */
        int image_c = ot_image_layout_find(model, tg->image).c;
        for (int c = 0; c < tg->n_cut; c++) {
            ot_value *v = &step->values[tg->cut[c]];
            for (int d = 0; d < v->ndim; d++)
                if (d != (tg->cut[c] == tg->image ? image_c : 1)) {
                    v->dims[d] = OT_DIM_DYNAMIC;
                    v->dim_names[d] = NULL;
                }
        }
    }
    int32_t before = step->n_nodes;
    int32_t grad_of = tg->loss; /* what the backward pass differentiates */
    if (opts->loss_scaling && opts->optim) {
        OT_TRY(ot_optim_add_scalar_input(step, "onnxtrain/loss_scale", OT_DTYPE_FLOAT,
                                         &tg->loss_scale, err));
        int32_t in[2] = { tg->loss, tg->loss_scale };
        OT_TRY(ot_op_grad_emit1(step, ot_op_table[OT_OP_MUL], "loss_scale/scaled_loss", in, 2,
                                NULL, 0, "loss_scale/scaled_loss", &grad_of, err));
    }
    OT_TRY(ot_pass_autodiff(step, grad_of, tg->params, tg->n_params, tg->grads, err));
    tg->n_backward_nodes = step->n_nodes - before;
    for (int i = 0; i < tg->n_params; i++)
        if (tg->grads[i] < 0)
            OT_FAIL(err, OT_ERR_ARG, "trainable parameter '%s' does not affect the loss",
                    step->values[tg->params[i]].name);
    tg->group = ot_calloc((size_t)tg->n_params + 1, sizeof *tg->group);
    if (!tg->group)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    for (int p = 0; p < tg->n_params; p++)
        for (int h = 0; h < opts->n_head_params; h++)
            if (opts->head_params[h] == tg->params[p])
                tg->group[p] = 1;
    reduced = ot_calloc((size_t)tg->n_params + 1, sizeof *reduced);
    if (!reduced)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    memcpy(reduced, tg->grads, sizeof *reduced * (size_t)tg->n_params);
    if (opts->bucket_bytes > 0 && opts->optim)
        OT_TRY(add_all_reduce(step, tg, opts->bucket_bytes, opts->overlap, reduced, err));
    if (opts->sync_bn)
        OT_TRY(mark_sync_bn(step, tg, err));
    int32_t before_optim = step->n_nodes;
    if (opts->optim) {
        OT_TRY(ot_optim_add_updates(step, opts->optim, tg->params, reduced, tg->group,
                                    tg->n_params, opts->clip_grad, tg->loss_scale, &tg->optim,
                                    err));
        tg->has_optim = true;
    }
    /* outputs: loss, logits, then the gradient norm (with clipping or loss
       scaling) or, with no optimizer, the gradients; the updates and the BN
       statistics write the state, and are kept for that */
    int n_out = 2 + (tg->has_optim ? (tg->optim.grad_norm >= 0) : tg->n_params);
    int n_targets = n_out;
    for (int32_t i = before_optim; i < step->n_nodes; i++)
        n_targets += step->nodes[i].n_out;
    outs = ot_malloc(sizeof *outs * (size_t)(n_targets + tg->n_stats + 1));
    if (!outs)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    outs[0] = tg->loss;
    outs[1] = tg->logits;
    if (!tg->has_optim)
        memcpy(outs + 2, tg->grads, sizeof *outs * (size_t)tg->n_params);
    else if (tg->optim.grad_norm >= 0)
        outs[2] = tg->optim.grad_norm;
    OT_TRY(set_outputs(step, outs, n_out, err));
    n_targets = n_out;
    for (int32_t i = before_optim; i < step->n_nodes; i++)
        for (int k = 0; k < step->nodes[i].n_out; k++)
            if (step->nodes[i].out[k] >= 0)
                outs[n_targets++] = step->nodes[i].out[k];
    memcpy(outs + n_targets, tg->stats_new, sizeof *outs * (size_t)tg->n_stats);
    n_targets += tg->n_stats;
    {
        bool *k2 = ot_calloc((size_t)step->n_nodes + 1, sizeof *k2);
        if (!k2)
            OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
        ot_graph_mark_ancestors(step, outs, n_targets, k2);
        /* prefix nodes go (their outputs are inputs now). What they computed
           as constants (Constant nodes, shape arithmetic that shape inference
           folded, such as the channel count of a prefix activation) becomes
           constant data of the step graph: the nodes that made it may read
           prefix values (Shape) that the step does not have. */
        for (int32_t i = 0; i < n_nodes; i++) {
            if (trained[i] || !k2[i])
                continue;
            const ot_node *n = &step->nodes[i];
            for (int k = 0; k < n->n_out; k++) {
                ot_value *v = n->out[k] >= 0 ? &step->values[n->out[k]] : NULL;
                if (v && (v->flags & OT_VAL_CONST) && (v->data.data || !v->data.bytes))
                    v->flags |= OT_VAL_INIT; /* the step graph borrows the bytes */
            }
            k2[i] = false;
        }
        st = ot_graph_keep_nodes(step, k2, err);
        ot_free(k2);
        OT_TRY(st);
    }
    tg->step = step;
    tg->prefix = prefix;
    step = prefix = NULL;
done:
    ot_graph_free(step);
    ot_graph_free(prefix);
    ot_free(trained);
    ot_free(keep);
    ot_free(outs);
    ot_free(reduced);
    if (st != OT_OK)
        ot_train_graph_fini(tg);
    return st;
}

void ot_train_graph_fini(ot_train_graph *tg)
{
    ot_graph_free(tg->step);
    ot_graph_free(tg->prefix);
    ot_free(tg->params);
    ot_free(tg->grads);
    ot_free(tg->stats);
    ot_free(tg->stats_new);
    ot_free(tg->cut);
    ot_free(tg->group);
    ot_optim_graph_fini(&tg->optim);
    memset(tg, 0, sizeof *tg);
}
