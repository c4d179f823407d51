#!/bin/bash
# test_quant.sh: float16 and int8 exports (convert --fp16/--int8, finetune
# --int8/--qat) on a ResNet-18 fine-tuned at 32x32 on the tiny CIFAR set.
#   - int8: the QDQ structure (per-channel symmetric int8 weights with zero
#     point 0 and axis 0, scale and zero point initializers, per-tensor Q/DQ
#     on activations, opset >= 13, size <= 0.27x), the report's top-1 lines;
#   - fp16: no Cast reads a Cast, float32 I/O by default and float16 with
#     --no-keep-io-types, weights in float16;
#   - onnxruntime runs the float32, float16 and int8 files on the test split:
#     top-1 agreement with float32 (printed), no NaN, and onnxtrain's own run
#     of the int8 file agrees with onnxruntime's;
#   - a model whose activations overflow float16: with --calib-data the
#     overflowing nodes stay float32 and the output is finite, without it not;
#   - verify --data on the tiny CIFAR images (fp16 against float32): all
#     test images, the reference's top-1 accuracy equal to eval's,
#     onnxruntime's equal to the one computed from its own outputs;
#     --images, --data-classes;
#   - calibration memory: RSS of a 1024-image calibration (more activations
#     than 64 MB) against a 64-image one;
#   - finetune --qat writes a QDQ model and reports float32, int8 before and
#     after QAT; refusals.
# onnxruntime checks need node/npm (tests/cli/lib.sh ensure_ort); without
# them they are skipped and said so. Skipped when OT_FAST=1.
#
#   BUILD=build bash tests/cli/test_quant.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
skip_if_fast
need_cli
T_TIMEOUT=${T_TIMEOUT_MODELS:-600}

FX=$BUILD/fixtures
DATA=$BUILD/tiny_cifar
if ! "$PY" tests/fixtures/make_resnet18.py "$FX" >"$T_TMP/make.log" 2>&1 ||
    ! "$PY" tests/fixtures/make_tiny_cifar.py "$DATA" >>"$T_TMP/make.log" 2>&1 ||
    ! "$PY" tests/fixtures/make_tiny_cifar.py "$T_TMP/big" 1024 16 >>"$T_TMP/make.log" 2>&1; then
    fail setup "fixtures: $(tail -n 1 "$T_TMP/make.log")"
    finish
fi
FT=$T_TMP/ft.onnx
ot finetune "$FX/resnet18_eval.onnx" --data "$DATA" --classes 10 --image-size 32 --epochs 2 \
    --batch-size 16 --threads 2 --seed 1 -o "$FT"
[ "$T_RC" -eq 0 ] && ok "finetune (the float32 model)" || { fail finetune "$(describe_run)"; finish; }

# ---------------------------------------------------------------- int8
ot convert "$FT" "$T_TMP/int8.onnx" --int8 --calib-data "$DATA" --calib-method entropy
if [ "$T_RC" -eq 0 ] && matches "$T_OUT" "calibration: 96 images" &&
    matches "$T_OUT" "int8: top-1 &float32&test split"; then
    ok "convert --int8 reports calibration and held-out top-1"
else
    fail "convert --int8" "$(describe_run); stdout: $T_OUT"
fi
echo "$T_OUT" | sed 's/^/     /'
for m in minmax percentile; do
    expect_rc "convert --int8 --calib-method $m" 0 convert "$FT" "$T_TMP/int8_$m.onnx" --int8 \
        --calib-data "$DATA" --calib-method "$m" --calib-images 32
