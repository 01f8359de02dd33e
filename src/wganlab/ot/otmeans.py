"""OT-Means (Elnekave & Weiss, Algorithm 1): ``m`` centroids minimising the exact W1 to a data set, by
alternating an exact OT plan (:mod:`wganlab.ot.exact`) with safeguarded Weiszfeld steps
(:mod:`wganlab.ot.weiszfeld`) for each centroid weighted by its row of the plan. The exact W1 never increases
(their Theorem 1).

Reference: A. Elnekave and Y. Weiss, "Do WGANs succeed because they minimize the Wasserstein distance? Lessons
from discrete generators", ICLR 2025.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from wganlab.checks import as_points, as_tensor, positive_int
from wganlab.errors import InputError
from wganlab.ot.exact import prepare_points, wasserstein
from wganlab.ot.scale import bounds_exponent, column_bounds, needs_rescaling, times_pow2
from wganlab.ot.weiszfeld import float_dtype, plan_edges, vz_terms, vz_update


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
    ``weiszfeld_steps`` safeguarded Weiszfeld steps (:mod:`wganlab.ot.weiszfeld`) on
    ``argmin_z sum_i P_ji ||y_i - z||``.
    Since ``P`` stays feasible and each step lowers its centroid's weighted sum,
    ``W1`` never increases (their Theorem 1); with ``m = N`` the centroids become copies of the data.

    Defaults are the reference schedule (Elnekave & Weiss' code): ``n_iter=10`` outer iterations of
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
    dtype = float_dtype(Yt)
    D = math.prod(point_shape)
    if init is None:
        m = positive_int(m, "m")
    else:
        X = as_tensor(init, "init", torch.float64).to(Yt.device)
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
        X = (init_std * torch.randn(m, D, generator=g, dtype=torch.float64)).to(Yt.device)

    # data and centroids whose spread is far from 1 are worked on multiplied by 2^-e (exact): Weiszfeld's
    # squared distances would underflow or overflow; the centroids and W1 are multiplied back. The frame
    # follows the centroids: started far out (absolute units beside data of scale 1e-300) they land among
    # the data after one step, and the frame then follows them there.
    ybounds = column_bounds(Yt.reshape(len(Yt), -1))

    def frame_exponent(X: torch.Tensor) -> int:
        """The exponent for data and centroids ``X (m, D)`` in the input's units."""
        e = bounds_exponent(ybounds, column_bounds(X))
        return e if needs_rescaling(e) else 0

    e = frame_exponent(X)
    X = times_pow2(X, -e)

    def frame(e: int):
        """The data multiplied by ``2^-e``, ready for the solver once (float32 stays float32, not copied), and
        its float64 view for the Weiszfeld work on y's device (float32 data: half the reading)."""
        Ys = times_pow2(Yt.double(), -e) if e else Yt
        target = prepare_points(Ys, copy=False)
        same = Ys.device.type == "cpu" and target.exponent == 0  # the solver's copy is in this frame too
        Y = torch.from_numpy(target.exact) if same else as_points(Ys, "y", torch.float64)
        return target, Y, torch.linalg.vector_norm(Y, dim=1).to(torch.float64)  # norms: only a tolerance's scale

    target, Y, ynorm = frame(e)
    N = len(Y)
    trace: list[float] = []
    last = None

    def solve():
        nonlocal last
        last = wasserstein(X, target, plan=True, engine=engine, warm_start=last)
        trace.append(times_pow2(float(last.value), e))
        return last.plan

    def shaped(t: torch.Tensor) -> torch.Tensor:
        """Centroids in the input's units and per-point shape."""
        t = times_pow2(t, e) if e else t
        return t.reshape(m, *point_shape) if point_shape else t.reshape(m)

    for outer in range(int(n_iter)):
        for _ in range(ot_steps):
            rows, cols, w = plan_edges(solve(), m, N, Y.device)
            dist = _edge_lengths(last, rows, cols, Y.device)
            for _ in range(weiszfeld_steps):
                X = vz_update(X, vz_terms(X, Y, ynorm, rows, cols, w, dist=dist))
                dist = None  # the centroids moved
            e_new = frame_exponent(times_pow2(X, e))
            if e_new != e:  # the centroids left the frame (only after starting far from the data)
                X, e, last = times_pow2(X, e - e_new), e_new, None
                target, Y, ynorm = frame(e)
        if callback is not None:
            callback(outer, shaped(X.clone()).to(dtype), list(trace))
    plan = sp.csr_array(solve())
    return OTMeansResult(centroids=shaped(X).to(dtype), w1_trace=trace, n_solves=len(trace), plan=plan)


def _edge_lengths(res, rows: torch.Tensor, cols: torch.Tensor, device) -> torch.Tensor | None:
    """The solver's float64 costs ``||x_j - y_i||`` of the plan's entries ``(rows, cols)`` as :func:`plan_edges`
    lists them (point by point), or None where the solver has none (then the Weiszfeld pass computes them)."""
    if res.plan_costs is None:
        return None
    costs = sp.coo_array(sp.csc_array(res.plan_costs))  # the plan's structure, in plan_edges' order
    if not (np.array_equal(costs.row, rows.cpu().numpy()) and np.array_equal(costs.col, cols.cpu().numpy())):
        return None
    return torch.as_tensor(np.asarray(costs.data, dtype=np.float64)).to(device)


__all__ = ["OTMeansResult", "ot_means"]
