/*
 * cmd_verify.c: `onnxtrain verify MODEL [--reference REF] [--data DIR]
 * [--batch N] [--seed S] [--tolerance T]`.
 *
 * Runs MODEL in onnxtrain and in the deployment runtimes found on this
 * machine, and compares every output with the baseline: REF run in
 * onnxtrain when given, else MODEL run in onnxtrain (onnxruntime's result
 * when onnxtrain cannot run the model). Per runtime it reports whether it
 * ran, whether the model loaded (with the runtime's reason when not), the
 * max abs difference and, for outputs of shape (N, C), the top-1 agreement.
 *
 * Runtimes are found at run time and never downloaded:
 *   onnxruntime  `node` with the npm package onnxruntime-node on NODE_PATH
 *                (tools/runtimes/verify_ort.js);
 *   OpenCV DNN   `python3` with cv2 (python3-opencv;
 *                tools/runtimes/verify_opencv.py).
 * The scripts are looked for in $ONNXTRAIN_RUNTIMES, beside the program
 * (../tools/runtimes in the build tree, ../share/onnxtrain/runtimes when
 * installed). Runtimes that cannot be installed here (TensorRT, OpenVINO)
 * are only linted: the rules of docs/deploy.md, each with its source.
 *
 * Inputs: the tensors of DIR (input_0.pb, input_1.pb ..., as in ONNX test
 * data); or, when DIR holds no input_0.pb, the images of an image data set
 * (image folders, CIFAR-10, IDX: its test split, else its training split;
 * --images N, --data-classes) read by onnxtrain's loaders with the
 * preprocessing the model records, run in batches, with each runtime's
 * top-1 accuracy against the labels beside its agreement; or seeded random
 * data (batch N for a dynamic batch dim).
 *
 * Exit status 1 when a runtime that ran disagrees beyond the tolerance, or
 * fails to load a model it should load (onnxruntime: any valid model;
 * OpenCV: any model the lint does not predict it refuses); 0 otherwise.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/feed.h"
#include "cli/json.h"
#include "data/data.h"
#include "graph/graph.h"
#include "ops/ops.h"
#include "train/finetune.h"
#include "train/layout.h"

typedef struct verify_args {
    const char *reference, *data, *data_classes;
    int64_t batch, seed, images;
    double tolerance;
    uint64_t max_tensor_bytes;
} verify_args;

enum { VF_REFERENCE, VF_DATA, VF_IMAGES, VF_DATA_CLASSES, VF_BATCH, VF_SEED, VF_TOLERANCE,
       VF_MAX_TENSOR_SIZE, VF_N_OPTS };

static const ot_cli_opt verify_opts[VF_N_OPTS + 1] = {
    [VF_REFERENCE] = OT_CLI_PATH_OPT(verify_args, reference, "reference", 0, "REF.onnx",
                                     "compare against this model run in onnxtrain (e.g. the "
                                     "model before conversion)"),
    [VF_DATA] = OT_CLI_PATH_OPT(verify_args, data, "data", 0, "DIR",
                                "input tensors DIR/input_0.pb, input_1.pb ..., or an image data "
                                "set (its test split; default: seeded random data)"),
    [VF_IMAGES] = OT_CLI_INT_OPT(verify_args, images, "images", 0, "N", 1, INT64_MAX / 4,
                                 "--data images: at most N, spread evenly (default all)"),
    [VF_DATA_CLASSES] = OT_CLI_STRING_OPT(verify_args, data_classes, "data-classes", 0, "LIST",
                                          "--data images: only these classes, relabelled 0.. "
                                          "(e.g. 5-9)"),
    [VF_BATCH] = OT_CLI_INT_OPT(verify_args, batch, "batch", 0, "N", 1, 4096,
                                "batch of the random data for a dynamic batch dim (default 2)"),
    [VF_SEED] = OT_CLI_INT_OPT(verify_args, seed, "seed", 0, "S", 0, OT_CLI_SEED_MAX,
                               "seed of the random data (default 0)"),
    [VF_TOLERANCE] = OT_CLI_REAL_OPT(verify_args, tolerance, "tolerance", 0, "T", 0.0, 1e30,
                                     "largest max abs difference accepted (default 1e-4)"),
    [VF_MAX_TENSOR_SIZE] = OT_CLI_MAX_TENSOR_SIZE_OPT(verify_args, max_tensor_bytes),
};

static const ot_cli_cmd verify_cmd = {
    .name = "verify",
    .args = "MODEL",
    .summary = "Runs a model in onnxtrain and in the deployment runtimes found here\n"
               "(onnxruntime, OpenCV DNN), compares their outputs, and lints the model\n"
               "against the rules of runtimes that are not installed (TensorRT, OpenVINO).",
    .details = "Each runtime is reported as run (loaded or not, with the reason; max abs\n"
               "difference and top-1 agreement against the baseline), not available, or\n"
               "linted only. The baseline is --reference run in onnxtrain, else MODEL run\n"
               "in onnxtrain. --data DIR without input_0.pb is an image data set: its test\n"
               "split (else training split) with the model's recorded preprocessing, and\n"
               "each runtime's top-1 accuracy on its labels is printed too. The last line\n"
               "says which runtimes ran and which were only linted.\n"
               "Exit status 1 when a runtime that ran disagrees beyond\n"
               "--tolerance or fails to load a model it should load. docs/deploy.md lists\n"
               "the lint rules and their sources.\n",
    .opts = verify_opts,
    .n_pos_min = 1,
    .n_pos_max = 1,
};

/* One runtime's outputs, as doubles, by graph-output position. */
typedef struct outputs {
    int n;
    char **names;
    int64_t (*dims)[OT_MAX_DIMS];
    int *ndim;
    double **data;
    int64_t *numel;
} outputs;

