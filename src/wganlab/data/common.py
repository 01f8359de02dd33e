"""Pieces shared by the dataset families: common keys, held-out splits, subsets, pixel scaling, resizing.

Conventions
-----------
* Pixels: uint8 ``p`` becomes ``p / 127.5 - 1`` (0 -> -1, 255 -> +1), float32.
* Held-out test split (datasets without an official one): a fixed permutation of the items
  (``numpy.random.default_rng(HOLDOUT_SEED)``, independent of the run seed, so the test set is the
  same whatever ``seed`` is) puts ``round(holdout * N)`` items in ``test`` and the rest in ``train``;
  both keep the original item order.
* Subsets (key ``n``): ``pick=random`` (default) takes ``n`` distinct items chosen with
  ``numpy.random.default_rng(seed)`` and keeps them in their original order; ``pick=first`` takes
  the first ``n`` items of the split (the Elnekave & Weiss reference uses the first 10,000).
* Resize (key ``size``): antialiased bilinear (``torch.nn.functional.interpolate``) to ``size x size``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from wganlab.checks import native_order
from wganlab.data.spec import Dataset, DataSpec, Key
from wganlab.errors import DatasetError
from wganlab.memory import check_memory

#: the most values (points x coordinates, or images x pixels) a generated or loaded data set may hold:
#: 2 GB as float32. Larger requests are refused before anything is allocated.
MAX_VALUES = 500_000_000

HOLDOUT_SEED = 20240601
DEFAULT_HOLDOUT = 1.0 / 6.0
IMAGE_RANGE = (-1.0, 1.0)


def seed_key() -> Key:
    return Key(int, None, "random seed (default: the seed given to load, else 0)", min=0)


def check_values(name: str, count: int, what: str) -> None:
    """Refuse (one-line error naming the size) a data set of more than :data:`MAX_VALUES`, or one beyond the
    memory available (12 bytes a value: a float64 draw and its float32 copy)."""
    if count > MAX_VALUES:
        raise DatasetError(f"{name}: {what} = {count:,} values is too many (at most {MAX_VALUES:,})")
    check_memory(12 * count, f"{name}: {what} = {count:,} values")


def read_npy(path: str | os.PathLike, what: str = "array") -> np.ndarray:
    """A numeric ``.npy`` file (bool, integer or float; never unpickled) as a numpy array, its header checked
    before anything is allocated: a file that is not ``.npy`` (e.g. a ``.npz`` archive), a non-numeric dtype,
    a header whose size disagrees with the file or exceeds :data:`MAX_VALUES` raise one-line
    :class:`InputError` naming the problem."""
    from wganlab.errors import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file (the {what})")
    try:
        with open(path, "rb") as f:
            start = f.read(6)
            if start[:2] == b"PK":
                raise InputError(f"{path}: a .npz archive, not a .npy file (save one array with numpy.save)")
            if start != b"\x93NUMPY":
                raise InputError(f"{path}: not a .npy file (no NUMPY header)")
            f.seek(0)
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(f)
            offset = f.tell()
    except (ValueError, OSError, SyntaxError) as e:
        if isinstance(e, InputError):
            raise
        raise InputError(f"{path}: unreadable .npy header ({e})") from None
    if dtype.hasobject or dtype.fields is not None or dtype.kind not in "biuf":
        raise InputError(f"{path}: dtype {dtype} is not numeric (expected bool, integer or float values)")
    count = math.prod(shape)
    if count > MAX_VALUES:
        raise InputError(f"{path}: header claims shape {shape} = {count:,} values, more than the {MAX_VALUES:,} "
                         "allowed")
    check_memory(count * dtype.itemsize, f"{path}: shape {shape}")
    have = path.stat().st_size - offset
    if have != count * dtype.itemsize:
        raise InputError(f"{path}: header claims shape {shape} ({count * dtype.itemsize:,} bytes) but the file "
                         f"holds {have:,} bytes of data")
    try:
        return native_order(np.load(path, allow_pickle=False))
    except (ValueError, OSError) as e:
        raise InputError(f"{path}: not a readable numeric .npy file ({e})") from None


def n_key(default: int | None = None, doc: str | None = None) -> Key:
    doc = doc or "number of items: a seeded subset of the split, without replacement (default: all)"
    return Key(int, default, doc, min=1, max=MAX_VALUES)


def size_key(native: int) -> Key:
    return Key(int, None, f"image side in pixels after resizing (default: native, {native})", min=1, max=4096)


def holdout_key() -> Key:
    return Key(float, DEFAULT_HOLDOUT,
               "fraction of items held out as the test split (fixed, seed-independent)",
               min=0.0, max=1.0, max_open=True)


def pick_key() -> Key:
    return Key(str, "random", "how n items are chosen: random (seeded) or first", choices=("random", "first"))


def subset_keys(native_size: int | None, holdout: bool) -> dict[str, Key]:
    """The keys every dataset of real items has: n, seed, pick, (size), (holdout)."""
    keys = {"n": n_key(), "seed": seed_key(), "pick": pick_key()}
    if native_size is not None:
        keys["size"] = size_key(native_size)
    if holdout:
        keys["holdout"] = holdout_key()
    return keys


def split_indices(n_total: int, split: str, holdout: float, name: str) -> np.ndarray:
    """Sorted indices (into ``range(n_total)``) of the items in ``split``; see the module docstring."""
    n_test = round(holdout * n_total)
    if split == "test" and n_test == 0:
        raise DatasetError(f"{name}: holdout={holdout!r} of {n_total} items leaves no test split")
    if split == "train" and n_test >= n_total:
        raise DatasetError(f"{name}: holdout={holdout!r} of {n_total} items leaves no training split")
    if n_test == 0:
        return np.arange(n_total)
    perm = np.random.default_rng(HOLDOUT_SEED).permutation(n_total)
    chosen = perm[:n_test] if split == "test" else perm[n_test:]
    return np.sort(chosen)


def pick_indices(n_avail: int, spec: DataSpec) -> np.ndarray:
    """Indices (into ``range(n_avail)``) of the items kept by the keys ``n``, ``pick`` and ``seed``."""
    n = spec.get("n")
    if n is None:
        return np.arange(n_avail)
    if n > n_avail:
        raise DatasetError(f"{spec.name}: n={n} but the {spec.split} split has only {n_avail} items")
    if spec.get("pick") == "first":
        return np.arange(n)
    rng = np.random.default_rng(spec.get("seed"))
    return np.sort(rng.choice(n_avail, size=n, replace=False))


def uint8_to_unit(a: np.ndarray) -> torch.Tensor:
    """uint8 pixels as float32 in [-1, 1]: ``p / 127.5 - 1``."""
    a = np.ascontiguousarray(a)
    if not a.flags.writeable:  # a view of a bytes buffer: torch.from_numpy wants writable memory
        a = a.copy()
    t = torch.from_numpy(a).to(torch.float32)
    return t.div_(127.5).sub_(1.0)


def resize(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """``(N, C, H, W)`` images resized to ``size x size``: antialiased bilinear, clamped to [-1, 1].

    No-op when ``size`` is None or the images already have that size. Antialiasing only acts when
    shrinking (for enlarging it equals plain bilinear up to rounding), so it is switched off there,
    which is faster. Works in chunks to bound the temporary memory.
    """
    if size is None or x.shape[-2:] == (size, size):
        return x
    antialias = size < x.shape[-2] or size < x.shape[-1]
    out = torch.empty((x.shape[0], x.shape[1], size, size), dtype=torch.float32)
    step = 4096
    for i in range(0, x.shape[0], step):
        y = F.interpolate(x[i:i + step], size=(size, size), mode="bilinear", align_corners=False,
                          antialias=antialias)
        out[i:i + step] = y.clamp_(-1.0, 1.0)
    return out


def image_dataset(x: torch.Tensor, labels: torch.Tensor | None, meta: dict) -> Dataset:
    """A Dataset of images in [-1, 1] (the spec string is filled in by ``load``)."""
    return Dataset(x=x.contiguous(), labels=labels, spec="", kind="image", value_range=IMAGE_RANGE, meta=meta)


def labels_tensor(labels: np.ndarray | None) -> torch.Tensor | None:
    if labels is None:
        return None
    return torch.from_numpy(np.asarray(labels, dtype=np.int64).copy())
