/*
 * cmd_inspect.c: `onnxtrain inspect MODEL [--json] [--nodes]`.
 *
 * Prints what a model is: IR version, opsets, producer, the real graph inputs
 * and the outputs with dtype and shape, an op histogram, initializer and
 * parameter counts, the classifier head (src/passes/head.c) and the ops
 * outside onnxtrain's table. --nodes adds one row per node; --json prints the
 * same as one JSON object (key list in docs/cli.md and in the usage text).
 *
 * Tensor bytes kept in external files are not read: inspect needs only their
 * shapes. Graph inputs that are initializers too (IR 3 files list every
 * weight as an input) are counted, not listed.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/json.h"
#include "graph/graph.h"
#include "passes/head.h"

typedef struct inspect_args {
    bool json, nodes, training;
    uint64_t max_tensor_bytes;
    ot_cli_plan plan;
} inspect_args;

enum {
    INSPECT_JSON,
    INSPECT_NODES,
    INSPECT_MAX_TENSOR_SIZE,
    INSPECT_TRAINING,
    INSPECT_MODE,
    INSPECT_TRAIN,
    INSPECT_FREEZE,
    INSPECT_FREEZE_UNTIL,
    INSPECT_CLASSES,
    INSPECT_BN,
    INSPECT_N_OPTS
};

static const ot_cli_opt inspect_opts[INSPECT_N_OPTS + 1] = {
    [INSPECT_JSON] = OT_CLI_FLAG_OPT(inspect_args, json, "json", 0,
                                     "print one JSON object instead of text"),
    [INSPECT_NODES] = OT_CLI_FLAG_OPT(inspect_args, nodes, "nodes", 0,
                                      "list every node: index, name, op, inputs, output shapes"),
    [INSPECT_MAX_TENSOR_SIZE] = OT_CLI_MAX_TENSOR_SIZE_OPT(inspect_args, max_tensor_bytes),
    [INSPECT_TRAINING] =
        OT_CLI_FLAG_OPT(inspect_args, training, "training", 0,
                        "show the training plan finetune would use (with the options below)"),
    [INSPECT_MODE] = OT_CLI_ENUM_OPT(inspect_args, plan.mode, "mode", 0, "MODE",
                                     ot_cli_mode_choices,
                                     "--training: feature-extract (default), fine-tune or full"),
    [INSPECT_TRAIN] = OT_CLI_STRING_OPT(inspect_args, plan.train, "train", 0, "PAT,...",
                                        "--training: also train matching parameters or nodes"),
    [INSPECT_FREEZE] = OT_CLI_STRING_OPT(inspect_args, plan.freeze, "freeze", 0, "PAT,...",
                                         "--training: freeze matching parameters or nodes"),
    [INSPECT_FREEZE_UNTIL] =
        OT_CLI_STRING_OPT(inspect_args, plan.freeze_until, "freeze-until", 0, "NAME",
                          "--training: freeze NAME and everything upstream"),
    [INSPECT_CLASSES] = OT_CLI_INT_OPT(inspect_args, plan.classes, "classes", 0, "N", 1,
                                       OT_CLI_CLASSES_MAX,
                                       "--training: with a new head of N classes"),
    [INSPECT_BN] = OT_CLI_ENUM_OPT(inspect_args, plan.bn_train, "bn", 0, "policy|train",
                                   ot_cli_bn_choices, "--training: BatchNorm policy"),
};

static const ot_cli_cmd inspect_cmd = {
    .name = "inspect",
    .args = "MODEL",
    .summary = "Prints a summary of an ONNX model: IR version, opsets, producer, inputs and\n"
               "outputs (dtype and shape; symbolic dims by name, ? when unknown), op counts,\n"
               "initializers, parameter count and the classifier head.",
    .details = "JSON keys: model, ir_version, opsets (domain -> version, \"\" for the default\n"
               "domain), producer {name, version}, inputs and outputs [{name, dtype, shape}]\n"
               "(shape: ints, strings for symbolic dims, null when unknown), n_inputs_initializers,\n"
               "ops (op -> count), n_nodes, n_initializers, n_params, param_bytes, head (null or\n"
               "{node, index, op, in_features, out_features, weight, bias}), opaque_ops and,\n"
               "with --nodes, nodes [{index, name, op, domain, inputs, outputs}].\n"
               "Tensor data in external files is not read.\n",
    .opts = inspect_opts,
    .n_pos_min = 1,
    .n_pos_max = 1,
};

/* One row of the op histogram. */
typedef struct op_row {
    char *label;  /* "Conv", or "domain:Op" outside the default domain (malloc'ed) */
    int count;
    bool opaque;  /* outside the op table */
} op_row;

