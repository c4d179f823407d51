#!/bin/bash
# test_hostile_classes.sh: hostile inputs about classes and weights, made at
# test time by tests/hostile/classes.py (tiny 8x8 models and data sets):
#   - NaN or infinity in weights, BatchNorm statistics or optimizer state: an
#     error naming the tensor for finetune, resume, export, run, eval and
#     predict, a warning for inspect; an infinite Clip bound stays legal;
#   - class names with a newline or invalid UTF-8: stored as a JSON array that
#     every reader agrees on, the newline-joined form of earlier versions still
#     read, invalid UTF-8 refused at input;
#   - degenerate class setups (one class, a one-output head, more names than
#     outputs) refused before training, for every data format;
#   - duplicate class names, from any source, refused naming the duplicate.
# Every error leaves no output file.
#
#   BUILD=build bash tests/cli/test_hostile_classes.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
need_cli

D=$T_TMP/h
if ! "$PY" tests/hostile/classes.py "$D" >"$T_TMP/make.log" 2>&1; then
    fail setup "generator: $(tail -n 1 "$T_TMP/make.log")"
    finish
fi
TR=(--image-size 8 --epochs 1 --batch-size 4 --threads 2)

# no_output NAME FILE: the failed command left neither FILE nor a temporary.
no_output() {
    if [ -e "$2" ] || compgen -G "$2.tmp*" >/dev/null; then
        fail "$1: no output" "$2 or a temporary of it exists"
    else
        ok "$1: no output"
    fi
}

# error_out NAME FRAGMENT OUT ARGS...: expect_error, then no OUT.
error_out() {
    local name=$1 frag=$2 out=$3
    shift 3
    rm -f "$out"
    expect_error "$name" "$frag" "$@"
    no_output "$name" "$out"
}

# --------------------------------------------------------------- non-finite weights
O=$T_TMP/o.onnx
error_out "finetune: NaN conv weights" "conv.weight&nan" "$O" \
    finetune "$D/nan_conv.onnx" --data "$D/cifar3" "${TR[@]}" -o "$O"
error_out "finetune: +Inf BN variance" "bn.running_var&+inf" "$O" \
    finetune "$D/inf_bn.onnx" --data "$D/cifar3" "${TR[@]}" -o "$O"
error_out "finetune --mode full: NaN head bias" "fc.bias&nan" "$O" \
    finetune "$D/nan_gemm.onnx" --data "$D/cifar3" --mode full "${TR[@]}" -o "$O"
expect_error "run: NaN conv weights" "conv.weight&nan" run "$D/nan_conv.onnx" --random
expect_error "eval: NaN conv weights" "conv.weight&nan" eval "$D/nan_conv.onnx" --data "$D/cifar3"
expect_error "predict: NaN head bias" "fc.bias&nan" predict "$D/nan_gemm.onnx" "$D/img.ppm"
ot inspect "$D/nan_conv.onnx"
if [ "$T_RC" -eq 0 ] && matches "$T_ERR" "warning&conv.weight&nan"; then
    ok "inspect: a warning, exit 0"
else
    fail "inspect: a warning, exit 0" "$(describe_run)"
fi
ot run "$D/model3.onnx" --random
if [ "$T_RC" -eq 0 ]; then ok "run: an infinite Clip bound is legal"; else
    fail "run: an infinite Clip bound is legal" "$(describe_run)"; fi

# A checkpoint whose optimizer state holds NaN: resume and export refuse it.
CK=$T_TMP/ck.onnx
ot finetune "$D/model3.onnx" --data "$D/cifar3" "${TR[@]}" --optimizer adam --epochs 2 \
    --checkpoint "$CK" -o "$T_TMP/ck_out.onnx"
if [ "$T_RC" -ne 0 ] || [ ! -s "$CK" ]; then
    fail "checkpoint setup" "$(describe_run)"
