#!/bin/bash
# test_hostile_graph.sh: hostile graphs (tests/hostile/graph.py) against shape
# inference, the importer and the executor's compile step:
#   - huge pads, strides, dilations, kernels, Pad amounts, Reshape targets,
#     Concat sums and Gemm outputs: inspect, run and convert refuse them with
#     one error line naming the node, and convert leaves nothing behind;
#   - a node with 400,000 attributes is refused at once (cap 1,024), and one
#     with 1,000 still imports;
#   - graphs with no nodes, no inputs or no outputs, and tensors with no
#     elements, work or fail cleanly in every command;
#   - values the importer used to accept silently (a graph input declared
#     unlike its initializer, elem_type 999, opset 0 or -5, IR version -1) and
#     convert --batch beyond what the importer accepts;
#   - a long chain of Relu nodes runs within a memory limit and a timeout.
# The corpus is generated at test time (about 10 MB, mostly the 7 MB file
# with 400,000 attributes). Runs in the release and the sanitizer builds.
#
#   BUILD=build bash tests/cli/test_hostile_graph.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
need_cli
T_TIMEOUT=${T_TIMEOUT_HOSTILE:-30}

# the long chain: 60,000 Relu nodes; 20,000 in the sanitizer build, which is
# several times slower and whose memory use is not comparable
ASAN=0
[[ $BUILD == *asan* ]] && ASAN=1
CHAIN=60000
[ "$ASAN" = 1 ] && CHAIN=20000
CORPUS=$T_TMP/corpus
if ! OT_CHAIN=$CHAIN "$PY" tests/hostile/graph.py "$CORPUS" >"$T_TMP/make.log" 2>&1; then
    fail setup "graph.py failed: $(tail -n 1 "$T_TMP/make.log")"
    finish
fi

# the last run succeeded, or failed as the contract says
ok_or_error() {
    local name=$1
    if [ "$T_RC" -eq 0 ] || [ -z "$(error_problem "")" ]; then
        ok "$name"
    else
        fail "$name" "$(describe_run)"
    fi
}

# ------------------------------------------------------------ refused models
n=0
while IFS=$'\t' read -r file fragment; do
    [ -n "$file" ] || continue
    n=$((n + 1))
    model=$CORPUS/$file
    expect_error "inspect $file" "$fragment" inspect "$model"
    expect_error "run $file" "$fragment" run --random "$model"
    out=$T_TMP/out$n
    mkdir -p "$out"
    ot convert "$model" "$out/out.onnx"
    why=$(error_problem "$fragment")
    left=$(ls -A "$out" | tr '\n' ' ')
    [ -n "$left" ] && why="${why:+$why; }left in the output folder: $left"
    if [ -z "$why" ]; then
        ok "convert $file"
    else
        fail "convert $file" "$why"
    fi
done <"$CORPUS/cases.tsv"
if [ "$n" -ge 15 ]; then
    ok "corpus has $n refused models"
else
    fail "corpus" "only $n refused models in cases.tsv"
fi

# ------------------------------------------- huge strides with a small output
# ceil(8 / (2**63 - 1)) windows: one output element, computed without overflow
for f in pool_ceil_stride pool_same_stride; do
    ot run --random --json "$CORPUS/$f.onnx"
    if [ "$T_RC" -eq 0 ] && [[ $T_OUT == *'"shape": [1, 1, 1, 1]'* ]]; then
        ok "run $f"
    else
        fail "run $f" "expected exit 0 and shape [1,1,1,1]; $(describe_run); stdout: $T_OUT"
    fi
done

# ---------------------------------------------------------------- attributes
T_TIMEOUT=10 expect_error "400,000 attributes refused quickly" \
    "node 'relu'&400000 attributes&1024" inspect "$CORPUS/too_many_attrs.onnx"
expect_rc "1,000 attributes import" 0 inspect "$CORPUS/attrs_1000.onnx"

# ------------------------------------------------------------ degenerate graphs
DATA=$T_TMP/cifar
if ! "$PY" tests/fixtures/make_tiny_cifar.py "$DATA" >"$T_TMP/make.log" 2>&1; then
    fail setup "make_tiny_cifar.py failed: $(tail -n 1 "$T_TMP/make.log")"
    finish
