#!/bin/bash
# test_convert.sh: `convert`'s deployment conversions (converters/).
#   - --fold-bn on tests/fixtures/make_bn_fold.py's model: the two foldable
#     BatchNormalization (after a Conv, after a Gemm) are gone, the two others
#     kept with a warning naming each and the reason; the folded model's
#     max error against the float64 reference is no worse than the unfolded
#     float32 model's (numpy, every op rounded on its own) nor than onnxtrain
#     running the unfolded file; the output name stays;
#   - --simplify on tests/fixtures/make_simplify.py's models (static and
#     dynamic batch): what is left (no Identity, Dropout, Constant, no-op
#     Reshape/Transpose/Cast, dead nodes or unused initializers; the shape
#     chain folded at a static batch), names of inputs and outputs kept,
#     outputs equal before and after (onnxtrain and onnxruntime, to the bit),
#     and simplify of the simplified file byte-identical; float arithmetic
#     on constants (Transpose, Mul, Add, Sqrt, Div, Sub) folded, Exp left;
#   - the conversion options are accepted by finetune and export too.
#
# onnxruntime (npm onnxruntime-node, tests/ort) is used when it is installed
# or installs; without it those comparisons are reported as skipped.
#
#   BUILD=build bash tests/cli/test_convert.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
need_cli

FX=$T_TMP/fx
if ! "$PY" tests/fixtures/make_bn_fold.py "$FX" >"$T_TMP/make.log" 2>&1; then
    fail setup "fixtures: $(tail -n 1 "$T_TMP/make.log")"
    finish
fi

HAVE_ORT=0
# the fast suites never install: onnxruntime only when it is there already
if [ "${OT_FAST:-0}" = 1 ] && [ ! -d "$BUILD/ort/node_modules/onnxruntime-node" ]; then
    echo "skip onnxruntime comparisons: not in $BUILD/ort (OT_FAST=1 does not install it)"
elif command -v node >/dev/null 2>&1 && ensure_ort; then
    HAVE_ORT=1
    export NODE_PATH=$(realpath "$BUILD/ort")/node_modules
else
    echo "skip onnxruntime comparisons: ${ENSURE_ORT_ERR:-node is not installed}"
fi

# ------------------------------------------------------------- --fold-bn
ot convert "$FX/bn_fold.onnx" "$FX/folded.onnx" --fold-bn
if [ "$T_RC" -ne 0 ]; then
    fail fold-bn/convert "$(describe_run)"
else
    ok fold-bn/convert
    matches "$T_ERR" "'bn2'&kept&not computed by a conv or gemm" && ok fold-bn/kept-bn2 ||
        fail fold-bn/kept-bn2 "no warning for bn2: $(first_line "$T_ERR")"
    matches "$T_ERR" "'bn3'&kept&other readers" && ok fold-bn/kept-bn3 ||
        fail fold-bn/kept-bn3 "no warning for bn3: $T_ERR"
fi
ok_run=1
for m in bn_fold folded; do
    ot run "$FX/$m.onnx" --input "$FX/x.pb" -o "$T_TMP/out_$m"
    [ "$T_RC" -eq 0 ] || { fail "fold-bn/run-$m" "$(describe_run)"; ok_run=0; }
done
if [ "$ok_run" = 1 ]; then
    py_checks fold-bn '
import sys, numpy as np, onnx
from onnx import numpy_helper as nh
fx, tmp = sys.argv[1], sys.argv[2]
m = onnx.load(fx + "/folded.onnx")
onnx.checker.check_model(m)
bns = sorted(n.name for n in m.graph.node if n.op_type == "BatchNormalization")
print("ok structure" if bns == ["bn2", "bn3"] else "FAIL structure: BatchNormalization left: %s" % bns)
outs = [o.name for o in m.graph.output]
print("ok output-name" if outs == ["y"] else "FAIL output-name: %s" % outs)
ref = np.load(fx + "/ref64.npy")
u32 = np.load(fx + "/unfolded32.npy")
run = lambda d: nh.to_array(onnx.load_tensor(tmp + "/" + d + "/output_0.pb")).astype(np.float64)
e_fold = np.abs(run("out_folded") - ref).max()
e_u32 = np.abs(u32 - ref).max()
e_ot = np.abs(run("out_bn_fold") - ref).max()
print(("ok" if e_fold <= e_u32 else "FAIL") + " error-vs-float64: folded %.3g, unfolded float32 %.3g" % (e_fold, e_u32))
print(("ok" if e_fold <= e_ot else "FAIL") + " error-vs-onnxtrain: folded %.3g, unfolded in onnxtrain %.3g" % (e_fold, e_ot))
' "$FX" "$T_TMP"
fi

# ------------------------------------------------------------- --simplify
if ! "$PY" tests/fixtures/make_simplify.py "$FX" >"$T_TMP/make.log" 2>&1; then
    fail simplify/setup "fixtures: $(tail -n 1 "$T_TMP/make.log")"