else
    "$PY" - "$CK" "$T_TMP/ck_nan.onnx" >/dev/null <<'PYEOF'
import sys, onnx, numpy as np
from onnx import numpy_helper as nh
m = onnx.load(sys.argv[1])
for i, t in enumerate(m.graph.initializer):
    if t.name.startswith("onnxtrain.optim.") and t.data_type == onnx.TensorProto.FLOAT:
        a = nh.to_array(t).copy()
        a.flat[0] = np.nan
        m.graph.initializer[i].CopyFrom(nh.from_array(a, t.name))
        break
# the stale checksum goes; ckpt.py recrc below seals the file afresh, so that
# the finite-value check, not the checksum, has to refuse it
crc = [p for p in m.metadata_props if p.key == "onnxtrain.checkpoint.crc32"]
for p in crc:
    m.metadata_props.remove(p)
onnx.save(m, sys.argv[2])
PYEOF
    "$PY" tests/hostile/ckpt.py recrc "$T_TMP/ck_nan.onnx" "$T_TMP/ck_nan.onnx"
    [ -s "$T_TMP/ck_nan.onnx" ] || fail "checkpoint with NaN" "not written"
    error_out "resume: NaN optimizer state" "onnxtrain.optim.&nan" "$T_TMP/r.onnx" \
        finetune "$D/model3.onnx" --data "$D/cifar3" "${TR[@]}" --optimizer adam --epochs 3 \
        --checkpoint "$T_TMP/ck_nan.onnx" --resume "$T_TMP/ck_nan.onnx" -o "$T_TMP/r.onnx"
    error_out "export: NaN optimizer state" "onnxtrain.optim.&nan" "$T_TMP/x.onnx" \
        export "$T_TMP/ck_nan.onnx" "$T_TMP/x.onnx"
fi

# ---------------------------------------------------------------- class names
NL=$T_TMP/nl.onnx
ot finetune "$D/model3.onnx" --data "$D/folder_nl" "${TR[@]}" -o "$NL"
if [ "$T_RC" -eq 0 ] && [ -s "$NL" ]; then
    ok "finetune: a newline in a class name"
    py_checks "names stored" '
import json, sys, onnx
md = {p.key: p.value for p in onnx.load(sys.argv[1]).metadata_props}
v = md.get("onnxtrain.classes", "")
print("ok json array" if v.startswith("[") and json.loads(v) == ["a\nb", "c", "d"]
      else "FAIL json array: %r" % v)
' "$NL"
    ot predict "$NL" "$D/img.ppm" --top 3 --json
    py_checks "predict names" '
import json, sys
r = json.loads(sys.argv[1])
top = r["predictions"][0]["top"]
names = {t["class"]: t["name"] for t in top}
print("ok three names" if r["classes"] == 3 and names == {0: "a\nb", 1: "c", 2: "d"}
      else "FAIL three names: %r" % r)
' "$T_OUT"
    ot eval "$NL" --data "$D/folder_nl"
    if [ "$T_RC" -eq 0 ] && [ "$T_NERR" -eq 0 ]; then ok "eval: names agree"; else
        fail "eval: names agree" "$(describe_run)"; fi
else
    fail "finetune: a newline in a class name" "$(describe_run)"
fi
ot predict "$D/classes_legacy.onnx" "$D/img.ppm" --top 3 --json
py_checks "predict legacy names" '
import json, sys
r = json.loads(sys.argv[1])
names = sorted(t["name"] for t in r["predictions"][0]["top"])
print("ok newline-joined" if names == ["x", "y", "z"] else "FAIL newline-joined: %r" % r)
' "$T_OUT"
ot predict "$D/classes_legacy4.onnx" "$D/img.ppm" --top 3 --json
if [ "$T_RC" -eq 0 ] && matches "$T_ERR" "4 names for 3 classes" &&
    matches "$T_OUT" '"name": null'; then
    ok "predict: 4 names for 3 outputs shows indices"
