"""Sweeps: grid parsing, cells x seeds on every executor with the same numbers, aggregation, failures that
do not stop the others, resume, ``reproduce --repeats``."""

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wganlab.cli import main
from wganlab.errors import ConfigError
from wganlab.executors import map_tasks
from wganlab.reproduce import reproduce
from wganlab.runner import aggregate
from wganlab.sweep import cell_id, parse_grid, sweep

EXP = "mean-vs-real-dimension"  # no training: a cell takes well under a second
FIXED = {"repeats": "2", "dims": "1,5,50"}


def _fail_on_three(x):
    if x == 3:
        raise ValueError("three is bad")
    return x * 10


def test_map_tasks_captures_each_failure_and_keeps_order():
    out = map_tasks(_fail_on_three, [1, 3, 5])
    assert [o.ok for o in out] == [True, False, True] and [out[0].value, out[2].value] == [10, 50]
    assert out[1].error == "ValueError: three is bad" and "Traceback" in out[1].traceback
    with pytest.raises(ConfigError, match="unknown executor 'dask'"):
        map_tasks(_fail_on_three, [1], "dask")
    with pytest.raises(ConfigError, match="ray_address needs executor 'ray'"):
        map_tasks(_fail_on_three, [1], ray_address="127.0.0.1:6379")


