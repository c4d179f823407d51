#!/bin/bash
# test_predict.sh: `onnxtrain predict` on a model fine-tuned for two steps on
# the tiny CIFAR-format data set (tests/fixtures/make_tiny_cifar.py) from the
# ResNet-18 fixture: class names from the metadata, probabilities that sum to
# 1 in descending order, JSON, agreement with `onnxtrain run` on the same
# preprocessed tensor (the resize checked against PIL for an image of another
# size), batches of more than one executor run, a model without metadata, a
# trailing Softmax, and errors that name the file. Skipped when OT_FAST=1.
#
#   BUILD=build bash tests/cli/test_predict.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
skip_if_fast
need_cli

FX=$BUILD/fixtures
DATA=$T_TMP/tiny_cifar
M=$T_TMP/m.onnx
if ! "$PY" tests/fixtures/make_resnet18.py "$FX" >"$T_TMP/make.log" 2>&1 ||
    ! "$PY" tests/fixtures/make_tiny_cifar.py "$DATA" >>"$T_TMP/make.log" 2>&1; then
    fail setup "fixtures: $(tail -n 1 "$T_TMP/make.log")"
    finish
fi
ot finetune "$FX/resnet18_bn.onnx" --data "$DATA" --classes 10 --image-size 32 --epochs 1 \
    --max-steps 2 --threads 2 -o "$M"
if [ "$T_RC" -ne 0 ] || [ ! -s "$M" ]; then
    fail setup "finetune: $(describe_run)"
    finish
fi

# Images: a 32x32 PPM (the model's size: no resize), a 48x40 PGM (resized
# and cropped, gray replicated), a 16-bit 30x20 PPM (enlarged), and, when PIL
# is there, a PNG and a JPEG of the first.
IMG=$T_TMP/img
mkdir -p "$IMG"
"$PY" - "$IMG" <<'EOF'
import sys, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(7)
a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
open(d + "/a.ppm", "wb").write(b"P6\n# made by test_predict.sh\n32 32\n255\n" + a.tobytes())
b = rng.integers(0, 256, (40, 48), dtype=np.uint8)
open(d + "/b.pgm", "wb").write(b"P5 48 40 255\n" + b.tobytes())
c = rng.integers(0, 65536, (20, 30, 3), dtype=np.uint16)
open(d + "/c.ppm", "wb").write(b"P6 30 20 65535\n" + c.astype(">u2").tobytes())
open(d + "/trunc.ppm", "wb").write(b"P6 32 32 255\n" + a.tobytes()[:1000])
open(d + "/zero.ppm", "wb").write(b"P6 0 32 255\n")
open(d + "/junk.txt", "wb").write(b"hello, not an image\n")
open(d + "/plain.ppm", "wb").write(b"P3 1 1 255\n1 2 3\n")
try:
    from PIL import Image
    Image.fromarray(a).save(d + "/a.png")
    Image.fromarray(a).save(d + "/a.jpg", quality=95)
except ImportError:
    pass
EOF
A=$IMG/a.ppm
B=$IMG/b.pgm
C=$IMG/c.ppm

# --- text output
ot predict "$M" "$A" "$B" "$C" --top 3 --threads 2
if [ "$T_RC" -eq 0 ] && [ "$T_NERR" -eq 0 ]; then
    ok "text: exit 0, quiet"
else
    fail "text: exit 0, quiet" "$(describe_run)"
fi
py_checks "text" '
import sys
lines = sys.argv[1].split("\n")
names = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}
blocks = [b.split("\n") for b in sys.argv[1].split("\n\n")]
def ok(name, cond, why=""):
    print(("ok %s" % name) if cond else ("FAIL %s: %s" % (name, why)))
ok("three blocks", len(blocks) == 3, blocks)
ok("image names", [b[0] for b in blocks] == sys.argv[2:5], [b[0] for b in blocks])
rows = [r.split() for b in blocks for r in b[1:]]
ok("three rows each", all(len(b) == 4 for b in blocks), blocks)
ok("class names from metadata", all(len(r) == 2 and r[1] in names for r in rows), rows)
ok("descending", all(float(b[i].split()[0]) >= float(b[i + 1].split()[0])
                     for b in blocks for i in range(1, 3)), blocks)
' "$T_OUT" "$A" "$B" "$C"

# --- JSON: every class, probabilities sum to 1, descending, names by index
ot predict "$M" "$A" "$B" "$C" --json --top 10
cp "$T_TMP/stdout" "$T_TMP/all.json"
if [ "$T_RC" -eq 0 ]; then ok "json: exit 0"; else fail "json: exit 0" "$(describe_run)"; fi
py_checks "json" '
import json, sys, onnx
r = json.load(open(sys.argv[1]))
m = onnx.load(sys.argv[2])
names = json.loads({p.key: p.value for p in m.metadata_props}["onnxtrain.classes"])
def ok(name, cond, why=""):
    print(("ok %s" % name) if cond else ("FAIL %s: %s" % (name, why)))
