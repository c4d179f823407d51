#!/usr/bin/python3
"""The demo's top-1 in fp32 and in bf16 over its seeds (make demo-precision).

    demo_precision.py FP32_RUNS BF16_RUNS OUT

FP32_RUNS and BF16_RUNS hold models/demo.sh's run files,
SHOTS_METHOD_SEED.json (finetune --json, with test.top1). For every
(shots, method) found in both with the same seeds: mean, sample standard
deviation, lowest and highest top-1 of each precision, bf16's mean less
fp32's, and whether bf16's mean lies within fp32's spread: within fp32's
mean plus or minus its standard deviation (the goal) and within its lowest
to highest. Writes OUT/precision.md and OUT/precision.json (each written
under a temporary name and renamed) and prints the Markdown.
"""
import json
import os
import re
import statistics
import sys

METHODS = ("feature-extract", "fine-tune", "from-scratch")
RUN = re.compile(r"^(\d+)_([a-z-]+)_(\d+)\.json$")


def read_runs(folder):
    """{(shots, method): {seed: top1}} from a demo's runs folder."""
    runs = {}
    for name in sorted(os.listdir(folder)):
        m = RUN.match(name)
        if not m:
            continue
        with open(os.path.join(folder, name)) as f:
            top1 = json.load(f)["test"]["top1"]
        runs.setdefault((int(m.group(1)), m.group(2)), {})[int(m.group(3))] = top1
    return runs


def spread(values):
    return {"mean": statistics.mean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "top1": values}


def write(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def main(argv):
    if len(argv) != 4:
        sys.exit("usage: demo_precision.py FP32_RUNS BF16_RUNS OUT")
    a, b, out = read_runs(argv[1]), read_runs(argv[2]), argv[3]
    rows = []
    for key in sorted(set(a) & set(b), key=lambda k: (k[0], METHODS.index(k[1])
                                                      if k[1] in METHODS else 9)):
        seeds = sorted(set(a[key]) & set(b[key]))
        if not seeds:
            continue
        f = spread([a[key][s] for s in seeds])
        h = spread([b[key][s] for s in seeds])
        d = h["mean"] - f["mean"]
        rows.append({"shots": key[0], "method": key[1], "seeds": seeds, "fp32": f, "bf16": h,
                     "delta": d, "within_sd": abs(d) <= f["sd"],
                     "within_range": f["min"] <= h["mean"] <= f["max"]})
    if not rows:
        sys.exit("demo_precision: no run found in both %s and %s" % (argv[1], argv[2]))
    met = all(r["within_sd"] for r in rows)
    md = ["### The demo's top-1 in bf16 against fp32", "",
          "models/demo.sh's transfers to classes 5-9 (5,000 test images), each precision "
          "from its own pretraining, seeds %s. \"within sd\": bf16's mean within fp32's "
          "mean ± its sample standard deviation over the seeds; \"within range\": within "
          "fp32's lowest to highest." % " ".join(str(s) for s in rows[0]["seeds"]), "",
          "| labelled | method | fp32 mean | fp32 sd | fp32 min–max | bf16 mean | bf16 sd "
          "| bf16 − fp32 | within sd | within range |",
          "|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        f, h = r["fp32"], r["bf16"]
        md.append("| %d/class | %s | %.4f | %.4f | %.4f–%.4f | %.4f | %.4f | %+.4f | %s | %s |"
                  % (r["shots"], r["method"], f["mean"], f["sd"], f["min"], f["max"],
                     h["mean"], h["sd"], r["delta"], "yes" if r["within_sd"] else "no",
                     "yes" if r["within_range"] else "no"))
    md += ["", "Goal: mean top-1 in bf16 within fp32's spread over the seeds, every "
           "transfer: %s." % ("met" if met else "**missed**")]
    text = "\n".join(md) + "\n"
    print(text)
    os.makedirs(out, exist_ok=True)
    write(os.path.join(out, "precision.md"), text)
    write(os.path.join(out, "precision.json"),
          json.dumps({"rows": rows, "met": met}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
