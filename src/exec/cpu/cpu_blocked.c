/*
 * cpu_blocked.c: plain C loops that run on activations where oneDNN left
 * them (nChw16c, nChw8c, nhwc or nchw), for the ops around squeeze-excite
 * blocks and hard activations that oneDNN 2.6 has no fast primitive for:
 *
 *   Mul          X [N, C, spatial...] times S [N, C, 1...] (the excitation
 *                scale, and its gradient dY * S): oneDNN's binary takes
 *                that broadcast only in its reference implementation
 *   ReduceSumTo  [N, C, spatial...] summed to [N, C, 1...] or [1, C, 1...]
 *                (the gradient of that scale, of a per-channel bias), and
 *                the Mul whose product only it reads (dY * X) with it
 *   HardSigmoid, and UnaryGrad of HardSigmoid and HardSwish: element-wise,
 *                so any layout will do as long as every operand shares it
 *   SiLU's gradient  the Mul, Mul, SigmoidGrad and Sum that autodiff writes
 *                for y = x * Sigmoid(x) (EfficientNet's activation), one
 *                pass instead of four steps (the plain SigmoidGrad among
 *                them, with three reorders around it), the same bytes
 *
 * Without these the plain kernels would need each blocked activation
 * reordered to row-major and their results reordered back. The loops see
 * a value as [N, CB, S, b] (channel c = cb * b + j, S the product of the
 * spatial dims): b = 16 or 8 for the blocked layouts, b = C for nhwc
 * (CB = 1), b = 1 for nchw. Channels of the padding (C rounded up to a
 * multiple of b) are written as zeros. The arithmetic is the plain kernels'
 * (double, rounded once), except that the sums accumulate in double.
 *
 * Float32 only; any other layout (strided, offset, blocked on another dim)
 * stays with the plain kernels.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_dnnl_impl.h"

/* A value as [N, CB, S, b]; the kernels get it as a 5-D tensor
   {N, CB, S, b, C} (the location holds the padded layout). */
typedef struct chan_view {
    int64_t N, C, CB, S, b;
} chan_view;

/* The strides of a dense [N, CB, spatial..., b] layout (nhwc: channel
   stride 1), compared on the dims longer than 1. */
static bool dense_as(const dnnl_memory_desc_t *md, int64_t b, bool nhwc)
{
    const dnnl_dims_t *st = &md->format_desc.blocking.strides;
    int nd = md->ndims;
    int64_t want = b;
    for (int k = nd - 1; k >= 2; k--) {
        if (md->dims[k] > 1 && (*st)[k] != want)
            return false;
        want *= md->dims[k];
    }
    int64_t cb = md->padded_dims[1] / b;
    if (md->dims[1] > 1 && !nhwc && (*st)[1] != want)
        return false;
    if (md->dims[1] > 1 && nhwc && (*st)[1] != 1)
        return false;
    want *= nhwc ? 1 : cb;
    return md->dims[0] <= 1 || (*st)[0] == want;
}

static bool view_of(const dnnl_memory_desc_t *md, chan_view *v)
{
    int nd = md->ndims;
    if (md->format_kind != dnnl_blocked || md->data_type != dnnl_f32 || nd < 3 ||
        nd > 5 || md->offset0 != 0 || md->padded_dims[0] != md->dims[0])
        return false;
    int64_t S = 1;
    for (int k = 2; k < nd; k++) {
        if (md->padded_dims[k] != md->dims[k] || md->padded_offsets[k] != 0)
            return false;
        S *= md->dims[k];
    }
    const dnnl_blocking_desc_t *bk = &md->format_desc.blocking;
    int64_t C = md->dims[1], b;
    if (bk->inner_nblks == 0) {
        if (md->padded_dims[1] != C)
            return false;
        if (dense_as(md, 1, false))
            b = 1;
        else if (dense_as(md, C, true))
            b = C;
        else
            return false;
    } else if (bk->inner_nblks == 1 && bk->inner_idxs[0] == 1 && bk->inner_blks[0] > 1) {
        b = bk->inner_blks[0];
        if (md->padded_dims[1] % b || !dense_as(md, b, false))
            return false;
    } else {
        return false;
    }
    *v = (chan_view){ .N = md->dims[0], .C = C, .CB = md->padded_dims[1] / b, .S = S, .b = b };
    return true;
}

