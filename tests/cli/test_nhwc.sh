#!/bin/bash
# test_nhwc.sh: models that take NHWC images (EfficientNet-Lite4's form in
# the ONNX model zoo: an input [N, H, W, 3] and a Transpose to NCHW first).
# A small CNN is written three ways with the same weights: NCHW, NHWC with the
# leading Transpose, and NHWC with a Reshape before the Transpose (found by
# its dims alone). On an image folder, `finetune` (full and feature-extract with
# the prefix cache, full with batches handed in ahead, an int8 export
# calibrated on the folder), `eval` and
# `predict` give the NHWC models exactly what they give the NCHW one:
# bit-identical trained tensors, the same scores and probabilities; the NHWC
# exports keep their NHWC input and leading Transpose (onnxtrain.layout says
# NHWC; NCHW for the NCHW one), and `run` on them
# gives the NCHW export's output for the transposed tensor; `verify --data`
# runs the folder through onnxtrain and onnxruntime (skipped without node).
# Skipped when OT_FAST=1.
#
#   BUILD=build bash tests/cli/test_nhwc.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
skip_if_fast
need_cli

D=$T_TMP
if ! "$PY" - "$D" >"$T_TMP/make.log" 2>&1 <<'EOF'; then
import os, sys
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

d = sys.argv[1]
rng = np.random.default_rng(5)
S = 32


def init(name, a):
    return numpy_helper.from_array(np.asarray(a, np.float32), name)


inits = [
    init("w1", rng.normal(0, 0.3, (8, 3, 3, 3))), init("b1", rng.normal(0, 0.1, 8)),
    init("g1", 0.5 + rng.random(8)), init("be1", rng.normal(0, 0.1, 8)),
    init("m1", rng.normal(0, 0.1, 8)), init("v1", 0.5 + rng.random(8)),
    init("w2", rng.normal(0, 0.2, (16, 8, 3, 3))), init("b2", rng.normal(0, 0.1, 16)),
    init("fc_w", rng.normal(0, 0.3, (3, 16))), init("fc_b", rng.normal(0, 0.1, 3)),
]
body = [
    helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
    helper.make_node("BatchNormalization", ["c1", "g1", "be1", "m1", "v1"], ["n1"], name="bn1"),
    helper.make_node("Relu", ["n1"], ["r1"], name="relu1"),
    helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1],
                     strides=[2, 2]),
    helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
    helper.make_node("GlobalAveragePool", ["r2"], ["p"], name="pool"),
    helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
    helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
]
out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])


