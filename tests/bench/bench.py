#!/usr/bin/python3
"""Benchmarks onnxtrain on ResNet-18: file handling against the onnx Python
package, inference against onnxruntime-node and PyTorch, and transfer-learning
training against PyTorch.

    BUILD=build /usr/bin/python3 tests/bench/bench.py     (make bench runs this,
                                                          through tests/bench/run.sh)

Environment:
    BUILD        build folder holding the onnxtrain binary (default: build)
    ONLY         workloads to run, comma-separated: inspect, convert, infer,
                 loader, fe, ft, full, ft5, fe32, ft32, full32, bf16; "train"
                 stands for all seven training workloads, "train224" for
                 fe,ft,full,ft5, "train32" for fe32,ft32,full32 (default:
                 everything but loader); "dist" and "deploy" name the sections
                 that make bench runs after this script, and are skipped here
    BENCH_REPS   timed repetitions of each inspect/convert command (default 7,
                 at least 5)
    BENCH_MODEL  a model file to use instead of ResNet-18 for inspect/convert
                 (infer always uses the ResNet-18 fixture)
    BENCH_INFER_REPS     processes of each tool per batch size (default 3, at least 3)
    BENCH_INFER_BATCHES  batch sizes (default "1,64")
    BENCH_THREADS        threads for inference and training (default 2)
    BENCH_TRAIN_REPS     processes of each tool per training workload (default 3,
                         at least 1)
    BENCH_TRAIN_IMAGES   training images per workload, e.g. "fe=64,full32=128"
                         (default fe=512,ft=256,full=128,ft5=512,fe32=512,ft32=256,
                         full32=256; any subset may be given)
    BENCH_LOADER_REPS    processes per loader configuration (default 3, at least 1)
    BENCH_BOUND_REPS     timed steps per mode and dtype of the bound (default 5, at
                         least 3); BENCH_BOUND_BATCH and BENCH_BOUND_SIZE (default 32
                         and 224) change its batch and image size (a bound of another
                         size is not compared with the training loop)
    FULL                 1: every workload but the loader's, at the first performance
                         issue's sizes (the default run: DEFAULT_WORKLOADS, with
                         DEFAULT_IMAGES' image counts)
    OT_DEMO_DATA         the demo's data set for bf16 (default
                         /usr/share/datasets/fashion-mnist, as models/demo.sh)
    BENCH_T0             set by run.sh: its start time (time.time()), so the run's
                         time includes the helpers' build

Tasks and what they are compared with:
    inspect   onnxtrain inspect FILE      python3 -c 'import onnx; onnx.load(a)'
    convert   onnxtrain convert FILE OUT  python3 -c 'import onnx; onnx.save(onnx.load(a), b)'
    infer     BUILD/bench/bench_infer     tests/bench/ort_infer.js (onnxruntime-node 1.30)
                                          tests/bench/torch_infer.py (PyTorch)
    loader    BUILD/bench/bench_loader    the training loop's consumption (224 workloads)
    fe, fe32  onnxtrain finetune --mode feature-extract   tests/bench/torch_train.py
    ft, ft5,  onnxtrain finetune --mode fine-tune         (PyTorch, the classic
      ft32                                                 transfer-learning loop)
    full,     onnxtrain finetune --mode full
      full32
    bf16      the demo's transfer step with --cache-dtype bf16   the same with the
                                                                 default cache (f32)

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
own process, which does warm-up runs and then timed runs (batch 1: 3 + 20,
batch 64: 1 + 3, other sizes: 3 + 10) and prints images/s as batch / median
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
should agree; a disagreement is noted, and so is a shared machine: the CPU
time other processes used during the workload (from /proc/stat, less this
run's own) is recorded, and noted above 0.1 cores on average. A comparison
tool that is missing (no node or no onnxruntime-node, no torch) leaves its
column "unavailable".

training (TRAIN_CONFIG): ResNet-18 (BUILD/fixtures/resnet18_bn.onnx;
torchvision's resnet18 for PyTorch) with a new 10-class head, batch 32, on
BENCH_THREADS threads, on a CIFAR-10-format folder from
tests/fixtures/make_tiny_cifar.py (BUILD/bench/cifar_N: N training images, 32
test images, 32x32, upscaled to the workload's image size):

    workload  --mode           trains            images x epochs  size
    fe        feature-extract  the head          512 x 5          224
    ft        fine-tune        layer4 + head     256 x 1          224
    full      full             everything        128 x 1          224
    ft5       fine-tune        layer4 + head     512 x 5          224
    fe32      feature-extract  the head          512 x 5          32
    ft32      fine-tune        layer4 + head     256 x 1          32
    full32    full             everything        256 x 1          32

(BENCH_TRAIN_IMAGES changes the image counts). Both tools run as whole
processes (start-up, loading, training, a test-split evaluation, ONNX
export), in alternating order, BENCH_TRAIN_REPS times each. The report gives
the median wall time, images/s as training images processed (images x
epochs) / that wall time, the training loop's own images/s and that of epoch
1 (and of the later epochs) from each tool's log, GFLOP/s and % of the FMA
ceiling (see train_gflop_per_image: epoch 1's images/s x the nominal work per
image, forward 3.63 GFLOP at 224 scaled by (size / 224)^2, fe 1x, ft 1.45x,
full 3x forward), peak RSS (wait4), the test top-1 of the last run, the
speed-up PyTorch wall time / onnxtrain's (above 1: onnxtrain is faster) and
the RSS ratio onnxtrain / PyTorch. Other processes' CPU time is recorded per
workload as for infer. The first training workload imports torch once
untimed (the page cache); the later ones find it warm.

FMA ceiling (tests/bench/fma_peak.c, for infer's and training's % of peak):
measured once before the first of those workloads and once after the last,
the best kept, and used by both.

loader: decode + transform throughput of the batch loader (src/data/loader.h)
on an image folder of 256 JPEG files (BUILD/bench/loader_jpeg_256: 4 classes,
sizes from 192 to 320 pixels a side around 224, smooth content with noise,
quality 90, made here with PIL), batch 32, output 224x224 with ImageNet
normalisation: resize + centre crop with 0 (inline in next()), 1 and 2 worker
threads, and the random-resized-crop augmentation with 2 workers. Each
configuration runs as its own process (tests/bench/bench_loader.c: one
untimed epoch, then 3 timed epochs; images/s from the median epoch), the
configurations in rotating order, BENCH_LOADER_REPS times; the report gives
the median, the CPU time per image, and next to it what the training loop
consumes: onnxtrain's loop images/s of the training workloads at 224 (fe,
ft, full, ft5), from this run or the previous results.json (their data is
CIFAR-10 upscaled in memory, not JPEG files, so those figures are the step's
cost alone).

bf16: the accuracy effect of the bf16 prefix cache (`finetune --cache-dtype
bf16`, off by default) on the demo. models/demo.sh's transfer step
(run_transfer: feature-extract at lr 1e-2 and fine-tune at lr 1e-3, classes
5-9, 25 images per class, 10 epochs, batch 25, 32x32, 2 threads, seed 1) from
the demo's pretrained model (made once by the demo's own steps 1 and 2 into
BUILD/bench/demo and kept: BUILD/demo/pretrained_0-4.onnx may be the reduced
one `make test` writes there), once with the default cache and once with
--cache-dtype bf16; each model scored by `onnxtrain eval --data-classes 5-9
--json` on the full test split of those classes. The report gives top-1, top-5, loss and the differences bf16 - f32
per mode, the cache size from finetune's log, and a line under the Goals.
One process each: the figures are accuracies, not timings.

Time: the wall time of every section of the run (each workload, the FMA
ceiling, the fixtures, run.sh's helper builds, the rest) goes into
results.json ("time") and the "Where the bench's time went" table of
results.md; a goal compares a full default run with 15 minutes, measured when
this was one, else estimated from this run's sections and the earlier runs'.

Goals (reported, never asserted; the "Goals" section of results.md, the
"goals" list of results.json): convert peak RSS below 2.5x the file size and
convert at least as fast as python onnx; onnxtrain's images/s at least
onnxruntime's at batch 1 and 64; PyTorch wall time / onnxtrain's at least 7
(fe), 1.5 (ft), 1.7 (full), 3 (ft5) and 1.5 (fe32, ft32, full32); onnxtrain's
peak RSS at most 0.7x PyTorch's in every training workload; a full default
run of the bench in at most 15 minutes.

Writes BUILD/bench/results.md, BUILD/bench/results.json and
BUILD/bench/results.svg (a bar chart of the speed-ups with their goals, made
here without any plotting package) and prints the Markdown; the last line on
stderr is "bench: total N s". Workloads not run this time keep their results
from the previous results.json, marked as earlier. Exits 1 when an onnxtrain
command fails (or a python onnx one); bf16 without the data set or without
--cache-dtype in this onnxtrain is "not run", not a failure.
"""
import contextlib
import json
import os
import platform
import re
import resource
import shlex
import statistics
import subprocess
import tempfile
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY = "/usr/bin/python3"
RSS_GOAL = 2.5  # convert peak RSS / file size


def log(msg):
    print(msg, file=sys.stderr, flush=True)


TRAIN_TASKS = ("fe", "ft", "full", "ft5", "fe32", "ft32", "full32", "full_bf16", "ft5_bf16")
WORKLOADS = ("inspect", "convert", "infer", "loader", "bound") + TRAIN_TASKS + ("bf16",)
# make bench: the ResNet-18 table of the second performance issue, sized to
# finish within DURATION_GOAL_S on 2 cores; FULL=1 (make bench FULL=1) runs
# every workload but the loader's, at the first performance issue's sizes
DEFAULT_WORKLOADS = ("inspect", "convert", "infer", "bound", "fe", "full", "ft5", "full_bf16",
                     "ft5_bf16")
FULL = os.environ.get("FULL", "") not in ("", "0")
FILE_TASKS = ("inspect", "convert")
# workload -> (onnxtrain --mode, default training images, epochs, image size)
TRAIN_CONFIG = {
    "fe": ("feature-extract", 512, 5, 224),
    "ft": ("fine-tune", 256, 1, 224),
    "full": ("full", 128, 1, 224),
    "ft5": ("fine-tune", 512, 5, 224),
    "fe32": ("feature-extract", 512, 5, 32),
    "ft32": ("fine-tune", 256, 1, 32),
    "full32": ("full", 256, 1, 32),
    "full_bf16": ("full", 128, 1, 224),
    "ft5_bf16": ("fine-tune", 512, 5, 224),
}
# the default run's image counts, sized for about 14.4 minutes on 2 cores of
# the AMD EPYC (docs/bench.md, "How long it takes"): onnxtrain's full-training
# processes run about 11-12 s, its ft5 ones 10 s, the bf16 ones 7-9 s, fe's
# about 5.5 s (PyTorch's fe process then runs 60 s); FULL=1 keeps TRAIN_CONFIG's
DEFAULT_IMAGES = {"fe": 320, "full": 192, "ft5": 160, "full_bf16": 224, "ft5_bf16": 160}
if not FULL:
    for _t, _n in DEFAULT_IMAGES.items():
        TRAIN_CONFIG[_t] = (TRAIN_CONFIG[_t][0], _n) + TRAIN_CONFIG[_t][2:]
# mixed-precision workloads: onnxtrain --precision P against PyTorch under
# torch.autocast("cpu", dtype=bfloat16) (tests/bench/torch_train.py --autocast)
TRAIN_PRECISION = {"full_bf16": "bf16", "ft5_bf16": "bf16"}
# ONLY= names that stand for several training workloads
TRAIN_GROUPS = {
    "train": TRAIN_TASKS,
    "train224": tuple(t for t in TRAIN_TASKS if TRAIN_CONFIG[t][3] == 224),
    "train32": tuple(t for t in TRAIN_TASKS if TRAIN_CONFIG[t][3] == 32),
}
TRAIN_TEST_IMAGES = 32
TRAIN_BATCH = 32
GFLOP_PER_IMAGE = 3.63  # ResNet-18 forward at 224x224: 1.81 GMAC
# layer4's share of ResNet-18's forward MACs (0.411 of 1.814 GMAC at any
# size that is a multiple of 32), for fine-tuning's backward pass
LAYER4_SHARE = 0.2266
# goals (reported, never asserted): PyTorch wall time / onnxtrain wall time
TRAIN_SPEEDUP_GOAL = {"fe": 8.0, "ft": 1.5, "full": 2.5, "ft5": 3.5, "fe32": 1.5,
                      "ft32": 1.5, "full32": 1.5, "full_bf16": 1.5, "ft5_bf16": 1.5}
TRAIN_RSS_GOAL = 0.7  # onnxtrain peak RSS / PyTorch's, at most
INFER_GOAL = 1.1  # onnxtrain images/s / onnxruntime's, at least
# the isolated convolution bound (tests/bench/conv_bound.c): ResNet-18's 20
# convolutions as oneDNN primitives alone, batch 32 at 224; each training
# mode's loop as a fraction of its mode's bound, at least BOUND_GOAL
BOUND_BATCH = int(os.environ.get("BENCH_BOUND_BATCH") or 32)
BOUND_SIZE = int(os.environ.get("BENCH_BOUND_SIZE") or 224)
BOUND_GOAL = 0.85
# (training workload, its figure, bound mode, dtype): the loop speed compared
# with the bound: feature extraction's and fine-tuning's epoch 1 (the prefix
# pass and the first epoch of layer4's training), full training's whole loop
BOUND_PAIRS = (("fe", "epoch1_images_per_s", "fe", "f32"),
               ("ft5", "epoch1_images_per_s", "ft", "f32"),
               ("full", "loop_images_per_s", "full", "f32"),
               ("ft5_bf16", "epoch1_images_per_s", "ft", "bf16"),
               ("full_bf16", "loop_images_per_s", "full", "bf16"))
