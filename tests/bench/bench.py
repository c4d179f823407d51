#!/usr/bin/python3
"""Benchmarks onnxtrain on ResNet-18: file handling against the onnx Python
package, and inference against onnxruntime-node and PyTorch.

    BUILD=build /usr/bin/python3 tests/bench/bench.py     (make bench runs this,
                                                          through tests/bench/run.sh)

Environment:
    BUILD        build folder holding the onnxtrain binary (default: build)
    ONLY         workloads to run, comma-separated: inspect, convert, infer
                 (default: all three)
    BENCH_REPS   timed repetitions of each inspect/convert command (default 7,
                 at least 5)
    BENCH_MODEL  a model file to use instead of ResNet-18 for inspect/convert
                 (infer always uses the ResNet-18 fixture)
    BENCH_INFER_REPS     processes of each tool per batch size (default 3, at least 3)
    BENCH_INFER_BATCHES  batch sizes (default "1,64")
    BENCH_THREADS        threads for inference (default 2)

Tasks and what they are compared with:
    inspect   onnxtrain inspect FILE      python3 -c 'import onnx; onnx.load(a)'
    convert   onnxtrain convert FILE OUT  python3 -c 'import onnx; onnx.save(onnx.load(a), b)'
    infer     BUILD/bench/bench_infer     tests/bench/ort_infer.js (onnxruntime-node 1.30)
                                          tests/bench/torch_infer.py (PyTorch)

inspect/convert: each command runs once untimed (page cache), then the commands
of a task run in turns, in alternating order, BENCH_REPS times each. Wall time
comes from a monotonic clock around the child; peak RSS is the child's own
ru_maxrss (from wait4, so one child's figure never leaks into another's). The
report gives medians, the ratio python time / onnxtrain time (above 1:
onnxtrain is faster), and peak RSS in MB and as a multiple of the file size. A
reference row times `python3 -c 'import onnx'` alone (interpreter start and
import).

infer: steady-state throughput of ResNet-18 (BUILD/fixtures/resnet18_eval.onnx,
224x224) at each batch size on BENCH_THREADS threads. Every tool runs in its
own process, which does warm-up runs and then timed runs (batch 1: 5 + 30,
batch 64: 2 + 5, other sizes: 3 + 10) and prints images/s as batch / median
run time; the processes of the tools take turns, in rotating order,
BENCH_INFER_REPS times, and the report gives the median images/s over those
processes. onnxtrain runs in tests/bench/bench_infer.c (the executor compiled
once, run repeatedly); onnxruntime-node with intraOpNumThreads = threads and
interOpNumThreads 1; PyTorch as torchvision's resnet18 (random weights) in
eval mode, channels_last, under torch.no_grad(). Also reported: GFLOP/s at
3.63 GFLOP per image and as a percentage of a measured fp32 FMA ceiling
(tests/bench/fma_peak.c on the same threads, best of the widest vector ISA the
CPU has), each tool's peak RSS, and the whole-process wall time of one
`onnxtrain run --random --batch B --threads T` as a secondary figure.
onnxtrain and onnxruntime get the same input data, so their output checksums
should agree; a disagreement is noted. A comparison tool that is missing
(no node or no onnxruntime-node, no torch) leaves its column "unavailable".

Goals (reported, never asserted): convert peak RSS below 2.5x the file size,
and convert at least as fast as python onnx.

Writes BUILD/bench/results.md and BUILD/bench/results.json and prints the
Markdown. Workloads not run this time keep their results from the previous
results.json, marked as earlier. Exits 1 when an onnxtrain command fails (or a
python onnx one).
"""
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY = "/usr/bin/python3"
RSS_GOAL = 2.5  # convert peak RSS / file size


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def make_model(build):
    """Returns the path of the ResNet-18 file, building it when needed."""
    if os.environ.get("BENCH_MODEL"):
        return os.environ["BENCH_MODEL"]
    fixtures = os.path.join(build, "fixtures")
    script = os.path.join(ROOT, "tests", "fixtures", "make_resnet18.py")
    if os.path.exists(script):
        r = subprocess.run([PY, script, fixtures], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        path = os.path.join(fixtures, "resnet18_eval.onnx")
        if r.returncode == 0 and os.path.exists(path):
            return path
        log("bench: %s failed (%s); exporting ResNet-18 here"
            % (script, (r.stderr.strip().splitlines() or ["?"])[-1]))
    path = os.path.join(build, "bench", "resnet18.onnx")
    if os.path.exists(path):
        return path
    code = r"""
import sys, torch, torchvision
torch.manual_seed(0)
m = torchvision.models.resnet18(weights=None).eval()
torch.onnx.export(m, torch.randn(1, 3, 224, 224), sys.argv[1], opset_version=13,
                  input_names=["input"], output_names=["logits"],
                  dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
"""
    tmp = path + ".tmp"
    subprocess.run([PY, "-c", code, tmp], check=True, stdout=subprocess.DEVNULL)
    os.replace(tmp, path)
    return path


def run_once(argv, cleanup=None):
    """Runs argv; returns (seconds, peak RSS bytes, exit code, last stderr line)."""
    if cleanup and os.path.exists(cleanup):
        os.unlink(cleanup)
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    p.stderr.close()
    lines = err.decode("utf-8", "replace").strip().splitlines()
    return dt, ru.ru_maxrss * 1024, p.returncode, (lines[-1] if lines else "")


def commands(ot, model, out_dir, only):
    """The benchmarked commands: {task: [(tool, argv, output file)]}."""
    ot_out = os.path.join(out_dir, "ot_convert.onnx")
    py_out = os.path.join(out_dir, "py_convert.onnx")
    tasks = {
        "inspect": [
            ("onnxtrain", [ot, "inspect", model], None),
            ("python onnx", [PY, "-c", "import sys, onnx; onnx.load(sys.argv[1])", model], None),
        ],
        "convert": [
            ("onnxtrain", [ot, "convert", model, ot_out], ot_out),
            ("python onnx", [PY, "-c", "import sys, onnx; onnx.save(onnx.load(sys.argv[1]), "
                             "sys.argv[2])", model, py_out], py_out),
        ],
    }
    if only:
        if only not in tasks:
            sys.exit("bench: ONLY must be inspect or convert, not %r" % only)
        tasks = {only: tasks[only]}
    tasks["reference"] = [("python3 -c 'import onnx'", [PY, "-c", "import onnx"], None)]
    return tasks


def main():
    build = os.environ.get("BUILD", "build")
    only = os.environ.get("ONLY", "").strip() or None
    reps = max(5, int(os.environ.get("BENCH_REPS", "7")))
    ot = os.path.join(build, "onnxtrain")
    out_dir = os.path.join(build, "bench")
    os.makedirs(out_dir, exist_ok=True)
    if not os.access(ot, os.X_OK):
        sys.exit("bench: %s is not built" % ot)

    model = make_model(build)
    size = os.path.getsize(model)
    log("bench: %s (%.1f MB), %d repetitions" % (model, size / 1e6, reps))
    tasks = commands(ot, model, out_dir, only)

    samples = {}  # (task, tool) -> list of (s, rss)
    failures = []
    for task, cmds in tasks.items():
        for tool, argv, out in cmds:  # warm-up and a first check
            dt, rss, rc, msg = run_once(argv, out)
            if rc != 0:
                failures.append("%s / %s: exit %d: %s" % (task, tool, rc, msg))
            elif out and not os.path.exists(out):
                failures.append("%s / %s: wrote no %s" % (task, tool, out))
            samples[(task, tool)] = []
        if any(f.startswith(task + " /") for f in failures):
            continue
        for i in range(reps):
            order = cmds if i % 2 == 0 else cmds[::-1]
            for tool, argv, out in order:
                dt, rss, rc, msg = run_once(argv, out)
                if rc != 0:
                    failures.append("%s / %s: exit %d on repetition %d: %s"
                                    % (task, tool, rc, i + 1, msg))
                    break
                samples[(task, tool)].append((dt, rss))
        log("bench: %s done" % task)

    rows = []
    for task, cmds in tasks.items():
        ot_median = None
        for tool, argv, out in cmds:
            s = samples[(task, tool)]
            row = {"task": task, "tool": tool, "command": shlex.join(argv), "runs": len(s)}
            if s:
                times = [t for t, _ in s]
                rss = statistics.median(r for _, r in s)
                row.update(median_s=statistics.median(times), min_s=min(times),
                           max_s=max(times), peak_rss_mb=rss / 1e6,
                           rss_over_file=rss / size)
                if tool == "onnxtrain":
                    ot_median = row["median_s"]
                elif ot_median:
                    row["speedup"] = row["median_s"] / ot_median
                if out and os.path.exists(out):
                    row["output_bytes"] = os.path.getsize(out)
            rows.append(row)

    goals = {}
    conv_ot = next((r for r in rows if r["task"] == "convert" and r["tool"] == "onnxtrain"
                    and r["runs"]), None)
    conv_py = next((r for r in rows if r["task"] == "convert" and r["tool"] == "python onnx"
                    and r["runs"]), None)
    if conv_ot:
        goals["convert_rss_below_%.1fx_file" % RSS_GOAL] = conv_ot["rss_over_file"] < RSS_GOAL
    if conv_ot and conv_py:
        goals["convert_at_least_as_fast_as_python"] = conv_py["median_s"] >= conv_ot["median_s"]

    md = render(model, size, reps, rows, goals, failures)
    print(md)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(md)
    result = {
        "model": model, "file_bytes": size, "repetitions": reps,
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(),
                 "python": platform.python_version()},
        "commit": git_describe(),
        "results": rows, "goals": goals, "failures": failures,
    }
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    for name in ("ot_convert.onnx", "py_convert.onnx"):
        p = os.path.join(out_dir, name)
        if os.path.exists(p):
            os.unlink(p)
    return 1 if failures else 0


