#!/usr/bin/python3
"""Writes docs/models.md from the results of tests/cli/test_families.sh.

    /usr/bin/python3 tools/gen_models_table.py [RESULTS.tsv...] OUT.md
        [--previous OLD.md] [--parity PARITY.tsv]... [--bench BENCH.tsv]...

RESULTS.tsv has one line per family and check: family, check (import, run,
feature-extract, fine-tune, full), status (ok, fail, missing) and a detail
(tests/cli/test_families.sh). PARITY.tsv has one line per family and mode:
family, mode (feature_extract, fine_tune, full), ok or fail, a detail
(tests/cli/test_family_parity.sh). BENCH.tsv has one line per family: family,
size, batch, threads, onnxtrain s/step, PyTorch s/step, PyTorch/onnxtrain, a
reason where a side failed (tests/bench/bench_families.py, `make
bench-models`). `make test-models` runs every family and then this script, so
the table says what the code does at the commit it was made from. A check
that did not pass keeps the reason onnxtrain gave, which names what is
missing.

--previous starts from the results a table this script wrote records (its
rows and its "What is missing" and "Not run" lists, read back into result, parity and bench
rows; the details a cell does not show are not kept), so that a run of some
families merges into it: each later source replaces the earlier one's row of
the same family and check (family and mode for PARITY.tsv, family for
BENCH.tsv), in the order previous, the RESULTS.tsv files, the PARITY.tsv
files, the BENCH.tsv files as given. The bench rows form one table of one
setting (size, batch, threads): that of the last BENCH.tsv with rows; earlier
rows at another setting are dropped. Rows keep the previous table's order;
families it lacks follow. With --previous and no TSV the table is written
again unchanged. At least one RESULTS.tsv is needed without --previous.
"""
import os
import re
import sys

CHECKS = ("import", "run", "feature-extract", "fine-tune", "full")
PARITY_MODES = (("feature_extract", "fe"), ("fine_tune", "ft"), ("full", "full"))

