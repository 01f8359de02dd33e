"""Certified exact OT for Euclidean costs without the dense cost matrix.

``OT(a, b) = min_{P >= 0, P 1 = a, P^T 1 = b} sum_ij P_ij c(x_i, y_j)`` with ``c = ||x - y||`` (W1) or
``||x - y||^2`` (W2^2), for point sets ``x (M, d)``, ``y (N, d)``. Memory is ``O((M + N) d)`` plus the
active arc set and one block of float32 distances:

1. **Prices and candidates.** Blocked float32 GEMMs ``||x||^2 + ||y||^2 - 2 x.y`` (on centred data) give
   each row its nearest columns and each column the ``k`` rows of smallest ``c_ij - u_i``; their costs
   are recomputed exactly in float64 from the differences. Row prices ``u`` come from an epsilon-scaling
   auction (:mod:`wganlab.ot.exact.auction`), started from a warm start's potentials (e.g. the previous
   OT-Means solve) when there is one: with few rows on all pairs' float32 distances before the
   candidates are chosen; otherwise on the candidate arcs, each auction followed by every column's best
   rows at its prices joining the arcs, until few join. Good prices put the optimal arcs among the
   candidates and let a greedy start route almost all the mass. A prepared target keeps the bounds of its
   latest solve (up to KEEP_BOUNDS_BYTES); a warm-started solve against it lowers them by how far each
   point moved (``||x' - y|| >= ||x - y|| - ||x' - x||``) instead of running the GEMM, unless that would leave
   too many pairs for the exact check. Sets on a grid of 256 levels (8-bit images) whose bounds fit in memory get
   them from an int8 GEMM of their grid codes instead (:mod:`wganlab.ot.exact.grid`: several times the float32
   GEMM's speed, within ~1e-6 of the costs, not 1e-4; a set within the range but off the grid, against an 8-bit
   target, with a second digit, made afresh for a warm start). Where the blocks do not fit in memory (every pass
   recomputes them), or are many (SKETCH_CACHED_MIN_PAIRS), the bound comes from the points' principal coordinates
   (:func:`sketch.distances`, ``(SKETCH_DIMS + 1) / d`` of the GEMM); uncached, candidates are chosen by exact costs
   among RERANK times as many.
2. **Sparse solve.** Successive shortest paths (:mod:`wganlab.ot.exact.ssp`, Dijkstra on reduced costs) on
   that arc set; with few rows the columns are contracted away and Dijkstra runs on the rows alone. If
   the arc set admits no feasible flow, the stuck rows and the columns with demand left are linked by
   distance (more links each time) and the solve resumes. W1 with prices from the coarsened problem (data of low
   intrinsic dimension, sets far apart) between sets of equal size and uniform weights is degenerate (nearly every pair
   along the data nearly tight, which the paths would all explore): there the auction's assignment at a tiny
   epsilon is the plan (:class:`auction.CertifiedAssignment`, a relative gap of at most 2e-10 on the arcs) where
   the greedy start routes little or the paths outgrow their budget, the paths if it keeps running out of bids.
3. **Pricing.** Every pair is checked, block by block, for a negative reduced cost
   ``c_ij - u_i - v_j < 0``: a rigorous lower bound of ``c_ij`` from the float32 block (error at most
   ``(d + 8) 2^-24 (||x_i||^2 + ||y_j||^2)`` on the squared distance) rules out almost every pair, and the
   rest are recomputed in float64. The most violating pairs of each column and of each row join the arc set
   and the solve resumes (their columns' potentials are lowered and those columns released); where the blocks
   are not cached, later passes check only what the potentials' changes since a full pass with a margin
   leave open (:mod:`wganlab.ot.exact.pricing`). When no pair
   violates, ``(u, v')`` with ``v'_j = min(v_j, min_i c_ij - u_i)`` is dual feasible for the FULL problem, and
   ``gap = cost - (a.u + b.v')`` certifies the plan (0 up to float64 rounding).

Masses are whole numbers held in float64, so the flow arithmetic is exact: uniform weights become ``N / g``
per row and ``M / g`` per column (``g = gcd(M, N)``), other weights multiples of ``2^-50``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import scipy.sparse as sp

from wganlab.errors import InputError, NotOptimalError
from wganlab.ot.exact import candidates, coarse, pricing
from wganlab.ot.exact.certificate import ROUNDING, check_certificate
from wganlab.ot.exact.points import Points, centred32
from wganlab.ot.result import OTResult

try:
    from wganlab.ot.exact import arc_costs, auction, blocks, grid, sketch, ssp
except ImportError:  # numba missing or broken: the dense POT path remains
    arc_costs = auction = blocks = grid = sketch = ssp = None

#: nearest neighbours per row and per column in the first arc set (rows per column with few rows)
K_NEAREST = 8
#: rows per column in the first arc set with prices from a coarsened problem (they place a column's optimal row
#: within a few neighbours of the best by reduced cost: ranks up to 12 seen on a curve), and with few rows
K_COARSE, K_FEW_ROWS = 16, 2
#: where the auction's assignment may certify (W1, coarse prices, uniform, square) the paths hand over to it after
#: settling this many nodes a point (a 1e-2 tube needs 734, a circle 115, generic data below 20); 60, 40, 100 and 200
#: took 43-47, 47, 47 and 53-58 s on seven degenerate sets (docs/speed-history.md, "The auction's factor and ...")
PATHS_BUDGET = 60
#: stuck rows and columns (no feasible flow) get this many links each (doubled each stuck round, up to 16x as many)
K_EXTEND = 4
#: this many of the most violating pairs of each column, and of each row, join the arc set in one pricing round
#: (rows too: on degenerate data, e.g. W1 near a line, a column's worst pairs alone took twice the rounds)
K_PRICE = 8
MAX_ROUNDS = 200
#: from this many coordinates, the costs of pairs already among the arcs are looked up rather than recomputed
LOOKUP_MIN_DIM = 32
#: general weights are rounded to multiples of 1 / MASS_UNITS (marginals within ~1e-15 of the input)
MASS_UNITS = 2.0**50
ROWS_ONLY_MAX = 256  # up to this many rows (and 4 times as many columns), paths run on rows (ssp.ssp_few_rows)
#: general case: at most this many auctions, each followed by the columns' best rows at its prices joining the
#: arcs; stop when fewer than AUCTION_NEW_ARCS per column join
AUCTION_ROUNDS, AUCTION_NEW_ARCS = 4, 0.3
#: from this many points on each side (and not few rows), on data of intrinsic dimension below COARSE_DIM_MAX,
#: row prices come from a coarsened problem (:mod:`wganlab.ot.exact.coarse`) rather than from an auction
#: started at 0 (Gaussians at 11,000 x 11,000, W2: 2.7 s against 33 s in d = 2, but 2.2 s against 1.7 s
#: in d = 3 and 8 s against 3 s on Fashion-MNIST at 10,000 x 10,000)
COARSE_MIN = 3000
COARSE_DIM_MAX = 2.5
#: ... and from SEPARATED_MIN points a side on sets at least SEPARATION_MIN apart against their point spacing
#: (:func:`coarse.separation`; Gaussians in d = 10 ten apart, 4,000^2, W1: 8.5 s by auction, 0.43 s)
SEPARATED_MIN, SEPARATION_MIN = 1000, 1.0
#: the coarsened problem is itself coarsened from this many points (on a line + 1e-6 noise at 11,000 points, W2:
#: its 2,750 clusters took 4.7 s by the auction, the whole solve 1.6 s instead of 6.3 s with a nested level)
COARSE_NESTED_MIN = 1000
#: uncached blocks (every pass recomputes them) of points with at least 4 times as many coordinates use the bound from
#: this many principal directions (:func:`sketch.distances`; 50,000^2 Fashion-MNIST in 81 s, not 435 s), choosing
#: candidates by their exact costs among RERANK times as many
SKETCH_DIMS, RERANK = 64, 3
#: ... when the bound is at least this fraction of the cost (median over random pairs; Fashion-MNIST 0.94 at 28x28,
#: 0.96 at 64x64; isotropic Gaussians 0.33 in d = 784, where nearly every pair would need its exact cost)
SKETCH_MIN_RATIO = 0.9
#: cached blocks (the GEMM runs once) take the bound too from this many pairs, both sides this many points, their
#: candidates straight from it (10,000^2 Fashion-MNIST: 2.13 -> 1.53 s, 9.0 -> 3.3 s at 64x64; docs/speed-history.md)
SKETCH_CACHED_MIN_PAIRS, SKETCH_CACHED_MIN_SIDE = 16_000_000, 4_000
#: ... on up to this many directions (at most d / 4), from a rougher basis (power steps, sample rows): fewer pairs
#: left to the first pricing pass's exact costs for less than the extra coordinates cost (10,000^2 at 64x64: 440,000
#: -> 160,000 pairs, 3.39-3.68 -> 2.83-2.94 s; off the grid at 28x28 1.87-2.13 -> 1.62 s; docs/speed-history.md), the
#: coordinates from float32 products over this many coordinates at a time (:func:`sketch.coordinates`; uncached they
#: stay float64: 14,000^2 at 64x64 checked 109,000 pairs in its last pricing pass instead of 46,000, in the same time)
SKETCH_CACHED_DIMS, SKETCH_CACHED_BASIS, SKETCH_CACHED_TERMS = 128, (2, 2048), 512
#: sketched problems cost at least this many pairs at once column by column in the order of :func:`sketch.near_ranks`
#: (10,000^2 at 64x64: the first 160,000 candidates 0.31 -> 0.16 s, their images read from the caches; row by row
#: 0.18 s, but the later candidates, a few to a column, 0.054 -> 0.13 s)
NEAR_ORDER_MIN_PAIRS = 10_000
#: a target set keeps the bounds of every pair's cost of its latest solve (for a warm-started next one) up to this size
KEEP_BOUNDS_BYTES = 64 * 1024 * 1024
#: a warm start's bounds, shifted by how far each point moved, replace the distance GEMM unless, at the warm
#: start's potentials, more than this many pairs per point would fall below them (each needs its exact cost)
SHIFT_MAX_CHECKS = 4


class TooDense(NotOptimalError):
    """The sparse engine stopped because its arc set outgrew the caller's limit."""


