#!/bin/bash
# tools/fetch_model.sh: downloads one pretrained model of the ONNX model zoo,
# as models/zoo_manifest.json records it, and checks its SHA-256. What
# `make fetch-model NAME=... [DEST=...]` runs; needs curl, sha256sum, python3
# and internet access (the onnxtrain program itself never downloads).
#
#   bash tools/fetch_model.sh NAME [DEST]      (DEST default: build/zoo)
#
# Writes DEST/NAME.onnx atomically: the download goes to a temporary file in
# DEST, which is renamed only once its SHA-256 matches the manifest's. On a
# failed download or a hash mismatch nothing is left behind. A DEST/NAME.onnx
# that is already there with the right hash is kept, and nothing downloaded.
#
#   ONNXTRAIN_ZOO_MANIFEST  the manifest to read (default: models/zoo_manifest.json
#                           next to this script's folder)
#   OT_FETCH_URL_OVERRIDE   a URL to download instead of the manifest's (for
#                           tests and mirrors: file:///..., https://mirror/...);
#                           the manifest's hash is still required
#
# Exit status: 0 done, 1 error, 2 usage.
set -u

err() {
    echo "fetch-model: error: $*" >&2
    exit 1
}

if [ $# -lt 1 ] || [ $# -gt 2 ] || [ -z "$1" ]; then
    echo "usage: make fetch-model NAME=<model> [DEST=dir]   (names: onnxtrain zoo)" >&2
    exit 2
fi
NAME=$1
DEST=${2:-build/zoo}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MANIFEST=${ONNXTRAIN_ZOO_MANIFEST:-$ROOT/models/zoo_manifest.json}

# Names are file names in DEST: no slashes, no leading dot.
if ! [[ $NAME =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]]; then
    err "invalid model name '$NAME' (see 'onnxtrain zoo' for the names)"
fi
[ -r "$MANIFEST" ] || err "cannot read the manifest $MANIFEST"
for tool in curl sha256sum python3; do
    command -v "$tool" >/dev/null 2>&1 || err "$tool is not installed"
done

# "URL SHA256" of the entry; or an error line on stderr and exit 3 for an
# unknown name, 4 for a broken manifest.
entry=$(python3 - "$MANIFEST" "$NAME" <<'EOF'
import json, re, sys
path, name = sys.argv[1], sys.argv[2]
def die(msg, code):
    print("fetch-model: error: " + msg, file=sys.stderr)
    sys.exit(code)
try:
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    models = doc["models"]
except (OSError, ValueError, KeyError, TypeError) as e:
    die("cannot parse the manifest %s: %s" % (path, e), 4)
for m in models:
    if isinstance(m, dict) and m.get("name") == name:
        url, sha = m.get("url"), m.get("sha256")
        if not isinstance(url, str) or not url or any(c.isspace() for c in url):
            die("manifest entry %s has no valid url" % name, 4)
        if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
            die("manifest entry %s has no valid sha256" % name, 4)
        print(url, sha)
        sys.exit(0)
close = sorted(m.get("name", "") for m in models
               if isinstance(m, dict) and isinstance(m.get("name"), str)
               and re.match(r"[A-Za-z]*", name).group(0).lower()
               and m["name"].lower().startswith(re.match(r"[A-Za-z]*", name).group(0).lower()))
hint = (": similar names: " + ", ".join(close[:8])) if close else ""
die("unknown model '%s' in %s%s (see 'onnxtrain zoo' for the names)" % (name, path, hint), 3)
EOF
) || exit 1 # python has said why
read -r URL SHA <<<"$entry"
URL=${OT_FETCH_URL_OVERRIDE:-$URL}
OUT=$DEST/$NAME.onnx

if [ -f "$OUT" ] && [ "$(sha256sum "$OUT" | cut -d ' ' -f 1)" = "$SHA" ]; then
    echo "fetch-model: $OUT is already there (SHA-256 ok)"
    exit 0
fi

mkdir -p "$DEST" || err "cannot create $DEST"
TMP=$(mktemp "$DEST/.$NAME.onnx.XXXXXX") || err "cannot create a temporary file in $DEST"
trap 'rm -f "$TMP"' EXIT
trap 'exit 130' INT TERM HUP

echo "fetch-model: $NAME <- $URL"
curl -fL --retry 2 --connect-timeout 30 -sS -o "$TMP" "$URL"
rc=$?
if [ $rc -ne 0 ]; then
    err "download of $URL failed (curl exit $rc); nothing written"
fi
got=$(sha256sum "$TMP" | cut -d ' ' -f 1)
if [ "$got" != "$SHA" ]; then
    err "SHA-256 mismatch for $NAME: expected $SHA, got $got; nothing written"
fi
chmod 644 "$TMP" || err "cannot set the mode of $TMP"
mv -f "$TMP" "$OUT" || err "cannot rename the download to $OUT"
trap - EXIT
echo "fetch-model: wrote $OUT ($(stat -c %s "$OUT") bytes, SHA-256 ok)"
