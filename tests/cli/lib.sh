# tests/cli/lib.sh: helpers for the shell test suites in tests/cli/.
#
# A suite sources this file from the repository root, records each test with
# `ok NAME` or `fail NAME MSG`, and ends with `finish`, which prints the
# suite's last line, "N passed, N failed", and exits non-zero on a failure.
#
#   BUILD    build folder (default: build); the binary is $BUILD/onnxtrain
#   OT_FAST  1: suites that call `skip_if_fast` only print "skipped"
#
# ot ARGS...            runs the CLI (under a timeout); sets T_RC, T_OUT, T_ERR
#                       (stdout and stderr as text) and T_NERR (stderr lines)
# expect_rc NAME RC ARGS...          the CLI exits with RC
# expect_error NAME FRAGMENT ARGS... the CLI fails as the contract says: exit
#                       status exactly 1, exactly one stderr line, starting
#                       with "onnxtrain: error: " and matching FRAGMENT
#                       (see `matches`)
# expect_usage NAME ARGS...          the CLI exits with 2 and says why in one
#                       stderr line starting with "onnxtrain: error: "
# matches TEXT SPEC     case-insensitive: SPEC's "|"-separated alternatives,
#                       each a "&"-joined list of substrings that must all occur
# py_checks NAME SCRIPT [ARGS...]    runs python; its lines "ok X" and "FAIL X: why"
#                       become tests NAME/X; a crash is one failure

# shellcheck disable=SC2034  # T_OUT, T_ERR and T_NERR are read by the suites
BUILD=${BUILD:-build}
OT=${OT:-$BUILD/onnxtrain}
PY=/usr/bin/python3
T_TIMEOUT=${T_TIMEOUT:-120}
T_PASS=0
T_FAIL=0

# Without --threads or OMP_NUM_THREADS the CLI takes the cores other
# processes leave free at its start; the suites keep every core instead, as
# the library's default, so that results never depend on the machine's load
# (test_threads.sh unsets it to test the choice).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}

# Sanitizer reports must not look like the CLI's own exit status 1.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=86"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}exitcode=86:print_stacktrace=1"

T_TMP=$(mktemp -d "${TMPDIR:-/tmp}/ot-cli.XXXXXX")
trap 'rm -rf "$T_TMP"' EXIT

ok() {
    T_PASS=$((T_PASS + 1))
    echo "ok   $1"
}

fail() {
    T_FAIL=$((T_FAIL + 1))
    echo "FAIL $1: $2"
}

finish() {
    echo "$T_PASS passed, $T_FAIL failed"
    [ "$T_FAIL" -eq 0 ]
    exit $?
}

skip_if_fast() {
    if [ "${OT_FAST:-0}" = 1 ]; then
        echo "skipped (OT_FAST=1)"
        finish
    fi
}

# Ends the suite with one failure when the CLI is not built.
need_cli() {
    if [ ! -x "$OT" ]; then
        fail "setup" "$OT is not built"
        finish
    fi
}

ot() {
    timeout -k 5 "$T_TIMEOUT" "$OT" "$@" </dev/null >"$T_TMP/stdout" 2>"$T_TMP/stderr"
    T_RC=$?
    T_OUT=$(cat "$T_TMP/stdout")
    T_ERR=$(cat "$T_TMP/stderr")
    T_NERR=$(wc -l <"$T_TMP/stderr")
    # a last line without its newline is still a line
    if [ -s "$T_TMP/stderr" ] && [ -n "$(tail -c 1 "$T_TMP/stderr")" ]; then
        T_NERR=$((T_NERR + 1))
    fi
}

first_line() {
    printf '%s\n' "$1" | head -n 1
}

matches() {
    local text=${1,,} spec=${2,,} alt sub all
    local IFS='|'
    for alt in $spec; do
        all=1
        IFS='&'
        for sub in $alt; do
            [[ $text == *"$sub"* ]] || all=0
        done
        IFS='|'
        [ "$all" = 1 ] && return 0
    done
    return 1
}

# Describes how the last `ot` run ended, for failure messages.
describe_run() {
    local how="exit $T_RC"
    [ "$T_RC" -eq 124 ] && how="timed out after ${T_TIMEOUT}s"
    [ "$T_RC" -gt 128 ] && how="killed by signal $((T_RC - 128))"
    [ "$T_RC" -eq 86 ] && how="sanitizer report"
    echo "$how, stderr: $(first_line "$T_ERR")$([ "$T_NERR" -gt 1 ] && echo " (+$((T_NERR - 1)) lines)")"
}

expect_rc() {
    local name=$1 rc=$2
    shift 2
    ot "$@"
    if [ "$T_RC" -eq "$rc" ]; then
        ok "$name"
    else
        fail "$name" "expected exit $rc; $(describe_run)"
    fi
}

# Checks the last run against the error contract; prints why not, or nothing.
error_problem() {
    local fragment=$1
    if [ "$T_RC" -ne 1 ]; then
        echo "expected exit 1; $(describe_run)"
    elif [ "$T_NERR" -ne 1 ]; then
        echo "expected one stderr line, got $T_NERR: $(first_line "$T_ERR")"
    elif [[ $T_ERR != "onnxtrain: error: "* ]]; then
        echo "stderr does not start with 'onnxtrain: error: ': $T_ERR"
    elif [ -n "$fragment" ] && ! matches "$T_ERR" "$fragment"; then
        echo "message lacks '$fragment': $T_ERR"
    fi
}

