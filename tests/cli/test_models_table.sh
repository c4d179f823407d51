#!/bin/bash
# test_models_table.sh: tools/gen_models_table.py (docs/models.md) and the
# merge of tests/bench/bench_families.py's rows, on made-up results:
#
#   parity cell   a family whose three modes match PyTorch shows the largest
#                 gradient error of each; one that fails a mode shows the
#                 others and lists the failure under "What is missing"
#   not run       a family the parity set leaves out (vit_b_16_224) says
#                 why; a small transformer's step time points to the
#                 full-size row; a zoo form's says it is not timed
#   bench         a timed row shows both times and the ratio, the header the
#                 setting; a failed side shows its reason
#   merge         bench_families.py keeps an earlier row of a family it did
#                 not time at the same size, batch and threads only
#   not run       a check or step recorded as "not run: REASON" shows
#                 "not run" and lists the reason
#   usage         a missing argument exits 2 and writes nothing
#
#   BUILD=build bash tests/cli/test_models_table.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh

GEN=tools/gen_models_table.py
T=$T_TMP
tab=$'\t'
cat >"$T/results.tsv" <<EOF
alexnet${tab}import${tab}ok${tab}head /classifier/classifier.6/Gemm, 1 params
alexnet${tab}run${tab}ok${tab}
alexnet${tab}feature-extract${tab}ok${tab}trains from /classifier/classifier.6/Gemm; ok
alexnet${tab}fine-tune${tab}ok${tab}trains from /classifier/classifier.4/Gemm; ok
alexnet${tab}full${tab}ok${tab}trains from /features/features.0/Conv; ok
googlenet${tab}import${tab}ok${tab}x
vit_b_16${tab}import${tab}ok${tab}x
vit_b_16_224${tab}import${tab}ok${tab}x
zoo_caffenet${tab}import${tab}ok${tab}x
convnext_tiny${tab}import${tab}missing${tab}not run: the run ended first
EOF
cat >"$T/parity.tsv" <<EOF
alexnet${tab}feature_extract${tab}ok${tab}34 checks; grads: 2 tensors, max relative L2 1.10e-07 in 'w'
alexnet${tab}fine_tune${tab}ok${tab}34 checks; grads: 4 tensors, max relative L2 2.20e-06 in 'w'
alexnet${tab}full${tab}ok${tab}34 checks; grads: 16 tensors, max relative L2 3.30e-05 in 'w'
googlenet${tab}feature_extract${tab}ok${tab}34 checks; grads: 2 tensors, max relative L2 4.40e-07 in 'w'
googlenet${tab}fine_tune${tab}fail${tab}fine_tune/grads: tensor 'w' relative L2 error 1.2e-01 > 0.05
googlenet${tab}full${tab}ok${tab}34 checks; grads: 9 tensors, max relative L2 5.50e-05 in 'w'
convnext_tiny${tab}feature_extract${tab}missing${tab}not run: the run ended first
convnext_tiny${tab}fine_tune${tab}missing${tab}not run: the run ended first
convnext_tiny${tab}full${tab}missing${tab}not run: the run ended first
EOF
cat >"$T/bench.tsv" <<EOF
alexnet${tab}224${tab}32${tab}2${tab}0.5000${tab}0.6000${tab}1.20${tab}
googlenet${tab}224${tab}32${tab}2${tab}-${tab}-${tab}-${tab}onnxtrain: out of memory
EOF

if /usr/bin/python3 "$GEN" "$T/results.tsv" "$T/models.md" --parity "$T/parity.tsv" \
    --bench "$T/bench.tsv" >"$T/gen.log" 2>&1; then
    ok "generate"
else
    fail "generate" "$(tail -n 1 "$T/gen.log")"
fi
row() { grep -m 1 "^| $1 |" "$T/models.md"; }

r=$(row alexnet)
if [[ $r == *"| yes (largest gradient error: fe 1.10e-07, ft 2.20e-06, full 3.30e-05) |"* ]]; then
    ok "parity cell, every mode"
else
    fail "parity cell, every mode" "$r"
fi
r=$(row googlenet)
if [[ $r == *"| only fe, full (largest gradient error: fe 4.40e-07, full 5.50e-05) |"* ]] &&
    grep -q "^- \*\*googlenet, PyTorch step, fine-tune\*\*: fine_tune/grads: tensor 'w'" \
        "$T/models.md"; then
    ok "parity cell, a failed mode"
else
    fail "parity cell, a failed mode" "$r"
fi
r=$(row vit_b_16_224)
if [[ $r == *"| not run: the float64 step of the full-size model is not in the parity set;"* ]]; then
    ok "parity cell, a family left out says why"
else
    fail "parity cell, a family left out says why" "$r"
fi
r=$(row vit_b_16)
if [[ $r == *"| see vit_b_16_224 |" ]] && [[ $(row zoo_caffenet) == *"| not timed (zoo forms"* ]]; then
    ok "bench cell, not timed says why"
else
    fail "bench cell, not timed says why" "$r / $(row zoo_caffenet)"
fi
if [[ $(row alexnet) == *"| 0.5000 s / 0.6000 s (1.20x) |" ]] &&
    [[ $(row googlenet) == *"| - (onnxtrain: out of memory) |" ]] &&
    grep -q "| one step, onnxtrain / PyTorch (224x224, batch 32, 2 threads) |" "$T/models.md"; then
    ok "bench cell and header"
else
    fail "bench cell and header" "$(row alexnet) / $(row googlenet)"
fi

r=$(row convnext_tiny)
if [[ $r == "| convnext_tiny | 64x64 | not run | not run |"*"| not run | not run |" ]] &&
    grep -q "^- \*\*convnext_tiny, PyTorch step\*\*: not run: the run ended first" "$T/models.md"; then
    ok "a check not run says so, with the reason"
else
    fail "a check not run says so, with the reason" "$r"
fi

# bench_families.py: the rows it keeps from an earlier run
cat >"$T/old.tsv" <<EOF
alexnet${tab}224${tab}32${tab}2${tab}0.5${tab}0.6${tab}1.20${tab}
googlenet${tab}224${tab}32${tab}2${tab}0.7${tab}0.8${tab}1.14${tab}
densenet121${tab}64${tab}2${tab}2${tab}0.1${tab}0.1${tab}1.00${tab}
EOF
got=$(/usr/bin/python3 -c '
import sys
sys.path.insert(0, "tests/bench")
import bench_families
for r in bench_families.kept_rows(sys.argv[1], {"alexnet"}, ("224", "32", "2")):
    print(r.split("\t")[0])
' "$T/old.tsv" 2>&1 | tr '\n' ' ')
if [ "$got" = "googlenet " ]; then
    ok "bench rows merged at one setting"
else
    fail "bench rows merged at one setting" "kept: $got"
fi

rm -f "$T/none.md"
/usr/bin/python3 "$GEN" "$T/results.tsv" >/dev/null 2>"$T/err"
rc=$?
if [ "$rc" -eq 2 ] && [ ! -e "$T/none.md" ] && grep -q "^usage:" "$T/err"; then
    ok "usage error"
else
    fail "usage error" "exit $rc: $(head -n 1 "$T/err")"
fi
finish
