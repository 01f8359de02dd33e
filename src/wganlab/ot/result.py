"""The result object every exact OT call returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class OTResult:
    """An exact optimal-transport solution with its certificate.

    Attributes:
        value: the distance asked for: ``W_p = cost ** (1/p)`` for :func:`wasserstein`, the optimal
            transport cost ``OT_c`` itself for a general cost.
        cost: the primal optimal cost ``sum_ij plan_ij * C_ij``.
        plan: the ``(n, m)`` optimal plan (dense array, or ``scipy.sparse`` for large problems), when asked.
        potentials: dual potentials ``(u, v)`` with ``u_i + v_j <= C_ij`` for every pair (feasible).
        gap: ``cost - (a.u + b.v)``, the optimality certificate: 0 for an exact solution, small and
            positive from floating-point rounding. ``gap_rel`` is it divided by ``max(cost, tiny)``.
        solver: the engine that produced the plan; ``info`` holds its own facts (iterations, retries,
            sizes of candidate sets).
        plan_costs: ``C_ij`` of every stored entry of a sparse ``plan`` (a ``scipy.sparse`` array of the
            plan's structure), when the solver has them (the sparse engine's float64 costs); else None.
    """

    value: float
    cost: float
    gap: float
    solver: str
    plan: Any = None
    potentials: tuple[np.ndarray, np.ndarray] | None = None
    info: dict = field(default_factory=dict)
    plan_costs: Any = None

    @property
    def gap_rel(self) -> float:
        return self.gap / max(abs(self.cost), 1e-300)

    def __float__(self) -> float:
        return float(self.value)
