"""Squares: the toy image data of Elnekave & Weiss (binary images holding one square).

Each image is ``size x size``, one channel, background ``-1`` and a ``square x square`` block of
``+1``. The square's top-left corner ``(row, col)`` runs over ``range(margin, size - square - margin)``
in both coordinates. This is the reference code's rule: at ``size=64, square=10, margin=1`` it gives
``range(1, 53)``, i.e. 52 x 52 = 2,704 images, so ``squares:size=64:square=10:holdout=0`` is exactly
the reference data set.

Our defaults: ``size=32`` and a square scaled from the reference, ``square = max(1, round(10 * size /
64))`` (5 at 32 px, 10 at 64 px), ``margin=1``: 25 x 25 = 625 positions at 32 px.

Without ``n`` the split holds every one of its positions exactly once, in row-major order
(deterministic). With ``n`` the data are generated like the Gaussians: ``n`` positions drawn uniformly
and independently (with replacement, so ``n`` may exceed the number of positions) from the split's
positions with ``numpy.random.default_rng(seed)``. As for the other datasets without an official
test split, a fixed ``holdout`` fraction (default 1/6) of the positions forms the ``test`` split;
``holdout=0`` keeps every position in ``train``. ``meta["positions"]`` lists the ``[row, col]``
corner of each image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from wganlab.data.common import check_values, holdout_key, image_dataset, n_key, seed_key, split_indices
from wganlab.data.spec import DatasetInfo, DataSpec, Key, register
from wganlab.errors import DatasetError

REFERENCE_SIZE = 64
REFERENCE_SQUARE = 10


def default_square(size: int) -> int:
    """The square side scaled from the reference's 10 px at 64 px."""
    return max(1, round(REFERENCE_SQUARE * size / REFERENCE_SIZE))


def square_positions(size: int, square: int, margin: int = 1) -> np.ndarray:
    """All top-left corners ``(row, col)``, row-major: an ``(P*P, 2)`` int64 array."""
    coords = np.arange(margin, size - square - margin)
    if coords.size == 0:
        raise DatasetError(f"squares: no room for a {square}px square with margin {margin} "
                           f"in a {size}px image (need size >= square + 2*margin + 1)")
    rr, cc = np.meshgrid(coords, coords, indexing="ij")
    return np.stack([rr.ravel(), cc.ravel()], axis=1).astype(np.int64)


def render_squares(positions: np.ndarray, size: int, square: int) -> torch.Tensor:
    """``(N, 1, size, size)`` float32 images: -1 everywhere, +1 on each square."""
    n = positions.shape[0]
    rows = torch.arange(size)
    r0 = torch.from_numpy(positions[:, 0])[:, None]
    c0 = torch.from_numpy(positions[:, 1])[:, None]
    in_r = (rows[None, :] >= r0) & (rows[None, :] < r0 + square)  # (N, size)
    in_c = (rows[None, :] >= c0) & (rows[None, :] < c0 + square)
    mask = in_r[:, :, None] & in_c[:, None, :]
    x = torch.full((n, 1, size, size), -1.0, dtype=torch.float32)
    x[:, 0][mask] = 1.0
    return x


def _load(spec: DataSpec, data_root: Path | None):
    size = spec.get("size")
    square = spec.get("square") or default_square(size)
    margin = spec.get("margin")
    all_pos = square_positions(size, square, margin)
    idx = split_indices(len(all_pos), spec.split, spec.get("holdout"), spec.name)
    pos = all_pos[idx]
    n = spec.get("n")
    check_values("squares", (len(pos) if n is None else n) * size * size, "images x pixels")
    if n is not None:
        pos = pos[np.random.default_rng(spec.get("seed")).integers(0, len(pos), size=n)]
    x = render_squares(pos, size, square)
    meta = {"square": square, "n_positions": len(all_pos), "n_split": len(idx), "positions": pos.tolist()}
    return image_dataset(x, None, meta)


_KEYS = {
    "n": n_key(None, "number of images, at positions drawn with replacement (default: every position once)"),
    "seed": seed_key(),
    "holdout": holdout_key(),
    "square": Key(int, None, "square side in pixels (default round(10*size/64): 5 at 32 px)", min=1),
    "margin": Key(int, 1, "corner runs over range(margin, size - square - margin), as the reference", min=0),
}
_KEYS["size"] = Key(int, 32, "image side in pixels (the reference uses 64)", min=2, max=4096)

INFO = register(DatasetInfo(
    name="squares",
    kind="image",
    description="one white square on black, every position (Elnekave & Weiss toy data), 1 channel",
    keys=_KEYS,
    loader=_load,
    locate=lambda root: "generated",
))
