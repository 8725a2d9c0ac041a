# Writes tests/fixtures/cnn_parity.safetensors: a PyTorch twin of a small fnn CNN (TF-style 'same'
# convolutions on both of fnn's paths, im2col and Winograd; Keras batch norm; max and average
# pooling) with its training- and eval-mode outputs, gradients, moving statistics and three
# Keras-form Adam steps, for tests/test_parity_cnn.c.
# With --rgb it writes tests/fixtures/rgb_parity.safetensors instead: the same network on
# 3-channel (3, 8, 8) inputs behind the model's per-channel input normalisation,
# (x - mean) / std (fnn_model_set_normalization), whose gradient reaches grad.x.
# Run with Debian's torch: /usr/bin/python3 tools/make_cnn_fixture.py [--rgb] [OUTPUT]
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import read_safetensors, write_safetensors  # noqa: E402

# Layer 0: stride-1 'same' 3x3 conv on an even (8x8) input, padding 1 on every side.
# Layer 3: stride-1 'same' 3x3 conv, 4 -> 4 channels on 4x4, linear: the one layer that fnn runs by
# Winograd F(4x4, 3x3) (3x3, stride 1, 4 or more input channels); the others take im2col.
# Its bias survives layer 5's batch norm: layer 4's windows that reach into the padding see only
# part of it, so its gradient is far above rounding noise.
# Layer 4: stride-2 'same' 3x3 conv on 4x4: TensorFlow pads 0 on top/left and 1 on bottom/right.
# It has no bias: batch norm subtracts the batch mean right after it, so a bias's gradient would be
# zero up to rounding, and Adam (m / sqrt(v)) would turn that rounding noise into steps of 3e-4.
SPEC = ("conv2d:4:3:same:relu batchnorm maxpool:2 conv2d:4:3:same conv2d:6:3:s2:same:nobias batchnorm "
        "relu avgpool:2 flatten dense:4:softmax")
INPUT_SHAPE = (1, 8, 8)
N = 6
CLASSES = 4
FIRST_SEED = 2024
STEPS = 3
ADAM = {"lr": 0.01, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "steps": STEPS}
BN_MOMENTUM = 0.99
BN_EPS = 1e-3
# ReLU inputs closer to 0 than this, or max-pool windows whose two largest entries are closer
# than this, would let float32 rounding decide a kink.
MARGIN = 1e-3
COMMAND = "/usr/bin/python3 tools/make_cnn_fixture.py"

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "tests", "fixtures", "cnn_parity.safetensors")

CONVS = {0: dict(cin=1, cout=4, k=3, s=1, bias=True), 3: dict(cin=4, cout=4, k=3, s=1, bias=True),
         4: dict(cin=4, cout=6, k=3, s=2, bias=False)}
BNS = {1: 4, 5: 6}
DENSE = 9
DENSE_IN = 6
BN_TENSORS = ("gamma", "beta", "moving_mean", "moving_variance")


# --rgb: the per-channel normalisation in front of layer 0 (None: none, as fnn's default).
NORM = None
RGB_NORM = {"mean": [0.49, 0.48, 0.45], "std": [0.25, 0.24, 0.26]}


def use_rgb():
    """Switches the constants above to the colour variant."""
    global INPUT_SHAPE, NORM, COMMAND, DEFAULT_OUT
    INPUT_SHAPE = (3, 8, 8)
    CONVS[0]["cin"] = 3
    # Stored as float32, as the model holds them; the twin computes with those values.
    NORM = {k: torch.tensor(v, dtype=torch.float32) for k, v in RGB_NORM.items()}
    COMMAND = "/usr/bin/python3 tools/make_cnn_fixture.py --rgb"
    DEFAULT_OUT = os.path.join(REPO, "tests", "fixtures", "rgb_parity.safetensors")


def tensor_names():
    """Every model tensor, in fnn's order (fnn_model_tensor)."""
    for i in range(DENSE + 1):
        if i in CONVS or i == DENSE:
            yield "layers.%d.kernel" % i
            if i == DENSE or CONVS[i]["bias"]:
                yield "layers.%d.bias" % i
        elif i in BNS:
            for t in BN_TENSORS:
                yield "layers.%d.%s" % (i, t)


