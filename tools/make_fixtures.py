# Writes tests/fixtures/mlp_parity.safetensors: a PyTorch twin of a small fnn MLP (forward, loss,
# gradients, and three Keras-style Adam and SGD-momentum steps) that the C parity test compares with.
# Run with Debian's torch: /usr/bin/python3 tools/make_fixtures.py [OUTPUT]
import json
import math
import os
import struct
import sys

import torch

SPEC = "flatten dense:16:relu dense:12:relu dense:5:softmax"
INPUT_SHAPE = (1, 6, 6)
SIZES = [36, 16, 12, 5]
LAYERS = [1, 2, 3]  # layer 0 is Flatten
N = 7
SEED = 1234
STEPS = 3
ADAM = {"lr": 0.01, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "steps": STEPS}
SGD = {"lr": 0.05, "momentum": 0.9, "steps": STEPS}
# Pre-activations closer to 0 than this would let float32 rounding decide a ReLU's side.
RELU_MARGIN = 1e-3
COMMAND = "/usr/bin/python3 tools/make_fixtures.py"

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "tests", "fixtures", "mlp_parity.safetensors")


def param_names():
    for i in LAYERS:
        yield "layers.%d.kernel" % i
        yield "layers.%d.bias" % i


def forward(params, x):
    """Logits (N, 5) and the hidden pre-activations, in the dtype of params."""
    h = x.reshape(x.shape[0], -1)
    pre = []
    for k, i in enumerate(LAYERS):
        z = h @ params["layers.%d.kernel" % i] + params["layers.%d.bias" % i]
        if k + 1 < len(LAYERS):
            pre.append(z)
            h = torch.relu(z)
        else:
            h = z
    return h, pre


def loss_fn(logits, y):
    return torch.nn.functional.cross_entropy(logits, y.long(), reduction="mean")


def loss_and_grads(params, x, y):
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    logits, pre = forward(leaves, x)
    loss = loss_fn(logits, y)
    grads = torch.autograd.grad(loss, [leaves[k] for k in param_names()])
    return loss.detach(), dict(zip(param_names(), grads)), [z.detach() for z in pre]


def check_relus(pre, where):
    for k, z in enumerate(pre):
        margin = z.abs().min().item()
        assert margin > RELU_MARGIN, "%s: hidden layer %d has a pre-activation %.3g from the kink" % (
            where, k + 1, margin)


def keras_adam(params, x, y, eps):
    """Keras Adam on one batch; returns the loss before each step and the final parameters."""
    p = {k: v.clone() for k, v in params.items()}
    m = {k: torch.zeros_like(v) for k, v in p.items()}
    v = {k: torch.zeros_like(t) for k, t in p.items()}
    b1, b2, lr = ADAM["beta_1"], ADAM["beta_2"], ADAM["lr"]
    losses = []
    for t in range(1, STEPS + 1):
        loss, g, pre = loss_and_grads(p, x, y)
        check_relus(pre, "adam step %d" % t)
        losses.append(loss.item())
        alpha = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        for k in param_names():
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            v[k] = b2 * v[k] + (1 - b2) * g[k] * g[k]
            p[k] = p[k] - alpha * m[k] / (torch.sqrt(v[k]) + eps)
    return losses, p


def torch_adam(params, x, y):
    p = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    opt = torch.optim.Adam([p[k] for k in param_names()], lr=ADAM["lr"],
                           betas=(ADAM["beta_1"], ADAM["beta_2"]), eps=0.0)
    for _ in range(STEPS):
        opt.zero_grad()
        loss_fn(forward(p, x)[0], y).backward()
        opt.step()
    return {k: t.detach() for k, t in p.items()}


def keras_sgd(params, x, y):
    p = {k: v.clone() for k, v in params.items()}
    vel = {k: torch.zeros_like(v) for k, v in p.items()}
    losses = []
    for t in range(1, STEPS + 1):
        loss, g, pre = loss_and_grads(p, x, y)
        check_relus(pre, "sgd step %d" % t)
        losses.append(loss.item())
        for k in param_names():
            vel[k] = SGD["momentum"] * vel[k] - SGD["lr"] * g[k]
            p[k] = p[k] + vel[k]
    return losses, p


