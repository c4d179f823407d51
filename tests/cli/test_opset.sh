#!/bin/bash
# test_opset.sh: `convert --opset N` (converters/opset.c).
#   - ONNX's backend node tests (Debian libonnx-testdata) whose ops the
#     converter knows, converted from their opset to 7, 10, 12, 14, 18 and
#     21 (up and down): each conversion either succeeds and the model
#     gives the same outputs as before in onnxruntime (max abs diff <= 1e-5,
#     relative for outputs beyond 1), or is refused in one line that names
#     the node and the reason; every adapter of the list below runs at least
#     once each way and is checked so;
#   - the ResNet-18 fixtures: zoo-style opset 7 up to 13 and 17, the eval
#     and bn exports down to 7 and back, outputs <= 1e-5 against the original
#     in onnxtrain and in onnxruntime;
#   - refusals: allowzero=1 below 14, a training-mode BatchNormalization
#     below 14, a computed Squeeze axes input below 13, an op the converter
#     has no history for, If (subgraphs), Resize forms that opset 10 or 18
#     lacks; custom-domain ops carried with a warning;
#   - Resize and Upsample with constant scales or sizes: Upsample 7 and 9,
#     Resize 11, 13 and 18 (nearest floor, ceil and half_pixel, linear,
#     sizes, axes) converted across 7..21 and back, each against the
#     original in onnxruntime (<= 1e-5), Upsample renamed Resize from 10;
#   - every op of onnxtrain's op table converted up and down in at least one
#     node test that matches in onnxruntime.
# Skipped when OT_FAST=1; onnxruntime comes from npm as in test_ort.sh.
#
#   BUILD=build bash tests/cli/test_opset.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
skip_if_fast
need_cli
T_TIMEOUT=${T_TIMEOUT_MODELS:-600}

ROOT=${CONFORMANCE_ROOT:-/usr/share/libonnx-testdata/data}
if [ ! -d "$ROOT/node" ]; then
    fail setup "$ROOT/node not found (Debian package libonnx-testdata)"
    finish
fi
if ! command -v node >/dev/null 2>&1 || ! ensure_ort; then
    fail setup "onnxruntime is needed: ${ENSURE_ORT_ERR:-node is not installed}"
    finish
fi
export NODE_PATH=$(realpath "$BUILD/ort")/node_modules
HAVE_ORT=1

# --------------------------------------------------------------- fixtures
FX=$BUILD/fixtures
if ! "$PY" tests/fixtures/make_resnet18.py "$FX" >"$T_TMP/make.log" 2>&1; then
    fail setup "fixtures: $(tail -n 1 "$T_TMP/make.log")"
    finish
fi
IN=$FX/resnet18_zoo7/test_data_set_0/input_0.pb
for t in 13 17; do
    ot convert "$FX/resnet18_zoo7.onnx" "$T_TMP/zoo7_$t.onnx" --opset "$t"
    if [ "$T_RC" -ne 0 ]; then
        fail "zoo7-to-$t" "$(describe_run)"
    else
        same_outputs "zoo7-to-$t" "$FX/resnet18_zoo7.onnx" "$T_TMP/zoo7_$t.onnx" "$IN"
    fi
done
src=$("$PY" -c 'import onnx,sys; print([o.version for o in onnx.load(sys.argv[1]).opset_import if o.domain in ("", "ai.onnx")][0])' "$FX/resnet18_eval.onnx")
for m in resnet18_eval resnet18_bn; do
    ot convert "$FX/$m.onnx" "$T_TMP/${m}_7.onnx" --opset 7
    [ "$T_RC" -eq 0 ] || { fail "$m-to-7" "$(describe_run)"; continue; }
    ot convert "$T_TMP/${m}_7.onnx" "$T_TMP/${m}_back.onnx" --opset "$src"
    [ "$T_RC" -eq 0 ] || { fail "$m-to-7-and-back" "$(describe_run)"; continue; }
    same_outputs "$m-to-7" "$FX/$m.onnx" "$T_TMP/${m}_7.onnx" "$IN"
    same_outputs "$m-to-7-and-back-to-$src" "$FX/$m.onnx" "$T_TMP/${m}_back.onnx" "$IN"
