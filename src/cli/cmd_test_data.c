/*
 * cmd_test_data.c: `onnxtrain test-data DIR... [--rtol R] [--atol A] [--json]
 * [--threads N] [-v]`.
 *
 * Runs ONNX backend-test folders: DIR/model.onnx with DIR/test_data_set_<k>/
 * input_<i>.pb and output_<i>.pb (the layout of ONNX's own node tests, of the
 * model zoo and of tests/fixtures/make_model_tests.py). Data sets run in
 * numeric order. Inputs bind as in `onnxtrain run` (by the tensor's name
 * when it names a graph input, else by position); outputs compare by
 * position. One executor is compiled per distinct set of input shapes and
 * shape-deciding input values, so a folder may mix batch sizes.
 *
 * Comparison: dtype and shape exactly; floats elementwise with
 * |got - want| <= atol + rtol * |want|, NaN only against NaN and an infinity
 * only against the same infinity; integers and bools exactly. The max
 * relative error is reported over elements with |want| > atol, where it
 * means something.
 *
 * Per folder one line: PASS, FAIL (the worst element of the first failing
 * output), or ERROR when the folder cannot run at all (import, inputs,
 * compile: an op or dtype outside what the executor runs). Errors count as
 * failures. The last line is "test-data: N passed, N failed"; --json prints
 * one object instead. Exit status 0 only when every folder passed.
 */
#include <dirent.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/feed.h"
#include "cli/json.h"
#include "onnx/onnx.h"

typedef struct td_args {
    double rtol, atol;
    bool json;
    int threads;
    const char *device;
    ot_precision precision;
    ot_cli_plan_args plans;
} td_args;

enum { TD_RTOL, TD_ATOL, TD_JSON, TD_THREADS, TD_DEVICE, TD_PRECISION, OT_CLI_PLAN_IDS(TD), TD_N_OPTS };

static const ot_cli_opt td_opts[TD_N_OPTS + 1] = {
    [TD_RTOL] = OT_CLI_REAL_OPT(td_args, rtol, "rtol", 0, "R", 0, 1e30,
                                "relative tolerance (default 1e-3)"),
    [TD_ATOL] = OT_CLI_REAL_OPT(td_args, atol, "atol", 0, "A", 0, 1e30,
                                "absolute tolerance (default 1e-5)"),
    [TD_JSON] = OT_CLI_FLAG_OPT(td_args, json, "json", 0, "print the results as one JSON object"),
    [TD_THREADS] = OT_CLI_INT_OPT(td_args, threads, "threads", 0, "N", 1, OT_CLI_THREADS_MAX,
                                  "CPU threads, 1 to 4096 (default OMP_NUM_THREADS, else all "
                                  "cores)"),
    [TD_DEVICE] = OT_CLI_DEVICE_OPT(td_args, device),
    [TD_PRECISION] = OT_CLI_PRECISION_OPT(td_args, precision),
    OT_CLI_PLAN_ROWS(TD, td_args, plans),
};

static const ot_cli_cmd td_cmd = {
    .name = "test-data",
    .args = "DIR [DIR...]",
    .summary = "Runs ONNX test folders (model.onnx and test_data_set_*/input_*.pb,\n"
               "output_*.pb) and compares the outputs with the expected ones.",
    .details =
        "An element passes when |got - want| <= atol + rtol * |want|; NaN must meet NaN and\n"
        "an infinity the same infinity; integer and bool outputs must be equal, and dtypes\n"
        "and shapes must match exactly. Each folder prints PASS, FAIL (the worst element:\n"
        "index, got, want, error, tolerance) or ERROR (the folder cannot run: import,\n"
        "inputs, or an op or dtype the executor does not run); errors count as failures.\n"
        "-v adds a line per data set. Exit status 0 only when every folder passed.\n"
        "JSON: {\"results\": [{dir, status (pass, fail, error), data_sets, max_abs_err,\n"
        "max_rel_err, reason, code, unsupported_dtype}], \"passed\", \"failed\"}.\n",
    .opts = td_opts,
    .n_pos_min = 1,
    .n_pos_max = INT_MAX,
};

typedef enum { R_PASS, R_FAIL, R_ERROR } result_kind;

