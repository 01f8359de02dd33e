"""A quick look at a data set: an image grid, or a scatter plot of vector data."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from wganlab.data.spec import Dataset
from wganlab.errors import InputError
from wganlab.images import save_image_grid
from wganlab.runs import atomic_write


def preview_indices(n_items: int, n: int) -> torch.Tensor:
    """``min(n, n_items)`` indices spread evenly over the data set (first and last included)."""
    k = min(n, n_items)
    if k == 1:
        return torch.zeros(1, dtype=torch.int64)
    return torch.linspace(0, n_items - 1, k, dtype=torch.float64).round().to(torch.int64)


def save_preview(ds: Dataset, path: str | os.PathLike, n: int = 64) -> Path:
    """Write a picture of ``ds`` to ``path``, atomically.

    Images: a grid of ``n`` images spread evenly over the data set (``ceil(sqrt(n))`` per row).
    Vectors: a scatter plot of every point (coloured by label when there are labels) of the first two
    coordinates (one coordinate against the index when ``d = 1``), drawn with matplotlib's Agg canvas
    (imported here, not at package import; no global backend change).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"n: expected a positive integer, got {n!r}")
    if len(ds) == 0:
        raise InputError("cannot preview an empty data set")
    path = Path(path)
    if ds.kind == "image":
        idx = preview_indices(len(ds), n)
        nrow = math.ceil(math.sqrt(len(idx)))
        return save_image_grid(ds.x[idx], path, nrow=nrow, value_range=ds.value_range or (-1.0, 1.0))
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise InputError("a scatter preview needs matplotlib (a wganlab dependency): pip install matplotlib") from None
    x = ds.x.detach().cpu().numpy()
    if x.shape[1] >= 2:
        px, py, xl, yl = x[:, 0], x[:, 1], "x[0]", "x[1]"
    else:
        px, py, xl, yl = range(x.shape[0]), x[:, 0], "index", "x[0]"
    fig = Figure(figsize=(5, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    c = None if ds.labels is None else ds.labels.cpu().numpy()
    ax.scatter(px, py, s=4, c=c, cmap="tab10" if c is not None else None, alpha=0.6, linewidths=0)
    ax.set_xlabel(xl)
    ax.set_ylabel(yl)
    if x.shape[1] >= 2:
        ax.set_aspect("equal", adjustable="datalim")
    extra = f", first 2 of d={x.shape[1]}" if x.shape[1] > 2 else ""
    ax.set_title(f"{ds.spec} ({len(ds)} points{extra})", fontsize=8)
    fig.tight_layout()
    fmt = path.suffix.lower().lstrip(".") or "png"
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt))
