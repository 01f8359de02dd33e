"""Kantorovich-Rubinstein WGANs: weight clipping (Arjovsky et al. 2017) and gradient penalty
(Gulrajani et al. 2017). The critic maximises ``V = E D(real) - E D(fake)`` under a Lipschitz
constraint; the generator minimises ``V`` (Stanczuk et al. Algorithm 1, ``L_G = V``)."""

from __future__ import annotations

from typing import ClassVar

import torch

from wganlab.objectives.base import (
    Objective,
    critic_gap,
    gradient_norms,
    interpolates,
    interpolation_weights,
    lipschitz_stats,
)


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
    sample and the gradient norm taken per sample over the flattened image. A critic of one hidden layer (an
    FC critic of depth 1, the papers' FC critic) takes the closed form of :class:`_OneHiddenLayerLoss`, others
    autograd's double backward."""

    name = "wgan-gp"
    config: ClassVar[dict[str, str]] = {"lam": "gp_lambda"}

    def __init__(self, lam: float = 10.0):
        self.lam = lam

    def penalty(self, critic, real, fake, create_graph: bool = True):
        """``(E (||grad D(xhat)|| - 1)^2, ||grad D(xhat)|| per sample)``."""
        norms = gradient_norms(critic, interpolates(real, fake), create_graph=create_graph)
        return ((norms - 1) ** 2).mean(), norms

    def critic_loss(self, critic, real, fake):
        layers = getattr(critic, "one_hidden_layer", lambda: None)()
        if layers is not None and len(real) == len(fake) and not (real.requires_grad or fake.requires_grad):
            lin1, slope, lin2 = layers
            alpha = interpolation_weights(real).reshape(-1, 1)  # the draws interpolates(real, fake) makes
            loss, v, gp, norms = _OneHiddenLayerLoss.apply(torch.cat([real, fake]).flatten(1), alpha, lin1.weight,
                                                           lin1.bias, lin2.weight, lin2.bias, slope, self.lam)
        else:
            v = critic_gap(critic, real, fake)
            gp, norms = self.penalty(critic, real, fake, create_graph=self.lam != 0)  # lam = 0: statistics only
            loss = -v + self.lam * gp if self.lam != 0 else -v
        lip, est = float(norms.max().detach()), float(v.detach())
        return loss, {"estimate": est, "penalty": float(gp.detach()), "lipschitz": lip,
                      "normalised": est / max(lip, 1e-12)}

    def generator_loss(self, critic, real, fake, diagnose=True):
        v = critic_gap(critic, real, fake)
        return v, lipschitz_stats(critic, real.detach(), fake.detach(), float(v.detach()), diagnose)


class _OneHiddenLayerLoss(torch.autograd.Function):
    """The WGAN-GP critic loss of a one-hidden-layer critic ``D(x) = w2 . sigma(W1 x + b1) + b2`` (``sigma`` of
    slope 1 above 0 and ``slope`` below), and its parameter gradient in closed form: autograd's values (up to
    float32 rounding) in 6 instead of 8 products of the batch with ``W1``.

    ``x (2B, d)``: real, then fake; ``alpha (B, 1)``: the interpolation weights. The first layer is affine, so at
    ``x_hat = alpha real + (1 - alpha) fake`` it is ``z_hat = alpha z_real + (1 - alpha) z_fake`` (no product).
    With the slopes ``S`` of the hidden units at ``x_hat`` held constant (as
    :class:`~wganlab.models.critics.PiecewiseLinear` does), ``grad D(x_hat) = (S * w2) W1``; with ``n`` its norm
    per row, ``loss = -(mean D(real) - mean D(fake)) + lam mean (n - 1)^2``. For ``R = (2 lam / B) (n - 1) / n
    grad D(x_hat)`` and ``T = S^T R (H, d)``: ``dL/dW1 = dZ^T x + w2^T * T``, ``dL/dw2 = dscore^T sigma(Z) +
    sum_i W1 * T``. Returns ``(loss, V, penalty, n)``."""

    @staticmethod
    def forward(ctx, x, alpha, w1, b1, w2, b2, slope: float, lam: float):
        B = len(x) // 2
        z = torch.addmm(b1, x, w1.t())
        z_hat = alpha * z[:B] + (1 - alpha) * z[B:]
        s, s_hat = ((t > 0).to(t.dtype).mul_(1 - slope).add_(slope) for t in (z, z_hat))
        a = z * s
        scores = torch.addmm(b2, a, w2.t()).squeeze(1)
        v = scores[:B].mean() - scores[B:].mean()
        g = (s_hat * w2) @ w1
        n = torch.linalg.vector_norm(g, dim=1)
        gp = ((n - 1) ** 2).mean()
        ctx.save_for_backward(x, w1, w2, a, s, s_hat, g, n)
        ctx.lam = lam
        ctx.mark_non_differentiable(v, gp, n)
        return -v + lam * gp, v, gp, n

    @staticmethod
    def backward(ctx, dloss, *_):
        x, w1, w2, a, s, s_hat, g, n = ctx.saved_tensors
        B = len(x) // 2
        dscore = torch.full((2 * B,), 1.0 / B, dtype=x.dtype, device=x.device)
        dscore[:B] = -1.0 / B
        dscore *= dloss
        dz = dscore[:, None] * w2 * s
        r = g * torch.where(n > 0, (2 * ctx.lam / B) * dloss * (n - 1) / n, 0.0)[:, None]
        t = s_hat.t() @ r
        dw1 = torch.addmm(w2.t() * t, dz.t(), x)
        dw2 = (dscore @ a + (w1 * t).sum(1))[None]
        return None, None, dw1, dz.sum(0), dw2, dscore.sum()[None], None, None
