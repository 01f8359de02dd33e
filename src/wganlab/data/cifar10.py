"""CIFAR-10 from its python batches, read without executing pickled code.

The files ``data_batch_1`` .. ``data_batch_5`` (train, 50,000 images) and ``test_batch`` (10,000) are
pickles of a dict with ``data`` (N x 3072 uint8: 1024 red, 1024 green, 1024 blue values, each a
row-major 32 x 32 plane) and ``labels`` (N ints in 0..9). A pickle can name any Python callable, so
they are read with :class:`SafeUnpickler`, whose ``find_class`` resolves only:

* ``numpy.core.multiarray._reconstruct`` / ``numpy._core.multiarray._reconstruct``, ``numpy.ndarray``,
  ``numpy.dtype`` (array reconstruction), ``...multiarray.scalar`` and ``...numeric._frombuffer``
  (numpy scalars, protocol-5 arrays), each to a stand-in that keeps what the pickle gives it apart from numpy
  until it checks out (plain numbers, a dtype state numpy itself writes, as many bytes as the shape needs) and then
  copies the bytes into an array: numpy's own ``dtype.__setstate__`` takes any flags (a uint8 dtype marked as
  holding objects reached numpy's internal errors);
* ``_codecs.encode``, which Python 3 uses for ``bytes`` in protocol-2 pickles, replaced by a function
  that only turns a str into latin-1 bytes.

Any other global (``os.system``, ``builtins.eval``, ...) raises :class:`DatasetError` before anything is
called, and so does a memo index beyond the file's length (the unpickler sizes and clears its memo for the largest
index it meets: 9 random bytes naming index 10^9 asked for 16 GB). The files are looked for in
``data_root/cifar-10-batches-py``, ``data_root/cifar10`` and
``data_root``. Keys: ``n``, ``seed``, ``pick`` (see :mod:`wganlab.data.common`) and ``size``
(default: no resize, 32). Images are ``(N, 3, size, size)`` in [-1, 1].
"""

from __future__ import annotations

import io
import math
import os
import pickle
import pickletools
import warnings
from pathlib import Path

import numpy as np

from wganlab.data.common import image_dataset, labels_tensor, pick_indices, resize, subset_keys, uint8_to_unit
from wganlab.data.spec import DatasetInfo, DataSpec, register
from wganlab.errors import DatasetError

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
_SUBDIRS = ("cifar-10-batches-py", "cifar10", ".")
_HOW = ("download cifar-10-python.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html), unpack it and "
        "pass --data-root DIR (the folder holding cifar-10-batches-py)")


def _latin1_encode(obj, encoding="latin1", errors="strict"):
    """The only use of ``_codecs.encode`` a protocol-2 pickle of bytes needs."""
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1", "iso-8859-1") or errors != "strict":
        raise pickle.UnpicklingError("_codecs.encode used for something other than bytes")
    return obj.encode("latin1")


class _Dtype:
    """``numpy.dtype(spec, align, copy)`` as a pickle builds it, of plain numbers only; its state (the BUILD that
    follows) must be the one numpy writes for that spec, up to byte order."""

    def __init__(self, spec, align=False, copy=True):
        dt = np.dtype(spec.decode("latin1") if isinstance(spec, bytes) else spec)
        if dt.kind not in "biuf" or dt.fields is not None or dt.subdtype is not None:
            raise pickle.UnpicklingError(f"a {dt} dtype, where a CIFAR-10 batch holds plain numbers")
        self.dtype = dt

    def __setstate__(self, state):
        want = self.dtype.__reduce__()[2]
        order = state[1] if isinstance(state, tuple) and len(state) == len(want) else None
        order = order.decode("latin1") if isinstance(order, bytes) else order
        if order not in ("<", ">", "|", "=") or state[2:] != want[2:]:
            raise pickle.UnpicklingError(f"a {self.dtype} dtype state numpy never writes")
        if order in "<>" and self.dtype.itemsize > 1:
            self.dtype = self.dtype.newbyteorder(order)


#: ``numpy.ndarray`` in a pickle: only a marker for :class:`_Array` (never called)
_NDARRAY = object()


class _Array:
    """``_reconstruct(ndarray, shape, dtype)`` and its state ``(version, shape, dtype, fortran, data)``: ``array``,
    from the bytes by :func:`_from_bytes` (None until the state comes)."""

    def __init__(self, subtype, shape, dtype):
        if subtype is not _NDARRAY:
            raise pickle.UnpicklingError("an array of a type other than numpy.ndarray")
        self.array = None

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) != 5:
            raise pickle.UnpicklingError("an array state numpy never writes")
        self.array = _from_bytes(state[4], state[2], state[1], "F" if state[3] else "C")


def _from_bytes(data, dt, shape, order):
    """A copy of the bytes-like ``data`` as an array of the :class:`_Dtype` ``dt``, ``shape`` and ``order``, where
    they agree."""
    if not isinstance(dt, _Dtype) or not isinstance(shape, tuple) or not all(
            isinstance(n, int) and n >= 0 for n in shape):
        raise pickle.UnpicklingError("an array without a dtype and shape numpy writes")
    try:
        buf = memoryview(data).cast("B")
    except TypeError:
        raise pickle.UnpicklingError(f"array data of type {type(data).__name__}") from None
    if buf.nbytes != math.prod(shape) * dt.dtype.itemsize:
        raise pickle.UnpicklingError(f"{buf.nbytes} bytes for a {dt.dtype} array of shape {shape}")
    order = order.decode("latin1") if isinstance(order, bytes) else order
    return np.frombuffer(buf, dt.dtype).reshape(shape, order="F" if order == "F" else "C").copy()


