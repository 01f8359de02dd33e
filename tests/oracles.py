"""Oracles shared by the exact-OT tests, independent of every engine under test."""

import numpy as np
from scipy.optimize import linprog


def lp_value(C, a, b):
    """OT by scipy's HiGHS LP: ``min <P, C>`` over ``P >= 0`` with marginals ``a`` and ``b``."""
    n, m = C.shape
    A_eq = np.vstack([np.kron(np.eye(n), np.ones(m)), np.kron(np.ones(n), np.eye(m))])
    res = linprog(C.ravel(), A_eq=A_eq, b_eq=np.concatenate([a, b]), bounds=(0, None), method="highs")
    assert res.status == 0
    return res.fun