def torch_sgd(params, x, y):
    p = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    opt = torch.optim.SGD([p[k] for k in param_names()], lr=SGD["lr"], momentum=SGD["momentum"])
    for _ in range(STEPS):
        opt.zero_grad()
        loss_fn(forward(p, x)[0], y).backward()
        opt.step()
    return {k: t.detach() for k, t in p.items()}


def max_diff(a, b):
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def make_inputs():
    gen = torch.Generator().manual_seed(SEED)
    x = torch.rand((N,) + INPUT_SHAPE, generator=gen, dtype=torch.float32)
    y = torch.randint(0, SIZES[-1], (N,), generator=gen).to(torch.float32)
    params = {}
    h = x.reshape(N, -1)
    for k, i in enumerate(LAYERS):
        fan_in, fan_out = SIZES[k], SIZES[k + 1]
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        kernel = (torch.rand((fan_in, fan_out), generator=gen) * 2 - 1) * limit
        noise = (torch.rand((fan_out,), generator=gen) * 2 - 1) * 0.1
        # Inputs are all positive, so a Glorot unit tends to be on for every sample or for none.
        # Shifting each hidden unit to be on for about 3/4 of the batch leaves most units on for
        # some samples only, yet rarely makes a weight's gradient exactly zero (which would give
        # 0/0 in the eps=0 Adam cross-check).
        if k + 1 < len(LAYERS):
            z = h @ kernel
            bias = noise - z.mean(0) + 0.7 * z.std(0)
        else:
            bias = noise
        params["layers.%d.kernel" % i] = kernel
        params["layers.%d.bias" % i] = bias
        h = torch.relu(h @ kernel + bias)
    return x, y, params


def check_inputs(x, y, params):
    assert len(set(y.tolist())) >= 3, "labels need at least 3 distinct classes"
    for k, b in params.items():
        assert not k.endswith(".bias") or b.abs().min().item() > 1e-3, "%s has a near-zero entry" % k
    _, pre = forward({k: v.double() for k, v in params.items()}, x.double())
    check_relus(pre, "initial weights")
    for k, z in enumerate(pre):
        active = z > 0
        assert active.any(dim=0).all(), "hidden layer %d has a unit dead for every sample" % (k + 1)
        assert active.any(dim=1).all(), "hidden layer %d has a sample with no active unit" % (k + 1)
        assert not active.all(), "hidden layer %d has no inactive unit" % (k + 1)
        partial = active.any(dim=0) & ~active.all(dim=0)
        assert partial.any(), "hidden layer %d has no unit that is on for some samples only" % (k + 1)


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": metadata}
    blobs = []
    offset = 0
    for name, t in tensors:
        t = t.detach().to(torch.float32).contiguous()
        data = struct.pack("<%df" % t.numel(), *t.reshape(-1).tolist())
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack_from("<Q", raw, 0)
    assert (8 + n) % 8 == 0, "header not padded to 8 bytes"
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__")
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    body = raw[8 + n:]
    tensors = {}
    expect = 0
    for name, info in header.items():
        begin, end = info["data_offsets"]
        assert info["dtype"] == "F32" and begin == expect, name
        count = math.prod(info["shape"])
        assert end - begin == 4 * count, name
        values = struct.unpack_from("<%df" % count, body, begin)
        tensors[name] = torch.tensor(values, dtype=torch.float32).reshape(info["shape"])
        expect = end
    assert expect == len(body), "trailing bytes after the last tensor"
    return tensors, metadata


def verify(path, tensors, metadata):
    back, meta = read_safetensors(path)
    assert meta == metadata
    assert list(back) == [name for name, _ in tensors]
    for name, t in tensors:
        assert torch.equal(back[name], t.to(torch.float32)), name
    params = {k: back[k].double() for k in param_names()}
    logits, _ = forward(params, back["x"].double())
    loss = loss_fn(logits, back["y"])
    assert abs(loss.item() - back["loss"].item()) < 1e-6, (loss.item(), back["loss"].item())
    assert (logits - back["logits"].double()).abs().max().item() < 1e-6
    assert (torch.softmax(logits, 1) - back["probs"].double()).abs().max().item() < 1e-6
    assert abs(back["adam.loss"][0].item() - back["loss"].item()) < 1e-5
    assert abs(back["sgd.loss"][0].item() - back["loss"].item()) < 1e-5


