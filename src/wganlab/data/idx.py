"""IDX files (the MNIST / Fashion-MNIST format) and the ``mnist`` and ``fashion-mnist`` datasets.

IDX layout (big-endian): a 4-byte magic ``0x00 0x00 TT NN`` (``TT`` the element type, ``0x08`` =
unsigned byte; ``NN`` the number of dimensions), then ``NN`` uint32 sizes, then the data. Images are
``0x00000803`` (N x rows x cols ubyte), labels ``0x00000801`` (N ubyte). Files may be gzip-compressed
(recognised by the gzip magic bytes, whatever the file name). Every problem (bad gzip, wrong magic,
short or over-long data, image and label counts that differ) raises :class:`DatasetError` naming the
file.

Where the files are looked for, in order, for dataset ``fashion-mnist`` (``mnist`` likewise, without
the system folder): ``data_root/fashion-mnist``, ``data_root/FashionMNIST/raw`` (torchvision's
layout), ``data_root``, then ``/usr/share/datasets/fashion-mnist`` (Debian package
``dataset-fashion-mnist``). File names: ``train-images-idx3-ubyte[.gz]``,
``train-labels-idx1-ubyte[.gz]``, ``t10k-...`` for the test split (``train-images.idx3-ubyte``
spellings are accepted too).

Keys: ``n``, ``seed``, ``pick`` (see :mod:`wganlab.data.common`) and ``size`` (default: the files'
own size, 28 for the real data sets). Images are ``(N, 1, size, size)`` in [-1, 1]; labels 0..9.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from wganlab.data.common import image_dataset, labels_tensor, pick_indices, resize, subset_keys, uint8_to_unit
from wganlab.data.spec import DatasetInfo, DataSpec, register
from wganlab.errors import DatasetError

IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
MAGIC_IMAGES = 0x00000803
MAGIC_LABELS = 0x00000801
_GZIP_MAGIC = b"\x1f\x8b"

#: folders searched after ``data_root`` (tests may change this)
SYSTEM_DIRS: dict[str, list[Path]] = {
    "fashion-mnist": [Path("/usr/share/datasets/fashion-mnist")],
    "mnist": [],
}
_SUBDIRS = {"fashion-mnist": ["fashion-mnist", "FashionMNIST/raw"], "mnist": ["mnist", "MNIST/raw"]}
_PREFIX = {"train": "train", "test": "t10k"}


def read_bytes(path: str | os.PathLike) -> bytes:
    """The file's content, gunzipped when it starts with the gzip magic bytes."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e.strerror or e})") from None
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise DatasetError(f"{path}: truncated gzip file (compressed data ends early)") from None
    except (OSError, zlib.error) as e:
        raise DatasetError(f"{path}: corrupt gzip file ({e})") from None


def parse_idx(buf: bytes, path: str | os.PathLike = "<bytes>", magic: int | None = None) -> np.ndarray:
    """Decode an IDX byte string; with ``magic`` given, require exactly that magic number.

    The array is a read-only view of ``buf`` (native byte order for multi-byte types).
    """
    if len(buf) < 4:
        raise DatasetError(f"{path}: too short for an IDX header ({len(buf)} bytes)")
    found = struct.unpack(">I", buf[:4])[0]
    if buf[0] != 0 or buf[1] != 0 or buf[2] not in IDX_DTYPES or buf[3] == 0:
        raise DatasetError(f"{path}: not an IDX file (magic number 0x{found:08X})")
    if magic is not None and found != magic:
        raise DatasetError(f"{path}: wrong IDX magic number 0x{found:08X}, expected 0x{magic:08X}")
    ndim = buf[3]
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise DatasetError(f"{path}: truncated IDX header ({len(buf)} bytes, need {header})")
    dims = struct.unpack(f">{ndim}I", buf[4:header])
    dtype = IDX_DTYPES[buf[2]]
    count = math.prod(dims)  # exact: numpy's int64 product wraps around for huge headers
    want = count * dtype.itemsize
    have = len(buf) - header
    shape = "x".join(str(d) for d in dims)
    if have < want:
        raise DatasetError(f"{path}: truncated data: header says {shape} ({want} bytes), file holds {have}")
    if have > want:
        raise DatasetError(f"{path}: {have - want} unexpected bytes after the {shape} data")
    if math.prod(max(d, 1) for d in dims) * dtype.itemsize >= 2**63:  # numpy refuses such a shape, even empty
        raise DatasetError(f"{path}: header says {shape}, larger than any array")
    a = np.frombuffer(buf, dtype=dtype, count=count, offset=header).reshape(dims)
    return a.astype(dtype.newbyteorder("="), copy=False) if dtype.itemsize > 1 else a


def read_idx(path: str | os.PathLike, magic: int | None = None) -> np.ndarray:
    """Read an IDX file (raw or gzipped) as a numpy array; see :func:`parse_idx`."""
    return parse_idx(read_bytes(path), path, magic)


