#!/bin/bash
# The default job (make demo): where transfer learning pays, offline, on 2
# cores in a few minutes, with the project's own tools and Debian's
# Fashion-MNIST.
#
#  1. onnxtrain zoo builds a ResNet-18 in torchvision's layout (random weights).
#  2. It is pretrained at 32x32 on all 30,000 training images of Fashion-MNIST's
#     first five classes (T-shirt/top, Trouser, Pullover, Dress, Coat), with
#     augmentation (random resized crop and flip), and exported.
#  3. That model is transferred to the other five classes (Sandal, Shirt,
#     Sneaker, Bag, Ankle boot) from 5 and from 25 labelled images per class,
#     by feature extraction and by fine-tuning, next to the same network
#     trained from scratch on the same images. Each of the six is run with
#     three seeds (which images are labelled, the new head, the batch order).
#     Every run takes the same number of steps (STEPS batches of 25 images),
#     whatever the number of images, and the settings are fixed in advance:
#     nothing here is chosen by looking at test scores.
#  4. Each run is scored on the full test split of those five classes (1,000
#     images per class); the table gives the mean top-1 over the seeds, the
#     spread (sample standard deviation, lowest and highest), and each
#     seed's score.
#  5. A fine-tuned file is checked with onnxruntime.
#  6. The fine-tuning run of the largest labelled set (seed 1) is repeated
#     with --qat: it prints the float32 model's top-1 on the test split, the
#     int8 one's after calibration (post-training quantisation, as --int8
#     writes it) and after one epoch of quantisation-aware training, and
#     writes the int8 QDQ model; the demo ends with those int8 scores next
#     to the float32 one.
#
# OT_DEMO_PRECISION=bf16 (make demo PRECISION=bf16; or auto) passes
# --precision to every run, which then writes to $BUILD/demo-bf16 so that
# the fp32 results stay beside it.
#
# Each stage prints its time. OT_DEMO_QUICK=1 runs the same pipeline at a
# reduced size without step 6 (the tests use it; tests/cli/test_quant.sh
# covers --qat). OT_DEMO_UNTIL=4 stops after step 4's table, and OT_DEMO_OUT
# names another output folder (make demo-precision uses both).
set -euo pipefail
BUILD=${1:-build}
BIN=$BUILD/onnxtrain
PRECISION=${OT_DEMO_PRECISION:-fp32}
case $PRECISION in
    fp32) OUT=$BUILD/demo ;;
    *) OUT=$BUILD/demo-$PRECISION ;;
