/*
 * quant.h: the precision converters (fp16.c, qdq.c) and the edits they share
 * (quant_edit.c).
 *
 * Both take an imported model graph and change it in place into one that
 * deployment runtimes load: float16 weights and compute with float32 islands,
 * or int8 QDQ (QuantizeLinear/DequantizeLinear pairs). They never run the
 * model: the ranges of activations come from calibration
 * (src/train/calibrate.h), which runs it and hands them over as an
 * ot_calib_ranges indexed by value id.
 */
#ifndef OT_CONVERTERS_QUANT_H
#define OT_CONVERTERS_QUANT_H

#include "graph/graph.h"

/* Measured ranges of activations: for value id v < n_values, amax[v] is the
   clipping threshold of |x| the calibration method chose (NaN: not
   measured), lo[v]/hi[v] the smallest and largest value seen. Owned by
   whoever made it (ot_calib_ranges_fini). */
typedef struct ot_calib_ranges {
    int32_t n_values;
    float *amax, *lo, *hi;
} ot_calib_ranges;

/* Allocates ranges for n values, all NaN. Errors: OT_ERR_NOMEM. */
ot_status ot_calib_ranges_init(ot_calib_ranges *r, int32_t n_values, ot_err *err);
void ot_calib_ranges_fini(ot_calib_ranges *r);

/* The largest finite float16 magnitude. */
#define OT_FP16_MAX 65504.0f

typedef struct ot_fp16_opts {
    bool no_keep_io_types;        /* graph inputs and outputs become float16 too  */
    const ot_calib_ranges *ranges; /* optional: values above OT_FP16_MAX stay float32 */
    /* Reductions over more than this many elements per output stay float32
       (0: 4096). */
    int64_t max_reduce;
} ot_fp16_opts;

/* What a conversion did, for the report. */
typedef struct ot_quant_report {
    int n_converted;  /* fp16: nodes in float16; int8: nodes with int8 weights  */
    int n_kept;       /* fp16: nodes kept in float32; int8: Q/DQ pairs added    */
    int n_casts;      /* fp16: Cast nodes added                                 */
    int n_range_kept; /* fp16: nodes kept float32 for a calibrated range        */
} ot_quant_report;

/*
 * Converts the model to float16: float initializers that only float16 nodes
 * read become float16, float node outputs float16, with Casts where a value
 * crosses between float16 and float32 (one Cast per value and direction,
 * never a Cast of a Cast). Kept in float32: Softmax, LogSoftmax,
 * BatchNormalization and the other normalisations, reductions over more than
 * max_reduce elements, ops whose float operands must stay float32 or that the
 * table does not know, nodes reading a float initializer beyond float16, and
 * (with ranges) nodes reading or writing a value whose measured range
 * exceeds float16. Errors: OT_ERR_UNSUPPORTED (a model that already
 * holds float16 initializers), OT_ERR_NOMEM.
 */
ot_status ot_fp16_convert(ot_graph *g, const ot_fp16_opts *o, ot_quant_report *rep,
                          ot_err *err);

/* Marks in want[0..g->n_values) the activations that ot_int8_convert puts
   Q/DQ pairs on: what calibration must measure. */
void ot_int8_activations(const ot_graph *g, bool *want);

/* The axis of node n's weight (input 1) that holds its output channels when
   ot_int8_convert quantises that weight (a float initializer of a Conv, Gemm
   or 2-D MatMul); -1 otherwise. */
int ot_int8_weight_axis(const ot_graph *g, const ot_node *n);

/*
 * Static int8 quantisation in the QDQ format (opset >= 13): the weights of
 * Conv, Gemm and MatMul become int8 initializers (symmetric, one scale per
 * output channel, zero point 0) feeding DequantizeLinear; their biases int32
 * (scale = input scale x weight scale); every activation ot_int8_activations
 * marks gets a QuantizeLinear/DequantizeLinear pair, per tensor, symmetric
 * int8, scale amax/127 from `ranges`. Errors: OT_ERR_UNSUPPORTED (opset below
 * 13, naming it), OT_ERR_ARG (a marked activation without a range, named),
 * OT_ERR_NOMEM.
 */
ot_status ot_int8_convert(ot_graph *g, const ot_calib_ranges *ranges, ot_quant_report *rep,
                          ot_err *err);

/* ------------------------------------------------ edits (quant_edit.c) */

/* Adds an initializer of any numeric dtype (a copy of `data`; the graph must
   own its initializer bytes, not be a clone). */
ot_status ot_quant_add_const(ot_graph *g, const char *hint, ot_dtype dtype, const int64_t *dims,
                             int ndim, const void *data, int32_t *id, ot_err *err);

/* Adds an activation value named after `hint` with src's shape and `dtype`. */
ot_status ot_quant_add_like(ot_graph *g, const char *hint, int32_t src, ot_dtype dtype,
                            int32_t *id, ot_err *err);

/* Number of node inputs that read value v. */
int ot_quant_n_readers(const ot_graph *g, int32_t v);

/* Drops the initializers marked in cand[0..g->n_values) that no node reads
   and that are not graph outputs: from the initializer list, the inputs (old
   style) and value_info. */
void ot_quant_drop_inits(ot_graph *g, const bool *cand);

#endif
