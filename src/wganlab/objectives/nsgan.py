"""The non-saturating GAN (Goodfellow et al. 2014), used by the Lipschitz-critic experiment.

Critic (logit ``D``) loss ``softplus(-D(real)) + softplus(D(fake))`` (binary cross-entropy); generator loss
``softplus(-D(fake))``. Its estimate is the value function ``E log sigmoid(D(real)) + E log(1 -
sigmoid(D(fake)))`` ``= 2 JS - log 4`` at the optimal critic (Jensen-Shannon, not a Wasserstein distance).
"""

from __future__ import annotations

from torch.nn import functional as F

from wganlab.objectives.base import Objective, critic_scores


class NonSaturating(Objective):
    name = "nsgan"

    def critic_loss(self, critic, real, fake):
        loss = F.softplus(-critic(real)).mean() + F.softplus(critic_scores(critic, fake)).mean()
        return loss, {"estimate": -float(loss.detach())}

    def generator_loss(self, critic, real, fake, diagnose=True):
        d_fake = critic_scores(critic, fake)
        loss = F.softplus(-d_fake).mean()
        if not diagnose:
            return loss, {}
        value = -float((F.softplus(-critic(real)).mean() + F.softplus(d_fake).mean()).detach())
        return loss, {"estimate": value}
