/*
 * cudnn_conv.c: convolution forward, backward-data and backward-filter on
 * cuDNN 9's backend (graph) API, with an in-memory plan cache.
 *
 * Per convolution: tensor descriptors for x, w and y (NCHW strides, or
 * NHWC strides and a KRSC filter when the geometry says nhwc), a
 * convolution descriptor, the operation, an operation graph of that one
 * operation (all from cudnn_desc.c's builders), heuristics mode A on the
 * device's property descriptor, and the
 * first engine configuration whose plan finalizes, stays within the
 * workspace cap and computes in full fp32 (no tensor-core TF32, no
 * down-converted inputs, no reduced-precision reduction). Plans are cached
 * per device by a key of the geometry, the dtype, the layout and the cuDNN
 * version. Only the handle and what follows the operation need a device.
 */
#include <stdio.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "cuda.h"
#include "exec/cpu/ref_impl.h"

enum { UID_X = OT_CONV_UID_X, UID_W = OT_CONV_UID_W, UID_Y = OT_CONV_UID_Y };

struct ot_conv_plan {
    char key[OT_PLAN_KEY_MAX];
    ot_conv_descs d;
    cudnnBackendDescriptor_t graph, cfg, plan;
    int64_t ws;
    double ms; /* timed with --autotune, else 0 */
    ot_conv_fused *fused; /* a fused epilogue's graph (graph is its graph), or NULL */
    struct ot_conv_plan *next;
};

#define DNN OT_DNN
#define SET OT_DNN_SET

ot_status ot_conv_geom_of(const ot_graph *g, const ot_node *n, const ot_tensor *x,
                          const ot_tensor *w, const ot_tensor *y, ot_conv_kind kind,
                          ot_conv_geom *q, ot_err *err)
{
    char label[400];
    memset(q, 0, sizeof *q);
    q->kind = kind;
    if (x->dtype != OT_DTYPE_FLOAT || w->dtype != OT_DTYPE_FLOAT || y->dtype != OT_DTYPE_FLOAT)
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s: only float convolutions run on CUDA",
                          ot_node_label(g, n, label, sizeof label));
    int k = x->ndim - 2;
    if (k < 1 || k > 3 || w->ndim != x->ndim || y->ndim != x->ndim)
        return ot_err_set(err, OT_ERR_UNSUPPORTED,
                          "%s: only 1-D, 2-D and 3-D convolutions run on CUDA",
                          ot_node_label(g, n, label, sizeof label));
    ot_ref_geom r;
    ot_ref_window(n, x, w->dims + 2, y, &r);
    /* 1-D and 2-D as 2-D (the last two of the geometry's three spatial
       dims), 3-D as 3-D */
    int s = k == 3 ? 3 : 2, first = 3 - s;
    q->nd = s + 2;
    q->x[0] = x->dims[0], q->x[1] = x->dims[1];
    q->w[0] = w->dims[0], q->w[1] = w->dims[1];
    q->y[0] = y->dims[0], q->y[1] = y->dims[1];
    for (int i = 0; i < s; i++) {
        int j = first + i;
        q->x[2 + i] = r.in[j];
        q->w[2 + i] = r.k[j];
        q->y[2 + i] = r.o[j];
        q->pre[i] = r.pb[j];
        q->post[i] = r.pe[j];
        q->stride[i] = r.s[j];
        q->dil[i] = r.d[j];
    }
    return OT_OK;
}

void ot_conv_descs_free(const ot_cudnn_api *api, ot_conv_descs *d)
{
    cudnnBackendDescriptor_t *all[] = { &d->op, &d->conv, &d->x, &d->w, &d->y };
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (*all[i]) {
            api->cudnnBackendDestroyDescriptor(*all[i]);
            *all[i] = NULL;
        }
}

ot_status ot_conv_descs_build(const ot_cudnn_api *api, const ot_conv_geom *q, ot_conv_descs *d,
                              ot_err *err)
{
    return ot_conv_descs_build_virtual(api, q, false, d, err);
}

