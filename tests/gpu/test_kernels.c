/*
 * test_kernels.c: the CUDA backend's own kernels (src/exec/cuda/cuda_kernels.c
 * and kernels/) against the plain C kernels (src/exec/cpu/ref.h).
 *
 *   test_kernels            every check below; "N passed, N failed" last
 *   test_kernels --table    prints the op table's "Kernels" rows (docs/gpu.md)
 *
 * 1. The table: every op the CPU backend runs has a CUDA kernel or a reason
 *    why not, and docs/gpu.md's "Kernels" section lists exactly that.
 * 2. The ONNX backend node tests (Debian libonnx-testdata) of each op with a
 *    kernel: the inputs of test_data_set_0 through the plain kernel on the
 *    host and through the CUDA kernel on the device, outputs compared with
 *    the CPU tolerances (|got - want| <= 1e-5 + 1e-4 |want|, integers
 *    exactly). Small integer inputs (axes, pads, Slice's operands) are
 *    treated as the constants an exported model has.
 * 3. Hand-built nodes with random inputs for the backward, loss and
 *    optimizer ops (no node tests exist for the private domain) and for
 *    shapes that the node tests do not reach (BatchNorm's multi-part sums).
 * 4. Channels-last (cuda_layout.h): BatchNorm, the pools and their backward
 *    with the context's nhwc, and broadcasting element-wise ops on the
 *    permuted dims, on NHWC copies of the inputs, against the same kernels
 *    on NCHW (bit for bit); the NCHW <-> NHWC conversion against the host's.
 * Each op passes when all its cases do; one line per op.
 *
 * Built twice: against the CUDA runtime (the device check, run by
 * tests/gpu/check.sh; without a device it prints "skipped: no CUDA device"
 * and counts nothing), and with -DOT_CUDA_EMU against the host emulation of
 * kernels/emu.h, which runs here in `make test` and checks the kernels'
 * arithmetic and indexing, not the device.
 */
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef OT_CUDA_EMU
#include "exec/cuda/kernels/emu.h"
#else
#include <cuda_runtime.h>
#endif

#include "exec/cpu/ref.h"
#include "data/loader.h"
#include "exec/cuda/cuda_kernels.h"
#include "exec/cuda/cuda_layout.h"
#include "exec/cuda/cuda_stage.h"
#include "exec/cuda/kernels/kernels.h"
#include "onnx/onnx.h"

#define NODE_DIR "/usr/share/libonnx-testdata/data/node"
#define MAX_IO 16

/* ------------------------------------------------------------- results */

static int op_pass[OT_OP_COUNT_], op_fail[OT_OP_COUNT_], op_skip[OT_OP_COUNT_];
static char op_msg[OT_OP_COUNT_][320];
static int n_pass, n_fail;
static bool verbose;

static void record(ot_op_id op, int res, const char *what, const char *msg)
{
    if (res > 0) {
        op_pass[op]++;
    } else if (res < 0) {
        op_fail[op]++;
        if (!op_msg[op][0])
            snprintf(op_msg[op], sizeof op_msg[op], "%s: %s", what, msg);
    } else {
        op_skip[op]++;
    }
    if (verbose)
        printf("  %s %s: %s\n", res > 0 ? "pass" : res < 0 ? "FAIL" : "skip", what, msg);
}

/* -------------------------------------------------------------- device */

static ot_cuda_ctx ctx;

static void *dev_alloc(size_t bytes)
{
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess)
        return NULL;
    return p;
}

/* Element-wise comparison with the CPU tolerances; the worst element into
   msg on failure. */
static bool compare(const ot_tensor *got, const ot_tensor *want, char *msg, size_t size)
{
    bool is_float = want->dtype == OT_DTYPE_FLOAT || want->dtype == OT_DTYPE_DOUBLE;
    int64_t numel = ot_tensor_numel(want);
    for (int64_t i = 0; i < numel; i++) {
        if (!is_float) {
            int64_t a = ot_tensor_get_i64(got, i), b = ot_tensor_get_i64(want, i);
            if (a != b) {
                snprintf(msg, size, "element %lld: got %lld, want %lld (exact)", (long long)i,
                         (long long)a, (long long)b);
                return false;
            }
            continue;
        }
        double a = ot_tensor_get_f64(got, i), b = ot_tensor_get_f64(want, i);
        bool same = (isnan(a) && isnan(b)) || (isinf(a) && isinf(b) && (a > 0) == (b > 0)) ||
                    fabs(a - b) <= 1e-5 + 1e-4 * fabs(b);
        if (!same) {
            snprintf(msg, size, "element %lld of %lld: got %.9g, want %.9g", (long long)i,
                     (long long)numel, a, b);
            return false;
        }
    }
    return true;
}

/* Runs node n (graph g, may be NULL) on host tensors `in` through the plain
   kernel and through the CUDA kernel on device copies, outputs shaped as
   `out` (their data ignored). 1: the same outputs, -1: they differ or a
   kernel failed, 0: one side does not handle the case (msg says why). */
static int run_both(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                    ot_tensor *const *out, char *msg, size_t size)
{
    ot_tensor href[MAX_IO], dout[MAX_IO], din[MAX_IO], back;
    ot_tensor *hp[MAX_IO], *dp[MAX_IO];
    const ot_tensor *dip[MAX_IO];
    void *scratch = NULL;
    const char *why = NULL;
    ot_err err;
    int res = -1;
    ot_err_init(&err);
    memset(href, 0, sizeof href);
    memset(dout, 0, sizeof dout);
    memset(din, 0, sizeof din);
    memset(&back, 0, sizeof back);
    msg[0] = 0;
    if (n->n_in > MAX_IO || n->n_out > MAX_IO) {
        snprintf(msg, size, "too many inputs or outputs");
        return 0;
    }
    if (!ot_ref_supports(g, n, in, (const ot_tensor *const *)out, &why)) {
        snprintf(msg, size, "plain kernel: %s", why ? why : "unsupported");
        return 0;
    }
    if (!ot_cuda_supports(g, n, in, (const ot_tensor *const *)out, &why)) {
        snprintf(msg, size, "CUDA kernel: %s", why ? why : "unsupported");
        return 0;
    }
    for (int j = 0; j < n->n_out; j++) {
        hp[j] = dp[j] = NULL;
        if (!out[j])
            continue;
        href[j] = *out[j];
        href[j].data = calloc(out[j]->bytes ? out[j]->bytes : 1, 1);
        dout[j] = *out[j];
        dout[j].data = dev_alloc(out[j]->bytes);
        if (!href[j].data || !dout[j].data) {
            snprintf(msg, size, "out of memory");
            goto done;
        }
        /* all bits set: NaN for floats, so that an unwritten element shows */
        cudaMemsetAsync(dout[j].data, 0xff, out[j]->bytes, (cudaStream_t)ctx.stream);
        hp[j] = &href[j];
        dp[j] = &dout[j];
    }
    for (int j = 0; j < n->n_in; j++) {
        dip[j] = NULL;
        if (!in[j])
            continue;
        din[j] = *in[j];
        din[j].data = dev_alloc(in[j]->bytes);
        if (!din[j].data) {
            snprintf(msg, size, "out of memory");
            goto done;
        }
        if (in[j]->bytes)
            cudaMemcpy(din[j].data, in[j]->data, in[j]->bytes, cudaMemcpyHostToDevice);
        dip[j] = &din[j];
    }
    if (ot_ref_kernel(n)(g, n, in, hp, &err) != OT_OK) {
        snprintf(msg, size, "plain kernel: %.200s", err.msg);
        res = 0;
        goto done;
    }
    size_t sb = ot_cuda_scratch_bytes(g, n, dip, (const ot_tensor *const *)dp);
    scratch = dev_alloc(sb);
    ctx.scratch = scratch;
    ctx.scratch_bytes = sb;
    if (!scratch) {
        snprintf(msg, size, "out of memory");
        goto done;
    }
    if (ot_cuda_kernel(n)(&ctx, g, n, dip, dp, &err) != OT_OK) {
        snprintf(msg, size, "CUDA kernel: %.200s", err.msg);
        goto done;
    }
    cudaError_t ce = cudaStreamSynchronize((cudaStream_t)ctx.stream);
    if (ce == cudaSuccess)
        ce = cudaGetLastError();
    if (ce != cudaSuccess) {
        snprintf(msg, size, "CUDA: %s", cudaGetErrorString(ce));
        goto done;
    }
    res = 1;
    for (int j = 0; j < n->n_out && res > 0; j++) {
        if (!hp[j])
            continue;
        char m[256];
        back = *out[j];
        back.data = malloc(out[j]->bytes ? out[j]->bytes : 1);
        if (!back.data) {
            res = -1;
            break;
        }
        if (out[j]->bytes)
            cudaMemcpy(back.data, dout[j].data, out[j]->bytes, cudaMemcpyDeviceToHost);
        if (!compare(&back, &href[j], m, sizeof m)) {
            snprintf(msg, size, "output %d: %s", j, m);
            res = -1;
        }
        free(back.data);
        back.data = NULL;
    }
    if (res > 0)
        snprintf(msg, size, "ok");
done:
    for (int j = 0; j < MAX_IO; j++) {
        free(href[j].data);
        if (dout[j].data)
            cudaFree(dout[j].data);
        if (din[j].data)
            cudaFree(din[j].data);
    }
    if (scratch)
        cudaFree(scratch);
    return res;
}

/* ------------------------------------------------------ the op table */

/* Prints the docs' rows: op, kernel file or the reason for none. */
static void print_table(void)
{
    printf("| op | CUDA kernel |\n|---|---|\n");
    for (int id = 0; id < OT_OP_COUNT_; id++) {
        const ot_op_desc *d = ot_op_table[id];
        const char *reason, *file = ot_cuda_kernel_file((ot_op_id)id, &reason);
        printf("| %s%s%s | %s%s%s |\n", d->domain[0] ? d->domain : "", d->domain[0] ? ":" : "",
               d->type, file ? "kernels/" : "", file ? file : "none: ",
               file ? "" : reason ? reason : "MISSING");
    }
}

/* Every op the CPU runs (a plain kernel) has a CUDA kernel or a reason, and
   docs/gpu.md lists each row as print_table writes it. */
static void check_table(const char *docs)
{
    int bad = 0;
    for (int id = 0; id < OT_OP_COUNT_; id++) {
        ot_node n;
        memset(&n, 0, sizeof n);
        n.op = ot_op_table[id];
        n.op_type = n.op->type;
        const char *reason, *file = ot_cuda_kernel_file((ot_op_id)id, &reason);
        if (ot_ref_kernel(&n) && !ot_cuda_kernel(&n) && !reason) {
            printf("FAIL table: %s runs on the CPU but has no CUDA kernel and no reason "
                   "(add a row to src/exec/cuda/cuda_kernels.c)\n",
                   n.op_type);
            bad++;
        }
        if ((file != NULL) != (ot_cuda_kernel(&n) != NULL)) {
            printf("FAIL table: %s: kernel and file disagree\n", n.op_type);
            bad++;
        }
    }
    FILE *f = fopen(docs, "r");
    char *text = NULL;
    long len = 0;
    if (f && fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        text = calloc((size_t)len + 1, 1);
        if (text && fread(text, 1, (size_t)len, f) != (size_t)len) {
            free(text);
            text = NULL;
        }
    }
    if (f)
        fclose(f);
    if (!text) {
        printf("FAIL table: cannot read %s\n", docs);
        bad++;
    }
    for (int id = 0; text && id < OT_OP_COUNT_; id++) {
        const ot_op_desc *d = ot_op_table[id];
        const char *reason, *file = ot_cuda_kernel_file((ot_op_id)id, &reason);
        char row[512];
        snprintf(row, sizeof row, "| %s%s%s | %s%s%s |\n", d->domain[0] ? d->domain : "",
                 d->domain[0] ? ":" : "", d->type, file ? "kernels/" : "",
                 file ? file : "none: ", file ? "" : reason ? reason : "MISSING");
        if (!strstr(text, row)) {
            printf("FAIL table: %s lacks the row %s", docs, row);
            bad++;
        }
    }
    free(text);
    if (bad) {
        printf("FAIL op table (%d problems; `test_kernels --table` prints the rows)\n", bad);
        n_fail++;
    } else {
        printf("pass op table\n");
        n_pass++;
    }
}

/* ------------------------------------------------------- node tests */

/* the inputs an exported model holds as constants: small integer lists
   (axes, pads, Slice's operands) and scalars (Dropout's ratio) */
static bool small_const(const ot_tensor *t)
{
    return ((t->dtype == OT_DTYPE_INT64 || t->dtype == OT_DTYPE_INT32) &&
            ot_tensor_numel(t) <= 16) ||
           ot_tensor_numel(t) == 1;
}

