"""Geometric medians, geometric k-medians clustering and OT-Means.

* :func:`geometric_median` — ``argmin_z sum_i w_i ||y_i - z||`` (Weiszfeld 1937 with the Vardi & Zhang
  2000 safeguard at data points).
* :func:`weiszfeld_step` — one batched reweighting step for ``k`` centroids at once, each weighted by a
  row of a ``(k, n)`` weight matrix (dense, or sparse such as an OT plan).
* :func:`geometric_kmedians` — Lloyd's algorithm with geometric-median centroids, initialised by
  scikit-learn's k-means (Stanczuk et al. 2021, section 5.4 and appendix A). Its objective, the mean
  distance from a point to its nearest centroid, equals ``W1(data, sum_j counts_j / n delta_{c_j})``
  (their Theorem A.1.3).
* :func:`ot_means` — Elnekave & Weiss, Algorithm 1: alternate an exact OT plan between ``m`` centroids
  (mass ``1/m`` each) and the data (mass ``1/N`` each) with Weiszfeld steps for each centroid weighted by
  its row of the plan. The exact W1 never increases (their Theorem 1).

Distances are Euclidean on flattened points (images ``N x C x H x W`` become ``N x CHW``), in the pixel
scale of the input. The vector work runs in float64 with torch on the input's device; exact OT runs on
the CPU through :mod:`wganlab.ot.exact`.

**The data-point safeguard.** Weiszfeld's map ``T(z) = sum_i (w_i / d_i) y_i / sum_i (w_i / d_i)``,
``d_i = ||y_i - z||``, is undefined when ``z`` sits on a data point. At such a point (here: a point whose
distance to ``z`` is at most ``1e-13 (||y_i|| + ||z||)``, the float64 resolution) let ``eta`` be the weight
sitting there, ``R = sum_{i: d_i > 0} w_i (y_i - z) / d_i`` and ``r = ||R||``. Then ``z`` is the median iff
``r <= eta``; otherwise the step is ``z + (1 - eta / r) (T~(z) - z)`` where ``T~`` is Weiszfeld's map over
the other points. This is Vardi & Zhang's modification; it never increases the weighted objective and
reduces to the plain step when ``eta = 0``. The iterative solvers (:func:`geometric_median`, k-medians)
additionally test, whenever the nearest data point of an iterate changes, whether that point satisfies
``r <= eta``, and jump to it when it does: Weiszfeld's iterates only approach a median lying on a data
point (linearly, at a rate ``r / eta`` that can be close to 1), while the test finds it exactly.

**Acceleration.** Weiszfeld's map is a majorise-minimise step and converges linearly, slowly when the
objective is badly conditioned (a median near, but not on, a data point: 1,600 steps for ``r / eta =
0.99`` in a test case). The iterative solvers wrap it in SQUAREM (Varadhan & Roland 2008) with a
monotone guard (an extrapolated point is kept only if its objective is no larger than after the plain
step), which cut that case to 50 map evaluations and never increases the objective.
:func:`weiszfeld_step` and :func:`ot_means` use the plain safeguarded step, as the paper does.

References: E. Weiszfeld, Tohoku Math. J. 43 (1937); Y. Vardi and C.-H. Zhang, PNAS 97 (2000);
A. Beck and S. Sabach, JOTA 164 (2015); R. Varadhan and C. Roland, Scand. J. Stat. 35 (2008);
J. Stanczuk, C. Etmann, L. M. Kreusser and C.-B. Schönlieb, "Wasserstein GANs work because they fail (to
approximate the Wasserstein distance)" (2021); A. Elnekave and Y. Weiss, "Do WGANs succeed because they
minimize the Wasserstein distance? Lessons from discrete generators", ICLR 2025 (review version: "In
defense of Wasserstein").
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from wganlab.checks import as_points, as_tensor, positive_int
from wganlab.errors import InputError
from wganlab.ot.exact import prepare_points, wasserstein

try:
    from wganlab.ot import _vz
except ImportError:  # numba missing or broken: the torch path runs everywhere
    _vz = None

#: two points closer than this times the sum of their norms are treated as the same point
COINCIDE_RTOL = 1e-13
#: elements of float64 scratch memory one chunk of (edge, coordinate) work uses (1 MB: small chunks stay in
#: cache and avoid page-faulting fresh allocations, 2x faster than 32 MB chunks on one CPU thread)
_CHUNK_ELEMENTS = 128 * 1024

#: Reference OT-Means schedule (Elnekave & Weiss' public code): 10 outer iterations of 5 x (exact OT
#: plan + one Weiszfeld step), centroids starting as 0.5 * N(0, I).
OT_MEANS_DEFAULTS = {"n_iter": 10, "ot_steps": 5, "weiszfeld_steps": 1, "init_std": 0.5}
#: Stanczuk et al. used 100 k-means initialisations; the default here is 10 (cheaper), pass n_init=100.
KMEDIANS_PAPER_N_INIT = 100


class ConvergenceWarning(UserWarning):
    """An iterative solver stopped at its iteration limit before meeting its tolerance."""


# --------------------------------------------------------------------------------------------------
# weights as edges (row = centroid, col = point, positive weight)
# --------------------------------------------------------------------------------------------------


def _edges(weights, k: int, n: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The positive entries of a ``(k, n)`` weight matrix as ``(rows, cols, values)`` on ``device``.

    Accepts a dense array/tensor, a torch sparse tensor (any layout) or a ``scipy.sparse`` matrix/array.
    """
    if isinstance(weights, torch.Tensor) and weights.layout != torch.strided:
        if weights.shape != (k, n):
            raise InputError(f"weights: expected shape {(k, n)}, got {tuple(weights.shape)}")
        coo = weights.to_sparse_coo().coalesce() if weights.layout != torch.sparse_coo else weights.coalesce()
        rows, cols = coo.indices()
        vals = coo.values().to(torch.float64)
    elif sp.issparse(weights):
        if weights.shape != (k, n):
            raise InputError(f"weights: expected shape {(k, n)}, got {tuple(weights.shape)}")
        coo = sp.coo_array(sp.csc_array(weights))  # point by point: the Weiszfeld pass then reads them in order
        rows = torch.as_tensor(np.asarray(coo.row, dtype=np.int64))
        cols = torch.as_tensor(np.asarray(coo.col, dtype=np.int64))
        vals = torch.as_tensor(np.asarray(coo.data, dtype=np.float64))
    else:
        W = as_tensor(weights, "weights", torch.float64)
        if W.shape != (k, n):
            raise InputError(f"weights: expected shape {(k, n)} (centroids x points), got {tuple(W.shape)}")
        rows, cols = torch.nonzero(W, as_tuple=True)
        vals = W[rows, cols]
    if not bool(torch.isfinite(vals).all()):
        raise InputError("weights contain NaN or infinite values")
    if bool((vals < 0).any()):
        raise InputError(f"weights must be non-negative (min {float(vals.min()):.3g})")
    keep = vals > 0
    return rows[keep].to(device), cols[keep].to(device), vals[keep].to(device)