def main():
    torch.set_num_threads(1)
    out = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT
    x, y, params = make_inputs()
    check_inputs(x, y, params)

    x64 = x.double().requires_grad_(True)
    p64 = {k: v.double().requires_grad_(True) for k, v in params.items()}
    logits64, _ = forward(p64, x64)
    loss64 = loss_fn(logits64, y)
    grads64 = torch.autograd.grad(loss64, [p64[k] for k in param_names()] + [x64])
    grad64 = dict(zip(list(param_names()) + ["x"], grads64))
    for k, g in grad64.items():
        assert g.abs().max().item() > 0, "gradient of %s is all zero" % k
    for k in param_names():
        assert (grad64[k] != 0).all(), "gradient of %s has exact zeros (Adam's eps=0 check needs none)" % k

    loss32, grad32, _ = loss_and_grads(params, x, y)
    assert abs(loss32.item() - loss64.item()) < 1e-5
    assert max(((grad32[k].double() - grad64[k]).abs().max().item() for k in param_names())) < 1e-5

    adam_loss, adam_p = keras_adam(params, x, y, ADAM["epsilon"])
    _, adam_noeps = keras_adam(params, x, y, 0.0)
    assert all(torch.isfinite(t).all() for t in adam_noeps.values()), "eps=0 Adam hit a zero gradient"
    assert max_diff(adam_noeps, torch_adam(params, x, y)) < 1e-6, "Keras Adam (eps=0) differs from torch"
    sgd_loss, sgd_p = keras_sgd(params, x, y)
    assert max_diff(sgd_p, torch_sgd(params, x, y)) < 1e-6, "Keras SGD differs from torch"
    assert adam_loss[-1] < adam_loss[0] and sgd_loss[-1] < sgd_loss[0]

    p64_plain = {k: v.double() for k, v in params.items()}
    _, adam64 = keras_adam(p64_plain, x.double(), y, ADAM["epsilon"])
    _, sgd64 = keras_sgd(p64_plain, x.double(), y)
    print("float32 vs float64 after %d steps: adam %.3g, sgd %.3g" % (
        STEPS, max_diff(adam_p, adam64), max_diff(sgd_p, sgd64)))

    tensors = [("x", x), ("y", y)]
    tensors += [(k, params[k]) for k in param_names()]
    tensors += [("logits", logits64.detach()), ("probs", torch.softmax(logits64.detach(), 1)),
                ("loss", loss64.detach().reshape(1))]
    tensors += [("grad." + k, grad64[k]) for k in param_names()]
    tensors += [("grad.x", grad64["x"])]
    tensors += [("adam.loss", torch.tensor(adam_loss))]
    tensors += [("adam." + k, adam_p[k]) for k in param_names()]
    tensors += [("sgd.loss", torch.tensor(sgd_loss))]
    tensors += [("sgd." + k, sgd_p[k]) for k in param_names()]
    metadata = {
        "spec": SPEC,
        "input_shape": json.dumps(list(INPUT_SHAPE)),
        "loss": "mean sparse categorical cross-entropy of softmax(logits)",
        "adam": json.dumps(ADAM),
        "sgd": json.dumps(SGD),
        "seed": str(SEED),
        "torch_version": torch.__version__,
        "command": COMMAND,
    }
    write_safetensors(out, tensors, metadata)
    verify(out, tensors, metadata)
    print("wrote %s (%d bytes, %d tensors), loss %.6f" % (out, os.path.getsize(out), len(tensors),
                                                          loss64.item()))
    for name, t in tensors:
        print("  %-22s %s" % (name, tuple(t.shape)))


if __name__ == "__main__":
    main()
