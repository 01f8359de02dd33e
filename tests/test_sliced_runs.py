"""The uniform 1-D kernel's run-based gather and its adjoint (numpy on the CPU) against plain formulas:
scipy's 1-D W1, autograd through a merged-breakpoint integral, and the patch SWD written with unfold."""

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from wganlab.bench import plain_patch_swd
from wganlab.errors import InputError
from wganlab.ot import sliced
from wganlab.ot.patches import patch_swd, patch_target
from wganlab.ot.sliced import kernels, random_projections, wasserstein_1d
from wganlab.ot.sliced.kernels import UniformPlan, gather_runs, sum_runs


def merged_w_pp(u: torch.Tensor, v: torch.Tensor, p: float) -> torch.Tensor:
    """``W_p^p`` of uniform measures by the quantile integral over merged breakpoints, differentiable by
    plain autograd (sort + indexing), rows of ``u (k, n)`` against rows of ``v (k, m)``."""
    n, m = u.shape[-1], v.shape[-1]
    levels = torch.sort(torch.cat([torch.arange(1, n + 1, dtype=torch.float64) / n,
                                   torch.arange(1, m + 1, dtype=torch.float64) / m])).values
    dt = torch.diff(levels, prepend=levels.new_zeros(1))
    mid = levels - dt / 2
    ix, iy = (mid * n).long().clamp_max(n - 1), (mid * m).long().clamp_max(m - 1)
    us, vs = torch.sort(u, -1).values, torch.sort(v, -1).values
    return ((us[..., ix] - vs[..., iy]).abs() ** p * dt).sum(-1)


@pytest.mark.parametrize(("n", "m"), [(7, 30), (30, 7), (64, 1000), (5, 5), (3, 1000), (999, 1000)])
def test_unequal_sizes_match_scipy(n, m):
    g = torch.Generator().manual_seed(n * m)
    u, v = torch.randn(4, n, generator=g, dtype=torch.float64), torch.randn(4, m, generator=g, dtype=torch.float64)
    want = [scipy.stats.wasserstein_distance(a, b) for a, b in zip(u.numpy(), v.numpy(), strict=True)]
    assert_close(wasserstein_1d(u, v), torch.tensor(want, dtype=torch.float64), rtol=1e-12, atol=1e-14)


def test_leading_dimensions_broadcast_and_mismatches_are_named():
    """Batches of atoms broadcast over their leading dimensions (one row against three, weighted or not, as each
    row alone); leading dimensions or weights that do not broadcast are refused by name."""
    g = torch.Generator().manual_seed(5)
    u, v = torch.randn(1, 9, generator=g, dtype=torch.float64), torch.randn(3, 12, generator=g, dtype=torch.float64)
    b = torch.rand(3, 12, generator=g, dtype=torch.float64)
    b /= b.sum(-1, keepdim=True)
    for weights in (None, b):
        want = torch.stack([wasserstein_1d(u[0], v[t], None, None if weights is None else weights[t])
                            for t in range(3)])
        assert_close(wasserstein_1d(u, v, None, weights), want, rtol=1e-13, atol=0)
    with pytest.raises(InputError, match=r"leading dimensions of u .* do not broadcast"):
        wasserstein_1d(torch.randn(2, 9), torch.randn(3, 12))
    with pytest.raises(InputError, match=r"b: weights of shape .* do not broadcast"):
        wasserstein_1d(torch.randn(3, 9), torch.randn(3, 12), None, torch.full((2, 12), 1 / 12))


