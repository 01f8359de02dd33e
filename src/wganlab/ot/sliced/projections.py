"""Random projection directions for the sliced distances, with the bound on their size."""

from __future__ import annotations

import torch

from wganlab.checks import as_tensor, positive_int
from wganlab.errors import InputError

#: the most entries ``n_projections * d`` a set of random projections may have (1 GB in float64)
MAX_PROJECTION_ELEMENTS = 1 << 27


def random_projections(d: int, n_projections: int, *, seed: int | None = None,
                       generator: torch.Generator | None = None, device=None,
                       dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(n_projections, d)`` random unit vectors: normalised standard Gaussians (uniform on the sphere).

    Drawn in float64 from ``generator`` (on its device), else from a CPU generator seeded with ``seed``,
    else from torch's global CPU generator; then cast to ``dtype`` and moved to ``device``. The same seed
    gives the same directions on every device.

    >>> torch.allclose(random_projections(3, 2, seed=0).norm(dim=1), torch.ones(2))  # unit (in float32)
    True
    """
    d = positive_int(d, "d")
    n_projections = positive_int(n_projections, "n_projections")
    if n_projections * d > MAX_PROJECTION_ELEMENTS:
        raise InputError(f"{n_projections:,} projections of {d:,}-dimensional points would need "
                         f"{n_projections * d:,} float64 entries, over the limit of {MAX_PROJECTION_ELEMENTS:,}")
    if generator is None and seed is not None:
        generator = torch.Generator().manual_seed(int(seed))
    gdev = generator.device if generator is not None else "cpu"
    z = torch.randn(n_projections, d, generator=generator, device=gdev, dtype=torch.float64)
    z = z / z.norm(dim=1, keepdim=True).clamp_min(1e-300)
    return z.to(device=device if device is not None else gdev, dtype=dtype)


def _check_projections(theta, d: int, device, dtype) -> torch.Tensor:
    theta = as_tensor(theta, "projections")
    if theta.ndim == 1:
        theta = theta[None]
    if theta.ndim != 2 or theta.shape[1] != d:
        raise InputError(f"projections must have shape (n_projections, {d}), got {tuple(theta.shape)}")
    return theta.detach().to(device=device, dtype=dtype)


def get_projections(d: int, n_projections, seed, generator, projections, device, dtype) -> torch.Tensor:
    if projections is not None:
        return _check_projections(projections, d, device, dtype)
    return random_projections(d, n_projections, seed=seed, generator=generator, device=device, dtype=dtype)


def matmul_t(a: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """``a @ theta.T``, with the same bits whatever the number of projections in ``theta``.

    BLAS takes a matrix-vector path for a single column, whose summation order differs from the
    matrix-matrix path; a single projection is therefore computed as two identical columns.
    """
    if theta.shape[0] == 1:
        return (a @ torch.cat([theta, theta]).T)[..., :1]
    return a @ theta.T
