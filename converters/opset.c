/*
 * opset.c: `--opset N`: converts the default domain between opsets 7 and 21,
 * both ways.
 *
 * Each op has its history: the opsets at which its definition changed
 * (ONNX's since_version list, Operators.md and Changelog.md). A node moving
 * from opset S to T crosses the boundaries v with min(S,T) < v <= max(S,T);
 * for each one there is an adapter that rewrites the node from the form
 * before v to the form at v (up) or back (down), applied in order, so any
 * range is the composition of single steps. Boundaries that only added
 * tensor types need no rewrite going up; going down they refuse a node whose
 * tensors have a type the older opset lacks (bfloat16, float8, 4-bit).
 *
 * A node that cannot be expressed at the target (allowzero=1 with a zero in
 * the shape below 14, a computed Squeeze axes input below 13, training-mode
 * BatchNormalization below 14, an op that does not exist there ...) is an
 * error naming the node and the reason; so is a default-domain op without
 * a history here. Ops of other domains are carried unchanged with a warning.
 * Nodes the adapters add (the Flatten/Reshape or Transpose pairs that keep
 * Softmax's meaning across 13) use forms valid at every opset from 7 to 21.
 */
#include <stdio.h>
#include <string.h>

#include "converters/edit.h"
#include "ops/ops.h"

typedef struct cv_opset_ctx {
    ot_graph *g;
    int from, to;
} cx;

/* An adapter rewrites node `n` across one boundary. */
typedef ot_status (*adapt_fn)(cx *c, int32_t n, ot_err *err);

/* One boundary: the opset where the op changed, and how to cross it. NULL
   up or down: nothing to rewrite that way (types only, or a change our
   nodes never depend on); `types` marks a boundary that added tensor types,
   checked going down. */
typedef struct boundary {
    int v;
    adapt_fn up, down;
    int types; /* what the boundary added: TYPES_* */
} boundary;

enum {
    TYPES_NONE = 0,
    TYPES_NEW = 1,   /* bfloat16, float8, 4-bit (and wider integer sets)      */
    TYPES_INT = 2,   /* integer types: before it, floating-point only         */
    TYPES_FLOAT = 3, /* floating-point types: before it, integers and bool only */
};

#define MAX_B 8
typedef struct history {
    const char *type;
    int first;   /* the opset that introduced it (1: before 7)            */
    int removed; /* the first opset without it (0: still defined at 21)   */
    boundary b[MAX_B];
} history;

/* Ops that another replaced: at opset `v` the older op is removed and the
   newer one introduced. The rename itself is the newer op's boundary at v
   (up: from the older op, down: back to it), which no conversion within the
   newer op's own range crosses. */
static const struct {
    const char *older, *newer;
} renames[] = { { "Upsample", "Resize" } };

/* ------------------------------------------------------------ helpers */

static ot_node *N(cx *c, int32_t n) { return &c->g->nodes[n]; }

static ot_status refuse(cx *c, int32_t n, int v, const char *why, ot_err *err)
{
    return cv_node_err(err, OT_ERR_UNSUPPORTED, c->g, N(c, n), "cannot convert from opset %d to "
                       "%d: %s (the op changed at opset %d)", c->from, c->to, why, v);
}

static int32_t in_at(cx *c, int32_t n, int i)
{
    return i < N(c, n)->n_in ? N(c, n)->in[i] : -1;
}

static int rank_of(cx *c, int32_t v)
{
    if (v < 0)
        return -1;
    int r = c->g->values[v].ndim;
    return r >= 0 && r <= OT_MAX_DIMS ? r : -1;
}

/* The elements of a constant int32/int64 vector (or scalar); false when the
   value is not a constant integer tensor of at most `max` elements. */
static bool const_ints(cx *c, int32_t v, int64_t *out, int max, int *n)
{
    const ot_tensor *t = v >= 0 ? ot_graph_const(c->g, v) : NULL;
    if (!t || (t->dtype != OT_DTYPE_INT64 && t->dtype != OT_DTYPE_INT32) || t->ndim > 1)
        return false;
    size_t es = t->dtype == OT_DTYPE_INT64 ? 8 : 4;
    size_t cnt = t->bytes / es;
    if (cnt > (size_t)max)
        return false;
    for (size_t i = 0; i < cnt; i++) {
        if (es == 8) {
            memcpy(&out[i], (const char *)t->data + 8 * i, 8);
        } else {
            int32_t x;
            memcpy(&x, (const char *)t->data + 4 * i, 4);
            out[i] = x;
        }
    }
    *n = (int)cnt;
    return true;
}

/* The value of a constant float/double/float16 scalar (or one-element
   tensor); false otherwise. */
static bool const_real(cx *c, int32_t v, double *out)
{
    const ot_tensor *t = v >= 0 ? ot_graph_const(c->g, v) : NULL;
    if (!t || !t->data)
        return false;
    switch (t->dtype) {
    case OT_DTYPE_FLOAT: {
        float f;
        if (t->bytes != 4)
            return false;
        memcpy(&f, t->data, 4);
        *out = f;
        return true;
    }
    case OT_DTYPE_DOUBLE:
        if (t->bytes != 8)
            return false;
        memcpy(out, t->data, 8);
        return true;
    case OT_DTYPE_FLOAT16: {
        uint16_t h;
        if (t->bytes != 2)
            return false;
        memcpy(&h, t->data, 2);
        *out = ot_f16_to_f32(h);
        return true;
    }
    default:
        return false;
    }
}

/* Replaces input i (appending omitted ones as -1 up to it). */
static ot_status set_input(cx *c, int32_t n, int i, int32_t v, ot_err *err)
{
    const ot_node *nd = N(c, n);
    int cnt = nd->n_in > i ? nd->n_in : i + 1;
    int32_t in[16];
    if (cnt > 16)
        return cv_node_err(err, OT_ERR_UNSUPPORTED, c->g, nd, "too many inputs");
    for (int k = 0; k < cnt; k++)
        in[k] = k < nd->n_in ? nd->in[k] : -1;
    in[i] = v;
    /* trailing omitted inputs are dropped */
    while (cnt > 0 && in[cnt - 1] < 0)
        cnt--;
    return cv_set_inputs(c->g, n, in, cnt, err);
}

/* Keeps the first k inputs. */
static ot_status keep_inputs(cx *c, int32_t n, int k, ot_err *err)
{
    const ot_node *nd = N(c, n);
    int32_t in[16];
    if (k > nd->n_in)
        k = nd->n_in;
    for (int i = 0; i < k && i < 16; i++)
        in[i] = nd->in[i];
    while (k > 0 && in[k - 1] < 0)
        k--;
    return cv_set_inputs(c->g, n, in, k, err);
}

static bool output_used(cx *c, int32_t v)
{
    if (v < 0)
        return false;
    if (cv_is_output(c->g, v))
        return true;
    for (int32_t i = 0; i < c->g->n_nodes; i++)
        for (int k = 0; k < c->g->nodes[i].n_in; k++)
            if (c->g->nodes[i].in[k] == v)
                return true;
    return false;
}

/* Keeps the first k outputs; refuses when a dropped one is read. */
static ot_status keep_outputs(cx *c, int32_t n, int k, int v, const char *what, ot_err *err)
{
    const ot_node *nd = N(c, n);
    if (nd->n_out <= k)
        return OT_OK;
    for (int i = k; i < nd->n_out; i++)
        if (output_used(c, nd->out[i]))
            return refuse(c, n, v, what, err);
    int32_t out[16];
    for (int i = 0; i < k && i < 16; i++)
        out[i] = nd->out[i];
    return cv_set_outputs(c->g, n, out, k, err);
}

static const char *node_base(cx *c, int32_t n, const char *suffix, char *buf, size_t size)
{
    const ot_node *nd = N(c, n);
    const char *base = nd->name && *nd->name ? nd->name : nd->op_type;
    snprintf(buf, size, "%s_%s", base, suffix);
    return buf;
}

/* Normalises a negative axis attribute against rank r (attribute `name`,
   INT or INTS). */
static ot_status fix_neg_axes(cx *c, int32_t n, const char *name, int r, int v, ot_err *err)
{
    const ot_attr *a = ot_node_find_attr(N(c, n), name);
    if (!a)
        return OT_OK;
    if (a->type == OT_ATTR_INT) {
        if (a->i >= 0)
            return OT_OK;
        if (r < 0)
            return refuse(c, n, v, "a negative axis needs the input's rank, which is unknown",
                          err);
        return cv_set_attr_int(c->g, n, name, a->i + r, err);
    }
    if (a->type != OT_ATTR_INTS)
        return OT_OK;
    bool neg = false;
    for (size_t i = 0; i < a->n; i++)
        neg = neg || a->ints[i] < 0;
    if (!neg)
        return OT_OK;
    if (r < 0)
        return refuse(c, n, v, "negative axes need the input's rank, which is unknown", err);
    int64_t ax[OT_MAX_DIMS * 2];
    if (a->n > sizeof ax / sizeof ax[0])
        return refuse(c, n, v, "too many axes", err);
    size_t cnt = a->n;
    for (size_t i = 0; i < cnt; i++)
        ax[i] = a->ints[i] < 0 ? a->ints[i] + r : a->ints[i];
    return cv_set_attr_ints(c->g, n, name, ax, cnt, err);
}

/* An attribute that the later opset added: going down it must be absent
   or hold its default, and is then dropped. */
static ot_status drop_new_int_attr(cx *c, int32_t n, const char *name, int64_t def, int v,
                                   ot_err *err)
{
    const ot_attr *a = ot_node_find_attr(N(c, n), name);
    if (!a)
        return OT_OK;
    if (a->type != OT_ATTR_INT || a->i != def) {
        char why[128];
        snprintf(why, sizeof why, "attribute %s other than %lld does not exist before opset %d",
                 name, (long long)def, v);
        return refuse(c, n, v, why, err);
    }
    cv_del_attr(c->g, n, name);
    return OT_OK;
}

/* ---------------------------------------------------------- adapters */

/* Negative axes became legal at 11 for many ops; going down they are made
   positive from the input's rank. */
static ot_status axis_down_11(cx *c, int32_t n, ot_err *err)
{
    return fix_neg_axes(c, n, "axis", rank_of(c, in_at(c, n, 0)), 11, err);
}

static ot_status axes_down_11(cx *c, int32_t n, ot_err *err)
{
    int r = rank_of(c, in_at(c, n, 0));
    if (N(c, n)->op_type && strcmp(N(c, n)->op_type, "Unsqueeze") == 0) {
        size_t na = 0;
        ot_node_attr_ints(N(c, n), "axes", &na);
        r = r >= 0 ? r + (int)na : -1; /* Unsqueeze's axes index the output */
    }
    return fix_neg_axes(c, n, "axes", r, 11, err);
}

