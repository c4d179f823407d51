/*
 * feed.c: binding input tensors for `onnxtrain run` and `onnxtrain
 * test-data` (see feed.h), and the small printing and path helpers both use.
 *
 * The checks here run before ot_exec_compile so that a wrong input is
 * reported in the user's terms (the input's name, the file it came from, the
 * declared shape with its symbolic dims) rather than as a compile error.
 *
 * Random data comes from splitmix64 (Steele, Lea, Flood 2014): seeded, the
 * same on every machine, good enough for smoke inputs.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/feed.h"
#include "onnx/onnx.h"

static const char *vname(const ot_value *v) { return v->name ? v->name : ""; }

ot_status ot_feed_init(ot_feed *f, const ot_graph *g, ot_err *err)
{
    memset(f, 0, sizeof *f);
    size_t cap = (size_t)(g->n_inputs > 0 ? g->n_inputs : 1);
    f->ids = ot_calloc(cap, sizeof *f->ids);
    f->tensors = ot_calloc(cap, sizeof *f->tensors);
    f->from = ot_calloc(cap, sizeof *f->from);
    f->bound = ot_calloc(cap, sizeof *f->bound);
    if (!f->ids || !f->tensors || !f->from || !f->bound) {
        ot_feed_fini(f);
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    }
    for (int32_t i = 0; i < g->n_inputs; i++) {
        int32_t id = g->inputs[i].value;
        if (!(g->values[id].flags & OT_VAL_INIT))
            f->ids[f->n++] = id;
    }
    return OT_OK;
}

void ot_feed_fini(ot_feed *f)
{
    for (int i = 0; i < f->n && f->tensors; i++)
        ot_free(f->tensors[i].data);
    for (int i = 0; i < f->n && f->from; i++)
        ot_free(f->from[i]);
    ot_free(f->ids);
    ot_free(f->tensors);
    ot_free(f->from);
    ot_free(f->bound);
    memset(f, 0, sizeof *f);
}

static int find_real(const ot_feed *f, const ot_graph *g, const char *name)
{
    for (int k = 0; k < f->n; k++)
        if (strcmp(vname(&g->values[f->ids[k]]), name) == 0)
            return k;
    return -1;
}

/* "'a', 'b'" for messages: the names of the real inputs, shortened. */
static void input_list(const ot_feed *f, const ot_graph *g, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int k = 0; k < f->n && len + 8 < size; k++) {
        int w = snprintf(buf + len, size - len, "%s'%.60s'", k ? ", " : "",
                         vname(&g->values[f->ids[k]]));
        if (w < 0 || (size_t)w >= size - len) {
            snprintf(buf + len, size - len, ", ...");
            break;
        }
        len += (size_t)w;
    }
    if (f->n == 0)
        snprintf(buf, size, "none");
}

static bool is_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && !S_ISDIR(sb.st_mode);
}

ot_status ot_feed_add_file(ot_feed *f, const ot_graph *g, const char *spec, int position,
                           ot_err *err)
{
    ot_status st = OT_OK;
    ot_tensor t = { 0 };
    char *tname = NULL, *want = NULL, *from = NULL;
    const char *path = spec;
    int k = -1;

    const char *eq = strchr(spec, '=');
    if (eq && eq > spec && !is_file(spec)) {
        want = ot_malloc((size_t)(eq - spec) + 1);
        if (!want)
            OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
        memcpy(want, spec, (size_t)(eq - spec));
        want[eq - spec] = '\0';
        path = eq + 1;
        k = find_real(f, g, want);
        if (k < 0) {
            char list[512];
            input_list(f, g, list, sizeof list);
            int32_t id = ot_graph_find_value(g, want);
            if (id >= 0 && (g->values[id].flags & OT_VAL_INIT))
                OT_FAIL(err, OT_ERR_ARG,
                        "--input %s: '%s' is an initializer, not an input to bind (inputs: %s)",
                        spec, want, list);
            OT_FAIL(err, OT_ERR_ARG, "--input %s: the model has no input '%s' (inputs: %s)",
                    spec, want, list);
        }
    }
    st = ot_onnx_read_tensor(path, &t, &tname, err);
    if (st != OT_OK) {
        /* name the input the file was meant for: by name, else by position */
        int guess = k >= 0 ? k : position < f->n ? position : -1;
        if (guess >= 0)
            ot_err_prefix(err, "input '%s'", vname(&g->values[f->ids[guess]]));
        goto done;
    }
    if (k < 0) {
        k = find_real(f, g, tname);
        if (k < 0 && position >= f->n) {
            char list[512];
            input_list(f, g, list, sizeof list);
            OT_FAIL(err, OT_ERR_ARG,
                    "%s: tensor '%s' names no model input, and the model has only %d input%s "
                    "to bind by position (inputs: %s)",
                    path, tname, f->n, f->n == 1 ? "" : "s", list);
        }
        if (k < 0)
            k = position;
    }
    if (f->bound[k])
        OT_FAIL(err, OT_ERR_ARG, "input '%s' is bound twice (%s and %s)",
                vname(&g->values[f->ids[k]]), f->from[k] ? f->from[k] : "random data", path);
    from = ot_strdup(path);
    if (!from)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    f->tensors[k] = t;
    f->from[k] = from;
    f->bound[k] = true;
    t.data = NULL;
    from = NULL;
done:
    ot_free(t.data);
    ot_free(tname);
    ot_free(want);
    ot_free(from);
    return st;
}

