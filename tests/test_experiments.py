"""Every experiment runs end to end at a tiny size and evaluates its claims; reproduce resumes; the report
builds and every image on the page loads in a headless browser."""

import dataclasses
import json
import shutil
import subprocess

import pytest

from wganlab.cli import main
from wganlab.experiments import CATALOGUE, EXPERIMENTS
from wganlab.report.html import build_report
from wganlab.reproduce import reproduce
from wganlab.runner import run_experiment

SQ16 = "squares:size=16:square=4"
TINY = {
    "blur-vs-real": {"data": SQ16, "batch_sizes": "4,8", "patch_size": "5", "patch_stride": "3", "n_projections": "16",
                     "otmeans_iters": "1", "otmeans_ot_steps": "2", "kmedians_init": "1", "batch_level_repeats": "2"},
    "otmeans-vs-fc-wgan": {"data": "squares:size=8:square=3", "m": "8", "steps": "20", "track_every": "10",
                           "copy_data": "squares:size=8:square=3:n=10", "copy_steps": "20", "otmeans_iters": "1",
                           "otmeans_ot_steps": "2"},
    "critic-architecture": {"data": SQ16, "m": "8", "steps": "4", "track_every": "2", "channels": "4,4,4",
                            "n_projections": "16", "direct_steps": "3"},
    "multiscale-patch": {"data": SQ16, "m": "4", "patch_size": "5", "steps_per_level": "3", "n_projections": "8",
                         "otmeans_iters": "1", "otmeans_ot_steps": "1"},
    "oracle-estimate": {"data": "digits:train:n=100", "lambdas": "1,10", "iterations": "20", "critic_hidden": "32",
                        "log_every": "10"},
    "gmm8-tracking": {"data": "gauss8:n=100", "steps": "20", "track_every": "10", "hidden": "16",
                      "critic_iterations": "10"},
    "batch-estimate": {"data": SQ16, "steps": "6", "track_every": "3", "g_width": "8", "channels": "4,4,4"},
    "sample-complexity": {"d": "5", "sizes": "10,20,40", "repeats": "2", "sinkhorn_sizes": "10,20",
                          "sinkhorn_repeats": "2"},
    "mean-vs-real-dimension": {"dims": "1,5,20", "batch": "16", "repeats": "2"},
    "sinkhorn-generator": {"data": SQ16, "eps": "1.0", "steps": "3", "g_width": "8", "channels": "4,4,4"},
    "lipschitz-critics": {"data": "gauss8:n=200", "steps": "5", "hidden": "16"},
    "assignment": {"data": "squares:size=8:square=3:n=40", "steps": "3", "latent_centres": "20", "hidden": "16",
                   "oversample": "2", "ring_steps": "3", "n_critic": "2"},
    "estimator-error": {"datasets": "gauss2,digits:train:n=100", "iterations": "10", "repeats": "2",
                        "eval_batches": "3"},
}


def test_the_catalogue_is_complete():
    assert list(EXPERIMENTS) == list(CATALOGUE) and len(CATALOGUE) == 13
    assert set(TINY) == set(CATALOGUE)
    for exp in EXPERIMENTS.values():
        assert {"quick", "paper"} <= set(exp.presets) and exp.claims and exp.source
        exp.make_config("paper")  # every paper preset is a valid config


@pytest.mark.parametrize("name", CATALOGUE)
def test_experiment_runs_end_to_end_and_checks_its_claims(name, tmp_path):
    r = run_experiment(name, "quick", tmp_path / name, overrides=TINY[name], progress=False, device="cpu")
    assert r["status"] == "done", (tmp_path / name / "error.txt").read_text() if r["status"] != "done" else ""
    assert len(r["claims"]) == len(EXPERIMENTS[name].claims)
    for c in r["claims"]:
        assert c["status"] in ("holds", "does not hold", "not comparable") and c["ours"]
    assert r["figures"] and all((tmp_path / name / f["file"]).is_file() for f in r["figures"])
    on_disk = json.loads((tmp_path / name / "result.json").read_text())
    assert on_disk["status"] == "done" and on_disk["claims"] == json.loads(json.dumps(r["claims"]))
    assert json.loads((tmp_path / name / "config.json").read_text())["experiment"] == name


def test_reproduce_resumes_and_records_failures(tmp_path, capsys):
    out = tmp_path / "run"
    over = {"mean-vs-real-dimension": TINY["mean-vs-real-dimension"],
            "sample-complexity": {**TINY["sample-complexity"], "sizes": "10,10"}}  # a singular fit still reports
    reproduce(["mean-vs-real-dimension", "sample-complexity"], out=out, overrides=over, progress=False, device="cpu",
              executor="local")
    first = json.loads((out / "mean-vs-real-dimension" / "result.json").read_text())
    reproduce(["mean-vs-real-dimension", "sample-complexity"], out=out, resume=True, overrides=over,
              progress=False, device="cpu", executor="local")
    assert "done earlier, kept" in capsys.readouterr().out
    assert json.loads((out / "mean-vs-real-dimension" / "result.json").read_text()) == first
    bad = {"mean-vs-real-dimension": {**TINY["mean-vs-real-dimension"], "dims": "0"}}
    reproduce(["mean-vs-real-dimension"], out=tmp_path / "bad", overrides=bad, progress=False, device="cpu",
              executor="local")
    folder = tmp_path / "bad" / "mean-vs-real-dimension"
    r = json.loads((folder / "result.json").read_text())
    assert r["status"] == "failed" and r["error"] and (folder / "error.txt").is_file()
    html = (tmp_path / "bad" / "report.html").read_text()
    assert "experiment failed" in html


