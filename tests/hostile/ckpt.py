#!/usr/bin/python3
"""Hostile checkpoints for tests/cli/test_hostile_ckpt.sh (docs/checkpoint.md).

    ckpt.py model OUT.onnx          a tiny classifier: Conv 3->4 3x3, BN, Relu,
                                    GlobalAveragePool, Flatten, Gemm 4->10
                                    (input N,3,8,8; seeded; trains in well
                                    under a second per epoch)
    ckpt.py flips IN OUTDIR N       N copies of IN, each with one byte
                                    flipped (xor 0x01..0xff), at offsets
                                    spread over the whole file (the first and
                                    last bytes included); prints "OFFSET
                                    PATH" per copy
    ckpt.py setmeta IN OUT KEY=VALUE...
                                    sets metadata_props "onnxtrain.checkpoint.
                                    KEY" (adds it when absent), then writes
                                    the CRC-32 trailer afresh, as onnxtrain
                                    does (when IN had one): such a file
                                    passes the checksum and must be refused
                                    by its ranges; "+KEY=VALUE" adds a
                                    second entry of KEY
    ckpt.py settensor IN OUT NAME INDEX VALUE
                                    sets element INDEX of initializer NAME,
                                    then recomputes the trailer
    ckpt.py recrc IN OUT            writes IN's bytes before its trailer (all
                                    of them when it has none) with a fresh
                                    trailer (a no-op on an intact file)

The trailer is the last metadata_props entry {"onnxtrain.checkpoint.crc32":
8 lowercase hex digits}: the CRC-32 (zlib) of every byte before it, written as
protobuf field 14 of ModelProto (src/onnx/export.c, ot_onnx_crc_trailer).
"""
import sys
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

KEY = b"onnxtrain.checkpoint.crc32"


def trailer(crc):
    entry = b"\x0a" + bytes([len(KEY)]) + KEY + b"\x12\x08" + b"%08x" % crc
    return b"\x72" + bytes([len(entry)]) + entry


def seal(body):
    return body + trailer(zlib.crc32(body) & 0xFFFFFFFF)


def body_of(data):
    """The bytes before the trailer, and whether there was one."""
    n = len(trailer(0))
    if len(data) < n or data[-n:-8] != trailer(0)[:-8]:
        return data, False
    return data[:-n], True


def load(path):
    with open(path, "rb") as f:
        body, sealed = body_of(f.read())
    m = onnx.ModelProto()
    m.ParseFromString(body)
    return m, sealed


def save(m, sealed, path):
    """Seals the file when its source was sealed (a checkpoint written
    before the checksum existed stays without one)."""
    body = m.SerializeToString()
    with open(path, "wb") as f:
        f.write(seal(body) if sealed else body)


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


def flips(src, outdir, n):
    with open(src, "rb") as f:
        data = f.read()
    size = len(data)
    offsets = sorted({0, 1, size - 1, size - 2, size - 9, size - 40}
                     | {(k * (size - 1)) // (n - 1) for k in range(n)}
                     | {int(x) for x in np.random.default_rng(1).integers(0, size, n)})
    for i, off in enumerate(offsets):
        b = bytearray(data)
        b[off] ^= 1 + (i * 37) % 255
        path = "%s/flip_%d.ckpt" % (outdir, off)
        with open(path, "wb") as f:
            f.write(b)
        print(off, path)


def setmeta(src, out, pairs):
    m, sealed = load(src)
    md = {p.key: p for p in m.metadata_props}
    for kv in pairs:
        k, v = kv.split("=", 1)
        dup = k.startswith("+")
        k = "onnxtrain.checkpoint." + k.lstrip("+")
        if k in md and not dup:
            md[k].value = v
        else:
            m.metadata_props.add(key=k, value=v)
    save(m, sealed, out)


def settensor(src, out, name, index, value):
    m, sealed = load(src)
    for t in m.graph.initializer:
        if t.name == name:
            a = numpy_helper.to_array(t).copy()
            a.flat[index] = value
            t.CopyFrom(numpy_helper.from_array(a, name))
            break
    else:
        raise SystemExit("no initializer " + name)
    save(m, sealed, out)


def main(argv):
    cmd = argv[1]
    if cmd == "model":
        model(argv[2])
    elif cmd == "flips":
        flips(argv[2], argv[3], int(argv[4]))
    elif cmd == "setmeta":
        setmeta(argv[2], argv[3], argv[4:])
    elif cmd == "settensor":
        settensor(argv[2], argv[3], argv[4], int(argv[5]), float(argv[6]))
    elif cmd == "recrc":
        with open(argv[2], "rb") as f:
            body = body_of(f.read())[0]
        with open(argv[3], "wb") as f:
            f.write(seal(body))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
