#!/usr/bin/python3
"""PyTorch references for one training step per torchvision family and freeze
mode (tests/cli/test_family_parity.sh, compared by build/test_parity).

    /usr/bin/python3 tests/golden/make_family_golden.py ONNXTRAIN OUTDIR FAMILY...

Per family, OUTDIR/FAMILY/ holds what tests/golden/make_train_golden.py writes
for ResNet-18, in the same container format, at the family's size:

  model.onnx     the family of tests/fixtures/make_family_tests.py (same
                 definition, seeds and weight draws: logits of standard
                 deviation about 1), its Dropout layers replaced by identities
                 (a training step would draw a random mask), exported at
                 opset 13 with TrainingMode.PRESERVE of the eval-mode model
                 and no constant folding, so that every BatchNormalization
                 stays and each initializer keeps its PyTorch name. The
                 head keeps its 1000 classes and its weights (no head swap).
  batches.bin    input.0 float32 [2,3,S,S], labels.0 int64 [2]
  MODE.bin       for feature_extract, fine_tune and full: loss, logits,
                 grad/NAME, stats/NAME (running statistics of the training-mode
                 BatchNorms after the forward), sgd/NAME (one SGD step, lr 0.1,
                 momentum 0.9) and adam/NAME (one Adam step, lr 1e-3), from the
                 initial weights, computed in float64; and f32err/KEY, the
                 relative L2 error of PyTorch's own float32 run on each of
                 those (loss, logits, grad/NAME, ...) against the float64 one.
  index.json     per mode the trained tensors, the training-mode BatchNorms
                 and the loss.

The trained tensors of each mode are the ones onnxtrain's preset picks
(`ONNXTRAIN inspect --training --json --mode MODE model.onnx`); the presets
themselves are checked by test_families.sh. A BatchNorm runs in training mode
exactly when its scale trains (onnxtrain's policy, src/train/train_graph.h).

Why f32err: at batch 2 some families' training-mode BatchNorms amplify
rounding (DenseNet-121 and RegNet in full mode: PyTorch float32 is 2-4e-2 from
float64 on some gradients, MNASNet's fine-tune logits 2e-4), so test_parity
holds each tensor to the parity tolerance or to a small multiple of PyTorch's
own float32 error, whichever is larger.

A family is rewritten when an output is missing or older than this script or
when a preset's trained set changed.
"""
import copy
import json
import os
import subprocess
import sys

SCRIPT = os.path.abspath(__file__)
HERE = os.path.dirname(SCRIPT)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))

MODES = {"feature_extract": "feature-extract", "fine_tune": "fine-tune", "full": "full"}
OUTPUTS = ("model.onnx", "batches.bin", "index.json") + tuple(m + ".bin" for m in MODES)
BATCH = 2
# The batch is drawn from this seed (20 unless listed). RegNet's full-mode
# step at seed 20 puts a ReLU input of its last stage 6e-6 from zero, where
# float32 rounding (PyTorch's or onnxtrain's) may flip the ReLU's gradient;
# that is a kink of the function, not an error of either side.
BATCH_SEED = {"regnet_y_400mf": 21}


