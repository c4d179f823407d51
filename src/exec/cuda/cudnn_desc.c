/*
 * cudnn_desc.c: the cuDNN backend descriptors every convolution graph is
 * made of (tensors with explicit strides, NCHW or NHWC; the convolution and
 * its operation; pointwise operations; the operation graph; variant packs;
 * heuristics and execution plans), built in one place for the plain
 * convolutions (cudnn_conv.c) and the fused ones (cudnn_fused.c).
 * Everything up to the operation graph needs no device; heuristics and
 * plans take the device's property descriptor.
 */
#include <string.h>

#include "cuda.h"

#define DNN OT_DNN
#define SET OT_DNN_SET

ot_status ot_cudnn_fail(const ot_cudnn_api *api, cudnnStatus_t s, const char *what, ot_err *err)
{
    char last[256] = "";
    api->cudnnGetLastErrorString(last, sizeof last);
    char *nl = strchr(last, '\n');
    if (nl)
        *nl = '\0';
    return ot_err_set(err, OT_ERR_BACKEND, "cuDNN: %s: %s%s%s", what, api->cudnnGetErrorString(s),
                      last[0] ? ": " : "", last);
}

static cudnnDataType_t dnn_type(ot_dtype t)
{
    return t == OT_DTYPE_BFLOAT16 ? CUDNN_DATA_BFLOAT16
           : t == OT_DTYPE_FLOAT16 ? CUDNN_DATA_HALF
                                   : CUDNN_DATA_FLOAT;
}

/* Destroys *d when set and clears it. */
static void drop(const ot_cudnn_api *api, cudnnBackendDescriptor_t *d)
{
    if (*d)
        api->cudnnBackendDestroyDescriptor(*d);
    *d = NULL;
}

void ot_cudnn_strides(int nd, const int64_t *dims, bool nhwc, int64_t *strides)
{
    int64_t s = 1;
    if (nhwc && nd >= 3) {
        /* [N, spatial..., C] in memory */
        strides[1] = 1;
        s = dims[1];
        for (int i = nd - 1; i >= 2; i--) {
            strides[i] = s;
            s *= dims[i];
        }
        strides[0] = s;
        return;
    }
    for (int i = nd - 1; i >= 0; i--) {
        strides[i] = s;
        s *= dims[i];
    }
}

ot_status ot_cudnn_tensor(const ot_cudnn_api *api, int nd, const int64_t *dims,
                          const int64_t *strides, int64_t uid, bool is_virtual, ot_dtype type,
                          cudnnBackendDescriptor_t *out, ot_err *err)
{
    ot_status st = OT_OK;
    int64_t packed[OT_MAX_DIMS], align = 16;
    cudnnDataType_t dt = dnn_type(type);
    *out = NULL;
    if (nd < 1 || nd > OT_MAX_DIMS)
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "cuDNN: a tensor of rank %d", nd);
    if (!strides) {
        ot_cudnn_strides(nd, dims, false, packed);
        strides = packed;
    }
    DNN(api->cudnnBackendCreateDescriptor(CUDNN_BACKEND_TENSOR_DESCRIPTOR, out), "tensor");
    DNN(SET(*out, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt), "tensor dtype");
    DNN(SET(*out, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, nd, dims), "tensor dims");
    DNN(SET(*out, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, nd, strides), "tensor strides");
    DNN(SET(*out, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid), "tensor id");
    DNN(SET(*out, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align),
        "tensor alignment");
    if (is_virtual)
        DNN(SET(*out, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual),
            "tensor virtual");
    DNN(api->cudnnBackendFinalize(*out), "tensor");
done:
    if (st != OT_OK)
        drop(api, out);
    return st;
}

ot_status ot_cudnn_conv_tensor(const ot_cudnn_api *api, const ot_conv_geom *q,
                               const int64_t *dims, int64_t uid, bool is_virtual, ot_dtype dt,
                               cudnnBackendDescriptor_t *out, ot_err *err)
{
    int64_t strides[5];
    ot_cudnn_strides(q->nd, dims, q->nhwc, strides);
    return ot_cudnn_tensor(api, q->nd, dims, strides, uid, is_virtual, dt, out, err);
}