typedef struct result {
    result_kind kind;
    int n_sets;
    double max_abs, max_rel;
    ot_status code;         /* R_ERROR: the status that stopped the folder    */
    bool unsupported_dtype; /* R_ERROR: a dtype outside float/int/bool tensors */
    char reason[OT_ERR_MSG_MAX + 512];
} result;

/* A compiled executor and the inputs it was compiled for (const data owned). */
typedef struct cached {
    ot_exec *x;
    ot_exec_input *sig;
    int n_sig;
} cached;

typedef struct runner {
    double rtol, atol;
    int threads;
    ot_device device;
    ot_precision precision;
    bool verbose;
    cached *cache;
    int n_cache, cap_cache;
} runner;

/* ------------------------------------------------------------ listing */

typedef struct entry {
    long long num;
    char *name;
} entry;

static int by_num(const void *pa, const void *pb)
{
    const entry *a = pa, *b = pb;
    if (a->num != b->num)
        return a->num < b->num ? -1 : 1;
    return strcmp(a->name, b->name);
}

static void free_entries(entry *e, int n)
{
    for (int i = 0; i < n && e; i++)
        free(e[i].name);
    free(e);
}

/* Lists the entries of dir named PREFIX<digits>SUFFIX, sorted by the number.
   Returns the count, or -1 when dir cannot be read (errno set). */
static int list_numbered(const char *dir, const char *prefix, const char *suffix, entry **out)
{
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    entry *e = NULL;
    int n = 0, cap = 0;
    size_t pl = strlen(prefix), sl = strlen(suffix);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *nm = de->d_name;
        size_t len = strlen(nm);
        if (len <= pl + sl || strncmp(nm, prefix, pl) != 0 || strcmp(nm + len - sl, suffix) != 0)
            continue;
        size_t nd = len - pl - sl;
        if (nd > 9 || strspn(nm + pl, "0123456789") != nd)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            entry *ne = realloc(e, sizeof *e * (size_t)cap);
            if (!ne)
                goto oom;
            e = ne;
        }
        e[n].num = strtoll(nm + pl, NULL, 10);
        e[n].name = strdup(nm);
        if (!e[n].name)
            goto oom;
        n++;
    }
    closedir(d);
    if (n > 1)
        qsort(e, (size_t)n, sizeof *e, by_num);
    *out = e;
    return n;
oom:
    closedir(d);
    free_entries(e, n);
    return -2;
}

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* ------------------------------------------------------------ compile cache */

static void cache_clear(runner *r)
{
    for (int i = 0; i < r->n_cache; i++) {
        ot_exec_free(r->cache[i].x);
        for (int k = 0; k < r->cache[i].n_sig; k++)
            ot_free(r->cache[i].sig[k].tensor.data);
        free(r->cache[i].sig);
    }
    r->n_cache = 0;
}

/* The executor for these inputs: cached, or compiled now and cached. */
static ot_status get_exec(runner *r, const ot_graph *g, const ot_exec_input *inputs, int n,
                          ot_exec **out, bool *reused, ot_err *err)
{
    ot_status st = OT_OK;
    ot_exec *x = NULL;
    ot_exec_input *sig = NULL;
    for (int i = 0; i < r->n_cache; i++) {
        if (ot_feed_same_signature(r->cache[i].sig, inputs, n)) {
            *out = r->cache[i].x;
            *reused = true;
            return OT_OK;
        }
    }
    *reused = false;
    ot_exec_opts opts = { .device = r->device, .cpu.threads = r->threads,
                          .precision = r->precision };
    OT_TRY(ot_exec_compile(g, inputs, n, &opts, &x, err));
    if (r->n_cache == r->cap_cache) {
        int cap = r->cap_cache ? r->cap_cache * 2 : 4;
        cached *nc = realloc(r->cache, sizeof *nc * (size_t)cap);
        if (!nc)
            OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
        r->cache = nc;
        r->cap_cache = cap;
    }
    sig = calloc((size_t)n + 1, sizeof *sig);
    if (!sig)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    for (int k = 0; k < n; k++) {
        sig[k] = inputs[k];
        sig[k].tensor.data = NULL;
        if (inputs[k].const_value && inputs[k].tensor.bytes) {
            sig[k].tensor.data = ot_malloc(inputs[k].tensor.bytes);
            if (!sig[k].tensor.data)
                OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
            memcpy(sig[k].tensor.data, inputs[k].tensor.data, inputs[k].tensor.bytes);
        }
    }
    r->cache[r->n_cache].x = x;
    r->cache[r->n_cache].sig = sig;
    r->cache[r->n_cache].n_sig = n;
    r->n_cache++;
    *out = x;
    x = NULL;
    sig = NULL;
done:
    ot_exec_free(x);
    for (int k = 0; sig && k < n; k++)
        ot_free(sig[k].tensor.data);
    free(sig);
    return st;
}

