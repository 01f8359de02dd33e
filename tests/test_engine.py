"""The sparse exact OT engine against an LP solver, POT, closed forms and its own certificate."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from scipy.spatial.distance import cdist

from oracles import lp_value
from wganlab.errors import InputError, NotOptimalError
from wganlab.ot import ot_means
from wganlab.ot.exact import (
    AUTO_MIN_PAIRS,
    arc_costs,
    auction,
    blocks,
    candidates,
    coarse,
    points,
    prepare_points,
    pricing,
    sketch,
    transport,
    wasserstein,
)
from wganlab.ot.exact import api as engine_api
from wganlab.ot.exact import sparse as engine
from wganlab.ot.exact.api import AUTO_LOW_DIM, AUTO_LOW_DIM_MAX_PAIRS, AUTO_MIN_EFFECTIVE

pytestmark = pytest.mark.skipif(not engine.available(), reason="the sparse engine needs numba")


def assert_certified(res, x, y, a, b, p=1):
    """Plan marginals, potentials feasible for every pair, dual value = cost, tiny gap."""
    C = cdist(x, y) ** p
    u, v = res.potentials
    assert (u[:, None] + v[None, :] <= C + 1e-12 * max(C.max(), 1)).all()
    assert_allclose(a @ u + b @ v, res.cost, rtol=1e-10, atol=1e-12)
    assert abs(res.gap) <= 1e-10 * max(res.cost, 1e-3)
    if res.plan is not None:
        P = res.plan.toarray()
        assert (P >= 0).all()
        assert_allclose(P.sum(1), a, atol=1e-12)
        assert_allclose(P.sum(0), b, atol=1e-12)
        assert_allclose((P * C).sum(), res.cost, rtol=1e-12)
    if res.plan_costs is not None:  # each plan entry's cost, in the plan's structure
        assert res.plan_costs.shape == res.plan.shape
        assert np.array_equal(res.plan_costs.indptr, res.plan.indptr)
        assert np.array_equal(res.plan_costs.indices, res.plan.indices)
        assert_allclose(res.plan_costs.toarray(), np.where(res.plan.toarray() > 0, C, 0), rtol=1e-12, atol=0)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("weighted", [False, True])
def test_matches_linprog(seed, weighted):
    r = np.random.default_rng(seed)
    n, m, d = (int(v) for v in r.integers([1, 2, 1], [12, 40, 6]))
    x, y = r.normal(size=(n, d)), r.normal(size=(m, d)) + 0.5
    a = r.dirichlet(np.ones(n)) if weighted else np.full(n, 1 / n)
    b = r.dirichlet(np.ones(m)) if weighted else np.full(m, 1 / m)
    for p in (1, 2):
        res = wasserstein(x, y, p=p, a=a if weighted else None, b=b if weighted else None, plan=True,
                          engine="sparse")
        assert res.solver == "sparse-ssp"
        assert_allclose(res.cost, lp_value(cdist(x, y) ** p, a, b), rtol=1e-8)
        assert_allclose(res.value, res.cost ** (1 / p), rtol=1e-12)
        assert_certified(res, x, y, a, b, p)


@pytest.mark.parametrize(("n", "m"), [(40, 40), (30, 70), (70, 30), (5, 200), (200, 5), (1, 50), (50, 1)])
def test_matches_pot_square_and_rectangular(n, m):
    """Both path searches (few rows x many columns, general) and both orientations."""
    r = np.random.default_rng(n * 1000 + m)
    x, y = r.normal(size=(n, 8)), r.normal(size=(m, 8))
    res = wasserstein(x, y, plan=True, engine="sparse")
    ref = wasserstein(x, y, engine="pot")
    assert_allclose(res.value, ref.value, rtol=1e-12)
    assert_certified(res, x, y, np.full(n, 1 / n), np.full(m, 1 / m))


def test_degenerate_ties_and_duplicates():
    """Points on a small integer grid (many equal costs) with repeated points on both sides."""
    r = np.random.default_rng(3)
    x = r.integers(0, 3, size=(60, 2)).astype(float)
    y = np.concatenate([x[:20], r.integers(0, 3, size=(30, 2))]).astype(float)
    a, b = np.full(60, 1 / 60), np.full(50, 1 / 50)
    for p in (1, 2):
        res = wasserstein(x, y, p=p, plan=True, engine="sparse")
        assert_allclose(res.cost, lp_value(cdist(x, y) ** p, a, b), rtol=1e-9, atol=1e-12)
        assert_certified(res, x, y, a, b, p)


def test_zero_weights_and_one_heavy_point():
    r = np.random.default_rng(12)
    x, y = r.normal(size=(9, 3)), r.normal(size=(30, 3))
    a = np.array([0.0, 0.0, 0.9, 0.02, 0.02, 0.02, 0.02, 0.02, 0.0])
    b = r.dirichlet(np.ones(30))
    b[[3, 7]] = 0.0
    b /= b.sum()
    res = wasserstein(x, y, a=a, b=b, plan=True, engine="sparse")
    assert_allclose(res.cost, lp_value(cdist(x, y), a, b), rtol=1e-9)
    assert_certified(res, x, y, a, b)


def test_identical_sets_cost_zero():
    x = np.random.default_rng(0).normal(size=(80, 5))
    res = wasserstein(x, x[::-1].copy(), plan=True, engine="sparse")
    assert_allclose(res.value, 0.0, atol=1e-12)
    assert_allclose(res.plan.toarray(), np.eye(80)[::-1] / 80, atol=1e-15)


def test_single_point_is_mean_distance():
    r = np.random.default_rng(4)
    x, y = r.normal(size=(1, 6)), r.normal(size=(90, 6))
    b = r.dirichlet(np.ones(90))
    assert_allclose(wasserstein(x, y, b=b, engine="sparse").value, b @ np.linalg.norm(y - x, axis=1), rtol=1e-12)


def test_pricing_adds_the_pairs_the_neighbours_miss():
    """Two clusters swapped in size: most of x must travel to far columns that no nearest-neighbour list
    holds, so only the all-pairs check can find them."""
    r = np.random.default_rng(5)
    x = np.concatenate([r.normal(size=(45, 3)), r.normal(size=(5, 3)) + 6])
    y = np.concatenate([r.normal(size=(5, 3)), r.normal(size=(45, 3)) + 6])
    res = engine.solve_points(x, y, k=1)
    assert res.info["rounds"] > 1 and res.info["priced_in"] > 0
    assert_allclose(res.cost, lp_value(cdist(x, y), np.full(50, 0.02), np.full(50, 0.02)), rtol=1e-9)
    assert_certified(res, x, y, np.full(50, 0.02), np.full(50, 0.02))


def test_arc_set_without_a_feasible_flow_is_extended(monkeypatch):
    """A far, heavy row whose nearest columns hold less than its mass, at prices (all 0, no auction) where no column
    takes it among its best rows: the stuck rows get more arcs."""
    monkeypatch.setattr(auction, "run", lambda *args: 0)
    r = np.random.default_rng(6)
    x = np.concatenate([r.normal(size=(8, 2)) * 0.1, [[30.0, 0.0]]])
    y = r.normal(size=(12, 2))
    a, b = np.concatenate([np.full(8, 0.5 / 8), [0.5]]), np.full(12, 1 / 12)
    res = engine.solve_points(x, y, a, b, k=1)
    assert res.info["extended"] > 0
    assert_allclose(res.cost, lp_value(cdist(x, y), a, b), rtol=1e-9)
    assert_certified(res, x, y, a, b)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("centred", [True, False])
def test_float32_screen_is_a_lower_bound_even_far_from_the_origin(dtype, centred):
    """The rigorous float32 bound on costs (the basis of the certificate) under heavy cancellation, also
    for float32 points and without the centring that keeps the norms small."""
    r = np.random.default_rng(7)
    for shift, squared in [(0.0, False), (1e3, False), (1e3, True)]:
        x, y = (r.normal(size=(50, 30)) + shift).astype(dtype), (r.normal(size=(70, 30)) + shift).astype(dtype)
        x[:5] = y[:5]  # exact zeros
        yp = points.Points(y, None if centred else np.zeros(30))
        lo = blocks.Distances(points.Points(x, yp.mu), yp, squared).lower(0, slice(0, 50)).astype(np.float64)
        C = cdist(x.astype(np.float64), y.astype(np.float64), "sqeuclidean" if squared else "euclidean")
        assert (lo <= C).all()
        scale = (1 + (shift if centred else 30 * shift)) ** (2 if squared else 1)
        assert_allclose(lo, C, atol=1e-2 * scale)


@pytest.mark.parametrize("m", [16, 200, 1000])
def test_warm_start_gives_the_same_answer_with_less_work(m):
    """Few rows, general, and more rows than columns (solved transposed): the auction restarts from the
    warm prices, with a small epsilon."""
    r = np.random.default_rng(8)
    x, y = r.normal(size=(m, 10)), r.normal(size=(400, 10))
    first = wasserstein(x, y, engine="sparse")
    moved = x + 0.01 * r.normal(size=x.shape)
    cold = wasserstein(moved, y, plan=True, engine="sparse")
    warm = wasserstein(moved, y, plan=True, engine="sparse", warm_start=first)
    assert_allclose(warm.value, cold.value, rtol=1e-12)
    assert 0 < warm.info["bids"] < cold.info["bids"]
    assert_certified(warm, moved, y, np.full(m, 1 / m), np.full(400, 1 / 400))


@pytest.mark.parametrize("scale", [1.0, 1e-200, 1e150])
@pytest.mark.parametrize(("n", "m"), [(30, 70), (70, 30)])
def test_plan_costs_are_the_costs_of_the_plan_entries_at_any_scale(scale, n, m):
    """The sparse engine returns each plan entry's cost (rescaled with the result; transposed with it when the
    larger set is solved as the rows)."""
    r = np.random.default_rng(n + m)
    x, y = r.normal(size=(n, 5)), r.normal(size=(m, 5))
    for p in (1, 2) if scale == 1 else (1,):  # squared costs at 1e-200 are below float64's range
        res = wasserstein(x * scale, y * scale, p=p, plan=True, engine="sparse")
        assert res.plan_costs is not None
        C = np.where(res.plan.toarray() > 0, cdist(x, y) ** p, 0)
        assert_allclose(res.plan_costs.toarray() / scale**p, C, rtol=1e-12, atol=0)
        assert np.array_equal(res.plan_costs.indices, res.plan.indices)


def test_ot_means_takes_the_solvers_edge_lengths(monkeypatch):
    """OT-Means' Weiszfeld pass reads each plan entry's length from the sparse solve instead of computing it:
    the lengths it would compute, the same terms."""
    from wganlab.ot import otmeans, weiszfeld

    r = np.random.default_rng(4)
    y = torch.as_tensor(r.normal(size=(300, 6)))
    given = []

    def checked(x, Y, ynorm, rows, cols, w, want_dist=False, dist=None):
        given.append(dist is not None)
        out = weiszfeld.vz_terms(x, Y, ynorm, rows, cols, w, want_dist, dist)
        if dist is not None:
            for a, b in zip(out, weiszfeld.vz_terms(x, Y, ynorm, rows, cols, w, want_dist=True), strict=True):
                torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
        return out

    monkeypatch.setattr(otmeans, "vz_terms", checked)
    ot_means(y, 8, n_iter=2, ot_steps=2, engine="sparse", init=r.normal(size=(8, 6)))
    assert given == [True] * 4


def test_ot_means_trace_matches_the_pot_engine():
    r = np.random.default_rng(9)
    y = torch.as_tensor(np.concatenate([r.normal(size=(150, 4)), r.normal(size=(150, 4)) + 4]))
    kw = {"n_iter": 2, "ot_steps": 3, "init": r.normal(size=(12, 4))}
    sparse, pot = ot_means(y, 12, engine="sparse", **kw), ot_means(y, 12, engine="pot", **kw)
    assert_allclose(sparse.w1_trace, pot.w1_trace, rtol=1e-10)
    torch.testing.assert_close(sparse.centroids, pot.centroids, rtol=1e-8, atol=1e-10)


def test_auto_engine_and_transport():
    r = np.random.default_rng(10)
    small_x, small_y = r.normal(size=(10, 3)), r.normal(size=(12, 3))
    assert wasserstein(small_x, small_y).solver == "pot-network-simplex"
    n = int(np.sqrt(AUTO_MIN_PAIRS)) + 1
    x, y = r.normal(size=(n, AUTO_LOW_DIM + 1)), r.normal(size=(n, AUTO_LOW_DIM + 1))
    res = transport(x, y, "sqeuclidean")
    assert res.solver == "sparse-ssp" and res.plan is None
    assert_allclose(res.value, transport(x, y, "sqeuclidean", engine="pot").value, rtol=1e-12)
    assert wasserstein(x, y, p=3).solver == "pot-network-simplex"
    # as many points in AUTO_LOW_DIM coordinates: POT at once (no sparse attempt first)
    low = x[:, :AUTO_LOW_DIM], y[:, :AUTO_LOW_DIM]
    assert n * n <= AUTO_LOW_DIM_MAX_PAIRS and wasserstein(*low).solver == "pot-network-simplex"
    assert engine_api._pick_engine("auto", 1, n, n, AUTO_LOW_DIM + 1)
    assert not engine_api._pick_engine("auto", 1, n, n, AUTO_LOW_DIM)
    assert engine_api._pick_engine("auto", 1, 2001, 2001, AUTO_LOW_DIM)  # beyond the bound: the sparse engine


def test_auto_engine_runs_pot_on_weights_far_from_uniform(monkeypatch):
    """Weights far from uniform (effective size ``1 / sum a_i^2`` below AUTO_MIN_EFFECTIVE of the points) split
    heavy points over many partners, one shortest path each: ``auto`` runs POT where the dense problem fits (W1 on
    3,000 Gaussians a side with Dirichlet(0.5) weights: 10.7 s sparse, 1.5 s POT). Weights near uniform, or a dense
    problem that does not fit, keep the sparse engine."""
    r = np.random.default_rng(16)
    n = int(np.sqrt(AUTO_MIN_PAIRS)) + 1
    x, y = r.normal(size=(n, 6)), r.normal(size=(n, 6))
    skewed, near = r.dirichlet(np.full(n, 0.5)), r.uniform(0.5, 1.5, n)
    near /= near.sum()
    assert 1 / (skewed @ skewed) < AUTO_MIN_EFFECTIVE * n < 1 / (near @ near)
    res = wasserstein(x, y, 1, near, skewed)
    assert res.solver == "pot-network-simplex"
    assert_allclose(res.value, wasserstein(x, y, 1, near, skewed, engine="sparse").value, rtol=1e-12)
    assert wasserstein(x, y, 1, skewed, near).solver == "pot-network-simplex"
    assert wasserstein(x, y, 1, near, near).solver == "sparse-ssp"
    monkeypatch.setattr(engine_api, "memory_available", lambda: 1)
    assert wasserstein(x, y, 1, near, skewed).solver == "sparse-ssp"


@pytest.mark.parametrize("p", [1, 2])
def test_auto_engine_runs_pot_on_a_weighted_tube(monkeypatch, p):
    """A weighted thin tube shifted along itself (sets far apart against their spacing: prices from the coarsened
    problem) sends each split column's shortest path along the tube (4,000 points a side: 171 s sparse, 5.3 s POT):
    ``auto`` runs POT where the dense problem fits. The same points with uniform weights, or a dense problem that
    does not fit, keep the sparse engine."""
    r = np.random.default_rng(5)
    n = int(np.sqrt(AUTO_MIN_PAIRS)) + 1
    x, y = np.zeros((n, 4)), np.zeros((n, 4))
    for z, shift in ((x, 0.0), (y, 0.3)):
        z[:, 0] = r.uniform(size=n) + shift
        z[:, 1:] = 1e-2 * r.normal(size=(n, 3))
    a, b = (w / w.sum() for w in r.uniform(0.5, 1.5, size=(2, n)))
    res = wasserstein(x, y, p, a, b)
    assert res.solver == "pot-network-simplex"
    assert_allclose(res.value, wasserstein(x, y, p, a, b, engine="sparse").value, rtol=1e-9)
    assert wasserstein(x, y, p).solver == "sparse-ssp"
    monkeypatch.setattr(engine_api, "memory_available", lambda: 1)
    assert wasserstein(x, y, p, a, b).solver == "sparse-ssp"


def test_collapsed_set_against_a_ring():
    """Nearest neighbours say little here (every ring point is nearest to the blob's rim): the sparse
    engine still certifies the optimum, and ``auto`` hands the problem to POT once the arcs pile up."""
    r = np.random.default_rng(11)
    x = 0.05 * r.normal(size=(300, 2))
    t = r.uniform(0, 2 * np.pi, 300)
    y = 2 * np.stack([np.cos(t), np.sin(t)], 1) + 0.02 * r.normal(size=(300, 2))
    ref = wasserstein(x, y, engine="pot")
    res = wasserstein(x, y, engine="sparse", plan=True)
    assert_allclose(res.value, ref.value, rtol=1e-12)
    assert_certified(res, x, y, np.full(300, 1 / 300), np.full(300, 1 / 300))
    with pytest.raises(engine.TooDense):
        engine.solve_points(x, y, max_arcs=20 * 600)
    auto = wasserstein(x, y)
    assert auto.solver in ("pot-network-simplex", "sparse-ssp")
    assert_allclose(auto.value, ref.value, rtol=1e-12)


def test_an_arc_set_over_the_limit_stops_before_the_shortest_paths(monkeypatch):
    """The limit is checked before each round's shortest paths (their cost on degenerate data is what the limit
    saves: a thin tube shifted along itself, 6,000 points, handed to POT after 30 s instead of 53 s)."""
    r = np.random.default_rng(12)
    x, y = r.normal(size=(300, 3)), r.normal(size=(300, 3))

    def no_paths(*args):
        raise AssertionError("the shortest paths ran on an arc set over the limit")

    monkeypatch.setattr(engine.ssp, "ssp", no_paths)
    with pytest.raises(engine.TooDense, match="limit 600"):
        engine.solve_points(x, y, max_arcs=600)  # the first arc set alone holds more than 1 arc per point


def test_too_few_rounds_is_not_certified(monkeypatch):
    r = np.random.default_rng(5)
    x = np.concatenate([r.normal(size=(45, 3)), r.normal(size=(5, 3)) + 6])
    y = np.concatenate([r.normal(size=(5, 3)), r.normal(size=(45, 3)) + 6])
    monkeypatch.setattr(engine, "MAX_ROUNDS", 1)
    with pytest.raises(NotOptimalError, match="pricing rounds"):
        engine.solve_points(x, y, k=1)


@pytest.mark.parametrize(("kw", "msg"), [
    ({"engine": "fast"}, "unknown engine"),
    ({"engine": "sparse", "p": 3}, "euclidean and sqeuclidean"),
    ({"engine": "sparse", "warm_start": "x"}, "warm_start"),
])
def test_bad_engine_options(kw, msg):
    with pytest.raises(InputError, match=msg):
        wasserstein(np.zeros((3, 2)), np.ones((4, 2)), **kw)


def _graph(cost_t: np.ndarray):
    """``(col_ptr, arc_row, cost)``: every pair of the ``(N, M)`` cost matrix ``cost_t`` as a column-major graph."""
    N, M = cost_t.shape
    return (np.arange(N + 1, dtype=np.int64) * M, np.tile(np.arange(M, dtype=np.int64), N),
            np.ascontiguousarray(cost_t).reshape(-1))


def _forms(cost_t: np.ndarray):
    """The arguments ``(col_ptr, arc_row, cost)`` of :func:`auction.auction_prices` for the ``(N, M)`` costs
    ``cost_t``: the graph of every pair, and the dense form."""
    col_ptr, arc_row, cost = _graph(cost_t)
    return (col_ptr, arc_row, cost[None]), (None, None, np.ascontiguousarray(cost_t))


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("eps", [1e-1, 1e-3])
def test_auction_prices_are_an_eps_optimal_dual(eps, dense):
    """Auction theory: at the end, every column sits within ``eps`` of its best row, so the semi-dual
    value ``(sum_i cap_i u_i + sum_j min_i (c_ij - u_i)) / N`` of ``u = -prices`` lies in
    ``[OT - eps, OT]`` (weak duality gives the upper end). The same on the graph of every pair and on the dense
    matrix."""
    r = np.random.default_rng(11)
    x, y = r.normal(size=(5, 3)), r.normal(size=(40, 3))
    C = cdist(x, y)
    cap = np.array([4, 6, 8, 10, 12])
    price, owner = np.zeros(5), np.empty(40, dtype=np.int64)
    (col_ptr, arc_row, _), _ = forms = _forms(C.T)
    bids = auction.auction_prices(*forms[dense], cap, price, 1.0, eps, 4.0, 10**6, owner)
    u = -price
    dual = (cap @ u + (C - u[:, None]).min(0).sum()) / 40
    ot = lp_value(C, cap / 40, np.full(40, 1 / 40))
    assert bids >= 40
    assert ot - eps - 1e-12 <= dual <= ot + 1e-12
    # the last phase's assignment: every column on one arc of its own, rows within capacity, each column within
    # eps of its best row
    rows = arc_row[owner]
    assert (owner >= col_ptr[:-1]).all() and (owner < col_ptr[1:]).all()
    assert (np.bincount(rows, minlength=5) == cap).all()
    assert (C[rows, np.arange(40)] - u[rows] <= (C - u[:, None]).min(0) + eps + 1e-12).all()


@pytest.mark.parametrize(("M", "N", "ties"), [(5, 300, False), (13, 200, True), (64, 500, False), (67, 400, True)])
def test_dense_auction_bids_as_on_the_graph_of_every_pair(M, N, ties):
    """The dense matrix's vectorised scan (rows not a multiple of its 8 lanes, costs with ties, a row without
    slots) bids exactly as the graph of every pair: the same prices to the bit, bids and assignment."""
    r = np.random.default_rng(M)
    C = r.integers(0, 5, size=(N, M)).astype(np.float32) if ties else r.random((N, M), dtype=np.float32)
    cap = np.maximum(auction.whole_units(r.dirichlet(np.ones(M)), float(N)), 1).astype(np.int64)
    cap[0], cap[-1] = cap[0] + cap[-1], 0
    out = []
    for graph in _forms(C):
        price, owner = r.normal(size=M) if not out else out[0][3].copy(), np.empty(N, dtype=np.int64)
        start = price.copy()
        bids = auction.auction_prices(*graph, cap, price, 1.0, 1e-3, 6.0, 50 * N, owner)
        out.append((price, bids, owner, start))
    (p0, b0, o0, _), (p1, b1, o1, _) = out
    assert b0 == b1 > N and np.array_equal(p0, p1) and np.array_equal(o0, o1)
    assert (o1 >= 0).all() and (o1 % M != M - 1).all()  # every column on a row, none on the row without slots


@pytest.mark.parametrize("seed", range(3))
def test_auction_prices_give_every_row_with_mass_a_slot(seed):
    """Rows whose mass rounds to no whole slot (a_i N < 1/2) were never bid for: their prices stayed at the start,
    below every other row's, and each drew many columns, so the greedy start on the cheapest rows could route 7 %
    of the mass here (W1 between weighted Gaussian samples, 5,000 a side: 0.5 %, then 20 s of paths). With a slot
    each, the columns' cheapest rows route most of it."""
    r = np.random.default_rng(seed)
    n = 400
    x, y = r.normal(size=(n, 5)), r.normal(size=(n, 5))
    a = r.uniform(0.2, 1.8, n)
    a /= a.sum()
    C = cdist(x, y)
    u = np.zeros(n)
    auction.run(*_graph(C.T), a, u, float(C.mean()), auction.EPS[0],
                auction.EPS[2])
    drawn = np.bincount(np.argmin(C - u[:, None], axis=0), minlength=n) / n  # the mass of the columns each row draws
    assert (a * n < 0.5).sum() > 50 and np.minimum(a, drawn).sum() > 0.6


