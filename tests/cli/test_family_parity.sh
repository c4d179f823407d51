#!/bin/bash
# test_family_parity.sh: one training step per torchvision family and freeze
# mode against PyTorch. tests/golden/make_family_golden.py exports each family
# of tests/fixtures/make_family_tests.py (Dropout removed, every BatchNorm
# kept, PyTorch's names) and computes, in float64, the step on a batch of 2
# with the tensors onnxtrain's preset trains; `test_parity --one-step` then
# compares the loss, the logits, every trained gradient, the running
# statistics of the training-mode BatchNorms, one SGD and one Adam step (see
# tests/parity/test_parity.c for the tolerances). Frozen tensors are not
# touched by the step graph (they are constants of it); test_families.sh
# checks them bit for bit in the exports.
#
# Each check of test_parity counts as this suite's. Results per family and
# mode go to $BUILD/families/parity.tsv (family, mode, ok|fail, detail) for
# tools/gen_models_table.py; the families and modes a run does not test keep
# their rows.
# Skipped when OT_FAST=1.
#
#   BUILD=build bash tests/cli/test_family_parity.sh [--all] [FAMILY...]
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
skip_if_fast
need_cli
T_TIMEOUT=${T_TIMEOUT_MODELS:-900}

# `make test` runs these; --all (make test-models) adds the slower ones. A
# zoo_* family is its zoo form's file against the family it rewrites (see
# make_family_golden.py); an NHWC form gets its batches transposed, as the
# trainer does. Inception v3's references are at 139x139 (make_family_golden.py's
# PARITY_SIDE).
DEFAULT="alexnet squeezenet1_0 resnext50_32x4d googlenet shufflenet_v2_x0_5 mnasnet0_5
 regnet_y_400mf mobilenet_v3_small zoo_caffenet vit_b_16 swin_t zoo_mobilenetv2_nhwc"
SLOW="vgg11_bn densenet121 vgg11 wide_resnet50_2 efficientnet_b0 efficientnet_v2_s
 inception_v3 convnext_tiny vit_b_16_op17 swin_t_op17 zoo_resnet18v1 zoo_resnet18v2
 zoo_squeezenet1_1 zoo_densenet121 zoo_googlenet zoo_vgg16_bn zoo_vgg19 zoo_zfnet
 zoo_shufflenet_v2 zoo_shufflenet_v1 zoo_resnet34v1 zoo_resnet101v1 zoo_resnet152v1
 zoo_resnet34v2 zoo_resnet50v2 zoo_resnet101v2 zoo_resnet152v2 zoo_inception_v2 zoo_alexnet
 zoo_vgg16 zoo_vgg19_bn zoo_mobilenetv2
 zoo_efficientnet_lite4 zoo_resnet50v1 zoo_resnet50_caffe2 zoo_inception_v1"
MODES="feature_extract fine_tune full"

PARITY=$BUILD/test_parity
if [ ! -x "$PARITY" ]; then
    fail setup "$PARITY is not built (make $PARITY)"
    finish
fi
FAMILIES=()
for a in "$@"; do
    case $a in
    --all) read -ra FAMILIES <<<"$(echo $DEFAULT $SLOW)" ;;
    *) FAMILIES+=("$a") ;;
    esac
done
[ ${#FAMILIES[@]} -eq 0 ] && read -ra FAMILIES <<<"$(echo $DEFAULT)"

OUT=$BUILD/family_parity
mkdir -p "$OUT" "$BUILD/families"
RESULTS=$BUILD/families/parity.tsv.tmp
: >"$RESULTS"

for fam in "${FAMILIES[@]}"; do
    if ! timeout -k 5 "$T_TIMEOUT" "$PY" tests/golden/make_family_golden.py "$OT" "$OUT" "$fam" \
        >"$T_TMP/golden.log" 2>&1; then
        why=$(tail -n 1 "$T_TMP/golden.log")
        fail "$fam/setup" "make_family_golden.py: $why"
        for mode in $MODES; do
            printf '%s\t%s\tfail\t%s\n' "$fam" "$mode" "references: ${why//$'\t'/ }" >>"$RESULTS"
        done
        continue
    fi
    modes=$MODES
    # shellcheck disable=SC2086  # the modes are words
    timeout -k 5 "$T_TIMEOUT" "$PARITY" --model model.onnx --one-step "$OUT/$fam" $modes \
        >"$T_TMP/parity.out" 2>"$T_TMP/parity.err"
    rc=$?
    if ! grep -qE '^[0-9]+ passed, [0-9]+ failed$' "$T_TMP/parity.out"; then
        fail "$fam/test_parity" "exit $rc without a summary: $(tail -n 1 "$T_TMP/parity.err")"
    fi
    while IFS= read -r line; do
        case $line in
        "ok "*) ok "$fam/${line#ok }" ;;
        "FAIL "*) rest=${line#FAIL } && fail "$fam/${rest%%: *}" "${rest#*: }" ;;
        esac
    done <"$T_TMP/parity.out"
    for mode in $modes; do
        first=$(grep -m 1 "^FAIL $mode/" "$T_TMP/parity.out")
        n=$(grep -c "^ok $mode/" "$T_TMP/parity.out")
        if [ -n "$first" ]; then
            printf '%s\t%s\tfail\t%s\n' "$fam" "$mode" "${first#FAIL }" >>"$RESULTS"
        elif [ "$n" -eq 0 ]; then
            printf '%s\t%s\tfail\t%s\n' "$fam" "$mode" "no check ran (exit $rc)" >>"$RESULTS"
        else
            grads=$(sed -n "s/^ok $mode\/grads (\([0-9]* tensors, max relative L2 [^ ]*\).*/\1/p" \
                "$T_TMP/parity.out")
            printf '%s\t%s\tok\t%s\n' "$fam" "$mode" "$n checks; grads: ${grads:-none}" >>"$RESULTS"
        fi
    done
done
# a second run finds the first family's references in the cache (index.json's
# key) instead of computing them again
fam=${FAMILIES[0]}
if [ -f "$OUT/$fam/index.json" ]; then
    if timeout -k 5 "$T_TIMEOUT" "$PY" tests/golden/make_family_golden.py "$OT" "$OUT" "$fam" \
        >"$T_TMP/again.log" 2>&1 && grep -qx "ok $fam cached" "$T_TMP/again.log"; then
        ok "$fam/references_cached"
    else
        fail "$fam/references_cached" "second run: $(tail -n 1 "$T_TMP/again.log")"
    fi
fi
if [ -f "$BUILD/families/parity.tsv" ]; then
    cut -f 1,2 "$RESULTS" | sort -u >"$T_TMP/ran"
    awk -F '\t' 'NR == FNR { ran[$1 FS $2] = 1; next } !(($1 FS $2) in ran)' "$T_TMP/ran" \
        "$BUILD/families/parity.tsv" >>"$RESULTS"
fi
mv "$RESULTS" "$BUILD/families/parity.tsv"
finish
