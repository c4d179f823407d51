#!/usr/bin/python3
"""Models for tests/cli/test_hostile_sweep.sh, written at test time.

    /usr/bin/python3 tests/hostile/sweep.py OUT_DIR

Writes into OUT_DIR:
  a.onnx            a tiny model (x [1,4] + w -> Relu -> y) whose initializer
                    w keeps its data in the external file 'b.onnx.data'
  b.onnx.data       that data (16 bytes)
  c.onnx            the same model with its data in 'd.onnx.0123abcd.data'
  d.onnx.0123abcd.data
                    that data
The data files carry the names onnxtrain gives the external data of
'b.onnx' and 'd.onnx', so writing those models must not take them.
"""
import os
import sys

import numpy as np
from onnx import TensorProto, helper


def model(out, name, location):
    w = np.array([1.0, -2.0, 3.0, -4.0], np.float32)
    t = TensorProto()
    t.name = "w"
    t.data_type = TensorProto.FLOAT
    t.dims.extend([1, 4])
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", "16")):
        e = t.external_data.add()
        e.key, e.value = k, v
    with open(os.path.join(out, location), "wb") as f:
        f.write(w.tobytes())
    nodes = [helper.make_node("Add", ["x", "w"], ["s"], name="add"),
             helper.make_node("Relu", ["s"], ["y"], name="relu")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [t])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    with open(os.path.join(out, name), "wb") as f:
        f.write(m.SerializeToString())


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    model(out, "a.onnx", "b.onnx.data")
    model(out, "c.onnx", "d.onnx.0123abcd.data")


if __name__ == "__main__":
    main()
