/*
 * op_util.c: helpers shared by the op descriptors (see op_util.h).
 *
 * Window arithmetic follows the ONNX Conv/MaxPool/AveragePool specs (opset
 * 21): explicit pads, auto_pad SAME_UPPER/SAME_LOWER/VALID, dilations, and
 * ceil_mode with the rule that the last window must start inside the input
 * or its left padding (as PyTorch and onnxruntime do).
 */
#include <stdio.h>
#include <string.h>

#include "ops/op_util.h"

ot_value *ot_op_in(ot_graph *g, const ot_node *n, int i)
{
    if (i < 0 || i >= n->n_in || n->in[i] < 0 || n->in[i] >= g->n_values)
        return NULL;
    return &g->values[n->in[i]];
}

ot_value *ot_op_out(ot_graph *g, const ot_node *n, int i)
{
    if (i < 0 || i >= n->n_out || n->out[i] < 0 || n->out[i] >= g->n_values)
        return NULL;
    return &g->values[n->out[i]];
}

bool ot_op_known(const ot_value *v)
{
    return v && v->dtype != OT_DTYPE_UNDEFINED && v->ndim >= 0 && v->ndim <= OT_MAX_DIMS;
}

bool ot_op_is_float(ot_dtype t)
{
    return t == OT_DTYPE_FLOAT || t == OT_DTYPE_FLOAT16 || t == OT_DTYPE_BFLOAT16 ||
           t == OT_DTYPE_DOUBLE;
}

bool ot_op_is_int(ot_dtype t)
{
    switch (t) {
    case OT_DTYPE_UINT8: case OT_DTYPE_INT8: case OT_DTYPE_UINT16: case OT_DTYPE_INT16:
    case OT_DTYPE_INT32: case OT_DTYPE_INT64: case OT_DTYPE_UINT32: case OT_DTYPE_UINT64:
        return true;
    default:
        return false;
    }
}

ot_status ot_op_err(ot_err *err, ot_status code, const ot_graph *g, const ot_node *n,
                    const char *fmt, ...)
{
    char label[512], msg[OT_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ot_err_set(err, code, "%s: %s", ot_node_label(g, n, label, sizeof label), msg);
}

ot_status ot_op_need_float(const ot_graph *g, const ot_node *n, int i, const ot_value *v,
                           ot_err *err)
{
    if (ot_op_is_float(v->dtype))
        return OT_OK;
    return ot_op_err(err, OT_ERR_MODEL, g, n,
                     "input %d '%s' is %s, expected float, float16, bfloat16 or double", i,
                     v->name, ot_dtype_name(v->dtype));
}

void ot_op_dims_of(const ot_value *v, ot_op_dims *d)
{
    memset(d, 0, sizeof *d);
    d->ndim = v->ndim;
    for (int i = 0; i < v->ndim && i < OT_MAX_DIMS; i++) {
        d->dims[i] = v->dims[i];
        d->names[i] = v->dims[i] < 0 ? v->dim_names[i] : NULL;
    }
}

void ot_op_set(ot_value *out, ot_dtype dtype, const ot_op_dims *d)
{
    out->dtype = dtype;
    out->ndim = d->ndim;
    for (int i = 0; i < OT_MAX_DIMS; i++) {
        bool in = i < d->ndim;
        out->dims[i] = in ? (d->dims[i] < 0 ? OT_DIM_DYNAMIC : d->dims[i]) : 0;
        out->dim_names[i] = in && d->dims[i] < 0 ? d->names[i] : NULL;
    }
}

void ot_op_copy(ot_value *out, const ot_value *in)
{
    ot_op_dims d;
    ot_op_dims_of(in, &d);
    ot_op_set(out, in->dtype, &d);
}

void ot_op_dims_str(const ot_op_dims *d, char *buf, size_t size)
{
    if (size == 0)
        return;
    if (d->ndim < 0) {
        snprintf(buf, size, "?");
        return;
    }
    size_t len = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < d->ndim && len < size; i++) {
        const char *sep = i ? "," : "";
        if (d->dims[i] >= 0)
            len += (size_t)snprintf(buf + len, size - len, "%s%lld", sep, (long long)d->dims[i]);
        else
            len += (size_t)snprintf(buf + len, size - len, "%s%s", sep,
                                    d->names[i] ? d->names[i] : "?");
    }
    if (len < size)
        snprintf(buf + len, size - len, "]");
}

