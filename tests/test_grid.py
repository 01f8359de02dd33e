"""The sparse engine's integer bounds for sets on a grid of 256 levels (:mod:`wganlab.ot.exact.grid`): lower bounds
of every pair's cost (against float64 and 80-bit references), tight on 8-bit data, refused off the grid, and solves
that use them equal to POT's."""

import numpy as np
import pytest

from wganlab.ot.exact import grid, points, wasserstein
from wganlab.ot.exact import sparse as engine

pytestmark = pytest.mark.skipif(not (engine.available() and grid.AVAILABLE),
                                reason="the grid bounds need numba and torch's int8 GEMM")


def eight_bit(n: int, d: int, seed: int, scale: float = 1.0, dtype=np.float32) -> np.ndarray:
    """``n`` images of ``d`` 8-bit pixels ``p`` as ``scale (p / 127.5 - 1)`` (the loaders' [-1, 1] at scale 1), each
    set with both extremes; a third of the pixels at the background's -1."""
    r = np.random.default_rng(seed)
    p = r.integers(0, 256, size=(n, d)) * (r.random((n, d)) > 1 / 3)
    p[0, 0], p[-1, -1] = 0, 255
    return (scale * (p / 127.5 - 1)).astype(dtype)


def exact_costs(x: np.ndarray, y: np.ndarray, squared: bool) -> np.ndarray:
    """``||x_i - y_j||`` (squared) from differences in 80-bit long double (x86; float64 elsewhere)."""
    diff = x.astype(np.longdouble)[:, None, :] - y.astype(np.longdouble)[None, :, :]
    sq = (diff * diff).sum(-1)
    return sq if squared else np.sqrt(sq)


def grid_distances(x: np.ndarray, y: np.ndarray, squared: bool, digits: int = 1) -> grid.GridDistances:
    """The grid bounds between ``x`` (``digits`` of them) and ``y`` on ``y``'s grid, whatever the residuals."""
    step = points.Points(y).grid_step()
    xc = grid.codes(x, *step, np.inf) if digits == 1 else grid.fine_codes(x, *step, np.inf)
    return grid.GridDistances(xc, grid.codes(y, *step, np.inf), step[1], squared)


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("scale", [1.0, 3e-9, 7e8])
def test_grid_bounds_are_below_every_cost_and_tight_on_eight_bit_data(squared, scale):
    """On 8-bit data at any scale each bound is below the pair's cost (80-bit reference) and within 2e-6 of it
    (relative; the float32 GEMM's bound is off by ~1e-4 here); rows above SUB_ROWS and both block orientations
    (thin blocks transposed) give the same bounds."""
    x, y = eight_bit(grid.SUB_ROWS + 37, 50, 1, scale), eight_bit(300, 50, 2, scale)
    ref = exact_costs(x, y, squared)
    dist = grid_distances(x, y, squared)
    lo = dist.lower(None, np.arange(len(x))).astype(np.longdouble)
    assert (lo <= ref).all()
    positive = ref > 0
    assert (1 - lo[positive] / ref[positive]).max() < 2e-6 * (2 if squared else 1)
    thin = np.concatenate([dist.lower(None, np.arange(s, min(s + 64, len(x)))) for s in range(0, len(x), 64)])
    assert np.array_equal(thin, dist.lower(None, np.arange(len(x))))


@pytest.mark.parametrize("digits", [1, 2])
@pytest.mark.parametrize("squared", [False, True])
def test_grid_bounds_stay_below_the_costs_off_the_grid(squared, digits):
    """Off the grid (Gaussian data, float64 points, values outside the target's range, which are clipped,
    duplicates, points one grid step apart) the residuals widen the bound but it stays below every cost, with one
    digit for x or two."""
    r = np.random.default_rng(5)
    y = r.normal(size=(200, 30))
    x = np.concatenate([r.normal(size=(40, 30)), r.normal(size=(40, 30)) * 3, y[:20], y[:20] + 1e-12])
    ref = exact_costs(x, y, squared)
    dist = grid_distances(x, y, squared, digits)
    assert (dist.xc.q2 is None) == (digits == 1)
    lo = dist.lower(None, np.arange(len(x))).astype(np.longdouble)
    assert (lo <= ref).all() and (lo >= 0).all()
    ratio = lo[:40] / ref[:40] if not squared else np.sqrt(lo[:40] / ref[:40])
    assert np.median(ratio) > 0.5  # within the range: still a bound worth having


