#!/bin/bash
# tests/gpu/check.sh: the CUDA backend's check on a GPU machine, in two
# phases (correctness, then the benchmark), writing $OUT/check.json and
# $OUT/check.log after every part, so that a run cut off still returns what
# it found. Exits 1 when a check failed; a check that cannot run here is
# "skipped: REASON" (no CUDA device, no compute-sanitizer...), never passed.
#
#   bash tests/gpu/check.sh pack [DIR]   here: build, then bundle the binary,
#                                        the shared libraries it needs, the
#                                        ONNX node tests and the tiny CIFAR set
#                                        into DIR/bundle.tar.xz (default .gpu,
#                                        ignored by git; about 15 MB)
#   bash tests/gpu/check.sh [run]        there, from the repository root, with
#                                        DIR in the working tree (carry .gpu)
#   bash tests/gpu/check.sh --dry-run-bench
#                                        here: the benchmark phase on the CPU at
#                                        tiny sizes (build/onnxtrain,
#                                        build/bench/bench_infer, /usr/bin/python3),
#                                        every command line and the report; exits
#                                        1 when a run failed (a goal missed on
#                                        the CPU does not count)
#
# Environment: OUT (default ./gpu-out; the dry run's ./gpu-out-dry),
# GPU_BUNDLE (default .gpu), PHASES ("correctness bench", or one of them),
# CHECK_SECONDS (no benchmark run starts or runs past this many seconds
# after the start, default 300, the issue's 5 minutes; 540 for a command
# given 10 minutes), BENCH_SECONDS (a cap per benchmark run, default 60), BENCH_ROWS
# (the benchmark's checks to run, without "bench_"; default all, in the
# order below), BENCH_IMAGES (10240), BENCH_BATCH (128), BENCH_SIZE (224),
# BENCH_EPOCHS (fine-tuning and feature extraction, 5), BENCH_HALF (the bf16
# rows' --precision, bf16), BENCH_RUNS_B1 / BENCH_RUNS_B256 (inference:
# "WARMUP RUNS", "20 200" and "5 20"); the dry run takes BIN, BENCH_INFER
# and PYTHON too. cuDNN and cuBLASLt are found in the CUDA toolkit or in
# PyTorch's wheels (nvidia.cudnn, nvidia.cublas).
#
# Checks (names in check.json):
#   version            onnxtrain --version: the CUDA backend is usable
#   kernels            build/test_kernels: the backend's own kernels against
#                      the plain C kernels, on the device
#   node_tests         every ONNX node test the CPU passes also passes on CUDA
#                      (the CPU's tolerances); ops the CUDA backend refuses
#                      are listed
#   model_tests        ResNet-18 (eval, BN, zoo opset 7), MobileNetV2,
#                      SqueezeNet against PyTorch's outputs, CPU and CUDA
#   fused_conv         SqueezeNet's model test with the convolutions' cuDNN
#                      epilogues fused (at least one) and unfused
#   fused_dgrad_relu   the fused cuDNN graphs (Conv+Bias+Relu, Conv+Add+Relu,
#                      ConvGradData+ReluGrad) each one step in fp32, in NHWC
#                      and in NCHW (ONNXTRAIN_CUDA_NHWC=0), outputs and
#                      gradients as the unfused executor's and the CPU's; and
#                      the 20 fp32 training steps with the fusion off against
#                      train_20's CUDA run
#   fused_conv_half    the same graphs fused in bf16 and in fp16 (half
#                      tensors in memory, fp32 compute), against unfused
#                      and the CPU
#   fp16_clip_grad     --clip-grad with fp16 loss scaling: the clipping sees
#                      the unscaled gradients, an overflow skips the step
#                      (test_unit step_graph_clips_unscaled_gradients on
#                      CUDA in fp16), and 20 fp16 steps with --clip-grad 1
#                      against 20 fp32 ones (train_20_fp16's bound)
#   backward_rules     the gradient checks of tests/unit/test_grad.c with their
#                      executors on CUDA (OT_TEST_DEVICE=cuda): finite
#                      differences, and CUDA against the CPU's plain kernels
#   train_20           ResNet-18 at 32x32, 20 fp32 steps (full mode) on both
#                      devices: loss curves and final weights close
#   frozen             fine-tune mode on CUDA: frozen weights bit-identical to
#                      the input model's
#   nhwc_matches_nchw  channels-last inside the backend (the default) against
#                      ONNXTRAIN_CUDA_NHWC=0 (everything NCHW): the model tests
#                      pass both ways, eval of the trained model gives the same
#                      loss and accuracy, and the 20 fp32 steps give the
#                      same loss curve and weights within train_20's
#                      tolerances; -vv must show nodes running NHWC
#   nccl_one_rank      the train_20 run on CUDA again with NCCL on as one rank
#                      without a launcher (--distributed nccl; libnccl.so.2 from
#                      PyTorch's nvidia.nccl or the toolkit): the gradients go
#                      through ncclAllReduce on the reductions' stream, and
#                      the model is the bytes of the run without NCCL
#   no_alloc_per_step  cudaMalloc and pinned host allocations do not grow with
#                      the number of steps
#   host_memory_flat   peak host RSS after 1,000 steps within 2% + 4 MiB of
#                      that after 200 (a partial last batch every epoch)
#   loader_not_limiting  --profile's "waiting for data" at most 5% of the
#                      loop in full training at 224x224, batch 32
#   upload_overlap     full training at 224x224, batch 32, with each batch
#                      handed in ahead of its step (the default on CUDA) and
#                      with ONNXTRAIN_PREFETCH=0: the same losses; the
#                      images/s of both in the detail
#   device_prep        the same with the uint8 images resized and normalised
#                      on the device (the default for CIFAR and IDX): the
#                      same losses as with the CPU loader's batches
#   device_prep_augment  device_prep with --augment: each image's random crop
#                      and flip resized on the device, against the CPU
#                      loader's augmented batches (the same losses)
#   upload_overlap_finetune  upload_overlap behind a frozen prefix (fine-tune:
#                      the next batch handed in ahead to the prefix's executor)
#   prefix_cache_device  feature extraction, 3 epochs: the prefix cache in
#                      device memory, the prefix run in the first epoch only
#                      (-v), the trained tensors as without the cache (fp32
#                      tolerance); the records forced into pinned host memory,
#                      and bf16 records on the device against the host's
#   sanitizer          one training step under compute-sanitizer memcheck
#   plan_cache         --autotune times plans and writes them to --plan-cache
#                      DIR; a second run takes every plan from there and
#                      makes none
#   bench_*            ResNet-18 at 224x224 against PyTorch 2.11 on the same
#                      GPU (tests/gpu/torch_bench.py: channels_last,
#                      cudnn.benchmark, TF32 off, the images in device
#                      memory), one check per goal of docs/gpu.md, its detail
#                      holding both figures, the ratio and the goal
#                      (tests/gpu/bench_report.py; the table in check.json's
#                      "bench" and in $OUT/bench.md):
#   bench_full_bf16    full training, --precision bf16 against autocast bf16,
#                      batch 128, 1 epoch of 10,240 images: onnxtrain's
#                      images/s over its epoch >= PyTorch's after 3 warm-up
#                      steps
#   bench_cold_start   one full-training step (bf16) with every plan on disk
#                      (those bench_full_bf16's --autotune wrote): the whole
#                      process within 1 s
#   bench_finetune     layer4 + fc, 5 epochs (fp32): PyTorch's whole process
#                      >= 2.5x onnxtrain's
#   bench_feature_extract  fc, 5 epochs: PyTorch runs the frozen backbone
#                      every epoch, onnxtrain its prefix cache: >= 4x
#   bench_infer_b1     eval, batch 1, median latency in the loop (input from
#                      host memory, logits back): onnxtrain <= PyTorch
#   bench_infer_b256   the same at batch 256: images/s >= PyTorch's
#   bench_full_fp32    full training in fp32 (TF32 off): the reference row,
#                      no goal (passes when both ran)
#   bench_host_memory  host_memory_flat's outcome (the correctness phase)
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
MODE=${1:-run}
BUNDLE=${GPU_BUNDLE:-.gpu}
[ "$MODE" = pack ] && BUNDLE=${2:-$BUNDLE}