/* ------------------------------------------------------------------ random */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1) with 24 random bits, exact in float. */
static float uniform_pm1(uint64_t *s)
{
    return (float)(splitmix64(s) >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

static void fill_random(ot_tensor *t, uint64_t *s)
{
    size_t esize = ot_dtype_size(t->dtype);
    size_t numel = esize ? t->bytes / esize : 0;
    unsigned char *p = t->data;
    for (size_t i = 0; i < numel; i++, p += esize) {
        switch (t->dtype) {
        case OT_DTYPE_FLOAT: {
            float v = uniform_pm1(s);
            memcpy(p, &v, 4);
            break;
        }
        case OT_DTYPE_DOUBLE: {
            double v = (double)uniform_pm1(s);
            memcpy(p, &v, 8);
            break;
        }
        case OT_DTYPE_FLOAT16: {
            uint16_t v = ot_f32_to_f16(uniform_pm1(s));
            memcpy(p, &v, 2);
            break;
        }
        case OT_DTYPE_BFLOAT16: {
            uint16_t v = ot_f32_to_bf16(uniform_pm1(s));
            memcpy(p, &v, 2);
            break;
        }
        case OT_DTYPE_BOOL: *p = (unsigned char)(splitmix64(s) >> 63); break;
        default: { /* integers: small non-negative values, little-endian */
            uint64_t v = splitmix64(s) >> 62;
            memset(p, 0, esize);
            p[0] = (unsigned char)v;
            break;
        }
        }
    }
}

ot_status ot_feed_random(ot_feed *f, const ot_graph *g, int64_t batch, uint64_t seed,
                         ot_err *err)
{
    uint64_t s = seed;
    for (int k = 0; k < f->n; k++) {
        if (f->bound[k])
            continue;
        const ot_value *v = &g->values[f->ids[k]];
        if (v->ndim < 0)
            return ot_err_set(err, OT_ERR_ARG,
                              "input '%s': the model does not declare its rank, so --random "
                              "cannot make it (give --input %s=FILE.pb)",
                              vname(v), vname(v));
        size_t esize = ot_dtype_size(v->dtype);
        if (!esize)
            return ot_err_set(err, OT_ERR_ARG,
                              "input '%s': dtype %s is not one --random can make", vname(v),
                              v->dtype == OT_DTYPE_UNDEFINED ? "(undeclared)"
                                                             : ot_dtype_name(v->dtype));
        ot_tensor t = { .dtype = v->dtype, .ndim = v->ndim };
        size_t bytes = esize;
        for (int d = 0; d < v->ndim; d++) {
            int64_t dim = v->dims[d];
            if (dim < 0 && d == 0) {
                dim = batch;
            } else if (dim < 0) {
                char shape[256];
                ot_value_shape_str(v, shape, sizeof shape);
                return ot_err_set(err, OT_ERR_ARG,
                                  "input '%s': dim %d of %s is dynamic; --random sets only dim "
                                  "0 (--batch), so give --input %s=FILE.pb",
                                  vname(v), d, shape, vname(v));
            }
            t.dims[d] = dim;
            if (!ot_size_mul(bytes, (size_t)dim, &bytes) || bytes > OT_DEFAULT_MAX_TENSOR_BYTES)
                return ot_err_set(err, OT_ERR_ARG, "input '%s': the random tensor would be too "
                                  "large", vname(v));
        }
        t.bytes = bytes;
        if (bytes) {
            t.data = ot_malloc(bytes);
            if (!t.data)
                return ot_err_set(err, OT_ERR_NOMEM, "input '%s': out of memory for %zu bytes",
                                  vname(v), bytes);
            fill_random(&t, &s);
        }
        f->tensors[k] = t;
        f->bound[k] = true;
    }
    return OT_OK;
}

/* ------------------------------------------------------------------- check */

void ot_feed_dims_str(const ot_tensor *t, char *buf, size_t size)
{
    size_t len = 0;
    if (size == 0)
        return;
    buf[0] = '\0';
    len += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < t->ndim && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%" PRId64, i ? "," : "", t->dims[i]);
    if (len < size)
        snprintf(buf + len, size - len, "]");
}

void ot_feed_index_str(const ot_tensor *t, int64_t flat, char *buf, size_t size)
{
    int64_t idx[OT_MAX_DIMS] = { 0 };
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->dims[d] > 0) {
            idx[d] = flat % t->dims[d];
            flat /= t->dims[d];
        }
    }
    ot_tensor shown = *t;
    memcpy(shown.dims, idx, sizeof idx);
    ot_feed_dims_str(&shown, buf, size);
}

