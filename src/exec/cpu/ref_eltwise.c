/*
 * ref_eltwise.c: element-wise ops as plain C loops: Relu, LeakyRelu, Clip,
 * Sigmoid, Dropout (inference), Add, Sub, Mul, Div, and the variadic Sum,
 * Max, Min and Mean.
 *
 * Dtypes: every op takes float, double, float16 and bfloat16 (half types
 * computed in float); Relu, Clip, Add, Mul and Sum also take the integer
 * types but uint64 (integer Add/Sub/Mul wrap around, as two's complement
 * does; integer Div truncates, and gives 0 for a zero divisor).
 * Add/Sub/Mul/Div/Sum broadcast as numpy does (multidirectional); Add/Mul before
 * opset 7 use the legacy form instead: with broadcast=1, B's dims match a run
 * of A's starting at `axis` (default: A's last dims). Clip reads min/max from
 * attributes before opset 11 and from optional scalar inputs from 11 (an
 * omitted or empty one means no bound). Dropout copies its input; its
 * optional mask is all true (bool from opset 10, ones of the input's type
 * before).
 *
 * Not here: training-mode Dropout (random masks), which the training graph
 * builds from other nodes.
 *
 * Reference: https://onnx.ai/onnx/operators/ (the page of each op),
 * https://numpy.org/doc/stable/user/basics.broadcasting.html
 */
#include "exec/cpu/ref_impl.h"

/* Integer element i as int64 (two's complement for the unsigned ones). */
static int64_t ld_int(ot_dtype t, const void *p, int64_t i)
{
    switch (t) {
    case OT_DTYPE_INT8: return ((const int8_t *)p)[i];
    case OT_DTYPE_UINT8: return ((const uint8_t *)p)[i];
    case OT_DTYPE_INT16: return ((const int16_t *)p)[i];
    case OT_DTYPE_UINT16: return ((const uint16_t *)p)[i];
    case OT_DTYPE_INT32: return ((const int32_t *)p)[i];
    case OT_DTYPE_UINT32: return ((const uint32_t *)p)[i];
    case OT_DTYPE_INT64: return ((const int64_t *)p)[i];
    default: return 0;
    }
}

/* Stores v, which the caller has kept in the dtype's range. */
static void st_int(ot_dtype t, void *p, int64_t i, int64_t v)
{
    switch (t) {
    case OT_DTYPE_INT8: ((int8_t *)p)[i] = (int8_t)v; break;
    case OT_DTYPE_UINT8: ((uint8_t *)p)[i] = (uint8_t)v; break;
    case OT_DTYPE_INT16: ((int16_t *)p)[i] = (int16_t)v; break;
    case OT_DTYPE_UINT16: ((uint16_t *)p)[i] = (uint16_t)v; break;
    case OT_DTYPE_INT32: ((int32_t *)p)[i] = (int32_t)v; break;
    case OT_DTYPE_UINT32: ((uint32_t *)p)[i] = (uint32_t)v; break;
    case OT_DTYPE_INT64: ((int64_t *)p)[i] = v; break;
    default: break;
    }
}

/* The range of an integer dtype. */
static void int_range(ot_dtype t, int64_t *lo, int64_t *hi)
{
    switch (t) {
    case OT_DTYPE_INT8: *lo = INT8_MIN, *hi = INT8_MAX; break;
    case OT_DTYPE_UINT8: *lo = 0, *hi = UINT8_MAX; break;
    case OT_DTYPE_INT16: *lo = INT16_MIN, *hi = INT16_MAX; break;
    case OT_DTYPE_UINT16: *lo = 0, *hi = UINT16_MAX; break;
    case OT_DTYPE_INT32: *lo = INT32_MIN, *hi = INT32_MAX; break;
    case OT_DTYPE_UINT32: *lo = 0, *hi = UINT32_MAX; break;
    default: *lo = INT64_MIN, *hi = INT64_MAX; break;
    }
}

/* ------------------------------------------------------------ unary ops */

typedef enum { U_RELU, U_LEAKYRELU, U_SIGMOID, U_CLIP } unary_op;