def test_report_page_and_every_image_loads_in_a_browser(tmp_path):
    out = tmp_path / "run"
    names = ["mean-vs-real-dimension", "sample-complexity"]
    reproduce(names, out=out, overrides={n: TINY[n] for n in names}, progress=False, device="cpu", executor="local")
    (out / "sample-complexity" / "result.json").unlink()  # as if killed before writing its result
    page = build_report(out)
    html = page.read_text()
    assert "<table>" in html and "mean-vs-real-dimension" in html and "interrupted" in html
    assert "http://" not in html and "https://" not in html  # nothing from the network
    images = html.count("<img ")
    assert images >= 1
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Chromium is not installed (bash scripts/setup.sh --dev installs it as root)")
    probe = out / "probe.html"
    probe.write_text(html.replace("</body>", "<script>addEventListener('load', () => { const i = [...document.images];"
                                  " document.title = 'IMAGES ' + i.length + ' ' + i.filter(x => x.complete && "
                                  "x.naturalWidth > 0).length; });</script></body>"))
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          f"--user-data-dir={tmp_path / 'profile'}", "--allow-file-access-from-files",
                          "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert f"<title>IMAGES {images} {images}</title>" in dom


def test_cli_list_and_report(tmp_path, capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in CATALOGUE) and "fashion-mnist" in out and "patch-swd" in out
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no such run folder" in capsys.readouterr().err
    assert main(["reproduce", "no-such-experiment"]) == 2
    assert "unknown experiment 'no-such-experiment'" in capsys.readouterr().err


def test_reproduce_shares_the_cores_out_among_worker_processes(monkeypatch):
    from wganlab import reproduce as rp

    monkeypatch.setattr(rp.os, "cpu_count", lambda: 4)
    assert rp._parallelism("auto", None, None, 13, "cpu") == ("process", 4, 1)
    assert rp._parallelism("auto", 2, None, 13, "cpu") == ("process", 2, 2)
    assert rp._parallelism("auto", None, None, 1, "cpu") == ("local", 1, None)
    assert rp._parallelism("auto", None, 3, 13, "cuda") == ("local", 1, 3)
    assert rp._parallelism("process", None, None, 2, "cpu") == ("process", 2, 2)


def test_the_longest_experiments_start_first_and_results_keep_their_order(tmp_path, capsys):
    from wganlab.runner import run_tasks

    names = ["mean-vs-real-dimension", "sample-complexity"]
    tasks = [{"experiment": n, "preset": "quick", "overrides": {k: str(v) for k, v in TINY[n].items()}, "seed": None,
              "label": n, "folder": str(tmp_path / n), "expected_seconds": s}
             for n, s in zip(names, (1.0, 9.0), strict=True)]
    results = run_tasks(tasks)
    out = capsys.readouterr().out
    assert out.index("[sample-complexity] running") < out.index("[mean-vs-real-dimension] running")
    assert [r["experiment"] for r in results] == names and all(r["status"] == "done" for r in results)


def test_only_a_missing_measurement_is_not_comparable_and_a_bug_in_a_claim_fails_loudly():
    from wganlab.experiments.base import NA, Claim, Experiment, verdict

    def bad(m):
        return verdict(m["rows"]["misspelt"] > 0, "x")  # a nested KeyError: a bug, not a missing measurement

    exp = Experiment("probe", "probe", "-", dict, {"quick": {}}, lambda cfg, ctx: {},
                     (Claim("ok", "s", "-", "", lambda m: verdict(m["a"] > 1, "a")),
                      Claim("bug", "s", "-", "", bad)))
    with pytest.raises(KeyError, match="misspelt") as info:
        exp.evaluate({"a": 2, "rows": {}})
    assert any("claim 'bug'" in n for n in info.value.__notes__)
    with pytest.raises(TypeError):
        exp.evaluate({"a": "2", "rows": {"misspelt": 1}})  # '>' between str and int: a bug
    missing = Experiment("probe", "probe", "-", dict, {"quick": {}}, lambda cfg, ctx: {}, exp.claims[:1])
    [v] = missing.evaluate({})
    assert v["status"] == NA and "'a'" in v["note"]


MEDIUM = ("gmm8-tracking", "oracle-estimate", "lipschitz-critics", "estimator-error", "batch-estimate",
          "sample-complexity", "mean-vs-real-dimension", "otmeans-vs-fc-wgan")


@pytest.mark.parametrize("name", MEDIUM)
def test_medium_presets_are_valid_and_estimated_at_most_about_ten_minutes(name):
    exp = EXPERIMENTS[name]
    medium = exp.make_config("medium")
    assert medium != exp.make_config("quick") and 0 < exp.medium_seconds <= 700  # about ten minutes
    data = [v for k, v in dataclasses.asdict(medium).items() if k in ("data", "copy_data")]
    assert not any(d.startswith(("mnist", "cifar10", "celeba")) for d in data)  # not installable here
