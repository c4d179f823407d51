/*
 * train_graph.h: from an inference graph (after the freeze and swap-head
 * passes) to the two graphs a training step runs:
 *
 *   prefix graph   the frozen prefix: image -> cut values. A pure function of
 *                  the image when BN there is in eval mode and no Dropout is
 *                  active, so its outputs can be cached across epochs.
 *   step graph     cut values + labels (+ learning rates and the step
 *                  count) -> loss and logits; the step updates the trained
 *                  parameters, the optimizer's moments and the BN running
 *                  statistics in the executor's state (see below).
 *
 * The BN policy (docs/training.md): BatchNormalization nodes that read a
 * trained scale or bias run in training mode (batch statistics, running
 * statistics updated with the node's momentum in ONNX's convention); the
 * others run on their running statistics. bn_all_train reproduces PyTorch's
 * model.train(): every BN uses batch statistics and updates its running
 * statistics, frozen parameters or not.
 *
 * Both graphs are clones sharing the model graph's tensors; trained
 * parameters and running statistics are OT_VAL_STATE in the step graph, so
 * the executor keeps mutable copies. The step updates them itself:
 * BatchNormTrain writes its new running statistics over the old ones, and
 * with opts.optim the optimizer pass (optim.h) appends one update node per
 * trained parameter (and the clipping nodes), whose moments are state too.
 * Without opts.optim the step graph outputs the gradients instead (tests
 * compare them with PyTorch's).
 */
#ifndef OT_TRAIN_GRAPH_H
#define OT_TRAIN_GRAPH_H

#include "graph/graph.h"
#include "train/optim.h"

typedef struct ot_train_graph_opts {
    bool bn_all_train;      /* --bn train                                    */
    float label_smoothing;
    /* the optimizer the step applies; NULL: no updates, the step outputs the
       gradients (outputs 2 .. 2 + n_params)                                 */
    const ot_optim_opts *optim;
    double clip_grad;           /* with optim: global norm to clip to; 0: off */
    const int32_t *head_params; /* with optim: the parameters that learn at
                                   the head's rate (group 1)                 */
    int n_head_params;
    /* data-parallel training (src/dist/dist.h): > 0 puts GradAllReduce
       nodes between the backward pass and the updates, each reducing the
       gradients of about this many bytes, in the order the backward pass
       produces them; 0: none                                                */
    size_t bucket_bytes;
    /* with bucket_bytes: start each bucket's reduction as soon as the
       backward pass has produced its gradients, and wait for it before the
       updates (GradAllReduce phase=1 / phase=2); otherwise each reduction
       runs and is waited for after the backward pass. The sums are the same. */
    bool overlap;
    /* BatchNorm in training mode gets sync=1 (BatchNormTrain, and
       BatchNormGrad): over several ranks its kernels reduce the batch
       statistics; in one process the same plain kernels run alone, so that
       one process computes what N ranks compute (docs/distributed.md)     */
    bool sync_bn;
    /* with optim: dynamic loss scaling (train/loss_scale.h): the backward
       pass starts from the loss times a float scalar input, the updates
       unscale and skip a step whose gradients overflowed; output 2 is then
       the scaled gradients' norm, or with clip_grad the unscaled ones' (not
       finite: skipped). */
    bool loss_scaling;
} ot_train_graph_opts;

typedef struct ot_train_graph {
    ot_graph *prefix;       /* image -> cut values; NULL when the prefix is empty
                               (the step graph then takes the image)           */
    ot_graph *step;
    int32_t image;          /* the image input (model graph's value id)        */
    int32_t logits;         /* (N, C), in the step graph (ot_pass_logits_2d)   */
    int32_t loss;           /* scalar, in the step graph                       */
    int32_t labels;         /* int64 [N] input of the step graph               */
    int32_t seed;           /* int64 scalar input drawing Dropout masks; -1 when
                               the step graph has no active Dropout            */
    int32_t loss_scale;     /* float scalar input: the loss scale (opts.
                               loss_scaling); -1 without                       */
    int n_cut;
    int32_t *cut;           /* cut value ids (same ids in all three graphs)    */
    int n_params;
    int32_t *params;        /* trained parameters (value ids)                  */
    int32_t *grads;         /* their gradients in the step graph               */
    int n_stats;
    int32_t *stats;         /* running statistics updated by training-mode BN  */
    int32_t *stats_new;     /* the step graph's values of their new value (the
                               executor writes them over the statistics)       */
    bool has_optim;         /* opts.optim was set: the step updates            */
    ot_optim_graph optim;   /* what the optimizer pass added; the step's
                               output 2 is optim.grad_norm when it is >= 0     */
    int *group;             /* per trained parameter: 0, or 1 for the head     */
    bool cacheable;         /* prefix deterministic: cache may apply           */
    const char *why_not_cacheable; /* static text when !cacheable              */
    int n_bn_train, n_bn_eval;
    int n_dropout_train;
    int n_backward_nodes;
    int n_buckets;          /* GradAllReduce nodes (opts.bucket_bytes)         */
    size_t max_bucket_numel; /* floats in the largest bucket                   */
    size_t stage_numel;     /* floats in all buckets (the communicator's buffer) */
    int64_t max_bn_channels; /* widest training-mode BatchNorm (sync_bn)        */
} ot_train_graph;

/*
 * Builds the graphs. `model` is the inference graph with OT_VAL_TRAINABLE set
 * (ot_pass_freeze); it must outlive *tg. Errors: OT_ERR_ARG (nothing trains;
 * no image input; the logits cannot be found), OT_ERR_UNSUPPORTED (an op with
 * no gradient rule between a trained parameter and the loss), OT_ERR_NOMEM.
 */
ot_status ot_train_graph_build(const ot_graph *model, const ot_train_graph_opts *opts,
                               ot_train_graph *tg, ot_err *err);

void ot_train_graph_fini(ot_train_graph *tg);

/* Lets a clone take any batch and image size: the image input's batch and
   spatial dims become dynamic, and shapes the file declared for other values
   (often with batch 1 in zoo files) stop constraining inference. */
void ot_train_free_image_size(ot_graph *g, int32_t image);

/* The value holding the logits in an inference graph: the input of a trailing
   Softmax/LogSoftmax before the (first) graph output, else that output. */
int32_t ot_train_find_logits(const ot_graph *g);

#endif
