"""The training and timing loop shared by the PyTorch twins of fnn's benchmarks (torch_cnn.py,
torch_cifar.py, torch_fast.py): Adam (lr from the arguments, eps 1e-7 as Keras), reshuffled
every epoch, the last part of the training images held out for validation, training timed per
epoch without validation, then inference on the test set in batches of --eval-batch-size, as
fnn times itself. A Recipe adds what fnn's training options add (label smoothing, the one-cycle
schedule, augmentation, weight averaging, flip test-time augmentation), each with fnn's
semantics. Import it after fashion_bench.set_threads: importing torch starts its thread pools.
"""

import copy
import dataclasses
import json
import math
import time

import torch
from torch import nn
from torch.nn import functional as F


def keras_init(model, he_convs=False):
    """Keras's defaults, which fnn follows: Glorot-uniform kernels (for a conv, fan_in = in * kh *
    kw and fan_out = out * kh * kw, which is what xavier_uniform_ computes), zero biases.
    he_convs: convolution kernels He-uniform instead, as fnn's `he` (src/nn/conv2d.c: limit
    sqrt(6 / fan_in), which is kaiming_uniform_ for a ReLU's gain)."""
    for m in model:
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            if he_convs and isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


@dataclasses.dataclass
class Recipe:
    """What `fnn train`'s recipe options add to plain Adam on cross-entropy at a constant rate,
    each as fnn does it; the defaults add nothing (the twins of cnn.sh and cifar.sh)."""
    label_smoothing: float = 0.0  # --label-smoothing: targets (1 - s) onehot + s / k
    onecycle_peak_at: float = 0.0  # --lr-schedule onecycle --lr-peak-at; 0: a constant rate
    shift: int = 0                # --aug-shift: pixels in x and y
    flip: bool = False            # --aug-flip: left to right, probability 1/2
    ema: float = 0.0              # --ema: the average's decay; 0: no averaging
    ema_every: int = 1            # --ema-every: optimizer steps between updates
    tta_flip: bool = False        # --tta flip: validation and test average with the mirror
    keras_adam: bool = False      # epsilon added to the uncorrected root, as fnn's Adam


def onecycle_lr(base_lr, total, peak_at, t):
    """fnn_lr_at's one-cycle rate at step t (from 0) of total (src/optim/schedule.c): up
    linearly from base_lr / P at the first step to base_lr at step P - 1, P = round(peak_at *
    total) (halves away from zero, as llround) kept in [1, total - 1], then down linearly to
    base_lr / (total - P) at the last step."""
    peak = min(max(math.floor(peak_at * total + 0.5), 1), total - 1)
    if peak < 1 or t >= total:
        return base_lr / (total - peak if total > peak else 1)
    if t < peak:
        return base_lr * (t + 1) / peak
    return base_lr * (total - t) / (total - peak)


def augment(x, shift, flip):
    """fnn_augment_batch's shift and flip (src/data/augment.c) of x (N, C, H, W): per image dx
    and dy each uniform in [-shift, shift], and a left-right mirror with probability 1/2."""
    n = x.shape[0]
    dx = torch.randint(-shift, shift + 1, (n,))
    dy = torch.randint(-shift, shift + 1, (n,))
    mirrored = torch.rand(n) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
    return shift_flip(x, shift, dx, dy, mirrored)


def shift_flip(x, shift, dx, dy, mirrored):
    """x (N, C, H, W) shifted as fnn_img_shift, image i by dx[i] and dy[i] (|d| <= shift):
    out(y, x) = in(y - dy, x - dx), 0 where that falls outside; then mirrored left to right
    where mirrored[i], as fnn_img_hflip; every channel of an image alike, fnn's order. One
    gather from the zero-padded batch does both."""
    n, c, h, w = x.shape
    s = shift
    cols = torch.arange(w).view(1, 1, w)
    cols = torch.where(mirrored.view(n, 1, 1), w - 1 - cols, cols)  # (N, 1, W)
    rows = torch.arange(h).view(1, h, 1)
    # In the padded (H + 2s, W + 2s) plane, in(y - dy, x - dx) sits at (y - dy + s, x - dx + s).
    index = (rows - dy.view(n, 1, 1) + s) * (w + 2 * s) + (cols - dx.view(n, 1, 1) + s)  # (N, H, W)
    padded = F.pad(x, (s, s, s, s)).reshape(n, c, -1)  # (N, C, (H + 2s) (W + 2s))
    index = index.reshape(n, 1, h * w).expand(n, c, h * w)
    return torch.gather(padded, 2, index).view(n, c, h, w)


