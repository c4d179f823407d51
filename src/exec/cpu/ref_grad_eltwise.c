/*
 * ref_grad_eltwise.c: plain C kernels of the element-wise and reducing
 * private ops (src/ops/grad_ops.c): ReluGrad, LeakyReluGrad, ClipGrad,
 * SigmoidGrad, DropoutGrad, SoftmaxGrad, LogSoftmaxGrad, ReduceSumTo,
 * BroadcastTo, SliceAxis, SoftmaxCrossEntropy and its gradient.
 *
 * Every float type (float, double, float16, bfloat16) through ot_ref_ld /
 * ot_ref_st, reductions accumulating in double; SliceAxis copies bytes of
 * any fixed-size dtype. SoftmaxCrossEntropy matches
 * torch.nn.CrossEntropyLoss(reduction="mean", label_smoothing=eps) (see
 * src/train/loss.h); a label outside [0, C) is OT_ERR_ARG naming the row,
 * never a read outside the logits.
 *
 * Not here: ignore_index, class weights, probability targets.
 */
#include "exec/cpu/ref_impl.h"
#include "ops/index_ops.h"

/* ------------------------------------------------------------ eltwise */

/* dY, v (like dY, any numeric dtype for v), dX like dY of dY's float dtype */
static bool pair_supports(const ot_node *n, const ot_tensor *const *in,
                          const ot_tensor *const *out, const char **why)
{
    const ot_tensor *dy = ot_ref_in(n, in, 0), *v = ot_ref_in(n, in, 1);
    const ot_tensor *dx = ot_ref_cout(n, out, 0);
    if (!dy || !v || !dx || !ot_ref_is_float(dy->dtype) || dx->dtype != dy->dtype ||
        ot_tensor_numel(v) != ot_tensor_numel(dy) || dx->bytes != dy->bytes) {
        *why = "elementwise gradient: dY, the forward value and dX must have one shape, float";
        return false;
    }
    if (!ot_ref_is_float(v->dtype) && v->dtype != OT_DTYPE_BOOL) {
        *why = "elementwise gradient: the forward value must be float (or a bool mask)";
        return false;
    }
    return true;
}

#define PAIR_SUPPORTS(name)                                                                     \
    bool ot_ref_##name##_supports(const ot_graph *g, const ot_node *n,                          \
                                  const ot_tensor *const *in, const ot_tensor *const *out,      \
                                  const char **why)                                             \
    {                                                                                           \
        (void)g;                                                                                \
        return pair_supports(n, in, out, why);                                                  \
    }

PAIR_SUPPORTS(relu_grad)
PAIR_SUPPORTS(leakyrelu_grad)
PAIR_SUPPORTS(sigmoid_grad)
PAIR_SUPPORTS(clip_grad)
PAIR_SUPPORTS(dropout_grad)

typedef enum { G_RELU, G_LEAKY, G_SIGMOID, G_CLIP, G_DROPOUT } pair_kind;

/* Scalar input i as double, or def when absent or empty. */
static double scalar_in(const ot_node *n, const ot_tensor *const *in, int i, double def)
{
    const ot_tensor *t = ot_ref_in(n, in, i);
    if (!t || !t->data || ot_tensor_numel(t) < 1)
        return def;
    return ot_tensor_get_f64(t, 0);
}

