"""The optimality certificate both exact solvers share, and the power-of-two rescaling that keeps it
meaningful at any scale of the data.

A plan ``P`` with ``P 1 = a``, ``P^T 1 = b`` and potentials ``(u, v)`` with ``u_i + v_j <= C_ij`` for every
pair satisfy ``a.u + b.v <= OT <= <P, C>``: ``gap = <P, C> - (a.u + b.v) >= 0`` bounds how far the plan's
cost is above the optimum. Every tolerance here is relative (to the cost, or to the largest cost entry for
float64 rounding), so ``W_p(s x, s y) = s W_p(x, y)`` holds for the certified value at every scale ``s``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from wganlab.errors import NotOptimalError
from wganlab.ot.result import OTResult

#: float64 rounding allowed in the gap and in the tight-arc tests, relative to the largest cost entry
ROUNDING = 1e-13
#: costs (or coordinate spreads) ``2^e`` with ``e`` in this range are solved as given; others are first
#: multiplied by a power of two (exact in floating point) to bring them near 1
UNSCALED_EXPONENTS = (-7, 16)


def dual_gap(C: np.ndarray, a: np.ndarray, b: np.ndarray, u: np.ndarray, cost: float):
    """Feasible potentials from ``u`` and the duality gap they certify, for a dense ``C (n, m)``.

    ``v_j = min_i (C_ij - u_i)`` makes ``(u, v)`` dual feasible, so ``a.u + b.v <= OT`` and
    ``gap = cost - (a.u + b.v) >= OT - OT = 0`` bounds how far ``cost`` is above the optimum.
    Returns ``(v, gap)``.
    """
    v = (C - u[:, None]).min(axis=0)
    return v, float(cost - (a @ u + b @ v))


def check_certificate(res: OTResult, row_sums, col_sums, a, b, tol: float, scale: float) -> None:
    """Marginals within 1e-9 and duality gap within ``tol * cost`` plus float64 rounding of ``scale`` (the
    largest cost entry; covers an optimum of 0); raises :class:`NotOptimalError`."""
    marg = max(np.abs(np.asarray(row_sums) - a).max(), np.abs(np.asarray(col_sums) - b).max())
    if not marg <= 1e-9:
        raise NotOptimalError(f"plan violates the marginals by {marg:.3g}")
    slack = ROUNDING * scale
    if not (-slack - 1e-9 * abs(res.cost) <= res.gap <= tol * abs(res.cost) + slack):
        raise NotOptimalError(f"duality gap {res.gap:.3g} (relative {res.gap_rel:.3g}) exceeds {tol:g}")


def exponent(size: float) -> int:
    """``e`` with ``size`` in ``[2^(e-1), 2^e)`` (0 for ``size == 0``)."""
    return math.frexp(size)[1] if size > 0 else 0


def needs_rescaling(e: int) -> bool:
    """Whether a problem whose costs or spread are about ``2^e`` is rescaled before it is solved."""
    return e != 0 and not UNSCALED_EXPONENTS[0] <= e <= UNSCALED_EXPONENTS[1]


def spread_exponent(*sets: torch.Tensor) -> int:
    """``e`` with the largest coordinate range ``max_k (max z_k - min z_k)`` over the union of the point
    sets ``(n, d)`` in about ``[2^(e-1), 2^e)`` (0 when every point is the same); computed without overflow."""
    hi = torch.stack([z.detach().amax(0).double().cpu() for z in sets]).amax(0)
    lo = torch.stack([z.detach().amin(0).double().cpu() for z in sets]).amin(0)
    half = float((0.5 * hi - 0.5 * lo).max())
    return exponent(half) + 1 if half > 0 else exponent(float((hi - lo).max()))


def times_pow2(z, e: float):
    """``z * 2^e`` for a tensor, array or float, in steps that stay inside float64's range (so ``2^e``
    itself may lie outside it); exact for an integer ``e`` while the result is a normal number. Results
    beyond the range become ``inf`` (or underflow towards 0), as a float64 product would."""
    while e:
        step = max(-1000, min(1000, e))
        with np.errstate(over="ignore", under="ignore"):
            z = z * 2.0**step
        e -= step
    return z
