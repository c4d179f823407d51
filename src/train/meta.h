/*
 * meta.h: the preprocessing and class names a trained model carries in its
 * metadata_props, so that `onnxtrain eval` and deployment code can prepare
 * images the way training did. Keys (all strings):
 *
 *   onnxtrain.image_size     "224"            resize shorter side, center crop
 *   onnxtrain.mean           "0.485,0.456,0.406"
 *   onnxtrain.std            "0.229,0.224,0.225"
 *   onnxtrain.channel_order  "RGB"
 *   onnxtrain.layout         "NCHW", or "NHWC" for an input that takes NHWC
 *                            images (train/layout.h)
 *   onnxtrain.classes        class names, a JSON array of strings:
 *                            ["cat","dog"] (earlier versions wrote the names
 *                            joined by newlines; readers still take that)
 *
 * Values are written with a fixed format so that the same training run gives
 * the same file.
 */
#ifndef OT_TRAIN_META_H
#define OT_TRAIN_META_H

#include "data/data.h"
#include "graph/graph.h"

/* Sets (adds or replaces) the keys above. `classes` may be NULL.
   Errors: OT_ERR_ARG (a class name that is not valid UTF-8, or given twice),
   OT_ERR_NOMEM. */
ot_status ot_train_meta_write(ot_graph *g, const ot_data_transform *t, const char *const *classes,
                              int n_classes, ot_err *err);

/* Sets onnxtrain.classes alone, as a JSON array of the n_classes names.
   Errors as ot_train_meta_write. */
ot_status ot_train_meta_set_classes(ot_graph *g, const char *const *classes, int n_classes,
                                    ot_err *err);

/* Reads image size, mean and std into *t when the model has them; returns
   true when it found onnxtrain.image_size. */
bool ot_train_meta_read(const ot_graph *g, ot_data_transform *t);

/* The class names of onnxtrain.classes, in class order: the one reader that
 * predict, eval, export and finetune use, so they all agree. A value starting
 * with '[' (after white space) is a JSON array of strings (escapes decoded,
 * \u0000 refused); any other value is the newline-joined list earlier versions
 * wrote. Every name must be valid UTF-8 and unique.
 * On success *names (NULL and *n = 0 when the model has no such key) is one
 * ot_malloc block holding the pointers and the strings: release it with
 * ot_free. Errors: OT_ERR_MODEL (not an array of strings, no names, invalid
 * UTF-8, a duplicate; the message says which), OT_ERR_NOMEM. */
ot_status ot_train_meta_classes(const ot_graph *g, char ***names, int *n, ot_err *err);

/* The class setup a training run needs, checked once before it starts, the
 * same way for every data format: the data has at least 2 classes; the head
 * (n_outputs; 0 when not known) has at least 2 outputs and exactly one per
 * class, so the class names written to the model match its outputs; every
 * label of the images idx[0..n_idx) (idx NULL: all) lies in 0 .. classes - 1.
 * Looks up labels only (an image folder reads no image). Errors: OT_ERR_ARG
 * saying what is wrong, and the errors of ot_data_get. */
ot_status ot_train_check_classes(const ot_dataset *data, const int64_t *idx, int64_t n_idx,
                                 int64_t n_outputs, ot_err *err);

/* A metadata value, or NULL. Borrowed from the graph. */
const char *ot_graph_meta(const ot_graph *g, const char *key);

#endif