@pytest.mark.parametrize("seed", range(3))
def test_auction_prices_see_the_columns_weights(seed):
    """Columns bidding as one unit each give prices that fit the columns' weights only roughly: the dual value
    ``a.u + b.v`` (``v_j = min_i c_ij - u_i``) of such prices fell 3.5-5.3 % below the optimum here, and the greedy
    start on weighted data routed about two thirds of the mass. Bidding as ``b_j K`` units, within 0.5 %."""
    r = np.random.default_rng(seed)
    n = 400
    x, y = r.normal(size=(n, 5)), r.normal(size=(n, 5))
    a, b = (w / w.sum() for w in (r.uniform(0.2, 1.8, n), r.uniform(0.2, 1.8, n)))
    C = cdist(x, y)
    u = np.zeros(n)
    auction.run(*_graph(C.T), a, u, float(C.mean()), auction.EPS[0],
                auction.EPS[2], b)
    dual, opt = a @ u + b @ (C - u[:, None]).min(0), wasserstein(x, y, 1, a, b, engine="pot").cost
    assert 0 <= opt - dual < 5e-3 * opt


def test_auction_stops_where_the_graph_holds_no_assignment():
    """Three columns whose only arcs lead to one row of capacity 1 would outbid each other for ever: the
    phase stops at ``max_bids``; a column without any arc to a row with capacity stays out."""
    col_ptr, arc_row = np.array([0, 1, 2, 3, 3]), np.array([0, 0, 0])
    price, owner = np.zeros(2), np.empty(4, dtype=np.int64)
    bids = auction.auction_prices(col_ptr, arc_row, np.ones((1, 3)), np.array([1, 3]), price, 1.0, 0.1, 2.0, 100,
                                  owner)
    assert bids == 100
    assert price[0] > 0 and price[1] == 0
    assert (owner >= 0).sum() == 1 and owner[3] == -1  # one column holds the row; the one without arcs has none


