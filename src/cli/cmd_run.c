/*
 * cmd_run.c: `onnxtrain run MODEL --input FILE.pb [--input ...]
 * [--output-dir DIR] [--json] [--random] [--batch N] [--seed S]
 * [--threads N]`.
 *
 * Runs a model once on the CPU executor. Inputs are TensorProto files (the
 * format of ONNX test data), bound by name ("x=FILE.pb"), by the tensor's own
 * name, or by position among the real inputs (see feed.h); --random makes
 * seeded data for the inputs not given. The bound tensors are checked
 * against the declared dtypes and shapes before compiling, so a wrong input
 * is reported by its name rather than as a compile error.
 *
 * Outputs: with --output-dir, output_0.pb, output_1.pb, ... in graph-output
 * order, each named after its output (the layout of test_data_set_*
 * folders); without it, each output's name, dtype, shape and first values.
 * --json prints {"outputs": [{name, dtype, shape, min, max, mean, std,
 * argmax, first}]} instead of the text; non-finite numbers are null there.
 *
 * Not here: timing (`make bench`), training.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/feed.h"
#include "cli/json.h"
#include "onnx/onnx.h"

#define N_FIRST 8

typedef struct run_args {
    ot_cli_list input;
    const char *output_dir;
    bool json, random, profile;
    int64_t batch;
    uint64_t seed, max_tensor_bytes;
    int threads;
    const char *device;
    ot_precision precision;
    ot_cli_plan_args plans;
} run_args;

enum {
    RUN_INPUT,
    RUN_OUTPUT_DIR,
    RUN_JSON,
    RUN_RANDOM,
    RUN_BATCH,
    RUN_SEED,
    RUN_THREADS,
    RUN_PROFILE,
    RUN_MAX_TENSOR_SIZE,
    RUN_DEVICE,
    RUN_PRECISION,
    OT_CLI_PLAN_IDS(RUN),
    RUN_N_OPTS
};

static const ot_cli_opt run_opts[RUN_N_OPTS + 1] = {
    [RUN_INPUT] = OT_CLI_LIST_OPT(run_args, input, "input", 0, "[NAME=]FILE.pb",
                                  "an input tensor file; repeat for several (bare files bind by "
                                  "tensor name or position)"),
    [RUN_OUTPUT_DIR] = OT_CLI_PATH_OPT(run_args, output_dir, "output-dir", 'o', "DIR",
                                       "write output_0.pb, output_1.pb, ... to DIR (created)"),
    [RUN_JSON] = OT_CLI_FLAG_OPT(run_args, json, "json", 0,
                                 "print output statistics as one JSON object"),
    [RUN_RANDOM] = OT_CLI_FLAG_OPT(run_args, random, "random", 0,
                                   "feed seeded random data to the inputs not given with --input"),
    [RUN_BATCH] = OT_CLI_INT_OPT(run_args, batch, "batch", 0, "N", 1, INT32_MAX,
                                 "dim 0 of dynamic-batch inputs made by --random (default 1)"),
    [RUN_SEED] = OT_CLI_INT_OPT(run_args, seed, "seed", 0, "S", 0, OT_CLI_SEED_MAX,
                                "seed of --random (default 0)"),
    [RUN_THREADS] = OT_CLI_INT_OPT(run_args, threads, "threads", 0, "N", 1, OT_CLI_THREADS_MAX,
                                   "CPU threads, 1 to 4096 (default OMP_NUM_THREADS, else the "
                                   "free cores)"),
    [RUN_PROFILE] = OT_CLI_FLAG_OPT(run_args, profile, "profile", 0,
                                    "print the time per node type and per node (stderr)"),
    [RUN_MAX_TENSOR_SIZE] = OT_CLI_MAX_TENSOR_SIZE_OPT(run_args, max_tensor_bytes),
    [RUN_DEVICE] = OT_CLI_DEVICE_OPT(run_args, device),
    [RUN_PRECISION] = OT_CLI_PRECISION_OPT(run_args, precision),
    OT_CLI_PLAN_ROWS(RUN, run_args, plans),
};

static const ot_cli_cmd run_cmd = {
    .name = "run",
    .args = "MODEL",
    .summary = "Runs an ONNX model once on a device (the CPU or a GPU) and prints or writes its outputs.",
    .details =
        "Inputs are TensorProto files (.pb, as in ONNX test data). '--input x=FILE.pb' binds\n"
        "the graph input x; a bare FILE.pb binds to the input its tensor names, else to the\n"
        "inputs in order (the graph inputs that are not initializers). Every input must be\n"
        "bound once, with the declared dtype, rank and fixed dims. --random fills the rest\n"
        "with seeded data: floats uniform in [-1, 1), integers in [0, 4); a dynamic dim 0\n"
        "is --batch, other dynamic dims must come from a file.\n"
        "Without --output-dir, prints each output's name, dtype, shape and first values.\n"
        "JSON keys: outputs [{name, dtype, shape, min, max, mean, std, argmax (flat index\n"
        "of the first maximum), first (up to 8 values)}]; NaN and Inf print as null.\n",
    .opts = run_opts,
    .n_pos_min = 1,
    .n_pos_max = 1,
};

/* Summary statistics of one output, over its finite values for min/max/mean/std. */
typedef struct stats {
    double min, max, mean, std;
    int64_t argmax; /* -1 when there is no finite value */
    int64_t n_nan, n_inf;
} stats;

