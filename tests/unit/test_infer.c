/*
 * test_infer.c: shape inference on small hand-built graphs: the ResNet stem,
 * pools, Gemm/MatMul, broadcasting, the shape-manipulating ops, folding of
 * PyTorch's flatten chain, declared shapes, and the errors that name a node.
 */
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "test.h"

/* A value named `name` as a graph input. shape: "N,3,224,224" (a name is a
   symbolic dim, "?" an unnamed one, "" a scalar) or NULL (rank unknown). */
static int32_t input(ot_graph *g, const char *name, ot_dtype dtype, const char *shape)
{
    ot_err err;
    int32_t id;
    if (ot_graph_intern_value(g, name, &id, &err) != OT_OK)
        return -1;
    ot_value *v = &g->values[id];
    v->flags |= OT_VAL_INPUT;
    v->dtype = dtype;
    if (!shape)
        return id;
    v->ndim = 0;
    const char *p = shape;
    while (*p) {
        char tok[32];
        size_t len = strcspn(p, ",");
        snprintf(tok, sizeof tok, "%.*s", (int)len, p);
        if (tok[0] >= '0' && tok[0] <= '9') {
            v->dims[v->ndim] = atoll(tok);
        } else {
            v->dims[v->ndim] = OT_DIM_DYNAMIC;
            v->dim_names[v->ndim] = strcmp(tok, "?") ? ot_arena_strdup(&g->arena, tok) : NULL;
        }
        v->ndim++;
        p += len;
        if (*p == ',')
            p++;
    }
    return id;
}

/* A weight: an initializer whose shape matters here, not its bytes. */
static int32_t weight(ot_graph *g, const char *name, const char *shape)
{
    int32_t id = input(g, name, OT_DTYPE_FLOAT, shape);
    g->values[id].flags = OT_VAL_INIT | OT_VAL_PARAM;
    return id;
}

/* A 1-D int64 initializer with data. */
static int32_t init_ints(ot_graph *g, const char *name, int n, const int64_t *vals)
{
    int32_t id = input(g, name, OT_DTYPE_INT64, "0");
    ot_value *v = &g->values[id];
    v->flags = OT_VAL_INIT | OT_VAL_CONST;
    v->dims[0] = n;
    v->data.dtype = OT_DTYPE_INT64;
    v->data.ndim = 1;
    v->data.dims[0] = n;
    v->data.bytes = sizeof(int64_t) * (size_t)n;
    v->data.data = ot_malloc(v->data.bytes + 1);
    if (n > 0)
        memcpy(v->data.data, vals, v->data.bytes);
    return id;
}

/* Splits "a,b,,c" into value ids ("" -> -1, an omitted optional one). */
static int split_ids(ot_graph *g, const char *list, int32_t *ids)
{
    int n = 0;
    ot_err err;
    const char *p = list;
    if (!*p)
        return 0;
    for (;;) {
        char tok[64];
        size_t len = strcspn(p, ",");
        snprintf(tok, sizeof tok, "%.*s", (int)len, p);
        ids[n] = -1;
        if (tok[0] && ot_graph_intern_value(g, tok, &ids[n], &err) != OT_OK)
            return -1;
        n++;
        p += len;
        if (!*p)
            break;
        p++;
    }
    return n;
}

static ot_node *add(ot_graph *g, const char *name, const char *type, int opset, const char *ins,
                    const char *outs)
{
    ot_err err;
    int32_t in[16], out[16], id;
    int n_in = split_ids(g, ins, in), n_out = split_ids(g, outs, out);
    if (ot_graph_add_node(g, &id, &err) != OT_OK)
        return NULL;
    ot_node *n = &g->nodes[id];
    n->name = ot_arena_strdup(&g->arena, name);
    n->op_type = ot_arena_strdup(&g->arena, type);
    n->opset = opset;
    n->op = ot_op_find("", type, opset);
    n->n_in = n_in;
    n->n_out = n_out;
    n->in = ot_arena_memdup(&g->arena, in, sizeof in);
    n->out = ot_arena_memdup(&g->arena, out, sizeof out);
    n->attrs = ot_arena_alloc(&g->arena, sizeof(ot_attr) * 8);
    return n;
}

static ot_attr *attr(ot_node *n, const char *name, ot_attr_type type)
{
    ot_attr *a = &n->attrs[n->n_attrs++];
    a->name = name;
    a->type = type;
    return a;
}

static void a_int(ot_node *n, const char *name, int64_t v) { attr(n, name, OT_ATTR_INT)->i = v; }

static void a_str(ot_node *n, const char *name, const char *s)
{
    ot_attr *a = attr(n, name, OT_ATTR_STRING);
    a->s = s;
    a->s_len = strlen(s);
}

static void a_ints(ot_graph *g, ot_node *n, const char *name, int count, const int64_t *v)
{
    ot_attr *a = attr(n, name, OT_ATTR_INTS);
    a->ints = ot_arena_memdup(&g->arena, v, sizeof(int64_t) * (size_t)count);
    a->n = (size_t)count;
}

static ot_status run(ot_graph *g, ot_err *err)
{
    ot_err_init(err);
    ot_status st = ot_graph_sort(g, err);
    if (st == OT_OK)
        st = ot_graph_infer_shapes(g, err);
    return st;
}

static const char *shape_of(ot_graph *g, const char *name, char *buf, size_t size)
{
    int32_t id = ot_graph_find_value(g, name);
    if (id < 0)
        return "(no such value)";
    ot_value_shape_str(&g->values[id], buf, size);
    return buf;
}

#define CHECK_SHAPE(g, name, want)                                                              \
    do {                                                                                        \
        char buf_[256];                                                                         \
        CHECK_STR(shape_of(g, name, buf_, sizeof buf_), want);                                  \
    } while (0)

static const ot_value *val(ot_graph *g, const char *name)
{
    return &g->values[ot_graph_find_value(g, name)];
}

TEST(infer_resnet_stem)
{
    ot_graph *g = ot_graph_new();
    ot_err err;
    int64_t k7[] = { 7, 7 }, s2[] = { 2, 2 }, p3[] = { 3, 3, 3, 3 }, k3[] = { 3, 3 },
            p1[] = { 1, 1, 1, 1 };
    input(g, "x", OT_DTYPE_FLOAT, "N,3,224,224");
    weight(g, "w", "64,3,7,7");
    weight(g, "scale", "64");
    weight(g, "b", "64");
    weight(g, "mean", "64");
    weight(g, "var", "64");
    ot_node *n = add(g, "conv1", "Conv", 13, "x,w", "c1");
    a_ints(g, n, "kernel_shape", 2, k7);
    a_ints(g, n, "strides", 2, s2);
    a_ints(g, n, "pads", 4, p3);
    add(g, "bn1", "BatchNormalization", 13, "c1,scale,b,mean,var", "b1");
    add(g, "relu", "Relu", 13, "b1", "r1");
    n = add(g, "pool", "MaxPool", 13, "r1", "p1");
    a_ints(g, n, "kernel_shape", 2, k3);
    a_ints(g, n, "strides", 2, s2);
    a_ints(g, n, "pads", 4, p1);
    add(g, "gap", "GlobalAveragePool", 13, "p1", "gp");
    CHECK_OK(run(g, &err), &err);
    CHECK_SHAPE(g, "c1", "[N,64,112,112]");
    CHECK_SHAPE(g, "b1", "[N,64,112,112]");
    CHECK_SHAPE(g, "r1", "[N,64,112,112]");
    CHECK_SHAPE(g, "p1", "[N,64,56,56]");
    CHECK_SHAPE(g, "gp", "[N,64,1,1]");
    CHECK_EQ_INT(val(g, "p1")->dtype, OT_DTYPE_FLOAT);
    ot_graph_free(g);
}

