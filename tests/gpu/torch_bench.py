#!/usr/bin/python3
"""PyTorch's side of the benchmark phase of tests/gpu/check.sh: the yardstick
the goals of docs/gpu.md are measured against, and the benchmark's data.

    torch_bench.py data DIR [--images N]
    torch_bench.py export DIR [--size S]
    torch_bench.py train --data FILE --mode full|fine-tune|feature-extract
        [--epochs N] [--batch-size B] [--size S] [--autocast bf16]
        [--device D] [-o STATE.pt]
    torch_bench.py infer [--batch B] [--size S] [--warmup N] [--runs N] [--device D]

data: DIR/data_batch_1.bin and batches.meta.txt, N (default 10,240) seeded
random CIFAR-10 records (1 label byte, 3072 bytes of 32x32 RGB planes), 10
classes. Needs only numpy.

export: torchvision's resnet18 (random weights, seeded, 10 classes) in eval
mode as ONNX with a dynamic batch: DIR/r18.onnx with its BatchNormalization
nodes (the model `onnxtrain finetune` starts from, as
tests/fixtures/make_resnet18.py's resnet18_bn) and DIR/r18_eval.onnx with
them folded into the convolutions (for inference).

train: the transfer-learning tutorial's loop on the same images held in the
device's memory as uint8 (what onnxtrain does for in-memory data sets):
each batch is converted to float, resized to S x S (bilinear), normalised
with ImageNet's mean and std and made channels_last on the device; a new
random order each epoch; model.train(); nn.CrossEntropyLoss; Adam (lr 1e-3
for feature-extract, else 1e-4, as onnxtrain's defaults); loss.item() every
step, as the tutorial accumulates its running loss. What trains: full:
everything; fine-tune: layer4 and fc (requires_grad False elsewhere);
feature-extract: fc only, the frozen backbone running every epoch as the
tutorial runs it. --autocast bf16 runs the forward pass and the loss under
torch.autocast (bf16). torch.backends.cudnn.benchmark on, TF32 off (fp32 is
fp32, as onnxtrain's default). -o saves the trained state_dict (as the
tutorial keeps its weights; onnxtrain's run exports its model).

infer: resnet18 in eval mode, channels_last, under torch.inference_mode();
each run copies a batch from pinned host memory to the device, runs the
model and copies the logits back (what onnxtrain's executor does per run);
the median of --runs timed runs after --warmup untimed ones (cudnn.benchmark
searches during the warm-up).

--device defaults to $DEVICE, else cuda; `cpu` runs every command's logic on
the CPU (the host-side dry run of check.sh, at tiny sizes). Whole-process
times are taken by the caller; BENCH_LAUNCH_MS (milliseconds since the epoch
when the caller started this process) lets train report the time from the
process's start to the end of its first step.

Prints one JSON line on stdout:

    train: {"tool", "version", "device", "mode", "autocast", "batch_size",
            "size", "images", "epochs": [{"seconds", "images_per_s", "loss"}],
            "loop_s", "loop_images_per_s" (every step of every epoch),
            "warm_steps", "steady_images_per_s" (the steps after the first
            warm_steps), "first_step_s" (from the process's start)}
    infer: {"tool", "version", "device", "batch", "size", "warmup", "runs",
            "median_s", "min_s", "max_s", "images_per_s" (batch / median)}
"""
import argparse
import inspect
import json
import os
import statistics
import sys
import time

T_START = time.time()
LR = {"feature-extract": 1e-3, "fine-tune": 1e-4, "full": 1e-4}
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
CLASSES = 10
WARM_STEPS = 3


def launch_time():
    ms = os.environ.get("BENCH_LAUNCH_MS", "")
    return int(ms) / 1000.0 if ms.isdigit() else T_START


def cmd_data(a):
    import numpy as np
    if a.images < 1:
        sys.exit("torch_bench: --images must be at least 1")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, CLASSES, a.images, dtype=np.uint8)
    images = rng.integers(0, 256, (a.images, 3 * 32 * 32), dtype=np.uint8)
    os.makedirs(a.dir, exist_ok=True)
    path = os.path.join(a.dir, "data_batch_1.bin")
    np.concatenate([labels[:, None], images], axis=1).tofile(path + ".tmp")
    os.replace(path + ".tmp", path)
    with open(os.path.join(a.dir, "batches.meta.txt"), "w") as f:
        f.write("".join("c%d\n" % i for i in range(CLASSES)))
    return 0


def onnx_export(torch, model, path, size, keep_bn):
    kw = {}
    params = inspect.signature(torch.onnx.export).parameters
    if "dynamo" in params:  # PyTorch 2.9 and later export with dynamo by default
        kw["dynamo"] = False
    if keep_bn:  # BatchNormalization nodes kept (eval form), not folded into the convolutions
        kw["training"] = torch.onnx.TrainingMode.PRESERVE
        kw["do_constant_folding"] = False
    torch.onnx.export(model, torch.randn(1, 3, size, size), path + ".tmp", input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
                      opset_version=13, **kw)
    os.replace(path + ".tmp", path)


def cmd_export(a):
    import torch
    import torchvision
    torch.manual_seed(0)
    m = torchvision.models.resnet18(num_classes=CLASSES)
    # BatchNorm's parameters and statistics made distinct, as a trained
    # model's are (the exporter shares equal initializers through Identity
    # nodes, and a frozen BatchNormalization needs its own statistics)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                c = mod.num_features
                mod.weight.copy_(0.5 + torch.rand(c, generator=gen))
                mod.bias.copy_(0.1 * torch.randn(c, generator=gen))
                mod.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
                mod.running_var.copy_(0.5 + torch.rand(c, generator=gen))
    m.eval()
    os.makedirs(a.dir, exist_ok=True)
    onnx_export(torch, m, os.path.join(a.dir, "r18.onnx"), a.size, True)
    onnx_export(torch, m, os.path.join(a.dir, "r18_eval.onnx"), a.size, False)
    return 0


