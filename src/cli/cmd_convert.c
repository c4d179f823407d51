/*
 * cmd_convert.c: `onnxtrain convert IN OUT [--batch N|dynamic]
 * [--external-data [--external-threshold BYTES] | --inline-data]`.
 *
 * Imports IN and exports it to OUT. Without options the model comes back
 * unchanged (tensor placement as imported). IN and OUT must be different
 * files (the same path or a link to IN is refused); the exporter writes a
 * temporary file and renames it, so a failure leaves OUT as it was.
 *
 * --batch rewrites dim 0 of declared shapes only; it does not re-run shape
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

/* The batch dim of one graph input before the rewrite. */
typedef struct batch_dim {
    int64_t dim;      /* >= 0, or OT_DIM_DYNAMIC          */
    const char *name; /* symbol of a dynamic dim, or NULL */
} batch_dim;

typedef struct batch_edit {
    int64_t dim;      /* the new dim 0                    */
    const char *name; /* "N" when dynamic, else NULL      */
    batch_dim *old;   /* the inputs' old dim 0, deduplicated */
    int n_old;
} batch_edit;

static bool same_name(const char *a, const char *b)
{
    if (!a || !b)
        return !a && !b;
    return strcmp(a, b) == 0;
}

static bool is_old_batch(const batch_edit *e, const ot_value *v)
{
    if (v->ndim < 1 || v->ndim > OT_MAX_DIMS)
        return false;
    for (int i = 0; i < e->n_old; i++) {
        if (e->old[i].dim >= 0 ? v->dims[0] == e->old[i].dim
                               : v->dims[0] < 0 && same_name(v->dim_names[0], e->old[i].name))
            return true;
    }
    return false;
}

static void set_batch(const batch_edit *e, ot_value *v)
{
    if (v->dims[0] == e->dim && same_name(v->dim_names[0], e->name))
        return; /* already so: keep the declaration as imported */
    v->dims[0] = e->dim;
    v->dim_names[0] = e->name;
    v->flags |= OT_VAL_SHAPE_DIRTY;
}

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

static const char *vname(const ot_value *v) { return v->name ? v->name : ""; }

/* Warns about Reshape nodes whose constant target shape starts with an old
   static batch size: they pin the batch no matter what the inputs declare. */
static void warn_fixed_reshapes(const ot_graph *g, const batch_edit *e)
{
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        if (!n->op_type || strcmp(n->op_type, "Reshape") != 0 || n->n_in < 2)
            continue;
        const ot_tensor *t = ot_graph_const(g, n->in[1]);
        if (!t || t->dtype != OT_DTYPE_INT64 || t->ndim != 1 || !t->data || t->bytes < 8)
            continue;
        int64_t first;
        memcpy(&first, t->data, sizeof first);
        for (int k = 0; k < e->n_old; k++) {
            if (e->old[k].dim > 0 && first == e->old[k].dim && first != e->dim) {
                char label[256];
                ot_log(OT_LOG_WARN,
                       "%s has a constant target shape with batch %" PRId64
                       "; the model may not run with another batch size",
                       ot_node_label(g, n, label, sizeof label), first);
                break;
            }
        }
    }
}

