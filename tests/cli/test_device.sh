#!/bin/bash
# test_device.sh: --device on the commands that compute (run, test-data,
# predict, finetune, eval). A name that is not a device is a usage error
# (exit 2, one line); cuda and cuda:N are known, and where this build has no
# CUDA backend, or it has one but no usable GPU here, they fail with one
# line saying why (exit 1); --device cpu gives the same bytes as no
# --device. Where a GPU is usable the cuda errors are not checked here
# (tests/gpu/check.sh runs the commands on it).
#
#   BUILD=build bash tests/cli/test_device.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
need_cli

FX=$BUILD/fixtures
DATA=$BUILD/tiny_cifar
if ! "$PY" tests/fixtures/make_resnet18.py "$FX" >"$T_TMP/make.log" 2>&1 ||
    ! "$PY" tests/fixtures/make_tiny_cifar.py "$DATA" >>"$T_TMP/make.log" 2>&1; then
    fail setup "fixtures: $(tail -n 1 "$T_TMP/make.log")"
    finish
fi
BN=$FX/resnet18_bn.onnx
NODE=/usr/share/libonnx-testdata/data/node/test_relu
TRAIN=(--data "$DATA" --classes 10 --image-size 32 --batch-size 8 --threads 2 --epochs 1
       --max-steps 2 --deterministic --no-cache)

# a fine-tuned model (for eval and predict) and an image
ot finetune "$BN" "${TRAIN[@]}" -o "$T_TMP/ft.onnx"
if [ "$T_RC" -ne 0 ]; then
    fail "setup: finetune" "$(describe_run)"
    finish
fi
"$PY" -c '
import sys, numpy as np
a = np.random.default_rng(5).integers(0, 256, (32, 32, 3), dtype=np.uint8)
open(sys.argv[1], "wb").write(b"P6\n32 32\n255\n" + a.tobytes())
' "$T_TMP/a.ppm"

# why --device cuda fails here: no backend in this build, or the backend's
# reason (no driver, no device, a library missing or too old); empty where
# a GPU is usable
ot --version
case $T_OUT in
    *"cuda: not built in"*) CUDA_WHY="this build has no CUDA backend" ;;
    *"cuda: built in, not usable here: "*) CUDA_WHY="is not usable: ${T_OUT##*not usable here: }"
        CUDA_WHY=${CUDA_WHY%%$'\n'*} ;;
    *) CUDA_WHY=
        echo "skipped: the --device cuda errors (a CUDA device is usable here)" ;;
esac

# each command with arguments that would otherwise run
declare -A ARGS=(
    [run]="$BN --random --batch 2 --output-dir $T_TMP/run_OUT"
    [test-data]="$NODE"
    [predict]="$T_TMP/ft.onnx $T_TMP/a.ppm --json --threads 2"
    [eval]="$T_TMP/ft.onnx --data $DATA --json --threads 2"
    [finetune]="$BN ${TRAIN[*]} -o $T_TMP/finetune_OUT.onnx"
)

for cmd in run test-data predict eval finetune; do
    # shellcheck disable=SC2086  # the arguments are words
    set -- ${ARGS[$cmd]}
    expect_usage "$cmd --device gpu" "$cmd" "$@" --device gpu
    matches "$T_ERR" "unknown device 'gpu'&cpu, cuda, cuda:N" ||
        fail "$cmd --device gpu: message" "$T_ERR"
    expect_usage "$cmd --device cuda:x" "$cmd" "$@" --device cuda:x
    if [ -n "$CUDA_WHY" ]; then
        expect_error "$cmd --device cuda" "device 'cuda:0'&$CUDA_WHY" "$cmd" "$@" --device cuda
        expect_error "$cmd --device cuda:1" "device 'cuda:1'&$CUDA_WHY" "$cmd" "$@" \
            --device cuda:1
        case $cmd in
            run|finetune) [ ! -e "$T_TMP/${cmd}_OUT" ] && [ ! -e "$T_TMP/${cmd}_OUT.onnx" ] &&
                ok "$cmd --device cuda: nothing written" ||
                fail "$cmd --device cuda: nothing written" "an output exists" ;;
        esac
    fi

    # --device cpu: the same bytes as without --device
    for how in plain cpu; do
        # shellcheck disable=SC2086
        set -- ${ARGS[$cmd]//_OUT/_$how}
        if [ "$how" = cpu ]; then
            ot "$cmd" "$@" --device cpu
        else
            ot "$cmd" "$@"
        fi
        printf '%s' "$T_OUT" >"$T_TMP/$cmd.$how.stdout"
        [ "$T_RC" -eq 0 ] || fail "$cmd ($how)" "$(describe_run)"
    done
    case $cmd in
        run) cmp -s "$T_TMP/run_plain/output_0.pb" "$T_TMP/run_cpu/output_0.pb" ;;
        finetune) cmp -s "$T_TMP/finetune_plain.onnx" "$T_TMP/finetune_cpu.onnx" ;;
        *) cmp -s "$T_TMP/$cmd.plain.stdout" "$T_TMP/$cmd.cpu.stdout" ;;
    esac && ok "$cmd --device cpu: same output" ||
        fail "$cmd --device cpu: same output" "outputs differ"
    ot "$cmd" --help
    matches "$T_OUT" "--device NAME" && ok "$cmd --help names --device" ||
        fail "$cmd --help names --device" "$(first_line "$T_OUT")"
