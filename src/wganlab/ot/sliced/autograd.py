"""Custom autograd for the sliced distances: ``W_p^p`` between sorted samples with a hand-written backward
(uniform weights: :class:`UniformPP`; weighted: merged breakpoints), and :class:`AttachGrad`, which attaches
gradients computed during the forward pass to the result."""

from __future__ import annotations

import numpy as np
import torch

from wganlab.ot.sliced.kernels import (
    UniformPlan,
    abs_pow,
    blocked_main,
    dabs_pow,
    equal_match,
    gather_runs,
    numpy_ok,
    sum_abs_pow,
    sum_runs,
    uniform_cum,
)


class UniformPP(torch.autograd.Function):
    """``W_p^p`` of two uniform measures from sorted atoms ``us (..., n)``, ``vs (..., m)``, ``n < m``.

    On the CPU, without a gradient for ``vs`` (a fixed target), the main term runs block by block
    (:func:`blocked_main`) and keeps only ``(..., n)`` per-run derivative sums for the backward pass.
    Otherwise one ``(..., m)`` temporary, the differences ``u_{a_j} - v_j``, kept for the backward pass
    (which then works in place on it) only when a gradient is needed. ``m`` may be millions of patches per
    projection, so no other full-size buffer is created.
    """

    @staticmethod
    def forward(ctx, us, vs, p, plan):
        need_u, need_v = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        ctx.p, ctx.plan, ctx.d, ctx.du = p, plan, None, None
        if not need_v and numpy_ok(us) and numpy_ok(vs):
            main, ctx.du = blocked_main(us, vs, p, plan, need_u)
        else:
            d = gather_runs(us, plan).sub_(vs)
            main = sum_abs_pow(d, p, inplace=not (need_u or need_v)) / plan.m
            ctx.d = d if (need_u or need_v) else None
        ctx.save_for_backward(us, vs)
        if plan.js.numel() == 0:
            return main
        vj = vs.index_select(-1, plan.js)
        d_b = (abs_pow(us.index_select(-1, plan.ja + 1) - vj, p)
               - abs_pow(us.index_select(-1, plan.ja) - vj, p))
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
                d = gather_runs(us, plan).sub_(vs)
            gm = dabs_pow(d, p).mul_(g / plan.m)
            if ctx.needs_input_grad[0]:
                gu = sum_runs(gm, plan)
            if ctx.needs_input_grad[1]:
                gv = gm.neg_()
        if plan.js.numel():
            # split pieces: + len_b (|u_{a+1} - v_j|^p - |u_a - v_j|^p)
            vj = vs.index_select(-1, plan.js)
            lb = plan.len_b.to(us.dtype) * g
            g1 = dabs_pow(us.index_select(-1, plan.ja + 1) - vj, p).mul_(lb)
            g0 = dabs_pow(us.index_select(-1, plan.ja) - vj, p).mul_(lb)
            if gu is not None:
                gu.index_add_(-1, plan.ja + 1, g1)
                gu.index_add_(-1, plan.ja, g0.neg())
            if gv is not None:
                gv.index_add_(-1, plan.js, g0 - g1)
        return gu, gv, None, None


class EqualPP(torch.autograd.Function):
    """``W_p^p = mean_j |v_(j) - w_j|^p`` between two uniform measures of equal size, from the UNSORTED atoms
    ``v (..., n)`` (``v_(j)``: the ``j``-th smallest) and the sorted atoms ``w (..., n)`` of a fixed target
    (no gradient). One sort with the permutation and one pass give the value and the slopes
    ``p |v_(j) - w_j|^(p-1) sign(v_(j) - w_j)`` (0 where they tie, as autograd through the sort gives), put back
    in ``v``'s order; the backward pass multiplies them by ``grad / n``: no gather / abs / scatter graph is built."""

    @staticmethod
    def forward(ctx, v, w, p):
        pp, ctx.slope = equal_match(v, w, p, overwrite=True)  # v: the driver's fresh projections
        return pp

    @staticmethod
    def backward(ctx, grad):
        # the mean's factor first, as autograd applies it (for p = 1 the same bits as autograd through the sort)
        slope, ctx.slope = ctx.slope, None
        return slope.mul_((grad / slope.shape[-1]).unsqueeze(-1)), None, None


def pp_uniform(us: torch.Tensor, vs: torch.Tensor, p: float, plan: UniformPlan) -> torch.Tensor:
    """``W_p^p`` between uniform measures given sorted atoms ``us (..., n)`` and ``vs (..., m)``."""
    if plan.swap:
        us, vs = vs, us
    if plan.equal:
        return abs_pow(us - vs, p).mean(-1)
    lead = np.broadcast_shapes(us.shape[:-1], vs.shape[:-1])
    us, vs = us.expand(*lead, us.shape[-1]), vs.expand(*lead, vs.shape[-1])
    return UniformPP.apply(us, vs, p, plan)


def pp_weighted(us, cu, vs, cv, p: float) -> torch.Tensor:
    """``W_p^p`` from sorted atoms and cumulative weights (float64, last entry 1), any sizes.

    Sums ``(t_k - t_{k-1}) |F^-1(t_k) - G^-1(t_k)|^p`` over the merged breakpoints ``t_k``; the quantile
    ``F^-1(t)`` is the first atom whose cumulative weight reaches ``t``.
    """
    lead = np.broadcast_shapes(us.shape[:-1], vs.shape[:-1], cu.shape[:-1], cv.shape[:-1])
    n, m = us.shape[-1], vs.shape[-1]
    us, vs = us.expand(*lead, n), vs.expand(*lead, m)
    cu, cv = cu.expand(*lead, n).contiguous(), cv.expand(*lead, m).contiguous()
    t = torch.sort(torch.cat([cu, cv], dim=-1), dim=-1).values
    dt = torch.diff(t, dim=-1, prepend=torch.zeros_like(t[..., :1]))
    iu = torch.searchsorted(cu, t).clamp_max_(n - 1)
    iv = torch.searchsorted(cv, t).clamp_max_(m - 1)
    d = us.gather(-1, iu) - vs.gather(-1, iv)
    return (abs_pow(d, p) * dt.to(d.dtype)).sum(-1)


def pp_sorted(us, cu, vs, cv, p: float, plan: UniformPlan | None = None) -> torch.Tensor:
    if cu is None and cv is None:
        plan = plan or UniformPlan(us.shape[-1], vs.shape[-1], us.device)
        return pp_uniform(us, vs, p, plan)
    if cu is None:
        cu = uniform_cum(us.shape[-1], (), us.device)
    if cv is None:
        cv = uniform_cum(vs.shape[-1], (), vs.device)
    return pp_weighted(us, cu, vs, cv, p)



class AttachGrad(torch.autograd.Function):
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
