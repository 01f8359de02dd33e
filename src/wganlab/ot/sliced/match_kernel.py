"""Numba kernel: the 1-D matching of two equal-size uniform samples in one pass, from a packed sort
(:func:`wganlab.ot.sliced.kernels.equal_match`): the value ``sum_j |v_(j) - w_j|^p`` and the slopes put back
in the unsorted order, without the gather / abs / scatter passes of the numpy path."""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def match_sorted(packed, low, w, p):
    """Rows ``r`` of the packed sort ``packed (k, n)`` (uint64 bits of float64 copies of float32 values, each
    holding its original position in the bits ``low``) and sorted targets ``w (k, n)`` (float32):
    ``(total (k,) float64, slope (k, n) float32)`` with ``d_j = v_(j) - w[r, j]`` in float32, ``total[r] =
    sum_j |d_j|^p`` and the slope ``p |d_j|^(p-1) sign(d_j)`` (0 at 0) at ``v_(j)``'s original position."""
    k, n = packed.shape
    total = np.zeros(k)
    slope = np.empty((k, n), dtype=np.float32)
    bits = np.empty(1, dtype=np.uint64)
    value = bits.view(np.float64)  # the position's bits cleared, read back as the float64 copy
    for r in range(k):
        acc = 0.0
        for j in range(n):
            b = packed[r, j]
            bits[0] = b & ~low
            d = np.float32(value[0]) - w[r, j]
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
            slope[r, b & low] = s
        total[r] = acc
    return total, slope


@nb.njit(cache=True)
def pack_positions(v, out):
    """``out (k, n)`` float64 := the float32 ``v (k, n)``, each copy holding its column in its low mantissa
    bits (zero in an exact float32 copy): one pass for :func:`wganlab.ot.sliced.kernels._packed_sort`."""
    bits = out.view(np.uint64)
    k, n = v.shape
    for r in range(k):
        for j in range(n):
            out[r, j] = v[r, j]
            bits[r, j] |= np.uint64(j)