TEST(infer_pool_ceil_mode_and_auto_pad)
{
    ot_graph *g = ot_graph_new();
    ot_err err;
    int64_t k2[] = { 2, 2 }, k3[] = { 3, 3 }, s2[] = { 2, 2 }, p1[] = { 1, 1, 1, 1 };
    input(g, "x5", OT_DTYPE_FLOAT, "1,1,5,5");
    input(g, "x6", OT_DTYPE_FLOAT, "1,1,6,6");
    input(g, "x", OT_DTYPE_FLOAT, "1,3,224,225");
    weight(g, "w", "8,3,3,3");
    ot_node *n = add(g, "a", "MaxPool", 12, "x6", "floor6");
    a_ints(g, n, "kernel_shape", 2, k3);
    a_ints(g, n, "strides", 2, s2);
    n = add(g, "b", "MaxPool", 12, "x6", "ceil6");
    a_ints(g, n, "kernel_shape", 2, k3);
    a_ints(g, n, "strides", 2, s2);
    a_int(n, "ceil_mode", 1);
    /* the last window would start in the right padding: dropped */
    n = add(g, "c", "AveragePool", 12, "x5", "ceil5");
    a_ints(g, n, "kernel_shape", 2, k2);
    a_ints(g, n, "strides", 2, s2);
    a_ints(g, n, "pads", 4, p1);
    a_int(n, "ceil_mode", 1);
    n = add(g, "d", "Conv", 13, "x,w", "same");
    a_ints(g, n, "strides", 2, s2);
    a_str(n, "auto_pad", "SAME_UPPER");
    n = add(g, "e", "Conv", 13, "x,w", "valid");
    a_str(n, "auto_pad", "VALID");
    n = add(g, "f", "MaxPool", 12, "x6", "f6,idx");
    a_ints(g, n, "kernel_shape", 2, k3);
    CHECK_OK(run(g, &err), &err);
    CHECK_SHAPE(g, "floor6", "[1,1,2,2]");
    CHECK_SHAPE(g, "ceil6", "[1,1,3,3]");
    CHECK_SHAPE(g, "ceil5", "[1,1,3,3]");
    CHECK_SHAPE(g, "same", "[1,8,112,113]");
    CHECK_SHAPE(g, "valid", "[1,8,222,223]");
    CHECK_EQ_INT(val(g, "idx")->dtype, OT_DTYPE_INT64);
    ot_graph_free(g);
}

TEST(infer_gemm_and_matmul)
{
    ot_graph *g = ot_graph_new();
    ot_err err;
    input(g, "a", OT_DTYPE_FLOAT, "N,512");
    weight(g, "w", "1000,512");
    weight(g, "bias", "1000");
    input(g, "m1", OT_DTYPE_FLOAT, "2,1,3,4");
    input(g, "m2", OT_DTYPE_FLOAT, "5,4,6");
    input(g, "v", OT_DTYPE_FLOAT, "4");
    input(g, "m3", OT_DTYPE_FLOAT, "4,6");
    input(g, "m4", OT_DTYPE_FLOAT, "3,4");
    ot_node *n = add(g, "fc", "Gemm", 13, "a,w,bias", "y");
    a_int(n, "transB", 1);
    add(g, "mm", "MatMul", 13, "m1,m2", "mm");
    add(g, "vm", "MatMul", 13, "v,m3", "vm");
    add(g, "mv", "MatMul", 13, "m4,v", "mv");
    CHECK_OK(run(g, &err), &err);
    CHECK_SHAPE(g, "y", "[N,1000]");
    CHECK_SHAPE(g, "mm", "[2,5,3,6]");
    CHECK_SHAPE(g, "vm", "[6]");
    CHECK_SHAPE(g, "mv", "[3]");
    ot_graph_free(g);

    /* K mismatch: transB missing */
    g = ot_graph_new();
    input(g, "a", OT_DTYPE_FLOAT, "N,512");
    weight(g, "w", "1000,512");
    add(g, "fc", "Gemm", 13, "a,w", "y");
    CHECK_EQ_INT(run(g, &err), OT_ERR_SHAPE);
    CHECK(strstr(err.msg, "node 'fc' (Gemm)") != NULL);
    ot_graph_free(g);
}

TEST(infer_broadcast)
{
    ot_graph *g = ot_graph_new();
    ot_err err;
    input(g, "x", OT_DTYPE_FLOAT, "N,64,56,56");
    weight(g, "b", "64,1,1");
    input(g, "s", OT_DTYPE_FLOAT, "");
    input(g, "a", OT_DTYPE_FLOAT, "2,3,4,5");
    weight(g, "c", "3");
    add(g, "add", "Add", 13, "x,b", "y");
    add(g, "mul", "Mul", 13, "y,s", "z");
    add(g, "sum", "Sum", 13, "x,y,b", "t");
    /* legacy broadcast: B matches A from axis 1 */
    ot_node *n = add(g, "old", "Add", 6, "a,c", "u");
    a_int(n, "broadcast", 1);
    a_int(n, "axis", 1);
    CHECK_OK(run(g, &err), &err);
    CHECK_SHAPE(g, "y", "[N,64,56,56]");
    CHECK_SHAPE(g, "z", "[N,64,56,56]");
    CHECK_SHAPE(g, "t", "[N,64,56,56]");
    CHECK_SHAPE(g, "u", "[2,3,4,5]");
    ot_graph_free(g);

    g = ot_graph_new();
    input(g, "x", OT_DTYPE_FLOAT, "N,64,56,56");
    weight(g, "b", "3,1,1");
    add(g, "add", "Add", 13, "x,b", "y");
    CHECK_EQ_INT(run(g, &err), OT_ERR_SHAPE);
    CHECK(strstr(err.msg, "node 'add' (Add)") != NULL);
    CHECK(strstr(err.msg, "do not broadcast") != NULL);
    ot_graph_free(g);
}

