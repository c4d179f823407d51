#!/bin/bash
# The default job (make demo): transfer learning, offline, on 2 cores in a few
# minutes, with the project's own tools and Debian's Fashion-MNIST.
#
#  1. onnxtrain zoo builds a ResNet-18 in torchvision's layout (random weights).
#  2. It is pretrained on Fashion-MNIST's first five classes (T-shirt/top,
#     Trouser, Pullover, Dress, Coat) at 32x32 and exported.
#  3. That model is transferred to the other five classes (Sandal, Shirt,
#     Sneaker, Bag, Ankle boot) from 25 labelled images per class, by feature
#     extraction and by fine-tuning, next to the same network trained from
#     scratch on the same 125 images.
#  4. All three are scored on the full test split of those five classes, the
#     table is printed, and the fine-tuned file is checked with onnxruntime.
#
# OT_DEMO_QUICK=1 runs the same pipeline at a reduced size (the tests use it).
set -euo pipefail
BUILD=${1:-build}
BIN=$BUILD/onnxtrain
OUT=$BUILD/demo
DATA=${OT_DEMO_DATA:-/usr/share/datasets/fashion-mnist}
mkdir -p "$OUT"
if [ "${OT_DEMO_QUICK:-0}" = 1 ]; then
    PRE_PER_CLASS=64 PRE_EPOCHS=1 FEW=10 EPOCHS=3
else
    PRE_PER_CLASS=1000 PRE_EPOCHS=2 FEW=25 EPOCHS=10
fi
COMMON=(--data "$DATA" --image-size 32 --threads 2 --seed 1)

step() { echo; echo "== $*"; }

step "1. onnxtrain zoo resnet18 --classes 5"
"$BIN" zoo resnet18 --classes 5 --seed 1 -o "$OUT/resnet18_base.onnx"
"$BIN" inspect "$OUT/resnet18_base.onnx" | sed -n '1,6p;/head:/p'

step "2. pretrain on classes 0-4 ($PRE_PER_CLASS images per class, $PRE_EPOCHS epochs, from scratch)"
"$BIN" finetune "$OUT/resnet18_base.onnx" "${COMMON[@]}" --data-classes 0-4 \
    --per-class "$PRE_PER_CLASS" --mode full --lr 1e-3 --epochs "$PRE_EPOCHS" --batch-size 64 \
    -o "$OUT/pretrained_0-4.onnx"

run_transfer() { # NAME MODEL MODE LR
    local name=$1 model=$2 mode=$3 lr=$4
    step "3. $name: classes 5-9, $FEW images per class, $EPOCHS epochs"
    "$BIN" finetune "$model" "${COMMON[@]}" --data-classes 5-9 --per-class "$FEW" \
        --classes 5 --mode "$mode" --lr "$lr" --epochs "$EPOCHS" --batch-size 25 \
        -o "$OUT/$name.onnx" | grep -E "^(epoch $EPOCHS/|training|test)"
}
run_transfer feature-extract "$OUT/pretrained_0-4.onnx" feature-extract 1e-2
run_transfer fine-tune "$OUT/pretrained_0-4.onnx" fine-tune 1e-3
run_transfer from-scratch "$OUT/resnet18_base.onnx" full 1e-3

step "4. accuracy on the full test split of classes 5-9"
printf '%-18s %8s %8s\n' "model" "top-1" "top-5"
for name in feature-extract fine-tune from-scratch; do
    "$BIN" eval "$OUT/$name.onnx" --data "$DATA" --data-classes 5-9 --json >"$OUT/$name.eval.json"
    /usr/bin/python3 -c '
import json, sys
j = json.load(open(sys.argv[2]))
print("%-18s %8.4f %8.4f" % (sys.argv[1], j["top1"], j["top5"]))' "$name" "$OUT/$name.eval.json"
done

step "5. the fine-tuned file in onnxruntime (onnxruntime-node from npm)"
ORT=$BUILD/ort
if [ ! -d "$ORT/node_modules/onnxruntime-node" ]; then
    mkdir -p "$ORT"
    ONNXRUNTIME_NODE_INSTALL=skip npm install --prefix "$ORT" onnxruntime-node@1.30 \
        --no-audit --no-fund --loglevel=error >/dev/null
fi
/usr/bin/python3 - "$OUT/x.pb" <<'PY'
import sys, numpy as np
from onnx import numpy_helper as nh
x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
open(sys.argv[1], "wb").write(nh.from_array(x, "input").SerializeToString())
PY
"$BIN" run "$OUT/fine-tune.onnx" --input "$OUT/x.pb" --output-dir "$OUT/run" >/dev/null
NODE_PATH=$ORT/node_modules node tests/ort/run_ort.js "$OUT/fine-tune.onnx" "$OUT/x.pb" \
    "$OUT/ort.json"
/usr/bin/python3 - "$OUT/run/output_0.pb" "$OUT/ort.json" <<'PY'
import sys, json, numpy as np, onnx
from onnx import numpy_helper as nh
a = nh.to_array(onnx.load_tensor(sys.argv[1]))
b = np.array(json.load(open(sys.argv[2]))["outputs"][0]["data"], np.float32).reshape(a.shape)
d = float(np.max(np.abs(a - b)))
print("onnxruntime and onnxtrain agree on fine-tune.onnx: max abs diff %.2g" % d)
sys.exit(0 if d <= 1e-4 else 1)
PY
echo
echo "demo: done (models in $OUT)"
