"""A point set made ready for the sparse exact OT engine (:mod:`wganlab.ot.exact.sparse`): the exact values, each
coordinate's range, and, made when a solve first asks, its centred float32 copy (for the float32 GEMM bounds of
:class:`wganlab.ot.exact.blocks.Distances`) and its codes on the grid of 256 levels spanning its range (for the
integer bounds of :mod:`wganlab.ot.exact.grid`)."""

from __future__ import annotations

import numpy as np
import torch

from wganlab.ot.scale import column_bounds

try:
    from wganlab.ot.exact import blocks, grid
except ImportError:  # numba missing or broken (OT-Means' POT solves still read the set)
    blocks = grid = None


class Points:
    """A point set ready for the engine: ``exact (n, d)`` (float32 or float64, the source of every cost), its
    float32 copy ``z32`` centred on ``mu`` with squared norms ``sq32``, and its grid codes (:meth:`grid_codes`).
    Made once for a set that many solves share (:func:`wganlab.ot.exact.prepare_points`); ``mu``, by default the
    mean of a sample (any shift leaves the distances unchanged; the mean keeps the norms, hence the float32 error,
    small), is rounded to float32."""

    def __init__(self, Z: np.ndarray, mu: np.ndarray | None = None, exponent: int = 0):
        self.exact = Z
        #: the set as given is ``exact * 2^exponent`` (:func:`wganlab.ot.exact.prepare_points` rescales sets
        #: far from unit spread)
        self.exponent = exponent
        #: the cost bounds (:class:`blocks.CostBounds`) of the latest solve against this set that kept them
        self.last_costs = None
        self._shift, self._mu = mu, None
        #: ``(2, d)``: the largest and the smallest value of each coordinate (finite exactly where the set is)
        self.bounds = torch.stack(column_bounds(torch.from_numpy(Z)))
        self._centred = self._codes = None

    @property
    def mu(self) -> np.ndarray:
        """The shift ``(d,)`` of :attr:`z32` (float64 holding a float32; made once)."""
        if self._mu is None:
            Z = self.exact
            mu = Z[::max(1, len(Z) // 1024)].mean(0, dtype=np.float64) if self._shift is None \
                else np.asarray(self._shift, np.float64)
            # float32 data move by fl32(mu), float64 data by mu: alike once mu is a float32 (bounds were off, tested)
            self._mu = np.where(np.abs(mu) < 3e38, np.clip(mu, -3e38, 3e38).astype(np.float32), mu).astype(np.float64)
        return self._mu

    def __len__(self) -> int:
        return len(self.exact)

    @property
    def z32(self) -> np.ndarray:
        """``exact - mu`` as float32 ``(n, d)`` (:func:`centred32`'s values; made once)."""
        return self._centred_copy()[0]

    @property
    def sq32(self) -> np.ndarray:
        """The squared norms of :attr:`z32` ``(n,)`` (float64 sums rounded to float32)."""
        return self._centred_copy()[1]

    def _centred_copy(self) -> tuple[np.ndarray, np.ndarray]:
        if self._centred is None:
            if blocks is not None:
                z32 = np.empty(self.exact.shape, np.float32)
                self._centred = z32, blocks.centred_copy(self.exact, self.mu, z32)
            else:  # the same values in two passes
                z32 = centred32(self.exact, self.mu)
                self._centred = z32, np.einsum("ij,ij->i", z32, z32, dtype=np.float64).astype(np.float32)
        return self._centred

    def grid_step(self) -> tuple[float, float] | None:
        """``(o, s)``: the grid ``o + s q`` (``q = -128..127``) spanning the set's range (:func:`grid.step_of`)."""
        return grid.step_of(float(self.bounds[0].max()), float(self.bounds[1].min()))

    @property
    def off_grid(self) -> bool:
        """Whether :meth:`grid_codes` found the set off its grid (False while not asked)."""
        return self._codes is False

    def grid_codes(self):
        """The set's :class:`grid.Codes` on :meth:`grid_step`'s grid, or None where some point lies off it
        (:data:`grid.GRID_MAX_RESIDUAL`); made once."""
        if self._codes is None:
            step = self.grid_step()
            c = None if step is None else grid.codes(self.exact, *step, grid.GRID_MAX_RESIDUAL * step[1] / 2)
            self._codes = c if c is not None else False
        return self._codes or None


def centred32(Z: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """``Z - mu`` as float32 (computed in ``Z``'s precision, rounded once)."""
    return np.subtract(Z, mu.astype(Z.dtype), out=np.empty(Z.shape, np.float32), casting="same_kind")
