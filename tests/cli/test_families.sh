#!/bin/bash
# test_families.sh: the torchvision classification families, small
# (tests/fixtures/make_family_tests.py: 64x64, batch 2), through import,
# inference and the three training modes:
#
#   import   `inspect --json` finds the head PyTorch has (in and out
#            features) and the parameter count of the file
#   run      `test-data` against PyTorch's output at the default tolerances
#   MODE     for feature-extract, fine-tune and full: `finetune` runs 2 steps
#            on tiny CIFAR at the family's size and exports; the export runs
#            in onnxruntime with the logits `onnxtrain run` gives (max abs
#            diff <= 1e-4); the tensors the mode freezes (inspect --training
#            --json; the statistics of a BatchNorm it trains excepted) are
#            bit-identical to the imported ones, and some trained one changed;
#            for the transformers, fine-tune trains from the last encoder
#            block (FINE_TUNE_FROM); an export below opset 7 (the zoo's
#            opset-3 form) goes to onnxruntime through zoo_forms.py --opset9
#
# Each family lists the checks it must pass (EXPECT below); the others run
# too and are recorded, not counted, so that the table in docs/models.md
# (tools/gen_models_table.py) says what each family lacks. Results go to
# $BUILD/families/results.tsv (family, check, ok|fail|missing, detail); the
# rows of families a run does not test are kept.
# onnxruntime-node comes from $BUILD/ort as in test_ort.sh; without it the
# onnxruntime checks fail. Skipped when OT_FAST=1.
#
#   BUILD=build bash tests/cli/test_families.sh [--all] [FAMILY...]
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
skip_if_fast
need_cli
T_TIMEOUT=${T_TIMEOUT_MODELS:-900}
TOL=1e-4

# family -> the checks it must pass today
declare -A EXPECT=(
    [alexnet]="import run feature-extract fine-tune full"
    [vgg11]="import run feature-extract fine-tune full"
    [vgg11_bn]="import run feature-extract fine-tune full"
    [resnext50_32x4d]="import run feature-extract fine-tune full"
    [wide_resnet50_2]="import run feature-extract fine-tune full"
    [squeezenet1_0]="import run feature-extract fine-tune full"
    [densenet121]="import run feature-extract fine-tune full"
    [googlenet]="import run feature-extract fine-tune full"
    [inception_v3]="import run feature-extract fine-tune full"
    [shufflenet_v2_x0_5]="import run feature-extract fine-tune full"
    [mnasnet0_5]="import run feature-extract fine-tune full"
    [regnet_y_400mf]="import run feature-extract fine-tune full"
    [mobilenet_v3_small]="import run feature-extract fine-tune full"
    [efficientnet_b0]="import run feature-extract fine-tune full"
    [efficientnet_v2_s]="import run feature-extract fine-tune full"
    [convnext_tiny]="import run feature-extract fine-tune full"
    [zoo_caffenet]="import run feature-extract fine-tune full"
    [vit_b_16]="import run feature-extract fine-tune full"
    [vit_b_16_op17]="import run feature-extract fine-tune full"
    [swin_t]="import run feature-extract fine-tune full"
    [swin_t_op17]="import run feature-extract fine-tune full"
    [zoo_resnet18v1]="import run feature-extract fine-tune full"
    [vit_b_16_224]="import run feature-extract fine-tune full"
    [swin_t_224]="import run feature-extract fine-tune full"
    [zoo_resnet18v2]="import run feature-extract fine-tune full"
    [zoo_squeezenet1_1]="import run feature-extract fine-tune full"
    [zoo_densenet121]="import run feature-extract fine-tune full"
    [zoo_googlenet]="import run feature-extract fine-tune full"
    [zoo_vgg16_bn]="import run feature-extract fine-tune full"
    [zoo_vgg19]="import run feature-extract fine-tune full"
    [zoo_zfnet]="import run feature-extract fine-tune full"
    [zoo_shufflenet_v2]="import run feature-extract fine-tune full"
    [zoo_shufflenet_v1]="import run feature-extract fine-tune full"
    [zoo_mobilenetv2_nhwc]="import run feature-extract fine-tune full"
    [zoo_efficientnet_lite4]="import run feature-extract fine-tune full"
    [zoo_resnet50v1]="import run feature-extract fine-tune full"
    [zoo_resnet50_caffe2]="import run feature-extract fine-tune full"
    [zoo_inception_v1]="import run feature-extract fine-tune full"
    [zoo_resnet34v1]="import run feature-extract fine-tune full"
    [zoo_resnet101v1]="import run feature-extract fine-tune full"
    [zoo_resnet152v1]="import run feature-extract fine-tune full"
    [zoo_resnet34v2]="import run feature-extract fine-tune full"
    [zoo_resnet50v2]="import run feature-extract fine-tune full"
    [zoo_resnet101v2]="import run feature-extract fine-tune full"
    [zoo_resnet152v2]="import run feature-extract fine-tune full"
    [zoo_inception_v2]="import run feature-extract fine-tune full"
    [zoo_alexnet]="import run feature-extract fine-tune full"
    [zoo_vgg16]="import run feature-extract fine-tune full"
    [zoo_vgg19_bn]="import run feature-extract fine-tune full"
    [zoo_mobilenetv2]="import run feature-extract fine-tune full"
    [zoo_squeezenet1_0]="import run feature-extract fine-tune full"
)

