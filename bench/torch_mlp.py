#!/usr/bin/python3
"""PyTorch twin of `fnn train` with the study's MLP, for bench/mlp.sh.

Same model, initialisation, optimiser, split and batching as fnn's defaults; timed the way
fnn times itself (training per epoch without validation, validation separately, test once).
Run with Debian's /usr/bin/python3 (the interpreter that has torch).
"""

import json
import sys
import time

from fashion_bench import common_parser, load, set_threads, tune_malloc


def parse_args():
    p = common_parser(__doc__.splitlines()[0], epochs=10)
    a = p.parse_args()
    if a.epochs < 1 or a.batch_size < 1 or a.threads < 1 or not 0.0 <= a.val_split < 1.0:
        p.error("--epochs, --batch-size and --threads must be >= 1, --val-split in [0, 1)")
    return a


ARGS = parse_args()
if ARGS.malloc == "tuned":
    tune_malloc()
set_threads(ARGS.threads, ARGS.blas_threads)

import torch  # noqa: E402
from torch import nn  # noqa: E402


def build_model():
    """The study's MLP; the softmax is fused into CrossEntropyLoss, so the model ends in logits."""
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 128), nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(128, 64), nn.ReLU(),
        nn.Linear(64, 10),
    )
    for m in model:
        if isinstance(m, nn.Linear):  # Keras defaults: Glorot-uniform kernels, zero biases
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return model


@torch.inference_mode()
def evaluate(model, loss_fn, x, y):
    """(mean loss, accuracy) over the whole set in one batch; it fits in a few MB."""
    model.eval()
    logits = model(x)
    loss = loss_fn(logits, y).item()
    acc = (logits.argmax(1) == y).sum().item() / y.numel()
    return loss, acc


def main():
    torch.set_num_threads(ARGS.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(ARGS.seed)

    t0 = time.perf_counter()
    x_all, y_all = load(ARGS.data, "train")
    x_test, y_test = load(ARGS.data, "t10k")
    n_val = int(x_all.shape[0] * ARGS.val_split)
    n_train = x_all.shape[0] - n_val
    x_train, y_train = x_all[:n_train], y_all[:n_train]
    x_val, y_val = x_all[n_train:], y_all[n_train:]
    load_s = time.perf_counter() - t0

    model = build_model()
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=ARGS.lr, betas=(0.9, 0.999), eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    bs = ARGS.batch_size

    history = []
    train_s = val_s = 0.0
    for epoch in range(1, ARGS.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n_train)
        # Running sums stay tensors so the loop never waits on .item().
        loss_sum = torch.zeros(())
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
        val_loss, val_acc = evaluate(model, loss_fn, x_val, y_val) if n_val else (None, None)
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
    test_loss, test_acc = evaluate(model, loss_fn, x_test, y_test)
    test_s = time.perf_counter() - t0

    result = {
        "framework": "pytorch",
        "torch_version": torch.__version__,
        "threads": ARGS.threads,
        "blas_threads": ARGS.blas_threads or ARGS.threads,
        "malloc": ARGS.malloc,
        "epochs": ARGS.epochs,
        "batch_size": bs,
        "params": n_params,
        "train_images": n_train,
        "validation_images": n_val,
        "train_seconds": train_s,
        "val_seconds": val_s,
        "test_seconds": test_s,
        "load_seconds": load_s,
        "test_loss": test_loss,
        "test_accuracy": test_acc,
        "history": history,
    }
    if ARGS.json:
        print(json.dumps(result))
    else:
        print(f"torch {torch.__version__}, {ARGS.threads} thread(s), {ARGS.malloc} malloc, "
              f"{n_params} parameters: "
              f"train {train_s:.2f} s, validation {val_s:.2f} s, test {test_s:.2f} s, "
              f"load {load_s:.2f} s; test loss {test_loss:.4f}, accuracy {test_acc:.4f}")


if __name__ == "__main__":
    try:
        main()
    except (OSError, ValueError) as e:
        print(f"torch_mlp.py: {e}", file=sys.stderr)
        sys.exit(1)
