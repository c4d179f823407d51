#!/bin/bash
# test_finetune.sh: `onnxtrain finetune` and `eval` end to end on a tiny
# CIFAR-format data set at 32x32 (tests/fixtures/make_tiny_cifar.py) and the
# ResNet-18 fixtures: what each mode trains and freezes (bit-identical frozen
# tensors, BN statistics as the policy says), the exported file (onnx.checker,
# metadata, onnxruntime agreeing with `onnxtrain run`), the prefix cache giving
# the same weights as no cache, the bf16 cache (--cache-dtype), determinism, the zoo-style opset-7 file and a
# BN-folded export, and errors. Skipped when OT_FAST=1.
#
#   BUILD=build bash tests/cli/test_finetune.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
skip_if_fast
need_cli

FX=$BUILD/fixtures
DATA=$BUILD/tiny_cifar
if ! "$PY" tests/fixtures/make_resnet18.py "$FX" >"$T_TMP/make.log" 2>&1 ||
    ! "$PY" tests/fixtures/make_tiny_cifar.py "$DATA" >>"$T_TMP/make.log" 2>&1; then
    fail setup "fixtures: $(tail -n 1 "$T_TMP/make.log")"
    finish
fi
BN=$FX/resnet18_bn.onnx
COMMON=(--data "$DATA" --classes 10 --image-size 32 --batch-size 16 --threads 2)

train() { # NAME OUT [options...]
    local name=$1 out=$2
    shift 2
    ot finetune "$BN" "${COMMON[@]}" -o "$out" "$@"
    if [ "$T_RC" -eq 0 ] && [ -s "$out" ]; then
        ok "$name"
        return 0
    fi
    fail "$name" "$(describe_run)"
    return 1
}

# Compares an exported model with the input: which initializers changed.
DIFF='
import json, sys, onnx, numpy as np
from onnx import numpy_helper as nh
a, b, rule = onnx.load(sys.argv[1]), onnx.load(sys.argv[2]), sys.argv[3]
onnx.checker.check_model(b, full_check=True)
print("ok checker")
wa = {t.name: nh.to_array(t) for t in a.graph.initializer}
changed = set()
for t in b.graph.initializer:
    x = nh.to_array(t)
    if t.name not in wa or wa[t.name].shape != x.shape or not np.array_equal(wa[t.name], x):
        changed.add(t.name)
params = {t.name for t in a.graph.initializer}
def ok(name, cond, why=""):
    print(("ok %s" % name) if cond else ("FAIL %s: %s" % (name, why)))
stats = {n for n in params if n.endswith("running_mean") or n.endswith("running_var")}
if rule == "fe":
    ok("only fc changed", changed == {"fc.weight", "fc.bias"}, sorted(changed)[:5])
elif rule == "ft":
    want = {n for n in params if n.startswith("layer4.") or n.startswith("fc.")}
    want -= {n for n in want if n.endswith("num_batches_tracked")}
    ok("layer4 and fc changed", changed == want, sorted(changed ^ want)[:5])
elif rule == "bntrain":
    want = stats | {"fc.weight", "fc.bias"}
    ok("stats and fc changed", changed == want, sorted(changed ^ want)[:5])
ok("same node names", [n.name for n in a.graph.node] == [n.name for n in b.graph.node])
ok("same opset", [(o.domain, o.version) for o in a.opset_import] ==
                 [(o.domain, o.version) for o in b.opset_import])
md = {p.key: p.value for p in b.metadata_props}
ok("metadata", md.get("onnxtrain.image_size") == "32" and
   json.loads(md.get("onnxtrain.classes", "[]"))[:2] == ["airplane", "automobile"], md)
d = b.graph.output[0].type.tensor_type.shape.dim
ok("output [N,10]", d[1].dim_value == 10, d)
'

if train "feature-extract" "$T_TMP/fe.onnx" --epochs 2; then
    py_checks "feature-extract" "$DIFF" "$BN" "$T_TMP/fe.onnx" fe
    if [[ $T_OUT == *"(prefix cached)"* ]]; then ok "feature-extract uses the cache"; else fail "cache" "no cached epoch: $T_OUT"; fi
fi
if train "fine-tune" "$T_TMP/ft.onnx" --mode fine-tune --epochs 1; then
    py_checks "fine-tune" "$DIFF" "$BN" "$T_TMP/ft.onnx" ft
fi
if train "--bn train" "$T_TMP/bt.onnx" --bn train --epochs 1; then
    py_checks "--bn train" "$DIFF" "$BN" "$T_TMP/bt.onnx" bntrain
