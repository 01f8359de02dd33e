"""Optimal transport: exact (certified), 1-D and sliced, patch distances, Sinkhorn, medians.

Nothing here knows about GANs. Point sets are ``(n, ...)`` arrays or tensors; images are
``N x C x H x W`` and are flattened where a metric works on vectors.
"""

from wganlab.ot.costs import COSTS, cost_matrix, get_cost
from wganlab.ot.exact import NotOptimalError, prepare_points, solve_exact, transport, wasserstein
from wganlab.ot.medians import KMediansResult, geometric_kmedians, geometric_median
from wganlab.ot.otmeans import OTMeansResult, ot_means
from wganlab.ot.result import OTResult
from wganlab.ot.weiszfeld import weiszfeld_step

__all__ = [
    "COSTS",
    "KMediansResult",
    "NotOptimalError",
    "OTMeansResult",
    "OTResult",
    "cost_matrix",
    "geometric_kmedians",
    "geometric_median",
    "get_cost",
    "ot_means",
    "prepare_points",
    "solve_exact",
    "transport",
    "wasserstein",
    "weiszfeld_step",
]