static ot_tensor view_tensor(const chan_view *v, const dnnl_memory_desc_t *md)
{
    ot_tensor t = { .dtype = OT_DTYPE_FLOAT, .ndim = 5 };
    t.dims[0] = v->N, t.dims[1] = v->CB, t.dims[2] = v->S, t.dims[3] = v->b, t.dims[4] = v->C;
    t.bytes = dnnl_memory_desc_get_size(md);
    return t;
}

static chan_view view_from(const ot_tensor *t)
{
    return (chan_view){ .N = t->dims[0], .CB = t->dims[1], .S = t->dims[2], .b = t->dims[3],
                        .C = t->dims[4] };
}

static ot_tensor plain_tensor(const ot_value *v)
{
    ot_tensor t = { .dtype = v->dtype, .ndim = v->ndim };
    memcpy(t.dims, v->dims, sizeof t.dims);
    t.bytes = ot_tensor_numel(&t) * sizeof(float);
    return t;
}

static ot_loc const_ptr(ot_loc l, ot_tensor *t)
{
    t->data = l.kind == OT_LOC_CONST ? (void *)(uintptr_t)l.ptr : NULL;
    return l;
}

/* The channels of block cb that exist (the rest is padding). */
static int64_t valid_in_block(const chan_view *v, int64_t cb)
{
    int64_t left = v->C - cb * v->b;
    return left < v->b ? left : v->b;
}

/* ------------------------------------------------------------------ Mul */

/* in: X (view), S (plain [N, C, 1...]); out: Y (view, X's layout) */
static ot_status scale_run(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                           ot_tensor *const *out, ot_err *err)
{
    (void)g, (void)n, (void)err;
    chan_view v = view_from(in[0]);
    const float *x = in[0]->data, *sc = in[1]->data;
    float *y = out[0]->data;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t i = 0; i < v.N; i++)
        for (int64_t cb = 0; cb < v.CB; cb++) {
            int64_t base = (i * v.CB + cb) * v.S * v.b, nv = valid_in_block(&v, cb);
            const float *s = sc + i * v.C + cb * v.b;
            if (v.b == 1) {
                double k = (double)s[0];
                for (int64_t p = 0; p < v.S; p++)
                    y[base + p] = (float)((double)x[base + p] * k);
                continue;
            }
            for (int64_t p = 0; p < v.S; p++) {
                const float *xp = x + base + p * v.b;
                float *yp = y + base + p * v.b;
#pragma omp simd
                for (int64_t j = 0; j < nv; j++)
                    yp[j] = (float)((double)xp[j] * (double)s[j]);
                for (int64_t j = nv; j < v.b; j++)
                    yp[j] = 0.0f;
            }
        }
    return OT_OK;
}

/* Mul of a full [N, C, spatial...] operand by one shaped [N, C, 1...] (same
   rank): the loop above on the full operand's layout. */
ot_status dn_blk_scale(ctx *c, bool *done, ot_err *err)
{
    ot_status st = OT_OK;
    const ot_graph *g = c->g;
    const ot_node *n = c->n;
    if (!ot_node_is(n, OT_OP_MUL) || n->n_in != 2 || n->in[0] == n->in[1])
        return OT_OK;
    int32_t a = n->in[0], s = n->in[1], yid = n->out[0];
    const ot_value *yv = &g->values[yid];
    if (!dn_is_f32(g, a) || !dn_is_f32(g, s) || !dn_is_f32(g, yid) || yv->ndim < 3 ||
        yv->ndim > 5 || dn_has_zero(yv))
        return OT_OK;
    for (int pass = 0; pass < 2; pass++, a = n->in[1], s = n->in[0]) {
        const ot_value *av = &g->values[a], *sv = &g->values[s];
        bool ok = av->ndim == yv->ndim && sv->ndim == yv->ndim;
        for (int k = 0; ok && k < yv->ndim; k++)
            ok = av->dims[k] == yv->dims[k] &&
                 sv->dims[k] == (k < 2 ? yv->dims[k] : 1);
        if (ok)
            break;
        if (pass == 1)
            return OT_OK;
    }
    dnnl_memory_desc_t amd;
    cpu_val_md(c->x, a, &amd);
    chan_view v;
    if (!view_of(&amd, &v))
        return OT_OK;
    ot_tensor tin[2] = { view_tensor(&v, &amd), plain_tensor(&g->values[s]) };
    ot_tensor tout = view_tensor(&v, &amd);
    ot_loc lin[2], lout;
    OT_TRY(cpu_val_as(c->x, a, &amd, &lin[0], err));
    OT_TRY(cpu_val_plain(c->x, s, &lin[1], err));
    const_ptr(lin[0], &tin[0]);
    const_ptr(lin[1], &tin[1]);
    OT_TRY(cpu_val_define(c->x, yid, &amd, &lout, err));
    OT_TRY(cpu_fn_step(c->x, n, "Mul(channel scale)", scale_run, 2, tin, lin, 1, &tout, &lout,
                       err));
    *done = true;
done:
    return st;
}