fi
train "full" "$T_TMP/full.onnx" --mode full --epochs 1 --max-steps 2

# the cache changes nothing but time
train "fine-tune, cache" "$T_TMP/c1.onnx" --mode fine-tune --epochs 2 --seed 3 &&
    train "fine-tune, no cache" "$T_TMP/c0.onnx" --mode fine-tune --epochs 2 --seed 3 --no-cache &&
    py_checks "cache on/off" '
import sys, onnx, numpy as np
from onnx import numpy_helper as nh
a = {t.name: nh.to_array(t) for t in onnx.load(sys.argv[1]).graph.initializer}
b = {t.name: nh.to_array(t) for t in onnx.load(sys.argv[2]).graph.initializer}
worst = max(float(np.max(np.abs(a[k] - b[k]))) if a[k].size else 0.0 for k in a)
print(("ok same weights" if worst <= 1e-4 else "FAIL same weights: max diff %g" % worst))
' "$T_TMP/c1.onnx" "$T_TMP/c0.onnx"

# a spilled cache (tiny memory budget) gives the same weights too
train "cache in a file" "$T_TMP/c2.onnx" --mode fine-tune --epochs 2 --seed 3 --cache-mem 1K \
    --cache-dir "$T_TMP" && {
    if cmp -s "$T_TMP/c1.onnx" "$T_TMP/c2.onnx"; then ok "file cache = memory cache"; else
        fail "file cache" "outputs differ"; fi
    if ls "$T_TMP"/onnxtrain-cache-* >/dev/null 2>&1; then fail "cache file" "left behind"; else
        ok "cache file removed"; fi
}

# --cache-dtype bf16: half the cache, features rounded in every epoch (the
# first included), the same bytes from a spilled cache, weights close to f32's
train "bf16 cache" "$T_TMP/b1.onnx" --mode fine-tune --epochs 2 --seed 3 --cache-dtype bf16 \
    --log "$T_TMP/b1.csv" --json && {
    echo "$T_OUT" >"$T_TMP/b1.json"
    if [[ $T_ERR == *"of bf16"* ]]; then ok "bf16 cache: said so"; else
        fail "bf16 cache: said so" "$(describe_run)"; fi
}
train "f32 cache, logged" "$T_TMP/b0.onnx" --mode fine-tune --epochs 2 --seed 3 \
    --log "$T_TMP/b0.csv" --json && echo "$T_OUT" >"$T_TMP/b0.json"
train "bf16 cache in a file" "$T_TMP/b2.onnx" --mode fine-tune --epochs 2 --seed 3 \
    --cache-dtype bf16 --cache-mem 1K --cache-dir "$T_TMP" &&
    { if cmp -s "$T_TMP/b1.onnx" "$T_TMP/b2.onnx"; then ok "bf16: file cache = memory cache"; else
        fail "bf16: file cache" "outputs differ"; fi; }
py_checks "bf16 vs f32" '
import sys, csv, json, onnx, numpy as np
from onnx import numpy_helper as nh
d = sys.argv[1]
def ok(name, cond, why=""):
    print(("ok %s" % name) if cond else ("FAIL %s: %s" % (name, why)))
j0, j1 = (json.load(open(d + "/b%d.json" % i)) for i in (0, 1))
ok("json cache_dtype", (j0["cache_dtype"], j1["cache_dtype"]) == ("f32", "bf16"), (j0, j1))
ok("bf16 cache is half the bytes", j0["cache_bytes"] > 0 and 2 * j1["cache_bytes"] == j0["cache_bytes"],
   (j0["cache_bytes"], j1["cache_bytes"]))
l0, l1 = ([float(r["loss"]) for r in csv.DictReader(open(d + "/b%d.csv" % i))] for i in (0, 1))
# the first epoch already trains on rounded features: its loss moves, a little
ok("epoch 1 sees rounded features", l0[0] != l1[0] and abs(l0[0] - l1[0]) < 1e-2 * abs(l0[0]),
   (l0, l1))
