#!/bin/bash
# test_ort.sh: `onnxtrain run` against onnxruntime on the same files: the
# three ResNet-18 forms of make_resnet18.py (eval, bn, zoo7) at batch 1 and 8
# (zoo7: 1), and files written by `onnxtrain convert` (eval with --batch 8,
# zoo7 unchanged), which also checks that exported models run elsewhere.
# Pass: max |onnxtrain - onnxruntime| <= 1e-4 on every output.
#
# onnxruntime-node 1.30 comes from npm into $BUILD/ort (once; its install
# script is skipped, the CPU binaries ship in the package). No network, no
# node, or a failed install fails the suite: it never passes without
# comparing. tests/ort/run_ort.js runs a model on one TensorProto file.
# Skipped when OT_FAST=1.
#
#   BUILD=build bash tests/cli/test_ort.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
skip_if_fast
need_cli
T_TIMEOUT=${T_TIMEOUT_MODELS:-900}
TOL=1e-4

ORT=$BUILD/ort
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    fail setup "node and npm are needed (Debian packages nodejs, npm)"
    finish
fi
ort_version() {
    node -e 'console.log(require(process.argv[1] + "/package.json").version)' \
        "$(realpath "$ORT")/node_modules/onnxruntime-node" 2>/dev/null
}
if [[ $(ort_version) != 1.30.* ]]; then
    mkdir -p "$ORT"
    if ! ONNXRUNTIME_NODE_INSTALL=skip npm install --prefix "$ORT" onnxruntime-node@1.30 \
        --no-audit --no-fund >"$T_TMP/npm.log" 2>&1; then
        fail setup "npm install onnxruntime-node@1.30 failed: $(grep -i -m 1 error "$T_TMP/npm.log")"
        finish
    fi
fi
if [[ $(ort_version) != 1.30.* ]]; then
    fail setup "onnxruntime-node 1.30 is not in $ORT after npm install"
    finish
fi
export NODE_PATH=$(realpath "$ORT")/node_modules
ok "onnxruntime-node $(ort_version)"

FX=$BUILD/fixtures
if ! "$PY" tests/fixtures/make_resnet18.py "$FX" >"$T_TMP/make.log" 2>&1 ||
    ! "$PY" tests/fixtures/make_model_tests.py "$FX" >>"$T_TMP/make.log" 2>&1; then
    fail setup "fixtures: $(tail -n 1 "$T_TMP/make.log")"
    finish
fi

# Converted files.
ot convert "$FX/resnet18_eval.onnx" "$T_TMP/eval_b8.onnx" --batch 8
[ "$T_RC" -eq 0 ] && ok "convert eval --batch 8" || fail "convert eval --batch 8" "$(describe_run)"
ot convert "$FX/resnet18_zoo7.onnx" "$T_TMP/zoo7_rt.onnx"
[ "$T_RC" -eq 0 ] && ok "convert zoo7" || fail "convert zoo7" "$(describe_run)"

COMPARE='
import json, sys
import numpy as np
import onnx
from onnx import numpy_helper
ort_json, out_dir, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
outs = json.load(open(ort_json))["outputs"]
special = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}
for i, o in enumerate(outs):
    t = onnx.TensorProto()
    t.ParseFromString(open("%s/output_%d.pb" % (out_dir, i), "rb").read())
    got = numpy_helper.to_array(t).astype(np.float64)
    want = np.array([special.get(v, v) for v in o["data"]], np.float64).reshape(o["dims"])
    if t.name != o["name"]:
        print("FAIL %s: onnxtrain names it %r" % (o["name"], t.name)); continue
    if got.shape != want.shape:
        print("FAIL %s: shape %s, onnxruntime %s" % (o["name"], got.shape, want.shape)); continue
    d = float(np.abs(got - want).max()) if got.size else 0.0
    print(("ok %s max abs diff %.3g" if d <= tol else "FAIL %s: max abs diff %.3g > tol")
          % (o["name"], d))
'

# case NAME MODEL INPUT.pb
case_ort() {
    local name=$1 model=$2 input=$3 out=$T_TMP/out_$1
    if [ ! -f "$model" ] || [ ! -f "$input" ]; then
        fail "$name" "missing $model or $input"
        return
    fi
    ot run "$model" --input "$input" --output-dir "$out"
    if [ "$T_RC" -ne 0 ]; then
        fail "$name" "onnxtrain run: $(describe_run)"
        return
    fi
    if ! timeout -k 5 "$T_TIMEOUT" node tests/ort/run_ort.js "$model" "$input" \
        "$T_TMP/ort_$name.json" >"$T_TMP/node.log" 2>&1; then
        fail "$name" "onnxruntime: $(tail -n 1 "$T_TMP/node.log")"
        return
    fi
    py_checks "$name" "$COMPARE" "$T_TMP/ort_$name.json" "$out" "$TOL"
}

for m in resnet18_eval resnet18_bn; do
    case_ort "$m batch 1" "$FX/$m.onnx" "$FX/$m/test_data_set_0/input_0.pb"
    case_ort "$m batch 8" "$FX/$m.onnx" "$FX/$m/test_data_set_1/input_0.pb"
done
case_ort "resnet18_zoo7 batch 1" "$FX/resnet18_zoo7.onnx" "$FX/resnet18_zoo7/test_data_set_0/input_0.pb"
case_ort "converted eval --batch 8" "$T_TMP/eval_b8.onnx" "$FX/resnet18_eval/test_data_set_1/input_0.pb"
case_ort "converted zoo7" "$T_TMP/zoo7_rt.onnx" "$FX/resnet18_zoo7/test_data_set_0/input_0.pb"

finish
