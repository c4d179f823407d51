#!/usr/bin/python3
"""Threads under load (`make bench-load`): how much a competing
single-threaded process slows onnxtrain's training loop and PyTorch's.

    BUILD=build /usr/bin/python3 tests/bench/bench_load.py

On a shared machine another process often holds a core. An OpenMP team that
assumes every core is its own then waits at each barrier for the thread that
was preempted. This section runs the same training workload as `make bench`'s
(tests/bench/bench.py: ResNet-18 with a new 10-class head, batch 32, a
CIFAR-10-format folder upscaled to the image size; onnxtrain finetune against
tests/bench/torch_train.py), each tool alone and with a competitor beside it:
one process spinning on one core (`python3 -c "while True: pass"`), started
before the tool and killed after it. Tools and conditions alternate, each
(tool, condition) BENCH_LOAD_REPS times; the report gives the median loop
images/s and wall time of each, and each tool's slowdown: alone images/s over
loaded images/s (1.0: unaffected; 2.0: half the speed). The goal (reported,
never asserted): onnxtrain's slowdown no worse than PyTorch's.

onnxtrain runs twice per condition: as a user runs it, with neither
--threads nor OMP_NUM_THREADS (it then takes the cores other processes leave
free at its start, and its line "threads: N (...)" is recorded), which is
the row the goal uses; and with --threads BENCH_THREADS, as PyTorch runs
(`torch.set_num_threads`), which shows what the wait policy alone does.
Both run with the CLI's own short OpenMP spin (GOMP_SPINCOUNT=10000, set by
the CLI when the user set neither it nor OMP_WAIT_POLICY); BENCH_LOAD_ENV
(e.g. "GOMP_SPINCOUNT=300000" for GNU OpenMP's default spin) is added to
both onnxtrain rows' environment to compare policies.

Environment:
    BUILD              build folder with the onnxtrain binary (default build)
    BENCH_THREADS      threads for both tools (default 2)
    BENCH_LOAD_MODE    finetune --mode (default full)
    BENCH_LOAD_IMAGES  training images, one epoch (default 192)
    BENCH_LOAD_SIZE    image size (default 224)
    BENCH_LOAD_REPS    processes per tool and condition (default 3, at least 1)
    BENCH_LOAD_ENV     NAME=VALUE,... added to onnxtrain's environment (default none)

Writes BUILD/bench/load.md and BUILD/bench/load.json, prints the Markdown.
Exits 1 when onnxtrain fails; without torch the PyTorch column is
unavailable.
"""
import json
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the training workload's fixtures and parsers)

COMPETITOR = [bench.PY, "-c", "while True: pass"]
MODES = {"feature-extract", "fine-tune", "full"}


def env_int(name, default, low):
    v = os.environ.get(name, "").strip() or str(default)
    if not v.isdigit() or int(v) < low:
        sys.exit("bench_load: %s takes an integer >= %d, not %r" % (name, low, v))
    return int(v)