def git_describe():
    r = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return r.stdout.strip() or None


def render(model, size, reps, rows, goals, failures):
    out = ["## onnxtrain benchmark", "",
           "Model: `%s`, %.1f MB (%d bytes). Median of %d runs per command, in alternating order."
           % (os.path.basename(model), size / 1e6, size, reps), "",
           "| task | tool | median s | min s | peak RSS MB | RSS / file | python / onnxtrain |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if not r["runs"]:
            out.append("| %s | %s | failed | | | | |" % (r["task"], r["tool"]))
            continue
        out.append("| %s | %s | %.3f | %.3f | %.1f | %.2fx | %s |" % (
            r["task"], r["tool"], r["median_s"], r["min_s"], r["peak_rss_mb"],
            r["rss_over_file"], "%.2fx" % r["speedup"] if "speedup" in r else ""))
    out.append("")
    out.append("\"python / onnxtrain\" is python's median time over onnxtrain's: above 1, "
               "onnxtrain is faster. The reference row is the interpreter start and "
               "`import onnx`, included in every python time.")
    if goals:
        out.append("")
        out.append("Goals: " + ", ".join("%s: %s" % (k, "met" if v else "MISSED")
                                         for k, v in goals.items()))
    for f in failures:
        out.append("")
        out.append("FAILED: " + f)
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