/* ---------------------------------------------------------- ReduceSumTo */

/* Sums x (times w, as float products, when w is not NULL) over the spatial
   positions of each sample and channel block in double, then writes them to
   y plain [N or 1, C] (the samples summed in double, in order, for 1). */
static ot_status chan_sums(const chan_view *v, const float *x, const float *w, float *y,
                           int64_t ny, ot_err *err)
{
    bool per_sample = ny == v->N * v->C;
    double *acc = calloc((size_t)(v->N * v->CB * v->b), sizeof *acc);
    if (!acc)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    const int64_t N = v->N, CB = v->CB, S = v->S, b = v->b;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t i = 0; i < N; i++)
        for (int64_t cb = 0; cb < CB; cb++) {
            int64_t base = (i * CB + cb) * S * b;
            double *a = acc + (i * CB + cb) * b;
            for (int64_t p = 0; p < S; p++) {
                const float *xp = x + base + p * b;
                if (w) {
                    const float *wp = w + base + p * b;
#pragma omp simd
                    for (int64_t j = 0; j < b; j++) {
                        float t = xp[j] * wp[j];
                        a[j] += (double)t;
                    }
                } else {
#pragma omp simd
                    for (int64_t j = 0; j < b; j++)
                        a[j] += (double)xp[j];
                }
            }
        }
    for (int64_t ch = 0; ch < v->C; ch++) {
        if (per_sample) {
            for (int64_t i = 0; i < N; i++)
                y[i * v->C + ch] = (float)acc[i * CB * b + ch];
        } else {
            double t = 0;
            for (int64_t i = 0; i < N; i++)
                t += acc[i * CB * b + ch];
            y[ch] = (float)t;
        }
    }
    free(acc);
    return OT_OK;
}

/* in: X (view); out: Y plain [N or 1, C] */
static ot_status sum_run(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                         ot_tensor *const *out, ot_err *err)
{
    (void)g, (void)n;
    chan_view v = view_from(in[0]);
    return chan_sums(&v, in[0]->data, NULL, out[0]->data, ot_tensor_numel(out[0]), err);
}

/* in: A, B (the same view); out: Y plain [N or 1, C] */
static ot_status mul_sum_run(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                             ot_tensor *const *out, ot_err *err)
{
    (void)g, (void)n;
    chan_view v = view_from(in[0]);
    return chan_sums(&v, in[0]->data, in[1]->data, out[0]->data, ot_tensor_numel(out[0]), err);
}

/* Whether values a and b are both float and of the same dims. */
static bool same_dims(const ot_graph *g, int32_t a, int32_t b)
{
    return dn_is_f32(g, a) && dn_is_f32(g, b) && ot_value_same_dims(&g->values[a], &g->values[b]);
}

/* ReduceSumTo's output yid (no axis) from xid [N, C, spatial...]: the same
   rank, every spatial dim 1 and the batch dim N or 1. */
static bool sums_to_channels(const ot_graph *g, const ot_node *n, int32_t xid, int32_t yid)
{
    if (ot_node_find_attr(n, "axis") || !dn_is_f32(g, xid) || !dn_is_f32(g, yid))
        return false;
    const ot_value *xv = &g->values[xid], *yv = &g->values[yid];
    if (xv->ndim != yv->ndim || xv->ndim < 3 || dn_has_zero(xv) ||
        (yv->dims[0] != xv->dims[0] && yv->dims[0] != 1) || yv->dims[1] != xv->dims[1])
        return false;
    for (int k = 2; k < yv->ndim; k++)
        if (yv->dims[k] != 1)
            return false;
    return true;
}

