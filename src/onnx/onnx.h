/*
 * onnx.h: ONNX import (ModelProto -> graph IR) and export (graph IR ->
 * ModelProto). src/onnx/ is the only code that sees protobuf-c structs.
 *
 * Import validates as it goes (see docs/architecture.md, "Import"): wire-format
 * depth pre-scan, sizes checked before allocation, topological order, defined
 * inputs, single producers, known opsets and op types. Export writes to a
 * temporary file beside the target and renames it on success.
 */
#ifndef OT_ONNX_H
#define OT_ONNX_H

#include "core/file.h"
#include "graph/graph.h"

/* Deepest message nesting the importer accepts (protobuf-c unpacks
   recursively; the pre-scan refuses deeper input before unpacking). */
#define OT_ONNX_MAX_DEPTH 64

/* Newest default-domain opset the importer accepts. */
#define OT_ONNX_MAX_OPSET 21

/* Largest TensorProto.DataType the importer accepts in a declared type (ONNX
   1.16 defines 0 to 22; the IR computes with 1 to 16 and keeps the others). */
#define OT_ONNX_MAX_ELEM_TYPE 22

/* Most attributes one node may have. ONNX's operators define at most a few
   dozen; a file with more is refused before its attributes are read. */
#define OT_ONNX_MAX_NODE_ATTRS 1024

/* Imports a model file. `opts` may be NULL. On success *out owns a graph whose
   nodes are topologically ordered and whose shapes are inferred.
   Errors: OT_ERR_IO, OT_ERR_PARSE, OT_ERR_MODEL, OT_ERR_UNSUPPORTED,
   OT_ERR_NOMEM; the message starts with the path. */
ot_status ot_onnx_import_file(const char *path, const ot_import_opts *opts, ot_graph **out,
                              ot_err *err);

/* Imports from memory. `name` is used in messages; `dir` is the folder that
   external data resolves against (NULL: external data is refused). */
ot_status ot_onnx_import_buffer(const void *data, size_t len, const char *name, const char *dir,
                                const ot_import_opts *opts, ot_graph **out, ot_err *err);

/* Exports the graph to `path` (see ot_model_export). */
ot_status ot_onnx_export_file(const ot_graph *g, const char *path, const ot_export_opts *opts,
                              ot_err *err);

/*
 * As ot_onnx_export_file, then appends one more ModelProto.metadata_props
 * entry {crc_key: 8 lowercase hex digits}, the CRC-32 (zlib's) of every byte
 * of the file before that entry. The entry's bytes are
 * ot_onnx_crc_trailer(crc_key, crc): a reader checks a file by comparing its
 * last bytes with them. Errors: those of ot_onnx_export_file.
 */
ot_status ot_onnx_export_file_crc(const ot_graph *g, const char *path,
                                  const ot_export_opts *opts, const char *crc_key, ot_err *err);

/* Writes the metadata entry {key: crc as 8 hex digits} as protobuf bytes
   (field 14 of ModelProto) into out[0 .. cap); returns their count, 0 when
   they do not fit or the key is longer than 117 bytes. Cannot fail
   otherwise. */
size_t ot_onnx_crc_trailer(const char *key, uint32_t crc, uint8_t *out, size_t cap);

/* zlib's CRC-32 of data[0 .. len), continuing from crc (0 to start). */
uint32_t ot_onnx_crc32(uint32_t crc, const void *data, size_t len);

/* Reads one TensorProto file (the format of ONNX test data and of the model
   zoo's test_data_set_* folders) into a tensor whose data the caller owns
   (release with ot_free(t->data)); *name_out, when not NULL, gets an ot_malloc'ed
   copy of the tensor's name ("" when it has none; release with ot_free).
   Errors: OT_ERR_IO, OT_ERR_PARSE (truncated, not a TensorProto),
   OT_ERR_MODEL (sizes disagree), OT_ERR_UNSUPPORTED (string dtype, external data). */
ot_status ot_onnx_read_tensor(const char *path, ot_tensor *t, char **name_out, ot_err *err);

/* Writes a tensor as a TensorProto file (raw_data) named `name`, atomically
   (temporary file and rename). Errors: OT_ERR_IO, OT_ERR_NOMEM. */
ot_status ot_onnx_write_tensor(const char *path, const char *name, const ot_tensor *t,
                               ot_err *err);

/* ot_onnx_write_tensor up to the rename: on success *af holds the finished
   temporary file, for ot_atomic_rename (or ot_atomic_abort), so that several
   files can be put in place together; on failure nothing is left. */
ot_status ot_onnx_write_tensor_staged(const char *path, const char *name, const ot_tensor *t,
                                      ot_atomic_file *af, ot_err *err);

/* Runs only the wire-format pre-scan of the importer on a ModelProto buffer
   (for tests and the fuzzer). Errors: OT_ERR_PARSE. */
ot_status ot_pb_prescan_model_for_test(const void *data, size_t len, ot_err *err);

#endif