done

# --------------------------------------------------------------- refusals
"$PY" - "$T_TMP" <<'PYEOF' || fail setup "refusal models"
import sys, numpy as np, onnx
from onnx import helper as h, TensorProto as TP, numpy_helper as nh
out = sys.argv[1]
def save(name, nodes, inputs, outputs, inits, opset, domains=()):
    g = h.make_graph(nodes, name, inputs, outputs, inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)] + [h.make_opsetid(d, 1) for d in domains])
    m.ir_version = 8
    onnx.save(m, "%s/%s.onnx" % (out, name))
f = lambda n, s: h.make_tensor_value_info(n, TP.FLOAT, s)
save("allowzero", [h.make_node("Reshape", ["x", "s"], ["y"], name="rz", allowzero=1)],
     [f("x", [0, 4])], [f("y", [4, 0])], [nh.from_array(np.array([4, 0], np.int64), "s")], 14)
c = [nh.from_array(np.ones(3, np.float32), n) for n in ["sc", "b", "m", "v"]]
save("bn_training", [h.make_node("BatchNormalization", ["x", "sc", "b", "m", "v"], ["y"], name="bnt", training_mode=1)],
     [f("x", [2, 3, 4, 4])], [f("y", [2, 3, 4, 4])], c, 14)
save("squeeze_computed", [h.make_node("Squeeze", ["x", "axes"], ["y"], name="sq")],
     [f("x", [1, 3]), h.make_tensor_value_info("axes", TP.INT64, [1])], [f("y", [3])], [], 13)
save("custom", [h.make_node("Relu", ["x"], ["r"], name="relu"),
                h.make_node("Foo", ["r"], ["y"], name="foo", domain="com.example")],
     [f("x", [2, 3])], [f("y", [2, 3])], [], 13, ["com.example"])
save("no_history", [h.make_node("Det", ["x"], ["y"], name="det")],
     [f("x", [2, 3, 3])], [f("y", [2])], [], 13)
branch = lambda name, v: h.make_graph([h.make_node("Constant", [], ["o"], value=nh.from_array(np.array([v], np.float32)))],
                                      name, [], [f("o", [1])])
save("control_flow", [h.make_node("If", ["c"], ["y"], name="iff", then_branch=branch("t", 1.0),
                                  else_branch=branch("e", 2.0))],
     [h.make_tensor_value_info("c", TP.BOOL, [])], [f("y", [1])], [], 13)
# Resize and Upsample with constant scales or sizes (the node tests feed
# them as graph inputs, which the conversions below opset 11 need constant)
sc = lambda name, v: nh.from_array(np.array(v, np.float32), name)
ints = lambda name, v: nh.from_array(np.array(v, np.int64), name)
x23, x46 = f("x", [1, 1, 2, 3]), f("x", [1, 1, 4, 6])
Y = f("y", None)
save("upsample7_nearest", [h.make_node("Upsample", ["x"], ["y"], name="up", scales=[1.0, 1.0, 2.0, 3.0])],
     [x23], [Y], [], 7)
save("upsample9_linear", [h.make_node("Upsample", ["x", "s"], ["y"], name="up", mode="linear")],
     [x23], [Y], [sc("s", [1, 1, 2, 2])], 9)
save("resize13_floor", [h.make_node("Resize", ["x", "", "s"], ["y"], name="rs", mode="nearest",
                                    coordinate_transformation_mode="asymmetric", nearest_mode="floor")],
     [x23], [Y], [sc("s", [1, 1, 2, 2])], 13)
save("resize13_half_pixel", [h.make_node("Resize", ["x", "", "s"], ["y"], name="rs")],
     [x23], [Y], [sc("s", [1, 1, 3, 2])], 13)