static void outputs_free(outputs *o)
{
    for (int i = 0; i < o->n; i++) {
        free(o->names ? o->names[i] : NULL);
        free(o->data ? o->data[i] : NULL);
    }
    free(o->names);
    free(o->dims);
    free(o->ndim);
    free(o->data);
    free(o->numel);
    memset(o, 0, sizeof *o);
}

static bool outputs_alloc(outputs *o, int n)
{
    o->n = n;
    o->names = calloc((size_t)n + 1, sizeof *o->names);
    o->dims = calloc((size_t)n + 1, sizeof *o->dims);
    o->ndim = calloc((size_t)n + 1, sizeof *o->ndim);
    o->data = calloc((size_t)n + 1, sizeof *o->data);
    o->numel = calloc((size_t)n + 1, sizeof *o->numel);
    return o->names && o->dims && o->ndim && o->data && o->numel;
}

static double elem(const ot_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case OT_DTYPE_FLOAT: return ((const float *)t->data)[i];
    case OT_DTYPE_DOUBLE: return ((const double *)t->data)[i];
    case OT_DTYPE_FLOAT16: return ot_f16_to_f32(((const uint16_t *)t->data)[i]);
    case OT_DTYPE_INT64: return (double)((const int64_t *)t->data)[i];
    case OT_DTYPE_INT32: return ((const int32_t *)t->data)[i];
    case OT_DTYPE_INT8: return ((const int8_t *)t->data)[i];
    case OT_DTYPE_UINT8:
    case OT_DTYPE_BOOL: return ((const uint8_t *)t->data)[i];
    default: return NAN;
    }
}

/* Runs g in onnxtrain on the feed; fills out. Errors in err. */
static ot_status run_onnxtrain(ot_graph *g, const ot_feed *feed, outputs *out, ot_err *err)
{
    ot_status st = OT_OK;
    ot_exec *x = NULL;
    ot_exec_input *inputs = calloc((size_t)feed->n + 1, sizeof *inputs);
    ot_tensor *run_in = calloc((size_t)feed->n + 1, sizeof *run_in);
    if (!inputs || !run_in)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    ot_feed_exec_inputs(feed, g, inputs);
    for (int k = 0; k < feed->n; k++)
        run_in[k] = feed->tensors[k];
    ot_exec_opts xopts = { 0 };
    OT_TRY(ot_exec_compile(g, inputs, feed->n, &xopts, &x, err));
    OT_TRY(ot_exec_run(x, run_in, feed->n, err));
    if (!outputs_alloc(out, ot_exec_n_outputs(x)))
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    for (int i = 0; i < out->n; i++) {
        const ot_tensor *t = ot_exec_output(x, i);
        int64_t numel = ot_tensor_numel(t);
        out->names[i] = strdup(ot_exec_output_name(x, i));
        out->data[i] = malloc(sizeof(double) * (size_t)(numel ? numel : 1));
        if (!out->names[i] || !out->data[i])
            OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
        out->ndim[i] = t->ndim;
        memcpy(out->dims[i], t->dims, sizeof t->dims);
        out->numel[i] = numel;
        for (int64_t k = 0; k < numel; k++)
            out->data[i][k] = elem(t, k);
    }
done:
    ot_exec_free(x);
    free(inputs);
    free(run_in);
    return st;
}

/* Binds the tensors of `from` (a feed of another graph) to ref's real
   inputs: by name, else by position. The data is copied. */
static ot_status feed_like(ot_feed *f, const ot_graph *ref, const ot_feed *from,
                           const ot_graph *g, ot_err *err)
{
    ot_status st = ot_feed_init(f, ref, err);
    if (st != OT_OK)
        return st;
    for (int i = 0; i < f->n; i++) {
        int k = -1;
        for (int j = 0; j < from->n && k < 0; j++)
            if (strcmp(g->values[from->ids[j]].name, ref->values[f->ids[i]].name) == 0)
                k = j;
        if (k < 0)
            k = i < from->n ? i : -1;
        if (k < 0)
            return ot_err_set(err, OT_ERR_ARG, "the reference's input '%s' has no counterpart",
                              ref->values[f->ids[i]].name);
        f->tensors[i] = from->tensors[k];
        f->tensors[i].data = ot_malloc(from->tensors[k].bytes ? from->tensors[k].bytes : 1);
        if (!f->tensors[i].data)
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
        if (from->tensors[k].bytes)
            memcpy(f->tensors[i].data, from->tensors[k].data, from->tensors[k].bytes);
        f->bound[i] = true;
    }
    return OT_OK;
}

/* ------------------------------------------------------- files and children */

/* Writes a tensor as a .npy file (version 1.0, C order). */
static bool write_npy(const char *path, const ot_tensor *t)
{
    const char *descr;
    switch (t->dtype) {
    case OT_DTYPE_FLOAT: descr = "<f4"; break;
    case OT_DTYPE_DOUBLE: descr = "<f8"; break;
    case OT_DTYPE_INT64: descr = "<i8"; break;
    case OT_DTYPE_INT32: descr = "<i4"; break;
    case OT_DTYPE_UINT8: descr = "|u1"; break;
    case OT_DTYPE_INT8: descr = "|i1"; break;
    case OT_DTYPE_BOOL: descr = "|b1"; break;
    default: return false;
    }
    char shape[256] = "", h[512];
    size_t at = 0;
    for (int i = 0; i < t->ndim && at < sizeof shape - 32; i++)
        at += (size_t)snprintf(shape + at, sizeof shape - at, "%lld,%s", (long long)t->dims[i],
                               i + 1 < t->ndim ? " " : "");
    int len = snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }",
                       descr, shape);
    if (len < 0 || (size_t)len > sizeof h - 80)
        return false;
    while ((10 + len + 1) % 64)
        h[len++] = ' ';
    h[len++] = '\n';
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    unsigned char pre[10] = { 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(len & 0xff),
                              (unsigned char)(len >> 8) };
    bool ok = fwrite(pre, 1, 10, f) == 10 && fwrite(h, 1, (size_t)len, f) == (size_t)len &&
              (t->bytes == 0 || fwrite(t->data, 1, t->bytes, f) == t->bytes);
    return fclose(f) == 0 && ok;
}