ot_status ot_conv_descs_build_virtual(const ot_cudnn_api *api, const ot_conv_geom *q,
                                      bool virtual_out, ot_conv_descs *d, ot_err *err)
{
    ot_status st = OT_OK;
    memset(d, 0, sizeof *d);
    /* the output that an epilogue reads stays virtual: y forward, dx backward */
    bool vx = virtual_out && q->kind == OT_CONV_DGRAD, vy = virtual_out && q->kind == OT_CONV_FWD;
    /* --precision bf16/fp16: the tensors in memory are half; a virtual output
       an epilogue reads stays float */
    ot_dtype dx = vx ? OT_DTYPE_FLOAT : q->half, dw = q->half, dy = vy ? OT_DTYPE_FLOAT : q->half;
    OT_TRY(ot_cudnn_conv_tensor(api, q, q->x, vx ? OT_CONV_UID_CONV_OUT : UID_X, vx, dx, &d->x,
                                err));
    OT_TRY(ot_cudnn_conv_tensor(api, q, q->w, UID_W, false, dw, &d->w, err));
    OT_TRY(ot_cudnn_conv_tensor(api, q, q->y, vy ? OT_CONV_UID_CONV_OUT : UID_Y, vy, dy, &d->y,
                                err));
    OT_TRY(ot_cudnn_conv(api, q->nd - 2, q->pre, q->post, q->stride, q->dil, &d->conv, err));
    OT_TRY(ot_cudnn_conv_op(api, q->kind, d->conv, d->x, d->w, d->y, &d->op, err));
done:
    if (st != OT_OK)
        ot_conv_descs_free(api, d);
    return st;
}

/* The operation's text in a plan key: kind, dtype, layout and shapes. */
static void plan_what(const ot_conv_geom *q, char *what, size_t size)
{
    const char *type = q->half == OT_DTYPE_BFLOAT16 ? "bf16"
                       : q->half == OT_DTYPE_FLOAT16 ? "f16"
                       : q->tf32                     ? "tf32"
                                                     : "f32";
    int at = snprintf(what, size, "conv%d/%s/%s/", (int)q->kind, type, q->nhwc ? "nhwc" : "nchw");
    const int64_t *arrs[] = { q->x, q->w, q->y, q->pre, q->post, q->stride, q->dil };
    for (int a = 0; a < 7; a++) {
        int count = a < 3 ? q->nd : q->nd - 2;
        for (int i = 0; i < count && at > 0 && (size_t)at < size; i++)
            at += snprintf(what + at, size - (size_t)at, "%lld%c", (long long)arrs[a][i],
                           i + 1 < count ? ',' : ';');
    }
}

/* The key with a fused epilogue's steps after the convolution's (e NULL:
   none). */
static bool plan_key_ep(const ot_plan_env *env, const ot_conv_geom *q,
                        const ot_conv_epilogue *e, char *key, size_t size)
{
    char what[OT_PLAN_KEY_MAX];
    plan_what(q, what, sizeof what);
    size_t at = strlen(what);
    if (e && at < sizeof what)
        snprintf(what + at, sizeof what - at, "+%s%s%s", e->bias ? "bias" : "",
                 e->add ? "add" : "", e->relu ? "relu" : "");
    return ot_plan_key(env, what, key, size);
}

bool ot_conv_plan_key(const ot_plan_env *env, const ot_conv_geom *q, char *key, size_t size)
{
    return plan_key_ep(env, q, NULL, key, size);
}

static ot_plan_env dev_env(const ot_cuda_dev *dev)
{
    return (ot_plan_env){ .cudnn_version = dev->dnn->version, .device_name = dev->name,
                          .cc_major = dev->cc_major, .cc_minor = dev->cc_minor };
}

/* Whether an engine computes in full fp32 (with tf32, and on half operands:
   tensor cores allowed, never inputs converted to a narrower type nor sums
   kept in one). */
static bool engine_fp32(const ot_cudnn_api *api, cudnnBackendDescriptor_t cfg, bool tf32)
{
    cudnnBackendDescriptor_t eng = NULL;
    cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
    int64_t n = 0;
    bool ok = false;
    if (api->cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &eng) ||
        api->cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &eng) ||
        api->cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE,
                                      CUDNN_TYPE_NUMERICAL_NOTE, CUDNN_NUMERICAL_NOTE_TYPE_COUNT,
                                      &n, notes))
        goto done;
    ok = true;
    for (int64_t i = 0; i < n && i < CUDNN_NUMERICAL_NOTE_TYPE_COUNT; i++)
        if ((notes[i] == CUDNN_NUMERICAL_NOTE_TENSOR_CORE && !tf32) ||
            notes[i] == CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS ||
            notes[i] == CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION)
            ok = false;
done:
    if (eng)
        api->cudnnBackendDestroyDescriptor(eng);
    return ok;
}

