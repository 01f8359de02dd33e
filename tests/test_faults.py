"""Faults handled by tests that cause them: an unusable output folder, a diverging run inside ``reproduce``,
a training process killed with SIGKILL (also inside a checkpoint write), corrupt dataset files."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import pytest
import torch

from wganlab import checkpoint, runs
from wganlab.cli import main
from wganlab.config import replace
from wganlab.errors import InputError
from wganlab.reproduce import reproduce
from wganlab.train import TrainConfig, Trainer, train

# -- output folder checked before work starts ---------------------------------------------------------


def test_output_folder_that_is_a_file_is_refused(tmp_path, capsys):
    blocker = tmp_path / "out"
    blocker.write_text("not a folder")
    with pytest.raises(InputError, match="not writable"):
        runs.check_output_folder(blocker)
    assert main(["train", "--set", f"out={blocker}", "--set", "steps=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wganlab: error: output folder") and err.count("\n") == 1
    assert main(["reproduce", "mean-vs-real-dimension", "--out", str(blocker / "sub")]) == 2


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_output_folder_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(InputError, match="not writable"):
            runs.check_output_folder(ro)
    finally:
        ro.chmod(0o700)


def test_full_disk_is_refused_before_work_starts(tmp_path, monkeypatch, capsys):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 * 2**30, 10 * 2**30 - 2**20, 2**20))
    with pytest.raises(InputError, match="1 MiB free, less than the 200 MiB"):
        runs.check_output_folder(tmp_path / "a")
    assert runs.check_output_folder(tmp_path / "a", min_free_mb=0.5) == tmp_path / "a"
    monkeypatch.setenv("WGANLAB_MIN_FREE_MB", "0.5")
    runs.check_output_folder(tmp_path / "a")
    monkeypatch.setenv("WGANLAB_MIN_FREE_MB", "lots")
    with pytest.raises(InputError, match="WGANLAB_MIN_FREE_MB='lots' is not a number"):
        runs.check_output_folder(tmp_path / "a")
    monkeypatch.delenv("WGANLAB_MIN_FREE_MB")
    assert main(["train", "--set", f"out={tmp_path / 'b'}", "--set", "steps=1"]) == 2
    assert "MiB free" in capsys.readouterr().err
    assert not list((tmp_path / "b").iterdir())  # refused before a run folder was made


# -- a diverging run fails its experiment; reproduce goes on ------------------------------------------


def test_diverging_experiment_is_recorded_failed_and_reproduce_goes_on(tmp_path, monkeypatch):
    real_iteration = Trainer.iteration

    def nan_weights_at_step_8(self, diagnose=True):
        stats = real_iteration(self, diagnose)
        if self.step == 7:
            with torch.no_grad():
                next(self.G.parameters()).fill_(float("nan"))
        return stats

    monkeypatch.setattr(Trainer, "iteration", nan_weights_at_step_8)
    over = {"gmm8-tracking": {"data": "gauss8:n=100", "steps": "20", "track_every": "10", "hidden": "16"},
            "mean-vs-real-dimension": {"dims": "1,5", "batch": "16", "repeats": "2"}}
    out = reproduce(list(over), out=tmp_path / "run", overrides=over, progress=False, device="cpu",
                    executor="local")
    failed = json.loads((out / "gmm8-tracking" / "result.json").read_text())
    assert failed["status"] == "failed"
    assert failed["error"].startswith("TrainingDiverged: training run 'wgan-gp' diverged")
    assert "at step 8" in failed["error"]
    assert json.loads((out / "gmm8-tracking" / "wgan-gp" / "summary.json").read_text())["status"] == "diverged"
    assert json.loads((out / "mean-vs-real-dimension" / "result.json").read_text())["status"] == "done"
    assert "experiment failed" in (out / "report.html").read_text()


# -- kill -9 at random moments and inside a checkpoint write; resume; same result ---------------------

SRC = str(Path(__file__).resolve().parents[1] / "src")
KILL_CFG = {"data": "squares:size=8:square=3", "m": "16", "g_hidden": "32", "c_hidden": "64", "steps": "300",
            "n_critic": "2", "batch": "32", "track_every": "20", "grid_every": "100", "ckpt_every": "20",
            "device": "cpu", "threads": "1"}
# A child that trains like ``wganlab train`` but, at its first checkpoint write, stops between writing the
# temporary file and renaming it onto checkpoint.pt (the previous one is already moved to .prev), tells the
# parent through a flag file and waits there to be killed.
PAUSE_IN_CHECKPOINT_WRITE = """
import os, sys, time
from pathlib import Path
from wganlab.cli import main
flag, real_replace = Path(sys.argv[1]), os.replace
def replace_after_a_pause(src, dst):
    if Path(dst).name == "checkpoint.pt" and Path(src).name.endswith(".tmp"):
        flag.write_text(str(src))
        time.sleep(600)
    real_replace(src, dst)
