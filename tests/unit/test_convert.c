/*
 * test_convert.c: the opset converter knows every op of the op table (an op
 * added to src/ops/ops.def needs its history in converters/opset.c).
 */
#include "converters/converters.h"
#include "ops/ops.h"
#include "test.h"

TEST(convert_opset_covers_op_table)
{
    for (int i = 0; i < OT_OP_COUNT_; i++) {
        const ot_op_desc *d = ot_op_table[i];
        if (!ot_domain_is_default(d->domain))
            continue;
        if (!ot_convert_opset_knows(d->type)) {
            ot_test_fail(__FILE__, __LINE__, "op %s has no history in converters/opset.c",
                         d->type);
            return;
        }
    }
}