esac
OUT=${OT_DEMO_OUT:-$OUT}
DATA=${OT_DEMO_DATA:-/usr/share/datasets/fashion-mnist}
PY=/usr/bin/python3
mkdir -p "$OUT/runs"
rm -f "$OUT"/runs/*.json
if [ "${OT_DEMO_QUICK:-0}" = 1 ]; then
    PRE=(--per-class 64 --epochs 1) PRE_DESC="64 images per class, 1 epoch"
    SHOTS="5" SEEDS="1 2" STEPS=4
else
    PRE=(--epochs 2) PRE_DESC="all 30,000 images, 2 epochs"
    SHOTS="5 25" SEEDS="1 2 3" STEPS=50 CALIB=1024
fi
BATCH=25
COMMON=(--data "$DATA" --image-size 32 --threads 2 --precision "$PRECISION")

DEMO_START=$SECONDS
STAGE_START=
step() { # prints the time of the stage before, then the new stage's title
    [ -z "$STAGE_START" ] || echo "   ($((SECONDS - STAGE_START)) s)"
    STAGE_START=$SECONDS
    echo
    echo "== $*"
}

step "1. onnxtrain zoo resnet18 --classes 5"
"$BIN" zoo resnet18 --classes 5 --seed 1 -o "$OUT/resnet18_base.onnx"
"$BIN" inspect "$OUT/resnet18_base.onnx" | sed -n '1,6p;/head:/p'

step "2. pretrain from scratch on classes 0-4 ($PRE_DESC, --augment)"
"$BIN" finetune "$OUT/resnet18_base.onnx" "${COMMON[@]}" --seed 1 --data-classes 0-4 \
    "${PRE[@]}" --augment --mode full --lr 1e-3 --batch-size 64 \
    -o "$OUT/pretrained_0-4.onnx" | grep -E "^(data|training|epoch|test)"

# run_transfer SHOTS METHOD MODEL MODE LR SEED: one run; its --json result
# goes to $OUT/runs/SHOTS_METHOD_SEED.json
run_transfer() {
    local shots=$1 method=$2 model=$3 mode=$4 lr=$5 seed=$6
    local images=$((5 * shots)) epochs
    epochs=$(((STEPS * BATCH + images - 1) / images))
    "$BIN" finetune "$model" "${COMMON[@]}" --data-classes 5-9 --per-class "$shots" \
        --classes 5 --mode "$mode" --lr "$lr" --epochs "$epochs" --batch-size "$BATCH" \
        --seed "$seed" --json -o "$OUT/${shots}_${method}_$seed.onnx" \
        >"$OUT/runs/${shots}_${method}_$seed.json" 2>"$OUT/runs/${shots}_${method}_$seed.log" || {
        cat "$OUT/runs/${shots}_${method}_$seed.log" >&2
        return 1
    }
    if [ "$shots" = "${SHOTS%% *}" ] && [ "$seed" = "${SEEDS%% *}" ]; then
        grep -E "^training" "$OUT/runs/${shots}_${method}_$seed.log" | sed "s/^/   $method: /"
    fi
    "$PY" -c 'import json, sys; print("   %s/class %-16s seed %s  top-1 %.4f" % (sys.argv[2],
        sys.argv[3], sys.argv[4], json.load(open(sys.argv[1]))["test"]["top1"]))' \
        "$OUT/runs/${shots}_${method}_$seed.json" "$shots" "$method" "$seed"
}
for shots in $SHOTS; do
    step "3. classes 5-9 from $shots labelled images per class: $STEPS steps of $BATCH, seeds $SEEDS"
    for seed in $SEEDS; do
        run_transfer "$shots" feature-extract "$OUT/pretrained_0-4.onnx" feature-extract 1e-2 "$seed"
        run_transfer "$shots" fine-tune "$OUT/pretrained_0-4.onnx" fine-tune 1e-3 "$seed"
        run_transfer "$shots" from-scratch "$OUT/resnet18_base.onnx" full 1e-3 "$seed"
    done
done

step "4. top-1 on the full test split of classes 5-9 (5,000 images), over seeds $SEEDS"
"$PY" - "$OUT/runs" "$SHOTS" "$SEEDS" <<'PY'
import json, statistics, sys
runs, shots, seeds = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
print("%-9s %-16s %7s %7s %7s %7s   %s" % ("labelled", "method", "mean", "sd", "min", "max",
                                           "seeds " + " ".join(seeds)))
for s in shots:
    for m in ("feature-extract", "fine-tune", "from-scratch"):
        t = [json.load(open("%s/%s_%s_%s.json" % (runs, s, m, k)))["test"]["top1"] for k in seeds]
        sd = "%7.4f" % statistics.stdev(t) if len(t) > 1 else "%7s" % "-"
        print("%-9s %-16s %7.4f %s %7.4f %7.4f   %s" % (s + "/class", m, statistics.mean(t), sd,
                                                      min(t), max(t),
                                                      " ".join("%.4f" % x for x in t)))
PY
if [ "${OT_DEMO_UNTIL:-}" = 4 ]; then
    echo "   ($((SECONDS - STAGE_START)) s)"
    exit 0
fi

FT=$OUT/${SHOTS%% *}_fine-tune_${SEEDS%% *}.onnx
step "5. $(basename "$FT") in onnxruntime (onnxruntime-node from npm)"
ORT=$BUILD/ort
if [ ! -d "$ORT/node_modules/onnxruntime-node" ]; then
    mkdir -p "$ORT"
    ONNXRUNTIME_NODE_INSTALL=skip npm install --prefix "$ORT" onnxruntime-node@1.30 \
        --no-audit --no-fund --loglevel=error >/dev/null
fi
"$PY" - "$OUT/x.pb" <<'PY'
import sys, numpy as np
from onnx import numpy_helper as nh
x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
open(sys.argv[1], "wb").write(nh.from_array(x, "input").SerializeToString())
PY
"$BIN" run "$FT" --input "$OUT/x.pb" --output-dir "$OUT/run" >/dev/null
NODE_PATH=$ORT/node_modules node tests/ort/run_ort.js "$FT" "$OUT/x.pb" "$OUT/ort.json"
"$PY" - "$OUT/run/output_0.pb" "$OUT/ort.json" "$(basename "$FT")" <<'PY'
import sys, json, numpy as np, onnx
from onnx import numpy_helper as nh
a = nh.to_array(onnx.load_tensor(sys.argv[1]))
b = np.array(json.load(open(sys.argv[2]))["outputs"][0]["data"], np.float32).reshape(a.shape)
d = float(np.max(np.abs(a - b)))
print("onnxruntime and onnxtrain agree on %s: max abs diff %.2g" % (sys.argv[3], d))
sys.exit(0 if d <= 1e-4 else 1)
PY

if [ "${OT_DEMO_QUICK:-0}" != 1 ]; then
    LAST=${SHOTS##* }
    QEPOCHS=$(((STEPS * BATCH + 5 * LAST - 1) / (5 * LAST)))
    QARGS=(--data-classes 5-9 --per-class "$LAST" --classes 5 --mode fine-tune --lr 1e-3
           --epochs "$QEPOCHS" --batch-size "$BATCH" --seed 1 --calib-images "$CALIB")
    step "6. int8 export of the fine-tuned model ($LAST/class, seed 1) with --qat"
    "$BIN" finetune "$OUT/pretrained_0-4.onnx" "${COMMON[@]}" "${QARGS[@]}" --qat --json \
        -o "$OUT/${LAST}_fine-tune_int8.onnx" >"$OUT/runs/qat.json" 2>"$OUT/runs/qat.log" || {
        cat "$OUT/runs/qat.log" >&2
        exit 1
    }
    grep -E "^(test, |quantisation)" "$OUT/runs/qat.log" | sed 's/^/   /'
    ls -l "$OUT/${LAST}_fine-tune_1.onnx" "$OUT/${LAST}_fine-tune_int8.onnx" |
        awk '{ printf "   %s: %.1f MB\n", $NF, $5 / 1e6 }'
fi
echo "   ($((SECONDS - STAGE_START)) s)"
echo
if [ "${OT_DEMO_QUICK:-0}" != 1 ]; then
    # the deployment result next to the float32 one
    "$PY" - "$OUT/runs/qat.json" "$OUT/${LAST}_fine-tune_int8.onnx" "$LAST" <<'PY'
import json, os, sys
q = json.load(open(sys.argv[1]))["qat"]
print("int8 (%s, %.1f MB, %s/class fine-tune, seed 1) on the 5,000 test images of classes 5-9:"
      % (os.path.basename(sys.argv[2]), os.path.getsize(sys.argv[2]) / 1e6, sys.argv[3]))
print("   float32 %.4f   int8 post-training %.4f (%+.2f points)   int8 after QAT %.4f (%+.2f points)"
      % (q["fp32_top1"], q["int8_ptq_top1"], 100 * (q["int8_ptq_top1"] - q["fp32_top1"]),
         q["int8_qat_top1"], 100 * (q["int8_qat_top1"] - q["fp32_top1"])))
PY
fi
echo "demo: done in $((SECONDS - DEMO_START)) s (models in $OUT)"
