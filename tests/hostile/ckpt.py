#!/usr/bin/python3
"""Inputs for tests/cli/test_hostile_ckpt.sh.

    ckpt.py model OUT.onnx          a tiny classifier: Conv 3->4 3x3, BN, Relu,
                                    GlobalAveragePool, Flatten, Gemm 4->10
                                    (input N,3,8,8; seeded; trains in well
                                    under a second per epoch)
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def model(out):
    rng = np.random.default_rng(7)

    def init(name, a):
        return numpy_helper.from_array(np.asarray(a, np.float32), name)

    inits = [
        init("conv.weight", rng.normal(0, 0.3, (4, 3, 3, 3))),
        init("conv.bias", np.zeros(4)),
        init("bn.weight", np.ones(4)),
        init("bn.bias", np.zeros(4)),
        init("bn.running_mean", np.zeros(4)),
        init("bn.running_var", np.ones(4)),
        init("fc.weight", rng.normal(0, 0.3, (10, 4))),
        init("fc.bias", np.zeros(10)),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "conv.weight", "conv.bias"], ["c"], name="conv",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization",
                         ["c", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"],
                         ["b"], name="bn"),
        helper.make_node("Relu", ["b"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["logits"], name="fc",
                         transB=1),
    ]
    g = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, out)


def main(argv):
    if len(argv) == 3 and argv[1] == "model":
        model(argv[2])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
