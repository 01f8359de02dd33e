"""Pricing passes of the sparse exact OT engine (:mod:`wganlab.ot.exact.sparse`): the pairs whose reduced cost
``c_ij - u_i - v_j`` is negative, among all ``M x N``, found on the float32 lower bounds of
:class:`wganlab.ot.exact.blocks.Distances` with an exact float64 check of the pairs they cannot settle.

Where the blocks are not cached (each pass recomputes them), a full pass screens with a margin ``delta``: every
pair it does not return has ``c_ij >= u0_i + v0_j + delta`` at its potentials ``u0``, ``v0``, and it keeps the
pairs it returns (reduced cost below ``delta``, exact costs). A later pass at ``u``, ``v`` then checks only those
kept pairs, the rows with ``u_i - u0_i > t`` and the columns with ``v_j - v0_j > delta - t`` (``t`` chosen to
check the fewest pairs): any other pair has ``c_ij - u_i - v_j >= delta - (u_i - u0_i) - (v_j - v0_j) >= 0``.
It finds the same violating pairs as a full pass, in the same order.

Where the bounds settle few pairs (degenerate data, e.g. W1 along a thin tube: nearly every pair within float32
rounding of tight) and the points have few coordinates, passes compute every pair's exact cost instead
(:func:`exact_pass`): the same pairs, costs and certificate.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from wganlab.ot.exact import arc_costs, blocks

#: the margin of a full pass, times the mean cost of the arcs
MARGIN = 0.01
#: a full pass keeps its pairs within the margin for later passes when there are at most this many per point
KEEP_PER_POINT = 64
#: a later pass checks rows and columns when that is fewer than this share of all pairs (else a full pass)
PARTIAL_MAX = 0.3
#: after a pass that computed the exact costs of more than this share of all pairs, on points of at most
#: ``arc_costs.ORDERED_MAX_DIM`` coordinates, every pass computes all of them (:func:`exact_pass`: about 1 ns a pair,
#: against 15 ns for a pair the float32 bound does not settle; a thin tube along a line, W1: 74 % of the pairs)
EXACT_SHARE = 0.1


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
        self.exact = None  # (X, Y^T) in float64 once the passes compute every pair's cost (:func:`exact_pass`)
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
        rows, cols, cost, rc, checked = _pass(self.exact or prob.dist.blocks(), prob.X, prob.Y, prob.squared, u, v,
                                              self._arcs(), cmin, delta if delta > 0 else -tolerance,
                                              0 if delta > 0 else self.worst)
        if delta > 0:
            self.kept = None
            if len(rows) <= KEEP_PER_POINT * (prob.M + prob.N):
                self.kept = (u.copy(), v.copy(), delta, rows, cols, cost)
        if self.exact is None and checked > EXACT_SHARE * prob.M * prob.N:
            self.compute_every_cost()  # the bounds settle few pairs (degenerate data)
        return (*self._worst(_violating(rows, cols, cost, rc, u, v, tolerance)), cmin, checked)

    def compute_every_cost(self) -> None:
        """Later passes compute every pair's exact cost (:func:`exact_pass`, without the bounds) where the points have
        at most ``arc_costs.ORDERED_MAX_DIM`` coordinates and the passes keep each row's and column's worst pairs."""
        prob = self.prob
        if prob.X.shape[1] <= arc_costs.ORDERED_MAX_DIM and self.worst:
            self.exact = (np.ascontiguousarray(prob.X, dtype=np.float64),
                          np.ascontiguousarray(prob.Y.T, dtype=np.float64))
            self.incremental, self.kept = False, None

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
    """:func:`violations` on every ``(start, lo)`` of ``row_blocks`` (rows of ``X`` and ``u``, columns of ``Y`` and
    ``v``), or :func:`exact_pass` where ``row_blocks`` is ``(X, Y^T)`` in float64, screening at ``u + max(margin,
    0)`` (a negative margin, a tolerance, returns fewer pairs but computes as many: ``cmin`` needs them); ``arcs``:
    ``(row_ptr, col, cost, lookup)``, or None where the rows or columns are a subset (no lookup); ``worst``: 0
    (every pair below the margin), or only those among the ``worst`` smallest reduced costs of their row or of their
    column. Returns the pairs (row-major order) and the count of pairs computed."""
    col_rc, col_row = np.full((len(v), worst), np.inf), np.empty((len(v), worst), dtype=np.int64)
    if isinstance(row_blocks, tuple):  # (X, Y^T) in float64: every pair's exact cost
        found = [exact_pass(*row_blocks, squared, u, v, cmin, margin, (col_rc, col_row))]
    else:
        screen = max(margin, 0.0)
        slack = 8 * 2.0**-24 * float(np.abs(u).max() + np.abs(v).max() + screen + 1.0)
        u32, v32 = (u + slack + screen).astype(np.float32), v.astype(np.float32)
        if arcs is None:
            arcs = (np.zeros(len(u) + 1, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0), False)
        found = [violations(lo, u32, v32, s, X, Y, squared, u, v, *arcs, cmin, margin, (col_rc, col_row))
                 for s, lo in row_blocks]
    checked = sum(f[4] for f in found)
    if worst:  # the columns' worst pairs, their costs computed again (the same bits)
        j, t = (np.ascontiguousarray(a) for a in np.nonzero(col_rc < np.inf))  # views of one array: strided
        found.append((col_row[j, t], j, arc_costs.pair_costs(X, Y, col_row[j, t], j, squared), col_rc[j, t]))
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


@nb.njit(cache=True)
def exact_pass(X, Yt, squared, u, v, cmin, margin, col_worst):
    """A pricing pass on every pair's float64 cost ``c_ij`` (``X (M, d)``, ``Yt (d, N)`` the columns' coordinates
    transposed, float64; at most ``arc_costs.ORDERED_MAX_DIM`` coordinates: :func:`arc_costs.pair_cost`'s bits, summed
    for a whole row at once), for a ``margin <= 0``. The squared distance ``s_ij`` settles every pair with ``s_ij >=
    lim_ij^2 (1 + 1e-12)``, ``lim_ij = u_i + v_j + 1e-12 (|u_i| + |v_j|)`` (then ``c_ij - u_i >= v_j`` despite
    rounding); in a chunk of 256 columns with another pair every ``cmin_j`` is lowered to ``c_ij - u_i``. Returns
    ``(rows, cols, costs, reduced costs, checked)`` as :func:`violations` with ``k >= 1`` (its ``col_worst``): the
    pairs with ``c_ij - u_i - v_j < margin - 1e-12 (|u_i| + |v_j| + c_ij)`` among the ``k`` smallest of their row
    or column."""
    M = X.shape[0]
    d, N = Yt.shape
    col_rc, col_row = col_worst
    k = col_rc.shape[1]
    row_rc, row_col = np.empty(k), np.empty(k, dtype=np.int64)
    rows, cols = np.empty(M * k, dtype=np.int64), np.empty(M * k, dtype=np.int64)
    costs, rcs = np.empty(M * k), np.empty(M * k)
    s, cost_at, col_top = np.empty(N), np.empty(N), col_rc[:, k - 1].copy()
    hits = np.empty(blocks.SCREEN_CHUNK, dtype=np.int64)
    n = 0
    for r in range(M):
        ur = u[r]
        tol = margin - 1e-12 * (abs(ur) + 1e-300)
        row_rc[:] = np.inf
        s[:] = 0.0
        for q in range(d):  # the row's squared distances (a whole row at a time: 256 columns at a time was slower)
            x, y = np.float64(X[r, q]), Yt[q]
            for j in range(N):
                t = x - y[j]
                s[j] += t * t
        for j0 in range(0, N, blocks.SCREEN_CHUNK):  # 256 columns at a time, as slices (numba vectorises those)
            j1 = min(j0 + blocks.SCREEN_CHUNK, N)
            if not _below_limit(s[j0:j1], v[j0:j1], ur, squared):
                continue
            row_top = row_rc[k - 1]
            keep = _chunk_costs(s[j0:j1], cmin[j0:j1], v[j0:j1], col_top[j0:j1], ur, tol, row_top, squared)
            c = s  # the chunk's squared distances are now its costs
            m = 0
            for j in range(j0, j1 if keep else j0):  # branch-free: the violations below their row's or column's k-th
                rc = c[j] - ur - v[j]
                hits[m] = j
                m += (rc + 1e-12 * (abs(v[j]) + c[j]) < tol) & ((rc < row_top) | (rc < col_top[j]))
            for t in range(m):
                j = hits[t]
                rc = c[j] - ur - v[j]
                if rc < row_rc[k - 1] or rc < col_top[j]:
                    keep_worst(r, j, c[j], rc, row_rc, row_col, cost_at, col_rc, col_row)
                    col_top[j] = col_rc[j, k - 1]
        n = row_worst(r, row_rc, row_col, cost_at, rows, cols, costs, rcs, n)
    return rows[:n], cols[:n], costs[:n], rcs[:n], M * N


@nb.njit(cache=True)
def _below_limit(s, v, ur, squared):
    """Whether some squared distance ``s_j < lim_j^2 (1 + 1e-12)``, ``lim_j = max(u_r + v_j + 1e-12 (|u_r| + |v_j|),
    0)`` (``lim_j`` itself for ``squared`` costs): a pair the limit does not settle (:func:`exact_pass`)."""
    hit = False
    for j in range(len(s)):
        lim = max(ur + v[j] + 1e-12 * (abs(ur) + abs(v[j])), 0.0)
        hit |= s[j] < (lim if squared else lim * lim) * (1 + 1e-12)
    return hit


@nb.njit(cache=True)
def _chunk_costs(s, cmin, v, col_top, ur, tol, row_top, squared):
    """The squared distances ``s`` replaced in place by the costs (``sqrt(s)``, or ``s`` for ``squared``), ``cmin_j``
    lowered to ``c_j - u_r``, and whether a pair violates by more than ``-tol`` below its row's (``row_top``) or its
    column's (``col_top``) k-th so far."""
    keep = False
    for j in range(len(s)):
        c = s[j] if squared else np.sqrt(s[j])
        s[j] = c
        w = c - ur
        cmin[j] = min(cmin[j], w)
        rc = w - v[j]
        keep |= (rc + 1e-12 * (abs(v[j]) + c) < tol) & ((rc < row_top) | (rc < col_top[j]))
    return keep


