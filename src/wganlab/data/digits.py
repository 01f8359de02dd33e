"""scikit-learn's bundled 8x8 handwritten digits (1,797 real images, values 0..16) as images.

The data ship inside the scikit-learn wheel (``sklearn.datasets.load_digits``): nothing is downloaded.
Values ``v`` in 0..16 become ``v / 8 - 1`` in [-1, 1]; images are ``(N, 1, size, size)``
(``size`` default: no resize, 8; resized with antialiased bilinear), labels 0..9. There is no official
test split: a fixed ``holdout`` fraction (default 1/6, 300 images) forms ``test``. Keys: ``n``,
``seed``, ``pick``, ``size``, ``holdout`` (see :mod:`wganlab.data.common`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from wganlab.data.common import image_dataset, labels_tensor, pick_indices, resize, split_indices, subset_keys
from wganlab.data.spec import DatasetInfo, DataSpec, register
from wganlab.errors import DatasetError

N_DIGITS = 1797


def _raw() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        raise DatasetError("digits: needs scikit-learn (pip install scikit-learn)") from None
    bunch = load_digits()
    return bunch.images, bunch.target


def _load(spec: DataSpec, data_root: Path | None):
    images, target = _raw()
    split = split_indices(images.shape[0], spec.split, spec.get("holdout"), spec.name)
    idx = split[pick_indices(len(split), spec)]
    x = torch.from_numpy(images[idx].astype(np.float32) / 8.0 - 1.0)[:, None]
    x = resize(x.contiguous(), spec.get("size"))
    return image_dataset(x, labels_tensor(target[idx]), {"n_split": len(split)})


register(DatasetInfo(
    name="digits",
    kind="image",
    description="scikit-learn's 8x8 handwritten digits, 1,797 images, 10 classes",
    keys=subset_keys(8, holdout=True),
    loader=_load,
    locate=lambda root: "bundled with scikit-learn",
    aliases=("sklearn-digits",),
))
