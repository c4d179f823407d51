/*
 * freeze.h: the freeze pass and the swap-head pass.
 *
 * freeze marks each parameter trainable (OT_VAL_TRAINABLE) or frozen, by a
 * preset, by name patterns and by a cut point. swap-head replaces the
 * classifier head with a fresh one of N classes, initialised as PyTorch's
 * nn.Linear is.
 *
 * A parameter is a floating-point initializer that a node reads as a weight
 * (everything but BatchNormalization's running statistics, which are state,
 * not parameters). A tensor PyTorch's exporter ties through Identity stays one
 * parameter: what is frozen or trained is the initializer.
 */
#ifndef OT_PASSES_FREEZE_H
#define OT_PASSES_FREEZE_H

#include "graph/graph.h"
#include "passes/head.h"

typedef enum {
    OT_FREEZE_FEATURE_EXTRACT = 0, /* only the head                                */
    OT_FREEZE_FINE_TUNE,           /* the last stage (last resolution) and the head */
    OT_FREEZE_FULL,                /* everything                                    */
} ot_freeze_mode;

typedef struct ot_freeze_opts {
    ot_freeze_mode mode;
    const char *const *train;  /* patterns (fnmatch) of initializer or node names  */
    int n_train;               /* made trainable after the preset                  */
    const char *const *freeze; /* patterns made frozen after --train               */
    int n_freeze;
    const char *until;         /* node or value name: it and everything upstream of
                                  it is frozen (NULL: no cut)                       */
} ot_freeze_opts;

typedef struct ot_freeze_report {
    int n_params, n_trainable;          /* initializers counted as parameters       */
    uint64_t numel_trainable, numel_frozen;
    int32_t first_trained_node;         /* the earliest node reading a trainable
                                           parameter (-1 when none): the cut        */
} ot_freeze_report;

/* The initializer a value comes from, following Identity chains (how PyTorch's
   exporter writes tied tensors), or -1. */
int32_t ot_pass_source_init(const ot_graph *g, int32_t v);

/* Whether value `v` is a parameter in the sense above. */
bool ot_pass_is_param(const ot_graph *g, int32_t v);

/*
 * Sets OT_VAL_TRAINABLE on the parameters the options select and clears it on
 * the others. `head` is the detected head (for the presets; may be NULL when
 * none was found, then feature-extract and fine-tune fail). *rep may be NULL.
 * Errors: OT_ERR_ARG (a pattern or name matches nothing; a preset needs a head
 * or a global pooling the graph lacks).
 */
ot_status ot_pass_freeze(ot_graph *g, const ot_freeze_opts *opts, const ot_head *head,
                         ot_freeze_report *rep, ot_err *err);

/*
 * ot_pass_freeze for a model whose image input has dynamic spatial dims: the
 * fine-tune preset finds the last stage from static shapes, so the shapes are
 * inferred on a copy with the image side set to `image_size`, and the
 * resulting flags are set on `g`. With static dims (or image_size 0) it is
 * ot_pass_freeze. Errors as ot_pass_freeze.
 */
ot_status ot_pass_freeze_at_size(ot_graph *g, const ot_freeze_opts *opts, const ot_head *head,
                                 int64_t image_size, ot_freeze_report *rep, ot_err *err);

/*
 * Replaces the head's weight (and bias) with new tensors for `n_classes`
 * outputs, same node form and weight layout (Gemm transB=1: [N, in]), drawn
 * from U(-1/sqrt(in), 1/sqrt(in)) as nn.Linear's default initialisation, with
 * a generator seeded by `seed`. The values keep their names, are marked
 * DIRTY, and the shapes downstream (graph outputs included) follow.
 * Errors: OT_ERR_ARG (n_classes < 1, no head), OT_ERR_NOMEM, OT_ERR_SHAPE.
 */
ot_status ot_pass_swap_head(ot_graph *g, const ot_head *head, int64_t n_classes, uint64_t seed,
                            ot_err *err);

#endif
