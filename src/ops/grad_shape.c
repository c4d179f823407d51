/*
 * grad_shape.c: gradient rules of the shape and index ops.
 *
 * Pad (constant mode, pads >= 0): y = x with `begin[a]` values before and
 * `end[a]` after it along each axis a, so dX = dY[begin[a] : len - end[a]]
 * along each padded axis: one SliceAxis per padded axis, trimming end[a]
 * from dY's size at run time (not from the size the file declares, so the
 * graph trains at any image size). The padding value is a constant and gets
 * no gradient. Reflect and edge modes (whose border repeats x) and negative
 * pads (which crop) are OT_ERR_UNSUPPORTED.
 *
 * LRN: y_c = x_c s_c^-b, s_c = bias + (alpha / size) sum_{j in W(c)} x_j^2
 * (W(c): the channels from c - floor((size-1)/2) to c + ceil((size-1)/2)), so
 * dX_k = dY_k s_k^-b - (2 alpha b / size) x_k sum_{c: k in W(c)} dY_c x_c
 * s_c^(-b-1): the private op LRNGrad(dY, X) with LRN's attributes.
 */
#include <stdio.h>
#include <string.h>

#include "ops/grad_shape.h"
#include "ops/grad_util.h"
#include "ops/op_util.h"

#define NAME_MAX_ 512

/* The values of constant integer input i (1-D), or false. */
static bool const_ints(const ot_graph *g, const ot_node *n, int i, int64_t *vals, int max,
                       int *count)
{
    bool partial = false;
    if (i >= n->n_in || n->in[i] < 0)
        return false;
    const ot_tensor *t = ot_op_ints(g, n->in[i], &partial);
    if (!t || partial || t->ndim > 1)
        return false;
    int64_t numel = ot_tensor_numel(t);
    if (numel > max)
        return false;
    for (int64_t k = 0; k < numel; k++)
        vals[k] = ot_tensor_get_i64(t, k);
    *count = (int)numel;
    return true;
}

ot_status ot_op_grad_lrn(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                         const bool *need_dx, ot_err *err)
{
    char name[NAME_MAX_], hint[NAME_MAX_];
    if (dy[0] < 0 || !need_dx[0])
        return OT_OK;
    const ot_node *n = &g->nodes[node];
    ot_attr as[4] = { ot_op_grad_attr_float("alpha", ot_node_attr_float(n, "alpha", 1e-4f)),
                      ot_op_grad_attr_float("beta", ot_node_attr_float(n, "beta", 0.75f)),
                      ot_op_grad_attr_float("bias", ot_node_attr_float(n, "bias", 1.0f)),
                      ot_op_grad_attr_int("size", ot_node_attr_int(n, "size", 1)) };
    int32_t in[2] = { dy[0], n->in[0] };
    snprintf(hint, sizeof hint, "grad/%s", g->values[n->in[0]].name);
    const char *names[1] = { hint };
    return ot_op_grad_emit(g, &ot_op_lrn_grad, 0,
                           ot_op_grad_node_name(g, node, NULL, name, sizeof name), in, 2, as, 4,
                           names, &dx[0], 1, err);
}

ot_status ot_op_grad_pad(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                         const bool *need_dx, ot_err *err)
{
    ot_status st = OT_OK;
    char name[NAME_MAX_], hint[NAME_MAX_], sfx[32];
    if (dy[0] < 0 || !need_dx[0])
        return OT_OK;
    const ot_node *n = &g->nodes[node];
    const char *mode = ot_node_attr_string(n, "mode", "constant");
    if (strcmp(mode, "constant") != 0)
        return ot_op_grad_unsupported(g, node, "a Pad in reflect or edge mode", err);
    int32_t x = n->in[0];
    int r = g->values[x].ndim;
    if (r < 1 || r > OT_MAX_DIMS)
        return ot_op_grad_unsupported(g, node, "a Pad of unknown rank", err);
    int64_t pads[2 * OT_MAX_DIMS], axes[OT_MAX_DIMS];
    int n_pads = 0, n_axes = r;
    for (int i = 0; i < r; i++)
        axes[i] = i;
    bool known;
    if (n->opset < 11) {
        size_t len = 0;
        const int64_t *p = ot_node_attr_ints(n, n->opset < 2 ? "paddings" : "pads", &len);
        known = p && len <= 2 * OT_MAX_DIMS;
        if (known) {
            memcpy(pads, p, len * sizeof *p);
            n_pads = (int)len;
        }
    } else {
        known = const_ints(g, n, 1, pads, 2 * OT_MAX_DIMS, &n_pads);
        if (n->n_in > 3 && n->in[3] >= 0)
            known = known && const_ints(g, n, 3, axes, OT_MAX_DIMS, &n_axes);
    }
    if (!known || n_pads != 2 * n_axes)
        return ot_op_grad_unsupported(g, node, "a Pad whose pads are not constant", err);
    int32_t cur = dy[0];
    for (int i = 0; i < n_axes; i++) {
        int a;
        if (!ot_op_axis(axes[i], r, &a))
            return ot_op_grad_unsupported(g, node, "a Pad axis out of range", err);
        int64_t begin = pads[i], end = pads[i + n_axes];
        if (begin < 0 || end < 0)
            return ot_op_grad_unsupported(g, node, "a Pad with negative pads (a crop)", err);
        if (begin == 0 && end == 0)
            continue;
        ot_attr as[3] = { ot_op_grad_attr_int("axis", a), ot_op_grad_attr_int("start", begin),
                          ot_op_grad_attr_int("trim", end) };
        snprintf(sfx, sizeof sfx, "%d", a);
        snprintf(hint, sizeof hint, "grad/%s", g->values[x].name);
        int32_t out;
        OT_TRY(ot_op_grad_emit(g, &ot_op_slice_axis, 0,
                               ot_op_grad_node_name(g, node, sfx, name, sizeof name), &cur, 1, as,
                               3, (const char *const[]){ hint }, &out, 1, err));
        cur = out;
    }
    dx[0] = cur;
done:
    return st;
}
