#!/bin/bash
# test_run.sh: `onnxtrain run` and `onnxtrain test-data` on tiny models made
# here: results against numpy, input binding (by name, by the tensor's name,
# by position), --random, --output-dir, --json, and bad input at run time
# (wrong shape or dtype, missing or unknown input, truncated file), each a
# one-line error naming the input, exit 1, no crash.
#
#   BUILD=build bash tests/cli/test_run.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
need_cli

# tiny.onnx: x [N,3,8,8] -> Conv 3x3 pad 1 -> Relu -> GlobalAveragePool ->
#            Flatten -> Gemm -> y [N,10]
# cat.onnx:  Concat(a [2,3], b [1,3], axis 0) -> y [3,3] (input order matters)
# Tensor files: x1 (batch 1, named x), x3 (batch 3, unnamed), x_bad_shape
# [1,3,5,5], x_int (int64), a (named a), b (named b), p (a's data, named p),
# q (b's data, named q), and the expected outputs of each.
D=$T_TMP/data
mkdir -p "$D"
"$PY" - "$D" <<'EOF' || { fail setup "cannot build the tiny models"; finish; }
import os, sys
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
d = sys.argv[1]
rng = np.random.default_rng(0)
W = {n: rng.standard_normal(s).astype(np.float32)
     for n, s in (("conv.w", (4, 3, 3, 3)), ("conv.b", (4,)), ("fc.w", (10, 4)), ("fc.b", (10,)))}
nodes = [helper.make_node("Conv", ["x", "conv.w", "conv.b"], ["c"], name="conv",
                          kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["r"], name="relu"),
         helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
         helper.make_node("Flatten", ["p"], ["f"], name="flatten", axis=1),
         helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["y"], name="fc", transB=1)]
g = helper.make_graph(nodes, "tiny",
                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
                      initializer=[numpy_helper.from_array(v, n) for n, v in W.items()])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
m.ir_version = 7
onnx.checker.check_model(m, full_check=True)
onnx.save(m, os.path.join(d, "tiny.onnx"))

def tiny(x):
    n = x.shape[0]
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    c = np.zeros((n, 4, 8, 8), np.float64)
    for i in range(3):
        for j in range(3):
            c += np.einsum("nchw,oc->nohw", xp[:, :, i:i + 8, j:j + 8], W["conv.w"][:, :, i, j])
    c += W["conv.b"][None, :, None, None]
    f = np.maximum(c, 0).mean(axis=(2, 3))
    return (f @ W["fc.w"].T + W["fc.b"]).astype(np.float32)

g2 = helper.make_graph([helper.make_node("Concat", ["a", "b"], ["y"], axis=0)], "cat",
                       [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3]),
                        helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 3])],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 3])])
m2 = helper.make_model(g2, opset_imports=[helper.make_opsetid("", 13)])
m2.ir_version = 7
onnx.checker.check_model(m2, full_check=True)
onnx.save(m2, os.path.join(d, "cat.onnx"))

def save(name, arr, tname):
    with open(os.path.join(d, name + ".pb"), "wb") as f:
        f.write(numpy_helper.from_array(arr, tname).SerializeToString())
    np.save(os.path.join(d, name + ".npy"), arr)

