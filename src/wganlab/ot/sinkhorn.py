"""Entropic optimal transport and the Sinkhorn divergence, log-domain, with eps-scaling.

Convention (Cuturi 2013; Stanczuk et al. section 6.1; Feydy et al. 2019)::

    W_eps(a, b) = min_{P >= 0, P 1 = a, P^T 1 = b}  <P, C> + eps * KL(P | a x b)
                = max_{f, g}  <a, f> + <b, g> - eps <a x b, exp((f + g - C) / eps) - 1>

    S_eps(a, b) = W_eps(a, b) - (W_eps(a, a) + W_eps(b, b)) / 2          (debiased: S_eps(a, a) = 0)

with the ground cost ``C_ij = c(x_i, y_j)`` from :mod:`wganlab.ot.costs` (default ``"euclidean"``:
``||x_i - y_j||_2`` of the flattened points, i.e. ``W_{1,eps}`` of the paper; ``"sqeuclidean"`` has no 1/2).
``S_eps`` tends to the exact ``OT_c`` as ``eps -> 0`` and to the MMD with kernel ``-c`` (half the energy
distance for ``"euclidean"``) as ``eps -> infinity``.

Solver: Sinkhorn's fixed point on the dual potentials, written with the soft c-transform
(:func:`soft_c_transform`) so that everything stays in the log domain (no ``exp(-C/eps)`` underflow for
``C / eps`` in the thousands)::

    f_i <- -eps log sum_j b_j exp((g_j - C_ij) / eps),     g_j <- -eps log sum_i a_i exp((f_i - C_ij) / eps)

started by eps-scaling (Kosowsky & Yuille 1994; Schmitzer 2019; Feydy 2020): ``eps`` is annealed
geometrically (ratio ``scaling``) from the range of ``C`` down to the target, with symmetric averaged
updates, then Sinkhorn iterates at the target ``eps`` until the L1 violation of the marginals is below
``tol``. The self terms ``W_eps(a, a)`` use the symmetric update ``f <- (f + T(f)) / 2``. A solve that
does not reach ``tol`` in ``max_iter`` iterations raises :class:`SinkhornNotConverged` (or reports it in
:class:`SinkhornResult` from :func:`sinkhorn`): no silent garbage.

Gradients (envelope theorem / Danskin): the potentials are found without autograd and detached; the value
is then recomputed from one last soft c-transform of each potential through a cost matrix that carries the
gradient of one side only (``C(x, y.detach())`` for ``f``, ``C(y, x.detach())`` for ``g``), so
``d W_eps / d x_i = sum_j P_ij grad_x c(x_i, y_j)`` with the optimal plan ``P``: no backpropagation
through the iterations, constant memory in the number of iterations. The Euclidean cost's gradient is 0
for coincident points (its subgradient), never NaN.

Why our solver is the default (``backend="auto"``) rather than GeomLoss: GeomLoss's ``SamplesLoss`` runs a
fixed eps-scaling schedule (one iteration per temperature, from the data's diameter down to ``blur^p``) and
does not check convergence. With images (``d = 784``, costs in the tens) and small ``eps`` that schedule
ends far from the fixed point, and its default settings were measured not to converge; ours iterates at the
target ``eps`` to a stated tolerance. GeomLoss (``backend="geomloss"``, imported only then) remains available
for comparison with ``"euclidean"`` (its ``p=1``) and ``"sqeuclidean"`` (its ``p=2`` cost ``|x-y|^2/2``,
rescaled).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from wganlab.checks import as_tensor, as_weights, positive_int, same_dim
from wganlab.errors import ComputationFailed, InputError
from wganlab.ot.costs import CostFn, cost_matrix, get_cost, sqeuclidean

__all__ = [
    "SinkhornNotConverged",
    "SinkhornResult",
    "sinkhorn",
    "sinkhorn_cost",
    "sinkhorn_divergence",
    "soft_c_transform",
    "solve_sinkhorn",
]

DEFAULT_MAX_ITER = 1000
#: the Newton system is solved densely up to this many unknowns, by conjugate gradients beyond
NEWTON_DENSE = 512
CG_MAX_ITER = 200
#: Newton steps and marginal error per temperature of the eps-scaling warm start
STAGE_NEWTON = 20
STAGE_TOL = 1e-2
#: the named costs that vanish on the diagonal (c(x, x) = 0): the self terms set it to exactly 0
_ZERO_DIAGONAL = ("euclidean", "sqeuclidean", "l1", "ssim", "psnr")


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


def _check_eps(eps) -> float:
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
    eps = _check_eps(eps)
    if C.ndim < 2 or f.shape[-1] != C.shape[-1]:
        raise InputError(f"f {tuple(f.shape)} must have one value per column of C {tuple(C.shape)}")
    if weights is None:
        logw = torch.full_like(f, -math.log(f.shape[-1]))
    else:
        w = weights if isinstance(weights, torch.Tensor) else torch.as_tensor(weights, dtype=f.dtype)
        logw = torch.log(w.to(device=f.device, dtype=f.dtype))
    return -eps * torch.logsumexp((logw + f / eps).unsqueeze(-2) - C / eps, dim=-1)


def _softmin(eps: float, C: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
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
    f = _softmin(sched[0] if sched else eps, C, la)
    for e in sched[1:]:
        f = 0.5 * (f + _softmin(e, C, la + f / e))
    err, it = math.inf, 0
    while it < max_iter:
        it += 1
        t = _softmin(eps, C, la + f / eps)
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
    f = _softmin(eps, C, lb + g / eps)
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
            fn = _softmin(eps, C, lb + gn / eps)
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
    g = _softmin(sched[0] if sched else eps, C.T, la)
    for e in sched[1:]:
        _, g, _, _, _ = _newton(C, la, lb, e, g, STAGE_NEWTON, STAGE_TOL)
    return _newton(C, la, lb, eps, g, max_iter, tol)


def _solve(C: torch.Tensor, la: torch.Tensor, lb: torch.Tensor, eps: float, *, symmetric: bool,
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
            f, g, ok, it, err = _solve(Cs, la[sa], lb[sb], eps, symmetric=symmetric, max_iter=max_iter,
                                       tol=tol, scaling=scaling)
            f_all = _softmin(eps, C[:, sb], lb[sb] + g / eps)
            g_all = _softmin(eps, C[sa].T, la[sa] + f / eps)
            return f_all, g_all, ok, it, err
        sched = _schedule(C, eps, scaling)
        if symmetric:
            f, ok, it, err = _symmetric(C, la, eps, sched, max_iter, tol)
            if ok:
                return f, f, ok, it, err
        return _cross(C, la, lb, eps, sched, max_iter, tol)


def _log_weights(w, n: int, name: str, device, dtype) -> torch.Tensor:
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
    eps = _check_eps(eps)
    C = as_tensor(C, "cost matrix").detach()
    if C.ndim != 2:
        raise InputError(f"cost matrix must be 2-D, got shape {tuple(C.shape)}")
    n, m = C.shape
    if symmetric and n != m:
        raise InputError("symmetric=True needs a square cost matrix")
    la = _log_weights(a, n, "a", C.device, C.dtype)
    lb = la if symmetric else _log_weights(b, m, "b", C.device, C.dtype)
    tol = _default_tol(tol, C.dtype)
    f, g, ok, it, err = _solve(C, la, lb, eps, symmetric=symmetric,
                               max_iter=positive_int(max_iter, "max_iter"), tol=tol,
                               scaling=_check_scaling(scaling))
    value = (la.exp() * f).sum() + (lb.exp() * g).sum()
    return SinkhornResult(value, f, g, ok, it, err, eps)


def _default_tol(tol, dtype) -> float:
    if tol is None:
        return 1e-6 if dtype == torch.float64 else 1e-4
    tol = float(tol)
    if not tol > 0:
        raise InputError(f"tol must be positive, got {tol}")
    return tol


def _check_scaling(scaling) -> float:
    s = float(scaling)
    if not 0 < s < 1:
        raise InputError(f"scaling must be in (0, 1), got {scaling}")
    return s


# ----------------------------------------------------------------------------------------------------------
# costs with safe gradients


def _euclidean(x: torch.Tensor, y: torch.Tensor, zero_diag: bool) -> torch.Tensor:
    """``||x_i - y_j||`` with value and gradient exactly 0 for (numerically) coincident points."""
    x, y = x.reshape(len(x), -1), y.reshape(len(y), -1)
    d2 = sqeuclidean(x, y)
    with torch.no_grad():
        # below this, d2 is rounding noise of the |x|^2 + |y|^2 - 2 x.y expansion
        thr = 16 * torch.finfo(d2.dtype).eps * ((x * x).sum(1)[:, None] + (y * y).sum(1)[None, :])
        mask = d2 > thr
        if zero_diag:
            mask &= ~torch.eye(*d2.shape, dtype=torch.bool, device=d2.device)
    safe = torch.where(mask, d2, torch.ones_like(d2))
    return torch.where(mask, safe.sqrt(), torch.zeros_like(d2))


def _cost(x, y, cost, zero_diag: bool) -> torch.Tensor:
    if isinstance(cost, str) and cost == "euclidean":
        return _euclidean(x, y, zero_diag)
    C = cost_matrix(x, y, cost, dtype=None)
    if zero_diag and isinstance(cost, str) and cost in _ZERO_DIAGONAL:
        C = torch.where(torch.eye(*C.shape, dtype=torch.bool, device=C.device), torch.zeros_like(C), C)
    return C


def _prepare(x, y, a, b, cost, dtype):
    get_cost(cost)  # validates the name
    xt, yt = as_tensor(x, "x"), as_tensor(y, "y")
    if xt.ndim == 1:
        xt = xt[:, None]
    if yt.ndim == 1:
        yt = yt[:, None]
    same_dim(xt, yt)
    work = xt.dtype if dtype is None else dtype
    xw, yw = xt.to(work), yt.to(device=xt.device, dtype=work)
    la = _log_weights(a, xt.shape[0], "a", xt.device, work)
    lb = _log_weights(b, yt.shape[0], "b", xt.device, work)
    return xt, xw, yw, la, lb


def _entropic(xw, yw, la, lb, eps, cost, *, self_term: bool, max_iter, tol, scaling) -> SinkhornResult:
    """``W_eps`` between the (already converted) point sets, with the envelope-theorem gradient."""
    grad = torch.is_grad_enabled()
    if self_term:
        C_x = _cost(xw, xw.detach(), cost, True)  # gradient through the first argument only
        f, _, ok, it, err = _solve(C_x.detach(), la, la, eps, symmetric=True, max_iter=max_iter, tol=tol,
                                   scaling=scaling)
        ft = _softmin(eps, C_x, (la + f / eps).detach())
        value = 2 * (la.exp() * ft).sum()
        return SinkhornResult(value, f, f, ok, it, err, eps)
    C_xy = _cost(xw, yw.detach(), cost, False)
    need_y = grad and yw.requires_grad
    C_yx = _cost(yw, xw.detach(), cost, False) if need_y else C_xy.detach().T
    f, g, ok, it, err = _solve(C_xy.detach(), la, lb, eps, symmetric=False, max_iter=max_iter, tol=tol,
                               scaling=scaling)
    ft = _softmin(eps, C_xy, (lb + g / eps).detach())
    gt = _softmin(eps, C_yx, (la + f / eps).detach())
    value = (la.exp() * ft).sum() + (lb.exp() * gt).sum()
    return SinkhornResult(value, f, g, ok, it, err, eps)


def sinkhorn(x, y, eps: float, a=None, b=None, *, cost: str | CostFn = "euclidean",
             max_iter: int = DEFAULT_MAX_ITER, tol: float | None = None, scaling: float = 0.5,
             dtype: torch.dtype | None = torch.float64) -> SinkhornResult:
    """Entropic OT ``W_eps(x, y)`` with its potentials and convergence report (never raises on
    non-convergence; :func:`sinkhorn_cost` does). Arguments as in :func:`sinkhorn_cost`; ``value`` is in
    the working dtype."""
    eps = _check_eps(eps)
    _, xw, yw, la, lb = _prepare(x, y, a, b, cost, dtype)
    return _entropic(xw, yw, la, lb, eps, cost, self_term=False, max_iter=positive_int(max_iter, "max_iter"),
                     tol=_default_tol(tol, xw.dtype), scaling=_check_scaling(scaling))


def _raise_unless(res: SinkhornResult, what: str, tol: float, max_iter: int) -> None:
    if not res.converged:
        raise SinkhornNotConverged(
            f"{what}: Sinkhorn did not converge at eps={res.eps:g} in {max_iter} iterations (marginal "
            f"error {res.error:.3g} > tol {tol:g}); raise max_iter, use a larger eps or float64")


def _geomloss(xw, yw, la, lb, eps, cost, debias: bool, scaling: float) -> torch.Tensor:
    try:
        import geomloss  # optional: only when asked for
    except ImportError:
        raise InputError("backend='geomloss' needs the geomloss package (pip install geomloss)") from None
    if cost == "euclidean":
        p, blur, factor = 1, eps, 1.0
    elif cost == "sqeuclidean":  # GeomLoss's p=2 cost is |x-y|^2 / 2: OT_eps(C) = 2 OT_{eps/2}(C/2)
        p, blur, factor = 2, math.sqrt(eps / 2), 2.0
    else:
        raise InputError(f"backend='geomloss' supports the 'euclidean' and 'sqeuclidean' costs, not {cost!r}")
    loss = geomloss.SamplesLoss("sinkhorn", p=p, blur=blur, scaling=scaling ** (1.0 / p), debias=debias,
                                backend="tensorized")
    xs, ys = xw.reshape(len(xw), -1), yw.reshape(len(yw), -1)
    return factor * loss(la.exp(), xs, lb.exp(), ys)


def _check_backend(backend: str) -> str:
    if backend not in ("auto", "torch", "geomloss"):
        raise InputError(f"backend must be 'auto', 'torch' or 'geomloss', got {backend!r}")
    return "torch" if backend == "auto" else backend


def sinkhorn_cost(x, y, eps: float, a=None, b=None, cost: str | CostFn = "euclidean",
                  max_iter: int = DEFAULT_MAX_ITER, tol: float | None = None, *, scaling: float = 0.5,
                  dtype: torch.dtype | None = torch.float64, backend: str = "auto") -> torch.Tensor:
    """Entropic OT ``W_eps(x, y) = min_P <P, C> + eps KL(P | a x b)`` (not debiased).

    Args:
        x, y: point sets ``(n, ...)``, ``(m, ...)`` of the same per-point shape (flattened for the vector
            costs; image costs such as SSIM see images).
        eps: the regularisation ``> 0`` (in the cost's units: pixel-scale distances for ``"euclidean"``).
        a, b: probability weights (uniform when None).
        cost: a name from :data:`wganlab.ot.costs.COSTS` or a callable ``(xb, yb) -> (len(xb), len(yb))``.
        max_iter: Sinkhorn iterations allowed at the target ``eps`` (after eps-scaling).
        tol: L1 marginal violation to reach (default 1e-6 in float64, 1e-4 in float32).
        scaling: ratio between successive temperatures of the eps-scaling warm start.
        dtype: working dtype (default float64, accurate down to ``eps = 0.01`` on costs in the tens;
            ``None``: the inputs' dtype). The result is returned in ``x``'s dtype.
        backend: ``"auto"`` / ``"torch"`` (this module's solver) or ``"geomloss"`` (GeomLoss, if installed;
            no convergence check; see the module docstring).

    Returns:
        a 0-d tensor on ``x``'s device, differentiable with respect to ``x`` and ``y`` (envelope theorem).

    Raises:
        SinkhornNotConverged: when ``tol`` is not reached in ``max_iter`` iterations.
    """
    eps = _check_eps(eps)
    backend = _check_backend(backend)
    xt, xw, yw, la, lb = _prepare(x, y, a, b, cost, dtype)
    if backend == "geomloss":
        return _geomloss(xw, yw, la, lb, eps, cost, False, _check_scaling(scaling)).to(xt.dtype)
    max_iter, tol = positive_int(max_iter, "max_iter"), _default_tol(tol, xw.dtype)
    res = _entropic(xw, yw, la, lb, eps, cost, self_term=False, max_iter=max_iter, tol=tol,
                    scaling=_check_scaling(scaling))
    _raise_unless(res, "W_eps(x, y)", tol, max_iter)
    return res.value.to(xt.dtype)


def sinkhorn_divergence(x, y, eps: float, a=None, b=None, cost: str | CostFn = "euclidean",
                        max_iter: int = DEFAULT_MAX_ITER, tol: float | None = None, *, scaling: float = 0.5,
                        dtype: torch.dtype | None = torch.float64, backend: str = "auto") -> torch.Tensor:
    """Debiased Sinkhorn divergence ``S_eps(x, y) = W_eps(x, y) - (W_eps(x, x) + W_eps(y, y)) / 2``.

    ``S_eps(x, x) = 0``, symmetric, ``>= 0`` (Feydy et al. 2019, for the Euclidean and squared Euclidean
    costs); ``-> OT_c`` as ``eps -> 0`` (the paper's ``S_{1,eps} -> W_1`` for the default cost) and ``->``
    the MMD with kernel ``-c`` as ``eps -> infinity``. The self terms use the symmetric solver. Arguments,
    result and errors as in :func:`sinkhorn_cost`.

    >>> x = torch.tensor([[0.0], [1.0]])
    >>> round(float(sinkhorn_divergence(x, x + 3, 0.01)), 3)  # ~ W1 = 3
    3.0
    """
    eps = _check_eps(eps)
    backend = _check_backend(backend)
    xt, xw, yw, la, lb = _prepare(x, y, a, b, cost, dtype)
    if backend == "geomloss":
        return _geomloss(xw, yw, la, lb, eps, cost, True, _check_scaling(scaling)).to(xt.dtype)
    max_iter, tol = positive_int(max_iter, "max_iter"), _default_tol(tol, xw.dtype)
    opts = {"max_iter": max_iter, "tol": tol, "scaling": _check_scaling(scaling)}
    w_xy = _entropic(xw, yw, la, lb, eps, cost, self_term=False, **opts)
    _raise_unless(w_xy, "W_eps(x, y)", tol, max_iter)
    w_xx = _entropic(xw, xw, la, la, eps, cost, self_term=True, **opts)
    _raise_unless(w_xx, "W_eps(x, x)", tol, max_iter)
    w_yy = _entropic(yw, yw, lb, lb, eps, cost, self_term=True, **opts)
    _raise_unless(w_yy, "W_eps(y, y)", tol, max_iter)
    return (w_xy.value - 0.5 * (w_xx.value + w_yy.value)).to(xt.dtype)
