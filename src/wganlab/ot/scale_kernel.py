"""Numba kernel: each coordinate's largest and smallest value of a point set in one pass (torch's ``amax`` and
``amin`` read the set twice; the exact solver checks the spread of every set it is given)."""

from __future__ import annotations

import numba as nb


@nb.njit(cache=True)
def column_max_min(z):
    """``(hi (d,), lo (d,))`` of finite points ``z (n, d)`` (C-contiguous, ``n >= 1``), in ``z``'s dtype."""
    hi, lo = z[0].copy(), z[0].copy()
    for i in range(1, z.shape[0]):
        row = z[i]
        for j in range(z.shape[1]):  # max and min, not branches: vectorised (10,000 x 784 float32: 2.8 -> 1.1 ms)
            hi[j] = max(hi[j], row[j])
            lo[j] = min(lo[j], row[j])
    return hi, lo
