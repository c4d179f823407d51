/*
 * exec_store.c: records kept where an executor computes (exec.h,
 * ot_exec_store). Record i lies at i * rec_total, its parts one after the
 * other, each a float32 row or its bfloat16 rounding. Rows cross between an
 * executor's outputs or inputs and the records through the backend's `move`
 * hook (a GPU's copies and conversions on the executor's stream), or, for a
 * backend that computes in host memory, by plain copies here.
 */
#include <string.h>

#include "exec_impl.h"

struct ot_exec_store {
    ot_exec *x;            /* the executor it was opened on (its backend)  */
    ot_store_place place;
    bool host_mem;         /* mem came from the backend's host_alloc       */
    int n_parts;
    size_t *row_bytes;     /* per part: one row as the executors hold it   */
    size_t *rec_off;       /* per part: its offset in a record             */
    bool *bf16;            /* per part: kept as bfloat16                   */
    size_t rec_total;
    int64_t n_records;
    uint64_t bytes;
    unsigned char *mem;
    ot_exec_move *moves;   /* room for the largest batch of moves so far   */
    int cap_moves;
};

ot_status ot_exec_store_open(ot_exec *x, ot_store_place place, const size_t *part_bytes,
                             const bool *bf16, int n_parts, int64_t n_records,
                             ot_exec_store **out, ot_err *err)
{
    ot_status st = OT_OK;
    *out = NULL;
    if (n_parts < 1 || n_records < 1)
        return ot_err_set(err, OT_ERR_ARG, "a record store needs parts and records");
    ot_exec_store *s = ot_calloc(1, sizeof *s);
    if (!s)
        return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
    s->x = x;
    s->place = place;
    s->n_parts = n_parts;
    s->n_records = n_records;
    s->row_bytes = ot_calloc((size_t)n_parts, sizeof *s->row_bytes);
    s->rec_off = ot_calloc((size_t)n_parts, sizeof *s->rec_off);
    s->bf16 = ot_calloc((size_t)n_parts, sizeof *s->bf16);
    if (!s->row_bytes || !s->rec_off || !s->bf16)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory");
    for (int k = 0; k < n_parts; k++) {
        s->row_bytes[k] = part_bytes[k];
        s->bf16[k] = bf16 && bf16[k];
        if (s->bf16[k] && part_bytes[k] % sizeof(float))
            OT_FAIL(err, OT_ERR_ARG, "record part %d: %zu bytes are not float32 values", k,
                    part_bytes[k]);
        s->rec_off[k] = s->rec_total;
        if (!ot_size_add(s->rec_total, s->bf16[k] ? part_bytes[k] / 2 : part_bytes[k],
                         &s->rec_total))
            OT_FAIL(err, OT_ERR_ARG, "a record's size overflows");
    }
    size_t total;
    if (!ot_size_mul((size_t)n_records, s->rec_total, &total))
        OT_FAIL(err, OT_ERR_ARG, "the records' size overflows");
    s->bytes = total;
    void *p = NULL;
    if (place == OT_STORE_PINNED && x->be->host_alloc) {
        OT_TRY(x->be->host_alloc(x, total ? total : 1, &p, err));
        s->host_mem = true;
    } else {
        OT_TRY(x->be->mem_alloc(x, total ? total : 1, &p, err));
    }
    s->mem = p;
    /* the new memory's zeroing (on x's stream) done before another
       executor's stream moves rows into it */
    if (x->be->move)
        OT_TRY(x->be->move(x, NULL, 0, true, err));
    *out = s;
    s = NULL;
done:
    ot_exec_store_free(s);
    return st;
}

uint64_t ot_exec_store_bytes(const ot_exec_store *s) { return s ? s->bytes : 0; }

void ot_exec_store_free(ot_exec_store *s)
{
    if (!s)
        return;
    if (s->mem && s->host_mem)
        s->x->be->host_free(s->x, s->mem);
    else if (s->mem)
        s->x->be->mem_free(s->x, s->mem);
    ot_free(s->row_bytes);
    ot_free(s->rec_off);
    ot_free(s->bf16);
    ot_free(s->moves);
    ot_free(s);
}

/* The moves on a backend whose memory is the host's. */
static void host_moves(const ot_exec_move *m, int n)
{
    for (int i = 0; i < n; i++) {
        size_t nf = m[i].bytes / sizeof(float);
        if (m[i].conv == OT_MOVE_TO_BF16) {
            const float *f = m[i].src;
            uint16_t *h = m[i].dst;
            for (size_t k = 0; k < nf; k++)
                h[k] = ot_f32_to_bf16(f[k]);
        } else if (m[i].conv == OT_MOVE_FROM_BF16) {
            const uint16_t *h = m[i].src;
            float *f = m[i].dst;
            for (size_t k = 0; k < nf; k++)
                f[k] = ot_bf16_to_f32(h[k]);
        } else {
            memcpy(m[i].dst, m[i].src, m[i].bytes);
        }
    }
}

