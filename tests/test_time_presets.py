"""scripts/time_presets.py, which gives `wganlab list` its paper-preset times: the extrapolation from each
loop's first seconds, and the cut run itself (every loop recorded once, the experiment still ending)."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "time_presets.py"
spec = importlib.util.spec_from_file_location("time_presets", SCRIPT)
time_presets = importlib.util.module_from_spec(spec)
spec.loader.exec_module(time_presets)


def test_extrapolation_adds_each_loop_at_its_later_rate_and_the_fastest_measurement():
    rows = [
        # 11 steps timed: the first 2 s, 10 later ones in 1 s (0.1 s a step); 1,000 steps, tracked every 100
        {"experiment": "e", "kind": "train", "total": 1000, "done": 11, "first_s": 2.0, "later_s": 1.0,
         "track_every": 100, "measures_s": [5.0, 0.5]},
        {"experiment": "e", "kind": "loop", "total": 50, "done": 5, "first_s": 1.0, "later_s": 0.4},
        {"experiment": "e", "kind": "run", "seconds": 20.0, "status": 0},
        {"experiment": "f", "kind": "loop", "total": 10, "done": 3, "first_s": 0.0, "later_s": 2.0},
    ]
    out = time_presets.extrapolate(rows)
    loops = (2.0 + 999 * 0.1 + 11 * 0.5) + (1.0 + 49 * 0.1)
    spent = (2.0 + 1.0 + 5.5) + (1.0 + 0.4)
    assert out["e"] == {"loops": pytest.approx(loops), "other": pytest.approx(20.0 - spent), "stopped": False}
    assert out["f"] == {"loops": pytest.approx(9 * 1.0), "other": pytest.approx(0.0), "stopped": True}


def test_a_cut_run_records_every_loop_once_and_still_finishes(tmp_path):
    from wganlab.train import Trainer

    iteration = Trainer.iteration
    out = tmp_path / "t.jsonl"
    status = time_presets.main([str(out), "gmm8-tracking", "--seconds", "0.05", "--out", str(tmp_path / "runs"),
                                "--threads", "1", "--set", "gmm8-tracking.data=gauss8:n=100",
                                "--set", "gmm8-tracking.hidden=8", "--set", "gmm8-tracking.critic_iterations=400"])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert status == 0 and rows[-1]["kind"] == "run" and rows[-1]["status"] == 0
    assert Trainer.iteration is iteration  # the cut is undone: the rest of this process trains in full
    loops = [r for r in rows if r["kind"] != "run"]
    assert [r["loop"] for r in loops] == ["wgan-gp", "noise floor", "fixed sets"]
    assert all(1 < r["done"] < r["total"] and r["later_s"] >= 0.05 for r in loops)
    assert loops[0]["total"] == 1500 and len(loops[0]["measures_s"]) == 1  # quick: 1,500 steps; only step 0 measured
    summary = json.loads((tmp_path / "runs" / "gmm8-tracking" / "result.json").read_text())
    assert summary["status"] == "done"