def test_the_auction_of_a_square_problem_runs_on_arcs_that_hold_a_perfect_matching(monkeypatch):
    """Twenty columns whose nearest rows are the same eight (a hub: 64x64 images at 10,000 x 10,000 have a few)
    leave the first arc set without a perfect matching, and an auction on it bids until its limit (every round
    did, and the solve took five pricing rounds): the free rows and columns of a maximum matching are linked
    first. The solve stays exact (POT)."""
    r = np.random.default_rng(3)
    X, Y = r.normal(size=(200, 10)) + 20.0, r.normal(size=(200, 10)) + 20.0
    X[:8], Y[:20] = 0.01 * r.normal(size=(8, 10)), 0.01 * r.normal(size=(20, 10))
    matched = []
    run = auction.run

    def spy(col_ptr, arc_row, cost, *args):
        matched.append(bool((auction.unmatched(col_ptr, arc_row, 200)[1] >= 0).all()))
        return run(col_ptr, arc_row, cost, *args)

    monkeypatch.setattr(auction, "run", spy)
    res = engine.solve_points(X, Y)
    assert matched and all(matched)
    assert_allclose(res.value, wasserstein(X, Y, engine="pot").value, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_centred_copy_pass_gives_numpys_values(dtype):
    """One pass gives the centred float32 copy bit for bit as numpy's subtraction and its squared norms (float64
    sums), the set's bounds each coordinate's largest and smallest value; without numba the same values come from
    numpy."""
    r = np.random.default_rng(13)
    Z = (r.normal(size=(300, 37)) * 10 + 5).astype(dtype)
    mu = Z.mean(0, dtype=np.float64)
    z32 = np.empty(Z.shape, np.float32)
    sq32 = blocks.centred_copy(Z, mu, z32)
    assert np.array_equal(z32, points.centred32(Z, mu)) and z32.dtype == np.float32
    assert_allclose(sq32, (z32.astype(np.float64) ** 2).sum(1), rtol=1e-7)
    pts = points.Points(Z, mu)
    assert np.array_equal(pts.bounds.numpy(), np.stack([Z.max(0), Z.min(0)]))
    saved = points.blocks, points.grid
    try:
        points.blocks = points.grid = None
        plain = points.Points(Z, mu)
        assert np.array_equal(plain.z32, pts.z32) and np.array_equal(plain.bounds.numpy(), pts.bounds.numpy())
    finally:
        points.blocks, points.grid = saved
    assert_allclose(plain.sq32, pts.sq32, rtol=1e-6)


def test_a_large_set_is_read_once_for_its_spread_and_its_float32_copy(monkeypatch):
    """A large target is made ready for the sparse engine first: its spread comes from that pass (no separate
    pass over it), and the answer is POT's."""
    from wganlab.ot import scale

    r = np.random.default_rng(14)
    x, y = r.normal(size=(8, 512)), r.normal(size=(scale.ONE_PASS_MIN_VALUES // 512 + 1, 512))
    read = []
    original = scale.column_bounds
    monkeypatch.setattr(scale, "column_bounds", lambda z: read.append(len(z)) or original(z))
    res = wasserstein(x, y, engine="sparse")
    assert len(y) not in read
    assert_allclose(res.value, wasserstein(x, y, engine="pot").value, rtol=1e-12)


def test_a_set_prepared_without_a_copy_reads_the_callers_memory():
    """``copy=False`` (OT-Means) shares the caller's float32 array and gives the copied set's answer; a set far from
    unit spread is still rescaled (a new array, the same exponent as the copied set's)."""
    r = np.random.default_rng(15)
    x, y = r.normal(size=(20, 6)).astype(np.float32), r.normal(size=(300, 6)).astype(np.float32)
    shared, copied = prepare_points(y, copy=False), prepare_points(y)
    assert np.shares_memory(shared.exact, y) and not np.shares_memory(copied.exact, y)
    assert wasserstein(x, shared).value == wasserstein(x, copied).value
    tiny = y.astype(np.float64) * 1e-200
    shared, copied = prepare_points(tiny, copy=False), prepare_points(tiny)
    assert shared.exponent == copied.exponent != 0 and not np.shares_memory(shared.exact, tiny)
    assert_allclose(wasserstein(x * 1e-200, shared).value, wasserstein(x * 1e-200, copied).value, rtol=1e-12)


def test_prepared_points_give_the_plain_answer():
    """A set prepared once gives the same W1/W2 on both engines, is a copy (later changes of the input do
    not reach it), and is checked against x like a plain set."""
    r = np.random.default_rng(12)
    x, y = r.normal(size=(30, 5)).astype(np.float32), r.normal(size=(200, 5)).astype(np.float32)
    t = prepare_points(y)
    plain = [wasserstein(x, y, p=p, engine="pot").value for p in (1, 2)]
    for engine_name in ("sparse", "pot"):
        assert_allclose([wasserstein(x, t, p=p, engine=engine_name).value for p in (1, 2)], plain, rtol=1e-12)
    y[:] = 0.0
    assert_allclose(wasserstein(x, t, engine="sparse").value, plain[0], rtol=1e-12)
    with pytest.raises(InputError, match="dimension mismatch"):
        wasserstein(np.zeros((3, 4)), t)


@pytest.mark.parametrize(("n", "m"), [(20, 400), (300, 300), (400, 20)])
def test_invariant_under_a_common_translation_and_permutations(n, m):
    """Far from the origin (heavy float32 cancellation without centring) and with both sets shuffled, in
    float32 as given: the same value as the plain problem, on every path (few rows, general, transposed)."""
    r = np.random.default_rng(n + m)
    # multiples of 2^-10, so that the shift by 512 is exact in float32 and the costs do not change
    x, y = (np.round(r.normal(size=(k, 12)) * 1024).astype(np.float32) / 1024 for k in (n, m))
    ref = wasserstein(x, y, engine="pot").value
    moved = wasserstein(x[r.permutation(n)] + 512.0, y[r.permutation(m)] + 512.0, engine="sparse")
    assert_allclose(moved.value, ref, rtol=1e-12)
    assert moved.gap_rel <= 1e-12


# --- issue 14: data of low intrinsic dimension (prices from a coarsened problem) ------------------------------

def _on_curve(r, n, kind):
    """``n`` points of a circle or a square patch of a plane, in R^5 (rotated)."""
    z = np.zeros((n, 5))
    if kind == "circle":
        t = r.uniform(0, 2 * np.pi, n)
        z[:, 0], z[:, 1] = np.cos(t), np.sin(t)
    else:
        z[:, :2] = r.uniform(size=(n, 2))
    return z @ np.linalg.qr(np.random.default_rng(0).normal(size=(5, 5)))[0].T


@pytest.mark.parametrize("kind", ["circle", "plane"])
@pytest.mark.parametrize("p", [1, 2])
def test_low_dimensional_data_takes_coarse_prices_and_stays_exact(kind, p):
    """Above COARSE_MIN points, a curve or a plane in R^5 gets its prices from the coarsened problem; the value
    is POT's (a different solver on the dense matrix) and a W2 solve needs a single round of pricing."""
    r = np.random.default_rng(5)
    x, y = _on_curve(r, 3000, kind), _on_curve(r, 3300, kind)
    res = wasserstein(x, y, p=p, engine="sparse")
    assert res.info["prices"] == "coarse"
    assert res.value == pytest.approx(wasserstein(x, y, p=p, engine="pot").value, rel=1e-9)
    if p == 2:
        assert res.info["rounds"] == 1


def test_the_coarsened_problem_is_coarsened_again_when_large(monkeypatch):
    """Nested levels: with COARSE_NESTED_MIN below the coarse problem's size, it takes its own coarse prices
    (two sets coarsened per level), and the fine value is still POT's."""
    calls = []
    real = coarse.coarsen
    monkeypatch.setattr(coarse, "coarsen", lambda Z, w: calls.append(len(Z)) or real(Z, w))
    monkeypatch.setattr(engine, "COARSE_MIN", 1000)
    monkeypatch.setattr(engine, "COARSE_NESTED_MIN", 200)
    r = np.random.default_rng(8)
    x, y = _on_curve(r, 1200, "circle"), _on_curve(r, 1300, "circle")
    res = wasserstein(x, y, p=2, engine="sparse")
    assert res.info["prices"] == "coarse"
    assert calls == [1200, 1300, 300, 325]
    assert res.value == pytest.approx(wasserstein(x, y, p=2, engine="pot").value, rel=1e-9)


def test_coarse_prices_with_weights():
    r = np.random.default_rng(6)
    x, y = _on_curve(r, 3000, "plane"), _on_curve(r, 3100, "plane")
    a, b = r.uniform(0.5, 1.5, 3000), r.uniform(0.5, 1.5, 3100)
    a, b = a / a.sum(), b / b.sum()
    res = wasserstein(x, y, a=a, b=b, engine="sparse")
    assert res.info["prices"] == "coarse"
    assert res.value == pytest.approx(wasserstein(x, y, a=a, b=b, engine="pot").value, rel=1e-9)


def _spacing(z, idx):
    """The (lower) median distance from the points ``z[idx]`` to their nearest other point of ``z`` (scipy's
    cdist)."""
    d = cdist(z[idx], z)
    d[np.arange(len(idx)), idx] = np.inf
    return np.sort(d.min(1))[(len(idx) - 1) // 2]


def test_separation_of_a_translation_and_of_a_shrunk_set():
    """A translation by ``t``: the 1-D W1 along the means' difference is ``|t|`` (the radial one at most that),
    both sets have the same spacing. ``y = s x`` about the common mean 0: the radial W1 is ``(1 - s) E|x|`` (the
    coordinate along the means' difference gives less), the spacing of ``y`` is ``s`` times that of ``x``."""
    r = np.random.default_rng(9)
    x = r.normal(size=(1600, 6))
    idx = np.arange(0, 1600, 100)
    w = np.full(1600, 1 / 1600)
    t = np.array([3.0, -4.0, 0, 0, 0, 0])
    assert coarse.separation(x, x + t, w, w) == pytest.approx(5.0 / _spacing(x, idx), rel=1e-9)
    xc = x - x.mean(0)
    radial = 0.75 * np.linalg.norm(xc, axis=1).mean()
    assert coarse.separation(xc, 0.25 * xc, w, w) == pytest.approx(radial / (0.25 * _spacing(xc, idx)), rel=1e-9)
    assert coarse.separation(xc, xc, w, w) == 0.0


def test_sets_far_apart_take_coarse_prices_and_stay_exact():
    """From SEPARATED_MIN points, sets far apart against their spacing (a translation by ten standard deviations,
    a set shrunk tenfold) take their prices from the coarsened problem, and ``auto`` keeps the sparse engine
    (the auction's arc set outgrew its limit there, and POT ran); values are POT's. Two samples of one
    distribution keep the auction."""
    r = np.random.default_rng(10)
    x = r.normal(size=(engine.SEPARATED_MIN, 10))
    for y in (r.normal(size=(1100, 10)) + np.eye(10)[0] * 10, 0.1 * r.normal(size=(1100, 10))):
        for p in (1, 2):
            res = wasserstein(x, y, p=p)
            assert res.solver == "sparse-ssp" and res.info["prices"] == "coarse"
            assert res.value == pytest.approx(wasserstein(x, y, p=p, engine="pot").value, rel=1e-9)
    assert wasserstein(x, r.normal(size=(1100, 10))).info["prices"] == "auction"


@pytest.mark.parametrize("noise", [1e-4, 1e-3])
def test_w1_near_a_line_is_certified_by_the_auction(noise):
    """W1 between thin tubes shifted along themselves (nearly every pair along the line nearly tight): the
    auction's assignment is the plan, its gap within CERTIFY_GAP of the cost, and the LP's value inside
    [cost - gap, cost]; W2 on the same data keeps the shortest paths."""
    r = np.random.default_rng(13)
    x, y = (np.c_[r.uniform(size=1500) + s, noise * r.normal(size=(1500, 3))] for s in (0.0, 0.3))
    res = engine.solve_points(x, y, coarse_min=1000)
    assert res.info["prices"] == "coarse" and res.info["certified_by_auction"] is True
    assert res.solver == "sparse-auction"
    assert 0 <= res.gap <= auction.CERTIFY_GAP * res.cost
    assert res.cost - res.gap - 1e-12 <= wasserstein(x, y, engine="pot").cost <= res.cost + 1e-12
    assert "certified_by_auction" not in engine.solve_points(x, y, squared=True, coarse_min=1000).info


def test_w1_along_a_thin_tube_routes_many_paths_per_search(monkeypatch):
    """W1 between thin tubes shifted along themselves with noise too large for the auction's route: one source at a
    time, each shortest path settled thousands of nodes (71 s at 11,000 points); searches from all sources at once
    route many paths each, and the plan stays optimal. With a budget for the paths' work, they hand over to the
    auction's certified assignment, from their prices."""
    monkeypatch.setattr(engine, "PATHS_BUDGET", np.inf)
    r = np.random.default_rng(13)
    x, y = (np.c_[r.uniform(size=1500) + s, 1e-2 * r.normal(size=(1500, 3))] for s in (0.0, 0.3))
    res = engine.solve_points(x, y, coarse_min=1000)
    assert res.solver == "sparse-ssp" and res.info["prices"] == "coarse"
    assert res.info["searches"] < res.info["augmentations"] / 2 and res.info["settled"] > res.info["searches"]
    assert res.value == pytest.approx(wasserstein(x, y, engine="pot").value, rel=1e-12)
    monkeypatch.setattr(engine, "PATHS_BUDGET", 0.5 * res.info["settled"] / 1500)
    half = engine.solve_points(x, y, coarse_min=1000)
    assert half.solver == "sparse-auction" and half.info["certified_by_auction"] is True
    assert 0 < half.info["settled"] < res.info["settled"]
    assert 0 <= half.gap <= auction.CERTIFY_GAP * half.cost
    assert half.cost - half.gap - 1e-12 <= res.cost <= half.cost + 1e-12
    assert "certified_by_auction" not in engine.solve_points(x, y, squared=True, coarse_min=1000).info


@pytest.mark.parametrize("seed", range(4))
def test_shortest_paths_from_one_source_and_from_all_are_optimal(monkeypatch, seed):
    """The paths' kernel (run as Python, switching between one source and all sources after every path) on a sparse
    arc set with general masses: the flow meets the masses, every reduced cost is >= 0 and 0 where there is flow,
    and its cost is the LP's on the same arcs (absent pairs cost 1e3)."""
    from wganlab.ot.exact import ssp

    monkeypatch.setattr(ssp, "ONE_AT_A_TIME_PATHS", 1)
    r = np.random.default_rng(seed)
    M, N = 30, 40
    C = r.uniform(size=(M, N)).round(2)  # ties: paths from many sources meet
    keep = r.uniform(size=(M, N)) < 0.5
    keep[np.arange(M), np.arange(M)] = keep[np.arange(N) % M, np.arange(N)] = True  # a feasible flow exists
    rows, cols = np.nonzero(keep)  # row-major: arc ids in row order
    cost = C[rows, cols]
    row_ptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=M))]).astype(np.int64)
    col_ptr, col_arc = ssp.column_order(cols.astype(np.int64), N)
    sa = r.integers(4, 9, M).astype(float)
    sb = (r.multinomial(sa.sum() - N, np.full(N, 1 / N)) + 1).astype(float)  # whole units, as the engine's
    flow, u, v = np.zeros(len(cost)), np.zeros(M), np.zeros(N)
    sr, dc = sa.copy(), sb.copy()
    ssp.greedy_init(col_ptr, col_arc, rows, cost, flow, u, v, sr, dc, 0.0)
    state = flow, u, v, sr, dc
    # a budget of 0 nodes stops after each phase, every invariant holding: further calls go on where it stopped
    stops = 0
    while (status := ssp.ssp.py_func(row_ptr, cols, rows, cost, col_ptr, col_arc, *state, 0)[0]) == ssp.OVER_BUDGET:
        stops += 1
    assert status == ssp.DONE and stops > 1
    budgeted = [a.copy() for a in state]
    flow[:], u[:], v[:], sr[:], dc[:] = 0.0, 0.0, 0.0, sa, sb
    ssp.greedy_init(col_ptr, col_arc, rows, cost, flow, u, v, sr, dc, 0.0)
    status, aug, _, searches, settled = ssp.ssp.py_func(row_ptr, cols, rows, cost, col_ptr, col_arc, flow, u, v, sr,
                                                        dc)
    assert status == ssp.DONE and searches < aug and settled >= 2 * searches
    assert budgeted[0] @ cost == pytest.approx(flow @ cost, rel=1e-12)
    assert_allclose(np.bincount(rows, flow, M), sa) and assert_allclose(np.bincount(cols, flow, N), sb)
    rc = cost - u[rows] - v[cols]
    assert rc.min() >= -1e-12 and np.abs(rc[flow > 0]).max() <= 1e-12
    assert flow @ cost == pytest.approx(lp_value(np.where(keep, C, 1e3), sa, sb), rel=1e-9)


