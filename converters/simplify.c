/*
 * simplify.c: `--simplify`.
 */
#include "converters/edit.h"

ot_status ot_convert_simplify(ot_graph *g, const ot_convert_opts *opts, ot_err *err)
{
    (void)g;
    (void)opts;
    return ot_err_set(err, OT_ERR_UNSUPPORTED, "--simplify is not implemented yet");
}
