/*
 * fold_float.c: evaluates float32 nodes whose inputs are all constant, for
 * --simplify (converters/simplify.c). Private to converters/.
 *
 * Only ops whose float32 result is exactly defined by IEEE 754, so that the
 * folded constant holds the bits a runtime would compute: Add, Sub, Mul,
 * Div (two inputs, numpy broadcasting), Neg, Abs, Sqrt, Reciprocal, Relu; and the ops that move elements without arithmetic:
 * Transpose, Concat, and Reshape, Flatten, Squeeze, Unsqueeze (the shape
 * inference already gave the output's shape). Transcendental ops (Exp, Erf,
 * Tanh ...), reductions and products, whose last bits depend on the
 * runtime's implementation, are left to the runtime, as is anything whose
 * result would be larger than its inputs together (a broadcast that grows
 * the file) and any input holding a NaN (whose propagation runtimes differ
 * on).
 *
 * An input is constant when it is an initializer or a constant computed
 * before (not training state, not an initializer that a graph input may
 * override in IR >= 4).
 */
#include <math.h>
#include <string.h>

#include "converters/edit.h"
#include "ops/ops.h"

typedef enum {
    E_NONE,
    E_ADD, E_SUB, E_MUL, E_DIV,                           /* binary     */
    E_NEG, E_ABS, E_SQRT, E_RECIP, E_RELU,                 /* unary      */
    E_TRANSPOSE, E_CONCAT, E_SAME                          /* movement   */
} eval_kind;

static eval_kind kind_of(const ot_node *n)
{
    static const struct {
        const char *type;
        eval_kind kind;
    } ops[] = { { "Add", E_ADD },           { "Sub", E_SUB },         { "Mul", E_MUL },
                { "Div", E_DIV },           { "Neg", E_NEG },           { "Abs", E_ABS },         { "Sqrt", E_SQRT },
                { "Reciprocal", E_RECIP },  { "Relu", E_RELU },       { "Transpose", E_TRANSPOSE },
                { "Concat", E_CONCAT },     { "Reshape", E_SAME },    { "Flatten", E_SAME },
                { "Squeeze", E_SAME },      { "Unsqueeze", E_SAME } };
    if (!n->op_type || !ot_domain_is_default(n->domain))
        return E_NONE;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (strcmp(n->op_type, ops[i].type) == 0)
            return ops[i].kind;
    return E_NONE;
}

/* The constant data of input v when it may be folded; NULL otherwise. */
static const ot_tensor *const_in(const ot_graph *g, int32_t v)
{
    const ot_tensor *t = ot_graph_const(g, v);
    if (!t || (g->values[v].flags & OT_VAL_STATE))
        return NULL;
    if ((g->values[v].flags & OT_VAL_INPUT) && g->ir_version >= 4)
        return NULL; /* a graph input may replace it at run time */
    return t;
}

static int64_t numel(const int64_t *dims, int ndim)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0)
            return -1;
        n *= dims[i];
    }
    return n;
}

static float apply(eval_kind k, float a, float b)
{
    switch (k) {
    case E_ADD: return a + b;
    case E_SUB: return a - b;
    case E_MUL: return a * b;
    case E_DIV: return a / b;
    case E_NEG: return -a;
    case E_ABS: return fabsf(a);
    case E_SQRT: return sqrtf(a);
    case E_RECIP: return 1.0f / a;
    case E_RELU: return a > 0.0f ? a : 0.0f;
    default: return 0.0f;
    }
}

/* Strides of t's elements against an output of rank r (0 for broadcast
   dims), right-aligned as numpy does. */
static void bcast_strides(const ot_tensor *t, int r, int64_t *st)
{
    int64_t s = 1;
    for (int d = r - 1; d >= 0; d--) {
        int td = d - (r - t->ndim);
        if (td < 0) {
            st[d] = 0;
            continue;
        }
        st[d] = t->dims[td] == 1 ? 0 : s;
        s *= t->dims[td];
    }
}

