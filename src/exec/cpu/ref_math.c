/*
 * ref_math.c: the math ops as plain C loops (src/ops/math_ops.c, reduce.c,
 * grad_math.c): the unary float ops (Sqrt, Reciprocal, Exp, Log, Tanh, Erf,
 * HardSigmoid, HardSwish, Elu, Selu, Softplus, Gelu), Pow, PRelu,
 * ReduceMean, ReduceSum, ReduceMax, ReduceL2, Einsum (any equation) and the
 * backward ops UnaryGrad, PReluGrad, ExtremumGrad and ReduceGrad. (Sub and
 * Div share Add's loops in ref_eltwise.c.)
 *
 * Everything is computed in double and stored in the output's dtype. The
 * unary ops and the backward ops take the float types; Pow any numeric base
 * and exponent (integer results truncated, as ONNX's reference casts numpy's
 * result); the reductions any numeric type but uint64.
 *
 * Reference: https://onnx.ai/onnx/operators/ (the page of each op)
 */
#include <stdint.h>

#include "exec/cpu/ref_impl.h"
#include "ops/einsum.h"
#include "ops/reduce.h"

#define SQRT_2 1.4142135623730951
#define SQRT_2_OVER_PI 0.7978845608028654
#define TWO_OVER_SQRT_PI 1.1283791670955126
#define INV_SQRT_2PI 0.3989422804014327

typedef enum {
    M_SQRT, M_RECIPROCAL, M_EXP, M_LOG, M_TANH, M_ERF, M_HARDSIGMOID, M_HARDSWISH, M_ELU,
    M_SELU, M_SOFTPLUS, M_GELU, M_GELU_TANH, M_POW, M_NONE
} math_kind;

typedef struct math_fn {
    math_kind kind;
    double alpha, beta, gamma;
} math_fn;

static const char *const kind_names[M_NONE] = {
    "Sqrt", "Reciprocal", "Exp", "Log", "Tanh", "Erf", "HardSigmoid", "HardSwish", "Elu",
    "Selu", "Softplus", "Gelu", "Gelu", "Pow",
};

/* The function a node applies: a forward op's, or UnaryGrad's `op`. */
static math_fn math_of(const ot_node *n)
{
    math_fn f = { .kind = M_NONE };
    const char *type = ot_node_is(n, OT_OP_UNARY_GRAD) ? ot_node_attr_string(n, "op", "")
                                                        : n->op_type;
    for (int k = 0; k < M_NONE; k++)
        if (!strcmp(type, kind_names[k])) {
            f.kind = (math_kind)k;
            break;
        }
    if (f.kind == M_GELU && !strcmp(ot_node_attr_string(n, "approximate", "none"), "tanh"))
        f.kind = M_GELU_TANH;
    double a_def = f.kind == M_HARDSIGMOID ? 0.2 : f.kind == M_SELU ? 1.67326319217681884765625
                                                                    : 1.0;
    f.alpha = (double)ot_node_attr_float(n, "alpha", (float)a_def);
    f.beta = (double)ot_node_attr_float(n, "beta", 0.5f);
    f.gamma = (double)ot_node_attr_float(n, "gamma", 1.05070102214813232421875f);
    return f;
}