def test_unmatched_is_a_maximum_matching():
    """Against scipy's Hopcroft-Karp on random sparse graphs (some with too few rows for a set of columns): the
    same matching size, partners consistent, every pair an arc."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import maximum_bipartite_matching

    r = np.random.default_rng(14)
    for M, N, k in ((30, 30, 2), (50, 50, 1), (40, 40, 3), (20, 30, 2)):
        rows = np.sort(r.integers(0, M, size=(N, k)) % np.maximum(1, r.integers(1, M + 1, size=(N, 1))), axis=1)
        col_ptr = np.arange(N + 1, dtype=np.int64) * k
        row_col, col_row = auction.unmatched(col_ptr, rows.reshape(-1).astype(np.int64), M)
        graph = sp.csr_array((np.ones(N * k), (rows.reshape(-1), np.repeat(np.arange(N), k))), shape=(M, N))
        best = (maximum_bipartite_matching(graph, perm_type="row") >= 0).sum()
        got = np.flatnonzero(col_row >= 0)
        assert len(got) == best and (row_col[col_row[got]] == got).all() and (row_col >= 0).sum() == best
        assert all(col_row[j] in rows[j] for j in got)


def test_degenerate_w1_falls_back_to_the_shortest_paths(monkeypatch):
    """An auction that runs out of bids every time gives up after CERTIFY_MAX_FAILS runs; the shortest paths then
    solve from the prices the auction started from, exactly."""
    monkeypatch.setattr(auction, "CERTIFY_MAX_BIDS", 0)
    r = np.random.default_rng(13)
    x, y = (np.c_[r.uniform(size=1500) + s, 1e-3 * r.normal(size=(1500, 3))] for s in (0.0, 0.3))
    res = engine.solve_points(x, y, coarse_min=1000)
    assert res.info["certified_by_auction"] is False and res.info["augmentations"] > 0
    assert res.solver == "sparse-ssp"
    assert_allclose(res.cost, wasserstein(x, y, engine="pot").cost, rtol=1e-12)


def test_generic_data_keeps_the_auction():
    r = np.random.default_rng(7)
    res = wasserstein(r.normal(size=(3000, 10)), r.normal(size=(3000, 10)), engine="sparse")
    assert res.info["prices"] == "auction"


@pytest.mark.parametrize("kind,lo,hi", [("circle", 0.7, 1.3), ("plane", 1.6, 2.4), ("gauss6", 4.5, 8.0)])
def test_intrinsic_dimension(kind, lo, hi):
    r = np.random.default_rng(8)
    x, y = (r.normal(size=(4000, 6)) for _ in range(2)) if kind == "gauss6" else \
        (_on_curve(r, 4000, kind) for _ in range(2))
    approx = cdist(x[:16], y)
    assert lo < coarse.intrinsic_dimension(x[:16], y, approx) < hi


def test_clusters_are_whole_leaves_of_neighbours():
    """A partition into clusters of LEAF points (the last one smaller); on a line, runs of consecutive points."""
    t = np.random.default_rng(9).permutation(1003).astype(float)
    order, starts = coarse.clusters(np.stack([t, 2 * t, np.zeros_like(t)], 1))
    assert sorted(order) == list(range(1003))
    sizes = np.diff(starts)
    assert (sizes[:-1] == coarse.LEAF).all() and 0 < sizes[-1] <= coarse.LEAF
    for k in range(len(sizes)):
        members = np.sort(t[order[starts[k]:starts[k + 1]]])
        assert members[-1] - members[0] == len(members) - 1


def test_units_give_uniform_weights_one_unit_each():
    """(1 / 49) * 49 rounds below 1 in float64: flooring gave 0 units to all rows but one (an auction on one
    row); the largest remainders now take the missing units."""
    for n in (49, 98, 103, 11_000):
        assert (auction.whole_units(np.full(n, 1.0 / n), float(n)) == 1).all()
    w = np.array([0.5, 0.25, 0.25])
    assert auction.whole_units(w, 2.0**50).sum() == 2.0**50


def test_smallest_per_column_matches_a_sort():
    r = np.random.default_rng(10)
    cols, key = r.integers(0, 50, 2000), r.normal(size=2000)
    keep = blocks.smallest_per_column(cols, key, 50, 3)
    want = set()
    for j in range(50):
        mine = np.flatnonzero(cols == j)
        want |= set(mine[np.argsort(key[mine])[:3]].tolist())
    assert set(keep.tolist()) == want



@pytest.mark.parametrize("N", [3 * blocks.KEEP_CHUNK + 17, 17])
def test_each_columns_cheapest_rows_and_each_rows_nearest_columns_match_a_sort(N):
    """``blocks.keep_smallest`` over two blocks (with and without caps from known pairs) and ``blocks.row_smallest``
    equal a stable sort, ties (rounded values) to the first row or column, on widths that are no multiple of the
    kernels' chunk (and one below it)."""
    r = np.random.default_rng(12)
    M, k = 90, 5
    lo = np.round(r.uniform(0, 4, (M, N)), 1).astype(np.float32)
    u = np.round(r.uniform(0, 1, M), 1).astype(np.float32)
    w = lo - u[:, None]
    want = np.argsort(w, axis=0, kind="stable")[:k].T
    # caps from the arcs of each column, k + 3 known rows (costs above the bounds; k - 1 for every 7th column, no
    # cap): the same rows
    n_arcs = np.where(np.arange(N) % 7 == 0, k - 1, k + 3)
    col_ptr = np.concatenate([[0], np.cumsum(n_arcs)])
    known_r = np.concatenate([r.permutation(M)[:n] for n in n_arcs])
    known_c = np.repeat(np.arange(N), n_arcs)
    costs = lo[known_r, known_c] + r.uniform(0, 0.5, len(known_r))
    caps = candidates.column_caps(col_ptr, known_r, costs, u.astype(np.float64), k)
    w_arcs = costs - u[known_r]
    kth = [np.sort(w_arcs[col_ptr[j]:col_ptr[j + 1]])[k - 1] if n_arcs[j] >= k else np.inf for j in range(N)]
    assert np.array_equal(np.isinf(caps), n_arcs < k) and (caps >= np.array(kth, np.float32)).all()
    assert (caps[n_arcs >= k] - np.array(kth)[n_arcs >= k] < 1e-3).all()
    for cap in (np.full(N, np.inf, np.float32), caps):
        val, idx = np.full((N, k), np.inf, np.float32), np.zeros((N, k), np.int64)
        for s in (0, 40):
            blocks.keep_smallest(lo[s:s + 40 if s == 0 else M], u, s, val, idx, cap)
        assert np.array_equal(idx, want) and np.array_equal(val, np.take_along_axis(w.T, want, 1))
    # the same rows by the columns' scan of the transpose (90 rows: no multiple of its lanes), for any k
    for kk in (1, 2, k, M):
        assert np.array_equal(blocks.column_smallest(np.ascontiguousarray(lo.T), u, kk), want[:, :kk]
                              if kk <= k else np.argsort(w, axis=0, kind="stable").T)
    near = blocks.row_smallest(lo, k)
    assert np.array_equal(near, np.argsort(lo, axis=1, kind="stable")[:, :k])
    assert blocks.row_smallest(lo, 0).shape == (M, 0)
    assert np.array_equal(blocks.row_smallest(lo[:, :k], k), np.argsort(lo[:, :k], axis=1, kind="stable"))



