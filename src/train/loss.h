/*
 * loss.h: softmax cross-entropy on class indices, the loss of a classifier.
 *
 * It matches torch.nn.CrossEntropyLoss(reduction="mean", label_smoothing=eps)
 * on float32 logits (N, C) and int64 class indices (N). With the target
 * distribution q = (1 - eps) * onehot(y) + eps / C and p = softmax(x),
 *
 *   loss = (1/N) sum_n sum_c -q[n,c] log p[n,c]
 *        = (1/N) sum_n (1 - eps) (lse_n - x[n,y_n]) + eps (lse_n - mean_c x[n,c])
 *
 * where lse_n = log sum_c exp x[n,c], computed as m + log sum exp(x - m) with
 * m the row maximum so that no exp overflows. The gradient is
 *
 *   dloss/dx[n,c] = (p[n,c] - q[n,c]) / N.
 *
 * Not supported: class weights, ignore_index (PyTorch's -100 is an error here),
 * probability targets, reductions other than the mean.
 * Reference: https://pytorch.org/docs/1.13/generated/torch.nn.CrossEntropyLoss.html
 */
#ifndef OT_TRAIN_LOSS_H
#define OT_TRAIN_LOSS_H

#include "core/core.h"

/*
 * Forward pass. logits: (N, C) row-major; labels: (N), each in [0, C).
 * Writes the mean loss to *loss and, when n_correct is not NULL, the number of
 * rows whose arg-max (the first maximum, as torch.argmax) equals the label.
 * Nothing is written unless every label is valid. Allocates nothing; the
 * caller owns every buffer.
 * Errors: OT_ERR_ARG (NULL pointer, N or C below 1, eps outside [0, 1], a
 * label outside [0, C): the message names the row and the label).
 */
ot_status ot_loss_xent_forward(const float *logits, const int64_t *labels, int64_t N, int64_t C,
                               float label_smoothing, float *loss, int64_t *n_correct,
                               ot_err *err);

/*
 * Backward pass: writes dlogits (N, C) = (softmax(logits) - q) / N, the
 * gradient of the mean loss. dlogits may alias logits. Allocates nothing.
 * Errors: as ot_loss_xent_forward; dlogits is untouched on error.
 */
ot_status ot_loss_xent_backward(const float *logits, const int64_t *labels, int64_t N, int64_t C,
                                float label_smoothing, float *dlogits, ot_err *err);

#endif
