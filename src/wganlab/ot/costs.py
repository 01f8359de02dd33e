"""Ground costs between two point sets, built block by block so memory stays bounded.

Every cost maps two batches ``x (n, ...)`` and ``y (m, ...)`` of the same per-point shape to an
``(n, m)`` matrix. Conventions (pixel scale as given: images in [-1, 1] have ``data_range=2``):

=============  ======================================================================================
``euclidean``   ``||x - y||_2`` of the flattened points (the papers' W1 cost, not divided by the dimension)
``sqeuclidean`` ``||x - y||_2^2`` (no 1/2, as in POT)
``l1``          ``||x - y||_1``
``ssim``        ``1 - SSIM(x, y)`` in [0, 2]: Gaussian window 11 (sigma 1.5; the largest odd size that fits
                for images under 11 px), valid region, ``C1 = (0.01 R)^2``, ``C2 = (0.03 R)^2``, mean over
                channels and positions; equals ``1 - skimage.metrics.structural_similarity(...,
                gaussian_weights=True, use_sample_covariance=False)``.
``psnr``        ``100 - PSNR(x, y)`` with ``PSNR = 10 log10(R^2 / MSE)`` capped at 100 dB, so the cost is
                in [0, inf) and 0 only for (near-)identical images.
callable        ``f(xb, yb) -> (len(xb), len(yb))`` tensor, called on blocks.
=============  ======================================================================================

SSIM is computed as matrix products (one batched GEMM per window position), not pair by pair.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F

from wganlab.errors import InputError

CostFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: elements of float scratch memory a block may use (about 256 MB in float32)
BLOCK_ELEMENTS = 64 * 1024 * 1024
#: the most entries a dense cost matrix may have (8 GB in float64); larger requests are refused up front
MAX_COST_ENTRIES = 1 << 30
PSNR_CAP_DB = 100.0


def euclidean(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``||x_i - y_j||_2`` for flattened points, ``(n, m)``."""
    return sqeuclidean(x, y).sqrt()