# ------------------------------------------------------------------ pack
if [ "$MODE" = pack ]; then
    set -e
    make -j2 all >/dev/null
    make -j2 build/test_kernels >/dev/null 2>&1 || true
    stage=$(mktemp -d "${TMPDIR:-/tmp}/ot-gpu-pack.XXXXXX")
    trap 'rm -rf "$stage"' EXIT
    mkdir -p "$stage/bin" "$stage/lib" "$stage/data"
    cp build/onnxtrain "$stage/bin/"
    [ -x build/test_kernels ] && cp build/test_kernels "$stage/bin/"
    make -j2 build/test_unit build/bench/bench_infer >/dev/null
    cp build/test_unit build/bench/bench_infer "$stage/bin/"
    strip --strip-debug "$stage"/bin/*
    # the shared libraries beside the C library's own
    ldd build/onnxtrain | awk '/=> \//{print $3}' | while read -r lib; do
        case $(basename "$lib") in
            libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*) ;;
            *) cp -L "$lib" "$stage/lib/" ;;
        esac
    done
    cp -r /usr/share/libonnx-testdata/data/node "$stage/data/node"
    /usr/bin/python3 tests/fixtures/make_tiny_cifar.py "$stage/data/tiny_cifar" >/dev/null
    mkdir -p "$BUNDLE"
    tar -C "$stage" -cf - . | xz -6 -T2 >"$BUNDLE/bundle.tar.xz.tmp"
    mv "$BUNDLE/bundle.tar.xz.tmp" "$BUNDLE/bundle.tar.xz"
    echo "$BUNDLE/bundle.tar.xz: $(du -k "$BUNDLE/bundle.tar.xz" | cut -f1) KiB"
    exit 0
fi
DRY=
case $MODE in
    run) ;;
    --dry-run-bench) DRY=1 ;;
    *) echo "usage: bash tests/gpu/check.sh [pack [DIR] | run | --dry-run-bench]" >&2
       exit 2 ;;
esac

# ------------------------------------------------------------------ run
# the benchmark's sizes (the goals'), or the dry run's on the CPU
BENCH_ROWS=${BENCH_ROWS:-full_bf16 cold_start finetune feature_extract infer_b1 infer_b256 full_fp32 host_memory}
if [ -n "$DRY" ]; then
    OUT=${OUT:-$ROOT/gpu-out-dry}
    PHASES=bench
    DEV=cpu
    BENCH_DRY_RUN=1
    BIN=${BIN:-$ROOT/build/onnxtrain}
    BENCH_INFER=${BENCH_INFER:-$ROOT/build/bench/bench_infer}
    PYTHON=${PYTHON:-/usr/bin/python3}
    BENCH_IMAGES=${BENCH_IMAGES:-96}
    BENCH_BATCH=${BENCH_BATCH:-16}
    BENCH_SIZE=${BENCH_SIZE:-48}
    BENCH_EPOCHS=${BENCH_EPOCHS:-2}
    BENCH_RUNS_B1=${BENCH_RUNS_B1:-1 3}
    BENCH_RUNS_B256=${BENCH_RUNS_B256:-1 2}
    BENCH_SECONDS=${BENCH_SECONDS:-120}
    CHECK_SECONDS=${CHECK_SECONDS:-3600}
    # the CPU computes bf16 only with AVX-512 (the bf16 rows then run fp32)
    grep -qw avx512f /proc/cpuinfo || BENCH_HALF=${BENCH_HALF:-fp32}
    BENCH_DEVICE_NAME=${BENCH_DEVICE_NAME:-the CPU}
    # one thread each: tiny sizes, and no spinning threads on a loaded machine
    export OMP_NUM_THREADS=1
else
    OUT=${OUT:-$ROOT/gpu-out}
    PHASES=${PHASES:-correctness bench}
    DEV=cuda
    BENCH_DRY_RUN=0
fi
BENCH_IMAGES=${BENCH_IMAGES:-10240}
BENCH_BATCH=${BENCH_BATCH:-128}
BENCH_SIZE=${BENCH_SIZE:-224}
BENCH_EPOCHS=${BENCH_EPOCHS:-5}
BENCH_RUNS_B1=${BENCH_RUNS_B1:-20 200}
BENCH_RUNS_B256=${BENCH_RUNS_B256:-5 20}
BENCH_HALF=${BENCH_HALF:-bf16}
BENCH_SECONDS=${BENCH_SECONDS:-60}
CHECK_SECONDS=${CHECK_SECONDS:-300}
mkdir -p "$OUT"
LOG=$OUT/check.log
RES=$OUT/results.tsv
: >"$LOG"
: >"$RES"
rm -f "$OUT/check.json" "$OUT/bench.json" "$OUT/bench.md"
PY=${PYTHON:-python3}
T0=$(date +%s)

now_ms() { date +%s%3N; }
secs() { printf '%d.%02d' $((($2 - $1) / 1000)) $((($2 - $1) % 1000 / 10)); }

log() { echo "[$(($(date +%s) - T0))s] $*" | tee -a "$LOG"; }

# record NAME STATUS DETAIL: one check's result (pass, fail, skipped: ...),
# then check.json again
record() {
    printf '%s\t%s\t%s\n' "$1" "$2" "${3//$'\n'/ }" >>"$RES"
    log "$1: $2${3:+ ($3)}"
    "$PY" - "$RES" "$OUT/check.json" "$(($(date +%s) - T0))" "$BENCH_DRY_RUN" <<'PYEOF'
import json, os, sys
rows = [l.rstrip("\n").split("\t", 2) for l in open(sys.argv[1]) if l.strip()]
checks = {r[0]: {"status": r[1], "detail": r[2] if len(r) > 2 else ""} for r in rows}
failed = [k for k, v in checks.items() if v["status"] == "fail"]
doc = {"seconds": int(sys.argv[3]), "checks": checks, "failed": failed,
       "passed": [k for k, v in checks.items() if v["status"] == "pass"],
       "skipped": [k for k, v in checks.items() if v["status"].startswith("skipped")]}
bench = os.path.join(os.path.dirname(sys.argv[2]), "bench.json")
if os.path.exists(bench):  # the benchmark's table (tests/gpu/bench_report.py)
    doc["bench"] = json.load(open(bench))
doc["dry_run"] = sys.argv[4] == "1"
tmp = sys.argv[2] + ".tmp"
json.dump(doc, open(tmp, "w"), indent=1, sort_keys=True)
os.replace(tmp, sys.argv[2])
PYEOF
}

skip_all() {
    # shellcheck disable=SC2086  # BENCH_ROWS is a list of words
    for c in kernels node_tests model_tests fused_conv backward_rules train_20 frozen \
             nhwc_matches_nchw nccl_one_rank \
             train_20_bf16 train_20_fp16 fp16_overflow_skips fused_dgrad_relu \
             fused_conv_half fp16_clip_grad no_alloc_per_step \
             host_memory_flat loader_not_limiting upload_overlap device_prep \
             device_prep_augment upload_overlap_finetune prefix_cache_device sanitizer \
             plan_cache $(printf 'bench_%s ' $BENCH_ROWS); do
        record "$c" "skipped: $1" ""
    done
    exit 0
}

if [ -n "$DRY" ]; then
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/ot-gpu-dry.XXXXXX")
    trap 'rm -rf "$WORK"' EXIT
else
    WORK=${TMPDIR:-/tmp}/ot-gpu
    rm -rf "$WORK"
    mkdir -p "$WORK"
fi
if [ -z "$DRY" ]; then
    if [ ! -f "$BUNDLE/bundle.tar.xz" ]; then
        record bundle fail "$BUNDLE/bundle.tar.xz is missing (bash tests/gpu/check.sh pack)"
        exit 1
    fi
    xz -dc "$BUNDLE/bundle.tar.xz" | tar -C "$WORK" -xf - || {
        record bundle fail "cannot unpack $BUNDLE/bundle.tar.xz"
        exit 1
    }
    BIN=$WORK/bin/onnxtrain
    BENCH_INFER=$WORK/bin/bench_infer
    LIBS=$WORK/lib
    for mod in nvidia.cudnn nvidia.cublas nvidia.cu13 nvidia.cuda_runtime nvidia.nccl; do
        d=$("$PY" -c "import $mod as m; print(list(m.__path__)[0])" 2>/dev/null) || continue
        [ -d "$d/lib" ] && LIBS=$LIBS:$d/lib
    done
    for d in "${CUDA_HOME:-/usr/local/cuda}/lib64" /usr/local/cuda/lib64; do
        [ -d "$d" ] && LIBS=$LIBS:$d
    done
    export LD_LIBRARY_PATH=$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    record bundle pass "$(du -k "$BUNDLE/bundle.tar.xz" | cut -f1) KiB"

    version=$("$BIN" --version 2>&1)
    echo "$version" >>"$LOG"
    cuda_line=$(grep 'cuda:' <<<"$version")
    case $cuda_line in
        *"built in, usable"*) record version pass "${cuda_line#*cuda: }" ;;
        *"not built in"*) record version fail "this build has no CUDA backend"; exit 1 ;;
        *) record version "skipped: no CUDA device" "${cuda_line#*not usable here: }"
           skip_all "no CUDA device" ;;
    esac
    BENCH_DEVICE_NAME=${BENCH_DEVICE_NAME:-$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)}
fi
NODE=$WORK/data/node
DATA=$WORK/data/tiny_cifar
FX=$WORK/fixtures

# ------------------------------------------------------------ correctness
if [[ " $PHASES " == *" correctness "* ]]; then
    # the backend's own kernels against the plain C kernels (their program
    # reads the node tests from Debian's folder)
    if [ ! -x "$WORK/bin/test_kernels" ]; then
        record kernels fail "test_kernels is not in the bundle"
    else
        if [ ! -d /usr/share/libonnx-testdata/data/node ]; then
            mkdir -p /usr/share/libonnx-testdata/data 2>/dev/null &&
                ln -s "$NODE" /usr/share/libonnx-testdata/data/node 2>/dev/null
        fi
        timeout 300 "$WORK/bin/test_kernels" >"$WORK/kernels.txt" 2>&1
        rc=$?
        cat "$WORK/kernels.txt" >>"$LOG"
        last=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$WORK/kernels.txt" | tail -n 1)
        if [ $rc -eq 0 ] && [ -n "$last" ]; then
            record kernels pass "$last"
        else
            record kernels fail "exit $rc, ${last:-no summary}: $(grep -m3 -i fail "$WORK/kernels.txt" | tr '\n' ' ')"
        fi
    fi
    # node tests: the CPU's passes must pass on CUDA too
    "$BIN" test-data --json "$NODE"/test_* --device cpu >"$WORK/node_cpu.json" 2>>"$LOG"
    "$BIN" test-data --json "$NODE"/test_* --device cuda >"$WORK/node_cuda.json" 2>>"$LOG"
    detail=$("$PY" - "$WORK/node_cpu.json" "$WORK/node_cuda.json" <<'PYEOF'
import json, os, sys
def load(p):
    try:
        return {os.path.basename(r["dir"].rstrip("/")): r for r in json.load(open(p))["results"]}
    except Exception as e:
        print("fail\tno results: %s" % e); sys.exit(0)
cpu, cuda = load(sys.argv[1]), load(sys.argv[2])
ok = [k for k, r in cpu.items() if r["status"] == "pass"]
lost = sorted(k for k in ok if cuda.get(k, {}).get("status") != "pass")
refused = sorted(k for k in lost if cuda.get(k, {}).get("status") == "error")
wrong = sorted(k for k in lost if k not in refused)
print("%s\t%d of %d CPU passes pass on CUDA; wrong: %s; refused: %s" % (
    "pass" if not lost else "fail", len(ok) - len(lost), len(ok),
    " ".join(wrong) or "none", " ".join(refused[:60]) + (" ..." if len(refused) > 60 else "")))
PYEOF
)
    record node_tests "${detail%%$'\t'*}" "${detail#*$'\t'}"

    # model tests against PyTorch's outputs, on both devices
    if "$PY" tests/fixtures/make_model_tests.py "$FX" >>"$LOG" 2>&1; then
        models=("$FX"/resnet18_eval "$FX"/resnet18_bn "$FX"/resnet18_zoo7 "$FX"/mobilenet_v2
                "$FX"/squeezenet1_1)
        "$BIN" test-data "${models[@]}" --device cpu >"$WORK/models_cpu.txt" 2>&1
        rc_cpu=$?
        "$BIN" test-data "${models[@]}" --device cuda >"$WORK/models_cuda.txt" 2>&1
        rc_cuda=$?
        cat "$WORK/models_cpu.txt" "$WORK/models_cuda.txt" >>"$LOG"
        if [ $rc_cpu -eq 0 ] && [ $rc_cuda -eq 0 ]; then
            record model_tests pass "5 models, CPU and CUDA"
        else
            record model_tests fail "cpu exit $rc_cpu, cuda exit $rc_cuda: $(grep -v PASS "$WORK/models_cuda.txt" | head -3)"
        fi
        # the convolutions' fused cuDNN epilogues (SqueezeNet: Conv+Bias+Relu;
        # the model tests above ran with them): the same tests unfused, and
        # how many convolutions fused ("-vv")
        "$BIN" -vv test-data "$FX"/squeezenet1_1 --device cuda >"$WORK/fused.txt" 2>&1
        rc_f=$?
        ONNXTRAIN_CUDNN_FUSION=0 "$BIN" test-data "$FX"/squeezenet1_1 --device cuda \
            >"$WORK/unfused.txt" 2>&1
        rc_u=$?
        nf=$(grep -c 'cuDNN fused)' "$WORK/fused.txt")
        nn=$(grep -c 'no cuDNN engine fuses' "$WORK/fused.txt")
        if [ $rc_f -eq 0 ] && [ $rc_u -eq 0 ] && [ "$nf" -gt 0 ]; then
            record fused_conv pass "SqueezeNet on CUDA: $nf convolutions fused, $nn unfused (no engine); passes fused and with ONNXTRAIN_CUDNN_FUSION=0"
        else
            record fused_conv fail "fused exit $rc_f, unfused exit $rc_u, $nf fused, $nn without an engine: $(grep -m2 -E 'FAIL|error' "$WORK/fused.txt" | tr '\n' ' ')"
        fi
    else
        record model_tests fail "make_model_tests.py failed: $(tail -n 1 "$LOG")"
    fi

    # 20 fp32 steps of ResNet-18 at 32x32 on both devices (one step per
    # epoch: 10 images, batch 10), then the fine-tune mode's frozen weights
    R18=$FX/resnet18_bn.onnx
    train() { # DEVICE MODE OUTNAME [extra...]
        local dev=$1 mode=$2 name=$3
        shift 3
        timeout 300 "$BIN" finetune "$R18" --data "$DATA" --classes 10 --image-size 32 \
            --per-class 1 --batch-size 10 --epochs 20 --mode "$mode" --optimizer sgd --lr 0.01 \
            --deterministic --no-cache --workers 0 --device "$dev" --log "$WORK/$name.csv" \
            -o "$WORK/$name.onnx" "$@" >>"$LOG" 2>&1
    }
    if [ ! -f "$R18" ]; then
        record train_20 fail "no $R18"
    elif train cpu full full_cpu && train cuda full full_cuda; then
        detail=$("$PY" - "$WORK" <<'PYEOF'
import csv, sys
import numpy as np, onnx
from onnx import numpy_helper
w = sys.argv[1]
def losses(p):
    rows = list(csv.DictReader(open(p)))
    return np.array([float(r.get("train_loss") or r.get("loss")) for r in rows])
a, b = losses(w + "/full_cpu.csv"), losses(w + "/full_cuda.csv")
def weights(p):
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(p).graph.initializer}
wa, wb = weights(w + "/full_cpu.onnx"), weights(w + "/full_cuda.onnx")
worst = max(float(np.max(np.abs(wa[k] - wb[k])) / (np.max(np.abs(wa[k])) + 1e-12))
            for k in wa if wa[k].dtype == np.float32 and wa[k].size)
dl = float(np.max(np.abs(a - b)))
ok = len(a) == len(b) == 20 and dl <= 1e-3 * max(1.0, float(np.max(np.abs(a)))) and worst <= 1e-2
print("%s\tsteps %d/%d, max loss difference %.3g, worst weight difference %.3g (relative to the tensor's max)" % (
    "pass" if ok else "fail", len(a), len(b), dl, worst))
PYEOF
)
        record train_20 "${detail%%$'\t'*}" "${detail#*$'\t'}"
        if train cuda fine-tune ft_cuda; then
            detail=$("$PY" - "$R18" "$WORK/ft_cuda.onnx" <<'PYEOF'
import sys
import onnx
from onnx import numpy_helper
a = {t.name: numpy_helper.to_array(t) for t in onnx.load(sys.argv[1]).graph.initializer}
b = {t.name: numpy_helper.to_array(t) for t in onnx.load(sys.argv[2]).graph.initializer}
same = [k for k in a if k in b and a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes()]
changed = [k for k in a if k in b and k not in same]
# fine-tune trains the last stage and the head: everything before layer4 is frozen
frozen_changed = [k for k in changed if "layer4" not in k and "fc" not in k and "running" not in k]
print("%s\t%d tensors unchanged, %d trained; frozen but changed: %s" % (
    "pass" if not frozen_changed else "fail", len(same), len(changed), " ".join(frozen_changed[:5]) or "none"))
PYEOF
)
            record frozen "${detail%%$'\t'*}" "frozen tensors after fine-tune on CUDA: ${detail#*$'\t'}"
        else
            record frozen fail "fine-tune on CUDA failed: $(tail -n 1 "$LOG")"
        fi
    else
        record train_20 fail "$(tail -n 1 "$LOG")"
        record frozen fail "the training run failed"
    fi

    # channels-last inside the backend (the default) against everything NCHW
    # (ONNXTRAIN_CUDA_NHWC=0): the model tests both ways (run), eval of the
    # CUDA-trained model, and the 20 fp32 steps of train_20 again in NCHW,
    # compared with train_20's CUDA run (NHWC) under train_20's tolerances
    # (the engines differ, so the sums' order does); -vv says how many nodes
    # ran NHWC, which must be some
    nhwc_check() {
        local nn why=""
        "$BIN" -vv test-data "$FX"/resnet18_bn --device cuda >"$WORK/nhwc_vv.txt" 2>&1 ||
            why="the model test failed with NHWC"
        nn=$(sed -n 's/.*cuda: \([0-9]*\) of [0-9]* nodes run channels-last.*/\1/p' \
            "$WORK/nhwc_vv.txt" | sort -n | tail -n 1)
        [ -z "$why" ] && [ "${nn:-0}" -gt 0 ] || why="${why:-no node ran NHWC (-vv)}"
        [ -z "$why" ] && ! ONNXTRAIN_CUDA_NHWC=0 "$BIN" test-data "${models[@]}" --device cuda \
            >"$WORK/nchw_models.txt" 2>&1 && why="the model tests failed with ONNXTRAIN_CUDA_NHWC=0"
        if [ -z "$why" ] && [ -f "$WORK/full_cuda.onnx" ]; then
            "$BIN" eval "$WORK/full_cuda.onnx" --data "$DATA" --json --device cuda \
                >"$WORK/eval_nhwc.json" 2>>"$LOG" &&
                ONNXTRAIN_CUDA_NHWC=0 "$BIN" eval "$WORK/full_cuda.onnx" --data "$DATA" --json \
                    --device cuda >"$WORK/eval_nchw.json" 2>>"$LOG" || why="eval failed"
        fi
        if [ -z "$why" ] && ! ONNXTRAIN_CUDA_NHWC=0 train cuda full full_nchw; then
            why="the NCHW training run failed: $(tail -n 1 "$LOG")"
        fi
        if [ -n "$why" ]; then
            record nhwc_matches_nchw fail "$why"
            return
        fi
        detail=$("$PY" - "$WORK" "$nn" <<'PYEOF'
import csv, json, sys
import numpy as np, onnx
from onnx import numpy_helper
w, nn = sys.argv[1], sys.argv[2]
def losses(p):
    return np.array([float(r.get("train_loss") or r.get("loss")) for r in csv.DictReader(open(p))])
a, b = losses(w + "/full_cuda.csv"), losses(w + "/full_nchw.csv")
def weights(p):
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(p).graph.initializer}
wa, wb = weights(w + "/full_cuda.onnx"), weights(w + "/full_nchw.onnx")
worst = max(float(np.max(np.abs(wa[k] - wb[k])) / (np.max(np.abs(wa[k])) + 1e-12))
            for k in wa if wa[k].dtype == np.float32 and wa[k].size)
