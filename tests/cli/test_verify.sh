#!/bin/bash
# test_verify.sh: `onnxtrain verify`.
#   - a model (tests/fixtures/make_bn_fold.py) and its simplified opset-17 form:
#     exit 0, onnxtrain and onnxruntime reported as run, with their max abs
#     difference and top-1 agreement; OpenCV DNN (when python3-opencv is
#     installed) refuses its Conv without kernel_shape, which the lint
#     predicts (CV-3); TensorRT and OpenVINO said to be linted only;
#   - the BatchNorm-folded model against the unfolded one (test_convert's
#     fixture) with a tolerance below their difference: exit 1, "ABOVE
#     TOLERANCE";
#   - a QDQ model (int8 weights through DequantizeLinear, uint8 activations
#     with a zero point of 128, a DynamicQuantizeLinear): onnxtrain does not
#     run it, onnxruntime is the baseline; the lint names TensorRT's rules
#     TRT-1 and TRT-3 as problems and OpenCV 4.6's CV-2, and an OpenCV that
#     refuses it is reported with the reason and not counted as a failure;
#   - no runtime found (PATH without node and python3): said so, exit 0.
# onnxruntime from npm as in test_ort.sh. Skipped when OT_FAST=1.
#
#   BUILD=build bash tests/cli/test_verify.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
skip_if_fast
need_cli

if ! command -v node >/dev/null 2>&1 || ! ensure_ort; then
    fail setup "onnxruntime is needed: ${ENSURE_ORT_ERR:-node is not installed}"
    finish
fi
export NODE_PATH=$(realpath "$BUILD/ort")/node_modules
HAVE_CV=0
"$PY" -c 'import cv2' 2>/dev/null && HAVE_CV=1
[ "$HAVE_CV" = 1 ] || echo "skip OpenCV checks: python3-opencv is not installed"

FX=$T_TMP/fx
if ! "$PY" tests/fixtures/make_simplify.py "$FX" >"$T_TMP/make.log" 2>&1 ||
    ! "$PY" tests/fixtures/make_bn_fold.py "$FX" >>"$T_TMP/make.log" 2>&1; then
    fail setup "fixtures: $(tail -n 1 "$T_TMP/make.log")"
    finish
fi

# --------------------------------------------------------- agreement
ot convert "$FX/bn_fold.onnx" "$T_TMP/simp.onnx" --simplify --opset 17
mkdir -p "$FX/x_dir" && cp "$FX/x.pb" "$FX/x_dir/input_0.pb"
# (the fixture's BatchNorm variances make float32 runtimes differ by ~1e-2)
ot verify "$T_TMP/simp.onnx" --reference "$FX/bn_fold.onnx" --data "$FX/x_dir" --tolerance 0.05
if [ "$T_RC" -ne 0 ]; then
    fail agree/exit "$(describe_run); $(printf '%s' "$T_OUT" | tr '\n' '|')"
else
    ok agree/exit
fi
matches "$T_OUT" "onnxtrain&ran: max abs diff" && ok agree/onnxtrain || fail agree/onnxtrain "$T_OUT"
matches "$T_OUT" "onnxruntime&ran: max abs diff&top-1 agreement 2/2" && ok agree/onnxruntime ||
    fail agree/onnxruntime "$T_OUT"
if [ "$HAVE_CV" = 1 ]; then
    # OpenCV 4.6 needs kernel_shape on Conv, which this fixture leaves out
    # (it is optional): the lint predicts the refusal (CV-3)
    matches "$T_OUT" "opencv dnn&did not load&kernel_size&the lint predicts this" &&
        matches "$T_OUT" "opencv4.6&problem&kernel_shape&cv-3" && ok agree/opencv-refusal-predicted ||
        fail agree/opencv-refusal-predicted "$T_OUT"
fi
matches "$T_OUT" "linted only: tensorrt, openvino" && ok agree/linted-only || fail agree/linted-only "$T_OUT"