typedef struct summary {
    op_row *ops;
    int n_ops;
    int n_opaque_nodes;
    int n_real_inputs, n_input_inits;
    uint64_t n_params, param_bytes;
    ot_head head;
} summary;

/* ------------------------------------------------------------- analysis */

static const char *norm_domain(const char *d)
{
    return ot_domain_is_default(d) ? "" : d;
}

static const char *str_or_empty(const char *s) { return s ? s : ""; }

/* Sorting node pointers by (domain, op type) groups equal ops together. */
static int by_op(const void *pa, const void *pb)
{
    const ot_node *a = *(const ot_node *const *)pa, *b = *(const ot_node *const *)pb;
    int c = strcmp(norm_domain(a->domain), norm_domain(b->domain));
    return c ? c : strcmp(str_or_empty(a->op_type), str_or_empty(b->op_type));
}

/* Most frequent first; ties by name. */
static int by_count(const void *pa, const void *pb)
{
    const op_row *a = pa, *b = pb;
    if (a->count != b->count)
        return a->count > b->count ? -1 : 1;
    return strcmp(a->label, b->label);
}

static char *op_label(const ot_node *n)
{
    const char *d = norm_domain(n->domain), *t = str_or_empty(n->op_type);
    size_t len = strlen(d) + strlen(t) + 2;
    char *s = malloc(len);
    if (s)
        snprintf(s, len, "%s%s%s", d, d[0] ? ":" : "", t);
    return s;
}

static bool node_opaque(const ot_node *n)
{
    return n->op == NULL || (n->flags & OT_NODE_OPAQUE);
}

/* Element count of a value with a fully known shape; false otherwise. */
static bool value_numel(const ot_value *v, uint64_t *numel)
{
    int ndim = v->ndim;
    const int64_t *dims = v->dims;
    if (ndim < 0 || ndim > OT_MAX_DIMS) {
        ndim = v->data.ndim; /* hand-made graphs may set only the data's shape */
        dims = v->data.dims;
        if (ndim < 0 || ndim > OT_MAX_DIMS)
            return false;
    }
    uint64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0)
            return false;
        if (dims[i] != 0 && n > UINT64_MAX / (uint64_t)dims[i])
            return false;
        n *= (uint64_t)dims[i];
    }
    *numel = n;
    return true;
}

static void summary_fini(summary *s)
{
    for (int i = 0; i < s->n_ops; i++)
        free(s->ops[i].label);
    free(s->ops);
    s->ops = NULL;
    s->n_ops = 0;
}

static int summarize(const ot_graph *g, summary *s)
{
    int rc = OT_EXIT_OK;
    const ot_node **order = NULL;
    memset(s, 0, sizeof *s);

    for (int32_t i = 0; i < g->n_inputs; i++) {
        const ot_value *v = &g->values[g->inputs[i].value];
        if (v->flags & OT_VAL_INIT)
            s->n_input_inits++;
        else
            s->n_real_inputs++;
    }
    for (int32_t i = 0; i < g->n_inits; i++) {
        const ot_value *v = &g->values[g->inits[i]];
        uint64_t numel;
        if (!value_numel(v, &numel))
            continue;
        s->n_params += numel;
        s->param_bytes += numel * ot_dtype_size((int)v->dtype);
    }

    if (g->n_nodes > 0) {
        order = malloc(sizeof *order * (size_t)g->n_nodes);
        s->ops = calloc((size_t)g->n_nodes, sizeof *s->ops);
        if (!order || !s->ops) {
            rc = ot_cli_error("out of memory");
            goto done;
        }
        for (int32_t i = 0; i < g->n_nodes; i++)
            order[i] = &g->nodes[i];
        qsort(order, (size_t)g->n_nodes, sizeof *order, by_op);
        for (int32_t i = 0; i < g->n_nodes; i++) {
            const ot_node *n = order[i];
            if (i == 0 || by_op(&order[i - 1], &order[i]) != 0) {
                op_row *r = &s->ops[s->n_ops++];
                r->label = op_label(n);
                if (!r->label) {
                    rc = ot_cli_error("out of memory");
                    goto done;
                }
            }
            op_row *r = &s->ops[s->n_ops - 1];
            r->count++;
            if (node_opaque(n)) {
                r->opaque = true;
                s->n_opaque_nodes++;
            }
        }
        qsort(s->ops, (size_t)s->n_ops, sizeof *s->ops, by_count);
    }

    ot_err err;
    ot_err_init(&err);
    if (ot_pass_find_head(g, &s->head, &err) != OT_OK)
        rc = ot_cli_error("%s", err.msg);

done:
    free(order);
    if (rc != OT_EXIT_OK)
        summary_fini(s);
    return rc;
}

