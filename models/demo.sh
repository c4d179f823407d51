#!/bin/bash
# The default job (make demo): the whole pipeline on a built-in default.
#
# A ResNet-18 that PyTorch builds locally (random weights, seed 0; nothing is
# downloaded) is imported and inspected, its 1000-class head is replaced by a
# 10-class one, and its last stage is fine-tuned on Fashion-MNIST (real images,
# Debian's dataset-fashion-mnist) at 32x32 on the CPU, for a bounded number of
# steps. The result is scored on the test split, exported as plain ONNX,
# checked with the onnx package, and run once with `onnxtrain run`.
set -euo pipefail
BUILD=${1:-build}
BIN=$BUILD/onnxtrain
OUT=$BUILD/demo
DATA=${OT_DEMO_DATA:-/usr/share/datasets/fashion-mnist}
STEPS=${OT_DEMO_STEPS:-60}
mkdir -p "$OUT"

echo "== making ResNet-18 fixtures (PyTorch, random weights, seed 0)"
/usr/bin/python3 tests/fixtures/make_resnet18.py "$BUILD/fixtures"
MODEL=$BUILD/fixtures/resnet18_bn.onnx

echo
echo "== onnxtrain inspect $MODEL"
"$BIN" inspect "$MODEL"

echo
echo "== onnxtrain finetune: new 10-class head, fine-tune layer4 + fc on Fashion-MNIST"
"$BIN" finetune "$MODEL" --data "$DATA" --classes 10 --mode fine-tune --image-size 32 \
    --lr 1e-3 --epochs 1 --max-steps "$STEPS" --batch-size 32 -o "$OUT/resnet18_fmnist.onnx"

echo
echo "== onnxtrain eval (test split)"
"$BIN" eval "$OUT/resnet18_fmnist.onnx" --data "$DATA" | head -4

echo
echo "== checking the exported file with the onnx package, then onnxtrain run"
/usr/bin/python3 - "$MODEL" "$OUT/resnet18_fmnist.onnx" <<'PY'
import sys, onnx
a, b = onnx.load(sys.argv[1]), onnx.load(sys.argv[2])
onnx.checker.check_model(b, full_check=True)
md = {p.key: p.value for p in b.metadata_props}
print("checker ok; nodes %d -> %d; head %s; image size %s; classes %s..." % (
    len(a.graph.node), len(b.graph.node),
    [d.dim_value or d.dim_param for d in b.graph.output[0].type.tensor_type.shape.dim],
    md["onnxtrain.image_size"], ", ".join(md["onnxtrain.classes"].split("\n")[:3])))
PY
"$BIN" run "$OUT/resnet18_fmnist.onnx" --random --batch 1 | head -4
echo
echo "demo: done (outputs in $OUT)"