/* Runs argv (argv[0] looked up on PATH) with stdout and stderr into `log`;
   returns its exit status, 127 when it could not start, 128+sig when killed. */
static int run_child(char *const *argv, const char *log)
{
    pid_t pid = fork();
    if (pid < 0)
        return 127;
    if (pid == 0) {
        FILE *f = fopen(log, "w");
        if (f) {
            dup2(fileno(f), 1);
            dup2(fileno(f), 2);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return 127;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* The last line of a log file, for messages. */
static void last_line(const char *path, char *buf, size_t size)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (line[0] && line[0] != '\n')
            snprintf(buf, size, "%.*s", (int)(size > 1 ? size - 1 : 0), line);
    fclose(f);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
}

/* Finds tools/runtimes/<script>: $ONNXTRAIN_RUNTIMES, then beside the
   program. */
static bool find_script(const char *script, char *out, size_t size)
{
    const char *env = getenv("ONNXTRAIN_RUNTIMES");
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    const char *dirs[3] = { env, NULL, NULL };
    char d1[4200], d2[4200];
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        snprintf(d1, sizeof d1, "%s/../tools/runtimes", exe);
        snprintf(d2, sizeof d2, "%s/../share/onnxtrain/runtimes", exe);
        dirs[1] = d1;
        dirs[2] = d2;
    }
    for (int i = 0; i < 3; i++) {
        if (!dirs[i])
            continue;
        snprintf(out, size, "%s/%s", dirs[i], script);
        if (access(out, R_OK) == 0)
            return true;
    }
    return false;
}

/* Reads a runtime script's OUT.json: outputs, or the error it reported. */
static bool read_json_outputs(const char *path, outputs *out, char *why, size_t size)
{
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    if (!doc) {
        snprintf(why, size, "no result (%s)", jerr.text);
        return false;
    }
    json_t *e = json_object_get(doc, "error");
    if (json_is_string(e)) {
        snprintf(why, size, "%s", json_string_value(e));
        json_decref(doc);
        return false;
    }
    json_t *arr = json_object_get(doc, "outputs");
    size_t n = json_array_size(arr);
    if (!outputs_alloc(out, (int)n)) {
        snprintf(why, size, "out of memory");
        json_decref(doc);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i), *dims = json_object_get(o, "dims"),
               *data = json_object_get(o, "data");
        out->names[i] = strdup(json_string_value(json_object_get(o, "name")) ?
                               json_string_value(json_object_get(o, "name")) : "");
        out->ndim[i] = (int)json_array_size(dims);
        if (out->ndim[i] > OT_MAX_DIMS)
            out->ndim[i] = OT_MAX_DIMS;
        for (int d = 0; d < out->ndim[i]; d++)
            out->dims[i][d] = json_integer_value(json_array_get(dims, (size_t)d));
        size_t m = json_array_size(data);
        out->numel[i] = (int64_t)m;
        out->data[i] = malloc(sizeof(double) * (m ? m : 1));
        if (!out->data[i] || !out->names[i]) {
            snprintf(why, size, "out of memory");
            json_decref(doc);
            return false;
        }
        for (size_t k = 0; k < m; k++) {
            json_t *v = json_array_get(data, k);
            if (json_is_number(v))
                out->data[i][k] = json_number_value(v);
            else if (json_is_string(v))
                out->data[i][k] = strcmp(json_string_value(v), "Infinity") == 0    ? INFINITY
                                  : strcmp(json_string_value(v), "-Infinity") == 0 ? -INFINITY
                                                                                   : NAN;
            else
                out->data[i][k] = NAN;
        }
    }
    json_decref(doc);
    return true;
}

/* ----------------------------------------------------------- comparing */

typedef struct verdict {
    const char *name;
    bool available;  /* the runtime was found                       */
    bool loaded;     /* it loaded and ran the model                 */
    bool expected_refusal; /* the lint predicts this runtime refuses it */
    char why[OT_ERR_MSG_MAX + 64]; /* not available / not loaded: the reason */
    double max_abs;
    int agree, rows; /* top-1 agreement over (N, C) outputs          */
    bool shapes_ok;
} verdict;

static void compare(const outputs *base, const outputs *got, verdict *v)
{
    v->max_abs = 0;
    v->agree = v->rows = 0;
    v->shapes_ok = base->n == got->n;
    for (int i = 0; v->shapes_ok && i < base->n; i++) {
        if (base->numel[i] != got->numel[i]) {
            v->shapes_ok = false;
            break;
        }
        for (int64_t k = 0; k < base->numel[i]; k++) {
            double a = base->data[i][k], b = got->data[i][k];
            double d = (isnan(a) && isnan(b)) || a == b ? 0.0 : fabs(a - b);
            if (isnan(d) || d > v->max_abs)
                v->max_abs = isnan(d) ? (double)INFINITY : d;
        }
        if (base->ndim[i] == 2 && base->dims[i][1] > 1) {
            int64_t rows = base->dims[i][0], cols = base->dims[i][1];
            for (int64_t r = 0; r < rows; r++) {
                int64_t ba = 0, ga = 0;
                for (int64_t c = 1; c < cols; c++) {
                    if (base->data[i][r * cols + c] > base->data[i][r * cols + ba])
                        ba = c;
                    if (got->data[i][r * cols + c] > got->data[i][r * cols + ga])
                        ga = c;
                }
                v->agree += ba == ga;
                v->rows++;
            }
        }
    }
}

