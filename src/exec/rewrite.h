/*
 * rewrite.h: the graph rewrites and the fusion rules every backend shares.
 *
 * They work on an executor's specialised graph (a clone, with static shapes
 * and the compiled inputs bound), after shape inference and before the
 * backend builds its steps. A backend opts into them through its `rewrites`
 * hook (exec_impl.h), which returns a set of OT_REWRITE_* flags:
 *
 *   OT_REWRITE_CONST    Constant folding. Shape inference already computed
 *                       the outputs it could (shape arithmetic, Constant,
 *                       operations on constants); ot_rewrite_mark_folded flags
 *                       every node whose outputs are all constant
 *                       OT_NODE_FOLDED, and the backend gives it no step.
 *   OT_REWRITE_BN_FOLD  An inference BatchNormalization that alone reads a
 *                       Conv's or a Gemm's output (a Gemm: 2-D, beta 1, C
 *                       absent or [N] or [1, N]), with constant weights,
 *                       bias, scale, shift and statistics, folds into it: new
 *                       constant weights W*k and bias (b - mean)*k + shift,
 *                       k = scale / sqrt(var + eps), per output channel; the
 *                       node writes the BN's output, the BN node goes, and
 *                       the node is flagged OT_NODE_BN_FOLDED.
 *   OT_REWRITE_FUSE     The fusion rules: ot_fuse_find tells a backend, for a
 *                       node it is about to build, which following nodes it
 *                       may compute in the same step.
 *
 * What a backend does with a fusion group (post-ops, a fused kernel) is its
 * own business; it may decline a group, and the nodes then run on their own.
 * Nothing here changes numerics except BN folding (which an inference
 * runtime does as well, and which a backend asks for).
 */
#ifndef OT_EXEC_REWRITE_H
#define OT_EXEC_REWRITE_H

#include "graph/graph.h"

enum {
    OT_REWRITE_CONST = 1u << 0,
    OT_REWRITE_BN_FOLD = 1u << 1,
    OT_REWRITE_FUSE = 1u << 2,
};

/* Heap blocks the rewrites make for new constants (folded weights), freed
   with the executor. */
typedef struct ot_const_pool {
    void **blocks;
    int n, cap;
} ot_const_pool;

void ot_const_pool_free(ot_const_pool *pool);
/* Frees one block early (a backend that copied folded weights into its own
   layout); false when the pool does not hold it. */
bool ot_const_pool_release(ot_const_pool *pool, const void *block);

/* Flags OT_NODE_FOLDED on nodes whose outputs are all constant; returns how
   many. */
int ot_rewrite_mark_folded(ot_graph *g);

/* Folds every eligible BatchNormalization into its Conv or Gemm (see above);
   *n_folded says how many (may be NULL). The new weights and biases are
   values named after the node's weights, with their bytes in `pool`. Errors: OT_ERR_NOMEM,
   OT_ERR_MODEL (the graph no longer sorts, which would be a bug). */
ot_status ot_rewrite_fold_bn(ot_graph *g, ot_const_pool *pool, int *n_folded, ot_err *err);

/* ------------------------------------------------------------------ fusion */

/* Which values each node reads, counted once per node input, plus one per
   graph-output listing: a value used once is read by one node alone. */
typedef struct ot_fuse_plan {
    const ot_graph *g;
    int *uses; /* per value id */
} ot_fuse_plan;

ot_status ot_fuse_plan_init(ot_fuse_plan *p, const ot_graph *g, ot_err *err);
void ot_fuse_plan_fini(ot_fuse_plan *p);

/* The node after `after` that reads value vid, when it is vid's only reader,
   vid is not a graph output, and the node is not taken already (taken[node]
   non-zero: computed inside an earlier group; may be NULL); else -1. */
int32_t ot_fuse_sole_consumer(const ot_fuse_plan *p, int32_t vid, int32_t after,
                              const uint8_t *taken);

/* An activation that may run inside the step before it: Relu, LeakyRelu,
   Sigmoid, or Clip with constant scalar bounds, on float32. */
bool ot_fuse_is_activation(const ot_graph *g, const ot_node *n);

typedef enum {
    OT_FUSE_NONE = 0,
    OT_FUSE_ACT,  /* the head, then an activation (after ConvGradData: ReLU's
                     backward, ReluGrad)                                       */
    OT_FUSE_ADD,  /* a Conv whose result an Add adds to another value, then
                     optionally a Relu                                         */
} ot_fuse_kind;

typedef struct ot_fusion {
    ot_fuse_kind kind;
    int32_t act;       /* the activation node, or -1                           */
    int32_t add;       /* OT_FUSE_ADD: the Add node                            */
    int32_t add_other; /* OT_FUSE_ADD: the Add's other operand (computed before
                          the head; the result accumulates into it)            */
    bool other_dies;   /* OT_FUSE_ADD: no node after the head reads add_other
                          but the Add, and it is not a graph output: the group
                          may write over it                                    */
    int32_t out;       /* the value the group writes (the last node's output)  */
} ot_fusion;

/*
 * The group that node `head` may compute in one step, given the nodes taken
 * already (may be NULL):
 *   Conv            -> an activation, or an Add of a same-shaped float value
 *                      computed earlier (then a Relu, optionally)
 *   Add, Mul        -> an activation
 *   BatchNormTrain  -> a Relu
 *   ConvGradData    -> a ReluGrad whose dY is its dX and whose Y (the
 *                      Relu's output) is another float value of dX's shape
 * each follower being the sole reader of what precedes it. f->kind is
 * OT_FUSE_NONE when there is none.
 */
void ot_fuse_find(const ot_fuse_plan *p, int32_t head, const uint8_t *taken, ot_fusion *f);

#endif
