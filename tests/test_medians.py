"""Geometric medians, k-medians and OT-Means against independent oracles: SciPy's minimiser, the 1-D
weighted-median closed form, the optimality condition at a data point, brute-force 1-D clustering, the
exact LP (Theorem A.1.3) and the monotonicity theorems."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose
from scipy.optimize import minimize
from scipy.spatial.distance import cdist
from scipy.stats import ortho_group

from wganlab.errors import InputError
from wganlab.ot import (
    KMediansResult,
    OTMeansResult,
    geometric_kmedians,
    geometric_median,
    ot_means,
    wasserstein,
    weiszfeld,
    weiszfeld_step,
)
from wganlab.ot.medians import ConvergenceWarning


def objective(Y: np.ndarray, w: np.ndarray, z: np.ndarray) -> float:
    """``sum_i w_i ||y_i - z||``."""
    return float((w * np.linalg.norm(Y - z, axis=1)).sum())


def scipy_median(Y: np.ndarray, w: np.ndarray) -> float:
    """The minimum of the weighted sum of distances by SciPy, started at the weighted mean (independent
    of our iteration): BFGS then Nelder-Mead polishing, best value kept."""
    f = lambda z: objective(Y, w, z)  # noqa: E731
    z0 = (w[:, None] * Y).sum(0) / w.sum()
    r1 = minimize(f, z0, method="BFGS", options={"gtol": 1e-12})
    r2 = minimize(f, r1.x, method="Nelder-Mead",
                  options={"xatol": 1e-13, "fatol": 1e-15, "maxiter": 40000, "maxfev": 40000})
    return min(r1.fun, r2.fun)


def subgradient_residual(Y: np.ndarray, w: np.ndarray, z: np.ndarray) -> float:
    """How far ``0`` is from the subdifferential at ``z``: ``max(0, ||sum_{y_i != z} w_i u_i|| - eta)``
    with ``u_i`` the unit vector from ``z`` to ``y_i`` and ``eta`` the weight sitting on ``z``."""
    d = np.linalg.norm(Y - z, axis=1)
    on = d == 0
    R = (w[~on, None] * (Y[~on] - z) / d[~on, None]).sum(0)
    return max(0.0, float(np.linalg.norm(R)) - float(w[on].sum()))


def weighted_median_1d(v: np.ndarray, w: np.ndarray) -> float:
    """Closed form: the smallest sorted value at which the cumulative weight reaches half the total."""
    order = np.argsort(v)
    cum = np.cumsum(w[order])
    return float(v[order][np.searchsorted(cum, cum[-1] / 2)])


# --------------------------------------------------------------------------------------------------
# geometric median
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [2, 3, 7, 30])
def test_median_matches_scipy_minimiser(d):
    rng = np.random.default_rng(d)
    for _ in range(3):
        n = int(rng.integers(5, 40))
        Y = rng.normal(size=(n, d)) * rng.uniform(0.1, 10)
        w = rng.uniform(0.1, 1.0, n)
        z = geometric_median(Y, w).numpy()
        ours, ref = objective(Y, w, z), scipy_median(Y, w)
        assert ours <= ref * (1 + 1e-12)  # never worse than SciPy
        assert_allclose(ours, ref, rtol=1e-9)
        assert subgradient_residual(Y, w, z) <= 1e-6 * w.sum()


def test_median_weighted_1d_closed_form():
    rng = np.random.default_rng(1)
    for n in (1, 2, 5, 12, 31):
        v, w = rng.normal(size=n), rng.uniform(0.05, 1.0, n)  # generic weights: unique median, a data point
        z = geometric_median(v, w)
        assert z.shape == (1,)
        assert float(z[0]) == weighted_median_1d(v, w)  # exact: the data-point test finds it


def test_median_1d_interval_of_medians():
    # two equal weights: every point of [0, 1] is a median; the objective is what matters
    v = np.array([0.0, 1.0, 3.0, 4.0])
    z = float(geometric_median(v)[0])
    assert 1.0 - 1e-12 <= z <= 3.0 + 1e-12
    assert_allclose(np.abs(v - z).sum(), 6.0, rtol=1e-12)


def test_median_collinear_points_in_the_plane():
    rng = np.random.default_rng(2)
    t, w = rng.normal(size=9), rng.uniform(0.1, 1, 9)
    direction, base = np.array([0.6, -0.8]), np.array([3.0, 1.0])
    Y = base + t[:, None] * direction
    z = geometric_median(Y, w).numpy()
    assert_allclose(z, base + weighted_median_1d(t, w) * direction, atol=1e-12)


def test_median_on_a_heavy_data_point():
    # the heavy point is the median iff ||sum of weighted unit vectors from it|| <= its weight
    rng = np.random.default_rng(3)
    Y = rng.normal(size=(20, 5))
    w = np.ones(20)
    u = (Y[1:] - Y[0]) / np.linalg.norm(Y[1:] - Y[0], axis=1)[:, None]
    w[0] = np.linalg.norm(u.sum(0)) * 1.001  # just enough: slow for plain Weiszfeld, exact here
    z = geometric_median(Y, w)
    assert torch.equal(z, torch.as_tensor(Y[0]))
    w[0] = np.linalg.norm(u.sum(0)) * 0.99  # not enough: the median leaves the point
    z = geometric_median(Y, w).numpy()
    assert np.linalg.norm(z - Y[0]) > 0
    assert_allclose(objective(Y, w, z), scipy_median(Y, w), rtol=1e-9)


def test_median_starting_on_a_data_point():
    rng = np.random.default_rng(4)
    Y, w = rng.normal(size=(15, 3)), rng.uniform(0.2, 1, 15)
    ref = geometric_median(Y, w).numpy()
    for k in (0, 7, 14):  # start exactly on a data point that is not the median
        z = geometric_median(Y, w, init=Y[k]).numpy()
        assert np.isfinite(z).all()
        assert_allclose(z, ref, atol=1e-8)
        assert_allclose(objective(Y, w, z), objective(Y, w, ref), rtol=1e-12)


def test_median_duplicates_zero_weights_and_single_point():
    rng = np.random.default_rng(5)
    Y = rng.normal(size=(8, 4))
    w = rng.uniform(0.1, 1, 8)
    # zero weights are ignored
    w0 = np.concatenate([w, [0.0, 0.0]])
    Y0 = np.concatenate([Y, 100 + rng.normal(size=(2, 4))])
    assert_allclose(geometric_median(Y0, w0).numpy(), geometric_median(Y, w).numpy(), atol=1e-9)
    # all weight on one point returns it exactly
    e = np.zeros(8)
    e[3] = 2.5
    assert torch.equal(geometric_median(Y, e), torch.as_tensor(Y[3]))
    # a duplicated point is one point with the summed weight
    Yd = np.concatenate([Y, Y[:1]])
    wd = np.concatenate([w, w[:1]])
    w2 = w.copy()
    w2[0] *= 2
    assert_allclose(geometric_median(Yd, wd).numpy(), geometric_median(Y, w2).numpy(), atol=1e-8)
    # a single point, and identical points
    assert torch.equal(geometric_median(Y[:1]), torch.as_tensor(Y[0]))
    assert torch.equal(geometric_median(np.repeat(Y[:1], 5, 0)), torch.as_tensor(Y[0]))


def test_median_permutation_invariance():
    rng = np.random.default_rng(6)
    Y, w = rng.normal(size=(25, 6)), rng.uniform(0.1, 1, 25)
    p = rng.permutation(25)
    assert_allclose(geometric_median(Y[p], w[p]).numpy(), geometric_median(Y, w).numpy(), atol=1e-9)


def test_median_rotation_translation_scaling_equivariance():
    rng = np.random.default_rng(7)
    Y, w = rng.normal(size=(25, 6)), rng.uniform(0.1, 1, 25)
    Q = ortho_group.rvs(6, random_state=7)
    t = rng.normal(size=6) * 5
    z = geometric_median(Y, w).numpy()
    assert_allclose(geometric_median(3.0 * Y @ Q + t, w).numpy(), 3.0 * z @ Q + t, atol=1e-8)


@pytest.mark.parametrize("e", [600, -1000])
def test_median_at_extreme_scales(e):
    """Points at 2^600 or 2^-1000 (squared distances overflow or underflow in float64) have the median of the
    unscaled points, scaled, with an explicit start too."""
    rng = np.random.default_rng(8)
    Y, w = rng.normal(size=(40, 5)), rng.uniform(0.1, 1, 40)
    s = 2.0**e
    for init in (None, Y[3]):
        z = geometric_median(Y, w, init=init).numpy()
        zs = geometric_median(Y * s, w, init=None if init is None else init * s).numpy()
        assert_allclose(zs / s, z, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("e", [600, -1000])
def test_weiszfeld_step_at_extreme_scales(e):
    """One step between sets at 2^600 or 2^-1000 is the step between the unscaled sets, scaled (the distances'
    squares overflow or underflow in float64)."""
    rng = np.random.default_rng(9)
    x, Y, W = rng.normal(size=(3, 4)), rng.normal(size=(30, 4)), rng.uniform(size=(3, 30))
    s = 2.0**e
    assert_allclose(weiszfeld_step(x * s, Y * s, W).numpy() / s, weiszfeld_step(x, Y, W).numpy(), rtol=1e-13,
                    atol=1e-13)


@pytest.mark.parametrize("kernel", [True, False])
def test_weiszfeld_step_from_far_out_lands_on_the_convex_combination(monkeypatch, kernel):
    """Centroids 2^40-2^1000 times farther out than their points (absolute starts beside data at 2^-1000) step
    onto ``sum (w/d) y / sum (w/d)``: a difference form ``x + sum w (y - x)/d / S`` would keep only
    ``1e-16 ||x||`` of it (0 or noise where the points are below that)."""
    if not kernel:
        monkeypatch.setattr(weiszfeld, "weiszfeld_kernel", None)
    rng = np.random.default_rng(12)
    x, Y, W = rng.normal(size=(3, 4)), rng.normal(size=(30, 4)), rng.uniform(size=(3, 30))
    W[1, :20] = 0.0  # the far test reads only a row's own points
    for e in (-40, -300, -1000):
        Ys = Y * 2.0**e
        inv = W / cdist(x, Ys)
        expected = inv @ Ys / inv.sum(1, keepdims=True)
        assert_allclose(weiszfeld_step(x, Ys, W).numpy() / 2.0**e, expected / 2.0**e, rtol=1e-12)


@pytest.mark.parametrize("e", [-80, -600, -1000])
def test_ot_means_from_an_absolute_start_beside_tiny_data(e):
    """OT-Means started as 0.5 N(0, I) in absolute units (the reference init) beside data of scale 2^e: the
    first step lands every centroid among the data (a convex combination of its points), and the run is the
    same at every such scale; before, at 2^-600 the squared distances overflowed and no centroid moved."""
    Y = np.random.default_rng(11).normal(size=(40, 3))
    s = 2.0**e
    res = ot_means(Y * s, 5, n_iter=2, ot_steps=2)
    c = res.centroids.numpy() / s
    assert (c >= Y.min(0) - 1e-12).all() and (c <= Y.max(0) + 1e-12).all()
    assert all(b <= a * (1 + 1e-12) for a, b in zip(res.w1_trace[:-1], res.w1_trace[1:], strict=True))
    ref = ot_means(Y * 2.0**-80, 5, n_iter=2, ot_steps=2)
    # the first value is the W1 of the start itself, about 1 in absolute units
    assert_allclose(np.asarray(res.w1_trace[1:]) / s, np.asarray(ref.w1_trace[1:]) / 2.0**-80, rtol=1e-12)


def test_median_dtype_shape_and_device_follow_input():
    Y = torch.randn(10, 2, 3, generator=torch.Generator().manual_seed(0))  # float32 "images"
    z = geometric_median(Y)
    assert z.dtype == torch.float32 and z.shape == (6,)
    z64 = geometric_median(Y.double())
    assert z64.dtype == torch.float64
    torch.testing.assert_close(z, z64.float())


def test_median_warns_when_not_converged():
    rng = np.random.default_rng(8)
    with pytest.warns(ConvergenceWarning):
        geometric_median(rng.normal(size=(30, 3)), max_iter=1)


# --------------------------------------------------------------------------------------------------
# batched Weiszfeld step
# --------------------------------------------------------------------------------------------------


def reference_step(x: np.ndarray, Y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """One Vardi-Zhang step for one centroid, written out plainly (``x`` on a data point or not)."""
    d = np.linalg.norm(Y - x, axis=1)
    pos = w > 0
    on = pos & (d == 0)
    off = pos & (d > 0)
    if not off.any():
        return x.copy()
    inv = w[off] / d[off]
    T = (inv[:, None] * Y[off]).sum(0) / inv.sum()
    eta = w[on].sum()
    if eta == 0:
        return T
    r = np.linalg.norm((inv[:, None] * (Y[off] - x)).sum(0))
    if r <= eta:
        return x.copy()
    return (1 - eta / r) * T + (eta / r) * x


def _step_problem(seed: int, k: int = 6, n: int = 40, d: int = 5):
    rng = np.random.default_rng(seed)
    Y = rng.normal(size=(n, d))
    X = rng.normal(size=(k, d))
    X[0] = Y[3]  # a centroid exactly on a data point
    X[1] = Y[5]
    W = rng.uniform(0, 1, (k, n)) * (rng.uniform(size=(k, n)) < 0.5)
    W[0, 3] = 0.05  # light: must step away
    W[1, 5] = 50.0  # heavy: must stay
    W[2] = 0.0  # no weight: must not move
    return X, Y, W


def test_weiszfeld_step_matches_per_centroid_loop():
    for seed in range(4):
        X, Y, W = _step_problem(seed)
        out = weiszfeld_step(X, Y, W).numpy()
        ref = np.stack([reference_step(X[j], Y, W[j]) for j in range(len(X))])
        assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
        assert np.isfinite(out).all()
        assert_allclose(out[1], X[1], atol=0)  # the heavy data point is the median: stays
        assert_allclose(out[2], X[2], atol=0)  # no weight: stays
        assert np.linalg.norm(out[0] - X[0]) > 0  # the light data point is left


def test_weiszfeld_step_never_increases_each_objective():
    for seed in range(10):
        X, Y, W = _step_problem(seed)
        x = X
        for _ in range(5):
            new = weiszfeld_step(x, Y, W).numpy()
            before = np.array([objective(Y, W[j], x[j]) for j in range(len(x))])
            after = np.array([objective(Y, W[j], new[j]) for j in range(len(x))])
            assert (after <= before * (1 + 1e-14) + 1e-300).all()
            x = new


_coords = st.floats(-100, 100, allow_nan=False, width=64).map(lambda v: round(v, 1))  # duplicates likely


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12).flatmap(lambda n: st.tuples(
    arrays(np.float64, (n, 2), elements=_coords),
    arrays(np.float64, (n,), elements=st.sampled_from([0.0, 0.5, 1.0, 3.0])),
    st.integers(0, n - 1))))
def test_property_median_beats_mean_and_data_points_and_step_descends(case):
    Y, w, start = case
    if w.sum() == 0:
        w[0] = 1.0
    z = geometric_median(Y, w).numpy()
    assert np.isfinite(z).all()
    f = objective(Y, w, z)
    tol = 1e-9 * (1 + np.abs(Y).max() * w.sum())
    assert f <= objective(Y, w, (w[:, None] * Y).sum(0) / w.sum()) + tol
    assert all(f <= objective(Y, w, y) + tol for y in Y)
    # one step from a data point (possibly a duplicated or zero-weight one) never increases the objective
    x = weiszfeld_step(Y[start:start + 1], Y, w[None]).numpy()[0]
    assert np.isfinite(x).all()
    assert objective(Y, w, x) <= objective(Y, w, Y[start]) + tol


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_weiszfeld_step_sparse_and_dense_agree():
    X, Y, W = _step_problem(11)
    dense = weiszfeld_step(X, Y, W)
    for sparse in (sp.csr_matrix(W), sp.coo_array(W), torch.as_tensor(W).to_sparse(),
                   torch.as_tensor(W).to_sparse_csr()):
        torch.testing.assert_close(weiszfeld_step(X, Y, sparse), dense, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(weiszfeld_step(torch.as_tensor(X), torch.as_tensor(Y), torch.as_tensor(W)),
                               dense)


def test_weiszfeld_step_on_an_exact_ot_plan():
    rng = np.random.default_rng(12)
    Y, X = rng.normal(size=(300, 4)), rng.normal(size=(16, 4))
    plan = wasserstein(X, Y, plan=True).plan
    assert (plan > 0).sum() <= 16 + 300 - 1  # a vertex of the transport polytope
    new = weiszfeld_step(X, Y, sp.csr_array(plan)).numpy()
    ref = np.stack([reference_step(X[j], Y, plan[j]) for j in range(16)])
    assert_allclose(new, ref, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------------
# geometric k-medians
# --------------------------------------------------------------------------------------------------


def _blobs(seed: int, n_per: int = 30, d: int = 3, k: int = 4, spread: float = 0.5):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 20
    labels = np.repeat(np.arange(k), n_per)
    return centres[labels] + spread * rng.normal(size=(k * n_per, d)), labels


def test_kmedians_monotone_and_better_than_kmeans():
    rng = np.random.default_rng(13)
    X = rng.standard_t(df=2, size=(150, 4))  # heavy tails: medians differ from means
    r = geometric_kmedians(X, 5, n_init=3)
    assert isinstance(r, KMediansResult)
    h = np.array(r.objective_history)
    assert (np.diff(h) <= 1e-12 * h[:-1]).all()
    assert r.objective <= r.kmeans_objective
    assert r.objective < r.kmeans_objective * (1 - 1e-6)  # strictly better on heavy tails
    assert h[0] == r.kmeans_objective and h[-1] == r.objective
    assert r.objective == min(r.restart_objectives)
    # the objective is the mean distance to the nearest centroid, labels are the nearest centroids
    D = cdist(X, r.centroids.numpy())
    assert_allclose(r.objective, D.min(1).mean(), rtol=1e-12)
    assert_allclose(D[np.arange(150), r.labels.numpy()], D.min(1), rtol=1e-12)
    assert r.counts.sum() == 150 and r.counts.tolist() == np.bincount(r.labels.numpy(), minlength=5).tolist()
    assert r.inertia_history == r.objective_history


def test_kmedians_equals_w1_to_the_projection_measure():
    # Theorem A.1.3 (with Lemma A.1.1): mean distance to nearest centroid = W1(data, counts/n on centroids)
    rng = np.random.default_rng(14)
    X = rng.normal(size=(120, 6))
    r = geometric_kmedians(X, 7, n_init=2)
    w1 = wasserstein(X, r.centroids, b=r.counts.numpy() / 120).value
    assert_allclose(r.objective, w1, rtol=1e-9)


def test_kmedians_centroids_are_cluster_medians():
    rng = np.random.default_rng(15)
    X = rng.normal(size=(90, 3))
    r = geometric_kmedians(X, 3, n_init=2)
    for j in range(3):
        pts = X[r.labels.numpy() == j]
        m = geometric_median(pts).numpy()
        assert_allclose(objective(pts, np.ones(len(pts)), r.centroids[j].numpy()),
                        objective(pts, np.ones(len(pts)), m), rtol=1e-9)


def test_kmedians_k_equals_n_gives_zero():
    X = np.random.default_rng(16).normal(size=(12, 5))
    r = geometric_kmedians(X, 12, n_init=2)
    assert r.objective == 0.0
    assert sorted(r.counts.tolist()) == [1] * 12


def test_kmedians_recovers_separated_clusters():
    X, truth = _blobs(17)
    r = geometric_kmedians(X, 4, n_init=3)
    lab = r.labels.numpy()
    # a bijection between found and true clusters
    pairs = {(a, b) for a, b in zip(lab, truth, strict=True)}
    assert len(pairs) == 4 and len({a for a, _ in pairs}) == 4
    for a, b in pairs:
        assert_allclose(r.centroids[a].numpy(), geometric_median(X[truth == b]).numpy(), atol=1e-6)


def test_kmedians_global_optimum_in_1d():
    # in 1-D an optimal 2-medians clustering splits the sorted data into two runs
    rng = np.random.default_rng(18)
    for _ in range(3):
        v = np.sort(rng.exponential(size=10))
        best = min(
            (np.abs(v[:s] - np.median(v[:s])).sum() + np.abs(v[s:] - np.median(v[s:])).sum()) / 10
            for s in range(1, 10))
        r = geometric_kmedians(v, 2, n_init=10)
        assert_allclose(r.objective, best, rtol=1e-9)


def test_kmedians_reseeds_empty_clusters():
    rng = np.random.default_rng(19)
    X = rng.normal(size=(40, 2))
    init = np.array([[0.0, 0.0], [1e3, 1e3], [-1e3, 1e3]])  # two centroids own no points
    r = geometric_kmedians(X, 3, init=init)
    assert (r.counts > 0).all()
    assert r.objective < r.kmeans_objective
    h = np.array(r.objective_history)
    assert (np.diff(h) <= 1e-12 * h[:-1]).all()


def test_kmedians_more_clusters_than_distinct_points():
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 2.0]]), 5, axis=0)
    r = geometric_kmedians(X, 3, n_init=2)
    assert r.objective == 0.0
    assert r.counts.sum() == 10


def test_kmedians_seeded_and_image_shaped():
    X = torch.rand(30, 1, 3, 3, generator=torch.Generator().manual_seed(0))
    a = geometric_kmedians(X, 3, n_init=2, seed=5)
    b = geometric_kmedians(X, 3, n_init=2, seed=5)
    assert a.centroids.shape == (3, 1, 3, 3)
    torch.testing.assert_close(a.centroids, b.centroids, rtol=0, atol=0)
    assert torch.equal(a.labels, b.labels)
    r = geometric_kmedians(X, 3, n_init=2, init="k-means++")
    assert r.objective <= r.kmeans_objective


def test_kmedians_float32_points_give_the_float64_result():
    """Float32 points are kept as float32 and read into float64 arithmetic: from the same initial centroids the
    clustering equals that of the same values given in float64 (labels, objective and centroids)."""
    g = torch.Generator().manual_seed(3)
    X = torch.randn(400, 20, generator=g) + 4 * torch.randint(0, 3, (400, 1), generator=g)
    init = X[:5].double() + 0.1
    a, b = geometric_kmedians(X, 5, init=init), geometric_kmedians(X.double(), 5, init=init)
    assert a.n_iter == b.n_iter > 1
    assert torch.equal(a.labels, b.labels)
    assert a.objective == pytest.approx(b.objective, rel=1e-13)
    torch.testing.assert_close(a.centroids, b.centroids, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("dtype", "e"), [(torch.float32, 80), (torch.float32, -90), (torch.float64, 600),
                                         (torch.float64, -1000)])
def test_kmedians_is_scale_equivariant(dtype, e):
    """Points at 2^80 or 2^-90 in float32, 2^600 or 2^-1000 in float64 (their squared distances overflow or
    underflow): they are clustered multiplied back near 1 (exactly, by a power of two), so the clustering is that
    of the unscaled points, scaled."""
    X = torch.randn(300, 20, generator=torch.Generator().manual_seed(0), dtype=dtype)
    a = geometric_kmedians(X, 4, n_init=2, seed=1)
    b = geometric_kmedians(X * 2.0**e, 4, n_init=2, seed=1)
    assert torch.equal(a.labels, b.labels)
    assert b.objective == pytest.approx(a.objective * 2.0**e, rel=1e-12)
    torch.testing.assert_close(b.centroids, a.centroids * 2.0**e, rtol=1e-10, atol=0)


def test_kmedians_nearest_centroid_is_the_exact_argmin(monkeypatch):
    """The GEMM labels of the assignment step equal the argmin of exact pairwise distances (SciPy) where no two
    centroids are nearly tied, over chunks of the points."""
    from wganlab.ot import medians

    r = np.random.default_rng(0)
    X, c = r.normal(size=(3000, 50)).astype(np.float32), r.normal(size=(40, 50))
    d = cdist(X.astype(np.float64), c)
    two = np.sort(d, axis=1)[:, :2]
    clear = two[:, 1] - two[:, 0] > 1e-9 * two[:, 1]
    assert clear.mean() > 0.99
    monkeypatch.setattr(medians, "NEAREST_CHUNK_ELEMENTS", 50 * 700)  # chunks of 700 points, the last one shorter
    lab = medians._nearest(torch.from_numpy(X), torch.from_numpy(c)).numpy()
    assert (lab == d.argmin(1))[clear].all()


# --------------------------------------------------------------------------------------------------
# OT-Means
# --------------------------------------------------------------------------------------------------


def test_ot_means_trace_never_increases():
    rng = np.random.default_rng(20)
    Y = rng.normal(size=(200, 5)) + rng.choice([-4.0, 4.0], size=(200, 1))
    r = ot_means(Y, 8)
    assert isinstance(r, OTMeansResult)
    t = np.array(r.w1_trace)
    assert len(t) == r.n_solves == 10 * 5 + 1  # the reference schedule, then the final W1
    assert (np.diff(t) <= 1e-9 * t[:-1]).all()  # Theorem 1
    assert t[-1] < 0.5 * t[0]
    # the recorded final W1 is the exact W1 of the returned centroids
    assert_allclose(r.w1, wasserstein(r.centroids, Y).value, rtol=1e-12)
    assert r.plan.shape == (8, 200)
    assert_allclose(r.plan.sum(1), np.full(8, 1 / 8))


def test_ot_means_several_weiszfeld_steps_and_callback():
    rng = np.random.default_rng(21)
    Y = rng.normal(size=(100, 3))
    seen = []
    r = ot_means(Y, 4, n_iter=3, ot_steps=2, weiszfeld_steps=3,
                 callback=lambda it, c, trace: seen.append((it, tuple(c.shape), len(trace))))
    assert seen == [(0, (4, 3), 2), (1, (4, 3), 4), (2, (4, 3), 6)]
    t = np.array(r.w1_trace)
    assert len(t) == 7 and (np.diff(t) <= 1e-9 * t[:-1]).all()


def test_ot_means_m_equals_n_copies_the_data():
    rng = np.random.default_rng(22)
    Y = rng.normal(size=(30, 4))
    r = ot_means(Y, 30, n_iter=2, ot_steps=2)
    # the copies are exact to rounding (checked below with differences); the recorded W1 comes from
    # wganlab's cost matrix ||x||^2 + ||y||^2 - 2 x.y, whose square root is only accurate to about
    # sqrt(eps) * ||y|| ~ 1e-8 near zero distance
    assert r.w1 <= 1e-7 * r.w1_trace[0]
    D = cdist(r.centroids.numpy(), Y)
    nn = D.argmin(1)
    assert len(set(nn.tolist())) == 30  # each centroid is a distinct data point
    assert D.min(1).max() <= 1e-12


def test_ot_means_one_centroid_is_the_geometric_median():
    rng = np.random.default_rng(23)
    Y = rng.normal(size=(60, 3)) * [1.0, 2.0, 0.5]
    r = ot_means(Y, 1, n_iter=4, ot_steps=5, weiszfeld_steps=50)
    med = geometric_median(Y).numpy()
    assert_allclose(r.centroids[0].numpy(), med, atol=1e-7)
    assert_allclose(r.w1, np.linalg.norm(Y - med, axis=1).mean(), rtol=1e-10)


def test_ot_means_reproducible_with_seed():
    Y = np.random.default_rng(24).normal(size=(50, 3))
    a, b = ot_means(Y, 5, n_iter=2, seed=3), ot_means(Y, 5, n_iter=2, seed=3)
    torch.testing.assert_close(a.centroids, b.centroids, rtol=0, atol=0)
    assert a.w1_trace == b.w1_trace
    c = ot_means(Y, 5, n_iter=2, seed=4)
    assert c.w1_trace[0] != a.w1_trace[0]
    # the documented initialisation: init_std * N(0, I) from a seeded torch generator, in float64
    g = torch.Generator().manual_seed(3)
    x0 = 0.5 * torch.randn(5, 3, generator=g, dtype=torch.float64)
    assert_allclose(a.w1_trace[0], wasserstein(x0, Y).value, rtol=1e-12)


def test_ot_means_images_in_images_out():
    Y = torch.rand(40, 1, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1  # float32 images
    r = ot_means(Y, 6, n_iter=2, ot_steps=2)
    assert r.centroids.shape == (6, 1, 4, 4) and r.centroids.dtype == torch.float32
    assert_allclose(r.w1, wasserstein(r.centroids.double(), Y.double()).value, rtol=1e-6)
    # same as running on the flattened points
    flat = ot_means(Y.reshape(40, -1), 6, n_iter=2, ot_steps=2)
    torch.testing.assert_close(flat.centroids, r.centroids.reshape(6, -1), rtol=0, atol=0)
    # an explicit start in image shape
    r2 = ot_means(Y, 6, n_iter=1, ot_steps=1, init=r.centroids)
    assert r2.w1 <= r.w1 * (1 + 1e-6)


def test_ot_means_more_centroids_than_points():
    Y = np.random.default_rng(25).normal(size=(5, 2))
    r = ot_means(Y, 10, n_iter=3, ot_steps=2)
    t = np.array(r.w1_trace)
    assert (np.diff(t) <= 1e-9 * t[:-1]).all()
    assert r.w1 <= 1e-12  # two centroids per point, each on it


# --------------------------------------------------------------------------------------------------
# input errors
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("call", "match"), [
    (lambda: geometric_median(np.zeros((0, 3))), "empty"),
    (lambda: geometric_median([[0.0, np.nan]]), "NaN"),
    (lambda: geometric_median([[0.0], [1.0]], [1.0, -1.0]), "non-negative"),
    (lambda: geometric_median([[0.0], [1.0]], [0.0, 0.0]), "zero"),
    (lambda: geometric_median([[0.0], [1.0]], [1.0]), "expected 2 weights"),
    (lambda: geometric_median([[0.0], [1.0]], init=[0.0, 1.0]), "init"),
    (lambda: weiszfeld_step([[0.0]], [[0.0], [1.0]], [[1.0, 1.0, 1.0]]), "shape"),
    (lambda: weiszfeld_step([[0.0]], [[0.0], [1.0]], [[1.0, np.inf]]), "NaN or infinite"),
    (lambda: weiszfeld_step([[0.0, 0.0]], [[0.0], [1.0]], [[1.0, 1.0]]), "dimension"),
    (lambda: geometric_kmedians(np.zeros((3, 2)), 4), "k=4 exceeds"),
    (lambda: geometric_kmedians(np.zeros((3, 2)), 0), "k"),
    (lambda: geometric_kmedians(np.zeros((0, 2)), 1), "empty"),
    (lambda: geometric_kmedians([[np.nan, 0.0]], 1), "NaN"),
    (lambda: geometric_kmedians(np.zeros((3, 2)), 2, init="random"), "init"),
    (lambda: geometric_kmedians(np.zeros((3, 2)), 2, init=np.zeros((3, 2))), "init"),
    (lambda: ot_means(np.zeros((3, 2)), 0), "m"),
    (lambda: ot_means(np.zeros((0, 2)), 1), "empty"),
    (lambda: ot_means([[np.inf, 0.0]], 1), "NaN or infinite"),
    (lambda: ot_means(np.zeros((3, 2)), 2, ot_steps=0), "ot_steps"),
    (lambda: ot_means(np.zeros((3, 2)), 2, n_iter=-1), "n_iter"),
    (lambda: ot_means(np.zeros((3, 2)), 2, init=np.zeros((3, 2))), "m=2"),
    (lambda: ot_means(np.zeros((3, 2)), 2, init=np.zeros((2, 3))), "init"),
])
def test_input_errors(call, match):
    with pytest.raises(InputError, match=match):
        call()


# --------------------------------------------------------------------------------------------------
# another device
# --------------------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_cuda_matches_cpu():
    X, Y, W = _step_problem(26)
    dev = "cuda"
    torch.testing.assert_close(
        weiszfeld_step(torch.as_tensor(X, device=dev), torch.as_tensor(Y, device=dev),
                       torch.as_tensor(W, device=dev)).cpu(),
        weiszfeld_step(X, Y, W), rtol=1e-12, atol=1e-12)
    z = geometric_median(torch.as_tensor(Y, device=dev))
    assert z.device.type == "cuda"
    torch.testing.assert_close(z.cpu(), geometric_median(Y), rtol=1e-9, atol=1e-9)
    r = ot_means(torch.as_tensor(Y, device=dev), 4, n_iter=2, ot_steps=2)
    assert r.centroids.device.type == "cuda"
    c = ot_means(Y, 4, n_iter=2, ot_steps=2)
    assert_allclose(r.w1_trace, c.w1_trace, rtol=1e-9)
    k = geometric_kmedians(torch.as_tensor(Y, device=dev), 3, n_init=2)
    assert_allclose(k.objective, geometric_kmedians(Y, 3, n_init=2).objective, rtol=1e-9)


@pytest.mark.skipif(weiszfeld.weiszfeld_kernel is None, reason="the CPU kernel needs numba")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cpu_kernel_gives_the_torch_terms(monkeypatch, dtype):
    """The numba pass over the edges and the chunked torch path agree on every term, coinciding edges included
    (points in float32 or float64; centroids in float64)."""
    g = torch.Generator().manual_seed(0)
    x, Y = torch.randn(5, 7, dtype=torch.float64, generator=g), torch.randn(30, 7, generator=g).to(dtype)
    x[1] = Y[3]
    rows, cols = (t.reshape(-1) for t in torch.meshgrid(torch.arange(5), torch.arange(30), indexing="ij"))
    w = torch.rand(150, dtype=torch.float64, generator=g)
    ynorm = torch.linalg.vector_norm(Y, dim=1)
    kernel = weiszfeld.vz_terms(x, Y, ynorm, rows, cols, w, want_dist=True)
    monkeypatch.setattr(weiszfeld, "weiszfeld_kernel", None)
    plain = weiszfeld.vz_terms(x, Y, ynorm, rows, cols, w, want_dist=True)
    assert float(kernel[2][1]) == float(w[1 * 30 + 3])  # the coinciding edge's weight
    for a, b in zip(kernel, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    given = weiszfeld.vz_terms(x, Y, ynorm, rows, cols, w, True, plain[4])  # lengths given: the same terms
    monkeypatch.undo()
    given_kernel = weiszfeld.vz_terms(x, Y, ynorm, rows, cols, w, True, plain[4])
    for a, b, c in zip(given, given_kernel, plain, strict=True):
        torch.testing.assert_close(a, c, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(b, c, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_edge_lengths_kernel_and_torch_agree_with_scipy(monkeypatch, dtype):
    """``weiszfeld.edge_lengths`` (the numba pass on the CPU, else torch in chunks) against SciPy's distances."""
    g = torch.Generator().manual_seed(1)
    x, Y = torch.randn(6, 300, dtype=torch.float64, generator=g), torch.randn(50, 300, generator=g).to(dtype)
    rows, cols = torch.randint(0, 6, (700,), generator=g), torch.randint(0, 50, (700,), generator=g)
    expected = cdist(x.numpy(), Y.double().numpy())[rows.numpy(), cols.numpy()]
    out = [weiszfeld.edge_lengths(x, Y, rows, cols)]
    monkeypatch.setattr(weiszfeld, "weiszfeld_kernel", None)
    out.append(weiszfeld.edge_lengths(x, Y, rows, cols))
    for d in out:
        assert d.dtype == torch.float64
        assert_allclose(d.numpy(), expected, rtol=1e-13)


def test_ot_means_is_equivariant_under_scaling_of_the_data():
    """Data far from unit scale is rescaled inside the solver; the centroids and W1 scale with it."""
    r = np.random.default_rng(11)
    Y = r.normal(size=(40, 3))
    init = r.normal(size=(5, 3))
    base = ot_means(Y, 5, n_iter=2, ot_steps=2, init=init)
    for s in (1e-200, 1e120):
        res = ot_means(Y * s, 5, n_iter=2, ot_steps=2, init=init * s)
        assert_allclose(np.asarray(res.w1_trace) / s, base.w1_trace, rtol=1e-9)
        assert_allclose(res.centroids.numpy() / s, base.centroids.numpy(), rtol=1e-7, atol=1e-9)
