/*
 * cmd_predict.c: `onnxtrain predict MODEL IMAGE... [--top K] [--json]
 * [--threads N]`.
 *
 * Classifies image files with a model: prepares each image as the model's
 * metadata_props say (onnxtrain.image_size, onnxtrain.mean, onnxtrain.std,
 * written by finetune; else the model's static input size or 224, with
 * ImageNet normalization, as `eval` does), runs them in batches of up to
 * PREDICT_BATCH images through the logits (a trailing Softmax or LogSoftmax
 * is cut off, as in eval), and prints for each image the K most likely
 * classes with their softmax probabilities. Class names come from
 * onnxtrain.classes (ot_train_meta_classes); without them, or when their count
 * differs from the model's outputs, the class index is shown.
 *
 * Image files: JPEG and PNG, decoded by the image-folder module
 * (libjpeg-turbo, libpng), and binary PGM (P5) and PPM (P6), maxval
 * 1..65535, read here.
 *
 * Nothing is printed until every image has been decoded and run, so an error
 * leaves stdout empty.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/file.h"
#include "cli/cli.h"
#include "cli/json.h"
#include "data/data.h"
#include "exec/exec.h"
#include "onnx/onnx.h"
#include "train/layout.h"
#include "train/trainer.h"
#include "train/meta.h"
#include "train/train_graph.h"

/* Images per executor run: bounds memory for long file lists. */
#define PREDICT_BATCH 32
/* Largest image file read (a 16384 x 16384 16-bit PPM is 1.5 GiB). */
#define MAX_IMAGE_FILE_BYTES ((size_t)2 << 30)

typedef struct predict_args {
    int top, threads;
    bool json;
    uint64_t max_tensor_bytes;
    const char *device;
    ot_precision precision;
    ot_cli_plan_args plans;
} predict_args;

enum {
    PREDICT_TOP,
    PREDICT_JSON,
    PREDICT_THREADS,
    PREDICT_MAX_TENSOR_SIZE,
    PREDICT_DEVICE,
    PREDICT_PRECISION,
    OT_CLI_PLAN_IDS(PREDICT),
    PREDICT_N_OPTS
};

static const ot_cli_opt predict_opts[PREDICT_N_OPTS + 1] = {
    [PREDICT_TOP] = OT_CLI_INT_OPT(predict_args, top, "top", 'k', "K", 1, INT_MAX,
                                   "show the K most likely classes of each image (default 5)"),
    [PREDICT_JSON] = OT_CLI_FLAG_OPT(predict_args, json, "json", 0, "print one JSON object"),
    [PREDICT_THREADS] = OT_CLI_INT_OPT(predict_args, threads, "threads", 0, "N", 1,
                                       OT_CLI_THREADS_MAX,
                                       "threads (default OMP_NUM_THREADS, else the free cores)"),
    [PREDICT_MAX_TENSOR_SIZE] = OT_CLI_MAX_TENSOR_SIZE_OPT(predict_args, max_tensor_bytes),
    [PREDICT_DEVICE] = OT_CLI_DEVICE_OPT(predict_args, device),
    [PREDICT_PRECISION] = OT_CLI_PRECISION_OPT(predict_args, precision),
    OT_CLI_PLAN_ROWS(PREDICT, predict_args, plans),
};

static const ot_cli_cmd predict_cmd = {
    .name = "predict",
    .args = "MODEL IMAGE...",
    .summary = "Classifies image files: the most likely classes of each, with their\n"
               "softmax probabilities.",
    .details = "Images are prepared as the model's metadata says (onnxtrain.image_size,\n"
               "onnxtrain.mean, onnxtrain.std, written by finetune), else resized to the\n"
               "model's input size (224 when dynamic) with ImageNet normalization. Class\n"
               "names come from onnxtrain.classes, else the class index is shown.\n"
               "Image files: JPEG, PNG, binary PPM (P6) and PGM (P5).\n"
               "JSON: {model, classes, predictions: [{image, top: [{class, name, prob}]}]};\n"
               "name is null when the model has no class names.\n",
    .opts = predict_opts,
    .n_pos_min = 2,
    .n_pos_max = INT_MAX,
};

/* ------------------------------------------------------------ image files */

/* A decoded image: planar CHW bytes (owned) and the view into them. */
typedef struct decoded {
    uint8_t *pixels;
    ot_image img;
} decoded;

