/*
 * einsum.c: Einsum, ONNX opsets 12-21: any equation of one or more inputs of
 * one numeric type (letters, an ellipsis, repeated labels for diagonals,
 * summed labels, implicit or explicit output).
 *
 * Gradient: for input k, dX_k = Einsum(dY and the other inputs -> X_k's
 * term), summed down to X_k's shape where its ellipsis dims broadcast. That
 * holds when no label repeats within a term and every label of X_k occurs in
 * the output or another input: the batched matrix products attention and
 * classifiers write ("bhid,bhjd->bhij", "bhij,bhjd->bhid", "...ij,...jk->
 * ...ik", their transposed forms) and transposes; other equations are
 * refused naming the equation.
 *
 * Reference: https://onnx.ai/onnx/operators/onnx__Einsum.html
 */
#include <stdio.h>
#include <string.h>

#include "ops/einsum.h"
#include "ops/grad_util.h"
#include "ops/op_util.h"

static const ot_attr_spec einsum_attrs[] = {
    { "equation", OT_ATTR_STRING, NULL, NULL, 0, 0, false },
    { 0 },
};

static int letter_id(char ch)
{
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a';
    if (ch >= 'A' && ch <= 'Z')
        return 26 + ch - 'A';
    return -1;
}

/* One term (up to ',' or '-' or the end): its label ids, for a term of rank
   `rank` (-1: the output, whose ellipsis holds all n_ell_max ellipsis dims).
   A term's ellipsis dims are the last of the ellipsis labels (right-aligned).
   Returns the rest of the equation, or NULL on a malformed term. */
static const char *parse_term(const char *p, int rank, int n_ell_max, int8_t *lab, int *out_rank,
                              int *n_ell, const char **why)
{
    int letters = 0, has_ell = 0;
    const char *q = p;
    for (; *q && *q != ',' && *q != '-'; q++) {
        if (*q == ' ')
            continue;
        if (*q == '.') {
            if (strncmp(q, "...", 3) || has_ell) {
                *why = "a malformed ellipsis";
                return NULL;
            }
            has_ell = 1;
            q += 2;
            continue;
        }
        if (letter_id(*q) < 0) {
            *why = "a character that is not a letter";
            return NULL;
        }
        letters++;
    }
    int ell = 0;
    if (rank >= 0) {
        ell = rank - letters;
        if (ell < 0 || (ell > 0 && !has_ell)) {
            *why = "a term whose labels do not match its input's rank";
            return NULL;
        }
    } else if (has_ell) {
        ell = n_ell_max;
    }
    if (letters + ell > OT_MAX_DIMS) {
        *why = "too many dims";
        return NULL;
    }
    int k = 0;
    for (const char *s = p; s < q; s++) {
        if (*s == ' ')
            continue;
        if (*s == '.') {
            /* right-aligned: this term's ellipsis dims are the last `ell` */
            for (int i = 0; i < ell; i++)
                lab[k++] = (int8_t)(OT_EINSUM_LETTERS + OT_MAX_DIMS - ell + i);
            s += 2;
            continue;
        }
        lab[k++] = (int8_t)letter_id(*s);
    }
    *out_rank = k;
    *n_ell = ell;
    return q;
}