# How each family's fixture differs from torchvision's definition, so that it
# stays small (tests/fixtures/make_family_tests.py).
NOTES = {
    "alexnet": "64x64; adaptive pooling to 1x1, classifier hidden width 256",
    "vgg11": "64x64; adaptive pooling to 2x2, classifier hidden width 256",
    "vgg11_bn": "64x64; adaptive pooling to 2x2, classifier hidden width 256",
    "resnext50_32x4d": "64x64; one block per stage",
    "wide_resnet50_2": "64x64; one block per stage",
    "inception_v3": "75x75, no auxiliary classifier; convolutions scaled to unit output on a "
                    "calibration batch (its initialization grows activations to 1e5); the "
                    "PyTorch step at 139x139 (at 75x75 the Mixed_7 maps are 1x1, where a "
                    "training-mode BatchNorm over a batch of 2 has a gradient made of "
                    "rounding); its full-mode step at 139x139 is ill-conditioned too: the "
                    "training-mode BatchNorms over 3x3 maps amplify a relative perturbation "
                    "of the weights about 570 times by Mixed_7c, where a ReLU input of "
                    "branch3x3_1 lies 1.1e-4 of its layer's standard deviation from 0; a "
                    "1e-6 perturbation flips it and moves that BatchNorm's float64 bias "
                    "gradient by 8.2e-2 (6e-8: 3e-5), the size of onnxtrain's float32 error "
                    "there (7.8e-2; PyTorch's own float32 gradients are up to 2.5% off on "
                    "other tensors of the step); at 171x171 (4x4 maps) 1e-6 still moves "
                    "gradients by 8%",
    "googlenet": "64x64, no auxiliary classifiers",
    "zoo_caffenet": "the AlexNet above in the model zoo's form: LRN, Softmax last, opset 9, "
                    "initializers as graph inputs, batch 1 declared",
    "vit_b_16": "32x32; torchvision's VisionTransformer with patch 8, 2 layers, 2 heads, "
                "width 64, MLP 128",
    "vit_b_16_op17": "the ViT above exported at opset 17 (LayerNormalization nodes)",
    "swin_t": "32x32; torchvision's SwinTransformer with patch 4, embed 16, depths [2, 2], "
              "2 heads, window 4",
    "swin_t_op17": "the Swin above exported at opset 17 (LayerNormalization nodes)",
    "vit_b_16_224": "torchvision's vit_b_16 at full size, 224x224",
    "swin_t_224": "torchvision's swin_t at full size, 224x224",
    "zoo_resnet18v1": "zoo ResNet v1 form: ResNet-18, BatchNorms kept, opset 8 with BN "
                      "spatial=1, Reshape head with a batch-1 shape constant, residual Sum, "
                      "Softmax last, initializers as inputs",
    "zoo_resnet18v2": "zoo ResNet v2 form: pre-activation ResNet-18 as MXNet Gluon's (built "
                      "here: BN of the input, conv-BN-ReLU stem, BN-ReLU-conv blocks, final "
                      "BN-ReLU), the forms of zoo_resnet18v1",
    "zoo_squeezenet1_1": "zoo SqueezeNet 1.1 form: opset 9, Softmax last, initializers as inputs",
    "zoo_mobilenetv2_nhwc": "MobileNetV2 with an NHWC input and a leading Transpose "
                            "(EfficientNet-Lite4's form), opset 9, Softmax last; convolutions "
                            "scaled to unit output on a calibration batch (with its BatchNorms "
                            "folded at drawn statistics, most ReLU6 inputs fall outside (0, 6) "
                            "and the gradient shrinks by 1e8 from the head to the first "
                            "convolution, too little for float32 to resolve one SGD step)",
    "zoo_densenet121": "zoo DenseNet-121 form (densenet-3): BatchNorms kept, opset 3, BN with "
                       "consumed_inputs, "
                       "is_test=1 and spatial=1, Gemm broadcast=1, Reshape head with a shape "
                       "attribute, Softmax last",
    "zoo_googlenet": "zoo GoogLeNet stand-in: torchvision GoogLeNet (with BN, folded by the "
                     "exporter), Reshape head, opset 9, Softmax last; convolutions scaled to "
                     "unit output on a calibration batch (with its BatchNorms folded at "
                     "drawn statistics its activations stay near the drawn shifts, and "
                     "one full-mode SGD step moved a bias by 1.5e-7, below float32's "
                     "resolution)",
    "zoo_vgg16_bn": "zoo VGG-16-BN form: BatchNorms kept, opset 8, BN spatial=1, Reshape head, "
                    "classifier 256 wide",
    "zoo_vgg19": "zoo VGG-19 form: Reshape head, opset 9, classifier 256 wide",
    "zoo_zfnet": "ZFNet-512 stand-in: CaffeNet's layers with a 7x7 stride-2 first convolution, "
                 "LRN, Reshape head",
    "zoo_shufflenet_v2": "zoo ShuffleNet v2 form: BatchNorms kept, opset 8, BN spatial=1, "
                         "Softmax last",
    "zoo_shufflenet_v1": "zoo ShuffleNet v1 form: 3 groups, widths 24/240/480/960, two units per "
                         "stage (built here), channel shuffle as Reshape-Transpose-Reshape with "
                         "batch-1 shapes, BatchNorms kept, opset 8 with BN spatial=1, Softmax "
                         "last",
    "zoo_efficientnet_lite4": "zoo EfficientNet-Lite4 form: EfficientNet-Lite (built here: "
                              "EfficientNet-B0's MBConv stages without squeeze-excitation, ReLU6 "
                              "as Clip, stem 32 and head 1280) at width 1.0 with 1-2 blocks per "
                              "stage (Lite4: width 1.4, 2-8 blocks, 300x300), NHWC input with a "
                              "leading Transpose, mean over H and W, opset 11, Softmax last; "
                              "convolutions scaled to unit output on a calibration batch "
                              "(with its BatchNorms folded at drawn statistics, 46% of the "
                              "last stage's channels stay below ReLU6's 0 on both images and "
                              "over 90% of its 5x5 depthwise filter's gradient is zero)",
    "zoo_resnet50v1": "zoo ResNet-50 v1 form: ResNet-50 (3, 4, 6, 3 bottleneck blocks) with "
                      "the stride in each stage's first 1x1 convolution, BatchNorms kept, the "
                      "forms of zoo_resnet18v1",
    "zoo_resnet50_caffe2": "zoo resnet50-caffe2-v1-6 form: the ResNet-50 v1 above at opset 6, "
                           "BN with is_test=1 and spatial=1 (no consumed_inputs), Gemm "
                           "broadcast=1, Reshape head, residual Sum, Softmax last",
    "zoo_inception_v1": "zoo Inception v1 / Caffe GoogLeNet form: the paper's GoogLeNet (built "
                        "here) without BatchNorm, LRN after the first pooling and after conv2, "
                        "padded max pools instead of Caffe's ceil mode, convolutions scaled to "
                        "unit output on a calibration batch, Reshape head, opset 9, Softmax last",
    "zoo_resnet34v1": "zoo resnet34-v1-7 form (MXNet Gluon's): torchvision's ResNet-34 at full "
                      "depth, BatchNorms kept, opset 8 with BN spatial=1, Flatten and Gemm "
                      "last (no Softmax), initializers as inputs, batch 1 declared",
    "zoo_resnet101v1": "zoo ResNet-101 v1 form: the ResNet-50 v1 above with (3, 4, 23, 3) "
                       "blocks, full depth, the forms of zoo_resnet34v1",
    "zoo_resnet152v1": "zoo ResNet-152 v1 form: the ResNet-50 v1 above with (3, 8, 36, 3) "
                       "blocks, full depth, the forms of zoo_resnet34v1",
    "zoo_resnet34v2": "zoo ResNet-34 v2 form: zoo_resnet18v2's pre-activation ResNet with "
                      "(3, 4, 6, 3) basic blocks, the forms of zoo_resnet34v1",
    "zoo_resnet50v2": "zoo ResNet-50 v2 form: zoo_resnet18v2's pre-activation ResNet with "
                      "(3, 4, 6, 3) pre-activation bottlenecks (stride in the 3x3, as Gluon's), "
                      "the forms of zoo_resnet34v1; its full-mode PyTorch step at batch 2 is "
                      "ill-conditioned: the last stage's maps are 2x2, each of its training-mode "
                      "BatchNorms normalises 8 values, and PyTorch's own float32 forward is up "
                      "to 7.8e-4 from float64 at the final BatchNorm (outputs of RMS 1.05), "
                      "whose output (0, 1536, 3) is 5.5e-5 from zero: whether the ReLU after it "
                      "passes the gradient is decided by rounding (onnxtrain's float32 flips "
                      "it, PyTorch's does not; the failing gradient element is channel 1536's). "
                      "No batch seed from 20 to 45 puts every ReLU input of the last stage more "
                      "than 1.4x PyTorch's float32 error from zero",
    "zoo_resnet101v2": "zoo ResNet-101 v2 form: the ResNet-50 v2 above with (3, 4, 23, 3) "
                       "blocks, full depth, the forms of zoo_resnet34v1; its full-mode PyTorch "
                       "step is ill-conditioned as zoo_resnet50v2's: the final BatchNorm's "
                       "output (0, 1010, 1) is 8.0e-5 from zero where PyTorch's own float32 "
                       "forward is up to 2.8e-3 from float64, and the failing gradient element "
                       "is channel 1010's",
    "zoo_resnet152v2": "zoo ResNet-152 v2 form: the ResNet-50 v2 above with (3, 8, 36, 3) "
                       "blocks, full depth, the forms of zoo_resnet34v1",
    "zoo_inception_v2": "96x96; zoo Inception v2 form (Caffe2's BN-Inception, built here): a "
                        "BatchNorm after each convolution, each 5x5 factorised into two 3x3, "
                        "the paper's ten modules (3c and 4e reduce by stride-2 branches beside "
                        "a max pool, average pools counting the padding), padded max pools "
                        "instead of Caffe's ceil mode, BatchNorms kept, opset 8 with BN "
                        "spatial=1, Reshape head, Softmax last, initializers as inputs; at "
                        "64x64 Mixed 5a/5b are 2x2, each pool branch's 3x3 window covers the "
                        "whole map, and the BatchNorm after its 1x1 convolution sees one value "
                        "per image, 1-2e-6 apart (relative) after the frozen prefix: the "
                        "fine-tune PyTorch step is ill-conditioned there (float32 rounding of "
                        "the prefix moves the float64 gradients by up to 179%), at 96x96 "
                        "(3x3 maps) it is not",
    "zoo_alexnet": "zoo bvlc_alexnet form: Caffe's AlexNet (built here: widths 96-256-384-384-"
                   "256, conv2/4/5 in 2 groups, LRN after the first two ReLUs, before their "
                   "pools), classifier 256 wide, Reshape head, opset 6 (Gemm broadcast=1), "
                   "Softmax last",
    "zoo_vgg16": "zoo vgg16-7 form (MXNet Gluon's): opset 9, Flatten and Gemm last (no "
                 "Softmax), classifier 256 wide, initializers as inputs, batch 1 declared",
    "zoo_vgg19_bn": "zoo vgg19-bn-7 form (MXNet Gluon's): BatchNorms kept, opset 8 with BN "
                    "spatial=1, Flatten and Gemm last (no Softmax), classifier 256 wide",
    "zoo_mobilenetv2": "zoo mobilenetv2-7 form (MXNet Gluon's): torchvision's MobileNetV2 "
                       "features, the classifier a 1x1 convolution without bias after the "
                       "pooling, then a Flatten, no Softmax; BatchNorms kept, opset 8 with BN "
                       "spatial=1, initializers as inputs; its PyTorch step at 64x64 is "
                       "ill-conditioned: in fine-tune mode the frozen prefix (BatchNorms at "
                       "drawn statistics) leaves the first trained BatchNorm (2x2 maps) inputs "
                       "of variance 0.03 eps (median over its channels), and PyTorch's own "
                       "float32 gradients are 11% off (median over the trained tensors); in "
                       "full mode a 1e-6 relative perturbation of the weights moves "
                       "features.14.conv.0.1.weight's float64 gradient by 4.2% (1.5e-7: "
                       "9.5e-4; ReLU6 inputs crossing their kinks), more than onnxtrain's "
                       "float32 error there (5.0e-3, PyTorch's 5.4e-5; its worst channel, "
                       "104, has a ReLU6 input 1.1e-5 of its layer's standard deviation from "
                       "0 after features.14's depthwise convolution); with calibrated "
                       "convolutions, or at 96x96 and 128x128, 1e-6 still moves some "
                       "gradient by 36%, 3% and 6%",
    "zoo_squeezenet1_0": "zoo squeezenet1.0 form (Caffe2's): torchvision's SqueezeNet 1.0 with "
                         "its [N, 1000, 1, 1] output (no Flatten), Softmax last, opset 9, "
                         "initializers as inputs",
}