# the updates (trained - initial) of the tensors the run changed, compared:
# Adam moves by about lr whatever the gradient, so single values may differ
# by a few steps of lr; the update as a whole must be nearly the same
i = {t.name: nh.to_array(t) for t in onnx.load(sys.argv[2]).graph.initializer}
a = {t.name: nh.to_array(t) for t in onnx.load(d + "/b0.onnx").graph.initializer}
b = {t.name: nh.to_array(t) for t in onnx.load(d + "/b1.onnx").graph.initializer}
ks = [k for k in a if k in i and a[k].dtype == np.float32 and a[k].shape == i[k].shape]
da = np.concatenate([(a[k] - i[k]).ravel() for k in ks])
db = np.concatenate([(b[k] - i[k]).ravel() for k in ks])
rel = float(np.linalg.norm(da - db) / np.linalg.norm(da))
ok("update within 5%% of the f32 one (%.2g)" % rel, 0 < rel < 0.05, rel)
' "$T_TMP" "$BN"
expect_usage "--cache-dtype: bad value" finetune "$BN" "${COMMON[@]}" -o "$T_TMP/x.onnx" \
    --cache-dtype fp8
if [ -e "$T_TMP/x.onnx" ]; then fail "--cache-dtype: no output" "written"; else
    ok "--cache-dtype: no output"; fi
ot finetune "$BN" "${COMMON[@]}" -o "$T_TMP/b3.onnx" --epochs 1 --cache-dtype bf16
if [ "$T_RC" -eq 0 ] && [[ $T_OUT == *"bf16 had no effect"* ]]; then
    ok "bf16 without a cache: said so"
else
    fail "bf16 without a cache: said so" "$(describe_run)"
fi

# deterministic: same options, same bytes
train "repeat" "$T_TMP/fe2.onnx" --epochs 2 &&
    { if cmp -s "$T_TMP/fe.onnx" "$T_TMP/fe2.onnx"; then ok "deterministic output"; else
        fail "deterministic output" "two runs differ"; fi; }

# onnxruntime agrees with onnxtrain run on the exported file
ORT=$BUILD/ort
ensure_ort || fail "onnxruntime setup" "$ENSURE_ORT_ERR"
if [ -d "$ORT/node_modules/onnxruntime-node" ] && [ -s "$T_TMP/ft.onnx" ]; then
    "$PY" -c '
import sys, numpy as np, onnx
from onnx import numpy_helper as nh
x = np.random.default_rng(5).standard_normal((2, 3, 32, 32)).astype(np.float32)
t = nh.from_array(x, "input"); open(sys.argv[1], "wb").write(t.SerializeToString())
' "$T_TMP/x.pb"
    ot run "$T_TMP/ft.onnx" --input "$T_TMP/x.pb" --output-dir "$T_TMP/run"
    if NODE_PATH=$ORT/node_modules timeout 120 node tests/ort/run_ort.js "$T_TMP/ft.onnx" \
        "$T_TMP/x.pb" "$T_TMP/ort.json" 2>"$T_TMP/ort.err"; then
        py_checks "onnxruntime" '
import sys, json, numpy as np, onnx
from onnx import numpy_helper as nh
a = nh.to_array(onnx.load_tensor(sys.argv[1]))
b = np.array(json.load(open(sys.argv[2]))["outputs"][0]["data"], np.float32).reshape(a.shape)
d = float(np.max(np.abs(a - b)))
print(("ok agrees (max diff %.2g)" % d) if d <= 1e-4 else "FAIL agrees: max diff %g" % d)
' "$T_TMP/run/output_0.pb" "$T_TMP/ort.json"
    else
        fail "onnxruntime" "$(tail -n 1 "$T_TMP/ort.err")"
    fi
else
    fail "onnxruntime" "onnxruntime-node is not installed in $ORT (tests/cli/test_ort.sh installs it)"
fi

# the zoo-style opset-7 file (batch 1 declared: exported dynamic) and the
# BN-folded export (dynamic batch 'N': kept)
for f in resnet18_zoo7 resnet18_eval; do
    ot finetune "$FX/$f.onnx" "${COMMON[@]}" --mode fine-tune --epochs 1 --max-steps 2 \
        -o "$T_TMP/$f.out.onnx"
    if [ "$T_RC" -eq 0 ]; then ok "fine-tune $f"; else fail "fine-tune $f" "$(describe_run)"; fi
    py_checks "export $f" '
import sys, onnx
a, b = onnx.load(sys.argv[1]), onnx.load(sys.argv[2])
onnx.checker.check_model(b)
da = [d.dim_value or d.dim_param for d in a.graph.input[0].type.tensor_type.shape.dim]
db = [d.dim_value or d.dim_param for d in b.graph.input[0].type.tensor_type.shape.dim]
want = da[0] if isinstance(da[0], str) else "N"
print("ok batch dim dynamic" if db[0] == want else "FAIL batch dim dynamic: %r -> %r" % (da, db))
print("ok opset kept" if a.opset_import[0].version == b.opset_import[0].version else "FAIL opset")
' "$FX/$f.onnx" "$T_TMP/$f.out.onnx"
done

