"""What the PyTorch twins in bench/ share: allocator tuning, thread settings made before torch
is imported, and reading Fashion-MNIST's IDX files.

Import it before torch; load() imports numpy and torch itself, after set_threads has run.
"""

import argparse
import ctypes
import gzip
import os
import struct


def common_parser(description, epochs):
    """The options both twins take; each adds its own."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist",
                   help="directory holding the four Fashion-MNIST IDX files (gzipped or plain)")
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--val-split", type=float, default=0.2,
                   help="fraction held out from the end of the training file, as Keras does")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=1,
                   help="intra-op threads: torch.set_num_threads, OpenMP's and OpenBLAS's counts")
    p.add_argument("--blas-threads", type=int, default=0,
                   help="OpenBLAS's thread count if it should differ from --threads")
    p.add_argument("--malloc", choices=("tuned", "default"), default="tuned",
                   help="tuned: keep freed memory in glibc's heap (see tune_malloc); "
                        "default: glibc's own settings")
    p.add_argument("--json", action="store_true", help="print one JSON line and nothing else")
    return p


def add_limits(p, limit_help, test_limit_help):
    """The evaluation batch and the two image limits, which every twin takes."""
    p.add_argument("--eval-batch-size", type=int, default=256,
                   help="batch size of validation and of the timed test inference [256, as fnn]")
    p.add_argument("--limit", type=int, default=0, help=limit_help)
    p.add_argument("--test-limit", type=int, default=0, help=test_limit_help)


def check_ranges(p, a):
    """Stops with a usage error unless the common options and add_limits' are in range."""
    if (a.epochs < 1 or a.batch_size < 1 or a.eval_batch_size < 1 or a.threads < 1
            or a.limit < 0 or a.test_limit < 0 or not 0.0 <= a.val_split < 1.0
            or not a.lr > 0.0):
        p.error("--epochs, --batch-size, --eval-batch-size and --threads must be >= 1, "
                "--limit and --test-limit >= 0, --val-split in [0, 1), --lr above 0")


def tune_malloc():
    """Stops glibc from handing freed heap memory back to the kernel after every step.

    Eager PyTorch allocates and frees each step's gradients and Adam temporaries (up to 400 KB
    for the first layer); with glibc's defaults the heap top is trimmed and regrown, or the
    block mmapped and unmapped, every step, and each regrowth page-faults the memory in again.
    On the benchmark VM (Firecracker, where the guest hands free pages back to the host) this
    made some runs 4 to 6 times slower than others; fnn allocates nothing while training. The
    usual remedy is jemalloc or tcmalloc; these two mallopt calls do the job with glibc alone.
    """
    libc = ctypes.CDLL(None)
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    if not (libc.mallopt(M_TRIM_THRESHOLD, 1 << 30) and libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)):
        raise OSError("mallopt refused the allocator settings")



def set_threads(threads, blas_threads=0):
    """Fixes torch's and OpenBLAS's thread counts; call before torch is imported.

    Debian's torch multiplies matrices (and lowers convolutions to them) with OpenBLAS, whose
    thread pool is sized when it is loaded and ignores torch.set_num_threads: without this,
    "1 thread" would still multiply matrices on every core.
    """
    os.environ["OPENBLAS_NUM_THREADS"] = str(blas_threads or threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)


def read_idx(path, magic, ndim):
    """Reads one IDX file (plain or .gz) into a uint8 array; raises ValueError naming the file."""
    import numpy as np

    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated header ({len(raw)} bytes)")
    (m,) = struct.unpack(">I", raw[:4])
    if m != magic:
        raise ValueError(f"{path}: magic 0x{m:08x} at offset 0, expected 0x{magic:08x}")
    dims = struct.unpack(">" + "I" * ndim, raw[4:header])
    count = int(np.prod(dims))
    if len(raw) - header != count:
        raise ValueError(f"{path}: {len(raw) - header} data bytes after offset {header}, "
                         f"dims {dims} need {count}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def find(data_dir, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"{os.path.join(data_dir, stem)}[.gz] not found")



def load(data_dir, kind, limit=0, shape=(-1,)):
    """(images as float32 (N, *shape) in [0, 1], labels as int64 (N,)) for "train" or "t10k",
    the first `limit` images only when limit > 0."""
    import numpy as np
    import torch

    x = read_idx(find(data_dir, f"{kind}-images-idx3-ubyte"), 0x00000803, 3)
    y = read_idx(find(data_dir, f"{kind}-labels-idx1-ubyte"), 0x00000801, 1)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{data_dir}: {kind} has {x.shape[0]} images but {y.shape[0]} labels")
    if limit:
        x, y = x[:limit], y[:limit]
    xf = x.reshape((x.shape[0],) + tuple(shape)).astype(np.float32)
    xf /= 255.0  # in place: a second copy of the float images would set the run's peak memory
    return torch.from_numpy(xf), torch.from_numpy(y.astype(np.int64))
