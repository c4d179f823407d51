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
                 stays and each initializer keeps its PyTorch name (opset
                 17 for the _op17 families). The head keeps its 1000 classes
                 and its weights (no head swap). For a zoo_* family: the
                 zoo form's file itself, as make_family_tests.py writes it
                 (under OUTDIR/.zoo).
  batches.bin    input.0 float32 [2,3,S,S], labels.0 int64 [2]; NCHW also
                 for a model that takes NHWC images (test_parity transposes
                 the batch for it, as the trainer does the loader's)
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

A zoo form's reference is the family it rewrites (the loss reads the logits
the zoo's trailing Softmax takes): the PyTorch model with the BatchNorms the
exporter folded into the convolution before them folded the same way, each
file initializer matched to the model's tensor of the same shape and value
and the model set to the file's float32 values, and the records named by the
file's initializers. Which BatchNorms the exporter folded is found by
running the model: a BatchNorm whose input is a convolution's output (none
where make_family_tests.py keeps the BatchNorms, KEEP_BN).

Inception v3's references are taken at 139x139 (PARITY_SIDE) rather than its
fixture's 75x75: at 75x75 the Mixed_7 maps are 1x1, and a training-mode
BatchNorm over 2 values has a gradient of eps / (d^2 + eps) times its
input's scale (d the half-difference of the two values), computed by a
cancellation that leaves rounding noise of a few percent in PyTorch's
float32 as in onnxtrain's.

The references are cached: the family is built and exported at each run
(model.onnx is replaced only when its bytes change), and its references are
recomputed only when index.json's key differs, a hash of the model file's
bytes, the trained sets, the batch, PyTorch's version and REF_VERSION (how a
step is computed here), or when an output is missing. So an unchanged
family costs its export and three `inspect` calls, not a float64 step (3-15
minutes for the larger families on a loaded 2-core machine).
"""
import copy
import hashlib
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
# What the references are computed by; a change to how a step is computed
# must change this (the cache below does not look at this script's date).
REF_VERSION = 2
# The batch is drawn from this seed (20 unless listed). RegNet's full-mode
# step at seed 20 puts a ReLU input of its last stage 6e-6 from zero, where
# float32 rounding (PyTorch's or onnxtrain's) may flip the ReLU's gradient;
# that is a kink of the function, not an error of either side.
BATCH_SEED = {"regnet_y_400mf": 21}
# Families whose references are taken at another side than their fixture's
# (see the docstring).
PARITY_SIDE = {"inception_v3": 139}


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


def digest(*parts):
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else str(part).encode())
        h.update(b"\0")
    return h.hexdigest()


def ref_key(folder, plan, name):
    """The references' cache key: the model file's bytes, the trained sets,
    the batch, how the step is computed here and PyTorch's version."""
    import torch

    with open(os.path.join(folder, "model.onnx"), "rb") as f:
        model = f.read()
    return digest(REF_VERSION, torch.__version__, model, json.dumps(plan, sort_keys=True), BATCH,
                  BATCH_SEED.get(name, 20))


def put_file(tmp, path):
    """tmp becomes path unless path has the same bytes (its cache key stays)."""
    if os.path.exists(path):
        with open(tmp, "rb") as a, open(path, "rb") as b:
            if a.read() == b.read():
                os.remove(tmp)
                return
    os.replace(tmp, path)


