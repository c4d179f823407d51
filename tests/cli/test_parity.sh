#!/bin/bash
# test_parity.sh: one training step of onnxtrain against PyTorch, per freeze
# mode (feature-extract, fine-tune, full, feature-extract with --bn train), on
# ResNet-18 at 64x64 with a batch of 4: loss, logits, every trained gradient,
# BN running statistics, one SGD / Adam / AdamW step, and a 5-step Adam loss
# curve. tests/golden/make_train_golden.py writes the references (float64
# PyTorch) to $BUILD/golden, reused while newer than the script; then
# $BUILD/test_parity (tests/parity/test_parity.c) compares, and its checks
# count as this suite's. Skipped when OT_FAST=1 (about a minute).
#
#   BUILD=build bash tests/cli/test_parity.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
skip_if_fast
T_TIMEOUT=${T_TIMEOUT_PARITY:-900}

PARITY=$BUILD/test_parity
GOLDEN=$BUILD/golden
if [ ! -x "$PARITY" ]; then
    fail setup "$PARITY is not built (make $PARITY)"
    finish
fi
if ! timeout -k 5 "$T_TIMEOUT" "$PY" tests/golden/make_train_golden.py "$GOLDEN" \
    >"$T_TMP/golden.log" 2>&1; then
    fail setup "make_train_golden.py failed: $(tail -n 1 "$T_TMP/golden.log")"
    finish
fi

timeout -k 5 "$T_TIMEOUT" "$PARITY" "$GOLDEN" >"$T_TMP/parity.out" 2>"$T_TMP/parity.err"
rc=$?
summary=""
while IFS= read -r line; do
    if [[ $line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
        summary=$line
        T_PASS=$((T_PASS + BASH_REMATCH[1]))
        T_FAIL=$((T_FAIL + BASH_REMATCH[2]))
    else
        printf '%s\n' "$line"
    fi
done <"$T_TMP/parity.out"
if [ -z "$summary" ]; then
    how="exit $rc"
    [ "$rc" -eq 124 ] && how="timed out after ${T_TIMEOUT}s"
    [ "$rc" -gt 128 ] && how="killed by signal $((rc - 128))"
    fail test_parity "$how without a 'N passed, N failed' line: $(tail -n 1 "$T_TMP/parity.err")"
elif [ "$rc" -ne 0 ] && [[ $summary == *" 0 failed" ]]; then
    fail test_parity "exit $rc but no failure reported: $(tail -n 1 "$T_TMP/parity.err")"
fi
finish
