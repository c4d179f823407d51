#!/bin/bash
# test_cuda.sh: the CUDA backend where there is no GPU: the binary needs no
# CUDA library to start (the runtime is linked in, cuDNN and cuBLASLt are
# opened at run time), --version says whether the backend is usable and why
# not, and --device cuda fails with that reason in one line (exit 1) when a
# library is missing or too old (ONNXTRAIN_CUDNN / ONNXTRAIN_CUBLASLT point
# at a missing file or at a stand-in library of an old version). In a build
# without CUDA (make CUDA=0) it only checks that --version says so.
#
#   BUILD=build bash tests/cli/test_cuda.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
need_cli

# tests/gpu/check.sh on a small bundle (the binary only): without a usable
# GPU every device check is "skipped: no CUDA device" and it exits 0; a
# build without CUDA fails its version check; no bundle fails at once.
# check_script NAME RC SPEC: runs it, expects exit RC and check.json to
# match SPEC (python3 expressions over `j`, one per line)
check_script() {
    local name=$1 want=$2 spec=$3 rc
    rm -rf "$T_TMP/gout"
    PYTHON=$PY GPU_BUNDLE=$T_TMP/bundle OUT=$T_TMP/gout bash tests/gpu/check.sh run >"$T_TMP/check.out" 2>&1
    rc=$?
    if [ "$rc" -ne "$want" ]; then
        fail "$name: exit" "expected $want, got $rc: $(tail -n 1 "$T_TMP/check.out")"
        return
    fi
    ok "$name: exit $want"
    py_checks "$name" "
import json, sys
j = json.load(open(sys.argv[1]))
for line in sys.argv[2].strip().splitlines():
    print(('ok ' if eval(line) else 'FAIL ') + line + ('' if eval(line) else ': ' + json.dumps(j)[:300]))
" "$T_TMP/gout/check.json" "$spec"
}
ot --version
if [ "$T_RC" -ne 0 ]; then
    fail "--version" "$(describe_run)"
    finish
fi
check_script "check.sh without a bundle" 1 '
j["checks"]["bundle"]["status"] == "fail"
j["failed"] == ["bundle"]'
mkdir -p "$T_TMP/pk/bin" "$T_TMP/bundle"
cp "$OT" "$T_TMP/pk/bin/"
tar -C "$T_TMP/pk" -cf - . | xz -1 >"$T_TMP/bundle/bundle.tar.xz"
if [[ $T_OUT == *"cuda: not built in"* ]]; then
    check_script "check.sh, no CUDA backend" 1 '
j["checks"]["version"]["status"] == "fail"
"no CUDA backend" in j["checks"]["version"]["detail"]'
elif [[ $T_OUT == *"cuda: built in, not usable here"* ]]; then
    check_script "check.sh, no GPU" 0 '
j["checks"]["bundle"]["status"] == "pass"
j["checks"]["version"]["status"] == "skipped: no CUDA device"
j["failed"] == []
sorted(j["skipped"]) == sorted(["version", "kernels", "node_tests", "model_tests", "fused_conv", "backward_rules", "train_20", "frozen", "nhwc_matches_nchw", "nccl_one_rank", "train_20_bf16", "train_20_fp16", "fp16_overflow_skips", "fused_dgrad_relu", "fused_conv_half", "fp16_clip_grad", "no_alloc_per_step", "host_memory_flat", "loader_not_limiting", "upload_overlap", "device_prep", "device_prep_augment", "upload_overlap_finetune", "prefix_cache_device", "sanitizer", "plan_cache", "bench_full_bf16", "bench_cold_start", "bench_finetune", "bench_feature_extract", "bench_infer_b1", "bench_infer_b256", "bench_full_fp32", "bench_host_memory"])
all(v["status"] != "pass" for k, v in j["checks"].items() if k != "bundle")'
fi
if [[ $T_OUT == *"cuda: not built in"* ]]; then
    ok "--version: cuda not built in"
    echo "skipped: the loader checks (this build has no CUDA backend)"
    finish
fi
matches "$T_OUT" "cpu: built in, usable" && ok "--version lists cpu" ||
    fail "--version lists cpu" "$T_OUT"
matches "$T_OUT" "cuda: built in, " && ok "--version lists cuda" ||
    fail "--version lists cuda" "$T_OUT"

# no CUDA library among the binary's dynamic dependencies
if ldd "$OT" | grep -E 'libcuda|libcudart|libcudnn|libcublas' >"$T_TMP/ldd"; then
    fail "no CUDA library linked" "$(tr '\n' ' ' <"$T_TMP/ldd")"
else
    ok "no CUDA library linked"
fi

NODE=/usr/share/libonnx-testdata/data/node/test_relu
MODEL=$NODE/model.onnx

# stand-ins: every symbol the loader looks up, versions too old
fns_dnn="cudnnGetErrorString cudnnGetLastErrorString cudnnCreate cudnnDestroy cudnnSetStream
    cudnnBackendCreateDescriptor cudnnBackendDestroyDescriptor cudnnBackendFinalize
    cudnnBackendSetAttribute cudnnBackendGetAttribute cudnnBackendExecute"
