"""Models: the papers' theorems about critics, discreteness, Lipschitz bounds, shapes."""

import pytest
import torch
from torch.nn import functional as F

from wganlab.errors import ConfigError
from wganlab.models import build_critic, build_generator, patch_stride, receptive_field

torch.manual_seed(0)


def patches(x, size, stride):
    """All size x size patches of x at the given stride, (N, L, C, size, size), row-major locations."""
    n, c = x.shape[:2]
    cols = F.unfold(x, size, stride=stride)  # (N, C*size*size, L)
    return cols.transpose(1, 2).reshape(n, -1, c, size, size)


@pytest.mark.parametrize("channels", [(64, 64, 64), (8, 16, 32)])
def test_theorem2_cnn_gap_is_the_mean_of_a_patch_critic(channels):
    critic = build_critic("cnn-gap", (1, 31, 31), channels=channels).double()
    s, j = receptive_field(critic), patch_stride(critic)
    assert (s, j) == (15, 8)
    x = torch.randn(5, 1, 31, 31, dtype=torch.float64)
    p = patches(x, s, j)  # every S x S patch a last-layer unit sees
    g = critic(p.reshape(-1, 1, s, s)).reshape(5, -1)  # the critic on one patch is the patch critic g
    assert p.shape[1] == critic.feature_shape[1] * critic.feature_shape[2]
    torch.testing.assert_close(critic(x), g.mean(1))


def test_theorem4_cnn_fc_is_a_location_weighted_sum_of_patch_features():
    critic = build_critic("cnn-fc", (2, 23, 23), channels=(4, 6, 5)).double()
    s, j = receptive_field(critic), patch_stride(critic)
    x = torch.randn(3, 2, 23, 23, dtype=torch.float64)
    c, h, w = critic.feature_shape
    p = patches(x, s, j).reshape(-1, 2, s, s)
    f = critic.features(p).reshape(3, h * w, c)  # f_c(P_i x) for each location i and channel c
    weights = critic.linear.weight.reshape(c, h * w).T  # w_ic
    torch.testing.assert_close(critic(x), (f * weights).sum((1, 2)))


def test_receptive_field_formula_for_other_depths():
    assert receptive_field(build_critic("cnn-gap", (1, 64, 64), channels=(8,) * 4)) == 31
    assert receptive_field(build_critic("cnn-gap", (1, 64, 64), channels=(8,) * 2, kernel=5)) == 13
    with pytest.raises(ConfigError, match="CNN critic"):
        receptive_field(build_critic("fc", (1, 8, 8)))


def test_discrete_generator_has_at_most_m_atoms():
    g = build_generator("fc", (1, 8, 8), m=5, seed=3)
    x = g.sample(400, torch.Generator().manual_seed(0))
    distinct = torch.unique(x.reshape(400, -1), dim=0)
    assert len(distinct) <= 5
    support = g.support()
    assert support.shape == (5, 1, 8, 8)
    # every sample is one of the atoms
    nearest = torch.cdist(x.reshape(400, -1), support.reshape(5, -1)).argmin(1)
    torch.testing.assert_close(x, support[nearest])


def test_fixed_latents_are_seeded_buffers_not_parameters():
    a, b = build_generator("fc", (2,), m=7, seed=1), build_generator("fc", (2,), m=7, seed=1)
    torch.testing.assert_close(a.latents, b.latents)
    assert "latents" in dict(a.named_buffers()) and "latents" not in dict(a.named_parameters())
    assert not torch.equal(a.latents, build_generator("fc", (2,), m=7, seed=2).latents)