def save(name, first, shape, extra_inits=()):
    g = helper.make_graph(first + body, name,
                          [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
                          [out], inits + list(extra_inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(d, name))


save("nchw.onnx", [helper.make_node("Identity", ["image"], ["x"], name="in")], ["N", 3, S, S])
save("nhwc.onnx", [helper.make_node("Transpose", ["image"], ["x"], name="to_nchw",
                                    perm=[0, 3, 1, 2])], ["N", S, S, 3])
save("nhwc_reshape.onnx", [helper.make_node("Reshape", ["image", "shape"], ["xr"], name="same"),
                           helper.make_node("Transpose", ["xr"], ["x"], name="to_nchw",
                                            perm=[0, 3, 1, 2])],
     ["N", S, S, 3], [numpy_helper.from_array(np.array([-1, S, S, 3], np.int64), "shape")])
# an image folder: three classes of 6 PNG images of several sizes
for c, name in enumerate(["cat", "dog", "fox"]):
    os.makedirs(os.path.join(d, "data", name), exist_ok=True)
    for i in range(6):
        a = np.clip(rng.normal(60 + 60 * c, 40, (36 + 2 * i, 40, 3)), 0, 255).astype(np.uint8)
        a[:, : 10 + 3 * c, c] = 250  # something per class that a channel mix-up would lose
        Image.fromarray(a).save(os.path.join(d, "data", name, "%d.png" % i))
x = rng.normal(0, 1, (2, 3, S, S)).astype(np.float32)
open(os.path.join(d, "x_nchw.pb"), "wb").write(numpy_helper.from_array(x, "image").SerializeToString())
open(os.path.join(d, "x_nhwc.pb"), "wb").write(
    numpy_helper.from_array(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), "image").SerializeToString())
EOF
    fail setup "fixtures: $(tail -n 1 "$T_TMP/make.log")"
    finish
fi
DATA=$D/data

# SAME_INITS A B: the initializers the two files share are bit-identical
SAME_INITS='
import sys, onnx
from onnx import numpy_helper
a, b = onnx.load(sys.argv[1]), onnx.load(sys.argv[2])
ta = {t.name: numpy_helper.to_array(t) for t in a.graph.initializer}
tb = {t.name: numpy_helper.to_array(t) for t in b.graph.initializer}
diff = [n for n in ta if n in tb and (ta[n].shape != tb[n].shape or ta[n].tobytes() != tb[n].tobytes())]
n = len([n for n in ta if n in tb])
print("FAIL %s: differ: %s" % (sys.argv[3], diff[:5]) if diff or n < 8 else "ok %s (%d tensors)" % (sys.argv[3], n))
'
# NHWC_KEPT FILE: the export still takes [N, 32, 32, 3], transposes, and its
# metadata says NHWC
NHWC_KEPT='
import sys, onnx
m = onnx.load(sys.argv[1])
i = m.graph.input[0]
dims = [d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim]
ops = [n.op_type for n in m.graph.node]
meta = {p.key: p.value for p in m.metadata_props}.get("onnxtrain.layout")
ok = i.name == "image" and dims[1:] == [32, 32, 3] and "Transpose" in ops and meta == "NHWC"
print("ok %s: input %s, %s" % (sys.argv[2], dims, meta) if ok else
      "FAIL %s: input %s, ops %s, onnxtrain.layout %s" % (sys.argv[2], dims, ops[:4], meta))
'

FT=(finetune --data "$DATA" --classes 3 --image-size 32 --batch-size 4 --seed 1 --threads 2)
for mode in full feature-extract; do
    for m in nchw nhwc nhwc_reshape; do
        ot "${FT[@]}" "$D/$m.onnx" --mode "$mode" --epochs 2 -o "$D/${m}_$mode.onnx"
        if [ "$T_RC" -ne 0 ] || [ ! -s "$D/${m}_$mode.onnx" ]; then
            fail "finetune $m --mode $mode" "$(describe_run)"
            continue
        fi
        ok "finetune $m --mode $mode"
        # feature-extract's second epoch reads the prefix cache
        if [ "$mode" = feature-extract ] && ! grep -q "^prefix cache: " "$T_TMP/stdout"; then
            fail "finetune $m --mode $mode: cache" "$(tail -n 3 "$T_TMP/stdout")"
        fi
        if [ "$m" = nchw ]; then
            py_checks "$m $mode" 'import sys, onnx
meta = {p.key: p.value for p in onnx.load(sys.argv[1]).metadata_props}.get("onnxtrain.layout")
print(("ok %s" if meta == "NCHW" else "FAIL %s: " + str(meta)) % "layout NCHW")' "$D/${m}_$mode.onnx"
            continue
        fi
        py_checks "$m $mode" "$SAME_INITS" "$D/nchw_$mode.onnx" "$D/${m}_$mode.onnx" \
            "trained tensors as NCHW's"
        py_checks "$m $mode" "$NHWC_KEPT" "$D/${m}_$mode.onnx" "export keeps NHWC"
    done
done

# batches handed in ahead of each step (as on a GPU): the same training
ONNXTRAIN_PREFETCH=1 ot "${FT[@]}" "$D/nhwc.onnx" --mode full --epochs 2 -o "$D/nhwc_ahead.onnx"
if [ "$T_RC" -eq 0 ]; then
    py_checks "nhwc ONNXTRAIN_PREFETCH=1" "$SAME_INITS" "$D/nchw_full.onnx" "$D/nhwc_ahead.onnx" \
        "trained tensors as NCHW's"
else
    fail "finetune nhwc ONNXTRAIN_PREFETCH=1" "$(describe_run)"
fi

# same_run NAME NCHW_MODEL NHWC_MODEL: `run` of the NHWC model on the
# transposed tensor writes the bytes the NCHW model writes
same_run() {
    ot run "$2" --input "$D/x_nchw.pb" --output-dir "$D/out_a"
    local a=$T_RC
    ot run "$3" --input "$D/x_nhwc.pb" --output-dir "$D/out_b"
    if [ "$a" -eq 0 ] && [ "$T_RC" -eq 0 ] && cmp -s "$D/out_a/output_0.pb" "$D/out_b/output_0.pb"
    then ok "$1"; else fail "$1" "$(describe_run)"; fi
    rm -rf "$D/out_a" "$D/out_b"
}

for m in nhwc nhwc_reshape; do
    same_run "run $m: the NCHW export's output" "$D/nchw_full.onnx" "$D/${m}_full.onnx"
done

# eval and predict: the same text for the NHWC exports as for the NCHW one
IMGS=("$DATA/cat/0.png" "$DATA/dog/3.png" "$DATA/fox/5.png")
ot eval "$D/nchw_full.onnx" --data "$DATA" --threads 2 --json
want_eval=$T_OUT
ot predict "$D/nchw_full.onnx" "${IMGS[@]}" --top 3 --threads 2
want_pred=$T_OUT
if [ -z "$want_eval" ] || [ -z "$want_pred" ]; then
    fail "eval/predict NCHW" "$(describe_run)"
fi
for m in nhwc nhwc_reshape; do
    ot eval "$D/${m}_full.onnx" --data "$DATA" --threads 2 --json
    got=${T_OUT//${m}_full.onnx/nchw_full.onnx}
    if [ "$T_RC" -eq 0 ] && [ -n "$T_OUT" ] && [ "$got" = "$want_eval" ]; then
        ok "eval $m: NCHW's scores"; else fail "eval $m" "$(describe_run); $(first_line "$T_OUT")"; fi
    ot predict "$D/${m}_full.onnx" "${IMGS[@]}" --top 3 --threads 2
    if [ "$T_RC" -eq 0 ] && [ -n "$T_OUT" ] && [ "$T_OUT" = "$want_pred" ]; then
        ok "predict $m: NCHW's probabilities"; else fail "predict $m" "$(describe_run)"; fi
done

# verify --data: the folder's images reach onnxtrain and onnxruntime as NHWC
if command -v node >/dev/null 2>&1 && ensure_ort; then
    NODE_PATH=$(realpath "$BUILD/ort")/node_modules
    export NODE_PATH
    ot verify "$D/nhwc_full.onnx" --data "$DATA"
    if [ "$T_RC" -eq 0 ] && matches "$T_OUT" "onnxruntime  ran: max abs diff&18/18"; then
        ok "verify --data: onnxruntime agrees"
    else
        fail "verify --data" "$(describe_run); $(grep -m 1 onnxruntime "$T_TMP/stdout")"
    fi
else
    echo "skip verify --data: onnxruntime: ${ENSURE_ORT_ERR:-node is not installed}"
fi

# int8: calibrated on the folder through the NHWC input
ot "${FT[@]}" "$D/nchw.onnx" --mode feature-extract --epochs 1 --int8 --calib-data "$DATA" \
    -o "$D/nchw_int8.onnx"
a=$T_RC
ot "${FT[@]}" "$D/nhwc.onnx" --mode feature-extract --epochs 1 --int8 --calib-data "$DATA" \
    -o "$D/nhwc_int8.onnx"
if [ "$a" -eq 0 ] && [ "$T_RC" -eq 0 ]; then
    same_run "int8: same calibration, same output" "$D/nchw_int8.onnx" "$D/nhwc_int8.onnx"
else
    fail "int8 finetune" "$(describe_run)"
fi

# an NHWC model that takes one channel, given RGB-only data: the channels named
"$PY" - "$D/nhwc.onnx" "$D/nhwc_gray.onnx" <<'EOF'
import sys, onnx
from onnx import numpy_helper
m = onnx.load(sys.argv[1])
m.graph.input[0].type.tensor_type.shape.dim[3].dim_value = 1
for t in m.graph.initializer:
    if t.name == "w1":
        t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t)[:, :1].copy(), "w1"))
onnx.save(m, sys.argv[2])
EOF
expect_error "NHWC, 1 channel: says the channels" "takes 1 channel&gives 3" \
    "${FT[@]}" "$D/nhwc_gray.onnx" --mode full --epochs 1 -o "$D/gray.onnx"

finish