def frozen(name):
    return name.endswith(".moving_mean") or name.endswith(".moving_variance")


def trainable_names():
    return [k for k in tensor_names() if not frozen(k)]


def same_pad(h, k, s):
    """TensorFlow's 'same' padding of one dimension: (before, after)."""
    out = (h + s - 1) // s
    total = max((out - 1) * s + k - h, 0)
    return total // 2, total - total // 2


def conv_same(x, kernel, bias, s):
    k = kernel.shape[-1]
    top, bottom = same_pad(x.shape[2], k, s)
    left, right = same_pad(x.shape[3], k, s)
    return F.conv2d(F.pad(x, (left, right, top, bottom)), kernel, bias, stride=s)


def relu_checked(z, checks, where):
    checks.append((where, z.detach().abs().min().item()))
    return torch.relu(z)


def maxpool_checked(x, checks, where):
    w = F.unfold(x.detach(), 2, stride=2)  # (n, c*4, windows)
    w = w.reshape(x.shape[0], x.shape[1], 4, -1)
    top2 = w.topk(2, dim=2).values
    checks.append((where, (top2[:, :, 0] - top2[:, :, 1]).min().item()))
    return F.max_pool2d(x, 2, 2)


def normalize(x):
    """fnn's input normalisation: (x - mean) / std per channel, a division as fnn does it."""
    if NORM is None:
        return x
    mean = NORM["mean"].to(x.dtype)[None, :, None, None]
    std = NORM["std"].to(x.dtype)[None, :, None, None]
    return (x - mean) / std


def forward(p, x, train, stats, checks=None):
    """Logits (N, 4); in training mode also the moving statistics after the forward pass.
    p: tensors by name; stats: the moving statistics (read in eval, updated in training)."""
    checks = [] if checks is None else checks
    new_stats = dict(stats)
    mode = "train" if train else "eval"

    def bn(h, i):
        g, b = p["layers.%d.gamma" % i], p["layers.%d.beta" % i]
        mm, mv = stats["layers.%d.moving_mean" % i], stats["layers.%d.moving_variance" % i]
        if train:
            mean = h.mean((0, 2, 3))
            var = ((h - mean[None, :, None, None]) ** 2).mean((0, 2, 3))  # biased, as Keras
            mom = torch.tensor(BN_MOMENTUM, dtype=h.dtype)
            new_stats["layers.%d.moving_mean" % i] = mom * mm + (1 - mom) * mean.detach()
            new_stats["layers.%d.moving_variance" % i] = mom * mv + (1 - mom) * var.detach()
        else:
            mean, var = mm, mv
        inv = 1.0 / torch.sqrt(var + BN_EPS)
        return (h - mean[None, :, None, None]) * (g * inv)[None, :, None, None] + b[None, :, None, None]

    h = normalize(x)
    h = conv_same(h, p["layers.0.kernel"], p["layers.0.bias"], CONVS[0]["s"])
    h = relu_checked(h, checks, "%s: layer 0 relu" % mode)
    h = bn(h, 1)
    h = maxpool_checked(h, checks, "%s: layer 2 maxpool" % mode)
    h = conv_same(h, p["layers.3.kernel"], p["layers.3.bias"], CONVS[3]["s"])
    h = conv_same(h, p["layers.4.kernel"], None, CONVS[4]["s"])
    h = bn(h, 5)
    h = relu_checked(h, checks, "%s: layer 6 relu" % mode)
    h = F.avg_pool2d(h, 2, 2)
    h = h.reshape(h.shape[0], -1)
    logits = h @ p["layers.9.kernel"] + p["layers.9.bias"]
    return logits, new_stats, checks


def loss_fn(logits, y):
    return F.cross_entropy(logits, y.long(), reduction="mean")


def assert_margins(checks):
    for where, margin in checks:
        assert margin > MARGIN, "%s: margin %.3g" % (where, margin)


def split(params):
    stats = {k: v for k, v in params.items() if frozen(k)}
    return {k: v for k, v in params.items() if not frozen(k)}, stats


