#!/usr/bin/python3
"""The goal rows of tests/gpu/check.sh's benchmark: each row's figures for
onnxtrain and PyTorch, their ratio and the verdict against the goal of
docs/gpu.md, from the files the benchmark's runs left.

    bench_report.py row CHECK BENCH_DIR RESULTS_TSV OUT_DIR

Prints "STATUS<TAB>DETAIL" for check.sh's `record` (STATUS: pass, fail or
"skipped: WHY") and adds the row to OUT_DIR/bench.json (the summary that
check.json carries under "bench") and OUT_DIR/bench.md (the same as a
Markdown table, for docs/gpu.md), both rewritten whole after every row.

A run NAME leaves in BENCH_DIR: NAME.time ("RC MS LIMIT": exit status,
milliseconds of the whole process, its time limit; or "skip WHY" when it
did not start), NAME.out (standard output: PyTorch's and bench_infer's JSON
line), NAME.err and, for onnxtrain's training runs, NAME.csv (--log).
RESULTS_TSV is check.sh's results so far (host_memory_flat is read there).

Environment (for the table's heading and goal texts): BENCH_IMAGES,
BENCH_BATCH, BENCH_SIZE, BENCH_EPOCHS, BENCH_HALF (onnxtrain's precision in
the bf16 rows), BENCH_DEVICE_NAME, BENCH_DRY_RUN (1: the host-side dry run;
the verdicts then say nothing about a GPU).
"""
import csv
import json
import os
import sys

ENV = os.environ


def num(name, default):
    try:
        return int(ENV.get(name, default))
    except ValueError:
        return default


IMAGES = num("BENCH_IMAGES", 10240)
BATCH = num("BENCH_BATCH", 128)
SIZE = num("BENCH_SIZE", 224)
EPOCHS = num("BENCH_EPOCHS", 5)
HALF = ENV.get("BENCH_HALF", "bf16")

# check: (goal text, kind, onnxtrain run, PyTorch run, the ratio needed)
# kinds: ips (training images/s in the loop, higher is better), process
# (whole-process seconds, lower is better), latency (ms per batch-1 run),
# throughput (inference images/s), cold (seconds to the first step),
# memory (host_memory_flat of the correctness phase)
ROWS = {
    "bench_full_bf16": (
        "full training, bf16, batch %d, 1 epoch of %s images: >= 1.0x PyTorch's images/s"
        % (BATCH, format(IMAGES, ",")), "ips", "ot_full_bf16", "pt_full_bf16", 1.0),
    "bench_finetune": (
        "fine-tuning layer4 + fc, %d epochs: >= 2.5x less wall time" % EPOCHS,
        "process", "ot_ft", "pt_ft", 2.5),
    "bench_feature_extract": (
        "feature extraction, %d epochs: >= 4x less wall time" % EPOCHS,
        "process", "ot_fe", "pt_fe", 4.0),
    "bench_infer_b1": (
        "inference, batch 1 latency: <= PyTorch's", "latency", "ot_infer_b1", "pt_infer_b1", 1.0),
    "bench_infer_b256": (
        "inference, batch 256 throughput: >= PyTorch's", "throughput", "ot_infer_b256",
        "pt_infer_b256", 1.0),
    "bench_cold_start": (
        "cold start with a persisted plan cache: first training step within 1 s of start",
        "cold", "ot_cold", "pt_full_bf16", None),
    "bench_host_memory": (
        "host memory over 1,000 steps with a varying last batch: flat", "memory", None, None,
        None),
    "bench_full_fp32": (
        "full training, fp32, batch %d, 1 epoch of %s images (reference: no goal)"
        % (BATCH, format(IMAGES, ",")), "ips", "ot_full_fp32", "pt_full_fp32", None),
}
ORDER = list(ROWS)


class Missing(Exception):
    """A figure that is not there: status (fail or skipped: ...) and why."""

    def __init__(self, status, why):
        super().__init__(why)
        self.status, self.why = status, why


def last_line(path):
    try:
        lines = [l.strip() for l in open(path, errors="replace") if l.strip()]
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