def read_idx_pair(images: str | os.PathLike, labels: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``(N, rows, cols)`` uint8 images and ``(N,)`` int64 labels, checked to agree in count."""
    x = read_idx(images, MAGIC_IMAGES)
    y = read_idx(labels, MAGIC_LABELS)
    if x.shape[0] != y.shape[0]:
        raise DatasetError(f"{images}: {x.shape[0]} images but {labels} has {y.shape[0]} labels")
    return x, y.astype(np.int64)


def write_idx(path: str | os.PathLike, a: np.ndarray, compress: bool | None = None) -> Path:
    """Write ``a`` as an IDX file (gzip-compressed when ``compress`` or the name ends in ``.gz``)."""
    path = Path(path)
    a = np.asarray(a)
    codes = {v.str.lstrip("<>|="): k for k, v in IDX_DTYPES.items()}
    code = codes.get(a.dtype.str.lstrip("<>|="))
    if code is None or a.ndim == 0 or a.ndim > 255:
        raise DatasetError(f"{path}: cannot write dtype {a.dtype} with {a.ndim} dimensions as IDX")
    body = (bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
            + np.ascontiguousarray(a, dtype=IDX_DTYPES[code]).tobytes())
    if compress or (compress is None and path.suffix == ".gz"):
        body = gzip.compress(body, compresslevel=6)
    path.write_bytes(body)
    return path


def _find_file(folder: Path, prefix: str, kind: str) -> Path | None:
    nd = 3 if kind == "images" else 1
    for stem in (f"{prefix}-{kind}-idx{nd}-ubyte", f"{prefix}-{kind}.idx{nd}-ubyte"):
        for suffix in (".gz", ""):
            p = folder / (stem + suffix)
            if p.is_file():
                return p
    return None


def _search_dirs(name: str, data_root: Path | None) -> list[Path]:
    dirs = []
    if data_root is not None:
        dirs += [data_root / s for s in _SUBDIRS[name]] + [data_root]
    return dirs + list(SYSTEM_DIRS[name])


def find_files(name: str, split: str, data_root: Path | None) -> tuple[Path, Path] | None:
    """``(images, labels)`` paths of ``split`` for ``name``, or None when not found."""
    prefix = _PREFIX[split]
    for d in _search_dirs(name, data_root):
        im, lab = _find_file(d, prefix, "images"), _find_file(d, prefix, "labels")
        if im is not None and lab is not None:
            return im, lab
    return None


def _how_to_get(name: str) -> str:
    if name == "fashion-mnist":
        return ("install it with `apt-get install dataset-fashion-mnist` (files in "
                "/usr/share/datasets/fashion-mnist) or pass --data-root DIR holding the IDX files")
    return ("download the four IDX files (train-images-idx3-ubyte.gz, ...) and pass --data-root DIR "
            "holding them (directly or in DIR/mnist)")


def _loader(name: str):
    def load(spec: DataSpec, data_root: Path | None):
        found = find_files(name, spec.split, data_root)
        if found is None:
            where = ", ".join(str(d) for d in _search_dirs(name, data_root)) or "nowhere (no --data-root)"
            raise DatasetError(f"{name}: {_PREFIX[spec.split]}-images-idx3-ubyte[.gz] and labels not found "
                               f"(looked in {where}); {_how_to_get(name)}")
        images, labels = read_idx_pair(*found)
        n_split = images.shape[0]
        idx = pick_indices(n_split, spec)
        if len(idx) < n_split:
            images, labels = images[idx], labels[idx]
        x = resize(uint8_to_unit(images)[:, None], spec.get("size"))
        meta = {"n_split": n_split, "files": [str(found[0]), str(found[1])]}
        return image_dataset(x, labels_tensor(labels), meta)
    return load


def _locator(name: str):
    def locate(data_root: Path | None) -> str:
        tr, te = find_files(name, "train", data_root), find_files(name, "test", data_root)
        if tr and te:
            return f"found in {tr[0].parent}"
        if tr or te:
            return f"only the {'train' if tr else 'test'} split found, in {(tr or te)[0].parent}"
        return "not found: " + _how_to_get(name)
    return locate


register(DatasetInfo(
    name="fashion-mnist",
    kind="image",
    description="Fashion-MNIST, 28x28 grey, 60,000 train / 10,000 test, 10 classes",
    keys=subset_keys(28, holdout=False),
    loader=_loader("fashion-mnist"),
    locate=_locator("fashion-mnist"),
    aliases=("fashion_mnist", "fashionmnist", "fmnist"),
))

register(DatasetInfo(
    name="mnist",
    kind="image",
    description="MNIST digits, 28x28 grey, 60,000 train / 10,000 test, from --data-root",
    keys=subset_keys(28, holdout=False),
    loader=_loader("mnist"),
    locate=_locator("mnist"),
))
