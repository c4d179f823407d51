#!/usr/bin/python3
"""Hostile data sets for tests/cli/test_hostile_data.sh, written at test time.

    /usr/bin/python3 tests/hostile/data.py OUT_DIR

Writes into OUT_DIR:
  model.onnx          a tiny classifier (3x8x8 -> Conv -> GAP -> Gemm, 10 classes)
  good_idx/           a valid 4-image IDX set (8x8), the control case
  idx_bomb/           train-images-idx3-ubyte.gz whose header claims 1,000,000
                      images of 4096x4096 (16 TB) over 64 KB of gzip'd zeros
  idx_big/            a plain images file whose header claims 300 images of
                      1024x1024 (300 MiB; sparse, so it costs no disk)
  idx_short/          a plain images file whose header claims 60000 images of
                      28x28 and holds 10
  cifar_meta_dir/     a CIFAR-10 folder whose batches.meta.txt is a folder
  png_huge/           an image folder holding a PNG whose header says
                      100000x100000 (a valid 8x8 PNG besides it)
  folder_loop/        an image folder where cls0/loop links back to the root
  folder_wide/        an image folder of 2 classes, 600 files each

Nothing here is large on disk; sizes come from headers and sparse files.
"""
import gzip
import os
import struct
import sys
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def idx_header(dims):
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)


def png_bytes(w, h, pixels=None):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)  # 8-bit gray
    if pixels is None:
        raw = b"\0" * 64
    else:
        raw = b"".join(b"\0" + bytes(row) for row in pixels)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) +
            chunk(b"IEND", b""))


def model(path):
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.1, "w1")
    b1 = numpy_helper.from_array(np.zeros(4, np.float32), "b1")
    w2 = numpy_helper.from_array(rng.standard_normal((10, 4)).astype(np.float32) * 0.1, "fc.weight")
    b2 = numpy_helper.from_array(np.zeros(10, np.float32), "fc.bias")
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="gap"),
        helper.make_node("Flatten", ["p"], ["f"], axis=1, name="flatten"),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["y"], transB=1, name="fc"),
    ]
    g = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        [w1, b1, w2, b2])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(m)
    onnx.save(m, path)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    model(os.path.join(out, "model.onnx"))

    d = os.path.join(out, "good_idx")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "train-images-idx3-ubyte"), "wb") as f:
        f.write(idx_header([4, 8, 8]) + bytes(range(256)))
    with open(os.path.join(d, "train-labels-idx1-ubyte"), "wb") as f:
        f.write(idx_header([4]) + bytes([0, 1, 2, 3]))

    d = os.path.join(out, "idx_bomb")
    os.makedirs(d, exist_ok=True)
    with gzip.open(os.path.join(d, "train-images-idx3-ubyte.gz"), "wb") as f:
        f.write(idx_header([1000000, 4096, 4096]))
        f.write(b"\0" * 65536)
    with open(os.path.join(d, "train-labels-idx1-ubyte"), "wb") as f:
        f.write(idx_header([4]) + bytes(4))

    d = os.path.join(out, "idx_big")
    os.makedirs(d, exist_ok=True)
    head = idx_header([300, 1024, 1024])
    with open(os.path.join(d, "train-images-idx3-ubyte"), "wb") as f:
        f.write(head)
        f.truncate(len(head) + 300 * 1024 * 1024)
    with open(os.path.join(d, "train-labels-idx1-ubyte"), "wb") as f:
        f.write(idx_header([300]) + bytes(300))

    d = os.path.join(out, "idx_short")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "train-images-idx3-ubyte"), "wb") as f:
        f.write(idx_header([60000, 28, 28]) + bytes(10 * 28 * 28))
    with open(os.path.join(d, "train-labels-idx1-ubyte"), "wb") as f:
        f.write(idx_header([60000]) + bytes(60000))

    d = os.path.join(out, "cifar_meta_dir")
    os.makedirs(os.path.join(d, "batches.meta.txt"), exist_ok=True)
    rec = bytes([0]) + bytes(3072)
    with open(os.path.join(d, "data_batch_1.bin"), "wb") as f:
        f.write(rec * 4)

    d = os.path.join(out, "png_huge")
    for c in ("a", "b"):
        os.makedirs(os.path.join(d, c), exist_ok=True)
        with open(os.path.join(d, c, "ok.png"), "wb") as f:
            f.write(png_bytes(8, 8, [[x * 16 for x in range(8)]] * 8))
    with open(os.path.join(d, "a", "huge.png"), "wb") as f:
        f.write(png_bytes(100000, 100000))

    d = os.path.join(out, "folder_loop")
    for c in ("cls0", "cls1"):
        os.makedirs(os.path.join(d, c), exist_ok=True)
        with open(os.path.join(d, c, "img.png"), "wb") as f:
            f.write(png_bytes(8, 8, [[x * 16 for x in range(8)]] * 8))
    link = os.path.join(d, "cls0", "loop")
    if not os.path.islink(link):
        os.symlink("..", link)

    d = os.path.join(out, "folder_wide")
    small = png_bytes(8, 8, [[x * 16 for x in range(8)]] * 8)
    for c in ("cls0", "cls1"):
        os.makedirs(os.path.join(d, c), exist_ok=True)
        for i in range(600):
            with open(os.path.join(d, c, "i%03d.png" % i), "wb") as f:
                f.write(small)


if __name__ == "__main__":
    main()