static double hard_sigmoid(double x, double alpha, double beta)
{
    double v = alpha * x + beta;
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

static double apply(const math_fn *f, double x)
{
    switch (f->kind) {
    case M_SQRT: return sqrt(x);
    case M_RECIPROCAL: return 1.0 / x;
    case M_EXP: return exp(x);
    case M_LOG: return log(x);
    case M_TANH: return tanh(x);
    case M_ERF: return erf(x);
    case M_HARDSIGMOID: return hard_sigmoid(x, f->alpha, f->beta);
    case M_HARDSWISH: return x * hard_sigmoid(x, 1.0 / 6.0, 0.5);
    case M_ELU: return x > 0 ? x : f->alpha * expm1(x);
    case M_SELU: return f->gamma * (x > 0 ? x : f->alpha * expm1(x));
    case M_SOFTPLUS: return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
    case M_GELU: return 0.5 * x * (1.0 + erf(x / SQRT_2));
    case M_GELU_TANH:
        return 0.5 * x * (1.0 + tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
    case M_POW: return pow(x, f->alpha);
    case M_NONE: break;
    }
    return 0;
}

/* f'(x) */
static double derivative(const math_fn *f, double x)
{
    switch (f->kind) {
    case M_SQRT: return 0.5 / sqrt(x);
    case M_RECIPROCAL: return -1.0 / (x * x);
    case M_EXP: return exp(x);
    case M_LOG: return 1.0 / x;
    case M_TANH: {
        double t = tanh(x);
        return 1.0 - t * t;
    }
    case M_ERF: return TWO_OVER_SQRT_PI * exp(-x * x);
    case M_HARDSIGMOID: {
        double v = f->alpha * x + f->beta;
        return v > 0 && v < 1 ? f->alpha : 0;
    }
    case M_HARDSWISH: return x < -3 ? 0 : x <= 3 ? x / 3.0 + 0.5 : 1;
    case M_ELU: return x > 0 ? 1 : f->alpha * exp(x);
    case M_SELU: return f->gamma * (x > 0 ? 1 : f->alpha * exp(x));
    case M_SOFTPLUS: return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
    case M_GELU: return 0.5 * (1.0 + erf(x / SQRT_2)) + x * INV_SQRT_2PI * exp(-0.5 * x * x);
    case M_GELU_TANH: {
        double u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
        double t = tanh(u);
        return 0.5 * (1.0 + t) +
               0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x);
    }
    case M_POW: return f->alpha * pow(x, f->alpha - 1.0);
    case M_NONE: break;
    }
    return 0;
}

/* ------------------------------------------------------------ unary ops */

bool ot_ref_math_unary_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                                const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *x = ot_ref_in(n, in, 0), *y = ot_ref_cout(n, out, 0);
    if (!x || !y || y->dtype != x->dtype || ot_tensor_numel(y) != ot_tensor_numel(x)) {
        *why = "element-wise op: Y must be like X";
        return false;
    }
    if (!ot_ref_is_float(x->dtype)) {
        *why = "only float, double, float16 and bfloat16 are supported";
        return false;
    }
    if (math_of(n).kind == M_NONE) {
        *why = "not an element-wise math op";
        return false;
    }
    return true;
}

/* x  ->  y = f(x) */
ot_status ot_ref_math_unary(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                            ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_math_unary_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s: %s", n->op_type, why);
    math_fn f = math_of(n);
    const ot_tensor *x = in[0];
    ot_tensor *y = out[0];
    int64_t numel = ot_tensor_numel(x);
    if (x->dtype == OT_DTYPE_FLOAT) {
        const float *xs = x->data;
        float *ys = y->data;
#pragma omp parallel for schedule(static) if (numel >= OT_REF_PARALLEL_MIN)
        for (int64_t i = 0; i < numel; i++)
            ys[i] = (float)apply(&f, (double)xs[i]);
        return OT_OK;
    }
#pragma omp parallel for schedule(static) if (numel >= OT_REF_PARALLEL_MIN)
    for (int64_t i = 0; i < numel; i++)
        ot_ref_st(y->dtype, y->data, i, apply(&f, ot_ref_ld(x->dtype, x->data, i)));
    return OT_OK;
}

/* dY, X  ->  dX = dY * f'(X) */
bool ot_ref_unary_grad_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                                const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *dy = ot_ref_in(n, in, 0), *x = ot_ref_in(n, in, 1);
    const ot_tensor *dx = ot_ref_cout(n, out, 0);
    if (!dy || !x || !dx || ot_tensor_numel(dy) != ot_tensor_numel(x) ||
        ot_tensor_numel(dx) != ot_tensor_numel(x) || dx->dtype != dy->dtype) {
        *why = "UnaryGrad: dY, X and dX must have one shape";
        return false;
    }
    if (!ot_ref_is_float(dy->dtype) || !ot_ref_is_float(x->dtype)) {
        *why = "UnaryGrad: only float types are supported";
        return false;
    }
    if (math_of(n).kind == M_NONE) {
        *why = "UnaryGrad: unknown op";
        return false;
    }
    return true;
}

