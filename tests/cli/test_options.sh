#!/bin/bash
# test_options.sh: the option parser every command shares (typed option
# tables read with getopt_long): one usage line, exit 2, for each kind of
# bad value (integer, decimal, byte count, choice, batch), a missing or empty
# value, a value given to a flag, unknown and abbreviated names; and the
# forms that are accepted: --opt=value, --opt value, -kN, -k N, options after
# positionals (also under POSIXLY_CORRECT), `--`, repeated list options;
# finetune and eval choices and ranges.
#
#   BUILD=build bash tests/cli/test_options.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
need_cli

# tiny.onnx: tests/fixtures/make_tiny_classifier.py; x1.pb: a batch of one,
# named x; a.ppm: an 8x8 image.
D=$T_TMP/data
mkdir -p "$D"
"$PY" tests/fixtures/make_tiny_classifier.py "$D/tiny.onnx" >"$T_TMP/make.log" 2>&1 &&
"$PY" - "$D" <<'EOF' || { fail setup "cannot build the tiny model: $(tail -n 1 "$T_TMP/make.log")"; finish; }
import os, sys
import numpy as np
from onnx import numpy_helper
d = sys.argv[1]
rng = np.random.default_rng(0)
x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
with open(os.path.join(d, "x1.pb"), "wb") as f:
    f.write(numpy_helper.from_array(x, "x").SerializeToString())
with open(os.path.join(d, "a.ppm"), "wb") as f:
    f.write(b"P6 8 8 255\n" + rng.integers(0, 256, 8 * 8 * 3, dtype=np.uint8).tobytes())
EOF
M=$D/tiny.onnx
X=$D/x1.pb
A=$D/a.ppm

# usage NAME SPEC CMD ARGS...: exit 2, one stderr line
#   onnxtrain: error: CMD: ... (see 'onnxtrain CMD --help')
# that matches SPEC (see matches in lib.sh)
usage() {
    local name=$1 spec=$2 cmd=$3
    shift 3
    ot "$cmd" "$@"
    if [ "$T_RC" -ne 2 ] || [ "$T_NERR" -ne 1 ]; then
        fail "$name" "expected exit 2 and one stderr line; $(describe_run)"
    elif [[ $T_ERR != "onnxtrain: error: $cmd: "*" (see 'onnxtrain $cmd --help')" ]]; then
        fail "$name" "not the usage-error line of $cmd: $T_ERR"
    elif ! matches "$T_ERR" "$spec"; then
        fail "$name" "expected '$spec' in: $T_ERR"
    else
        ok "$name"
    fi
}

# ------------------------------------------------------------ bad values
usage "integer: not a number" "bad value '1.5' for --batch (expected an integer from 1 to" \
    run "$M" --random --batch 1.5
usage "integer: out of range" "bad value '0' for --top (expected an integer from 1 to" \
    predict "$M" "$A" --top 0
usage "integer: overflow" "bad value '99999999999999999999' for --seed" \
    zoo resnet18 -o "$T_TMP/z.onnx" --seed 99999999999999999999
usage "decimal: out of range" "bad value '1e31' for --rtol (expected a decimal number from 0" \
    test-data "$D" --rtol 1e31
usage "decimal: negative" "bad value '-1' for --atol" test-data "$D" --atol -1
usage "decimal: not finite" "bad value 'nan' for --rtol" test-data "$D" --rtol nan
usage "size: bad suffix" "bad value '4Q' for --max-tensor-size (expected bytes from 1" \
    inspect "$M" --max-tensor-size 4Q
usage "size: zero" "bad value '0' for --max-tensor-size" export "$M" "$T_TMP/e.onnx" \
    --max-tensor-size 0
usage "choice: bad --mode" \
    "bad value 'bogus' for --mode (expected feature-extract, fine-tune or full)" \
    inspect "$M" --training --mode bogus
usage "choice: bad --bn" "bad value 'eval' for --bn (expected policy or train)" \
    inspect "$M" --training --bn eval
usage "batch: bad value" "bad value 'static' for --batch (expected a positive integer or 'dynamic')" \
    convert "$M" "$T_TMP/c.onnx" --batch static

# ------------------------------------------------------------ names and values
usage "missing value (long)" "option '--top' needs a value (K)" predict "$M" "$A" --top
usage "missing value (short)" "option '-k' needs a value (K)" predict "$M" "$A" -k
usage "empty value (--opt=)" "option '--max-tensor-size' needs a non-empty value" \
    inspect "$M" --max-tensor-size=
usage "empty value (--opt '')" "option '--output-dir' needs a non-empty value" \
    run "$M" --random --output-dir ""
usage "value given to a flag" "option '--json' takes no value" inspect --json=yes "$M"
usage "unknown long option" "unknown option '--frobnicate'" inspect --frobnicate "$M"
usage "unknown long option with a value" "unknown option '--frob'" \
    inspect --frob=1 "$M"
usage "unknown short option" "unknown option '-x'" inspect -x "$M"
usage "an abbreviation is not the option" "unknown option '--jso'" inspect --jso "$M"
usage "an abbreviation with a value" "unknown option '--max-tensor'" \
    inspect --max-tensor 1G "$M"
