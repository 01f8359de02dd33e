"""The entropic OT solver on a cost matrix (log domain, eps-scaling, Sinkhorn-Newton): potentials, value and
convergence report of ``W_eps`` (see :mod:`wganlab.ot.sinkhorn` for the conventions and the point-set API)."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from wganlab.checks import as_tensor, as_weights, positive_int
from wganlab.errors import ComputationFailed, InputError

__all__ = ["DEFAULT_MAX_ITER", "SinkhornNotConverged", "SinkhornResult", "soft_c_transform", "solve_sinkhorn"]

#: iterations allowed at the target ``eps`` by default
DEFAULT_MAX_ITER = 1000
#: the Newton system is solved densely up to this many unknowns, by conjugate gradients beyond
NEWTON_DENSE = 512
CG_MAX_ITER = 200
#: Newton steps and marginal error per temperature of the eps-scaling warm start
STAGE_NEWTON = 20
STAGE_TOL = 1e-2


class SinkhornNotConverged(ComputationFailed):
    """Sinkhorn iterations did not reach the marginal tolerance within ``max_iter`` iterations."""


class SinkhornResult(NamedTuple):
    """An entropic OT solve.

    Attributes:
        value: ``W_eps`` as a 0-d tensor (differentiable with respect to the points for :func:`sinkhorn`).
        f, g: the dual potentials on the two sets (detached; ``f`` and ``g`` coincide for a self term).
        converged: whether the L1 marginal violation ``error`` went below the tolerance.
        n_iter: iterations used at the target ``eps`` (after the eps-scaling warm start).
        error: L1 violation of the row marginal ``sum_i |(P 1)_i - a_i|`` at exit.
        eps: the regularisation.
    """

    value: torch.Tensor
    f: torch.Tensor
    g: torch.Tensor
    converged: bool
    n_iter: int
    error: float
    eps: float


def check_eps(eps) -> float:
    try:
        e = float(eps)
    except (TypeError, ValueError):
        raise InputError(f"eps must be a positive number, got {eps!r}") from None
    if not (e > 0 and math.isfinite(e)):
        raise InputError(f"eps must be a positive finite number, got {eps}")
    return e


def soft_c_transform(f: torch.Tensor, C: torch.Tensor, eps: float, weights=None) -> torch.Tensor:
    """The (c, eps)-transform of ``f``: ``f^{c,eps}_i = -eps log sum_j w_j exp((f_j - C_ij) / eps)``.

    A soft-min over ``j`` of ``C_ij - f_j`` (``-> min_j C_ij - f_j``, the c-transform, as ``eps -> 0``),
    computed with ``logsumexp`` so that any ``eps > 0`` is stable. Differentiable in ``f``, ``C`` and the
    weights.

    Args:
        f: ``(..., m)`` values on the ``m`` points summed over (e.g. a critic's values).
        C: ``(..., n, m)`` costs ``c(x_i, y_j)``.
        eps: temperature ``> 0``.
        weights: ``(..., m)`` probability weights ``w_j`` (uniform ``1/m`` when None).

    Returns:
        ``(..., n)``.

    >>> C = torch.tensor([[0.0, 2.0]])
    >>> round(float(soft_c_transform(torch.zeros(2), C, 1e-3)), 6)  # min_j C_0j + eps log 2
    0.000693
    """
    eps = check_eps(eps)
    if C.ndim < 2 or f.shape[-1] != C.shape[-1]:
        raise InputError(f"f {tuple(f.shape)} must have one value per column of C {tuple(C.shape)}")
    if weights is None:
        logw = torch.full_like(f, -math.log(f.shape[-1]))
    else:
        w = weights if isinstance(weights, torch.Tensor) else torch.as_tensor(weights, dtype=f.dtype)
        logw = torch.log(w.to(device=f.device, dtype=f.dtype))
    return -eps * torch.logsumexp((logw + f / eps).unsqueeze(-2) - C / eps, dim=-1)


def softmin(eps: float, C: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """``-eps log sum_j exp(h_j - C_ij / eps)`` over the last dimension of ``C (n, m)``; ``h (m,)``."""
    return -eps * torch.logsumexp(h - C / eps, dim=-1)


def _schedule(C: torch.Tensor, eps: float, scaling: float) -> list[float]:
    """Temperatures from the range of ``C`` down to (excluding) ``eps``, ratio ``scaling``."""
    top = float(C.max() - C.min())
    out = []
    e = top
    while e > eps:
        out.append(e)
        e *= scaling
    return out


def _symmetric(C: torch.Tensor, la: torch.Tensor, eps: float, sched: list[float], max_iter: int, tol: float):
    """Self term: the symmetric fixed point ``f <- (f + T(f)) / 2`` with eps-scaling.

    ``T(f)_i = -eps log sum_j a_j exp((f_j - C_ij) / eps)``; the plan ``a_i a_j exp((f_i + f_j - C_ij)/eps)``
    has row sums ``a_i exp((f_i - T(f)_i) / eps)``. Returns ``(f, converged, n_iter, error)``."""
    a = la.exp()
    f = softmin(sched[0] if sched else eps, C, la)
    for e in sched[1:]:
        f = 0.5 * (f + softmin(e, C, la + f / e))
    err, it = math.inf, 0
    while it < max_iter:
        it += 1
        t = softmin(eps, C, la + f / eps)
        err = float((torch.exp(la + (f - t) / eps) - a).abs().sum())
        f = 0.5 * (f + t)
        if err <= tol or not math.isfinite(err):
            break
    return f, err <= tol, it, err


def _newton_direction(pi: torch.Tensor, a: torch.Tensor, c: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """A solution of ``M d = r`` with ``M = diag(c) - pi^T diag(1/a) pi`` (symmetric PSD, ``M 1 = 0``).

    Dense pseudo-inverse (eigendecomposition, relative cut-off 1e-13) for up to :data:`NEWTON_DENSE`
    unknowns, else conjugate gradients on ``M`` (``r`` is orthogonal to the null space, so CG stays in the
    range of ``M``; a truncated CG iterate is still an ascent direction)."""
    k = r.shape[0]
    if k <= NEWTON_DENSE:
        M = torch.diag(c) - pi.T @ (pi / a[:, None])
        w, V = torch.linalg.eigh(M)
        cut = w.max().clamp_min(torch.finfo(w.dtype).tiny) * 1e-13
        inv = torch.where(w > cut, 1.0 / w.clamp_min(cut), torch.zeros_like(w))
        return V @ (inv * (V.T @ r))
    d = torch.zeros_like(r)
    res = r.clone()
    q = res.clone()
    rr = float(res @ res)
    stop = 1e-20 * rr
    for _ in range(min(k, CG_MAX_ITER)):
        Mq = c * q - pi.T @ ((pi @ q) / a)
        qMq = float(q @ Mq)
        if qMq <= 0:
            break
        alpha = rr / qMq
        d += alpha * q
        res -= alpha * Mq
        rr_new = float(res @ res)
        if rr_new <= stop:
            break
        q = res + (rr_new / rr) * q
        rr = rr_new
    return d


def _newton(C: torch.Tensor, la: torch.Tensor, lb: torch.Tensor, eps: float, g: torch.Tensor,
            max_iter: int, tol: float):
    """Maximise the semi-dual ``F(g) = <a, T(g)> + <b, g>`` over the column potential ``g (m,)`` by
    Newton's method with Armijo backtracking (Sinkhorn-Newton; Brauer, Clason, Lorenz & Wirth 2017).

    ``T(g)_i = -eps log sum_j b_j exp((g_j - C_ij) / eps)`` makes the row marginals exact; the gradient is
    ``b - c`` (``c`` the column marginals) and the negative Hessian ``M / eps`` (see
    :func:`_newton_direction`). Returns ``(f, g, converged, n_iter, error)`` with ``error = |c - b|_1``."""
    a, b = la.exp(), lb.exp()
    f = softmin(eps, C, lb + g / eps)
    F0 = float((a * f).sum() + (b * g).sum())
    err = math.inf
    for it in range(max_iter + 1):
        pi = torch.exp(la[:, None] + lb[None, :] + (f[:, None] + g[None, :] - C) / eps)
        c = pi.sum(0)
        err = float((c - b).abs().sum())
        if err <= tol or not math.isfinite(err) or it == max_iter:
            break
        d = _newton_direction(pi, a, c, eps * (b - c))
        slope = float((b - c) @ d)
        step = 1.0
        while True:
            gn = g + step * d
            fn = softmin(eps, C, lb + gn / eps)
            Fn = float((a * fn).sum() + (b * gn).sum())
            if Fn >= F0 + 1e-4 * step * slope - 1e-13 * abs(F0) or step < 1e-12:
                break
            step *= 0.5
        g, f, F0 = gn, fn, Fn
    return f, g, err <= tol, it, err


def _cross(C: torch.Tensor, la: torch.Tensor, lb: torch.Tensor, eps: float, sched: list[float], max_iter: int,
           tol: float):
    """``W_eps(a, b)`` potentials: eps-scaling with a few Newton steps per temperature (to a loose marginal
    error), then Newton at ``eps`` to ``tol``. Newton runs on the smaller side's potential."""
    if C.shape[1] > C.shape[0]:
        g, f, ok, it, err = _cross(C.T, lb, la, eps, sched, max_iter, tol)
        return f, g, ok, it, err
    g = softmin(sched[0] if sched else eps, C.T, la)
    for e in sched[1:]:
        _, g, _, _, _ = _newton(C, la, lb, e, g, STAGE_NEWTON, STAGE_TOL)
    return _newton(C, la, lb, eps, g, max_iter, tol)


def solve_potentials(C: torch.Tensor, la: torch.Tensor, lb: torch.Tensor, eps: float, *, symmetric: bool,
           max_iter: int, tol: float, scaling: float):
    """Potentials ``(f, g)`` of ``W_eps`` for a detached cost ``C (n, m)`` and log-weights ``la``, ``lb``.

    Points of zero weight are left out of the solve and get their potentials by a c-transform afterwards.
    The self term (``symmetric``) uses the symmetric fixed point, with Newton as a fallback.
    Returns ``(f, g, converged, n_iter, error)``; no autograd."""
    with torch.no_grad():
        sa, sb = torch.isfinite(la), torch.isfinite(lb)
        full_a, full_b = bool(sa.all()), bool(sb.all())
        if not (full_a and full_b):
            Cs = C[sa][:, sb]
            f, g, ok, it, err = solve_potentials(Cs, la[sa], lb[sb], eps, symmetric=symmetric, max_iter=max_iter,
                                       tol=tol, scaling=scaling)
            f_all = softmin(eps, C[:, sb], lb[sb] + g / eps)
            g_all = softmin(eps, C[sa].T, la[sa] + f / eps)
            return f_all, g_all, ok, it, err
        sched = _schedule(C, eps, scaling)
        if symmetric:
            f, ok, it, err = _symmetric(C, la, eps, sched, max_iter, tol)
            if ok:
                return f, f, ok, it, err
        return _cross(C, la, lb, eps, sched, max_iter, tol)


def log_weights(w, n: int, name: str, device, dtype) -> torch.Tensor:
    return torch.log(torch.as_tensor(as_weights(w, n, name), device=device, dtype=dtype))


def solve_sinkhorn(C, eps: float, a=None, b=None, *, max_iter: int = DEFAULT_MAX_ITER,
                   tol: float | None = None, scaling: float = 0.5, symmetric: bool = False) -> SinkhornResult:
    """Entropic OT for a given cost matrix ``C (n, m)`` (no gradient): potentials, value, convergence.

    ``value = <a, f> + <b, g>`` (``= W_eps``, see the module docstring) at the returned potentials;
    ``symmetric=True`` for a symmetric ``C`` with ``a = b`` (self term: one potential, averaged updates).
    Computed in ``C``'s dtype (use float64 for small ``eps``); ``tol`` defaults to 1e-6 (float64) or
    1e-4 (lower precision). Never raises on non-convergence: check ``converged``.

    >>> r = solve_sinkhorn(torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64), 0.01)
    >>> r.converged, round(float(r.value), 6)  # identity plan, eps * KL(P | a x b) = eps log 2
    (True, 0.006931)
    """
    eps = check_eps(eps)
    C = as_tensor(C, "cost matrix").detach()
    if C.ndim != 2:
        raise InputError(f"cost matrix must be 2-D, got shape {tuple(C.shape)}")
    n, m = C.shape
    if symmetric and n != m:
        raise InputError("symmetric=True needs a square cost matrix")
    la = log_weights(a, n, "a", C.device, C.dtype)
    lb = la if symmetric else log_weights(b, m, "b", C.device, C.dtype)
    tol = default_tol(tol, C.dtype)
    f, g, ok, it, err = solve_potentials(C, la, lb, eps, symmetric=symmetric,
                               max_iter=positive_int(max_iter, "max_iter"), tol=tol,
                               scaling=check_scaling(scaling))
    value = (la.exp() * f).sum() + (lb.exp() * g).sum()
    return SinkhornResult(value, f, g, ok, it, err, eps)


def default_tol(tol, dtype) -> float:
    if tol is None:
        return 1e-6 if dtype == torch.float64 else 1e-4
    tol = float(tol)
    if not tol > 0:
        raise InputError(f"tol must be positive, got {tol}")
    return tol


def check_scaling(scaling) -> float:
    s = float(scaling)
    if not 0 < s < 1:
        raise InputError(f"scaling must be in (0, 1), got {scaling}")
    return s
