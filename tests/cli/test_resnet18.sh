#!/bin/bash
# test_resnet18.sh: the CLI on ResNet-18 as PyTorch exports it (three forms,
# see tests/fixtures/make_resnet18.py): `inspect --json` against the numbers
# the onnx package computes, lossless `convert`, batch rewriting, external data
# and back. Fixtures go to $BUILD/fixtures and are reused while up to date.
# Skipped when OT_FAST=1.
#
#   BUILD=build bash tests/cli/test_resnet18.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
skip_if_fast
need_cli

FX=$BUILD/fixtures
if ! "$PY" tests/fixtures/make_resnet18.py "$FX" >"$T_TMP/make.log" 2>&1; then
    fail setup "make_resnet18.py failed: $(tail -n 1 "$T_TMP/make.log")"
    finish
fi
EVAL=$FX/resnet18_eval.onnx
BN=$FX/resnet18_bn.onnx
ZOO=$FX/resnet18_zoo7.onnx

# ---------------------------------------------------------------- inspect --json
INSPECT_CHECK='
import json, sys
exp = json.load(open(sys.argv[1]))[sys.argv[2]]
try:
    j = json.load(open(sys.argv[3]))
except Exception as e:
    print("FAIL json: not one JSON object: %s" % e); sys.exit(0)
def check(name, got, want):
    print(("ok %s" % name) if got == want else ("FAIL %s: %r != %r" % (name, got, want)))
for k in ("n_params", "n_initializers", "param_bytes", "ops", "ir_version"):
    check(k, j.get(k), exp[k])
h, eh = j.get("head") or {}, exp["head"]
check("head", (h.get("op"), h.get("in_features"), h.get("out_features")),
      (eh["op"], eh["in_features"], eh["out_features"]))
def by_name(lst, name):
    return next((v for v in lst or [] if v.get("name") == name), None)
for kind in ("inputs", "outputs"):
    for v in exp[kind]:
        got = by_name(j.get(kind), v["name"])
        check("%s %s" % (kind, v["name"]), got and (got.get("dtype"), got.get("shape")),
              (v["dtype"], v["shape"]))
'
for f in "$EVAL" "$BN" "$ZOO"; do
    name=$(basename "$f")
    ot inspect --json "$f"
    if [ "$T_RC" -ne 0 ]; then
        fail "inspect $name" "$(describe_run)"
        continue
    fi
    printf '%s\n' "$T_OUT" >"$T_TMP/$name.json"
    py_checks "inspect $name" "$INSPECT_CHECK" "$FX/expected.json" "$name" "$T_TMP/$name.json"
done

# ---------------------------------------------------------------- lossless convert
LIST=$T_TMP/pairs.tsv
: >"$LIST"
for f in "$EVAL" "$BN" "$ZOO"; do
    name=$(basename "$f")
    out=$T_TMP/rt_$name
    ot convert "$f" "$out"
    if [ "$T_RC" -eq 0 ]; then
        ok "convert $name"
        printf '%s\t%s\n' "$f" "$out" >>"$LIST"
    else
        fail "convert $name" "$(describe_run)"
    fi
done

# Checks a converted file: passes onnx.checker, and the extra conditions.
RESULT_CHECK='
import sys, onnx
path, what = sys.argv[1], sys.argv[2:]
try:
    onnx.checker.check_model(path, full_check=True)
    print("ok checker")
except Exception as e:
    print("FAIL checker: %s" % str(e).splitlines()[0])
m = onnx.load(path, load_external_data=False)
inits = {t.name for t in m.graph.initializer}
ins = [v for v in m.graph.input if v.name not in inits]
def dim0(v):
    d = v.type.tensor_type.shape.dim[0]
    return d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
for w in what:
    key, _, val = w.partition("=")
    if key == "in0":
        got = dim0(ins[0])
    elif key == "out0":
        got = dim0(m.graph.output[0])
    elif key == "external":
        got = str(sum(t.data_location == onnx.TensorProto.EXTERNAL for t in m.graph.initializer) > 0)
    if val == "symbolic":
        ok = isinstance(got, str) and got != ""
    else:
        ok = str(got) == val
    print(("ok %s" % w) if ok else ("FAIL %s: got %r" % (w, got)))
