"""Every experiment's ``paper`` preset runs end to end for one or two steps (one where the paper's 64 px
networks make each step cost seconds on a CPU), so a paper run on a GPU cannot
fail after hours on a shape or config error; and a paper preset whose data set is missing stops before any
training, with the loader's message saying where to put the files.

Each case keeps the paper's architectures, patch sizes, costs and objective settings and overrides only
steps, repeats and set sizes (table ``MINIMAL``). Where the paper's data set is not installed here, its
``data`` key is overridden, explicitly, to the synthetic ``noise`` images of the same shape (``shaped``).
"""

import dataclasses

import pytest
import torch

from wganlab import data
from wganlab.errors import DatasetError
from wganlab.experiments import CATALOGUE, EXPERIMENTS
from wganlab.runner import run_experiment

# image shape (channels, side) of each paper data set when its spec names no size
SHAPES = {"mnist": (1, 28), "fashion-mnist": (1, 28), "cifar10": (3, 32), "celeba": (3, 64)}


def installed(spec: str) -> bool:
    try:
        data.load(str(data.parse_spec(spec).replace(n=1)))
    except DatasetError:
        return False
    return True


def shaped(spec: str, n: int) -> str:
    """``spec`` with ``n`` items where its data set is installed, else ``noise`` images of the same shape."""
    parsed = data.parse_spec(spec)
    if installed(spec):
        return str(parsed.replace(n=n))
    channels, side = SHAPES[parsed.name]
    return f"noise:n={n}:size={parsed.options.get('size', side)}:channels={channels}"


def paper(name: str, key: str) -> str:
    return EXPERIMENTS[name].presets["paper"][key]


MINIMAL = {  # experiment -> overrides of its paper preset (as text, like --set)
    "blur-vs-real": lambda: {"data": shaped(paper("blur-vs-real", "data"), 40), "batch_sizes": "4,8",
                             "n_projections": "16", "otmeans_iters": "1", "otmeans_ot_steps": "1",
                             "kmedians_init": "1", "batch_level_repeats": "2"},
    "otmeans-vs-fc-wgan": lambda: {"data": shaped(paper("otmeans-vs-fc-wgan", "data"), 40), "m": "8", "steps": "2",
                                   "track_every": "1", "copy_data": shaped(paper("otmeans-vs-fc-wgan", "copy_data"), 8),
                                   "copy_steps": "2", "otmeans_iters": "1", "otmeans_ot_steps": "1"},
    "critic-architecture": lambda: {"data": shaped(paper("critic-architecture", "data"), 40), "m": "8", "steps": "2",
                                    "track_every": "1", "n_projections": "16", "direct_steps": "1"},
    "multiscale-patch": lambda: {"data": shaped(paper("multiscale-patch", "data"), 20), "m": "4",
                                 "steps_per_level": "1", "n_projections": "8", "otmeans_iters": "1",
                                 "otmeans_ot_steps": "1"},
    "oracle-estimate": lambda: {"data": shaped(paper("oracle-estimate", "data"), 40), "lambdas": "1",
                                "iterations": "2", "log_every": "1"},
    "gmm8-tracking": lambda: {"data": "gauss8:n=100", "steps": "2", "track_every": "1", "critic_iterations": "2"},
    "batch-estimate": lambda: {"data": shaped(paper("batch-estimate", "data"), 70), "steps": "1", "track_every": "1",
                               "kmedians_init": "1"},
    "sample-complexity": lambda: {"sizes": "10,20", "repeats": "2", "sinkhorn_sizes": "10,20",
                                  "sinkhorn_repeats": "2"},
    "mean-vs-real-dimension": lambda: {"dims": "1,20", "repeats": "2"},
    "sinkhorn-generator": lambda: {"data": shaped(paper("sinkhorn-generator", "data"), 70), "eps": "1.0",
                                   "steps": "1"},
    "lipschitz-critics": lambda: {"data": "gauss8:n=200", "steps": "1"},
    # three of the seven models (a critic objective, a plain and an image cost): each costs ~20 s on a CPU at
    # the paper's generator width, as it generates its evaluation points in chunks of 1,000
    "assignment": lambda: {"data": shaped(paper("assignment", "data"), 40), "steps": "2", "latent_centres": "50",
                           "n_critic": "1", "oversample": "2", "ring_steps": "2", "models": "WGAN-GP,L2^2,SSIM"},
    "estimator-error": lambda: {"datasets": ",".join(d if d == "gauss2" else shaped(d, 40)
                                                     for d in paper("estimator-error", "datasets")),
                                "iterations": "2", "trace_every": "1", "repeats": "1", "eval_batches": "2"},
}

XFAIL: dict[str, str] = {}  # experiment -> why its paper preset does not yet run (fixed after the merge)


def test_every_experiment_has_a_minimal_paper_case():
    assert set(MINIMAL) == set(CATALOGUE)


@pytest.mark.slow  # ~8 min in all on a loaded 2-core machine, most of it in the 64 px conv generators
@pytest.mark.parametrize("name", CATALOGUE)
def test_paper_preset_runs_end_to_end(name, tmp_path):
    if name in XFAIL:
        pytest.xfail(XFAIL[name])
    r = run_experiment(name, "paper", tmp_path / name, overrides=MINIMAL[name](), progress=False, device="cpu")
    assert r["status"] == "done", (tmp_path / name / "error.txt").read_text() if r["status"] != "done" else ""
    assert len(r["claims"]) == len(EXPERIMENTS[name].claims) and r["figures"]
    cfg = EXPERIMENTS[name].make_config("paper")  # what was kept from the paper: everything not overridden
    kept = {f.name for f in dataclasses.fields(cfg)} - set(MINIMAL[name]()) - {"device"}
    run_cfg = EXPERIMENTS[name].make_config("paper", MINIMAL[name]())
    assert all(getattr(run_cfg, k) == getattr(cfg, k) for k in kept)


def _missing_paper_data(name: str) -> bool:
    preset = EXPERIMENTS[name].presets["paper"]
    specs = [v for k, v in preset.items() if k in ("data", "copy_data")] + [
        d for d in preset.get("datasets", ()) if d != "gauss2"]
    return any(not installed(s) for s in specs)


@pytest.mark.parametrize("name", [n for n in CATALOGUE if _missing_paper_data(n)])
def test_paper_preset_with_missing_data_stops_before_training(name, tmp_path, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("trained before finding that its data set is missing")

    monkeypatch.setattr(torch.autograd, "backward", no_training)
    r = run_experiment(name, "paper", tmp_path / name, progress=False, device="cpu")
    assert r["status"] == "failed" and "DatasetError" in r["error"] and "--data-root" in r["error"], r["error"]
    assert not any("instead" in n for n in r["notes"])  # no fallback was used
