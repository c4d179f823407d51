#!/bin/bash
# test_models_table.sh: tools/gen_models_table.py (docs/models.md) and the
# merge of tests/bench/bench_families.py's rows, on made-up results:
#
#   parity cell   a family whose three modes match PyTorch shows the largest
#                 gradient error of each; one that fails a mode shows the
#                 others and lists the failure under "What is missing"
#   ill-cond.     a failure ILL_CONDITIONED lists says the step is
#                 ill-conditioned (its note says why)
#   not run       a family the parity set leaves out (vit_b_16_224) says
#                 why; a small transformer's step time points to the
#                 full-size row; a zoo form's says it is not timed
#   bench         a timed row shows both times and the ratio, the header the
#                 setting; a failed side shows its reason
#   merge         bench_families.py keeps an earlier row of a family it did
#                 not time at the same size, batch and threads only
#   not run       a check or step recorded as "not run: REASON" shows
#                 "not run" and lists the reason under "Not run", apart from
#                 the failures under "What is missing"
#   usage         a missing argument exits 2 and writes nothing
#   previous      --previous docs/models.md with no TSV writes docs/models.md
#                 again byte for byte, and so for the made-up table above
#                 (failed modes, a failed bench side, not-run checks, a
#                 reason with a "|")
#   merge         newer TSV rows replace the previous table's per family and
#                 check (family and mode; family for the bench); the other
#                 rows stay, a new family follows; a bench at another
#                 setting drops the previous bench rows
#   bad input     --previous naming a missing file or a file without the
#                 table: one line, exit 1, nothing written
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
googlenet${tab}run${tab}missing${tab}Pad: mode reflect | edge
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
zoo_resnet50v2${tab}full${tab}fail${tab}full/grads: tensor 'w' relative L2 error 3e-03 > 0.0001
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
want="full/grads: tensor 'w' relative L2 error 3e-03 > 0.0001 (the step is ill-conditioned"
if grep -q "^- \*\*zoo_resnet50v2, PyTorch step, full\*\*: $want at batch 2; the fixture note" \
    "$T/models.md"; then
    ok "parity cell, an ill-conditioned failure says so"
else
    fail "parity cell, an ill-conditioned failure says so" "$(grep zoo_resnet50v2 "$T/models.md")"
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
    sed -n '/^## Not run$/,$p' "$T/models.md" |
    grep -q "^- \*\*convnext_tiny, PyTorch step\*\*: not run: the run ended first" &&
    sed -n '/^## What is missing$/,/^## Not run$/p' "$T/models.md" | grep -q "googlenet, run" &&
    ! sed -n '/^## What is missing$/,/^## Not run$/p' "$T/models.md" | grep -q "convnext"; then
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

# --previous: the table read back, then written again
if /usr/bin/python3 "$GEN" "$T/again.md" --previous docs/models.md >"$T/gen.log" 2>&1 &&
    cmp -s "$T/again.md" docs/models.md; then
    ok "previous, docs/models.md written again unchanged"
else
    fail "previous, docs/models.md written again unchanged" \
        "$(tail -n 1 "$T/gen.log")$(diff docs/models.md "$T/again.md" | head -n 3)"
fi
if /usr/bin/python3 "$GEN" "$T/again.md" --previous "$T/models.md" >"$T/gen.log" 2>&1 &&
    cmp -s "$T/again.md" "$T/models.md"; then
    ok "previous, failed and not-run cells read back"
else
    fail "previous, failed and not-run cells read back" \
        "$(tail -n 1 "$T/gen.log")$(diff "$T/models.md" "$T/again.md" | head -n 3)"
fi