def read_index(folder):
    try:
        with open(os.path.join(folder, "index.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def build(name):
    """The family as make_family_tests.py builds it, without Dropout."""
    import torch
    import make_family_tests as fam

    side = PARITY_SIDE.get(name, fam.FAMILIES[name][0])
    torch.manual_seed(0)
    model = fam.build(name)
    x0 = torch.randn(BATCH, 3, side, side, generator=torch.Generator().manual_seed(3))
    fam.randomize(model, x0, layer_norms=name.startswith(("vit", "swin", "convnext")),
                  calibrated=name in getattr(fam, "CALIBRATED", ()))
    for parent in list(model.modules()):
        for child_name, child in parent.named_children():
            if isinstance(child, torch.nn.Dropout):
                setattr(parent, child_name, torch.nn.Identity())
    return model.eval(), side


def grouped_conv(conv, x):
    """conv (a Conv2d with groups > 1) applied to x as one batched matrix
    product over the groups (unfold, then einsum): the same function as
    conv's own forward, in float64 for the references, where PyTorch's CPU
    path runs one convolution per group (no oneDNN in float64): 768 of them
    in a ConvNeXt depthwise layer, 100 times slower than float32."""
    import torch
    import torch.nn.functional as F

    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = conv.kernel_size, conv.stride, conv.padding, \
        conv.dilation
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    g, o = conv.groups, conv.out_channels
    cols = F.unfold(x, (kh, kw), dilation=(dh, dw), padding=(ph, pw), stride=(sh, sw))
    cols = cols.view(n, g, (c // g) * kh * kw, oh * ow)
    y = torch.einsum("ngkl,gok->ngol", cols, conv.weight.view(g, o // g, -1))
    y = y.reshape(n, o, oh, ow)
    return y if conv.bias is None else y + conv.bias.view(1, o, 1, 1)


def fast_float64(model):
    """model's grouped convolutions computed by grouped_conv (float64 only)."""
    import types
    import torch

    for mod in model.modules():
        if (isinstance(mod, torch.nn.Conv2d) and mod.groups > 1 and mod.padding_mode == "zeros"
                and not isinstance(mod.padding, str)):
            mod.forward = types.MethodType(grouped_conv, mod)
    return model


def check_grouped_conv():
    """grouped_conv against PyTorch's own float64 convolution, its output and
    both gradients, on small layers of the forms the families use
    (depthwise, grouped, strided, dilated, with and without bias)."""
    import torch

    gen = torch.Generator().manual_seed(5)
    for cin, cout, k, stride, pad, dil, groups, side in (
            (12, 12, 7, 1, 3, 1, 12, 9), (16, 32, 3, 2, 1, 1, 8, 9),
            (6, 12, 3, 1, 2, 2, 3, 8), (6, 12, 1, 1, 0, 1, 3, 5), (8, 8, 5, 2, 2, 1, 8, 11)):
        conv = torch.nn.Conv2d(cin, cout, k, stride, pad, dil, groups, bias=groups % 2 == 0)
        conv = conv.double()
        x = torch.randn(2, cin, side, side, dtype=torch.float64, generator=gen,
                        requires_grad=True)
        outs = []
        for f in (conv.forward, lambda t: grouped_conv(conv, t)):
            y = f(x)
            outs.append([y] + list(torch.autograd.grad((y * y).sum(), [x, conv.weight])))
        for want, got in zip(*outs):
            err = float((got - want).abs().max() / want.abs().max())
            assert err < 1e-12, ("grouped_conv", cin, cout, k, groups, err)


def export(model, name, side, path):
    import onnx
    import torch
    import make_family_tests as fam

    x = torch.zeros(1, 3, side, side)
    torch.onnx.export(model, x, path + ".new", opset_version=fam.OPSET.get(name, 13),
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    m = onnx.load(path + ".new")
    inits = {t.name: tuple(t.dims) for t in m.graph.initializer}
    sd = model.state_dict()
    for n, v in sd.items():
        if not v.is_floating_point():  # BN step counts, Swin's position index
            continue
        assert n in inits, "initializer for %s not found (exporter renamed it)" % n
        assert inits[n] == tuple(v.shape), (n, inits[n], tuple(v.shape))
    put_file(path + ".new", path)


def conv_bn_pairs(model, side):
    """(convolution, BatchNorm name, BatchNorm) for each BatchNorm whose
    input is a convolution's output, found by running the model on one
    image (the registration order is not the data flow: a pre-activation
    block registers its BatchNorm before the convolution it does not
    follow)."""
    import torch

    outputs, pairs = {}, []

    def conv_hook(conv, args, out):
        outputs[id(out)] = (out, conv)

    def bn_hook(name):
        def hook(bn, args):
            got = outputs.get(id(args[0]))
            if got is not None and got[0] is args[0]:
                pairs.append((got[1], name, bn))
        return hook

    hooks = []
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Conv2d):
            hooks.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, torch.nn.BatchNorm2d):
            hooks.append(mod.register_forward_pre_hook(bn_hook(name)))
    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        model(torch.zeros(1, 3, side, side, dtype=dtype))
    for h in hooks:
        h.remove()
    return pairs


def fold_conv_bns(model, side):
    """Folds each BatchNorm that reads a convolution's output into it, as
    PyTorch's exporter does in eval mode; the BatchNorm becomes an Identity.
    In the model's precision."""
    import torch

    with torch.no_grad():
        for conv, bn_name, bn in conv_bn_pairs(model, side):
            k = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            conv.weight.mul_(k.reshape(-1, 1, 1, 1))
            conv.bias = torch.nn.Parameter((bias - bn.running_mean) * k + bn.bias)
            parent = model.get_submodule(bn_name.rpartition(".")[0]) if "." in bn_name else model
            setattr(parent, bn_name.rpartition(".")[2], torch.nn.Identity())


def zoo_reference(model, onnx_path, side, fold):
    """A zoo form's reference: the family it rewrites, in float64, with the
    BatchNorms the exporter folded (`fold`: the file was exported in eval
    mode, not with its BatchNorms kept) folded the same way and every tensor set
    to the file's own (float32) value. Returns the ONNX initializer name ->
    PyTorch parameter or buffer name; each float initializer of the file must
    match one tensor of the model (same shape, relative difference <= 1e-5),
    each parameter one initializer."""
    import numpy as np
    import onnx
    import torch
    from onnx import numpy_helper

    model = model.double()
    if fold:
        fold_conv_bns(model, side)
    tensors = dict(model.named_parameters())
    tensors.update((n, b) for n, b in model.named_buffers() if b.is_floating_point())
    free = set(tensors)
    names = {}
    for init in onnx.load(onnx_path).graph.initializer:
        v = numpy_helper.to_array(init)
        if v.dtype != np.float32:
            continue
        best, err = None, None
        for n in free:
            t = tensors[n]
            if tuple(t.shape) != v.shape:
                continue
            want = t.detach().numpy()
            e = float(np.abs(want - v).max() / max(np.abs(want).max(), 1e-30))
            if err is None or e < err:
                best, err = n, e
        if best is None or err > 1e-5:
            raise SystemExit("%s: initializer %s %s matches no tensor of the reference model "
                             "(closest: %s)" % (onnx_path, init.name, list(v.shape), err))
        free.discard(best)
        names[init.name] = best
        with torch.no_grad():
            tensors[best].copy_(torch.from_numpy(v.astype(np.float64)))
    left = [n for n, _ in model.named_parameters() if n in free]
    if left:
        raise SystemExit("%s: PyTorch parameters not in the file: %s" % (onnx_path, left[:5]))
    return model, names


def zoo_fixture(outdir, name):
    """The zoo form's file as tests/fixtures/make_family_tests.py writes it
    (under OUTDIR/.zoo)."""
    import make_family_tests as fam

    fam.make(os.path.join(outdir, ".zoo"), name)
    return os.path.join(outdir, ".zoo", name, "model.onnx")


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


def forward_loss(model, x, y):
    """make_train_golden.py's loss and logits, on the (N, C) view of logits
    of shape [N, C, 1, 1] (SqueezeNet 1.0's zoo form), as onnxtrain's loss
    reads them (ot_pass_logits_2d): the reshape refuses any other shape."""
    import torch

    logits = model(x)
    if logits.dim() > 2:
        logits = logits.reshape(logits.shape[0], logits.shape[1])
    return torch.nn.functional.cross_entropy(logits, y), logits


def one_step(base, trained, x, y):
    """The step in base's precision: [(key, tensor)], training-mode BNs.
    Runs on base itself (no copy of the model: its parameters are only read,
    and the running statistics the training-mode BNs update are put back)."""
    import torch
    from make_train_golden import make_optim

    params = dict(base.named_parameters())
    unknown = [n for n in trained if n not in params]
    assert not unknown, "trained tensors that are not PyTorch parameters: %s" % unknown[:5]
    bn_train = set_modes(base, set(trained))
    bufs = dict(base.named_buffers())
    keep = [b + "." + s for b in bn_train for s in ("running_mean", "running_var",
                                                    "num_batches_tracked")]
    saved = {k: bufs[k].clone() for k in keep}
    try:
        loss, logits = forward_loss(base, x, y)
        grads = torch.autograd.grad(loss, [params[n] for n in trained])
        out = [("loss", loss.reshape(1)), ("logits", logits)]
        out += [("grad/" + n, g) for n, g in zip(trained, grads)]
        for b in bn_train:
            for s in ("running_mean", "running_var"):
                out.append(("stats/%s.%s" % (b, s), bufs[b + "." + s].clone()))
    finally:
        with torch.no_grad():
            for k, v in saved.items():
                bufs[k].copy_(v)
        base.eval()
        for p in params.values():
            p.requires_grad_(True)
    for kind in ("sgd", "adam"):
        ps = [params[n].detach().clone().requires_grad_(True) for n in trained]
        for p, g in zip(ps, grads):
            p.grad = g.detach()
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


def run_mode(base, base32, trained, x, y, to_file):
    """The mode's records under the file's names (to_file: PyTorch name ->
    initializer name)."""
    import numpy as np
    import torch

    def rename(key):
        kind, _, n = key.partition("/")
        return kind + "/" + to_file[n] if n else key

    ref, bn_train = one_step(base, trained, x.double(), y)
    ref = {rename(k): v.to(torch.float32).numpy() for k, v in ref}
    r32, _ = one_step(base32, trained, x, y)
    recs = list(ref.items())
    for k, v in r32:
        k = rename(k)
        recs.append(("f32err/" + k, np.array([rel_err(k, v.numpy(), ref[k], ref)], np.float32)))
    return recs, {"trained": sorted(to_file[n] for n in trained), "bn_train": bn_train,
                  "loss": float(ref["loss"][0])}


def make(onnxtrain, outdir, name):
    """Writes OUTDIR/NAME unless its references are there for the same model
    file, trained sets and batch (index.json's key). Returns what it did."""
    import shutil
    import torch
    import make_family_tests as fam
    from make_train_golden import write_bin

    folder = os.path.join(outdir, name)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "model.onnx")
    model = None
    if name in fam.ZOO:
        shutil.copyfile(zoo_fixture(outdir, name), path + ".new")
        put_file(path + ".new", path)
    else:
        model, side = build(name)
        export(model, name, side, path)
    plan = plans(onnxtrain, path)
    key = ref_key(folder, plan, name)
    if read_index(folder).get("key") == key and \
            all(os.path.exists(os.path.join(folder, f)) for f in OUTPUTS):
        return "cached"
    if model is None:
        model, side = build(name)
    if name in fam.ZOO:
        # the loss reads the logits before the zoo's Softmax: the family's own
        base, to_pt = zoo_reference(model, path, side, name not in fam.KEEP_BN)
        to_file = {v: k for k, v in to_pt.items()}
        base32 = copy.deepcopy(base).float()
        fast_float64(base)
        plan_pt = {m: sorted(to_pt[n] for n in ns) for m, ns in plan.items()}
    else:
        to_file = {n: n for n in model.state_dict()}
        base32 = copy.deepcopy(model)
        base = fast_float64(model.double())
        plan_pt = plan
    gen = torch.Generator().manual_seed(BATCH_SEED.get(name, 20))
    x = torch.randn(BATCH, 3, side, side, generator=gen)
    with torch.no_grad():
        classes = base32(x[:1]).shape[1]
    y = torch.randint(0, classes, (BATCH,), generator=gen, dtype=torch.int64)
    write_bin(os.path.join(folder, "batches.bin"), [("input.0", x.numpy()), ("labels.0", y.numpy())])
    index = {"family": name, "batch": BATCH, "image": [3, side, side], "classes": classes,
             "key": key, "modes": {}}
    for mode in MODES:
        recs, info = run_mode(base, base32, plan_pt[mode], x, y, to_file)
        write_bin(os.path.join(folder, mode + ".bin"), recs)
        index["modes"][mode] = info
    p = os.path.join(folder, "index.json")
    with open(p + ".tmp", "w") as f:
        json.dump(index, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(p + ".tmp", p)
    return "computed"


def main():
    if len(sys.argv) < 4:
        sys.stderr.write("usage: make_family_golden.py ONNXTRAIN OUTDIR FAMILY...\n")
        return 2
    import torch

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    onnxtrain, outdir = sys.argv[1], sys.argv[2]
    check_grouped_conv()
    for name in sys.argv[3:]:
        print("ok", name, make(onnxtrain, outdir, name))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
