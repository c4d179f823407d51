#!/usr/bin/python3
"""Hostile inputs about classes and weights, for tests/cli/test_hostile_classes.sh.

    /usr/bin/python3 tests/hostile/classes.py OUTDIR

Writes, all small and deterministic:
  model{3,10}.onnx   Conv(3->4, 3x3) -> BatchNormalization -> Relu
                     -> Clip(0, +Inf) -> GlobalAveragePool -> Flatten -> Gemm(4->K)
                     on 8x8 RGB (the Clip's +Inf bound is a legitimate constant)
  nan_conv.onnx      model3 with every convolution weight NaN
  inf_bn.onnx        model3 with +Inf in the BatchNorm running variance
  nan_gemm.onnx      model3 with a NaN in the Gemm bias
  classes_json.onnx  model3 with onnxtrain.classes = ["a\\nb","c","d"] (JSON)
  classes_legacy.onnx  model3 with onnxtrain.classes = "x\\ny\\nz" (earlier versions)
  classes_legacy4.onnx  model3 with 4 newline-joined names for its 3 outputs
  classes_dup.onnx   model3 with onnxtrain.classes = ["a","b","a"]
  classes_bad.onnx   model3 with onnxtrain.classes = ["a", "b" (truncated JSON)
  cifar1/            CIFAR-10 binary: 1 class (batches.meta.txt "only"), 8 images
  cifar_dup/         CIFAR-10 binary, batches.meta.txt with "cat" twice
  cifar_utf8/        CIFAR-10 binary, batches.meta.txt with a name of invalid UTF-8
  cifar3/            CIFAR-10 binary, 3 classes, labels 0..2, 12 images
  cifar3_lbl5/       CIFAR-10 binary, 10 names, labels 0..2 and one 5
  idx10/             train-images-idx3-ubyte, labels 0..2 only, classes.txt of 10
  idx_dup/           IDX with classes.txt naming "z" twice
  folder_nl/         image folder, classes "a\\nb", "c", "d" (a newline in a name)
  folder_utf8/       image folder, classes "\\xff\\xfe", "ok" (not UTF-8)
  folder1/           image folder with one class
  img.ppm            an 8x8 image for predict
"""
import os
import struct
import sys
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def model(k, channels=3, nan=None, classes=None):
    rng = np.random.default_rng(k)
    w = rng.normal(0, 0.3, (4, channels, 3, 3)).astype(np.float32)
    b = np.zeros(4, np.float32)
    scale = np.ones(4, np.float32)
    bias = np.zeros(4, np.float32)
    mean = np.zeros(4, np.float32)
    var = np.ones(4, np.float32)
    fw = rng.normal(0, 0.3, (k, 4)).astype(np.float32)
    fb = np.zeros(k, np.float32)
    if nan == "conv":
        w[:] = np.nan
    elif nan == "bn":
        var[2] = np.inf
    elif nan == "gemm":
        fb[k - 1] = np.nan
    inits = [numpy_helper.from_array(a, n) for a, n in [
        (w, "conv.weight"), (b, "conv.bias"), (scale, "bn.weight"), (bias, "bn.bias"),
        (mean, "bn.running_mean"), (var, "bn.running_var"), (fw, "fc.weight"), (fb, "fc.bias"),
        (np.array(0, np.float32), "clip.min"), (np.array(np.inf, np.float32), "clip.max")]]
    nodes = [
        helper.make_node("Conv", ["x", "conv.weight", "conv.bias"], ["c"], name="conv",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "bn.weight", "bn.bias", "bn.running_mean",
                                                "bn.running_var"], ["n"], name="bn"),
        helper.make_node("Relu", ["n"], ["r"], name="relu"),
        helper.make_node("Clip", ["r", "clip.min", "clip.max"], ["q"], name="clip"),
        helper.make_node("GlobalAveragePool", ["q"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1),
    ]
    g = helper.make_graph(nodes, "tiny",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                         ["N", channels, 8, 8])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", k])],
                          inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    if classes is not None:
        p = m.metadata_props.add()
        p.key = "onnxtrain.classes"
        p.value = classes
    return m


