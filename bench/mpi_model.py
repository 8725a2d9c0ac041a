#!/usr/bin/env python3
"""The step-time model of docs/distributed.md: data-parallel training over N hosts with one ring
allreduce of the gradients per step, from a measured compute time per image.

  T_step(N) = B / N * t_img + T_ar(N)
  T_ar(N)   = 2 (N - 1) * alpha + 2 (N - 1) / N * G / bandwidth     (ring allreduce)

B is the global batch, t_img the training time per image on one host (forward, backward and
the update, all counted per image, which flatters N a little: the update does not shrink with
B / N), G the gradient's bytes, alpha the latency of one message between hosts. Data parallelism
pays off from the batch B* at which T_step(N) = T_step(1):  B* = T_ar(N) / (t_img (1 - 1/N));
it runs at half of N times one host's speed (efficiency 50%) from B50 = N T_ar(N) / t_img.

usage: bench/mpi_model.py NAME:GRADIENT_BYTES:SECONDS_PER_IMAGE ... [--batch B] [--alpha S]
e.g.   bench/mpi_model.py mlp:437544:2.0e-5 cnn:1900000:4.0e-4
"""
import sys


def main(argv):
    batch, alpha, models = 32, 25e-6, []
    it = iter(argv)
    for a in it:
        if a == "--batch":
            batch = int(next(it))
        elif a == "--alpha":
            alpha = float(next(it))
        elif a in ("-h", "--help"):
            print(__doc__)
            return 0
        else:
            name, g, t = a.split(":")
            models.append((name, float(g), float(t)))
    if not models:
        print(__doc__, file=sys.stderr)
        return 2
    hosts = (2, 4, 8, 16, 32, 64)
    print(f"global batch {batch}, latency alpha {alpha * 1e6:.0f} us per message")
    for name, g, t_img in models:
        for gbps in (10, 100):
            bw = gbps * 1e9 / 8
            t1 = batch * t_img
            print(f"\n{name}: gradient {g / 1e3:.0f} KB, {t_img * 1e6:.1f} us per image "
                  f"(one host: {t1 * 1e3:.2f} ms per step of {batch}), {gbps} Gb/s")
            print(f"{'hosts':>5} {'allreduce ms':>12} {'step ms':>8} {'speed-up':>8} "
                  f"{'efficiency':>10} {'pays off from batch':>19} {'50% from batch':>14}")
            for n in hosts:
                ar = 2 * (n - 1) * alpha + 2 * (n - 1) / n * g / bw
                step = batch / n * t_img + ar
                b_star = ar / (t_img * (1 - 1 / n))
                # fnn needs a row of the batch on every host (--batch-size >= N).
                if n > batch:
                    print(f"{n:5d} {ar * 1e3:12.3f} {'(batch < hosts)':>28} {b_star:19.0f} "
                          f"{n * ar / t_img:14.0f}")
                    continue
                print(f"{n:5d} {ar * 1e3:12.3f} {step * 1e3:8.3f} {t1 / step:8.2f} "
                      f"{t1 / step / n:10.1%} {b_star:19.0f} {n * ar / t_img:14.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