done
py_checks int8-structure '
import os, sys
import numpy as np, onnx
from onnx import numpy_helper
fp32, q = sys.argv[1], sys.argv[2]
m = onnx.load(q)
onnx.checker.check_model(m)
opset = [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")][0]
print("ok opset" if opset >= 13 else "FAIL opset: %d" % opset)
inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
prod = {o: n for n in m.graph.node for o in n.output}
bad = []
n_w = 0
for n in m.graph.node:
    if n.op_type not in ("Conv", "Gemm"):
        continue
    dq = prod.get(n.input[1])
    if dq is None or dq.op_type != "DequantizeLinear":
        bad.append(n.name + ": weight not from DequantizeLinear"); continue
    w, s, z = (inits.get(x) for x in dq.input)
    axis = [a.i for a in dq.attribute if a.name == "axis"]
    if w is None or s is None or z is None:
        bad.append(n.name + ": weight, scale or zero point not an initializer"); continue
    if w.dtype != np.int8 or z.dtype != np.int8 or np.any(z != 0):
        bad.append(n.name + ": not int8 with zero point 0")
    if axis != [0] or s.shape != (w.shape[0],):
        bad.append(n.name + ": not one scale per output channel on axis 0")
    if np.abs(w.astype(np.int32)).max() > 127 or w.min() < -127:
        bad.append(n.name + ": -128 used (not symmetric)")
    if np.any(np.abs(w.reshape(w.shape[0], -1)).max(1) != 127):
        bad.append(n.name + ": a channel does not reach 127 (scale is not max|w|/127)")
    x = prod.get(n.input[0])
    if x is None or x.op_type != "DequantizeLinear" or prod.get(x.input[0]).op_type != "QuantizeLinear":
        bad.append(n.name + ": input not a Q/DQ pair")
    elif inits[x.input[1]].shape != () or inits[x.input[2]].dtype != np.int8:
        bad.append(n.name + ": activation not per tensor int8")
    n_w += 1
print("ok weights %d per-channel symmetric" % n_w if not bad and n_w >= 20 else
      "FAIL weights: %s (%d checked)" % ("; ".join(bad[:3]), n_w))
ratio = os.path.getsize(q) / os.path.getsize(fp32)
print("ok size %.3f of float32" % ratio if ratio <= 0.27 else "FAIL size: %.3f of float32" % ratio)
' "$FT" "$T_TMP/int8.onnx"

# ---------------------------------------------------------------- fp16
ot convert "$FT" "$T_TMP/fp16.onnx" --fp16
[ "$T_RC" -eq 0 ] && ok "convert --fp16" || fail "convert --fp16" "$(describe_run)"
ot convert "$FT" "$T_TMP/fp16io.onnx" --fp16 --no-keep-io-types
[ "$T_RC" -eq 0 ] && ok "convert --fp16 --no-keep-io-types" || fail "--no-keep-io-types" "$(describe_run)"
py_checks fp16-structure '
import sys
import numpy as np, onnx
F, H = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
for path, io in ((sys.argv[1], F), (sys.argv[2], H)):
    tag = "keep" if io == F else "no-keep"
    m = onnx.load(path)
    onnx.checker.check_model(m)
    prod = {o: n for n in m.graph.node for o in n.output}
    chains = [n.name for n in m.graph.node if n.op_type == "Cast" and
              n.input[0] in prod and prod[n.input[0]].op_type == "Cast"]
    print("ok %s: no Cast of a Cast" % tag if not chains else "FAIL %s casts: %s" % (tag, chains))
    types = [v.type.tensor_type.elem_type for v in list(m.graph.input) + list(m.graph.output)]
    print("ok %s: io types" % tag if all(t == io for t in types) else "FAIL %s io: %s" % (tag, types))
    w = [t for t in m.graph.initializer if t.data_type in (F, H)]
    n16 = sum(t.data_type == H for t in w)
    print("ok %s: %d of %d weights float16" % (tag, n16, len(w)) if n16 >= len(w) - 1 else
          "FAIL %s: %d of %d weights float16" % (tag, n16, len(w)))
' "$T_TMP/fp16.onnx" "$T_TMP/fp16io.onnx"

# A model whose activations overflow float16 after a Mul by 30000.
"$PY" -c '
import sys, onnx
from onnx import helper as h, TensorProto as T
x = h.make_tensor_value_info("image", T.FLOAT, ["N", 3, 32, 32])
y = h.make_tensor_value_info("out", T.FLOAT, ["N", 3, 32, 32])
g = h.make_graph([h.make_node("Mul", ["image", "k"], ["big"], name="up"),
                  h.make_node("Relu", ["big"], ["r"], name="relu"),
                  h.make_node("Mul", ["r", "s"], ["out"], name="down")], "ovf", [x], [y],
                 [h.make_tensor("k", T.FLOAT, [], [30000.0]), h.make_tensor("s", T.FLOAT, [], [0.001])])
onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 13)]), sys.argv[1])
' "$T_TMP/ovf.onnx"
ot convert "$T_TMP/ovf.onnx" "$T_TMP/ovf16.onnx" --fp16 --calib-data "$DATA"
[ "$T_RC" -eq 0 ] && ok "convert --fp16 --calib-data (overflowing model)" ||
    fail "convert --fp16 --calib-data" "$(describe_run)"
