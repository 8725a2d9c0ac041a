#!/usr/bin/python3
"""The Python side of bench/load.sh: what a PyTorch or Keras user writes to read the same files.

  load_py.py tree DIR   PIL + numpy: every PNG of DIR/train and DIR/test (class folders in
                        sorted order, files sorted) into one uint8 array per split, with labels
  load_py.py csv FILE   pandas.read_csv (its C parser), then the label column and the pixels as
                        uint8 arrays

Prints one JSON line: seconds (the load alone, after the imports), images, and the sum of every
pixel and label, as load_bench prints it.
"""
import json
import os
import sys
import time

import numpy as np


def load_tree(root):
    from PIL import Image

    total, n = 0, 0
    for split in ("train", "test"):
        top = os.path.join(root, split)
        images, labels = [], []
        for k, cls in enumerate(sorted(os.listdir(top))):
            folder = os.path.join(top, cls)
            for name in sorted(os.listdir(folder)):
                with Image.open(os.path.join(folder, name)) as im:
                    images.append(np.asarray(im.convert("L"), dtype=np.uint8))
                labels.append(k)
        x = np.stack(images)
        y = np.asarray(labels, dtype=np.uint8)
        total += int(x.sum(dtype=np.uint64)) + int(y.sum(dtype=np.uint64))
        n += len(y)
    return n, total


def load_csv(path):
    import pandas as pd

    frame = pd.read_csv(path)
    y = frame.iloc[:, 0].to_numpy(dtype=np.uint8)
    x = frame.iloc[:, 1:].to_numpy(dtype=np.uint8)
    return len(y), int(x.sum(dtype=np.uint64)) + int(y.sum(dtype=np.uint64))


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("tree", "csv"):
        sys.exit("usage: load_py.py tree DIR | csv FILE")
    if sys.argv[1] == "tree":
        import PIL.Image  # noqa: F401  imported before the clock starts, as pandas is
    else:
        import pandas  # noqa: F401
    start = time.perf_counter()
    n, total = (load_tree if sys.argv[1] == "tree" else load_csv)(sys.argv[2])
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": round(seconds, 4), "images": n, "checksum": total}))


if __name__ == "__main__":
    main()