/* A list attribute `name` (before the boundary) <-> the int64 input at
   `index` (from it): Squeeze/Unsqueeze/ReduceX axes, Split's split, Slice's
   starts/ends/axes. */
static ot_status ints_attr_to_input(cx *c, int32_t n, const char *name, int index, ot_err *err)
{
    size_t cnt = 0;
    const int64_t *v = ot_node_attr_ints(N(c, n), name, &cnt);
    if (!v)
        return OT_OK;
    char base[256];
    int32_t id;
    ot_status st = cv_add_i64(c->g, node_base(c, n, name, base, sizeof base), v, (int)cnt, &id,
                              err);
    if (st == OT_OK)
        st = set_input(c, n, index, id, err);
    if (st == OT_OK)
        cv_del_attr(c->g, n, name);
    return st;
}

/* The constant int64 input at `index` back into attribute `name` (an empty
   list leaves no attribute); refused when the input is computed. The caller
   drops the inputs. */
static ot_status input_to_ints_attr(cx *c, int32_t n, int index, const char *name, int v,
                                    ot_err *err)
{
    int32_t a = in_at(c, n, index);
    if (a < 0)
        return OT_OK;
    int64_t vals[64];
    int cnt;
    if (!const_ints(c, a, vals, 64, &cnt)) {
        char why[160];
        snprintf(why, sizeof why, "its %s input is computed at run time, and older opsets take "
                 "%s as an attribute", name, name);
        return refuse(c, n, v, why, err);
    }
    return cnt > 0 ? cv_set_attr_ints(c->g, n, name, vals, (size_t)cnt, err) : OT_OK;
}

static ot_status axes_attr_to_input(cx *c, int32_t n, int v, ot_err *err)
{
    (void)v;
    return ints_attr_to_input(c, n, "axes", 1, err);
}

static ot_status axes_input_to_attr(cx *c, int32_t n, int v, ot_err *err)
{
    ot_status st = input_to_ints_attr(c, n, 1, "axes", v, err);
    return st == OT_OK ? keep_inputs(c, n, 1, err) : st;
}

static ot_status axes_up_13(cx *c, int32_t n, ot_err *err) { return axes_attr_to_input(c, n, 13, err); }
static ot_status axes_down_13(cx *c, int32_t n, ot_err *err) { return axes_input_to_attr(c, n, 13, err); }
static ot_status reduce_down_18(cx *c, int32_t n, ot_err *err)
{
    int64_t noop = ot_node_attr_int(N(c, n), "noop_with_empty_axes", 0);
    if (noop && in_at(c, n, 1) < 0)
        return refuse(c, n, 18, "noop_with_empty_axes=1 without axes does not exist before "
                      "opset 18", err);
    cv_del_attr(c->g, n, "noop_with_empty_axes");
    return axes_input_to_attr(c, n, 18, err);
}
static ot_status reduce_up_18(cx *c, int32_t n, ot_err *err) { return axes_attr_to_input(c, n, 18, err); }
static ot_status reducesum_down_13(cx *c, int32_t n, ot_err *err)
{
    int64_t noop = ot_node_attr_int(N(c, n), "noop_with_empty_axes", 0);
    if (noop && in_at(c, n, 1) < 0)
        return refuse(c, n, 13, "noop_with_empty_axes=1 without axes does not exist before "
                      "opset 13", err);
    cv_del_attr(c->g, n, "noop_with_empty_axes");
    return axes_input_to_attr(c, n, 13, err);
}

/* Clip: min/max attributes (before 11) <-> optional scalar inputs. */
static ot_status clip_up_11(cx *c, int32_t n, ot_err *err)
{
    ot_status st = OT_OK;
    int32_t x = in_at(c, n, 0);
    ot_dtype dt = x >= 0 ? c->g->values[x].dtype : OT_DTYPE_UNDEFINED;
    const char *names[2] = { "min", "max" };
    for (int k = 0; k < 2 && st == OT_OK; k++) {
        const ot_attr *a = ot_node_find_attr(N(c, n), names[k]);
        if (!a)
            continue;
        if (dt != OT_DTYPE_FLOAT && dt != OT_DTYPE_DOUBLE && dt != OT_DTYPE_FLOAT16)
            return refuse(c, n, 11, "the input's type is not known to be floating-point", err);
        char base[256];
        int32_t id;
        double val = (double)a->f;
        st = cv_add_scalar(c->g, node_base(c, n, names[k], base, sizeof base), dt, val, &id,
                           err);
        if (st == OT_OK)
            st = set_input(c, n, 1 + k, id, err);
        if (st == OT_OK)
            cv_del_attr(c->g, n, names[k]);
    }
    return st;
}

static ot_status clip_down_11(cx *c, int32_t n, ot_err *err)
{
    ot_status st = OT_OK;
    const char *names[2] = { "min", "max" };
    for (int k = 0; k < 2 && st == OT_OK; k++) {
        int32_t v = in_at(c, n, 1 + k);
        if (v < 0)
            continue;
        double val;
        if (!const_real(c, v, &val))
            return refuse(c, n, 11, "its min or max is not a constant floating-point scalar, "
                          "and older opsets take them as attributes", err);
        st = cv_set_attr_float(c->g, n, names[k], (float)val, err);
    }
    if (st == OT_OK)
        st = keep_inputs(c, n, 1, err);
    return st;
}

/* Dropout: ratio attribute (before 12) <-> ratio and training_mode inputs. */
static ot_status dropout_up_12(cx *c, int32_t n, ot_err *err)
{
    const ot_attr *a = ot_node_find_attr(N(c, n), "ratio");
    ot_status st = keep_outputs(c, n, 1, 12, "its mask output is read, whose value in inference "
                                "differs before opset 12", err);
    if (st != OT_OK)
        return st;
    if (a) {
        char base[256];
        int32_t id;
        st = cv_add_scalar(c->g, node_base(c, n, "ratio", base, sizeof base), OT_DTYPE_FLOAT,
                           (double)a->f, &id, err);
        if (st == OT_OK)
            st = set_input(c, n, 1, id, err);
        if (st == OT_OK)
            cv_del_attr(c->g, n, "ratio");
    }
    return st;
}

static ot_status dropout_down_12(cx *c, int32_t n, ot_err *err)
{
    cv_del_attr(c->g, n, "seed"); /* from 12; no effect in inference */
    ot_status mst = keep_outputs(c, n, 1, 12, "its mask output is read, whose value in "
                                 "inference differs before opset 12", err);
    if (mst != OT_OK)
        return mst;
    int32_t tm = in_at(c, n, 2);
    if (tm >= 0) {
        const ot_tensor *t = ot_graph_const(c->g, tm);
        if (!t || t->bytes < 1 || ((const uint8_t *)t->data)[0] != 0)
            return refuse(c, n, 12, "training_mode is true or computed, and older opsets have "
                          "no training mode", err);
    }
    ot_status st = OT_OK;
    int32_t r = in_at(c, n, 1);
    if (r >= 0) {
        double val;
        if (!const_real(c, r, &val))
            return refuse(c, n, 12, "its ratio is not a constant, and older opsets take it as "
                          "an attribute", err);
        st = cv_set_attr_float(c->g, n, "ratio", (float)val, err);
    }
    if (st == OT_OK)
        st = keep_inputs(c, n, 1, err);
    return st;
}

/* Dropout's mask became bool at 10 (the input's type before). */
static ot_status dropout_mask_10(cx *c, int32_t n, ot_err *err)
{
    return keep_outputs(c, n, 1, 10, "its mask output is read, and its type changed (bool from "
                        "opset 10)", err);
}

/* BatchNormalization: spatial went away at 9. */
static ot_status bn_up_9(cx *c, int32_t n, ot_err *err)
{
    const ot_attr *a = ot_node_find_attr(N(c, n), "spatial");
    if (!a)
        return OT_OK;
    if (a->type == OT_ATTR_INT && a->i == 0) {
        int32_t s = in_at(c, n, 1);
        if (rank_of(c, s) != 1)
            return refuse(c, n, 9, "spatial=0 with per-activation parameters has no form from "
                          "opset 9", err);
        ot_log(OT_LOG_INFO, "--opset: BatchNormalization spatial=0 with one parameter per "
               "channel is converted as spatial");
    }
    cv_del_attr(c->g, n, "spatial");
    return OT_OK;
}

/* BatchNormalization 14: training_mode; at most three outputs. */
static ot_status bn_up_14(cx *c, int32_t n, ot_err *err)
{
    return keep_outputs(c, n, 1, 14, "its training outputs (running or saved statistics) are "
                        "read", err);
}

static ot_status bn_down_14(cx *c, int32_t n, ot_err *err)
{
    if (ot_node_attr_int(N(c, n), "training_mode", 0) != 0)
        return refuse(c, n, 14, "training_mode=1 does not exist before opset 14", err);
    cv_del_attr(c->g, n, "training_mode");
    return keep_outputs(c, n, 1, 14, "its running statistics outputs are read", err);
}

/* MaxPool: Indices output and storage_order from 8; ceil_mode and dilations
   from 10. */
static ot_status maxpool_down_8(cx *c, int32_t n, ot_err *err)
{
    ot_status st = drop_new_int_attr(c, n, "storage_order", 0, 8, err);
    if (st == OT_OK)
        st = keep_outputs(c, n, 1, 8, "its Indices output is read (from opset 8)", err);
    return st;
}

static bool all_ones(const ot_node *nd, const char *name)
{
    size_t k = 0;
    const int64_t *d = ot_node_attr_ints(nd, name, &k);
    for (size_t i = 0; d && i < k; i++)
        if (d[i] != 1)
            return false;
    return true;
}

static ot_status pool_down_10(cx *c, int32_t n, ot_err *err)
{
    ot_status st = drop_new_int_attr(c, n, "ceil_mode", 0, 10, err);
    if (st != OT_OK)
        return st;
    if (N(c, n)->op_type[0] == 'M') { /* MaxPool's dilations came at 10 */
        if (!all_ones(N(c, n), "dilations"))
            return refuse(c, n, 10, "dilations other than 1 do not exist before opset 10", err);
        cv_del_attr(c->g, n, "dilations");
    }
    return OT_OK;
}

static ot_status avgpool_down_19(cx *c, int32_t n, ot_err *err)
{
    if (!all_ones(N(c, n), "dilations"))
        return refuse(c, n, 19, "dilations other than 1 do not exist before opset 19", err);
    cv_del_attr(c->g, n, "dilations");
    return OT_OK;
}