def keras_adam(params, x, y):
    """3 Keras-form Adam steps in the dtype of params; each training forward also moves the
    batch-norm statistics. Returns the loss before each step and every tensor at the end."""
    p, stats = split({k: v.clone() for k, v in params.items()})
    m = {k: torch.zeros_like(v) for k, v in p.items()}
    v = {k: torch.zeros_like(t) for k, t in p.items()}
    b1, b2, lr, eps = ADAM["beta_1"], ADAM["beta_2"], ADAM["lr"], ADAM["epsilon"]
    losses = []
    for t in range(1, STEPS + 1):
        leaves = {k: t_.detach().clone().requires_grad_(True) for k, t_ in p.items()}
        logits, stats, checks = forward(leaves, x, True, stats)
        assert_margins([("adam step %d, %s" % (t, w), mg) for w, mg in checks])
        loss = loss_fn(logits, y)
        grads = dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values()))))
        losses.append(loss.item())
        alpha = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        for k in p:
            m[k] = b1 * m[k] + (1 - b1) * grads[k]
            v[k] = b2 * v[k] + (1 - b2) * grads[k] * grads[k]
            p[k] = p[k] - alpha * m[k] / (torch.sqrt(v[k]) + eps)
    out = dict(p)
    out.update(stats)
    return losses, out