static ot_status pair_run(const ot_node *n, const ot_tensor *const *in, ot_tensor *const *out,
                          pair_kind kind, ot_err *err)
{
    const char *why = NULL;
    if (!pair_supports(n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *dy = in[0], *v = in[1];
    ot_tensor *dx = out[0];
    int64_t numel = ot_tensor_numel(dx);
    double alpha = ot_node_attr_float(n, "alpha", 0.01f);
    double lo = ot_node_attr_float(n, "min", -3.4028234663852886e+38f);
    double hi = ot_node_attr_float(n, "max", 3.4028234663852886e+38f);
    double scale = 1.0;
    if (kind == G_CLIP) {
        lo = scalar_in(n, in, 2, lo);
        hi = scalar_in(n, in, 3, hi);
    }
    if (kind == G_DROPOUT) {
        double ratio = scalar_in(n, in, 2, ot_node_attr_float(n, "ratio", 0.5f));
        bool training = scalar_in(n, in, 3, 0.0) != 0.0 && ratio != 0.0;
        scale = !training ? 1.0 : ratio < 1.0 ? 1.0 / (1.0 - ratio) : 0.0;
    }
    if (kind == G_RELU && dy->dtype == OT_DTYPE_FLOAT && v->dtype == OT_DTYPE_FLOAT &&
        dx->dtype == OT_DTYPE_FLOAT) {
        const float *ds = dy->data, *ys = v->data;
        float *o = dx->data;
#pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < numel; i++)
            o[i] = ys[i] > 0 ? ds[i] : 0.0f;
        return OT_OK;
    }
#pragma omp parallel for schedule(static) if (numel >= OT_REF_PARALLEL_MIN)
    for (int64_t i = 0; i < numel; i++) {
        double d = ot_ref_ld(dy->dtype, dy->data, i), x = ot_ref_ld(v->dtype, v->data, i), r;
        switch (kind) {
        case G_RELU: r = x > 0 ? d : 0.0; break;             /* v = Y */
        case G_LEAKY: r = x > 0 ? d : d * alpha; break;       /* v = X */
        case G_SIGMOID: r = d * x * (1.0 - x); break;         /* v = Y */
        case G_CLIP: r = x >= lo && x <= hi ? d : 0.0; break; /* v = X */
        default: r = x != 0 ? d * scale : 0.0; break;         /* v = mask */
        }
        ot_ref_st(dx->dtype, dx->data, i, r);
    }
    return OT_OK;
}

#define PAIR_RUN(name, kind)                                                                    \
    ot_status ot_ref_##name(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,    \
                            ot_tensor *const *out, ot_err *err)                                 \
    {                                                                                           \
        (void)g;                                                                                \
        return pair_run(n, in, out, kind, err);                                                 \
    }

PAIR_RUN(relu_grad, G_RELU)
PAIR_RUN(leakyrelu_grad, G_LEAKY)
PAIR_RUN(sigmoid_grad, G_SIGMOID)
PAIR_RUN(clip_grad, G_CLIP)
PAIR_RUN(dropout_grad, G_DROPOUT)

/* ------------------------------------------------------------ softmax */

/* (outer, L, inner) of the normalised axis: one axis, or with coerce_2d the
   axis and every dim after it (Softmax before opset 13). */
static bool softmax_split(const ot_node *n, const ot_tensor *x, int64_t *outer, int64_t *L,
                          int64_t *inner)
{
    int r = x->ndim;
    int64_t axis = ot_node_attr_int(n, "axis", -1);
    bool coerce = ot_node_attr_int(n, "coerce_2d", 0) != 0;
    if (r == 0) {
        *outer = *L = *inner = 1;
        return axis == 0 || axis == -1;
    }
    if (axis < 0)
        axis += r;
    if (axis < 0 || axis > r || (!coerce && axis == r))
        return false;
    *outer = ot_ref_prod(x, 0, (int)axis);
    *L = coerce ? ot_ref_prod(x, (int)axis, r) : x->dims[axis];
    *inner = coerce ? 1 : ot_ref_prod(x, (int)axis + 1, r);
    return true;
}

static bool softmax_grad_check(const ot_node *n, const ot_tensor *const *in,
                               const ot_tensor *const *out, const char **why)
{
    int64_t a, b, c;
    if (!pair_supports(n, in, out, why))
        return false;
    if (!softmax_split(n, in[0], &a, &b, &c)) {
        *why = "SoftmaxGrad: axis out of range";
        return false;
    }
    return true;
}

bool ot_ref_softmax_grad_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                                  const ot_tensor *const *out, const char **why)
{
    (void)g;
    return softmax_grad_check(n, in, out, why);
}

bool ot_ref_logsoftmax_grad_supports(const ot_graph *g, const ot_node *n,
                                     const ot_tensor *const *in, const ot_tensor *const *out,
                                     const char **why)
{
    (void)g;
    return softmax_grad_check(n, in, out, why);
}