/* ---------------------------------------------------------------- lint */

typedef struct lint_facts {
    bool fp16_init;       /* float16 initializers                        */
    bool dq_on_const;     /* DequantizeLinear reading a constant         */
    bool qdq;             /* any QuantizeLinear / DequantizeLinear       */
    bool per_channel;     /* a QDQ scale with more than one element      */
    bool nonzero_zp;      /* a constant zero point that is not all zero  */
    bool uint8_q;         /* uint8 quantized tensors                     */
    bool dynamic_q;       /* DynamicQuantizeLinear                       */
    bool q_unpaired;      /* a QuantizeLinear read by other than DequantizeLinear */
    bool conv_no_kernel;  /* a Conv without kernel_shape                 */
    const char *dq_node;  /* the first DequantizeLinear on a constant    */
} lint_facts;

static void lint_scan(const ot_graph *g, lint_facts *f)
{
    memset(f, 0, sizeof *f);
    for (int32_t i = 0; i < g->n_inits; i++)
        if (g->values[g->inits[i]].dtype == OT_DTYPE_FLOAT16)
            f->fp16_init = true;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        if (!ot_domain_is_default(n->domain) || !n->op_type)
            continue;
        if (strcmp(n->op_type, "Conv") == 0 && !ot_node_find_attr(n, "kernel_shape"))
            f->conv_no_kernel = true;
        bool q = strcmp(n->op_type, "QuantizeLinear") == 0;
        bool dq = strcmp(n->op_type, "DequantizeLinear") == 0;
        if (strcmp(n->op_type, "DynamicQuantizeLinear") == 0)
            f->dynamic_q = true;
        if (!q && !dq)
            continue;
        f->qdq = true;
        for (int32_t j = 0; q && n->n_out > 0 && j < g->n_nodes; j++) {
            const ot_node *m = &g->nodes[j];
            for (int k = 0; k < m->n_in; k++)
                if (m->in[k] == n->out[0] &&
                    (!m->op_type || strcmp(m->op_type, "DequantizeLinear") != 0))
                    f->q_unpaired = true;
        }
        if (dq && n->n_in > 0 && n->in[0] >= 0 && ot_graph_const(g, n->in[0]) &&
            !f->dq_on_const) {
            f->dq_on_const = true;
            f->dq_node = n->name && *n->name ? n->name : "(unnamed)";
        }
        if (n->n_in > 1 && n->in[1] >= 0) {
            const ot_value *s = &g->values[n->in[1]];
            int64_t numel = 1;
            for (int d = 0; d < s->ndim; d++)
                numel *= s->dims[d] >= 0 ? s->dims[d] : 2;
            if (s->ndim < 0 || numel > 1)
                f->per_channel = true;
        }
        if (n->n_in > 2 && n->in[2] >= 0) {
            const ot_tensor *zp = ot_graph_const(g, n->in[2]);
            const ot_value *zv = &g->values[n->in[2]];
            if (zv->dtype == OT_DTYPE_UINT8)
                f->uint8_q = true;
            if (zp)
                for (size_t k = 0; k < zp->bytes; k++)
                    if (((const uint8_t *)zp->data)[k] != 0)
                        f->nonzero_zp = true;
            if (!zp)
                f->nonzero_zp = true; /* computed: cannot be shown symmetric */
        } else if (q) {
            f->uint8_q = true; /* QuantizeLinear without a zero point gives uint8 */
        }
    }
}

/* One lint line: "  RUNTIME: ok|problem: text [rule]". Returns problem. */
static bool lint_line(const char *rt, bool problem, const char *text, const char *rule)
{
    printf("  %-10s %s %s [%s]\n", rt, problem ? "PROBLEM" : "ok     ", text, rule);
    return problem;
}

static void lint_report(const ot_graph *g, const lint_facts *f)
{
    int64_t opset = ot_graph_opset(g, "");
    printf("lint (rules of runtimes not installed here; sources in docs/deploy.md):\n");
    if (!f->qdq && !f->dynamic_q) {
        lint_line("TensorRT", false, "no quantization nodes", "TRT-Q");
    } else {
        lint_line("TensorRT", f->nonzero_zp || f->uint8_q,
                  f->nonzero_zp || f->uint8_q ? "quantization is not symmetric int8 (zero "
                                                "point 0, int8)"
                                              : "symmetric int8 quantization",
                  "TRT-1");
        lint_line("TensorRT", f->per_channel && opset < 13,
                  f->per_channel ? (opset < 13 ? "per-channel QDQ below opset 13"
                                               : "per-channel QDQ at opset >= 13")
                                 : "per-tensor QDQ",
                  "TRT-2");
    }
    lint_line("TensorRT", f->dynamic_q,
              f->dynamic_q ? "DynamicQuantizeLinear is not supported" : "no DynamicQuantizeLinear",
              "TRT-3");
    lint_line("OpenVINO", f->q_unpaired,
              f->q_unpaired ? "a QuantizeLinear is read by other than a DequantizeLinear (not a "
                              "Q/DQ pair)"
                            : f->qdq ? "QuantizeLinear/DequantizeLinear pairs" : "no quantization",
              "OV-1");
    lint_line("OpenCV4.6", f->fp16_init,
              f->fp16_init ? "float16 weights are not loaded" : "float32 weights", "CV-1");
    lint_line("OpenCV4.6", f->dq_on_const,
              f->dq_on_const ? "DequantizeLinear on constant weights is not loaded"
                             : "no DequantizeLinear on constant weights",
              "CV-2");
    lint_line("OpenCV4.6", f->conv_no_kernel,
              f->conv_no_kernel ? "a Conv without kernel_shape (optional in ONNX) is not loaded"
                                : "every Conv states kernel_shape",
              "CV-3");
}