ot_status ot_ref_unary_grad(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                            ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_unary_grad_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    math_fn f = math_of(n);
    const ot_tensor *dy = in[0], *x = in[1];
    ot_tensor *dx = out[0];
    int64_t numel = ot_tensor_numel(x);
#pragma omp parallel for schedule(static) if (numel >= OT_REF_PARALLEL_MIN)
    for (int64_t i = 0; i < numel; i++)
        ot_ref_st(dx->dtype, dx->data, i,
                  ot_ref_ld(dy->dtype, dy->data, i) *
                      derivative(&f, ot_ref_ld(x->dtype, x->data, i)));
    return OT_OK;
}

/* ------------------------------------------------------------------ Pow */

/* Element strides of t placed at y's dims [off, off + t->ndim) (0 on
   broadcast dims); false when t does not broadcast to y so. */
static bool place_strides(const ot_tensor *t, const ot_tensor *y, int off, int64_t *s)
{
    int64_t stride = 1;
    if (off < 0 || off + t->ndim > y->ndim)
        return false;
    for (int i = y->ndim - 1; i >= 0; i--) {
        int j = i - off;
        if (j < 0 || j >= t->ndim) {
            s[i] = 0;
            continue;
        }
        if (t->dims[j] != 1 && t->dims[j] != y->dims[i])
            return false;
        s[i] = t->dims[j] == 1 ? 0 : stride;
        stride *= t->dims[j];
    }
    return true;
}

/* The same, right-aligned (numpy). */
static bool bcast_strides(const ot_tensor *t, const ot_tensor *y, int64_t *s)
{
    return place_strides(t, y, y->ndim - t->ndim, s);
}

static bool numeric(ot_dtype t) { return ot_ref_is_float(t) || ot_ref_is_int(t); }

bool ot_ref_pow_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                         const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *a = ot_ref_in(n, in, 0), *b = ot_ref_in(n, in, 1);
    const ot_tensor *y = ot_ref_cout(n, out, 0);
    int64_t s[OT_MAX_DIMS];
    if (!a || !b || !y || y->dtype != a->dtype) {
        *why = "Pow: Y must be of X's dtype";
        return false;
    }
    if (!numeric(a->dtype) || !(numeric(b->dtype) || b->dtype == OT_DTYPE_UINT64)) {
        *why = "Pow: numeric types only (uint64 as the exponent only)";
        return false;
    }
    if (n->opset < 7 && ot_node_attr_int(n, "broadcast", 0) != 0 && b->ndim != a->ndim &&
        ot_node_find_attr(n, "axis")) {
        *why = "Pow: legacy broadcasting with an axis is not supported";
        return false;
    }
    if (!bcast_strides(a, y, s) || !bcast_strides(b, y, s)) {
        *why = "Pow: the inputs do not broadcast to the output's shape";
        return false;
    }
    return true;
}

/* X, Y (broadcast)  ->  Z = X ^ Y */
ot_status ot_ref_pow(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                     ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_pow_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *a = in[0], *b = in[1];
    ot_tensor *y = out[0];
    int64_t sa[OT_MAX_DIMS], sb[OT_MAX_DIMS], idx[OT_MAX_DIMS] = { 0 }, ia = 0, ib = 0;
    bcast_strides(a, y, sa);
    bcast_strides(b, y, sb);
    int64_t numel = ot_tensor_numel(y);
    for (int64_t i = 0; i < numel; i++) {
        ot_ref_st(y->dtype, y->data, i,
                  pow(ot_ref_ld(a->dtype, a->data, ia), ot_ref_ld(b->dtype, b->data, ib)));
        for (int d = y->ndim - 1; d >= 0; d--) { /* odometer */
            idx[d]++;
            ia += sa[d];
            ib += sb[d];
            if (idx[d] < y->dims[d])
                break;
            ia -= sa[d] * y->dims[d];
            ib -= sb[d] * y->dims[d];
            idx[d] = 0;
        }
    }
    return OT_OK;
}

