"""The sliced distance driver shared by points and patches: a :class:`Side` per set, chunks of projections,
targets projected and sorted once (:class:`SortedProjections`), gradients accumulated chunk by chunk."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from wganlab.checks import as_points, positive_int, same_dim
from wganlab.errors import InputError
from wganlab.ot.scale import rescaling_exponent, times_pow2
from wganlab.ot.sliced.autograd import AttachGrad, EqualPP, pp_sorted
from wganlab.ot.sliced.kernels import UniformPlan, sort_side
from wganlab.ot.sliced.oned import check_p, checked_weights
from wganlab.ot.sliced.projections import get_projections, matmul_t

#: projected values (summed over both sets) one chunk of projections may hold: 64 M values, i.e. about
#: 0.5-0.8 GB of scratch memory in float32 once the sorted copy and one gathered temporary are counted
MAX_ELEMENTS = 1 << 26


class Side:
    """One set of a sliced problem: a tensor and the linear map that projects it.

    ``project(data, theta (k, d)) -> (k, *batch, n)``: the projected values of the ``n`` atoms for each
    of ``k`` directions (``batch`` is ``()`` for a point set, ``(L,)`` for location-specific patches);
    ``project_any_order``, if given, the same values with each row in any order (cheaper to produce);
    ``fused_equal_pp``, if given, :meth:`equal_pp` with the projection fused into the matching.
    """

    def __init__(self, data: torch.Tensor, project: Callable, n: int, batch: tuple = (),
                 weights: torch.Tensor | None = None, project_any_order: Callable | None = None,
                 fused_equal_pp: Callable | None = None):
        self.data, self.project, self.n, self.batch, self.weights = data, project, n, tuple(batch), weights
        self.project_any_order, self.fused_equal_pp = project_any_order, fused_equal_pp
        self.needs_grad = torch.is_grad_enabled() and data.requires_grad

    def equal_pp(self, data: torch.Tensor, theta: torch.Tensor, ws: torch.Tensor, p: float) -> torch.Tensor:
        """``W_p^p (k, *batch)`` of ``data``'s uniform projections on ``theta (k, d)`` against a fixed uniform
        target of the same size, sorted ``ws (k, *batch, n)``; differentiable with respect to ``data`` and
        ``theta`` (:class:`EqualPP`: one sort, one pass, no autograd graph through the sort)."""
        if self.fused_equal_pp is not None and not theta.requires_grad:
            return self.fused_equal_pp(data, theta, ws, p)
        return EqualPP.apply(self.project(data, theta), ws, p)

    def sorted_values(self, data: torch.Tensor, theta: torch.Tensor):
        """:func:`sort_side` of the projections of ``data`` (this side's tensor, or its detached leaf), sorted in
        place; without weights or gradient they may come from ``project_any_order``."""
        unordered = self.weights is None and not (torch.is_grad_enabled() and data.requires_grad)
        project = self.project_any_order if unordered and self.project_any_order is not None else self.project
        return sort_side(project(data, theta), self.weights, inplace=True)


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
    plain call with the same projections exactly (same bits: the target is projected in the same way; for ``p > 1``
    on data far from unit scale, rescaled by powers of two chosen from each call's own view of the data, to
    rounding).

    Memory: ``P * m`` values in the target's dtype (10,000 MNIST images, 7x7 patches at stride 1 and
    128 projections: 4.8 M patches -> 2.5 GB in float32), plus the same again in float64 if weighted.

    >>> y = torch.randn(100, 5)
    >>> t = SortedProjections(y, 16, seed=3)
    >>> bool(sliced_wasserstein(y[:7], t) == sliced_wasserstein(y[:7], y, 16, seed=3))
    True
    """

    def __init__(self, y, n_projections: int = 128, *, seed: int | None = 0,
                 generator: torch.Generator | None = None, projections=None, b=None,
                 max_elements: int | None = None, device=None, dtype: torch.dtype | None = None):
        y = as_points(y, "y", dtype)
        if device is not None:
            y = y.to(device)
        theta = get_projections(y.shape[1], n_projections, seed, generator, projections, y.device, y.dtype)
        w = checked_weights(b, (y.shape[0],), "b", y.device)
        side = points_side(y.detach(), w)
        self._fill(side, theta, max_elements, {"kind": "points", "d": y.shape[1]})

    @classmethod
    def from_side(cls, side: Side, theta: torch.Tensor, max_elements: int | None, meta: dict):
        obj = cls.__new__(cls)
        obj._fill(side, theta, max_elements, meta)
        return obj

    def _fill(self, side: Side, theta: torch.Tensor, max_elements, meta: dict) -> None:
        P = theta.shape[0]
        per = math.prod(side.batch) * side.n
        k = _chunk_size(P, per, max_elements)
        self.projections = theta
        self.values = torch.empty((P, *side.batch, side.n), dtype=side.data.dtype, device=side.data.device)
        self.cum_weights = None if side.weights is None else torch.empty(
            self.values.shape, dtype=torch.float64, device=self.values.device)
        with torch.no_grad():
            for i, j in _chunks(P, k):
                vs, cw = side.sorted_values(side.data, theta[i:j])
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

    def _plan(self, n: int) -> UniformPlan:
        if n not in self._plans:
            self._plans = {n: UniformPlan(n, self.n, self.values.device)}
        return self._plans[n]

    def __repr__(self) -> str:
        return (f"SortedProjections({self.meta.get('kind')}, n_projections={self.n_projections}, "
                f"atoms={self.n}, batch={self.batch}, {self.nbytes / 2**20:.1f} MiB)")


def points_side(x: torch.Tensor, w: torch.Tensor | None) -> Side:
    return Side(x, lambda data, theta: matmul_t(data, theta).T, x.shape[0], (), w)


def sliced_distance(xs: Side, ys: Side | SortedProjections, theta: torch.Tensor, p: float,
            max_elements: int | None) -> torch.Tensor:
    """``mean_b ( mean_theta W_p^p(theta . x_b, theta . y_b) )^(1/p)`` over the batch ``b`` of the sides.

    Chunked over projections; gradients with respect to the sides' tensors are computed chunk by chunk
    (local autograd on detached leaves) and attached to the result by :class:`AttachGrad`.
    """
    cached = isinstance(ys, SortedProjections)
    P = theta.shape[0]
    batch = xs.batch
    B = math.prod(batch)
    k = _chunk_size(P, B * (xs.n + ys.n), max_elements)
    plan = None
    if xs.weights is None and (ys.cum_weights if cached else ys.weights) is None:
        plan = ys._plan(xs.n) if cached else UniformPlan(xs.n, ys.n, xs.data.device)
    # for p > 1, sides whose spread is far from 1 are compared with the directions multiplied by 2^-e (exact, as the
    # projected values are), the distance and its gradient by 2^e afterwards: |d|^p would overflow or underflow
    e = 0 if p == 1 else _rescaling_exponent(xs, ys, cached)
    theta = times_pow2(theta, -e)
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
        if cached:
            vs = times_pow2(ys.values[i:j], -e)
            cv = None if ys.cum_weights is None else ys.cum_weights[i:j]
        else:
            vs, cv = ys.sorted_values(y_in, theta[i:j])
        grad = torch.is_grad_enabled() and (x_in.requires_grad or theta.requires_grad)
        if plan is not None and plan.equal and grad and not vs.requires_grad and vs.shape == (j - i, *batch, xs.n):
            return xs.equal_pp(x_in, theta[i:j], vs, p)  # a generated batch against a fixed one of its size
        px = xs.project(x_in, theta[i:j])
        us, cu = sort_side(px, xs.weights, inplace=True)
        return pp_sorted(us, cu, vs, cv, p, plan)

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
    value = times_pow2((s if p == 1 else s.clamp_min(0) ** (1.0 / p)).mean(), e)
    if not leaves:
        return value
    grads = [None if g is None else times_pow2(g, e) for g in grads]
    gx = grads[0] if want_x else None
    gy = grads[-1] if want_y else None
    gx = torch.zeros_like(xs.data) if (want_x and gx is None) else gx
    gy = torch.zeros_like(ys.data) if (want_y and gy is None) else gy
    y_arg = ys.data if want_y else None
    return AttachGrad.apply(value, xs.data if want_x else None, y_arg, gx, gy)


def _rescaling_exponent(xs: Side, ys: Side | SortedProjections, cached: bool) -> int:
    """:func:`wganlab.ot.scale.rescaling_exponent` of every value of both sides (of a target: its sorted projected
    values' first and last)."""
    parts = [xs.data.detach()] + ([ys.values[..., 0], ys.values[..., -1]] if cached else [ys.data.detach()])
    return rescaling_exponent(*(t.reshape(-1, 1) for t in parts))


def sliced_wasserstein(x, y, n_projections: int = 128, p: float = 1, *, seed: int | None = 0,
                       generator: torch.Generator | None = None, projections=None, a=None, b=None,
                       max_elements: int | None = None) -> torch.Tensor:
    """Sliced Wasserstein distance ``SW_p(x, y) = (mean_theta W_p^p(theta . x, theta . y))^(1/p)``.

    Args:
        x: points ``(n, ...)``, flattened to ``(n, d)`` (images ``N x C x H x W`` become ``N x CHW``).
        y: points ``(m, ...)`` of the same per-point shape, or a :class:`SortedProjections` target (whose
            projections and weights are then used; ``projections``, ``seed`` and ``b`` must be
            left unset).
        n_projections: number of random directions ``P``.
        p: order ``>= 1``.
        seed / generator: where the directions come from (:func:`random_projections`); ``seed=None`` and
            no generator draws from torch's global generator.
        projections: explicit directions ``(P, d)`` (used as given: normalise them for the usual SWD).
        a, b: probability weights of ``x`` and ``y`` (uniform when None).
        max_elements: projected values per chunk of projections (default :data:`MAX_ELEMENTS`).

    Returns:
        a 0-d tensor in ``x``'s dtype on ``x``'s device (``y`` is moved to them), differentiable with
        respect to ``x`` and ``y`` (first order). Exact 1-D matching: sets of different sizes are compared
        without tiling or resampling.

    >>> x = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    >>> float(sliced_wasserstein(x, x))
    0.0
    """
    p = check_p(p)
    xp = as_points(x, "x")
    if isinstance(y, SortedProjections):
        if projections is not None or b is not None:
            raise InputError("y is a SortedProjections target: its own projections and weights are used")
        if y.meta.get("kind") != "points" or y.meta.get("d") != xp.shape[1]:
            raise InputError(f"target was built for {y.meta}, not for points of dimension {xp.shape[1]}")
        check_target_tensor(y, xp)
        theta = y.projections
        ys = y
    else:
        yp = as_points(y, "y").to(device=xp.device, dtype=xp.dtype)
        same_dim(xp, yp)
        theta = get_projections(xp.shape[1], n_projections, seed, generator, projections,
                                 xp.device, xp.dtype)
        ys = points_side(yp, checked_weights(b, (yp.shape[0],), "b", xp.device))
    xs = points_side(xp, checked_weights(a, (xp.shape[0],), "a", xp.device))
    return sliced_distance(xs, ys, theta, p, max_elements)


def check_target_tensor(target: SortedProjections, x: torch.Tensor) -> None:
    if target.values.device != x.device or target.values.dtype != x.dtype:
        raise InputError(f"target is {target.values.dtype} on {target.values.device} but x is {x.dtype} on "
                         f"{x.device}; build the target with the same dtype and device")