expect_error() {
    local name=$1 fragment=$2 why
    shift 2
    ot "$@"
    why=$(error_problem "$fragment")
    if [ -z "$why" ]; then
        ok "$name"
    else
        fail "$name" "$why"
    fi
}

expect_usage() {
    local name=$1
    shift
    ot "$@"
    if [ "$T_RC" -ne 2 ]; then
        fail "$name" "expected exit 2; $(describe_run)"
    elif [ "$T_NERR" -ne 1 ]; then
        fail "$name" "expected one stderr line, got $T_NERR: $(first_line "$T_ERR")"
    elif [[ $T_ERR != "onnxtrain: error: "* ]]; then
        fail "$name" "stderr does not start with 'onnxtrain: error: ': $(first_line "$T_ERR")"
    else
        ok "$name"
    fi
}

py_checks() {
    local name=$1 script=$2 line rc
    shift 2
    "$PY" -c "$script" "$@" >"$T_TMP/py.out" 2>"$T_TMP/py.err"
    rc=$?
    while IFS= read -r line; do
        case $line in
            "ok "*) ok "$name/${line#ok }" ;;
            "FAIL "*) line=${line#FAIL }; fail "$name/${line%%: *}" "${line#*: }" ;;
        esac
    done <"$T_TMP/py.out"
    if [ "$rc" -ne 0 ]; then
        fail "$name" "python exited $rc: $(tail -n 1 "$T_TMP/py.err")"
    fi
}

# Installs onnxruntime-node 1.30 into $BUILD/ort when it is not there (npm;
# ONNXRUNTIME_NODE_INSTALL=skip keeps its install script from fetching CUDA
# binaries). Returns 1 with a message in ENSURE_ORT_ERR when that fails.
ensure_ort() {
    local ort=$BUILD/ort
    ENSURE_ORT_ERR=
    if [ -d "$ort/node_modules/onnxruntime-node" ]; then
        return 0
    fi
    if ! command -v npm >/dev/null 2>&1; then
        ENSURE_ORT_ERR="npm is not installed"
        return 1
    fi
    mkdir -p "$ort"
    if ! ONNXRUNTIME_NODE_INSTALL=skip npm install --prefix "$ort" onnxruntime-node@1.30 \
        --no-audit --no-fund >"$T_TMP/npm.log" 2>&1; then
        ENSURE_ORT_ERR="npm install onnxruntime-node@1.30 failed: $(grep -i -m 1 error "$T_TMP/npm.log")"
        return 1
    fi
}

# same_outputs NAME BEFORE AFTER INPUT.pb [TOL]: a conversion kept the
# outputs: the two models' outputs in onnxtrain, and in onnxruntime when
# HAVE_ORT=1 (NODE_PATH set), differ by at most TOL (default 1e-5). A model
# onnxtrain cannot run (an op outside its table) is compared in onnxruntime
# alone, and that is said.
same_outputs() {
    local name=$1 a=$2 b=$3 input=$4 tol=${5:-1e-5}
    local args=("$T_TMP/sa_$name" "$T_TMP/sb_$name" "$tol")
    ot run "$a" --input "$input" --output-dir "$T_TMP/sa_$name"
    if [ "$T_RC" -ne 0 ] && matches "$T_ERR" "not in onnxtrain's op table"; then
        # an op onnxtrain does not run (yet): onnxruntime alone compares
        echo "skip $name/onnxtrain: $(first_line "$T_ERR")"
        args=(- - "$tol")
    elif [ "$T_RC" -ne 0 ]; then
        fail "$name/onnxtrain" "before: $(describe_run)"
        return
    else
        ot run "$b" --input "$input" --output-dir "$T_TMP/sb_$name"
        [ "$T_RC" -eq 0 ] || { fail "$name/onnxtrain" "after: $(describe_run)"; return; }
    fi
    if [ "$HAVE_ORT" = 1 ]; then
        if ! node tests/ort/run_ort.js "$a" "$input" "$T_TMP/oa_$name.json" >"$T_TMP/node.log" 2>&1 ||
            ! node tests/ort/run_ort.js "$b" "$input" "$T_TMP/ob_$name.json" >>"$T_TMP/node.log" 2>&1; then
            fail "$name/onnxruntime" "$(tail -n 1 "$T_TMP/node.log")"
        else
            args+=("$T_TMP/oa_$name.json" "$T_TMP/ob_$name.json")
        fi
    fi
    py_checks "$name" '
import json, sys, glob, numpy as np, onnx
from onnx import numpy_helper as nh
da, db, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
def pbs(d):
    return [nh.to_array(onnx.load_tensor(f)).astype(np.float64)
            for f in sorted(glob.glob(d + "/output_*.pb"))]
def report(what, xa, xb):
    if len(xa) != len(xb) or not xa:
        print("FAIL %s: %d outputs before, %d after" % (what, len(xa), len(xb))); return
    for i, (p, q) in enumerate(zip(xa, xb)):
        if p.shape != q.shape:
            print("FAIL %s: output %d shape %s before, %s after" % (what, i, p.shape, q.shape)); return
    d = max(float(np.abs(p - q).max()) if p.size else 0.0 for p, q in zip(xa, xb))
    print(("ok %s max abs diff %.3g" if d <= tol else "FAIL %s: max abs diff %.3g > tol") % (what, d))
if da != "-":
    report("onnxtrain", pbs(da), pbs(db))
if len(sys.argv) > 5:
    js = lambda f: [np.array(o["data"], np.float64).reshape(o["dims"]) for o in json.load(open(f))["outputs"]]
    report("onnxruntime", js(sys.argv[4]), js(sys.argv[5]))
' "${args[@]}"
}