/* x and y of one dtype and element count; ints only for Relu and Clip. */
static bool unary_supports(const ot_node *n, const ot_tensor *const *in,
                           const ot_tensor *const *out, unary_op op, const char **why)
{
    const ot_tensor *x = ot_ref_in(n, in, 0);
    const ot_tensor *y = ot_ref_cout(n, out, 0);
    if (!x || !y || y->dtype != x->dtype || ot_tensor_numel(y) != ot_tensor_numel(x)) {
        *why = "element-wise op: Y must be like X";
        return false;
    }
    bool ints = op == U_RELU || op == U_CLIP;
    if (!ot_ref_is_float(x->dtype) && !(ints && ot_ref_is_int(x->dtype))) {
        *why = ints ? "Relu/Clip: dtype not supported (float types and integers but uint64)"
                    : "LeakyRelu/Sigmoid: only float, double, float16 and bfloat16 are "
                      "supported";
        return false;
    }
    if (op == U_CLIP) {
        for (int i = 1; i < 3; i++) {
            const ot_tensor *b = ot_ref_in(n, in, i);
            if (b && (b->dtype != x->dtype || ot_tensor_numel(b) > 1)) {
                *why = "Clip: min and max must be scalars of X's dtype";
                return false;
            }
        }
    }
    return true;
}

static double sigmoid(double v)
{
    if (v >= 0)
        return 1.0 / (1.0 + exp(-v));
    double e = exp(v);
    return e / (1.0 + e);
}

/* x  ->  y like x */
static ot_status unary_run(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                           ot_tensor *const *out, unary_op op, ot_err *err)
{
    const char *why = NULL;
    (void)g;
    if (!unary_supports(n, in, (const ot_tensor *const *)out, op, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *x = in[0];
    ot_tensor *y = out[0];
    ot_dtype dt = x->dtype;
    int64_t numel = ot_tensor_numel(x);
    double alpha = (double)ot_node_attr_float(n, "alpha", 0.01f);
    double lo = -HUGE_VAL, hi = HUGE_VAL;
    int64_t ilo, ihi;
    int_range(dt, &ilo, &ihi);
    if (op == U_CLIP) {
        if (n->opset < 11) {
            lo = (double)ot_node_attr_float(n, "min", -HUGE_VALF);
            hi = (double)ot_node_attr_float(n, "max", HUGE_VALF);
        } else {
            const ot_tensor *bmin = ot_ref_in(n, in, 1), *bmax = ot_ref_in(n, in, 2);
            if (bmin && ot_tensor_numel(bmin) == 1) {
                lo = ot_ref_ld(dt, bmin->data, 0);
                ilo = ld_int(dt, bmin->data, 0);
            }
            if (bmax && ot_tensor_numel(bmax) == 1) {
                hi = ot_ref_ld(dt, bmax->data, 0);
                ihi = ld_int(dt, bmax->data, 0);
            }
        }
    }
    if (ot_ref_is_int(dt)) {
        for (int64_t i = 0; i < numel; i++) {
            int64_t v = ld_int(dt, x->data, i);
            if (op == U_RELU) {
                v = v < 0 ? 0 : v;
            } else {
                v = v < ilo ? ilo : v;
                v = v > ihi ? ihi : v;
            }
            st_int(dt, y->data, i, v);
        }
        return OT_OK;
    }
    for (int64_t i = 0; i < numel; i++) {
        double v = ot_ref_ld(dt, x->data, i);
        switch (op) {
        case U_RELU: v = v < 0 ? 0 : v; break;
        case U_LEAKYRELU: v = v < 0 ? v * alpha : v; break;
        case U_SIGMOID: v = sigmoid(v); break;
        case U_CLIP:
            v = v < lo ? lo : v;
            v = v > hi ? hi : v;
            break;
        }
        ot_ref_st(dt, y->data, i, v);
    }
    return OT_OK;
}

#define UNARY(name, op)                                                                         \
    bool ot_ref_##name##_supports(const ot_graph *g, const ot_node *n,                          \
                                  const ot_tensor *const *in, const ot_tensor *const *out,      \
                                  const char **why)                                             \
    {                                                                                           \
        (void)g;                                                                                \
        return unary_supports(n, in, out, op, why);                                             \
    }                                                                                           \
    ot_status ot_ref_##name(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,    \
                            ot_tensor *const *out, ot_err *err)                                 \
    {                                                                                           \
        return unary_run(g, n, in, out, op, err);                                               \
    }

UNARY(relu, U_RELU)
UNARY(leakyrelu, U_LEAKYRELU)
UNARY(sigmoid, U_SIGMOID)
UNARY(clip, U_CLIP)