bool cv_fold_float(const ot_graph *g, const ot_node *n, float **out, size_t *bytes, int *ndim,
                   int64_t *dims)
{
    *out = NULL;
    eval_kind k = kind_of(n);
    if (k == E_NONE || n->n_out != 1 || n->out[0] < 0 || n->n_in < 1)
        return false;
    const ot_value *y = &g->values[n->out[0]];
    if (y->flags & OT_VAL_CONST)
        return false;
    bool unary = k == E_NEG || k == E_ABS || k == E_SQRT || k == E_RECIP || k == E_RELU;
    /* an op outside the op table has no inferred output: a unary one's is
       its input's */
    ot_value shape = *y;
    if (unary && (n->flags & OT_NODE_OPAQUE) && n->in[0] >= 0) {
        const ot_value *x0 = &g->values[n->in[0]];
        shape.dtype = x0->dtype;
        shape.ndim = x0->ndim;
        memcpy(shape.dims, x0->dims, sizeof shape.dims);
    }
    y = &shape;
    if (y->dtype != OT_DTYPE_FLOAT || y->ndim < 0 || y->ndim > OT_MAX_DIMS)
        return false;
    int64_t ny = numel(y->dims, y->ndim);
    if (ny < 0 || ny > ((int64_t)1 << 26))
        return false;
    const ot_tensor *in[16];
    int nin = n->n_in;
    if (nin > 16)
        return false;
    int64_t total = 0;
    for (int i = 0; i < nin; i++) {
        in[i] = n->in[i] >= 0 ? const_in(g, n->in[i]) : NULL;
        if (!in[i] && n->in[i] >= 0)
            return false;
        /* the data operands are float32; the others (shape, axes) integers */
        bool data = k != E_SAME || i == 0;
        if (in[i] && data) {
            if (in[i]->dtype != OT_DTYPE_FLOAT || (!in[i]->data && in[i]->bytes))
                return false;
            const float *f = in[i]->data;
            for (size_t e = 0; e < in[i]->bytes / 4; e++)
                if (isnan(f[e]))
                    return false;
            total += (int64_t)(in[i]->bytes / 4);
        }
    }
    if (!in[0] || ny > total)
        return false;
    float *r = ot_malloc(sizeof *r * (size_t)(ny ? ny : 1));
    if (!r)
        return false;
    const float *x = in[0]->data;
    int rank = y->ndim;
    switch (k) {
    case E_SAME:
        if ((int64_t)(in[0]->bytes / 4) != ny)
            goto no;
        memcpy(r, x, sizeof *r * (size_t)ny);
        break;
    case E_NEG: case E_ABS: case E_SQRT: case E_RECIP: case E_RELU:
        if (nin != 1 || (int64_t)(in[0]->bytes / 4) != ny)
            goto no;
        for (int64_t i = 0; i < ny; i++)
            r[i] = apply(k, x[i], 0.0f);
        break;
    case E_ADD: case E_SUB: case E_MUL: case E_DIV: {
        if (nin != 2 || !in[1] || in[0]->ndim > rank || in[1]->ndim > rank)
            goto no;
        int64_t sa[OT_MAX_DIMS], sb[OT_MAX_DIMS], idx[OT_MAX_DIMS] = { 0 };
        bcast_strides(in[0], rank, sa);
        bcast_strides(in[1], rank, sb);
        const float *b = in[1]->data;
        int64_t oa = 0, ob = 0;
        for (int64_t i = 0; i < ny; i++) {
            r[i] = apply(k, x[oa], b[ob]);
            for (int d = rank - 1; d >= 0; d--) { /* next index, odometer-wise */
                idx[d]++;
                oa += sa[d];
                ob += sb[d];
                if (idx[d] < y->dims[d])
                    break;
                oa -= sa[d] * idx[d];
                ob -= sb[d] * idx[d];
                idx[d] = 0;
            }
        }
        break;
    }
    case E_TRANSPOSE: {
        if (nin != 1 || in[0]->ndim != rank)
            goto no;
        size_t np = 0;
        const int64_t *perm = ot_node_attr_ints(n, "perm", &np);
        int64_t p[OT_MAX_DIMS], st[OT_MAX_DIMS], idx[OT_MAX_DIMS] = { 0 };
        for (int d = 0; d < rank; d++)
            p[d] = perm ? (d < (int)np ? perm[d] : -1) : rank - 1 - d;
        int64_t s = 1;
        for (int d = rank - 1; d >= 0; d--) {
            st[d] = s;
            s *= in[0]->dims[d];
        }
        for (int d = 0; d < rank; d++)
            if (p[d] < 0 || p[d] >= rank || in[0]->dims[p[d]] != y->dims[d])
                goto no;
        int64_t off = 0;
        for (int64_t i = 0; i < ny; i++) {
            r[i] = x[off];
            for (int d = rank - 1; d >= 0; d--) {
                idx[d]++;
                off += st[p[d]];
                if (idx[d] < y->dims[d])
                    break;
                off -= st[p[d]] * idx[d];
                idx[d] = 0;
            }
        }
        break;
    }
    case E_CONCAT: {
        int64_t a = ot_node_attr_int(n, "axis", 0);
        if (a < 0)
            a += rank;
        if (a < 0 || a >= rank)
            goto no;
        int axis = (int)a;
        int64_t outer = numel(y->dims, axis), inner = numel(y->dims + axis + 1, rank - axis - 1);
        int64_t pos = 0;
        for (int i = 0; i < nin; i++) {
            if (!in[i] || in[i]->ndim != rank)
                goto no;
            int64_t w = in[i]->dims[axis] * inner;
            const float *src = in[i]->data;
            if ((int64_t)(in[i]->bytes / 4) != outer * w || pos + w > y->dims[axis] * inner)
                goto no;
            for (int64_t o = 0; o < outer; o++)
                memcpy(r + o * y->dims[axis] * inner + pos, src + o * w, sizeof *r * (size_t)w);
            pos += w;
        }
        if (pos != y->dims[axis] * inner)
            goto no;
        break;
    }
    default:
        goto no;
    }
    *out = r;
    *bytes = sizeof *r * (size_t)ny;
    *ndim = y->ndim;
    memcpy(dims, y->dims, sizeof *dims * (size_t)y->ndim);
    return true;
no:
    ot_free(r);
    return false;
}