# --batch sets the exported batch dim
ot finetune "$FX/resnet18_zoo7.onnx" "${COMMON[@]}" --epochs 1 --max-steps 1 --batch dynamic \
    -o "$T_TMP/bd.onnx"
if [ "$T_RC" -eq 0 ]; then
    py_checks "--batch dynamic" '
import sys, onnx
m = onnx.load(sys.argv[1]); onnx.checker.check_model(m)
d = [x.dim_param or x.dim_value for x in m.graph.input[0].type.tensor_type.shape.dim]
print("ok dynamic batch" if d[0] == "N" else "FAIL dynamic batch: %r" % d)
' "$T_TMP/bd.onnx"
else
    fail "--batch dynamic" "$(describe_run)"
fi
expect_usage "bad --batch" finetune "$BN" "${COMMON[@]}" --batch x -o "$T_TMP/x.onnx"

# A model traced at batch 2: its export runs at batch 1 in onnxruntime, and so
# does `export` of its checkpoint; --batch 3 fixes 3 in both.
BATCH_DIMS='
import sys, onnx
m = onnx.load(sys.argv[1]); want = sys.argv[2]
want = int(want) if want.isdigit() else want
onnx.checker.check_model(m)
dims = lambda vs: [v.type.tensor_type.shape.dim[0] for v in vs]
got = [d.dim_param or d.dim_value for d in dims(m.graph.input[:1]) + dims(m.graph.output) +
       dims(m.graph.value_info)]
bad = [g for g in got if g != want]
print("ok batch %s everywhere" % want if not bad else "FAIL batch %s: %r" % (want, got[:4]))
'
ot convert "$FX/resnet18_eval.onnx" "$T_TMP/b2.onnx" --batch 2
ot finetune "$T_TMP/b2.onnx" "${COMMON[@]}" --epochs 1 --max-steps 1 -o "$T_TMP/b2.out.onnx" \
    --checkpoint "$T_TMP/b2.ck.onnx"
if [ "$T_RC" -eq 0 ]; then
    py_checks "static batch 2: exported" "$BATCH_DIMS" "$T_TMP/b2.out.onnx" N
    if [ -d "$ORT/node_modules/onnxruntime-node" ]; then
        "$PY" -c '
import sys, numpy as np
from onnx import numpy_helper as nh
x = np.random.default_rng(6).standard_normal((1, 3, 32, 32)).astype(np.float32)
open(sys.argv[1], "wb").write(nh.from_array(x, "input").SerializeToString())
' "$T_TMP/x1.pb"
        if NODE_PATH=$ORT/node_modules timeout 120 node tests/ort/run_ort.js \
            "$T_TMP/b2.out.onnx" "$T_TMP/x1.pb" "$T_TMP/ort1.json" 2>"$T_TMP/ort.err"; then
            ok "static batch 2: onnxruntime runs the export at batch 1"
        else
            fail "static batch 2: onnxruntime at batch 1" "$(tail -n 1 "$T_TMP/ort.err")"
        fi
    else
        fail "static batch 2: onnxruntime" "onnxruntime-node is not installed in $ORT"
    fi
    ot export "$T_TMP/b2.ck.onnx" "$T_TMP/b2.exp.onnx"
    if [ "$T_RC" -eq 0 ] && cmp -s "$T_TMP/b2.exp.onnx" "$T_TMP/b2.out.onnx"; then
        ok "static batch 2: export of the checkpoint is the -o file"
    else
        fail "static batch 2: export" "$(describe_run)"
    fi
else
    fail "static batch 2: finetune" "$(describe_run)"
fi
ot finetune "$T_TMP/b2.onnx" "${COMMON[@]}" --epochs 1 --max-steps 1 -o "$T_TMP/b3.out.onnx" \
    --batch 3 --checkpoint "$T_TMP/b3.ck.onnx"