ok("keys", set(r) == {"model", "classes", "predictions"} and r["classes"] == 10, list(r))
ok("images in order", [p["image"] for p in r["predictions"]] == sys.argv[3:6])
for i, p in enumerate(r["predictions"]):
    top = p["top"]
    probs = [t["prob"] for t in top]
    ok("%d: ten classes" % i, sorted(t["class"] for t in top) == list(range(10)), top)
    ok("%d: sum to 1" % i, abs(sum(probs) - 1) < 1e-5, sum(probs))
    ok("%d: in (0, 1)" % i, all(0 < q < 1 for q in probs), probs)
    ok("%d: descending" % i, all(probs[k] >= probs[k + 1] for k in range(9)), probs)
    ok("%d: names" % i, all(t["name"] == names[t["class"]] for t in top), top)
' "$T_TMP/all.json" "$M" "$A" "$B" "$C"

# --- the same numbers as `onnxtrain run` on the tensor prepared by hand:
# x / 255, normalized with the recorded mean and std; b.pgm first resized
# as torchvision does (shorter side to 32 with PIL bilinear, center crop)
"$PY" - "$M" "$A" "$B" "$T_TMP/x.pb" >"$T_TMP/prep.log" 2>&1 <<'EOF'
import sys, numpy as np, onnx
from onnx import numpy_helper as nh
from PIL import Image
m = onnx.load(sys.argv[1])
md = {p.key: p.value for p in m.metadata_props}
S = int(md["onnxtrain.image_size"])
mean = np.array([float(v) for v in md["onnxtrain.mean"].split(",")], np.float32)
std = np.array([float(v) for v in md["onnxtrain.std"].split(",")], np.float32)
def pnm(path):
    data = open(path, "rb").read()
    if data.startswith(b"P6\n#"):  # a.ppm: header with a comment line
        body = data.split(b"\n", 4)[4]
        return np.frombuffer(body, np.uint8).reshape(32, 32, 3)
    body = data.split(b"\n", 1)[1]
    return np.frombuffer(body, np.uint8).reshape(40, 48)
def resize_crop(img):
    im = Image.fromarray(img)
    w, h = im.size
    if w < h:
        nw, nh = S, int(S * h / w)
    else:
        nw, nh = int(S * w / h), S
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), Image.BILINEAR)
    top, left = int(round((nh - S) / 2.0)), int(round((nw - S) / 2.0))
    im = im.crop((left, top, left + S, top + S))
    a = np.asarray(im)
    return np.stack([a] * 3, -1) if a.ndim == 2 else a
xs = []
for p in sys.argv[2:4]:
    a = resize_crop(pnm(p)).astype(np.float32) / np.float32(255)
    xs.append(((a - mean) / std).transpose(2, 0, 1))
x = np.stack(xs).astype(np.float32)
t = nh.from_array(x, m.graph.input[0].name)
open(sys.argv[4], "wb").write(t.SerializeToString())
EOF
if [ $? -ne 0 ]; then
    fail "run: prepare" "$(tail -n 1 "$T_TMP/prep.log")"
else
    ot run "$M" --input "$T_TMP/x.pb" --output-dir "$T_TMP/run_out" --threads 2
    ot predict "$M" "$A" "$B" --json --top 10 --threads 2
    cp "$T_TMP/stdout" "$T_TMP/ab.json"
    py_checks "same as run" '
import json, sys, numpy as np, onnx
from onnx import numpy_helper as nh
logits = nh.to_array(onnx.load_tensor(sys.argv[1])).astype(np.float64)
e = np.exp(logits - logits.max(1, keepdims=True))
want = e / e.sum(1, keepdims=True)
r = json.load(open(sys.argv[2]))
def ok(name, cond, why=""):
    print(("ok %s" % name) if cond else ("FAIL %s: %s" % (name, why)))
for i, p in enumerate(r["predictions"]):
    got = np.zeros(10)
    for t in p["top"]:
        got[t["class"]] = t["prob"]
    ok("%d: top-1" % i, p["top"][0]["class"] == int(want[i].argmax()), (p["top"][0], want[i]))
    err = np.abs(got - want[i]).max()
    ok("%d: probabilities" % i, err < 1e-5, "max abs err %g" % err)
' "$T_TMP/run_out/output_0.pb" "$T_TMP/ab.json"
fi

# --- more images than one executor run holds: each the same as alone
MANY=()
for i in $(seq 1 35); do
    case $((i % 3)) in 0) MANY+=("$A") ;; 1) MANY+=("$B") ;; 2) MANY+=("$C") ;; esac
done
ot predict "$M" "${MANY[@]}" --json --top 10 --threads 2
cp "$T_TMP/stdout" "$T_TMP/many.json"
if [ "$T_RC" -eq 0 ]; then ok "35 images"; else fail "35 images" "$(describe_run)"; fi
py_checks "35 images" '
import json, sys
alone = {p["image"]: {t["class"]: t["prob"] for t in p["top"]}
         for p in json.load(open(sys.argv[1]))["predictions"]}
many = json.load(open(sys.argv[2]))["predictions"]
def ok(name, cond, why=""):
    print(("ok %s" % name) if cond else ("FAIL %s: %s" % (name, why)))
