/*
 * graph.h: the in-memory model (IR). Values and nodes, referred to by id.
 *
 * A value is one named tensor, produced once (SSA): a graph input, an
 * initializer, or a node output. A node holds its op, its attributes (typed,
 * plus the bytes they came as) and the ids of its inputs and outputs.
 *
 * Losslessness: every ONNX object the importer reads keeps the fields the IR
 * does not model as a packed protobuf "shell" (ot_blob): doc strings, unknown
 * fields of newer IR versions, training_info, functions, sparse initializers.
 * The exporter starts from the shell and fills in what the IR holds, so an
 * unchanged model comes back with nothing lost.
 *
 * Ownership: the graph owns everything reachable from it, in its arena.
 * Pointers into the graph's arrays (ot_value *, ot_node *) are borrowed and
 * valid until the next edit that adds values or nodes; keep ids instead.
 */
#ifndef OT_GRAPH_H
#define OT_GRAPH_H

#include "core/core.h"

/* Packed protobuf bytes, owned by the graph. len 0: absent. */
typedef struct ot_blob {
    const uint8_t *data;
    size_t len;
} ot_blob;

/* Attribute kinds, numbered as ONNX's AttributeProto.AttributeType. */
typedef enum {
    OT_ATTR_UNDEFINED = 0,
    OT_ATTR_FLOAT = 1,
    OT_ATTR_INT = 2,
    OT_ATTR_STRING = 3,
    OT_ATTR_TENSOR = 4,
    OT_ATTR_GRAPH = 5,
    OT_ATTR_FLOATS = 6,
    OT_ATTR_INTS = 7,
    OT_ATTR_STRINGS = 8,
    OT_ATTR_TENSORS = 9,
    OT_ATTR_GRAPHS = 10,
    OT_ATTR_SPARSE_TENSOR = 11,
    OT_ATTR_SPARSE_TENSORS = 12,
    OT_ATTR_TYPE_PROTO = 13,
    OT_ATTR_TYPE_PROTOS = 14,
} ot_attr_type;

const char *ot_attr_type_name(ot_attr_type t);

typedef struct ot_attr {
    const char *name;
    ot_attr_type type;
    int64_t i;          /* INT                                                 */
    float f;            /* FLOAT                                               */
    const char *s;      /* STRING: bytes, NUL-terminated for convenience       */
    size_t s_len;       /* STRING: length without the NUL                      */
    int64_t *ints;      /* INTS                                                */
    float *floats;      /* FLOATS                                              */
    const char **strings; /* STRINGS (NUL-terminated)                          */
    size_t n;           /* element count of INTS, FLOATS, STRINGS, TENSORS...  */
    ot_tensor *t;       /* TENSOR when its dtype is numeric; NULL otherwise     */
    ot_blob raw;        /* the AttributeProto as imported; empty when a pass made
                           or changed it (then export builds it from the fields) */
} ot_attr;

/* Value flags. */
enum {
    OT_VAL_INPUT = 1u << 0,       /* listed in graph.input                          */
    OT_VAL_OUTPUT = 1u << 1,      /* listed in graph.output                         */
    OT_VAL_INIT = 1u << 2,        /* an initializer (data holds its bytes)          */
    OT_VAL_PARAM = 1u << 3,       /* a floating-point initializer: a parameter      */
    OT_VAL_TRAINABLE = 1u << 4,   /* set by the freeze pass                         */
    OT_VAL_DIRTY = 1u << 5,       /* data changed since import                      */
    OT_VAL_SHAPE_DIRTY = 1u << 6, /* declared type/shape changed since import       */
    OT_VAL_CONST = 1u << 7,       /* value known at import: initializer, Constant
                                     output, or folded shape arithmetic             */
    OT_VAL_OPAQUE = 1u << 8,      /* initializer kept as packed bytes only (string
                                     dtype, rank above OT_MAX_DIMS)                 */
    OT_VAL_EXTERNAL = 1u << 9,    /* initializer came from external data            */
    OT_VAL_DECLARED = 1u << 10,   /* named only by value_info or an output so far   */
    OT_VAL_STATE = 1u << 12,      /* an initializer that training changes (a trained
                                     parameter, BN running statistics): executors
                                     keep a mutable copy instead of a constant      */
    OT_VAL_SHAPE_DECLARED = 1u << 11, /* dtype/shape came from the file (graph input,
                                     output or value_info), not from inference      */
};

/* A dimension that is not a known constant. dim_names[i] names it when the
   file gave a symbol (dim_param), e.g. "N" or "batch". */
#define OT_DIM_DYNAMIC (-1)

