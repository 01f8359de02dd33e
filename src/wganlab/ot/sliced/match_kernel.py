"""Numba kernel: the 1-D matching of two equal-size uniform samples in one pass, from a packed sort
(:func:`wganlab.ot.sliced.kernels.equal_match`): the value ``sum_j |v_(j) - w_j|^p`` and the slopes put back
in the unsorted order, without the gather / abs / scatter passes of the numpy path."""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def match_sorted(vs, order, w, p):
    """Rows ``r`` of sorted values ``vs (k, n)`` (float64 holding float32 values), their original positions
    ``order (k, n)`` and sorted targets ``w (k, n)`` (float32): ``(total (k,) float64, slope (k, n) float32)``
    with ``d_j = vs[r, j] - w[r, j]`` in float32, ``total[r] = sum_j |d_j|^p`` and ``slope[r, order[r, j]] =
    p |d_j|^(p-1) sign(d_j)`` (0 at 0)."""
    k, n = vs.shape
    total = np.zeros(k)
    slope = np.empty((k, n), dtype=np.float32)
    for r in range(k):
        acc = 0.0
        for j in range(n):
            d = np.float32(vs[r, j]) - w[r, j]
            a = abs(d)
            if p == 1.0:
                acc += a
                s = np.float32(0.0) if d == 0 else (np.float32(1.0) if d > 0 else np.float32(-1.0))
            elif p == 2.0:
                acc += np.float64(d) * d
                s = np.float32(2.0) * d
            else:
                acc += np.float64(a) ** p
                s = np.float32(0.0) if d == 0 else np.float32(np.copysign(p * np.float64(a) ** (p - 1.0), d))
            slope[r, order[r, j]] = s
        total[r] = acc
    return total, slope
