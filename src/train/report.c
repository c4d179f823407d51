/*
 * report.c: the per-epoch CSV log and the SVG plot of a training run (see
 * report.h). Both files are built in memory and written through a temporary
 * file in the destination folder that is renamed over the target, so a
 * reader never sees half a file.
 *
 * The plot is hand-written SVG 1.1 (W3C Recommendation, 2011): rect, line,
 * polyline, circle and text elements only, presentation attributes instead
 * of CSS, no fonts or images to fetch.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/file.h"
#include "train/report.h"

struct ot_train_log {
    char *path; /* NULL: rows in memory only */
    ot_train_log_row *rows;
    int n, cap;
};

/* ------------------------------------------------------------ text buffer */

typedef struct strbuf {
    char *p;
    size_t len, cap;
    bool oom;
} strbuf;

static void sb_printf(strbuf *b, const char *fmt, ...) OT_PRINTF(2, 3);

static void sb_printf(strbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int k = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = true;
            return;
        }
        if (b->p && (size_t)k < room) {
            b->len += (size_t)k;
            return;
        }
        size_t want = b->len + (size_t)k + 1, cap = b->cap ? b->cap : 4096;
        while (cap < want)
            cap *= 2;
        char *q = ot_realloc(b->p, cap);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

/* Formats v as %.<prec>g (conv 'g') or %.<prec>f (conv 'f'); non-finite
   values as nan, inf or -inf, whatever the sign of a NaN. */
static const char *fmt_num(char *buf, size_t size, char conv, int prec, double v)
{
    if (isnan(v))
        snprintf(buf, size, "nan");
    else if (isinf(v))
        snprintf(buf, size, "%s", v > 0 ? "inf" : "-inf");
    else if (conv == 'f')
        snprintf(buf, size, "%.*f", prec, v);
    else
        snprintf(buf, size, "%.*g", prec, v);
    return buf;
}

/* ------------------------------------------------------------------- CSV */

ot_status ot_train_log_write_csv(const char *path, const ot_train_log_row *rows, int n,
                                 ot_err *err)
{
    if (n < 0 || (n > 0 && !rows))
        return ot_err_set(err, OT_ERR_ARG, "%s: invalid row count %d", path, n);
    strbuf b = { 0 };
    sb_printf(&b, "epoch,loss,accuracy,val_loss,val_accuracy,lr,images_per_s,seconds\n");
    for (int i = 0; i < n; i++) {
        const ot_train_log_row *r = &rows[i];
        char loss[32], acc[32], vl[32] = "", va[32] = "", lr[32], ips[48], sec[48];
        fmt_num(loss, sizeof loss, 'g', 6, r->loss);
        fmt_num(acc, sizeof acc, 'g', 6, r->accuracy);
        if (!isnan(r->val_loss))
            fmt_num(vl, sizeof vl, 'g', 6, r->val_loss);
        if (!isnan(r->val_accuracy))
            fmt_num(va, sizeof va, 'g', 6, r->val_accuracy);
        fmt_num(lr, sizeof lr, 'g', 6, r->lr);
        ips[0] = sec[0] = '\0'; /* NaN: not known (an epoch a resumed run restored) */
        if (!isnan(r->images_per_s))
            fmt_num(ips, sizeof ips, 'f', 1, r->images_per_s);
        if (!isnan(r->seconds))
            fmt_num(sec, sizeof sec, 'f', 3, r->seconds);
        sb_printf(&b, "%d,%s,%s,%s,%s,%s,%s,%s\n", r->epoch, loss, acc, vl, va, lr, ips, sec);
    }
    ot_status st = b.oom ? ot_err_set(err, OT_ERR_NOMEM, "out of memory")
                         : ot_atomic_write(path, b.p, b.len, err);
    ot_free(b.p);
    return st;
}

ot_status ot_train_log_new(const char *path, ot_train_log **out, ot_err *err)
{
    ot_status st = OT_OK;
    *out = NULL;
    ot_train_log *log = ot_calloc(1, sizeof *log);
    if (!log)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    if (path) {
        log->path = ot_strdup(path);
        if (!log->path)
            OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
        /* fail now, not after the first epoch, when the file cannot be written */
        ot_atomic_file af;
        OT_TRY(ot_atomic_open(&af, path, err));
        ot_atomic_abort(&af);
    }
    *out = log;
    log = NULL;
done:
    ot_train_log_free(log);
    return st;
}

