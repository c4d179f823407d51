/*
 * cuda.c: the CUDA backend: device contexts, memory, steps, binding and
 * running (the ot_backend interface of src/exec/exec_impl.h).
 *
 * build: a step per node that constant folding left (OT_NODE_FOLDED nodes
 * have none): Conv, ConvGradData and ConvGradFilter on cuDNN (cudnn_conv.c),
 * their bias and bias gradient as rank-1 products on cuBLASLt, Gemm and
 * MatMul on cuBLASLt (cublaslt.c), everything else on the backend's own
 * kernels (cuda_kernels.h). A node none of them takes is refused here, with
 * its name and op, never during a run. The graph's edges are plain row-major
 * (NCHW); inside, the layout pass (cuda_layout.h) keeps rank-4 activations
 * channels-last along the convolutions' chains, with a conversion step where
 * a value meets a reader in the other layout (ONNXTRAIN_CUDA_NHWC=0: none,
 * every tensor NCHW); the arena, the state (parameters, gradients, optimizer
 * moments, BN statistics), the outputs and the inputs are device memory
 * from exec.c's plan, constants one more block uploaded when binding, and
 * convolutions, products and kernels share one workspace in the arena.
 * run: enqueues the steps on the executor's stream and waits once; nothing
 * is allocated.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime_api.h>

#include "cuda.h"
#include "cuda_layout.h"
#include "cuda_stage.h"
#include "kernels/kernels.h"

#ifdef OT_CUDA_NO_KERNELS
/* A build without the kernels' table: every node that needs one is refused. */
static ot_cuda_fn kernel_of(const ot_node *n)
{
    (void)n;
    return NULL;
}
static bool kernel_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                            const ot_tensor *const *out, const char **why)
{
    (void)g, (void)n, (void)in, (void)out;
    *why = "no kernel";
    return false;
}
static size_t kernel_scratch(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                             const ot_tensor *const *out)
{
    (void)g, (void)n, (void)in, (void)out;
    return 0;
}
#else
#define kernel_of ot_cuda_kernel
#define kernel_supports ot_cuda_supports
#define kernel_scratch ot_cuda_scratch_bytes
#endif

#define CU(call, what)                                                                          \
    do {                                                                                        \
        cudaError_t e_ = (call);                                                                \
        if (e_ != cudaSuccess) {                                                                \
            st = ot_err_set(err, OT_ERR_BACKEND, "CUDA: %s: %s", what, cudaGetErrorString(e_)); \
            goto done;                                                                          \
        }                                                                                       \
    } while (0)

/* ------------------------------------------------------------ devices */

static uint64_t n_mallocs;

uint64_t ot_cuda_malloc_count(void) { return __atomic_load_n(&n_mallocs, __ATOMIC_RELAXED); }

#define MAX_DEVICES 64
static ot_cuda_dev *devices[MAX_DEVICES];
static pthread_mutex_t devices_lock = PTHREAD_MUTEX_INITIALIZER;

static ot_status dev_open(int index, ot_cuda_dev *d, ot_err *err)
{
    ot_status st = OT_OK;
    struct cudaDeviceProp prop;
    d->index = index;
    OT_TRY(ot_cudnn_load(&d->dnn, err));
    OT_TRY(ot_cublaslt_load(&d->lt, err));
    CU(cudaSetDevice(index), "selecting the device");
    CU(cudaGetDeviceProperties(&prop, index), "device properties");
    d->sm_count = prop.multiProcessorCount;
    snprintf(d->name, sizeof d->name, "%s", prop.name);
    d->cc_major = prop.major;
    d->cc_minor = prop.minor;
    d->total_mem = prop.totalGlobalMem;
    const ot_cudnn_api *api = d->dnn;
    const ot_cublaslt_api *lt = d->lt;
    cudnnStatus_t s = api->cudnnCreate(&d->dnn_handle);
    if (s != CUDNN_STATUS_SUCCESS)
        OT_FAIL(err, OT_ERR_BACKEND, "cuDNN: creating the handle: %s", api->cudnnGetErrorString(s));
    cublasStatus_t b = lt->cublasLtCreate(&d->lt_handle);
    if (b != CUBLAS_STATUS_SUCCESS)
        OT_FAIL(err, OT_ERR_BACKEND, "cuBLASLt: creating the handle: %s",
                lt->cublasLtGetStatusString(b));
    if (api->cudnnBackendCreateDescriptor(CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR, &d->devprop) ||
        api->cudnnBackendSetAttribute(d->devprop, CUDNN_ATTR_DEVICEPROP_HANDLE, CUDNN_TYPE_HANDLE,
                                      1, &d->dnn_handle) ||
        api->cudnnBackendFinalize(d->devprop))
        OT_FAIL(err, OT_ERR_BACKEND, "cuDNN: the device's property descriptor does not finalize");
    pthread_mutex_init(&d->lock, NULL);
done:
    return st;
}

ot_status ot_cuda_dev_get(int index, ot_cuda_dev **out, ot_err *err)
{
    ot_status st = OT_OK;
    *out = NULL;
    if (index < 0 || index >= MAX_DEVICES)
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "no CUDA device %d", index);
    OT_TRY(ot_cuda_probe(index, err));
    pthread_mutex_lock(&devices_lock);
    if (!devices[index]) {
        ot_cuda_dev *d = ot_calloc(1, sizeof *d);
        if (!d)
            st = ot_err_set(err, OT_ERR_NOMEM, "out of memory");
        else if ((st = dev_open(index, d, err)) != OT_OK)
            ot_free(d); /* handles made before the failure stay with the process */
        else
            devices[index] = d;
    }
    *out = devices[index];
    pthread_mutex_unlock(&devices_lock);
done:
    return st;
}

/* ------------------------------------------------------------ steps */

typedef enum { ST_KERNEL, ST_CONV, ST_GEMM, ST_COPY, ST_CAST, ST_TRANSPOSE } step_kind;

typedef struct cuda_step {
    step_kind kind;
    const ot_node *node;
    const char *what;
    int n_in, n_out;
    ot_loc *lin, *lout;   /* kernel: its inputs and outputs; conv: x, w, y;
                             gemm: a, b, c (or none), d; copy: from, to       */
    ot_tensor *tin, *tout; /* kernel                                         */
    const ot_tensor **pin;
    ot_tensor **pout;
    ot_cuda_fn fn;
    const ot_conv_plan *plan;
    cudnnBackendDescriptor_t vp;
    ot_gemm gemm;
    size_t bytes;          /* copy; cast: elements                           */
    ot_dtype half;         /* cast: between float and this (bf16 or fp16)    */
    bool narrow;           /* cast: float to half (else half to float)       */
    void *ptr[6];          /* conv, gemm, copy: the bound addresses          */
    ot_conv_epilogue ep;   /* a fused convolution (ep.bias, ep.add or ep.relu):
                              its operands x (dy), w, bias, z (the ReLU's
                              tensor), out in lin                          */
    bool fused;
    ot_conv_kind conv_kind; /* a fused convolution's kind                   */
    bool nhwc;             /* kernel: its rank-4 operands channels-last (the
                              context's nhwc); transpose: NCHW to NHWC, else
                              back                                          */
    int64_t tn, tc, ts;    /* transpose: N, C, spatial positions             */
    double seconds;
    uint64_t runs;
} cuda_step;

typedef struct cuda_state {
    ot_cuda_dev *dev;
    cudaStream_t stream;
    cuda_step *steps;
    int n_steps, cap_steps;
    ot_loc *vloc;          /* per value: where it lives                      */
    size_t *const_off;     /* per value: offset in the constant block, or -1 */
    size_t const_bytes;
    int64_t ones_n;        /* 1.0f values after the constants (rank-1 products) */
    size_t ones_off;
    void *const_mem;
    int ws_id;             /* the shared workspace's buffer, or -1           */
    size_t ws_bytes;
    ot_cuda_ctx ctx;
    ot_cuda_stage stage;   /* the inputs' pinned staging and copy stream     */
    ot_cuda_layout lay;    /* which values and nodes are channels-last (val
                              NULL: none)                                    */
    ot_loc *vother;        /* per value: its copy in the other layout, made
                              by a transpose step for the readers that need it */
} cuda_state;

#define ONES_ID (-1)

static cuda_state *state(const ot_exec *x) { return x->be_state; }

static size_t value_bytes(const ot_value *v)
{
    size_t n = ot_dtype_size(v->dtype);
    for (int i = 0; i < v->ndim; i++)
        n *= (size_t)v->dims[i]; /* checked static and bounded by exec.c */
    return n;
}

static size_t align256(size_t n) { return (n + 255) & ~(size_t)255; }

/* Where a value is read from; a constant gets a place in the block. */
static ot_loc value_loc(ot_exec *x, int32_t v)
{
    cuda_state *cs = state(x);
    ot_loc loc = cs->vloc[v];
    if (loc.kind == OT_LOC_CONST && cs->const_off[v] == SIZE_MAX) {
        cs->const_off[v] = cs->const_bytes;
        cs->const_bytes += align256(value_bytes(&x->g->values[v]));
    }
    return loc;
}

