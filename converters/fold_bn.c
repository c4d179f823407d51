/*
 * fold_bn.c: `--fold-bn`. An inference BatchNormalization whose input is the
 * output of a Conv or Gemm that nothing else reads is folded into it:
 *
 *   k = scale / sqrt(var + epsilon)            per channel c (axis 1)
 *   Conv:  W'[c, ...] = W[c, ...] * k[c]        b'[c] = (b[c] - mean[c]) * k[c] + shift[c]
 *   Gemm:  B'[:, c] = B[:, c] * k[c] (row c when transB)
 *          C'[c] = (beta * C[c] - mean[c]) * k[c] + shift[c], beta' = 1
 *
 * computed in float64 from the float32 operands and rounded to float32 once
 * (the executor's own folding, src/exec/rewrite.c, does the same on its
 * clone; this one writes the model). The Conv or Gemm then writes the BN's
 * output, so names seen from outside stay. Weights read by that node alone
 * are changed in place (same name); shared ones get a new initializer.
 *
 * A BatchNormalization is kept, with a warning giving the reason, when its
 * producer is not a Conv or Gemm (pre-activation BN), the producer's output
 * has other readers or is a graph output, an operand is not a float32
 * constant, it computes training outputs, or spatial=0 (opsets < 9).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "converters/edit.h"
#include "ops/ops.h"

typedef struct fold_ctx {
    ot_graph *g;
    int *uses;
    bool *drop; /* nodes folded away */
} fold_ctx;

/* Why BN node `bi` cannot fold into its producer, or NULL when it can;
   *pi is the producer. */
static const char *why_not(const fold_ctx *c, int32_t bi, int32_t *pi)
{
    const ot_graph *g = c->g;
    const ot_node *bn = &g->nodes[bi];
    *pi = -1;
    if (bn->n_in != 5 || bn->in[0] < 0)
        return "it does not have its five inputs";
    if (ot_node_attr_int(bn, "training_mode", 0) != 0)
        return "it is in training mode";
    if (bn->opset < 9 && ot_node_attr_int(bn, "spatial", 1) == 0)
        return "spatial=0 (per-activation statistics)";
    for (int k = 1; k < bn->n_out; k++)
        if (bn->out[k] >= 0 && c->uses[bn->out[k]] > 0)
            return "its running or saved statistics are used";
    int32_t x = bn->in[0];
    int32_t p = g->values[x].producer;
    if (p < 0)
        return "its input is not computed by a Conv or Gemm";
    const ot_node *pn = &g->nodes[p];
    bool conv = ot_node_is(pn, OT_OP_CONV), gemm = ot_node_is(pn, OT_OP_GEMM);
    if (!conv && !gemm)
        return "its input is not computed by a Conv or Gemm (the BN comes after another op)";
    if (c->uses[x] != 1)
        return "the producer's output has other readers or is a graph output";
    *pi = p;
    int64_t ch;
    int32_t w = pn->n_in > 1 ? pn->in[1] : -1;
    if (!cv_const_f32(g, w))
        return "the producer's weights are not a float32 constant";
    if (pn->n_in > 2 && pn->in[2] >= 0 && !cv_const_f32(g, pn->in[2]))
        return "the producer's bias is not a float32 constant";
    const ot_value *wv = &g->values[w];
    if (conv) {
        if (wv->ndim < 3)
            return "the Conv's weights have an unexpected rank";
        ch = wv->dims[0];
        if (pn->n_in > 2 && pn->in[2] >= 0 &&
            (g->values[pn->in[2]].ndim != 1 || g->values[pn->in[2]].dims[0] != ch))
            return "the Conv's bias has an unexpected shape";
    } else {
        if (wv->ndim != 2)
            return "the Gemm's B has an unexpected rank";
        bool tb = ot_node_attr_int(pn, "transB", 0) != 0;
        ch = tb ? wv->dims[0] : wv->dims[1];
        if (pn->n_in > 2 && pn->in[2] >= 0) {
            const ot_value *cv = &g->values[pn->in[2]];
            int64_t numel = 1;
            for (int i = 0; i < cv->ndim; i++)
                numel *= cv->dims[i];
            bool ok = numel == 1 || (cv->ndim >= 1 && cv->dims[cv->ndim - 1] == ch &&
                                     numel == ch);
            if (!ok)
                return "the Gemm's C is not a scalar or one value per output column";
        }
    }
    for (int k = 1; k < 5; k++) {
        const ot_value *v = &g->values[bn->in[k]];
        if (!cv_const_f32(g, bn->in[k]))
            return "a scale, bias, mean or variance is not a float32 constant";
        if (v->ndim != 1 || v->dims[0] != ch)
            return "its parameters do not have one value per output channel";
    }
    return NULL;
}