/* One node test folder; records the result under its op. */
static void node_case(const char *name)
{
    char path[1024], msg[400];
    ot_err err;
    ot_graph *g = NULL;
    ot_tensor ins[MAX_IO], outs[MAX_IO];
    const ot_tensor *inp[MAX_IO];
    ot_tensor *outp[MAX_IO];
    bool owned[MAX_IO] = { false }, made_const[MAX_IO] = { false };
    memset(ins, 0, sizeof ins);
    memset(outs, 0, sizeof outs);
    ot_err_init(&err);
    snprintf(path, sizeof path, "%s/%s/model.onnx", NODE_DIR, name);
    if (ot_onnx_import_file(path, NULL, &g, &err) != OT_OK)
        return;
    ot_node *n = &g->nodes[0];
    if (g->n_nodes != 1 || !n->op || !ot_cuda_kernel(n) || n->n_in > MAX_IO ||
        n->n_out > MAX_IO) {
        ot_graph_free(g);
        return;
    }
    ot_op_id op = n->op->id;
    for (int j = 0; j < n->n_in; j++) {
        int32_t id = n->in[j];
        inp[j] = NULL;
        if (id < 0)
            continue;
        int k = -1, pos = 0;
        for (int i = 0; i < g->n_inputs; i++) {
            const ot_value *v = &g->values[g->inputs[i].value];
            if (v->flags & OT_VAL_INIT)
                continue;
            if (g->inputs[i].value == id)
                k = pos;
            pos++;
        }
        if (k >= 0) {
            snprintf(path, sizeof path, "%s/%s/test_data_set_0/input_%d.pb", NODE_DIR, name, k);
            if (ot_onnx_read_tensor(path, &ins[j], NULL, &err) != OT_OK)
                goto done;
            owned[j] = true;
            inp[j] = &ins[j];
            ot_value *v = &g->values[id];
            if (j > 0 && small_const(&ins[j]) && !(v->flags & OT_VAL_CONST)) {
                v->data = ins[j];
                v->flags |= OT_VAL_CONST;
                made_const[j] = true;
            }
        } else if (ot_graph_const(g, id)) {
            inp[j] = ot_graph_const(g, id);
        } else {
            goto done;
        }
    }
    for (int j = 0; j < n->n_out; j++) {
        int32_t id = n->out[j];
        outp[j] = NULL;
        if (id < 0)
            continue;
        int k = -1;
        for (int i = 0; i < g->n_outputs; i++)
            if (g->outputs[i].value == id)
                k = i;
        ot_tensor *o = &outs[j];
        if (k >= 0) {
            snprintf(path, sizeof path, "%s/%s/test_data_set_0/output_%d.pb", NODE_DIR, name, k);
            if (ot_onnx_read_tensor(path, o, NULL, &err) != OT_OK)
                goto done;
            ot_free(o->data);
            o->data = NULL;
        } else {
            const ot_value *v = &g->values[id];
            if (v->ndim < 0 || ot_dtype_size(v->dtype) == 0)
                goto done;
            o->dtype = v->dtype;
            o->ndim = v->ndim;
            for (int d = 0; d < v->ndim; d++) {
                if (v->dims[d] < 0)
                    goto done;
                o->dims[d] = v->dims[d];
            }
            o->bytes = (size_t)ot_tensor_numel(o) * ot_dtype_size(o->dtype);
        }
        outp[j] = o;
    }
    record(op, run_both(g, n, inp, outp, msg, sizeof msg), name, msg);
done:
    for (int j = 0; j < MAX_IO; j++) {
        if (made_const[j]) {
            memset(&g->values[n->in[j]].data, 0, sizeof(ot_tensor));
            g->values[n->in[j]].flags &= ~(uint32_t)OT_VAL_CONST;
        }
        if (owned[j])
            ot_free(ins[j].data);
    }
    ot_graph_free(g);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void node_tests(void)
{
    DIR *d = opendir(NODE_DIR);
    char **names = NULL;
    size_t count = 0, cap = 0;
    if (!d) {
        printf("note: %s not found; node tests skipped\n", NODE_DIR);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "test_", 5) != 0)
            continue;
        if (count == cap) {
            cap = cap ? 2 * cap : 256;
            char **p = realloc(names, cap * sizeof *names);
            if (!p)
                break;
            names = p;
        }
        names[count] = strdup(e->d_name);
        if (names[count])
            count++;
    }
    closedir(d);
    qsort(names, count, sizeof *names, cmp_str);
    for (size_t i = 0; i < count; i++) {
        node_case(names[i]);
        free(names[i]);
    }
    free(names);
}

/* --------------------------------------------------- hand-built nodes */

/* A node with its own attributes, ids and tensors. */
typedef struct tcase {
    ot_node n;
    ot_attr attrs[12];
    int64_t ints[12][8];
    ot_tensor tens[12];
    int32_t in_ids[MAX_IO], out_ids[8];
    ot_tensor in[MAX_IO], out[8];
} tcase;

static uint32_t rng = 12345;

static double urand(void)
{
    rng = rng * 1664525u + 1013904223u;
    return (double)(rng >> 8) / 16777216.0;
}

static void tc_init(tcase *t, ot_op_id op, int opset, int n_in, int n_out)
{
    memset(t, 0, sizeof *t);
    t->n.op = ot_op_table[op];
    t->n.op_type = t->n.op->type;
    t->n.domain = t->n.op->domain;
    t->n.name = "case";
    t->n.opset = opset;
    t->n.n_in = n_in;
    t->n.n_out = n_out;
    t->n.in = t->in_ids;
    t->n.out = t->out_ids;
    t->n.attrs = t->attrs;
    for (int i = 0; i < n_in; i++)
        t->in_ids[i] = i;
    for (int i = 0; i < n_out; i++)
        t->out_ids[i] = 100 + i;
}

static ot_attr *tc_attr(tcase *t, const char *name, ot_attr_type type)
{
    ot_attr *a = &t->attrs[t->n.n_attrs++];
    a->name = name;
    a->type = type;
    return a;
}

static void tc_int(tcase *t, const char *name, int64_t v) { tc_attr(t, name, OT_ATTR_INT)->i = v; }
static void tc_float(tcase *t, const char *name, float v)
{
    tc_attr(t, name, OT_ATTR_FLOAT)->f = v;
}
static void tc_str(tcase *t, const char *name, const char *s)
{
    ot_attr *a = tc_attr(t, name, OT_ATTR_STRING);
    a->s = s;
    a->s_len = strlen(s);
}
static void tc_ints(tcase *t, const char *name, int count, const int64_t *v)
{
    int slot = t->n.n_attrs;
    ot_attr *a = tc_attr(t, name, OT_ATTR_INTS);
    memcpy(t->ints[slot], v, (size_t)count * sizeof *v);
    a->ints = t->ints[slot];
    a->n = (size_t)count;
}
/* a 0-d double TENSOR attribute (the optimizer's hyper-parameters) */
static void tc_double(tcase *t, const char *name, double v)
{
    int slot = t->n.n_attrs;
    ot_attr *a = tc_attr(t, name, OT_ATTR_TENSOR);
    ot_tensor *x = &t->tens[slot];
    x->dtype = OT_DTYPE_DOUBLE;
    x->ndim = 0;
    x->bytes = sizeof(double);
    x->data = &t->ints[slot][0];
    memcpy(x->data, &v, sizeof v);
    a->t = x;
}

enum { RAND, POS, MASK, LABELS, ZERO, COARSE, RELU };

/* Sets tensor *t: dtype, dims (ndim of them, -1 terminated list) and data:
   RAND uniform in [-1, 1), POS in [0.5, 1.5), MASK random bools, LABELS
   integers in [0, arg), ZERO zeros, COARSE eighths in [-0.5, 0.5) (ties),
   RELU max(RAND, 0) (exact zeros). */
static void tc_tensor(ot_tensor *t, ot_dtype dt, int fill, int arg, int ndim, ...)
{
    va_list ap;
    memset(t, 0, sizeof *t);
    t->dtype = dt;
    t->ndim = ndim;
    va_start(ap, ndim);
    for (int i = 0; i < ndim; i++)
        t->dims[i] = va_arg(ap, int64_t);
    va_end(ap);
    int64_t numel = ot_tensor_numel(t);
    t->bytes = (size_t)numel * ot_dtype_size(dt);
    t->data = calloc(t->bytes ? t->bytes : 1, 1);
    for (int64_t i = 0; t->data && i < numel; i++) {
        double v = fill == RAND     ? urand() * 2 - 1
                   : fill == POS    ? urand() + 0.5
                   : fill == MASK   ? (double)(urand() < 0.6)
                   : fill == LABELS ? floor(urand() * arg)
                   : fill == COARSE ? floor(urand() * 8) / 8 - 0.5
                   : fill == RELU   ? fmax(urand() * 2 - 1, 0)
                                    : 0;
        switch (dt) {
        case OT_DTYPE_FLOAT: ((float *)t->data)[i] = (float)v; break;
        case OT_DTYPE_DOUBLE: ((double *)t->data)[i] = v; break;
        case OT_DTYPE_INT64: ((int64_t *)t->data)[i] = (int64_t)v; break;
        case OT_DTYPE_INT32: ((int32_t *)t->data)[i] = (int32_t)v; break;
        default: ((uint8_t *)t->data)[i] = (uint8_t)v; break;
        }
    }
}

#define IN(t, i, dt, fill, arg, ...) tc_tensor(&(t)->in[i], dt, fill, arg, __VA_ARGS__)
#define OUT(t, i, dt, ...) tc_tensor(&(t)->out[i], dt, ZERO, 0, __VA_ARGS__)
#define D(x) ((int64_t)(x))

/* Runs a hand-built case and frees its tensors. */
static void tc_run(tcase *t, const char *what)
{
    const ot_tensor *in[MAX_IO];
    ot_tensor *out[8];
    char msg[400], label[200];
    for (int i = 0; i < t->n.n_in; i++)
        in[i] = t->in_ids[i] >= 0 ? &t->in[i] : NULL;
    for (int i = 0; i < t->n.n_out; i++)
        out[i] = t->out_ids[i] >= 0 ? &t->out[i] : NULL;
    snprintf(label, sizeof label, "%s (%s)", t->n.op_type, what);
    record(t->n.op->id, run_both(NULL, &t->n, in, out, msg, sizeof msg), label, msg);
    for (int i = 0; i < MAX_IO; i++)
        free(t->in[i].data);
    for (int i = 0; i < 8; i++)
        free(t->out[i].data);
}

static void cases_batchnorm(void)
{
    static const int64_t shapes[][4] = { { 4, 16, 9, 9 }, { 8, 6, 20, 20 }, { 3, 5, 1, 1 } };
    for (int s = 0; s < 3; s++) {
        const int64_t *d = shapes[s];
        tcase t;
        tc_init(&t, OT_OP_BATCHNORM_TRAIN, 1, 5, 5);
        tc_float(&t, "epsilon", 1e-5f);
        tc_float(&t, "momentum", 0.9f);
        IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 4, d[0], d[1], d[2], d[3]);
        for (int i = 1; i < 5; i++)
            IN(&t, i, OT_DTYPE_FLOAT, i == 4 ? POS : RAND, 0, 1, d[1]);
        OUT(&t, 0, OT_DTYPE_FLOAT, 4, d[0], d[1], d[2], d[3]);
        for (int i = 1; i < 5; i++)
            OUT(&t, i, OT_DTYPE_FLOAT, 1, d[1]);
        tc_run(&t, "statistics and running estimates");

        for (int training = 0; training < 2; training++) {
            tc_init(&t, OT_OP_BATCHNORM_GRAD, 1, 5, 3);
            tc_int(&t, "training_mode", training);
            IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 4, d[0], d[1], d[2], d[3]);
            IN(&t, 1, OT_DTYPE_FLOAT, RAND, 0, 4, d[0], d[1], d[2], d[3]);
            IN(&t, 2, OT_DTYPE_FLOAT, RAND, 0, 1, d[1]);
            IN(&t, 3, OT_DTYPE_FLOAT, RAND, 0, 1, d[1]);
            IN(&t, 4, OT_DTYPE_FLOAT, POS, 0, 1, d[1]);
            OUT(&t, 0, OT_DTYPE_FLOAT, 4, d[0], d[1], d[2], d[3]);
            OUT(&t, 1, OT_DTYPE_FLOAT, 1, d[1]);
            OUT(&t, 2, OT_DTYPE_FLOAT, 1, d[1]);
            tc_run(&t, training ? "training" : "inference");
        }

        tc_init(&t, OT_OP_BATCHNORM, 15, 5, 3);
        tc_int(&t, "training_mode", 1);
        IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 4, d[0], d[1], d[2], d[3]);
        for (int i = 1; i < 5; i++)
            IN(&t, i, OT_DTYPE_FLOAT, i == 4 ? POS : RAND, 0, 1, d[1]);
        OUT(&t, 0, OT_DTYPE_FLOAT, 4, d[0], d[1], d[2], d[3]);
        OUT(&t, 1, OT_DTYPE_FLOAT, 1, d[1]);
        OUT(&t, 2, OT_DTYPE_FLOAT, 1, d[1]);
        tc_run(&t, "opset 15 training mode");
    }
}

/* pools: forward and backward on one geometry */
static void pool_case(const char *what, int k, const int64_t *xd, const int64_t *yd,
                      const int64_t *ks, const int64_t *st, const int64_t *pads, int ceil,
                      int include_pad)
{
    static const ot_op_id ops[] = { OT_OP_MAXPOOL, OT_OP_AVGPOOL, OT_OP_MAXPOOL_GRAD,
                                    OT_OP_AVGPOOL_GRAD };
    for (int o = 0; o < 4; o++) {
        tcase t;
        bool grad = o >= 2;
        tc_init(&t, ops[o], grad ? 1 : 11, grad ? 2 : 1, 1);
        tc_ints(&t, "kernel_shape", k, ks);
        tc_ints(&t, "strides", k, st);
        tc_ints(&t, "pads", 2 * k, pads);
        tc_int(&t, "ceil_mode", ceil);
        tc_int(&t, "count_include_pad", include_pad);
        int r = k + 2;
        ot_tensor *x = &t.in[grad ? 1 : 0];
        tc_tensor(x, OT_DTYPE_FLOAT, COARSE, 0, r, xd[0], xd[1], xd[2], xd[3], xd[4]);
        if (grad) {
            tc_tensor(&t.in[0], OT_DTYPE_FLOAT, RAND, 0, r, yd[0], yd[1], yd[2], yd[3], yd[4]);
            tc_tensor(&t.out[0], OT_DTYPE_FLOAT, ZERO, 0, r, xd[0], xd[1], xd[2], xd[3], xd[4]);
            if (ops[o] == OT_OP_AVGPOOL_GRAD) {
                t.n.n_in = 1; /* AveragePoolGrad: dY only */
                free(t.in[1].data);
                t.in[1].data = NULL;
            }
        } else {
            tc_tensor(&t.out[0], OT_DTYPE_FLOAT, ZERO, 0, r, yd[0], yd[1], yd[2], yd[3], yd[4]);
        }
        tc_run(&t, what);
    }
}

static void cases_pools(void)
{
    pool_case("3x3 s2 p1", 2, (int64_t[]){ 2, 3, 17, 17, 0 }, (int64_t[]){ 2, 3, 9, 9, 0 },
              (int64_t[]){ 3, 3 }, (int64_t[]){ 2, 2 }, (int64_t[]){ 1, 1, 1, 1 }, 0, 0);
    pool_case("2x2 s2 ceil, pad counted", 2, (int64_t[]){ 1, 2, 7, 9, 0 },
              (int64_t[]){ 1, 2, 4, 5, 0 }, (int64_t[]){ 2, 2 }, (int64_t[]){ 2, 2 },
              (int64_t[]){ 0, 0, 0, 0 }, 1, 1);
    pool_case("1-D k3 s1 p1", 1, (int64_t[]){ 2, 2, 10, 0, 0 }, (int64_t[]){ 2, 2, 10, 0, 0 },
              (int64_t[]){ 3 }, (int64_t[]){ 1 }, (int64_t[]){ 1, 1 }, 0, 1);
    pool_case("3-D 2x2x2 s2", 3, (int64_t[]){ 1, 2, 4, 6, 4 }, (int64_t[]){ 1, 2, 2, 3, 2 },
              (int64_t[]){ 2, 2, 2 }, (int64_t[]){ 2, 2, 2 }, (int64_t[]){ 0, 0, 0, 0, 0, 0 }, 0,
              0);
    static const ot_op_id gops[] = { OT_OP_GLOBALAVGPOOL_GRAD, OT_OP_GLOBALMAXPOOL_GRAD };
    for (int o = 0; o < 2; o++) {
        tcase t;
        tc_init(&t, gops[o], 1, o ? 2 : 1, 1);
        IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 4, D(3), D(5), D(1), D(1));
        if (o)
            IN(&t, 1, OT_DTYPE_FLOAT, RAND, 0, 4, D(3), D(5), D(6), D(7));
        OUT(&t, 0, OT_DTYPE_FLOAT, 4, D(3), D(5), D(6), D(7));
        tc_run(&t, "3x5x6x7");
    }
}

