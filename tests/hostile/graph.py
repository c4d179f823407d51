#!/usr/bin/env python3
"""graph.py: hostile models for the graph, shape-inference and importer checks.

    /usr/bin/python3 tests/hostile/graph.py OUTDIR

writes OUTDIR/<case>.onnx for every case below and OUTDIR/cases.tsv, one line
per model that every command must refuse: file name, TAB, a fragment its error
message must contain (see `matches` in tests/cli/lib.sh). Models that must
work (empty graphs, long chains) are written but not listed there; the suite
(tests/cli/test_hostile_graph.sh) knows them by name.

Nothing is random; every model is small (the long chain is about 3 MB).
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

BIG = 2**63 - 1


def vi(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def model(nodes, inputs, outputs, inits=(), opset=13, ir=8):
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = ir
    return m


def pool(**attrs):
    n = helper.make_node("MaxPool", ["x"], ["y"], name="pool", **attrs)
    return model([n], [vi("x", [1, 1, 8, 8])], [vi("y", None)])


def conv(**attrs):
    w = numpy_helper.from_array(np.ones((1, 1, 3, 3), np.float32), "w")
    n = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", **attrs)
    return model([n], [vi("x", [1, 1, 8, 8])], [vi("y", None)], [w])


def pad(pads):
    p = numpy_helper.from_array(np.array(pads, np.int64), "p")
    n = helper.make_node("Pad", ["x", "p"], ["y"], name="pad")
    return model([n], [vi("x", [1, 1, 8, 8])], [vi("y", None)], [p])


def reshape_concat():
    # a reshape to a shape whose element count overflows, then a concat
    s = numpy_helper.from_array(np.array([2**62, 2**62], np.int64), "s")
    n1 = helper.make_node("Reshape", ["x", "s"], ["r"], name="reshape")
    n2 = helper.make_node("Concat", ["r", "r"], ["y"], name="concat", axis=0)
    return model([n1, n2], [vi("x", ["N"])], [vi("y", None)], [s])


def concat_sum():
    # each input is fine; the sum of their dims along the axis overflows
    s = numpy_helper.from_array(np.array([2**62], np.int64), "s")
    n1 = helper.make_node("Reshape", ["x", "s"], ["r"], name="reshape")
    n2 = helper.make_node("Concat", ["r", "r", "r"], ["y"], name="concat", axis=0)
    return model([n1, n2], [vi("x", ["N"], TensorProto.BOOL)], [vi("y", None, TensorProto.BOOL)],
                 [s])


def flatten_zero(reshape):
    # a zero dim beside two huge ones: no elements, but Flatten's product of
    # the other dims overflows
    if not reshape:
        n = helper.make_node("Flatten", ["x"], ["y"], name="flatten", axis=1)
        return model([n], [vi("x", [0, 2**62, 2**62])], [vi("y", None)])
    s = numpy_helper.from_array(np.array([0, 2**62, 2**62], np.int64), "s")
    n1 = helper.make_node("Reshape", ["x", "s"], ["r"], name="reshape", allowzero=1)
    n2 = helper.make_node("Flatten", ["r"], ["y"], name="flatten", axis=1)
    return model([n1, n2], [vi("x", [0])], [vi("y", None)], [s], opset=14)


def gemm_big():
    # each input is 8 GiB, within the import limit; the output's size overflows
    n = helper.make_node("Gemm", ["a", "b"], ["y"], name="gemm")
    return model([n], [vi("a", [2**31, 1]), vi("b", [1, 2**31])], [vi("y", None)])


def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def many_attrs(count):
    # INT attributes a0, a1, ... written as wire bytes (the onnx helpers take
    # about a minute for 400,000): AttributeProto name = 1, i = 3, type = 20
    raw = bytearray()
    for i in range(count):
        name = b"a%d" % i
        attr = b"\x0a" + varint(len(name)) + name + b"\x18" + varint(i) + b"\xa0\x01\x02"
        raw += b"\x2a" + varint(len(attr)) + attr  # NodeProto attribute = 5
    n = helper.make_node("Relu", ["x"], ["y"], name="relu")
    n.MergeFromString(bytes(raw))
    return model([n], [vi("x", [1, 3])], [vi("y", [1, 3])])


def dup_attr():
    n = helper.make_node("Relu", ["x"], ["y"], name="relu")
    n.attribute.extend([helper.make_attribute("alpha", 1.0), helper.make_attribute("beta", 2.0),
                        helper.make_attribute("alpha", 3.0)])
    return model([n], [vi("x", [1, 3])], [vi("y", [1, 3])])


def no_nodes():
    # the output is the input: a graph with no nodes
    return model([], [vi("x", [1, 3])], [vi("x", [1, 3])])


def no_nodes_image():
    # an image-shaped graph with no nodes: predict, eval and finetune read it
    return model([], [vi("x", ["N", 3, 32, 32])], [vi("x", ["N", 3, 32, 32])])


def zero_elements():
    # tensors with no elements (their buffers are NULL) through copies
    s = numpy_helper.from_array(np.array([0, 3], np.int64), "s")
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Identity", ["r"], ["i"], name="identity"),
             helper.make_node("Reshape", ["i", "s"], ["y"], name="reshape"),
             helper.make_node("Concat", ["y", "y"], ["z"], name="concat", axis=0)]
    return model(nodes, [vi("x", [0, 3])], [vi("z", [0, 3])], [s])


def no_inputs():
    c = numpy_helper.from_array(np.ones((1, 3), np.float32), "c")
    n = helper.make_node("Relu", ["c"], ["y"], name="relu")
    return model([n], [], [vi("y", [1, 3])], [c])


def no_outputs():
    n = helper.make_node("Relu", ["x"], ["y"], name="relu")
    return model([n], [vi("x", [1, 3])], [])


def chain(count):
    nodes = [helper.make_node("Relu", ["v%d" % i], ["v%d" % (i + 1)], name="r%d" % i)
             for i in range(count)]
    return model(nodes, [vi("v0", [1, 3, 8, 8])], [vi("v%d" % count, [1, 3, 8, 8])])


def input_vs_init():
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    n = helper.make_node("Conv", ["x", "w"], ["y"], name="conv")
    return model([n], [vi("x", [1, 3, 8, 8]), vi("w", [8, 3, 5, 5])], [vi("y", None)], [w],
                 ir=3, opset=9)


def bad_elem():
    n = helper.make_node("Relu", ["x"], ["y"], name="relu")
    return model([n], [vi("x", [1, 3], 999)], [vi("y", None)])


def opset(v):
    n = helper.make_node("Relu", ["x"], ["y"], name="relu")
    return model([n], [vi("x", [1, 3])], [vi("y", None)], opset=v)


def ir(v):
    n = helper.make_node("Relu", ["x"], ["y"], name="relu")
    return model([n], [vi("x", [1, 3])], [vi("y", None)], ir=v)


# refused by every command: (name, model, fragment)
REFUSED = [
    ("pool_pads", lambda: pool(kernel_shape=[3, 3], pads=[BIG] * 4), "node 'pool'&overflow"),
    ("pool_dilations", lambda: pool(kernel_shape=[3, 3], dilations=[2**62] * 2),
     "node 'pool'&overflow"),
    ("pool_kernel", lambda: pool(kernel_shape=[BIG, BIG]), "node 'pool'&overflow|node 'pool'&larger"),
    ("pool_same_dilations", lambda: pool(kernel_shape=[3, 3], dilations=[2**62] * 2,
                                         auto_pad="SAME_UPPER"), "node 'pool'&overflow"),
    ("pool_ceil", lambda: pool(kernel_shape=[2, 2], strides=[BIG] * 2, ceil_mode=1, pads=[BIG] * 4),
     "node 'pool'&overflow"),
    ("conv_pads", lambda: conv(pads=[BIG] * 4), "node 'conv'&overflow"),
    ("conv_dilations", lambda: conv(dilations=[2**62] * 2), "node 'conv'&overflow"),
    ("conv_group", lambda: conv(group=2**62), "node 'conv'"),
    ("pad_big", lambda: pad([0, 0, 2**62, 2**62, 0, 0, 2**62, 2**62]), "node 'pad'&overflow"),
    ("pad_neg", lambda: pad([0, 0, -(2**63), -(2**63), 0, 0, -1, -1]),
     "node 'pad'&overflow"),
    ("reshape_concat", reshape_concat, "node 'reshape'&overflow"),
    ("concat_sum", concat_sum, "node 'concat'&overflow"),
    ("flatten_zero_input", lambda: flatten_zero(False), "'x'&overflows"),
    ("flatten_zero_reshape", lambda: flatten_zero(True), "node 'reshape'&overflow"),
    ("gemm_big", gemm_big, "node 'gemm'&overflow"),
    ("too_many_attrs", lambda: many_attrs(400000), "node 'relu'&attributes"),
    ("dup_attr", dup_attr, "node 'relu'&'alpha'&twice"),
    ("input_vs_init", input_vs_init, "'w'&[8,3,5,5]&[4,3,3,3]"),
    ("bad_elem", bad_elem, "'x'&999"),
    ("opset_0", lambda: opset(0), "opset&0"),
    ("opset_neg", lambda: opset(-5), "opset&-5"),
    ("ir_neg", lambda: ir(-1), "ir version&-1"),
]

# written, not listed: the suite decides what each must do
OTHER = [
    ("pool_ceil_stride", lambda: pool(kernel_shape=[2, 2], strides=[BIG] * 2, ceil_mode=1)),
    ("pool_same_stride", lambda: pool(kernel_shape=[2, 2], strides=[BIG] * 2,
                                      auto_pad="SAME_UPPER")),
    ("no_nodes", no_nodes),
    ("no_nodes_image", no_nodes_image),
    ("zero_elements", zero_elements),
    ("no_inputs", no_inputs),
    ("no_outputs", no_outputs),
    ("attrs_1000", lambda: many_attrs(1000)),
    ("chain", lambda: chain(int(os.environ.get("OT_CHAIN", "60000")))),
]


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "cases.tsv"), "w") as tsv:
        for name, make, fragment in REFUSED:
            with open(os.path.join(out, name + ".onnx"), "wb") as f:
                f.write(make().SerializeToString())
            tsv.write("%s.onnx\t%s\n" % (name, fragment))
    for name, make in OTHER:
        with open(os.path.join(out, name + ".onnx"), "wb") as f:
            f.write(make().SerializeToString())


if __name__ == "__main__":
    main()
