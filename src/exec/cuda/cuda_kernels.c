/*
 * cuda_kernels.c: the table of the CUDA backend's own kernels, one row per op
 * of the op table indexed by op id (ops.def), and the three lookups
 * cuda_kernels.h promises (kernel, supports, scratch bytes).
 *
 * A row's kernel unwraps the node's attributes on the host and calls the
 * launchers of the kernels' files in kernels/ (kernels/kernels.h). A row without a kernel
 * says why (`reason`): the convolutions and matrix products run on cuDNN
 * and cuBLASLt in the backend itself. tests/gpu/test_kernels.c checks that
 * every op of the table has one or the other, and runs each kernel against
 * the plain C kernel.
 *
 * What a kernel accepts is the plain kernel's contract restricted to
 * float32 for the floating ops (integers for the data movement and index
 * ops, and int32/int64 for the integer arithmetic): `supports` checks the
 * dtypes here, then asks the plain kernel's check (exec/cpu/ref_impl.h) on
 * the node's shapes, with the constant inputs (axes, pads, Slice's starts
 * and ends, Dropout's ratio) seen through their host copies in the graph; an
 * input such as these that is computed at run time is refused, since the
 * host cannot read device memory without synchronising.
 *
 * The plain kernels' data errors cannot be raised on the device: a label
 * outside [0, C) makes SoftmaxCrossEntropy's loss NaN, a Gather index out of
 * range reads zeros, the scatters skip an index out of range, and an
 * integer Mod by zero gives 0.
 */
#include "exec/cuda/cuda_kernels.h"

#include <math.h>
#include <string.h>

#include "dist/dist.h"
#include "exec/cpu/ref_impl.h"
#include "exec/cuda/kernels/kernels.h"
#include "ops/einsum.h"
#include "ops/expand_ops.h"
#include "ops/index_ops.h"
#include "ops/reduce.h"

typedef bool (*cuk_supports_fn)(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                                const ot_tensor *const *out, const char **why);
typedef size_t (*cuk_scratch_fn)(const ot_node *n, const ot_tensor *const *in,
                                 const ot_tensor *const *out);

typedef struct cuk_row {
    ot_cuda_fn run;
    const char *file;         /* the file of kernels/ with its kernels       */
    cuk_supports_fn supports; /* the dtype and shape checks                  */
    cuk_scratch_fn scratch;   /* NULL: no scratch                            */
    const char *reason;       /* set when run is NULL: why there is none     */
} cuk_row;

#define MAX_IN 64

#define CK(call)                                                                                \
    do {                                                                                        \
        int e_ = (call);                                                                        \
        if (e_ != 0)                                                                            \
            return ot_err_set(err, OT_ERR_BACKEND, "%s: CUDA kernel launch failed (error %d)",  \
                              n->op_type, e_);                                                  \
    } while (0)

/* ------------------------------------------------------------- helpers */

static const ot_tensor *in_at(const ot_node *n, const ot_tensor *const *in, int i)
{
    return i < n->n_in && n->in[i] >= 0 ? in[i] : NULL;
}

static ot_tensor *out_at(const ot_node *n, ot_tensor *const *out, int i)
{
    return i < n->n_out && n->out[i] >= 0 ? out[i] : NULL;
}

static const ot_tensor *cout_at(const ot_node *n, const ot_tensor *const *out, int i)
{
    return i < n->n_out && n->out[i] >= 0 ? out[i] : NULL;
}

/* The host bytes of input i when the graph knows them (a constant that
   training does not change), else NULL. */
static const ot_tensor *host_const(const ot_graph *g, const ot_node *n, int i)
{
    if (!g || i >= n->n_in || n->in[i] < 0)
        return NULL;
    const ot_value *v = &g->values[n->in[i]];
    if (!(v->flags & OT_VAL_CONST) || (v->flags & OT_VAL_STATE))
        return NULL;
    if (!v->data.data && v->data.bytes)
        return NULL;
    return &v->data;
}

/* Whether input i is absent or has host bytes. */
static bool known(const ot_graph *g, const ot_node *n, const ot_tensor *const *in, int i)
{
    return !in_at(n, in, i) || host_const(g, n, i);
}

/* The inputs as the plain kernels' checks see them: shapes and dtypes from
   `in`, data from the graph's host copy or NULL. */
typedef struct host_view {
    ot_tensor t[MAX_IN];
    const ot_tensor *p[MAX_IN];
} host_view;

static bool make_view(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                      host_view *v)
{
    if (n->n_in > MAX_IN)
        return false;
    for (int i = 0; i < n->n_in; i++) {
        const ot_tensor *t = in_at(n, in, i);
        if (!t) {
            v->p[i] = NULL;
            continue;
        }
        const ot_tensor *h = host_const(g, n, i);
        v->t[i] = *t;
        v->t[i].data = h ? h->data : NULL;
        v->p[i] = &v->t[i];
    }
    return true;
}

static bool all_f32(const ot_node *n, const ot_tensor *const *in, const ot_tensor *const *out,
                    const char **why)
{
    for (int i = 0; i < n->n_in; i++) {
        const ot_tensor *t = in_at(n, in, i);
        if (t && t->dtype != OT_DTYPE_FLOAT) {
            *why = "the CUDA kernel takes float32 tensors only";
            return false;
        }
    }
    for (int i = 0; i < n->n_out; i++) {
        const ot_tensor *t = cout_at(n, out, i);
        if (t && t->dtype != OT_DTYPE_FLOAT) {
            *why = "the CUDA kernel takes float32 tensors only";
            return false;
        }
    }
    return true;
}

#define F(t) ((float *)(t)->data)
#define CF(t) ((const float *)(t)->data)
#define OPT_F(t) ((t) ? F(t) : NULL)
#define OPT_CF(t) ((t) ? CF(t) : NULL)

/* Supports wrappers: float32 everywhere, then the plain check on the view. */
#define F32_SUPPORTS(name, refname)                                                             \
    static bool name(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,           \
                     const ot_tensor *const *out, const char **why)                             \
    {                                                                                           \
        host_view v;                                                                            \
        if (!all_f32(n, in, out, why))                                                          \
            return false;                                                                       \
        if (!make_view(g, n, in, &v)) {                                                         \
            *why = "too many inputs";                                                           \
            return false;                                                                       \
        }                                                                                       \
        return ot_ref_##refname##_supports(g, n, v.p, out, why);                                \
    }

/* The same, without the float32 requirement (the caller checked dtypes). */
static bool ref_check(bool (*check)(const ot_graph *, const ot_node *, const ot_tensor *const *,
                                    const ot_tensor *const *, const char **),
                      const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                      const ot_tensor *const *out, const char **why)
{
    host_view v;
    if (!make_view(g, n, in, &v)) {
        *why = "too many inputs";
        return false;
    }
    return check(g, n, v.p, out, why);
}

/* ------------------------------------------------------- unary, math */