static void cases_eltwise_grads(void)
{
    static const ot_op_id ops[] = { OT_OP_RELU_GRAD, OT_OP_LEAKYRELU_GRAD, OT_OP_SIGMOID_GRAD,
                                    OT_OP_CLIP_GRAD, OT_OP_DROPOUT_GRAD };
    for (int o = 0; o < 5; o++) {
        tcase t;
        tc_init(&t, ops[o], 1, 2, 1);
        tc_float(&t, "alpha", 0.2f);
        tc_float(&t, "min", -0.3f);
        tc_float(&t, "max", 0.4f);
        IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 3, D(4), D(5), D(33));
        if (ops[o] == OT_OP_DROPOUT_GRAD)
            IN(&t, 1, OT_DTYPE_BOOL, MASK, 0, 3, D(4), D(5), D(33));
        else if (ops[o] == OT_OP_RELU_GRAD)
            IN(&t, 1, OT_DTYPE_FLOAT, RELU, 0, 3, D(4), D(5), D(33));
        else if (ops[o] == OT_OP_CLIP_GRAD)
            IN(&t, 1, OT_DTYPE_FLOAT, COARSE, 0, 3, D(4), D(5), D(33));
        else
            IN(&t, 1, OT_DTYPE_FLOAT, RAND, 0, 3, D(4), D(5), D(33));
        OUT(&t, 0, OT_DTYPE_FLOAT, 3, D(4), D(5), D(33));
        tc_run(&t, "4x5x33");
    }
    static const char *const math[] = { "Sqrt",     "Reciprocal", "Exp",  "Log",      "Tanh",
                                        "Erf",      "HardSigmoid", "HardSwish", "Elu", "Selu",
                                        "Softplus", "Gelu",       "Pow" };
    for (size_t m = 0; m < sizeof math / sizeof math[0]; m++) {
        tcase t;
        tc_init(&t, OT_OP_UNARY_GRAD, 1, 2, 1);
        tc_str(&t, "op", math[m]);
        if (!strcmp(math[m], "Pow"))
            tc_float(&t, "alpha", 2.5f);
        IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 2, D(7), D(41));
        bool pos = !strcmp(math[m], "Sqrt") || !strcmp(math[m], "Log") ||
                   !strcmp(math[m], "Pow") || !strcmp(math[m], "Reciprocal");
        IN(&t, 1, OT_DTYPE_FLOAT, pos ? POS : RAND, 0, 2, D(7), D(41));
        OUT(&t, 0, OT_DTYPE_FLOAT, 2, D(7), D(41));
        tc_run(&t, math[m]);
    }
    /* PReluGrad, slope per channel */
    tcase t;
    tc_init(&t, OT_OP_PRELU_GRAD, 1, 3, 2);
    IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 4, D(2), D(3), D(4), D(5));
    IN(&t, 1, OT_DTYPE_FLOAT, RAND, 0, 4, D(2), D(3), D(4), D(5));
    IN(&t, 2, OT_DTYPE_FLOAT, RAND, 0, 3, D(3), D(1), D(1));
    OUT(&t, 0, OT_DTYPE_FLOAT, 4, D(2), D(3), D(4), D(5));
    OUT(&t, 1, OT_DTYPE_FLOAT, 4, D(2), D(3), D(4), D(5));
    tc_run(&t, "per-channel slope");
    /* ExtremumGrad: Max of three inputs, one broadcast, with ties */
    for (int k = 0; k < 3; k++) {
        tc_init(&t, OT_OP_EXTREMUM_GRAD, 1, 5, 1);
        tc_int(&t, "index", k);
        IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 2, D(4), D(6));
        IN(&t, 2, OT_DTYPE_FLOAT, RAND, 0, 2, D(4), D(6));
        IN(&t, 3, OT_DTYPE_FLOAT, RAND, 0, 1, D(6));
        IN(&t, 4, OT_DTYPE_FLOAT, RAND, 0, 2, D(4), D(6));
        memcpy(t.in[4].data, t.in[2].data, 6 * sizeof(float)); /* a tie in row 0 */
        IN(&t, 1, OT_DTYPE_FLOAT, ZERO, 0, 2, D(4), D(6));
        for (int i = 0; i < 24; i++) {
            float a = ((float *)t.in[2].data)[i], b = ((float *)t.in[3].data)[i % 6],
                  c = ((float *)t.in[4].data)[i];
            float m = a > b ? a : b;
            ((float *)t.in[1].data)[i] = m > c ? m : c;
        }
        OUT(&t, 0, OT_DTYPE_FLOAT, 2, D(4), D(6));
        tc_run(&t, k == 1 ? "broadcast input" : "input with ties");
    }
}

static void cases_reduce(void)
{
    static const char *const modes[] = { "ReduceSum", "ReduceMean", "ReduceMax", "ReduceL2" };
    for (int m = 0; m < 4; m++) {
        tcase t;
        tc_init(&t, OT_OP_REDUCE_GRAD, 1, 3, 1);
        tc_str(&t, "mode", modes[m]);
        tc_ints(&t, "axes", 2, (int64_t[]){ 0, 2 });
        tc_int(&t, "keepdims", 1);
        IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 3, D(1), D(5), D(1));
        IN(&t, 1, OT_DTYPE_FLOAT, RAND, 0, 3, D(3), D(5), D(4));
        IN(&t, 2, OT_DTYPE_FLOAT, ZERO, 0, 3, D(1), D(5), D(1));
        for (int c = 0; c < 5; c++) { /* Y: the forward reduction of X */
            double acc = m == 2 ? -HUGE_VAL : 0;
            for (int a = 0; a < 3; a++)
                for (int b = 0; b < 4; b++) {
                    double v = ((float *)t.in[1].data)[(a * 5 + c) * 4 + b];
                    acc = m == 2 ? (v > acc ? v : acc) : acc + (m == 3 ? v * v : v);
                }
            ((float *)t.in[2].data)[c] =
                (float)(m == 1 ? acc / 12 : m == 3 ? sqrt(acc) : acc);
        }
        OUT(&t, 0, OT_DTYPE_FLOAT, 3, D(3), D(5), D(4));
        tc_run(&t, modes[m]);
    }
    /* forward reductions with axes as an attribute, large enough for parts */
    for (int m = 0; m < 4; m++) {
        static const ot_op_id ops[] = { OT_OP_REDUCE_SUM, OT_OP_REDUCE_MEAN, OT_OP_REDUCE_MAX,
                                        OT_OP_REDUCE_L2 };
        tcase t;
        tc_init(&t, ops[m], 11, 1, 1);
        tc_ints(&t, "axes", 2, (int64_t[]){ 0, 2 });
        tc_int(&t, "keepdims", 0);
        IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 3, D(40), D(3), D(50));
        OUT(&t, 0, OT_DTYPE_FLOAT, 1, D(3));
        tc_run(&t, "2000 elements an output");
    }
    tcase t;
    tc_init(&t, OT_OP_REDUCE_SUM_TO, 1, 1, 1);
    IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 4, D(6), D(4), D(5), D(3));
    OUT(&t, 0, OT_DTYPE_FLOAT, 3, D(4), D(1), D(3));
    tc_run(&t, "to (4, 1, 3)");
    tc_init(&t, OT_OP_REDUCE_SUM_TO, 1, 1, 1);
    IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 2, D(300), D(20));
    OUT(&t, 0, OT_DTYPE_FLOAT, 0);
    tc_run(&t, "to a scalar");
    tc_init(&t, OT_OP_BROADCAST_TO, 1, 1, 1);
    IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 3, D(4), D(1), D(3));
    OUT(&t, 0, OT_DTYPE_FLOAT, 4, D(6), D(4), D(5), D(3));
    tc_run(&t, "from (4, 1, 3)");
    tc_init(&t, OT_OP_GRAD_SUM_SQUARES, 1, 2, 1);
    IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 2, D(123), D(457));
    IN(&t, 1, OT_DTYPE_DOUBLE, POS, 0, 0);
    OUT(&t, 0, OT_DTYPE_DOUBLE, 0);
    tc_run(&t, "with an accumulated sum");
    tc_init(&t, OT_OP_CLIP_GRAD_COEF, 1, 1, 2);
    tc_float(&t, "max_norm", 0.5f);
    IN(&t, 0, OT_DTYPE_DOUBLE, POS, 0, 0);
    OUT(&t, 0, OT_DTYPE_FLOAT, 0);
    OUT(&t, 1, OT_DTYPE_FLOAT, 0);
    tc_run(&t, "coefficient and norm");
    /* with fp16's loss scale: the unscaled norm, the clamped coefficient
       times 1 / scale; NaN on an overflowed sum */
    for (int over = 0; over < 2; over++) {
        tc_init(&t, OT_OP_CLIP_GRAD_COEF, 1, 2, 2);
        tc_float(&t, "max_norm", 0.5f);
        IN(&t, 0, OT_DTYPE_DOUBLE, POS, 0, 0);
        ((double *)t.in[0].data)[0] = over ? (double)INFINITY : 4.0e6; /* norm 2000 / 1024: clipped */
        IN(&t, 1, OT_DTYPE_FLOAT, ZERO, 0, 0);
        ((float *)t.in[1].data)[0] = 1024.0f;
        OUT(&t, 0, OT_DTYPE_FLOAT, 0);
        OUT(&t, 1, OT_DTYPE_FLOAT, 0);
        tc_run(&t, over ? "loss scale, overflowed" : "loss scale");
    }
}

static void cases_loss(void)
{
    for (int grad = 0; grad < 2; grad++)
        for (int smooth = 0; smooth < 2; smooth++) {
            tcase t;
            tc_init(&t, grad ? OT_OP_SOFTMAX_XENT_GRAD : OT_OP_SOFTMAX_XENT, 1, grad ? 3 : 2, 1);
            if (smooth)
                tc_float(&t, "label_smoothing", 0.1f);
            if (grad)
                IN(&t, 0, OT_DTYPE_FLOAT, POS, 0, 0);
            IN(&t, grad, OT_DTYPE_FLOAT, RAND, 0, 2, D(9), D(11));
            IN(&t, grad + 1, OT_DTYPE_INT64, LABELS, 11, 1, D(9));
            if (grad)
                OUT(&t, 0, OT_DTYPE_FLOAT, 2, D(9), D(11));
            else
                OUT(&t, 0, OT_DTYPE_FLOAT, 0);
            tc_run(&t, smooth ? "label smoothing 0.1" : "plain");
        }
    static const ot_op_id ops[] = { OT_OP_SOFTMAX_GRAD, OT_OP_LOGSOFTMAX_GRAD };
    for (int o = 0; o < 2; o++)
        for (int axis = 0; axis < 3; axis++) {
            tcase t;
            tc_init(&t, ops[o], 1, 2, 1);
            tc_int(&t, "axis", axis);
            IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 3, D(3), D(4), D(5));
            IN(&t, 1, OT_DTYPE_FLOAT, POS, 0, 3, D(3), D(4), D(5));
            OUT(&t, 0, OT_DTYPE_FLOAT, 3, D(3), D(4), D(5));
            tc_run(&t, axis == 0 ? "axis 0" : axis == 1 ? "axis 1" : "axis 2");
        }
}

static void cases_norm(void)
{
    struct {
        const char *mode;
        int axis, groups, np;
        const char *what;
    } m[] = {
        { "LayerNormalization", 1, 1, 30, "layer, axis 1" },
        { "LayerNormalization", 2, 1, 5, "layer, axis 2" },
        { "InstanceNormalization", 1, 1, 6, "instance" },
        { "GroupNormalization", 1, 3, 6, "group, scale per channel" },
        { "GroupNormalization", 1, 3, 3, "group, scale per group" },
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        tcase t;
        tc_init(&t, OT_OP_NORM_GRAD, 1, 3, 3);
        tc_str(&t, "mode", m[i].mode);
        tc_int(&t, "axis", m[i].axis);
        tc_int(&t, "num_groups", m[i].groups);
        IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 3, D(4), D(6), D(5));
        IN(&t, 1, OT_DTYPE_FLOAT, RAND, 0, 3, D(4), D(6), D(5));
        IN(&t, 2, OT_DTYPE_FLOAT, RAND, 0, 1, D(m[i].np));
        OUT(&t, 0, OT_DTYPE_FLOAT, 3, D(4), D(6), D(5));
        OUT(&t, 1, OT_DTYPE_FLOAT, 1, D(m[i].np));
        OUT(&t, 2, OT_DTYPE_FLOAT, 1, D(m[i].np));
        tc_run(&t, m[i].what);
    }
    tcase t;
    tc_init(&t, OT_OP_LRN_GRAD, 1, 2, 1);
    tc_int(&t, "size", 3);
    tc_float(&t, "alpha", 0.01f);
    IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 4, D(2), D(7), D(3), D(3));
    IN(&t, 1, OT_DTYPE_FLOAT, RAND, 0, 4, D(2), D(7), D(3), D(3));
    OUT(&t, 0, OT_DTYPE_FLOAT, 4, D(2), D(7), D(3), D(3));
    tc_run(&t, "size 3");
}

