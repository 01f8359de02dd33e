"""Pricing passes of the sparse exact OT engine (:mod:`wganlab.ot.exact.sparse`): the pairs whose reduced cost
``c_ij - u_i - v_j`` is negative, among all ``M x N``, found on the float32 lower bounds of
:class:`wganlab.ot.exact.blocks.Distances` with an exact float64 check of the pairs they cannot settle.

Where the blocks are not cached (each pass recomputes them), a full pass screens with a margin ``delta``: every
pair it does not return has ``c_ij >= u0_i + v0_j + delta`` at its potentials ``u0``, ``v0``, and it keeps the
pairs it returns (reduced cost below ``delta``, exact costs). A later pass at ``u``, ``v`` then checks only those
kept pairs, the rows with ``u_i - u0_i > t`` and the columns with ``v_j - v0_j > delta - t`` (``t`` chosen to
check the fewest pairs): any other pair has ``c_ij - u_i - v_j >= delta - (u_i - u0_i) - (v_j - v0_j) >= 0``.
It finds the same violating pairs as a full pass, in the same order.
"""

from __future__ import annotations

import numpy as np

from wganlab.ot.exact import blocks, ssp

#: the margin of a full pass, times the mean cost of the arcs
MARGIN = 0.01
#: a full pass keeps its pairs within the margin for later passes when there are at most this many per point
KEEP_PER_POINT = 64
#: a later pass checks rows and columns when that is fewer than this share of all pairs (else a full pass)
PARTIAL_MAX = 0.3


class Pricer:
    """The pricing passes of one solve: ``pricer(u, v, tolerance) -> (rows, cols, costs, reduced costs, cmin,
    checked)``, the pairs violating by more than ``tolerance`` (``c_ij - u_i - v_j < -tolerance``, row-major order)
    that are among the ``worst`` most violating of their row or of their column (:func:`worst_pairs`), ``cmin
    (N,)`` the smallest ``c_ij - u_i`` of each column over the pairs computed exactly, smaller violations included
    (the others have ``c_ij - u_i >= v_j``), and how many pairs were computed."""

    def __init__(self, prob, lookup: bool, worst: int):
        """``prob``: the solve (``dist``, ``X``, ``Y``, ``squared``, ``arcs``, ``M``, ``N``); ``lookup``: arcs'
        costs are looked up rather than recomputed; ``worst``: how many of each row's and each column's most
        violating pairs return."""
        self.prob, self.lookup, self.worst = prob, lookup, worst
        self.incremental = prob.dist.cache is None
        self.kept = None  # (u0, v0, delta, rows, cols, costs) of the latest full pass
        self.partial_passes = 0

    def __call__(self, u: np.ndarray, v: np.ndarray, tolerance: float = 0.0):
        plan = self._partial_plan(u, v) if self.kept is not None else None
        if plan is None:
            return self._full(u, v, tolerance)
        self.partial_passes += 1
        return self._partial(u, v, tolerance, *plan)

    def _full(self, u, v, tolerance):
        prob = self.prob
        delta = MARGIN * float(prob.arcs.cost.mean()) if self.incremental and len(prob.arcs.cost) else 0.0
        cmin = np.full(prob.N, np.inf)
        # with a margin, every pair below it returns (kept for later passes); without, the violations only
        rows, cols, cost, rc, checked = _pass(prob.dist.blocks(), prob.X, prob.Y, prob.squared, u, v, self._arcs(),
                                              cmin, delta if delta > 0 else -tolerance, 0 if delta > 0 else self.worst)
        if delta > 0:
            self.kept = None
            if len(rows) <= KEEP_PER_POINT * (prob.M + prob.N):
                self.kept = (u.copy(), v.copy(), delta, rows, cols, cost)
        return (*self._worst(_violating(rows, cols, cost, rc, u, v, tolerance)), cmin, checked)

    def _partial_plan(self, u, v):
        """``(rows, cols)`` to check at ``u``, ``v`` from the kept full pass, or None when a full pass is cheaper."""
        u0, v0, delta, *_ = self.kept
        du, dv = u - u0, v - v0
        # a pair the full pass did not return: c - u0 - v0 >= delta - 1e-12 (|u0_i| + |v0_j| + c), and
        # c < |u0| + |v0| + delta (else c - u0 - v0 >= delta)
        room = delta * (1 - 1e-6) - 1e-12 * (2 * float(np.abs(u0).max() + np.abs(v0).max()) + delta)
        M, N = len(u), len(v)
        best = None
        for t in np.concatenate([np.quantile(du, [0.0, 0.5, 0.9, 0.99, 1.0]),
                                 room - np.quantile(dv, [0.0, 0.5, 0.9, 0.99, 1.0])]):
            rows, cols = np.flatnonzero(du > t), np.flatnonzero(dv > room - t)
            work = len(rows) * N + M * len(cols)
            if best is None or work < best[0]:
                best = (work, rows, cols)
        return None if best[0] > PARTIAL_MAX * M * N else best[1:]

    def _partial(self, u, v, tolerance, rows, cols):
        prob = self.prob
        _, _, _, kr, kc, kcost = self.kept
        cmin = np.full(prob.N, np.inf)
        np.minimum.at(cmin, kc, kcost - u[kr])
        found = [(kr, kc, kcost, kcost - u[kr] - v[kc])]
        checked = len(kr)
        if len(rows):
            r, c, cost, rc, n = _pass(prob.dist.blocks(rows), prob.X[rows], prob.Y, prob.squared, u[rows], v, None,
                                      cmin, -tolerance, self.worst)
            found.append((rows[r], c, cost, rc))
            checked += n
        if len(cols):
            cmin_c = np.full(len(cols), np.inf)
            r, c, cost, rc, n = _pass(prob.dist.columns(cols).blocks(), prob.X, prob.Y[cols], prob.squared, u,
                                      v[cols], None, cmin_c, -tolerance, self.worst)
            np.minimum.at(cmin, cols, cmin_c)
            found.append((r, cols[c], cost, rc))
            checked += n
        rows_, cols_, cost_, rc_ = (np.concatenate([f[k] for f in found]) for k in range(4))
        out = _violating(rows_, cols_, cost_, rc_, u, v, tolerance)
        first = np.unique(out[0] * prob.N + out[1], return_index=True)[1]  # row-major, as a full pass
        return (*self._worst(tuple(a[first] for a in out)), cmin, checked)

    def _worst(self, pairs):
        return worst_pairs(*pairs, self.worst, self.prob.M, self.prob.N)

    def _arcs(self):
        arcs = self.prob.arcs
        return arcs.row_ptr, arcs.col, arcs.cost, self.lookup