done

# each batch handed in ahead of its step (ONNXTRAIN_PREFETCH=1, the order
# of a device whose runs overlap the host, here on the CPU), and the uint8
# images handed to the executor, which resizes them where it runs
# (ONNXTRAIN_DEVICE_PREP=1; on the CPU with the loader's own transform):
# the same weights and per-epoch log (less its timings) as one batch at a
# time from the loader, over epochs with a smaller last batch (20 images,
# batch 8), in full training and behind a frozen prefix (fine-tune)
PF=(--data "$DATA" --classes 10 --image-size 32 --per-class 2 --batch-size 8 --threads 2
    --epochs 2 --workers 2 --deterministic --no-cache)
# same_run NAME A B: the two runs' models (their checksums: each model is
# removed once summed) and logs agree
declare -A SUM
same_run() {
    [ -n "${SUM[$2]}" ] && [ "${SUM[$2]}" = "${SUM[$3]}" ] &&
        cmp -s <(cut -d, -f1-6 "$T_TMP/$2.csv") <(cut -d, -f1-6 "$T_TMP/$3.csv") &&
        [ "$(wc -l <"$T_TMP/$3.csv")" -eq 3 ] && ok "$1: the same model and log" ||
        fail "$1: the same model and log" "$2 and $3 differ"
}
for how in full:0:0 full:1:0 full:1:1 fine-tune:0:0 fine-tune:0:1 fine-tune:1:0 fine-tune:1:1; do
    IFS=: read -r mode pre prep <<<"$how"
    name=pf_$mode$pre$prep
    ONNXTRAIN_PREFETCH=$pre ONNXTRAIN_DEVICE_PREP=$prep ot -v finetune "$BN" "${PF[@]}" \
        --mode "$mode" --log "$T_TMP/$name.csv" -o "$T_TMP/$name.onnx"
    [ "$T_RC" -eq 0 ] || fail "finetune $how" "$(describe_run)"
    # 2 epochs of 3 steps: the second and third batch of each handed in ahead
    want="batches handed in ahead: 4 (to the step's executor)"
    [ "$mode" = fine-tune ] && want="batches handed in ahead: 4 (to the frozen prefix's executor)"
    if [ "$pre" = 1 ] && [[ $T_ERR != *"$want"* ]]; then
        fail "finetune $how: batches handed in ahead" "$(grep ahead <<<"$T_ERR")"
    fi
    [ -f "$T_TMP/$name.onnx" ] && SUM[$name]=$(sha256sum <"$T_TMP/$name.onnx")
    rm -f "$T_TMP/$name.onnx"
done
same_run "batches handed in ahead" pf_full00 pf_full10
same_run "uint8 batches handed in ahead" pf_full00 pf_full11
same_run "uint8 batches behind a frozen prefix" pf_fine-tune00 pf_fine-tune01
same_run "batches handed in ahead behind a frozen prefix" pf_fine-tune00 pf_fine-tune10
same_run "uint8 batches handed in ahead behind a frozen prefix" pf_fine-tune00 pf_fine-tune11
# with --augment the uint8 images come with each image's crop box, flip and
# tables (the loader's draw for the run's seed, the epoch and the image):
# the same model and log as the loader's augmented batches
for how in full:0:0 full:1:1 full:0:1 fine-tune:0:0 fine-tune:1:1; do
    IFS=: read -r mode pre prep <<<"$how"
    name=aug_$mode$pre$prep
    ONNXTRAIN_PREFETCH=$pre ONNXTRAIN_DEVICE_PREP=$prep ot -v finetune "$BN" "${PF[@]}" \
        --augment --mode "$mode" --log "$T_TMP/$name.csv" -o "$T_TMP/$name.onnx"
    [ "$T_RC" -eq 0 ] || fail "finetune --augment $how" "$(describe_run)"
    # the uint8 path with each image's box, or the loader's batches
    if [ "$prep" = 1 ] && [[ $T_ERR != *"resized where the model runs, each with its crop"* ]] ||
        [ "$prep" = 0 ] && [[ $T_ERR == *"resized where the model runs"* ]]; then
        fail "finetune --augment $how: the batches' path" "$(grep batches <<<"$T_ERR")"
    fi
    [ -f "$T_TMP/$name.onnx" ] && SUM[$name]=$(sha256sum <"$T_TMP/$name.onnx")
    rm -f "$T_TMP/$name.onnx"
done
same_run "augmented uint8 batches" aug_full00 aug_full01
same_run "augmented uint8 batches handed in ahead" aug_full00 aug_full11
same_run "augmented uint8 batches behind a frozen prefix" aug_fine-tune00 aug_fine-tune11
[ -n "${SUM[aug_full00]}" ] && [ "${SUM[aug_full00]}" != "${SUM[pf_full00]}" ] &&
    ok "--augment changes the batches" || fail "--augment changes the batches" "same model"