ot_status ot_conv_engine_rec(const ot_cudnn_api *api, cudnnBackendDescriptor_t cfg,
                            ot_plan_rec *r, ot_err *err)
{
    ot_status st = OT_OK;
    cudnnBackendDescriptor_t eng = NULL, knobs[OT_PLAN_MAX_KNOBS] = { 0 };
    int64_t n = 0;
    r->n_knobs = 0;
    DNN(api->cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &eng), "engine");
    DNN(api->cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &eng), "engine");
    DNN(api->cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1,
                                      &n, &r->engine), "engine index");
    for (int i = 0; i < OT_PLAN_MAX_KNOBS; i++)
        DNN(api->cudnnBackendCreateDescriptor(CUDNN_BACKEND_KNOB_CHOICE_DESCRIPTOR, &knobs[i]),
            "knob choice");
    n = 0;
    DNN(api->cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_KNOB_CHOICES,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, OT_PLAN_MAX_KNOBS, &n, knobs),
        "knob choices");
    for (int64_t i = 0; i < n && i < OT_PLAN_MAX_KNOBS; i++) {
        cudnnBackendKnobType_t t;
        int64_t got = 0;
        DNN(api->cudnnBackendGetAttribute(knobs[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_TYPE,
                                          CUDNN_TYPE_KNOB_TYPE, 1, &got, &t), "knob type");
        DNN(api->cudnnBackendGetAttribute(knobs[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_VALUE,
                                          CUDNN_TYPE_INT64, 1, &got, &r->knob_value[r->n_knobs]),
            "knob value");
        r->knob_type[r->n_knobs++] = (int64_t)t;
    }
done:
    for (int i = 0; i < OT_PLAN_MAX_KNOBS; i++)
        if (knobs[i])
            api->cudnnBackendDestroyDescriptor(knobs[i]);
    if (eng)
        api->cudnnBackendDestroyDescriptor(eng);
    return st;
}

ot_status ot_conv_engine_cfg(const ot_cudnn_api *api, cudnnBackendDescriptor_t graph,
                             cudnnBackendDescriptor_t devprop, const ot_plan_rec *r,
                             cudnnBackendDescriptor_t *cfg, ot_err *err)
{
    ot_status st = OT_OK;
    cudnnBackendDescriptor_t eng = NULL, knobs[OT_PLAN_MAX_KNOBS] = { 0 };
    *cfg = NULL;
    DNN(api->cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &eng), "engine");
    DNN(SET(eng, CUDNN_ATTR_ENGINE_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph),
        "engine graph");
    DNN(SET(eng, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &r->engine),
        "engine index");
    if (devprop)
        DNN(SET(eng, CUDNN_ATTR_ENGINE_DEVICEPROP, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &devprop),
            "engine device");
    DNN(api->cudnnBackendFinalize(eng), "engine");
    for (int i = 0; i < r->n_knobs; i++) {
        cudnnBackendKnobType_t t = (cudnnBackendKnobType_t)r->knob_type[i];
        DNN(api->cudnnBackendCreateDescriptor(CUDNN_BACKEND_KNOB_CHOICE_DESCRIPTOR, &knobs[i]),
            "knob choice");
        DNN(SET(knobs[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_TYPE, CUDNN_TYPE_KNOB_TYPE, 1, &t),
            "knob type");
        DNN(SET(knobs[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_VALUE, CUDNN_TYPE_INT64, 1,
                &r->knob_value[i]), "knob value");
        DNN(api->cudnnBackendFinalize(knobs[i]), "knob choice");
    }
    DNN(api->cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, cfg),
        "engine configuration");
    DNN(SET(*cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &eng),
        "engine configuration");
    if (r->n_knobs)
        DNN(SET(*cfg, CUDNN_ATTR_ENGINECFG_KNOB_CHOICES, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                r->n_knobs, knobs), "engine knobs");
    DNN(api->cudnnBackendFinalize(*cfg), "engine configuration");
done:
    if (st != OT_OK && *cfg) {
        api->cudnnBackendDestroyDescriptor(*cfg);
        *cfg = NULL;
    }
    for (int i = 0; i < OT_PLAN_MAX_KNOBS; i++)
        if (knobs[i])
            api->cudnnBackendDestroyDescriptor(knobs[i]);
    if (eng)
        api->cudnnBackendDestroyDescriptor(eng);
    return st;
}

/* A plan of `cfg` within the workspace cap, or NULL. */
static cudnnBackendDescriptor_t try_plan(ot_cuda_dev *dev, cudnnBackendDescriptor_t cfg,
                                         int64_t *ws)
{
    return ot_cudnn_plan(dev->dnn, cfg, dev->devprop, OT_CUDA_WS_CAP, ws);
}

/* Scratch buffers for timing candidates: x, w, y and the workspace. */
typedef struct tune_bufs {
    void *p[4];
    size_t ws;
    cudaEvent_t ev[2];
    bool ready;
} tune_bufs;

static size_t elems(const int64_t *d, int nd)
{
    size_t n = 1;
    for (int i = 0; i < nd; i++)
        n *= (size_t)d[i];
    return n;
}

static void tune_free(tune_bufs *b)
{
    for (int i = 0; i < 4; i++)
        if (b->p[i])
            cudaFree(b->p[i]);
    if (b->ready) {
        cudaEventDestroy(b->ev[0]);
        cudaEventDestroy(b->ev[1]);
    }
    memset(b, 0, sizeof *b);
}

static bool tune_alloc(const ot_conv_geom *q, tune_bufs *b, size_t ws)
{
    size_t bytes[4] = { elems(q->x, q->nd) * 4, elems(q->w, q->nd) * 4, elems(q->y, q->nd) * 4,
                        ws ? ws : 16 };
    memset(b, 0, sizeof *b);
    b->ws = ws;
    for (int i = 0; i < 4; i++)
        if (cudaMalloc(&b->p[i], bytes[i]) != cudaSuccess ||
            cudaMemset(b->p[i], 0, bytes[i]) != cudaSuccess)
            goto fail;
    if (cudaEventCreate(&b->ev[0]) != cudaSuccess)
        goto fail;
    if (cudaEventCreate(&b->ev[1]) != cudaSuccess) {
        cudaEventDestroy(b->ev[0]);
        goto fail;
    }
    b->ready = true;
    return true;
fail:
    tune_free(b);
    cudaGetLastError();
    return false;
}

/* Milliseconds per run of a plan (the best of a few after one warm-up), or
   a negative value when it fails to run. */
static double time_plan(ot_cuda_dev *dev, cudnnBackendDescriptor_t plan, tune_bufs *b)
{
    const ot_cudnn_api *api = dev->dnn;
    cudnnBackendDescriptor_t vp = NULL;
    double best = -1;
    ot_err err;
    ot_err_init(&err);
    if (ot_conv_varpack(dev, NULL, b->p[0], b->p[1], b->p[2], b->p[3], &vp, &err) != OT_OK)
        goto done;
    cudaStream_t stream = NULL;
    api->cudnnSetStream(dev->dnn_handle, stream);
    if (api->cudnnBackendExecute(dev->dnn_handle, plan, vp) ||
        cudaStreamSynchronize(stream) != cudaSuccess)
        goto done;
    for (int r = 0; r < OT_CONV_TUNE_RUNS; r++) {
        float ms = 0;
        if (cudaEventRecord(b->ev[0], stream) != cudaSuccess ||
            api->cudnnBackendExecute(dev->dnn_handle, plan, vp) ||
            cudaEventRecord(b->ev[1], stream) != cudaSuccess ||
            cudaEventSynchronize(b->ev[1]) != cudaSuccess ||
            cudaEventElapsedTime(&ms, b->ev[0], b->ev[1]) != cudaSuccess) {
            best = -1;
            goto done;
        }
        if (best < 0 || (double)ms < best)
            best = (double)ms;
    }
done:
    cudaGetLastError();
    if (vp)
        api->cudnnBackendDestroyDescriptor(vp);
    return best;
}

/* The plan from the record on disk, when it still makes one. */
static bool plan_from_rec(ot_cuda_dev *dev, const ot_conv_geom *q, ot_conv_plan *p,
                          const ot_plan_rec *r)
{
    ot_err err;
    ot_err_init(&err);
    cudnnBackendDescriptor_t cfg = NULL;
    if (ot_conv_engine_cfg(dev->dnn, p->graph, dev->devprop, r, &cfg, &err) != OT_OK) {
        ot_log(OT_LOG_WARN, "plan cache: engine %lld of %s no longer makes a plan (%s)",
               (long long)r->engine, p->key, err.msg);
        return false;
    }
    if (!engine_fp32(dev->dnn, cfg, q->tf32 || q->half) ||
        !(p->plan = try_plan(dev, cfg, &p->ws))) {
        dev->dnn->cudnnBackendDestroyDescriptor(cfg);
        return false;
    }
    p->cfg = cfg;
    return true;
}

/* The plan: from the disk cache's record (a timed one when autotuning),
   else heuristics mode A's first acceptable configuration, or, with
   autotune, the fastest of its first OT_CONV_TUNE_CANDIDATES acceptable
   ones; the choice goes to the disk cache's records. */
static ot_status make_plan(ot_cuda_dev *dev, const ot_conv_geom *q, ot_conv_plan *p, ot_err *err)
{
    ot_status st = OT_OK;
    const ot_cudnn_api *api = dev->dnn;
    cudnnBackendDescriptor_t *cfgs = NULL;
    int64_t n_cfg = 0;
    tune_bufs bufs = { 0 };
    if (!p->graph) /* a fused plan comes with its graph */
        OT_TRY(ot_cudnn_graph(api, &p->d.op, 1, &p->graph, err));
    const ot_plan_rec *known = dev->disk ? ot_plan_store_find(&dev->store, p->key) : NULL;
    /* an untimed record does not answer --autotune */
    if (known && !(dev->opts.autotune && known->ms <= 0) && plan_from_rec(dev, q, p, known)) {
        dev->n_reused++;
        goto done;
    }
    OT_TRY(ot_cudnn_heuristics(api, p->graph, dev->devprop, &cfgs, &n_cfg, err));
    /* the timing buffers have no epilogue operands: a fused plan is not timed */
    int tried = 0, limit = dev->opts.autotune && !p->fused ? OT_CONV_TUNE_CANDIDATES : 1;
    double best = -1;
    for (int64_t i = 0; i < n_cfg && tried < limit; i++) {
        int64_t ws = 0;
        cudnnBackendDescriptor_t plan;
        if (!engine_fp32(api, cfgs[i], q->tf32 || q->half) ||
            !(plan = try_plan(dev, cfgs[i], &ws)))
            continue;
        tried++;
        double ms = 0;
        if (limit > 1) {
            if (!bufs.ready || bufs.ws < (size_t)ws) {
                tune_free(&bufs);
                tune_alloc(q, &bufs, (size_t)ws);
            }
            ms = bufs.ready ? time_plan(dev, plan, &bufs) : 0;
            if (ms < 0) { /* does not run here: not a candidate */
                api->cudnnBackendDestroyDescriptor(plan);
                continue;
            }
        }
        if (p->plan && ms >= best) {
            api->cudnnBackendDestroyDescriptor(plan);
            continue;
        }
        if (p->plan) {
            api->cudnnBackendDestroyDescriptor(p->plan);
            api->cudnnBackendDestroyDescriptor(p->cfg);
        }
        p->plan = plan;
        p->cfg = cfgs[i];
        cfgs[i] = NULL;
        p->ws = ws;
        p->ms = best = ms;
    }
    if (!p->plan)
        OT_FAIL(err, OT_ERR_BACKEND,
                "cuDNN: none of %lld engine configurations makes a plan for this %s "
                "convolution", (long long)n_cfg,
                q->half == OT_DTYPE_BFLOAT16 ? "bf16" : q->half == OT_DTYPE_FLOAT16 ? "fp16" : "fp32");
    dev->n_made++;
    dev->n_timed += limit > 1 && best > 0;
    if (dev->disk) {
        ot_plan_rec r;
        memset(&r, 0, sizeof r);
        snprintf(r.key, sizeof r.key, "%s", p->key);
        r.ws = p->ws;
        r.ms = p->ms;
        ot_err e2;
        ot_err_init(&e2);
        if (ot_conv_engine_rec(api, p->cfg, &r, &e2) == OT_OK &&
            ot_plan_store_put(&dev->store, &r, &e2) == OT_OK)
            dev->store_dirty = true;
    }
done:
    tune_free(&bufs);
    ot_cudnn_cfgs_free(api, cfgs, n_cfg);
    return st;
}

void ot_cuda_plans_configure(ot_cuda_dev *dev, const ot_exec_plan_opts *o)
{
    pthread_mutex_lock(&dev->lock);
    dev->opts.autotune = o->autotune;
    char dir[sizeof dev->dir];
    bool disk = !o->no_disk && ot_plan_store_dir(o->cache_dir, dir, sizeof dir);
    if (disk && (!dev->disk || strcmp(dir, dev->dir))) {
        snprintf(dev->dir, sizeof dev->dir, "%s", dir);
        ot_plan_store_load(dev->dir, &dev->store);
        dev->store_dirty = false;
    }
    dev->disk = disk;
    pthread_mutex_unlock(&dev->lock);
}

void ot_cuda_plans_flush(ot_cuda_dev *dev)
{
    pthread_mutex_lock(&dev->lock);
    ot_log(OT_LOG_DEBUG, "cuda: convolution plans so far: %d from the plan cache on disk, %d made "
           "(%d timed)", dev->n_reused, dev->n_made, dev->n_timed);
    if (dev->disk && dev->store_dirty) {
        ot_err err;
        ot_err_init(&err);
        if (ot_plan_store_save(&dev->store, dev->dir, &err) != OT_OK)
            ot_log(OT_LOG_WARN, "plan cache not written: %s", err.msg);
        else
            dev->store_dirty = false;
    }
    pthread_mutex_unlock(&dev->lock);
}

static ot_status plan_get(ot_cuda_dev *dev, const ot_conv_geom *q, const ot_conv_epilogue *e,
                          const ot_conv_plan **out, size_t *ws, ot_err *err)
{
    char key[OT_PLAN_KEY_MAX];
    ot_plan_env env = dev_env(dev);
    if (!plan_key_ep(&env, q, e, key, sizeof key))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "convolution too large to name its plan");
    ot_status st = OT_OK;
    pthread_mutex_lock(&dev->lock);
    for (ot_conv_plan *p = dev->plans; p; p = p->next)
        if (!strcmp(p->key, key)) {
            *out = p;
            *ws = (size_t)p->ws;
            goto done;
        }
    ot_conv_plan *p = ot_calloc(1, sizeof *p);
    if (!p)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    snprintf(p->key, sizeof p->key, "%s", key);
    if (e) {
        p->fused = ot_calloc(1, sizeof *p->fused);
        st = p->fused ? ot_conv_fused_build(dev->dnn, q, e, p->fused, err)
                      : ot_err_set(err, OT_ERR_NOMEM, "out of memory");
        if (st == OT_OK)
            p->graph = p->fused->graph;
    } else {
        st = ot_conv_descs_build(dev->dnn, q, &p->d, err);
    }
    if (st == OT_OK)
        st = make_plan(dev, q, p, err);
    if (st != OT_OK) {
        const ot_cudnn_api *api = dev->dnn;
        cudnnBackendDescriptor_t rest[] = { p->plan, p->cfg, p->fused ? NULL : p->graph };
        for (int i = 0; i < 3; i++)
            if (rest[i])
                api->cudnnBackendDestroyDescriptor(rest[i]);
        if (p->fused)
            ot_conv_fused_free(api, p->fused);
        ot_free(p->fused);
        ot_conv_descs_free(api, &p->d);
        ot_free(p);
        goto done;
    }
    p->next = dev->plans;
    dev->plans = p;
    dev->n_plans++;
    *out = p;
    *ws = (size_t)p->ws;
done:
    pthread_mutex_unlock(&dev->lock);
    return st;
}

