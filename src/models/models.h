/*
 * models.h: model builders. They make a graph in torchvision's layout (the
 * same initializer names, node structure and initialisation as torchvision's
 * constructors with weights=None), ready to train or export, so that a demo
 * or a user can start from a known network without a download.
 */
#ifndef OT_MODELS_H
#define OT_MODELS_H

#include "graph/graph.h"

typedef struct ot_model_spec {
    const char *name;    /* "resnet18", "resnet34"                        */
    int64_t classes;     /* outputs of the head (fc)                      */
    int64_t image_size;  /* declared input side; 0: dynamic (any size)    */
    uint64_t seed;       /* initialisation                                */
} ot_model_spec;

/* Names of the builders, NULL-terminated. Static storage. */
const char *const *ot_model_names(void);

/*
 * Builds the model: input "input" [N, 3, S, S] (N symbolic), output "logits"
 * [N, classes], opset 13, BatchNormalization kept. Initialisation as
 * torchvision: convolutions Kaiming-normal (fan_out, ReLU gain), BN weight 1,
 * bias 0, running mean 0, variance 1, fc as nn.Linear (U(-1/sqrt(512),
 * 1/sqrt(512))), from a generator seeded by `seed`.
 * Errors: OT_ERR_ARG (unknown name, classes < 1), OT_ERR_NOMEM.
 */
ot_status ot_model_build(const ot_model_spec *spec, ot_graph **out, ot_err *err);

#endif
