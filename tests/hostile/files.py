#!/usr/bin/python3
"""Writes the small inputs of tests/cli/test_hostile_files.sh.

    /usr/bin/python3 tests/hostile/files.py OUTDIR

OUTDIR/tiny.onnx     a classifier: input 'input' [N,3,32,32], Conv 3->4, Relu,
                     GlobalAveragePool, Flatten, Gemm 'fc' 4->10 ('logits')
OUTDIR/two.onnx      two outputs ('a' = x + 1, 'b' = x * 2) of x [1,4]
OUTDIR/ext/m.onnx    tiny.onnx with the fc weight in ext/m.onnx.data
OUTDIR/in.pb         an input tensor for tiny.onnx [1,3,32,32]
OUTDIR/x.pb          an input tensor for two.onnx [1,4]
OUTDIR/img.png       a 32x32 RGB image
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def tiny(rng):
    w = numpy_helper.from_array(rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "conv.weight")
    b = numpy_helper.from_array(np.zeros(4, np.float32), "conv.bias")
    fw = numpy_helper.from_array(rng.normal(0, 0.3, (10, 4)).astype(np.float32), "fc.weight")
    fb = numpy_helper.from_array(np.zeros(10, np.float32), "fc.bias")
    nodes = [
        helper.make_node("Conv", ["input", "conv.weight", "conv.bias"], ["c"], name="conv",
                         pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1),
    ]
    g = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        [w, b, fw, fb])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def two():
    one = numpy_helper.from_array(np.ones((1, 4), np.float32), "one")
    two_ = numpy_helper.from_array(np.full((1, 4), 2, np.float32), "two")
    g = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["a"], name="add"),
         helper.make_node("Mul", ["x", "two"], ["b"], name="mul")], "two",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 4]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 4])], [one, two_])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def main():
    out = sys.argv[1]
    os.makedirs(os.path.join(out, "ext"), exist_ok=True)
    rng = np.random.default_rng(0)
    m = tiny(rng)
    onnx.save(m, os.path.join(out, "tiny.onnx"))
    onnx.save(two(), os.path.join(out, "two.onnx"))
    onnx.save(m, os.path.join(out, "ext", "m.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="m.onnx.data", size_threshold=100)
    x = rng.normal(0, 1, (1, 3, 32, 32)).astype(np.float32)
    with open(os.path.join(out, "in.pb"), "wb") as f:
        f.write(numpy_helper.from_array(x, "input").SerializeToString())
    with open(os.path.join(out, "x.pb"), "wb") as f:
        f.write(numpy_helper.from_array(np.arange(4, dtype=np.float32).reshape(1, 4), "x")
                .SerializeToString())
    from PIL import Image
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
        os.path.join(out, "img.png"))


main()
