#!/bin/bash
# test_hostile_ckpt.sh: checkpoints and resumes under hostile conditions
# (docs/checkpoint.md), on a tiny model (tests/hostile/ckpt.py model: Conv,
# BN, Relu, pool, Gemm at 8x8) and the tiny CIFAR set, so that it runs in
# seconds, under ASan too:
#   - a resumed run is the uninterrupted one: --keep best with --patience
#     (stopped inside an epoch, at an epoch's end, after --patience ended it),
#     --log and --plot rows, --augment; the same output, final checkpoint and
#     plot bytes, the same log rows but for the timing columns; options that
#     change the result are refused when they differ;
#   - a full disk under --log, --plot or --checkpoint costs that file, never
#     the model: -o is written (the same bytes), exit 1 with one error line
#     (tmpfs, as root; skipped with a message otherwise);
#   - a checkpoint with one byte flipped, anywhere, is refused by export,
#     --resume and finetune (CRC-32 trailer);
#   - metadata out of range, with the checksum recomputed, is refused naming
#     the field (epoch 2^31-1, step and epoch_seen near 2^63, ...).
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
# 44 training images (3 steps an epoch), 20 validation; with these numbers the
# best epoch is 5 and --patience 3 ends the run after epoch 8
BEST=("${BASE[@]}" --epochs 10 --val-split 0.25 --keep best --patience 3)

same_bytes() { # NAME A B
    if cmp -s "$2" "$3"; then ok "$1"; else fail "$1" "$2 and $3 differ"; fi
}

# The log's rows without the timing columns (images_per_s, seconds).
same_rows() { # NAME A B
    if [ -s "$2" ] && diff <(cut -d, -f1-6 "$2") <(cut -d, -f1-6 "$3") >/dev/null 2>&1; then
        ok "$1"
    else
        fail "$1" "rows differ: $(diff <(cut -d, -f1-6 "$2") <(cut -d, -f1-6 "$3") 2>&1 | head -n 3 | tr '\n' ' ')"
    fi
}

# ---------------------------------------------- --keep best and --patience
ot finetune "$M" "${BEST[@]}" -o "$D/u.onnx" --checkpoint "$D/u.ckpt" --log "$D/u.csv" \
    --plot "$D/u.svg"
if [ "$T_RC" -ne 0 ] || ! [[ $T_OUT == *"kept the weights of epoch 5"* ]] ||
    ! [[ $T_OUT == *"stopped early"* ]] || [[ $T_OUT == *"epoch 9/10"* ]]; then
    fail "best: reference run" "$(describe_run); stdout: $(printf '%s' "$T_OUT" | tail -n 4 | tr '\n' ' ')"
    finish
fi
ok "best: reference run (best epoch 5, stopped after 8)"
# stopped inside epoch 7, at the end of epoch 6 (both after the best epoch,
# with patience counted), at the end of epoch 8 (where --patience ended it)
for ms in 20 18 24; do
    rm -f "$D/r.ckpt" "$D/r.csv" "$D/r.svg" "$D/r.onnx"
    ot finetune "$M" "${BEST[@]}" -o "$D/r.onnx" --checkpoint "$D/r.ckpt" --log "$D/r.csv" \
        --plot "$D/r.svg" --max-steps "$ms"
    ot finetune "$M" "${BEST[@]}" -o "$D/r.onnx" --checkpoint "$D/r.ckpt" --log "$D/r.csv" \
        --plot "$D/r.svg" --resume "$D/r.ckpt"
    if [ "$T_RC" -ne 0 ] || ! [[ $T_OUT == *"resumed from"* ]]; then
        fail "best: resume after step $ms" "$(describe_run)"
        continue
    fi
    if [ "$ms" = 24 ] && [[ $T_OUT == *"epoch 9/10"* || $T_OUT != *"nothing left to train"* ]]; then
        fail "best: a run --patience ended stays ended" "stdout: $(printf '%s' "$T_OUT" | tr '\n' ' ' | head -c 300)"
    elif [ "$ms" = 24 ]; then
        ok "best: a run --patience ended stays ended"
    fi
    same_bytes "best: after step $ms: same output bytes" "$D/r.onnx" "$D/u.onnx"
    same_bytes "best: after step $ms: same final checkpoint" "$D/r.ckpt" "$D/u.ckpt"
    same_bytes "best: after step $ms: same plot" "$D/r.svg" "$D/u.svg"
    same_rows "best: after step $ms: same log rows" "$D/u.csv" "$D/r.csv"
