"""The metric registry: prepared targets give the plain calls' values; misuse is a clear error."""

import pytest
import torch

from wganlab import metrics
from wganlab.errors import InputError


@pytest.mark.parametrize("name,opts", [
    ("swd", {"n_projections": 16, "seed": 3}),
    ("patch-swd", {"patch_size": 3, "patch_stride": 2, "n_projections": 8, "seed": 1}),
    ("patch-swd-local", {"patch_size": 3, "patch_stride": 2, "n_projections": 8, "seed": 1}),
    ("w1", {}),
])
def test_prepared_target_gives_the_plain_value(name, opts):
    g = torch.Generator().manual_seed(0)
    y = torch.rand(20, 1, 8, 8, generator=g)
    t = metrics.target(name, y, **opts)
    for k in range(3):
        x = torch.rand(5, 1, 8, 8, generator=g) + 0.1 * k
        torch.testing.assert_close(metrics.compute(name, x, t, **opts)["value"],
                                   metrics.compute(name, x, y, **opts)["value"], rtol=1e-6, atol=0)


def test_target_used_with_other_options_is_an_error():
    y = torch.rand(10, 1, 8, 8)
    t = metrics.target("patch-swd", y, patch_size=3)
    with pytest.raises(InputError, match="prepared for metric 'patch-swd'"):
        metrics.compute("patch-swd", y[:2], t, patch_size=5)
    with pytest.raises(InputError, match="prepared for"):
        metrics.compute("patch-swd-local", y[:2], t, patch_size=3)
    with pytest.raises(InputError, match="needs images"):
        metrics.target("patch-swd", torch.rand(10, 64))


@pytest.mark.parametrize("name,opts", [
    ("swd", {"n_projections": 16, "seed": 3}),
    ("patch-swd", {"patch_size": 3, "patch_stride": 2, "n_projections": 8, "seed": 1}),
    ("patch-swd-local", {"patch_size": 3, "patch_stride": 2, "n_projections": 8, "seed": 1}),
])
def test_sliced_metrics_report_their_projections(name, opts):
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(3, 1, 8, 8, generator=g), torch.rand(4, 1, 8, 8, generator=g)
    out = metrics.compute(name, x, y, **opts)
    assert out["n_projections"] == opts["n_projections"] and out["seed"] == opts["seed"]


def test_exact_metrics_report_their_certificate():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(5, 3, generator=g), torch.randn(6, 3, generator=g)
    out = metrics.compute("w1", x, y)
    assert 0 <= out["gap"] <= 1e-7 * out["value"] and out["solver"]