'

# ---------------------------------------------------------------- --batch
out=$T_TMP/zoo7_dynamic.onnx
ot convert "$ZOO" "$out" --batch dynamic
if [ "$T_RC" -eq 0 ]; then
    ok "convert zoo7 --batch dynamic"
    py_checks "zoo7 --batch dynamic" "$RESULT_CHECK" "$out" in0=symbolic out0=symbolic external=False
    ot inspect --json "$out"
    printf '%s\n' "$T_OUT" >"$T_TMP/zoo7_dynamic.json"
    py_checks "inspect zoo7 --batch dynamic" '
import json, sys
j = json.load(open(sys.argv[1]))
inp = next((v for v in j["inputs"] if v["name"] == "input"), None)
s = inp and inp["shape"]
print("ok input shape" if s and isinstance(s[0], str) and s[1:] == [3, 224, 224]
      else "FAIL input shape: %r" % (s,))
' "$T_TMP/zoo7_dynamic.json"
else
    fail "convert zoo7 --batch dynamic" "$(describe_run)"
fi

out=$T_TMP/eval_b8.onnx
ot convert "$EVAL" "$out" --batch 8
if [ "$T_RC" -eq 0 ]; then
    ok "convert eval --batch 8"
    py_checks "eval --batch 8" "$RESULT_CHECK" "$out" in0=8 out0=8 external=False
else
    fail "convert eval --batch 8" "$(describe_run)"
fi

# ---------------------------------------------------------------- external data and back
mkdir -p "$T_TMP/ext"
out=$T_TMP/ext/eval_ext.onnx
ot convert "$EVAL" "$out" --external-data
if [ "$T_RC" -eq 0 ]; then
    ok "convert eval --external-data"
    side=$(cd "$T_TMP/ext" && find . -mindepth 1 ! -name eval_ext.onnx -printf '%P ')
    size=$(stat -c %s "$out")
    if [ -n "$side" ] && [ "$size" -lt 1000000 ]; then
        ok "external data: $side beside a ${size}-byte model"
    else
        fail "external data" "side files: '$side'; model is $size bytes"
    fi
    py_checks "eval --external-data" "$RESULT_CHECK" "$out" external=True in0=symbolic
    printf '%s\t%s\n' "$EVAL" "$out" >>"$LIST"
    ot inspect --json "$out"
    if [ "$T_RC" -eq 0 ]; then
        printf '%s\n' "$T_OUT" >"$T_TMP/eval_ext.json"
        py_checks "inspect eval --external-data" "$INSPECT_CHECK" "$FX/expected.json" \
            resnet18_eval.onnx "$T_TMP/eval_ext.json"
    else
        fail "inspect eval --external-data" "$(describe_run)"
    fi

    back=$T_TMP/eval_inline.onnx
    ot convert "$out" "$back" --inline-data
    if [ "$T_RC" -eq 0 ]; then
        ok "convert --inline-data"
        py_checks "--inline-data" "$RESULT_CHECK" "$back" external=False in0=symbolic
        printf '%s\t%s\n' "$EVAL" "$back" >>"$LIST"
    else
        fail "convert --inline-data" "$(describe_run)"
    fi
else
    fail "convert eval --external-data" "$(describe_run)"
fi

# ---------------------------------------------------------------- round trips
"$PY" tests/roundtrip_check.py "$LIST" >"$T_TMP/rt.log" 2>&1
rc=$?
summary=$(grep -E '^roundtrip: [0-9]+ passed, [0-9]+ failed$' "$T_TMP/rt.log")
if [ "$rc" -eq 0 ] && [ -n "$summary" ]; then
    ok "round trips ($summary)"
else
    grep '^FAIL ' "$T_TMP/rt.log"
    fail "round trips" "${summary:-exit $rc: $(tail -n 1 "$T_TMP/rt.log")}"
fi

finish
