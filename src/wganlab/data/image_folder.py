"""A folder of PNG/JPEG images: ``folder:path=DIR``, and the aliases ``ffhq`` and ``celeba``.

Files: every ``.png``, ``.jpg`` or ``.jpeg`` (any case) under the folder, recursively, skipping names
that start with a dot, sorted by their path relative to the folder. Each image is decoded with PIL,
converted to grey (``channels=1``) or RGB (``channels=3``), centre-cropped to a square whose side is
``round(crop * short side)`` and resized to ``size x size`` (antialiased bilinear, as everywhere in
:mod:`wganlab.data`). Pixels become ``p / 127.5 - 1`` in [-1, 1]. Only the images that the split and
``n`` select are decoded. There are no labels.

* ``folder``: key ``path`` (required; a relative path is taken from the working directory, else from
  ``data_root``).
* ``ffhq``: ``data_root/ffhq`` if it exists, else ``data_root`` (or ``path=``). Default ``crop=90/128``,
  the Elnekave & Weiss reference crop of the 128 px thumbnails.
* ``celeba``: ``data_root/celeba`` if it exists, else ``data_root`` (or ``path=``). Default ``crop=1``.

Keys for all three: ``size`` (default 64), ``crop`` (fraction of the short side, in (0, 1]),
``channels`` (1 or 3, default 3), and ``n``, ``seed``, ``pick``, ``holdout`` (default 1/6; see
:mod:`wganlab.data.common`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from wganlab.data.common import image_dataset, pick_indices, resize, split_indices, subset_keys
from wganlab.data.spec import DatasetInfo, DataSpec, Key, register
from wganlab.errors import DatasetError

EXTENSIONS = (".png", ".jpg", ".jpeg")
FFHQ_CROP = 90 / 128


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted by relative path; DatasetError if none."""
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder")
    files = [p for p in folder.rglob("*")
             if p.suffix.lower() in EXTENSIONS and not p.name.startswith(".") and p.is_file()]
    if not files:
        raise DatasetError(f"{folder}: no PNG/JPEG images found")
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def read_image(path: Path, size: int, crop: float = 1.0, channels: int = 3) -> torch.Tensor:
    """One image as a ``(channels, size, size)`` float32 tensor in [-1, 1] (see module docstring)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im = im.convert("L" if channels == 1 else "RGB")
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as e:
        raise DatasetError(f"{path}: cannot read image ({e})") from None
    w, h = im.size
    side = max(1, round(crop * min(w, h)))
    left, top = (w - side) // 2, (h - side) // 2
    if (side, side) != (w, h):
        im = im.crop((left, top, left + side, top + side))
    a = np.asarray(im, dtype=np.uint8)
    t = torch.from_numpy(a.copy()).to(torch.float32).div_(127.5).sub_(1.0)
    t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)
    return resize(t[None], size)[0]


def _resolve_folder(spec: DataSpec, data_root: Path | None) -> Path:
    path = spec.get("path")
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_absolute() and not p.exists() and data_root is not None:
            p = data_root / p
        return p
    if data_root is None:
        raise DatasetError(f"{spec.name}: no folder given; pass --data-root DIR (a folder of PNG/JPEG "
                           f"images, or one holding {spec.name}/) or {spec.name}:path=DIR")
    sub = data_root / spec.name
    return sub if sub.is_dir() else data_root


def _load(spec: DataSpec, data_root: Path | None):
    folder = _resolve_folder(spec, data_root)
    files = list_images(folder)
    split = split_indices(len(files), spec.split, spec.get("holdout"), spec.name)
    idx = split[pick_indices(len(split), spec)]
    size, crop, channels = spec.get("size"), spec.get("crop"), spec.get("channels")
    x = torch.empty((len(idx), channels, size, size), dtype=torch.float32)
    for j, i in enumerate(idx):
        x[j] = read_image(files[i], size, crop, channels)
    meta = {"folder": str(folder), "n_files": len(files), "n_split": len(split)}
    return image_dataset(x, None, meta)


def _keys(crop_default: float, path_required: bool) -> dict[str, Key]:
    return {
        **subset_keys(64, holdout=True),
        "size": Key(int, 64, "image side in pixels after crop and resize", min=1, max=4096),
        "crop": Key(float, crop_default, "side of the centre square crop, as a fraction of the short side",
                    min=0.0, max=1.0, min_open=True),
        "channels": Key(int, 3, "1 (grey) or 3 (RGB)", choices=(1, 3)),
        "path": Key(str, None, "folder of PNG/JPEG images", required=path_required),
    }


def _locator(name: str):
    def locate(data_root: Path | None) -> str:
        if data_root is None:
            return "needs --data-root DIR" + ("" if name == "folder" else f" (holding {name}/ or the images)")
        d = data_root / name
        d = d if d.is_dir() else data_root
        if not d.is_dir():
            return f"not found: {d} is not a folder"
        return f"images found in {d}" if _has_images(d) else f"not found: no PNG/JPEG images in {d}"
    return locate


def _has_images(folder: Path, max_entries: int = 10_000) -> bool:
    """Whether an image file appears among the first ``max_entries`` entries under ``folder``."""
    for k, p in enumerate(folder.rglob("*")):
        if p.suffix.lower() in EXTENSIONS and not p.name.startswith("."):
            return True
        if k >= max_entries:
            break
    return False


register(DatasetInfo(
    name="folder",
    kind="image",
    description="a folder of PNG/JPEG images: folder:path=DIR (centre crop, resize, grey or RGB)",
    keys=_keys(1.0, path_required=True),
    loader=_load,
    locate=lambda root: "reads the folder given by path=DIR",
    aliases=("image-folder", "images"),
))

register(DatasetInfo(
    name="ffhq",
    kind="image",
    description="FFHQ thumbnails from data_root/ffhq (a folder of images; crop 90/128 like the reference)",
    keys=_keys(FFHQ_CROP, path_required=False),
    loader=_load,
    locate=_locator("ffhq"),
))

register(DatasetInfo(
    name="celeba",
    kind="image",
    description="CelebA images from data_root/celeba (a folder of images)",
    keys=_keys(1.0, path_required=False),
    loader=_load,
    locate=_locator("celeba"),
))