/* Reads the whole file into *out (malloc'ed). */
static ot_status read_file(const char *path, uint8_t **out, size_t *len, ot_err *err)
{
    ot_status st = OT_OK;
    uint8_t *buf = NULL;
    *out = NULL;
    FILE *f = NULL;
    struct stat sb;
    OT_TRY(ot_file_fopen_read(path, &f, &sb, err));
    if ((uint64_t)sb.st_size > MAX_IMAGE_FILE_BYTES)
        OT_FAIL(err, OT_ERR_ARG, "%s: file of %lld bytes is larger than the %zu bytes allowed",
                path, (long long)sb.st_size, MAX_IMAGE_FILE_BYTES);
    size_t n = (size_t)sb.st_size;
    buf = malloc(n ? n : 1);
    if (!buf)
        OT_FAIL(err, OT_ERR_NOMEM, "%s: out of memory", path);
    if (fread(buf, 1, n, f) != n)
        OT_FAIL(err, OT_ERR_IO, "%s: read error", path);
    *out = buf;
    *len = n;
    buf = NULL;
done:
    free(buf);
    if (f)
        fclose(f);
    return st;
}

/* Skips whitespace and '#' comments of a PNM header. */
static size_t pnm_skip(const uint8_t *p, size_t len, size_t at)
{
    while (at < len) {
        if (p[at] == '#') {
            while (at < len && p[at] != '\n' && p[at] != '\r')
                at++;
        } else if (p[at] == ' ' || p[at] == '\t' || p[at] == '\n' || p[at] == '\r' ||
                   p[at] == '\v' || p[at] == '\f') {
            at++;
        } else {
            break;
        }
    }
    return at;
}

/* Reads a PNM header number at *at (after whitespace). False when there are
   no digits or the value exceeds `max`. */
static bool pnm_number(const uint8_t *p, size_t len, size_t *at, long max, long *out)
{
    size_t i = pnm_skip(p, len, *at);
    long v = 0;
    size_t start = i;
    while (i < len && p[i] >= '0' && p[i] <= '9') {
        v = v * 10 + (p[i] - '0');
        if (v > max)
            return false;
        i++;
    }
    if (i == start)
        return false;
    *at = i;
    *out = v;
    return true;
}

/* Decodes binary PGM (P5) or PPM (P6) bytes (Netpbm: header "P6 W H MAXVAL",
   one whitespace byte, then rows of samples, 2 bytes big-endian each when
   MAXVAL > 255). Samples scale to 0..255. */
static ot_status decode_pnm(const char *path, const uint8_t *p, size_t len, decoded *out,
                            ot_err *err)
{
    int C = p[1] == '6' ? 3 : 1;
    size_t at = 2;
    long w, h, maxval;
    if (!pnm_number(p, len, &at, OT_DATA_MAX_SIDE, &w) ||
        !pnm_number(p, len, &at, OT_DATA_MAX_SIDE, &h) ||
        !pnm_number(p, len, &at, 65535, &maxval))
        return ot_err_set(err, OT_ERR_PARSE,
                          "%s: bad P%c header: expected width, height (1..%d) and maxval "
                          "(1..65535)",
                          path, p[1], OT_DATA_MAX_SIDE);
    if (w < 1 || h < 1 || maxval < 1)
        return ot_err_set(err, OT_ERR_PARSE, "%s: P%c header has width %ld, height %ld, "
                                             "maxval %ld; each must be at least 1",
                          path, p[1], w, h, maxval);
    if (at >= len || !(p[at] == ' ' || p[at] == '\t' || p[at] == '\n' || p[at] == '\r'))
        return ot_err_set(err, OT_ERR_PARSE, "%s: P%c header does not end in whitespace "
                                             "(byte offset %zu)",
                          path, p[1], at);
    at++;
    size_t bps = maxval > 255 ? 2 : 1;
    size_t numel = (size_t)w * (size_t)h * (size_t)C; /* <= 3 * 16384^2: no overflow */
    size_t need = numel * bps;
    if (len - at < need)
        return ot_err_set(err, OT_ERR_PARSE,
                          "%s: truncated P%c image: %ldx%ld needs %zu bytes of pixels from byte "
                          "offset %zu, the file has %zu",
                          path, p[1], w, h, need, at, len - at);
    out->pixels = malloc(numel);
    if (!out->pixels)
        return ot_err_set(err, OT_ERR_NOMEM, "%s: out of memory", path);
    const uint8_t *s = p + at;
    size_t plane = (size_t)w * (size_t)h;
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < C; c++) {
            size_t k = i * (size_t)C + (size_t)c;
            unsigned v = bps == 2 ? (unsigned)s[2 * k] << 8 | s[2 * k + 1] : s[k];
            if (v > (unsigned)maxval)
                v = (unsigned)maxval;
            if (maxval != 255)
                v = (v * 255u + (unsigned)maxval / 2) / (unsigned)maxval;
            out->pixels[(size_t)c * plane + i] = (uint8_t)v; /* interleaved -> planar */
        }
    out->img = (ot_image){ .data = out->pixels, .height = (int)h, .width = (int)w, .channels = C };
    return OT_OK;
}

