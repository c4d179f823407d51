/*
 * resnet.c: ResNet-18 and ResNet-34 (He et al., "Deep Residual Learning for
 * Image Recognition", 2015) in torchvision's layout: BasicBlocks of two 3x3
 * convolutions, a 1x1 strided shortcut where the shape changes, BatchNorm
 * after every convolution, global average pooling and a Linear head.
 * Initializer names and node names follow PyTorch's exporter
 * ("layer1.0.conv1.weight", "/layer1/layer1.0/conv1/Conv"), so the freeze
 * patterns of the tutorial ("layer4.*") work on the result.
 *
 * Not here: Bottleneck ResNets (50 and up).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "models.h"
#include "ops/grad_util.h"
#include "ops/op_util.h"

static const char *const names[] = { "resnet18", "resnet34", NULL };

const char *const *ot_model_names(void) { return names; }

typedef struct builder {
    ot_graph *g;
    uint64_t rng;
    ot_err *err;
} builder;

static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *s) { return (double)(next_u64(s) >> 11) * 0x1.0p-53; }

/* Standard normal by Box-Muller. */
static double normal(uint64_t *s)
{
    double u = uniform01(s), v = uniform01(s);
    if (u < 1e-300)
        u = 1e-300;
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* A float initializer named `name` of dims, filled by kind: 'k' Kaiming
   normal (std), 'u' uniform (+-bound), '1' ones, '0' zeros. */
static ot_status param(builder *b, const char *name, const int64_t *dims, int ndim, char kind,
                       double scale, int32_t *id)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)dims[i];
    float *data = ot_malloc(n * sizeof *data);
    if (!data)
        return ot_err_set(b->err, OT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        data[i] = kind == 'k'   ? (float)(normal(&b->rng) * scale)
                  : kind == 'u' ? (float)((2.0 * uniform01(&b->rng) - 1.0) * scale)
                  : kind == '1' ? 1.0f
                                : 0.0f;
    ot_status st = ot_op_grad_const_f32(b->g, name, dims, ndim, data, id, b->err);
    ot_free(data);
    if (st == OT_OK)
        b->g->values[*id].flags |= OT_VAL_PARAM;
    return st;
}

static ot_status node(builder *b, const ot_op_desc *op, const char *name, const int32_t *in,
                      int n_in, const ot_attr *attrs, int n_attrs, int32_t *out)
{
    char oname[600];
    snprintf(oname, sizeof oname, "%s_output_0", name);
    const char *on[1] = { oname };
    return ot_op_grad_emit(b->g, op, 13, name, in, n_in, attrs, n_attrs, on, out, 1, b->err);
}

/* Conv (no bias) + BatchNormalization; `scope` like "/layer1/layer1.0",
   `prefix` like "layer1.0.", `conv`/`bn` like "conv1"/"bn1". */
static ot_status conv_bn(builder *b, int32_t x, int64_t ic, int64_t oc, int64_t k, int64_t stride,
                         const char *scope, const char *prefix, const char *conv, const char *bn,
                         int32_t *out)
{
    ot_status st = OT_OK;
    char name[512], pname[512];
    int32_t w, y, p[4];
    int64_t wd[4] = { oc, ic, k, k };
    snprintf(pname, sizeof pname, "%s%s.weight", prefix, conv);
    OT_TRY(param(b, pname, wd, 4, 'k', sqrt(2.0 / (double)(oc * k * k)), &w));
    int64_t pad = k / 2, ks[2] = { k, k }, pads[4] = { pad, pad, pad, pad }, str[2] = { stride, stride };
    int64_t dil[2] = { 1, 1 };
    ot_attr ca[5] = { ot_op_grad_attr_ints("dilations", dil, 2), ot_op_grad_attr_int("group", 1),
                      ot_op_grad_attr_ints("kernel_shape", ks, 2),
                      ot_op_grad_attr_ints("pads", pads, 4), ot_op_grad_attr_ints("strides", str, 2) };
    int32_t cin[2] = { x, w };
    snprintf(name, sizeof name, "%s/%s/Conv", scope, conv);
    OT_TRY(node(b, ot_op_table[OT_OP_CONV], name, cin, 2, ca, 5, &y));
    static const char *const bn_names[4] = { "weight", "bias", "running_mean", "running_var" };
    static const char kinds[4] = { '1', '0', '0', '1' };
    for (int i = 0; i < 4; i++) {
        snprintf(pname, sizeof pname, "%s%s.%s", prefix, bn, bn_names[i]);
        OT_TRY(param(b, pname, &oc, 1, kinds[i], 0, &p[i]));
        if (i >= 2)
            b->g->values[p[i]].flags &= ~(uint32_t)OT_VAL_PARAM; /* statistics */
    }
    ot_attr ba[2] = { ot_op_grad_attr_float("epsilon", 1e-5f),
                      ot_op_grad_attr_float("momentum", 0.9f) };
    int32_t bin[5] = { y, p[0], p[1], p[2], p[3] };
    snprintf(name, sizeof name, "%s/%s/BatchNormalization", scope, bn);
    OT_TRY(node(b, ot_op_table[OT_OP_BATCHNORM], name, bin, 5, ba, 2, out));
done:
    return st;
}

