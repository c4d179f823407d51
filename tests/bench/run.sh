#!/bin/bash
# tests/bench/run.sh: the benchmarks (`make bench`). See tests/bench/bench.py
# and docs/bench.md.
#
#   BUILD=build [FULL=1] [ONLY=inspect,convert,infer,loader,bound,fe,ft,full,ft5,fe32,
#       ft32,full32,full_bf16,ft5_bf16,bf16 or train|train224|train32] [BENCH_REPS=7] [BENCH_INFER_REPS=3]
#       [BENCH_TRAIN_REPS=3] [BENCH_TRAIN_IMAGES=fe=512,...] [BENCH_LOADER_REPS=3]
#       bash tests/bench/run.sh
#
# For the infer workload this first builds the helpers into $BUILD/bench:
# bench_infer (tests/bench/bench_infer.c against $BUILD/libonnxtrain.a) and
# installs onnxruntime-node 1.30 into $BUILD/ort like tests/cli/test_ort.sh
# when it is not there. A failed install only leaves the onnxruntime column
# unavailable. For infer and the training workloads it builds fma_peak_*
# (tests/bench/fma_peak.c: AVX2+FMA, and AVX-512 where the CPU has it;
# -march=native on CPUs without AVX2/FMA), the FMA ceiling behind "% of
# peak". For the bound workload it builds $BUILD/bench/conv_bound
# (tests/bench/conv_bound.c against oneDNN). For the loader workload it builds $BUILD/bench/bench_loader
# (tests/bench/bench_loader.c, the same way); bench.py makes its JPEG folder
# with PIL. The training workloads need nothing else built here beyond
# $BUILD/onnxtrain: bench.py makes their fixtures and runs
# tests/bench/torch_train.py for PyTorch. The bf16 workload needs only
# $BUILD/onnxtrain and the demo's data set.
#
# Prints Markdown; writes $BUILD/bench/results.{md,json,svg}. BENCH_T0, the
# start time exported here, lets bench.py count the helpers' build in the
# run's time.
export BENCH_T0
BENCH_T0=$(date +%s.%N)
cd "$(dirname "$0")/../.." || exit 1
export BUILD=${BUILD:-build}
CC=${CC:-cc}
# what the library links with: the Makefile passes its own list (with the CUDA
# runtime when the backend is built in)
# shellcheck disable=SC2206  # a list of linker arguments
LIBS=(${OT_LDLIBS:--lprotobuf-c -ldnnl -ljpeg -lpng -lz -lm -lpthread -fopenmp})

case ",${ONLY// /,}," in
    ,, | *,infer,*) infer=1 ;;
    *) infer=0 ;;
esac

# the convolution bound: by default and when named (ONLY=bound)
case ",${ONLY// /,}," in
    ,, | *,bound,*) bound=1 ;;
    *) bound=0 ;;
esac

# the loader workload runs only when named (ONLY=loader)
case ",${ONLY// /,}," in
    *,loader,*) loader=1 ;;
    *) loader=0 ;;
esac

# the FMA ceiling: for infer and for the training workloads (fe*, ft*, full*, train*)
case ",${ONLY// /,}," in
    ,, | *,infer,* | *,fe* | *,ft* | *,full* | *,train*) fma=1 ;;
    *) fma=0 ;;
esac

if [ "$bound" = 1 ]; then
    mkdir -p "$BUILD/bench"
    if ! $CC -O2 -fopenmp tests/bench/conv_bound.c -ldnnl -o "$BUILD/bench/conv_bound"; then
        echo "bench: building tests/bench/conv_bound.c failed" >&2
        exit 1
    fi
fi

if [ "$loader" = 1 ]; then
    mkdir -p "$BUILD/bench"
    if ! $CC -O2 -fopenmp -Iinclude -Isrc -I"$BUILD/gen" tests/bench/bench_loader.c \
        "$BUILD/libonnxtrain.a" "${LIBS[@]}" -o "$BUILD/bench/bench_loader"; then
        echo "bench: building tests/bench/bench_loader.c failed" >&2
        exit 1
    fi
fi

if [ "$infer" = 1 ]; then
    mkdir -p "$BUILD/bench"
    if ! $CC -O2 -fopenmp -Iinclude -Isrc -I"$BUILD/gen" tests/bench/bench_infer.c \
        "$BUILD/libonnxtrain.a" "${LIBS[@]}" -o "$BUILD/bench/bench_infer"; then
        echo "bench: building tests/bench/bench_infer.c failed" >&2
        exit 1
    fi

    # onnxruntime-node 1.30, as tests/cli/test_ort.sh installs it.
    ORT=$BUILD/ort
    ort_version() {
        node -e 'console.log(require(process.argv[1] + "/package.json").version)' \
            "$(realpath "$ORT")/node_modules/onnxruntime-node" 2>/dev/null
    }
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        export BENCH_ORT_NOTE="node and npm are not installed"
    elif [[ $(ort_version) != 1.30.* ]]; then
        echo "bench: installing onnxruntime-node@1.30 into $ORT" >&2
        mkdir -p "$ORT"
        if ! ONNXRUNTIME_NODE_INSTALL=skip npm install --prefix "$ORT" onnxruntime-node@1.30 \
            --no-audit --no-fund >"$BUILD/bench/npm.log" 2>&1; then
            export BENCH_ORT_NOTE="npm install onnxruntime-node@1.30 failed: $(grep -i -m 1 error "$BUILD/bench/npm.log")"
            echo "bench: $BENCH_ORT_NOTE; the onnxruntime column is unavailable" >&2
        fi
    fi
fi

if [ "$fma" = 1 ]; then
    mkdir -p "$BUILD/bench"
    flags=$(grep -m 1 '^flags' /proc/cpuinfo 2>/dev/null)
    has() { [[ " $flags " == *" $1 "* ]]; }
    rm -f "$BUILD"/bench/fma_peak_*
    if has fma && has avx2; then
        $CC -O2 -fopenmp -mfma -mavx2 tests/bench/fma_peak.c -o "$BUILD/bench/fma_peak_avx2" ||
            echo "bench: building fma_peak (AVX2) failed" >&2
        if has avx512f; then
            $CC -O2 -fopenmp -mfma -mavx2 -mavx512f tests/bench/fma_peak.c \
                -o "$BUILD/bench/fma_peak_avx512" ||
                echo "bench: building fma_peak (AVX-512) failed" >&2
        fi
    else
        $CC -O2 -fopenmp -march=native tests/bench/fma_peak.c -o "$BUILD/bench/fma_peak_native" ||
            echo "bench: building fma_peak (-march=native) failed" >&2
    fi
fi

exec /usr/bin/python3 tests/bench/bench.py
