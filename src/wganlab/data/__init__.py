"""Data sets from one spec string: ``load("fashion-mnist:train:n=5000:size=32")``.

Spec grammar ``name[:split][:key=value...]`` (see :mod:`wganlab.data.spec`); ``available()`` lists the
names, ``describe(name)`` the keys of one dataset. Every dataset is seeded (default seed 0) and
reproducible from ``Dataset.spec``.

Ranges: images are ``(N, C, H, W)`` float32 in [-1, 1] (uint8 ``p`` -> ``p / 127.5 - 1``); vectors are
``(N, d)`` float32, unbounded (``value_range`` None).

Families (one module each): :mod:`~wganlab.data.squares` (Elnekave & Weiss toy squares),
:mod:`~wganlab.data.gaussians` (``gauss``, ``gauss8``, ``ring10``), :mod:`~wganlab.data.idx`
(``fashion-mnist``, ``mnist``), :mod:`~wganlab.data.cifar10`, :mod:`~wganlab.data.image_folder`
(``folder``, ``ffhq``, ``celeba``), :mod:`~wganlab.data.digits`. Importing this package loads neither
matplotlib nor scikit-learn.
"""

# Importing the family modules registers them.
from wganlab.data import cifar10, digits, gaussians, idx, image_folder, squares, synthetic  # noqa: F401
from wganlab.data.preview import save_preview
from wganlab.data.spec import Dataset, DataSpec, available, dataset_names, describe, load, parse_spec

__all__ = [
    "DataSpec",
    "Dataset",
    "available",
    "dataset_names",
    "describe",
    "load",
    "parse_spec",
    "save_preview",
]