/* Softmax: dX = Y (dY - sum dY Y); LogSoftmax: dX = dY - exp(Y) sum dY. */
static ot_status softmax_grad_run(const ot_node *n, const ot_tensor *const *in,
                                  ot_tensor *const *out, bool is_log, ot_err *err)
{
    const char *why = NULL;
    if (!softmax_grad_check(n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *dy = in[0], *y = in[1];
    ot_tensor *dx = out[0];
    int64_t outer, L, inner;
    softmax_split(n, dy, &outer, &L, &inner);
    /* each (o, k) row alone: split over the threads */
#pragma omp parallel for collapse(2) schedule(static) if (outer * L * inner >= OT_REF_PARALLEL_MIN)
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < inner; k++) {
            int64_t base = o * L * inner + k;
            double s = 0;
            for (int64_t l = 0; l < L; l++) {
                int64_t at = base + l * inner;
                double d = ot_ref_ld(dy->dtype, dy->data, at);
                s += is_log ? d : d * ot_ref_ld(y->dtype, y->data, at);
            }
            for (int64_t l = 0; l < L; l++) {
                int64_t at = base + l * inner;
                double d = ot_ref_ld(dy->dtype, dy->data, at);
                double yv = ot_ref_ld(y->dtype, y->data, at);
                ot_ref_st(dx->dtype, dx->data, at, is_log ? d - exp(yv) * s : yv * (d - s));
            }
        }
    return OT_OK;
}

ot_status ot_ref_softmax_grad(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                              ot_tensor *const *out, ot_err *err)
{
    (void)g;
    return softmax_grad_run(n, in, out, false, err);
}

ot_status ot_ref_logsoftmax_grad(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                                 ot_tensor *const *out, ot_err *err)
{
    (void)g;
    return softmax_grad_run(n, in, out, true, err);
}

/* ------------------------------------------------- ReduceSumTo, BroadcastTo */

/* Element strides of `small` placed in `big`'s dims (0 where small
   broadcasts), from `axis` or right-aligned. False when it does not fit. */
static bool placed_strides(const ot_node *n, const ot_tensor *big, const ot_tensor *small,
                           int64_t *s)
{
    const ot_attr *a = ot_node_find_attr(n, "axis");
    int start = a && a->type == OT_ATTR_INT ? (int)a->i : big->ndim - small->ndim;
    if (start < 0 || start + small->ndim > big->ndim)
        return false;
    int64_t stride = 1;
    for (int i = big->ndim - 1; i >= 0; i--) {
        int j = i - start;
        if (j < 0 || j >= small->ndim) {
            s[i] = 0;
            continue;
        }
        if (small->dims[j] != big->dims[i] && small->dims[j] != 1)
            return false;
        s[i] = small->dims[j] == 1 && big->dims[i] != 1 ? 0 : stride;
        stride *= small->dims[j];
    }
    return true;
}

static bool reduce_check(const ot_node *n, const ot_tensor *big, const ot_tensor *small,
                         const char **why)
{
    int64_t s[OT_MAX_DIMS];
    if (!big || !small || !ot_ref_is_float(big->dtype) || small->dtype != big->dtype) {
        *why = "ReduceSumTo/BroadcastTo: float tensors of one dtype are required";
        return false;
    }
    if (!placed_strides(n, big, small, s)) {
        *why = "ReduceSumTo/BroadcastTo: the shapes do not broadcast";
        return false;
    }
    return true;
}

bool ot_ref_reduce_sum_to_supports(const ot_graph *g, const ot_node *n,
                                   const ot_tensor *const *in, const ot_tensor *const *out,
                                   const char **why)
{
    (void)g;
    return reduce_check(n, ot_ref_in(n, in, 0), ot_ref_cout(n, out, 0), why);
}

bool ot_ref_broadcast_to_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                                  const ot_tensor *const *out, const char **why)
{
    (void)g;
    return reduce_check(n, ot_ref_cout(n, out, 0), ot_ref_in(n, in, 0), why);
}

/* Walks every element of big (row-major), calling back with big's index and
   the placed small index. */
