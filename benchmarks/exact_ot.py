"""Exact OT engines against POT on Fashion-MNIST (W1, uniform weights, d = 784), in one process.

    PYTHONPATH=src python benchmarks/exact_ot.py [--goals 1,2,3,5] [--threads 1]

Each goal times POT (``ot.dist`` + ``ot.emd2`` with a large ``numItermax``) and ``wasserstein(...,
engine="sparse")`` on the same data and prints the speed ratio, the relative difference of the values and
the sparse engine's certified relative gap. Goal 3 (50,000 x 50,000) runs the sparse engine alone (POT
needs 16 bytes per pair: 40 GB) between training images 0-49,999 and images 10,000-59,999 plus Gaussian
noise (sd 0.1), and reports the process's peak memory. Goal 5 runs 20 OT-Means updates (``n_iter=4``,
``ot_steps=5``, m = 64) against POT ``emd`` + a NumPy Weiszfeld step and compares the W1 traces.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import ot
import torch

from wganlab.data import load
from wganlab.ot import ot_means, wasserstein

BIG = 10**10


def fmnist(split: str, n: int) -> np.ndarray:
    return load(f"fashion-mnist:{split}:n={n}").x.reshape(n, -1).numpy().astype(np.float64)


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def pot_w1(x: np.ndarray, y: np.ndarray) -> float:
    C = ot.dist(x, y, metric="euclidean")
    return float(ot.emd2(np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y)), C, numItermax=BIG))


def compare(name: str, x: np.ndarray, y: np.ndarray) -> None:
    res, t_sparse = timed(lambda: wasserstein(x, y, engine="sparse"))
    ref, t_pot = timed(lambda: pot_w1(x, y))
    print(f"{name}: POT {t_pot:.2f} s, sparse {t_sparse:.2f} s, ratio {t_pot / t_sparse:.1f}x, "
          f"|W1 - W1_POT|/W1_POT = {abs(res.value - ref) / ref:.1e}, certified gap {res.gap_rel:.1e}, "
          f"info {res.info}", flush=True)


def centroids(y: np.ndarray, m: int, seed: int = 0) -> np.ndarray:
    """``m`` data points plus small noise: an OT-Means-like set of centroids."""
    r = np.random.default_rng(seed)
    return y[r.choice(len(y), m, replace=False)] + 0.05 * r.normal(size=(m, y.shape[1]))


def pot_ot_means(y: np.ndarray, x: np.ndarray, steps: int) -> list[float]:
    """The plain loop: POT plan, then one Weiszfeld step per centroid, in NumPy."""
    a, b = np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y))
    trace = []
    for _ in range(steps):
        C = ot.dist(x, y, metric="euclidean")
        P = ot.emd(a, b, C, numItermax=BIG)
        trace.append(float((P * C).sum()))
        W = P / np.maximum(C, 1e-300)
        x = (W @ y) / W.sum(1, keepdims=True)
    C = ot.dist(x, y, metric="euclidean")
    trace.append(float(ot.emd2(a, b, C, numItermax=BIG)))
    return trace


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--goals", default="1,2,3,5")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    goals = set(args.goals.split(","))
    wasserstein(fmnist("test", 50), fmnist("train", 300), engine="sparse")  # compile the kernels
    if "2" in goals:
        for n in (10_000, 60_000):
            y = fmnist("train", n)
            compare(f"goal 2, 64 x {n}", centroids(y, 64), y)
    if "5" in goals:
        y = fmnist("train", 10_000)
        x0 = centroids(y, 64, seed=1)
        ours, t_ours = timed(lambda: ot_means(y, 64, n_iter=4, ot_steps=5, init=x0, engine="sparse"))
        ref, t_ref = timed(lambda: pot_ot_means(y, x0, 20))
        diff = np.max(np.abs(np.array(ours.w1_trace) - ref) / np.array(ref))
        print(f"goal 5, OT-Means 20 updates, 64 x 10000: POT+NumPy {t_ref:.2f} s, sparse+warm {t_ours:.2f} s, "
              f"ratio {t_ref / t_ours:.1f}x, max relative trace difference {diff:.1e}", flush=True)
    if "1" in goals:
        compare("goal 1, 10000 x 10000", fmnist("test", 10_000), fmnist("train", 10_000))
    if "3" in goals:
        y = fmnist("train", 60_000)
        noisy = y[10_000:] + 0.1 * np.random.default_rng(0).normal(size=(50_000, y.shape[1]))
        res, t = timed(lambda: wasserstein(y[:50_000], noisy, engine="sparse"))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(f"goal 3, 50000 x 50000: sparse {t:.1f} s, W1 {res.value:.6f}, certified gap {res.gap_rel:.1e}, "
              f"peak RSS {peak:.1f} GiB, info {res.info}", flush=True)


if __name__ == "__main__":
    main()