# Why a family has no PyTorch step row (test_family_parity.sh does not run
# it), for its cell.
PARITY_NOT_RUN = {
    "vit_b_16_224": "not run: the float64 step of the full-size model is not in the parity "
                    "set; vit_b_16 and vit_b_16_op17 check the same graph at a small size",
    "swin_t_224": "not run: the float64 step of the full-size model is not in the parity set; "
                  "swin_t and swin_t_op17 check the same graph at a small size",
}

# Failures of a check that is ill-conditioned for the family's fixture (its
# note says why: float32 rounding, PyTorch's as onnxtrain's, decides a ReLU
# kink or is amplified past the tolerance): their entry under "What is
# missing" says so.
ILL_CONDITIONED = {("inception_v3", "PyTorch step, full"),
                   ("zoo_mobilenetv2", "PyTorch step, full"),
                   ("zoo_resnet50v2", "PyTorch step, full"),
                   ("zoo_resnet101v2", "PyTorch step, full")}
ILL_SUFFIX = " (the step is ill-conditioned at batch 2; the fixture note says why)"

# The families make bench-models does not time (tests/bench/bench_families.py
# times the torchvision families at one size), and what stands for them.
BENCH_AS = {
    "vit_b_16": "vit_b_16_224", "vit_b_16_op17": "vit_b_16_224",
    "swin_t": "swin_t_224", "swin_t_op17": "swin_t_224",
}