# family -> the node its fine-tune preset must train from (a glob): the
# transformers' last encoder block
declare -A FINE_TUNE_FROM=(
    [vit_b_16]="/encoder/layers/encoder_layer_1/ln_1/*"
    [vit_b_16_op17]="/encoder/layers/encoder_layer_1/ln_1/*"
    [swin_t]="/features/features.3/features.3.1/norm1/*"
    [swin_t_op17]="/features/features.3/features.3.1/norm1/*"
)

FX=$BUILD/families
DATA=$BUILD/tiny_cifar
mkdir -p "$FX"
if ! "$PY" tests/fixtures/make_family_tests.py "$FX" "$@" >"$T_TMP/make.log" 2>&1; then
    fail setup "make_family_tests.py failed: $(tail -n 1 "$T_TMP/make.log")"
    finish
fi
if [ ! -f "$DATA/data_batch_1.bin" ] &&
    ! "$PY" tests/fixtures/make_tiny_cifar.py "$DATA" >"$T_TMP/cifar.log" 2>&1; then
    fail setup "make_tiny_cifar.py failed: $(tail -n 1 "$T_TMP/cifar.log")"
    finish
fi
FAMILIES=$(sed -n 's/^ok //p' "$T_TMP/make.log")

ORT_OK=0
if command -v node >/dev/null 2>&1 && [ -d "$BUILD/ort/node_modules/onnxruntime-node" ]; then
    export NODE_PATH
    NODE_PATH=$(realpath "$BUILD/ort")/node_modules
    ORT_OK=1
fi

RESULTS=$FX/results.tsv.tmp
: >"$RESULTS"

# record FAMILY CHECK STATUS DETAIL: counted when the family expects CHECK
record() {
    local fam=$1 check=$2 status=$3 detail=$4 expected=0
    [[ " ${EXPECT[$fam]} " == *" $check "* ]] && expected=1
    printf '%s\t%s\t%s\t%s\n' "$fam" "$check" "$status" "${detail//$'\t'/ }" >>"$RESULTS"
    if [ "$expected" -eq 1 ]; then
        if [ "$status" = ok ]; then ok "$fam/$check${detail:+ ($detail)}"; else
            fail "$fam/$check" "$detail"
        fi
    else
        echo "info $fam/$check: $status${detail:+: $detail}"
    fi
}