/* Where a node writes a value: in place over a state value, a graph
   output's buffer, or a new arena buffer. */
static ot_status value_define(ot_exec *x, int32_t v, ot_loc *out, ot_err *err)
{
    cuda_state *cs = state(x);
    ot_loc loc = { .kind = OT_LOC_NONE };
    if (x->state_out && x->state_out[v] >= 0) {
        loc.kind = OT_LOC_STATE;
        loc.id = x->state_out[v];
    } else {
        for (int i = 0; i < x->n_out && loc.kind == OT_LOC_NONE; i++)
            if (x->out_ids[i] == v) {
                loc.kind = OT_LOC_OUTPUT;
                loc.id = i;
            }
    }
    if (loc.kind == OT_LOC_NONE) {
        int id;
        ot_status st = ot_exec_add_buf(x, value_bytes(&x->g->values[v]), cs->n_steps,
                                       cs->n_steps, &id, err);
        if (st != OT_OK)
            return st;
        loc.kind = OT_LOC_BUF;
        loc.id = id;
    }
    cs->vloc[v] = loc;
    *out = loc;
    return OT_OK;
}

static void *loc_ptr(const ot_exec *x, ot_loc loc)
{
    const cuda_state *cs = state(x);
    if (loc.kind == OT_LOC_CONST)
        return (char *)cs->const_mem + (loc.id == ONES_ID ? cs->ones_off : cs->const_off[loc.id]);
    return ot_exec_loc_ptr(x, loc);
}

static ot_status step_add(cuda_state *cs, step_kind kind, const ot_node *n, const char *what,
                          int n_in, int n_out, cuda_step **out, ot_err *err);

/* Whether node n runs channels-last. */
static bool node_nhwc(const ot_exec *x, const ot_node *n)
{
    const cuda_state *cs = state(x);
    return cs->lay.node && cs->lay.node[n - x->g->nodes];
}

/* A step converting rank-4 value val's bytes at `from` into `to`: NCHW to
   NHWC (nhwc), or back. */
static ot_status layout_step(ot_exec *x, const ot_value *val, ot_loc from, ot_loc to, bool nhwc,
                             ot_err *err)
{
    cuda_step *s;
    ot_status st = step_add(state(x), ST_TRANSPOSE, NULL, nhwc ? "to NHWC" : "to NCHW", 1, 1, &s,
                            err);
    if (st != OT_OK)
        return st;
    s->lin[0] = from;
    s->lout[0] = to;
    s->nhwc = nhwc;
    s->tn = val->dims[0];
    s->tc = val->dims[1];
    s->ts = val->dims[2] * val->dims[3];
    s->bytes = ot_dtype_size(val->dtype);
    return OT_OK;
}

/* Where value v is read in the layout `nhwc`: where it lives, when it is
   stored so (or alike in both layouts), else its copy in that layout, made
   by a transpose step before the reader's and shared by the later readers. */
static ot_status value_read(ot_exec *x, int32_t v, bool nhwc, ot_loc *out, ot_err *err)
{
    ot_status st = OT_OK;
    cuda_state *cs = state(x);
    const ot_value *val = &x->g->values[v];
    ot_loc loc = value_loc(x, v);
    *out = loc;
    if (!cs->lay.val || ot_cuda_layout_free(val) || (cs->lay.val[v] != 0) == nhwc)
        return OT_OK;
    if (cs->vother[v].kind != OT_LOC_NONE) {
        *out = cs->vother[v];
        return OT_OK;
    }
    int id;
    OT_TRY(ot_exec_add_buf(x, value_bytes(val), cs->n_steps, cs->n_steps, &id, err));
    cs->vother[v] = (ot_loc){ .kind = OT_LOC_BUF, .id = id };
    OT_TRY(layout_step(x, val, loc, cs->vother[v], nhwc, err));
    *out = cs->vother[v];
done:
    return st;
}

static ot_status step_add(cuda_state *cs, step_kind kind, const ot_node *n, const char *what,
                          int n_in, int n_out, cuda_step **out, ot_err *err)
{
    if (cs->n_steps == cs->cap_steps) {
        int cap = cs->cap_steps ? cs->cap_steps * 2 : 64;
        cuda_step *ns = ot_realloc(cs->steps, sizeof *ns * (size_t)cap);
        if (!ns)
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
        cs->steps = ns;
        cs->cap_steps = cap;
    }
    cuda_step *s = &cs->steps[cs->n_steps];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->node = n;
    s->what = what;
    s->n_in = n_in;
    s->n_out = n_out;
    size_t k = (size_t)n_in + (size_t)n_out + 1;
    s->lin = ot_calloc(k, sizeof *s->lin);
    s->tin = ot_calloc(k, sizeof *s->tin);
    s->pin = ot_calloc(k, sizeof *s->pin);
    s->pout = ot_calloc(k, sizeof *s->pout);
    cs->n_steps++; /* counted now so that free releases the arrays */
    if (!s->lin || !s->tin || !s->pin || !s->pout)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    s->lout = s->lin + n_in;
    s->tout = s->tin + n_in;
    *out = s;
    return OT_OK;
}

static void tensor_of(const ot_value *v, ot_tensor *t)
{
    memset(t, 0, sizeof *t);
    t->dtype = v->dtype;
    t->ndim = v->ndim;
    memcpy(t->dims, v->dims, sizeof t->dims);
    t->bytes = value_bytes(v);
}

static void need_ones(cuda_state *cs, int64_t n)
{
    if (n > cs->ones_n)
        cs->ones_n = n;
}

static void need_ws(cuda_state *cs, size_t bytes)
{
    if (bytes > cs->ws_bytes)
        cs->ws_bytes = bytes;
}

/* --------------------------------------------------------- bf16, fp16 */

/* The half type of the executor's products: bf16, fp16, or 0 (float32). */
static ot_dtype half_type(const ot_exec *x)
{
    return x->precision == OT_PRECISION_BF16   ? OT_DTYPE_BFLOAT16
           : x->precision == OT_PRECISION_FP16 ? OT_DTYPE_FLOAT16
                                               : OT_DTYPE_UNDEFINED;
}

/* An arena buffer of n 16-bit elements, alive at the next step (the steps
   that read it extend it). */
static ot_status half_buffer(ot_exec *x, int64_t n, ot_loc *out, ot_err *err)
{
    cuda_state *cs = state(x);
    int id;
    size_t bytes = (size_t)(n > 0 ? n : 1) * 2;
    ot_status st = ot_exec_add_buf(x, bytes, cs->n_steps, cs->n_steps, &id, err);
    if (st == OT_OK)
        *out = (ot_loc){ .kind = OT_LOC_BUF, .id = id };
    return st;
}

/* A step converting n elements between float32 at `from` and `half` at
   `to` (narrow: float to half). */
static ot_status cast_step(ot_exec *x, const ot_node *n, ot_loc from, ot_loc to, int64_t count,
                           ot_dtype half, bool narrow, ot_err *err)
{
    cuda_step *s;
    ot_status st = step_add(state(x), ST_CAST, n, narrow ? "cast to half" : "cast to float", 1, 1,
                            &s, err);
    if (st != OT_OK)
        return st;
    s->lin[0] = from;
    s->lout[0] = to;
    s->bytes = (size_t)count;
    s->half = half;
    s->narrow = narrow;
    return OT_OK;
}

/* A half copy of the float32 operand at `from` (count elements), converted
   by a step before the reader's; *out its location. */
static ot_status half_copy(ot_exec *x, const ot_node *n, ot_loc from, int64_t count,
                           ot_dtype half, ot_loc *out, ot_err *err)
{
    ot_status st = half_buffer(x, count, out, err);
    if (st == OT_OK)
        st = cast_step(x, n, from, *out, count, half, true, err);
    return st;
}

/* A product step: D = alpha op(A) op(B) + beta C (c NONE: no C, or C is D). */
static ot_status gemm_step(ot_exec *x, const ot_node *n, const char *what, const ot_gemm_geom *q,
                           ot_loc a, ot_loc b, ot_loc c, ot_loc d, ot_err *err)
{
    cuda_state *cs = state(x);
    cuda_step *s;
    ot_status st = step_add(cs, ST_GEMM, n, what, 3, 1, &s, err);
    if (st != OT_OK)
        return st;
    s->lin[0] = a;
    s->lin[1] = b;
    s->lin[2] = c;
    s->lout[0] = d;
    ot_gemm_geom gq = *q;
    gq.tf32 = x->precision == OT_PRECISION_TF32;
    st = ot_gemm_build(cs->dev, &gq, &s->gemm, err);
    if (st != OT_OK) {
        char label[400];
        if (n)
            ot_err_prefix(err, "%s", ot_node_label(x->g, n, label, sizeof label));
        return st;
    }
    need_ws(cs, s->gemm.ws);
    return OT_OK;
}

