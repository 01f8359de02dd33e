"""Geometric medians and geometric k-medians clustering.

* :func:`geometric_median` — ``argmin_z sum_i w_i ||y_i - z||`` (Weiszfeld 1937 with the Vardi & Zhang
  2000 safeguard at data points).
* :func:`~wganlab.ot.weiszfeld.weiszfeld_step` (:mod:`wganlab.ot.weiszfeld`, shared with OT-Means) — one
  batched, safeguarded reweighting step for ``k`` centroids at once.
* :func:`geometric_kmedians` — Lloyd's algorithm with geometric-median centroids, initialised by
  scikit-learn's k-means (Stanczuk et al. 2021, section 5.4 and appendix A). Its objective, the mean
  distance from a point to its nearest centroid, equals ``W1(data, sum_j counts_j / n delta_{c_j})``
  (their Theorem A.1.3).
(OT-Means, Elnekave & Weiss' Algorithm 1, is :mod:`wganlab.ot.otmeans`.)

Distances are Euclidean on flattened points (images ``N x C x H x W`` become ``N x CHW``), in the pixel
scale of the input. The vector work runs in float64 with torch on the input's device.

**The data-point safeguard** (Vardi & Zhang; :mod:`wganlab.ot.weiszfeld`). The iterative solvers
additionally test, whenever the nearest data point of an iterate changes, whether that point satisfies
``r <= eta``, and jump to it when it does: Weiszfeld's iterates only approach a median lying on a data
point (linearly, at a rate ``r / eta`` that can be close to 1), while the test finds it exactly.


**Acceleration.** Weiszfeld's map is a majorise-minimise step and converges linearly, slowly when the
objective is badly conditioned (a median near, but not on, a data point: 1,600 steps for ``r / eta =
0.99`` in a test case). The iterative solvers wrap it in SQUAREM (Varadhan & Roland 2008) with a
monotone guard (an extrapolated point is kept only if its objective is no larger than after the plain
step), which cut that case to 50 map evaluations and never increases the objective.
:func:`~wganlab.ot.weiszfeld.weiszfeld_step` and OT-Means use the plain safeguarded step, as the paper does.

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
from dataclasses import dataclass, field

import numpy as np
import torch

from wganlab.checks import as_points, as_tensor, positive_int
from wganlab.errors import InputError
from wganlab.ot.scale import rescaling_exponent, times_pow2
from wganlab.ot.weiszfeld import edge_lengths, float_dtype, is_median, vz_terms, vz_update


class ConvergenceWarning(UserWarning):
    """An iterative solver stopped at its iteration limit before meeting its tolerance."""


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
    terms = vz_terms(x, Y, ynorm, rows, cols, w, want_dist=True)
    f, dist = terms.f, terms.dist
    g = vz_update(x, terms)
    if nnz == 0:
        return f, g, torch.zeros(k, dtype=torch.bool, device=x.device)
    mind = torch.full((k,), math.inf, dtype=x.dtype, device=x.device).scatter_reduce(
        0, rows, dist, "amin", include_self=True)
    first = torch.full((k,), nnz, dtype=torch.long, device=x.device).scatter_reduce(
        0, rows, torch.where(dist == mind[rows], torch.arange(nnz, device=x.device), nnz), "amin",
        include_self=True)
    has = first < nnz
    near = torch.where(has, cols[first.clamp_max(nnz - 1)], 0)  # nearest data point of each row
    opt = has & is_median(terms.S, terms.R, terms.eta)  # on (within rounding) a data point that is optimal
    check = has & ~opt & (near != rejected)
    if bool(check.any()):
        q = torch.where(check[:, None], Y[near], x)
        sel = check[rows]
        tq = vz_terms(q, Y, ynorm, rows[sel], cols[sel], w[sel])
        ok = check & is_median(tq.S, tq.R, tq.eta)
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
    dtype = float_dtype(P)
    Y = P.to(torch.float64)
    n, d = Y.shape
    max_iter = positive_int(max_iter, "max_iter")
    w = _point_weights(weights, n, Y.device)
    keep = w > 0
    Y, w = Y[keep], w[keep]
    # points whose spread is far from 1 are solved multiplied by 2^-e (exact): squared distances would overflow or
    # underflow beyond about 1e150 or below 1e-150
    e = rescaling_exponent(Y)
    Y = times_pow2(Y, -e)
    if init is None:
        z = (w[:, None] * Y).sum(0) / w.sum()
    else:
        z = times_pow2(as_tensor(init, "init", torch.float64).to(Y.device).reshape(-1), -e)
        if z.numel() != d:
            raise InputError(f"init: expected {d} coordinates, got {z.numel()}")
    scale = (w * torch.linalg.vector_norm(Y - z, dim=1)).sum() / w.sum()
    if not float(scale) > 0:  # every point with weight sits on z
        return times_pow2(z, e).to(dtype)
    rows = torch.zeros(len(Y), dtype=torch.long, device=Y.device)
    cols = torch.arange(len(Y), device=Y.device)
    x, _, ok = _medians(z[None], Y, torch.linalg.vector_norm(Y, dim=1), rows, cols, w,
                        max_iter=max_iter, tol=tol, scale=scale.reshape(1))
    if not ok:
        warnings.warn(f"geometric_median: no convergence in {max_iter} iterations (tol {tol:g})",
                      ConvergenceWarning, stacklevel=2)
    return times_pow2(x[0], e).to(dtype)


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
    """``||x_i - c_{labels_i}||`` (float64) computed from differences (no cancellation)."""
    return edge_lengths(c, X, labels, torch.arange(len(X), device=X.device))


#: float64 elements of one chunk of the points in :func:`_nearest` (32 MB: a GEMM large enough to run at speed)
NEAREST_CHUNK_ELEMENTS = 1 << 22


def _nearest(X: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Index of each point's nearest centroid, ``argmin_j ||c_j||^2 - 2 x_i . c_j`` (float64 GEMMs over chunks of
    ``X (n, d)``; ``c (k, d)`` float64): ``||x_i - c_j||^2`` up to rounding, without its constant ``||x_i||^2``."""
    cn = (c * c).sum(1)
    out = torch.empty(len(X), dtype=torch.long, device=X.device)
    step = max(1, NEAREST_CHUNK_ELEMENTS // max(X.shape[1], 1))
    for s in range(0, len(X), step):
        out[s:s + step] = torch.addmm(cn, X[s:s + step].to(c.dtype), c.T, alpha=-2).argmin(1)
    return out


def _assign(X: torch.Tensor, c: torch.Tensor, prev: torch.Tensor | None = None):
    """Nearest-centroid labels and exact distances. With ``prev``, a point keeps its previous label
    unless the new one is strictly nearer, so rounding in the matrix-product distances can never
    increase the objective."""
    lab = _nearest(X, c)
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
    ones = torch.ones(n, dtype=torch.float64, device=X.device)
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

    ``x (n, ...)`` (images are flattened; centroids come back in the per-point shape): float64 arithmetic on the
    input's device, float32 points read as such; k-means on the CPU in the points' precision.

    >>> r = geometric_kmedians([[0.0], [1.0], [2.0], [10.0], [11.0], [12.0]], 2, n_init=1)
    >>> sorted(r.centroids.flatten().tolist()), round(r.objective, 12)
    ([1.0, 11.0], 0.666666666667)
    """
    X0 = as_tensor(x, "x")
    point_shape = X0.shape[1:]
    # float32 points stay float32 (read at half the cost, the same values in float64 arithmetic)
    X = as_points(X0, "x", None if X0.dtype in (torch.float32, torch.float64) else torch.float64)
    n, d = X.shape
    k = positive_int(k, "k")
    if k > n:
        raise InputError(f"k={k} exceeds the number of points n={n}")
    n_init = positive_int(n_init, "n_init")
    max_iter = positive_int(max_iter, "max_iter")
    median_iter = positive_int(median_iter, "median_iter")
    # data whose spread is far from 1 is clustered multiplied by 2^-e (exact): squared distances would overflow or
    # underflow (float64 beyond about 1e150 or below 1e-150; float32 k-means beyond 1e19 or below 1e-19)
    e = rescaling_exponent(X)
    if e:
        X = times_pow2(X.double(), -e).to(X.dtype)
    xnorm = torch.linalg.vector_norm(X, dim=1, dtype=torch.float64)
    scale = torch.linalg.vector_norm(X - X.mean(0, dtype=torch.float64), dim=1).mean().clamp_min(1e-300)

    if isinstance(init, str):
        if init not in ("kmeans", "k-means++"):
            raise InputError(f"init must be 'kmeans', 'k-means++' or an array of centroids, got {init!r}")
        starts = _kmeans_starts(X, k, n_init, seed, init)
    else:
        c0 = as_points(init, "init", torch.float64).to(X.device)
        if c0.shape != (k, d):
            raise InputError(f"init: expected {k} centroids of dimension {d}, got shape {tuple(c0.shape)}")
        starts = [times_pow2(c0, -e)]

    best = None
    finals = []
    for r, c0 in enumerate(starts):
        c, labels, _, hist, it, init_obj = _lloyd(X, xnorm, c0.clone(), max_iter=max_iter,
                                                  median_iter=median_iter, tol=tol, scale=scale)
        finals.append(hist[-1])
        if best is None or hist[-1] < best[0]:
            best = (hist[-1], r, c, labels, hist, it, init_obj)
    obj, r, c, labels, hist, it, init_obj = best
    c = times_pow2(c, e)
    return KMediansResult(centroids=c.reshape(k, *point_shape) if point_shape else c.reshape(k),
                          labels=labels, objective=times_pow2(obj, e), counts=torch.bincount(labels, minlength=k),
                          objective_history=[times_pow2(h, e) for h in hist], n_iter=it,
                          kmeans_objective=times_pow2(init_obj, e), restart=r,
                          restart_objectives=[times_pow2(f, e) for f in finals])


def _kmeans_starts(X: torch.Tensor, k: int, n_init: int, seed: int, how: str) -> list[torch.Tensor]:
    from sklearn.cluster import KMeans, kmeans_plusplus
    from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning

    Xn = X.detach().cpu().numpy()  # float32 points: scikit-learn's k-means in float32 (at 10 centroids 7x faster)
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


__all__ = ["ConvergenceWarning", "KMediansResult", "geometric_kmedians", "geometric_median"]
