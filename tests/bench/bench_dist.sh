#!/bin/bash
# tests/bench/bench_dist.sh: the distributed section of the benchmarks
# (`make bench-dist`; `make bench` runs it after the others). On this
# machine: 2 ranks x 1 thread against 1 process x 2 threads for each mode
# (the ratio shows what communication costs here; on one machine it cannot
# show scaling), the share of the training loop spent in all-reduces that
# compute did not hide, the all-reduce bandwidth of MPI_Iallreduce
# (tests/bench/allreduce_bw.c) and the bucket size it suggests, and the
# scaling estimate for N machines of docs/distributed.md from these numbers.
# Published figures need a quiet machine: on a loaded one the ranks wait
# for the scheduler, not for each other.
#
#   BUILD=build [ONLY=dist] [BENCH_DIST_SIZE=224] [BENCH_DIST_BATCH=16]
#       [BENCH_DIST_STEPS=6] bash tests/bench/bench_dist.sh
#
# Prints Markdown; writes $BUILD/bench/dist.md. Skipped (saying why, exit 0)
# where mpirun, mpicc or $BUILD/libonnxtrain_mpi.so is missing.
cd "$(dirname "$0")/../.." || exit 1
# `make bench ONLY=...` runs this section only when the list names dist
case ",${ONLY// /,}," in
    ,, | *,dist,*) ;;
    *) exit 0 ;;
esac
BUILD=${BUILD:-build}
OT=$BUILD/onnxtrain
SIZE=${BENCH_DIST_SIZE:-224}
BATCH=${BENCH_DIST_BATCH:-16}
STEPS=${BENCH_DIST_STEPS:-6}
OUT=$BUILD/bench
mkdir -p "$OUT"

echo "## Distributed: 2 ranks x 1 thread against 1 process x 2 threads"
echo
why=
command -v mpirun >/dev/null 2>&1 || why="mpirun is not installed (openmpi-bin)"
command -v mpicc >/dev/null 2>&1 || why="mpicc is not installed (libopenmpi-dev)"
[ -e "$BUILD/libonnxtrain_mpi.so" ] || why="$BUILD/libonnxtrain_mpi.so is not built"
[ -x "$OT" ] || why="$OT is not built"
if [ -n "$why" ]; then
    echo "skipped: $why"
    exit 0
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader,tcp
export OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
FX=$BUILD/fixtures
DATA=$BUILD/tiny_cifar
if ! /usr/bin/python3 tests/fixtures/make_resnet18.py "$FX" >"$OUT/dist_make.log" 2>&1 ||
    ! /usr/bin/python3 tests/fixtures/make_tiny_cifar.py "$DATA" >>"$OUT/dist_make.log" 2>&1; then
    echo "failed: fixtures: $(tail -n 1 "$OUT/dist_make.log")"
    exit 1
fi
if ! mpicc -O2 tests/bench/allreduce_bw.c -o "$OUT/allreduce_bw" ||
    ! mpirun --oversubscribe -np 2 "$OUT/allreduce_bw" >"$OUT/allreduce_bw.txt"; then
    echo "failed: tests/bench/allreduce_bw.c"
    exit 1
fi

# one run per mode and layout: the epoch line's seconds and images/s, and
# rank 0's all-reduce line
for mode in feature-extract fine-tune full; do
    RUN=(finetune "$FX/resnet18_bn.onnx" --data "$DATA" --classes 10 --image-size "$SIZE"
         --batch-size "$BATCH" --epochs 1 --max-steps "$STEPS" --optimizer sgd --lr 0.001
         --mode "$mode" --no-cache)
    OMP_NUM_THREADS=2 "$OT" "${RUN[@]}" --threads 2 -o "$OUT/dist_1.onnx" 2>&1 |
        tr '\r' '\n' >"$OUT/dist_$mode.1.txt"
    OMP_NUM_THREADS=1 mpirun --oversubscribe -np 2 "$OT" "${RUN[@]}" --threads 1 \
        -o "$OUT/dist_2.onnx" 2>&1 | tr '\r' '\n' >"$OUT/dist_$mode.2.txt"
done
# full mode with the reductions after the backward pass: what overlap hides
OMP_NUM_THREADS=1 mpirun --oversubscribe -np 2 "$OT" "${RUN[@]}" --threads 1 \
    --no-overlap -o "$OUT/dist_2.onnx" 2>&1 | tr '\r' '\n' >"$OUT/dist_full.2b.txt"

/usr/bin/python3 - "$OUT" "$SIZE" "$BATCH" "$STEPS" <<'PYEOF' | tee "$OUT/dist.md"
import math, re, sys
out, size, batch, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

