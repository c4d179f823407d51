#!/bin/bash
# test_hostile_files.sh: hostile file names given to the commands, with the
# small models of tests/hostile/files.py and a tiny CIFAR-format data set:
#   - outputs that name a device node (made here with mknod, never the real
#     /dev/null): written directly, the node stays a device; /dev/full gives
#     an error; a FIFO without a reader, a socket and a folder are refused;
#   - FIFOs, sockets and devices given as inputs (model, .pb input, image,
#     checkpoint, external data, data-set files, class names, the zoo
#     manifest) are refused at once, without waiting for a writer;
#   - an output that is the same file as an input (same path, hard link,
#     symbolic link) is refused;
#   - modes: new files follow the umask, replaced files keep their mode, and
#     a symbolic link as output keeps the link;
#   - external data: a new data file per write, the old one removed, and a
#     failed model rename (a bind mount over the target) leaves the old pair
#     whole;
#   - run --output-dir on a full tmpfs: the old outputs stay, none mixed;
#   - temporary files: removed on SIGTERM/SIGINT (strace holds the write in
#     fsync), and stale ones of dead writers removed on the next write, live
#     ones kept.
# Parts that need mknod, mount or strace say "skipped" when they cannot run.
#
#   BUILD=build bash tests/cli/test_hostile_files.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
need_cli
T_TIMEOUT=${T_HOSTILE_TIMEOUT:-30}

D=$T_TMP
MNT=()
cleanup() {
    local m
    for m in "${MNT[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
    rm -rf "$T_TMP"
}
trap cleanup EXIT

if ! "$PY" tests/hostile/files.py "$D" >"$D/make.log" 2>&1 ||
    ! "$PY" tests/fixtures/make_tiny_cifar.py "$D/data" 32 16 >>"$D/make.log" 2>&1; then
    fail setup "inputs: $(tail -n 1 "$D/make.log")"
    finish
fi
TINY=$D/tiny.onnx
TWO=$D/two.onnx
FT=(--data "$D/data" --classes 10 --image-size 32 --epochs 1 --batch-size 16 --threads 1)

skipped() { echo "skipped $1: $2"; }

# a checkpoint, for export
CK=$D/ck.onnx
ot finetune "$TINY" "${FT[@]}" -o "$D/ck_out.onnx" --checkpoint "$CK"
if [ "$T_RC" -ne 0 ] || [ ! -s "$CK" ]; then
    fail setup "finetune --checkpoint: $(describe_run)"
    finish
fi

# Special files in the test folder.
S=$D/special
mkdir -p "$S"
mkfifo "$S/fifo"
HAVE_DEV=0
if mknod "$S/null" c 1 3 2>/dev/null && mknod "$S/full" c 1 7 2>/dev/null; then
    chmod 666 "$S/null" "$S/full"
    HAVE_DEV=1
fi
"$PY" -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$S/sock" 2>/dev/null

is_chr() { [ -c "$1" ] && [ ! -L "$1" ]; }

