#!/usr/bin/python3
"""Checks that exported models say exactly what their originals said.

    /usr/bin/python3 tests/roundtrip_check.py LIST_FILE

LIST_FILE has one pair a line, `original<TAB>exported` (blank lines and lines
starting with "#" are skipped). Both files are loaded with the onnx package,
external data included (resolved against each file's own folder), and compared
field by field over the whole ModelProto:

- every field of every message, in order (nodes, attributes, inputs, outputs,
  value_info, opset_import, metadata_props, functions, training_info, ...),
  including the unknown fields that the protobuf runtime keeps;
- a scalar field that is absent equals one set to its default, but a oneof
  member (dim_value vs dim_param, TypeProto's kind) and a singular message
  (a tensor shape, present but empty, is not an absent one) must match in
  presence;
- floats compare bit for bit (NaN equals the same NaN);
- a TensorProto (initializers, sparse initializers, tensor attributes)
  compares by name, dims, data_type, segment, doc_string and decoded values,
  bit for bit, whatever the storage (raw_data, float_data, int32_data,
  external file): the form may change, the bytes may not.

Prints `FAIL original: field path: what differs` for each failing pair (the
first difference, and how many more there are), then
`roundtrip: N passed, N failed`; exits 1 when any pair failed.
"""
import os
import struct
import sys

import numpy as np
import onnx
from google.protobuf.descriptor import FieldDescriptor as FD
from onnx import TensorProto, numpy_helper

MAX_DIFFS = 20

FLOAT_TYPES = (FD.CPPTYPE_FLOAT, FD.CPPTYPE_DOUBLE)


def short(v, n=60):
    s = repr(v)
    return s if len(s) <= n else s[:n] + "..."


def same_scalar(fd, a, b):
    if fd.cpp_type == FD.CPPTYPE_FLOAT:
        return struct.pack("<f", a) == struct.pack("<f", b)
    if fd.cpp_type == FD.CPPTYPE_DOUBLE:
        return struct.pack("<d", a) == struct.pack("<d", b)
    return a == b


def unknown_fields(msg):
    try:
        fields = msg.UnknownFields()
    except (AttributeError, NotImplementedError):
        return None
    out = []
    for f in fields:
        data = f.data
        if not isinstance(data, (bytes, int)):
            data = repr([(g.field_number, g.wire_type, g.data) for g in data])
        out.append((f.field_number, f.wire_type, data))
    return out


def tensor_values(t):
    """(kind, bytes-like) describing the decoded contents of a tensor."""
    if t.data_type == TensorProto.STRING:
        return list(t.string_data)
    try:
        arr = numpy_helper.to_array(t)
    except Exception as e:  # undecodable: fall back to the storage fields
        return ("undecodable: %s" % e,
                t.raw_data, list(t.float_data), list(t.int32_data), list(t.int64_data),
                list(t.double_data), list(t.uint64_data))
    return arr.dtype.str, arr.shape, np.ascontiguousarray(arr).tobytes()


