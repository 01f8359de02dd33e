"""Device cleanliness. On the CPU: a training step never copies a tensor to the host (only the exact
solver in ``measure`` does, once per exact metric). On CUDA (tests marked ``gpu``, skipped without a
device): every model, objective and metric runs there, stays there and agrees with the CPU."""

import pytest
import torch

from wganlab import metrics
from wganlab.models import build_generator
from wganlab.ot import wasserstein
from wganlab.runner import run_experiment
from wganlab.train import TrainConfig, Trainer

OBJECTIVES = [("wgan-wc", {}), ("wgan-gp", {}), ("ctransform", {}), ("ceps-transform", {"eps": 0.5}),
              ("nsgan", {}), ("sinkhorn", {"eps": 1.0}), ("assignment", {"cost": "sqeuclidean"})]
CASES = [(o, "fc", e) for o, e in OBJECTIVES] + [("wgan-gp", c, {}) for c in ("cnn-gap", "cnn-fc", "groupsort")]


def _trainer(tmp_path, device, objective="wgan-gp", critic="fc", **kw) -> Trainer:
    cfg = TrainConfig(data="squares:size=16:square=4", m=16, g_hidden=32, c_hidden=32, c_channels=(4, 4, 4),
                      n_critic=2, batch=16, objective=objective, critic=critic, device=device, threads=1,
                      track=("w1", "patch-swd"), patch_size=5, patch_stride=3, n_projections=16, **kw)
    return Trainer(cfg, tmp_path)


@pytest.mark.parametrize(("objective", "critic", "extra"), CASES)
def test_training_step_makes_no_host_copies(tmp_path, monkeypatch, objective, critic, extra):
    t = _trainer(tmp_path, "cpu", objective, critic, **extra)
    t.measure()  # prepares the tracking targets (the training set's sorted projections), once per run
    copies = []
    for name in ("cpu", "numpy", "tolist"):
        real = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda self, *a, _r=real, _n=name, **k: copies.append(_n)
                            or _r(self, *a, **k))
    t.iteration()
    assert copies == []
    t.measure()  # the exact W1 solver runs on the CPU: one copy of the cost matrix (sliced metrics sort
    assert copies.count("cpu") == 1  # CPU tensors with numpy, a path a CUDA tensor never takes)


gpu = pytest.mark.gpu


@gpu
@pytest.mark.parametrize(("objective", "critic", "extra"), CASES)
def test_training_runs_on_cuda(tmp_path, objective, critic, extra):
    t = _trainer(tmp_path, "cuda", objective, critic, **extra)
    params = list(t.G.parameters()) + (list(t.D.parameters()) if t.D is not None else [])
    assert all(p.device.type == "cuda" for p in params) and t.x.device.type == "cuda"
    for _ in range(3):
        stats = t.iteration()
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values() if isinstance(v, float))
    assert t.generated_set().device.type == "cuda"
    out = t.measure()
    assert set(out) == {"w1", "patch-swd"} and all(v > 0 for v in out.values())
    t.save()
    st = t.state()
    assert st["rng"]["cuda"].dtype == torch.uint8


@gpu
@pytest.mark.parametrize("name", ["w1", "w2", "swd", "patch-swd", "patch-swd-local", "sinkhorn"])
def test_every_metric_on_cuda_agrees_with_the_cpu(name):
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(20, 1, 12, 12, generator=g) * 2 - 1, torch.rand(24, 1, 12, 12, generator=g) * 2 - 1
    metric = metrics.get_metric(name)
    opts = {k: v for k, v in {"patch_size": 5, "patch_stride": 3, "n_projections": 32, "seed": 0, "eps": 1.0}.items()
            if k in metric.options}
    on_cpu = metrics.compute(name, x, y, **opts)["value"]
    on_gpu = metrics.compute(name, x.cuda(), y.cuda(), **opts)["value"]
    torch.testing.assert_close(torch.tensor(on_gpu), torch.tensor(on_cpu), rtol=1e-4, atol=1e-5)


