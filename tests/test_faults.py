"""Faults handled by tests that cause them: an unusable output folder, a diverging run inside ``reproduce``,
a training process killed with SIGKILL (also inside a checkpoint write), corrupt dataset files."""

import json
import os
import shutil
from collections import namedtuple

import pytest
import torch

from wganlab import runs
from wganlab.cli import main
from wganlab.errors import InputError
from wganlab.reproduce import reproduce
from wganlab.train import Trainer

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

    def nan_weights_at_step_8(self):
        stats = real_iteration(self)
        if self.step == 7:
            with torch.no_grad():
                next(self.G.parameters()).fill_(float("nan"))
        return stats

    monkeypatch.setattr(Trainer, "iteration", nan_weights_at_step_8)
    over = {"gmm8-tracking": {"data": "gauss8:n=100", "steps": "20", "track_every": "10", "hidden": "16"},
            "mean-vs-real-dimension": {"dims": "1,5", "batch": "16", "repeats": "2"}}
    out = reproduce(list(over), out=tmp_path / "run", overrides=over, progress=False, device="cpu")
    failed = json.loads((out / "gmm8-tracking" / "result.json").read_text())
    assert failed["status"] == "failed"
    assert failed["error"].startswith("TrainingDiverged: training run 'wgan-gp' diverged")
    assert "at step 8" in failed["error"]
    assert json.loads((out / "gmm8-tracking" / "wgan-gp" / "summary.json").read_text())["status"] == "diverged"
    assert json.loads((out / "mean-vs-real-dimension" / "result.json").read_text())["status"] == "done"
    assert "experiment failed" in (out / "report.html").read_text()
