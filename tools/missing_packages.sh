#!/bin/sh
# missing_packages.sh PKG...: prints, on one line separated by spaces, the
# Debian packages among PKG that are not installed (unknown to dpkg counts as
# not installed), and nothing when all are. `make check-deps` uses it.
# dpkg-query is asked once per package and its complaints about unknown
# names are dropped, so only package names are printed.
missing=
for p in "$@"; do
    # a Multi-Arch package may answer once per architecture: all must be in
    status=$(dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null)
    if [ -z "$status" ] || printf '%s\n' "$status" | grep -qv ' installed$'; then
        missing="$missing${missing:+ }$p"
    fi
done
[ -z "$missing" ] || echo "$missing"