/* How an initializer's bytes were stored in the file; export keeps the form. */
typedef enum {
    OT_STORE_RAW = 0, /* raw_data                                  */
    OT_STORE_TYPED,   /* float_data, int32_data, int64_data, ...   */
    OT_STORE_NONE,    /* no data field at all (zero elements)      */
} ot_storage;

typedef struct ot_value {
    const char *name;
    ot_dtype dtype;  /* OT_DTYPE_UNDEFINED when not known                      */
    int ndim;        /* -1 when the rank is not known                          */
    int64_t dims[OT_MAX_DIMS];        /* >= 0, or OT_DIM_DYNAMIC                */
    const char *dim_names[OT_MAX_DIMS]; /* symbol of a dynamic dim, or NULL     */
    int32_t producer; /* node id; -1 for inputs, initializers, undefined       */
    uint32_t flags;
    /* Constant data (OT_VAL_CONST): the bytes of an initializer, a Constant
       node's tensor, or folded shape arithmetic. `data` is owned by the graph. */
    ot_tensor data;
    ot_storage storage;  /* initializers: the form the bytes came in            */
    ot_blob tensor_shell; /* initializers: the TensorProto without its data
                             fields (name, dims, doc_string, unknown fields);
                             for OT_VAL_OPAQUE the whole TensorProto             */
} ot_value;

/* A graph input, output or value_info entry, in file order. */
typedef struct ot_io {
    int32_t value;
    ot_blob info; /* the ValueInfoProto as imported; empty when made by a pass */
} ot_io;

enum {
    OT_NODE_OPAQUE = 1u << 0,     /* op not in the table: kept, not executable      */
    OT_NODE_DIRTY = 1u << 1,      /* made or changed by a pass                      */
    OT_NODE_UNKNOWN_ATTR = 1u << 2, /* has an attribute its op does not know        */
    OT_NODE_NOTED = 1u << 3,      /* covered by an earlier node's once-per-model
                                     warning (ops/batchnorm.c: spatial=0)           */
    /* set on an executor's specialised clone by src/exec/rewrite.c */
    OT_NODE_FOLDED = 1u << 4,     /* every output is a constant: no step             */
    OT_NODE_BN_FOLDED = 1u << 5,  /* a Conv or Gemm that absorbed its BatchNorm      */
};

struct ot_op_desc;

typedef struct ot_node {
    const struct ot_op_desc *op; /* row of the op table; NULL when opaque        */
    const char *name;            /* may be "" (ONNX allows unnamed nodes)        */
    const char *op_type;
    const char *domain;          /* "" for the default domain                    */
    int opset;                   /* the model's opset for this node's domain     */
    int32_t *in, *out;           /* value ids; -1 marks an omitted optional one  */
    int n_in, n_out;
    ot_attr *attrs;
    int n_attrs;
    uint32_t flags;
    void *params;                /* typed view the op filled, or NULL            */
    ot_blob shell; /* the NodeProto without input, output, attribute, name,
                      op_type and domain: doc_string and unknown fields         */
} ot_node;

typedef struct ot_opset {
    const char *domain;
    int64_t version;
} ot_opset;

typedef struct ot_kv {
    const char *key, *value;
} ot_kv;

struct ot_graph {
    ot_arena arena;
    const char *path; /* the file it came from, for messages ("" if none)   */
    const char *dir;  /* its folder, for external data                     */

    ot_value *values;
    int32_t n_values, cap_values;
    ot_node *nodes; /* in topological order after import                  */
    int32_t n_nodes, cap_nodes;

    ot_io *inputs, *outputs, *value_info;
    int32_t n_inputs, n_outputs, n_value_info;
    int32_t *inits; /* initializer value ids in file order               */
    int32_t n_inits;

    /* model-level fields */
    int64_t ir_version;
    ot_opset *opsets;
    int32_t n_opsets;
    const char *producer_name, *producer_version, *doc_string;
    const char *graph_name;
    ot_kv *metadata;
    int32_t n_metadata;
    ot_blob model_shell; /* ModelProto without graph, ir_version, opset_import,
                            producer_*, doc_string, metadata_props            */
    ot_blob graph_shell; /* GraphProto without node, initializer, input, output,
                            value_info and name                                */

    bool borrows_data; /* a clone: initializer bytes belong to the original  */

    /* name -> value id, open addressing */
    int32_t *name_index;
    uint32_t name_index_cap;
};

/* Creates an empty graph. Returns NULL when out of memory. */
ot_graph *ot_graph_new(void);

/* Makes a shallow copy of a graph for specialisation: its own value, node and
   index arrays (so shapes and flags can change), sharing strings, attributes
   and initializer bytes with `src`, which must outlive the copy.
   Errors: OT_ERR_NOMEM. */