/* A Mul of two operands of one shape whose product only a ReduceSumTo to
   [N or 1, C, 1...] reads (the squeeze-excite scale's gradient, dY * X
   summed over H and W): one loop that sums the float products as the
   ReduceSumTo step sums the Mul's output (the same bytes), without writing
   the product. Only with fusion on. */
ot_status dn_blk_mul_sum_to(ctx *c, bool *done, ot_err *err)
{
    ot_status st = OT_OK;
    const ot_graph *g = c->g;
    const ot_node *n = c->n;
    if (!ot_node_is(n, OT_OP_MUL) || n->n_in != 2 || n->n_out != 1)
        return OT_OK;
    int32_t a = n->in[0], b = n->in[1], t = n->out[0];
    int32_t r = dn_sole_consumer(c, t, c->node_id);
    if (r < 0 || c->cs->skip[r] || !ot_node_is(&g->nodes[r], OT_OP_REDUCE_SUM_TO) ||
        g->nodes[r].in[0] != t || g->nodes[r].n_out < 1)
        return OT_OK;
    int32_t yid = g->nodes[r].out[0];
    if (!sums_to_channels(g, &g->nodes[r], t, yid) || !same_dims(g, a, t) || !same_dims(g, b, t))
        return OT_OK;
    if (c->x->state_out && c->x->state_out[yid] >= 0)
        return OT_OK;
    dnnl_memory_desc_t md;
    cpu_val_md(c->x, a, &md);
    chan_view v;
    /* a row-major operand is the plain kernels' (as the ReduceSumTo alone) */
    if (!c->cs->vals[a].has_md || !view_of(&md, &v))
        return OT_OK;
    ot_tensor tin[2] = { view_tensor(&v, &md), view_tensor(&v, &md) };
    ot_tensor tout = plain_tensor(&g->values[yid]);
    ot_loc lin[2], lout;
    OT_TRY(cpu_val_as(c->x, a, &md, &lin[0], err));
    OT_TRY(cpu_val_as(c->x, b, &md, &lin[1], err));
    const_ptr(lin[0], &tin[0]);
    const_ptr(lin[1], &tin[1]);
    OT_TRY(cpu_val_define(c->x, yid, NULL, &lout, err));
    OT_TRY(cpu_fn_step(c->x, n, "Mul+ReduceSumTo(channels)", mul_sum_run, 2, tin, lin, 1, &tout,
                       &lout, err));
    c->cs->skip[r] = 1;
    *done = true;
done:
    return st;
}

/* ReduceSumTo (no axis) of [N, C, spatial...] to the same rank with every
   spatial dim 1 and the batch dim N or 1. */
ot_status dn_blk_sum_to(ctx *c, bool *done, ot_err *err)
{
    ot_status st = OT_OK;
    const ot_graph *g = c->g;
    const ot_node *n = c->n;
    int32_t xid = n->in[0], yid = n->out[0];
    if (!sums_to_channels(g, n, xid, yid))
        return OT_OK;
    const ot_value *yv = &g->values[yid];
    dnnl_memory_desc_t xmd;
    cpu_val_md(c->x, xid, &xmd);
    chan_view v;
    /* a row-major input is the plain kernel's */
    if (!c->cs->vals[xid].has_md || !view_of(&xmd, &v))
        return OT_OK;
    ot_tensor tin = view_tensor(&v, &xmd), tout = plain_tensor(yv);
    ot_loc lin, lout;
    OT_TRY(cpu_val_as(c->x, xid, &xmd, &lin, err));
    const_ptr(lin, &tin);
    OT_TRY(cpu_val_define(c->x, yid, NULL, &lout, err));
    OT_TRY(cpu_fn_step(c->x, n, "ReduceSumTo(channels)", sum_run, 1, &tin, &lin, 1, &tout, &lout,
                       err));
    *done = true;
done:
    return st;
}

/* ------------------------------------------------------------- eltwise */

typedef enum { E_HARDSIGMOID, E_HARDSIGMOID_GRAD, E_HARDSWISH_GRAD } elt_kind;

