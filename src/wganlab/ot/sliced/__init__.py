"""Exact 1-D Wasserstein distances and sliced Wasserstein distances (SWD), in torch.

1-D, exact, via quantile functions (any sizes, weighted or uniform)::

    W_p(mu, nu)^p = integral_0^1 |F^-1(t) - G^-1(t)|^p dt

where ``F^-1``/``G^-1`` are the (left-continuous) quantile functions of the two empirical measures. They
are step functions, so the integral is a finite sum over the merged breakpoints of the two cumulative
weight vectors (Rabin et al. 2011; Peyré & Cuturi, *Computational Optimal Transport*, remark 2.30).
With uniform weights and ``n`` <= ``m`` points the breakpoints ``i/n`` and ``j/m`` are merged with
integer arithmetic: every ``y`` piece meets at most two ``x`` pieces, so a call costs one sort of each
side and O(n + m) work, with no tiling of the smaller set. For equal sizes this is the familiar
``mean_i |x_(i) - y_(i)|^p`` of the sorted values.

Sliced (Bonneel et al. 2015; Kolouri et al. 2018)::

    SW_p(x, y) = ( mean_{theta in Theta} W_p^p(theta . x, theta . y) )^(1/p)

over a finite set ``Theta`` of random unit directions (normalised Gaussians), i.e. the Monte-Carlo
estimate of the integral over the sphere. For ``p = 1`` it is the mean over projections of the 1-D W1,
which for equal sizes is the reference code's "mean absolute difference of sorted projections".
``SW_1 <= W_1`` holds for every set of directions (each 1-D projection is 1-Lipschitz).

Memory stays bounded: projections are processed in chunks of ``max_elements`` projected values
(:data:`MAX_ELEMENTS` by default); gradients are accumulated chunk by chunk (the autograd graph of one
chunk is freed before the next), so a 10,000-image target never materialises all its projections with
their autograd buffers. :class:`SortedProjections` projects and sorts a fixed target once.

Gradients: the result is differentiable with respect to the points of ``x`` and ``y`` (not the
weights). They are computed during the forward call (first order only: no double backward).

Layout: :mod:`~wganlab.ot.sliced.kernels` (sorting and the 1-D kernel), :mod:`~wganlab.ot.sliced.autograd`
(its backward), :mod:`~wganlab.ot.sliced.oned` (:func:`wasserstein_1d`), :mod:`~wganlab.ot.sliced.projections`
and :mod:`~wganlab.ot.sliced.driver` (:func:`sliced_wasserstein`, :class:`SortedProjections`, and the seams
:mod:`wganlab.ot.patches` builds on).
"""

from wganlab.ot.sliced.driver import (
                                      MAX_ELEMENTS,
                                      Side,
                                      SortedProjections,
                                      check_target_tensor,
                                      sliced_distance,
                                      sliced_wasserstein,
)
from wganlab.ot.sliced.oned import check_p, wasserstein_1d
from wganlab.ot.sliced.projections import MAX_PROJECTION_ELEMENTS, get_projections, random_projections

__all__ = ["MAX_ELEMENTS", "MAX_PROJECTION_ELEMENTS", "Side", "SortedProjections", "check_p", "check_target_tensor",
           "get_projections",
           "random_projections", "sliced_distance", "sliced_wasserstein", "wasserstein_1d"]
