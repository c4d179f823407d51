#!/bin/bash
# test_cuda_kernels.sh: the CUDA backend's own kernels against the plain C
# kernels, on the host emulation of the device ($BUILD/test_kernels_emu,
# tests/gpu/test_kernels.c built with -DOT_CUDA_EMU), and the op table's
# kernel list in docs/gpu.md. Its lines are the program's: one per op, then
# "N passed, N failed". The same program on a GPU is $BUILD/test_kernels.
#
#   BUILD=build bash tests/cli/test_cuda_kernels.sh
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
BIN=$BUILD/test_kernels_emu
if [ ! -x "$BIN" ]; then
    echo "FAIL test_kernels_emu: $BIN is not built (make $BIN)"
    echo "0 passed, 1 failed"
    exit 1
fi
exec timeout 600 "$BIN" --docs docs/gpu.md
