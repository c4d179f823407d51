/*
 * calibrate.h: measuring the ranges of a model's activations on data, for
 * the precision converters (converters/quant.h).
 *
 * The model runs through the executor on batches of the user's images (the
 * data loaders and preprocessing of ot_evaluate); every value to measure is
 * an output of the run, and each batch updates one streaming histogram of
 * |x| per value and its min and max. A histogram has a fixed number of
 * bins over [0, range); when a batch holds a larger |x|, the range doubles
 * (as often as needed) and pairs of bins merge, so memory is set by the
 * number of values, never by the number of images: the histograms of all
 * values together stay under OT_CALIB_MAX_HIST_BYTES.
 */
#ifndef OT_TRAIN_CALIBRATE_H
#define OT_TRAIN_CALIBRATE_H

#include "converters/quant.h"
#include "data/data.h"
#include "exec/exec.h"

#define OT_CALIB_MAX_HIST_BYTES (48u << 20)
#define OT_CALIB_BINS 2048

typedef enum {
    OT_CALIB_MINMAX = 0, /* the largest |x| seen                                  */
    OT_CALIB_PERCENTILE, /* the |x| below which `percentile` % of the values fall */
    OT_CALIB_ENTROPY,    /* the threshold whose 128-level quantisation loses the
                            least information (KL divergence, as TensorRT does)   */
} ot_calib_method;

typedef struct ot_calib_opts {
    ot_calib_method method;
    double percentile;   /* 0: 99.99                                            */
    int64_t max_images;  /* 0: every image; else that many, spread evenly      */
    int batch_size;      /* 0: 8                                               */
    ot_exec_opts exec;
} ot_calib_opts;

typedef struct ot_calib_stats {
    int64_t n_images;
    int n_values;
    int bins;            /* per histogram                                       */
    size_t hist_bytes;   /* the histograms together                             */
    size_t batch_bytes;  /* one batch: input, the executor's arena, the outputs */
    uint64_t seen_bytes; /* the activations measured, all batches together: what
                            keeping them would take                           */
} ot_calib_stats;

/*
 * Runs `model` (not changed) on `ds` with transform `t` and fills `ranges`
 * (initialised here for model->n_values; the caller finis it) for every
 * value marked in want[0..model->n_values): the graph's image input or node
 * outputs of float dtype. Errors: OT_ERR_ARG (no image input, channels that
 * differ, nothing to measure, an empty data set), those of the executor
 * and the data loaders, OT_ERR_NOMEM.
 */
ot_status ot_calibrate(const ot_graph *model, const bool *want, const ot_dataset *ds,
                       const ot_data_transform *t, const ot_calib_opts *o,
                       ot_calib_ranges *ranges, ot_calib_stats *stats, ot_err *err);

/* The threshold a method picks from one histogram of |x| (bins counts over
   [0, range)), and the exact max |x| (minmax). Exposed for tests. */
float ot_calib_threshold(const uint64_t *hist, int bins, float range, float amax,
                         ot_calib_method m, double percentile);

#endif