@pytest.mark.parametrize("lookup", [False, True])
def test_pricing_block_checks_exactly_the_pairs_its_bounds_cannot_settle(lookup):
    """``pricing.violations`` on one block equals numpy: the pairs with ``lo - v32 < u32`` get their exact cost
    (an arc's cost when looked up), the violating ones come back with their reduced costs, each column's smallest
    ``c - u`` is kept, and the bounds are raised but stay below the exact costs."""
    r = np.random.default_rng(14)
    B, N, row0 = 30, 700, 5
    X, Y = r.normal(size=(40, 6)), r.normal(size=(N, 6))
    C = cdist(X[row0:row0 + B], Y)
    lo = (C * 0.999).astype(np.float32)
    u, v = r.uniform(1, 3, 40), r.uniform(-0.5, 0.5, N)
    u32, v32 = u.astype(np.float32), v.astype(np.float32)
    row_ptr = np.zeros(41, dtype=np.int64)  # one arc per row of the block, to column 3, with a cost of its own
    row_ptr[row0 + 1:row0 + B + 1] = np.arange(1, B + 1)
    row_ptr[row0 + B + 1:] = B
    arc_col, arc_cost = np.full(B, 3, dtype=np.int64), C[:, 3] + 1e-3
    lo[:, 3] = 0.0  # every arc's pair is checked
    cmin = np.full(N, np.inf)
    lo0 = lo.copy()
    none = np.empty((N, 0)), np.empty((N, 0), dtype=np.int64)
    rows, cols, costs, rcs, checked = pricing.violations(lo, u32, v32, row0, X, Y, False, u, v, row_ptr, arc_col,
                                                        arc_cost, lookup, cmin, 0.0, none)
    want = lo0 - v32[None] < u32[row0:row0 + B, None]
    exact = C.copy()
    if lookup:
        exact[:, 3] = arc_cost
    assert checked == want.sum()
    rc = exact - u[row0:row0 + B, None] - v[None]
    bad = want & (rc < -1e-12 * (np.abs(u[row0:row0 + B, None]) + np.abs(v[None]) + exact))
    hits = [(i + row0, j) for i, j in zip(*np.nonzero(bad), strict=True)]
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == hits
    assert_allclose(costs, exact[rows - row0, cols], rtol=1e-13)
    assert_allclose(rcs, rc[rows - row0, cols], rtol=1e-12, atol=1e-15)
    assert_allclose(cmin, np.where(want, exact - u[row0:row0 + B, None], np.inf).min(0), rtol=1e-12, atol=1e-15)
    assert (lo >= lo0).all() and (lo <= exact).all() and (lo[want] > lo0[want]).mean() > 0.9


