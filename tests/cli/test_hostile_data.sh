#!/bin/bash
# test_hostile_data.sh: hostile data sets and option values. Data sets come
# from tests/hostile/data.py at test time: an IDX gzip bomb, IDX headers that
# promise more than the file or the memory limit, CIFAR-10 batches larger
# than the limit (sparse), a batches.meta.txt that is a folder or a FIFO, a
# PNG header of 100000x100000, image folders with a symlink loop and with
# more entries than --max-files. Options: hex, inf, nan, trailing junk,
# overflow and out-of-range values, refused as usage errors that state the
# accepted range, the same range for --threads in every command.
#
#   BUILD=build bash tests/cli/test_hostile_data.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
need_cli

H=$T_TMP/h
if ! "$PY" tests/hostile/data.py "$H" >"$T_TMP/gen.log" 2>&1; then
    fail setup "tests/hostile/data.py: $(tail -n 1 "$T_TMP/gen.log")"
    finish
fi
M=$H/model.onnx
T_TIMEOUT=60

# ------------------------------------------------------------------ data sets

expect_rc "control: a valid IDX set scores" 0 eval "$M" --data "$H/good_idx" --threads 1

# 134 bytes of gzip cannot hold 16 TB: refused from the header, nothing allocated.
expect_error "IDX gzip bomb is refused from its header" "gzip&can hold&1040:1" \
    eval "$M" --data "$H/idx_bomb" --threads 1
expect_error "IDX header within the file but over --max-data-size" \
    "--max-data-size&data memory limit" \
    eval "$M" --data "$H/idx_big" --threads 1 --max-data-size 64M
expect_error "IDX header promising more than a plain file holds" "truncated at record 10 of 60000" \
    eval "$M" --data "$H/idx_short" --threads 1

# A sparse 5.2 GB batch file: over the default 4 GiB limit, refused before reading.
mkdir -p "$T_TMP/cifar_big"
if truncate -s $((3073 * 1700000)) "$T_TMP/cifar_big/data_batch_1.bin" 2>/dev/null; then
    expect_error "CIFAR-10 batches over the default data memory limit" \
        "--max-data-size&4294967296" eval "$M" --data "$T_TMP/cifar_big" --threads 1
    expect_error "CIFAR-10 batches over --max-data-size" "--max-data-size&over" \
        eval "$M" --data "$T_TMP/cifar_big" --threads 1 --max-data-size 1G
    rm -f "$T_TMP/cifar_big/data_batch_1.bin"
else
    echo "skipped: CIFAR-10 over the limit (no sparse files in $T_TMP)"
fi

expect_error "batches.meta.txt that is a folder" "batches.meta.txt&not a regular file" \
    eval "$M" --data "$H/cifar_meta_dir" --threads 1
mkdir -p "$T_TMP/cifar_fifo"
cp "$H/cifar_meta_dir/data_batch_1.bin" "$T_TMP/cifar_fifo/"
if mkfifo "$T_TMP/cifar_fifo/batches.meta.txt" 2>/dev/null; then
    expect_error "batches.meta.txt that is a FIFO" "batches.meta.txt&not a regular file" \
        eval "$M" --data "$T_TMP/cifar_fifo" --threads 1
else
    echo "skipped: batches.meta.txt as a FIFO (mkfifo failed)"
fi
mkdir -p "$T_TMP/idx_classes_dir"
cp "$H/good_idx/"* "$T_TMP/idx_classes_dir/"
mkdir "$T_TMP/idx_classes_dir/classes.txt"
expect_error "IDX classes.txt that is a folder" "classes.txt&not a regular file" \
    eval "$M" --data "$T_TMP/idx_classes_dir" --threads 1

expect_error "PNG header of 100000x100000 is refused before allocation" \
    "huge.png&100000 x 100000&over the limit" eval "$M" --data "$H/png_huge" --threads 1

