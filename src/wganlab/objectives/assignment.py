"""The assignment method (Laschos, Tinapp & Obermayer, sections 3 and 5, Algorithm 1).

An *assigner* network ``psi`` lives on the real points ``y_1..y_M`` (the whole training set). Each
generated point ``x`` is assigned to

    y(x) = argmin_j  c(x, y_j) + psi(y_j)                  (eq. 9, over the whole set, in blocks)

and the assigner maximises the dual value ``F(psi) = mean_i [c(x_i, y(x_i)) + psi(y(x_i))] - mean_j
psi(y_j) <= OT_c(generated, real)``, whose gradient is that of eq. 13,

    sum_j (count_j / N - 1 / M) psi(y_j),

so ``psi`` rises at over-assigned real points and falls at under-assigned ones; it stops when every
real point receives ``N / M`` generated points (Remark 3.2), and then the assignment is an optimal plan
(Theorem 3.3). The generator minimises ``mean_i c_g(x_i, y(x_i))`` with the assignments held fixed.
Any cost of :mod:`wganlab.ot.costs` works (Euclidean: W1; squared Euclidean: W2^2; SSIM; PSNR), and
the generator's cost ``c_g`` may differ from the assigner's (the reference code assigns with PSNR and
trains the generator with SSIM). ``cost_scale`` multiplies the assigner's cost: section 5 scales it to a
unit diameter of the space (:func:`unit_diameter_scale`); the reference code uses 0.1 x squared Euclidean.
How many generated points the assigner sees per update is the training batch (Alg. 1's ``m``; section 5:
about 10x the training set).

:class:`SmoothAssignment` is section 4's first attempt: small batches of real and generated points, the
infimum replaced by a LogSumExp soft-min so it is differentiable. The paper reports that it works on
low-dimensional data with few nodes but gives blurred, idealised digits on MNIST.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from wganlab.errors import ConfigError
from wganlab.objectives.base import Objective
from wganlab.ot.costs import cost_matrix, nearest, paired_cost


def assignment_stats(counts: torch.Tensor, n_generated: int) -> dict:
    """Balance of an assignment of ``n_generated`` points to ``M = len(counts)`` real points.

    ``assignment_variance`` is eq. 16, ``mean_j |count_j - K|`` with ``K = n_generated / M`` the
    balanced count (K = 10 in the paper's evaluation with 10x generated points);
    ``assignment_variance_rel`` divides it by ``K`` so runs with different oversampling compare.
    """
    k = n_generated / len(counts)
    dev = float((counts.double() - k).abs().mean())
    return {"never_assigned": int((counts == 0).sum()), "assignment_variance": dev,
            "assignment_variance_rel": dev / k, "max_count": int(counts.max())}


def unit_diameter_scale(cost, x: torch.Tensor, value_range: tuple[float, float] | None = None) -> float:
    """``1 / c(lo, hi)``: the factor that scales ``cost`` to unit diameter (Laschos et al., section 5) on the
    box ``[lo, hi]`` holding points shaped like ``x (N, ...)``. ``value_range``: the known value range of
    every coordinate (images: ``(-1, 1)``); None: the per-coordinate min and max of ``x``. Between opposite
    corners lies the box's diameter for L1, L2 and squared L2 and PSNR's largest cost (the largest MSE);
    for SSIM it is the cost between the all-black and all-white images, close to its bound 2."""
    if value_range is None:
        lo, hi = x.amin(0, keepdim=True), x.amax(0, keepdim=True)
    else:
        lo, hi = torch.full_like(x[:1], value_range[0]), torch.full_like(x[:1], value_range[1])
    diameter = float(paired_cost(lo, hi, cost))
    if not diameter > 0:
        raise ConfigError(f"the data's box has zero diameter under cost {cost!r}: all points are equal")
    return 1.0 / diameter


class Assignment(Objective):
    name = "assignment"
    config: ClassVar[dict[str, str]] = {"cost": "cost", "generator_cost": "generator_cost", "cost_scale": "cost_scale"}

    def __init__(self, cost: str = "sqeuclidean", generator_cost: str | None = None, cost_scale: float = 1.0):
        self.cost, self.generator_cost, self.cost_scale = cost, generator_cost or cost, cost_scale
        self.y: torch.Tensor | None = None

    def bind(self, train_x: torch.Tensor) -> None:
        self.y = train_x

    def _cost(self, x, y):
        return self.cost_scale * cost_matrix(x, y, self.cost, dtype=None)

    def _real(self) -> torch.Tensor:
        if self.y is None:
            raise ConfigError("the assignment objective needs the training set: call bind(train_x) first")
        return self.y

    def critic_loss(self, assigner, real, fake):
        y = self._real()
        psi = assigner(y)  # (M,)
        idx = nearest(fake, y, self._cost, psi=psi.detach(), dtype=None).indices
        counts = torch.bincount(idx, minlength=len(y))
        excess = counts.to(psi.dtype) / len(fake) - 1.0 / len(y)
        loss = -(excess * psi).sum()  # minus eq. 13: the assigner ascends the dual
        with torch.no_grad():
            c = self.cost_scale * paired_cost(fake, y[idx], self.cost)
            value = float(c.mean() + psi[idx].mean() - psi.mean())
        return loss, {"estimate": value, **assignment_stats(counts, len(fake))}

    def generator_loss(self, assigner, real, fake, diagnose=True):
        y = self._real()
        with torch.no_grad():
            psi = assigner(y)
        idx = nearest(fake.detach(), y, self._cost, psi=psi, dtype=None).indices
        loss = paired_cost(fake, y[idx], self.generator_cost).mean()
        return loss, {"estimate": float(loss.detach())}


class SmoothAssignment(Objective):
    """Section 4's small-batch variant. On a real batch ``y_1..y_B`` and a generated batch ``x_1..x_n``,
    with ``C_ij = cost_scale * c(x_i, y_j) + psi(y_j)``, the hard assignment becomes the soft-min

        s_i = -eps log (1/B) sum_j exp(-C_ij / eps)        (LogSumExp; -> min_j C_ij as eps -> 0)

    The assigner ascends ``F = mean_i s_i - mean_j psi(y_j)``; the generator descends ``mean_i s_i`` with
    ``psi`` fixed (its gradient reaches ``x`` through the costs, weighted by the soft assignment)."""

    name = "assignment-lse"
    config: ClassVar[dict[str, str]] = {"cost": "cost", "eps": "eps", "cost_scale": "cost_scale"}

    def __init__(self, cost: str = "sqeuclidean", eps: float = 0.01, cost_scale: float = 1.0):
        if not eps > 0:
            raise ConfigError(f"the LogSumExp temperature eps must be > 0, got {eps}")
        self.cost, self.eps, self.cost_scale = cost, eps, cost_scale

    def soft_min(self, psi: torch.Tensor, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """``s_i`` above for every generated point, ``(n,)``."""
        c = self.cost_scale * cost_matrix(fake, real, self.cost, dtype=None) + psi[None, :]
        return -self.eps * (torch.logsumexp(-c / self.eps, dim=1) - math.log(len(real)))

    def critic_loss(self, assigner, real, fake):
        psi = assigner(real)
        value = self.soft_min(psi, real, fake).mean() - psi.mean()
        return -value, {"estimate": float(value.detach())}

    def generator_loss(self, assigner, real, fake, diagnose=True):
        with torch.no_grad():
            psi = assigner(real)
        loss = self.soft_min(psi, real, fake).mean()
        return loss, {"estimate": float(loss.detach())}