def plans(onnxtrain, onnx_path):
    """mode -> sorted trained initializer names, from onnxtrain's presets."""
    out = {}
    for mode, cli in MODES.items():
        r = subprocess.run([onnxtrain, "inspect", "--training", "--json", "--mode", cli, onnx_path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise SystemExit("inspect --training --mode %s %s: %s" %
                             (cli, onnx_path, r.stderr.strip().splitlines()[-1:]))
        out[mode] = sorted(json.loads(r.stdout.strip().splitlines()[-1])["trainable"])
    return out


def up_to_date(folder, plan):
    stamp = os.path.getmtime(SCRIPT)
    for name in OUTPUTS:
        p = os.path.join(folder, name)
        if not os.path.exists(p) or os.path.getmtime(p) < stamp:
            return False
    with open(os.path.join(folder, "index.json")) as f:
        old = json.load(f)
    return all(old["modes"].get(m, {}).get("trained") == plan[m] for m in MODES)


def build(name):
    """The family as make_family_tests.py builds it, without Dropout."""
    import torch
    import make_family_tests as fam

    side = fam.FAMILIES[name][0]
    torch.manual_seed(0)
    model = fam.build(name)
    x0 = torch.randn(BATCH, 3, side, side, generator=torch.Generator().manual_seed(3))
    fam.randomize(model, x0, layer_norms=name.startswith(("vit", "swin", "convnext")))
    for parent in list(model.modules()):
        for child_name, child in parent.named_children():
            if isinstance(child, torch.nn.Dropout):
                setattr(parent, child_name, torch.nn.Identity())
    return model.eval(), side


def export(model, side, path):
    import onnx
    import torch

    x = torch.zeros(1, 3, side, side)
    torch.onnx.export(model, x, path + ".tmp", opset_version=13,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    m = onnx.load(path + ".tmp")
    inits = {t.name: tuple(t.dims) for t in m.graph.initializer}
    sd = model.state_dict()
    for n, v in sd.items():
        if n.endswith("num_batches_tracked"):
            continue
        assert n in inits, "initializer for %s not found (exporter renamed it)" % n
        assert inits[n] == tuple(v.shape), (n, inits[n], tuple(v.shape))
    os.replace(path + ".tmp", path)


def set_modes(model, trained):
    """requires_grad per the trained set; a BatchNorm trains (batch statistics,
    running statistics updated) when its scale does. Returns those BNs."""
    import torch

    for n, p in model.named_parameters():
        p.requires_grad_(n in trained)
    model.eval()
    bn_train = []
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.BatchNorm2d) and name + ".weight" in trained:
            mod.train(True)
            bn_train.append(name)
    return bn_train


def one_step(base, trained, x, y):
    """The step in base's precision: [(key, tensor)], training-mode BNs."""
    import torch
    from make_train_golden import forward_loss, make_optim

    model = copy.deepcopy(base)
    params = dict(model.named_parameters())
    unknown = [n for n in trained if n not in params]
    assert not unknown, "trained tensors that are not PyTorch parameters: %s" % unknown[:5]
    bn_train = set_modes(model, set(trained))
    loss, logits = forward_loss(model, x, y)
    grads = torch.autograd.grad(loss, [params[n] for n in trained])
    out = [("loss", loss.reshape(1)), ("logits", logits)]
    out += [("grad/" + n, g) for n, g in zip(trained, grads)]
    bufs = dict(model.named_buffers())
    for b in bn_train:
        for s in ("running_mean", "running_var"):
            out.append(("stats/%s.%s" % (b, s), bufs[b + "." + s]))
    for kind in ("sgd", "adam"):
        ps = [base.state_dict()[n].detach().clone().requires_grad_(True) for n in trained]
        for p, g in zip(ps, grads):
            p.grad = g.detach().clone()
        make_optim(kind, ps).step()
        out += [("%s/%s" % (kind, n), p) for n, p in zip(trained, ps)]
    return [(k, v.detach()) for k, v in out], bn_train


def rel_err(key, got, want, ref):
    """Relative L2 error as test_parity.c measures it (Adam: the elements
    whose float64 gradient is about zero are left out, see agg_add_adam)."""
    import numpy as np

    got, want = got.astype(np.float64).ravel(), want.astype(np.float64).ravel()
    if key.startswith("adam/"):
        g = ref["grad/" + key[5:]].astype(np.float64).ravel()
        tau = max(1e-4 * np.sqrt(np.mean(g * g)), 1e-6)
        keep = np.abs(g) >= tau
        got, want = got[keep], want[keep]
    den = np.linalg.norm(want)
    return float(np.linalg.norm(got - want) / den) if den > 0 else 0.0


def run_mode(base, base32, trained, x, y):
    import numpy as np
    import torch

    ref, bn_train = one_step(base, trained, x.double(), y)
    ref = {k: v.to(torch.float32).numpy() for k, v in ref}
    r32, _ = one_step(base32, trained, x, y)
    recs = list(ref.items())
    for k, v in r32:
        recs.append(("f32err/" + k, np.array([rel_err(k, v.numpy(), ref[k], ref)], np.float32)))
    return recs, {"trained": trained, "bn_train": bn_train, "loss": float(ref["loss"][0])}


def make(onnxtrain, outdir, name):
    import torch
    from make_train_golden import write_bin

    folder = os.path.join(outdir, name)
    os.makedirs(folder, exist_ok=True)
    model, side = build(name)
    path = os.path.join(folder, "model.onnx")
    if not os.path.exists(path) or os.path.getmtime(path) < os.path.getmtime(SCRIPT):
        export(model, side, path)
    plan = plans(onnxtrain, path)
    if up_to_date(folder, plan):
        return
    gen = torch.Generator().manual_seed(BATCH_SEED.get(name, 20))
    x = torch.randn(BATCH, 3, side, side, generator=gen)
    classes = model(x[:1]).shape[1]
    y = torch.randint(0, classes, (BATCH,), generator=gen, dtype=torch.int64)
    write_bin(os.path.join(folder, "batches.bin"), [("input.0", x.numpy()), ("labels.0", y.numpy())])
    base32 = copy.deepcopy(model)
    base = model.double()
    index = {"family": name, "batch": BATCH, "image": [3, side, side], "classes": classes,
             "modes": {}}
    for mode in MODES:
        recs, info = run_mode(base, base32, plan[mode], x, y)
        write_bin(os.path.join(folder, mode + ".bin"), recs)
        index["modes"][mode] = info
    p = os.path.join(folder, "index.json")
    with open(p + ".tmp", "w") as f:
        json.dump(index, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(p + ".tmp", p)


def main():
    if len(sys.argv) < 4:
        sys.stderr.write("usage: make_family_golden.py ONNXTRAIN OUTDIR FAMILY...\n")
        return 2
    import torch

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    onnxtrain, outdir = sys.argv[1], sys.argv[2]
    for name in sys.argv[3:]:
        make(onnxtrain, outdir, name)
        print("ok", name)
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