TEST(infer_flatten_reshape)
{
    ot_graph *g = ot_graph_new();
    ot_err err;
    int64_t t0[] = { 0, -1 }, t1[] = { -1, 512 }, t2[] = { 3, 0 }, t3[] = { 0, 0, 4 };
    input(g, "x", OT_DTYPE_FLOAT, "N,512,1,1");
    input(g, "s", OT_DTYPE_FLOAT, "2,3,4");
    input(g, "z", OT_DTYPE_FLOAT, "0,3");
    init_ints(g, "t0", 2, t0);
    init_ints(g, "t1", 2, t1);
    init_ints(g, "t2", 2, t2);
    init_ints(g, "t3", 3, t3);
    add(g, "f1", "Flatten", 13, "x", "f1");
    ot_node *n = add(g, "f0", "Flatten", 13, "x", "f0");
    a_int(n, "axis", 0);
    n = add(g, "fm", "Flatten", 13, "s", "fm");
    a_int(n, "axis", -1);
    add(g, "r0", "Reshape", 13, "s,t0", "r0");
    add(g, "rn", "Reshape", 13, "x,t1", "rn");
    add(g, "rn0", "Reshape", 13, "x,t0", "rn0");
    add(g, "r3", "Reshape", 13, "s,t3", "r3");
    n = add(g, "az", "Reshape", 14, "z,t2", "az");
    a_int(n, "allowzero", 1);
    CHECK_OK(run(g, &err), &err);
    CHECK_SHAPE(g, "f1", "[N,512]");
    CHECK_SHAPE(g, "f0", "[1,?]");
    CHECK_SHAPE(g, "fm", "[6,4]");
    CHECK_SHAPE(g, "r0", "[2,12]");
    CHECK_SHAPE(g, "rn", "[N,512]");
    CHECK_SHAPE(g, "rn0", "[N,512]");
    CHECK_SHAPE(g, "r3", "[2,3,4]");
    CHECK_SHAPE(g, "az", "[3,0]");
    ot_graph_free(g);

    /* element count mismatch */
    int64_t bad[] = { 5, 5 };
    g = ot_graph_new();
    input(g, "s", OT_DTYPE_FLOAT, "2,3,4");
    init_ints(g, "t", 2, bad);
    add(g, "r", "Reshape", 13, "s,t", "r");
    CHECK_EQ_INT(run(g, &err), OT_ERR_SHAPE);
    CHECK(strstr(err.msg, "node 'r' (Reshape)") != NULL);
    ot_graph_free(g);
}

/* PyTorch's x.view(x.size(0), -1): Shape -> Gather -> Unsqueeze -> Concat -> Reshape */
static ot_graph *flatten_chain(const char *xshape, int opset)
{
    ot_graph *g = ot_graph_new();
    int64_t zero = 0, minus1 = -1, axes0[] = { 0 };
    input(g, "x", OT_DTYPE_FLOAT, xshape);
    add(g, "shape", "Shape", opset, "x", "s");
    ot_node *n = add(g, "c0", "Constant", opset, "", "i0");
    ot_tensor *t = ot_arena_alloc(&g->arena, sizeof *t);
    t->dtype = OT_DTYPE_INT64;
    t->ndim = 0;
    t->data = ot_arena_memdup(&g->arena, &zero, sizeof zero);
    t->bytes = sizeof zero;
    attr(n, "value", OT_ATTR_TENSOR)->t = t;
    n = add(g, "gather", "Gather", opset, "s,i0", "g0");
    a_int(n, "axis", 0);
    if (opset < 13) {
        n = add(g, "unsq", "Unsqueeze", opset, "g0", "u0");
        a_ints(g, n, "axes", 1, axes0);
    } else {
        n = add(g, "c1", "Constant", opset, "", "ax");
        a_ints(g, n, "value_ints", 1, axes0);
        add(g, "unsq", "Unsqueeze", opset, "g0,ax", "u0");
    }
    n = add(g, "c2", "Constant", opset, "", "m1");
    a_ints(g, n, "value_ints", 1, &minus1);
    n = add(g, "cat", "Concat", opset, "u0,m1", "target");
    a_int(n, "axis", 0);
    add(g, "reshape", "Reshape", opset, "x,target", "y");
    return g;
}

TEST(infer_pytorch_flatten_chain)
{
    ot_err err;
    ot_graph *g = flatten_chain("N,512,1,1", 11);
    CHECK_OK(run(g, &err), &err);
    CHECK_SHAPE(g, "s", "[4]");
    CHECK_SHAPE(g, "g0", "[]");
    CHECK_SHAPE(g, "target", "[2]");
    CHECK_SHAPE(g, "y", "[N,512]");
    CHECK(ot_graph_const(g, ot_graph_find_value(g, "s")) == NULL); /* not fully known */
    ot_graph_free(g);

    g = flatten_chain("1,512,1,1", 13);
    CHECK_OK(run(g, &err), &err);
    CHECK_SHAPE(g, "y", "[1,512]");
    const ot_tensor *t = ot_graph_const(g, ot_graph_find_value(g, "target"));
    CHECK(t != NULL);
    CHECK_EQ_INT(ot_tensor_numel(t), 2);
    CHECK_EQ_INT(ot_tensor_get_i64(t, 0), 1);
    CHECK_EQ_INT(ot_tensor_get_i64(t, 1), -1);
    ot_graph_free(g);
}

TEST(infer_constant_forms)
{
    ot_graph *g = ot_graph_new();
    ot_err err;
    float fv[3] = { 1, 2, 3 };
    ot_node *n = add(g, "a", "Constant", 13, "", "a");
    ot_tensor *t = ot_arena_alloc(&g->arena, sizeof *t);
    t->dtype = OT_DTYPE_FLOAT;
    t->ndim = 2;
    t->dims[0] = 1;
    t->dims[1] = 3;
    t->data = fv;
    t->bytes = sizeof fv;
    attr(n, "value", OT_ATTR_TENSOR)->t = t;
    n = add(g, "b", "Constant", 13, "", "b");
    attr(n, "value_float", OT_ATTR_FLOAT)->f = 2.5f;
    n = add(g, "c", "Constant", 13, "", "c");
    a_str(n, "value_string", "hello");
    CHECK_OK(run(g, &err), &err);
    CHECK_SHAPE(g, "a", "[1,3]");
    CHECK_SHAPE(g, "b", "[]");
    CHECK_SHAPE(g, "c", "[]");
    CHECK_EQ_INT(val(g, "c")->dtype, OT_DTYPE_STRING);
    const ot_tensor *ct = ot_graph_const(g, ot_graph_find_value(g, "b"));
    CHECK(ct && ct->dtype == OT_DTYPE_FLOAT);
    CHECK(ot_tensor_get_f64(ct, 0) == 2.5);
    ct = ot_graph_const(g, ot_graph_find_value(g, "a"));
    CHECK(ct && ot_tensor_get_f64(ct, 2) == 3.0);
    ot_graph_free(g);
}