void ot_train_log_free(ot_train_log *log)
{
    if (!log)
        return;
    ot_free(log->path);
    ot_free(log->rows);
    ot_free(log);
}

ot_status ot_train_log_add(ot_train_log *log, const ot_train_log_row *row, ot_err *err)
{
    if (log->n > 0 && log->rows[log->n - 1].epoch == row->epoch) {
        log->rows[log->n - 1] = *row;
    } else {
        if (log->n == log->cap) {
            int cap = log->cap ? log->cap * 2 : 16;
            ot_train_log_row *r = ot_realloc(log->rows, sizeof *r * (size_t)cap);
            if (!r)
                return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
            log->rows = r;
            log->cap = cap;
        }
        log->rows[log->n++] = *row;
    }
    if (!log->path)
        return OT_OK;
    return ot_train_log_write_csv(log->path, log->rows, log->n, err);
}

ot_status ot_train_log_epoch(ot_train_log *log, const ot_train_epoch *e, double val_loss,
                             double val_acc, ot_err *err)
{
    ot_train_log_row r = {
        .epoch = e->epoch,
        .loss = e->loss,
        .accuracy = e->accuracy,
        .val_loss = val_loss,
        .val_accuracy = val_acc,
        .lr = e->lr,
        .images_per_s = e->images_per_s,
        .seconds = e->seconds,
    };
    return ot_train_log_add(log, &r, err);
}

const ot_train_log_row *ot_train_log_rows(const ot_train_log *log, int *n)
{
    *n = log->n;
    return log->rows;
}

/* ------------------------------------------------------------------- SVG */

/* Canvas and panel geometry, in SVG user units (pixels). */
#define SVG_W 720
#define SVG_H 580
#define PLOT_X0 72.0
#define PLOT_X1 700.0
#define PANEL_H 200.0
#define LOSS_Y0 40.0   /* top of the loss panel's plot area     */
#define ACC_Y0 320.0   /* top of the accuracy panel's plot area */
#define COLOR_TRAIN "#1f77b4"
#define COLOR_VAL "#d62728"

/* 1, 2 or 5 times a power of ten, at least x (x > 0). */
static double nice_step(double x)
{
    double p = pow(10.0, floor(log10(x)));
    double m = x / p;
    return (m <= 1.0 ? 1.0 : m <= 2.0 ? 2.0 : m <= 5.0 ? 5.0 : 10.0) * p;
}

/* Decimals that print every multiple of `step` exactly enough. */
static int step_decimals(double step)
{
    int d = (int)-floor(log10(step) + 1e-9);
    return d < 0 ? 0 : d > 9 ? 9 : d;
}

typedef struct axis {
    double lo, hi;   /* value range, already widened to whole ticks  */
    double step;     /* between ticks                                */
    int decimals;    /* of the tick labels                           */
} axis;

/* An axis over [lo, hi] with about `ticks` intervals, its ends on ticks. */
static axis make_axis(double lo, double hi, int ticks, bool integer)
{
    if (!isfinite(hi - lo) || fabs(lo) > 1e12 || fabs(hi) > 1e12) { /* absurd: clamp */
        lo = lo < -1e12 ? -1e12 : lo > 1e12 ? 1e12 : lo;
        hi = hi < -1e12 ? -1e12 : hi > 1e12 ? 1e12 : hi;
    }
    if (!(hi > lo))
        hi = lo + 1.0;
    axis a;
    a.step = nice_step((hi - lo) / ticks);
    if (integer && a.step < 1.0)
        a.step = 1.0;
    a.lo = floor(lo / a.step + 1e-9) * a.step;
    a.hi = ceil(hi / a.step - 1e-9) * a.step;
    a.decimals = integer ? 0 : step_decimals(a.step);
    return a;
}

/* Which column a curve plots. */
typedef double (*row_field)(const ot_train_log_row *r);
static double f_loss(const ot_train_log_row *r) { return r->loss; }
static double f_val_loss(const ot_train_log_row *r) { return r->val_loss; }
static double f_acc(const ot_train_log_row *r) { return r->accuracy; }
static double f_val_acc(const ot_train_log_row *r) { return r->val_accuracy; }

