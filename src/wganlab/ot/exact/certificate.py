"""The optimality certificate both exact solvers (dense and sparse) and the closed form on a line share.

A plan ``P`` with ``P 1 = a``, ``P^T 1 = b`` and potentials ``(u, v)`` with ``u_i + v_j <= C_ij`` for every
pair satisfy ``a.u + b.v <= OT <= <P, C>``: ``gap = <P, C> - (a.u + b.v) >= 0`` bounds how far the plan's
cost is above the optimum. Every tolerance here is relative (to the cost, or to the largest cost entry for
float64 rounding); with the rescaling of :mod:`wganlab.ot.scale`, ``W_p(s x, s y) = s W_p(x, y)`` holds
for the certified value at every scale ``s``.
"""

from __future__ import annotations

import numpy as np

from wganlab.errors import NotOptimalError
from wganlab.ot.result import OTResult

#: float64 rounding allowed in the gap and in the tight-arc tests, relative to the largest cost entry
ROUNDING = 1e-13


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