# ---------------------------------------------------------- device outputs
if [ "$HAVE_DEV" = 1 ]; then
    expect_rc "convert -o null device" 0 convert "$TINY" "$S/null"
    if is_chr "$S/null"; then ok "convert -o null: still a device"; else fail "convert -o null: still a device" "$(ls -l "$S/null")"; fi
    expect_rc "export -o null device" 0 export "$CK" "$S/null"
    expect_error "convert -o full device" "full&no space" convert "$TINY" "$S/full"
    if is_chr "$S/full"; then ok "convert -o full: still a device"; else fail "convert -o full: still a device" "$(ls -l "$S/full")"; fi
    expect_rc "run --output-dir with a device output" 0 run "$TWO" --input "$D/x.pb" --output-dir "$S/odir"
    ot finetune "$TINY" "${FT[@]}" -o "$S/null" --log "$S/null" --checkpoint "$S/null"
    if [ "$T_RC" -eq 0 ] && is_chr "$S/null"; then ok "finetune -o/--log/--checkpoint null"; else fail "finetune -o/--log/--checkpoint null" "$(describe_run); $(ls -l "$S/null")"; fi
    # a checkpoint that cannot be written costs the checkpoint, not the model:
    # a warning, training goes on, -o is written, one error line, exit 1
    ot finetune "$TINY" "${FT[@]}" -o "$D/ft_full.onnx" --checkpoint "$S/full"
    if [ "$T_RC" -eq 1 ] && matches "$(printf '%s\n' "$T_ERR" | tail -n 1)" "error&full&no space&written to"; then
        ok "finetune --checkpoint full: exit 1, the error last"
    else
        fail "finetune --checkpoint full: exit 1, the error last" "$(describe_run)"
    fi
    if is_chr "$S/full" && [ -s "$D/ft_full.onnx" ]; then ok "finetune --checkpoint full: device kept, model written"; else fail "finetune --checkpoint full" "$(ls -l "$S/full" "$D/ft_full.onnx" 2>&1)"; fi
    expect_error "convert --external-data -o null" "regular file" convert "$TINY" "$S/null" --external-data --external-threshold 1
    if [ -z "$(find "$S" -name 'null.*')" ]; then ok "nothing written beside the device"; else fail "nothing written beside the device" "$(ls "$S")"; fi
    ln -s "$S/null" "$D/link_to_null"
    expect_rc "convert -o link to device" 0 convert "$TINY" "$D/link_to_null"
    if [ -L "$D/link_to_null" ] && is_chr "$S/null"; then ok "link to device kept"; else fail "link to device kept" "$(ls -l "$D/link_to_null" "$S/null")"; fi
else
    skipped "device outputs" "mknod is not permitted here"
fi
expect_error "convert -o FIFO without a reader" "fifo&no process is reading" convert "$TINY" "$S/fifo"
if [ -p "$S/fifo" ]; then ok "FIFO output: still a FIFO"; else fail "FIFO output: still a FIFO" "$(ls -l "$S/fifo")"; fi
# a FIFO with a reader (as /dev/stdout in a pipe) takes the bytes
cat "$S/fifo" >"$D/from_fifo.onnx" &
READER=$!
expect_rc "convert -o FIFO with a reader" 0 convert "$TINY" "$S/fifo"
wait "$READER"
if cmp -s "$D/from_fifo.onnx" "$TINY" && [ -p "$S/fifo" ]; then ok "FIFO reader got the model"; else fail "FIFO reader got the model" "$(ls -l "$D/from_fifo.onnx" "$S/fifo")"; fi
if [ -S "$S/sock" ]; then
    expect_error "convert -o socket" "sock&not a regular file" convert "$TINY" "$S/sock"
    if [ -S "$S/sock" ]; then ok "socket output: still a socket"; else fail "socket output: still a socket" "$(ls -l "$S/sock")"; fi
else
    skipped "socket output" "no unix socket could be made"
fi
mkdir -p "$D/afolder"
expect_error "convert -o folder" "afolder&folder" convert "$TINY" "$D/afolder"

# ------------------------------------------------------------- FIFO inputs
# each must fail at once (the timeout turns a wait for a writer into a failure)
T_SAVE=$T_TIMEOUT
T_TIMEOUT=10
F=$S/fifo
expect_error "inspect FIFO" "fifo&not a regular file" inspect "$F"
expect_error "convert FIFO" "fifo&not a regular file" convert "$F" "$D/x.onnx"
expect_error "run FIFO model" "fifo&not a regular file" run "$F" --random
expect_error "run --input FIFO" "fifo&not a regular file" run "$TWO" --input "$F"
expect_error "predict FIFO image" "fifo&not a regular file" predict "$TINY" "$F"
expect_error "export FIFO" "fifo&not a regular file" export "$F" "$D/x.onnx"
expect_error "eval FIFO model" "fifo&not a regular file" eval "$F" --data "$D/data" --image-size 32
expect_error "finetune FIFO model" "fifo&not a regular file" finetune "$F" "${FT[@]}" -o "$D/x.onnx"
expect_error "finetune --resume FIFO" "fifo&not a regular file" finetune "$TINY" "${FT[@]}" -o "$D/x.onnx" --resume "$F"
if [ -S "$S/sock" ]; then
    expect_error "inspect socket" "sock&not a regular file" inspect "$S/sock"
fi
if [ "$HAVE_DEV" = 1 ]; then
    expect_error "inspect device" "null&not a regular file" inspect "$S/null"
    expect_error "predict device image" "null&not a regular file" predict "$TINY" "$S/null"
