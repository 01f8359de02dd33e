"""gmm8-tracking — Stanczuk et al. section 4.1.2, Fig. 4 and 5.

WGAN-GP (continuous generator) fitted to an 8-mode Gaussian mixture in 2-D, where 1,000 samples estimate
W1 well. During training we log the generator loss normalised by the Lipschitz lower bound,
``L_G / L = (E D(real) - E D(fake)) / max ||grad D||``, and the exact W1 between 1,000 generated and
1,000 real points. The paper finds the normalised loss an order of magnitude below W1 (6.92x at the end).

Ours: MLP generator (2-d latent, 3 x 256) and critic (3 x 256), Adam lr 1e-4, betas (0.5, 0.9),
lambda 10, n_critic 5, batch 64 — the WGAN-GP paper's toy settings; fewer steps than a GPU run.

The estimator's noise floor is shown beside the curves: the exact W1 between two independent 1,000-samples
of the true mixture (what W1 reads for a perfect generator), and the normalised loss a critic trained on
those two samples reaches (what |L_G| / L reads for a perfect generator). The ratio is judged twice: per
batch during training (median over the second half) and on fixed 1,000-vs-1,000 sets at the end, where a
fresh critic is trained on the final generator's 1,000 points against 1,000 real ones (Algorithm 2), so a
small batch alone cannot decide it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from wganlab import data, metrics
from wganlab.experiments.base import Claim, Context, Experiment, register, verdict
from wganlab.experiments.common import oracle_estimate, train_gan
from wganlab.models import build_critic
from wganlab.report.plots import line_plot, scatter_plot
from wganlab.train import TrainConfig


@dataclass
class Config:
    data: str = "gauss8:n=1000"
    steps: int = 1500
    track_every: int = 50
    hidden: int = 256
    depth: int = 3
    critic_iterations: int = 1000  # critic updates for each fixed-set (oracle) estimate
    seed: int = 0


PRESETS = {
    "quick": {},
    # the paper's data and networks; 10k of its 20k steps (time: the quick run's 48 s per 1,500 steps, scaled)
    "medium": {"steps": 8000, "track_every": 200, "critic_iterations": 3000},
    "paper": {"steps": 20000, "track_every": 200, "critic_iterations": 5000},
}


def _fixed_set_normalised(cfg: Config, p: torch.Tensor, q: torch.Tensor, ctx: Context, desc: str) -> float:
    """``W1^D / L`` of a fresh WGAN-GP critic (lambda 10) trained on the fixed sets ``p``, ``q``."""
    torch.manual_seed(cfg.seed)
    critic = build_critic("fc", (2,), hidden=cfg.hidden, depth=cfg.depth)
    p, q = p.to(ctx.torch_device), q.to(ctx.torch_device)
    est, _ = oracle_estimate(critic, p, q, lam=10.0, iterations=cfg.critic_iterations, batch=64, lr=1e-4,
                             seed=cfg.seed, progress=ctx.progress, desc=desc)
    return abs(est["normalised"])


def run(cfg: Config, ctx: Context) -> dict:
    tcfg = TrainConfig(data=cfg.data, m=None, z_dim=2, g_hidden=cfg.hidden, g_depth=cfg.depth, critic="fc",
                       c_hidden=cfg.hidden, c_depth=cfg.depth, objective="wgan-gp", lr_g=1e-4, lr_c=1e-4,
                       steps=cfg.steps, track_every=cfg.track_every, track=("w1",), track_samples=1000,
                       grid_every=0, ckpt_every=cfg.steps, seed=cfg.seed)
    result, rows = train_gan(ctx, "wgan-gp", tcfg)
    rows = [r for r in rows if "normalised" in r]
    steps = [r["step"] for r in rows]
    w1 = np.array([r["w1"] for r in rows])
    norm = np.array([abs(r["normalised"]) for r in rows])
    ctx.save_table("tracking", [{"step": s, "w1": a, "normalised_loss": b} for s, a, b in zip(steps, w1, norm,
                                                                                           strict=True)])
    real = result.train_x[:1000].cpu()
    floor = _noise_floor(cfg, ctx, real)
    ctx.save_table("noise_floor", [floor])
    ctx.figure(line_plot(ctx.path("loss_vs_w1.png"), {"exact W1 (1,000 vs 1,000)": (steps, w1),
                                                       "|L_G| / L": (steps, norm)},
                         hlines={"W1 floor: two true 1,000-samples": floor["w1_two_true_samples"],
                                 "|L_G| / L floor: critic on two true samples": floor["normalised_two_true_samples"]},
                         xlabel="generator step", ylabel="value", logy=True,
                         title="Fig. 5: normalised loss vs W1", markers=False),
               "Exact W1 between 1,000 generated and 1,000 real points, and the normalised generator loss; the "
               "horizontal lines are what each reads for a perfect generator (the estimator's noise floor).")
    with torch.no_grad():
        fake_t = result.generator(result.generator.sample_latents(1000)).cpu()
    fake = fake_t.numpy()
    ctx.figure(scatter_plot(ctx.path("samples.png"), {"real": result.train_x[:250].cpu().numpy(),
                                                      "generated": fake[:250]}, title="Fig. 4"),
               "250 real (target) and 250 generated points at the end of training.")
    tail = slice(len(rows) // 2, None)
    ratio_end = float(w1[-1] / max(norm[-1], 1e-12))
    ratio_tail = float(np.median(w1[tail] / np.maximum(norm[tail], 1e-12)))
    fixed_w1 = metrics.compute("w1", fake_t, real)["value"]
    fixed_norm = _fixed_set_normalised(cfg, real, fake_t, ctx, "fixed sets")
    return {"final_w1": float(w1[-1]), "final_normalised": float(norm[-1]), "ratio_end": ratio_end,
            "ratio_second_half_median": ratio_tail, "fixed_w1": fixed_w1, "fixed_normalised": fixed_norm,
            "ratio_fixed": fixed_w1 / max(fixed_norm, 1e-12), "noise_floor": floor, "status": result.status}


def _noise_floor(cfg: Config, ctx: Context, real: torch.Tensor) -> dict:
    """W1 and the critic's normalised estimate between two independent 1,000-samples of the true mixture."""
    other = data.load(str(data.parse_spec(cfg.data).replace(split="test", n=len(real))), ctx.data_root,
                      seed=ctx.seed).x
    return {"w1_two_true_samples": metrics.compute("w1", real, other)["value"],
            "normalised_two_true_samples": _fixed_set_normalised(cfg, real, other, ctx, "noise floor")}


