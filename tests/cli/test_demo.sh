#!/bin/bash
# test_demo.sh: the demo's whole pipeline (models/demo.sh) at a reduced size:
# zoo builder, pretraining with augmentation on five Fashion-MNIST classes,
# transfer to the other five by feature extraction and fine-tuning next to
# training from scratch, two seeds each, the table of mean and spread over
# the seeds, stage timings, onnxruntime check. Skipped when OT_FAST=1, but
# for make demo-precision's comparison (models/demo_precision.py) on run
# files written here.
#
#   BUILD=build bash tests/cli/test_demo.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh

# demo_precision.py: bf16's mean against fp32's spread over the seeds
P=$T_TMP/prec
mkdir -p "$P/fp32" "$P/bf16"
put() { # FOLDER SHOTS METHOD SEED TOP1
    echo "{\"epochs\": 4, \"test\": {\"top1\": $5, \"n\": 5000}}" >"$P/$1/$2_$3_$4.json"
}
put fp32 5 fine-tune 1 0.80; put fp32 5 fine-tune 2 0.82; put fp32 5 fine-tune 3 0.84
put bf16 5 fine-tune 1 0.81; put bf16 5 fine-tune 2 0.83; put bf16 5 fine-tune 3 0.83
put fp32 5 feature-extract 1 0.70; put fp32 5 feature-extract 2 0.70
put fp32 5 feature-extract 3 0.71
put bf16 5 feature-extract 1 0.72; put bf16 5 feature-extract 2 0.72
put bf16 5 feature-extract 3 0.72
echo '{"qat": {}}' >"$P/fp32/qat.json"
if "$PY" models/demo_precision.py "$P/fp32" "$P/bf16" "$P/out" >"$T_TMP/prec.md" 2>&1; then
    ok "demo_precision runs"
else
    fail "demo_precision runs" "$(tail -n 1 "$T_TMP/prec.md")"
fi
py_checks "demo_precision" '
import json, sys
j = json.load(open(sys.argv[1]))
md = open(sys.argv[2]).read()
rows = {(r["shots"], r["method"]): r for r in j["rows"]}
ft, fe = rows.get((5, "fine-tune")), rows.get((5, "feature-extract"))
print("ok two transfers" if len(rows) == 2 else "FAIL two transfers: %s" % list(rows))
if ft and abs(ft["fp32"]["mean"] - 0.82) < 1e-9 and abs(ft["fp32"]["sd"] - 0.02) < 1e-9 \
        and ft["within_sd"] and ft["within_range"]:
    print("ok fine-tune within fp32 spread")
else:
    print("FAIL fine-tune within fp32 spread: %s" % ft)
if fe and not fe["within_sd"] and not fe["within_range"] and abs(fe["delta"] - 0.0166667) < 1e-6:
    print("ok feature-extract outside")
else:
    print("FAIL feature-extract outside: %s" % fe)
print("ok goal missed" if j["met"] is False and "**missed**" in md else "FAIL goal: %s" % j["met"])
print("ok table" if "| 5/class | fine-tune | 0.8200 | 0.0200 |" in md else "FAIL table: %s" % md)
' "$P/out/precision.json" "$P/out/precision.md"

skip_if_fast
need_cli

if [ ! -d /usr/share/datasets/fashion-mnist ]; then
    fail setup "Debian's dataset-fashion-mnist is not installed"
    finish
fi
OT_DEMO_QUICK=1 timeout 900 bash models/demo.sh "$BUILD" >"$T_TMP/demo.log" 2>&1
rc=$?
if [ "$rc" -eq 0 ]; then ok "demo pipeline runs"; else
    fail "demo pipeline" "exit $rc: $(tail -n 2 "$T_TMP/demo.log" | tr '\n' ' ')"; fi
for name in feature-extract fine-tune from-scratch; do
    # labelled, method, mean, sd, min, max, one score per seed (2)
    row=$(grep -E "^5/class +$name " "$T_TMP/demo.log")
    if [[ $row =~ ^5/class\ +$name\ +([0-9.]+)\ +([0-9.]+)\ +([0-9.]+)\ +([0-9.]+)\ +([0-9.]+)\ ([0-9.]+)$ ]]; then
        ok "table row $name"
        m=${BASH_REMATCH[1]} sd=${BASH_REMATCH[2]} lo=${BASH_REMATCH[3]} hi=${BASH_REMATCH[4]}
        a=${BASH_REMATCH[5]} b=${BASH_REMATCH[6]}
        if "$PY" -c '
import statistics, sys
m, sd, lo, hi, a, b = map(float, sys.argv[1:])
ok = (abs(statistics.mean([a, b]) - m) <= 1e-4 and abs(statistics.stdev([a, b]) - sd) <= 1e-4
      and lo == min(a, b) and hi == max(a, b))
sys.exit(0 if ok else 1)' "$m" "$sd" "$lo" "$hi" "$a" "$b"; then
            ok "table row $name: mean and spread of its seeds"
        else
            fail "table row $name: mean and spread" "$row"
        fi
    else
        fail "table row $name" "missing or malformed: '$row'"
    fi
done
for seed in 1 2; do
    if [ -s "$BUILD/demo/5_fine-tune_$seed.onnx" ]; then ok "seed $seed model"; else
        fail "seed $seed model" "missing"; fi
done
if cmp -s "$BUILD/demo/5_fine-tune_1.onnx" "$BUILD/demo/5_fine-tune_2.onnx"; then
    fail "seeds differ" "seeds 1 and 2 gave the same model"; else ok "seeds differ"; fi
n=$(grep -cE '^   \([0-9]+ s\)$' "$T_TMP/demo.log")
if [ "$n" -eq 5 ] && grep -qE "^demo: done in [0-9]+ s" "$T_TMP/demo.log"; then
    ok "stage timings"
else
    fail "stage timings" "$n stage times"
fi
if grep -q "onnxruntime and onnxtrain agree" "$T_TMP/demo.log"; then ok "onnxruntime check"; else
    fail "onnxruntime check" "missing"; fi
if grep -q "fine-tune: training 17 of 62 parameters" "$T_TMP/demo.log"; then
    ok "fine-tune trains layer4 + fc"
else
    fail "fine-tune trains layer4" "$(grep training "$T_TMP/demo.log" | tr '\n' ' ')"
fi
finish
