/*
 * onnxtrain.h: the public C API of onnxtrain.
 *
 * onnxtrain imports an ONNX model into an in-memory graph, lets the caller
 * inspect and edit it, and exports it back to ONNX without losing anything it
 * did not change. Handles are opaque; every function that can fail returns an
 * ot_status and fills an ot_err with a one-line message.
 *
 * This header is the stable surface for programs that link libonnxtrain.
 * Internal headers (src/graph/graph.h and friends) expose more.
 */
#ifndef ONNXTRAIN_H
#define ONNXTRAIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OT_VERSION_MAJOR 0
#define OT_VERSION_MINOR 1
#define OT_VERSION_PATCH 0
#define OT_VERSION_STRING "0.1.0"

typedef enum {
    OT_OK = 0,
    OT_ERR_NOMEM,
    OT_ERR_IO,
    OT_ERR_ARG,
    OT_ERR_SHAPE,
    OT_ERR_BACKEND,
    OT_ERR_INTERNAL,
    OT_ERR_PARSE,       /* bytes are not a valid protobuf or file format           */
    OT_ERR_MODEL,       /* valid protobuf, invalid graph (dangling names, cycles)   */
    OT_ERR_UNSUPPORTED, /* op, opset, dtype or attribute value we do not implement */
} ot_status;

#define OT_ERR_MSG_MAX 1024

/* An error: the code and a one-line message. Caller's storage. */
typedef struct ot_err {
    ot_status code;
    char msg[OT_ERR_MSG_MAX];
} ot_err;

/* A graph: the in-memory model. Owns everything it refers to. */
typedef struct ot_graph ot_graph;

/* Options for ot_model_import. Zero-initialise, then set what you need. */
typedef struct ot_import_opts {
    uint64_t max_tensor_bytes; /* 0: the default limit, 16 GiB                  */
    int skip_external_data;    /* 1: do not read external data (inspect only)   */
} ot_import_opts;

/* Where export puts tensor bytes. */
typedef enum {
    OT_DATA_KEEP = 0, /* as imported: external tensors stay external           */
    OT_DATA_INLINE,   /* every tensor inside the model file                    */
    OT_DATA_EXTERNAL, /* tensors of at least `external_threshold` bytes go to
                         a side file named after the output, `<out>.data`      */
} ot_data_placement;

typedef struct ot_export_opts {
    ot_data_placement placement;
    uint64_t external_threshold; /* 0: 1024 bytes */
} ot_export_opts;

/* Returns the library version, "MAJOR.MINOR.PATCH". Static storage. */
const char *ot_version(void);

/* Returns a short name for a status code ("parse error", ...). Static storage. */
const char *ot_status_str(ot_status s);

/*
 * Reads an ONNX model file into a new graph. `opts` may be NULL.
 * On success *out owns the graph (release with ot_graph_free).
 * Errors: OT_ERR_IO (cannot read), OT_ERR_PARSE (not an ONNX protobuf),
 * OT_ERR_MODEL (invalid graph), OT_ERR_UNSUPPORTED (opset or op too new).
 */
ot_status ot_model_import(const char *path, const ot_import_opts *opts, ot_graph **out,
                          ot_err *err);

/*
 * Writes the graph to an ONNX file. The file is written to a temporary name in
 * the same folder and renamed on success; on failure nothing is left behind.
 * `opts` may be NULL. Errors: OT_ERR_IO, OT_ERR_NOMEM, OT_ERR_ARG.
 */
ot_status ot_model_export(const ot_graph *g, const char *path, const ot_export_opts *opts,
                          ot_err *err);

/* Releases a graph and everything it owns. NULL does nothing. */
void ot_graph_free(ot_graph *g);

/* Counts, for callers that only need a summary. Cannot fail. */
size_t ot_graph_n_nodes(const ot_graph *g);
size_t ot_graph_n_initializers(const ot_graph *g);
/* Total number of elements over the graph's initializers. */
uint64_t ot_graph_n_params(const ot_graph *g);

#ifdef __cplusplus
}
#endif
#endif