static ot_loc ones_loc(void) { return (ot_loc){ .kind = OT_LOC_CONST, .id = ONES_ID }; }

/* Conv, ConvGradData, ConvGradFilter: the convolution on cuDNN, then the
   bias (Conv) or its gradient (ConvGradFilter's dB) on cuBLASLt. */
static ot_status conv_node(ot_exec *x, const ot_node *n, ot_err *err)
{
    ot_status st = OT_OK;
    cuda_state *cs = state(x);
    const ot_graph *g = x->g;
    char label[400];
    ot_tensor t[3];
    ot_conv_geom q;
    ot_conv_kind kind = ot_node_is(n, OT_OP_CONV)              ? OT_CONV_FWD
                        : ot_node_is(n, OT_OP_CONV_GRAD_DATA) ? OT_CONV_DGRAD
                                                              : OT_CONV_WGRAD;
    ot_dtype half = half_type(x);
    /* x, w, y in cuDNN's roles: values and locations */
    int32_t vx, vw, vy, vbias = -1, vdb = -1;
    if (kind == OT_CONV_FWD) {
        vx = n->in[0], vw = n->in[1], vy = n->out[0];
        vbias = n->n_in > 2 ? n->in[2] : -1;
    } else if (kind == OT_CONV_DGRAD) {
        vx = n->out[0], vw = n->in[1], vy = n->in[0];
    } else {
        vx = n->in[1], vw = n->n_out > 0 ? n->out[0] : -1, vy = n->in[0];
        vdb = n->n_out > 1 ? n->out[1] : -1;
    }
    if (vx < 0 || vy < 0)
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s: a required input or output is missing",
                          ot_node_label(g, n, label, sizeof label));
    tensor_of(&g->values[vx], &t[0]);
    tensor_of(&g->values[vy], &t[2]);
    if (vw >= 0) {
        tensor_of(&g->values[vw], &t[1]);
    } else {
        /* ConvGradFilter without dW: W's shape from kernel_shape */
        size_t nk = 0;
        const int64_t *ks = ot_node_attr_ints(n, "kernel_shape", &nk);
        if (!ks || nk + 2 != (size_t)t[0].ndim)
            return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s: kernel_shape is required",
                              ot_node_label(g, n, label, sizeof label));
        t[1] = t[0];
        t[1].dims[0] = t[2].dims[1];
        int64_t grp = ot_node_attr_int(n, "group", 1);
        t[1].dims[1] = t[0].dims[1] / (grp > 0 ? grp : 1);
        for (size_t i = 0; i < nk; i++)
            t[1].dims[2 + i] = ks[i];
    }
    OT_TRY(ot_conv_geom_of(g, n, &t[0], &t[1], &t[2], kind, &q, err));
    q.tf32 = x->precision == OT_PRECISION_TF32;
    q.half = half;
    /* channels-last: x, y and the filter (KRSC) in NHWC order; when no
       engine takes that, the convolution runs NCHW between conversions (its
       output converted into the NHWC value the pass planned) */
    bool nhwc = node_nhwc(x, n), back_to_nhwc = false;
    q.nhwc = nhwc;
    if (nhwc && (kind != OT_CONV_WGRAD || vw >= 0) && ot_tensor_numel(&t[0]) &&
        ot_tensor_numel(&t[1]) && ot_tensor_numel(&t[2])) {
        const ot_conv_plan *probe;
        size_t pws = 0;
        ot_err e2;
        ot_err_init(&e2);
        if (ot_conv_plan_get(cs->dev, &q, &probe, &pws, &e2) != OT_OK) {
            ot_log(OT_LOG_DEBUG, "cuda: %s: no NHWC plan, runs NCHW between conversions (%s)",
                   ot_node_label(g, n, label, sizeof label), e2.msg);
            nhwc = q.nhwc = false;
            back_to_nhwc = true;
        }
    }
    /* reads first, then what the step writes */
    ot_loc lx = { 0 }, lw = { 0 }, ly = { 0 };
    if (kind != OT_CONV_DGRAD)
        OT_TRY(value_read(x, vx, nhwc, &lx, err));
    if (kind != OT_CONV_WGRAD)
        OT_TRY(value_read(x, vw, nhwc, &lw, err));
    if (kind != OT_CONV_FWD)
        OT_TRY(value_read(x, vy, nhwc, &ly, err));
    ot_loc lb = vbias >= 0 ? value_loc(x, vbias) : (ot_loc){ 0 };
    int64_t N = q.y[0], M = q.y[1], osp = 1;
    for (int i = 2; i < q.nd; i++)
        osp *= q.y[i];
    bool empty = ot_tensor_numel(&t[0]) == 0 || ot_tensor_numel(&t[2]) == 0 ||
                 ot_tensor_numel(&t[1]) == 0;
    if (kind == OT_CONV_FWD)
        OT_TRY(value_define(x, vy, &ly, err));
    else if (kind == OT_CONV_DGRAD)
        OT_TRY(value_define(x, vx, &lx, err));
    else if (vw >= 0)
        OT_TRY(value_define(x, vw, &lw, err));
    /* the NCHW fallback writes an NCHW buffer, converted at the end */
    int32_t vout = kind == OT_CONV_FWD ? vy : kind == OT_CONV_DGRAD ? vx : vw;
    ot_loc *lout = kind == OT_CONV_FWD ? &ly : kind == OT_CONV_DGRAD ? &lx : &lw, final = *lout;
    back_to_nhwc = back_to_nhwc && vout >= 0 && !ot_cuda_layout_free(&g->values[vout]);
    if (back_to_nhwc) {
        int id;
        OT_TRY(ot_exec_add_buf(x, value_bytes(&g->values[vout]), cs->n_steps, cs->n_steps + 1,
                               &id, err));
        *lout = (ot_loc){ .kind = OT_LOC_BUF, .id = id };
    }
    if (!empty && (kind != OT_CONV_WGRAD || vw >= 0)) {
        size_t ws = 0;
        const ot_conv_plan *plan;
        st = ot_conv_plan_get(cs->dev, &q, &plan, &ws, err);
        if (st != OT_OK) {
            ot_err_prefix(err, "%s", ot_node_label(g, n, label, sizeof label));
            return st;
        }
        /* --precision bf16/fp16: half copies of the two operands, the result
           in a half buffer converted back to the float32 value */
        ot_loc io[3] = { lx, lw, ly };
        int out_role = kind == OT_CONV_FWD ? 2 : kind == OT_CONV_DGRAD ? 0 : 1;
        int64_t count[3] = { ot_tensor_numel(&t[0]), ot_tensor_numel(&t[1]),
                             ot_tensor_numel(&t[2]) };
        for (int r = 0; half && r < 3; r++)
            if (r != out_role)
                OT_TRY(half_copy(x, n, io[r], count[r], half, &io[r], err));
        ot_loc out_half = { 0 };
        if (half)
            OT_TRY(half_buffer(x, count[out_role], &out_half, err));
        if (half)
            io[out_role] = out_half;
        cuda_step *s;
        OT_TRY(step_add(cs, ST_CONV, n, n->op_type, 3, 0, &s, err));
        s->lin[0] = io[0];
        s->lin[1] = io[1];
        s->lin[2] = io[2];
        s->plan = plan;
        need_ws(cs, ws);
        ot_loc dest = kind == OT_CONV_FWD ? ly : kind == OT_CONV_DGRAD ? lx : lw;
        if (half)
            OT_TRY(cast_step(x, n, out_half, dest, count[out_role], half, false, err));
    }
    if (vbias >= 0 && !empty && nhwc) {
        /* y (N osp x M) += ones (N osp x 1) * b (1 x M) */
        ot_gemm_geom gq = { .m = N * osp, .n = M, .k = 1, .batch = 1, .alpha = 1.0f,
                            .beta = 1.0f };
        need_ones(cs, N * osp);
        OT_TRY(gemm_step(x, n, "Conv bias", &gq, ones_loc(), lb, ly, ly, err));
    } else if (vbias >= 0 && !empty) {
        /* y[n] += b (M x 1) * ones (1 x osp), for every n */
        ot_gemm_geom gq = { .m = M, .n = osp, .k = 1, .batch = N, .sa = 0, .sb = 0,
                            .alpha = 1.0f, .beta = 1.0f };
        need_ones(cs, osp);
        OT_TRY(gemm_step(x, n, "Conv bias", &gq, lb, ones_loc(), ly, ly, err));
    }
    if (back_to_nhwc)
        OT_TRY(layout_step(x, &g->values[vout], *lout, final, true, err));
    if (vdb >= 0) {
        ot_loc ldb;
        OT_TRY(value_define(x, vdb, &ldb, err));
        if (N * M == 0)
            goto done; /* mem_alloc zeroed it, and nothing else writes it */
        if (nhwc) {
            /* dB = ones (1 x N osp) * dY (N osp x M) */
            ot_gemm_geom g1 = { .m = 1, .n = M, .k = N * osp, .batch = 1, .alpha = 1.0f };
            need_ones(cs, N * osp);
            OT_TRY(gemm_step(x, n, "ConvGradFilter dB", &g1, ones_loc(), ly, (ot_loc){ 0 }, ldb,
                             err));
            goto done;
        }
        /* dB = ones (1 x N) * (dY summed over space: N x M) */
        ot_loc sum = ly;
        if (osp != 1) {
            int id;
            OT_TRY(ot_exec_add_buf(x, (size_t)(N * M) * sizeof(float), cs->n_steps, cs->n_steps + 1,
                                   &id, err));
            sum = (ot_loc){ .kind = OT_LOC_BUF, .id = id };
            ot_gemm_geom g1 = { .m = N * M, .n = 1, .k = osp, .batch = 1, .alpha = 1.0f };
            need_ones(cs, osp);
            OT_TRY(gemm_step(x, n, "ConvGradFilter dB", &g1, ly, ones_loc(), (ot_loc){ 0 }, sum,
                             err));
        }
        ot_gemm_geom g2 = { .m = 1, .n = M, .k = N, .batch = 1, .alpha = 1.0f };
        need_ones(cs, N);
        OT_TRY(gemm_step(x, n, "ConvGradFilter dB", &g2, ones_loc(), sum, (ot_loc){ 0 }, ldb, err));
    }
