"""Numba kernels: the float64 cost of point pairs, the sparse engine's arcs (``||x_i - y_j||`` or its square;
float32 points too, their differences exact in float64)."""

from __future__ import annotations

import numba as nb
import numpy as np

from wganlab.ot.exact.prefetch import prefetch_row

#: :func:`pair_costs` asks for the points of the pair AHEAD pairs on (its column's point; its row's where ``X`` holds
#: over PREFETCH_X_BYTES, beyond a core's L2 cache), where a point takes at most PREFETCH_ROW_BYTES (one page: the
#: CPU's own prefetcher follows a longer row by itself). 20,000 pairs of Fashion-MNIST, two a column, from memory:
#: 4.55 ms without, 3.6, 3.4, 3.8 and 3.7 ms with AHEAD = 1, 2, 4 and 8; at 64x64 (16 KB points) slower with it,
#: 23.5 -> 25.4 ms
AHEAD, PREFETCH_X_BYTES, PREFETCH_ROW_BYTES = 2, 1 << 21, 4096
#: up to this many coordinates a squared distance is summed coordinate by coordinate, in order and without fused
#: multiply-adds: the same bits as a pricing pass that sums many pairs at once (:func:`pricing.exact_pass`)
ORDERED_MAX_DIM = 8


@nb.njit(cache=True)
def pair_cost(X, Y, i, j, squared):
    """``||X[i] - Y[j]||`` (squared if ``squared``) in float64 (also for float32 points: their differences are
    exact in float64); up to ORDERED_MAX_DIM coordinates summed in order, above in any order (vectorised)."""
    s = 0.0
    if X.shape[1] <= ORDERED_MAX_DIM:
        for k in range(X.shape[1]):
            t = np.float64(X[i, k]) - np.float64(Y[j, k])
            s += t * t
    else:
        s = _squared_distance(X, Y, i, j)
    return s if squared else np.sqrt(s)


@nb.njit(cache=True, fastmath=True)
def _squared_distance(X, Y, i, j):
    s = 0.0
    for k in range(X.shape[1]):
        t = np.float64(X[i, k]) - np.float64(Y[j, k])
        s += t * t
    return s


@nb.njit(cache=True, fastmath=True)
def _squared_distance_pair(X, Y, i, h, j):
    """``(||X[i] - Y[j]||^2, ||X[h] - Y[j]||^2)`` in one pass over ``Y[j]`` (the bits of two
    :func:`_squared_distance` calls, as a test checks)."""
    s, t = 0.0, 0.0
    for k in range(X.shape[1]):
        y = np.float64(Y[j, k])
        a, b = np.float64(X[i, k]) - y, np.float64(X[h, k]) - y
        s += a * a
        t += b * b
    return s, t


@nb.njit(cache=True)
def pair_costs(X, Y, rows, cols, squared):
    """:func:`pair_cost` of every pair ``(rows[e], cols[e])``; above ORDERED_MAX_DIM coordinates, two consecutive
    pairs of one column in one pass over its point (a column's candidates come together: 27 -> 23 ms for
    20,000 pairs at d = 4,096), the points of the pair AHEAD pairs on prefetched (PREFETCH_ROW_BYTES)."""
    n = len(rows)
    out = np.empty(n)
    ahead_y = ORDERED_MAX_DIM < Y.shape[1] and Y.shape[1] * Y.itemsize <= PREFETCH_ROW_BYTES
    ahead_x = ahead_y and X.size * X.itemsize > PREFETCH_X_BYTES and X.shape[1] * X.itemsize <= PREFETCH_ROW_BYTES
    e = 0
    while e < n:
        if ahead_y:
            a = min(e + AHEAD, n - 1)
            prefetch_row(Y, cols[a])
            if ahead_x:
                prefetch_row(X, rows[a])
        if X.shape[1] > ORDERED_MAX_DIM and e + 1 < n and cols[e + 1] == cols[e]:
            s, t = _squared_distance_pair(X, Y, rows[e], rows[e + 1], cols[e])
            out[e], out[e + 1] = (s, t) if squared else (np.sqrt(s), np.sqrt(t))
            e += 2
        else:
            out[e] = pair_cost(X, Y, rows[e], cols[e], squared)
            e += 1
    return out