# The families without a fixture in tests/fixtures/make_family_tests.py
# yet, and what stands in the way, for the section that lists them when the
# results have no row for them.
UNTESTED = {
    "vit_b_16_224": "the full-size fixture is in the --all set (make test-models); no run "
                    "recorded yet",
    "swin_t_224": "the full-size fixture is in the --all set (make test-models); no run "
                  "recorded yet",
}

HEADER = """# Models

Which torchvision classification families onnxtrain imports, runs and trains,
as the tests last found it. Generated by `tools/gen_models_table.py` from the
results of `tests/cli/test_families.sh` and `tests/cli/test_family_parity.sh`
(`make test-models` runs every family and regenerates this file) and of
`make bench-models`; do not edit it by hand. A run of some families or
modes merges into the table (`--previous docs/models.md`, as `make
models-table` does): each family and check shows what the last run that
covered it found.

Each family is torchvision 0.14's definition with random weights (BatchNorm
and LayerNorm parameters, BatchNorm statistics and biases drawn at random,
logits scaled to a standard deviation of about 1), exported by PyTorch at
opset 13 (17 where the notes say) with a dynamic batch, small as the notes
say. The columns:

- **import**: `inspect` finds the head PyTorch has and the file's parameter
  count;
- **run**: `test-data` matches PyTorch's output (batch 2);
- **feature-extract**, **fine-tune**, **full**: `finetune` trains 2 steps in
  that mode and exports; the export runs in onnxruntime with the logits
  onnxtrain computes (max abs diff <= 1e-4), and every tensor the mode
  freezes is bit-identical to the imported one. The cell names the first
  node the preset trains (the preset of that mode: the head alone; the
  fine-tune preset below; everything).
- **PyTorch step**: for feature-extract (fe), fine-tune (ft) and full, one
  training step on a batch of 2 matches PyTorch's (float64) with the tensors
  the mode's preset trains: the loss, the logits, every trained gradient,
  the running statistics of the BatchNorms in training mode, and the weights
  after one SGD and one Adam step, each within 1e-4 (relative L2) or within
  4x PyTorch's own float32 error where that is larger (the file is exported
  without Dropout and with every BatchNorm kept, the head not swapped; for a
  zoo_* row it is the zoo form's file itself, against the family it rewrites
  with the BatchNorms the exporter folded folded the same way, the loss on
  the logits before the zoo's Softmax; tests/golden/make_family_golden.py;
  an NHWC form gets the batch transposed, as the trainer does). The cell
  gives per mode the largest relative L2 error of a trained gradient;
- **one step, onnxtrain / PyTorch**: seconds per full-mode training step
  (SGD) of the same family at the size and batch the header names, onnxtrain
  against PyTorch (channels-last, same threads) in the same run, and PyTorch's
  time over onnxtrain's (above 1: onnxtrain is faster). Measured by `make
  bench-models` (tests/bench/bench_families.py), which only a quiet machine
  makes meaningful.

The fine-tune preset is found from the graph's structure: for a classifier
of three or more linear layers (AlexNet, VGG) the layers after the first
one; otherwise the last stage before the global pooling (GlobalAveragePool,
ReduceMean over the spatial dims, or a pool to 1x1) and everything after it;
without a pooling, the stage before the Flatten that feeds the classifier.
For a transformer (ViT, Swin) it is the last encoder block (from the
residual junction before its attention to the last residual Add), the final
norm and the head, whether the head reads a class token or pools the tokens.
Where none applies, finetune lists the stages it found and how to choose with
`--train` / `--freeze-until`.

The zoo_* rows emulate the ONNX model zoo's files (which cannot be downloaded
here) by rewriting PyTorch exports into their forms
(`tests/fixtures/zoo_forms.py`). A Reshape head whose constant shape starts
with the batch the file declares (`[1, -1]` with batch 1) is made to copy the
batch instead (`ot_pass_batch_reshapes`, src/passes/batch.c), so such a file
trains at any batch and its export runs at any batch.

An image input whose only consumer is a Transpose with perm [0, 3, 1, 2]
(EfficientNet-Lite4's form), or of rank 4 with a last dim of 1 or 3 and a
dim 1 that is neither, takes NHWC images (`src/train/layout.c`): training,
evaluation, calibration and prediction transpose the loader's NCHW batches
on the host, and the export keeps the NHWC input.

"""