def setup(device):
    import torch
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    return torch, dev, sync


def cmd_train(a):
    import numpy as np
    torch, dev, sync = setup(a.device)
    import torch.nn.functional as F
    import torchvision

    raw = np.fromfile(a.data, dtype=np.uint8)
    if raw.size == 0 or raw.size % 3073:
        sys.exit("torch_bench: %s: not a whole number of CIFAR-10 records" % a.data)
    raw = raw.reshape(-1, 3073)
    n = raw.shape[0]
    labels = torch.from_numpy(raw[:, 0].astype(np.int64)).to(dev)
    images = torch.from_numpy(np.ascontiguousarray(raw[:, 1:]).reshape(-1, 3, 32, 32)).to(dev)
    mean = torch.tensor(MEAN, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=dev).view(1, 3, 1, 1)

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=CLASSES)
    if a.mode != "full":
        for p in model.parameters():
            p.requires_grad = False
        trained = [model.fc] + ([model.layer4] if a.mode == "fine-tune" else [])
        for mod in trained:
            for p in mod.parameters():
                p.requires_grad = True
    model = model.to(dev, memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=LR[a.mode])
    criterion = torch.nn.CrossEntropyLoss()
    gen = torch.Generator()
    gen.manual_seed(0)

    def batch(idx):
        x = images[idx].float().div_(255.0)
        if a.size != 32:
            x = F.interpolate(x, size=(a.size, a.size), mode="bilinear", align_corners=False)
        x = (x - mean) / std
        return x.contiguous(memory_format=torch.channels_last), labels[idx]

    epochs, first_step_s, steady_t0, steady_images, step = [], None, None, 0, 0
    sync()
    loop_t0 = time.time()
    for _ in range(a.epochs):
        model.train()
        perm = torch.randperm(n, generator=gen).to(dev)
        t0, loss_sum = time.time(), 0.0
        for s in range(0, n, a.batch_size):
            x, y = batch(perm[s:s + a.batch_size])
            opt.zero_grad(set_to_none=True)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.autocast == "bf16"):
                out = model(x)
                loss = criterion(out, y)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * x.shape[0]
            step += 1
            if first_step_s is None:
                first_step_s = time.time() - launch_time()
            if step == WARM_STEPS:
                steady_t0 = time.time()
            elif step > WARM_STEPS:
                steady_images += x.shape[0]
        sync()
        dt = time.time() - t0
        epochs.append({"seconds": dt, "images_per_s": n / dt if dt > 0 else 0.0,
                       "loss": loss_sum / n})
    loop_s = time.time() - loop_t0
    steady_s = time.time() - steady_t0 if steady_t0 is not None else 0.0
    if a.output:
        torch.save(model.state_dict(), a.output + ".tmp")
        os.replace(a.output + ".tmp", a.output)
    print(json.dumps({
        "tool": "pytorch", "version": torch.__version__, "device": str(dev), "mode": a.mode,
        "autocast": a.autocast, "batch_size": a.batch_size, "size": a.size, "images": n,
        "epochs": epochs, "loop_s": loop_s,
        "loop_images_per_s": n * a.epochs / loop_s if loop_s > 0 else 0.0,
        "warm_steps": WARM_STEPS,
        "steady_images_per_s": steady_images / steady_s if steady_s > 0 and steady_images else None,
        "first_step_s": first_step_s}))
    return 0


def cmd_infer(a):
    torch, dev, sync = setup(a.device)
    import torchvision
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=CLASSES).eval()
    model = model.to(dev, memory_format=torch.channels_last)
    x_host = (torch.rand(a.batch, 3, a.size, a.size) * 2 - 1).contiguous(
        memory_format=torch.channels_last)
    if dev.type == "cuda":
        x_host = x_host.pin_memory()
    times = []
    with torch.inference_mode():
        for i in range(a.warmup + a.runs):
            sync()
            t0 = time.perf_counter()
            y = model(x_host.to(dev, non_blocking=True)).cpu()
            dt = time.perf_counter() - t0
            if i >= a.warmup:
                times.append(dt)
    med = statistics.median(times)
    print(json.dumps({
        "tool": "pytorch", "version": torch.__version__, "device": str(dev), "batch": a.batch,
        "size": a.size, "warmup": a.warmup, "runs": a.runs, "median_s": med,
        "min_s": min(times), "max_s": max(times), "images_per_s": a.batch / med,
        "checksum": float(y.sum())}))
    return 0


def main():
    ap = argparse.ArgumentParser(prog="torch_bench.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("data")
    p.add_argument("dir")
    p.add_argument("--images", type=int, default=10240)
    p = sub.add_parser("export")
    p.add_argument("dir")
    p.add_argument("--size", type=int, default=224)
    device = os.environ.get("DEVICE") or "cuda"
    p = sub.add_parser("train")
    p.add_argument("--data", required=True)
    p.add_argument("--mode", choices=sorted(LR), required=True)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--autocast", choices=["off", "bf16"], default="off")
    p.add_argument("--device", default=device)
    p.add_argument("-o", "--output")
    p = sub.add_parser("infer")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--device", default=device)
    a = ap.parse_args()
    for k in ("epochs", "batch_size", "size", "batch", "runs"):
        if getattr(a, k, 1) < 1:
            ap.error("--%s must be at least 1" % k.replace("_", "-"))
    if getattr(a, "warmup", 0) < 0:
        ap.error("--warmup must be at least 0")
    return {"data": cmd_data, "export": cmd_export, "train": cmd_train,
            "infer": cmd_infer}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