def make_inputs(seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand((N,) + INPUT_SHAPE, generator=gen, dtype=torch.float32)
    y = torch.randperm(N, generator=gen) % CLASSES  # every class present
    y = y.to(torch.float32)

    def uniform(shape, lo, hi):
        return lo + (hi - lo) * torch.rand(shape, generator=gen)

    p = {}
    for i, c in CONVS.items():
        fan_in, fan_out = c["cin"] * c["k"] ** 2, c["cout"] * c["k"] ** 2
        # Layer 0 is 10x Glorot: batch norm undoes the scale, and ReLU inputs spread out
        # further from the kink at the same float32 relative error.
        lim = math.sqrt(6.0 / (fan_in + fan_out)) * (10.0 if i == 0 else 1.0)
        p["layers.%d.kernel" % i] = uniform((c["cout"], c["cin"], c["k"], c["k"]), -lim, lim)
        if c["bias"]:
            p["layers.%d.bias" % i] = uniform((c["cout"],), -0.2, 0.2)
    for i, c in BNS.items():
        # gamma > 0 keeps ReLU's zeros at the bottom of each max-pool window.
        p["layers.%d.gamma" % i] = uniform((c,), 0.6, 1.4)
        p["layers.%d.beta" % i] = uniform((c,), -0.3, 0.3)
        p["layers.%d.moving_mean" % i] = uniform((c,), -0.3, 0.3)
        p["layers.%d.moving_variance" % i] = uniform((c,), 0.5, 1.5)
    lim = math.sqrt(6.0 / (DENSE_IN + CLASSES))
    p["layers.9.kernel"] = uniform((DENSE_IN, CLASSES), -lim, lim)
    p["layers.9.bias"] = uniform((CLASSES,), -0.2, 0.2)
    # Shift layer 0's bias so that each channel's ReLU is on for about 85% of its inputs: some
    # units off, yet few max-pool windows with no active entry.
    z = conv_same(normalize(x), p["layers.0.kernel"], None, 1)
    p["layers.0.bias"] += -z.mean((0, 2, 3)) + 1.0 * z.std((0, 2, 3))
    p = {k: p[k] for k in tensor_names()}
    return x, y, p


def check_inputs(x, y, params):
    for k, t in params.items():
        if k.endswith(".bias") or k.endswith(".beta"):
            assert t.abs().min().item() > 1e-3, "%s has a near-zero entry" % k
    p64 = {k: v.double() for k, v in params.items()}
    _, stats = split(p64)
    _, _, checks = forward(p64, x.double(), True, stats)
    _, _, checks = forward(p64, x.double(), False, stats, checks)
    assert_margins(checks)
    # The first ReLU must be on for some inputs and off for others.
    z0 = conv_same(normalize(x.double()), p64["layers.0.kernel"], p64["layers.0.bias"], 1)
    assert (z0 > 0).any() and (z0 < 0).any()


def max_diff(a, b):
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def build(seed):
    x, y, params = make_inputs(seed)
    check_inputs(x, y, params)
    adam_loss, adam_p = keras_adam(params, x, y)
    return x, y, params, adam_loss, adam_p


def main():
    torch.set_num_threads(1)
    args = sys.argv[1:]
    if args and args[0] == "--rgb":
        use_rgb()
        args = args[1:]
    out = args[0] if args else DEFAULT_OUT
    seed = FIRST_SEED
    while True:
        try:
            x, y, params, adam_loss, adam_p = build(seed)
            break
        except AssertionError as e:
            print("seed %d rejected: %s" % (seed, e))
            seed += 1
            assert seed < FIRST_SEED + 200, "no seed passes the margin checks"

    x64 = x.double().requires_grad_(True)
    p64 = {k: v.double().requires_grad_(not frozen(k)) for k, v in params.items()}
    _, stats64 = split(p64)
    logits64, after64, _ = forward(p64, x64, True, stats64)
    loss64 = loss_fn(logits64, y)
    names = trainable_names()
    grads = torch.autograd.grad(loss64, [p64[k] for k in names] + [x64])
    grad64 = dict(zip(names + ["x"], grads))
    for k, g in grad64.items():
        assert g.abs().max().item() > 0, "gradient of %s is all zero" % k
    with torch.no_grad():
        eval64, _, _ = forward({k: v.detach() for k, v in p64.items()}, x.double(), False, stats64)

    # float32 torch against the float64 reference, to size the C test's tolerance.
    p32, s32 = split(params)
    p32 = {k: v.clone().requires_grad_(True) for k, v in p32.items()}
    logits32, after32, _ = forward(p32, x, True, s32)
    loss32 = loss_fn(logits32, y)
    g32 = dict(zip(names, torch.autograd.grad(loss32, [p32[k] for k in names])))
    print("float32 vs float64: logits %.3g, loss %.3g, gradients %.3g, moving stats %.3g" % (
        (logits32.double() - logits64).abs().max().item(), abs(loss32.item() - loss64.item()),
        max_diff(g32, grad64), max_diff(after32, after64)))
    _, adam64 = keras_adam({k: v.double() for k, v in params.items()}, x.double(), y)
    print("float32 vs float64 after %d Adam steps: %.3g" % (STEPS, max_diff(adam_p, adam64)))
    assert adam_loss[-1] < adam_loss[0]

    tensors = [("x", x), ("y", y)]
    tensors += [(k, params[k]) for k in tensor_names()]
    tensors += [("logits", logits64.detach()), ("loss", loss64.detach().reshape(1))]
    tensors += [("grad." + k, grad64[k]) for k in names]
    tensors += [("grad.x", grad64["x"])]
    tensors += [("after." + k, after64[k]) for k in tensor_names() if frozen(k)]
    tensors += [("eval.logits", eval64)]
    tensors += [("adam.loss", torch.tensor(adam_loss))]
    tensors += [("adam." + k, adam_p[k]) for k in tensor_names()]
    metadata = {
        "spec": SPEC,
        "input_shape": json.dumps(list(INPUT_SHAPE)),
        "loss": "mean sparse categorical cross-entropy of softmax(logits)",
        "batchnorm": json.dumps({"momentum": BN_MOMENTUM, "epsilon": BN_EPS}),
        "adam": json.dumps(ADAM),
        "seed": str(seed),
        "torch_version": torch.__version__,
        "command": COMMAND,
    }
    if NORM is not None:
        metadata["normalization"] = json.dumps({k: [float(v) for v in t] for k, t in NORM.items()})
    write_safetensors(out, tensors, metadata)
    back, meta = read_safetensors(out)
    assert meta == metadata and list(back) == [n for n, _ in tensors]
    for name, t in tensors:
        assert torch.equal(back[name], t.detach().to(torch.float32)), name
    print("wrote %s (%d bytes, %d tensors), seed %d, loss %.6f" % (
        out, os.path.getsize(out), len(tensors), seed, loss64.item()))
    for name, t in tensors:
        print("  %-32s %s" % (name, tuple(t.shape)))


if __name__ == "__main__":
    main()
