#!/bin/bash
# test_gpu_bench.sh: the benchmark phase of tests/gpu/check.sh without a GPU,
# so that a typo cannot waste a device run: bench_infer's device options and
# their errors; the goal rows of tests/gpu/bench_report.py computed from
# made-up run results (each verdict, a run that failed, timed out or did not
# start, the summary table); the whole phase as a dry run on the CPU at tiny
# sizes (`check.sh --dry-run-bench`: every command line of both tools runs,
# every row gets its figures); and the shell's handling of a failing and a
# hanging binary. Skipped when OT_FAST=1.
#
#   BUILD=build bash tests/cli/test_gpu_bench.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
need_cli
skip_if_fast

INFER=$BUILD/bench/bench_infer
ROWS="bench_full_bf16 bench_cold_start bench_finetune bench_feature_extract bench_infer_b1 bench_infer_b256 bench_full_fp32 bench_host_memory"

# ---- bench_infer: the device options
if [ ! -x "$INFER" ]; then
    fail "bench_infer" "$INFER is not built (make $INFER)"
    finish
fi
MODEL=/usr/share/libonnx-testdata/data/node/test_relu/model.onnx
# binfer NAME RC ARGS...: bench_infer exits RC; its stderr in $T_TMP/bi.err
binfer() {
    local name=$1 want=$2 rc
    shift 2
    timeout 60 "$INFER" "$@" >"$T_TMP/bi.out" 2>"$T_TMP/bi.err"
    rc=$?
    if [ "$rc" -eq "$want" ]; then
        ok "bench_infer $name: exit $want"
    else
        fail "bench_infer $name: exit $want" "got $rc: $(tail -n 1 "$T_TMP/bi.err")"
    fi
}
binfer "not a device" 2 "$MODEL" --device gpu7
binfer "empty --plan-cache" 2 "$MODEL" --plan-cache ""
binfer "--device without a value" 2 "$MODEL" --device
binfer "cpu, autotune, plan cache" 0 "$MODEL" --device cpu --autotune --plan-cache "$T_TMP/pc" \
    --batch 3 --runs 2 --warmup 1
py_checks "bench_infer cpu" '
import json, os, sys
j = json.loads(open(sys.argv[1]).read().splitlines()[-1])
for k, want in (("device", "cpu"), ("runs", 2), ("warmup", 1), ("tool", "onnxtrain")):
    print(("ok " if j.get(k) == want else "FAIL ") + k + ("" if j.get(k) == want else ": %r" % j.get(k)))
print("ok images_per_s" if j["images_per_s"] > 0 else "FAIL images_per_s: %r" % j)
print("ok no plan folder on the CPU" if not os.path.exists(sys.argv[2]) else "FAIL no plan folder: made")
' "$T_TMP/bi.out" "$T_TMP/pc"
version=$("$OT" --version 2>&1)
case $version in
    *"cuda: built in, usable"*) echo "skipped: bench_infer --device cuda refused (a GPU is usable here)" ;;
    *)
        binfer "--device cuda without a usable GPU" 1 "$MODEL" --device cuda
        if [ "$(wc -l <"$T_TMP/bi.err")" -eq 1 ] &&
            grep -qE "^bench_infer: device 'cuda:0'( is not usable|: this build has no CUDA)" "$T_TMP/bi.err"; then
            ok "bench_infer --device cuda: one line naming why"
        else
            fail "bench_infer --device cuda: one line naming why" "$(head -c 300 "$T_TMP/bi.err")"
        fi ;;
esac

