/*
 * scan.c: finds the images of a data set that decode, so that a run asked to
 * skip unreadable files (--skip-bad) works on one fixed list from the start:
 * batches, the prefix cache, checkpoints and scores then all see the same
 * images. Every skipped file is named in a warning.
 *
 * It decodes each image once and keeps nothing of it; it does not apply the
 * transform (a file that decodes also transforms).
 */
#include <stdlib.h>

#include "data.h"

ot_status ot_data_scan_readable(const ot_dataset *ds, const int64_t *idx, int64_t n,
                                int64_t **good, int64_t *n_good, int64_t *n_bad, ot_err *err)
{
    ot_status st = OT_OK;
    size_t bytes = ot_data_max_image_bytes(ds);
    void *buf = malloc(bytes ? bytes : 1);
    int64_t *kept = ot_malloc(sizeof *kept * (size_t)(n + 1));
    *good = NULL;
    *n_good = *n_bad = 0;
    if (!buf || !kept)
        OT_FAIL(err, OT_ERR_NOMEM, "out of memory scanning the images");
    int64_t k_good = 0, k_bad = 0;
    for (int64_t k = 0; k < n; k++) {
        int64_t i = idx ? idx[k] : k;
        ot_image img;
        ot_err e2;
        ot_err_init(&e2);
        ot_status s2 = ot_data_decode(ds, i, &img, buf, bytes, &e2);
        if (s2 == OT_OK) {
            kept[k_good++] = i;
        } else if (s2 == OT_ERR_PARSE || s2 == OT_ERR_IO) {
            k_bad++;
            ot_log(OT_LOG_WARN, "skipped: %s", e2.msg);
        } else {
            *err = e2;
            st = s2;
            goto done;
        }
    }
    *good = kept;
    kept = NULL;
    *n_good = k_good;
    *n_bad = k_bad;
done:
    ot_free(kept);
    free(buf);
    return st;
}
