#!/bin/bash
# test_precision.sh: --precision on the CPU. Errors for what the CPU does not
# compute in (every command that computes); fp32 identical to no option; bf16
# inference close to PyTorch's autocast bf16 and visibly not fp32; bf16
# training tracking fp32, its export fp32 and agreeing with onnxruntime, its
# checkpoint recording the precision; auto's cache file. The training part is
# skipped when OT_FAST=1.
#
#   BUILD=build bash tests/cli/test_precision.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
need_cli

FX=$BUILD/fixtures
DATA=$BUILD/tiny_cifar
BN=$FX/resnet18_bn.onnx
if ! "$PY" tests/fixtures/make_resnet18.py "$FX" >"$T_TMP/make.log" 2>&1 ||
    ! "$PY" tests/fixtures/make_tiny_cifar.py "$DATA" >>"$T_TMP/make.log" 2>&1; then
    fail setup "fixtures: $(tail -n 1 "$T_TMP/make.log")"
    finish
fi
BF16_CPU=0
grep -qw avx512f /proc/cpuinfo && BF16_CPU=1

# ---- errors: one line, exit 1, before anything is read; a bad name: usage
printf 'P6\n2 2\n255\n%012d' 0 >"$T_TMP/img.ppm"
mkdir -p "$T_TMP/td"
for p in tf32 fp16; do
    why="$p&gpu tensor-core"
    [ $p = fp16 ] && why="fp16&no fp16 arithmetic"
    expect_error "run --precision $p" "$why" run "$BN" --random --precision $p
    expect_error "test-data --precision $p" "$why" test-data "$T_TMP/td" --precision $p
    expect_error "predict --precision $p" "$why" predict "$BN" "$T_TMP/img.ppm" --precision $p
    expect_error "eval --precision $p" "$why" eval "$BN" --data "$DATA" --precision $p
    expect_error "finetune --precision $p" "$why" finetune "$BN" --data "$DATA" \
        -o "$T_TMP/never.onnx" --precision $p
done
[ -e "$T_TMP/never.onnx" ] && fail "refused finetune" "wrote its output" || ok "refused finetune wrote nothing"
expect_usage "bad precision name" run "$BN" --random --precision fp8
expect_usage "empty precision" finetune "$BN" --data "$DATA" -o "$T_TMP/x.onnx" --precision ''
if [ $BF16_CPU = 0 ]; then
    expect_error "bf16 without AVX-512" "bf16&avx-512" run "$BN" --random --precision bf16
    echo "skipped: the rest needs an AVX-512 CPU"
    finish
fi

# ---- fp32 is what no option computes, bit for bit
ot run "$BN" --random --output-dir "$T_TMP/r0"
ot run "$BN" --random --precision fp32 --output-dir "$T_TMP/r1"
ot run "$BN" --random --precision float32 --output-dir "$T_TMP/r1b"
if [ "$T_RC" -eq 0 ] && cmp -s "$T_TMP/r0/output_0.pb" "$T_TMP/r1/output_0.pb" &&
    cmp -s "$T_TMP/r0/output_0.pb" "$T_TMP/r1b/output_0.pb"; then
    ok "fp32 = default"
else
    fail "fp32 = default" "outputs differ or $(describe_run)"
fi