def keras_adam_eps(eps, beta2, t):
    """The epsilon that makes PyTorch's Adam step t (from 1) Keras's, and fnn's
    (src/optim/optim.c): PyTorch adds its epsilon to the bias-corrected root sqrt(v / (1 -
    beta2^t)); Keras adds eps to the raw sqrt(v) and multiplies the step by sqrt(1 - beta2^t)
    instead. The two agree when PyTorch's epsilon is eps / sqrt(1 - beta2^t)."""
    return eps / math.sqrt(1.0 - beta2 ** t)


class WeightAverage:
    """fnn's weight averaging (src/optim/ema.c): a copy of the model whose parameters and batch
    norm's moving statistics hold their exponential moving average, started at the initial
    weights and updated after every `every`-th optimizer step t (from 1) as avg += (1 - d^every)
    (w - avg), d = min(decay, (1 + t) / (10 + t)). Validation and the test use the copy."""

    def __init__(self, model, decay, every):
        self.model = copy.deepcopy(model)
        self.decay, self.every = decay, every
        self.avg = self._tensors(self.model)
        self.cur = self._tensors(model)

    @staticmethod
    def _tensors(model):
        # num_batches_tracked (an integer count, unused with a fixed momentum) is no weight.
        return list(model.parameters()) + [b for b in model.buffers() if b.is_floating_point()]

    @torch.no_grad()
    def update(self, t):
        if t % self.every:
            return
        d = min(self.decay, (1.0 + t) / (10.0 + t))
        take = 1.0 - d ** self.every
        for a, w in zip(self.avg, self.cur):
            a.lerp_(w, take)


@torch.inference_mode()
def evaluate(model, loss_fn, x, y, bs, tta_flip=False):
    """(mean loss, accuracy) over the set in batches of bs (one batch would take GBs here).
    tta_flip: as fnn's --tta flip (src/eval/tta.c), the class probabilities are the mean of the
    image's and its mirror's, and the loss is fnn's on them: -log max(p_label, 1e-7)."""
    model.eval()
    loss_sum = 0.0
    correct = 0
    for i in range(0, x.shape[0], bs):
        xb, yb = x[i:i + bs], y[i:i + bs]
        if tta_flip:
            probs = 0.5 * (F.softmax(model(xb), 1) + F.softmax(model(xb.flip(3)), 1))
            p_label = probs.gather(1, yb.view(-1, 1)).clamp_min(1e-7)
            loss_sum -= p_label.log().sum().item()
            correct += (probs.argmax(1) == yb).sum().item()
        else:
            logits = model(xb)
            loss_sum += loss_fn(logits, yb).item() * yb.numel()
            correct += (logits.argmax(1) == yb).sum().item()
    n = y.numel()
    return loss_sum / n, correct / n