save("resize11_sizes", [h.make_node("Resize", ["x", "roi", "s", "sz"], ["y"], name="rs",
                                    coordinate_transformation_mode="asymmetric", nearest_mode="floor")],
     [x23], [Y], [sc("roi", []), sc("s", []), ints("sz", [1, 1, 4, 6])], 11)
save("resize13_linear", [h.make_node("Resize", ["x", "", "s"], ["y"], name="rs", mode="linear",
                                     coordinate_transformation_mode="asymmetric")],
     [x23], [Y], [sc("s", [1, 1, 2, 2])], 13)
save("resize13_down", [h.make_node("Resize", ["x", "", "s"], ["y"], name="rs",
                                   coordinate_transformation_mode="asymmetric", nearest_mode="ceil")],
     [x46], [Y], [sc("s", [1, 1, 0.5, 0.5])], 13)
save("resize18_axes", [h.make_node("Resize", ["x", "", "s"], ["y"], name="rs", axes=[2, 3],
                                   coordinate_transformation_mode="asymmetric", nearest_mode="floor")],
     [x23], [Y], [sc("s", [2, 2])], 18)
save("resize13_cubic", [h.make_node("Resize", ["x", "", "s"], ["y"], name="rsc", mode="cubic")],
     [x23], [Y], [sc("s", [1, 1, 2, 2])], 13)
save("resize13_half_linear", [h.make_node("Resize", ["x", "", "s"], ["y"], name="rsl", mode="linear")],
     [x23], [Y], [sc("s", [1, 1, 2, 2])], 13)
save("resize19_symmetric", [h.make_node("Resize", ["x", "", "s"], ["y"], name="rss",
                                        coordinate_transformation_mode="half_pixel_symmetric")],
     [x23], [Y], [sc("s", [1, 1, 2, 2])], 19)
# ops of onnxtrain's table whose node tests lie outside 7..21 or take input
# types the node-test loop leaves out: single-node models of their own
x4 = f("x", [1, 4, 3, 3])
op = lambda t, ins, **kw: h.make_node(t, ["x"] + ins, ["y"], name=t.lower(), **kw)
save("t_globalaveragepool", [op("GlobalAveragePool", [])], [x4], [Y], [], 13)
save("t_globalmaxpool", [op("GlobalMaxPool", [])], [x4], [Y], [], 13)
save("t_selu", [op("Selu", [])], [x4], [Y], [], 13)
save("t_softplus", [op("Softplus", [])], [x4], [Y], [], 13)
save("t_instancenormalization", [op("InstanceNormalization", ["s", "b"])], [x4], [Y],
     [sc("s", [0.5, 1, 1.5, 2]), sc("b", [0, 0.1, -0.2, 0.3])], 13)
save("t_gelu", [op("Gelu", [])], [x4], [Y], [], 20)
save("t_groupnormalization", [op("GroupNormalization", ["s", "b"], num_groups=2)], [x4], [Y],
     [sc("s", [0.5, 2]), sc("b", [0.1, -0.3])], 18)
save("t_groupnorm21", [h.make_node("GroupNormalization", ["x", "s", "b"], ["y"], name="gn21", num_groups=2)],
     [x4], [Y], [sc("s", [0.5, 1, 2, 3]), sc("b", [0, 0, 0, 0])], 21)
save("t_qdq", [h.make_node("QuantizeLinear", ["x", "qs", "qz"], ["q"], name="q"),
               h.make_node("DequantizeLinear", ["q", "qs", "qz"], ["y"], name="dq")], [x4], [Y],
     [sc("qs", 0.02), nh.from_array(np.array(0, np.int8), "qz")], 13)
rng = np.random.default_rng(0)
for n_, shp in (("x23", [1, 1, 2, 3]), ("x46", [1, 1, 4, 6]), ("x4", [1, 4, 3, 3])):
    onnx.save_tensor(nh.from_array(rng.standard_normal(shp).astype(np.float32), "x"), "%s/%s.pb" % (out, n_))
