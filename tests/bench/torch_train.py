#!/usr/bin/python3
"""PyTorch's classic transfer-learning tutorial loop on a CIFAR-10-format
folder, for tests/bench/bench.py (`make bench`, the training workloads fe, ft,
full, ft5 at 224 and fe32, ft32, full32 at 32).

    /usr/bin/python3 tests/bench/torch_train.py --data DIR
        --mode feature-extract|fine-tune|full [--epochs N] [--batch-size 32]
        [--threads 2] [--image-size 224] [--classes 10] [--seed 0]
        [--autocast bf16] [-o OUT.onnx]

What it does, as the tutorial does it (and as `onnxtrain finetune` does the
same job):

  - data: DIR/data_batch_*.bin for training and DIR/test_batch.bin for the test
    split (1 label byte + 3072 bytes of 32x32 RGB planes per record), each image
    made a PIL image and put through torchvision's Resize(image_size) (a no-op
    at --image-size 32, CIFAR's own size), ToTensor() and Normalize(ImageNet
    mean, std); no augmentation; a DataLoader
    with num_workers=0, shuffle=True and a generator seeded with --seed;
  - model: torchvision resnet18(weights=None) (random weights: the benchmark
    times the work, not the accuracy), fc replaced by nn.Linear(512, classes),
    channels_last (model and every input batch);
  - trainable: feature-extract: fc only (requires_grad False elsewhere), Adam
    lr 1e-3 on fc's parameters; fine-tune: layer4 and fc, Adam lr 1e-4;
    full: everything, Adam lr 1e-4;
  - model.train() for the training epochs, as the tutorial does (so BatchNorm
    uses batch statistics everywhere, frozen layers included), nn.CrossEntropyLoss;
  - after the last epoch: one evaluation of the test split (model.eval(),
    torch.no_grad()), as onnxtrain does after training, then torch.onnx.export
    of the model in eval mode (opset 13, dynamic batch) to -o.

With --autocast bf16 the training forward pass and loss run under
torch.autocast("cpu", dtype=torch.bfloat16), PyTorch's mixed precision on the
CPU (bf16 convolutions and matmuls, fp32 weights and optimizer); evaluation and
export stay fp32.

torch.set_num_threads(--threads) and one inter-op thread. Prints one line per
epoch on stderr and, last on stdout, one JSON line:

    {"tool": "pytorch", "version", "mode", "threads", "batch_size", "image_size",
     "images" (training images), "epochs": [{"epoch", "images", "seconds",
     "images_per_s", "loss", "acc"}], "test": {"n", "top1", "loss"},
     "export_s", "peak_rss_bytes" (ru_maxrss)}
"""
import argparse
import glob
import json
import os
import resource
import sys
import time

LR = {"feature-extract": 1e-3, "fine-tune": 1e-4, "full": 1e-4}
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def read_cifar(paths):
    """Returns (labels list, uint8 array [n, 3, 32, 32]) from CIFAR-10 binary files."""
    import numpy as np
    raw = b"".join(open(p, "rb").read() for p in paths)
    rec = 1 + 3 * 32 * 32
    if len(raw) % rec:
        raise ValueError("%s: not a whole number of CIFAR-10 records" % ", ".join(paths))
    a = np.frombuffer(raw, np.uint8).reshape(-1, rec)
    return a[:, 0].astype(np.int64).tolist(), a[:, 1:].reshape(-1, 3, 32, 32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--mode", choices=sorted(LR), default="feature-extract")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--autocast", choices=["off", "bf16"], default="off")
    ap.add_argument("-o", "--output")
    a = ap.parse_args()

    import torch
    import torch.nn as nn
    import torchvision
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(a.seed)

    tf = transforms.Compose([transforms.Resize(a.image_size), transforms.ToTensor(),
                             transforms.Normalize(MEAN, STD)])

    class Cifar(Dataset):
        def __init__(self, paths):
            self.labels, self.images = read_cifar(paths)

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            img = Image.fromarray(self.images[i].transpose(1, 2, 0))
            return tf(img), self.labels[i]

    train_files = sorted(glob.glob(os.path.join(a.data, "data_batch_*.bin")))
    if not train_files:
        sys.exit("torch_train: no data_batch_*.bin in %s" % a.data)
    train = Cifar(train_files)
    test_path = os.path.join(a.data, "test_batch.bin")
    test = Cifar([test_path]) if os.path.exists(test_path) else None
    gen = torch.Generator()
    gen.manual_seed(a.seed)
    train_loader = DataLoader(train, batch_size=a.batch_size, shuffle=True, num_workers=0,
                              generator=gen)

    model = torchvision.models.resnet18(weights=None)
    if a.mode == "feature-extract":
        for p in model.parameters():
            p.requires_grad = False
    model.fc = nn.Linear(model.fc.in_features, a.classes)  # new: trainable
    if a.mode == "fine-tune":
        for p in model.parameters():
            p.requires_grad = False
        for p in list(model.layer4.parameters()) + list(model.fc.parameters()):
            p.requires_grad = True
    model = model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=LR[a.mode])
    criterion = nn.CrossEntropyLoss()

    epochs = []
    for epoch in range(a.epochs):
        model.train()
        t0 = time.perf_counter()
        n = correct = 0
        loss_sum = 0.0
        for x, y in train_loader:
            x = x.contiguous(memory_format=torch.channels_last)
            optimizer.zero_grad()
            with torch.set_grad_enabled(True):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.autocast == "bf16"):
                    out = model(x)
                    loss = criterion(out, y)
                loss.backward()
                optimizer.step()
            n += x.shape[0]
            loss_sum += loss.item() * x.shape[0]
            correct += int((out.argmax(1) == y).sum())
        dt = time.perf_counter() - t0
        e = {"epoch": epoch + 1, "images": n, "seconds": dt, "images_per_s": n / dt,
             "loss": loss_sum / max(1, n), "acc": correct / max(1, n)}
        epochs.append(e)
        print("epoch %d/%d  loss %.4f  acc %.4f  %.1f img/s  %.1fs" % (
            e["epoch"], a.epochs, e["loss"], e["acc"], e["images_per_s"], dt),
            file=sys.stderr, flush=True)

    result = {"tool": "pytorch", "version": torch.__version__, "mode": a.mode,
              "threads": torch.get_num_threads(), "batch_size": a.batch_size,
              "image_size": a.image_size, "images": len(train), "epochs": epochs,
              "autocast": a.autocast}
    model.eval()
    if test is not None:
        n = correct = 0
        loss_sum = 0.0
        with torch.no_grad():
            for x, y in DataLoader(test, batch_size=a.batch_size, num_workers=0):
                out = model(x.contiguous(memory_format=torch.channels_last))
                loss_sum += criterion(out, y).item() * x.shape[0]
                correct += int((out.argmax(1) == y).sum())
                n += x.shape[0]
        result["test"] = {"n": n, "top1": correct / max(1, n), "loss": loss_sum / max(1, n)}
        print("test: top-1 %.4f  loss %.4f  (%d images)" % (
            result["test"]["top1"], result["test"]["loss"], n), file=sys.stderr)
    if a.output:
        t0 = time.perf_counter()
        torch.onnx.export(model, torch.randn(1, 3, a.image_size, a.image_size), a.output,
                          opset_version=13, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
        result["export_s"] = time.perf_counter() - t0
        print("wrote %s" % a.output, file=sys.stderr)
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
