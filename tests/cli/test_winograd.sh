#!/bin/bash
# test_winograd.sh: Winograd convolutions in inference (docs/executor.md,
# Winograd). A small residual CNN exported from PyTorch (3x3 stride-1
# convolutions of 32 channels at 32x32, a BatchNorm, a residual Add + Relu,
# a stride-2 convolution, pooling and a Linear head): `run` asks oneDNN for
# its Winograd algorithm for the 3x3 stride-1 convolutions of 16n channels
# (oneDNN's verbose
# log names it), keeps every convolution's activations in one layout (no
# reorder between them), and agrees with PyTorch's fp32 output within 1e-5
# of its largest value; ONNXTRAIN_WINOGRAD=0 runs direct convolutions only,
# also within 1e-5. Needs an AVX-512 CPU (oneDNN 2.6's Winograd kernels);
# skipped elsewhere.
#
#   BUILD=build bash tests/cli/test_winograd.sh
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
need_cli

if ! grep -qw avx512f /proc/cpuinfo; then
    echo "skipped: oneDNN's Winograd kernels need an AVX-512 CPU"
    finish
fi
"$PY" - "$T_TMP" >"$T_TMP/torch.log" 2>&1 <<'EOF'
import sys, numpy as np, torch, onnx
from onnx import numpy_helper as nh
d = sys.argv[1]
torch.manual_seed(0)
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 32, 3, padding=1)
        self.c2 = torch.nn.Conv2d(32, 32, 3, padding=1, bias=False)
        self.bn = torch.nn.BatchNorm2d(32)
        self.c3 = torch.nn.Conv2d(32, 32, 3, padding=1)
        self.c4 = torch.nn.Conv2d(32, 64, 3, stride=2, padding=1)
        self.c5 = torch.nn.Conv2d(64, 64, 3, padding=1)
        self.fc = torch.nn.Linear(64, 10)
    def forward(self, x):
        a = torch.relu(self.c1(x))
        b = torch.relu(self.bn(self.c2(a)))
        c = torch.relu(self.c3(b) + a)
        e = torch.relu(self.c5(torch.relu(self.c4(c))))
        return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(e, 1), 1))
m = Net().eval()
with torch.no_grad():
    m.bn.weight.uniform_(0.5, 1.5)
    m.bn.running_mean.uniform_(-0.2, 0.2)
x = torch.randn(2, 3, 32, 32)
torch.onnx.export(m, x, d + "/res.onnx", input_names=["input"], output_names=["y"],
                  opset_version=13)
open(d + "/res_x.pb", "wb").write(nh.from_array(x.numpy(), "input").SerializeToString())
with torch.no_grad():
    np.save(d + "/res_y.npy", m(x).numpy())
EOF
if [ $? -ne 0 ]; then
    fail "pytorch model" "$(tail -n 1 "$T_TMP/torch.log")"
    finish
fi

# ---- on: Winograd for the 3x3 stride-1 convolutions, no reorder between
# convolutions (only the weights' reorders at the first run and the logits')
export ONEDNN_VERBOSE=1
ot run "$T_TMP/res.onnx" --input "$T_TMP/res_x.pb" --output-dir "$T_TMP/on"
if [ "$T_RC" -ne 0 ]; then
    fail "run" "$(describe_run)"
else
    n_wino=$(grep -c '^onednn_verbose,exec,cpu,convolution,.*alg:convolution_winograd' "$T_TMP/stdout")
    n_conv=$(grep -c '^onednn_verbose,exec,cpu,convolution,' "$T_TMP/stdout")
    # activations reordered: a reorder of a 4-D [2,C,H,W] tensor
    n_act=$(grep '^onednn_verbose,exec,cpu,reorder,' "$T_TMP/stdout" | grep -c ',2x[0-9]*x[0-9]*x[0-9]*$')
    # c2, c3, c5; c1 reads 3 channels and c4 has stride 2: direct
    [ "$n_wino" -eq 3 ] && [ "$n_conv" -eq 5 ] && ok "winograd: the three 3x3 stride-1 convolutions" ||
        fail "winograd: the three 3x3 stride-1 convolutions" "$n_wino winograd of $n_conv"
    [ "$n_act" -eq 0 ] && ok "winograd: no activation reorders" ||
        fail "winograd: no activation reorders" "$n_act"
fi

# ---- off: direct convolutions only
ONNXTRAIN_WINOGRAD=0 ot run "$T_TMP/res.onnx" --input "$T_TMP/res_x.pb" --output-dir "$T_TMP/off"
if [ "$T_RC" -ne 0 ]; then
    fail "run ONNXTRAIN_WINOGRAD=0" "$(describe_run)"
else
    n_wino=$(grep -c 'alg:convolution_winograd' "$T_TMP/stdout")
    n_conv=$(grep -c '^onednn_verbose,exec,cpu,convolution,' "$T_TMP/stdout")
    [ "$n_wino" -eq 0 ] && [ "$n_conv" -eq 5 ] && ok "ONNXTRAIN_WINOGRAD=0: direct only" ||
        fail "ONNXTRAIN_WINOGRAD=0: direct only" "$n_wino winograd of $n_conv"
fi
unset ONEDNN_VERBOSE

# ---- both against PyTorch fp32
py_checks "vs pytorch" '
import sys, numpy as np, onnx
from onnx import numpy_helper as nh
d = sys.argv[1]
def ok(name, cond, why=""):
    print(("ok %s" % name) if cond else ("FAIL %s: %s" % (name, why)))
t = np.load(d + "/res_y.npy")
scale = float(np.max(np.abs(t)))
for k in ("on", "off"):
    o = nh.to_array(onnx.load_tensor(d + "/" + k + "/output_0.pb"))
    e = float(np.max(np.abs(o - t))) / scale
    ok(k + " within 1e-5 of pytorch", e < 1e-5, e)
' "$T_TMP"
finish