static ot_status relu(builder *b, int32_t x, const char *name, int32_t *out)
{
    return node(b, ot_op_table[OT_OP_RELU], name, &x, 1, NULL, 0, out);
}

static ot_status basic_block(builder *b, int32_t x, int64_t ic, int64_t oc, int64_t stride,
                             int layer, int block, int32_t *out)
{
    ot_status st = OT_OK;
    char scope[128], prefix[128], name[256];
    int32_t y, z, s;
    snprintf(scope, sizeof scope, "/layer%d/layer%d.%d", layer, layer, block);
    snprintf(prefix, sizeof prefix, "layer%d.%d.", layer, block);
    OT_TRY(conv_bn(b, x, ic, oc, 3, stride, scope, prefix, "conv1", "bn1", &y));
    snprintf(name, sizeof name, "%s/relu/Relu", scope);
    OT_TRY(relu(b, y, name, &y));
    OT_TRY(conv_bn(b, y, oc, oc, 3, 1, scope, prefix, "conv2", "bn2", &z));
    s = x;
    if (stride != 1 || ic != oc) {
        char dscope[160];
        snprintf(dscope, sizeof dscope, "%s/downsample", scope);
        OT_TRY(conv_bn(b, x, ic, oc, 1, stride, dscope, prefix, "downsample.0", "downsample.1",
                       &s));
    }
    int32_t ain[2] = { z, s };
    snprintf(name, sizeof name, "%s/Add", scope);
    OT_TRY(node(b, ot_op_table[OT_OP_ADD], name, ain, 2, NULL, 0, &y));
    snprintf(name, sizeof name, "%s/relu_1/Relu", scope);
    OT_TRY(relu(b, y, name, out));
done:
    return st;
}

static ot_status add_io(ot_graph *g, int32_t v, bool input, ot_err *err)
{
    ot_io **arr = input ? &g->inputs : &g->outputs;
    int32_t *n = input ? &g->n_inputs : &g->n_outputs;
    ot_io *io = ot_arena_alloc(&g->arena, sizeof *io * (size_t)(*n + 1));
    if (!io)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    if (*n)
        memcpy(io, *arr, sizeof *io * (size_t)*n);
    io[*n].value = v;
    io[*n].info = (ot_blob){ 0 };
    *arr = io;
    (*n)++;
    g->values[v].flags |= input ? OT_VAL_INPUT : OT_VAL_OUTPUT;
    g->values[v].flags |= OT_VAL_SHAPE_DECLARED;
    return OT_OK;
}

