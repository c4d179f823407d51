/*
 * cmd_convert.c: `onnxtrain convert IN OUT [--batch N|dynamic]
 * [--external-data [--external-threshold BYTES] | --inline-data]`.
 *
 * Imports IN and exports it to OUT. Without options the model comes back
 * unchanged (tensor placement as imported). IN and OUT must be different
 * files (the same path or a link to IN is refused); the exporter writes a
 * temporary file and renames it, so a failure leaves OUT as it was.
 *
 * --batch (src/passes/batch.c) rewrites dim 0 of declared shapes only; it does not re-run shape
 * inference and does not edit constants. What changes:
 *   - every graph input that is not an initializer (rank 0 or unknown rank is
 *     refused: there is no batch dim to set);
 *   - every graph output whose dim 0 is unknown or equals an input's old
 *     batch dim (other outputs are left and a warning names them);
 *   - every value_info entry whose dim 0 equals an input's old batch dim.
 * Changed values are flagged OT_VAL_SHAPE_DIRTY so that the exporter writes
 * their ValueInfo anew. A Reshape whose constant shape spells out the old
 * batch size is reported with a warning, since the model may not run with
 * another batch.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "converters/converters.h"
#include "graph/graph.h"
#include "passes/batch.h"

typedef struct convert_args {
    int64_t batch;
    bool external_data, inline_data;
    uint64_t external_threshold, max_tensor_bytes;
    ot_convert_opts conv;
} convert_args;

enum {
    CONVERT_BATCH,
    CONVERT_EXTERNAL_DATA,
    CONVERT_EXTERNAL_THRESHOLD,
    CONVERT_INLINE_DATA,
    CONVERT_MAX_TENSOR_SIZE,
    OT_CLI_CONVERT_IDS(CONVERT),
    CONVERT_N_OPTS
};

static const ot_cli_opt convert_opts[CONVERT_N_OPTS + 1] = {
    [CONVERT_BATCH] =
        OT_CLI_BATCH_OPT(convert_args, batch, "batch", 0, "N|dynamic",
                         "set dim 0 of inputs and outputs: a size, or 'dynamic' (N)"),
    [CONVERT_EXTERNAL_DATA] =
        OT_CLI_FLAG_OPT(convert_args, external_data, "external-data", 0,
                        "write tensors of at least the threshold to OUT.data"),
    [CONVERT_EXTERNAL_THRESHOLD] =
        OT_CLI_SIZE_OPT(convert_args, external_threshold, "external-threshold", 0, "BYTES", 0,
                        UINT64_MAX, "threshold for --external-data (suffix K, M, G; default 1K)"),
    [CONVERT_INLINE_DATA] = OT_CLI_FLAG_OPT(convert_args, inline_data, "inline-data", 0,
                                            "write every tensor inside OUT"),
    [CONVERT_MAX_TENSOR_SIZE] = OT_CLI_MAX_TENSOR_SIZE_OPT(convert_args, max_tensor_bytes),
    OT_CLI_CONVERT_ROWS(CONVERT, convert_args, conv),
};

static const ot_cli_cmd convert_cmd = {
    .name = "convert",
    .args = "IN OUT",
    .summary = "Reads an ONNX model and writes it back, optionally converted for deployment\n"
               "(opset, BatchNorm folding, simplification), with another batch size or\n"
               "another placement of tensor data. Unchanged parts are written as read.",
    .details = "--batch changes dim 0 of the graph inputs (not initializers), of the outputs\n"
               "whose dim 0 is the old batch dim or unknown, and of value_info entries whose\n"
               "dim 0 is the old batch dim. Tensor data stays where it was unless\n"
               "--external-data or --inline-data is given. IN and OUT must be different files.\n"
               "The conversions run in a fixed order whatever the order of the options:\n"
               "--opset, --clean-inputs, --fold-bn, --simplify (docs/deploy.md).\n",
    .opts = convert_opts,
    .n_pos_min = 2,
    .n_pos_max = 2,
};

/* Parses --batch: a positive integer, or "dynamic". */
bool ot_cli_parse_batch(const char *s, int64_t *dim)
{
    if (strcmp(s, "dynamic") == 0) {
        *dim = OT_DIM_DYNAMIC;
        return true;
    }
    if (*s < '1' || *s > '9')
        return false;
    int64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (INT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (*s - '0');
    }
    *dim = v;
    return true;
}

