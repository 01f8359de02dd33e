"""Numba kernel: row prices for few rows and many columns by an epsilon-scaling auction.

Columns ``j`` (one unit of demand each) bid for rows ``i`` (``cap_i`` units each, ``sum cap = N``) on
costs ``Ct (N, M)`` (Bertsekas' auction with similar objects): each row holds ``cap_i`` slots in a
min-heap of prices; an unassigned column takes the cheapest slot of its best row ``i1 = argmin_i (c_ij +
p_i)`` (``p_i`` the row's cheapest slot) and raises that slot by its margin over the second best option
plus ``eps``, evicting the column that held it. Every phase ends with each column within ``eps`` of its
best row (``eps``-complementary slackness); ``eps`` then shrinks by ``factor``. The prices ``-p`` are a
near-optimal start for the exact solver's row potentials, not a certificate.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def _sift_down(hp, hj, s0, n, x):
    """Restore the min-heap ``hp[s0:s0+n]`` (with payload ``hj``) after its root changed."""
    while True:
        c = 2 * x + 1
        if c >= n:
            return
        if c + 1 < n and hp[s0 + c + 1] < hp[s0 + c]:
            c += 1
        if hp[s0 + x] <= hp[s0 + c]:
            return
        hp[s0 + x], hp[s0 + c] = hp[s0 + c], hp[s0 + x]
        hj[s0 + x], hj[s0 + c] = hj[s0 + c], hj[s0 + x]
        x = c


@nb.njit(cache=True, fastmath=True)
def _two_smallest(c, top, w):
    """``(b1, i1, b2)``: the smallest and second smallest of ``w = c + top`` (``w`` is scratch)."""
    M = len(c)
    for i in range(M):
        w[i] = c[i] + top[i]
    i1 = 0
    b1 = w[0]
    for i in range(1, M):
        if w[i] < b1:
            b1, i1 = w[i], i
    w[i1] = np.inf
    b2 = np.inf
    for i in range(M):
        b2 = min(b2, w[i])
    return b1, i1, b2


@nb.njit(cache=True)
def auction_prices(Ct, cap, price, eps_start, eps_end, factor):
    """Run the auction phases from ``eps_start`` down to ``eps_end`` (dividing by ``factor``), starting
    from (and updating in place) the row prices ``price (M,)`` (rows with ``cap_i = 0`` are skipped);
    returns the number of bids."""
    N, M = Ct.shape
    start = np.zeros(M + 1, dtype=np.int64)
    for i in range(M):
        start[i + 1] = start[i] + cap[i]
    hp = np.empty(start[M])
    hj = np.empty(start[M], dtype=np.int64)
    top = np.empty(M, dtype=Ct.dtype)  # each row's cheapest slot (inf: no slots)
    w = np.empty(M, dtype=Ct.dtype)
    stack = np.empty(N, dtype=np.int64)
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
        while n_free > 0:
            n_free -= 1
            j = stack[n_free]
            b1, i1, b2 = _two_smallest(Ct[j], top, w)
            s0 = start[i1]
            n = start[i1 + 1] - s0
            if b2 == np.inf:
                b2 = b1
            evicted = hj[s0]
            hp[s0] += b2 - b1 + eps
            hj[s0] = j
            _sift_down(hp, hj, s0, n, 0)
            top[i1] = hp[s0]
            bids += 1
            if evicted >= 0:
                stack[n_free] = evicted
                n_free += 1
        for i in range(M):
            if cap[i] > 0:
                price[i] = hp[start[i]]
        if eps <= eps_end:
            return bids
        eps = max(eps / factor, eps_end)