ot_status ot_model_build(const ot_model_spec *spec, ot_graph **out, ot_err *err)
{
    ot_status st = OT_OK;
    *out = NULL;
    const int *blocks;
    static const int r18[4] = { 2, 2, 2, 2 }, r34[4] = { 3, 4, 6, 3 };
    if (!strcmp(spec->name, "resnet18"))
        blocks = r18;
    else if (!strcmp(spec->name, "resnet34"))
        blocks = r34;
    else
        return ot_err_set(err, OT_ERR_ARG, "no builder named '%s' (resnet18, resnet34)",
                          spec->name);
    if (spec->classes < 1)
        return ot_err_set(err, OT_ERR_ARG, "--classes must be at least 1");
    if (spec->image_size < 0 || spec->image_size == 1 || spec->image_size > 16384)
        return ot_err_set(err, OT_ERR_ARG, "image size %lld is out of range",
                          (long long)spec->image_size);
    ot_graph *g = ot_graph_new();
    if (!g)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    builder b = { .g = g, .rng = spec->seed ^ 0x5eed5eed5eedull, .err = err };
    g->ir_version = 8;
    g->opsets = ot_arena_alloc(&g->arena, sizeof *g->opsets);
    g->metadata = NULL;
    if (!g->opsets)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    g->opsets[0] = (ot_opset){ .domain = "", .version = 13 };
    g->n_opsets = 1;
    g->producer_name = "onnxtrain";
    g->producer_version = OT_VERSION_STRING;
    g->doc_string = "";
    g->graph_name = ot_arena_strdup(&g->arena, spec->name);

    int32_t x, y;
    OT_TRY(ot_graph_intern_value(g, "input", &x, err));
    ot_value *iv = &g->values[x];
    iv->dtype = OT_DTYPE_FLOAT;
    iv->ndim = 4;
    iv->dims[0] = OT_DIM_DYNAMIC;
    iv->dim_names[0] = "N";
    iv->dims[1] = 3;
    for (int d = 2; d < 4; d++) {
        iv->dims[d] = spec->image_size ? spec->image_size : OT_DIM_DYNAMIC;
        iv->dim_names[d] = spec->image_size ? NULL : (d == 2 ? "H" : "W");
    }
    OT_TRY(add_io(g, x, true, err));

    OT_TRY(conv_bn(&b, x, 3, 64, 7, 2, "", "", "conv1", "bn1", &y));
    /* conv1 is 7x7 with padding 3 (k / 2 already is 3) */
    OT_TRY(relu(&b, y, "/relu/Relu", &y));
    {
        int64_t ks[2] = { 3, 3 }, pads[4] = { 1, 1, 1, 1 }, str[2] = { 2, 2 };
        ot_attr ma[4] = { ot_op_grad_attr_int("ceil_mode", 0),
                          ot_op_grad_attr_ints("kernel_shape", ks, 2),
                          ot_op_grad_attr_ints("pads", pads, 4),
                          ot_op_grad_attr_ints("strides", str, 2) };
        OT_TRY(node(&b, ot_op_table[OT_OP_MAXPOOL], "/maxpool/MaxPool", &y, 1, ma, 4, &y));
    }
    int64_t ic = 64;
    for (int l = 0; l < 4; l++) {
        int64_t oc = 64 << l;
        for (int k = 0; k < blocks[l]; k++) {
            OT_TRY(basic_block(&b, y, ic, oc, k == 0 && l > 0 ? 2 : 1, l + 1, k, &y));
            ic = oc;
        }
    }
    OT_TRY(node(&b, ot_op_table[OT_OP_GLOBALAVGPOOL], "/avgpool/GlobalAveragePool", &y, 1, NULL,
                0, &y));
    {
        ot_attr fa[1] = { ot_op_grad_attr_int("axis", 1) };
        OT_TRY(node(&b, ot_op_table[OT_OP_FLATTEN], "/Flatten", &y, 1, fa, 1, &y));
    }
    {
        int32_t w, bias;
        int64_t wd[2] = { spec->classes, 512 };
        double bound = 1.0 / sqrt(512.0);
        OT_TRY(param(&b, "fc.weight", wd, 2, 'u', bound, &w));
        OT_TRY(param(&b, "fc.bias", &wd[0], 1, 'u', bound, &bias));
        ot_attr ga[3] = { ot_op_grad_attr_float("alpha", 1.0f), ot_op_grad_attr_float("beta", 1.0f),
                          ot_op_grad_attr_int("transB", 1) };
        int32_t gin[3] = { y, w, bias };
        const char *on[1] = { "logits" };
        OT_TRY(ot_op_grad_emit(g, ot_op_table[OT_OP_GEMM], 13, "/fc/Gemm", gin, 3, ga, 3, on, &y,
                               1, err));
    }
    OT_TRY(add_io(g, y, false, err));
    OT_TRY(ot_graph_sort(g, err));
    OT_TRY(ot_graph_infer_shapes(g, err));
    *out = g;
    g = NULL;
done:
    ot_graph_free(g);
    return st;
}
