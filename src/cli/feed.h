/*
 * feed.h: what `onnxtrain run` and `onnxtrain test-data` share: binding
 * tensor files (or seeded random data) to a model's graph inputs, checking
 * them against the declared types before compiling, compiling with the
 * shape-deciding inputs as constants, and printing numbers for people and
 * for JSON.
 *
 * "Real" inputs are the graph inputs that are not initializers: IR 3 files
 * (the old model zoo) list every weight as a graph input too, and those keep
 * their initializer unless bound explicitly, which these commands never do.
 */
#ifndef OT_CLI_FEED_H
#define OT_CLI_FEED_H

#include "cli/cli.h"
#include "exec/exec.h"

/* The tensors bound to a model's real inputs. Owns the tensor data. */
typedef struct ot_feed {
    int n;              /* number of real inputs                           */
    int32_t *ids;       /* their value ids, in graph-input order           */
    ot_tensor *tensors; /* the bound tensor of each (data owned)           */
    char **from;        /* the file each came from (owned), NULL: random   */
    bool *bound;
} ot_feed;

/* Collects the real inputs of `g`, none bound yet. Errors: OT_ERR_NOMEM. */
ot_status ot_feed_init(ot_feed *f, const ot_graph *g, ot_err *err);
/* Releases the bound tensors. NULL-safe on a zeroed feed. */
void ot_feed_fini(ot_feed *f);

/*
 * Binds one tensor file. `spec` is "name=FILE.pb" (by name) or "FILE.pb":
 * by the TensorProto's name when it names a real input, else the
 * `position`-th real input. Errors: OT_ERR_IO/OT_ERR_PARSE/... from reading
 * the file (the message starts with its path), OT_ERR_ARG (unknown name,
 * position past the last input, input bound twice).
 */
ot_status ot_feed_add_file(ot_feed *f, const ot_graph *g, const char *spec, int position,
                           ot_err *err);

/*
 * Fills every input not bound yet with seeded random data of its declared
 * shape: floats uniform in [-1, 1), integers in [0, 4), bools 0 or 1. A
 * dynamic dim 0 becomes `batch`; any other dynamic dim is an OT_ERR_ARG
 * naming the input, as is an unknown rank or dtype.
 */
ot_status ot_feed_random(ot_feed *f, const ot_graph *g, int64_t batch, uint64_t seed,
                         ot_err *err);

/*
 * Checks the bound tensors against the declarations: every real input bound,
 * the declared dtype, rank and static dims (a declared dtype or rank that is
 * unknown accepts anything). Errors: OT_ERR_ARG naming the input, e.g.
 * "input 'x': shape [1,3,32,32] does not match the declared [N,3,224,224]".
 */
ot_status ot_feed_check(const ot_feed *f, const ot_graph *g, ot_err *err);

/* Fills `inputs` (f->n entries) for ot_exec_compile: the bound tensors, with
   const_value set for the inputs that decide shapes. */
void ot_feed_exec_inputs(const ot_feed *f, const ot_graph *g, ot_exec_input *inputs);

/* True when two feeds compile to the same executor: equal dtypes and dims,
   and equal data for the constant inputs. */
bool ot_feed_same_signature(const ot_exec_input *a, const ot_exec_input *b, int n);

/* Prints element i of a numeric tensor for people: integers exactly, floats
   with %.7g, non-finite as nan, inf, -inf. */
void ot_feed_print_elem(FILE *out, const ot_tensor *t, int64_t i);

/* Formats dims as "[1,3,224,224]" ("[]" for a scalar). */
void ot_feed_dims_str(const ot_tensor *t, char *buf, size_t size);

/* Turns a flat index into "[i,j,k]" for the dims of t. */
void ot_feed_index_str(const ot_tensor *t, int64_t flat, char *buf, size_t size);

/* Creates a folder and its missing parents (mkdir -p). Errors: OT_ERR_IO. */
ot_status ot_feed_mkdirs(const char *path, ot_err *err);

#endif