else
    for m in static dynamic; do
        ot convert "$FX/simplify_$m.onnx" "$T_TMP/simp_$m.onnx" --simplify
        [ "$T_RC" -eq 0 ] || { fail "simplify-$m/convert" "$(describe_run)"; continue; }
        ot convert "$T_TMP/simp_$m.onnx" "$T_TMP/simp2_$m.onnx" --simplify
        if [ "$T_RC" -eq 0 ] && cmp -s "$T_TMP/simp_$m.onnx" "$T_TMP/simp2_$m.onnx"; then
            ok "simplify-$m/idempotent"
        else
            fail "simplify-$m/idempotent" "simplify of the simplified file differs ($(describe_run))"
        fi
        same_outputs "simplify-$m" "$FX/simplify_$m.onnx" "$T_TMP/simp_$m.onnx" "$FX/x.pb" 0
        py_checks "simplify-$m" '
import sys, onnx
m = onnx.load(sys.argv[1]); kind = sys.argv[2]
onnx.checker.check_model(m)
ops = [n.op_type for n in m.graph.node]
names = [n.name for n in m.graph.node]
gone = [o for o in ["Identity", "Dropout", "Constant", "Transpose", "Cast", "Sigmoid"] if o in ops]
print("FAIL removed: still there: %s" % gone if gone else "ok removed")
print("ok one-reshape" if ops.count("Reshape") == 1 else "FAIL one-reshape: %s" % ops)
if kind == "static":
    print("ok shape-chain-folded" if not {"Shape", "Gather", "Concat", "Unsqueeze"} & set(ops)
          else "FAIL shape-chain-folded: %s" % ops)
else:
    print("ok shape-chain-kept" if "Shape" in ops else "FAIL shape-chain-kept: %s" % ops)
left = [o for o in ["Sqrt", "Div", "Sub"] if o in ops]
print("ok float-folded" if not left and ops.count("Mul") == 1 and ops.count("Add") == 1
      else "FAIL float-folded: %s" % ops)
print("ok exp-left-to-runtime" if "Exp" in ops else "FAIL exp-left-to-runtime: %s" % ops)
inits = {i.name for i in m.graph.initializer}
print("FAIL unused-initializers: %s" % (inits & {"unused", "ratio", "shape3"}) if inits & {"unused", "ratio", "shape3"} else "ok unused-initializers")
print("ok io-names" if [i.name for i in m.graph.input] == ["x"] and [o.name for o in m.graph.output] == ["y"]
      else "FAIL io-names: %s %s" % (m.graph.input, m.graph.output))
' "$T_TMP/simp_$m.onnx" "$m"
    done
fi

# float folding of ops outside onnxtrain's table (Neg, Abs: their output
# shape is the input's) and a Concat of constants
"$PY" - "$T_TMP" <<'PYEOF' || fail simplify-float/setup "model"
import sys, numpy as np, onnx
from onnx import helper as h, TensorProto as TP, numpy_helper as nh
rng = np.random.default_rng(5)
a = rng.standard_normal((1, 3)).astype(np.float32)
b = rng.standard_normal((1, 2)).astype(np.float32)
nodes = [h.make_node("Neg", ["a"], ["na"], name="neg"), h.make_node("Abs", ["b"], ["ab"], name="abs"),
         h.make_node("Concat", ["na", "ab"], ["c"], name="cat", axis=1),
         h.make_node("Add", ["x", "c"], ["y"], name="add")]
g = h.make_graph(nodes, "f", [h.make_tensor_value_info("x", TP.FLOAT, [2, 5])],
                 [h.make_tensor_value_info("y", TP.FLOAT, [2, 5])],
                 [nh.from_array(a, "a"), nh.from_array(b, "b")])
m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)]); m.ir_version = 7
onnx.save(m, sys.argv[1] + "/float_ops.onnx")
x = rng.standard_normal((2, 5)).astype(np.float32)
onnx.save_tensor(nh.from_array(x, "x"), sys.argv[1] + "/float_x.pb")
PYEOF
ot convert "$T_TMP/float_ops.onnx" "$T_TMP/float_simp.onnx" --simplify
if [ "$T_RC" -ne 0 ]; then
    fail simplify-float/convert "$(describe_run)"
else
    py_checks simplify-float '
import sys, onnx
ops = [n.op_type for n in onnx.load(sys.argv[1]).graph.node]
print("ok folded" if ops == ["Add"] else "FAIL folded: %s" % ops)
' "$T_TMP/float_simp.onnx"
    same_outputs simplify-float "$T_TMP/float_ops.onnx" "$T_TMP/float_simp.onnx" "$T_TMP/float_x.pb" 0
fi

# ------------------------------------------------- the same options elsewhere
for cmd in finetune export; do
    ot "$cmd" --help
    if [ "$T_RC" -eq 0 ] && matches "$T_OUT" "--opset n&--fold-bn&--simplify&--clean-inputs"; then
        ok "options/$cmd"
    else
        fail "options/$cmd" "$cmd --help does not list the conversion options"
    fi
done
expect_usage options/opset-range convert "$FX/bn_fold.onnx" "$T_TMP/x.onnx" --opset 6

finish