INFER_GOAL_BATCHES = (1, 64)
# batch -> (warm-up runs, timed runs) per process; short, to hold the whole
# bench near its time budget (3 processes per tool remain): batch 1 costs
# about 20 ms a run, batch 64 1.1-1.7 s
INFER_RUNS = {1: (3, 20), 64: (1, 3)}
INFER_RUNS_OTHER = (3, 10)
ORT_VERSION = "1.30"
LOADER_IMAGES = 256
LOADER_CLASSES = 4
LOADER_BATCH = 32
LOADER_SIZE = 224
LOADER_EPOCHS = 3
# (workers, augment): inline, 1 and 2 workers plain, and augmentation on 2
LOADER_CONFIGS = ((0, False), (1, False), (2, False), (2, True))
# The bench's own time budget (performance issue): a full default run
DURATION_GOAL_S = 15 * 60
# bf16 workload: the demo's transfer step (models/demo.sh, run_transfer) from
# the demo's pretrained model, with the default prefix cache and with
# --cache-dtype bf16; (short name, --mode, --lr) per transfer
DEMO_DATA = os.environ.get("OT_DEMO_DATA") or "/usr/share/datasets/fashion-mnist"
DEMO_COMMON = ["--image-size", "32", "--threads", "2", "--seed", "1"]
BF16_TRANSFERS = (("fe", "feature-extract", "1e-2"), ("ft", "fine-tune", "1e-3"))
BF16_ARGS = ["--data-classes", "5-9", "--per-class", "25", "--classes", "5", "--epochs", "10",
             "--batch-size", "25"]
BF16_EVAL_ARGS = ["--data-classes", "5-9", "--json"]
CACHE_DTYPES = ("f32", "bf16")


class Clock:
    """Wall time per section of the run (each workload, the fixtures, the FMA
    ceiling): `sections` maps a name to seconds, in the order first timed.
    Sections nest: a section's time excludes that of the sections timed
    inside it (a workload's fixtures count as "fixtures", not twice)."""

    def __init__(self):
        self.start = time.monotonic()
        self.sections = {}
        self._inner = []  # per open section: seconds of the sections nested in it

    @contextlib.contextmanager
    def section(self, name):
        t0 = time.monotonic()
        self._inner.append(0.0)
        try:
            yield
        finally:
            dt = time.monotonic() - t0
            self.sections[name] = self.sections.get(name, 0.0) + dt - self._inner.pop()
            if self._inner:
                self._inner[-1] += dt


class Fixtures:
    """The run's inputs, each made (or found up to date) once per run, timed
    as the "fixtures" section. get(key, fn, *args) returns fn(*args), called
    on a key's first use; an exception is not remembered."""

    def __init__(self, clock):
        self.clock = clock
        self.made = {}

    def get(self, key, fn, *args):
        if key not in self.made:
            with self.clock.section("fixtures"):
                self.made[key] = fn(*args)
        return self.made[key]


def make_model(build, override=True):
    """Returns the path of the ResNet-18 file, building it when needed
    (BENCH_MODEL instead when set and `override`)."""
    if override and os.environ.get("BENCH_MODEL"):
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


def run_child(argv, cleanup=None, env=None):
    """Runs argv; returns (seconds, peak RSS bytes, exit code, last stderr line,
    stdout text). Peak RSS is the child's own ru_maxrss, from wait4."""
    if cleanup and os.path.exists(cleanup):
        os.unlink(cleanup)
    with tempfile.TemporaryFile() as out:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.PIPE, env=env)
        err = p.stderr.read()
        _, status, ru = os.wait4(p.pid, 0)
        dt = time.monotonic() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        p.stderr.close()
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    lines = err.decode("utf-8", "replace").strip().splitlines()
    return dt, ru.ru_maxrss * 1024, p.returncode, (lines[-1] if lines else ""), text


def run_once(argv, cleanup=None):
    """Runs argv; returns (seconds, peak RSS bytes, exit code, last stderr line)."""
    return run_child(argv, cleanup)[:4]


def commands(ot, model, out_dir, selected):
    """The benchmarked file commands: {task: [(tool, argv, output file)]}."""
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
    tasks = {t: c for t, c in tasks.items() if t in selected}
    tasks["reference"] = [("python3 -c 'import onnx'", [PY, "-c", "import onnx"], None)]
    return tasks


def bench_files(ot, model, size, out_dir, selected, reps, clock):
    """Runs inspect/convert, each task timed as its own section of `clock`;
    returns (rows, failures)."""
    tasks = commands(ot, model, out_dir, selected)
    samples = {}  # (task, tool) -> list of (s, rss)
    failures = []
    for task, cmds in tasks.items():
        with clock.section(task):
            bench_file_task(task, cmds, reps, samples, failures)

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
    for name in ("ot_convert.onnx", "py_convert.onnx"):
        p = os.path.join(out_dir, name)
        if os.path.exists(p):
            os.unlink(p)
    return rows, failures


def bench_file_task(task, cmds, reps, samples, failures):
    """Runs one file task's commands: once untimed, then `reps` times each in
    alternating order; adds to samples[(task, tool)] and failures."""
    for tool, argv, out in cmds:  # warm-up and a first check
        dt, rss, rc, msg = run_once(argv, out)
        if rc != 0:
            failures.append("%s / %s: exit %d: %s" % (task, tool, rc, msg))
        elif out and not os.path.exists(out):
            failures.append("%s / %s: wrote no %s" % (task, tool, out))
        samples[(task, tool)] = []
    if any(f.startswith(task + " /") for f in failures):
        return
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


def file_goals(rows):
    goals = {}
    conv_ot = next((r for r in rows if r["task"] == "convert" and r["tool"] == "onnxtrain"
                    and r["runs"]), None)
    conv_py = next((r for r in rows if r["task"] == "convert" and r["tool"] == "python onnx"
                    and r["runs"]), None)
    if conv_ot:
        goals["convert_rss_below_%.1fx_file" % RSS_GOAL] = conv_ot["rss_over_file"] < RSS_GOAL
    if conv_ot and conv_py:
        goals["convert_at_least_as_fast_as_python"] = conv_py["median_s"] >= conv_ot["median_s"]
    return goals


# ------------------------------------------------------------------- infer

def fma_ceiling(build, threads):
    """Runs the fma_peak builds run.sh made; returns {isa: GFLOP/s}."""
    out = {}
    bench_dir = os.path.join(build, "bench")
    for name in ("fma_peak_avx2", "fma_peak_avx512", "fma_peak_native"):
        exe = os.path.join(bench_dir, name)
        if not os.access(exe, os.X_OK):
            continue
        _, _, rc, msg, text = run_child([exe, "--threads", str(threads)])
        if rc != 0:
            log("bench: %s failed: %s" % (name, msg))
            continue
        try:
            r = json.loads(text)
        except ValueError:
            continue
        isa = r["isa"] if name != "fma_peak_native" else "native (%s)" % r["isa"]
        out[isa] = max(out.get(isa, 0.0), r["gflops"])
    return out


def ort_setup(build):
    """Returns (env for node, version) or (None, reason)."""
    import shutil
    if not shutil.which("node"):
        return None, "node is not installed"
    mods = os.path.abspath(os.path.join(build, "ort", "node_modules"))
    pkg = os.path.join(mods, "onnxruntime-node", "package.json")
    try:
        with open(pkg) as f:
            version = json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        note = os.environ.get("BENCH_ORT_NOTE") or "onnxruntime-node is not in %s" % mods
        return None, note
    if not version.startswith(ORT_VERSION + "."):
        return None, "%s holds onnxruntime-node %s, not %s" % (mods, version, ORT_VERSION)
    env = dict(os.environ, NODE_PATH=mods)
    return env, version


def infer_tools(build, model, threads):
    """Returns (tools, unavailable): tools is a list of dicts {name, label,
    argv, env}; unavailable maps a tool name to the reason."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    tools = [{"name": "onnxtrain", "label": "onnxtrain",
              "argv": [os.path.join(build, "bench", "bench_infer"), model], "env": env}]
    unavailable = {}
    ort_env, ort_ver = ort_setup(build)
    if ort_env:
        ort_env["OMP_NUM_THREADS"] = str(threads)
        tools.append({"name": "onnxruntime-node", "label": "onnxruntime-node %s" % ort_ver,
                      "version": ort_ver,
                      "argv": ["node", os.path.join(ROOT, "tests", "bench", "ort_infer.js"),
                               model], "env": ort_env})
    else:
        unavailable["onnxruntime-node"] = ort_ver
    tools.append({"name": "pytorch", "label": "pytorch",
                  "argv": [PY, os.path.join(ROOT, "tests", "bench", "torch_infer.py")],
                  "env": env})
    return tools, unavailable


def tool_run(tool, batch, threads, warmup, runs):
    """Runs one tool process; returns (result dict, None) or (None, message)."""
    argv = tool["argv"] + ["--batch", str(batch), "--threads", str(threads),
                           "--warmup", str(warmup), "--runs", str(runs)]
    dt, rss, rc, msg, text = run_child(argv, env=tool["env"])
    if rc != 0:
        return None, "exit %d: %s" % (rc, msg)
    try:
        r = json.loads(text.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None, "printed no JSON result"
    r["process_s"] = dt
    r["wait4_rss_bytes"] = rss
    return r, None


def bench_infer(build, ot, model, threads, batches, reps):
    """Runs the infer workload on `model` (the ResNet-18 fixture); returns
    (section dict, failures). The FMA ceiling is measured by the caller and
    added by infer_ceiling()."""
    failures, notes = [], []
    tools, unavailable = infer_tools(build, model, threads)
    if not os.access(tools[0]["argv"][0], os.X_OK):
        failures.append("infer / onnxtrain: %s is not built (tests/bench/run.sh builds it)"
                        % tools[0]["argv"][0])
        return {"model": model, "failures": failures}, failures

    load_before = os.getloadavg()[0]
    busy_before, t_before = cpu_busy_s(), time.monotonic()
    ours_before = children_cpu_s()

    # A first check of every tool, which also warms the page cache.
    for tool in list(tools):
        r, err = tool_run(tool, 1, threads, 0, 1)
        if r:
            tool["version"] = r.get("version", tool.get("version"))
            if tool["name"] == "pytorch" and r.get("version"):
                tool["label"] = "pytorch %s" % r["version"]
            continue
        if tool["name"] == "onnxtrain":
            failures.append("infer / onnxtrain: %s" % err)
            return {"model": model, "failures": failures}, failures
        unavailable[tool["name"]] = err
        tools.remove(tool)
    for name, why in unavailable.items():
        log("bench: infer: the %s column is unavailable: %s" % (name, why))

    proc = {"name": "onnxtrain run", "label": "onnxtrain run (whole process)"}
    section = {"model": model, "threads": threads, "gflop_per_image": GFLOP_PER_IMAGE,
               "repetitions": reps, "tools": {t["name"]: t["label"] for t in tools},
               "unavailable": unavailable, "batches": []}
    for batch in batches:
        warmup, runs = INFER_RUNS.get(batch, INFER_RUNS_OTHER)
        log("bench: infer batch %d: %d warm-up + %d timed runs per process, %d processes "
            "per tool" % (batch, warmup, runs, reps))
        proc_argv = [ot, "run", model, "--random", "--batch", str(batch),
                     "--threads", str(threads)]
        samples = {t["name"]: [] for t in tools}
        proc_samples = []
        entries = tools + [proc]
        for i in range(reps):
            k = i % len(entries)
            for tool in entries[k:] + entries[:k]:
                if tool is proc:
                    dt, rss, rc, msg, _ = run_child(proc_argv, env=tools[0]["env"])
                    if rc != 0:
                        failures.append("infer batch %d / onnxtrain run: exit %d: %s"
                                        % (batch, rc, msg))
                    else:
                        proc_samples.append((dt, rss))
                    continue
                r, err = tool_run(tool, batch, threads, warmup, runs)
                if r:
                    samples[tool["name"]].append(r)
                elif tool["name"] == "onnxtrain":
                    failures.append("infer batch %d / onnxtrain: %s" % (batch, err))
                else:
                    notes.append("batch %d: %s failed on repetition %d: %s"
                                 % (batch, tool["name"], i + 1, err))
        entry = {"batch": batch, "warmup": warmup, "runs": runs, "results": []}
        by = {}
        for tool in tools:
            s = samples[tool["name"]]
            row = {"tool": tool["name"], "label": tool["label"], "processes": len(s)}
            if s:
                ips = [r["images_per_s"] for r in s]
                med = statistics.median(ips)
                gflops = med * GFLOP_PER_IMAGE
                row.update(images_per_s=med, images_per_s_min=min(ips),
                           images_per_s_max=max(ips), images_per_s_samples=ips,
                           batch_ms=1e3 * batch / med, gflops=gflops,
                           peak_rss_mb=statistics.median(r["peak_rss_bytes"] for r in s) / 1e6,
                           checksum=s[-1].get("checksum"))
                by[tool["name"]] = row
            entry["results"].append(row)
        ot_row = by.get("onnxtrain")
        entry["ratios"] = {}
        if ot_row:
            for name, row in by.items():
                if name != "onnxtrain":
                    row["onnxtrain_over_tool"] = ot_row["images_per_s"] / row["images_per_s"]
                    entry["ratios"]["onnxtrain/" + name] = row["onnxtrain_over_tool"]
        ort_row = by.get("onnxruntime-node")
        if ot_row and ort_row and ot_row.get("checksum") is not None:
            a, b = ot_row["checksum"], ort_row["checksum"]
            agree = abs(a - b) <= 1e-3 * max(1.0, abs(b))
            entry["checksums_agree"] = agree
            if not agree:
                notes.append("batch %d: output checksums differ: onnxtrain %g, onnxruntime %g"
                             % (batch, a, b))
        if proc_samples:
            times = [t for t, _ in proc_samples]
            entry["process_run"] = {
                "command": shlex.join(proc_argv), "runs": len(times),
                "median_s": statistics.median(times), "min_s": min(times),
                "peak_rss_mb": statistics.median(r for _, r in proc_samples) / 1e6}
        section["batches"].append(entry)

    # Other work on the machine shows in the load average (the run itself adds
    # up to `threads`).
    section["loadavg_1min"] = {"before": load_before, "after": os.getloadavg()[0]}
    busy_after = cpu_busy_s()
    if busy_before is not None and busy_after is not None:
        wall = time.monotonic() - t_before
        others = max(0.0, busy_after - busy_before - (children_cpu_s() - ours_before))
        section["other_cpu"] = {"wall_s": wall, "cpu_s": others,
                                "cores": others / wall if wall > 0 else 0.0}
        if wall > 0 and others / wall > 0.1:
            notes.append("the machine was shared: other processes used %.0f CPU-seconds "
                         "during the %.0f s of this workload (%.2f cores on average, of %d); "
                         "figures are lower and noisier than on an idle machine, batch 1 on "
                         "OpenMP threads most of all" % (others, wall, others / wall,
                                                         os.cpu_count() or 0))
    section["notes"] = notes
    section["failures"] = failures
    log("bench: infer done")
    return section, failures


def infer_ceiling(section, ceiling):
    """Adds the run's FMA ceiling ({"by_isa", "isa", "gflops"} or None) to an
    infer section: the ceiling and each row's % of it."""
    if not ceiling:
        section.setdefault("notes", []).append("no FMA ceiling measured (fma_peak not built)")
        return
    section["ceiling"] = {k: ceiling[k] for k in ("by_isa", "isa", "gflops", "measurements")
                          if k in ceiling}
    for entry in section.get("batches", []):
        for row in entry["results"]:
            if "gflops" in row:
                row["pct_of_peak"] = 100.0 * row["gflops"] / ceiling["gflops"]


