#!/usr/bin/python3
"""Checks bench/torch_fast.py, the PyTorch twin of the `fast` recipe, piece by piece: against
fnn itself where libfnn.so exposes the piece (the model's tensors and their initial values, the
one-cycle schedule), against fnn's definitions where it does not (the augmentation's shift and
flip, the weight average, Adam's epsilon). Exits 1 naming the first piece that differs.
usage: torch_fast_check.py LIBFNN_SO (bench/fast.sh runs it before its runs)
"""

import ctypes
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
LIB_PATH = sys.argv[1] if len(sys.argv) == 2 else sys.exit(__doc__.splitlines()[-1])
# torch_fast parses its options on import: the defaults, but glibc's allocator as it is (this
# times nothing, and under ASan mallopt refuses the tuning).
sys.argv = [sys.argv[0], "--malloc", "default"]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import torch_fast  # noqa: E402
import torch_train  # noqa: E402

# The library's preset: its layers are what the twin must build.
FAST_SPEC = b"fast"


class Error(ctypes.Structure):
    _fields_ = [("status", ctypes.c_int), ("msg", ctypes.c_char * 512)]


class Tensor(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * 48), ("rank", ctypes.c_int), ("shape", ctypes.c_int * 4),
                ("size", ctypes.c_size_t), ("data", ctypes.POINTER(ctypes.c_float)),
                ("frozen", ctypes.c_int)]


class Schedule(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_int), ("step_epochs", ctypes.c_int), ("gamma", ctypes.c_float),
                ("patience", ctypes.c_int), ("factor", ctypes.c_float),
                ("min_lr", ctypes.c_float), ("peak_at", ctypes.c_float),
                ("warmup_epochs", ctypes.c_int)]


FNN_LR_ONECYCLE = 4


def fail(what):
    print(f"torch_fast_check: {what}", file=sys.stderr)
    sys.exit(1)


def load_lib():
    lib = ctypes.CDLL(LIB_PATH)
    lib.fnn_model_create.restype = ctypes.c_void_p
    lib.fnn_model_create.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                     ctypes.POINTER(Error)]
    lib.fnn_model_init.argtypes = [ctypes.c_void_p, ctypes.c_uint64]
    lib.fnn_model_free.argtypes = [ctypes.c_void_p]
    lib.fnn_model_num_tensors.argtypes = [ctypes.c_void_p]
    lib.fnn_model_tensor.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(Tensor)]
    lib.fnn_lr_at.restype = ctypes.c_float
    lib.fnn_lr_at.argtypes = [ctypes.POINTER(Schedule), ctypes.c_float, ctypes.c_int,
                              ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_float]
    return lib


def check_model(lib):
    """Tensor by tensor in order, fnn's preset `fast` and the twin's model: the same sizes, batch
    norm's moving statistics as buffers, the same initial biases and batch norm values, and
    kernels from the same distribution (He-uniform convolutions, Glorot-uniform dense)."""
    err = Error()
    m = lib.fnn_model_create(FAST_SPEC, 1, 28, 28, ctypes.byref(err))
    if not m:
        fail(f"fnn_model_create: {err.msg.decode()}")
    lib.fnn_model_init(m, 42)
    torch.manual_seed(42)
    twin = torch_fast.build_model()
    ours = [(name, t, name.endswith(("running_mean", "running_var")))
            for name, t in twin.state_dict().items() if not name.endswith("num_batches_tracked")]
    n = lib.fnn_model_num_tensors(m)
    if n != len(ours):
        fail(f"model: fnn has {n} tensors, the twin {len(ours)}")
    for i, (name, t, buffer) in enumerate(ours):
        ft = Tensor()
        lib.fnn_model_tensor(m, i, ctypes.byref(ft))
        fname = ft.name.decode()
        theirs = np.ctypeslib.as_array(ft.data, shape=(ft.size,)).astype(np.float64)
        mine = t.detach().numpy().ravel().astype(np.float64)
        if ft.size != mine.size or ft.rank != t.dim() or bool(ft.frozen) != buffer:
            fail(f"model: fnn's {fname} ({ft.size} values, rank {ft.rank}, frozen {ft.frozen}) "
                 f"against the twin's {name} ({mine.size}, rank {t.dim()}, buffer {buffer})")
        if ft.rank >= 2:
            ratio = mine.std() / theirs.std()
            if not 0.85 < ratio < 1.18 or np.abs(mine).max() > np.abs(theirs).max() * 1.05:
                fail(f"model: {name} is initialised with standard deviation {mine.std():.4g} "
                     f"and largest magnitude {np.abs(mine).max():.4g}, fnn's {fname} with "
                     f"{theirs.std():.4g} and {np.abs(theirs).max():.4g}")
        elif not np.array_equal(mine, theirs):
            fail(f"model: {name} starts at {mine[:4]}..., fnn's {fname} at {theirs[:4]}...")
    lib.fnn_model_free(m)
    if not isinstance(twin[1], nn.BatchNorm2d) or twin[1].momentum != 0.01 or twin[1].eps != 1e-3:
        fail("model: batch norm is not Keras's momentum 0.99 (PyTorch's 0.01), epsilon 1e-3")


