#!/bin/bash
# test_roundtrip_testdata.sh: `onnxtrain convert` on every model.onnx of the
# Debian package libonnx-testdata, then tests/roundtrip_check.py on each pair
# (original, exported). A model that does not convert is a failure naming it;
# so is every pair that differs. Skipped when OT_FAST=1.
#
#   BUILD=build bash tests/cli/test_roundtrip_testdata.sh
#   TESTDATA=/usr/share/libonnx-testdata/data (default)
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
skip_if_fast
need_cli
TESTDATA=${TESTDATA:-/usr/share/libonnx-testdata/data}
T_TIMEOUT=${T_TIMEOUT_CONVERT:-60}

shopt -s nullglob
models=("$TESTDATA"/*/*/model.onnx)
if [ "${#models[@]}" -eq 0 ]; then
    fail setup "no models under $TESTDATA (is libonnx-testdata installed?)"
    finish
fi

OUTDIR=$T_TMP/out
mkdir -p "$OUTDIR"
LIST=$T_TMP/pairs.tsv
: >"$LIST"
converted=0
for model in "${models[@]}"; do
    rel=${model#"$TESTDATA"/}
    rel=${rel%/model.onnx}
    out=$OUTDIR/${rel//\//__}.onnx
    ot convert "$model" "$out"
    if [ "$T_RC" -ne 0 ]; then
        fail "convert $rel" "$(describe_run)"
    elif [ ! -s "$out" ]; then
        fail "convert $rel" "exit 0 but no output file"
    else
        printf '%s\t%s\n' "$model" "$out" >>"$LIST"
        converted=$((converted + 1))
    fi
done
echo "converted $converted of ${#models[@]} models"

# Each pair that round-trips is one pass; each FAIL line one failure.
"$PY" tests/roundtrip_check.py "$LIST" >"$T_TMP/rt.log" 2>&1
rc=$?
grep '^FAIL ' "$T_TMP/rt.log"
summary=$(grep -E '^roundtrip: [0-9]+ passed, [0-9]+ failed$' "$T_TMP/rt.log" | tail -n 1)
if [ -z "$summary" ]; then
    fail "roundtrip_check.py" "exit $rc without a summary: $(tail -n 1 "$T_TMP/rt.log")"
else
    read -r _ p _ f _ <<<"$summary"
    echo "$summary"
    T_PASS=$((T_PASS + p))
    T_FAIL=$((T_FAIL + f))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        fail "roundtrip_check.py" "exit $rc"
    fi
fi

finish
