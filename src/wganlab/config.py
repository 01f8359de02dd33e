"""Typed configs: dataclasses with presets, file loading and ``key=value`` overrides checked by type.

Every experiment and the training loop describe their settings as a flat dataclass; this module turns
user input into such a dataclass or raises a one-line :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from wganlab.errors import ConfigError

#: the experiments' presets: toy scale / the paper's settings cut to ~10 min on a core / the paper's own
PRESET_NAMES = ("quick", "medium", "paper")

#: the most random projections a sliced metric may be asked for (CLI and training configs): each projects
#: every point, so work and memory grow with it; larger requests are refused before any allocation
MAX_PROJECTIONS = 65_536

#: option names that were renamed (old -> new; issue 13's one vocabulary for patch options, the same from the
#: CLI to the kernel): an old name is refused with a message naming the new one, never silently ignored
RENAMED_KEYS = {"projections": "n_projections", "stride": "patch_stride"}


def renamed_key_error(key: str, valid) -> ConfigError | None:
    """The one-line error for ``key`` when it is the old name of one of the ``valid`` keys, else None."""
    new = RENAMED_KEYS.get(key)
    return ConfigError(f"{key!r} was renamed {new!r}") if new in valid else None


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(key: str, value: Any, tp: Any, from_text: bool) -> Any:
    """``value`` converted to type ``tp`` (int, float, str, bool, ``X | None``, ``tuple[X, ...]``)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (from_text and isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for a in inner:
            try:
                return _coerce(key, value, a, from_text)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin is tuple:
        if from_text and isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        item = args[0] if args else str
        return tuple(_coerce(key, v, item, from_text) for v in value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_text and isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if from_text and isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if from_text and isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    raise ConfigError(f"{key}: unsupported config type {tp}")


def replace(cfg, values: dict, *, from_text: bool = False):
    """A copy of dataclass ``cfg`` with ``values`` applied; unknown keys and wrong types raise."""
    types_ = _field_types(type(cfg))
    unknown = sorted(set(values) - set(types_))
    for key in unknown:
        if (err := renamed_key_error(key, types_)) is not None:
            raise err
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(unknown)} for {type(cfg).__name__}; valid keys: "
                          f"{', '.join(types_)}")
    return dataclasses.replace(cfg, **{k: _coerce(k, v, types_[k], from_text) for k, v in values.items()})


def parse_overrides(pairs: list[str] | None) -> dict[str, str]:
    """``["key=value", ...]`` as a dict of strings; a pair without ``=`` raises."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {pair!r} is not of the form key=value")
        out[key.strip()] = value.strip()
    return out


def load_file(path: str | Path) -> dict:
    """The key/value table of a ``.json`` or ``.toml`` config file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text())
        elif path.suffix == ".toml":
            data = tomllib.loads(path.read_text())
        else:
            raise ConfigError(f"{path}: config files must be .json or .toml")
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: cannot parse ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table of key = value")
    return data


def resolve(cls, presets: dict[str, dict], preset: str | None = None, file: str | Path | None = None,
            overrides: list[str] | dict[str, str] | None = None):
    """``cls()`` with, in order, a named preset, a config file and overrides (``key=value`` strings or a
    ``{key: text}`` table) applied: the one preset mechanism of training runs and experiments."""
    cfg = cls()
    if preset is not None:
        if preset not in presets:
            raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(presets)}")
        cfg = replace(cfg, presets[preset])
    if file is not None:
        cfg = replace(cfg, load_file(file))
    if not isinstance(overrides, dict):
        overrides = parse_overrides(overrides)
    return replace(cfg, overrides, from_text=True)


def to_dict(cfg) -> dict:
    """JSON-ready dict of a config dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))