/* ----------------------------------------------------------- text output */

/* Formats a shape as "[N,3,224,224]", "[]" for a scalar, "?" for an unknown
   rank. Symbolic names are copied raw; print through ot_cli_text_str. */
static void shape_text(const ot_value *v, char *buf, size_t size)
{
    if (v->ndim < 0 || v->ndim > OT_MAX_DIMS) {
        snprintf(buf, size, "?");
        return;
    }
    size_t len = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < v->ndim && len < size; i++) {
        const char *sep = i ? "," : "";
        if (v->dims[i] >= 0)
            len += (size_t)snprintf(buf + len, size - len, "%s%" PRId64, sep, v->dims[i]);
        else if (v->dim_names[i] && v->dim_names[i][0])
            len += (size_t)snprintf(buf + len, size - len, "%s%s", sep, v->dim_names[i]);
        else
            len += (size_t)snprintf(buf + len, size - len, "%s?", sep);
    }
    if (len < size)
        snprintf(buf + len, size - len, "]");
}

static void pad(size_t width, size_t used)
{
    for (size_t i = used; i < width; i++)
        putchar(' ');
}

static const char *dtype_text(ot_dtype t)
{
    return t == OT_DTYPE_UNDEFINED ? "?" : ot_dtype_name((int)t);
}

static const char *value_name(const ot_graph *g, int32_t id)
{
    return id >= 0 && id < g->n_values ? str_or_empty(g->values[id].name) : "";
}

/* Lists graph inputs (real ones only) or outputs, names aligned. */
static void print_io_list(const ot_graph *g, const ot_io *io, int32_t n, bool skip_inits)
{
    size_t name_w = 0, type_w = 0;
    for (int32_t i = 0; i < n; i++) {
        const ot_value *v = &g->values[io[i].value];
        if (skip_inits && (v->flags & OT_VAL_INIT))
            continue;
        size_t w = ot_cli_text_width(v->name);
        name_w = w > name_w ? w : name_w;
        w = strlen(dtype_text(v->dtype));
        type_w = w > type_w ? w : type_w;
    }
    if (name_w > 40)
        name_w = 40;
    for (int32_t i = 0; i < n; i++) {
        const ot_value *v = &g->values[io[i].value];
        if (skip_inits && (v->flags & OT_VAL_INIT))
            continue;
        char shape[512];
        shape_text(v, shape, sizeof shape);
        printf("  ");
        ot_cli_text_str(stdout, v->name);
        pad(name_w, ot_cli_text_width(v->name));
        printf("  %-*s  ", (int)type_w, dtype_text(v->dtype));
        ot_cli_text_str(stdout, shape);
        putchar('\n');
    }
}

static void print_node_label(const ot_graph *g, int32_t id)
{
    const ot_node *n = &g->nodes[id];
    if (n->name && n->name[0])
        ot_cli_text_str(stdout, n->name);
    else
        printf("#%d", (int)id);
}