/* What a runtime script's exit status `st` says: 127 the interpreter is
   missing, 3 the runtime is; else it ran and wrote OUT.json (0) or failed.
   Fills v and, when the model ran, *got. */
static void runtime_status(int st, const char *no_interp, const char *no_runtime,
                           const char *log, const char *out, verdict *v, outputs *got)
{
    if (st == 127) {
        snprintf(v->why, sizeof v->why, "%s", no_interp);
    } else if (st == 3) {
        snprintf(v->why, sizeof v->why, "%s", no_runtime);
    } else if (st != 0) {
        v->available = true;
        char l[400];
        last_line(log, l, sizeof l);
        snprintf(v->why, sizeof v->why, "exit %d: %s", st, l);
    } else {
        v->available = true;
        v->loaded = read_json_outputs(out, got, v->why, sizeof v->why);
    }
}

/* ------------------------------------------------------------- command */

enum { RT_ONNXTRAIN, RT_ORT, RT_OPENCV, RT_N };
enum { BASE_NONE, BASE_REF, BASE_ONNXTRAIN, BASE_ORT };

/* One verify run: the models, and per runtime its verdict summed over the
   batches of inputs. */
typedef struct vrun {
    ot_graph *g, *ref;
    const char *model, *reference;
    const char *tmp;
    verdict vs[RT_N];
    lint_facts lf;
    int base;      /* BASE_*: decided by the first batch                 */
    int batches;   /* batches run so far                                 */
    bool ort_script, cv_script;
    char ort_path[4096], cv_path[4096];
    /* labelled images: per runtime (and the reference) the top-1 hits */
    int64_t labelled, hits[RT_N], ref_hits;
} vrun;

static void merge(verdict *into, const verdict *v)
{
    if (v->max_abs > into->max_abs || isnan(v->max_abs))
        into->max_abs = v->max_abs;
    into->agree += v->agree;
    into->rows += v->rows;
    into->shapes_ok = into->shapes_ok && v->shapes_ok;
}

/* Images of output 0 (N, C) whose top-1 is their label. */
static int64_t label_hits(const outputs *o, const int64_t *labels, int64_t n)
{
    if (!labels || o->n < 1 || o->ndim[0] != 2 || o->dims[0][0] != n || o->dims[0][1] < 1)
        return 0;
    int64_t cols = o->dims[0][1], hits = 0;
    for (int64_t r = 0; r < n; r++) {
        int64_t best = 0;
        for (int64_t c = 1; c < cols; c++)
            if (o->data[0][r * cols + c] > o->data[0][r * cols + best])
                best = c;
        hits += best == labels[r];
    }
    return hits;
}

/* Runs a runtime script on MODEL with the batch's .npy inputs. */
static int run_script(vrun *r, bool python, const char *script, char **specs, int n_specs,
                      const char *out, const char *log)
{
    char names[4096] = "";
    size_t at = 0;
    for (int32_t i = 0; i < r->g->n_outputs && at < sizeof names - 1; i++)
        at += (size_t)snprintf(names + at, sizeof names - at, "%s%s", i ? "," : "",
                               r->g->values[r->g->outputs[i].value].name);
    char *av[64] = { python ? "python3" : "node", (char *)(uintptr_t)script,
                     (char *)(uintptr_t)r->model, (char *)(uintptr_t)out };
    int k = 4;
    if (python)
        av[k++] = names;
    for (int i = 0; i < n_specs && k < 62; i++)
        av[k++] = specs[i];
    av[k] = NULL;
    if (!python)
        return run_child(av, log);
    /* $ONNXTRAIN_PYTHON, else python3 on PATH, else Debian's, whose
       python3-opencv may be the one installed */
    const char *pys[3] = { getenv("ONNXTRAIN_PYTHON"), "python3", "/usr/bin/python3" };
    int st = 127;
    for (int p = 0; p < 3 && (st == 127 || st == 3); p++) {
        if (!pys[p] || !*pys[p] || (p == 2 && access(pys[p], X_OK) != 0))
            continue;
        av[0] = (char *)(uintptr_t)pys[p];
        int rr = run_child(av, log);
        if (rr != 127 || st == 127)
            st = rr;
    }
    return st;
}

/* Runs one batch of inputs through every runtime and sums the comparisons
   into r. labels (n of them) or NULL. Errors: the reference does not run,
   out of memory, an input with no .npy form. */