bool ot_einsum_parse(const char *eq, int n_in, const int *ranks, ot_einsum *e, const char **why)
{
    memset(e, 0, sizeof *e);
    if (n_in < 1 || n_in > OT_EINSUM_MAX_IN) {
        *why = "more inputs than Einsum takes here (8)";
        return false;
    }
    e->n_in = n_in;
    const char *p = eq;
    for (int k = 0; k < n_in; k++) {
        int ell;
        p = parse_term(p, ranks[k], 0, e->in_lab[k], &e->in_rank[k], &ell, why);
        if (!p)
            return false;
        if (ell > e->n_ell)
            e->n_ell = ell;
        if (k < n_in - 1) {
            if (*p != ',') {
                *why = "fewer terms than inputs";
                return false;
            }
            p++;
        }
    }
    while (*p == ' ')
        p++;
    int count[OT_EINSUM_MAX_LABELS] = { 0 };
    for (int k = 0; k < n_in; k++)
        for (int i = 0; i < e->in_rank[k]; i++) {
            count[e->in_lab[k][i]]++;
            e->used[e->in_lab[k][i]] = true;
        }
    if (*p == ',') {
        *why = "more terms than inputs";
        return false;
    }
    if (*p == '-') {
        if (p[1] != '>') {
            *why = "a '-' that is not '->'";
            return false;
        }
        int ell;
        const char *q = parse_term(p + 2, -1, e->n_ell, e->out_lab, &e->out_rank, &ell, why);
        if (!q)
            return false;
        if (*q) {
            *why = "more than one output term";
            return false;
        }
        bool seen[OT_EINSUM_MAX_LABELS] = { false };
        for (int i = 0; i < e->out_rank; i++) {
            int l = e->out_lab[i];
            if (seen[l] || !e->used[l]) {
                *why = "an output label that repeats or occurs in no input";
                return false;
            }
            seen[l] = true;
        }
        for (int i = 0; i < e->n_ell; i++)
            if (!seen[OT_EINSUM_LETTERS + OT_MAX_DIMS - e->n_ell + i]) {
                *why = "an output without the inputs' ellipsis";
                return false;
            }
        return true;
    }
    /* implicit output: the ellipsis dims, then the letters that occur once */
    for (int i = 0; i < e->n_ell; i++)
        e->out_lab[e->out_rank++] = (int8_t)(OT_EINSUM_LETTERS + OT_MAX_DIMS - e->n_ell + i);
    static const char order[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    for (int c = 0; order[c]; c++)
        if (count[c < 26 ? 26 + c : c - 26] == 1) {
            if (e->out_rank >= OT_MAX_DIMS) {
                *why = "too many dims";
                return false;
            }
            e->out_lab[e->out_rank++] = (int8_t)(c < 26 ? 26 + c : c - 26);
        }
    return true;
}

bool ot_einsum_sizes(const ot_einsum *e, const int64_t *const *in_dims, int64_t *size,
                     const char **why)
{
    for (int l = 0; l < OT_EINSUM_MAX_LABELS; l++)
        size[l] = OT_DIM_DYNAMIC;
    for (int k = 0; k < e->n_in; k++)
        for (int i = 0; i < e->in_rank[k]; i++) {
            int l = e->in_lab[k][i];
            int64_t d = in_dims[k][i];
            bool ell = l >= OT_EINSUM_LETTERS;
            if (d < 0 || (ell && d == 1 && size[l] != OT_DIM_DYNAMIC))
                continue;
            if (size[l] == OT_DIM_DYNAMIC || (ell && size[l] == 1)) {
                size[l] = d;
                continue;
            }
            if (size[l] != d) {
                *why = "a label whose dims differ";
                return false;
            }
        }
    return true;
}

/* The equation of a node; NULL when it has none. */
static const char *equation(const ot_node *n)
{
    const ot_attr *a = ot_node_find_attr(n, "equation");
    return a && a->type == OT_ATTR_STRING ? a->s : NULL;
}

static ot_status einsum_validate(ot_graph *g, ot_node *n, ot_err *err)
{
    if (!equation(n))
        return ot_op_err(err, OT_ERR_MODEL, g, n, "attribute 'equation' is required");
    return OT_OK;
}

static ot_status einsum_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_value *y = ot_op_out(g, n, 0);
    const char *eq = equation(n), *why = NULL;
    int ranks[OT_EINSUM_MAX_IN];
    const int64_t *dims[OT_EINSUM_MAX_IN];
    if (!y || !eq)
        return OT_OK;
    if (n->n_in > OT_EINSUM_MAX_IN)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "has %d inputs, at most %d are supported",
                         n->n_in, OT_EINSUM_MAX_IN);
    ot_dtype dt = OT_DTYPE_UNDEFINED;
    for (int k = 0; k < n->n_in; k++) {
        const ot_value *x = ot_op_in(g, n, k);
        if (!ot_op_known(x))
            return OT_OK;
        if (!ot_op_is_float(x->dtype) && !ot_op_is_int(x->dtype))
            return ot_op_err(err, OT_ERR_MODEL, g, n, "input '%s' is %s, expected a numeric type",
                             x->name, ot_dtype_name(x->dtype));
        if (k > 0 && x->dtype != dt)
            return ot_op_err(err, OT_ERR_MODEL, g, n, "inputs of different types (%s, %s)",
                             ot_dtype_name(dt), ot_dtype_name(x->dtype));
        dt = x->dtype;
        ranks[k] = x->ndim;
        dims[k] = x->dims;
    }
    ot_einsum e;
    int64_t size[OT_EINSUM_MAX_LABELS];
    if (!ot_einsum_parse(eq, n->n_in, ranks, &e, &why) || !ot_einsum_sizes(&e, dims, size, &why))
        return ot_op_err(err, OT_ERR_SHAPE, g, n, "equation '%s': %s", eq, why);
    ot_op_dims d = { .ndim = e.out_rank };
    for (int i = 0; i < e.out_rank; i++) {
        d.dims[i] = size[e.out_lab[i]];
        /* a dynamic dim keeps the symbol of an input dim of its label */
        for (int k = 0; k < n->n_in && d.dims[i] < 0 && !d.names[i]; k++)
            for (int j = 0; j < e.in_rank[k]; j++)
                if (e.in_lab[k][j] == e.out_lab[i] && g->values[n->in[k]].dims[j] < 0)
                    d.names[i] = g->values[n->in[k]].dim_names[j];
    }
    ot_op_set(y, dt, &d);
    return OT_OK;
}