TEST(infer_transpose_squeeze_unsqueeze)
{
    ot_graph *g = ot_graph_new();
    ot_err err;
    int64_t perm[] = { 0, 2, 3, 1 }, ax[] = { 0, 2 }, axm[] = { -1 };
    input(g, "x", OT_DTYPE_FLOAT, "N,3,224,224");
    input(g, "s", OT_DTYPE_FLOAT, "2,3,4");
    input(g, "o", OT_DTYPE_FLOAT, "1,3,1,2");
    init_ints(g, "axes", 2, ax);
    ot_node *n = add(g, "t", "Transpose", 13, "x", "t");
    a_ints(g, n, "perm", 4, perm);
    add(g, "tr", "Transpose", 13, "s", "tr");
    n = add(g, "sq11", "Squeeze", 11, "o", "sq11");
    a_ints(g, n, "axes", 2, ax);
    add(g, "sq13", "Squeeze", 13, "o,axes", "sq13");
    add(g, "sqall", "Squeeze", 13, "o", "sqall");
    n = add(g, "un11", "Unsqueeze", 11, "s", "un11");
    a_ints(g, n, "axes", 1, axm);
    add(g, "un13", "Unsqueeze", 13, "s,axes", "un13");
    CHECK_OK(run(g, &err), &err);
    CHECK_SHAPE(g, "t", "[N,224,224,3]");
    CHECK_SHAPE(g, "tr", "[4,3,2]");
    CHECK_SHAPE(g, "sq11", "[3,2]");
    CHECK_SHAPE(g, "sq13", "[3,2]");
    CHECK_SHAPE(g, "sqall", "[3,2]");
    CHECK_SHAPE(g, "un11", "[2,3,4,1]");
    CHECK_SHAPE(g, "un13", "[1,2,1,3,4]");
    ot_graph_free(g);

    /* squeezing a dim that is not 1 */
    g = ot_graph_new();
    input(g, "s", OT_DTYPE_FLOAT, "2,3,4");
    n = add(g, "sq", "Squeeze", 11, "s", "y");
    a_ints(g, n, "axes", 1, ax);
    CHECK_EQ_INT(run(g, &err), OT_ERR_SHAPE);
    ot_graph_free(g);
}

TEST(infer_pad_shape_gather)
{
    ot_graph *g = ot_graph_new();
    ot_err err;
    int64_t pads[] = { 0, 0, 1, 2, 0, 0, 1, 2 }, idx[] = { 2, 0 };
    input(g, "x", OT_DTYPE_FLOAT, "N,3,4,4");
    init_ints(g, "pads", 8, pads);
    init_ints(g, "idx", 2, idx);
    add(g, "p11", "Pad", 11, "x,pads", "p11");
    ot_node *n = add(g, "p2", "Pad", 2, "x", "p2");
    a_ints(g, n, "pads", 8, pads);
    n = add(g, "shape", "Shape", 15, "x", "sh");
    a_int(n, "start", 1);
    a_int(n, "end", -1);
    n = add(g, "gather", "Gather", 13, "x,idx", "gx");
    a_int(n, "axis", 1);
    CHECK_OK(run(g, &err), &err);
    CHECK_SHAPE(g, "p11", "[N,3,6,8]");
    CHECK_SHAPE(g, "p2", "[N,3,6,8]");
    CHECK_SHAPE(g, "sh", "[2]");
    const ot_tensor *t = ot_graph_const(g, ot_graph_find_value(g, "sh"));
    CHECK(t && ot_tensor_get_i64(t, 0) == 3 && ot_tensor_get_i64(t, 1) == 4);
    CHECK_SHAPE(g, "gx", "[N,2,4,4]");
    ot_graph_free(g);

    g = ot_graph_new();
    input(g, "x", OT_DTYPE_FLOAT, "1,3,4,4");
    init_ints(g, "idx", 2, idx);
    add(g, "shape", "Shape", 13, "x", "sh");
    add(g, "gs", "Gather", 13, "sh,idx", "gs");
    CHECK_OK(run(g, &err), &err);
    t = ot_graph_const(g, ot_graph_find_value(g, "gs"));
    CHECK(t && ot_tensor_get_i64(t, 0) == 4 && ot_tensor_get_i64(t, 1) == 1);
    ot_graph_free(g);
}

TEST(infer_conv_wrong_channels_names_node)
{
    ot_graph *g = ot_graph_new();
    ot_err err;
    input(g, "x", OT_DTYPE_FLOAT, "N,4,32,32");
    weight(g, "w", "8,3,3,3");
    add(g, "/layer1/conv1/Conv", "Conv", 13, "x,w", "y");
    CHECK_EQ_INT(run(g, &err), OT_ERR_SHAPE);
    CHECK(strstr(err.msg, "node '/layer1/conv1/Conv' (Conv)") != NULL);
    CHECK(strstr(err.msg, "4 channels") != NULL);
    ot_graph_free(g);
}

TEST(infer_declared_shapes)
{
    ot_graph *g = ot_graph_new();
    ot_err err;
    input(g, "x", OT_DTYPE_FLOAT, "?,64,112,112");
    input(g, "y", OT_DTYPE_FLOAT, "8,64,112,112"); /* declared by value_info */
    g->values[ot_graph_find_value(g, "y")].flags = OT_VAL_DECLARED | OT_VAL_SHAPE_DECLARED;
    add(g, "relu", "Relu", 13, "x", "y");
    CHECK_OK(run(g, &err), &err);
    CHECK_SHAPE(g, "y", "[8,64,112,112]"); /* the declared static dim wins */
    ot_graph_free(g);

    g = ot_graph_new();
    input(g, "x", OT_DTYPE_FLOAT, "1,64,112,112");
    input(g, "y", OT_DTYPE_FLOAT, "1,64,56,56");
    g->values[ot_graph_find_value(g, "y")].flags = OT_VAL_DECLARED | OT_VAL_SHAPE_DECLARED;
    add(g, "x", "Relu", 13, "x", "y");
    CHECK_EQ_INT(run(g, &err), OT_ERR_SHAPE);
    CHECK_STR(err.msg, "node 'x' (Relu): output 'y' inferred as [1,64,112,112], declared "
                       "[1,64,56,56]");
    ot_graph_free(g);
}

TEST(infer_unknown_inputs_and_opaque_nodes)
{
    ot_graph *g = ot_graph_new();
    ot_err err;
    input(g, "x", OT_DTYPE_FLOAT, NULL);
    input(g, "w", OT_DTYPE_FLOAT, "8,3,3,3");
    add(g, "conv", "Conv", 13, "x,w", "y");
    add(g, "custom", "MyOp", 13, "y", "z"); /* opaque: op NULL */
    add(g, "relu", "Relu", 13, "z", "r");
    CHECK_OK(run(g, &err), &err);
    CHECK_EQ_INT(val(g, "y")->ndim, -1);
    CHECK_EQ_INT(val(g, "z")->ndim, -1);
    CHECK_EQ_INT(val(g, "r")->ndim, -1);
    ot_graph_free(g);
}