class BadInput(Exception):
    pass


def cell(status, detail):
    if status == "ok":
        return "yes"
    return "not run" if detail.startswith("not run") else "no"


def read_tsv(path, width):
    rows = []
    if path and os.path.exists(path):
        with open(path) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) >= width:
                    rows.append(parts)
    return rows


def grad_error(detail):
    """The largest relative L2 error of a trained gradient, from a parity
    row's detail ("N checks; grads: K tensors, max relative L2 X"), or None."""
    key = "max relative L2 "
    if key not in detail:
        return None
    return detail.split(key, 1)[1].split()[0].rstrip(";,")


def parity_cell(fam, got, missing):
    """The modes whose step matches PyTorch's with the largest gradient
    error of each, or what failed; got maps a mode to (status, detail)."""
    if not got:
        return PARITY_NOT_RUN.get(fam, "not run")
    if all(st == "missing" and d.startswith("not run") for st, d in got.values()):
        missing.append((fam, "PyTorch step", next(iter(got.values()))[1]))
        return "not run"
    passed, errs = [], []
    for mode, short in PARITY_MODES:
        status, detail = got.get(mode, ("missing", "not run"))
        if status != "ok":
            missing.append((fam, "PyTorch step, " + mode.replace("_", "-"), detail))
            continue
        passed.append(short)
        err = grad_error(detail)
        errs.append("%s %s" % (short, err) if err else short)
    figures = " (largest gradient error: %s)" % ", ".join(errs) if errs else ""
    if len(passed) == len(PARITY_MODES):
        return "yes" + figures
    return ("only " + ", ".join(passed) + figures) if passed else "no"


