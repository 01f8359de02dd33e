"""Optimal transport: exact (certified), 1-D and sliced, patch distances, Sinkhorn, medians.

Nothing here knows about GANs. Point sets are ``(n, ...)`` arrays or tensors; images are
``N x C x H x W`` and are flattened where a metric works on vectors.
"""

from wganlab.ot.costs import COSTS, cost_matrix, get_cost
from wganlab.ot.exact import NotOptimalError, solve_exact, transport, wasserstein
from wganlab.ot.result import OTResult

__all__ = [
    "COSTS",
    "NotOptimalError",
    "OTResult",
    "cost_matrix",
    "get_cost",
    "solve_exact",
    "transport",
    "wasserstein",
]
