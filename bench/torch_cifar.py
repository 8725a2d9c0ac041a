#!/usr/bin/python3
"""PyTorch twin of bench/cifar_bench.c: a small CIFAR CNN trained on a set in CIFAR-10's layout.

Conv 32 3x3 same ReLU -> MaxPool 2 -> Conv 64 3x3 same ReLU -> MaxPool 2 -> Conv 64 3x3 same
ReLU -> MaxPool 2 -> Flatten -> Dense 128 ReLU -> Dense 10 (softmax fused into the loss), NCHW
on 3 x 32 x 32 inputs, Glorot-uniform weights and zero biases as Keras (and fnn) initialise
them, Adam (lr 0.001, eps 1e-7), batch 32, the last 20 % of the training batches held out for
validation, pixels / 255. Timed the way fnn times itself: training per epoch without
validation; then inference on the test set in batches of 256, reported as images per second.
Run with Debian's /usr/bin/python3 (the interpreter that has torch).
"""

import os
import sys

from fashion_bench import add_limits, check_ranges, common_parser, set_threads, tune_malloc

SIDE = 32
RECORD = 1 + 3 * SIDE * SIDE


def parse_args():
    p = common_parser(__doc__.splitlines()[0], epochs=1)
    p.set_defaults(data=None)
    add_limits(p, "use only the first N training images, as cifar_bench's LIMIT [all]",
               "evaluate on the first N test images, as cifar_bench's TEST_LIMIT [all]")
    a = p.parse_args()
    if a.data is None:
        p.error("--data DIR (the folder of data_batch_1.bin ... test_batch.bin) is required")
    check_ranges(p, a)
    return a


ARGS = parse_args()
if ARGS.malloc == "tuned":
    tune_malloc()
set_threads(ARGS.threads, ARGS.blas_threads)

import torch  # noqa: E402
from torch import nn  # noqa: E402

from torch_train import keras_init, run  # noqa: E402


def read_batches(paths, limit):
    """(images as float32 (N, 3, 32, 32) in [0, 1], labels as int64 (N,)) from CIFAR-10 binary
    batch files, records of one label byte and the red, green and blue planes; the first `limit`
    records only when limit > 0. Raises ValueError naming a file that is not whole records."""
    import numpy as np

    parts = []
    for path in paths:
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size % RECORD:
            raise ValueError(f"{path}: {raw.size} bytes, not a whole number of "
                             f"{RECORD}-byte records")
        parts.append(raw.reshape(-1, RECORD))
    rec = np.concatenate(parts)
    if limit:
        rec = rec[:limit]
    x = rec[:, 1:].reshape(-1, 3, SIDE, SIDE).astype(np.float32)
    x /= 255.0  # in place: a second float copy would set the run's peak memory
    return torch.from_numpy(x), torch.from_numpy(rec[:, 0].astype(np.int64))


def build_model():
    """The CIFAR CNN; it ends in logits, the softmax being fused into CrossEntropyLoss."""
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),  # NCHW order, as fnn flattens
        nn.Linear(64 * 4 * 4, 128), nn.ReLU(),
        nn.Linear(128, 10),
    )
    return keras_init(model)


def load():
    """The set's training batches (data_batch_1 to 5) and test batch."""
    train_files = [os.path.join(ARGS.data, f"data_batch_{i}.bin") for i in range(1, 6)]
    x_all, y_all = read_batches(train_files, ARGS.limit)
    x_test, y_test = read_batches([os.path.join(ARGS.data, "test_batch.bin")], ARGS.test_limit)
    return x_all, y_all, x_test, y_test


def main():
    run(ARGS, "cifar", load, build_model)


if __name__ == "__main__":
    try:
        main()
    except (OSError, ValueError) as e:
        print(f"torch_cifar.py: {e}", file=sys.stderr)
        sys.exit(1)
