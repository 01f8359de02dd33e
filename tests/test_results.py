"""Issue 14 §2-§4, one test per class: no lost or mixed-up results, honest exit codes, validation before any
folder exists, one-line errors instead of tracebacks, absurd sizes refused up front, files follow the umask."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from wganlab import checkpoint, runs
from wganlab.cli import main
from wganlab.errors import ConfigError, InputError
from wganlab.experiments import EXPERIMENTS
from wganlab.runner import run_experiment, run_tasks
from wganlab.sweep import cell_id
from wganlab.train import TrainConfig, resume, train

EXP = "mean-vs-real-dimension"  # no training: a run takes well under a second
FAST = {"repeats": "2", "dims": "1,5", "batch": "8"}


def small(tmp_path, **kw) -> TrainConfig:
    base = dict(data="squares:size=8:square=3", m=8, g_hidden=16, c_hidden=16, steps=6, n_critic=1, batch=8,
                track_every=3, grid_every=0, ckpt_every=3, out=str(tmp_path), device="cpu", threads=1)
    return TrainConfig(**{**base, **kw})


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("wganlab: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


# -- §3 no lost or mixed-up results ----------------------------------------------------------------------


def test_resume_of_a_finished_run_keeps_its_final_metrics(tmp_path):
    res = train(small(tmp_path), progress=False)
    before = json.loads((res.run_dir / "summary.json").read_text())
    assert before["final"]["w1"] > 0
    again = resume(res.run_dir, progress=False)
    assert again.status == "done" and again.final["w1"] == before["final"]["w1"]
    (res.run_dir / "summary.json").unlink()  # stopped between its last checkpoint and its summary
    resume(res.run_dir, progress=False)
    after = json.loads((res.run_dir / "summary.json").read_text())
    assert after["final"]["w1"] == before["final"]["w1"] and after["step"] == 6


@pytest.mark.parametrize("keep_rows", [0, 2])
def test_resume_of_a_finished_run_whose_last_rows_were_lost_measures_them_again(tmp_path, keep_rows):
    res = train(small(tmp_path), progress=False)
    before = json.loads((res.run_dir / "summary.json").read_text())
    (res.run_dir / "summary.json").unlink()
    rows = (res.run_dir / "metrics.jsonl").read_text().splitlines(keepends=True)
    (res.run_dir / "metrics.jsonl").write_text("".join(rows[:keep_rows]))  # the step-6 row is lost
    again = resume(res.run_dir, progress=False)
    after = json.loads((res.run_dir / "summary.json").read_text())
    assert again.status == after["status"] == "done" and after["step"] == 6
    assert after["final"]["w1"] == pytest.approx(before["final"]["w1"], rel=1e-6)  # the same model, measured
    assert runs.read_jsonl(res.run_dir / "metrics.jsonl")[-1]["step"] == 6


def test_resume_says_a_run_without_checkpoints_restarts_and_refuses_a_folder_as_checkpoint(tmp_path, capsys):
    res = train(small(tmp_path), progress=False)
    for name in ("checkpoint.pt", "checkpoint.pt.prev"):
        (res.run_dir / name).unlink()
    capsys.readouterr()
    assert resume(res.run_dir, progress=False).status == "done"
    assert f"no checkpoint in {res.run_dir}; the run restarts from step 0" in capsys.readouterr().err
    (res.run_dir / "checkpoint.pt").unlink()
    (res.run_dir / "checkpoint.pt").mkdir()
    (res.run_dir / "checkpoint.pt.prev").unlink()
    assert main(["train", "--resume", str(res.run_dir)]) == 2
    err = one_line_error(capsys)
    assert "checkpoint.pt: not a file" in err and "restarts" not in err


def test_ckpt_every_0_checkpoints_only_the_last_step(tmp_path):
    res = train(small(tmp_path, ckpt_every=0), progress=False)
    assert res.status == "done" and checkpoint.load_latest(res.run_dir / "checkpoint.pt")["step"] == 6
    assert not (res.run_dir / "checkpoint.pt.prev").exists()


def test_a_checkpoint_beyond_the_configured_steps_is_refused(tmp_path, capsys):
    res = train(small(tmp_path), progress=False)
    state = checkpoint.load_latest(res.run_dir / "checkpoint.pt")
    checkpoint.save(res.run_dir / "checkpoint.pt", {**state, "step": 10**6})
    with pytest.raises(ConfigError, match=r"at step 1000000, outside the run's 0\.\.6 steps"):
        resume(res.run_dir, progress=False)
    assert main(["train", "--resume", str(res.run_dir)]) == 2
    one_line_error(capsys)


def test_a_checkpoint_of_other_shapes_is_a_one_line_error(tmp_path, capsys):
    res = train(small(tmp_path), progress=False)
    cfg = json.loads((res.run_dir / "config.json").read_text())
    (res.run_dir / "config.json").write_text(json.dumps({**cfg, "g_hidden": 24}))
    assert main(["train", "--resume", str(res.run_dir)]) == 2
    assert "does not fit the run's config" in one_line_error(capsys)
    (res.run_dir / "config.json").write_text("{not json")
    assert main(["train", "--resume", str(res.run_dir)]) == 2
    assert "not a readable JSON file" in one_line_error(capsys)


def test_both_checkpoints_damaged_says_the_run_restarts(tmp_path, capsys):
    ck = tmp_path / "checkpoint.pt"
    checkpoint.save(ck, {"step": 1})
    checkpoint.save(ck, {"step": 2})
    assert checkpoint.load_latest(ck)["step"] == 2
    ck.write_bytes(b"torn")
    assert checkpoint.load_latest(ck)["step"] == 1
    assert "using the previous one (checkpoint.pt.prev, step 1)" in capsys.readouterr().err
    ck.with_name("checkpoint.pt.prev").write_bytes(b"torn too")
    assert checkpoint.load_latest(ck) is None
    err = capsys.readouterr().err
    assert "both torn, corrupt or missing; the run restarts from step 0" in err and "previous one" not in err


def test_distinct_sweep_cells_get_distinct_folders():
    long_a = {"dims": [*range(1, 40), 1]}
    long_b = {"dims": [*range(1, 40), 2]}  # equal in their first 80 slugged characters
    pairs = [(long_a, long_b), ({"name": "a b"}, {"name": "a/b"}), ({"x": [1, 5]}, {"x": "1-5"})]
    for p, q in pairs:
        assert cell_id(p) != cell_id(q) and max(len(cell_id(p)), len(cell_id(q))) <= runs.SLUG_MAX
    assert cell_id({"steps": 20}) == "steps-20"  # a name that is already a file name is kept as it is


def test_one_writer_per_run_folder(tmp_path):
    res = train(small(tmp_path), progress=False)
    with runs.lock_run_dir(res.run_dir), pytest.raises(InputError, match="in use by another wganlab process"):
        resume(res.run_dir, progress=False)
    resume(res.run_dir, progress=False)  # the lock is released with its holder


_MAKE_RUN_DIRS = """
import sys
from wganlab.runs import new_run_dir
for _ in range(5):
    print(new_run_dir(sys.argv[1], sys.argv[2]).name, flush=True)