def bench_cell(fam, row):
    if row:
        if row[6] == "-":
            return "- (%s)" % (row[7] if len(row) > 7 and row[7] else "failed")
        return "%s s / %s s (%sx)" % (row[4], row[5], row[6])
    if fam in BENCH_AS:
        return "see %s" % BENCH_AS[fam]
    if fam.startswith("zoo_"):
        return "not timed (zoo forms are not in make bench-models' set)"
    return "not run"


class Table:
    """The results the table is made from: per family its checks, its
    parity modes and its bench row, in the order families came."""

    def __init__(self):
        self.order, self.checks, self.parity, self.bench = [], {}, {}, {}
        self.setting = None

    def family(self, fam):
        if fam not in self.checks:
            self.order.append(fam)
            self.checks[fam], self.parity[fam] = {}, {}

    def add_check(self, fam, check, status, detail):
        self.family(fam)
        self.checks[fam][check] = (status, detail)

    def add_parity(self, fam, mode, status, detail):
        self.family(fam)
        self.parity[fam][mode] = (status, detail)

    def add_bench(self, rows):
        """One BENCH.tsv's rows (or the previous table's): the setting of
        the last source with rows is the table's."""
        if not rows:
            return
        setting = tuple(rows[0][1:4])
        if setting != self.setting:
            self.bench = {}
            self.setting = setting
        for row in rows:
            if tuple(row[1:4]) == setting:
                self.family(row[0])
                self.bench[row[0]] = row