PYEOF
expect_error refuse/allowzero "'rz' (reshape)&opset 14 to 13&allowzero=1" \
    convert "$T_TMP/allowzero.onnx" "$T_TMP/x.onnx" --opset 13
expect_error refuse/bn-training "'bnt' (batchnormalization)&training_mode=1" \
    convert "$T_TMP/bn_training.onnx" "$T_TMP/x.onnx" --opset 12
expect_error refuse/squeeze-computed-axes "'sq' (squeeze)&axes input is computed" \
    convert "$T_TMP/squeeze_computed.onnx" "$T_TMP/x.onnx" --opset 11
expect_error refuse/no-history "'det' (det)&no adapters for det" \
    convert "$T_TMP/no_history.onnx" "$T_TMP/x.onnx" --opset 11
expect_error refuse/control-flow "'iff' (if)&carries subgraphs&does not convert" \
    convert "$T_TMP/control_flow.onnx" "$T_TMP/x.onnx" --opset 17
expect_error refuse/resize-cubic "'rsc' (resize)&opset 13 to 10&mode 'cubic'" \
    convert "$T_TMP/resize13_cubic.onnx" "$T_TMP/x.onnx" --opset 10
expect_error refuse/resize-half-pixel-linear "'rsl' (resize)&half_pixel&computes something else in opset 10" \
    convert "$T_TMP/resize13_half_linear.onnx" "$T_TMP/x.onnx" --opset 9
expect_error refuse/resize-half-pixel-symmetric "'rss' (resize)&half_pixel_symmetric" \
    convert "$T_TMP/resize19_symmetric.onnx" "$T_TMP/x.onnx" --opset 18
[ ! -e "$T_TMP/x.onnx" ] && ok refuse/nothing-written || fail refuse/nothing-written "x.onnx exists"
ot convert "$T_TMP/custom.onnx" "$T_TMP/custom_17.onnx" --opset 17
if [ "$T_RC" -eq 0 ] && matches "$T_ERR" "warning&other domains&com.example&carried unchanged"; then
    py_checks custom '
import sys, onnx
m = onnx.load(sys.argv[1])
ops = {o.domain: o.version for o in m.opset_import}
n = [x for x in m.graph.node if x.op_type == "Foo"]
print("ok carried" if ops.get("") == 17 and ops.get("com.example") == 1 and n and n[0].domain == "com.example" else "FAIL carried: %s" % ops)
' "$T_TMP/custom_17.onnx"
else
    fail custom "$(describe_run)"
fi