/* Range of the finite values of two fields; false when there is none. */
static bool field_range(const ot_train_log_row *rows, int n, row_field a, row_field b,
                        double *lo, double *hi)
{
    bool any = false;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 2; k++) {
            double v = (k ? b : a)(&rows[i]);
            if (!isfinite(v))
                continue;
            if (!any || v < *lo)
                *lo = v;
            if (!any || v > *hi)
                *hi = v;
            any = true;
        }
    return any;
}

static bool has_finite(const ot_train_log_row *rows, int n, row_field f)
{
    for (int i = 0; i < n; i++)
        if (isfinite(f(&rows[i])))
            return true;
    return false;
}

static double map(double v, double lo, double hi, double p0, double p1)
{
    return p0 + (v - lo) / (hi - lo) * (p1 - p0);
}

static double tick_value(const axis *a, int k)
{
    double v = a->lo + k * a->step;
    return fabs(v) < a->step * 1e-9 ? 0.0 : v; /* no "-0.0" labels */
}

static int tick_count(const axis *a)
{
    return (int)floor((a->hi - a->lo) / a->step + 0.5) + 1;
}

/* One curve: a polyline through the finite points, and a dot on each when
   there are few enough to tell apart. */
static void svg_curve(strbuf *b, const char *id, const char *color, bool dashed,
                      const ot_train_log_row *rows, int n, row_field f, const axis *ax,
                      const axis *ay, double y0)
{
    sb_printf(b, "<polyline id=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"",
              id, color, dashed ? " stroke-dasharray=\"6,4\"" : "");
    bool first = true;
    for (int i = 0; i < n; i++) {
        double v = f(&rows[i]);
        if (!isfinite(v))
            continue;
        double px = map(rows[i].epoch, ax->lo, ax->hi, PLOT_X0, PLOT_X1);
        double py = map(v, ay->lo, ay->hi, y0 + PANEL_H, y0);
        sb_printf(b, "%s%.2f,%.2f", first ? "" : " ", px, py);
        first = false;
    }
    sb_printf(b, "\"/>\n");
    if (n > 60)
        return;
    for (int i = 0; i < n; i++) {
        double v = f(&rows[i]);
        if (!isfinite(v))
            continue;
        double px = map(rows[i].epoch, ax->lo, ax->hi, PLOT_X0, PLOT_X1);
        double py = map(v, ay->lo, ay->hi, y0 + PANEL_H, y0);
        sb_printf(b, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3\" fill=\"%s\"/>\n", px, py, color);
    }
}

