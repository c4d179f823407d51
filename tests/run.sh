#!/bin/bash
# tests/run.sh: runs every test suite and ends with the line "N passed, N failed".
#
#   BUILD=build bash tests/run.sh        (what `make test` does)
#   BUILD=build OT_FAST=1 bash tests/run.sh   fast suites only
#
# Suites, in order: $BUILD/test_unit, then tests/cli/test_*.sh. Each suite
# prints its own last line "N passed, N failed", which is added to the totals.
# A suite that crashes, or ends without that line, or exits non-zero while
# reporting no failure, counts one failure more. Exits 1 when anything failed.
cd "$(dirname "$0")/.." || exit 1
export BUILD=${BUILD:-build}
export OT_FAST=${OT_FAST:-0}

TOTAL_PASS=0
TOTAL_FAIL=0
LOG=$(mktemp "${TMPDIR:-/tmp}/ot-run.XXXXXX")
trap 'rm -f "$LOG"' EXIT

# run_suite NAME CMD...: runs a suite, shows its output, adds up its counts.
run_suite() {
    local name=$1 rc last p f
    shift
    echo "== $name"
    "$@" 2>&1 | tee "$LOG"
    rc=${PIPESTATUS[0]}
    last=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$LOG" | tail -n 1)
    if [ -n "$last" ]; then
        read -r p _ f _ <<<"$last"
        TOTAL_PASS=$((TOTAL_PASS + p))
        TOTAL_FAIL=$((TOTAL_FAIL + f))
    else
        f=0
    fi
    if [ "$rc" -gt 128 ]; then
        echo "FAIL $name: crashed (signal $((rc - 128)))"
        TOTAL_FAIL=$((TOTAL_FAIL + 1))
    elif [ -z "$last" ]; then
        echo "FAIL $name: exit $rc without a 'N passed, N failed' line"
        TOTAL_FAIL=$((TOTAL_FAIL + 1))
    elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "FAIL $name: exit $rc but no failure reported"
        TOTAL_FAIL=$((TOTAL_FAIL + 1))
    fi
}

if [ -x "$BUILD/test_unit" ]; then
    run_suite unit "$BUILD/test_unit"
else
    echo "== unit"
    echo "FAIL unit: $BUILD/test_unit is not built"
    TOTAL_FAIL=$((TOTAL_FAIL + 1))
fi

for suite in tests/cli/test_*.sh; do
    [ -e "$suite" ] || continue
    run_suite "$(basename "$suite" .sh)" bash "$suite"
done

echo "$TOTAL_PASS passed, $TOTAL_FAIL failed"
[ "$TOTAL_FAIL" -eq 0 ]