static void print_nodes_text(const ot_graph *g)
{
    size_t name_w = 4, op_w = 2;
    int idx_w = snprintf(NULL, 0, "%d", (int)(g->n_nodes > 0 ? g->n_nodes - 1 : 0));
    for (int32_t i = 0; i < g->n_nodes; i++) {
        size_t w = ot_cli_text_width(g->nodes[i].name);
        name_w = w > name_w ? w : name_w;
        w = ot_cli_text_width(g->nodes[i].op_type);
        op_w = w > op_w ? w : op_w;
    }
    name_w = name_w > 48 ? 48 : name_w;
    op_w = op_w > 24 ? 24 : op_w;
    if (idx_w < 1)
        idx_w = 1;

    printf("\nnodes:\n  %*s  %-*s  %-*s  inputs -> output shapes\n", idx_w, "#", (int)name_w,
           "name", (int)op_w, "op");
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        printf("  %*d  ", idx_w, (int)i);
        ot_cli_text_str(stdout, n->name);
        pad(name_w, ot_cli_text_width(n->name));
        printf("  ");
        ot_cli_text_str(stdout, n->op_type);
        pad(op_w, ot_cli_text_width(n->op_type));
        printf("  ");
        for (int k = 0; k < n->n_in; k++) {
            if (k)
                printf(", ");
            if (n->in[k] < 0)
                printf("-"); /* an omitted optional input */
            else
                ot_cli_text_str(stdout, value_name(g, n->in[k]));
        }
        printf(" -> ");
        for (int k = 0; k < n->n_out; k++) {
            if (k)
                printf(", ");
            if (n->out[k] < 0 || n->out[k] >= g->n_values) {
                printf("-");
                continue;
            }
            char shape[512];
            shape_text(&g->values[n->out[k]], shape, sizeof shape);
            ot_cli_text_str(stdout, shape);
        }
        putchar('\n');
    }
}

static void print_text(const ot_graph *g, const char *path, const summary *s, bool nodes)
{
    char a[64], b[64];

    printf("model: ");
    ot_cli_text_str(stdout, path);
    printf("\nir_version: %" PRId64 "\nopsets:", g->ir_version);
    for (int32_t i = 0; i < g->n_opsets; i++) {
        const char *d = norm_domain(g->opsets[i].domain);
        printf("%s ", i ? "," : "");
        ot_cli_text_str(stdout, d[0] ? d : "ai.onnx");
        printf(" %" PRId64, g->opsets[i].version);
    }
    if (g->n_opsets == 0)
        printf(" none");
    printf("\nproducer: ");
    if (g->producer_name && g->producer_name[0]) {
        ot_cli_text_str(stdout, g->producer_name);
        if (g->producer_version && g->producer_version[0]) {
            putchar(' ');
            ot_cli_text_str(stdout, g->producer_version);
        }
    } else {
        printf("unknown");
    }

    printf("\ninputs: %d\n", s->n_real_inputs);
    print_io_list(g, g->inputs, g->n_inputs, true);
    if (s->n_input_inits)
        printf("  (%d more graph inputs are initializers)\n", s->n_input_inits);
    printf("outputs: %d\n", (int)g->n_outputs);
    print_io_list(g, g->outputs, g->n_outputs, false);

    printf("nodes: %d\n", (int)g->n_nodes);
    size_t op_w = 0;
    for (int i = 0; i < s->n_ops; i++) {
        size_t w = ot_cli_text_width(s->ops[i].label);
        op_w = w > op_w ? w : op_w;
    }
    for (int i = 0; i < s->n_ops; i++) {
        printf("  ");
        ot_cli_text_str(stdout, s->ops[i].label);
        pad(op_w, ot_cli_text_width(s->ops[i].label));
        printf("  %d%s\n", s->ops[i].count, s->ops[i].opaque ? "  (outside the op table)" : "");
    }
    printf("initializers: %d\n", (int)g->n_inits);
    ot_cli_group_digits(s->n_params, a, sizeof a);
    ot_cli_human_bytes(s->param_bytes, b, sizeof b);
    printf("parameters: %s params (%s)\n", a, b);

    if (s->head.found) {
        printf("head: ");
        print_node_label(g, s->head.node);
        printf(" (%s) %" PRId64 " -> %" PRId64 "\n", s->head.kind, s->head.in_features,
               s->head.out_features);
    } else {
        printf("head: none found\n");
    }

    if (s->n_opaque_nodes) {
        printf("note: %d node%s use%s ops outside onnxtrain's table (", s->n_opaque_nodes,
               s->n_opaque_nodes == 1 ? "" : "s", s->n_opaque_nodes == 1 ? "s" : "");
        int k = 0;
        for (int i = 0; i < s->n_ops; i++) {
            if (!s->ops[i].opaque)
                continue;
            printf("%s", k++ ? ", " : "");
            ot_cli_text_str(stdout, s->ops[i].label);
        }
        printf("); shapes downstream of them are unknown\n");
    }
    if (nodes)
        print_nodes_text(g);
}

