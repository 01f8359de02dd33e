"""The safeguarded Weiszfeld step shared by the median solvers (:mod:`wganlab.ot.medians`) and OT-Means
(:mod:`wganlab.ot.otmeans`): one step for ``k`` weighted geometric-median problems at once, each weighted by a
row of a ``(k, n)`` weight matrix (dense, or sparse such as an OT plan), visited as its positive entries.

**The data-point safeguard.** Weiszfeld's map ``T(z) = sum_i (w_i / d_i) y_i / sum_i (w_i / d_i)``,
``d_i = ||y_i - z||``, is undefined when ``z`` sits on a data point. At such a point (here: a point whose
distance to ``z`` is at most ``1e-13 (||y_i|| + ||z||)``, the float64 resolution) let ``eta`` be the weight
sitting there, ``R = sum_{i: d_i > 0} w_i (y_i - z) / d_i`` and ``r = ||R||``. Then ``z`` is the median iff
``r <= eta``; otherwise the step is ``z + (1 - eta / r) (T~(z) - z)`` where ``T~`` is Weiszfeld's map over
the other points. This is Vardi & Zhang's modification; it never increases the weighted objective and
reduces to the plain step when ``eta = 0``. (The median solvers of
:mod:`wganlab.ot.medians` add an exact test of the nearest data point.)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import torch

from wganlab.checks import as_points, as_tensor
from wganlab.errors import InputError
from wganlab.ot.scale import rescaling_exponent, times_pow2

try:
    from wganlab.ot import weiszfeld_kernel
except ImportError:  # numba missing or broken: the torch path runs everywhere
    weiszfeld_kernel = None

#: two points closer than this times the sum of their norms are treated as the same point
COINCIDE_RTOL = 1e-13
#: a centroid farther from the origin than this times every one of its points steps onto their convex
#: combination (:func:`vz_terms`), not by a difference that would cancel
FAR_RATIO = 1024.0
#: elements of float64 scratch memory one chunk of (edge, coordinate) work uses (1 MB: small chunks stay in
#: cache and avoid page-faulting fresh allocations, faster than 32 MB chunks on one CPU thread)
CHUNK_ELEMENTS = 128 * 1024

__all__ = ["COINCIDE_RTOL", "FAR_RATIO", "VZTerms", "edge_lengths", "float_dtype", "is_median", "plan_edges",
           "vz_terms", "vz_update", "weiszfeld_step"]


# --------------------------------------------------------------------------------------------------
# weights as edges (row = centroid, col = point, positive weight)
# --------------------------------------------------------------------------------------------------


def plan_edges(weights, k: int, n: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
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


# --------------------------------------------------------------------------------------------------
# the Vardi-Zhang step
# --------------------------------------------------------------------------------------------------


class VZTerms(NamedTuple):
    """The terms of one Vardi-Zhang step for ``k`` centroids (float64): ``S (k,)``, ``R (k, d)``, ``eta (k,)``,
    ``f (k,)``, ``dist (E,)`` or None, ``far (k,)`` bool (see :func:`vz_terms`)."""

    S: torch.Tensor
    R: torch.Tensor
    eta: torch.Tensor
    f: torch.Tensor
    dist: torch.Tensor | None
    far: torch.Tensor


def vz_terms(x: torch.Tensor, Y: torch.Tensor, ynorm: torch.Tensor, rows: torch.Tensor,
             cols: torch.Tensor, w: torch.Tensor, want_dist: bool = False, dist: torch.Tensor | None = None) -> VZTerms:
    """For every centroid ``x_j``: ``S_j = sum w/d`` and ``R_j = sum w (y - x_j)/d`` over the points not
    coinciding with ``x_j``, ``eta_j`` = the weight of the coinciding points and the objective
    ``f_j = sum w d``; optionally the per-edge distances. ``dist (E,)``: the edge lengths when they are known
    (an exact solve's float64 costs of its plan's arcs, the same values), not computed again.

    ``far_j``: ``||x_j|| > FAR_RATIO ||y||`` for every point of ``x_j`` (a centroid far out, e.g. started in
    absolute units beside data of scale 1e-300). Its step ``x_j + R_j / S_j`` would keep only about
    ``1e-16 ||x_j||`` of the landing point, so ``R_j`` holds ``P_j = sum (w/d) y`` instead and the step lands on
    the convex combination ``P_j / S_j`` (:func:`vz_update`), exact to the points' own rounding.

    Works in chunks of edges so memory stays ``O(chunk * d)`` (float64 on the CPU with numba: one pass,
    :mod:`wganlab.ot.weiszfeld_kernel`)."""
    if weiszfeld_kernel is not None and x.device.type == Y.device.type == "cpu" and x.dtype == torch.float64 and \
            Y.dtype in (torch.float32, torch.float64):  # float32 points: read at half the cost, same values
        lengths = np.empty(len(rows)) if dist is None else dist.to(torch.float64).contiguous().numpy()
        out = weiszfeld_kernel.vz_terms(*(t.contiguous().numpy() for t in (x, Y, ynorm, rows, cols, w)), lengths,
                                        dist is not None, COINCIDE_RTOL, FAR_RATIO)
        return VZTerms(*(torch.from_numpy(t) for t in out))
    k, d = x.shape
    S = torch.zeros(k, dtype=x.dtype, device=x.device)
    eta = torch.zeros_like(S)
    f = torch.zeros_like(S)
    ymax = torch.zeros_like(S)
    R = torch.zeros_like(x)
    dist_all = torch.empty(len(rows), dtype=x.dtype, device=x.device) if want_dist else None
    xnorm = torch.linalg.vector_norm(x, dim=1)
    step = max(1, CHUNK_ELEMENTS // max(d, 1))
    for s in range(0, len(rows), step):
        r, c, ww = rows[s:s + step], cols[s:s + step], w[s:s + step]
        diff = Y.index_select(0, c) - x.index_select(0, r)
        de = torch.linalg.vector_norm(diff, dim=1) if dist is None else dist[s:s + step].to(x)
        yn = ynorm.index_select(0, c).to(x.dtype)
        same = de <= COINCIDE_RTOL * (yn + xnorm.index_select(0, r))
        inv = torch.where(same, torch.zeros_like(de), ww / torch.where(same, torch.ones_like(de), de))
        S.index_add_(0, r, inv)
        eta.index_add_(0, r, torch.where(same, ww, torch.zeros_like(ww)))
        f.index_add_(0, r, ww * de)
        ymax.scatter_reduce_(0, r, torch.where(same, torch.zeros_like(yn), yn), "amax")
        R.index_add_(0, r, diff * inv[:, None])
        if want_dist:
            dist_all[s:s + step] = de
    far = (eta == 0) & (S > 0) & (xnorm > FAR_RATIO * ymax)
    if bool(far.any()):  # the uncentred sums of the far rows, in a second pass over their edges
        sel = far.index_select(0, rows).nonzero().squeeze(1)
        R[far] = 0.0
        for s in range(0, len(sel), step):
            e = sel[s:s + step]
            r, y = rows.index_select(0, e), Y.index_select(0, cols.index_select(0, e)).to(x.dtype)
            inv = w.index_select(0, e) / torch.linalg.vector_norm(y - x.index_select(0, r), dim=1)
            R.index_add_(0, r, y * inv[:, None])
    return VZTerms(S, R, eta, f, dist_all, far)


def edge_lengths(x: torch.Tensor, Y: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``||Y[c_e] - x[r_e]|| (E,)`` for the edges ``(rows, cols)`` between centroids ``x (k, d)`` (float64) and
    points ``Y (n, d)`` (float32 or float64), in float64 from differences (no cancellation): one pass of
    :mod:`wganlab.ot.weiszfeld_kernel` on the CPU, else torch in chunks."""
    if weiszfeld_kernel is not None and x.device.type == Y.device.type == "cpu" and x.dtype == torch.float64 and \
            Y.dtype in (torch.float32, torch.float64):
        return torch.from_numpy(weiszfeld_kernel.edge_lengths(*(t.contiguous().numpy() for t in (x, Y, rows, cols))))
    out = torch.empty(len(rows), dtype=x.dtype, device=x.device)
    step = max(1, CHUNK_ELEMENTS // max(x.shape[1], 1))
    for s in range(0, len(rows), step):
        out[s:s + step] = torch.linalg.vector_norm(Y[cols[s:s + step]] - x[rows[s:s + step]], dim=1)
    return out


def vz_update(x: torch.Tensor, terms: VZTerms) -> torch.Tensor:
    """``x + max(0, 1 - eta/r) R / S`` (plain Weiszfeld when ``eta = 0``; no move when ``S = 0``); ``R / S``
    for the far rows (where ``R`` holds ``sum (w/d) y``: :func:`vz_terms`)."""
    S, R, eta = terms.S, terms.R, terms.eta
    r = torch.linalg.vector_norm(R, dim=1)
    tiny = torch.finfo(x.dtype).tiny
    factor = torch.where(eta > 0, (1.0 - eta / r.clamp_min(tiny)).clamp_min(0.0), torch.ones_like(eta))
    scale = torch.where(S > 0, factor / torch.where(S > 0, S, torch.ones_like(S)), torch.zeros_like(S))
    step = scale[:, None] * R
    return torch.where(terms.far[:, None], step, x + step)


def is_median(S: torch.Tensor, R: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
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
    rows, cols, w = plan_edges(weights, x.shape[0], Y.shape[0], Y.device)
    # sets whose spread is far from 1 step multiplied by 2^-e (exact): squared distances would overflow or underflow
    e = rescaling_exponent(x, Y)
    x, Y = times_pow2(x, -e), times_pow2(Y, -e)
    return times_pow2(vz_update(x, vz_terms(x, Y, torch.linalg.vector_norm(Y, dim=1), rows, cols, w)), e)


def float_dtype(t: torch.Tensor) -> torch.dtype:
    """``t``'s dtype when floating, else float32 (the dtype results are returned in)."""
    return t.dtype if t.is_floating_point() else torch.float32