#define WALK(big, s, BODY)                                                                      \
    do {                                                                                        \
        int64_t idx_[OT_MAX_DIMS] = { 0 }, off_ = 0, numel_ = ot_tensor_numel(big);             \
        for (int64_t i_ = 0; i_ < numel_; i_++) {                                               \
            int64_t bi = i_, si = off_;                                                         \
            BODY;                                                                               \
            for (int d_ = (big)->ndim - 1; d_ >= 0; d_--) {                                     \
                off_ += (s)[d_];                                                                \
                if (++idx_[d_] < (big)->dims[d_])                                               \
                    break;                                                                      \
                off_ -= (s)[d_] * (big)->dims[d_];                                              \
                idx_[d_] = 0;                                                                   \
            }                                                                                   \
        }                                                                                       \
    } while (0)

/* X (big) -> Y of the target shape: Y[j] = sum of X[i] over the i that map to j */
ot_status ot_ref_reduce_sum_to(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                               ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_reduce_sum_to_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *x = in[0];
    ot_tensor *y = out[0];
    int64_t s[OT_MAX_DIMS];
    placed_strides(n, x, y, s);
    int64_t ny = ot_tensor_numel(y);
    if (ny == 1) { /* the common loss case: one sum in double */
        double acc = 0;
        int64_t nx = ot_tensor_numel(x);
        for (int64_t i = 0; i < nx; i++)
            acc += ot_ref_ld(x->dtype, x->data, i);
        ot_ref_st(y->dtype, y->data, 0, acc);
        return OT_OK;
    }
    for (int64_t j = 0; j < ny; j++)
        ot_ref_st(y->dtype, y->data, j, 0.0);
    WALK(x, s, ot_ref_st(y->dtype, y->data, si,
                         ot_ref_ld(y->dtype, y->data, si) + ot_ref_ld(x->dtype, x->data, bi)));
    return OT_OK;
}

/* X (small) -> Y (big): Y[i] = X[placed(i)] */
ot_status ot_ref_broadcast_to(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                              ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_broadcast_to_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *x = in[0];
    ot_tensor *y = out[0];
    int64_t s[OT_MAX_DIMS];
    placed_strides(n, y, x, s);
    WALK(y, s, ot_ref_st(y->dtype, y->data, bi, ot_ref_ld(x->dtype, x->data, si)));
    return OT_OK;
}

/* -------------------------------------------------------------- SliceAxis */

bool ot_ref_slice_axis_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                                const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *x = ot_ref_in(n, in, 0), *y = ot_ref_cout(n, out, 0);
    int64_t axis = ot_node_attr_int(n, "axis", 0), start = ot_node_attr_int(n, "start", 0);
    if (!x || !y || y->dtype != x->dtype || ot_dtype_size(x->dtype) == 0 || x->ndim < 1 ||
        y->ndim != x->ndim) {
        *why = "SliceAxis: X and Y of one fixed-size dtype and rank are required";
        return false;
    }
    if (axis < 0)
        axis += x->ndim;
    if (axis < 0 || axis >= x->ndim) {
        *why = "SliceAxis: the slice does not fit X";
        return false;
    }
    int64_t end = ot_slice_axis_end(n, x->dims[axis]);
    if (start < 0 || end < start || end > x->dims[axis] ||
        y->dims[axis] != end - start) {
        *why = "SliceAxis: the slice does not fit X";
        return false;
    }
    return true;
}

/* X: (A, D, B)  ->  Y: (A, end - start, B) = X[:, start:end, :] */
ot_status ot_ref_slice_axis(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                            ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_slice_axis_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *x = in[0];
    ot_tensor *y = out[0];
    int axis = (int)ot_node_attr_int(n, "axis", 0);
    if (axis < 0)
        axis += x->ndim;
    int64_t start = ot_node_attr_int(n, "start", 0), len = y->dims[axis];
    size_t es = ot_dtype_size(x->dtype);
    int64_t outer = ot_ref_prod(x, 0, axis), inner = ot_ref_prod(x, axis + 1, x->ndim);
    size_t row = (size_t)(len * inner) * es;
    if (!row)
        return OT_OK;
    for (int64_t o = 0; o < outer; o++)
        memcpy((char *)y->data + (size_t)o * row,
               (const char *)x->data + ((size_t)(o * x->dims[axis] + start) * (size_t)inner) * es,
               row);
    return OT_OK;
}

