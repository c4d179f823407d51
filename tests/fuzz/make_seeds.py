#!/usr/bin/python3
"""Seed corpora for the data, image and checkpoint fuzz harnesses, hostile
inputs included, generated at fuzz time (nothing large is committed).

    /usr/bin/python3 tests/fuzz/make_seeds.py HARNESS OUT_DIR

HARNESS is data, image or checkpoint; OUT_DIR receives the seed files
(existing files are kept). The layouts are those the harnesses document in
tests/fuzz/fuzz_<HARNESS>.c.
"""
import gzip
import io
import os
import struct
import sys
import zlib


def idx_header(dims, kind=8):
    return bytes([0, 0, kind, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)


def archive(mode, a, b, c=b""):
    return bytes([mode]) + struct.pack("<II", len(a), len(b)) + a + b + c


def data_seeds():
    s = {}
    img = idx_header([4, 8, 8]) + bytes(range(256))
    lab = idx_header([4]) + bytes([0, 1, 2, 3])
    s["idx-plain"] = archive(0, img, lab)
    s["idx-classes"] = archive(0, img, lab, b"cat\ndog\n\nbird\nfish\n")
    s["idx-gz"] = archive(1, gzip.compress(img), gzip.compress(lab))
    s["idx-gz-concat"] = archive(1, gzip.compress(img[:100]) + gzip.compress(img[100:]),
                                 gzip.compress(lab))
    s["idx-bomb"] = archive(1, gzip.compress(idx_header([1000000, 4096, 4096]) + bytes(65536)),
                            gzip.compress(lab))
    s["idx-claims-more"] = archive(0, idx_header([60000, 28, 28]) + bytes(64), lab)
    s["idx-side-zero"] = archive(0, idx_header([4, 0, 8]), lab)
    s["idx-overflow"] = archive(0, idx_header([0xffffffff, 16384, 16384]), lab)
    s["idx-label-range"] = archive(0, img, idx_header([4]) + bytes([0, 1, 2, 200]))
    s["idx-wrong-type"] = archive(0, idx_header([4, 8, 8], kind=0x0d) + bytes(1024), lab)
    s["idx-count-mismatch"] = archive(0, img, idx_header([3]) + bytes(3))
    s["idx-gz-truncated"] = archive(1, gzip.compress(img)[:-12], gzip.compress(lab))
    s["idx-classes-nul"] = archive(0, img, lab, b"a\0b\n")
    s["idx-classes-many"] = archive(0, img, lab, b"".join(b"c%d\n" % i for i in range(300)))
    rec = lambda label, v: bytes([label]) + bytes([v]) * 3072
    s["cifar"] = archive(2, rec(0, 1) + rec(9, 2), rec(3, 3))
    s["cifar-meta"] = archive(2, rec(0, 1) + rec(2, 2), b"", b"red\ngreen\nblue\n")
    s["cifar-partial-record"] = archive(2, rec(0, 1) + bytes(100), b"")
    s["cifar-label-range"] = archive(2, rec(0, 1) + rec(250, 2), b"")
    s["cifar-long-name"] = archive(2, rec(0, 1), b"", b"x" * 300 + b"\n")
    return s


def png(w, h, color, depth, rows=None, interlace=0, chunks=()):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color]
    row_bytes = (w * channels * depth + 7) // 8
    if rows is None:
        rows = [bytes((x * 37 + y * 11) & 0xff for x in range(row_bytes)) for y in range(h)]
    raw = b"".join(b"\0" + r for r in rows)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0,
                                                                     interlace))
    for k, v in chunks:
        out += chunk(k, v)
    if color == 3:
        out += chunk(b"PLTE", bytes(range(48)))
    return out + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def image_seeds():
    s = {}
    s["png-gray8"] = png(8, 8, 0, 8)
    s["png-gray1"] = png(16, 4, 0, 1)
    s["png-rgb8"] = png(5, 3, 2, 8)
    s["png-rgba16"] = png(3, 3, 6, 16)
    s["png-palette"] = png(4, 4, 3, 4)
    s["png-gray-alpha"] = png(4, 4, 4, 8)
    s["png-interlaced"] = png(9, 7, 2, 8, interlace=1)
    s["png-trns"] = png(4, 4, 2, 8, chunks=[(b"tRNS", bytes(6))])
    s["png-huge-header"] = png(100000, 100000, 0, 8, rows=[b"\0" * 8])
    s["png-64mp-header"] = png(16384, 4096, 0, 8, rows=[b"\0" * 8])
    s["png-zero-width"] = png(0, 8, 0, 8, rows=[b""] * 8)
    s["png-truncated"] = png(8, 8, 2, 8)[:60]
    try:
        from PIL import Image
        for mode, name in (("L", "gray"), ("RGB", "rgb"), ("CMYK", "cmyk")):
            im = Image.new(mode, (13, 9))
            im.putdata([tuple((i * 7 + k * 50) & 0xff for k in range(len(mode)))
                        if len(mode) > 1 else (i * 7) & 0xff for i in range(13 * 9)])
            for prog in (False, True):
                b = io.BytesIO()
                im.save(b, "JPEG", quality=80, progressive=prog)
                s["jpeg-%s%s" % (name, "-progressive" if prog else "")] = b.getvalue()
        b = io.BytesIO()
        Image.new("L", (8, 8)).save(b, "JPEG")
        j = bytearray(b.getvalue())
        # SOF0 height and width set to 65500 x 65500
        k = j.find(b"\xff\xc0")
        if k > 0:
            j[k + 5:k + 9] = struct.pack(">HH", 65500, 65500)
            s["jpeg-huge-header"] = bytes(j)
        s["jpeg-truncated"] = bytes(b.getvalue()[:len(b.getvalue()) // 2])
    except ImportError:
        pass
    return s


def checkpoint_seeds():
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    w = numpy_helper.from_array(np.ones((3, 4), np.float32), "fc.weight")
    bias = numpy_helper.from_array(np.zeros(3, np.float32), "fc.bias")
    m1 = numpy_helper.from_array(np.zeros((3, 4), np.float32), "onnxtrain.optim.adam.m.0")
    g = helper.make_graph(
        [helper.make_node("Gemm", ["x", "fc.weight", "fc.bias"], ["y"], transB=1, name="fc")],
        "ck", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], [w, bias, m1])
    base = {
        "format": "1", "model": "0123456789abcdef", "data": "fedcba9876543210",
        "images": "10", "classes": "3", "options": "mode=full\nclasses=3\n",
        "params": "fc.weight\nfc.bias\n", "step": "4", "epoch": "1", "steps_per_epoch": "3",
        "epoch_step": "1", "epochs": "5", "epoch_loss_sum": "2.5", "epoch_correct": "1",
        "epoch_seen": "2", "last_loss": "1.25", "last_accuracy": "0.5",
    }
    pre = {"onnxtrain.image_size": "8", "onnxtrain.mean": "0.5,0.5,0.5",
           "onnxtrain.std": "0.25,0.25,0.25", "onnxtrain.classes": "a\nb\nc"}

    def make(meta, extra=None):
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
        for k, v in meta.items():
            e = m.metadata_props.add()
            e.key, e.value = "onnxtrain.checkpoint." + k, v
        for k, v in (extra if extra is not None else pre).items():
            e = m.metadata_props.add()
            e.key, e.value = k, v
        return m.SerializeToString()

    s = {"ok": make(base)}
    for key, bad in (("format", "2"), ("format", "0x1"), ("step", "-1"),
                     ("step", "99999999999999999999"), ("steps_per_epoch", "0"),
                     ("epoch", "2147483648"), ("classes", "nan"), ("epoch_loss_sum", "inf"),
                     ("last_accuracy", "0x1p3"), ("model", "xyz"), ("data", "1" * 40),
                     ("epoch_step", "1e3"), ("images", " 10"), ("options", "\x00")):
        meta = dict(base)
        meta[key] = bad
        s["bad-%s-%s" % (key, "".join(ch if ch.isalnum() else "_" for ch in bad)[:12])] = make(meta)
    meta = dict(base)
    del meta["params"]
    s["missing-params"] = make(meta)
    s["std-tiny"] = make(base, dict(pre, **{"onnxtrain.std": "1e-45,1e-45,1e-45"}))
    s["std-nan"] = make(base, dict(pre, **{"onnxtrain.std": "nan,1,1"}))
    s["size-huge"] = make(base, dict(pre, **{"onnxtrain.image_size": "99999999999"}))
    return s


def main():
    harness, out = sys.argv[1], sys.argv[2]
    seeds = {"data": data_seeds, "image": image_seeds, "checkpoint": checkpoint_seeds}[harness]()
    os.makedirs(out, exist_ok=True)
    for name, blob in seeds.items():
        path = os.path.join(out, "seed-" + name)
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(blob)
    print("%d %s seeds in %s" % (len(seeds), harness, out))


if __name__ == "__main__":
    main()