def cpu_busy_s():
    """CPU-seconds all processes have spent busy since boot (/proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def children_cpu_s():
    """CPU-seconds of this process's waited-for children, plus its own."""
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    s = resource.getrusage(resource.RUSAGE_SELF)
    return c.ru_utime + c.ru_stime + s.ru_utime + s.ru_stime


# ------------------------------------------------------------------- train

def train_gflop_per_image(mode, size):
    """Nominal GFLOP per training image per epoch for a --mode at an image
    size: the forward pass is 3.63 GFLOP at 224, scaled by (size / 224)^2; a
    trained part's backward pass counts twice its forward (gradients of the
    activations and of the weights), a frozen part's nothing. So
    feature-extract = 1x forward (the head's backward is negligible),
    fine-tune = forward + 2 x layer4's share (1.45x), full = 3x forward. The
    same figure for both tools, whatever each skips or caches."""
    forward = GFLOP_PER_IMAGE * (size / 224.0) ** 2
    backward = {"feature-extract": 0.0, "fine-tune": 2.0 * LAYER4_SHARE, "full": 2.0}[mode]
    return forward * (1.0 + backward)


def train_images(value):
    """Parses BENCH_TRAIN_IMAGES ("fe=256,ft=256,full=128"); returns {task: n}."""
    out = {t: TRAIN_CONFIG[t][1] for t in TRAIN_TASKS}
    for item in value.replace(" ", ",").split(","):
        if not item.strip():
            continue
        k, sep, v = item.partition("=")
        k = k.strip()
        if not sep or k not in out or not v.strip().isdigit() or int(v) < 1:
            sys.exit("bench: BENCH_TRAIN_IMAGES takes TASK=N items (TASK one of %s), not %r"
                     % (", ".join(TRAIN_TASKS), item))
        out[k] = int(v)
    return out


