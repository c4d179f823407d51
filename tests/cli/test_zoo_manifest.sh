#!/bin/bash
# test_zoo_manifest.sh: models/zoo_manifest.json (the ONNX model zoo's
# image classifiers), its listing by `onnxtrain zoo [--json]` and how the CLI
# finds it, and `make fetch-model` offline: an unknown name, and downloads
# from file:// URLs (OT_FETCH_URL_OVERRIDE) that match or miss the hash.
#
#   BUILD=build bash tests/cli/test_zoo_manifest.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
need_cli

MANIFEST=$PWD/models/zoo_manifest.json

# ------------------------------------------------------------ the manifest
py_checks "manifest" '
import json, re, sys
try:
    doc = json.load(open(sys.argv[1], encoding="utf-8"))
except Exception as e:
    print("FAIL parses: %s" % e); sys.exit(0)
print("ok parses")
models = doc.get("models")
src = doc.get("source", {})
base = src.get("url_base")
print("ok source" if isinstance(base, str) and base.startswith("https://") and
      re.fullmatch(r"[0-9a-f]{40}", src.get("commit", "")) else "FAIL source: %r" % src)
if not isinstance(models, list) or len(models) < 30:
    print("FAIL models: not a list of 30 or more"); sys.exit(0)
keys = {"name", "model", "model_path", "opset", "url", "sha256", "bytes", "input", "output",
        "layout", "head_op", "feature_cut"}
bad = [m.get("name") for m in models if not isinstance(m, dict) or not keys <= set(m)]
print("ok keys" if not bad else "FAIL keys: %r" % bad[:4])
names = [m["name"] for m in models]
print("ok sorted and unique" if names == sorted(set(names)) else "FAIL sorted and unique")
bad = [m["name"] for m in models if not re.fullmatch(r"[0-9a-f]{64}", str(m["sha256"]))]
print("ok sha256" if not bad else "FAIL sha256: %r" % bad[:4])
bad = [m["name"] for m in models
       if m["url"] != base + m["model_path"] or
       not m["model_path"].endswith("/" + m["name"] + ".onnx")]
print("ok url" if not bad else "FAIL url: %r" % bad[:4])
bad = [m["name"] for m in models
       if not isinstance(m["opset"], int) or not 1 <= m["opset"] <= 30 or
       not isinstance(m["bytes"], int) or m["bytes"] < 1000]
print("ok opset and bytes" if not bad else "FAIL opset and bytes: %r" % bad[:4])
def port_ok(p):
    return p is None or (isinstance(p.get("name"), str) and isinstance(p.get("shape"), list) and
                         all(isinstance(d, (int, str)) for d in p["shape"]))
bad = [m["name"] for m in models if not port_ok(m["input"]) or not port_ok(m["output"])]
print("ok io" if not bad else "FAIL io: %r" % bad[:4])
bad = [m["name"] for m in models if m["layout"] not in ("NCHW", "NHWC") or
       m["head_op"] not in (None, "Gemm", "Conv", "MatMul") or
       (m["input"] and len(m["input"]["shape"]) == 4 and
        m["input"]["shape"][1 if m["layout"] == "NCHW" else 3] != 3)]
print("ok layout and head" if not bad else "FAIL layout and head: %r" % bad[:4])
want = ["resnet18-v1-7", "resnet18-v2-7", "resnet34-v1-7", "resnet50-v1-7", "resnet50-v2-7",
        "resnet101-v1-7", "resnet152-v2-7", "mobilenetv2-7", "squeezenet1.0-12",
        "squeezenet1.1-7", "densenet-12", "vgg16-7", "vgg16-bn-7", "vgg19-7", "vgg19-bn-7",
        "bvlcalexnet-12", "googlenet-12", "inception-v1-12", "inception-v2-9", "shufflenet-9",
        "shufflenet-v2-12", "efficientnet-lite4-11", "caffenet-12", "zfnet512-12"]
miss = sorted(set(want) - set(names))
print("ok families" if not miss else "FAIL families: missing %r" % miss)
r18 = {m["name"]: m for m in models}.get("resnet18-v1-7", {})
print("ok resnet18-v1-7" if r18.get("input") == {"name": "data", "shape": ["N", 3, 224, 224],
      "type": "tensor(float)"} and r18.get("head_op") == "Gemm" else "FAIL resnet18-v1-7: %r" % r18)
' "$MANIFEST"

# ------------------------------------------------------------ onnxtrain zoo
ONNXTRAIN_ZOO_MANIFEST=$MANIFEST ot zoo
if [ "$T_RC" -eq 0 ] && [[ $T_OUT == *resnet18* ]] && [[ $T_OUT == *"resnet18-v1-7 "* ]] &&
    [[ $T_OUT == *"squeezenet1.1-7 "* ]] && [[ $T_OUT == *"[N,3,224,224]"* ]] &&
    [[ $T_OUT == *"fetch-model"* ]]; then
    ok "zoo lists the builders and the manifest"
else
    fail "zoo lists the manifest" "$(describe_run)"