/* ----------------------------------------------------------- reductions */

/* The reduction of X over the masked dims: X's strides split into kept and
   reduced dims, both walked in row-major order. */
typedef struct red_walk {
    int nk, nr;
    int64_t kd[OT_MAX_DIMS], ks[OT_MAX_DIMS]; /* kept dims and X strides      */
    int64_t rd[OT_MAX_DIMS], rs[OT_MAX_DIMS]; /* reduced dims and X strides   */
    int64_t n_out, n_red;
} red_walk;

static void red_init(const ot_tensor *x, const bool *mask, red_walk *w)
{
    int64_t stride = 1, xs[OT_MAX_DIMS];
    for (int d = x->ndim - 1; d >= 0; d--) {
        xs[d] = stride;
        stride *= x->dims[d];
    }
    w->nk = w->nr = 0;
    w->n_out = w->n_red = 1;
    for (int d = 0; d < x->ndim; d++) {
        if (mask[d]) {
            w->rd[w->nr] = x->dims[d];
            w->rs[w->nr++] = xs[d];
            w->n_red *= x->dims[d];
        } else {
            w->kd[w->nk] = x->dims[d];
            w->ks[w->nk++] = xs[d];
            w->n_out *= x->dims[d];
        }
    }
}

/* X offset of the i-th element of a row-major walk over dims d (strides s). */
static int64_t walk_offset(int nd, const int64_t *d, const int64_t *s, int64_t i)
{
    int64_t off = 0;
    for (int k = nd - 1; k >= 0; k--) {
        off += (i % d[k]) * s[k];
        i /= d[k];
    }
    return off;
}

typedef enum { R_SUM, R_MEAN, R_MAX, R_L2, R_NONE } red_kind;

static red_kind red_of(const char *type)
{
    static const char *const names[R_NONE] = { "ReduceSum", "ReduceMean", "ReduceMax",
                                               "ReduceL2" };
    for (int k = 0; k < R_NONE; k++)
        if (!strcmp(type, names[k]))
            return (red_kind)k;
    return R_NONE;
}

/* The axes tensor of a reduction (input 1, int), or NULL. */
static const ot_tensor *axes_in(const ot_node *n, const ot_tensor *const *in)
{
    const ot_tensor *t = ot_ref_in(n, in, 1);
    return t && (t->dtype == OT_DTYPE_INT64 || t->dtype == OT_DTYPE_INT32) ? t : NULL;
}

bool ot_ref_reduce_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                            const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *x = ot_ref_in(n, in, 0), *y = ot_ref_cout(n, out, 0);
    bool mask[OT_MAX_DIMS];
    if (!x || !y || y->dtype != x->dtype || !numeric(x->dtype) || red_of(n->op_type) == R_NONE) {
        *why = "reduction: numeric X (but uint64), Y of X's dtype";
        return false;
    }
    const ot_tensor *axes = ot_ref_in(n, in, 1);
    if (axes && !axes_in(n, in)) {
        *why = "reduction: the axes must be an int32/int64 tensor";
        return false;
    }
    /* axes given as an input may be unknown at compile time */
    if (axes && !axes->data && ot_tensor_numel(axes) > 0)
        return true;
    if (!ot_op_reduce_axes(n, axes, x->ndim, mask)) {
        *why = "reduction: axes out of range or repeated";
        return false;
    }
    red_walk w;
    red_init(x, mask, &w);
    if (ot_tensor_numel(y) != w.n_out) {
        *why = "reduction: Y's size does not match the axes";
        return false;
    }
    return true;
}

