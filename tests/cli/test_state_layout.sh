#!/bin/bash
# test_state_layout.sh: trained convolution weights, their gradients and the
# optimizer's moments kept in the convolutions' blocked layout between steps
# (src/exec/cpu/cpu_state.c), seen from the CLI:
#   - `finetune --mode full --profile` on ResNet-18 has one reorder per
#     trained convolution and step at most (the backward-data layout), plus
#     the input's and the logits' (61 when every weight went through plain);
#     the rest is skipped when OT_FAST=1;
#   - a full-training run stopped (--max-steps) with a checkpoint and resumed
#     ends with the uninterrupted run's bytes, in fp32 (Adam, --clip-grad and
#     a last batch of another size) and in bf16: the kept layouts are written
#     to checkpoints plain and restored;
#   - the checkpoint's weights are the plain tensors the export holds;
#   - the BatchNorm backward steps after a BatchNormTrain+Relu apply the ReLU
#     mask themselves (no ReluGrad step of their own).
# tests/unit/test_step.c compares the kept layouts with plain state (the
# same bytes) and counts the reorders per trained weight.
#
#   BUILD=build bash tests/cli/test_state_layout.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
need_cli

FX=$BUILD/fixtures
DATA=$BUILD/tiny_cifar
BN=$FX/resnet18_bn.onnx
if ! "$PY" tests/fixtures/make_resnet18.py "$FX" >"$T_TMP/make.log" 2>&1 ||
    ! "$PY" tests/fixtures/make_tiny_cifar.py "$DATA" >>"$T_TMP/make.log" 2>&1; then
    fail setup "fixtures: $(tail -n 1 "$T_TMP/make.log")"
    finish
fi
D=$T_TMP
same_bytes() { # NAME A B
    if cmp -s "$2" "$3"; then ok "$1"; else fail "$1" "$2 and $3 differ"; fi
}
# 96 training images in batches of 10: 9 steps and a last batch of 6
FULL=(--data "$DATA" --classes 10 --image-size 32 --batch-size 10 --mode full --threads 2
    --deterministic --seed 5 --lr 1e-3 --optimizer adam --clip-grad 5 --epochs 1)

# ------------------------------------------------ reorders per step
# (no clipping, which reads each gradient plain; 96 images in 6 batches of
# 16: one executor)
ot finetune "$BN" --data "$DATA" --classes 10 --image-size 32 --batch-size 16 --mode full \
    --threads 2 --max-steps 1 --profile -o "$D/prof.onnx"
n=$(awk '$1 == "reorder" && $2 == "onednn" { print $3; exit }' <<<"$T_OUT")
if [ "$T_RC" -eq 0 ] && [ -n "$n" ] && [ "$n" -le 22 ] && [ "$n" -ge 1 ]; then
    ok "full ResNet-18: $n reorders per step (at most 20 weights + 2)"
else
    fail "reorders per step" "${n:-no reorder row}: $(describe_run)"
fi
# BatchNorm backward joined with the ReLU mask (fuse_norm_relu): the 9
# BatchNorm+ReLU pairs (bn1, each block's bn1) have no ReluGrad step of their own
j=$(awk '$1 == "ReluGrad+BatchNormGrad" { print $3; exit }' <<<"$T_OUT")
r=$(awk '$1 == "ReluGrad" { print $3; exit }' <<<"$T_OUT")
if [ "${j:-0}" = 9 ] && [ "${r:-0}" = 8 ]; then
    ok "full ResNet-18: 9 BatchNorm backward steps apply the ReLU mask, 8 ReluGrad left"
else
    fail "BatchNorm backward with the ReLU mask" "joined ${j:-none}, ReluGrad ${r:-none}"
fi

skip_if_fast

# ------------------------------- stopped, resumed: the uninterrupted bytes
for prec in fp32 bf16; do
    if [ $prec = bf16 ] && ! grep -qw avx512f /proc/cpuinfo; then
        echo "skipped: bf16 resume (no AVX-512)"
        continue
    fi
    P=(--precision $prec)
    ot finetune "$BN" "${FULL[@]}" "${P[@]}" -o "$D/ref_$prec.onnx" --checkpoint "$D/ref_$prec.ckpt"
    [ "$T_RC" -eq 0 ] || fail "$prec: uninterrupted run" "$(describe_run)"
    ot finetune "$BN" "${FULL[@]}" "${P[@]}" -o "$D/cut_$prec.onnx" --checkpoint "$D/cut_$prec.ckpt" \
        --checkpoint-every 1 --max-steps 4
    ot finetune "$BN" "${FULL[@]}" "${P[@]}" -o "$D/cut_$prec.onnx" --checkpoint "$D/cut_$prec.ckpt" \
        --checkpoint-every 1 --resume "$D/cut_$prec.ckpt"
    if [ "$T_RC" -eq 0 ] && [[ $T_OUT == *"resumed from"* ]]; then
        same_bytes "$prec: resumed = uninterrupted" "$D/cut_$prec.onnx" "$D/ref_$prec.onnx"
    else
        fail "$prec: resume" "$(describe_run)"
    fi
    rm -f "$D/cut_$prec.ckpt"* # full training's checkpoints are large
done

# --------------------- the checkpoint's weights: the export's plain tensors
expect_rc "export from the checkpoint" 0 export "$D/ref_fp32.ckpt" "$D/exported.onnx"
same_bytes "checkpoint export = training export" "$D/exported.onnx" "$D/ref_fp32.onnx"
finish
