#!/usr/bin/python3
"""One training step per torchvision family, onnxtrain against PyTorch
(`make bench-models`; docs/models.md's throughput column).

    /usr/bin/python3 tests/bench/bench_families.py ONNXTRAIN DATA OUT.tsv
        [--size 224] [--batch 8] [--threads 2] [--steps 4] [FAMILY...]

Each family is the fixture of tests/fixtures/make_family_tests.py (same
definition and weights, the same reductions of AlexNet's and VGG's
classifiers and of ResNeXt's and Wide ResNet's depth) exported at opset 13
with a dynamic batch, run at SIZE x SIZE. One exception: where SIZE / 32 is
odd (224), VGG's 2x2 adaptive pooling cannot be exported, so VGG pools to
torchvision's 7x7 there (an identity at 224) and its first classifier layer
reads 512 x 7 x 7. Full mode (every parameter trains) on both sides, SGD
with momentum:

  onnxtrain  `finetune --mode full --max-steps K --epochs K` on DATA (a
             CIFAR-10 folder, resized to SIZE; K epochs, so that K steps exist
             whatever the batch: 96 images are 3 batches of 32), timed for
             K = 2 and K = 2 + STEPS, three times; the median difference
             divided by STEPS is one step (import, compilation, the first
             steps and the export cancel out; a difference that is not
             positive is reported as timing noise, not as a figure);
  PyTorch    the same model, channels-last (model and batch), train() mode,
             torch.set_num_threads(THREADS), CrossEntropyLoss and SGD on a
             fixed random batch: two warm-up steps, then the median of STEPS
             timed steps.

Both run in this process's turn, one after the other, so the ratio compares
the same machine state. Writes OUT.tsv (family, size, batch, threads,
onnxtrain s/step, PyTorch s/step, PyTorch/onnxtrain, a reason where a side
failed) through a temporary file; the rows OUT.tsv already has for families
this run does not time stay when they were taken at the same size, batch and
threads, and go otherwise (one table, one setting). A family that fails on
either side gets a row with "-" and the reason. The default set is every
torchvision family of docs/models.md, the transformers at full size
(vit_b_16_224, swin_t_224: their small configurations take 32x32 only), so
the default --size 224 suits it. Figures are only meaningful on a quiet
machine.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))
DEFAULT = ("alexnet", "vgg11", "vgg11_bn", "resnext50_32x4d", "wide_resnet50_2", "squeezenet1_0",
           "densenet121", "googlenet", "inception_v3", "shufflenet_v2_x0_5", "mnasnet0_5",
           "regnet_y_400mf", "mobilenet_v3_small", "efficientnet_b0", "efficientnet_v2_s",
           "convnext_tiny", "vit_b_16_224", "swin_t_224")


def export(name, size, path):
    import torch
    import make_family_tests as fam

    torch.manual_seed(0)
    model = fam.build(name)
    side = size // 32  # the last feature map of every family here
    if name.startswith("vgg") and side % 2:
        # the fixture's 2x2 adaptive pooling cannot be exported from an odd
        # map (7x7 at 224): torchvision's own 7x7 pooling there (an identity
        # at 224) and a classifier that reads its output
        out = 7 if side % 7 == 0 else 1
        model.avgpool = torch.nn.AdaptiveAvgPool2d((out, out))
        model.classifier[0] = torch.nn.Linear(512 * out * out, 256)
    x0 = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(3))
    fam.randomize(model, x0, layer_norms=name.startswith(("vit", "swin", "convnext")))
    torch.onnx.export(model, x0, path, opset_version=13, input_names=["input"],
                      output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
                      training=torch.onnx.TrainingMode.EVAL, do_constant_folding=True)
    return model


def ot_seconds(ot, model, data, a):
    def run(steps):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            r = subprocess.run([ot, "finetune", model, "--data", data, "--image-size", str(a.size),
                                "--batch-size", str(a.batch), "--epochs", str(steps), "--max-steps",
                                str(steps), "--mode", "full", "--optimizer", "sgd", "--seed", "1",
                                "--threads", str(a.threads), "-o", os.path.join(tmp, "out.onnx")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            t = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError("onnxtrain: " + (r.stderr.strip().splitlines() or ["?"])[-1])
        return t

    # a difference of two whole processes: on a busy machine one of them can
    # be slowed enough to make it small or negative, so take the median of
    # three differences and refuse a result that is not positive
    diffs = [(run(2 + a.steps) - run(2)) / a.steps for _ in range(3)]
    d = statistics.median(diffs)
    if d <= 0:
        raise RuntimeError("timing noise: the longer run was not slower (%s s per step); "
                           "rerun on a quiet machine" % ", ".join("%.3f" % x for x in diffs))
    return d


def torch_seconds(model, a):
    import torch

    torch.set_num_threads(a.threads)
    model = model.to(memory_format=torch.channels_last).train()
    for p in model.parameters():
        p.requires_grad_(True)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(a.batch, 3, a.size, a.size, generator=gen).to(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (a.batch,), generator=gen)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    times = []
    for k in range(2 + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad()
        out = model(x)
        if isinstance(out, tuple):  # GoogLeNet / Inception in train() mode
            out = out[0]
        loss_fn(out, y).backward()
        opt.step()
        if k >= 2:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def kept_rows(path, ran, setting):
    """The rows of an earlier OUT.tsv for families not in `ran`, taken at
    the same (size, batch, threads)."""
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                cells = line.rstrip("\n").split("\t")
                if len(cells) >= 7 and cells[0] not in ran and tuple(cells[1:4]) == setting:
                    rows.append("\t".join(cells))
    return rows


def main():
    p = argparse.ArgumentParser()
    p.add_argument("onnxtrain")
    p.add_argument("data")
    p.add_argument("out")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("families", nargs="*")
    a = p.parse_intermixed_args()
    rows = []
    names = a.families or DEFAULT
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            path = os.path.join(tmp, name + ".onnx")
            ot_s = pt_s = None
            why = ""
            try:
                model = export(name, a.size, path)
                try:
                    ot_s = ot_seconds(a.onnxtrain, path, a.data, a)
                finally:  # PyTorch's figure even when onnxtrain's is refused
                    pt_s = torch_seconds(model, a)
            except Exception as e:  # a row that says why, and the next family
                why = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            cells = [name, str(a.size), str(a.batch), str(a.threads),
                     "%.4f" % ot_s if ot_s else "-", "%.4f" % pt_s if pt_s else "-",
                     "%.2f" % (pt_s / ot_s) if ot_s and pt_s else "-", why]
            rows.append("\t".join(cells))
            print("  ".join(cells[:1] + cells[4:]), flush=True)
    rows += kept_rows(a.out, set(names), (str(a.size), str(a.batch), str(a.threads)))
    with open(a.out + ".tmp", "w") as f:
        f.write("\n".join(rows) + "\n")
    os.replace(a.out + ".tmp", a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