def split_row(line, where):
    """A table row's family and its cells after the fixture (the checks,
    the PyTorch step, the bench): the fixture note is the script's."""
    if not (line.startswith("| ") and line.endswith(" |")):
        raise BadInput("%s: not a table row: %s" % (where, line[:60]))
    parts = line[2:-2].rsplit(" | ", len(CHECKS) + 2)
    if len(parts) != len(CHECKS) + 3:
        raise BadInput("%s: a row without %d cells: %s" % (where, len(CHECKS) + 4, line[:60]))
    return parts[0].split(" | ", 1)[0], parts[1:]


def read_previous(path, table):
    """The results a table this script wrote records, into table."""
    try:
        with open(path) as f:
            lines = f.read().split("\n")
    except OSError as e:
        raise BadInput("%s: %s" % (path, e.strerror))
    head = [k for k, line in enumerate(lines) if line.startswith("| family | fixture | ")]
    if not head:
        raise BadInput("%s: no models table (a file gen_models_table.py wrote)" % path)
    k = head[0]
    m = re.search(r"\((\d+)x\d+, batch (\d+), (\d+) threads\) \|$", lines[k])
    setting = list(m.groups()) if m else None
    rows = []
    k += 2
    while k < len(lines) and lines[k].startswith("|"):
        rows.append(split_row(lines[k], "%s:%d" % (path, k + 1)))
        k += 1
    reasons = {}
    if "## What is missing" in lines:
        for line in lines[lines.index("## What is missing") + 1:]:
            if line == "## Not tested yet":
                break
            m = re.match(r"^- \*\*([^,*]+), (.+?)\*\*: (.*)$", line)
            if m:
                detail = m.group(3).replace("\\|", "|")
                if (m.group(1), m.group(2)) in ILL_CONDITIONED and detail.endswith(ILL_SUFFIX):
                    detail = detail[:-len(ILL_SUFFIX)]
                reasons[(m.group(1), m.group(2))] = detail

    def reason(fam, what):
        if (fam, what) not in reasons:
            raise BadInput("%s: %s, %s did not pass and no list gives the reason" %
                           (path, fam, what))
        detail = reasons[(fam, what)]
        return ("missing" if detail.startswith("not run") else "fail"), detail

    bench = []
    for fam, cells in rows:
        table.family(fam)
        for check, text in zip(CHECKS, cells):
            if text == "yes":
                table.add_check(fam, check, "ok", "")
            elif text.startswith("yes (") and text.endswith(")"):
                table.add_check(fam, check, "ok", text[5:-1])
            else:
                table.add_check(fam, check, *reason(fam, check))
        text = cells[len(CHECKS)]
        if text == "not run" and (fam, "PyTorch step") in reasons:
            for mode, _ in PARITY_MODES:
                table.add_parity(fam, mode, *reason(fam, "PyTorch step"))
        elif text != "not run" and text != PARITY_NOT_RUN.get(fam):
            m = re.match(r"^(yes|no|only [a-z, ]+?)(?: \(largest gradient error: (.*)\))?$", text)
            if not m:
                raise BadInput("%s: %s's PyTorch step cell is not the script's: %s" %
                               (path, fam, text[:60]))
            errs = {}
            for fig in (m.group(2) or "").split(", "):
                if fig:
                    short, _, err = fig.partition(" ")
                    errs[short] = err
            shorts = {"yes": [s for _, s in PARITY_MODES], "no": []}.get(
                m.group(1), m.group(1)[5:].split(", "))
            for mode, short in PARITY_MODES:
                if short in shorts:
                    err = errs.get(short)
                    table.add_parity(fam, mode, "ok", "max relative L2 " + err if err else "")
                else:
                    table.add_parity(fam, mode,
                                     *reason(fam, "PyTorch step, " + mode.replace("_", "-")))
        text = cells[len(CHECKS) + 1]
        m = re.match(r"^(\S+) s / (\S+) s \((\S+)x\)$", text)
        if m and setting:
            bench.append([fam] + setting + list(m.groups()) + [""])
        elif text.startswith("- (") and text.endswith(")") and setting:
            bench.append([fam] + setting + ["-", "-", "-", text[3:-1]])
    table.add_bench(bench)