/* What put and take check: the part, the executor's backend and device,
   the tensor's rows (row bytes and count), the records; the moves' room. */
static ot_status check_rows(ot_exec_store *s, const ot_exec *x, int part, const ot_tensor *t,
                            const char *what, const int64_t *idx, int n, ot_err *err)
{
    if (part < 0 || part >= s->n_parts)
        return ot_err_set(err, OT_ERR_ARG, "record part %d of %d", part, s->n_parts);
    if (x->be != s->x->be || x->opts.device.kind != s->x->opts.device.kind ||
        x->opts.device.index != s->x->opts.device.index)
        return ot_err_set(err, OT_ERR_ARG, "the records are kept on another device");
    if (t->ndim < 1 || t->dims[0] < n || n < 1 ||
        t->bytes / (size_t)t->dims[0] != s->row_bytes[part])
        return ot_err_set(err, OT_ERR_ARG, "'%s' has no %d rows of %zu bytes (record part %d)",
                          what, n, s->row_bytes[part], part);
    for (int i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= s->n_records)
            return ot_err_set(err, OT_ERR_ARG, "record %lld of %lld", (long long)idx[i],
                              (long long)s->n_records);
    if (n > s->cap_moves) {
        ot_exec_move *m = ot_realloc(s->moves, sizeof *m * (size_t)n);
        if (!m)
            return ot_err_set(err, OT_ERR_NOMEM, "out of memory");
        s->moves = m;
        s->cap_moves = n;
    }
    return OT_OK;
}

static ot_status run_moves(ot_exec_store *s, ot_exec *x, int n, bool wait, ot_err *err)
{
    if (x->be->move)
        return x->be->move(x, s->moves, n, wait, err);
    host_moves(s->moves, n);
    return OT_OK;
}

ot_status ot_exec_store_put(ot_exec_store *s, ot_exec *x, int out_i, int part,
                            const int64_t *idx, int n, ot_err *err)
{
    ot_status st = OT_OK;
    if (out_i < 0 || out_i >= x->n_out)
        return ot_err_set(err, OT_ERR_ARG, "output %d of %d", out_i, x->n_out);
    OT_TRY(check_rows(s, x, part, &x->outs[out_i], ot_exec_output_name(x, out_i), idx, n, err));
    OT_TRY(ot_exec_wait(x, err)); /* the run that wrote the output */
    const unsigned char *src = x->outs[out_i].data;
    size_t row = s->row_bytes[part];
    for (int i = 0; i < n; i++)
        s->moves[i] = (ot_exec_move){
            .dst = s->mem + (size_t)idx[i] * s->rec_total + s->rec_off[part],
            .src = src + (size_t)i * row, .bytes = row,
            .conv = s->bf16[part] ? OT_MOVE_TO_BF16 : OT_MOVE_COPY };
    st = run_moves(s, x, n, true, err);
done:
    return st;
}

ot_status ot_exec_store_take(ot_exec_store *s, ot_exec *x, int in_i, int part,
                             const int64_t *idx, int n, void *host_buf, ot_err *err)
{
    ot_status st = OT_OK;
    if (in_i < 0 || in_i >= x->n_in)
        return ot_err_set(err, OT_ERR_ARG, "input %d of %d", in_i, x->n_in);
    OT_TRY(check_rows(s, x, part, &x->in_shapes[in_i], x->g->values[x->in_ids[in_i]].name, idx,
                      n, err));
    unsigned char *dst = x->in_mem ? x->in_mem[in_i] : host_buf;
    if (!dst)
        OT_FAIL(err, OT_ERR_ARG, "no buffer for the records of input %d", in_i);
    if (!x->in_mem) /* the caller's memory: a run in flight may read it */
        OT_TRY(ot_exec_wait(x, err));
    size_t row = s->row_bytes[part];
    for (int i = 0; i < n; i++)
        s->moves[i] = (ot_exec_move){
            .dst = dst + (size_t)i * row,
            .src = s->mem + (size_t)idx[i] * s->rec_total + s->rec_off[part], .bytes = row,
            .conv = s->bf16[part] ? OT_MOVE_FROM_BF16 : OT_MOVE_COPY };
    st = run_moves(s, x, n, false, err);
    if (st == OT_OK && x->in_mem)
        x->in_ahead[in_i] = true;
done:
    return st;
}

bool ot_exec_mem_info(const ot_exec *x, size_t *free_bytes, size_t *total_bytes)
{
    *free_bytes = *total_bytes = 0;
    return x->be->mem_info && x->be->mem_info(x, free_bytes, total_bytes);
}