@nb.njit(cache=True)
def violations(lo, u32, v32, row0, X, Y, squared, u, v, row_ptr, arc_col, arc_cost, lookup, cmin, margin, col_worst):
    """One block of a pricing pass, rows ``row0:row0+B`` of the float32 lower bounds ``lo (B, N)``.

    Every pair the bound cannot settle (``lo_ij - v32_j < u32_i``; chunks of 256 columns are skipped on their
    vectorised minimum, the others scanned without branches) gets its exact float64 cost ``c_ij`` (looked up
    among the arcs ``row_ptr`` / ``arc_col`` / ``arc_cost`` when ``lookup`` and present, else computed from
    ``X``, ``Y``), which raises ``lo_ij`` to ``c_ij`` rounded down to float32 and lowers ``cmin_j`` to
    ``c_ij - u_i``. Returns ``(rows, cols, costs,
    reduced costs, checked)``: the pairs with ``c_ij - u_i - v_j < margin - 1e-12 (|u_i| + |v_j| + c_ij)`` (for
    ``margin <= 0``: the violations beyond ``-margin``; ``u32`` then screens at ``u + max(margin, 0)``) and the
    number of pairs computed. ``col_worst``: ``(rc, rows)``, each ``(N, k)``; with ``k > 0`` only the ``k``
    smallest reduced costs of each row return, and each column's ``k`` smallest so far are merged into
    ``col_worst`` (ascending, ``inf`` where empty; kept across blocks): degenerate data have tens of millions."""
    B, N = lo.shape
    col_rc, col_row = col_worst
    k = col_rc.shape[1]
    row_rc, row_col = np.empty(k), np.empty(k, dtype=np.int64)
    cost_at = np.empty(N if k > 0 else 0)  # the row's costs by column
    n = checked = 0
    cap = B + N
    rows, cols = np.empty(cap, dtype=np.int64), np.empty(cap, dtype=np.int64)
    costs, rcs = np.empty(cap), np.empty(cap)
    hits = np.empty(N, dtype=np.int64)
    full = N - N % blocks.SCREEN_CHUNK
    for i in range(B):
        r = row0 + i
        li = lo[i]
        ur32, ur = u32[r], u[r]
        a0, a1 = row_ptr[r], row_ptr[r + 1]
        m = 0
        for j0 in range(0, full, blocks.SCREEN_CHUNK):
            if _any_diff_below(li[j0:], v32[j0:], ur32):
                m = _hits(li, v32, ur32, j0, j0 + blocks.SCREEN_CHUNK, hits, m)
        m = _hits(li, v32, ur32, full, N, hits, m)  # the last columns, fewer than a chunk
        checked += m
        if n + m > cap:  # room for every hit of the row (growing inside the loop below slows it 3x)
            cap = max(2 * cap, n + m)
            rows, cols = _grown(rows, n, cap), _grown(cols, n, cap)
            costs, rcs = _grown(costs, n, cap), _grown(rcs, n, cap)
        row_rc[:] = np.inf
        for t in range(m):
            j = hits[t]
            c = -1.0
            if lookup:
                q = a0 + np.searchsorted(arc_col[a0:a1], j)
                if q < a1 and arc_col[q] == j:
                    c = arc_cost[q]
            if c < 0.0:
                c = arc_costs.pair_cost(X, Y, r, j, squared)
            f = blocks.round_down_one32(c)
            if f > li[j]:
                li[j] = f
            w = c - ur
            if w < cmin[j]:
                cmin[j] = w
            rc = w - v[j]
            if rc < margin - 1e-12 * (abs(ur) + abs(v[j]) + c + 1e-300):
                if k == 0:
                    rows[n], cols[n], costs[n], rcs[n] = r, j, c, rc
                    n += 1
                else:
                    keep_worst(r, j, c, rc, row_rc, row_col, cost_at, col_rc, col_row)
        n = row_worst(r, row_rc, row_col, cost_at, rows, cols, costs, rcs, n)
    return rows[:n], cols[:n], costs[:n], rcs[:n], checked