def usage():
    sys.stderr.write("usage: gen_models_table.py [RESULTS.tsv...] OUT.md [--previous OLD.md] "
                     "[--parity PARITY.tsv]... [--bench BENCH.tsv]...\n")
    return 2


def main():
    args = sys.argv[1:]
    opts = {"--previous": [], "--parity": [], "--bench": []}
    files = []
    while args:
        a = args.pop(0)
        if a in opts:
            if not args:
                return usage()
            opts[a].append(args.pop(0))
        elif a.startswith("--"):
            return usage()
        else:
            files.append(a)
    if len(opts["--previous"]) > 1 or len(files) < (1 if opts["--previous"] else 2):
        return usage()
    out = files.pop()
    table = Table()
    try:
        if opts["--previous"]:
            read_previous(opts["--previous"][0], table)
        for src in files:
            try:
                f = open(src)
            except OSError as e:
                raise BadInput("%s: %s" % (src, e.strerror))
            with f:
                for line in f:
                    parts = line.rstrip("\n").split("\t")
                    if len(parts) == 4:
                        table.add_check(*parts)
    except BadInput as e:
        sys.stderr.write("gen_models_table.py: %s\n" % e)
        return 1
    for src in opts["--parity"]:
        for fam, mode, status, detail in (r[:4] for r in read_tsv(src, 4)):
            table.add_parity(fam, mode, status, detail)
    for src in opts["--bench"]:
        table.add_bench(read_tsv(src, 7))
    bench_head = "one step, onnxtrain / PyTorch"
    if table.setting:
        bench_head += " (%sx%s, batch %s, %s threads)" % (table.setting[0], table.setting[0],
                                                          table.setting[1], table.setting[2])
    lines = [HEADER, "| family | fixture | " + " | ".join(CHECKS) + " | PyTorch step | " +
             bench_head + " |", "|---|---|" + "---|" * (len(CHECKS) + 2)]
    missing = []
    for fam in table.order:
        cells = []
        for c in CHECKS:
            status, detail = table.checks[fam].get(c, ("missing", "not run"))
            text = cell(status, detail)
            if status == "ok" and c in ("feature-extract", "fine-tune", "full"):
                start = [p for p in detail.split("; ") if p.startswith("trains from ")]
                if start:
                    text += " (" + start[0] + ")"
            if status != "ok":
                missing.append((fam, c, detail))
            cells.append(text)
        cells.append(parity_cell(fam, table.parity[fam], missing))
        cells.append(bench_cell(fam, table.bench.get(fam)))
        lines.append("| %s | %s | %s |" % (fam, NOTES.get(fam, "64x64"), " | ".join(cells)))
    failed = [m for m in missing if not m[2].startswith("not run")]
    not_run = [m for m in missing if m[2].startswith("not run")]
    lines += ["", "## What is missing", ""]
    if not missing:
        lines.append("Every family in the table passes every check.")
    elif not failed:
        lines.append("No check that ran failed.")
    for fam, c, detail in failed:
        why = ILL_SUFFIX if (fam, c) in ILL_CONDITIONED else ""
        lines.append("- **%s, %s**: %s%s" % (fam, c, detail.replace("|", "\\|"), why))
    if not_run:
        lines += ["", "## Not run", "", "The checks no run has a result for, and why:", ""]
        for fam, c, detail in not_run:
            lines.append("- **%s, %s**: %s" % (fam, c, detail.replace("|", "\\|")))
    untested = [(k, v) for k, v in UNTESTED.items() if k not in table.checks]
    if untested:
        lines += ["", "## Not tested yet", ""]
        for k, v in untested:
            lines.append("- **%s**: %s" % (k, v))
    lines.append("")
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines))
    os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