static uint8_t *alloc_pixels(void *user, int h, int w, int c, ot_err *err)
{
    decoded *d = user;
    d->pixels = malloc((size_t)h * (size_t)w * (size_t)c);
    if (!d->pixels)
        ot_err_set(err, OT_ERR_NOMEM, "out of memory for a %dx%d image", w, h);
    return d->pixels;
}

/* Decodes the image file at `path`, choosing the format by its first bytes. */
static ot_status decode_file(const char *path, decoded *out, ot_err *err)
{
    uint8_t *bytes = NULL;
    size_t len = 0;
    memset(out, 0, sizeof *out);
    ot_status st = read_file(path, &bytes, &len, err);
    if (st != OT_OK)
        return st;
    if (len >= 2 && bytes[0] == 'P' && (bytes[1] == '5' || bytes[1] == '6')) {
        st = decode_pnm(path, bytes, len, out, err);
    } else if ((len >= 8 && !memcmp(bytes, "\x89PNG\r\n\x1a\n", 8)) ||
               (len >= 3 && bytes[0] == 0xff && bytes[1] == 0xd8 && bytes[2] == 0xff)) {
        st = ot_data_decode_file(path, alloc_pixels, out, &out->img, err);
    } else if (len >= 2 && bytes[0] == 'P' && bytes[1] >= '1' && bytes[1] <= '4') {
        st = ot_err_set(err, OT_ERR_UNSUPPORTED,
                        "%s: plain-text or bitmap Netpbm (P%c) is not supported; use binary "
                        "PPM (P6) or PGM (P5)",
                        path, bytes[1]);
    } else {
        st = ot_err_set(err, OT_ERR_PARSE,
                        "%s: not an image onnxtrain can read (expected JPEG, PNG, or binary PPM "
                        "or PGM)", path);
    }
    free(bytes);
    return st;
}

/* ---------------------------------------------------------------- model */

/* The model's image side when its input is static and square, else 224. */
static int default_size(const ot_graph *g, int32_t image)
{
    ot_image_layout l = ot_image_layout_find(g, image);
    int64_t side = ot_image_side(g, image, &l);
    return side > 0 && side <= OT_DATA_MAX_SIZE ? (int)side : 224;
}

/* The eval clone (logits as the only output, any batch and image size), after
   checking that the model takes images; *size: the side to prepare. */
static ot_status logits_graph(const ot_graph *model, int32_t *image, int *size, ot_graph **out,
                              ot_err *err)
{
    ot_status st = ot_eval_logits_graph(model, image, out, err);
    if (st != OT_OK)
        return st;
    const ot_value *mv = &model->values[*image];
    if (mv->ndim != 4) {
        ot_graph_free(*out);
        *out = NULL;
        return ot_err_set(err, OT_ERR_ARG,
                          "input '%s' has rank %d; an image classifier takes (N, C, H, W)",
                          mv->name, mv->ndim);
    }
    *size = default_size(model, *image);
    return OT_OK;
}

/* Softmax of logits[K] into prob[K], in double. */
static void softmax(const float *logits, int64_t K, float *prob)
{
    double m = -INFINITY;
    for (int64_t k = 0; k < K; k++)
        if ((double)logits[k] > m)
            m = (double)logits[k];
    double sum = 0;
    for (int64_t k = 0; k < K; k++)
        sum += exp((double)logits[k] - m);
    for (int64_t k = 0; k < K; k++)
        prob[k] = (float)(exp((double)logits[k] - m) / sum);
}

/* A class and its probability, for sorting. */
typedef struct ranked {
    float prob;
    int64_t cls;
} ranked;

/* Descending probability, NaN below every number, ties by class index. */
static int by_prob(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    bool na = isnan(a->prob), nb = isnan(b->prob);
    if (na != nb)
        return na ? 1 : -1;
    if (!na && a->prob != b->prob)
        return a->prob > b->prob ? -1 : 1;
    return a->cls < b->cls ? -1 : a->cls > b->cls;
}

/* Sorts the classes of prob[K] into order[K] as by_prob says. */
static void rank_classes(const float *prob, int64_t K, ranked *order)
{
    for (int64_t k = 0; k < K; k++)
        order[k] = (ranked){ .prob = prob[k], .cls = k };
    qsort(order, (size_t)K, sizeof *order, by_prob);
}

