#!/bin/bash
# test_nccl.sh: NCCL's communicator (src/dist/nccl.c) without a GPU. The
# suite builds stand-ins for libnccl.so.2 (tests/dist/nccl_standin.c: the
# calls onnxtrain makes, on host buffers, reduced through MPI) and runs
# `finetune` with the test-only switch ONNXTRAIN_NCCL_HOST=1, which puts the
# CPU executor's buffers behind NCCL's calls (the host's stand-in queue):
#   - the loader's one-line errors: no library, a missing symbol, too old;
#     --distributed nccl without --device cuda;
#   - one rank without a launcher (--distributed nccl) gives the bytes of
#     the run without NCCL (a one-rank sum is the identity);
#   - 2 ranks under mpirun: the unique id of rank 0 reaches rank 1, the
#     gradients' buckets are reduced in the same order every step, the
#     --sync-bn statistics go through NCCL too, and the model is the MPI
#     path's, byte for byte;
#   - two ranks on one device are refused in one line;
#   - a stopped rank, and an asynchronous NCCL error, end the job within
#     the time-out through ncclCommAbort.
#
#   BUILD=build bash tests/cli/test_nccl.sh
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=tests/cli/lib.sh
. tests/cli/lib.sh

skip_if_fast
need_cli

CUDA_INC=${CUDA_HOME:-/usr/local/cuda}/include
if [ ! -f "$CUDA_INC/nccl.h" ]; then
    echo "skipped: no nccl.h under $CUDA_INC (the build has no NCCL either)"
    finish
fi
if ! command -v mpirun >/dev/null 2>&1 || ! pkg-config --exists ompi-c 2>/dev/null ||
    [ ! -e "$BUILD/libonnxtrain_mpi.so" ]; then
    fail setup "OpenMPI (openmpi-bin, libopenmpi-dev) and $BUILD/libonnxtrain_mpi.so are needed"
    finish
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader,tcp
export OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
export OMP_NUM_THREADS=1

