#!/usr/bin/python3
"""PyTorch references for the training parity test (tests/parity/test_parity.c).

    /usr/bin/python3 tests/golden/make_train_golden.py OUTDIR

Writes into OUTDIR:

  resnet18_64.onnx   torchvision ResNet-18 (weights=None, torch.manual_seed(0),
                     BatchNorm parameters and statistics re-drawn as in
                     tests/fixtures/make_resnet18.py), fc replaced by
                     nn.Linear(512, 10) drawn after torch.manual_seed(10);
                     opset 13, TrainingMode.PRESERVE of an eval-mode model (so
                     BatchNormalization stays, momentum 0.9), no constant
                     folding, input "input" [N,3,64,64], output "logits" [N,10],
                     N symbolic.
  batches.bin        the five fixed batches: input.K float32 [4,3,64,64],
                     labels.K int64 [4] (K = 0..4; batch 0 is the step-0 batch).
  MODE.bin           per freeze mode (feature_extract, fine_tune, full,
                     feature_extract_bn_train), keyed by ONNX initializer name:
                       loss [1], logits [4,10]                  step 0, batch 0
                       grad/NAME     gradient of each trained parameter
                       sgd/NAME      NAME after one SGD(lr=0.1, momentum=0.9) step
                       adam/NAME     ... one Adam(lr=1e-3) step
                       adamw/NAME    ... one AdamW(lr=1e-3, weight_decay=0.01) step
                       stats/NAME    running mean / var of each training-mode BN
                                     after the step-0 forward
                       curve         [5] losses of 5 Adam(lr=1e-3) steps on
                                     batches 0..4 (loss before each update)
                       curve_frozen  [5] the losses of the same batches without
                                     any update (so the test knows the curve is
                                     one that training changes)
                       curve_stats/NAME  running statistics after the 5 steps
  index.json         the PyTorch -> ONNX name map, and per mode the trained
                     parameters and training-mode BNs (PyTorch names).

Container format (.bin): magic "OTGD", uint32 version 1, then records to the
end of the file: uint32 name length, name bytes (no NUL), uint32 ONNX dtype (1
float32, 7 int64), uint32 ndim, int64 dims[ndim], raw little-endian data.

The BN policy matches onnxtrain's (src/train/train_graph.h): a BatchNorm whose
weight or bias trains runs in training mode (PyTorch .train(): batch
statistics, running statistics updated with momentum 0.1 and the unbiased
variance); the others run in eval mode. feature_extract_bn_train is
feature-extract with `--bn train`: every BN in training mode, only fc trains.

The references are computed in float64 (the model is converted with .double()
after export), so they carry no float32 rounding of their own; they are stored
as float32. Deterministic. Nothing is rewritten while every output is newer
than this script.

Why 64x64 and not 32x32: at 32x32 the last stage runs at 1x1, so its
training-mode BNs normalise over 4 values and its 3x3 convolutions see only
padding in 8 of 9 taps (89% zero gradients). That is so ill-conditioned that
PyTorch's own float32 run drifts 19% from its float64 run within 5 Adam steps
and its float32 gradients differ by 5e-5 (relative L2). At 64x64 (last stage
2x2) PyTorch float32 stays within 5e-6 of float64 on the gradients and 4e-3 on
the curve, so the tolerances of test_parity.c measure onnxtrain, not chaos.
"""
import copy
import json
import os
import struct
import sys

SCRIPT = os.path.abspath(__file__)
HERE = os.path.dirname(SCRIPT)
MODES = ("feature_extract", "fine_tune", "full", "feature_extract_bn_train")
ONNX_NAME = "resnet18_64.onnx"
OUTPUTS = (ONNX_NAME, "batches.bin", "index.json") + tuple(m + ".bin" for m in MODES)
N, C, S, CLASSES, CURVE = 4, 3, 64, 10, 5


def up_to_date(outdir):
    stamp = os.path.getmtime(SCRIPT)
    for name in OUTPUTS:
        p = os.path.join(outdir, name)
        if not os.path.exists(p) or os.path.getmtime(p) < stamp:
            return False
    return True


