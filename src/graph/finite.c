/*
 * finite.c: finds NaN and infinity in the tensors a model computes with as
 * weights: parameters, BatchNormalization statistics and optimizer state.
 *
 * A non-finite weight does not always show in the outputs: a NaN convolution
 * weight followed by a fused ReLU comes out as 0 (oneDNN's post-op takes
 * max(x, 0), which is 0 for NaN; PyTorch keeps the NaN), so a network whose
 * frozen layers are all NaN still runs and trains its head at chance. Hence
 * one pass over those tensors when a model is loaded, instead of unfusing.
 *
 * Deliberately not checked: other constants (Clip bounds, masks, Pad and
 * Where values, Constant nodes), which may be infinite on purpose.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "graph.h"

/* The inputs of op `type` that hold weights: bit i set for input i. */
static unsigned weight_inputs(const char *type)
{
    static const struct {
        const char *type;
        unsigned mask;
    } rows[] = {
        { "Conv", 0x6 },                  /* W, B                         */
        { "ConvTranspose", 0x6 },         /* W, B                         */
        { "Gemm", 0x7 },                  /* A, B, C when initializers    */
        { "MatMul", 0x3 },                /* either side                  */
        { "BatchNormalization", 0x1e },   /* scale, B, mean, var          */
        { "InstanceNormalization", 0x6 }, /* scale, B                     */
        { "LayerNormalization", 0x6 },    /* scale, B                     */
        { "GroupNormalization", 0x6 },    /* scale, bias                  */
        { "PRelu", 0x2 },                 /* slope                        */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (!strcmp(rows[i].type, type))
            return rows[i].mask;
    return 0;
}

static bool is_float(ot_dtype t)
{
    return t == OT_DTYPE_FLOAT || t == OT_DTYPE_FLOAT16 || t == OT_DTYPE_BFLOAT16 ||
           t == OT_DTYPE_DOUBLE;
}

/* Index of the first element of t that is NaN or infinite, or -1. */
static int64_t first_nonfinite(const ot_tensor *t, double *value)
{
    size_t n = t->bytes / ot_dtype_size(t->dtype);
    if (!t->data)
        return -1;
    for (size_t i = 0; i < n; i++) {
        double x;
        switch (t->dtype) {
        case OT_DTYPE_FLOAT: {
            float f;
            memcpy(&f, (const char *)t->data + i * sizeof f, sizeof f);
            x = (double)f;
            break;
        }
        case OT_DTYPE_DOUBLE:
            memcpy(&x, (const char *)t->data + i * sizeof x, sizeof x);
            break;
        default: {
            uint16_t h;
            memcpy(&h, (const char *)t->data + i * sizeof h, sizeof h);
            x = (double)(t->dtype == OT_DTYPE_FLOAT16 ? ot_f16_to_f32(h) : ot_bf16_to_f32(h));
            break;
        }
        }
        if (!isfinite(x)) {
            *value = x;
            return (int64_t)i;
        }
    }
    return -1;
}

/* The 1-D constant of an Add whose other input a MatMul produces: the bias of
   a MatMul+Add layer (value id, or -1). */
static int32_t matmul_bias(const ot_graph *g, const ot_node *n)
{
    if (strcmp(n->op_type, "Add") || n->n_in != 2 || n->in[0] < 0 || n->in[1] < 0)
        return -1;
    for (int k = 0; k < 2; k++) {
        const ot_value *b = &g->values[n->in[k]], *x = &g->values[n->in[1 - k]];
        if ((b->flags & OT_VAL_INIT) && b->data.ndim == 1 && x->producer >= 0 &&
            g->nodes[x->producer].op_type && !strcmp(g->nodes[x->producer].op_type, "MatMul"))
            return n->in[k];
    }
    return -1;
}

static ot_status check_value(const ot_graph *g, int32_t id, const ot_node *user, int slot,
                             ot_err *err)
{
    const ot_value *v = &g->values[id];
    if (!(v->flags & OT_VAL_INIT) || (v->flags & OT_VAL_OPAQUE) || !is_float(v->data.dtype))
        return OT_OK;
    double x = 0;
    int64_t at = first_nonfinite(&v->data, &x);
    if (at < 0)
        return OT_OK;
    char where[160] = "";
    if (user)
        snprintf(where, sizeof where, " (input %d of node '%s' (%s))", slot, user->name,
                 user->op_type);
    return ot_err_set(err, OT_ERR_MODEL,
                      "tensor '%s'%s holds %s at element %lld of %lld; weights, BatchNorm "
                      "statistics and optimizer state must be finite",
                      v->name, where, isnan(x) ? "NaN" : x > 0 ? "+Inf" : "-Inf", (long long)at,
                      (long long)(v->data.bytes / ot_dtype_size(v->data.dtype)));
}

ot_status ot_graph_check_finite(const ot_graph *g, ot_err *err)
{
    ot_status st = OT_OK;
    /* each tensor once, though several nodes may use it */
    bool *seen = ot_calloc((size_t)g->n_values + 1, sizeof *seen);
    if (!seen)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        if (!n->op_type || (n->domain && *n->domain))
            continue;
        unsigned mask = weight_inputs(n->op_type);
        for (int k = 0; k < n->n_in && k < 32; k++) {
            int32_t id = n->in[k];
            if (id < 0 || !(mask >> k & 1u) || seen[id])
                continue;
            seen[id] = true;
            OT_TRY(check_value(g, id, n, k, err));
        }
        int32_t b = matmul_bias(g, n);
        if (b >= 0 && !seen[b]) {
            seen[b] = true;
            OT_TRY(check_value(g, b, n, n->in[0] == b ? 0 : 1, err));
        }
    }
    /* what training changes, wherever it is used, and optimizer state */
    for (int32_t i = 0; i < g->n_inits; i++) {
        int32_t id = g->inits[i];
        const ot_value *v = &g->values[id];
        if (seen[id])
            continue;
        if ((v->flags & (OT_VAL_TRAINABLE | OT_VAL_STATE)) ||
            !strncmp(v->name, "onnxtrain.optim.", 16)) {
            seen[id] = true;
            OT_TRY(check_value(g, id, NULL, 0, err));
        }
    }
done:
    ot_free(seen);
    return st;
}