ot convert "$T_TMP/ovf.onnx" "$T_TMP/ovf16n.onnx" --fp16
[ "$T_RC" -eq 0 ] && ok "convert --fp16 (overflowing model, no data)" ||
    fail "convert --fp16 ovf" "$(describe_run)"
py_checks fp16-overflow '
import sys, onnx
H = onnx.TensorProto.FLOAT16
for path, want in ((sys.argv[1], False), (sys.argv[2], True)):
    m = onnx.load(path)
    k = [t for t in m.graph.initializer if t.name == "k"][0]
    tag = "calibrated: up stays float32" if not want else "uncalibrated: up in float16"
    print(("ok " if (k.data_type == H) == want else "FAIL ") + tag)
' "$T_TMP/ovf16.onnx" "$T_TMP/ovf16n.onnx"

# ---------------------------------------------------------------- onnxruntime
"$PY" -c '
import sys, numpy as np
from onnx import numpy_helper
raw = np.fromfile(sys.argv[1], np.uint8).reshape(-1, 3073)
x = raw[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255
x = (x - np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]) / \
    np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]
open(sys.argv[2], "wb").write(numpy_helper.from_array(x, "input").SerializeToString())
open(sys.argv[3], "wb").write(numpy_helper.from_array(x.astype(np.float16), "input").SerializeToString())
' "$DATA/test_batch.bin" "$T_TMP/in.pb" "$T_TMP/in16.pb"
if ! ensure_ort; then
    echo "skipped: onnxruntime checks ($ENSURE_ORT_ERR)"
else
    export NODE_PATH=$(realpath "$BUILD/ort")/node_modules
    ort_ok=1
    for m in ft int8 fp16 ovf ovf16 ovf16n; do
        input=$T_TMP/in.pb
        if ! node tests/ort/run_ort.js "$T_TMP/$m.onnx" "$input" "$T_TMP/$m.json" 2>"$T_TMP/ort.err"; then
            fail "onnxruntime runs $m" "$(tail -n 1 "$T_TMP/ort.err")"
            ort_ok=0
        fi
    done
    node tests/ort/run_ort.js "$T_TMP/fp16io.onnx" "$T_TMP/in16.pb" "$T_TMP/fp16io.json" \
        2>"$T_TMP/ort.err" || { fail "onnxruntime runs fp16io" "$(tail -n 1 "$T_TMP/ort.err")"; ort_ok=0; }
    ot run "$T_TMP/int8.onnx" --input "$T_TMP/in.pb" -o "$T_TMP/ot_int8"
    [ "$T_RC" -eq 0 ] || { fail "onnxtrain runs int8" "$(describe_run)"; ort_ok=0; }
    [ "$ort_ok" = 1 ] && py_checks ort '
import json, sys
import numpy as np, onnx
from onnx import numpy_helper
d = sys.argv[1]
def ort(name):
    o = json.load(open("%s/%s.json" % (d, name)))["outputs"][0]
    v = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}
    return np.array([v.get(x, x) for x in o["data"]], np.float64).reshape(o["dims"])
ref = ort("ft")
top = ref.argmax(1)
for name, need in (("fp16", 0.99), ("fp16io", 0.99), ("int8", 0.8)):
    y = ort(name)
    agree = float((y.argmax(1) == top).mean())
    print("%s %s: top-1 agreement with float32 %.4f, max abs diff %.3g" %
          ("ok" if agree >= need and np.isfinite(y).all() else "FAIL", name, agree,
           np.abs(y - ref).max()))