dl = float(np.max(np.abs(a - b))) if len(a) == len(b) else float("inf")
ea, eb = (json.load(open(w + f)) for f in ("/eval_nhwc.json", "/eval_nchw.json"))
de = abs(ea["loss"] - eb["loss"])
ok = (len(a) == len(b) == 20 and dl <= 1e-3 * max(1.0, float(np.max(np.abs(a)))) and
      worst <= 1e-2 and de <= 1e-4 * max(1.0, abs(eb["loss"])) and ea["top1"] == eb["top1"])
print("%s\t%s nodes NHWC in ResNet-18's eval graph; 20 steps: max loss difference %.3g, worst weight difference %.3g; eval loss %.6g vs %.6g, top-1 %.4g vs %.4g; model tests pass both ways" % (
    "pass" if ok else "fail", nn, dl, worst, ea["loss"], eb["loss"], ea["top1"], eb["top1"]))
PYEOF
)
        record nhwc_matches_nchw "${detail%%$'\t'*}" "${detail#*$'\t'}"
    }
    if [ -f "$WORK/full_cuda.csv" ] && [ -f "$R18" ]; then
        nhwc_check
    else
        record nhwc_matches_nchw fail "train_20's CUDA run is missing"
    fi

    # NCCL as one rank without a launcher (--distributed nccl): a one-rank
    # sum is the identity, so the 20 steps give full_cuda's bytes
    if [ ! -f "$WORK/full_cuda.onnx" ]; then
        record nccl_one_rank fail "no run without NCCL to compare with (train_20 failed)"
    else
        at=$(wc -l <"$LOG")
        train cuda full nccl_cuda --distributed nccl -vv
        rc=$?
        said=$(tail -n +"$((at + 1))" "$LOG")
        if grep -q "NCCL: cannot load" <<<"$said"; then
            record nccl_one_rank "skipped: no libnccl.so.2 here" "$(grep -m1 'NCCL: cannot load' <<<"$said")"
        elif [ $rc -ne 0 ]; then
            record nccl_one_rank fail "exit $rc: $(grep -m2 -E 'error|NCCL' <<<"$said" | tr '\n' ' ')"
        else
            lib=$(grep -m1 -o "NCCL [0-9]* from [^:]*" <<<"$said")
            detail=$("$PY" - "$WORK/full_cuda.onnx" "$WORK/nccl_cuda.onnx" <<'PYEOF'
import sys
import numpy as np, onnx
from onnx import numpy_helper
a = {t.name: numpy_helper.to_array(t) for t in onnx.load(sys.argv[1]).graph.initializer}
b = {t.name: numpy_helper.to_array(t) for t in onnx.load(sys.argv[2]).graph.initializer}
diff = [k for k in a if k not in b or a[k].tobytes() != b[k].tobytes()]
worst = max([float(np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64))))
             for k in diff if k in b and a[k].shape == b[k].shape and a[k].size] or [0.0])