# Resize / Upsample: each conversion against the original in onnxruntime,
# and the way back
resize_case() { # MODEL INPUT TARGET [BACK]
    local m=$1 in=$2 t=$3 back=${4:-}
    ot convert "$T_TMP/$m.onnx" "$T_TMP/${m}_$t.onnx" --opset "$t"
    [ "$T_RC" -eq 0 ] || { fail "resize-$m-to-$t" "$(describe_run)"; return; }
    same_outputs "resize-$m-to-$t" "$T_TMP/$m.onnx" "$T_TMP/${m}_$t.onnx" "$T_TMP/$in.pb"
    [ -n "$back" ] || return
    ot convert "$T_TMP/${m}_$t.onnx" "$T_TMP/${m}_${t}_$back.onnx" --opset "$back"
    [ "$T_RC" -eq 0 ] || { fail "resize-$m-to-$t-to-$back" "$(describe_run)"; return; }
    same_outputs "resize-$m-to-$t-to-$back" "$T_TMP/$m.onnx" "$T_TMP/${m}_${t}_$back.onnx" "$T_TMP/$in.pb"
}
for t in 9 10 11 13 18 21; do resize_case upsample7_nearest x23 "$t" 7; done
for t in 7 10 13 21; do resize_case upsample9_linear x23 "$t" 9; done
for t in 7 9 10 11 18 21; do resize_case resize13_floor x23 "$t" 13; done
for t in 7 10; do resize_case resize13_half_pixel x23 "$t"; done
for t in 7 10 13 19; do resize_case resize11_sizes x23 "$t"; done
for t in 7 10; do resize_case resize13_linear x23 "$t" 13; done
resize_case resize13_down x46 10 13
for t in 13 10; do resize_case resize18_axes x23 "$t"; done
# the table's ops without a node test here: up and down where the op
# exists, each against the original in onnxruntime (and onnxtrain);
# $T_TMP/covered.txt tells the node-test check below
table_case() { # MODEL TARGET OP...
    local m=$1 t=$2 src
    shift 2
    src=$("$PY" -c 'import onnx,sys; print([o.version for o in onnx.load(sys.argv[1]).opset_import if o.domain in ("", "ai.onnx")][0])' "$T_TMP/$m.onnx")
    ot convert "$T_TMP/$m.onnx" "$T_TMP/${m}_$t.onnx" --opset "$t"
    [ "$T_RC" -eq 0 ] || { fail "table-$m-to-$t" "$(describe_run)"; return; }
    local failed=$T_FAIL
    same_outputs "table-$m-to-$t" "$T_TMP/$m.onnx" "$T_TMP/${m}_$t.onnx" "$T_TMP/x4.pb"
    if [ "$T_FAIL" -eq "$failed" ]; then
        for o in "$@"; do echo "$o $([ "$t" -gt "$src" ] && echo up || echo down)" >>"$T_TMP/covered.txt"; done
    fi
}
for m in globalaveragepool globalmaxpool selu softplus instancenormalization; do
    op=$(sed -n "s/^$m //p" <<'EOF2'
globalaveragepool GlobalAveragePool
globalmaxpool GlobalMaxPool
selu Selu
softplus Softplus
instancenormalization InstanceNormalization
EOF2
)
    table_case "t_$m" 7 "$op"
    table_case "t_$m" 21 "$op"
done
table_case t_gelu 21 Gelu
table_case t_groupnormalization 21 GroupNormalization
ot convert "$T_TMP/t_groupnormalization_21.onnx" "$T_TMP/t_gn_back.onnx" --opset 18
if [ "$T_RC" -eq 0 ]; then
    failed=$T_FAIL
    same_outputs table-groupnorm-21-to-18 "$T_TMP/t_groupnormalization.onnx" "$T_TMP/t_gn_back.onnx" "$T_TMP/x4.pb"
    [ "$T_FAIL" -eq "$failed" ] && echo "GroupNormalization down" >>"$T_TMP/covered.txt"
else
    fail table-groupnorm-21-to-18 "$(describe_run)"
fi
table_case t_qdq 10 QuantizeLinear DequantizeLinear
table_case t_qdq 21 QuantizeLinear DequantizeLinear
expect_error refuse/gelu-below-20 "'gelu' (gelu)&does not exist before opset 20" \
    convert "$T_TMP/t_gelu.onnx" "$T_TMP/x.onnx" --opset 18
echo "Gelu down-never the op does not exist before opset 20" >>"$T_TMP/covered.txt"
expect_error refuse/groupnorm-per-channel "'gn21' (groupnormalization)&differs within a group" \
    convert "$T_TMP/t_groupnorm21.onnx" "$T_TMP/x.onnx" --opset 18

py_checks resize/upsample-is-resize-from-10 '
import sys, onnx
ops = lambda p: [n.op_type for n in onnx.load(p).graph.node]
print("ok renamed" if ops(sys.argv[1]) == ["Resize"] and ops(sys.argv[2]) == ["Upsample"]
      else "FAIL renamed: %s %s" % (ops(sys.argv[1]), ops(sys.argv[2])))
' "$T_TMP/upsample7_nearest_10.onnx" "$T_TMP/upsample7_nearest_10_7.onnx"

# ------------------------------------------------------ backend node tests
"$PY" - "$OT" "$ROOT/node" "$T_TMP" >"$T_TMP/node.out" 2>"$T_TMP/node.err" <<'PYEOF'
import glob, json, os, re, subprocess, sys
import numpy as np
import onnx
from onnx import numpy_helper as nh

