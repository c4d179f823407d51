#!/bin/bash
# test_demo.sh: the demo's whole pipeline (models/demo.sh) at a reduced size:
# zoo builder, pretraining on five Fashion-MNIST classes, transfer to the
# other five by feature extraction and fine-tuning next to training from
# scratch, evaluation, onnxruntime check. Skipped when OT_FAST=1.
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
    if grep -qE "^$name +[0-9.]+ +[0-9.]+" "$T_TMP/demo.log"; then ok "table row $name"; else
        fail "table row $name" "missing"; fi
done
if grep -q "onnxruntime and onnxtrain agree" "$T_TMP/demo.log"; then ok "onnxruntime check"; else
    fail "onnxruntime check" "missing"; fi
if grep -q "training 17 of 62 parameters" "$T_TMP/demo.log"; then ok "fine-tune trains layer4 + fc"; else
    fail "fine-tune trains layer4" "$(grep training "$T_TMP/demo.log" | tr '\n' ' ')"; fi
finish