def test_pricing_keeps_the_worst_pairs_of_every_row_and_every_column():
    """A row whose worst pair sits in a column with ``k`` worse pairs keeps it (a column's worst pairs alone took
    twice the pricing rounds on degenerate data); every kept pair is among its row's or its column's ``k`` worst."""
    r = np.random.default_rng(11)
    rows, cols, rc = r.integers(0, 40, 3000), r.integers(0, 30, 3000), -r.uniform(size=3000)
    cost = r.uniform(size=3000)
    kr, kc, kcost, _ = pricing.worst_pairs(rows, cols, cost, rc, 3, 40, 30)
    want = set()
    for idx, n in ((rows, 40), (cols, 30)):
        for t in range(n):
            mine = np.flatnonzero(idx == t)
            want |= set(mine[np.argsort(rc[mine])[:3]].tolist())
    assert sorted(zip(kr.tolist(), kc.tolist(), kcost.tolist(), strict=True)) == \
        sorted((rows[e], cols[e], cost[e]) for e in want)
    assert len(want) > 3 * 30  # the rows' picks add pairs beyond the columns'


@pytest.mark.parametrize("tolerance", [0.0, 0.05])
def test_a_pricing_pass_returns_the_worst_pairs_of_each_row_and_column(tolerance):
    """With ``worst = k`` a pass returns only what :func:`pricing.worst_pairs` would pick from all its violations
    (on degenerate data tens of millions: 40 s a pass to gather at 11,000 points a side), across row blocks, and
    with a tolerance only the pairs violating by more; it computes the same pairs and the same ``cmin`` (the
    certificate counts the smaller violations)."""
    r = np.random.default_rng(15)
    M, N, k = 50, 300, 3
    X, Y = r.normal(size=(M, 4)), r.normal(size=(N, 4))
    C = cdist(X, Y)
    u, v = r.uniform(1, 3, M), r.uniform(-0.5, 0.5, N)
    arcs = np.zeros(M + 1, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0), False
    out = {}
    for worst in (0, k):
        lo = (C * 0.999).astype(np.float32)
        cmin = np.full(N, np.inf)
        out[worst] = (*pricing._pass([(0, lo[:20]), (20, lo[20:])], X, Y, False, u, v, arcs, cmin, -tolerance,
                                     worst), cmin)
    rows, cols, cost, rc, checked, cmin = out[0]
    want = pricing.worst_pairs(rows, cols, cost, rc, k, M, N)
    assert len(rows) > 4 * len(want[0]) and (rc < -tolerance).all()
    for a, b in zip(want, out[k][:4], strict=True):
        np.testing.assert_array_equal(a, b)
    assert out[k][4] == checked
    np.testing.assert_array_equal(out[k][5], cmin)
    assert (np.diff(out[k][0] * N + out[k][1]) > 0).all()  # row-major, no pair twice


@pytest.mark.parametrize("p", [1, 2])
def test_line_with_noise_far_below_the_spacing_is_exact(p):
    """W1 on a line plus noise 1e-6 in R^5 is massively degenerate (every pair moving mass in the flow's
    direction is nearly tight); the sparse engine's value is POT's and its gap is certified."""
    r = np.random.default_rng(13)
    q = np.linalg.qr(np.random.default_rng(0).normal(size=(5, 5)))[0].T
    x, y = (np.concatenate([r.uniform(size=(3000, 1)), 1e-6 * r.normal(size=(3000, 4))], 1) @ q for _ in range(2))
    res = wasserstein(x, y, p=p, engine="sparse")
    assert res.info["prices"] == "coarse"
    assert res.value == pytest.approx(wasserstein(x, y, p=p, engine="pot").value, rel=1e-9)
    assert res.gap_rel <= 1e-9


def test_coarse_prices_with_zero_weights():
    """Points of weight 0 (whole clusters of them) leave the coarse problem well defined and the value exact."""
    r = np.random.default_rng(12)
    x, y = _on_curve(r, 3000, "circle"), _on_curve(r, 3000, "circle")
    a = np.where(np.arange(3000) % 2 == 0, 0.0, 1.0) * (x[:, 0] > 0)
    a, b = a / a.sum(), np.full(3000, 1 / 3000)
    res = wasserstein(x, y, a=a, b=b, engine="sparse")
    assert res.info["prices"] == "coarse"
    assert res.value == pytest.approx(wasserstein(x, y, a=a, b=b, engine="pot").value, rel=1e-9)


@pytest.mark.parametrize("squared", [False, True])
def test_shifted_bounds_stay_below_the_costs(squared):
    """CostBounds: bounds raised to exact costs, and bounds of the costs after the points moved (triangle
    inequality), stay below the true costs, for small and large moves and exact zeros; rounding to float32
    never rounds up, from subnormal to large values."""
    r = np.random.default_rng(21)
    x, y = r.normal(size=(40, 20)), r.normal(size=(300, 20))
    x[:3] = y[:3]
    yp = points.Points(y)
    dist = blocks.Distances(points.Points(x, yp.mu), yp, squared)
    dist.lower(0, slice(0, 40))  # the one block, cached
    rows, cols = r.integers(0, 40, 500), r.integers(0, 300, 500)
    C = cdist(x, y, "sqeuclidean" if squared else "euclidean")
    bounds = blocks.CostBounds.kept(dist, x, rows, cols, C[rows, cols])  # raised to exact costs
    assert (bounds.lo <= C).all() and (bounds.lo[rows, cols] >= C[rows, cols] * (1 - 2.0**-20) - 1e-30).all()
    u, v = r.normal(size=40), r.normal(size=300) + 2.0
    assert (bounds.shifted(x, u, v)[0] <= bounds.lo).all()
    for scale in (1e-9, 1e-3, 0.1, 3.0):
        moved = x + scale * r.normal(size=x.shape)
        C = cdist(moved, y, "sqeuclidean" if squared else "euclidean")
        lo, below = bounds.shifted(moved, u, v)
        assert (lo.astype(np.float64) <= C).all()
        # the same bits as the formula in numpy's passes; the count of bounds below u_i + v_j
        d = np.sqrt(bounds.lo.astype(np.float64)) if squared else bounds.lo.astype(np.float64)
        d = np.maximum(d * (1 - 1e-15) - np.linalg.norm(moved - x, axis=1)[:, None] * (1 + 1e-12), 0.0)
        assert np.array_equal(lo, blocks.round_down32(d * d if squared else d))
        assert below == np.count_nonzero(lo < u[:, None] + v[None, :]) > 0
    v = np.concatenate([[0.0, 1e-45, 1e-40, 1e-38], r.uniform(0, 10, 10**5) * 10.0 ** r.integers(-45, 30, 10**5)])
    assert (blocks.round_down32(v).astype(np.float64) <= v).all()


def test_a_warm_start_against_the_same_target_shifts_its_bounds():
    """A prepared target keeps the cost bounds of its latest solve; a warm-started solve against it takes them,
    shifted by how far each point moved, instead of its distance GEMM, and gives a cold solve's certified
    answer; not after a move that leaves the bounds uninformative, not for another target or another number of
    points."""
    r = np.random.default_rng(22)
    x, y = r.normal(size=(16, 10)), r.normal(size=(600, 10))
    t = prepare_points(y)
    prev = wasserstein(x, t, engine="sparse")
    assert t.last_costs is not None and t.last_costs.lo.shape == (16, 600)
    for _ in range(3):  # a chain of small moves, as OT-Means makes
        x = x + 0.01 * r.normal(size=x.shape)
        warm = wasserstein(x, t, plan=True, engine="sparse", warm_start=prev)
        assert warm.info["shifted_bounds"]
        assert_allclose(warm.value, wasserstein(x, y, engine="pot").value, rtol=1e-12)
        assert_certified(warm, x, y, np.full(16, 1 / 16), np.full(600, 1 / 600))
        prev = warm
    assert not wasserstein(x + 2.0 * r.normal(size=x.shape), t, engine="sparse", warm_start=prev).info["shifted_bounds"]
    assert not wasserstein(x, prepare_points(y), engine="sparse", warm_start=prev).info["shifted_bounds"]
    assert not wasserstein(x[:12], t, engine="sparse", warm_start=wasserstein(x[:12], y)).info["shifted_bounds"]


@pytest.mark.parametrize("terms", [None, 64])
@pytest.mark.parametrize("kind", ["generic", "low rank", "far from the origin"])
def test_sketch_split_bounds_the_residual_it_never_forms(kind, terms):
    """The split of each point ``z = B^T p + q`` (``q`` never formed: its norm and ``Bq`` from ``Bz``, a float64
    product, or float32 products over ``terms`` coordinates at a time): the stored ``|q|`` and the ratios are at
    least their values computed in extended precision from ``q = z - B^T p``."""
    r = np.random.default_rng(31)
    d, n = 300, 500
    z = r.normal(size=(n, d)) * np.geomspace(3, 0.01, d)
    if kind == "low rank":
        z = r.normal(size=(n, 4)) @ r.normal(size=(4, d))
    elif kind == "far from the origin":
        z = z * 1e-3 + r.normal(size=d) * 50
    z32 = z.astype(np.float32)
    basis = sketch.principal_directions(z32, 16).astype(np.float32)
    coords, sq, ratios = sketch.coordinates(lambda s, e: z32[s:e], n, basis, terms, chunk=128)
    p, zl, bl = coords[:, :-1].astype(np.longdouble), z32.astype(np.longdouble), basis.astype(np.longdouble)
    q = zl - p @ bl
    qn, zn2 = np.sqrt((q * q).sum(1)), (zl * zl).sum(1)
    assert (coords[:, -1].astype(np.longdouble) >= qn).all()
    assert (sq.astype(np.longdouble) <= zn2).all()
    bq = q @ bl.T
    for k, num in enumerate(((p * p).sum(1) + qn**2, (p * p).sum(1), (bq * bq).sum(1))):
        assert ratios[k] >= float((num / zn2).max())
    assert ratios[2] < 1e-6  # and tight: |Bq| is rounding only