print("%s\t%d tensors, %d differ from the run without NCCL (largest difference %.3g)" % (
    "pass" if not diff else "fail", len(a), len(diff), worst))
PYEOF
)
            if [ "${detail%%$'\t'*}" = fail ] && train cuda full rerun_cuda; then
                # is it NCCL, or does a second run without it differ too?
                if cmp -s "$WORK/full_cuda.onnx" "$WORK/rerun_cuda.onnx"; then
                    detail="$detail; a second run without NCCL gives full_cuda's bytes"
                else
                    detail="$detail; a second run without NCCL differs too (not reproducible)"
                fi
            fi
            if ! grep -q "reduced with NCCL on the GPUs" <<<"$said"; then
                record nccl_one_rank fail "the report does not say NCCL reduced: $(grep -m1 'data-parallel' <<<"$said")"
            else
                record nccl_one_rank "${detail%%$'\t'*}" "${detail#*$'\t'}; ${lib:-NCCL}"
            fi
        fi
    fi

    # mixed precision: the same 20 steps in bf16 and in fp16 (dynamic loss
    # scaling) against the fp32 curve on CUDA. Tolerance: every epoch's loss
    # within 5% of the fp32 one (relative to max(1, loss)). bf16 and fp16
    # round each operand of a convolution or product to 8 and 11 bits
    # (2^-8 and 2^-11 relative) and sum in fp32; the scaler may skip a few
    # of fp16's first steps at 65536, as GradScaler does; over 20 SGD steps
    # at lr 0.01 on 10 images this moves the loss by a few percent at most,
    # while a missing conversion, a wrong type or updates left scaled move
    # it by O(1) or make it NaN.
    mixed() { # PREC NAME
        local before after
        before=$(grep -c "step skipped" "$LOG")
        if [ ! -f "$WORK/full_cuda.csv" ] || ! train cuda full "$2" --precision "$1" -v; then
            record "train_20_$1" fail "$(tail -n 1 "$LOG")"
            return
        fi
        after=$(grep -c "step skipped" "$LOG")
        detail=$("$PY" - "$WORK/full_cuda.csv" "$WORK/$2.csv" "$((after - before))" <<'PYEOF'
import csv, sys
import numpy as np
def losses(p):
    rows = list(csv.DictReader(open(p)))
    return np.array([float(r.get("train_loss") or r.get("loss")) for r in rows])
a, b = losses(sys.argv[1]), losses(sys.argv[2])
skipped = int(sys.argv[3])
ok = len(a) == len(b) == 20 and bool(np.all(np.isfinite(b)))
worst = float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(a)))) if ok else float("nan")
ok = ok and worst <= 0.05 and skipped <= 5
print("%s\tsteps %d, worst loss difference %.3g of max(1, fp32 loss) (allowed 0.05), %d steps skipped" % (
    "pass" if ok else "fail", len(b), worst, skipped))
