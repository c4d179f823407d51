#!/bin/bash
# test_broken.sh: every file of the broken-model corpus (tests/fixtures/
# make_broken.py) makes `inspect` and `convert` fail cleanly: exit status
# exactly 1 (no crash, no sanitizer report, no timeout), one stderr line
# "onnxtrain: error: ..." containing the case's expected fragment, and, for
# convert, nothing left in the output folder (no output, no temporary file).
#
#   BUILD=build bash tests/cli/test_broken.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
need_cli
T_TIMEOUT=${T_TIMEOUT_BROKEN:-30}

CORPUS=$T_TMP/corpus
if ! "$PY" tests/fixtures/make_broken.py "$CORPUS" >"$T_TMP/make.log" 2>&1; then
    fail setup "make_broken.py failed: $(tail -n 1 "$T_TMP/make.log")"
    finish
fi

n=0
while IFS=$'\t' read -r file fragment; do
    [ -n "$file" ] || continue
    n=$((n + 1))
    model=$CORPUS/$file

    expect_error "inspect $file" "$fragment" inspect "$model"

    out=$T_TMP/out$n
    mkdir -p "$out"
    ot convert "$model" "$out/out.onnx"
    why=$(error_problem "$fragment")
    left=$(ls -A "$out" | tr '\n' ' ')
    if [ -n "$left" ]; then
        why="${why:+$why; }left in the output folder: $left"
    fi
    if [ -z "$why" ]; then
        ok "convert $file"
    else
        fail "convert $file" "$why"
    fi
done <"$CORPUS/cases.tsv"

# inputs the fuzzer once crashed on: a one-line error or success, never a crash,
# and no output file left behind on error
for f in tests/fuzz/crashes/*.onnx; do
    [ -e "$f" ] || continue
    rm -f "$T_TMP/fz.onnx"
    ot convert "$f" "$T_TMP/fz.onnx"
    if [ "$T_RC" -eq 0 ] && [ -s "$T_TMP/fz.onnx" ]; then
        ok "fuzz regression $(basename "$f")"
    elif [ "$T_RC" -eq 1 ] && [ "$T_NERR" -eq 1 ] && [ ! -e "$T_TMP/fz.onnx" ] &&
         [[ $T_ERR == "onnxtrain: error: "* ]]; then
        ok "fuzz regression $(basename "$f")"
    else
        fail "fuzz regression $(basename "$f")" "$(describe_run)"
    fi
done

if [ "$n" -ge 20 ]; then
    ok "corpus has $n cases"
else
    fail "corpus" "only $n cases in cases.tsv"
fi

finish