done:
    return st;
}

/* A fused convolution's step: its operands (x or dy, w, bias, z or the
   ReLU's tensor; NONE where absent) read at the given locations (already in
   the step's layout), the result written to value vout. Under bf16/fp16 the
   operands are converted into half copies first, and the half result back
   into vout, as for a plain convolution (conv_node). */
static ot_status fused_step(ot_exec *x, const ot_node *n, const char *what, ot_conv_kind kind,
                            const ot_conv_epilogue *ep, const ot_conv_plan *plan, size_t ws,
                            const ot_loc *in, const int64_t *count, int32_t vout,
                            int64_t out_count, ot_err *err)
{
    ot_status st = OT_OK;
    cuda_state *cs = state(x);
    ot_dtype half = half_type(x);
    ot_loc io[4], dest, lo;
    memcpy(io, in, sizeof io);
    for (int r = 0; half && r < 4; r++)
        if (io[r].kind != OT_LOC_NONE)
            OT_TRY(half_copy(x, n, io[r], count[r], half, &io[r], err));
    OT_TRY(value_define(x, vout, &dest, err));
    lo = dest;
    if (half)
        OT_TRY(half_buffer(x, out_count, &lo, err));
    cuda_step *s;
    OT_TRY(step_add(cs, ST_CONV, n, what, 4, 1, &s, err));
    memcpy(s->lin, io, sizeof io);
    s->lout[0] = lo;
    s->plan = plan;
    s->ep = *ep;
    s->fused = true;
    s->conv_kind = kind;
    need_ws(cs, ws);
    if (half)
        OT_TRY(cast_step(x, n, lo, dest, out_count, half, false, err));
done:
    return st;
}

/* Whether a fused group's result (value v) is stored in the head's layout
   (or alike in both): else the nodes stay apart. */
static bool out_in_layout(ot_exec *x, int32_t v, bool nhwc)
{
    const cuda_state *cs = state(x);
    return !cs->lay.val || ot_cuda_layout_free(&x->g->values[v]) || (cs->lay.val[v] != 0) == nhwc;
}

/* A Conv and what ot_fuse_find lets it take along (its Relu, or an Add of
   an earlier value and optionally a Relu) as one cuDNN graph, when an
   engine makes a plan for it (2-D float convolutions, in any precision, in
   the convolution's layout): *fused true and the followers marked in
   `taken`; else *fused false and nothing is changed (the nodes then run one
   by one). ONNXTRAIN_CUDNN_FUSION=0 turns it off. */
static ot_status fused_conv_node(ot_exec *x, int32_t head, uint8_t *taken, bool *fused,
                                 ot_err *err)
{
    cuda_state *cs = state(x);
    const ot_graph *g = x->g;
    const ot_node *n = &g->nodes[head];
    ot_fusion f;
    *fused = false;
    if (!(x->rewrites & OT_REWRITE_FUSE) || !ot_node_is(n, OT_OP_CONV) || n->n_in < 2 ||
        n->out[0] < 0)
        return OT_OK;
    ot_fuse_find(&x->fuse, head, taken, &f);
    bool relu = f.act >= 0 && ot_node_is(&g->nodes[f.act], OT_OP_RELU);
    if (f.kind == OT_FUSE_NONE || (f.kind == OT_FUSE_ACT && !relu) ||
        (f.kind == OT_FUSE_ADD && f.act >= 0 && !relu))
        return OT_OK;
    ot_tensor t[3];
    ot_conv_geom q;
    ot_err e2;
    ot_err_init(&e2);
    tensor_of(&g->values[n->in[0]], &t[0]);
    tensor_of(&g->values[n->in[1]], &t[1]);
    tensor_of(&g->values[n->out[0]], &t[2]);
    if (t[0].ndim != 4 || ot_tensor_numel(&t[0]) == 0 || ot_tensor_numel(&t[1]) == 0 ||
        ot_tensor_numel(&t[2]) == 0 ||
        ot_conv_geom_of(g, n, &t[0], &t[1], &t[2], OT_CONV_FWD, &q, &e2) != OT_OK)
        return OT_OK;
    q.tf32 = x->precision == OT_PRECISION_TF32;
    q.half = half_type(x);
    /* channels-last: every operand in the convolution's layout, the output
       included (a pinned output keeps the nodes apart) */
    bool nhwc = node_nhwc(x, n);
    q.nhwc = nhwc;
    if (!out_in_layout(x, f.out, nhwc))
        return OT_OK;
    int32_t vbias = n->n_in > 2 ? n->in[2] : -1;
    ot_conv_epilogue ep = { .bias = vbias >= 0, .add = f.kind == OT_FUSE_ADD, .relu = relu };
    const ot_conv_plan *plan;
    size_t ws = 0;
    char label[400];
    if (ot_conv_fused_plan_get(cs->dev, &q, &ep, &plan, &ws, &e2) != OT_OK) {
        ot_log(OT_LOG_DEBUG, "cuda: %s: no cuDNN engine fuses its epilogue, unfused (%s)",
               ot_node_label(g, n, label, sizeof label), e2.msg);
        return OT_OK;
    }
    static const char *const kinds[2][2][2] = {
        { { "Conv", "Conv+Relu (cuDNN fused)" },
          { "Conv+Add (cuDNN fused)", "Conv+Add+Relu (cuDNN fused)" } },
        { { "Conv+Bias", "Conv+Bias+Relu (cuDNN fused)" },
          { "Conv+Bias+Add (cuDNN fused)", "Conv+Bias+Add+Relu (cuDNN fused)" } },
    };
    ot_loc in[4] = { { 0 }, { 0 }, { 0 }, { 0 } };
    ot_status st = value_read(x, n->in[0], nhwc, &in[0], err);
    if (st == OT_OK)
        st = value_read(x, n->in[1], nhwc, &in[1], err);
    if (ep.bias)
        in[2] = value_loc(x, vbias);
    if (st == OT_OK && ep.add)
        st = value_read(x, f.add_other, nhwc, &in[3], err);
    if (st != OT_OK)
        return st;
    const int64_t count[4] = { ot_tensor_numel(&t[0]), ot_tensor_numel(&t[1]), t[2].dims[1],
                               ot_tensor_numel(&t[2]) };
    const char *what = kinds[ep.bias][ep.add][ep.relu];
    st = fused_step(x, n, what, OT_CONV_FWD, &ep, plan, ws, in, count, f.out,
                    ot_tensor_numel(&t[2]), err);
    if (st != OT_OK)
        return st;
    if (f.act >= 0)
        taken[f.act] = 1;
    if (ep.add)
        taken[f.add] = 1;
    *fused = true;
    ot_log(OT_LOG_DEBUG, "cuda: %s: %s", ot_node_label(g, n, label, sizeof label), what);
    return OT_OK;
}

/* A ConvGradData and the ReluGrad that ot_fuse_find lets it take along
   (ReLU's backward on its dX, by the sign of the ReLU's output) as one
   cuDNN graph, when an engine makes a plan for it (2-D float convolutions,
   in any precision): both nodes in one layout (NHWC or NCHW; where the
   layout pass put them apart, or the result is stored in the other layout,
   they stay apart), the ReLU's tensor read in that layout. *fused true and
   the ReluGrad marked in `taken`; else *fused false and nothing is
   changed. ONNXTRAIN_CUDNN_FUSION=0 turns it off. */