/* ---------------------------------------------------------------- Dropout */

/* Whether the node asks for training-mode dropout with a non-zero ratio. */
static bool dropout_training(const ot_node *n, const ot_tensor *const *in)
{
    const ot_tensor *mode = ot_ref_in(n, in, 2), *ratio = ot_ref_in(n, in, 1);
    if (n->opset < 12 || !mode || ot_tensor_numel(mode) < 1 || !mode->data)
        return false;
    if (ot_tensor_get_f64(mode, 0) == 0)
        return false;
    return !(ratio && ratio->data && ot_tensor_numel(ratio) == 1 &&
             ot_tensor_get_f64(ratio, 0) == 0);
}

bool ot_ref_dropout_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                             const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *x = ot_ref_in(n, in, 0);
    const ot_tensor *y = ot_ref_cout(n, out, 0);
    const ot_tensor *mask = ot_ref_cout(n, out, 1);
    if (!x || (y && (y->dtype != x->dtype || y->bytes != x->bytes))) {
        *why = "Dropout: output must be like data";
        return false;
    }
    if (mask && (ot_tensor_numel(mask) != ot_tensor_numel(x) ||
                 (mask->dtype != OT_DTYPE_BOOL && !ot_ref_is_float(mask->dtype)))) {
        *why = "Dropout: mask must be bool (or a float type before opset 10) shaped like data";
        return false;
    }
    if (dropout_training(n, in)) {
        *why = "Dropout: training_mode=1 with a non-zero ratio is not supported (random mask)";
        return false;
    }
    return true;
}

/* data  ->  output = data [, mask all true] */
ot_status ot_ref_dropout(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                         ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_dropout_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *x = in[0];
    ot_tensor *y = ot_ref_out(n, out, 0), *mask = ot_ref_out(n, out, 1);
    if (y && x->bytes && y->data != x->data)
        memcpy(y->data, x->data, x->bytes);
    if (mask) {
        int64_t numel = ot_tensor_numel(mask);
        for (int64_t i = 0; i < numel; i++)
            ot_ref_st(mask->dtype, mask->data, i, 1.0);
    }
    return OT_OK;
}

/* ---------------------------------------------------- broadcast binary ops */

typedef enum { B_ADD, B_MUL, B_COPY, B_SUB, B_DIV, B_MAX, B_MIN } binary_op;

/* An iteration over y's elements with each operand's element strides (0 on
   a broadcast dim); y itself is contiguous. */
typedef struct bcast {
    int nd;
    int64_t dims[OT_MAX_DIMS];
    int64_t sa[OT_MAX_DIMS], sb[OT_MAX_DIMS];
} bcast;

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

/* Drops size-1 dims and merges dims that both operands walk contiguously. */
static void coalesce(const ot_tensor *y, bcast *it)
{
    it->nd = 0;
    for (int i = 0; i < y->ndim; i++) {
        if (y->dims[i] == 1)
            continue;
        int k = it->nd - 1;
        if (k >= 0 && it->sa[k] == it->sa[i] * y->dims[i] && it->sb[k] == it->sb[i] * y->dims[i]) {
            it->dims[k] *= y->dims[i];
            it->sa[k] = it->sa[i];
            it->sb[k] = it->sb[i];
            continue;
        }
        it->dims[it->nd] = y->dims[i];
        it->sa[it->nd] = it->sa[i];
        it->sb[it->nd] = it->sb[i];
        it->nd++;
    }
    if (it->nd == 0) { /* a scalar, or all dims 1 */
        it->nd = 1;
        it->dims[0] = 1;
        it->sa[0] = it->sb[0] = 0;
    }
}

/* Division: of floats as C divides; of integers truncated toward zero, as
   ONNX's reference (numpy's true division cast back), with 0 for a zero
   divisor and the wrap-around of INT64_MIN / -1 instead of a trap. */
static float div_f32(float a, float b) { return a / b; }
static double div_f64(double a, double b) { return a / b; }
static int64_t div_s(int64_t a, int64_t b)
{
    if (b == 0)
        return 0;
    return b == -1 ? (int64_t)(0 - (uint64_t)a) : a / b;
}
static uint64_t div_u(uint64_t a, uint64_t b) { return b == 0 ? 0 : a / b; }

