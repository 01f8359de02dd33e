"""The training loop: it lowers the exact W1, writes a complete run folder, resumes exactly."""

import json

import pytest
import torch

from wganlab import checkpoint
from wganlab.cli import main
from wganlab.errors import ConfigError
from wganlab.runs import read_jsonl
from wganlab.train import TrainConfig, Trainer, resume, train


def small(tmp_path, **kw) -> TrainConfig:
    base = dict(data="squares:size=8:square=3", m=16, g_hidden=32, c_hidden=64, steps=60, n_critic=2, batch=32,
                track_every=20, grid_every=30, ckpt_every=20, out=str(tmp_path), device="cpu", threads=1)
    return TrainConfig(**{**base, **kw})


def test_fc_wgan_on_squares_lowers_exact_w1(tmp_path):
    res = train(small(tmp_path, steps=300, track_every=100, lr_g=1e-3), progress=False)
    rows = read_jsonl(res.run_dir / "metrics.jsonl")
    assert res.status == "done" and rows[0]["step"] == 0 and rows[-1]["step"] == 300
    assert rows[-1]["w1"] < 0.7 * rows[0]["w1"]


def test_run_folder_is_complete_and_self_describing(tmp_path):
    res = train(small(tmp_path), progress=False)
    d = res.run_dir
    assert d.name.startswith("00000-")
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["data"] == "squares:size=8:square=3" and cfg["steps"] == 60
    rows = read_jsonl(d / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 20, 40, 60]
    assert {"w1", "estimate", "lipschitz", "critic_loss", "generator_loss"} <= set(rows[-1])
    assert (d / "grids" / "step-000030.png").is_file() and (d / "nearest.png").is_file()
    summary = json.loads((d / "summary.json").read_text())
    assert summary["status"] == "done" and summary["final"]["w1"] == rows[-1]["w1"]
    assert "w1 =" in (d / "summary.txt").read_text()
    st = checkpoint.load_latest(d / "checkpoint.pt")  # weights_only load
    assert st["step"] == 60 and set(st) >= {"generator", "critic", "opt_g", "opt_d", "rng", "config"}
    assert train(small(tmp_path), progress=False).run_dir.name.startswith("00001-")


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    full = train(small(tmp_path / "a"), progress=False)
    part = train(small(tmp_path / "b", steps=40), progress=False)  # stops (as if killed) after step 40
    resumed = resume(part.run_dir, steps=60, progress=False)
    a = read_jsonl(full.run_dir / "metrics.jsonl")
    b = read_jsonl(resumed.run_dir / "metrics.jsonl")
    strip = [{k: v for k, v in r.items() if k != "time"} for r in a]
    assert [{k: v for k, v in r.items() if k != "time"} for r in b] == strip
    for p, q in zip(full.generator.parameters(), resumed.generator.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_resume_discards_metrics_written_after_the_last_checkpoint(tmp_path):
    part = train(small(tmp_path, steps=40, ckpt_every=40), progress=False)
    with open(part.run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 50, "w1": 123.0}) + "\n" + '{"step": 5')  # a later row and a torn line
    resumed = resume(part.run_dir, steps=60, progress=False)
    steps = [r["step"] for r in read_jsonl(resumed.run_dir / "metrics.jsonl")]
    assert steps == [0, 20, 40, 60]


def test_torn_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys):
    part = train(small(tmp_path, steps=40), progress=False)
    ck = part.run_dir / "checkpoint.pt"
    ck.write_bytes(ck.read_bytes()[:1000])  # a write cut short
    st = checkpoint.load_latest(ck)
    assert st is not None and st["step"] == 20
    assert "torn or corrupt" in capsys.readouterr().err


@pytest.mark.parametrize(("objective", "extra"), [
    ("wgan-wc", {}), ("wgan-gp", {}), ("ctransform", {}), ("ceps-transform", {"eps": 0.5}), ("nsgan", {}),
    ("sinkhorn", {"eps": 1.0}), ("assignment", {"cost": "sqeuclidean"}), ("assignment", {"cost": "ssim"}),
])
def test_every_objective_trains_on_images(tmp_path, objective, extra):
    res = train(small(tmp_path, objective=objective, steps=6, track_every=3, **extra), progress=False)
    rows = read_jsonl(res.run_dir / "metrics.jsonl")
    assert res.status == "done" and rows[-1]["step"] == 6
    assert all(torch.isfinite(torch.tensor(r["w1"])) for r in rows)


@pytest.mark.parametrize("critic", ["cnn-gap", "cnn-fc", "groupsort"])
def test_every_critic_trains(tmp_path, critic):
    cfg = small(tmp_path, data="squares:size=16:square=4", critic=critic, c_channels=(8, 8, 8), c_hidden=32,
                steps=4, track_every=2, track=("w1", "patch-swd", "patch-swd-local"), patch_size=7, patch_stride=3)
    rows = read_jsonl(train(cfg, progress=False).run_dir / "metrics.jsonl")
    assert {"w1", "patch-swd", "patch-swd-local"} <= set(rows[-1])


def test_continuous_generator_on_vector_data(tmp_path):
    cfg = small(tmp_path, data="gauss8:n=200", m=None, z_dim=2, generator="fc", track=("w1", "batch-w1"),
                track_samples=100, steps=10, track_every=5)
    rows = read_jsonl(train(cfg, progress=False).run_dir / "metrics.jsonl")
    assert "batch-w1" in rows[-1] and rows[-1]["w1"] > 0


