#!/bin/bash
# tests/fuzz/run.sh: seeds and runs the importer's libFuzzer harness.
#
#   bash tests/fuzz/run.sh FUZZ_BIN BUILD_DIR        (make fuzz calls this)
#
#   FUZZ_SECONDS  how long to fuzz (default 60)
#   FUZZ_JOBS     parallel workers through libFuzzer's -fork (default 1)
#   FUZZ_KEEP_GOING  1: do not stop at the first crash (fork mode; every crash,
#                 timeout and out-of-memory input is saved, the run goes on)
#
# 1. Replays every file in tests/fuzz/crashes/ (inputs that once crashed the
#    importer; each must now be handled).
# 2. Adds the small models (<= 200 KB) of the system ONNX test data to the seed
#    corpus, BUILD_DIR/fuzz/corpus (inputs found by earlier runs stay there).
# 3. Fuzzes for FUZZ_SECONDS; crashing inputs go to BUILD_DIR/fuzz/artifacts/.
#
# Exits non-zero when a replayed or new input crashes. To keep a new crash as a
# regression case, copy it from artifacts/ into tests/fuzz/crashes/.
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

WORK=$BUILD_DIR/fuzz
CORPUS=$WORK/corpus
ARTIFACTS=$WORK/artifacts
LOG=$WORK/fuzz.log
mkdir -p "$CORPUS" "$ARTIFACTS"

export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:halt_on_error=1"

status=0

# The interesting lines of a sanitizer or harness report: the error, the
# summary, and the stack frames in the project's own code.
report() {
    grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz_import:|.*runtime error)|^ +#[0-9]+ .*(/src/|fuzz_import\.c)' "$1"
}

# ---------------------------------------------------------------- 1. regressions
n_replay=0
n_replay_bad=0
for f in "$HERE"/crashes/*; do
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
for suite in node simple pytorch-operator; do
    for m in "$TESTDATA"/$suite/*/model.onnx; do
        [ -f "$m" ] || continue
        [ "$(stat -c %s "$m")" -le 204800 ] || continue
        case_name=$(basename "$(dirname "$m")")
        dst=$CORPUS/seed-$suite-$case_name.onnx
        [ -f "$dst" ] || cp "$m" "$dst"
        n_seed=$((n_seed + 1))
    done
done
echo "seed corpus: $n_seed test-data models; $(find "$CORPUS" -type f | wc -l) files in $CORPUS"

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

echo "fuzzing for ${FUZZ_SECONDS}s (log: $LOG)"
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

summary="exit $rc, ${runs:-?} runs in ${FUZZ_SECONDS}s, coverage ${cov:-?} edges, ${ft:-?} features"
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
