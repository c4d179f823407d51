#!/bin/bash
# test_checkpoint.sh: `finetune --checkpoint/--resume` and `onnxtrain export`
# (docs/checkpoint.md) on the tiny CIFAR set at 32x32 with the ResNet-18
# fixture, fine-tune mode (layer4 + fc, BN in training mode, prefix cache):
#   - an uninterrupted run vs one stopped by SIGTERM (after the first epoch)
#     or SIGINT (inside the first epoch) and resumed: the same output bytes
#     with --deterministic; with two threads and no --deterministic, the same
#     tensors within a tolerance;
#   - two SIGTERMs at once (as timeout(1) sends them) are one clean stop; a
#     second signal a second later ends the process at once, the checkpoint
#     whole;
#   - SIGKILL while checkpoints are written: the file always loads with python
#     onnx, and resuming from it gives the same output bytes;
#   - the checkpoint passes onnx.checker, keeps the optimizer state as unused
#     initializers and the progress, the epoch history and the CRC-32 (last)
#     in metadata; `export` gives the final model (same tensors, same bytes);
#   - with --cache-dtype bf16, a run stopped inside the second epoch and
#     resumed (the cache rebuilt) gives the uninterrupted run's bytes;
#   - resuming a finished run writes the output; a mismatched --resume (lr,
#     data, model, fewer epochs, cache dtype, not a checkpoint) is refused;
#   - the NaN guard: --lr 1e30 stops with a message naming the step, exit 1,
#     and the checkpoint from before stays whole and finite.
# Skipped when OT_FAST=1.
#
#   BUILD=build bash tests/cli/test_checkpoint.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
skip_if_fast
need_cli

FX=$BUILD/fixtures
DATA=$BUILD/tiny_cifar
if ! "$PY" tests/fixtures/make_resnet18.py "$FX" >"$T_TMP/make.log" 2>&1 ||
    ! "$PY" tests/fixtures/make_tiny_cifar.py "$DATA" >>"$T_TMP/make.log" 2>&1 ||
    ! "$PY" tests/fixtures/make_tiny_cifar.py "$T_TMP/other_data" 64 >>"$T_TMP/make.log" 2>&1; then
    fail setup "fixtures: $(tail -n 1 "$T_TMP/make.log")"
    finish
fi
BN=$FX/resnet18_bn.onnx
D=$T_TMP
BASE=(--data "$DATA" --classes 10 --image-size 32 --batch-size 16 --mode fine-tune)
RUN=("${BASE[@]}" --epochs 3)
DET=("${RUN[@]}" --deterministic)

# Starts the CLI in the background (stdout and stderr to $D/bg.out/.err); sets BG.
start_bg() {
    timeout -k 5 "$T_TIMEOUT" "$OT" "$@" </dev/null >"$D/bg.out" 2>"$D/bg.err" &
    BG=$!
}

# Waits up to 60 s for a file to appear. False when it did not.
wait_for() {
    local i
    for ((i = 0; i < 1200; i++)); do
        [ -e "$1" ] && return 0
        sleep 0.05
    done
    return 1
}

same_bytes() { # NAME A B
    if cmp -s "$2" "$3"; then ok "$1"; else fail "$1" "$2 and $3 differ"; fi
}

# A checkpoint: checker, metadata, optimizer initializers read by no node,
# the step it records; optionally the tensors of a final model to compare
# with (after `export`).
CKPT='
import sys, onnx, numpy as np
from onnx import numpy_helper as nh
path, want_step = sys.argv[1], sys.argv[2]
m = onnx.load(path)
def ok(name, cond, why=""):
    print(("ok %s" % name) if cond else ("FAIL %s: %s" % (name, why)))
try:
    onnx.checker.check_model(m, full_check=True)
    ok("checker", True)
except Exception as e:
    ok("checker", False, str(e).splitlines()[0])
md = {p.key: p.value for p in m.metadata_props}
if want_step != "-":
    ok("step", md.get("onnxtrain.checkpoint.step") == want_step, md.get("onnxtrain.checkpoint.step"))
keys = ["format", "model", "data", "options", "params", "step", "epoch", "epoch_step",
        "steps_per_epoch", "history", "best_epoch", "best_val_accuracy", "crc32"]