def _point_weights(weights, n: int, device) -> torch.Tensor:
    """Non-negative weights for ``n`` points, normalised to sum 1 (uniform when None)."""
    if weights is None:
        return torch.full((n,), 1.0 / n, dtype=torch.float64, device=device)
    w = as_tensor(weights, "weights", torch.float64).to(device)
    if w.ndim != 1 or w.shape[0] != n:
        raise InputError(f"weights: expected {n} weights (one per point), got shape {tuple(w.shape)}")
    if bool((w < 0).any()):
        raise InputError(f"weights must be non-negative (min {float(w.min()):.3g})")
    s = float(w.sum())
    if not s > 0:
        raise InputError("weights: all weights are zero")
    return w / s


# --------------------------------------------------------------------------------------------------
# the Vardi-Zhang step
# --------------------------------------------------------------------------------------------------


def _vz_terms(x: torch.Tensor, Y: torch.Tensor, ynorm: torch.Tensor, rows: torch.Tensor,
              cols: torch.Tensor, w: torch.Tensor, want_dist: bool = False):
    """For every centroid ``x_j``: ``S_j = sum w/d`` and ``R_j = sum w (y - x_j)/d`` over the points not
    coinciding with ``x_j``, ``eta_j`` = the weight of the coinciding points and the objective
    ``f_j = sum w d``; optionally the per-edge distances. Works in chunks of edges so memory stays
    ``O(chunk * d)`` (float64 on the CPU with numba: one pass, :mod:`wganlab.ot._vz`). Returns ``(S, R, eta,
    f, dist)``."""
    if _vz is not None and x.device.type == Y.device.type == "cpu" and x.dtype == torch.float64 and \
            Y.dtype in (torch.float32, torch.float64):  # float32 points: read at half the cost, same values
        out = _vz.vz_terms(*(t.contiguous().numpy() for t in (x, Y, ynorm, rows, cols, w)), COINCIDE_RTOL)
        return tuple(torch.from_numpy(t) for t in out)
    k, d = x.shape
    S = torch.zeros(k, dtype=x.dtype, device=x.device)
    eta = torch.zeros_like(S)
    f = torch.zeros_like(S)
    R = torch.zeros_like(x)
    dist_all = torch.empty(len(rows), dtype=x.dtype, device=x.device) if want_dist else None
    xnorm = torch.linalg.vector_norm(x, dim=1)
    step = max(1, _CHUNK_ELEMENTS // max(d, 1))
    for s in range(0, len(rows), step):
        r, c, ww = rows[s:s + step], cols[s:s + step], w[s:s + step]
        diff = Y.index_select(0, c) - x.index_select(0, r)
        dist = torch.linalg.vector_norm(diff, dim=1)
        same = dist <= COINCIDE_RTOL * (ynorm.index_select(0, c) + xnorm.index_select(0, r))
        inv = torch.where(same, torch.zeros_like(dist), ww / torch.where(same, torch.ones_like(dist), dist))
        S.index_add_(0, r, inv)
        eta.index_add_(0, r, torch.where(same, ww, torch.zeros_like(ww)))
        f.index_add_(0, r, ww * dist)
        R.index_add_(0, r, diff * inv[:, None])
        if want_dist:
            dist_all[s:s + step] = dist
    return S, R, eta, f, dist_all


def _vz_update(x: torch.Tensor, S: torch.Tensor, R: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
    """``x + max(0, 1 - eta/r) R / S`` (plain Weiszfeld when ``eta = 0``; no move when ``S = 0``)."""
    r = torch.linalg.vector_norm(R, dim=1)
    tiny = torch.finfo(x.dtype).tiny
    factor = torch.where(eta > 0, (1.0 - eta / r.clamp_min(tiny)).clamp_min(0.0), torch.ones_like(eta))
    scale = torch.where(S > 0, factor / torch.where(S > 0, S, torch.ones_like(S)), torch.zeros_like(S))
    return x + scale[:, None] * R


def _is_median(S: torch.Tensor, R: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
    """Whether a centroid sitting on data points (``eta > 0``) is the median: ``||R|| <= eta``."""
    return (eta > 0) & (torch.linalg.vector_norm(R, dim=1) <= eta)


def weiszfeld_step(centroids, points, weights) -> torch.Tensor:
    """One Weiszfeld step for ``k`` weighted geometric-median problems at once.

    ``x_j <- sum_i (w_ji / ||y_i - x_j||) y_i / sum_i (w_ji / ||y_i - x_j||)`` for every centroid
    ``x_j`` (row ``j`` of ``centroids (k, d)``), with the Vardi-Zhang rule when ``x_j`` sits on a data
    point (see the module docstring), so that for every ``j`` the objective
    ``f_j(x) = sum_i w_ji ||y_i - x||`` never increases. A centroid with no weight does not move.

    ``points (n, d)``; ``weights (k, n)`` non-negative: a dense array/tensor, a torch sparse tensor or a
    ``scipy.sparse`` matrix. Only the non-zero entries are visited (an OT plan between 64 centroids and
    10,000 points has at most 10,063), in chunks, with no Python loop over points. Points and centroids
    may be images (flattened). Computed in float64 on the device of ``points``; returns ``(k, d)`` in
    float64.

    >>> weiszfeld_step([[0.0, 0.0]], [[0.0, 1.0], [0.0, 3.0]], [[1.0, 1.0]]).tolist()  # 1/1, 1/3 weights
    [[0.0, 1.5]]
    """
    Y = as_points(points, "points", torch.float64)
    x = as_points(centroids, "centroids", torch.float64).to(Y.device)
    if x.shape[1] != Y.shape[1]:
        raise InputError(f"dimension mismatch: centroids have {x.shape[1]} coordinates, points {Y.shape[1]}")
    rows, cols, w = _edges(weights, x.shape[0], Y.shape[0], Y.device)
    S, R, eta, _, _ = _vz_terms(x, Y, torch.linalg.vector_norm(Y, dim=1), rows, cols, w)
    return _vz_update(x, S, R, eta)


# --------------------------------------------------------------------------------------------------
# batched medians to convergence
# --------------------------------------------------------------------------------------------------


#: largest SQUAREM extrapolation length (in units of the Weiszfeld step)
_MAX_EXTRAPOLATION = 1e3


def _map_with_test(x: torch.Tensor, Y: torch.Tensor, ynorm: torch.Tensor, rows: torch.Tensor,
                   cols: torch.Tensor, w: torch.Tensor, rejected: torch.Tensor):
    """One evaluation of the safeguarded Weiszfeld map ``G`` at ``x`` for the rows that own edges among
    ``rows``: returns ``(f(x), G(x), optimal)``. ``optimal_j`` says row ``j`` found its exact median, a
    data point (``G(x)_j`` is then that point): either ``x_j`` sits on an optimal data point, or the
    nearest data point of ``x_j`` passes the test ``||R|| <= eta``. ``rejected`` (updated in place)
    remembers the last nearest point that failed, so the test costs a pass only when it changes."""
    k = x.shape[0]
    nnz = len(rows)
    S, R, eta, f, dist = _vz_terms(x, Y, ynorm, rows, cols, w, want_dist=True)
    g = _vz_update(x, S, R, eta)
    if nnz == 0:
        return f, g, torch.zeros(k, dtype=torch.bool, device=x.device)
    mind = torch.full((k,), math.inf, dtype=x.dtype, device=x.device).scatter_reduce(
        0, rows, dist, "amin", include_self=True)
    first = torch.full((k,), nnz, dtype=torch.long, device=x.device).scatter_reduce(
        0, rows, torch.where(dist == mind[rows], torch.arange(nnz, device=x.device), nnz), "amin",
        include_self=True)
    has = first < nnz
    near = torch.where(has, cols[first.clamp_max(nnz - 1)], 0)  # nearest data point of each row
    opt = has & _is_median(S, R, eta)  # on (within rounding) a data point that is optimal
    check = has & ~opt & (near != rejected)
    if bool(check.any()):
        q = torch.where(check[:, None], Y[near], x)
        sel = check[rows]
        Sq, Rq, etaq, _, _ = _vz_terms(q, Y, ynorm, rows[sel], cols[sel], w[sel])
        ok = check & _is_median(Sq, Rq, etaq)
        opt |= ok
        rejected.copy_(torch.where(check & ~ok, near, rejected))
    g = torch.where(opt[:, None], Y[near], g)  # return an optimal data point exactly
    return f, g, opt


def _medians(x: torch.Tensor, Y: torch.Tensor, ynorm: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
             w: torch.Tensor, *, max_iter: int, tol: float, scale: torch.Tensor):
    """All ``k`` weighted medians ``argmin_z sum_i w_ji ||y_i - z||`` (edges ``rows, cols, w``), started
    at ``x (k, d)``: the safeguarded Weiszfeld map ``G`` accelerated by SQUAREM (Varadhan & Roland 2008,
    scheme S3) with a monotone guard. A cycle from ``x0`` computes ``x1 = G(x0)``, ``x2 = G(x1)``, the
    extrapolation ``xp = x0 - 2 a r + a^2 v`` (``r = x1 - x0``, ``v = x2 - 2 x1 + x0``,
    ``a = -||r|| / ||v||`` clipped to ``[-1e3, -1]``; ``a = -1`` gives ``x2``) and continues from ``xp``
    if ``f(xp) <= f(x1)``, else from ``x2``; so the objective of every row never increases. A row stops
    when its plain Weiszfeld step is below ``tol * scale_j`` (it returns ``G`` of its last point) or when
    it finds its exact median on a data point. ``max_iter`` bounds the evaluations of ``G``.
    Returns ``(x, evaluations, converged)``."""
    k = x.shape[0]
    rejected = torch.full((k,), -1, dtype=torch.long, device=x.device)
    active = torch.bincount(rows, minlength=k) > 0  # a row without weight does not move
    out = x.clone()
    evals = 0

    def G(p: torch.Tensor, rows_on: torch.Tensor):
        nonlocal evals
        evals += 1
        e = rows_on[rows]
        return _map_with_test(p, Y, ynorm, rows[e], cols[e], w[e], rejected)

    x0 = x
    f0, x1, opt = G(x0, active)
    while True:
        out = torch.where((active & opt)[:, None], x1, out)
        active &= ~opt
        conv = active & (torch.linalg.vector_norm(x1 - x0, dim=1) <= tol * scale)
        out = torch.where(conv[:, None], x1, out)
        active &= ~conv
        if not bool(active.any()):
            return out, evals, True
        if evals >= max_iter:
            return torch.where(active[:, None], x1, out), evals, False
        f1, x2, opt2 = G(x1, active)
        out = torch.where((active & opt2)[:, None], x2, out)
        active &= ~opt2
        if not bool(active.any()):
            return out, evals, True
        r = x1 - x0
        v = x2 - x1 - r
        rn, vn = torch.linalg.vector_norm(r, dim=1), torch.linalg.vector_norm(v, dim=1)
        a = torch.where(vn > 0, -rn / torch.where(vn > 0, vn, torch.ones_like(vn)), -torch.ones_like(vn))
        a = a.clamp(-_MAX_EXTRAPOLATION, -1.0)[:, None]
        xp = x0 - 2 * a * r + a * a * v
        xp = torch.where(torch.isfinite(xp).all(1, keepdim=True), xp, x2)
        fp, xpp, optp = G(xp, active)
        good = fp <= f1
        bad = active & ~good
        x0, f0, x1, opt = xp, fp, xpp, optp
        if bool(bad.any()):
            f2, x3, opt3 = G(x2, bad)
            x0 = torch.where(bad[:, None], x2, x0)
            f0 = torch.where(bad, f2, f0)
            x1 = torch.where(bad[:, None], x3, x1)
            opt = torch.where(bad, opt3, opt)


def _out_dtype(t: torch.Tensor) -> torch.dtype:
    return t.dtype if t.is_floating_point() else torch.float32


def geometric_median(points, weights=None, *, init=None, max_iter: int = 1000, tol: float = 1e-10
                     ) -> torch.Tensor:
    """The weighted geometric median ``argmin_z sum_i w_i ||y_i - z||`` of ``points (n, d)``.

    Weiszfeld's iteration with the Vardi-Zhang safeguard, SQUAREM acceleration and an exact test of the
    nearest data point (see the module docstring; a median lying on a data point is returned exactly),
    started at the weighted mean (or ``init``). ``weights (n,)`` are non-negative (zero weights
    ignored), any positive total; uniform when None. Stops when a plain Weiszfeld step is below ``tol``
    times the weighted mean distance to the start; warns (:class:`ConvergenceWarning`) after
    ``max_iter`` evaluations of the Weiszfeld map. The objective is never above its value at the
    start.

    Computed in float64 on the device of ``points``; returns a ``(d,)`` tensor in the input's floating
    dtype (float32 for integer input). Images are flattened; a 1-D input is ``n`` points on a line
    (the result has shape ``(1,)``: the weighted 1-D median).

    >>> geometric_median([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]], [3, 1, 1, 1]).tolist()
    [0.0, 0.0]
    """
    P = as_points(points, "points")
    dtype = _out_dtype(P)
    Y = P.to(torch.float64)
    n, d = Y.shape
    max_iter = positive_int(max_iter, "max_iter")
    w = _point_weights(weights, n, Y.device)
    keep = w > 0
    Y, w = Y[keep], w[keep]
    if init is None:
        z = (w[:, None] * Y).sum(0) / w.sum()
    else:
        z = as_tensor(init, "init", torch.float64).to(Y.device).reshape(-1)
        if z.numel() != d:
            raise InputError(f"init: expected {d} coordinates, got {z.numel()}")
    scale = (w * torch.linalg.vector_norm(Y - z, dim=1)).sum() / w.sum()
    if not float(scale) > 0:  # every point with weight sits on z
        return z.to(dtype)
    rows = torch.zeros(len(Y), dtype=torch.long, device=Y.device)
    cols = torch.arange(len(Y), device=Y.device)
    x, _, ok = _medians(z[None], Y, torch.linalg.vector_norm(Y, dim=1), rows, cols, w,
                        max_iter=max_iter, tol=tol, scale=scale.reshape(1))
    if not ok:
        warnings.warn(f"geometric_median: no convergence in {max_iter} iterations (tol {tol:g})",
                      ConvergenceWarning, stacklevel=2)
    return x[0].to(dtype)


# --------------------------------------------------------------------------------------------------
# geometric k-medians
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KMediansResult:
    """Geometric k-medians clustering.

    Attributes:
        centroids: ``(k, ...)`` centroids (float64), in the per-point shape of the input.
        labels: ``(n,)`` index of each point's nearest centroid.
        objective: ``(1/n) sum_i min_j ||x_i - c_j||`` = ``W1(data, sum_j counts_j/n delta_{c_j})``
            (Theorem A.1.3 of Stanczuk et al.).
        counts: ``(k,)`` cluster sizes (0 only when fewer than ``k`` distinct points exist).
        objective_history: the objective after the initialisation and after each Lloyd iteration of
            the chosen restart (non-increasing).
        n_iter: Lloyd iterations of the chosen restart.
        kmeans_objective: the same objective (mean distance, not squared) for the chosen restart's
            k-means initial centroids.
        restart: index of the chosen restart; ``restart_objectives`` the final objective of every one.
    """

    centroids: torch.Tensor
    labels: torch.Tensor
    objective: float
    counts: torch.Tensor
    objective_history: list[float]
    n_iter: int
    kmeans_objective: float
    restart: int = 0
    restart_objectives: list[float] = field(default_factory=list)

    @property
    def inertia_history(self) -> list[float]:
        """Alias of ``objective_history`` (mean distances, not squared distances)."""
        return self.objective_history


def _row_dist(X: torch.Tensor, c: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``||x_i - c_{labels_i}||`` computed from differences (no cancellation)."""
    out = torch.empty(len(X), dtype=X.dtype, device=X.device)
    step = max(1, _CHUNK_ELEMENTS // max(X.shape[1], 1))
    for s in range(0, len(X), step):
        out[s:s + step] = torch.linalg.vector_norm(X[s:s + step] - c[labels[s:s + step]], dim=1)
    return out


def _assign(X: torch.Tensor, c: torch.Tensor, prev: torch.Tensor | None = None):
    """Nearest-centroid labels and exact distances. With ``prev``, a point keeps its previous label
    unless the new one is strictly nearer, so rounding in the matrix-product distances can never
    increase the objective."""
    lab = torch.cdist(X, c).argmin(1)
    dist = _row_dist(X, c, lab)
    if prev is not None:
        dprev = _row_dist(X, c, prev)
        keep = dprev <= dist
        lab = torch.where(keep, prev, lab)
        dist = torch.where(keep, dprev, dist)
    return lab, dist


def _fill_empty(X: torch.Tensor, c: torch.Tensor, labels: torch.Tensor, dist: torch.Tensor):
    """Re-seed each empty cluster at the point farthest from its centroid (that point joins the empty
    cluster, its distance drops to 0, so the objective does not increase). Returns whether anything
    changed. Stops when the farthest point is at distance 0 (fewer distinct points than clusters)."""
    k = c.shape[0]
    changed = False
    for _ in range(k):
        empty = torch.nonzero(torch.bincount(labels, minlength=k) == 0).flatten()
        if len(empty) == 0:
            break
        i = int(dist.argmax())
        if not float(dist[i]) > 0:
            break
        j = int(empty[0])
        c[j] = X[i]
        labels[i] = j
        dist[i] = 0.0
        changed = True
    return changed


def _lloyd(X: torch.Tensor, xnorm: torch.Tensor, c: torch.Tensor, *, max_iter: int, median_iter: int,
           tol: float, scale: torch.Tensor):
    n = len(X)
    cols = torch.arange(n, device=X.device)
    ones = torch.ones(n, dtype=X.dtype, device=X.device)
    labels, dist = _assign(X, c)
    obj = float(dist.mean())
    history = [obj]
    init_obj = obj
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007
        moved = _fill_empty(X, c, labels, dist)
        c, _, _ = _medians(c, X, xnorm, labels, cols, ones, max_iter=median_iter, tol=tol,
                           scale=scale.expand(c.shape[0]))
        new_labels, dist = _assign(X, c, prev=labels)
        new_obj = float(dist.mean())
        changed = moved or bool((new_labels != labels).any())
        labels = new_labels
        history.append(new_obj)
        if not changed and obj - new_obj <= tol * max(obj, 1e-300):
            obj = new_obj
            break
        obj = new_obj
    return c, labels, dist, history, it, init_obj


def geometric_kmedians(x, k: int, *, n_init: int = 10, max_iter: int = 100, seed: int = 0,
                       init="kmeans", median_iter: int = 100, tol: float = 1e-9) -> KMediansResult:
    """Geometric k-medians: ``argmin_{c_1..c_k} (1/n) sum_i min_j ||x_i - c_j||`` by Lloyd's algorithm
    with geometric-median centroids (Stanczuk et al. 2021, section 5.4).

    Each of ``n_init`` restarts draws initial centroids, then alternates (a) each cluster's centroid
    <- its geometric median (the solver of :func:`geometric_median`, warm-started at the current
    centroid, batched over clusters, at most ``median_iter`` map evaluations per Lloyd iteration),
    (b) each point <- its nearest centroid (a tie keeps the current label), until the
    labels stop changing and the objective improves by less than ``tol`` (relative), or ``max_iter``
    Lloyd iterations. The objective never increases. The restart with the lowest objective is returned.

    ``init``: ``"kmeans"`` (the paper's: scikit-learn ``KMeans`` with k-means++ seeding, one seeding
    per restart, seeded from ``seed``; the paper used 100 restarts), ``"k-means++"`` (the seeding only)
    or an array of ``k`` initial centroids (one restart). An empty cluster is re-seeded at the point
    farthest from its centroid.

    ``x (n, ...)`` (images are flattened; centroids come back in the per-point shape), float64 on the
    input's device (k-means on the CPU).

    >>> r = geometric_kmedians([[0.0], [1.0], [2.0], [10.0], [11.0], [12.0]], 2, n_init=1)
    >>> sorted(r.centroids.flatten().tolist()), round(r.objective, 12)
    ([1.0, 11.0], 0.666666666667)
    """
    X0 = as_tensor(x, "x")
    point_shape = X0.shape[1:]
    X = as_points(X0, "x", torch.float64)
    n, d = X.shape
    k = positive_int(k, "k")
    if k > n:
        raise InputError(f"k={k} exceeds the number of points n={n}")
    n_init = positive_int(n_init, "n_init")
    max_iter = positive_int(max_iter, "max_iter")
    median_iter = positive_int(median_iter, "median_iter")
    xnorm = torch.linalg.vector_norm(X, dim=1)
    scale = torch.linalg.vector_norm(X - X.mean(0), dim=1).mean().clamp_min(1e-300)

    if isinstance(init, str):
        if init not in ("kmeans", "k-means++"):
            raise InputError(f"init must be 'kmeans', 'k-means++' or an array of centroids, got {init!r}")
        starts = _kmeans_starts(X, k, n_init, seed, init)
    else:
        c0 = as_points(init, "init", torch.float64).to(X.device)
        if c0.shape != (k, d):
            raise InputError(f"init: expected {k} centroids of dimension {d}, got shape {tuple(c0.shape)}")
        starts = [c0]

    best = None
    finals = []
    for r, c0 in enumerate(starts):
        c, labels, _, hist, it, init_obj = _lloyd(X, xnorm, c0.clone(), max_iter=max_iter,
                                                  median_iter=median_iter, tol=tol, scale=scale)
        finals.append(hist[-1])
        if best is None or hist[-1] < best[0]:
            best = (hist[-1], r, c, labels, hist, it, init_obj)
    obj, r, c, labels, hist, it, init_obj = best
    return KMediansResult(centroids=c.reshape(k, *point_shape) if point_shape else c.reshape(k),
                          labels=labels, objective=obj, counts=torch.bincount(labels, minlength=k),
                          objective_history=hist, n_iter=it, kmeans_objective=init_obj, restart=r,
                          restart_objectives=finals)


def _kmeans_starts(X: torch.Tensor, k: int, n_init: int, seed: int, how: str) -> list[torch.Tensor]:
    from sklearn.cluster import KMeans, kmeans_plusplus
    from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning

    Xn = X.detach().cpu().numpy()
    seeds = np.random.default_rng(seed).integers(0, 2**31 - 1, size=n_init)
    out = []
    for s in seeds:
        with warnings.catch_warnings():  # duplicate points: fewer distinct clusters than k is handled here
            warnings.simplefilter("ignore", SkConvergenceWarning)
            if how == "kmeans":
                km = KMeans(n_clusters=k, init="k-means++", n_init=1, random_state=int(s)).fit(Xn)
                centers = km.cluster_centers_
            else:
                centers, _ = kmeans_plusplus(Xn, k, random_state=int(s))
        out.append(torch.as_tensor(np.asarray(centers, dtype=np.float64), device=X.device))
    return out


# --------------------------------------------------------------------------------------------------
# OT-Means
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OTMeansResult:
    """OT-Means output.

    Attributes:
        centroids: ``(m, ...)`` in the per-point shape and floating dtype of the input (float64 inside).
        w1_trace: the exact W1 of every OT solve, in order: one before each Weiszfeld update, then the
            final W1 after the last update (``n_iter * ot_steps + 1`` values). Non-increasing.
        n_solves: the number of exact OT solves (``len(w1_trace)``).
        plan: the final solve's optimal plan, ``(m, N)`` ``scipy.sparse.csr_array``.
    """

    centroids: torch.Tensor
    w1_trace: list[float]
    n_solves: int
    plan: sp.csr_array | None = None

    @property
    def w1(self) -> float:
        """The final exact W1 between the centroids (mass 1/m each) and the data (1/N each)."""
        return self.w1_trace[-1]


def ot_means(y, m: int, *, n_iter: int = 10, ot_steps: int = 5, weiszfeld_steps: int = 1, init=None,
             init_std: float = 0.5, seed: int = 0,
             callback: Callable[[int, torch.Tensor, list[float]], object] | None = None,
             engine: str = "auto") -> OTMeansResult:
    """OT-Means (Elnekave & Weiss, Algorithm 1): ``m`` points minimising the exact W1 to ``y``.

    The centroids ``x_1..x_m`` carry mass ``1/m`` and the data ``y_1..y_N`` mass ``1/N``. Each of the
    ``n_iter * ot_steps`` updates solves the exact OT problem (:func:`wganlab.ot.exact.wasserstein`,
    cost ``||x_j - y_i||`` on flattened points) for the plan ``P (m, N)``, then moves every centroid by
    ``weiszfeld_steps`` Weiszfeld steps (:func:`weiszfeld_step`) on ``argmin_z sum_i P_ji ||y_i - z||``.
    Since ``P`` stays feasible and each step lowers its centroid's weighted sum,
    ``W1`` never increases (their Theorem 1); with ``m = N`` the centroids become copies of the data.

    Defaults are the reference schedule (:data:`OT_MEANS_DEFAULTS`): ``n_iter=10`` outer iterations of
    ``ot_steps=5`` x (exact plan + ``weiszfeld_steps=1`` step) = 50 updates, then a final solve for the
    last W1 (51 solves); centroids start as ``init_std * N(0, I)`` drawn with ``torch.Generator``
    seeded by ``seed`` (in float64), unless ``init (m, ...)`` is given. ``callback(outer, centroids,
    w1_trace)`` is called after each outer iteration (``centroids`` is a copy in the input's shape).

    ``y (N, ...)``: points or images ``(N, C, H, W)`` (flattened inside; centroids come back in the
    input's per-point shape, dtype and device). The Weiszfeld work runs in float64 on ``y``'s device,
    the OT solve on the CPU with ``engine`` (see :func:`wganlab.ot.exact.wasserstein`); each solve is
    warm-started from the previous one's potentials (the plan changes little between updates).

    >>> r = ot_means([[0.0], [2.0], [10.0], [12.0]], 2, n_iter=3, ot_steps=2, init=[[1.0], [5.0]])
    >>> r.n_solves, round(r.w1, 9), r.w1_trace[0]  # any point of [10, 12] is a median of {10, 12}
    (7, 1.0, 3.5)
    """
    Yt = as_tensor(y, "y")
    point_shape = Yt.shape[1:]
    dtype = _out_dtype(Yt)
    target = prepare_points(Yt)  # the solver's copy of y as given (float32 stays float32), made once
    # the Weiszfeld work reads the same values from it on the CPU (float32 data: half the reading)
    Y = torch.from_numpy(target.exact) if Yt.device.type == "cpu" else as_points(Yt, "y", torch.float64)
    N, D = Y.shape
    if init is None:
        m = positive_int(m, "m")
    else:
        X = as_tensor(init, "init", torch.float64).to(Y.device)
        if X.shape[1:] != point_shape and not (X.ndim == 2 and X.shape[1] == D):
            raise InputError(f"init: points of shape {tuple(X.shape[1:])} do not match y's "
                             f"{tuple(point_shape)}")
        X = X.reshape(len(X), D).clone()
        if m is None:
            m = len(X)
        m = positive_int(m, "m")
        if len(X) != m:
            raise InputError(f"init has {len(X)} centroids but m={m}")
    if isinstance(n_iter, bool) or not isinstance(n_iter, (int, np.integer)) or n_iter < 0:
        raise InputError(f"n_iter: expected a non-negative integer, got {n_iter!r}")
    ot_steps = positive_int(ot_steps, "ot_steps")
    weiszfeld_steps = positive_int(weiszfeld_steps, "weiszfeld_steps")
    if init is None:
        if not (math.isfinite(init_std) and init_std >= 0):
            raise InputError(f"init_std must be finite and >= 0, got {init_std!r}")
        g = torch.Generator().manual_seed(int(seed))
        X = (init_std * torch.randn(m, D, generator=g, dtype=torch.float64)).to(Y.device)

    ynorm = torch.linalg.vector_norm(Y, dim=1).to(torch.float64)  # in y's precision: only a tolerance's scale
    trace: list[float] = []
    last = None

    def solve():
        nonlocal last
        last = wasserstein(X, target, plan=True, engine=engine, warm_start=last)
        trace.append(float(last.value))
        return last.plan

    def shaped(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(m, *point_shape) if point_shape else t.reshape(m)

    for outer in range(int(n_iter)):
        for _ in range(ot_steps):
            rows, cols, w = _edges(solve(), m, N, Y.device)
            for _ in range(weiszfeld_steps):
                S, R, eta, _, _ = _vz_terms(X, Y, ynorm, rows, cols, w)
                X = _vz_update(X, S, R, eta)
        if callback is not None:
            callback(outer, shaped(X.clone()).to(dtype), list(trace))
    plan = sp.csr_array(solve())
    return OTMeansResult(centroids=shaped(X).to(dtype), w1_trace=trace, n_solves=len(trace), plan=plan)


__all__ = [
    "COINCIDE_RTOL",
    "KMEDIANS_PAPER_N_INIT",
    "OT_MEANS_DEFAULTS",
    "ConvergenceWarning",
    "KMediansResult",
    "OTMeansResult",
    "geometric_kmedians",
    "geometric_median",
    "ot_means",
    "weiszfeld_step",
]