def save(m, path):
    with open(path, "wb") as f:
        f.write(m.SerializeToString())


def cifar(d, labels, names):
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(len(labels))
    with open(os.path.join(d, "data_batch_1.bin"), "wb") as f:
        for l in labels:
            f.write(bytes([l]))
            f.write(rng.integers(0, 256, 3072, dtype=np.uint8).tobytes())
    with open(os.path.join(d, "batches.meta.txt"), "wb") as f:
        f.write(b"\n".join(names) + b"\n")


def idx(d, labels, names):
    os.makedirs(d, exist_ok=True)
    n = len(labels)
    rng = np.random.default_rng(n)
    with open(os.path.join(d, "train-images-idx3-ubyte"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 8, 8))
        f.write(rng.integers(0, 256, n * 64, dtype=np.uint8).tobytes())
    with open(os.path.join(d, "train-labels-idx1-ubyte"), "wb") as f:
        f.write(struct.pack(">II", 0x801, n))
        f.write(bytes(labels))
    with open(os.path.join(d, "classes.txt"), "wb") as f:
        f.write(b"\n".join(names) + b"\n")


def png(path, rgb):
    h, w, _ = rgb.shape
    raw = b"".join(b"\0" + rgb[y].tobytes() for y in range(h))

    def chunk(t, data):
        c = struct.pack(">I", len(data)) + t + data
        return c + struct.pack(">I", zlib.crc32(t + data) & 0xffffffff)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def folder(d, names, per_class=3):
    rng = np.random.default_rng(per_class)
    for name in names:
        cd = os.path.join(os.fsencode(d), name)
        os.makedirs(cd, exist_ok=True)
        for i in range(per_class):
            png(os.path.join(cd, b"%d.png" % i), rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    j = lambda *p: os.path.join(out, *p)
    for k in (3, 10):
        save(model(k), j("model%d.onnx" % k))
    for what in ("conv", "bn", "gemm"):
        save(model(3, nan=what), j({"conv": "nan_conv", "bn": "inf_bn", "gemm": "nan_gemm"}[what]
                                   + ".onnx"))
    save(model(3, classes='["a\\nb","c","d"]'), j("classes_json.onnx"))
    save(model(3, classes="x\ny\nz"), j("classes_legacy.onnx"))
    save(model(3, classes="a\nb\nc\nd"), j("classes_legacy4.onnx"))
    save(model(3, classes='["a","b","a"]'), j("classes_dup.onnx"))
    save(model(3, classes='["a", "b"'), j("classes_bad.onnx"))
    cifar(j("cifar1"), [0] * 8, [b"only"])
    cifar(j("cifar_dup"), [0, 1, 2, 0, 1, 2], [b"cat", b"dog", b"cat"])
    cifar(j("cifar_utf8"), [0, 1, 0, 1], [b"ok", b"bad\xff\xfe"])
    cifar(j("cifar3"), [i % 3 for i in range(12)], [b"r", b"g", b"b"])
    cifar(j("cifar3_lbl5"), [i % 3 for i in range(11)] + [5], [b"n%d" % i for i in range(10)])
    idx(j("idx10"), [i % 3 for i in range(12)], [b"c%d" % i for i in range(10)])
    idx(j("idx_dup"), [i % 3 for i in range(12)], [b"z", b"y", b"z"])
    folder(j("folder_nl"), [b"a\nb", b"c", b"d"])
    folder(j("folder_utf8"), [b"\xff\xfe", b"ok"])
    folder(j("folder1"), [b"one"])
    rng = np.random.default_rng(1)
    with open(j("img.ppm"), "wb") as f:
        f.write(b"P6 8 8 255\n" + rng.integers(0, 256, 192, dtype=np.uint8).tobytes())


if __name__ == "__main__":
    main()