def run_tool(tool, loaded):
    """One process of `tool`, with a competitor beside it when `loaded`;
    returns (sample, None) or (None, message)."""
    spin = None
    if loaded:
        spin = subprocess.Popen(COMPETITOR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.2)  # let it reach its core first
    try:
        dt, rss, rc, msg, text = bench.run_child(tool["argv"], cleanup=tool["out"],
                                                 env=tool["env"])
    finally:
        if spin:
            spin.kill()
            spin.wait()
    if rc != 0:
        return None, "exit %d: %s" % (rc, msg)
    picked = None
    if tool["name"].startswith("onnxtrain"):
        r = bench.parse_ot_train(text, tool["images"])
        m = re.search(r"^threads: (\d+) \(", text, re.M)
        picked = int(m.group(1)) if m else None
    else:
        try:
            r = json.loads(text.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return None, "printed no JSON result"
    if not r.get("epochs"):
        return None, "logged no epochs"
    loop = (sum(e["images"] for e in r["epochs"]) / sum(e["seconds"] for e in r["epochs"]))
    return {"wall_s": dt, "loop_images_per_s": loop, "rss": rss, "threads": picked}, None


def main():
    build = os.environ.get("BUILD", "build")
    threads = env_int("BENCH_THREADS", 2, 1)
    mode = os.environ.get("BENCH_LOAD_MODE", "full")
    if mode not in MODES:
        sys.exit("bench_load: BENCH_LOAD_MODE takes %s, not %r" % ("|".join(sorted(MODES)), mode))
    images = env_int("BENCH_LOAD_IMAGES", 192, 1)
    size = env_int("BENCH_LOAD_SIZE", 224, 32)
    reps = env_int("BENCH_LOAD_REPS", 3, 1)
    ot = os.path.join(build, "onnxtrain")
    if not os.access(ot, os.X_OK):
        sys.exit("bench_load: %s is not built" % ot)
    out_dir = os.path.join(build, "bench")
    os.makedirs(out_dir, exist_ok=True)
    try:
        model = bench.train_model(build)
        data = bench.train_data(build, images)
    except RuntimeError as e:
        sys.exit("bench_load: %s" % e)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    # onnxtrain as a user runs it: no thread count given, its own wait policy
    ot_env = {k: v for k, v in os.environ.items()
              if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    extra = [kv for kv in os.environ.get("BENCH_LOAD_ENV", "").split(",") if kv.strip()]
    for kv in extra:
        if "=" not in kv:
            sys.exit("bench_load: BENCH_LOAD_ENV takes NAME=VALUE,..., not %r" % kv)
        ot_env[kv.split("=", 1)[0].strip()] = kv.split("=", 1)[1]
    common = ["--epochs", "1", "--batch-size", str(bench.TRAIN_BATCH),
              "--image-size", str(size)]
    given = ["--threads", str(threads)]
    ot_argv = [ot, "finetune", model, "--data", data, "--classes", "10", "--mode", mode] + common
    tools = [
        {"name": "onnxtrain", "out": os.path.join(out_dir, "load_ot.onnx"), "argv": ot_argv,
         "env": ot_env},
        {"name": "onnxtrain --threads %d" % threads, "out": os.path.join(out_dir, "load_ot.onnx"),
         "argv": ot_argv + given, "env": dict(ot_env, OMP_NUM_THREADS=str(threads))},
        {"name": "pytorch", "out": os.path.join(out_dir, "load_torch.onnx"),
         "argv": [bench.PY, os.path.join(bench.ROOT, "tests", "bench", "torch_train.py"),
                  "--data", data, "--mode", mode] + common + given, "env": env},
    ]
    for t in tools:
        t["argv"] += ["-o", t["out"]]
        t["images"] = images
    bench.run_child([ot, "inspect", model], env=env)  # page cache, untimed
    bench.run_child([bench.PY, "-c", "import torch, torchvision"], env=env)

    samples = {(t["name"], c): [] for t in tools for c in ("alone", "loaded")}
    unavailable, failures = {}, []
    bench.log("bench_load: %s, %d images at %d, %d threads, %d processes per tool and "
              "condition" % (mode, images, size, threads, reps))
    t0 = time.monotonic()
    for i in range(reps):
        conds = ("alone", "loaded") if i % 2 == 0 else ("loaded", "alone")
        for cond in conds:
            for tool in (tools if i % 2 == 0 else tools[::-1]):
                if tool["name"] in unavailable:
                    continue
                r, err = run_tool(tool, cond == "loaded")
                if r:
                    samples[(tool["name"], cond)].append(r)
                    bench.log("bench_load: %s %s: %.1f images/s, %.1f s"
                              % (tool["name"], cond, r["loop_images_per_s"], r["wall_s"]))
                elif tool["name"].startswith("onnxtrain"):
                    failures.append("onnxtrain %s: %s" % (cond, err))
                else:
                    unavailable[tool["name"]] = err
        if failures:
            break

    result = {"mode": mode, "images": images, "image_size": size, "threads": threads,
              "batch": bench.TRAIN_BATCH, "repetitions": reps, "cpu": bench.cpu_name(),
              "cpus": os.cpu_count(), "competitor": " ".join(COMPETITOR),
              "commit": bench.git_describe(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              "onnxtrain_env": extra,
              "unavailable": unavailable, "failures": failures, "tools": []}
    for tool in tools:
        row = {"tool": tool["name"]}
        for cond in ("alone", "loaded"):
            s = samples[(tool["name"], cond)]
            if s:
                row[cond] = {"loop_images_per_s": statistics.median(
                    x["loop_images_per_s"] for x in s),
                    "wall_s": statistics.median(x["wall_s"] for x in s),
                    "samples": [x["loop_images_per_s"] for x in s]}
                picked = [x["threads"] for x in s if x.get("threads") is not None]
                if picked:
                    row[cond]["threads_picked"] = picked
        if "alone" in row and "loaded" in row:
            row["slowdown"] = (row["alone"]["loop_images_per_s"]
                               / row["loaded"]["loop_images_per_s"])
            row["wall_slowdown"] = row["loaded"]["wall_s"] / row["alone"]["wall_s"]
        result["tools"].append(row)
    by = {r["tool"]: r for r in result["tools"]}
    ot_s, pt_s = by["onnxtrain"].get("slowdown"), by["pytorch"].get("slowdown")
    result["goal"] = {"what": "onnxtrain's slowdown under a competing single-threaded "
                      "process no worse than PyTorch's", "onnxtrain": ot_s, "pytorch": pt_s,
                      "met": None if ot_s is None or pt_s is None else ot_s <= pt_s}
    result["total_s"] = time.monotonic() - t0

    md = ["### Threads under load", "",
          "%s, %d images x 1 epoch at %d, batch %d, %d threads; %s; %d processes per tool "
          "and condition, medians. Competitor: `%s` (one core). CPU: %s, %s CPUs. Commit %s."
          % (mode, images, size, bench.TRAIN_BATCH, threads, result["date"], reps,
             result["competitor"], result["cpu"], result["cpus"], result["commit"]), "",
          "| tool | alone images/s | loaded images/s | slowdown | wall alone s | "
          "wall loaded s | threads alone / loaded |", "|---|---:|---:|---:|---:|---:|---|"]
    for r in result["tools"]:
        if r["tool"] in unavailable:
            md.append("| %s | unavailable: %s | | | | | |" % (r["tool"], unavailable[r["tool"]]))
            continue
        a, b = r.get("alone", {}), r.get("loaded", {})
        picked = " / ".join(",".join(str(t) for t in c.get("threads_picked", [])) or "given"
                            for c in (a, b)) if r["tool"] == "onnxtrain" else "%d given" % threads
        md.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            r["tool"], "%.1f" % a["loop_images_per_s"] if a else "",
            "%.1f" % b["loop_images_per_s"] if b else "",
            "%.2fx" % r["slowdown"] if "slowdown" in r else "",
            "%.1f" % a["wall_s"] if a else "", "%.1f" % b["wall_s"] if b else "", picked))
    g = result["goal"]
    md += ["", "\"onnxtrain\" runs as a user runs it (no --threads, no OMP_NUM_THREADS: it "
           "takes the cores other processes leave free at its start; the last column gives "
           "its picks); \"onnxtrain --threads %d\" keeps %d threads as PyTorch does. Both "
           "use the CLI's short OpenMP spin%s." % (
               threads, threads, " with %s added" % ", ".join(extra) if extra else ""),
           "", "Goal: %s (the \"onnxtrain\" row): %s." % (
               g["what"], {True: "met", False: "**missed**", None: "not measured"}[g["met"]])]
    for f in failures:
        md += ["", "FAILED: " + f]
    text = "\n".join(md) + "\n"
    print(text)
    with open(os.path.join(out_dir, "load.md"), "w") as f:
        f.write(text)
    path = os.path.join(out_dir, "load.json")
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    os.replace(path + ".tmp", path)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
