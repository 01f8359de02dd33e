"""Baselines written out plainly (POT, numpy, torch), independent of wganlab's code: the bench times
wganlab against them and the tests check them against independent oracles."""

from __future__ import annotations

import numpy as np


def pot_w1(x, y, a=None, b=None) -> float:
    """Exact W1 with POT: the dense Euclidean cost matrix and ``ot.emd2`` (float64, weights ``a``, ``b``, uniform
    when None), with an iteration budget large enough to converge; raises if POT does not report optimality."""
    import ot

    xa = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    ya = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    C = ot.dist(xa, ya, metric="euclidean")
    a, b = (ot.unif(len(z)) if w is None else np.asarray(w, dtype=np.float64) for w, z in ((a, xa), (b, ya)))
    value, log = ot.emd2(a, b, C, numItermax=10**10, log=True)
    if log["result_code"] != 1:
        raise RuntimeError(f"POT emd2 did not converge: {log.get('warning')}")
    return float(value)


def plain_patch_swd(x, y, theta, patch_size: int, patch_stride: int = 1, chunk: int = 16) -> float:
    """Patch SW1 written plainly in torch: unfold both image sets into patches and take
    :func:`plain_sw1` of the two patch sets. When ``x`` requires grad, its gradient is accumulated in
    ``x.grad`` (as ``loss.backward()`` does)."""
    import torch.nn.functional as F

    d, grad = theta.shape[1], x.requires_grad
    px = F.unfold(x.detach(), patch_size, stride=patch_stride).transpose(1, 2).reshape(-1, d).requires_grad_(grad)
    py = F.unfold(y, patch_size, stride=patch_stride).transpose(1, 2).reshape(-1, d)
    value = plain_sw1(px, py, theta, chunk)
    if grad:
        F.unfold(x, patch_size, stride=patch_stride).transpose(1, 2).reshape(-1, d).backward(px.grad)
    return value


def plain_patch_swd_local(x, y, theta, patch_size: int, patch_stride: int = 1, chunk: int = 16) -> float:
    """Location-specific patch SW1 written plainly: unfold both image sets, then the mean over the ``L``
    patch locations ``l`` of :func:`plain_sw1` between the patches of ``x`` and of ``y`` at ``l``."""
    import torch.nn.functional as F

    px, py = (F.unfold(z, patch_size, stride=patch_stride) for z in (x, y))  # (N, d, L)
    L = px.shape[-1]
    return sum(plain_sw1(px[:, :, l], py[:, :, l], theta, chunk) for l in range(L)) / L


def plain_sw1(px, py, theta, chunk: int = 16) -> float:
    """SW1 between point sets ``px (n, d)``, ``py (m, d)``: project them on ``theta (P, d)``, sort, and
    integrate ``|F^-1(t) - G^-1(t)|`` exactly over the merged quantile breakpoints ``{i/n} U {j/m}`` (each
    step function read at the middle of every merged piece); the mean over the ``P`` directions.

    When ``px`` requires grad, its gradient is accumulated in ``px.grad``, by autograd through the sort,
    one chunk of projections at a time."""
    import torch

    P, grad = theta.shape[0], px.requires_grad
    n, m = len(px), len(py)
    levels = torch.sort(torch.cat([torch.arange(1, n + 1, dtype=torch.float64) / n,
                                   torch.arange(1, m + 1, dtype=torch.float64) / m])).values
    dt = torch.diff(levels, prepend=levels.new_zeros(1))
    mid = levels - dt / 2
    ix, iy = (mid * n).long().clamp_max(n - 1), (mid * m).long().clamp_max(m - 1)
    total = 0.0
    for i in range(0, P, chunk):
        with torch.no_grad():
            qy = torch.sort(theta[i:i + chunk] @ py.T, dim=-1).values
        with torch.set_grad_enabled(grad):
            qx = torch.sort(theta[i:i + chunk] @ px.T, dim=-1).values
            term = ((qx[:, ix] - qy[:, iy]).abs().double() * dt).sum()
        if grad:
            (term / P).backward()
        total += float(term.detach())
    return total / P


def plain_ot_means(y, init, n_iter: int) -> list[float]:
    """OT-Means written plainly: per iteration an exact plan (POT ``ot.emd`` on the dense Euclidean cost)
    and one Weiszfeld step per centroid weighted by its plan row; returns the W1 of every solve
    (``n_iter + 1`` values, the last after the final update)."""
    import ot

    Y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    X = np.asarray(init, dtype=np.float64).reshape(len(init), -1).copy()
    a, b = ot.unif(len(X)), ot.unif(len(Y))
    trace = []
    for it in range(n_iter + 1):
        C = ot.dist(X, Y, metric="euclidean")
        P, log = ot.emd(a, b, C, numItermax=10**10, log=True)
        if log["result_code"] != 1:
            raise RuntimeError(f"POT emd did not converge: {log.get('warning')}")
        trace.append(float((P * C).sum()))
        if it == n_iter:
            break
        for j in range(len(X)):
            cols = np.flatnonzero(P[j])
            w = P[j, cols] / np.maximum(C[j, cols], 1e-300)
            X[j] = w @ Y[cols] / w.sum()
    return trace