class Run:
    """What one run left in the bench folder."""

    def __init__(self, bdir, name, tool):
        self.name, self.tool = name, tool
        self.base = os.path.join(bdir, name)
        try:
            words = open(self.base + ".time").read().split()
        except OSError:
            words = ["skip", "not", "run"]
        if not words or words[0] == "skip":
            raise Missing("skipped: " + (" ".join(words[1:]) or "not run"),
                          "%s: %s" % (tool, " ".join(words[1:]) or "not run"))
        self.rc, self.ms, self.limit = (int(w) for w in words[:3])
        if self.rc in (124, 137):
            raise Missing("fail", "%s: did not finish within %d s (BENCH_SECONDS)" % (
                tool, self.limit))
        if self.rc != 0:
            raise Missing("fail", "%s: exit %d: %s" % (tool, self.rc, last_line(self.base + ".err")))
        self.seconds = self.ms / 1000.0

    def json(self):
        for line in reversed(open(self.base + ".out", errors="replace").read().splitlines()):
            if line.startswith("{"):
                try:
                    return json.loads(line)
                except ValueError:
                    break
        raise Missing("fail", "%s: no JSON result line" % self.tool)

    def log(self):
        """onnxtrain's --log: (images/s over its epochs, the epochs' seconds)."""
        try:
            rows = list(csv.DictReader(open(self.base + ".csv")))
        except OSError:
            raise Missing("fail", "%s: no --log file" % self.tool)
        secs = [float(r["seconds"]) for r in rows if r.get("seconds")]
        ips = [float(r["images_per_s"]) for r in rows if r.get("images_per_s")]
        if not secs or len(ips) != len(secs) or sum(secs) <= 0:
            raise Missing("fail", "%s: --log has no timed epoch" % self.tool)
        images = sum(i * s for i, s in zip(ips, secs))
        return images / sum(secs), sum(secs), len(rows)


def fmt(x, digits=3):
    if x >= 100:
        return "%.0f" % x
    return "%.*g" % (digits, x)


def evaluate(check, bdir, res_tsv):
    """Returns the row: dict with status, detail, the table's cells."""
    goal, kind, ot_name, pt_name, need = ROWS[check]
    row = {"check": check, "goal": goal, "onnxtrain": "", "pytorch": "", "ratio": None,
           "need": need, "pass": None}
    if kind == "memory":
        found = {}
        try:
            for line in open(res_tsv):
                parts = line.rstrip("\n").split("\t", 2)
                if parts[0] == "host_memory_flat":
                    found = {"status": parts[1], "detail": parts[2] if len(parts) > 2 else ""}
        except OSError:
            pass
        if not found:
            row.update(status="skipped: the correctness phase did not run host_memory_flat",
                       detail="measured by the correctness phase's host_memory_flat")
        else:
            row.update(status=found["status"], onnxtrain=found["detail"], pytorch="-",
                       detail="host_memory_flat (correctness phase): %s: %s" % (
                           found["status"], found["detail"]))
            row["pass"] = found["status"] == "pass" if found["status"] in ("pass", "fail") else None
        return row
    try:
        ot = Run(bdir, ot_name, "onnxtrain")
        pt = None
        try:
            pt = Run(bdir, pt_name, "PyTorch")
        except Missing:
            if kind != "cold":  # PyTorch's first step is only for comparison there
                raise
        if kind == "ips":
            o_ips, o_loop, n_ep = ot.log()
            p = pt.json()
            p_ips = p.get("steady_images_per_s") or p["loop_images_per_s"]
            ratio = o_ips / p_ips
            row["onnxtrain"] = "%s images/s (%s s whole process)" % (fmt(o_ips), fmt(ot.seconds))
            row["pytorch"] = "%s images/s (%s s whole process)" % (fmt(p_ips), fmt(pt.seconds))
            detail = ("onnxtrain %s images/s in the loop (its whole epoch, first steps included), "
                      "%s s whole process; PyTorch %s images/s in the loop (after %d warm-up "
                      "steps; %s over the whole epoch), %s s whole process" % (
                          fmt(o_ips), fmt(ot.seconds), fmt(p_ips), p.get("warm_steps", 0),
                          fmt(p["loop_images_per_s"]), fmt(pt.seconds)))
        elif kind == "process":
            _, o_loop, _ = ot.log()
            p = pt.json()
            ratio = pt.seconds / ot.seconds
            row["onnxtrain"] = "%s s (loop %s s)" % (fmt(ot.seconds), fmt(o_loop))
            row["pytorch"] = "%s s (loop %s s)" % (fmt(pt.seconds), fmt(p["loop_s"]))
            detail = ("whole process: onnxtrain %s s, PyTorch %s s; in the loop: onnxtrain %s s, "
                      "PyTorch %s s (%.2fx)" % (fmt(ot.seconds), fmt(pt.seconds), fmt(o_loop),
                                                 fmt(p["loop_s"]), p["loop_s"] / o_loop))
        elif kind in ("latency", "throughput"):
            o, p = ot.json(), pt.json()
            if kind == "latency":
                ratio = p["median_s"] / o["median_s"]
                row["onnxtrain"] = "%s ms" % fmt(o["median_s"] * 1e3)
                row["pytorch"] = "%s ms" % fmt(p["median_s"] * 1e3)
            else:
                ratio = o["images_per_s"] / p["images_per_s"]
                row["onnxtrain"] = "%s images/s" % fmt(o["images_per_s"])
                row["pytorch"] = "%s images/s" % fmt(p["images_per_s"])
            detail = ("in the loop, median of %d runs (batch %d, input from host memory, logits "
                      "back): onnxtrain %s ms, PyTorch %s ms; whole process: onnxtrain %s s, "
                      "PyTorch %s s" % (o.get("runs", 0), o.get("batch", 0),
                                        fmt(o["median_s"] * 1e3), fmt(p["median_s"] * 1e3),
                                        fmt(ot.seconds), fmt(pt.seconds)))
        else:  # cold
            first = pt.json().get("first_step_s") if pt is not None else None
            ok = ot.seconds <= 1.0
            row["onnxtrain"] = "%s s whole process (1 step)" % fmt(ot.seconds)
            row["pytorch"] = "%s s to its first step" % fmt(first) if first else "-"
            row["ratio"] = first / ot.seconds if first else None
            row["pass"] = ok
            row["status"] = "pass" if ok else "fail"
            row["detail"] = (
                "one full-training step (%s, batch %d, %dx%d) with every plan on disk: %s s "
                "whole process, a bound on the first step (goal: within 1 s)%s" % (
                    HALF, BATCH, SIZE, SIZE, fmt(ot.seconds),
                    "; PyTorch ended its first step %s s after its start" % fmt(first)
                    if first else ""))
            return row
    except Missing as m:
        row.update(status=m.status, detail=m.why)
        return row
    except (KeyError, TypeError, ValueError, ZeroDivisionError, OSError) as e:
        row.update(status="fail", detail="unreadable result: %s: %s" % (type(e).__name__, e))
        return row
    row["ratio"] = ratio
    if need is None:
        row.update(status="pass", detail="%s; ratio %.2fx (no goal)" % (detail, ratio))
        return row
    ok = ratio >= need
    row["pass"] = ok
    what = {"ips": "onnxtrain/PyTorch images/s", "process": "PyTorch/onnxtrain wall time",
            "latency": "PyTorch/onnxtrain latency",
            "throughput": "onnxtrain/PyTorch images/s"}[kind]
    row.update(status="pass" if ok else "fail",
               detail="%s; ratio %.2fx (%s, goal >= %gx)" % (detail, ratio, what, need))
    return row