ot_status ot_cudnn_conv(const ot_cudnn_api *api, int spatial, const int64_t *pre,
                        const int64_t *post, const int64_t *stride, const int64_t *dil,
                        cudnnBackendDescriptor_t *out, ot_err *err)
{
    ot_status st = OT_OK;
    int64_t rank = spatial;
    cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    *out = NULL;
    DNN(api->cudnnBackendCreateDescriptor(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, out),
        "convolution");
    DNN(SET(*out, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp),
        "convolution compute type");
    DNN(SET(*out, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode),
        "convolution mode");
    DNN(SET(*out, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &rank),
        "convolution rank");
    DNN(SET(*out, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, rank, dil),
        "convolution dilations");
    DNN(SET(*out, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, rank, stride),
        "convolution strides");
    DNN(SET(*out, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, rank, pre),
        "convolution pads");
    DNN(SET(*out, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, rank, post),
        "convolution pads");
    DNN(api->cudnnBackendFinalize(*out), "convolution");
done:
    if (st != OT_OK)
        drop(api, out);
    return st;
}

ot_status ot_cudnn_conv_op(const ot_cudnn_api *api, ot_conv_kind kind,
                           cudnnBackendDescriptor_t conv, cudnnBackendDescriptor_t x,
                           cudnnBackendDescriptor_t w, cudnnBackendDescriptor_t y,
                           cudnnBackendDescriptor_t *out, ot_err *err)
{
    ot_status st = OT_OK;
    float alpha = 1.0f, beta = 0.0f;
    static const cudnnBackendDescriptorType_t types[] = {
        CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR,
        CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR,
        CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR,
    };
    /* alpha, beta, conv, x, w, y in each kind's attribute names */
    static const cudnnBackendAttributeName_t names[3][6] = {
        { CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA,
          CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X,
          CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y },
        { CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA,
          CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX,
          CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY },
        { CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA,
          CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X,
          CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY },
    };
    const cudnnBackendAttributeName_t *a = names[kind];
    *out = NULL;
    DNN(api->cudnnBackendCreateDescriptor(types[kind], out), "operation");
    DNN(SET(*out, a[0], CUDNN_TYPE_FLOAT, 1, &alpha), "operation alpha");
    DNN(SET(*out, a[1], CUDNN_TYPE_FLOAT, 1, &beta), "operation beta");
    DNN(SET(*out, a[2], CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &conv), "operation convolution");
    DNN(SET(*out, a[3], CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x), "operation x");
    DNN(SET(*out, a[4], CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &w), "operation w");
    DNN(SET(*out, a[5], CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y), "operation y");
    DNN(api->cudnnBackendFinalize(*out), "operation");
done:
    if (st != OT_OK)
        drop(api, out);
    return st;
}

ot_status ot_cudnn_pointwise(const ot_cudnn_api *api, cudnnPointwiseMode_t mode,
                             cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b,
                             cudnnBackendDescriptor_t out, cudnnBackendDescriptor_t *pw,
                             cudnnBackendDescriptor_t *op, ot_err *err)
{
    ot_status st = OT_OK;
    cudnnDataType_t prec = CUDNN_DATA_FLOAT;
    bool relu = mode == CUDNN_POINTWISE_RELU_FWD || mode == CUDNN_POINTWISE_RELU_BWD;
    bool bwd = mode == CUDNN_POINTWISE_RELU_BWD;
    *pw = *op = NULL;
    DNN(api->cudnnBackendCreateDescriptor(CUDNN_BACKEND_POINTWISE_DESCRIPTOR, pw), "pointwise");
    DNN(SET(*pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode),
        "pointwise mode");
    DNN(SET(*pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec),
        "pointwise precision");
    if (relu) {
        double zero = 0.0;
        DNN(SET(*pw, CUDNN_ATTR_POINTWISE_RELU_LOWER_CLIP, CUDNN_TYPE_DOUBLE, 1, &zero),
            "pointwise clip");
    }
    DNN(api->cudnnBackendFinalize(*pw), "pointwise");
    DNN(api->cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, op),
        "pointwise operation");
    DNN(SET(*op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
            pw), "pointwise operation");
    /* a backward activation reads dy and x and writes dx; the others read
       x (and b) and write y */
    DNN(SET(*op, bwd ? CUDNN_ATTR_OPERATION_POINTWISE_DYDESC : CUDNN_ATTR_OPERATION_POINTWISE_XDESC,
            CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &a), "pointwise input");
    if (b)
        DNN(SET(*op, bwd ? CUDNN_ATTR_OPERATION_POINTWISE_XDESC : CUDNN_ATTR_OPERATION_POINTWISE_BDESC,
                CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b), "pointwise second input");
    DNN(SET(*op, bwd ? CUDNN_ATTR_OPERATION_POINTWISE_DXDESC : CUDNN_ATTR_OPERATION_POINTWISE_YDESC,
            CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &out), "pointwise output");
    DNN(api->cudnnBackendFinalize(*op), "pointwise operation");