ok("metadata", all("onnxtrain.checkpoint." + k in md for k in keys),
   [k for k in keys if "onnxtrain.checkpoint." + k not in md])
ok("checksum last", m.metadata_props[-1].key == "onnxtrain.checkpoint.crc32",
   m.metadata_props[-1].key)
ok("history", len(md.get("onnxtrain.checkpoint.history", "").splitlines()) ==
   int(md.get("onnxtrain.checkpoint.epoch", "-1")), md.get("onnxtrain.checkpoint.history"))
ok("preprocessing metadata", md.get("onnxtrain.image_size") == "32", md.get("onnxtrain.image_size"))
state = [t for t in m.graph.initializer if t.name.startswith("onnxtrain.optim.")]
names = {t.name for t in state}
read = {i for n in m.graph.node for i in n.input}
ok("adam state", "onnxtrain.optim.step" in names and "onnxtrain.optim.adam.m.0" in names and
   "onnxtrain.optim.adam.v.0" in names, sorted(names)[:4])
ok("state unused", not (names & read), sorted(names & read)[:3])
params = md.get("onnxtrain.checkpoint.params", "").split("\n")
ok("params listed", "fc.weight" in params and "layer4.1.bn2.weight" in params, params[:3])
finite = all(np.all(np.isfinite(nh.to_array(t))) for t in m.graph.initializer
             if nh.to_array(t).dtype.kind == "f")
ok("finite", finite)
'

# Two models' initializers: the same names and values (exactly, or within
# a tolerance).
TENSORS='
import sys, onnx, numpy as np
from onnx import numpy_helper as nh
a, b, tol = onnx.load(sys.argv[1]), onnx.load(sys.argv[2]), float(sys.argv[3])
wa = {t.name: nh.to_array(t) for t in a.graph.initializer}
wb = {t.name: nh.to_array(t) for t in b.graph.initializer}
def ok(name, cond, why=""):
    print(("ok %s" % name) if cond else ("FAIL %s: %s" % (name, why)))
ok("names", sorted(wa) == sorted(wb), sorted(set(wa) ^ set(wb))[:4])
worst, where = 0.0, "-"
for k in wa:
    if k in wb and wa[k].dtype.kind == "f":
        x, y = wa[k].astype(np.float64), wb[k].astype(np.float64)
        d = float(np.max(np.abs(x - y) / (tol + np.abs(y)))) if x.size else 0.0
        if x.shape != y.shape:
            d = float("inf")
        if d > worst:
            worst, where = d, k
    elif k in wb and not np.array_equal(wa[k], wb[k]):
        worst, where = float("inf"), k
ok("values", worst <= (tol if tol > 0 else 0.0), "worst %s: %g (tolerance %g)" % (where, worst, tol))
'

# ------------------------------------------------ the uninterrupted run
ot finetune "$BN" "${DET[@]}" -o "$D/ref.onnx" --checkpoint "$D/ref.ckpt"
if [ "$T_RC" -ne 0 ] || [ ! -s "$D/ref.onnx" ] || [ ! -s "$D/ref.ckpt" ]; then
    fail "reference run" "$(describe_run)"
    finish
fi
ok "reference run"
py_checks "checkpoint" "$CKPT" "$D/ref.ckpt" 18
expect_rc "export" 0 export "$D/ref.ckpt" "$D/exported.onnx"
py_checks "export" "$TENSORS" "$D/exported.onnx" "$D/ref.onnx" 0
same_bytes "export/bytes" "$D/exported.onnx" "$D/ref.onnx"
expect_error "export/not a checkpoint" "not an onnxtrain checkpoint" export "$D/ref.onnx" "$D/x.onnx"

# ------------------------------------ SIGTERM after the first epoch, resume
rm -f "$D/term.ckpt"
start_bg finetune "$BN" "${DET[@]}" -o "$D/term.onnx" --checkpoint "$D/term.ckpt"
wait_for "$D/term.ckpt"
kill -TERM "$BG"
wait "$BG"
rc=$?
if [ "$rc" -eq 143 ] && matches "$(cat "$D/bg.err")" "stopped by sigterm&--resume"; then
    ok "SIGTERM: exit 143 and a message"
