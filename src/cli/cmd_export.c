/*
 * cmd_export.c: `onnxtrain export CKPT OUT.onnx`.
 *
 * Turns a training checkpoint (finetune --checkpoint; docs/checkpoint.md)
 * into the plain inference model: the optimizer's initializers
 * ("onnxtrain.optim.*") and the checkpoint metadata ("onnxtrain.checkpoint.*")
 * are dropped; the graph, the trained weights and the preprocessing metadata
 * stay as they are. The batch dim becomes dynamic unless --batch fixes one,
 * as finetune does, so exporting the checkpoint a finished run wrote gives
 * the file that run wrote with -o (given the same --batch). CKPT and OUT must be different files (the
 * same path or a link to CKPT is refused); OUT is written to a temporary
 * name and renamed.
 *
 * It does not train, evaluate or change the input size: the checkpoint
 * already declares the trained one.
 */
#include <stdio.h>

#include "cli/cli.h"
#include "converters/converters.h"
#include "graph/graph.h"
#include "train/checkpoint.h"
#include "train/meta.h"

typedef struct export_args {
    int64_t batch;
    uint64_t max_tensor_bytes;
    ot_convert_opts conv;
} export_args;

enum { EXPORT_BATCH, EXPORT_MAX_TENSOR_SIZE, OT_CLI_CONVERT_IDS(EXPORT), EXPORT_N_OPTS };

static const ot_cli_opt export_opts[EXPORT_N_OPTS + 1] = {
    [EXPORT_BATCH] = OT_CLI_BATCH_OPT(export_args, batch, "batch", 0, "N|dynamic",
                                      "batch dim of the exported model (default dynamic, N)"),
    [EXPORT_MAX_TENSOR_SIZE] = OT_CLI_MAX_TENSOR_SIZE_OPT(export_args, max_tensor_bytes),
    OT_CLI_CONVERT_ROWS(EXPORT, export_args, conv),
};

static const ot_cli_cmd export_cmd = {
    .name = "export",
    .args = "CKPT OUT.onnx",
    .summary = "Turns a training checkpoint (finetune --checkpoint) into the plain inference\n"
               "model: the optimizer state and the checkpoint metadata are dropped.",
    .details = "The trained weights, BatchNorm statistics and the preprocessing metadata\n"
               "(onnxtrain.image_size, .mean, .std, .classes ...) are kept. A checkpoint\n"
               "is itself a valid ONNX model; export makes it smaller and plain. The batch\n"
               "dim is dynamic (N) unless --batch gives a size, as for finetune -o.\n"
               "--opset, --clean-inputs, --fold-bn and --simplify convert the model for\n"
               "deployment as `onnxtrain convert` does (docs/deploy.md).\n",
    .opts = export_opts,
    .n_pos_min = 2,
    .n_pos_max = 2,
};

int ot_cmd_export(int argc, char **argv)
{
    ot_cli_args a;
    ot_graph *g = NULL;
    export_args o = { 0 };
    int rc = ot_cli_parse_into(&export_cmd, argc, argv, &a, &o);
    if (rc != OT_EXIT_OK)
        return rc;
    if (a.help) {
        ot_cli_print_usage(&export_cmd, stdout);
        goto done;
    }
    ot_import_opts io = { .max_tensor_bytes = o.max_tensor_bytes };
    const char *in = a.pos[0], *out = a.pos[1];
    ot_err err;
    ot_err_init(&err);
    if ((rc = ot_cli_distinct(out, "output", in, "checkpoint")) != OT_EXIT_OK)
        goto done;
    /* a checkpoint's checksum must match (format 1 had none) */
    ot_status st = ot_model_import(in, &io, &g, &err);
    if (ot_train_checkpoint_check_import(in, g, st, &err) != OT_OK) {
        rc = ot_cli_error("%s", err.msg);
        goto done;
    }
    if (ot_graph_check_finite(g, &err) != OT_OK || ot_train_checkpoint_strip(g, &err) != OT_OK) {
        rc = ot_cli_error("%s: %s", in, err.msg);
        goto done;
    }
    /* class names as the readers take them; older newline-joined ones are
       written again as JSON */
    char **names = NULL;
    int n_names = 0;
    st = ot_train_meta_classes(g, &names, &n_names, &err);
    if (st == OT_OK && names)
        st = ot_train_meta_set_classes(g, (const char *const *)names, n_names, &err);
    ot_free(names);
    if (st != OT_OK) {
        rc = ot_cli_error("%s: %s", in, err.msg);
        goto done;
    }
    if ((rc = ot_cli_convert(g, in, &o.conv)) != OT_EXIT_OK)
        goto done;
    if ((rc = ot_cli_export_batch(g, in, a.count[EXPORT_BATCH] ? &o.batch : NULL)) !=
        OT_EXIT_OK)
        goto done;
    if (ot_model_export(g, out, NULL, &err) != OT_OK) {
        rc = ot_cli_error("%s", err.msg);
        goto done;
    }
    ot_log(OT_LOG_INFO, "wrote %s", out);
done:
    ot_graph_free(g);
    ot_cli_args_fini(&a);
    return rc;
}
