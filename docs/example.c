/*
 * example.c: the smallest complete program that uses libonnxtrain.
 *
 * It imports an ONNX model, prints a one-line summary of it, and exports it
 * again to a second path. Only the public header, <onnxtrain.h>, is used.
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
 *
 * which prints, for instance,
 *
 *     onnxtrain 0.1.0: model.onnx: 1 nodes, 0 initializers, 0 params
 *     wrote copy.onnx
 */
#include <stdio.h>

#include <onnxtrain.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s IN.onnx OUT.onnx\n", argv[0]);
        return 2;
    }
    const char *in = argv[1], *out = argv[2];

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