/* Puts new float data into value `v` when node-local (read once), else
   into a new initializer; *out is the value to read. Takes `data`. */
static ot_status put_f32(fold_ctx *c, int32_t v, const char *base, int ndim,
                         const int64_t *dims, float *data, int32_t *out, ot_err *err)
{
    ot_graph *g = c->g;
    size_t numel = 1;
    for (int i = 0; i < ndim; i++)
        numel *= (size_t)dims[i];
    if (v >= 0 && c->uses[v] == 1 && (g->values[v].flags & OT_VAL_INIT) &&
        !(g->values[v].flags & OT_VAL_INPUT) && g->values[v].ndim == ndim) {
        ot_value *val = &g->values[v];
        ot_free(val->data.data);
        val->data.data = data;
        val->data.bytes = numel * sizeof(float);
        for (int i = 0; i < ndim; i++)
            val->dims[i] = val->data.dims[i] = dims[i];
        val->flags |= OT_VAL_DIRTY;
        *out = v;
        return OT_OK;
    }
    return cv_add_init(g, base, OT_DTYPE_FLOAT, ndim, dims, data, numel * sizeof(float), out,
                       err);
}

static ot_status fold(fold_ctx *c, int32_t bi, int32_t pi, ot_err *err)
{
    ot_status st = OT_OK;
    ot_graph *g = c->g;
    const ot_node *bn = &g->nodes[bi];
    const ot_node *pn = &g->nodes[pi];
    bool conv = ot_node_is(pn, OT_OP_CONV);
    bool tb = !conv && ot_node_attr_int(pn, "transB", 0) != 0;
    int32_t w = pn->in[1], b = pn->n_in > 2 ? pn->in[2] : -1;
    const ot_value wv = g->values[w];
    const float *W = cv_const_f32(g, w), *B = b >= 0 ? cv_const_f32(g, b) : NULL;
    const float *scale = cv_const_f32(g, bn->in[1]), *shift = cv_const_f32(g, bn->in[2]);
    const float *mean = cv_const_f32(g, bn->in[3]), *var = cv_const_f32(g, bn->in[4]);
    double eps = ot_node_attr_float(bn, "epsilon", 1e-5f);
    int64_t ch = conv ? wv.dims[0] : (tb ? wv.dims[0] : wv.dims[1]);
    size_t numel = 1;
    for (int i = 0; i < wv.ndim; i++)
        numel *= (size_t)wv.dims[i];
    float *w2 = ot_malloc(sizeof *w2 * (numel ? numel : 1));
    float *b2 = ot_malloc(sizeof *b2 * (size_t)(ch ? ch : 1));
    double *k = ot_malloc(sizeof *k * (size_t)(ch ? ch : 1));
    if (!w2 || !b2 || !k) {
        ot_free(w2);
        ot_free(b2);
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory folding a BatchNormalization");
    }
    double beta = conv ? 1.0 : (double)ot_node_attr_float(pn, "beta", 1.0f);
    size_t b_numel = 0;
    if (B) {
        b_numel = 1;
        for (int i = 0; i < g->values[b].ndim; i++)
            b_numel *= (size_t)g->values[b].dims[i];
    }
    for (int64_t o = 0; o < ch; o++) {
        k[o] = (double)scale[o] / sqrt((double)var[o] + eps);
        double bias = B ? beta * (double)B[b_numel == 1 ? 0 : o] : 0.0;
        b2[o] = (float)((bias - (double)mean[o]) * k[o] + (double)shift[o]);
    }
    if (conv || tb) { /* channel = the first dim */
        size_t per = numel / (size_t)(ch ? ch : 1);
        for (int64_t o = 0; o < ch; o++)
            for (size_t i = 0; i < per; i++)
                w2[(size_t)o * per + i] = (float)((double)W[(size_t)o * per + i] * k[o]);
    } else { /* B is (K, N): channel = the column */
        size_t rows = numel / (size_t)(ch ? ch : 1);
        for (size_t r = 0; r < rows; r++)
            for (int64_t o = 0; o < ch; o++)
                w2[r * (size_t)ch + (size_t)o] =
                    (float)((double)W[r * (size_t)ch + (size_t)o] * k[o]);
    }
    int32_t y = bn->out[0], w_new, b_new;
    int64_t bdims[1] = { ch };
    char base[512];
    snprintf(base, sizeof base, "%s", wv.name);
    OT_TRY(put_f32(c, w, base, wv.ndim, wv.dims, w2, &w_new, err));
    snprintf(base, sizeof base, "%s_bias", wv.name);
    if (b >= 0)
        snprintf(base, sizeof base, "%s", g->values[b].name);
    OT_TRY(put_f32(c, b, base, 1, bdims, b2, &b_new, err));
    int32_t in[3] = { g->nodes[pi].in[0], w_new, b_new };
    OT_TRY(cv_set_inputs(g, pi, in, 3, err));
    int32_t out0 = y;
    int32_t *outs = ot_arena_alloc(&g->arena, sizeof *outs * (size_t)g->nodes[pi].n_out);
    if (!outs)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    memcpy(outs, g->nodes[pi].out, sizeof *outs * (size_t)g->nodes[pi].n_out);
    outs[0] = out0;
    OT_TRY(cv_set_outputs(g, pi, outs, g->nodes[pi].n_out, err));
    if (!conv)
        OT_TRY(cv_set_attr_float(g, pi, "beta", 1.0f, err));
    c->drop[bi] = true;
done:
    ot_free(k);
    return st;
}

