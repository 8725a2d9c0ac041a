#!/usr/bin/python3
"""Checks an ONNX file exported by `fnn export` with two tools nobody here wrote: ONNX's own
checker (python3-onnx, onnx.checker.check_model with full_check, which also infers every shape),
and OpenCV's DNN module (python3-opencv, cv2.dnn.readNetFromONNX), which runs the first N images
of an IDX file; its probabilities must be within 1e-5 of `fnn predict --json --top K`'s and give
every image the same most likely class. Also checks the file's metadata (class names, spec).

Usage: /usr/bin/python3 check_py.py MODEL.onnx IMAGES.idx[.gz] PREDICT.json N [--batch B]
--batch B: the model's fixed batch size, if it has one (the images then go in batches of it).
Exit status 0 when everything agrees, 1 on any disagreement or error."""
import argparse
import gzip
import json
import sys

try:
    import cv2
    import numpy as np
    import onnx
except ImportError as e:
    sys.exit(f"check_py: {e}: install python3-opencv and python3-onnx, and run /usr/bin/python3")

TOLERANCE = 1e-5


def fail(msg):
    print(f"check_py: {msg}", file=sys.stderr)
    sys.exit(1)


def read_idx(path, n):
    """(n, channels, rows, cols): three IDX dimensions are grey images, four channel planes."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    magic = int(np.frombuffer(data[:4], dtype=">u4")[0]) if len(data) >= 4 else 0
    ndims = {0x803: 3, 0x804: 4}.get(magic)
    if ndims is None:
        fail(f"{path}: not an IDX image file")
    dims = [int(v) for v in np.frombuffer(data[4:4 + 4 * ndims], dtype=">u4")]
    count, shape = dims[0], ([1] if ndims == 3 else []) + dims[1:]
    size = int(np.prod(shape))
    head = 4 + 4 * ndims
    if count < n or len(data) < head + n * size:
        fail(f"{path}: not an IDX image file with {n} images")
    x = np.frombuffer(data[head:head + n * size], dtype=np.uint8)
    return x.reshape([n] + shape).astype(np.float32)  # pixels 0..255, as the graph takes


def read_predict(path, n):
    with open(path) as f:
        images = json.load(f)["images"][:n]
    k = len(images[0]["top"])
    probs = np.zeros((n, k))
    for i, im in enumerate(images):
        if len(im["top"]) != k:
            fail(f"{path}: image {i} lists {len(im['top'])} classes, not {k}")
        for t in im["top"]:
            probs[i, t["index"]] = t["probability"]
    return probs, np.array([im["top"][0]["index"] for im in images])


def check_file(path, k):
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    names = json.loads(meta.get("class_names", "null"))
    if not (isinstance(names, list) and len(names) == k and all(isinstance(s, str) for s in names)):
        fail(f"{path}: metadata_props class_names is {meta.get('class_names')!r}, not {k} names")
    if not meta.get("fnn_spec"):
        fail(f"{path}: metadata_props has no fnn_spec")
    opsets = {o.domain: o.version for o in model.opset_import}
    inputs = [i.name for i in model.graph.input]
    if inputs != ["pixels"]:
        fail(f"{path}: inputs {inputs}, expected ['pixels']")
    print(f"onnx {onnx.__version__} checker (full_check): valid, opset {opsets.get('')}, "
          f"IR {model.ir_version}, classes {names}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("images")
    ap.add_argument("predict")
    ap.add_argument("n", type=int)
    ap.add_argument("--batch", type=int, default=0)
    a = ap.parse_args()
    want, top1 = read_predict(a.predict, a.n)
    k = want.shape[1]
    try:
        check_file(a.model, k)
    except Exception as e:  # ValidationError, and shape inference's InferenceError
        fail(f"{a.model}: onnx.checker.check_model(full_check=True): {type(e).__name__}: {e}")
    x = read_idx(a.images, a.n)
    net = cv2.dnn.readNetFromONNX(a.model)
    batch = a.batch or a.n
    got = np.zeros((a.n, k), dtype=np.float32)
    for start in range(0, a.n, batch):
        chunk = np.zeros((batch,) + x.shape[1:], dtype=np.float32)  # the last one padded
        rows = min(a.n, start + batch) - start
        chunk[:rows] = x[start:start + rows]
        net.setInput(chunk)
        out = net.forward()
        if out.shape != (batch, k):
            fail(f"OpenCV's output has shape {out.shape}, expected {(batch, k)}")
        got[start:start + rows] = out[:rows]
    diff = np.abs(got.astype(np.float64) - want)
    worst = int(np.unravel_index(np.nanargmax(np.where(np.isnan(diff), np.inf, diff)), diff.shape)[0])
    max_diff = float(np.max(np.where(np.isnan(diff), np.inf, diff)))
    disagree = np.flatnonzero(np.argmax(got, axis=1) != top1)
    line = (f"OpenCV {cv2.__version__} dnn: {a.n} images, max |p - fnn| = {max_diff:.2e} "
            f"(image {worst}), top-1 differs on {len(disagree)}")
    if not max_diff <= TOLERANCE or len(disagree):
        first = f" (first: image {disagree[0]})" if len(disagree) else ""
        fail(f"{line}{first}; tolerance {TOLERANCE}")
    print(line)


if __name__ == "__main__":
    main()