static double hard_sigmoid(double x, double alpha, double beta)
{
    double v = alpha * x + beta;
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

static elt_kind elt_of(const ot_node *n)
{
    if (ot_node_is(n, OT_OP_HARDSIGMOID))
        return E_HARDSIGMOID;
    return strcmp(ot_node_attr_string(n, "op", ""), "HardSwish") == 0 ? E_HARDSWISH_GRAD
                                                                      : E_HARDSIGMOID_GRAD;
}

/* in: X (HardSigmoid) or dY, X (the gradients), all as the view; out: like them */
static ot_status elt_run(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                         ot_tensor *const *out, ot_err *err)
{
    (void)g, (void)err;
    chan_view v = view_from(in[0]);
    elt_kind kind = elt_of(n);
    double alpha = (double)ot_node_attr_float(n, "alpha", 0.2f);
    double beta = (double)ot_node_attr_float(n, "beta", 0.5f);
    const float *a = in[0]->data, *x = kind == E_HARDSIGMOID ? a : in[1]->data;
    float *y = out[0]->data;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t i = 0; i < v.N; i++)
        for (int64_t cb = 0; cb < v.CB; cb++) {
            int64_t base = (i * v.CB + cb) * v.S * v.b, nv = valid_in_block(&v, cb);
            for (int64_t p = 0; p < v.S; p++) {
                int64_t o = base + p * v.b;
                for (int64_t j = 0; j < nv; j++) {
                    double xv = (double)x[o + j], r;
                    if (kind == E_HARDSIGMOID) {
                        r = hard_sigmoid(xv, alpha, beta);
                    } else if (kind == E_HARDSWISH_GRAD) {
                        r = (double)a[o + j] * (xv < -3 ? 0 : xv <= 3 ? xv / 3.0 + 0.5 : 1);
                    } else {
                        double t = alpha * xv + beta;
                        r = (double)a[o + j] * (t > 0 && t < 1 ? alpha : 0);
                    }
                    y[o + j] = (float)r;
                }
                for (int64_t j = nv; j < v.b; j++)
                    y[o + j] = 0.0f;
            }
        }
    return OT_OK;
}

/* HardSigmoid, and UnaryGrad of HardSigmoid or HardSwish, on an input in a
   layout of oneDNN's (a row-major one is the plain kernel's): the other
   operand is brought to the same layout, the result keeps it. */
ot_status dn_blk_eltwise(ctx *c, bool *done, ot_err *err)
{
    ot_status st = OT_OK;
    const ot_graph *g = c->g;
    const ot_node *n = c->n;
    bool grad = ot_node_is(n, OT_OP_UNARY_GRAD);
    int n_in = grad ? 2 : 1;
    if (n->n_in < n_in)
        return OT_OK;
    if (grad) {
        const char *op = ot_node_attr_string(n, "op", "");
        if (strcmp(op, "HardSigmoid") != 0 && strcmp(op, "HardSwish") != 0)
            return OT_OK;
    }
    int32_t yid = n->out[0];
    const ot_value *yv = &g->values[yid];
    if (!dn_is_f32(g, yid) || yv->ndim < 3 || yv->ndim > 5 || dn_has_zero(yv))
        return OT_OK;
    for (int k = 0; k < n_in; k++)
        if (!same_dims(g, n->in[k], yid))
            return OT_OK;
    dnnl_memory_desc_t md;
    cpu_val_md(c->x, n->in[0], &md);
    chan_view v;
    if (!c->cs->vals[n->in[0]].has_md || !view_of(&md, &v))
        return OT_OK;
    ot_tensor tin[2], tout = view_tensor(&v, &md);
    ot_loc lin[2], lout;
    for (int k = 0; k < n_in; k++) {
        tin[k] = view_tensor(&v, &md);
        OT_TRY(cpu_val_as(c->x, n->in[k], &md, &lin[k], err));
        const_ptr(lin[k], &tin[k]);
    }
    OT_TRY(cpu_val_define(c->x, yid, &md, &lout, err));
    OT_TRY(cpu_fn_step(c->x, n, grad ? "UnaryGrad(blocked)" : "HardSigmoid(blocked)", elt_run,
                       n_in, tin, lin, 1, &tout, &lout, err));
    *done = true;
done:
    return st;
}

/* ------------------------------------------------------- SiLU's gradient */