def run(args, benchmark, load, build_model, recipe=None):
    """Loads the data (load() returns training and test images and labels as tensors), trains
    build_model()'s network for args.epochs epochs on all but the last args.val_split of the
    training images (fnn's split: the first floor(n (1 - split)) train), with the recipe's
    additions, times it as fnn times itself, and prints the result (one JSON line with
    args.json) under the name `benchmark`."""
    recipe = recipe or Recipe()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(args.seed)

    t0 = time.perf_counter()
    x_all, y_all, x_test, y_test = load()
    n_train = math.floor(x_all.shape[0] * (1.0 - args.val_split))
    n_val = x_all.shape[0] - n_train
    if n_train < 1:
        raise ValueError(f"no training images left ({x_all.shape[0]} loaded, {n_val} validation)")
    if args.val_split > 0 and n_val < 1:
        raise ValueError(f"validation fraction {args.val_split} of {x_all.shape[0]} images "
                         "leaves no validation images")
    x_train, y_train = x_all[:n_train], y_all[:n_train]
    x_val, y_val = x_all[n_train:], y_all[n_train:]
    load_s = time.perf_counter() - t0

    model = build_model()
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-7)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    eval_loss_fn = nn.CrossEntropyLoss()  # fnn's validation and test losses are unsmoothed
    average = WeightAverage(model, recipe.ema, recipe.ema_every) if recipe.ema else None
    evaluated = average.model if average else model
    bs, ebs = args.batch_size, args.eval_batch_size
    steps = -(-n_train // bs)
    group = opt.param_groups[0]

    history = []
    train_s = val_s = 0.0
    t = 0  # optimizer steps taken
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n_train)
        loss_sum = torch.zeros(())  # running sums stay tensors: no .item() sync per step
        correct = torch.zeros((), dtype=torch.int64)
        for i in range(0, n_train, bs):
            idx = perm[i:i + bs]
            xb, yb = x_train[idx], y_train[idx]
            if recipe.shift or recipe.flip:
                xb = augment(xb, recipe.shift, recipe.flip)
            if recipe.onecycle_peak_at:
                group["lr"] = onecycle_lr(args.lr, args.epochs * steps, recipe.onecycle_peak_at, t)
            if recipe.keras_adam:
                group["eps"] = keras_adam_eps(1e-7, 0.999, t + 1)
            logits = model(xb)
            loss = loss_fn(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            t += 1
            if average:
                average.update(t)
            with torch.no_grad():
                loss_sum += loss.detach() * idx.numel()
                correct += (logits.argmax(1) == yb).sum()
        ep_train = time.perf_counter() - t0

        t0 = time.perf_counter()
        val_loss, val_acc = (evaluate(evaluated, eval_loss_fn, x_val, y_val, ebs, recipe.tta_flip)
                             if n_val else (None, None))
        ep_val = time.perf_counter() - t0

        train_s += ep_train
        val_s += ep_val
        row = {"epoch": epoch, "train_loss": loss_sum.item() / n_train,
               "train_accuracy": correct.item() / n_train,
               "val_loss": val_loss, "val_accuracy": val_acc, "seconds": ep_train}
        history.append(row)
        if not args.json:
            val = f"val loss {val_loss:.4f} acc {val_acc:.4f}" if n_val else "no validation"
            print(f"epoch {epoch}/{args.epochs}: loss {row['train_loss']:.4f} "
                  f"acc {row['train_accuracy']:.4f}, {val}, {ep_train:.2f} s", flush=True)

    # Inference throughput: the whole test set, batches of 256, loss and accuracy included,
    # as fnn's seconds.test times its evaluation.
    t0 = time.perf_counter()
    test_loss, test_acc = evaluate(evaluated, eval_loss_fn, x_test, y_test, ebs, recipe.tta_flip)
    infer_s = time.perf_counter() - t0
    n_test = y_test.numel()

    result = {
        "framework": "pytorch",
        "benchmark": benchmark,
        "torch_version": torch.__version__,
        "threads": args.threads,
        "blas_threads": args.blas_threads or args.threads,
        "malloc": args.malloc,
        "seed": args.seed,
        "epochs": args.epochs,
        "lr": args.lr,
        "batch_size": bs,
        "eval_batch_size": ebs,
        "params": n_params,
        "train_images": n_train,
        "validation_images": n_val,
        "test_images": n_test,
        "train_seconds": train_s,
        "train_seconds_per_epoch": train_s / args.epochs,
        "val_seconds": val_s,
        "infer_seconds": infer_s,
        "infer_images_per_second": n_test / infer_s,
        "load_seconds": load_s,
        "test_loss": test_loss,
        "test_accuracy": test_acc,
        "val_accuracy": history[-1]["val_accuracy"],
        "recipe": dataclasses.asdict(recipe),
        "history": history,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"torch {torch.__version__}, {args.threads} thread(s), {args.malloc} malloc, "
              f"{n_params} parameters: train {train_s / args.epochs:.2f} s per epoch, "
              f"validation {val_s:.2f} s, inference {n_test / infer_s:.0f} images/s "
              f"({n_test} in {infer_s:.2f} s), load {load_s:.2f} s; "
              f"test loss {test_loss:.4f}, accuracy {test_acc:.4f}")