# one-line reason from the CLI's stderr
why() { tail -n 1 "$T_TMP/stderr" | sed 's/^onnxtrain: error: //' | cut -c1-300; }

CHECK_IMPORT='
import json, sys
got, exp = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
head = got.get("head") or {}
bad = []
if head.get("in_features") != exp["in_features"] or head.get("out_features") != exp["out_features"]:
    bad.append("head %s -> %s, PyTorch %d -> %d" % (head.get("in_features"), head.get("out_features"),
               exp["in_features"], exp["out_features"]))
if got.get("n_params") != exp["n_params"]:
    bad.append("%s parameters, expected %d" % (got.get("n_params"), exp["n_params"]))
print("; ".join(bad) if bad else "ok %s, %d params" % (head.get("node"), exp["n_params"]))
'

# FROZEN: frozen initializers bit-identical, a trained one changed
CHECK_FROZEN='
import json, sys
import numpy as np
import onnx
from onnx import numpy_helper
src, out, plan = onnx.load(sys.argv[1]), onnx.load(sys.argv[2]), json.load(open(sys.argv[3]))
trained = set(plan["trainable"])
# a BatchNormalization that trains (its scale does) updates its statistics
for n in src.graph.node:
    if n.op_type == "BatchNormalization" and n.input[1] in trained:
        trained.update(n.input[3:5])
a = {t.name: t for t in src.graph.initializer}
b = {t.name: t for t in out.graph.initializer}
bad, moved, n_frozen = [], 0, 0
for name, t in a.items():
    if name not in b:
        continue
    x, y = numpy_helper.to_array(t), numpy_helper.to_array(b[name])
    same = x.shape == y.shape and x.tobytes() == y.tobytes()
    if name in trained:
        moved += not same
    elif t.data_type == onnx.TensorProto.FLOAT:
        n_frozen += 1
        if not same:
            bad.append(name)
if bad:
    print("frozen tensors changed: " + ", ".join(bad[:5]))
elif not moved:
    print("no trained tensor changed")
else:
    print("ok %d frozen identical, %d trained changed" % (n_frozen, moved))
'

COMPARE_ORT='
import json, sys
import numpy as np
import onnx
from onnx import numpy_helper
o = json.load(open(sys.argv[1]))["outputs"][0]
t = onnx.TensorProto()
t.ParseFromString(open(sys.argv[2] + "/output_0.pb", "rb").read())
got = numpy_helper.to_array(t).astype(np.float64)
want = np.array(o["data"], np.float64).reshape(o["dims"])
if got.shape != want.shape:
    print("shape %s, onnxruntime %s" % (got.shape, want.shape))
else:
    d = float(np.abs(got - want).max())
    print(("ok max abs diff %.2g" if d <= float(sys.argv[3]) else "max abs diff %.3g > tolerance") % d)
'

py_line() { timeout -k 5 "$T_TIMEOUT" "$PY" -c "$@" 2>&1 | tail -n 1; }

