/*
 * table.c: the op table generated from ops.def, lookup by (domain, type,
 * opset), the list of names ONNX defines, and the per-node attribute check
 * the importer runs.
 *
 * It does not infer shapes (infer.c) and does not know any op's semantics;
 * those live in one file per op family.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/op_util.h"

const ot_op_desc *const ot_op_table[OT_OP_COUNT_] = {
#define OT_OP(id, desc) [OT_OP_##id] = &desc,
#include "ops/ops.def"
#undef OT_OP
};

/* Every op of the default domain, any version, sorted for bsearch. */
static const char *const onnx_names[] = {
#include "ops/onnx_names.inc"
};

const ot_op_desc *ot_op_find(const char *domain, const char *type, int64_t opset)
{
    if (!type)
        return NULL;
    bool dflt = ot_domain_is_default(domain);
    for (int i = 0; i < OT_OP_COUNT_; i++) {
        const ot_op_desc *d = ot_op_table[i];
        if (dflt ? !ot_domain_is_default(d->domain) : strcmp(d->domain, domain) != 0)
            continue;
        if (strcmp(d->type, type) == 0 && opset >= d->opset_min && opset <= d->opset_max)
            return d;
    }
    return NULL;
}

static int cmp_name(const void *key, const void *elem)
{
    return strcmp((const char *)key, *(const char *const *)elem);
}

bool ot_op_is_onnx_defined(const char *type)
{
    if (!type)
        return false;
    return bsearch(type, onnx_names, sizeof onnx_names / sizeof onnx_names[0],
                   sizeof onnx_names[0], cmp_name) != NULL;
}

/* The spec for an attribute name at this opset; *other_opset tells whether the
   name exists only at other opsets. */
static const ot_attr_spec *find_spec(const ot_op_desc *d, const char *name, int opset,
                                     bool *other_opset)
{
    *other_opset = false;
    for (const ot_attr_spec *s = d->attrs; s && s->name; s++) {
        if (strcmp(s->name, name) != 0)
            continue;
        if ((s->opset_min && opset < s->opset_min) || (s->opset_max && opset > s->opset_max)) {
            *other_opset = true;
            continue;
        }
        return s;
    }
    return NULL;
}

static ot_status check_count(const ot_graph *g, const ot_node *n, const char *what, int have,
                             int lo, int hi, ot_err *err)
{
    if (have >= lo && (hi < 0 || have <= hi))
        return OT_OK;
    if (hi < 0)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "has %d %ss, expected at least %d", have, what,
                         lo);
    if (lo == hi)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "has %d %ss, expected %d", have, what, lo);
    return ot_op_err(err, OT_ERR_MODEL, g, n, "has %d %ss, expected %d to %d", have, what, lo,
                     hi);
}

ot_status ot_op_check_node(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_status st = OT_OK;
    const ot_op_desc *d = n->op;
    char label[512];
    if (!d)
        return OT_OK;
    /* trailing omitted optional inputs/outputs do not count */
    int n_in = n->n_in, n_out = n->n_out;
    while (n_in > 0 && n->in[n_in - 1] < 0)
        n_in--;
    while (n_out > 0 && n->out[n_out - 1] < 0)
        n_out--;
    OT_TRY(check_count(g, n, "input", n_in, d->n_in_min, d->n_in_max, err));
    OT_TRY(check_count(g, n, "output", n_out, d->n_out_min, d->n_out_max, err));
    for (int i = 0; i < d->n_in_min && i < n->n_in; i++)
        if (n->in[i] < 0)
            OT_FAIL(err, OT_ERR_MODEL, "%s: input %d is required but empty",
                    ot_node_label(g, n, label, sizeof label), i);

    for (int i = 0; i < n->n_attrs; i++) {
        const ot_attr *a = &n->attrs[i];
        bool other_opset;
        const ot_attr_spec *s = find_spec(d, a->name, n->opset, &other_opset);
        if (!s) {
            n->flags |= OT_NODE_UNKNOWN_ATTR;
            ot_log(OT_LOG_INFO, "%s: attribute '%s' is not known%s; kept, but not executable",
                   ot_node_label(g, n, label, sizeof label), a->name,
                   other_opset ? " at this opset" : "");
            continue;
        }
        if (a->type != s->type)
            OT_FAIL(err, OT_ERR_MODEL, "%s: attribute '%s' is %s, expected %s",
                    ot_node_label(g, n, label, sizeof label), a->name,
                    ot_attr_type_name(a->type), ot_attr_type_name(s->type));
        if (s->harmless) {
            ot_log(OT_LOG_INFO, "%s: legacy attribute '%s' does not change the result; kept",
                   ot_node_label(g, n, label, sizeof label), a->name);
            continue;
        }
        if (s->check) {
            st = s->check(g, n, a, err);
            if (st != OT_OK) {
                char tmp[OT_ERR_MSG_MAX];
                snprintf(tmp, sizeof tmp, "%s", err ? err->msg : "is invalid");
                OT_FAIL(err, st, "%s: attribute '%s' %s",
                        ot_node_label(g, n, label, sizeof label), a->name, tmp);
            }
        }
    }
    if (d->validate)
        OT_TRY(d->validate(g, n, err));
done:
    return st;
}
