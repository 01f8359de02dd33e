"""Dataset spec strings, the :class:`Dataset` object and the registry of dataset families.

A spec string names one data set: ``name[:split][:key=value...]``, for example
``fashion-mnist:train:n=5000:size=32``, ``squares:n=1000:size=32``, ``gauss:d=20:n=500`` or
``digits:test:size=16``.

* ``name`` is a registered dataset (see :func:`available`); case does not matter.
* ``split`` is ``train`` (the default) or ``test``. Datasets with an official test split use it
  (Fashion-MNIST/MNIST ``t10k``, CIFAR-10 ``test_batch``); the others hold out a fixed fraction
  (key ``holdout``) of their items as ``test``; generated vector data draws the test split from an
  independent random stream. Train and test never overlap.
* ``key=value`` options are checked against the dataset's own keys: an unknown key, a value of the
  wrong type or out of range raises a one-line :class:`~wganlab.errors.DatasetError` that names the
  key and lists the valid ones. Numbers may be written as fractions (``crop=90/128``).

``str(parse_spec(s))`` is the canonical form: lower-case name, the split always written, options
sorted by key with canonical values. ``parse_spec(str(parse_spec(s))) == parse_spec(s)``.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from wganlab.errors import DatasetError

SPLITS = ("train", "test")
DEFAULT_SEED = 0

_INT_RE = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class Key:
    """One option of a dataset: its type (``int``, ``float`` or ``str``), default and bounds.

    ``default=None`` with ``required=False`` means "not set" (for example ``n``: all items).
    """

    type: type
    default: Any
    doc: str
    min: float | None = None
    max: float | None = None
    min_open: bool = False  # the bound ``min`` itself is excluded
    max_open: bool = False  # the bound ``max`` itself is excluded
    choices: tuple | None = None
    required: bool = False

    def describe_type(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(str(c) for c in self.choices)
        if self.type is int:
            return "an integer"
        if self.type is float:
            return "a number (e.g. 0.5 or 1/6)"
        return "text"

    def parse(self, text: str, dataset: str, key: str) -> Any:
        """Convert the text of a spec value and check it; DatasetError naming the key otherwise."""
        value: Any
        if self.type is int:
            if not _INT_RE.fullmatch(text.strip()):
                raise DatasetError(
                    f"{dataset}: key '{key}' expects {self.describe_type()}, got {text!r}")
            value = int(text)
        elif self.type is float:
            value = _parse_number(text)
            if value is None:
                raise DatasetError(
                    f"{dataset}: key '{key}' expects {self.describe_type()}, got {text!r}")
        else:
            value = text
            if value == "":
                raise DatasetError(f"{dataset}: key '{key}' has an empty value")
        self.check(value, dataset, key)
        return value

    def check(self, value: Any, dataset: str, key: str) -> None:
        if self.choices is not None and value not in self.choices:
            raise DatasetError(
                f"{dataset}: key '{key}' must be {self.describe_type()}, got {value!r}")
        if self.min is not None and (value < self.min or (self.min_open and value == self.min)):
            op = ">" if self.min_open else ">="
            raise DatasetError(f"{dataset}: key '{key}' must be {op} {_fmt(self.min)}, got {_fmt(value)}")
        if self.max is not None and (value > self.max or (self.max_open and value == self.max)):
            op = "<" if self.max_open else "<="
            raise DatasetError(f"{dataset}: key '{key}' must be {op} {_fmt(self.max)}, got {_fmt(value)}")


def _parse_number(text: str) -> float | None:
    """A finite float from ``"0.5"``, ``"1e-3"`` or a fraction ``"90/128"``; None if unreadable."""
    t = text.strip()
    parts = t.split("/")
    try:
        if len(parts) == 1:
            v = float(t)
        elif len(parts) == 2:
            den = float(parts[1])
            if den == 0:
                return None
            v = float(parts[0]) / den
        else:
            return None
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _fmt(value: Any) -> str:
    """Canonical text of an option value (floats by ``repr``, so they round-trip exactly)."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return f"{value:.1f}"
        return repr(value)
    return str(value)


# --------------------------------------------------------------------------------------------------
# The Dataset object


