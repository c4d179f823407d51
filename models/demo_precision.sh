#!/bin/bash
# make demo-precision: the demo's job (models/demo.sh, steps 1-4: the
# pretraining on classes 0-4 and the transfers to classes 5-9 over the
# demo's seeds) once in fp32 and once with --precision bf16, each from its
# own start, then the mean top-1 over the seeds of each transfer in both and
# whether bf16's mean lies within fp32's spread (fp32's mean plus or minus
# its sample standard deviation over the seeds; also its lowest to highest).
#
#   bash models/demo_precision.sh [BUILD]
#
# Writes BUILD/demo-precision/{fp32,bf16}/runs/ (the demo's run files; its
# models, 45 MB each, are deleted once scored) and
# BUILD/demo-precision/precision.{md,json}; prints the table. OT_DEMO_QUICK=1
# runs the demo's reduced size (2 seeds, 4 steps: a check of the pipeline,
# not of accuracy). Exits 1 when a run fails.
set -euo pipefail
BUILD=${1:-build}
OUT=$BUILD/demo-precision
PY=/usr/bin/python3
mkdir -p "$OUT"
for p in fp32 bf16; do
    echo "== the demo in $p"
    OT_DEMO_PRECISION=$p OT_DEMO_UNTIL=4 OT_DEMO_OUT=$OUT/$p bash models/demo.sh "$BUILD"
    rm -f "$OUT/$p"/*.onnx
done
"$PY" models/demo_precision.py "$OUT/fp32/runs" "$OUT/bf16/runs" "$OUT"
