"""The objective interface and the pieces several objectives share.

An objective is an object with one method per update phase, separate from the training loop:

* ``critic_loss(critic, real, fake) -> (loss, stats)`` — minimised by the critic's optimiser
  (``fake`` is detached); ``after_critic_step(critic)`` runs after each critic update (weight clipping);
* ``generator_loss(critic, real, fake, diagnose=True) -> (loss, stats)`` — minimised by the generator's
  optimiser; with ``diagnose=False`` it skips the statistics that cost extra passes (the trainer asks for
  them only at the steps it records), with the same loss and the same random numbers drawn.

``stats`` holds ``estimate`` (in a generator step: when diagnosing): the objective's own estimate of the
distance it claims to minimise, in the paper's sense (a WGAN critic's ``E D(real) - E D(fake)``, a
c-transform's dual value, the Sinkhorn divergence, ...). Critics meant to be 1-Lipschitz also report
``lipschitz``, the lower bound ``L = max ||grad D(x)||`` over interpolates between the batches (Stanczuk
et al., Remark 3), and ``normalised = estimate / L``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import nn
from torch.nn.utils import parametrize


def backward(optimizer: torch.optim.Optimizer, loss_fn: Callable[..., tuple[torch.Tensor, dict]], *args
             ) -> tuple[torch.Tensor, dict]:
    """``loss, stats = loss_fn(*args)`` (a ``critic_loss`` or ``generator_loss``), then zero ``optimizer``'s
    gradients and back-propagate ``loss`` into ``optimizer``'s parameters only (the other model's weights
    and the penalty's interpolates get no gradient computed), all inside ``parametrize.cached()``: a
    parametrized weight (e.g. a GroupSort critic's orthonormalised one) is computed once per step, not once
    per forward pass."""
    with parametrize.cached():
        loss, stats = loss_fn(*args)
        optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=[p for group in optimizer.param_groups for p in group["params"]])
    return loss, stats


class Objective:
    name: ClassVar[str] = ""
    needs_critic: ClassVar[bool] = True
    #: the objective's parameters: constructor argument -> the training config's field holding it
    config: ClassVar[dict[str, str]] = {}

    def bind(self, train_x: torch.Tensor) -> None:
        """Receive the whole training set (only objectives that need it, e.g. the assignment method)."""

    def critic_loss(self, critic: nn.Module, real: torch.Tensor, fake: torch.Tensor):
        raise NotImplementedError

    def after_critic_step(self, critic: nn.Module) -> None:
        """Hook run after every critic update."""

    def generator_loss(self, critic: nn.Module | None, real: torch.Tensor, fake: torch.Tensor,
                       diagnose: bool = True):
        raise NotImplementedError


def interpolation_weights(real: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One ``alpha ~ U[0, 1]`` per sample of ``real (B, ...)``, shaped ``(B, 1, ..., 1)``."""
    shape = (len(real),) + (1,) * (real.ndim - 1)
    return torch.rand(shape, generator=generator, device=real.device, dtype=real.dtype)


def interpolates(real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None):
    """``x_hat = alpha * real + (1 - alpha) * fake`` with one ``alpha ~ U[0, 1]`` per sample, ``(B, ...)``."""
    alpha = interpolation_weights(real, generator)
    return alpha * real + (1 - alpha) * fake


def gradient_norms(critic: nn.Module, x: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
    """``||grad_x D(x_b)||_2`` per sample (gradient flattened over all pixels and channels), ``(B,)``: the critic's
    own ``input_gradient`` where it has one (the CNN critics), else autograd's."""
    x = x.detach()
    if hasattr(critic, "input_gradient"):
        with torch.enable_grad() if create_graph else torch.no_grad():
            grad = critic.input_gradient(x)
    else:
        (grad,) = torch.autograd.grad(critic(x.requires_grad_(True)).sum(), x, create_graph=create_graph)
    return grad.flatten(1).norm(dim=1)


def lipschitz_stats(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, estimate: float,
                    diagnose: bool = True) -> dict:
    """``estimate``, the lower bound ``L = max ||grad D||`` over interpolates, and ``estimate / L``; without
    ``diagnose`` only ``estimate`` (the interpolates are still drawn: a run's random numbers do not depend on
    which steps are recorded)."""
    x_hat = interpolates(real, fake)
    if not diagnose:
        return {"estimate": estimate}
    with torch.enable_grad():
        lip = float(gradient_norms(critic, x_hat).max().detach())
    return {"estimate": estimate, "lipschitz": lip, "normalised": estimate / max(lip, 1e-12)}


def distinct_samples(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(x[first], inverse)``: the distinct samples of ``x (B, ...)`` at their first occurrences, in batch order,
    and each sample's index among them (``x == x[first][inverse]``); ``(x, None)`` when all are distinct. A batch
    drawn from a discrete generator's M atoms repeats them (64 draws of 64 hold about 41 distinct), so a critic
    scores it in about two thirds of the work. Indexing keeps the graph: a repeat's gradient goes to its first
    occurrence, the same function of the generator's parameters."""
    distinct, inverse = torch.unique(x.detach().flatten(1), dim=0, return_inverse=True)
    k = len(distinct)
    if k == len(x):
        return x, None
    pos = torch.arange(len(x), device=x.device)
    first = torch.full((k,), len(x), device=x.device).scatter_reduce_(0, inverse, pos, "amin")
    first, order = first.sort()
    rank = torch.empty_like(order)
    rank[order] = torch.arange(k, device=x.device)
    return x[first], rank[inverse]


def critic_scores(critic: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``D(x) (B,)``, the critic run once per distinct sample of ``x`` (:func:`distinct_samples`)."""
    xd, inverse = distinct_samples(x)
    d = critic(xd)
    return d if inverse is None else d[inverse]


def critic_gap(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """``V = E D(real) - E D(fake)``: a 1-Lipschitz critic's estimate of W1 between the batches, ``D(fake)`` once per
    distinct generated sample (:func:`critic_scores`). In a critic step (``fake`` detached) a critic with
    ``joint_batches = True`` scores both batches in one forward pass (each sample is scored on its own, so the
    values are the same); in a generator step ``D(real)`` is a constant, scored without a graph."""
    if fake.requires_grad:
        with torch.no_grad():
            d_real = critic(real).mean()
        return d_real - critic_scores(critic, fake).mean()
    if getattr(critic, "joint_batches", False):
        fd, inverse = distinct_samples(fake)
        scores = critic(torch.cat([real, fd]))
        d_fake = scores[len(real):] if inverse is None else scores[len(real):][inverse]
        return scores[:len(real)].mean() - d_fake.mean()
    return critic(real).mean() - critic_scores(critic, fake).mean()
