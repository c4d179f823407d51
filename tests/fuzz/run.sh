#!/bin/bash
# tests/fuzz/run.sh: seeds and runs one libFuzzer harness: fuzz_import (the
# ONNX importer), fuzz_checkpoint (the checkpoint loader), fuzz_data (IDX,
# CIFAR-10 and class-name files) or fuzz_image (JPEG and PNG decoding).
#
#   bash tests/fuzz/run.sh FUZZ_BIN BUILD_DIR        (make fuzz calls this)
#
#   FUZZ_SECONDS  how long to fuzz (default 60)
#   FUZZ_JOBS     parallel workers through libFuzzer's -fork (default 1)
#   FUZZ_KEEP_GOING  1: do not stop at the first crash (fork mode; every crash,
#                 timeout and out-of-memory input is saved, the run goes on)
#
# 1. Replays every regression input: tests/fuzz/crashes/* for the importer,
#    tests/fuzz/crashes/NAME/* for fuzz_NAME (inputs that once crashed or
#    exhausted it; each must now be handled).
# 2. Seeds the corpus, BUILD_DIR/fuzz/corpus (importer) or
#    BUILD_DIR/fuzz/corpus-NAME (inputs found by earlier runs stay there): the
#    small models (<= 200 KB) of the system ONNX test data for the importer and
#    the checkpoint loader, and the hostile inputs tests/fuzz/make_seeds.py
#    writes for the checkpoint, data and image harnesses.
# 3. Fuzzes for FUZZ_SECONDS; crashing inputs go to
#    BUILD_DIR/fuzz/artifacts[-NAME]/.
#
# Exits non-zero when a replayed or new input crashes. To keep a new crash as a
# regression case, copy it from the artifacts folder into the crashes folder.
set -u
FUZZ_BIN=${1:?usage: run.sh FUZZ_BIN BUILD_DIR}
BUILD_DIR=${2:?usage: run.sh FUZZ_BIN BUILD_DIR}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_JOBS=${FUZZ_JOBS:-1}
TESTDATA=${TESTDATA:-/usr/share/libonnx-testdata/data}
HERE=$(cd "$(dirname "$0")" && pwd)

if [ ! -x "$FUZZ_BIN" ]; then
    echo "run.sh: $FUZZ_BIN is not built" >&2
    exit 2
fi

NAME=$(basename "$FUZZ_BIN")
NAME=${NAME#fuzz_}
WORK=$BUILD_DIR/fuzz
if [ "$NAME" = import ]; then
    CORPUS=$WORK/corpus
    ARTIFACTS=$WORK/artifacts
    CRASHES=$HERE/crashes
    LOG=$WORK/fuzz.log
else
    CORPUS=$WORK/corpus-$NAME
    ARTIFACTS=$WORK/artifacts-$NAME
    CRASHES=$HERE/crashes/$NAME
    LOG=$WORK/fuzz-$NAME.log
fi
mkdir -p "$CORPUS" "$ARTIFACTS"

export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:halt_on_error=1"

status=0

# The interesting lines of a sanitizer or harness report: the error, the
# summary, and the stack frames in the project's own code.
report() {
    grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz_[a-z]+:|.*runtime error)|^ +#[0-9]+ .*(/src/|fuzz_[a-z]+\.c)' "$1"
}