/* ----------------------------------------------------------- JSON output */

static json_t *json_shape(const ot_value *v)
{
    if (v->ndim < 0 || v->ndim > OT_MAX_DIMS)
        return json_null();
    json_t *a = json_array();
    for (int i = 0; i < v->ndim; i++) {
        if (v->dims[i] >= 0)
            a = ot_json_push(a, json_integer(v->dims[i]));
        else if (v->dim_names[i] && v->dim_names[i][0])
            a = ot_json_push(a, ot_json_text(v->dim_names[i]));
        else
            a = ot_json_push(a, json_null());
    }
    return a;
}

static json_t *json_value(const ot_value *v)
{
    json_t *o = json_object();
    o = ot_json_set(o, "name", ot_json_text(str_or_empty(v->name)));
    o = ot_json_set(o, "dtype", ot_json_text(v->dtype == OT_DTYPE_UNDEFINED
                                                  ? NULL
                                                  : ot_dtype_name((int)v->dtype)));
    return ot_json_set(o, "shape", json_shape(v));
}

static json_t *json_io_list(const ot_graph *g, const ot_io *io, int32_t n, bool skip_inits)
{
    json_t *a = json_array();
    for (int32_t i = 0; i < n; i++) {
        const ot_value *v = &g->values[io[i].value];
        if (!(skip_inits && (v->flags & OT_VAL_INIT)))
            a = ot_json_push(a, json_value(v));
    }
    return a;
}

static json_t *json_nodes(const ot_graph *g)
{
    json_t *a = json_array();
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        json_t *o = json_object();
        o = ot_json_set(o, "index", json_integer(i));
        o = ot_json_set(o, "name", ot_json_text(str_or_empty(n->name)));
        o = ot_json_set(o, "op", ot_json_text(str_or_empty(n->op_type)));
        o = ot_json_set(o, "domain", ot_json_text(norm_domain(n->domain)));
        json_t *in = json_array();
        for (int k = 0; k < n->n_in; k++)
            in = ot_json_push(in, ot_json_text(n->in[k] < 0 ? NULL : value_name(g, n->in[k])));
        o = ot_json_set(o, "inputs", in);
        json_t *out = json_array();
        for (int k = 0; k < n->n_out; k++)
            out = ot_json_push(out, n->out[k] < 0 || n->out[k] >= g->n_values
                                        ? json_null()
                                        : json_value(&g->values[n->out[k]]));
        o = ot_json_set(o, "outputs", out);
        a = ot_json_push(a, o);
    }
    return a;
}

/* True when an earlier opset entry names the same domain. */
static bool opset_repeated(const ot_graph *g, int32_t i)
{
    for (int32_t j = 0; j < i; j++)
        if (strcmp(norm_domain(g->opsets[j].domain), norm_domain(g->opsets[i].domain)) == 0)
            return true;
    return false;
}

