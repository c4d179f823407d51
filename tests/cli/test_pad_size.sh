#!/bin/bash
# test_pad_size.sh: a model with a constant Pad trains at an image size other
# than the one its file declares (the zoo's files declare [1, 3, 224, 224]):
# Pad's gradient trims the padding from the size the graph runs at, not from
# the declared one. A file declaring x [1, 3, 16, 16] and its twin declaring
# [N, 3, H, W] (same weights) train 3 full-mode steps at 24x24 (the twin was
# refused before: "a Pad along an axis of dynamic size"); both succeed,
# their exports hold bit-identical tensors, and the first convolution moved.
# Skipped when OT_FAST=1.
#
#   BUILD=build bash tests/cli/test_pad_size.sh
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

# x -> Conv 1x1 (4) -> Pad (H: 1 before, 2 after; W: 2 before, 1 after) ->
# Conv 3x3 (8) -> Relu -> GlobalAveragePool -> Flatten -> Gemm (10 classes):
# the Pad sits between two trained layers, so its gradient is needed
if ! "$PY" - "$T_TMP/fixed.onnx" "$T_TMP/dynamic.onnx" >"$T_TMP/make.log" 2>&1 <<'EOF'; then
import sys
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(5)
inits = [numpy_helper.from_array(np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64), "pads"),
         numpy_helper.from_array((0.5 * rng.standard_normal((4, 3, 1, 1))).astype(np.float32),
                                 "c0.w"),
         numpy_helper.from_array((0.3 * rng.standard_normal((8, 4, 3, 3))).astype(np.float32),
                                 "c.w"),
         numpy_helper.from_array((0.1 * rng.standard_normal(8)).astype(np.float32), "c.b"),
         numpy_helper.from_array((0.3 * rng.standard_normal((10, 8))).astype(np.float32), "fc.w"),
         numpy_helper.from_array(np.zeros(10, np.float32), "fc.b")]
for path, shape in ((sys.argv[1], [1, 3, 16, 16]), (sys.argv[2], ["N", 3, "H", "W"])):
    nodes = [helper.make_node("Conv", ["x", "c0.w"], ["c0"], name="conv0", kernel_shape=[1, 1]),
             helper.make_node("Pad", ["c0", "pads"], ["p"], name="pad", mode="constant"),
             helper.make_node("Conv", ["p", "c.w", "c.b"], ["a"], name="conv",
                              kernel_shape=[3, 3]),
             helper.make_node("Relu", ["a"], ["ar"], name="relu"),
             helper.make_node("GlobalAveragePool", ["ar"], ["g"], name="pool"),
             helper.make_node("Flatten", ["g"], ["f"], name="flatten", axis=1),
             helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["logits"], name="fc", transB=1)]
    out = [shape[0], 10]
    g = helper.make_graph(nodes, "pad_size",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, out)],
                          initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, path)
EOF
    fail setup "models: $(tail -n 1 "$T_TMP/make.log")"
    finish
fi

for m in fixed dynamic; do
    ot finetune "$T_TMP/$m.onnx" --data "$DATA" --image-size 24 --batch-size 4 --epochs 1 \
        --max-steps 3 --mode full --seed 3 --threads 2 -o "$T_TMP/${m}_24.onnx"
    if [ "$T_RC" -ne 0 ] || [ ! -s "$T_TMP/${m}_24.onnx" ]; then
        fail "finetune $m at 24x24" "$(describe_run)"
        finish
    fi
    ok "finetune $m at 24x24"
done
py_checks "exports" '
import sys, onnx
from onnx import numpy_helper as nh
def tensors(p):
    return {t.name: nh.to_array(t) for t in onnx.load(p).graph.initializer}
a, b, orig = tensors(sys.argv[1]), tensors(sys.argv[2]), tensors(sys.argv[3])
def ok(name, cond, why=""):
    print(("ok %s" % name) if cond else ("FAIL %s: %s" % (name, why)))
diff = [n for n in b if n not in a or a[n].tobytes() != b[n].tobytes()]
ok("tensors identical to the dynamic twin", set(a) == set(b) and not diff, diff[:4])
ok("the convolution before the Pad trained", a["c0.w"].tobytes() != orig["c0.w"].tobytes())
' "$T_TMP/fixed_24.onnx" "$T_TMP/dynamic_24.onnx" "$T_TMP/fixed.onnx"
finish