ot_status ot_conv_plan_get(ot_cuda_dev *dev, const ot_conv_geom *q, const ot_conv_plan **out,
                           size_t *ws, ot_err *err)
{
    return plan_get(dev, q, NULL, out, ws, err);
}

ot_status ot_conv_fused_plan_get(ot_cuda_dev *dev, const ot_conv_geom *q,
                                 const ot_conv_epilogue *e, const ot_conv_plan **out, size_t *ws,
                                 ot_err *err)
{
    return plan_get(dev, q, e, out, ws, err);
}

ot_status ot_conv_varpack(ot_cuda_dev *dev, const ot_conv_plan *p, void *x, void *w, void *y,
                          void *ws, cudnnBackendDescriptor_t *out, ot_err *err)
{
    void *const ptrs[3] = { x, w, y };
    static const int64_t uids[3] = { UID_X, UID_W, UID_Y };
    (void)p;
    return ot_cudnn_varpack(dev->dnn, 3, ptrs, uids, ws, out, err);
}

ot_status ot_conv_run(ot_cuda_dev *dev, const ot_conv_plan *p, cudnnBackendDescriptor_t vp,
                      ot_err *err)
{
    ot_status st = OT_OK;
    const ot_cudnn_api *api = dev->dnn;
    DNN(api->cudnnBackendExecute(dev->dnn_handle, p->plan, vp), "convolution");
done:
    return st;
}