fi
n_listed=$(grep -cE '^  [a-z0-9._-]+ +[0-9]+  ' <<<"$T_OUT")
n_manifest=$("$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["models"]))' "$MANIFEST")
if [ "$n_listed" = "$n_manifest" ]; then ok "zoo lists every entry"; else
    fail "zoo lists every entry" "$n_listed rows for $n_manifest entries"; fi

ONNXTRAIN_ZOO_MANIFEST=$MANIFEST ot zoo --json
if [ "$T_RC" -ne 0 ]; then
    fail "zoo --json" "$(describe_run)"
else
    printf '%s\n' "$T_OUT" >"$T_TMP/zoo.json"
    py_checks "zoo --json" '
import json, sys
try:
    got = json.load(open(sys.argv[1]))
except Exception as e:
    print("FAIL valid JSON: %s" % e); sys.exit(0)
print("ok valid JSON")
want = json.load(open(sys.argv[2]))
print("ok builders" if "resnet18" in got.get("builders", []) else "FAIL builders: %r" % got.get("builders"))
print("ok models as in the manifest" if got.get("models") == want["models"] else "FAIL models differ")
print("ok manifest path" if got.get("manifest") == sys.argv[2] else "FAIL manifest path: %r" % got.get("manifest"))
' "$T_TMP/zoo.json" "$MANIFEST"
fi
expect_usage "zoo --json NAME" zoo resnet18 --json
ONNXTRAIN_ZOO_MANIFEST=$MANIFEST expect_error "zoo with a manifest name" "fetch-model&resnet18-v1-7" \
    zoo resnet18-v1-7 -o "$T_TMP/x.onnx"

# where the manifest is found: next to the build (build/ or build/*/) ...
exe_dir=$(cd "$(dirname "$OT")" && pwd)
if [ -f "$exe_dir/../models/zoo_manifest.json" ] || [ -f "$exe_dir/../../models/zoo_manifest.json" ]; then
    if (unset ONNXTRAIN_ZOO_MANIFEST; ot zoo; [ "$T_RC" -eq 0 ] && [[ $T_OUT == *"resnet18-v1-7 "* ]])
    then ok "zoo finds the manifest next to the build"; else
        fail "zoo finds the manifest next to the build" "not listed"; fi
fi
# ... in an installed layout (PREFIX/bin, PREFIX/share/onnxtrain), and nowhere
mkdir -p "$T_TMP/prefix/bin" "$T_TMP/prefix/share/onnxtrain" "$T_TMP/lone"
cp "$OT" "$T_TMP/prefix/bin/onnxtrain"
cp "$OT" "$T_TMP/lone/onnxtrain"
cp "$MANIFEST" "$T_TMP/prefix/share/onnxtrain/zoo_manifest.json"
if (
    unset ONNXTRAIN_ZOO_MANIFEST
    OT=$T_TMP/prefix/bin/onnxtrain ot zoo --json
    [ "$T_RC" -eq 0 ] && [[ $T_OUT == *"\"manifest\": \"$(cd "$T_TMP" && pwd -P)/prefix/share/onnxtrain/zoo_manifest.json\""* ]]
); then ok "zoo finds an installed manifest"; else
    fail "zoo finds an installed manifest" "not found under $T_TMP/prefix/share/onnxtrain"; fi
if (
    unset ONNXTRAIN_ZOO_MANIFEST
    cd "$T_TMP/lone" || exit 1
    OT=./onnxtrain ot zoo
    [ "$T_RC" -eq 0 ] && [[ $T_OUT == *resnet18* ]] && [[ $T_OUT == *"no zoo manifest"* ]] || exit 1
    OT=./onnxtrain ot zoo --json
    [ "$T_RC" -eq 0 ] && [[ $T_OUT == *'"manifest": null'* ]] && [[ $T_OUT == *'"models": []'* ]]
); then ok "zoo without a manifest lists the builders"; else
    fail "zoo without a manifest lists the builders" "unexpected output"; fi

# a manifest named by the variable must be there and valid
ONNXTRAIN_ZOO_MANIFEST=$T_TMP/missing.json expect_error "zoo: missing manifest" \
    "missing.json&cannot open" zoo
printf '{"models": [\n  {"name": "a", "opset": 7,}\n]}\n' >"$T_TMP/broken.json"
ONNXTRAIN_ZOO_MANIFEST=$T_TMP/broken.json expect_error "zoo: broken manifest names the byte" \
    "broken.json&byte 40" zoo
printf '{"models": [{"name": "a"}]}' >"$T_TMP/noopset.json"
ONNXTRAIN_ZOO_MANIFEST=$T_TMP/noopset.json expect_error "zoo: entry without opset" \
    "models[0]&opset" zoo

# ------------------------------------------------------------ make fetch-model
# fetch NAME DEST [ENV...]: runs the make target; sets F_RC and F_ERR.
fetch() {
    local name=$1 dest=$2
    shift 2
    env "$@" make --no-print-directory -s BUILD="$BUILD" fetch-model NAME="$name" DEST="$dest" \
        >"$T_TMP/fetch.out" 2>"$T_TMP/fetch.err" </dev/null
    F_RC=$?
    F_ERR=$(cat "$T_TMP/fetch.err")
}

fetch no-such-model-7 "$T_TMP/zoo"
if [ "$F_RC" -ne 0 ] && matches "$F_ERR" "unknown model&no-such-model-7" &&
    [ -z "$(ls -A "$T_TMP/zoo" 2>/dev/null)" ]; then
    ok "fetch-model: unknown name"
else
    fail "fetch-model: unknown name" "exit $F_RC: $(first_line "$F_ERR")"
fi
fetch ../evil "$T_TMP/zoo"
if [ "$F_RC" -ne 0 ] && matches "$F_ERR" "invalid model name"; then ok "fetch-model: bad name"; else
    fail "fetch-model: bad name" "exit $F_RC: $(first_line "$F_ERR")"; fi

if ! command -v curl >/dev/null 2>&1; then
    echo "skip fetch-model downloads (curl is not installed)"
else
    # a model file and a manifest whose entry holds its hash
    head -c 100000 /dev/urandom >"$T_TMP/model.bin"
    sum=$(sha256sum "$T_TMP/model.bin" | cut -d ' ' -f 1)
    "$PY" -c '
import json, sys
doc = json.load(open(sys.argv[1]))
m = dict(doc["models"][0], name="tiny-7", sha256=sys.argv[3],
         url="https://example.invalid/tiny-7.onnx", model_path="x/tiny-7.onnx")
doc["models"] = [m]
json.dump(doc, open(sys.argv[2], "w"))
' "$MANIFEST" "$T_TMP/tiny.json" "$sum"
    M=ONNXTRAIN_ZOO_MANIFEST=$T_TMP/tiny.json

    fetch tiny-7 "$T_TMP/zoo" "$M" OT_FETCH_URL_OVERRIDE="file://$T_TMP/model.bin"
    if [ "$F_RC" -eq 0 ] && cmp -s "$T_TMP/model.bin" "$T_TMP/zoo/tiny-7.onnx" &&
        [ "$(ls -A "$T_TMP/zoo")" = tiny-7.onnx ]; then
        ok "fetch-model: matching hash is written"
    else
        fail "fetch-model: matching hash is written" "exit $F_RC: $(first_line "$F_ERR"); $(ls -A "$T_TMP/zoo" 2>&1)"
    fi
    fetch tiny-7 "$T_TMP/zoo" "$M" OT_FETCH_URL_OVERRIDE="file://$T_TMP/nothing-here"
    if [ "$F_RC" -eq 0 ] && matches "$(cat "$T_TMP/fetch.out")" "already there"; then
        ok "fetch-model: a verified file is kept"
    else
        fail "fetch-model: a verified file is kept" "exit $F_RC: $(first_line "$F_ERR")"
    fi

    head -c 100000 /dev/urandom >"$T_TMP/other.bin"
    fetch tiny-7 "$T_TMP/zoo2" "$M" OT_FETCH_URL_OVERRIDE="file://$T_TMP/other.bin"
    if [ "$F_RC" -ne 0 ] && matches "$F_ERR" "sha-256 mismatch&$sum" &&
        [ -z "$(ls -A "$T_TMP/zoo2" 2>/dev/null)" ]; then
        ok "fetch-model: hash mismatch leaves nothing"
    else
        fail "fetch-model: hash mismatch leaves nothing" "exit $F_RC: $(first_line "$F_ERR"); left: $(ls -A "$T_TMP/zoo2" 2>&1)"
    fi
    # a stale file of the wrong content is not replaced by a bad download
    cp "$T_TMP/other.bin" "$T_TMP/zoo2/tiny-7.onnx"
    fetch tiny-7 "$T_TMP/zoo2" "$M" OT_FETCH_URL_OVERRIDE="file://$T_TMP/other.bin"
    if [ "$F_RC" -ne 0 ] && [ "$(ls -A "$T_TMP/zoo2")" = tiny-7.onnx ] &&
        cmp -s "$T_TMP/other.bin" "$T_TMP/zoo2/tiny-7.onnx"; then
        ok "fetch-model: mismatch keeps the old file and no temporary"
    else
        fail "fetch-model: mismatch keeps the old file and no temporary" "left: $(ls -A "$T_TMP/zoo2" 2>&1)"
    fi

    fetch tiny-7 "$T_TMP/zoo3" "$M" OT_FETCH_URL_OVERRIDE="file://$T_TMP/nothing-here"
    if [ "$F_RC" -ne 0 ] && matches "$F_ERR" "download&failed" &&
        [ -z "$(ls -A "$T_TMP/zoo3" 2>/dev/null)" ]; then
        ok "fetch-model: failed download leaves nothing"
    else
        fail "fetch-model: failed download leaves nothing" "exit $F_RC: $(first_line "$F_ERR"); left: $(ls -A "$T_TMP/zoo3" 2>&1)"
    fi
fi

finish