class Differ:
    def __init__(self):
        self.diffs = []

    def add(self, path, what):
        self.diffs.append("%s: %s" % (path, what))

    def full(self):
        return len(self.diffs) >= MAX_DIFFS

    def tensor(self, a, b, path):
        if a.name != b.name:
            self.add(path + ".name", "%s != %s" % (short(a.name), short(b.name)))
        if list(a.dims) != list(b.dims):
            self.add(path + ".dims", "%s != %s" % (list(a.dims), list(b.dims)))
        if a.data_type != b.data_type:
            self.add(path + ".data_type", "%d != %d" % (a.data_type, b.data_type))
        if a.doc_string != b.doc_string:
            self.add(path + ".doc_string", "%s != %s" % (short(a.doc_string), short(b.doc_string)))
        if a.HasField("segment") != b.HasField("segment") or a.segment != b.segment:
            self.add(path + ".segment", "differs")
        if self.diffs and self.full():
            return
        if list(a.dims) == list(b.dims) and a.data_type == b.data_type:
            va, vb = tensor_values(a), tensor_values(b)
            if va != vb:
                self.add(path, "values differ" + self.where(va, vb))
        ua, ub = unknown_fields(a), unknown_fields(b)
        if ua != ub:
            self.add(path + ".<unknown fields>", "%s != %s" % (short(ua), short(ub)))

    @staticmethod
    def where(va, vb):
        if isinstance(va, tuple) and len(va) == 3 and isinstance(vb, tuple) and len(vb) == 3:
            a, b = va[2], vb[2]
            if len(a) != len(b):
                return " (%d vs %d bytes)" % (len(a), len(b))
            for i in range(len(a)):
                if a[i] != b[i]:
                    return " (first at byte %d)" % i
        return ""

    def message(self, a, b, path):
        if self.full():
            return
        if isinstance(a, TensorProto):
            self.tensor(a, b, path)
            return
        desc = a.DESCRIPTOR
        for fd in desc.fields:
            name = fd.name
            p = "%s.%s" % (path, name) if path else name
            va, vb = getattr(a, name), getattr(b, name)
            if fd.label == FD.LABEL_REPEATED:
                if len(va) != len(vb):
                    self.add(p, "%d entries != %d" % (len(va), len(vb)))
                    if fd.cpp_type != FD.CPPTYPE_MESSAGE:
                        continue
                for i in range(min(len(va), len(vb))):
                    if fd.cpp_type == FD.CPPTYPE_MESSAGE:
                        self.message(va[i], vb[i], "%s[%d]%s" % (p, i, self.label(va[i])))
                    elif not same_scalar(fd, va[i], vb[i]):
                        self.add("%s[%d]" % (p, i), "%s != %s" % (short(va[i]), short(vb[i])))
                        break
                    if self.full():
                        return
            elif fd.cpp_type == FD.CPPTYPE_MESSAGE:
                ha, hb = a.HasField(name), b.HasField(name)
                if ha != hb:
                    self.add(p, "present in %s only" % ("original" if ha else "exported"))
                elif ha:
                    self.message(va, vb, p)
            else:
                if fd.containing_oneof is not None and a.HasField(name) != b.HasField(name):
                    self.add(p, "set in %s only" % ("original" if a.HasField(name) else "exported"))
                elif not same_scalar(fd, va, vb):
                    self.add(p, "%s != %s" % (short(va), short(vb)))
            if self.full():
                return
        ua, ub = unknown_fields(a), unknown_fields(b)
        if ua != ub:
            self.add((path or "model") + ".<unknown fields>", "%s != %s" % (short(ua), short(ub)))

    @staticmethod
    def label(m):
        name = getattr(m, "name", None)
        if isinstance(name, str) and name:
            return "(%s)" % name
        return ""


def load(path):
    return onnx.load(path, load_external_data=True)


def check_pair(orig, exported):
    """Returns a list of differences (empty when the pair matches)."""
    try:
        a = load(orig)
    except Exception as e:
        return ["load original: %s" % (str(e).splitlines()[0] if str(e) else type(e).__name__)]
    if not os.path.exists(exported):
        return ["load exported: %s does not exist" % exported]
    try:
        b = load(exported)
    except Exception as e:
        return ["load exported: %s" % (str(e).splitlines()[0] if str(e) else type(e).__name__)]
    d = Differ()
    d.message(a, b, "")
    return d.diffs


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: roundtrip_check.py LIST_FILE\n")
        return 2
    passed = failed = 0
    with open(sys.argv[1]) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split("\t")
            if len(parts) != 2:
                print("FAIL %s: list: expected original<TAB>exported" % line)
                failed += 1
                continue
            orig, exported = parts
            diffs = check_pair(orig, exported)
            if diffs:
                more = " (+%d more)" % (len(diffs) - 1) if len(diffs) > 1 else ""
                print("FAIL %s: %s%s" % (orig, diffs[0], more))
                failed += 1
            else:
                passed += 1
    print("roundtrip: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