/* Reshape: allowzero from 14. */
static ot_status reshape_down_14(cx *c, int32_t n, ot_err *err)
{
    if (ot_node_attr_int(N(c, n), "allowzero", 0) != 0) {
        int64_t s[64];
        int ns;
        if (!const_ints(c, in_at(c, n, 1), s, 64, &ns))
            return refuse(c, n, 14, "allowzero=1 with a computed shape does not exist before "
                          "opset 14", err);
        for (int i = 0; i < ns; i++)
            if (s[i] == 0)
                return refuse(c, n, 14, "allowzero=1 with a 0 in the shape (an empty dim) "
                              "does not exist before opset 14", err);
    }
    cv_del_attr(c->g, n, "allowzero");
    return OT_OK;
}

/* Gemm: C optional from 11; before, a zero C. */
static ot_status gemm_down_11(cx *c, int32_t n, ot_err *err)
{
    if (in_at(c, n, 2) >= 0)
        return OT_OK;
    int32_t a = in_at(c, n, 0);
    ot_dtype dt = a >= 0 ? c->g->values[a].dtype : OT_DTYPE_UNDEFINED;
    if (dt != OT_DTYPE_FLOAT && dt != OT_DTYPE_DOUBLE && dt != OT_DTYPE_FLOAT16)
        return refuse(c, n, 11, "C is absent and A's type is not known to be floating-point",
                      err);
    char base[256];
    int32_t id;
    ot_status st = cv_add_scalar(c->g, node_base(c, n, "C", base, sizeof base), dt, 0.0, &id,
                                 err);
    if (st == OT_OK)
        st = set_input(c, n, 2, id, err);
    return st;
}

/* Sum, Min, Max, Mean: numpy broadcasting from 8. */
static ot_status bcast_down_8(cx *c, int32_t n, ot_err *err)
{
    const ot_node *nd = N(c, n);
    const ot_value *a = nd->n_in > 0 && nd->in[0] >= 0 ? &c->g->values[nd->in[0]] : NULL;
    for (int i = 1; a && i < nd->n_in; i++) {
        const ot_value *b = nd->in[i] >= 0 ? &c->g->values[nd->in[i]] : NULL;
        bool same = b && a->ndim >= 0 && a->ndim == b->ndim;
        for (int d = 0; same && d < a->ndim; d++)
            same = a->dims[d] >= 0 && a->dims[d] == b->dims[d];
        if (!same)
            return refuse(c, n, 8, "its inputs are not known to have the same shape, and "
                          "broadcasting needs opset 8", err);
    }
    return OT_OK;
}

/* Softmax / LogSoftmax at 13: before, the input is coerced to 2-D at `axis`
   (default 1) and normalised over all dims from axis on; from 13 over the
   one dim `axis` (default -1). */
static bool tail_is_ones(const ot_value *x, int a)
{
    for (int d = a + 1; d < x->ndim; d++)
        if (x->dims[d] != 1)
            return false;
    return true;
}

/* The normalised axis of a Softmax whose default is `def`; when both forms
   agree (the last axis, or only 1s after it) it is written explicitly and
   *same is set. */
static ot_status softmax_axis(cx *c, int32_t n, int64_t def, int32_t *x, int *r, int64_t *a,
                              bool *same, ot_err *err)
{
    *x = in_at(c, n, 0);
    *r = rank_of(c, *x);
    *same = false;
    if (*r < 0)
        return refuse(c, n, 13, "the meaning of axis changed and the input's rank is unknown",
                      err);
    *a = ot_node_attr_int(N(c, n), "axis", def);
    if (*a < 0)
        *a += *r;
    if (*a < 0 || *a >= *r)
        return refuse(c, n, 13, "axis is out of range", err);
    *same = *a == *r - 1 || tail_is_ones(&c->g->values[*x], (int)*a);
    return *same ? cv_set_attr_int(c->g, n, "axis", *a, err) : OT_OK;
}

static ot_status softmax_up_13(cx *c, int32_t n, ot_err *err)
{
    int32_t x;
    int r;
    int64_t a;
    bool same;
    ot_status st = softmax_axis(c, n, 1, &x, &r, &a, &same, err);
    if (st != OT_OK || same)
        return st;
    /* Flatten(axis=a) -> Softmax(axis=1) -> Reshape(Shape(x)) */
    char base[256];
    int32_t flat, shape, y = N(c, n)->out[0], y2, id;
    OT_TRY(cv_new_value(c->g, node_base(c, n, "flat", base, sizeof base), &flat, err));
    OT_TRY(cv_new_value(c->g, node_base(c, n, "shape", base, sizeof base), &shape, err));
    OT_TRY(cv_new_value(c->g, node_base(c, n, "2d", base, sizeof base), &y2, err));
    OT_TRY(cv_add_node(c->g, "Flatten", node_base(c, n, "flatten", base, sizeof base), &x, 1,
                       &flat, 1, &id, err));
    OT_TRY(cv_set_attr_int(c->g, id, "axis", a, err));
    OT_TRY(cv_add_node(c->g, "Shape", node_base(c, n, "shape", base, sizeof base), &x, 1, &shape,
                       1, &id, err));
    int32_t rin[2] = { y2, shape };
    OT_TRY(cv_add_node(c->g, "Reshape", node_base(c, n, "reshape", base, sizeof base), rin, 2,
                       &y, 1, &id, err));
    OT_TRY(cv_set_inputs(c->g, n, &flat, 1, err));
    OT_TRY(cv_set_outputs(c->g, n, &y2, 1, err));
    OT_TRY(cv_set_attr_int(c->g, n, "axis", 1, err));
done:
    return st;
}

static ot_status softmax_down_13(cx *c, int32_t n, ot_err *err)
{
    int32_t x;
    int r;
    int64_t a;
    bool same;
    ot_status st = softmax_axis(c, n, -1, &x, &r, &a, &same, err);
    if (st != OT_OK || same)
        return st;
    /* Transpose axis a to the end, normalise over it, transpose back */
    int64_t perm[OT_MAX_DIMS], inv[OT_MAX_DIMS];
    int k = 0;
    for (int d = 0; d < r; d++)
        if (d != a)
            perm[k++] = d;
    perm[k] = a;
    for (int d = 0; d < r; d++)
        inv[perm[d]] = d;
    char base[256];
    int32_t xt, yt, y = N(c, n)->out[0], id;
    OT_TRY(cv_new_value(c->g, node_base(c, n, "in_t", base, sizeof base), &xt, err));
    OT_TRY(cv_new_value(c->g, node_base(c, n, "out_t", base, sizeof base), &yt, err));
    OT_TRY(cv_add_node(c->g, "Transpose", node_base(c, n, "to_last", base, sizeof base), &x, 1,
                       &xt, 1, &id, err));
    OT_TRY(cv_set_attr_ints(c->g, id, "perm", perm, (size_t)r, err));
    OT_TRY(cv_add_node(c->g, "Transpose", node_base(c, n, "back", base, sizeof base), &yt, 1, &y,
                       1, &id, err));
    OT_TRY(cv_set_attr_ints(c->g, id, "perm", inv, (size_t)r, err));
    OT_TRY(cv_set_inputs(c->g, n, &xt, 1, err));
    OT_TRY(cv_set_outputs(c->g, n, &yt, 1, err));
    OT_TRY(cv_set_attr_int(c->g, n, "axis", r - 1, err));
done:
    return st;
}

/* Pad: pads and value attributes (before 11) <-> inputs. */
static ot_status pad_up_11(cx *c, int32_t n, ot_err *err)
{
    ot_status st = OT_OK;
    size_t np = 0;
    const int64_t *pads = ot_node_attr_ints(N(c, n), "pads", &np);
    if (!pads)
        return refuse(c, n, 11, "it has no pads attribute", err);
    char base[256];
    int32_t pid, vid = -1;
    OT_TRY(cv_add_i64(c->g, node_base(c, n, "pads", base, sizeof base), pads, (int)np, &pid,
                      err));
    const ot_attr *va = ot_node_find_attr(N(c, n), "value");
    if (va && va->f != 0.0f) {
        int32_t x = in_at(c, n, 0);
        ot_dtype dt = x >= 0 ? c->g->values[x].dtype : OT_DTYPE_UNDEFINED;
        if (dt != OT_DTYPE_FLOAT && dt != OT_DTYPE_DOUBLE && dt != OT_DTYPE_FLOAT16)
            return refuse(c, n, 11, "the input's type is not known to be floating-point", err);
        OT_TRY(cv_add_scalar(c->g, node_base(c, n, "value", base, sizeof base), dt,
                             (double)va->f, &vid, err));
    }
    OT_TRY(set_input(c, n, 1, pid, err));
    if (vid >= 0)
        OT_TRY(set_input(c, n, 2, vid, err));
    cv_del_attr(c->g, n, "pads");
    cv_del_attr(c->g, n, "value");
done:
    return st;
}

static ot_status pad_down_11(cx *c, int32_t n, ot_err *err)
{
    ot_status st = OT_OK;
    int64_t pads[OT_MAX_DIMS * 2];
    int np;
    if (!const_ints(c, in_at(c, n, 1), pads, OT_MAX_DIMS * 2, &np))
        return refuse(c, n, 11, "its pads input is computed at run time, and older opsets take "
                      "pads as an attribute", err);
    double val = 0;
    if (in_at(c, n, 2) >= 0 && !const_real(c, in_at(c, n, 2), &val))
        return refuse(c, n, 11, "its constant_value is not a constant floating-point scalar",
                      err);
    OT_TRY(cv_set_attr_ints(c->g, n, "pads", pads, (size_t)np, err));
    if (val != 0.0)
        OT_TRY(cv_set_attr_float(c->g, n, "value", (float)val, err));
    OT_TRY(keep_inputs(c, n, 1, err));
done:
    return st;
}

static ot_status pad_down_18(cx *c, int32_t n, ot_err *err)
{
    int32_t ax = in_at(c, n, 3);
    if (ax < 0)
        return OT_OK;
    int64_t axes[OT_MAX_DIMS], pads[OT_MAX_DIMS * 2], full[OT_MAX_DIMS * 2] = { 0 };
    int na, np;
    int r = rank_of(c, in_at(c, n, 0));
    if (r < 0 || !const_ints(c, ax, axes, OT_MAX_DIMS, &na) ||
        !const_ints(c, in_at(c, n, 1), pads, OT_MAX_DIMS * 2, &np) || np != 2 * na)
        return refuse(c, n, 18, "its axes input needs constant pads and axes and a known rank",
                      err);
    for (int i = 0; i < na; i++) {
        int64_t a = axes[i] < 0 ? axes[i] + r : axes[i];
        if (a < 0 || a >= r)
            return refuse(c, n, 18, "an axis is out of range", err);
        full[a] = pads[i];
        full[a + r] = pads[i + na];
    }
    char base[256];
    int32_t pid;
    ot_status st = cv_add_i64(c->g, node_base(c, n, "pads", base, sizeof base), full, 2 * r,
                              &pid, err);
    if (st == OT_OK)
        st = set_input(c, n, 1, pid, err);
    if (st == OT_OK)
        st = keep_inputs(c, n, 3, err);
    return st;
}