fi
# external data named by the model: the data file replaced by a FIFO
mkdir -p "$D/extfifo"
cp "$D/ext/m.onnx" "$D/extfifo/m.onnx"
mkfifo "$D/extfifo/m.onnx.data"
expect_error "inspect: external data FIFO" "m.onnx.data&not a regular file" inspect "$D/extfifo/m.onnx"
expect_error "run: external data FIFO" "m.onnx.data&not a regular file" run "$D/extfifo/m.onnx" --random
# data sets: a CIFAR batch, the class names file
# (the readers that look for files in a folder pass over, or refuse, what is
# not a regular file; the point here is that none waits on it)
rm -rf "$D/dfifo"
cp -r "$D/data" "$D/dfifo"
rm "$D/dfifo/data_batch_1.bin"
mkfifo "$D/dfifo/data_batch_1.bin"
expect_error "finetune: CIFAR batch a FIFO" "data_batch_1.bin" \
    finetune "$TINY" --data "$D/dfifo" --classes 10 --image-size 32 --epochs 1 -o "$D/x.onnx"
rm -rf "$D/dfifo"
cp -r "$D/data" "$D/dfifo"
rm "$D/dfifo/batches.meta.txt"
mkfifo "$D/dfifo/batches.meta.txt"
expect_error "finetune: CIFAR class names a FIFO" "batches.meta.txt&not a regular file" \
    finetune "$TINY" --data "$D/dfifo" "${FT[@]:2}" -o "$D/x.onnx"
rm -f "$D/x.onnx"
# image folders: one image a FIFO
mkdir -p "$D/imgs/a" "$D/imgs/b"
cp "$D/img.png" "$D/imgs/a/1.png"
cp "$D/img.png" "$D/imgs/b/1.png"
mkfifo "$D/imgs/b/2.png"
expect_rc "finetune: image folder with a FIFO" 0 \
    finetune "$TINY" --data "$D/imgs" --classes 2 --image-size 32 --epochs 1 -o "$D/x.onnx"
# an IDX file named directly
mkfifo "$D/train-images-idx3-ubyte"
expect_error "eval: IDX images a FIFO" "not a regular file|idx" \
    eval "$TINY" --data "$D/train-images-idx3-ubyte" --image-size 32
# the zoo manifest
ONNXTRAIN_ZOO_MANIFEST=$F expect_error "zoo: manifest FIFO" "fifo&not a regular file" zoo
T_TIMEOUT=$T_SAVE

# ------------------------------------------------- output same as an input
cp "$TINY" "$D/same.onnx"
cp "$TINY" "$D/same_copy.onnx"
expect_error "export X X" "same file" export "$D/same.onnx" "$D/same.onnx"
expect_error "convert X X" "same file" convert "$D/same.onnx" "$D/same.onnx"
ln "$D/same.onnx" "$D/hard.onnx"
ln -s "$D/same.onnx" "$D/soft.onnx"
expect_error "convert X hard link of X" "same file" convert "$D/same.onnx" "$D/hard.onnx"
expect_error "export X symlink to X" "same file" export "$D/soft.onnx" "$D/same.onnx"
expect_error "finetune -o MODEL" "same file&model" finetune "$D/same.onnx" "${FT[@]}" -o "$D/hard.onnx"
expect_error "finetune --checkpoint MODEL" "same file&model" finetune "$D/same.onnx" "${FT[@]}" -o "$D/x.onnx" --checkpoint "$D/same.onnx"
expect_error "finetune -o RESUME" "same file&resume" finetune "$TINY" "${FT[@]}" -o "$D/same_copy.onnx" --resume "$D/same_copy.onnx"
expect_error "finetune --log MODEL" "same file&model" finetune "$D/same.onnx" "${FT[@]}" -o "$D/x.onnx" --log "$D/soft.onnx"
mkdir -p "$D/rin"
cp "$D/x.pb" "$D/rin/output_0.pb"
expect_error "run: input is an output" "same file" run "$TWO" --input "$D/rin/output_0.pb" --output-dir "$D/rin"
if cmp -s "$TINY" "$D/same.onnx" && cmp -s "$TINY" "$D/same_copy.onnx" && cmp -s "$D/x.pb" "$D/rin/output_0.pb"; then
    ok "inputs unchanged"
