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
def vz_terms(x, Y, ynorm, rows, cols, w, rtol):
    """``(S, R, eta, f, dist)``: ``S_r = sum w_e / d_e`` and ``R_r = sum w_e (Y[c_e] - x_r) / d_e`` over the
    non-coinciding edges of centroid ``r``, ``eta_r`` = the weight of its coinciding edges, ``f_r = sum w_e
    d_e``, and ``dist (E,)`` the edge lengths (all float64)."""
    k, d = x.shape
    S, eta, f = np.zeros(k), np.zeros(k), np.zeros(k)
    R = np.zeros((k, d))
    dist = np.empty(len(rows))
    xnorm = np.empty(k)
    for r in range(k):
        xnorm[r] = np.sqrt(np.sum(x[r] * x[r]))
    for e in range(len(rows)):
        r, c = rows[e], cols[e]
        s = 0.0
        for t in range(d):
            z = Y[c, t] - x[r, t]
            s += z * z
        de = np.sqrt(s)
        dist[e] = de
        f[r] += w[e] * de
        if de <= rtol * (ynorm[c] + xnorm[r]):
            eta[r] += w[e]
        else:
            inv = w[e] / de
            S[r] += inv
            for t in range(d):
                R[r, t] += (Y[c, t] - x[r, t]) * inv
    return S, R, eta, f, dist