else
    fail "SIGTERM" "exit $rc, stderr: $(head -c 300 "$D/bg.err")"
fi
if [ -e "$D/term.onnx" ]; then fail "SIGTERM: no output" "$D/term.onnx was written"; else ok "SIGTERM: no output"; fi
py_checks "SIGTERM checkpoint" '
import sys, onnx
md = {p.key: p.value for p in onnx.load(sys.argv[1]).metadata_props}
s = int(md["onnxtrain.checkpoint.step"])
print("ok mid-run" if 6 <= s < 18 else "FAIL mid-run: step %d" % s)
' "$D/term.ckpt"
ot finetune "$BN" "${DET[@]}" -o "$D/term.onnx" --checkpoint "$D/term.ckpt" --resume "$D/term.ckpt"
if [ "$T_RC" -eq 0 ] && [[ $T_OUT == *"resumed from"* ]]; then ok "SIGTERM: resume"; else fail "SIGTERM: resume" "$(describe_run)"; fi
same_bytes "SIGTERM: same output bytes" "$D/term.onnx" "$D/ref.onnx"
same_bytes "SIGTERM: same final checkpoint" "$D/term.ckpt" "$D/ref.ckpt"

# -------------------------- SIGINT inside the first epoch (every step), resume
rm -f "$D/int.ckpt"
start_bg finetune "$BN" "${DET[@]}" -o "$D/int.onnx" --checkpoint "$D/int.ckpt" --checkpoint-every 1
wait_for "$D/int.ckpt"
kill -INT "$BG"
wait "$BG"
rc=$?
if [ "$rc" -eq 130 ] && matches "$(cat "$D/bg.err")" "stopped by sigint"; then
    ok "SIGINT: exit 130"
else
    fail "SIGINT" "exit $rc, stderr: $(head -c 300 "$D/bg.err")"
fi
ot finetune "$BN" "${DET[@]}" -o "$D/int.onnx" --checkpoint "$D/int.ckpt" --checkpoint-every 1 \
    --resume "$D/int.ckpt"
if [ "$T_RC" -eq 0 ]; then ok "SIGINT: resume"; else fail "SIGINT: resume" "$(describe_run)"; fi
same_bytes "SIGINT: same output bytes" "$D/int.onnx" "$D/ref.onnx"

# ------------- two signals at once are one request; a later one ends the run
# (timeout(1) signals the process and then its group: the same request twice)
py_checks "double signal" '
import os, signal, subprocess, sys, time
ckpt, cmd = sys.argv[1], sys.argv[2:]
def ok(name, cond, why=""):
    print(("ok %s" % name) if cond else ("FAIL %s: %s" % (name, why)))