bool ot_op_axis(int64_t axis, int rank, int *out)
{
    if (axis < -(int64_t)rank || axis >= rank)
        return false;
    *out = (int)(axis < 0 ? axis + rank : axis);
    return true;
}

bool ot_op_dim_mul(int64_t a, int64_t b, int64_t *out)
{
    if (a < 0 || b < 0 || (a && b > INT64_MAX / a))
        return false;
    *out = a * b;
    return true;
}

/* GCC and clang builtins: exact, and no undefined behaviour on overflow. */
bool ot_op_i64_add(int64_t a, int64_t b, int64_t *out) { return !__builtin_add_overflow(a, b, out); }
bool ot_op_i64_sub(int64_t a, int64_t b, int64_t *out) { return !__builtin_sub_overflow(a, b, out); }
bool ot_op_i64_mul(int64_t a, int64_t b, int64_t *out) { return !__builtin_mul_overflow(a, b, out); }

bool ot_op_dims_prod(const ot_op_dims *d, int from, int to, int64_t *dim, const char **name)
{
    int64_t p = 1;
    int n_dyn = 0;
    const char *sym = NULL;
    for (int i = from; i < to; i++) {
        if (d->dims[i] < 0) {
            n_dyn++;
            sym = d->names[i];
        } else if (!ot_op_dim_mul(p, d->dims[i], &p)) {
            return false;
        }
    }
    *name = NULL;
    if (n_dyn == 0) {
        *dim = p;
        return true;
    }
    *dim = OT_DIM_DYNAMIC;
    if (n_dyn == 1 && p == 1)
        *name = sym;
    return true;
}

/* Two dynamic dims are the same when they carry the same symbol. */
static bool same_symbol(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

ot_status ot_op_broadcast(const ot_graph *g, const ot_node *n, const ot_op_dims *a,
                          const ot_op_dims *b, ot_op_dims *out, ot_err *err)
{
    ot_op_dims r;
    memset(&r, 0, sizeof r);
    r.ndim = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < r.ndim; i++) {
        int ia = i - (r.ndim - a->ndim), ib = i - (r.ndim - b->ndim);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        const char *na = ia >= 0 ? a->names[ia] : NULL, *nb = ib >= 0 ? b->names[ib] : NULL;
        if (da >= 0 && db >= 0) {
            if (da != db && da != 1 && db != 1) {
                char sa[160], sb[160];
                ot_op_dims_str(a, sa, sizeof sa);
                ot_op_dims_str(b, sb, sizeof sb);
                return ot_op_err(err, OT_ERR_SHAPE, g, n,
                                 "inputs %s and %s do not broadcast (dim %d: %lld vs %lld)", sa,
                                 sb, i, (long long)da, (long long)db);
            }
            r.dims[i] = da == 1 ? db : da;
        } else if (da >= 0) { /* b dynamic: it must be 1 or da */
            r.dims[i] = da == 1 ? OT_DIM_DYNAMIC : da;
            r.names[i] = da == 1 ? nb : NULL;
        } else if (db >= 0) {
            r.dims[i] = db == 1 ? OT_DIM_DYNAMIC : db;
            r.names[i] = db == 1 ? na : NULL;
        } else {
            r.dims[i] = OT_DIM_DYNAMIC;
            r.names[i] = same_symbol(na, nb) ? na : NULL;
        }
    }
    *out = r;
    return OT_OK;
}

