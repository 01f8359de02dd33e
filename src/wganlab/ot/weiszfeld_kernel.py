"""Numba kernel: the terms of the Vardi-Zhang (Weiszfeld) step on the CPU, in one pass over the edges.

Same quantities as :func:`wganlab.ot.weiszfeld.vz_terms` (which runs them with torch on any device), without
the per-edge difference vectors in memory: for edges ``e = (r_e, c_e, w_e)`` between centroids ``x (k, d)``
and points ``Y (n, d)``, ``d_e = ||Y[c_e] - x[r_e]||``; an edge with ``d_e <= rtol (||Y[c_e]|| +
||x[r_e]||)`` counts as coinciding.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, fastmath=True)
def vz_terms(x, Y, ynorm, rows, cols, w, dist, given, rtol, far_ratio):
    """``(S, R, eta, f, dist, far)``: ``S_r = sum w_e / d_e`` and ``R_r = sum w_e (Y[c_e] - x_r) / d_e`` over the
    non-coinciding edges of centroid ``r``, ``eta_r`` = the weight of its coinciding edges, ``f_r = sum w_e
    d_e``, ``dist (E,)`` the edge lengths (all float64): read from ``dist`` when ``given``, else computed
    into it, and ``far_r``: ``||x_r|| > far_ratio ||Y[c_e]||`` for all its edges, where ``R_r`` is left as
    ``P_r = sum (w_e / d_e) Y[c_e]`` (the step lands on ``P_r / S_r``). ``R_r`` is summed as ``P_r - S_r x_r``
    (the pass reads no centroid row when the lengths are given: 36 -> 20 ms at 64 x 10,000 of d = 4,096); a
    centroid with coinciding edges, whose ``||R_r||`` the Vardi-Zhang test compares with ``eta_r``, gets it
    summed centred again (no cancellation)."""
    k, d = x.shape
    S, eta, f, ymax = np.zeros(k), np.zeros(k), np.zeros(k), np.zeros(k)
    R = np.zeros((k, d))
    xnorm = np.empty(k)
    for r in range(k):
        xnorm[r] = np.sqrt(np.sum(x[r] * x[r]))
    for e in range(len(rows)):
        r, c = rows[e], cols[e]
        yc = Y[c]
        if given:
            de = dist[e]
        else:
            xr = x[r]
            s = 0.0
            for t in range(d):
                z = yc[t] - xr[t]
                s += z * z
            de = np.sqrt(s)
            dist[e] = de
        f[r] += w[e] * de
        if de <= rtol * (ynorm[c] + xnorm[r]):
            eta[r] += w[e]
        else:
            inv = w[e] / de
            S[r] += inv
            ymax[r] = max(ymax[r], ynorm[c])
            Rr = R[r]
            for t in range(d):
                Rr[t] += yc[t] * inv
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
            inv = w[e] / dist[e]
            Rr, xr, yc = R[r], x[r], Y[c]
            for t in range(d):
                Rr[t] += (yc[t] - xr[t]) * inv
    return S, R, eta, f, dist, far


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