def build_model():
    import torch

    sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))
    from make_resnet18 import build_model as build_resnet18

    model = build_resnet18()          # torch.manual_seed(0), BN re-drawn, eval()
    torch.manual_seed(10)
    model.fc = torch.nn.Linear(512, CLASSES)
    return model.eval()


def write_bin(path, records):
    import numpy as np

    with open(path + ".tmp", "wb") as f:
        f.write(b"OTGD" + struct.pack("<I", 1))
        for name, arr in records:
            arr = np.ascontiguousarray(arr)
            if arr.dtype == np.int64:
                code = 7
            else:
                arr = arr.astype(np.float32)
                code = 1
            nb = name.encode()
            f.write(struct.pack("<I", len(nb)) + nb)
            f.write(struct.pack("<II", code, arr.ndim))
            f.write(struct.pack("<%dq" % arr.ndim, *arr.shape))
            f.write(arr.astype(arr.dtype.newbyteorder("<")).tobytes())
    os.replace(path + ".tmp", path)


def trained_names(model, mode):
    names = [n for n, _ in model.named_parameters()]
    if mode in ("feature_extract", "feature_extract_bn_train"):
        return [n for n in names if n.startswith("fc.")]
    if mode == "fine_tune":
        return [n for n in names if n.startswith("layer4.") or n.startswith("fc.")]
    return names


def set_modes(model, mode):
    """requires_grad per mode; BN train() when its parameters train (or all,
    for --bn train), eval() otherwise. Returns the training-mode BN names."""
    import torch

    trained = set(trained_names(model, mode))
    for n, p in model.named_parameters():
        p.requires_grad_(n in trained)
    model.eval()
    bn_train = []
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            t = mode == "feature_extract_bn_train" or name + ".weight" in trained
            mod.train(t)
            if t:
                bn_train.append(name)
    return bn_train


def forward_loss(model, x, y):
    import torch

    logits = model(x)
    return torch.nn.functional.cross_entropy(logits, y), logits


def make_optim(kind, params):
    import torch

    if kind == "sgd":
        return torch.optim.SGD(params, lr=0.1, momentum=0.9)
    if kind == "adam":
        return torch.optim.Adam(params, lr=1e-3)
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)


def run_mode(base, mode, batches, name_map):
    import torch

    def f32(t):
        return t.detach().to(torch.float32).numpy()

    recs = []
    # step 0: loss, logits, gradients, running statistics after the forward
    model = copy.deepcopy(base)
    bn_train = set_modes(model, mode)
    x, y = batches[0]
    loss, logits = forward_loss(model, x, y)
    trained = trained_names(model, mode)
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(loss, [params[n] for n in trained])
    recs.append(("loss", f32(loss).reshape(1)))
    recs.append(("logits", f32(logits)))
    for n, g in zip(trained, grads):
        recs.append(("grad/" + name_map[n], f32(g)))
    bufs = dict(model.named_buffers())
    for b in bn_train:
        for s in ("running_mean", "running_var"):
            recs.append(("stats/" + name_map[b + "." + s], f32(bufs[b + "." + s])))

    # one step of each optimizer, from the initial weights, with these gradients
    for kind in ("sgd", "adam", "adamw"):
        ps = [base.state_dict()[n].detach().clone().requires_grad_(True) for n in trained]
        for p, g in zip(ps, grads):
            p.grad = g.detach().clone()
        make_optim(kind, ps).step()
        for n, p in zip(trained, ps):
            recs.append(("%s/%s" % (kind, name_map[n]), f32(p)))

    # the Adam loss curve, and the same batches without training
    model = copy.deepcopy(base)
    set_modes(model, mode)
    opt = make_optim("adam", [p for p in model.parameters() if p.requires_grad])
    curve = []
    for x, y in batches:
        opt.zero_grad()
        loss, _ = forward_loss(model, x, y)
        loss.backward()
        opt.step()
        curve.append(loss.item())
    bufs = dict(model.named_buffers())
    for b in bn_train:
        for s in ("running_mean", "running_var"):
            recs.append(("curve_stats/" + name_map[b + "." + s], f32(bufs[b + "." + s])))
    frozen = []
    model = copy.deepcopy(base)
    set_modes(model, mode)
    with torch.no_grad():
        for x, y in batches:
            frozen.append(forward_loss(model, x, y)[0].item())
    import numpy as np

    recs.append(("curve", np.array(curve)))
    recs.append(("curve_frozen", np.array(frozen)))
    info = {"trained": trained, "bn_train": bn_train, "loss": recs[0][1].item(),
            "curve": curve, "curve_frozen": frozen}
    return recs, info