static void cases_data(void)
{
    tcase t;
    tc_init(&t, OT_OP_SLICE_AXIS, 1, 1, 1);
    tc_int(&t, "axis", 1);
    tc_int(&t, "start", 2);
    tc_int(&t, "end", 5);
    IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 3, D(4), D(7), D(3));
    OUT(&t, 0, OT_DTYPE_FLOAT, 3, D(4), D(3), D(3));
    tc_run(&t, "axis 1, 2..5");
    tc_init(&t, OT_OP_DROPOUT_TRAIN, 1, 2, 2);
    tc_float(&t, "ratio", 0.3f);
    tc_int(&t, "salt", 7);
    IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 2, D(31), D(17));
    IN(&t, 1, OT_DTYPE_INT64, LABELS, 1000000, 0);
    OUT(&t, 0, OT_DTYPE_FLOAT, 2, D(31), D(17));
    OUT(&t, 1, OT_DTYPE_BOOL, 2, D(31), D(17));
    tc_run(&t, "ratio 0.3");
    tc_init(&t, OT_OP_GRAD_ALL_REDUCE, 1, 2, 2);
    IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 1, D(10));
    IN(&t, 1, OT_DTYPE_FLOAT, RAND, 0, 2, D(3), D(3));
    OUT(&t, 0, OT_DTYPE_FLOAT, 1, D(10));
    OUT(&t, 1, OT_DTYPE_FLOAT, 2, D(3), D(3));
    tc_run(&t, "one process");
    for (int grad = 0; grad < 2; grad++)
        for (int dyn = 0; dyn < 2; dyn++) {
            tc_init(&t, grad ? OT_OP_FAKE_QUANT_GRAD : OT_OP_FAKE_QUANT, 1,
                    (grad ? 2 : 1) + !dyn, 1);
            tc_int(&t, "dynamic", dyn);
            tc_int(&t, "per_channel", dyn);
            tc_int(&t, "axis", 1);
            if (grad)
                IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 3, D(3), D(4), D(5));
            IN(&t, grad, OT_DTYPE_FLOAT, RAND, 0, 3, D(3), D(4), D(5));
            if (!dyn) {
                IN(&t, grad + 1, OT_DTYPE_FLOAT, POS, 0, 0);
                ((float *)t.in[grad + 1].data)[0] = 0.004f;
            }
            OUT(&t, 0, OT_DTYPE_FLOAT, 3, D(3), D(4), D(5));
            tc_run(&t, dyn ? "dynamic, per channel" : "static scale");
        }
}

static void cases_optim(void)
{
    for (int step = 1; step <= 2; step++)
        for (int v = 0; v < 3; v++) {
            tcase t;
            bool mom = v > 0;
            tc_init(&t, OT_OP_SGD_STEP, 1, 6, mom ? 2 : 1);
            if (!mom)
                t.in_ids[4] = -1;
            tc_double(&t, "weight_decay", 1e-3);
            if (mom)
                tc_double(&t, "momentum", 0.9);
            tc_double(&t, "dampening", 0.1);
            tc_int(&t, "nesterov", v == 2);
            IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 2, D(37), D(29));
            IN(&t, 1, OT_DTYPE_FLOAT, RAND, 0, 2, D(37), D(29));
            IN(&t, 2, OT_DTYPE_DOUBLE, POS, 0, 0);
            IN(&t, 3, OT_DTYPE_INT64, ZERO, 0, 0);
            ((int64_t *)t.in[3].data)[0] = step;
            if (mom)
                IN(&t, 4, OT_DTYPE_FLOAT, RAND, 0, 2, D(37), D(29));
            IN(&t, 5, OT_DTYPE_FLOAT, POS, 0, 0); /* clipping coefficient */
            OUT(&t, 0, OT_DTYPE_FLOAT, 2, D(37), D(29));
            if (mom)
                OUT(&t, 1, OT_DTYPE_FLOAT, 2, D(37), D(29));
            tc_run(&t, !mom ? "plain" : v == 1 ? "momentum" : "nesterov");
        }
    for (int w = 0; w < 2; w++) {
        tcase t;
        tc_init(&t, w ? OT_OP_ADAMW_STEP : OT_OP_ADAM_STEP, 1, 7, 3);
        tc_double(&t, "weight_decay", 0.01);
        IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 1, D(1000));
        IN(&t, 1, OT_DTYPE_FLOAT, RAND, 0, 1, D(1000));
        IN(&t, 2, OT_DTYPE_DOUBLE, POS, 0, 0);
        IN(&t, 3, OT_DTYPE_INT64, ZERO, 0, 0);
        ((int64_t *)t.in[3].data)[0] = 3;
        IN(&t, 4, OT_DTYPE_FLOAT, RAND, 0, 1, D(1000));
        IN(&t, 5, OT_DTYPE_FLOAT, POS, 0, 1, D(1000));
        IN(&t, 6, OT_DTYPE_FLOAT, POS, 0, 0);
        ((float *)t.in[6].data)[0] = 0.7f;
        for (int i = 0; i < 3; i++)
            OUT(&t, i, OT_DTYPE_FLOAT, 1, D(1000));
        tc_run(&t, "step 3, clipped");
    }
}

/* the index ops' backward, and ScatterND's reductions */
static void cases_index(void)
{
    tcase t;
    static const int64_t gidx[] = { 2, -1, 0, 2, 3, 2 };
    tc_init(&t, OT_OP_GATHER_GRAD, 1, 2, 1);
    tc_int(&t, "axis", 1);
    IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 4, D(3), D(2), D(3), D(5));
    IN(&t, 1, OT_DTYPE_INT64, ZERO, 0, 2, D(2), D(3));
    memcpy(t.in[1].data, gidx, sizeof gidx);
    OUT(&t, 0, OT_DTYPE_FLOAT, 3, D(3), D(4), D(5));
    tc_run(&t, "repeated and negative indices");
    static const int64_t sidx[] = { 1, 0, 3, 0, 1, 0 }; /* tuples (1,0) (3,0) (1,0) */
    for (int mode = 0; mode < 3; mode++) {
        tc_init(&t, OT_OP_SCATTER_ND, 18, 3, 1);
        if (mode)
            tc_str(&t, "reduction", mode == 1 ? "max" : "min");
        IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 3, D(4), D(2), D(5));
        IN(&t, 1, OT_DTYPE_INT64, ZERO, 0, 2, D(3), D(2));
        memcpy(t.in[1].data, sidx, sizeof sidx);
        IN(&t, 2, OT_DTYPE_FLOAT, RAND, 0, 2, D(3), D(5));
        OUT(&t, 0, OT_DTYPE_FLOAT, 3, D(4), D(2), D(5));
        tc_run(&t, mode == 0 ? "repeated tuple" : mode == 1 ? "max" : "min");
    }
    tc_init(&t, OT_OP_SCATTER_ND_GRAD, 1, 2, 2);
    IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 3, D(4), D(2), D(5));
    IN(&t, 1, OT_DTYPE_INT64, ZERO, 0, 2, D(3), D(2));
    memcpy(t.in[1].data, sidx, sizeof sidx);
    OUT(&t, 0, OT_DTYPE_FLOAT, 3, D(4), D(2), D(5));
    OUT(&t, 1, OT_DTYPE_FLOAT, 2, D(3), D(5));
    tc_run(&t, "repeated tuple");
}

/* forward ops at training sizes the node tests do not reach */
static void cases_forward(void)
{
    tcase t;
    tc_init(&t, OT_OP_ADD, 14, 2, 1);
    IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 4, D(4), D(8), D(6), D(6));
    IN(&t, 1, OT_DTYPE_FLOAT, RAND, 0, 3, D(8), D(1), D(1));
    OUT(&t, 0, OT_DTYPE_FLOAT, 4, D(4), D(8), D(6), D(6));
    tc_run(&t, "per-channel bias");
    tc_init(&t, OT_OP_SUM, 13, 3, 1);
    IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 2, D(5), D(7));
    IN(&t, 1, OT_DTYPE_FLOAT, RAND, 0, 1, D(7));
    IN(&t, 2, OT_DTYPE_FLOAT, RAND, 0, 2, D(5), D(1));
    OUT(&t, 0, OT_DTYPE_FLOAT, 2, D(5), D(7));
    tc_run(&t, "three broadcast inputs");
    tc_init(&t, OT_OP_GLOBALAVGPOOL, 1, 1, 1);
    IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 4, D(4), D(32), D(7), D(7));
    OUT(&t, 0, OT_DTYPE_FLOAT, 4, D(4), D(32), D(1), D(1));
    tc_run(&t, "4x32x7x7");
    tc_init(&t, OT_OP_SOFTMAX, 13, 1, 1);
    IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 2, D(16), D(1000));
    OUT(&t, 0, OT_DTYPE_FLOAT, 2, D(16), D(1000));
    tc_run(&t, "16x1000");
    for (int tanh_form = 0; tanh_form < 2; tanh_form++) {
        tc_init(&t, OT_OP_GELU, 20, 1, 1);
        if (tanh_form)
            tc_str(&t, "approximate", "tanh");
        IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 2, D(6), D(50));
        OUT(&t, 0, OT_DTYPE_FLOAT, 2, D(6), D(50));
        tc_run(&t, tanh_form ? "tanh form" : "erf form");
    }
    for (int per_group = 0; per_group < 2; per_group++) {
        tc_init(&t, OT_OP_GROUPNORM, 18, 3, 1);
        tc_int(&t, "num_groups", 3);
        IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 4, D(2), D(6), D(4), D(5));
        IN(&t, 1, OT_DTYPE_FLOAT, RAND, 0, 1, D(per_group ? 3 : 6));
        IN(&t, 2, OT_DTYPE_FLOAT, RAND, 0, 1, D(per_group ? 3 : 6));
        OUT(&t, 0, OT_DTYPE_FLOAT, 4, D(2), D(6), D(4), D(5));
        tc_run(&t, per_group ? "scale per group" : "scale per channel");
    }
    tc_init(&t, OT_OP_LAYERNORM, 17, 3, 3);
    tc_int(&t, "axis", -1);
    IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 3, D(2), D(9), D(64));
    IN(&t, 1, OT_DTYPE_FLOAT, RAND, 0, 1, D(64));
    IN(&t, 2, OT_DTYPE_FLOAT, RAND, 0, 1, D(64));
    OUT(&t, 0, OT_DTYPE_FLOAT, 3, D(2), D(9), D(64));
    OUT(&t, 1, OT_DTYPE_FLOAT, 3, D(2), D(9), D(1));
    OUT(&t, 2, OT_DTYPE_FLOAT, 3, D(2), D(9), D(1));
    tc_run(&t, "with Mean and InvStdDev");
}

/* ------------------------------------------------------------------ main */

/* Einsum in the forms classifiers and attention use, and the general ones
   (a diagonal, a trace, an ellipsis that broadcasts, three inputs). */
static void cases_einsum(void)
{
    static const struct {
        const char *eq;
        int n_in;
        int nd[3];
        int64_t d[3][4];
        int ny;
        int64_t yd[4];
    } c[] = {
        { "ij,jk->ik", 2, { 2, 2 }, { { 7, 5 }, { 5, 3 } }, 2, { 7, 3 } },
        { "bij,bjk->bik", 2, { 3, 3 }, { { 4, 6, 5 }, { 4, 5, 3 } }, 3, { 4, 6, 3 } },
        { "bhqd,bhkd->bhqk", 2, { 4, 4 }, { { 2, 3, 5, 4 }, { 2, 3, 6, 4 } }, 4, { 2, 3, 5, 6 } },
        { "bhqk,bhkd->bhqd", 2, { 4, 4 }, { { 2, 3, 5, 6 }, { 2, 3, 6, 4 } }, 4, { 2, 3, 5, 4 } },
        { "nc,kc->nk", 2, { 2, 2 }, { { 5, 40 }, { 3, 40 } }, 2, { 5, 3 } },
        { "...ij,...jk->...ik", 2, { 4, 3 }, { { 2, 1, 3, 4 }, { 5, 4, 2 } }, 4, { 2, 5, 3, 2 } },
        { "ii->i", 1, { 2 }, { { 6, 6 } }, 1, { 6 } },
        { "ii", 1, { 2 }, { { 6, 6 } }, 0, { 0 } },
        { "ij->", 1, { 2 }, { { 30, 20 } }, 0, { 0 } },
        { "i,j->ij", 2, { 1, 1 }, { { 4 }, { 7 } }, 2, { 4, 7 } },
        { "ij,jk,kl->il", 3, { 2, 2, 2 }, { { 3, 4 }, { 4, 5 }, { 5, 2 } }, 2, { 3, 2 } },
        { "nchw->nhwc", 1, { 4 }, { { 2, 3, 4, 5 } }, 4, { 2, 4, 5, 3 } },
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        tcase t;
        tc_init(&t, OT_OP_EINSUM, 12, c[i].n_in, 1);
        tc_str(&t, "equation", c[i].eq);
        for (int k = 0; k < c[i].n_in; k++) {
            const int64_t *d = c[i].d[k];
            IN(&t, k, OT_DTYPE_FLOAT, RAND, 0, c[i].nd[k], d[0], d[1], d[2], d[3]);
        }
        const int64_t *y = c[i].yd;
        OUT(&t, 0, OT_DTYPE_FLOAT, c[i].ny, y[0], y[1], y[2], y[3]);
        tc_run(&t, c[i].eq);
    }
}

/* The loader's transform on the device (prep.cu) against the CPU loader
   (ot_data_prepare) on random uint8 images of CIFAR's and IDX's forms and
   of sizes that enlarge, shrink, keep one side or both; bit for bit. The
   mirrored run is compared with the CPU's output mirrored. */
static int prep_pass, prep_fail;
static char prep_msg[320];