/* data [, axes]  ->  reduced */
ot_status ot_ref_reduce(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                        ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_reduce_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s: %s", n->op_type, why);
    const ot_tensor *x = in[0];
    ot_tensor *y = out[0];
    bool mask[OT_MAX_DIMS];
    ot_op_reduce_axes(n, axes_in(n, in), x->ndim, mask);
    red_walk w;
    red_init(x, mask, &w);
    red_kind kind = red_of(n->op_type);
    for (int64_t o = 0; o < w.n_out; o++) {
        int64_t base = walk_offset(w.nk, w.kd, w.ks, o);
        double acc = kind == R_MAX ? -HUGE_VAL : 0;
        for (int64_t r = 0; r < w.n_red; r++) {
            double v = ot_ref_ld(x->dtype, x->data, base + walk_offset(w.nr, w.rd, w.rs, r));
            if (kind == R_MAX)
                acc = v > acc || v != v ? v : acc;
            else
                acc += kind == R_L2 ? v * v : v;
        }
        if (kind == R_MEAN)
            acc = w.n_red ? acc / (double)w.n_red : (double)NAN;
        else if (kind == R_L2)
            acc = sqrt(acc);
        ot_ref_st(y->dtype, y->data, o, acc);
    }
    return OT_OK;
}

/* dY, X [, Y]  ->  dX (ReduceGrad, see src/ops/grad_math.c) */
bool ot_ref_reduce_grad_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                                 const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *dy = ot_ref_in(n, in, 0), *x = ot_ref_in(n, in, 1);
    const ot_tensor *yv = ot_ref_in(n, in, 2), *dx = ot_ref_cout(n, out, 0);
    red_kind kind = red_of(ot_node_attr_string(n, "mode", ""));
    bool mask[OT_MAX_DIMS];
    if (!dy || !x || !dx || kind == R_NONE || !ot_ref_is_float(dy->dtype) ||
        !ot_ref_is_float(x->dtype) || dx->dtype != dy->dtype ||
        ot_tensor_numel(dx) != ot_tensor_numel(x)) {
        *why = "ReduceGrad: float dY and X, dX like X, mode a reduction";
        return false;
    }
    if (!ot_op_reduce_axes(n, NULL, x->ndim, mask)) {
        *why = "ReduceGrad: axes out of range or repeated";
        return false;
    }
    red_walk w;
    red_init(x, mask, &w);
    bool need_y = kind == R_MAX || kind == R_L2;
    if (ot_tensor_numel(dy) != w.n_out ||
        (need_y && (!yv || ot_tensor_numel(yv) != w.n_out || !ot_ref_is_float(yv->dtype)))) {
        *why = "ReduceGrad: dY (and Y) must have the reduced shape";
        return false;
    }
    return true;
}

ot_status ot_ref_reduce_grad(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                             ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_reduce_grad_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *dy = in[0], *x = in[1], *yv = ot_ref_in(n, in, 2);
    ot_tensor *dx = out[0];
    red_kind kind = red_of(ot_node_attr_string(n, "mode", ""));
    bool mask[OT_MAX_DIMS];
    ot_op_reduce_axes(n, NULL, x->ndim, mask);
    red_walk w;
    red_init(x, mask, &w);
    for (int64_t o = 0; o < w.n_out; o++) {
        int64_t base = walk_offset(w.nk, w.kd, w.ks, o);
        double g0 = ot_ref_ld(dy->dtype, dy->data, o);
        double yo = yv ? ot_ref_ld(yv->dtype, yv->data, o) : 0;
        double ties = 0;
        if (kind == R_MAX)
            for (int64_t r = 0; r < w.n_red; r++)
                ties += ot_ref_ld(x->dtype, x->data, base + walk_offset(w.nr, w.rd, w.rs, r)) ==
                        yo;
        for (int64_t r = 0; r < w.n_red; r++) {
            int64_t i = base + walk_offset(w.nr, w.rd, w.rs, r);
            double v = ot_ref_ld(x->dtype, x->data, i), d = g0;
            if (kind == R_MEAN)
                d = g0 / (double)w.n_red;
            else if (kind == R_MAX)
                d = v == yo ? g0 / ties : 0;
            else if (kind == R_L2)
                d = yo != 0 ? g0 * v / yo : 0;
            ot_ref_st(dx->dtype, dx->data, i, d);
        }
    }
    return OT_OK;
}

/* ---------------------------------------------------------------- PRelu */

/* Where the slope sits among X's dims: before opset 7 a 1-D slope of more
   than one element is per channel (dim 1); else right-aligned. */