def cell(row):
    r = row.get("ratio")
    ratio = "%.2fx" % r if isinstance(r, (int, float)) else "-"
    verdict = {True: "yes", False: "**no**", None: "-"}[row.get("pass")]
    if row.get("need") is None and row.get("ratio") is not None and row["check"] != "bench_cold_start":
        verdict = "no goal"
    st = row["status"]
    if st.startswith("skipped") or (st == "fail" and not row["onnxtrain"]):
        verdict = st if st.startswith("skipped") else "**not measured**"
    esc = lambda s: (s or "-").replace("|", "\\|")
    return "| %s | %s | %s | %s | %s |" % (esc(row["goal"]), esc(row["onnxtrain"]),
                                            esc(row["pytorch"]), ratio, verdict)


def write_summary(out_dir, rows):
    tmp = os.path.join(out_dir, "bench.json.tmp")
    with open(tmp, "w") as f:
        json.dump(rows, f, indent=1)
    os.replace(tmp, os.path.join(out_dir, "bench.json"))
    dry = ENV.get("BENCH_DRY_RUN") == "1"
    versions = sorted({r["pytorch_version"] for r in rows if r.get("pytorch_version")})
    lines = [
        "ResNet-18 at %dx%d, %s images, batch %d; onnxtrain against PyTorch %s on %s%s." % (
            SIZE, SIZE, format(IMAGES, ","), BATCH, ", ".join(versions) or "(no run)",
            ENV.get("BENCH_DEVICE_NAME") or "the device",
            " (host-side dry run at tiny sizes: not a measurement)" if dry else ""),
        "",
        "| goal | onnxtrain | PyTorch | ratio | pass |",
        "|---|---|---|---|---|",
    ]
    lines += [cell(r) for r in rows]
    tmp = os.path.join(out_dir, "bench.md.tmp")
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, os.path.join(out_dir, "bench.md"))


def cmd_row(check, bdir, res_tsv, out_dir):
    if check not in ROWS:
        print("bench_report.py: unknown check '%s' (known: %s)" % (check, " ".join(ORDER)),
              file=sys.stderr)
        return 2
    row = evaluate(check, bdir, res_tsv)
    pt_name = ROWS[check][3]
    if pt_name:
        try:
            row["pytorch_version"] = Run(bdir, pt_name, "PyTorch").json().get("version")
        except (Missing, OSError, ValueError):
            pass
    try:
        rows = json.load(open(os.path.join(out_dir, "bench.json")))
    except (OSError, ValueError):
        rows = []
    rows = [r for r in rows if r.get("check") != check] + [row]
    rows.sort(key=lambda r: ORDER.index(r["check"]) if r["check"] in ORDER else len(ORDER))
    write_summary(out_dir, rows)
    print("%s\t%s" % (row["status"], row["detail"]))
    return 0


def main(argv):
    if len(argv) == 6 and argv[1] == "row":
        return cmd_row(*argv[2:])
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