def check_schedule(lib):
    """The one-cycle rate of every step (and one past the end) is fnn_lr_at's, to the float."""
    base = float(np.float32(0.002))
    for peak_at in (0.25, 0.3, 0.5, 0.9):
        s = Schedule(kind=FNN_LR_ONECYCLE, peak_at=peak_at)
        p = float(np.float32(peak_at))
        for epochs, steps in ((1, 1), (1, 2), (1, 3), (2, 5), (3, 7), (1, 25), (12, 750)):
            total = epochs * steps
            for t in range(total + 1):
                want = lib.fnn_lr_at(ctypes.byref(s), base, epochs, steps, t // steps, t, 1.0)
                got = np.float32(torch_train.onecycle_lr(base, total, p, t))
                if got != want:
                    fail(f"one-cycle schedule, peak at {peak_at}, {total} steps: step {t} has "
                         f"rate {got}, fnn {want}")


def reference_shift_flip(x, dx, dy, mirrored):
    """fnn_img_shift then fnn_img_hflip (src/data/transform.c), pixel by pixel."""
    n, c, h, w = x.shape
    out = np.zeros_like(x)
    for i in range(n):
        for y in range(h):
            for col in range(w):
                sy, sx = y - dy[i], col - dx[i]
                if 0 <= sy < h and 0 <= sx < w:
                    out[i, :, y, col] = x[i, :, sy, sx]
        if mirrored[i]:
            out[i] = out[i, :, :, ::-1]
    return out


def check_augment():
    """The shift and flip of given draws are fnn's, pixel for pixel; the draws are uniform on
    {-1, 0, 1} for each shift and 1/2 for the mirror."""
    torch.manual_seed(1)
    x = torch.rand(40, 2, 5, 7)
    dx, dy = torch.randint(-2, 3, (40,)), torch.randint(-2, 3, (40,))
    mirrored = torch.rand(40) < 0.5
    got = torch_train.shift_flip(x, 2, dx, dy, mirrored).numpy()
    want = reference_shift_flip(x.numpy(), dx.numpy(), dy.numpy(), mirrored.numpy())
    if not np.array_equal(got, want):
        bad = np.argwhere(got != want)[0]
        fail(f"augmentation: image {bad[0]} (dx {int(dx[bad[0]])}, dy {int(dy[bad[0]])}, "
             f"mirrored {bool(mirrored[bad[0]])}) differs from fnn's shift and flip at "
             f"channel {bad[1]}, row {bad[2]}, column {bad[3]}")
    # One lit pixel at (2, 1) of 5 x 8: where it lands names the draw. Unmirrored it ends in
    # columns 0-2, mirrored in 5-7, rows 1-3 either way: 18 outcomes, each 1/18.
    n = 18000
    x = torch.zeros(n, 1, 5, 8)
    x[:, 0, 2, 1] = 1.0
    torch.manual_seed(2)
    out = torch_train.augment(x, 1, True)
    lit = out.view(n, -1).argmax(1)
    if not torch.equal(out.view(n, -1).sum(1), torch.ones(n)):
        fail("augmentation: a shift by 1 lost the pixel at column 1")
    counts = torch.bincount(lit, minlength=40).view(5, 8)
    expected = torch.zeros(5, 8)
    expected[1:4, 0:3] = expected[1:4, 5:8] = n / 18
    if (counts - expected).abs().max() > 0.2 * n / 18:
        fail(f"augmentation: outcomes (row, column) of the draws {counts.tolist()}, expected "
             f"{n // 18} in rows 1-3 of columns 0-2 and 5-7")


def check_average():
    """WeightAverage holds fnn_ema_update's average of the weights and batch norm's moving
    statistics, the warm-up and the cap on the decay included."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    avg = torch_train.WeightAverage(model, 0.999, 5)
    tensors = dict(model.named_parameters()) | {
        k: b for k, b in model.named_buffers() if b.is_floating_point()}
    want = {k: t.detach().double().clone() for k, t in tensors.items()}
    for t in list(range(1, 24)) + [10000, 10001, 10005]:
        with torch.no_grad():
            for w in tensors.values():
                w.add_(torch.randn_like(w))
        avg.update(t)
        if t % 5 == 0:
            keep = min(0.999, (1.0 + t) / (10.0 + t)) ** 5
            for k, w in tensors.items():
                want[k] = keep * want[k] + (1.0 - keep) * w.detach().double()
    got = dict(avg.model.named_parameters()) | dict(avg.model.named_buffers())
    for k, w in want.items():
        if not torch.allclose(got[k].double(), w, rtol=1e-5, atol=1e-5):
            fail(f"weight average: {k} is {got[k].tolist()}, fnn's average {w.tolist()}")


def check_adam():
    """torch.optim.Adam with keras_adam_eps takes fnn's steps (src/optim/optim.c) while the
    second moment is tiny, where the two epsilons differ most."""
    torch.manual_seed(4)
    p = nn.Parameter(torch.randn(50))
    opt = torch.optim.Adam([p], lr=0.002, betas=(0.9, 0.999), eps=1e-7)
    want = p.detach().double().clone()
    m = torch.zeros(50, dtype=torch.float64)
    v = torch.zeros(50, dtype=torch.float64)
    for t in range(1, 7):
        g = torch.randn(50) * 1e-7
        opt.param_groups[0]["eps"] = torch_train.keras_adam_eps(1e-7, 0.999, t)
        p.grad = g.clone()
        opt.step()
        gd = g.double()
        m = 0.9 * m + 0.1 * gd
        v = 0.999 * v + 0.001 * gd * gd
        alpha = 0.002 * math.sqrt(1.0 - 0.999 ** t) / (1.0 - 0.9 ** t)
        want = want - alpha * m / (v.sqrt() + 1e-7)
        if not torch.allclose(p.detach().double(), want, rtol=1e-6, atol=1e-9):
            fail(f"Adam: step {t} gives {p[:3].tolist()}..., fnn's Adam {want[:3].tolist()}...")


def main():
    lib = load_lib()
    check_model(lib)
    check_schedule(lib)
    check_augment()
    check_average()
    check_adam()
    print("torch_fast_check: model, schedule, augmentation, weight average and Adam agree")


if __name__ == "__main__":
    main()