def sqeuclidean(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``||x_i - y_j||_2^2`` for flattened points, ``(n, m)``.

    ``||x||^2 + ||y||^2 - 2 x.y`` by one matrix product; entries that cancel (nearly coincident points,
    where that formula keeps only ``sqrt(machine eps) * ||x||`` of accuracy) are recomputed from the
    differences, so a copy of a point is at distance exactly 0.
    """
    x = x.reshape(len(x), -1)
    y = y.reshape(len(y), -1)
    nx, ny = (x * x).sum(1), (y * y).sum(1)
    d2 = (nx[:, None] + ny[None, :] - 2.0 * (x @ y.T)).clamp_min(0.0)
    close = (d2 <= 1e-4 * (nx[:, None] + ny[None, :])).nonzero(as_tuple=True)
    if len(close[0]):
        diff = x[close[0]] - y[close[1]]
        d2 = d2.index_put(close, (diff * diff).sum(1))
    return d2


def l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``||x_i - y_j||_1`` for flattened points, ``(n, m)``."""
    return torch.cdist(x.reshape(len(x), -1), y.reshape(len(y), -1), p=1.0)


def _as_images(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise InputError(f"{name}: image costs need images shaped (n, C, H, W) or (n, H, W), "
                         f"got shape {tuple(x.shape)}")
    return x


def _gaussian_window(h: int, w: int, sigma: float = 1.5, size: int = 11) -> torch.Tensor:
    size = min(size, h, w)
    size -= 1 - size % 2  # largest odd size that fits
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)  # (size, size), sums to 1


def _local_stats(x: torch.Tensor, win: torch.Tensor):
    """Unfolded, sqrt-weighted windows and the local means / second moments of ``x (n, C, H, W)``.

    Returns ``xs (C*P, n, K)`` with ``sum_k xs[., i, k] * ys[., j, k] = E_w[x_i * y_j]`` per position,
    ``mu (C*P, n)`` and ``m2 (C*P, n)``, where ``P`` is the number of valid window positions.
    """
    n, c, h, w = x.shape
    k = win.shape[0]
    cols = F.unfold(x.reshape(n * c, 1, h, w), k)  # (n*C, K, P)
    g = win.reshape(-1).to(x.dtype)
    mu = torch.einsum("bkp,k->bp", cols, g)
    m2 = torch.einsum("bkp,k->bp", cols * cols, g)
    xs = cols * g.sqrt()[None, :, None]
    p = cols.shape[-1]
    xs = xs.reshape(n, c, k * k, p).permute(1, 3, 0, 2).reshape(c * p, n, k * k)
    return xs, mu.reshape(n, c, p).permute(1, 2, 0).reshape(c * p, n), m2.reshape(n, c, p).permute(
        1, 2, 0).reshape(c * p, n)


def ssim_matrix(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """Mean SSIM between every pair of images, ``(n, m)``; see the module docstring for the window."""
    x = _as_images(x, "x")
    y = _as_images(y, "y")
    win = _gaussian_window(x.shape[2], x.shape[3])
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    xs, mux, m2x = _local_stats(x, win)
    cp, k2 = xs.shape[0], xs.shape[2]
    vx = m2x - mux**2
    out = x.new_empty(x.shape[0], y.shape[0])
    step = max(1, BLOCK_ELEMENTS // (cp * max(x.shape[0], k2)))
    for j in range(0, y.shape[0], step):
        ys, muy, m2y = _local_stats(y[j:j + step], win)
        vy = m2y - muy**2
        exy = torch.bmm(xs, ys.transpose(1, 2))  # (C*P, n, mb): windowed E[x_i y_j] per position
        mxy = mux[:, :, None] * muy[:, None, :]
        num = (2 * mxy + c1) * (2 * (exy - mxy) + c2)
        den = (mux[:, :, None] ** 2 + muy[:, None, :] ** 2 + c1) * (vx[:, :, None] + vy[:, None, :] + c2)
        out[:, j:j + step] = (num / den).mean(0)
    return out


def ssim_paired(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """Mean SSIM of matched pairs ``(x_i, y_i)``, ``(n,)``: the diagonal of :func:`ssim_matrix` without the
    matrix, the windowed moments as five convolutions with the same window (valid positions only);
    differentiable."""
    x = _as_images(x, "x")
    y = _as_images(y, "y")
    c = x.shape[1]
    win = _gaussian_window(x.shape[2], x.shape[3]).to(x.dtype).to(x.device)
    w = win.expand(c, 1, *win.shape)

    def local(z):
        return F.conv2d(z, w, groups=c)

    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    mux, muy = local(x), local(y)
    vx, vy = local(x * x) - mux**2, local(y * y) - muy**2
    cov = local(x * y) - mux * muy
    ssim = (2 * mux * muy + c1) * (2 * cov + c2) / ((mux**2 + muy**2 + c1) * (vx + vy + c2))
    return ssim.flatten(1).mean(1)


def ssim_cost(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """``1 - SSIM(x_i, y_j)``, ``(n, m)``."""
    return 1.0 - ssim_matrix(x, y, data_range)


def psnr_cost(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """``100 - PSNR(x_i, y_j)`` with PSNR capped at 100 dB, ``(n, m)``."""
    return _psnr_cost_from_mse(sqeuclidean(x, y) / x[0].numel(), data_range)


def _psnr_cost_from_mse(mse: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    floor = data_range**2 * 10 ** (-PSNR_CAP_DB / 10)
    return PSNR_CAP_DB + 10.0 * torch.log10(mse.clamp_min(floor) / data_range**2)


COSTS: dict[str, CostFn] = {
    "euclidean": euclidean,
    "sqeuclidean": sqeuclidean,
    "l1": l1,
    "ssim": ssim_cost,
    "psnr": psnr_cost,
}


def get_cost(cost: str | CostFn) -> CostFn:
    """The cost function for a name in :data:`COSTS` or a callable (returned as is)."""
    if callable(cost):
        return cost
    try:
        return COSTS[cost]
    except (KeyError, TypeError):
        raise InputError(f"unknown cost {cost!r}; choose one of {sorted(COSTS)} or pass a callable") from None


def paired_cost(x: torch.Tensor, y: torch.Tensor, cost: str | CostFn = "euclidean") -> torch.Tensor:
    """``c(x_i, y_i)`` for matched rows, ``(n,)``, differentiable (no ``n x n`` matrix is built)."""
    if len(x) != len(y):
        raise InputError(f"paired cost needs sets of equal size, got {len(x)} and {len(y)}")
    if cost in ("euclidean", "sqeuclidean", "l1", "psnr"):
        diff = (x - y).reshape(len(x), -1)
        if cost == "l1":
            return diff.abs().sum(1)
        d2 = (diff * diff).sum(1)
        if cost == "sqeuclidean":
            return d2
        if cost == "euclidean":
            return d2.sqrt()
        return _psnr_cost_from_mse(d2 / diff.shape[1])
    if cost == "ssim":
        return 1.0 - ssim_paired(x, y)
    fn = get_cost(cost)
    return torch.cat([fn(x[i:i + 1], y[i:i + 1]).reshape(1) for i in range(len(x))])


def check_dense_size(n: int, m: int) -> None:
    """Raise :class:`InputError` before an ``n x m`` dense cost matrix over :data:`MAX_COST_ENTRIES` is built."""
    if n * m > MAX_COST_ENTRIES:
        raise InputError(f"a dense {n:,} x {m:,} cost matrix ({n * m:,} entries) exceeds the limit of "
                         f"{MAX_COST_ENTRIES:,}; use fewer points (or the sparse engine for W1 / W2)")


def cost_matrix(x: torch.Tensor, y: torch.Tensor, cost: str | CostFn = "euclidean", *,
                dtype: torch.dtype | None = torch.float64, block_rows: int | None = None) -> torch.Tensor:
    """The ``(n, m)`` matrix ``C_ij = c(x_i, y_j)``, computed in row blocks of ``x``.

    ``dtype=torch.float64`` (the default) is what exact OT needs; ``dtype=None`` keeps the inputs'
    dtype and device and stays differentiable (for critics and assigners). The result lives on the
    inputs' device.
    """
    fn = get_cost(cost)
    n, m = x.shape[0], y.shape[0]
    check_dense_size(n, m)
    if dtype is not None:
        x, y = x.to(dtype), y.to(dtype)
    if block_rows is None:
        per_row = max(m, 1) * max(1, math.prod(x.shape[1:]) // 64 + 1)
        block_rows = max(1, min(n, BLOCK_ELEMENTS // per_row))
    if block_rows >= n:
        out = fn(x, y)
    elif x.requires_grad or y.requires_grad:
        out = torch.cat([fn(x[i:i + block_rows], y) for i in range(0, n, block_rows)])
    else:
        out = torch.empty(n, m, dtype=x.dtype, device=x.device)
        for i in range(0, n, block_rows):
            out[i:i + block_rows] = fn(x[i:i + block_rows], y)
    if out.shape != (n, m):
        raise InputError(f"cost function returned shape {tuple(out.shape)}, expected {(n, m)}")
    return out


class Nearest(NamedTuple):
    """Per point ``x_i``: the smallest ``c(x_i, y_j) + psi_j`` and the ``j`` attaining it."""

    values: torch.Tensor  # (n,)
    indices: torch.Tensor  # (n,) int64


def nearest(x: torch.Tensor, y: torch.Tensor, cost: str | CostFn = "euclidean", *, psi: torch.Tensor | None = None,
            dtype: torch.dtype | None = torch.float64, block: int = 1024) -> Nearest:
    """For every ``x_i`` of ``x (n, ...)``: ``min_j c(x_i, y_j) + psi_j`` over ``y (m, ...)`` and its ``argmin``
    (the first ``j`` on ties); nearest neighbours under ``cost`` when ``psi (m,)`` is None. Computed without
    gradients, ``block`` rows of ``x`` at a time (``block * m`` costs held); ``dtype`` as in :func:`cost_matrix`.
    """
    values, indices = [], []
    with torch.no_grad():
        for i in range(0, len(x), block):
            c = cost_matrix(x[i:i + block], y, cost, dtype=dtype)
            if psi is not None:
                c = c + psi[None, :]
            j = c.argmin(1)
            values.append(c.gather(1, j[:, None])[:, 0])
            indices.append(j)
    return Nearest(torch.cat(values), torch.cat(indices))
