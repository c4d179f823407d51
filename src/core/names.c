/*
 * names.c: checking a list of names (class names) for valid UTF-8 and
 * uniqueness (see core.h).
 */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

/* A name and its index, for finding duplicates by sorting. */
typedef struct named {
    const char *s;
    int i;
} named;

static int by_name(const void *pa, const void *pb)
{
    const named *x = pa, *y = pb;
    int c = strcmp(x->s, y->s);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

ot_status ot_names_check(const char *const *names, int n, ot_status code, const char *what,
                         ot_err *err)
{
    for (int i = 0; i < n; i++)
        if (!ot_utf8_valid(names[i], strlen(names[i])))
            return ot_err_set(err, code, "%s: the name of class %d is not valid UTF-8: '%s'", what,
                              i, names[i]);
    named *order = ot_malloc(sizeof *order * (size_t)(n > 0 ? n : 1));
    if (!order)
        return ot_err_set(err, OT_ERR_NOMEM, "%s: out of memory for %d class names", what, n);
    for (int i = 0; i < n; i++)
        order[i] = (named){ names[i], i };
    qsort(order, (size_t)n, sizeof *order, by_name);
    ot_status st = OT_OK;
    for (int k = 1; k < n && st == OT_OK; k++)
        if (!strcmp(order[k - 1].s, order[k].s))
            st = ot_err_set(err, code,
                            "%s: duplicate class name '%s' (classes %d and %d); class names must "
                            "be unique",
                            what, order[k].s, order[k - 1].i, order[k].i);
    ot_free(order);
    return st;
}