/* The backward of y = x * Sigmoid(x) (SiLU, as PyTorch exports it: Sigmoid
   then Mul) as autodiff writes it: Mul's rule, then Sigmoid's, and the two
   contributions to dX summed (grad_rules.c, autodiff.c):
       a = Mul(dY, s)   b = Mul(dY, x)   g = SigmoidGrad(b, s)   dX = Sum(a, g)
   with s = Sigmoid(x) and a, b and g each read only by the next node. */
typedef struct silu_nodes {
    int32_t mul_a, mul_b, sg, sum; /* node indices */
    int32_t dy, x, s, dx;          /* value ids */
} silu_nodes;

/* The other input of a two-input node that reads v; false when it has not
   two inputs or none of them is v. */
static bool other_input(const ot_node *n, int32_t v, int32_t *o)
{
    if (n->n_in != 2 || n->n_out != 1)
        return false;
    if (n->in[0] == v)
        *o = n->in[1];
    else if (n->in[1] == v)
        *o = n->in[0];
    else
        return false;
    return true;
}

/* The node that computes vid when it is an `op`, else -1. */
static int32_t made_by(const ot_graph *g, int32_t vid, ot_op_id op)
{
    if (vid < 0)
        return -1;
    int32_t p = g->values[vid].producer;
    return p >= 0 && ot_node_is(&g->nodes[p], op) ? p : -1;
}

/* The four nodes of a SiLU's gradient, found from the first of its two Muls
   (c->n); false when c->n is not that, when any of them is already taken,
   when an intermediate has another reader or is a graph output, or when the
   shapes differ (no broadcast). */
static bool silu_match(const ctx *c, silu_nodes *m)
{
    const ot_graph *g = c->g;
    const ot_node *n = c->n;
    if (!ot_node_is(n, OT_OP_MUL) || n->n_in != 2 || n->n_out != 1)
        return false;
    int32_t t = n->out[0], o;
    int32_t k = dn_sole_consumer(c, t, c->node_id);
    if (k < 0)
        return false;
    const ot_node *kn = &g->nodes[k];
    if (ot_node_is(kn, OT_OP_SIGMOID_GRAD) && kn->n_in == 2 && kn->in[0] == t)
        m->sg = k; /* c->n computes b */
    else if (ot_node_is(kn, OT_OP_SUM) && other_input(kn, t, &o))
        m->sg = made_by(g, o, OT_OP_SIGMOID_GRAD); /* c->n computes a */
    else
        return false;
    if (m->sg < 0)
        return false;
    const ot_node *sgn = &g->nodes[m->sg];
    if (sgn->n_in != 2 || sgn->n_out != 1)
        return false;
    int32_t b = sgn->in[0], gv = sgn->out[0], a;
    m->s = sgn->in[1];
    int32_t sig = made_by(g, m->s, OT_OP_SIGMOID);
    m->mul_b = made_by(g, b, OT_OP_MUL);
    if (sig < 0 || m->mul_b < 0 || dn_sole_consumer(c, b, m->mul_b) != m->sg)
        return false;
    m->sum = dn_sole_consumer(c, gv, m->sg);
    if (m->sum < 0 || !ot_node_is(&g->nodes[m->sum], OT_OP_SUM) ||
        !other_input(&g->nodes[m->sum], gv, &a))
        return false;
    m->mul_a = made_by(g, a, OT_OP_MUL);
    if (m->mul_a < 0 || m->mul_a == m->mul_b || dn_sole_consumer(c, a, m->mul_a) != m->sum)
        return false;
    m->x = g->nodes[sig].in[0];
    m->dx = g->nodes[m->sum].out[0];
    int32_t dy2;
    if (!other_input(&g->nodes[m->mul_a], m->s, &m->dy) ||
        !other_input(&g->nodes[m->mul_b], m->x, &dy2) || dy2 != m->dy || m->dy == m->x ||
        m->dy == m->s || m->x == m->s)
        return false;
    if (c->node_id != (m->mul_a < m->mul_b ? m->mul_a : m->mul_b))
        return false;
    const int32_t nodes[4] = { m->mul_a, m->mul_b, m->sg, m->sum };
    for (int i = 0; i < 4; i++)
        if (c->cs->skip[nodes[i]])
            return false;
    const int32_t vals[6] = { m->x, m->s, a, b, gv, m->dx };
    for (int i = 0; i < 6; i++)
        if (!same_dims(g, m->dy, vals[i]))
            return false;
    const int32_t ins[3] = { m->dy, m->x, m->s };
    for (int i = 0; i < 3; i++)
        if (c->cs->vals[ins[i]].loc.kind == OT_LOC_NONE)
            return false; /* not computed yet */
    return !(c->x->state_out && c->x->state_out[m->dx] >= 0);
}