@gpu
def test_resume_on_cuda_reproduces_the_uninterrupted_run(tmp_path):
    def run(trainer: Trainer, steps: int) -> Trainer:  # trainers run one after another: they share torch's RNG
        for _ in range(steps):
            trainer.iteration()
        return trainer

    full = run(_trainer(tmp_path, "cuda"), 4)
    state = run(_trainer(tmp_path, "cuda"), 2).state()
    resumed = _trainer(tmp_path, "cuda")
    resumed.load_state(state)
    run(resumed, 2)
    for p, q in zip(full.G.parameters(), resumed.G.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


@gpu
@pytest.mark.parametrize("collinear", [False, True])
def test_exact_w1_of_a_cuda_batch_against_a_cpu_set(collinear):
    """A generated batch on CUDA against a set kept on the CPU (as ``Trainer.measure`` and OT-Means call it):
    the CPU's value, through the closed form on a line too."""
    g = torch.Generator().manual_seed(0)
    if collinear:
        e, t = torch.randn(1, 5, generator=g, dtype=torch.float64), torch.rand(50, 1, generator=g, dtype=torch.float64)
        x, y = t[:20] * e, (t[20:] + 0.3) * e
    else:
        x, y = torch.rand(20, 5, generator=g, dtype=torch.float64), torch.rand(30, 5, generator=g, dtype=torch.float64)
    on_cpu, mixed = wasserstein(x, y, p=1), wasserstein(x.cuda(), y, p=1)
    assert mixed.solver == on_cpu.solver and (on_cpu.solver == "closed-form-line") == collinear
    assert mixed.value == pytest.approx(on_cpu.value, rel=1e-12)


@gpu
@pytest.mark.parametrize("m", [8, None])
def test_sampling_with_a_seeded_cpu_generator_is_the_same_on_cuda(m):
    G = build_generator("fc", (1, 4, 4), z_dim=3, m=m, hidden=8, latent_noise=0.1 if m else 0.0)
    on_cpu = G.sample(6, torch.Generator().manual_seed(1))
    on_gpu = G.cuda().sample(6, torch.Generator().manual_seed(1))
    assert on_gpu.device.type == "cuda"
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, rtol=1e-5, atol=1e-6)


#: every experiment's quick preset cut to seconds (each runs end to end on CUDA below)
TINY = {
    "blur-vs-real": {"data": "digits:train:n=300", "batch_sizes": "10,20", "n_projections": "8", "patch_size": "3",
                     "otmeans_iters": "1", "otmeans_ot_steps": "1", "kmedians_init": "1", "batch_level_repeats": "2"},
    "otmeans-vs-fc-wgan": {"data": "digits:train:n=200", "m": "8", "steps": "4", "track_every": "2",
                           "copy_data": "squares:size=8:square=2:n=16", "copy_steps": "4", "otmeans_iters": "1",
                           "otmeans_ot_steps": "1"},
    "critic-architecture": {"data": "squares:size=16:square=4", "m": "8", "steps": "4", "track_every": "2",
                            "channels": "4,4,4", "n_projections": "16", "direct_steps": "3"},
    "multiscale-patch": {"data": "digits:train:n=100:size=16", "m": "4", "patch_size": "5", "min_side": "11",
                         "steps_per_level": "3", "n_projections": "8", "target_batch": "20", "metric_stride": "3",
                         "otmeans_iters": "1", "otmeans_ot_steps": "1"},
    "oracle-estimate": {"data": "digits:train:n=200", "lambdas": "1,10", "iterations": "20", "log_every": "10",
                        "critic_hidden": "16"},
    "gmm8-tracking": {"data": "gauss8:n=200", "steps": "20", "track_every": "10", "hidden": "16",
                      "critic_iterations": "20"},
    "batch-estimate": {"data": "digits:train:n=200:size=16", "steps": "4", "track_every": "2", "g_width": "4",
                       "channels": "4,4,4"},
    "sample-complexity": {"sizes": "10,25", "repeats": "2", "sinkhorn_sizes": "10", "sinkhorn_repeats": "2"},
    "mean-vs-real-dimension": {"dims": "1,2,5", "repeats": "2"},
    "sinkhorn-generator": {"data": "digits:train:n=200:size=16", "eps": "1", "steps": "3", "batch": "16",
                           "g_width": "4", "channels": "4,4,4"},
    "lipschitz-critics": {"data": "gauss8:n=200", "steps": "4", "hidden": "8"},
    "assignment": {"data": "digits:train:n=50:size=16", "models": "WGAN-GP,L2^2,SSIM", "steps": "3", "n_critic": "2",
                   "g_hidden": "16", "latent_centres": "20", "hidden": "16", "depth": "2", "oversample": "2",
                   "ring_steps": "3"},
    "estimator-error": {"datasets": "gauss2,digits:train:n=200", "iterations": "4", "trace_every": "2",
                        "repeats": "2", "eval_batches": "2"},
}


def test_the_cuda_run_of_every_experiment_covers_the_catalogue():
    from wganlab.experiments import CATALOGUE

    assert sorted(TINY) == sorted(CATALOGUE)


@gpu
@pytest.mark.parametrize("name", list(TINY))
def test_every_experiment_runs_on_cuda(tmp_path, monkeypatch, name):
    """Each experiment end to end on CUDA, its figures and claims too; every optimiser step (in ``Trainer`` or
    the experiment's own loops: critics on fixed sets, patch-SWD descents) updates CUDA tensors."""
    devices = []
    for opt in (torch.optim.Adam, torch.optim.RMSprop):
        monkeypatch.setattr(opt, "step", lambda self, *a, _step=opt.step, **k: devices.append(
            {p.device.type for group in self.param_groups for p in group["params"]}) or _step(self, *a, **k))
    r = run_experiment(name, "quick", tmp_path, overrides=TINY[name], progress=False, device="cuda")
    assert r["status"] == "done", r.get("error")
    assert all(d == {"cuda"} for d in devices)
    assert devices or name in ("blur-vs-real", "sample-complexity", "mean-vs-real-dimension")