/* ---------------------------------------------------- SoftmaxCrossEntropy */

static bool xent_check(const ot_node *n, const ot_tensor *x, const ot_tensor *lab,
                       const ot_tensor *o, bool o_like_x, const char **why)
{
    (void)n;
    if (!x || !lab || !o || !ot_ref_is_float(x->dtype) || x->ndim != 2 || x->dims[1] < 1) {
        *why = "SoftmaxCrossEntropy: logits must be a float (N, C) tensor with C >= 1";
        return false;
    }
    if ((lab->dtype != OT_DTYPE_INT64 && lab->dtype != OT_DTYPE_INT32) ||
        ot_tensor_numel(lab) != x->dims[0]) {
        *why = "SoftmaxCrossEntropy: labels must be int64 (N)";
        return false;
    }
    if (o->dtype != x->dtype || (o_like_x ? o->bytes != x->bytes : ot_tensor_numel(o) != 1)) {
        *why = "SoftmaxCrossEntropy: the output has the wrong shape or dtype";
        return false;
    }
    return true;
}

bool ot_ref_softmax_xent_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                                  const ot_tensor *const *out, const char **why)
{
    (void)g;
    return xent_check(n, ot_ref_in(n, in, 0), ot_ref_in(n, in, 1), ot_ref_cout(n, out, 0), false,
                      why);
}

bool ot_ref_softmax_xent_grad_supports(const ot_graph *g, const ot_node *n,
                                       const ot_tensor *const *in, const ot_tensor *const *out,
                                       const char **why)
{
    (void)g;
    const ot_tensor *dl = ot_ref_in(n, in, 0);
    if (!dl || !ot_ref_is_float(dl->dtype) || ot_tensor_numel(dl) != 1) {
        *why = "SoftmaxCrossEntropyGrad: dloss must be a float scalar";
        return false;
    }
    return xent_check(n, ot_ref_in(n, in, 1), ot_ref_in(n, in, 2), ot_ref_cout(n, out, 0), true,
                      why);
}

/* Checks every label before anything is written. */
static ot_status check_labels(const ot_tensor *lab, int64_t N, int64_t C, ot_err *err)
{
    for (int64_t i = 0; i < N; i++) {
        int64_t y = (int64_t)ot_ref_ld(lab->dtype, lab->data, i);
        if (y < 0 || y >= C)
            return ot_err_set(err, OT_ERR_ARG,
                              "SoftmaxCrossEntropy: label %lld at row %lld is outside [0, %lld)",
                              (long long)y, (long long)i, (long long)C);
    }
    return OT_OK;
}

/* Row n of x: its maximum-shifted log-sum-exp. */
static double row_lse(const ot_tensor *x, int64_t row, int64_t C)
{
    double m = -HUGE_VAL;
    for (int64_t c = 0; c < C; c++) {
        double v = ot_ref_ld(x->dtype, x->data, row * C + c);
        m = v > m ? v : m;
    }
    if (isinf(m))
        return m;
    double s = 0;
    for (int64_t c = 0; c < C; c++)
        s += exp(ot_ref_ld(x->dtype, x->data, row * C + c) - m);
    return m + log(s);
}

/* logits: (N, C)  labels: (N)  ->  loss = (1/N) sum_n [(1 - eps)(lse - x[y]) +
   eps (lse - mean_c x)] */