/* One panel: frame, grid, ticks and labels on both axes, the curves, legend. */
static void svg_panel(strbuf *b, const char *name, const char *ylabel, double y0,
                      const ot_train_log_row *rows, int n, row_field train, row_field val,
                      const axis *ax, const axis *ay)
{
    double y1 = y0 + PANEL_H;
    sb_printf(b, "<g id=\"%s-panel\">\n", name);
    sb_printf(b, "<text x=\"%.2f\" y=\"%.2f\" font-size=\"14\" font-weight=\"bold\">%s</text>\n",
              PLOT_X0, y0 - 12, ylabel);
    /* horizontal grid lines and y tick labels */
    int ny = tick_count(ay);
    for (int k = 0; k < ny; k++) {
        double v = tick_value(ay, k), py = map(v, ay->lo, ay->hi, y1, y0);
        sb_printf(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#dddddd\"/>\n",
                  PLOT_X0, py, PLOT_X1, py);
        sb_printf(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"black\"/>\n",
                  PLOT_X0 - 5, py, PLOT_X0, py);
        sb_printf(b, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\">%.*f</text>\n",
                  PLOT_X0 - 8, py + 4, ay->decimals, v);
    }
    /* x ticks and labels */
    int nx = tick_count(ax);
    for (int k = 0; k < nx; k++) {
        double v = tick_value(ax, k), px = map(v, ax->lo, ax->hi, PLOT_X0, PLOT_X1);
        sb_printf(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"black\"/>\n",
                  px, y1, px, y1 + 5);
        sb_printf(b, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">%.*f</text>\n", px,
                  y1 + 18, ax->decimals, v);
    }
    sb_printf(b, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"none\" "
                 "stroke=\"black\"/>\n",
              PLOT_X0, y0, PLOT_X1 - PLOT_X0, PANEL_H);
    sb_printf(b, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">epoch</text>\n",
              (PLOT_X0 + PLOT_X1) / 2, y1 + 34);
    sb_printf(b, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" "
                 "transform=\"rotate(-90 %.2f %.2f)\">%s</text>\n",
              PLOT_X0 - 50, (y0 + y1) / 2, PLOT_X0 - 50, (y0 + y1) / 2, name);

    char id[64];
    bool has_val = has_finite(rows, n, val);
    snprintf(id, sizeof id, "%s-train", name);
    svg_curve(b, id, COLOR_TRAIN, false, rows, n, train, ax, ay, y0);
    if (has_val) {
        snprintf(id, sizeof id, "%s-val", name);
        svg_curve(b, id, COLOR_VAL, true, rows, n, val, ax, ay, y0);
    }
    /* legend, above the plot area's right end */
    double lx = PLOT_X1 - (has_val ? 190 : 80), ly = y0 - 16;
    sb_printf(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" "
                 "stroke-width=\"2\"/>\n",
              lx, ly, lx + 24, ly, COLOR_TRAIN);
    sb_printf(b, "<text x=\"%.2f\" y=\"%.2f\">train</text>\n", lx + 30, ly + 4);
    if (has_val) {
        lx += 80;
        sb_printf(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" "
                     "stroke-width=\"2\" stroke-dasharray=\"6,4\"/>\n",
                  lx, ly, lx + 24, ly, COLOR_VAL);
        sb_printf(b, "<text x=\"%.2f\" y=\"%.2f\">validation</text>\n", lx + 30, ly + 4);
    }
    sb_printf(b, "</g>\n");
}

ot_status ot_train_plot_svg(const char *path, const ot_train_log_row *rows, int n, ot_err *err)
{
    if (n < 1 || !rows)
        return ot_err_set(err, OT_ERR_ARG, "%s: no epochs to plot", path);
    double elo = rows[0].epoch, ehi = rows[0].epoch;
    for (int i = 1; i < n; i++) {
        elo = rows[i].epoch < elo ? rows[i].epoch : elo;
        ehi = rows[i].epoch > ehi ? rows[i].epoch : ehi;
    }
    if (ehi == elo) { /* one epoch: centre it */
        elo -= 1;
        ehi += 1;
    }
    axis ax = make_axis(elo, ehi, 8, true);

    double lo = 0, hi = 1;
    if (!field_range(rows, n, f_loss, f_val_loss, &lo, &hi)) {
        lo = 0;
        hi = 1;
    }
    axis al = make_axis(lo < 0 ? lo : 0, hi, 5, false); /* loss from 0 */
    if (!field_range(rows, n, f_acc, f_val_acc, &lo, &hi)) {
        lo = 0;
        hi = 1;
    }
    axis aa = make_axis(lo < 0 ? lo : 0, hi > 1 ? hi : 1, 5, false); /* accuracy 0 .. 1 */

    strbuf b = { 0 };
    sb_printf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n");
    sb_printf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" "
                  "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" "
                  "font-size=\"12\">\n",
              SVG_W, SVG_H, SVG_W, SVG_H);
    sb_printf(&b, "<title>onnxtrain training curves</title>\n");
    sb_printf(&b, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"white\"/>\n", SVG_W,
              SVG_H);
    svg_panel(&b, "loss", "Loss", LOSS_Y0, rows, n, f_loss, f_val_loss, &ax, &al);
    svg_panel(&b, "accuracy", "Accuracy (top-1)", ACC_Y0, rows, n, f_acc, f_val_acc, &ax, &aa);
    sb_printf(&b, "</svg>\n");
    ot_status st = b.oom ? ot_err_set(err, OT_ERR_NOMEM, "out of memory")
                         : ot_atomic_write(path, b.p, b.len, err);
    ot_free(b.p);
    return st;
}
