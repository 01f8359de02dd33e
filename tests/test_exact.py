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
from wganlab.ot.exact import NotOptimalError, solve_exact, transport, wasserstein

rng = np.random.default_rng(1)


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

    monkeypatch.setattr(exact.pot, "emd", truncated)
    x, y = rng.normal(size=(40, 3)), rng.normal(size=(40, 3))
    with pytest.raises(NotOptimalError, match=r"duality gap|marginals"):
        wasserstein(x, y)


def test_certificate_rejects_a_feasible_but_suboptimal_plan(monkeypatch):
    def identity_plan(a, b, C, **kw):
        return np.diag(a), {"result_code": 1, "u": np.zeros(len(a)), "v": np.zeros(len(b))}

    monkeypatch.setattr(exact.pot, "emd", identity_plan)
    x, y = rng.normal(size=(10, 2)), rng.normal(size=(10, 2))
    with pytest.raises(NotOptimalError, match="duality gap"):
        wasserstein(x, y)


def test_iteration_budget_grows_until_optimal(monkeypatch):
    calls = []
    real_emd = pot.emd

    def tiny_budget(a, b, C, numItermax, **kw):
        calls.append(numItermax)
        return real_emd(a, b, C, numItermax=numItermax // 100_000, **kw)

    monkeypatch.setattr(exact.pot, "emd", tiny_budget)
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
        C = exact.cost_matrix(x.double(), y.double(), cost).numpy()
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
