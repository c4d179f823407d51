#!/bin/bash
# test_cli_basic.sh: the command line itself: help, version, usage errors,
# option order, the error-line contract, and `inspect --json` on a tiny model.
#
#   BUILD=build bash tests/cli/test_cli_basic.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
need_cli

# A tiny classifier: Conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm.
MODEL=$T_TMP/tiny.onnx
"$PY" - "$MODEL" <<'EOF' || { fail setup "cannot build the tiny model"; finish; }
import sys
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
rng = np.random.default_rng(0)
inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
         for n, s in (("conv.w", (4, 3, 3, 3)), ("conv.b", (4,)),
                      ("fc.w", (10, 4)), ("fc.b", (10,)))]
nodes = [helper.make_node("Conv", ["x", "conv.w", "conv.b"], ["c"], name="conv",
                          kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["r"], name="relu"),
         helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
         helper.make_node("Flatten", ["p"], ["f"], name="flatten", axis=1),
         helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["y"], name="fc", transB=1)]
g = helper.make_graph(nodes, "tiny",
                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
                      initializer=inits)
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="tiny")
m.ir_version = 7
onnx.checker.check_model(m, full_check=True)
onnx.save(m, sys.argv[1])
EOF

no_output() {
    if [ -e "$2" ]; then
        fail "$1" "$2 exists"
    else
        ok "$1"
    fi
}

# ---------------------------------------------------------------- help, version
ot --help
if [ "$T_RC" -eq 0 ] && [[ $T_OUT == *inspect* ]] && [[ $T_OUT == *convert* ]]; then
    ok "--help"
else
    fail "--help" "expected exit 0 and a text naming inspect and convert; $(describe_run)"
fi

version=$(sed -n 's/^#define OT_VERSION_STRING "\(.*\)"/\1/p' include/onnxtrain.h)
ot --version
if [ "$T_RC" -eq 0 ] && [ -n "$version" ] && [[ $T_OUT == *"$version"* ]]; then
    ok "--version"
else
    fail "--version" "expected exit 0 and '$version' on stdout, got '$T_OUT'; $(describe_run)"
fi

for cmd in inspect convert; do
    ot "$cmd" --help
    if [ "$T_RC" -eq 0 ] && [[ $T_OUT == *"$cmd"* ]]; then
        ok "$cmd --help"
    else
        fail "$cmd --help" "expected exit 0 and usage naming $cmd; $(describe_run)"
    fi
done

# ---------------------------------------------------------------- usage errors
expect_usage "no command" 
expect_usage "unknown command" frobnicate
expect_usage "unknown option" inspect --frobnicate "$MODEL"
expect_usage "inspect without a model" inspect
expect_usage "inspect with two models" inspect "$MODEL" "$MODEL"
expect_usage "convert without output" convert "$MODEL"
expect_usage "convert --batch without value" convert "$MODEL" "$T_TMP/o.onnx" --batch
expect_usage "convert --batch abc" convert "$MODEL" "$T_TMP/o.onnx" --batch abc
expect_usage "convert --batch 0" convert "$MODEL" "$T_TMP/o.onnx" --batch 0
expect_usage "convert --batch -3" convert "$MODEL" "$T_TMP/o.onnx" --batch -3
expect_usage "inspect --max-tensor-size x" inspect "$MODEL" --max-tensor-size x
no_output "usage errors write nothing" "$T_TMP/o.onnx"

# ---------------------------------------------------------------- run-time errors
expect_error "inspect a missing file" "no-such-model.onnx" inspect "$T_TMP/no-such-model.onnx"
expect_error "convert a missing file" "no-such-model.onnx" \
    convert "$T_TMP/no-such-model.onnx" "$T_TMP/o.onnx"
expect_error "inspect a folder" "" inspect "$T_TMP"
expect_error "convert into a missing folder" "" convert "$MODEL" "$T_TMP/nowhere/o.onnx"
no_output "failed converts write nothing" "$T_TMP/o.onnx"
# conv.w is 432 bytes
expect_error "inspect --max-tensor-size 100" "exceeds|limit" inspect "$MODEL" --max-tensor-size 100
expect_rc "inspect --max-tensor-size 1000" 0 inspect "$MODEL" --max-tensor-size 1000

# ---------------------------------------------------------------- option order
ot inspect --json "$MODEL"
a_rc=$T_RC a_out=$T_OUT
ot inspect "$MODEL" --json
if [ "$a_rc" -eq 0 ] && [ "$T_RC" -eq 0 ] && [ "$a_out" = "$T_OUT" ] && [ -n "$T_OUT" ]; then
    ok "inspect --json FILE == inspect FILE --json"