/* Applies --batch to the graph. Returns an exit status. */
int ot_cli_apply_batch(ot_graph *g, const char *path, int64_t dim, uint64_t max_bytes)
{
    ot_err err;
    ot_err_init(&err);
    int n = 0;
    if (ot_pass_set_batch(g, dim, max_bytes, &n, &err) != OT_OK)
        return ot_cli_error("%s: --batch: %s%s", path, err.msg,
                            strstr(err.msg, "tensor size limit") ? " (--max-tensor-size)" : "");
    ot_log(OT_LOG_INFO, "--batch: set dim 0 of %d declared values", n);
    return OT_EXIT_OK;
}

int ot_cli_export_batch(ot_graph *g, const char *path, const int64_t *dim)
{
    if (dim)
        return ot_cli_apply_batch(g, path, *dim, 0);
    ot_err err;
    ot_err_init(&err);
    bool made_dynamic = false;
    if (ot_pass_export_batch(g, 0, &made_dynamic, &err) != OT_OK)
        return ot_cli_error("%s: %s", path, err.msg);
    if (made_dynamic)
        ot_log(OT_LOG_INFO, "%s: the model declares a fixed batch; the output's is dynamic (N) "
               "(--batch N keeps a fixed one)", path);
    return OT_EXIT_OK;
}

int ot_cli_convert(ot_graph *g, const char *path, const ot_convert_opts *o)
{
    if (!ot_convert_wanted(o))
        return OT_EXIT_OK;
    ot_err err;
    ot_err_init(&err);
    ot_convert_opts first = *o; /* fp16 and int8 after calibration */
    first.fp16 = first.int8 = false;
    if (ot_convert(g, &first, &err) != OT_OK)
        return ot_cli_error("%s: %s", path, err.msg);
    return ot_cli_quantize(g, path, o);
}

int ot_cmd_convert(int argc, char **argv)
{
    ot_cli_args args;
    ot_graph *g = NULL;
    convert_args o = { 0 };
    int rc = ot_cli_parse_into(&convert_cmd, argc, argv, &args, &o);
    if (rc != OT_EXIT_OK)
        return rc;
    if (args.help) {
        ot_cli_print_usage(&convert_cmd, stdout);
        goto done;
    }

    ot_import_opts iopts = { .max_tensor_bytes = o.max_tensor_bytes };
    ot_export_opts eopts = { 0 };
    if (o.external_data && o.inline_data) {
        rc = ot_cli_usage_error(&convert_cmd, "--external-data and --inline-data exclude each "
                                "other");
        goto done;
    }
    eopts.placement = o.external_data ? OT_DATA_EXTERNAL
                      : o.inline_data ? OT_DATA_INLINE
                                      : OT_DATA_KEEP;
    if (args.count[CONVERT_EXTERNAL_THRESHOLD]) {
        if (!o.external_data)
            ot_log(OT_LOG_WARN, "--external-threshold is ignored without --external-data");
        /* 0 would mean the default */
        eopts.external_threshold = o.external_threshold ? o.external_threshold : 1;
    }

    const char *in = args.pos[0], *out = args.pos[1];
    ot_err err;
    ot_err_init(&err);
    if ((rc = ot_cli_distinct(out, "output", in, "input")) != OT_EXIT_OK)
        goto done;
    if (ot_model_import(in, &iopts, &g, &err) != OT_OK) {
        rc = ot_cli_error("%s", err.msg);
        goto done;
    }
    if (ot_graph_check_finite(g, &err) != OT_OK) /* converted as it is, bytes unchanged */
        ot_log(OT_LOG_WARN, "%s: %s", in, err.msg);
    if ((rc = ot_cli_convert(g, in, &o.conv)) != OT_EXIT_OK)
        goto done;
    if (args.count[CONVERT_BATCH]) {
        rc = ot_cli_apply_batch(g, in, o.batch, iopts.max_tensor_bytes);
        if (rc != OT_EXIT_OK)
            goto done;
    }
    if (ot_model_export(g, out, &eopts, &err) != OT_OK) {
        rc = ot_cli_error("%s", err.msg);
        goto done;
    }
    ot_log(OT_LOG_INFO, "wrote %s", out);

done:
    ot_graph_free(g);
    ot_cli_args_fini(&args);
    return rc;
}
