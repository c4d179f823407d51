#!/bin/bash
# test_spatial_logits.sh: a classifier whose logits are [N, C, 1, 1] (a 1x1
# convolution head, the global pooling after it, no Flatten, a Softmax over
# axis 1: SqueezeNet 1.0 as the ONNX model zoo has it) trains, evaluates and
# predicts as its twin with a Flatten before the Softmax does (the loss and
# the scores read the (N, C) view, ot_pass_logits_2d): in each training mode
# the two exports hold bit-identical tensors, `eval` gives the same metrics
# and `predict` the same probabilities; the export keeps the model's own
# output, [N, C, 1, 1] with the Softmax last (in onnxtrain and, when
# $BUILD/ort has onnxruntime-node, in onnxruntime). Skipped when OT_FAST=1.
#
#   BUILD=build bash tests/cli/test_spatial_logits.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
skip_if_fast
need_cli

DATA=$BUILD/tiny_cifar
if [ ! -f "$DATA/data_batch_1.bin" ] &&
    ! "$PY" tests/fixtures/make_tiny_cifar.py "$DATA" >"$T_TMP/make.log" 2>&1; then
    fail setup "make_tiny_cifar.py: $(tail -n 1 "$T_TMP/make.log")"
    finish
fi

# x [N,3,16,16] -> Conv 3x3 (8) -> Relu -> Conv 3x3 stride 2 (8) -> Relu ->
# Conv 1x1 (10 classes: the head) -> Relu -> GlobalAveragePool -> [Flatten]
# -> Softmax(axis 1); the same weights in both files
if ! "$PY" - "$T_TMP/spatial.onnx" "$T_TMP/flat.onnx" >"$T_TMP/make.log" 2>&1 <<'EOF'; then
import sys
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(4)
w = {"c1.w": (8, 3, 3, 3), "c1.b": (8,), "c2.w": (8, 8, 3, 3), "c2.b": (8,),
     "head.w": (10, 8, 1, 1), "head.b": (10,)}
inits = [numpy_helper.from_array((0.3 * rng.standard_normal(s)).astype(np.float32), n)
         for n, s in w.items()]
for path, flat in ((sys.argv[1], False), (sys.argv[2], True)):
    nodes = [helper.make_node("Conv", ["x", "c1.w", "c1.b"], ["a"], name="c1",
                              kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["ar"], name="r1"),
             helper.make_node("Conv", ["ar", "c2.w", "c2.b"], ["b"], name="c2",
                              kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["b"], ["br"], name="r2"),
             helper.make_node("Conv", ["br", "head.w", "head.b"], ["h"], name="head",
                              kernel_shape=[1, 1]),
             helper.make_node("Relu", ["h"], ["hr"], name="r3"),
             helper.make_node("GlobalAveragePool", ["hr"], ["logits"], name="pool")]
    if flat:
        nodes.append(helper.make_node("Flatten", ["logits"], ["flat"], name="flatten", axis=1))
    nodes.append(helper.make_node("Softmax", ["flat" if flat else "logits"], ["prob"],
                                  name="prob", axis=1))
    out = ["N", 10] if flat else ["N", 10, 1, 1]
    g = helper.make_graph(nodes, "spatial_logits",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])],
                          [helper.make_tensor_value_info("prob", TensorProto.FLOAT, out)],
                          initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, path)
EOF
    fail setup "models: $(tail -n 1 "$T_TMP/make.log")"
    finish
fi
SP=$T_TMP/spatial.onnx
FL=$T_TMP/flat.onnx
"$PY" -c '
import sys, numpy as np
from onnx import numpy_helper as nh
x = np.random.default_rng(9).standard_normal((2, 3, 16, 16)).astype(np.float32)
open(sys.argv[1], "wb").write(nh.from_array(x, "x").SerializeToString())
rng = np.random.default_rng(7)
a = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
open(sys.argv[2], "wb").write(b"P6 16 16 255\n" + a.tobytes())
' "$T_TMP/x.pb" "$T_TMP/img.ppm"

ORT_OK=0
if command -v node >/dev/null 2>&1 && [ -d "$BUILD/ort/node_modules/onnxruntime-node" ]; then
    export NODE_PATH
    NODE_PATH=$(realpath "$BUILD/ort")/node_modules
    ORT_OK=1
fi

# same_stdout NAME CMD MODEL TWIN ARGS...: CMD prints the same for MODEL and
# for its Flatten twin
same_stdout() {
    local name=$1 cmd=$2 model=$3 twin=$4
    shift 4
    ot "$cmd" "$model" "$@"
    local rc_a=$T_RC out_a=$T_OUT err_a=$T_ERR
    ot "$cmd" "$twin" "$@"
    if [ "$rc_a" -ne 0 ]; then
        fail "$name" "exit $rc_a: $(first_line "$err_a")"
    elif [ "$T_RC" -ne 0 ]; then
        fail "$name" "the Flatten twin: $(describe_run)"
    elif [ "$out_a" != "$T_OUT" ]; then
        fail "$name" "differs from the Flatten twin: $(first_line "$out_a") / $(first_line "$T_OUT")"
    else
        ok "$name"
    fi
}