def available() -> bool:
    """Whether the sparse engine can run (it needs numba)."""
    return ssp is not None


class _Arcs:
    """The active arc set with its flow, and the CSR/CSC indexes the kernels need."""

    def __init__(self, M: int, N: int):
        self.M, self.N = M, N
        self.key, self.cost, self.flow = np.empty(0, dtype=np.int64), np.empty(0), np.empty(0)

    def locate(self, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(position, present)`` of each pair key ``row * N + col`` in the sorted keys (the insertion
        position where absent)."""
        at = np.searchsorted(self.key, key)
        if not len(self.key):
            return at, np.zeros(len(key), dtype=bool)
        return at, self.key[np.minimum(at, len(self.key) - 1)] == key

    def add(self, rows: np.ndarray, cols: np.ndarray, cost: np.ndarray) -> None:
        """Add the pairs not yet in the set (duplicates allowed), merged into the sorted keys."""
        key, first = np.unique(rows.astype(np.int64) * self.N + cols, return_index=True)
        at, present = self.locate(key)
        fresh = ~present
        at = at[fresh]
        self.key = np.insert(self.key, at, key[fresh])
        self.cost = np.insert(self.cost, at, cost[first[fresh]])
        self.flow = np.insert(self.flow, at, 0.0)
        self.row, self.col = self.key // self.N, self.key % self.N
        self.row_ptr = np.searchsorted(self.row, np.arange(self.M + 1)).astype(np.int64)
        self.col_ptr, self.col_arc = ssp.column_order(self.col, self.N)


def solve_points(X: np.ndarray, Y: np.ndarray | Points, a: np.ndarray | None = None, b: np.ndarray | None = None,
                 *, squared: bool = False, warm_start: OTResult | None = None, tol: float = 1e-7,
                 k: int | None = None, max_arcs: int | None = None, coarse_min: int | None = None,
                 dense_fallback: bool = False) -> OTResult:
    """Exact OT between ``X (M, d)`` and ``Y (N, d)`` (float32 or float64 arrays, or :class:`Points`
    prepared for ``Y``; costs are computed in float64 either way) for the cost ``||x - y||``
    (``squared``: ``||x - y||^2``), weights ``a (M,)``, ``b (N,)`` summing to 1 (uniform when None).

    ``warm_start``: an earlier result between sets of the same sizes; its row potentials seed the solve
    (each column starts on the rows that are cheapest at those prices, as in the earlier plan).
    ``coarse_min``: from this many points on each side (default COARSE_MIN), data of low intrinsic dimension
    get their first prices from a coarsened problem (sets far apart from SEPARATED_MIN points).
    Returns an :class:`OTResult` whose ``plan`` is a ``scipy.sparse.csr_array (M, N)``, ``potentials``
    are feasible for all pairs and ``gap`` is the certified duality gap. ``info``: ``rounds`` (solves between pricing
    passes), ``augmentations``, ``searches`` (Dijkstra runs, from one source or all), ``settled`` (nodes they
    settled), ``arcs`` (final arc-set size), ``priced_in`` (arcs added by pricing), ``extended`` (arcs added where
    the arc set admitted no feasible flow), ``checked`` (pairs the last pricing pass checked by their float64 cost),
    ``partial_passes`` (pricing passes that checked only the pairs near a full pass's margin and the rows and columns
    whose potentials rose past it), ``bids`` (of the auctions), ``prices`` (``"warm"``, ``"coarse"`` on data of low
    intrinsic dimension and sets far apart, or ``"auction"``), ``bound_dims`` (``d``, or the sketch's directions + 1),
    ``bounds`` (``"grid"``: sets on a grid of 256 levels, :mod:`wganlab.ot.exact.grid`; ``"float32"``; ``"sketch"``).
    Raises :class:`NotOptimalError` if it cannot certify the result, and :class:`TooDense` once the arc set
    outgrows ``max_arcs`` (e.g. a collapsed set against a spread one, where the dense solver is the better tool)
    and, with ``dense_fallback``, on weighted sets of low intrinsic dimension or far apart (a weighted tube shifted
    along itself: its split columns' paths explore the tube; 4,000 points a side took 171 s, POT 5.3 s).
    """
    if ssp is None:
        raise InputError("engine 'sparse' needs numba (pip install numba); use engine='pot'")
    if len(X) > len(Y) and not isinstance(Y, Points):  # the auction and the paths work best with more columns
        return _transposed(solve_points(Y, X, b, a, squared=squared, warm_start=_transposed(warm_start), tol=tol,
                                        k=k, max_arcs=max_arcs, coarse_min=coarse_min, dense_fallback=dense_fallback))
    prob = _Problem(X, Y if isinstance(Y, Points) else Points(Y), a, b, squared, k)
    u0, prices = _warm_prices(warm_start, prob.M, prob.N), "warm" if warm_start is not None else "auction"
    last = prob.target.last_costs
    # the grid's bounds, tight and cheap, are made afresh (OT-Means, 20 iterations at 28x28: 0.79-0.83 -> 0.67 s)
    shifted = warm_start is not None and last is not None and prob.dist.kind != "grid" and last.shift_into(
        prob.dist, prob.X, *warm_start.potentials, SHIFT_MAX_CHECKS * (prob.M + prob.N))
    coarse_min = COARSE_MIN if coarse_min is None else coarse_min
    if u0 is None and not prob.few_rows and _coarse_prices_pay(prob, coarse_min):
        if dense_fallback and not prob.uniform:
            raise TooDense("weighted points of low intrinsic dimension or sets far apart: paths may slow without bound")
        u0, prices = _coarse_prices(prob, tol), "coarse"
        prob.k = K_COARSE if k is None else k
        max_arcs = None if max_arcs is None else max_arcs * K_COARSE // K_NEAREST
    u, bids = _start(prob, u0)
    # W1 there is degenerate (nearly every pair along the data is nearly tight): paths would explore them all
    by_auction = prices == "coarse" and not squared and prob.uniform and prob.M == prob.N
    v, cmin, stats = _route_and_price(prob, u, max_arcs, by_auction)
    res = _certified(prob, u, v, cmin, tol, {**stats, "warm": warm_start is not None, "prices": prices,
                                                       "bids": bids, "shifted_bounds": shifted,
                                                       "bound_dims": prob.dist.dims,
                                                       "bounds": prob.dist.kind})
    if isinstance(Y, Points) and 4 * prob.M * prob.N <= KEEP_BOUNDS_BYTES and prob.dist.kind != "grid":
        arcs = prob.arcs
        # pricing raised the bounds of the pairs it computed; the arcs raise theirs
        Y.last_costs = blocks.CostBounds.kept(prob.dist, prob.X, arcs.row, arcs.col, arcs.cost)
    return res


class _Problem:
    """One solve's data: the point sets (``X (M, d)``, ``Y`` prepared), their float32 distances, the whole-number
    masses ``sa (M,)``, ``sb (N,)`` summing to ``total``, the arc set and the candidate count ``k``."""

    def __init__(self, X: np.ndarray, Yp: Points, a, b, squared: bool, k: int | None):
        self.X, self.Y, self.target, self.squared = X, Yp.exact, Yp, squared
        M, N = self.M, self.N = len(X), len(Yp)
        self.dist, self.over = None, 1  # candidates by the bound, chosen by exact costs among this many times as many
        cached = blocks.cacheable(M, N)
        many = M * N >= SKETCH_CACHED_MIN_PAIRS and min(M, N) >= SKETCH_CACHED_MIN_SIDE
        if cached:  # sets on a grid of 256 levels (8-bit images): integer bounds, tighter and faster than float32's
            self.dist = grid.distances(X, Yp, squared)
        if self.dist is None and (not cached or many) and X.shape[1] >= 4 * SKETCH_DIMS:  # a cheaper bound
            how = ((min(SKETCH_CACHED_DIMS, X.shape[1] // 4), *SKETCH_CACHED_BASIS, SKETCH_CACHED_TERMS) if cached
                   else (SKETCH_DIMS,))
            sk = sketch.distances(lambda s, e: centred32(X[s:e], Yp.mu), M, Yp.z32, squared, *how)
            if _median_ratio(sk, X, Yp.exact, squared) >= SKETCH_MIN_RATIO:
                self.dist, self.over = sk, 1 if cached else RERANK
        if self.dist is None:  # no float32 copy of x where the sketch or the grid serves
            self.dist = blocks.Distances(Points(X, Yp.mu), Yp, squared)
        self.near = sketch.near_ranks(self.dist) if self.dist.kind == "sketch" else None
        self.uniform = a is None and b is None
        if self.uniform:
            g = math.gcd(M, N)
            self.sa, self.sb, self.total = np.full(M, float(N // g)), np.full(N, float(M // g)), M * N / g
        else:
            self.total = MASS_UNITS
            weights = (np.full(n, 1.0 / n) if w is None else np.asarray(w, dtype=np.float64)
                       for w, n in ((a, M), (b, N)))
            self.sa, self.sb = (auction.whole_units(w, self.total) for w in weights)
        self.few_rows = M <= ROWS_ONLY_MAX and N >= 4 * M
        self.k = (K_FEW_ROWS if self.few_rows else K_NEAREST) if k is None else k
        self.arcs = _Arcs(M, N)

    def costs(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Float64 costs of pairs, looked up for arcs already in the set when the points have LOOKUP_MIN_DIM
        coordinates or more (below, computing a cost is cheaper than finding it); many pairs of a sketched problem
        computed in near order (NEAR_ORDER_MIN_PAIRS)."""
        if self.X.shape[1] < LOOKUP_MIN_DIM:
            return arc_costs.pair_costs(self.X, self.Y, rows, cols, self.squared)
        pos, known = self.arcs.locate(rows.astype(np.int64) * self.N + cols)
        out = np.empty(len(rows))
        out[known] = self.arcs.cost[pos[known]]
        rows, cols = rows[~known], cols[~known]
        if self.near is None or len(rows) < NEAR_ORDER_MIN_PAIRS:
            out[~known] = arc_costs.pair_costs(self.X, self.Y, rows, cols, self.squared)
        else:  # column by column in near order, rows too: near images one after another, read from the caches
            order, cost = np.argsort(self.near[1][cols] * self.M + self.near[0][rows]), np.empty(len(rows))
            cost[order] = arc_costs.pair_costs(self.X, self.Y, rows[order], cols[order], self.squared)
            out[~known] = cost
        return out


def _median_ratio(dist: blocks.Distances, X: np.ndarray, Y: np.ndarray, squared: bool, pairs: int = 256) -> float:
    """The median of ``lo_ij / c_ij`` (as distances: square roots for ``squared`` costs) over ``pairs`` seeded
    random pairs (those of cost 0 left out)."""
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(0, len(X), pairs), rng.integers(0, len(Y), pairs)
    lo = dist.lower(None, rows)[np.arange(pairs), cols].astype(np.float64)
    cost = arc_costs.pair_costs(X, Y, rows, cols, squared)
    ratio = lo[cost > 0] / cost[cost > 0]
    return float(np.median(np.sqrt(ratio) if squared else ratio)) if len(ratio) else 1.0


def _warm_prices(warm_start: OTResult | None, M: int, N: int) -> np.ndarray | None:
    """A copy of the row potentials of ``warm_start`` (an earlier result between sets of sizes ``M x N``)."""
    if warm_start is None:
        return None
    pots = getattr(warm_start, "potentials", None)
    if pots is None or len(pots[0]) != M or len(pots[1]) != N:
        raise InputError(f"warm_start: expected an OTResult with potentials for {M} x {N} points")
    return np.array(pots[0], dtype=np.float64)


def _low_dimensional(prob: _Problem, rows: int = 16) -> bool:
    """Whether :func:`coarse.intrinsic_dimension` (``rows`` rows of ``x`` against ``y``) is below COARSE_DIM_MAX."""
    idx = np.arange(0, prob.M, max(1, prob.M // rows))[:rows]
    return coarse.intrinsic_dimension(prob.X[idx], prob.Y, prob.dist.lower(None, idx)) < COARSE_DIM_MAX


def _coarse_prices_pay(prob: _Problem, coarse_min: int) -> bool:
    """Whether the first prices should come from the coarsened problem (module constants above)."""
    size, a, b = min(prob.M, prob.N), prob.sa / prob.sa.sum(), prob.sb / prob.sb.sum()
    return (size >= coarse_min and _low_dimensional(prob)) or (
        size >= SEPARATED_MIN and coarse.separation(prob.X, prob.Y, a, b) >= SEPARATION_MIN)


def _coarse_prices(prob: _Problem, tol: float) -> np.ndarray:
    """Row prices from the exact solve of the coarsened problem (:mod:`wganlab.ot.exact.coarse`); for uniform
    weights the clusters count as equal (all but one hold LEAF points), which keeps the coarse problem's
    masses whole numbers: these are prices, and the fine solve is exact either way."""
    Xc, ac = coarse.coarsen(prob.X, prob.sa / prob.sa.sum())
    Yc, bc = coarse.coarsen(prob.Y, prob.sb / prob.sb.sum())
    if prob.uniform:
        ac = bc = None
    res = solve_points(Xc, Yc, ac, bc, squared=prob.squared, tol=tol, coarse_min=COARSE_NESTED_MIN)
    return coarse.c_transform(prob.X, Yc, res.potentials[1], prob.squared)


def _start(prob: _Problem, u: np.ndarray | None) -> tuple[np.ndarray, int]:
    """Phases 1-2: row prices ``u (M,)`` and the first arc set; returns ``(u, auction bids)``.

    With few rows, an auction on all pairs (from the given prices ``u``, if any); otherwise ``u`` or 0, refined
    after the candidates by auctions on the arcs. Candidates: the nearest columns of every row (room for a
    row's mass) and the ``k`` rows of smallest ``c_ij - u_i`` of every column."""
    M, N, dist, arcs = prob.M, prob.N, prob.dist, prob.arcs
    a = prob.sa / prob.sa.sum()
    warm = u is not None
    bids = 0
    if prob.few_rows and dist.cache is not None:
        u, bids = auction.dense_prices(dist.transposed(), a, u)
    elif u is None:
        u = np.zeros(M)
    # a warm start's prices already give the rows their columns
    k_row = (0 if warm else K_NEAREST) if prob.few_rows else max(prob.k, math.ceil(2 * N / M))
    found = candidates.by_cost(dist, prob.costs, k_row, prob.k, prob.over, u)
    arcs.add(*found)
    if not prob.few_rows:  # prices: auctions on the arcs, each column's best rows at their prices joining the arcs
        eps = auction.EPS[1 if warm else 0]
        if prob.uniform and M == N:  # once: arcs are only added, so the matching stays
            _link_unmatched(prob)
        b = None if (prob.sb == prob.sb[0]).all() else prob.sb / prob.sb.sum()  # None: each column bids as one unit
        for _ in range(AUCTION_ROUNDS):
            rows, cost = arcs.row[arcs.col_arc], arcs.cost[arcs.col_arc]
            bids += auction.run(arcs.col_ptr, rows, cost, a, u, float(arcs.cost.mean()), eps, auction.EPS[2], b)
            eps = auction.EPS[1]
            before = len(arcs.key)
            # each column's arcs at the new prices cap the search (over == 1: as many as it keeps)
            cap = candidates.column_caps(arcs.col_ptr, rows, cost, u, prob.k) if prob.over == 1 else None
            found = candidates.by_cost(dist, prob.costs, 0, prob.k, prob.over, u, cap)
            arcs.add(*found)
            if len(arcs.key) - before <= AUCTION_NEW_ARCS * N:
                break
    return u, bids


def _link_unmatched(prob: _Problem) -> None:
    """Where the arc set holds no perfect matching (as many rows as columns, one unit each; Hall's condition fails
    for some columns: 4 of the first arc set of 10,000 x 10,000 images at 64x64), the rows
    and columns a maximum matching leaves free (as many of each) get K_EXTEND links each by distance
    (:func:`candidates.link_stuck`) and one to each other in turn (which completes the matching): without a full
    assignment the auction bids until its limit and its prices are poor."""
    arcs = prob.arcs
    row_col, col_row = auction.unmatched(arcs.col_ptr, arcs.row[arcs.col_arc], prob.M)
    if (col_row < 0).any():
        free_rows, free_cols = np.flatnonzero(row_col < 0), np.flatnonzero(col_row < 0)
        rows, cols = candidates.link_stuck(prob.dist, free_rows, free_cols, K_EXTEND)
        rows, cols = np.concatenate([rows, free_rows]), np.concatenate([cols, free_cols])
        arcs.add(rows, cols, prob.costs(rows, cols))


def _route_and_price(prob: _Problem, u: np.ndarray, max_arcs: int | None, by_auction: bool):
    """Phase 3: column potentials at their largest feasible value and a greedy start on the tight arcs, then
    shortest paths on the arc set, linking stuck rows where it admits no feasible flow, and pricing of every
    pair (exact where the float32 bound cannot decide) until none has a negative reduced cost. ``by_auction``:
    :class:`auction.CertifiedAssignment` instead of the paths where the greedy start routes at most
    CERTIFY_GREEDY_MAX of the mass (the paths take over if it gives up), and once the paths have settled
    PATHS_BUDGET nodes per column.
    Returns ``(v, cmin of the last pricing pass, stats)``; ``u``, the arcs' flow are updated."""
    M, N, dist, arcs = prob.M, prob.N, prob.dist, prob.arcs
    v = np.empty(N)
    sr, dc = prob.sa.copy(), prob.sb.copy()
    tight = 0.1 * ROUNDING * float(arcs.cost.max())
    ssp.greedy_init(arcs.col_ptr, arcs.col_arc, arcs.row, arcs.cost, arcs.flow, u, v, sr, dc, tight)
    pricer = pricing.Pricer(prob, prob.X.shape[1] >= LOOKUP_MIN_DIM, K_PRICE)
    eps, budget = auction.EPS[1] * float(arcs.cost.mean()), (PATHS_BUDGET * N if by_auction else np.inf)
    by_auction = by_auction and sr.sum() > (1 - auction.CERTIFY_GREEDY_MAX) * prob.sa.sum()
    route = auction.CertifiedAssignment(arcs, u, eps, auction.FACTOR) if by_auction else None
    if by_auction:  # degenerate: the float32 bounds would settle few pairs
        pricer.compute_every_cost()
    rounds = n_aug = n_searches = n_settled = extended = priced_in = n_stuck = 0
    while True:
        rounds += 1
        if rounds > MAX_ROUNDS:
            raise NotOptimalError(f"sparse OT did not converge in {MAX_ROUNDS} pricing rounds")
        if max_arcs is not None and len(arcs.cost) > max_arcs:  # before the paths, the costly part of a round
            raise TooDense(f"the arc set grew to {len(arcs.cost)} arcs (limit {max_arcs})")
        if route is not None and route.gave_up:  # the shortest paths from scratch at the prices it started from
            route, u[:], sr[:], dc[:], arcs.flow[:] = None, route.u_start, prob.sa, prob.sb, 0.0
            ssp.greedy_init(arcs.col_ptr, arcs.col_arc, arcs.row, arcs.cost, arcs.flow, u, v, sr, dc, tight)
        if route is not None:
            status, stuck = route(u, v, sr, dc)
        else:
            args = arcs.row_ptr, arcs.col, arcs.row, arcs.cost, arcs.col_ptr, arcs.col_arc, arcs.flow, u, v, sr, dc
            status, aug, stuck, searches, settled = (ssp.ssp_few_rows(*args) if prob.few_rows
                                                     else ssp.ssp(*args, budget - n_settled))
            n_aug, n_searches, n_settled = n_aug + aug, n_searches + searches, n_settled + settled
            if status == ssp.OVER_BUDGET:  # the auction's assignment from the paths' prices, once
                route, budget, by_auction = auction.CertifiedAssignment(arcs, u, eps, auction.FACTOR), np.inf, True
                pricer.compute_every_cost()
                continue
        if status == ssp.STUCK:  # Hall's condition fails on the arc set: link the stuck rows to free columns
            k_link = K_EXTEND << min(n_stuck, 4)  # doubles while the flow stays stuck, up to 16x
            new_r, new_c = candidates.link_stuck(dist, np.flatnonzero(stuck[:M]), np.flatnonzero(dc > 0), k_link)
            extended, n_stuck = extended + len(new_r), n_stuck + 1
            _insert(arcs, new_r, new_c, prob.costs(new_r, new_c), u, v, sr, dc)
            continue
        fr, fc, fcost, rc, cmin, checked = pricer(u, v, 0.0 if route is None else route.tolerance)
        if not len(fr) or (route is not None and route.within_gap(u, v, cmin)):
            break
        _insert(arcs, fr, fc, fcost, u, v, sr, dc)
        priced_in += len(fr)
        if route is not None:
            route.restart(-float(rc.min()))
    stats = {"rounds": rounds, "augmentations": n_aug, "searches": n_searches, "settled": n_settled,
             "arcs": len(arcs.cost), "extended": extended, "priced_in": priced_in, "checked": checked,
             "partial_passes": pricer.partial_passes}
    if by_auction:
        stats["certified_by_auction"] = route is not None
    return v, cmin, stats


def _certified(prob: _Problem, u, v, cmin, tol: float, stats: dict) -> OTResult:
    """The plan on the arcs with flow, potentials ``(u, v')`` with ``v'_j = min(v_j, cmin_j)``, ``cmin_j`` the
    smallest ``c_ij - u_i`` of the last pricing pass's pairs (dual feasible for every pair), and the checked
    duality gap."""
    arcs, total = prob.arcs, prob.total
    vf = np.minimum(v, cmin)
    keep = arcs.flow > 0
    on = np.flatnonzero(keep)
    on = on[np.lexsort((arcs.col[on], arcs.row[on]))]  # row by row, as the CSR arrays store them
    indptr = np.concatenate([[0], np.cumsum(np.bincount(arcs.row[on], minlength=prob.M))])
    P, C = (sp.csr_array((data, arcs.col[on], indptr), shape=(prob.M, prob.N))
            for data in (arcs.flow[on] / total, arcs.cost[on]))
    a_n, b_n = prob.sa / prob.sa.sum(), prob.sb / prob.sb.sum()
    cost = float(arcs.flow[keep] @ arcs.cost[keep]) / total
    gap = cost - float(a_n @ u + b_n @ vf)
    solver = "sparse-auction" if stats.get("certified_by_auction") else "sparse-ssp"
    res = OTResult(value=cost, cost=cost, gap=gap, solver=solver, plan=P, potentials=(u, vf),
                   info={"n": prob.M, "m": prob.N, **stats}, plan_costs=C)
    check_certificate(res, P.sum(1), P.sum(0), a_n, b_n, tol, float(arcs.cost.max()))
    return res


def _transposed(res: OTResult | None) -> OTResult | None:
    """The result of the problem with ``x`` and ``y`` swapped (plan transposed, potentials swapped)."""
    if getattr(res, "potentials", None) is None:  # None, or not a result (solve_points names the problem)
        return res
    info = {**res.info, "n": res.info.get("m"), "m": res.info.get("n")}
    plan, costs = (None if m is None else sp.csr_array(m.T) for m in (res.plan, res.plan_costs))
    return dataclasses.replace(res, plan=plan, potentials=res.potentials[::-1], info=info, plan_costs=costs)


def _insert(arcs: _Arcs, rows, cols, cost, u, v, sr, dc) -> None:
    """Add arcs; columns whose reduced cost would turn negative get a lower ``v_j`` and give back their
    flow (to their rows' supply), so every invariant of the shortest-path solver holds again."""
    lowered = v.copy()
    np.minimum.at(lowered, cols, cost - u[rows])
    drop = lowered < v
    v[:] = lowered
    arcs.add(rows, cols, cost)
    back = drop[arcs.col] & (arcs.flow > 0)
    np.add.at(sr, arcs.row[back], arcs.flow[back])
    np.add.at(dc, arcs.col[back], arcs.flow[back])
    arcs.flow[back] = 0.0