def _pass(row_blocks, X, Y, squared, u, v, arcs, cmin, margin, worst):
    """:func:`blocks.violations` on every ``(start, lo)`` of ``row_blocks`` (rows of ``X`` and ``u``, columns of
    ``Y`` and ``v``), screening at ``u + max(margin, 0)`` (a negative margin, a tolerance, returns fewer pairs but
    computes as many: ``cmin`` needs them); ``arcs``: ``(row_ptr, col, cost, lookup)``, or None where the rows or
    columns are a subset (no lookup); ``worst``: 0 (every pair below the margin), or only those among the ``worst``
    smallest reduced costs of their row or of their column. Returns the pairs (row-major order) and the count of
    pairs computed."""
    screen = max(margin, 0.0)
    slack = 8 * 2.0**-24 * float(np.abs(u).max() + np.abs(v).max() + screen + 1.0)
    u32, v32 = (u + slack + screen).astype(np.float32), v.astype(np.float32)
    if arcs is None:
        arcs = (np.zeros(len(u) + 1, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0), False)
    col_rc, col_row = np.full((len(v), worst), np.inf), np.empty((len(v), worst), dtype=np.int64)
    found = [blocks.violations(lo, u32, v32, s, X, Y, squared, u, v, *arcs, cmin, margin, (col_rc, col_row))
             for s, lo in row_blocks]
    checked = sum(f[4] for f in found)
    if worst:  # the columns' worst pairs, their costs computed again (the same bits)
        j, t = (np.ascontiguousarray(a) for a in np.nonzero(col_rc < np.inf))  # views of one array: strided
        found.append((col_row[j, t], j, ssp.pair_costs(X, Y, col_row[j, t], j, squared), col_rc[j, t]))
    rows, cols, cost, rc = (np.concatenate([f[k] for f in found]) for k in range(4))
    if worst:  # a pair among the worst of both its row and its column came twice
        first = np.unique(rows * len(v) + cols, return_index=True)[1]
        rows, cols, cost, rc = rows[first], cols[first], cost[first], rc[first]
    return rows, cols, cost, rc, checked


def _violating(rows, cols, cost, rc, u, v, tolerance):
    """The pairs with ``rc < -tolerance - 1e-12 (|u_i| + |v_j| + c_ij)`` (a pass's violations)."""
    bad = rc < -tolerance - 1e-12 * (np.abs(u[rows]) + np.abs(v[cols]) + cost + 1e-300)
    return rows[bad], cols[bad], cost[bad], rc[bad]


def worst_pairs(rows, cols, cost, rc, k, M, N):
    """The pairs among ``rows (E,)``, ``cols (E,)`` (rows below ``M``, columns below ``N``) that are among the
    ``k`` most negative reduced costs ``rc`` of their column or of their row: ``(rows, cols, cost, rc)``, in their
    order."""
    keep = np.union1d(blocks.smallest_per_column(cols, rc, N, k), blocks.smallest_per_column(rows, rc, M, k))
    return rows[keep], cols[keep], cost[keep], rc[keep]