same_stdout "eval before training" eval "$SP" "$FL" --data "$DATA" --image-size 16 --json \
    --threads 2
same_stdout "predict before training" predict "$SP" "$FL" "$T_TMP/img.ppm" --top 10 --threads 2

# a new head (--classes) in two modes, the file's own in fine-tune
for mode in feature-extract fine-tune full; do
    swap=(--classes 10)
    [ "$mode" = fine-tune ] && swap=()
    for m in spatial flat; do
        ot finetune "$T_TMP/$m.onnx" --data "$DATA" --image-size 16 --batch-size 4 --epochs 1 \
            --max-steps 3 --mode "$mode" --seed 3 --threads 2 "${swap[@]}" \
            -o "$T_TMP/${m}_$mode.onnx"
        if [ "$T_RC" -ne 0 ] || [ ! -s "$T_TMP/${m}_$mode.onnx" ]; then
            fail "$mode/finetune $m" "$(describe_run)"
            continue 2
        fi
    done
    ok "$mode/finetune"
    a=$T_TMP/spatial_$mode.onnx
    b=$T_TMP/flat_$mode.onnx
    py_checks "$mode" '
import sys, onnx
from onnx import numpy_helper as nh
a, b = onnx.load(sys.argv[1]), onnx.load(sys.argv[2])
onnx.checker.check_model(a, full_check=True)
def ok(name, cond, why=""):
    print(("ok %s" % name) if cond else ("FAIL %s: %s" % (name, why)))
dims = [d.dim_value or d.dim_param for d in a.graph.output[0].type.tensor_type.shape.dim]
ok("export output [N, 10, 1, 1]", dims[1:] == [10, 1, 1] and len(dims) == 4, dims)
ops = [n.op_type for n in a.graph.node]
ok("export ends in its Softmax, no node added", ops == ["Conv", "Relu", "Conv", "Relu", "Conv",
   "Relu", "GlobalAveragePool", "Softmax"], ops)
ta = {t.name: nh.to_array(t) for t in a.graph.initializer}
tb = {t.name: nh.to_array(t) for t in b.graph.initializer}
diff = [n for n in tb if n not in ta or ta[n].tobytes() != tb[n].tobytes()]
ok("tensors identical to the Flatten twin", set(ta) == set(tb) and not diff, diff[:4])
c = {t.name: nh.to_array(t) for t in onnx.load(sys.argv[3]).graph.initializer}
moved = [n for n in c if n in ta and (c[n].shape != ta[n].shape or not (c[n] == ta[n]).all())]
ok("the head trained", "head.w" in moved, moved)
' "$a" "$b" "$SP"
    ot run "$a" --input "$T_TMP/x.pb" --output-dir "$T_TMP/run_$mode"
    if [ "$T_RC" -ne 0 ]; then
        fail "$mode/run" "$(describe_run)"
    elif [ "$ORT_OK" -ne 1 ]; then
        echo "skip $mode/onnxruntime: onnxruntime-node is not in $BUILD/ort"
    elif ! node tests/ort/run_ort.js "$a" "$T_TMP/x.pb" "$T_TMP/ort_$mode.json" \
        >"$T_TMP/node.log" 2>&1; then
        fail "$mode/onnxruntime" "$(tail -n 1 "$T_TMP/node.log")"
    else
        py_checks "$mode/run" '
import json, sys, numpy as np, onnx
from onnx import numpy_helper as nh
got = nh.to_array(onnx.load_tensor(sys.argv[1] + "/output_0.pb")).astype(np.float64)
o = json.load(open(sys.argv[2]))["outputs"][0]
want = np.array(o["data"], np.float64).reshape(o["dims"])
def ok(name, cond, why=""):
    print(("ok %s" % name) if cond else ("FAIL %s: %s" % (name, why)))
ok("shape [2, 10, 1, 1]", got.shape == (2, 10, 1, 1), got.shape)
if got.shape == want.shape:
    d = float(np.abs(got - want).max())
    ok("onnxruntime agrees", d <= 1e-5, "max abs diff %.3g" % d)
else:
    ok("onnxruntime agrees", False, "shape %s, onnxruntime %s" % (got.shape, want.shape))
' "$T_TMP/run_$mode" "$T_TMP/ort_$mode.json"
    fi
    same_stdout "$mode/eval" eval "$a" "$b" --data "$DATA" --image-size 16 --json --threads 2
    same_stdout "$mode/predict" predict "$a" "$b" "$T_TMP/img.ppm" --top 10 --threads 2
done
finish