/* ------------------------------------------------------------ comparison */

#define INF_D ((double)INFINITY)

static bool is_float_dtype(ot_dtype d)
{
    return d == OT_DTYPE_FLOAT || d == OT_DTYPE_DOUBLE || d == OT_DTYPE_FLOAT16 ||
           d == OT_DTYPE_BFLOAT16;
}

static void fmt_num(char *buf, size_t size, double v)
{
    if (v != v)
        snprintf(buf, size, "nan");
    else if (isinf(v))
        snprintf(buf, size, v > 0 ? "inf" : "-inf");
    else
        snprintf(buf, size, "%.9g", v);
}

/* Compares one output; fills res->reason and returns false on a mismatch.
   Updates the folder's max errors either way. */
static bool compare(const runner *r, const char *oname, int set, const ot_tensor *got,
                    const ot_tensor *want, result *res)
{
    char gs[256], ws[256];
    if (got->dtype != want->dtype) {
        snprintf(res->reason, sizeof res->reason,
                 "output '%s' data set %d: dtype %s, expected %s", oname, set,
                 ot_dtype_name(got->dtype), ot_dtype_name(want->dtype));
        return false;
    }
    bool same = got->ndim == want->ndim;
    for (int d = 0; same && d < got->ndim; d++)
        same = got->dims[d] == want->dims[d];
    if (!same) {
        ot_feed_dims_str(got, gs, sizeof gs);
        ot_feed_dims_str(want, ws, sizeof ws);
        snprintf(res->reason, sizeof res->reason,
                 "output '%s' data set %d: shape %s, expected %s", oname, set, gs, ws);
        return false;
    }
    int64_t n = ot_tensor_numel(want);
    int64_t worst = -1;
    double worst_ratio = 0.0, worst_err = 0.0, worst_tol = 0.0;
    bool is_float = is_float_dtype(want->dtype);
    size_t esize = ot_dtype_size(want->dtype);
    for (int64_t i = 0; i < n; i++) {
        double g = ot_tensor_get_f64(got, i), w = ot_tensor_get_f64(want, i);
        double err = fabs(g - w), tol = 0.0, ratio;
        if (!is_float) {
            bool eq = memcmp((const char *)got->data + (size_t)i * esize,
                             (const char *)want->data + (size_t)i * esize, esize) == 0;
            ratio = eq ? 0.0 : INF_D;
            if (eq)
                err = 0.0;
        } else if (g != g || w != w) {
            ratio = (g != g && w != w) ? 0.0 : INF_D;
            err = ratio == 0.0 ? 0.0 : INF_D;
        } else if (isinf(g) || isinf(w)) {
            ratio = g == w ? 0.0 : INF_D;
            err = g == w ? 0.0 : INF_D;
        } else {
            tol = r->atol + r->rtol * fabs(w);
            ratio = tol > 0.0 ? err / tol : err > 0.0 ? INF_D : 0.0;
            if (err > res->max_abs)
                res->max_abs = err;
            if (fabs(w) > r->atol && err / fabs(w) > res->max_rel)
                res->max_rel = err / fabs(w);
        }
        bool fails = is_float ? (ratio == INF_D || err > tol) : ratio != 0.0;
        if (fails && (worst < 0 || ratio > worst_ratio)) {
            worst = i;
            worst_ratio = ratio;
            worst_err = err;
            worst_tol = tol;
        }
    }
    if (worst < 0)
        return true;
    char idx[256], gv[64], wv[64], ev[64], tv[64];
    ot_feed_index_str(want, worst, idx, sizeof idx);
    if (is_float) {
        fmt_num(gv, sizeof gv, ot_tensor_get_f64(got, worst));
        fmt_num(wv, sizeof wv, ot_tensor_get_f64(want, worst));
    } else {
        FILE *m = fmemopen(gv, sizeof gv, "w");
        if (m) {
            ot_feed_print_elem(m, got, worst);
            fclose(m);
        }
        m = fmemopen(wv, sizeof wv, "w");
        if (m) {
            ot_feed_print_elem(m, want, worst);
            fclose(m);
        }
    }
    fmt_num(ev, sizeof ev, worst_err);
    fmt_num(tv, sizeof tv, worst_tol);
    snprintf(res->reason, sizeof res->reason,
             "output '%s' data set %d: worst index %s: got %s want %s (abs err %s, tolerance %s)",
             oname, set, idx, gv, wv, ev, tv);
    return false;
}