def test_continuous_generator_and_output_ranges():
    g = build_generator("conv", (1, 28, 28), m=None)
    x = g.sample(6)
    assert x.shape == (6, 1, 28, 28) and x.abs().max() <= 1
    assert len(torch.unique(x.reshape(6, -1), dim=0)) == 6
    v = build_generator("fc", (2,), m=None, out_act="identity").sample(3)
    assert v.shape == (3, 2)
    for side in (8, 16, 32, 64):
        assert build_generator("conv", (3, side, side)).sample(2).shape == (2, 3, side, side)
    with pytest.raises(ConfigError, match="conv generator"):
        build_generator("conv", (1, 30, 30))
    with pytest.raises(ConfigError, match="continuous"):
        g.support()


@pytest.mark.parametrize("method", ["bjorck", "spectral"])
def test_groupsort_critic_is_1_lipschitz(method):
    critic = build_critic("groupsort", (10,), hidden=32, depth=3, lipschitz=method)
    for p in critic.parameters():  # random, non-orthogonal weights: the constraint must still hold
        p.data.normal_()
    if method == "spectral":
        with torch.no_grad():
            for _ in range(50):  # let the power iterations converge
                critic(torch.randn(4, 10))
    critic.eval()
    x = torch.randn(256, 10, requires_grad=True)
    grad, = torch.autograd.grad(critic(x).sum(), x)
    assert grad.norm(dim=1).max() <= 1.0 + 1e-3
    y = torch.randn(256, 10)
    with torch.no_grad():
        ratio = (critic(x) - critic(y)).abs() / (x - y).norm(dim=1)
    assert ratio.max() <= 1.0 + 1e-3


def test_bjorck_critic_preserves_gradient_norm():
    """GroupSort with orthonormal weights is gradient-norm preserving: |grad| = 1 almost everywhere."""
    critic = build_critic("groupsort", (6,), hidden=6, depth=2)
    x = torch.randn(64, 6, requires_grad=True)
    grad, = torch.autograd.grad(critic(x).sum(), x)
    torch.testing.assert_close(grad.norm(dim=1), torch.ones(64), atol=1e-3, rtol=0)


@pytest.mark.parametrize("shape", [(64, 300), (300, 64), (128, 128), (40, 60)])
def test_bjorck_equals_the_direct_iteration(shape):
    """``bjorck`` (through the eigendecomposition) equals the direct Björck iteration in float64 to rounding,
    values and gradient, also where the matrix is nearly singular (a random square one: ``f`` and its divided
    differences reach 1e9 there, which the mirrored product rule keeps exact); it is orthonormal
    on its short side (when 20 steps suffice); and in float32 it is no farther from float64 than the direct
    float32 iteration."""
    from wganlab.models.critics import bjorck

    r, c = sorted(shape)
    torch.manual_seed(0)
    w = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    out, ref = bjorck(w, spectral=True), bjorck(w, spectral=False)
    assert torch.equal(bjorck(w), out)  # the default on CPU
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    if r < c:  # (the square one's smallest singular value, ~1e-3 of its largest, needs more than 20 steps)
        short = out.T @ out if shape[0] > shape[1] else out @ out.T
        torch.testing.assert_close(short, torch.eye(r, dtype=torch.float64), rtol=0, atol=1e-6)
    u = torch.randn(*shape, dtype=torch.float64)
    g1, = torch.autograd.grad((out * u).sum(), w)
    g2, = torch.autograd.grad((ref * u).sum(), w)
    torch.testing.assert_close(g1, g2, rtol=1e-10, atol=1e-10 * float(g2.abs().max()))
    w32 = w.detach().float().requires_grad_()
    err = {}
    for method in (None, False):
        out32 = bjorck(w32, spectral=method)
        g32, = torch.autograd.grad((out32 * u.float()).sum(), w32)
        err[method] = (float((out32 - ref).detach().abs().max()), float((g32 - g2).abs().max()))
    assert err[None][0] <= 2 * err[False][0] and err[None][1] <= 2 * err[False][1]