done
# a --log first given at the resume still gets the rows of the earlier epochs
rm -f "$D/r.ckpt" "$D/late.csv"
ot finetune "$M" "${BEST[@]}" -o "$D/r.onnx" --checkpoint "$D/r.ckpt" --max-steps 20
ot finetune "$M" "${BEST[@]}" -o "$D/r.onnx" --log "$D/late.csv" --resume "$D/r.ckpt"
same_rows "log given at the resume only: every row" "$D/u.csv" "$D/late.csv"

# options that change the result must match; --epochs may be raised
for c in "--keep last|keep" "--patience 2|patience" "--val-split 0.5|train-set"; do
    bad=${c%%|*}
    # shellcheck disable=SC2086  # $bad is an option and its value
    expect_error "refused: other $bad" "options differ&${c#*|}" \
        finetune "$M" "${BASE[@]}" --epochs 10 --val-split 0.25 --keep best --patience 3 $bad \
        -o "$D/x.onnx" --resume "$D/r.ckpt"
done
if [ -e "$D/x.onnx" ]; then fail "refused: no output" "$D/x.onnx was written"; else ok "refused: no output"; fi

# ------------------------------------------------------------- --augment
AUG=("${BASE[@]}" --epochs 3 --augment)
ot finetune "$M" "${AUG[@]}" -o "$D/au.onnx" --checkpoint "$D/au.ckpt"
rm -f "$D/ar.ckpt"
ot finetune "$M" "${AUG[@]}" -o "$D/ar.onnx" --checkpoint "$D/ar.ckpt" --max-steps 5
expect_error "augment: resume without --augment is refused" "options differ&augment" \
    finetune "$M" "${BASE[@]}" --epochs 3 -o "$D/x.onnx" --resume "$D/ar.ckpt"
expect_error "augment: --augment at a resume of a run without it is refused" \
    "options differ&augment" \
    finetune "$M" "${AUG[@]}" -o "$D/x.onnx" --resume "$D/r.ckpt"
ot finetune "$M" "${AUG[@]}" -o "$D/ar.onnx" --checkpoint "$D/ar.ckpt" --resume "$D/ar.ckpt"
if [ "$T_RC" -eq 0 ]; then
    same_bytes "augment: resumed = uninterrupted" "$D/ar.onnx" "$D/au.onnx"
else
    fail "augment: resume" "$(describe_run)"
fi

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
    # A checkpoint that cannot be written is auxiliary too: a warning when it
    # first fails, training goes on, -o is written, one error line, exit 1.
    rm -f "$D/full_ck.onnx"
    ot finetune "$M" "${BASE[@]}" --epochs 2 -o "$D/full_ck.onnx" --checkpoint "$MNT/ck.onnx"
    last=$(printf '%s\n' "$T_ERR" | tail -n 1)
    if [ "$T_RC" -eq 1 ] && [[ $last == "onnxtrain: error: "* ]] &&
        matches "$last" "ck.onnx&space&written" && [ "$T_NERR" -eq 2 ] &&
        matches "$(printf '%s\n' "$T_ERR" | head -n 1)" "warning&ck.onnx&training goes on"; then
        ok "full disk: --checkpoint: a warning, then one error line"
    else
        fail "full disk: --checkpoint: a warning, then one error line" "$(describe_run)"
    fi
    same_bytes "full disk: --checkpoint: the model is written" "$D/full_ck.onnx" "$D/ref2.onnx"
    if ls "$MNT" | grep -q -e tmp -e ck.onnx; then
        fail "full disk: --checkpoint: nothing left" "$(ls "$MNT" | tr '\n' ' ')"
    else
        ok "full disk: --checkpoint: nothing left"
    fi
    umount "$MNT"
fi

# A checkpoint path that cannot be written at all is refused before training.
rm -f "$D/nock.onnx"
expect_error "--checkpoint in a missing folder: refused at start" "checkpoint&no such file" \
    finetune "$M" "${BASE[@]}" --epochs 2 -o "$D/nock.onnx" --checkpoint "$D/missing/ck.onnx"