else
    fail "inputs unchanged" "an input was replaced"
fi

# ------------------------------------------------------------------- modes
mode() { stat -c %a "$1"; }
(umask 077 && "$OT" convert "$TINY" "$D/m077.onnx" >/dev/null 2>&1)
if [ "$(mode "$D/m077.onnx")" = 600 ]; then ok "umask 077: mode 600"; else fail "umask 077: mode 600" "mode $(mode "$D/m077.onnx")"; fi
(umask 027 && "$OT" finetune "$TINY" "${FT[@]}" -o "$D/m027.onnx" --checkpoint "$D/m027.ckpt" --log "$D/m027.csv" >/dev/null 2>&1)
if [ "$(mode "$D/m027.onnx")$(mode "$D/m027.ckpt")$(mode "$D/m027.csv")" = 640640640 ]; then
    ok "umask 027: model, checkpoint and log mode 640"
else
    fail "umask 027" "modes $(mode "$D/m027.onnx") $(mode "$D/m027.ckpt") $(mode "$D/m027.csv")"
fi
cp "$TINY" "$D/keep.onnx"
chmod 604 "$D/keep.onnx"
(umask 077 && "$OT" convert "$TWO" "$D/keep.onnx" >/dev/null 2>&1)
if [ "$(mode "$D/keep.onnx")" = 604 ] && cmp -s "$D/keep.onnx" "$TWO"; then ok "replaced file keeps mode 604"; else fail "replaced file keeps mode" "mode $(mode "$D/keep.onnx")"; fi
ln -s keep.onnx "$D/keep_link.onnx"
expect_rc "convert -o symlink" 0 convert "$TINY" "$D/keep_link.onnx"
if [ -L "$D/keep_link.onnx" ] && cmp -s "$D/keep.onnx" "$TINY"; then ok "symlink kept, its file replaced"; else fail "symlink kept" "$(ls -l "$D/keep_link.onnx" "$D/keep.onnx")"; fi

# ----------------------------------------------------------- external data
X=$D/xd
mkdir -p "$X"
expect_rc "convert --external-data (1)" 0 convert "$TINY" "$X/m.onnx" --external-data --external-threshold 1
first=$(cd "$X" && ls | grep -v '^m.onnx$')
expect_rc "convert --external-data (2)" 0 convert "$D/ext/m.onnx" "$X/m.onnx" --external-data --external-threshold 1
second=$(cd "$X" && ls | grep -v '^m.onnx$')
if [ -n "$first" ] && [ -n "$second" ] && [ "$first" != "$second" ] && [ "$(echo "$second" | wc -l)" = 1 ]; then
    ok "external data: a new file per write, the old one removed"
else
    fail "external data: a new file per write" "first: $first; second: $second"
fi
expect_rc "external data: the model runs" 0 run "$X/m.onnx" --input "$D/in.pb"
# the model's rename fails (a file bind-mounted over the target): the old
# pair must still load and give the same logits
ot run "$X/m.onnx" --input "$D/in.pb" --json
before=$T_OUT
cp "$X/m.onnx" "$D/m_copy.onnx"
if mount --bind "$D/m_copy.onnx" "$X/m.onnx" 2>/dev/null; then
    MNT+=("$X/m.onnx")
    expect_error "external data: the model's rename fails" "m.onnx&rename" convert "$TWO" "$X/m.onnx" --external-data --external-threshold 1
    umount "$X/m.onnx"
    ot run "$X/m.onnx" --input "$D/in.pb" --json
    if [ "$T_RC" -eq 0 ] && [ "$T_OUT" = "$before" ] && [ "$(cd "$X" && ls | grep -v '^m.onnx$')" = "$second" ]; then
        ok "external data: the old pair is whole"
    else
        fail "external data: the old pair is whole" "$(describe_run); files: $(ls "$X")"
    fi
else
    skipped "external data rename failure" "mount --bind is not permitted here"
fi