def test_divergence_stops_the_run_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    real_iteration = Trainer.iteration

    def blow_up_at_step_25(self, diagnose=True):
        stats = real_iteration(self, diagnose)
        if self.step == 24:  # the 25th update makes the generator's weights NaN
            with torch.no_grad():
                next(self.G.parameters()).fill_(float("nan"))
        return stats

    monkeypatch.setattr(Trainer, "iteration", blow_up_at_step_25)
    res = train(small(tmp_path, steps=60, ckpt_every=10), progress=False)
    assert res.status == "diverged" and res.step == 25
    summary = json.loads((res.run_dir / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["final"]["last_good_step"] == 20
    st = checkpoint.load_latest(res.run_dir / "checkpoint.pt")
    assert st["step"] == 20 and all(torch.isfinite(v).all() for v in st["generator"].values())
    assert all(torch.isfinite(p).all() for p in res.generator.parameters())  # restored, usable


def test_cli_train_dry_run_and_errors(tmp_path, capsys):
    assert main(["train", "--preset", "squares-fc", "--set", "steps=7", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 7
    assert main(["train", "--set", "stepz=7", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wganlab: error: unknown config key(s) stepz") and err.count("\n") == 1
    assert main(["train", "--set", "steps=seven", "--dry-run"]) == 2
    assert "steps: expected an integer" in capsys.readouterr().err
    assert main(["train", "--preset", "nope", "--dry-run"]) == 2
    with pytest.raises(ConfigError, match="not a run folder"):
        resume(tmp_path)


def test_cli_train_runs_a_preset(tmp_path, capsys):
    code = main(["train", "--preset", "squares-fc", "--set", f"out={tmp_path}", "--set", "steps=4",
                 "--set", "track_every=2", "--set", "data=squares:size=8:square=3", "--set", "threads=1"])
    assert code == 0 and "done after 4 generator steps" in capsys.readouterr().out


FASHION = pytest.mark.skipif(not __import__("pathlib").Path("/usr/share/datasets/fashion-mnist").is_dir(),
                             reason="Fashion-MNIST (Debian dataset-fashion-mnist) is not installed")


@FASHION
@pytest.mark.parametrize("objective", ["wgan-wc", "wgan-gp", "ctransform", "ceps-transform", "nsgan", "sinkhorn",
                                       "assignment"])
def test_cli_trains_every_objective_on_fashion_mnist(tmp_path, objective, capsys):
    args = ["train", "--set", f"objective={objective}", "--set", "data=fashion-mnist:train:n=200:size=16",
            "--set", f"out={tmp_path}", "--set", "steps=4", "--set", "track_every=2", "--set", "n_critic=1",
            "--set", "c_hidden=64", "--set", "threads=1", "--set", "grid_every=2"]
    assert main(args) == 0
    (run,) = tmp_path.iterdir()
    assert {"config.json", "metrics.jsonl", "summary.json", "summary.txt", "checkpoint.pt", "nearest.png",
            "grids"} <= {p.name for p in run.iterdir()}
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl")] == [0, 2, 4]


@pytest.mark.parametrize("objective", ["wgan-gp", "wgan-wc", "nsgan"])
def test_diagnostics_are_computed_at_recorded_steps_only_and_do_not_change_training(tmp_path, objective):
    """The generator step's extra-pass statistics (a WGAN's Lipschitz bound on interpolates, NS-GAN's value
    with D(real)) come only where a row is recorded; skipping them elsewhere leaves the losses, the models
    and every random stream bit for bit as when they run at every step."""
    a = Trainer(small(tmp_path / "a", objective=objective), tmp_path / "a")
    b = Trainer(small(tmp_path / "b", objective=objective), tmp_path / "b")
    b.load_state(a.state())
    start = torch.get_rng_state()
    stats_a = [a.iteration(diagnose=True) for _ in range(4)]
    end_a = torch.get_rng_state()
    torch.set_rng_state(start)
    stats_b = [b.iteration(diagnose=i == 3) for i in range(4)]
    assert torch.equal(torch.get_rng_state(), end_a)  # the same random numbers drawn
    for i, (sa, sb) in enumerate(zip(stats_a, stats_b, strict=True)):
        assert sa["generator_loss"] == sb["generator_loss"] and sa["critic_loss"] == sb["critic_loss"]
        assert ("estimate" in sb) == (i == 3 or objective != "nsgan")
        assert ("lipschitz" in sb) == (i == 3 and objective != "nsgan")
    assert stats_a[-1] == stats_b[-1]
    for pa, pb in zip([*a.G.parameters(), *a.D.parameters()], [*b.G.parameters(), *b.D.parameters()], strict=True):
        assert torch.equal(pa, pb)


def test_training_rows_carry_the_diagnostics(tmp_path):
    res = train(small(tmp_path, objective="wgan-gp", steps=6, track_every=3, track=("w1",)), progress=False)
    rows = read_jsonl(res.run_dir / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 3, 6]
    assert all({"lipschitz", "normalised", "estimate", "critic_lipschitz"} <= set(r) for r in rows[1:])
