/*
 * test_onnx.c: importer and exporter on ONNX's own test models (Debian
 * libonnx-testdata) and on hand-made wire-format buffers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnx.pb-c.h"
#include "onnx/onnx.h"
#include "test.h"

#define TESTDATA "/usr/share/libonnx-testdata/data"

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Import, export, and compare bytes: protobuf-c writes fields in number order
   as ONNX's writer does, so files without unknown fields come back identical. */
static void roundtrip_bytes(const char *rel)
{
    char in[512], out[512];
    snprintf(in, sizeof in, "%s/%s", TESTDATA, rel);
    snprintf(out, sizeof out, "%s/rt.onnx", ot_test_tmpdir());
    ot_err err;
    ot_graph *g = NULL;
    CHECK_OK(ot_onnx_import_file(in, NULL, &g, &err), &err);
    ot_status st = ot_onnx_export_file(g, out, NULL, &err);
    ot_graph_free(g);
    CHECK_OK(st, &err);
    size_t na, nb;
    unsigned char *a = slurp(in, &na), *b = slurp(out, &nb);
    int same = a && b && na == nb && memcmp(a, b, na) == 0;
    free(a);
    free(b);
    if (!same)
        ot_test_fail(__FILE__, __LINE__, "%s: exported bytes differ (%zu vs %zu bytes)", rel, na,
                     nb);
}

TEST(onnx_roundtrip_conv_bytes_identical) { roundtrip_bytes("node/test_conv_with_strides_padding/model.onnx"); }
TEST(onnx_roundtrip_batchnorm_bytes_identical) { roundtrip_bytes("node/test_batchnorm_epsilon/model.onnx"); }
TEST(onnx_roundtrip_if_subgraph_bytes_identical) { roundtrip_bytes("node/test_if/model.onnx"); }
TEST(onnx_roundtrip_constant_bytes_identical) { roundtrip_bytes("node/test_constant/model.onnx"); }
TEST(onnx_roundtrip_pytorch_converted_bytes_identical) { roundtrip_bytes("pytorch-converted/test_AvgPool2d/model.onnx"); }

TEST(onnx_import_resolves_shapes_of_conv_test)
{
    ot_err err;
    ot_graph *g = NULL;
    CHECK_OK(ot_onnx_import_file(TESTDATA "/node/test_conv_with_strides_padding/model.onnx", NULL,
                                 &g, &err),
             &err);
    CHECK_EQ_INT(g->n_nodes, 1);
    CHECK(g->nodes[0].op != NULL);
    const ot_value *y = &g->values[g->outputs[0].value];
    char shape[64];
    ot_value_shape_str(y, shape, sizeof shape);
    CHECK_STR(shape, "[1,1,4,3]");
    ot_graph_free(g);
}

