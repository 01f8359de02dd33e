"""otmeans-vs-fc-wgan — Elnekave & Weiss Fig. 2, 9 and 10.

A discrete generator (M fixed latents; FC 64 -> 128 -> image) trained as a WGAN-GP with an FC critic
(1024 hidden units) minimises the exact image W1 between its M images and the training set: its W1 curve
approaches that of OT-Means, which minimises the same W1 directly, and both end below the W1 of M real
(held-out) images — the red reference line. With M = N the optimum copies the training set: OT-Means
reaches W1 = 0 and the WGAN moves towards copies (nearest-neighbour grid, Fig. 10).

Medium: the paper's 64 px images and networks on Fashion-MNIST (standing in for MNIST), 500 of the paper's 100,000
steps per run, so the generator's learning rate is quick's 1e-3 (the paper's 1e-4 left the W1 at 22 after 1,200
steps, an earlier run of ours); a claim that needs the long run may still not hold there. The paper preset reads
MNIST from ``--data-root`` and stops at once without it."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wganlab import metrics
from wganlab.experiments.base import Claim, Context, Experiment, register, verdict
from wganlab.experiments.common import heldout_spec, load_data, train_gan
from wganlab.ot.costs import nearest
from wganlab.ot.otmeans import ot_means
from wganlab.report.plots import line_plot
from wganlab.train import TrainConfig, save_nearest_grid


@dataclass
class Config:
    data: str = "fashion-mnist:train:n=1000"
    fallback: str = "digits:train"
    m: int = 64
    steps: int = 500
    lr_g: float = 1e-3  # ours for the short quick run (the reference: 1e-4 for the generator, 1e-3 for the critic)
    track_every: int = 100
    copy_data: str = "squares:size=16:square=4"
    copy_steps: int = 500
    otmeans_iters: int = 10
    otmeans_ot_steps: int = 5
    note: str = ""  # a remark the runner puts in the report (what stands in for a data set)
    seed: int = 0


PRESETS = {
    "quick": {},
    "medium": {"data": "fashion-mnist:train:n=10000:size=64", "steps": 500, "lr_g": 1e-3, "track_every": 100,
               "copy_data": "fashion-mnist:train:n=1000:size=64", "copy_steps": 500,
               "note": "medium: Fashion-MNIST stands in for MNIST (not installed here)"},
    "paper": {"data": "mnist:train:n=10000:size=64", "steps": 100_000, "lr_g": 1e-4,
              "track_every": 2000, "copy_data": "mnist:train:n=1000:size=64", "copy_steps": 100_000},
}


def _otmeans_curve(y: torch.Tensor, m: int, cfg: Config) -> tuple[list[float], torch.Tensor]:
    res = ot_means(y, m, n_iter=cfg.otmeans_iters, ot_steps=cfg.otmeans_ot_steps, seed=cfg.seed)
    return res.w1_trace, res.centroids


def run(cfg: Config, ctx: Context) -> dict:
    train = load_data(ctx, cfg.data, fallback=cfg.fallback)
    copy_y = load_data(ctx, cfg.copy_data).x  # the M = N run's data before any training: a missing set stops now
    real_batch = load_data(ctx, heldout_spec(train, cfg.m)).x
    ref_w1 = metrics.compute("w1", real_batch, train.x)["value"]
    trace, centroids = _otmeans_curve(train.x, cfg.m, cfg)
    tcfg = TrainConfig(data=train.spec, m=cfg.m, steps=cfg.steps, lr_g=cfg.lr_g, track_every=cfg.track_every,
                       track=("w1",),
                       ckpt_every=cfg.steps, grid_every=cfg.steps, seed=cfg.seed)
    result, rows = train_gan(ctx, "wgan-fc", tcfg)
    steps = [r["step"] for r in rows if "w1" in r]
    w1 = [r["w1"] for r in rows if "w1" in r]
    ctx.save_table("w1_curves", [{"step": s, "wgan_w1": v} for s, v in zip(steps, w1, strict=True)]
                   + [{"otmeans_solve": i, "otmeans_w1": v} for i, v in enumerate(trace)])
    span = max(steps) / max(1, len(trace) - 1)
    ctx.figure(line_plot(ctx.path("w1_curves.png"), {
        "discrete WGAN-GP (FC critic)": (steps, w1),
        "OT-Means (x: solve index, rescaled)": ([i * span for i in range(len(trace))], trace)},
        hlines={f"{cfg.m} real test images": ref_w1}, xlabel="generator step", ylabel="exact image W1",
        title=f"Fig. 2: M = {cfg.m}", markers=False),
        "Exact W1 between the M generated images and the training set during training; OT-Means for reference.")
    with torch.no_grad():
        gen = result.generator.support()
    ctx.save_grid("wgan.png", gen[:32], f"WGAN-GP with FC critic: 32 of its M = {cfg.m} images.")
    ctx.save_grid("otmeans.png", centroids[:32], "OT-Means centroids (32 of M).")
    ctx.save_grid("train.png", train.x[:32], "Training images.")
    copy = _copy_run(cfg, ctx, copy_y)
    return {"real_batch_w1": ref_w1, "otmeans_w1": trace[-1], "wgan_w1_start": w1[0], "wgan_w1_end": w1[-1],
            "wgan_w1_min": min(w1), "m": cfg.m, "copy": copy, "status": result.status}


def _copy_run(cfg: Config, ctx: Context, y: torch.Tensor) -> dict:
    """M = N on the images ``y``: OT-Means copies the data; the WGAN heads for copies."""
    n = len(y)
    trace, _ = _otmeans_curve(y, n, cfg)
    tcfg = TrainConfig(data=cfg.copy_data, m=n, steps=cfg.copy_steps, lr_g=cfg.lr_g, track_every=cfg.track_every,
                       track=("w1",),
                       ckpt_every=cfg.copy_steps, grid_every=cfg.copy_steps, seed=cfg.seed)
    result, rows = train_gan(ctx, "wgan-copy", tcfg)
    w1 = [r["w1"] for r in rows if "w1" in r]
    steps = [r["step"] for r in rows if "w1" in r]
    ctx.figure(line_plot(ctx.path("copy_w1.png"), {"discrete WGAN-GP, M = N": (steps, w1)},
                         hlines={"OT-Means, M = N (final)": trace[-1]}, xlabel="generator step",
                         ylabel="exact image W1", title=f"Fig. 9: M = N = {n}", markers=False),
               f"M = N = {n}: the W1 optimum is 0 (copy the training set).")
    with torch.no_grad():
        gen = result.generator.support().cpu()
    save_nearest_grid(gen[:16], y, ctx.path("copy_nearest.png"))
    ctx.figure("copy_nearest.png", "Fig. 10: generated image (left) next to its nearest training image (right).")
    nn = nearest(gen, y).values
    distinct = torch.unique(y.flatten(1).double(), dim=0)
    spacing = torch.cdist(distinct, distinct).fill_diagonal_(float("inf")).min(1).values
    return {"n": n, "otmeans_w1": trace[-1], "wgan_w1_start": w1[0], "wgan_w1_end": w1[-1],
            "nn_distance_median": float(nn.median()), "data_spacing_median": float(spacing.median())}


def _approaches(m):
    gap = (m["wgan_w1_end"] - m["otmeans_w1"]) / (m["wgan_w1_start"] - m["otmeans_w1"])
    ok = gap <= 0.25 and m["wgan_w1_end"] < m["real_batch_w1"]
    return verdict(ok, f"WGAN {m['wgan_w1_start']:.2f} -> {m['wgan_w1_end']:.2f}, OT-Means {m['otmeans_w1']:.2f}, "
                   f"real batch {m['real_batch_w1']:.2f}", "holds when the WGAN closes >= 75% of the gap to OT-Means "
                   "and ends below the real batch")


def _copies(m):
    c = m["copy"]
    ok = c["otmeans_w1"] < 1e-6 * max(1.0, c["wgan_w1_start"]) and c["nn_distance_median"] < c["data_spacing_median"]
    return verdict(ok, f"OT-Means W1 {c['otmeans_w1']:.2g}; WGAN W1 {c['wgan_w1_start']:.2f} -> {c['wgan_w1_end']:.2f},"
                   f" median distance to nearest training image {c['nn_distance_median']:.2f} (training images are "
                   f"{c['data_spacing_median']:.2f} apart)", "holds when OT-Means reaches 0 and WGAN images sit closer "
                   "to a training image than training images sit to each other")


EXPERIMENT = register(Experiment(
    name="otmeans-vs-fc-wgan",
    title="A discrete WGAN with an FC critic minimises the image W1, like OT-Means",
    source="000 Fig. 2, 9-10",
    config=Config,
    presets=PRESETS,
    run=run,
    claims=(
        Claim("wgan-approaches-otmeans", "With an FC critic, the discrete WGAN's W1 decreases to near OT-Means' (and "
              "below a batch of real images)", "000 Fig. 2", "", _approaches),
        Claim("m-equals-n-copies", "With M = N the W1 optimum copies the training set: OT-Means reaches 0 and the "
              "WGAN's images approach copies", "000 Fig. 9-10", "OT-Means W1 = 0", _copies),
    ),
    description=__doc__,
    quick_seconds=33,
    medium_seconds=623,
    paper_time=("~1.6 h: 27.6 ms an FC WGAN-GP step x 100k (46 min, measured on one H200) for the M = 64 run, the "
                "M = N run taken as the same (not measured), OT-Means 39 s"),
))
