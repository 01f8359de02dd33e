"""sample-complexity — Stanczuk et al. Fig. 8, 9 and 13.

``E W1(p_n, p~_n)`` between two independent n-samples of ``N(0, I_20)`` (the true distance is 0) for
growing n, a least-squares line in log-log space and its extrapolation to the n that would bring the
error to 0.1 and 0.01; the same for the debiased Sinkhorn divergence with eps = 100, whose error
decays like ``n^(-1/2)``. Exact W1 by the certified LP solver; Sinkhorn by our log-domain solver.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from wganlab import metrics
from wganlab.experiments.base import Claim, Context, Experiment, register, verdict
from wganlab.ot.sinkhorn import sinkhorn_divergence
from wganlab.report.plots import line_plot


@dataclass
class Config:
    d: int = 20
    sizes: tuple[int, ...] = (10, 25, 50, 100, 250, 500, 1000, 2000)
    repeats: int = 10
    sinkhorn_eps: float = 100.0
    sinkhorn_sizes: tuple[int, ...] = (10, 25, 50, 100, 250, 500)
    sinkhorn_repeats: int = 5
    seed: int = 0


PRESETS = {
    "quick": {},
    # the paper: n in {10, 25, 50, 75, 1000, 10000}, 100 repetitions (Fig. 8)
    # the paper's d, eps and sizes up to 5,000 with 20 repetitions (time: a 2-repetition run, scaled by 10)
    "medium": {"sizes": (10, 25, 50, 75, 100, 250, 500, 1000, 2500, 5000), "repeats": 20,
               "sinkhorn_sizes": (10, 25, 50, 75, 100, 250, 500, 1000), "sinkhorn_repeats": 20},
    "paper": {"sizes": (10, 25, 50, 75, 100, 250, 500, 1000, 2500, 10000), "repeats": 100,
              "sinkhorn_sizes": (10, 25, 50, 75, 100, 250, 500, 1000), "sinkhorn_repeats": 100},
}


def loglog_fit(n: np.ndarray, y: np.ndarray) -> dict:
    """Least squares ``log y = a + b log n`` with the standard errors of ``a`` and ``b``."""
    X = np.stack([np.ones_like(n, dtype=float), np.log(n)], 1)
    coef, res, *_ = np.linalg.lstsq(X, np.log(y), rcond=None)
    dof = max(1, len(n) - 2)
    sigma2 = float(res[0]) / dof if len(res) else 0.0
    cov = sigma2 * np.linalg.inv(X.T @ X)
    return {"a": float(coef[0]), "b": float(coef[1]), "se_a": float(math.sqrt(cov[0, 0])),
            "se_b": float(math.sqrt(cov[1, 1]))}


def extrapolate(fit: dict, target: float) -> float:
    """``log10`` of the n at which the fitted line reaches ``target`` (inf if it never decreases)."""
    if fit["b"] >= 0:
        return math.inf
    return (math.log(target) - fit["a"]) / fit["b"] / math.log(10)


def run(cfg: Config, ctx: Context) -> dict:
    g = torch.Generator().manual_seed(cfg.seed)
    rows = []
    work = [("w1", n, cfg.repeats) for n in cfg.sizes] + [("sinkhorn", n, cfg.sinkhorn_repeats)
                                                           for n in cfg.sinkhorn_sizes]
    for kind, n, reps in tqdm(work, desc="sample-complexity", disable=None if ctx.progress else True):
        vals = []
        for _ in range(reps):
            x = torch.randn(n, cfg.d, generator=g, dtype=torch.float64)
            y = torch.randn(n, cfg.d, generator=g, dtype=torch.float64)
            vals.append(metrics.compute("w1", x, y)["value"] if kind == "w1"
                        else float(sinkhorn_divergence(x, y, cfg.sinkhorn_eps)))
        rows.append({"distance": kind, "n": n, "mean": float(np.mean(vals)), "std": float(np.std(vals)),
                     "repeats": reps})
    ctx.save_table("values", rows)
    w = [r for r in rows if r["distance"] == "w1"]
    s = [r for r in rows if r["distance"] == "sinkhorn"]
    n_w, m_w = np.array([r["n"] for r in w], float), np.array([r["mean"] for r in w])
    fit = loglog_fit(n_w, m_w)
    # 95% band of the extrapolation from the slope's standard error
    fits = {"fit": fit, "log10_n_for_0.1": extrapolate(fit, 0.1), "log10_n_for_0.01": extrapolate(fit, 0.01)}
    lo = dict(fit, b=fit["b"] - 1.96 * fit["se_b"])
    hi = dict(fit, b=fit["b"] + 1.96 * fit["se_b"])
    fits["log10_n_for_0.1_ci"] = sorted([extrapolate(lo, 0.1), extrapolate(hi, 0.1)])
    ctx.figure(line_plot(ctx.path("w1_vs_n.png"), {f"E W1 (d={cfg.d})": (n_w, m_w)}, errors={
        f"E W1 (d={cfg.d})": [r["std"] for r in w]}, xlabel="n", ylabel="E W1(p_n, p~_n)",
        title="Fig. 8: W1 between two samples of N(0, I)"),
        f"Expected W1 between two independent n-samples of N(0, I_{cfg.d}) (mean ± std).")
    grid = np.logspace(math.log10(n_w.min()), max(math.log10(n_w.max()) + 1, fits["log10_n_for_0.01"]
                                                  if math.isfinite(fits["log10_n_for_0.01"]) else 6), 50)
    ctx.figure(line_plot(ctx.path("extrapolation.png"), {
        "measured": (n_w, m_w), "fit a + b log n": (grid, np.exp(fit["a"]) * grid ** fit["b"])},
        hlines={"error 0.1": 0.1, "error 0.01": 0.01}, xlabel="n", ylabel="E W1", logx=True, logy=True,
        title=f"Fig. 9: slope {fit['b']:.3f}, n(0.1) = 1e{fits['log10_n_for_0.1']:.1f}", markers=False),
        "Least-squares line in log-log space and its extrapolation to errors 0.1 and 0.01.")
    if s:
        ctx.figure(line_plot(ctx.path("sinkhorn_vs_n.png"), {
            f"Sinkhorn eps={cfg.sinkhorn_eps:g}": ([r["n"] for r in s], [r["mean"] for r in s]),
            "W1": (n_w, m_w)}, errors={f"Sinkhorn eps={cfg.sinkhorn_eps:g}": [r["std"] for r in s]},
            xlabel="n", ylabel="expected value (true value 0)", logx=True, logy=True,
            title="Fig. 13: Sinkhorn divergence vs W1"),
            f"Debiased Sinkhorn divergence (eps={cfg.sinkhorn_eps:g}) and W1 between two samples.")
    return {"rows": rows, **fits, "d": cfg.d}


def _n_claim(key: str, target: float, paper_log10: int) -> Claim:
    def check(m):
        lg = m[f"log10_n_for_{target}"]
        return verdict(lg > paper_log10, f"n ≈ 1e{lg:.1f} (slope {m['fit']['b']:.3f})")

    return Claim(key, f"In d=20, bringing the W1 error down to {target} needs more than 1e{paper_log10} samples",
                 "001 Fig. 9", f"> 1e{paper_log10}", check)


def _sinkhorn_claim(m):
    rows = m["rows"]
    s = {r["n"]: r["mean"] for r in rows if r["distance"] == "sinkhorn"}
    w = {r["n"]: r["mean"] for r in rows if r["distance"] == "w1"}
    n_big = 500 if 500 in s else max(s)
    n_small = min(s)
    s_ratio, w_ratio = s[n_big] / s[n_small], w[n_big] / w[n_small]
    return verdict(s_ratio <= 0.1 and w_ratio >= 0.5,
                   f"S(n={n_big})/S(n={n_small}) = {s_ratio:.3f}; W1 ratio {w_ratio:.2f}",
                   "holds when the Sinkhorn divergence falls by 10x or more while W1 falls by less than 2x")


EXPERIMENT = register(Experiment(
    name="sample-complexity",
    title="Sample complexity of W1 and of the Sinkhorn divergence",
    source="001 Fig. 8, 9, 13",
    config=Config,
    presets=PRESETS,
    run=run,
    claims=(
        _n_claim("n-for-0.1", 0.1, 20),
        _n_claim("n-for-0.01", 0.01, 40),
        Claim("sinkhorn-fast", "With eps=100 the Sinkhorn divergence between two samples is close to 0 by "
              "n=500, unlike W1", "001 Fig. 13", "≈ 0 at n=500", _sinkhorn_claim),
    ),
    description=__doc__,
    quick_seconds=3,
    medium_seconds=24,
    paper_time="90 s on one core of a 2-core AMD EPYC, no GPU needed (measured: results/paper)",
))