D=$T_TMP
# the stand-ins: whole, without ncclCommAbort, and of NCCL 2.3.7
for v in good:"" noabort:-DSTANDIN_NO_ABORT old:-DSTANDIN_OLD; do
    name=${v%%:*}
    mkdir -p "$D/$name"
    # shellcheck disable=SC2046
    if ! cc -std=c11 -O1 -fPIC -shared -D_GNU_SOURCE ${v#*:} -isystem "$CUDA_INC" \
        $(pkg-config --cflags ompi-c) -o "$D/$name/libnccl.so.2" tests/dist/nccl_standin.c \
        $(pkg-config --libs ompi-c) 2>"$D/cc.err"; then
        fail setup "building the stand-in ($name): $(head -n 3 "$D/cc.err")"
        finish
    fi
done
STANDIN=$D/good/libnccl.so.2

FX=$BUILD/fixtures
DATA=$BUILD/tiny_cifar
if ! "$PY" tests/fixtures/make_resnet18.py "$FX" >"$D/make.log" 2>&1 ||
    ! "$PY" tests/fixtures/make_tiny_cifar.py "$DATA" >>"$D/make.log" 2>&1; then
    fail setup "fixtures: $(tail -n 1 "$D/make.log")"
    finish
fi
BN=$FX/resnet18_bn.onnx
# fine-tune mode: layer4's BatchNorms train (--sync-bn reduces them); 1 MB
# buckets: several per step
RUN=(finetune "$BN" --data "$DATA" --classes 10 --image-size 32 --batch-size 8 --epochs 1
     --max-steps 6 --optimizer sgd --momentum 0.9 --lr 0.01 --deterministic --threads 1
     --mode fine-tune --bucket-mb 1)

# this build has NCCL?
ONNXTRAIN_NCCL_HOST=1 ONNXTRAIN_NCCL_LIB=$STANDIN ot "${RUN[@]}" --distributed nccl --max-steps 1 \
    -o "$D/probe.onnx"
if matches "$T_ERR" "this build has no CUDA backend"; then
    echo "skipped: this build has no NCCL (no CUDA backend)"
    finish
fi

# ------------------------------------------------------------ the loader's errors
ONNXTRAIN_NCCL_HOST=1 ONNXTRAIN_NCCL_LIB=$D/none/libnccl.so.2 \
    expect_error "no library" "NCCL: cannot load libnccl.so.2&ONNXTRAIN_NCCL_LIB&$D/none" \
    "${RUN[@]}" --distributed nccl -o "$D/x.onnx"
ONNXTRAIN_NCCL_HOST=1 ONNXTRAIN_NCCL_LIB=$D/noabort/libnccl.so.2 \
    expect_error "missing symbol" "lacks ncclCommAbort&2.9 or newer" \
    "${RUN[@]}" --distributed nccl -o "$D/x.onnx"
ONNXTRAIN_NCCL_HOST=1 ONNXTRAIN_NCCL_LIB=$D/old/libnccl.so.2 \
    expect_error "too old" "is NCCL 2.3.7; 2.9 or newer is needed" \
    "${RUN[@]}" --distributed nccl -o "$D/x.onnx"
ONNXTRAIN_NCCL_LIB=$STANDIN expect_error "nccl needs cuda" "--distributed nccl&--device cuda" \
    "${RUN[@]}" --distributed nccl -o "$D/x.onnx"
[ -e "$D/x.onnx" ] && fail "no output on error" "$D/x.onnx was written" || ok "no output on error"

# ------------------------------------------------------------ one rank alone
ot "${RUN[@]}" -o "$D/plain.onnx"
LOG1=$D/one.log
NCCL_STANDIN_LOG=$LOG1 ONNXTRAIN_NCCL_HOST=1 ONNXTRAIN_NCCL_LIB=$STANDIN \
    ot "${RUN[@]}" --distributed nccl -o "$D/one.onnx"
if [ "$T_RC" -eq 0 ] && [ -s "$D/plain.onnx" ] && cmp -s "$D/plain.onnx" "$D/one.onnx"; then
    ok "one rank: same bytes"
else
    fail "one rank: same bytes" "$(describe_run)"
fi
nb=$(sed -n 's/.*all-reduced in \([0-9]*\) buckets\? per step.*/\1/p' <<<"$T_OUT")
n32=$(grep -c "^rank 0 allreduce f32" "$LOG1" 2>/dev/null)
if grep -q "^rank 0 init 1 " "$LOG1" 2>/dev/null && [ -n "$nb" ] && [ "$nb" -gt 1 ] &&
    [ "$n32" -eq $((nb * 6)) ] && grep -q "data-parallel: 1 rank,.*NCCL's calls on the host" <<<"$T_OUT"; then
    ok "one rank: through NCCL"
else
    fail "one rank: through NCCL" "buckets ${nb:-?}, f32 all-reduces $n32: $(head -n 3 "$LOG1" 2>/dev/null)"
fi

# ------------------------------------------------------------ two ranks
mpirun_ot() { # NP ARGS...: sets T_RC, T_OUT, T_ERR
    local np=$1
    shift
    timeout 120 mpirun --oversubscribe -np "$np" "$@" >"$D/mpi.out" 2>"$D/mpi.err"
    T_RC=$?
    T_OUT=$(tr '\r' '\n' <"$D/mpi.out")
    T_ERR=$(cat "$D/mpi.err")
}
NCCL_ENV=(-x ONNXTRAIN_NCCL_HOST=1 -x "ONNXTRAIN_NCCL_LIB=$STANDIN")
mpirun_ot 2 "$OT" "${RUN[@]}" --sync-bn -o "$D/mpi2.onnx"
mpi_rc=$T_RC
LOG2=$D/two.log
mpirun_ot 2 "${NCCL_ENV[@]}" -x "NCCL_STANDIN_LOG=$LOG2" "$OT" "${RUN[@]}" --sync-bn \
    --distributed nccl -o "$D/nccl2.onnx"
if [ "$mpi_rc" -eq 0 ] && [ "$T_RC" -eq 0 ] && [ -s "$D/mpi2.onnx" ] &&
    cmp -s "$D/mpi2.onnx" "$D/nccl2.onnx"; then
    ok "two ranks: the MPI path's bytes"
else
    fail "two ranks: the MPI path's bytes" "MPI exit $mpi_rc, NCCL exit $T_RC: $(head -c 300 "$D/mpi.err")"
fi
if [ -z "$T_ERR" ] && [ "$(grep -c '^wrote ' <<<"$T_OUT")" -eq 1 ] &&
    grep -q "data-parallel: 2 ranks,.*--sync-bn.*NCCL's calls on the host" <<<"$T_OUT"; then
    ok "two ranks: one report"
else
    fail "two ranks: one report" "stderr: $(head -c 300 "$D/mpi.err")"
fi
nb=$(sed -n 's/.*all-reduced in \([0-9]*\) buckets\? per step.*/\1/p' <<<"$T_OUT")
"$PY" - "$LOG2" "${nb:-0}" 6 <<'PYEOF' >"$D/order.txt"
import sys
lines = [l.split() for l in open(sys.argv[1])]
nb, steps = int(sys.argv[2]), int(sys.argv[3])
ids = {l[1]: l[4] for l in lines if l[2] == "init"}
print("ok id" if len(ids) == 2 and len(set(ids.values())) == 1 and ids["0"] else
      "FAIL id: %s" % ids)
for r in "01":
    f32 = [int(l[4]) for l in lines if l[1] == r and l[2] == "allreduce" and l[3] == "f32"]
    f64 = [int(l[4]) for l in lines if l[1] == r and l[2] == "allreduce" and l[3] == "f64"]
    per = [f32[i * nb:(i + 1) * nb] for i in range(steps)] if nb else []
    same = nb > 1 and len(f32) == nb * steps and all(p == per[0] for p in per)
    print("ok buckets %s" % r if same else "FAIL buckets %s: %d buckets, %d all-reduces: %s" %
          (r, nb, len(f32), f32[:12]))
    # layer4's BatchNorms: forward (C+1, C) and backward (2C) sums every step
    bn = f64.count(513) == f64.count(512) and f64.count(513) > 0 and f64.count(1024) > 0
    print("ok bn %s" % r if bn else "FAIL bn %s: %s" % (r, sorted(set(f64))))
other = [l for l in lines if l[1] == "1"]
f0 = [l[3:] for l in lines if l[1] == "0" and l[2] == "allreduce"]
f1 = [l[3:] for l in other if l[2] == "allreduce"]
print("ok same order" if f0 == f1 else "FAIL same order: rank 0 %d calls, rank 1 %d" % (len(f0), len(f1)))
PYEOF
while read -r line; do
    case $line in
        "ok "*) ok "two ranks: ${line#ok }" ;;
        "FAIL "*) rest=${line#FAIL }; fail "two ranks: ${rest%%:*}" "${rest#*: }" ;;
    esac
done <"$D/order.txt"
[ -s "$D/order.txt" ] || fail "two ranks: the stand-in's log" "not read"

# ------------------------------------------------------------ one device for two ranks
mpirun_ot 2 -x ONNXTRAIN_NCCL_HOST=device:0 -x "ONNXTRAIN_NCCL_LIB=$STANDIN" "$OT" "${RUN[@]}" \
    --distributed nccl -o "$D/dup.onnx"
if [ "$T_RC" -ne 0 ] && [ "$(grep -c "onnxtrain:" <<<"$T_ERR")" -eq 1 ] &&
    matches "$T_ERR" "rank 0: NCCL takes one GPU per rank&ranks 0 and 1 would share" &&
    [ ! -e "$D/dup.onnx" ]; then
    ok "one device, two ranks: refused"
else
    fail "one device, two ranks: refused" "exit $T_RC: $(head -c 300 "$D/mpi.err")"
fi

# ------------------------------------------------------------ faults
# ends_within NAME SECONDS PATTERN LOG: the job started last ends within
# SECONDS with PATTERN in its stderr, ncclCommAbort called on a rank
ends_within() {
    local name=$1 limit=$2 pat=$3 log=$4 t0=$5 took rc
    for _ in $(seq 1 400); do
        kill -0 "$MP" 2>/dev/null || break
        sleep 0.1
    done
    took=$(($(date +%s) - t0))
    if kill -0 "$MP" 2>/dev/null; then
        kill "$MP"
        [ -n "$victim" ] && kill -CONT "$victim" 2>/dev/null
        fail "$name" "the job still runs after ${took}s"
        return
    fi
    wait "$MP"
    rc=$?
    [ -n "$victim" ] && kill -CONT "$victim" 2>/dev/null
    if [ "$rc" -ne 0 ] && [ "$took" -le "$limit" ] && grep -q "$pat" "$D/mpi.err" &&
        grep -q " abort$" "$log" 2>/dev/null; then
        ok "$name"
    else
        fail "$name" "exit $rc after ${took}s, aborts: $(grep -c ' abort$' "$log" 2>/dev/null): $(head -c 300 "$D/mpi.err")"
    fi
}
LONG=("${RUN[@]}" --max-steps 1000 --epochs 50 --rank-timeout 3 --distributed nccl)
LOG3=$D/stop.log
mpirun --oversubscribe -np 2 "${NCCL_ENV[@]}" -x "NCCL_STANDIN_LOG=$LOG3" "$OT" "${LONG[@]}" \
    -o "$D/stop.onnx" >"$D/mpi.out" 2>"$D/mpi.err" &
MP=$!
victim=
for _ in $(seq 1 100); do
    sleep 0.1
    kids=$(pgrep -P "$MP" | sort -n)
    [ "$(wc -w <<<"$kids")" -ge 2 ] && victim=$(tail -n 1 <<<"$kids") && break
done
# stop it once it reduces through NCCL
for _ in $(seq 1 200); do
    grep -q "allreduce f32" "$LOG3" 2>/dev/null && break
    sleep 0.1
done
t0=$(date +%s)
[ -n "$victim" ] && kill -STOP "$victim"
ends_within "stopped rank" 20 "sent no heartbeat" "$LOG3" "$t0"

LOG4=$D/async.log
t0=$(date +%s)
mpirun --oversubscribe -np 2 "${NCCL_ENV[@]}" -x "NCCL_STANDIN_LOG=$LOG4" \
    -x NCCL_STANDIN_FAIL_AFTER=3 "$OT" "${LONG[@]}" -o "$D/async.onnx" \
    >"$D/mpi.out" 2>"$D/mpi.err" &
MP=$!
victim=
ends_within "asynchronous error" 40 "rank 1: NCCL: stand-in: a remote rank failed" "$LOG4" "$t0"

finish