ok("count", len(many) == 35, len(many))
worst = max(abs(t["prob"] - alone[p["image"]][t["class"]]) for p in many for t in p["top"])
ok("same as in a small batch", worst < 1e-5, "max abs diff %g" % worst)
' "$T_TMP/all.json" "$T_TMP/many.json"

# --- a model without metadata: 224x224 input, class indices, names null
ot predict "$FX/resnet18_bn.onnx" "$A" --top 3 --threads 2
if [ "$T_RC" -eq 0 ] && matches "$(printf '%s\n' "$T_OUT" | sed -n 2p)" "0."; then
    py_checks "no metadata: text" '
import sys
rows = [l.split() for l in sys.argv[1].split("\n")[1:]]
print("ok indices" if len(rows) == 3 and all(len(r) == 2 and r[1].isdigit() and int(r[1]) < 1000
                                              for r in rows) else "FAIL indices: %s" % rows)
' "$T_OUT"
else
    fail "no metadata: text" "$(describe_run): $T_OUT"
fi
ot predict "$FX/resnet18_bn.onnx" "$A" --top 2 --json --threads 2
py_checks "no metadata: json" '
import json, sys
r = json.loads(sys.argv[1])
top = r["predictions"][0]["top"]
print("ok names null" if r["classes"] == 1000 and len(top) == 2 and
      all(t["name"] is None for t in top) else "FAIL names null: %s" % r)
' "$T_OUT"

# --- a trailing Softmax is cut off: the same probabilities
"$PY" - "$M" "$T_TMP/softmax.onnx" >"$T_TMP/sm.log" 2>&1 <<'EOF'
import sys, onnx
from onnx import helper
m = onnx.load(sys.argv[1])
out = m.graph.output[0]
m.graph.node.append(helper.make_node("Softmax", [out.name], ["prob"], name="softmax", axis=1))
new = helper.make_tensor_value_info("prob", out.type.tensor_type.elem_type, None)
new.type.CopyFrom(out.type)
del m.graph.output[:]
m.graph.output.append(new)
onnx.save(m, sys.argv[2])
EOF
ot predict "$T_TMP/softmax.onnx" "$A" "$B" "$C" --json --top 10 --threads 2
py_checks "trailing softmax" '
import json, sys
a = json.load(open(sys.argv[1]))["predictions"]
b = json.loads(sys.argv[2])["predictions"]
d = max(abs(x["prob"] - y["prob"]) for p, q in zip(a, b) for x, y in zip(p["top"], q["top"]))
print("ok same probabilities" if d < 1e-6 else "FAIL same probabilities: max diff %g" % d)
' "$T_TMP/all.json" "$T_OUT"

# --- PNG and JPEG (written by PIL when present)
# The PNG has a.ppm's pixels exactly: same probabilities. The JPEG is lossy:
# the same top-1 class is not guaranteed, so only that it runs.
if [ -f "$IMG/a.png" ]; then
    ot predict "$M" "$IMG/a.ppm" --json --top 10
    PPM_JSON=$T_OUT
    ot predict "$M" "$IMG/a.png" --json --top 10
    if [ "$T_RC" -eq 0 ]; then
        py_checks "png" '
import json, sys
a = json.loads(sys.argv[1])["predictions"][0]["top"]
b = json.loads(sys.argv[2])["predictions"][0]["top"]
d = max(abs(x["prob"] - y["prob"]) for x, y in zip(a, b))
print("ok same as the PPM" if d < 1e-6 and [x["class"] for x in a] == [y["class"] for y in b]
      else "FAIL same as the PPM: %g" % d)
' "$PPM_JSON" "$T_OUT"
    else
        fail "png" "$(describe_run)"
    fi
    expect_rc "jpeg runs" 0 predict "$M" "$IMG/a.jpg"
fi

# --- errors name the file; nothing on stdout
expect_error "missing image" "nope.ppm&no such file" predict "$M" "$A" "$IMG/nope.ppm"
if [ -z "$T_OUT" ]; then ok "missing image: no output"; else fail "missing image: no output" "$T_OUT"; fi
expect_error "truncated image" "trunc.ppm&truncated" predict "$M" "$IMG/trunc.ppm"
expect_error "zero width" "zero.ppm&width 0" predict "$M" "$IMG/zero.ppm"
expect_error "not an image" "junk.txt&not an image" predict "$M" "$IMG/junk.txt"
expect_error "plain ppm" "plain.ppm&p3" predict "$M" "$IMG/plain.ppm"
expect_error "a folder" "$IMG&not a regular file" predict "$M" "$IMG"
expect_error "missing model" "nope.onnx" predict "$T_TMP/nope.onnx" "$A"
expect_usage "no image" predict "$M"
expect_usage "--top 0" predict "$M" "$A" --top 0
expect_usage "--top x" predict "$M" "$A" --top x
expect_usage "--threads 0" predict "$M" "$A" --threads 0
expect_usage "unknown option" predict "$M" "$A" --topk 3
expect_rc "--help" 0 predict --help

finish