/* Reads an INTS attribute of exactly `want` values, or fills `def`. */
static ot_status spatial_attr(const ot_graph *g, const ot_node *n, const char *name, int want,
                              int64_t def, int64_t *vals, ot_err *err)
{
    size_t len = 0;
    const int64_t *v = ot_node_attr_ints(n, name, &len);
    if (!v) {
        for (int i = 0; i < want; i++)
            vals[i] = def;
        return OT_OK;
    }
    if (len != (size_t)want)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "attribute '%s' has %zu values, expected %d%s",
                         name, len, want,
                         strcmp(name, "pads") == 0 ? " (2 x spatial rank)" : " (spatial rank)");
    for (int i = 0; i < want; i++)
        vals[i] = v[i];
    return OT_OK;
}

ot_status ot_op_window(const ot_graph *g, const ot_node *n, const ot_op_dims *x,
                       const int64_t *kernel, bool ceil_mode, ot_op_dims *y, ot_err *err)
{
    ot_status st = OT_OK;
    int k = x->ndim - 2;
    int64_t strides[OT_MAX_DIMS], dil[OT_MAX_DIMS], pads[2 * OT_MAX_DIMS];
    OT_ASSERT(k >= 0 && k <= OT_MAX_DIMS - 2);
    OT_TRY(spatial_attr(g, n, "strides", k, 1, strides, err));
    OT_TRY(spatial_attr(g, n, "dilations", k, 1, dil, err));
    OT_TRY(spatial_attr(g, n, "pads", 2 * k, 0, pads, err));
    const char *auto_pad = ot_node_attr_string(n, "auto_pad", "NOTSET");
    bool same = strcmp(auto_pad, "SAME_UPPER") == 0 || strcmp(auto_pad, "SAME_LOWER") == 0;
    bool valid = strcmp(auto_pad, "VALID") == 0;
    y->ndim = x->ndim;
    for (int i = 0; i < k; i++) {
        int64_t in = x->dims[2 + i], s = strides[i], d = dil[i];
        int64_t pb = pads[i], pe = pads[k + i];
        int64_t *o = &y->dims[2 + i];
        y->names[2 + i] = NULL;
        if (s <= 0 || d <= 0 || pb < 0 || pe < 0)
            return ot_op_err(err, OT_ERR_MODEL, g, n,
                             "strides and dilations must be positive and pads non-negative");
        if (in < 0 || (!same && kernel[i] < 0)) {
            *o = OT_DIM_DYNAMIC;
            continue;
        }
        /* dk = (kernel - 1) * d + 1; span = in + pb + pe - dk; every step checked,
           since the attributes come from the file */
        int64_t dk = 0, in_pb = 0, padded = 0, span = 0;
        bool fits = true;
        if (same) {
            *o = in / s + (in % s != 0); /* ceil(in / s) without overflow */
            /* the kernels derive the pads, (o - 1) * s + dk - in, with o - 1 < in / s */
            if (kernel[i] >= 0)
                fits = ot_op_i64_mul(kernel[i] - 1, d, &dk) && ot_op_i64_add(dk, 1, &dk) &&
                       ot_op_i64_add(dk, *o > 0 ? (*o - 1) * s : 0, &padded);
            if (fits)
                continue;
        } else {
            fits = ot_op_i64_mul(kernel[i] - 1, d, &dk) && ot_op_i64_add(dk, 1, &dk) &&
                   ot_op_i64_add(in, pb, &in_pb) && ot_op_i64_add(in_pb, pe, &padded) &&
                   ot_op_i64_sub(valid ? in : padded, dk, &span);
        }
        if (!fits)
            return ot_op_err(err, OT_ERR_SHAPE, g, n,
                             "the window arithmetic overflows in spatial dim %d (input %lld, "
                             "kernel %lld, stride %lld, dilation %lld, pads %lld and %lld)",
                             i, (long long)in, (long long)kernel[i], (long long)s, (long long)d,
                             (long long)pb, (long long)pe);
        if (span < 0)
            return ot_op_err(err, OT_ERR_SHAPE, g, n,
                             "window %lld (kernel %lld, dilation %lld) is larger than the padded "
                             "input %lld in spatial dim %d",
                             (long long)dk, (long long)kernel[i], (long long)d,
                             (long long)(valid ? in : padded), i);
        /* span / s + 1 overflows only when span is INT64_MAX and s is 1 */
        int64_t last;
        if (ceil_mode && !valid) {
            if (!ot_op_i64_add(span / s + (span % s != 0), 1, o))
                return ot_op_err(err, OT_ERR_SHAPE, g, n,
                                 "output size overflows in spatial dim %d", i);
            /* the last window must start inside the input or its left padding */
            if (!ot_op_i64_mul(*o - 1, s, &last) || last >= in_pb)
                (*o)--;
        } else if (!ot_op_i64_add(span / s, 1, o)) {
            return ot_op_err(err, OT_ERR_SHAPE, g, n, "output size overflows in spatial dim %d",
                             i);
        }
    }
done:
    return st;
}

