"""Gaussian families (vector data, ``(n, d)`` float32, seeded).

* ``gauss``: ``N(shift * 1_d, std^2 I_d)``; keys ``d`` (default 2), ``shift`` (default 0), ``std``
  (default 1). ``gauss:shift=1`` and ``gauss:shift=-1`` at ``d=2`` are Mallasto et al.'s two
  Gaussians shifted by ``+[1, 1]`` and ``-[1, 1]``.
* ``gauss8``: equal-weight mixture of 8 isotropic Gaussians centred at
  ``radius * (cos 2 pi k/8, sin 2 pi k/8)``, k = 0..7 (Stanczuk et al.'s 8-mode data). The papers give no
  numbers we could check: radius 2 and std 0.02 are our choice (the usual 8-Gaussians toy set).
* ``ring10``: the same with 10 modes (the ring of Laschos et al., Fig. 2). Radius 2 and std 0.05 are our
  choice.

For the mixtures the component of each point is drawn i.i.d. uniformly and returned as its label;
``meta["centres"]`` lists the centres. Every family uses ``numpy.random.default_rng([seed, s])`` with
``s = 0`` for ``train`` and ``s = 1`` for ``test``: the test split is an independent sample.
Keys ``n`` (number of points, default 1000) and ``seed`` apply to all three.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from wganlab.data.common import check_values, n_key, seed_key
from wganlab.data.spec import Dataset, DatasetInfo, DataSpec, Key, register

DEFAULT_N = 1000


def _rng(spec: DataSpec) -> np.random.Generator:
    return np.random.default_rng([spec.get("seed"), 0 if spec.split == "train" else 1])


def _vector_dataset(x: np.ndarray, labels: np.ndarray | None, meta: dict) -> Dataset:
    lab = None if labels is None else torch.from_numpy(labels.astype(np.int64))
    return Dataset(x=torch.from_numpy(x.astype(np.float32)), labels=lab, spec="", kind="vector",
                   value_range=None, meta=meta)


def ring_centres(modes: int, radius: float) -> np.ndarray:
    """``(modes, 2)`` centres on a circle: ``radius * (cos 2 pi k/modes, sin 2 pi k/modes)``."""
    ang = 2.0 * math.pi * np.arange(modes) / modes
    return radius * np.stack([np.cos(ang), np.sin(ang)], axis=1)


def _load_gauss(spec: DataSpec, data_root: Path | None) -> Dataset:
    n, d, shift, std = spec.get("n"), spec.get("d"), spec.get("shift"), spec.get("std")
    check_values("gauss", n * d, "n*d")
    x = shift + std * _rng(spec).standard_normal((n, d))
    return _vector_dataset(x, None, {"shift": shift, "std": std, "d": d})


def _ring_loader(modes: int):
    def load(spec: DataSpec, data_root: Path | None) -> Dataset:
        n, radius, std = spec.get("n"), spec.get("radius"), spec.get("std")
        rng = _rng(spec)
        centres = ring_centres(modes, radius)
        comp = rng.integers(0, modes, size=n)
        x = centres[comp] + std * rng.standard_normal((n, 2))
        return _vector_dataset(x, comp, {"centres": centres.tolist(), "radius": radius, "std": std})
    return load


def _common() -> dict[str, Key]:
    return {"n": n_key(DEFAULT_N, "number of points to draw"), "seed": seed_key()}


register(DatasetInfo(
    name="gauss",
    kind="vector",
    description="Gaussian N(shift*1, std^2 I_d) (Mallasto et al.: shift=+1/-1 at d=2)",
    keys={**_common(),
          "d": Key(int, 2, "dimension", min=1, max=1_000_000),
          "shift": Key(float, 0.0, "every coordinate of the mean"),
          "std": Key(float, 1.0, "standard deviation of each coordinate", min=0.0)},
    loader=_load_gauss,
    locate=lambda root: "generated",
))

register(DatasetInfo(
    name="gauss8",
    kind="vector",
    description="8 Gaussians on a circle, 2-D (Stanczuk et al.; radius 2, std 0.02 our choice)",
    keys={**_common(),
          "radius": Key(float, 2.0, "radius of the circle of centres", min=0.0),
          "std": Key(float, 0.02, "standard deviation of each mode", min=0.0)},
    loader=_ring_loader(8),
    locate=lambda root: "generated",
    aliases=("8gaussians",),
))

register(DatasetInfo(
    name="ring10",
    kind="vector",
    description="ring of 10 Gaussians, 2-D (Laschos et al. Fig. 2; radius 2, std 0.05 our choice)",
    keys={**_common(),
          "radius": Key(float, 2.0, "radius of the ring", min=0.0),
          "std": Key(float, 0.05, "standard deviation of each mode", min=0.0)},
    loader=_ring_loader(10),
    locate=lambda root: "generated",
))