TEST(infer_batchnorm_training_outputs_and_dropout)
{
    ot_graph *g = ot_graph_new();
    ot_err err;
    input(g, "x", OT_DTYPE_FLOAT, "N,64,56,56");
    weight(g, "scale", "64");
    weight(g, "b", "64");
    weight(g, "mean", "64");
    weight(g, "var", "64");
    add(g, "bn", "BatchNormalization", 9, "x,scale,b,mean,var", "y,m,v,sm,sv");
    add(g, "drop", "Dropout", 13, "y", "d,mask");
    add(g, "drop7", "Dropout", 7, "y", "d7,mask7");
    CHECK_OK(run(g, &err), &err);
    CHECK_SHAPE(g, "y", "[N,64,56,56]");
    CHECK_SHAPE(g, "sv", "[64]");
    CHECK_SHAPE(g, "mask", "[N,64,56,56]");
    CHECK_EQ_INT(val(g, "mask")->dtype, OT_DTYPE_BOOL);
    CHECK_EQ_INT(val(g, "mask7")->dtype, OT_DTYPE_FLOAT);
    ot_graph_free(g);
}

TEST(infer_concat_softmax)
{
    ot_graph *g = ot_graph_new();
    ot_err err;
    input(g, "a", OT_DTYPE_FLOAT, "N,64,8,8");
    input(g, "b", OT_DTYPE_FLOAT, "N,32,8,8");
    ot_node *n = add(g, "cat", "Concat", 13, "a,b", "c");
    a_int(n, "axis", 1);
    add(g, "sm", "Softmax", 13, "c", "s");
    n = add(g, "lrn", "LRN", 13, "s", "l");
    a_int(n, "size", 5);
    CHECK_OK(run(g, &err), &err);
    CHECK_SHAPE(g, "c", "[N,96,8,8]");
    CHECK_SHAPE(g, "s", "[N,96,8,8]");
    CHECK_SHAPE(g, "l", "[N,96,8,8]");
    ot_graph_free(g);
}

TEST(infer_math_ops)
{
    ot_graph *g = ot_graph_new();
    ot_err err;
    input(g, "x", OT_DTYPE_FLOAT, "N,3,8,8");
    weight(g, "m", "3,1,1");
    input(g, "e", OT_DTYPE_INT64, "");
    add(g, "sub", "Sub", 14, "x,m", "d");
    add(g, "div", "Div", 14, "d,m", "q");
    add(g, "pow", "Pow", 15, "q,e", "p"); /* int64 exponent: Y is the base's type */
    add(g, "erf", "Erf", 13, "p", "r");
    ot_node *n = add(g, "gelu", "Gelu", 20, "r", "s");
    a_str(n, "approximate", "tanh");
    CHECK_OK(run(g, &err), &err);
    CHECK_SHAPE(g, "d", "[N,3,8,8]");
    CHECK_SHAPE(g, "q", "[N,3,8,8]");
    CHECK_SHAPE(g, "p", "[N,3,8,8]");
    CHECK(val(g, "p")->dtype == OT_DTYPE_FLOAT);
    CHECK_SHAPE(g, "s", "[N,3,8,8]");
    ot_graph_free(g);

    /* unary math ops take float types only */
    g = ot_graph_new();
    input(g, "i", OT_DTYPE_INT64, "4");
    add(g, "sq", "Sqrt", 13, "i", "y");
    CHECK_EQ_INT(run(g, &err), OT_ERR_MODEL);
    CHECK(strstr(err.msg, "node 'sq' (Sqrt)") != NULL);
    ot_graph_free(g);

    /* Gelu's approximate is none or tanh */
    g = ot_graph_new();
    input(g, "x", OT_DTYPE_FLOAT, "4");
    n = add(g, "gelu", "Gelu", 20, "x", "y");
    a_str(n, "approximate", "fast");
    CHECK(ot_op_check_node(g, n, &err) != OT_OK);
    CHECK(strstr(err.msg, "'none' or 'tanh'") != NULL);
    ot_graph_free(g);
}

TEST(infer_reductions)
{
    ot_graph *g = ot_graph_new();
    ot_err err;
    input(g, "x", OT_DTYPE_FLOAT, "N,3,8,6");
    init_ints(g, "hw", 2, (const int64_t[]){ -1, 2 });
    init_ints(g, "none", 0, NULL);
    ot_node *n = add(g, "mean", "ReduceMean", 13, "x", "gap");
    a_ints(g, n, "axes", 2, (const int64_t[]){ 2, 3 });
    n = add(g, "mean0", "ReduceMean", 13, "x", "m0");
    a_ints(g, n, "axes", 2, (const int64_t[]){ -2, -1 });
    a_int(n, "keepdims", 0);
    n = add(g, "sum", "ReduceSum", 13, "x,hw", "s");
    a_int(n, "keepdims", 0);
    add(g, "all", "ReduceMax", 13, "x", "mx");
    n = add(g, "noop", "ReduceSum", 13, "x,none", "same");
    a_int(n, "noop_with_empty_axes", 1);
    add(g, "l2", "ReduceL2", 18, "x,hw", "l2");
    CHECK_OK(run(g, &err), &err);
    CHECK_SHAPE(g, "gap", "[N,3,1,1]");
    CHECK_SHAPE(g, "m0", "[N,3]");
    CHECK_SHAPE(g, "s", "[N,3]");
    CHECK_SHAPE(g, "mx", "[1,1,1,1]");
    CHECK_SHAPE(g, "same", "[N,3,8,6]");
    CHECK_SHAPE(g, "l2", "[N,3,1,1]");
    ot_graph_free(g);

    /* an axis out of range, a repeated one */
    for (int k = 0; k < 2; k++) {
        g = ot_graph_new();
        input(g, "x", OT_DTYPE_FLOAT, "2,3");
        n = add(g, "bad", "ReduceSum", 11, "x", "y");
        a_ints(g, n, "axes", k + 1, (const int64_t[]){ k ? 1 : 2, -1 });
        CHECK_EQ_INT(run(g, &err), OT_ERR_MODEL);
        CHECK(strstr(err.msg, "node 'bad' (ReduceSum)") != NULL);
        CHECK(strstr(err.msg, "out of range") != NULL);
        ot_graph_free(g);
    }

    /* the axes as an input only from opset 18 (ReduceSum: 13) */
    g = ot_graph_new();
    input(g, "x", OT_DTYPE_FLOAT, "2,3");
    init_ints(g, "ax", 1, (const int64_t[]){ 1 });
    n = add(g, "old", "ReduceMean", 13, "x,ax", "y");
    CHECK(ot_op_check_node(g, n, &err) != OT_OK);
    CHECK(strstr(err.msg, "only from opset 18") != NULL);
    ot_graph_free(g);
}