static ot_status verify_batch(vrun *r, const ot_feed *feed, const int64_t *labels, int64_t n,
                              ot_err *err)
{
    ot_status st = OT_OK;
    outputs base = { 0 }, mine = { 0 }, got[RT_N] = { { 0 } };
    bool ran[RT_N] = { false };
    char **specs = calloc((size_t)feed->n + 1, sizeof *specs);
    char out[4200], log[4200];
    bool first = r->batches++ == 0;
    if (!specs)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    for (int i = 0; i < feed->n; i++) {
        const char *nm = r->g->values[feed->ids[i]].name;
        size_t len = strlen(r->tmp) + strlen(nm) + 32;
        if (!(specs[i] = malloc(len)))
            OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
        snprintf(specs[i], len, "%s=%s/input_%d.npy", nm, r->tmp, i);
        if (!write_npy(strchr(specs[i], '=') + 1, &feed->tensors[i]))
            OT_FAIL(err, OT_ERR_UNSUPPORTED, "input '%s': its type has no .npy form for the "
                    "runtimes", nm);
    }
    if (r->ref) {
        ot_feed rfeed = { 0 };
        st = feed_like(&rfeed, r->ref, feed, r->g, err);
        if (st == OT_OK)
            st = run_onnxtrain(r->ref, &rfeed, &base, err);
        ot_feed_fini(&rfeed);
        if (st != OT_OK) {
            ot_err_prefix(err, "%s: the reference does not run in onnxtrain", r->reference);
            goto done;
        }
        r->ref_hits += label_hits(&base, labels, n);
    }
    /* onnxtrain */
    verdict *v = &r->vs[RT_ONNXTRAIN];
    v->available = true;
    if (first || v->loaded) {
        ot_err e;
        ot_err_init(&e);
        ran[RT_ONNXTRAIN] = run_onnxtrain(r->g, feed, &mine, &e) == OT_OK;
        if (!ran[RT_ONNXTRAIN])
            snprintf(v->why, sizeof v->why, "%s", e.msg);
        v->loaded = ran[RT_ONNXTRAIN];
    }
    /* onnxruntime and OpenCV */
    for (int rt = RT_ORT; rt <= RT_OPENCV; rt++) {
        v = &r->vs[rt];
        bool have = rt == RT_ORT ? r->ort_script : r->cv_script;
        if (!have || (!first && !v->loaded))
            continue;
        snprintf(out, sizeof out, "%s/%s.json", r->tmp, rt == RT_ORT ? "ort" : "cv");
        snprintf(log, sizeof log, "%s/%s.log", r->tmp, rt == RT_ORT ? "ort" : "cv");
        unlink(out);
        int cst = run_script(r, rt == RT_OPENCV, rt == RT_ORT ? r->ort_path : r->cv_path, specs,
                             feed->n, out, log);
        outputs_free(&got[rt]);
        v->loaded = false;
        if (rt == RT_ORT)
            runtime_status(cst, "node (Node.js) is not installed",
                           "onnxruntime-node is not installed (npm install onnxruntime-node; "
                           "NODE_PATH)", log, out, v, &got[rt]);
        else
            runtime_status(cst, "python3 is not installed",
                           "OpenCV's Python module is not installed (python3-opencv)", log, out,
                           v, &got[rt]);
        ran[rt] = v->loaded;
    }
    if (first)
        r->base = r->ref ? BASE_REF : ran[RT_ONNXTRAIN] ? BASE_ONNXTRAIN
                : ran[RT_ORT] ? BASE_ORT : BASE_NONE;
    const outputs *b = r->base == BASE_REF ? &base : r->base == BASE_ONNXTRAIN ? &mine
                     : r->base == BASE_ORT ? &got[RT_ORT] : NULL;
    if ((r->base == BASE_ONNXTRAIN && !ran[RT_ONNXTRAIN]) || (r->base == BASE_ORT && !ran[RT_ORT]))
        OT_FAIL(err, OT_ERR_UNSUPPORTED, "the baseline runtime failed on a later batch");
    for (int rt = 0; rt < RT_N; rt++) {
        if (!ran[rt])
            continue;
        const outputs *o = rt == RT_ONNXTRAIN ? &mine : &got[rt];
        r->hits[rt] += label_hits(o, labels, n);
        if (!b)
            continue;
        verdict one = { 0 };
        compare(b, o, &one);
        if (first) {
            r->vs[rt].max_abs = 0;
            r->vs[rt].shapes_ok = true;
            r->vs[rt].agree = r->vs[rt].rows = 0;
        }
        merge(&r->vs[rt], &one);
    }
    r->labelled += labels ? n : 0;
done:
    for (int i = 0; specs && i < feed->n; i++)
        free(specs[i]);
    free(specs);
    outputs_free(&base);
    outputs_free(&mine);
    for (int rt = 0; rt < RT_N; rt++)
        outputs_free(&got[rt]);
    return st;
}

/* Whether --data names a folder of tensor files (input_0.pb ...) rather
   than an image data set. */
static bool tensor_dir(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/input_0.pb", dir);
    return access(path, R_OK) == 0;
}

/* Runs the images of an image data set through the runtimes in batches:
   its test split (else its training split), with the preprocessing the
   model records (ot_finetune_model_transform), at most max_images spread
   evenly. */
