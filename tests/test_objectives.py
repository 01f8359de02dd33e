"""Objectives: gradient penalty and clipping done right, c-transform exactness, assignment balance."""

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from wganlab.errors import ConfigError
from wganlab.models import FCCritic
from wganlab.objectives import (
    Assignment,
    CTransform,
    EntropicCTransform,
    GradientPenalty,
    NonSaturating,
    SinkhornGenerator,
    WeightClipping,
    assignment_stats,
    backward,
    build_objective,
    gradient_norms,
    interpolates,
)
from wganlab.objectives.base import critic_scores, distinct_samples
from wganlab.ot import solve_exact
from wganlab.ot.costs import cost_matrix, nearest


class Linear(nn.Module):
    """D(x) = <w, x> for image-shaped w: the gradient is w everywhere."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        return (x * self.w).flatten(1).sum(1)


class HalfSquaredNorm(nn.Module):
    """D(x) = ||x||^2 / 2: the gradient at x is x itself, different for every sample."""

    def forward(self, x):
        return 0.5 * x.flatten(1).pow(2).sum(1)


class Table(nn.Module):
    """A critic that returns fixed values on a fixed set of points (a Kantorovich potential)."""

    def __init__(self, points, values):
        super().__init__()
        self.points, self.values = points, values

    def forward(self, x):
        return self.values[torch.cdist(x, self.points).argmin(1)]


def test_interpolates_use_one_coefficient_per_sample():
    real, fake = torch.zeros(64, 1, 4, 4), torch.ones(64, 1, 4, 4)
    xh = interpolates(real, fake, torch.Generator().manual_seed(0))
    alpha = 1 - xh.flatten(1)  # x_hat = alpha * 0 + (1 - alpha) * 1
    torch.testing.assert_close(alpha, alpha[:, :1].expand_as(alpha))  # constant within a sample
    assert alpha[:, 0].std() > 0.1 and alpha.min() >= 0 and alpha.max() <= 1  # varies across samples


def test_gradient_norm_is_per_sample_over_the_flattened_image():
    w = torch.randn(2, 3, 3)
    norms = gradient_norms(Linear(w), torch.randn(5, 2, 3, 3))
    torch.testing.assert_close(norms, torch.full((5,), float(w.norm())))
    x = torch.randn(7, 2, 3, 3)
    torch.testing.assert_close(gradient_norms(HalfSquaredNorm(), x), x.flatten(1).norm(dim=1))


def test_gradient_penalty_value_matches_the_definition():
    real, fake = torch.randn(16, 1, 5, 5), torch.randn(16, 1, 5, 5)
    gp = GradientPenalty(lam=10.0)
    torch.manual_seed(3)
    penalty, norms = gp.penalty(HalfSquaredNorm(), real, fake)
    torch.manual_seed(3)
    xh = interpolates(real, fake)
    expected = (xh.flatten(1).norm(dim=1) - 1).pow(2).mean()
    torch.testing.assert_close(penalty, expected)
    assert norms.shape == (16,)
    w = torch.randn(1, 5, 5)
    loss, stats = gp.critic_loss(Linear(w), real, fake)
    v = float((real * w).sum((1, 2, 3)).mean() - (fake * w).sum((1, 2, 3)).mean())
    torch.testing.assert_close(float(loss.detach()), -v + 10.0 * (float(w.norm()) - 1) ** 2, rtol=1e-5, atol=1e-5)
    assert stats["lipschitz"] == pytest.approx(float(w.norm()), rel=1e-5)
    assert stats["normalised"] == pytest.approx(v / float(w.norm()), rel=1e-5)


def test_penalty_is_differentiable_wrt_critic_weights():
    critic = Linear(torch.randn(1, 3, 3))
    loss, _ = GradientPenalty(lam=1.0).critic_loss(critic, torch.randn(4, 1, 3, 3), torch.randn(4, 1, 3, 3))
    loss.backward()
    assert critic.w.grad is not None and critic.w.grad.abs().sum() > 0


def _gp_step_by_autograd_and_closed_form(critic, real, fake, lam, seed=5):
    """One WGAN-GP critic loss and its parameter gradients for ``critic`` (an FCCritic of depth 1), by the closed
    form and by autograd's double backward (the closed form switched off), from the same random numbers."""
    out = []
    for closed_form in (True, False):
        c = copy.deepcopy(critic)
        if not closed_form:
            c.one_hidden_layer = lambda: None
        torch.manual_seed(seed)
        loss, stats = GradientPenalty(lam).critic_loss(c, real, fake)
        loss.backward()
        out.append((loss.detach(), stats, [q.grad for q in c.parameters()]))
    return out


