"""Spec strings, the load facade, seeds, subsets and splits (wganlab.data.spec / common)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from wganlab.data import Dataset, DataSpec, available, dataset_names, describe, load, parse_spec
from wganlab.data.common import HOLDOUT_SEED, MAX_VALUES, pick_indices, resize, split_indices
from wganlab.errors import DatasetError, WganlabError


def _err(spec: str) -> str:
    with pytest.raises(DatasetError) as e:
        parse_spec(spec)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


# ---------------------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(("spec", "canonical"), [
    ("fashion-mnist:train:n=5000:size=32", "fashion-mnist:train:n=5000:size=32"),
    ("Fashion-MNIST:Test:SIZE=32:n=10", "fashion-mnist:test:n=10:size=32"),
    ("fmnist:n=7", "fashion-mnist:train:n=7"),
    ("squares:n=1000:size=32", "squares:train:n=1000:size=32"),
    ("gauss8:n=1000", "gauss8:train:n=1000"),
    ("gauss:d=20:n=500", "gauss:train:d=20:n=500"),
    ("gauss:shift=-1", "gauss:train:shift=-1.0"),
    ("digits:test:size=16", "digits:test:size=16"),
    ("ffhq:crop=90/128", "ffhq:train:crop=0.703125"),
    ("folder:path=/data/a:b:size=8", "folder:train:path=/data/a:b:size=8"),
    ("squares:holdout=1/6", "squares:train:holdout=0.16666666666666666"),
])
def test_canonical_form_and_round_trip(spec, canonical):
    p = parse_spec(spec)
    assert str(p) == canonical
    again = parse_spec(str(p))
    assert again == p
    assert str(again) == canonical


def test_parse_values_are_typed():
    p = parse_spec("gauss:d=3:shift=1/2:n=10")
    assert p.name == "gauss" and p.split == "train"
    assert p.options == {"d": 3, "shift": 0.5, "n": 10}
    assert isinstance(p.options["d"], int) and isinstance(p.options["shift"], float)
    assert p.get("std") == 1.0  # default
    assert parse_spec("folder:path=/x:y").get("path") == "/x:y"  # ':' inside a path survives
    assert parse_spec(p) is p


@settings(max_examples=40, deadline=None)
@given(d=st.integers(1, 10_000), n=st.integers(1, MAX_VALUES), seed=st.integers(0, 2**63),
       shift=st.floats(allow_nan=False, allow_infinity=False, width=64),
       std=st.floats(min_value=0, max_value=1e300, allow_nan=False))
def test_round_trip_property(d, n, seed, shift, std):
    p = DataSpec("gauss", "test", {"d": d, "n": n, "seed": seed, "shift": shift, "std": std})
    q = parse_spec(str(p))
    assert q == p
    assert q.options["shift"] == shift and q.options["std"] == std  # floats survive exactly


def test_an_absurd_n_is_refused_when_the_spec_is_read():
    msg = _err(f"gauss:n={MAX_VALUES + 1}")
    assert "key 'n' must be <=" in msg and str(MAX_VALUES + 1) in msg
    assert str(MAX_VALUES) in _err("gauss8:n=99999999999999999999")


def test_unknown_dataset_lists_names_and_suggests():
    msg = _err("fashon-mnist:n=3")
    assert "unknown dataset 'fashon-mnist'" in msg
    assert "did you mean 'fashion-mnist'" in msg
    for name in ("squares", "gauss8", "cifar10", "digits", "mnist"):
        assert name in msg


def test_unknown_key_names_it_and_lists_valid_keys():
    msg = _err("gauss:size=32")
    assert "unknown key 'size'" in msg
    assert "valid keys: d, n, seed, shift, std" in msg
    msg = _err("fashion-mnist:train:holdout=0.2")  # official test split: no holdout key
    assert "'holdout'" in msg and "valid keys: n, pick, seed, size" in msg


@pytest.mark.parametrize(("spec", "parts"), [
    ("gauss:d=abc", ["key 'd'", "integer", "'abc'"]),
    ("squares:n=2.5", ["key 'n'", "integer", "'2.5'"]),
    ("gauss:shift=left", ["key 'shift'", "number", "'left'"]),
    ("gauss:std=nan", ["key 'std'", "number"]),
    ("squares:holdout=1/0", ["key 'holdout'", "number"]),
    ("folder:path=/x:channels=2", ["key 'channels'", "one of 1, 3"]),
    ("digits:pick=last", ["key 'pick'", "one of random, first"]),
    ("gauss:n=0", ["key 'n'", ">= 1", "0"]),
    ("digits:holdout=1", ["key 'holdout'", "< 1"]),
    ("ffhq:crop=0", ["key 'crop'", "> 0"]),
    ("gauss:std=-1", ["key 'std'", ">= 0"]),
    ("squares:seed=-3", ["key 'seed'", ">= 0"]),
])
def test_bad_values_name_the_key_and_the_type(spec, parts):
    msg = _err(spec)
    for part in parts:
        assert part in msg, (part, msg)


@pytest.mark.parametrize(("spec", "parts"), [
    ("digits:val", ["unknown split 'val'", "train or test"]),
    ("gauss:train:d", ["expected key=value", "'d'", "valid keys"]),
    ("gauss:n=1:n=2", ["key 'n' given twice"]),
    ("folder", ["key 'path' is required"]),
    ("", ["empty dataset spec"]),
    ("gauss:", ["empty field"]),
    ("gauss:n=3::d=2", ["empty field"]),
    ("   ", ["empty dataset spec"]),
])
def test_malformed_specs(spec, parts):
    msg = _err(spec)
    for part in parts:
        assert part in msg, (part, msg)


def test_dataspec_checks_typed_options():
    assert DataSpec("gauss", options={"d": 3}).options == {"d": 3}
    assert DataSpec("gauss", options={"shift": 2}).options == {"shift": 2.0}  # int accepted for float
    with pytest.raises(DatasetError, match="key 'd' expects an integer"):
        DataSpec("gauss", options={"d": 2.5})
    with pytest.raises(DatasetError, match="key 'n' expects an integer"):
        DataSpec("gauss", options={"n": True})
    with pytest.raises(DatasetError, match="unknown split"):
        DataSpec("gauss", split="validation")
    assert issubclass(DatasetError, WganlabError)


def test_replace_and_resolved():
    p = parse_spec("digits:n=10")
    q = p.replace(split="test", n=None, size=16)
    assert str(q) == "digits:test:size=16"
    assert str(p) == "digits:train:n=10"  # unchanged
    r = q.resolved()
    assert set(r) == {"n", "seed", "pick", "size", "holdout"}
    assert r["size"] == 16 and r["n"] is None and r["pick"] == "random"


# ---------------------------------------------------------------------------------------------- facade


def test_seed_default_argument_and_spec_precedence():
    a = load("gauss8:n=50")
    assert a.spec == "gauss8:train:n=50:seed=0"
    assert torch.equal(a.x, load("gauss8:n=50", seed=0).x)
    assert not torch.equal(a.x, load("gauss8:n=50", seed=1).x)
    # the seed in the spec wins over the argument
    assert torch.equal(load("gauss8:n=50:seed=3", seed=9).x, load("gauss8:n=50", seed=3).x)
    # Dataset.spec reproduces the data
    b = load("gauss8:n=50", seed=7)
    assert b.spec.endswith("seed=7")
    assert torch.equal(load(b.spec).x, b.x)
    with pytest.raises(DatasetError, match="seed"):
        load("gauss8:n=5", seed=-1)


def test_meta_records_resolved_options():
    ds = load("squares:size=16", seed=2)
    assert ds.meta["name"] == "squares" and ds.meta["split"] == "train"
    assert ds.meta["options"]["seed"] == 2 and ds.meta["options"]["size"] == 16
    assert ds.meta["options"]["margin"] == 1


def test_dataset_validates_and_reprs_briefly():
    ds = Dataset(torch.zeros(3, 2), None, "x", "vector", None)
    assert len(ds) == 3 and ds.sample_shape == (2,)
    assert "x=(3, 2)" in repr(ds) and "tensor" not in repr(ds)
    with pytest.raises(DatasetError, match="4 dimensions"):
        Dataset(torch.zeros(3, 2), None, "x", "image", (-1.0, 1.0))
    with pytest.raises(DatasetError, match="float32"):
        Dataset(torch.zeros(3, 2, dtype=torch.float64), None, "x", "vector", None)
    with pytest.raises(DatasetError, match="labels"):
        Dataset(torch.zeros(3, 2), torch.zeros(2, dtype=torch.int64), "x", "vector", None)


def test_available_one_line_per_dataset(tmp_path):
    av = available(tmp_path)
    assert list(av) == dataset_names()
    assert {"squares", "gauss", "gauss8", "ring10", "fashion-mnist", "mnist", "cifar10", "folder", "ffhq",
            "celeba", "digits"} <= set(av)
    for line in av.values():
        assert isinstance(line, str) and line and "\n" not in line
    assert "generated" in av["squares"] and "scikit-learn" in av["digits"]
    assert "not found" in av["mnist"] and "--data-root" in av["mnist"]
    assert "not found" in av["cifar10"]


def test_describe_lists_every_key():
    text = describe("squares")
    for k in ("n", "seed", "size", "square", "margin", "holdout"):
        assert f"  {k}: " in text
    with pytest.raises(DatasetError, match="unknown dataset"):
        describe("nope")


# ---------------------------------------------------------------------------------------------- subsets


@pytest.mark.parametrize("n_total", [1, 6, 7, 1797])
@pytest.mark.parametrize("holdout", [0.0, 1 / 6, 0.5])
def test_split_indices_partition(n_total, holdout):
    n_test = round(holdout * n_total)
    if n_test == 0:
        assert np.array_equal(split_indices(n_total, "train", holdout, "t"), np.arange(n_total))
        with pytest.raises(DatasetError, match="no test split"):
            split_indices(n_total, "test", holdout, "t")
        return
    if n_test >= n_total:
        with pytest.raises(DatasetError, match="no training split"):
            split_indices(n_total, "train", holdout, "t")
        return
    tr = split_indices(n_total, "train", holdout, "t")
    te = split_indices(n_total, "test", holdout, "t")
    assert len(te) == n_test and len(tr) == n_total - n_test
    assert np.intersect1d(tr, te).size == 0
    assert np.array_equal(np.sort(np.concatenate([tr, te])), np.arange(n_total))
    assert np.all(np.diff(tr) > 0) and np.all(np.diff(te) > 0)  # original order kept
    # fixed: the same for every call (independent of any run seed)
    assert np.array_equal(te, split_indices(n_total, "test", holdout, "t"))
    assert HOLDOUT_SEED is not None


def test_pick_indices_seeded_distinct_sorted():
    spec = parse_spec("digits:n=40:seed=5")
    a = pick_indices(100, spec)
    assert len(a) == 40 and len(np.unique(a)) == 40
    assert np.all(np.diff(a) > 0) and a.min() >= 0 and a.max() < 100
    assert np.array_equal(a, pick_indices(100, spec))
    assert not np.array_equal(a, pick_indices(100, spec.replace(seed=6)))
    assert np.array_equal(pick_indices(100, spec.replace(pick="first")), np.arange(40))
    assert np.array_equal(pick_indices(100, parse_spec("digits")), np.arange(100))
    with pytest.raises(DatasetError, match="n=40 but the train split has only 30 items"):
        pick_indices(30, spec)


def test_resize_shapes_and_range():
    x = torch.rand(5, 3, 20, 12) * 2 - 1
    assert resize(x, 20).shape == (5, 3, 20, 20)
    y = resize(x, 7)
    assert y.shape == (5, 3, 7, 7) and y.dtype == torch.float32
    assert y.min() >= -1 and y.max() <= 1
    z = torch.full((2, 1, 28, 28), 0.25)
    assert torch.allclose(resize(z, 32), torch.full((2, 1, 32, 32), 0.25))
    assert torch.allclose(resize(z, 9), torch.full((2, 1, 9, 9), 0.25))
    assert resize(z, 28) is z
