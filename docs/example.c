/*
 * example.c: a complete program that uses libonnxtrain through its public
 * header, <onnxtrain.h>, only.
 *
 * With two arguments it imports an ONNX model, prints a one-line summary of
 * it, and exports it again to a second path. With three or four it
 * fine-tunes a pretrained classifier on a data set (the head replaced by
 * one with the data's number of classes, only the head trained), evaluates
 * the written model on the data set's test split, and exports it.
 *
 * Build against an installed copy (make install PREFIX=...):
 *
 *     cc example.c $(pkg-config --cflags --libs onnxtrain) -o example
 *     cc example.c $(pkg-config --static --cflags --libs onnxtrain) -o example
 *
 * (the first links the shared library, so set LD_LIBRARY_PATH when PREFIX is
 * not a system folder). Run:
 *
 *     ./example model.onnx copy.onnx
 *     ./example resnet18.onnx data/cifar-10-batches-bin tuned.onnx 32
 *
 * The first prints, for instance,
 *
 *     onnxtrain 0.1.0: model.onnx: 1 nodes, 0 initializers, 0 params
 *     wrote copy.onnx
 *
 * and the second the run's account, one line per epoch, then
 *
 *     evaluated tuned.onnx: top-1 0.8125 on 48 images
 *     wrote tuned.onnx
 */
#include <stdio.h>
#include <stdlib.h>

#include <onnxtrain.h>

/* Prints what ot_finetune reports: its account, warnings, and one line per
   epoch (a program could draw a progress bar from OT_FT_STEP instead). */
static void on_progress(const ot_ft_progress *p, void *user)
{
    (void)user;
    switch (p->event) {
    case OT_FT_MESSAGE:
    case OT_FT_PLAN:
        printf("%s\n", p->message);
        break;
    case OT_FT_WARNING:
        fprintf(stderr, "warning: %s\n", p->message);
        break;
    case OT_FT_EPOCH:
        printf("epoch %d/%d: loss %.4f, accuracy %.4f, %.0f images/s\n", p->epoch, p->epochs,
               p->loss, p->accuracy, p->images_per_s);
        break;
    default: /* details, single steps, the loop's start and end */
        break;
    }
}

/* Imports, summarises and exports a model. */
static int copy_model(const char *in, const char *out)
{
    /* Every call that can fail fills this with a code and a one-line message. */
    ot_err err;

    /* Import. NULL options: the defaults (external data is read, 16 GiB limit
       per tensor). On success we own the graph and must free it. */
    ot_graph *g = NULL;
    if (ot_model_import(in, NULL, &g, &err) != OT_OK) {
        fprintf(stderr, "example: %s (%s)\n", err.msg, ot_status_str(err.code));
        return 1;
    }

    /* The counting functions cannot fail. */
    printf("onnxtrain %s: %s: %zu nodes, %zu initializers, %llu params\n", ot_version(), in,
           ot_graph_n_nodes(g), ot_graph_n_initializers(g),
           (unsigned long long)ot_graph_n_params(g));

    /* Export. NULL options: tensors stay where they were (inline or external).
       The file is written under a temporary name and renamed on success, so a
       failure leaves nothing behind. */
    if (ot_model_export(g, out, NULL, &err) != OT_OK) {
        fprintf(stderr, "example: %s (%s)\n", err.msg, ot_status_str(err.code));
        ot_graph_free(g);
        return 1;
    }
    printf("wrote %s\n", out);

    ot_graph_free(g);
    return 0;
}

/* Fine-tunes, evaluates and exports. */
static int fine_tune(const char *model, const char *data, const char *out, int image_size)
{
    ot_err err;

    /* The defaults of `onnxtrain finetune`; then what this run wants. The
       number of classes comes from the data. */
    ot_finetune_opts o = ot_finetune_opts_default();
    o.model_path = model;
    o.data = data;
    o.output = out;
    o.mode = OT_FT_FEATURE_EXTRACT;
    o.epochs = 2;
    o.batch_size = 16;
    o.image_size = image_size; /* 0: the model's own input size */
    o.seed = 1;
    o.deterministic = 1;       /* the same bytes on every run */
    o.progress = on_progress;

    ot_finetune_result r;
    if (ot_finetune(&o, &r, &err) != OT_OK) {
        fprintf(stderr, "example: %s (%s)\n", err.msg, ot_status_str(err.code));
        return 1;
    }
    printf("trained %lld steps on %lld images of %d classes\n", (long long)r.steps,
           (long long)r.n_train, r.n_classes);

    /* Score the written model. The preprocessing it was trained with is in
       its metadata, so nothing needs repeating here. */
    ot_evaluate_opts e = ot_evaluate_opts_default();
    e.model_path = out;
    e.data = data;
    ot_evaluation ev;
    if (ot_evaluate(&e, &ev, &err) != OT_OK) {
        fprintf(stderr, "example: %s (%s)\n", err.msg, ot_status_str(err.code));
        return 1;
    }
    printf("evaluated %s: top-1 %.4f on %lld images\n", out, ev.top1, (long long)ev.n);
    for (int c = 0; c < ev.n_classes; c++) {
        int64_t right = ev.confusion[c * ev.n_classes + c], all = 0;
        for (int k = 0; k < ev.n_classes; k++)
            all += ev.confusion[c * ev.n_classes + k];
        printf("  %-12s %lld of %lld\n", ev.class_names[c], (long long)right, (long long)all);
    }
    ot_evaluation_fini(&ev);
    printf("wrote %s\n", out);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3)
        return copy_model(argv[1], argv[2]);
    if (argc == 4 || argc == 5)
        return fine_tune(argv[1], argv[2], argv[3], argc == 5 ? atoi(argv[4]) : 0);
    fprintf(stderr, "usage: %s IN.onnx OUT.onnx\n"
                    "       %s MODEL.onnx DATA OUT.onnx [IMAGE_SIZE]\n",
            argv[0], argv[0]);
    return 2;
}