@pytest.mark.parametrize("squared", [False, True])
def test_two_digits_bound_points_off_the_grid_within_its_rounding(squared):
    """Generated images (off the grid, within its range) against 8-bit ones: with a second digit each bound is below
    the cost and within the residuals (the fine grid's rounding, about 0.3 sqrt(d) s / 256) of it, 25 times closer
    than with one digit; rows above SUB_ROWS and thin blocks give the same bounds."""
    r = np.random.default_rng(15)
    x = np.tanh(r.normal(size=(grid.SUB_ROWS + 21, 60))).astype(np.float32)
    y = eight_bit(300, 60, 16)
    ref = exact_costs(x, y, False)
    gaps = []
    for digits in (1, 2):
        dist = grid_distances(x, y, squared, digits)
        lo = dist.lower(None, np.arange(len(x))).astype(np.longdouble)
        lo = np.sqrt(lo) if squared else lo
        assert (lo <= ref * (1 + 1e-12)).all()
        gaps.append(float((ref - lo).max()))
        thin = np.concatenate([dist.lower(None, np.arange(s, min(s + 64, len(x)))) for s in range(0, len(x), 64)])
        assert np.array_equal(thin, dist.lower(None, np.arange(len(x))))
    step = 2 / 255
    assert gaps[1] < 0.3 * np.sqrt(60) * step / 256 * 2.5 and gaps[1] < gaps[0] / 25


def test_the_residual_bound_holds_in_long_double():
    """``quantize``'s and ``refine``'s residual norms are at least ``||z - (o + s q)||`` and ``||z - (o + s q + s q2 /
    256)||`` computed in 80-bit arithmetic from their own codes, for data near and far from the origin."""
    r = np.random.default_rng(9)
    for Z in (r.normal(size=(50, 40)), 1e6 + r.normal(size=(50, 40)), eight_bit(50, 40, 3).astype(np.float64)):
        o, s = grid.step_of(float(Z.max()), float(Z.min()))
        L = np.longdouble
        q, q2 = np.empty(Z.shape, np.int8), np.empty(Z.shape, np.int8)
        sq, res = grid.quantize(Z, o, s, q)
        exact = np.sqrt(((Z.astype(L) - (L(o) + L(s) * q)) ** 2).sum(1))
        assert (res >= exact).all()
        assert np.array_equal(sq, (q.astype(np.int64) ** 2).sum(1))
        sq, res = grid.refine(Z, o, s, q, q2)
        exact = np.sqrt(((Z.astype(L) - (L(o) + L(s) * q + L(s) / 256 * q2)) ** 2).sum(1))
        assert (res >= exact).all() and (res < 0.3 * np.sqrt(40) * s / 256 * 2).all()
        assert np.array_equal(sq, ((256 * q.astype(np.int64) + q2) ** 2).sum(1))


def test_sets_off_the_grid_get_two_digits_or_the_float32_bounds():
    """``grid.distances`` serves 8-bit sets with one digit, gives x two where it lies off the grid within its range
    (generated images, one point off by a fiftieth of a step), and refuses where x leaves the range or the target
    is off its grid (Gaussians, a target whose range no longer matches its data's step)."""
    y = eight_bit(500, 40, 4)
    yp = points.Points(y)
    assert grid.distances(eight_bit(30, 40, 5), yp, False).xc.q2 is None
    off = eight_bit(30, 40, 5)
    off[3, 7] += 0.02 * (2 / 255)
    assert grid.distances(off, yp, False).xc.q2 is not None
    generated = np.tanh(np.random.default_rng(6).normal(size=(30, 40))).astype(np.float32)
    assert grid.distances(generated, yp, False).xc.q2 is not None
    assert grid.distances(3 * generated, yp, False) is None
    assert grid.distances(eight_bit(30, 40, 5), points.Points(np.random.default_rng(7).normal(size=(500, 40))),
                          False) is None
    squeezed = y.copy()
    squeezed[squeezed > 0.9] = 0.9  # the range shrinks: the 255 steps no longer match the data's
    assert grid.distances(eight_bit(30, 40, 5).clip(-1, 0.9), points.Points(squeezed), False) is None


def test_without_the_int8_gemm_the_float32_bounds_serve(monkeypatch):
    """Where torch has no int8 GEMM the solve runs on the float32 bounds, with the same value."""
    x, y = eight_bit(64, 30, 8), eight_bit(2000, 30, 9)
    res = wasserstein(x, y, engine="sparse")
    assert res.info["bounds"] == "grid"
    monkeypatch.setattr(grid, "AVAILABLE", False)
    plain = wasserstein(x, y, engine="sparse")
    assert plain.info["bounds"] == "float32"
    assert plain.value == pytest.approx(res.value, rel=1e-12)


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("m, n, generated", [(64, 3000, False), (1500, 1500, False), (64, 3000, True),
                                             (1500, 1500, True)])
def test_solves_on_grid_bounds_equal_pots(p, m, n, generated):
    """Exact W1 and W2 between 8-bit sets, and between generated images (two digits) and 8-bit ones (few rows, and
    square with duplicated points) run on the grid bounds, certified, equal to POT's value."""
    x, y = eight_bit(m, 64, 10), eight_bit(n, 64, 11)
    if generated:
        x = np.tanh(np.random.default_rng(12).normal(size=x.shape)).astype(np.float32)
    if m == n:
        x[m // 2:] = y[:m - m // 2]  # pairs of cost 0
    res = wasserstein(x, y, p=p, engine="sparse")
    assert res.info["bounds"] == "grid" and res.gap <= 1e-9 * res.cost
    pot = wasserstein(x, y, p=p, engine="pot")
    assert res.value == pytest.approx(pot.value, rel=1e-9)