x1 = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
x3 = rng.standard_normal((3, 3, 8, 8)).astype(np.float32)
save("x1", x1, "x"); save("y1", tiny(x1), "y")
save("x3", x3, ""); save("y3", tiny(x3), "y")
save("x_bad_shape", rng.standard_normal((1, 3, 5, 5)).astype(np.float32), "x")
save("x_int", np.zeros((1, 3, 8, 8), np.int64), "x")
a = np.arange(6, dtype=np.float32).reshape(2, 3)
b = 100 + np.arange(3, dtype=np.float32).reshape(1, 3)
save("a", a, "a"); save("b", b, "b"); save("p", a, "p"); save("q", b, "q")
save("cat_y", np.concatenate([a, b]), "y")
raw = open(os.path.join(d, "x1.pb"), "rb").read()
open(os.path.join(d, "x_truncated.pb"), "wb").write(raw[:len(raw) // 2])
EOF
TINY=$D/tiny.onnx
CAT=$D/cat.onnx

# Compares output_<i>.pb files of a folder with .npy files: name, dtype, shape, values.
OUT_CHECK='
import sys
import numpy as np
import onnx
from onnx import numpy_helper
folder, pairs = sys.argv[1], sys.argv[2:]
for i, pair in enumerate(pairs):
    name, npy = pair.split("=", 1)
    t = onnx.TensorProto()
    try:
        t.ParseFromString(open("%s/output_%d.pb" % (folder, i), "rb").read())
    except Exception as e:
        print("FAIL output_%d: %s" % (i, e)); continue
    got, want = numpy_helper.to_array(t), np.load(npy)
    print("ok output_%d name" % i if t.name == name else
          "FAIL output_%d name: %r, expected %r" % (i, t.name, name))
    if got.dtype != want.dtype or got.shape != want.shape:
        print("FAIL output_%d values: %s %s, expected %s %s" % (i, got.dtype, got.shape,
                                                               want.dtype, want.shape))
    elif not np.allclose(got, want, rtol=1e-4, atol=1e-5):
        print("FAIL output_%d values: max abs diff %g" % (i, np.abs(got - want).max()))
    else:
        print("ok output_%d values" % i)
'

# ---------------------------------------------------------------- help
ot run --help
if [ "$T_RC" -eq 0 ] && [[ $T_OUT == *"--output-dir"* ]] && [[ $T_OUT == *"--random"* ]]; then
    ok "run --help"
else
    fail "run --help" "$(describe_run)"
fi
ot help test-data
if [ "$T_RC" -eq 0 ] && [[ $T_OUT == *"--rtol"* ]]; then
    ok "help test-data"
else
    fail "help test-data" "$(describe_run)"
fi
ot --help
if [[ $T_OUT == *" run "* ]] && [[ $T_OUT == *"test-data"* ]]; then
    ok "--help lists run and test-data"
else
    fail "--help lists run and test-data" "$T_OUT"
fi

# ---------------------------------------------------------------- results
out=$T_TMP/out/nested/dir
ot run "$TINY" --input "$D/x1.pb" --output-dir "$out"
if [ "$T_RC" -eq 0 ] && [ -f "$out/output_0.pb" ]; then
    ok "run --output-dir creates the folder"
    py_checks "run tiny batch 1" "$OUT_CHECK" "$out" "y=$D/y1.npy"
    left=$(find "$T_TMP/out" -name '*.tmp*')
    [ -z "$left" ] && ok "no temporary files left" || fail "no temporary files left" "$left"
else
    fail "run --output-dir creates the folder" "$(describe_run)"
fi

ot run "$TINY" --input "x=$D/x3.pb" -o "$T_TMP/out3"
if [ "$T_RC" -eq 0 ]; then
    ok "run batch 3 by name"
    py_checks "run tiny batch 3" "$OUT_CHECK" "$T_TMP/out3" "y=$D/y3.npy"
else
    fail "run batch 3 by name" "$(describe_run)"
fi

# text output: name, dtype, shape, first values
ot run "$TINY" --input "$D/x1.pb"
if [ "$T_RC" -eq 0 ] && [[ $T_OUT == "y: float [1,10]: "* ]] && [[ $T_OUT == *"(10 values)"* ]]; then
    ok "run prints name, dtype, shape and values"
else
    fail "run prints name, dtype, shape and values" "got '$T_OUT'; $(describe_run)"
fi

# ---------------------------------------------------------------- binding
bind_case() {
    local name=$1
    shift
    rm -rf "$T_TMP/cat"
    ot run "$CAT" "$@" --output-dir "$T_TMP/cat"
    if [ "$T_RC" -eq 0 ]; then
        py_checks "$name" "$OUT_CHECK" "$T_TMP/cat" "y=$D/cat_y.npy"
    else
        fail "$name" "$(describe_run)"
    fi
}
bind_case "bind by position" --input "$D/p.pb" --input "$D/q.pb"
bind_case "bind by tensor name" --input "$D/b.pb" --input "$D/a.pb"
bind_case "bind by name=FILE" --input "a=$D/p.pb" --input "b=$D/q.pb"
expect_error "input bound twice" "'b'&twice" run "$CAT" --input "b=$D/q.pb" --input "b=$D/q.pb" \
    --input "a=$D/p.pb"
bind_case "bind by name=FILE, reversed" --input "b=$D/q.pb" --input "a=$D/p.pb"

# ---------------------------------------------------------------- --random, --json
JSON_CHECK='
import json, sys
want_shape = [int(s) for s in sys.argv[2].split(",")]
try:
    j = json.loads(open(sys.argv[1]).read())
except Exception as e:
    print("FAIL json: %s" % e); sys.exit(0)
print("ok json")
o = j["outputs"][0]
keys = {"name", "dtype", "shape", "min", "max", "mean", "std", "argmax", "first"}
print("ok keys" if keys <= set(o) else "FAIL keys: %s" % sorted(o))
print("ok shape" if o["shape"] == want_shape else "FAIL shape: %r" % (o["shape"],))
print("ok first" if len(o["first"]) == min(8, o["shape"][0] * o["shape"][1])
      else "FAIL first: %r" % o["first"])
ok = o["min"] <= o["mean"] <= o["max"] and o["std"] >= 0 and 0 <= o["argmax"] < 10 * o["shape"][0]
print("ok stats" if ok else "FAIL stats: %r" % o)
'
ot run "$TINY" --random --batch 2 --seed 7 --json
if [ "$T_RC" -eq 0 ]; then
    ok "run --random --batch 2"
    printf '%s\n' "$T_OUT" >"$T_TMP/random.json"
    py_checks "--random --json" "$JSON_CHECK" "$T_TMP/random.json" "2,10"
    first=$T_OUT
    ot run "$TINY" --random --batch 2 --seed 7 --json
    [ "$T_OUT" = "$first" ] && ok "--random is seeded" || fail "--random is seeded" "outputs differ"
else
    fail "run --random --batch 2" "$(describe_run)"
fi
ot run "$TINY" --input "$D/x1.pb" --json
printf '%s\n' "$T_OUT" >"$T_TMP/run.json"
py_checks "--json" "$JSON_CHECK" "$T_TMP/run.json" "1,10"

# ---------------------------------------------------------------- bad input
expect_error "wrong shape" "input 'x'&[1,3,5,5]&[N,3,8,8]" run "$TINY" --input "$D/x_bad_shape.pb"
expect_error "wrong dtype" "input 'x'&int64&float" run "$TINY" --input "$D/x_int.pb"
expect_error "missing input" "input 'b'&not bound" run "$CAT" --input "a=$D/a.pb"
expect_error "unknown input name" "'nosuch'" run "$CAT" --input "nosuch=$D/a.pb" --input "$D/b.pb"
expect_error "truncated file" "input 'x'&x_truncated.pb" run "$TINY" --input "$D/x_truncated.pb"
expect_error "missing file" "input 'x'&missing.pb" run "$TINY" --input "x=$D/missing.pb"
expect_error "too many files" "the model has only 1 input" run "$TINY" --input "$D/x3.pb" \
    --input "$D/x3.pb"
expect_error "missing model" "nosuch.onnx" run "$D/nosuch.onnx" --input "$D/x1.pb"
expect_usage "no input" run "$TINY"
expect_usage "bad --batch" run "$TINY" --random --batch 0
expect_usage "bad --threads" run "$TINY" --random --threads x
if [ ! -e "$T_TMP/bad_out" ]; then
    ot run "$TINY" --input "$D/x_bad_shape.pb" --output-dir "$T_TMP/bad_out"
    [ ! -e "$T_TMP/bad_out" ] && ok "no output folder on error" ||
        fail "no output folder on error" "$T_TMP/bad_out exists"
fi

# ---------------------------------------------------------------- test-data
# A folder mixing batch sizes, one with a wrong expected value, one that cannot run.
TD=$T_TMP/td
mkdir -p "$TD/good/test_data_set_0" "$TD/good/test_data_set_1" "$TD/good/test_data_set_10" \
    "$TD/bad/test_data_set_0" "$TD/broken"
for f in good bad; do cp "$TINY" "$TD/$f/model.onnx"; done
cp "$D/x1.pb" "$TD/good/test_data_set_0/input_0.pb"
cp "$D/y1.pb" "$TD/good/test_data_set_0/output_0.pb"
cp "$D/x3.pb" "$TD/good/test_data_set_1/input_0.pb"
cp "$D/y3.pb" "$TD/good/test_data_set_1/output_0.pb"
cp "$D/x1.pb" "$TD/good/test_data_set_10/input_0.pb"
cp "$D/y1.pb" "$TD/good/test_data_set_10/output_0.pb"
cp "$D/x1.pb" "$TD/bad/test_data_set_0/input_0.pb"
"$PY" - "$D/y1.npy" "$TD/bad/test_data_set_0/output_0.pb" <<'EOF'
import sys
import numpy as np
from onnx import numpy_helper
y = np.load(sys.argv[1])
y[0, 7] += 0.5
open(sys.argv[2], "wb").write(numpy_helper.from_array(y, "y").SerializeToString())
EOF
cp "$D/tiny.onnx" "$TD/broken/model.onnx"

ot test-data "$TD/good"
if [ "$T_RC" -eq 0 ] && [[ $T_OUT == "PASS $TD/good (3 data sets, max abs err "* ]] &&
    [[ $T_OUT == *"test-data: 1 passed, 0 failed" ]]; then
    ok "test-data PASS with batch 1 and 3"
else
    fail "test-data PASS with batch 1 and 3" "got '$T_OUT'; $(describe_run)"
fi
ot test-data "$TD/bad"
if [ "$T_RC" -eq 1 ] && matches "$T_OUT" "FAIL $TD/bad: output 'y' data set 0: worst index [0,7]&tolerance"; then
    ok "test-data FAIL names the worst element"
else
    fail "test-data FAIL names the worst element" "got '$T_OUT'; $(describe_run)"
fi
ot test-data "$TD/broken" "$TD/good" --json
if [ "$T_RC" -eq 1 ]; then
    printf '%s\n' "$T_OUT" >"$T_TMP/td.json"
    py_checks "test-data --json" '
import json, sys
j = json.load(open(sys.argv[1]))
r = {x["dir"].rsplit("/", 1)[1]: x for x in j["results"]}
print("ok broken is an error" if r["broken"]["status"] == "error" else "FAIL broken: %r" % r["broken"])
print("ok good passes" if r["good"]["status"] == "pass" and r["good"]["data_sets"] == 3
      else "FAIL good: %r" % r["good"])
print("ok counts" if (j["passed"], j["failed"]) == (1, 1) else "FAIL counts: %r" % j)
' "$T_TMP/td.json"
else
    fail "test-data --json" "expected exit 1; $(describe_run)"
fi
ot test-data "$TD/good" --atol 0 --rtol 0
[ "$T_RC" -le 1 ] && ok "test-data --atol 0 --rtol 0 runs" ||
    fail "test-data --atol 0 --rtol 0 runs" "$(describe_run)"
expect_usage "test-data bad --rtol" test-data "$TD/good" --rtol -1
expect_usage "test-data without folders" test-data

finish
