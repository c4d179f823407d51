#!/bin/bash
# test_install.sh: `make install` into a scratch prefix, then build and run
# docs/example.c against the installed copy through pkg-config, shared and
# static (a copy, and a fine-tune, evaluation and export on the test
# fixtures), and run the installed CLI. Also: DESTDIR staging and uninstall.
#
#   BUILD=build bash tests/cli/test_install.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh

PREFIX=$T_TMP/prefix
MODEL=/usr/share/libonnx-testdata/data/node/test_relu/model.onnx
VERSION=$(sed -n 's/^#define OT_VERSION_STRING "\(.*\)"/\1/p' include/onnxtrain.h)
CC=${CC:-cc}
export PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig
unset PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR

# A sanitizer build's library needs the sanitizer runtimes at link time.
SAN_ARGS=()
SAN_FLAGS=()
if [ -f "$BUILD/libonnxtrain.a" ] && nm "$BUILD/libonnxtrain.a" 2>/dev/null | grep -q __asan_; then
    SAN_ARGS=(SAN=1)
    SAN_FLAGS=(-fsanitize=address,undefined)
fi

# Runs "make install" (or another target) quietly; output to $T_TMP/make.log.
run_make() {
    make --no-print-directory -s BUILD="$BUILD" "${SAN_ARGS[@]}" "$@" >"$T_TMP/make.log" 2>&1
}

# --------------------------------------------------------------- make install
if run_make install PREFIX="$PREFIX"; then
    ok "make install"
else
    fail "make install" "exit $?: $(tail -n 3 "$T_TMP/make.log" | tr '\n' ' ')"
    finish
fi

for f in bin/onnxtrain lib/libonnxtrain.a lib/libonnxtrain.so lib/libonnxtrain.so.0 \
    include/onnxtrain.h lib/pkgconfig/onnxtrain.pc; do
    if [ -e "$PREFIX/$f" ]; then ok "installed $f"; else fail "installed $f" "missing"; fi
done
if [ -x "$PREFIX/bin/onnxtrain" ]; then ok "bin/onnxtrain is executable"; else
    fail "bin/onnxtrain is executable" "mode $(stat -c %a "$PREFIX/bin/onnxtrain" 2>&1)"
fi
if [ "$(readlink "$PREFIX/lib/libonnxtrain.so")" = libonnxtrain.so.0 ]; then
    ok "libonnxtrain.so -> libonnxtrain.so.0"
else
    fail "libonnxtrain.so -> libonnxtrain.so.0" "link is '$(readlink "$PREFIX/lib/libonnxtrain.so")'"
fi
soname=$(objdump -p "$PREFIX/lib/libonnxtrain.so.0" 2>/dev/null | awk '$1 == "SONAME" {print $2}')
if [ "$soname" = libonnxtrain.so.0 ]; then ok "soname"; else
    fail "soname" "expected libonnxtrain.so.0, got '$soname'"
fi

# --------------------------------------------------------------- pkg-config
pc_version=$(pkg-config --modversion onnxtrain 2>&1)
if [ "$pc_version" = "$VERSION" ]; then ok "pkg-config --modversion"; else
    fail "pkg-config --modversion" "expected $VERSION, got '$pc_version'"
fi
pc_cflags=$(pkg-config --cflags onnxtrain 2>&1)
if [[ " $pc_cflags " == *" -I$PREFIX/include "* ]]; then ok "pkg-config --cflags"; else
    fail "pkg-config --cflags" "expected -I$PREFIX/include, got '$pc_cflags'"
fi
pc_libs=$(pkg-config --libs onnxtrain 2>&1)
if [[ " $pc_libs " == *" -L$PREFIX/lib "* && " $pc_libs " == *" -lonnxtrain "* ]]; then
    ok "pkg-config --libs"
else
    fail "pkg-config --libs" "expected -L$PREFIX/lib -lonnxtrain, got '$pc_libs'"
fi
pc_static=$(pkg-config --static --libs onnxtrain 2>&1)
if [[ " $pc_static " == *" -lprotobuf-c "* ]]; then ok "pkg-config --static --libs"; else
    fail "pkg-config --static --libs" "expected -lprotobuf-c too, got '$pc_static'"
fi

