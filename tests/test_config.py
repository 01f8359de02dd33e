"""Typed configs: presets, files, overrides checked by type."""

import json
from dataclasses import dataclass

import numpy as np
import pytest

from wganlab.config import parse_overrides, replace, resolve, to_dict
from wganlab.errors import ConfigError


@dataclass
class Cfg:
    steps: int = 10
    lr: float = 1e-3
    name: str = "a"
    flag: bool = False
    m: int | None = 64
    channels: tuple[int, ...] = (1, 2)


def test_overrides_are_converted_by_field_type():
    cfg = resolve(Cfg, {}, overrides=["steps=20", "lr=0.5", "name=b", "flag=true", "m=none", "channels=3,4,5"])
    assert (cfg.steps, cfg.lr, cfg.name, cfg.flag, cfg.m, cfg.channels) == (20, 0.5, "b", True, None, (3, 4, 5))
    assert resolve(Cfg, {}, overrides=["m=7", "lr=3"]).m == 7


@pytest.mark.parametrize(("pair", "msg"), [
    ("steps=ten", "steps: expected an integer, got 'ten'"),
    ("lr=fast", "lr: expected a number"),
    ("flag=maybe", "flag: expected true or false"),
    ("channels=1,x", "channels: expected an integer"),
    ("stpes=3", "unknown config key(s) stpes"),
    ("steps", "not of the form key=value"),
])
def test_bad_overrides_name_the_problem(pair, msg):
    with pytest.raises(ConfigError) as e:
        resolve(Cfg, {}, overrides=[pair])
    assert msg in str(e.value)


def test_presets_files_and_precedence(tmp_path):
    presets = {"big": {"steps": 1000, "name": "preset"}}
    f = tmp_path / "c.toml"
    f.write_text('name = "file"\nlr = 0.25\n')
    cfg = resolve(Cfg, presets, "big", f, ["lr=0.125"])
    assert (cfg.steps, cfg.name, cfg.lr) == (1000, "file", 0.125)
    j = tmp_path / "c.json"
    j.write_text(json.dumps({"steps": "many"}))
    with pytest.raises(ConfigError, match="steps: expected an integer"):
        resolve(Cfg, presets, file=j)  # values in files are typed: a string is not an int
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        resolve(Cfg, presets, "huge")
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = = 3")
    with pytest.raises(ConfigError, match="cannot parse"):
        resolve(Cfg, presets, file=bad)
    with pytest.raises(ConfigError, match="no such config file"):
        resolve(Cfg, presets, file=tmp_path / "missing.json")


def test_round_trip_through_json():
    cfg = replace(Cfg(), {"channels": [5, 6]})
    assert replace(Cfg(), json.loads(json.dumps(to_dict(cfg)))) == cfg
    assert parse_overrides(["a = 1 "]) == {"a": "1"}


def test_renamed_keys_are_refused_naming_the_new_key(tmp_path):
    from wganlab.bench.cases import resolve_sizes
    from wganlab.experiments import EXPERIMENTS
    from wganlab.metrics import compute
    from wganlab.train import PRESETS, TrainConfig

    f = tmp_path / "old.toml"
    f.write_text("projections = 64\n")
    with pytest.raises(ConfigError, match=r"^'projections' was renamed 'n_projections'$"):
        resolve(TrainConfig, PRESETS, file=f)
    with pytest.raises(ConfigError, match=r"^'projections' was renamed 'n_projections'$"):
        resolve(TrainConfig, PRESETS, overrides=["projections=64"])
    with pytest.raises(ConfigError, match=r"^'projections' was renamed 'n_projections'$"):
        EXPERIMENTS["blur-vs-real"].make_config("quick", {"projections": "16"})
    with pytest.raises(ConfigError, match=r"^'projections' was renamed 'n_projections'$"):
        resolve_sizes(["patch-swd"], overrides={"patch-swd": {"projections": "8"}})
    with pytest.raises(ConfigError, match=r"^'stride' was renamed 'patch_stride'$"):
        compute("patch-swd", np.zeros((2, 1, 4, 4)), np.zeros((2, 1, 4, 4)), stride=2)
    # an old name that is not a renamed field of this config stays an unknown key
    with pytest.raises(ConfigError, match="unknown config key"):
        replace(Cfg(), {"projections": 3})
    assert resolve(TrainConfig, PRESETS, overrides={"n_projections": "64"}).n_projections == 64