static ot_status verify_images(vrun *r, const char *dir, const int *classes, int n_classes,
                               int64_t max_images, char *what, size_t what_size, ot_err *err)
{
    ot_status st = OT_OK;
    ot_dataset *ds = NULL;
    ot_data_transform t;
    ot_feed feed = { 0 };
    float *x = NULL, *xt = NULL;
    int64_t *labels = NULL, *idx = NULL;
    void *scratch = NULL;
    const ot_graph *meta = r->ref ? r->ref : r->g;
    ot_evaluate_opts eo = ot_evaluate_opts_default();
    eo.data = dir;
    eo.data_classes = classes;
    eo.n_data_classes = n_classes;
    ot_data_split split = ot_data_has_split(dir, OT_DATA_TEST) ? OT_DATA_TEST : OT_DATA_TRAIN;
    OT_TRY(ot_evaluate_data(&eo, meta, split, &ds, &t, err));
    OT_TRY(ot_feed_init(&feed, r->g, err));
    if (feed.n != 1)
        OT_FAIL(err, OT_ERR_ARG, "--data with images needs a model with one input (it has %d)",
                feed.n);
    const ot_value *iv = &r->g->values[feed.ids[0]];
    int h, w, ch;
    ot_data_shape(ds, &h, &w, &ch);
    int C = ot_data_out_channels(&t, ch), S = t.size;
    ot_image_layout lay = ot_image_layout_find(r->g, feed.ids[0]);
    if (iv->ndim != 4 || (iv->dims[lay.c] >= 0 && iv->dims[lay.c] != C) ||
        (iv->dims[lay.h] >= 0 && iv->dims[lay.h] != S) ||
        (iv->dims[lay.w] >= 0 && iv->dims[lay.w] != S))
        OT_FAIL(err, OT_ERR_ARG, "input '%s' does not take the %dx%dx%d images the model's "
                "preprocessing gives", iv->name, C, S, S);
    int64_t total = ot_data_count(ds);
    int64_t N = max_images > 0 && max_images < total ? max_images : total;
    size_t img = (size_t)C * (size_t)S * (size_t)S * sizeof(float);
    int64_t bs = (int64_t)((48u << 20) / img);
    bs = bs < 1 ? 1 : bs > 500 ? 500 : bs;
    if (iv->dims[0] > 0)
        bs = iv->dims[0]; /* a fixed batch */
    if (bs > N && iv->dims[0] <= 0)
        bs = N;
    if (N % bs && iv->dims[0] > 0)
        N -= N % bs; /* whole batches only */
    if (N < 1)
        OT_FAIL(err, OT_ERR_ARG, "no images to run (the model's batch is %lld)",
                (long long)iv->dims[0]);
    size_t scratch_bytes = ot_data_batch_scratch_bytes(ds, &t);
    x = ot_malloc(img * (size_t)bs);
    xt = lay.nhwc ? ot_malloc(img * (size_t)bs) : NULL;
    labels = ot_calloc((size_t)bs, sizeof *labels);
    idx = ot_calloc((size_t)bs, sizeof *idx);
    scratch = ot_malloc(scratch_bytes ? scratch_bytes : 1);
    if (!x || !labels || !idx || !scratch || (lay.nhwc && !xt))
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    feed.bound[0] = true;
    for (int64_t start = 0; start < N; start += bs) {
        int n = (int)(N - start < bs ? N - start : bs);
        for (int i = 0; i < n; i++)
            idx[i] = N == total ? start + i : (start + i) * total / N;
        OT_TRY(ot_data_load_batch(ds, idx, n, &t, x, labels, scratch, scratch_bytes, err));
        feed.tensors[0] = ot_image_tensor(&lay, n, C, S, ot_image_batch(&lay, x, xt, n, C, S));
        st = verify_batch(r, &feed, labels, n, err);
        feed.tensors[0].data = NULL;
        if (st != OT_OK)
            goto done;
    }
    snprintf(what, what_size, "%lld images of the %s split of %s (%dx%d, the model's "
             "preprocessing), in batches of %lld", (long long)N,
             split == OT_DATA_TEST ? "test" : "training", dir, S, S, (long long)bs);
done:
    feed.tensors ? (void)(feed.tensors[0].data = NULL) : (void)0;
    ot_feed_fini(&feed);
    ot_data_free(ds);
    ot_free(x);
    ot_free(xt);
    ot_free(labels);
    ot_free(idx);
    ot_free(scratch);
    return st;
}

static void report(const vrun *r, const verdict *v, int rt, double tol, bool baseline_is_self)
{
    if (!v->available) {
        printf("  %-12s not run: %s\n", v->name, v->why);
        return;
    }
    if (!v->loaded) {
        printf("  %-12s ran, did not load or run the model: %s%s\n", v->name, v->why,
               v->expected_refusal ? " (the lint predicts this)" : "");
        return;
    }
    if (!v->shapes_ok) {
        printf("  %-12s ran: outputs differ in number or size from the baseline\n", v->name);
        return;
    }
    printf("  %-12s ran: max abs diff %.3g%s", v->name, v->max_abs,
           baseline_is_self ? " (the baseline)" : (v->max_abs <= tol ? "" : "  ABOVE TOLERANCE"));
    if (v->rows)
        printf(", top-1 agreement %d/%d (%.2f%%)", v->agree, v->rows,
               100.0 * v->agree / v->rows);
    if (r->labelled)
        printf(", top-1 accuracy %.4f", (double)r->hits[rt] / (double)r->labelled);
    printf("\n");
}

