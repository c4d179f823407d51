/*
 * quantize.c: the precision conversions of convert, finetune and export
 * (--fp16, --int8): calibration on the user's images when it is needed,
 * the converters, and the report (the int8 model's top-1 next to the float
 * model's on the data's test split, when it has one).
 *
 * Calibration runs on the graph the earlier converters (opset, fold-bn,
 * simplify) left, so the measured values are the ones the int8 converter
 * sees.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "converters/converters.h"
#include "converters/quant.h"
#include "exec/exec.h"
#include "train/calibrate.h"
#include "train/finetune.h"
#include "train/trainer.h"

const ot_cli_choice ot_cli_calib_methods[] = {
    { "minmax", OT_CALIB_MINMAX, false },
    { "percentile", OT_CALIB_PERCENTILE, false },
    { "entropy", OT_CALIB_ENTROPY, false },
    { 0 },
};

static const char *method_name(unsigned int m)
{
    for (int i = 0; ot_cli_calib_methods[i].name; i++)
        if ((unsigned int)ot_cli_calib_methods[i].value == m)
            return ot_cli_calib_methods[i].name;
    return "?";
}

static void on_warning(const ot_ft_progress *p, void *user)
{
    (void)user;
    if (p->message)
        ot_log(OT_LOG_WARN, "%s", p->message);
}

/* Top-1 of g on the test split of the calibration data; NaN (logged) when
   it cannot be scored. */
static double held_out_top1(const ot_graph *g, const ot_evaluate_opts *eo, int64_t *n)
{
    ot_err err;
    ot_err_init(&err);
    ot_dataset *ds = NULL;
    ot_data_transform t;
    ot_eval_result ev = { 0 };
    double top1 = NAN;
    ot_exec_opts xo = { .cpu.threads = eo->threads };
    if (ot_device_parse(eo->device, &xo.device, &err) != OT_OK ||
        ot_evaluate_data(eo, g, OT_DATA_TEST, &ds, &t, &err) != OT_OK ||
        ot_eval_run(g, ds, &t, eo->batch_size > 0 ? eo->batch_size : 32, &xo, &ev, &err) != OT_OK)
        ot_log(OT_LOG_WARN, "no held-out accuracy: %s", err.msg);
    else {
        top1 = ev.top1;
        *n = ev.n;
    }
    ot_eval_result_fini(&ev);
    ot_data_free(ds);
    return top1;
}

int ot_cli_quantize(ot_graph *g, const char *path, const ot_convert_opts *o)
{
    if (!o->fp16 && !o->int8)
        return OT_EXIT_OK;
    if (o->fp16 && o->int8)
        return ot_cli_error("--fp16 and --int8 exclude each other");
    if (o->no_keep_io_types && o->keep_io_types)
        return ot_cli_error("--keep-io-types and --no-keep-io-types exclude each other");
    if (o->int8 && !o->ranges && !o->calib_data)
        return ot_cli_error("--int8 needs --calib-data DIR: images to measure the activations on");
    int rc = OT_EXIT_OK;
    ot_err err;
    ot_err_init(&err);
    ot_calib_ranges ranges = { 0 };
    ot_dataset *ds = NULL;
    bool *want = NULL;
    ot_convert_opts q = { .fp16 = o->fp16, .no_keep_io_types = o->no_keep_io_types,
                          .int8 = o->int8, .ranges = o->ranges };
    ot_evaluate_opts eo = o->calib_prep ? *o->calib_prep : ot_evaluate_opts_default();
    eo.data = o->calib_data;
    eo.model_path = path;
    if (!o->calib_prep)
        eo.progress = on_warning; /* finetune has warned about the data already */
    bool has_test = false;
    double fp32_top1 = NAN;
    int64_t n_test = 0;
    if (!o->ranges && o->calib_data) {
        ot_data_transform t;
        if (ot_evaluate_data(&eo, g, OT_DATA_TRAIN, &ds, &t, &err) != OT_OK) {
            rc = ot_cli_error("--calib-data %s: %s", o->calib_data, err.msg);
            goto done;
        }
        want = ot_calloc((size_t)g->n_values + 1, sizeof *want);
        if (!want) {
            rc = ot_cli_error("out of memory");
            goto done;
        }
        if (o->int8)
            ot_int8_activations(g, want);
        else
            for (int32_t v = 0; v < g->n_values; v++)
                want[v] = g->values[v].producer >= 0 && g->values[v].dtype == OT_DTYPE_FLOAT;
        ot_calib_opts co = { .method = (ot_calib_method)o->calib_method,
                             .max_images = o->calib_images > 0 ? o->calib_images : 1024,
                             .batch_size = 8 };
        co.exec.cpu.threads = eo.threads;
        ot_calib_stats cs;
        if (ot_device_parse(eo.device, &co.exec.device, &err) != OT_OK ||
            ot_calibrate(g, want, ds, &t, &co, &ranges, &cs, &err) != OT_OK) {
            rc = ot_cli_error("%s: calibration: %s", path, err.msg);
            goto done;
        }
        printf("calibration: %lld images of %s, %d activations (%s), %.1f MB of activations "
               "seen, histograms %.1f MB, one batch %.1f MB\n", (long long)cs.n_images,
               o->calib_data, cs.n_values, method_name(o->calib_method),
               (double)cs.seen_bytes / 1e6, (double)cs.hist_bytes / 1e6,
               (double)cs.batch_bytes / 1e6);
        q.ranges = &ranges;
        has_test = o->int8 && ot_data_has_split(o->calib_data, OT_DATA_TEST);
        if (has_test)
            fp32_top1 = held_out_top1(g, &eo, &n_test);
    }
    if (ot_convert(g, &q, &err) != OT_OK) {
        rc = ot_cli_error("%s: %s", path, err.msg);
        goto done;
    }
    if (has_test && !isnan(fp32_top1)) {
        int64_t n = 0;
        double int8_top1 = held_out_top1(g, &eo, &n);
        if (!isnan(int8_top1))
            printf("int8: top-1 %.4f, float32 %.4f (%+.2f points) on the %lld images of the "
                   "test split of %s\n", int8_top1, fp32_top1, 100 * (int8_top1 - fp32_top1),
                   (long long)n, o->calib_data);
    }
done:
    ot_free(want);
    ot_data_free(ds);
    ot_calib_ranges_fini(&ranges);
    return rc;
}
