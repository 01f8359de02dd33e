"""Exact 1-D Wasserstein distances between empirical measures (batched), and the checks of ``p`` and of
weight vectors the sliced distances share."""

from __future__ import annotations

import math

import numpy as np
import torch

from wganlab.checks import as_tensor
from wganlab.errors import InputError
from wganlab.ot.scale import rescaling_exponent, times_pow2
from wganlab.ot.sliced.autograd import pp_sorted
from wganlab.ot.sliced.kernels import sort_side


def check_p(p) -> float:
    try:
        p = float(p)
    except (TypeError, ValueError):
        raise InputError(f"p must be a number >= 1, got {p!r}") from None
    if not (p >= 1 and math.isfinite(p)):
        raise InputError(f"p must be a finite number >= 1, got {p}")
    return p


def checked_weights(w, shape: tuple, name: str, device) -> torch.Tensor | None:
    """Probability weights over the last dimension of ``shape`` as float64 on ``device`` (None: uniform).

    Accepts ``(n,)`` or any shape broadcastable to ``shape``; every weight vector must be non-negative
    and sum to 1 (within 1e-6; it is then renormalised)."""
    if w is None:
        return None
    t = w if isinstance(w, torch.Tensor) else torch.as_tensor(np.asarray(w, dtype=np.float64))
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
        raise InputError(f"{name}: weights must be numeric, got dtype {t.dtype}")
    t = t.detach().to(device=device, dtype=torch.float64)
    if t.ndim == 0 or t.shape[-1] != shape[-1]:
        raise InputError(f"{name}: expected {shape[-1]} weights (one per point), got shape {tuple(t.shape)}")
    try:
        np.broadcast_shapes(t.shape, shape)
    except ValueError:
        raise InputError(f"{name}: weights of shape {tuple(t.shape)} do not broadcast to "
                         f"{tuple(shape)}") from None
    if not bool(torch.isfinite(t).all()):
        raise InputError(f"{name}: weights contain NaN or infinite values")
    if bool((t < 0).any()):
        raise InputError(f"{name}: weights must be non-negative (min {float(t.min()):.3g})")
    s = t.sum(-1, keepdim=True)
    if bool(((s - 1).abs() > 1e-6).any()):
        raise InputError(f"{name}: weights must sum to 1 (they sum to {float(s.flatten()[0]):.6g})")
    return t / s


def wasserstein_1d(u, v, a=None, b=None, p: float = 1) -> torch.Tensor:
    """Exact ``W_p`` between 1-D empirical measures, batched over leading dimensions.

    ``W_p^p = integral_0^1 |F^-1(t) - G^-1(t)|^p dt`` with the quantile functions of
    ``mu = sum_i a_i delta_{u_i}`` and ``nu = sum_j b_j delta_{v_j}``; exact for any sizes ``n``, ``m``
    (no tiling, no interpolation).

    Args:
        u: atoms ``(..., n)``; v: atoms ``(..., m)``; leading dimensions broadcast.
        a, b: probability weights ``(n,)`` / ``(m,)`` or broadcastable to ``u`` / ``v``
            (uniform when None); each weight vector sums to 1.
        p: order, ``>= 1``.

    Returns:
        ``W_p`` (not ``W_p^p``) of shape ``(...)``, in ``u``'s dtype and on its device; differentiable
        with respect to ``u`` and ``v`` (the gradient of ``W_p`` for ``p > 1`` is infinite where the
        distance is 0).

    >>> float(wasserstein_1d([0.0, 1.0], [3.0, 4.0]))  # translation by 3
    3.0
    >>> round(float(wasserstein_1d([0.0, 1.0, 2.0], [0.0, 2.0], p=2) ** 2), 6)  # 1/6 * 1^2 + ... = 1/3
    0.333333
    """
    p = check_p(p)
    u = as_tensor(u, "u")
    v = as_tensor(v, "v")
    if u.device != v.device:
        raise InputError(f"u and v are on different devices ({u.device}, {v.device})")
    dtype = torch.promote_types(u.dtype, v.dtype)
    u, v = u.to(dtype), v.to(dtype)
    try:
        np.broadcast_shapes(u.shape[:-1], v.shape[:-1])
    except ValueError:
        raise InputError(f"leading dimensions of u {tuple(u.shape)} and v {tuple(v.shape)} "
                         "do not broadcast") from None
    wu = checked_weights(a, tuple(u.shape), "a", u.device)
    wv = checked_weights(b, tuple(v.shape), "b", v.device)
    # for p > 1, atoms whose spread is far from 1 are compared multiplied by 2^-e (exact) and the distance by 2^e
    # afterwards: |d|^p would overflow or underflow
    e = 0 if p == 1 or not (u.numel() and v.numel()) else rescaling_exponent(
        *(t.detach().reshape(-1, 1) for t in (u, v)))
    u, v = times_pow2(u, -e), times_pow2(v, -e)
    us, cu = sort_side(u, wu)
    vs, cv = sort_side(v, wv)
    if cu is None and cv is None:
        lead = np.broadcast_shapes(us.shape[:-1], vs.shape[:-1])
        us, vs = us.expand(*lead, us.shape[-1]), vs.expand(*lead, vs.shape[-1])
    pp = pp_sorted(us, cu, vs, cv, p)
    return pp if p == 1 else times_pow2(pp.clamp_min(0) ** (1.0 / p), e)
