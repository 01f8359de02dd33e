"""Errors that say what they are: bad input (exit 2) apart from failed computations (exit 3), one line each;
a plain install (no matplotlib loaded) gives a working ``wganlab list``."""

import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from wganlab import metrics
from wganlab.cli import EXIT_BAD_INPUT, EXIT_COMPUTATION_FAILED, EXIT_SYSTEM, main
from wganlab.errors import (
    BadInput,
    ComputationFailed,
    ConfigError,
    DatasetError,
    InputError,
    NotOptimalError,
    TrainingDiverged,
    WganlabError,
)
from wganlab.ot.sinkhorn import SinkhornNotConverged

ROOT = Path(__file__).resolve().parents[1]


def test_the_two_families_are_disjoint():
    for cls in (InputError, DatasetError, ConfigError):
        assert issubclass(cls, BadInput) and not issubclass(cls, ComputationFailed)
    for cls in (NotOptimalError, TrainingDiverged, SinkhornNotConverged):
        assert issubclass(cls, ComputationFailed) and not issubclass(cls, BadInput)
        assert issubclass(cls, WganlabError)  # callers catching the old base still catch them


@pytest.fixture
def two_sets(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", rng.normal(size=(5, 2)))
    np.save(tmp_path / "b.npy", rng.normal(size=(6, 2)))
    return str(tmp_path / "a.npy"), str(tmp_path / "b.npy")


@pytest.mark.parametrize(("error", "status"), [
    (NotOptimalError("duality gap 0.1 exceeds 1e-09\nsecond line"), EXIT_COMPUTATION_FAILED),
    (SinkhornNotConverged("marginal error 0.3 after 1000 iterations"), EXIT_COMPUTATION_FAILED),
    (InputError("x has NaN"), EXIT_BAD_INPUT),
    (OSError(28, "No space left on device", "/full/disk/file"), EXIT_SYSTEM),
    (MemoryError("Unable to allocate 1.49 GiB for an array with shape (100000000, 2)"), EXIT_SYSTEM),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                  "you tried to allocate 8000000000 bytes.\nsecond line"), EXIT_SYSTEM),
])
def test_exit_status_says_what_failed(two_sets, capsys, monkeypatch, error, status):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(metrics, "compute", fail)
    assert main(["distance", *two_sets]) == status
    err = capsys.readouterr().err
    assert err.startswith("wganlab: error: ") and err.count("\n") == 1  # one line
    if status == EXIT_COMPUTATION_FAILED:
        assert type(error).__name__ in err
    if isinstance(error, OSError):
        assert "/full/disk/file" in err and "No space left" in err
    elif status == EXIT_SYSTEM:
        assert err.startswith("wganlab: error: out of memory: ") and "allocate" in err


_BLOCK_MATPLOTLIB = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
sys.meta_path.insert(0, Block())
from wganlab.cli import main
code = main(["list"])
assert "matplotlib" not in sys.modules, "wganlab list loaded matplotlib"
sys.exit(code)
"""


def test_list_works_without_matplotlib():
    """As after a plain install where matplotlib failed to install: `wganlab list` must not import it."""
    proc = subprocess.run([sys.executable, "-c", _BLOCK_MATPLOTLIB], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "blur-vs-real" in proc.stdout and "metrics" in proc.stdout


def test_matplotlib_is_a_core_dependency():
    """The report's plots are the main job: a plain `pip install .` must bring matplotlib."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(dep.split(">")[0].split("=")[0].strip() == "matplotlib" for dep in project["dependencies"])


def test_bench_rows_a_failed_computation_and_raises_bad_input(monkeypatch):
    from wganlab import bench
    from wganlab.bench import harness

    def uncertified(ctx, n):
        raise NotOptimalError("duality gap 0.5 exceeds 1e-09")

    def bad(ctx, n):
        raise InputError("n must be even")

    monkeypatch.setattr(harness, "_warm_up", lambda: None)
    monkeypatch.setitem(bench.CASES, "nopt", bench.Case("nopt", "", "none", uncertified, {"n": 1}, {"n": 1}))
    monkeypatch.setitem(bench.CASES, "bad", bench.Case("bad", "", "none", bad, {"n": 1}, {"n": 1}))
    (row,) = bench.run_case("nopt", {"n": 1})  # one uncertified solve no longer aborts the whole bench
    assert row["status"] == "error" and "NotOptimalError: duality gap 0.5" in row["note"]
    with pytest.raises(InputError, match="n must be even"):
        bench.run_case("bad", {"n": 1})