def name_map_of(model, onnx_path):
    """PyTorch parameter/buffer name -> ONNX initializer name. The exporter
    keeps module names without constant folding; checked, not assumed."""
    import onnx

    m = onnx.load(onnx_path)
    inits = {t.name: t for t in m.graph.initializer}
    want = [n for n, _ in model.named_parameters()] + \
           [n for n, _ in model.named_buffers() if not n.endswith("num_batches_tracked")]
    sd = model.state_dict()
    out = {}
    for n in want:
        assert n in inits, "initializer for %s not found (exporter renamed it)" % n
        t = inits[n]
        assert tuple(t.dims) == tuple(sd[n].shape), (n, t.dims, sd[n].shape)
        out[n] = n
    float_inits = {t.name for t in m.graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    extra = float_inits - set(out.values())
    assert not extra, "unexpected float initializers: %s" % sorted(extra)[:5]
    return out


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: make_train_golden.py OUTDIR\n")
        return 2
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    if up_to_date(outdir):
        return 0

    import onnx
    import torch

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    model = build_model()

    onnx_path = os.path.join(outdir, ONNX_NAME)
    x0 = torch.zeros(1, C, S, S)
    torch.onnx.export(model, x0, onnx_path + ".tmp", opset_version=13,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    m = onnx.load(onnx_path + ".tmp")
    onnx.checker.check_model(m, full_check=True)
    bns = [n for n in m.graph.node if n.op_type == "BatchNormalization"]
    assert len(bns) == 20, "expected 20 BatchNormalization nodes, got %d" % len(bns)
    for n in bns:
        mom = [a.f for a in n.attribute if a.name == "momentum"]
        assert mom and abs(mom[0] - 0.9) < 1e-6, (n.name, mom)  # PyTorch 0.1 == ONNX 0.9
    name_map = name_map_of(model, onnx_path + ".tmp")
    os.replace(onnx_path + ".tmp", onnx_path)

    # float32 batches; the references run in float64 on the same values
    gen = torch.Generator().manual_seed(20)
    batches32 = []
    for _ in range(CURVE):
        x = torch.randn(N, C, S, S, generator=gen)
        y = torch.randint(0, CLASSES, (N,), generator=gen, dtype=torch.int64)
        batches32.append((x, y))
    recs = []
    for k, (x, y) in enumerate(batches32):
        recs.append(("input.%d" % k, x.numpy()))
        recs.append(("labels.%d" % k, y.numpy()))
    write_bin(os.path.join(outdir, "batches.bin"), recs)

    base = model.double()
    batches = [(x.double(), y) for x, y in batches32]
    index = {"onnx": ONNX_NAME, "batch": N, "image": [C, S, S], "classes": CLASSES,
             "name_map": name_map, "modes": {}}
    for mode in MODES:
        recs, info = run_mode(base, mode, batches, name_map)
        write_bin(os.path.join(outdir, mode + ".bin"), recs)
        index["modes"][mode] = info
        print("%-26s loss %.6f  trained %3d tensors  bn train %2d  curve %s" %
              (mode, info["loss"], len(info["trained"]), len(info["bn_train"]),
               " ".join("%.4f" % v for v in info["curve"])))
    p = os.path.join(outdir, "index.json")
    with open(p + ".tmp", "w") as f:
        json.dump(index, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(p + ".tmp", p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