#define ROW_IMPL(NAME, T, U, DIV)                                                               \
    static void NAME(binary_op op, T *y, const T *a, int64_t as, const T *b, int64_t bs,        \
                     int64_t len)                                                               \
    {                                                                                           \
        switch (op) {                                                                           \
        case B_SUB:                                                                             \
            for (int64_t i = 0; i < len; i++)                                                   \
                y[i] = (T)((U)a[i * as] - (U)b[i * bs]);                                        \
            break;                                                                              \
        case B_DIV:                                                                             \
            for (int64_t i = 0; i < len; i++)                                                   \
                y[i] = (T)DIV(a[i * as], b[i * bs]);                                            \
            break;                                                                              \
        case B_MAX: /* a NaN wins, as numpy's maximum */                                        \
            for (int64_t i = 0; i < len; i++) {                                                 \
                T va = a[i * as], vb = b[i * bs];                                               \
                y[i] = va > vb || va != va ? va : vb;                                           \
            }                                                                                   \
            break;                                                                              \
        case B_MIN:                                                                             \
            for (int64_t i = 0; i < len; i++) {                                                 \
                T va = a[i * as], vb = b[i * bs];                                               \
                y[i] = va < vb || va != va ? va : vb;                                           \
            }                                                                                   \
            break;                                                                              \
        case B_ADD:                                                                             \
            for (int64_t i = 0; i < len; i++)                                                   \
                y[i] = (T)((U)a[i * as] + (U)b[i * bs]);                                        \
            break;                                                                              \
        case B_MUL:                                                                             \
            for (int64_t i = 0; i < len; i++)                                                   \
                y[i] = (T)((U)a[i * as] * (U)b[i * bs]);                                        \
            break;                                                                              \
        case B_COPY:                                                                            \
            for (int64_t i = 0; i < len; i++)                                                   \
                y[i] = a[i * as];                                                               \
            break;                                                                              \
        }                                                                                       \
    }

ROW_IMPL(row_f32, float, float, div_f32)
ROW_IMPL(row_f64, double, double, div_f64)
ROW_IMPL(row_i8, int8_t, uint64_t, div_s)
ROW_IMPL(row_u8, uint8_t, uint64_t, div_s)
ROW_IMPL(row_i16, int16_t, uint64_t, div_s)
ROW_IMPL(row_u16, uint16_t, uint64_t, div_s)
ROW_IMPL(row_i32, int32_t, uint64_t, div_s)
ROW_IMPL(row_u32, uint32_t, uint64_t, div_s)
ROW_IMPL(row_i64, int64_t, uint64_t, div_s)
ROW_IMPL(row_u64, uint64_t, uint64_t, div_u)

/* Half types: computed in float, stored rounded. */
static void row_half(binary_op op, ot_dtype dt, uint16_t *y, const uint16_t *a, int64_t as,
                     const uint16_t *b, int64_t bs, int64_t len)
{
    for (int64_t i = 0; i < len; i++) {
        double va = ot_ref_ld(dt, a, i * as), vb = ot_ref_ld(dt, b, i * bs);
        double v = op == B_ADD   ? (double)((float)va + (float)vb)
                   : op == B_MUL ? (double)((float)va * (float)vb)
                   : op == B_SUB ? (double)((float)va - (float)vb)
                   : op == B_DIV ? (double)((float)va / (float)vb)
                   : op == B_MAX ? (va > vb || va != va ? va : vb)
                   : op == B_MIN ? (va < vb || va != va ? va : vb)
                                 : va;
        ot_ref_st(dt, y, i, v);
    }
}

static bool binary_dtype_ok(ot_dtype t)
{
    return ot_ref_is_float(t) || ot_ref_is_int(t) || t == OT_DTYPE_UINT64;
}