def test_bjorck_of_a_diverged_weight_is_nan_not_an_error():
    """A weight holding NaN or inf (a diverged run) gives NaN, as the steps do, so training reports the divergence;
    the eigendecomposition would raise instead."""
    from wganlab.models.critics import bjorck

    for bad in (float("nan"), float("inf")):
        w = torch.randn(8, 16)
        w[0, 0] = bad
        assert bjorck(w).isnan().all() and bjorck(w, spectral=False).isnan().all()


def test_bjorck_polynomial_is_the_iteration_and_its_divided_differences():
    """``bjorck_polynomial``: ``f`` is the scalar iteration, the diagonal of ``D`` its derivative (central
    differences), off the diagonal the divided differences of far-apart points (no cancellation there), and
    ``D`` is symmetric."""
    from wganlab.models.critics import bjorck_polynomial

    t = torch.tensor([1e-9, 2e-7, 1e-3, 1e-3 + 1e-9, 0.01, 0.5, 1.0], dtype=torch.float64)
    f, D = bjorck_polynomial(t, 20)
    x = torch.ones_like(t)
    for _ in range(20):
        x = x * (1.5 - 0.5 * t * x * x)
    torch.testing.assert_close(f, x, rtol=1e-14, atol=0)
    h = t * 1e-6
    fp, _ = bjorck_polynomial(t + h, 20)
    fm, _ = bjorck_polynomial(t - h, 20)
    torch.testing.assert_close(D.diag(), (fp - fm) / (2 * h), rtol=1e-6, atol=0)
    far = (t[:, None] / t > 10) | (t / t[:, None] > 10)
    naive = (f[:, None] - f) / (t[:, None] - t)
    torch.testing.assert_close(D[far], naive[far], rtol=1e-12, atol=0)
    assert torch.equal(D, D.T)


def test_critic_config_errors():
    with pytest.raises(ConfigError, match="too small"):
        build_critic("cnn-gap", (1, 8, 8))
    with pytest.raises(ConfigError, match="unknown critic"):
        build_critic("resnet", (1, 8, 8))
    with pytest.raises(ConfigError, match="needs images"):
        build_critic("cnn-fc", (10,))


@pytest.mark.parametrize("method", ["bjorck", "spectral"])
def test_groupsort_critic_is_the_same_inside_one_cached_step(method):
    from torch.nn.utils import parametrize

    critic = build_critic("groupsort", (6,), hidden=8, depth=2, lipschitz=method).eval()  # eval: no power step
    x, y = torch.randn(5, 6), torch.randn(7, 6)
    plain = critic(x).mean() - critic(y).mean()
    g_plain = torch.autograd.grad(plain, list(critic.parameters()))
    with parametrize.cached():
        cached = critic(x).mean() - critic(y).mean()
        g_cached = torch.autograd.grad(cached, list(critic.parameters()))
    torch.testing.assert_close(cached, plain)
    for a, b in zip(g_cached, g_plain, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("slope", [0.0, 0.2])
def test_constant_slope_activation_has_torchs_first_derivative_and_no_second_path(slope):
    """``PiecewiseLinear`` equals ``nn.ReLU`` / ``nn.LeakyReLU`` in value and gradient (bit for bit), and its
    input gradient depends on the upstream gradient only: differentiating it again has no path back into ``x``
    (torch's own activation has one, of zeros)."""
    from torch import nn

    from wganlab.models.critics import PiecewiseLinear

    x = torch.randn(200, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x[:5] = 0.0
    w = torch.linspace(-1, 1, 200, dtype=torch.float64, requires_grad=True)
    native = nn.LeakyReLU(slope) if slope else nn.ReLU()
    grads = []
    for f in (PiecewiseLinear(slope), native):
        xr = x.clone().requires_grad_(True)
        y = f(xr)
        (g,) = torch.autograd.grad((y * w).sum(), xr, create_graph=True)
        grads.append((y.detach(), g.detach(), torch.autograd.grad(g.sum(), xr, allow_unused=True)[0]))
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])
    assert grads[0][2] is None and grads[1][2] is not None
