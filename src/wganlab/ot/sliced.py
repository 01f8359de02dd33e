"""Exact 1-D Wasserstein distances and sliced Wasserstein distances (SWD), in torch.

1-D, exact, via quantile functions (any sizes, weighted or uniform)::

    W_p(mu, nu)^p = integral_0^1 |F^-1(t) - G^-1(t)|^p dt

where ``F^-1``/``G^-1`` are the (left-continuous) quantile functions of the two empirical measures. They
are step functions, so the integral is a finite sum over the merged breakpoints of the two cumulative
weight vectors (Rabin et al. 2011; Peyré & Cuturi, *Computational Optimal Transport*, remark 2.30).
With uniform weights and ``n`` <= ``m`` points the breakpoints ``i/n`` and ``j/m`` are merged with
integer arithmetic: every ``y`` piece meets at most two ``x`` pieces, so a call costs one sort of each
side and O(n + m) work, with no tiling of the smaller set. For equal sizes this is the familiar
``mean_i |x_(i) - y_(i)|^p`` of the sorted values.

Sliced (Bonneel et al. 2015; Kolouri et al. 2018)::

    SW_p(x, y) = ( mean_{theta in Theta} W_p^p(theta . x, theta . y) )^(1/p)

over a finite set ``Theta`` of random unit directions (normalised Gaussians), i.e. the Monte-Carlo
estimate of the integral over the sphere. For ``p = 1`` it is the mean over projections of the 1-D W1,
which for equal sizes is the reference code's "mean absolute difference of sorted projections".
``SW_1 <= W_1`` holds for every set of directions (each 1-D projection is 1-Lipschitz).

Memory stays bounded: projections are processed in chunks of ``max_elements`` projected values
(:data:`MAX_ELEMENTS` by default); gradients are accumulated chunk by chunk (the autograd graph of one
chunk is freed before the next), so a 10,000-image target never materialises all its projections with
their autograd buffers. :class:`SortedProjections` projects and sorts a fixed target once.

Gradients: the result is differentiable with respect to the points of ``x`` and ``y`` (not the
weights). They are computed during the forward call (first order only: no double backward).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import torch

from wganlab.checks import as_points, as_tensor, positive_int, same_dim
from wganlab.errors import InputError

#: projected values (summed over both sets) one chunk of projections may hold: 64 M values, i.e. about
#: 0.5-0.8 GB of scratch memory in float32 once the sorted copy and one gathered temporary are counted
MAX_ELEMENTS = 1 << 26
#: the most entries ``n_projections * d`` a set of random projections may have (1 GB in float64)
MAX_PROJECTION_ELEMENTS = 1 << 27
#: projected values (times rows) one block of the uniform 1-D kernel works on: ~1 MB in float32, so its
#: temporaries stay in the CPU cache (5x faster than passes over whole rows of millions of patches)
BLOCK_ELEMENTS = 1 << 18

__all__ = ["MAX_ELEMENTS", "SortedProjections", "random_projections", "sliced_wasserstein", "wasserstein_1d"]


# ----------------------------------------------------------------------------------------------------------
# sorting helpers (numpy's vectorised sort is ~20x faster than torch.sort on one CPU thread)


def _sort_values(v: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """``v`` sorted along the last dimension, without gradient. ``inplace``: ``v`` is a temporary that
    may be overwritten (no copy on the CPU)."""
    if v.device.type == "cpu" and v.dtype in (torch.float32, torch.float64):
        a = v.detach().numpy()
        if not (inplace and a.flags.c_contiguous and a.flags.writeable):
            a = np.array(a, order="C")
        a.sort(axis=-1)
        return torch.from_numpy(a)
    return torch.sort(v.detach(), dim=-1).values


def _argsort(v: torch.Tensor) -> torch.Tensor:
    if v.device.type == "cpu" and v.dtype in (torch.float32, torch.float64):
        return torch.from_numpy(np.argsort(v.detach().numpy(), axis=-1))
    return torch.argsort(v.detach(), dim=-1)


def _sort_side(v: torch.Tensor, w: torch.Tensor | None, inplace: bool = False):
    """Sorted values (differentiable when ``v`` is) and cumulative weights (float64, or None if uniform).

    ``w`` is ``(n,)`` or broadcastable to ``v``; the last cumulative weight is set to exactly 1.
    """
    if w is None:
        if v.requires_grad:
            return v.gather(-1, _argsort(v)), None
        return _sort_values(v, inplace), None
    idx = _argsort(v)
    vs = v.gather(-1, idx)
    cw = torch.cumsum(w.expand(v.shape).gather(-1, idx), dim=-1)
    cw[..., -1] = 1.0
    return vs, cw


def _uniform_cum(n: int, shape, device) -> torch.Tensor:
    c = torch.arange(1, n + 1, device=device, dtype=torch.float64) / n
    c[-1] = 1.0
    return c.expand(*shape, n)


# ----------------------------------------------------------------------------------------------------------
# the 1-D kernel: W_p^p between sorted samples


def _abs_pow(d: torch.Tensor, p: float) -> torch.Tensor:
    if p == 1:
        return d.abs()
    if p == 2:
        return d * d
    return d.abs() ** p


class _UniformPlan:
    """Merged breakpoints of two uniform measures with ``n`` and ``m`` atoms (integer arithmetic).

    After ordering so that ``n <= m`` (``swap``), the ``y`` piece ``j`` (quantile levels ``(j/m, (j+1)/m]``)
    starts in ``x`` piece ``a_j = floor(j n / m)``; it is split by an ``x`` breakpoint iff
    ``(a_j + 1) m < (j + 1) n``, and then its last ``((j+1) n - (a_j+1) m) / (n m)`` of mass meets
    ``x`` piece ``a_j + 1``.
    """

    def __init__(self, n: int, m: int, device):
        self.swap = n > m
        if self.swap:
            n, m = m, n
        self.n, self.m = n, m
        self.equal = n == m
        if self.equal:
            return
        j = torch.arange(m, device=device)
        a = torch.div(j * n, m, rounding_mode="floor")
        split = ((a + 1) * m < (j + 1) * n).nonzero().squeeze(1)
        self.a = a
        # a is non-decreasing and (n < m) takes every value 0..n-1: runs of equal values
        self.runs = np.bincount(a.cpu().numpy(), minlength=n)
        self.starts = np.cumsum(self.runs) - self.runs
        self.blocks: dict[int, list] = {}
        self.js = split
        self.ja = a[split]
        self.len_b = ((split + 1) * n - (self.ja + 1) * m).to(torch.float64) / (n * m)


def _numpy_ok(t: torch.Tensor) -> bool:
    return t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64)


def _gather_runs(us: torch.Tensor, plan: _UniformPlan) -> torch.Tensor:
    """``us[..., plan.a]`` as a new tensor (no gradient). ``plan.a`` repeats each ``x`` atom over its run
    of ``y`` pieces, so on the CPU this is ``numpy.repeat`` (6x faster than ``index_select`` over
    millions of pieces)."""
    if _numpy_ok(us):
        return torch.from_numpy(np.repeat(us.detach().numpy(), plan.runs, axis=-1))
    return us.detach().index_select(-1, plan.a)


def _sum_runs(g: torch.Tensor, plan: _UniformPlan) -> torch.Tensor:
    """``out[..., i] = sum_{j: a_j = i} g[..., j]``, the adjoint of :func:`_gather_runs` (``(..., n)``)."""
    if _numpy_ok(g):
        return torch.from_numpy(np.add.reduceat(g.numpy(), plan.starts, axis=-1))
    out = torch.zeros((*g.shape[:-1], plan.n), dtype=g.dtype, device=g.device)
    return out.index_add_(-1, plan.a, g)


def _dabs_pow(d: torch.Tensor, p: float) -> torch.Tensor:
    """``d/dd |d|^p``, in place on ``d`` (0 at 0 for p = 1, the subgradient the sort's gradient uses)."""
    if p == 1:
        return d.sign_()
    if p == 2:
        return d.mul_(2.0)
    return d.sign().mul_(d.abs_().pow_(p - 1.0)).mul_(p)


def _sum_abs_pow(d: torch.Tensor, p: float, inplace: bool) -> torch.Tensor:
    """``sum |d|^p`` over the last dimension (torch's cascade summation: float32 sums of millions of terms
    stay accurate to ~1e-7, unlike ``linalg.vector_norm``'s), overwriting ``d`` when ``inplace``."""
    if not inplace:
        return _abs_pow(d, p).sum(-1)
    if p == 1:
        return d.abs_().sum(-1)
    if p == 2:
        return d.square_().sum(-1)
    return d.abs_().pow_(p).sum(-1)


def _run_blocks(plan: _UniformPlan, rows: int) -> list[tuple[int, int, int, int]]:
    """``(i0, i1, j0, j1)``: blocks of whole runs, ``x`` atoms ``i0:i1`` and their ``y`` pieces ``j0:j1``,
    about ``BLOCK_ELEMENTS / rows`` pieces each."""
    width = max(1, BLOCK_ELEMENTS // max(rows, 1))
    if width not in plan.blocks:
        cuts = np.unique(np.append(np.searchsorted(plan.starts, np.arange(0, plan.m, width)), plan.n))
        ends = np.append(plan.starts, plan.m)
        plan.blocks = {width: [(int(i0), int(i1), int(ends[i0]), int(ends[i1]))
                               for i0, i1 in itertools.pairwise(cuts)]}
    return plan.blocks[width]


def _blocked_main(us: torch.Tensor, vs: torch.Tensor, p: float, plan: _UniformPlan, want_du: bool):
    """The main term ``(1/m) sum_j |u_{a_j} - v_j|^p`` over CPU float arrays, block by block (no
    ``(..., m)`` temporary), and with ``want_du`` the per-run sums ``sum_{j: a_j = i} d/du |u_i - v_j|^p``
    (``(..., n)``) that the gradient with respect to ``us`` needs. Block sums are added in float64."""
    u, v = us.detach().numpy(), vs.detach().numpy()
    total = torch.zeros(u.shape[:-1], dtype=torch.float64)
    du = np.empty(u.shape, dtype=u.dtype) if want_du else None
    for i0, i1, j0, j1 in _run_blocks(plan, math.prod(u.shape[:-1])):
        d = np.repeat(u[..., i0:i1], plan.runs[i0:i1], axis=-1)
        d -= v[..., j0:j1]
        dt = torch.from_numpy(d)
        if want_du:
            du[..., i0:i1] = np.add.reduceat(_dabs_pow(dt.clone(), p).numpy(), plan.starts[i0:i1] - j0, axis=-1)
        total += _sum_abs_pow(dt, p, inplace=True)
    return (total / plan.m).to(us.dtype), (None if du is None else torch.from_numpy(du))


class _UniformPP(torch.autograd.Function):
    """``W_p^p`` of two uniform measures from sorted atoms ``us (..., n)``, ``vs (..., m)``, ``n < m``.

    On the CPU, without a gradient for ``vs`` (a fixed target), the main term runs block by block
    (:func:`_blocked_main`) and keeps only ``(..., n)`` per-run derivative sums for the backward pass.
    Otherwise one ``(..., m)`` temporary, the differences ``u_{a_j} - v_j``, kept for the backward pass
    (which then works in place on it) only when a gradient is needed. ``m`` may be millions of patches per
    projection, so no other full-size buffer is created.
    """

    @staticmethod
    def forward(ctx, us, vs, p, plan):
        need_u, need_v = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        ctx.p, ctx.plan, ctx.d, ctx.du = p, plan, None, None
        if not need_v and _numpy_ok(us) and _numpy_ok(vs):
            main, ctx.du = _blocked_main(us, vs, p, plan, need_u)
        else:
            d = _gather_runs(us, plan).sub_(vs)
            main = _sum_abs_pow(d, p, inplace=not (need_u or need_v)) / plan.m
            ctx.d = d if (need_u or need_v) else None
        ctx.save_for_backward(us, vs)
        if plan.js.numel() == 0:
            return main
        vj = vs.index_select(-1, plan.js)
        d_b = (_abs_pow(us.index_select(-1, plan.ja + 1) - vj, p)
               - _abs_pow(us.index_select(-1, plan.ja) - vj, p))
        return main + (d_b * plan.len_b.to(d_b.dtype)).sum(-1)

    @staticmethod
    def backward(ctx, grad):
        us, vs = ctx.saved_tensors
        p, plan, d = ctx.p, ctx.plan, ctx.d
        ctx.d = None  # used up in place below; a second backward recomputes it
        g = grad.unsqueeze(-1)
        # main term: (1/m) |u_{a_j} - v_j|^p
        gu = gv = None
        if ctx.du is not None:
            gu = ctx.du * (g / plan.m)
        else:
            if d is None:
                d = _gather_runs(us, plan).sub_(vs)
            gm = _dabs_pow(d, p).mul_(g / plan.m)
            if ctx.needs_input_grad[0]:
                gu = _sum_runs(gm, plan)
            if ctx.needs_input_grad[1]:
                gv = gm.neg_()
        if plan.js.numel():
            # split pieces: + len_b (|u_{a+1} - v_j|^p - |u_a - v_j|^p)
            vj = vs.index_select(-1, plan.js)
            lb = plan.len_b.to(us.dtype) * g
            g1 = _dabs_pow(us.index_select(-1, plan.ja + 1) - vj, p).mul_(lb)
            g0 = _dabs_pow(us.index_select(-1, plan.ja) - vj, p).mul_(lb)
            if gu is not None:
                gu.index_add_(-1, plan.ja + 1, g1)
                gu.index_add_(-1, plan.ja, g0.neg())
            if gv is not None:
                gv.index_add_(-1, plan.js, g0 - g1)
        return gu, gv, None, None


def _pp_uniform(us: torch.Tensor, vs: torch.Tensor, p: float, plan: _UniformPlan) -> torch.Tensor:
    """``W_p^p`` between uniform measures given sorted atoms ``us (..., n)`` and ``vs (..., m)``."""
    if plan.swap:
        us, vs = vs, us
    if plan.equal:
        return _abs_pow(us - vs, p).mean(-1)
    lead = torch.broadcast_shapes(us.shape[:-1], vs.shape[:-1])
    us, vs = us.expand(*lead, us.shape[-1]), vs.expand(*lead, vs.shape[-1])
    return _UniformPP.apply(us, vs, p, plan)


def _pp_weighted(us, cu, vs, cv, p: float) -> torch.Tensor:
    """``W_p^p`` from sorted atoms and cumulative weights (float64, last entry 1), any sizes.

    Sums ``(t_k - t_{k-1}) |F^-1(t_k) - G^-1(t_k)|^p`` over the merged breakpoints ``t_k``; the quantile
    ``F^-1(t)`` is the first atom whose cumulative weight reaches ``t``.
    """
    lead = torch.broadcast_shapes(us.shape[:-1], vs.shape[:-1], cu.shape[:-1], cv.shape[:-1])
    n, m = us.shape[-1], vs.shape[-1]
    us, vs = us.expand(*lead, n), vs.expand(*lead, m)
    cu, cv = cu.expand(*lead, n).contiguous(), cv.expand(*lead, m).contiguous()
    t = torch.sort(torch.cat([cu, cv], dim=-1), dim=-1).values
    dt = torch.diff(t, dim=-1, prepend=torch.zeros_like(t[..., :1]))
    iu = torch.searchsorted(cu, t).clamp_max_(n - 1)
    iv = torch.searchsorted(cv, t).clamp_max_(m - 1)
    d = us.gather(-1, iu) - vs.gather(-1, iv)
    return (_abs_pow(d, p) * dt.to(d.dtype)).sum(-1)


def _pp_sorted(us, cu, vs, cv, p: float, plan: _UniformPlan | None = None) -> torch.Tensor:
    if cu is None and cv is None:
        plan = plan or _UniformPlan(us.shape[-1], vs.shape[-1], us.device)
        return _pp_uniform(us, vs, p, plan)
    if cu is None:
        cu = _uniform_cum(us.shape[-1], (), us.device)
    if cv is None:
        cv = _uniform_cum(vs.shape[-1], (), vs.device)
    return _pp_weighted(us, cu, vs, cv, p)


# ----------------------------------------------------------------------------------------------------------
# input checks


def _check_p(p) -> float:
    try:
        p = float(p)
    except (TypeError, ValueError):
        raise InputError(f"p must be a number >= 1, got {p!r}") from None
    if not (p >= 1 and math.isfinite(p)):
        raise InputError(f"p must be a finite number >= 1, got {p}")
    return p


def _weights(w, shape: tuple, name: str, device) -> torch.Tensor | None:
    """Probability weights over the last dimension of ``shape`` as float64 on ``device`` (None: uniform).

    Accepts ``(n,)`` or any shape broadcastable to ``shape``; every weight vector must be non-negative
    and sum to 1 (within 1e-6; it is then renormalised)."""
    if w is None:
        return None
    t = w if isinstance(w, torch.Tensor) else torch.as_tensor(np.asarray(w, dtype=np.float64))
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
        raise InputError(f"{name}: weights must be numeric, got dtype {t.dtype}")
    t = t.detach().to(device=device, dtype=torch.float64)
    if t.ndim == 0 or t.shape[-1] != shape[-1]:
        raise InputError(f"{name}: expected {shape[-1]} weights (one per point), got shape {tuple(t.shape)}")
    try:
        torch.broadcast_shapes(t.shape, shape)
    except RuntimeError:
        raise InputError(f"{name}: weights of shape {tuple(t.shape)} do not broadcast to "
                         f"{tuple(shape)}") from None
    if not bool(torch.isfinite(t).all()):
        raise InputError(f"{name}: weights contain NaN or infinite values")
    if bool((t < 0).any()):
        raise InputError(f"{name}: weights must be non-negative (min {float(t.min()):.3g})")
    s = t.sum(-1, keepdim=True)
    if bool(((s - 1).abs() > 1e-6).any()):
        raise InputError(f"{name}: weights must sum to 1 (they sum to {float(s.flatten()[0]):.6g})")
    return t / s


def wasserstein_1d(u, v, u_weights=None, v_weights=None, p: float = 1) -> torch.Tensor:
    """Exact ``W_p`` between 1-D empirical measures, batched over leading dimensions.

    ``W_p^p = integral_0^1 |F^-1(t) - G^-1(t)|^p dt`` with the quantile functions of
    ``mu = sum_i a_i delta_{u_i}`` and ``nu = sum_j b_j delta_{v_j}``; exact for any sizes ``n``, ``m``
    (no tiling, no interpolation).

    Args:
        u: atoms ``(..., n)``; v: atoms ``(..., m)``; leading dimensions broadcast.
        u_weights, v_weights: probability weights ``(n,)`` / ``(m,)`` or broadcastable to ``u`` / ``v``
            (uniform when None); each weight vector sums to 1.
        p: order, ``>= 1``.

    Returns:
        ``W_p`` (not ``W_p^p``) of shape ``(...)``, in ``u``'s dtype and on its device; differentiable
        with respect to ``u`` and ``v`` (the gradient of ``W_p`` for ``p > 1`` is infinite where the
        distance is 0).

    >>> float(wasserstein_1d([0.0, 1.0], [3.0, 4.0]))  # translation by 3
    3.0
    >>> round(float(wasserstein_1d([0.0, 1.0, 2.0], [0.0, 2.0], p=2) ** 2), 6)  # 1/6 * 1^2 + ... = 1/3
    0.333333
    """
    p = _check_p(p)
    u = as_tensor(u, "u")
    v = as_tensor(v, "v")
    if u.device != v.device:
        raise InputError(f"u and v are on different devices ({u.device}, {v.device})")
    dtype = torch.promote_types(u.dtype, v.dtype)
    u, v = u.to(dtype), v.to(dtype)
    try:
        torch.broadcast_shapes(u.shape[:-1], v.shape[:-1])
    except RuntimeError:
        raise InputError(f"leading dimensions of u {tuple(u.shape)} and v {tuple(v.shape)} "
                         "do not broadcast") from None
    wu = _weights(u_weights, tuple(u.shape), "u_weights", u.device)
    wv = _weights(v_weights, tuple(v.shape), "v_weights", v.device)
    us, cu = _sort_side(u, wu)
    vs, cv = _sort_side(v, wv)
    if cu is None and cv is None:
        lead = torch.broadcast_shapes(us.shape[:-1], vs.shape[:-1])
        us, vs = us.expand(*lead, us.shape[-1]), vs.expand(*lead, vs.shape[-1])
    pp = _pp_sorted(us, cu, vs, cv, p)
    return pp if p == 1 else pp.clamp_min(0) ** (1.0 / p)


# ----------------------------------------------------------------------------------------------------------
# projections


def random_projections(d: int, n_projections: int, *, seed: int | None = None,
                       generator: torch.Generator | None = None, device=None,
                       dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(n_projections, d)`` random unit vectors: normalised standard Gaussians (uniform on the sphere).

    Drawn in float64 from ``generator`` (on its device), else from a CPU generator seeded with ``seed``,
    else from torch's global CPU generator; then cast to ``dtype`` and moved to ``device``. The same seed
    gives the same directions on every device.

    >>> random_projections(3, 2, seed=0).norm(dim=1).tolist() == [1.0, 1.0] or "not unit"
    True
    """
    d = positive_int(d, "d")
    n_projections = positive_int(n_projections, "n_projections")
    if n_projections * d > MAX_PROJECTION_ELEMENTS:
        raise InputError(f"{n_projections:,} projections of {d:,}-dimensional points would need "
                         f"{n_projections * d:,} float64 entries, over the limit of {MAX_PROJECTION_ELEMENTS:,}")
    if generator is None and seed is not None:
        generator = torch.Generator().manual_seed(int(seed))
    gdev = generator.device if generator is not None else "cpu"
    z = torch.randn(n_projections, d, generator=generator, device=gdev, dtype=torch.float64)
    z = z / z.norm(dim=1, keepdim=True).clamp_min(1e-300)
    return z.to(device=device if device is not None else gdev, dtype=dtype)


def _check_projections(theta, d: int, device, dtype) -> torch.Tensor:
    theta = as_tensor(theta, "projections")
    if theta.ndim == 1:
        theta = theta[None]
    if theta.ndim != 2 or theta.shape[1] != d:
        raise InputError(f"projections must have shape (n_projections, {d}), got {tuple(theta.shape)}")
    return theta.detach().to(device=device, dtype=dtype)


def _get_projections(d: int, n_projections, seed, generator, projections, device, dtype) -> torch.Tensor:
    if projections is not None:
        return _check_projections(projections, d, device, dtype)
    return random_projections(d, n_projections, seed=seed, generator=generator, device=device, dtype=dtype)


def _matmul_t(a: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """``a @ theta.T``, with the same bits whatever the number of projections in ``theta``.

    BLAS takes a matrix-vector path for a single column, whose summation order differs from the
    matrix-matrix path; a single projection is therefore computed as two identical columns.
    """
    if theta.shape[0] == 1:
        return (a @ torch.cat([theta, theta]).T)[..., :1]
    return a @ theta.T


# ----------------------------------------------------------------------------------------------------------
# the chunked engine shared by points and patches


class _Side:
    """One set of a sliced problem: a tensor and the linear map that projects it.

    ``project(data, theta (k, d)) -> (k, *batch, n)``: the projected values of the ``n`` atoms for each
    of ``k`` directions (``batch`` is ``()`` for a point set, ``(L,)`` for location-specific patches).
    """

    def __init__(self, data: torch.Tensor, project: Callable, n: int, batch: tuple = (),
                 weights: torch.Tensor | None = None):
        self.data, self.project, self.n, self.batch, self.weights = data, project, n, tuple(batch), weights
        self.needs_grad = torch.is_grad_enabled() and data.requires_grad


def _chunk_size(n_proj: int, per_projection: int, max_elements: int | None) -> int:
    budget = MAX_ELEMENTS if max_elements is None else positive_int(max_elements, "max_elements")
    return max(1, min(n_proj, budget // max(per_projection, 1)))


def _chunks(n: int, k: int):
    return [(i, min(n, i + k)) for i in range(0, n, k)]


class SortedProjections:
    """A fixed target set, projected on fixed directions and sorted once, for repeated sliced distances.

    Holds ``projections (P, d)``, the sorted projected atoms ``values (P, *batch, m)`` and, for a
    weighted target, their cumulative weights ``cum_weights`` (float64, same shape; None when uniform).
    ``sliced_wasserstein(x, target)`` (and the patch distances for a target built by
    :func:`wganlab.ot.patches.patch_target`) then only projects and sorts ``x``: the result equals the
    plain call with the same projections exactly (same bits: the target is projected in the same way).

    Memory: ``P * m`` values in the target's dtype (10,000 MNIST images, 7x7 patches at stride 1 and
    128 projections: 4.8 M patches -> 2.5 GB in float32), plus the same again in float64 if weighted.

    >>> y = torch.randn(100, 5)
    >>> t = SortedProjections(y, 16, seed=3)
    >>> bool(sliced_wasserstein(y[:7], t) == sliced_wasserstein(y[:7], y, 16, seed=3))
    True
    """

    def __init__(self, y, n_projections: int = 128, *, seed: int | None = 0,
                 generator: torch.Generator | None = None, projections=None, weights=None,
                 max_elements: int | None = None, device=None, dtype: torch.dtype | None = None):
        y = as_points(y, "y", dtype)
        if device is not None:
            y = y.to(device)
        theta = _get_projections(y.shape[1], n_projections, seed, generator, projections, y.device, y.dtype)
        w = _weights(weights, (y.shape[0],), "weights", y.device)
        side = _points_side(y.detach(), w)
        self._fill(side, theta, max_elements, {"kind": "points", "d": y.shape[1]})

    @classmethod
    def _from_side(cls, side: _Side, theta: torch.Tensor, max_elements: int | None, meta: dict):
        obj = cls.__new__(cls)
        obj._fill(side, theta, max_elements, meta)
        return obj

    def _fill(self, side: _Side, theta: torch.Tensor, max_elements, meta: dict) -> None:
        P = theta.shape[0]
        per = math.prod(side.batch) * side.n
        k = _chunk_size(P, per, max_elements)
        self.projections = theta
        self.values = torch.empty((P, *side.batch, side.n), dtype=side.data.dtype, device=side.data.device)
        self.cum_weights = None if side.weights is None else torch.empty(
            self.values.shape, dtype=torch.float64, device=self.values.device)
        with torch.no_grad():
            for i, j in _chunks(P, k):
                vs, cw = _sort_side(side.project(side.data, theta[i:j]), side.weights, inplace=True)
                self.values[i:j] = vs
                if cw is not None:
                    self.cum_weights[i:j] = cw
        self.n, self.batch, self.meta = side.n, side.batch, dict(meta)
        self._plans: dict = {}

    @property
    def n_projections(self) -> int:
        return self.projections.shape[0]

    @property
    def nbytes(self) -> int:
        """Memory held by the sorted values (and cumulative weights)."""
        b = self.values.numel() * self.values.element_size()
        return b + (0 if self.cum_weights is None else self.cum_weights.numel() * 8)

    def _plan(self, n: int) -> _UniformPlan:
        if n not in self._plans:
            self._plans = {n: _UniformPlan(n, self.n, self.values.device)}
        return self._plans[n]

    def __repr__(self) -> str:
        return (f"SortedProjections({self.meta.get('kind')}, projections={self.n_projections}, "
                f"atoms={self.n}, batch={self.batch}, {self.nbytes / 2**20:.1f} MiB)")


def _points_side(x: torch.Tensor, w: torch.Tensor | None) -> _Side:
    return _Side(x, lambda data, theta: _matmul_t(data, theta).T, x.shape[0], (), w)


class _AttachGrad(torch.autograd.Function):
    """Returns ``value``; its backward hands out gradients computed during the forward pass."""

    @staticmethod
    def forward(ctx, value, x, y, gx, gy):
        ctx.gx, ctx.gy = gx, gy
        return value.clone()

    @staticmethod
    def backward(ctx, grad):
        gx = None if ctx.gx is None else grad * ctx.gx
        gy = None if ctx.gy is None else grad * ctx.gy
        return None, gx, gy, None, None


def _sliced(xs: _Side, ys: _Side | SortedProjections, theta: torch.Tensor, p: float,
            max_elements: int | None) -> torch.Tensor:
    """``mean_b ( mean_theta W_p^p(theta . x_b, theta . y_b) )^(1/p)`` over the batch ``b`` of the sides.

    Chunked over projections; gradients with respect to the sides' tensors are computed chunk by chunk
    (local autograd on detached leaves) and attached to the result by :class:`_AttachGrad`.
    """
    cached = isinstance(ys, SortedProjections)
    P = theta.shape[0]
    batch = xs.batch
    B = math.prod(batch)
    k = _chunk_size(P, B * (xs.n + ys.n), max_elements)
    plan = None
    if xs.weights is None and (ys.cum_weights if cached else ys.weights) is None:
        plan = ys._plan(xs.n) if cached else _UniformPlan(xs.n, ys.n, xs.data.device)
    want_x = xs.needs_grad
    want_y = (not cached) and ys.needs_grad
    leaves = []
    x_in = xs.data.detach().requires_grad_(True) if want_x else xs.data.detach()
    y_in = None
    if not cached:
        y_in = ys.data.detach().requires_grad_(True) if want_y else ys.data.detach()
    if want_x:
        leaves.append(x_in)
    if want_y:
        leaves.append(y_in)

    def pp_chunk(i, j):
        us, cu = _sort_side(xs.project(x_in, theta[i:j]), xs.weights, inplace=True)
        if cached:
            vs = ys.values[i:j]
            cv = None if ys.cum_weights is None else ys.cum_weights[i:j]
        else:
            vs, cv = _sort_side(ys.project(y_in, theta[i:j]), ys.weights, inplace=True)
        return _pp_sorted(us, cu, vs, cv, p, plan)

    def run(grad_w):
        """All chunks; with ``grad_w (P, *batch)`` also the gradients of ``sum(grad_w * pp)``."""
        pp = torch.empty((P, *batch), dtype=xs.data.dtype, device=xs.data.device)
        grads = [None] * len(leaves)
        for i, j in _chunks(P, k):
            if grad_w is None:
                with torch.no_grad():
                    pp[i:j] = pp_chunk(i, j)
                continue
            with torch.enable_grad():
                val = pp_chunk(i, j)
                gs = torch.autograd.grad(val, leaves, grad_outputs=grad_w[i:j].to(val.dtype),
                                         allow_unused=True)
            pp[i:j] = val.detach()
            grads = [g if a is None else (a if g is None else a + g) for a, g in zip(grads, gs, strict=True)]
        return pp, grads

    def dvalue_dpp(pp):
        s = pp.mean(0)
        if p == 1:
            w = torch.ones_like(s)
        else:
            w = torch.where(s > 0, s.clamp_min(1e-300) ** (1.0 / p - 1.0) / p, torch.zeros_like(s))
        return (w / (P * B)).expand(P, *batch)

    if not leaves:
        pp, grads = run(None)
    elif p == 1 or B == 1:
        # the weights d value / d pp are known up to one scalar: one pass, rescaled afterwards
        pp, grads = run(torch.full((P, *batch), 1.0 / (P * B), dtype=torch.float64, device=xs.data.device))
        scale = dvalue_dpp(pp).flatten()[0] * (P * B)
        grads = [None if g is None else g * scale.to(g.dtype) for g in grads]
    else:
        pp, _ = run(None)
        _, grads = run(dvalue_dpp(pp))
    s = pp.mean(0)
    value = (s if p == 1 else s.clamp_min(0) ** (1.0 / p)).mean()
    if not leaves:
        return value
    gx = grads[0] if want_x else None
    gy = grads[-1] if want_y else None
    gx = torch.zeros_like(xs.data) if (want_x and gx is None) else gx
    gy = torch.zeros_like(ys.data) if (want_y and gy is None) else gy
    y_arg = ys.data if want_y else None
    return _AttachGrad.apply(value, xs.data if want_x else None, y_arg, gx, gy)


def sliced_wasserstein(x, y, n_projections: int = 128, p: float = 1, *, seed: int | None = 0,
                       generator: torch.Generator | None = None, projections=None, x_weights=None,
                       y_weights=None, max_elements: int | None = None) -> torch.Tensor:
    """Sliced Wasserstein distance ``SW_p(x, y) = (mean_theta W_p^p(theta . x, theta . y))^(1/p)``.

    Args:
        x: points ``(n, ...)``, flattened to ``(n, d)`` (images ``N x C x H x W`` become ``N x CHW``).
        y: points ``(m, ...)`` of the same per-point shape, or a :class:`SortedProjections` target (whose
            projections and weights are then used; ``projections``, ``seed`` and ``y_weights`` must be
            left unset).
        n_projections: number of random directions ``P``.
        p: order ``>= 1``.
        seed / generator: where the directions come from (:func:`random_projections`); ``seed=None`` and
            no generator draws from torch's global generator.
        projections: explicit directions ``(P, d)`` (used as given: normalise them for the usual SWD).
        x_weights, y_weights: probability weights (uniform when None).
        max_elements: projected values per chunk of projections (default :data:`MAX_ELEMENTS`).

    Returns:
        a 0-d tensor in ``x``'s dtype on ``x``'s device (``y`` is moved to them), differentiable with
        respect to ``x`` and ``y`` (first order). Exact 1-D matching: sets of different sizes are compared
        without tiling or resampling.

    >>> x = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    >>> float(sliced_wasserstein(x, x))
    0.0
    """
    p = _check_p(p)
    xp = as_points(x, "x")
    if isinstance(y, SortedProjections):
        if projections is not None or y_weights is not None:
            raise InputError("y is a SortedProjections target: its own projections and weights are used")
        if y.meta.get("kind") != "points" or y.meta.get("d") != xp.shape[1]:
            raise InputError(f"target was built for {y.meta}, not for points of dimension {xp.shape[1]}")
        _check_target_tensor(y, xp)
        theta = y.projections
        ys = y
    else:
        yp = as_points(y, "y").to(device=xp.device, dtype=xp.dtype)
        same_dim(xp, yp)
        theta = _get_projections(xp.shape[1], n_projections, seed, generator, projections,
                                 xp.device, xp.dtype)
        ys = _points_side(yp, _weights(y_weights, (yp.shape[0],), "y_weights", xp.device))
    xs = _points_side(xp, _weights(x_weights, (xp.shape[0],), "x_weights", xp.device))
    return _sliced(xs, ys, theta, p, max_elements)


def _check_target_tensor(target: SortedProjections, x: torch.Tensor) -> None:
    if target.values.device != x.device or target.values.dtype != x.dtype:
        raise InputError(f"target is {target.values.dtype} on {target.values.device} but x is {x.dtype} on "
                         f"{x.device}; build the target with the same dtype and device")