usage "missing positional" "missing IMAGE" predict "$M"
usage "unexpected positional" "unexpected argument" inspect "$M" "$M"

# ------------------------------------------------------------ accepted forms
ot predict "$M" "$A" --json --top=3
top_eq=$T_OUT
ot predict --top 3 "$M" --json "$A"
top_sp=$T_OUT
ot predict "$M" -k3 "$A" --json
top_k=$T_OUT
ot predict "$M" "$A" --json -k 3
if [ "$T_RC" -eq 0 ] && [ -n "$T_OUT" ] && [ "$top_eq" = "$T_OUT" ] && [ "$top_sp" = "$T_OUT" ] &&
    [ "$top_k" = "$T_OUT" ]; then
    ok "--top=3, --top 3, -k3 and -k 3 in any place give the same output"
else
    fail "--top=3, --top 3, -k3 and -k 3 in any place give the same output" "$(describe_run)"
fi
py_checks "predict --top=3 --json" '
import json, sys
j = json.loads(sys.argv[1])
n = [len(p["top"]) for p in j["predictions"]]
print("ok three classes" if n == [3] else "FAIL three classes: %r" % n)
' "$top_eq"

POSIXLY_CORRECT=1 ot inspect "$M" --json
if [ "$T_RC" -eq 0 ] && [[ $T_OUT == "{"* ]]; then
    ok "options after positionals under POSIXLY_CORRECT"
else
    fail "options after positionals under POSIXLY_CORRECT" "$(describe_run)"
fi

expect_rc "-- ends the options" 0 inspect --json -- "$M"
cp "$M" "$T_TMP/-m.onnx"
OT_ABS=$(realpath "$OT")
(cd "$T_TMP" && "$OT_ABS" inspect --json -- -m.onnx) >"$T_TMP/m.out" 2>&1
m_rc=$?
if [ "$m_rc" -eq 0 ] && grep -q '"model": "-m.onnx"' "$T_TMP/m.out"; then
    ok "a positional after -- may start with -"
else
    fail "a positional after -- may start with -" "exit $m_rc: $(head -c 200 "$T_TMP/m.out")"
fi

ot inspect "$M" --training --mode bogus --help
if [ "$T_RC" -eq 0 ] && [[ $T_OUT == *"usage: onnxtrain inspect"* ]]; then
    ok "--help wins over a bad value"
else
    fail "--help wins over a bad value" "$(describe_run)"
fi

expect_rc "-v and -vv still raise the log level" 0 -v inspect -vv "$M"

# a list option: --input=FILE and --input FILE, in the order given
ot run "$M" --input="x=$X" --json
a_out=$T_OUT
ot run "$M" --json --input "$X"
if [ "$T_RC" -eq 0 ] && [ -n "$a_out" ] && [ "$a_out" = "$T_OUT" ]; then
    ok "--input=NAME=FILE and --input FILE"
else
    fail "--input=NAME=FILE and --input FILE" "$(describe_run)"
fi
expect_error "--input given twice binds both, in order" "'x'&twice" \
    run "$M" --input="x=$X" --input "x=$X"

# the last value of a repeated option wins
ot predict "$M" "$A" --json --top 1 --top=2
py_checks "the last --top wins" '
import json, sys
j = json.loads(sys.argv[1])
n = [len(p["top"]) for p in j["predictions"]]
print("ok two classes" if n == [2] else "FAIL two classes: %r" % n)
' "$T_OUT"


# ------------------------------------------------------------ finetune and eval
F=(finetune "$M" --data "$D" -o "$T_TMP/f.onnx")
usage "finetune: bad --optimizer" "bad value 'adagrad' for --optimizer (expected sgd, adam or adamw)" \
    "${F[@]}" --optimizer adagrad
usage "finetune: an alias is accepted, not listed" \
    "bad value 'fp8' for --cache-dtype (expected f32 or bf16)" "${F[@]}" --cache-dtype fp8
usage "finetune: bad --lr-schedule" "bad value 'linear' for --lr-schedule (expected constant, step or cosine)" \
    "${F[@]}" --lr-schedule linear
usage "finetune: bad --keep" "bad value 'worst' for --keep (expected best or last)" \
    "${F[@]}" --keep worst
usage "finetune: --val-split out of range" "bad value '1' for --val-split (expected a decimal number" \
    "${F[@]}" --val-split 1
usage "finetune: --batch-size=0" "bad value '0' for --batch-size (expected an integer from 1 to 65536)" \
    "${F[@]}" --batch-size=0
usage "finetune: --cache-mem suffix" "bad value '2X' for --cache-mem (expected bytes" \
    "${F[@]}" --cache-mem 2X
usage "finetune: -o without a value" "option '-o' needs a value (OUT.onnx)" finetune "$M" --data "$D" -o
usage "eval: bad --normalize" "bad value 'unit' for --normalize (expected imagenet, half or none)" \
    eval "$M" --data "$D" --normalize unit
usage "eval: --threads 0" "bad value '0' for --threads (expected an integer from 1 to 4096)" \
    eval "$M" --data "$D" --threads 0

finish