# ------------------------------------------------------ disagreement
ot convert "$FX/bn_fold.onnx" "$T_TMP/folded.onnx" --fold-bn
mkdir -p "$FX/bn_dir" && cp "$FX/x.pb" "$FX/bn_dir/input_0.pb"
ot verify "$T_TMP/folded.onnx" --reference "$FX/bn_fold.onnx" --data "$FX/bn_dir" --tolerance 1e-12
if [ "$T_RC" -eq 1 ] && matches "$T_OUT" "above tolerance"; then
    ok disagree/exit-1
else
    fail disagree/exit-1 "$(describe_run); $(printf '%s' "$T_OUT" | tr '\n' '|')"
fi

# --------------------------------------------------------------- QDQ
"$PY" - "$T_TMP/qdq.onnx" <<'PYEOF' || fail setup "qdq model"
import sys, numpy as np, onnx
from onnx import helper as h, TensorProto as TP, numpy_helper as nh
rng = np.random.default_rng(3)
w = rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)
inits = [nh.from_array(w, "w_q"), nh.from_array(np.full(4, 0.01, np.float32), "w_scale"),
         nh.from_array(np.zeros(4, np.int8), "w_zp"), nh.from_array(np.array(0.02, np.float32), "x_scale"),
         nh.from_array(np.array(128, np.uint8), "x_zp")]
nodes = [h.make_node("QuantizeLinear", ["x", "x_scale", "x_zp"], ["xq"], name="q"),
         h.make_node("DequantizeLinear", ["xq", "x_scale", "x_zp"], ["xd"], name="dq_x"),
         h.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["w"], name="dq_w", axis=0),
         h.make_node("Conv", ["xd", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
         h.make_node("DynamicQuantizeLinear", ["c"], ["cq", "cs", "cz"], name="dyn"),
         h.make_node("DequantizeLinear", ["cq", "cs", "cz"], ["y"], name="dq_y")]
g = h.make_graph(nodes, "qdq", [h.make_tensor_value_info("x", TP.FLOAT, [2, 3, 8, 8])],
                 [h.make_tensor_value_info("y", TP.FLOAT, [2, 4, 8, 8])], inits)
m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
m.ir_version = 7
onnx.checker.check_model(m)
onnx.save(m, sys.argv[1])
PYEOF
ot verify "$T_TMP/qdq.onnx"
if [ "$T_RC" -eq 0 ]; then ok qdq/exit; else fail qdq/exit "$(describe_run); $(printf '%s' "$T_OUT" | tr '\n' '|')"; fi
matches "$T_OUT" "baseline: onnxruntime" && ok qdq/baseline-onnxruntime || fail qdq/baseline-onnxruntime "$T_OUT"
matches "$T_OUT" "tensorrt&problem&not symmetric&trt-1" && ok qdq/lint-trt-1 || fail qdq/lint-trt-1 "$T_OUT"
matches "$T_OUT" "tensorrt&problem&dynamicquantizelinear&trt-3" && ok qdq/lint-trt-3 || fail qdq/lint-trt-3 "$T_OUT"
matches "$T_OUT" "opencv4.6&problem&dequantizelinear on constant&cv-2" && ok qdq/lint-cv-2 || fail qdq/lint-cv-2 "$T_OUT"
if [ "$HAVE_CV" = 1 ]; then
    matches "$T_OUT" "opencv dnn&ran, did not load|opencv dnn&ran: max abs" && ok qdq/opencv-reported ||
        fail qdq/opencv-reported "$T_OUT"
fi

# ------------------------------------------------------- no runtimes
mkdir -p "$T_TMP/emptybin"
PATH=$T_TMP/emptybin ONNXTRAIN_PYTHON=$T_TMP/emptybin/python3 "$(command -v timeout)" 60 "$OT" verify "$T_TMP/simp.onnx" >"$T_TMP/none.out" 2>&1
rc=$?
if [ "$rc" -eq 0 ] && matches "$(cat "$T_TMP/none.out")" "onnxruntime&not run: node (node.js) is not installed&run: onnxtrain"; then
    ok none/said-so
else
    fail none/said-so "exit $rc: $(tr '\n' '|' <"$T_TMP/none.out")"
fi

finish