for fam in $FAMILIES; do
    dir=$FX/$fam
    side=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["side"])' "$dir/expect.json")
    ot inspect --json "$dir/model.onnx"
    if [ "$T_RC" -ne 0 ]; then
        record "$fam" import fail "$(why)"
    else
        printf '%s\n' "$T_OUT" | tail -n 1 >"$T_TMP/inspect.json"
        line=$(py_line "$CHECK_IMPORT" "$T_TMP/inspect.json" "$dir/expect.json")
        if [[ $line == ok* ]]; then record "$fam" import ok "${line#ok }"; else
            record "$fam" import fail "$line"; fi
    fi

    ot test-data "$dir"
    line=$(first_line "$T_OUT")
    if [ "$T_RC" -eq 0 ] && [[ $line == PASS* ]]; then
        record "$fam" run ok ""
    else
        record "$fam" run missing "${line:-$(why)}"
    fi

    for mode in feature-extract fine-tune full; do
        out=$T_TMP/${fam}_$mode.onnx
        ot inspect --training --json --mode "$mode" --classes 10 "$dir/model.onnx"
        if [ "$T_RC" -ne 0 ]; then
            record "$fam" "$mode" missing "$(why)"
            continue
        fi
        printf '%s\n' "$T_OUT" | tail -n 1 >"$T_TMP/plan.json"
        first=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["first_trained_node"])' \
            "$T_TMP/plan.json" 2>/dev/null)
        want=${FINE_TUNE_FROM[$fam]:-}
        # shellcheck disable=SC2053 # a glob on purpose
        if [ "$mode" = fine-tune ] && [ -n "$want" ] && [[ $first != $want ]]; then
            record "$fam" "$mode" fail "the preset trains from $first, expected $want"
            continue
        fi
        ot finetune "$dir/model.onnx" --data "$DATA" --image-size "$side" --batch-size 2 \
            --epochs 1 --max-steps 2 --mode "$mode" --seed 1 --threads 2 -o "$out"
        if [ "$T_RC" -ne 0 ]; then
            record "$fam" "$mode" missing "$(why)"
            continue
        fi
        line=$(py_line "$CHECK_FROZEN" "$dir/model.onnx" "$out" "$T_TMP/plan.json")
        if [[ $line != ok* ]]; then
            record "$fam" "$mode" fail "$line"
            continue
        fi
        detail=${line#ok }
        if [ "$ORT_OK" -ne 1 ]; then
            record "$fam" "$mode" fail "onnxruntime-node is not in $BUILD/ort (run test_ort.sh)"
            continue
        fi
        input=$dir/test_data_set_0/input_0.pb
        ot run "$out" --input "$input" --output-dir "$T_TMP/run_$fam"
        if [ "$T_RC" -ne 0 ]; then
            record "$fam" "$mode" fail "run of the export: $(why)"
            continue
        fi
        # onnxruntime runs opset 7 and later: an export in the zoo's opset-3
        # form (zoo_forms.py legacy) runs there with its attributes undone
        ort_model=$out
        if [ "$("$PY" -c 'import onnx,sys; m = onnx.load(sys.argv[1]);
print(min(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")))' "$out" 2>&1)" \
            -lt 7 ] 2>/dev/null; then
            ort_model=$T_TMP/${fam}_opset9.onnx
            if ! "$PY" tests/fixtures/zoo_forms.py --opset9 "$out" "$ort_model" \
                >"$T_TMP/node.log" 2>&1; then
                record "$fam" "$mode" fail "zoo_forms.py --opset9: $(tail -n 1 "$T_TMP/node.log")"
                continue
            fi
        fi
        if ! timeout -k 5 "$T_TIMEOUT" node tests/ort/run_ort.js "$ort_model" "$input" \
            "$T_TMP/ort.json" >"$T_TMP/node.log" 2>&1; then
            record "$fam" "$mode" fail "onnxruntime: $(tail -n 1 "$T_TMP/node.log")"
            continue
        fi
        line=$(py_line "$COMPARE_ORT" "$T_TMP/ort.json" "$T_TMP/run_$fam" "$TOL")
        if [[ $line == ok* ]]; then
            record "$fam" "$mode" ok "trains from $first; $detail; onnxruntime ${line#ok }"
        else
            record "$fam" "$mode" fail "onnxruntime: $line"
        fi
        rm -rf "$T_TMP/run_$fam" "$out" "$T_TMP/${fam}_opset9.onnx"
    done
done
# the families this run did not test keep their earlier rows
if [ -f "$FX/results.tsv" ]; then
    cut -f 1 "$RESULTS" | sort -u >"$T_TMP/ran"
    awk -F '\t' 'NR == FNR { ran[$1] = 1; next } !($1 in ran)' "$T_TMP/ran" \
        "$FX/results.tsv" >>"$RESULTS"
fi
mv "$RESULTS" "$FX/results.tsv"
finish