# ---- bench_report.py: each row's figures and verdict from made-up runs
py_checks "bench_report" '
import csv, json, os, subprocess, sys
d, py = sys.argv[1], sys.argv[2]
b = os.path.join(d, "b"); o = os.path.join(d, "o")
os.makedirs(b); os.makedirs(o)
res = os.path.join(d, "results.tsv")
def put(name, time=None, out=None, err=None, csv_rows=None):
    base = os.path.join(b, name)
    if time is not None: open(base + ".time", "w").write(time + "\n")
    if out is not None: open(base + ".out", "w").write("some text\n" + json.dumps(out) + "\n")
    if err is not None: open(base + ".err", "w").write(err)
    if csv_rows is not None:
        with open(base + ".csv", "w") as f:
            f.write("epoch,loss,accuracy,val_loss,val_accuracy,lr,images_per_s,seconds\n")
            for i, (ips, s) in enumerate(csv_rows):
                f.write("%d,2.3,0.1,,,0.0001,%s,%s\n" % (i + 1, ips, s))
def row(check):
    p = subprocess.run([py, "tests/gpu/bench_report.py", "row", check, b, res, o],
                       capture_output=True, text=True)
    if p.returncode:
        return "exit %d" % p.returncode, p.stderr
    st, _, detail = p.stdout.rstrip("\n").partition("\t")
    return st, detail
def check(name, got, want_status, *frags):
    st, detail = got
    bad = st != want_status or any(f not in detail for f in frags)
    print(("FAIL %s: %s / %s" % (name, st, detail)) if bad else "ok " + name)
pt_train = lambda ips: {"steady_images_per_s": ips, "loop_images_per_s": ips * 0.9, "loop_s": 20.0,
                        "warm_steps": 3, "first_step_s": 6.5, "version": "2.11.0"}
# full training: images/s over the epoch against PyTorch after its warm-up
put("pt_full_bf16", "0 30000 60", pt_train(1000.0))
put("ot_full_bf16", "0 12000 60", csv_rows=[(1500.0, 6.8)])
check("full_bf16 above the goal", row("bench_full_bf16"), "pass", "1.50x", "1500 images/s", "1000 images/s", "goal >= 1x")
put("ot_full_bf16", "0 12000 60", csv_rows=[(900.0, 11.4)])
check("full_bf16 below the goal", row("bench_full_bf16"), "fail", "0.90x")
put("ot_full_bf16", "124 60000 60")
check("full_bf16 timed out", row("bench_full_bf16"), "fail", "did not finish within 60 s")
put("ot_full_bf16", "1 800 60", err="onnxtrain: error: something broke\n")
check("full_bf16 run failed", row("bench_full_bf16"), "fail", "exit 1: onnxtrain: error: something broke")
put("ot_full_bf16", "0 12000 60", csv_rows=[(1200.0, 8.5)])
put("pt_full_bf16", "skip out of time (CHECK_SECONDS=540)")
check("full_bf16 PyTorch not started", row("bench_full_bf16"), "skipped: out of time (CHECK_SECONDS=540)")
put("pt_full_bf16", "0 30000 60", out={"no": "figures"})
check("full_bf16 unreadable result", row("bench_full_bf16"), "fail", "unreadable result")
put("pt_full_bf16", "0 30000 60", pt_train(1000.0))
# whole-process wall time, 5 epochs: PyTorch / onnxtrain against 2.5 and 4
put("pt_ft", "0 30000 60", {"loop_s": 22.0})
put("ot_ft", "0 10000 60", csv_rows=[(2000, 5.0), (9000, 1.1), (9000, 1.1), (9000, 1.1), (9000, 1.1)])
check("finetune 3x", row("bench_finetune"), "pass", "3.00x", "goal >= 2.5x", "onnxtrain 10 s", "PyTorch 30 s")
put("ot_ft", "0 15000 60", csv_rows=[(2000, 5.0)])
check("finetune 2x", row("bench_finetune"), "fail", "2.00x")
put("pt_fe", "0 40000 60", {"loop_s": 30.0})
put("ot_fe", "0 10000 60", csv_rows=[(3000, 3.0), (90000, 0.1)])
check("feature_extract 4x", row("bench_feature_extract"), "pass", "4.00x", "goal >= 4x")
put("ot_fe", "0 10500 60", csv_rows=[(3000, 3.0)])
check("feature_extract 3.8x", row("bench_feature_extract"), "fail", "3.81x")
put("ot_fe", "0 10000 60")
os.remove(os.path.join(b, "ot_fe.csv"))
check("feature_extract without its log", row("bench_feature_extract"), "fail", "no --log file")
# inference: latency at batch 1 (lower is better), images/s at 256
inf = lambda med, n: {"median_s": med, "images_per_s": n / med, "runs": 200, "batch": n, "version": "2.11.0"}
put("pt_infer_b1", "0 9000 60", inf(0.002, 1))
put("ot_infer_b1", "0 1500 60", inf(0.0015, 1))
check("infer_b1 faster", row("bench_infer_b1"), "pass", "1.33x", "1.5 ms", "2 ms")
put("ot_infer_b1", "0 1500 60", inf(0.0025, 1))
check("infer_b1 slower", row("bench_infer_b1"), "fail", "0.80x")
put("pt_infer_b256", "0 9000 60", inf(0.05, 256))
put("ot_infer_b256", "0 3000 60", inf(0.04, 256))
check("infer_b256 faster", row("bench_infer_b256"), "pass", "1.25x", "onnxtrain 40 ms", "PyTorch 50 ms")
# the cold start: the whole process within 1 s; PyTorch first step for comparison
put("ot_cold", "0 800 60")
check("cold_start 0.8 s", row("bench_cold_start"), "pass", "0.8 s", "6.5 s after its start")
put("ot_cold", "0 1500 60")
check("cold_start 1.5 s", row("bench_cold_start"), "fail", "1.5 s")
# the fp32 reference: no goal
put("pt_full_fp32", "0 30000 60", pt_train(500.0))
put("ot_full_fp32", "0 30000 60", csv_rows=[(400.0, 25.6)])
check("full_fp32 reference", row("bench_full_fp32"), "pass", "0.80x", "no goal")
# host memory: the correctness phase outcome
check("host_memory not run", row("bench_host_memory"), "skipped: the correctness phase did not run host_memory_flat")
open(res, "w").write("host_memory_flat\tfail\tpeak RSS 100 KiB after 200 steps, 900 KiB after 1000\n")
check("host_memory from the correctness phase", row("bench_host_memory"), "fail", "900 KiB after 1000")
st = row("bench_nonsense")
print("ok unknown check refused" if st[0] == "exit 2" else "FAIL unknown check refused: %r" % (st,))
# the summary: one row per check in the goals order, the Markdown table
rows = json.load(open(os.path.join(o, "bench.json")))
want = ["bench_full_bf16", "bench_finetune", "bench_feature_extract", "bench_infer_b1",
        "bench_infer_b256", "bench_cold_start", "bench_host_memory", "bench_full_fp32"]
