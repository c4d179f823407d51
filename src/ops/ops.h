/*
 * ops.h: the op table. One descriptor per ONNX op that onnxtrain understands:
 * its opset range, its attributes (kind, default, check) and its shape
 * inference, and the gradient rule that autodiff calls. Backward ops (and
 * the few private forward ops training needs, such as BatchNormTrain) live in
 * the private domain "ai.onnxtrain" (OT_OP_DOMAIN_PRIVATE) and are never
 * exported.
 *
 * An op ONNX defines but the table lacks, or an op of another domain, is kept
 * by the importer as an opaque node: inspect and convert work on it, commands
 * that execute refuse it. An op the default domain does not define at all is
 * an import error.
 */
#ifndef OT_OPS_H
#define OT_OPS_H

#include "graph/graph.h"

/* Checks one attribute's value for one node; returns OT_OK or an error
   message (the caller prefixes file, node and attribute). */
typedef ot_status (*ot_attr_check_fn)(const ot_graph *g, const ot_node *n, const ot_attr *a,
                                      ot_err *err);

typedef struct ot_attr_spec {
    const char *name;
    ot_attr_type type;
    const char *def;        /* default, as text; NULL: required or no default   */
    ot_attr_check_fn check; /* NULL: any value of the right type                */
    int opset_min;          /* first opset that has it (0: all)                 */
    int opset_max;          /* last opset that has it (0: all)                  */
    bool harmless;          /* legacy attribute that does not change the result
                               (consumed_inputs, is_test): kept, logged once     */
} ot_attr_spec;

/*
 * A gradient rule (see src/ops/grad_util.h for the helpers rules use, and
 * src/passes/autodiff.h for the pass that calls them).
 *
 * Called by autodiff for forward node `node` once the gradients of its
 * outputs are final. dy[i] is the value id of dL/d(output i), or -1 when no
 * gradient flows into that output. For each input i with need_dx[i] the rule
 * appends backward nodes to g and stores the id of dL/d(input i) in dx[i]
 * (a value shaped like that input, possibly dy itself for ops that pass the
 * gradient through); it stores -1 where the input is not differentiable (an
 * integer operand, a shape) or not needed. dx arrives filled with -1.
 * The backward nodes take as inputs the forward values they need, so memory
 * planning sees those lifetimes as ordinary edges; a rule may also give the
 * forward node an optional output it lacks (Dropout's mask). New nodes come
 * after every existing node, in a valid order, with shapes inferred.
 * The rule must re-read g->nodes[node] after each edit (the arrays move).
 * Errors: OT_ERR_UNSUPPORTED (a form without a rule, naming the node),
 * OT_ERR_SHAPE, OT_ERR_NOMEM.
 */
typedef ot_status (*ot_op_grad_fn)(ot_graph *g, int32_t node, const int32_t *dy, int32_t *dx,
                                   const bool *need_dx, ot_err *err);

/* Op ids, one per row of ops.def, in its order: the index of the op's row
   in ot_op_table and in every backend's kernel table. */
typedef enum {
#define OT_OP(id, desc) OT_OP_##id,
#include "ops.def"
#undef OT_OP
    OT_OP_COUNT_
} ot_op_id;

typedef struct ot_op_desc {
    ot_op_id id;        /* its row in ops.def (tests/unit/test_op_table.c checks) */
    const char *domain; /* "" for the default domain                           */
    const char *type;
    int opset_min, opset_max;
    int n_in_min, n_in_max;   /* n_in_max -1: variadic                         */
    int n_out_min, n_out_max;
    const ot_attr_spec *attrs; /* terminated by { 0 }                           */
    /* Output dtypes and shapes from the inputs' and the attributes; may fold
       small constant results (shape arithmetic) into value->data. Errors name
       the node and the input. */
    ot_status (*infer)(ot_graph *g, ot_node *n, ot_err *err);
    /* Extra checks on import beyond attribute specs (e.g. BatchNormalization
       spatial=0 with per-activation parameters). May be NULL. */
    ot_status (*validate)(ot_graph *g, ot_node *n, ot_err *err);
    /* The gradient rule (ot_op_grad_fn above); NULL when the op has none. */
    ot_op_grad_fn grad;
    bool no_grad; /* no gradient rule, with the reason beside the row */
    /* Outputs that overwrite an input in place when that input is executor
       state (OT_VAL_STATE): in_place[k] is the input output k replaces, -1
       for none; NULL when no output does (n_out_max entries otherwise). The
       optimizer updates and BatchNormTrain's running statistics use it, so
       that a step updates the state where it lives. Such a node must be the
       last reader of that state value in its graph (ot_exec_compile checks),
       and no pass may drop those outputs. */
    const int8_t *in_place;
} ot_op_desc;

/* The private domain of backward ops and training-only forward ops. */
#define OT_OP_DOMAIN_PRIVATE "ai.onnxtrain"

/* The table, generated from ops.def: ot_op_table[id]->id == id. */
extern const ot_op_desc *const ot_op_table[OT_OP_COUNT_];

/* Whether node n runs op `id` (false for an opaque node). */
static inline bool ot_node_is(const ot_node *n, ot_op_id id)
{
    return n->op && n->op == ot_op_table[id];
}

/* The descriptor for (domain, type) valid at the given opset; NULL when the
   table has none. Domain "ai.onnx" is the default domain. */
const ot_op_desc *ot_op_find(const char *domain, const char *type, int64_t opset);

/* True when ONNX's default domain defines an op of this name (any version). */
bool ot_op_is_onnx_defined(const char *type);

/* Checks a node's attributes against its descriptor: kinds, checks, unknown
   names (sets OT_NODE_UNKNOWN_ATTR and logs them; not an error here), input
   and output counts, and the op's validate hook. Errors name file, node, op. */
ot_status ot_op_check_node(ot_graph *g, ot_node *n, ot_err *err);

/* The value of a 0-d double TENSOR attribute (the optimizer updates keep their
   hyper-parameters so, unrounded); `def` when absent or of another kind.
   Cannot fail. */
double ot_op_attr_double(const ot_node *n, const char *name, double def);

#endif