t = onnx.TensorProto()
t.ParseFromString(open(d + "/ot_int8/output_0.pb", "rb").read())
own = numpy_helper.to_array(t)
agree = float((own.argmax(1) == ort("int8").argmax(1)).mean())
print("%s int8 onnxtrain vs onnxruntime: top-1 agreement %.4f" % ("ok" if agree >= 0.95 else "FAIL", agree))
ref = ort("ovf")
y = ort("ovf16")
print("ok overflow kept float32: max rel diff %.3g" % (np.abs(y - ref).max() / np.abs(ref).max())
      if np.isfinite(y).all() and np.abs(y - ref).max() <= 1e-2 * np.abs(ref).max()
      else "FAIL overflow kept float32: not finite or off")
' "$T_TMP"
fi

# ------------------------------------------------- verify on the images
# verify --data on an image data set: the tiny CIFAR test split through
# onnxtrain's loaders with the model's preprocessing, in batches; the
# reference's top-1 accuracy must be eval's, onnxruntime's on the float16
# file the one computed here from the same images (in.pb, labels of
# test_batch.bin), its agreement with the reference near 100%
if [ "${ort_ok:-0}" = 1 ]; then
    ot verify "$T_TMP/fp16.onnx" --reference "$FT" --data "$DATA" --tolerance 0.05
    printf '%s\n' "$T_OUT" >"$T_TMP/verify.out"
    sed 's/^/     /' "$T_TMP/verify.out"
    if [ "$T_RC" -eq 0 ] && matches "$T_OUT" "inputs: &images of the test split" &&
        matches "$T_OUT" "onnxruntime&ran: max abs diff&top-1 agreement&top-1 accuracy" &&
        matches "$T_OUT" "opencv dnn&did not load&the lint predicts this" &&
        matches "$T_OUT" "linted only: tensorrt, openvino"; then
        ok "verify --data images: fp16 against float32"
    else
        fail "verify --data images" "$(describe_run); $(tr '\n' '|' <"$T_TMP/verify.out")"
    fi
    ot eval "$FT" --data "$DATA" --json
    printf '%s\n' "$T_OUT" >"$T_TMP/eval.json"
    py_checks verify-data '
import json, re, sys
import numpy as np
d, batch = sys.argv[1], sys.argv[2]
out = open(d + "/verify.out").read()
labels = np.fromfile(batch, np.uint8).reshape(-1, 3073)[:, 0]
o = json.load(open(d + "/fp16.json"))["outputs"][0]
y = np.array(o["data"], np.float64).reshape(o["dims"])
want = float((y.argmax(1) == labels).mean())
m = re.search(r"onnxruntime\s+ran:.*top-1 agreement (\d+)/(\d+).*top-1 accuracy ([0-9.]+)", out)
r = re.search(r"reference\s+top-1 accuracy ([0-9.]+) on (\d+) labelled", out)
ev = json.load(open(d + "/eval.json"))
if not m or not r:
    print("FAIL parse: %r" % out[:300])
else:
    n = len(labels)
    print(("ok" if int(m.group(2)) == n == int(r.group(2)) else "FAIL") + " all %d test images" % n)
    print(("ok" if abs(float(m.group(3)) - want) <= 1.0 / n + 1e-9 else "FAIL") +
          " onnxruntime top-1 accuracy %s, computed here %.4f" % (m.group(3), want))
    print(("ok" if abs(float(r.group(1)) - ev["top1"]) < 1e-4 else "FAIL") +
          " reference top-1 accuracy %s, eval %.4f" % (r.group(1), ev["top1"]))
    print(("ok" if int(m.group(1)) >= 0.97 * n else "FAIL") +
          " fp16 agreement %s/%s" % (m.group(1), m.group(2)))
' "$T_TMP" "$DATA/test_batch.bin"
    ot verify "$FT" --data "$DATA" --images 10 --data-classes 0-4
    if [ "$T_RC" -eq 0 ] && matches "$T_OUT" "inputs: 10 images of the test split" &&
        matches "$T_OUT" "onnxruntime&top-1 agreement 10/10"; then
        ok "verify --data images: --images, --data-classes"
    else
        fail "verify --images" "$(describe_run); $(printf '%s' "$T_OUT" | tr '\n' '|')"
    fi
    expect_usage "verify --images without images" verify "$FT" --images 10