# ---- bf16 inference against PyTorch: a small CNN (Conv, BN, ReLU, pooling,
# Gemm) exported from PyTorch; onnxtrain bf16 must differ from fp32 (bf16 in
# use) by no more than about what autocast bf16 differs from fp32
"$PY" - "$T_TMP" >"$T_TMP/torch.log" 2>&1 <<'EOF'
import sys, numpy as np, torch, onnx
from onnx import numpy_helper as nh
d = sys.argv[1]
torch.manual_seed(0)
m = torch.nn.Sequential(
    torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(),
    torch.nn.Conv2d(32, 64, 3, stride=2, padding=1), torch.nn.ReLU(),
    torch.nn.Conv2d(64, 64, 3, padding=1), torch.nn.ReLU(),
    torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
with torch.no_grad():
    for p in m[1].parameters():
        p.uniform_(0.5, 1.5)
    m[1].running_mean.uniform_(-0.2, 0.2)
x = torch.randn(2, 3, 32, 32)
torch.onnx.export(m, x, d + "/cnn.onnx", input_names=["input"], output_names=["y"],
                  opset_version=13, dynamic_axes={"input": {0: "N"}, "y": {0: "N"}})
open(d + "/cnn_x.pb", "wb").write(nh.from_array(x.numpy(), "input").SerializeToString())
with torch.no_grad():
    y32 = m(x).numpy()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y16 = m(x).float().numpy()
np.save(d + "/cnn_y32.npy", y32)
np.save(d + "/cnn_y16.npy", y16)
EOF
if [ $? -ne 0 ]; then
    fail "pytorch cnn" "$(tail -n 1 "$T_TMP/torch.log")"
else
    ot run "$T_TMP/cnn.onnx" --input "$T_TMP/cnn_x.pb" --output-dir "$T_TMP/c32"
    ot run "$T_TMP/cnn.onnx" --input "$T_TMP/cnn_x.pb" --output-dir "$T_TMP/c16" --precision bf16
    if [ "$T_RC" -ne 0 ]; then
        fail "run bf16" "$(describe_run)"
    else
        py_checks "bf16 vs autocast" '
import sys, numpy as np, onnx
from onnx import numpy_helper as nh
d = sys.argv[1]
def ok(name, cond, why=""):
    print(("ok %s" % name) if cond else ("FAIL %s: %s" % (name, why)))
o32 = nh.to_array(onnx.load_tensor(d + "/c32/output_0.pb"))
o16 = nh.to_array(onnx.load_tensor(d + "/c16/output_0.pb"))
t32, t16 = np.load(d + "/cnn_y32.npy"), np.load(d + "/cnn_y16.npy")
scale = float(np.max(np.abs(t32)))
e_ot32 = float(np.max(np.abs(o32 - t32))) / scale
e_ot16 = float(np.max(np.abs(o16 - t32))) / scale
e_pt16 = float(np.max(np.abs(t16 - t32))) / scale
ok("fp32 = pytorch fp32", e_ot32 < 1e-5, e_ot32)
ok("bf16 differs from fp32", e_ot16 > 1e-4, e_ot16)
# autocast also rounds each product result to bf16; onnxtrain keeps fp32
# results, so its error is at most about autocast'"'"'s
ok("bf16 error <= 1.5x autocast bf16 error", e_ot16 <= 1.5 * e_pt16, (e_ot16, e_pt16))
ok("bf16 top class = autocast", (o16.argmax(1) == t16.argmax(1)).all())
' "$T_TMP"
    fi
fi

# ---- auto: measured once per machine and shape, cached in one file under
# $XDG_CACHE_HOME written by rename, reused (a hand-edited pick is obeyed)
export XDG_CACHE_HOME=$T_TMP/xdg
CF=$XDG_CACHE_HOME/onnxtrain/precision-auto
auto_run() { # NAME OUTDIR [options]
    local name=$1 dir=$2
    shift 2
    ot run "$T_TMP/cnn.onnx" --input "$T_TMP/cnn_x.pb" --output-dir "$dir" --precision auto "$@"
    if [ "$T_RC" -ne 0 ]; then
        fail "$name" "$(describe_run)"
        return 1
    fi
    AUTO_LINE=$(grep '^precision auto: ' "$T_TMP/stderr")
    if [ "$(grep -c '^precision auto: ' "$T_TMP/stderr")" -eq 1 ] &&
        matches "$AUTO_LINE" "auto: fp32 (|auto: bf16 ("; then
        ok "$name: one line says the pick"
    else
        fail "$name: one line says the pick" "$T_ERR"
    fi
}
same_as_pick() { # NAME OUTDIR: the output is that of the precision picked
    local want=$T_TMP/c32/output_0.pb
    [[ $AUTO_LINE == "precision auto: bf16"* ]] && want=$T_TMP/c16/output_0.pb
    if cmp -s "$2/output_0.pb" "$want"; then ok "$1: computes what it says"; else
        fail "$1: computes what it says" "output differs from the picked precision's"; fi
}
if [ -s "$T_TMP/cnn.onnx" ]; then
    auto_run "auto, first run" "$T_TMP/a1" && {
        same_as_pick "auto, first run" "$T_TMP/a1"
        matches "$AUTO_LINE" "measured now" && ok "auto, first run: measured" ||
            fail "auto, first run: measured" "$AUTO_LINE"
        if [ "$(wc -l <"$CF")" -eq 1 ] && grep -Eq '^[0-9a-f]{16} (fp32|bf16) [0-9.]+ [0-9.]+$' "$CF"; then
            ok "auto: cache file, one line"
        else
            fail "auto: cache file, one line" "$(head -c 300 "$CF" 2>&1)"
        fi
    }
    ino1=$(stat -c %i "$CF" 2>/dev/null)
    cp "$CF" "$T_TMP/cf1" 2>/dev/null
    auto_run "auto, second run" "$T_TMP/a2" && {
        same_as_pick "auto, second run" "$T_TMP/a2"
        matches "$AUTO_LINE" "measured before&cached in" && ok "auto, second run: reused" ||
            fail "auto, second run: reused" "$AUTO_LINE"
        cmp -s "$CF" "$T_TMP/cf1" && ok "auto: a hit leaves the file" || fail "auto: a hit" "file changed"
    }
    # the pick turned over by hand is obeyed: the cache is what decides
    if [ -s "$T_TMP/cf1" ]; then
        if grep -q ' fp32 ' "$T_TMP/cf1"; then sed 's/ fp32 / bf16 /' "$T_TMP/cf1" >"$CF"; else
            sed 's/ bf16 / fp32 /' "$T_TMP/cf1" >"$CF"; fi
        auto_run "auto, edited cache" "$T_TMP/a3" && same_as_pick "auto, edited cache" "$T_TMP/a3"
        if [ "$(cut -d' ' -f2 "$CF")" != "$(cut -d' ' -f2 "$T_TMP/cf1")" ] &&
            [[ $AUTO_LINE == "precision auto: $(cut -d' ' -f2 "$CF")"* ]]; then
            ok "auto: obeys the cached pick"
        else
            fail "auto: obeys the cached pick" "$AUTO_LINE"
        fi
    fi
    # another shape adds a line (by a rename: a new inode), keeping the others;
    # lines that are not the cache's are dropped
    cp "$T_TMP/cf1" "$CF"
    printf 'garbage\n' >>"$CF"
    ino1=$(stat -c %i "$CF")
    "$PY" -c '
import sys, numpy as np
from onnx import numpy_helper as nh
x = np.random.default_rng(1).standard_normal((4, 3, 32, 32)).astype(np.float32)
open(sys.argv[1], "wb").write(nh.from_array(x, "input").SerializeToString())
' "$T_TMP/cnn_x4.pb"
    ot run "$T_TMP/cnn.onnx" --input "$T_TMP/cnn_x4.pb" --precision auto --output-dir "$T_TMP/a4"
    if [ "$T_RC" -eq 0 ] && [ "$(wc -l <"$CF")" -eq 2 ] && grep -qF "$(cat "$T_TMP/cf1")" "$CF" &&
        ! grep -q garbage "$CF" && [ "$(stat -c %i "$CF")" != "$ino1" ]; then
        ok "auto: new shape appended by rename"
    else
        fail "auto: new shape appended by rename" "$(describe_run) $(cat "$CF")"
    fi
    if ls "$XDG_CACHE_HOME/onnxtrain" | grep -q tmp; then fail "auto: temporaries" "left behind"; else
        ok "auto: no temporary left"; fi
    # a cache that cannot be written only costs the measurement
    XDG_CACHE_HOME=$T_TMP/img.ppm auto_run "auto, unwritable cache" "$T_TMP/a5"
fi

skip_if_fast

# ---- bf16 training tracks fp32: full training of ResNet-18 at 32x32
COMMON=(--data "$DATA" --classes 10 --image-size 32 --batch-size 16 --threads 2 --seed 4)
ot finetune "$BN" "${COMMON[@]}" --mode full --epochs 3 --log "$T_TMP/f32.csv" -o "$T_TMP/f32.onnx"
[ "$T_RC" -eq 0 ] && ok "train fp32" || fail "train fp32" "$(describe_run)"
ot finetune "$BN" "${COMMON[@]}" --mode full --epochs 3 --log "$T_TMP/b16.csv" \
    --precision bf16 --checkpoint "$T_TMP/b16.ckpt" -o "$T_TMP/b16.onnx" --json
[ "$T_RC" -eq 0 ] && ok "train bf16" || fail "train bf16" "$(describe_run)"
echo "$T_OUT" >"$T_TMP/b16.json"
ensure_ort || fail "onnxruntime setup" "$ENSURE_ORT_ERR"
ORT=$BUILD/ort
"$PY" -c '
import sys, numpy as np
from onnx import numpy_helper as nh
x = np.random.default_rng(5).standard_normal((2, 3, 32, 32)).astype(np.float32)
open(sys.argv[1], "wb").write(nh.from_array(x, "input").SerializeToString())
' "$T_TMP/x.pb"
ot run "$T_TMP/b16.onnx" --input "$T_TMP/x.pb" --output-dir "$T_TMP/rb"
if [ -d "$ORT/node_modules/onnxruntime-node" ] &&
    NODE_PATH=$ORT/node_modules timeout 120 node tests/ort/run_ort.js "$T_TMP/b16.onnx" \
        "$T_TMP/x.pb" "$T_TMP/ort.json" 2>"$T_TMP/ort.err"; then
    HAVE_ORT_OUT=1
else
    fail "onnxruntime" "$(tail -n 1 "$T_TMP/ort.err" 2>/dev/null)"
    HAVE_ORT_OUT=0
fi
py_checks "bf16 training" '
import sys, csv, json, numpy as np, onnx
from onnx import numpy_helper as nh
d, have_ort = sys.argv[1], sys.argv[2] == "1"
def ok(name, cond, why=""):
    print(("ok %s" % name) if cond else ("FAIL %s: %s" % (name, why)))
l32 = [float(r["loss"]) for r in csv.DictReader(open(d + "/f32.csv"))]
l16 = [float(r["loss"]) for r in csv.DictReader(open(d + "/b16.csv"))]
ok("three epochs logged", len(l32) == len(l16) == 3, (l32, l16))
# tolerance: each epoch'"'"'s mean loss within 10% (+0.02) of fp32'"'"'s; the
# curves differ (bf16 is in use) and both fall
ok("loss curve within 10%", all(abs(a - b) <= 0.1 * a + 0.02 for a, b in zip(l32, l16)),
   (l32, l16))
ok("bf16 changes the numbers", l32 != l16, l32)
ok("loss falls", l16[-1] < 0.7 * l16[0], l16)
m = onnx.load(d + "/b16.onnx")
onnx.checker.check_model(m, full_check=True)
bad = [t.name for t in m.graph.initializer if t.data_type != onnx.TensorProto.FLOAT and
       t.name.endswith(("weight", "bias", "running_mean", "running_var"))]
ok("export is fp32", not bad, bad[:3])
ok("no bf16 anywhere in the export", "BFLOAT16" not in str([t.data_type for t in m.graph.initializer])
   and all(t.data_type != onnx.TensorProto.BFLOAT16 for t in m.graph.initializer))
j = json.loads(open(d + "/b16.json").read().strip().splitlines()[-1])
ok("json precision", j.get("precision") == "bf16", j.get("precision"))
if have_ort:
    a = nh.to_array(onnx.load_tensor(d + "/rb/output_0.pb"))
    b = np.array(json.load(open(d + "/ort.json"))["outputs"][0]["data"], np.float32).reshape(a.shape)
    e = float(np.max(np.abs(a - b)))
    ok("onnxruntime runs the export as onnxtrain fp32 does", e <= 1e-4, e)
' "$T_TMP" "$HAVE_ORT_OUT"

# the checkpoint records the precision: resuming in fp32 is refused
expect_error "resume in another precision" "precision" finetune "$BN" "${COMMON[@]}" --mode full \
    --epochs 4 --resume "$T_TMP/b16.ckpt" -o "$T_TMP/never2.onnx"
ot finetune "$BN" "${COMMON[@]}" --mode full --epochs 4 --resume "$T_TMP/b16.ckpt" \
    --precision bf16 -o "$T_TMP/b16r.onnx"
[ "$T_RC" -eq 0 ] && ok "resume in bf16" || fail "resume in bf16" "$(describe_run)"

# fine-tuning in bf16: the frozen prefix is cached in bf16
ot finetune "$BN" "${COMMON[@]}" --mode fine-tune --epochs 2 --precision bf16 -o "$T_TMP/ft16.onnx"
if [ "$T_RC" -eq 0 ] && matches "$T_ERR$T_OUT" "prefix cache&of bf16"; then
    ok "fine-tune bf16: bf16 prefix cache"
else
    fail "fine-tune bf16: bf16 prefix cache" "$(describe_run) $(echo "$T_OUT" | grep -i cache)"
fi

finish
