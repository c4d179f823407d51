/*
 * ref_normalize.c: LayerNormalization, InstanceNormalization and
 * GroupNormalization (src/ops/norm_ops.c) as plain C loops, and their
 * backward op NormGrad.
 *
 * All three normalise rows of M elements: LayerNormalization the dims from
 * `axis` on, InstanceNormalization each (n, c), GroupNormalization each
 * (n, group). Statistics are computed in double (two passes: mean, then the
 * biased variance); float types only. The scale and bias index of an element
 * is its position in the row (LayerNormalization), its channel
 * (InstanceNormalization, GroupNormalization with per-channel parameters) or
 * its group (GroupNormalization with per-group parameters).
 *
 * Reference: https://onnx.ai/onnx/operators/onnx__LayerNormalization.html,
 * onnx__InstanceNormalization.html, onnx__GroupNormalization.html
 */
#include "exec/cpu/ref_impl.h"

typedef enum { N_LAYER, N_INSTANCE, N_GROUP } norm_kind;

typedef struct norm_geom {
    norm_kind kind;
    int64_t rows, M;   /* rows of M elements                                 */
    int64_t C, G, S;   /* channels, groups, spatial size (instance, group)   */
    bool per_channel;  /* group norm: scale per channel (else per group)     */
} norm_geom;

static bool norm_kind_of(const char *type, norm_kind *k)
{
    if (!strcmp(type, "LayerNormalization"))
        *k = N_LAYER;
    else if (!strcmp(type, "InstanceNormalization"))
        *k = N_INSTANCE;
    else if (!strcmp(type, "GroupNormalization"))
        *k = N_GROUP;
    else
        return false;
    return true;
}

/* The rows of x and the parameter layout; false when scale (n_param
   elements) does not fit. axis: LayerNormalization's, non-negative. */
static bool norm_geom_of(norm_kind kind, const ot_tensor *x, int64_t axis, int64_t groups,
                         int64_t n_param, norm_geom *q)
{
    q->kind = kind;
    q->per_channel = false;
    if (kind == N_LAYER) {
        if (axis < 0 || axis >= x->ndim)
            return false;
        q->rows = ot_ref_prod(x, 0, (int)axis);
        q->M = ot_ref_prod(x, (int)axis, x->ndim);
        return n_param == q->M;
    }
    if (x->ndim < 3)
        return false;
    q->C = x->dims[1];
    q->S = ot_ref_prod(x, 2, x->ndim);
    if (kind == N_INSTANCE) {
        q->G = q->C;
        q->rows = x->dims[0] * q->C;
        q->M = q->S;
        return n_param == q->C;
    }
    if (groups < 1 || q->C % groups != 0)
        return false;
    q->G = groups;
    q->rows = x->dims[0] * groups;
    q->M = q->C / groups * q->S;
    q->per_channel = n_param == q->C && q->C != groups;
    return n_param == q->C || n_param == groups;
}

/* The scale/bias index of element m of row o. */
static int64_t param_at(const norm_geom *q, int64_t o, int64_t m)
{
    switch (q->kind) {
    case N_LAYER: return m;
    case N_INSTANCE: return o % q->C;
    case N_GROUP: return q->per_channel ? (o % q->G) * (q->C / q->G) + m / q->S : o % q->G;
    }
    return 0;
}

/* Mean and 1/sqrt(var + eps) of row o. */
static void row_stats(const ot_tensor *x, const norm_geom *q, int64_t o, double eps, double *mean,
                      double *inv_std)
{
    double s = 0, v = 0;
    int64_t base = o * q->M;
    for (int64_t m = 0; m < q->M; m++)
        s += ot_ref_ld(x->dtype, x->data, base + m);
    *mean = q->M ? s / (double)q->M : 0;
    for (int64_t m = 0; m < q->M; m++) {
        double d = ot_ref_ld(x->dtype, x->data, base + m) - *mean;
        v += d * d;
    }
    *inv_std = 1.0 / sqrt((q->M ? v / (double)q->M : 0) + eps);
}

static int64_t norm_axis(const ot_node *n, const ot_tensor *x)
{
    int64_t a = ot_node_attr_int(n, "axis", -1);
    return a < 0 ? a + x->ndim : a;
}

static bool float_like(const ot_tensor *t, int64_t numel)
{
    return t && ot_ref_is_float(t->dtype) && ot_tensor_numel(t) == numel;
}

bool ot_ref_normalize_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                               const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *x = ot_ref_in(n, in, 0), *scale = ot_ref_in(n, in, 1);
    const ot_tensor *b = ot_ref_in(n, in, 2), *y = ot_ref_cout(n, out, 0);
    norm_kind kind;
    norm_geom q;
    if (!x || !scale || !y || !ot_ref_is_float(x->dtype) || y->dtype != x->dtype ||
        ot_tensor_numel(y) != ot_tensor_numel(x) || !norm_kind_of(n->op_type, &kind)) {
        *why = "normalization: float X, Y like X, a scale";
        return false;
    }
    if (!norm_geom_of(kind, x, norm_axis(n, x), ot_node_attr_int(n, "num_groups", 1),
                      ot_tensor_numel(scale), &q) ||
        !float_like(scale, ot_tensor_numel(scale)) ||
        (b && !float_like(b, ot_tensor_numel(scale)))) {
        *why = "normalization: scale and bias must have one element per normalized position, "
               "channel or group";
        return false;
    }
    for (int i = 1; i < 3; i++)
        if (ot_ref_cout(n, out, i) && !float_like(ot_ref_cout(n, out, i), q.rows)) {
            *why = "LayerNormalization: Mean and InvStdDev must have one element per row";
            return false;
        }
    return true;
}