static void compute_stats(const ot_tensor *t, stats *s)
{
    int64_t n = ot_tensor_numel(t);
    double sum = 0.0, sum2 = 0.0;
    int64_t count = 0;
    memset(s, 0, sizeof *s);
    s->argmax = -1;
    for (int64_t i = 0; i < n; i++) {
        double v = ot_tensor_get_f64(t, i);
        if (v != v) {
            s->n_nan++;
            continue;
        }
        if (isinf(v)) {
            s->n_inf++;
            continue;
        }
        if (count == 0 || v < s->min)
            s->min = v;
        if (count == 0 || v > s->max) {
            s->max = v;
            s->argmax = i;
        }
        sum += v;
        count++;
    }
    if (count) {
        s->mean = sum / (double)count;
        for (int64_t i = 0; i < n; i++) {
            double v = ot_tensor_get_f64(t, i);
            if (v == v && !isinf(v))
                sum2 += (v - s->mean) * (v - s->mean);
        }
        s->std = sqrt(sum2 / (double)count);
    }
}

/* Element i of t as a JSON value: null for NaN and infinities. */
static json_t *json_elem(const ot_tensor *t, int64_t i)
{
    if (t->dtype == OT_DTYPE_FLOAT || t->dtype == OT_DTYPE_DOUBLE ||
        t->dtype == OT_DTYPE_FLOAT16 || t->dtype == OT_DTYPE_BFLOAT16)
        return ot_json_real(ot_tensor_get_f64(t, i));
    if (t->dtype == OT_DTYPE_UINT64) {
        uint64_t u;
        memcpy(&u, (const unsigned char *)t->data + (size_t)i * 8, 8);
        return u <= INT64_MAX ? json_integer((json_int_t)u) : json_real((double)u);
    }
    return json_integer(ot_tensor_get_i64(t, i));
}

static int print_json(const ot_exec *x)
{
    json_t *outs = json_array();
    for (int i = 0; i < ot_exec_n_outputs(x); i++) {
        const ot_tensor *t = ot_exec_output(x, i);
        stats s;
        compute_stats(t, &s);
        bool has = s.argmax >= 0;
        json_t *o = json_object();
        o = ot_json_set(o, "name", ot_json_text(ot_exec_output_name(x, i)));
        o = ot_json_set(o, "dtype", ot_json_text(ot_dtype_name(t->dtype)));
        json_t *shape = json_array();
        for (int d = 0; d < t->ndim; d++)
            shape = ot_json_push(shape, json_integer(t->dims[d]));
        o = ot_json_set(o, "shape", shape);
        o = ot_json_set(o, "min", has ? ot_json_real(s.min) : json_null());
        o = ot_json_set(o, "max", has ? ot_json_real(s.max) : json_null());
        o = ot_json_set(o, "mean", has ? ot_json_real(s.mean) : json_null());
        o = ot_json_set(o, "std", has ? ot_json_real(s.std) : json_null());
        o = ot_json_set(o, "argmax", has ? json_integer(s.argmax) : json_null());
        json_t *first = json_array();
        int64_t n = ot_tensor_numel(t);
        for (int64_t k = 0; k < n && k < N_FIRST; k++)
            first = ot_json_push(first, json_elem(t, k));
        o = ot_json_set(o, "first", first);
        outs = ot_json_push(outs, o);
    }
    return ot_cli_print_json(ot_json_set(json_object(), "outputs", outs));
}