/* in: dY, X, S = Sigmoid(X), all as the view; out: dX, the same view. The
   roundings of the four steps it replaces: a = dY * S and b = dY * X as
   float products (oneDNN's binary), g = b * S * (1 - S) in double rounded
   once (the plain SigmoidGrad), dX = a + g as a float sum (oneDNN's sum),
   so that dX has the same bytes. */
static ot_status silu_grad_run(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                               ot_tensor *const *out, ot_err *err)
{
    (void)g, (void)n, (void)err;
    chan_view v = view_from(in[0]);
    const float *dy = in[0]->data, *x = in[1]->data, *s = in[2]->data;
    float *dx = out[0]->data;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t i = 0; i < v.N; i++)
        for (int64_t cb = 0; cb < v.CB; cb++) {
            int64_t base = (i * v.CB + cb) * v.S * v.b, nv = valid_in_block(&v, cb);
            for (int64_t p = 0; p < v.S; p++) {
                int64_t o = base + p * v.b;
#pragma omp simd
                for (int64_t j = 0; j < nv; j++) {
                    float d = dy[o + j], sv = s[o + j];
                    float a = d * sv, b = d * x[o + j];
                    float gr = (float)((double)b * (double)sv * (1.0 - (double)sv));
                    dx[o + j] = a + gr;
                }
                for (int64_t j = nv; j < v.b; j++)
                    dx[o + j] = 0.0f;
            }
        }
    return OT_OK;
}

/* The four nodes of a SiLU's gradient as one loop, in dY's layout (the one
   the unfused Sum would have written). Only with fusion on: with
   opts.cpu.no_fusion they run as four steps, with the same result. */
ot_status dn_blk_silu_grad(ctx *c, bool *done, ot_err *err)
{
    ot_status st = OT_OK;
    silu_nodes m;
    if (!silu_match(c, &m))
        return OT_OK;
    const ot_graph *g = c->g;
    dnnl_memory_desc_t md;
    cpu_val_md(c->x, m.dy, &md);
    chan_view v;
    if (!view_of(&md, &v))
        return OT_OK;
    const int32_t ids[3] = { m.dy, m.x, m.s };
    ot_tensor tin[3], tout = view_tensor(&v, &md);
    ot_loc lin[3], lout;
    for (int k = 0; k < 3; k++) {
        tin[k] = view_tensor(&v, &md);
        OT_TRY(cpu_val_as(c->x, ids[k], &md, &lin[k], err));
        const_ptr(lin[k], &tin[k]);
    }
    OT_TRY(cpu_val_define(c->x, m.dx, &md, &lout, err));
    OT_TRY(cpu_fn_step(c->x, &g->nodes[m.sg], "SiLUGrad(blocked)", silu_grad_run, 3, tin, lin, 1,
                       &tout, &lout, err));
    c->cs->skip[m.mul_a] = c->cs->skip[m.mul_b] = c->cs->skip[m.sg] = c->cs->skip[m.sum] = 1;
    *done = true;
done:
    return st;
}

/* ----------------------------------------------- grouped convolutions */

/* v's dims in nwc, nhwc or ndhwc. */
static bool nxc_md(const ot_value *v, dnnl_memory_desc_t *md)
{
    dnnl_format_tag_t tag = v->ndim == 3   ? dnnl_nwc
                            : v->ndim == 4 ? dnnl_nhwc
                            : v->ndim == 5 ? dnnl_ndhwc
                                           : dnnl_format_tag_undef;
    if (tag == dnnl_format_tag_undef)
        return false;
    dnnl_dims_t dims;
    for (int i = 0; i < v->ndim; i++)
        dims[i] = v->dims[i];
    return dnnl_memory_desc_init_by_tag(md, v->ndim, dims, dnnl_f32, tag) == dnnl_success;
}