TEST(infer_normalizations_prelu)
{
    ot_graph *g = ot_graph_new();
    ot_err err;
    input(g, "x", OT_DTYPE_FLOAT, "N,4,6,6");
    weight(g, "ln_s", "6,6");
    weight(g, "c4", "4");
    weight(g, "g2", "2");
    weight(g, "slope", "4,1,1");
    ot_node *n = add(g, "ln", "LayerNormalization", 17, "x,ln_s", "y,mean,inv");
    a_int(n, "axis", -2);
    add(g, "in", "InstanceNormalization", 6, "x,c4,c4", "yi");
    n = add(g, "gn", "GroupNormalization", 18, "x,g2,g2", "yg");
    a_int(n, "num_groups", 2);
    n = add(g, "gn21", "GroupNormalization", 21, "x,c4,c4", "yg21");
    a_int(n, "num_groups", 2);
    add(g, "pr", "PRelu", 16, "x,slope", "yp");
    CHECK_OK(run(g, &err), &err);
    CHECK_SHAPE(g, "y", "[N,4,6,6]");
    CHECK_SHAPE(g, "mean", "[N,4,1,1]");
    CHECK_SHAPE(g, "inv", "[N,4,1,1]");
    CHECK_SHAPE(g, "yi", "[N,4,6,6]");
    CHECK_SHAPE(g, "yg", "[N,4,6,6]");
    CHECK_SHAPE(g, "yg21", "[N,4,6,6]");
    CHECK_SHAPE(g, "yp", "[N,4,6,6]");
    ot_graph_free(g);

    /* groups that do not divide C; a per-group scale at opset 21; a scale
       of the wrong size; a slope that does not broadcast */
    static const char *const cases[][4] = {
        { "GroupNormalization", "18", "3", "channels do not split into 3 groups" },
        { "GroupNormalization", "21", "2", "expected 4 (one per channel)" },
        { "LayerNormalization", "17", "", "expected 6 (the normalized dims)" },
        { "PRelu", "16", "", "does not broadcast" },
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        g = ot_graph_new();
        input(g, "x", OT_DTYPE_FLOAT, "2,4,6");
        weight(g, "s", "2");
        weight(g, "sl", "2,1");
        const char *ins = !strcmp(cases[k][0], "PRelu") ? "x,sl" : "x,s,s";
        n = add(g, "bad", cases[k][0], atoi(cases[k][1]), ins, "y");
        if (cases[k][2][0])
            a_int(n, "num_groups", atoi(cases[k][2]));
        CHECK_EQ_INT(run(g, &err), OT_ERR_SHAPE);
        CHECK(strstr(err.msg, "node 'bad'") != NULL);
        CHECK(strstr(err.msg, cases[k][3]) != NULL);
        ot_graph_free(g);
    }
}

TEST(infer_einsum)
{
    ot_graph *g = ot_graph_new();
    ot_err err;
    input(g, "q", OT_DTYPE_FLOAT, "N,2,3,4");
    input(g, "k", OT_DTYPE_FLOAT, "N,2,5,4");
    input(g, "a", OT_DTYPE_FLOAT, "3,4");
    input(g, "b", OT_DTYPE_FLOAT, "4,2");
    input(g, "d", OT_DTYPE_FLOAT, "3,5,5");
    ot_node *n = add(g, "att", "Einsum", 12, "q,k", "s");
    a_str(n, "equation", "bhid,bhjd->bhij");
    n = add(g, "mm", "Einsum", 12, "a,b", "ab");
    a_str(n, "equation", "ij, jk");
    n = add(g, "diag", "Einsum", 12, "d", "dd");
    a_str(n, "equation", "...ii ->...i");
    CHECK_OK(run(g, &err), &err);
    CHECK_SHAPE(g, "s", "[N,2,3,5]");
    CHECK_SHAPE(g, "ab", "[3,2]");
    CHECK_SHAPE(g, "dd", "[3,5]");
    ot_graph_free(g);

    static const char *const bad[][2] = {
        { "ij,jk->ix", "occurs in no input" },
        { "ij,kk->ik", "dims differ" },
        { "ijk,jk->ik", "do not match its input's rank" },
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        g = ot_graph_new();
        input(g, "a", OT_DTYPE_FLOAT, "3,4");
        input(g, "b", OT_DTYPE_FLOAT, "4,2");
        n = add(g, "bad", "Einsum", 12, "a,b", "y");
        a_str(n, "equation", bad[k][0]);
        CHECK_EQ_INT(run(g, &err), OT_ERR_SHAPE);
        CHECK(strstr(err.msg, "node 'bad' (Einsum)") != NULL);
        CHECK(strstr(err.msg, bad[k][0]) != NULL);
        CHECK(strstr(err.msg, bad[k][1]) != NULL);
        ot_graph_free(g);
    }
}

/* Slice in both forms: negative starts, steps, clamping, a dynamic dim */
TEST(infer_slice)
{
    ot_graph *g = ot_graph_new();
    ot_err err;
    int64_t st[] = { 1, -3 }, en[] = { 1000, -1 }, ax[] = { 1, 3 }, sp[] = { 2, 1 };
    int64_t nst[] = { -1 }, nen[] = { INT64_MIN }, nax[] = { 2 }, nsp[] = { -2 };
    input(g, "x", OT_DTYPE_FLOAT, "N,5,6,7");
    init_ints(g, "st", 2, st);
    init_ints(g, "en", 2, en);
    init_ints(g, "ax", 2, ax);
    init_ints(g, "sp", 2, sp);
    init_ints(g, "nst", 1, nst);
    init_ints(g, "nen", 1, nen);
    init_ints(g, "nax", 1, nax);
    init_ints(g, "nsp", 1, nsp);
    add(g, "s13", "Slice", 13, "x,st,en,ax,sp", "y13");
    add(g, "sneg", "Slice", 13, "x,nst,nen,nax,nsp", "yneg");
    ot_node *n = add(g, "s1", "Slice", 1, "x", "y1");
    a_ints(g, n, "starts", 2, (const int64_t[]){ 0, 2 });
    a_ints(g, n, "ends", 2, (const int64_t[]){ 1, 4 });
    a_ints(g, n, "axes", 2, (const int64_t[]){ 0, 2 });
    CHECK_OK(run(g, &err), &err);
    CHECK_SHAPE(g, "y13", "[N,2,6,2]");
    CHECK_SHAPE(g, "yneg", "[N,5,3,7]"); /* 5, 3, 1 */
    CHECK_SHAPE(g, "y1", "[?,5,2,7]");   /* a slice of the dynamic batch dim */
    ot_graph_free(g);

    /* a repeated axis names the node */
    g = ot_graph_new();
    input(g, "x", OT_DTYPE_FLOAT, "2,3");
    n = add(g, "bad", "Slice", 1, "x", "y");
    a_ints(g, n, "starts", 2, (const int64_t[]){ 0, 0 });
    a_ints(g, n, "ends", 2, (const int64_t[]){ 1, 1 });
    a_ints(g, n, "axes", 2, (const int64_t[]){ 1, -1 });
    CHECK(run(g, &err) == OT_ERR_MODEL);
    CHECK(strstr(err.msg, "'bad'") && strstr(err.msg, "repeated"));
    ot_graph_free(g);
}