static void prep_case(int n, int c_in, int h, int w, int S, ot_data_norm norm, bool to_rgb)
{
    ot_data_transform t;
    ot_data_resample r;
    ot_err err;
    char what[96];
    ot_err_init(&err);
    ot_data_transform_init(&t, S, norm);
    t.to_rgb = to_rgb;
    snprintf(what, sizeof what, "%d x %d x %d -> %d%s", c_in, h, w, S,
             c_in == 1 && to_rgb ? " (gray to RGB)" : "");
    int c_out = ot_data_out_channels(&t, c_in);
    size_t px = (size_t)c_in * h * w, po = (size_t)c_out * S * S;
    size_t scratch_bytes = ot_data_prepare_scratch_bytes(h, w, &t);
    uint8_t *img = malloc((size_t)n * px);
    float *want = malloc((size_t)n * po * sizeof(float));
    float *got = malloc((size_t)n * po * sizeof(float));
    void *scratch = malloc(scratch_bytes);
    bool ok = img && want && got && scratch && ot_data_resample_plan(h, w, &t, &r);
    int32_t *coef = ok ? malloc((r.n_coef ? r.n_coef : 1) * sizeof(int32_t)) : NULL;
    void *d_img = NULL, *d_coef = NULL, *d_tmp = NULL, *d_out = NULL;
    if (!coef) {
        snprintf(prep_msg, sizeof prep_msg, "%s: no plan", what);
        prep_fail++;
        goto done;
    }
    for (size_t i = 0; i < (size_t)n * px; i++)
        img[i] = (uint8_t)(urand() * 256);
    for (int b = 0; b < n; b++) {
        ot_image im = { img + (size_t)b * px, h, w, c_in };
        if (ot_data_prepare(&im, &t, want + (size_t)b * po, scratch, scratch_bytes, &err) !=
            OT_OK) {
            snprintf(prep_msg, sizeof prep_msg, "%s: CPU: %.200s", what, err.msg);
            prep_fail++;
            goto done;
        }
    }
    ot_data_resample_coefs(&r, coef);
    otk_prep q = { .n = n, .c_in = c_in, .c_out = c_out, .h = h, .w = w, .S = S, .top = r.top,
                   .left = r.left, .kw = r.kw, .kh = r.kh };
    for (int c = 0; c < 3; c++) {
        q.mean[c] = t.mean[c];
        q.std[c] = t.std[c];
    }
    d_img = dev_alloc((size_t)n * px);
    d_coef = dev_alloc(r.n_coef * sizeof(int32_t));
    d_tmp = dev_alloc((size_t)n * c_in * h * S);
    d_out = dev_alloc((size_t)n * po * sizeof(float));
    if (!d_img || !d_coef || !d_tmp || !d_out) {
        snprintf(prep_msg, sizeof prep_msg, "%s: device memory", what);
        prep_fail++;
        goto done;
    }
    cudaMemcpy(d_img, img, (size_t)n * px, cudaMemcpyHostToDevice);
    cudaMemcpy(d_coef, coef, r.n_coef * sizeof(int32_t), cudaMemcpyHostToDevice);
    for (int flip = 0; flip < 2; flip++) {
        q.flip = flip;
        int e = otk_prepare_u8(ctx.stream, &q, d_img, d_coef, d_tmp, d_out);
        if (e == 0)
            e = (int)cudaStreamSynchronize(ctx.stream);
        if (e == 0)
            e = (int)cudaMemcpy(got, d_out, (size_t)n * po * sizeof(float),
                                cudaMemcpyDeviceToHost);
        size_t bad = (size_t)-1;
        for (size_t i = 0; e == 0 && bad == (size_t)-1 && i < (size_t)n * po; i++) {
            size_t j = i % S, row = i - j;
            float ref = want[row + (flip ? (size_t)S - 1 - j : j)];
            if (memcmp(&got[i], &ref, sizeof ref) != 0)
                bad = i;
        }
        if (e == 0 && bad == (size_t)-1) {
            prep_pass++;
            if (verbose)
                printf("  pass prepare %s%s\n", what, flip ? " mirrored" : "");
            continue;
        }
        prep_fail++;
        if (!prep_msg[0]) {
            if (e)
                snprintf(prep_msg, sizeof prep_msg, "%s: launch error %d", what, e);
            else
                snprintf(prep_msg, sizeof prep_msg, "%s%s: element %zu: got %.9g, want %.9g",
                         what, flip ? " mirrored" : "", bad, (double)got[bad],
                         (double)want[bad - bad % S + (flip ? (size_t)S - 1 - bad % S : bad % S)]);
        }
    }
done:
    cudaFree(d_img);
    cudaFree(d_coef);
    cudaFree(d_tmp);
    cudaFree(d_out);
    free(coef);
    free(img);
    free(want);
    free(got);
    free(scratch);
}

static void cases_prepare(void)
{
    prep_case(3, 3, 32, 32, 64, OT_DATA_NORM_IMAGENET, true); /* CIFAR, enlarged */
    prep_case(2, 3, 32, 32, 32, OT_DATA_NORM_HALF, true);     /* CIFAR as it is   */
    prep_case(2, 3, 32, 32, 24, OT_DATA_NORM_NONE, true);     /* CIFAR, shrunk    */
    prep_case(4, 1, 28, 28, 32, OT_DATA_NORM_IMAGENET, true); /* IDX to RGB       */
    prep_case(2, 1, 28, 28, 20, OT_DATA_NORM_HALF, false);    /* IDX stays gray   */
    prep_case(2, 3, 40, 30, 24, OT_DATA_NORM_IMAGENET, true); /* tall, both shrink */
    prep_case(2, 3, 36, 32, 30, OT_DATA_NORM_HALF, true);     /* wide crop        */
    prep_case(2, 3, 32, 40, 32, OT_DATA_NORM_NONE, true);     /* crop only        */
    prep_case(1, 3, 17, 50, 61, OT_DATA_NORM_IMAGENET, true); /* odd sizes        */
    if (prep_fail) {
        printf("FAIL prepare_u8 (loader transform): %d of %d cases; first: %s\n", prep_fail,
               prep_fail + prep_pass, prep_msg);
        n_fail++;
    } else {
        printf("pass prepare_u8 (loader transform, %d cases)\n", prep_pass);
        n_pass++;
    }
}

/* The training transform on the device (otk_prepare_u8_boxes: --augment's
   random crop and flip per image) against the CPU loader's augmented output
   (ot_data_prepare_augmented, the same seed, epoch and index), bit for bit;
   and boxes given by hand: the whole image, a box of S x S (no resample
   pass), a box of one side S, each mirrored or not (ot_data_prepare_box). */
static int box_pass, box_fail;
static char box_msg[320];

static void box_case(int n, int c_in, int h, int w, int S, ot_data_norm norm, bool to_rgb,
                     uint64_t seed, const int (*given)[5])
{
    ot_data_transform t;
    ot_err err;
    char what[96];
    ot_err_init(&err);
    ot_data_transform_init(&t, S, norm);
    t.to_rgb = to_rgb;
    snprintf(what, sizeof what, "%d x %d x %d -> %d, %s boxes", c_in, h, w, S,
             given ? "given" : "random");
    int c_out = ot_data_out_channels(&t, c_in);
    size_t px = (size_t)c_in * h * w, po = (size_t)c_out * S * S;
    size_t scratch_bytes = ot_data_augment_scratch_bytes(h, w, &t);
    int stride = OTK_BOX_HEAD + (int)ot_data_box_coef_max(h, w, &t);
    uint8_t *img = malloc((size_t)n * px);
    float *want = malloc((size_t)n * po * sizeof(float));
    float *got = malloc((size_t)n * po * sizeof(float));
    void *scratch = malloc(scratch_bytes);
    int32_t *boxes = calloc((size_t)n * (size_t)stride, sizeof(int32_t));
    void *d_img = NULL, *d_box = NULL, *d_tmp = NULL, *d_out = NULL;
    if (!img || !want || !got || !scratch || !boxes || stride == OTK_BOX_HEAD) {
        snprintf(box_msg, sizeof box_msg, "%s: no plan", what);
        box_fail++;
        goto done;
    }
    for (size_t i = 0; i < (size_t)n * px; i++)
        img[i] = (uint8_t)(urand() * 256);
    for (int b = 0; b < n; b++) {
        ot_image im = { img + (size_t)b * px, h, w, c_in };
        ot_data_crop c;
        ot_data_resample r;
        ot_status st;
        if (given) {
            c = (ot_data_crop){ .top = given[b][0], .left = given[b][1], .height = given[b][2],
                                .width = given[b][3], .flip = given[b][4] != 0 };
            st = ot_data_prepare_box(&im, &t, c.top, c.left, c.height, c.width, c.flip,
                                     want + (size_t)b * po, scratch, scratch_bytes, &err);
        } else {
            ot_data_augment_params(h, w, seed, 3, 100 + b, &c);
            st = ot_data_prepare_augmented(&im, &t, seed, 3, 100 + b, want + (size_t)b * po,
                                           scratch, scratch_bytes, &err);
        }
        int32_t *bx = boxes + (size_t)b * (size_t)stride;
        if (st != OT_OK ||
            !ot_data_box_resample_plan(h, w, c.top, c.left, c.height, c.width, &t, &r) ||
            OTK_BOX_HEAD + (int)r.n_coef > stride) {
            snprintf(box_msg, sizeof box_msg, "%s: image %d: CPU: %.100s", what, b,
                     st != OT_OK ? err.msg : "no box plan");
            box_fail++;
            goto done;
        }
        int32_t head[OTK_BOX_HEAD] = { c.top, c.left, c.height, c.width, r.kw, r.kh, c.flip, 0 };
        memcpy(bx, head, sizeof head);
        ot_data_resample_coefs(&r, bx + OTK_BOX_HEAD);
    }
    otk_prep q = { .n = n, .c_in = c_in, .c_out = c_out, .h = h, .w = w, .S = S,
                   .box_stride = stride };
    for (int c = 0; c < 3; c++) {
        q.mean[c] = t.mean[c];
        q.std[c] = t.std[c];
    }
    d_img = dev_alloc((size_t)n * px);
    d_box = dev_alloc((size_t)n * (size_t)stride * sizeof(int32_t));
    d_tmp = dev_alloc((size_t)n * c_in * h * S);
    d_out = dev_alloc((size_t)n * po * sizeof(float));
    if (!d_img || !d_box || !d_tmp || !d_out) {
        snprintf(box_msg, sizeof box_msg, "%s: device memory", what);
        box_fail++;
        goto done;
    }
    cudaMemcpy(d_img, img, (size_t)n * px, cudaMemcpyHostToDevice);
    cudaMemcpy(d_box, boxes, (size_t)n * (size_t)stride * sizeof(int32_t),
               cudaMemcpyHostToDevice);
    int e = otk_prepare_u8_boxes(ctx.stream, &q, d_img, d_box, d_tmp, d_out);
    if (e == 0)
        e = (int)cudaStreamSynchronize(ctx.stream);
    if (e == 0)
        e = (int)cudaMemcpy(got, d_out, (size_t)n * po * sizeof(float), cudaMemcpyDeviceToHost);
    size_t bad = (size_t)-1;
    for (size_t i = 0; e == 0 && bad == (size_t)-1 && i < (size_t)n * po; i++)
        if (memcmp(&got[i], &want[i], sizeof *got) != 0)
            bad = i;
    if (e == 0 && bad == (size_t)-1) {
        box_pass++;
        if (verbose)
            printf("  pass prepare %s\n", what);
    } else {
        box_fail++;
        if (!box_msg[0] && e)
            snprintf(box_msg, sizeof box_msg, "%s: launch error %d", what, e);
        else if (!box_msg[0])
            snprintf(box_msg, sizeof box_msg, "%s: element %zu (image %zu): got %.9g, want %.9g",
                     what, bad, bad / po, (double)got[bad], (double)want[bad]);
    }
done:
    cudaFree(d_img);
    cudaFree(d_box);
    cudaFree(d_tmp);
    cudaFree(d_out);
    free(boxes);
    free(img);
    free(want);
    free(got);
    free(scratch);
}

static void cases_prepare_boxes(void)
{
    static const int whole[4][5] = { { 0, 0, 32, 32, 0 }, { 0, 0, 32, 32, 1 },
                                     { 4, 2, 24, 24, 1 }, { 3, 5, 24, 17, 0 } };
    static const int sides[3][5] = { { 0, 0, 28, 10, 1 }, { 10, 0, 13, 28, 0 },
                                     { 0, 7, 28, 20, 0 } };
    box_case(6, 3, 32, 32, 64, OT_DATA_NORM_IMAGENET, true, 1, NULL); /* CIFAR, enlarged  */
    box_case(6, 3, 32, 32, 24, OT_DATA_NORM_HALF, true, 2, NULL);     /* CIFAR, shrunk    */
    box_case(4, 1, 28, 28, 32, OT_DATA_NORM_IMAGENET, true, 3, NULL); /* IDX to RGB       */
    box_case(4, 1, 28, 28, 20, OT_DATA_NORM_NONE, false, 4, NULL);    /* IDX stays gray   */
    box_case(4, 3, 17, 50, 40, OT_DATA_NORM_IMAGENET, true, 5, NULL); /* odd sizes        */
    box_case(4, 3, 32, 32, 24, OT_DATA_NORM_IMAGENET, true, 0, whole); /* S x S boxes too */
    box_case(3, 1, 28, 28, 28, OT_DATA_NORM_HALF, true, 0, sides);    /* one side S       */
    if (box_fail) {
        printf("FAIL prepare_u8_boxes (augmented loader transform): %d of %d cases; first: %s\n",
               box_fail, box_fail + box_pass, box_msg);
        n_fail++;
    } else {
        printf("pass prepare_u8_boxes (augmented loader transform, %d cases)\n", box_pass);
        n_pass++;
    }
}

/* The inputs' pinned staging (cuda_stage.c) on an executor of two inputs:
   a copy into an input buffer, whole or at an offset, goes through the
   input's own pinned region and arrives once the compute stream has waited
   on the copy; a copy elsewhere, or past an input's end, is left to the
   caller; pending regions clear only after a completed run. */
static void cases_stage(void)
{
    static const size_t bytes[2] = { 3000, 40 };
    ot_exec x;
    ot_tensor shapes[2];
    void *mem[2] = { dev_alloc(bytes[0]), dev_alloc(bytes[1]) };
    void *other = dev_alloc(64);
    unsigned char src[3000], back[3000];
    ot_cuda_stage st;
    ot_err err;
    const char *bad = NULL;
    bool handled = false;
    memset(&x, 0, sizeof x);
    memset(shapes, 0, sizeof shapes);
    ot_err_init(&err);
    for (int i = 0; i < 2; i++)
        shapes[i].bytes = bytes[i];
    x.n_in = 2;
    x.in_mem = mem;
    x.in_shapes = shapes;
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (unsigned char)(i * 7 + 3);
    if (!mem[0] || !mem[1] || !other || ot_cuda_stage_init(&st, &x, &err) != OT_OK) {
        bad = "set-up";
        goto done;
    }
    if (ot_cuda_stage_copy(&st, &x, mem[0], src, bytes[0], &handled, &err) != OT_OK || !handled)
        bad = "a whole input is not staged";
    else if (ot_cuda_stage_copy(&st, &x, (char *)mem[1] + 8, src, 32, &handled, &err) != OT_OK ||
             !handled)
        bad = "a copy at an offset into an input is not staged";
    else if (!st.pending[0] || !st.pending[1] || !st.any)
        bad = "copied inputs are not pending";
    else if (st.off[1] < bytes[0] || st.off[1] % 256 != 0)
        bad = "the second input's region overlaps the first or is not aligned";
    else if (ot_cuda_stage_copy(&st, &x, other, src, 64, &handled, &err) != OT_OK || handled)
        bad = "a copy outside the inputs is staged";
    else if (ot_cuda_stage_copy(&st, &x, (char *)mem[1] + 8, src, 33, &handled, &err) != OT_OK ||
             handled)
        bad = "a copy past an input's end is staged";
    if (bad)
        goto done;
    if (ot_cuda_stage_fence(&st, &x, ctx.stream, &err) != OT_OK ||
        cudaStreamSynchronize(ctx.stream) != cudaSuccess) {
        bad = "fence";
        goto done;
    }
    if (!st.pending[0])
        bad = "a fence alone clears the pending regions";
    ot_cuda_stage_done(&st);
    if (!bad && (st.pending[0] || st.pending[1] || st.any))
        bad = "a completed run leaves regions pending";
    if (!bad && (cudaMemcpy(back, mem[0], bytes[0], cudaMemcpyDeviceToHost) != cudaSuccess ||
                 memcmp(back, src, bytes[0]) != 0))
        bad = "the first input's bytes differ";
    if (!bad && (cudaMemcpy(back, mem[1], bytes[1], cudaMemcpyDeviceToHost) != cudaSuccess ||
                 memcmp(back + 8, src, 32) != 0))
        bad = "the second input's bytes differ";
    ot_cuda_stage_free(&st, &x);
done:
    if (bad) {
        printf("FAIL input staging (cuda_stage.c): %s%s%s\n", bad, err.msg[0] ? ": " : "",
               err.msg);
        n_fail++;
    } else {
        printf("pass input staging (cuda_stage.c)\n");
        n_pass++;
    }
    for (int i = 0; i < 2; i++)
        cudaFree(mem[i]);
    cudaFree(other);
}