done:
    if (st != OT_OK) {
        drop(api, op);
        drop(api, pw);
    }
    return st;
}

ot_status ot_cudnn_graph(const ot_cudnn_api *api, cudnnBackendDescriptor_t *ops, int n_ops,
                         cudnnBackendDescriptor_t *graph, ot_err *err)
{
    ot_status st = OT_OK;
    *graph = NULL;
    DNN(api->cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, graph),
        "operation graph");
    DNN(SET(*graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, n_ops, ops),
        "operation graph");
    DNN(api->cudnnBackendFinalize(*graph), "operation graph");
done:
    if (st != OT_OK)
        drop(api, graph);
    return st;
}

ot_status ot_cudnn_varpack(const ot_cudnn_api *api, int n, void *const *ptrs,
                           const int64_t *uids, void *ws, cudnnBackendDescriptor_t *out,
                           ot_err *err)
{
    ot_status st = OT_OK;
    *out = NULL;
    DNN(api->cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, out),
        "variant pack");
    DNN(SET(*out, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs),
        "variant pack");
    DNN(SET(*out, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids), "variant pack");
    DNN(SET(*out, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws),
        "variant pack");
    DNN(api->cudnnBackendFinalize(*out), "variant pack");
done:
    if (st != OT_OK)
        drop(api, out);
    return st;
}

void ot_cudnn_cfgs_free(const ot_cudnn_api *api, cudnnBackendDescriptor_t *cfgs, int64_t n)
{
    for (int64_t i = 0; cfgs && i < n; i++)
        drop(api, &cfgs[i]);
    ot_free(cfgs);
}

ot_status ot_cudnn_heuristics(const ot_cudnn_api *api, cudnnBackendDescriptor_t graph,
                              cudnnBackendDescriptor_t devprop, cudnnBackendDescriptor_t **out,
                              int64_t *n_out, ot_err *err)
{
    ot_status st = OT_OK;
    cudnnBackendDescriptor_t heur = NULL, *cfgs = NULL;
    cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
    int64_t n = 0;
    *out = NULL;
    *n_out = 0;
    DNN(api->cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, &heur),
        "heuristics");
    DNN(SET(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph),
        "heuristics");
    DNN(SET(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode), "heuristics");
    if (devprop)
        DNN(SET(heur, CUDNN_ATTR_ENGINEHEUR_DEVICEPROP, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                &devprop), "heuristics");
    DNN(api->cudnnBackendFinalize(heur), "heuristics");
    DNN(api->cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &n, NULL),
        "heuristics");
    if (n > 0) {
        cfgs = ot_calloc((size_t)n, sizeof *cfgs);
        if (!cfgs)
            OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; i < n; i++)
            DNN(api->cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, &cfgs[i]),
                "engine configuration");
        int64_t got = 0;
        DNN(api->cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                          CUDNN_TYPE_BACKEND_DESCRIPTOR, n, &got, cfgs),
            "heuristics");
        for (int64_t i = got; i < n; i++) /* fewer than announced: the rest unused */
            drop(api, &cfgs[i]);
        n = got < n ? got : n;
    }
    *out = cfgs;
    *n_out = n;
    cfgs = NULL;
done:
    if (st != OT_OK)
        ot_cudnn_cfgs_free(api, cfgs, n);
    drop(api, &heur);
    return st;
}

cudnnBackendDescriptor_t ot_cudnn_plan(const ot_cudnn_api *api, cudnnBackendDescriptor_t cfg,
                                       cudnnBackendDescriptor_t devprop, size_t cap, int64_t *ws)
{
    cudnnBackendDescriptor_t plan = NULL;
    int64_t cnt = 0;
    *ws = 0;
    if (api->cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &plan) ||
        SET(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
            &cfg) ||
        (devprop && SET(plan, CUDNN_ATTR_EXECUTION_PLAN_DEVICEPROP, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                        1, &devprop)) ||
        api->cudnnBackendFinalize(plan) ||
        api->cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                      CUDNN_TYPE_INT64, 1, &cnt, ws) ||
        *ws < 0 || (size_t)*ws > cap) {
        drop(api, &plan);
        return NULL;
    }
    return plan;
}