def train_model(build):
    """Returns the path of the ResNet-18 fixture with BatchNorm nodes, making
    it when needed, or raises RuntimeError."""
    fixtures = os.path.join(build, "fixtures")
    r = subprocess.run([PY, os.path.join(ROOT, "tests", "fixtures", "make_resnet18.py"),
                        fixtures], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    model = os.path.join(fixtures, "resnet18_bn.onnx")
    if r.returncode != 0 or not os.path.exists(model):
        raise RuntimeError("tests/fixtures/make_resnet18.py failed: %s"
                           % (r.stderr.strip().splitlines() or ["?"])[-1])
    return model


def train_data(build, n_train):
    """Returns the CIFAR-10-format folder with n_train training images,
    making it when needed, or raises RuntimeError."""
    data = os.path.join(build, "bench", "cifar_%d" % n_train)
    r = subprocess.run([PY, os.path.join(ROOT, "tests", "fixtures", "make_tiny_cifar.py"),
                        data, str(n_train), str(TRAIN_TEST_IMAGES)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0 or not os.path.exists(os.path.join(data, "data_batch_1.bin")):
        raise RuntimeError("tests/fixtures/make_tiny_cifar.py failed: %s"
                           % (r.stderr.strip().splitlines() or ["?"])[-1])
    return data


OT_EPOCH = re.compile(r"^epoch (\d+)/(\d+)\s+loss (\S+)\s+acc (\S+)\s+lr \S+\s+"
                      r"(\S+) img/s\s+(\S+)s(.*)$")
OT_DATA = re.compile(r"^data: .*\((?:\w+), (\d+) images")
OT_TEST = re.compile(r"^test: top-1 (\S+)")


def parse_ot_train(text, n):
    """Reads `onnxtrain finetune` output (n: training images, unless the log
    says otherwise); returns {"epochs": [...], "test": {...}}."""
    epochs, test = [], None
    for line in text.splitlines():
        line = line.strip()
        m = OT_DATA.match(line)
        if m:
            n = int(m.group(1))
        m = OT_EPOCH.match(line)
        if m:
            ips = float(m.group(5))
            e = {"epoch": int(m.group(1)), "images_per_s": ips, "loss": float(m.group(3)),
                 "acc": float(m.group(4)), "cached": "cached" in m.group(7)}
            # The log rounds seconds to 0.1; images / (images/s) keeps the precision.
            e["seconds"] = n / ips if ips > 0 else float(m.group(6))
            e["images"] = n
            epochs.append(e)
        m = OT_TEST.match(line)
        if m:
            test = {"top1": float(m.group(1))}
    return {"images": n, "epochs": epochs, "test": test}


def train_run(tool, out, n_train):
    """Runs one training process; returns (sample dict, None) or (None, message)."""
    dt, rss, rc, msg, text = run_child(tool["argv"], cleanup=out, env=tool["env"])
    if rc != 0:
        return None, "exit %d: %s" % (rc, msg)
    if not os.path.exists(out):
        return None, "wrote no %s" % out
    if tool["name"] == "onnxtrain":
        r = parse_ot_train(text, n_train)
    else:
        try:
            r = json.loads(text.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return None, "printed no JSON result"
        tool["label"] = "pytorch %s" % r.get("version", "")
    if not r.get("epochs"):
        return None, "logged no epochs"
    r.update(wall_s=dt, rss=rss)
    return r, None


def bench_train(build, ot, task, n_train, threads, reps, fixtures, warm_torch):
    """Runs one training workload; returns (entry dict, failures). With
    warm_torch, first imports torch once untimed (the page cache; later
    workloads find it warm from this one's PyTorch processes)."""
    mode, _, epochs, size = TRAIN_CONFIG[task]
    precision = TRAIN_PRECISION.get(task, "fp32")
    entry = {"task": task, "mode": mode, "images": n_train, "epochs": epochs,
             "precision": precision,
             "test_images": TRAIN_TEST_IMAGES, "threads": threads, "batch": TRAIN_BATCH,
             "image_size": size, "repetitions": reps,
             "gflop_per_image": train_gflop_per_image(mode, size)}
    failures, notes = [], []
    try:
        model = fixtures.get("resnet18_bn", train_model, build)
        data = fixtures.get(("cifar", n_train), train_data, build, n_train)
    except RuntimeError as e:
        failures.append("%s: %s" % (task, e))
        entry["failures"] = failures
        return entry, failures
    entry.update(model=model, data=data)
    out_dir = os.path.join(build, "bench")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    common = ["--epochs", str(epochs), "--batch-size", str(TRAIN_BATCH), "--threads",
              str(threads), "--image-size", str(size)]
    tools = [
        {"name": "onnxtrain", "label": "onnxtrain", "out": os.path.join(out_dir, "ot_train.onnx"),
         "argv": [ot, "finetune", model, "--data", data, "--classes", "10", "--mode", mode]
         + common},
        {"name": "pytorch", "label": "pytorch",
         "out": os.path.join(out_dir, "torch_train.onnx"),
         "argv": [PY, os.path.join(ROOT, "tests", "bench", "torch_train.py"), "--data", data,
                  "--mode", mode] + common},
    ]
    if precision != "fp32":
        tools[0]["argv"] += ["--precision", precision]
        tools[1]["argv"] += ["--autocast", precision]
    for t in tools:
        t["argv"] += ["-o", t["out"]]
        t["env"] = env
    entry["commands"] = {t["name"]: shlex.join(t["argv"]) for t in tools}
    if precision != "fp32" and not accepts_option(ot, "finetune", "--precision"):
        # an onnxtrain without the option: the workload is not run, not failed
        why = "this onnxtrain has no `finetune --precision`"
        log("bench: %s: not run: %s" % (task, why))
        entry.update(results=[], unavailable={"onnxtrain": why}, notes=[], failures=[])
        return entry, []

    # Untimed: warm the page cache for the model and torch's import.
    run_child([ot, "inspect", model], env=env)
    if warm_torch:
        run_child([PY, "-c", "import torch, torchvision, PIL"], env=env)

    load_before = os.getloadavg()[0]
    busy_before, t_before = cpu_busy_s(), time.monotonic()
    ours_before = children_cpu_s()
    samples = {t["name"]: [] for t in tools}
    unavailable = {}
    log("bench: %s: %s, %d images x %d epochs, batch %d at %d, %d threads, %d processes "
        "per tool" % (task, mode, n_train, epochs, TRAIN_BATCH, size, threads, reps))
    for i in range(reps):
        order = tools if i % 2 == 0 else tools[::-1]
        for tool in order:
            if tool["name"] in unavailable:
                continue
            r, err = train_run(tool, tool["out"], n_train)
            if r:
                samples[tool["name"]].append(r)
                log("bench: %s: %s %.1f s" % (task, tool["name"], r["wall_s"]))
            elif tool["name"] == "onnxtrain":
                failures.append("%s / onnxtrain: %s" % (task, err))
            elif not samples[tool["name"]]:
                unavailable[tool["name"]] = err  # e.g. no torch
                log("bench: %s: the %s column is unavailable: %s" % (task, tool["name"], err))
            else:
                notes.append("%s failed on repetition %d: %s" % (tool["name"], i + 1, err))
        if failures:
            break

    by = {}
    entry["results"] = []
    for tool in tools:
        s = samples[tool["name"]]
        row = {"tool": tool["name"], "label": tool["label"], "processes": len(s)}
        if s:
            walls = [r["wall_s"] for r in s]
            wall = statistics.median(walls)
            total = n_train * epochs
            loop = [sum(e["images"] for e in r["epochs"]) / sum(e["seconds"] for e in r["epochs"])
                    for r in s]
            first = [r["epochs"][0]["images_per_s"] for r in s]
            row.update(wall_s=wall, wall_min_s=min(walls), wall_max_s=max(walls),
                       wall_samples=walls, images_per_s=total / wall,
                       loop_images_per_s=statistics.median(loop),
                       epoch1_images_per_s=statistics.median(first),
                       peak_rss_mb=statistics.median(r["rss"] for r in s) / 1e6,
                       epochs_last=s[-1]["epochs"], test=s[-1].get("test"))
            if epochs > 1:
                later = [sum(e["images"] for e in r["epochs"][1:])
                         / sum(e["seconds"] for e in r["epochs"][1:]) for r in s]
                row["later_images_per_s"] = statistics.median(later)
            if tool["name"] == "pytorch":
                row["version"] = s[-1].get("version")
            by[tool["name"]] = row
        entry["results"].append(row)
    train_derived(entry, None)
    for t in tools:
        if os.path.exists(t["out"]):
            os.unlink(t["out"])

    entry["loadavg_1min"] = {"before": load_before, "after": os.getloadavg()[0]}
    busy_after = cpu_busy_s()
    if busy_before is not None and busy_after is not None:
        wall = time.monotonic() - t_before
        others = max(0.0, busy_after - busy_before - (children_cpu_s() - ours_before))
        entry["other_cpu"] = {"wall_s": wall, "cpu_s": others,
                              "cores": others / wall if wall > 0 else 0.0}
        if wall > 0 and others / wall > 0.1:
            notes.append("the machine was shared: other processes used %.0f CPU-seconds "
                         "during the %.0f s of this workload (%.2f cores on average, of %d); "
                         "times are longer and noisier than on an idle machine"
                         % (others, wall, others / wall, os.cpu_count() or 0))
    entry["unavailable"] = unavailable
    entry["notes"] = notes
    entry["failures"] = failures
    log("bench: %s done" % task)
    return entry, failures


def accepts_option(ot, command, option):
    """Whether `onnxtrain COMMAND --help` lists OPTION."""
    r = subprocess.run([ot, command, "--help"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    return re.search(r"(^|[\s,])%s\b" % re.escape(option), r.stdout) is not None


# ------------------------------------------------------------------- bound

def bench_bound(build, threads, reps):
    """The isolated convolution bound: BUILD/bench/conv_bound (run.sh builds
    it) on `threads` threads, batch BOUND_BATCH at BOUND_SIZE, `reps` timed
    steps per mode and dtype. Returns (section dict, failures)."""
    exe = os.path.join(build, "bench", "conv_bound")
    argv = [exe, "--batch", str(BOUND_BATCH), "--size", str(BOUND_SIZE), "--reps", str(reps)]
    section = {"command": shlex.join(argv), "threads": threads}
    if not os.access(exe, os.X_OK):
        return section, ["bound: %s is not built (tests/bench/run.sh builds it)" % exe]
    log("bench: convolution bound: ResNet-18's 20 convolutions alone, batch %d at %d, "
        "%d threads" % (BOUND_BATCH, BOUND_SIZE, threads))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        data = json.loads(r.stdout)
    except ValueError:
        data = None
    if r.returncode != 0 or not data:
        msg = (r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1]
        return section, ["bound: conv_bound failed: %s" % msg]
    section.update(data)
    for e in section.get("results", []):
        if e.get("supported"):
            log("bench: bound %s %s: %.1f images/s (%.0f GFLOP/s)"
                % (e["mode"], e["dtype"], e["images_per_s"], e["gflops"]))
    return section, []


def bound_fractions(result):
    """Each training mode's loop speed over its isolated convolution bound
    (BOUND_PAIRS): a list of {"task", "figure", "mode", "dtype",
    "images_per_s", "bound_images_per_s", "fraction"}, from this run's or the
    previous run's figures."""
    bound = result.get("bound") or {}
    by = {(e["mode"], e["dtype"]): e for e in bound.get("results", []) if e.get("supported")}
    out = []
    for task, figure, mode, dtype in BOUND_PAIRS:
        b = by.get((mode, dtype))
        e = (result.get("train") or {}).get(task) or {}
        ot = next((r for r in e.get("results", []) if r["tool"] == "onnxtrain"
                   and r.get(figure)), None)
        row = {"task": task, "figure": figure, "mode": mode, "dtype": dtype,
               "bound_images_per_s": b["images_per_s"] if b else None,
               "images_per_s": ot[figure] if ot else None, "fraction": None}
        if e.get("image_size", 224) != BOUND_SIZE or e.get("batch", 32) != BOUND_BATCH:
            row["images_per_s"] = None
        if row["images_per_s"] and row["bound_images_per_s"]:
            row["fraction"] = row["images_per_s"] / row["bound_images_per_s"]
        if e.get("earlier"):
            row["earlier"] = e["earlier"]
        out.append(row)
    return out


def train_derived(entry, ceiling):
    """Adds the figures derived from a training entry's medians (also to an
    earlier run's): per row GFLOP/s (epoch 1's images/s x the nominal GFLOP
    per image; epoch 1 is where both tools do the whole work) and, with a
    ceiling ({"gflops"}), % of it; on the PyTorch row and the entry, the
    speed-up (PyTorch's median wall time / onnxtrain's) and the RSS ratio
    (onnxtrain's median peak RSS / PyTorch's)."""
    mode = entry.get("mode") or TRAIN_CONFIG.get(entry.get("task"), ("full",))[0]
    size = entry.get("image_size") or 224
    gpi = entry.setdefault("gflop_per_image", train_gflop_per_image(mode, size))
    by = {}
    for row in entry.get("results", []):
        if not row.get("processes"):
            continue
        by[row["tool"]] = row
        if row.get("epoch1_images_per_s"):
            row["gflops"] = row["epoch1_images_per_s"] * gpi
            if ceiling and ceiling.get("gflops"):
                row["pct_of_peak"] = 100.0 * row["gflops"] / ceiling["gflops"]
    ot, pt = by.get("onnxtrain"), by.get("pytorch")
    if ot and pt:
        pt["onnxtrain_over_tool"] = ot["wall_s"] / pt["wall_s"]
        pt["speedup"] = pt["wall_s"] / ot["wall_s"]
        pt["rss_ratio"] = ot["peak_rss_mb"] / pt["peak_rss_mb"]
        entry["ratio_wall_onnxtrain_over_pytorch"] = pt["onnxtrain_over_tool"]
        entry["speedup"] = pt["speedup"]
        entry["rss_ratio"] = pt["rss_ratio"]
    return entry


# -------------------------------------------------------------------- bf16

def demo_pretrained(build, ot, data, commit):
    """Returns (path, {"commit", "date", "commands"}) of the demo's pretrained
    model, made by the demo's own steps 1 and 2 (models/demo.sh: `onnxtrain
    zoo`, then pretraining on classes 0-4) into BUILD/bench/demo when missing
    and kept there. Not BUILD/demo/pretrained_0-4.onnx: `make test` runs the
    demo at a reduced size (OT_DEMO_QUICK=1) into the same folder, so that
    file may be a weaker model than `make demo`'s. Raises RuntimeError."""
    folder = os.path.join(build, "bench", "demo")
    path = os.path.join(folder, "pretrained_0-4.onnx")
    stamp = os.path.join(folder, "pretrained_0-4.json")
    if os.path.exists(path) and os.path.exists(stamp):
        with open(stamp) as f:
            return path, json.load(f)
    os.makedirs(folder, exist_ok=True)
    base = os.path.join(folder, "resnet18_base.onnx")
    log("bench: bf16: making the demo's pretrained model with its steps 1 and 2 into %s "
        "(once; a minute or two)" % folder)
    steps = [
        [ot, "zoo", "resnet18", "--classes", "5", "--seed", "1", "-o", base],
        [ot, "finetune", base, "--data", data] + DEMO_COMMON
        + ["--data-classes", "0-4", "--per-class", "1000", "--mode", "full", "--lr", "1e-3",
           "--epochs", "2", "--batch-size", "64", "-o", path],
    ]
    for argv in steps:
        _, _, rc, msg, _ = run_child(argv)
        if rc != 0:
            raise RuntimeError("%s: exit %d: %s" % (shlex.join(argv), rc, msg))
    os.unlink(base)
    info = {"commit": commit, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "commands": [shlex.join(a) for a in steps]}
    with open(stamp + ".tmp", "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    os.replace(stamp + ".tmp", stamp)
    return path, info


OT_CACHE = re.compile(r"^prefix cache: (\S+) MB of (\w+)")


def bf16_run(ot, model, data, name, mode, lr, dtype, out_dir):
    """One transfer of the demo (name, mode, lr) with the prefix cache in
    `dtype`, scored by `onnxtrain eval`; returns (result dict, None) or (None,
    message)."""
    out = os.path.join(out_dir, "%s_%s.onnx" % (name, dtype))
    argv = ([ot, "finetune", model, "--data", data] + DEMO_COMMON + BF16_ARGS
            + ["--mode", mode, "--lr", lr]
            + (["--cache-dtype", dtype] if dtype != "f32" else []) + ["-o", out])
    r = {"command": shlex.join(argv)}
    dt, rss, rc, msg, text = run_child(argv, cleanup=out)
    if rc != 0:
        return None, "%s: exit %d: %s" % (r["command"], rc, msg)
    r.update(train_wall_s=dt, train_rss_mb=rss / 1e6)
    for line in text.splitlines():
        m = OT_CACHE.match(line.strip())
        if m:
            r.update(cache_mb=float(m.group(1)), cache_dtype=m.group(2))
    argv = [ot, "eval", out, "--data", data] + BF16_EVAL_ARGS
    dt, _, rc, msg, text = run_child(argv)
    os.unlink(out)
    if rc != 0:
        return None, "%s: exit %d: %s" % (shlex.join(argv), rc, msg)
    try:
        ev = json.loads(text.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None, "%s printed no JSON result" % shlex.join(argv)
    r.update(eval_command=shlex.join(argv), eval_wall_s=dt, top1=ev["top1"],
             top5=ev["top5"], loss=ev.get("loss"), n=ev.get("n"))
    return r, None


def bench_bf16(build, ot, fixtures, commit):
    """Runs the bf16 workload: the demo's transfers (BF16_TRANSFERS) with the
    default prefix cache and with --cache-dtype bf16, each model scored on the
    full test split of classes 5-9; returns (section dict, failures). Without
    the data set or without --cache-dtype in this onnxtrain, the section says
    why and nothing fails."""
    section = {"data": DEMO_DATA, "transfers": [], "unavailable": None}
    failures = []
    if not os.path.exists(DEMO_DATA):
        section["unavailable"] = "no data set at %s (Debian's dataset-fashion-mnist)" % DEMO_DATA
    else:
        r = subprocess.run([ot, "finetune", "--help"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        if "--cache-dtype" not in r.stdout:
            section["unavailable"] = "this onnxtrain has no --cache-dtype option"
    if section["unavailable"]:
        log("bench: bf16: not run: %s" % section["unavailable"])
        section["failures"] = failures
        return section, failures
    try:
        model, made = fixtures.get("demo_pretrained", demo_pretrained, build, ot, DEMO_DATA,
                                   commit)
    except RuntimeError as e:
        failures.append("bf16: making the demo's pretrained model: %s" % e)
        section["failures"] = failures
        return section, failures
    section.update(model=model, model_made=made)
    out_dir = os.path.join(build, "bench", "bf16")
    os.makedirs(out_dir, exist_ok=True)
    log("bench: bf16: the demo's transfers from %s, prefix cache f32 and bf16" % model)
    for name, mode, lr in BF16_TRANSFERS:
        t = {"name": name, "mode": mode, "lr": lr}
        for dtype in CACHE_DTYPES:
            r, err = bf16_run(ot, model, DEMO_DATA, name, mode, lr, dtype, out_dir)
            if r:
                t[dtype] = r
                log("bench: bf16: %s, cache %s: top-1 %.4f (%.1f s + eval %.1f s)"
                    % (name, dtype, r["top1"], r["train_wall_s"], r["eval_wall_s"]))
            else:
                failures.append("bf16 / %s, cache %s: %s" % (name, dtype, err))
        if "f32" in t and "bf16" in t:
            for k in ("top1", "top5", "loss"):
                if t["f32"].get(k) is not None and t["bf16"].get(k) is not None:
                    t["delta_" + k] = t["bf16"][k] - t["f32"][k]
        section["transfers"].append(t)
    # what the default run's log says it cached in: the default's dtype
    defaults = {t["f32"].get("cache_dtype") for t in section["transfers"] if "f32" in t}
    section["default_cache_dtype"] = defaults.pop() if len(defaults) == 1 else None
    section["failures"] = failures
    log("bench: bf16 done")
    return section, failures


# ------------------------------------------------------------------ loader

def loader_images(build):
    """Returns the JPEG image folder for the loader workload, making it when
    needed (deterministic: the same files on every run)."""
    root = os.path.join(build, "bench", "loader_jpeg_%d" % LOADER_IMAGES)
    stamp = os.path.join(root, ".complete")
    if os.path.exists(stamp):
        return root
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(224)
    tmp = root + ".tmp"
    if os.path.exists(tmp):
        import shutil
        shutil.rmtree(tmp)
    for i in range(LOADER_IMAGES):
        c = i % LOADER_CLASSES
        h, w = (int(x) for x in rng.integers(192, 321, size=2))
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        base = np.array([(c * 67 + 40) % 256, (c * 113 + 90) % 256, (c * 29 + 150) % 256],
                        np.float32)
        fx, fy = rng.uniform(0.01, 0.08, size=2)
        wave = 50 * np.sin(xx * fx + yy * fy + rng.uniform(0, 6.3))
        img = base[None, None, :] + wave[:, :, None] + rng.normal(0, 12, (h, w, 3))
        folder = os.path.join(tmp, "class_%d" % c)
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB").save(
            os.path.join(folder, "img_%03d.jpg" % i), quality=90)
    with open(os.path.join(tmp, ".complete"), "w") as f:
        f.write("%d images\n" % LOADER_IMAGES)
    if os.path.exists(root):
        import shutil
        shutil.rmtree(root)
    os.replace(tmp, root)
    return root


def loader_label(workers, augment):
    return "%s, %s" % ("inline (0 workers)" if workers == 0 else
                       "%d worker%s" % (workers, "" if workers == 1 else "s"),
                       "augment" if augment else "resize + crop")


def bench_loader(build, reps, fixtures):
    """Runs the loader workload; returns (section dict, failures)."""
    tool = os.path.join(build, "bench", "bench_loader")
    section = {"images": LOADER_IMAGES, "classes": LOADER_CLASSES, "batch": LOADER_BATCH,
               "size": LOADER_SIZE, "epochs": LOADER_EPOCHS, "repetitions": reps,
               "cpus": os.cpu_count()}
    failures, notes = [], []
    if not os.access(tool, os.X_OK):
        failures.append("loader: %s is not built (tests/bench/run.sh builds it)" % tool)
        section["failures"] = failures
        return section, failures
    try:
        data = fixtures.get("loader_images", loader_images, build)
    except Exception as e:  # PIL or numpy missing, disk full
        failures.append("loader: making the JPEG folder failed: %s" % e)
        section["failures"] = failures
        return section, failures
    files = [os.path.join(d, f) for d, _, fs in os.walk(data) for f in fs if f.endswith(".jpg")]
    section.update(data=data, jpeg_bytes=sum(os.path.getsize(f) for f in files))
    # one thread of OpenMP: the loader's own threads are what is measured
    env = dict(os.environ, OMP_NUM_THREADS="1")
    argv = {cfg: [tool, data, "--workers", str(cfg[0]), "--batch", str(LOADER_BATCH),
                  "--size", str(LOADER_SIZE), "--epochs", str(LOADER_EPOCHS)]
            + (["--augment"] if cfg[1] else []) for cfg in LOADER_CONFIGS}
    section["commands"] = {loader_label(*cfg): shlex.join(a) for cfg, a in argv.items()}
    log("bench: loader: %d JPEG files (%.1f MB), batch %d at %d, %d processes per "
        "configuration" % (len(files), section["jpeg_bytes"] / 1e6, LOADER_BATCH,
                           LOADER_SIZE, reps))
    busy_before, t_before = cpu_busy_s(), time.monotonic()
    ours_before = children_cpu_s()
    samples = {cfg: [] for cfg in LOADER_CONFIGS}
    for i in range(reps):
        k = i % len(LOADER_CONFIGS)
        for cfg in LOADER_CONFIGS[k:] + LOADER_CONFIGS[:k]:
            dt, rss, rc, msg, text = run_child(argv[cfg], env=env)
            try:
                r = json.loads(text.strip().splitlines()[-1]) if rc == 0 else None
            except (ValueError, IndexError):
                r, msg = None, "printed no JSON result"
            if not r:
                failures.append("loader / %s: exit %d: %s" % (loader_label(*cfg), rc, msg))
                continue
            r["rss"] = rss
            samples[cfg].append(r)
        if failures:
            break
    rows = []
    inline = None
    for cfg in LOADER_CONFIGS:
        s = samples[cfg]
        row = {"workers": cfg[0], "augment": cfg[1], "label": loader_label(*cfg),
               "processes": len(s)}
        if s:
            ips = [r["images_per_s"] for r in s]
            med = statistics.median(ips)
            row.update(images_per_s=med, images_per_s_min=min(ips), images_per_s_max=max(ips),
                       images_per_s_samples=ips,
                       cpu_ms_per_image=statistics.median(
                           1e3 * r["cpu_s"] / (r["images"] * r["epochs"]) for r in s),
                       peak_rss_mb=statistics.median(r["rss"] for r in s) / 1e6,
                       checksum=s[-1].get("checksum"))
            if cfg == (0, False):
                inline = med
            elif inline and not cfg[1]:
                row["speedup_over_inline"] = med / inline
        rows.append(row)
    section["results"] = rows
    busy_after = cpu_busy_s()
    if busy_before is not None and busy_after is not None:
        wall = time.monotonic() - t_before
        others = max(0.0, busy_after - busy_before - (children_cpu_s() - ours_before))
        section["other_cpu"] = {"wall_s": wall, "cpu_s": others,
                                "cores": others / wall if wall > 0 else 0.0}
        if wall > 0 and others / wall > 0.1:
            notes.append("the machine was shared: other processes used %.0f CPU-seconds "
                         "during the %.0f s of this workload (%.2f cores on average, of %d)"
                         % (others, wall, others / wall, os.cpu_count() or 0))
    if (os.cpu_count() or 1) < 3:
        notes.append("this machine has %d CPUs: 2 workers can use both here, but in "
                     "training they compete for them with the step's threads"
                     % (os.cpu_count() or 0))
    section["notes"] = notes
    section["failures"] = failures
    log("bench: loader done")
    return section, failures


def loader_consumption(train):
    """onnxtrain's training-loop images/s per training workload, for the loader
    section: {task: {...}}."""
    out = {}
    for task in TRAIN_TASKS:
        e = train.get(task)
        if (e or {}).get("image_size", 224) != LOADER_SIZE:
            continue
        row = next((r for r in (e or {}).get("results", [])
                    if r.get("tool") == "onnxtrain" and r.get("processes")), None)
        if not row:
            continue
        out[task] = {"loop_images_per_s": row["loop_images_per_s"],
                     "epoch1_images_per_s": row["epoch1_images_per_s"],
                     "threads": e.get("threads"), "batch": e.get("batch"),
                     "image_size": e.get("image_size"),
                     "commit": e.get("earlier") or e.get("commit")}
        if "later_images_per_s" in row:
            out[task]["later_images_per_s"] = row["later_images_per_s"]
    return out


# -------------------------------------------------------------------- main

def parse_only(value):
    """Parses ONLY ("fe", "inspect,convert", "train32"); returns the set of
    workloads (when empty: DEFAULT_WORKLOADS, or with FULL=1 all of them but
    the loader's, which measures a part of the pipeline rather than a job and
    runs only when named)."""
    if not value:
        return set(WORKLOADS) - {"loader"} if FULL else set(DEFAULT_WORKLOADS)
    sel = {w.strip() for w in value.replace(" ", ",").split(",") if w.strip()}
    # sections of their own: tests/bench/bench_dist.sh, tests/bench/bench_deploy.py
    if sel & {"dist", "deploy"}:
        sel -= {"dist", "deploy"}
        if not sel:
            sys.exit(0)
    for group, tasks in TRAIN_GROUPS.items():
        if group in sel:
            sel = (sel - {group}) | set(tasks)
    bad = sorted(sel - set(WORKLOADS))
    if bad:
        sys.exit("bench: ONLY takes %s, or a group: %s; comma-separated, not %r"
                 % (", ".join(WORKLOADS), ", ".join("%s (= %s)" % (g, ",".join(t))
                                                   for g, t in TRAIN_GROUPS.items()),
                    ",".join(bad)))
    return sel


def from_earlier(section):
    """A section of the previous results.json carried into this run's, marked
    with the commit that measured it (kept through any number of runs)."""
    return dict(section, earlier=section.get("earlier") or section.get("commit") or "?")


def load_previous(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def main():
    clock = Clock()
    helpers_s = run_sh_seconds()
    build = os.environ.get("BUILD", "build")
    selected = parse_only(os.environ.get("ONLY", "").strip())
    reps = max(5, int(os.environ.get("BENCH_REPS", "7")))
    infer_reps = max(3, int(os.environ.get("BENCH_INFER_REPS", "3")))
    threads = max(1, int(os.environ.get("BENCH_THREADS", "2")))
    batches = [int(b) for b in os.environ.get("BENCH_INFER_BATCHES", "1,64")
               .replace(" ", ",").split(",") if b.strip()]
    train_reps = max(1, int(os.environ.get("BENCH_TRAIN_REPS", "3")))
    loader_reps = max(1, int(os.environ.get("BENCH_LOADER_REPS", "3")))
    n_images = train_images(os.environ.get("BENCH_TRAIN_IMAGES", ""))
    ot = os.path.join(build, "onnxtrain")
    out_dir = os.path.join(build, "bench")
    os.makedirs(out_dir, exist_ok=True)
    if not os.access(ot, os.X_OK):
        sys.exit("bench: %s is not built" % ot)
    json_path = os.path.join(out_dir, "results.json")
    prev = load_previous(json_path)
    commit = git_describe()
    fixtures = Fixtures(clock)

    result = {
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "cpu": cpu_name(),
                 "python": platform.python_version()},
        "commit": commit, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "workloads": sorted(selected, key=WORKLOADS.index),
    }
    failures = []
    file_sel = [t for t in FILE_TASKS if t in selected]
    rows = []
    if file_sel:
        model = fixtures.get(("model", True), make_model, build)
        size = os.path.getsize(model)
        log("bench: %s (%.1f MB), %d repetitions" % (model, size / 1e6, reps))
        rows, f = bench_files(ot, model, size, out_dir, file_sel, reps, clock)
        failures += f
        result.update(model=model, file_bytes=size, repetitions=reps)
    elif prev.get("results"):
        for k in ("model", "file_bytes", "repetitions"):
            if k in prev:
                result[k] = prev[k]
    # Rows of file tasks not run this time come from the previous results.
    ran = set(file_sel) | ({"reference"} if file_sel else set())
    for r in prev.get("results", []):
        if r.get("task") not in ran and r.get("task") in FILE_TASKS + ("reference",):
            r = dict(r)
            r.setdefault("earlier", prev.get("commit") or "?")
            rows.append(r)
    order = {t: i for i, t in enumerate(FILE_TASKS + ("reference",))}
    rows.sort(key=lambda r: order.get(r["task"], 99))
    result["results"] = rows
    result["file_goals"] = file_goals(rows)

    # The FMA ceiling (infer's and training's % of peak): measured before the
    # first of those workloads and after the last, the best kept.
    train_sel = [t for t in TRAIN_TASKS if t in selected]
    ceilings = []
    if "infer" in selected or train_sel:
        with clock.section("FMA ceiling"):
            log("bench: fp32 FMA ceiling on %d threads" % threads)
            ceilings.append(fma_ceiling(build, threads))

    if "infer" in selected:
        with clock.section("infer"):
            model = fixtures.get(("model", False), make_model, build, False)
            section, f = bench_infer(build, ot, model, threads, batches, infer_reps)
        section.update(commit=commit, date=result["date"])
        failures += f
        result["infer"] = section
    elif prev.get("infer"):
        result["infer"] = from_earlier(prev["infer"])

    if "bound" in selected:
        with clock.section("bound"):
            section, f = bench_bound(build, threads,
                                     max(3, int(os.environ.get("BENCH_BOUND_REPS", "5"))))
        section.update(commit=commit, date=result["date"])
        failures += f
        result["bound"] = section
    elif prev.get("bound"):
        result["bound"] = from_earlier(prev["bound"])

    if "loader" in selected:
        with clock.section("loader"):
            section, f = bench_loader(build, loader_reps, fixtures)
        section.update(commit=commit, date=result["date"])
        failures += f
        result["loader"] = section
    elif prev.get("loader"):
        result["loader"] = from_earlier(prev["loader"])

    # Training workloads not run this time come from the previous results.
    train = {}
    for task in TRAIN_TASKS:
        if task in selected:
            with clock.section(task):
                entry, f = bench_train(build, ot, task, n_images[task], threads, train_reps,
                                       fixtures, warm_torch=task == train_sel[0])
            entry.update(commit=commit, date=result["date"])
            failures += f
            train[task] = entry
        elif task in prev.get("train", {}):
            train[task] = from_earlier(prev["train"][task])

    ceiling = None
    if ceilings:
        with clock.section("FMA ceiling"):
            ceilings.append(fma_ceiling(build, threads))
        by_isa = {}
        for src in ceilings:
            for isa, v in src.items():
                by_isa[isa] = max(by_isa.get(isa, 0.0), v)
        if by_isa:
            isa = max(by_isa, key=by_isa.get)
            ceiling = {"by_isa": by_isa, "isa": isa, "gflops": by_isa[isa],
                       "threads": threads, "commit": commit, "measurements": len(ceilings)}
    if "infer" in selected:
        infer_ceiling(result["infer"], ceiling)
    if not train_sel:
        ceiling = prev.get("train_ceiling")
    if train:
        for entry in train.values():
            train_derived(entry, ceiling)
        result["train"] = train
        if ceiling:
            result["train_ceiling"] = ceiling
    if result.get("bound"):
        result["bound"]["fractions"] = bound_fractions(result)
    if result.get("loader"):
        # what the training step consumes, from this run's or the previous results
        result["loader"]["training_consumption"] = loader_consumption(train)

    if "bf16" in selected:
        with clock.section("bf16"):
            section, f = bench_bf16(build, ot, fixtures, commit)
        section.update(commit=commit, date=result["date"], wall_s=clock.sections["bf16"])
        failures += f
        result["bf16"] = section
    elif prev.get("bf16"):
        result["bf16"] = from_earlier(prev["bf16"])

    result["failures"] = failures
    result["time"] = run_time(clock, helpers_s, selected, prev, commit)
    result["total_s"] = result["time"]["total_s"]
    result["goals"] = goals(result)
    svg_path = os.path.join(out_dir, "results.svg")
    with open(svg_path + ".tmp", "w") as f:
        f.write(render_chart(result))
    os.replace(svg_path + ".tmp", svg_path)
    result["chart"] = svg_path

    md = render(result)
    print(md)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(md)
    with open(json_path + ".tmp", "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    os.replace(json_path + ".tmp", json_path)
    log("bench: total %.0f s (%s)" % (time.monotonic() - clock.start + helpers_s,
                                     ",".join(result["workloads"])))
    return 1 if failures else 0


# -------------------------------------------------------------------- time

# the sections of a full default run that run.sh and bench.py time, in
# report order (the workloads, the reference row of inspect/convert, the
# ceiling); fixtures, helpers and the rest are each run's own
DEFAULT_SECTIONS = (("inspect", "convert", "reference", "FMA ceiling")
                    + tuple(w for w in DEFAULT_WORKLOADS if w not in ("inspect", "convert")))
SECTION_LABEL = {
    "helpers": "run.sh: building the helpers",
    "reference": "reference row (python3 -c 'import onnx')",
    "FMA ceiling": "FMA ceiling (fma_peak)",
    "bound": "convolution bound (conv_bound)",
    "fixtures": "fixtures (models, data)",
    "other": "start-up, report, between sections",
}


def run_sh_seconds():
    """Seconds tests/bench/run.sh spent before starting bench.py (building
    the helpers), from the BENCH_T0 it exports; 0 without it."""
    try:
        dt = time.time() - float(os.environ.get("BENCH_T0", ""))
    except ValueError:
        return 0.0
    return dt if 0.0 <= dt < 3600.0 else 0.0


def earlier_seconds(prev, key):
    """An earlier run's time for a DEFAULT_SECTIONS key: (seconds, commit,
    approximate) or None. Runs from before the time was recorded give an
    approximation: a workload's other_cpu window (infer and training: its
    runs, without fixtures or warm-ups), or (runs + 1) x the median per
    command of inspect/convert."""
    rec = (prev.get("time") or {}).get("sections_by_key", {}).get(key)
    if rec:
        return rec["s"], rec.get("commit"), rec.get("approx", False)
    if key == "infer":
        e = prev.get("infer") or {}
    else:
        e = (prev.get("train") or {}).get(key) or {}
    if (e.get("other_cpu") or {}).get("wall_s"):
        return e["other_cpu"]["wall_s"], e.get("earlier") or e.get("commit"), True
    rows = [r for r in prev.get("results", []) if r.get("task") == key and r.get("runs")]
    if rows:
        return (sum((r["runs"] + 1) * r["median_s"] for r in rows),
                rows[0].get("earlier") or prev.get("commit"), True)
    return None


def run_time(clock, helpers_s, selected, prev, commit):
    """Where this run's time went and what a full default run takes:
    {"total_s", "sections": [{"name", "s"}] (this run, in order),
    "sections_by_key": {key: {"s", "commit", "approx"[, "earlier"]}} (every
    DEFAULT_SECTIONS key, this run's or an earlier run's), "default_run": {"s",
    "estimated", "missing"}, "goal_s"}."""
    total = time.monotonic() - clock.start + helpers_s
    sections = [{"name": "helpers", "s": helpers_s}] if helpers_s else []
    sections += [{"name": k, "s": v} for k, v in clock.sections.items()]
    sections.append({"name": "other", "s": max(0.0, total - sum(x["s"] for x in sections))})
    this = {x["name"]: x["s"] for x in sections}
    by_key, missing = {}, []
    for key in DEFAULT_SECTIONS:
        if key in this:
            by_key[key] = {"s": this[key], "commit": commit, "approx": False}
            continue
        e = earlier_seconds(prev, key)
        if e:
            by_key[key] = {"s": e[0], "commit": e[1], "approx": e[2], "earlier": True}
        else:
            missing.append(key)
    default = parse_only("")
    estimated = not default <= selected
    # this run less what a default run does not do, plus the earlier runs' rest
    s = total - sum(v for k, v in this.items() if k in WORKLOADS and k not in default)
    s += sum(v["s"] for v in by_key.values() if v.get("earlier"))
    return {"total_s": total, "sections": sections, "sections_by_key": by_key,
            "default_run": {"s": s, "estimated": estimated, "missing": missing},
            "goal_s": DURATION_GOAL_S}


# ------------------------------------------------------------------- goals

TRAIN_TITLE = {"feature-extract": "feature extraction", "fine-tune": "fine-tuning",
               "full": "full training"}


def goal(name, bar, kind, what, measured, op, target, earlier=None, note=None, unit="x"):
    """One goal: {"name", "bar" (the chart's label, or None), "kind", "what",
    "measured", "op", "target", "unit" ("x" for ratios, "min"), "met" (None
    when not measured), "earlier", "note"}."""
    met = None
    if measured is not None:
        met = {">=": measured >= target, "<=": measured <= target, "<": measured < target}[op]
    return {"name": name, "bar": bar, "kind": kind, "what": what, "measured": measured,
            "op": op, "target": target, "unit": unit, "met": met, "earlier": earlier,
            "note": note}


def goals(result):
    """The issue's goals with this run's (or the previous run's) medians, as a
    list of goal() dicts: convert against python onnx, inference against
    onnxruntime at batch 1 and 64, each training workload's wall time and peak
    RSS against PyTorch, and the bench's own duration (a full default run,
    this one or estimated from its sections and the earlier runs')."""
    out = []
    rows = result.get("results", [])
    conv_ot = next((r for r in rows if r["task"] == "convert" and r["tool"] == "onnxtrain"
                    and r.get("runs")), None)
    conv_py = next((r for r in rows if r["task"] == "convert" and r["tool"] == "python onnx"
                    and r.get("runs")), None)
    out.append(goal("convert speed", "convert", "file", "convert: python onnx time / "
                    "onnxtrain's", conv_py.get("speedup") if conv_py else None, ">=", 1.0,
                    (conv_py or {}).get("earlier")))
    out.append(goal("convert RSS", None, "file", "convert: onnxtrain peak RSS / file size",
                    conv_ot["rss_over_file"] if conv_ot else None, "<", RSS_GOAL,
                    (conv_ot or {}).get("earlier")))

    infer = result.get("infer") or {}
    for batch in INFER_GOAL_BATCHES:
        e = next((e for e in infer.get("batches", []) if e["batch"] == batch), {})
        ort = next((r for r in e.get("results", []) if r["tool"] == "onnxruntime-node"
                    and "onnxtrain_over_tool" in r), None)
        note = None
        if not ort and infer.get("unavailable", {}).get("onnxruntime-node"):
            note = "onnxruntime unavailable: %s" % infer["unavailable"]["onnxruntime-node"]
        out.append(goal("infer batch %d" % batch, "infer b%d" % batch, "infer",
                        "inference, batch %d: onnxtrain images/s / onnxruntime's" % batch,
                        ort["onnxtrain_over_tool"] if ort else None, ">=", INFER_GOAL,
                        infer.get("earlier"), note))

    train = result.get("train") or {}
    tasks = [t for t in TRAIN_TASKS if t in DEFAULT_WORKLOADS or t in train]
    for kind in ("wall", "rss"):
        for task in tasks:
            mode, n, epochs, size = TRAIN_CONFIG[task]
            e = train.get(task) or {}
            work = "%d x %d at %d" % (e.get("images", n), e.get("epochs", epochs),
                                      e.get("image_size", size))
            note = None
            if e and (e.get("images"), e.get("epochs"), e.get("image_size")) != (n, epochs, size):
                note = "measured on %s; the goal is for %d x %d at %d" % (work, n, epochs, size)
            if e and "onnxtrain" not in {r["tool"] for r in e.get("results", [])
                                         if r.get("processes")}:
                note = "onnxtrain failed"
            elif e.get("unavailable", {}).get("pytorch"):
                note = "PyTorch unavailable: %s" % e["unavailable"]["pytorch"]
            what = "%s: %s, %s%s" % (task, TRAIN_TITLE[mode], work,
                                     ", " + TRAIN_PRECISION[task] if task in TRAIN_PRECISION
                                     else "")
            if e.get("unavailable", {}).get("onnxtrain"):
                note = "not run: %s" % e["unavailable"]["onnxtrain"]
            if kind == "wall":
                out.append(goal("%s wall time" % task, task, "wall",
                                what + ": PyTorch wall time / onnxtrain's", e.get("speedup"),
                                ">=", TRAIN_SPEEDUP_GOAL[task], e.get("earlier"), note))
            else:
                out.append(goal("%s peak RSS" % task, None, "rss",
                                what + ": onnxtrain peak RSS / PyTorch's", e.get("rss_ratio"),
                                "<=", TRAIN_RSS_GOAL, e.get("earlier"), note))

    bound = result.get("bound") or {}
    for f in bound.get("fractions", []):
        figure = "epoch 1" if f["figure"] == "epoch1_images_per_s" else "loop"
        out.append(goal("%s bound" % f["task"], None, "bound",
                        "%s: %s %s images/s / the isolated convolution bound (%s, %s)"
                        % (f["task"], TRAIN_TITLE[TRAIN_CONFIG[f["task"]][0]], figure,
                           f["mode"], f["dtype"]),
                        f["fraction"], ">=", BOUND_GOAL, f.get("earlier") or bound.get("earlier")))

    t = result.get("time") or {}
    run = t.get("default_run")
    if run:
        note = None
        if run["estimated"]:
            n = sum(1 for v in t["sections_by_key"].values() if v.get("earlier"))
            note = ("estimated from this run and earlier runs' times (%d of %d sections; "
                    "\"Where the bench's time went\")" % (n, len(t["sections_by_key"])))
            if run["missing"]:
                note += "; no time recorded for %s, so at least this" % ", ".join(run["missing"])
        out.append(goal("bench duration", None, "time", "the bench itself: a full default "
                        "`make bench`, minutes", run["s"] / 60.0, "<=",
                        t.get("goal_s", DURATION_GOAL_S) / 60.0, note=note, unit="min"))
    return out


def render_goals(result):
    gl = result.get("goals") or []
    out = ["### Goals", "",
           "From the performance issue; reported, never asserted. Every figure is a ratio of "
           "medians from the tables above (speed-ups: above 1, onnxtrain is faster; RSS "
           "ratios: below 1, onnxtrain uses less). Chart: [results.svg](results.svg).", "",
           "| goal | measured | target | status |", "|---|---:|---:|---|"]
    for g in gl:
        unit = g.get("unit", "x")
        if unit != "x":
            unit = " " + unit
        measured = "%.2f%s" % (g["measured"], unit) if g["measured"] is not None else "not run"
        if g["measured"] is None and g.get("note"):
            measured = "n/a"
        status = {True: "met", False: "**missed**", None: "not measured"}[g["met"]]
        extra = []
        if g.get("earlier"):
            extra.append("earlier run, commit %s" % g["earlier"])
        if g.get("note"):
            extra.append(g["note"])
        out.append("| %s | %s | %s %.2g%s | %s%s |" % (
            g["what"], measured, {">=": "≥", "<=": "≤", "<": "<"}[g["op"]], g["target"], unit,
            status, " (%s)" % "; ".join(extra) if extra else ""))
    n_met = sum(1 for g in gl if g["met"])
    n_missed = sum(1 for g in gl if g["met"] is False)
    n_none = sum(1 for g in gl if g["met"] is None)
    out += ["", "%d of %d goals met, %d missed%s." % (
        n_met, len(gl), n_missed, ", %d not measured" % n_none if n_none else "")]
    out += ["", bf16_line(result.get("bf16"))]
    return out


def bf16_line(s):
    """The Goals section's line on the one fast path that changes numerics."""
    text = ("Numerics: the bf16 prefix cache (`finetune --cache-dtype bf16`) is an option, off "
            "by default (the cache holds f32)")
    if not s:
        return text + "; its accuracy effect on the demo was not measured (`ONLY=bf16`)."
    when = " (earlier run, commit %s)" % s["earlier"] if s.get("earlier") else ""
    if s.get("unavailable"):
        return text + "; its accuracy effect on the demo was not measured%s: %s." % (
            when, s["unavailable"])
    if s.get("default_cache_dtype") and s["default_cache_dtype"] != "f32":
        text = ("Numerics: the bf16 prefix cache (`finetune --cache-dtype bf16`) is an option; "
                "**the default run's log says its cache holds %s**" % s["default_cache_dtype"])
    deltas = ["%s %+.4f" % (t["name"], t["delta_top1"]) for t in s.get("transfers", [])
              if "delta_top1" in t]
    if not deltas:
        return text + "; its accuracy effect on the demo was not measured%s." % when
    return text + ". Its effect on the demo's test top-1 (bf16 less f32)%s: %s (section \"bf16 " \
        "prefix cache\" above)." % (when, ", ".join(deltas))


# ------------------------------------------------------------------- chart

def nice_step(span, max_ticks=8):
    """A round tick step (1, 2 or 5 x 10^k) giving at most max_ticks ticks."""
    import math
    if span <= 0:
        return 1.0
    step = 10.0 ** math.floor(math.log10(span / max_ticks))
    for m in (1, 2, 5, 10):
        if span / (step * m) <= max_ticks:
            return step * m
    return step * 10


def chart_bars(result):
    """The chart's bars, [{"label", "sub", "value", "goal", "met", "earlier"}]:
    inspect (no goal), then every goal with a bar."""
    bars = []
    for r in result.get("results", []):
        if r["task"] == "inspect" and r["tool"] == "python onnx":
            bars.append({"label": "inspect", "sub": "vs py onnx",
                         "value": r.get("speedup"), "goal": None, "met": None,
                         "earlier": r.get("earlier")})
    for g in result.get("goals") or []:
        if not g.get("bar"):
            continue
        if g["kind"] == "file":
            sub = "vs py onnx"
        elif g["kind"] == "infer":
            sub = "vs ORT-node"
        else:
            e = (result.get("train") or {}).get(g["bar"], {})
            _, n, epochs, size = TRAIN_CONFIG[g["bar"]]
            sub = "%dx%d @%d" % (e.get("images", n), e.get("epochs", epochs),
                                 e.get("image_size", size))
        bars.append({"label": g["bar"], "sub": sub, "value": g["measured"],
                     "goal": g["target"], "met": g["met"], "earlier": g.get("earlier")})
    return bars


def render_chart(result):
    """A bar chart of the speed-ups over the reference tools, with each bar's
    goal, as a standalone SVG document (standard library only)."""
    from xml.sax.saxutils import escape
    bars = chart_bars(result)
    n = max(1, len(bars))
    slot = 84
    left, right, top, bottom = 70, 150, 70, 96
    width = left + slot * n + right
    height = 470
    x0, x1, y0, y1 = left, left + slot * n, top, height - bottom
    vmax = max([b["value"] or 0 for b in bars] + [b["goal"] or 0 for b in bars] + [1.0])
    step = nice_step(vmax * 1.12)
    ymax = step * (int(vmax * 1.12 / step) + 1)

    def y(v):
        return y1 - (y1 - y0) * v / ymax

    colours = {True: "#2e7d32", False: "#d84315", None: "#78909c"}
    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
         'font-family="sans-serif" font-size="12">' % (width, height, width, height),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="%d" y="24" font-size="16" font-weight="bold">onnxtrain: speed-up over '
         'the reference (higher is better)</text>' % x0,
         '<text x="%d" y="44" font-size="11" fill="#444">training: PyTorch wall time / '
         'onnxtrain&#8217;s; infer: onnxtrain images/s / onnxruntime&#8217;s; inspect, '
         'convert: python onnx time / onnxtrain&#8217;s. Medians.</text>' % x0,
         '<text x="%d" y="58" font-size="11" fill="#444">commit %s, %s, %s threads</text>' % (
             x0, escape(str(result.get("commit"))), escape(str(result.get("date"))),
             escape(str((result.get("infer") or {}).get("threads")
                        or next(iter((result.get("train") or {}).values()), {}).get("threads")
                        or "?")))]
    # grid and y axis
    v = 0.0
    while v <= ymax + 1e-9:
        o.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e0e0e0"/>' % (
            x0, y(v), x1, y(v)))
        o.append('<text x="%d" y="%.1f" text-anchor="end">%gx</text>' % (x0 - 6, y(v) + 4, v))
        v += step
    o.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>' % (x0, y0, x0, y1))
    o.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>' % (x0, y1, x1, y1))
    o.append('<text transform="translate(18 %d) rotate(-90)" text-anchor="middle">speed-up '
             'over the reference (x)</text>' % ((y0 + y1) // 2))
    # parity line
    o.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#555" stroke-dasharray="5 4"/>'
             % (x0, y(1.0), x1, y(1.0)))
    o.append('<text x="%d" y="%.1f" font-size="11" fill="#555">1x: as fast</text>' % (
        x1 + 6, y(1.0) + 4))
    bw = slot * 0.56
    for i, b in enumerate(bars):
        cx = x0 + slot * (i + 0.5)
        bx = cx - bw / 2
        fade = ' fill-opacity="0.45"' if b.get("earlier") else ""
        if b["value"] is not None:
            o.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"%s>'
                     '<title>%s: %.2fx</title></rect>' % (
                         bx, y(b["value"]), bw, y1 - y(b["value"]), colours[b["met"]], fade,
                         escape(b["label"]), b["value"]))
            top_y = min(y(b["value"]), y(b["goal"]) if b["goal"] else y1)
            o.append('<text x="%.1f" y="%.1f" text-anchor="middle" font-weight="bold">'
                     '%.2fx</text>' % (cx, top_y - 7, b["value"]))
        else:
            o.append('<text x="%.1f" y="%.1f" text-anchor="middle" fill="#888">n/a</text>'
                     % (cx, y1 - 6))
        if b["goal"]:
            o.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black" '
                     'stroke-width="3"><title>goal %gx</title></line>' % (
                         bx - 5, y(b["goal"]), bx + bw + 5, y(b["goal"]), b["goal"]))
        o.append('<text x="%.1f" y="%d" text-anchor="middle" font-weight="bold">%s</text>'
                 % (cx, y1 + 16, escape(b["label"])))
        o.append('<text x="%.1f" y="%d" text-anchor="middle" font-size="10" fill="#444">%s'
                 '</text>' % (cx, y1 + 30, escape(b["sub"])))
        o.append('<text x="%.1f" y="%d" text-anchor="middle" font-size="10" fill="#444">%s'
                 '</text>' % (cx, y1 + 43, "goal &#8805; %gx" % b["goal"] if b["goal"]
                              else "no goal"))
        if b.get("earlier"):
            o.append('<text x="%.1f" y="%d" text-anchor="middle" font-size="10" fill="#888">'
                     '(earlier)</text>' % (cx, y1 + 56))
    # legend
    lx, ly = x1 + 14, y0 + 4
    for k, (label, colour, extra) in enumerate((
            ("goal met", colours[True], ""), ("goal missed", colours[False], ""),
            ("no goal", colours[None], ""),
            ("earlier run", colours[True], ' fill-opacity="0.45"'))):
        o.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"%s/>' % (
            lx, ly + 20 * k, colour, extra))
        o.append('<text x="%d" y="%d">%s</text>' % (lx + 18, ly + 20 * k + 10, label))
    o.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black" stroke-width="3"/>' % (
        lx - 2, ly + 86, lx + 14, ly + 86))
    o.append('<text x="%d" y="%d">goal</text>' % (lx + 18, ly + 90))
    o.append('<text x="%d" y="%d" font-size="10" fill="#444">x axis: workload, work '
             '(images x epochs @ size), goal</text>' % (x0, height - 12))
    o.append("</svg>")
    return "\n".join(o) + "\n"


def git_describe():
    r = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return r.stdout.strip() or None


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def render(result):
    out = ["## onnxtrain benchmark", "",
           "Commit %s, %s; %s, %s CPUs." % (result.get("commit"), result.get("date"),
                                            result["host"].get("cpu") or "?",
                                            result["host"].get("cpus"))]
    if result.get("results"):
        out += [""] + render_files(result)
    if result.get("infer"):
        out += [""] + render_infer(result["infer"])
    if result.get("loader"):
        out += [""] + render_loader(result["loader"])
    if result.get("train"):
        out += [""] + render_train(result["train"], result.get("train_ceiling"))
    if result.get("bound"):
        out += [""] + render_bound(result["bound"], result.get("train") or {})
    if result.get("bf16"):
        out += [""] + render_bf16(result["bf16"])
    if result.get("goals"):
        out += [""] + render_goals(result)
    if result.get("time"):
        out += [""] + render_time(result)
    for f in result.get("failures", []):
        out.append("")
        out.append("FAILED: " + f)
    if "total_s" in result:
        out += ["", "This run (%s) took %.0f s (%.1f minutes)." % (
            ", ".join(result["workloads"]), result["total_s"], result["total_s"] / 60.0)]
    return "\n".join(out) + "\n"


def section_title(title, s):
    """A section's heading, marked when its figures come from an earlier run."""
    return title + (" (earlier run, commit %s)" % s["earlier"] if s.get("earlier") else "")


def render_bound(s, train):
    out = [section_title("### The isolated convolution bound", s), "",
           "ResNet-18's 20 convolutions alone as oneDNN primitives in the layouts they prefer "
           "(tests/bench/conv_bound.c; %s), batch %s at %s, %s threads, median of %s steps: "
           "fe = the 20 forward convolutions; ft = conv1..layer3 forward, layer4's forward, "
           "weight gradients and data gradients (not of the two convolutions reading the "
           "frozen prefix); full = every forward and weight gradient and every data "
           "gradient but conv1's. bf16: bf16 data, fp32 weight gradients."
           % (s.get("command", "?"), s.get("batch"), s.get("size"), s.get("threads"),
              s.get("reps")), "",
           "| mode | dtype | step ms | images/s | GFLOP/s | oneDNN implementation |",
           "|---|---|---:|---:|---:|---|"]
    for e in s.get("results", []):
        if e.get("supported"):
            out.append("| %s | %s | %.1f | %.1f | %.0f | %s |" % (
                e["mode"], e["dtype"], e["step_ms"], e["images_per_s"], e["gflops"],
                e.get("impl", "")))
        else:
            out.append("| %s | %s | | not supported: %s | | |" % (e["mode"], e["dtype"],
                                                                   e.get("why", "?")))
    fr = s.get("fractions") or []
    if fr:
        out += ["", "Each training mode's loop against its bound (onnxtrain's median from the "
                "training table; fe and ft: epoch 1, where the frozen prefix is computed; "
                "full: the whole loop), next to the whole-process speed-up over PyTorch:", "",
                "| workload | figure | onnxtrain images/s | bound images/s | fraction | "
                "speed-up vs PyTorch |", "|---|---|---:|---:|---:|---:|"]
        for f in fr:
            e = train.get(f["task"]) or {}
            sp = e.get("speedup")
            out.append("| %s (%s) | %s | %s | %s | %s | %s |" % (
                f["task"], f["dtype"],
                "epoch 1" if f["figure"] == "epoch1_images_per_s" else "loop",
                "%.1f" % f["images_per_s"] if f["images_per_s"] else "not run",
                "%.1f" % f["bound_images_per_s"] if f["bound_images_per_s"] else "n/a",
                "%.0f%%" % (100 * f["fraction"]) if f["fraction"] else "",
                "%.2fx" % sp if sp else ""))
    return out


def render_bf16(s):
    title = "### bf16 prefix cache: accuracy on the demo (Fashion-MNIST, classes 5-9, 32x32)"
    out = [section_title(title, s), ""]
    if s.get("unavailable"):
        out.append("Not run: %s." % s["unavailable"])
        return out
    if not s.get("transfers"):
        out.append("Not run: " + "; ".join(s.get("failures") or ["?"]))
        return out
    made = s.get("model_made") or {}
    out += ["The demo's transfer step (models/demo.sh, `run_transfer`: 25 images per class, "
            "10 epochs, batch 25, 2 threads, seed 1) from `%s` (the demo's steps 1 and 2, "
            "made by the bench at commit %s), once with the default "
            "prefix cache and once with `--cache-dtype bf16` (the frozen prefix's output "
            "stored as bfloat16, every epoch training on the rounded features); each model "
            "scored by `onnxtrain eval --data-classes 5-9` on the full test split of those "
            "classes (%s images). One run each; \"s\" is the finetune process's wall time. "
            "With 5 classes, top-5 is 1 by construction." % (
                s.get("model"), made.get("commit") or "?",
                next((t[d].get("n") for t in s["transfers"] for d in CACHE_DTYPES if d in t),
                     "?")),
            "",
            "| transfer | cache | top-1 | top-5 | loss | Δ top-1 | Δ top-5 | cache MB | s |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for t in s["transfers"]:
        label = "%s (`--mode %s`, lr %s)" % (t["name"], t["mode"], t["lr"])
        for dtype in CACHE_DTYPES:
            r = t.get(dtype)
            if not r:
                out.append("| %s | %s | failed | | | | | | |" % (label, dtype))
                continue
            delta = dtype != "f32" and "delta_top1" in t
            out.append("| %s | %s | %.4f | %.4f | %s | %s | %s | %s | %.1f |" % (
                label, r.get("cache_dtype") or dtype, r["top1"], r["top5"],
                "%.4f" % r["loss"] if r.get("loss") is not None else "",
                "%+.4f" % t["delta_top1"] if delta else "",
                "%+.4f" % t["delta_top5"] if delta else "",
                "%.1f" % r["cache_mb"] if "cache_mb" in r else "", r["train_wall_s"]))
    out += ["", "Δ is bf16's figure less f32's. The bf16 cache is off by default: the run "
            "without the option cached %s. This workload took %.0f s (%d finetune runs and "
            "as many evals; the pretrained model not included)." % (
                s.get("default_cache_dtype") or "?", s.get("wall_s", 0.0),
                sum(1 for t in s["transfers"] for d in CACHE_DTYPES if d in t))]
    for f in s.get("failures", []) if s.get("earlier") else []:
        out += ["", "Note (earlier): FAILED: " + f]
    return out


def render_time(result):
    t = result["time"]
    total = t["total_s"]
    out = ["### Where the bench's time went", "",
           "This run (%s): wall time per section; a workload's fixtures count under "
           "fixtures. `make bench`'s own build of onnxtrain is not included." % (
               ", ".join(result["workloads"])), "",
           "| section | s | share |", "|---|---:|---:|"]
    for x in t["sections"]:
        out.append("| %s | %.1f | %.1f%% |" % (SECTION_LABEL.get(x["name"], x["name"]), x["s"],
                                              100.0 * x["s"] / total if total else 0.0))
    out.append("| total | %.1f | 100%% |" % total)
    run = t["default_run"]
    goal_min = t.get("goal_s", DURATION_GOAL_S) / 60.0
    if not run["estimated"]:
        out += ["", "This was a full default run: %.0f s%s, %.1f minutes, against the goal of "
                "%g minutes (Goals)." % (run["s"], " without the loader's section"
                                         if run["s"] < total else "", run["s"] / 60.0, goal_min)]
        return out
    out += ["", "A full default run, estimated from this run's sections and the earlier "
            "runs' (\"approx.\": a run from before the sections were recorded; a workload's "
            "runs without its fixtures and warm-up): %s%.0f s, %.1f minutes, against the goal "
            "of %g minutes." % ("at least " if run["missing"] else "", run["s"],
                                run["s"] / 60.0, goal_min), "",
            "| section | s | share | from |", "|---|---:|---:|---|"]
    for key, v in t["sections_by_key"].items():
        out.append("| %s | %.1f | %.1f%% | %s |" % (
            SECTION_LABEL.get(key, key), v["s"], 100.0 * v["s"] / run["s"] if run["s"] else 0.0,
            "earlier run, commit %s%s" % (v.get("commit") or "?", ", approx." if v.get("approx")
                                          else "") if v.get("earlier") else "this run"))
    rest = run["s"] - sum(v["s"] for v in t["sections_by_key"].values())
    out.append("| fixtures, helpers, other (this run's) | %.1f | %.1f%% | this run |" % (
        rest, 100.0 * rest / run["s"] if run["s"] else 0.0))
    if run["missing"]:
        out += ["", "No time recorded for: %s." % ", ".join(run["missing"])]
    return out


def render_files(result):
    rows = result["results"]
    out = ["### inspect and convert", ""]
    if "model" in result:
        out += ["Model: `%s`, %.1f MB (%d bytes). Median of %d runs per command, in "
                "alternating order." % (os.path.basename(result["model"]),
                                        result["file_bytes"] / 1e6, result["file_bytes"],
                                        result["repetitions"]), ""]
    out += ["| task | tool | median s | min s | peak RSS MB | RSS / file | python / onnxtrain |",
            "|---|---|---:|---:|---:|---:|---:|"]
    earlier = set()
    for r in rows:
        tool = r["tool"]
        if r.get("earlier"):
            earlier.add(r["earlier"])
            tool += " (earlier)"
        if not r["runs"]:
            out.append("| %s | %s | failed | | | | |" % (r["task"], tool))
            continue
        out.append("| %s | %s | %.3f | %.3f | %.1f | %.2fx | %s |" % (
            r["task"], tool, r["median_s"], r["min_s"], r["peak_rss_mb"],
            r["rss_over_file"], "%.2fx" % r["speedup"] if "speedup" in r else ""))
    out.append("")
    out.append("\"python / onnxtrain\" is python's median time over onnxtrain's: above 1, "
               "onnxtrain is faster. The reference row is the interpreter start and "
               "`import onnx`, included in every python time.")
    if earlier:
        out.append("Rows marked (earlier) were not run this time; they come from the "
                   "previous results.json (commit %s)." % ", ".join(sorted(earlier)))
    return out


def render_infer(s):
    title = "### ResNet-18 inference, 224x224, %s threads" % s.get("threads", "?")
    out = [section_title(title, s), ""]
    if not s.get("batches"):
        out.append("Not run: " + "; ".join(s.get("failures") or ["?"]))
        return out
    ceil = s.get("ceiling")
    ceil_txt = "no ceiling measured"
    if ceil:
        others = ", ".join("%s %.1f" % (k, v) for k, v in sorted(ceil["by_isa"].items())
                           if k != ceil["isa"])
        ceil_txt = "the measured fp32 FMA ceiling, %.1f GFLOP/s (%s, %s threads%s)" % (
            ceil["gflops"], ceil["isa"], s["threads"], "; " + others if others else "")
    runs = ", ".join("batch %d: %d + %d" % (e["batch"], e["warmup"], e["runs"])
                     for e in s["batches"])
    out += ["Model: `%s`. images/s is batch / median run time inside one process, after "
            "warm-up runs (warm-up + timed runs per process: %s); the figure is the median "
            "over %d processes per tool, run in rotating order. GFLOP/s at %.2f GFLOP per "
            "image; %% of peak is of %s. \"onnxtrain / tool\" is onnxtrain's images/s over the "
            "tool's: above 1, onnxtrain is faster." % (
                os.path.basename(s["model"]), runs, s["repetitions"], s["gflop_per_image"],
                ceil_txt),
            "",
            "| batch | tool | images/s | range | ms / batch | GFLOP/s | % of peak | "
            "peak RSS MB | onnxtrain / tool |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for e in s["batches"]:
        for r in e["results"]:
            if not r.get("processes"):
                out.append("| %d | %s | failed | | | | | | |" % (e["batch"], r["label"]))
                continue
            out.append("| %d | %s | %.1f | %.1f–%.1f | %.1f | %.1f | %s | %.0f | %s |" % (
                e["batch"], r["label"], r["images_per_s"], r["images_per_s_min"],
                r["images_per_s_max"], r["batch_ms"], r["gflops"],
                "%.1f%%" % r["pct_of_peak"] if "pct_of_peak" in r else "",
                r["peak_rss_mb"],
                "%.2fx" % r["onnxtrain_over_tool"] if "onnxtrain_over_tool" in r else ""))
        for name, why in sorted(s.get("unavailable", {}).items()):
            out.append("| %d | %s | unavailable | | | | | | |" % (e["batch"], name))
    procs = [e for e in s["batches"] if e.get("process_run")]
    if procs:
        out += ["", "Whole process, one `onnxtrain run --random --batch B --threads %s` "
                "(import, compile, one run; median of %d): " % (
                    s["threads"], procs[0]["process_run"]["runs"]) + "; ".join(
                    "batch %d: %.2f s, peak RSS %.0f MB" % (
                        e["batch"], e["process_run"]["median_s"],
                        e["process_run"]["peak_rss_mb"]) for e in procs) + "."]
    agree = [e for e in s["batches"] if "checksums_agree" in e]
    if agree and all(e["checksums_agree"] for e in agree):
        out += ["", "onnxtrain and onnxruntime got the same input; their output checksums "
                "agree at every batch size."]
    for name, why in sorted(s.get("unavailable", {}).items()):
        out += ["", "The %s column is unavailable: %s" % (name, why)]
    for n in s.get("notes", []):
        out += ["", "Note: " + n]
    return out


def render_loader(s):
    title = "### Batch loader, JPEG image folder, batch %s at %dx%d" % (
        s.get("batch", LOADER_BATCH), s.get("size", LOADER_SIZE), s.get("size", LOADER_SIZE))
    out = [section_title(title, s), ""]
    if not s.get("results"):
        out.append("Not run: " + "; ".join(s.get("failures") or ["?"]))
        return out
    out += ["Decode + transform throughput of `ot_data_loader` (src/data/loader.h) on %d JPEG "
            "files of %d to %d pixels a side (%.1f MB), read from the page cache; each "
            "configuration in its own process (tests/bench/bench_loader.c: one untimed epoch, "
            "then %d timed epochs, images/s from the median epoch), in rotating order, %d "
            "process%s each; figures are medians. CPU ms / image is the process's CPU time "
            "(all threads) per image. %s CPUs." % (
                s["images"], 192, 320, s.get("jpeg_bytes", 0) / 1e6, s["epochs"],
                s["repetitions"], "" if s["repetitions"] == 1 else "es", s.get("cpus", "?")),
            "",
            "| configuration | images/s | range | CPU ms / image | peak RSS MB | vs inline |",
            "|---|---:|---:|---:|---:|---:|"]
    for r in s["results"]:
        if not r.get("processes"):
            out.append("| %s | failed | | | | |" % r["label"])
            continue
        out.append("| %s | %.1f | %.1f–%.1f | %.2f | %.0f | %s |" % (
            r["label"], r["images_per_s"], r["images_per_s_min"], r["images_per_s_max"],
            r["cpu_ms_per_image"], r["peak_rss_mb"],
            "%.2fx" % r["speedup_over_inline"] if "speedup_over_inline" in r else ""))
    cons = s.get("training_consumption") or {}
    if cons:
        parts = []
        for task in TRAIN_TASKS:
            c = cons.get(task)
            if c:
                parts.append("%s: loop %.1f, epoch 1 %.1f%s" % (
                    task, c["loop_images_per_s"], c["epoch1_images_per_s"],
                    ", later epochs %.0f (cached, no images read)" % c["later_images_per_s"]
                    if "later_images_per_s" in c else ""))
        any_c = next(iter(cons.values()))
        commits = sorted({str(c.get("commit")) for c in cons.values()})
        out += ["", "What the training step consumes, in images/s (onnxtrain finetune's own "
                "log, ResNet-18 at %s, batch %s, %s threads, commit %s): %s. Those workloads "
                "read CIFAR-10 images from memory, so the figures are the step's own cost. "
                "Images are read in epoch 1 (and in every epoch without the cache), so the "
                "epoch-1 figure is the rate the loader must keep up with." % (
                    any_c.get("image_size"), any_c.get("batch"), any_c.get("threads"),
                    ", ".join(commits), "; ".join(parts))]
        fastest = max(c["epoch1_images_per_s"] for c in cons.values())
        plain = {r["workers"]: r["images_per_s"] for r in s["results"]
                 if r.get("processes") and not r["augment"]}
        if plain and fastest > 0:
            out += ["", "Loader images/s over the fastest epoch-1 step's (%.1f): %s." % (
                fastest, ", ".join("%d worker%s %.1fx" % (w, "" if w == 1 else "s", v / fastest)
                                   for w, v in sorted(plain.items())))]
    else:
        out += ["", "No training results to compare with (run `make bench ONLY=train`)."]
    for n in s.get("notes", []):
        out += ["", "Note: " + n]
    return out


def render_train(train, ceiling=None):
    entries = [train[t] for t in TRAIN_TASKS if t in train]
    e0 = entries[0]
    out = ["### ResNet-18 training, batch %d, %s threads" % (
        e0.get("batch", TRAIN_BATCH), e0.get("threads", "?")), ""]
    reps = sorted({e.get("repetitions") for e in entries if e.get("results")} - {None})
    ceil_txt = "no ceiling measured"
    if ceiling:
        ceil_txt = "the measured fp32 FMA ceiling, %.1f GFLOP/s (%s, %s threads)" % (
            ceiling["gflops"], ceiling["isa"], ceiling.get("threads", "?"))
    out += ["`onnxtrain finetune` against PyTorch's classic transfer-learning loop "
            "(tests/bench/torch_train.py: torchvision resnet18, channels_last, model.train(), "
            "Adam, no augmentation) on the same CIFAR-10-format images (32x32, upscaled to "
            "224 where the size is 224), with a new 10-class head. fe: feature extraction "
            "(head only, lr 1e-3); ft: fine-tuning (last stage + head, lr 1e-4); full: "
            "everything (lr 1e-4); the suffix 32 marks CIFAR's native size. Whole processes "
            "(start-up, loading, training, evaluation of %d test images, ONNX export), run in "
            "alternating order, %s per tool; times are medians. images/s is training images "
            "(images x epochs) over the median wall time; \"loop\" and \"epoch 1\" are the "
            "training loop's own figures from each tool's log; \"later\" is epochs 2 onwards "
            "(onnxtrain reuses the frozen prefix's cached output there)." % (
                e0.get("test_images", TRAIN_TEST_IMAGES),
                " or ".join("%d process%s" % (r, "" if r == 1 else "es") for r in reps)
                or "no processes"),
            "",
            "GFLOP/s is epoch 1's images/s times the nominal work per image, the same for "
            "both tools: the forward pass, 3.63 GFLOP at 224 scaled by (size / 224)^2, plus "
            "twice the forward cost of what is trained for its backward pass: fe 1x forward, "
            "ft 1.45x (layer4 is %.1f%% of the forward work), full 3x. Epoch 1 is where both "
            "tools do all of it (later epochs of onnxtrain skip the cached frozen part). %% of "
            "peak is of %s. \"speed-up\" is PyTorch's median wall time over onnxtrain's "
            "(above 1, onnxtrain is faster); \"RSS ratio\" is onnxtrain's median peak RSS "
            "over PyTorch's (below 1, onnxtrain uses less)." % (100 * LAYER4_SHARE, ceil_txt),
            "",
            "| workload | tool | images x epochs @ size | wall s | range s | images/s "
            "| loop images/s | epoch 1 images/s | later images/s | GFLOP/s | % of peak "
            "| peak RSS MB | test top-1 | speed-up | RSS ratio |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    empty = " | | | | | | | | | | | |"
    earlier, notes = set(), []
    for e in entries:
        name = e["task"]
        if e.get("earlier"):
            earlier.add(e["earlier"])
            name += " (earlier)"
        work = "%d x %d @ %d" % (e["images"], e["epochs"], e.get("image_size", 224))
        if not e.get("results"):
            out.append("| %s | onnxtrain | %s | failed%s" % (name, work, empty))
        for r in e.get("results", []):
            if not r.get("processes"):
                out.append("| %s | %s | %s | failed%s" % (name, r["label"], work, empty))
                continue
            test = r.get("test") or {}
            out.append("| %s | %s | %s | %.1f | %.1f–%.1f | %.1f | %.1f | %.1f | %s | %s | %s "
                       "| %.0f | %s | %s | %s |" % (
                           name, r["label"], work, r["wall_s"], r["wall_min_s"], r["wall_max_s"],
                           r["images_per_s"], r["loop_images_per_s"], r["epoch1_images_per_s"],
                           "%.0f" % r["later_images_per_s"] if "later_images_per_s" in r else "",
                           "%.1f" % r["gflops"] if "gflops" in r else "",
                           "%.1f%%" % r["pct_of_peak"] if "pct_of_peak" in r else "",
                           r["peak_rss_mb"], "%.2f" % test["top1"] if "top1" in test else "",
                           "%.2fx" % r["speedup"] if "speedup" in r else "",
                           "%.2f" % r["rss_ratio"] if "rss_ratio" in r else ""))
        for tool, why in sorted(e.get("unavailable", {}).items()):
            out.append("| %s | %s | %s | unavailable%s" % (name, tool, work, empty))
            notes.append("%s: the %s column is unavailable: %s" % (e["task"], tool, why))
        for n in e.get("notes", []):
            notes.append("%s: %s" % (e["task"], n))
        for f in e.get("failures", []) if e.get("earlier") else []:
            notes.append("%s (earlier): FAILED: %s" % (e["task"], f))
    if earlier:
        out += ["", "Rows marked (earlier) were not run this time; they come from the "
                "previous results.json (commit %s)." % ", ".join(sorted(earlier))]
    for n in notes:
        out += ["", "Note: " + n]
    return out

if __name__ == "__main__":
    sys.exit(main())
