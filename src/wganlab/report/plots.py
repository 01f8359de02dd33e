"""Plots for experiments (matplotlib, Agg backend, PNG). Each function writes one figure and returns its
file name; the numbers behind a plot are written beside it by the experiment (CSV/JSON).

matplotlib is a core dependency, but it is imported only when a plot is drawn, so ``wganlab list``,
``distance`` and ``train`` neither load it nor need it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from wganlab.runs import atomic_write_bytes


def _pyplot():
    """``matplotlib.pyplot`` on the Agg (file-only) backend, imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> str:
    import io

    plt = _pyplot()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path).name


def line_plot(path: Path, series: dict[str, tuple[Sequence, Sequence]], *, xlabel: str, ylabel: str,
              title: str = "", logx: bool = False, logy: bool = False, hlines: dict[str, float] | None = None,
              errors: dict[str, Sequence] | None = None, markers: bool = True) -> str:
    """Curves ``label -> (x, y)``, optional error bars ``label -> yerr`` and horizontal reference lines."""
    fig, ax = _pyplot().subplots(figsize=(6, 4))
    for label, (x, y) in series.items():
        if errors and label in errors:
            ax.errorbar(x, y, yerr=errors[label], label=label, marker="o" if markers else None, ms=3,
                        capsize=2)
        else:
            ax.plot(x, y, label=label, marker="o" if markers else None, ms=3)
    for i, (label, value) in enumerate((hlines or {}).items()):
        ax.axhline(value, ls="--", color=f"C{len(series) + i}", label=label)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def bar_plot(path: Path, groups: Sequence[str], bars: dict[str, Sequence[float]], *, ylabel: str,
             title: str = "", errors: dict[str, Sequence[float]] | None = None) -> str:
    """Grouped bars: for every group (x tick), one bar per ``bars`` entry."""
    fig, ax = _pyplot().subplots(figsize=(6, 4))
    width = 0.8 / max(1, len(bars))
    for i, (label, values) in enumerate(bars.items()):
        xs = [g + (i - (len(bars) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, values, width, label=label, yerr=(errors or {}).get(label), capsize=2)
    ax.set_xticks(range(len(groups)), groups)
    ax.set(ylabel=ylabel, title=title)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return _save(fig, path)


def scatter_plot(path: Path, sets: dict[str, Sequence], *, title: str = "", limits: float | None = None) -> str:
    """2-D point clouds ``label -> (n, 2) array``, one colour each."""
    fig, ax = _pyplot().subplots(figsize=(4.5, 4.5))
    for label, pts in sets.items():
        pts = pts[:, :2]
        ax.scatter(pts[:, 0], pts[:, 1], s=4, alpha=0.6, label=label)
    if limits:
        ax.set(xlim=(-limits, limits), ylim=(-limits, limits))
    ax.set(title=title, aspect="equal")
    ax.legend(fontsize=8, markerscale=3)
    return _save(fig, path)
