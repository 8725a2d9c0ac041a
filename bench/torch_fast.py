#!/usr/bin/python3
"""PyTorch twin of fnn's `fast` recipe on Fashion-MNIST, for bench/fast.sh.

The recipe is `fnn train --arch fast`, that is
    --arch "conv2d:32:3:same:nobias:he batchnorm relu conv2d:32:3:same:nobias:he batchnorm relu
      maxpool:2 conv2d:64:3:same:nobias:he batchnorm relu conv2d:64:3:same:nobias:he batchnorm
      relu maxpool:2 flatten dense:128 batchnorm relu dropout:0.3 dense:10:softmax"
    --epochs 12 --batch-size 64 --lr 0.002 --lr-schedule onecycle --label-smoothing 0.1
    --aug-flip --aug-shift 1 --ema 0.999 --ema-every 5 --tta flip
and here, each as fnn's sources define it:

- the model: the same layers in the same order, NCHW, flattened in NCHW order; convolutions
  without bias and He-uniform (limit sqrt(6 / fan_in), src/nn/conv2d.c: kaiming_uniform_ for
  ReLU), dense kernels Glorot-uniform with zero biases (Keras's defaults); batch norm as
  Keras's (src/nn/batchnorm.c): moving averages with momentum 0.99 (PyTorch's momentum 0.01),
  epsilon 1e-3, gamma 1, beta 0, moving mean 0 and variance 1 at the start; inverted dropout
  0.3; the softmax fused into the loss;
- Adam, betas 0.9 and 0.999, epsilon 1e-7 added to the uncorrected root as Keras and fnn do
  (src/optim/optim.c; PyTorch's epsilon is set to 1e-7 / sqrt(1 - 0.999^t) before step t,
  which makes its update the same), lr 0.002, batch 64 (a last partial batch included), on
  all parameters, the moving statistics excluded;
- data: pixels / 255; the first --limit images of the training file, of which the last
  --val-split (20 %; 0 for none) validate and the first floor(n (1 - split)) train, reshuffled
  every epoch;
- the one-cycle schedule per step t of T = epochs * steps (src/optim/schedule.c): lr (t + 1)
  / P up to step P - 1, P = round(0.25 T), then lr (T - t) / (T - P) down to lr / (T - P) at
  the last step;
- label smoothing 0.1: targets 0.9 onehot + 0.1 / 10 (src/nn/softmax_xent.c; PyTorch's
  label_smoothing is the same definition);
- augmentation (src/data/augment.c), per image of each training batch: a shift by dx and dy
  each uniform in {-1, 0, 1}, zeros shifted in, then a left-right mirror with probability 1/2;
- weight averaging (src/optim/ema.c): every parameter and batch norm's moving statistics,
  from the initial weights, after every 5th step t as avg += (1 - d^5) (w - avg) with d =
  min(0.999, (1 + t) / (10 + t)); validation (after each epoch) and the test use the average;
- flip test-time augmentation (src/eval/tta.c) in validation and test: the class
  probabilities of the image and of its mirror, averaged; the loss -log max(p, 1e-7),
  unsmoothed, as fnn reports it.

Timed as fnn times itself (torch_train.run): training per epoch, augmentation, schedule and
averaging included, validation excluded; then the test set in batches of 256.

What cannot match exactly:
- the random streams (initialisation, order, dropout masks, shifts and flips) are each
  framework's own: the accuracies agree to within the spread between seeds, not digit for digit;
- PyTorch's batch norm updates the moving variance with the unbiased batch variance (times M /
  (M - 1), M = batch * height * width), Keras and fnn with the biased one: 1.00002 to 1.00008
  for the convolutions' layers, 64 / 63 for the dense layer's (batch 64) - its moving standard
  deviation ends about 0.8 % larger here;
- fnn computes batch statistics in double and runs its convolutions by Winograd through oneDNN,
  PyTorch in float through im2col and OpenBLAS: results differ in the last bits.
Run with Debian's /usr/bin/python3 (the interpreter that has torch).
"""

import sys

from fashion_bench import add_limits, check_ranges, common_parser, set_threads, tune_malloc
from fashion_bench import load as load_idx


def parse_args():
    p = common_parser(__doc__.splitlines()[0], epochs=12)
    p.set_defaults(batch_size=64, lr=0.002)
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

from torch_train import Recipe, keras_init, run  # noqa: E402

# fnn's options of the recipe, as torch_train.Recipe applies them.
FAST = Recipe(label_smoothing=0.1, onecycle_peak_at=0.25, shift=1, flip=True, ema=0.999,
              ema_every=5, tta_flip=True, keras_adam=True)


def conv_bn_relu(cin, cout):
    """conv2d:COUT:3:same:nobias:he batchnorm relu."""
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01), nn.ReLU()]


def build_model():
    """The fast recipe's network; it ends in logits, the softmax being fused into the loss."""
    model = nn.Sequential(
        *conv_bn_relu(1, 32), *conv_bn_relu(32, 32),
        nn.MaxPool2d(2),
        *conv_bn_relu(32, 64), *conv_bn_relu(64, 64),
        nn.MaxPool2d(2),
        nn.Flatten(),  # NCHW order, as fnn flattens
        nn.Linear(64 * 7 * 7, 128),
        nn.BatchNorm1d(128, eps=1e-3, momentum=0.01), nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(128, 10),
    )
    return keras_init(model, he_convs=True)


def load():
    """Fashion-MNIST's training and test images, (N, 1, 28, 28) in [0, 1]."""
    x_all, y_all = load_idx(ARGS.data, "train", ARGS.limit, (1, 28, 28))
    x_test, y_test = load_idx(ARGS.data, "t10k", ARGS.test_limit, (1, 28, 28))
    return x_all, y_all, x_test, y_test


def main():
    run(ARGS, "fast", load, build_model, FAST)


if __name__ == "__main__":
    try:
        main()
    except (OSError, ValueError) as e:
        print(f"torch_fast.py: {e}", file=sys.stderr)
        sys.exit(1)