# the frozen prefix's cache kept where the executors compute (a GPU's
# memory or pinned host memory; ONNXTRAIN_CACHE_PLACE forces that store on
# the CPU too, in the CPU backend's memory): the same model and log as the
# host's cache, with f32 and bf16 records, in feature extraction and
# fine-tune with batches handed in ahead; the second epoch runs no prefix
# ("-v": "frozen prefix: 3 runs in 6 steps"); a run stopped in epoch 2 and
# resumed refills the store and ends as the uninterrupted one
PC=(--data "$DATA" --classes 10 --image-size 32 --per-class 2 --batch-size 8 --threads 2
    --epochs 2 --workers 2 --deterministic)
for how in feature-extract::f32 feature-extract:device:f32 feature-extract:pinned:f32 \
    feature-extract::bf16 feature-extract:device:bf16 fine-tune::f32 fine-tune:device:f32; do
    IFS=: read -r mode place dt <<<"$how"
    name=pc_$mode$place$dt
    ONNXTRAIN_CACHE_PLACE=$place ONNXTRAIN_PREFETCH=1 ot -v finetune "$BN" "${PC[@]}" \
        --mode "$mode" --cache-dtype "$dt" --log "$T_TMP/$name.csv" -o "$T_TMP/$name.onnx"
    [ "$T_RC" -eq 0 ] || fail "finetune $how" "$(describe_run)"
    [ -f "$T_TMP/$name.onnx" ] && SUM[$name]=$(sha256sum <"$T_TMP/$name.onnx")
    rm -f "$T_TMP/$name.onnx"
    where="in ${place:-nowhere}"
    [ "$place" = pinned ] && where="in pinned host memory"
    [ "$place" = device ] && where="in device memory"
    if [[ $T_ERR$T_OUT == *"frozen prefix: 3 runs in 6 steps"* ]] &&
        { [ -z "$place" ] || [[ $T_OUT == *"prefix cache: "*" of $dt"*"$where"* ]]; }; then
        ok "prefix cache $how: epoch 2 runs no prefix"
    else
        fail "prefix cache $how: epoch 2 runs no prefix" \
            "$(grep -E 'frozen prefix|prefix cache' <<<"$T_ERR$T_OUT")"
    fi
done
same_run "prefix cache in the store (f32)" pc_feature-extractf32 pc_feature-extractdevicef32
same_run "prefix cache in the store, pinned (f32)" pc_feature-extractf32 \
    pc_feature-extractpinnedf32
same_run "prefix cache in the store (bf16)" pc_feature-extractbf16 pc_feature-extractdevicebf16
same_run "prefix cache in the store (fine-tune)" pc_fine-tunef32 pc_fine-tunedevicef32
# without the cache the prefix runs at every step
ot -v finetune "$BN" "${PC[@]}" --mode feature-extract --no-cache -o "$T_TMP/nc.onnx"
[[ $T_ERR$T_OUT == *"frozen prefix: 6 runs in 6 steps"* ]] && ok "no cache: the prefix runs every step" ||
    fail "no cache: the prefix runs every step" "$(describe_run)"
ONNXTRAIN_CACHE_PLACE=gpu ot finetune "$BN" "${PC[@]}" --mode feature-extract -o "$T_TMP/bad.onnx"
[ "$T_RC" -eq 1 ] && [[ $T_ERR == *"ONNXTRAIN_CACHE_PLACE: 'gpu' is not device, pinned or host"* ]] &&
    [ ! -e "$T_TMP/bad.onnx" ] && ok "ONNXTRAIN_CACHE_PLACE: unknown placement refused" ||
    fail "ONNXTRAIN_CACHE_PLACE: unknown placement refused" "$(describe_run)"
ONNXTRAIN_CACHE_PLACE=device ot finetune "$BN" "${PC[@]}" --mode fine-tune -o "$T_TMP/rs_ref.onnx"
ONNXTRAIN_CACHE_PLACE=device ot finetune "$BN" "${PC[@]}" --mode fine-tune -o "$T_TMP/rs.onnx" \
    --checkpoint "$T_TMP/rs.ckpt" --max-steps 4
ONNXTRAIN_CACHE_PLACE=device ot finetune "$BN" "${PC[@]}" --mode fine-tune -o "$T_TMP/rs.onnx" \
    --checkpoint "$T_TMP/rs.ckpt" --resume "$T_TMP/rs.ckpt"
if [ "$T_RC" -eq 0 ] && [[ $T_OUT == *"resumed from"* ]] && [ -f "$T_TMP/rs.onnx" ]; then
    cmp -s "$T_TMP/rs.onnx" "$T_TMP/rs_ref.onnx" &&
        ok "prefix cache in the store: resumed = uninterrupted" ||
        fail "prefix cache in the store: resumed = uninterrupted" "the models differ"
else
    fail "prefix cache in the store: resume" "$(describe_run)"
fi

finish
