/*
 * layout.h: where an image input keeps its channels.
 *
 * The data loader and the image preparation write NCHW batches. Most models
 * take them as they are; models converted from TensorFlow (the ONNX model
 * zoo's EfficientNet-Lite4) take NHWC images and transpose them to NCHW in
 * their first node. ot_image_layout_find says which form an input has, once;
 * the trainer, evaluation, calibration and prediction then bind their
 * batches with ot_image_tensor and, for an NHWC input, transpose the
 * loader's NCHW batch on the host (ot_image_batch). The model itself, and so
 * its export, is not changed.
 *
 * An input is NHWC when its only consumer is a Transpose with perm
 * [0, 3, 1, 2], or, failing that, when it has rank 4, its last dim is 1 or 3
 * and its dim 1 is neither (a known 1 or 3 in dim 1 means NCHW).
 */
#ifndef OT_TRAIN_LAYOUT_H
#define OT_TRAIN_LAYOUT_H

#include "graph/graph.h"

typedef struct ot_image_layout {
    bool nhwc;
    int c, h, w; /* the dims of channels, height and width: 1, 2, 3 (NCHW) or
                    3, 1, 2 (NHWC) */
} ot_image_layout;

/* The layout of input `image` of g (NCHW for anything not rank 4). */
ot_image_layout ot_image_layout_find(const ot_graph *g, int32_t image);

/* The channels the input declares, or `def` where it does not. */
int ot_image_channels(const ot_graph *g, int32_t image, const ot_image_layout *l, int def);

/* The input's static square side, or 0 where its height and width are not
   one known size. */
int64_t ot_image_side(const ot_graph *g, int32_t image, const ot_image_layout *l);

/* A float tensor of n images of c channels, s x s, in layout l, over data. */
ot_tensor ot_image_tensor(const ot_image_layout *l, int n, int c, int s, void *data);

/* The batch to bind: nchw itself for an NCHW input, else nchw transposed
   into tmp (n * c * s * s floats). */
float *ot_image_batch(const ot_image_layout *l, float *nchw, float *tmp, int n, int c, int s);

#endif
