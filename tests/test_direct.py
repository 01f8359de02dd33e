"""Discriminator-free optimisation: descent lowers the distance it descends."""

import pytest
import torch

from wganlab.data import load
from wganlab.direct import multiscale_descent, patch_swd_descent
from wganlab.errors import InputError
from wganlab.ot.patches import patch_swd, patch_swd_local

Y = load("squares:size=16:square=4").x


@pytest.mark.parametrize("local", [False, True])
def test_patch_swd_descent_lowers_its_distance(local):
    init = 0.3 * torch.randn(8, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    metric = patch_swd_local if local else patch_swd
    before = float(metric(init, Y, 5, 2, n_projections=64, seed=123))
    res = patch_swd_descent(Y, init, patch_size=5, patch_stride=2, steps=60, lr=0.05, n_projections=32, local=local)
    after = float(metric(res.images, Y, 5, 2, n_projections=64, seed=123))
    assert after < 0.5 * before
    assert res.trace[0]["step"] == 0 and res.trace[-1]["step"] == 60
    assert torch.equal(init, 0.3 * torch.randn(8, 1, 16, 16, generator=torch.Generator().manual_seed(0)))  # untouched


def test_target_batches_still_descend():
    init = torch.zeros(4, 1, 16, 16)
    res = patch_swd_descent(Y, init, patch_size=5, patch_stride=2, steps=40, lr=0.05, n_projections=16, target_batch=20)
    assert float(patch_swd(res.images, Y, 5, 2)) < float(patch_swd(init, Y, 5, 2))


def test_multiscale_descent_sharpens_ot_means():
    res = multiscale_descent(Y, 6, patch_size=5, scale=0.75, steps_per_level=40, lr=0.05, n_projections=32,
                             otmeans_iters=2, otmeans_ot_steps=2)
    assert res.images.shape == (6, 1, 16, 16)
    levels = sorted({t["size"] for t in res.trace})
    assert levels[0] < levels[-1] == 16  # coarse to fine
    from wganlab.ot.otmeans import ot_means

    start = ot_means(Y, 6, n_iter=2, ot_steps=2).centroids
    assert float(patch_swd(res.images, Y, 5, 1)) < float(patch_swd(start, Y, 5, 1))


def test_bad_inputs():
    with pytest.raises(InputError, match="differ"):
        patch_swd_descent(Y, torch.zeros(2, 1, 8, 8), patch_size=3, steps=1)
    with pytest.raises(InputError, match="N x C x H x W"):
        patch_swd_descent(Y.flatten(1), torch.zeros(2, 256), patch_size=3, steps=1)