/* ------------------------------------------------------------ one folder */

static bool mentions_bad_dtype(const char *msg)
{
    static const char *const words[] = { "string", "complex", "sequence", "map", "optional" };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strstr(msg, words[i]))
            return true;
    return false;
}

static void set_error(result *res, ot_status code, const char *fmt, ...) OT_PRINTF(3, 4);

static void set_error(result *res, ot_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->reason, sizeof res->reason, fmt, ap);
    va_end(ap);
    res->kind = R_ERROR;
    res->code = code;
}

/* Refuses graph inputs and outputs that are not numeric tensors (strings,
   complex numbers, sequences, maps, optionals: the importer leaves the type
   of the last three unknown). */
static bool check_types(const ot_graph *g, result *res)
{
    for (int pass = 0; pass < 2; pass++) {
        const ot_io *io = pass ? g->outputs : g->inputs;
        int32_t n = pass ? g->n_outputs : g->n_inputs;
        for (int32_t i = 0; i < n; i++) {
            const ot_value *v = &g->values[io[i].value];
            if (v->flags & OT_VAL_INIT)
                continue;
            const char *what = pass ? "output" : "input";
            if (v->dtype == OT_DTYPE_UNDEFINED) {
                set_error(res, OT_ERR_UNSUPPORTED,
                          "%s '%s' is not a tensor of a known dtype (a sequence, map or "
                          "optional?); the executor runs numeric tensors only",
                          what, v->name);
            } else if (!ot_dtype_is_numeric(v->dtype) || v->dtype == OT_DTYPE_COMPLEX64 ||
                       v->dtype == OT_DTYPE_COMPLEX128) {
                set_error(res, OT_ERR_UNSUPPORTED,
                          "%s '%s' has dtype %s; the executor runs float, integer and bool "
                          "tensors only",
                          what, v->name, ot_dtype_name(v->dtype));
            } else {
                continue;
            }
            res->unsupported_dtype = true;
            return false;
        }
    }
    return true;
}