PYEOF
)
        record "train_20_$1" "${detail%%$'\t'*}" "${detail#*$'\t'}"
    }
    mixed bf16 full_bf16
    mixed fp16 full_fp16
    # a forced overflow skips the step: the step graph with loss scaling at a
    # scale that overflows, in fp16 on CUDA (parameters and moments unchanged)
    (cd "$WORK" && OT_TEST_DEVICE=cuda OT_TEST_PRECISION=fp16 timeout 120 \
        "$WORK/bin/test_unit" step_graph_scales_the_loss) >"$WORK/scale.txt" 2>&1
    rc=$?
    cat "$WORK/scale.txt" >>"$LOG"
    if [ $rc -eq 0 ] && grep -q '^1 passed, 0 failed$' "$WORK/scale.txt"; then
        record fp16_overflow_skips pass "forced overflow at loss scale 3e38: updates skipped, state unchanged"
    else
        record fp16_overflow_skips fail "exit $rc: $(grep -m3 -E 'FAIL|step_' "$WORK/scale.txt" | tr '\n' ' ')"
    fi

    # the fused cuDNN graphs (forward epilogues and backward-data + ReLU's
    # backward) against the unfused executor and the CPU, in fp32 in both
    # layouts (NHWC, and NCHW with ONNXTRAIN_CUDA_NHWC=0) and in bf16/fp16;
    # and the 20 fp32 training steps with the fusion off against train_20's
    # CUDA run (fused, NHWC)
    fusions() { # PRECISION OUTFILE [NHWC setting]
        (cd "$WORK" && env OT_TEST_DEVICE=cuda OT_TEST_PRECISION="$1" \
            ${3:+ONNXTRAIN_CUDA_NHWC=$3} timeout 120 "$WORK/bin/test_unit" \
            exec_cuda_conv_fusions) >"$2" 2>&1
    }
    fusion_counts() { grep -h -E 'cuDNN fused\): [0-9]+ step|fused in NHWC' "$@" | sed 's/^ *//' | tr '\n' ';'; }
    fusions fp32 "$WORK/fusions.txt"
    rn=$?
    fusions fp32 "$WORK/fusions_nchw.txt" 0
    rc=$?
    cat "$WORK/fusions.txt" "$WORK/fusions_nchw.txt" >>"$LOG"
    counts="NHWC: $(fusion_counts "$WORK/fusions.txt") NCHW: $(fusion_counts "$WORK/fusions_nchw.txt")"
    if [ $rn -ne 0 ] || [ $rc -ne 0 ] || ! grep -q '^1 passed, 0 failed$' "$WORK/fusions.txt" ||
        ! grep -q '^1 passed, 0 failed$' "$WORK/fusions_nchw.txt"; then
        record fused_dgrad_relu fail "exit $rn (NHWC), $rc (NCHW): $counts $(grep -h -m3 -E 'FAIL|error' "$WORK/fusions.txt" "$WORK/fusions_nchw.txt" | tr '\n' ' ')"
    elif [ ! -f "$WORK/full_cuda.csv" ]; then
        record fused_dgrad_relu fail "graphs pass ($counts) but train_20's CUDA run is missing"
    elif ONNXTRAIN_CUDNN_FUSION=0 train cuda full unfused_cuda; then
        nd=$(timeout 120 "$BIN" -vv finetune "$R18" --data "$DATA" --classes 10 --image-size 32 \
            --batch-size 10 --epochs 1 --max-steps 1 --mode full --no-cache --workers 0 \
            --device cuda -o "$WORK/dgrad.onnx" 2>&1 | grep -c 'ConvGradData+ReluGrad (cuDNN fused)')
        detail=$("$PY" - "$WORK" <<'PYEOF'
import csv, sys
import numpy as np, onnx
from onnx import numpy_helper
w = sys.argv[1]
def losses(p):
    return np.array([float(r.get("train_loss") or r.get("loss")) for r in csv.DictReader(open(p))])
a, b = losses(w + "/full_cuda.csv"), losses(w + "/unfused_cuda.csv")
def weights(p):
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(p).graph.initializer}
wa, wb = weights(w + "/full_cuda.onnx"), weights(w + "/unfused_cuda.onnx")
worst = max(float(np.max(np.abs(wa[k] - wb[k])) / (np.max(np.abs(wa[k])) + 1e-12))
            for k in wa if wa[k].dtype == np.float32 and wa[k].size)
dl = float(np.max(np.abs(a - b))) if len(a) == len(b) else float("inf")
ok = len(a) == len(b) == 20 and dl <= 1e-3 * max(1.0, float(np.max(np.abs(a)))) and worst <= 1e-2
print("%s\tResNet-18, 20 fp32 steps fused against ONNXTRAIN_CUDNN_FUSION=0: max loss difference %.3g, worst weight difference %.3g" % (
    "pass" if ok else "fail", dl, worst))