# newer rows replace the previous table's per family and check
cat >"$T/new_results.tsv" <<EOF
googlenet${tab}run${tab}ok${tab}
googlenet${tab}full${tab}fail${tab}onnxruntime: max abs diff 0.1 > tolerance
resnet18${tab}import${tab}ok${tab}head /fc/Gemm, 1 params
EOF
cat >"$T/new_parity.tsv" <<EOF
googlenet${tab}fine_tune${tab}ok${tab}34 checks; grads: 4 tensors, max relative L2 9.90e-06 in 'w'
alexnet${tab}full${tab}fail${tab}full/loss: 1.0 against 2.0
EOF
cat >"$T/new_bench.tsv" <<EOF
googlenet${tab}224${tab}32${tab}2${tab}0.7000${tab}0.9000${tab}1.29${tab}
EOF
/usr/bin/python3 "$GEN" "$T/new_results.tsv" "$T/merged.md" --previous "$T/models.md" \
    --parity "$T/new_parity.tsv" --bench "$T/new_bench.tsv" >"$T/gen.log" 2>&1
mrow() { grep -m 1 "^| $1 |" "$T/merged.md"; }
r=$(mrow googlenet)
if [[ $r == "| googlenet | 64x64, no auxiliary classifiers | yes | yes | not run | not run | no"* ]] &&
    [[ $r == *"| yes (largest gradient error: fe 4.40e-07, ft 9.90e-06, full 5.50e-05) |"* ]] &&
    [[ $r == *"| 0.7000 s / 0.9000 s (1.29x) |" ]] &&
    grep -q '^- \*\*googlenet, full\*\*: onnxruntime: max abs diff 0.1 > tol' "$T/merged.md" &&
    ! grep -q "googlenet, run\|googlenet, PyTorch step" "$T/merged.md"; then
    ok "merge, newer rows replace per family and check"
else
    fail "merge, newer rows replace per family and check" "$(tail -n 1 "$T/gen.log") $r"
fi
r=$(mrow alexnet)
want="| yes (trains from /features/features.0/Conv) | only fe, ft (largest gradient error: fe"
want+=" 1.10e-07, ft 2.20e-06) | 0.5000 s / 0.6000 s (1.20x) |"
if [[ $r == *"$want" ]] &&
    grep -q '^- \*\*alexnet, PyTorch step, full\*\*: full/loss: 1.0 against 2.0$' "$T/merged.md" &&
    [ "$(mrow vit_b_16)" = "$(row vit_b_16)" ] &&
    [ "$(mrow convnext_tiny)" = "$(row convnext_tiny)" ] &&
    [[ $(grep '^| ' "$T/merged.md" | tail -n 1) == "| resnet18 | 64x64 | yes | not run |"* ]]; then
    ok "merge, the other rows stay, a new family follows"
else
    fail "merge, the other rows stay, a new family follows" "$r"
fi
printf 'alexnet\t64\t2\t2\t0.0100\t0.0200\t2.00\t\n' >"$T/small_bench.tsv"
/usr/bin/python3 "$GEN" "$T/merged2.md" --previous "$T/models.md" --bench "$T/small_bench.tsv" \
    >"$T/gen.log" 2>&1
if grep -q "| one step, onnxtrain / PyTorch (64x64, batch 2, 2 threads) |" "$T/merged2.md" &&
    grep -q "^| alexnet |.*| 0.0100 s / 0.0200 s (2.00x) |$" "$T/merged2.md" &&
    grep -q "^| googlenet |.*| not run |$" "$T/merged2.md"; then
    ok "merge, a bench at another setting drops the previous bench rows"
else
    fail "merge, a bench at another setting drops the previous bench rows" \
        "$(tail -n 1 "$T/gen.log")"
fi

for bad in "$T/no_such.md" README.md; do
    rm -f "$T/bad.md"
    /usr/bin/python3 "$GEN" "$T/bad.md" --previous "$bad" >/dev/null 2>"$T/err"
    rc=$?
    if [ "$rc" -eq 1 ] && [ ! -e "$T/bad.md" ] && [ "$(wc -l <"$T/err")" -eq 1 ] &&
        grep -qF "gen_models_table.py: $bad: " "$T/err"; then
        ok "previous, bad input ${bad##*/}"
    else
        fail "previous, bad input ${bad##*/}" "exit $rc: $(head -n 2 "$T/err")"
    fi
done
finish
