/*
 * calibrate.c: streaming histograms of activations (see calibrate.h).
 */
#include <math.h>
#include <string.h>

#include "train/calibrate.h"
#include "train/layout.h"
#include "train/train_graph.h"
#include "train/trainer.h"

typedef struct calib_hist {
    int32_t value;
    float range;   /* upper edge of the last bin; 0 until a non-zero |x| */
    float amax, lo, hi;
    uint64_t *count;
} calib_hist;

/* Doubles the range until it holds m, merging pairs of bins each time. */
static void grow(calib_hist *h, int bins, float m)
{
    if (h->range == 0) {
        h->range = m;
        return;
    }
    while (h->range < m) {
        for (int j = 0; j < bins / 2; j++)
            h->count[j] = h->count[2 * j] + h->count[2 * j + 1];
        memset(h->count + bins / 2, 0, sizeof *h->count * (size_t)(bins / 2));
        h->range *= 2;
    }
}

static void add_tensor(calib_hist *h, int bins, const float *x, int64_t n)
{
    float m = 0, lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        if (!isfinite(v))
            continue;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
        float a = fabsf(v);
        m = a > m ? a : m;
    }
    if (lo <= hi) {
        h->lo = isnan(h->lo) || lo < h->lo ? lo : h->lo;
        h->hi = isnan(h->hi) || hi > h->hi ? hi : h->hi;
    }
    h->amax = m > h->amax ? m : h->amax;
    if (m == 0 && h->range == 0)
        return; /* all zeros so far: nothing to bin against yet */
    if (m > h->range)
        grow(h, bins, m);
    float k = (float)bins / h->range;
    for (int64_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        if (!isfinite(a))
            continue;
        int b = (int)(a * k);
        h->count[b < bins ? b : bins - 1]++;
    }
}

/* KL(P || Q) of two unnormalised distributions over n bins. */
static double kl(const double *p, const double *q, int n)
{
    double sp = 0, sq = 0, d = 0;
    for (int i = 0; i < n; i++) {
        sp += p[i];
        sq += q[i];
    }
    if (sp <= 0 || sq <= 0)
        return INFINITY;
    for (int i = 0; i < n; i++) {
        if (p[i] <= 0)
            continue;
        double pi = p[i] / sp, qi = q[i] / sq;
        d += pi * log(pi / (qi > 0 ? qi : 1e-12));
    }
    return d;
}

/* The TensorRT entropy calibration: for each candidate threshold (bin edge
   i, from 128 up), P is the histogram below it with the mass above folded
   into its last bin, Q the same bins quantised to 128 levels and spread
   back over the non-empty bins; the threshold of least KL(P || Q) wins.
   The zero bin counts as its neighbour does: after a Relu it holds half the
   values, which would otherwise pull the threshold down to nothing. */
static float entropy_threshold(const uint64_t *counts, int bins, float range)
{
    enum { LEVELS = 128 };
    double p[OT_CALIB_BINS], q[OT_CALIB_BINS];
    uint64_t hist[OT_CALIB_BINS];
    memcpy(hist, counts, sizeof *hist * (size_t)bins);
    hist[0] = hist[1];
    double total_above = 0;
    for (int j = 0; j < bins; j++)
        total_above += (double)hist[j];
    if (bins <= LEVELS || total_above <= 0)
        return range;
    double best = INFINITY;
    int best_i = bins;
    double above = total_above;
    for (int j = 0; j < LEVELS; j++)
        above -= (double)hist[j];
    for (int i = LEVELS; i <= bins; i++) {
        if (i > LEVELS)
            above -= (double)hist[i - 1];
        if ((i % 8) && i != bins)
            continue;
        for (int j = 0; j < i; j++)
            p[j] = (double)hist[j];
        p[i - 1] += above;
        for (int l = 0; l < LEVELS; l++) {
            int s = (int)((int64_t)l * i / LEVELS), e = (int)((int64_t)(l + 1) * i / LEVELS);
            double sum = 0;
            int nz = 0;
            for (int j = s; j < e; j++) {
                sum += (double)hist[j];
                nz += hist[j] != 0;
            }
            for (int j = s; j < e; j++)
                q[j] = hist[j] && nz ? sum / nz : 0;
        }
        double d = kl(p, q, i);
        if (d < best) {
            best = d;
            best_i = i;
        }
    }
    return range * (float)best_i / (float)bins;
}

