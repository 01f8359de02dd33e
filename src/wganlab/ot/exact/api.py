"""The exact solver's entry points for point sets: :func:`wasserstein`, :func:`transport`, :func:`prepare_points`,
and the choice among the closed form on a line, the sparse engine and the dense network simplex (see the
package docstring, :mod:`wganlab.ot.exact`)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from wganlab.checks import as_points, as_tensor, as_weights, require_finite, same_dim
from wganlab.errors import InputError, NotOptimalError
from wganlab.memory import memory_available
from wganlab.ot.costs import CostFn, cost_matrix
from wganlab.ot.exact import sparse
from wganlab.ot.exact.certificate import check_certificate
from wganlab.ot.exact.dense import GAP_TOL, rescaled, solve_exact
from wganlab.ot.exact.line import line_coordinates, monotone_plan, plan_matrix
from wganlab.ot.exact.points import Points
from wganlab.ot.result import OTResult
from wganlab.ot.scale import ONE_PASS_MIN_VALUES, needs_rescaling, rescaling_exponent, spread_exponent, times_pow2

ENGINES = ("auto", "pot", "sparse")
#: ``engine="auto"`` uses the sparse engine from AUTO_MIN_PAIRS pairs ``n * m`` when the larger set has at most
#: AUTO_BALANCE times the points of the smaller, from AUTO_MIN_PAIRS_SMALL_SIDE when the smaller has at most
#: AUTO_SMALL_SIDE points and the larger at least AUTO_SMALL_SIDE_RATIO times as many, and otherwise only beyond
#: AUTO_DENSE_MAX_PAIRS (the measurements behind these bounds: the README, "Speed", ``engine="auto"``)
AUTO_MIN_PAIRS = 1_000_000
AUTO_MIN_PAIRS_SMALL_SIDE = 100_000
AUTO_SMALL_SIDE = 128
AUTO_BALANCE = 4
AUTO_SMALL_SIDE_RATIO = 20
#: ``engine="auto"`` hands a problem of at most AUTO_DENSE_MAX_PAIRS pairs back to POT when the sparse engine needs
#: more arcs than this per point and the dense problem fits (:func:`dense_fallback_fits`)
AUTO_ARCS_PER_POINT = 24
AUTO_DENSE_MAX_PAIRS = 120_000_000
#: POT's peak memory per pair of a dense problem (its cost matrix, plan and network-simplex arcs): 7.8 GB above
#: the data for 11,000 x 11,000 points (measured, 2026-12-03)
POT_BYTES_PER_PAIR = 64
#: on larger problems, or where the dense one does not fit, ``engine="auto"`` lets the sparse engine grow to this
#: many arcs per point, then hands the problem to POT where it fits, else raises rather than slow without bound
#: (data of low intrinsic dimension did, before the engine took its prices from a coarsened problem there: a plane
#: in R^5 at 11,000 x 11,000 now needs ~14 per point, a circle ~26, Gaussian data in d = 10 ~7);
#: ``engine="sparse"`` has no limit. Both limits count twice as many arcs where the prices come from the coarsened
#: problem (its first arc set is twice as large)
AUTO_ARCS_PER_POINT_LARGE = 64
#: in at most AUTO_LOW_DIM coordinates a point has many near-optimal partners and the sparse engine's arc set
#: outgrows AUTO_ARCS_PER_POINT, so ``engine="auto"`` runs POT at once up to AUTO_LOW_DIM_MAX_PAIRS pairs
#: (Gaussians in 2-D and 3-D at 1,000^2 and 2,000^2: the failed sparse attempt plus POT took 2-3x POT alone;
#: in 2-D at 4,000^2 the sparse engine finished first)
AUTO_LOW_DIM = 3
AUTO_LOW_DIM_MAX_PAIRS = 4_000_000
#: ``engine="auto"`` runs POT at once, where the dense problem fits and has at most AUTO_DENSE_MAX_PAIRS pairs, on
#: sets of balanced sizes whose weights on either side are far from uniform: an effective size ``1 / sum a_i^2``
#: below AUTO_MIN_EFFECTIVE of the points (a heavy point splits its mass over many partners and the sparse engine
#: routes each split by a shortest path). W1 between Gaussians in d = 10, 3,000 / 6,000 points a side, weights from
#: Dirichlet(alpha): alpha = 2 (effective size 0.67) 0.86 / 1.9 s against POT's 2.9 / 12.4 s; alpha = 1 (0.50)
#: 2.4 / 29 s against 3.1 / 12 s; alpha = 0.5 (0.34) 10.7 / 47 s against 1.5 / 12.3 s (uniform [0, 1]: 0.75)
AUTO_MIN_EFFECTIVE = 0.6
#: the closed form on a line is taken for sets near (not exactly on) one line when its relative gap is at most
#: this (and ``tol``): the accuracy the solvers deliver elsewhere (gaps of 1e-16 to 1e-12 of the cost)
LINE_TOL = 1e-9
#: the costs the sparse engine covers, by the exponent of the Euclidean distance
_SPARSE_COSTS = {"euclidean": 1, "sqeuclidean": 2}


def _pick_engine(engine: str, power: int | None, n: int, m: int, d: int, a=None, b=None) -> bool:
    """Whether to run the sparse engine on ``n x m`` points in ``d`` coordinates with weights ``a``, ``b`` (None:
    uniform); ``power`` is 1 or 2 for (squared) Euclidean costs, else None."""
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; choose one of {list(ENGINES)}")
    if engine == "sparse":
        if power is None:
            raise InputError("engine 'sparse' covers the euclidean and sqeuclidean costs (W1, W2) only")
        if not sparse.available():
            raise InputError("engine 'sparse' needs numba (pip install numba); use engine='pot'")
        return True
    small, large = sorted((n, m))
    if d <= AUTO_LOW_DIM and n * m <= AUTO_LOW_DIM_MAX_PAIRS:
        return False
    if (large <= AUTO_BALANCE * small and n * m <= AUTO_DENSE_MAX_PAIRS
            and (_far_from_uniform(a, n, "weights of x") or _far_from_uniform(b, m, "weights of y"))
            and dense_fallback_fits(n, m)):  # last: it reads /proc/meminfo, which uniform weights need not
        return False
    if small <= AUTO_SMALL_SIDE and large >= AUTO_SMALL_SIDE_RATIO * small:
        big = n * m >= AUTO_MIN_PAIRS_SMALL_SIDE
    else:
        big = n * m >= (AUTO_MIN_PAIRS if large <= AUTO_BALANCE * small else AUTO_DENSE_MAX_PAIRS)
    return engine == "auto" and power is not None and big and sparse.available()


def _far_from_uniform(w, n: int, name: str) -> bool:
    """Whether the weights ``w`` of ``n`` points (None: uniform) have an effective size ``1 / sum w_i^2`` below
    AUTO_MIN_EFFECTIVE ``n``."""
    if w is None:
        return False
    w = as_weights(w, n, name)
    return 1.0 / float(w @ w) < AUTO_MIN_EFFECTIVE * n


def _sparse(xs: torch.Tensor, ys, a, b, power: int, warm_start, tol: float, engine: str) -> OTResult | None:
    """The sparse engine's result, or None when ``engine="auto"`` and its arc set outgrows ``AUTO_ARCS_PER_POINT *
    (n + m)`` on a problem of at most AUTO_DENSE_MAX_PAIRS pairs, or ``AUTO_ARCS_PER_POINT_LARGE * (n + m)`` on a
    larger one, or the sets are weighted and of low intrinsic dimension or far apart, whose dense problem fits
    (:func:`dense_fallback_fits`; the caller then runs POT); where it does not, an arc set over
    ``AUTO_ARCS_PER_POINT_LARGE * (n + m)`` raises :class:`NotOptimalError`."""
    n, m = len(xs), len(ys)
    a = None if a is None else as_weights(a, n, "weights of x")
    b = None if b is None else as_weights(b, m, "weights of y")
    dense_ok = engine == "auto" and dense_fallback_fits(n, m)  # engine="sparse" has no arc limit
    per_point = AUTO_ARCS_PER_POINT if dense_ok and n * m <= AUTO_DENSE_MAX_PAIRS else AUTO_ARCS_PER_POINT_LARGE
    limit = per_point * (n + m) if engine == "auto" else None
    try:
        Y = ys if isinstance(ys, Points) else _engine_array(ys)
        return sparse.solve_points(_engine_array(xs), Y, a, b, squared=power == 2, warm_start=warm_start,
                                   tol=tol, max_arcs=limit, dense_fallback=dense_ok)
    except sparse.TooDense as e:
        if dense_ok:
            return None
        raise NotOptimalError(f"exact OT of {n} x {m} points stopped: {e}, as on data of low intrinsic dimension, "
                              f"where the sparse engine slows without bound, and the dense problem (about "
                              f"{POT_BYTES_PER_PAIR * n * m / 2**30:.1f} GiB in POT) is beyond engine='auto''s limit "
                              f"(half the memory available, or {AUTO_DENSE_MAX_PAIRS:,} pairs where that is "
                              f"unknown); use engine='pot' (dense) or engine='sparse' (no arc "
                              f"limit), or fewer points") from None


def dense_fallback_fits(n: int, m: int) -> bool:
    """Whether ``engine="auto"`` may hand an ``n x m`` problem to POT: its dense solve, ``POT_BYTES_PER_PAIR * n *
    m`` bytes, takes at most half of :func:`wganlab.memory.memory_available` (at most AUTO_DENSE_MAX_PAIRS pairs
    where that is unknown)."""
    avail = memory_available()
    if avail is None:
        return n * m <= AUTO_DENSE_MAX_PAIRS
    return POT_BYTES_PER_PAIR * n * m <= avail / 2


def _engine_array(z: torch.Tensor) -> np.ndarray:
    """Points ``(n, d)`` as a CPU array for the sparse engine: float32 kept (the engine's costs are float64
    either way, and float32 differences are exact in float64), anything else as float64."""
    dtype = torch.float32 if z.dtype == torch.float32 else torch.float64
    return z.detach().reshape(len(z), -1).to("cpu", dtype).numpy()


def prepare_points(y, copy: bool = True) -> Points:
    """A fixed point set ``y (n, ...)`` (flattened) prepared once for many :func:`wasserstein` calls against
    it (OT-Means, W1 tracking during training): checked, copied (rescaled by a power of two when its spread
    is far from 1), and its centred float32 copy and norms made once. Same results as passing ``y``. It also
    keeps the float32 cost bounds of its latest solve (up to 64 MB), which a warm-started solve against it
    shifts instead of recomputing them (OT-Means' updates). ``copy=False``: the set reads ``y``'s memory where
    it can, for a caller that keeps ``y`` unchanged while it uses the set (OT-Means: 164 MB less at 10,000
    images of 64x64)."""
    ys = as_points(y, "y", finite=False)
    z = _engine_array(ys)
    prepared = _checked(Points(np.array(z, copy=True) if copy else z), ys, "y")
    e = spread_exponent(prepared.bounds)  # each coordinate's largest and smallest value: the set's spread
    if not needs_rescaling(e):
        return prepared
    return Points(_engine_array(times_pow2(ys.double(), -e)), exponent=e)


def transport(x, y, cost: str | CostFn = "euclidean", a=None, b=None, *, plan: bool = False,
              tol: float = GAP_TOL, engine: str = "auto", warm_start: OTResult | None = None) -> OTResult:
    """Exact ``OT_c`` between point sets ``x (n, ...)`` and ``y (m, ...)`` for a ground cost from
    :mod:`wganlab.ot.costs` (name or callable). Images stay images for image costs (SSIM, PSNR) and
    are flattened otherwise. ``value == cost`` (no root). ``engine`` and ``warm_start``: see
    :func:`wasserstein`."""
    xs, ys = as_tensor(x, "x"), as_tensor(y, "y")
    if xs.ndim == 1:
        xs, ys = xs[:, None], (ys[:, None] if ys.ndim == 1 else ys)
    same_dim(xs, ys)
    power = _SPARSE_COSTS.get(cost) if isinstance(cost, str) else None
    if power is None:
        _pick_engine(engine, None, len(xs), len(ys), 0)  # validates the engine's name (only POT covers this cost)
        return solve_exact(cost_matrix(xs, ys.to(xs.device), cost, dtype=torch.float64), a, b, plan=plan, tol=tol)
    res, e = _euclidean_power(xs.reshape(len(xs), -1), ys.reshape(len(ys), -1), power, a, b, plan, tol, engine,
                              warm_start, None)
    return rescaled(res, power * e)


def wasserstein(x, y, p: float = 1, a=None, b=None, *, plan: bool = False, tol: float = GAP_TOL,
                engine: str = "auto", warm_start: OTResult | None = None) -> OTResult:
    """Exact ``W_p(x, y) = (min_P sum_ij P_ij ||x_i - y_j||^p)^(1/p)`` between weighted point sets.

    ``x (n, ...)`` and ``y (m, ...)`` are flattened (images ``N x C x H x W`` become ``N x CHW``); the
    norm is Euclidean, in the pixel scale of the input. ``y`` may be a set made ready once by
    :func:`prepare_points` (for many calls against it). ``a``/``b`` are probability weights
    (uniform when None). The result's ``value`` is ``W_p`` and ``cost`` is ``W_p^p`` (``inf`` or 0 where
    that power leaves float64's range; ``value`` is right at any scale: ``W_p(s x, s y) = s W_p(x, y)``).

    ``engine``: ``"auto"``, ``"pot"`` (dense network simplex) or ``"sparse"`` (p = 1 or 2 only; see the
    module docstring); ``result.solver`` names the one that ran. ``"auto"`` solves sets on one line (1-D
    data included) by the closed form (:mod:`wganlab.ot.exact.line`; no potentials). The sparse engine returns
    the plan as a ``scipy.sparse.csr_array`` and accepts ``warm_start``, an earlier result between sets of
    the same sizes whose potentials seed the solve (the POT engine ignores it).

    >>> round(wasserstein([[0.0], [1.0]], [[3.0], [4.0]]).value, 9)  # translation by 3
    3.0
    """
    if not p >= 1:
        raise InputError(f"p must be >= 1, got {p}")
    prepared = y if isinstance(y, Points) else None
    xs = as_points(x, "x")
    ys = as_points(y, "y", finite=False) if prepared is None else torch.from_numpy(prepared.exact)
    same_dim(xs, ys)
    if prepared is None:
        if _ready_first(xs, ys, p, engine):
            prepared = _checked(Points(_engine_array(ys)), ys, "y")
        else:
            require_finite(ys, "y")
    res, e = _euclidean_power(xs, ys, p, a, b, plan, tol, engine, warm_start, prepared)
    value = times_pow2(res.cost ** (1.0 / p), e)
    return dataclasses.replace(rescaled(res, p * e), value=value, info={**res.info, "p": p})


def _checked(prepared: Points, ys: torch.Tensor, name: str) -> Points:
    """``prepared``, made from ``ys``, once its range shows every value finite (its bounds are finite exactly where
    the set is: the range's pass is the input's check)."""
    if not bool(torch.isfinite(prepared.bounds).all()):
        require_finite(ys, name)
    return prepared


def _ready_first(xs: torch.Tensor, ys: torch.Tensor, p: float, engine: str) -> bool:
    """Whether ``ys`` is made ready for the sparse engine (:class:`Points`) before its spread is read: a large CPU
    set with at least as many points as ``xs``, for a cost the engine covers. Its range, read in one pass when it is
    made, then gives the spread as well."""
    return (engine != "pot" and p in (1, 2) and sparse.available() and ys.device.type == "cpu"
            and ys.dtype in (torch.float32, torch.float64) and len(ys) >= len(xs)
            and ys.numel() >= ONE_PASS_MIN_VALUES)


def _euclidean_power(xs: torch.Tensor, ys: torch.Tensor, p: float, a, b, plan: bool, tol: float, engine: str,
                     warm_start: OTResult | None, prepared: Points | None) -> tuple[OTResult, int]:
    """OT for the cost ``||x - y||^p`` between ``xs (n, d)`` and ``ys (m, d)`` (``ys`` in ``prepared``'s frame
    when given), solved on the sets multiplied by ``2^-e`` (a spread near 1; ``e = 0`` for ordinary data).
    Returns ``(result for the rescaled sets, e)``: the true costs are ``2^(p e)`` times its."""
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; choose one of {list(ENGINES)}")
    e = 0 if prepared is None else prepared.exponent
    # x far from the prepared frame (judged in the input's units: x itself might overflow in the frame): start again
    if prepared is not None and needs_rescaling(spread_exponent(xs, times_pow2(prepared.bounds, e)) - e):
        ys, prepared, e = times_pow2(ys.double(), e), None, 0
    if e:
        xs = times_pow2(xs.double(), -e)
    if prepared is None:
        e = rescaling_exponent(xs, ys)
        if e:
            xs, ys = times_pow2(xs.double(), -e), times_pow2(ys.double(), -e)
    if warm_start is not None and e:
        warm_start = rescaled(warm_start, -p * e)
    res = _on_line(xs, ys, p, a, b, tol) if engine == "auto" else None
    if res is None:
        res = _general(xs, ys, p, a, b, tol, engine, warm_start, prepared)
    return (res if plan else dataclasses.replace(res, plan=None)), e


def _general(xs, ys, p, a, b, tol, engine, warm_start, prepared) -> OTResult:
    """The sparse engine where it applies (p = 1, 2), else POT on the dense cost matrix."""
    power = p if p in (1, 2) else None
    if _pick_engine(engine, power, len(xs), len(ys), xs.shape[1], a, b):
        if isinstance(warm_start, OTResult) and warm_start.potentials is None:
            warm_start = None  # a closed-form result has no potentials to start from
        res = _sparse(xs, ys if prepared is None else prepared, a, b, power, warm_start, tol, engine)
        if res is not None:
            return res
    ys = ys.to(xs.device)
    C = cost_matrix(xs, ys, "sqeuclidean") if p == 2 else cost_matrix(xs, ys, "euclidean") ** p
    return solve_exact(C, a, b, plan=True, tol=tol)


def _on_line(xs: torch.Tensor, ys: torch.Tensor, p: float, a, b, tol: float) -> OTResult | None:
    """The closed form for sets on or near one line (:mod:`wganlab.ot.exact.line`), certified by the gap between
    the monotone plan's true cost and the optimum along the line (at most ``min(tol, LINE_TOL)`` of the cost);
    None when the sets are not near one line or the gap is larger."""
    coords = line_coordinates(xs, ys)
    if coords is None:
        return None
    n, m = len(xs), len(ys)
    a, b = as_weights(a, n, "weights of x"), as_weights(b, m, "weights of y")
    rows, cols, mass = monotone_plan(*coords, a, b)
    along = np.abs(coords[0][rows] - coords[1][cols]) ** p
    pair = along
    if xs.shape[1] > 1:
        diff = (xs[torch.from_numpy(rows).to(xs.device)].double()
                - ys[torch.from_numpy(cols).to(ys.device)].double().to(xs.device))
        pair = torch.linalg.vector_norm(diff, dim=1).cpu().numpy() ** p
    cost = float(mass @ pair)
    P = plan_matrix(rows, cols, mass, n, m)
    res = OTResult(value=cost, cost=cost, gap=cost - float(mass @ along), solver="closed-form-line", plan=P,
                   info={"n": n, "m": m, "d": xs.shape[1]})
    try:
        check_certificate(res, P.sum(1), P.sum(0), a, b, min(tol, LINE_TOL), float(pair.max()))
    except NotOptimalError:
        return None  # too far off the line for the bound: the general solver decides
    return res