def plain_critic(critic):
    """A copy of a wganlab critic with torch's own activations (``nn.ReLU`` / ``nn.LeakyReLU``) in place of
    :class:`~wganlab.models.critics.PiecewiseLinear` and Björck's steps run one by one (``spectral=False``,
    :func:`~wganlab.models.critics.bjorck`) and convolution weights in torch's default NCHW layout: the same
    function and weights, as plain PyTorch builds it."""
    import copy

    import torch
    from torch import nn

    from wganlab.models.critics import BjorckWeight, PiecewiseLinear

    plain = copy.deepcopy(critic).to(memory_format=torch.contiguous_format)
    for module in plain.modules():
        if isinstance(module, BjorckWeight):
            module.spectral = False
        for name, child in module.named_children():
            if isinstance(child, PiecewiseLinear):
                setattr(module, name, nn.LeakyReLU(child.slope) if child.slope else nn.ReLU())
    return plain


#: objectives :func:`plain_train_steps` writes out
PLAIN_OBJECTIVES = ("wgan-gp", "wgan-wc", "ctransform", "ceps-transform", "nsgan")


def plain_train_steps(G, D, x, objective: str, *, iters: int, n_critic: int, batch: int, lr_g: float,
                      lr_c: float, betas: tuple[float, float], rng_data, rng_latent, gp_lambda: float = 10.0,
                      clip: float = 0.01, eps: float = 1.0) -> list[float]:
    """``iters`` generator steps of a GAN, each after ``n_critic`` critic steps, written the obvious way in
    plain PyTorch: separate real / fake / interpolate forward passes, ``autograd.grad`` for the gradient
    penalty, Adam. Trains ``G`` and ``D`` (critic scores ``(B,)``) in place on batches of ``x`` drawn with
    ``rng_data`` and latents drawn with ``rng_latent``; returns every loss, in order.

    Losses: WGAN-GP ``D(f) - D(r) + lam (||grad D(x_hat)|| - 1)^2`` (one ``alpha ~ U[0, 1]`` per sample,
    from torch's global generator), weight clipping ``D(f) - D(r)`` then clamping, c-transform
    ``-(mean phi(f) + mean_i min_j |f_j - r_i| - phi(f_j))`` (the (c, eps) one with the soft-min
    ``-eps log mean_j exp((phi(f_j) - |f_j - r_i|) / eps)``), NS-GAN's softplus losses; the generator
    minimises the same value (``D(r) - D(f)`` for the WGANs, ``softplus(-D(f))`` for NS-GAN). For the
    WGANs' generator step it also draws (and ignores) the interpolation coefficients of wganlab's
    Lipschitz diagnostic, so that both loops use the same random numbers."""
    import math

    import torch
    import torch.nn.functional as F

    if objective not in PLAIN_OBJECTIVES:
        raise ValueError(f"no plain loop for objective {objective!r}; written: {', '.join(PLAIN_OBJECTIVES)}")
    opt_d = torch.optim.Adam(D.parameters(), lr=lr_c, betas=betas)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr_g, betas=betas)

    def real():
        return x[torch.randint(len(x), (batch,), generator=rng_data)]

    def fake():
        return G(G.sample_latents(batch, rng_latent))

    def dual_value(r, f):  # the c-transform objectives' V
        phi = D(f)
        C = torch.cdist(f.flatten(1), r.flatten(1), compute_mode="donot_use_mm_for_euclid_dist")  # (n_f, n_r)
        if objective == "ctransform":
            transform = (C - phi[:, None]).min(0).values
        else:
            transform = -eps * (torch.logsumexp((phi[:, None] - C) / eps, 0) - math.log(len(f)))
        return phi.mean() + transform.mean()

    losses = []
    for _ in range(iters):
        for _ in range(n_critic):
            r = real()
            with torch.no_grad():
                f = fake()
            if objective == "wgan-gp":
                alpha = torch.rand((batch,) + (1,) * (r.ndim - 1))
                x_hat = (alpha * r + (1 - alpha) * f).requires_grad_(True)
                (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
                gp = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
                loss = D(f).mean() - D(r).mean() + gp_lambda * gp
            elif objective == "wgan-wc":
                loss = D(f).mean() - D(r).mean()
            elif objective == "nsgan":
                loss = F.softplus(-D(r)).mean() + F.softplus(D(f)).mean()
            else:
                loss = -dual_value(r, f)
            opt_d.zero_grad()
            loss.backward()
            opt_d.step()
            if objective == "wgan-wc":
                with torch.no_grad():
                    for p in D.parameters():
                        p.clamp_(-clip, clip)
            losses.append(float(loss.detach()))
        r, f = real(), fake()
        if objective in ("wgan-gp", "wgan-wc"):
            loss = D(r).mean() - D(f).mean()
            torch.rand((batch,) + (1,) * (r.ndim - 1))  # wganlab's Lipschitz diagnostic's draw
        elif objective == "nsgan":
            loss = F.softplus(-D(f)).mean()
        else:
            loss = dual_value(r, f)
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()
        losses.append(float(loss.detach()))
    return losses
