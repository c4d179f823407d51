/*
 * qat.h: quantisation-aware training (finetune --qat).
 *
 * ot_qat_insert puts fake quantisation into a model graph where the int8
 * export (converters/qdq.c) quantises: a FakeQuant with the calibrated scale
 * (amax / 127) after every activation ot_int8_activations marks, and a
 * dynamic per-channel FakeQuant on every weight ot_int8_weight_axis names, so
 * training sees the rounding the exported model will do; gradients pass
 * straight through (src/ops/quant_ops.c). ot_qat_strip takes them out again,
 * leaving the trained float weights for the export.
 */
#ifndef OT_TRAIN_QAT_H
#define OT_TRAIN_QAT_H

#include "converters/quant.h"

/* Inserts the FakeQuant nodes (re-sorted, shapes inferred); *n_inserted
   counts them. Errors: OT_ERR_ARG (a marked activation without a range),
   OT_ERR_NOMEM. */
ot_status ot_qat_insert(ot_graph *g, const ot_calib_ranges *ranges, int *n_inserted,
                        ot_err *err);

/* Removes every FakeQuant node and the scales only they read; readers of a
   FakeQuant's output read its input again. Errors: OT_ERR_NOMEM. */
ot_status ot_qat_strip(ot_graph *g, ot_err *err);

#endif
