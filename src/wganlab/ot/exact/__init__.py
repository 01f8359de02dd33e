"""Exact optimal transport between weighted point sets, certified optimal.

``OT_c(a, b) = min_{P >= 0, P 1 = a, P^T 1 = b} sum_ij P_ij C_ij`` solved as a linear program.
Every solution is checked before it is returned: the plan's marginals, and the duality gap
``cost - (a.u + b.v)`` for potentials made feasible by ``v_j = min_i (C_ij - u_i)``. A solver that
stopped early (POT's default ``numItermax`` does from n ~ 2,000, silently returning a value ~0.2 % too
high) is rerun with a larger budget; a solution that still fails the check raises
:class:`NotOptimalError` rather than returning a wrong number.

Engines (``engine=``): ``"pot"`` builds the dense float64 cost matrix and runs POT's network simplex;
``"sparse"`` (:mod:`wganlab.ot.exact.sparse`, Euclidean and squared Euclidean costs, needs numba) never builds
it: auction prices (on data of low intrinsic dimension, prices from an exact solve of a coarsened problem),
an arc set of each point's cheapest partners, successive shortest paths (for W1 where nearly every pair along the
data is nearly tight, the auction's assignment at a tiny epsilon instead, certified to 1e-9 of the cost), and
pricing of every pair until none has a negative reduced cost, with the same certificate. ``"auto"`` picks
``"sparse"`` for those costs from :data:`AUTO_MIN_PAIRS` pairs between sets of similar sizes
(:data:`AUTO_MIN_PAIRS_SMALL_SIDE` when one side is small and the other far larger; in at most ``AUTO_LOW_DIM``
coordinates from ``AUTO_LOW_DIM_MAX_PAIRS``) when numba is
importable, else ``"pot"``; it falls back to ``"pot"`` when the sparse arc set outgrows
:data:`AUTO_ARCS_PER_POINT` arcs per point on a problem of at most ``AUTO_DENSE_MAX_PAIRS`` pairs whose dense
solve takes at most half the memory available (``api.dense_fallback_fits``); larger problems, or those POT would
not fit, grow to ``AUTO_ARCS_PER_POINT_LARGE`` arcs per point (point sets whose nearest neighbours say little about
the plan) and then go to ``"pot"`` where it fits, else stop with :class:`NotOptimalError` rather than hang; for
sets on one line (1-D data included) it uses the closed form.
Every tolerance is relative and sets far from unit scale are rescaled by a power of two, so
``W_p(s x, s y) = s W_p(x, y)`` at any representable scale.

Layout: :mod:`~wganlab.ot.exact.api` (the entry points and the engine choice), :mod:`~wganlab.ot.exact.dense`
(network simplex on a cost matrix), :mod:`~wganlab.ot.exact.sparse` (the sparse engine) with its distance blocks
:mod:`~wganlab.ot.exact.blocks`, its numba kernels :mod:`~wganlab.ot.exact.ssp`, :mod:`~wganlab.ot.exact.arc_costs`
and :mod:`~wganlab.ot.exact.auction` and its multiscale prices :mod:`~wganlab.ot.exact.coarse` (for data of low
intrinsic dimension), :mod:`~wganlab.ot.exact.line` (the closed form on a line) and
:mod:`~wganlab.ot.exact.certificate` (the duality-gap check both solvers use).
"""

from wganlab.errors import NotOptimalError
from wganlab.ot.exact.api import (
                                  AUTO_MIN_PAIRS,
                                  AUTO_MIN_PAIRS_SMALL_SIDE,
                                  ENGINES,
                                  prepare_points,
                                  transport,
                                  wasserstein,
)
from wganlab.ot.exact.dense import GAP_TOL, solve_exact
from wganlab.ot.result import OTResult

__all__ = ["AUTO_MIN_PAIRS", "AUTO_MIN_PAIRS_SMALL_SIDE", "ENGINES", "GAP_TOL", "NotOptimalError", "OTResult",
           "prepare_points", "solve_exact", "transport", "wasserstein"]