ot_status ot_feed_check(const ot_feed *f, const ot_graph *g, ot_err *err)
{
    for (int k = 0; k < f->n; k++) {
        const ot_value *v = &g->values[f->ids[k]];
        if (!f->bound[k])
            return ot_err_set(err, OT_ERR_ARG, "input '%s' is not bound to any tensor",
                              vname(v));
        const ot_tensor *t = &f->tensors[k];
        const char *from = f->from[k] ? f->from[k] : "random data";
        if (v->dtype != OT_DTYPE_UNDEFINED && v->dtype != t->dtype)
            return ot_err_set(err, OT_ERR_ARG,
                              "input '%s': dtype %s (%s) does not match the declared %s",
                              vname(v), ot_dtype_name(t->dtype), from, ot_dtype_name(v->dtype));
        if (v->ndim < 0)
            continue;
        bool same = v->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++)
            same = v->dims[d] < 0 || v->dims[d] == t->dims[d];
        if (!same) {
            char have[256], declared[256];
            ot_feed_dims_str(t, have, sizeof have);
            ot_value_shape_str(v, declared, sizeof declared);
            return ot_err_set(err, OT_ERR_ARG,
                              "input '%s': shape %s does not match the declared %s (%s)",
                              vname(v), have, declared, from);
        }
    }
    return OT_OK;
}

void ot_feed_exec_inputs(const ot_feed *f, const ot_graph *g, ot_exec_input *inputs)
{
    for (int k = 0; k < f->n; k++) {
        inputs[k].value = f->ids[k];
        inputs[k].tensor = f->tensors[k];
        inputs[k].const_value = ot_exec_input_is_shape_operand(g, f->ids[k]);
    }
}

bool ot_feed_same_signature(const ot_exec_input *a, const ot_exec_input *b, int n)
{
    for (int k = 0; k < n; k++) {
        const ot_tensor *x = &a[k].tensor, *y = &b[k].tensor;
        if (a[k].value != b[k].value || a[k].const_value != b[k].const_value ||
            x->dtype != y->dtype || x->ndim != y->ndim || x->bytes != y->bytes)
            return false;
        for (int d = 0; d < x->ndim; d++)
            if (x->dims[d] != y->dims[d])
                return false;
        if (a[k].const_value && x->bytes && memcmp(x->data, y->data, x->bytes) != 0)
            return false;
    }
    return true;
}

/* ---------------------------------------------------------------- printing */

static bool is_float_dtype(ot_dtype d)
{
    return d == OT_DTYPE_FLOAT || d == OT_DTYPE_DOUBLE || d == OT_DTYPE_FLOAT16 ||
           d == OT_DTYPE_BFLOAT16;
}

void ot_feed_print_elem(FILE *out, const ot_tensor *t, int64_t i)
{
    if (is_float_dtype(t->dtype)) {
        double v = ot_tensor_get_f64(t, i);
        if (v != v)
            fputs("nan", out);
        else if (v > 1.7976931348623157e308)
            fputs("inf", out);
        else if (v < -1.7976931348623157e308)
            fputs("-inf", out);
        else
            fprintf(out, "%.7g", v);
    } else if (t->dtype == OT_DTYPE_UINT64) {
        uint64_t u;
        memcpy(&u, (const unsigned char *)t->data + (size_t)i * 8, 8);
        fprintf(out, "%" PRIu64, u);
    } else {
        fprintf(out, "%" PRId64, ot_tensor_get_i64(t, i));
    }
}

/* ------------------------------------------------------------------- misc */

ot_status ot_feed_mkdirs(const char *path, ot_err *err)
{
    ot_status st = OT_OK;
    char *p = ot_strdup(path);
    if (!p)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    for (char *c = p + 1; *c; c++) {
        if (*c != '/')
            continue;
        *c = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST)
            OT_FAIL(err, OT_ERR_IO, "%s: cannot create folder %s: %s", path, p, strerror(errno));
        *c = '/';
    }
    if (mkdir(p, 0777) != 0 && errno != EEXIST)
        OT_FAIL(err, OT_ERR_IO, "%s: cannot create folder: %s", path, strerror(errno));
    struct stat sb;
    if (stat(p, &sb) != 0 || !S_ISDIR(sb.st_mode))
        OT_FAIL(err, OT_ERR_IO, "%s: exists and is not a folder", path);
done:
    ot_free(p);
    return st;
}
