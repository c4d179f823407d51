#!/bin/bash
# test_bench.sh: the benchmark tools at tiny sizes (never timings): the
# isolated convolution bound (tests/bench/conv_bound.c) does the work of
# ResNet-18's convolutions in each mode, counted independently from
# PyTorch's model; bench.py reports it and each loop's fraction of it; the
# threads-under-load section (tests/bench/bench_load.py) measures both tools
# alone and loaded and writes its goal.
#
#   BUILD=build bash tests/cli/test_bench.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
need_cli

# runs NAME OUT CMD...: CMD (environment assignments first, as env takes
# them) with its standard output in OUT; ok, or fail with stderr's last line
runs() {
    local name=$1 out=$2
    shift 2
    if env "$@" >"$out" 2>"$T_TMP/runs.err"; then
        ok "$name"
    else
        fail "$name" "$(tail -n 1 "$T_TMP/runs.err")"
    fi
}

B=$T_TMP/build
mkdir -p "$B/bench"
ln -s "$(realpath "$OT")" "$B/onnxtrain"
if ! cc -O2 -fopenmp tests/bench/conv_bound.c -ldnnl -o "$B/bench/conv_bound" 2>"$T_TMP/cc.err"; then
    fail "conv_bound builds" "$(tail -n 1 "$T_TMP/cc.err")"
    finish
fi
ok "conv_bound builds"

runs "conv_bound runs" "$T_TMP/bound.json" OMP_NUM_THREADS=2 "$B/bench/conv_bound" \
    --batch 2 --size 64 --reps 1 --warmup 0

# The work per mode against ResNet-18's convolutions as PyTorch's model has
# them (forward hooks at 64x64, batch 2): fe = every forward; ft = forward +
# layer4's weight gradients + the data gradients of layer4 but its first
# block's conv1 and downsample; full = 3 x forward - conv1's data gradient.
py_checks "bound work" '
import json, sys, torch, torchvision
j = json.load(open(sys.argv[1]))
m = torchvision.models.resnet18()
convs = []
def hook(mod, inp, out):
    convs.append((name_of[mod], 2.0 * out.numel() * mod.in_channels // mod.groups
                  * mod.kernel_size[0] * mod.kernel_size[1]))
name_of = {}
for n, mod in m.named_modules():
    if isinstance(mod, torch.nn.Conv2d):
        name_of[mod] = n
        mod.register_forward_hook(hook)
m(torch.zeros(2, 3, 64, 64))
fwd = sum(f for _, f in convs)
l4 = [(n, f) for n, f in convs if n.startswith("layer4")]
l4_data = sum(f for n, f in l4 if n not in ("layer4.0.conv1", "layer4.0.downsample.0"))
want = {"fe": fwd, "ft": fwd + sum(f for _, f in l4) + l4_data,
        "full": 3 * fwd - dict(convs)["conv1"]}
print("ok 20 convolutions" if len(convs) == 20 else "FAIL 20 convolutions: %d" % len(convs))
res = {(r["mode"], r["dtype"]): r for r in j["results"]}
for mode, f in want.items():
    r = res.get((mode, "f32"))
    if not r or not r.get("supported"):
        print("FAIL %s f32: not supported" % mode)
    elif abs(r["gflop"] * 1e9 - f) > 1e-3 * f:
        print("FAIL %s f32: %.4f GFLOP, PyTorch model %.4f" % (mode, r["gflop"], f / 1e9))
    elif not (r["images_per_s"] > 0 and r["step_ms"] > 0):
        print("FAIL %s f32: no time" % mode)
    else:
        print("ok %s f32 work" % mode)
    b = res.get((mode, "bf16"))
    if not b or ("supported" not in b) or (not b["supported"] and not b.get("why")):
        print("FAIL %s bf16: neither measured nor a reason" % mode)
    else:
        print("ok %s bf16 reported" % mode)
' "$T_TMP/bound.json"

