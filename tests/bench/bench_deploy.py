#!/usr/bin/env python3
"""bench_deploy.py: the deployment benchmarks (`make bench-deploy`, which
`make bench` runs after its own workloads; docs/bench.md, docs/deploy.md).

  BUILD=build [BENCH_DEPLOY_REPS=3] [BENCH_DEPLOY_BATCH=8] [BENCH_MODEL=M.onnx]
      /usr/bin/python3 tests/bench/bench_deploy.py

Two measurements on the 45 MB ResNet-18 (tests/fixtures/make_resnet18.py's
resnet18_eval.onnx, 224x224; BENCH_MODEL instead when set):

  convert   wall time of `onnxtrain convert M OUT --fold-bn --simplify`
            against `python3 -c 'import onnx; onnx.save(onnx.load(a), b)'`
            (Debian's python3 with onnx), the two alternating, REPS times
            each; medians and their ratio;
  int8      onnxruntime-node's inference speed of the int8 QDQ model
            (`convert --int8`, calibrated on 32 images of the tiny CIFAR
            fixture) against the float32 one: tests/bench/ort_infer.js, 2
            threads, batch BENCH_DEPLOY_BATCH, the two alternating REPS
            processes each; median images/s and their ratio.

Prints Markdown (with the CPU's name and the load average before and after,
as the machine may be shared) and writes $BUILD/bench/deploy.{md,json}.
Exit status 1 when a measurement could not be made.
"""
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import cpu_name, make_model  # noqa: E402  (tests/bench/bench.py)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY = "/usr/bin/python3"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def timed(argv, env=None):
    """Wall seconds of one run; raises on failure."""
    t = time.perf_counter()
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (os.path.basename(argv[0]), r.returncode,
                                                 (r.stderr.strip().splitlines() or ["?"])[-1]))
    return dt, r.stdout


def bench_convert(ot, model, out_dir, reps):
    a, b = os.path.join(out_dir, "conv_ot.onnx"), os.path.join(out_dir, "conv_py.onnx")
    py = [PY, "-c", "import onnx, sys; onnx.save(onnx.load(sys.argv[1]), sys.argv[2])", model, b]
    ours = [ot, "convert", model, a, "--fold-bn", "--simplify"]
    t_ot, t_py = [], []
    for _ in range(reps):
        t_ot.append(timed(ours)[0])
        t_py.append(timed(py)[0])
    for p in (a, b):
        os.remove(p)
    mo, mp = statistics.median(t_ot), statistics.median(t_py)
    return {"onnxtrain_s": t_ot, "python_onnx_s": t_py, "onnxtrain_median_s": mo,
            "python_onnx_median_s": mp, "speedup": mp / mo,
            "model_mb": os.path.getsize(model) / 1e6}


def bench_int8(ot, model, build, out_dir, reps, batch):
    mods = os.path.abspath(os.path.join(build, "ort", "node_modules"))
    if not os.path.isdir(os.path.join(mods, "onnxruntime-node")):
        raise RuntimeError("onnxruntime-node is not in %s (tests/bench/run.sh installs it)" % mods)
    data = os.path.join(build, "tiny_cifar")
    subprocess.run([PY, os.path.join(ROOT, "tests", "fixtures", "make_tiny_cifar.py"), data],
                   check=True, stdout=subprocess.DEVNULL)
    q = os.path.join(out_dir, "resnet18_int8.onnx")
    timed([ot, "convert", model, q, "--int8", "--calib-data", data, "--calib-images", "32"])
    env = dict(os.environ, NODE_PATH=mods, OMP_NUM_THREADS="2")
    js = os.path.join(ROOT, "tests", "bench", "ort_infer.js")
    runs = {"float32": [], "int8": []}
    for _ in range(reps):
        for name, path in (("float32", model), ("int8", q)):
            _, text = timed(["node", js, path, "--batch", str(batch), "--threads", "2",
                             "--warmup", "2", "--runs", "5"], env=env)
            runs[name].append(json.loads(text.strip().splitlines()[-1])["images_per_s"])
    f, i = statistics.median(runs["float32"]), statistics.median(runs["int8"])
    res = {"batch": batch, "threads": 2, "float32_images_per_s": runs["float32"],
           "int8_images_per_s": runs["int8"], "float32_median": f, "int8_median": i,
           "speedup": i / f, "float32_mb": os.path.getsize(model) / 1e6,
           "int8_mb": os.path.getsize(q) / 1e6}
    os.remove(q)
    return res


def main():
    build = os.environ.get("BUILD", "build")
    reps = int(os.environ.get("BENCH_DEPLOY_REPS", "3"))
    batch = int(os.environ.get("BENCH_DEPLOY_BATCH", "8"))
    ot = os.path.join(build, "onnxtrain")
    out_dir = os.path.join(build, "bench")
    os.makedirs(out_dir, exist_ok=True)
    model = make_model(build)
    load0 = os.getloadavg()
    doc = {"cpu": cpu_name() or "unknown CPU", "cpus": os.cpu_count(), "reps": reps,
           "model": model}
    failed = False
    for key, fn in (("convert", lambda: bench_convert(ot, model, out_dir, reps)),
                    ("int8", lambda: bench_int8(ot, model, build, out_dir, reps, batch))):
        log("bench-deploy: %s ..." % key)
        try:
            doc[key] = fn()
        except (RuntimeError, OSError, subprocess.CalledProcessError, ValueError) as e:
            doc[key] = {"error": str(e)}
            failed = True
    load1 = os.getloadavg()
    doc["load_before"], doc["load_after"] = load0[0], load1[0]
    lines = ["## Deployment (make bench-deploy)", "",
             "%s, %d CPUs; load average %.1f before, %.1f after; medians of %d, the two "
             "sides alternating." % (doc["cpu"], doc["cpus"], load0[0], load1[0], reps), "",
             "| measurement | onnxtrain / int8 | reference / float32 | ratio |",
             "|---|---|---|---|"]
    c = doc["convert"]
    if "error" in c:
        lines.append("| convert --fold-bn --simplify | failed: %s | | |" % c["error"])
    else:
        lines.append("| `convert --fold-bn --simplify` of the %.0f MB ResNet-18 vs python "
                     "onnx load+save | %.2f s | %.2f s | %.2fx faster |"
                     % (c["model_mb"], c["onnxtrain_median_s"], c["python_onnx_median_s"],
                        c["speedup"]))
    q = doc["int8"]
    if "error" in q:
        lines.append("| onnxruntime int8 vs float32 | failed: %s | | |" % q["error"])
    else:
        lines.append("| onnxruntime-node inference, batch %d at 224, 2 threads | %.1f img/s "
                     "(%.1f MB) | %.1f img/s (%.1f MB) | %.2fx |"
                     % (q["batch"], q["int8_median"], q["int8_mb"], q["float32_median"],
                        q["float32_mb"], q["speedup"]))
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(out_dir, "deploy.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out_dir, "deploy.json"), "w") as f:
        json.dump(doc, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