got = [r["check"] for r in rows]
print("ok bench.json rows" if got == want else "FAIL bench.json rows: %r" % got)
keys = {"check", "goal", "onnxtrain", "pytorch", "ratio", "need", "pass", "status", "detail"}
print("ok bench.json fields" if all(keys <= set(r) for r in rows) else "FAIL bench.json fields: %r" % rows[0])
md = open(os.path.join(o, "bench.md")).read().splitlines()
table = [l for l in md if l.startswith("| ") and not l.startswith("| goal")]
ok = (len(table) == 8 and "| goal | onnxtrain | PyTorch | ratio | pass |" in md and
      "PyTorch 2.11.0" in md[0] and
      any("| 6400 images/s | 5120 images/s | 1.25x | yes |" in l for l in table) and
      any("| 2.5 ms | 2 ms | 0.80x | **no** |" in l for l in table) and
      any("| 0.80x | no goal |" in l for l in table) and
      any("| - | - | - | **not measured** |" in l for l in table))
print("ok bench.md" if ok else "FAIL bench.md: %r" % md)
' "$T_TMP/report" "$PY"

# ---- the dry run: every run of the benchmark phase on the CPU, tiny sizes
dry() { # NAME RC ENV...: the dry run with ENV, expecting exit RC
    local name=$1 want=$2 rc
    shift 2
    rm -rf "$T_TMP/dry"
    env TMPDIR="$T_TMP" OUT="$T_TMP/dry" BIN="$OT" BENCH_INFER="$INFER" PYTHON="$PY" "$@" \
        bash tests/gpu/check.sh --dry-run-bench >"$T_TMP/dry.txt" 2>&1
    rc=$?
    if [ "$rc" -eq "$want" ]; then
        ok "$name: exit $want"
    else
        fail "$name: exit $want" "got $rc: $(tail -n 3 "$T_TMP/dry.txt" | tr '\n' ' ')"
    fi
}
dry "dry run" 0
py_checks "dry run" '
import json, sys
j = json.load(open(sys.argv[1] + "/check.json"))
rows = {r["check"]: r for r in j.get("bench", [])}
want = sys.argv[2].split()
print("ok every row" if sorted(rows) == sorted(want) else "FAIL every row: %r" % sorted(rows))
print("ok marked a dry run" if j.get("dry_run") is True else "FAIL marked a dry run: %r" % j.get("dry_run"))
for c in want:
    r, chk = rows.get(c, {}), j["checks"].get(c, {})
    if c == "bench_host_memory":
        good = r.get("status", "").startswith("skipped") and chk.get("status") == r.get("status")
    elif c == "bench_cold_start":
        good = r.get("status") in ("pass", "fail") and r.get("onnxtrain") and r.get("pytorch") not in ("", "-")
    else:
        good = (r.get("status") in ("pass", "fail") and r.get("onnxtrain") and r.get("pytorch") and
                isinstance(r.get("ratio"), float) and r["ratio"] > 0 and chk.get("status") == r["status"])
    print(("ok " if good else "FAIL ") + c + ("" if good else ": %r" % r))