/* --------------------------------------------------------------- command */

int ot_cmd_predict(int argc, char **argv)
{
    ot_cli_args a;
    predict_args o = { .top = 5 };
    int rc = ot_cli_parse_into(&predict_cmd, argc, argv, &a, &o);
    if (rc != OT_EXIT_OK)
        return rc;
    const ot_cli_cmd *cmd = &predict_cmd;
    ot_graph *model = NULL, *g = NULL;
    ot_exec *full = NULL, *last = NULL;
    float *x = NULL, *xt = NULL, *prob = NULL;
    ranked *order = NULL;
    char **names = NULL;
    void *scratch = NULL;
    decoded dec = { 0 };
    ot_err err;
    ot_err_init(&err);
    if (a.help) {
        ot_cli_print_usage(cmd, stdout);
        goto out;
    }
    int top = o.top, threads = ot_cli_threads(o.threads, NULL);
    ot_device device;
    if ((rc = ot_cli_device(cmd, o.device, &device)) != OT_EXIT_OK ||
        (rc = ot_cli_precision(&device, o.precision)) != OT_EXIT_OK ||
        (rc = ot_cli_plans(&o.plans)) != OT_EXIT_OK)
        goto out;
    ot_import_opts io = { .max_tensor_bytes = o.max_tensor_bytes };
    const char *path = a.pos[0];
    const char *const *images = a.pos + 1;
    int n_images = a.n_pos - 1;

    if (ot_onnx_import_file(path, &io, &model, &err) != OT_OK) {
        rc = ot_cli_error("%s", err.msg);
        goto out;
    }
    if (ot_graph_check_finite(model, &err) != OT_OK) {
        rc = ot_cli_error("%s: %s", path, err.msg);
        goto out;
    }
    int32_t image = -1;
    int size = 224;
    if (logits_graph(model, &image, &size, &g, &err) != OT_OK) {
        rc = ot_cli_error("%s: %s", path, err.msg);
        goto out;
    }
    ot_data_transform t;
    ot_data_transform_init(&t, size, OT_DATA_NORM_IMAGENET);
    ot_train_meta_read(model, &t);
    const ot_value *iv = &g->values[image];
    ot_image_layout lay = ot_image_layout_find(model, image);
    int C = ot_image_channels(g, image, &lay, 3);
    if (C != 1 && C != 3) {
        rc = ot_cli_error("%s: input '%s' has %d channels; predict reads gray (1) or RGB (3) "
                          "images", path, iv->name, C);
        goto out;
    }
    t.to_rgb = C == 3;
    int S = t.size;
    int bs = n_images < PREDICT_BATCH ? n_images : PREDICT_BATCH;
    size_t img_floats = (size_t)C * (size_t)S * (size_t)S, x_bytes;
    if (!ot_size_mul(img_floats * sizeof *x, (size_t)bs, &x_bytes) ||
        !(x = malloc(x_bytes)) || (lay.nhwc && !(xt = malloc(x_bytes)))) {
        rc = ot_cli_error("out of memory for %d images of %dx%d", bs, S, S);
        goto out;
    }
    size_t scratch_bytes = 0;
    ot_exec_opts eo = { .device = device, .cpu = { .threads = threads, .winograd = true },
                        .precision = o.precision };
    int64_t K = 0;
    for (int start = 0; start < n_images; start += bs) {
        int n = n_images - start < bs ? n_images - start : bs;
        for (int i = 0; i < n; i++) {
            const char *file = images[start + i];
            if (decode_file(file, &dec, &err) != OT_OK) {
                rc = ot_cli_error("%s", err.msg);
                goto out;
            }
            if (ot_data_out_channels(&t, dec.img.channels) != C) {
                rc = ot_cli_error("%s: RGB image; the model takes 1 channel (gray)", file);
                goto out;
            }
            size_t need = ot_data_prepare_scratch_bytes(dec.img.height, dec.img.width, &t);
            if (need == 0) {
                rc = ot_cli_error("%s: cannot prepare a %dx%d image at size %d", file,
                                  dec.img.width, dec.img.height, S);
                goto out;
            }
            if (need > scratch_bytes) {
                free(scratch);
                scratch_bytes = 0;
                if (!(scratch = malloc(need))) {
                    rc = ot_cli_error("%s: out of memory", file);
                    goto out;
                }
                scratch_bytes = need;
            }
            if (ot_data_prepare(&dec.img, &t, x + (size_t)i * img_floats, scratch, scratch_bytes,
                                &err) != OT_OK) {
                rc = ot_cli_error("%s: %s", file, err.msg);
                goto out;
            }
            free(dec.pixels);
            dec.pixels = NULL;
        }
        ot_exec **xp = n == bs ? &full : &last;
        ot_tensor in = ot_image_tensor(&lay, n, C, S, NULL);
        if (!*xp) {
            ot_exec_input b = { .value = image, .tensor = in };
            b.tensor.data = NULL;
            if (ot_exec_compile(g, &b, 1, &eo, xp, &err) != OT_OK) {
                rc = ot_cli_error("%s: %s", path, err.msg);
                goto out;
            }
            ot_cli_precision_said(stderr, o.precision);
        }
        in.data = ot_image_batch(&lay, x, xt, n, C, S);
        if (ot_exec_run(*xp, &in, 1, &err) != OT_OK) {
            rc = ot_cli_error("%s: %s", path, err.msg);
            goto out;
        }
        const ot_tensor *y = ot_exec_output(*xp, 0);
        int64_t k = y->ndim >= 2 ? y->dims[y->ndim - 1] : 0;
        if (y->dtype != OT_DTYPE_FLOAT || k < 1 || ot_tensor_numel(y) != (int64_t)n * k ||
            (K && k != K)) {
            rc = ot_cli_error("%s: the model's output is not [N, classes] float", path);
            goto out;
        }
        if (!prob) {
            K = k;
            size_t prob_n;
            if (!ot_size_mul((size_t)n_images, (size_t)K, &prob_n) ||
                !(prob = malloc(prob_n * sizeof *prob))) {
                rc = ot_cli_error("out of memory for %d x %lld probabilities", n_images,
                                  (long long)K);
                goto out;
            }
        }
        for (int i = 0; i < n; i++)
            softmax((const float *)y->data + (size_t)i * (size_t)K, K,
                    prob + (size_t)(start + i) * (size_t)K);
    }

    /* class names */
    int n_names = 0;
    if (ot_train_meta_classes(model, &names, &n_names, &err) != OT_OK) {
        rc = ot_cli_error("%s: %s", path, err.msg);
        goto out;
    }
    if (names && n_names != K) {
        /* which name belongs to which output is unknown: show none */
        ot_log(OT_LOG_WARN, "%s: onnxtrain.classes has %d names for %lld classes; showing class "
                            "indices instead",
               path, n_names, (long long)K);
        n_names = 0;
    }
    if (top > K) {
        ot_log(OT_LOG_WARN, "--top %d: the model has %lld classes; showing all", top,
               (long long)K);
        top = (int)K;
    }
    order = malloc(sizeof *order * (size_t)K);
    if (!order) {
        rc = ot_cli_error("out of memory");
        goto out;
    }
    bool json = o.json;
    json_t *preds = json ? json_array() : NULL;
    for (int i = 0; i < n_images; i++) {
        const float *p = prob + (size_t)i * (size_t)K;
        rank_classes(p, K, order);
        json_t *tops = json ? json_array() : NULL;
        if (!json) {
            if (i)
                printf("\n");
            ot_cli_text_str(stdout, images[i]);
            printf("\n");
        }
        for (int r = 0; r < top; r++) {
            int64_t c = order[r].cls;
            const char *name = c < n_names ? names[c] : NULL;
            if (json) {
                json_t *e = ot_json_set(json_object(), "class", json_integer(c));
                e = ot_json_set(e, "name", ot_json_text(name));
                e = ot_json_set(e, "prob", ot_json_real((double)p[c]));
                tops = ot_json_push(tops, e);
            } else {
                if (isnan(p[c]))
                    printf("  nan     ");
                else
                    printf("  %.4f  ", (double)p[c]);
                if (name)
                    ot_cli_text_str(stdout, name);
                else
                    printf("%lld", (long long)c);
                printf("\n");
            }
        }
        if (json) {
            json_t *pred = ot_json_set(json_object(), "image", ot_json_text(images[i]));
            preds = ot_json_push(preds, ot_json_set(pred, "top", tops));
        }
    }
    if (json) {
        json_t *doc = ot_json_set(json_object(), "model", ot_json_text(path));
        doc = ot_json_set(doc, "classes", json_integer(K));
        if ((rc = ot_cli_print_json(ot_json_set(doc, "predictions", preds))) != OT_EXIT_OK)
            goto out;
    }
    rc = ot_cli_finish_stdout();
out:
    free(dec.pixels);
    free(order);
    ot_free(names);
    free(prob);
    free(scratch);
    free(x);
    free(xt);
    ot_exec_free(full);
    ot_exec_free(last);
    ot_graph_free(g);
    ot_graph_free(model);
    ot_cli_args_fini(&a);
    return rc;
}