static ot_status pad_down_19(cx *c, int32_t n, ot_err *err)
{
    const char *mode = ot_node_attr_string(N(c, n), "mode", "constant");
    if (strcmp(mode, "wrap") == 0)
        return refuse(c, n, 19, "mode 'wrap' does not exist before opset 19", err);
    return OT_OK;
}

/* Shape: start and end from 15. */
static ot_status shape_down_15(cx *c, int32_t n, ot_err *err)
{
    const ot_attr *s = ot_node_find_attr(N(c, n), "start");
    const ot_attr *e = ot_node_find_attr(N(c, n), "end");
    if ((s && s->i != 0) || e)
        return refuse(c, n, 15, "start and end do not exist before opset 15", err);
    cv_del_attr(c->g, n, "start");
    return OT_OK;
}

/* Split at 13: split attribute <-> input. */
static ot_status split_up_13(cx *c, int32_t n, ot_err *err)
{
    return ints_attr_to_input(c, n, "split", 1, err);
}

static ot_status split_down_13(cx *c, int32_t n, ot_err *err)
{
    ot_status st = input_to_ints_attr(c, n, 1, "split", 13, err);
    return st == OT_OK ? keep_inputs(c, n, 1, err) : st;
}

static ot_status split_down_18(cx *c, int32_t n, ot_err *err)
{
    const ot_attr *a = ot_node_find_attr(N(c, n), "num_outputs");
    if (!a)
        return OT_OK;
    int32_t x = in_at(c, n, 0);
    int r = rank_of(c, x);
    int64_t axis = ot_node_attr_int(N(c, n), "axis", 0);
    if (axis < 0)
        axis += r;
    if (r < 0 || axis < 0 || axis >= r || c->g->values[x].dims[axis] < 0 || a->i <= 0 ||
        c->g->values[x].dims[axis] % a->i != 0)
        return refuse(c, n, 18, "num_outputs with a split dim that is unknown or not divisible "
                      "has no older form", err);
    cv_del_attr(c->g, n, "num_outputs");
    return OT_OK;
}

/* Split at 18: without a split input, num_outputs is required. */
static ot_status split_up_18(cx *c, int32_t n, ot_err *err)
{
    if (in_at(c, n, 1) >= 0 || ot_node_find_attr(N(c, n), "num_outputs"))
        return OT_OK;
    return cv_set_attr_int(c->g, n, "num_outputs", N(c, n)->n_out, err);
}

/* Pow before 12: base and exponent of the same floating-point type. */
static ot_status pow_down_12(cx *c, int32_t n, ot_err *err)
{
    int32_t a = in_at(c, n, 0), b = in_at(c, n, 1);
    if (a >= 0 && b >= 0 && c->g->values[a].dtype != c->g->values[b].dtype)
        return refuse(c, n, 12, "base and exponent of different types need opset 12", err);
    return OT_OK;
}

/* Slice: starts/ends/axes attributes (before 10) <-> inputs with steps. */
static ot_status slice_up_10(cx *c, int32_t n, ot_err *err)
{
    ot_status st = ints_attr_to_input(c, n, "starts", 1, err);
    if (st == OT_OK)
        st = ints_attr_to_input(c, n, "ends", 2, err);
    if (st == OT_OK)
        st = ints_attr_to_input(c, n, "axes", 3, err);
    return st;
}

static ot_status slice_down_10(cx *c, int32_t n, ot_err *err)
{
    int64_t steps[OT_MAX_DIMS];
    int nsteps;
    if (in_at(c, n, 4) >= 0) {
        if (!const_ints(c, in_at(c, n, 4), steps, OT_MAX_DIMS, &nsteps))
            return refuse(c, n, 10, "its steps input is computed", err);
        for (int i = 0; i < nsteps; i++)
            if (steps[i] != 1)
                return refuse(c, n, 10, "steps other than 1 do not exist before opset 10", err);
    }
    ot_status st = input_to_ints_attr(c, n, 1, "starts", 10, err);
    if (st == OT_OK)
        st = input_to_ints_attr(c, n, 2, "ends", 10, err);
    if (st == OT_OK)
        st = input_to_ints_attr(c, n, 3, "axes", 10, err);
    return st == OT_OK ? keep_inputs(c, n, 1, err) : st;
}

static ot_status slice_down_11(cx *c, int32_t n, ot_err *err)
{
    /* negative axes: normalise the constant input */
    int32_t v = in_at(c, n, 3);
    int64_t axes[OT_MAX_DIMS];
    int cnt;
    if (v < 0)
        return OT_OK;
    if (!const_ints(c, v, axes, OT_MAX_DIMS, &cnt))
        return refuse(c, n, 11, "its axes are computed and may be negative", err);
    bool neg = false;
    for (int i = 0; i < cnt; i++)
        neg = neg || axes[i] < 0;
    if (!neg)
        return OT_OK;
    int r = rank_of(c, in_at(c, n, 0));
    if (r < 0)
        return refuse(c, n, 11, "negative axes need the input's rank, which is unknown", err);
    for (int i = 0; i < cnt; i++)
        if (axes[i] < 0)
            axes[i] += r;
    char base[256];
    int32_t id;
    ot_status st = cv_add_i64(c->g, node_base(c, n, "axes", base, sizeof base), axes, cnt, &id,
                              err);
    if (st == OT_OK)
        st = set_input(c, n, 3, id, err);
    return st;
}

/* Constant: value_float(s)/value_int(s) from 12; sparse_value from 11. */
static ot_status constant_down_12(cx *c, int32_t n, ot_err *err)
{
    const ot_node *nd = N(c, n);
    const char *forms[] = { "value_float", "value_floats", "value_int", "value_ints" };
    for (int k = 0; k < 4; k++) {
        const ot_attr *a = ot_node_find_attr(nd, forms[k]);
        if (!a)
            continue;
        bool is_f = k < 2, list = k % 2 == 1;
        size_t cnt = list ? a->n : 1;
        size_t es = is_f ? 4 : 8;
        ot_tensor *t = ot_arena_alloc(&c->g->arena, sizeof *t);
        void *data = ot_arena_alloc(&c->g->arena, es * (cnt ? cnt : 1));
        if (!t || !data)
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
        memset(t, 0, sizeof *t);
        if (is_f)
            memcpy(data, list ? (const void *)a->floats : (const void *)&a->f, es * cnt);
        else
            memcpy(data, list ? (const void *)a->ints : (const void *)&a->i, es * cnt);
        t->dtype = is_f ? OT_DTYPE_FLOAT : OT_DTYPE_INT64;
        t->ndim = list ? 1 : 0;
        t->dims[0] = (int64_t)cnt;
        t->data = data;
        t->bytes = es * cnt;
        cv_del_attr(c->g, n, forms[k]);
        ot_attr *slot = NULL;
        /* add a TENSOR attribute "value" */
        ot_status st = cv_set_attr_int(c->g, n, "value", 0, err);
        if (st != OT_OK)
            return st;
        for (int i = 0; i < N(c, n)->n_attrs; i++)
            if (strcmp(N(c, n)->attrs[i].name, "value") == 0)
                slot = &N(c, n)->attrs[i];
        slot->type = OT_ATTR_TENSOR;
        slot->t = t;
        return OT_OK;
    }
    if (ot_node_find_attr(nd, "value_string") || ot_node_find_attr(nd, "value_strings"))
        return refuse(c, n, 12, "a string constant attribute does not exist before opset 12",
                      err);
    return OT_OK;
}

static ot_status constant_down_11(cx *c, int32_t n, ot_err *err)
{
    if (ot_node_find_attr(N(c, n), "sparse_value"))
        return refuse(c, n, 11, "sparse_value does not exist before opset 11", err);
    return OT_OK;
}

/* Cast: saturate from 19 (float8 only). */
static ot_status cast_down_19(cx *c, int32_t n, ot_err *err)
{
    cv_del_attr(c->g, n, "saturate");
    (void)err;
    return OT_OK;
}

/* Flatten at 9 allowed other types; negative axis from 11. */

/* ArgMax/ArgMin: select_last_index from 12. */
static ot_status arg_down_12(cx *c, int32_t n, ot_err *err)
{
    return drop_new_int_attr(c, n, "select_last_index", 0, 12, err);
}

/* GatherND: batch_dims from 12. */
static ot_status gathernd_down_12(cx *c, int32_t n, ot_err *err)
{
    return drop_new_int_attr(c, n, "batch_dims", 0, 12, err);
}

/* DepthToSpace: mode from 11 (DCR before). */
static ot_status d2s_down_11(cx *c, int32_t n, ot_err *err)
{
    const char *mode = ot_node_attr_string(N(c, n), "mode", "DCR");
    if (strcmp(mode, "DCR") != 0)
        return refuse(c, n, 11, "mode CRD does not exist before opset 11", err);
    cv_del_attr(c->g, n, "mode");
    return OT_OK;
}

/* QuantizeLinear/DequantizeLinear: per-axis scales from 13. */
static ot_status qdq_down_13(cx *c, int32_t n, ot_err *err)
{
    int32_t s = in_at(c, n, 1);
    if (s >= 0 && rank_of(c, s) != 0 && !(rank_of(c, s) == 1 && c->g->values[s].dims[0] == 1))
        return refuse(c, n, 13, "per-axis (per-channel) scales need opset 13", err);
    cv_del_attr(c->g, n, "axis");
    return OT_OK;
}

static ot_status qdq_down_19(cx *c, int32_t n, ot_err *err)
{
    return drop_new_int_attr(c, n, "saturate", 1, 19, err);
}

static ot_status qdq_down_21(cx *c, int32_t n, ot_err *err)
{
    ot_status st = drop_new_int_attr(c, n, "block_size", 0, 21, err);
    if (st == OT_OK)
        st = drop_new_int_attr(c, n, "output_dtype", 0, 21, err);
    return st;
}