md = open(sys.argv[1] + "/bench.md").read()
print("ok bench.md says dry run" if "dry run" in md and md.count("\n| ") == 9 else "FAIL bench.md: %r" % md)
' "$T_TMP/dry" "$ROWS"

# a binary that fails: the row fails with its message, the dry run exits 1
printf '#!/bin/sh\necho "onnxtrain: error: made to fail" >&2\nexit 3\n' >"$T_TMP/fail.sh"
chmod +x "$T_TMP/fail.sh"
dry "a failing binary" 1 BIN="$T_TMP/fail.sh" BENCH_ROWS="cold_start"
py_checks "a failing binary" '
import json, sys
c = json.load(open(sys.argv[1] + "/check.json"))["checks"]["bench_cold_start"]
good = c["status"] == "fail" and "exit 3: onnxtrain: error: made to fail" in c["detail"]
print("ok the row says why" if good else "FAIL the row says why: %r" % c)
' "$T_TMP/dry"
# one that hangs: stopped at BENCH_SECONDS
printf '#!/bin/sh\nsleep 60\n' >"$T_TMP/hang.sh"
chmod +x "$T_TMP/hang.sh"
dry "a hanging binary" 1 BIN="$T_TMP/hang.sh" BENCH_ROWS="cold_start" BENCH_SECONDS=2
py_checks "a hanging binary" '
import json, sys
c = json.load(open(sys.argv[1] + "/check.json"))["checks"]["bench_cold_start"]
good = c["status"] == "fail" and "did not finish within 2 s" in c["detail"]
print("ok stopped at BENCH_SECONDS" if good else "FAIL stopped at BENCH_SECONDS: %r" % c)
' "$T_TMP/dry"
# no time left: nothing starts, the rows say so
dry "out of time" 0 BENCH_ROWS="cold_start finetune" CHECK_SECONDS=5
py_checks "out of time" '
import json, sys
c = json.load(open(sys.argv[1] + "/check.json"))["checks"]
good = all(c[k]["status"] == "skipped: out of time (CHECK_SECONDS=5)" for k in ("bench_cold_start", "bench_finetune"))
print("ok rows skipped" if good else "FAIL rows skipped: %r" % c)
' "$T_TMP/dry"
finish