ot_status ot_ref_softmax_xent(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                              ot_tensor *const *out, ot_err *err)
{
    ot_status st;
    const char *why = NULL;
    if (!ot_ref_softmax_xent_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *x = in[0], *lab = in[1];
    ot_tensor *loss = out[0];
    int64_t N = x->dims[0], C = x->dims[1];
    double eps = ot_node_attr_float(n, "label_smoothing", 0.0f), total = 0;
    if ((st = check_labels(lab, N, C, err)) != OT_OK)
        return st;
    for (int64_t r = 0; r < N; r++) {
        double lse = row_lse(x, r, C), sum_x = 0;
        for (int64_t c = 0; c < C; c++)
            sum_x += ot_ref_ld(x->dtype, x->data, r * C + c);
        int64_t y = (int64_t)ot_ref_ld(lab->dtype, lab->data, r);
        double nll = lse - ot_ref_ld(x->dtype, x->data, r * C + y);
        total += (1.0 - eps) * nll + eps * (lse - sum_x / (double)C);
    }
    ot_ref_st(loss->dtype, loss->data, 0, N > 0 ? total / (double)N : 0.0);
    return OT_OK;
}

/* dloss: ()  logits: (N, C)  labels: (N)  ->  dlogits = dloss (softmax - q) / N,
   q = (1 - eps) onehot(y) + eps / C */
ot_status ot_ref_softmax_xent_grad(const ot_graph *g, const ot_node *n,
                                   const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    ot_status st;
    const char *why = NULL;
    if (!ot_ref_softmax_xent_grad_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *dl = in[0], *x = in[1], *lab = in[2];
    ot_tensor *dx = out[0];
    int64_t N = x->dims[0], C = x->dims[1];
    double eps = ot_node_attr_float(n, "label_smoothing", 0.0f);
    if ((st = check_labels(lab, N, C, err)) != OT_OK)
        return st;
    double k = N > 0 ? ot_ref_ld(dl->dtype, dl->data, 0) / (double)N : 0.0;
    double q_off = eps / (double)C, q_on = 1.0 - eps + q_off;
    for (int64_t r = 0; r < N; r++) {
        double lse = row_lse(x, r, C);
        int64_t y = (int64_t)ot_ref_ld(lab->dtype, lab->data, r);
        for (int64_t c = 0; c < C; c++) {
            double p = exp(ot_ref_ld(x->dtype, x->data, r * C + c) - lse);
            ot_ref_st(dx->dtype, dx->data, r * C + c, k * (p - (c == y ? q_on : q_off)));
        }
    }
    return OT_OK;
}

/* --------------------------------------------------------- DropoutTrain */

/* splitmix64: a counter-based stream, the same on every machine. */
static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

bool ot_ref_dropout_train_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                                   const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *x = ot_ref_in(n, in, 0), *seed = ot_ref_in(n, in, 1);
    const ot_tensor *y = ot_ref_cout(n, out, 0), *mask = ot_ref_cout(n, out, 1);
    if (!x || !y || !mask || !seed || x->dtype != OT_DTYPE_FLOAT || y->dtype != OT_DTYPE_FLOAT ||
        mask->dtype != OT_DTYPE_BOOL || seed->dtype != OT_DTYPE_INT64 ||
        ot_tensor_numel(seed) != 1) {
        *why = "DropoutTrain: float X, int64 scalar seed, float Y and bool mask expected";
        return false;
    }
    return true;
}

/* y = x * keep / (1 - ratio), keep = u >= ratio with u uniform in [0, 1) from
   mix64(seed, salt, i). */
ot_status ot_ref_dropout_train(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                               ot_tensor *const *out, ot_err *err)
{
    (void)g;
    (void)err;
    const ot_tensor *x = in[0];
    int64_t seed;
    memcpy(&seed, in[1]->data, sizeof seed);
    double ratio = ot_node_attr_float(n, "ratio", 0.5f);
    uint64_t salt = (uint64_t)ot_node_attr_int(n, "salt", 0);
    float scale = ratio < 1.0 ? (float)(1.0 / (1.0 - ratio)) : 0.0f;
    uint64_t key = mix64((uint64_t)seed ^ mix64(salt));
    const float *xs = x->data;
    float *ys = out[0]->data;
    uint8_t *ms = out[1]->data;
    int64_t numel = ot_tensor_numel(x);
    for (int64_t i = 0; i < numel; i++) {
        double u = (double)(mix64(key + (uint64_t)i) >> 11) * (1.0 / 9007199254740992.0);
        bool keep = u >= ratio;
        ms[i] = keep;
        ys[i] = keep ? xs[i] * scale : 0.0f;
    }
    return OT_OK;
}