static int prelu_start(const ot_node *n, const ot_tensor *x, const ot_tensor *slope)
{
    if (n->opset < 7 && slope->ndim == 1 && slope->dims[0] > 1 && x->ndim >= 2)
        return 1;
    return x->ndim - slope->ndim;
}

/* X and slope of one float dtype, slope broadcasting to X; outputs like X. */
static bool prelu_ok(const ot_node *n, const ot_tensor *const *in, const ot_tensor *const *out,
                     int first_x, const char **why)
{
    const ot_tensor *x = ot_ref_in(n, in, first_x), *slope = ot_ref_in(n, in, first_x + 1);
    int64_t s[OT_MAX_DIMS];
    if (!x || !slope || !ot_ref_is_float(x->dtype) || slope->dtype != x->dtype ||
        !place_strides(slope, x, prelu_start(n, x, slope), s)) {
        *why = "PRelu: X and slope of one float dtype, slope broadcasting to X";
        return false;
    }
    for (int i = 0; i < n->n_out; i++) {
        const ot_tensor *o = ot_ref_cout(n, out, i);
        if (o && (ot_tensor_numel(o) != ot_tensor_numel(x) || !ot_ref_is_float(o->dtype))) {
            *why = "PRelu: outputs must be shaped like X";
            return false;
        }
    }
    return true;
}

/* Runs the statements that follow for each element i of X, with k the
   offset of its slope element. */
#define PRELU_WALK(x, slope, ...)                                                              \
    do {                                                                                        \
        int64_t ss_[OT_MAX_DIMS], idx_[OT_MAX_DIMS] = { 0 }, k = 0;                             \
        place_strides(slope, x, prelu_start(n, x, slope), ss_);                                 \
        int64_t numel_ = ot_tensor_numel(x);                                                    \
        for (int64_t i = 0; i < numel_; i++) {                                                  \
            __VA_ARGS__;                                                                        \
            for (int d_ = x->ndim - 1; d_ >= 0; d_--) {                                         \
                idx_[d_]++;                                                                     \
                k += ss_[d_];                                                                   \
                if (idx_[d_] < x->dims[d_])                                                     \
                    break;                                                                      \
                k -= ss_[d_] * x->dims[d_];                                                     \
                idx_[d_] = 0;                                                                   \
            }                                                                                   \
        }                                                                                       \
    } while (0)

bool ot_ref_prelu_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                           const ot_tensor *const *out, const char **why)
{
    (void)g;
    return prelu_ok(n, in, out, 0, why);
}

/* X, slope  ->  Y = X < 0 ? slope * X : X */
ot_status ot_ref_prelu(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                       ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_prelu_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *x = in[0], *slope = in[1];
    ot_tensor *y = out[0];
    PRELU_WALK(x, slope, {
        double v = ot_ref_ld(x->dtype, x->data, i);
        ot_ref_st(y->dtype, y->data, i, v < 0 ? v * ot_ref_ld(slope->dtype, slope->data, k) : v);
    });
    return OT_OK;
}

bool ot_ref_prelu_grad_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                                const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *dy = ot_ref_in(n, in, 0), *x = ot_ref_in(n, in, 1);
    if (!dy || !x || !ot_ref_is_float(dy->dtype) || ot_tensor_numel(dy) != ot_tensor_numel(x)) {
        *why = "PReluGrad: dY must be a float tensor shaped like X";
        return false;
    }
    return prelu_ok(n, in, out, 1, why);
}

/* dY, X, slope  ->  dX = dY * (X < 0 ? slope : 1) [, dSlope = dY * min(X, 0)] */
ot_status ot_ref_prelu_grad(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                            ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_prelu_grad_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *dy = in[0], *x = in[1], *slope = in[2];
    ot_tensor *dx = ot_ref_out(n, out, 0), *ds = ot_ref_out(n, out, 1);
    PRELU_WALK(x, slope, {
        double v = ot_ref_ld(x->dtype, x->data, i), gy = ot_ref_ld(dy->dtype, dy->data, i);
        if (dx)
            ot_ref_st(dx->dtype, dx->data, i,
                      v < 0 ? gy * ot_ref_ld(slope->dtype, slope->data, k) : gy);
        if (ds)
            ot_ref_st(ds->dtype, ds->data, i, v < 0 ? gy * v : 0);
    });
    return OT_OK;
}