fns_lt="cublasLtGetStatusString cublasLtCreate cublasLtDestroy cublasLtMatmul
    cublasLtMatmulDescCreate cublasLtMatmulDescDestroy cublasLtMatmulDescSetAttribute
    cublasLtMatrixLayoutCreate cublasLtMatrixLayoutDestroy cublasLtMatrixLayoutSetAttribute
    cublasLtMatmulPreferenceCreate cublasLtMatmulPreferenceDestroy
    cublasLtMatmulPreferenceSetAttribute cublasLtMatmulAlgoGetHeuristic
    cublasLtMatrixLayoutGetAttribute"
{
    echo '#include <stddef.h>'
    echo 'size_t cudnnGetVersion(void) { return 8907; }'
    for f in $fns_dnn; do echo "void $f(void) {}"; done
} >"$T_TMP/dnn.c"
{
    echo '#include <stddef.h>'
    echo 'size_t cublasLtGetVersion(void) { return 110203; }'
    for f in $fns_lt; do echo "void $f(void) {}"; done
} >"$T_TMP/lt.c"
if ! cc -shared -fPIC -o "$T_TMP/libcudnn_old.so" "$T_TMP/dnn.c" ||
    ! cc -shared -fPIC -o "$T_TMP/libcublasLt_old.so" "$T_TMP/lt.c"; then
    fail setup "cannot build the stand-in libraries"
    finish
fi

# expect_cuda_error NAME FRAGMENT VAR=VALUE...: --version names the reason,
# and run --device cuda fails with it in one line
expect_cuda_error() {
    local name=$1 frag=$2
    shift 2
    T_OUT=$(env "$@" "$OT" --version 2>&1)
    matches "$T_OUT" "cuda: built in, not usable here: $frag" && ok "$name: --version" ||
        fail "$name: --version" "$T_OUT"
    export "$@"
    expect_error "$name: run --device cuda" "device 'cuda:0' is not usable: $frag" \
        run "$MODEL" --random --device cuda --output-dir "$T_TMP/out"
    unset "${@%%=*}"
    [ ! -e "$T_TMP/out" ] && ok "$name: nothing written" || fail "$name: nothing written" "out"
}

expect_cuda_error "cuDNN missing" "cuDNN library missing: " ONNXTRAIN_CUDNN=/nonexistent/libcudnn.so.9
expect_cuda_error "cuDNN too old" "cuDNN 8.9.7 is too old (9.8 or newer is needed)" \
    ONNXTRAIN_CUDNN="$T_TMP/libcudnn_old.so"
expect_cuda_error "not cuDNN" "cuDNN library unusable: it has no cudnnGetVersion" \
    ONNXTRAIN_CUDNN="$T_TMP/libcublasLt_old.so"
expect_cuda_error "cuBLASLt missing" "cuBLASLt library missing: " \
    ONNXTRAIN_CUBLASLT=/nonexistent/libcublasLt.so.13
expect_cuda_error "cuBLASLt too old" "cuBLASLt 11.2.3 is too old (12.0 or newer is needed)" \
    ONNXTRAIN_CUBLASLT="$T_TMP/libcublasLt_old.so"

# --autotune and --plan-cache: an empty folder is refused; on the CPU they
# change nothing and the cache folder is never made
expect_usage "run --plan-cache ''" run "$MODEL" --random --plan-cache ""
ot run "$MODEL" --random --seed 3 --output-dir "$T_TMP/plain"
ot run "$MODEL" --random --seed 3 --autotune --plan-cache "$T_TMP/pc" --output-dir "$T_TMP/tuned"
if [ "$T_RC" -eq 0 ] && [ ! -e "$T_TMP/pc" ] && diff -r "$T_TMP/plain" "$T_TMP/tuned" >/dev/null; then
    ok "run --autotune --plan-cache on the CPU: same outputs, no folder"
else
    fail "run --autotune --plan-cache on the CPU" "$(describe_run)"
fi

# with the toolkit's libraries and no GPU: the driver or the device is why
ot --version
case $T_OUT in
    *"cuda: built in, usable"*)
        echo "skipped: no-GPU errors (a CUDA device is usable here)" ;;
    *)
        matches "$T_OUT" "not usable here: no CUDA driver|not usable here: no CUDA device|not usable here: the CUDA driver|library missing" &&
            ok "--version: why not usable" || fail "--version: why not usable" "$T_OUT"
        expect_error "run --device cuda:7" "device 'cuda:7' is not usable" \
            run "$MODEL" --random --device cuda:7
        # the library, the library API and the options parse the same names
        ot test-data "$NODE" --device cuda
        [ "$T_RC" -eq 1 ] && [ "$T_NERR" -eq 1 ] && ok "test-data --device cuda: one line" ||
            fail "test-data --device cuda: one line" "$(describe_run)" ;;
esac

finish