fi

# ---------------------------------------------------------------- memory
# RSS of calibrating on 64 and on 1024 images: the histograms stream, so the
# larger run (more activations than the 64 MB cap would hold) costs no more.
py_checks calib-memory '
import re, subprocess, sys
cli, model, data, tmp = sys.argv[1:5]
# the largest RSS of the convert run alone: a fresh python that waits on it
WAIT = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, "
        "text=True); sys.stdout.write(r.stdout); sys.stderr.write(r.stderr); "
        "print(\"RSS\", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
        "sys.exit(r.returncode)")
def run(n):
    r = subprocess.run([sys.executable, "-c", WAIT, cli, "convert", model, "%s/m%d.onnx" % (tmp, n),
                        "--int8", "--calib-data", data, "--calib-images", str(n)],
                       capture_output=True, text=True)
    if r.returncode:
        raise SystemExit("convert failed: " + r.stderr.strip().splitlines()[-1])
    seen = float(re.search(r"([0-9.]+) MB of activations seen", r.stdout).group(1))
    hist = float(re.search(r"histograms ([0-9.]+) MB", r.stdout).group(1))
    rss = int(re.search(r"RSS ([0-9]+)", r.stderr).group(1)) / 1024
    return seen, hist, rss
s1, h1, r1 = run(64)
s2, h2, r2 = run(1024)
print("%s 1024 images: %.0f MB of activations seen (over 64 MB)" % ("ok" if s2 > 64 else "FAIL", s2))
print("%s histograms %.1f MB (under 64 MB)" % ("ok" if h2 < 64 else "FAIL", h2))
print("%s RSS %.0f MB for 1024 images, %.0f MB for 64 (grew %.1f MB)" %
      ("ok" if r2 - r1 < 16 else "FAIL", r2, r1, r2 - r1))
' "$OT" "$FT" "$T_TMP/big" "$T_TMP"

# ---------------------------------------------------------------- QAT, refusals
ot finetune "$FX/resnet18_eval.onnx" --data "$DATA" --classes 10 --image-size 32 --epochs 1 \
    --batch-size 16 --threads 2 --seed 1 --qat --calib-images 32 --json -o "$T_TMP/qat.onnx"
if [ "$T_RC" -eq 0 ] && matches "$T_OUT" '"qat": {&"int8_ptq_top1"&"int8_qat_top1"' &&
    matches "$T_ERR" "test, int8 before QAT" && matches "$T_ERR" "test, int8 after QAT"; then
    ok "finetune --qat reports float32, int8 before and after QAT"
else
    fail "finetune --qat" "$(describe_run); $(echo "$T_OUT" | tail -n 1)"
fi
py_checks qat-export '
import sys, onnx
m = onnx.load(sys.argv[1])
ops = {n.op_type for n in m.graph.node}
dom = {n.domain for n in m.graph.node}
print("ok QDQ model" if {"QuantizeLinear", "DequantizeLinear"} <= ops else "FAIL QDQ: %s" % ops)
print("ok no private ops" if dom <= {"", "ai.onnx"} else "FAIL domains: %s" % dom)
' "$T_TMP/qat.onnx"
expect_error "--int8 without --calib-data" "--calib-data" convert "$FT" "$T_TMP/x.onnx" --int8
expect_error "--fp16 with --int8" "exclude" convert "$FT" "$T_TMP/x.onnx" --int8 --fp16 \
    --calib-data "$DATA"
expect_error "--int8 below opset 13" "opset 13" convert "$FX/resnet18_zoo7.onnx" \
    "$T_TMP/x.onnx" --int8 --calib-data "$DATA" --calib-images 8
expect_usage "--qat with --fp16" finetune "$FX/resnet18_eval.onnx" --data "$DATA" --qat --fp16 \
    -o "$T_TMP/x.onnx"
[ ! -e "$T_TMP/x.onnx" ] && ok "refusals write nothing" || fail "refusals" "x.onnx was written"
finish