@pytest.mark.parametrize("lam", [10.0, 0.0])
def test_one_hidden_layer_penalty_gradient_equals_autograds(lam):
    """The closed-form loss and gradient of an FC critic of depth 1 (``_OneHiddenLayerLoss``) against autograd's
    double backward, in float64 (to rounding) on images and on points, with one sample's input gradient 0."""
    torch.manual_seed(0)
    for shape in ((1, 5, 5), (3,)):
        critic = FCCritic(shape, hidden=32).double()
        real, fake = torch.randn(16, *shape, dtype=torch.float64), torch.randn(16, *shape, dtype=torch.float64)
        fake[3] = real[3] = -100.0  # every hidden unit below 0 at that x_hat: its gradient is 0.2 w2 W1, not 0
        (l1, s1, g1), (l2, s2, g2) = _gp_step_by_autograd_and_closed_form(critic, real, fake, lam)
        torch.testing.assert_close(l1, l2, rtol=1e-12, atol=1e-12)
        assert s1 == pytest.approx(s2, rel=1e-12)
        for a, b in zip(g1, g2, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    (l1, _, g1), (l2, _, g2) = _gp_step_by_autograd_and_closed_form(critic, real[:1], fake, lam)
    torch.testing.assert_close(l1, l2)  # one real sample against many (broadcast): autograd's result either way
    with torch.no_grad():  # a critic of zero input gradient everywhere: the norm's gradient is taken as 0
        critic.net[-1].weight.zero_()
    (l1, _, g1), (l2, _, g2) = _gp_step_by_autograd_and_closed_form(critic, real, fake, lam)
    torch.testing.assert_close(l1, l2)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_one_hidden_layer_penalty_trains_as_autograd_does():
    """Ten float32 Adam steps of an FC 1024 critic on 28x28 batches: the same losses to 1e-5 and parameters to
    1e-4 by the closed form as by autograd."""
    runs = []
    for closed_form in (True, False):
        torch.manual_seed(0)
        critic = FCCritic((1, 28, 28))
        if not closed_form:
            critic.one_hidden_layer = lambda: None
        opt = torch.optim.Adam(critic.parameters(), lr=1e-4, betas=(0.5, 0.9))
        g = torch.Generator().manual_seed(1)
        losses = []
        for _ in range(10):
            real, fake = torch.rand(64, 1, 28, 28, generator=g), torch.rand(64, 1, 28, 28, generator=g) * 0.5
            loss, _ = backward(opt, GradientPenalty(10.0).critic_loss, critic, real, fake)
            opt.step()
            losses.append(float(loss.detach()))
        runs.append((losses, [q.detach() for q in critic.parameters()]))
    assert runs[0][0] == pytest.approx(runs[1][0], rel=1e-5, abs=1e-5)
    for a, b in zip(runs[0][1], runs[1][1], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4)


@pytest.mark.parametrize("geometry", [((1, 16, 16), (4, 6, 8), 4, 2, 1, "gap"), ((3, 15, 13), (5, 7), 3, 2, 0, "fc"),
                                      ((2, 9, 9), (4, 4), 3, 1, 1, "gap"), ((1, 17, 17), (3, 5, 6), 3, 2, 0, "fc"),
                                      ((1, 18, 16), (3, 4), 3, 2, 0, "gap"), ((3, 12, 12), (8, 4), 4, 2, 1, "fc")])
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_cnn_input_gradient_and_penalty_equal_autograds(geometry, device, monkeypatch):
    """``CNNCritic.input_gradient`` (transposed convolutions whose backward is the native weight gradient; a first
    layer's by a GEMM and a fold on CPU, the last row or column of 18 x 16 seen by no patch) against autograd in
    float64, on the CPU and on CUDA: the input gradient, and the WGAN-GP loss with its gradient for every
    parameter."""
    from wganlab.models.critics import CNNCritic

    shape, channels, kernel, stride, padding, head = geometry
    torch.manual_seed(0)
    critic = CNNCritic(shape, channels, kernel, stride, padding, head).double().to(device)
    real, fake = (torch.randn(6, *shape, dtype=torch.float64).to(device) for _ in range(2))
    x = real.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(critic(x).sum(), x)
    torch.testing.assert_close(critic.input_gradient(real), expected, rtol=0, atol=1e-13)
    out = []
    for own in (True, False):
        c = copy.deepcopy(critic)
        if not own:
            monkeypatch.delattr(CNNCritic, "input_gradient")
        torch.manual_seed(5)
        loss, stats = GradientPenalty(10.0).critic_loss(c, real, fake)
        loss.backward()
        out.append((loss.detach(), stats, [q.grad for q in c.parameters()]))
    (l1, s1, g1), (l2, s2, g2) = out
    torch.testing.assert_close(l1, l2, rtol=1e-12, atol=1e-12)
    assert s1 == pytest.approx(s2, rel=1e-12)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_weight_clipping_bounds_every_weight():
    critic = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    for p in critic.parameters():
        p.data.mul_(100)
    WeightClipping(clip=0.05).after_critic_step(critic)
    for p in critic.parameters():
        assert p.abs().max() <= 0.05 + 1e-7
    assert any((p.abs() == 0.05).any() for p in critic.parameters())


def test_ctransform_estimate_equals_exact_batch_w1_for_a_kantorovich_potential():
    g = torch.Generator().manual_seed(0)
    fake, real = torch.randn(9, 3, generator=g, dtype=torch.float64), torch.randn(9, 3, generator=g,
                                                                                 dtype=torch.float64) + 1
    res = solve_exact(cost_matrix(fake, real))
    u = torch.from_numpy(res.potentials[0])
    critic = Table(fake, u)
    _, stats = CTransform().generator_loss(critic, real, fake)
    assert stats["estimate"] == pytest.approx(res.value, rel=1e-10)
    # any other critic gives a lower value (the c-transform pair is admissible)
    other = Table(fake, u + torch.randn(9, generator=g, dtype=torch.float64))
    assert CTransform().generator_loss(other, real, fake)[1]["estimate"] <= res.value + 1e-12
    # the soft (c, eps)-transform tends to it as eps -> 0 and stays below the hard one's dual value
    soft = EntropicCTransform(eps=1e-4).generator_loss(critic, real, fake)[1]["estimate"]
    assert soft == pytest.approx(res.value, abs=1e-3)


def test_ctransform_generator_gradient_flows_through_costs_and_critic():
    fake = torch.randn(6, 2, requires_grad=True)
    critic = nn.Linear(2, 1)
    loss, _ = CTransform().generator_loss(lambda x: critic(x).squeeze(1), torch.randn(6, 2), fake)
    loss.backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0


def test_assignment_gradient_vanishes_when_balanced():
    """Remark 3.2: if every real point receives the same number of generated points, training halts."""
    y = torch.randn(10, 4)
    fake = y.repeat(3, 1)  # each real point is the nearest of exactly 3 generated points
    assigner = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1), nn.Flatten(0))
    obj = Assignment(cost="sqeuclidean")
    obj.bind(y)
    with torch.no_grad():
        assigner[2].weight.mul_(1e-3)  # psi small: the cost decides
    loss, stats = obj.critic_loss(assigner, None, fake)
    loss.backward()
    for p in assigner.parameters():
        torch.testing.assert_close(p.grad, torch.zeros_like(p.grad))
    assert stats["never_assigned"] == 0 and stats["assignment_variance"] == 0