static ot_status stage_mem_alloc(ot_exec *x, size_t bytes, void **out, ot_err *err)
{
    (void)x;
    *out = dev_alloc(bytes);
    return *out ? OT_OK : ot_err_set(err, OT_ERR_NOMEM, "out of device memory");
}

static void stage_mem_free(ot_exec *x, void *p)
{
    (void)x;
    cudaFree(p);
}

/* Handing the next run's input in ahead (cuda_stage.c's prefetch slots):
   only an input compiled for it gets a slot, of its size; a prefetch leaves
   the input buffer as it is (the run in flight reads it) and survives that
   run's end; the next run's fence copies the slot into the input buffer;
   the wrong input or size is refused. */
static void cases_prefetch(void)
{
    static const size_t bytes[2] = { 4096, 24 };
    static const ot_backend be = { .name = "stage", .mem_alloc = stage_mem_alloc,
                                   .mem_free = stage_mem_free };
    ot_exec x;
    ot_tensor shapes[2];
    bool pre[2] = { true, false };
    void *mem[2] = { dev_alloc(bytes[0]), dev_alloc(bytes[1]) };
    unsigned char a[4096], b[4096], back[4096];
    ot_cuda_stage st;
    ot_err err;
    const char *bad = NULL;
    bool handled = false, init = false;
    memset(&x, 0, sizeof x);
    memset(shapes, 0, sizeof shapes);
    ot_err_init(&err);
    for (int i = 0; i < 2; i++)
        shapes[i].bytes = bytes[i];
    x.be = &be;
    x.n_in = 2;
    x.in_mem = mem;
    x.in_shapes = shapes;
    x.in_prefetch = pre;
    for (size_t i = 0; i < sizeof a; i++) {
        a[i] = (unsigned char)(i * 5 + 1);
        b[i] = (unsigned char)(i * 11 + 7);
    }
    if (!mem[0] || !mem[1] || ot_cuda_stage_init(&st, &x, &err) != OT_OK ||
        !(init = true) || ot_cuda_stage_slots(&st, &x, ctx.stream, &err) != OT_OK) {
        bad = "set-up";
        goto done;
    }
    if (!st.slot || !st.slot[0] || st.slot[1])
        bad = "the slots are not those of the inputs compiled for prefetch";
    /* run k: its input copied at launch, fenced */
    else if (ot_cuda_stage_copy(&st, &x, mem[0], a, bytes[0], &handled, &err) != OT_OK ||
             !handled || ot_cuda_stage_fence(&st, &x, ctx.stream, &err) != OT_OK)
        bad = "the first run's input";
    /* while run k is in flight: the next batch */
    else if (ot_cuda_stage_prefetch(&st, &x, 0, b, bytes[0], false, &err) != OT_OK)
        bad = "a prefetch is refused";
    else if (!st.ready[0] || !st.any)
        bad = "a prefetched input is not ready";
    if (bad)
        goto done;
    if (cudaStreamSynchronize(ctx.stream) != cudaSuccess ||
        cudaMemcpy(back, mem[0], bytes[0], cudaMemcpyDeviceToHost) != cudaSuccess ||
        memcmp(back, a, bytes[0]) != 0) {
        bad = "a prefetch changed the input buffer of the run in flight";
        goto done;
    }
    ot_cuda_stage_done(&st); /* run k waited for */
    if (!st.ready[0] || !st.any) {
        bad = "the end of the run in flight dropped the prefetched input";
        goto done;
    }
    /* run k+1 */
    if (ot_cuda_stage_fence(&st, &x, ctx.stream, &err) != OT_OK ||
        cudaStreamSynchronize(ctx.stream) != cudaSuccess) {
        bad = "fence";
        goto done;
    }
    if (st.ready[0])
        bad = "the fence left the slot ready";
    else if (cudaMemcpy(back, mem[0], bytes[0], cudaMemcpyDeviceToHost) != cudaSuccess ||
             memcmp(back, b, bytes[0]) != 0)
        bad = "the next run's input buffer does not hold the prefetched bytes";
    ot_cuda_stage_done(&st);
    if (!bad && st.any)
        bad = "a taken slot stays pending";
    if (!bad && ot_cuda_stage_prefetch(&st, &x, 1, b, bytes[1], false, &err) == OT_OK)
        bad = "an input without a slot is prefetched";
    if (!bad && ot_cuda_stage_prefetch(&st, &x, 0, b, bytes[0] - 4, false, &err) == OT_OK)
        bad = "a prefetch of another size is taken";
    if (!bad)
        ot_err_init(&err);
done:
    if (init)
        ot_cuda_stage_free(&st, &x);
    if (bad) {
        printf("FAIL input prefetch (cuda_stage.c): %s%s%s\n", bad, err.msg[0] ? ": " : "",
               err.msg);
        n_fail++;
    } else {
        printf("pass input prefetch (cuda_stage.c)\n");
        n_pass++;
    }
    for (int i = 0; i < 2; i++)
        cudaFree(mem[i]);
}

/* ------------------------------------------------------ channels-last */

/* x [N, C, S] to y [N, S, C] (to_nhwc), or back, on the host. */
static void host_nhwc(const void *x, void *y, size_t es, int64_t N, int64_t C, int64_t S,
                      bool to_nhwc)
{
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t p = 0; p < S; p++) {
                int64_t a = (n * C + c) * S + p, b = (n * S + p) * C + c;
                memcpy((char *)y + (size_t)(to_nhwc ? b : a) * es,
                       (const char *)x + (size_t)(to_nhwc ? a : b) * es, es);
            }
}

/* Runs n's CUDA kernel on host tensors (device copies), the outputs' bytes
   into got[j] (malloc'd). false with msg on a failure. */
static bool dev_run(const ot_node *n, const ot_tensor *const *in, ot_tensor *const *out,
                    void **got, char *msg, size_t size)
{
    ot_tensor din[MAX_IO], dout[MAX_IO];
    const ot_tensor *dip[MAX_IO];
    ot_tensor *dp[MAX_IO];
    ot_err err;
    bool ok = false;
    void *scratch = NULL;
    ot_err_init(&err);
    memset(din, 0, sizeof din);
    memset(dout, 0, sizeof dout);
    for (int j = 0; j < n->n_in; j++) {
        dip[j] = NULL;
        if (!in[j])
            continue;
        din[j] = *in[j];
        din[j].data = dev_alloc(in[j]->bytes);
        if (in[j]->bytes)
            cudaMemcpy(din[j].data, in[j]->data, in[j]->bytes, cudaMemcpyHostToDevice);
        dip[j] = &din[j];
    }
    for (int j = 0; j < n->n_out; j++) {
        dp[j] = NULL;
        got[j] = NULL;
        if (!out[j])
            continue;
        dout[j] = *out[j];
        dout[j].data = dev_alloc(out[j]->bytes);
        cudaMemsetAsync(dout[j].data, 0xff, out[j]->bytes, (cudaStream_t)ctx.stream);
        dp[j] = &dout[j];
    }
    const char *why = "unsupported";
    if (!ot_cuda_supports(NULL, n, dip, (const ot_tensor *const *)dp, &why)) {
        snprintf(msg, size, "CUDA kernel: %s", why);
        goto done;
    }
    size_t sb = ot_cuda_scratch_bytes(NULL, n, dip, (const ot_tensor *const *)dp);
    scratch = dev_alloc(sb);
    ctx.scratch = scratch;
    ctx.scratch_bytes = sb;
    if (ot_cuda_kernel(n)(&ctx, NULL, n, dip, dp, &err) != OT_OK ||
        cudaStreamSynchronize((cudaStream_t)ctx.stream) != cudaSuccess) {
        snprintf(msg, size, "CUDA kernel: %.200s", err.msg);
        goto done;
    }
    for (int j = 0; j < n->n_out; j++)
        if (dp[j]) {
            got[j] = malloc(out[j]->bytes ? out[j]->bytes : 1);
            if (out[j]->bytes)
                cudaMemcpy(got[j], dout[j].data, out[j]->bytes, cudaMemcpyDeviceToHost);
        }
    ok = true;
done:
    for (int j = 0; j < MAX_IO; j++) {
        if (din[j].data)
            cudaFree(din[j].data);
        if (dout[j].data)
            cudaFree(dout[j].data);
    }
    if (scratch)
        cudaFree(scratch);
    return ok;
}

static bool same_dims(const ot_tensor *a, const ot_tensor *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->dims[i] != b->dims[i])
            return false;
    return true;
}

/* Case t on NCHW, then channels-last: its rank-4 operands (flat: those of
   the output's shape) on NHWC copies, the kernel told by the context's nhwc
   (flat: every operand of more than one element seen through
   ot_cuda_nhwc_view instead); the outputs, converted back, must be the NCHW
   run's bytes. */
static void tc_run_nhwc(tcase *t, bool flat, const char *what)
{
    const ot_tensor *in[MAX_IO], *vin[MAX_IO];
    ot_tensor *out[8], *vout[8], view_in[MAX_IO], view_out[8];
    void *want[8] = { 0 }, *got[8] = { 0 };
    char msg[400] = "", label[200];
    int res = -1;
    const ot_tensor *shape = &t->out[0];
    for (int i = 0; i < t->n.n_in; i++) {
        in[i] = t->in_ids[i] >= 0 ? &t->in[i] : NULL;
        view_in[i] = t->in[i];
        view_in[i].data = NULL;
    }
    for (int i = 0; i < t->n.n_out; i++) {
        out[i] = t->out_ids[i] >= 0 ? &t->out[i] : NULL;
        view_out[i] = t->out[i];
    }
    ctx.nhwc = 0;
    if (!dev_run(&t->n, in, out, want, msg, sizeof msg))
        goto done;
    /* the channels-last operands */
    for (int i = 0; i < t->n.n_in + t->n.n_out; i++) {
        bool is_in = i < t->n.n_in;
        ot_tensor *v = is_in ? &view_in[i] : &view_out[i - t->n.n_in];
        if (is_in ? !in[i] : !out[i - t->n.n_in])
            continue;
        bool follows = v->ndim == 4 && (!flat || same_dims(v, shape));
        if (is_in) {
            v->data = malloc(v->bytes ? v->bytes : 1);
            if (follows)
                host_nhwc(t->in[i].data, v->data, ot_dtype_size(v->dtype), v->dims[0],
                          v->dims[1], v->dims[2] * v->dims[3], true);
            else if (v->bytes)
                memcpy(v->data, t->in[i].data, v->bytes);
        }
        if (flat && ot_tensor_numel(v) > 1) {
            int64_t d[OT_MAX_DIMS];
            v->ndim = ot_cuda_nhwc_view(v->ndim, v->dims, d);
            memcpy(v->dims, d, sizeof *d * (size_t)v->ndim);
        }
    }
    for (int i = 0; i < t->n.n_in; i++)
        vin[i] = in[i] ? &view_in[i] : NULL;
    for (int i = 0; i < t->n.n_out; i++)
        vout[i] = out[i] ? &view_out[i] : NULL;
    ctx.nhwc = !flat;
    bool ran = dev_run(&t->n, vin, vout, got, msg, sizeof msg);
    ctx.nhwc = 0;
    if (!ran)
        goto done;
    res = 1;
    for (int j = 0; j < t->n.n_out && res > 0; j++) {
        if (!out[j])
            continue;
        const ot_tensor *o = out[j];
        void *back = malloc(o->bytes ? o->bytes : 1);
        if (o->ndim == 4 && (!flat || same_dims(o, shape)))
            host_nhwc(got[j], back, ot_dtype_size(o->dtype), o->dims[0], o->dims[1],
                      o->dims[2] * o->dims[3], false);
        else if (o->bytes)
            memcpy(back, got[j], o->bytes);
        if (o->bytes && memcmp(back, want[j], o->bytes) != 0) {
            snprintf(msg, sizeof msg, "output %d differs from the NCHW run's", j);
            res = -1;
        }
        free(back);
    }
    if (res > 0)
        snprintf(msg, sizeof msg, "ok");
done:
    snprintf(label, sizeof label, "%s NHWC (%s)", t->n.op_type, what);
    record(t->n.op->id, res, label, msg);
    for (int i = 0; i < 8; i++) {
        free(want[i]);
        free(got[i]);
    }
    for (int i = 0; i < t->n.n_in; i++)
        free(view_in[i].data);
    for (int i = 0; i < MAX_IO; i++)
        free(t->in[i].data);
    for (int i = 0; i < 8; i++)
        free(t->out[i].data);
}

static void nhwc_pool(ot_op_id op, const int64_t *xd, const int64_t *yd, int include_pad,
                      int ceil, const char *what)
{
    tcase t;
    bool grad = op == OT_OP_MAXPOOL_GRAD || op == OT_OP_AVGPOOL_GRAD;
    tc_init(&t, op, grad ? 1 : 11, op == OT_OP_MAXPOOL_GRAD ? 2 : 1, 1);
    tc_ints(&t, "kernel_shape", 2, (int64_t[]){ 3, 3 });
    tc_ints(&t, "strides", 2, (int64_t[]){ 2, 2 });
    tc_ints(&t, "pads", 4, (int64_t[]){ 1, 1, 1, 1 });
    tc_int(&t, "ceil_mode", ceil);
    tc_int(&t, "count_include_pad", include_pad);
    if (op == OT_OP_MAXPOOL_GRAD)
        tc_tensor(&t.in[1], OT_DTYPE_FLOAT, COARSE, 0, 4, xd[0], xd[1], xd[2], xd[3]);
    if (grad) {
        tc_tensor(&t.in[0], OT_DTYPE_FLOAT, RAND, 0, 4, yd[0], yd[1], yd[2], yd[3]);
        OUT(&t, 0, OT_DTYPE_FLOAT, 4, xd[0], xd[1], xd[2], xd[3]);
    } else {
        tc_tensor(&t.in[0], OT_DTYPE_FLOAT, COARSE, 0, 4, xd[0], xd[1], xd[2], xd[3]);
        OUT(&t, 0, OT_DTYPE_FLOAT, 4, yd[0], yd[1], yd[2], yd[3]);
    }
    tc_run_nhwc(&t, false, what);
}

