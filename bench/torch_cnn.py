#!/usr/bin/python3
"""PyTorch twin of `fnn train` with the issue's reference CNN, for bench/cnn.sh.

Conv 32 3x3 same ReLU -> MaxPool 2 -> Conv 64 3x3 same ReLU -> MaxPool 2 -> Flatten ->
Dense 128 ReLU -> Dropout 0.5 -> Dense 10 (softmax fused into the loss), NCHW, Glorot-uniform
weights and zero biases as Keras (and fnn) initialise them, Adam (lr 0.001, eps 1e-7), batch 32,
the last 20 % of the training file held out for validation, pixels / 255. Timed the way fnn
times itself: training per epoch without validation; then inference on the test set in
batches of 256 (fnn's evaluation batch), reported as images per second.
Run with Debian's /usr/bin/python3 (the interpreter that has torch).
"""

import sys

from fashion_bench import add_limits, check_ranges, common_parser, set_threads, tune_malloc
from fashion_bench import load as load_idx


def parse_args():
    p = common_parser(__doc__.splitlines()[0], epochs=1)
    add_limits(p, "use only the first N images of the training file, as fnn's --limit [all]",
               "evaluate on the first N test images, as fnn's --test-limit [all]")
    a = p.parse_args()
    check_ranges(p, a)
    return a


ARGS = parse_args()
if ARGS.malloc == "tuned":
    tune_malloc()
set_threads(ARGS.threads, ARGS.blas_threads)

from torch import nn  # noqa: E402

from torch_train import keras_init, run  # noqa: E402


def build_model():
    """The reference CNN; it ends in logits, the softmax being fused into CrossEntropyLoss."""
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),  # NCHW order, as fnn flattens
        nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(128, 10),
    )
    return keras_init(model)


def load():
    """Fashion-MNIST's training and test images, (N, 1, 28, 28) in [0, 1]."""
    x_all, y_all = load_idx(ARGS.data, "train", ARGS.limit, (1, 28, 28))
    x_test, y_test = load_idx(ARGS.data, "t10k", ARGS.test_limit, (1, 28, 28))
    return x_all, y_all, x_test, y_test


def main():
    run(ARGS, "cnn", load, build_model)


if __name__ == "__main__":
    try:
        main()
    except (OSError, ValueError) as e:
        print(f"torch_cnn.py: {e}", file=sys.stderr)
        sys.exit(1)