ot_status ot_graph_clone(const ot_graph *src, ot_graph **out, ot_err *err);

/* Removes the nodes whose keep[i] is false (node ids change; values stay, with
   producers recomputed). Meant for clones being specialised; a value left
   without a producer must be a graph input or constant to be used.
   Errors: OT_ERR_MODEL from the re-sort (a kept node reads a removed one's
   output that is not an input), OT_ERR_NOMEM. */
ot_status ot_graph_keep_nodes(ot_graph *g, const bool *keep, ot_err *err);

/* Marks in keep[] the nodes that the values in `targets` depend on. keep has
   g->n_nodes entries and is not cleared first. */
void ot_graph_mark_ancestors(const ot_graph *g, const int32_t *targets, int n_targets, bool *keep);

/* Finds a value by name: its id, or -1. */
int32_t ot_graph_find_value(const ot_graph *g, const char *name);

/* Returns the value with that name, adding a new one (flags 0, rank unknown,
   producer -1) when absent. The name is copied. Errors: OT_ERR_NOMEM. */
ot_status ot_graph_intern_value(ot_graph *g, const char *name, int32_t *id, ot_err *err);

/* Appends a node; the caller fills it through the returned id. Strings and
   arrays it stores must live in g->arena. Errors: OT_ERR_NOMEM. */
ot_status ot_graph_add_node(ot_graph *g, int32_t *id, ot_err *err);

/* Whether a domain names ONNX's default one: "" (or NULL) and "ai.onnx". */
bool ot_domain_is_default(const char *domain);

/* The opset version the model imports for a domain ("" and "ai.onnx" are the
   same), or 0 when it imports none. */
int64_t ot_graph_opset(const ot_graph *g, const char *domain);

/* Orders nodes topologically, keeping file order where it is already valid,
   and sets every value's producer. Checks that each node input is defined
   (graph input, initializer or an earlier node's output) and that no value is
   produced twice. Errors: OT_ERR_MODEL naming the node. */
ot_status ot_graph_sort(ot_graph *g, ot_err *err);

/* Fills dtype and shape of every node output from the op table; values the
   file declared keep their declaration where inference knows less. Outputs of
   opaque nodes stay unknown. Errors: OT_ERR_MODEL / OT_ERR_SHAPE naming the
   node. */
ot_status ot_graph_infer_shapes(ot_graph *g, ot_err *err);

/* Finds an attribute of a node; NULL when absent. */
const ot_attr *ot_node_find_attr(const ot_node *n, const char *name);

/* Typed attribute getters with defaults (cannot fail; a wrong type counts as
   absent, since the op table has checked types on import). */
int64_t ot_node_attr_int(const ot_node *n, const char *name, int64_t def);
float ot_node_attr_float(const ot_node *n, const char *name, float def);
const char *ot_node_attr_string(const ot_node *n, const char *name, const char *def);
/* INTS: the array and its length through *n_out; NULL and 0 when absent. */
const int64_t *ot_node_attr_ints(const ot_node *n, const char *name, size_t *n_out);

/* The constant data of a value, or NULL when it is not known at import. */
const ot_tensor *ot_graph_const(const ot_graph *g, int32_t value);

/* Whether two values have the same rank and dims (both of unknown rank:
   true). */
bool ot_value_same_dims(const ot_value *a, const ot_value *b);

/* Formats a value's shape as "[N,3,224,224]" or "?" (unknown rank). */
void ot_value_shape_str(const ot_value *v, char *buf, size_t n);

/* "name (OpType)" or "#id (OpType)" for unnamed nodes, for messages. */
const char *ot_node_label(const ot_graph *g, const ot_node *n, char *buf, size_t size);

/* Looks for NaN and infinity in the model's weights: float initializers used
 * as Conv/ConvTranspose W and B, Gemm and MatMul operands, the bias of a
 * MatMul+Add, BatchNormalization/InstanceNormalization/LayerNormalization/
 * GroupNormalization scale, bias, mean and var, PRelu slope; trainable and
 * training-state initializers (OT_VAL_TRAINABLE, OT_VAL_STATE); optimizer
 * state ("onnxtrain.optim.*"). Other constants may be infinite and are not
 * looked at. One pass over those tensors (src/graph/finite.c).
 * Errors: OT_ERR_MODEL naming the first bad tensor, the node and input that
 * use it, the element and whether it is NaN, +Inf or -Inf; OT_ERR_NOMEM. */
ot_status ot_graph_check_finite(const ot_graph *g, ot_err *err);

#endif
