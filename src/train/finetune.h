/*
 * finetune.h: the fine-tuning recipe behind ot_finetune (include/onnxtrain.h)
 * and the scoring behind ot_evaluate, with the hooks the command line adds.
 *
 * The recipe: import the model (a checkpoint given as the model starts a new
 * run from its weights), open the data (class selection, per-class
 * sampling, validation split or set), decide the number of classes (the
 * data's unless given; a head with another number of outputs is replaced),
 * freeze, warn about a model whose BatchNorm was folded into its
 * convolutions, train (trainer.h), score the test split, write the metadata
 * and export. Every line the command prints about the run comes through the
 * progress callback as an OT_FT_MESSAGE, so a program sees the same account.
 */
#ifndef OT_TRAIN_FINETUNE_H
#define OT_TRAIN_FINETUNE_H

#include "data/data.h"
#include "graph/graph.h"
#include "train/trainer.h"

/* What the command line adds to a run; every field may be NULL / false. */
typedef struct ot_finetune_hooks {
    /* after a checkpoint was restored (ot_train_opts.resumed) */
    void (*resumed)(const ot_train_checkpoint *ck, void *user);
    /* --profile: time every step and report at the end */
    bool profile;
    void (*profile_report)(const struct ot_exec *const *xs, const char *const *names, int n,
                           double data_wait_s, void *user);
    /* the trained graph before its batch dim is set, its metadata written
       and it is exported (the command's conversions for deployment);
       `model` names the input file */
    ot_status (*prepare_export)(ot_graph *g, const char *model, void *user, ot_err *err);
    void *user;
} ot_finetune_hooks;

/* ot_finetune with hooks (NULL: none). */
ot_status ot_finetune_run(const ot_finetune_opts *o, const ot_finetune_hooks *hooks,
                          ot_finetune_result *res, ot_err *err);

/* The data ot_evaluate scores `g` on, split `split` of o->data with o's
   class selection, and the preprocessing it applies (the model's, overridden
   by o); *ds is the caller's to free. Warns through o->progress when the
   model's class names are not the data's. Errors: those of ot_data_open_with
   and ot_data_select; OT_ERR_MODEL (malformed class names in the model). */
ot_status ot_evaluate_data(const ot_evaluate_opts *o, const ot_graph *g, ot_data_split split,
                           ot_dataset **ds, ot_data_transform *t, ot_err *err);

/* The preprocessing a model records (ot_train_meta_read), else its input
   size (224 when dynamic) with ImageNet normalisation. */
void ot_finetune_model_transform(const ot_graph *g, ot_data_transform *t);

/* Whether the trained part of a frozen graph (OT_VAL_TRAINABLE set) has a
   convolution besides the head node and no normalisation node at or after
   the first trained node: the sign of a model exported with its BatchNorm
   folded (a model designed without normalisation looks the same). */
bool ot_finetune_bn_folded(const ot_graph *g, int32_t first_trained_node, int32_t head_node);

#endif
