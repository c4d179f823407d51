#!/bin/bash
# test_hostile_sweep.sh: findings of a hostile sweep of the CLI that the
# other hostile suites do not cover:
#   - writing a model with external data removes the data files of the
#     output's earlier versions (OUT.data, OUT.<8 hex>.data), but never a file
#     that the input model reads its data from, even when its name has that
#     form (convert a.onnx b.onnx, a.onnx's data in b.onnx.data).
# The models are generated at test time (tests/hostile/sweep.py). Runs in the
# release and the sanitizer builds.
#
#   BUILD=build bash tests/cli/test_hostile_sweep.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
need_cli
T_TIMEOUT=${T_TIMEOUT_HOSTILE:-30}

D=$T_TMP/m
if ! "$PY" tests/hostile/sweep.py "$D" >"$T_TMP/make.log" 2>&1; then
    fail setup "sweep.py failed: $(tail -n 1 "$T_TMP/make.log")"
    finish
fi
cp "$D/b.onnx.data" "$T_TMP/b.data.orig"
cp "$D/d.onnx.0123abcd.data" "$T_TMP/d.data.orig"

# the input's data file is the output's data name ---------------------------
input_data_kept() {
    local name=$1 file=$2 orig=$3 model=$4
    if [ -f "$D/$file" ] && cmp -s "$D/$file" "$orig"; then
        ok "$name: the input's data file $file is kept"
    else
        fail "$name: the input's data file $file is kept" "files: $(ls "$D" | tr '\n' ' ')"
    fi
    expect_rc "$name: the input model still runs" 0 run "$D/$model" --input "$T_TMP/x.pb"
}

"$PY" -c '
import sys, numpy as np
from onnx import numpy_helper
open(sys.argv[1], "wb").write(numpy_helper.from_array(np.ones((1, 4), np.float32), "x").SerializeToString())
' "$T_TMP/x.pb" || fail setup "x.pb"

expect_rc "convert a.onnx b.onnx (data stays external)" 0 convert "$D/a.onnx" "$D/b.onnx"
input_data_kept "convert" b.onnx.data "$T_TMP/b.data.orig" a.onnx
expect_rc "convert: the output runs" 0 run "$D/b.onnx" --input "$T_TMP/x.pb"

expect_rc "convert a.onnx b.onnx again" 0 convert "$D/a.onnx" "$D/b.onnx"
input_data_kept "convert again" b.onnx.data "$T_TMP/b.data.orig" a.onnx
n=$(find "$D" -name 'b.onnx.????????.data' | wc -l)
if [ "$n" -eq 1 ]; then
    ok "convert again: the replaced output's own data is removed"
else
    fail "convert again: the replaced output's own data is removed" "$n files b.onnx.*.data: $(ls "$D" | tr '\n' ' ')"
fi

expect_rc "convert a.onnx b.onnx --inline-data" 0 convert "$D/a.onnx" "$D/b.onnx" --inline-data
input_data_kept "convert --inline-data" b.onnx.data "$T_TMP/b.data.orig" a.onnx
if [ -z "$(find "$D" -name 'b.onnx.????????.data')" ]; then
    ok "convert --inline-data: the replaced output's own data is removed"
else
    fail "convert --inline-data: the replaced output's own data is removed" "$(ls "$D" | tr '\n' ' ')"
fi

expect_rc "convert c.onnx d.onnx --external-data" 0 \
    convert "$D/c.onnx" "$D/d.onnx" --external-data --external-threshold 1
input_data_kept "convert --external-data" d.onnx.0123abcd.data "$T_TMP/d.data.orig" c.onnx
expect_rc "convert --external-data: the output runs" 0 run "$D/d.onnx" --input "$T_TMP/x.pb"

finish