/* ------------------------------------------------------------- Max, Min */

/* ExtremumGrad: dY, Y, X_0, ..., X_n-1 (broadcast to Y)  ->  dX_k at Y's
   shape = dY where X_k equals Y, divided by the number of inputs that do. */
bool ot_ref_extremum_grad_supports(const ot_graph *g, const ot_node *n,
                                   const ot_tensor *const *in, const ot_tensor *const *out,
                                   const char **why)
{
    (void)g;
    const ot_tensor *dy = ot_ref_in(n, in, 0), *y = ot_ref_in(n, in, 1);
    const ot_tensor *dx = ot_ref_cout(n, out, 0);
    int64_t k = ot_node_attr_int(n, "index", 0), s[OT_MAX_DIMS];
    if (!dy || !y || !dx || !ot_ref_is_float(dy->dtype) || dx->dtype != dy->dtype ||
        ot_tensor_numel(dy) != ot_tensor_numel(y) || ot_tensor_numel(dx) != ot_tensor_numel(y) ||
        !numeric(y->dtype) || k < 0 || k >= n->n_in - 2) {
        *why = "ExtremumGrad: float dY and dX shaped like Y, index within the inputs";
        return false;
    }
    for (int j = 2; j < n->n_in; j++) {
        const ot_tensor *x = ot_ref_in(n, in, j);
        if (!x || x->dtype != y->dtype || !bcast_strides(x, y, s)) {
            *why = "ExtremumGrad: every input of Y's dtype, broadcasting to Y";
            return false;
        }
    }
    return true;
}

/* The offset in t (broadcast to y, right-aligned) of y's element at idx. */
static int64_t bcast_offset(const ot_tensor *t, const ot_tensor *y, const int64_t *idx)
{
    int64_t off = 0, stride = 1;
    for (int j = t->ndim - 1; j >= 0; j--) {
        if (t->dims[j] != 1)
            off += idx[y->ndim - t->ndim + j] * stride;
        stride *= t->dims[j];
    }
    return off;
}

ot_status ot_ref_extremum_grad(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                               ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_extremum_grad_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *dy = in[0], *y = in[1];
    ot_tensor *dx = out[0];
    int k = 2 + (int)ot_node_attr_int(n, "index", 0);
    int64_t numel = ot_tensor_numel(y), idx[OT_MAX_DIMS];
    for (int64_t i = 0; i < numel; i++) {
        int64_t rest = i;
        for (int d = y->ndim - 1; d >= 0; d--) {
            idx[d] = rest % y->dims[d];
            rest /= y->dims[d];
        }
        double yv = ot_ref_ld(y->dtype, y->data, i), ties = 0, mine = 0;
        for (int j = 2; j < n->n_in; j++) {
            bool eq = ot_ref_ld(in[j]->dtype, in[j]->data, bcast_offset(in[j], y, idx)) == yv;
            ties += eq;
            if (j == k)
                mine = eq;
        }
        ot_ref_st(dx->dtype, dx->data, i,
                  mine && ties > 0 ? ot_ref_ld(dy->dtype, dy->data, i) / ties : 0);
    }
    return OT_OK;
}

/* --------------------------------------------------------------- Einsum */

/* The equation parsed for the inputs' ranks and sized from their dims. */
static bool einsum_setup(const ot_node *n, const ot_tensor *const *in, ot_einsum *e,
                         int64_t *size, const char **why)
{
    int ranks[OT_EINSUM_MAX_IN];
    const int64_t *dims[OT_EINSUM_MAX_IN];
    if (n->n_in > OT_EINSUM_MAX_IN) {
        *why = "Einsum: more than 8 inputs";
        return false;
    }
    for (int k = 0; k < n->n_in; k++) {
        if (!ot_ref_in(n, in, k)) {
            *why = "Einsum: every input is required";
            return false;
        }
        ranks[k] = in[k]->ndim;
        dims[k] = in[k]->dims;
    }
    return ot_einsum_parse(ot_node_attr_string(n, "equation", ""), n->n_in, ranks, e, why) &&
           ot_einsum_sizes(e, dims, size, why);
}