ot, root, tmp = sys.argv[1], sys.argv[2], sys.argv[3]
hist = open("converters/opset.c").read()
known = set(re.findall(r'\{ "(\w+)", \d+, \d+, \{', hist))
# ops whose adapters rewrite nodes: each must convert both ways at least once
adapted = ["Clip", "Dropout", "Squeeze", "Unsqueeze", "Pad", "Softmax", "LogSoftmax",
           "ReduceSum", "ReduceMean", "ReduceMax", "Slice", "Split", "Reshape",
           "BatchNormalization", "Concat", "Flatten", "Gather", "MaxPool", "AveragePool",
           "Resize"]
# every op of onnxtrain's op table, checked both ways like the adapted ones
table = ["Conv", "BatchNormalization", "Relu", "LeakyRelu", "Clip", "Sigmoid", "MaxPool",
         "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Add", "Sum", "Mul", "Sub", "Div",
         "Pow", "Sqrt", "Reciprocal", "Exp", "Log", "Tanh", "Erf", "HardSigmoid", "HardSwish",
         "Elu", "Selu", "Softplus", "Gelu", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceL2",
         "PRelu", "LayerNormalization", "InstanceNormalization", "GroupNormalization", "Max",
         "Min", "Mean", "Einsum", "Concat", "Flatten", "Reshape", "Squeeze", "Unsqueeze",
         "Transpose", "Gemm", "MatMul", "Dropout", "Softmax", "LogSoftmax", "LRN", "Identity",
         "Constant", "Shape", "Gather", "Pad", "Slice", "Cast", "QuantizeLinear",
         "DequantizeLinear"]
adapted += [op for op in table if op not in adapted]
targets = [7, 10, 12, 14, 18, 21]
okdt = {1, 6, 7, 9, 11}
cases, jobs = [], []
for d in sorted(glob.glob(os.path.join(root, "test_*"))):
    mp = os.path.join(d, "model.onnx")
    ds = os.path.join(d, "test_data_set_0")
    if not os.path.isfile(mp) or not os.path.isdir(ds):
        continue
    try:
        m = onnx.load(mp)
    except Exception:
        continue
    ops = {n.op_type for n in m.graph.node}
    if any(n.domain not in ("", "ai.onnx") for n in m.graph.node) or not ops <= known:
        continue
    if any(n.op_type in ("Loop", "If", "Scan") for n in m.graph.node):
        continue
    s = [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")]
    if not s or not 7 <= s[0] <= 21:
        continue
    ins = sorted(glob.glob(os.path.join(ds, "input_*.pb")), key=lambda p: int(p.rsplit("_", 1)[1][:-3]))
    if not all(onnx.load_tensor(p).data_type in okdt for p in ins):
        continue
    name = os.path.basename(d)
    jobs.append({"model": mp, "inputs": ins, "out": os.path.join(tmp, name + ".orig.json")})
    for t in targets:
        if t == s[0]:
            continue
        out = os.path.join(tmp, "%s.%d.onnx" % (name, t))
        p = subprocess.run([ot, "convert", mp, out, "--opset", str(t)], capture_output=True,
                           text=True, timeout=120)
        err = [l for l in p.stderr.splitlines() if "error" in l]
        if p.returncode == 0:
            cases.append((name, s[0], t, out, ops, None))
            jobs.append({"model": out, "inputs": ins, "out": out + ".json"})
        elif p.returncode == 1 and len(err) == 1 and re.search(r"node .*\(\w+\): cannot convert from opset \d+ to \d+: .+", err[0]):
            cases.append((name, s[0], t, out, ops, err[0]))
        else:
            print("FAIL %s-to-%d: convert exit %d: %s" % (name, t, p.returncode, (p.stderr.strip().splitlines() or [""])[-1]))
json.dump(jobs, open(os.path.join(tmp, "jobs.json"), "w"))
p = subprocess.run(["node", "tests/ort/run_ort_batch.js", os.path.join(tmp, "jobs.json")],
                   capture_output=True, text=True, timeout=900)
if p.returncode != 0:
    print("FAIL onnxruntime: %s" % p.stderr.strip()[-200:])
    sys.exit(0)
def load(path):
    doc = json.load(open(path))
    if "error" in doc:
        return doc["error"]
    sp = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}
    return [np.array([sp.get(v, v) for v in o["data"]], np.float64).reshape(o["dims"]) for o in doc["outputs"]]
