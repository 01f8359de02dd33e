"""batch-estimate — Stanczuk et al. Algorithm 3, Fig. 6 and 7 (after Mallasto et al.).

WGAN-GP and the c-transform WGAN trained on the same data with the same networks. At every tracked
generator step the generator loss L_G (the objective's estimate) is compared with the exact W1 between
that step's real and generated batches (LP). The c-transform's loss tracks the batch W1; WGAN-GP's
does not. Yet the c-transform's samples are the worse ones: blurry (lower Laplacian sharpness than
the data and than WGAN-GP's) — a good batch-W1 estimate does not make a good generator.

Ours (the paper uses a StyleGAN on CelebA): continuous DCGAN-style generator and CNN-FC critic on
Fashion-MNIST resized to 16 px (quick: generator base width 16, critic 16/32/32 channels) or 32 px (medium:
32 and 32/64/64; CelebA is not installable here), Adam lr 1e-4 /
1e-4, betas (0.5, 0.9), n_critic 5, batch 64. Fig. 12 too: the c-transform's samples next to the geometric
k-medians centroids of the training set (k = 64, the batch size), with each sample's distance to its
nearest centroid against WGAN-GP's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from wganlab.experiments.base import Claim, Context, Experiment, register, verdict
from wganlab.experiments.common import load_data, sharpness, train_gan
from wganlab.ot.costs import nearest
from wganlab.ot.medians import geometric_kmedians
from wganlab.report.plots import line_plot
from wganlab.train import TrainConfig

METHODS = ("wgan-gp", "ctransform")


@dataclass
class Config:
    data: str = "fashion-mnist:train:n=2000:size=16"  # 16 px: ours, for speed
    fallback: str = "digits:train:size=16"
    steps: int = 500
    track_every: int = 20
    generator: str = "conv"
    g_width: int = 16
    critic: str = "cnn-fc"
    channels: tuple[int, ...] = (16, 32, 32)
    kmedians_init: int = 1  # k-medians restarts for Fig. 12 (the paper: 100)
    note: str = ""  # a remark the runner puts in the report (what stands in for a data set)
    seed: int = 0


PRESETS = {
    "quick": {},
    "medium": {"data": "fashion-mnist:train:n=10000:size=32", "steps": 300, "track_every": 20, "g_width": 32,
               "channels": (32, 64, 64),
               "kmedians_init": 3, "note": "medium: Fashion-MNIST at 32 px stands in for CelebA at 64 px (not "
                                           "installable here), with a DCGAN-style network instead of a StyleGAN"},
    "paper": {"data": "celeba:n=50000:size=64", "steps": 50_000, "track_every": 100,
              "g_width": 64, "channels": (64, 128, 256), "kmedians_init": 100},
}


def run(cfg: Config, ctx: Context) -> dict:
    train = load_data(ctx, cfg.data, fallback=cfg.fallback)
    out, samples = {}, {}
    for method in METHODS:
        tcfg = TrainConfig(data=train.spec, m=None, generator=cfg.generator, g_width=cfg.g_width, critic=cfg.critic,
                           c_channels=cfg.channels, objective=method, lr_g=1e-4, lr_c=1e-4, steps=cfg.steps,
                           track_every=cfg.track_every, track=("batch-w1",), ckpt_every=cfg.steps,
                           grid_every=cfg.steps, seed=cfg.seed)
        result, rows = train_gan(ctx, method, tcfg)
        rows = [r for r in rows if "batch-w1" in r and "estimate" in r]
        est = np.array([r["estimate"] for r in rows])
        w1 = np.array([r["batch-w1"] for r in rows])
        rel = np.abs(est - w1) / w1
        out[method] = {"steps": [r["step"] for r in rows], "estimate": est.tolist(), "batch_w1": w1.tolist(),
                       "median_rel_error": float(np.median(rel[len(rel) // 2:]))}
        with torch.no_grad():
            samples[method] = result.generator.sample(64, torch.Generator().manual_seed(0)).cpu()
        out[method]["sharpness"] = sharpness(samples[method])
        ctx.save_grid(f"samples-{method}.png", samples[method][:32], f"Fig. 7: {method} samples.")
    real_sharp = sharpness(train.x[:512])
    ctx.save_table("tracking", [{"method": m, "step": s, "estimate": e, "batch_w1": w}
                                for m in METHODS for s, e, w in zip(out[m]["steps"], out[m]["estimate"],
                                                                     out[m]["batch_w1"], strict=True)])
    for method in METHODS:
        o = out[method]
        ctx.figure(line_plot(ctx.path(f"tracking-{method}.png"), {
            "exact batch W1": (o["steps"], o["batch_w1"]), "generator loss L_G": (o["steps"], o["estimate"])},
            xlabel="generator step", ylabel="value", title=f"Fig. 6: {method}", markers=False),
            f"{method}: the loss against the exact W1 between the same real and generated batches.")
    km = geometric_kmedians(train.x, 64, n_init=cfg.kmedians_init, seed=cfg.seed).centroids.float()
    ctx.save_grid("fig12.png", torch.cat([samples["ctransform"][:32], km[:32]]),
                  "Fig. 12: c-transform samples (first 4 rows) and geometric k-medians centroids of the training set "
                  "(k = 64; last 4 rows).")
    for method in METHODS:
        d = nearest(samples[method], km).values
        out[method]["to_kmedians_median"] = float(d.median())
    return {"methods": out, "real_sharpness": real_sharp}


def _tracks(m):
    e = {k: v["median_rel_error"] for k, v in m["methods"].items()}
    return verdict(e["ctransform"] <= 0.1 and e["wgan-gp"] >= 3 * e["ctransform"],
                   f"median relative error (second half): c-transform {e['ctransform']:.3f}, "
                   f"WGAN-GP {e['wgan-gp']:.3f}",
                   "holds when the c-transform is within 10% of the batch W1 and WGAN-GP's error is at least 3x "
                   "the c-transform's")


def _blurry(m):
    s = {k: v["sharpness"] for k, v in m["methods"].items()}
    return verdict(s["ctransform"] < s["wgan-gp"],
                   f"Laplacian sharpness: c-transform {s['ctransform']:.4f}, WGAN-GP {s['wgan-gp']:.4f}, data "
                   f"{m['real_sharpness']:.4f}", "holds when the c-transform's samples are less sharp than WGAN-GP's")


EXPERIMENT = register(Experiment(
    name="batch-estimate",
    title="Estimating the batch W1 during training: WGAN-GP vs c-transform",
    source="001 Alg. 3, Fig. 6-7",
    config=Config,
    presets=PRESETS,
    run=run,
    claims=(
        Claim("ctransform-tracks", "The c-transform's loss approximates the batch W1 accurately; WGAN-GP's does not",
              "001 Fig. 6", "", _tracks),
        Claim("ctransform-blurry", "Yet the c-transform WGAN's samples are blurrier than WGAN-GP's", "001 Fig. 7", "",
              _blurry),
    ),
    description=__doc__,
    quick_seconds=53,
    medium_seconds=600,
    paper_time=("1.6 h + the k-medians: 63 ms (WGAN-GP) and 52 ms (c-transform) a step x 50k, measured on one H200; "
                "the geometric k-medians of 50,000 images of 12,288 values (100 starts at k = 64, CPU) about 7 h on "
                "one core, scaled by the data's size from one start on 10,000 of 4,096 (15.9 s; not itself measured)"),
))