def test_assigner_step_raises_psi_where_over_assigned():
    y = torch.tensor([[0.0], [1.0], [2.0]])
    fake = torch.tensor([[0.1], [0.2], [-0.1], [1.9]])  # three near y0, one near y2, none near y1
    psi = nn.Parameter(torch.zeros(3))
    obj = Assignment(cost="euclidean")
    obj.bind(y)
    loss, stats = obj.critic_loss(lambda t: psi, None, fake)
    loss.backward()
    # minimising the loss moves psi against its gradient: up at y0 (over-assigned), down at y1
    assert psi.grad[0] < 0 < psi.grad[1]
    assert stats["never_assigned"] == 1
    assert stats["assignment_variance"] == pytest.approx((abs(3 - 4 / 3) + 4 / 3 + abs(1 - 4 / 3)) / 3)


def test_assignment_dual_value_is_a_lower_bound_of_exact_ot():
    g = torch.Generator().manual_seed(1)
    y, fake = torch.randn(6, 2, generator=g), torch.randn(12, 2, generator=g)
    obj = Assignment(cost="sqeuclidean")
    obj.bind(y)
    psi = torch.randn(6, generator=g)
    _, stats = obj.critic_loss(lambda t: psi.clone().requires_grad_(), None, fake)
    exact = solve_exact(cost_matrix(fake, y, "sqeuclidean")).value
    assert stats["estimate"] <= exact + 1e-6


def test_assignment_stats_count_the_never_assigned_points():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(50, 3, generator=g), torch.randn(20, 3, generator=g)
    counts = torch.bincount(nearest(x, y, "sqeuclidean").indices, minlength=20)
    assert assignment_stats(counts, 50)["never_assigned"] == int((counts == 0).sum())