/* ------------------------------------------------------------ attr checks */

ot_status ot_op_check_positive(const ot_graph *g, const ot_node *n, const ot_attr *a,
                               ot_err *err)
{
    (void)g, (void)n;
    if (a->i <= 0)
        return ot_err_set(err, OT_ERR_MODEL, "is %lld, expected a positive value",
                          (long long)a->i);
    return OT_OK;
}

ot_status ot_op_check_bool(const ot_graph *g, const ot_node *n, const ot_attr *a, ot_err *err)
{
    (void)g, (void)n;
    if (a->i != 0 && a->i != 1)
        return ot_err_set(err, OT_ERR_MODEL, "is %lld, expected 0 or 1", (long long)a->i);
    return OT_OK;
}

ot_status ot_op_check_auto_pad(const ot_graph *g, const ot_node *n, const ot_attr *a,
                               ot_err *err)
{
    (void)g, (void)n;
    static const char *const ok[] = { "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID" };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(a->s, ok[i]) == 0)
            return OT_OK;
    return ot_err_set(err, OT_ERR_MODEL,
                      "is '%s', expected NOTSET, SAME_UPPER, SAME_LOWER or VALID", a->s);
}

ot_status ot_op_check_positive_ints(const ot_graph *g, const ot_node *n, const ot_attr *a,
                                    ot_err *err)
{
    (void)g;
    for (size_t i = 0; i < a->n; i++)
        if (a->ints[i] <= 0)
            return ot_err_set(err, OT_ERR_MODEL, "has value %lld at %zu, expected positive",
                              (long long)a->ints[i], i);
    size_t k = 0;
    if (strcmp(a->name, "kernel_shape") != 0 && ot_node_attr_ints(n, "kernel_shape", &k) &&
        a->n != k)
        return ot_err_set(err, OT_ERR_MODEL, "has %zu values, expected %zu (spatial rank)", a->n,
                          k);
    return OT_OK;
}

ot_status ot_op_check_spatial_ints(const ot_graph *g, const ot_node *n, const ot_attr *a,
                                   ot_err *err)
{
    (void)g;
    for (size_t i = 0; i < a->n; i++)
        if (a->ints[i] < 0)
            return ot_err_set(err, OT_ERR_MODEL, "has value %lld at %zu, expected >= 0",
                              (long long)a->ints[i], i);
    size_t k = 0;
    if (ot_node_attr_ints(n, "kernel_shape", &k) && a->n != k)
        return ot_err_set(err, OT_ERR_MODEL, "has %zu values, expected %zu (spatial rank)", a->n,
                          k);
    return OT_OK;
}