/* Applies --batch to the graph. Returns an exit status. */
int ot_cli_apply_batch(ot_graph *g, const char *path, int64_t dim, uint64_t max_bytes)
{
    int rc = OT_EXIT_OK;
    batch_edit e = { .dim = dim };
    e.old = malloc(sizeof *e.old * (size_t)(g->n_inputs > 0 ? g->n_inputs : 1));
    if (!e.old)
        return ot_cli_error("out of memory");
    if (dim == OT_DIM_DYNAMIC) {
        e.name = ot_arena_strdup(&g->arena, "N");
        if (!e.name) {
            rc = ot_cli_error("out of memory");
            goto done;
        }
    }

    /* The old batch dims, and the inputs that cannot take a new one. */
    for (int32_t i = 0; i < g->n_inputs; i++) {
        const ot_value *v = &g->values[g->inputs[i].value];
        if (v->flags & OT_VAL_INIT)
            continue;
        if (v->ndim < 0 || v->ndim > OT_MAX_DIMS) {
            rc = ot_cli_error("%s: --batch: input '%s' has an unknown rank, so no batch dim "
                              "to set", path, vname(v));
            goto done;
        }
        if (v->ndim == 0) {
            rc = ot_cli_error("%s: --batch: input '%s' is a scalar (rank 0) and has no batch "
                              "dim", path, vname(v));
            goto done;
        }
        batch_dim b = { v->dims[0], v->dims[0] < 0 ? v->dim_names[0] : NULL };
        bool seen = false;
        for (int k = 0; k < e.n_old; k++)
            seen = seen || (e.old[k].dim == b.dim && same_name(e.old[k].name, b.name));
        if (!seen)
            e.old[e.n_old++] = b;
    }
    if (e.n_old == 0) {
        rc = ot_cli_error("%s: --batch: the model has no graph inputs besides initializers",
                          path);
        goto done;
    }

    /* Decide for every value before changing any, so that a value listed in
       several places (input and value_info) is judged by its old shape. */
    bool *change = calloc((size_t)(g->n_values > 0 ? g->n_values : 1), sizeof *change);
    if (!change) {
        rc = ot_cli_error("out of memory");
        goto done;
    }
    for (int32_t i = 0; i < g->n_inputs; i++)
        if (!(g->values[g->inputs[i].value].flags & OT_VAL_INIT))
            change[g->inputs[i].value] = true;
    for (int32_t i = 0; i < g->n_outputs; i++) {
        const ot_value *v = &g->values[g->outputs[i].value];
        if ((v->flags & OT_VAL_INIT) || v->ndim < 1 || v->ndim > OT_MAX_DIMS)
            continue;
        if (is_old_batch(&e, v) || (v->dims[0] < 0 && !v->dim_names[0]))
            change[g->outputs[i].value] = true;
        else if (v->dims[0] >= 0)
            ot_log(OT_LOG_WARN, "--batch: output '%s' has dim 0 = %" PRId64
                   ", not the inputs' batch dim; left unchanged", vname(v), v->dims[0]);
        else
            ot_log(OT_LOG_WARN, "--batch: output '%s' has dim 0 = %s, not the inputs' batch "
                   "dim; left unchanged", vname(v), v->dim_names[0]);
    }
    for (int32_t i = 0; i < g->n_value_info; i++) {
        const ot_value *v = &g->values[g->value_info[i].value];
        if (!(v->flags & OT_VAL_INIT) && is_old_batch(&e, v))
            change[g->value_info[i].value] = true;
    }
    /* The new shapes must stay within the tensor size limit, or the file
       written would be refused on import. */
    if (dim > 0) {
        uint64_t limit = max_bytes ? max_bytes : OT_DEFAULT_MAX_TENSOR_BYTES;
        int64_t max_batch = INT64_MAX;
        const ot_value *worst = NULL;
        for (int32_t i = 0; i < g->n_values; i++) {
            const ot_value *v = &g->values[i];
            if (!change[i])
                continue;
            /* bytes per batch entry; dims of unknown size count as 1, as on import */
            uint64_t per = ot_dtype_size(v->dtype) ? ot_dtype_size(v->dtype) : 1;
            for (int d = 1; d < v->ndim && per; d++)
                if (v->dims[d] >= 0)
                    per = (uint64_t)v->dims[d] > limit ? limit + 1 : per * (uint64_t)v->dims[d];
            if (per > limit)
                per = limit + 1; /* checked on import, but keep the product bounded */
            int64_t most = per ? (int64_t)(limit / per) : INT64_MAX;
            if (most < max_batch)
                max_batch = most, worst = v;
        }
        if (dim > max_batch) {
            free(change);
            if (max_batch < 1)
                rc = ot_cli_error("%s: --batch: '%s' exceeds the tensor size limit of %" PRIu64
                                  " bytes (--max-tensor-size) at any batch size",
                                  path, vname(worst), limit);
            else
                rc = ot_cli_error("%s: --batch %" PRId64 " is too large: '%s' would exceed the "
                                  "tensor size limit of %" PRIu64 " bytes (--max-tensor-size); "
                                  "this model accepts --batch 1 to %" PRId64 " or 'dynamic'",
                                  path, dim, vname(worst), limit, max_batch);
            goto done;
        }
    }
    int n_changed = 0;
    for (int32_t i = 0; i < g->n_values; i++) {
        if (change[i]) {
            set_batch(&e, &g->values[i]);
            n_changed++;
        }
    }
    free(change);
    ot_log(OT_LOG_INFO, "--batch: set dim 0 of %d declared values", n_changed);
    warn_fixed_reshapes(g, &e);

done:
    free(e.old);
    return rc;
}

int ot_cli_export_batch(ot_graph *g, const char *path, const int64_t *dim)
{
    if (dim)
        return ot_cli_apply_batch(g, path, *dim, 0);
    bool fixed = false;
    for (int32_t i = 0; i < g->n_inputs; i++) {
        const ot_value *v = &g->values[g->inputs[i].value];
        if (v->flags & OT_VAL_INIT)
            continue;
        if (v->ndim < 1 || v->ndim > OT_MAX_DIMS)
            return OT_EXIT_OK;
        fixed = fixed || v->dims[0] >= 0;
    }
    if (!fixed)
        return OT_EXIT_OK;
    ot_log(OT_LOG_INFO, "%s: the model declares a fixed batch; the output's is dynamic (N) "
           "(--batch N keeps a fixed one)", path);
    return ot_cli_apply_batch(g, path, OT_DIM_DYNAMIC, 0);
}

int ot_cli_convert(ot_graph *g, const char *path, const ot_convert_opts *o)
{
    if (!ot_convert_wanted(o))
        return OT_EXIT_OK;
    ot_err err;
    ot_err_init(&err);
    if (ot_convert(g, o, &err) != OT_OK)
        return ot_cli_error("%s: %s", path, err.msg);
    return OT_EXIT_OK;
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
