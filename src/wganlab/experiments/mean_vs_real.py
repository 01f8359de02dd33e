"""mean-vs-real-dimension — Stanczuk et al. Fig. 11.

For ``p* = N(0, I_d)`` and batches of n samples: ``E W1(p_n, p~_n)`` between two real batches versus
``E W1(p_n, delta_mean)``, the batch against a Dirac at the mean (for which W1 is the mean distance to
the mean, ``mean_i ||x_i||``), as the dimension grows. A perfect generator loses to the mean once d is
large enough: a false minimum of the batch Wasserstein loss. The batch size is ours (64; the paper does
not give it for this figure).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from wganlab import metrics
from wganlab.experiments.base import Claim, Context, Experiment, register, verdict
from wganlab.report.plots import line_plot


@dataclass
class Config:
    dims: tuple[int, ...] = (1, 2, 5, 10, 15, 20, 30, 50, 100)
    batch: int = 64
    repeats: int = 20
    seed: int = 0


PAPER_DIMS = (1, 2, 3, 5, 8, 10, 12, 15, 18, 20, 25, 30, 50, 100)
# medium: the paper's dimensions with half its repetitions
PRESETS = {"quick": {}, "medium": {"dims": PAPER_DIMS, "repeats": 50}, "paper": {"dims": PAPER_DIMS, "repeats": 100}}


def crossover(dims, real, mean) -> float:
    """The dimension where ``real - mean`` changes sign from negative to positive (linear
    interpolation); inf when the mean never wins, the first dimension when it always does."""
    diff = np.asarray(real) - np.asarray(mean)
    if diff[0] > 0:
        return float(dims[0])
    for i in range(1, len(dims)):
        if diff[i] > 0 >= diff[i - 1]:
            t = -diff[i - 1] / (diff[i] - diff[i - 1])
            return float(dims[i - 1] + t * (dims[i] - dims[i - 1]))
    return float("inf")


def run(cfg: Config, ctx: Context) -> dict:
    g = torch.Generator().manual_seed(cfg.seed)
    rows = []
    for d in tqdm(cfg.dims, desc="mean-vs-real", disable=None if ctx.progress else True):
        real, mean = [], []
        for _ in range(cfg.repeats):
            x = torch.randn(cfg.batch, d, generator=g, dtype=torch.float64)
            y = torch.randn(cfg.batch, d, generator=g, dtype=torch.float64)
            real.append(metrics.compute("w1", x, y)["value"])
            mean.append(float(x.norm(dim=1).mean()))  # W1 to the Dirac at the mean 0
        rows.append({"d": d, "real_mean": float(np.mean(real)), "real_std": float(np.std(real)),
                     "mean_mean": float(np.mean(mean)), "mean_std": float(np.std(mean))})
    ctx.save_table("values", rows)
    dims = [r["d"] for r in rows]
    real = [r["real_mean"] for r in rows]
    mean = [r["mean_mean"] for r in rows]
    d_star = crossover(dims, real, mean)
    ctx.figure(line_plot(ctx.path("real_vs_mean.png"), {"real batch": (dims, real), "Dirac at the mean": (dims, mean)},
              errors={"real batch": [r["real_std"] for r in rows], "Dirac at the mean": [r["mean_std"]
                                                                                       for r in rows]},
              xlabel="dimension d", ylabel=f"E W1 to a real batch of {cfg.batch}", logx=True,
              title=f"Fig. 11: the mean wins for d > {d_star:.1f}"),
               "Expected batch W1 of a real batch and of a Dirac at the mean to a real batch, by dimension.")
    return {"rows": rows, "crossover_d": d_star, "batch": cfg.batch}


EXPERIMENT = register(Experiment(
    name="mean-vs-real-dimension",
    title="A real batch vs the mean, as the dimension grows",
    source="001 Fig. 11",
    config=Config,
    presets=PRESETS,
    run=run,
    claims=(
        Claim("crossover", "In sufficiently high dimension (d > 15) a Dirac at the mean has a smaller expected "
              "batch W1 to a real batch than another real batch", "001 Fig. 11", "d > 15",
              lambda m: verdict(10 <= m["crossover_d"] <= 20, f"crossover at d ≈ {m['crossover_d']:.1f} "
                                f"(batch {m['batch']})", "holds when the crossover lies in [10, 20]")),
    ),
    description=__doc__,
    quick_seconds=0.3,
    medium_seconds=2,
    paper_time="2 s on one core of a 2-core AMD EPYC, no GPU needed (measured: results/paper)",
))