/* One row of the iteration: y[0..len) = a[k * as] op b[k * bs]. */
static void row(binary_op op, ot_dtype dt, void *y, const void *a, int64_t as, const void *b,
                int64_t bs, int64_t len)
{
    switch (dt) {
    case OT_DTYPE_FLOAT: row_f32(op, y, a, as, b, bs, len); break;
    case OT_DTYPE_DOUBLE: row_f64(op, y, a, as, b, bs, len); break;
    case OT_DTYPE_INT8: row_i8(op, y, a, as, b, bs, len); break;
    case OT_DTYPE_UINT8: row_u8(op, y, a, as, b, bs, len); break;
    case OT_DTYPE_INT16: row_i16(op, y, a, as, b, bs, len); break;
    case OT_DTYPE_UINT16: row_u16(op, y, a, as, b, bs, len); break;
    case OT_DTYPE_INT32: row_i32(op, y, a, as, b, bs, len); break;
    case OT_DTYPE_UINT32: row_u32(op, y, a, as, b, bs, len); break;
    case OT_DTYPE_INT64: row_i64(op, y, a, as, b, bs, len); break;
    case OT_DTYPE_UINT64: row_u64(op, y, a, as, b, bs, len); break;
    case OT_DTYPE_FLOAT16:
    case OT_DTYPE_BFLOAT16: row_half(op, dt, y, a, as, b, bs, len); break;
    default: OT_ASSERT(!"binary row: dtype checked by supports");
    }
}

/* y = a op b over y's shape; a placed at y's dims from a_start, b from b_start. */
static void binary(binary_op op, ot_tensor *y, const ot_tensor *a, int a_start,
                   const ot_tensor *b, int b_start)
{
    bcast it;
    int64_t numel = ot_tensor_numel(y);
    if (numel == 0)
        return;
    place(y, a, a_start, it.sa);
    place(y, b, b_start, it.sb);
    coalesce(y, &it);
    size_t es = ot_dtype_size(y->dtype);
    int64_t len = it.dims[it.nd - 1], idx[OT_MAX_DIMS] = { 0 };
    int64_t rows = numel / len, ao = 0, bo = 0;
    for (int64_t r = 0; r < rows; r++) {
        row(op, y->dtype, (char *)y->data + (size_t)(r * len) * es,
            (const char *)a->data + (size_t)ao * es, it.sa[it.nd - 1],
            (const char *)b->data + (size_t)bo * es, it.sb[it.nd - 1], len);
        for (int d = it.nd - 2; d >= 0; d--) { /* next row: odometer over the outer dims */
            idx[d]++;
            ao += it.sa[d];
            bo += it.sb[d];
            if (idx[d] < it.dims[d])
                break;
            ao -= it.sa[d] * it.dims[d];
            bo -= it.sb[d] * it.dims[d];
            idx[d] = 0;
        }
    }
}

/* Whether t broadcasts to y as numpy does (right-aligned). */
static bool broadcasts_to(const ot_tensor *t, const ot_tensor *y, int start)
{
    if (start < 0 || start + t->ndim > y->ndim)
        return false;
    for (int j = 0; j < t->ndim; j++)
        if (t->dims[j] != 1 && t->dims[j] != y->dims[start + j])
            return false;
    return true;
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

static bool binary_supports(const ot_node *n, const ot_tensor *const *in,
                            const ot_tensor *const *out, bool is_sum, const char **why)
{
    const ot_tensor *y = ot_ref_cout(n, out, 0);
    if (!y || n->n_in < 1) {
        *why = "Add/Sub/Mul/Div/Sum: inputs and output are required";
        return false;
    }
    if (!binary_dtype_ok(y->dtype)) {
        *why = "Add/Sub/Mul/Div/Sum: dtype not supported (numeric types only)";
        return false;
    }
    int start = -1;
    if (!is_sum && n->n_in == 2 && ot_ref_in(n, in, 0) && ot_ref_in(n, in, 1))
        start = legacy_start(n, in[0], in[1]);
    for (int i = 0; i < n->n_in; i++) {
        const ot_tensor *t = ot_ref_in(n, in, i);
        if (!t || t->dtype != y->dtype) {
            *why = "Add/Sub/Mul/Div/Sum: every input must be present and of the output's dtype";
            return false;
        }
        if (!broadcasts_to(t, y, i == 1 && start >= 0 ? start : y->ndim - t->ndim)) {
            *why = "Add/Sub/Mul/Div/Sum: an input does not broadcast to the output's shape";
            return false;
        }
    }
    return true;
}

/* a, b (broadcast)  ->  y */
static ot_status binary_run(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                            ot_tensor *const *out, binary_op op, ot_err *err)
{
    const char *why = NULL;
    (void)g;
    if (!binary_supports(n, in, (const ot_tensor *const *)out, false, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    const ot_tensor *a = in[0], *b = in[1];
    ot_tensor *y = out[0];
    int start = legacy_start(n, a, b);
    binary(op, y, a, y->ndim - a->ndim, b, start >= 0 ? start : y->ndim - b->ndim);
    return OT_OK;
}

bool ot_ref_add_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                         const ot_tensor *const *out, const char **why)
{
    (void)g;
    return n->n_in == 2 && binary_supports(n, in, out, false, why);
}

bool ot_ref_mul_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                         const ot_tensor *const *out, const char **why)
{
    (void)g;
    return n->n_in == 2 && binary_supports(n, in, out, false, why);
}

/* Sub and Div: as Add (math_ops.c) */
bool ot_ref_sub_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                         const ot_tensor *const *out, const char **why)
{
    (void)g;
    return n->n_in == 2 && binary_supports(n, in, out, false, why);
}