else
    fail "predict: 4 names for 3 outputs shows indices" "$(describe_run); $T_OUT"
fi
expect_error "predict: malformed classes metadata" "onnxtrain.classes&json" \
    predict "$D/classes_bad.onnx" "$D/img.ppm"
error_out "finetune: folder name not UTF-8" "utf-8&class 1" "$O" \
    finetune "$D/model3.onnx" --data "$D/folder_utf8" --classes 2 "${TR[@]}" -o "$O"
error_out "finetune: CIFAR name not UTF-8" "utf-8&class 1" "$O" \
    finetune "$D/model3.onnx" --data "$D/cifar_utf8" --classes 2 "${TR[@]}" -o "$O"

# ---------------------------------------------------------------- class setup
error_out "finetune: one CIFAR class" "1 class&at least 2" "$O" \
    finetune "$D/model3.onnx" --data "$D/cifar1" "${TR[@]}" -o "$O"
error_out "finetune: one folder class" "1 class&at least 2" "$O" \
    finetune "$D/model3.onnx" --data "$D/folder1" "${TR[@]}" -o "$O"
error_out "finetune --classes 1" "1 output&at least 2" "$O" \
    finetune "$D/model3.onnx" --data "$D/cifar3" --classes 1 "${TR[@]}" -o "$O"
error_out "finetune --data-classes 2: one class" "1 class&at least 2" "$O" \
    finetune "$D/model3.onnx" --data "$D/cifar3" --data-classes 2 --classes 2 "${TR[@]}" -o "$O"
error_out "finetune: 10 IDX names, --classes 3" "10 classes&3 outputs" "$O" \
    finetune "$D/model3.onnx" --data "$D/idx10" --classes 3 "${TR[@]}" -o "$O"
error_out "finetune: 10 CIFAR names, --classes 3, a label 5" "10 classes&3 outputs" "$O" \
    finetune "$D/model3.onnx" --data "$D/cifar3_lbl5" --classes 3 "${TR[@]}" -o "$O"
# without --classes the number comes from the data: a 10-output head is
# replaced by a 3-class one; a --classes that disagrees is refused at start
rm -f "$O"
ot finetune "$D/model10.onnx" --data "$D/cifar3" "${TR[@]}" -o "$O"
if [ "$T_RC" -eq 0 ] && matches "$T_OUT" "new head: 3 classes, from the data&10 outputs" &&
    [ -s "$O" ]; then
    ok "finetune: a 10-output head, 3 classes: head from the data"
else
    fail "finetune: a 10-output head, 3 classes: head from the data" "$(describe_run)"
fi
py_checks "finetune: head from the data: 3 outputs" '
import sys, onnx
m = onnx.load(sys.argv[1])
d = [x.dim_value for x in m.graph.output[0].type.tensor_type.shape.dim]
print("ok 3 outputs" if d[-1] == 3 else "FAIL 3 outputs: %r" % d)
' "$O"
error_out "finetune: --classes 10, 3 classes in the data" "--classes 10 disagrees&3 classes" \
    "$O" finetune "$D/model10.onnx" --data "$D/cifar3" --classes 10 "${TR[@]}" -o "$O"

# ----------------------------------------------------------- duplicate names
error_out "finetune: duplicate CIFAR names" "duplicate&'cat'" "$O" \
    finetune "$D/model3.onnx" --data "$D/cifar_dup" "${TR[@]}" -o "$O"
error_out "finetune: duplicate IDX names" "duplicate&'z'" "$O" \
    finetune "$D/model3.onnx" --data "$D/idx_dup" "${TR[@]}" -o "$O"
expect_error "eval: duplicate CIFAR names" "duplicate&'cat'" eval "$D/model3.onnx" \
    --data "$D/cifar_dup"
expect_error "predict: duplicate names in the metadata" "duplicate&'a'" \
    predict "$D/classes_dup.onnx" "$D/img.ppm"

finish