PYEOF
)
        record fused_dgrad_relu "${detail%%$'\t'*}" "$counts ResNet-18 step (-vv): $nd ConvGradData+ReluGrad fused; ${detail#*$'\t'}"
    else
        record fused_dgrad_relu fail "the unfused training run failed: $(tail -n 1 "$LOG")"
    fi
    fusions bf16 "$WORK/fusions_bf16.txt"
    rb=$?
    fusions fp16 "$WORK/fusions_fp16.txt"
    rh=$?
    cat "$WORK/fusions_bf16.txt" "$WORK/fusions_fp16.txt" >>"$LOG"
    cb=$(fusion_counts "$WORK/fusions_bf16.txt")
    ch=$(fusion_counts "$WORK/fusions_fp16.txt")
    if [ $rb -eq 0 ] && [ $rh -eq 0 ] && grep -q '^1 passed, 0 failed$' "$WORK/fusions_bf16.txt" &&
        grep -q '^1 passed, 0 failed$' "$WORK/fusions_fp16.txt"; then
        record fused_conv_half pass "bf16: $cb fp16: $ch"
    else
        record fused_conv_half fail "bf16 exit $rb ($cb), fp16 exit $rh ($ch): $(grep -h -m3 FAIL "$WORK/fusions_bf16.txt" "$WORK/fusions_fp16.txt" | tr '\n' ' ')"
    fi

    # --clip-grad with fp16 loss scaling: the step graph on CUDA in fp16
    # (the clipping of the unscaled gradients, an overflow skipped), then 20
    # fp16 steps with --clip-grad 1 against 20 fp32 ones with it
    # (train_20_fp16's bound: clipping the scaled gradients would shrink
    # every fp16 step by the scale)
    (cd "$WORK" && OT_TEST_DEVICE=cuda OT_TEST_PRECISION=fp16 timeout 120 \
        "$WORK/bin/test_unit" step_graph_clips_unscaled_gradients) >"$WORK/clip.txt" 2>&1
    rc=$?
    cat "$WORK/clip.txt" >>"$LOG"
    if [ $rc -ne 0 ] || ! grep -q '^1 passed, 0 failed$' "$WORK/clip.txt"; then
        record fp16_clip_grad fail "step graph: exit $rc: $(grep -m3 -E 'FAIL|error' "$WORK/clip.txt" | tr '\n' ' ')"
    elif ! train cuda full full_clip --clip-grad 1 ||
        ! train cuda full full_fp16_clip --precision fp16 --clip-grad 1; then
        record fp16_clip_grad fail "training with --clip-grad 1 (fp32, fp16): $(tail -n 1 "$LOG")"
    else
        detail=$("$PY" - "$WORK/full_clip.csv" "$WORK/full_fp16_clip.csv" <<'PYEOF'
import csv, sys
import numpy as np
def losses(p):
    return np.array([float(r.get("train_loss") or r.get("loss")) for r in csv.DictReader(open(p))])
a, b = losses(sys.argv[1]), losses(sys.argv[2])
ok = len(a) == len(b) == 20 and bool(np.all(np.isfinite(b)))
worst = float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(a)))) if ok else float("nan")
ok = ok and worst <= 0.05
print("%s\tstep graph passes; 20 steps with --clip-grad 1, fp16 against fp32: worst loss difference %.3g of max(1, fp32 loss) (allowed 0.05)" % (
    "pass" if ok else "fail", worst))