def _order_below(m):
    f = m["noise_floor"]
    return verdict(m["ratio_second_half_median"] >= 5 and m["ratio_fixed"] >= 5,
                   f"per batch: {m['ratio_end']:.2f}x at the end, median {m['ratio_second_half_median']:.2f}x over "
                   f"the second half; fixed 1,000-vs-1,000 sets: {m['ratio_fixed']:.2f}x (W1 {m['fixed_w1']:.3f}, "
                   f"normalised {m['fixed_normalised']:.3f})",
                   "holds when W1 is at least 5x the normalised loss both per batch (median over the second half) "
                   f"and on the fixed sets; noise floor (two true 1,000-samples): W1 {f['w1_two_true_samples']:.3f}, "
                   f"normalised {f['normalised_two_true_samples']:.3f}")


EXPERIMENT = register(Experiment(
    name="gmm8-tracking",
    title="WGAN-GP loss vs exact W1 on an 8-mode Gaussian mixture",
    source="001 Fig. 4-5",
    config=Config,
    presets=PRESETS,
    run=run,
    claims=(
        Claim("order-below", "Even in 2-D the normalised WGAN-GP loss stays far below W1 (W1 is 6.92x the normalised "
              "loss at the end)", "001 Fig. 5", "6.92x",
              _order_below),
    ),
    description=__doc__,
    quick_seconds=40,
    medium_seconds=509,
    paper_time=("9.5 min on one core of a 2-core AMD EPYC (measured: results/paper); ~12 min on one H200 (28.7 ms "
                "a WGAN-GP step x 20k, extrapolated): 2-D MLPs are no faster there"),
))