# --------------------------------------------------------------- example, shared
# Checks one run of an example binary on the relu model; $1 names the test.
check_example() {
    local name=$1 bin=$2 out=$T_TMP/$1.onnx rc
    shift 2
    rm -f "$out"
    env "$@" "$bin" "$MODEL" "$out" >"$T_TMP/ex.out" 2>"$T_TMP/ex.err"
    rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "$name runs" "exit $rc: $(head -n 1 "$T_TMP/ex.err")"
        return
    fi
    ok "$name runs"
    local line
    line=$(head -n 1 "$T_TMP/ex.out")
    if matches "$line" "onnxtrain $VERSION&1 nodes, 0 initializers, 0 params"; then
        ok "$name output"
    else
        fail "$name output" "expected 'onnxtrain $VERSION: ...: 1 nodes, 0 initializers, 0 params', got '$line'"
    fi
    if [ -s "$out" ]; then ok "$name wrote the copy"; else fail "$name wrote the copy" "$out missing or empty"; fi
    if [ -n "$(find "$T_TMP" -maxdepth 1 -name "$name.onnx?*" -print -quit)" ]; then
        fail "$name leaves no temporary" "$(find "$T_TMP" -maxdepth 1 -name "$name.onnx?*")"
    else
        ok "$name leaves no temporary"
    fi
    py_checks "$name copy" '
import sys, onnx
a, b = onnx.load(sys.argv[1]), onnx.load(sys.argv[2])
try:
    onnx.checker.check_model(b)
    print("ok checker")
except Exception as e:
    print("FAIL checker: %s" % str(e).splitlines()[0])
same = a.graph == b.graph and list(a.opset_import) == list(b.opset_import)
print("ok same graph" if same else "FAIL same graph: the copy differs from the original")
' "$MODEL" "$out"
}

# shellcheck disable=SC2046  # pkg-config output is meant to be split
if $CC -std=c11 -Wall -Wextra -Werror "${SAN_FLAGS[@]}" docs/example.c \
    $(pkg-config --cflags --libs onnxtrain) -o "$T_TMP/example" 2>"$T_TMP/cc.err"; then
    ok "example builds (shared)"
    check_example example-shared "$T_TMP/example" LD_LIBRARY_PATH="$PREFIX/lib"
    lib=$(LD_LIBRARY_PATH=$PREFIX/lib ldd "$T_TMP/example" | awk '$1 == "libonnxtrain.so.0" {print $3}')
    if [ "$lib" = "$PREFIX/lib/libonnxtrain.so.0" ]; then ok "example uses the installed .so"; else
        fail "example uses the installed .so" "ldd resolves libonnxtrain.so.0 to '$lib'"
    fi
else
    fail "example builds (shared)" "$(head -n 3 "$T_TMP/cc.err" | tr '\n' ' ')"
fi

# --------------------------------------------------------------- example, static
# libonnxtrain.a with the private dependencies pkg-config --static adds (which
# exist as shared libraries only, some of them: oneDNN). -l:libonnxtrain.a makes
# the linker take the archive although the .so sits beside it.
static_libs=$(pkg-config --static --libs onnxtrain | sed 's/-lonnxtrain\b/-l:libonnxtrain.a/')
# shellcheck disable=SC2046,SC2086
if $CC -std=c11 -Wall -Wextra -Werror "${SAN_FLAGS[@]}" docs/example.c \
    $(pkg-config --static --cflags onnxtrain) $static_libs \
    -o "$T_TMP/example-static" 2>"$T_TMP/cc.err"; then
    ok "example builds (static, pkg-config --static)"
    if ldd "$T_TMP/example-static" 2>&1 | grep -q libonnxtrain; then
        fail "static example needs no libonnxtrain.so" "$(ldd "$T_TMP/example-static" | grep libonnxtrain)"
    else
        ok "static example needs no libonnxtrain.so"
    fi
    check_example example-static "$T_TMP/example-static" LD_LIBRARY_PATH=
else
    fail "example builds (static, pkg-config --static)" "$(head -n 3 "$T_TMP/cc.err" | tr '\n' ' ')"
fi

# Every object of the archive, linked with only what pkg-config --static names:
# Libs.private must cover all of the library's dependencies, not only those of
# the import and export code that the example pulls in.
whole_libs=$(pkg-config --static --libs onnxtrain |
    sed 's/-lonnxtrain\b/-Wl,--whole-archive -l:libonnxtrain.a -Wl,--no-whole-archive/')
# shellcheck disable=SC2046,SC2086
if $CC -std=c11 "${SAN_FLAGS[@]}" docs/example.c $(pkg-config --static --cflags onnxtrain) \
    $whole_libs -o "$T_TMP/example-whole" 2>"$T_TMP/cc.err"; then
    ok "whole static archive links with pkg-config --static"
else
    fail "whole static archive links with pkg-config --static" \
        "$(grep -m 3 -E 'undefined reference|error' "$T_TMP/cc.err" | tr '\n' ' ')"
fi

# --------------------------------------------------------------- example, errors
if [ -x "$T_TMP/example" ]; then
    LD_LIBRARY_PATH=$PREFIX/lib "$T_TMP/example" "$T_TMP/missing.onnx" "$T_TMP/never.onnx" \
        >"$T_TMP/ex.out" 2>"$T_TMP/ex.err"
    rc=$?
    msg=$(head -n 1 "$T_TMP/ex.err")
    if [ "$rc" -eq 1 ] && matches "$msg" "missing.onnx" && [ ! -e "$T_TMP/never.onnx" ]; then
        ok "example reports a missing model"
    else
        fail "example reports a missing model" "exit $rc, stderr '$msg'"
    fi
    LD_LIBRARY_PATH=$PREFIX/lib "$T_TMP/example" "$MODEL" "$T_TMP/no/such/dir/out.onnx" \
        >"$T_TMP/ex.out" 2>"$T_TMP/ex.err"
    rc=$?
    if [ "$rc" -eq 1 ] && [ -s "$T_TMP/ex.err" ]; then ok "example reports an unwritable output"; else
        fail "example reports an unwritable output" "exit $rc, stderr '$(head -n 1 "$T_TMP/ex.err")'"
    fi
