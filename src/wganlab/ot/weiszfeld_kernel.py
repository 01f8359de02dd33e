"""Numba kernel: the terms of the Vardi-Zhang (Weiszfeld) step on the CPU, in one pass over the edges.

Same quantities as :func:`wganlab.ot.weiszfeld.vz_terms` (which runs them with torch on any device), without
the per-edge difference vectors in memory: for edges ``e = (r_e, c_e, w_e)`` between centroids ``x (k, d)``
and points ``Y (n, d)``, ``d_e = ||Y[c_e] - x[r_e]||``; an edge with ``d_e <= rtol (||Y[c_e]|| +
||x[r_e]||)`` counts as coinciding.
"""

from __future__ import annotations

import numba as nb
import numpy as np

#: edges of one centroid whose points are added to its ``R`` row in one pass (one read and write of the row per
#: group: 20 -> 13.5 ms per pass at 64 x 10,000 of d = 4,096; groups of 8 measured no faster)
GROUP = 4


@nb.njit(cache=True, fastmath=True)
def vz_terms(x, Y, ynorm, rows, cols, w, dist, given, rtol, far_ratio):
    """``(S, R, eta, f, dist, far)``: ``S_r = sum w_e / d_e`` and ``R_r = sum w_e (Y[c_e] - x_r) / d_e`` over the
    non-coinciding edges of centroid ``r``, ``eta_r`` = the weight of its coinciding edges, ``f_r = sum w_e
    d_e``, ``dist (E,)`` the edge lengths (all float64): read from ``dist`` when ``given``, else computed
    into it, and ``far_r``: ``||x_r|| > far_ratio ||Y[c_e]||`` for all its edges, where ``R_r`` is left as
    ``P_r = sum (w_e / d_e) Y[c_e]`` (the step lands on ``P_r / S_r``). ``R_r`` is summed as ``P_r - S_r x_r``
    (the pass reads no centroid row when the lengths are given: 36 -> 20 ms at 64 x 10,000 of d = 4,096), centroid
    by centroid, :data:`GROUP` points at a time; a centroid with coinciding edges, whose ``||R_r||`` the
    Vardi-Zhang test compares with ``eta_r``, gets it summed centred again (no cancellation)."""
    k, d = x.shape
    S, eta, f, ymax = np.zeros(k), np.zeros(k), np.zeros(k), np.zeros(k)
    R = np.zeros((k, d))
    xnorm = np.empty(k)
    for r in range(k):
        xnorm[r] = np.sqrt(np.sum(x[r] * x[r]))
    if not given:
        dist[:] = edge_lengths(x, Y, rows, cols)
    ptr, order = _by_row(rows, k)
    group, inv = np.empty(GROUP, dtype=np.int64), np.empty(GROUP)
    for r in range(k):
        m = 0
        for q in range(ptr[r], ptr[r + 1]):  # the edges of centroid r, in their given order
            e = order[q]
            c, de = cols[e], dist[e]
            f[r] += w[e] * de
            if de <= rtol * (ynorm[c] + xnorm[r]):
                eta[r] += w[e]
                continue
            group[m], inv[m] = c, w[e] / de
            S[r] += inv[m]
            ymax[r] = max(ymax[r], ynorm[c])
            m += 1
            if m == GROUP:
                _add_points(R[r], Y, group, inv, m)
                m = 0
        _add_points(R[r], Y, group, inv, m)
    far = (eta == 0) & (S > 0) & (xnorm > far_ratio * ymax)
    for r in range(k):
        Rr, xr = R[r], x[r]
        if eta[r] > 0:
            Rr[:] = 0.0
        elif not far[r]:
            for t in range(d):
                Rr[t] -= S[r] * xr[t]
    for e in range(len(rows)):
        r, c = rows[e], cols[e]
        if eta[r] > 0 and dist[e] > rtol * (ynorm[c] + xnorm[r]):
            scale = w[e] / dist[e]
            Rr, xr, yc = R[r], x[r], Y[c]
            for t in range(d):
                Rr[t] += (yc[t] - xr[t]) * scale
    return S, R, eta, f, dist, far


@nb.njit(cache=True)
def _by_row(rows, k):
    """``(ptr (k + 1,), order (E,))``: the edges of row ``r`` are ``order[ptr[r]:ptr[r + 1]]``, in their order."""
    ptr = np.zeros(k + 1, dtype=np.int64)
    for e in range(len(rows)):
        ptr[rows[e] + 1] += 1
    for r in range(k):
        ptr[r + 1] += ptr[r]
    order, fill = np.empty(len(rows), dtype=np.int64), ptr[:-1].copy()
    for e in range(len(rows)):
        order[fill[rows[e]]] = e
        fill[rows[e]] += 1
    return ptr, order


@nb.njit(cache=True, fastmath=True)
def _add_points(Rr, Y, group, inv, m):
    """``Rr += sum_g inv[g] Y[group[g]]`` over the first ``m`` of the group: one pass over ``Rr`` for a full group."""
    if m == GROUP:
        y0, y1, y2, y3 = Y[group[0]], Y[group[1]], Y[group[2]], Y[group[3]]
        a0, a1, a2, a3 = inv[0], inv[1], inv[2], inv[3]
        for t in range(len(Rr)):
            Rr[t] += (y0[t] * a0 + y1[t] * a1) + (y2[t] * a2 + y3[t] * a3)
        return
    for g in range(m):
        yc, a = Y[group[g]], inv[g]
        for t in range(len(Rr)):
            Rr[t] += yc[t] * a


@nb.njit(cache=True, fastmath=True)
def edge_lengths(x, Y, rows, cols):
    """``d_e = ||Y[c_e] - x[r_e]||`` (float64) for the edges ``(rows, cols)``, in one pass."""
    out = np.empty(len(rows))
    for e in range(len(rows)):
        xr, yc = x[rows[e]], Y[cols[e]]
        s = 0.0
        for t in range(len(xr)):
            z = yc[t] - xr[t]
            s += z * z
        out[e] = np.sqrt(s)
    return out