/* Appends a varint. */
static size_t put_varint(unsigned char *p, uint64_t v)
{
    size_t n = 0;
    do {
        p[n++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return n;
}

static size_t varint_len(uint64_t v)
{
    unsigned char tmp[10];
    return put_varint(tmp, v);
}

/* ModelProto.graph(7) -> GraphProto.input(11) -> ValueInfoProto.type(2) ->
   TypeProto.sequence_type(4) -> Sequence.elem_type(1) -> TypeProto ... nested
   `depth` times. Built from the inside out. */
static unsigned char *nested_model(int depth, size_t *len)
{
    size_t cap = (size_t)depth * 16 + 64;
    unsigned char *buf = malloc(cap), *tmp = malloc(cap);
    size_t n = 0; /* innermost TypeProto: empty */
    for (int i = 0; i < depth; i++) {
        /* Sequence { elem_type(1): TypeProto } then TypeProto { sequence_type(4): Sequence } */
        size_t m = 0;
        tmp[m++] = (1 << 3) | 2;
        m += put_varint(tmp + m, n);
        memcpy(tmp + m, buf, n);
        m += n;
        size_t k = 0;
        buf[k++] = (4 << 3) | 2;
        k += put_varint(buf + k, m);
        memcpy(buf + k, tmp, m);
        n = k + m;
    }
    /* ValueInfoProto { name(1): "x", type(2): TypeProto } */
    size_t vlen = 3 + 1 + varint_len(n) + n;
    size_t glen = 1 + varint_len(vlen) + vlen;
    unsigned char *out = malloc(2 + 1 + varint_len(glen) + glen + 16);
    size_t o = 0;
    out[o++] = (1 << 3) | 0; /* ir_version 8 */
    out[o++] = 8;
    out[o++] = (7 << 3) | 2; /* graph */
    o += put_varint(out + o, glen);
    out[o++] = (11 << 3) | 2; /* graph.input */
    o += put_varint(out + o, vlen);
    out[o++] = (1 << 3) | 2;
    out[o++] = 1;
    out[o++] = 'x';
    out[o++] = (2 << 3) | 2;
    o += put_varint(out + o, n);
    memcpy(out + o, buf, n);
    o += n;
    free(buf);
    free(tmp);
    *len = o;
    return out;
}

TEST(onnx_deep_nesting_is_refused_before_unpacking)
{
    size_t len;
    unsigned char *buf = nested_model(6000, &len);
    ot_err err;
    ot_graph *g = NULL;
    ot_status st = ot_onnx_import_buffer(buf, len, "deep.onnx", NULL, NULL, &g, &err);
    free(buf);
    CHECK_EQ_INT(st, OT_ERR_PARSE);
    CHECK(g == NULL);
    CHECK(strstr(err.msg, "nested deeper") != NULL);
}

TEST(onnx_shallow_nesting_is_accepted_by_prescan)
{
    size_t len;
    unsigned char *buf = nested_model(10, &len);
    ot_err err;
    ot_status st = ot_pb_prescan_model_for_test(buf, len, &err);
    free(buf);
    CHECK_OK(st, &err);
}

TEST(onnx_truncated_and_garbage_are_parse_errors)
{
    size_t len;
    unsigned char *buf = slurp(TESTDATA "/node/test_conv_with_strides_padding/model.onnx", &len);
    CHECK(buf != NULL);
    ot_err err;
    ot_graph *g = NULL;
    for (size_t cut = 1; cut < len; cut += 7) {
        ot_status st = ot_onnx_import_buffer(buf, cut, "cut.onnx", NULL, NULL, &g, &err);
        if (st == OT_OK) {
            ot_graph_free(g);
            g = NULL; /* a prefix can be a valid, smaller message */
            continue;
        }
        if (strncmp(err.msg, "cut.onnx: ", 10) != 0 || strchr(err.msg, '\n')) {
            ot_test_fail(__FILE__, __LINE__, "cut at %zu: bad message '%s'", cut, err.msg);
            free(buf);
            return;
        }
    }
    unsigned char junk[256];
    srand(7);
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)rand();
    ot_status st = ot_onnx_import_buffer(junk, sizeof junk, "junk.onnx", NULL, NULL, &g, &err);
    free(buf);
    CHECK(st != OT_OK);
    CHECK(g == NULL);
}

TEST(onnx_export_failure_leaves_no_file)
{
    ot_err err;
    ot_graph *g = NULL;
    CHECK_OK(ot_onnx_import_file(TESTDATA "/node/test_relu/model.onnx", NULL, &g, &err), &err);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/missing-dir/out.onnx", ot_test_tmpdir());
    ot_status st = ot_onnx_export_file(g, dir, NULL, &err);
    ot_graph_free(g);
    CHECK_EQ_INT(st, OT_ERR_IO);
    CHECK(access(dir, F_OK) != 0);
}

/* Fields newer than the installed schema (IR 10's node metadata_props, field
   9 of NodeProto, and an unknown model-level field) come back unchanged. */
TEST(onnx_unknown_fields_survive_a_round_trip)
{
    size_t len;
    unsigned char *buf = slurp(TESTDATA "/node/test_relu/model.onnx", &len);
    CHECK(buf != NULL);
    /* NodeProto field 9 (metadata_props: key "k", value "v") appended to the
       node, and ModelProto field 99 (bytes "zz") appended to the model.
       protobuf-c keeps an unknown length-prefixed field's bytes with their
       length prefix, after the key. */
    static const unsigned char node_extra[] = { 0x4a, 0x06, 0x0a, 0x01, 'k', 0x12, 0x01, 'v' };
    static const unsigned char model_extra[] = { 0x9a, 0x06, 0x02, 'z', 'z' };
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
    free(buf);
    CHECK(m && m->graph && m->graph->n_node == 1);
    Onnx__NodeProto *np = m->graph->node[0];
    ProtobufCMessageUnknownField uf = { .tag = 9, .wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED,
                                        .len = 7, .data = (uint8_t *)(uintptr_t)(node_extra + 1) };
    ProtobufCMessageUnknownField mf = { .tag = 99, .wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED,
                                        .len = 3, .data = (uint8_t *)(uintptr_t)(model_extra + 2) };
    size_t saved_n = np->base.n_unknown_fields, saved_m = m->base.n_unknown_fields;
    ProtobufCMessageUnknownField *saved_nf = np->base.unknown_fields, *saved_mf = m->base.unknown_fields;
    np->base.n_unknown_fields = 1;
    np->base.unknown_fields = &uf;
    m->base.n_unknown_fields = 1;
    m->base.unknown_fields = &mf;
    size_t n = protobuf_c_message_get_packed_size(&m->base);
    unsigned char *packed = malloc(n);
    protobuf_c_message_pack(&m->base, packed);
    np->base.n_unknown_fields = saved_n;
    np->base.unknown_fields = saved_nf;
    m->base.n_unknown_fields = saved_m;
    m->base.unknown_fields = saved_mf;
    onnx__model_proto__free_unpacked(m, NULL);

    ot_err err;
    ot_graph *g = NULL;
    ot_status st = ot_onnx_import_buffer(packed, n, "ir10.onnx", NULL, NULL, &g, &err);
    free(packed);
    CHECK_OK(st, &err);
    char out[512];
    snprintf(out, sizeof out, "%s/ir10.onnx", ot_test_tmpdir());
    st = ot_onnx_export_file(g, out, NULL, &err);
    ot_graph_free(g);
    CHECK_OK(st, &err);
    unsigned char *back = slurp(out, &len);
    CHECK(back != NULL);
    Onnx__ModelProto *m2 = onnx__model_proto__unpack(NULL, len, back);
    free(back);
    CHECK(m2 != NULL);
    const Onnx__NodeProto *n2 = m2->graph->node[0];
    int ok_node = n2->base.n_unknown_fields == 1 && n2->base.unknown_fields[0].tag == 9 &&
                  n2->base.unknown_fields[0].len == 7 &&
                  memcmp(n2->base.unknown_fields[0].data, node_extra + 1, 7) == 0;
    int ok_model = m2->base.n_unknown_fields == 1 && m2->base.unknown_fields[0].tag == 99 &&
                   memcmp(m2->base.unknown_fields[0].data, model_extra + 2, 3) == 0;
    onnx__model_proto__free_unpacked(m2, NULL);
    CHECK(ok_node);
    CHECK(ok_model);
}