"""


def test_run_numbers_are_allocated_atomically(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", _MAKE_RUN_DIRS, str(tmp_path), f"p{k}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    numbers = [name[:5] for out, _ in outs for name in out.split()]
    assert len(numbers) == 20 and len(set(numbers)) == 20


def test_a_full_disk_fails_one_task_and_the_others_finish(tmp_path, monkeypatch):
    import wganlab.runner as runner

    real = runner.write_json

    def full_disk_for_a(path, obj):
        if "/a/" in str(path):
            raise OSError(28, "No space left on device", str(path))
        return real(path, obj)

    monkeypatch.setattr(runner, "write_json", full_disk_for_a)
    tasks = [{"experiment": EXP, "preset": "quick", "overrides": FAST, "seed": 0, "folder": str(tmp_path / c),
              "label": c, "device": "cpu"} for c in ("a", "b")]
    results = run_tasks(tasks, log=lambda line: None)
    assert results[0]["status"] == "failed" and "No space left" in results[0]["error"]
    assert results[1]["status"] == "done"


def test_a_stale_error_file_does_not_survive_a_successful_rerun(tmp_path):
    (tmp_path / "error.txt").write_text("")  # as a full disk left it
    assert run_experiment(EXP, "quick", tmp_path, overrides=FAST, progress=False, device="cpu")["status"] == "done"
    assert not (tmp_path / "error.txt").exists()


# -- §4 honest exit codes and errors ---------------------------------------------------------------------


@pytest.fixture
def failing_experiment(monkeypatch):
    exp = EXPERIMENTS[EXP]

    def run(cfg, ctx):
        raise RuntimeError("this experiment fails")

    monkeypatch.setitem(EXPERIMENTS, EXP, dataclasses.replace(exp, run=run))


def test_reproduce_and_sweep_exit_non_zero_when_anything_failed(tmp_path, capsys, failing_experiment):
    sets = [a for k, v in FAST.items() for a in ("--set", f"{EXP}.{k}={v}")]
    assert main(["reproduce", EXP, "--out", str(tmp_path / "r"), "--executor", "local", *sets]) == 1
    assert (tmp_path / "r" / "report.html").is_file() and "did not finish" in capsys.readouterr().err
    sets = [a for k, v in FAST.items() for a in ("--set", f"{k}={v}")]
    assert main(["sweep", EXP, "--out", str(tmp_path / "s"), *sets]) == 1
    assert (tmp_path / "s" / "summary.md").is_file() and "1 task(s) failed" in capsys.readouterr().err


@pytest.mark.parametrize(("setting", "named"), [
    ("steps=0", "steps"), ("n_critic=0", "n_critic"), ("ckpt_every=-1", "ckpt_every"), ("z_dim=0", "z_dim"),
    ("batch=0", "batch"), ("batch=100000", "got 100000"), ("track_every=0", "track_every"), ("lr_g=nan", "lr_g"),
    ("lr_c=-1", "lr_c"), ("objective=nope", "objective"), ("cost=nope", "cost"), ("lipschitz=nope", "lipschitz"),
    ("device=tpu", "device"), ("n_projections=100000000", "got 100000000"), ("track=w7", "w7"),
    ("seed=-1", "seed must be >= 0"), ("data=bogus", "unknown dataset 'bogus'"),
    ("steps=99999999999999999999", "steps must be at most 1,000,000,000"),
    ("m=1000000000", "got 1000000000"), ("z_dim=1000000000", "z_dim must be at most"),
    ("c_hidden=1000000000", "c_hidden must be at most"), ("g_hidden=1000000000", "g_hidden must be at most"),
    ("g_depth=1000000", "g_depth must be at most"),
])
def test_dry_run_runs_the_same_validation_and_leaves_no_folder(tmp_path, capsys, setting, named):
    for extra in (["--dry-run"], []):
        assert main(["train", *extra, "--set", f"out={tmp_path}", "--set", setting]) == 2
        assert named in one_line_error(capsys)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(("settings", "named"), [
    (["data=gauss8", "generator=conv"], "generator must be fc on vector data (conv needs images)"),
    (["data=gauss8", "critic=cnn-fc"], "critic must be fc or groupsort on vector data"),
    (["critic=groupsort", "c_hidden=63"], "c_hidden must be even"),
    (["c_hidden=30000", "c_depth=4"], "the models (c_depth=4 layers of c_hidden=30,000): about"),
])
def test_dry_run_refuses_what_building_the_models_would(tmp_path, capsys, monkeypatch, settings, named):
    """Checks that the real run met only when it built its models, and a memory bound (1 GiB here)."""
    from wganlab import memory

    monkeypatch.setattr(memory, "memory_available", lambda: 2**30)
    sets = [a for kv in settings for a in ("--set", kv)]
    for extra in (["--dry-run"], []):
        assert main(["train", *extra, "--set", f"out={tmp_path}", *sets]) == 2
        assert named in one_line_error(capsys)
    assert not any(tmp_path.iterdir())


def test_a_run_whose_data_fails_leaves_no_run_folder(tmp_path, capsys):
    assert main(["train", "--set", f"out={tmp_path}", "--set", "data=gauss8:n=0"]) == 2
    one_line_error(capsys)
    assert not any(tmp_path.iterdir())


def test_bare_train_prints_usage(capsys):
    assert main(["train"]) == 2
    err = capsys.readouterr().err
    assert "usage:" in err and "needs --preset, --config, --set or --resume" in err


@pytest.mark.parametrize(("argv", "named"), [
    (["reproduce", EXP, "--device", "tpu"], "unknown device 'tpu'"),
    (["reproduce", EXP, "--workers", "0"], "--workers: must be >= 1"),
    (["reproduce", EXP, EXP], f"named more than once: {EXP}"),
    (["reproduce", EXP, "--resume"], "--resume needs --out"),
    (["reproduce", EXP, "--preset", "huge"], "invalid choice: 'huge'"),
    (["distance", "gauss8:n=99999999999999999999", "gauss8"], "99999999999999999999"),
    (["distance", "squares:n=100000000:size=64", "gauss8"], "too many"),
    (["distance", "gauss8", "gauss8", "--metric", "swd", "--n-projections", "100000000"], "100,000,000 projections"),
])
def test_cli_refuses_bad_flags_in_one_line(tmp_path, capsys, argv, named):
    assert main([*argv, *(["--out", str(tmp_path / "o")] if argv[0] == "reproduce" and "--resume" not in argv
                          else [])]) == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_sweep_refuses_an_unknown_metric_after_its_first_task(tmp_path, capsys):
    sets = [a for k, v in FAST.items() for a in ("--set", f"{k}={v}")]
    assert main(["sweep", EXP, "--out", str(tmp_path), "--metric", "nope", *sets]) == 2
    assert "metric 'nope' is not a numeric measurement of the first task" in capsys.readouterr().err
    assert len(list(tmp_path.glob("cells/*/seed-*/result.json"))) == 1  # kept for --resume


def _npy_header(shape, dtype="<f8") -> bytes:
    header = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape}, }}".encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header


@pytest.mark.parametrize(("make", "named"), [
    (lambda p: np.savez(str(p)[:-4], x=np.zeros((3, 2))) or Path(str(p)[:-4] + ".npz").rename(p), ".npz archive"),
    (lambda p: np.save(p, np.array([["a", "b"]])), "not numeric"),
    (lambda p: np.save(p, np.zeros(3, dtype=[("a", "f4"), ("b", "i4")])), "not numeric"),
    (lambda p: p.write_bytes(_npy_header((1_000_000, 1_000_000)) + b"\0" * 16), "1,000,000,000,000 values"),
    (lambda p: p.write_bytes(_npy_header((10, 3)) + b"\0" * 16), "file holds 16 bytes"),
])
def test_bad_npy_files_are_one_line_errors_before_any_allocation(tmp_path, capsys, make, named):
    path = tmp_path / "x.npy"
    make(path)
    np.save(tmp_path / "b.npy", np.zeros((3, 2)))
    assert main(["distance", str(path), str(tmp_path / "b.npy")]) == 2
    assert named in one_line_error(capsys)


@pytest.mark.parametrize("order", [">", "<"])
def test_npy_of_any_byte_order_is_read_in_native_order(tmp_path, capsys, order):
    x = np.random.default_rng(0).normal(size=(10, 3))
    np.save(tmp_path / "x.npy", x.astype(f"{order}f8"))
    np.save(tmp_path / "y.npy", x[::-1] + 1)
    assert main(["distance", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["value"] == pytest.approx(np.sqrt(3))  # a translation by (1, 1, 1)
    from wganlab.checks import as_tensor

    assert as_tensor(x.astype(f"{order}f8"), "x").tolist() == x.tolist()


def test_exact_metrics_beyond_the_memory_available_are_refused_before_solving(tmp_path, capsys, monkeypatch):
    from wganlab import memory

    monkeypatch.setattr(memory, "memory_available", lambda: 2**29)  # 0.5 GiB
    spec = "gauss:d=2:n=2000000"
    assert main(["distance", spec, spec]) == 2
    assert "metric 'w1' between 2,000,000 and 2,000,000 points of dimension 2" in one_line_error(capsys)
    assert main(["distance", "gauss:d=2:n=50000000", spec]) == 2
    assert "gauss: n*d = 100,000,000 values: about 1.1 GiB of memory needed" in one_line_error(capsys)


def test_outputs_that_cannot_be_written_are_refused_before_the_work(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["data", "show", "gauss8:n=10", "--out", str(blocker / "x.png")]) == 2
    assert "not writable" in one_line_error(capsys)
    assert main(["bench", "--out", str(blocker / "bench.json")]) == 2
    assert "not writable" in one_line_error(capsys)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        runs.write_json(tmp_path / "x.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert json.loads(Path(tmp_path / "x.json").read_text()) == {"a": 1}


@pytest.fixture(scope="module")
def finished_reproduce(tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "run"
    sets = [a for k, v in FAST.items() for a in ("--set", f"{EXP}.{k}={v}")]
    assert main(["reproduce", EXP, "--out", str(out), "--executor", "local", *sets]) == 0
    return out


@pytest.mark.parametrize(("field", "value"), [
    ("claims", "nope"), ("claims", ["x", "y"]), ("claims", [{"status": ["holds"]}]), ("seconds", "slow"),
    ("seconds", True), ("figures", 7), ("figures", [{"file": 3}]), ("notes", {"a": 1}), ("title", [1]),
])
def test_report_shows_a_malformed_result_json_as_failed(finished_reproduce, tmp_path, capsys, field, value):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_reproduce, run)
    path = run / EXP / "result.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), field: value}))
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert f"malformed result.json: field(s) {field} of the wrong type" in page
    assert main(["report", "--claims", str(run)]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_reproduce_checks_every_setting_before_making_its_run_folder(tmp_path):
    from wganlab.reproduce import reproduce

    for kwargs, named in [({"overrides": {EXP: {"repeats": "many"}}}, "repeats: expected an integer"),
                          ({"device": "tpu"}, "unknown device 'tpu'"),
                          ({"names": [EXP, EXP]}, "named more than once")]:
        with pytest.raises(ConfigError, match=named):
            reproduce(**{"names": [EXP], **kwargs}, runs_root=tmp_path, progress=False)
    assert not any(tmp_path.iterdir())
