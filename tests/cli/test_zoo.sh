#!/bin/bash
# test_zoo.sh: `onnxtrain zoo`: the ResNet builders give torchvision's network
# (same initializer names and shapes; with the same weights loaded into
# torchvision, the same logits as `onnxtrain run`), and the result trains.
#
#   BUILD=build bash tests/cli/test_zoo.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
need_cli

ot zoo
if [ "$T_RC" -eq 0 ] && [[ $T_OUT == *resnet18* ]] && [[ $T_OUT == *resnet34* ]]; then
    ok "zoo lists the builders"; else fail "zoo lists" "$(describe_run)"; fi
expect_usage "zoo without -o" zoo resnet18
ot zoo resnet99 -o "$T_TMP/x.onnx"
if [ "$T_RC" -eq 1 ] && [ ! -e "$T_TMP/x.onnx" ]; then ok "unknown builder"; else
    fail "unknown builder" "$(describe_run)"; fi

for net in resnet18 resnet34; do
    ot zoo "$net" --classes 7 --seed 1 -o "$T_TMP/$net.onnx"
    if [ "$T_RC" -ne 0 ]; then
        fail "zoo $net" "$(describe_run)"
        continue
    fi
    ok "zoo $net"
    "$PY" -c '
import sys, numpy as np, onnx
from onnx import numpy_helper as nh
x = np.random.default_rng(3).standard_normal((2, 3, 64, 64)).astype(np.float32)
open(sys.argv[1], "wb").write(nh.from_array(x, "input").SerializeToString())
' "$T_TMP/x.pb"
    ot run "$T_TMP/$net.onnx" --input "$T_TMP/x.pb" --output-dir "$T_TMP/out_$net"
    py_checks "zoo $net vs torchvision" '
import sys, numpy as np, onnx, torch, torchvision
from onnx import numpy_helper as nh
m = onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True)
t = getattr(torchvision.models, sys.argv[2])(num_classes=7).eval()
sd = t.state_dict()
w = {i.name: nh.to_array(i) for i in m.graph.initializer}
keys = {k for k in sd if not k.endswith("num_batches_tracked")}
print("ok names" if set(w) == keys else "FAIL names: %r" % sorted(set(w) ^ keys)[:4])
print("ok shapes" if all(tuple(sd[k].shape) == w[k].shape for k in keys & set(w)) else "FAIL shapes")
print("ok init scale" if abs(w["conv1.weight"].std() / sd["conv1.weight"].std().item() - 1) < 0.1
      else "FAIL init scale")
t.load_state_dict({k: torch.from_numpy(w[k]) if k in w else v for k, v in sd.items()})
x = nh.to_array(onnx.load_tensor(sys.argv[3]))
with torch.no_grad():
    ref = t(torch.from_numpy(x)).numpy()
got = nh.to_array(onnx.load_tensor(sys.argv[4]))
d = float(np.max(np.abs(ref - got)))
print(("ok logits (max diff %.2g)" % d) if d <= 1e-4 * max(1, float(np.abs(ref).max())) else "FAIL logits: %g" % d)
' "$T_TMP/$net.onnx" "$net" "$T_TMP/x.pb" "$T_TMP/out_$net/output_0.pb"
done

# deterministic, and trains from scratch
ot zoo resnet18 --classes 7 --seed 1 -o "$T_TMP/again.onnx"
if cmp -s "$T_TMP/again.onnx" "$T_TMP/resnet18.onnx"; then ok "zoo is deterministic"; else
    fail "zoo is deterministic" "two builds differ"; fi
if [ -z "${OT_FAST:-}" ] || [ "${OT_FAST:-0}" = 0 ]; then
    "$PY" tests/fixtures/make_tiny_cifar.py "$BUILD/tiny_cifar" >/dev/null 2>&1
    ot finetune "$T_TMP/resnet18.onnx" --data "$BUILD/tiny_cifar" --classes 10 --mode full \
        --image-size 32 --epochs 1 --max-steps 2 --batch-size 8 -o "$T_TMP/scratch.onnx"
    if [ "$T_RC" -eq 0 ] && [ -s "$T_TMP/scratch.onnx" ]; then ok "trains from scratch"; else
        fail "trains from scratch" "$(describe_run)"; fi
fi
finish