ot_status ot_op_check_pads(const ot_graph *g, const ot_node *n, const ot_attr *a, ot_err *err)
{
    (void)g;
    for (size_t i = 0; i < a->n; i++)
        if (a->ints[i] < 0)
            return ot_err_set(err, OT_ERR_MODEL, "has value %lld at %zu, expected >= 0",
                              (long long)a->ints[i], i);
    size_t k = 0;
    if (ot_node_attr_ints(n, "kernel_shape", &k) && a->n != 2 * k)
        return ot_err_set(err, OT_ERR_MODEL, "has %zu values, expected %zu (2 x spatial rank)",
                          a->n, 2 * k);
    if (a->n % 2)
        return ot_err_set(err, OT_ERR_MODEL,
                          "has %zu values, expected an even number (2 x spatial rank)", a->n);
    return OT_OK;
}

/* ---------------------------------------------------------------- folding */

void ot_op_sym_dim(const ot_graph *g, int64_t e, int64_t *dim, const char **name, int32_t *vid,
                   int *d)
{
    *dim = OT_DIM_DYNAMIC;
    *name = NULL;
    *vid = -1;
    *d = -1;
    if (e == OT_OP_SYM_NONE)
        return;
    int64_t code = e - (INT64_MIN + 1);
    int64_t v = code / OT_MAX_DIMS;
    int k = (int)(code % OT_MAX_DIMS);
    if (v >= g->n_values)
        return;
    const ot_value *src = &g->values[v];
    if (k >= src->ndim)
        return;
    *vid = (int32_t)v;
    *d = k;
    *dim = src->dims[k];
    *name = src->dims[k] < 0 ? src->dim_names[k] : NULL;
}

static const ot_tensor *small_elems(const ot_graph *g, int32_t vid, bool with_bool,
                                    bool *partial)
{
    *partial = false;
    if (vid < 0 || vid >= g->n_values)
        return NULL;
    const ot_value *v = &g->values[vid];
    const ot_tensor *t = ot_graph_const(g, vid);
    if (!t) {
        /* a partial vector: int64 data on a node output without OT_VAL_CONST */
        if (v->producer < 0 || !v->data.data || v->data.dtype != OT_DTYPE_INT64)
            return NULL;
        t = &v->data;
        *partial = true;
    }
    if (t->dtype != OT_DTYPE_INT64 && t->dtype != OT_DTYPE_INT32 &&
        (!with_bool || t->dtype != OT_DTYPE_BOOL))
        return NULL;
    if (t->ndim < 0 || t->ndim > OT_MAX_DIMS)
        return NULL;
    int64_t numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->dims[i] < 0 || t->dims[i] > OT_OP_FOLD_MAX)
            return NULL;
        numel *= t->dims[i];
    }
    /* an empty tensor (a Slice past the end of a shape) has no bytes */
    if (numel > OT_OP_FOLD_MAX || (numel > 0 && !t->data) ||
        t->bytes < (size_t)numel * ot_dtype_size(t->dtype))
        return NULL;
    return t;
}

const ot_tensor *ot_op_ints(const ot_graph *g, int32_t vid, bool *partial)
{
    return small_elems(g, vid, false, partial);
}

const ot_tensor *ot_op_ints_or_bools(const ot_graph *g, int32_t vid, bool *partial)
{
    return small_elems(g, vid, true, partial);
}

bool ot_op_shape_operand(const ot_graph *g, const ot_node *n, int i, bool absent_scalar,
                         ot_op_dims *d)
{
    memset(d, 0, sizeof *d);
    d->ndim = -1;
    if (i >= n->n_in || n->in[i] < 0) {
        if (absent_scalar)
            d->ndim = 0;
        return absent_scalar;
    }
    const ot_value *sv = &g->values[n->in[i]];
    const ot_tensor *c = ot_graph_const(g, n->in[i]);
    if (c && c->ndim == 1 && c->dims[0] == 0) {
        d->ndim = 0;
        return true;
    }
    bool partial = false;
    const ot_tensor *t = ot_op_ints(g, n->in[i], &partial);
    if (t && t->ndim == 1 && t->dims[0] <= OT_MAX_DIMS) {
        d->ndim = (int)t->dims[0];
        for (int k = 0; k < d->ndim; k++) {
            int64_t e = ot_tensor_get_i64(t, k);
            d->names[k] = NULL;
            if (partial && ot_op_is_sym(e)) {
                int32_t vid;
                int dd;
                ot_op_sym_dim(g, e, &d->dims[k], &d->names[k], &vid, &dd);
            } else {
                d->dims[k] = e >= 0 ? e : OT_DIM_DYNAMIC;
            }
        }
        return true;
    }
    if (ot_op_known(sv) && sv->ndim == 1 && sv->dims[0] >= 0 && sv->dims[0] <= OT_MAX_DIMS) {
        d->ndim = (int)sv->dims[0];
        for (int k = 0; k < d->ndim; k++)
            d->dims[k] = OT_DIM_DYNAMIC;
        return true;
    }
    return false;
}

