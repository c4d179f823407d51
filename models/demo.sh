#!/bin/bash
# The default job (make demo): what the pipeline can do today, end to end on a
# ResNet-18 that PyTorch builds locally with random weights (nothing is
# downloaded). Import, inspect, convert to a dynamic batch, move the weights to
# external data and back, and check every file with the onnx package.
set -euo pipefail
BUILD=${1:-build}
BIN=$BUILD/onnxtrain
OUT=$BUILD/demo
mkdir -p "$OUT"

echo "== making ResNet-18 fixtures (PyTorch, random weights, seed 0)"
/usr/bin/python3 tests/fixtures/make_resnet18.py "$BUILD/fixtures"
MODEL=$BUILD/fixtures/resnet18_zoo7.onnx

echo
echo "== onnxtrain inspect $MODEL"
"$BIN" inspect "$MODEL"

echo
echo "== onnxtrain convert --batch dynamic"
"$BIN" convert "$MODEL" "$OUT/resnet18_dynamic.onnx" --batch dynamic
"$BIN" inspect "$OUT/resnet18_dynamic.onnx" --json | /usr/bin/python3 -c '
import json, sys
j = json.load(sys.stdin)
print("inputs:", ", ".join("%s %s" % (i["name"], i["shape"]) for i in j["inputs"]))
print("head:", j["head"])'

echo
echo "== onnxtrain convert --external-data, then --inline-data"
"$BIN" convert "$OUT/resnet18_dynamic.onnx" "$OUT/resnet18_ext.onnx" --external-data
ls -l "$OUT/resnet18_ext.onnx" "$OUT/resnet18_ext.onnx.data"
"$BIN" convert "$OUT/resnet18_ext.onnx" "$OUT/resnet18_inline.onnx" --inline-data

echo
echo "== checking with the onnx package"
/usr/bin/python3 - "$MODEL" "$OUT" <<'PY'
import sys, onnx, numpy as np
from onnx import numpy_helper
src, out = sys.argv[1], sys.argv[2]
a = onnx.load(src)
for name in ["resnet18_dynamic.onnx", "resnet18_ext.onnx", "resnet18_inline.onnx"]:
    m = onnx.load(out + "/" + name)
    onnx.checker.check_model(m)
    wa = {t.name: numpy_helper.to_array(t) for t in a.graph.initializer}
    same = all(np.array_equal(wa[t.name], numpy_helper.to_array(t)) for t in m.graph.initializer)
    dim0 = m.graph.input[0].type.tensor_type.shape.dim[0]
    print("%-24s checker ok, weights identical: %s, batch dim: %s" %
          (name, same, dim0.dim_param or dim0.dim_value))
    assert same
PY
echo
echo "demo: done (outputs in $OUT)"
