#!/usr/bin/python3
"""Steady-state ResNet-18 inference throughput of PyTorch, for
tests/bench/bench.py (`make bench`, workload "infer").

    /usr/bin/python3 tests/bench/torch_infer.py [--batch N] [--threads N]
        [--warmup N] [--runs N] [--seed S] [--size 224]

Builds torchvision's resnet18 (random weights, seeded: same architecture as the
ONNX fixture, not the same weights), in eval mode and channels_last memory
format, sets torch.set_num_threads(--threads) (and one inter-op thread), and
times --runs forward passes under torch.no_grad() after --warmup untimed ones,
on seeded random input of [batch, 3, size, size] (also channels_last). Prints
one JSON line:

    {"tool": "pytorch", "version", "batch", "threads", "warmup", "runs",
     "median_s", "min_s", "max_s", "images_per_s" (batch / median_s),
     "peak_rss_bytes" (ru_maxrss), "checksum" (sum of the logits)}
"""
import argparse
import json
import resource
import statistics
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=224)
    a = ap.parse_args()
    if a.batch < 1 or a.runs < 1 or a.threads < 1:
        ap.error("--batch, --runs and --threads must be at least 1")

    import torch
    import torchvision

    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(a.seed)
    model = torchvision.models.resnet18(weights=None).eval()
    model = model.to(memory_format=torch.channels_last)
    x = (torch.rand(a.batch, 3, a.size, a.size) * 2 - 1).contiguous(
        memory_format=torch.channels_last)

    times = []
    with torch.no_grad():
        for i in range(a.warmup + a.runs):
            t0 = time.perf_counter()
            y = model(x)
            dt = time.perf_counter() - t0
            if i >= a.warmup:
                times.append(dt)
    med = statistics.median(times)
    print(json.dumps({
        "tool": "pytorch", "version": torch.__version__, "batch": a.batch,
        "threads": torch.get_num_threads(), "warmup": a.warmup, "runs": a.runs,
        "median_s": med, "min_s": min(times), "max_s": max(times),
        "images_per_s": a.batch / med,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "checksum": float(y.sum()),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
