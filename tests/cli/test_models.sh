#!/bin/bash
# test_models.sh: whole CNNs through `onnxtrain test-data` at the default
# tolerances, against outputs PyTorch computed with the same weights:
# MobileNetV2 and SqueezeNet 1.1 (opset 13, dynamic batch) and the three
# ResNet-18 files of make_resnet18.py (eval, bn, zoo7), at batch 1 and 8
# (zoo7: batch 1 only, its batch is fixed). Fixtures go to $BUILD/fixtures
# (tests/fixtures/make_model_tests.py) and are reused while up to date.
# Skipped when OT_FAST=1.
#
#   BUILD=build bash tests/cli/test_models.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
skip_if_fast
need_cli
T_TIMEOUT=${T_TIMEOUT_MODELS:-900}

FX=$BUILD/fixtures
if ! "$PY" tests/fixtures/make_resnet18.py "$FX" >"$T_TMP/make.log" 2>&1; then
    fail setup "make_resnet18.py failed: $(tail -n 1 "$T_TMP/make.log")"
    finish
fi
if ! "$PY" tests/fixtures/make_model_tests.py "$FX" >"$T_TMP/make.log" 2>&1; then
    fail setup "make_model_tests.py failed: $(tail -n 1 "$T_TMP/make.log")"
    finish
fi

# folder and the number of data sets it must pass (batch 1 and 8, or 1)
for spec in resnet18_eval:2 resnet18_bn:2 resnet18_zoo7:1 mobilenet_v2:2 squeezenet1_1:2; do
    name=${spec%%:*}
    n=${spec##*:}
    sets="$n data set"
    [ "$n" -gt 1 ] && sets="${sets}s"
    ot test-data "$FX/$name"
    line=$(first_line "$T_OUT")
    if [ "$T_RC" -eq 0 ] && [[ $line == "PASS $FX/$name ($sets, "* ]]; then
        ok "$name: ${line#PASS $FX/$name }"
    elif [ "$T_RC" -eq 1 ] && [[ $line == "FAIL "* || $line == "ERROR "* ]]; then
        fail "$name" "$line"
    else
        fail "$name" "$(describe_run); stdout: $line"
    fi
done

finish
