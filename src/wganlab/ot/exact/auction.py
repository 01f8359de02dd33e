"""Numba kernel: row prices for the exact solver by an epsilon-scaling auction.

Columns ``j`` (one unit of demand each) bid for rows ``i`` (``cap_i`` units each) over the arcs of a
column-major graph (``col_ptr (N+1)``, ``arc_row (E)``, ``cost (E)``; a dense ``M x N`` problem is the
graph with every arc). This is Bertsekas' auction with similar objects: each row holds ``cap_i`` slots in
a min-heap of prices; an unassigned column takes the cheapest slot of its best row ``i1 = argmin_i (c_ij
+ p_i)`` (``p_i`` the row's cheapest slot) and raises that slot to the price at which the column's best
other row would be as good, plus ``eps``, evicting the column that held it. Every phase ends with each
column within ``eps`` of its best row (``eps``-complementary slackness); ``eps`` then shrinks by
``factor``. The prices ``-p`` are a near-optimal start for the exact solver's row potentials, not a
certificate.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from wganlab.ot.exact.ssp import sift_down


@nb.njit(cache=True)
def auction_prices(col_ptr, arc_row, cost, cap, price, eps_start, eps_end, factor, max_bids):
    """Run the auction phases from ``eps_start`` down to ``eps_end`` (dividing by ``factor``), starting
    from (and updating in place) the row prices ``price (M,)``. Rows with ``cap_i = 0`` are not bid for
    (a column without another row raises by ``eps``, one without any row stays out). Stops early after
    ``max_bids`` bids in one phase (a sparse graph may hold no assignment for every column). Returns the
    number of bids."""
    N = len(col_ptr) - 1
    M = len(cap)
    start = np.zeros(M + 1, dtype=np.int64)
    for i in range(M):
        start[i + 1] = start[i] + cap[i]
    hp = np.empty(start[M])
    hj = np.empty(start[M], dtype=np.int64)
    top = np.empty(M)  # each row's cheapest slot (inf: no slots)
    stack = np.empty(N, dtype=np.int64)
    w = np.empty(max(1, np.max(col_ptr[1:] - col_ptr[:-1])) if N > 0 else 1)
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
        n_free = N
        phase_bids = 0
        while n_free > 0 and phase_bids < max_bids:
            n_free -= 1
            j = stack[n_free]
            e0, n_arcs = col_ptr[j], col_ptr[j + 1] - col_ptr[j]
            b1 = np.inf  # the best value c_ij + p_i, then the second best (over other rows)
            for q in range(n_arcs):
                w[q] = cost[e0 + q] + top[arc_row[e0 + q]]
                b1 = min(b1, w[q])
            if b1 == np.inf:
                continue
            q1 = 0
            while w[q1] != b1:
                q1 += 1
            w[q1] = np.inf
            b2 = np.inf
            for q in range(n_arcs):
                b2 = min(b2, w[q])
            if b2 == np.inf:
                b2 = b1
            i1 = arc_row[e0 + q1]
            s0 = start[i1]
            evicted = hj[s0]
            hp[s0] = top[i1] + b2 - b1 + eps
            hj[s0] = j
            sift_down(hp, hj, s0, start[i1 + 1] - s0, 0)
            top[i1] = hp[s0]
            phase_bids += 1
            if evicted >= 0:
                stack[n_free] = evicted
                n_free += 1
        bids += phase_bids
        for i in range(M):
            if cap[i] > 0:
                price[i] = top[i]
        if eps <= eps_end or phase_bids >= max_bids:
            return bids
        eps = max(eps / factor, eps_end)