ot eval "$M" --data "$H/folder_loop" --threads 1 --json
if [ "$T_RC" -eq 0 ] && matches "$T_OUT" '"n": 2,' && matches "$T_ERR" "loop&skipped"; then
    ok "a symlink back to the split folder is skipped"
else
    fail "a symlink back to the split folder is skipped" "$(describe_run), stdout $(first_line "$T_OUT")"
fi

expect_error "image folder walk over --max-files" "--max-files&more than 500" \
    eval "$M" --data "$H/folder_wide" --threads 1 --max-files 500
expect_rc "image folder walk within --max-files" 0 \
    eval "$M" --data "$H/folder_wide" --threads 1 --max-files 1300
expect_error "image folder file list over --max-data-size" "--max-data-size&list" \
    eval "$M" --data "$H/folder_wide" --threads 1 --max-data-size 16K

# A chain of folders, each with four links to the next: 4^14 paths through 15
# folders. Each folder is walked once per class, so this takes no time.
D=$T_TMP/dag
mkdir -p "$D/c/x/d0" "$D/c2"
cp "$H/folder_loop/cls1/img.png" "$D/c2/"
for i in $(seq 0 13); do
    mkdir -p "$D/c/x/d$((i + 1))"
    for l in a b c d; do ln -s "../d$((i + 1))" "$D/c/x/d$i/$l"; done
done
cp "$H/folder_loop/cls1/img.png" "$D/c/x/d14/"
T_TIMEOUT=20
ot eval "$M" --data "$D" --threads 1 --json
if [ "$T_RC" -eq 0 ] && matches "$T_OUT" '"n": 2,'; then
    ok "symlink fan-out: each folder is walked once"
else
    fail "symlink fan-out: each folder is walked once" "$(describe_run), stdout $(first_line "$T_OUT")"
fi
T_TIMEOUT=60

# ------------------------------------------------------------------- options

expect_usage "--version with an argument" --version extra
if matches "$T_ERR" "unexpected argument&extra"; then ok "--version extra: says why"; else
    fail "--version extra: says why" "$T_ERR"; fi
expect_usage "--help with an argument" --help finetune

# value NAME CMD... : a usage error whose message quotes the value and states a range
refused() {
    local name=$1 want=$2
    shift 2
    ot "$@"
    if [ "$T_RC" -eq 2 ] && [ "$T_NERR" -eq 1 ] && matches "$T_ERR" "$want"; then
        ok "$name"
    else
        fail "$name" "expected exit 2 and '$want'; $(describe_run)"
    fi
}
F=(finetune "$M" --data "$H/good_idx" -o "$T_TMP/out.onnx")
for v in 0x10 inf nan infinity 1e-3x " 1" 1e999 1,5 -1; do
    refused "finetune --lr '$v'" "bad value&--lr&decimal number from 0" "${F[@]}" --lr "$v"
done
# An empty value is no value: refused before any work (an empty -o used to
# fail only after training, --cache-dir "" was accepted).
refused "finetune --lr ''" "--lr&non-empty" "${F[@]}" --lr ""
refused "finetune -o ''" "-o&non-empty" finetune "$M" --data "$H/good_idx" -o ""
refused "finetune --log=" "--log&non-empty" "${F[@]}" --log=
refused "finetune --cache-dir ''" "--cache-dir&non-empty" "${F[@]}" --cache-dir ""
refused "eval --data ''" "--data&non-empty" eval "$M" --data ""
refused "finetune --seed 2^64+1" "--seed&from 0 to 9223372036854775807" \
    "${F[@]}" --seed 18446744073709551617
refused "finetune --seed 2^63" "--seed&from 0 to 9223372036854775807" \
    "${F[@]}" --seed 9223372036854775808
refused "finetune --seed -1" "--seed" "${F[@]}" --seed -1
refused "finetune --seed 0x10" "--seed" "${F[@]}" --seed 0x10
refused "zoo --seed 2^64" "--seed&from 0 to 9223372036854775807" \
    zoo resnet18 -o "$T_TMP/z.onnx" --seed 18446744073709551616