# ---------------------------------------------- run --output-dir, all or nothing
O=$D/full_out
mkdir -p "$O"
if mount -t tmpfs -o size=64k tmpfs "$O" 2>/dev/null; then
    MNT+=("$O")
    expect_rc "run --output-dir (first)" 0 run "$TWO" --input "$D/x.pb" --output-dir "$O"
    cp "$O/output_0.pb" "$D/old0.pb"
    cp "$O/output_1.pb" "$D/old1.pb"
    # leave one free block: the first new output fits, the second does not
    free=$(stat -f -c %a "$O")
    if [ "$free" -gt 1 ]; then
        dd if=/dev/zero of="$O/filler" bs="$(stat -f -c %S "$O")" count=$((free - 1)) 2>/dev/null
    fi
    "$PY" -c '
import sys, numpy as np
from onnx import numpy_helper
open(sys.argv[1], "wb").write(numpy_helper.from_array(np.full((1, 4), 7, np.float32), "x").SerializeToString())
' "$D/x7.pb"
    expect_error "run --output-dir on a full disk" "no space" run "$TWO" --input "$D/x7.pb" --output-dir "$O"
    if cmp -s "$O/output_0.pb" "$D/old0.pb" && cmp -s "$O/output_1.pb" "$D/old1.pb"; then
        ok "run --output-dir: the old outputs stay together"
    else
        fail "run --output-dir: all or nothing" "output_0.pb or output_1.pb changed"
    fi
    if [ -z "$(find "$O" -name '*.tmp.*')" ]; then ok "run --output-dir: no temporary files"; else fail "run --output-dir: no temporary files" "$(ls "$O")"; fi
    umount "$O"
else
    skipped "run --output-dir on a full disk" "mount -t tmpfs is not permitted here"
fi

# --------------------------------------------------------- temporary files
# stale: one of a process that is gone, one of a live process (this shell)
sh -c 'echo $$' >"$D/deadpid"
dead=$(cat "$D/deadpid")
cp "$TINY" "$D/st.onnx"
echo junk >"$D/st.onnx.tmp.$dead.1"
echo junk >"$D/st.onnx.tmp.$$.1"
echo junk >"$D/st.onnx.tmp.XXXXXX"
expect_rc "convert over a target with stale temporaries" 0 convert "$TWO" "$D/st.onnx"
if [ ! -e "$D/st.onnx.tmp.$dead.1" ] && [ -e "$D/st.onnx.tmp.$$.1" ] && [ -e "$D/st.onnx.tmp.XXXXXX" ]; then
    ok "stale temporary removed, live one kept"
else
    fail "stale temporaries" "$(ls "$D" | grep st.onnx)"
fi

# a stop signal while the output is being written: strace holds the writer
# in fsync, so the temporary file certainly exists when the signal comes
if command -v strace >/dev/null 2>&1 && strace -f -qq -o "$D/strace.probe" true 2>/dev/null; then
    for sig in TERM INT; do
        for cmd in convert export; do
            W=$D/sig_$cmd$sig
            mkdir -p "$W"
            cp "$TINY" "$W/out.onnx"
            cp "$CK" "$W/in.onnx"
            if [ "$cmd" = export ]; then args=(export "$W/in.onnx" "$W/out.onnx"); else args=(convert "$TWO" "$W/out.onnx"); fi
            timeout -k 5 30 strace -f -qq -o "$D/strace.log" -e trace=fsync -e inject=fsync:delay_enter=3000000 \
                "$OT" "${args[@]}" </dev/null >"$D/sig.out" 2>"$D/sig.err" &
            SP=$!
            for ((i = 0; i < 200; i++)); do
                [ -n "$(find "$W" -name 'out.onnx.tmp.*')" ] && break
                sleep 0.05
            done
            # the writer's process id is part of the temporary name
            tmpf=$(find "$W" -name 'out.onnx.tmp.*' | head -n 1)
            child=${tmpf##*.tmp.}
            child=${child%%.*}
            [[ $child =~ ^[0-9]+$ ]] || child=
            [ -n "$child" ] && kill -"$sig" "$child"
            wait "$SP"
            rc=$?
            if [ -n "$child" ] && [ -z "$(find "$W" -name '*.tmp.*')" ] && cmp -s "$W/out.onnx" "$TINY" && [ "$rc" -gt 128 ]; then
                ok "SIG$sig during $cmd: no temporary file, target unchanged"
            else
                fail "SIG$sig during $cmd" "exit $rc; child '$child'; files: $(ls "$W")"
            fi
        done
    done
else
    skipped "stop signals while writing" "strace cannot run here"
fi

finish