static int print_json(const ot_graph *g, const char *path, const summary *s, bool nodes)
{
    json_t *o = json_object();
    o = ot_json_set(o, "model", ot_json_text(path));
    o = ot_json_set(o, "ir_version", json_integer(g->ir_version));
    json_t *opsets = json_object();
    for (int32_t i = 0; i < g->n_opsets; i++) {
        if (opset_repeated(g, i))
            continue; /* "" and "ai.onnx" both: one key */
        /* a domain that is not UTF-8 is a key of U+FFFD in its place */
        json_t *d = ot_json_text(norm_domain(g->opsets[i].domain));
        opsets = ot_json_set(opsets, d ? json_string_value(d) : "",
                             d ? json_integer(g->opsets[i].version) : NULL);
        json_decref(d);
    }
    o = ot_json_set(o, "opsets", opsets);
    json_t *prod = json_object();
    prod = ot_json_set(prod, "name", ot_json_text(str_or_empty(g->producer_name)));
    prod = ot_json_set(prod, "version", ot_json_text(str_or_empty(g->producer_version)));
    o = ot_json_set(o, "producer", prod);
    o = ot_json_set(o, "inputs", json_io_list(g, g->inputs, g->n_inputs, true));
    o = ot_json_set(o, "n_inputs_initializers", json_integer(s->n_input_inits));
    o = ot_json_set(o, "outputs", json_io_list(g, g->outputs, g->n_outputs, false));
    json_t *ops = json_object();
    for (int i = 0; i < s->n_ops; i++) {
        json_t *l = ot_json_text(s->ops[i].label);
        ops = ot_json_set(ops, l ? json_string_value(l) : "", l ? json_integer(s->ops[i].count)
                                                                : NULL);
        json_decref(l);
    }
    o = ot_json_set(o, "ops", ops);
    o = ot_json_set(o, "n_nodes", json_integer(g->n_nodes));
    o = ot_json_set(o, "n_initializers", json_integer(g->n_inits));
    o = ot_json_set(o, "n_params", json_integer((json_int_t)s->n_params));
    o = ot_json_set(o, "param_bytes", json_integer((json_int_t)s->param_bytes));
    json_t *head = json_null();
    if (s->head.found) {
        const ot_node *n = &g->nodes[s->head.node];
        head = json_object();
        head = ot_json_set(head, "node", ot_json_text(str_or_empty(n->name)));
        head = ot_json_set(head, "index", json_integer(s->head.node));
        head = ot_json_set(head, "op", ot_json_text(s->head.kind));
        head = ot_json_set(head, "in_features", json_integer(s->head.in_features));
        head = ot_json_set(head, "out_features", json_integer(s->head.out_features));
        head = ot_json_set(head, "weight", ot_json_text(value_name(g, s->head.weight)));
        head = ot_json_set(head, "bias", ot_json_text(s->head.bias >= 0
                                                          ? value_name(g, s->head.bias)
                                                          : NULL));
    }
    o = ot_json_set(o, "head", head);
    json_t *opaque = json_array();
    for (int i = 0; i < s->n_ops; i++)
        if (s->ops[i].opaque)
            opaque = ot_json_push(opaque, ot_json_text(s->ops[i].label));
    o = ot_json_set(o, "opaque_ops", opaque);
    if (nodes)
        o = ot_json_set(o, "nodes", json_nodes(g));
    return ot_cli_print_json(o);
}

/* ------------------------------------------------------------- command */

int ot_cmd_inspect(int argc, char **argv)
{
    ot_cli_args args;
    ot_graph *g = NULL;
    summary s;
    memset(&s, 0, sizeof s);
    inspect_args o = { 0 };
    int rc = ot_cli_parse_into(&inspect_cmd, argc, argv, &args, &o);
    if (rc != OT_EXIT_OK)
        return rc;
    if (args.help) {
        ot_cli_print_usage(&inspect_cmd, stdout);
        goto done;
    }

    ot_import_opts opts = { 0 };
    opts.skip_external_data = 1; /* shapes are enough */
    opts.max_tensor_bytes = o.max_tensor_bytes;

    const char *path = args.pos[0];
    ot_err err;
    ot_err_init(&err);
    if (ot_model_import(path, &opts, &g, &err) != OT_OK) {
        rc = ot_cli_error("%s", err.msg);
        goto done;
    }
    if (ot_graph_check_finite(g, &err) != OT_OK) /* inspect shows the model as it is */
        ot_log(OT_LOG_WARN, "%s: %s", path, err.msg);
    rc = summarize(g, &s);
    if (rc != OT_EXIT_OK)
        goto done;
    if (o.training) {
        if (!o.json)
            print_text(g, path, &s, o.nodes);
        rc = ot_cli_inspect_training(g, path, &inspect_cmd, &o.plan, o.json);
        goto done;
    }
    if (o.json)
        rc = print_json(g, path, &s, o.nodes);
    else
        print_text(g, path, &s, o.nodes);

done:
    summary_fini(&s);
    ot_graph_free(g);
    ot_cli_args_fini(&args);
    return rc;
}
