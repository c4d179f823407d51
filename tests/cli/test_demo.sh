#!/bin/bash
# test_demo.sh: the demo's whole pipeline (models/demo.sh) at a reduced size:
# zoo builder, pretraining with augmentation on five Fashion-MNIST classes,
# transfer to the other five by feature extraction and fine-tuning next to
# training from scratch, two seeds each, the table of mean and spread over
# the seeds, stage timings, onnxruntime check. Skipped when OT_FAST=1.
#
#   BUILD=build bash tests/cli/test_demo.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
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