def _allowed_globals() -> dict[tuple[str, str], object]:
    out: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): _NDARRAY,
        ("numpy", "dtype"): _Dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for pkg in ("numpy.core", "numpy._core"):
        out[(f"{pkg}.multiarray", "_reconstruct")] = _Array
        out[(f"{pkg}.multiarray", "scalar")] = lambda dt, data: _from_bytes(data, dt, (), "C")[()]
        out[(f"{pkg}.numeric", "_frombuffer")] = _from_bytes  # numpy's (buffer, dtype, shape, order)
    return out


class SafeUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only the numpy globals of :func:`_allowed_globals`."""

    def __init__(self, file, name: str = "<pickle>"):
        super().__init__(file, encoding="bytes")
        self._name = name
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str):
        obj = self._allowed.get((module, name))
        if obj is None:
            raise DatasetError(f"{self._name}: refusing to load pickle: it names the global "
                               f"'{module}.{name}', which a CIFAR-10 batch never contains")
        return obj

    def persistent_load(self, pid):
        raise DatasetError(f"{self._name}: refusing to load pickle with persistent ids")


_MEMO_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"})


def safe_load_pickle(path: str | os.PathLike):
    """Unpickle a file with :class:`SafeUnpickler` (its opcodes first read by ``pickletools``: a memo index beyond
    the file's length is refused; 0.19 s for the 90,000 opcodes of a 30 MB batch), its arrays at the top level (a
    dict's values, a list's items) made numpy's; DatasetError naming the file on any problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a real batch raises none; a damaged one's odd arguments are errors
            for op, arg, _ in pickletools.genops(raw):
                if op.name in _MEMO_OPS and arg > len(raw):
                    raise DatasetError(f"{path}: refusing to load pickle: memo index {arg} beyond its {len(raw)} bytes")
            obj = SafeUnpickler(io.BytesIO(raw), str(path)).load()
            if isinstance(obj, dict):
                return {k: _plain(v) for k, v in obj.items()}
            return [_plain(v) for v in obj] if isinstance(obj, list) else _plain(obj)
    except DatasetError:
        raise
    except Exception as e:
        reason = " ".join(str(e).split())  # one line: the reason may quote the file's own newlines
        raise DatasetError(f"{path}: not a readable pickle ({type(e).__name__}: {reason})") from None


def _plain(v):
    """``v`` with an :class:`_Array` or :class:`_Dtype` stand-in replaced by what numpy made of it."""
    if isinstance(v, _Array):
        if v.array is None:
            raise pickle.UnpicklingError("an array without its data")
        return v.array
    return v.dtype if isinstance(v, _Dtype) else v


def read_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch: ``(N, 3, 32, 32)`` uint8 images and ``(N,)`` int64 labels, checked."""
    obj = safe_load_pickle(path)
    if not isinstance(obj, dict):
        raise DatasetError(f"{path}: expected a dict, found {type(obj).__name__}")
    d = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}
    for key in ("data", "labels"):
        if key not in d:
            raise DatasetError(f"{path}: missing key '{key}' (found {', '.join(map(str, d))})")
    data = d["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DatasetError(f"{path}: 'data' must be an N x 3072 uint8 array, found {desc}")
    try:
        labels = np.asarray(d["labels"])
    except (TypeError, ValueError):
        labels = np.asarray([None])
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DatasetError(f"{path}: 'labels' must be a list of integers")
    if labels.shape[0] != data.shape[0]:
        raise DatasetError(f"{path}: {data.shape[0]} images but {labels.shape[0]} labels")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DatasetError(f"{path}: labels outside 0..9")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def find_dir(data_root: Path | None, files: tuple[str, ...]) -> Path | None:
    if data_root is None:
        return None
    for sub in _SUBDIRS:
        d = data_root / sub
        if all((d / f).is_file() for f in files):
            return d
    return None


def _load(spec: DataSpec, data_root: Path | None):
    files = TRAIN_FILES if spec.split == "train" else TEST_FILES
    d = find_dir(data_root, files)
    if d is None:
        where = ("no --data-root given" if data_root is None
                 else f"looked in {data_root} and its {_SUBDIRS[0]}")
        raise DatasetError(f"cifar10: {', '.join(files)} not found ({where}); {_HOW}")
    parts = [read_batch(d / f) for f in files]
    images = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    labels = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
    n_split = images.shape[0]
    idx = pick_indices(n_split, spec)
    if len(idx) < n_split:
        images, labels = images[idx], labels[idx]
    x = resize(uint8_to_unit(images), spec.get("size"))
    return image_dataset(x, labels_tensor(labels), {"n_split": n_split, "folder": str(d)})


def _locate(data_root: Path | None) -> str:
    tr, te = find_dir(data_root, TRAIN_FILES), find_dir(data_root, TEST_FILES)
    if tr and te:
        return f"found in {tr}"
    if tr or te:
        return f"only the {'train' if tr else 'test'} batches found, in {tr or te}"
    return "not found: " + _HOW


register(DatasetInfo(
    name="cifar10",
    kind="image",
    description="CIFAR-10, 32x32 colour, 50,000 train / 10,000 test, 10 classes, from --data-root",
    keys=subset_keys(32, holdout=False),
    loader=_load,
    locate=_locate,
    aliases=("cifar-10", "cifar"),
))
