"""Generated and bundled data: squares, Gaussian families, scikit-learn digits."""

import math
from collections import Counter

import numpy as np
import pytest
import torch

from wganlab.data import load
from wganlab.data.squares import default_square, render_squares, square_positions
from wganlab.errors import DatasetError

# ---------------------------------------------------------------------------------------------- squares


def _check_one_square(img: torch.Tensor, square: int) -> tuple[int, int]:
    """Assert ``img`` (1, H, W) is -1 except one filled square x square block of +1; return its corner."""
    assert img.shape[0] == 1
    vals = torch.unique(img)
    assert set(vals.tolist()) <= {-1.0, 1.0}
    on = img[0] == 1.0
    rows = torch.nonzero(on.any(dim=1)).flatten()
    cols = torch.nonzero(on.any(dim=0)).flatten()
    assert len(rows) == square and len(cols) == square
    assert rows[-1] - rows[0] == square - 1 and cols[-1] - cols[0] == square - 1  # contiguous
    assert int(on.sum()) == square * square  # the bounding box is full: exactly one square
    return int(rows[0]), int(cols[0])


def test_squares_reference_configuration():
    """size 64, square 10, every corner in range(1, 53)^2: the reference's 2,704 images."""
    ds = load("squares:size=64:square=10:holdout=0")
    assert ds.x.shape == (2704, 1, 64, 64) and ds.x.dtype == torch.float32
    assert ds.kind == "image" and ds.value_range == (-1.0, 1.0) and ds.labels is None
    corners = [_check_one_square(img, 10) for img in ds.x[::97]]
    assert all(1 <= r < 53 and 1 <= c < 53 for r, c in corners)
    pos = np.array(ds.meta["positions"])
    assert len({tuple(p) for p in pos}) == 2704
    assert pos[:, 0].min() == 1 and pos[:, 0].max() == 52 and pos[:, 1].max() == 52
    # deterministic, row-major order
    assert pos[:3].tolist() == [[1, 1], [1, 2], [1, 3]]
    assert ds.meta["n_positions"] == 2704


def test_squares_default_every_position_once():
    ds = load("squares:holdout=0")
    square = default_square(32)
    assert square == 5
    n_pos = (32 - square - 2) ** 2
    assert len(ds) == n_pos == 625
    for img, (r, c) in zip(ds.x, ds.meta["positions"], strict=True):
        assert _check_one_square(img, square) == (r, c)
    assert torch.equal(ds.x, load("squares:holdout=0", seed=5).x)  # no randomness without n


def test_squares_train_test_partition_positions():
    tr, te = load("squares"), load("squares:test")
    assert len(tr) + len(te) == 625 and len(te) == round(625 / 6)
    ptr = {tuple(p) for p in tr.meta["positions"]}
    pte = {tuple(p) for p in te.meta["positions"]}
    assert not ptr & pte
    assert ptr | pte == {tuple(p) for p in square_positions(32, 5).tolist()}
    # held-out positions do not depend on the seed
    assert load("squares:test:seed=9").meta["positions"] == te.meta["positions"]


def test_squares_n_draws_seeded_positions():
    a = load("squares:n=1000:size=32")
    assert a.x.shape == (1000, 1, 32, 32)
    assert torch.equal(a.x, load("squares:n=1000:size=32").x)
    assert not torch.equal(a.x, load("squares:n=1000:size=32:seed=1").x)
    train_pos = {tuple(p) for p in load("squares").meta["positions"]}
    assert {tuple(p) for p in a.meta["positions"]} <= train_pos  # drawn from the train split only
    for img, (r, c) in zip(a.x[:50], a.meta["positions"][:50], strict=True):
        assert _check_one_square(img, 5) == (r, c)


@pytest.mark.parametrize(("size", "square"), [(16, None), (28, 3), (64, None)])
def test_squares_sizes(size, square):
    spec = f"squares:size={size}" + (f":square={square}" if square else "")
    ds = load(spec)
    s = square or default_square(size)
    assert ds.x.shape[1:] == (1, size, size)
    _check_one_square(ds.x[0], s)
    _check_one_square(ds.x[-1], s)


def test_squares_no_room():
    with pytest.raises(DatasetError, match="no room"):
        load("squares:size=8:square=7")


def test_render_squares_exact():
    x = render_squares(np.array([[0, 0], [2, 3]]), 6, 2)
    expect = -torch.ones(2, 1, 6, 6)
    expect[0, 0, 0:2, 0:2] = 1
    expect[1, 0, 2:4, 3:5] = 1
    assert torch.equal(x, expect)


# ---------------------------------------------------------------------------------------------- Gaussians