if [[ $T_OUT == *"epoch 1"* ]] || [ -e "$D/nock.onnx" ]; then
    fail "--checkpoint in a missing folder: nothing trained" "$T_OUT"
else
    ok "--checkpoint in a missing folder: nothing trained"
fi

# ------------------------------------------------- one byte flipped: refused
"$PY" "$GEN" flips "$D/u.ckpt" "$D" 30 >"$D/flips.txt"
size=$(stat -c %s "$D/u.ckpt")
n=0 bad=""
while read -r off path; do
    n=$((n + 1))
    ot export "$path" "$D/flip.onnx"
    # before the 40-byte trailer the message is the checksum's; in it, any
    # refusal will do (the trailer is then not found, or not hex)
    want=checksum
    [ "$off" -ge $((size - 40)) ] && want=
    why=$(error_problem "$want")
    if [ -n "$why" ] || [ -e "$D/flip.onnx" ]; then
        bad="$bad offset $off: ${why:-wrote an output};"
        rm -f "$D/flip.onnx"
    fi
done <"$D/flips.txt"
if [ "$n" -ge 30 ] && [ -z "$bad" ]; then
    ok "flips: export refuses all $n"
else
    fail "flips: export" "$n files;$bad"
fi
# the same files for --resume and as the model of a new run (a sample)
n=0 bad=""
while read -r off path; do
    n=$((n + 1))
    [ $((n % 6)) = 1 ] || continue
    want=checksum
    [ "$off" -ge $((size - 40)) ] && want=
    ot finetune "$M" "${BEST[@]}" -o "$D/flip.onnx" --resume "$path"
    why=$(error_problem "$want")
    [ -n "$why" ] && bad="$bad --resume, offset $off: $why;"
    ot finetune "$path" "${BASE[@]}" --epochs 1 -o "$D/flip.onnx"
    why=$(error_problem "$want")
    [ -n "$why" ] && bad="$bad as MODEL, offset $off: $why;"
done <"$D/flips.txt"
if [ -z "$bad" ] && [ ! -e "$D/flip.onnx" ]; then
    ok "flips: --resume and finetune refuse them"
else
    fail "flips: --resume and finetune" "$bad"
fi
head -c 3000 "$D/u.ckpt" >"$D/cut.ckpt"
expect_error "checksum: a truncated file" "truncated|checksum" export "$D/cut.ckpt" "$D/x.onnx"
"$PY" "$GEN" recrc "$D/u.ckpt" "$D/same.ckpt"
same_bytes "checksum: the generator writes the trailer as onnxtrain does" "$D/same.ckpt" "$D/u.ckpt"

