"""Image grids: a batch of images laid out on one PIL image, and an atomic PNG/JPEG writer.

Layout (as torchvision's ``make_grid``, which we do not depend on): ``ncol = min(nrow, N)`` images per
row, ``ceil(N / ncol)`` rows, ``pad`` pixels of ``pad_value`` between tiles and around the border, so
the grid is ``rows * (H + pad) + pad`` pixels high and ``ncol * (W + pad) + pad`` wide. Values are
clamped to ``value_range = (lo, hi)`` and mapped linearly to 0..255:
``round((v - lo) / (hi - lo) * 255)`` (halves round up), so -1 -> 0, 0 -> 128, 1 -> 255 by default.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from wganlab.checks import as_tensor
from wganlab.errors import InputError
from wganlab.runs import atomic_write


def to_uint8(x: torch.Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """Values clamped to ``value_range`` and mapped linearly to uint8 0..255 (halves round up)."""
    lo, hi = float(value_range[0]), float(value_range[1])
    if not hi > lo:
        raise InputError(f"value_range must be (lo, hi) with lo < hi, got {value_range!r}")
    t = ((x.to(torch.float64) - lo) / (hi - lo)).clamp_(0.0, 1.0)
    return (t * 255.0 + 0.5).floor_().to(torch.uint8)


def image_grid(x, nrow: int = 8, value_range: tuple[float, float] = (-1.0, 1.0), pad: int = 2,
               pad_value: float = 0.5) -> Image.Image:
    """Images ``(N, C, H, W)`` (C = 1 or 3; ``(N, H, W)`` is read as grey) as one PIL image.

    ``nrow`` is the number of images per row; ``pad_value`` is the padding grey level in [0, 1].
    """
    t = as_tensor(x.detach().cpu() if isinstance(x, torch.Tensor) else x, "images")
    if t.ndim == 3:
        t = t[:, None]
    if t.ndim != 4 or t.shape[1] not in (1, 3):
        raise InputError(f"images: expected shape (N, C, H, W) with C = 1 or 3, got {tuple(t.shape)}")
    if isinstance(nrow, bool) or not isinstance(nrow, int) or nrow < 1:
        raise InputError(f"nrow: expected a positive integer, got {nrow!r}")
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise InputError(f"pad: expected a non-negative integer, got {pad!r}")
    n, c, h, w = t.shape
    ncol = min(nrow, n)
    rows = -(-n // ncol)
    fill = round(min(max(pad_value, 0.0), 1.0) * 255)
    grid = torch.full((c, rows * (h + pad) + pad, ncol * (w + pad) + pad), fill, dtype=torch.uint8)
    u8 = to_uint8(t, value_range)
    for k in range(n):
        r, col = divmod(k, ncol)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[:, top:top + h, left:left + w] = u8[k]
    a = grid.numpy()
    if c == 1:
        return Image.fromarray(np.ascontiguousarray(a[0]))
    return Image.fromarray(np.ascontiguousarray(a.transpose(1, 2, 0)))


def _image_format(path: Path) -> str:
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: unknown image file extension {path.suffix!r} (use .png or .jpg)")
    return fmt


def enlarge(x: torch.Tensor, min_side: int = 64) -> torch.Tensor:
    """Images ``(N, C, H, W)`` repeated by an integer factor (nearest neighbour) until their larger side is
    at least ``min_side``: small images (8-32 px) become visible in a report."""
    k = max(1, min_side // max(x.shape[-2:]))
    return x if k == 1 else x.repeat_interleave(k, -2).repeat_interleave(k, -1)


def save_image_grid(x, path: str | os.PathLike, nrow: int = 8, value_range: tuple[float, float] = (-1.0, 1.0),
                    pad: int = 2) -> Path:
    """Write :func:`image_grid` of ``x`` to ``path`` (format from the extension), atomically."""
    path = Path(path)
    fmt = _image_format(path)
    img = image_grid(x, nrow=nrow, value_range=value_range, pad=pad)
    return atomic_write(path, lambda tmp: img.save(tmp, format=fmt))
