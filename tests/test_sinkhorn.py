"""Sinkhorn: translation invariance and scale equivariance computed, not approximated; closed forms; reports."""

import math

import numpy as np
import pytest
import torch

from wganlab import metrics
from wganlab.errors import InputError
from wganlab.ot.exact import wasserstein
from wganlab.ot.sinkhorn import sinkhorn, sinkhorn_cost, sinkhorn_divergence, sinkhorn_divergence_terms

g = torch.Generator().manual_seed(0)
X = torch.randn(30, 3, generator=g, dtype=torch.float64)
Y = torch.randn(40, 3, generator=g, dtype=torch.float64) + 0.5


def test_two_points_closed_form():
    """Identity plan on two far points: W_eps = eps * KL(P | a x b) = eps log 2 (plan diag(1/2))."""
    C = torch.tensor([[0.0], [10.0]], dtype=torch.float64)
    r = sinkhorn(C, C, 0.01, cost="euclidean")
    assert r.converged and float(r.value) == pytest.approx(0.01 * math.log(2), rel=1e-6)


@pytest.mark.parametrize("offset", [1e7, 1e8, 1e10])
def test_divergence_is_translation_invariant(offset):
    ref = float(sinkhorn_divergence(X, Y, 0.1))
    # the data moved by the offset is itself rounded to ulp(offset) ~ offset * 1e-16 per coordinate
    assert float(sinkhorn_divergence(X + offset, Y + offset, 0.1)) == pytest.approx(ref, rel=1e-9 + offset * 1e-15)


@pytest.mark.parametrize("cost,k,s", [(c, k, s) for c, k in [("euclidean", 1), ("sqeuclidean", 2), ("l1", 1)]
                                       for s in [1e-300, 1e-150, 1e-100, 1e-8, 1e8, 1e100, 1e150, 1e300]
                                       if abs(k * math.log10(s)) <= 300])  # s^k itself representable
def test_divergence_scales_with_the_data(cost, k, s):
    """S_{s^k eps}(s x, s y) = s^k S_eps(x, y) (costs homogeneous of degree k)."""
    ref = float(sinkhorn_divergence(X, Y, 0.1, cost=cost))
    assert float(sinkhorn_divergence(X * s, Y * s, 0.1 * s**k, cost=cost)) == pytest.approx(s**k * ref, rel=1e-9)


def test_value_beyond_float64_raises():
    with pytest.raises(InputError, match="float64"):
        sinkhorn_divergence(X * 1e300, Y * 1e300, 1.0, cost="sqeuclidean")


@pytest.mark.parametrize("s", [1e-300, 1e-20, 1.0])
def test_eps_far_above_the_costs_raises_instead_of_a_rounded_number(s):
    """With eps more than 2^30 times the costs the log-domain sums round the costs away (the divergence of sets at
    1e-300 with eps = 0.5 came out 0.0): a one-line error; at 1e4 times the costs the entropic values are
    computed, and close to their eps -> infinity limit, the mean cost <C, a x b> (up to about C / eps)."""
    with pytest.raises(InputError, match="times the largest cost"):
        sinkhorn_divergence(X * s, Y * s, s * 2.0**40)
    C = torch.cdist(X, Y)
    assert float(sinkhorn_cost(X * s, Y * s, s * 1e4 * float(C.max()))) == pytest.approx(s * float(C.mean()),
                                                                                       rel=1e-4)


def test_gradient_scales_with_the_data():
    x = X.clone().requires_grad_(True)
    sinkhorn_divergence(x, Y, 0.1).backward()
    xs = X.clone().requires_grad_(True)
    sinkhorn_divergence(xs * 1e-200, Y * 1e-200, 0.1e-200).backward()
    torch.testing.assert_close(xs.grad, 1e-200 * x.grad, rtol=1e-8, atol=0)


def test_small_eps_tends_to_the_exact_distance():
    x, y = X[:10], Y[:10]
    assert float(sinkhorn_divergence(x, y, 1e-3)) == pytest.approx(wasserstein(x, y).value, rel=1e-2)


def test_custom_cost_that_overflows_raises_instead_of_a_number():
    def cubed(a, b):
        return torch.cdist(a, b) ** 3

    with pytest.raises(InputError, match="infinite or NaN"):
        sinkhorn_cost(X * 1e150, Y * 1e150, 1.0, cost=cubed)


def test_report_says_what_the_number_is():
    terms = sinkhorn_divergence_terms(X, Y, 0.1)
    rep = terms.report()
    assert float(terms.value) == pytest.approx(float(sinkhorn_divergence(X, Y, 0.1)), rel=1e-12)
    assert rep["converged"] and rep["eps"] == 0.1 and rep["iterations"] >= 1 and rep["marginal_error"] <= 1e-6
    out = metrics.compute("sinkhorn", X, Y, eps=0.1)
    assert out["value"] == pytest.approx(float(terms.value)) and out["converged"] and out["iterations"] >= 1
    w = np.full(30, 1 / 30)
    assert metrics.compute("sinkhorn", X, Y, eps=0.1, a=w)["value"] == pytest.approx(out["value"], rel=1e-9)
