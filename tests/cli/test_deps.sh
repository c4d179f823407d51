#!/bin/bash
# test_deps.sh: the check behind `make check-deps` (tools/missing_packages.sh)
# lists just the names of missing Debian packages: an unknown name is
# reported as itself, never as dpkg-query's complaint about it, and an
# installed package is not listed. MAKE=true keeps `make deps` from running.
#
#   BUILD=build bash tests/cli/test_deps.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "skipped (no dpkg-query)"
    finish
fi
FAKE=onnxtrain-no-such-package
out=$(sh tools/missing_packages.sh dpkg "$FAKE" 2>&1)
[ "$out" = "$FAKE" ] && ok "a fake package is listed by name" ||
    fail "a fake package is listed by name" "got '$out'"
out=$(sh tools/missing_packages.sh dpkg 2>&1)
[ -z "$out" ] && ok "nothing missing: no output" || fail "nothing missing: no output" "got '$out'"
out=$(sh tools/missing_packages.sh "$FAKE" dpkg "$FAKE-2" 2>&1)
[ "$out" = "$FAKE $FAKE-2" ] && ok "two missing, in order" || fail "two missing, in order" "got '$out'"
out=$(env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory -s check-deps DEB_PACKAGES="dpkg $FAKE" MAKE=true 2>&1)
[ "$out" = "missing packages: $FAKE" ] && ok "make check-deps names the package" ||
    fail "make check-deps names the package" "got '$out'"
finish