PYEOF
)
        record fp16_clip_grad "${detail%%$'\t'*}" "${detail#*$'\t'}"
    fi

    # every gradient check of test_grad.c, its executors on CUDA
    (cd "$WORK" && OT_TEST_DEVICE=cuda timeout 300 "$WORK/bin/test_unit" grad_) >"$WORK/grad.txt" 2>&1
    rc=$?
    cat "$WORK/grad.txt" >>"$LOG"
    last=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$WORK/grad.txt" | tail -n 1)
    if [ $rc -eq 0 ] && [ -n "$last" ]; then
        record backward_rules pass "test_grad on CUDA: $last"
    else
        record backward_rules fail "exit $rc, ${last:-no summary}: $(grep -m3 FAIL "$WORK/grad.txt" | tr '\n' ' ')"
    fi

    # nothing allocated per step: the counts of cudaMalloc and of pinned host
    # allocations (cudaHostAlloc) after 2 and after 6 steps
    count() {
        timeout 120 "$BIN" -vv finetune "$R18" --data "$DATA" --classes 10 --image-size 32 \
            --batch-size 8 --epochs 1 --max-steps "$1" --mode full --no-cache --workers 0 \
            --device cuda -o "$WORK/alloc.onnx" 2>&1 |
            sed -n 's/.*cuda: \([0-9]*\) device allocations so far, \([0-9]*\) pinned.*/\1 \2/p' | tail -n 1
    }
    n2=$(count 2)
    n6=$(count 6)
    if [ -n "$n2" ] && [ "$n2" = "$n6" ]; then
        record no_alloc_per_step pass "cudaMalloc and pinned host allocations: $n2 after 2 steps and after 6"
    else
        record no_alloc_per_step fail "cudaMalloc, pinned: after 2 steps: ${n2:-?}, after 6: ${n6:-?}"
    fi

    # host memory flat: peak RSS of 200 and of 1,000 steps, batch 10 over the
    # 96 training images (a last batch of 6 every epoch: two executors)
    peak_kb() {
        "$PY" - "$BIN" "$R18" "$DATA" "$1" "$WORK/flat.onnx" <<'PYEOF'
import resource, subprocess, sys
b, m, d, n, o = sys.argv[1:]
r = subprocess.run(["timeout", "150", b, "finetune", m, "--data", d, "--classes", "10",
                    "--image-size", "32", "--batch-size", "10", "--epochs", "1000",
                    "--max-steps", n, "--mode", "full", "--no-cache", "--device", "cuda",
                    "-o", o], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if r.returncode == 0 else "")
PYEOF
    }
    k200=$(peak_kb 200)
    k1000=$(peak_kb 1000)
    if [ -n "$k200" ] && [ -n "$k1000" ] && [ "$k1000" -le $((k200 + k200 / 50 + 4096)) ]; then
        record host_memory_flat pass "peak RSS ${k200} KiB after 200 steps, ${k1000} KiB after 1000"
    else
        record host_memory_flat fail "peak RSS after 200 steps: ${k200:-run failed} KiB, after 1000: ${k1000:-run failed} KiB (allowed: 2% + 4 MiB)"
    fi

    # the loader never limits a GPU step: full training at 224 (the CPU
    # loader resizing 32x32 images, 4 workers), the time the step waited for
    # a batch against the whole loop, from --profile
    timeout 150 "$BIN" finetune "$R18" --data "$DATA" --classes 10 --image-size 224 \
        --batch-size 32 --epochs 20 --max-steps 30 --mode full --no-cache --workers 4 \
        --device cuda --profile -o "$WORK/wait.onnx" >"$WORK/wait.txt" 2>&1
    wait_line=$(grep -E '^waiting for data' "$WORK/wait.txt" | tail -n 1)
    share=$(echo "$wait_line" | awk '{gsub("%", "", $NF); print $NF}')
    if [ -z "$wait_line" ]; then
        record loader_not_limiting fail "no profile: $(tail -n 1 "$WORK/wait.txt")"
    elif awk -v s="$share" 'BEGIN { exit !(s <= 5.0) }'; then
        record loader_not_limiting pass "waiting for data: ${share}% of the loop (224x224, batch 32)"
    else
        record loader_not_limiting fail "waiting for data: ${share}% of the loop (224x224, batch 32; allowed 5%)"
    fi

    # batch k+1 uploaded while step k computes: the same losses with and
    # without, and the loop's images/s of each (the log's last line)
    overlap() { # PREFETCH NAME (the loader's batches: ONNXTRAIN_DEVICE_PREP=0; OVMODE)
        ONNXTRAIN_PREFETCH=$1 ONNXTRAIN_DEVICE_PREP=${PREP:-0} timeout 150 "$BIN" finetune \
            "$R18" --data "$DATA" --classes 10 --image-size 224 --batch-size 32 --epochs 20 \
            --max-steps 30 --mode "${OVMODE:-full}" --no-cache --workers 4 --deterministic \
            --device cuda ${OVAUG:+--augment} \
            --log "$WORK/$2.csv" -o "$WORK/$2.onnx" >>"$LOG" 2>&1
    }
    # same_losses CHECK A B WHAT_A WHAT_B: the two runs' logs, loss by loss
    # (relative 1e-4), and the loop's images/s of each (epochs after the first)
    same_losses() {
        local detail
        detail=$("$PY" - "$WORK/$2.csv" "$WORK/$3.csv" "$4" "$5" <<'PYEOF'
import csv, sys
a, b = (list(csv.DictReader(open(p))) for p in sys.argv[1:3])
la = [float(r["loss"]) for r in a]
lb = [float(r["loss"]) for r in b]
d = max((abs(x - y) / max(1.0, abs(y)) for x, y in zip(la, lb)), default=float("inf"))
ips = lambda rows: sum(float(r["images_per_s"]) for r in rows[1:]) / max(1, len(rows) - 1)
ok = len(la) == len(lb) > 0 and d <= 1e-4
print("%s\tloss difference %.3g over %d epochs; images/s (epochs after the first): %.1f %s, %.1f %s" % (
    "pass" if ok else "fail", d, len(la), ips(a), sys.argv[3], ips(b), sys.argv[4]))
PYEOF
)
        record "$1" "${detail%%$'\t'*}" "${detail#*$'\t'}"
    }
    if overlap 1 ahead && overlap 0 inline; then
        same_losses upload_overlap ahead inline "handed in ahead" "one at a time"
    else
        record upload_overlap fail "a training run failed: $(tail -n 1 "$LOG")"
    fi
    # the uint8 images resized on the device (the default for CIFAR): the
    # same losses as the CPU loader's batches (the kernel is bit-identical)
    if PREP=1 overlap 1 prep && [ -f "$WORK/inline.csv" ]; then
        same_losses device_prep prep inline "resized on the device" \
            "from the CPU loader one at a time"
    else
        record device_prep fail "the training run failed: $(tail -n 1 "$LOG")"
    fi
    # --augment: each image's random crop and flip resized on the device
    # (its box and tables made on the host by the loader's code) against
    # the CPU loader's augmented batches
    if OVAUG=1 PREP=1 overlap 1 aug_prep && OVAUG=1 overlap 0 aug_inline; then
        same_losses device_prep_augment aug_prep aug_inline "augmented on the device" \
            "augmented by the CPU loader"
    else
        record device_prep_augment fail "a training run failed: $(tail -n 1 "$LOG")"
    fi
    # the same behind a frozen prefix (fine-tune, no cache: every step runs
    # the prefix): the next batch handed in ahead to the prefix's executor
    if OVMODE=fine-tune overlap 1 ahead_ft && OVMODE=fine-tune overlap 0 inline_ft; then
        same_losses upload_overlap_finetune ahead_ft inline_ft "handed in ahead (fine-tune)" \
            "one at a time (fine-tune)"
    else
        record upload_overlap_finetune fail "a training run failed: $(tail -n 1 "$LOG")"
    fi

    # the frozen-prefix cache on the device: feature extraction at 32x32, 3
    # epochs of 10 steps (96 images, batch 10); "-v" says where the records
    # are ("prefix cache: ... in device memory") and how often the prefix
    # ran ("frozen prefix: 10 runs in 30 steps": the first epoch only)
    pcache() { # NAME [extra...]
        local name=$1
        shift
        timeout 120 "$BIN" -v finetune "$R18" --data "$DATA" --classes 10 --image-size 32 \
            --batch-size 10 --epochs 3 --mode feature-extract --optimizer sgd --lr 0.01 \
            --deterministic --workers 0 --device cuda --log "$WORK/$name.csv" \
            -o "$WORK/$name.onnx" "$@" >"$WORK/$name.txt" 2>&1
    }
    if pcache pc_dev && pcache pc_off --no-cache &&
        ONNXTRAIN_CACHE_PLACE=pinned pcache pc_pin && pcache pc_bf_dev --cache-dtype bf16 &&
        ONNXTRAIN_CACHE_PLACE=host pcache pc_bf_host --cache-dtype bf16; then
        cat "$WORK"/pc_*.txt >>"$LOG"
        detail=$("$PY" - "$WORK" <<'PYEOF'
import csv, re, sys
import numpy as np, onnx
from onnx import numpy_helper
w = sys.argv[1]
def text(n):
    return open("%s/%s.txt" % (w, n)).read()
def runs(n):
    m = re.search(r"frozen prefix: (\d+) runs in (\d+) steps", text(n))
    return (int(m.group(1)), int(m.group(2))) if m else (-1, -1)
def weights(n):
    return {t.name: numpy_helper.to_array(t) for t in onnx.load("%s/%s.onnx" % (w, n)).graph.initializer}
def worst(a, b):
    wa, wb = weights(a), weights(b)
    return max(float(np.max(np.abs(wa[k] - wb[k])) / (np.max(np.abs(wa[k])) + 1e-12))
               for k in wa if wa[k].dtype == np.float32 and wa[k].size)
def losses(n):
    return np.array([float(r["loss"]) for r in csv.DictReader(open("%s/%s.csv" % (w, n)))])
bad = []
if "in device memory" not in text("pc_dev"): bad.append("pc_dev: not in device memory")
if "in pinned host memory" not in text("pc_pin"): bad.append("pc_pin: not in pinned memory")
if "in device memory" not in text("pc_bf_dev"): bad.append("pc_bf_dev: not in device memory")
for n in ("pc_dev", "pc_pin", "pc_bf_dev", "pc_bf_host"):
    r, s = runs(n)
    if s != 30 or r != 10: bad.append("%s: the prefix ran %d times in %d steps (10 in 30 expected)" % (n, r, s))
r, s = runs("pc_off")
if r != s or s != 30: bad.append("pc_off: the prefix ran %d times in %d steps" % (r, s))
d = {p: worst(*p) for p in (("pc_dev", "pc_off"), ("pc_pin", "pc_off"), ("pc_bf_dev", "pc_bf_host"))}
dl = max(float(np.max(np.abs(losses(a) - losses(b)))) for a, b in d)
for (a, b), v in d.items():
    if not v <= 1e-4: bad.append("%s against %s: weights differ by %.3g" % (a, b, v))
if not dl <= 1e-4: bad.append("losses differ by %.3g" % dl)
print("%s\tthe prefix ran in epoch 1 only (10 runs in 30 steps); worst weight difference against no cache %.3g (device), %.3g (pinned); bf16 records device against host %.3g; losses within %.3g%s" % (
    "fail" if bad else "pass", d[("pc_dev", "pc_off")], d[("pc_pin", "pc_off")],
    d[("pc_bf_dev", "pc_bf_host")], dl, "; " + "; ".join(bad) if bad else ""))
PYEOF
)
        record prefix_cache_device "${detail%%$'\t'*}" "${detail#*$'\t'}"
    else
        cat "$WORK"/pc_*.txt >>"$LOG" 2>/dev/null
        record prefix_cache_device fail "a training run failed: $(tail -n 1 "$LOG")"
    fi

    # one training step under compute-sanitizer memcheck
    SAN=$(command -v compute-sanitizer || echo "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer")
    if [ ! -x "$SAN" ]; then
        record sanitizer "skipped: no compute-sanitizer" ""
    else
        timeout 240 "$SAN" --tool memcheck --error-exitcode 86 "$BIN" finetune "$R18" \
            --data "$DATA" --classes 10 --image-size 32 --batch-size 4 --epochs 1 --max-steps 1 \
            --mode full --no-cache --workers 0 --device cuda -o "$WORK/san.onnx" >"$WORK/san.txt" 2>&1
        rc=$?
        cat "$WORK/san.txt" >>"$LOG"
        if grep -q -E "Device not supported|not supported on this|Error 999" "$WORK/san.txt"; then
            record sanitizer "skipped: compute-sanitizer refused the device" "$(grep -m1 -E 'not supported|999' "$WORK/san.txt")"
        elif [ $rc -eq 0 ]; then
            record sanitizer pass "$(grep -m1 'ERROR SUMMARY' "$WORK/san.txt")"
        else
            record sanitizer fail "exit $rc: $(grep -m1 -E 'ERROR SUMMARY|error' "$WORK/san.txt")"
        fi
    fi

    # --autotune into a fresh plan cache, then a run that reuses every plan
    # ("-vv": "convolution plans so far: R from the plan cache on disk, M made (T timed)")
    plans() {
        timeout 240 "$BIN" -vv finetune "$R18" --data "$DATA" --classes 10 --image-size 32 \
            --batch-size 8 --epochs 1 --max-steps 2 --mode full --no-cache --workers 0 \
            --device cuda --plan-cache "$WORK/plans" -o "$WORK/plans.onnx" "$@" 2>&1 |
            sed -n 's/.*plans so far: \([0-9]*\) from the plan cache on disk, \([0-9]*\) made (\([0-9]*\) timed).*/\1 \2 \3/p' |
            tail -n 1
    }
    rm -rf "$WORK/plans"
    read -r r1 m1 t1 <<<"$(plans --autotune)"
    read -r r2 m2 t2 <<<"$(plans)"
    nrec=$(grep -c '^conv' "$WORK/plans/cudnn-plans-v1.txt" 2>/dev/null)
    if [ -n "$m1" ] && [ "$m1" -gt 0 ] && [ "${t1:-0}" -gt 0 ] && [ "${m2:-1}" -eq 0 ] &&
        [ "${r2:-0}" -gt 0 ]; then
        record plan_cache pass "autotune: $m1 plans made, $t1 timed; $nrec records on disk; second run: $r2 from disk, 0 made"
    else
        record plan_cache fail "autotune run: ${r1:-?} reused, ${m1:-?} made, ${t1:-?} timed; second: ${r2:-?} reused, ${m2:-?} made; ${nrec:-0} records"
    fi