/* A grouped convolution (not depthwise) whose input is already nhwc keeps
   nhwc. Asking every convolution of a graph with groups of other than a
   multiple of 16 channels (RegNet's 8, ResNeXt's 4) for nhwc avoided the
   reorders around the grouped ones, but gave wrong gradients on two threads
   in RegNetY-400MF's last block (one-step parity, full mode), so it is not
   done. */
bool dn_blk_grouped_nxc(ctx *c, int32_t vid, int64_t group, int64_t in_channels,
                        const ot_value *av, dnnl_memory_desc_t *a, const ot_value *bv,
                        dnnl_memory_desc_t *b)
{
    if (c->cs->bf16)
        return false;
    dnnl_memory_desc_t cur, want, ma, mb;
    cpu_val_md(c->x, vid, &cur);
    bool nxc_input = group > 1 && group != in_channels && c->cs->vals[vid].has_md &&
                     nxc_md(&c->g->values[vid], &want) && dnnl_memory_desc_equal(&cur, &want);
    if (!nxc_input || !nxc_md(av, &ma) || !nxc_md(bv, &mb))
        return false;
    *a = ma;
    *b = mb;
    return true;
}

/* A depthwise convolution's filter gradient with a kernel other than 3x3:
   oneDNN 2.x's depthwise kernel for it takes 3x3 only, and for the others
   it falls back on an im2col GEMM per channel in nchw (ConvNeXt's 7x7:
   seconds per layer) or on the reference in blocked layouts, while its
   convolution kernel in nhwc handles them directly. 3x3 kernels keep the
   depthwise kernel. */
bool dn_blk_depthwise_grad_nxc(ctx *c, int64_t group, int64_t in_channels, const int64_t *kernel,
                               int nk, const ot_value *av, dnnl_memory_desc_t *a,
                               const ot_value *bv, dnnl_memory_desc_t *b)
{
    dnnl_memory_desc_t ma, mb;
    bool k3x3 = nk == 2 && kernel[0] == 3 && kernel[1] == 3;
    if (c->cs->bf16 || group < 2 || group != in_channels || k3x3 || !nxc_md(av, &ma) ||
        !nxc_md(bv, &mb))
        return false;
    *a = ma;
    *b = mb;
    return true;
}

bool dn_blk_is_ref(const_dnnl_primitive_desc_t pd)
{
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success ||
        !impl)
        return true;
    return strncmp(impl, "ref", 3) == 0;
}

/* ------------------------------------------------------------------ Sum */

/* in: the operands, one layout, each as a flat [elements] tensor (padding
   included: zeros add to zeros); out: their sum in that layout */
static ot_status sum_n_run(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                           ot_tensor *const *out, ot_err *err)
{
    (void)g, (void)err;
    int64_t len = out[0]->dims[0];
    float *y = out[0]->data;
    const float *a = in[0]->data, *b = in[1]->data;
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < len; i++)
        y[i] = a[i] + b[i];
    for (int k = 2; k < n->n_in; k++) {
        const float *x = in[k]->data;
#pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < len; i++)
            y[i] += x[i];
    }
    return OT_OK;
}

ot_status dn_blk_sum(ctx *c, const dnnl_memory_desc_t *md, bool *done, ot_err *err)
{
    ot_status st = OT_OK;
    const ot_node *n = c->n;
    int n_in = n->n_in;
    if (n_in < 2 || md->data_type != dnnl_f32)
        return OT_OK;
    ot_tensor *tin = ot_calloc((size_t)n_in + 1, sizeof *tin);
    ot_loc *lin = ot_calloc((size_t)n_in + 1, sizeof *lin);
    if (!tin || !lin)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    ot_tensor t = { .dtype = OT_DTYPE_FLOAT, .ndim = 1 };
    t.bytes = dnnl_memory_desc_get_size(md);
    t.dims[0] = (int64_t)(t.bytes / sizeof(float));
    for (int k = 0; k < n_in; k++) {
        tin[k] = t;
        OT_TRY(cpu_val_as(c->x, n->in[k], md, &lin[k], err));
        const_ptr(lin[k], &tin[k]);
    }
    ot_loc lout;
    OT_TRY(cpu_val_define(c->x, n->out[0], md, &lout, err));
    OT_TRY(cpu_fn_step(c->x, n, "Sum(loop)", sum_n_run, n_in, tin, lin, 1, &t, &lout, err));
    *done = true;
done:
    ot_free(tin);
    ot_free(lin);
    return st;
}