ok_up, ok_down = set(), set()
try:
    for line in open(os.path.join(tmp, "covered.txt")):
        w = line.split()
        if len(w) >= 2 and w[1] in ("up", "down"):
            (ok_up if w[1] == "up" else ok_down).add(w[0])
except OSError:
    pass
# ops a down conversion could not express: the converter refused a node of
# that op because the op does not exist at the target, or its older
# definition computes something else
never = {}
for name, s, t, out, ops, refusal in cases:
    m = refusal and re.search(r"\((\w+)\): cannot convert from opset \d+ to \d+: (.*)", refusal)
    if m and t < s and re.search(r"does not exist before opset|computes something else", m.group(2)):
        never.setdefault(m.group(1), m.group(2))
n_ok = n_ref = n_orig_bad = n_noimpl = 0
for name, s, t, out, ops, refusal in cases:
    orig = load(os.path.join(tmp, name + ".orig.json"))
    if isinstance(orig, str):
        n_orig_bad += 1
        continue
    if refusal:
        n_ref += 1
        continue
    got = load(out + ".json")
    if isinstance(got, str) and "Could not find an implementation" in got:
        n_noimpl += 1  # valid at that opset, but onnxruntime has no kernel for it
        continue
    if isinstance(got, str):
        print("FAIL %s-to-%d: onnxruntime refuses the converted model: %s" % (name, t, got[:160]))
        continue
    worst = 0.0
    bad = len(got) != len(orig)
    for a, b in zip(orig, got):
        if a.shape != b.shape:
            bad = True
            break
        if a.size:
            fin = np.isfinite(a) & np.isfinite(b)
            if not np.array_equal(np.isfinite(a), np.isfinite(b)):
                bad = True
            diff = np.abs(a - b)[fin] / np.maximum(1.0, np.abs(a))[fin]
            worst = max(worst, float(diff.max()) if diff.size else 0.0)
    if bad or worst > 1e-5:
        print("FAIL %s-to-%d: outputs differ (max %.3g)" % (name, t, worst))
        continue
    n_ok += 1
    for op in ops:
        (ok_up if t > s else ok_down).add(op)
print("ok node-tests %d conversions match, %d refused with a reason, %d without an onnxruntime kernel at that opset, %d originals onnxruntime does not run" % (n_ok, n_ref, n_noimpl, n_orig_bad))
for op in adapted:
    for way, seen in (("up", ok_up), ("down", ok_down)):
        if op in seen:
            print("ok adapter-%s-%s" % (op, way))
        elif way == "down" and op not in never and any(
                l.startswith(op + " down-never ") for l in open(os.path.join(tmp, "covered.txt"))):
            print("ok adapter-%s-down not expressible (checked above)" % op)
        elif way == "down" and op in never:
            print("ok adapter-%s-down not expressible: %s" % (op, never[op][:80]))
        else:
            print("FAIL adapter-%s-%s: no node test converted this way" % (op, way))
PYEOF
rc=$?
while IFS= read -r line; do
    case $line in
        "ok "*) ok "${line#ok }" ;;
        "FAIL "*) line=${line#FAIL }; fail "${line%%: *}" "${line#*: }" ;;
    esac
done <"$T_TMP/node.out"
[ "$rc" -eq 0 ] || fail node-tests "python exited $rc: $(tail -n 1 "$T_TMP/node.err")"

finish
