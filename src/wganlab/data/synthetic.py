"""Synthetic images: the explicit stand-in for an image data set that is not installed (``noise``).

``noise:n=N:size=S:channels=C`` is ``(N, C, S, S)`` float32 in [-1, 1]: per image and channel, a
``coarse x coarse`` grid of standard normal values (``coarse = max(1, S // 4)``), bilinearly enlarged to
``S x S`` and squashed by ``tanh``, so neighbouring pixels are correlated and convolutions see
structure. Seeded like the Gaussian families: ``numpy.random.default_rng([seed, s])`` with ``s = 0``
for ``train`` and ``s = 1`` for ``test`` (an independent sample). Nothing falls back to it silently:
a preset or a test names it where a real data set (MNIST, CIFAR-10, CelebA) is not installed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from wganlab.data.common import image_dataset, n_key, seed_key
from wganlab.data.spec import DatasetInfo, DataSpec, Key, register

DEFAULT_N = 1000


def _load(spec: DataSpec, data_root: Path | None):
    n, size, channels = spec.get("n"), spec.get("size"), spec.get("channels")
    coarse = max(1, size // 4)
    rng = np.random.default_rng([spec.get("seed"), 0 if spec.split == "train" else 1])
    z = torch.from_numpy(rng.standard_normal((n, channels, coarse, coarse)).astype(np.float32))
    x = torch.tanh(F.interpolate(z, size=(size, size), mode="bilinear", align_corners=False))
    return image_dataset(x, None, {"n_split": n, "coarse": coarse})


INFO = register(DatasetInfo(
    name="noise",
    kind="image",
    description="smooth random images in [-1, 1] (seeded): the stand-in for an image set not installed",
    keys={"n": n_key(DEFAULT_N, "number of images"), "seed": seed_key(),
          "size": Key(int, 32, "image side in pixels", min=1, max=4096),
          "channels": Key(int, 1, "colour channels (1 grey, 3 RGB)", choices=(1, 3))},
    loader=_load,
    locate=lambda root: "generated",
))