@pytest.mark.parametrize("v_grad", [True, False], ids=["both-grads", "fixed-target"])
@pytest.mark.parametrize("p", [1.0, 2.0, 1.5])
@pytest.mark.parametrize(("n", "m"), [(7, 30), (30, 7), (13, 200)])
def test_gradients_match_autograd_of_the_merged_integral(n, m, p, v_grad, monkeypatch):
    # small blocks: the blocked kernel (used for a fixed target) crosses many block boundaries
    monkeypatch.setattr(kernels, "BLOCK_ELEMENTS", 16)
    g = torch.Generator().manual_seed(3)
    u = torch.randn(3, n, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(3, m, generator=g, dtype=torch.float64, requires_grad=v_grad)
    w = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    leaves = (u, v) if v_grad else (u,)
    got = torch.autograd.grad((wasserstein_1d(u, v, p=p) ** p * w).sum(), leaves)
    ref = merged_w_pp(u, v, p)
    want = torch.autograd.grad((ref * w).sum(), leaves)
    assert_close(wasserstein_1d(u, v, p=p) ** p, ref.detach(), rtol=1e-10, atol=1e-12)
    for a, b in zip(got, want, strict=True):
        assert_close(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("block", [16, 1 << 18])
def test_blocked_float32_sum_matches_float64(block, monkeypatch):
    monkeypatch.setattr(kernels, "BLOCK_ELEMENTS", block)
    g = torch.Generator().manual_seed(5)
    u = torch.randn(2, 64, generator=g, dtype=torch.float64)
    v = torch.randn(2, 100_003, generator=g, dtype=torch.float64)
    want = wasserstein_1d(u, v)
    assert_close(wasserstein_1d(u.float(), v.float()).double(), want, rtol=2e-6, atol=0)


def test_uniform_plan_from_its_breakpoints_equals_its_definition_piece_by_piece():
    """The plan's ``O(n)`` closed forms (runs, starts, split pieces, their shares) against its definition over
    all ``m`` pieces: ``a_j = floor(j n / m)``, piece ``j`` split iff ``(a_j + 1) m < (j + 1) n``; sizes that
    divide each other, coprime ones, ``n = 1`` and either order."""
    rng = np.random.default_rng(3)
    sizes = [(9, 40), (3, 9), (4, 6), (1, 7), (7, 91), (40, 9), (1000, 24_001)]
    for n, m in sizes + [tuple(int(k) for k in rng.integers(1, 400, 2)) for _ in range(100)]:
        if n == m:
            continue
        plan = UniformPlan(n, m, "cpu")
        n, m = min(n, m), max(n, m)
        j = np.arange(m)
        a = j * n // m
        split = np.flatnonzero((a + 1) * m < (j + 1) * n)
        assert np.array_equal(plan.a.numpy(), a) and np.array_equal(plan.runs, np.bincount(a, minlength=n))
        assert np.array_equal(plan.starts, np.searchsorted(a, np.arange(n)))
        assert np.array_equal(plan.js.numpy(), split) and np.array_equal(plan.ja.numpy(), a[split])
        assert np.array_equal(plan.len_b.numpy(), ((split + 1) * n - (a[split] + 1) * m) / (n * m))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_run_gather_and_its_adjoint_equal_index_select_and_index_add(dtype):
    plan = UniformPlan(9, 40, "cpu")
    us = torch.randn(2, 1, 9).to(dtype).expand(2, 3, 9)  # an expanded (0-stride) view, as the kernel sees
    assert torch.equal(gather_runs(us, plan), us.index_select(-1, plan.a))
    gm = torch.randn(2, 3, 40, dtype=torch.float64).to(dtype)
    want = torch.zeros(2, 3, 9, dtype=torch.float64).index_add_(-1, plan.a, gm.double())
    assert_close(sum_runs(gm, plan).double(), want, rtol=1e-2 if dtype == torch.bfloat16 else 1e-6, atol=1e-2)


def test_patch_swd_reuse_matches_the_plain_formula_and_the_direct_gradient():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 1, 10, 10, generator=g, requires_grad=True)
    y = torch.rand(37, 1, 10, 10, generator=g)
    theta = random_projections(9, 12, seed=1)
    target = patch_target(y, 3, 1, projections=theta)
    reused, direct = patch_swd(x, target, 3, 1), patch_swd(x, y, 3, 1, projections=theta)
    assert_close(float(reused.detach()), plain_patch_swd(x.detach(), y, theta, 3), rtol=1e-5, atol=0)
    (g_reused,) = torch.autograd.grad(reused, x)
    (g_direct,) = torch.autograd.grad(direct, x)
    assert_close(g_reused, g_direct)
    # the gradient of the plain formula (autograd through unfold, projection and the merged integral)
    px = F.unfold(x, 3).transpose(1, 2).reshape(-1, 9)
    py = F.unfold(y, 3).transpose(1, 2).reshape(-1, 9)
    ref = merged_w_pp((theta @ px.T).double(), (theta @ py.T).double(), 1.0).mean()
    (g_ref,) = torch.autograd.grad(ref, x)
    assert_close(g_reused, g_ref.float(), rtol=1e-4, atol=1e-7)
    # the bench's plain baseline accumulates the same gradient chunk by chunk
    xb = x.detach().clone().requires_grad_(True)
    plain_patch_swd(xb, y, theta, 3, chunk=5)
    assert_close(xb.grad, g_ref.float(), rtol=1e-4, atol=1e-7)


def test_absurd_number_of_projections_is_refused_before_allocation():
    x = torch.zeros(4, 784)
    with pytest.raises(InputError, match="100,000,000 projections"):
        sliced.sliced_wasserstein(x, x, n_projections=100_000_000)


def _patch_reference(x, y, theta, p, local):
    """Patch SW_p (or its location-specific mean) by :func:`merged_w_pp` on unfolded patches (3x3, stride 2)."""
    px, py = F.unfold(x, 3, stride=2), F.unfold(y, 3, stride=2)  # (N, 9, L)
    if local:
        return torch.stack([merged_w_pp(theta @ px[:, :, l].T, theta @ py[:, :, l].T, p).mean() ** (1 / p)
                            for l in range(px.shape[-1])]).mean()
    flat = [z.transpose(1, 2).reshape(-1, 9) for z in (px, py)]
    return merged_w_pp(theta @ flat[0].T, theta @ flat[1].T, p).mean() ** (1 / p)


@pytest.mark.parametrize("p", [1.0, 2.0, 1.5])
@pytest.mark.parametrize("local", [False, True], ids=["patch", "local"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_batch_against_a_fixed_batch_of_its_size_matches_autograd_through_the_sort(p, local, dtype, monkeypatch):
    """The direct-descent step (generated images against a fixed set of as many) takes the fused equal-size
    path (in float32 on the CPU: the packed sort and the numba pass): its value and gradient are autograd's
    through the sort; with tied values, the same as the general path's (which a target that needs a gradient
    takes)."""
    from wganlab.ot.patches import patch_swd_local
    from wganlab.ot.sliced import Side

    calls = []
    equal_pp = Side.equal_pp
    monkeypatch.setattr(Side, "equal_pp", lambda *a: calls.append(1) or equal_pp(*a))
    fn = patch_swd_local if local else patch_swd
    g = torch.Generator().manual_seed(4)
    x = torch.rand(6, 1, 9, 9, generator=g, dtype=dtype, requires_grad=True)
    y = torch.rand(6, 1, 9, 9, generator=g, dtype=dtype)
    theta = random_projections(9, 5, seed=2).to(dtype)
    kernel_calls = []
    real = kernels.match_kernel.match_sorted
    monkeypatch.setattr(kernels.match_kernel, "match_sorted", lambda *a: kernel_calls.append(1) or real(*a))
    value = fn(x, y, 3, 2, p=p, projections=theta)
    (grad,) = torch.autograd.grad(value, x)
    assert calls and bool(kernel_calls) == (dtype == torch.float32)
    ref = _patch_reference(x.double(), y.double(), theta.double(), p, local)
    (ref_grad,) = torch.autograd.grad(ref, x)
    tol = (1e-12, 1e-14, 1e-10, 1e-13) if dtype == torch.float64 else (2e-6, 1e-7, 1e-4, 1e-6)
    assert_close(value, ref.detach().to(dtype), rtol=tol[0], atol=tol[1])
    assert_close(grad, ref_grad, rtol=tol[2], atol=tol[3])
    # ties: two equal generated images and one equal to a target image
    xt = x.detach().clone()
    xt[3], xt[2] = xt[1], y[0]
    xt.requires_grad_(True)
    (fused,) = torch.autograd.grad(fn(xt, y, 3, 2, p=p, projections=theta), xt)
    n_calls = len(calls)
    (general,) = torch.autograd.grad(fn(xt, y.clone().requires_grad_(True), 3, 2, p=p, projections=theta), xt)
    assert len(calls) == n_calls  # a target with a gradient takes the general path
    exact = dtype == torch.float64
    assert_close(fused, general, rtol=1e-12 if exact else 1e-6, atol=1e-15 if exact else 1e-8)
    if p == 1:  # the same arithmetic as autograd through the sort: the same bits
        assert torch.equal(fused, general)


def test_sort_with_order_carries_positions_exactly_through_one_float64_sort():
    """float32 values sorted with their positions packed into their float64 copies' zero mantissa bits:
    the values are numpy's sort bit for bit (ties, signed zeros, subnormals, extremes) and the order is a
    permutation that gathers them; an inf or nan falls back to argsort."""
    g = torch.Generator().manual_seed(5)
    v = torch.randn(3, 4000, generator=g)
    v[:, :50] = 0.25  # ties
    v[0, 50:60] = -0.0
    v[0, 60:70] = 0.0
    v[1, 50:60] = torch.tensor([1e-45, -1e-45, 1e-40, -1e-40, 3.4e38, -3.4e38, 1.2e-38, -1.2e-38, 1e-45, 0.0])
    for w in (v, v.clone().index_put_((torch.tensor([2]), torch.tensor([7])), torch.tensor(float("inf")))):
        values, order = kernels.sort_with_order(w)
        assert torch.equal(values, torch.from_numpy(np.sort(w.numpy(), axis=-1)))
        assert torch.equal(w.gather(-1, order), values)
        assert torch.equal(torch.sort(order, -1).values, torch.arange(w.shape[-1]).expand_as(order))
    assert kernels._packed_sort(v) is not None
    assert kernels._packed_sort(v.clone().fill_(float("nan"))) is None  # nan / inf: argsort instead
    assert kernels._packed_sort(v.double()) is None


def _awkward_rows(g: torch.Generator, n: int) -> torch.Tensor:
    """float32 rows with ties, signed zeros, subnormals and extremes, some in every radix digit."""
    v = torch.randn(3, n, generator=g)
    v[:, :50] = 0.25
    v[:, 50:80] = -0.25
    v[0, 80:90], v[0, 90:100] = -0.0, 0.0
    v[1, 80:90] = torch.tensor([1e-45, -1e-45, 1e-40, -1e-40, 3.4e38, -3.4e38, 1.2e-38, -1.2e-38, 1e-45, 0.0])
    v[2] = torch.round(v[2] * 8) / 8  # long runs of ties, both signs
    return v[:, torch.randperm(n, generator=g)].contiguous()


@pytest.mark.skipif(kernels.match_kernel is None, reason="needs numba")
def test_radix_sorts_give_numpys_sort(monkeypatch):
    """The radix sorts that replace numpy's sort where it is slower (rows of at least RADIX_MIN values): the
    packed sort (values with positions) is numpy's sort of the packed copies bit for bit, positions of ties
    descending among negatives; the plain sort gives numpy's values (+0 == -0); an inf sorts, a nan (or, packed,
    an inf) falls back; whichever way ``_radix_wins`` decides, the sorts and the matching agree bit for bit."""
    g = torch.Generator().manual_seed(7)
    v = _awkward_rows(g, kernels.RADIX_MIN + 1000)
    n = v.shape[-1]
    packed = np.empty(v.shape)
    assert kernels.match_kernel.packed_radix_sort(v.numpy(), packed, kernels._LOW)
    ref = np.empty(v.shape)
    assert not kernels.match_kernel.pack_positions(v.numpy()[None], ref, 0).any()
    ref.sort(axis=-1)
    assert np.array_equal(packed.view(np.uint64), ref.view(np.uint64))
    out = np.empty(v.shape, dtype=np.float32)
    assert kernels.match_kernel.radix_sort(v.numpy(), out)
    assert np.array_equal(out, np.sort(v.numpy(), axis=-1))
    bad = v.clone()
    bad[1, 7] = float("inf")
    assert kernels.match_kernel.radix_sort(bad.numpy(), out) and np.array_equal(out, np.sort(bad.numpy(), -1))
    assert not kernels.match_kernel.packed_radix_sort(bad.numpy(), packed, kernels._LOW)
    bad[2, 9] = float("nan")
    assert not kernels.match_kernel.radix_sort(bad.numpy(), out)

    w = torch.sort(torch.randn(3, n, generator=g), -1).values
    results = []
    for radix in (True, False):
        monkeypatch.setattr(kernels, "_radix_wins", lambda packed, radix=radix: radix)
        results.append((kernels._packed_sort(v), kernels.sort_values(v.clone(), inplace=True),
                        kernels.sort_values(bad), kernels.sort_with_order(v), kernels.equal_match(v, w, 1.0)))
    (fa, sa, na, (va, oa), (pa, ga)), (fb, sb, nb, (vb, ob), (pb, gb)) = results
    assert np.array_equal(fa.view(np.uint64), fb.view(np.uint64))
    assert torch.equal(sa, sb) and torch.equal(va, vb) and torch.equal(oa, ob)
    assert torch.equal(na.isnan(), nb.isnan()) and torch.equal(na.nan_to_num(), nb.nan_to_num())
    assert torch.equal(pa, pb) and torch.equal(ga, gb)
    monkeypatch.setattr(kernels, "_radix_wins", lambda packed: packed)
    assert kernels.sort_choice() == "numpy / radix"  # what bench tables print beside the machine


@pytest.mark.skipif(kernels.match_kernel is None, reason="needs numba")
def test_long_rows_sorted_bucket_first_give_numpys_sort():
    """Rows of at least ``MSD_MIN`` values take the bucket-first sort: numpy's values (+0 == -0) with ties,
    signed zeros, subnormals, extremes, infs, a row of one value and a row spread over all of float32's range,
    in place or not; a nan refuses."""
    mk = kernels.match_kernel
    g = torch.Generator().manual_seed(11)
    v = torch.cat([_awkward_rows(g, mk.MSD_MIN + 333), torch.full((1, mk.MSD_MIN + 333), -2.5)]).numpy()
    v[0, 7:11] = [np.inf, -np.inf, np.inf, -np.inf]
    v[2, :60] = np.ldexp(1.0, np.arange(-149, 127, 276 / 60)[:60].astype(int)) * (-1) ** np.arange(60)
    want = np.sort(v, axis=-1)
    out = np.empty_like(v)
    assert mk.radix_sort(v, out) and np.array_equal(out, want)
    assert mk.radix_sort(v, v) and np.array_equal(v, want)
    v[3, 5] = np.nan
    assert not mk.radix_sort(v, out)


@pytest.mark.skipif(kernels.match_kernel is None, reason="needs numba")
@pytest.mark.parametrize("p", [1.0, 2.0, 1.5])
def test_fused_sort_match_equals_the_packed_sort_then_the_match(p, monkeypatch):
    """Where the radix sort wins, the equal-size matching sorts and matches row by row
    (:func:`match_kernel.sort_match`): the same value and slopes, bit for bit, as the packed sort followed by
    :func:`match_kernel.match_sorted`, with ties, signed zeros, subnormals and extremes; rows holding an inf or a
    nan take the torch path (the other rows are unchanged by them); with ``overwrite`` the slopes land in ``v``'s
    own memory, without it ``v`` is left as it was."""
    g = torch.Generator().manual_seed(9)
    v = _awkward_rows(g, kernels.RADIX_MIN + 777)
    v[1, 80:90] = v[1, 90:100]  # no +-3.4e38 (|d|^p would overflow for p > 1)
    w = torch.sort(torch.randn(3, v.shape[-1], generator=g), -1).values
    w[:, 1000:1100] = torch.sort(v, -1).values[:, 1000:1100]  # d = 0 there
    monkeypatch.setattr(kernels, "_radix_wins", lambda packed: True)
    f = kernels._packed_sort(v)
    total, slope = np.zeros(3), np.empty((1, *v.shape), dtype=np.float32)
    kernels.match_kernel.match_sorted(f.view(np.uint64), kernels._LOW, w.numpy(), p, kernels.PACK_BITS,
                                      np.zeros(3, dtype=bool), total, slope)
    keep = v.clone()
    value, fused = kernels.equal_match(v, w, p)
    assert torch.equal(v, keep)
    assert torch.equal(value, torch.from_numpy(total / v.shape[-1]).float())
    assert torch.equal(fused, torch.from_numpy(slope[0]))
    bad = v.clone()
    bad[1, 7] = float("inf")
    bad[2, 9] = float("nan")
    value_b, slope_b = kernels.equal_match(bad, w, p, overwrite=True)
    assert slope_b.data_ptr() == bad.data_ptr()
    assert torch.equal(value_b[0], value[0]) and torch.equal(slope_b[0], fused[0])
    monkeypatch.setattr(kernels, "match_kernel", None)
    ref_value, ref_slope = kernels.equal_match(keep.clone().index_put_((torch.tensor([1, 2]), torch.tensor([7, 9])),
                                                                     torch.tensor([float("inf"), float("nan")])), w, p)
    assert torch.equal(value_b[1:].isnan(), ref_value[1:].isnan())
    assert torch.equal(value_b[1:].isinf(), ref_value[1:].isinf())
    assert torch.equal(slope_b[1:].nan_to_num(), ref_slope[1:].nan_to_num())


@pytest.mark.skipif(kernels.match_kernel is None, reason="needs numba")
@pytest.mark.parametrize("radix", [False, True])
def test_match_blocks_reads_and_writes_the_convolution_layout(radix, monkeypatch):
    """``match_blocks`` on values laid out ``(B, k, L)`` and given in groups of rows (a convolution's output): the
    same sums and slopes, bit for bit, as :func:`kernels.equal_match` on the rows ``v[:, r, :]`` made contiguous,
    the slopes back in the ``(B, k, L)`` layout, whichever sort runs; a row holding an inf is flagged and left
    alone; positions past ``PACK_BITS`` refuse."""
    monkeypatch.setattr(kernels, "_radix_wins", lambda packed: radix)
    g = torch.Generator().manual_seed(12)
    B, k, L = 3, 5, 1500
    v = torch.cat([_awkward_rows(g, B * L), torch.randn(2, B * L, generator=g)]).reshape(k, B, L).transpose(0, 1)
    v = v.contiguous()
    w = torch.sort(torch.randn(k, B * L, generator=g), -1).values
    rows = v.transpose(0, 1).reshape(k, B * L)
    for p in (1.0, 1.5):
        ref_value, ref_slope = kernels.equal_match(rows, w, p)
        slope = np.full((B, k, L), np.nan, dtype=np.float32)
        parts = [(0, v[:, :3].numpy().copy()), (3, v[:, 3:].numpy().copy())]
        total, bad = kernels.match_blocks(parts, w.numpy(), p, slope)
        assert not bad.any()
        assert torch.equal(torch.from_numpy(total / (B * L)).float(), ref_value)
        assert torch.equal(torch.from_numpy(slope).transpose(0, 1).reshape(k, B * L), ref_slope)
    v[1, 2, 7] = float("inf")
    slope = np.full((B, k, L), np.nan, dtype=np.float32)
    total, bad = kernels.match_blocks([(0, v.numpy())], w.numpy(), 1.0, slope)
    assert bad.tolist() == [False, False, True, False, False] and np.isnan(slope[:, 2]).all()
    assert not np.isnan(slope[:, [0, 1, 3, 4]]).any()
    huge = np.broadcast_to(np.float32(0), (1 << 20, 1, 1 << 10))
    assert kernels.match_blocks([], w.numpy(), 1.0, huge) is None


@pytest.mark.skipif(kernels.match_kernel is None, reason="needs numba")
@pytest.mark.parametrize("radix", [False, True])
@pytest.mark.parametrize("local", [False, True], ids=["patch", "local"])
def test_the_direct_steps_fused_matching_gives_the_projection_then_equalpps_bits(radix, local, monkeypatch):
    """Generated images against a fixed batch of as many (the direct step, of all patches or location by location):
    the patch side matches each group's convolution as it comes and keeps the slopes in the gradient's layout;
    value and gradient are the same bits as the projection followed by :class:`EqualPP`, with ties, groups below
    ``PHASE_CHANNELS`` (output phases) and chunked projections; projections that overflow fall back to the same
    result."""
    from wganlab.ot.patches import patch_swd_local
    from wganlab.ot.sliced import Side
    from wganlab.ot.sliced.autograd import EqualPP

    monkeypatch.setattr(kernels, "_radix_wins", lambda packed: radix)
    g = torch.Generator().manual_seed(13)
    x, y = (torch.round(torch.rand(5, 1, 12, 12, generator=g) * 8) / 8 for _ in range(2))
    x[:, :, :4] = y[:, :, :4] = 0  # flat rows: tied projections
    theta = random_projections(16, 21, seed=1)

    def step(images, p, max_elements):
        xg = images.clone().requires_grad_(True)
        value = (patch_swd_local if local else patch_swd)(xg, y, 4, 1, p=p, projections=theta,
                                                          max_elements=max_elements)
        return value.detach(), torch.autograd.grad(value, xg)[0]

    calls = []
    match_blocks = kernels.match_blocks
    monkeypatch.setattr("wganlab.ot.patch_conv.match_blocks", lambda *a: calls.append(1) or match_blocks(*a))
    bad = x.clone()
    bad[2, 0, 4:8, 4:8] = 3e38  # finite pixels whose projections overflow
    for images, p, max_elements in ((x, 1.0, None), (x, 1.5, None), (x, 1.0, 2 * 5 * 81 * 3), (bad, 1.0, None)):
        calls.clear()
        fused = step(images, p, max_elements)
        assert calls
        with monkeypatch.context() as m:
            m.setattr(Side, "equal_pp", lambda self, data, th, ws, p: EqualPP.apply(self.project(data, th), ws, p))
            plain = step(images, p, max_elements)
        assert len(calls) == 1 or max_elements  # the plain route matched without match_blocks' groups
        for a, b in zip(fused, plain, strict=True):
            assert torch.equal(a.nan_to_num(), b.nan_to_num()) and torch.equal(a.isnan(), b.isnan())


@pytest.mark.parametrize("p", [1.0, 2.0, 1.5])
def test_equal_match_kernel_equals_the_numpy_path(p, monkeypatch):
    """The fused numba pass (value, slopes, scatter) against sort + gather + abs + scatter in torch, with ties
    and exact zeros of ``v_(j) - w_j``: the same slopes, the same value to float32 rounding."""
    g = torch.Generator().manual_seed(6)
    v = torch.randn(2, 3, 500, generator=g)
    w = torch.sort(torch.randn(2, 3, 500, generator=g), -1).values
    v[..., :40] = 0.5
    w[..., 100:140] = torch.sort(v, -1).values[..., 100:140]  # d = 0 there
    calls = []
    real = kernels.match_kernel.match_sorted
    monkeypatch.setattr(kernels.match_kernel, "match_sorted", lambda *a: calls.append(1) or real(*a))
    value, slope = kernels.equal_match(v, w, p)
    assert calls
    monkeypatch.setattr(kernels, "match_kernel", None)
    ref_value, ref_slope = kernels.equal_match(v, w, p)
    assert value.shape == ref_value.shape == (2, 3) and value.dtype == torch.float32
    assert_close(value, ref_value, rtol=2e-6, atol=0)
    assert_close(slope, ref_slope, rtol=2e-7 if p == 1.5 else 0, atol=0)


@pytest.mark.parametrize("local", [False, True], ids=["patch", "local"])
def test_patch_projection_backward_is_autograd_through_unfold(local):
    """The projections' single backward convolution (images and directions) against autograd through
    ``unfold`` and a matrix product, with stride and zero padding."""
    from wganlab.ot.patch_conv import project_patches

    g = torch.Generator().manual_seed(7)
    x = torch.rand(5, 2, 9, 8, generator=g, dtype=torch.float64, requires_grad=True)
    theta = torch.randn(37, 18, generator=g, dtype=torch.float64, requires_grad=True)  # 37: not a multiple of 16
    out = project_patches(x, theta, 3, 2, 1, "local" if local else "images")
    cols = F.unfold(x, 3, stride=2, padding=1)  # (N, 18, L)
    ref = torch.einsum("kd,ndl->kln" if local else "kd,ndl->knl", theta, cols)
    ref = ref if local else ref.reshape(37, -1)
    assert_close(out, ref, rtol=1e-12, atol=1e-12)
    weights = torch.randn(out.shape, generator=g, dtype=torch.float64)
    grads = torch.autograd.grad((out * weights).sum(), (x, theta))
    refs = torch.autograd.grad((ref * weights).sum(), (x, theta))
    for a, b in zip(grads, refs, strict=True):
        assert_close(a, b, rtol=1e-12, atol=1e-12)
    # a plain sum hands the backward an expanded (stride 0) gradient
    (summed,) = torch.autograd.grad(project_patches(x, theta, 3, 2, 1, "local" if local else "images").sum(), x)
    (ref_summed,) = torch.autograd.grad((theta @ F.unfold(x, 3, stride=2, padding=1)).sum(), x)
    assert_close(summed, ref_summed, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("shape", "patch_size", "stride", "padding"),
                         [((7, 1, 64, 64), 16, 1, 0), ((7, 1, 28, 28), 7, 1, 0), ((5, 3, 32, 30), 8, 2, 2),
                          ((6, 2, 17, 23), 5, 3, 1), ((4, 1, 5, 9), 5, 1, 0)])
def test_few_kernels_are_convolved_at_output_phases_with_the_same_bits(shape, patch_size, stride, padding, monkeypatch):
    """Groups of fewer than ``PHASE_CHANNELS`` projections run as one strided convolution of shifted kernels
    (float32): the blocks tile ``F.conv2d``'s output bit for bit, so a projection's values do not depend on how
    many others share its chunk (a patch SWD with 1-projection chunks equals the default one exactly), and the
    ``"any"`` layout holds each projection's values in another order."""
    from wganlab.ot import patch_conv

    g = torch.Generator().manual_seed(3)
    x = torch.randn(shape, generator=g)
    strides = []
    conv2d = F.conv2d
    monkeypatch.setattr(patch_conv.F, "conv2d", lambda *a, **k: strides.append(k.get("stride")) or conv2d(*a, **k))
    for k in (1, 2, 3, 5, 8, 11):
        kern = torch.randn(k, shape[1], patch_size, patch_size, generator=g)
        ref = conv2d(x, kern, stride=stride, padding=padding)
        out = torch.full_like(ref, float("nan"))
        strides.clear()
        for (rs, cs), block in patch_conv.correlation_blocks(x, kern, stride, padding, *ref.shape[2:]):
            out[:, :, rs, cs] = block
        assert strides[0] > stride  # the phase path ran
        assert torch.equal(out, ref)
        ordered, unordered = (patch_conv.project_values(x, kern, stride, padding, lay) for lay in ("images", "any"))
        assert torch.equal(ordered, ref.transpose(0, 1).reshape(k, -1))
        assert torch.equal(torch.sort(unordered).values, torch.sort(ordered).values)
    y = torch.randn((9, *shape[1:]), generator=g)
    theta = random_projections(shape[1] * patch_size ** 2, 21, seed=2)
    whole = patch_swd(x, y, patch_size, stride, padding=padding, projections=theta)
    per_projection = patch_swd(x, y, patch_size, stride, padding=padding, projections=theta, max_elements=1)
    assert torch.equal(whole, per_projection)


def test_kernels_of_3x3_or_less_keep_the_plain_convolution():
    """torch sends a float32 CPU convolution of one image with kernels of at most 3x3 past oneDNN, and that path
    sums in another order than oneDNN would for the shifted (larger) kernels: such groups keep ``F.conv2d``, so a
    single image's patch SWD is the same bits however its projections are chunked."""
    from wganlab.ot import patch_conv

    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(1, 1, 9, 9, generator=g), torch.randn(3, 1, 9, 9, generator=g)
    kern = torch.randn(2, 1, 3, 3, generator=g)
    (slices, block), = patch_conv.correlation_blocks(x, kern, 1, 0, 7, 7)
    assert slices == (slice(None), slice(None)) and torch.equal(block, F.conv2d(x, kern))
    theta = random_projections(9, 21, seed=4)
    assert torch.equal(patch_swd(x, y, 3, projections=theta), patch_swd(x, y, 3, projections=theta, max_elements=1))


@pytest.mark.parametrize("p", [2.0, 1.5])
@pytest.mark.parametrize(("dtype", "e"), [(torch.float64, 600), (torch.float64, -1000), (torch.float32, 100),
                                         (torch.float32, -100)])
def test_sliced_distances_at_extreme_scales(p, dtype, e):
    """For p > 1, |d|^p of points at 2^600 or 2^-1000 (float64), 2^100 or 2^-100 (float32) overflows or underflows:
    the 1-D, sliced and patch distances and their gradients are those of the unscaled data, scaled (the distance
    by 2^e, the gradient unchanged), also against a prepared target."""
    g = torch.Generator().manual_seed(2)
    s = 2.0**e
    u, v = torch.randn(3, 40, generator=g, dtype=dtype), torch.randn(3, 55, generator=g, dtype=dtype) + 1
    assert_close(wasserstein_1d(u * s, v * s, p=p) / s, wasserstein_1d(u, v, p=p), rtol=1e-5, atol=0)
    x, y = torch.randn(30, 6, generator=g, dtype=dtype), torch.randn(50, 6, generator=g, dtype=dtype) + 0.5
    xi, yi = torch.rand(4, 1, 9, 9, generator=g, dtype=dtype), torch.rand(6, 1, 9, 9, generator=g, dtype=dtype)
    cases = [(lambda a, b: sliced.sliced_wasserstein(a, b, 16, p, seed=1), x, y),
             (lambda a, b: sliced.sliced_wasserstein(a, sliced.SortedProjections(b, 16, seed=1), p=p), x, y),
             (lambda a, b: patch_swd(a, b, 4, 2, 16, p), xi, yi),
             (lambda a, b: patch_swd(a, patch_target(b, 4, 2, 16), 4, 2, p=p), xi, yi)]
    for f, a, b in cases:
        a1, a2 = a.clone().requires_grad_(True), (a * s).requires_grad_(True)
        d1, d2 = f(a1, b), f(a2, b * s)
        assert torch.isfinite(d2) and d1 > 0
        assert_close(d2 / s, d1, rtol=1e-5, atol=0)
        (g1,), (g2,) = torch.autograd.grad(d1, a1), torch.autograd.grad(d2, a2)
        assert_close(g2, g1, rtol=1e-4, atol=1e-6)
