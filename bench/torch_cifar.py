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

import json
import os
import sys
import time

from fashion_bench import common_parser, set_threads, tune_malloc

SIDE = 32
RECORD = 1 + 3 * SIDE * SIDE


def parse_args():
    p = common_parser(__doc__.splitlines()[0], epochs=1)
    p.set_defaults(data=None)
    p.add_argument("--eval-batch-size", type=int, default=256,
                   help="batch size of validation and of the timed test inference [256, as fnn]")
    p.add_argument("--limit", type=int, default=0,
                   help="use only the first N training images, as cifar_bench's LIMIT [all]")
    p.add_argument("--test-limit", type=int, default=0,
                   help="evaluate on the first N test images, as cifar_bench's TEST_LIMIT [all]")
    a = p.parse_args()
    if a.data is None:
        p.error("--data DIR (the folder of data_batch_1.bin ... test_batch.bin) is required")
    if (a.epochs < 1 or a.batch_size < 1 or a.eval_batch_size < 1 or a.threads < 1
            or a.limit < 0 or a.test_limit < 0 or not 0.0 <= a.val_split < 1.0):
        p.error("--epochs, --batch-size, --eval-batch-size and --threads must be >= 1, "
                "--limit and --test-limit >= 0, --val-split in [0, 1)")
    return a


ARGS = parse_args()
if ARGS.malloc == "tuned":
    tune_malloc()
set_threads(ARGS.threads, ARGS.blas_threads)

import torch  # noqa: E402
from torch import nn  # noqa: E402


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
    for m in model:
        # Keras defaults: Glorot-uniform kernels (for a conv, fan_in = in * kh * kw and
        # fan_out = out * kh * kw, which is what xavier_uniform_ computes), zero biases.
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return model


@torch.inference_mode()
def evaluate(model, loss_fn, x, y, bs):
    """(mean loss, accuracy) over the set in batches of bs."""
    model.eval()
    loss_sum = 0.0
    correct = 0
    for i in range(0, x.shape[0], bs):
        xb, yb = x[i:i + bs], y[i:i + bs]
        logits = model(xb)
        loss_sum += loss_fn(logits, yb).item() * yb.numel()
        correct += (logits.argmax(1) == yb).sum().item()
    n = y.numel()
    return loss_sum / n, correct / n


def main():
    torch.set_num_threads(ARGS.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(ARGS.seed)

    t0 = time.perf_counter()
    train_files = [os.path.join(ARGS.data, f"data_batch_{i}.bin") for i in range(1, 6)]
    x_all, y_all = read_batches(train_files, ARGS.limit)
    x_test, y_test = read_batches([os.path.join(ARGS.data, "test_batch.bin")], ARGS.test_limit)
    n_val = int(x_all.shape[0] * ARGS.val_split)
    n_train = x_all.shape[0] - n_val
    if n_train < 1:
        raise ValueError(f"no training images left ({x_all.shape[0]} loaded, {n_val} validation)")
    x_train, y_train = x_all[:n_train], y_all[:n_train]
    x_val, y_val = x_all[n_train:], y_all[n_train:]
    load_s = time.perf_counter() - t0

    model = build_model()
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=ARGS.lr, betas=(0.9, 0.999), eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    bs, ebs = ARGS.batch_size, ARGS.eval_batch_size

    history = []
    train_s = val_s = 0.0
    for epoch in range(1, ARGS.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n_train)
        loss_sum = torch.zeros(())  # running sums stay tensors: no .item() sync per step
        correct = torch.zeros((), dtype=torch.int64)
        for i in range(0, n_train, bs):
            idx = perm[i:i + bs]
            xb, yb = x_train[idx], y_train[idx]
            logits = model(xb)
            loss = loss_fn(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                loss_sum += loss.detach() * idx.numel()
                correct += (logits.argmax(1) == yb).sum()
        ep_train = time.perf_counter() - t0

        t0 = time.perf_counter()
        val_loss, val_acc = evaluate(model, loss_fn, x_val, y_val, ebs) if n_val else (None, None)
        ep_val = time.perf_counter() - t0

        train_s += ep_train
        val_s += ep_val
        row = {"epoch": epoch, "train_loss": loss_sum.item() / n_train,
               "train_accuracy": correct.item() / n_train,
               "val_loss": val_loss, "val_accuracy": val_acc, "seconds": ep_train}
        history.append(row)
        if not ARGS.json:
            val = f"val loss {val_loss:.4f} acc {val_acc:.4f}" if n_val else "no validation"
            print(f"epoch {epoch}/{ARGS.epochs}: loss {row['train_loss']:.4f} "
                  f"acc {row['train_accuracy']:.4f}, {val}, {ep_train:.2f} s", flush=True)

    t0 = time.perf_counter()
    test_loss, test_acc = evaluate(model, loss_fn, x_test, y_test, ebs)
    infer_s = time.perf_counter() - t0
    n_test = y_test.numel()

    result = {
        "framework": "pytorch",
        "benchmark": "cifar",
        "torch_version": torch.__version__,
        "threads": ARGS.threads,
        "blas_threads": ARGS.blas_threads or ARGS.threads,
        "malloc": ARGS.malloc,
        "epochs": ARGS.epochs,
        "batch_size": bs,
        "eval_batch_size": ebs,
        "params": n_params,
        "train_images": n_train,
        "validation_images": n_val,
        "test_images": n_test,
        "train_seconds": train_s,
        "train_seconds_per_epoch": train_s / ARGS.epochs,
        "val_seconds": val_s,
        "infer_seconds": infer_s,
        "infer_images_per_second": n_test / infer_s,
        "load_seconds": load_s,
        "test_loss": test_loss,
        "test_accuracy": test_acc,
        "history": history,
    }
    if ARGS.json:
        print(json.dumps(result))
    else:
        print(f"torch {torch.__version__}, {ARGS.threads} thread(s), {ARGS.malloc} malloc, "
              f"{n_params} parameters: train {train_s / ARGS.epochs:.2f} s per epoch, "
              f"validation {val_s:.2f} s, inference {n_test / infer_s:.0f} images/s "
              f"({n_test} in {infer_s:.2f} s), load {load_s:.2f} s; "
              f"test loss {test_loss:.4f}, accuracy {test_acc:.4f}")


if __name__ == "__main__":
    try:
        main()
    except (OSError, ValueError) as e:
        print(f"torch_cifar.py: {e}", file=sys.stderr)
        sys.exit(1)