if "$B/bench/conv_bound" --size 7 >/dev/null 2>&1; then
    fail "conv_bound refuses a bad size" "exit 0"
else
    ok "conv_bound refuses a bad size"
fi

# bench.py's bound section and the fraction of each loop (from a results
# file as an earlier run left it: a full loop at 10 images/s).
cat >"$B/bench/results.json" <<'JSON'
{"train": {"full": {"task": "full", "mode": "full", "image_size": 64, "batch": 2, "commit": "x",
  "images": 64, "epochs": 1, "threads": 2, "repetitions": 3,
  "results": [{"tool": "onnxtrain", "label": "onnxtrain", "processes": 3, "wall_s": 8.0,
               "wall_min_s": 7.0, "wall_max_s": 9.0, "images_per_s": 8.0,
               "loop_images_per_s": 10.0, "epoch1_images_per_s": 10.0,
               "peak_rss_mb": 100.0}]}}}
JSON
runs "bench.py ONLY=bound" "$T_TMP/bench.md" ONLY=bound BUILD="$B" BENCH_BOUND_BATCH=2 \
    BENCH_BOUND_SIZE=64 BENCH_BOUND_REPS=3 "$PY" tests/bench/bench.py
py_checks "bench bound" '
import json, sys
j = json.load(open(sys.argv[1]))
md = open(sys.argv[2]).read()
b = j.get("bound") or {}
print("ok six bound rows" if len(b.get("results", [])) == 6 else "FAIL six bound rows: %s" % b)
fr = {f["task"]: f for f in b.get("fractions", [])}
full = [r for r in b.get("results", []) if r["mode"] == "full" and r["dtype"] == "f32"][0]
f = fr.get("full", {})
if f.get("fraction") and abs(f["fraction"] - 10.0 / full["images_per_s"]) < 1e-9:
    print("ok full loop over its bound")
else:
    print("FAIL full loop over its bound: %s" % f)
g = [x for x in j["goals"] if x["name"] == "full bound"]
print("ok bound goal" if g and g[0]["target"] == 0.85 else "FAIL bound goal: %s" % g)
print("ok report" if "### The isolated convolution bound" in md else "FAIL report: no section")
' "$B/bench/results.json" "$T_TMP/bench.md"

# Threads under load at 32x32: the tools alone and beside a spinning process;
# onnxtrain as a user runs it (its own thread count, recorded) and with
# --threads 2.
skip_if_fast
runs "bench_load runs" "$T_TMP/load.md" BUILD="$B" BENCH_LOAD_SIZE=32 BENCH_LOAD_IMAGES=64 \
    BENCH_LOAD_REPS=1 "$PY" tests/bench/bench_load.py
py_checks "bench load" '
import json, os, sys
j = json.load(open(sys.argv[1]))
by = {t["tool"]: t for t in j["tools"]}
picked = [n for c in ("alone", "loaded") for n in by["onnxtrain"].get(c, {}).get("threads_picked", [])]
if len(picked) == 2 and all(1 <= n <= os.cpu_count() for n in picked):
    print("ok onnxtrain picked its threads, alone and loaded")
else:
    print("FAIL onnxtrain picked its threads, alone and loaded: %s" % picked)
print("ok --threads row" if "onnxtrain --threads 2" in by else "FAIL --threads row: %s" % list(by))
for tool in ("onnxtrain", "onnxtrain --threads 2", "pytorch"):
    t = by.get(tool, {})
    if tool in j["unavailable"]:
        print("ok %s unavailable, said so" % tool)
    elif all(c in t for c in ("alone", "loaded", "slowdown")) and t["slowdown"] > 0:
        print("ok %s alone and loaded" % tool)
    else:
        print("FAIL %s alone and loaded: %s" % (tool, t))
print("ok goal" if "met" in j["goal"] else "FAIL goal: %s" % j["goal"])
' "$B/bench/load.json"

finish
