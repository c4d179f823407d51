#!/bin/bash
# test_threads.sh: threads on a shared machine. A command that computes runs
# itself again once with a short OpenMP spin (GOMP_SPINCOUNT) unless the user
# set OMP_WAIT_POLICY or GOMP_SPINCOUNT, and GNU OpenMP in that process reads
# it (OMP_DISPLAY_ENV=verbose makes libgomp print what it read); without
# --threads or OMP_NUM_THREADS the CLI picks the cores other processes leave
# free, never more than its affinity mask, and says so in one line. The
# count from a given load is checked in the unit tests (cpuload_*).
#
#   BUILD=build bash tests/cli/test_threads.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
need_cli
unset OMP_NUM_THREADS OMP_WAIT_POLICY GOMP_SPINCOUNT

"$PY" - "$T_TMP/relu.onnx" <<'PYEOF' || { fail setup "cannot build the model"; finish; }
import sys
import onnx
from onnx import TensorProto, helper
g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
m.ir_version = 7
onnx.save(m, sys.argv[1])
PYEOF
M=$T_TMP/relu.onnx

# spin_seen NAME WANT_BLOCKS WANT_SPIN ENV...: `onnxtrain run` under
# OMP_DISPLAY_ENV=verbose shows WANT_BLOCKS libgomp start-ups, the last one
# with GOMP_SPINCOUNT = WANT_SPIN
spin_seen() {
    local name=$1 blocks=$2 spin=$3 n last
    shift 3
    env "$@" OMP_DISPLAY_ENV=verbose "$OT" run "$M" --random >"$T_TMP/o" 2>"$T_TMP/e"
    local rc=$?
    n=$(grep -c "OPENMP DISPLAY ENVIRONMENT BEGIN" "$T_TMP/e")
    last=$(grep "GOMP_SPINCOUNT = " "$T_TMP/e" | tail -n 1 | sed "s/.*= '\\(.*\\)'/\\1/")
    if [ "$rc" -eq 0 ] && [ "$n" = "$blocks" ] && [ "$last" = "$spin" ]; then
        ok "$name"
    else
        fail "$name" "exit $rc, $n OpenMP start-ups, last GOMP_SPINCOUNT '$last' (want $blocks, '$spin')"
    fi
}

spin_seen "run: OpenMP in the re-executed process spins 10000" 2 10000 X=1
spin_seen "run: the user's GOMP_SPINCOUNT wins, no second start" 1 1234 GOMP_SPINCOUNT=1234
spin_seen "run: the user's OMP_WAIT_POLICY wins, no second start" 1 0 OMP_WAIT_POLICY=passive

OMP_DISPLAY_ENV=verbose "$OT" inspect "$M" >/dev/null 2>"$T_TMP/e"
n=$(grep -c "OPENMP DISPLAY ENVIRONMENT BEGIN" "$T_TMP/e")
if [ "$n" = 1 ]; then
    ok "inspect: computes nothing, starts once"
else
    fail "inspect: computes nothing, starts once" "$n OpenMP start-ups"
fi

# the picked count: one line (an info message for run), within the mask
CORES=$(nproc)
ot -v run "$M" --random
line=$(grep "threads: " <<<"$T_ERR")
if [[ $line =~ threads:\ ([0-9]+)\ \(([0-9]+)\ cores?,\ [0-9.]+\ busy\ with\ other\ processes\;\ GOMP_SPINCOUNT=10000\) ]] &&
    [ "${BASH_REMATCH[2]}" = "$CORES" ] && [ "${BASH_REMATCH[1]}" -ge 1 ] &&
    [ "${BASH_REMATCH[1]}" -le "$CORES" ] && [ "$(grep -c "threads: " <<<"$T_ERR")" = 1 ]; then
    ok "run -v: the picked thread count in one line"
else
    fail "run -v: the picked thread count in one line" "exit $T_RC, stderr: $T_ERR"
fi

if command -v taskset >/dev/null; then
    timeout 60 taskset -c 0 "$OT" -v run "$M" --random >/dev/null 2>"$T_TMP/e"
    if grep -q "threads: 1 (1 core, " "$T_TMP/e"; then
        ok "run -v: never more threads than the affinity mask"
    else
        fail "run -v: never more threads than the affinity mask" "$(cat "$T_TMP/e")"
    fi
else
    echo "skipped: taskset is absent"
fi

ot -v run "$M" --random --threads 1
if [ "$T_RC" -eq 0 ] && ! grep -q "threads: " <<<"$T_ERR"; then
    ok "run: --threads wins, nothing picked"
else
    fail "run: --threads wins, nothing picked" "exit $T_RC, stderr: $T_ERR"
fi
OMP_NUM_THREADS=1 ot -v run "$M" --random
if [ "$T_RC" -eq 0 ] && ! grep -q "threads: " <<<"$T_ERR"; then
    ok "run: OMP_NUM_THREADS wins, nothing picked"
else
    fail "run: OMP_NUM_THREADS wins, nothing picked" "exit $T_RC, stderr: $T_ERR"
fi

# finetune says it on its log (standard output); --deterministic keeps one thread
if [ -d "$BUILD/tiny_cifar" ] && [ -f "$BUILD/fixtures/resnet18_bn.onnx" ]; then
    FT=(finetune "$BUILD/fixtures/resnet18_bn.onnx" --data "$BUILD/tiny_cifar" --classes 10
        --mode feature-extract --epochs 1 --image-size 32 --max-steps 1)
    ot "${FT[@]}" -o "$T_TMP/ft.onnx"
    if [ "$T_RC" -eq 0 ] && [ "$(grep -c "^threads: [0-9]* (" <<<"$T_OUT")" = 1 ]; then
        ok "finetune: the picked thread count on its log"
    else
        fail "finetune: the picked thread count on its log" "$(describe_run)"
    fi
    ot "${FT[@]}" --deterministic -o "$T_TMP/ft.onnx"
    if [ "$T_RC" -eq 0 ] && ! grep -q "^threads: " <<<"$T_OUT"; then
        ok "finetune --deterministic: one thread, nothing picked"
    else
        fail "finetune --deterministic: one thread, nothing picked" "$(describe_run)"
    fi
else
    echo "skipped: no $BUILD/tiny_cifar or ResNet-18 fixture (make test makes them)"
fi
finish
