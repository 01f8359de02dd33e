"""The ``train-*`` bench cases: one generator step with its ``n_critic`` critic steps of wganlab's
:class:`~wganlab.train.Trainer` against :func:`~wganlab.bench.baselines.plain_train_steps`, a plain PyTorch
loop of the same models, losses and random numbers, at the authors' setting (batch 64, a discrete FC
generator with M = 64 latents of dimension 64, Adam betas (0.5, 0.9), n_critic 5) on Fashion-MNIST
resized to ``side`` x ``side``. One case per objective and critic (FC 1024, CNN-GAP and CNN-FC 64-128-256,
GroupSort 3 x 256); Sinkhorn has no critic, and Sinkhorn and the assignment method have no plain loop (wganlab
only)."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import numpy as np

from wganlab.bench import timing
from wganlab.bench.baselines import PLAIN_OBJECTIVES, plain_critic, plain_train_steps
from wganlab.bench.cases import register_case
from wganlab.bench.timing import PairedTimer, timed_row

OBJECTIVES = ("wgan-gp", "wgan-wc", "ctransform", "ceps-transform", "nsgan", "sinkhorn", "assignment")
CRITICS = ("fc", "cnn-gap", "cnn-fc", "groupsort")
#: the GroupSort critic's size (:class:`GroupSortCritic`'s defaults): at 64x64 an orthonormalised 1024 x 4096
#: first layer costs about 170 G multiply-adds per Björck pass (20 iterations),
#: minutes per step
GROUPSORT = {"c_hidden": 256, "c_depth": 3}
#: the default bench's representative subset (``--full`` runs every case)
DEFAULT = ("train-wgan-gp-fc", "train-wgan-gp-cnn-gap", "train-ctransform-fc")


def make_trainer(objective: str, critic: str, data: str, data_root: str | None, run_dir: Path, **cfg):
    """A :class:`Trainer` at the authors' setting (``cfg`` overrides any :class:`TrainConfig` field)."""
    from wganlab.train import TrainConfig, Trainer

    settings = {"data": data, "data_root": data_root, "objective": objective, "critic": critic,
                "c_channels": (64, 128, 256), "track": (), "device": "cpu",
                **(GROUPSORT if critic == "groupsort" else {}), **cfg}
    return Trainer(TrainConfig(**settings), run_dir)


def plain_steps(trainer, state: dict, iters: int):
    """:func:`plain_train_steps` from ``state`` (a :meth:`Trainer.state`) on copies of its models:
    ``(losses, generator, critic)``."""
    import torch

    cfg = trainer.cfg
    G, D = copy.deepcopy(trainer.G), plain_critic(trainer.D)
    G.load_state_dict(state["generator"])
    D.load_state_dict(state["critic"])
    rng_data, rng_latent = torch.Generator().set_state(state["rng"]["data"]), torch.Generator()
    rng_latent.set_state(state["rng"]["latent"])
    torch.set_rng_state(state["rng"]["torch"])
    losses = plain_train_steps(G, D, trainer.x, cfg.objective, iters=iters, n_critic=cfg.n_critic,
                               batch=cfg.batch, lr_g=cfg.lr_g, lr_c=cfg.lr_c, betas=(cfg.beta1, cfg.beta2),
                               rng_data=rng_data, rng_latent=rng_latent, gp_lambda=cfg.gp_lambda, clip=cfg.clip,
                               eps=cfg.eps)
    return losses, G, D


def trainer_steps(trainer, state: dict, iters: int) -> list[float]:
    """``iters`` :meth:`Trainer.iteration` calls from ``state``, as training runs them between recorded steps
    (no extra-pass diagnostics): each one's last critic and generator loss."""
    trainer.load_state(state)
    out = []
    for _ in range(iters):
        stats = trainer.iteration(diagnose=False)
        out += [stats["critic_loss"]] if "critic_loss" in stats else []
        out.append(stats["generator_loss"])
    return out


def _train_row(ctx: PairedTimer, objective: str, critic: str, side: int, iters: int, n: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(objective, critic, f"{timing.DATASET}:train:n={n}:size={side}", ctx.data_root,
                               Path(tmp))
        start = copy.deepcopy(trainer.state())
        plain = objective in PLAIN_OBJECTIVES
        t = ctx.time(lambda state: trainer_steps(trainer, state, iters),
                     (lambda state: plain_steps(trainer, state, iters)[0]) if plain else None,
                     fresh=lambda: copy.deepcopy(start))
    nc = trainer.cfg.n_critic if trainer.D is not None else 0
    diff = None
    if plain:  # the baseline's losses at the steps wganlab reports: each iteration's last critic and generator step
        keep = [i * (nc + 1) + j for i in range(iters) for j in (nc - 1, nc)]
        want = np.array([t["base"][k] for k in keep])
        diff = float(np.abs(np.array(t["ours"]) - want).max() / np.abs(want).max())
    t = {**t, "ours_s": t["ours_s"] / iters, "base_s": None if t["base_s"] is None else t["base_s"] / iters}
    note = f"seconds per generator step with its {nc} critic steps, {side}x{side}, batch 64, M = 64"
    if plain:
        note += "; value diff: largest loss difference over the largest |loss|"
    if nc:
        note += f"; wganlab {nc / t['ours_s']:.2f} critic steps/s"
    if not plain:
        note += "; no plain loop written for this objective"
    return timed_row(t, f"{side}x{side}, {iters} it.", diff, note=note)


def _train_case(ctx: PairedTimer, objective: str, critic: str, sides: tuple, iters: int, n: int) -> list[dict]:
    return [_train_row(ctx, objective, critic, side, iters, n) for side in sides]


def _register() -> None:
    for objective in OBJECTIVES:
        for critic in CRITICS if objective != "sinkhorn" else ("fc",):
            name = f"train-{objective}" + (f"-{critic}" if objective != "sinkhorn" else "")
            what = f"critic {critic}" if objective != "sinkhorn" else "no critic"
            register_case(
                name, f"one generator step with its critic steps, {objective}, {what}, batch 64, discrete FC "
                "generator (M = 64)", "plain PyTorch loop" if objective in PLAIN_OBJECTIVES else "none",
                full={"sides": (64, 28)}, in_default=name in DEFAULT, sides=(64,), iters=2, n=1000,
            )(lambda ctx, _o=objective, _c=critic, **sizes: _train_case(ctx, _o, _c, **sizes))


_register()