@nb.njit(cache=True)
def keep_worst(r, j, c, rc, row_rc, row_col, cost_at, col_rc, col_row):
    """Keep the pair ``(r, j)`` (cost ``c``, reduced cost ``rc``) if among the ``k`` smallest reduced costs so far of
    its row (``row_rc``, ``row_col``; ``cost_at`` by column) or of its column (``col_rc[j]``, ``col_row[j]``)."""
    k = len(row_rc)
    if rc < row_rc[k - 1]:
        blocks.insert_sorted(row_rc, row_col, k - 1, rc, j)
        cost_at[j] = c
    if rc < col_rc[j, k - 1]:
        blocks.insert_sorted(col_rc[j], col_row[j], k - 1, rc, r)


@nb.njit(cache=True)
def row_worst(r, row_rc, row_col, cost_at, rows, cols, costs, rcs, n):
    """Append row ``r``'s kept pairs (:func:`keep_worst`) at ``n`` of the outputs; returns the new count."""
    for t in range(len(row_rc)):
        if row_rc[t] < np.inf:
            rows[n], cols[n], costs[n], rcs[n] = r, row_col[t], cost_at[row_col[t]], row_rc[t]
            n += 1
    return n


@nb.njit(cache=True)
def _grown(a, n, cap):
    out = np.empty(cap, dtype=a.dtype)
    out[:n] = a[:n]
    return out


@nb.njit(cache=True)
def _hits(li, v32, ur32, j0, j1, hits, m):
    """Append to ``hits[m:]`` the columns ``j`` in ``j0:j1`` with ``li[j] - v32[j] < ur32`` (branch-free: every
    column written, the hits kept); returns the new count."""
    for j in range(j0, j1):
        hits[m] = j
        m += li[j] - v32[j] < ur32
    return m


@nb.njit(cache=True)
def _any_diff_below(a, b, s):
    """Whether ``a[t] - b[t] < s`` for some ``t < SCREEN_CHUNK`` (slices from the chunk's start: numba vectorises
    and unrolls it, as :func:`wganlab.ot.exact.blocks.keep_smallest`'s screen)."""
    hit = False
    for t in range(blocks.SCREEN_CHUNK):
        hit |= a[t] - b[t] < s
    return hit