int ot_cmd_verify(int argc, char **argv)
{
    ot_cli_args args;
    vrun r = { .vs = { { .name = "onnxtrain" }, { .name = "onnxruntime" },
                       { .name = "OpenCV DNN" } } };
    ot_feed feed = { 0 };
    char tmp[4096] = "", what[8400] = "";
    ot_err err;
    ot_err_init(&err);
    verify_args o = { .batch = 2, .tolerance = 1e-4 };
    int data_classes[OT_DATA_MAX_CLASSES], n_data_classes = 0;
    int rc = ot_cli_parse_into(&verify_cmd, argc, argv, &args, &o);
    if (rc != OT_EXIT_OK)
        return rc;
    if (args.help) {
        ot_cli_print_usage(&verify_cmd, stdout);
        goto done;
    }
    if ((rc = ot_cli_read_data_classes(&verify_cmd, o.data_classes, data_classes,
                                       &n_data_classes)) != OT_EXIT_OK)
        goto done;
    if ((o.images || o.data_classes) && (!o.data || tensor_dir(o.data))) {
        rc = ot_cli_usage_error(&verify_cmd, "--images and --data-classes need --data with an "
                                "image data set");
        goto done;
    }
    r.model = args.pos[0];
    r.reference = o.reference;
    ot_import_opts io = { .max_tensor_bytes = o.max_tensor_bytes };
    if (ot_model_import(r.model, &io, &r.g, &err) != OT_OK) {
        rc = ot_cli_error("%s", err.msg);
        goto done;
    }
    if (o.reference && ot_model_import(o.reference, &io, &r.ref, &err) != OT_OK) {
        rc = ot_cli_error("%s", err.msg);
        goto done;
    }
    const char *tdir = getenv("TMPDIR");
    snprintf(tmp, sizeof tmp, "%s/onnxtrain-verify.XXXXXX", tdir && *tdir ? tdir : "/tmp");
    if (!mkdtemp(tmp)) {
        rc = ot_cli_error("%s: cannot create a temporary folder: %s", tmp, strerror(errno));
        tmp[0] = '\0';
        goto done;
    }
    r.tmp = tmp;
    lint_scan(r.g, &r.lf);
    r.ort_script = find_script("verify_ort.js", r.ort_path, sizeof r.ort_path);
    if (!r.ort_script)
        snprintf(r.vs[RT_ORT].why, sizeof r.vs[RT_ORT].why, "tools/runtimes/verify_ort.js not "
                 "found (set ONNXTRAIN_RUNTIMES)");
    r.cv_script = find_script("verify_opencv.py", r.cv_path, sizeof r.cv_path);
    if (!r.cv_script)
        snprintf(r.vs[RT_OPENCV].why, sizeof r.vs[RT_OPENCV].why, "tools/runtimes/"
                 "verify_opencv.py not found (set ONNXTRAIN_RUNTIMES)");
    r.vs[RT_OPENCV].expected_refusal = r.lf.fp16_init || r.lf.dq_on_const || r.lf.conv_no_kernel;

    ot_status st;
    if (o.data && !tensor_dir(o.data)) {
        st = verify_images(&r, o.data, n_data_classes ? data_classes : NULL, n_data_classes,
                           o.images, what, sizeof what, &err);
        if (st != OT_OK) {
            rc = ot_cli_error("%s: --data %s: %s", r.model, o.data, err.msg);
            goto done;
        }
    } else {
        /* the inputs: tensor files, or seeded random data */
        if (ot_feed_init(&feed, r.g, &err) != OT_OK) {
            rc = ot_cli_error("%s", err.msg);
            goto done;
        }
        if (o.data) {
            for (int i = 0; i < feed.n; i++) {
                char path[4096];
                snprintf(path, sizeof path, "%s/input_%d.pb", o.data, i);
                if (ot_feed_add_file(&feed, r.g, path, i, &err) != OT_OK) {
                    rc = ot_cli_error("%s", err.msg);
                    goto done;
                }
            }
            snprintf(what, sizeof what, "the tensors of %s", o.data);
        } else {
            if (ot_feed_random(&feed, r.g, o.batch, (uint64_t)o.seed, &err) != OT_OK) {
                rc = ot_cli_error("%s: %s", r.model, err.msg);
                goto done;
            }
            snprintf(what, sizeof what, "seeded random data (seed %lld)", (long long)o.seed);
        }
        if (ot_feed_check(&feed, r.g, &err) != OT_OK) {
            rc = ot_cli_error("%s: %s", r.model, err.msg);
            goto done;
        }
        if (verify_batch(&r, &feed, NULL, 0, &err) != OT_OK) {
            rc = ot_cli_error("%s", err.msg);
            goto done;
        }
    }

    printf("verify %s", r.model);
    if (o.reference)
        printf(" against %s", o.reference);
    printf("\ninputs: %s\n", what);
    static const char *const base_names[] = {
        "none (no runtime ran the model)", "the reference in onnxtrain",
        "the model in onnxtrain", "onnxruntime (onnxtrain does not run the model)" };
    printf("baseline: %s\n", base_names[r.base]);
    if (r.ref && r.labelled)
        printf("  reference    top-1 accuracy %.4f on %lld labelled images\n",
               (double)r.ref_hits / (double)r.labelled, (long long)r.labelled);
    printf("runtimes run here:\n");
    bool bad = false;
    for (int i = 0; i < RT_N; i++) {
        const verdict *v = &r.vs[i];
        report(&r, v, i, o.tolerance, (!r.ref && i == RT_ONNXTRAIN) ||
               (r.base == BASE_ORT && i == RT_ORT));
        if (!v->available)
            continue;
        if (!v->loaded && i == RT_ORT)
            bad = true; /* onnxruntime loads every valid model */
        if (!v->loaded && i == RT_OPENCV && !v->expected_refusal)
            bad = true;
        if (v->loaded && r.base != BASE_NONE && (!v->shapes_ok || v->max_abs > o.tolerance))
            bad = true;
    }
    lint_report(r.g, &r.lf);
    /* what ran and what was only linted, in one line */
    printf("run: ");
    int n_run = 0;
    for (int i = 0; i < RT_N; i++)
        if (r.vs[i].available)
            printf("%s%s%s", n_run++ ? ", " : "", r.vs[i].name,
                   r.vs[i].loaded ? "" : " (did not run the model)");
    printf("%s; not found here: ", n_run ? "" : "none");
    int n_missing = 0;
    for (int i = 0; i < RT_N; i++)
        if (!r.vs[i].available)
            printf("%s%s", n_missing++ ? ", " : "", r.vs[i].name);
    printf("%s; linted only: TensorRT, OpenVINO (and the OpenCV 4.6 rules)\n",
           n_missing ? "" : "none");
    rc = bad ? OT_EXIT_ERROR : ot_cli_finish_stdout();
    if (bad)
        fflush(stdout);
done:
    if (tmp[0]) {
        DIR *d = opendir(tmp);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            char p[4400];
            snprintf(p, sizeof p, "%s/%s", tmp, e->d_name);
            unlink(p);
        }
        if (d)
            closedir(d);
        rmdir(tmp);
    }
    ot_feed_fini(&feed);
    ot_graph_free(r.g);
    ot_graph_free(r.ref);
    ot_cli_args_fini(&args);
    return rc;
}
