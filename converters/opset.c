/*
 * opset.c: `--opset N`.
 */
#include "converters/edit.h"

ot_status ot_convert_opset(ot_graph *g, const ot_convert_opts *opts, ot_err *err)
{
    (void)g;
    (void)opts;
    return ot_err_set(err, OT_ERR_UNSUPPORTED, "--opset is not implemented yet");
}