/* ScatterND: reduction from 16. */
static ot_status scatternd_down_16(cx *c, int32_t n, ot_err *err)
{
    const char *r = ot_node_attr_string(N(c, n), "reduction", "none");
    if (strcmp(r, "none") != 0)
        return refuse(c, n, 16, "a reduction does not exist before opset 16", err);
    cv_del_attr(c->g, n, "reduction");
    return OT_OK;
}

/* TopK: k as an input from 10. */
static ot_status topk_up_10(cx *c, int32_t n, ot_err *err)
{
    int64_t k = ot_node_attr_int(N(c, n), "k", -1);
    char base[256];
    int32_t id;
    ot_status st = cv_add_i64(c->g, node_base(c, n, "k", base, sizeof base), &k, 1, &id, err);
    if (st == OT_OK)
        st = set_input(c, n, 1, id, err);
    if (st == OT_OK)
        cv_del_attr(c->g, n, "k");
    return st;
}

static ot_status topk_down_10(cx *c, int32_t n, ot_err *err)
{
    int64_t k[1];
    int cnt;
    if (!const_ints(c, in_at(c, n, 1), k, 1, &cnt) || cnt != 1)
        return refuse(c, n, 10, "k is computed at run time, and older opsets take it as an "
                      "attribute", err);
    ot_status st = cv_set_attr_int(c->g, n, "k", k[0], err);
    if (st == OT_OK)
        st = keep_inputs(c, n, 1, err);
    return st;
}

static ot_status topk_down_11(cx *c, int32_t n, ot_err *err)
{
    if (ot_node_attr_int(N(c, n), "largest", 1) != 1 || ot_node_attr_int(N(c, n), "sorted", 1) != 1)
        return refuse(c, n, 11, "largest=0 or sorted=0 do not exist before opset 11", err);
    cv_del_attr(c->g, n, "largest");
    cv_del_attr(c->g, n, "sorted");
    return axis_down_11(c, n, err);
}

/* Resize and Upsample. Upsample (7, scales attribute; 9, scales input) is
   removed at 10, where Resize takes its place with the same meaning
   (onnxruntime runs both through one kernel: asymmetric coordinates, and for
   nearest the floor of x / scale when upsampling, its ceiling when
   downsampling). Resize 11 adds the roi input and the coordinate and
   rounding attributes; 13 makes roi and scales optional; 18 adds antialias,
   axes and keep_aspect_ratio_policy; 19 the half_pixel_symmetric mode. */

/* Returns a failing status at once. */
#define RET(expr)                                                                               \
    do {                                                                                        \
        ot_status rs_ = (expr);                                                                 \
        if (rs_ != OT_OK)                                                                       \
            return rs_;                                                                         \
    } while (0)

/* A float32 initializer holding v[0..n) (1-D; n may be 0). */
static ot_status add_f32(cx *c, int32_t n, const char *suffix, const float *v, int cnt,
                         int32_t *id, ot_err *err)
{
    char base[256];
    size_t bytes = sizeof(float) * (size_t)cnt;
    float *d = ot_malloc(bytes ? bytes : 1);
    if (!d)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    if (cnt)
        memcpy(d, v, bytes);
    int64_t dim = cnt;
    return cv_add_init(c->g, node_base(c, n, suffix, base, sizeof base), OT_DTYPE_FLOAT, 1, &dim,
                       d, bytes, id, err);
}

/* The elements of a constant float tensor of at most `max` elements (any
   shape); false otherwise. */
static bool const_floats(cx *c, int32_t v, float *out, int max, int *cnt)
{
    const ot_tensor *t = v >= 0 ? ot_graph_const(c->g, v) : NULL;
    if (!t || t->dtype != OT_DTYPE_FLOAT || t->bytes / 4 > (size_t)max)
        return false;
    *cnt = (int)(t->bytes / 4);
    if (*cnt)
        memcpy(out, t->data, t->bytes);
    return true;
}

static ot_status upsample_up_9(cx *c, int32_t n, ot_err *err)
{
    const ot_attr *a = ot_node_find_attr(N(c, n), "scales");
    if (!a || a->type != OT_ATTR_FLOATS)
        return refuse(c, n, 9, "it has no scales attribute", err);
    int32_t id;
    ot_status st = add_f32(c, n, "scales", a->floats, (int)a->n, &id, err);
    if (st == OT_OK)
        st = set_input(c, n, 1, id, err);
    if (st == OT_OK)
        cv_del_attr(c->g, n, "scales");
    return st;
}

static ot_status upsample_down_9(cx *c, int32_t n, ot_err *err)
{
    float sc[OT_MAX_DIMS];
    int cnt;
    if (!const_floats(c, in_at(c, n, 1), sc, OT_MAX_DIMS, &cnt) || cnt == 0)
        return refuse(c, n, 9, "its scales input is not a constant, and older opsets take "
                      "scales as an attribute", err);
    ot_status st = cv_set_attr_floats(c->g, n, "scales", sc, (size_t)cnt, err);
    return st == OT_OK ? keep_inputs(c, n, 1, err) : st;
}

/* Upsample 9 <-> Resize 10: the same inputs, attributes and meaning. */
static ot_status upsample_to_resize(cx *c, int32_t n, ot_err *err)
{
    (void)err;
    N(c, n)->op_type = "Resize";
    N(c, n)->flags |= OT_NODE_DIRTY;
    return OT_OK;
}

static ot_status resize_to_upsample(cx *c, int32_t n, ot_err *err)
{
    (void)err;
    N(c, n)->op_type = "Upsample";
    N(c, n)->flags |= OT_NODE_DIRTY;
    return OT_OK;
}

/* Resize 10 -> 11: an empty roi, asymmetric coordinates, and the rounding
   of nearest made explicit (floor upsampling, ceil downsampling). */
static ot_status resize_up_11(cx *c, int32_t n, ot_err *err)
{
    const char *mode = ot_node_attr_string(N(c, n), "mode", "nearest");
    const char *nearest = NULL;
    if (strcmp(mode, "nearest") == 0) {
        float sc[OT_MAX_DIMS];
        int cnt;
        if (!const_floats(c, in_at(c, n, 1), sc, OT_MAX_DIMS, &cnt))
            return refuse(c, n, 11, "nearest with computed scales rounds down when upsampling "
                          "and up when downsampling, which opset 11 cannot say without the "
                          "scales", err);
        bool up = false, down = false;
        for (int i = 0; i < cnt; i++) {
            up = up || sc[i] > 1.0f;
            down = down || sc[i] < 1.0f;
        }
        if (up && down)
            return refuse(c, n, 11, "nearest that upsamples some dims and downsamples others "
                          "rounds differently per dim, which opset 11 cannot say", err);
        nearest = down ? "ceil" : "floor";
    }
    int32_t x = in_at(c, n, 0), scales = in_at(c, n, 1), roi;
    ot_status st = add_f32(c, n, "roi", NULL, 0, &roi, err);
    int32_t in[3] = { x, roi, scales };
    if (st == OT_OK)
        st = cv_set_inputs(c->g, n, in, 3, err);
    if (st == OT_OK)
        st = cv_set_attr_string(c->g, n, "coordinate_transformation_mode", "asymmetric", err);
    if (st == OT_OK && nearest)
        st = cv_set_attr_string(c->g, n, "nearest_mode", nearest, err);
    return st;
}

/* Resize 11 -> 10: only the forms opset 10 computes: asymmetric linear;
   nearest that rounds as Resize 10 does, or integer upsampling whose
   rounding never meets a tie (half_pixel with round_prefer_*), or scale 1;
   constant scales, or constant sizes of a static input. */
static ot_status resize_down_11(cx *c, int32_t n, ot_err *err)
{
    const ot_node *nd = N(c, n);
    const char *mode = ot_node_attr_string(nd, "mode", "nearest");
    const char *ctm = ot_node_attr_string(nd, "coordinate_transformation_mode", "half_pixel");
    const char *nm = ot_node_attr_string(nd, "nearest_mode", "round_prefer_floor");
    if (strcmp(mode, "nearest") && strcmp(mode, "linear"))
        return refuse(c, n, 11, "mode 'cubic' does not exist before opset 11", err);
    int32_t x = in_at(c, n, 0);
    float sc[OT_MAX_DIMS];
    int cnt = 0;
    int32_t scales = in_at(c, n, 2);
    bool computed = false;
    if (!const_floats(c, scales, sc, OT_MAX_DIMS, &cnt))
        cnt = 0, computed = scales >= 0 && !ot_graph_const(c->g, scales);
    if (computed)
        return refuse(c, n, 11, "its scales are computed at run time, and opset 10 cannot "
                      "check their form", err);
    if (cnt == 0) { /* sizes: scales of a static input */
        int64_t sz[OT_MAX_DIMS];
        int ns;
        int r = rank_of(c, x);
        if (!const_ints(c, in_at(c, n, 3), sz, OT_MAX_DIMS, &ns) || r < 0 || ns != r)
            return refuse(c, n, 11, "it has neither constant scales nor constant sizes of an "
                          "input of known shape, and opset 10 takes scales", err);
        for (int i = 0; i < r; i++) {
            int64_t d = c->g->values[x].dims[i];
            if (d <= 0)
                return refuse(c, n, 11, "sizes need the input's static shape to become the "
                              "scales opset 10 takes", err);
            sc[i] = (float)sz[i] / (float)d;
            if ((int64_t)(sc[i] * (float)d) != sz[i] || (int64_t)((double)sc[i] * (double)d) != sz[i])
                return refuse(c, n, 11, "sizes that no float scale gives exactly", err);
        }
        cnt = r;
        int32_t id;
        RET(add_f32(c, n, "scales", sc, cnt, &id, err));
        scales = id;
    }
    bool asym = strcmp(ctm, "asymmetric") == 0;
    bool half = strcmp(ctm, "half_pixel") == 0 || strcmp(ctm, "pytorch_half_pixel") == 0;
    for (int i = 0; i < cnt; i++) {
        if (sc[i] == 1.0f)
            continue;
        bool ok;
        if (strcmp(mode, "linear") == 0)
            ok = asym;
        else if (asym)
            ok = (sc[i] > 1.0f && strcmp(nm, "floor") == 0) ||
                 (sc[i] < 1.0f && strcmp(nm, "ceil") == 0);
        else
            ok = half && sc[i] > 1.0f && sc[i] == (float)(int64_t)sc[i] &&
                 strncmp(nm, "round_prefer_", 13) == 0;
        if (!ok) {
            char why[200];
            snprintf(why, sizeof why, "mode '%s' with coordinate_transformation_mode '%s'%s%s "
                     "and scale %g computes something else in opset 10", mode, ctm,
                     strcmp(mode, "nearest") ? "" : " and nearest_mode ",
                     strcmp(mode, "nearest") ? "" : nm, (double)sc[i]);
            return refuse(c, n, 11, why, err);
        }
    }
    int32_t in[2] = { x, scales };
    RET(cv_set_inputs(c->g, n, in, 2, err));
    const char *gone[] = { "coordinate_transformation_mode", "nearest_mode", "cubic_coeff_a",
                           "exclude_outside", "extrapolation_value" };
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++)
        cv_del_attr(c->g, n, gone[i]);
    return OT_OK;
}