def test_gauss_mean_and_covariance():
    ds = load("gauss:d=3:shift=1.5:std=2:n=20000")
    assert ds.x.shape == (20000, 3) and ds.x.dtype == torch.float32
    assert ds.kind == "vector" and ds.value_range is None and ds.labels is None
    x = ds.x.double()
    assert torch.allclose(x.mean(0), torch.full((3,), 1.5, dtype=torch.float64), atol=0.06)
    cov = torch.cov(x.T)
    assert torch.allclose(cov, 4 * torch.eye(3, dtype=torch.float64), atol=0.2)


def test_gauss_defaults_and_mallasto_pair():
    ds = load("gauss")
    assert ds.x.shape == (1000, 2)
    plus, minus = load("gauss:shift=1:n=20000"), load("gauss:shift=-1:n=20000")
    assert torch.allclose(plus.x.mean(0), torch.tensor([1.0, 1.0]), atol=0.05)
    assert torch.allclose(minus.x.mean(0), torch.tensor([-1.0, -1.0]), atol=0.05)
    assert torch.allclose(torch.cov(plus.x.T), torch.eye(2), atol=0.06)


def test_gauss_test_split_is_independent_sample():
    tr, te = load("gauss:n=5000"), load("gauss:test:n=5000")
    assert not torch.equal(tr.x, te.x)
    assert torch.allclose(te.x.mean(0), torch.zeros(2), atol=0.06)


@pytest.mark.parametrize(("name", "modes", "radius", "std"),
                         [("gauss8", 8, 2.0, 0.02), ("ring10", 10, 2.0, 0.05)])
def test_ring_mixtures(name, modes, radius, std):
    ds = load(f"{name}:n=8000")
    assert ds.x.shape == (8000, 2) and ds.x.dtype == torch.float32
    assert ds.labels is not None and ds.labels.dtype == torch.int64
    assert set(ds.labels.tolist()) == set(range(modes))
    centres = torch.tensor(ds.meta["centres"], dtype=torch.float64)
    assert centres.shape == (modes, 2)
    assert torch.allclose(centres.norm(dim=1), torch.full((modes,), radius, dtype=torch.float64))
    # consecutive centres 2*pi/modes apart
    ang = torch.atan2(centres[:, 1], centres[:, 0])
    gaps = torch.remainder(torch.diff(ang), 2 * math.pi)
    assert torch.allclose(gaps, torch.full_like(gaps, 2 * math.pi / modes))
    x = ds.x.double()
    for k in range(modes):
        pts = x[ds.labels == k]
        assert len(pts) > 8000 / modes * 0.7  # roughly balanced
        assert torch.allclose(pts.mean(0), centres[k], atol=5 * std / math.sqrt(len(pts)) + 1e-3)
        assert abs(pts.std(0).mean().item() - std) < 0.1 * std
    # every point lies near the circle of the stated radius
    assert (x.norm(dim=1) - radius).abs().max() < 6 * std
    # 8 (10) clusters: each point is nearer its own centre than any other
    nearest = torch.cdist(x, centres).argmin(dim=1)
    assert torch.equal(nearest, ds.labels)


def test_ring_keys():
    ds = load("gauss8:radius=5:std=0.1:n=2000")
    assert abs(ds.x.norm(dim=1).mean().item() - 5) < 0.05
    assert ds.meta["radius"] == 5.0 and ds.meta["std"] == 0.1


# ---------------------------------------------------------------------------------------------- digits


def test_digits_all_images_and_range():
    ds = load("digits:holdout=0")
    assert ds.x.shape == (1797, 1, 8, 8) and ds.x.dtype == torch.float32
    assert ds.x.min().item() == -1.0 and ds.x.max().item() == 1.0  # 0 -> -1, 16 -> +1
    assert ds.labels is not None and set(ds.labels.tolist()) == set(range(10))
    # values are v / 8 - 1 for integers v in 0..16
    v = (ds.x + 1) * 8
    assert torch.equal(v, v.round())


def test_digits_splits_sizes_and_resize():
    tr, te = load("digits"), load("digits:test:size=16")
    assert len(tr) == 1797 - 300 and len(te) == 300
    assert te.x.shape == (300, 1, 16, 16)
    assert te.x.min() >= -1 and te.x.max() <= 1
    # train and test partition the 1,797 images: their multisets add up to the whole set
    def items(ds):
        return Counter((img.numpy().tobytes(), int(lab)) for img, lab in zip(ds.x, ds.labels, strict=True))

    te8 = load("digits:test")
    assert items(tr) + items(te8) == items(load("digits:holdout=0"))


def test_digits_subset_deterministic():
    a, b = load("digits:n=100:seed=4"), load("digits:n=100:seed=4")
    assert torch.equal(a.x, b.x) and torch.equal(a.labels, b.labels)
    c = load("digits:n=100:seed=5")
    assert not torch.equal(a.x, c.x)
    first = load("digits:n=10:pick=first")
    assert torch.equal(first.x, load("digits").x[:10])
