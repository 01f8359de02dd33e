"""Kantorovich-Rubinstein WGANs: weight clipping (Arjovsky et al. 2017) and gradient penalty
(Gulrajani et al. 2017). The critic maximises ``V = E D(real) - E D(fake)`` under a Lipschitz
constraint; the generator minimises ``V`` (Stanczuk et al. Algorithm 1, ``L_G = V``)."""

from __future__ import annotations

from typing import ClassVar

import torch

from wganlab.objectives.base import Objective, critic_gap, gradient_norms, interpolates, lipschitz_stats


class WeightClipping(Objective):
    """Critic loss ``-V``; after every critic step all critic weights are clipped to ``[-clip, clip]``."""

    name = "wgan-wc"
    config: ClassVar[dict[str, str]] = {"clip": "clip"}

    def __init__(self, clip: float = 0.01):
        self.clip = clip

    def critic_loss(self, critic, real, fake):
        v = critic_gap(critic, real, fake)
        return -v, {"estimate": float(v.detach())}

    def after_critic_step(self, critic):
        with torch.no_grad():
            for p in critic.parameters():
                p.clamp_(-self.clip, self.clip)

    def generator_loss(self, critic, real, fake, diagnose=True):
        v = critic_gap(critic, real, fake)
        return v, lipschitz_stats(critic, real.detach(), fake.detach(), float(v.detach()), diagnose)


class GradientPenalty(Objective):
    """Critic loss ``-V + lam * E_xhat (||grad D(xhat)|| - 1)^2`` with one interpolation coefficient per
    sample and the gradient norm taken per sample over the flattened image."""

    name = "wgan-gp"
    config: ClassVar[dict[str, str]] = {"lam": "gp_lambda"}

    def __init__(self, lam: float = 10.0):
        self.lam = lam

    def penalty(self, critic, real, fake, create_graph: bool = True):
        """``(E (||grad D(xhat)|| - 1)^2, ||grad D(xhat)|| per sample)``."""
        norms = gradient_norms(critic, interpolates(real, fake), create_graph=create_graph)
        return ((norms - 1) ** 2).mean(), norms

    def critic_loss(self, critic, real, fake):
        v = critic_gap(critic, real, fake)
        gp, norms = self.penalty(critic, real, fake, create_graph=self.lam != 0)  # lam = 0: statistics only
        lip, est = float(norms.max().detach()), float(v.detach())
        loss = -v + self.lam * gp if self.lam != 0 else -v
        return loss, {"estimate": est, "penalty": float(gp.detach()), "lipschitz": lip,
                      "normalised": est / max(lip, 1e-12)}

    def generator_loss(self, critic, real, fake, diagnose=True):
        v = critic_gap(critic, real, fake)
        return v, lipschitz_stats(critic, real.detach(), fake.detach(), float(v.detach()), diagnose)