/* PyTorch's shape arithmetic (ShuffleNet's channel shuffle, chunk's split
   points) folds to constants once the input shape is static: Shape ->
   Gather -> Mul/Add -> Cast -> Unsqueeze -> Concat -> Reshape, and Slice of
   a shape vector; with a dynamic batch the batch element stays a symbol. */
TEST(infer_fold_shape_arithmetic)
{
    for (int dynamic = 0; dynamic < 2; dynamic++) {
        ot_graph *g = ot_graph_new();
        ot_err err;
        int64_t i0[] = { 0 }, i1[] = { 1 }, two[] = { 2 }, m3[] = { -3 }, ax0[] = { 0 };
        int64_t s2[] = { 2 }, e9[] = { 9 };
        input(g, "x", OT_DTYPE_FLOAT, dynamic ? "N,8,4,4" : "2,8,4,4");
        init_ints(g, "i0", 1, i0);
        init_ints(g, "i1", 1, i1);
        init_ints(g, "two", 1, two);
        init_ints(g, "m3", 1, m3);
        init_ints(g, "ax0", 1, ax0);
        init_ints(g, "s2", 1, s2);
        init_ints(g, "e9", 1, e9);
        add(g, "shape", "Shape", 13, "x", "s");
        ot_node *n = add(g, "g0", "Gather", 13, "s,i0", "n");
        a_int(n, "axis", 0);
        n = add(g, "g1", "Gather", 13, "s,i1", "c");
        a_int(n, "axis", 0);
        add(g, "mul", "Mul", 14, "c,two", "c2");  /* 16 */
        add(g, "addn", "Add", 14, "c2,m3", "c3"); /* 13 */
        n = add(g, "cast", "Cast", 13, "c3", "c4");
        a_int(n, "to", OT_DTYPE_INT32);
        n = add(g, "cast2", "Cast", 13, "c4", "c5");
        a_int(n, "to", OT_DTYPE_INT64);
        init_ints(g, "m1", 1, (const int64_t[]){ -1 });
        n = add(g, "cat", "Concat", 13, "n,two,m1", "target"); /* n, 2, -1 */
        a_int(n, "axis", 0);
        add(g, "reshape", "Reshape", 13, "x,target", "y");
        add(g, "hw", "Slice", 13, "s,s2,e9", "hw"); /* the spatial dims */
        CHECK_OK(run(g, &err), &err);
        const ot_tensor *t = ot_graph_const(g, ot_graph_find_value(g, "c5"));
        CHECK(t && t->dtype == OT_DTYPE_INT64 && ot_tensor_get_i64(t, 0) == 13);
        t = ot_graph_const(g, ot_graph_find_value(g, "c4"));
        CHECK(t && t->dtype == OT_DTYPE_INT32 && ot_tensor_get_i64(t, 0) == 13);
        t = ot_graph_const(g, ot_graph_find_value(g, "hw"));
        CHECK(t && ot_tensor_numel(t) == 2 && ot_tensor_get_i64(t, 0) == 4 &&
              ot_tensor_get_i64(t, 1) == 4);
        CHECK_SHAPE(g, "y", dynamic ? "[N,2,64]" : "[2,2,64]");
        t = ot_graph_const(g, ot_graph_find_value(g, "target"));
        CHECK(dynamic ? t == NULL : (t && ot_tensor_get_i64(t, 0) == 2));
        ot_graph_free(g);
    }
}

/* Split, Expand, Tile, ConstantOfShape, Range, ScatterND, the comparisons
   and Where: output shapes and dtypes, and errors naming the node */
