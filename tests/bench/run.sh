#!/bin/bash
# tests/bench/run.sh: the benchmarks (`make bench`). See tests/bench/bench.py.
#
#   BUILD=build [ONLY=inspect|convert] [BENCH_REPS=7] bash tests/bench/run.sh
#
# Prints a Markdown table; writes $BUILD/bench/results.{md,json}.
cd "$(dirname "$0")/../.." || exit 1
export BUILD=${BUILD:-build}
exec /usr/bin/python3 tests/bench/bench.py