if [ "$T_RC" -eq 0 ]; then
    py_checks "--batch 3" "$BATCH_DIMS" "$T_TMP/b3.out.onnx" 3
    ot export "$T_TMP/b3.ck.onnx" "$T_TMP/b3.exp.onnx" --batch 3
    if [ "$T_RC" -eq 0 ] && cmp -s "$T_TMP/b3.exp.onnx" "$T_TMP/b3.out.onnx"; then
        ok "export --batch 3 is the -o file"
    else
        fail "export --batch 3" "$(describe_run)"
    fi
    ot export "$T_TMP/b3.ck.onnx" "$T_TMP/b3.dyn.onnx"
    if [ "$T_RC" -eq 0 ]; then
        py_checks "export: dynamic by default" "$BATCH_DIMS" "$T_TMP/b3.dyn.onnx" N
    else
        fail "export: dynamic by default" "$(describe_run)"
    fi
else
    fail "--batch 3" "$(describe_run)"
fi
expect_usage "export: bad --batch" export "$T_TMP/b3.ck.onnx" "$T_TMP/x.onnx" --batch 0

# eval
ot eval "$T_TMP/fe.onnx" --data "$DATA" --json
if [ "$T_RC" -eq 0 ]; then
    printf '%s\n' "$T_OUT" >"$T_TMP/eval.json"
    py_checks "eval --json" '
import sys, json
j = json.load(open(sys.argv[1]))
ok = all(k in j for k in ("top1", "top5", "loss", "n")) and 0 <= j["top1"] <= j["top5"] <= 1
print("ok keys and ranges" if ok else "FAIL keys and ranges: %r" % j)
print("ok learned (top-1 %.2f)" % j["top1"] if j["top1"] > 0.25 else "FAIL learned: top-1 %.2f" % j["top1"])
print("ok n" if j["n"] == 48 else "FAIL n: %r" % j["n"])
' "$T_TMP/eval.json"
else
    fail "eval --json" "$(describe_run)"
fi

# validation, best epoch, log and plot
train "--val-split --keep best --log --plot" "$T_TMP/vb.onnx" --epochs 3 --val-split 0.25 \
    --keep best --log "$T_TMP/l.csv" --plot "$T_TMP/p.svg" &&
    py_checks "log and plot" '
import sys, csv, xml.etree.ElementTree as ET
rows = list(csv.DictReader(open(sys.argv[1])))
print("ok csv rows" if len(rows) == 3 and all(r["val_accuracy"] for r in rows)
      else "FAIL csv rows: %r" % rows)
root = ET.parse(sys.argv[2]).getroot()
lines = [e for e in root.iter() if e.tag.endswith("polyline")]
print("ok svg curves" if len(lines) >= 4 else "FAIL svg curves: %d" % len(lines))
out = open(sys.argv[3]).read()
print("ok kept best" if "kept the weights of epoch" in out else "FAIL kept best")
' "$T_TMP/l.csv" "$T_TMP/p.svg" "$T_TMP/stdout"
train "--patience" "$T_TMP/pa.onnx" --epochs 30 --val-split 0.25 --patience 1 --lr 1e-6 &&
    { if grep -q "stopped early" "$T_TMP/stdout"; then ok "--patience stops early"; else
        fail "--patience" "no early stop: $(tail -n 3 "$T_TMP/stdout")"; fi; }
expect_usage "--keep best needs validation" finetune "$BN" "${COMMON[@]}" --keep best -o "$T_TMP/x.onnx"

# augmentation: reproducible, and independent of the worker count
train "--augment, 2 workers" "$T_TMP/a2.onnx" --epochs 2 --augment --workers 2 &&
    train "--augment, no workers" "$T_TMP/a0.onnx" --epochs 2 --augment --workers 0 &&
    { if cmp -s "$T_TMP/a2.onnx" "$T_TMP/a0.onnx"; then ok "augment: same result for any workers"; else
        fail "augment workers" "outputs differ"; fi; }
if grep -q "augment changes the images" "$T_TMP/stdout"; then ok "augment: cache off, said why"; else
    fail "augment cache" "$(tail -n 3 "$T_TMP/stdout")"; fi

# an image folder with a corrupt JPEG: an error naming it, or skipped and counted
FOLD=$T_TMP/folder
"$PY" -c '
import os, sys, numpy as np
from PIL import Image
root = sys.argv[1]
rng = np.random.default_rng(0)
for c, name in enumerate(["cat", "dog", "fox"]):
    os.makedirs(os.path.join(root, name), exist_ok=True)
    for i in range(6):
        a = np.clip(rng.normal(60 + 70 * c, 30, (40, 36 + 4 * i, 3)), 0, 255).astype(np.uint8)
        ext = "png" if i % 2 else "jpg"
        Image.fromarray(a).save(os.path.join(root, name, "%d.%s" % (i, ext)))
