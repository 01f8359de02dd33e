"""c-transform WGANs (Mallasto et al. eq. 6; Stanczuk et al. eq. 3.4 and section 6.1).

The critic ``phi`` is evaluated on the generated batch ``x_1..x_n``; its batch c-transform over that batch
is evaluated at the real batch ``y_1..y_n``:

    phi^c(y_i) = min_j c(x_j, y_i) - phi(x_j),        V = mean_j phi(x_j) + mean_i phi^c(y_i).

``(phi, phi^c)`` is admissible, so ``V <= OT_c(batch_x, batch_y)`` with equality when ``phi`` is a
Kantorovich potential of the two batches: the critic maximises ``V`` without any Lipschitz constraint,
and ``V`` is its estimate of the *batch* W1. The (c, eps)-transform replaces the min by the soft-min
``-eps log mean_j exp((phi(x_j) - c(x_j, y_i)) / eps)``, making ``V`` the semi-dual of entropic OT.
The generator minimises ``V`` (through both ``phi(x_j)`` and the costs).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from wganlab.objectives.base import Objective, critic_scores
from wganlab.ot.costs import cost_matrix
from wganlab.ot.sinkhorn import soft_c_transform


class CTransform(Objective):
    name = "ctransform"
    config: ClassVar[dict[str, str]] = {"cost": "cost"}

    def __init__(self, cost: str = "euclidean"):
        self.cost = cost

    def transform(self, phi_x: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
        """``phi^c(y_i) = min_j C_ji - phi(x_j)`` for ``C (n_x, n_y)``, ``(n_y,)``."""
        return (C - phi_x[:, None]).min(0).values

    def value(self, critic, real, fake) -> torch.Tensor:
        phi_x = critic_scores(critic, fake)
        C = cost_matrix(fake, real, self.cost, dtype=None)
        return phi_x.mean() + self.transform(phi_x, C).mean()

    def critic_loss(self, critic, real, fake):
        v = self.value(critic, real, fake)
        return -v, {"estimate": float(v.detach())}

    def generator_loss(self, critic, real, fake, diagnose=True):
        v = self.value(critic, real, fake)
        return v, {"estimate": float(v.detach())}


class EntropicCTransform(CTransform):
    """The (c, eps)-transform: a soft-min over the generated batch with temperature ``eps``."""

    name = "ceps-transform"
    config: ClassVar[dict[str, str]] = {"eps": "eps", "cost": "cost"}

    def __init__(self, eps: float = 1.0, cost: str = "euclidean"):
        super().__init__(cost)
        self.eps = eps

    def transform(self, phi_x, C):
        w = torch.full_like(phi_x, 1.0 / len(phi_x))
        return soft_c_transform(phi_x, C.T, self.eps, w)
