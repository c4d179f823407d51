/*
 * batch.h: the batch dim a model declares (convert --batch, and every
 * trained model onnxtrain writes).
 *
 * Sets dim 0 of the graph inputs (not initializers), of the outputs whose
 * dim 0 was an input's batch dim (or an unnamed dynamic one), and of the
 * value_info entries that carry an input's old batch dim, to a fixed size or
 * to the dynamic symbol 'N'. A Reshape whose constant target shape starts
 * with the old fixed batch is reported (it pins the batch whatever the
 * inputs declare); an output whose dim 0 is something else is left as it is
 * and reported. Reports go through ot_log as warnings.
 */
#ifndef OT_PASSES_BATCH_H
#define OT_PASSES_BATCH_H

#include "graph/graph.h"

/*
 * Sets the batch dim: `dim` >= 1, or OT_DIM_DYNAMIC. A fixed size that would
 * make a declared tensor larger than max_bytes (0: the import's default
 * limit) is refused, naming the accepted range. *n_changed (may be NULL):
 * the declarations changed. Errors (OT_ERR_ARG: an input of unknown rank or
 * a scalar input, no input besides initializers, a size too large;
 * OT_ERR_NOMEM) leave the graph unchanged.
 */
ot_status ot_pass_set_batch(ot_graph *g, int64_t dim, uint64_t max_bytes, int *n_changed,
                            ot_err *err);

/*
 * The batch of a model as onnxtrain writes it: `dim` >= 1 or
 * OT_DIM_DYNAMIC as ot_pass_set_batch; 0 makes it dynamic ('N') when some
 * input declares a fixed batch (a PyTorch export traced at batch 2 would
 * otherwise refuse batch 1 in a runtime) and leaves a model whose inputs are
 * all dynamic already, or that has an input without a batch dim, as it is.
 * *made_dynamic (may be NULL) tells whether dim 0 made a fixed batch
 * dynamic.
 */
ot_status ot_pass_export_batch(ot_graph *g, int64_t dim, bool *made_dynamic, ot_err *err);

/*
 * Makes Reshape nodes follow the batch: where every graph input declares the
 * same fixed batch B, a Reshape whose constant target shape starts with B,
 * whose data has dim 0 = B and whose allowzero is 0 gets 0 (copy dim 0)
 * there instead; so does the `shape` attribute of a Reshape before opset 5. At batch B it computes the same; at any other batch the
 * shape follows. The model zoo's Caffe2-era heads are Reshape(x, [1, -1])
 * in files that declare batch 1. Returns the number of Reshapes changed.
 */
int ot_pass_batch_reshapes(ot_graph *g);

#endif
