"""wganlab's training step (one concatenated critic pass, piecewise-linear activations whose slope is held
constant, gradients only into the stepped model, a discrete generator's atoms computed once per critic
phase) against a plain PyTorch loop written the obvious way: the same losses and, after 10 generator steps,
the same parameters. Speed is the bench's business (``wganlab bench train-*``); nothing here is timed."""

import copy

import pytest
import torch

from wganlab.bench.baselines import PLAIN_OBJECTIVES
from wganlab.bench.train_cases import CRITICS, make_trainer, plain_steps, trainer_steps
from wganlab.models.critics import PiecewiseLinear

ITERS = 10


@pytest.fixture
def float64():
    """Both loops in float64: float32 rounding (a batch of 32 rows instead of two of 16 rounds differently)
    grows through 60 optimiser steps of a GAN; in float64 any difference left is the algebra's."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


#: pairs run without the ``slow`` mark (the others still run in CI)
QUICK = {("wgan-gp", "fc"), ("wgan-gp", "cnn-gap"), ("ctransform", "fc")}
PAIRS = [pytest.param(o, c, marks=() if (o, c) in QUICK else pytest.mark.slow)
         for o in PLAIN_OBJECTIVES for c in CRITICS]


@pytest.mark.parametrize(("objective", "critic"), PAIRS)
def test_trainer_steps_equal_the_plain_loop(objective, critic, tmp_path, float64):
    torch.set_num_threads(1)
    trainer = make_trainer(objective, critic, "squares:size=16:n=200", None, tmp_path, batch=16, c_hidden=64,
                           c_channels=(8, 16, 16), seed=3)
    # pixels a little off 0 and 1: weight clipping holds the critic's weights at exactly +-clip, where a binary
    # image's pre-activation can be a tie (0) that the two loops' summation orders round to either side of ReLU's
    # kink (seen on an AMD EPYC: the CNN critics' weights 2e-4 apart after 10 steps, not on an Intel Xeon)
    jitter = torch.rand(trainer.x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    trainer.x = trainer.x.double() + 1e-3 * jitter
    start = copy.deepcopy(trainer.state())
    base, G, D = plain_steps(trainer, start, ITERS)
    ours = trainer_steps(trainer, copy.deepcopy(start), ITERS)
    nc = trainer.cfg.n_critic
    want = [base[i * (nc + 1) + j] for i in range(ITERS) for j in (nc - 1, nc)]  # what the Trainer reports
    assert len(base) == ITERS * (nc + 1) and len(ours) == len(want)
    torch.testing.assert_close(torch.tensor(ours), torch.tensor(want), rtol=1e-5, atol=1e-5)
    for model, plain in ((trainer.G, G), (trainer.D, D)):
        ours_p, base_p = model.state_dict(), plain.state_dict()
        assert ours_p.keys() == base_p.keys()
        moved = max(float((ours_p[k] - start_p).abs().max())
                    for k, start_p in (start["generator"] if model is trainer.G else start["critic"]).items())
        assert moved > 1e-4  # the models did train, so equal parameters mean equal updates
        for k in ours_p:
            torch.testing.assert_close(ours_p[k], base_p[k], rtol=1e-4, atol=1e-4, msg=k)


@pytest.mark.parametrize("slope", [0.0, 0.2])
def test_piecewise_linear_equals_torch_to_second_order(slope):
    """Values, gradients and the gradient penalty's second-order term equal those of nn.ReLU / LeakyReLU."""
    g = torch.Generator().manual_seed(0)
    lin = torch.nn.Linear(6, 5)
    torch_act = torch.nn.LeakyReLU(slope) if slope else torch.nn.ReLU()
    x = torch.randn(7, 6, generator=g, requires_grad=True)
    results = []
    for act in (PiecewiseLinear(slope), torch_act):
        y = (act(lin(x)) ** 2).sum()
        (gx,) = torch.autograd.grad(y, x, create_graph=True)
        (gw,) = torch.autograd.grad(gx.norm(), lin.weight)
        results.append((y.detach(), gx.detach(), gw))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["adam", "rmsprop"])
def test_the_optimizers_update_as_torchs_per_parameter_loop(name):
    """``build_optimizer``'s fused Adam equals torch's per-parameter Adam to rounding after 10 steps, its
    foreach RMSprop bit for bit; an unknown name is a configuration error."""
    from wganlab.errors import ConfigError
    from wganlab.train import build_optimizer

    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(7, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    b = copy.deepcopy(a)
    ours = build_optimizer(name, a.parameters(), lr=1e-2)
    plain = (torch.optim.Adam(b.parameters(), lr=1e-2, betas=(0.5, 0.9), foreach=False) if name == "adam"
             else torch.optim.RMSprop(b.parameters(), lr=1e-2, foreach=False))
    x, w0 = torch.randn(32, 7), a[0].weight.detach().clone()
    for _ in range(10):
        for net, opt in ((a, ours), (b, plain)):
            opt.zero_grad()
            net(x).square().mean().backward()
            opt.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        if name == "rmsprop":
            assert torch.equal(pa, pb)
        else:
            torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)
    assert (a[0].weight - w0).abs().max() > 1e-3  # the steps moved the weights
    with pytest.raises(ConfigError, match="unknown optimizer 'sgd'"):
        build_optimizer("sgd", a.parameters(), lr=1e-2)