const ot_op_desc ot_op_einsum = {
    .id = OT_OP_EINSUM,
    .domain = "",
    .type = "Einsum",
    .opset_min = 12,
    .opset_max = 21,
    .n_in_min = 1,
    .n_in_max = -1,
    .n_out_min = 1,
    .n_out_max = 1,
    .attrs = einsum_attrs,
    .infer = einsum_infer,
    .validate = einsum_validate,
    .grad = ot_op_grad_einsum,
};

/* ------------------------------------------------------------- gradient */

/* The text of a term: letters, "..." for the ellipsis dims. */
static void term_text(const int8_t *lab, int rank, char *buf)
{
    int k = 0;
    bool ell_done = false;
    for (int i = 0; i < rank; i++) {
        int l = lab[i];
        if (l >= OT_EINSUM_LETTERS) {
            if (!ell_done)
                memcpy(buf + k, "...", 3), k += 3;
            ell_done = true;
            continue;
        }
        buf[k++] = (char)(l < 26 ? 'a' + l : 'A' + l - 26);
    }
    buf[k] = 0;
}

ot_status ot_op_grad_einsum(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                            const bool *need_dx, ot_err *err)
{
    ot_status st = OT_OK;
    char name[512], hint[512], sfx[32], eq2[8 * (OT_MAX_DIMS + 4) + 16];
    if (dy[0] < 0)
        return OT_OK;
    const ot_node *n = &g->nodes[node];
    const char *eq = equation(n), *why = NULL;
    int ranks[OT_EINSUM_MAX_IN];
    if (!eq || n->n_in > OT_EINSUM_MAX_IN)
        return ot_op_err(err, OT_ERR_UNSUPPORTED, g, n, "no gradient for this Einsum");
    for (int k = 0; k < n->n_in; k++)
        ranks[k] = g->values[n->in[k]].ndim;
    ot_einsum e;
    if (!ot_einsum_parse(eq, n->n_in, ranks, &e, &why))
        return ot_op_err(err, OT_ERR_UNSUPPORTED, g, n, "no gradient for equation '%s': %s", eq,
                         why);
    /* the terms, dY's (the output's) last */
    for (int k = 0; k < n->n_in; k++) {
        if (!need_dx[k])
            continue;
        bool ok = true;
        for (int i = 0; i < e.in_rank[k] && ok; i++) {
            int l = e.in_lab[k][i], where = 0;
            for (int j = 0; j < e.in_rank[k]; j++)
                ok = ok && (j == i || e.in_lab[k][j] != l);
            for (int j = 0; j < e.out_rank; j++)
                where += e.out_lab[j] == l;
            for (int m = 0; m < e.n_in; m++)
                for (int j = 0; m != k && j < e.in_rank[m]; j++)
                    where += e.in_lab[m][j] == l;
            ok = ok && where > 0;
        }
        if (!ok)
            return ot_op_err(err, OT_ERR_UNSUPPORTED, g, n,
                             "no gradient for equation '%s' (input %d has a repeated label, or "
                             "one that only it has: a diagonal or a sum over it)",
                             eq, k);
        /* dX_k = Einsum(dY, the other inputs -> X_k's term) */
        int32_t in[OT_EINSUM_MAX_IN];
        int m_in = 0, len = 0;
        in[m_in++] = dy[0];
        term_text(e.out_lab, e.out_rank, eq2);
        len = (int)strlen(eq2);
        for (int m = 0; m < e.n_in; m++) {
            if (m == k)
                continue;
            eq2[len++] = ',';
            term_text(e.in_lab[m], e.in_rank[m], eq2 + len);
            len = (int)strlen(eq2);
            in[m_in++] = n->in[m];
        }
        memcpy(eq2 + len, "->", 2);
        term_text(e.in_lab[k], e.in_rank[k], eq2 + len + 2);
        ot_attr a = { .name = "equation", .type = OT_ATTR_STRING, .s = eq2, .s_len = strlen(eq2) };
        int32_t full;
        snprintf(sfx, sizeof sfx, "%d", k);
        snprintf(hint, sizeof hint, "grad/%s/full", g->values[n->in[k]].name);
        const char *names[1] = { hint };
        OT_TRY(ot_op_grad_emit(g, &ot_op_einsum, 12,
                               ot_op_grad_node_name(g, node, sfx, name, sizeof name), in, m_in, &a,
                               1, names, &full, 1, err));
        snprintf(sfx, sizeof sfx, "%d_sum", k);
        OT_TRY(ot_op_grad_reduce_to(g, ot_op_grad_node_name(g, node, sfx, name, sizeof name),
                                    full, n->in[k], -1, &dx[k], err));
        n = &g->nodes[node];
    }
done:
    return st;
}
