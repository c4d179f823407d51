#!/bin/bash
# test_bn_models.sh: BatchNorm forms that older or unusual exporters write.
#   - spatial=0 (opset < 9) with per-channel parameters: one warning per
#     model, counting the nodes, whatever the number of such nodes;
#   - running statistics that are not float initializers (here computed by an
#     Identity node, as when an exporter shares one tensor): training that
#     BatchNorm is refused with an error that names it, says what its running
#     mean is and what to do; feature extraction (BatchNorm frozen) trains.
# Tiny models made here with onnx.helper; data: tests/fixtures/make_tiny_cifar.py.
#
#   BUILD=build bash tests/cli/test_bn_models.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
need_cli

DATA=$BUILD/tiny_cifar
if ! "$PY" tests/fixtures/make_tiny_cifar.py "$DATA" >"$T_TMP/make.log" 2>&1; then
    fail setup "fixtures: $(tail -n 1 "$T_TMP/make.log")"
    finish
fi
# make_model OUT KIND: KIND spatial0 (opset 8, three BN with spatial=0) or
# computed_stats (opset 13, bn2's running mean is Identity(bn2.m0))
if ! "$PY" - "$T_TMP" >"$T_TMP/py.log" 2>&1 <<'PYEOF'; then
import sys, numpy as np, onnx
from onnx import helper, TensorProto, numpy_helper as nh
out = sys.argv[1]
def model(kind):
    rng = np.random.default_rng(0)
    inits, nodes, prev, ch = [], [], "x", 3
    add = lambda n, a: inits.append(nh.from_array(np.asarray(a, np.float32), n))
    for k in (1, 2, 3):
        add("c%d.w" % k, rng.standard_normal((4, ch, 3, 3)) * 0.3)
        nodes.append(helper.make_node("Conv", [prev, "c%d.w" % k], ["c%d" % k], name="conv%d" % k,
                                      pads=[1, 1, 1, 1]))
        b = "bn%d" % k
        add(b + ".s", np.ones(4)); add(b + ".b", np.zeros(4)); add(b + ".v", np.ones(4))
        mean = b + ".m"
        if kind == "computed_stats" and k == 2:
            add(b + ".m0", np.zeros(4))
            nodes.append(helper.make_node("Identity", [b + ".m0"], [mean], name="share_mean"))
        else:
            add(mean, np.zeros(4))
        attrs = {"spatial": 0} if kind == "spatial0" else {}
        nodes.append(helper.make_node("BatchNormalization", ["c%d" % k, b + ".s", b + ".b", mean,
                                      b + ".v"], ["b%d" % k], name=b, **attrs))
        nodes.append(helper.make_node("Relu", ["b%d" % k], ["r%d" % k], name="relu%d" % k))
        prev, ch = "r%d" % k, 4
    add("fc.w", rng.standard_normal((10, 4)) * 0.3); add("fc.b", np.zeros(10))
    nodes += [helper.make_node("GlobalAveragePool", [prev], ["p"], name="pool"),
              helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
              helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["y"], name="fc", transB=1)]
    ins = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])]
    opset = 8 if kind == "spatial0" else 13
    if opset < 9:  # initializers were graph inputs then
        ins += [helper.make_tensor_value_info(t.name, TensorProto.FLOAT, list(t.dims)) for t in inits]
    g = helper.make_graph(nodes, kind, ins,
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 3 if opset < 9 else 7
    onnx.checker.check_model(m)
    onnx.save(m, "%s/%s.onnx" % (out, kind))
model("spatial0")
model("computed_stats")
PYEOF
    fail setup "models: $(tail -n 1 "$T_TMP/py.log")"
    finish
fi

# spatial=0: one warning for the three nodes, from every command that imports
SP=$T_TMP/spatial0.onnx
for cmd in inspect run finetune; do
    case $cmd in
    inspect) ot inspect "$SP" ;;
    run) ot run "$SP" --random ;;
    finetune) ot finetune "$SP" --data "$DATA" --image-size 32 --epochs 1 --max-steps 1 \
        --mode full -o "$T_TMP/sp.out.onnx" ;;
    esac
    n=$(grep -c 'spatial=0' "$T_TMP/stderr")
    if [ "$T_RC" -eq 0 ] && [ "$n" -eq 1 ] &&
        matches "$T_ERR" "warning: 3 BatchNormalization nodes&node 'bn1'&computed as spatial=1"; then
        ok "spatial=0: $cmd warns once"
    else
        fail "spatial=0: $cmd warns once" "$n warnings; $(describe_run)"
    fi
done

# running statistics computed by a node: refused for training with the way out
CS=$T_TMP/computed_stats.onnx
for mode in full fine-tune; do
    expect_error "computed stats: --mode $mode refused" \
        "node 'bn2' (BatchNormalization)&running mean 'bn2.m'&computed by node 'share_mean' (Identity)&eval mode&feature-extract" \
        finetune "$CS" --data "$DATA" --image-size 32 --epochs 1 --max-steps 1 --mode "$mode" \
        -o "$T_TMP/cs.out.onnx"
done
if [ ! -e "$T_TMP/cs.out.onnx" ]; then ok "computed stats: nothing written"; else
    fail "computed stats: nothing written" "cs.out.onnx exists"; fi
ot finetune "$CS" --data "$DATA" --image-size 32 --epochs 1 --max-steps 1 \
    --mode feature-extract -o "$T_TMP/cs.fe.onnx"
if [ "$T_RC" -eq 0 ] && [ -s "$T_TMP/cs.fe.onnx" ]; then ok "computed stats: feature-extract trains"
else fail "computed stats: feature-extract trains" "$(describe_run)"; fi

finish
