"""Where PyTorch's training step of the CIFAR CNN goes: each layer's forward and backward alone.

The CIFAR CNN of bench/torch_cifar.py (Conv 32 3x3 same ReLU -> MaxPool 2 -> Conv 64 -> MaxPool 2
-> Conv 64 -> MaxPool 2 -> Flatten -> Dense 128 ReLU -> Dense 10), batch 32 of random images:
the median time of a whole training step (forward, cross-entropy, backward, Adam) and of each
layer's forward and backward on its own input shape (a convolution with its ReLU, as fnn fuses
them; the input gradient made for every layer but the first, which training never needs), with
the convolutions' floating-point operations per second counted as a direct convolution's work.
bench/cifar_layers.sh runs it beside fnn's build/profile_step. Run with Debian's /usr/bin/python3.
"""

import json
import sys
import time

from fashion_bench import set_threads, tune_malloc

BATCH = 32


def parse_args():
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="intra-op threads [2]")
    p.add_argument("--steps", type=int, default=100,
                   help="timed passes per sample; the time is the median of 5 samples [100]")
    a = p.parse_args()
    if a.threads < 1 or a.steps < 1:
        p.error("--threads and --steps must be >= 1")
    return a


ARGS = parse_args()
tune_malloc()
set_threads(ARGS.threads)

import torch  # noqa: E402
from torch import nn  # noqa: E402


def median_ms(fn, steps):
    """The median over 5 samples of fn's mean time in milliseconds, after a warm-up."""
    for _ in range(max(steps // 5, 5)):
        fn()
    samples = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(steps):
            fn()
        samples.append((time.perf_counter() - t) / steps * 1e3)
    samples.sort()
    return samples[2]


def layer_pass(module, shape, input_grad):
    """One forward and backward of module on a batch of `shape`, dy all ones."""
    x = torch.rand(BATCH, *shape, requires_grad=input_grad)
    dy = torch.ones_like(module(x))

    def run():
        module.zero_grad(set_to_none=True)
        x.grad = None
        module(x).backward(dy)
    return run


def conv_flops(c, f, side):
    """A 3x3 same convolution's multiply-adds on BATCH images, times 2."""
    return 2 * BATCH * side * side * f * c * 9


def main():
    torch.set_num_threads(ARGS.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(1)
    convs = [(3, 32, 32), (32, 64, 16), (64, 64, 8)]  # (in, out, side)
    layers = []
    for i, (c, f, side) in enumerate(convs):
        first = i == 0
        passes = 2 if first else 3  # forward, kernel gradient, input gradient
        module = nn.Sequential(nn.Conv2d(c, f, 3, padding=1), nn.ReLU())
        ms = median_ms(layer_pass(module, (c, side, side), not first), ARGS.steps)
        flops = passes * conv_flops(c, f, side)
        layers.append({"layer": f"conv2d {c}->{f} {side}x{side} relu", "kind": "conv",
                       "ms": round(ms, 4), "gflops": round(flops / ms / 1e6, 1)})
        ms = median_ms(layer_pass(nn.MaxPool2d(2), (f, side, side), True), ARGS.steps)
        layers.append({"layer": f"maxpool 2 {f}x{side}x{side}", "kind": "pool",
                       "ms": round(ms, 4)})

    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 4 * 4, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=0.001, eps=1e-7)
    loss = nn.CrossEntropyLoss()
    x = torch.rand(BATCH, 3, 32, 32)
    y = torch.randint(0, 10, (BATCH,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss(model(x), y).backward()
        opt.step()
    step_ms = median_ms(step, ARGS.steps)
    print(json.dumps({"tool": "pytorch", "version": torch.__version__, "threads": ARGS.threads,
                      "batch": BATCH, "step_ms": round(step_ms, 4), "layers": layers}))


if __name__ == "__main__":
    try:
        main()
    except (OSError, ValueError) as e:
        print(f"torch_layers.py: {e}", file=sys.stderr)
        sys.exit(1)