@dataclass(eq=False)
class Dataset:
    """A loaded data set.

    Attributes:
        x: images ``(N, C, H, W)`` float32 with values in ``[-1, 1]`` (the papers' convention:
            ``-1`` black, ``+1`` white; uint8 pixels ``p`` map to ``p / 127.5 - 1``), or vectors
            ``(N, d)`` float32 (unbounded).
        labels: ``(N,)`` int64 class labels (mixture component for Gaussian mixtures), or None.
        spec: canonical spec string, always with the split and the seed that produced the data, so
            ``load(ds.spec)`` rebuilds the same tensor.
        kind: ``"image"`` or ``"vector"``.
        value_range: ``(-1.0, 1.0)`` for images, ``None`` for vectors.
        meta: JSON-friendly facts: ``name``, ``split``, ``options`` (every key, defaults filled in),
            ``n_split`` (items in the split before subsetting), source files, generator parameters.
    """

    x: torch.Tensor
    labels: torch.Tensor | None
    spec: str
    kind: Literal["image", "vector"]
    value_range: tuple[float, float] | None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in ("image", "vector"):
            raise DatasetError(f"Dataset.kind must be 'image' or 'vector', got {self.kind!r}")
        want = 4 if self.kind == "image" else 2
        if self.x.ndim != want:
            raise DatasetError(f"{self.kind} data must have {want} dimensions, "
                               f"got shape {tuple(self.x.shape)}")
        if self.x.dtype != torch.float32:
            raise DatasetError(f"Dataset.x must be float32, got {self.x.dtype}")
        if self.labels is not None and (self.labels.shape != (self.x.shape[0],)
                                        or self.labels.dtype != torch.int64):
            raise DatasetError(f"Dataset.labels must be int64 of shape ({self.x.shape[0]},), "
                               f"got {self.labels.dtype} {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one item: ``(C, H, W)`` or ``(d,)``."""
        return tuple(self.x.shape[1:])

    def __repr__(self) -> str:
        lab = "None" if self.labels is None else f"{tuple(self.labels.shape)}"
        return (f"Dataset({self.spec!r}, kind={self.kind!r}, x={tuple(self.x.shape)}, labels={lab}, "
                f"value_range={self.value_range})")


# --------------------------------------------------------------------------------------------------
# Registry


Loader = Callable[["DataSpec", "Path | None"], Dataset]
Locator = Callable[["Path | None"], str]


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset family.

    ``loader(spec, data_root)`` receives a validated spec whose ``seed`` option is set and returns the
    Dataset; ``locate(data_root)`` says cheaply (file existence only) whether the data is here.
    """

    name: str
    kind: Literal["image", "vector"]
    description: str
    keys: Mapping[str, Key]
    loader: Loader
    locate: Locator
    aliases: tuple[str, ...] = ()


_REGISTRY: dict[str, DatasetInfo] = {}
_ALIASES: dict[str, str] = {}


def register(info: DatasetInfo) -> DatasetInfo:
    """Add a dataset family to the registry (called once by each family module)."""
    for nm in (info.name, *info.aliases):
        if nm in _ALIASES:
            raise RuntimeError(f"dataset name {nm!r} registered twice")
        _ALIASES[nm] = info.name
    _REGISTRY[info.name] = info
    return info


def get_info(name: str) -> DatasetInfo:
    """The registered family for ``name`` (or an alias); DatasetError listing the names otherwise."""
    key = name.strip().lower()
    if key in _ALIASES:
        return _REGISTRY[_ALIASES[key]]
    names = sorted(_REGISTRY)
    close = difflib.get_close_matches(key, list(_ALIASES), n=1)
    hint = f" (did you mean '{_ALIASES[close[0]]}'?)" if close else ""
    raise DatasetError(f"unknown dataset '{name}'{hint}; available: {', '.join(names)}")


def dataset_names() -> list[str]:
    """Registered dataset names, sorted."""
    return sorted(_REGISTRY)


# --------------------------------------------------------------------------------------------------
# Spec


@dataclass
class DataSpec:
    """A parsed, validated spec: dataset ``name``, ``split`` and the ``options`` given explicitly."""

    name: str
    split: str = "train"
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        info = get_info(self.name)
        self.name = info.name
        if self.split not in SPLITS:
            raise DatasetError(f"{self.name}: unknown split '{self.split}'; expected train or test")
        checked = {}
        for k, v in self.options.items():
            key = _key(info, k)
            if isinstance(v, str) and key.type is not str:
                v = key.parse(v, info.name, k)
            elif key.type is float and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            elif not isinstance(v, key.type) or isinstance(v, bool):
                raise DatasetError(f"{info.name}: key '{k}' expects {key.describe_type()}, got {v!r}")
            else:
                key.check(v, info.name, k)
            checked[k] = v
        for k, key in info.keys.items():
            if key.required and k not in checked:
                raise DatasetError(f"{info.name}: key '{k}' is required ({info.name}:{k}=...): {key.doc}")
        self.options = checked

    @property
    def info(self) -> DatasetInfo:
        return _REGISTRY[self.name]

    def get(self, key: str) -> Any:
        """The option's value, or its default."""
        k = _key(self.info, key)
        return self.options.get(key, k.default)

    def resolved(self) -> dict[str, Any]:
        """Every key of the dataset with its value (defaults filled in)."""
        return {k: self.options.get(k, key.default) for k, key in sorted(self.info.keys.items())}

    def replace(self, split: str | None = None, **options: Any) -> DataSpec:
        """A copy with another split and/or options set (``None`` removes an option)."""
        opts = dict(self.options)
        for k, v in options.items():
            if v is None:
                opts.pop(k, None)
            else:
                opts[k] = v
        return DataSpec(self.name, split or self.split, opts)

    def __str__(self) -> str:
        parts = [self.name, self.split]
        parts += [f"{k}={_fmt(v)}" for k, v in sorted(self.options.items())]
        return ":".join(parts)


def _key(info: DatasetInfo, k: str) -> Key:
    if k not in info.keys:
        valid = ", ".join(sorted(info.keys))
        raise DatasetError(f"{info.name}: unknown key '{k}'; valid keys: {valid}")
    return info.keys[k]


def parse_spec(spec: str | DataSpec) -> DataSpec:
    """Parse ``name[:split][:key=value...]`` into a validated :class:`DataSpec`.

    >>> str(parse_spec("Gauss8:n=500"))
    'gauss8:train:n=500'
    """
    if isinstance(spec, DataSpec):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise DatasetError(f"empty dataset spec {spec!r}; expected name[:split][:key=value...]")
    tokens = spec.strip().split(":")
    info = get_info(tokens[0])
    if any(not t.strip() for t in tokens[1:]):
        raise DatasetError(f"{info.name}: empty field in spec '{spec}' (a trailing ':' or '::'); "
                           "expected name[:split][:key=value...]")
    split = "train"
    rest = tokens[1:]
    if rest and "=" not in rest[0]:
        split = rest[0].strip().lower()
        if split not in SPLITS:
            raise DatasetError(f"{info.name}: unknown split '{rest[0]}'; expected train or test")
        rest = rest[1:]
    raw: dict[str, str] = {}
    last: str | None = None
    for tok in rest:
        if "=" not in tok:
            # a ':' inside a text value (a path): glue it back to the previous value
            if last is not None and info.keys.get(last, Key(int, None, "")).type is str:
                raw[last] += ":" + tok
                continue
            raise DatasetError(f"{info.name}: expected key=value, got '{tok}' in spec '{spec}'; "
                               f"valid keys: {', '.join(sorted(info.keys))}")
        k, v = tok.split("=", 1)
        k = k.strip().lower()
        if k in raw:
            raise DatasetError(f"{info.name}: key '{k}' given twice in spec '{spec}'")
        _key(info, k)
        key = info.keys[k]
        raw[k] = v if (key.type is str and key.choices is None) else v.strip()
        last = k
    return DataSpec(info.name, split, dict(raw))


# --------------------------------------------------------------------------------------------------
# Facade


def _root(data_root: str | os.PathLike | None) -> Path | None:
    return None if data_root is None else Path(data_root).expanduser()


def load(spec: str | DataSpec, data_root: str | os.PathLike | None = None, *,
         seed: int | None = None) -> Dataset:
    """Load the data set named by ``spec``.

    ``seed`` (default 0) drives every random choice (subsets, generated data); a ``seed=`` in the spec
    wins over the argument. The returned ``Dataset.spec`` is canonical and includes the seed.
    Files are looked for in ``data_root`` (and, for Fashion-MNIST, in the Debian package's folder).
    """
    ds_spec = parse_spec(spec)
    if "seed" not in ds_spec.options:
        s = DEFAULT_SEED if seed is None else seed
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise DatasetError(f"seed must be a non-negative integer, got {s!r}")
        ds_spec = ds_spec.replace(seed=int(s))
    ds = ds_spec.info.loader(ds_spec, _root(data_root))
    ds.spec = str(ds_spec)
    ds.meta = {"name": ds_spec.name, "split": ds_spec.split, "options": ds_spec.resolved(), **ds.meta}
    return ds


def available(data_root: str | os.PathLike | None = None) -> dict[str, str]:
    """Every dataset name mapped to one line: what it is, and whether its files are found here."""
    root = _root(data_root)
    out = {}
    for name in dataset_names():
        info = _REGISTRY[name]
        out[name] = f"{info.description} [{info.locate(root)}]"
    return out


def describe(name: str) -> str:
    """A few lines on one dataset: description and every key with its type, default and meaning."""
    info = get_info(name)
    lines = [f"{info.name}: {info.description}"]
    if info.aliases:
        lines.append(f"  aliases: {', '.join(info.aliases)}")
    for k, key in sorted(info.keys.items()):
        default = "required" if key.required else (
            "not set" if key.default is None else f"default {_fmt(key.default)}")
        lines.append(f"  {k}: {key.describe_type()}, {default}. {key.doc}")
    return "\n".join(lines)