static void print_text(const ot_exec *x)
{
    for (int i = 0; i < ot_exec_n_outputs(x); i++) {
        const ot_tensor *t = ot_exec_output(x, i);
        char dims[256];
        ot_feed_dims_str(t, dims, sizeof dims);
        ot_cli_text_str(stdout, ot_exec_output_name(x, i));
        int64_t n = ot_tensor_numel(t);
        printf(": %s %s:", ot_dtype_name(t->dtype), dims);
        for (int64_t k = 0; k < n && k < N_FIRST; k++) {
            putchar(' ');
            ot_feed_print_elem(stdout, t, k);
        }
        if (n > N_FIRST)
            printf(" ... (%" PRId64 " values)", n);
        putchar('\n');
    }
}

/* The file of an --input spec: FILE.pb or NAME=FILE.pb (as feed.c reads it). */
static const char *spec_file(const char *spec)
{
    struct stat sb;
    const char *eq = strchr(spec, '=');
    return eq && eq > spec && stat(spec, &sb) != 0 ? eq + 1 : spec;
}

/* Writes output_<i>.pb for every output into dir, all or nothing: every file
   is written and synced under a temporary name first, and only then are they
   renamed into place, so that a failure (a full disk) leaves the folder's
   earlier outputs as they were, none mixed with new ones. An output that is
   the same file as an input is refused. Returns an exit status. */
static int write_outputs(const ot_exec *x, const char *dir, const char *const *in_files,
                         int n_in_files, bool quiet)
{
    ot_err err;
    ot_err_init(&err);
    if (ot_feed_mkdirs(dir, &err) != OT_OK)
        return ot_cli_error("%s", err.msg);
    int n_out = ot_exec_n_outputs(x);
    size_t n = strlen(dir) + 32;
    char *paths = malloc(n * (size_t)(n_out > 0 ? n_out : 1));
    ot_atomic_file *af = calloc((size_t)(n_out > 0 ? n_out : 1), sizeof *af);
    int rc = OT_EXIT_OK, staged = 0;
    if (!paths || !af) {
        rc = ot_cli_error("out of memory");
        goto done;
    }
    for (int i = 0; i < n_out; i++) {
        snprintf(paths + n * (size_t)i, n, "%s/output_%d.pb", dir, i);
        for (int k = 0; k < n_in_files && rc == OT_EXIT_OK; k++)
            rc = ot_cli_distinct(paths + n * (size_t)i, "output", spec_file(in_files[k]),
                                 "input");
        if (rc != OT_EXIT_OK)
            goto done;
    }
    for (; staged < n_out; staged++) {
        const char *path = paths + n * (size_t)staged;
        if (ot_onnx_write_tensor_staged(path, ot_exec_output_name(x, staged),
                                        ot_exec_output(x, staged), &af[staged],
                                        &err) != OT_OK) {
            rc = ot_cli_error("%s", err.msg);
            goto done;
        }
    }
    for (int i = 0; i < n_out; i++) {
        if (ot_atomic_rename(&af[i], &err) != OT_OK) {
            rc = ot_cli_error("%s", err.msg);
            goto done;
        }
    }
    for (int i = 0; i < n_out && !quiet; i++) {
        const ot_tensor *t = ot_exec_output(x, i);
        char dims[256];
        ot_feed_dims_str(t, dims, sizeof dims);
        printf("wrote ");
        ot_cli_text_str(stdout, paths + n * (size_t)i);
        printf(" (");
        ot_cli_text_str(stdout, ot_exec_output_name(x, i));
        printf(": %s %s)\n", ot_dtype_name(t->dtype), dims);
    }
done:
    for (int i = 0; i < staged; i++)
        ot_atomic_abort(&af[i]); /* nothing left to do for those renamed */
    free(af);
    free(paths);
    return rc;
}