static void run_set(runner *r, const ot_graph *g, const char *set_dir, int set, result *res)
{
    ot_err err;
    ot_feed feed = { 0 };
    entry *ins = NULL, *outs = NULL;
    int n_ins = 0, n_outs = 0;
    ot_exec_input *inputs = NULL;
    ot_tensor *run_in = NULL, want = { 0 };
    char *path = NULL;
    /* this data set's errors, folded into the folder's at the end */
    double folder_abs = res->max_abs, folder_rel = res->max_rel;
    res->max_abs = res->max_rel = 0.0;
    ot_err_init(&err);

    n_ins = list_numbered(set_dir, "input_", ".pb", &ins);
    n_outs = list_numbered(set_dir, "output_", ".pb", &outs);
    if (n_ins < 0 || n_outs < 0) {
        set_error(res, OT_ERR_IO, "%s: cannot list the folder", set_dir);
        goto done;
    }
    if (ot_feed_init(&feed, g, &err) != OT_OK) {
        set_error(res, err.code, "%s", err.msg);
        goto done;
    }
    for (int i = 0; i < n_ins; i++) {
        free(path);
        path = join(set_dir, ins[i].name);
        if (!path || ot_feed_add_file(&feed, g, path, i, &err) != OT_OK) {
            set_error(res, path ? err.code : OT_ERR_NOMEM, "data set %d: %s", set,
                      path ? err.msg : "out of memory");
            goto done;
        }
    }
    if (ot_feed_check(&feed, g, &err) != OT_OK) {
        set_error(res, err.code, "data set %d: %s", set, err.msg);
        goto done;
    }
    inputs = calloc((size_t)feed.n + 1, sizeof *inputs);
    run_in = calloc((size_t)feed.n + 1, sizeof *run_in);
    if (!inputs || !run_in) {
        set_error(res, OT_ERR_NOMEM, "out of memory");
        goto done;
    }
    ot_feed_exec_inputs(&feed, g, inputs);
    for (int k = 0; k < feed.n; k++)
        run_in[k] = feed.tensors[k];
    ot_exec *x = NULL;
    bool reused = false;
    if (get_exec(r, g, inputs, feed.n, &x, &reused, &err) != OT_OK) {
        set_error(res, err.code, "%s", err.msg);
        res->unsupported_dtype = err.code == OT_ERR_UNSUPPORTED && mentions_bad_dtype(err.msg);
        goto done;
    }
    if (ot_exec_run(x, run_in, feed.n, &err) != OT_OK) {
        set_error(res, err.code, "data set %d: %s", set, err.msg);
        goto done;
    }
    int n_out = ot_exec_n_outputs(x);
    if (n_outs != n_out) {
        res->kind = R_FAIL;
        snprintf(res->reason, sizeof res->reason,
                 "data set %d: %d output files, the model has %d outputs", set, n_outs, n_out);
        goto done;
    }
    for (int k = 0; k < n_out; k++) {
        free(path);
        path = join(set_dir, outs[k].name);
        if (!path) {
            set_error(res, OT_ERR_NOMEM, "out of memory");
            goto done;
        }
        if (ot_onnx_read_tensor(path, &want, NULL, &err) != OT_OK) {
            set_error(res, err.code, "data set %d: %s", set, err.msg);
            goto done;
        }
        if (!compare(r, ot_exec_output_name(x, k), set, ot_exec_output(x, k), &want, res)) {
            res->kind = R_FAIL;
            goto done;
        }
        ot_free(want.data);
        want.data = NULL;
    }
    if (r->verbose)
        printf("  data set %d: %s, %s executor, max abs err %.3g, max rel err %.3g\n", set,
               set_dir, reused ? "reused" : "compiled", res->max_abs, res->max_rel);
done:
    res->max_abs = fmax(res->max_abs, folder_abs);
    res->max_rel = fmax(res->max_rel, folder_rel);
    ot_free(want.data);
    free(path);
    free(inputs);
    free(run_in);
    ot_feed_fini(&feed);
    free_entries(ins, n_ins);
    free_entries(outs, n_outs);
}