def run(path):
    text = open(path).read()
    ep = re.findall(r"^epoch 1/1 .*?([0-9.]+) img/s\s+([0-9.]+)s\s*$", text, re.M)
    ar = re.search(r"all-reduce: ([0-9.]+) MB in ([0-9.]+) s.*? took ([0-9.]+) s", text)
    # what the not-hidden seconds were spent on
    of = re.search(r"of the [0-9.]+ s: ([0-9.]+) s waiting for the gradients' reductions, "
                   r"([0-9.]+) s in the steps' sums.*?the rank that waited least\): ([0-9.]+) s",
                   text)
    if not ep:
        return None
    ips, secs = float(ep[-1][0]), float(ep[-1][1])
    return ips, secs, (float(ar.group(1)), float(ar.group(2)), float(ar.group(3))) if ar \
        else (0.0, 0.0, 0.0), (float(of.group(1)), float(of.group(2)), float(of.group(3))) \
        if of else (0.0, 0.0, 0.0)

bw = []
for line in open(out + "/allreduce_bw.txt"):
    f = line.split()
    if len(f) >= 3:
        bw.append((int(f[0]), float(f[1]), float(f[2])))
peak = max(b[2] for b in bw)
suggest = min(b[0] for b in bw if b[2] >= 0.9 * peak)
print("MPI_Iallreduce of floats between 2 ranks (shared memory, tests/bench/allreduce_bw.c):")
print()
print("| bytes | seconds | MB/s |")
print("|---:|---:|---:|")
for b in bw:
    print("| %d | %.3g | %.0f |" % b)
print()
cur = re.search(r"^#define OT_DIST_BUCKET_MB (\S+)", open("src/dist/dist.h").read(), re.M)
print("Peak %.0f MB/s; the smallest message within 90%% of it: %.2f MB (the size a bucket "
      "should reach)." % (peak, suggest / 1e6))
print()
print("bucket-mb default from this machine: %d (OT_DIST_BUCKET_MB in src/dist/dist.h, now %s)"
      % (max(1, math.ceil(suggest / 1e6)), cur.group(1) if cur else "?"))
print()
print("ResNet-18 at %dx%d, batches of %d, %d steps (the first included), no prefix cache:"
      % (size, size, batch, steps))
print()
print("| mode | 1 x 2 threads img/s | 2 x 1 thread img/s | ratio | all-reduce MB/step | "
      "gradient reductions s/step | not hidden s/step | of which gradient waits | "
      "of which step sums | not hidden | least rank s/step | least rank |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
rows = {}
for mode, two_file in (("feature-extract", "2"), ("fine-tune", "2"), ("full", "2"),
                       ("full, --no-overlap", "2b")):
    key = mode.split(",")[0]
    one = run("%s/dist_%s.1.txt" % (out, key))
    two = run("%s/dist_%s.%s.txt" % (out, key, two_file))
    if not one or not two:
        print("| %s | failed: see %s/dist_%s.*.txt | | | | | | | | | | |" % (mode, out, key))
        continue
    mb, red, busy = two[2][0] / steps, two[2][1] / steps, two[2][2] / steps
    share = two[2][1] / two[1] if two[1] > 0 else 0
    rows[mode] = (two[1] / steps, mb, red)
    least = two[3][2] / two[1] if two[1] > 0 else 0
    print("| %s | %.1f | %.1f | %.2f | %.2f | %.3f | %.3f | %.3f | %.3f | %.1f%% | %.3f | %.1f%% |"
          % (mode, one[0], two[0], two[0] / one[0], mb, busy, red, two[3][0] / steps,
             two[3][1] / steps, 100 * share, two[3][2] / steps, 100 * least))
print()
print("'gradient reductions': rank 0's seconds from the start of each bucket's all-reduce "
      "to its end. 'not hidden': rank 0's seconds inside all-reduce calls and waits in the "
      "training loop (gradients, loss, BatchNorm; waiting for the other rank included), per "
      "step and as a share of the loop: the goal is below 5% in full mode at 224x224. Of "
      "them, 'gradient waits': waiting for the gradients' reductions before the updates "
      "(what the backward pass did not hide); 'step sums': the loss and accuracy summed "
      "after each step, which waits for the slower rank (load imbalance, not transfer). "
      "'least rank': per step, the all-reduce seconds of the rank that spent least in them "
      "before the step's sums (it waited for no other rank's compute, so what remains is "
      "communication that no compute hid; the BatchNorm mean added), per step and as a "
      "share of the loop. The buckets start during the backward pass; the --no-overlap row "
      "runs them after it.")
if "full" in rows:
    t, mb, red = rows["full"]
    comp = t - red
    print()
    print("Scaling estimate, full mode, global batch %d (docs/distributed.md): a step on N "
          "machines costs compute/N (one thread each) plus a ring all-reduce of the gradients, "
          "2(N-1)/N x %.1f MB over the link:" % (batch, mb))
    print()
    print("| N | link | step s | speed-up |")
    print("|---:|---|---:|---:|")
    for link, mbs in (("this machine's MPI (%.0f MB/s)" % peak, peak), ("10 Gb/s (1200 MB/s)", 1200.0)):
        for n in (2, 4, 8):
            s = 2 * comp / n + 2 * (n - 1) / n * mb / mbs
            print("| %d | %s | %.2f | %.2f |" % (n, link, s, 2 * comp / s))
PYEOF