static void cases_nhwc(void)
{
    static const int64_t d[4] = { 3, 6, 5, 7 };
    tcase t;
    /* BatchNorm: training, its backward in both modes, inference */
    tc_init(&t, OT_OP_BATCHNORM_TRAIN, 1, 5, 5);
    IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 4, d[0], d[1], d[2], d[3]);
    for (int i = 1; i < 5; i++)
        IN(&t, i, OT_DTYPE_FLOAT, i == 4 ? POS : RAND, 0, 1, d[1]);
    OUT(&t, 0, OT_DTYPE_FLOAT, 4, d[0], d[1], d[2], d[3]);
    for (int i = 1; i < 5; i++)
        OUT(&t, i, OT_DTYPE_FLOAT, 1, d[1]);
    tc_run_nhwc(&t, false, "3x6x5x7");
    for (int training = 0; training < 2; training++) {
        tc_init(&t, OT_OP_BATCHNORM_GRAD, 1, 5, 3);
        tc_int(&t, "training_mode", training);
        IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 4, d[0], d[1], d[2], d[3]);
        IN(&t, 1, OT_DTYPE_FLOAT, RAND, 0, 4, d[0], d[1], d[2], d[3]);
        IN(&t, 2, OT_DTYPE_FLOAT, RAND, 0, 1, d[1]);
        IN(&t, 3, OT_DTYPE_FLOAT, RAND, 0, 1, d[1]);
        IN(&t, 4, OT_DTYPE_FLOAT, POS, 0, 1, d[1]);
        OUT(&t, 0, OT_DTYPE_FLOAT, 4, d[0], d[1], d[2], d[3]);
        OUT(&t, 1, OT_DTYPE_FLOAT, 1, d[1]);
        OUT(&t, 2, OT_DTYPE_FLOAT, 1, d[1]);
        tc_run_nhwc(&t, false, training ? "training" : "inference");
    }
    for (int training = 0; training < 2; training++) {
        tc_init(&t, OT_OP_BATCHNORM, 15, 5, training ? 3 : 1);
        tc_int(&t, "training_mode", training);
        IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 4, d[0], d[1], d[2], d[3]);
        for (int i = 1; i < 5; i++)
            IN(&t, i, OT_DTYPE_FLOAT, i == 4 ? POS : RAND, 0, 1, d[1]);
        OUT(&t, 0, OT_DTYPE_FLOAT, 4, d[0], d[1], d[2], d[3]);
        if (training) {
            OUT(&t, 1, OT_DTYPE_FLOAT, 1, d[1]);
            OUT(&t, 2, OT_DTYPE_FLOAT, 1, d[1]);
        }
        tc_run_nhwc(&t, false, training ? "opset 15 training mode" : "inference");
    }
    /* pools and their backward: 3x3 s2 p1, and a ceil-mode average with the
       pads counted */
    const int64_t px[4] = { 2, 3, 11, 9 }, py[4] = { 2, 3, 6, 5 }, pyc[4] = { 2, 3, 6, 5 };
    nhwc_pool(OT_OP_MAXPOOL, px, py, 0, 0, "3x3 s2 p1");
    nhwc_pool(OT_OP_AVGPOOL, px, pyc, 1, 1, "3x3 s2 p1 ceil, pads counted");
    nhwc_pool(OT_OP_MAXPOOL_GRAD, px, py, 0, 0, "3x3 s2 p1");
    nhwc_pool(OT_OP_AVGPOOL_GRAD, px, pyc, 1, 0, "3x3 s2 p1, pads counted");
    static const ot_op_id gops[] = { OT_OP_GLOBALAVGPOOL, OT_OP_GLOBALMAXPOOL };
    for (int o = 0; o < 2; o++) {
        tc_init(&t, gops[o], 11, 1, 1);
        IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 4, d[0], d[1], d[2], d[3]);
        OUT(&t, 0, OT_DTYPE_FLOAT, 4, d[0], d[1], D(1), D(1));
        tc_run_nhwc(&t, false, "3x6x5x7");
    }
    static const ot_op_id ggops[] = { OT_OP_GLOBALAVGPOOL_GRAD, OT_OP_GLOBALMAXPOOL_GRAD };
    for (int o = 0; o < 2; o++) {
        tc_init(&t, ggops[o], 1, o ? 2 : 1, 1);
        IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 4, d[0], d[1], D(1), D(1));
        if (o)
            IN(&t, 1, OT_DTYPE_FLOAT, RAND, 0, 4, d[0], d[1], d[2], d[3]);
        OUT(&t, 0, OT_DTYPE_FLOAT, 4, d[0], d[1], d[2], d[3]);
        tc_run_nhwc(&t, false, "3x6x5x7");
    }
    /* reductions with a result stored alike in both layouts: over H and W
       (kept), over C (dropped) */
    tc_init(&t, OT_OP_REDUCE_MEAN, 13, 1, 1);
    tc_ints(&t, "axes", 2, (int64_t[]){ 2, 3 });
    IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 4, d[0], d[1], d[2], d[3]);
    OUT(&t, 0, OT_DTYPE_FLOAT, 4, d[0], d[1], D(1), D(1));
    tc_run_nhwc(&t, false, "over H and W");
    tc_init(&t, OT_OP_REDUCE_MAX, 13, 1, 1);
    tc_ints(&t, "axes", 1, (int64_t[]){ 1 });
    tc_int(&t, "keepdims", 0);
    IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 4, d[0], d[1], d[2], d[3]);
    OUT(&t, 0, OT_DTYPE_FLOAT, 3, d[0], d[2], d[3]);
    tc_run_nhwc(&t, false, "over C");
    /* element-wise, the broadcasts the layout pass lets through: per
       channel ([1, C, 1, 1], [C, 1, 1]), per image and channel ([N, C, 1,
       1]), along W ([W]), and same-shaped operands */
    tc_init(&t, OT_OP_ADD, 14, 2, 1);
    IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 4, d[0], d[1], d[2], d[3]);
    IN(&t, 1, OT_DTYPE_FLOAT, RAND, 0, 4, D(1), d[1], D(1), D(1));
    OUT(&t, 0, OT_DTYPE_FLOAT, 4, d[0], d[1], d[2], d[3]);
    tc_run_nhwc(&t, true, "[1, C, 1, 1]");
    tc_init(&t, OT_OP_MUL, 14, 2, 1);
    IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 3, d[1], D(1), D(1));
    IN(&t, 1, OT_DTYPE_FLOAT, RAND, 0, 4, d[0], d[1], d[2], d[3]);
    OUT(&t, 0, OT_DTYPE_FLOAT, 4, d[0], d[1], d[2], d[3]);
    tc_run_nhwc(&t, true, "[C, 1, 1] first");
    tc_init(&t, OT_OP_SUB, 14, 2, 1);
    IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 4, d[0], d[1], d[2], d[3]);
    IN(&t, 1, OT_DTYPE_FLOAT, RAND, 0, 4, d[0], d[1], D(1), D(1));
    OUT(&t, 0, OT_DTYPE_FLOAT, 4, d[0], d[1], d[2], d[3]);
    tc_run_nhwc(&t, true, "[N, C, 1, 1]");
    tc_init(&t, OT_OP_SUM, 13, 3, 1);
    IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 4, d[0], d[1], d[2], d[3]);
    IN(&t, 1, OT_DTYPE_FLOAT, RAND, 0, 1, d[3]);
    IN(&t, 2, OT_DTYPE_FLOAT, RAND, 0, 4, d[0], d[1], d[2], d[3]);
    OUT(&t, 0, OT_DTYPE_FLOAT, 4, d[0], d[1], d[2], d[3]);
    tc_run_nhwc(&t, true, "[W] and same-shaped");
    tc_init(&t, OT_OP_RELU_GRAD, 1, 2, 1);
    IN(&t, 0, OT_DTYPE_FLOAT, RAND, 0, 4, d[0], d[1], d[2], d[3]);
    IN(&t, 1, OT_DTYPE_FLOAT, RELU, 0, 4, d[0], d[1], d[2], d[3]);
    OUT(&t, 0, OT_DTYPE_FLOAT, 4, d[0], d[1], d[2], d[3]);
    tc_run_nhwc(&t, true, "same-shaped");

    /* the conversion (layout.cu) against the host's, every element size,
       there and back */
    const char *bad = NULL;
    char msg[200] = "";
    static const size_t sizes[] = { 1, 2, 4, 8 };
    const int64_t N = 2, C = 5, S = 3 * 7;
    size_t count = (size_t)(N * C * S);
    for (size_t k = 0; k < 4 && !bad; k++) {
        size_t es = sizes[k], bytes = count * es;
        unsigned char *x = malloc(bytes), *want = malloc(bytes), *got = malloc(bytes);
        void *dx = dev_alloc(bytes), *dy = dev_alloc(bytes), *dz = dev_alloc(bytes);
        for (size_t i = 0; i < bytes; i++)
            x[i] = (unsigned char)(urand() * 256);
        host_nhwc(x, want, es, N, C, S, true);
        cudaMemcpy(dx, x, bytes, cudaMemcpyHostToDevice);
        if (otk_nhwc_transpose(ctx.stream, (int)es, dx, dy, N, C, S, 1) ||
            otk_nhwc_transpose(ctx.stream, (int)es, dy, dz, N, C, S, 0) ||
            cudaStreamSynchronize(ctx.stream) != cudaSuccess) {
            bad = "launch";
        } else {
            cudaMemcpy(got, dy, bytes, cudaMemcpyDeviceToHost);
            if (memcmp(got, want, bytes) != 0) {
                snprintf(msg, sizeof msg, "%zu-byte elements to NHWC differ", es);
                bad = msg;
            }
            cudaMemcpy(got, dz, bytes, cudaMemcpyDeviceToHost);
            if (!bad && memcmp(got, x, bytes) != 0) {
                snprintf(msg, sizeof msg, "%zu-byte elements back to NCHW differ", es);
                bad = msg;
            }
        }
        free(x);
        free(want);
        free(got);
        cudaFree(dx);
        cudaFree(dy);
        cudaFree(dz);
    }
    if (bad) {
        printf("FAIL NCHW <-> NHWC conversion (layout.cu): %s\n", bad);
        n_fail++;
    } else {
        printf("pass NCHW <-> NHWC conversion (layout.cu, 1, 2, 4 and 8-byte elements)\n");
        n_pass++;
    }
}

/* --precision bf16/fp16's conversions (precision.cu) against the CPU's
   (ot_f32_to_bf16, ot_f32_to_f16 and back): random values over many
   binades, ties, subnormals, overflow, infinities and NaN; bits equal (a
   NaN only has to stay a NaN). */
static void cases_half(void)
{
    enum { N = 4099 };
    static float x[N], back[N];
    static uint16_t h[N];
    const char *bad = NULL;
    char msg[320] = "";
    float *dx = dev_alloc(sizeof x), *dback = dev_alloc(sizeof back);
    uint16_t *dh = dev_alloc(sizeof h);
    const float special[] = { 0.0f, -0.0f, 1.0f, 65504.0f, 65520.0f, 1e30f, -3e38f, 5.96e-8f,
                              2.98e-8f, 1e-40f, 1.00048828125f, 1.00146484375f, INFINITY,
                              -INFINITY, NAN };
    size_t ns = sizeof special / sizeof *special;
    for (int i = 0; i < N; i++) {
        if ((size_t)i < ns) {
            x[i] = special[i];
            continue;
        }
        double m = urand() * 2 - 1;
        x[i] = (float)(m * pow(2.0, (double)(i % 80) - 40));
        if (i % 7 == 0) { /* exactly halfway between two bf16 or fp16 values */
            uint32_t b;
            memcpy(&b, &x[i], 4);
            b = (b & ~0xffffu) | (i % 14 ? 0x8000u : 0x1000u);
            memcpy(&x[i], &b, 4);
        }
    }
    if (!dx || !dh || !dback) {
        bad = "device memory";
        goto done;
    }
    for (int bf16 = 0; bf16 < 2 && !bad; bf16++) {
        cudaMemcpy(dx, x, sizeof x, cudaMemcpyHostToDevice);
        if (otk_cast_half(ctx.stream, dx, dh, N, 1, bf16) ||
            otk_cast_half(ctx.stream, dh, dback, N, 0, bf16) ||
            cudaStreamSynchronize(ctx.stream) != cudaSuccess ||
            cudaMemcpy(h, dh, sizeof h, cudaMemcpyDeviceToHost) != cudaSuccess ||
            cudaMemcpy(back, dback, sizeof back, cudaMemcpyDeviceToHost) != cudaSuccess) {
            bad = "launch";
            break;
        }
        for (int i = 0; i < N && !bad; i++) {
            uint16_t want = bf16 ? ot_f32_to_bf16(x[i]) : ot_f32_to_f16(x[i]);
            float wback = bf16 ? ot_bf16_to_f32(h[i]) : ot_f16_to_f32(h[i]);
            bool nan = isnan(x[i]);
            if (nan ? !isnan(back[i]) : h[i] != want) {
                snprintf(msg, sizeof msg, "%s of %.9g: got 0x%04x, want 0x%04x",
                         bf16 ? "bf16" : "fp16", (double)x[i], h[i], want);
                bad = msg;
            } else if (!nan && memcmp(&back[i], &wback, 4) != 0) {
                snprintf(msg, sizeof msg, "%s 0x%04x back to float: got %.9g, want %.9g",
                         bf16 ? "bf16" : "fp16", h[i], (double)back[i], (double)wback);
                bad = msg;
            }
        }
    }
done:
    if (bad) {
        printf("FAIL half conversions (precision.cu): %s\n", bad);
        n_fail++;
    } else {
        printf("pass half conversions (precision.cu, bf16 and fp16, %d values)\n", N);
        n_pass++;
    }
    cudaFree(dx);
    cudaFree(dh);
    cudaFree(dback);
}

/* Synchronised BatchNorm (norm.cu's _sync kernels, --sync-bn over NCCL):
   two ranks holding the same images, their sums "reduced" by doubling
   them, equal one process on the two copies: forward, every output within
   1e-5 relative of the plain kernel's on [x; x]; backward with each rank's
   dY twice the batch's (the gradient of its own mean loss, weight 1/2):
   dScale and dB the plain kernel's, dX twice its first half. Shapes with
   several partial sums per channel. */
static int double_sums(void *ctx_, double *p, int64_t n, void *stream)
{
    (void)ctx_;
    double h[64];
    if (n > 64 || cudaStreamSynchronize((cudaStream_t)stream) != cudaSuccess ||
        cudaMemcpy(h, p, (size_t)n * sizeof *h, cudaMemcpyDeviceToHost) != cudaSuccess)
        return 1;
    for (int64_t i = 0; i < n; i++)
        h[i] *= 2;
    return cudaMemcpy(p, h, (size_t)n * sizeof *h, cudaMemcpyHostToDevice) != cudaSuccess;
}

