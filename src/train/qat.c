/*
 * qat.c: fake quantisation in and out of a model graph (see qat.h).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ops/grad_util.h"
#include "ops/ops.h"
#include "train/qat.h"

/* Readers of `from` (except node `skip`) read `to`. */
static void redirect(ot_graph *g, int32_t from, int32_t to, int32_t skip)
{
    for (int32_t i = 0; i < g->n_nodes; i++) {
        if (i == skip)
            continue;
        ot_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] == from)
                n->in[k] = to;
    }
}

ot_status ot_qat_insert(ot_graph *g, const ot_calib_ranges *ranges, int *n_inserted,
                        ot_err *err)
{
    ot_status st = OT_OK;
    *n_inserted = 0;
    int32_t NV = g->n_values, NN = g->n_nodes;
    bool *want = ot_calloc((size_t)NV + 1, sizeof *want);
    int32_t *axis = ot_malloc(((size_t)NN + 1) * sizeof *axis);
    if (!want || !axis)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    ot_int8_activations(g, want);
    for (int32_t i = 0; i < NN; i++)
        axis[i] = ot_int8_weight_axis(g, &g->nodes[i]);
    const ot_op_desc *fq = ot_op_table[OT_OP_FAKE_QUANT];
    char name[512], hint[512];
    for (int32_t i = 0; i < NN; i++) {
        if (axis[i] < 0)
            continue;
        int32_t w = g->nodes[i].in[1], out;
        ot_attr a[3] = { ot_op_grad_attr_int("dynamic", 1), ot_op_grad_attr_int("per_channel", 1),
                         ot_op_grad_attr_int("axis", axis[i]) };
        snprintf(name, sizeof name, "qat/%s", g->values[w].name);
        snprintf(hint, sizeof hint, "qat/%s", g->values[w].name);
        const char *outs[1] = { hint };
        OT_TRY(ot_op_grad_emit(g, fq, 0, name, &w, 1, a, 3, outs, &out, 1, err));
        g->nodes[i].in[1] = out; /* this reader only: a shared weight gets one per reader */
        (*n_inserted)++;
    }
    for (int32_t v = 0; v < NV; v++) {
        if (!want[v])
            continue;
        if (!ranges || v >= ranges->n_values || isnan(ranges->amax[v]))
            OT_FAIL(err, OT_ERR_ARG, "activation '%s' has no calibrated range",
                    g->values[v].name);
        float amax = ranges->amax[v];
        float s = amax > 0 && isfinite(amax) ? amax / 127.0f : 1.0f;
        int32_t s_id, out;
        snprintf(hint, sizeof hint, "qat/%s/scale", g->values[v].name);
        OT_TRY(ot_op_grad_const_f32(g, hint, NULL, 0, &s, &s_id, err));
        snprintf(name, sizeof name, "qat/%s", g->values[v].name);
        const char *outs[1] = { name };
        int32_t in[2] = { v, s_id };
        OT_TRY(ot_op_grad_emit(g, fq, 0, name, in, 2, NULL, 0, outs, &out, 1, err));
        redirect(g, v, out, g->n_nodes - 1);
        (*n_inserted)++;
    }
    OT_TRY(ot_graph_sort(g, err));
    OT_TRY(ot_graph_infer_shapes(g, err));
done:
    ot_free(want);
    ot_free(axis);
    return st;
}

ot_status ot_qat_strip(ot_graph *g, ot_err *err)
{
    ot_status st = OT_OK;
    bool *keep = ot_malloc(((size_t)g->n_nodes + 1) * sizeof *keep);
    bool *scales = ot_calloc((size_t)g->n_values + 1, sizeof *scales);
    if (!keep || !scales)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < g->n_nodes; i++) {
        ot_node *n = &g->nodes[i];
        keep[i] = !ot_node_is(n, OT_OP_FAKE_QUANT);
        if (keep[i])
            continue;
        redirect(g, n->out[0], n->in[0], i);
        if (n->n_in > 1 && n->in[1] >= 0)
            scales[n->in[1]] = true;
    }
    OT_TRY(ot_graph_keep_nodes(g, keep, err));
    ot_quant_drop_inits(g, scales);
done:
    ot_free(keep);
    ot_free(scales);
    return st;
}