int ot_cmd_run(int argc, char **argv)
{
    ot_cli_args args;
    ot_graph *g = NULL;
    ot_exec *x = NULL;
    ot_feed feed = { 0 };
    ot_exec_input *inputs = NULL;
    ot_tensor *run_in = NULL;
    ot_err err;
    ot_err_init(&err);
    run_args o = { .batch = 1 };
    int rc = ot_cli_parse_into(&run_cmd, argc, argv, &args, &o);
    if (rc != OT_EXIT_OK)
        return rc;
    if (args.help) {
        ot_cli_print_usage(&run_cmd, stdout);
        goto done;
    }

    ot_device device;
    if ((rc = ot_cli_device(&run_cmd, o.device, &device)) != OT_EXIT_OK ||
        (rc = ot_cli_precision(&device, o.precision)) != OT_EXIT_OK ||
        (rc = ot_cli_plans(&o.plans)) != OT_EXIT_OK)
        goto done;
    ot_import_opts iopts = { .max_tensor_bytes = o.max_tensor_bytes };
    if (args.count[RUN_BATCH] && !o.random)
        ot_log(OT_LOG_WARN, "--batch is ignored without --random");
    if (args.count[RUN_SEED] && !o.random)
        ot_log(OT_LOG_WARN, "--seed is ignored without --random");

    const char *const *files = o.input.v;
    int n_files = o.input.n;
    if (n_files == 0 && !o.random) {
        rc = ot_cli_usage_error(&run_cmd, "no input given (use --input FILE.pb or --random)");
        goto done;
    }

    const char *model = args.pos[0];
    if (ot_model_import(model, &iopts, &g, &err) != OT_OK ||
        ot_feed_init(&feed, g, &err) != OT_OK) {
        rc = ot_cli_error("%s", err.msg);
        goto done;
    }
    if (ot_graph_check_finite(g, &err) != OT_OK) {
        rc = ot_cli_error("%s: %s", model, err.msg);
        goto done;
    }
    for (int i = 0; i < n_files; i++) {
        if (ot_feed_add_file(&feed, g, files[i], i, &err) != OT_OK) {
            rc = ot_cli_error("%s", err.msg);
            goto done;
        }
    }
    if (o.random && ot_feed_random(&feed, g, o.batch, o.seed, &err) != OT_OK) {
        rc = ot_cli_error("%s: %s", model, err.msg);
        goto done;
    }
    if (ot_feed_check(&feed, g, &err) != OT_OK) {
        rc = ot_cli_error("%s: %s%s", model, err.msg,
                          err.code == OT_ERR_ARG && strstr(err.msg, "is not bound")
                              ? " (give --input NAME=FILE.pb, or --random)"
                              : "");
        goto done;
    }

    inputs = calloc((size_t)feed.n + 1, sizeof *inputs);
    run_in = calloc((size_t)feed.n + 1, sizeof *run_in);
    if (!inputs || !run_in) {
        rc = ot_cli_error("out of memory");
        goto done;
    }
    ot_feed_exec_inputs(&feed, g, inputs);
    for (int k = 0; k < feed.n; k++)
        run_in[k] = feed.tensors[k];
    ot_exec_opts xopts = { .device = device,
                           .cpu = { .threads = ot_cli_threads(o.threads, NULL), .winograd = true },
                           .profile = o.profile,
                           .precision = o.precision };
    if (ot_exec_compile(g, inputs, feed.n, &xopts, &x, &err) != OT_OK ||
        ot_exec_run(x, run_in, feed.n, &err) != OT_OK) {
        rc = ot_cli_error("%s: %s", model, err.msg);
        goto done;
    }
    ot_cli_precision_said(stderr, o.precision);

    if (o.output_dir) {
        rc = write_outputs(x, o.output_dir, files, n_files, o.json);
        if (rc != OT_EXIT_OK)
            goto done;
    }
    if (o.json)
        rc = print_json(x);
    else if (!o.output_dir)
        print_text(x);
    if (xopts.profile) {
        const struct ot_exec *xs[1] = { x };
        const char *names[1] = { "model" };
        ot_cli_print_profile(stderr, xs, names, 1, NULL, NULL, 0);
    }

done:
    ot_exec_free(x);
    ot_feed_fini(&feed);
    ot_graph_free(g);
    free(inputs);
    free(run_in);
    ot_cli_args_fini(&args);
    return rc;
}