static bool close_to(const float *got, const float *want, int64_t n, double k, const char *what,
                     char *msg, size_t size)
{
    for (int64_t i = 0; i < n; i++) {
        double a = got[i], b = k * (double)want[i];
        if (!(fabs(a - b) <= 1e-5 * fabs(b) + 1e-6)) {
            snprintf(msg, size, "%s[%lld]: got %.9g, want %.9g", what, (long long)i, a, b);
            return false;
        }
    }
    return true;
}

static void cases_bn_sync(void)
{
    enum { N = 3, C = 4, SP = 700, M = N * SP, X = N * C * SP };
    static float x2[2 * X], y2[2 * X], dy2[2 * X], dx2[2 * X], y[X], dyr[X], dx[X];
    float sc[C], bi[C], rm[C], rv[C], o[8][C];
    const char *bad = NULL;
    char msg[320] = "";
    for (int i = 0; i < X; i++) {
        x2[i] = x2[X + i] = (float)(urand() * 4 - 1);
        dy2[i] = dy2[X + i] = (float)(urand() * 2 - 1);
        dyr[i] = 2 * dy2[i];
    }
    for (int c = 0; c < C; c++) {
        sc[c] = (float)(0.5 + urand());
        bi[c] = (float)(urand() - 0.5);
        rm[c] = (float)(urand() - 0.5);
        rv[c] = (float)(0.5 + urand());
    }
    size_t ws = otk_bn_scratch_bytes(C, 2 * M);
    float *dX2 = dev_alloc(sizeof x2), *dY2 = dev_alloc(sizeof y2), *dDY2 = dev_alloc(sizeof dy2),
          *dDX2 = dev_alloc(sizeof dx2), *dDYR = dev_alloc(sizeof dyr), *dP = dev_alloc(4 * C * sizeof(float)),
          *dO = dev_alloc(8 * C * sizeof(float));
    void *dW = dev_alloc(ws);
    if (!dX2 || !dY2 || !dDY2 || !dDX2 || !dDYR || !dP || !dO || !dW) {
        bad = "device memory";
        goto done;
    }
    cudaMemcpy(dX2, x2, sizeof x2, cudaMemcpyHostToDevice);
    cudaMemcpy(dDY2, dy2, sizeof dy2, cudaMemcpyHostToDevice);
    cudaMemcpy(dDYR, dyr, sizeof dyr, cudaMemcpyHostToDevice);
    cudaMemcpy(dP, sc, sizeof sc, cudaMemcpyHostToDevice);
    cudaMemcpy(dP + C, bi, sizeof bi, cudaMemcpyHostToDevice);
    cudaMemcpy(dP + 2 * C, rm, sizeof rm, cudaMemcpyHostToDevice);
    cudaMemcpy(dP + 3 * C, rv, sizeof rv, cudaMemcpyHostToDevice);
    /* one process on [x; x]: o[0..4) its rmean, rvar, mean, istd; o[4..6) dscale, db */
    if (otk_bn_train_f32(ctx.stream, dX2, dP, dP + C, dP + 2 * C, dP + 3 * C, dY2, dO, dO + C,
                         dO + 2 * C, dO + 3 * C, 1e-5, 0.9, 2 * N, C, SP, 0, dW) ||
        otk_bn_grad_f32(ctx.stream, dDY2, dX2, dP, dO + 2 * C, dO + 3 * C, 1, 1e-5, dDX2,
                        dO + 4 * C, dO + 5 * C, 2 * N, C, SP, 0, dW) ||
        cudaStreamSynchronize(ctx.stream) != cudaSuccess ||
        cudaMemcpy(y2, dY2, sizeof y2, cudaMemcpyDeviceToHost) != cudaSuccess ||
        cudaMemcpy(dx2, dDX2, sizeof dx2, cudaMemcpyDeviceToHost) != cudaSuccess ||
        cudaMemcpy(o, dO, sizeof(float) * 6 * C, cudaMemcpyDeviceToHost) != cudaSuccess) {
        bad = "launch (plain)";
        goto done;
    }
    /* one rank of two, into the same buffers (the plain results are read back) */
    float got[6][C];
    if (otk_bn_train_sync_f32(ctx.stream, dX2, dP, dP + C, dP + 2 * C, dP + 3 * C, dY2, dO, dO + C,
                              dO + 2 * C, dO + 3 * C, 1e-5, 0.9, N, C, SP, 0, 2.0 * M, double_sums,
                              NULL, dW) ||
        otk_bn_grad_sync_f32(ctx.stream, dDYR, dX2, dP, dO + 2 * C, dO + 3 * C, 1e-5, 0.5, dDX2,
                             dO + 4 * C, dO + 5 * C, N, C, SP, 0, double_sums, NULL, dW) ||
        cudaStreamSynchronize(ctx.stream) != cudaSuccess ||
        cudaMemcpy(y, dY2, sizeof y, cudaMemcpyDeviceToHost) != cudaSuccess ||
        cudaMemcpy(dx, dDX2, sizeof dx, cudaMemcpyDeviceToHost) != cudaSuccess ||
        cudaMemcpy(got, dO, sizeof got, cudaMemcpyDeviceToHost) != cudaSuccess) {
        bad = "launch (sync)";
        goto done;
    }
    static const char *const names[6] = { "running mean", "running var", "mean", "inv_std",
                                           "dScale", "dB" };
    if (!close_to(y, y2, X, 1.0, "Y", msg, sizeof msg) ||
        !close_to(dx, dx2, X, 2.0, "dX", msg, sizeof msg))
        bad = msg;
    for (int k = 0; k < 6 && !bad; k++)
        if (!close_to(got[k], o[k], C, 1.0, names[k], msg, sizeof msg))
            bad = msg;
done:
    if (bad) {
        printf("FAIL synchronised BatchNorm (norm.cu, two ranks' sums): %s\n", bad);
        n_fail++;
    } else {
        printf("pass synchronised BatchNorm (norm.cu, two ranks' sums: forward and backward)\n");
        n_pass++;
    }
    cudaFree(dX2);
    cudaFree(dY2);
    cudaFree(dDY2);
    cudaFree(dDX2);
    cudaFree(dDYR);
    cudaFree(dP);
    cudaFree(dO);
    cudaFree(dW);
}

/* uint8 images handed in ahead (an input with x->in_u8): the next run's
   fence resizes and normalises them into the input buffer, equal to the CPU
   loader's output (ot_data_prepare) bit for bit; float bytes for that input
   are refused. Two 3 x 20 x 24 images to 16 x 16. With boxes (--augment):
   each image's box record after the images, equal to the CPU loader's
   augmented output (ot_data_prepare_augmented). */
static void prefetch_u8_run(bool boxes)
{
    enum { N = 2, C = 3, H = 20, W = 24, S = 16 };
    static const ot_backend be = { .name = "stage", .mem_alloc = stage_mem_alloc,
                                   .mem_free = stage_mem_free };
    const size_t px = (size_t)C * H * W, po = (size_t)C * S * S;
    ot_data_transform t;
    ot_data_resample r;
    ot_exec x;
    ot_tensor shape;
    ot_exec_u8 u8s;
    bool pre = true;
    void *mem = dev_alloc(N * po * sizeof(float));
    uint8_t img[N * C * H * W];
    float want[N * C * S * S], got[N * C * S * S];
    ot_cuda_stage st;
    ot_err err;
    const char *bad = NULL;
    bool init = false;
    int32_t *coef = NULL;
    void *scratch = NULL;
    uint8_t *in = NULL; /* the images, then with boxes their records */
    memset(&x, 0, sizeof x);
    memset(&shape, 0, sizeof shape);
    ot_err_init(&err);
    ot_data_transform_init(&t, S, OT_DATA_NORM_IMAGENET);
    for (size_t i = 0; i < sizeof img; i++)
        img[i] = (uint8_t)(urand() * 256);
    size_t sb = boxes ? ot_data_augment_scratch_bytes(H, W, &t)
                      : ot_data_prepare_scratch_bytes(H, W, &t);
    scratch = malloc(sb ? sb : 1);
    if (!mem || !scratch || !ot_data_resample_plan(H, W, &t, &r) ||
        !(coef = malloc(r.n_coef * sizeof *coef))) {
        bad = "set-up";
        goto done;
    }
    ot_data_resample_coefs(&r, coef);
    u8s = (ot_exec_u8){ .c_in = C, .h = H, .w = W, .top = r.top, .left = r.left, .kw = r.kw,
                        .kh = r.kh, .coef = coef, .n_coef = r.n_coef };
    if (boxes) {
        u8s.box_ints = OT_EXEC_U8_BOX_HEAD + (int)ot_data_box_coef_max(H, W, &t);
        u8s.coef = NULL;
        u8s.n_coef = 0;
    }
    if (!(in = calloc(1, ot_exec_u8_bytes(&u8s, N)))) {
        bad = "set-up";
        goto done;
    }
    memcpy(in, img, sizeof img);
    for (int b = 0; b < N; b++) {
        ot_image im = { img + b * px, H, W, C };
        ot_status s1 = boxes ? ot_data_prepare_augmented(&im, &t, 7, 2, b, want + b * po,
                                                         scratch, sb, &err)
                             : ot_data_prepare(&im, &t, want + b * po, scratch, sb, &err);
        if (s1 != OT_OK) {
            bad = "the CPU loader";
            goto done;
        }
        if (boxes) {
            int32_t *q = (int32_t *)(void *)(in + ot_exec_u8_box_offset(&u8s, N)) +
                         (size_t)b * (size_t)u8s.box_ints;
            ot_data_crop c;
            ot_data_resample rb;
            ot_data_augment_params(H, W, 7, 2, b, &c);
            if (!ot_data_box_resample_plan(H, W, c.top, c.left, c.height, c.width, &t, &rb)) {
                bad = "no box plan";
                goto done;
            }
            int32_t head[OT_EXEC_U8_BOX_HEAD] = { c.top, c.left, c.height, c.width,
                                                  rb.kw, rb.kh,  c.flip,   0 };
            memcpy(q, head, sizeof head);
            ot_data_resample_coefs(&rb, q + OT_EXEC_U8_BOX_HEAD);
        }
    }
    for (int c = 0; c < 3; c++) {
        u8s.mean[c] = t.mean[c];
        u8s.std[c] = t.std[c];
    }
    shape.dtype = OT_DTYPE_FLOAT;
    shape.ndim = 4;
    shape.dims[0] = N, shape.dims[1] = C, shape.dims[2] = S, shape.dims[3] = S;
    shape.bytes = N * po * sizeof(float);
    x.be = &be;
    x.n_in = 1;
    x.in_mem = &mem;
    x.in_shapes = &shape;
    x.in_prefetch = &pre;
    x.in_u8 = &u8s;
    if (ot_cuda_stage_init(&st, &x, &err) != OT_OK || !(init = true) ||
        ot_cuda_stage_slots(&st, &x, ctx.stream, &err) != OT_OK) {
        bad = "set-up";
        goto done;
    }
    if (ot_cuda_stage_prefetch(&st, &x, 0, want, shape.bytes, false, &err) == OT_OK) {
        bad = "float bytes for an input of uint8 images are taken";
        goto done;
    }
    if (ot_cuda_stage_prefetch(&st, &x, 0, in, ot_exec_u8_bytes(&u8s, N), true, &err) !=
            OT_OK ||
        ot_cuda_stage_fence(&st, &x, ctx.stream, &err) != OT_OK ||
        cudaStreamSynchronize(ctx.stream) != cudaSuccess ||
        cudaMemcpy(got, mem, sizeof got, cudaMemcpyDeviceToHost) != cudaSuccess) {
        bad = "prefetch and fence";
        goto done;
    }
    if (memcmp(got, want, sizeof got) != 0)
        bad = "the input buffer differs from the CPU loader's output";
    else
        ot_err_init(&err);
done:
    if (init)
        ot_cuda_stage_free(&st, &x);
    if (bad) {
        printf("FAIL uint8 images handed in ahead (cuda_stage.c%s): %s%s%s\n",
               boxes ? ", with boxes" : "", bad, err.msg[0] ? ": " : "", err.msg);
        n_fail++;
    } else {
        printf("pass uint8 images handed in ahead (cuda_stage.c%s)\n",
               boxes ? ", with boxes" : "");
        n_pass++;
    }
    free(in);
    free(coef);
    free(scratch);
    cudaFree(mem);
}

static void cases_prefetch_u8(void)
{
    prefetch_u8_run(false);
    prefetch_u8_run(true);
}

int main(int argc, char **argv)
{
    const char *docs = "docs/gpu.md";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--table")) {
            print_table();
            return 0;
        }
        if (!strcmp(argv[i], "-v"))
            verbose = true;
        else if (!strcmp(argv[i], "--docs") && i + 1 < argc)
            docs = argv[++i];
    }
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count < 1) {
        printf("skipped: no CUDA device\n");
        return 0;
    }
#ifdef OT_CUDA_EMU
    printf("note: host emulation of the device (kernels/emu.h), not a GPU\n");
#endif
    cudaStream_t s;
    if (cudaStreamCreate(&s) != cudaSuccess) {
        printf("skipped: no CUDA device (no stream)\n");
        return 0;
    }
    ctx.stream = s;
    ctx.seed = 1;
    cudaDeviceGetAttribute(&ctx.sm_count, cudaDevAttrMultiProcessorCount, 0);

    check_table(docs);
    node_tests();
    cases_batchnorm();
    cases_pools();
    cases_eltwise_grads();
    cases_reduce();
    cases_loss();
    cases_norm();
    cases_data();
    cases_optim();
    cases_forward();
    cases_index();
    cases_einsum();
    cases_prepare();
    cases_prepare_boxes();
    cases_stage();
    cases_prefetch();
    cases_prefetch_u8();
    cases_half();
    cases_nhwc();
    cases_bn_sync();

    for (int id = 0; id < OT_OP_COUNT_; id++) {
        const char *type = ot_op_table[id]->type;
        if (op_fail[id]) {
            printf("FAIL %s: %d of %d cases; first: %s\n", type, op_fail[id],
                   op_fail[id] + op_pass[id], op_msg[id]);
            n_fail++;
        } else if (op_pass[id]) {
            printf("pass %s (%d cases%s)\n", type, op_pass[id], op_skip[id] ? ", some skipped" : "");
            n_pass++;
        } else {
            const char *reason, *file = ot_cuda_kernel_file((ot_op_id)id, &reason);
            if (file) { /* a kernel that nothing checked */
                printf("FAIL %s: no case ran (every case skipped)\n", type);
                n_fail++;
            } else {
                printf("none %s: %s\n", type, reason ? reason : "no kernel");
            }
        }
    }
    cudaStreamDestroy(s);
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