TEST(infer_index_logic_ops)
{
    ot_graph *g = ot_graph_new();
    ot_err err;
    input(g, "x", OT_DTYPE_FLOAT, "N,7,4");
    input(g, "v", OT_DTYPE_FLOAT, "4");
    init_ints(g, "sizes", 2, (const int64_t[]){ 3, 4 });
    init_ints(g, "eshape", 3, (const int64_t[]){ 2, 1, 4 });
    init_ints(g, "reps", 3, (const int64_t[]){ 1, 2, 3 });
    init_ints(g, "cshape", 2, (const int64_t[]){ 3, 5 });
    init_ints(g, "idx", 2, (const int64_t[]){ 1, 3 });
    ot_node *n = add(g, "split13", "Split", 13, "x,sizes", "s0,s1");
    a_int(n, "axis", 1);
    n = add(g, "split18", "Split", 18, "x", "t0,t1,t2");
    a_int(n, "axis", -2);
    a_int(n, "num_outputs", 3);
    n = add(g, "split11", "Split", 11, "x", "u0,u1");
    a_int(n, "axis", 2);
    add(g, "expand", "Expand", 13, "v,eshape", "e");
    add(g, "tile", "Tile", 13, "x,reps", "tl");
    add(g, "cos", "ConstantOfShape", 9, "cshape", "zeros");
    add(g, "eq", "Equal", 13, "x,v", "mask");
    add(g, "nt", "Not", 1, "mask", "nmask");
    add(g, "where", "Where", 16, "nmask,x,v", "w");
    add(g, "mod", "Mod", 13, "sizes,idx", "m");
    CHECK_OK(run(g, &err), &err);
    CHECK_SHAPE(g, "s0", "[N,3,4]");
    CHECK_SHAPE(g, "s1", "[N,4,4]");
    CHECK_SHAPE(g, "t0", "[N,3,4]");
    CHECK_SHAPE(g, "t2", "[N,1,4]");
    CHECK_SHAPE(g, "u1", "[N,7,2]");
    CHECK_SHAPE(g, "e", "[2,1,4]");
    CHECK_SHAPE(g, "tl", "[N,14,12]"); /* a repeat of 1 keeps the symbol */
    CHECK_SHAPE(g, "zeros", "[3,5]");
    CHECK(val(g, "zeros")->dtype == OT_DTYPE_FLOAT && val(g, "mask")->dtype == OT_DTYPE_BOOL);
    CHECK_SHAPE(g, "w", "[N,7,4]");
    const ot_tensor *t = ot_graph_const(g, ot_graph_find_value(g, "m"));
    CHECK(t && ot_tensor_get_i64(t, 0) == 0 && ot_tensor_get_i64(t, 1) == 1);
    ot_graph_free(g);

    /* Range: float and integer counts, folded when small */
    g = ot_graph_new();
    int32_t sc[3] = { init_ints(g, "st", 1, (const int64_t[]){ 10 }),
                      init_ints(g, "lim", 1, (const int64_t[]){ 3 }),
                      init_ints(g, "dl", 1, (const int64_t[]){ -3 }) };
    for (int i = 0; i < 3; i++) /* scalars */
        g->values[sc[i]].ndim = 0, g->values[sc[i]].data.ndim = 0;
    add(g, "range", "Range", 11, "st,lim,dl", "r");
    CHECK_OK(run(g, &err), &err);
    CHECK_SHAPE(g, "r", "[3]");
    t = ot_graph_const(g, ot_graph_find_value(g, "r"));
    CHECK(t && ot_tensor_get_i64(t, 0) == 10 && ot_tensor_get_i64(t, 2) == 4);
    ot_graph_free(g);

    /* errors name the node */
    const struct {
        const char *type;
        int opset;
        const char *ins, *outs, *want;
    } bad[] = {
        { "Split", 13, "x,sizes", "a,b", "does not add up" },
        { "Split", 13, "x", "a,b", "equal parts" },
        { "Expand", 13, "x,eshape", "a", "do not broadcast" },
        { "Where", 16, "x,x,x", "a", "expected bool" },
        { "Mod", 13, "x,x", "a", "fmod must be 1" },
        { "ScatterND", 13, "x,upd_idx,x", "a", "updates" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        g = ot_graph_new();
        input(g, "x", OT_DTYPE_FLOAT, "3,5");
        init_ints(g, "sizes", 2, (const int64_t[]){ 1, 1 });
        init_ints(g, "eshape", 2, (const int64_t[]){ 4, 5 });
        int32_t ui = input(g, "upd_idx", OT_DTYPE_INT64, "2,1");
        (void)ui;
        n = add(g, "bad", bad[i].type, bad[i].opset, bad[i].ins, bad[i].outs);
        ot_status st = run(g, &err);
        CHECK(st != OT_OK);
        if (!strstr(err.msg, "'bad'") || !strstr(err.msg, bad[i].want))
            ot_test_fail(__FILE__, __LINE__, "%s: %s", bad[i].type, err.msg);
        ot_graph_free(g);
    }
}

/* PyTorch's Expand of a class token (ViT): Where(Equal(shape, -1), 1,
   shape) folds over a shape vector with a symbolic batch, so the Expand
   keeps [N,1,C]; Swin's window-mask arithmetic (Range, ConstantOfShape,
   Transpose, an empty Slice of a shape) folds to constants. */
TEST(infer_fold_expand_and_window_chains)
{
    ot_graph *g = ot_graph_new();
    ot_err err;
    input(g, "x", OT_DTYPE_FLOAT, "N,5,8");
    weight(g, "tok", "1,1,8");
    init_ints(g, "i0", 1, (const int64_t[]){ 0 });
    init_ints(g, "m1", 3, (const int64_t[]){ -1, -1, -1 });
    init_ints(g, "tail", 2, (const int64_t[]){ -1, -1 });
    add(g, "shape", "Shape", 13, "x", "s");
    ot_node *n = add(g, "g0", "Gather", 13, "s,i0", "nb");
    a_int(n, "axis", 0);
    n = add(g, "cat", "Concat", 13, "nb,tail", "target"); /* N, -1, -1 */
    a_int(n, "axis", 0);
    add(g, "eq", "Equal", 13, "target,m1", "is_neg");
    init_ints(g, "shp3", 1, (const int64_t[]){ 3 });
    n = add(g, "ones", "ConstantOfShape", 9, "shp3", "one3");
    ot_attr *a = attr(n, "value", OT_ATTR_TENSOR);
    static int64_t one = 1;
    static ot_tensor one_t = { .dtype = OT_DTYPE_INT64, .ndim = 1, .dims = { 1 },
                               .data = &one, .bytes = 8 };
    a->t = &one_t;
    add(g, "where", "Where", 16, "is_neg,one3,target", "eshape");
    add(g, "expand", "Expand", 13, "tok,eshape", "cls");
    /* MultiheadAttention's (L * N, C) reshape: the product with a symbol is
       unknown, C stays known */
    init_ints(g, "i1", 1, (const int64_t[]){ 1 });
    init_ints(g, "i2", 1, (const int64_t[]){ 2 });
    n = add(g, "g1", "Gather", 13, "s,i1", "len");
    a_int(n, "axis", 0);
    n = add(g, "g2", "Gather", 13, "s,i2", "ch");
    a_int(n, "axis", 0);
    add(g, "mul", "Mul", 14, "len,nb", "rows");
    n = add(g, "cat2", "Concat", 13, "rows,ch", "flat");
    a_int(n, "axis", 0);
    add(g, "rs", "Reshape", 13, "x,flat", "x2d");
    CHECK_OK(run(g, &err), &err);
    CHECK_SHAPE(g, "cls", "[N,1,8]");
    CHECK_SHAPE(g, "x2d", "[?,8]");
    const ot_tensor *t = ot_graph_const(g, ot_graph_find_value(g, "one3"));
    CHECK(t && ot_tensor_numel(t) == 3 && ot_tensor_get_i64(t, 2) == 1);
    ot_graph_free(g);

    g = ot_graph_new();
    input(g, "x", OT_DTYPE_FLOAT, "2,8,6");
    init_ints(g, "two", 1, (const int64_t[]){ 2 });
    init_ints(g, "big", 1, (const int64_t[]){ INT64_MAX });
    init_ints(g, "perm_in", 4, (const int64_t[]){ 1, 2, 3, 4 });
    init_ints(g, "s22", 2, (const int64_t[]){ 2, 2 });
    add(g, "shape", "Shape", 13, "x", "s");
    add(g, "empty", "Slice", 13, "s,big,big", "none"); /* [] */
    n = add(g, "cat", "Concat", 13, "s,none", "s_again");
    a_int(n, "axis", 0);
    add(g, "rs", "Reshape", 13, "perm_in,s22", "grid");
    n = add(g, "tr", "Transpose", 13, "grid", "grid_t");
    a_ints(g, n, "perm", 2, (const int64_t[]){ 1, 0 });
    n = add(g, "cos", "ConstantOfShape", 9, "two", "z2");
    a = attr(n, "value", OT_ATTR_TENSOR);
    static int64_t seven = 7;
    static ot_tensor seven_t = { .dtype = OT_DTYPE_INT64, .ndim = 1, .dims = { 1 },
                                 .data = &seven, .bytes = 8 };
    a->t = &seven_t;
    CHECK_OK(run(g, &err), &err);
    t = ot_graph_const(g, ot_graph_find_value(g, "s_again"));
    CHECK(t && ot_tensor_numel(t) == 3 && ot_tensor_get_i64(t, 1) == 8);
    t = ot_graph_const(g, ot_graph_find_value(g, "grid_t"));
    CHECK(t && ot_tensor_get_i64(t, 1) == 3 && ot_tensor_get_i64(t, 2) == 2);
    t = ot_graph_const(g, ot_graph_find_value(g, "z2"));
    CHECK(t && ot_tensor_numel(t) == 2 && ot_tensor_get_i64(t, 1) == 7);
    ot_graph_free(g);
}
