"""Entropic optimal transport and the Sinkhorn divergence, log-domain, with eps-scaling.

Convention (Cuturi 2013; Stanczuk et al. section 6.1; Feydy et al. 2019)::

    W_eps(a, b) = min_{P >= 0, P 1 = a, P^T 1 = b}  <P, C> + eps * KL(P | a x b)
                = max_{f, g}  <a, f> + <b, g> - eps <a x b, exp((f + g - C) / eps) - 1>

    S_eps(a, b) = W_eps(a, b) - (W_eps(a, a) + W_eps(b, b)) / 2          (debiased: S_eps(a, a) = 0)

with the ground cost ``C_ij = c(x_i, y_j)`` from :mod:`wganlab.ot.costs` (default ``"euclidean"``:
``||x_i - y_j||_2`` of the flattened points, i.e. ``W_{1,eps}`` of the paper; ``"sqeuclidean"`` has no 1/2).
``S_eps`` tends to the exact ``OT_c`` as ``eps -> 0`` and to the MMD with kernel ``-c`` (half the energy
distance for ``"euclidean"``) as ``eps -> infinity``.

Solver (:mod:`wganlab.ot.entropic`): Sinkhorn's fixed point on the dual potentials, written with the soft c-transform
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

from wganlab.checks import as_tensor, positive_int, same_dim
from wganlab.errors import InputError
from wganlab.ot.costs import CostFn, check_dense_size, cost_matrix, get_cost, sqeuclidean
from wganlab.ot.entropic import (
    DEFAULT_MAX_ITER,
    SinkhornNotConverged,
    SinkhornResult,
    check_eps,
    check_scaling,
    default_tol,
    log_weights,
    soft_c_transform,
    softmin,
    solve_potentials,
    solve_sinkhorn,
)
from wganlab.ot.scale import needs_rescaling, spread_exponent, times_pow2

__all__ = [
    "DivergenceTerms",
    "SinkhornNotConverged",
    "SinkhornResult",
    "sinkhorn",
    "sinkhorn_cost",
    "sinkhorn_divergence",
    "sinkhorn_divergence_terms",
    "soft_c_transform",
    "solve_sinkhorn",
]

#: the named costs that vanish on the diagonal (c(x, x) = 0): the self terms set it to exactly 0
_ZERO_DIAGONAL = ("euclidean", "sqeuclidean", "l1", "ssim", "psnr")
#: the named costs invariant under translation and homogeneous of this degree (``c(s x, s y) = s^k c(x, y)``):
#: computed on the sets moved to the origin and rescaled to unit spread (see :func:`_frame`)
_HOMOGENEOUS = {"euclidean": 1, "sqeuclidean": 2, "l1": 1}
#: sets whose centre is farther than this many spreads from the origin are first moved to it
_FAR = 16.0


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
    check_dense_size(max(len(xt), len(yt)), max(len(xt), len(yt)))  # the cross and the self terms
    work = xt.dtype if dtype is None else dtype
    xw, yw = xt.to(work), yt.to(device=xt.device, dtype=work)
    la = log_weights(a, xt.shape[0], "a", xt.device, work)
    lb = log_weights(b, yt.shape[0], "b", xt.device, work)
    return xt, xw, yw, la, lb


def _frame(xw: torch.Tensor, yw: torch.Tensor, cost, eps: float):
    """The sets in the frame where their costs are computed: for a cost of :data:`_HOMOGENEOUS` degree ``k``,
    moved by a common shift to the origin when their centre is far from it (``||x||^2 + ||y||^2 - 2 x.y``
    would cancel) and multiplied by ``2^-e`` when their spread ``2^e`` is far from 1 (costs would leave
    float64's range). ``W_eps(C) = s W_{eps/s}(C / s)`` for ``s = 2^(k e)``, so the divergence is
    computed, not approximated, there. Returns ``(xw, yw, eps in the frame, k e)``."""
    degree = _HOMOGENEOUS.get(cost) if isinstance(cost, str) else None
    if degree is None:
        return xw, yw, eps, 0
    flat = [z.reshape(len(z), -1) for z in (xw, yw)]
    e = spread_exponent(*flat)
    with torch.no_grad():
        hi = torch.maximum(flat[0].amax(0), flat[1].amax(0))
        lo = torch.minimum(flat[0].amin(0), flat[1].amin(0))
        centre = 0.5 * hi + 0.5 * lo
    if float(centre.abs().max()) > _FAR * 2.0**e:
        xw, yw = xw - centre.reshape(xw.shape[1:]), yw - centre.reshape(yw.shape[1:])
    if not needs_rescaling(e):
        return xw, yw, eps, 0
    k = degree * e
    eps_frame = times_pow2(eps, -k)
    if not (0 < eps_frame < float("inf")) or not 0 < times_pow2(1.0, k) < float("inf"):
        raise InputError(f"eps={eps:g} and costs of size 2^{k} cannot be represented together in float64")
    return times_pow2(xw, -e), times_pow2(yw, -e), eps_frame, k


def _unframed(res: SinkhornResult, k: int, eps: float) -> SinkhornResult:
    """A result computed in :func:`_frame`'s frame (costs ``2^-k`` times the true ones), in true units."""
    if k == 0:
        return res
    value = times_pow2(res.value, k)
    if not bool(torch.isfinite(value)):
        raise InputError(f"W_eps is of size 2^{k}, beyond float64's range")
    return res._replace(value=value, f=times_pow2(res.f, k), g=times_pow2(res.g, k), eps=eps)


#: the largest ``eps`` over the largest cost for which the log-domain sums keep the costs: their rounding, about
#: ``1e-16 eps log n`` a term, is then below about 1e-6 of the costs (at ``eps`` above this ``W_eps`` is the mean
#: cost ``<C, a x b>`` to within ``C / eps``, which the float64 sums can no longer resolve)
MAX_EPS_OVER_COST = 2.0**30


def _finite(C: torch.Tensor, eps: float | None = None) -> torch.Tensor:
    """``C``, unless an entry overflowed (a custom cost at an extreme scale of the data) or, given ``eps`` (the cost
    between the two sets: it sets the problem's scale, a self term's rounding of about ``1e-16 eps`` is then as
    small against it), ``eps`` exceeds the largest cost :data:`MAX_EPS_OVER_COST` times (costs rounded away: a
    number not computed)."""
    top = float(C.detach().abs().max()) if C.numel() else 0.0  # inf or NaN where an entry is (one pass for both)
    if not math.isfinite(top):
        raise InputError("the cost matrix has infinite or NaN entries at this scale of the data")
    if eps is not None and 0 < top < eps / MAX_EPS_OVER_COST:
        raise InputError(f"eps is {eps / top:.3g} times the largest cost: float64 cannot resolve the costs against "
                         f"it (W_eps is then the mean cost to within 1 / {eps / top:.3g}); use an eps at most "
                         f"{MAX_EPS_OVER_COST:.3g} times the costs")
    return C


def _entropic(xw, yw, la, lb, eps, cost, *, self_term: bool, max_iter, tol, scaling) -> SinkhornResult:
    """``W_eps`` between the (already converted) point sets, with the envelope-theorem gradient."""
    grad = torch.is_grad_enabled()
    if self_term:
        C_x = _finite(_cost(xw, xw.detach(), cost, True))  # gradient through the first argument only
        f, _, ok, it, err = solve_potentials(C_x.detach(), la, la, eps, symmetric=True, max_iter=max_iter, tol=tol,
                                   scaling=scaling)
        ft = softmin(eps, C_x, (la + f / eps).detach())
        value = 2 * (la.exp() * ft).sum()
        return SinkhornResult(value, f, f, ok, it, err, eps)
    C_xy = _finite(_cost(xw, yw.detach(), cost, False), eps)
    need_y = grad and yw.requires_grad
    C_yx = _cost(yw, xw.detach(), cost, False) if need_y else C_xy.detach().T
    f, g, ok, it, err = solve_potentials(C_xy.detach(), la, lb, eps, symmetric=False, max_iter=max_iter, tol=tol,
                               scaling=scaling)
    ft = softmin(eps, C_xy, (lb + g / eps).detach())
    gt = softmin(eps, C_yx, (la + f / eps).detach())
    value = (la.exp() * ft).sum() + (lb.exp() * gt).sum()
    return SinkhornResult(value, f, g, ok, it, err, eps)


def sinkhorn(x, y, eps: float, a=None, b=None, *, cost: str | CostFn = "euclidean",
             max_iter: int = DEFAULT_MAX_ITER, tol: float | None = None, scaling: float = 0.5,
             dtype: torch.dtype | None = torch.float64) -> SinkhornResult:
    """Entropic OT ``W_eps(x, y)`` with its potentials and convergence report (never raises on
    non-convergence; :func:`sinkhorn_cost` does). Arguments as in :func:`sinkhorn_cost`; ``value`` is in
    the working dtype."""
    eps = check_eps(eps)
    _, xw, yw, la, lb = _prepare(x, y, a, b, cost, dtype)
    xf, yf, eps_f, k = _frame(xw, yw, cost, eps)
    res = _entropic(xf, yf, la, lb, eps_f, cost, self_term=False, max_iter=positive_int(max_iter, "max_iter"),
                    tol=default_tol(tol, xw.dtype), scaling=check_scaling(scaling))
    return _unframed(res, k, eps)


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
    eps = check_eps(eps)
    backend = _check_backend(backend)
    xt, xw, yw, la, lb = _prepare(x, y, a, b, cost, dtype)
    xf, yf, eps_f, k = _frame(xw, yw, cost, eps)
    if backend == "geomloss":
        return times_pow2(_geomloss(xf, yf, la, lb, eps_f, cost, False, check_scaling(scaling)), k).to(xt.dtype)
    max_iter, tol = positive_int(max_iter, "max_iter"), default_tol(tol, xw.dtype)
    res = _unframed(_entropic(xf, yf, la, lb, eps_f, cost, self_term=False, max_iter=max_iter, tol=tol,
                              scaling=check_scaling(scaling)), k, eps)
    _raise_unless(res, "W_eps(x, y)", tol, max_iter)
    return res.value.to(xt.dtype)


class DivergenceTerms(NamedTuple):
    """The Sinkhorn divergence ``value = xy.value - (xx.value + yy.value) / 2`` (0-d tensor) with its three
    entropic solves (:class:`SinkhornResult`: iterations, marginal error, convergence of each)."""

    value: torch.Tensor
    xy: SinkhornResult
    xx: SinkhornResult
    yy: SinkhornResult

    def report(self) -> dict:
        """What the number is: ``eps``, the most iterations and the largest marginal error of the three solves."""
        terms = (self.xy, self.xx, self.yy)
        return {"eps": self.xy.eps, "iterations": max(t.n_iter for t in terms),
                "marginal_error": max(t.error for t in terms), "converged": all(t.converged for t in terms)}


def sinkhorn_divergence_terms(x, y, eps: float, a=None, b=None, cost: str | CostFn = "euclidean",
                              max_iter: int = DEFAULT_MAX_ITER, tol: float | None = None, *, scaling: float = 0.5,
                              dtype: torch.dtype | None = torch.float64) -> DivergenceTerms:
    """:func:`sinkhorn_divergence` (this module's solver) with the report of its three solves. Raises
    :class:`SinkhornNotConverged` when one of them misses ``tol``."""
    eps = check_eps(eps)
    xt, xw, yw, la, lb = _prepare(x, y, a, b, cost, dtype)
    xf, yf, eps_f, k = _frame(xw, yw, cost, eps)
    max_iter, tol = positive_int(max_iter, "max_iter"), default_tol(tol, xw.dtype)
    opts = {"max_iter": max_iter, "tol": tol, "scaling": check_scaling(scaling)}
    terms = []
    for what, u, v, lu, lv, self_term in (("W_eps(x, y)", xf, yf, la, lb, False), ("W_eps(x, x)", xf, xf, la, la, True),
                                          ("W_eps(y, y)", yf, yf, lb, lb, True)):
        res = _unframed(_entropic(u, v, lu, lv, eps_f, cost, self_term=self_term, **opts), k, eps)
        _raise_unless(res, what, tol, max_iter)
        terms.append(res)
    value = terms[0].value - 0.5 * (terms[1].value + terms[2].value)
    return DivergenceTerms(value.to(xt.dtype), *terms)


def sinkhorn_divergence(x, y, eps: float, a=None, b=None, cost: str | CostFn = "euclidean",
                        max_iter: int = DEFAULT_MAX_ITER, tol: float | None = None, *, scaling: float = 0.5,
                        dtype: torch.dtype | None = torch.float64, backend: str = "auto") -> torch.Tensor:
    """Debiased Sinkhorn divergence ``S_eps(x, y) = W_eps(x, y) - (W_eps(x, x) + W_eps(y, y)) / 2``.

    ``S_eps(x, x) = 0``, symmetric, ``>= 0`` (Feydy et al. 2019, for the Euclidean and squared Euclidean
    costs); ``-> OT_c`` as ``eps -> 0`` (the paper's ``S_{1,eps} -> W_1`` for the default cost) and ``->``
    the MMD with kernel ``-c`` as ``eps -> infinity``. The self terms use the symmetric solver. Arguments,
    result and errors as in :func:`sinkhorn_cost`.

    >>> x = torch.tensor([[0.0], [1.0]])
    >>> round(float(sinkhorn_divergence(x, x + 3, 0.01)), 3)  # ~ W1 = 3 (entropic bias ~ eps)
    2.993
    """
    backend = _check_backend(backend)
    if backend == "geomloss":
        eps = check_eps(eps)
        xt, xw, yw, la, lb = _prepare(x, y, a, b, cost, dtype)
        xf, yf, eps_f, k = _frame(xw, yw, cost, eps)
        return times_pow2(_geomloss(xf, yf, la, lb, eps_f, cost, True, check_scaling(scaling)), k).to(xt.dtype)
    return sinkhorn_divergence_terms(x, y, eps, a, b, cost, max_iter, tol, scaling=scaling, dtype=dtype).value