os.replace = replace_after_a_pause
sys.exit(main(sys.argv[2:]))
"""


def _spawn(args: list[str], script: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", script] if script else [sys.executable, "-m", "wganlab"]
    return subprocess.Popen(cmd + args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, proc: subprocess.Popen, what: str) -> bool:
    """Poll until ``condition()`` (True) or the process exits (False); a hang fails the test."""
    for _ in range(3000):
        if condition():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"child never reached: {what}")


def _rows(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time"} for r in runs.read_jsonl(run_dir / "metrics.jsonl")]


@pytest.mark.slow
def test_kill_9_anywhere_then_resume_gives_the_uninterrupted_result(tmp_path):
    reference = train(replace(TrainConfig(out=str(tmp_path / "ref")), KILL_CFG, from_text=True), progress=False)
    rng = random.Random(6)
    sets = [a for k, v in KILL_CFG.items() for a in ("--set", f"{k}={v}")]
    proc = _spawn(["train", *sets, "--set", f"out={tmp_path / 'killed'}"])
    run_dir = tmp_path / "killed" / reference.run_dir.name
    kills = 0
    for attempt in range(3):
        if attempt:
            proc = _spawn(["train", "--resume", str(run_dir)])
        before = len(_rows(run_dir))
        if _wait_for(lambda b=before: len(_rows(run_dir)) > b + 1, proc, "training progress"):
            # a random moment within about one checkpoint period (20 steps of a few ms): mid-step,
            # mid-metrics-line or mid-checkpoint, and never so late that the run ends before the kills below
            time.sleep(rng.uniform(0.0, 0.05))
            proc.send_signal(signal.SIGKILL)
        kills += proc.wait() == -signal.SIGKILL
    # once exactly inside a checkpoint write: the new checkpoint is a temporary file, checkpoint.pt is gone
    flag = tmp_path / "in-checkpoint-write"
    proc = _spawn([str(flag), "train", "--resume", str(run_dir)], PAUSE_IN_CHECKPOINT_WRITE)
    assert _wait_for(flag.exists, proc, "a checkpoint write"), proc.communicate()
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL and not (run_dir / "checkpoint.pt").exists()
    assert (run_dir / "checkpoint.pt.prev").exists() and Path(flag.read_text()).exists()
    # and a torn newest checkpoint (as a non-atomic file system could leave): detected, the previous one used
    proc = _spawn(["train", "--resume", str(run_dir)])
    _wait_for(lambda: (run_dir / "checkpoint.pt").exists(), proc, "a new checkpoint")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ck = run_dir / "checkpoint.pt"
    if ck.exists():
        ck.write_bytes(ck.read_bytes()[:-100])
    out, err = _spawn(["train", "--resume", str(run_dir)]).communicate()
    assert "done after 300 generator steps" in out, err
    assert not ck.exists() or "torn or corrupt; using the previous one" in err
    assert kills >= 1  # at least one random kill landed mid-run
    assert _rows(run_dir) == _rows(reference.run_dir)
    final, want = checkpoint.load_latest(ck), checkpoint.load_latest(reference.run_dir / "checkpoint.pt")
    assert final["step"] == want["step"] == 300
    for part in ("generator", "critic"):
        for k, v in want[part].items():
            torch.testing.assert_close(final[part][k], v, rtol=0, atol=0)