ot_status ot_op_set_ints(ot_graph *g, ot_value *v, ot_dtype dtype, const ot_op_dims *d,
                         const int64_t *vals, bool partial, ot_err *err)
{
    int64_t numel = 1;
    for (int i = 0; i < d->ndim; i++)
        numel *= d->dims[i];
    OT_ASSERT(numel >= 0 && numel <= OT_OP_FOLD_MAX);
    OT_ASSERT(dtype == OT_DTYPE_INT64 || dtype == OT_DTYPE_INT32 || dtype == OT_DTYPE_BOOL);
    /* a vector taken from a partial one may hold no symbol: it is known
       (Gather of the channel count from the shape of an (N, C, H, W) input) */
    bool any_sym = false;
    for (int64_t i = 0; partial && i < numel; i++)
        any_sym = any_sym || ot_op_is_sym(vals[i]);
    partial = partial && any_sym;
    if (partial)
        dtype = OT_DTYPE_INT64; /* symbols need 64 bits */
    size_t esize = ot_dtype_size(dtype);
    void *data = NULL;
    if (numel > 0) {
        data = ot_arena_alloc(&g->arena, (size_t)numel * esize);
        if (!data)
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory folding '%s'", v->name);
    }
    for (int64_t i = 0; i < numel; i++) {
        if (dtype == OT_DTYPE_INT64) {
            memcpy((char *)data + (size_t)i * 8, &vals[i], 8);
        } else if (dtype == OT_DTYPE_BOOL) {
            ((uint8_t *)data)[i] = vals[i] != 0;
        } else {
            int32_t x = (int32_t)vals[i];
            memcpy((char *)data + (size_t)i * 4, &x, 4);
        }
    }
    ot_op_set(v, dtype, d);
    memset(&v->data, 0, sizeof v->data);
    v->data.dtype = dtype;
    v->data.ndim = d->ndim;
    for (int i = 0; i < d->ndim; i++)
        v->data.dims[i] = d->dims[i];
    v->data.data = data;
    v->data.bytes = (size_t)numel * esize;
    if (partial)
        v->flags &= ~(uint32_t)OT_VAL_CONST;
    else
        v->flags |= OT_VAL_CONST;
    return OT_OK;
}

ot_status ot_op_fold_same(ot_graph *g, int32_t x_id, ot_value *y, ot_err *err)
{
    bool partial;
    const ot_tensor *t = ot_op_ints(g, x_id, &partial);
    if (!t || y->ndim < 0)
        return OT_OK;
    ot_op_dims d;
    ot_op_dims_of(y, &d);
    int64_t numel = 1;
    for (int i = 0; i < d.ndim; i++) {
        if (d.dims[i] < 0 || !ot_op_dim_mul(numel, d.dims[i], &numel) || numel > OT_OP_FOLD_MAX)
            return OT_OK;
    }
    if (numel != ot_tensor_numel(t))
        return OT_OK;
    int64_t vals[OT_OP_FOLD_MAX];
    for (int64_t i = 0; i < numel; i++)
        vals[i] = ot_tensor_get_i64(t, i);
    return ot_op_set_ints(g, y, t->dtype, &d, vals, partial, err);
}