static ot_status fused_dgrad_node(ot_exec *x, int32_t head, uint8_t *taken, bool *fused,
                                  ot_err *err)
{
    cuda_state *cs = state(x);
    const ot_graph *g = x->g;
    const ot_node *n = &g->nodes[head];
    ot_fusion f;
    *fused = false;
    if (!(x->rewrites & OT_REWRITE_FUSE) || !ot_node_is(n, OT_OP_CONV_GRAD_DATA) ||
        n->n_in < 2 || n->in[0] < 0 || n->in[1] < 0 || n->n_out < 1 || n->out[0] < 0)
        return OT_OK;
    ot_fuse_find(&x->fuse, head, taken, &f);
    if (f.kind != OT_FUSE_ACT || !ot_node_is(&g->nodes[f.act], OT_OP_RELU_GRAD))
        return OT_OK;
    const ot_node *rg = &g->nodes[f.act];
    bool nhwc = node_nhwc(x, n);
    char label[400];
    if (node_nhwc(x, rg) != nhwc || !out_in_layout(x, f.out, nhwc)) {
        ot_log(OT_LOG_DEBUG, "cuda: %s: its ReluGrad runs in the other layout, unfused",
               ot_node_label(g, n, label, sizeof label));
        return OT_OK;
    }
    ot_tensor t[3]; /* dx, w, dy: x, w, y in cuDNN's roles */
    ot_conv_geom q;
    ot_err e2;
    ot_err_init(&e2);
    tensor_of(&g->values[n->out[0]], &t[0]);
    tensor_of(&g->values[n->in[1]], &t[1]);
    tensor_of(&g->values[n->in[0]], &t[2]);
    if (t[0].ndim != 4 || ot_tensor_numel(&t[0]) == 0 || ot_tensor_numel(&t[1]) == 0 ||
        ot_tensor_numel(&t[2]) == 0 ||
        ot_conv_geom_of(g, n, &t[0], &t[1], &t[2], OT_CONV_DGRAD, &q, &e2) != OT_OK)
        return OT_OK;
    q.tf32 = x->precision == OT_PRECISION_TF32;
    q.half = half_type(x);
    q.nhwc = nhwc;
    ot_conv_epilogue ep = { .relu = true };
    const ot_conv_plan *plan;
    size_t ws = 0;
    if (ot_conv_fused_plan_get(cs->dev, &q, &ep, &plan, &ws, &e2) != OT_OK) {
        ot_log(OT_LOG_DEBUG, "cuda: %s: no cuDNN engine fuses ReLU's backward, unfused (%s)",
               ot_node_label(g, n, label, sizeof label), e2.msg);
        return OT_OK;
    }
    ot_loc in[4] = { { 0 }, { 0 }, { 0 }, { 0 } };
    ot_status st = value_read(x, n->in[0], nhwc, &in[0], err);
    if (st == OT_OK)
        st = value_read(x, n->in[1], nhwc, &in[1], err);
    if (st == OT_OK)
        st = value_read(x, rg->in[1], nhwc, &in[3], err);
    if (st != OT_OK)
        return st;
    const int64_t count[4] = { ot_tensor_numel(&t[2]), ot_tensor_numel(&t[1]), 0,
                               ot_tensor_numel(&t[0]) };
    const char *what = "ConvGradData+ReluGrad (cuDNN fused)";
    st = fused_step(x, n, what, OT_CONV_DGRAD, &ep, plan, ws, in, count, f.out,
                    ot_tensor_numel(&t[0]), err);
    if (st != OT_OK)
        return st;
    taken[f.act] = 1;
    *fused = true;
    ot_log(OT_LOG_DEBUG, "cuda: %s: %s (%s)", ot_node_label(g, n, label, sizeof label), what,
           nhwc ? "NHWC" : "NCHW");
    return OT_OK;
}

/* Gemm (2-D, transA/transB, alpha, beta, C of [M, N], [N], [1, N] or
   [M, 1]) and MatMul (batched, B or A shared over the batch). */
static ot_status gemm_node(ot_exec *x, const ot_node *n, ot_err *err)
{
    ot_status st = OT_OK;
    cuda_state *cs = state(x);
    const ot_graph *g = x->g;
    char label[400];
    const ot_value *va = &g->values[n->in[0]], *vb = &g->values[n->in[1]];
    const ot_value *vd = &g->values[n->out[0]];
    bool is_gemm = ot_node_is(n, OT_OP_GEMM);
    if (va->dtype != OT_DTYPE_FLOAT || vb->dtype != OT_DTYPE_FLOAT || vd->dtype != OT_DTYPE_FLOAT)
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s: only float products run on CUDA",
                          ot_node_label(g, n, label, sizeof label));
    ot_gemm_geom q = { .batch = 1, .alpha = 1.0f };
    const ot_value *vc = NULL;
    if (is_gemm) {
        q.ta = ot_node_attr_int(n, "transA", 0) != 0;
        q.tb = ot_node_attr_int(n, "transB", 0) != 0;
        q.alpha = ot_node_attr_float(n, "alpha", 1.0f);
        if (va->ndim != 2 || vb->ndim != 2)
            return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s: Gemm needs 2-D A and B",
                              ot_node_label(g, n, label, sizeof label));
        q.m = q.ta ? va->dims[1] : va->dims[0];
        q.k = q.ta ? va->dims[0] : va->dims[1];
        q.n = q.tb ? vb->dims[0] : vb->dims[1];
        if (n->n_in > 2 && n->in[2] >= 0)
            vc = &g->values[n->in[2]];
    } else {
        /* [..., m, k] x [..., k, n]; a 1-D A is [1, k], a 1-D B is [k, 1] */
        int ra = va->ndim, rb = vb->ndim;
        if (ra < 1 || rb < 1)
            return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s: MatMul of a scalar",
                              ot_node_label(g, n, label, sizeof label));
        q.m = ra >= 2 ? va->dims[ra - 2] : 1;
        q.k = va->dims[ra - 1];
        q.n = rb >= 2 ? vb->dims[rb - 1] : 1;
        int64_t ba = 1, bb = 1;
        for (int i = 0; i < ra - 2; i++)
            ba *= va->dims[i];
        for (int i = 0; i < rb - 2; i++)
            bb *= vb->dims[i];
        bool same = ra == rb;
        for (int i = 0; same && i < ra - 2; i++)
            same = va->dims[i] == vb->dims[i];
        if (bb == 1) {
            q.m *= ba; /* B shared: A's batch folds into its rows */
        } else if (ba == 1) {
            q.batch = bb;
            q.sa = 0;
            q.sb = q.k * q.n;
        } else if (same) {
            q.batch = ba;
            q.sa = q.m * q.k;
            q.sb = q.k * q.n;
        } else {
            return ot_err_set(err, OT_ERR_UNSUPPORTED,
                              "%s: MatMul batch dims that broadcast partly do not run on CUDA",
                              ot_node_label(g, n, label, sizeof label));
        }
    }
    ot_loc la, lb, lc = { 0 };
    OT_TRY(value_read(x, n->in[0], false, &la, err));
    OT_TRY(value_read(x, n->in[1], false, &lb, err));
    if (vc)
        OT_TRY(value_read(x, n->in[2], false, &lc, err));
    ot_loc ld;
    OT_TRY(value_define(x, n->out[0], &ld, err));
    if (q.m * q.n * q.batch == 0)
        goto done;
    if (q.k == 0)
        OT_FAIL(err, OT_ERR_UNSUPPORTED, "%s: an empty inner dimension does not run on CUDA",
                ot_node_label(g, n, label, sizeof label));
    float beta = is_gemm ? ot_node_attr_float(n, "beta", 1.0f) : 0.0f;
    if (vc && beta != 0.0f) {
        int64_t cn = 1;
        for (int i = 0; i < vc->ndim; i++)
            cn *= vc->dims[i];
        bool row = vc->ndim >= 1 && vc->dims[vc->ndim - 1] == q.n && cn == q.n;
        bool col = vc->ndim == 2 && vc->dims[0] == q.m && vc->dims[1] == 1;
        if (vc->dtype != OT_DTYPE_FLOAT)
            OT_FAIL(err, OT_ERR_UNSUPPORTED, "%s: only a float C runs on CUDA",
                    ot_node_label(g, n, label, sizeof label));
        if (cn == q.m * q.n) {
            q.beta = beta; /* C is D's shape */
        } else if (row || col) {
            /* D = beta * ones (M x 1) C (1 x N), or beta * C (M x 1) ones (1 x N) */
            ot_gemm_geom b = { .m = q.m, .n = q.n, .k = 1, .batch = 1, .alpha = beta };
            need_ones(cs, row ? q.m : q.n);
            OT_TRY(gemm_step(x, n, "Gemm C", &b, row ? ones_loc() : lc, row ? lc : ones_loc(),
                             (ot_loc){ 0 }, ld, err));
            q.beta = 1.0f;
            lc = ld;
        } else {
            OT_FAIL(err, OT_ERR_UNSUPPORTED,
                    "%s: C must be [M, N], [N], [1, N] or [M, 1] on CUDA",
                    ot_node_label(g, n, label, sizeof label));
        }
    } else {
        lc = (ot_loc){ 0 };
    }
    /* --precision bf16/fp16: A and B as half copies, C and D float32 */
    q.half = half_type(x);
    if (q.half) {
        OT_TRY(half_copy(x, n, la, value_bytes(va) / sizeof(float), q.half, &la, err));
        OT_TRY(half_copy(x, n, lb, value_bytes(vb) / sizeof(float), q.half, &lb, err));
    }
    OT_TRY(gemm_step(x, n, n->op_type, &q, la, lb, lc, ld, err));
