"""Exact OT against a generic LP solver, closed forms, invariances and its own certificate."""

import warnings

import numpy as np
import ot as pot
import pytest
import torch
from numpy.testing import assert_allclose
from scipy.spatial.distance import cdist

from oracles import lp_value
from wganlab.errors import InputError
from wganlab.ot import exact
from wganlab.ot.costs import cost_matrix
from wganlab.ot.exact import NotOptimalError, dense, solve_exact, transport, wasserstein

rng = np.random.default_rng(1)


@pytest.mark.parametrize("seed", range(6))
def test_negative_costs_match_linprog(seed):
    """OT is invariant to a constant added to the cost: negative entries are solved, not refused."""
    r = np.random.default_rng(seed)
    n, m = [(2, 3), (3, 2), (2, 5), (4, 7), (5, 5), (3, 4)][seed]
    C = r.normal(size=(n, m)) - [0.0, 1.0, 5.0, 0.0, 1e6, 1e-6][seed]
    a, b = r.dirichlet(np.ones(n)), r.dirichlet(np.ones(m))
    res = solve_exact(C, a, b, plan=True)
    assert_allclose(res.value, lp_value(C, a, b), rtol=1e-8, atol=1e-12)
    u, v = res.potentials
    assert (u[:, None] + v[None, :] <= C + 1e-9 * np.abs(C).max()).all()  # the certificate, unshifted
    assert_allclose(a @ u + b @ v, res.value, rtol=1e-8, atol=1e-12)
    x, y = r.normal(size=(2, 3)), r.normal(size=(3, 3))  # the report's case: a 2 x 3 problem of cost -|x - y|
    assert_allclose(transport(x, y, cost=lambda p, q: -torch.cdist(p, q)).value, lp_value(-cdist(x, y),
                    np.full(2, 0.5), np.full(3, 1 / 3)), rtol=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_matches_linprog_on_weighted_problems(seed):
    r = np.random.default_rng(seed)
    n, m, d = r.integers(3, 9), r.integers(2, 8), r.integers(1, 6)
    x, y = r.normal(size=(n, d)), r.normal(size=(m, d)) + 1
    a, b = r.dirichlet(np.ones(n)), r.dirichlet(np.ones(m))
    for p, C in [(1, cdist(x, y)), (2, cdist(x, y, "sqeuclidean"))]:
        res = wasserstein(x, y, p=p, a=a, b=b, plan=True)
        assert_allclose(res.cost, lp_value(C, a, b), rtol=1e-8)
        assert_allclose(res.value, res.cost ** (1 / p), rtol=1e-12)
        assert_allclose(res.plan.sum(1), a, atol=1e-12)
        assert_allclose(res.plan.sum(0), b, atol=1e-12)


def test_translation_gives_norm_of_shift():
    x = rng.normal(size=(30, 5))
    t = np.array([3.0, -1.0, 0.5, 0.0, 2.0])
    for p in (1, 2, 3):
        assert_allclose(wasserstein(x, x + t, p=p).value, np.linalg.norm(t), rtol=1e-9)


def test_hidden_permutation_is_found():
    n = 12
    perm = rng.permutation(n)
    C = rng.uniform(1, 2, size=(n, n))
    C[np.arange(n), perm] = rng.uniform(0, 0.1, size=n)
    res = solve_exact(C, plan=True)
    expected = np.zeros((n, n))
    expected[np.arange(n), perm] = 1 / n
    assert_allclose(res.plan, expected, atol=1e-12)
    assert_allclose(res.value, C[np.arange(n), perm].mean(), rtol=1e-12)


def test_symmetry_and_permutation_invariance():
    x, y = rng.normal(size=(20, 4)), rng.normal(size=(15, 4))
    a, b = rng.dirichlet(np.ones(20)), rng.dirichlet(np.ones(15))
    w = wasserstein(x, y, a=a, b=b).value
    assert_allclose(wasserstein(y, x, a=b, b=a).value, w, rtol=1e-10)
    px, py = rng.permutation(20), rng.permutation(15)
    assert_allclose(wasserstein(x[px], y[py], a=a[px], b=b[py]).value, w, rtol=1e-10)


def test_one_dimensional_equal_sizes_is_sorted_matching():
    u, v = rng.normal(size=50), rng.exponential(size=50)
    for p in (1, 2):
        expected = np.mean(np.abs(np.sort(u) - np.sort(v)) ** p) ** (1 / p)
        assert_allclose(wasserstein(u, v, p=p).value, expected, rtol=1e-10)


def test_potentials_are_feasible_and_certify_the_value():
    x, y = rng.normal(size=(25, 3)), rng.normal(size=(40, 3))
    res = wasserstein(x, y)
    u, v = res.potentials
    C = cdist(x, y)
    assert (u[:, None] + v[None, :] <= C + 1e-12).all()
    dual = u.mean() + v.mean()
    assert_allclose(dual, res.cost, rtol=1e-10)
    assert 0 <= res.gap_rel < 1e-10


def test_certificate_rejects_a_truncated_solve(monkeypatch):
    """A solver that stops early but claims success is caught by the duality-gap check."""
    real_emd = pot.emd

    def truncated(a, b, C, **kw):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            P, log = real_emd(a, b, C, numItermax=5, log=True)
        log["result_code"] = 1
        return P, log

    monkeypatch.setattr(dense.pot, "emd", truncated)
    x, y = rng.normal(size=(40, 3)), rng.normal(size=(40, 3))
    with pytest.raises(NotOptimalError, match=r"duality gap|marginals"):
        wasserstein(x, y)


def test_certificate_rejects_a_feasible_but_suboptimal_plan(monkeypatch):
    def identity_plan(a, b, C, **kw):
        return np.diag(a), {"result_code": 1, "u": np.zeros(len(a)), "v": np.zeros(len(b))}

    monkeypatch.setattr(dense.pot, "emd", identity_plan)
    x, y = rng.normal(size=(10, 2)), rng.normal(size=(10, 2))
    with pytest.raises(NotOptimalError, match="duality gap"):
        wasserstein(x, y)


def test_iteration_budget_grows_until_optimal(monkeypatch):
    calls = []
    real_emd = pot.emd

    def tiny_budget(a, b, C, numItermax, **kw):
        calls.append(numItermax)
        return real_emd(a, b, C, numItermax=numItermax // 100_000, **kw)

    monkeypatch.setattr(dense.pot, "emd", tiny_budget)
    x, y = rng.normal(size=(60, 3)), rng.normal(size=(60, 3))
    res = wasserstein(x, y)
    assert len(calls) >= 2 and calls[1] == 10 * calls[0]
    monkeypatch.undo()
    assert_allclose(res.value, wasserstein(x, y).value, rtol=1e-12)


@pytest.mark.slow
def test_large_problem_where_pot_default_budget_is_wrong():
    """n = 2,500: POT's default numItermax stops early; we must still return the optimum."""
    r = np.random.default_rng(7)
    x, y = r.normal(size=(2500, 20)), r.normal(size=(2500, 20))
    C = cdist(x, y)
    a = b = np.full(2500, 1 / 2500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        truncated = pot.emd2(a, b, C, numItermax=100_000, check_marginals=False)
    exact_value = pot.emd2(a, b, C, numItermax=10**9)
    assert truncated > exact_value * (1 + 1e-5)  # the trap is real at this size
    assert_allclose(solve_exact(C).value, exact_value, rtol=1e-12)


def test_transport_with_image_costs_and_callable():
    x, y = torch.rand(6, 1, 12, 12) * 2 - 1, torch.rand(5, 1, 12, 12) * 2 - 1
    a, b = np.full(6, 1 / 6), np.full(5, 1 / 5)
    for cost in ("ssim", "psnr", "sqeuclidean"):
        C = cost_matrix(x.double(), y.double(), cost).numpy()
        assert_allclose(transport(x, y, cost).value, lp_value(C, a, b), rtol=1e-8)
    res = transport(x, y, lambda p, q: torch.cdist(p.flatten(1), q.flatten(1), p=1))
    assert_allclose(res.value, transport(x, y, "l1").value, rtol=1e-10)


@pytest.mark.parametrize(("x", "y", "kw", "msg"), [
    (np.zeros((0, 2)), np.zeros((3, 2)), {}, "x: empty set"),
    (np.full((2, 2), np.nan), np.zeros((3, 2)), {}, "NaN"),
    (np.zeros((2, 3)), np.zeros((3, 2)), {}, "dimension mismatch"),
    (np.zeros((2, 2)), np.zeros((3, 2)), {"a": [0.5, 0.6]}, "sum to 1"),
    (np.zeros((2, 2)), np.zeros((3, 2)), {"a": [1.5, -0.5]}, "non-negative"),
    (np.zeros((2, 2)), np.zeros((3, 2)), {"b": [0.5, 0.5]}, "expected 3 weights"),
    (np.zeros((2, 2)), np.zeros((3, 2)), {"p": 0.5}, "p must be"),
])
def test_bad_input_names_the_problem(x, y, kw, msg):
    with pytest.raises(InputError, match=msg):
        wasserstein(x, y, **kw)


# --- issue 14: right at every scale, closed form on a line, the trivial problem ----------------------------

SCALES = (1e-300, 1e-200, 1e-15, 1e-3, 1e5, 1e100, 1e150)


@pytest.mark.parametrize("engine,ps", [("auto", (1, 2, 3)), ("pot", (1, 2, 3)), ("sparse", (1, 2))])
def test_value_scales_with_the_data_at_every_representable_scale(engine, ps):
    """W_p(s x, s y) = s W_p(x, y) to 1e-9, the oracle being the unscaled solve checked against an LP."""
    r = np.random.default_rng(3)
    x, y = r.normal(size=(30, 3)), r.normal(size=(45, 3)) + 0.5
    for p in ps:
        base = wasserstein(x, y, p=p, engine=engine)
        assert_allclose(base.cost, lp_value(cdist(x, y) ** p, np.full(30, 1 / 30), np.full(45, 1 / 45)), rtol=1e-8)
        for s in SCALES:
            res = wasserstein(x * s, y * s, p=p, engine=engine)
            assert res.value == pytest.approx(s * base.value, rel=1e-9), (p, s)
            assert abs(res.gap) <= 1e-7 * res.cost  # the certificate scales too (both 0 where s^p underflows)


def test_cost_matrix_scale_does_not_change_the_plan():
    r = np.random.default_rng(4)
    C = r.uniform(size=(7, 9))
    base = solve_exact(C)
    for s in (1e-300, 1e-20, 1e30, 1e300):
        res = solve_exact(C * s)
        assert res.value == pytest.approx(s * base.value, rel=1e-12)
        u, v = res.potentials
        assert (u[:, None] + v[None, :] <= C * s * (1 + 1e-12)).all()


def test_prepared_set_far_from_unit_scale():
    r = np.random.default_rng(5)
    x, y = r.normal(size=(20, 4)), r.normal(size=(60, 4))
    base = wasserstein(x, y).value
    for s in (1e-250, 1e120):
        assert wasserstein(x * s, exact.prepare_points(y * s)).value == pytest.approx(s * base, rel=1e-9)
    # x far outside the prepared frame: solved afresh, still right
    assert wasserstein(x * 1e30, exact.prepare_points(y)).value == pytest.approx(
        wasserstein(x * 1e30, y).value, rel=1e-9)
    # ... also where x would overflow in that frame (y subnormal, prepared at 2^1030 times its size): before, an
    # error about a "cost matrix" with infinite values
    tiny = y * 2.0**-1060
    assert wasserstein(x, exact.prepare_points(tiny)).value == pytest.approx(wasserstein(x, tiny).value, rel=1e-12)
    assert wasserstein(x, exact.prepare_points(tiny)).value == pytest.approx(wasserstein(x, 0 * y).value, rel=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_column_bounds_in_one_pass_are_torchs_amax_and_amin(dtype, monkeypatch):
    """The one-pass kernel behind every spread check: each coordinate's max and min, as torch gives them, for one
    point, for extremes and subnormals, and for a non-contiguous view (torch's own path)."""
    from wganlab.ot import scale
    from wganlab.ot.scale import column_bounds

    monkeypatch.setattr(scale, "ONE_PASS_MIN_VALUES", 1)  # the kernel for every set, however small
    r = np.random.default_rng(8)
    z = torch.from_numpy(r.normal(size=(301, 7)) * 10.0 ** r.integers(-30, 30, size=7)).to(dtype)
    z[5, 0], z[9, 1] = torch.finfo(dtype).max, -torch.finfo(dtype).tiny / 4
    for points in (z, z[:1], z.T.contiguous().T, z[::3]):
        hi, lo = column_bounds(points)
        assert hi.dtype == lo.dtype == dtype
        assert torch.equal(hi, points.amax(0)) and torch.equal(lo, points.amin(0))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_column_bounds_are_finite_exactly_where_the_set_is(dtype, monkeypatch):
    """The one pass is also the input's check: a NaN (first row, middle, last) makes its coordinate's bounds NaN,
    an infinite value shows as itself, and finite values whose column sum leaves float's range stay finite bounds."""
    from wganlab.ot import scale
    from wganlab.ot.scale import column_bounds

    monkeypatch.setattr(scale, "ONE_PASS_MIN_VALUES", 1)
    big = torch.finfo(dtype).max
    z = torch.zeros((50, 6), dtype=dtype)
    z[:, 5] = big  # sums to inf: finite bounds all the same
    z[0, 0], z[17, 1], z[49, 2], z[3, 3], z[8, 4] = np.nan, np.nan, np.nan, np.inf, -np.inf
    hi, lo = column_bounds(z)
    assert torch.isnan(hi[:3]).all() and torch.isnan(lo[:3]).all()
    assert hi[3] == np.inf and lo[4] == -np.inf and lo[3] == 0 and hi[4] == 0
    assert hi[5] == lo[5] == big
    assert torch.equal(torch.isfinite(hi), torch.isfinite(z.amax(0)))
    assert torch.equal(torch.isfinite(lo), torch.isfinite(z.amin(0)))


def test_a_large_set_with_a_nan_is_named_by_its_one_pass(monkeypatch):
    """A large target's NaN, found by the pass that reads its range (no separate check of it), gives the one-line
    error with the count, from :func:`wasserstein` and from :func:`prepare_points`."""
    from wganlab.ot import scale
    from wganlab.ot.exact import api

    r = np.random.default_rng(16)
    x, y = r.normal(size=(4, 512)), r.normal(size=(scale.ONE_PASS_MIN_VALUES // 512 + 1, 512))
    checked = []
    original = api.require_finite
    monkeypatch.setattr(api, "require_finite", lambda t, name: checked.append(name) or original(t, name))
    wasserstein(x, y)
    assert checked == []  # the range's pass was the check
    y[1000, 7] = np.nan
    for solve in (lambda: wasserstein(x, y), lambda: exact.prepare_points(y)):
        with pytest.raises(InputError, match="y: contains 1 NaN or infinite value"):
            solve()


def test_one_point_on_one_side_with_negative_costs_is_trivial():
    C = np.array([[-1.0, 2.0, -3.0]])
    b = np.array([0.5, 0.25, 0.25])
    res = solve_exact(C, b=b, plan=True)
    assert res.value == pytest.approx(-0.5 + 0.5 - 0.75)
    assert_allclose(res.plan, b[None])
    assert solve_exact(C.T, a=b).value == pytest.approx(res.value)


@pytest.mark.parametrize("p", [1, 2, 1.5])
def test_weighted_one_dimensional_closed_form_matches_linprog(p):
    r = np.random.default_rng(6)
    u, v = r.normal(size=17), r.exponential(size=23)
    a, b = r.dirichlet(np.ones(17)), r.dirichlet(np.ones(23))
    a[3] = 0.0
    a /= a.sum()
    res = wasserstein(u, v, p=p, a=a, b=b, plan=True)
    assert res.solver == "closed-form-line"
    assert_allclose(res.cost, lp_value(np.abs(u[:, None] - v[None, :]) ** p, a, b), rtol=1e-9)
    assert_allclose(res.plan.sum(1), a, atol=1e-12)
    assert_allclose(res.plan.sum(0), b, atol=1e-12)


def test_collinear_points_in_higher_dimension_use_the_line():
    r = np.random.default_rng(7)
    d, o = r.normal(size=5), r.normal(size=5)
    t, s = r.normal(size=(300, 1)), r.normal(size=(200, 1)) + 1
    for p in (1, 2):
        res = wasserstein(t * d + o, s * d + o, p=p)
        assert res.solver == "closed-form-line"
        assert res.value == pytest.approx(wasserstein(t, s, p=p).value * np.linalg.norm(d), rel=1e-9)
        assert res.value == pytest.approx(wasserstein(t * d + o, s * d + o, p=p, engine="pot").value, rel=1e-9)


def test_points_off_the_line_go_to_the_general_solver():
    r = np.random.default_rng(8)
    x = np.c_[r.normal(size=40), np.zeros(40)]
    y = np.c_[r.normal(size=30), np.zeros(30)]
    y[5, 1] = 0.3  # one point off the line
    res = wasserstein(x, y, p=2)
    assert res.solver != "closed-form-line"
    assert res.value == pytest.approx(np.sqrt(lp_value(cdist(x, y, "sqeuclidean"), np.full(40, 1 / 40),
                                                       np.full(30, 1 / 30))), rel=1e-9)


def test_the_line_test_holds_points_within_its_tolerance_and_not_beyond():
    """``line_coordinates`` keeps sets whose every point is within COLLINEAR_RTOL of their extent from the line (its
    distance from ``|z|^2 - t^2``), and drops them a tenth beyond, at any offset of the line from the origin; the
    coordinates are the positions along it."""
    from wganlab.ot.exact import line

    r = np.random.default_rng(17)
    e, n = np.linalg.qr(r.normal(size=(6, 2)))[0].T  # the line's direction and a normal to it
    for offset in (0.0, 1e3):
        t = np.r_[0.0, 10.0, r.uniform(0, 10, size=98)]  # extent 10 from the first point
        for factor, kept in ((0.9, True), (1.1, False)):
            z = torch.from_numpy(offset * n + t[:, None] * e)
            z[50] += factor * line.COLLINEAR_RTOL * 10 * torch.from_numpy(n)
            coords = line.line_coordinates(z[:40], z[40:])
            assert (coords is not None) == kept
            if kept:
                assert_allclose(np.r_[coords[0], coords[1]], t, atol=1e-9)


@pytest.mark.parametrize("p", [1, 2])
def test_sets_near_a_line_take_the_closed_form_only_when_certified(p):
    """A line plus 1e-6 noise in R^5 (W1 there hung the sparse engine at 11,000 points): shifted along the line by
    0.3, the monotone plan's true cost is within 1e-9 of the projected optimum, so the closed form is certified and
    POT's value (a different solver on the dense matrix) lies in ``[value - gap, value]``; unshifted, mass barely
    moves and the gap is too large (1e-7 relative), so the general solver runs; with 1e-3 noise it is not tried."""
    r = np.random.default_rng(10)
    d = r.normal(size=5)
    d /= np.linalg.norm(d)

    def near_line(n, shift, noise):
        return (r.normal(size=(n, 1)) + shift) * d + noise * r.normal(size=(n, 5))

    x, y = near_line(1500, 0.0, 1e-6), near_line(1600, 0.3, 1e-6)
    res = wasserstein(x, y, p=p)
    ref = wasserstein(x, y, p=p, engine="pot").cost
    assert res.solver == "closed-form-line" and 0 <= res.gap <= 1e-9 * res.cost
    assert res.cost - res.gap - 1e-12 <= ref <= res.cost + 1e-12
    for y in (near_line(1600, 0.0, 1e-6), near_line(1600, 0.3, 1e-3)):
        res = wasserstein(x, y, p=p)
        assert res.solver != "closed-form-line"
        assert res.value == pytest.approx(wasserstein(x, y, p=p, engine="pot").value, rel=1e-9)


def test_large_one_dimensional_and_collinear_sets_take_the_closed_form():
    """11,000 x 11,000 1-D points and 2,000 x 2,000 collinear points in R^5 hung in the sparse engine."""
    r = np.random.default_rng(9)
    u, v = r.normal(size=11_000), r.normal(size=11_000) + 0.1
    for p in (1, 2):
        res = wasserstein(u, v, p=p)
        assert res.solver == "closed-form-line"
        expected = np.mean(np.abs(np.sort(u) - np.sort(v)) ** p) ** (1 / p)
        assert res.value == pytest.approx(expected, rel=1e-10)
    d = r.normal(size=5)
    res = wasserstein(r.normal(size=(2000, 1)) * d, r.normal(size=(2000, 1)) * d, p=2)
    assert res.solver == "closed-form-line" and res.gap <= 1e-7 * res.cost + 1e-12


def test_auto_falls_back_to_pot_while_its_dense_problem_takes_at_most_half_the_memory(monkeypatch):
    """POT's 11,000 x 11,000 solve (7.8 GB measured, 64 bytes a pair) fits beside 16 GiB available, 12,000 x 12,000
    does not; where the memory is unknown the fixed AUTO_DENSE_MAX_PAIRS decides."""
    from wganlab.ot.exact import api

    monkeypatch.setattr(api, "memory_available", lambda: 16 * 2**30)
    assert api.dense_fallback_fits(11_000, 11_000) and not api.dense_fallback_fits(12_000, 12_000)
    monkeypatch.setattr(api, "memory_available", lambda: None)
    assert api.dense_fallback_fits(10_000, 12_000) and not api.dense_fallback_fits(11_000, 11_000)


def test_low_intrinsic_dimension_off_a_line_never_hangs_in_auto(monkeypatch):
    """A line plus 1e-9 noise in R^5 and a plane in R^5 (issue 14 §2): their sparse arc set grows far beyond
    generic data's. ``auto`` hands them to POT while the dense problem fits, and where it does not stops once the
    arcs outgrow AUTO_ARCS_PER_POINT_LARGE per point (here made small) instead of slowing without bound."""
    from wganlab.ot.exact import api

    r = np.random.default_rng(12)
    d = r.normal(size=5)
    line = r.normal(size=(400, 1)) * d + 1e-9 * r.normal(size=(400, 5))
    plane = r.normal(size=(400, 2)) @ r.normal(size=(2, 5))
    shift = np.full(5, 0.1)
    for x in (line, plane):
        res = wasserstein(x, x + shift, p=2)  # W_p of a translation is its length
        assert res.solver == "pot-network-simplex" and res.value == pytest.approx(0.1 * np.sqrt(5), rel=1e-9)
    monkeypatch.setattr(api, "AUTO_MIN_PAIRS", 0)  # as if 400 x 400 were a large problem
    monkeypatch.setattr(api, "memory_available", lambda: 1)  # no room for POT's dense problem
    monkeypatch.setattr(api, "AUTO_ARCS_PER_POINT_LARGE", 12)
    with pytest.raises(NotOptimalError, match=r"low intrinsic dimension.*engine='pot'"):
        wasserstein(line, line + shift, p=2)
    monkeypatch.setattr(api, "memory_available", lambda: 2**40)  # a large problem whose dense one fits: POT
    monkeypatch.setattr(api, "AUTO_DENSE_MAX_PAIRS", 0)
    res = wasserstein(line, line + shift, p=2)
    assert res.solver == "pot-network-simplex" and res.value == pytest.approx(0.1 * np.sqrt(5), rel=1e-9)
    g = r.normal(size=(400, 10))  # generic data stays under the limit
    res = wasserstein(g, g[::-1] + 0.1, p=2)
    assert res.solver == "sparse-ssp" and res.info["arcs"] <= 12 * 800
    assert res.value == pytest.approx(wasserstein(g, g[::-1] + 0.1, p=2, engine="pot").value, rel=1e-9)
