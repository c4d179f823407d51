/*
 * pb.h: helpers shared by the importer and the exporter (internal to
 * src/onnx/): the generated protobuf-c header, an arena-backed protobuf-c
 * allocator, packing a message into the graph arena, and TensorProto decoding.
 */
#ifndef OT_ONNX_PB_H
#define OT_ONNX_PB_H

#include <protobuf-c/protobuf-c.h>

#include <sys/types.h>
#include "onnx.pb-c.h"
#include "onnx/onnx.h"

/* A protobuf-c allocator that takes memory from an arena; free does nothing.
   Messages unpacked with it need no free_unpacked and may point anywhere. */
void ot_pb_arena_allocator(ot_arena *a, ProtobufCAllocator *out);

/* Packs a message into `a`; returns false when out of memory. */
bool ot_pb_pack(const ProtobufCMessage *m, ot_arena *a, ot_blob *out);

/* Unpacks a blob with an arena allocator; NULL on failure (the blob came from
   ot_pb_pack, so failure means out of memory). */
void *ot_pb_unpack(const ProtobufCMessageDescriptor *d, ot_blob b, ot_arena *a);

/*
 * Checks the wire format of `data` against message descriptor `d` without
 * unpacking: every length within its parent, no group wire types, and
 * sub-messages nested no deeper than `max_depth`. Iterative, so hostile input
 * cannot overflow the stack. Errors: OT_ERR_PARSE with the byte offset.
 */
ot_status ot_pb_prescan(const uint8_t *data, size_t len, const ProtobufCMessageDescriptor *d,
                        int max_depth, ot_err *err);

/* Where a TensorProto's bytes come from when decoded. */
typedef struct ot_tensor_src {
    const char *dir;     /* model folder for external data; NULL: refuse external */
    uint64_t max_bytes;  /* size limit                                           */
    bool skip_external;  /* validate external data but do not read it            */
} ot_tensor_src;

/*
 * Decodes a TensorProto: dtype, dims (checked: rank <= OT_MAX_DIMS, no negative
 * dims, no overflow, below the size limit) and data. When `steal` is true the
 * raw_data buffer of `tp` is taken over (tp->raw_data is cleared) instead of
 * copied. The data is heap memory (ot_malloc) owned by the caller; NULL when
 * numel is 0. `what` names the tensor in messages ("initializer 'w'").
 * *storage receives the form the bytes came in; *is_external whether they came
 * from a side file.
 * Errors: OT_ERR_MODEL (sizes disagree, bad dims), OT_ERR_UNSUPPORTED (dtype or
 * rank), OT_ERR_IO (external data), OT_ERR_NOMEM.
 */
ot_status ot_pb_decode_tensor(Onnx__TensorProto *tp, const ot_tensor_src *src, bool steal,
                              const char *what, ot_tensor *t, ot_storage *storage,
                              bool *is_external, ot_err *err);

/*
 * The model file (device, inode) whose external data the tensors decoded next
 * belong to; ot_onnx_import_file sets it around an import, and clears it with
 * has = false.
 */
void ot_pb_set_reading_model(bool has, dev_t dev, ino_t ino);

/*
 * True when this process has opened the file (device, inode) as the external
 * data of a model other than (model_dev, model_ino) (or of a model read from
 * memory), or when it opened more such files than it keeps track of. The
 * exporter never removes such a file as an earlier version of its output's
 * data: the model it came from still reads it. Pass the replaced output's
 * identity as the model (has_model false when there was none).
 */
bool ot_pb_external_was_read(dev_t dev, ino_t ino, bool has_model, dev_t model_dev,
                             ino_t model_ino);

#endif