done:
    return st;
}

/* Any other node: the backend's own kernel. */
static ot_status kernel_node(ot_exec *x, const ot_node *n, ot_err *err)
{
    ot_status st = OT_OK;
    cuda_state *cs = state(x);
    const ot_graph *g = x->g;
    char label[400];
    ot_cuda_fn fn = kernel_of(n);
    ot_loc *rd = NULL;
    if (!fn)
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s: no CUDA kernel for op '%s'",
                          ot_node_label(g, n, label, sizeof label), n->op_type);
    /* channels-last: the operands in the node's layout read so (converted
       before the step when stored otherwise), the others as they are */
    bool nhwc = node_nhwc(x, n);
    ot_nhwc_kind nk = nhwc ? ot_cuda_nhwc_kind(g, n) : OT_NHWC_NO;
    if (!(rd = ot_calloc((size_t)n->n_in + 1, sizeof *rd)))
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    for (int k = 0; k < n->n_in; k++)
        if (n->in[k] >= 0)
            OT_TRY(value_read(x, n->in[k], nhwc && ot_cuda_nhwc_follows(g, n, nk, n->in[k]),
                              &rd[k], err));
    cuda_step *s;
    OT_TRY(step_add(cs, ST_KERNEL, n, n->op_type, n->n_in, n->n_out, &s, err));
    s->fn = fn;
    s->nhwc = nk == OT_NHWC_KERNEL;
    for (int k = 0; k < n->n_in; k++)
        if (n->in[k] >= 0) {
            tensor_of(&g->values[n->in[k]], &s->tin[k]);
            s->pin[k] = &s->tin[k];
        }
    for (int k = 0; k < n->n_out; k++)
        if (n->out[k] >= 0) {
            tensor_of(&g->values[n->out[k]], &s->tout[k]);
            s->pout[k] = &s->tout[k];
        }
    /* an element-wise node sees its operands as [N, H, W, C] */
    for (int k = 0; nk == OT_NHWC_FLAT && k < n->n_in + n->n_out; k++) {
        ot_tensor *t = &s->tin[k];
        int64_t d[OT_MAX_DIMS];
        if ((k < n->n_in ? s->pin[k] : s->pout[k - n->n_in]) && ot_tensor_numel(t) > 1) {
            t->ndim = ot_cuda_nhwc_view(t->ndim, t->dims, d);
            memcpy(t->dims, d, sizeof *d * (size_t)t->ndim);
        }
    }
    const char *why = "unsupported";
    if (!kernel_supports(g, n, s->pin, (const ot_tensor *const *)s->pout, &why))
        OT_FAIL(err, OT_ERR_UNSUPPORTED, "%s: not supported by the CUDA backend: %s",
                ot_node_label(g, n, label, sizeof label), why);
    need_ws(cs, kernel_scratch(g, n, s->pin, (const ot_tensor *const *)s->pout));
    int self = cs->n_steps - 1;
    for (int k = 0; k < n->n_in; k++)
        if (n->in[k] >= 0)
            cs->steps[self].lin[k] = rd[k];
    for (int k = 0; k < n->n_out; k++)
        if (n->out[k] >= 0) {
            cs->n_steps = self; /* buffers are declared at this step */
            st = value_define(x, n->out[k], &cs->steps[self].lout[k], err);
            cs->n_steps = self + 1;
            if (st != OT_OK)
                goto done;
        }
done:
    ot_free(rd);
    return st;
}

static ot_status cuda_open(ot_exec *x, ot_err *err)
{
    ot_status st = OT_OK;
    cuda_state *cs = ot_calloc(1, sizeof *cs);
    if (!cs)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    x->be_state = cs;
    cs->ws_id = -1;
    OT_TRY(ot_cuda_dev_get(x->opts.device.index, &cs->dev, err));
    ot_exec_plan_opts po = ot_exec_get_plan_opts();
    ot_cuda_plans_configure(cs->dev, &po);
    CU(cudaSetDevice(cs->dev->index), "selecting the device");
    CU(cudaStreamCreateWithFlags(&cs->stream, cudaStreamNonBlocking), "creating a stream");
    cs->ctx.stream = cs->stream;
    cs->ctx.sm_count = cs->dev->sm_count;
done:
    return st;
}

/* The layout pass (cuda_layout.h) over the executor's graph: the inputs,
   the outputs, the state, the constants and the values written in place
   over state stay NCHW. ONNXTRAIN_CUDA_NHWC=0: no pass, everything NCHW. */
static ot_status plan_layout(ot_exec *x, ot_err *err)
{
    ot_status st = OT_OK;
    cuda_state *cs = state(x);
    const ot_graph *g = x->g;
    const char *e = getenv("ONNXTRAIN_CUDA_NHWC");
    uint8_t *pinned = NULL, *skip = NULL;
    if (e && !strcmp(e, "0"))
        return OT_OK;
    pinned = ot_calloc((size_t)g->n_values + 1, 1);
    skip = ot_calloc((size_t)g->n_nodes + 1, 1);
    cs->vother = ot_calloc((size_t)g->n_values + 1, sizeof *cs->vother);
    if (!pinned || !skip || !cs->vother)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    for (int32_t v = 0; v < g->n_values; v++)
        pinned[v] = (g->values[v].flags & (OT_VAL_STATE | OT_VAL_CONST)) != 0 ||
                    (x->state_out && x->state_out[v] >= 0);
    for (int i = 0; i < x->n_in; i++)
        pinned[x->in_ids[i]] = 1;
    for (int i = 0; i < x->n_out; i++)
        pinned[x->out_ids[i]] = 1;
    for (int32_t i = 0; i < g->n_nodes; i++)
        skip[i] = (g->nodes[i].flags & OT_NODE_FOLDED) != 0;
    OT_TRY(ot_cuda_layout_plan(g, pinned, skip, &cs->lay, err));
    ot_log(OT_LOG_DEBUG, "cuda: %d of %d nodes run channels-last (NHWC); %d values converted to "
           "NHWC, %d to NCHW", cs->lay.n_nhwc_nodes, g->n_nodes, cs->lay.n_to_nhwc,
           cs->lay.n_to_nchw);
    if (!cs->lay.n_nhwc_nodes)
        ot_cuda_layout_release(&cs->lay);
done:
    ot_free(pinned);
    ot_free(skip);
    return st;
}

static ot_status cuda_build(ot_exec *x, ot_err *err)
{
    ot_status st = OT_OK;
    uint8_t *taken = NULL; /* nodes computed inside a fused step */
    cuda_state *cs = state(x);
    const ot_graph *g = x->g;
    cs->vloc = ot_calloc((size_t)g->n_values + 1, sizeof *cs->vloc);
    cs->const_off = ot_malloc(sizeof *cs->const_off * ((size_t)g->n_values + 1));
    if (!cs->vloc || !cs->const_off)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    for (int32_t v = 0; v < g->n_values; v++) {
        const ot_value *val = &g->values[v];
        cs->const_off[v] = SIZE_MAX;
        if (val->flags & OT_VAL_STATE)
            cs->vloc[v] = (ot_loc){ .kind = OT_LOC_STATE, .id = v };
        else if (val->flags & OT_VAL_CONST)
            cs->vloc[v] = (ot_loc){ .kind = OT_LOC_CONST, .id = v };
    }
    for (int i = 0; i < x->n_in; i++)
        if (cs->vloc[x->in_ids[i]].kind == OT_LOC_NONE)
            cs->vloc[x->in_ids[i]] = (ot_loc){ .kind = OT_LOC_INPUT, .id = i };

    if (!(taken = ot_calloc((size_t)g->n_nodes + 1, 1)))
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    OT_TRY(plan_layout(x, err));
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        bool fused = false;
        if ((n->flags & OT_NODE_FOLDED) || taken[i])
            continue;
        OT_TRY(fused_conv_node(x, i, taken, &fused, err));
        if (!fused)
            OT_TRY(fused_dgrad_node(x, i, taken, &fused, err));
        if (fused)
            continue;
        if (ot_node_is(n, OT_OP_CONV) || ot_node_is(n, OT_OP_CONV_GRAD_DATA) ||
            ot_node_is(n, OT_OP_CONV_GRAD_FILTER))
            OT_TRY(conv_node(x, n, err));
        else if (ot_node_is(n, OT_OP_GEMM) || ot_node_is(n, OT_OP_MATMUL))
            OT_TRY(gemm_node(x, n, err));
        else
            OT_TRY(kernel_node(x, n, err));
    }
    /* graph outputs not written in place: copied after the steps */
    for (int i = 0; i < x->n_out; i++) {
        int32_t v = x->out_ids[i];
        ot_loc from;
        OT_TRY(value_read(x, v, false, &from, err));
        if ((from.kind == OT_LOC_OUTPUT && from.id == i) || !x->outs[i].bytes)
            continue;
        cuda_step *s;
        OT_TRY(step_add(cs, ST_COPY, NULL, "copy", 1, 1, &s, err));
        s->lin[0] = from;
        s->lout[0] = (ot_loc){ .kind = OT_LOC_OUTPUT, .id = i };
        s->bytes = x->outs[i].bytes;
    }
    ot_cuda_plans_flush(cs->dev);
    x->n_steps = cs->n_steps;
    for (int s = 0; s < cs->n_steps; s++) {
        const cuda_step *sp = &cs->steps[s];
        for (int k = 0; k < sp->n_in + sp->n_out; k++)
            if (sp->lin[k].kind == OT_LOC_BUF)
                ot_exec_buf_touch(x, sp->lin[k].id, s);
    }
    if (cs->ws_bytes)
        OT_TRY(ot_exec_add_buf(x, cs->ws_bytes, 0, cs->n_steps > 0 ? cs->n_steps - 1 : 0,
                               &cs->ws_id, err));
    if (cs->ones_n)
        cs->ones_off = cs->const_bytes;
