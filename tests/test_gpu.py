"""Device cleanliness. On the CPU: a training step never copies a tensor to the host (only the exact
solver in ``measure`` does, once per exact metric). On CUDA (tests marked ``gpu``, skipped without a
device): every model, objective and metric runs there, stays there and agrees with the CPU."""

import pytest
import torch

from wganlab import metrics
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
def test_an_experiment_runs_on_cuda(tmp_path):
    over = {"data": "squares:size=16:square=4", "m": "8", "steps": "4", "track_every": "2", "channels": "4,4,4",
            "n_projections": "16", "direct_steps": "3"}
    r = run_experiment("critic-architecture", "quick", tmp_path, overrides=over, progress=False, device="cuda")
    assert r["status"] == "done", r.get("error")