/* X, scale [, B]  ->  Y [, Mean, InvStdDev] */
ot_status ot_ref_normalize(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                           ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_normalize_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s: %s", n->op_type, why);
    const ot_tensor *x = in[0], *scale = in[1], *b = ot_ref_in(n, in, 2);
    ot_tensor *y = out[0], *mo = ot_ref_out(n, out, 1), *ro = ot_ref_out(n, out, 2);
    norm_kind kind;
    norm_geom q;
    norm_kind_of(n->op_type, &kind);
    norm_geom_of(kind, x, norm_axis(n, x), ot_node_attr_int(n, "num_groups", 1),
                 ot_tensor_numel(scale), &q);
    double eps = (double)ot_node_attr_float(n, "epsilon", 1e-5f);
    for (int64_t o = 0; o < q.rows; o++) {
        double mean, r;
        row_stats(x, &q, o, eps, &mean, &r);
        if (mo)
            ot_ref_st(mo->dtype, mo->data, o, mean);
        if (ro)
            ot_ref_st(ro->dtype, ro->data, o, r);
        for (int64_t m = 0; m < q.M; m++) {
            int64_t i = o * q.M + m, p = param_at(&q, o, m);
            double v = (ot_ref_ld(x->dtype, x->data, i) - mean) * r *
                           ot_ref_ld(scale->dtype, scale->data, p) +
                       (b ? ot_ref_ld(b->dtype, b->data, p) : 0);
            ot_ref_st(y->dtype, y->data, i, v);
        }
    }
    return OT_OK;
}

/* NormGrad: dY, X, scale [, B]  ->  dX, dScale, dB (see norm_ops.c) */
bool ot_ref_norm_grad_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                               const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *dy = ot_ref_in(n, in, 0), *x = ot_ref_in(n, in, 1);
    const ot_tensor *scale = ot_ref_in(n, in, 2);
    norm_kind kind;
    norm_geom q;
    if (!dy || !x || !scale || !ot_ref_is_float(x->dtype) ||
        !float_like(dy, ot_tensor_numel(x)) ||
        !norm_kind_of(ot_node_attr_string(n, "mode", ""), &kind) ||
        !norm_geom_of(kind, x, ot_node_attr_int(n, "axis", 1),
                      ot_node_attr_int(n, "num_groups", 1), ot_tensor_numel(scale), &q) ||
        !float_like(scale, ot_tensor_numel(scale))) {
        *why = "NormGrad: float dY like X, a scale that fits the mode";
        return false;
    }
    int64_t want[3] = { ot_tensor_numel(x), ot_tensor_numel(scale), ot_tensor_numel(scale) };
    for (int i = 0; i < 3; i++)
        if (ot_ref_cout(n, out, i) && !float_like(ot_ref_cout(n, out, i), want[i])) {
            *why = "NormGrad: dX like X, dScale and dB like the scale";
            return false;
        }
    return true;
}

ot_status ot_ref_norm_grad(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                           ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_norm_grad_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *dy = in[0], *x = in[1], *scale = in[2];
    ot_tensor *dx = ot_ref_out(n, out, 0), *ds = ot_ref_out(n, out, 1), *db = ot_ref_out(n, out, 2);
    norm_kind kind;
    norm_geom q;
    norm_kind_of(ot_node_attr_string(n, "mode", ""), &kind);
    norm_geom_of(kind, x, ot_node_attr_int(n, "axis", 1), ot_node_attr_int(n, "num_groups", 1),
                 ot_tensor_numel(scale), &q);
    double eps = (double)ot_node_attr_float(n, "epsilon", 1e-5f);
    int64_t np = ot_tensor_numel(scale);
    for (int64_t p = 0; p < np; p++) {
        if (ds)
            ot_ref_st(ds->dtype, ds->data, p, 0);
        if (db)
            ot_ref_st(db->dtype, db->data, p, 0);
    }
    for (int64_t o = 0; o < q.rows; o++) {
        double mean, r, sg = 0, sgx = 0;
        row_stats(x, &q, o, eps, &mean, &r);
        for (int64_t m = 0; m < q.M; m++) {
            int64_t i = o * q.M + m, p = param_at(&q, o, m);
            double gy = ot_ref_ld(dy->dtype, dy->data, i);
            double xhat = (ot_ref_ld(x->dtype, x->data, i) - mean) * r;
            double gs = gy * ot_ref_ld(scale->dtype, scale->data, p);
            sg += gs;
            sgx += gs * xhat;
            if (ds)
                ot_ref_st(ds->dtype, ds->data, p, ot_ref_ld(ds->dtype, ds->data, p) + gy * xhat);
            if (db)
                ot_ref_st(db->dtype, db->data, p, ot_ref_ld(db->dtype, db->data, p) + gy);
        }
        if (!dx)
            continue;
        double M = (double)q.M;
        for (int64_t m = 0; m < q.M; m++) {
            int64_t i = o * q.M + m, p = param_at(&q, o, m);
            double xhat = (ot_ref_ld(x->dtype, x->data, i) - mean) * r;
            double gs = ot_ref_ld(dy->dtype, dy->data, i) * ot_ref_ld(scale->dtype, scale->data, p);
            ot_ref_st(dx->dtype, dx->data, i, r * (gs - sg / M - xhat * sgx / M));
        }
    }
    return OT_OK;
}