done:
    ot_free(taken);
    return st;
}

/* The constants' block: every constant a step reads, then the ones. */
static ot_status upload_constants(ot_exec *x, ot_err *err)
{
    ot_status st = OT_OK;
    cuda_state *cs = state(x);
    const ot_graph *g = x->g;
    size_t total = cs->const_bytes + align256((size_t)cs->ones_n * sizeof(float));
    unsigned char *host = NULL;
    if (!total)
        return OT_OK;
    host = ot_calloc(1, total);
    if (!host)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory for the constants");
    for (int32_t v = 0; v < g->n_values; v++)
        if (cs->const_off[v] != SIZE_MAX && g->values[v].data.data)
            memcpy(host + cs->const_off[v], g->values[v].data.data, value_bytes(&g->values[v]));
    for (int64_t i = 0; i < cs->ones_n; i++) {
        float one = 1.0f;
        memcpy(host + cs->ones_off + (size_t)i * sizeof one, &one, sizeof one);
    }
    CU(cudaMalloc(&cs->const_mem, total), "allocating the constants");
    __atomic_add_fetch(&n_mallocs, 1, __ATOMIC_RELAXED);
    CU(cudaMemcpyAsync(cs->const_mem, host, total, cudaMemcpyHostToDevice, cs->stream),
       "uploading the constants");
    CU(cudaStreamSynchronize(cs->stream), "uploading the constants");
done:
    ot_free(host);
    return st;
}

static ot_status cuda_bind(ot_exec *x, ot_err *err)
{
    ot_status st = OT_OK;
    cuda_state *cs = state(x);
    OT_TRY(upload_constants(x, err));
    OT_TRY(ot_cuda_stage_init(&cs->stage, x, err));
    OT_TRY(ot_cuda_stage_slots(&cs->stage, x, cs->stream, err));
    /* the input buffers' and slots' zeroing (compute stream) before any copy
       into them on the copy stream */
    CU(cudaStreamSynchronize(cs->stream), "zeroing memory");
    void *ws = cs->ws_id >= 0 ? ot_exec_loc_ptr(x, (ot_loc){ .kind = OT_LOC_BUF, .id = cs->ws_id })
                              : NULL;
    cs->ctx.scratch = ws;
    cs->ctx.scratch_bytes = cs->ws_bytes;
    for (int s = 0; s < cs->n_steps; s++) {
        cuda_step *sp = &cs->steps[s];
        for (int k = 0; k < sp->n_in + sp->n_out && k < 6; k++)
            sp->ptr[k] = sp->lin[k].kind != OT_LOC_NONE ? loc_ptr(x, sp->lin[k]) : NULL;
        switch (sp->kind) {
        case ST_KERNEL:
            for (int k = 0; k < sp->n_in; k++)
                if (sp->pin[k])
                    sp->tin[k].data = sp->tin[k].bytes ? loc_ptr(x, sp->lin[k]) : NULL;
            for (int k = 0; k < sp->n_out; k++)
                if (sp->pout[k])
                    sp->tout[k].data = sp->tout[k].bytes ? loc_ptr(x, sp->lout[k]) : NULL;
            break;
        case ST_CONV:
            if (sp->fused)
                OT_TRY(ot_conv_fused_varpack(cs->dev, sp->conv_kind, &sp->ep, sp->ptr[0],
                                             sp->ptr[1], sp->ptr[2], sp->ptr[3], sp->ptr[4], ws,
                                             &sp->vp, err));
            else
                OT_TRY(ot_conv_varpack(cs->dev, sp->plan, sp->ptr[0], sp->ptr[1], sp->ptr[2], ws,
                                       &sp->vp, err));
            break;
        default: break;
        }
    }
done:
    return st;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static ot_status run_step(ot_exec *x, cuda_step *sp, ot_err *err)
{
    ot_status st = OT_OK;
    cuda_state *cs = state(x);
    switch (sp->kind) {
    case ST_KERNEL:
        cs->ctx.nhwc = sp->nhwc;
        return sp->fn(&cs->ctx, x->g, sp->node, sp->pin, sp->pout, err);
    case ST_TRANSPOSE:
        CU((cudaError_t)otk_nhwc_transpose(cs->stream, (int)sp->bytes, sp->ptr[0], sp->ptr[1],
                                           sp->tn, sp->tc, sp->ts, sp->nhwc),
           sp->what);
        break;
    case ST_CONV:
        return ot_conv_run(cs->dev, sp->plan, sp->vp, err);
    case ST_GEMM:
        return ot_gemm_run(cs->dev, &sp->gemm, cs->stream, sp->ptr[0], sp->ptr[1], sp->ptr[2],
                           sp->ptr[3], cs->ctx.scratch, err);
    case ST_COPY:
        CU(cudaMemcpyAsync(sp->ptr[1], sp->ptr[0], sp->bytes, cudaMemcpyDeviceToDevice,
                           cs->stream), "copying an output");
        break;
    case ST_CAST:
        CU((cudaError_t)otk_cast_half(cs->stream, sp->ptr[0], sp->ptr[1], (int64_t)sp->bytes,
                                      sp->narrow, sp->half == OT_DTYPE_BFLOAT16),
           sp->what);
        break;
    }
done:
    return st;
}

/* Enqueues the steps on the executor's stream; returns without waiting for
   them (cuda_wait waits). */
static ot_status cuda_launch(ot_exec *x, ot_err *err)
{
    ot_status st = OT_OK;
    cuda_state *cs = state(x);
    ot_cuda_dev *dev = cs->dev;
    bool prof = x->opts.profile;
    char label[400];
    pthread_mutex_lock(&dev->lock);
    CU(cudaSetDevice(dev->index), "selecting the device");
    cudnnStatus_t s = dev->dnn->cudnnSetStream(dev->dnn_handle, cs->stream);
    if (s != CUDNN_STATUS_SUCCESS)
        OT_FAIL(err, OT_ERR_BACKEND, "cuDNN: setting the stream: %s",
                dev->dnn->cudnnGetErrorString(s));
    OT_TRY(ot_cuda_stage_fence(&cs->stage, x, cs->stream, err));
    for (int i = 0; i < cs->n_steps; i++) {
        cuda_step *sp = &cs->steps[i];
        double t0 = prof ? now_seconds() : 0;
        st = run_step(x, sp, err);
        if (st != OT_OK) {
            if (sp->node)
                ot_err_prefix(err, "%s", ot_node_label(x->g, sp->node, label, sizeof label));
            goto done;
        }
        if (prof) {
            CU(cudaStreamSynchronize(cs->stream), sp->what);
            sp->seconds += now_seconds() - t0;
            sp->runs++;
        }
    }
    cs->ctx.counter++;
done:
    pthread_mutex_unlock(&dev->lock);
    if (st != OT_OK) /* nothing stays in flight after a failure */
        cudaStreamSynchronize(cs->stream);
    return st;
}

static ot_status cuda_wait(ot_exec *x, ot_err *err)
{
    ot_status st = OT_OK;
    cuda_state *cs = state(x);
    CU(cudaSetDevice(cs->dev->index), "selecting the device");
    CU(cudaStreamSynchronize(cs->stream), "running the steps");
    ot_cuda_stage_done(&cs->stage);
    CU(cudaGetLastError(), "running the steps");
done:
    return st;
}

static ot_status cuda_run(ot_exec *x, ot_err *err)
{
    ot_status st = cuda_launch(x, err);
    return st != OT_OK ? st : cuda_wait(x, err);
}

static ot_status cuda_prefetch_u8(ot_exec *x, int i, const uint8_t *images, size_t bytes,
                                  ot_err *err)
{
    ot_status st = OT_OK;
    cuda_state *cs = state(x);
    CU(cudaSetDevice(cs->dev->index), "selecting the device");
    st = ot_cuda_stage_prefetch(&cs->stage, x, i, images, bytes, true, err);
done:
    return st;
}

static ot_status cuda_prefetch(ot_exec *x, int i, const void *src, size_t bytes, ot_err *err)
{
    ot_status st = OT_OK;
    cuda_state *cs = state(x);
    CU(cudaSetDevice(cs->dev->index), "selecting the device");
    st = ot_cuda_stage_prefetch(&cs->stage, x, i, src, bytes, false, err);
done:
    return st;
}

static void cuda_step_profile(const ot_exec *x, int i, ot_exec_step_time *out)
{
    const cuda_step *sp = &state(x)->steps[i];
    static const char *const kernels[] = { "cuda", "cudnn", "cublaslt", "copy", "cuda", "cuda" };
    out->node = sp->node ? sp->node->name : NULL;
    out->kind = sp->what;
    out->kernel = kernels[sp->kind];
    out->runs = sp->runs;
    out->seconds = sp->seconds;
}

static void cuda_free(ot_exec *x)
{
    cuda_state *cs = state(x);
    if (!cs)
        return;
    for (int s = 0; s < cs->n_steps; s++) {
        cuda_step *sp = &cs->steps[s];
        if (sp->vp)
            cs->dev->dnn->cudnnBackendDestroyDescriptor(sp->vp);
        if (sp->gemm.desc)
            ot_gemm_free(cs->dev, &sp->gemm);
        ot_free(sp->lin);
        ot_free(sp->tin);
        ot_free(sp->pin);
        ot_free(sp->pout);
    }
    ot_cuda_stage_free(&cs->stage, x);
    if (cs->const_mem)
        cudaFree(cs->const_mem);
    if (cs->stream)
        cudaStreamDestroy(cs->stream);
    ot_free(cs->steps);
    ot_cuda_layout_release(&cs->lay);
    ot_free(cs->vother);
    ot_free(cs->vloc);
    ot_free(cs->const_off);
    ot_free(cs);
    x->be_state = NULL;
    ot_log(OT_LOG_DEBUG, "cuda: %llu device allocations so far, %llu pinned host allocations",
           (unsigned long long)ot_cuda_malloc_count(),
           (unsigned long long)ot_cuda_host_alloc_count());
}

/* cudaMalloc, zeroed on the executor's stream (before anything else runs on
   it); counted for the tests. */
static ot_status cuda_mem_alloc(ot_exec *x, size_t bytes, void **out, ot_err *err)
{
    ot_status st = OT_OK;
    cuda_state *cs = state(x);
    *out = NULL;
    CU(cudaSetDevice(cs->dev->index), "selecting the device");
    cudaError_t e = cudaMalloc(out, bytes);
    if (e != cudaSuccess) {
        *out = NULL;
        size_t free_b = 0, total = 0;
        cudaMemGetInfo(&free_b, &total);
        return ot_err_set(err, OT_ERR_NOMEM,
                          "out of device memory for %zu bytes (%zu MiB free of %zu MiB)", bytes,
                          free_b >> 20, total >> 20);
    }
    __atomic_add_fetch(&n_mallocs, 1, __ATOMIC_RELAXED);
    CU(cudaMemsetAsync(*out, 0, bytes, cs->stream), "zeroing memory");
done:
    return st;
}

static void cuda_mem_free(ot_exec *x, void *p)
{
    (void)x;
    if (p)
        cudaFree(p);
}

static ot_status cuda_copy_in(ot_exec *x, void *dst, const void *src, size_t bytes, ot_err *err)
{
    ot_status st = OT_OK;
    cuda_state *cs = state(x);
    bool staged = false;
    CU(cudaSetDevice(cs->dev->index), "selecting the device");
    OT_TRY(ot_cuda_stage_copy(&cs->stage, x, dst, src, bytes, &staged, err));
    if (staged)
        return OT_OK;
    CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cs->stream), "copying in");
    CU(cudaStreamSynchronize(cs->stream), "copying in");