refused "run --seed 2^64" "--seed&from 0 to 9223372036854775807" \
    run "$M" --random --seed 18446744073709551616
for c in finetune eval run predict test-data; do
    case $c in
        finetune) args=("${F[@]}") ;;
        eval) args=(eval "$M" --data "$H/good_idx") ;;
        run) args=(run "$M" --random) ;;
        predict) args=(predict "$M" "$H/png_huge/a/ok.png") ;;
        test-data) args=(test-data "$T_TMP") ;;
    esac
    refused "$c --threads 100000 states the shared range" "--threads&from 1 to 4096" \
        "${args[@]}" --threads 100000
    refused "$c --threads 0 states the shared range" "--threads&from 1 to 4096" \
        "${args[@]}" --threads 0
    refused "$c --threads 4x" "--threads&from 1 to 4096" "${args[@]}" --threads 4x
done
refused "--std 1e-45" "--std&0.001 to 1000" "${F[@]}" --std 1e-45
refused "--std 0" "--std" "${F[@]}" --std 0
refused "--std nan" "--std" "${F[@]}" --std nan,1,1
refused "--std four values" "--std" "${F[@]}" --std 1,1,1,1
refused "--mean 0..255 scale" "--mean&-1 to 2" "${F[@]}" --mean 123.7,116.3,103.5
refused "eval --std 1e-45" "--std" eval "$M" --data "$H/good_idx" --std 1e-45
refused "--momentum 0x1p-1" "--momentum" "${F[@]}" --momentum 0x1p-1
refused "--label-smoothing 2" "--label-smoothing&from 0 to 1" "${F[@]}" --label-smoothing 2
refused "--val-split nan" "--val-split" "${F[@]}" --val-split nan
refused "--epochs 1e3" "--epochs&integer" "${F[@]}" --epochs 1e3
refused "--epochs 99999999999999999999" "--epochs" "${F[@]}" --epochs 99999999999999999999
refused "--batch-size +4" "--batch-size" "${F[@]}" --batch-size +4
refused "--max-steps 0" "--max-steps" "${F[@]}" --max-steps 0
refused "--cache-mem 0x10" "--cache-mem&bytes" "${F[@]}" --cache-mem 0x10
refused "--cache-mem 2^64" "--cache-mem" "${F[@]}" --cache-mem 16777216T
refused "--max-data-size 0" "--max-data-size" "${F[@]}" --max-data-size 0
refused "--max-files -1" "--max-files" "${F[@]}" --max-files -1
refused "--data-classes huge" "--data-classes" "${F[@]}" --data-classes 99999999999999999999
refused "--max-tensor-size 0" "--max-tensor-size" inspect "$M" --max-tensor-size 0
refused "--max-tensor-size 1.5G" "--max-tensor-size" inspect "$M" --max-tensor-size 1.5G
refused "test-data --rtol inf" "--rtol" test-data "$T_TMP" --rtol inf
refused "test-data --atol 0x1" "--atol" test-data "$T_TMP" --atol 0x1
refused "predict --top 0x5" "--top" predict "$M" "$H/png_huge/a/ok.png" --top 0x5
refused "zoo --classes 1e3" "--classes" zoo resnet18 -o "$T_TMP/z.onnx" --classes 1e3
refused "run --batch 99999999999" "--batch" run "$M" --random --batch 99999999999
refused "convert --external-threshold -1" "--external-threshold" \
    convert "$M" "$T_TMP/c.onnx" --external-data --external-threshold -1
expect_rc "decimal forms are accepted: --lr 1e-3 --momentum .9 --std 0.5" 0 \
    "${F[@]}" --lr 1e-3 --momentum .9 --optimizer sgd --std 0.5 --mean 0.5 --epochs 1 \
    --seed 9223372036854775807 --threads 1 --image-size 8
[ -e "$T_TMP/z.onnx" ] && fail "no output after refused options" "$T_TMP/z.onnx exists" ||
    ok "no output after refused options"

finish