static int math_kind(const char *type)
{
    static const struct {
        const char *name;
        int op;
    } k[] = {
        { "Relu", OTK_RELU },           { "LeakyRelu", OTK_LEAKYRELU }, { "Sigmoid", OTK_SIGMOID },
        { "Clip", OTK_CLIP },           { "Sqrt", OTK_SQRT },           { "Reciprocal", OTK_RECIPROCAL },
        { "Exp", OTK_EXP },             { "Log", OTK_LOG },             { "Tanh", OTK_TANH },
        { "Erf", OTK_ERF },             { "HardSigmoid", OTK_HARDSIGMOID },
        { "HardSwish", OTK_HARDSWISH }, { "Elu", OTK_ELU },             { "Selu", OTK_SELU },
        { "Softplus", OTK_SOFTPLUS },   { "Gelu", OTK_GELU },           { "Pow", OTK_POW_SCALAR },
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (!strcmp(type, k[i].name))
            return k[i].op;
    return OTK_UNARY_NONE;
}

/* The op of a unary node or of UnaryGrad, with its attributes (as
   ref_math.c's math_of and ref_eltwise.c's LeakyRelu). */
static int unary_of(const ot_node *n, double *a, double *b, double *gm)
{
    bool grad = ot_node_is(n, OT_OP_UNARY_GRAD);
    int op = math_kind(grad ? ot_node_attr_string(n, "op", "") : n->op_type);
    if (!grad && op == OTK_POW_SCALAR)
        op = OTK_UNARY_NONE; /* Pow the binary op is not this */
    if (op == OTK_GELU && !strcmp(ot_node_attr_string(n, "approximate", "none"), "tanh"))
        op = OTK_GELU_TANH;
    double a_def = op == OTK_HARDSIGMOID ? 0.2 : op == OTK_SELU ? 1.67326319217681884765625
                                                                : op == OTK_LEAKYRELU ? 0.01
                                                                                      : 1.0;
    *a = (double)ot_node_attr_float(n, "alpha", (float)a_def);
    *b = (double)ot_node_attr_float(n, "beta", 0.5f);
    *gm = (double)ot_node_attr_float(n, "gamma", 1.05070102214813232421875f);
    return op;
}

static bool int_ok(ot_dtype t) { return t == OT_DTYPE_INT32 || t == OT_DTYPE_INT64; }

static bool s_unary(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                    const ot_tensor *const *out, const char **why)
{
    const ot_tensor *x = in_at(n, in, 0);
    double a, b, gm;
    int op = unary_of(n, &a, &b, &gm);
    if (op == OTK_UNARY_NONE) {
        *why = "not an element-wise op";
        return false;
    }
    bool ints = op == OTK_RELU || op == OTK_CLIP;
    if (!x || !(x->dtype == OT_DTYPE_FLOAT || (ints && int_ok(x->dtype)))) {
        *why = ints ? "the CUDA kernel takes float32, int32 and int64"
                    : "the CUDA kernel takes float32 tensors only";
        return false;
    }
    bool (*check)(const ot_graph *, const ot_node *, const ot_tensor *const *,
                  const ot_tensor *const *, const char **) =
        op == OTK_RELU        ? ot_ref_relu_supports
        : op == OTK_LEAKYRELU ? ot_ref_leakyrelu_supports
        : op == OTK_SIGMOID   ? ot_ref_sigmoid_supports
        : op == OTK_CLIP      ? ot_ref_clip_supports
                              : ot_ref_math_unary_supports;
    return ref_check(check, g, n, in, out, why);
}

static ot_status k_unary(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                         const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    const ot_tensor *x = in[0];
    ot_tensor *y = out[0];
    double a, b, gm;
    int op = unary_of(n, &a, &b, &gm);
    int64_t numel = ot_tensor_numel(x);
    const void *lo = NULL, *hi = NULL;
    if (op == OTK_CLIP) {
        if (n->opset < 11) {
            a = (double)ot_node_attr_float(n, "min", -HUGE_VALF);
            b = (double)ot_node_attr_float(n, "max", HUGE_VALF);
        } else {
            const ot_tensor *tmin = in_at(n, in, 1), *tmax = in_at(n, in, 2);
            a = -HUGE_VAL, b = HUGE_VAL;
            lo = tmin && ot_tensor_numel(tmin) == 1 ? tmin->data : NULL;
            hi = tmax && ot_tensor_numel(tmax) == 1 ? tmax->data : NULL;
        }
    }
    if (x->dtype != OT_DTYPE_FLOAT) {
        CK(otk_unary_int(c->stream, op, x->dtype == OT_DTYPE_INT64, lo, hi, x->data, y->data,
                         numel));
        return OT_OK;
    }
    CK(otk_unary_f32(c->stream, op, a, b, gm, lo, hi, CF(x), F(y), numel));
    return OT_OK;
}

static bool s_unary_grad(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                         const ot_tensor *const *out, const char **why)
{
    double a, b, gm;
    if (!all_f32(n, in, out, why))
        return false;
    int op = unary_of(n, &a, &b, &gm);
    if (op == OTK_UNARY_NONE || op == OTK_RELU || op == OTK_LEAKYRELU || op == OTK_SIGMOID ||
        op == OTK_CLIP) {
        *why = "UnaryGrad: unknown op";
        return false;
    }
    return ref_check(ot_ref_unary_grad_supports, g, n, in, out, why);
}

static ot_status k_unary_grad(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                              const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    double a, b, gm;
    int op = unary_of(n, &a, &b, &gm);
    CK(otk_unary_grad_f32(c->stream, op, a, b, gm, CF(in[0]), CF(in[1]), F(out[0]),
                          ot_tensor_numel(in[1])));
    return OT_OK;
}

/* ------------------------------------------------------- pair gradients */

static int pair_kind(const ot_node *n)
{
    if (ot_node_is(n, OT_OP_RELU_GRAD))
        return OTK_G_RELU;
    if (ot_node_is(n, OT_OP_LEAKYRELU_GRAD))
        return OTK_G_LEAKY;
    if (ot_node_is(n, OT_OP_SIGMOID_GRAD))
        return OTK_G_SIGMOID;
    if (ot_node_is(n, OT_OP_CLIP_GRAD))
        return OTK_G_CLIP;
    return OTK_G_DROPOUT;
}

static bool s_pair(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                   const ot_tensor *const *out, const char **why)
{
    const ot_tensor *dy = in_at(n, in, 0), *v = in_at(n, in, 1), *dx = cout_at(n, out, 0);
    int kind = pair_kind(n);
    if (!dy || !v || !dx || dy->dtype != OT_DTYPE_FLOAT || dx->dtype != OT_DTYPE_FLOAT ||
        (v->dtype != OT_DTYPE_FLOAT && !(kind == OTK_G_DROPOUT && v->dtype == OT_DTYPE_BOOL))) {
        *why = "the CUDA kernel takes float32 tensors (and a bool mask) only";
        return false;
    }
    if (kind == OTK_G_CLIP) {
        for (int i = 2; i < 4; i++) {
            const ot_tensor *t = in_at(n, in, i);
            if (t && (t->dtype != OT_DTYPE_FLOAT || ot_tensor_numel(t) > 1)) {
                *why = "ClipGrad: min and max must be float32 scalars";
                return false;
            }
        }
    }
    if (kind == OTK_G_DROPOUT && (!known(g, n, in, 2) || !known(g, n, in, 3))) {
        *why = "DropoutGrad: ratio and training_mode must be constants";
        return false;
    }
    bool (*check)(const ot_graph *, const ot_node *, const ot_tensor *const *,
                  const ot_tensor *const *, const char **) =
        kind == OTK_G_RELU      ? ot_ref_relu_grad_supports
        : kind == OTK_G_LEAKY   ? ot_ref_leakyrelu_grad_supports
        : kind == OTK_G_SIGMOID ? ot_ref_sigmoid_grad_supports
        : kind == OTK_G_CLIP    ? ot_ref_clip_grad_supports
                                : ot_ref_dropout_grad_supports;
    return ref_check(check, g, n, in, out, why);
}

/* a constant scalar input as double, or def (ref_grad_eltwise.c's scalar_in) */
static double const_scalar(const ot_graph *g, const ot_node *n, int i, double def)
{
    const ot_tensor *t = host_const(g, n, i);
    if (!t || !t->data || ot_tensor_numel(t) < 1)
        return def;
    return ot_tensor_get_f64(t, 0);
}

static ot_status k_pair(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                        const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    const ot_tensor *dy = in[0], *v = in[1];
    int kind = pair_kind(n);
    double alpha = ot_node_attr_float(n, "alpha", 0.01f);
    double lo = ot_node_attr_float(n, "min", -3.4028234663852886e+38f);
    double hi = ot_node_attr_float(n, "max", 3.4028234663852886e+38f);
    const float *lo_p = NULL, *hi_p = NULL;
    double scale = 1.0;
    if (kind == OTK_G_CLIP) {
        const ot_tensor *a = in_at(n, in, 2), *b = in_at(n, in, 3);
        lo_p = a && ot_tensor_numel(a) == 1 ? CF(a) : NULL;
        hi_p = b && ot_tensor_numel(b) == 1 ? CF(b) : NULL;
    }
    if (kind == OTK_G_DROPOUT) {
        double ratio = const_scalar(g, n, 2, ot_node_attr_float(n, "ratio", 0.5f));
        bool training = const_scalar(g, n, 3, 0.0) != 0.0 && ratio != 0.0;
        scale = !training ? 1.0 : ratio < 1.0 ? 1.0 / (1.0 - ratio) : 0.0;
    }
    CK(otk_pair_grad_f32(c->stream, kind, alpha, lo_p, hi_p, lo, hi, scale, CF(dy), v->data,
                         v->dtype == OT_DTYPE_BOOL, F(out[0]), ot_tensor_numel(out[0])));
    return OT_OK;
}

/* ------------------------------------------------------- broadcasting */

/* Strides of operand t placed in y's dims [start, start + t->ndim). */
static void place(const ot_tensor *y, const ot_tensor *t, int start, int64_t *s)
{
    int64_t stride = 1;
    for (int i = y->ndim - 1; i >= 0; i--) {
        int j = i - start;
        if (j < 0 || j >= t->ndim) {
            s[i] = 0;
            continue;
        }
        s[i] = t->dims[j] == 1 && y->dims[i] != 1 ? 0 : stride;
        stride *= t->dims[j];
    }
}

/* y's walk with a's and b's strides, size-1 dims dropped and dims that both
   walk contiguously merged. */
static void bcast_of(const ot_tensor *y, const ot_tensor *a, int a_start, const ot_tensor *b,
                     int b_start, otk_bcast *it)
{
    int64_t sa[OT_MAX_DIMS], sb[OT_MAX_DIMS];
    place(y, a, a_start, sa);
    place(y, b, b_start, sb);
    it->nd = 0;
    for (int i = 0; i < y->ndim; i++) {
        if (y->dims[i] == 1)
            continue;
        int k = it->nd - 1;
        if (k >= 0 && it->sa[k] == sa[i] * y->dims[i] && it->sb[k] == sb[i] * y->dims[i]) {
            it->dims[k] *= y->dims[i];
            it->sa[k] = sa[i];
            it->sb[k] = sb[i];
            continue;
        }
        it->dims[it->nd] = y->dims[i];
        it->sa[it->nd] = sa[i];
        it->sb[it->nd] = sb[i];
        it->nd++;
    }
    if (it->nd == 0) {
        it->nd = 1;
        it->dims[0] = 1;
        it->sa[0] = it->sb[0] = 0;
    }
}

/* Where B starts among A's dims in Add/Mul before opset 7; -1: numpy form. */
static int legacy_start(const ot_node *n, const ot_tensor *a, const ot_tensor *b)
{
    if (n->opset >= 7 || n->n_in != 2)
        return -1;
    if (ot_node_attr_int(n, "broadcast", 0) == 0)
        return a->ndim - b->ndim;
    const ot_attr *ax = ot_node_find_attr(n, "axis");
    if (ax && ax->type == OT_ATTR_INT)
        return (int)(ax->i < 0 ? ax->i + a->ndim : ax->i);
    return a->ndim - b->ndim;
}

static int elem_kind(ot_dtype t)
{
    return t == OT_DTYPE_INT32 ? OTK_T_I32 : t == OT_DTYPE_INT64 ? OTK_T_I64 : OTK_T_F32;
}

static int binary_op(const ot_node *n)
{
    switch (n->op->id) {
    case OT_OP_SUB: return OTK_SUB;
    case OT_OP_MUL: return OTK_MUL;
    case OT_OP_DIV: return OTK_DIV;
    case OT_OP_MAX: return OTK_MAX;
    case OT_OP_MIN: return OTK_MIN;
    default: return OTK_ADD; /* Add, Sum, Mean */
    }
}

static bool s_binary(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                     const ot_tensor *const *out, const char **why)
{
    const ot_tensor *y = cout_at(n, out, 0);
    bool mean = ot_node_is(n, OT_OP_MEAN);
    if (!y || !(y->dtype == OT_DTYPE_FLOAT || (!mean && int_ok(y->dtype)))) {
        *why = mean ? "the CUDA kernel takes float32 only"
                    : "the CUDA kernel takes float32, int32 and int64";
        return false;
    }
    bool (*check)(const ot_graph *, const ot_node *, const ot_tensor *const *,
                  const ot_tensor *const *, const char **);
    switch (n->op->id) {
    case OT_OP_ADD: check = ot_ref_add_supports; break;
    case OT_OP_SUB: check = ot_ref_sub_supports; break;
    case OT_OP_MUL: check = ot_ref_mul_supports; break;
    case OT_OP_DIV: check = ot_ref_div_supports; break;
    case OT_OP_SUM: check = ot_ref_sum_supports; break;
    case OT_OP_MEAN: check = ot_ref_mean_supports; break;
    default: check = ot_ref_max_supports; break;
    }
    return ref_check(check, g, n, in, out, why);
}

static ot_status k_binary(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                          const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    ot_tensor *y = out[0];
    int64_t numel = ot_tensor_numel(y);
    int op = binary_op(n), kind = elem_kind(y->dtype);
    bool variadic = ot_node_is(n, OT_OP_SUM) || ot_node_is(n, OT_OP_MEAN) ||
                    ot_node_is(n, OT_OP_MAX) || ot_node_is(n, OT_OP_MIN);
    otk_bcast it;
    if (numel == 0)
        return OT_OK;
    if (variadic && n->n_in == 1) {
        bcast_of(y, in[0], y->ndim - in[0]->ndim, in[0], y->ndim - in[0]->ndim, &it);
        CK(otk_binary(c->stream, OTK_COPY, kind, &it, in[0]->data, in[0]->data, y->data, numel));
    } else {
        int start = variadic ? -1 : legacy_start(n, in[0], in[1]);
        bcast_of(y, in[0], y->ndim - in[0]->ndim, in[1],
                 start >= 0 ? start : y->ndim - in[1]->ndim, &it);
        CK(otk_binary(c->stream, op, kind, &it, in[0]->data, in[1]->data, y->data, numel));
        for (int i = 2; variadic && i < n->n_in; i++) {
            bcast_of(y, y, 0, in[i], y->ndim - in[i]->ndim, &it);
            CK(otk_binary(c->stream, op, kind, &it, y->data, in[i]->data, y->data, numel));
        }
    }
    if (ot_node_is(n, OT_OP_MEAN))
        CK(otk_div_f32(c->stream, F(y), (double)n->n_in, numel));
    return OT_OK;
}

F32_SUPPORTS(s_pow, pow)

static ot_status k_pow(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                       const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    ot_tensor *y = out[0];
    otk_bcast it;
    bcast_of(y, in[0], y->ndim - in[0]->ndim, in[1], y->ndim - in[1]->ndim, &it);
    CK(otk_binary(c->stream, OTK_POW, OTK_T_F32, &it, in[0]->data, in[1]->data, y->data,
                  ot_tensor_numel(y)));
    return OT_OK;
}

/* Where PRelu's slope sits among X's dims (ref_math.c's prelu_start). */
static int prelu_start(const ot_node *n, const ot_tensor *x, const ot_tensor *slope)
{
    if (n->opset < 7 && slope->ndim == 1 && slope->dims[0] > 1 && x->ndim >= 2)
        return 1;
    return x->ndim - slope->ndim;
}

F32_SUPPORTS(s_prelu, prelu)

static ot_status k_prelu(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                         const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    const ot_tensor *x = in[0], *slope = in[1];
    ot_tensor *y = out[0];
    otk_bcast it;
    bcast_of(x, x, 0, slope, prelu_start(n, x, slope), &it);
    CK(otk_binary(c->stream, OTK_PRELU, OTK_T_F32, &it, x->data, slope->data, y->data,
                  ot_tensor_numel(x)));
    return OT_OK;
}

F32_SUPPORTS(s_prelu_grad, prelu_grad)

static ot_status k_prelu_grad(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                              const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    const ot_tensor *dy = in[0], *x = in[1], *slope = in[2];
    ot_tensor *dx = out_at(n, out, 0), *ds = out_at(n, out, 1);
    otk_bcast it;
    int64_t s[OT_MAX_DIMS];
    place(x, slope, prelu_start(n, x, slope), s);
    it.nd = x->ndim > 0 ? x->ndim : 1;
    for (int i = 0; i < it.nd; i++) {
        it.dims[i] = x->ndim > 0 ? x->dims[i] : 1;
        it.sa[i] = 0;
        it.sb[i] = x->ndim > 0 ? s[i] : 0;
    }
    CK(otk_prelu_grad_f32(c->stream, &it, CF(dy), CF(x), CF(slope), OPT_F(dx), OPT_F(ds),
                          ot_tensor_numel(x)));
    return OT_OK;
}

static bool s_extremum_grad(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                            const ot_tensor *const *out, const char **why)
{
    if (!all_f32(n, in, out, why))
        return false;
    if (n->n_in - 2 > OTK_MAX_DIMS) {
        *why = "ExtremumGrad: more than 8 inputs";
        return false;
    }
    return ref_check(ot_ref_extremum_grad_supports, g, n, in, out, why);
}

static ot_status k_extremum_grad(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                                 const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    const ot_tensor *dy = in[0], *y = in[1];
    otk_multi m;
    memset(&m, 0, sizeof m);
    m.nd = y->ndim > 0 ? y->ndim : 1;
    m.n = n->n_in - 2;
    for (int d = 0; d < m.nd; d++)
        m.dims[d] = y->ndim > 0 ? y->dims[d] : 1;
    for (int j = 0; j < m.n; j++) {
        const ot_tensor *x = in[2 + j];
        int64_t s[OT_MAX_DIMS] = { 0 };
        if (y->ndim > 0)
            place(y, x, y->ndim - x->ndim, s);
        m.p[j] = x->data;
        memcpy(m.s[j], s, sizeof s);
    }
    CK(otk_extremum_grad_f32(c->stream, &m, (int)ot_node_attr_int(n, "index", 0), CF(dy), CF(y),
                             F(out[0]), ot_tensor_numel(y)));
    return OT_OK;
}

/* --------------------------------------------------------------- Dropout */

static bool s_dropout(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                      const ot_tensor *const *out, const char **why)
{
    const ot_tensor *x = in_at(n, in, 0), *mask = cout_at(n, out, 1);
    if (!x || x->dtype != OT_DTYPE_FLOAT ||
        (mask && mask->dtype != OT_DTYPE_BOOL && mask->dtype != OT_DTYPE_FLOAT)) {
        *why = "the CUDA kernel takes float32 data and a bool or float32 mask";
        return false;
    }
    if (n->opset >= 12 && (!known(g, n, in, 1) || !known(g, n, in, 2))) {
        *why = "Dropout: ratio and training_mode must be constants";
        return false;
    }
    return ref_check(ot_ref_dropout_supports, g, n, in, out, why);
}

static ot_status k_dropout(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                           const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    const ot_tensor *x = in[0];
    ot_tensor *y = out_at(n, out, 0), *mask = out_at(n, out, 1);
    if (y)
        CK(otk_memcpy_d2d(c->stream, y->data, x->data, x->bytes));
    if (mask && mask->dtype == OT_DTYPE_BOOL)
        CK(otk_memset(c->stream, mask->data, 1, mask->bytes));
    else if (mask)
        CK(otk_fill_f32(c->stream, F(mask), 1.0f, ot_tensor_numel(mask)));
    return OT_OK;
}

static bool s_dropout_train(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                            const ot_tensor *const *out, const char **why)
{
    return ref_check(ot_ref_dropout_train_supports, g, n, in, out, why);
}

static ot_status k_dropout_train(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                                 const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    CK(otk_dropout_train(c->stream, CF(in[0]), (const int64_t *)in[1]->data,
                         ot_node_attr_float(n, "ratio", 0.5f),
                         (uint64_t)ot_node_attr_int(n, "salt", 0), F(out[0]),
                         (uint8_t *)out[1]->data, ot_tensor_numel(in[0])));
    return OT_OK;
}

/* ------------------------------------------------------------------ Cast */

static bool cast_dtype(ot_dtype t)
{
    return t == OT_DTYPE_FLOAT || t == OT_DTYPE_DOUBLE || ot_ref_is_int(t) || t == OT_DTYPE_BOOL;
}

static bool s_cast(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                   const ot_tensor *const *out, const char **why)
{
    const ot_tensor *x = in_at(n, in, 0), *y = cout_at(n, out, 0);
    if (!x || !y || !cast_dtype(x->dtype) || !cast_dtype(y->dtype)) {
        *why = "the CUDA kernel casts between float32, double, integers and bool";
        return false;
    }
    return ref_check(ot_ref_cast_supports, g, n, in, out, why);
}

static ot_status k_cast(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                        const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    const ot_tensor *x = in[0];
    ot_tensor *y = out[0];
    bool ints = (ot_ref_is_int(x->dtype) || x->dtype == OT_DTYPE_BOOL) &&
                (ot_ref_is_int(y->dtype) || y->dtype == OT_DTYPE_BOOL);
    if (x->dtype == y->dtype)
        CK(otk_memcpy_d2d(c->stream, y->data, x->data, x->bytes));
    else
        CK(otk_cast(c->stream, (int)x->dtype, (int)y->dtype, ints, x->data, y->data,
                    ot_tensor_numel(x)));
    return OT_OK;
}

/* ------------------------------------------------------------ Quantization */

/* one scale (n_ch 1) or one per slice along axis (ref_quant.c's layout_of) */
static bool q_layout(const ot_node *n, const ot_tensor *x, const ot_tensor *s, int64_t def_axis,
                     int64_t *n_ch, int64_t *inner)
{
    *n_ch = 1;
    *inner = 1;
    int64_t ns = s ? ot_tensor_numel(s) : 1;
    if (ns == 1)
        return true;
    int64_t axis = ot_node_attr_int(n, "axis", def_axis);
    if (axis < 0)
        axis += x->ndim;
    if (axis < 0 || axis >= x->ndim || x->dims[axis] != ns)
        return false;
    *n_ch = ns;
    *inner = ot_ref_prod(x, (int)axis + 1, x->ndim);
    return true;
}

static bool s_qdq(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                  const ot_tensor *const *out, const char **why)
{
    for (int i = 0; i < 3; i++) {
        const ot_tensor *t = i < n->n_in ? in_at(n, in, i) : NULL;
        if (t && (t->dtype == OT_DTYPE_FLOAT16 || t->dtype == OT_DTYPE_BFLOAT16)) {
            *why = "the CUDA kernel takes no float16 or bfloat16";
            return false;
        }
    }
    const ot_tensor *y = cout_at(n, out, 0);
    if (y && (y->dtype == OT_DTYPE_FLOAT16 || y->dtype == OT_DTYPE_BFLOAT16)) {
        *why = "the CUDA kernel takes no float16 or bfloat16";
        return false;
    }
    return ref_check(ot_node_is(n, OT_OP_QUANTIZE_LINEAR) ? ot_ref_quantize_linear_supports
                                                          : ot_ref_dequantize_linear_supports,
                     g, n, in, out, why);
}

static ot_status k_qdq(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                       const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    const ot_tensor *x = in[0], *s = in[1], *zp = in_at(n, in, 2);
    ot_tensor *y = out[0];
    int64_t n_ch, inner;
    q_layout(n, x, s, 1, &n_ch, &inner);
    int zt = zp ? (int)zp->dtype : 0;
    if (ot_node_is(n, OT_OP_QUANTIZE_LINEAR)) {
        double lo, hi;
        switch (y->dtype) {
        case OT_DTYPE_INT8: lo = -128, hi = 127; break;
        case OT_DTYPE_UINT8: lo = 0, hi = 255; break;
        case OT_DTYPE_INT16: lo = -32768, hi = 32767; break;
        case OT_DTYPE_UINT16: lo = 0, hi = 65535; break;
        default: lo = -2147483648.0, hi = 2147483647.0; break;
        }
        CK(otk_quantize(c->stream, (int)x->dtype, (int)s->dtype, zt, (int)y->dtype, x->data,
                        s->data, zp ? zp->data : NULL, y->data, lo, hi, n_ch, inner,
                        ot_tensor_numel(x)));
    } else {
        CK(otk_dequantize(c->stream, (int)x->dtype, (int)s->dtype, zt, (int)y->dtype, x->data,
                          s->data, zp ? zp->data : NULL, y->data, n_ch, inner,
                          ot_tensor_numel(x)));
    }
    return OT_OK;
}

/* FakeQuant's layout (ref_quant.c's fq_layout) */
static void fq_layout(const ot_node *n, const ot_tensor *x, const ot_tensor *s, int64_t *n_ch,
                      int64_t *inner)
{
    if (ot_node_attr_int(n, "dynamic", 0)) {
        *n_ch = 1;
        *inner = 1;
        if (!ot_node_attr_int(n, "per_channel", 0))
            return;
        int64_t axis = ot_node_attr_int(n, "axis", 0);
        if (axis < 0)
            axis += x->ndim;
        *n_ch = x->dims[axis];
        *inner = ot_ref_prod(x, (int)axis + 1, x->ndim);
        return;
    }
    q_layout(n, x, s, 0, n_ch, inner);
}

static bool s_fake_quant(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                         const ot_tensor *const *out, const char **why)
{
    return ref_check(ot_node_is(n, OT_OP_FAKE_QUANT) ? ot_ref_fake_quant_supports
                                                     : ot_ref_fake_quant_grad_supports,
                     g, n, in, out, why);
}

static size_t z_fake_quant(const ot_node *n, const ot_tensor *const *in,
                           const ot_tensor *const *out)
{
    (void)out;
    const ot_tensor *x = in_at(n, in, ot_node_is(n, OT_OP_FAKE_QUANT) ? 0 : 1);
    int64_t n_ch, inner;
    if (!x || !ot_node_attr_int(n, "dynamic", 0))
        return 0;
    fq_layout(n, x, NULL, &n_ch, &inner);
    return sizeof(float) * (size_t)n_ch;
}

static ot_status k_fake_quant(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                              const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    bool grad = ot_node_is(n, OT_OP_FAKE_QUANT_GRAD);
    const ot_tensor *dy = grad ? in[0] : NULL, *x = in[grad ? 1 : 0];
    const ot_tensor *s = in_at(n, in, grad ? 2 : 1);
    int64_t n_ch, inner, numel = ot_tensor_numel(x);
    fq_layout(n, x, s, &n_ch, &inner);
    double qmin = (double)ot_node_attr_int(n, "qmin", -127);
    double qmax = (double)ot_node_attr_int(n, "qmax", 127);
    const float *scale;
    int per_ch = n_ch > 1;
    if (ot_node_attr_int(n, "dynamic", 0)) {
        float *ws = c->scratch;
        int64_t outer = n_ch * inner > 0 ? numel / (n_ch * inner) : 0;
        CK(otk_fq_dyn_scale(c->stream, CF(x), ws, n_ch, inner, outer, qmax));
        scale = ws;
    } else {
        scale = CF(s);
    }
    CK(otk_fake_quant(c->stream, CF(x), scale, per_ch, OPT_CF(dy), F(out[0]), qmin, qmax, n_ch,
                      inner, numel));
    return OT_OK;
}

/* ----------------------------------------------------------------- Pools */

static void geom_of(const ot_ref_geom *r, otk_geom *q)
{
    q->N = r->N;
    q->C = r->C;
    q->nhwc = 0;
    for (int i = 0; i < 3; i++) {
        q->in[i] = r->in[i], q->k[i] = r->k[i], q->o[i] = r->o[i];
        q->s[i] = r->s[i], q->d[i] = r->d[i], q->pb[i] = r->pb[i], q->pe[i] = r->pe[i];
    }
}

static bool s_maxpool(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                      const ot_tensor *const *out, const char **why)
{
    const ot_tensor *x = in_at(n, in, 0), *y = cout_at(n, out, 0);
    if (!x || !y || x->dtype != OT_DTYPE_FLOAT || y->dtype != OT_DTYPE_FLOAT) {
        *why = "the CUDA kernel takes float32 tensors only";
        return false;
    }
    return ref_check(ot_ref_maxpool_supports, g, n, in, out, why);
}

static ot_status k_maxpool(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                           const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    const ot_tensor *x = in[0];
    ot_tensor *y = out[0], *idx = out_at(n, out, 1);
    ot_ref_geom r;
    otk_geom q;
    ot_ref_window(n, x, ot_node_attr_ints(n, "kernel_shape", &(size_t){ 0 }), y, &r);
    geom_of(&r, &q);
    q.nhwc = c->nhwc;
    bool col_major = n->opset >= 8 && ot_node_attr_int(n, "storage_order", 0) != 0;
    CK(otk_maxpool_f32(c->stream, &q, CF(x), F(y), idx ? (int64_t *)idx->data : NULL,
                       col_major));
    return OT_OK;
}

F32_SUPPORTS(s_avgpool, avgpool)

static ot_status k_avgpool(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                           const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    ot_ref_geom r;
    otk_geom q;
    ot_ref_window(n, in[0], ot_node_attr_ints(n, "kernel_shape", &(size_t){ 0 }), out[0], &r);
    geom_of(&r, &q);
    q.nhwc = c->nhwc;
    bool include_pad = n->opset >= 7 && ot_node_attr_int(n, "count_include_pad", 0) != 0;
    CK(otk_avgpool_f32(c->stream, &q, include_pad, CF(in[0]), F(out[0])));
    return OT_OK;
}

F32_SUPPORTS(s_maxpool_grad, maxpool_grad)

static ot_status k_maxpool_grad(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                                const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    ot_ref_geom r;
    otk_geom q;
    ot_ref_window(n, in[1], ot_node_attr_ints(n, "kernel_shape", &(size_t){ 0 }), in[0], &r);
    geom_of(&r, &q);
    q.nhwc = c->nhwc;
    CK(otk_maxpool_grad_f32(c->stream, &q, CF(in[0]), CF(in[1]), F(out[0])));
    return OT_OK;
}

F32_SUPPORTS(s_avgpool_grad, avgpool_grad)

static ot_status k_avgpool_grad(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                                const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    ot_ref_geom r;
    otk_geom q;
    ot_ref_window(n, out[0], ot_node_attr_ints(n, "kernel_shape", &(size_t){ 0 }), in[0], &r);
    geom_of(&r, &q);
    q.nhwc = c->nhwc;
    bool include_pad = ot_node_attr_int(n, "count_include_pad", 0) != 0;
    CK(otk_avgpool_grad_f32(c->stream, &q, include_pad, CF(in[0]), F(out[0])));
    return OT_OK;
}

F32_SUPPORTS(s_globalavgpool, globalavgpool)
F32_SUPPORTS(s_globalmaxpool, globalmaxpool)

static ot_status k_global_pool(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                               const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    const ot_tensor *x = in[0];
    CK(otk_global_pool_f32(c->stream, ot_node_is(n, OT_OP_GLOBALMAXPOOL), CF(x), F(out[0]),
                           x->dims[0] * x->dims[1], ot_ref_prod(x, 2, x->ndim), x->dims[1],
                           c->nhwc));
    return OT_OK;
}

F32_SUPPORTS(s_globalavgpool_grad, globalavgpool_grad)
F32_SUPPORTS(s_globalmaxpool_grad, globalmaxpool_grad)

static ot_status k_global_pool_grad(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                                    const ot_tensor *const *in, ot_tensor *const *out,
                                    ot_err *err)
{
    (void)g;
    ot_tensor *dx = out[0];
    bool is_max = ot_node_is(n, OT_OP_GLOBALMAXPOOL_GRAD);
    CK(otk_global_pool_grad_f32(c->stream, is_max, CF(in[0]), is_max ? CF(in[1]) : NULL, F(dx),
                                dx->dims[0] * dx->dims[1], ot_ref_prod(dx, 2, dx->ndim),
                                dx->dims[1], c->nhwc));
    return OT_OK;
}

/* ------------------------------------------------------------- BatchNorm */

/* whether a node with sync=1 would reduce over several processes */
static bool bn_synced(const ot_node *n)
{
    if (!ot_node_attr_int(n, "sync", 0))
        return false;
    ot_comm *cm = ot_dist_current();
    return cm && cm->size > 1;
}

static bool s_bn_common(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                        const ot_tensor *const *out, const char **why,
                        bool (*check)(const ot_graph *, const ot_node *, const ot_tensor *const *,
                                      const ot_tensor *const *, const char **))
{
    if (!all_f32(n, in, out, why))
        return false;
    if (bn_synced(n)) {
        ot_comm *cm = ot_dist_current();
        if (!cm->dev || ot_comm_dev_on_host(cm)) {
            *why = "synchronised BatchNorm over several processes on CUDA needs NCCL's "
                   "communicator";
            return false;
        }
        if (ot_node_is(n, OT_OP_BATCHNORM)) {
            *why = "synchronised BatchNorm: BatchNormTrain and BatchNormGrad only";
            return false;
        }
    }
    return ref_check(check, g, n, in, out, why);
}

static bool s_batchnorm(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                        const ot_tensor *const *out, const char **why)
{
    return s_bn_common(g, n, in, out, why, ot_ref_batchnorm_supports);
}

static bool s_bn_train(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                       const ot_tensor *const *out, const char **why)
{
    return s_bn_common(g, n, in, out, why, ot_ref_batchnorm_train_supports);
}

static bool s_bn_grad(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                      const ot_tensor *const *out, const char **why)
{
    return s_bn_common(g, n, in, out, why, ot_ref_batchnorm_grad_supports);
}

static size_t z_bn(const ot_node *n, const ot_tensor *const *in, const ot_tensor *const *out)
{
    (void)out;
    const ot_tensor *x = in_at(n, in, ot_node_is(n, OT_OP_BATCHNORM_GRAD) ? 1 : 0);
    if (!x || x->ndim < 2)
        return 0;
    return otk_bn_scratch_bytes(x->dims[1], x->dims[0] * ot_ref_prod(x, 2, x->ndim));
}

static ot_status k_batchnorm(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                             const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    const ot_tensor *x = in[0];
    ot_tensor *rm = out_at(n, out, 1), *rv = out_at(n, out, 2);
    bool training = n->opset >= 14 && ot_node_attr_int(n, "training_mode", 0) != 0;
    CK(otk_bn_infer_f32(c->stream, training, CF(x), CF(in[1]), CF(in[2]), CF(in[3]), CF(in[4]),
                        F(out[0]), OPT_F(rm), OPT_F(rv), ot_node_attr_float(n, "epsilon", 1e-5f),
                        ot_node_attr_float(n, "momentum", 0.9f), x->dims[0], x->dims[1],
                        ot_ref_prod(x, 2, x->ndim), c->nhwc, c->scratch));
    return OT_OK;
}

/* Synchronised BatchNorm's reductions: NCCL on the kernel's stream
   (src/dist/nccl.c), the failure kept for the kernel's error. */
typedef struct bn_reduce_ctx {
    ot_comm *cm;
    ot_err *err;
} bn_reduce_ctx;

static int bn_reduce(void *ctx, double *p, int64_t n, void *stream)
{
    bn_reduce_ctx *r = ctx;
    return ot_comm_dev_allreduce(r->cm, p, (size_t)n, true, stream, r->err) != OT_OK;
}

static ot_status k_bn_train(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                            const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    const ot_tensor *x = in[0];
    ot_tensor *s1 = out_at(n, out, 1), *s2 = out_at(n, out, 2), *s3 = out_at(n, out, 3),
              *s4 = out_at(n, out, 4);
    if (bn_synced(n)) {
        /* every rank's elements per channel: this rank's over its share */
        ot_comm *cm = ot_dist_current();
        int64_t M = x->dims[0] * ot_ref_prod(x, 2, x->ndim);
        double M_all = (double)llround((double)M / (double)cm->grad_weight);
        bn_reduce_ctx r = { cm, err };
        int rc = otk_bn_train_sync_f32(
            c->stream, CF(x), CF(in[1]), CF(in[2]), CF(in[3]), CF(in[4]), F(out[0]), OPT_F(s1),
            OPT_F(s2), OPT_F(s3), OPT_F(s4), ot_node_attr_float(n, "epsilon", 1e-5f),
            ot_node_attr_float(n, "momentum", 0.9f), x->dims[0], x->dims[1],
            ot_ref_prod(x, 2, x->ndim), c->nhwc, M_all, bn_reduce, &r, c->scratch);
        if (rc == -1)
            return err->code;
        CK(rc);
        return OT_OK;
    }
    CK(otk_bn_train_f32(c->stream, CF(x), CF(in[1]), CF(in[2]), CF(in[3]), CF(in[4]), F(out[0]),
                        OPT_F(s1), OPT_F(s2), OPT_F(s3), OPT_F(s4),
                        ot_node_attr_float(n, "epsilon", 1e-5f),
                        ot_node_attr_float(n, "momentum", 0.9f), x->dims[0], x->dims[1],
                        ot_ref_prod(x, 2, x->ndim), c->nhwc, c->scratch));
    return OT_OK;
}

static ot_status k_bn_grad(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                           const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    const ot_tensor *x = in[1];
    ot_tensor *dx = out_at(n, out, 0), *ds = out_at(n, out, 1), *db = out_at(n, out, 2);
    if (bn_synced(n) && ot_node_attr_int(n, "training_mode", 1) != 0) {
        ot_comm *cm = ot_dist_current();
        bn_reduce_ctx r = { cm, err };
        int rc = otk_bn_grad_sync_f32(c->stream, CF(in[0]), CF(x), CF(in[2]), CF(in[3]),
                                      CF(in[4]), ot_node_attr_float(n, "epsilon", 1e-5f),
                                      (double)cm->grad_weight, OPT_F(dx), OPT_F(ds), OPT_F(db),
                                      x->dims[0], x->dims[1], ot_ref_prod(x, 2, x->ndim),
                                      c->nhwc, bn_reduce, &r, c->scratch);
        if (rc == -1)
            return err->code;
        CK(rc);
        return OT_OK;
    }
    CK(otk_bn_grad_f32(c->stream, CF(in[0]), CF(x), CF(in[2]), CF(in[3]), CF(in[4]),
                       ot_node_attr_int(n, "training_mode", 1) != 0,
                       ot_node_attr_float(n, "epsilon", 1e-5f), OPT_F(dx), OPT_F(ds), OPT_F(db),
                       x->dims[0], x->dims[1], ot_ref_prod(x, 2, x->ndim), c->nhwc,
                       c->scratch));
    return OT_OK;
}

/* ------------------------------------------- Layer, Instance, GroupNorm */

/* ref_normalize.c's norm_geom_of */
static bool norm_geom(const char *type, const ot_tensor *x, int64_t axis, int64_t groups,
                      int64_t n_param, otk_norm *q)
{
    memset(q, 0, sizeof *q);
    if (!strcmp(type, "LayerNormalization")) {
        q->kind = OTK_NORM_LAYER;
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
    if (!strcmp(type, "InstanceNormalization")) {
        q->kind = OTK_NORM_INSTANCE;
        q->G = q->C;
        q->rows = x->dims[0] * q->C;
        q->M = q->S;
        return n_param == q->C;
    }
    if (strcmp(type, "GroupNormalization") || groups < 1 || q->C % groups != 0)
        return false;
    q->kind = OTK_NORM_GROUP;
    q->G = groups;
    q->rows = x->dims[0] * groups;
    q->M = q->C / groups * q->S;
    q->per_channel = n_param == q->C && q->C != groups;
    return n_param == q->C || n_param == groups;
}

F32_SUPPORTS(s_normalize, normalize)

static ot_status k_normalize(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                             const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    const ot_tensor *x = in[0], *scale = in[1], *b = in_at(n, in, 2);
    ot_tensor *mo = out_at(n, out, 1), *ro = out_at(n, out, 2);
    int64_t axis = ot_node_attr_int(n, "axis", -1);
    otk_norm q;
    norm_geom(n->op_type, x, axis < 0 ? axis + x->ndim : axis,
              ot_node_attr_int(n, "num_groups", 1), ot_tensor_numel(scale), &q);
    CK(otk_normalize_f32(c->stream, &q, (double)ot_node_attr_float(n, "epsilon", 1e-5f), CF(x),
                         CF(scale), OPT_CF(b), F(out[0]), OPT_F(mo), OPT_F(ro)));
    return OT_OK;
}

F32_SUPPORTS(s_norm_grad, norm_grad)

static size_t z_norm_grad(const ot_node *n, const ot_tensor *const *in,
                          const ot_tensor *const *out)
{
    (void)out;
    const ot_tensor *x = in_at(n, in, 1), *scale = in_at(n, in, 2);
    otk_norm q;
    if (!x || !scale ||
        !norm_geom(ot_node_attr_string(n, "mode", ""), x, ot_node_attr_int(n, "axis", 1),
                   ot_node_attr_int(n, "num_groups", 1), ot_tensor_numel(scale), &q))
        return 0;
    return 2 * sizeof(double) * (size_t)q.rows;
}

static ot_status k_norm_grad(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                             const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    const ot_tensor *x = in[1], *scale = in[2];
    ot_tensor *dx = out_at(n, out, 0), *ds = out_at(n, out, 1), *db = out_at(n, out, 2);
    otk_norm q;
    norm_geom(ot_node_attr_string(n, "mode", ""), x, ot_node_attr_int(n, "axis", 1),
              ot_node_attr_int(n, "num_groups", 1), ot_tensor_numel(scale), &q);
    CK(otk_norm_grad_f32(c->stream, &q, (double)ot_node_attr_float(n, "epsilon", 1e-5f),
                         ot_tensor_numel(scale), CF(in[0]), CF(x), CF(scale), OPT_F(dx),
                         OPT_F(ds), OPT_F(db), c->scratch));
    return OT_OK;
}

F32_SUPPORTS(s_lrn, lrn)
F32_SUPPORTS(s_lrn_grad, lrn_grad)

static ot_status k_lrn(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                       const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    bool grad = ot_node_is(n, OT_OP_LRN_GRAD);
    const ot_tensor *x = in[grad ? 1 : 0];
    CK(otk_lrn_f32(c->stream, grad ? CF(in[0]) : NULL, CF(x), F(out[0]),
                   ot_node_attr_float(n, "alpha", 1e-4f), ot_node_attr_float(n, "beta", 0.75f),
                   ot_node_attr_float(n, "bias", 1.0f), ot_node_attr_int(n, "size", 1),
                   x->dims[0], x->dims[1], ot_ref_prod(x, 2, x->ndim)));
    return OT_OK;
}

/* -------------------------------------------------------- Softmax, loss */

/* (outer, L, inner) of the normalised axis: Softmax's (coerced to 2-D
   before opset 13) or the backward ops' (axis -1, coerce_2d) */
static bool softmax_split(const ot_node *n, const ot_tensor *x, int64_t *outer, int64_t *L,
                          int64_t *inner)
{
    bool grad = ot_node_is(n, OT_OP_SOFTMAX_GRAD) || ot_node_is(n, OT_OP_LOGSOFTMAX_GRAD);
    int r = x->ndim;
    int64_t axis = ot_node_attr_int(n, "axis", grad || n->opset >= 13 ? -1 : 1);
    bool coerce = grad ? ot_node_attr_int(n, "coerce_2d", 0) != 0 : n->opset < 13;
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

F32_SUPPORTS(s_softmax, softmax)
F32_SUPPORTS(s_logsoftmax, logsoftmax)
F32_SUPPORTS(s_softmax_grad, softmax_grad)
F32_SUPPORTS(s_logsoftmax_grad, logsoftmax_grad)

static ot_status k_softmax(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                           const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    int64_t outer = 1, L = 1, inner = 1;
    if (!softmax_split(n, in[0], &outer, &L, &inner))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s: axis out of range", n->op_type);
    bool is_log = ot_node_is(n, OT_OP_LOGSOFTMAX) || ot_node_is(n, OT_OP_LOGSOFTMAX_GRAD);
    if (ot_node_is(n, OT_OP_SOFTMAX) || ot_node_is(n, OT_OP_LOGSOFTMAX))
        CK(otk_softmax_f32(c->stream, is_log, CF(in[0]), F(out[0]), outer, L, inner));
    else
        CK(otk_softmax_grad_f32(c->stream, is_log, CF(in[0]), CF(in[1]), F(out[0]), outer, L,
                                inner));
    return OT_OK;
}

static bool s_xent(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                   const ot_tensor *const *out, const char **why)
{
    bool grad = ot_node_is(n, OT_OP_SOFTMAX_XENT_GRAD);
    for (int i = 0; i < n->n_in; i++) {
        const ot_tensor *t = in_at(n, in, i);
        if (t && i != (grad ? 2 : 1) && t->dtype != OT_DTYPE_FLOAT) {
            *why = "the CUDA kernel takes float32 logits only";
            return false;
        }
    }
    const ot_tensor *o = cout_at(n, out, 0);
    if (o && o->dtype != OT_DTYPE_FLOAT) {
        *why = "the CUDA kernel takes float32 logits only";
        return false;
    }
    return ref_check(grad ? ot_ref_softmax_xent_grad_supports : ot_ref_softmax_xent_supports, g,
                     n, in, out, why);
}

static size_t z_xent(const ot_node *n, const ot_tensor *const *in, const ot_tensor *const *out)
{
    (void)out;
    const ot_tensor *x = in_at(n, in, ot_node_is(n, OT_OP_SOFTMAX_XENT_GRAD) ? 1 : 0);
    return x && x->ndim >= 1 ? sizeof(double) * (size_t)x->dims[0] : 0;
}

static ot_status k_xent(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                        const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    bool grad = ot_node_is(n, OT_OP_SOFTMAX_XENT_GRAD);
    const ot_tensor *x = in[grad ? 1 : 0], *lab = in[grad ? 2 : 1];
    double eps = ot_node_attr_float(n, "label_smoothing", 0.0f);
    int lab64 = lab->dtype == OT_DTYPE_INT64;
    if (grad)
        CK(otk_xent_grad_f32(c->stream, CF(in[0]), CF(x), lab->data, lab64, eps, F(out[0]),
                             x->dims[0], x->dims[1], c->scratch));
    else
        CK(otk_xent_f32(c->stream, CF(x), lab->data, lab64, eps, F(out[0]), x->dims[0],
                        x->dims[1], c->scratch));
    return OT_OK;
}

/* ------------------------------------------------------------ reductions */

static int red_kind(const char *type)
{
    return !strcmp(type, "ReduceMean") ? OTK_RED_MEAN
           : !strcmp(type, "ReduceMax") ? OTK_RED_MAX
           : !strcmp(type, "ReduceL2")  ? OTK_RED_L2
                                        : OTK_RED_SUM;
}

/* the walk of a reduction of x over the masked dims (ref_math.c's red_init);
   nhwc: a rank-4 x stored channels-last (the kept dims still walk in
   [N, C, H, W] order) */
static void red_of_in(const ot_tensor *x, const bool *mask, bool nhwc, otk_red *w)
{
    int64_t stride = 1, xs[OT_MAX_DIMS];
    memset(w, 0, sizeof *w);
    for (int d = x->ndim - 1; d >= 0; d--) {
        xs[d] = stride;
        stride *= x->dims[d];
    }
    if (nhwc && x->ndim == 4) {
        xs[1] = 1;
        xs[3] = x->dims[1];
        xs[2] = xs[3] * x->dims[3];
        xs[0] = xs[2] * x->dims[2];
    }
    w->n_out = w->n_red = 1;
    w->nd = x->ndim > 0 ? x->ndim : 1;
    w->dims[0] = 1;
    for (int d = 0; d < x->ndim; d++) {
        w->dims[d] = x->dims[d];
        w->kept[d] = !mask[d];
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

static void red_of(const ot_tensor *x, const bool *mask, otk_red *w)
{
    red_of_in(x, mask, false, w);
}

/* the reduction's walk, from the axes (input or attribute); false when the
   axes are not known on the host */
static bool red_walk(const ot_graph *g, const ot_node *n, const ot_tensor *x, bool grad,
                     bool nhwc, otk_red *w)
{
    bool mask[OT_MAX_DIMS] = { false };
    const ot_tensor *axes = grad ? NULL : host_const(g, n, 1);
    if (!ot_op_reduce_axes(n, axes, x->ndim, mask))
        return false;
    red_of_in(x, mask, nhwc, w);
    return true;
}

static bool s_reduce(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                     const ot_tensor *const *out, const char **why)
{
    const ot_tensor *x = in_at(n, in, 0), *y = cout_at(n, out, 0);
    if (!x || !y || x->dtype != OT_DTYPE_FLOAT || y->dtype != OT_DTYPE_FLOAT) {
        *why = "the CUDA kernel takes float32 tensors only";
        return false;
    }
    if (!known(g, n, in, 1)) {
        *why = "reduction: axes computed at run time";
        return false;
    }
    return ref_check(ot_ref_reduce_supports, g, n, in, out, why);
}

/* scratch: partial sums; for ReduceGrad, the ties per output */
static size_t z_reduce(const ot_node *n, const ot_tensor *const *in, const ot_tensor *const *out)
{
    bool grad = ot_node_is(n, OT_OP_REDUCE_GRAD);
    const ot_tensor *x = in_at(n, in, grad ? 1 : 0);
    const ot_tensor *y = grad ? in_at(n, in, 0) : cout_at(n, out, 0);
    if (!x || !y)
        return 0;
    int64_t n_out = ot_tensor_numel(y), nx = ot_tensor_numel(x);
    int64_t n_red = n_out > 0 ? nx / n_out : 0;
    return grad ? sizeof(double) * (size_t)(n_out + 1) : otk_red_scratch_bytes(n_out, n_red);
}

static ot_status k_reduce(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                          const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    otk_red w;
    /* channels-last x (the layout pass lets only a result stored alike in
       both layouts through: over H and W, or over C) */
    if (!red_walk(g, n, in[0], false, c->nhwc != 0, &w))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s: axes out of range", n->op_type);
    CK(otk_reduce_f32(c->stream, &w, red_kind(n->op_type), CF(in[0]), F(out[0]), c->scratch));
    return OT_OK;
}

F32_SUPPORTS(s_reduce_grad, reduce_grad)

static ot_status k_reduce_grad(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                               const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    otk_red w;
    if (!red_walk(g, n, in[1], true, false, &w))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "ReduceGrad: axes out of range");
    const ot_tensor *yv = in_at(n, in, 2);
    CK(otk_reduce_grad_f32(c->stream, &w, red_kind(ot_node_attr_string(n, "mode", "")),
                           CF(in[0]), CF(in[1]), OPT_CF(yv), F(out[0]), c->scratch));
    return OT_OK;
}

/* Strides of small placed into big (from `axis` or right-aligned), as
   ref_grad_eltwise.c's placed_strides. */
static void placed_strides(const ot_node *n, const ot_tensor *big, const ot_tensor *small,
                           int64_t *s)
{
    const ot_attr *a = ot_node_find_attr(n, "axis");
    int start = a && a->type == OT_ATTR_INT ? (int)a->i : big->ndim - small->ndim;
    place(big, small, start, s);
}

F32_SUPPORTS(s_reduce_sum_to, reduce_sum_to)

static size_t z_reduce_sum_to(const ot_node *n, const ot_tensor *const *in,
                              const ot_tensor *const *out)
{
    const ot_tensor *x = in_at(n, in, 0), *y = cout_at(n, out, 0);
    if (!x || !y)
        return 0;
    int64_t n_out = ot_tensor_numel(y), nx = ot_tensor_numel(x);
    return otk_red_scratch_bytes(n_out, n_out > 0 ? nx / n_out : 0);
}

static ot_status k_reduce_sum_to(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                                 const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    const ot_tensor *x = in[0];
    int64_t s[OT_MAX_DIMS];
    bool mask[OT_MAX_DIMS] = { false };
    placed_strides(n, x, out[0], s);
    for (int d = 0; d < x->ndim; d++)
        mask[d] = s[d] == 0 && x->dims[d] != 1;
    otk_red w;
    red_of(x, mask, &w);
    CK(otk_reduce_f32(c->stream, &w, OTK_RED_SUM, CF(x), F(out[0]), c->scratch));
    return OT_OK;
}

/* ------------------------------------------------------ data movement */

static size_t dsize(ot_dtype t) { return ot_dtype_size(t); }

static bool es_ok(const ot_tensor *t)
{
    size_t es = t ? dsize(t->dtype) : 0;
    return t && t->dtype != OT_DTYPE_STRING && (es == 1 || es == 2 || es == 4 || es == 8);
}

/* the element sizes of the data input and output are 1, 2, 4 or 8 bytes */
static bool data_es(const ot_node *n, const ot_tensor *const *in, const ot_tensor *const *out,
                    const char **why)
{
    if (!es_ok(in_at(n, in, 0)) || !es_ok(cout_at(n, out, 0))) {
        *why = "the CUDA kernel moves elements of 1, 2, 4 or 8 bytes";
        return false;
    }
    return true;
}

#define DATA_SUPPORTS(name, refname)                                                            \
    static bool name(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,           \
                     const ot_tensor *const *out, const char **why)                             \
    {                                                                                           \
        return data_es(n, in, out, why) &&                                                      \
               ref_check(ot_ref_##refname##_supports, g, n, in, out, why);                     \
    }

DATA_SUPPORTS(s_copy, copy)

static ot_status k_copy(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                        const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    CK(otk_memcpy_d2d(c->stream, out[0]->data, in[0]->data, in[0]->bytes));
    return OT_OK;
}

static bool s_concat(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                     const ot_tensor *const *out, const char **why)
{
    if (!es_ok(cout_at(n, out, 0))) {
        *why = "the CUDA kernel moves elements of 1, 2, 4 or 8 bytes";
        return false;
    }
    return ref_check(ot_ref_concat_supports, g, n, in, out, why);
}

static ot_status k_concat(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                          const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    ot_tensor *y = out[0];
    int64_t ax = ot_node_attr_int(n, "axis", 1);
    int axis = (int)(ax < 0 ? ax + y->ndim : ax);
    int64_t outer = ot_ref_prod(y, 0, axis), inner = ot_ref_prod(y, axis + 1, y->ndim);
    int64_t at = 0;
    for (int i = 0; i < n->n_in; i++) {
        int64_t len = in[i]->dims[axis] * inner;
        otk_copy p = { .nd = 2,
                       .dims = { outer, len },
                       .ss = { len, 1 },
                       .ds = { y->dims[axis] * inner, 1 },
                       .sbase = 0,
                       .dbase = at };
        if (len > 0 && outer > 0)
            CK(otk_copy_plan(c->stream, &p, (int)dsize(y->dtype), in[i]->data, y->data));
        at += len;
    }
    return OT_OK;
}

/* row-major strides of t */
static void strides_of(const ot_tensor *t, int64_t *s)
{
    int64_t stride = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        s[i] = stride;
        stride *= t->dims[i];
    }
}

/* a copy plan over y's dims, y contiguous, x walked by ss from sbase */
static void plan_into_y(const ot_tensor *y, const int64_t *ss, int64_t sbase, otk_copy *p)
{
    memset(p, 0, sizeof *p);
    p->nd = y->ndim > 0 ? y->ndim : 1;
    p->dims[0] = 1;
    strides_of(y, p->ds);
    for (int i = 0; i < y->ndim; i++) {
        p->dims[i] = y->dims[i];
        p->ss[i] = ss[i];
    }
    p->sbase = sbase;
}

DATA_SUPPORTS(s_transpose, transpose)

static ot_status k_transpose(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                             const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    const ot_tensor *x = in[0];
    ot_tensor *y = out[0];
    int r = x->ndim;
    size_t len = 0;
    const int64_t *perm = ot_node_attr_ints(n, "perm", &len);
    int64_t xs[OT_MAX_DIMS], s[OT_MAX_DIMS];
    strides_of(x, xs);
    for (int i = 0; i < r; i++)
        s[i] = xs[perm ? perm[i] : r - 1 - i];
    otk_copy p;
    plan_into_y(y, s, 0, &p);
    if (ot_tensor_numel(y) > 0)
        CK(otk_copy_plan(c->stream, &p, (int)dsize(x->dtype), x->data, y->data));
    return OT_OK;
}

static bool s_slice(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                    const ot_tensor *const *out, const char **why)
{
    for (int i = 1; i < 5; i++)
        if (!known(g, n, in, i)) {
            *why = "Slice: starts, ends, axes and steps must be constants";
            return false;
        }
    return data_es(n, in, out, why) && ref_check(ot_ref_slice_supports, g, n, in, out, why);
}

static ot_status k_slice(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                         const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    const ot_tensor *x = in[0];
    ot_tensor *y = out[0];
    int64_t starts[OT_MAX_DIMS], ends[OT_MAX_DIMS], axes[OT_MAX_DIMS], steps[OT_MAX_DIMS];
    int count = 0;
    bool has_axes, has_steps;
    const ot_tensor *ops[5] = { NULL };
    const char *why = NULL;
    ot_slice_axis sa[OT_MAX_DIMS];
    for (int i = 1; i < 5; i++)
        ops[i] = host_const(g, n, i);
    if (!ot_slice_operands(n, ops, starts, ends, axes, steps, &count, &has_axes, &has_steps) ||
        !ot_slice_resolve(x->ndim, x->dims, starts, ends, has_axes ? axes : NULL,
                          has_steps ? steps : NULL, count, sa, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "Slice: %s",
                          why ? why : "operands not known on the host");
    int64_t xs[OT_MAX_DIMS], s[OT_MAX_DIMS], base = 0;
    strides_of(x, xs);
    for (int d = 0; d < x->ndim; d++) {
        s[d] = sa[d].step * xs[d];
        base += sa[d].start * xs[d];
    }
    otk_copy p;
    plan_into_y(y, s, base, &p);
    if (ot_tensor_numel(y) > 0)
        CK(otk_copy_plan(c->stream, &p, (int)dsize(x->dtype), x->data, y->data));
    return OT_OK;
}

DATA_SUPPORTS(s_slice_axis, slice_axis)

static ot_status k_slice_axis(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                              const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    const ot_tensor *x = in[0];
    ot_tensor *y = out[0];
    int axis = (int)ot_node_attr_int(n, "axis", 0);
    if (axis < 0)
        axis += x->ndim;
    int64_t start = ot_node_attr_int(n, "start", 0);
    int64_t outer = ot_ref_prod(x, 0, axis), inner = ot_ref_prod(x, axis + 1, x->ndim);
    int64_t len = y->dims[axis];
    otk_copy p = { .nd = 2,
                   .dims = { outer, len * inner },
                   .ss = { x->dims[axis] * inner, 1 },
                   .ds = { len * inner, 1 },
                   .sbase = start * inner,
                   .dbase = 0 };
    if (outer * len * inner > 0)
        CK(otk_copy_plan(c->stream, &p, (int)dsize(x->dtype), x->data, y->data));
    return OT_OK;
}

F32_SUPPORTS(s_broadcast_to, broadcast_to)

static ot_status k_broadcast_to(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                                const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    ot_tensor *y = out[0];
    int64_t s[OT_MAX_DIMS];
    placed_strides(n, y, in[0], s);
    otk_copy p;
    plan_into_y(y, s, 0, &p);
    if (ot_tensor_numel(y) > 0)
        CK(otk_copy_plan(c->stream, &p, 4, in[0]->data, y->data));
    return OT_OK;
}

static bool s_gather(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                     const ot_tensor *const *out, const char **why)
{
    return data_es(n, in, out, why) && ref_check(ot_ref_gather_supports, g, n, in, out, why);
}

static ot_status k_gather(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                          const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    const ot_tensor *x = in[0], *idx = in[1];
    int64_t ax = ot_node_attr_int(n, "axis", 0);
    int axis = (int)(ax < 0 ? ax + x->ndim : ax);
    CK(otk_gather(c->stream, (int)dsize(x->dtype), x->data, idx->data,
                  idx->dtype == OT_DTYPE_INT64, out[0]->data, ot_ref_prod(x, 0, axis),
                  ot_tensor_numel(idx), x->dims[axis], ot_ref_prod(x, axis + 1, x->ndim)));
    return OT_OK;
}

/* Pad's begin pads from the host copies of its constant operands */
static bool pad_begins(const ot_graph *g, const ot_node *n, const ot_tensor *x, int64_t *begin)
{
    const ot_tensor *axes = host_const(g, n, 3);
    if (n->opset >= 11 && n->n_in > 3 && n->in[3] >= 0 && !axes)
        return false;
    return ot_ref_pad_begins(n, host_const(g, n, 1), axes, x->ndim, begin);
}

static bool s_pad(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                  const ot_tensor *const *out, const char **why)
{
    if (n->opset >= 11 && (!in_at(n, in, 1) || !known(g, n, in, 1) || !known(g, n, in, 3))) {
        *why = "Pad: pads and axes must be constants";
        return false;
    }
    return data_es(n, in, out, why) && ref_check(ot_ref_pad_supports, g, n, in, out, why);
}

static ot_status k_pad(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                       const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    const ot_tensor *x = in[0], *cv = in_at(n, in, 2);
    ot_tensor *y = out[0];
    otk_padding q;
    memset(&q, 0, sizeof q);
    if (!pad_begins(g, n, x, q.begin))
        return ot_err_set(err, OT_ERR_ARG, "Pad: pads do not match the input's rank (or axes)");
    const char *mode = ot_node_attr_string(n, "mode", "constant");
    q.mode = !strcmp(mode, "reflect") ? OTK_PAD_REFLECT
             : !strcmp(mode, "edge")  ? OTK_PAD_EDGE
             : !strcmp(mode, "wrap")  ? OTK_PAD_WRAP
                                      : OTK_PAD_CONSTANT;
    q.nd = x->ndim;
    strides_of(x, q.xs);
    for (int i = 0; i < x->ndim; i++) {
        q.xdims[i] = x->dims[i];
        q.ydims[i] = y->dims[i];
    }
    uint64_t fill = 0;
    const void *fill_p = NULL;
    if (q.mode == OTK_PAD_CONSTANT) {
        if (n->opset >= 11)
            fill_p = cv && ot_tensor_numel(cv) == 1 ? cv->data : NULL;
        else
            ot_ref_st(x->dtype, &fill, 0, (double)ot_node_attr_float(n, "value", 0.0f));
    }
    if (ot_tensor_numel(y) > 0)
        CK(otk_pad(c->stream, &q, (int)dsize(x->dtype), x->data, fill_p, fill, y->data));
    return OT_OK;
}

static bool s_shape(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                    const ot_tensor *const *out, const char **why)
{
    return ref_check(ot_ref_shape_supports, g, n, in, out, why);
}

static ot_status k_shape(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                         const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    const ot_tensor *x = in[0];
    int64_t r = x->ndim, start = 0, end = r;
    if (n->opset >= 15) {
        start = ot_node_attr_int(n, "start", 0);
        end = ot_node_attr_int(n, "end", r);
    }
    start = start < 0 ? start + r : start;
    end = end < 0 ? end + r : end;
    start = start < 0 ? 0 : start > r ? r : start;
    end = end < 0 ? 0 : end > r ? r : end;
    otk_dims d = { .n = end > start ? end - start : 0 };
    if (d.n != out[0]->dims[0])
        return ot_err_set(err, OT_ERR_SHAPE, "Shape: output has %lld elements, expected %lld",
                          (long long)out[0]->dims[0], (long long)d.n);
    for (int64_t i = 0; i < d.n; i++)
        d.v[i] = x->dims[start + i];
    CK(otk_shape(c->stream, &d, (int64_t *)out[0]->data));
    return OT_OK;
}

static bool s_constant(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                       const ot_tensor *const *out, const char **why)
{
    return ot_ref_constant_supports(g, n, in, out, why);
}

/* the attribute's bytes (ref_shape.c's constant_source; the graph keeps
   them, so an asynchronous upload may read them later) */
static ot_status k_constant(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                            const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g, (void)in;
    const ot_attr *a;
    const void *data = NULL;
    if ((a = ot_node_find_attr(n, "value")) && a->type == OT_ATTR_TENSOR && a->t)
        data = a->t->data;
    else if ((a = ot_node_find_attr(n, "value_float")) && a->type == OT_ATTR_FLOAT)
        data = &a->f;
    else if ((a = ot_node_find_attr(n, "value_int")) && a->type == OT_ATTR_INT)
        data = &a->i;
    else if ((a = ot_node_find_attr(n, "value_floats")) && a->type == OT_ATTR_FLOATS)
        data = a->floats;
    else if ((a = ot_node_find_attr(n, "value_ints")) && a->type == OT_ATTR_INTS)
        data = a->ints;
    if (!data && out[0]->bytes)
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "Constant: no value attribute");
    CK(otk_memcpy_h2d(c->stream, out[0]->data, data, out[0]->bytes));
    return OT_OK;
}

/* ------------------------------------------------------- index and logic */

/* y's walk with the operands' right-aligned strides (0 on a dim of 1), as
   ref_logic.c's bc_init */
static void bc3_of(const ot_tensor *y, const ot_tensor *const *xs, int n, otk_bc3 *it)
{
    memset(it, 0, sizeof *it);
    it->nd = y->ndim > 0 ? y->ndim : 1;
    it->dims[0] = 1;
    for (int d = 0; d < y->ndim; d++)
        it->dims[d] = y->dims[d];
    for (int k = 0; k < n; k++) {
        const ot_tensor *t = xs[k];
        int64_t st = 1;
        for (int d = t->ndim - 1; d >= 0; d--) {
            it->s[k][y->ndim - t->ndim + d] = t->dims[d] == 1 ? 0 : st;
            st *= t->dims[d];
        }
    }
}

static bool compare_dtype(ot_dtype t)
{
    return t == OT_DTYPE_FLOAT || t == OT_DTYPE_INT32 || t == OT_DTYPE_INT64 ||
           t == OT_DTYPE_BOOL || t == OT_DTYPE_UINT8 || t == OT_DTYPE_INT8;
}

static bool s_compare(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                      const ot_tensor *const *out, const char **why)
{
    const ot_tensor *a = in_at(n, in, 0);
    if (!a || !compare_dtype(a->dtype)) {
        *why = "the CUDA kernel compares float32, int32, int64, int8, uint8 and bool";
        return false;
    }
    return ref_check(ot_ref_compare_supports, g, n, in, out, why);
}

static ot_status k_compare(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                           const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    ot_tensor *y = out[0];
    bool is_not = ot_node_is(n, OT_OP_NOT);
    int op = is_not ? OTK_NOT : ot_node_is(n, OT_OP_EQUAL) ? OTK_EQUAL
             : ot_node_is(n, OT_OP_GREATER)               ? OTK_GREATER
             : ot_node_is(n, OT_OP_LESS)                  ? OTK_LESS
                                                          : OTK_AND;
    otk_bc3 it;
    bc3_of(y, in, is_not ? 1 : 2, &it);
    CK(otk_compare(c->stream, op, (int)in[0]->dtype, &it, in[0]->data,
                   is_not ? in[0]->data : in[1]->data, (uint8_t *)y->data, ot_tensor_numel(y)));
    return OT_OK;
}

DATA_SUPPORTS(s_where, where)

static ot_status k_where(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                         const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    ot_tensor *y = out[0];
    otk_bc3 it;
    bc3_of(y, in, 3, &it);
    CK(otk_where(c->stream, (int)dsize(y->dtype), &it, (const uint8_t *)in[0]->data, in[1]->data,
                 in[2]->data, y->data, ot_tensor_numel(y)));
    return OT_OK;
}

static bool s_mod(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                  const ot_tensor *const *out, const char **why)
{
    const ot_tensor *y = cout_at(n, out, 0);
    if (!y || !(y->dtype == OT_DTYPE_FLOAT || int_ok(y->dtype))) {
        *why = "the CUDA kernel takes float32, int32 and int64";
        return false;
    }
    return ref_check(ot_ref_mod_supports, g, n, in, out, why);
}

static ot_status k_mod(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                       const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    ot_tensor *y = out[0];
    otk_bc3 it;
    bc3_of(y, in, 2, &it);
    CK(otk_mod(c->stream, (int)y->dtype, ot_node_attr_int(n, "fmod", 0) != 0, &it, in[0]->data,
               in[1]->data, y->data, ot_tensor_numel(y)));
    return OT_OK;
}

#define MAX_SPLIT 64

/* Split's axis and part sizes, from the attribute or the constant input */
static bool split_plan(const ot_graph *g, const ot_node *n, const ot_tensor *x, int *axis,
                       int64_t *sizes, const char **why)
{
    int64_t ax = ot_node_attr_int(n, "axis", 0);
    if (x->ndim < 1 || ax < -(int64_t)x->ndim || ax >= x->ndim || n->n_out > MAX_SPLIT) {
        *why = "Split: axis out of range or too many outputs";
        return false;
    }
    *axis = (int)(ax < 0 ? ax + x->ndim : ax);
    return ot_split_sizes(n, host_const(g, n, 1), x->dims[*axis], sizes, why);
}

static bool s_split(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                    const ot_tensor *const *out, const char **why)
{
    if (!known(g, n, in, 1)) {
        *why = "Split: 'split' must be a constant";
        return false;
    }
    if (!es_ok(in_at(n, in, 0))) {
        *why = "the CUDA kernel moves elements of 1, 2, 4 or 8 bytes";
        return false;
    }
    return ref_check(ot_ref_split_supports, g, n, in, out, why);
}

static ot_status k_split(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                         const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    const ot_tensor *x = in[0];
    int64_t sizes[MAX_SPLIT];
    int axis = 0;
    const char *why = NULL;
    if (!split_plan(g, n, x, &axis, sizes, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why ? why : "Split: no plan");
    int64_t outer = ot_ref_prod(x, 0, axis), inner = ot_ref_prod(x, axis + 1, x->ndim);
    int64_t start = 0;
    for (int i = 0; i < n->n_out; i++) {
        ot_tensor *y = out_at(n, out, i);
        int64_t len = sizes[i] * inner;
        otk_copy p = { .nd = 2,
                       .dims = { outer, len },
                       .ss = { x->dims[axis] * inner, 1 },
                       .ds = { len, 1 },
                       .sbase = start * inner,
                       .dbase = 0 };
        if (y && outer * len > 0)
            CK(otk_copy_plan(c->stream, &p, (int)dsize(x->dtype), x->data, y->data));
        start += sizes[i];
    }
    return OT_OK;
}

DATA_SUPPORTS(s_expand, expand)

static ot_status k_expand(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                          const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g, (void)n;
    ot_tensor *y = out[0];
    otk_bc3 it;
    otk_copy p;
    bc3_of(y, in, 1, &it);
    plan_into_y(y, it.s[0], 0, &p);
    if (ot_tensor_numel(y) > 0)
        CK(otk_copy_plan(c->stream, &p, (int)dsize(y->dtype), in[0]->data, y->data));
    return OT_OK;
}

DATA_SUPPORTS(s_tile, tile)

static ot_status k_tile(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                        const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g, (void)n;
    const ot_tensor *x = in[0];
    ot_tensor *y = out[0];
    otk_bc3 it;
    memset(&it, 0, sizeof it);
    it.nd = y->ndim;
    for (int d = 0; d < y->ndim; d++) {
        it.dims[d] = y->dims[d];
        it.s[0][d] = x->dims[d];
    }
    if (ot_tensor_numel(y) > 0)
        CK(otk_tile(c->stream, (int)dsize(y->dtype), &it, x->data, y->data, ot_tensor_numel(y)));
    return OT_OK;
}

static bool s_constant_of_shape(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                                const ot_tensor *const *out, const char **why)
{
    if (!es_ok(cout_at(n, out, 0))) {
        *why = "the CUDA kernel fills elements of 1, 2, 4 or 8 bytes";
        return false;
    }
    return ref_check(ot_ref_constant_of_shape_supports, g, n, in, out, why);
}

static ot_status k_constant_of_shape(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                                     const ot_tensor *const *in, ot_tensor *const *out,
                                     ot_err *err)
{
    (void)g, (void)in;
    ot_tensor *y = out[0];
    const ot_attr *a = ot_node_find_attr(n, "value");
    uint64_t bits = 0;
    size_t es = dsize(y->dtype);
    if (a && a->t && a->t->data)
        memcpy(&bits, a->t->data, es);
    CK(otk_fill_bits(c->stream, (int)es, bits, y->data, ot_tensor_numel(y)));
    return OT_OK;
}

static bool s_range(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                    const ot_tensor *const *out, const char **why)
{
    const ot_tensor *y = cout_at(n, out, 0);
    if (!y || !(y->dtype == OT_DTYPE_FLOAT || int_ok(y->dtype))) {
        *why = "the CUDA kernel takes float32, int32 and int64";
        return false;
    }
    return ref_check(ot_ref_range_supports, g, n, in, out, why);
}

static ot_status k_range(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                         const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    ot_tensor *y = out[0];
    CK(otk_range(c->stream, (int)y->dtype, in[0]->data, in[2]->data, y->data, y->dims[0]));
    return OT_OK;
}

/* ScatterND's plan over data dims `d` (ref_logic.c's nd_plan) */
static void nd_plan(const ot_tensor *data, const ot_tensor *idx, otk_nd *q)
{
    memset(q, 0, sizeof *q);
    q->k = idx->dims[idx->ndim - 1];
    q->slice = ot_ref_prod(data, (int)q->k, data->ndim);
    q->count = ot_ref_prod(idx, 0, idx->ndim - 1);
    for (int d = 0; d < data->ndim; d++)
        q->dims[d] = data->dims[d];
}

static int scatter_mode(const ot_node *n)
{
    const char *red = ot_node_attr_string(n, "reduction", "none");
    return !strcmp(red, "add") ? OTK_SCATTER_ADD : !strcmp(red, "mul") ? OTK_SCATTER_MUL
           : !strcmp(red, "max") ? OTK_SCATTER_MAX : !strcmp(red, "min") ? OTK_SCATTER_MIN
                                                                         : OTK_SCATTER_NONE;
}

static bool s_scatter_nd(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                         const ot_tensor *const *out, const char **why)
{
    const ot_tensor *x = in_at(n, in, 0);
    if (!es_ok(x)) {
        *why = "the CUDA kernel moves elements of 1, 2, 4 or 8 bytes";
        return false;
    }
    if (scatter_mode(n) != OTK_SCATTER_NONE && !(x->dtype == OT_DTYPE_FLOAT || int_ok(x->dtype))) {
        *why = "ScatterND: the CUDA kernel reduces float32, int32 and int64";
        return false;
    }
    return ref_check(ot_ref_scatter_nd_supports, g, n, in, out, why);
}

static ot_status k_scatter_nd(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                              const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    const ot_tensor *x = in[0], *idx = in[1];
    ot_tensor *y = out[0];
    otk_nd q;
    nd_plan(x, idx, &q);
    CK(otk_memcpy_d2d(c->stream, y->data, x->data, x->bytes));
    if (q.slice > 0 && q.count > 0)
        CK(otk_scatter_nd(c->stream, &q, scatter_mode(n), (int)x->dtype, (int)dsize(x->dtype),
                          (const int64_t *)idx->data, in[2]->data, y->data));
    return OT_OK;
}

static bool s_scatter_nd_grad(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                              const ot_tensor *const *out, const char **why)
{
    if (!es_ok(in_at(n, in, 0))) {
        *why = "the CUDA kernel moves elements of 1, 2, 4 or 8 bytes";
        return false;
    }
    return ref_check(ot_ref_scatter_nd_grad_supports, g, n, in, out, why);
}

static ot_status k_scatter_nd_grad(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                                   const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    const ot_tensor *dy = in[0], *idx = in[1];
    ot_tensor *dd = out_at(n, out, 0), *du = out_at(n, out, 1);
    otk_nd q;
    nd_plan(dy, idx, &q);
    if (dd)
        CK(otk_memcpy_d2d(c->stream, dd->data, dy->data, dy->bytes));
    if (q.slice > 0 && q.count > 0)
        CK(otk_scatter_nd_grad(c->stream, &q, (int)dsize(dy->dtype), (const int64_t *)idx->data,
                               dy->data, dd ? dd->data : NULL, du ? du->data : NULL));
    return OT_OK;
}

static bool s_gather_grad(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                          const ot_tensor *const *out, const char **why)
{
    const ot_tensor *dy = in_at(n, in, 0), *dx = cout_at(n, out, 0);
    if (!dy || !dx || dy->dtype != OT_DTYPE_FLOAT || dx->dtype != OT_DTYPE_FLOAT) {
        *why = "the CUDA kernel takes float32 gradients only";
        return false;
    }
    return ref_check(ot_ref_gather_grad_supports, g, n, in, out, why);
}

static ot_status k_gather_grad(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                               const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    const ot_tensor *idx = in[1];
    ot_tensor *dx = out[0];
    int64_t ax = ot_node_attr_int(n, "axis", 0);
    int axis = (int)(ax < 0 ? ax + dx->ndim : ax);
    CK(otk_gather_grad_f32(c->stream, CF(in[0]), idx->data, idx->dtype == OT_DTYPE_INT64, F(dx),
                           ot_ref_prod(dx, 0, axis), ot_tensor_numel(idx), dx->dims[axis],
                           ot_ref_prod(dx, axis + 1, dx->ndim)));
    return OT_OK;
}

/* ------------------------------------------------------------ optimizer */

static bool s_sgd(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                  const ot_tensor *const *out, const char **why)
{
    return ref_check(ot_ref_sgd_step_supports, g, n, in, out, why);
}

static bool s_adam(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                   const ot_tensor *const *out, const char **why)
{
    return ref_check(ot_ref_adam_step_supports, g, n, in, out, why);
}

/* the buffer an update writes: the output, after a copy of the input when
   the executor did not place them together */
static int in_out(ot_cuda_ctx *c, const ot_tensor *in, ot_tensor *out)
{
    return otk_memcpy_d2d(c->stream, out->data, in->data, out->bytes);
}

static ot_status k_sgd(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                       const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    bool buf = n->n_out > 1 && n->out[1] >= 0;
    CK(in_out(c, in[0], out[0]));
    if (buf)
        CK(in_out(c, in[4], out[1]));
    const ot_tensor *coef = in_at(n, in, 5);
    CK(otk_sgd_f32(c->stream, F(out[0]), CF(in[1]), buf ? F(out[1]) : NULL,
                   (const double *)in[2]->data, (const int64_t *)in[3]->data, OPT_CF(coef),
                   ot_op_attr_double(n, "weight_decay", 0.0), ot_op_attr_double(n, "momentum", 0.0),
                   ot_op_attr_double(n, "dampening", 0.0),
                   ot_node_attr_int(n, "nesterov", 0) != 0, ot_tensor_numel(in[0])));
    return OT_OK;
}

static ot_status k_adam(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                        const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    CK(in_out(c, in[0], out[0]));
    CK(in_out(c, in[4], out[1]));
    CK(in_out(c, in[5], out[2]));
    const ot_tensor *coef = in_at(n, in, 6);
    CK(otk_adam_f32(c->stream, F(out[0]), CF(in[1]), F(out[1]), F(out[2]),
                    (const double *)in[2]->data, (const int64_t *)in[3]->data, OPT_CF(coef),
                    ot_node_is(n, OT_OP_ADAMW_STEP), ot_op_attr_double(n, "weight_decay", 0.0),
                    ot_op_attr_double(n, "beta1", 0.9), ot_op_attr_double(n, "beta2", 0.999),
                    ot_op_attr_double(n, "eps", 1e-8), ot_tensor_numel(in[0])));
    return OT_OK;
}

static bool s_sum_squares(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                          const ot_tensor *const *out, const char **why)
{
    return ref_check(ot_ref_grad_sum_squares_supports, g, n, in, out, why);
}

static size_t z_sum_squares(const ot_node *n, const ot_tensor *const *in,
                            const ot_tensor *const *out)
{
    (void)out;
    const ot_tensor *x = in_at(n, in, 0);
    return x ? sizeof(double) * (size_t)otk_sumsq_parts(ot_tensor_numel(x)) : 0;
}

static ot_status k_sum_squares(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                               const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    const ot_tensor *acc = in_at(n, in, 1);
    CK(otk_grad_sum_squares_f32(c->stream, CF(in[0]), ot_tensor_numel(in[0]),
                                acc ? (const double *)acc->data : NULL,
                                (double *)out[0]->data, c->scratch));
    return OT_OK;
}

static bool s_clip_coef(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                        const ot_tensor *const *out, const char **why)
{
    return ref_check(ot_ref_clip_grad_coef_supports, g, n, in, out, why);
}

static ot_status k_clip_coef(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                             const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    ot_tensor *nt = out_at(n, out, 1);
    const ot_tensor *scale = in_at(n, in, 1);
    CK(otk_clip_coef_f32(c->stream, (const double *)in[0]->data, OPT_CF(scale),
                         ot_node_attr_float(n, "max_norm", 1.0f), F(out[0]), OPT_F(nt)));
    return OT_OK;
}

/* Over several processes the gradients are reduced with NCCL on device
   buffers (src/dist/nccl.c); MPI's communicator reduces host buffers only. */
static bool s_all_reduce(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                         const ot_tensor *const *out, const char **why)
{
    ot_comm *cm = ot_dist_current();
    if (cm && cm->size > 1 && (!cm->dev || ot_comm_dev_on_host(cm))) {
        *why = "the gradient all-reduce over several processes on CUDA needs NCCL's "
               "communicator";
        return false;
    }
    return ref_check(ot_ref_grad_all_reduce_supports, g, n, in, out, why);
}

/* The bucket's gradients, times the rank's weight, packed into its place
   in the communicator's device buffer (offset attribute), or unpacked from
   it into out[]. */
static ot_status bucket_pack(ot_cuda_ctx *c, const ot_node *n, ot_comm *cm,
                             const ot_tensor *const *in, int first, ot_tensor *const *out,
                             bool pack, size_t *total, ot_err *err)
{
    size_t off = (size_t)ot_node_attr_int(n, "offset", 0), k = 0;
    for (int i = first; i < n->n_in; i++)
        k += in[i]->bytes / sizeof(float);
    if (off + k > cm->stage_n)
        return ot_err_set(err, OT_ERR_INTERNAL,
                          "GradAllReduce: bucket of %zu floats at %zu, buffer of %zu", k, off,
                          cm->stage_n);
    float *p = cm->stage + off;
    for (int i = first; i < n->n_in; i++) {
        size_t m = in[i]->bytes / sizeof(float);
        if (pack) {
            CK(otk_memcpy_d2d(c->stream, p, in[i]->data, in[i]->bytes));
            if (cm->grad_weight != 1.0f)
                CK(otk_div_f32(c->stream, p, 1.0 / (double)cm->grad_weight, (int64_t)m));
        } else {
            CK(otk_memcpy_d2d(c->stream, out[i - first]->data, p, in[i]->bytes));
        }
        p += m;
    }
    *total = k;
    return OT_OK;
}

/* One process: out = in. With NCCL's communicator (also of one rank):
   phase 0 packs, reduces and unpacks; phase 1 packs and starts the
   bucket's reduction on the communicator's stream after this stream's
   work (its token is zeroed: the bucket is named by its offset); phase 2
   makes this stream wait for it and unpacks. */
static ot_status k_all_reduce(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                              const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    ot_comm *cm = ot_dist_current();
    int64_t phase = ot_node_attr_int(n, "phase", 0);
    int first = phase == 2 ? 1 : 0;
    if (cm && cm->dev && !ot_comm_dev_on_host(cm)) {
        int64_t key = ot_node_attr_int(n, "offset", 0);
        size_t total = 0;
        ot_status st;
        if (phase != 2) {
            if ((st = bucket_pack(c, n, cm, in, 0, NULL, true, &total, err)) != OT_OK ||
                (st = ot_comm_dev_grad_start(cm, cm->stage + key, total, key, c->stream, err)) !=
                    OT_OK)
                return st;
            if (phase == 1) {
                CK(otk_memset(c->stream, out[0]->data, 0, sizeof(float)));
                return OT_OK;
            }
        }
        if ((st = ot_comm_dev_grad_wait(cm, key, c->stream, err)) != OT_OK)
            return st;
        return bucket_pack(c, n, cm, in, first, out, false, &total, err);
    }
    if (cm && cm->size > 1)
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "GradAllReduce: several processes");
    for (int i = 0; i < n->n_in; i++)
        CK(otk_memcpy_d2d(c->stream, out[i]->data, in[i]->data, in[i]->bytes));
    return OT_OK;
}

/* --------------------------------------------------------------- Einsum */

/* The walk of an Einsum node: the plain kernel's label strides per input,
   split into the output's dims and the summed labels (in id order). False
   with *why when the equation does not parse or does not fit the kernel's
   limits (4 inputs, 8 summed labels). */
static bool einsum_walk(const ot_node *n, const ot_tensor *const *in, otk_einsum *w,
                        const char **why)
{
    ot_einsum e;
    int ranks[OTK_EIN_MAX_IN];
    const int64_t *dims[OTK_EIN_MAX_IN];
    int64_t size[OT_EINSUM_MAX_LABELS], stride[OTK_EIN_MAX_IN][OT_EINSUM_MAX_LABELS];
    if (n->n_in > OTK_EIN_MAX_IN) {
        *why = "Einsum: the CUDA kernel takes at most 4 inputs";
        return false;
    }
    for (int k = 0; k < n->n_in; k++) {
        const ot_tensor *t = in_at(n, in, k);
        if (!t) {
            *why = "Einsum: every input is required";
            return false;
        }
        ranks[k] = t->ndim;
        dims[k] = t->dims;
    }
    if (!ot_einsum_parse(ot_node_attr_string(n, "equation", ""), n->n_in, ranks, &e, why) ||
        !ot_einsum_sizes(&e, dims, size, why))
        return false;
    memset(w, 0, sizeof *w);
    memset(stride, 0, sizeof stride);
    for (int k = 0; k < e.n_in; k++) {
        int64_t st = 1;
        for (int i = e.in_rank[k] - 1; i >= 0; i--) {
            int l = e.in_lab[k][i];
            if (!(dims[k][i] == 1 && size[l] != 1)) /* a broadcast dim stays 0 */
                stride[k][l] += st;
            st *= dims[k][i];
        }
    }
    bool in_out[OT_EINSUM_MAX_LABELS] = { false };
    w->n_in = e.n_in;
    w->no = e.out_rank;
    w->n_out = 1;
    w->n_red = 1;
    for (int j = 0; j < e.out_rank; j++) {
        int l = e.out_lab[j];
        in_out[l] = true;
        w->od[j] = size[l];
        w->n_out *= size[l];
        for (int k = 0; k < e.n_in; k++)
            w->os[k][j] = stride[k][l];
    }
    for (int l = 0; l < OT_EINSUM_MAX_LABELS; l++) {
        if (!e.used[l] || in_out[l])
            continue;
        if (w->ns == OTK_EIN_MAX_SUM) {
            *why = "Einsum: the CUDA kernel sums over at most 8 labels";
            return false;
        }
        w->sd[w->ns] = size[l];
        w->n_red *= size[l];
        for (int k = 0; k < e.n_in; k++)
            w->ss[k][w->ns] = stride[k][l];
        w->ns++;
    }
    return true;
}

static bool s_einsum(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                     const ot_tensor *const *out, const char **why)
{
    otk_einsum w;
    return all_f32(n, in, out, why) && ref_check(ot_ref_einsum_supports, g, n, in, out, why) &&
           einsum_walk(n, in, &w, why);
}

static ot_status k_einsum(ot_cuda_ctx *c, const ot_graph *g, const ot_node *n,
                          const ot_tensor *const *in, ot_tensor *const *out, ot_err *err)
{
    (void)g;
    otk_einsum w;
    const char *why = NULL;
    if (!einsum_walk(n, in, &w, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    for (int k = 0; k < w.n_in; k++)
        w.x[k] = CF(in[k]);
    CK(otk_einsum_f32(c->stream, &w, F(out[0])));
    return OT_OK;
}

/* --------------------------------------------------------------- table */

#define ROW(f, k, s) { k, f, s, NULL, NULL }
#define ROWZ(f, k, s, z) { k, f, s, z, NULL }
#define NONE(why) { NULL, NULL, NULL, NULL, why }

#define CUDNN "convolution: runs on cuDNN in the backend (src/exec/cuda/)"
#define CUBLAS "matrix product: runs on cuBLASLt in the backend (src/exec/cuda/)"

static const cuk_row cuk_table[OT_OP_COUNT_] = {
    [OT_OP_CONV] = NONE(CUDNN),
    [OT_OP_BATCHNORM] = ROWZ("norm.cu", k_batchnorm, s_batchnorm, z_bn),
    [OT_OP_RELU] = ROW("eltwise.cu", k_unary, s_unary),
    [OT_OP_LEAKYRELU] = ROW("eltwise.cu", k_unary, s_unary),
    [OT_OP_CLIP] = ROW("eltwise.cu", k_unary, s_unary),
    [OT_OP_SIGMOID] = ROW("eltwise.cu", k_unary, s_unary),
    [OT_OP_MAXPOOL] = ROW("pool.cu", k_maxpool, s_maxpool),
    [OT_OP_AVGPOOL] = ROW("pool.cu", k_avgpool, s_avgpool),
    [OT_OP_GLOBALAVGPOOL] = ROW("pool.cu", k_global_pool, s_globalavgpool),
    [OT_OP_GLOBALMAXPOOL] = ROW("pool.cu", k_global_pool, s_globalmaxpool),
    [OT_OP_ADD] = ROW("eltwise.cu", k_binary, s_binary),
    [OT_OP_SUM] = ROW("eltwise.cu", k_binary, s_binary),
    [OT_OP_MUL] = ROW("eltwise.cu", k_binary, s_binary),
    [OT_OP_SUB] = ROW("eltwise.cu", k_binary, s_binary),
    [OT_OP_DIV] = ROW("eltwise.cu", k_binary, s_binary),
    [OT_OP_POW] = ROW("eltwise.cu", k_pow, s_pow),
    [OT_OP_SQRT] = ROW("eltwise.cu", k_unary, s_unary),
    [OT_OP_RECIPROCAL] = ROW("eltwise.cu", k_unary, s_unary),
    [OT_OP_EXP] = ROW("eltwise.cu", k_unary, s_unary),
    [OT_OP_LOG] = ROW("eltwise.cu", k_unary, s_unary),
    [OT_OP_TANH] = ROW("eltwise.cu", k_unary, s_unary),
    [OT_OP_ERF] = ROW("eltwise.cu", k_unary, s_unary),
    [OT_OP_HARDSIGMOID] = ROW("eltwise.cu", k_unary, s_unary),
    [OT_OP_HARDSWISH] = ROW("eltwise.cu", k_unary, s_unary),
    [OT_OP_ELU] = ROW("eltwise.cu", k_unary, s_unary),
    [OT_OP_SELU] = ROW("eltwise.cu", k_unary, s_unary),
    [OT_OP_SOFTPLUS] = ROW("eltwise.cu", k_unary, s_unary),
    [OT_OP_GELU] = ROW("eltwise.cu", k_unary, s_unary),
    [OT_OP_REDUCE_MEAN] = ROWZ("reduce.cu", k_reduce, s_reduce, z_reduce),
    [OT_OP_REDUCE_SUM] = ROWZ("reduce.cu", k_reduce, s_reduce, z_reduce),
    [OT_OP_REDUCE_MAX] = ROWZ("reduce.cu", k_reduce, s_reduce, z_reduce),
    [OT_OP_REDUCE_L2] = ROWZ("reduce.cu", k_reduce, s_reduce, z_reduce),
    [OT_OP_PRELU] = ROW("eltwise.cu", k_prelu, s_prelu),
    [OT_OP_LAYERNORM] = ROW("norm.cu", k_normalize, s_normalize),
    [OT_OP_INSTANCENORM] = ROW("norm.cu", k_normalize, s_normalize),
    [OT_OP_GROUPNORM] = ROW("norm.cu", k_normalize, s_normalize),
    [OT_OP_MAX] = ROW("eltwise.cu", k_binary, s_binary),
    [OT_OP_MIN] = ROW("eltwise.cu", k_binary, s_binary),
    [OT_OP_MEAN] = ROW("eltwise.cu", k_binary, s_binary),
    [OT_OP_EINSUM] = ROW("einsum.cu", k_einsum, s_einsum),
    [OT_OP_CONCAT] = ROW("data.cu", k_concat, s_concat),
    [OT_OP_FLATTEN] = ROW("data.cu", k_copy, s_copy),
    [OT_OP_RESHAPE] = ROW("data.cu", k_copy, s_copy),
    [OT_OP_SQUEEZE] = ROW("data.cu", k_copy, s_copy),
    [OT_OP_UNSQUEEZE] = ROW("data.cu", k_copy, s_copy),
    [OT_OP_TRANSPOSE] = ROW("data.cu", k_transpose, s_transpose),
    [OT_OP_GEMM] = NONE(CUBLAS),
    [OT_OP_MATMUL] = NONE(CUBLAS),
    [OT_OP_DROPOUT] = ROW("data.cu", k_dropout, s_dropout),
    [OT_OP_SOFTMAX] = ROW("loss.cu", k_softmax, s_softmax),
    [OT_OP_LOGSOFTMAX] = ROW("loss.cu", k_softmax, s_logsoftmax),
    [OT_OP_LRN] = ROW("norm.cu", k_lrn, s_lrn),
    [OT_OP_IDENTITY] = ROW("data.cu", k_copy, s_copy),
    [OT_OP_CONSTANT] = ROW("data.cu", k_constant, s_constant),
    [OT_OP_SHAPE] = ROW("data.cu", k_shape, s_shape),
    [OT_OP_GATHER] = ROW("data.cu", k_gather, s_gather),
    [OT_OP_PAD] = ROW("data.cu", k_pad, s_pad),
    [OT_OP_SLICE] = ROW("data.cu", k_slice, s_slice),
    [OT_OP_CAST] = ROW("eltwise.cu", k_cast, s_cast),
    [OT_OP_CONV_GRAD_DATA] = NONE(CUDNN),
    [OT_OP_CONV_GRAD_FILTER] = NONE(CUDNN),
    [OT_OP_RELU_GRAD] = ROW("eltwise.cu", k_pair, s_pair),
    [OT_OP_LEAKYRELU_GRAD] = ROW("eltwise.cu", k_pair, s_pair),
    [OT_OP_CLIP_GRAD] = ROW("eltwise.cu", k_pair, s_pair),
    [OT_OP_SIGMOID_GRAD] = ROW("eltwise.cu", k_pair, s_pair),
    [OT_OP_MAXPOOL_GRAD] = ROW("pool.cu", k_maxpool_grad, s_maxpool_grad),
    [OT_OP_AVGPOOL_GRAD] = ROW("pool.cu", k_avgpool_grad, s_avgpool_grad),
    [OT_OP_GLOBALAVGPOOL_GRAD] = ROW("pool.cu", k_global_pool_grad, s_globalavgpool_grad),
    [OT_OP_GLOBALMAXPOOL_GRAD] = ROW("pool.cu", k_global_pool_grad, s_globalmaxpool_grad),
    [OT_OP_BATCHNORM_GRAD] = ROWZ("norm.cu", k_bn_grad, s_bn_grad, z_bn),
    [OT_OP_BATCHNORM_TRAIN] = ROWZ("norm.cu", k_bn_train, s_bn_train, z_bn),
    [OT_OP_REDUCE_SUM_TO] = ROWZ("reduce.cu", k_reduce_sum_to, s_reduce_sum_to, z_reduce_sum_to),
    [OT_OP_BROADCAST_TO] = ROW("data.cu", k_broadcast_to, s_broadcast_to),
    [OT_OP_LRN_GRAD] = ROW("norm.cu", k_lrn, s_lrn_grad),
    [OT_OP_SOFTMAX_GRAD] = ROW("loss.cu", k_softmax, s_softmax_grad),
    [OT_OP_LOGSOFTMAX_GRAD] = ROW("loss.cu", k_softmax, s_logsoftmax_grad),
    [OT_OP_DROPOUT_GRAD] = ROW("eltwise.cu", k_pair, s_pair),
    [OT_OP_SOFTMAX_XENT] = ROWZ("loss.cu", k_xent, s_xent, z_xent),
    [OT_OP_SOFTMAX_XENT_GRAD] = ROWZ("loss.cu", k_xent, s_xent, z_xent),
    [OT_OP_SLICE_AXIS] = ROW("data.cu", k_slice_axis, s_slice_axis),
    [OT_OP_DROPOUT_TRAIN] = ROW("eltwise.cu", k_dropout_train, s_dropout_train),
    [OT_OP_UNARY_GRAD] = ROW("eltwise.cu", k_unary_grad, s_unary_grad),
    [OT_OP_REDUCE_GRAD] = ROWZ("reduce.cu", k_reduce_grad, s_reduce_grad, z_reduce),
    [OT_OP_PRELU_GRAD] = ROW("eltwise.cu", k_prelu_grad, s_prelu_grad),
    [OT_OP_EXTREMUM_GRAD] = ROW("eltwise.cu", k_extremum_grad, s_extremum_grad),
    [OT_OP_NORM_GRAD] = ROWZ("norm.cu", k_norm_grad, s_norm_grad, z_norm_grad),
    [OT_OP_SGD_STEP] = ROW("optim.cu", k_sgd, s_sgd),
    [OT_OP_ADAM_STEP] = ROW("optim.cu", k_adam, s_adam),
    [OT_OP_ADAMW_STEP] = ROW("optim.cu", k_adam, s_adam),
    [OT_OP_GRAD_SUM_SQUARES] = ROWZ("reduce.cu", k_sum_squares, s_sum_squares, z_sum_squares),
    [OT_OP_CLIP_GRAD_COEF] = ROW("optim.cu", k_clip_coef, s_clip_coef),
    [OT_OP_QUANTIZE_LINEAR] = ROW("eltwise.cu", k_qdq, s_qdq),
    [OT_OP_DEQUANTIZE_LINEAR] = ROW("eltwise.cu", k_qdq, s_qdq),
    [OT_OP_FAKE_QUANT] = ROWZ("eltwise.cu", k_fake_quant, s_fake_quant, z_fake_quant),
    [OT_OP_FAKE_QUANT_GRAD] = ROWZ("eltwise.cu", k_fake_quant, s_fake_quant, z_fake_quant),
    [OT_OP_GRAD_ALL_REDUCE] = ROW("data.cu", k_all_reduce, s_all_reduce),
    [OT_OP_SPLIT] = ROW("data.cu", k_split, s_split),
    [OT_OP_EXPAND] = ROW("data.cu", k_expand, s_expand),
    [OT_OP_TILE] = ROW("logic.cu", k_tile, s_tile),
    [OT_OP_CONSTANT_OF_SHAPE] = ROW("logic.cu", k_constant_of_shape, s_constant_of_shape),
    [OT_OP_RANGE] = ROW("logic.cu", k_range, s_range),
    [OT_OP_SCATTER_ND] = ROW("logic.cu", k_scatter_nd, s_scatter_nd),
    [OT_OP_EQUAL] = ROW("logic.cu", k_compare, s_compare),
    [OT_OP_GREATER] = ROW("logic.cu", k_compare, s_compare),
    [OT_OP_LESS] = ROW("logic.cu", k_compare, s_compare),
    [OT_OP_NOT] = ROW("logic.cu", k_compare, s_compare),
    [OT_OP_AND] = ROW("logic.cu", k_compare, s_compare),
    [OT_OP_WHERE] = ROW("logic.cu", k_where, s_where),
    [OT_OP_MOD] = ROW("logic.cu", k_mod, s_mod),
    [OT_OP_GATHER_GRAD] = ROW("logic.cu", k_gather_grad, s_gather_grad),
    [OT_OP_SCATTER_ND_GRAD] = ROW("logic.cu", k_scatter_nd_grad, s_scatter_nd_grad),
    [OT_OP_SLICE_GRAD] = NONE("no CUDA kernel yet (the CPU backend runs it: "
                              "src/exec/cpu/ref_logic.c)"),
};

/* The row for a node's op, or NULL (opaque node). */
static const cuk_row *find_row(const ot_node *n)
{
    if (!n->op || (unsigned)n->op->id >= OT_OP_COUNT_ || ot_op_table[n->op->id] != n->op)
        return NULL;
    return &cuk_table[n->op->id];
}

ot_cuda_fn ot_cuda_kernel(const ot_node *n)
{
    const cuk_row *r = find_row(n);
    return r ? r->run : NULL;
}

const char *ot_cuda_kernel_file(ot_op_id id, const char **reason)
{
    *reason = NULL;
    if ((unsigned)id >= OT_OP_COUNT_)
        return NULL;
    *reason = cuk_table[id].run ? NULL : cuk_table[id].reason;
    return cuk_table[id].run ? cuk_table[id].file : NULL;
}

bool ot_cuda_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                      const ot_tensor *const *out, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    *why = NULL;
    const cuk_row *r = find_row(n);
    if (!r || !r->run) {
        *why = r && r->reason ? r->reason : "no CUDA kernel for this op";
        return false;
    }
    for (int i = 0; i < n->n_out; i++) {
        if (n->out[i] >= 0 && out[i] && out[i]->dtype == OT_DTYPE_UNDEFINED) {
            *why = "output dtype unknown";
            return false;
        }
    }
    return r->supports(g, n, in, out, why);
}

size_t ot_cuda_scratch_bytes(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                             const ot_tensor *const *out)
{
    (void)g;
    const cuk_row *r = find_row(n);
    return r && r->run && r->scratch ? r->scratch(n, in, out) : 0;
}