@pytest.mark.parametrize("terms", [None, 16])
@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("centred", [True, False])
def test_sketched_bound_is_a_lower_bound_and_tight_on_low_rank_data(squared, centred, terms):
    """The principal-coordinates bound (its rounding terms included) stays below every cost: far from the
    origin, with exact zeros, for points off the target's principal directions, with float32 products over
    ``terms`` coordinates at a time too; on data of rank <= r, from a float64 product, it is the cost up to float32
    rounding (no further from it than the full float32 bound)."""
    r = np.random.default_rng(3)
    d = 40
    span = np.linalg.qr(r.normal(size=(d, 3)))[0].T  # (3, d)
    cases = {"gauss": (r.normal(size=(60, d)), r.normal(size=(80, d))),
             "offset": (r.normal(size=(60, d)) + 1e3, r.normal(size=(80, d)) + 1e3),
             "off-span": (r.normal(size=(60, d)), r.normal(size=(80, 3)) @ span),
             "low-rank": (r.normal(size=(60, 3)) @ span + 5, r.normal(size=(80, 3)) @ span + 5)}
    kind = "sqeuclidean" if squared else "euclidean"
    for name, (x, y) in cases.items():
        x[:5] = y[:5]
        yp = points.Points(y, None if centred else np.zeros(d))
        full = blocks.Distances(points.Points(x, yp.mu), yp, squared)
        sk = sketch.distances(lambda s, e, z=full.x32: z[s:e], full.M, full.y32, squared, 8, product_terms=terms)
        assert sk.x32.shape == (60, 9)
        lo = sk.lower(None, np.arange(60)).astype(np.float64)
        C = cdist(x, y, kind)
        assert (lo <= C).all(), name
        if name == "low-rank" and terms is None:
            assert np.abs(lo - C).max() <= np.abs(full.lower(None, np.arange(60)) - C).max()


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize(("n", "m", "weighted"), [(300, 300, False), (200, 450, True)])
def test_blocks_too_large_to_keep_screen_on_principal_coordinates(monkeypatch, p, n, m, weighted):
    """Where no block is cached, pricing screens every pair on the principal-coordinates bound and picks
    candidates by exact cost among more: the same certified optimum as the LP."""
    monkeypatch.setattr(blocks, "CACHE_BYTES", 0)
    monkeypatch.setattr(engine, "SKETCH_DIMS", 4)
    r = np.random.default_rng(27)  # a seed whose four cases take more than one round, so partial passes
    x, y = r.normal(size=(n, 24)) * np.geomspace(3, 0.01, 24), r.normal(size=(m, 24)) * np.geomspace(3, 0.01, 24)
    a = r.dirichlet(np.ones(n)) if weighted else np.full(n, 1 / n)
    b = r.dirichlet(np.ones(m)) if weighted else np.full(m, 1 / m)
    kw = {"p": p, "a": a if weighted else None, "b": b if weighted else None, "plan": True, "engine": "sparse"}
    res = wasserstein(x, y, **kw)
    assert res.info["bound_dims"] == 5
    assert res.info["partial_passes"] > 0
    assert_allclose(res.cost, lp_value(cdist(x, y) ** p, a, b), rtol=1e-9)
    assert_certified(res, x, y, a, b, p)
    # later pricing passes check only what the potentials' changes leave open, and find the same pairs
    monkeypatch.setattr(pricing, "KEEP_PER_POINT", -1)
    every = wasserstein(x, y, **kw)
    assert every.info["partial_passes"] == 0
    for key in ("rounds", "priced_in", "arcs", "augmentations"):
        assert res.info[key] == every.info[key]
    assert (res.plan != every.plan).nnz == 0
    np.testing.assert_array_equal(res.potentials[0], every.potentials[0])


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize(("n", "m", "weighted"), [(300, 300, False), (200, 450, True)])
def test_many_cached_pairs_are_screened_on_principal_coordinates(monkeypatch, p, n, m, weighted):
    """Where the blocks are cached but many (SKETCH_CACHED_MIN_PAIRS), the principal-coordinates bound is computed
    once and kept, and candidates come straight from it: the same certified optimum as the LP."""
    monkeypatch.setattr(engine, "SKETCH_CACHED_MIN_PAIRS", 0)
    monkeypatch.setattr(engine, "SKETCH_CACHED_MIN_SIDE", 0)
    monkeypatch.setattr(engine, "SKETCH_DIMS", 4)
    monkeypatch.setattr(engine, "SKETCH_CACHED_DIMS", 4)
    r = np.random.default_rng(27)
    x, y = r.normal(size=(n, 24)) * np.geomspace(3, 0.01, 24), r.normal(size=(m, 24)) * np.geomspace(3, 0.01, 24)
    a = r.dirichlet(np.ones(n)) if weighted else np.full(n, 1 / n)
    b = r.dirichlet(np.ones(m)) if weighted else np.full(m, 1 / m)
    res = wasserstein(x, y, p=p, a=a if weighted else None, b=b if weighted else None, plan=True, engine="sparse")
    assert res.info["bound_dims"] == 5
    assert res.info["partial_passes"] == 0  # cached bounds: every pass reads them all
    assert_allclose(res.cost, lp_value(cdist(x, y) ** p, a, b), rtol=1e-9)
    assert_certified(res, x, y, a, b, p)


def test_sketched_costs_in_near_order_are_each_pairs_own_cost(monkeypatch):
    """A sketched problem costs many pairs in the order of its points' near ranks: each set's ranks a permutation
    that puts points near in the two leading coordinates next to each other (consecutive points 4 times closer
    than in a random order), each pair its own cost (the same bits as costed alone, duplicates and known arcs
    too), and a solve that takes that path the LP's optimum."""
    for name, value in (("SKETCH_CACHED_MIN_PAIRS", 0), ("SKETCH_CACHED_MIN_SIDE", 0), ("SKETCH_DIMS", 4),
                        ("SKETCH_CACHED_DIMS", 10), ("NEAR_ORDER_MIN_PAIRS", 0)):
        monkeypatch.setattr(engine, name, value)
    r = np.random.default_rng(29)
    x, y = (r.normal(size=(n, 40)) * np.geomspace(3, 0.01, 40) for n in (300, 340))
    prob = engine._Problem(x, points.Points(y), None, None, False, None)
    assert prob.dist.kind == "sketch" and prob.near is not None
    for rank, lead in zip(prob.near, (prob.dist.x32[:, :2], prob.dist.y32[:, :2]), strict=True):
        assert np.array_equal(np.sort(rank), np.arange(len(lead)))
        near, scattered = (np.linalg.norm(np.diff(lead[order], axis=0), axis=1).mean()
                           for order in (np.argsort(rank), r.permutation(len(lead))))
        assert near < 0.25 * scattered
    rows, cols = r.integers(0, 300, 5000), r.integers(0, 340, 5000)
    prob.arcs.add(rows[:50], cols[:50], arc_costs.pair_costs(x, y, rows[:50], cols[:50], False))
    assert np.array_equal(prob.costs(rows, cols), arc_costs.pair_costs(x, y, rows, cols, False))
    res = wasserstein(x, y, engine="sparse")
    assert res.info["bounds"] == "sketch"
    assert_allclose(res.cost, lp_value(cdist(x, y), np.full(300, 1 / 300), np.full(340, 1 / 340)), rtol=1e-9)