# ---------------------------------------------------------------- 1. regressions
n_replay=0
n_replay_bad=0
for f in "$CRASHES"/*; do
    [ -f "$f" ] || continue
    n_replay=$((n_replay + 1))
    if ! "$FUZZ_BIN" -rss_limit_mb=2048 -timeout=30 "$f" >"$WORK/replay.log" 2>&1; then
        n_replay_bad=$((n_replay_bad + 1))
        echo "FAIL regression input still crashes: $f"
        report "$WORK/replay.log" | head -n 20
        status=1
    fi
done
echo "replayed $n_replay regression inputs, $n_replay_bad still crash"

# ---------------------------------------------------------------- 2. seeds
n_seed=0
if [ "$NAME" != import ] && [ "$NAME" != checkpoint ]; then
    set -- # no ONNX test-data models
elif [ "$NAME" = checkpoint ] && [ -d "$TESTDATA/simple" ]; then
    set -- simple
else
    set -- node simple pytorch-operator
fi
if [ "$NAME" != import ]; then
    if ! /usr/bin/python3 "$HERE/make_seeds.py" "$NAME" "$CORPUS" >"$WORK/seeds-$NAME.log" 2>&1; then
        echo "FAIL make_seeds.py $NAME: $(tail -n 1 "$WORK/seeds-$NAME.log")"
        status=1
    fi
    n_seed=$(find "$CORPUS" -name 'seed-*' -type f | wc -l)
fi
for suite in "$@"; do
    for m in "$TESTDATA"/$suite/*/model.onnx; do
        [ -f "$m" ] || continue
        [ "$(stat -c %s "$m")" -le 204800 ] || continue
        case_name=$(basename "$(dirname "$m")")
        dst=$CORPUS/seed-$suite-$case_name.onnx
        [ -f "$dst" ] || cp "$m" "$dst"
        n_seed=$((n_seed + 1))
    done
done
echo "seed corpus ($NAME): $n_seed seeds; $(find "$CORPUS" -type f | wc -l) files in $CORPUS"

# ---------------------------------------------------------------- 3. fuzz
# Artifacts from earlier runs are not this run's findings.
stamp=$WORK/.start
touch "$stamp"
fork=()
if [ "${FUZZ_KEEP_GOING:-0}" = 1 ]; then
    fork=(-fork="$FUZZ_JOBS" -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1)
elif [ "$FUZZ_JOBS" -gt 1 ]; then
    fork=(-fork="$FUZZ_JOBS")
fi

echo "fuzzing $NAME for ${FUZZ_SECONDS}s (log: $LOG)"
"$FUZZ_BIN" "${fork[@]}" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -max_len=262144 \
    -timeout=30 -print_final_stats=1 -artifact_prefix="$ARTIFACTS/" "$CORPUS" >"$LOG" 2>&1
rc=$?

# ---------------------------------------------------------------- summary
runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$LOG" | tail -n 1 | grep -oE '[0-9]+$')
[ -n "$runs" ] || runs=$(grep -oE '^#[0-9]+' "$LOG" | tail -n 1 | tr -d '#')
cov=$(grep -oE 'cov: [0-9]+' "$LOG" | tail -n 1 | grep -oE '[0-9]+')
ft=$(grep -oE 'ft: [0-9]+' "$LOG" | tail -n 1 | grep -oE '[0-9]+')
peak=$(grep -oE 'stat::peak_rss_mb: *[0-9]+' "$LOG" | tail -n 1 | grep -oE '[0-9]+$')
[ -n "$peak" ] || peak=$(grep -oE 'rss: [0-9]+Mb' "$LOG" | tail -n 1 | grep -oE '[0-9]+')
new=$(find "$ARTIFACTS" -type f -newer "$stamp" | sort)
# fork mode's progress lines count the inputs it set aside: oom/timeout/crash
otc=$(grep -oE 'oom/timeout/crash: [0-9]+/[0-9]+/[0-9]+' "$LOG" | tail -n 1 | cut -d' ' -f2)

summary="$NAME: exit $rc, ${runs:-?} runs in ${FUZZ_SECONDS}s, coverage ${cov:-?} edges, ${ft:-?} features"
summary+=", corpus $(find "$CORPUS" -type f | wc -l) files"
[ -n "$peak" ] && summary+=", peak RSS $peak MB"
[ -n "$otc" ] && summary+=", oom/timeout/crash $otc"
echo "fuzz summary: $summary"
if [ "$rc" -ne 0 ] || [ -n "$new" ]; then
    status=1
    echo "FAIL fuzzer found a problem; reproducers:"
    for f in $new; do echo "  $f  (replay: $FUZZ_BIN $f)"; done
    report "$LOG" | head -n 40
else
    echo "ok   no crash"
fi
exit $status
