/*
 * edit.h: the graph edits the converters share (converters/convert.c).
 * Private to converters/.
 *
 * New strings, arrays and attributes live in the graph's arena; new
 * initializer bytes are heap blocks (ot_malloc) that the graph then owns, as
 * the importer's are. Edits mark what they touch (OT_NODE_DIRTY, OT_VAL_DIRTY)
 * so that the exporter rebuilds it; an attribute that changes loses its
 * imported bytes (raw) and is written from its fields.
 */
#ifndef OT_CONVERTERS_EDIT_H
#define OT_CONVERTERS_EDIT_H

#include "converters/converters.h"

/* Records "node 'x' (Op): <message>" in err (ot_node_label); returns code. */
ot_status cv_node_err(ot_err *err, ot_status code, const ot_graph *g, const ot_node *n,
                      const char *fmt, ...) OT_PRINTF(5, 6);

/* Adds an initializer named after `base` (made unique), taking over `data`
   (ot_malloc'ed, `bytes` long; freed here on failure). In models of IR
   version < 4 it is also listed as a graph input, as those require.
   Errors: OT_ERR_NOMEM. */
ot_status cv_add_init(ot_graph *g, const char *base, ot_dtype dtype, int ndim,
                      const int64_t *dims, void *data, size_t bytes, int32_t *id, ot_err *err);
/* Turns value `v`, a node output whose constant data shape inference
   computed, into an initializer of the same name holding a heap copy of
   that data (the caller removes the node). Errors: OT_ERR_NOMEM. */
ot_status cv_make_init(ot_graph *g, int32_t v, ot_err *err);
/* A 1-D int64 initializer holding v[0..n). */
ot_status cv_add_i64(ot_graph *g, const char *base, const int64_t *v, int n, int32_t *id,
                     ot_err *err);
/* A 0-D (scalar) initializer of dtype float or the dtype given, from a double. */
ot_status cv_add_scalar(ot_graph *g, const char *base, ot_dtype dtype, double v, int32_t *id,
                        ot_err *err);

/* A new value named after `base` (made unique), no data, shape unknown. */
ot_status cv_new_value(ot_graph *g, const char *base, int32_t *id, ot_err *err);

/* Appends a default-domain node at the graph's default opset; the caller
   sorts afterwards. in/out: value ids (-1 for an omitted optional one).
   Errors: OT_ERR_NOMEM. */
ot_status cv_add_node(ot_graph *g, const char *op_type, const char *name, const int32_t *in,
                      int n_in, const int32_t *out, int n_out, int32_t *id, ot_err *err);

/* Node attribute edits (the node is marked dirty). */
ot_status cv_set_attr_int(ot_graph *g, int32_t node, const char *name, int64_t v, ot_err *err);
ot_status cv_set_attr_ints(ot_graph *g, int32_t node, const char *name, const int64_t *v,
                           size_t n, ot_err *err);
ot_status cv_set_attr_float(ot_graph *g, int32_t node, const char *name, float v, ot_err *err);
ot_status cv_set_attr_floats(ot_graph *g, int32_t node, const char *name, const float *v,
                             size_t n, ot_err *err);
ot_status cv_set_attr_string(ot_graph *g, int32_t node, const char *name, const char *v,
                             ot_err *err);
void cv_del_attr(ot_graph *g, int32_t node, const char *name);
/* Replaces the node's inputs (or outputs) with in[0..n). */
ot_status cv_set_inputs(ot_graph *g, int32_t node, const int32_t *in, int n, ot_err *err);
ot_status cv_set_outputs(ot_graph *g, int32_t node, const int32_t *out, int n, ot_err *err);

/* Makes every node input that reads `from` read `to` instead. */
void cv_replace_uses(ot_graph *g, int32_t from, int32_t to);

/* How many node inputs read each value, plus one per graph-output listing:
   uses[n_values] (ot_malloc'ed, NULL when out of memory). */
int *cv_count_uses(const ot_graph *g);

/* Whether a value is listed as a graph output. */
bool cv_is_output(const ot_graph *g, int32_t v);

/* Removes the nodes whose keep[] is false and re-sorts. */
ot_status cv_keep_nodes(ot_graph *g, const bool *keep, ot_err *err);

/* Drops initializers (and their graph-input listing) that no node reads and
   that are not graph outputs; returns how many. */
int cv_drop_unused_inits(ot_graph *g);

/* Makes value `v` (a node output) an initializer of the same name, dtype
   and shape given, holding `data` (`bytes` long; ot_malloc'ed, taken over
   in every case). Errors: OT_ERR_NOMEM. */
ot_status cv_make_init_from(ot_graph *g, int32_t v, ot_dtype dtype, int ndim,
                            const int64_t *dims, void *data, size_t bytes, ot_err *err);

/* converters/fold_float.c: the float32 result of node n when every input is
   constant and the op is one it evaluates exactly (see there): *out
   (ot_malloc'ed), *bytes and its shape (ndim, dims[OT_MAX_DIMS]); false
   otherwise. */
bool cv_fold_float(const ot_graph *g, const ot_node *n, float **out, size_t *bytes, int *ndim,
                   int64_t *dims);

/* Sorts and re-infers shapes after edits. */
ot_status cv_refresh(ot_graph *g, ot_err *err);

/* The float32 data of a constant value that is not training state, or NULL. */
const float *cv_const_f32(const ot_graph *g, int32_t vid);

#endif
