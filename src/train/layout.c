/*
 * layout.c: NCHW or NHWC image inputs (see layout.h).
 */
#include <string.h>

#include "ops/ops.h"
#include "train/layout.h"

static const ot_image_layout NCHW = { .nhwc = false, .c = 1, .h = 2, .w = 3 };
static const ot_image_layout NHWC = { .nhwc = true, .c = 3, .h = 1, .w = 2 };

/* Whether node n transposes NHWC to NCHW. */
static bool to_nchw(const ot_node *n)
{
    size_t k = 0;
    const int64_t *perm = ot_node_attr_ints(n, "perm", &k);
    return ot_node_is(n, OT_OP_TRANSPOSE) && perm && k == 4 && perm[0] == 0 && perm[1] == 3 &&
           perm[2] == 1 && perm[3] == 2;
}

ot_image_layout ot_image_layout_find(const ot_graph *g, int32_t image)
{
    const ot_value *v = &g->values[image];
    if (v->ndim != 4)
        return NCHW;
    int users = 0;
    bool transposed = false;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] == image) {
                users++;
                transposed = k == 0 && to_nchw(n);
            }
    }
    if (users == 1 && transposed)
        return NHWC;
    bool last_c = v->dims[3] == 1 || v->dims[3] == 3;
    bool first_c = v->dims[1] == 1 || v->dims[1] == 3;
    return last_c && !first_c ? NHWC : NCHW;
}

int ot_image_channels(const ot_graph *g, int32_t image, const ot_image_layout *l, int def)
{
    const ot_value *v = &g->values[image];
    return v->ndim == 4 && v->dims[l->c] > 0 ? (int)v->dims[l->c] : def;
}

int64_t ot_image_side(const ot_graph *g, int32_t image, const ot_image_layout *l)
{
    const ot_value *v = &g->values[image];
    if (v->ndim == 4 && v->dims[l->h] > 0 && v->dims[l->h] == v->dims[l->w])
        return v->dims[l->h];
    return 0;
}

ot_tensor ot_image_tensor(const ot_image_layout *l, int n, int c, int s, void *data)
{
    ot_tensor t = { .dtype = OT_DTYPE_FLOAT, .ndim = 4, .data = data };
    t.dims[0] = n;
    t.dims[l->c] = c;
    t.dims[l->h] = s;
    t.dims[l->w] = s;
    t.bytes = (size_t)n * (size_t)c * (size_t)s * (size_t)s * sizeof(float);
    return t;
}

float *ot_image_batch(const ot_image_layout *l, float *nchw, float *tmp, int n, int c, int s)
{
    if (!l->nhwc)
        return nchw;
    size_t hw = (size_t)s * (size_t)s;
    for (int i = 0; i < n; i++) {
        const float *src = nchw + (size_t)i * (size_t)c * hw;
        float *dst = tmp + (size_t)i * (size_t)c * hw;
        for (size_t p = 0; p < hw; p++)
            for (int ch = 0; ch < c; ch++)
                dst[p * (size_t)c + (size_t)ch] = src[(size_t)ch * hw + p];
    }
    return tmp;
}
