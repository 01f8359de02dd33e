"""Pieces several experiments share: data with a visible fallback, critic fitting on fixed sets, GAN runs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from wganlab import data
from wganlab.errors import DatasetError, TrainingDiverged
from wganlab.experiments.base import Context
from wganlab.objectives import GradientPenalty, backward, gradient_norms, interpolates
from wganlab.runs import read_jsonl
from wganlab.train import build_optimizer


def load_data(ctx: Context, spec: str, fallback: str | None = None, seed: int | None = None) -> data.Dataset:
    """``data.load(spec)``; when its files are missing, load ``fallback`` instead and say so in the report.
    A ``paper`` preset never falls back: the loader's error, which says where to put the files, stops the run
    (fallbacks are for ``quick`` and ``medium``)."""
    try:
        return data.load(spec, ctx.data_root, seed=ctx.seed if seed is None else seed)
    except DatasetError as e:
        if fallback is None:
            raise
        if ctx.preset == "paper":
            raise DatasetError(f"{e} (the paper preset uses no stand-in; fallbacks are for quick and medium)") from e
        ctx.note(f"{spec} is not available here ({e}); using {fallback} instead")
        return data.load(fallback, ctx.data_root, seed=ctx.seed if seed is None else seed)


def heldout_spec(ds: data.Dataset, n: int | None = None) -> str:
    """The spec of ``ds``'s held-out (test) split, with ``n`` points (all when None)."""
    return str(data.parse_spec(ds.spec).replace(split="test", n=n))


def batch_sampler(x: torch.Tensor, batch: int, generator: torch.Generator) -> Callable[[], torch.Tensor]:
    """A function returning a random batch of rows of ``x`` (with replacement) on each call."""

    def sample() -> torch.Tensor:
        return x[torch.randint(len(x), (batch,), generator=generator, device=x.device)]

    return sample


def fit_critic(objective, critic: torch.nn.Module, sample_p: Callable, sample_q: Callable, steps: int,
               optimizer: torch.optim.Optimizer, *, log_every: int = 0, progress: bool = False,
               desc: str = "critic") -> list[dict]:
    """Train ``critic`` alone on two fixed distributions (``p`` plays "real", ``q`` "fake"): ``steps``
    critic updates of ``objective`` on fresh batches (Stanczuk et al. Algorithm 2, Mallasto et al.).
    Returns the logged ``{"step", **stats}`` rows."""
    log = []
    for step in tqdm(range(1, steps + 1), desc=desc, disable=None if progress else True):
        _, stats = backward(optimizer, objective.critic_loss, critic, sample_p(), sample_q())
        optimizer.step()
        objective.after_critic_step(critic)
        if log_every and (step % log_every == 0 or step == steps):
            log.append({"step": step, **stats})
    return log


def lipschitz_bound(critic, p: torch.Tensor, q: torch.Tensor, batches: int = 20, batch: int = 256) -> float:
    """``max ||grad D||`` over interpolates between random pairs of points of ``p`` and ``q`` (Remark 3)."""
    g = torch.Generator(device=p.device).manual_seed(0)
    best = 0.0
    for _ in range(batches):
        i = torch.randint(len(p), (batch,), generator=g, device=p.device)
        j = torch.randint(len(q), (batch,), generator=g, device=p.device)
        best = max(best, float(gradient_norms(critic, interpolates(p[i], q[j], g)).max()))
    return best


def oracle_estimate(critic: torch.nn.Module, p: torch.Tensor, q: torch.Tensor, *, lam: float, iterations: int,
                    batch: int, lr: float, seed: int, log_every: int = 0, progress: bool = False,
                    desc: str = "critic") -> tuple[dict, list[dict]]:
    """Stanczuk et al. Algorithm 2: train ``critic`` by WGAN-GP (weight ``lam``, Adam ``lr``, betas (0.5, 0.9))
    on batches of two fixed sets ``p``, ``q``, then ``W1^D = E_p D - E_q D`` on the full sets, the bound
    ``L = max ||grad D||`` and ``W1^D / L``, on the device of ``p`` and ``q`` (the critic is moved there).
    Returns ``({"estimate", "lipschitz", "normalised"}, log rows)``."""
    critic.to(p.device)
    g = torch.Generator(device=p.device).manual_seed(seed)
    opt = build_optimizer("adam", critic.parameters(), lr=lr, betas=(0.5, 0.9))
    log = fit_critic(GradientPenalty(lam), critic, batch_sampler(p, batch, g), batch_sampler(q, batch, g),
                     iterations, opt, log_every=log_every, progress=progress, desc=desc)
    with torch.no_grad():
        est = float(critic(p).mean() - critic(q).mean())
    lip = lipschitz_bound(critic, p, q)
    return {"estimate": est, "lipschitz": lip, "normalised": est / max(lip, 1e-12)}, log


def train_gan(ctx: Context, name: str, cfg, progress: bool | None = None):
    """Run :func:`wganlab.train.train` with ``cfg`` into ``ctx.dir/<name>/``; returns the result and its
    metrics rows. A diverged run raises :class:`TrainingDiverged` (its last good checkpoint stays in the
    folder), so the experiment is recorded as failed."""
    from wganlab.config import to_dict
    from wganlab.runs import write_json
    from wganlab.train import Trainer

    run_dir = ctx.path(name)
    run_dir.mkdir(exist_ok=True)
    cfg = dataclasses.replace(cfg, out=str(ctx.dir), device=ctx.device, data_root=ctx.data_root)
    write_json(run_dir / "config.json", to_dict(cfg))
    result = Trainer(cfg, run_dir).run(ctx.progress if progress is None else progress)
    if result.status == "diverged":
        good = result.final.get("last_good_step")
        raise TrainingDiverged(f"training run {name!r} diverged (NaN/inf loss or weights) at step "
                               f"{result.final.get('diverged_at')}; "
                               + (f"its last good checkpoint (step {good}) is kept in {run_dir}" if good is not None
                                  else "it had written no checkpoint yet"))
    return result, read_jsonl(run_dir / "metrics.jsonl")


def sharpness(x: torch.Tensor) -> float:
    """Mean absolute 3x3 Laplacian response of images ``(N, C, H, W)``: high for sharp edges, low for blur."""
    k = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=x.dtype, device=x.device)
    c = x.shape[1]
    lap = torch.nn.functional.conv2d(x, k.expand(c, 1, 3, 3), groups=c)
    return float(lap.abs().mean())


def diversity(x: torch.Tensor) -> float:
    """Mean Euclidean distance between distinct points of ``x`` (0 for a collapsed set)."""
    d = torch.cdist(x.flatten(1).double(), x.flatten(1).double())
    n = len(x)
    return float(d.sum() / max(1, n * (n - 1)))