def test_assignment_generator_pulls_towards_assigned_points():
    y = torch.tensor([[0.0, 0.0], [5.0, 5.0]])
    fake = torch.tensor([[0.5, 0.0], [4.0, 5.0]], requires_grad=True)
    obj = Assignment(cost="sqeuclidean")
    obj.bind(y)
    loss, _ = obj.generator_loss(lambda t: torch.zeros(len(t)), None, fake)
    assert float(loss.detach()) == pytest.approx((0.25 + 1.0) / 2)
    loss.backward()
    torch.testing.assert_close(fake.grad, torch.tensor([[0.5, 0.0], [-1.0, 0.0]]))


def test_nsgan_losses_are_binary_cross_entropy():
    critic = nn.Sequential(nn.Linear(3, 1), nn.Flatten(0))
    real, fake = torch.randn(8, 3), torch.randn(8, 3)
    loss, _ = NonSaturating().critic_loss(critic, real, fake)
    bce = F.binary_cross_entropy_with_logits
    expected = bce(critic(real), torch.ones(8)) + bce(critic(fake), torch.zeros(8))
    torch.testing.assert_close(loss, expected)
    gloss, _ = NonSaturating().generator_loss(critic, real, fake)
    torch.testing.assert_close(gloss, bce(critic(fake), torch.ones(8)))


def test_sinkhorn_generator_has_no_critic_and_differentiates():
    obj = SinkhornGenerator(eps=1.0)
    assert not obj.needs_critic
    fake = torch.randn(10, 2, requires_grad=True)
    loss, stats = obj.generator_loss(None, torch.randn(10, 2) + 2, fake)
    loss.backward()
    assert stats["estimate"] > 0 and fake.grad.abs().sum() > 0


def test_build_objective_errors():
    assert isinstance(build_objective("wgan-gp", lam=5.0), GradientPenalty)
    with pytest.raises(ConfigError, match="unknown objective"):
        build_objective("lsgan")
    with pytest.raises(ConfigError, match="wgan-gp"):
        build_objective("wgan-gp", clip=0.1)
    assert np.isfinite(build_objective("wgan-wc").clip)


def test_every_objective_declares_its_constructor_arguments_as_config_fields():
    import dataclasses
    import inspect

    from wganlab.objectives import OBJECTIVES
    from wganlab.train import TrainConfig, objective_params

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for name, cls in OBJECTIVES.items():
        params = inspect.signature(cls.__init__).parameters.values()
        args = {p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD} - {"self"}
        assert set(cls.config) == args, name
        assert set(cls.config.values()) <= fields, name
    cfg = TrainConfig(objective="wgan-gp", gp_lambda=3.5)
    assert objective_params(cfg) == {"lam": 3.5}
    assert build_objective(cfg.objective, **objective_params(cfg)).lam == 3.5
    cfg = TrainConfig(objective="assignment", cost="ssim", cost_scale=0.1)
    assert objective_params(cfg) == {"cost": "ssim", "generator_cost": None, "cost_scale": 0.1}


def test_distinct_samples_of_a_batch_with_repeats():
    """The distinct samples in order of first occurrence, and the index that rebuilds the batch; all distinct: the
    batch itself."""
    atoms = torch.randn(5, 1, 3, 3, generator=torch.Generator().manual_seed(0))
    picks = torch.tensor([3, 1, 3, 0, 1, 1, 4])
    xd, inverse = distinct_samples(atoms[picks])
    torch.testing.assert_close(xd, atoms[torch.tensor([3, 1, 0, 4])], rtol=0, atol=0)
    assert inverse.tolist() == [0, 1, 0, 2, 1, 1, 3]
    x = atoms[torch.tensor([2, 0, 4])]
    xd, inverse = distinct_samples(x)
    assert xd is x and inverse is None


def test_critic_scores_equal_the_critic_on_every_sample_with_their_gradients():
    """``critic_scores`` on a batch from a discrete generator (repeats): the critic's values, the gradient of their
    weighted sum for the critic's parameters (the critic step: a repeat counts as often as it is drawn) and for
    the generator's (the generator step), all as the critic run on every sample (float64)."""
    g = torch.Generator().manual_seed(1)
    G = nn.Linear(4, 6).double()
    D = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 1), nn.Flatten(0)).double()
    z = torch.randn(5, 4, generator=g, dtype=torch.float64)[torch.randint(5, (12,), generator=g)]
    w = torch.randn(12, generator=g, dtype=torch.float64)
    grads = []
    for score in (critic_scores, lambda critic, x: critic(x)):
        G.zero_grad()
        D.zero_grad()
        d = score(D, G(z))
        (w * d).sum().backward()
        grads.append([d.detach()] + [p.grad.clone() for p in (*G.parameters(), *D.parameters())])
    assert len(distinct_samples(G(z))[0]) <= 5
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