ot_status ot_convert_fold_bn(ot_graph *g, const ot_convert_opts *opts, ot_err *err)
{
    (void)opts;
    ot_status st = OT_OK;
    fold_ctx c = { .g = g };
    c.uses = cv_count_uses(g);
    c.drop = ot_calloc((size_t)g->n_nodes + 1, sizeof *c.drop);
    bool *keep = ot_malloc(sizeof *keep * ((size_t)g->n_nodes + 1));
    int folded = 0, kept = 0;
    if (!c.uses || !c.drop || !keep)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    int32_t n_nodes = g->n_nodes;
    for (int32_t i = 0; i < n_nodes; i++) {
        if (!ot_node_is(&g->nodes[i], OT_OP_BATCHNORM))
            continue;
        int32_t p;
        const char *why = why_not(&c, i, &p);
        if (why) {
            char label[256];
            ot_log(OT_LOG_WARN, "--fold-bn: %s kept: %s",
                   ot_node_label(g, &g->nodes[i], label, sizeof label), why);
            kept++;
            continue;
        }
        OT_TRY(fold(&c, i, p, err));
        folded++;
    }
    if (folded) {
        for (int32_t i = 0; i < n_nodes; i++)
            keep[i] = !c.drop[i];
        OT_TRY(cv_keep_nodes(g, keep, err));
        cv_drop_unused_inits(g);
        OT_TRY(cv_refresh(g, err));
    }
    ot_log(OT_LOG_INFO, "--fold-bn: %d BatchNormalization folded, %d kept", folded, kept);
done:
    ot_free(c.uses);
    ot_free(c.drop);
    ot_free(keep);
    return st;
}