done:
    return st;
}

static ot_status cuda_copy_out(const ot_exec *x, void *dst, const void *src, size_t bytes,
                               ot_err *err)
{
    ot_status st = OT_OK;
    cuda_state *cs = state(x);
    CU(cudaSetDevice(cs->dev->index), "selecting the device");
    CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cs->stream), "copying out");
    CU(cudaStreamSynchronize(cs->stream), "copying out");
done:
    return st;
}

/* Record stores (src/exec/exec_store.c: the frozen-prefix cache): pinned
   host memory that copies and kernels reach directly (mapped), the moves as
   copies and conversions on the executor's stream, and the device's free
   memory. */
static ot_status cuda_host_alloc(ot_exec *x, size_t bytes, void **out, ot_err *err)
{
    ot_status st = OT_OK;
    cuda_state *cs = state(x);
    *out = NULL;
    CU(cudaSetDevice(cs->dev->index), "selecting the device");
    if (cudaHostAlloc(out, bytes, cudaHostAllocPortable | cudaHostAllocMapped) != cudaSuccess) {
        *out = NULL;
        (void)cudaGetLastError();
        return ot_err_set(err, OT_ERR_NOMEM, "out of pinned host memory for %zu bytes", bytes);
    }
done:
    return st;
}

static void cuda_host_free(ot_exec *x, void *p)
{
    (void)x;
    if (p)
        cudaFreeHost(p);
}

static ot_status cuda_move(ot_exec *x, const ot_exec_move *m, int n, bool wait, ot_err *err)
{
    ot_status st = OT_OK;
    cuda_state *cs = state(x);
    CU(cudaSetDevice(cs->dev->index), "selecting the device");
    for (int i = 0; i < n; i++) {
        if (m[i].conv == OT_MOVE_COPY)
            CU(cudaMemcpyAsync(m[i].dst, m[i].src, m[i].bytes, cudaMemcpyDefault, cs->stream),
               "copying a cached record");
        else
            CU((cudaError_t)otk_cast_half(cs->stream, m[i].src, m[i].dst,
                                          (int64_t)(m[i].bytes / sizeof(float)),
                                          m[i].conv == OT_MOVE_TO_BF16, 1),
               "converting a cached record");
    }
    if (wait)
        CU(cudaStreamSynchronize(cs->stream), "copying cached records");
done:
    return st;
}

static bool cuda_mem_info(const ot_exec *x, size_t *free_bytes, size_t *total_bytes)
{
    const cuda_state *cs = state(x);
    return cudaSetDevice(cs->dev->index) == cudaSuccess &&
           cudaMemGetInfo(free_bytes, total_bytes) == cudaSuccess;
}

/* Constant folding, and the fusion rules' groups for the convolutions'
   cuDNN epilogues (fused_conv_node, fused_dgrad_node;
   ONNXTRAIN_CUDNN_FUSION=0: none); no BN
   folding. */
static unsigned cuda_rewrites(const ot_exec *x)
{
    (void)x;
    const char *e = getenv("ONNXTRAIN_CUDNN_FUSION");
    return OT_REWRITE_CONST | (e && !strcmp(e, "0") ? 0u : (unsigned)OT_REWRITE_FUSE);
}

/* fp32, tf32, and bf16 and fp16 as mixed precision: convolutions and
   products on half copies of their operands, summed in fp32, everything
   else (BatchNorm statistics, the loss, the optimizer, the parameters) in
   float32. Every GPU the build targets (sm_80 and newer) has both. */
static ot_status cuda_precision(ot_precision p, ot_err *err)
{
    if (p == OT_PRECISION_TF32 || p == OT_PRECISION_BF16 || p == OT_PRECISION_FP16)
        return OT_OK;
    return ot_err_set(err, OT_ERR_UNSUPPORTED, "not a precision of the CUDA backend");
}

/* the stream the steps run on (NCCL's reductions order themselves after it) */
static void *cuda_queue(const ot_exec *x)
{
    return state(x)->stream;
}

const ot_backend ot_backend_cuda = {
    .name = "cuda",
    .host_visible = false,
    .rewrites = cuda_rewrites,
    .precision = cuda_precision,
    .open = cuda_open,
    .mem_alloc = cuda_mem_alloc,
    .mem_free = cuda_mem_free,
    .copy_in = cuda_copy_in,
    .copy_out = cuda_copy_out,
    .build = cuda_build,
    .bind = cuda_bind,
    .run = cuda_run,
    .launch = cuda_launch,
    .wait = cuda_wait,
    .prefetch = cuda_prefetch,
    .prefetch_u8 = cuda_prefetch_u8,
    .step_profile = cuda_step_profile,
    .host_alloc = cuda_host_alloc,
    .host_free = cuda_host_free,
    .move = cuda_move,
    .mem_info = cuda_mem_info,
    .queue = cuda_queue,
    .free = cuda_free,
};