# ------------------------- out of range, with the checksum recomputed: refused
# "KEY=VALUE ..." and what the message must name
cases=(
    "epoch=2147483647|epoch&range"
    "epoch=8|step&range"
    "step=9223372036854775807|step&range"
    "step=-1|step&range"
    "epoch_seen=9223372036854775000|epoch_seen&range"
    "epoch_seen=31|epoch_seen"
    "epoch_correct=99|epoch_correct&range"
    "epoch_step=3|epoch_step&range"
    "epoch_step=-1|epoch_step&range"
    "steps_per_epoch=0|steps_per_epoch&range"
    "steps_per_epoch=4611686018427387904|steps_per_epoch&range"
    "images=0|images&range"
    "epochs=0|epochs&range"
    "classes=-3|classes&range"
    "epoch_loss_sum=inf|epoch_loss_sum&range"
    "last_loss=nan|last_loss&range"
    "last_accuracy=2|last_accuracy&range"
    "best_epoch=99|best_epoch&range"
    "best_epoch=0|best_epoch"
    "best_val_accuracy=0.25|best_val_accuracy"
    "history=1,2,0.5,2,0.5,0.1|history"
    "format=1|format 1"
    "format=3|newer"
    "epoch=1x|epoch&integer"
    "model=xyz|model&hex"
)
for c in "${cases[@]}"; do
    kv=${c%%|*}
    want=${c#*|}
    if ! "$PY" "$GEN" setmeta "$D/r.ckpt" "$D/meta.ckpt" $kv 2>"$D/gen.err"; then
        fail "range: $kv" "generator: $(tail -n 1 "$D/gen.err")"
        continue
    fi
    expect_error "range: $kv" "$want" \
        finetune "$M" "${BEST[@]}" -o "$D/x.onnx" --resume "$D/meta.ckpt"
done
"$PY" "$GEN" settensor "$D/r.ckpt" "$D/meta.ckpt" onnxtrain.optim.step 0 9.2e18
expect_error "range: optimizer step near 2^63" "optimizer&step" \
    finetune "$M" "${BEST[@]}" -o "$D/x.onnx" --resume "$D/meta.ckpt"
if [ -e "$D/x.onnx" ]; then fail "range: no output" "$D/x.onnx was written"; else ok "range: no output"; fi
# the unchanged file, through the same generator, still resumes
"$PY" "$GEN" setmeta "$D/r.ckpt" "$D/meta.ckpt"
expect_rc "range: an unchanged re-sealed checkpoint resumes" 0 \
    finetune "$M" "${BEST[@]}" -o "$D/x.onnx" --resume "$D/meta.ckpt"
same_bytes "range: ... to the same output" "$D/x.onnx" "$D/u.onnx"


# A key given twice (which value a reader took would depend on the reader)
# and a newer format are refused by --resume and by export alike.
"$PY" "$GEN" setmeta "$D/r.ckpt" "$D/dup.ckpt" +epoch=1
expect_error "metadata key twice: --resume" "epoch&appears twice" \
    finetune "$M" "${BEST[@]}" -o "$D/x.onnx" --resume "$D/dup.ckpt"
expect_error "metadata key twice: export" "epoch&appears twice" export "$D/dup.ckpt" "$D/x.onnx"
"$PY" "$GEN" setmeta "$D/r.ckpt" "$D/f3.ckpt" format=3
expect_error "format 3: export" "format 3&newer" export "$D/f3.ckpt" "$D/x.onnx"

# ------------------------------------------------ --lr-schedule cosine
# The learning rate of each epoch is PyTorch's CosineAnnealingLR(T_max =
# epochs) stepped once per epoch (it stayed at the base rate: T_max was never
# set); a run stopped by --max-steps and resumed is the uninterrupted one; a
# resume with more epochs is refused, since the schedule would change.
COS=("${BASE[@]}" --epochs 4 --lr-schedule cosine)
ot finetune "$M" "${COS[@]}" -o "$D/cu.onnx" --log "$D/cu.csv"
if [ "$T_RC" -eq 0 ]; then ok "cosine: trains"; else fail "cosine: trains" "$(describe_run)"; fi
py_checks "cosine" '
import csv, sys, torch
rows = list(csv.DictReader(open(sys.argv[1])))
p = torch.nn.Parameter(torch.zeros(1))
opt = torch.optim.SGD([p], lr=0.1)
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4)
want = []
for _ in range(4):
    want.append(opt.param_groups[0]["lr"])
    opt.step(); sched.step()
got = [float(r["lr"]) for r in rows]
ok = len(got) == 4 and all(abs(g - w) <= 1e-6 * 0.1 for g, w in zip(got, want))
print("ok lr per epoch as torch" if ok else "FAIL lr per epoch as torch: %s, torch %s" % (got, want))
' "$D/cu.csv"
ot finetune "$M" "${COS[@]}" -o "$D/cs.onnx" --checkpoint "$D/cs.ckpt" --max-steps 5
ot finetune "$M" "${COS[@]}" -o "$D/cs.onnx" --checkpoint "$D/cs.ckpt" --resume "$D/cs.ckpt"
if [ "$T_RC" -eq 0 ]; then ok "cosine: resume"; else fail "cosine: resume" "$(describe_run)"; fi
same_bytes "cosine: resumed = uninterrupted" "$D/cs.onnx" "$D/cu.onnx"
expect_error "cosine: more epochs at resume refused" "differ&cosine-epochs is '6' here" \
    finetune "$M" "${BASE[@]}" --epochs 6 --lr-schedule cosine -o "$D/x.onnx" --resume "$D/cs.ckpt"

finish
