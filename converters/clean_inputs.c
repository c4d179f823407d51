/*
 * clean_inputs.c: `--clean-inputs`. Files of IR version < 4 (the old model
 * zoo) list every initializer as a graph input too, which makes runtimes
 * treat the weights as overridable inputs (no constant folding, and some
 * refuse to fold BatchNormalization). From IR 4 an initializer need not be
 * an input: the listing is dropped and the IR version raised to 4 when it
 * was lower. Inputs that are not initializers stay, in their order.
 */
#include "converters/edit.h"

ot_status ot_convert_clean_inputs(ot_graph *g, const ot_convert_opts *opts, ot_err *err)
{
    (void)opts;
    (void)err;
    int32_t k = 0, dropped = 0;
    for (int32_t i = 0; i < g->n_inputs; i++) {
        ot_value *v = &g->values[g->inputs[i].value];
        if (v->flags & OT_VAL_INIT) {
            v->flags &= ~(uint32_t)OT_VAL_INPUT;
            dropped++;
            continue;
        }
        g->inputs[k++] = g->inputs[i];
    }
    g->n_inputs = k;
    if (dropped && g->ir_version < 4)
        g->ir_version = 4;
    ot_log(OT_LOG_INFO, "--clean-inputs: %d initializers are no longer listed as graph inputs",
           (int)dropped);
    return OT_OK;
}
