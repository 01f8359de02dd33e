"""Power-of-two rescaling: problems whose costs or coordinates are far from 1 are solved on data multiplied by
``2^-e`` (exact in floating point while the numbers stay normal) and their results multiplied back, so every
solver's tolerances and float32 copies work at any representable scale (exact OT, Sinkhorn)."""

from __future__ import annotations

import math

import numpy as np
import torch

try:
    from wganlab.ot import scale_kernel
except ImportError:  # numba missing or broken: torch's two passes
    scale_kernel = None

#: costs (or coordinate spreads) ``2^e`` with ``e`` in this range are solved as given; others are first
#: multiplied by a power of two (exact in floating point) to bring them near 1
UNSCALED_EXPONENTS = (-7, 16)


def exponent(size: float) -> int:
    """``e`` with ``size`` in ``[2^(e-1), 2^e)`` (0 for ``size == 0``)."""
    return math.frexp(size)[1] if size > 0 else 0


def needs_rescaling(e: int) -> bool:
    """Whether a problem whose costs or spread are about ``2^e`` is rescaled before it is solved."""
    return e != 0 and not UNSCALED_EXPONENTS[0] <= e <= UNSCALED_EXPONENTS[1]


def spread_exponent(*sets: torch.Tensor) -> int:
    """``e`` with the largest coordinate range ``max_k (max z_k - min z_k)`` over the union of the point
    sets ``(n, d)`` in about ``[2^(e-1), 2^e)`` (0 when every point is the same); computed without overflow."""
    return bounds_exponent(*(column_bounds(z) for z in sets))


def bounds_exponent(*bounds: tuple[torch.Tensor, torch.Tensor]) -> int:
    """:func:`spread_exponent` of the sets whose :func:`column_bounds` are ``bounds``."""
    dev = bounds[0][0].device  # the per-coordinate bounds meet there (no host copy of the data)
    hi = torch.stack([h.to(dev, torch.float64) for h, _ in bounds]).amax(0)
    lo = torch.stack([low.to(dev, torch.float64) for _, low in bounds]).amin(0)
    half = float((0.5 * hi - 0.5 * lo).max())
    return exponent(half) + 1 if half > 0 else exponent(float((hi - lo).max()))


def rescaling_exponent(*sets: torch.Tensor) -> int:
    """:func:`spread_exponent` of the sets where it lies outside the band left unscaled (:func:`needs_rescaling`),
    else 0: the ``e`` by which a computation on them multiplies them by ``2^-e`` first (exact)."""
    e = spread_exponent(*sets)
    return e if needs_rescaling(e) else 0


#: sets of at least this many values have their spread read in one numba pass on the CPU (the exact solver's
#: sets); smaller ones (training batches) keep torch's two passes, the same on every device
ONE_PASS_MIN_VALUES = 1 << 20


def column_bounds(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each coordinate's largest and smallest value ``((d,), (d,))`` of points ``z (n, d)``, ``n >= 1``, finite
    exactly where ``z`` is (one pass on the CPU for large sets: :mod:`wganlab.ot.scale_kernel`)."""
    z = z.detach()
    if scale_kernel is not None and z.device.type == "cpu" and z.dtype in (torch.float32, torch.float64) \
            and z.ndim == 2 and z.numel() >= ONE_PASS_MIN_VALUES and z.is_contiguous():
        return tuple(torch.from_numpy(b) for b in scale_kernel.column_max_min(z.numpy()))
    return z.amax(0), z.amin(0)


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