/* Resize 13 -> 11: roi and scales were required (empty when unused). */
static ot_status resize_down_13(cx *c, int32_t n, ot_err *err)
{
    for (int i = 1; i <= 2; i++) {
        if (in_at(c, n, i) >= 0)
            continue;
        int32_t id;
        RET(add_f32(c, n, i == 1 ? "roi" : "scales", NULL, 0, &id, err));
        RET(set_input(c, n, i, id, err));
    }
    return OT_OK;
}

/* Resize 18 -> 13: antialias and keep_aspect_ratio_policy only at their
   defaults; axes expanded to every dim. */
static ot_status resize_down_18(cx *c, int32_t n, ot_err *err)
{
    const ot_node *nd = N(c, n);
    if (ot_node_attr_int(nd, "antialias", 0) != 0)
        return refuse(c, n, 18, "antialias=1 does not exist before opset 18", err);
    if (strcmp(ot_node_attr_string(nd, "keep_aspect_ratio_policy", "stretch"), "stretch") &&
        in_at(c, n, 3) >= 0)
        return refuse(c, n, 18, "keep_aspect_ratio_policy other than 'stretch' does not exist "
                      "before opset 18", err);
    size_t na = 0;
    const int64_t *axes = ot_node_attr_ints(nd, "axes", &na);
    if (axes) {
        int32_t x = in_at(c, n, 0);
        int r = rank_of(c, x);
        if (r < 0)
            return refuse(c, n, 18, "axes need the input's rank, which is unknown", err);
        int64_t ax[OT_MAX_DIMS];
        if (na > (size_t)r)
            return refuse(c, n, 18, "more axes than dims", err);
        for (size_t i = 0; i < na; i++) {
            ax[i] = axes[i] < 0 ? axes[i] + r : axes[i];
            if (ax[i] < 0 || ax[i] >= r)
                return refuse(c, n, 18, "an axis is out of range", err);
        }
        float sc[OT_MAX_DIMS];
        int64_t sz[OT_MAX_DIMS];
        int cnt;
        int32_t id;
        if (in_at(c, n, 3) >= 0) {
            if (!const_ints(c, in_at(c, n, 3), sz, OT_MAX_DIMS, &cnt) || cnt != (int)na)
                return refuse(c, n, 18, "axes with computed sizes have no older form", err);
            int64_t full[OT_MAX_DIMS];
            for (int d = 0; d < r; d++) {
                full[d] = c->g->values[x].dims[d];
                if (full[d] < 0) {
                    bool listed = false;
                    for (size_t i = 0; i < na; i++)
                        listed = listed || ax[i] == d;
                    if (!listed)
                        return refuse(c, n, 18, "axes leave out a dim of unknown size, which "
                                      "older sizes must state", err);
                }
            }
            for (size_t i = 0; i < na; i++)
                full[ax[i]] = sz[i];
            char base[256];
            RET(cv_add_i64(c->g, node_base(c, n, "sizes", base, sizeof base), full, r,
                                  &id, err));
            RET(set_input(c, n, 3, id, err));
        } else {
            if (!const_floats(c, in_at(c, n, 2), sc, OT_MAX_DIMS, &cnt) || cnt != (int)na)
                return refuse(c, n, 18, "axes with computed scales have no older form", err);
            float full[OT_MAX_DIMS];
            for (int d = 0; d < r; d++)
                full[d] = 1.0f;
            for (size_t i = 0; i < na; i++)
                full[ax[i]] = sc[i];
            RET(add_f32(c, n, "scales", full, r, &id, err));
            RET(set_input(c, n, 2, id, err));
        }
    }
    cv_del_attr(c->g, n, "axes");
    cv_del_attr(c->g, n, "antialias");
    cv_del_attr(c->g, n, "keep_aspect_ratio_policy");
    return OT_OK;
}

static ot_status resize_down_19(cx *c, int32_t n, ot_err *err)
{
    if (strcmp(ot_node_attr_string(N(c, n), "coordinate_transformation_mode", "half_pixel"),
               "half_pixel_symmetric") == 0)
        return refuse(c, n, 19, "coordinate_transformation_mode 'half_pixel_symmetric' does "
                      "not exist before opset 19", err);
    return OT_OK;
}

/* GroupNormalization 21: scale and bias per channel; at 18 per group. Up,
   constant per-group values are repeated over their channels; down, the
   constant per-channel values must be equal within each group. */
static ot_status groupnorm_21(cx *c, int32_t n, bool up, ot_err *err)
{
    int64_t G = ot_node_attr_int(N(c, n), "num_groups", 0);
    int32_t x = in_at(c, n, 0);
    int64_t C = rank_of(c, x) >= 2 ? c->g->values[x].dims[1] : -1;
    if (G <= 0 || C <= 0 || C % G)
        return refuse(c, n, 21, "scale and bias changed from per group to per channel, which "
                      "needs num_groups and a known channel count", err);
    for (int k = 1; k <= 2; k++) {
        int32_t v = in_at(c, n, k);
        const float *f = cv_const_f32(c->g, v);
        int64_t have = f ? (int64_t)(c->g->values[v].data.bytes / 4) : -1;
        if (!f || have != (up ? G : C))
            return refuse(c, n, 21, "scale and bias changed from per group to per channel, and "
                          "they are not constants of the size the change needs", err);
        int64_t m = up ? C : G;
        float *d = ot_malloc(sizeof *d * (size_t)m);
        if (!d)
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; i < m; i++)
            d[i] = up ? f[i / (C / G)] : f[i * (C / G)];
        for (int64_t i = 0; !up && i < C; i++) {
            if (f[i] != d[i / (C / G)]) {
                ot_free(d);
                return refuse(c, n, 21, "its per-channel scale or bias differs within a group, "
                              "which the per-group form of opset 18 cannot hold", err);
            }
        }
        char base[256];
        int32_t id;
        RET(cv_add_init(c->g, node_base(c, n, k == 1 ? "scale" : "bias", base, sizeof base),
                        OT_DTYPE_FLOAT, 1, &m, d, sizeof *d * (size_t)m, &id, err));
        RET(set_input(c, n, k, id, err));
    }
    return OT_OK;
}

static ot_status groupnorm_up_21(cx *c, int32_t n, ot_err *err)
{
    return groupnorm_21(c, n, true, err);
}

static ot_status groupnorm_down_21(cx *c, int32_t n, ot_err *err)
{
    return groupnorm_21(c, n, false, err);
}

/* ------------------------------------------------------------ histories */

#define T TYPES_NEW
#define TI TYPES_INT
#define TF TYPES_FLOAT
#define AX axis_down_11
#define AXS axes_down_11

/* Every op of the default domain that the converter knows, with the
   boundaries within 7..21 where it changed. */
