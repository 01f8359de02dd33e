"""The command line: distances between .npy files or dataset specs, data previews, one-line errors."""

import json

import numpy as np
import pytest

from wganlab.cli import main
from wganlab.ot import wasserstein


@pytest.fixture
def sets(tmp_path):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(20, 1, 8, 8)), rng.normal(size=(15, 1, 8, 8)) + 0.5
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    return tmp_path, a, b


def run(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_distance_json_matches_the_library(sets, capsys):
    d, a, b = sets
    code, out, _ = run(["distance", str(d / "a.npy"), str(d / "b.npy"), "--json"], capsys)
    res = json.loads(out)
    assert code == 0 and res["metric"] == "w1"
    assert res["value"] == pytest.approx(wasserstein(a, b).value, rel=1e-12)
    assert res["gap"] <= 1e-9 * res["value"]


@pytest.mark.parametrize(("metric", "extra"), [
    ("w2", []), ("swd", ["--n-projections", "16", "--seed", "3"]),
    ("patch-swd", ["--patch-size", "3", "--patch-stride", "2"]),
    ("patch-swd-local", ["--patch-size", "3"]), ("sinkhorn", ["--eps", "5"]),
])
def test_every_metric_from_the_cli(sets, capsys, metric, extra):
    d, _, _ = sets
    code, out, _ = run(["distance", str(d / "a.npy"), str(d / "b.npy"), "--metric", metric, "--json", *extra], capsys)
    assert code == 0 and json.loads(out)["value"] > 0


def test_weights_and_dataset_specs(sets, capsys):
    d, a, b = sets
    w = np.full(20, 0.05)
    w[0], w[1] = 0.0, 0.1
    np.save(d / "w.npy", w)
    code, out, _ = run(["distance", str(d / "a.npy"), str(d / "b.npy"), "--weights-a", str(d / "w.npy"),
                        "--json"], capsys)
    assert json.loads(out)["value"] == pytest.approx(wasserstein(a, b, a=w).value, rel=1e-12)
    code, out, _ = run(["distance", "gauss:d=2:shift=1:n=200", "gauss:d=2:shift=-1:n=200", "--json"], capsys)
    assert code == 0 and 2.0 < json.loads(out)["value"] < 3.6  # the true W1 is 2 * sqrt(2)
    code, out, _ = run(["distance", "squares:size=8:square=3", "squares:size=8:square=3"], capsys)
    assert code == 0 and out.startswith("w1 = 0")


@pytest.mark.parametrize(("make", "args", "msg"), [
    (lambda d: np.save(d / "x.npy", np.zeros((5, 3))), ["x.npy", "a.npy"], "dimension mismatch"),
    (lambda d: np.save(d / "x.npy", np.full((5, 1, 8, 8), np.nan)), ["x.npy", "a.npy"], "NaN"),
    (lambda d: np.save(d / "x.npy", np.zeros((0, 1, 8, 8))), ["x.npy", "a.npy"], "empty set"),
    (lambda d: np.save(d / "w.npy", -np.ones(20) / 20), ["a.npy", "b.npy", "--weights-a", "w.npy"], "non-negative"),
    (lambda d: np.save(d / "w.npy", np.ones(20)), ["a.npy", "b.npy", "--weights-a", "w.npy"], "sum to 1"),
    (lambda d: None, ["a.npy", "missing.npy"], "no such file"),
    (lambda d: None, ["a.npy", "b.npy", "--metric", "w7"], "invalid choice"),
    (lambda d: None, ["a.npy", "b.npy", "--eps", "3"], "do not apply to metric 'w1'"),
    (lambda d: None, ["a.npy", "squares:sise=8"], "unknown key 'sise'"),
    (lambda d: None, ["a.npy", "nosuchdata:n=3"], "unknown dataset"),
    (lambda d: (d / "x.npy").write_bytes(b"not numpy"), ["x.npy", "a.npy"], "not a .npy file"),
])
def test_bad_input_is_one_line_and_exit_2(sets, capsys, monkeypatch, make, args, msg):
    d, _, _ = sets
    make(d)
    monkeypatch.chdir(d)
    code, _, err = run(["distance", *args], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("wganlab: error:") and msg in err


def test_pickled_npy_is_refused_not_loaded(tmp_path, capsys):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    code, _, err = run(["distance", str(tmp_path / "obj.npy"), str(tmp_path / "obj.npy")], capsys)
    assert code == 2 and "dtype object is not numeric" in err


def test_data_show_writes_a_grid_and_a_scatter(tmp_path, capsys):
    code, out, _ = run(["data", "show", "squares:size=16:square=4", "--out", str(tmp_path / "g.png"), "--n", "16"],
                       capsys)
    assert code == 0 and (tmp_path / "g.png").stat().st_size > 100 and "squares" in out
    code, _, _ = run(["data", "show", "gauss8:n=300", "--out", str(tmp_path / "s.png")], capsys)
    assert code == 0 and (tmp_path / "s.png").is_file()
    code, _, err = run(["data", "show", "mnist", "--out", str(tmp_path / "m.png")], capsys)
    assert code == 2 and "--data-root" in err


@pytest.mark.parametrize("command", ["reproduce", "sweep"])
def test_experiment_commands_take_the_experiment_presets(command):
    from wganlab.cli import build_parser
    from wganlab.config import PRESET_NAMES

    args = ["sweep", "blur-vs-real", "--grid", "seed=1", "--out", "x"] if command == "sweep" else [command]
    for preset in PRESET_NAMES:  # quick, medium and paper, never the training presets
        assert build_parser().parse_args([*args, "--preset", preset]).preset == preset
    with pytest.raises(SystemExit):
        build_parser().parse_args([*args, "--preset", "squares-fc"])


@pytest.mark.parametrize(("args", "named"), [(["--projections", "8"], "--projections was renamed --n-projections"),
                                              (["--stride=2"], "--stride was renamed --patch-stride")])
def test_a_renamed_flag_is_refused_naming_the_new_one(sets, capsys, args, named):
    d, _, _ = sets
    assert main(["distance", str(d / "a.npy"), str(d / "b.npy"), "--metric", "patch-swd", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"wganlab: error: {named} ") and err.count("\n") == 1