fi
"$PY" - "$T_TMP/a.ppm" <<'PYEOF'
import sys
open(sys.argv[1], "wb").write(b"P6 32 32 255\n" + bytes(range(256)) * 12)
PYEOF
for f in no_nodes no_nodes_image no_inputs no_outputs zero_elements; do
    m=$CORPUS/$f.onnx
    expect_rc "inspect $f" 0 inspect "$m"
    expect_rc "convert $f" 0 convert "$m" "$T_TMP/$f.out.onnx"
    expect_rc "convert $f output imports" 0 inspect "$T_TMP/$f.out.onnx"
    expect_rc "run $f" 0 run --random "$m"
    ot predict "$m" "$T_TMP/a.ppm"
    ok_or_error "predict $f"
    ot eval "$m" --data "$DATA" --threads 1
    ok_or_error "eval $f"
    ot finetune "$m" --data "$DATA" --classes 10 --image-size 32 --epochs 1 --threads 1 \
        -o "$T_TMP/$f.ft.onnx"
    ok_or_error "finetune $f"
done
# a graph with no nodes passes its own test data (output = input)
TD=$T_TMP/td_no_nodes
mkdir -p "$TD/test_data_set_0"
cp "$CORPUS/no_nodes.onnx" "$TD/model.onnx"
"$PY" - "$TD/test_data_set_0" <<'PYEOF'
import sys
import numpy as np
from onnx import numpy_helper
x = numpy_helper.from_array(np.arange(3, dtype=np.float32).reshape(1, 3), "x")
for name in ("input_0.pb", "output_0.pb"):
    open(sys.argv[1] + "/" + name, "wb").write(x.SerializeToString())
PYEOF
expect_rc "test-data no_nodes" 0 test-data "$TD"

# ---------------------------------------------------------- convert --batch
# [N,3,224,224] float: 602,112 bytes per batch entry, 28,532 entries in 16 GiB
"$PY" - "$T_TMP/relu224.onnx" <<'PYEOF'
import sys
import onnx
from onnx import TensorProto, helper
vi = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, 224, 224])
g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [vi("x")], [vi("y")])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
m.ir_version = 8
onnx.save(m, sys.argv[1])
PYEOF
mkdir -p "$T_TMP/batch"
expect_error "convert --batch 99999999999" "--batch: a batch of 99999999999 is too large&1 to 28532" \
    convert "$T_TMP/relu224.onnx" "$T_TMP/batch/big.onnx" --batch 99999999999
expect_error "convert --batch 28533" "1 to 28532" \
    convert "$T_TMP/relu224.onnx" "$T_TMP/batch/big.onnx" --batch 28533
expect_error "convert --batch with --max-tensor-size" "1 to 1783" \
    convert "$T_TMP/relu224.onnx" "$T_TMP/batch/big.onnx" --batch 2000 --max-tensor-size 1G
left=$(ls -A "$T_TMP/batch" | tr '\n' ' ')
if [ -z "$left" ]; then
    ok "refused --batch leaves nothing"
else
    fail "refused --batch leaves nothing" "left: $left"
fi
expect_rc "convert --batch 28532" 0 convert "$T_TMP/relu224.onnx" "$T_TMP/b28532.onnx" \
    --batch 28532
expect_rc "--batch 28532 output imports" 0 inspect "$T_TMP/b28532.onnx"

# ---------------------------------------------------------------- long chain
# Relu nodes on 1x3x8x8: compile used to take about 20 KB per node (inline
# argument arrays per step, three memory descriptors per value) and quadratic
# planning: 1.2 GB for 60,000 nodes. Now about 4 KB per node, n log n. The
# limit on max RSS (600 MB) sits between the two; a hang is a timeout.
CHAIN_MEM_KB=${CHAIN_MEM_KB:-600000}
[ "$ASAN" = 1 ] && CHAIN_MEM_KB=0 # shadow memory makes RSS meaningless
/usr/bin/time -f "%M %e" -o "$T_TMP/chain.time" timeout -k 5 60 "$OT" run --random --threads 1 \
    "$CORPUS/chain.onnx" >"$T_TMP/chain.out" 2>"$T_TMP/chain.err"
rc=$?
read -r rss secs < <(tail -n 1 "$T_TMP/chain.time")
if [ "$rc" -ne 0 ]; then
    fail "chain of $CHAIN nodes runs" "exit $rc after ${secs}s: $(head -n 1 "$T_TMP/chain.err")"
elif [ "$CHAIN_MEM_KB" -gt 0 ] && [ "$rss" -gt "$CHAIN_MEM_KB" ]; then
    fail "chain of $CHAIN nodes runs" "max RSS ${rss} KB > ${CHAIN_MEM_KB} KB"
else
    ok "chain of $CHAIN nodes runs (${secs}s, max RSS ${rss} KB)"
fi

finish
