/*
 * report.h: what a training run leaves for people to read afterwards: a CSV
 * log with one row per epoch, and an SVG plot of the loss and accuracy
 * curves.
 *
 * The CSV file is rewritten whole at every epoch end, to a temporary name
 * beside it that is then renamed over it, so an interrupted run leaves a
 * complete file of the epochs it finished. Columns:
 *
 *   epoch,loss,accuracy,val_loss,val_accuracy,lr,images_per_s,seconds
 *
 * epoch is an integer; loss, accuracy, val_loss, val_accuracy and lr are
 * written with %.6g, images_per_s with %.1f and seconds (of that epoch) with
 * %.3f. val_loss and val_accuracy are empty when there was no validation;
 * images_per_s and seconds are empty when NaN (not known: the epochs a
 * resumed run restored from its checkpoint); a non-finite value elsewhere is
 * written as nan, inf or -inf.
 *
 * The plot is plain SVG 1.1 with no scripts, styles sheets or external
 * resources: two panels, loss above and accuracy below, each with the
 * training curve (solid) and the validation curve (dashed) when there is
 * one, tick marks, tick labels, axis titles and a legend. Numbers are printed
 * with fixed precision, so the same rows give the same bytes.
 *
 * Not here: the progress lines on stderr (src/cli), TensorBoard formats.
 */
#ifndef OT_TRAIN_REPORT_H
#define OT_TRAIN_REPORT_H

#include "core/core.h"
#include "train/trainer.h"

/* One epoch. NaN in val_loss or val_accuracy means there was no validation. */
typedef struct ot_train_log_row {
    int epoch;           /* 1-based                                     */
    double loss;         /* mean training loss of the epoch             */
    double accuracy;     /* training top-1, a fraction                  */
    double val_loss;     /* NaN: absent                                 */
    double val_accuracy; /* NaN: absent                                 */
    double lr;           /* learning rate at the epoch's last step      */
    double images_per_s;
    double seconds;      /* wall time of the epoch                      */
} ot_train_log_row;

/* A log of epoch rows, optionally backed by a CSV file. */
typedef struct ot_train_log ot_train_log;

/*
 * Starts a log. With a path, checks that a file can be created in the path's
 * folder (by creating and removing a temporary file there) so that a bad
 * --log fails before training starts; the file itself first appears at the
 * first ot_train_log_add. A NULL path keeps the rows in memory only (for a
 * plot without a log). On success *out is owned by the caller; release it
 * with ot_train_log_free. Errors: OT_ERR_IO naming the path, OT_ERR_NOMEM.
 */
ot_status ot_train_log_new(const char *path, ot_train_log **out, ot_err *err);

/* Releases the log; the file stays. NULL does nothing. */
void ot_train_log_free(ot_train_log *log);

/*
 * Records a row and rewrites the file atomically. A row whose epoch equals
 * the last row's replaces it, so a caller may log the training numbers first
 * and the validation numbers once they are known. Errors: OT_ERR_IO naming
 * the path (the previous file, if any, is left as it was), OT_ERR_NOMEM.
 */
ot_status ot_train_log_add(ot_train_log *log, const ot_train_log_row *row, ot_err *err);

/* ot_train_log_add of the row made from a trainer progress report (call it
   when `end` is true) and the validation numbers, NaN when absent. */
ot_status ot_train_log_epoch(ot_train_log *log, const ot_train_epoch *e, double val_loss,
                             double val_acc, ot_err *err);

/* The rows so far, borrowed until the next add; *n gets their count. */
const ot_train_log_row *ot_train_log_rows(const ot_train_log *log, int *n);

/*
 * Writes rows[0 .. n-1] as the CSV above (header included; n may be 0) to
 * `path` through a temporary file and a rename. Errors: OT_ERR_IO naming
 * the path, OT_ERR_NOMEM, OT_ERR_ARG (n < 0).
 */
ot_status ot_train_log_write_csv(const char *path, const ot_train_log_row *rows, int n,
                                 ot_err *err);

/*
 * Writes the SVG plot of rows[0 .. n-1] to `path` through a temporary file
 * and a rename. The x axis spans the rows' epochs; non-finite values are
 * left out of the curves. Errors: OT_ERR_ARG (n < 1), OT_ERR_IO naming the
 * path, OT_ERR_NOMEM.
 */
ot_status ot_train_plot_svg(const char *path, const ot_train_log_row *rows, int n, ot_err *err);

#endif