static const history histories[] = {
    { "Abs", 1, 0, { { 13, NULL, NULL, T } } },
    { "Acos", 7, 0, { { 0 } } },
    { "Acosh", 9, 0, { { 0 } } },
    { "Add", 1, 0, { { 13, NULL, NULL, T }, { 14, NULL, NULL, T } } },
    { "And", 1, 0, { { 0 } } },
    { "ArgMax", 1, 0, { { 11, NULL, AX, false }, { 12, NULL, arg_down_12, false },
                       { 13, NULL, NULL, T } } },
    { "ArgMin", 1, 0, { { 11, NULL, AX, false }, { 12, NULL, arg_down_12, false },
                       { 13, NULL, NULL, T } } },
    { "Asin", 7, 0, { { 0 } } },
    { "Asinh", 9, 0, { { 0 } } },
    { "Atan", 7, 0, { { 0 } } },
    { "Atanh", 9, 0, { { 0 } } },
    { "AveragePool", 1, 0, { { 10, NULL, pool_down_10, false }, { 11, NULL, NULL, false },
                            { 19, NULL, avgpool_down_19, false } } },
    { "BatchNormalization", 1, 0, { { 9, bn_up_9, NULL, T }, { 14, bn_up_14, bn_down_14, T },
                                   { 15, NULL, NULL, T } } },
    { "Cast", 1, 0, { { 9, NULL, NULL, T }, { 13, NULL, NULL, T },
                     { 19, NULL, cast_down_19, T }, { 21, NULL, NULL, T } } },
    { "Ceil", 1, 0, { { 13, NULL, NULL, T } } },
    { "Celu", 12, 0, { { 0 } } },
    { "Clip", 1, 0, { { 11, clip_up_11, clip_down_11, false }, { 12, NULL, NULL, TI },
                     { 13, NULL, NULL, T } } },
    { "Concat", 1, 0, { { 11, NULL, AX, false }, { 13, NULL, NULL, T } } },
    { "Constant", 1, 0, { { 9, NULL, NULL, T }, { 11, NULL, constant_down_11, false },
                         { 12, NULL, constant_down_12, false }, { 13, NULL, NULL, T },
                         { 19, NULL, NULL, T }, { 21, NULL, NULL, T } } },
    { "ConstantOfShape", 9, 0, { { 20, NULL, NULL, T }, { 21, NULL, NULL, T } } },
    { "Conv", 1, 0, { { 11, NULL, NULL, false } } },
    { "ConvTranspose", 1, 0, { { 11, NULL, NULL, false } } },
    { "Cos", 7, 0, { { 0 } } },
    { "Cosh", 9, 0, { { 0 } } },
    { "CumSum", 11, 0, { { 14, NULL, NULL, T } } },
    { "DepthToSpace", 1, 0, { { 11, NULL, d2s_down_11, false }, { 13, NULL, NULL, T } } },
    { "DequantizeLinear", 10, 0, { { 13, NULL, qdq_down_13, false }, { 19, NULL, NULL, T },
                                  { 21, NULL, qdq_down_21, T } } },
    { "Div", 1, 0, { { 13, NULL, NULL, T }, { 14, NULL, NULL, T } } },
    { "Dropout", 1, 0, { { 10, dropout_mask_10, dropout_mask_10, false },
                        { 12, dropout_up_12, dropout_down_12, false }, { 13, NULL, NULL, T } } },
    { "DynamicQuantizeLinear", 11, 0, { { 0 } } },
    { "Einsum", 12, 0, { { 0 } } },
    { "Elu", 1, 0, { { 0 } } },
    { "Equal", 1, 0, { { 11, NULL, NULL, TF }, { 13, NULL, NULL, T }, { 19, NULL, NULL, T } } },
    { "Erf", 9, 0, { { 13, NULL, NULL, T } } },
    { "Exp", 1, 0, { { 13, NULL, NULL, T } } },
    { "Expand", 8, 0, { { 13, NULL, NULL, T } } },
    { "Flatten", 1, 0, { { 9, NULL, NULL, T }, { 11, NULL, AX, false }, { 13, NULL, NULL, T },
                        { 21, NULL, NULL, T } } },
    { "Floor", 1, 0, { { 13, NULL, NULL, T } } },
    { "Gather", 1, 0, { { 11, NULL, AX, false }, { 13, NULL, NULL, T } } },
    { "GatherElements", 11, 0, { { 13, NULL, NULL, T } } },
    { "GatherND", 11, 0, { { 12, NULL, gathernd_down_12, false }, { 13, NULL, NULL, T } } },
    { "Gelu", 20, 0, { { 0 } } },
    { "Gemm", 1, 0, { { 9, NULL, NULL, T }, { 11, NULL, gemm_down_11, false },
                     { 13, NULL, NULL, T } } },
    { "GlobalAveragePool", 1, 0, { { 0 } } },
    { "GlobalMaxPool", 1, 0, { { 0 } } },
    { "Greater", 1, 0, { { 9, NULL, NULL, TI }, { 13, NULL, NULL, T } } },
    { "GreaterOrEqual", 12, 0, { { 16, NULL, NULL, T } } },
    { "GroupNormalization", 18, 0, { { 21, groupnorm_up_21, groupnorm_down_21, false } } },
    { "HardSigmoid", 1, 0, { { 0 } } },
    { "HardSwish", 14, 0, { { 0 } } },
    { "Identity", 1, 0, { { 13, NULL, NULL, T }, { 14, NULL, NULL, T }, { 16, NULL, NULL, T },
                         { 19, NULL, NULL, T }, { 21, NULL, NULL, T } } },
    { "InstanceNormalization", 1, 0, { { 0 } } },
    { "IsInf", 10, 0, { { 20, NULL, NULL, T } } },
    { "IsNaN", 9, 0, { { 13, NULL, NULL, T }, { 20, NULL, NULL, T } } },
    { "LRN", 1, 0, { { 13, NULL, NULL, T } } },
    { "LayerNormalization", 17, 0, { { 0 } } },
    { "LeakyRelu", 1, 0, { { 16, NULL, NULL, T } } },
    { "Less", 1, 0, { { 9, NULL, NULL, TI }, { 13, NULL, NULL, T } } },
    { "LessOrEqual", 12, 0, { { 16, NULL, NULL, T } } },
    { "Log", 1, 0, { { 13, NULL, NULL, T } } },
    { "LogSoftmax", 1, 0, { { 11, NULL, AX, false }, { 13, softmax_up_13, softmax_down_13, T } } },
    { "MatMul", 1, 0, { { 9, NULL, NULL, T }, { 13, NULL, NULL, T } } },
    { "Max", 1, 0, { { 8, NULL, bcast_down_8, false }, { 12, NULL, NULL, TI },
                    { 13, NULL, NULL, T } } },
    { "MaxPool", 1, 0, { { 8, NULL, maxpool_down_8, false }, { 10, NULL, pool_down_10, false },
                        { 11, NULL, NULL, false }, { 12, NULL, NULL, T } } },
    { "Mean", 1, 0, { { 8, NULL, bcast_down_8, false }, { 13, NULL, NULL, T } } },
    { "Min", 1, 0, { { 8, NULL, bcast_down_8, false }, { 12, NULL, NULL, TI },
                    { 13, NULL, NULL, T } } },
    { "Mish", 18, 0, { { 0 } } },
    { "Mod", 10, 0, { { 13, NULL, NULL, T } } },
    { "Mul", 1, 0, { { 13, NULL, NULL, T }, { 14, NULL, NULL, T } } },
    { "Neg", 1, 0, { { 13, NULL, NULL, T } } },
    { "NonZero", 9, 0, { { 13, NULL, NULL, T } } },
    { "Not", 1, 0, { { 0 } } },
    { "Or", 1, 0, { { 0 } } },
    { "PRelu", 1, 0, { { 9, NULL, NULL, T }, { 16, NULL, NULL, T } } },
    { "Pad", 1, 0, { { 11, pad_up_11, pad_down_11, false }, { 13, NULL, NULL, T },
                    { 18, NULL, pad_down_18, false }, { 19, NULL, pad_down_19, false },
                    { 21, NULL, NULL, T } } },
    { "Pow", 1, 0, { { 12, NULL, pow_down_12, TI }, { 13, NULL, NULL, T }, { 15, NULL, NULL, T } } },
    { "QuantizeLinear", 10, 0, { { 13, NULL, qdq_down_13, false },
                                { 19, NULL, qdq_down_19, T }, { 21, NULL, qdq_down_21, T } } },
    { "Range", 11, 0, { { 0 } } },
    { "Reciprocal", 1, 0, { { 13, NULL, NULL, T } } },
    { "ReduceL1", 1, 0, { { 11, NULL, AXS, false }, { 13, NULL, NULL, T },
                         { 18, reduce_up_18, reduce_down_18, false } } },
    { "ReduceL2", 1, 0, { { 11, NULL, AXS, false }, { 13, NULL, NULL, T },
                         { 18, reduce_up_18, reduce_down_18, false } } },
    { "ReduceLogSum", 1, 0, { { 11, NULL, AXS, false }, { 13, NULL, NULL, T },
                             { 18, reduce_up_18, reduce_down_18, false } } },
    { "ReduceLogSumExp", 1, 0, { { 11, NULL, AXS, false }, { 13, NULL, NULL, T },
                                { 18, reduce_up_18, reduce_down_18, false } } },
    { "ReduceMax", 1, 0, { { 11, NULL, AXS, false }, { 12, NULL, NULL, T },
                          { 13, NULL, NULL, T }, { 18, reduce_up_18, reduce_down_18, false },
                          { 20, NULL, NULL, T } } },
    { "ReduceMean", 1, 0, { { 11, NULL, AXS, false }, { 13, NULL, NULL, T },
                           { 18, reduce_up_18, reduce_down_18, false } } },
    { "ReduceMin", 1, 0, { { 11, NULL, AXS, false }, { 12, NULL, NULL, T },
                          { 13, NULL, NULL, T }, { 18, reduce_up_18, reduce_down_18, false },
                          { 20, NULL, NULL, T } } },
    { "ReduceProd", 1, 0, { { 11, NULL, AXS, false }, { 13, NULL, NULL, T },
                           { 18, reduce_up_18, reduce_down_18, false } } },
    { "ReduceSum", 1, 0, { { 11, NULL, AXS, false }, { 13, axes_up_13, reducesum_down_13, T } } },
    { "ReduceSumSquare", 1, 0, { { 11, NULL, AXS, false }, { 13, NULL, NULL, T },
                                { 18, reduce_up_18, reduce_down_18, false } } },
    { "Relu", 1, 0, { { 13, NULL, NULL, T }, { 14, NULL, NULL, T } } },
    { "Reshape", 5, 0, { { 13, NULL, NULL, T }, { 14, NULL, reshape_down_14, false },
                        { 19, NULL, NULL, T }, { 21, NULL, NULL, T } } },
    { "Resize", 10, 0, { { 10, upsample_to_resize, resize_to_upsample, false },
                        { 11, resize_up_11, resize_down_11, false }, { 13, NULL, resize_down_13, T },
                        { 18, NULL, resize_down_18, false }, { 19, NULL, resize_down_19, false } } },
    { "Round", 11, 0, { { 0 } } },
    { "ScatterND", 11, 0, { { 13, NULL, NULL, T }, { 16, NULL, scatternd_down_16, false },
                           { 18, NULL, scatternd_down_16, false } } },
    { "Selu", 1, 0, { { 0 } } },
    { "Shape", 1, 0, { { 13, NULL, NULL, T }, { 15, NULL, shape_down_15, false },
                      { 19, NULL, NULL, T }, { 21, NULL, NULL, T } } },
    { "Sigmoid", 1, 0, { { 13, NULL, NULL, T } } },
    { "Sign", 9, 0, { { 13, NULL, NULL, T } } },
    { "Sin", 7, 0, { { 0 } } },
    { "Sinh", 9, 0, { { 0 } } },
    { "Size", 1, 0, { { 13, NULL, NULL, T }, { 19, NULL, NULL, T }, { 21, NULL, NULL, T } } },
    { "Slice", 1, 0, { { 10, slice_up_10, slice_down_10, false },
                      { 11, NULL, slice_down_11, false }, { 13, NULL, NULL, T } } },
    { "Softmax", 1, 0, { { 11, NULL, AX, false }, { 13, softmax_up_13, softmax_down_13, T } } },
    { "Softplus", 1, 0, { { 0 } } },
    { "Softsign", 1, 0, { { 0 } } },
    { "SpaceToDepth", 1, 0, { { 13, NULL, NULL, T } } },
    { "Split", 2, 0, { { 11, NULL, AX, false }, { 13, split_up_13, split_down_13, T },
                      { 18, split_up_18, split_down_18, false } } },
    { "Sqrt", 1, 0, { { 13, NULL, NULL, T } } },
    { "Squeeze", 1, 0, { { 11, NULL, AXS, false }, { 13, axes_up_13, axes_down_13, T },
                        { 21, NULL, NULL, T } } },
    { "Sub", 1, 0, { { 13, NULL, NULL, T }, { 14, NULL, NULL, T } } },
    { "Sum", 1, 0, { { 8, NULL, bcast_down_8, false }, { 13, NULL, NULL, T } } },
    { "Tan", 7, 0, { { 0 } } },
    { "Tanh", 1, 0, { { 13, NULL, NULL, T } } },
    { "ThresholdedRelu", 10, 0, { { 0 } } },
    { "Tile", 1, 0, { { 13, NULL, NULL, T } } },
    { "TopK", 1, 0, { { 10, topk_up_10, topk_down_10, false }, { 11, NULL, topk_down_11, false } } },
    { "Transpose", 1, 0, { { 13, NULL, NULL, T }, { 21, NULL, NULL, T } } },
    { "Trilu", 14, 0, { { 0 } } },
    { "Unsqueeze", 1, 0, { { 11, NULL, AXS, false }, { 13, axes_up_13, axes_down_13, T },
                          { 21, NULL, NULL, T } } },
    { "Upsample", 7, 10, { { 9, upsample_up_9, upsample_down_9, false } } },
    { "Where", 9, 0, { { 16, NULL, NULL, T } } },
    { "Xor", 1, 0, { { 0 } } },
};

