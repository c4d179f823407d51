#!/bin/bash
# test_hostile_ckpt.sh: training runs and their auxiliary files under hostile
# conditions, on a tiny model (tests/hostile/ckpt.py model: Conv, BN, Relu,
# pool, Gemm at 8x8) and the tiny CIFAR set, so that it runs in seconds,
# under ASan too:
#   - a full disk under --log or --plot costs the log, never the model: -o is
#     written (the same bytes), exit 1 with one error line (tmpfs, as root;
#     skipped with a message otherwise).
#
#   BUILD=build bash tests/cli/test_hostile_ckpt.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
need_cli

D=$T_TMP
MNT=$D/full
cleanup() {
    if [ -d "$MNT" ] && mountpoint -q "$MNT"; then umount "$MNT"; fi
    rm -rf "$T_TMP"
}
trap cleanup EXIT

GEN=tests/hostile/ckpt.py
if ! "$PY" "$GEN" model "$D/m.onnx" >"$D/make.log" 2>&1 ||
    ! "$PY" tests/fixtures/make_tiny_cifar.py "$D/data" 64 16 >>"$D/make.log" 2>&1; then
    fail setup "fixtures: $(tail -n 1 "$D/make.log")"
    finish
fi
M=$D/m.onnx
BASE=(--data "$D/data" --image-size 8 --batch-size 16 --mode full --deterministic --lr 0.1)

same_bytes() { # NAME A B
    if cmp -s "$2" "$3"; then ok "$1"; else fail "$1" "$2 and $3 differ"; fi
}

# --------------------------------------------- a full disk under --log/--plot
if [ "$(id -u)" != 0 ]; then
    echo "skipped: full disk (needs root to mount a tmpfs)"
elif ! mkdir -p "$MNT" || ! mount -t tmpfs -o size=64k tmpfs "$MNT" 2>"$D/mount.err"; then
    echo "skipped: full disk (mount -t tmpfs failed: $(head -n 1 "$D/mount.err"))"
else
    ot finetune "$M" "${BASE[@]}" --epochs 2 -o "$D/ref2.onnx"
    yes 0123456789abcdef | head -c 1000000 >"$MNT/fill" 2>"$D/fill.err"
    for what in log plot; do
        ext=csv
        [ "$what" = plot ] && ext=svg
        rm -f "$D/full_$what.onnx"
        expect_error "full disk: --$what: one error line" "$what.$ext&space&written" \
            finetune "$M" "${BASE[@]}" --epochs 2 -o "$D/full_$what.onnx" --"$what" "$MNT/$what.$ext"
        same_bytes "full disk: --$what: the model is written" "$D/full_$what.onnx" "$D/ref2.onnx"
        if ls "$MNT" | grep -q tmp; then
            fail "full disk: --$what: no temporary files left" "$(ls "$MNT" | tr '\n' ' ')"
        else
            ok "full disk: --$what: no temporary files left"
        fi
    done
    umount "$MNT"
fi

finish
