"""The training and timing loop shared by the PyTorch twins of fnn's benchmarks (torch_cnn.py,
torch_cifar.py): Adam (lr from the arguments, eps 1e-7 as Keras), reshuffled every epoch, the
last part of the training images held out for validation, training timed per epoch without
validation, then inference on the test set in batches of --eval-batch-size, as fnn times
itself. Import it after fashion_bench.set_threads: importing torch starts its thread pools.
"""

import json
import time

import torch
from torch import nn


def keras_init(model):
    """Keras's defaults, which fnn follows: Glorot-uniform kernels (for a conv, fan_in = in * kh *
    kw and fan_out = out * kh * kw, which is what xavier_uniform_ computes), zero biases."""
    for m in model:
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return model


@torch.inference_mode()
def evaluate(model, loss_fn, x, y, bs):
    """(mean loss, accuracy) over the set in batches of bs (one batch would take GBs here)."""
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


def run(args, benchmark, load, build_model):
    """Loads the data (load() returns training and test images and labels as tensors), trains
    build_model()'s network for args.epochs epochs on all but the last args.val_split of the
    training images, times it as fnn times itself, and prints the result (one JSON line with
    args.json) under the name `benchmark`."""
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(args.seed)

    t0 = time.perf_counter()
    x_all, y_all, x_test, y_test = load()
    n_val = int(x_all.shape[0] * args.val_split)
    n_train = x_all.shape[0] - n_val
    if n_train < 1:
        raise ValueError(f"no training images left ({x_all.shape[0]} loaded, {n_val} validation)")
    x_train, y_train = x_all[:n_train], y_all[:n_train]
    x_val, y_val = x_all[n_train:], y_all[n_train:]
    load_s = time.perf_counter() - t0

    model = build_model()
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    bs, ebs = args.batch_size, args.eval_batch_size

    history = []
    train_s = val_s = 0.0
    for epoch in range(1, args.epochs + 1):
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
        if not args.json:
            val = f"val loss {val_loss:.4f} acc {val_acc:.4f}" if n_val else "no validation"
            print(f"epoch {epoch}/{args.epochs}: loss {row['train_loss']:.4f} "
                  f"acc {row['train_accuracy']:.4f}, {val}, {ep_train:.2f} s", flush=True)

    # Inference throughput: the whole test set, batches of 256, loss and accuracy included,
    # as fnn's seconds.test times its evaluation.
    t0 = time.perf_counter()
    test_loss, test_acc = evaluate(model, loss_fn, x_test, y_test, ebs)
    infer_s = time.perf_counter() - t0
    n_test = y_test.numel()

    result = {
        "framework": "pytorch",
        "benchmark": benchmark,
        "torch_version": torch.__version__,
        "threads": args.threads,
        "blas_threads": args.blas_threads or args.threads,
        "malloc": args.malloc,
        "epochs": args.epochs,
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