float ot_calib_threshold(const uint64_t *hist, int bins, float range, float amax,
                         ot_calib_method m, double percentile)
{
    if (range <= 0 || m == OT_CALIB_MINMAX)
        return amax;
    if (m == OT_CALIB_ENTROPY) {
        float t = entropy_threshold(hist, bins, range);
        return t < amax ? t : amax;
    }
    double total = 0, pct = percentile > 0 ? percentile : 99.99;
    for (int j = 0; j < bins; j++)
        total += (double)hist[j];
    double need = total * pct / 100.0, c = 0;
    for (int j = 0; j < bins; j++) {
        c += (double)hist[j];
        if (c >= need) {
            float t = range * (float)(j + 1) / (float)bins;
            return t < amax ? t : amax;
        }
    }
    return amax;
}

ot_status ot_calibrate(const ot_graph *model, const bool *want, const ot_dataset *ds,
                       const ot_data_transform *t, const ot_calib_opts *o,
                       ot_calib_ranges *ranges, ot_calib_stats *stats, ot_err *err)
{
    ot_status st = OT_OK;
    ot_graph *g = NULL;
    ot_exec *full = NULL, *last = NULL;
    calib_hist *hs = NULL;
    uint64_t *counts = NULL;
    float *x = NULL, *xt = NULL;
    int64_t *labels = NULL, *idx = NULL;
    void *scratch = NULL;
    bool *keep = NULL;
    memset(stats, 0, sizeof *stats);
    memset(ranges, 0, sizeof *ranges);
    int32_t image = -1;
    for (int32_t i = 0; i < model->n_inputs && image < 0; i++)
        if (!(model->values[model->inputs[i].value].flags & OT_VAL_INIT))
            image = model->inputs[i].value;
    if (image < 0)
        return ot_err_set(err, OT_ERR_ARG, "the model has no image input");
    int64_t count = ot_data_count(ds);
    int64_t N = o->max_images > 0 && o->max_images < count ? o->max_images : count;
    if (N < 1)
        return ot_err_set(err, OT_ERR_ARG, "no images to calibrate on");
    /* the values to measure: the image itself, and float node outputs */
    int n_h = 0, n_out = 0;
    bool image_wanted = want[image];
    for (int32_t v = 0; v < model->n_values; v++)
        if (want[v] && (v == image || (model->values[v].producer >= 0 &&
                                       model->values[v].dtype == OT_DTYPE_FLOAT)))
            n_h++;
    if (n_h == 0)
        return ot_err_set(err, OT_ERR_ARG, "the model has no activations to calibrate");
    int bins = OT_CALIB_BINS;
    while (bins > 128 && (size_t)n_h * (size_t)bins * sizeof(uint64_t) > OT_CALIB_MAX_HIST_BYTES)
        bins /= 2;
    hs = ot_calloc((size_t)n_h, sizeof *hs);
    counts = ot_calloc((size_t)n_h * (size_t)bins, sizeof *counts);
    if (!hs || !counts)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory for %d histograms", n_h);
    stats->hist_bytes = (size_t)n_h * (sizeof *hs + (size_t)bins * sizeof *counts);
    stats->bins = bins;
    stats->n_values = n_h;
    /* the graph: the measured values are its outputs */
    OT_TRY(ot_graph_clone(model, &g, err));
    ot_train_free_image_size(g, image);
    ot_io *io = ot_arena_alloc(&g->arena, sizeof *io * (size_t)(n_h + 1));
    int32_t *targets = ot_arena_alloc(&g->arena, sizeof *targets * (size_t)(n_h + 1));
    keep = ot_calloc((size_t)g->n_nodes + 1, sizeof *keep);
    if (!io || !targets || !keep)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    int k = 0;
    if (image_wanted)
        hs[k++] = (calib_hist){ .value = image };
    for (int32_t v = 0; v < model->n_values; v++) {
        if (!want[v] || v == image || model->values[v].producer < 0 ||
            model->values[v].dtype != OT_DTYPE_FLOAT)
            continue;
        hs[k] = (calib_hist){ .value = v };
        io[n_out] = (ot_io){ .value = v };
        targets[n_out++] = v;
        g->values[v].flags |= OT_VAL_OUTPUT;
        k++;
    }
    for (int i = 0; i < n_h; i++) {
        hs[i].count = counts + (size_t)i * (size_t)bins;
        hs[i].lo = hs[i].hi = NAN;
    }
    for (int32_t j = 0; j < g->n_outputs; j++)
        g->values[g->outputs[j].value].flags &= ~(uint32_t)OT_VAL_OUTPUT;
    for (int j = 0; j < n_out; j++)
        g->values[targets[j]].flags |= OT_VAL_OUTPUT;
    g->outputs = io;
    g->n_outputs = n_out;
    if (n_out) {
        ot_graph_mark_ancestors(g, targets, n_out, keep);
        OT_TRY(ot_graph_keep_nodes(g, keep, err));
    }
    /* the batches */
    ot_image_layout lay = ot_image_layout_find(model, image);
    int C = ot_image_channels(model, image, &lay, 3), S = t->size;
    int h, w, ch;
    ot_data_shape(ds, &h, &w, &ch);
    if (ot_data_out_channels(t, ch) != C)
        OT_FAIL(err, OT_ERR_ARG, "the model takes %d channels, the data gives %d", C,
                ot_data_out_channels(t, ch));
    int bs = o->batch_size > 0 ? o->batch_size : 8;
    bs = bs > N ? (int)N : bs;
    size_t img_floats = (size_t)C * (size_t)S * (size_t)S;
    size_t scratch_bytes = ot_data_batch_scratch_bytes(ds, t);
    x = ot_malloc(img_floats * sizeof *x * (size_t)bs);
    if (lay.nhwc && !(xt = ot_malloc(img_floats * sizeof *x * (size_t)bs)))
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    labels = ot_calloc((size_t)bs, sizeof *labels);
    idx = ot_calloc((size_t)bs, sizeof *idx);
    scratch = ot_malloc(scratch_bytes ? scratch_bytes : 1);
    if (!x || !labels || !idx || !scratch)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    for (int64_t start = 0; start < N; start += bs) {
        int n = (int)(N - start < bs ? N - start : bs);
        ot_tensor in = ot_image_tensor(&lay, n, C, S, x);
        for (int i = 0; i < n; i++)
            idx[i] = (int64_t)((double)(start + i) * (double)count / (double)N);
        OT_TRY(ot_data_load_batch(ds, idx, n, t, x, labels, scratch, scratch_bytes, err));
        if (image_wanted) {
            add_tensor(&hs[0], bins, x, (int64_t)(img_floats * (size_t)n));
            stats->seen_bytes += img_floats * (size_t)n * sizeof *x;
        }
        if (n_out) {
            ot_exec **xp = n == bs ? &full : &last;
            if (!*xp) {
                ot_exec_input b = { .value = image, .tensor = in };
                b.tensor.data = NULL;
                OT_TRY(ot_exec_compile(g, &b, 1, &o->exec, xp, err));
                if (n == bs) {
                    size_t ob = 0;
                    for (int j = 0; j < n_out; j++) {
                        const ot_value *ov = &g->values[targets[j]];
                        size_t e = 1;
                        for (int d = 0; d < ov->ndim; d++)
                            e *= ov->dims[d] > 0 ? (size_t)ov->dims[d] : 1;
                        ob += e * sizeof(float);
                    }
                    stats->batch_bytes = ot_exec_arena_bytes(*xp) + ob + in.bytes + scratch_bytes;
                }
            }
            in.data = ot_image_batch(&lay, x, xt, n, C, S);
            OT_TRY(ot_exec_run(*xp, &in, 1, err));
            for (int j = 0; j < n_out; j++) {
                const ot_tensor *y = ot_exec_output(*xp, j);
                if (!y || y->dtype != OT_DTYPE_FLOAT)
                    OT_FAIL(err, OT_ERR_BACKEND, "no output for '%s'", g->values[targets[j]].name);
                add_tensor(&hs[j + (image_wanted ? 1 : 0)], bins, y->data, ot_tensor_numel(y));
                stats->seen_bytes += y->bytes;
            }
        }
        stats->n_images += n;
    }
    OT_TRY(ot_calib_ranges_init(ranges, model->n_values, err));
    for (int i = 0; i < n_h; i++) {
        int32_t v = hs[i].value;
        ranges->amax[v] = ot_calib_threshold(hs[i].count, bins, hs[i].range, hs[i].amax,
                                             o->method, o->percentile);
        ranges->lo[v] = hs[i].lo;
        ranges->hi[v] = hs[i].hi;
    }
done:
    if (st != OT_OK)
        ot_calib_ranges_fini(ranges);
    ot_exec_free(full);
    ot_exec_free(last);
    ot_graph_free(g);
    ot_free(hs);
    ot_free(counts);
    ot_free(x);
    ot_free(xt);
    ot_free(labels);
    ot_free(idx);
    ot_free(scratch);
    ot_free(keep);
    return st;
}
