"""Exact OT for a dense cost matrix: POT's network simplex with the certificate, the trivial one-point problem,
and the power-of-two rescaling of the costs that keeps both right at any scale."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import ot as pot
import torch

from wganlab.checks import as_tensor, as_weights
from wganlab.errors import InputError, NotOptimalError
from wganlab.ot.exact.certificate import check_certificate, dual_gap
from wganlab.ot.result import OTResult
from wganlab.ot.scale import exponent, needs_rescaling, times_pow2

#: relative duality gap above which a solution is rejected
GAP_TOL = 1e-7
_MAX_ITER_CAP = 10**10


def solve_exact(C, a=None, b=None, *, plan: bool = False, tol: float = GAP_TOL) -> OTResult:
    """Exact OT for a cost matrix ``C (n, m)`` and weights ``a (n,)``, ``b (m,)`` (uniform if None).

    Network simplex (POT ``emd``) in float64 with an iteration budget that grows until the solver
    reports optimality, then the duality-gap certificate (relative gap <= ``tol``). Negative costs are
    allowed: the simplex solves ``C - min C`` (the same plans, the weights summing to 1) and the value and the
    first potential are shifted back by ``min C``.

    >>> round(solve_exact([[0.0, 1.0], [1.0, 0.0]]).value, 12)
    0.0
    """
    C = as_tensor(C, "cost matrix", torch.float64)
    if C.ndim != 2:
        raise InputError(f"cost matrix must be 2-D, got shape {tuple(C.shape)}")
    C = np.ascontiguousarray(C.detach().cpu().numpy())
    n, m = C.shape
    a = as_weights(a, n, "weights of x")
    b = as_weights(b, m, "weights of y")
    e = exponent(float(np.abs(C).max()))
    e = e if needs_rescaling(e) else 0
    if e:  # costs near 1 for the simplex's tolerances; exact (a power of two), undone on the result
        C = times_pow2(C, -e)
    res = _trivial(C, a, b) if min(n, m) == 1 else _shifted_simplex(C, a, b, tol)
    return rescaled(res if plan else dataclasses.replace(res, plan=None), e)


def _shifted_simplex(C: np.ndarray, a: np.ndarray, b: np.ndarray, tol: float) -> OTResult:
    """:func:`_network_simplex` on ``C - lo`` with ``lo = min(min C, 0)`` (POT's simplex wants costs >= 0; every
    plan's cost moves by ``lo``), the value and ``u`` moved back by ``lo``."""
    lo = min(float(C.min()), 0.0)
    res = _network_simplex(C - lo, a, b, tol)
    if lo == 0:
        return res
    u, v = res.potentials
    return dataclasses.replace(res, value=res.value + lo, cost=res.cost + lo, potentials=(u + lo, v),
                               info={**res.info, "cost_shift": lo})


def _trivial(C: np.ndarray, a: np.ndarray, b: np.ndarray) -> OTResult:
    """One point on one side: the only plan is ``a b^T``; potentials ``u = 0, v = C`` (or transposed)."""
    P = np.outer(a, b)
    cost = float((P * C).sum())
    pots = (np.zeros(1), C[0].copy()) if len(a) == 1 else (C[:, 0].copy(), np.zeros(1))
    return OTResult(value=cost, cost=cost, gap=0.0, solver="trivial", plan=P, potentials=pots,
                    info={"n": len(a), "m": len(b)})


def _network_simplex(C: np.ndarray, a: np.ndarray, b: np.ndarray, tol: float) -> OTResult:
    """POT's network simplex with a growing iteration budget, then the certificate."""
    n, m = C.shape
    max_iter = max(1_000_000, 100 * (n + m))
    tries = 0
    while True:
        tries += 1
        with warnings.catch_warnings():  # an exhausted budget is handled here, not left as a warning
            warnings.filterwarnings("ignore", message="numItermax reached")
            P, log = pot.emd(a, b, C, numItermax=max_iter, log=True, center_dual=False)
        if log["result_code"] == 1:
            break
        if log["result_code"] != 3 or max_iter >= _MAX_ITER_CAP:  # 3 = iteration budget reached
            raise NotOptimalError(f"network simplex failed: {log.get('warning')}")
        max_iter *= 10
    cost = float((P * C).sum())
    v, gap = dual_gap(C, a, b, np.asarray(log["u"], dtype=np.float64), cost)
    res = OTResult(value=cost, cost=cost, gap=gap, solver="pot-network-simplex", plan=P,
                   potentials=(np.asarray(log["u"]), v), info={"n": n, "m": m, "tries": tries, "max_iter": max_iter})
    if (P < -1e-15).any():
        raise NotOptimalError(f"plan has negative entries (min {P.min():.3g})")
    check_certificate(res, P.sum(1), P.sum(0), a, b, tol, float(np.abs(C).max()))
    return res


def rescaled(res: OTResult | None, e: int) -> OTResult | None:
    """A result for costs ``2^e`` times those ``res`` was computed for (value, cost, gap, potentials and plan costs
    times ``2^e``; the plan is unchanged). Values beyond float64's range become ``inf`` (or 0)."""
    if res is None or e == 0:
        return res
    pots = None if res.potentials is None else tuple(times_pow2(np.asarray(p), e) for p in res.potentials)
    costs = res.plan_costs
    if costs is not None:
        costs = costs.copy()
        costs.data = times_pow2(costs.data, e)
    return dataclasses.replace(res, value=times_pow2(res.value, e), cost=times_pow2(res.cost, e),
                               gap=times_pow2(res.gap, e), potentials=pots, info={**res.info, "rescaled_exponent": e},
                               plan_costs=costs)