def test_cached_sketches_take_at_most_a_quarter_of_the_coordinates(monkeypatch):
    """Cached blocks sketch on min(SKETCH_CACHED_DIMS, d / 4) directions (here 6 of 24, the rougher basis), uncached
    ones on SKETCH_DIMS: both the LP's optimum."""
    monkeypatch.setattr(engine, "SKETCH_CACHED_MIN_PAIRS", 0)
    monkeypatch.setattr(engine, "SKETCH_CACHED_MIN_SIDE", 0)
    monkeypatch.setattr(engine, "SKETCH_DIMS", 4)
    r = np.random.default_rng(28)
    x, y = r.normal(size=(250, 24)) * np.geomspace(3, 0.01, 24), r.normal(size=(260, 24)) * np.geomspace(3, 0.01, 24)
    want = lp_value(cdist(x, y), np.full(250, 1 / 250), np.full(260, 1 / 260))
    for cache_bytes, dims in ((None, 24 // 4 + 1), (0, 4 + 1)):
        if cache_bytes is not None:
            monkeypatch.setattr(blocks, "CACHE_BYTES", cache_bytes)
        res = wasserstein(x, y, engine="sparse")
        assert res.info["bounds"] == "sketch" and res.info["bound_dims"] == dims
        assert_allclose(res.cost, want, rtol=1e-9)


def test_a_loose_principal_coordinates_bound_is_not_used(monkeypatch):
    """Isotropic data (4 of 24 directions hold a sixth of the spread: the bound is about 0.4 of the distance)
    keep the full float32 bound, which settles far more pairs."""
    monkeypatch.setattr(blocks, "CACHE_BYTES", 0)
    monkeypatch.setattr(engine, "SKETCH_DIMS", 4)
    r = np.random.default_rng(2)
    x, y = r.normal(size=(200, 24)), r.normal(size=(250, 24))
    for p in (1, 2):
        res = wasserstein(x, y, p=p, engine="sparse")
        assert res.info["bound_dims"] == 24
        assert_allclose(res.cost, lp_value(cdist(x, y) ** p, np.full(200, 1 / 200), np.full(250, 1 / 250)),
                        rtol=1e-9)


@pytest.mark.parametrize("d", [1, 3, 5, 8])
def test_few_coordinates_are_summed_in_order(d):
    """Up to ``arc_costs.ORDERED_MAX_DIM`` coordinates a cost is the in-order sum of the squared differences (no
    reordering, no fused multiply-add): the same bits on any CPU and in :func:`pricing.exact_pass`, which sums a whole
    row at once. Above, the sum is vectorised (any order) and agrees to rounding."""
    assert d <= arc_costs.ORDERED_MAX_DIM
    r = np.random.default_rng(d)
    X, Y = r.normal(size=(40, d)), r.normal(size=(50, d)).astype(np.float32)
    rows, cols = np.repeat(np.arange(40), 50), np.tile(np.arange(50), 40)
    s = np.zeros(len(rows))
    for k in range(d):
        t = X[rows, k] - Y[cols, k].astype(np.float64)
        s = s + t * t
    np.testing.assert_array_equal(arc_costs.pair_costs(X, Y, rows, cols, True), s)
    np.testing.assert_array_equal(arc_costs.pair_costs(X, Y, rows, cols, False), np.sqrt(s))
    X, Y = r.normal(size=(40, 40)), r.normal(size=(50, 40))
    assert_allclose(arc_costs.pair_costs(X, Y, rows, cols, False), cdist(X, Y).ravel(), rtol=1e-14)


@pytest.mark.parametrize("d", [9, 17, 784, 785])
@pytest.mark.parametrize("dtypes", [(np.float64, np.float32), (np.float32, np.float32), (np.float64, np.float64)])
def test_a_columns_consecutive_pairs_cost_what_each_pair_costs_alone(d, dtypes):
    """Above ORDERED_MAX_DIM coordinates, :func:`arc_costs.pair_costs` computes two consecutive pairs of one column in
    one pass over its point: the same bits as :func:`arc_costs.pair_cost` pair by pair (an arc's cost must not depend
    on the company it was computed in), squared or not, with runs of one, two and three pairs per column."""
    r = np.random.default_rng(d)
    X, Y = (r.normal(size=(n, d)).astype(t) * 3 for n, t in zip((7, 30), dtypes, strict=True))
    cols = np.repeat(np.arange(30), r.integers(1, 4, 30))
    rows = r.integers(0, 7, len(cols))
    for squared in (False, True):
        alone = [arc_costs.pair_cost(X, Y, i, j, squared) for i, j in zip(rows, cols, strict=True)]
        np.testing.assert_array_equal(arc_costs.pair_costs(X, Y, rows, cols, squared), alone)


def test_prefetching_the_points_ahead_changes_no_cost():
    """:func:`arc_costs.pair_costs` prefetches the points AHEAD pairs on, ``X``'s too where it holds over
    PREFETCH_X_BYTES: the same bits as pair by pair for such an ``X``, rows in any order, up to the last pair."""
    r = np.random.default_rng(5)
    X = r.normal(size=(arc_costs.PREFETCH_X_BYTES // (4 * 784) + 3, 784)).astype(np.float32)
    Y = r.normal(size=(40, 784)).astype(np.float32)
    rows, cols = r.integers(0, len(X), 90), np.sort(r.integers(0, len(Y), 90))
    alone = [arc_costs.pair_cost(X, Y, i, j, False) for i, j in zip(rows, cols, strict=True)]
    np.testing.assert_array_equal(arc_costs.pair_costs(X, Y, rows, cols, False), alone)


@pytest.mark.parametrize(("squared", "tolerance"), [(False, 0.0), (False, 0.05), (True, 0.0)])
def test_a_pricing_pass_on_every_exact_cost_finds_what_the_bounds_find(squared, tolerance):
    """:func:`pricing.exact_pass` (every pair's float64 cost, no float32 bound) returns the same pairs, costs (bit for
    bit) and reduced costs as a pass on the bounds, the ``k`` worst of each row and column; its ``cmin`` may hold more
    pairs but gives the same dual-feasible ``min(v, cmin)``. Ties and duplicated points included."""
    r = np.random.default_rng(21)
    M, N, k = 60, 700, 3  # three chunks of 256 columns
    X, Y = r.integers(0, 4, size=(M, 3)).astype(np.float64), r.integers(0, 4, size=(N, 3)).astype(np.float64)
    C = cdist(X, Y) ** (2 if squared else 1)
    u = r.uniform(0, 2, M)
    v = (C - u[:, None]).min(0) + r.choice([0.0, 0.3, 1.0], N)  # tight, mildly and strongly violated columns
    arcs = np.zeros(M + 1, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0), False
    out = []
    for scan in ([(0, (C * 0.999).astype(np.float32))], (X, np.ascontiguousarray(Y.T))):
        cmin = np.full(N, np.inf)
        out.append((*pricing._pass(scan, X, Y, squared, u, v, arcs, cmin, -tolerance, k), cmin))
    (rows, cols, cost, rc, _, cmin), exact = out
    assert len(rows) > 3 * k
    for a, b in zip((rows, cols, cost, rc), exact[:4], strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.minimum(v, cmin), np.minimum(v, exact[5]))
    assert (C - u[:, None] - np.minimum(v, exact[5])[None, :]).min() >= -1e-12


def test_pricing_turns_to_every_exact_cost_where_the_bounds_settle_few_pairs(monkeypatch):
    """On a thin tube shifted along itself (nearly every pair within float32 rounding of tight) a pricing pass on the
    bounds computes most costs exactly; the pricer then computes every cost (``exact``), with the same solve: the
    same value, potentials and plan as with the bounds alone."""
    from wganlab.bench.cases import low_dimensional_points

    x, y = low_dimensional_points("line+1e-4", 600, 1), low_dimensional_points("line+1e-4", 600, 2, 0.3)
    made = []
    real = pricing.Pricer.__call__

    def spy(self, u, v, tolerance=0.0):
        made.append(self.exact is not None)  # how this pass prices
        return real(self, u, v, tolerance)

    monkeypatch.setattr(pricing.Pricer, "__call__", spy)
    res = engine.solve_points(x, y, coarse_min=10**6)  # paths from an auction's prices (no coarsened problem)
    assert made[0] is False and all(made[1:]) and len(made) > 2
    monkeypatch.setattr(pricing, "EXACT_SHARE", 2.0)
    made.clear()
    ref = engine.solve_points(x, y, coarse_min=10**6)
    assert not any(made)
    assert res.value == ref.value and res.solver == ref.solver
    for a, b in zip(res.potentials, ref.potentials, strict=True):
        np.testing.assert_array_equal(a, b)
    assert (res.plan != ref.plan).nnz == 0


def test_a_partial_pricing_pass_finds_what_a_full_pass_finds(monkeypatch):
    """After a full pass with a margin, potentials that rose (some rows and columns past the margin) are
    priced from the kept pairs and those rows and columns alone: the same violating pairs in the same order,
    and column minima that keep every pair dual feasible."""
    monkeypatch.setattr(blocks, "CACHE_BYTES", 0)
    r = np.random.default_rng(5)
    x, y = r.normal(size=(120, 6)), r.normal(size=(150, 6))
    yp = points.Points(y)
    prob = engine._Problem(x, yp, None, None, False, None)
    C = cdist(x, y)
    prob.arcs.add(*np.nonzero(C < np.quantile(C, 0.05)), C[C < np.quantile(C, 0.05)])
    u, v = np.zeros(120), C.min(0) - 0.02  # dual feasible, some pairs within the margin
    pricer = pricing.Pricer(prob, lookup=False, worst=engine.K_PRICE)
    assert len(pricer(u, v)[0]) == 0 and pricer.kept is not None
    delta = pricer.kept[2]
    u2, v2 = u + r.uniform(0, 0.4 * delta, 120), v + r.uniform(0, 0.4 * delta, 150)
    u2[[3, 50]] += 0.5  # two rows and one column past the margin
    v2[7] += 0.5
    assert pricer._partial_plan(u2, v2) is not None
    part = pricer(u2, v2)
    assert pricer.partial_passes == 1
    monkeypatch.setattr(pricing, "KEEP_PER_POINT", -1)
    full = pricing.Pricer(prob, lookup=False, worst=engine.K_PRICE)(u2, v2)
    assert len(full[0]) > 0
    for a, b in zip(part[:4], full[:4], strict=True):
        np.testing.assert_array_equal(a, b)
    rc = C - u2[:, None] - np.minimum(v2, part[4])[None, :]
    assert rc.min() >= -1e-12


@pytest.mark.parametrize(("d", "r"), [(12, 4), (200, 10)])
def test_principal_directions_are_the_leading_eigenvectors(d, r):
    """Both ways (eigenvectors of the covariance for small d, subspace iteration for d > 4 r): orthonormal rows
    along the axes of largest variance of an axis-aligned Gaussian with well separated variances, in order."""
    rng = np.random.default_rng(9)
    scales = np.concatenate([10 * 0.8 ** np.arange(r), np.geomspace(0.5, 0.05, d - r)])
    perm = rng.permutation(d)
    Z = rng.normal(size=(5000, d)) * scales[perm] + 3.0
    B = sketch.principal_directions(Z.astype(np.float32), r)
    assert B.shape == (r, d)
    assert_allclose(B @ B.T, np.eye(r), atol=1e-12)
    assert_allclose(np.abs(B[np.arange(r), perm.argsort()[:r]]), 1.0, atol=2e-2)


@pytest.mark.parametrize("offset", [0.0, 1e4, 1e6])
def test_bounds_of_a_float32_set_against_a_float64_one_stay_below_the_costs(offset):
    """Two sets of different dtypes far from the origin (centroids in float64 against float32 images, as in
    OT-Means): both centred copies move by the same shift, so the float32 lower bounds stay below the costs (with
    a float64 shift the float32 set moved by its float32 rounding: bounds 1e-3 above the costs at 1e4)."""
    r = np.random.default_rng(5)
    x = (offset + r.normal(size=(300, 50))).astype(np.float32)
    y = offset + r.normal(size=(3000, 50))
    for a, b in ((x, y), (y[:300], x.repeat(10, axis=0))):
        bp = points.Points(b)
        lo = blocks.Distances(points.Points(a, bp.mu), bp, False).lower(0, slice(0, 300)).astype(np.float64)
        assert (lo <= cdist(a.astype(np.float64), b.astype(np.float64))).all()
        assert np.array_equal(bp.mu, bp.mu.astype(np.float32).astype(np.float64))


def test_float64_points_against_float32_ones_far_from_the_origin_give_pots_value():
    """The solve-level check of the shared shift: float64 points against a float32 set at an offset of 1e6 (d = 20).
    With each set centred in its own precision, three of these six solves were certified yet off POT's value by
    up to 3e-7 (relative)."""
    r = np.random.default_rng(3)
    y = (1e6 + r.normal(size=(2000, 20))).astype(np.float32)
    for _ in range(6):
        x = 1e6 + r.normal(size=(64, 20)) * 0.5
        res = wasserstein(x, y, engine="sparse")
        assert res.value == pytest.approx(wasserstein(x, y.astype(np.float64), engine="pot").value, rel=1e-12)