data = open(os.path.join(root, "dog", "0.jpg"), "rb").read()
open(os.path.join(root, "dog", "9.jpg"), "wb").write(data[: len(data) // 2])
' "$FOLD"
ot finetune "$BN" --data "$FOLD" --classes 3 --image-size 32 --batch-size 4 --epochs 1 -o "$T_TMP/f.onnx"
if [ "$T_RC" -eq 1 ] && [[ $T_ERR == *"9.jpg"* ]] && [ ! -e "$T_TMP/f.onnx" ]; then
    ok "corrupt image: error naming it"; else fail "corrupt image" "$(describe_run)"; fi
ot finetune "$BN" --data "$FOLD" --classes 3 --image-size 32 --batch-size 4 --epochs 2 --skip-bad \
    -o "$T_TMP/f.onnx"
if [ "$T_RC" -eq 0 ] && [[ $T_OUT == *"skipped 1 unreadable"* ]]; then ok "--skip-bad counts"; else
    fail "--skip-bad" "$(describe_run)"; fi
# ... the skipped file named without -v; also with --checkpoint and --resume
# (the data's fingerprint reads sampled images), and in the validation set
FT_FOLD=(finetune "$BN" --data "$FOLD" --classes 3 --image-size 32 --batch-size 4 --skip-bad)
ot "${FT_FOLD[@]}" --epochs 2 --checkpoint "$T_TMP/fck.onnx" -o "$T_TMP/f2.onnx"
if [ "$T_RC" -eq 0 ] && [[ $T_OUT == *"skipped 1 unreadable"* ]] && [ -s "$T_TMP/fck.onnx" ] &&
    [[ $T_ERR == *"warning: skipped: "*"dog/9.jpg"* ]]; then
    ok "--skip-bad --checkpoint"
else
    fail "--skip-bad --checkpoint" "$(describe_run)"
fi
ot "${FT_FOLD[@]}" --epochs 3 --resume "$T_TMP/fck.onnx" --checkpoint "$T_TMP/fck.onnx" \
    -o "$T_TMP/f3.onnx"
if [ "$T_RC" -eq 0 ] && [[ $T_OUT == *"resumed from"*"after epoch 2"* ]] &&
    [[ $T_OUT == *"epoch 3/3"* ]]; then
    ok "--skip-bad --resume"
else
    fail "--skip-bad --resume" "$(describe_run)"
fi
ot "${FT_FOLD[@]}" --epochs 1 --val-data "$FOLD" -o "$T_TMP/f4.onnx"
if [ "$T_RC" -eq 0 ] && [[ $T_OUT == *"val acc"* ]] && [[ $T_OUT == *"skipped 2 unreadable"* ]]; then
    ok "--skip-bad: validation images too"
else
    fail "--skip-bad: validation images too" "$(describe_run)"
fi
# ... and in the test split that is scored at the end
mkdir -p "$T_TMP/fold2/train" "$T_TMP/fold2/test"
cp -r "$FOLD"/* "$T_TMP/fold2/test/" && cp -r "$FOLD"/* "$T_TMP/fold2/train/" &&
    rm "$T_TMP/fold2/train/dog/9.jpg"
ot finetune "$BN" --data "$T_TMP/fold2" --classes 3 --image-size 32 --batch-size 4 --skip-bad \
    --epochs 1 -o "$T_TMP/f5.onnx"
if [ "$T_RC" -eq 0 ] && [[ $T_ERR == *"test: left out 1 unreadable image (--skip-bad)"* ]] &&
    [[ $T_OUT == *"test: top-1"*"(18 images)"* ]]; then
    ok "--skip-bad: test split too"
else
    fail "--skip-bad: test split too" "$(describe_run)"
fi
# eval: the corrupt file stops it, or --skip-bad leaves it out, naming it
# without -v
ot eval "$T_TMP/f.onnx" --data "$FOLD"
if [ "$T_RC" -eq 1 ] && [[ $T_ERR == *"9.jpg"* ]]; then ok "eval: corrupt image is an error"; else
    fail "eval: corrupt image" "$(describe_run)"; fi
ot eval "$T_TMP/f.onnx" --data "$FOLD" --skip-bad
if [ "$T_RC" -eq 0 ] && [[ $T_OUT == *"skipped 1 unreadable"* ]] && [[ $T_OUT == *"images: 18"* ]] &&
    [ "$T_NERR" -eq 1 ] && [[ $T_ERR == *"warning: skipped: "*"dog/9.jpg"* ]]; then
    ok "eval --skip-bad: counted and named"
else
    fail "eval --skip-bad" "$(describe_run)"
fi
ot eval "$T_TMP/f.onnx" --data "$FOLD" --skip-bad --json
if [ "$T_RC" -eq 0 ] && [[ $T_OUT == *'"n": 18,'* && $T_OUT == *'"skipped": 1,'* ]]; then ok "eval --skip-bad --json"
else fail "eval --skip-bad --json" "$(describe_run)"; fi

# inspect --training: the plan per mode
for mode in feature-extract fine-tune full; do
    ot inspect "$BN" --training --json --mode "$mode" --classes 10
    if [ "$T_RC" -ne 0 ]; then
        fail "inspect --training $mode" "$(describe_run)"
        continue
    fi
    printf '%s\n' "$T_OUT" >"$T_TMP/plan.json"
    py_checks "inspect --training $mode" '
import sys, json
j, mode = json.load(open(sys.argv[1])), sys.argv[2]
want = {"feature-extract": (2, 0, True, "/fc/Gemm"),
        "fine-tune": (17, 5, True, "/layer4/layer4.0/conv1/Conv"),
        "full": (62, 20, False, "/conv1/Conv")}[mode]
got = (j["trainable_tensors"], j["bn_train"], j["cache"], j["first_trained_node"])
print("ok plan" if got == want else "FAIL plan: %r != %r" % (got, want))
print("ok backward nodes" if j["backward_nodes"] > 0 else "FAIL backward nodes: %r" % j)
frozen_bn = [n for n in j["trainable"] if "layer3" in n]
print("ok nothing upstream trains" if mode != "fine-tune" or not frozen_bn else "FAIL %r" % frozen_bn)
' "$T_TMP/plan.json" "$mode"
done

# --profile: per-kind times, forward and backward, data waits
ot finetune "$BN" "${COMMON[@]}" --mode fine-tune --epochs 1 --max-steps 2 --profile \
    -o "$T_TMP/prof.onnx"
if [ "$T_RC" -eq 0 ] && [[ $T_OUT == *"profile:"* ]] && [[ $T_OUT == *ConvGradFilter* ]] &&
    [[ $T_OUT == *"waiting for data"* ]]; then ok "finetune --profile"; else
    fail "finetune --profile" "$(describe_run)"; fi
ot run "$BN" --random --batch 2 --profile
if [ "$T_RC" -eq 0 ] && [[ $T_ERR == *"profile:"* ]] && [[ $T_ERR == *Conv* ]]; then
    ok "run --profile"; else fail "run --profile" "$(describe_run)"; fi

# dry run and errors
ot finetune "$BN" "${COMMON[@]}" --mode fine-tune --dry-run
if [ "$T_RC" -eq 0 ] && [[ $T_OUT == *"backward nodes"* ]]; then ok "--dry-run"; else
    fail "--dry-run" "$(describe_run)"; fi
expect_usage "bad --mode" finetune "$BN" "${COMMON[@]}" --mode bogus -o "$T_TMP/x.onnx"
expect_usage "missing --data" finetune "$BN" -o "$T_TMP/x.onnx"
expect_usage "bad --std" finetune "$BN" "${COMMON[@]}" --std 0,1,1 -o "$T_TMP/x.onnx"
train "--mean/--std" "$T_TMP/ms.onnx" --mean 0.5,0.4,0.3 --std 0.2 --epochs 1 --max-steps 1 &&
    py_checks "--mean/--std" '
import sys, onnx
md = {p.key: p.value for p in onnx.load(sys.argv[1]).metadata_props}
ok = md.get("onnxtrain.mean") == "0.5,0.4,0.3" and md.get("onnxtrain.std") == "0.2,0.2,0.2"
print("ok recorded" if ok else "FAIL recorded: %r" % md)
' "$T_TMP/ms.onnx"
expect_usage "bad --lr" finetune "$BN" "${COMMON[@]}" --lr abc -o "$T_TMP/x.onnx"
ot finetune "$BN" --data "$T_TMP/nonexistent" -o "$T_TMP/none.onnx"
if [ "$T_RC" -eq 1 ] && [ "$T_NERR" -eq 1 ] && [ ! -e "$T_TMP/none.onnx" ]; then
    ok "missing data"; else fail "missing data" "$(describe_run)"; fi
ot finetune "$BN" "${COMMON[@]}" --train 'nothing.matches*' -o "$T_TMP/none.onnx"
if [ "$T_RC" -ne 0 ] && [ "$T_NERR" -eq 1 ] && [ ! -e "$T_TMP/none.onnx" ]; then
    ok "unmatched --train pattern"; else fail "unmatched --train" "$(describe_run)"; fi


# ------------------------------------------------ classes and sizes from the data
ot finetune "$BN" --data "$DATA" --image-size 32 --batch-size 16 --threads 2 --epochs 1 \
    --max-steps 1 --val-split 0.25 --json -o "$T_TMP/cls.onnx"
if [ "$T_RC" -eq 0 ] && matches "$T_ERR" "new head: 10 classes, from the data&1000 outputs" &&
    matches "$T_ERR" "training on 70 images, validating on 26 (10 classes)"; then
    ok "no --classes: the head and the sizes from the data"
else
    fail "no --classes: the head and the sizes from the data" "$(describe_run)"
fi
py_checks "no --classes" '
import json, sys, onnx
m = onnx.load(sys.argv[1])
d = [x.dim_value for x in m.graph.output[0].type.tensor_type.shape.dim]
print("ok 10 outputs" if d[-1] == 10 else "FAIL 10 outputs: %r" % d)
j = json.loads(sys.argv[2])
ok = (j.get("train_images"), j.get("val_images"), j.get("classes")) == (70, 26, 10)
print("ok json sizes" if ok else "FAIL json sizes: %r" % j)
' "$T_TMP/cls.onnx" "$T_OUT"
expect_error "--classes that disagrees with the data" "--classes 7 disagrees&10 classes" \
    finetune "$BN" --data "$DATA" --classes 7 --image-size 32 --epochs 1 -o "$T_TMP/x7.onnx"
if [ -e "$T_TMP/x7.onnx" ]; then fail "--classes 7: no output" "written"; else
    ok "--classes 7: no output"; fi

# ------------------------------------------------ BatchNorm folded at export
if "$PY" tests/fixtures/make_bn_folded.py "$T_TMP/folded.onnx" "$T_TMP/kept.onnx" \
    >"$T_TMP/fold.log" 2>&1; then
    FOLD=(--data "$DATA" --image-size 32 --batch-size 16 --threads 1 --deterministic --epochs 1)
    for mode in fine-tune full; do
        ot finetune "$T_TMP/folded.onnx" "${FOLD[@]}" --mode $mode -o "$T_TMP/f.onnx"
        loss=$(sed -n 's/^epoch 1\/1  loss \([0-9.e+-]*\) .*/\1/p' <<<"$T_OUT")
        if [ "$T_RC" -eq 0 ] && matches "$T_ERR" "warning&folded&re-export&TrainingMode&1e-5" &&
            matches "$T_OUT" "lr 1e-05 " && [ -n "$loss" ] &&
            awk -v l="$loss" 'BEGIN { exit !(l > 0 && l < 10) }'; then
            ok "BN folded, $mode: warning, default lr 1e-5, first-epoch loss $loss"
        else
            fail "BN folded, $mode" "loss '$loss'; $(describe_run)"
        fi
    done
    ot finetune "$T_TMP/folded.onnx" "${FOLD[@]}" --mode full --lr 1e-4 -o "$T_TMP/f.onnx"
    if [ "$T_RC" -eq 0 ] && matches "$T_ERR" "warning&folded&lower learning rate" &&
        matches "$T_OUT" "lr 0.0001 "; then
        ok "BN folded: an explicit --lr is honoured"
    else
        fail "BN folded: an explicit --lr is honoured" "$(describe_run)"
    fi
    ot finetune "$T_TMP/kept.onnx" "${FOLD[@]}" --mode full -o "$T_TMP/f.onnx"
    if [ "$T_RC" -eq 0 ] && ! matches "$T_ERR" "folded" && matches "$T_OUT" "lr 0.0001 "; then
        ok "BN kept: no warning, default lr 1e-4"
    else
        fail "BN kept: no warning, default lr 1e-4" "$(describe_run)"
    fi
    ot finetune "$T_TMP/folded.onnx" "${FOLD[@]}" --mode feature-extract -o "$T_TMP/f.onnx"
    if [ "$T_RC" -eq 0 ] && ! matches "$T_ERR" "folded"; then
        ok "BN folded, feature-extract: no warning"
    else
        fail "BN folded, feature-extract: no warning" "$(describe_run)"
    fi
else
    fail "BN-folded fixture" "$(tail -n 1 "$T_TMP/fold.log")"
fi

finish