bool ot_ref_div_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                         const ot_tensor *const *out, const char **why)
{
    (void)g;
    return n->n_in == 2 && binary_supports(n, in, out, false, why);
}

ot_status ot_ref_sub(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                     ot_tensor *const *out, ot_err *err)
{
    return binary_run(g, n, in, out, B_SUB, err);
}

ot_status ot_ref_div(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                     ot_tensor *const *out, ot_err *err)
{
    return binary_run(g, n, in, out, B_DIV, err);
}

bool ot_ref_sum_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                         const ot_tensor *const *out, const char **why)
{
    (void)g;
    return binary_supports(n, in, out, true, why);
}

ot_status ot_ref_add(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                     ot_tensor *const *out, ot_err *err)
{
    return binary_run(g, n, in, out, B_ADD, err);
}

ot_status ot_ref_mul(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                     ot_tensor *const *out, ot_err *err)
{
    return binary_run(g, n, in, out, B_MUL, err);
}

/* x0, x1, ... (broadcast)  ->  y = x0 op x1 op ... (y accumulates in place) */
static ot_status variadic_run(const ot_node *n, const ot_tensor *const *in, ot_tensor *const *out,
                              binary_op op, ot_err *err)
{
    const char *why = NULL;
    if (!binary_supports(n, in, (const ot_tensor *const *)out, true, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s: %s", n->op_type, why);
    ot_tensor *y = out[0];
    if (n->n_in == 1) {
        binary(B_COPY, y, in[0], y->ndim - in[0]->ndim, in[0], y->ndim - in[0]->ndim);
        return OT_OK;
    }
    /* inputs aliasing y (in place) are read before y is written only for the
       first pair; later ones must not alias y */
    binary(op, y, in[0], y->ndim - in[0]->ndim, in[1], y->ndim - in[1]->ndim);
    for (int i = 2; i < n->n_in; i++)
        binary(op, y, y, 0, in[i], y->ndim - in[i]->ndim);
    return OT_OK;
}

ot_status ot_ref_sum(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                     ot_tensor *const *out, ot_err *err)
{
    (void)g;
    return variadic_run(n, in, out, B_ADD, err);
}

/* Max, Min (math_ops.c): as Sum; Mean: float types, the sum divided by n. */
bool ot_ref_max_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                         const ot_tensor *const *out, const char **why)
{
    (void)g;
    return binary_supports(n, in, out, true, why);
}

bool ot_ref_mean_supports(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                          const ot_tensor *const *out, const char **why)
{
    (void)g;
    const ot_tensor *y = ot_ref_cout(n, out, 0);
    if (y && !ot_ref_is_float(y->dtype)) {
        *why = "Mean: float types only";
        return false;
    }
    return binary_supports(n, in, out, true, why);
}

ot_status ot_ref_max(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                     ot_tensor *const *out, ot_err *err)
{
    (void)g;
    return variadic_run(n, in, out, ot_node_is(n, OT_OP_MIN) ? B_MIN : B_MAX, err);
}

ot_status ot_ref_mean(const ot_graph *g, const ot_node *n, const ot_tensor *const *in,
                      ot_tensor *const *out, ot_err *err)
{
    const char *why = NULL;
    if (!ot_ref_mean_supports(g, n, in, (const ot_tensor *const *)out, &why))
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "%s", why);
    ot_status st = variadic_run(n, in, out, B_ADD, err);
    ot_tensor *y = out[0];
    int64_t numel = ot_tensor_numel(y);
    for (int64_t i = 0; st == OT_OK && i < numel; i++)
        ot_ref_st(y->dtype, y->data, i, ot_ref_ld(y->dtype, y->data, i) / (double)n->n_in);
    return st;
}