fi

# ------------------------------------------------------------ benchmark
# Every goal of docs/gpu.md, ResNet-18 at BENCH_SIZE against PyTorch on the
# same device (tests/gpu/torch_bench.py), each a check whose detail holds
# both figures and their ratio (tests/gpu/bench_report.py; the table in
# $OUT/bench.md). Runs are ordered by goal, so a run cut short by
# CHECK_SECONDS loses the reference rows first.
if [[ " $PHASES " == *" bench "* ]]; then
    B=$WORK/bench
    mkdir -p "$B"
    export BENCH_IMAGES BENCH_BATCH BENCH_SIZE BENCH_EPOCHS BENCH_HALF BENCH_DEVICE_NAME \
        BENCH_DRY_RUN
    # timed NAME CMD...: CMD as a whole process, within BENCH_SECONDS and the
    # time CHECK_SECONDS leaves; $B/NAME.time gets "EXIT MS LIMIT" (or "skip
    # WHY"), $B/NAME.out and .err its output
    timed() {
        local name=$1 left lim s rc
        shift
        left=$((CHECK_SECONDS - ($(date +%s) - T0) - 15))
        lim=$BENCH_SECONDS
        [ "$left" -lt "$lim" ] && lim=$left
        if [ "$left" -lt 10 ]; then
            echo "skip out of time (CHECK_SECONDS=$CHECK_SECONDS)" >"$B/$name.time"
            return 1
        fi
        log "bench: $name"
        s=$(now_ms)
        BENCH_LAUNCH_MS=$s timeout -k 5 "$lim" "$@" >"$B/$name.out" 2>"$B/$name.err"
        rc=$?
        echo "$rc $(($(now_ms) - s)) $lim" >"$B/$name.time"
        { echo "-- $name: exit $rc"; tail -n 20 "$B/$name.err"; } >>"$LOG"
        return $rc
    }
    # bench_row CHECK: the row from the runs' files, then its record
    bench_row() {
        local detail
        detail=$("$PY" tests/gpu/bench_report.py row "$1" "$B" "$RES" "$OUT" 2>>"$LOG") ||
            detail=$'fail\tbench_report.py failed'
        record "$1" "${detail%%$'\t'*}" "${detail#*$'\t'}"
    }
    wants() { [[ " $BENCH_ROWS " == *" $1 "* ]]; }
    # onnxtrain's training: NAME MODE EPOCHS PRECISION [extra...]
    ot_train() {
        local name=$1 mode=$2 epochs=$3 prec=$4 lr=1e-4
        shift 4
        [ "$mode" = feature-extract ] && lr=1e-3
        timed "$name" "$BIN" finetune "$B/r18.onnx" --data "$B/data" --classes 10 \
            --image-size "$BENCH_SIZE" --batch-size "$BENCH_BATCH" --epochs "$epochs" \
            --mode "$mode" --precision "$prec" --optimizer adam --lr "$lr" --device "$DEV" \
            --cache-mem 16G --autotune --plan-cache "$B/plans_$name" --log "$B/$name.csv" \
            -o "$B/$name.onnx" "$@"
    }
    # PyTorch's: NAME MODE EPOCHS AUTOCAST
    pt_train() {
        timed "$1" "$PY" tests/gpu/torch_bench.py train --data "$B/data/data_batch_1.bin" \
            --mode "$2" --epochs "$3" --batch-size "$BENCH_BATCH" --size "$BENCH_SIZE" \
            --autocast "$4" --device "$DEV" -o "$B/$1.pt"
    }
    # inference in the loop: NAME BATCH WARMUP RUNS
    ot_infer() {
        timed "$1" "$BENCH_INFER" "$B/r18_eval.onnx" --batch "$2" --warmup "$3" --runs "$4" \
            --device "$DEV" --autotune --plan-cache "$B/plans_$1"
    }
    pt_infer() {
        timed "$1" "$PY" tests/gpu/torch_bench.py infer --batch "$2" --size "$BENCH_SIZE" \
            --warmup "$3" --runs "$4" --device "$DEV"
    }

    # the same images for both (CIFAR-10 binary, 32x32, resized to
    # BENCH_SIZE by each tool on the device), and the model
    if ! "$PY" tests/gpu/torch_bench.py data "$B/data" --images "$BENCH_IMAGES" >>"$LOG" 2>&1 ||
        ! "$PY" tests/gpu/torch_bench.py export "$B" --size "$BENCH_SIZE" >>"$LOG" 2>&1; then
        why="the benchmark's data or model: $(tail -n 1 "$LOG")"
        for r in $BENCH_ROWS; do
            [ "$r" = host_memory ] || record "bench_$r" fail "$why"
        done
        BENCH_SETUP_FAILED=1
    else
        if wants full_bf16; then
            pt_train pt_full_bf16 full 1 bf16
            ot_train ot_full_bf16 full 1 "$BENCH_HALF"
            bench_row bench_full_bf16
        fi
        # one step of full training with every plan on disk (those of the
        # run above), the whole process (export to /dev/null included)
        if wants cold_start; then
            timed ot_cold "$BIN" finetune "$B/r18.onnx" --data "$B/data" --classes 10 \
                --image-size "$BENCH_SIZE" --batch-size "$BENCH_BATCH" --epochs 1 --max-steps 1 \
                --mode full --precision "$BENCH_HALF" --optimizer adam --device "$DEV" \
                --plan-cache "$B/plans_ot_full_bf16" -o /dev/null
            bench_row bench_cold_start
        fi
        if wants finetune; then
            pt_train pt_ft fine-tune "$BENCH_EPOCHS" off
            ot_train ot_ft fine-tune "$BENCH_EPOCHS" fp32
            bench_row bench_finetune
        fi
        if wants feature_extract; then
            pt_train pt_fe feature-extract "$BENCH_EPOCHS" off
            ot_train ot_fe feature-extract "$BENCH_EPOCHS" fp32
            bench_row bench_feature_extract
        fi
        if wants infer_b1; then
            read -r w n <<<"$BENCH_RUNS_B1"
            pt_infer pt_infer_b1 1 "$w" "$n"
            ot_infer ot_infer_b1 1 "$w" "$n"
            bench_row bench_infer_b1
        fi
        if wants infer_b256; then
            read -r w n <<<"$BENCH_RUNS_B256"
            pt_infer pt_infer_b256 256 "$w" "$n"
            ot_infer ot_infer_b256 256 "$w" "$n"
            bench_row bench_infer_b256
        fi
        if wants full_fp32; then
            pt_train pt_full_fp32 full 1 off
            ot_train ot_full_fp32 full 1 fp32
            bench_row bench_full_fp32
        fi
    fi
    # measured by the correctness phase (host_memory_flat)
    wants host_memory && bench_row bench_host_memory
fi

if [ -n "$DRY" ]; then # a run that failed (not a goal missed) fails the dry run
    [ -n "${BENCH_SETUP_FAILED:-}" ] && exit 1
    "$PY" - "$OUT/bench.json" <<'PYEOF'
import json, sys
rows = json.load(open(sys.argv[1]))
bad = [r["check"] for r in rows if r["status"] == "fail" and not r["onnxtrain"]]
print("dry run: %d rows, %s" % (len(rows), "runs failed: " + " ".join(bad) if bad else "every run finished"))
sys.exit(1 if bad else 0)
PYEOF
    exit $?
fi
"$PY" -c 'import json,sys; sys.exit(1 if json.load(open(sys.argv[1]))["failed"] else 0)' "$OUT/check.json"
