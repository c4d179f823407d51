/*
 * meta.h: the preprocessing and class names a trained model carries in its
 * metadata_props, so that `onnxtrain eval` and deployment code can prepare
 * images the way training did. Keys (all strings):
 *
 *   onnxtrain.image_size     "224"            resize shorter side, center crop
 *   onnxtrain.mean           "0.485,0.456,0.406"
 *   onnxtrain.std            "0.229,0.224,0.225"
 *   onnxtrain.channel_order  "RGB"
 *   onnxtrain.layout         "NCHW"
 *   onnxtrain.classes        class names, one per line
 *
 * Values are written with a fixed format so that the same training run gives
 * the same file.
 */
#ifndef OT_TRAIN_META_H
#define OT_TRAIN_META_H

#include "data/data.h"
#include "graph/graph.h"

/* Sets (adds or replaces) the keys above. `classes` may be NULL.
   Errors: OT_ERR_NOMEM. */
ot_status ot_train_meta_write(ot_graph *g, const ot_data_transform *t, const char *const *classes,
                              int n_classes, ot_err *err);

/* Reads image size, mean and std into *t when the model has them; returns
   true when it found onnxtrain.image_size. */
bool ot_train_meta_read(const ot_graph *g, ot_data_transform *t);

/* A metadata value, or NULL. Borrowed from the graph. */
const char *ot_graph_meta(const ot_graph *g, const char *key);

#endif
