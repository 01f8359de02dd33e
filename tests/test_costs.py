"""Ground costs against independent implementations (SciPy, scikit-image)."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from scipy.spatial.distance import cdist
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from wganlab.errors import InputError
from wganlab.ot.costs import cost_matrix, nearest, ssim_matrix

rng = np.random.default_rng(0)


@pytest.mark.parametrize(("name", "metric"), [("euclidean", "euclidean"), ("sqeuclidean", "sqeuclidean"),
                                              ("l1", "cityblock")])
def test_vector_costs_match_scipy(name, metric):
    x, y = rng.normal(size=(7, 13)), rng.normal(size=(5, 13))
    got = cost_matrix(torch.tensor(x), torch.tensor(y), name).numpy()
    assert_allclose(got, cdist(x, y, metric), rtol=1e-10, atol=1e-10)


def test_images_are_flattened_for_vector_costs():
    x, y = rng.normal(size=(3, 1, 4, 4)), rng.normal(size=(2, 1, 4, 4))
    got = cost_matrix(torch.tensor(x), torch.tensor(y)).numpy()
    assert_allclose(got, cdist(x.reshape(3, -1), y.reshape(2, -1)), rtol=1e-10)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 16, 20)])
def test_ssim_matches_scikit_image(shape):
    x = rng.uniform(-1, 1, size=(3, *shape))
    y = np.clip(x[[2, 0]] + 0.3 * rng.normal(size=(2, *shape)), -1, 1)
    got = ssim_matrix(torch.tensor(x), torch.tensor(y)).numpy()
    for i in range(3):
        for j in range(2):
            ref = structural_similarity(x[i], y[j], data_range=2.0, gaussian_weights=True, sigma=1.5,
                                        use_sample_covariance=False, channel_axis=0)
            assert_allclose(got[i, j], ref, rtol=1e-7, atol=1e-9)
    same = cost_matrix(torch.tensor(x), torch.tensor(x), "ssim").numpy()
    assert_allclose(np.diag(same), 0.0, atol=1e-12)


def test_psnr_cost_matches_scikit_image():
    x = rng.uniform(-1, 1, size=(4, 1, 8, 8))
    y = rng.uniform(-1, 1, size=(3, 1, 8, 8))
    got = cost_matrix(torch.tensor(x), torch.tensor(y), "psnr").numpy()
    ref = [[100 - peak_signal_noise_ratio(a, b, data_range=2.0) for b in y] for a in x]
    assert_allclose(got, ref, rtol=1e-10)
    assert cost_matrix(torch.tensor(x), torch.tensor(x), "psnr").diagonal().abs().max() < 1e-9


@pytest.mark.parametrize("cost", ["euclidean", "ssim", "psnr", "l1"])
def test_blocked_equals_unblocked(cost):
    x, y = torch.rand(10, 1, 12, 12), torch.rand(6, 1, 12, 12)
    torch.testing.assert_close(cost_matrix(x, y, cost, block_rows=3), cost_matrix(x, y, cost))


def test_differentiable_path_keeps_gradients():
    x = torch.rand(9, 1, 12, 12, requires_grad=True)
    y = torch.rand(4, 1, 12, 12)
    c = cost_matrix(x, y, "ssim", dtype=None, block_rows=4)
    c.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_callable_cost_and_errors():
    x, y = torch.rand(3, 2), torch.rand(4, 2)
    got = cost_matrix(x, y, lambda a, b: (a[:, None] - b[None]).abs().max(-1).values)
    assert_allclose(got.numpy(), cdist(x.double().numpy(), y.double().numpy(), "chebyshev"), rtol=1e-6)
    with pytest.raises(InputError, match="unknown cost 'cosine'"):
        cost_matrix(x, y, "cosine")
    with pytest.raises(InputError, match="expected"):
        cost_matrix(x, y, lambda a, b: a @ a.T)
    with pytest.raises(InputError, match="images"):
        cost_matrix(x, y, "ssim")


@pytest.mark.parametrize("cost", ["euclidean", "sqeuclidean", "l1", "psnr", "ssim"])
def test_paired_cost_is_the_diagonal(cost):
    from wganlab.ot.costs import paired_cost

    x, y = torch.rand(5, 1, 12, 12, dtype=torch.float64), torch.rand(5, 1, 12, 12, dtype=torch.float64)
    torch.testing.assert_close(paired_cost(x, y, cost), cost_matrix(x, y, cost).diagonal())


def test_coincident_points_are_at_distance_exactly_zero():
    x = torch.randn(50, 784, dtype=torch.float64) * 3 + 10
    c = cost_matrix(x, x[torch.randperm(50)])
    assert (c == 0).sum() == 50
    near = x + 1e-9
    assert_allclose(cost_matrix(x, near).diagonal().numpy(), np.full(50, 1e-9 * np.sqrt(784)), rtol=1e-6)


def test_absurd_dense_cost_matrix_is_refused_before_allocation():
    from wganlab.ot.costs import MAX_COST_ENTRIES
    from wganlab.ot.sinkhorn import sinkhorn_divergence

    x = torch.zeros(1, 2).expand(40_000, 2)  # a view: no memory behind the 40,000 points
    assert 40_000**2 > MAX_COST_ENTRIES
    with pytest.raises(InputError, match="40,000 x 40,000 cost matrix"):
        cost_matrix(x, x)
    with pytest.raises(InputError, match="40,000 x 40,000 cost matrix"):
        sinkhorn_divergence(x, x, 1.0)


@pytest.mark.parametrize("block", [1, 7, 1024])
def test_nearest_is_the_brute_force_minimum_plus_potential(block):
    rng = np.random.default_rng(4)
    x, y, psi = rng.normal(size=(50, 2, 3)), rng.normal(size=(20, 2, 3)), rng.normal(size=20)
    d = cdist(x.reshape(50, -1), y.reshape(20, -1))  # scipy: an independent oracle
    got = nearest(torch.from_numpy(x), torch.from_numpy(y), block=block)
    assert_allclose(got.values.numpy(), d.min(1), rtol=1e-12)
    assert (got.indices.numpy() == d.argmin(1)).all() and got.indices.dtype == torch.int64
    with_psi = nearest(torch.from_numpy(x), torch.from_numpy(y), "sqeuclidean", psi=torch.from_numpy(psi),
                       block=block)
    assert (with_psi.indices.numpy() == (d**2 + psi).argmin(1)).all()
    assert_allclose(with_psi.values.numpy(), (d**2 + psi).min(1), rtol=1e-10, atol=1e-12)


def test_nearest_takes_the_first_of_tied_points_and_finds_copies_at_zero():
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    got = nearest(torch.tensor([[1.0, 0.0], [0.5, 0.5]]), y)
    assert got.indices.tolist() == [0, 0] and got.values[0] == 0.0