fi

# --------------------------------------------------------------- example, fine-tuning
# The installed library fine-tunes the ResNet-18 fixture on the tiny CIFAR set
# at 32x32, evaluates the written model and exports it, through the public
# header only.
FX_BN=$BUILD/fixtures/resnet18_bn.onnx
TINY=$BUILD/tiny_cifar
if [ -x "$T_TMP/example" ] && [ -f "$FX_BN" ] && [ -d "$TINY" ]; then
    rm -f "$T_TMP/tuned.onnx"
    LD_LIBRARY_PATH=$PREFIX/lib "$T_TMP/example" "$FX_BN" "$TINY" "$T_TMP/tuned.onnx" 32 \
        >"$T_TMP/ft.out" 2>"$T_TMP/ft.err"
    rc=$?
    out=$(cat "$T_TMP/ft.out")
    if [ "$rc" -eq 0 ] && matches "$out" "new head: 10 classes&training on 96 images&epoch 2/2&evaluated&top-1&on 48 images&wrote" &&
        [ -s "$T_TMP/tuned.onnx" ]; then
        ok "example fine-tunes, evaluates and exports"
    else
        fail "example fine-tunes, evaluates and exports" "exit $rc: $(head -n 2 "$T_TMP/ft.err") $(tail -n 3 "$T_TMP/ft.out")"
    fi
    py_checks "example's tuned model" '
import sys, onnx
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m)
d = [x.dim_value for x in m.graph.output[0].type.tensor_type.shape.dim]
print("ok 10 outputs" if d[-1] == 10 else "FAIL 10 outputs: %r" % d)
md = {p.key: p.value for p in m.metadata_props}
print("ok metadata" if md.get("onnxtrain.image_size") == "32" else "FAIL metadata: %r" % md)
' "$T_TMP/tuned.onnx"
    LD_LIBRARY_PATH=$PREFIX/lib "$T_TMP/example" "$FX_BN" "$T_TMP/no_data" "$T_TMP/never.onnx" 32 \
        >"$T_TMP/ft.out" 2>"$T_TMP/ft.err"
    rc=$?
    if [ "$rc" -eq 1 ] && matches "$(cat "$T_TMP/ft.err")" "no_data" && [ ! -e "$T_TMP/never.onnx" ]; then
        ok "example reports missing data"
    else
        fail "example reports missing data" "exit $rc, stderr '$(head -n 1 "$T_TMP/ft.err")'"
    fi
else
    fail "example fine-tunes" "needs the example, $FX_BN and $TINY (make test builds them)"
fi

# --------------------------------------------------------------- installed CLI
OT=$PREFIX/bin/onnxtrain
ot --version
if [ "$T_RC" -eq 0 ] && matches "$T_OUT" "$VERSION"; then ok "installed onnxtrain --version"; else
    fail "installed onnxtrain --version" "$(describe_run), stdout '$(first_line "$T_OUT")'"
fi
ot inspect "$MODEL"
if [ "$T_RC" -eq 0 ] && matches "$T_OUT" "nodes: 1"; then ok "installed onnxtrain inspect"; else
    fail "installed onnxtrain inspect" "$(describe_run), stdout '$(first_line "$T_OUT")'"
fi

# --------------------------------------------------------------- DESTDIR, uninstall
STAGE=$T_TMP/stage
if run_make install DESTDIR="$STAGE" PREFIX=/opt/ot; then
    pc=$STAGE/opt/ot/lib/pkgconfig/onnxtrain.pc
    if [ -f "$STAGE/opt/ot/bin/onnxtrain" ] && grep -qx 'prefix=/opt/ot' "$pc" 2>/dev/null; then
        ok "DESTDIR staging"
    else
        fail "DESTDIR staging" "expected $STAGE/opt/ot/... with prefix=/opt/ot in the .pc"
    fi
else
    fail "DESTDIR staging" "make install exit: $(tail -n 1 "$T_TMP/make.log")"
fi

if run_make uninstall PREFIX="$PREFIX"; then
    left=$(find "$PREFIX" -type f -o -type l)
    if [ -z "$left" ]; then ok "make uninstall"; else
        fail "make uninstall" "left: $(echo "$left" | tr '\n' ' ')"
    fi
else
    fail "make uninstall" "exit: $(tail -n 1 "$T_TMP/make.log")"
fi

finish