else
    fail "inspect --json FILE == inspect FILE --json" "exit $a_rc/$T_RC or outputs differ"
fi
printf '%s\n' "$T_OUT" >"$T_TMP/tiny.json"

ot inspect "$MODEL"
if [ "$T_RC" -eq 0 ] && [ -n "$T_OUT" ] && [ "$T_OUT" != "$a_out" ]; then
    ok "inspect (text)"
else
    fail "inspect (text)" "expected a text report; $(describe_run)"
fi
ot inspect "$MODEL" --nodes
if [ "$T_RC" -eq 0 ] && [[ $T_OUT == *Conv* ]] && [[ $T_OUT == *Gemm* ]]; then
    ok "inspect --nodes"
else
    fail "inspect --nodes" "expected the node list; $(describe_run)"
fi
ot inspect --nodes --json "$MODEL"
if [ "$T_RC" -eq 0 ]; then
    ok "inspect --nodes --json"
else
    fail "inspect --nodes --json" "$(describe_run)"
fi

expect_rc "convert IN OUT --batch 2" 0 convert "$MODEL" "$T_TMP/b1.onnx" --batch 2
expect_rc "convert --batch 2 IN OUT" 0 convert --batch 2 "$MODEL" "$T_TMP/b2.onnx"
if cmp -s "$T_TMP/b1.onnx" "$T_TMP/b2.onnx"; then
    ok "option order gives the same file"
else
    fail "option order gives the same file" "b1.onnx and b2.onnx differ"
fi

# ---------------------------------------------------------------- inspect --json contents
py_checks "inspect --json" '
import json, sys
try:
    j = json.load(open(sys.argv[1]))
except Exception as e:
    print("FAIL parse: not one JSON object: %s" % e); sys.exit(0)
print("ok parse")
def check(name, got, want):
    print(("ok %s" % name) if got == want else ("FAIL %s: %r != %r" % (name, got, want)))
for k in ("ir_version", "opsets", "producer", "inputs", "outputs", "ops", "n_initializers",
          "n_params", "param_bytes", "head"):
    check("key " + k, k in j, True)
check("ir_version", j.get("ir_version"), 7)
ops = j.get("opsets") or {}
check("opsets", [v for k, v in ops.items() if k in ("", "ai.onnx")], [13])
prod = j.get("producer")
check("producer", prod.get("name") if isinstance(prod, dict) else prod, "tiny")
check("inputs", j.get("inputs"), [{"name": "x", "dtype": "float", "shape": ["N", 3, 8, 8]}])
check("outputs", j.get("outputs"), [{"name": "y", "dtype": "float", "shape": ["N", 10]}])
check("ops", j.get("ops"), {"Conv": 1, "Relu": 1, "GlobalAveragePool": 1, "Flatten": 1, "Gemm": 1})
check("n_initializers", j.get("n_initializers"), 4)
check("n_params", j.get("n_params"), 108 + 4 + 40 + 10)
check("param_bytes", j.get("param_bytes"), 4 * (108 + 4 + 40 + 10))
h = j.get("head") or {}
check("head", (h.get("node"), h.get("op"), h.get("in_features"), h.get("out_features")),
      ("fc", "Gemm", 4, 10))
' "$T_TMP/tiny.json"

# ---------------------------------------------------------------- help says what is read
ot predict --help
if [ "$T_RC" -eq 0 ] && matches "$T_OUT" "image files: jpeg, png" &&
    ! matches "$T_OUT" "unsupported|not supported"; then
    ok "predict --help: JPEG and PNG"
else
    fail "predict --help: JPEG and PNG" "$(grep -i 'image files' "$T_TMP/stdout")"
fi
for c in finetune eval; do
    ot "$c" --help
    line=$(grep -- '--data PATH' "$T_TMP/stdout")
    if [ "$T_RC" -eq 0 ] && matches "$line" "image folder&cifar-10&idx"; then
        ok "$c --help: --data names image folders"
    else
        fail "$c --help: --data names image folders" "'$line'"
    fi
done

# ---------------------------------------------------------------- the error line
"$OT" inspect "$T_TMP/no-such-model.onnx" >/dev/null 2>"$T_TMP/err"
if [ "$(wc -l <"$T_TMP/err")" -eq 1 ] && grep -q '^onnxtrain: error: ' "$T_TMP/err"; then
    ok "error is one line starting with 'onnxtrain: error: '"
else
    fail "error is one line starting with 'onnxtrain: error: '" "$(head -c 300 "$T_TMP/err")"
fi

finish
