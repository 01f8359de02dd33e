"""The epsilon-scaling auction of the sparse exact solver: row prices, and the solve itself on degenerate problems.

Columns ``j`` (one unit of demand each; :func:`run` repeats a weighted column by its weight) bid for rows ``i``
(``cap_i`` units each) over the arcs of a column-major graph (``col_ptr (N+1)``, ``arc_row (E)``, ``cost (E)``; a
dense ``M x N`` problem is the graph with every arc). This is Bertsekas' auction with similar objects: each row
holds ``cap_i`` slots in a min-heap of prices; an unassigned column takes the cheapest slot of its best row ``i1
= argmin_i (c_ij + p_i)`` (``p_i`` the row's cheapest slot) and raises that slot to the price at which the
column's best other row would be as good, plus ``eps``, evicting the column that held it. Every phase ends with
each column within ``eps`` of its best row (``eps``-complementary slackness); ``eps`` then shrinks by ``factor``.
The prices ``-p`` are a near-optimal start for the exact solver's row potentials; on degenerate problems
(:class:`CertifiedAssignment`) the last phase's assignment at a tiny ``eps`` is the plan, certified by pricing
every pair.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from wganlab.ot.exact import ssp
from wganlab.ot.exact.blocks import LANES, smallest
from wganlab.ot.exact.certificate import ROUNDING
from wganlab.ot.exact.ssp import sift_down

#: auction (times the mean cost): epsilon at the start, after the phases on every COARSE-th column
#: (few rows; a warm start's one phase) and at the end; the factor between phases, and the most bids per
#: column in one phase. A factor of 6 rather than 30 halves the certified assignment's bids on a line + 1e-6
#: (W1, 11,000 a side: 35.8 M -> 15-19 M bids) and leaves generic data as it was (Fashion-MNIST 64 x 10,000,
#: 2,000^2, 10,000^2, Gaussians ten apart: the same times within noise); 4 and 10 were slower on the degenerate sets
#: (docs/speed-history.md, "The auction's factor and the paths' budget")
EPS, FACTOR, COARSE, MAX_BIDS = (0.2, 3e-3, 1e-4), 6.0, 4, 50
#: :class:`CertifiedAssignment`: the auction's last epsilon (times the mean cost: at most this relative gap on the
#: arcs), the relative gap it stops at (violations of pricing included), the most bids per column in one phase
#: (doubled after each run out of bids: a price war), and how many such runs before the shortest paths take over
CERTIFY_EPS, CERTIFY_GAP, CERTIFY_MAX_BIDS, CERTIFY_MAX_FAILS = 1e-10, 1e-9, 200, 4
#: ... taken where the greedy start on the tight arcs routes at most this share of the mass (4,000 points a side:
#: thin tubes shifted along themselves 0.4-1.4 %; the paths were faster on a line + 1e-6 unshifted, 10 %, a circle,
#: 17 %, a line + 1e-1 shifted and Gaussians ten apart, 72-74 %: measured then; docs/speed-history.md, w1-low-dim)
CERTIFY_GREEDY_MAX = 0.05
#: weighted columns bid as this many units per column on average (W1 between 10,000 weighted Fashion-MNIST images a
#: side: 30 s with 1, 23 s with 2, 15.5 s with 4, 17 s with 8; the greedy start routed 67 % of the mass with 1, 75 %
#: with 4). Few rows (:func:`dense_prices`) keep one: their paths are cheap, the bids four times as many
WEIGHT_UNITS = 4


@nb.njit(cache=True)
def auction_prices(col_ptr, arc_row, cost, cap, price, eps_start, eps_end, factor, max_bids, owner):
    """Run the auction phases from ``eps_start`` down to ``eps_end`` (dividing by ``factor``), starting
    from (and updating in place) the row prices ``price (M,)``. Rows with ``cap_i = 0`` are not bid for
    (a column without another row raises by ``eps``, one without any row stays out). Stops early after
    ``max_bids`` bids in one phase (a sparse graph may hold no assignment for every column). Returns the
    number of bids; ``owner (N,)`` receives each column's arc (its position in the graph) in the last phase's
    assignment, -1 for a column left without one. ``cost`` is ``(1, E)``, by arc; or, with ``col_ptr`` and
    ``arc_row`` None, ``(N, M)``: every pair (arc ``j M + i``), each column's costs scanned without the rows' gather
    and vectorised (64 x 10,000 images: 11.7 -> 9.0 ms, the same bids; numba compiles the two forms apart)."""
    M = len(cap)
    N = len(cost) if col_ptr is None else len(col_ptr) - 1
    start = np.zeros(M + 1, dtype=np.int64)
    for i in range(M):
        start[i + 1] = start[i] + cap[i]
    hp = np.empty(start[M])
    hj = np.empty(start[M], dtype=np.int64)
    top = np.empty(M)  # each row's cheapest slot (inf: no slots)
    stack = np.empty(N, dtype=np.int64)
    w = np.full(LANES + (M if col_ptr is None else (np.max(col_ptr[1:] - col_ptr[:-1]) if N > 0 else 0)), np.inf)
    lanes = np.empty(LANES)
    bids = 0
    eps = eps_start
    while True:
        for i in range(M):  # a new phase: every slot free at its row's price
            top[i] = price[i] if cap[i] > 0 else np.inf
            for s in range(start[i], start[i + 1]):
                hp[s] = price[i]
                hj[s] = -1
        for t in range(N):
            stack[t] = N - 1 - t
            owner[t] = -1
        n_free = N
        phase_bids = 0
        while n_free > 0 and phase_bids < max_bids:
            n_free -= 1
            j = stack[n_free]
            # the best value c_ij + p_i, then the second best (over other rows)
            if col_ptr is None:
                e0, n_arcs = j * M, M
                for q in range(M):
                    w[q] = cost[j, q] + top[q]
                b1 = smallest(w, M, lanes)
            else:  # the rows' gather: one fused pass is faster
                e0, n_arcs = col_ptr[j], col_ptr[j + 1] - col_ptr[j]
                b1 = np.inf
                for q in range(n_arcs):
                    w[q] = cost[0, e0 + q] + top[arc_row[e0 + q]]
                    b1 = min(b1, w[q])
            if b1 == np.inf:
                continue
            q1 = 0
            while w[q1] != b1:
                q1 += 1
            w[q1] = np.inf
            if col_ptr is None:
                b2 = smallest(w, M, lanes)
            else:
                b2 = np.inf
                for q in range(n_arcs):
                    b2 = min(b2, w[q])
            if b2 == np.inf:
                b2 = b1
            i1 = q1 if col_ptr is None else arc_row[e0 + q1]
            s0 = start[i1]
            evicted = hj[s0]
            hp[s0] = top[i1] + b2 - b1 + eps
            hj[s0] = j
            owner[j] = e0 + q1
            sift_down(hp, hj, s0, start[i1 + 1] - s0, 0)
            top[i1] = hp[s0]
            phase_bids += 1
            if evicted >= 0:
                owner[evicted] = -1
                stack[n_free] = evicted
                n_free += 1
        bids += phase_bids
        for i in range(M):
            if cap[i] > 0:
                price[i] = top[i]
        if eps <= eps_end or phase_bids >= max_bids:
            return bids
        eps = max(eps / factor, eps_end)


@nb.njit(cache=True)
def unmatched(col_ptr, rows, M):
    """A maximum matching of the bipartite graph of ``M`` rows and the columns of ``col_ptr (N+1)``, ``rows (E)``
    (column-major arcs): a greedy start, then one breadth-first search for an augmenting path from each column left
    free (rows already found in a component without a free row are skipped). Returns ``(row_col (M,), col_row
    (N,))``, each node's partner or -1: the free columns left are those Hall's condition fails for."""
    N = len(col_ptr) - 1
    row_col, col_row = np.full(M, -1, dtype=np.int64), np.full(N, -1, dtype=np.int64)
    for j in range(N):
        for q in range(col_ptr[j], col_ptr[j + 1]):
            if row_col[rows[q]] < 0:
                row_col[rows[q]], col_row[j] = j, rows[q]
                break
    mark, pred = np.zeros(M, dtype=np.int64), np.empty(M, dtype=np.int64)  # mark: search stamp, -1 dead
    queue = np.empty(N, dtype=np.int64)
    for j0 in range(N):
        if col_row[j0] >= 0:
            continue
        head, tail, found = 0, 1, -1
        queue[0] = j0
        while head < tail and found < 0:
            j = queue[head]
            head += 1
            for q in range(col_ptr[j], col_ptr[j + 1]):
                i = rows[q]
                if mark[i] == j0 + 1 or mark[i] < 0:
                    continue
                mark[i], pred[i] = j0 + 1, j
                if row_col[i] < 0:
                    found = i
                    break
                queue[tail] = row_col[i]
                tail += 1
        if found < 0:  # every row reached is taken by a column reached: none of them can gain a row
            for t in range(1, tail):
                mark[col_row[queue[t]]] = -1
            continue
        i = found
        while i >= 0:  # shift the partners along the path
            j = pred[i]
            i_next = col_row[j]
            row_col[i], col_row[j] = j, i
            i = i_next
    return row_col, col_row


class CertifiedAssignment:
    """The solve of the sparse engine (:mod:`wganlab.ot.exact.sparse`) on degenerate problems, W1 on data of low
    intrinsic dimension, where nearly every pair along the data is nearly tight and shortest paths explore them
    all: as many rows as columns, one unit each (uniform weights). Each call runs the auction on the arcs down to
    ``eps_end``, CERTIFY_EPS times the mean cost of its assignment (at most twice that of the final one), and sets
    the flow to the assignment; pricing then checks every pair at ``v_j = min_i (c_ij - u_i)`` over the arcs. With
    no pair below, the certified gap is at most ``N eps_end``: 2 CERTIFY_EPS of the cost."""

    def __init__(self, arcs, u: np.ndarray, eps: float, factor: float):
        """``arcs``: the engine's arc set (``row``, ``col``, ``cost``, ``flow``, ``col_ptr``, ``col_arc``; grows
        between calls); ``u``: the row potentials it starts from (kept as ``u_start``); ``eps``: the first phase's
        epsilon, divided by ``factor`` between phases."""
        self.u_start = u.copy()
        self.arcs, self.eps, self.factor = arcs, eps, factor
        self.floor = ROUNDING * float(arcs.cost.mean())  # the certificate's rounding slack covers this
        self.eps_end, self.fails, self.gave_up = None, 0, False

    def __call__(self, u: np.ndarray, v: np.ndarray, sr: np.ndarray, dc: np.ndarray):
        """One solve on the arcs from the row potentials ``u``: ``(DONE, None)`` with the flow, ``u`` and ``v``
        set, or ``(STUCK, rows)`` with the rows with room left marked in ``rows (M,)``, the columns without a
        row in ``dc > 0`` (Hall's condition fails on the arcs, or the auction ran out of bids: link them);
        ``gave_up`` after CERTIFY_MAX_FAILS runs out of bids."""
        arcs = self.arcs
        M, N = len(sr), len(dc)
        if self.eps_end is None:  # Hall's condition first (the auction would bid for ever without it)
            row_col, col_row = unmatched(arcs.col_ptr, arcs.row[arcs.col_arc], M)
            if (col_row < 0).any():
                return self._stuck(np.flatnonzero(row_col < 0), np.flatnonzero(col_row < 0), M, dc)
        while True:
            done = assign(arcs.col_ptr, arcs.col_arc, arcs.row, arcs.cost, u, v, arcs.flow, self.eps,
                          self.eps_end or self.eps, self.factor, CERTIFY_MAX_BIDS * N << self.fails)
            if not done:
                self.fails += 1
                self.gave_up = self.fails > CERTIFY_MAX_FAILS
                rows = np.flatnonzero(np.bincount(arcs.row, arcs.flow, M) == 0)
                return self._stuck(rows, np.flatnonzero(np.bincount(arcs.col, arcs.flow, N) == 0), M, dc)
            # the epsilon of the certificate from the assignment's cost (scaling on while that falls)
            target = max(CERTIFY_EPS * float(arcs.flow @ arcs.cost) / N, self.floor)
            if self.eps_end is not None and self.eps_end <= 2 * target:
                self.eps = self.factor * self.eps_end
                return ssp.DONE, None
            self.eps, self.eps_end = self.eps_end or self.eps, target

    @property
    def tolerance(self) -> float:
        """The reduced costs down to ``-tolerance`` that the assignment leaves on its arcs (its last epsilon): pricing
        does not bring in pairs violating by less (on degenerate data tens of millions of them; the certificate
        still counts them)."""
        return self.eps_end or 0.0

    def within_gap(self, u: np.ndarray, v: np.ndarray, cmin: np.ndarray) -> bool:
        """Whether the flow's gap at the potentials ``(u, min(v, cmin))`` (``cmin``: pricing's smallest ``c_ij - u_i``
        of each column, so dual feasible) is within CERTIFY_GAP of its cost: pricing's violations small enough to
        stop."""
        cost = float(self.arcs.flow @ self.arcs.cost)
        return cost - (float(u.sum()) + float(np.minimum(v, cmin).sum())) <= CERTIFY_GAP * cost

    def restart(self, violation: float) -> None:
        """New arcs with reduced costs down to ``-violation``: the next call scales down from there."""
        self.eps = max(violation, self.eps)

    @staticmethod
    def _stuck(rows, cols, M, dc):
        dc[:] = 0.0
        dc[cols] = 1.0
        return ssp.STUCK, np.isin(np.arange(M), rows)


def assign(col_ptr, col_arc, arc_row, cost, u, v, flow, eps_start, eps_end, factor, max_bids) -> bool:
    """The auction between as many rows as columns, one unit each, on an arc set (CSR by column: ``col_ptr (N+1)``,
    ``col_arc`` the arcs in column order; ``arc_row``, ``cost``, ``flow`` by arc) from the row potentials ``u =
    -price`` (updated in place) down to ``eps_end``, its assignment as the flow (one unit on each assigned column's
    arc, 0 elsewhere) and ``v_j = min_i (c_ij - u_i)`` over each column's arcs. Each column's arc is within
    ``eps_end`` of that minimum, so on that arc set the plan costs at most ``N eps_end`` more than ``u.sum() +
    v.sum()``. Returns whether every column got a row."""
    owner = np.empty(len(col_ptr) - 1, dtype=np.int64)
    rows, price = arc_row[col_arc], -u
    auction_prices(col_ptr, rows, cost[col_arc][None], np.ones(len(u), dtype=np.int64), price, eps_start, eps_end,
                   factor, max_bids, owner)
    u[:] = -price
    flow[:] = 0.0
    got = owner >= 0
    flow[col_arc[owner[got]]] = 1.0
    v[:] = np.minimum.reduceat(cost[col_arc] - u[rows], col_ptr[:-1])
    return bool(got.all())


def whole_units(w: np.ndarray, total: float) -> np.ndarray:
    """Weights summing to 1 as whole numbers summing to ``total`` exactly (float64 holds them exactly, so
    no flow is ever split into rounding dust): ``floor(w_i total)``, plus one unit for the largest fractional
    parts until the sum is ``total`` (uniform weights ``1 / n`` with ``total = n`` give 1 each, also where
    ``(1 / n) n`` rounds below 1), the largest weight absorbing any rest."""
    scaled = w * total
    q = np.floor(scaled)
    short = int(min(total - q.sum(), len(q)))
    if short > 0:
        q[np.argsort(q - scaled, kind="stable")[:short]] += 1
    q[np.argmax(w)] += total - q.sum()
    return q


def run(col_ptr, arc_row, cost, a: np.ndarray, u: np.ndarray, scale: float, eps_start: float, eps_end: float,
        b: np.ndarray | None = None) -> int:
    """The auction on a column-major graph for the row weights ``a`` and column weights ``b`` (None: uniform), from
    the row potentials ``u`` (updated in place) and ``eps_start`` down to ``eps_end`` (times ``scale``). Column ``j``
    bids as ``b_j K`` units (``K = WEIGHT_UNITS N`` rounded to whole units, one with uniform weights), row ``i``
    holds ``a_i K`` slots; each at least 1 where its weight is positive (a row without a slot is never bid for and
    keeps its first price, the cheapest row of many columns). ``col_ptr`` and ``arc_row`` None: ``cost (N, M)``
    holds every pair (uniform ``b`` only). Returns the bids."""
    price = -u
    if b is not None:
        units = np.maximum(whole_units(b, float(WEIGHT_UNITS * (len(col_ptr) - 1))), b > 0).astype(np.int64)
        col_ptr, arc_row, cost = repeated_columns(col_ptr, arc_row, cost, units)
    total = len(cost) if col_ptr is None else len(col_ptr) - 1
    cost = np.ascontiguousarray(cost) if col_ptr is None else cost[None]  # :func:`auction_prices`' two forms
    cap = np.maximum(whole_units(a, float(total)), a > 0).astype(np.int64)
    bids = auction_prices(col_ptr, arc_row, cost, cap, price, eps_start * scale, eps_end * scale, FACTOR,
                          MAX_BIDS * total, np.empty(total, dtype=np.int64))
    u[:] = -price
    return bids


def repeated_columns(col_ptr, arc_row, cost, units: np.ndarray):
    """The column-major graph ``(col_ptr, arc_row, cost)`` with column ``j`` repeated ``units_j`` times."""
    cols = np.repeat(np.arange(len(units)), units)
    lengths = np.diff(col_ptr)[cols]
    ptr = np.concatenate([[0], np.cumsum(lengths)])
    at = np.repeat(col_ptr[cols] - ptr[:-1], lengths) + np.arange(ptr[-1])
    return ptr, arc_row[at], cost[at]


def dense_prices(lo_t: np.ndarray, a: np.ndarray, warm: np.ndarray | None) -> tuple[np.ndarray, int]:
    """Row prices ``u`` for few rows by the auction on all pairs' float32 distances ``lo_t (N, M)``: near-optimal,
    so the candidates hold the optimal arcs and the greedy start routes almost all mass. The large-epsilon phases
    run on every COARSE-th column, the small ones on all; from ``warm`` (earlier potentials) one
    phase at the middle epsilon runs. Returns ``(u, bids)``. A start; exactness comes from the solver."""
    scale = float(lo_t.mean())
    if warm is not None:
        u = warm.copy()
        return u, run(None, None, lo_t, a, u, scale, EPS[1], EPS[1])
    u = np.zeros(len(a))
    bids = run(None, None, lo_t[::COARSE], a, u, scale, EPS[0], EPS[1])
    return u, bids + run(None, None, lo_t, a, u, scale, EPS[1], EPS[2])
