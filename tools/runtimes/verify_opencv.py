"""verify_opencv.py: runs a model in OpenCV DNN for `onnxtrain verify`.

    python3 verify_opencv.py MODEL OUT.json OUTPUT_NAMES NAME=INPUT.npy ...

OUTPUT_NAMES is the graph's outputs, comma-separated. OUT.json gets
{"outputs": [{"name", "dims", "data"}], "version": V} or {"error": MESSAGE,
"version": V} when OpenCV does not load or run the model (exit status 0).
Exit status 3: OpenCV's Python module (python3-opencv) is not installed.
"""
import json
import math
import sys

try:
    import cv2
    import numpy as np
except ImportError as e:
    sys.stderr.write("OpenCV is not installed for python3 (python3-opencv): %s\n" % e)
    sys.exit(3)


def value(v):
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def main():
    model, out, names = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    doc = {"version": cv2.__version__}
    try:
        net = cv2.dnn.readNetFromONNX(model)
        for spec in sys.argv[4:]:
            name, path = spec.split("=", 1)
            net.setInput(np.load(path), name)
        outs = net.forward(names)
        doc["outputs"] = [{"name": n, "dims": list(o.shape),
                           "data": [value(float(v)) for v in o.reshape(-1)]}
                          for n, o in zip(names, outs)]
    except Exception as e:  # cv2.error and anything the loader raises
        doc["error"] = " ".join(str(e).split())[:400]
    with open(out, "w") as f:
        json.dump(doc, f)


if __name__ == "__main__":
    main()