static void run_folder(runner *r, const char *dir, result *res)
{
    ot_graph *g = NULL;
    entry *sets = NULL;
    int n_sets = 0;
    char *model = join(dir, "model.onnx");
    ot_err err;
    ot_err_init(&err);
    memset(res, 0, sizeof *res);
    if (!model) {
        set_error(res, OT_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (ot_model_import(model, NULL, &g, &err) != OT_OK) {
        set_error(res, err.code, "%s", err.msg);
        goto done;
    }
    if (ot_graph_check_finite(g, &err) != OT_OK) {
        set_error(res, err.code, "%s: %s", model, err.msg);
        goto done;
    }
    if (!check_types(g, res))
        goto done;
    n_sets = list_numbered(dir, "test_data_set_", "", &sets);
    if (n_sets < 0) {
        set_error(res, OT_ERR_IO, "cannot list the folder");
        n_sets = 0;
        goto done;
    }
    if (n_sets == 0) {
        set_error(res, OT_ERR_IO, "no test_data_set_* folders");
        goto done;
    }
    for (int i = 0; i < n_sets && res->kind == R_PASS; i++) {
        char *set_dir = join(dir, sets[i].name);
        if (!set_dir) {
            set_error(res, OT_ERR_NOMEM, "out of memory");
            break;
        }
        run_set(r, g, set_dir, (int)sets[i].num, res);
        free(set_dir);
        if (res->kind == R_PASS)
            res->n_sets++;
    }
done:
    cache_clear(r);
    free_entries(sets, n_sets);
    ot_graph_free(g);
    free(model);
}

/* ------------------------------------------------------------ output */

static void print_text(const char *dir, const result *res)
{
    switch (res->kind) {
    case R_PASS:
        printf("PASS ");
        ot_cli_text_str(stdout, dir);
        printf(" (%d data set%s, max abs err %.3g, max rel err %.3g)\n", res->n_sets,
               res->n_sets == 1 ? "" : "s", res->max_abs, res->max_rel);
        break;
    case R_FAIL:
    case R_ERROR:
        printf("%s ", res->kind == R_FAIL ? "FAIL" : "ERROR");
        ot_cli_text_str(stdout, dir);
        printf(": ");
        ot_cli_text_str(stdout, res->reason);
        putchar('\n');
        break;
    }
    fflush(stdout);
}

static json_t *json_result(const char *dir, const result *res)
{
    static const char *const kinds[] = { "pass", "fail", "error" };
    json_t *o = json_object();
    o = ot_json_set(o, "dir", ot_json_text(dir));
    o = ot_json_set(o, "status", ot_json_text(kinds[res->kind]));
    o = ot_json_set(o, "data_sets", json_integer(res->n_sets));
    o = ot_json_set(o, "max_abs_err", ot_json_real(res->max_abs));
    o = ot_json_set(o, "max_rel_err", ot_json_real(res->max_rel));
    if (res->kind != R_PASS)
        o = ot_json_set(o, "reason", ot_json_text(res->reason));
    if (res->kind == R_ERROR) {
        o = ot_json_set(o, "code", ot_json_text(ot_status_str(res->code)));
        o = ot_json_set(o, "unsupported_dtype", json_boolean(res->unsupported_dtype));
    }
    return o;
}

int ot_cmd_test_data(int argc, char **argv)
{
    ot_cli_args args;
    runner r = { 0 };
    td_args o = { .rtol = 1e-3, .atol = 1e-5 };
    int rc = ot_cli_parse_into(&td_cmd, argc, argv, &args, &o);
    if (rc != OT_EXIT_OK)
        return rc;
    if (args.help) {
        ot_cli_print_usage(&td_cmd, stdout);
        goto done;
    }
    if ((rc = ot_cli_device(&td_cmd, o.device, &r.device)) != OT_EXIT_OK ||
        (rc = ot_cli_precision(&r.device, o.precision)) != OT_EXIT_OK ||
        (rc = ot_cli_plans(&o.plans)) != OT_EXIT_OK)
        goto done;
    r.precision = o.precision;
    r.rtol = o.rtol;
    r.atol = o.atol;
    r.threads = o.threads;
    bool json = o.json;
    r.verbose = !json && ot_log_enabled(OT_LOG_INFO);

    int passed = 0, failed = 0;
    bool written = true;
    /* one result per line as each folder ends, so that a reader learns what
       ran before a crash */
    if (json)
        fputs("{\"results\": [\n", stdout);
    for (int i = 0; i < args.n_pos; i++) {
        result res;
        run_folder(&r, args.pos[i], &res);
        if (res.kind == R_PASS)
            passed++;
        else
            failed++;
        if (json) {
            json_t *j = json_result(args.pos[i], &res);
            fputs(i ? ",\n" : "", stdout);
            written = ot_json_write_line(stdout, j) && written;
            json_decref(j);
            fflush(stdout);
        } else {
            print_text(args.pos[i], &res);
        }
    }
    rc = failed ? OT_EXIT_ERROR : OT_EXIT_OK;
    if (json) {
        printf("\n], \"passed\": %d, \"failed\": %d}\n", passed, failed);
        if (!written)
            rc = ot_cli_error("out of memory");
    } else {
        printf("test-data: %d passed, %d failed\n", passed, failed);
    }
    ot_cli_precision_said(stderr, o.precision);
done:
    free(r.cache);
    ot_cli_args_fini(&args);
    return rc;
}