bool ot_ref_einsum_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                            const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *y = ot_ref_cout(n, out, 0);
    ot_einsum e;
    int64_t size[OT_EINSUM_MAX_LABELS], numel = 1;
    if (!y || !numeric(y->dtype)) {
        *why = "Einsum: numeric types only";
        return false;
    }
    if (!einsum_setup(n, in, &e, size, why))
        return false;
    for (int k = 0; k < n->n_in; k++)
        if (in[k]->dtype != y->dtype) {
            *why = "Einsum: every input of the output's dtype";
            return false;
        }
    for (int i = 0; i < e.out_rank; i++)
        numel *= size[e.out_lab[i]];
    if (numel != ot_tensor_numel(y)) {
        *why = "Einsum: the output's shape does not match the equation";
        return false;
    }
    return true;
}

/* Offsets into each input of the index `i` of a row-major walk over the
   labels lab[0..nl) (sizes from size), added to off. */
static void einsum_offsets(int n_in, int nl, const int *lab, const int64_t *size,
                           int64_t (*stride)[OT_EINSUM_MAX_LABELS], int64_t i, int64_t *off)
{
    for (int j = nl - 1; j >= 0; j--) {
        int64_t v = i % size[lab[j]];
        i /= size[lab[j]];
        for (int k = 0; k < n_in; k++)
            off[k] += v * stride[k][lab[j]];
    }
}

/* X_0, ...  ->  Y: for each output element, the sum over the labels not in
   the output of the product of the inputs' elements (in double) */
ot_status ot_ref_einsum(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                        ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_einsum_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    ot_einsum e;
    int64_t size[OT_EINSUM_MAX_LABELS];
    int64_t stride[OT_EINSUM_MAX_IN][OT_EINSUM_MAX_LABELS];
    einsum_setup(n, in, &e, size, &why);
    memset(stride, 0, sizeof stride);
    for (int k = 0; k < e.n_in; k++) {
        int64_t st = 1;
        for (int i = e.in_rank[k] - 1; i >= 0; i--) {
            int l = e.in_lab[k][i];
            if (!(in[k]->dims[i] == 1 && size[l] != 1)) /* a broadcast dim stays 0 */
                stride[k][l] += st;
            st *= in[k]->dims[i];
        }
    }
    int out_lab[OT_MAX_DIMS], sum_lab[OT_EINSUM_MAX_LABELS], n_sum = 0;
    bool in_out[OT_EINSUM_MAX_LABELS] = { false };
    int64_t n_out = 1, n_red = 1;
    for (int i = 0; i < e.out_rank; i++) {
        out_lab[i] = e.out_lab[i];
        in_out[out_lab[i]] = true;
        n_out *= size[out_lab[i]];
    }
    for (int l = 0; l < OT_EINSUM_MAX_LABELS; l++)
        if (e.used[l] && !in_out[l]) {
            sum_lab[n_sum++] = l;
            n_red *= size[l];
        }
    ot_tensor *y = out[0];
    for (int64_t o = 0; o < n_out; o++) {
        int64_t base[OT_EINSUM_MAX_IN] = { 0 };
        einsum_offsets(e.n_in, e.out_rank, out_lab, size, stride, o, base);
        double acc = 0;
        for (int64_t r = 0; r < n_red; r++) {
            int64_t off[OT_EINSUM_MAX_IN];
            memcpy(off, base, sizeof off);
            einsum_offsets(e.n_in, n_sum, sum_lab, size, stride, r, off);
            double p = 1;
            for (int k = 0; k < e.n_in; k++)
                p *= ot_ref_ld(in[k]->dtype, in[k]->data, off[k]);
            acc += p;
        }
        ot_ref_st(y->dtype, y->data, o, acc);
    }
    return OT_OK;
}
