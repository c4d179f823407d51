#!/bin/bash
# test_convert.sh: `convert`'s deployment conversions (converters/).
#   - --fold-bn on tests/fixtures/make_bn_fold.py's model: the two foldable
#     BatchNormalization (after a Conv, after a Gemm) are gone, the two others
#     kept with a warning naming each and the reason; the folded model's
#     max error against the float64 reference is no worse than the unfolded
#     float32 model's (numpy, every op rounded on its own) nor than onnxtrain
#     running the unfolded file; the output name stays;
#   - the conversion options are accepted by finetune and export too.
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
