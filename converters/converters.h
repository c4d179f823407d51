/*
 * converters.h: model-to-model conversions for deployment. Each converter
 * takes a graph and the options, edits the graph in place and leaves it
 * sorted, with shapes inferred, ready for ot_model_export. They use the
 * graph, the op table and the passes only: never the executor or the
 * trainer. Work that runs the model (calibration) sits above them and hands
 * its results in through the options.
 *
 * One file per converter:
 *   converters/opset.c         --opset N: the op adapters, 7 .. 21 both ways
 *   converters/clean_inputs.c  --clean-inputs: initializers listed as inputs
 *   converters/fold_bn.c       --fold-bn: BatchNormalization into Conv/Gemm
 *   converters/simplify.c      --simplify: constants, no-ops, dead code
 *   converters/convert.c       the fixed order (ot_convert) and the graph
 *                              edits the converters share (edit.h)
 *
 * Conventions:
 *   - a failure returns an ot_status with a one-line message in err that
 *     names the node ("node 'x' (Op): ...") and the reason; the graph may
 *     then be half converted and must not be exported;
 *   - what a converter keeps on purpose (a BatchNormalization it cannot fold,
 *     an op of another domain it carries unchanged) is a warning (ot_log);
 *     what it did is an info line;
 *   - a converter that has nothing to do leaves the graph exactly as it was,
 *     so that the exporter writes the unchanged parts as they were read.
 */
#ifndef OT_CONVERTERS_H
#define OT_CONVERTERS_H

#include "graph/graph.h"

/* The opsets --opset accepts. */
#define OT_CONVERT_OPSET_MIN 7
#define OT_CONVERT_OPSET_MAX 21

/* Calibrated value ranges for int8 (filled by calibration, which runs the
   model; declared where it is implemented). */
struct ot_calib_ranges;

/* What to convert. Zeroed: nothing. The CLI's convert, finetune and export
   fill it from the same option rows (OT_CLI_CONVERT_ROWS in src/cli/cli.h). */
typedef struct ot_convert_opts {
    int opset;           /* --opset N: target default-domain opset; 0 keeps it  */
    bool clean_inputs;   /* --clean-inputs: initializers no longer graph inputs */
    bool fold_bn;        /* --fold-bn                                           */
    bool simplify;       /* --simplify                                          */
    /* float16 (converters/fp16.c) */
    bool fp16;             /* --fp16                                            */
    bool no_keep_io_types; /* --no-keep-io-types: inputs and outputs in fp16 too */
    bool keep_io_types;    /* --keep-io-types: the default, said explicitly     */
    /* int8 QDQ (converters/qdq.c) */
    bool int8;                            /* --int8                          */
    const struct ot_calib_ranges *ranges; /* measured by calibration          */
    /* Calibration, which the command runs between the converters above and
       fp16/int8 (it runs the model: src/train/calibrate.h); the converters
       read only `ranges`. */
    const char *calib_data;  /* --calib-data DIR: images (its training split)  */
    int64_t calib_images;    /* --calib-images N: at most N images; 0: 1024    */
    unsigned int calib_method; /* --calib-method: 0 minmax, 1 percentile
                                  (99.99), 2 entropy (ot_calib_method)       */
    /* the calibration images' preprocessing (image size, normalisation)
       and where the model runs; NULL: the model's metadata, the CPU */
    const struct ot_evaluate_opts *calib_prep;
} ot_convert_opts;

/* A converter: edits g as opts ask. */
typedef ot_status (*ot_converter_fn)(ot_graph *g, const ot_convert_opts *opts, ot_err *err);

/* The converters in the order ot_convert runs them: opset, clean-inputs,
   fold-bn, simplify, fp16, int8. `wanted` says whether the options ask for
   it. */
typedef struct ot_converter {
    const char *name; /* the option that asks for it, without dashes */
    bool (*wanted)(const ot_convert_opts *opts);
    ot_converter_fn run;
} ot_converter;

extern const ot_converter ot_converters[];
extern const int ot_n_converters;

/* Whether the options ask for any conversion. */
bool ot_convert_wanted(const ot_convert_opts *opts);

/* Runs every converter the options ask for, in the fixed order above.
   Errors: the first converter's failure (its message names the node). */
ot_status ot_convert(ot_graph *g, const ot_convert_opts *opts, ot_err *err);

/* The converters, one per file. */
ot_status ot_convert_opset(ot_graph *g, const ot_convert_opts *opts, ot_err *err);
ot_status ot_convert_clean_inputs(ot_graph *g, const ot_convert_opts *opts, ot_err *err);
ot_status ot_convert_fold_bn(ot_graph *g, const ot_convert_opts *opts, ot_err *err);
/* converters/fp16.c, converters/qdq.c (see converters/quant.h) */
ot_status ot_convert_fp16(ot_graph *g, const ot_convert_opts *opts, ot_err *err);
ot_status ot_convert_int8(ot_graph *g, const ot_convert_opts *opts, ot_err *err);
ot_status ot_convert_simplify(ot_graph *g, const ot_convert_opts *opts, ot_err *err);

/* Whether the opset converter has the history (and adapters) of a
   default-domain op; every op of the op table must have one (test_convert). */
bool ot_convert_opset_knows(const char *op_type);

#endif
