#!/usr/bin/env python3
"""Compares two onnxtrain binaries on the training workloads of `make bench`.

    python3 tests/bench/compare_builds.py OLD NEW [TASK ...]

OLD and NEW are onnxtrain executables (for example a build of an earlier
commit and build/onnxtrain). Each task (default: fe32 ft32 full32 ft full) is
run BENCH_TRAIN_REPS times per binary (default 3), alternating the order, on
the same ResNet-18 fixture and data as bench.py uses, with the same options.
Prints, per task, both binaries' median wall time and loop speed, their range,
and the ratio NEW/OLD of loop speed (above 1: NEW is faster). Nothing is
asserted; the CPU's name is printed with the table. BENCH_TRAIN_IMAGES and
BENCH_THREADS are read as in bench.py.
"""

import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def main():
    if len(sys.argv) < 3 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help") else 2
    old, new = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    for b in (old, new):
        if not os.access(b, os.X_OK):
            sys.exit("compare_builds: %s is not an executable" % b)
    tasks = sys.argv[3:] or ["fe32", "ft32", "full32", "ft", "full"]
    for t in tasks:
        if t not in bench.TRAIN_CONFIG:
            sys.exit("compare_builds: unknown task %r (one of %s)"
                     % (t, ", ".join(bench.TRAIN_CONFIG)))
    build = os.environ.get("BUILD", "build")
    reps = max(1, int(os.environ.get("BENCH_TRAIN_REPS", "3")))
    threads = int(os.environ.get("BENCH_THREADS", "2"))
    images = bench.train_images(os.environ.get("BENCH_TRAIN_IMAGES", ""))
    os.makedirs(os.path.join(build, "bench"), exist_ok=True)
    model = bench.train_model(build)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    rows = []
    for task in tasks:
        mode, _, epochs, size = bench.TRAIN_CONFIG[task]
        n = images[task]
        data = bench.train_data(build, n)
        out = os.path.join(build, "bench", "compare.onnx")
        argv = ["finetune", model, "--data", data, "--classes", "10", "--mode", mode,
                "--epochs", str(epochs), "--batch-size", str(bench.TRAIN_BATCH),
                "--threads", str(threads), "--image-size", str(size), "-o", out]
        bench.run_child([new, "inspect", model], env=env)  # warm the page cache
        samples = {"old": [], "new": []}
        for i in range(reps):
            order = [("old", old), ("new", new)]
            if i % 2:
                order.reverse()
            for name, binary in order:
                tool = {"name": "onnxtrain", "argv": [binary] + argv, "env": env}
                r, err = bench.train_run(tool, out, n)
                if not r:
                    sys.exit("compare_builds: %s %s: %s" % (task, name, err))
                loop = (sum(e["images"] for e in r["epochs"])
                        / sum(e["seconds"] for e in r["epochs"]))
                samples[name].append((r["wall_s"], loop))
                bench.log("compare: %s %s %.1f s, %.1f img/s" % (task, name, r["wall_s"], loop))
        rows.append((task, mode, size, n, epochs, samples))
    print("CPU: %s, %d threads, %d processes per binary (alternating)"
          % (bench.cpu_name(), threads, reps))
    print("OLD: %s\nNEW: %s\n" % (old, new))
    print("| task | mode | size | images x epochs | OLD wall s (range) | NEW wall s (range) "
          "| OLD loop img/s | NEW loop img/s | NEW/OLD loop speed |")
    print("|---|---|---|---|---|---|---|---|---|")
    for task, mode, size, n, epochs, s in rows:
        ow = [w for w, _ in s["old"]]
        nw = [w for w, _ in s["new"]]
        ol = statistics.median(l for _, l in s["old"])
        nl = statistics.median(l for _, l in s["new"])
        print("| %s | %s | %d | %d x %d | %.1f (%.1f-%.1f) | %.1f (%.1f-%.1f) | %.1f | %.1f | %.3f |"
              % (task, mode, size, n, epochs, statistics.median(ow), min(ow), max(ow),
                 statistics.median(nw), min(nw), max(nw), ol, nl, nl / ol))
    return 0


if __name__ == "__main__":
    sys.exit(main())
