"""The Sinkhorn generator (Genevay et al.; Fatras et al.; Stanczuk et al. section 6.2): no critic; the
generator minimises the debiased Sinkhorn divergence ``S_eps`` between a generated and a real batch,
computed to convergence for every batch ("optimal discriminator dynamics")."""

from __future__ import annotations

from typing import ClassVar

from wganlab.objectives.base import Objective
from wganlab.ot.sinkhorn import sinkhorn_divergence


class SinkhornGenerator(Objective):
    name = "sinkhorn"
    needs_critic = False
    config: ClassVar[dict[str, str]] = {"eps": "eps", "cost": "cost"}

    def __init__(self, eps: float = 1.0, cost: str = "euclidean"):
        self.eps, self.cost = eps, cost

    def generator_loss(self, critic, real, fake, diagnose=True):
        s = sinkhorn_divergence(fake, real, self.eps, cost=self.cost)
        return s, {"estimate": float(s.detach())}
