#!/bin/bash
# test_json_out.sh: every --json output is strict JSON (checked by Python's
# json module with NaN and Infinity refused) whatever the model holds: names
# that are not UTF-8 or hold control characters, NaN and infinite values
# (written as null), image paths that are not UTF-8.
#
#   BUILD=build bash tests/cli/test_json_out.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
need_cli

# names.onnx: tests/fixtures/make_tiny_classifier.py with a node, the input
#   and the producer named with bytes that are not UTF-8 (patched into the
#   file after it is saved, at the same lengths);
# inf.onnx: the same at 32x32 with a head whose weights (3e38) overflow, so
#   its logits are inf and the cross-entropy NaN;
# sq.onnx: y = x * x, x [2]; nan.pb: x = [NaN, inf];
# td/: a test folder for sq.onnx whose expected output is finite where the
#   model overflows to inf;
# img\xff.ppm: an image whose file name is not UTF-8.
D=$T_TMP/data
mkdir -p "$D/td/test_data_set_0"
MK=tests/fixtures/make_tiny_classifier.py
"$PY" $MK "$D/names.onnx" --input xAAAA --conv convBBBB --producer prodCCCC >"$T_TMP/make.log" 2>&1 &&
"$PY" $MK "$D/inf.onnx" --size 32 --fc-fill 3e38 >>"$T_TMP/make.log" 2>&1 &&
"$PY" - "$D" <<'EOF' || { fail setup "cannot build the models: $(tail -n 1 "$T_TMP/make.log")"; finish; }
import os, sys
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
d = sys.argv[1]
p = os.path.join(d, "names.onnx")
b = open(p, "rb").read()
b = b.replace(b"xAAAA", b"x\xff\x80A\x01").replace(b"convBBBB", b"conv\xc0\xaf\"\n")
b = b.replace(b"prodCCCC", b"prod\xed\xa0\x80\x7f")
open(p, "wb").write(b)

lg = helper.make_graph([helper.make_node("Mul", ["x", "x"], ["y"], name="sq")], "sq",
                       [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
lm = helper.make_model(lg, opset_imports=[helper.make_opsetid("", 13)])
lm.ir_version = 7
onnx.save(lm, os.path.join(d, "sq.onnx"))
onnx.save(lm, os.path.join(d, "td", "model.onnx"))
for name, arr in (("input_0", [1e30, 1.0]), ("output_0", [0.0, 1.0])):
    t = numpy_helper.from_array(np.array(arr, dtype=np.float32), "x" if name == "input_0" else "y")
    open(os.path.join(d, "td", "test_data_set_0", name + ".pb"), "wb").write(t.SerializeToString())
bad = numpy_helper.from_array(np.array([np.nan, np.inf], dtype=np.float32), "x")
open(os.path.join(d, "nan.pb"), "wb").write(bad.SerializeToString())
rng = np.random.default_rng(0)
open(os.path.join(d.encode(), b"img\xff.ppm"), "wb").write(
    b"P6 8 8 255\n" + rng.integers(0, 256, 8 * 8 * 3, dtype=np.uint8).tobytes())
EOF
IMG=$D/$'img\xff.ppm'
DATA=$BUILD/tiny_cifar
"$PY" tests/fixtures/make_tiny_cifar.py "$DATA" >"$T_TMP/make.log" 2>&1 ||
    { fail setup "tiny CIFAR: $(tail -n 1 "$T_TMP/make.log")"; finish; }

# strict NAME SCRIPT: parses $T_TMP/stdout as strict JSON (UTF-8, no NaN or
# Infinity) and runs SCRIPT with the document as `j`
strict() {
    py_checks "$1" '
import json, sys
raw = open(sys.argv[1], "rb").read()
def refuse(c):
    raise ValueError("non-standard constant " + c)
try:
    j = json.loads(raw.decode("utf-8"), parse_constant=refuse)
except Exception as e:
    print("FAIL strict JSON: %s" % e); sys.exit(0)
print("ok strict JSON")
'"$2" "$T_TMP/stdout"
}

ot inspect --json --nodes "$D/names.onnx"
expect_rc_of() { [ "$T_RC" -eq "$1" ] && ok "$2" || fail "$2" "$(describe_run)"; }
expect_rc_of 0 "inspect --json on names that are not UTF-8"
strict "inspect --json --nodes: names" '
n = j["nodes"][0]
print("ok node name" if n["name"] == "conv\ufffd\ufffd\"\n" else "FAIL node name: %r" % n["name"])
print("ok input name" if j["inputs"][0]["name"] == "x\ufffd\ufffdA\x01" else "FAIL input: %r" % j["inputs"][0])
print("ok producer" if j["producer"]["name"].startswith("prod\ufffd") else "FAIL producer: %r" % j["producer"])
'

ot run "$D/sq.onnx" --input "$D/nan.pb" --json
expect_rc_of 0 "run --json: NaN and inf outputs"
strict "run --json: non-finite values are null" '
o = j["outputs"][0]
print("ok first" if o["first"] == [None, None] else "FAIL first: %r" % o["first"])
print("ok stats" if o["min"] is None and o["argmax"] is None else "FAIL stats: %r" % o)
'

ot test-data "$D/td" --json
expect_rc_of 1 "test-data --json: an output of inf fails the folder"
strict "test-data --json: a failed folder" '
r = j["results"][0]
print("ok fail" if r["status"] == "fail" and "got inf" in r["reason"] else "FAIL status: %r" % r)
print("ok counts" if (j["passed"], j["failed"]) == (0, 1) else "FAIL counts: %r" % j)
'

ot predict "$D/names.onnx" "$IMG" --json --top 2
expect_rc_of 0 "predict --json: an image name that is not UTF-8"
strict "predict --json: image name" '
p = j["predictions"][0]
print("ok image" if p["image"].endswith("img\ufffd.ppm") else "FAIL image: %r" % p["image"])
print("ok top" if len(p["top"]) == 2 else "FAIL top: %r" % p["top"])
'

ot eval "$D/inf.onnx" --data "$DATA" --json
expect_rc_of 0 "eval --json: a model whose loss is NaN"
strict "eval --json: a NaN loss is null" '
print("ok loss" if j["loss"] is None else "FAIL loss: %r" % j["loss"])
print("ok top1" if isinstance(j["top1"], float) else "FAIL top1: %r" % j["top1"])
print("ok keys" if list(j)[:4] == ["n", "top1", "top5", "loss"] else "FAIL keys: %r" % list(j))
'

finish