def start(extra):
    if os.path.exists(ckpt):
        os.unlink(ckpt)
    p = subprocess.Popen(cmd + extra, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    t0 = time.time()
    while not os.path.exists(ckpt) and time.time() - t0 < 120 and p.poll() is None:
        time.sleep(0.02)
    return p
p = start(["--image-size", "32", "--mode", "fine-tune", "--epochs", "3"])
p.send_signal(signal.SIGTERM)
time.sleep(0.02)  # delivered and handled: the second comes as a second signal
p.send_signal(signal.SIGTERM)
err = p.communicate(timeout=120)[1].decode()
ok("two at once: a clean stop", p.returncode == 143 and "stopped by SIGTERM" in err,
   (p.returncode, err[-300:]))
# full training at 224: a step takes long enough to be stopped in the middle
# of; the process is held (SIGSTOP) while the second signal waits
p = start(["--image-size", "224", "--mode", "full", "--epochs", "1"])
p.send_signal(signal.SIGTERM)
time.sleep(0.05)
p.send_signal(signal.SIGSTOP)
time.sleep(1.2)
p.send_signal(signal.SIGTERM)
p.send_signal(signal.SIGCONT)
err = p.communicate(timeout=120)[1].decode()
ok("a second later: ends at once", p.returncode == -signal.SIGTERM and "stopped by" not in err,
   (p.returncode, err[-300:]))
import onnx
ok("a second later: the checkpoint is whole", len(onnx.load(ckpt).graph.initializer) > 0)
' "$D/dbl.ckpt" "$OT" finetune "$BN" --data "$DATA" --classes 10 --batch-size 16 --deterministic \
    -o "$D/dbl.onnx" --checkpoint "$D/dbl.ckpt" --checkpoint-every 1

# ----------------------- SIGKILL while checkpoints are written, then resume
py_checks "SIGKILL" '
import os, signal, subprocess, sys, time, onnx
ckpt, cmd = sys.argv[1], sys.argv[2:]
p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
t0 = time.time()
while not os.path.exists(ckpt) and time.time() - t0 < 60 and p.poll() is None:
    time.sleep(0.02)
# The run is held (SIGSTOP) while each load parses the file, so that a slow
# load on a busy machine cannot let the run finish before the kill; it runs
# on between loads, writing checkpoints.
loads, bad = 0, []
while loads < 3 and p.poll() is None:
    p.send_signal(signal.SIGSTOP)
    try:
        md = {q.key: q.value for q in onnx.load(ckpt).metadata_props}
        int(md["onnxtrain.checkpoint.step"])
        loads += 1
    except Exception as e:
        bad.append(str(e).splitlines()[0] if str(e) else type(e).__name__)
        break
    finally:
        p.send_signal(signal.SIGCONT)
    time.sleep(0.3)
alive = p.poll() is None
if alive:
    p.send_signal(signal.SIGKILL)
p.wait()
try:
    md = {q.key: q.value for q in onnx.load(ckpt).metadata_props}
    step = int(md["onnxtrain.checkpoint.step"])
except Exception as e:
    bad.append("after the kill: %s" % e)
    step = -1
print("ok killed mid-run" if alive else "FAIL killed mid-run: the run ended first")
print("ok loads while written (%d)" % loads if not bad and loads > 0 else
      "FAIL loads while written: %s" % (bad or "never loaded"))
print("ok loads after the kill (step %d)" % step if step >= 0 else "FAIL loads after the kill: -")
' "$D/kill.ckpt" "$OT" finetune "$BN" "${DET[@]}" -o "$D/kill.onnx" --checkpoint "$D/kill.ckpt" \
    --checkpoint-every 2
ot finetune "$BN" "${DET[@]}" -o "$D/kill.onnx" --checkpoint "$D/kill.ckpt" --checkpoint-every 2 \
    --resume "$D/kill.ckpt"
if [ "$T_RC" -eq 0 ]; then ok "SIGKILL: resume"; else fail "SIGKILL: resume" "$(describe_run)"; fi
same_bytes "SIGKILL: same output bytes" "$D/kill.onnx" "$D/ref.onnx"

# ------------------------------------------------- resuming a finished run
ot finetune "$BN" "${DET[@]}" -o "$D/finished.onnx" --resume "$D/ref.ckpt"
if [ "$T_RC" -eq 0 ] && [[ $T_OUT == *"nothing left to train"* ]] && [[ $T_OUT != *"epoch 1/3"* ]]; then
    ok "finished run: writes the output"
else
    fail "finished run" "$(describe_run); stdout: $T_OUT"
fi
same_bytes "finished run: same output bytes" "$D/finished.onnx" "$D/ref.onnx"
# epochs may be raised: the run goes on from the end of epoch 3
ot finetune "$BN" "${BASE[@]}" --epochs 4 --deterministic -o "$D/more.onnx" --resume "$D/ref.ckpt"
if [ "$T_RC" -eq 0 ] && [[ $T_OUT == *"epoch 4/4"* ]] && [[ $T_OUT != *"epoch 3/4"* ]]; then
    ok "raised --epochs continues"
else
    fail "raised --epochs" "$(describe_run)"
fi

# -------------- bf16 cache: stopped inside epoch 2 (--max-steps), resumed
ot finetune "$BN" "${DET[@]}" --cache-dtype bf16 -o "$D/bf_ref.onnx"
ot finetune "$BN" "${DET[@]}" --cache-dtype bf16 -o "$D/bf.onnx" --checkpoint "$D/bf.ckpt" \
    --max-steps 6
ot finetune "$BN" "${DET[@]}" --cache-dtype bf16 -o "$D/bf.onnx" --checkpoint "$D/bf.ckpt" \
    --resume "$D/bf.ckpt"
if [ "$T_RC" -eq 0 ] && [[ $T_OUT == *"resumed from"* ]]; then
    same_bytes "bf16 cache: resumed = uninterrupted" "$D/bf.onnx" "$D/bf_ref.onnx"
else
    fail "bf16 cache: resume" "$(describe_run)"
fi

# ------------------------------------------------------ mismatched resumes
expect_error "refused: other lr" "options differ&lr&0.01" \
    finetune "$BN" "${DET[@]}" --lr 0.01 -o "$D/x.onnx" --resume "$D/ref.ckpt"
expect_error "refused: other mode" "options differ&mode" \
    finetune "$BN" "${DET[@]}" --mode full -o "$D/x.onnx" --resume "$D/ref.ckpt"
expect_error "refused: other data" "other data&64 images" \
    finetune "$BN" "${DET[@]}" --data "$D/other_data" -o "$D/x.onnx" --resume "$D/ref.ckpt"
# the same network in another file (one more metadata entry)
"$PY" -c '
import sys, onnx
m = onnx.load(sys.argv[1])
m.metadata_props.add(key="note", value="another file")
onnx.save(m, sys.argv[2])
' "$BN" "$D/other_bn.onnx"
expect_error "refused: other model" "another model" \
    finetune "$D/other_bn.onnx" "${DET[@]}" -o "$D/x.onnx" --resume "$D/ref.ckpt"
expect_error "refused: fewer epochs" "epochs" \
    finetune "$BN" "${BASE[@]}" --epochs 2 --deterministic -o "$D/x.onnx" --resume "$D/ref.ckpt"
expect_error "refused: other cache dtype" "options differ&cache-dtype" \
    finetune "$BN" "${DET[@]}" --cache-dtype bf16 -o "$D/x.onnx" --resume "$D/ref.ckpt"
expect_error "refused: not a checkpoint" "not an onnxtrain checkpoint" \
    finetune "$BN" "${DET[@]}" -o "$D/x.onnx" --resume "$D/ref.onnx"
if [ -e "$D/x.onnx" ]; then fail "refused: no output" "$D/x.onnx was written"; else ok "refused: no output"; fi
expect_usage "--checkpoint-every needs --checkpoint" \
    finetune "$BN" "${DET[@]}" -o "$D/x.onnx" --checkpoint-every 2

# ------------------------------------------------------------ NaN guard
expect_error "NaN: stops naming the step" "step&nan&checkpoint" \
    finetune "$BN" "${DET[@]}" --lr 1e30 -o "$D/nan.onnx" --checkpoint "$D/nan.ckpt" \
    --checkpoint-every 1
if [ -e "$D/nan.onnx" ]; then fail "NaN: no output" "$D/nan.onnx was written"; else ok "NaN: no output"; fi
if [ -s "$D/nan.ckpt" ]; then
    py_checks "NaN: checkpoint kept" "$CKPT" "$D/nan.ckpt" -
else
    fail "NaN: checkpoint kept" "no checkpoint"
fi

# ----------------- two threads, no --deterministic: same within a tolerance
ot finetune "$BN" "${RUN[@]}" --threads 2 -o "$D/t2ref.onnx"
if [ "$T_RC" -eq 0 ]; then ok "threads 2: reference"; else fail "threads 2: reference" "$(describe_run)"; fi
rm -f "$D/t2.ckpt"
start_bg finetune "$BN" "${RUN[@]}" --threads 2 -o "$D/t2.onnx" --checkpoint "$D/t2.ckpt"
wait_for "$D/t2.ckpt"
kill -TERM "$BG"
wait "$BG"
rc=$?
ot finetune "$BN" "${RUN[@]}" --threads 2 -o "$D/t2.onnx" --checkpoint "$D/t2.ckpt" \
    --resume "$D/t2.ckpt"
if [ "$rc" -eq 143 ] && [ "$T_RC" -eq 0 ]; then
    ok "threads 2: stop and resume"
    py_checks "threads 2" "$TENSORS" "$D/t2.onnx" "$D/t2ref.onnx" 1e-4
else
    fail "threads 2: stop and resume" "stop exit $rc; resume $(describe_run)"
fi

finish