def _children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (Linux /proc); zombies count as gone."""
    out = []
    for d in Path("/proc").iterdir():
        try:
            stat = (d / "stat").read_text()
        except (OSError, ValueError):
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if d.name.isdigit() and int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_process_worker_exits_when_its_parent_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", "import time\nfrom wganlab.executors import map_tasks\n"
                               "map_tasks(time.sleep, [120], 'process', workers=1)"])
    try:
        deadline, workers = time.monotonic() + 60, []
        while not workers and time.monotonic() < deadline:
            time.sleep(0.2)
            workers = [p for p in _children(parent.pid)
                       if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text(errors="replace")]
        assert workers, "the pool never started a worker"
        time.sleep(1.0)  # the worker is in its task
        parent.kill()  # SIGKILL: the parent can clean nothing up
        parent.wait()
        deadline = time.monotonic() + 10
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(map(_alive, workers)), "an orphaned worker went on running"
    finally:
        parent.kill()


def test_ray_executor_without_ray_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'wganlab\[ray\]'"):
        map_tasks(_fail_on_three, [1], "ray")


def test_parse_grid_types_values_by_the_config():
    grid = parse_grid(EXP, "quick", ["batch=8,16", "dims=1|5,2|3|4"], {"repeats": "2"})
    assert grid == {"batch": [8, 16], "dims": [[1, 5], [2, 3, 4]]}
    assert cell_id({"batch": 8, "dims": [1, 5]}).startswith("batch-8-dims-1-5-") and cell_id({}) == "base"
    assert cell_id({"batch": 8}) == "batch-8"
    for pairs, match in [(["batch=eight"], "batch: expected an integer"), (["nope=1"], "unknown config key"),
                         (["batch"], "expected key=value1,value2"), (["batch=1", "batch=2"], "given twice"),
                         (["repeats=3"], "both a grid key and a fixed value")]:
        with pytest.raises(ConfigError, match=match):
            parse_grid(EXP, "quick", pairs, {"repeats": "2"})


@pytest.mark.parametrize(("grid", "named"), [("batch=4,4", "'4' repeats '4'"),
                                              ("dims=1|2,1|02", "'1|02' repeats '1|2' (both are 1|2)")])
def test_grid_values_equal_once_typed_are_refused(tmp_path, capsys, grid, named):
    """Two values of one cell would have two tasks write one folder."""
    assert main(["sweep", EXP, "--grid", grid, "--set", "repeats=1", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert named in err and err.count("\n") == 1 and not (tmp_path / "s").exists()


def _results(out):
    return {p.parent.name + "/" + p.name: json.loads((p / "result.json").read_text())
            for p in sorted((out / "cells").glob("*/seed-*"))}


def test_local_sweep_aggregates_every_cell_and_resumes(tmp_path, capsys):
    grid = parse_grid(EXP, "quick", ["batch=8,16"], FIXED)
    s = sweep(EXP, grid=grid, seeds=3, seed=5, out=tmp_path, fixed=FIXED)
    runs = _results(tmp_path)
    assert sorted(runs) == [f"batch-{b}/seed-{k}" for b in (16, 8) for k in (5, 6, 7)]
    for cell in s["cells"]:
        crossings = [runs[f"{cell['cell']}/seed-{k}"]["measurements"]["crossover_d"] for k in (5, 6, 7)]
        got = cell["stats"]["crossover_d"]
        assert got["n"] == 3 and cell["done"] == 3 and cell["failed"] == []
        assert got["mean"] == pytest.approx(statistics.fmean(crossings), rel=1e-12)
        assert got["std"] == pytest.approx(statistics.stdev(crossings), rel=1e-12)
    assert json.loads((tmp_path / "summary.json").read_text())["cells"] == json.loads(json.dumps(s["cells"]))
    assert "crossover_d.mean" in (tmp_path / "summary.csv").read_text().splitlines()[0]
    assert "| 8 | 3/3 |" in (tmp_path / "summary.md").read_text()
    assert (tmp_path / "sweep-crossover_d.png").stat().st_size > 1000
    capsys.readouterr()
    (tmp_path / "cells" / "batch-16" / "seed-6" / "result.json").unlink()  # as if killed mid-task
    again = sweep(EXP, grid=grid, seeds=3, seed=5, out=tmp_path, fixed=FIXED, resume=True)
    log = capsys.readouterr().out
    assert log.count("done earlier, kept") == 5 and "running 1 task(s)" in log
    assert again["cells"] == s["cells"]
    with pytest.raises(ConfigError, match="holds a different sweep"):
        sweep(EXP, grid=grid, seeds=2, seed=5, out=tmp_path, fixed=FIXED, resume=True)


def test_a_failing_cell_is_reported_and_the_others_finish(tmp_path):
    grid = parse_grid(EXP, "quick", ["dims=0,1|5"], {"repeats": "2"})
    s = sweep(EXP, grid=grid, seeds=1, out=tmp_path, fixed={"repeats": "2"})
    bad, good = s["cells"]
    assert bad["done"] == 0 and bad["failed"][0]["seed"] == 0 and bad["failed"][0]["error"]
    assert good["done"] == 1 and good["stats"]["batch"] == {"mean": 64.0, "std": None, "n": 1}
    assert "## failed tasks" in (tmp_path / "summary.md").read_text()


def test_aggregate_skips_failed_runs_and_non_numbers():
    rs = [{"status": "done", "measurements": {"a": 1, "b": {"c": 2.0}, "s": "x", "l": [1, 2], "t": True}},
          {"status": "done", "measurements": {"a": 3, "b": {"c": float("nan")}}},
          {"status": "failed", "measurements": {}}]
    assert aggregate(rs) == {"a": {"mean": 2.0, "std": pytest.approx(2 ** 0.5), "n": 2},
                             "b.c": {"mean": 2.0, "std": None, "n": 1}}


def test_an_unknown_metric_is_refused_after_the_first_task_before_the_others(tmp_path, capsys):
    grid = parse_grid(EXP, "quick", ["batch=8,16"], FIXED)
    with pytest.raises(ConfigError, match=r"'nope' is not a numeric measurement of the first task.*crossover_d"):
        sweep(EXP, grid=grid, seeds=2, out=tmp_path, fixed=FIXED, metric="nope")
    assert len(_results(tmp_path)) == 1 and "running 1 task(s)" in capsys.readouterr().out
    s = sweep(EXP, grid=grid, seeds=2, out=tmp_path, fixed=FIXED, metric="crossover_d", resume=True)
    assert all(c["done"] == 2 for c in s["cells"]) and (tmp_path / "sweep-crossover_d.png").is_file()
    assert capsys.readouterr().out.count("done earlier, kept") == 1


@pytest.mark.slow
def test_process_and_ray_executors_give_the_local_numbers(tmp_path):
    pytest.importorskip("ray")
    import ray

    grid = parse_grid(EXP, "quick", ["batch=8,16"], FIXED)
    stats = {}
    for executor in ("local", "process", "ray"):
        s = sweep(EXP, grid=grid, seeds=2, out=tmp_path / executor, fixed=FIXED, executor=executor, workers=2,
                  threads=1)
        stats[executor] = [c["stats"] for c in s["cells"]]
        assert all(c["done"] == 2 for c in s["cells"])
    assert stats["process"] == stats["local"] and stats["ray"] == stats["local"]
    assert not ray.is_initialized()  # the local Ray it started is shut down


def test_cli_sweep_and_its_errors(tmp_path, capsys):
    code = main(["sweep", EXP, "--grid", "batch=8,16", "--set", "repeats=2", "--set", "dims=1,5",
                 "--out", str(tmp_path), "--threads", "1"])
    assert code == 0 and "summary:" in capsys.readouterr().out
    assert len(json.loads((tmp_path / "summary.json").read_text())["cells"]) == 2
    for argv, msg in [(["--grid", "batch=x"], "batch: expected an integer"),
                      (["--executor", "process", "--workers", "0"], "--workers: must be >= 1"),
                      (["--ray-address", "1.2.3.4:6379"], "--ray-address needs --executor ray"),
                      (["--seeds", "0"], "--seeds: must be >= 1")]:
        assert main(["sweep", EXP, "--out", str(tmp_path / "e"), "--set", "repeats=2", *argv]) == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1
    assert main(["sweep", "nope", "--out", str(tmp_path)]) == 2


def test_reproduce_repeats_gives_the_spread_over_seeds(tmp_path):
    over = {EXP: {**FIXED, "batch": "8"}}
    out = reproduce([EXP], out=tmp_path, overrides=over, repeats=3, seed=1, progress=False, device="cpu",
                    executor="local")
    rep = json.loads((out / EXP / "repeats.json").read_text())
    assert rep["seeds"] == [1, 2, 3] and rep["done"] == 3
    runs = [json.loads((out / EXP / "result.json").read_text())]
    runs += [json.loads((out / EXP / "repeats" / f"seed-{k}" / "result.json").read_text()) for k in (2, 3)]
    crossings = [r["measurements"]["crossover_d"] for r in runs]
    assert rep["stats"]["crossover_d"]["mean"] == pytest.approx(statistics.fmean(crossings), rel=1e-12)
    repeats = [n["text"] for n in runs[0]["notes"] if n["kind"] == "repeats"]
    assert len(repeats) == 1 and repeats[0].startswith("over 3 of 3 seeds")
    assert "over 3 of 3 seeds" in (out / "report.html").read_text()