#undef T
#undef TI
#undef TF
#undef AX
#undef AXS

static const history *find_history(const char *type)
{
    size_t lo = 0, hi = sizeof histories / sizeof histories[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(histories[mid].type, type);
        if (c == 0)
            return &histories[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

bool ot_convert_opset_knows(const char *op_type)
{
    return find_history(op_type) != NULL;
}

/* Types an older opset may lack: bfloat16 (13/14), float8 (19), 4-bit (21). */
static bool newer_type(ot_dtype t) { return (int)t >= 16; }

static bool is_float_type(ot_dtype t)
{
    return t == OT_DTYPE_FLOAT || t == OT_DTYPE_DOUBLE || t == OT_DTYPE_FLOAT16 ||
           t == OT_DTYPE_BFLOAT16;
}

static ot_status check_types(cx *c, int32_t n, int v, int kind, ot_err *err)
{
    const ot_node *nd = N(c, n);
    for (int i = 0; i < nd->n_in; i++) {
        int32_t id = nd->in[i];
        ot_dtype t = id >= 0 ? c->g->values[id].dtype : OT_DTYPE_UNDEFINED;
        if (t == OT_DTYPE_UNDEFINED)
            continue;
        bool bad = newer_type(t) || (kind == TYPES_INT && !is_float_type(t) && i == 0) ||
                   (kind == TYPES_FLOAT && is_float_type(t));
        if (bad) {
            char why[160];
            snprintf(why, sizeof why, "'%s' is %s, which the op takes only from opset %d",
                     c->g->values[id].name, ot_dtype_name(c->g->values[id].dtype), v);
            return refuse(c, n, v, why, err);
        }
    }
    return OT_OK;
}

/* Applies h's adapters for the boundaries between opsets `from` and `to`. */
static ot_status convert_range(cx *c, int32_t n, const history *h, int from, int to,
                               ot_err *err)
{
    ot_status st = OT_OK;
    int nb = 0;
    while (nb < MAX_B && h->b[nb].v)
        nb++;
    if (to > from) {
        for (int i = 0; i < nb && st == OT_OK; i++)
            if (h->b[i].v > from && h->b[i].v <= to && h->b[i].up)
                st = h->b[i].up(c, n, err);
    } else {
        for (int i = nb - 1; i >= 0 && st == OT_OK; i--) {
            if (h->b[i].v <= to || h->b[i].v > from)
                continue;
            if (h->b[i].types)
                st = check_types(c, n, h->b[i].v, h->b[i].types, err);
            if (st == OT_OK && h->b[i].down)
                st = h->b[i].down(c, n, err);
        }
    }
    return st;
}

/* The op h replaced (older) or that replaces h; NULL when none. */
static const history *renamed(const history *h, bool older)
{
    for (size_t i = 0; i < sizeof renames / sizeof renames[0]; i++)
        if (strcmp(older ? renames[i].newer : renames[i].older, h->type) == 0)
            return find_history(older ? renames[i].older : renames[i].newer);
    return NULL;
}

/* The rename: the newer op's boundary at its first opset. */
static const boundary *rename_of(const history *newer)
{
    return newer->b[0].v == newer->first ? &newer->b[0] : NULL;
}

/* Rewrites node n from opset c->from to c->to. */
static ot_status convert_node(cx *c, int32_t n, const history *h, ot_err *err)
{
    if (c->to < h->first) {
        const history *old = renamed(h, true);
        const boundary *b = old ? rename_of(h) : NULL;
        if (b && c->to >= old->first) { /* down to the op it replaced */
            RET(convert_range(c, n, h, c->from, h->first, err));
            RET(b->down(c, n, err));
            return convert_range(c, n, old, h->first - 1, c->to, err);
        }
        char why[96];
        snprintf(why, sizeof why, "the op does not exist before opset %d", h->first);
        return refuse(c, n, h->first, why, err);
    }
    if (h->removed && c->to >= h->removed) {
        const history *nw = renamed(h, false);
        const boundary *b = nw ? rename_of(nw) : NULL;
        if (b) { /* up to the op that replaces it */
            RET(convert_range(c, n, h, c->from, h->removed - 1, err));
            RET(b->up(c, n, err));
            return convert_range(c, n, nw, h->removed, c->to, err);
        }
        char why[96];
        snprintf(why, sizeof why, "the op does not exist from opset %d", h->removed);
        return refuse(c, n, h->removed, why, err);
    }
    return convert_range(c, n, h, c->from, c->to, err);
}

/* Control flow (If, Loop, Scan) and any node with a graph attribute. */
static bool has_subgraph(const ot_node *nd)
{
    static const char *const flow[] = { "If", "Loop", "Scan" };
    for (size_t i = 0; i < sizeof flow / sizeof flow[0]; i++)
        if (strcmp(nd->op_type, flow[i]) == 0)
            return true;
    for (int i = 0; i < nd->n_attrs; i++)
        if (nd->attrs[i].type == OT_ATTR_GRAPH || nd->attrs[i].type == OT_ATTR_GRAPHS)
            return true;
    return false;
}

/* The IR version each opset needs at least (onnx/helper.py's table). */
static int64_t ir_for_opset(int opset)
{
    static const int64_t ir[22] = { 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 5, 6, 7, 7, 7, 8, 8, 8, 8, 9, 9,
                                    10 };
    return opset >= 0 && opset < 22 ? ir[opset] : 10;
}

ot_status ot_convert_opset(ot_graph *g, const ot_convert_opts *opts, ot_err *err)
{
    ot_status st = OT_OK;
    cx c = { .g = g, .from = (int)ot_graph_opset(g, ""), .to = opts->opset };
    if (c.to < OT_CONVERT_OPSET_MIN || c.to > OT_CONVERT_OPSET_MAX)
        return ot_err_set(err, OT_ERR_ARG, "--opset %d: the converter covers opsets %d to %d",
                          c.to, OT_CONVERT_OPSET_MIN, OT_CONVERT_OPSET_MAX);
    if (c.from == 0)
        return ot_err_set(err, OT_ERR_MODEL, "--opset: the model imports no default-domain "
                          "opset");
    if (c.from < OT_CONVERT_OPSET_MIN || c.from > OT_CONVERT_OPSET_MAX)
        return ot_err_set(err, OT_ERR_UNSUPPORTED, "--opset: the model's opset %d is outside "
                          "the %d to %d the converter covers", c.from, OT_CONVERT_OPSET_MIN,
                          OT_CONVERT_OPSET_MAX);
    if (c.from == c.to) {
        ot_log(OT_LOG_INFO, "--opset: the model is at opset %d already", c.to);
        return OT_OK;
    }
    /* every node first: refuse before changing anything for unknown ops */
    int32_t n_nodes = g->n_nodes;
    int n_other = 0;
    const char *other_domain = NULL;
    for (int32_t i = 0; i < n_nodes; i++) {
        const ot_node *nd = &g->nodes[i];
        if (!ot_domain_is_default(nd->domain)) {
            n_other++;
            other_domain = nd->domain;
            continue;
        }
        if (has_subgraph(nd))
            return cv_node_err(err, OT_ERR_UNSUPPORTED, g, nd, "cannot convert from opset %d "
                               "to %d: %s carries subgraphs, whose nodes the converter does "
                               "not convert (convert the model with a tool that does, or "
                               "unroll it first)", c.from, c.to, nd->op_type);
        if (!find_history(nd->op_type))
            return cv_node_err(err, OT_ERR_UNSUPPORTED, g, nd, "cannot convert from opset %d "
                               "to %d: the converter has no adapters for %s", c.from, c.to,
                               nd->op_type);
    }
    if (n_other)
        ot_log(OT_LOG_WARN, "--opset: %d nodes of other domains (e.g. '%s') are carried "
               "unchanged; their opsets are not converted", n_other, other_domain);
    for (int32_t i = 0; i < n_nodes; i++) {
        if (!ot_domain_is_default(g->nodes[i].domain))
            continue;
        OT_TRY(convert_node(&c, i, find_history(g->nodes[i].op_type), err));
    }
    /* the new opset everywhere */
    for (int32_t i = 0; i < g->n_opsets; i++) {
        if (ot_domain_is_default(g->opsets[i].domain)) {
            ot_opset *o = ot_arena_alloc(&g->arena, sizeof *o * (size_t)g->n_opsets);
            if (!o)
                OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
            memcpy(o, g->opsets, sizeof *o * (size_t)g->n_opsets);
            o[i].version = c.to;
            g->opsets = o;
            break;
        }
    }
    for (int32_t i = 0; i < g->n_nodes; i++) {
        ot_node *nd = &g->nodes[i];
        if (!ot_domain_is_default(nd->domain))
            continue;
        if (nd->opset != c.to)
            nd->flags |= OT_NODE_DIRTY;
        nd->opset = c.to;
        nd->op = ot_op_find("", nd->op_type, c.to);
        if (nd->op)
            nd->flags &= ~(uint32_t)OT_NODE_OPAQUE;
        else
            nd->flags |= OT_NODE_OPAQUE;
    }
    if (c.to > c.from && g->ir_version < ir_for_opset(c.to))
        g->ir_version = ir_for_opset(c.to);
    OT_TRY(cv_refresh(g, err));
    /* the table's attribute specs per opset: a node that gains an
       attribute unknown at the target is a missing adapter, never a file
       written anyway */
    for (int32_t i = 0; i < g->n_nodes; i++) {
        ot_node *nd = &g->nodes[i];
        if (!nd->op)
            continue;
        bool had = (nd->flags & OT_NODE_UNKNOWN_ATTR) != 0;
        nd->flags &= ~(uint32_t)OT_NODE_UNKNOWN_ATTR;
        OT_TRY(ot_op_check_node(g, nd, err));
        if (!had && (g->nodes[i].flags & OT_NODE_UNKNOWN_ATTR)) {
            st = cv_node_err(err, OT_ERR_UNSUPPORTED, g, &g->nodes[i], "cannot convert from "
                             "opset %d to %d: it keeps an attribute that opset %d does not "
                             "define (-v names it)", c.from, c.to, c.to);
            goto done;
        }
    }
    ot_log(OT_LOG_INFO, "--opset: converted from opset %d to %d", c.from, c.to);
done:
    return st;
}
