"""Projections of all the patches of image sets, computed as convolutions (:mod:`wganlab.ot.patches` builds its
distances on them): ``<theta_k, P_l x_n>`` is the correlation of image ``x_n`` with the kernel ``theta_k`` at
location ``l``, so patches are never extracted. Groups of :data:`CONV_GROUP` projections per call (the same bits
however the projections are chunked), small groups at several output phases per call, and the direct step's
equal-size matching fused with the convolution (:class:`_MatchedProjection`)."""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from wganlab.checks import positive_int
from wganlab.errors import InputError
from wganlab.ot.sliced import Side
from wganlab.ot.sliced.kernels import equal_match, match_blocks

#: projections per convolution call (one call per group keeps every projection bit-identical however the
#: projections are chunked; CPU convolutions also slow down past ~16 output channels)
CONV_GROUP = 16
#: projected values one convolution call may produce when no gradient is needed (images are chunked)
IMAGE_CHUNK_ELEMENTS = 1 << 22
#: output channels below which a float32 CPU convolution (oneDNN) costs about as much per call as with this many:
#: smaller groups are convolved at ``s x s`` output phases at once, ``s`` the least power of two reaching it
#: (:func:`correlation_blocks`; one thread, 64x64 images, 16x16 kernels, 2 projections: 80 us per projection and
#: image directly, 23 us at s = 2, 10.5 us at s = 4; odd ``s`` measured slower)
PHASE_CHANNELS = 12


def _nonneg_int(v, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise InputError(f"{name}: expected an integer >= 0, got {v!r}")
    return v


def patch_grid(h: int, w: int, patch_size: int, patch_stride: int = 1, padding: int = 0) -> tuple[int, int]:
    """Number of patch positions ``(rows, cols)`` of ``patch_size x patch_size`` patches taken every
    ``patch_stride`` pixels from an ``h x w`` image zero-padded by ``padding`` on each side:
    ``rows = (h + 2 padding - patch_size) // patch_stride + 1`` (and likewise ``cols``); ``L = rows * cols``.

    >>> patch_grid(64, 64, 16, 8)  # the paper's metric: 7 x 7 = 49 locations
    (7, 7)
    """
    patch_size, patch_stride = positive_int(patch_size, "patch_size"), positive_int(patch_stride, "patch_stride")
    padding = _nonneg_int(padding, "padding")
    h, w = positive_int(h, "h"), positive_int(w, "w")
    if h + 2 * padding < patch_size or w + 2 * padding < patch_size:
        raise InputError(f"a {patch_size}x{patch_size} patch does not fit in a {h}x{w} image with padding {padding}")
    return (h + 2 * padding - patch_size) // patch_stride + 1, (w + 2 * padding - patch_size) // patch_stride + 1


def correlation_blocks(images: torch.Tensor, kern: torch.Tensor, patch_stride: int, padding: int, rows: int,
                       cols: int) -> list[tuple[tuple[slice, slice], torch.Tensor]]:
    """``F.conv2d(images, kern, stride=patch_stride, padding=padding)`` ``(b, k, rows, cols)`` as blocks
    ``((row slice, column slice), values (b, k, r, c))`` that tile it.

    With fewer than :data:`PHASE_CHANNELS` kernels (float32 on CPU, oneDNN, larger than 3x3), one convolution of stride
    ``s * patch_stride`` with the ``s^2`` copies of each kernel shifted by ``(a, b) * patch_stride`` computes the
    outputs ``(s Y + a, s X + b)`` as channels (block ``(a::s, b::s)``): ``s^2`` times the channels at ``1/s^2`` of
    the locations, the same values bit for bit (the extra taps add finite pixels times zero; oneDNN sums the taps
    in the same order)."""
    k, c, q, _ = kern.shape
    s = 1
    while k * s * s < PHASE_CHANNELS:
        s *= 2
    # both calls must run oneDNN: torch sends float32 CPU convolutions there when enabled, kernels larger than 3x3
    one_dnn = images.device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
    if s == 1 or images.dtype != torch.float32 or not one_dnn or q <= 3:
        return [((slice(None), slice(None)), F.conv2d(images, kern, stride=patch_stride, padding=padding))]
    size = q + (s - 1) * patch_stride
    bank = kern.new_zeros(k, s, s, c, size, size)
    for a, b in itertools.product(range(s), range(s)):
        bank[:, a, b, :, a * patch_stride:a * patch_stride + q, b * patch_stride:b * patch_stride + q] = kern
    n_r, n_c = -(-rows // s), -(-cols // s)
    h, w = images.shape[2] + 2 * padding, images.shape[3] + 2 * padding
    grow_r, grow_c = max(0, (n_r - 1) * s * patch_stride + size - h), max(0, (n_c - 1) * s * patch_stride + size - w)
    x = F.pad(images, (padding, padding + grow_c, padding, padding + grow_r))
    out = F.conv2d(x, bank.reshape(k * s * s, c, size, size), stride=s * patch_stride)
    out = out.view(images.shape[0], k, s, s, n_r, n_c)
    return [((slice(a, None, s), slice(b, None, s)), out[:, :, a, b, :len(range(a, rows, s)), :len(range(b, cols, s))])
            for a, b in itertools.product(range(min(s, rows)), range(min(s, cols)))]


def project_values(images: torch.Tensor, kern: torch.Tensor, patch_stride: int, padding: int,
                    layout: str) -> torch.Tensor:
    """The projections of :func:`project_patches` without gradient: the images are convolved in chunks written
    straight into one contiguous buffer (the caller sorts it in place), so the peak is that buffer.

    ``layout``: ``"images"`` ``(k, N * L)`` image-major, ``"local"`` ``(k, L, N)``, or ``"any"`` ``(k, N * L)`` in
    an order that only keeps each projection's values in its own row (for a caller that sorts the rows)."""
    n, k = images.shape[0], kern.shape[0]
    rows, cols = patch_grid(images.shape[2], images.shape[3], kern.shape[-1], patch_stride, padding)
    L = rows * cols
    buf = torch.empty((k, rows, cols, n) if layout == "local" else (k, n, rows, cols), dtype=images.dtype,
                      device=images.device)
    step = max(1, IMAGE_CHUNK_ELEMENTS // (min(k, CONV_GROUP) * L))
    with torch.no_grad():
        for i, g in itertools.product(range(0, n, step), range(0, k, CONV_GROUP)):
            blocks = correlation_blocks(images[i:i + step], kern[g:g + CONV_GROUP], patch_stride, padding, rows, cols)
            if layout == "any":  # each block's values, contiguous, where the chunk's images go
                flat, at = buf[g:g + CONV_GROUP, i:i + step].flatten(1), 0
                for _, block in blocks:
                    size = block[:, 0].numel()
                    flat[:, at:at + size].view(block.shape[1], block.shape[0], *block.shape[2:]).copy_(
                        block.transpose(0, 1))
                    at += size
                continue
            part = buf[g:g + CONV_GROUP, :, :, i:i + step].permute(3, 0, 1, 2) if layout == "local" else \
                buf[g:g + CONV_GROUP, i:i + step].transpose(0, 1)
            for (rs, cs), block in blocks:
                part[:, :, rs, cs] = block
    return buf.view(k, L, n) if layout == "local" else buf.view(k, n * L)


class _Projection(torch.autograd.Function):
    """:func:`project_values` with a backward of ONE convolution over all ``k`` projections (the forward
    convolves groups of ``CONV_GROUP`` so that values do not depend on the chunking; a backward per group ran
    ~3x slower: 16x16 kernels, 128 projections, 64 images of 64x64)."""

    @staticmethod
    def forward(ctx, images, kern, patch_stride, padding, local):
        ctx.save_for_backward(images, kern)
        ctx.conf = patch_stride, padding, local
        return project_values(images, kern, patch_stride, padding, "local" if local else "images")

    @staticmethod
    def backward(ctx, grad):
        images, kern = ctx.saved_tensors
        patch_stride, padding, local = ctx.conf
        n, k = images.shape[0], kern.shape[0]
        grid = patch_grid(images.shape[2], images.shape[3], kern.shape[-1], patch_stride, padding)
        g = grad.permute(2, 0, 1) if local else grad.reshape(k, n, -1).transpose(0, 1)
        g = g.reshape(n, k, *grid).contiguous()
        gi = gk = None
        if ctx.needs_input_grad[0]:
            gi = torch.nn.grad.conv2d_input(images.shape, kern, g, stride=patch_stride, padding=padding)
        if ctx.needs_input_grad[1]:
            gk = torch.nn.grad.conv2d_weight(images, kern.shape, g, stride=patch_stride, padding=padding)
        return gi, gk, None, None, None


def _group_values(images: torch.Tensor, kern: torch.Tensor, patch_stride: int, padding: int, rows: int,
                  cols: int) -> torch.Tensor:
    """:func:`correlation_blocks` put together: ``(N, k, rows, cols)``, contiguous."""
    blocks = correlation_blocks(images, kern, patch_stride, padding, rows, cols)
    if len(blocks) == 1:
        return blocks[0][1].contiguous()
    out = images.new_empty(images.shape[0], kern.shape[0], rows, cols)
    for (rs, cs), block in blocks:
        out[:, :, rs, cs] = block
    return out


class _MatchedProjection(torch.autograd.Function):
    """``W_p^p`` of the projections of ``images`` against a fixed sorted target of equal size, :class:`wganlab.ot.
    sliced.EqualPP` fused with the projection: ``(k,)`` against ``w (k, N * L)`` (all patches, image-major as
    :func:`project_values` lays them out), or ``local``, ``(k, L)`` against ``w (k, L, N)`` (location by location).
    Each group's convolution ``(N, CONV_GROUP, L)`` goes to :func:`match_blocks` as it comes (``local``: as
    ``(N, CONV_GROUP L, 1)``, one row of ``N`` atoms per projection and location), and the slopes land in the layout
    the convolution's gradient takes, ``(N, k, rows, cols)``: no buffer of projected values, no transposed copy
    forward or backward (the same bits as the projection then ``EqualPP``). Where the kernels do not apply (not
    float32 on the CPU, no numba, projections that overflow) the projection and :func:`equal_match`."""

    @staticmethod
    def forward(ctx, images, kern, w, p, patch_stride, padding, local):
        n, k = images.shape[0], kern.shape[0]
        rows, cols = patch_grid(images.shape[2], images.shape[3], kern.shape[-1], patch_stride, padding)
        L = rows * cols
        atoms, rows_per = (n, L) if local else (n * L, 1)  # a matched row's atoms; matched rows per projection
        slope, done = images.new_empty(n, k, rows, cols), None
        if images.dtype == w.dtype == torch.float32 and images.device.type == "cpu":
            def part(g):
                values = _group_values(images, kern[g:g + CONV_GROUP], patch_stride, padding, rows, cols)
                return g * rows_per, values.view(n, -1, atoms // n).numpy()
            done = match_blocks(map(part, range(0, k, CONV_GROUP)), w.contiguous().numpy().reshape(-1, atoms), p,
                                slope.view(n, -1, atoms // n).numpy())
        if done is not None and not done[1].any():
            pp = torch.from_numpy(done[0] / atoms).to(images.dtype).view(w.shape[:-1])
        else:
            v = project_values(images, kern, patch_stride, padding, "local" if local else "images")
            pp, flat = equal_match(v, w, p, True)
            slope = (flat.permute(2, 0, 1) if local else flat.view(k, n, L).transpose(0, 1)).unflatten(2, (rows, cols))
        ctx.save_for_backward(kern)
        # the scaling by projection (and location) lines up with the slopes' (N, k, rows, cols)
        ctx.slope, ctx.conf = slope, (images.shape, patch_stride, padding, atoms, (1, k, rows, cols) if local else
                                      (1, k, 1, 1))
        return pp

    @staticmethod
    def backward(ctx, grad):
        (kern,), (shape, patch_stride, padding, atoms, scale_shape) = ctx.saved_tensors, ctx.conf
        slope, ctx.slope = ctx.slope, None  # used up in place
        g = slope.mul_((grad / atoms).view(scale_shape)).contiguous()  # EqualPP's scaling: the mean's factor first
        gi = torch.nn.grad.conv2d_input(shape, kern, g, stride=patch_stride, padding=padding)
        return gi, None, None, None, None, None, None


def project_patches(images: torch.Tensor, theta: torch.Tensor, patch_size: int, patch_stride: int, padding: int,
                    layout: str) -> torch.Tensor:
    """``<theta_k, P_l x_n>`` for every projection, location and image (a convolution), laid out as
    :func:`project_values` says; differentiable with respect to ``images`` and ``theta`` (and then image-major
    for layout ``"any"``)."""
    kern = theta.reshape(theta.shape[0], images.shape[1], patch_size, patch_size)
    if torch.is_grad_enabled() and (images.requires_grad or theta.requires_grad):
        return _Projection.apply(images, kern, patch_stride, padding, layout == "local")
    return project_values(images, kern, patch_stride, padding, layout)


def patch_side(images: torch.Tensor, patch_size: int, patch_stride: int, padding: int, local: bool) -> Side:
    n = images.shape[0]
    rows, cols = patch_grid(images.shape[2], images.shape[3], patch_size, patch_stride, padding)
    L = rows * cols

    def project(data, theta, layout="local" if local else "images"):
        return project_patches(data, theta, patch_size, patch_stride, padding, layout)

    def fused_equal_pp(data, theta, ws, p):
        kern = theta.reshape(theta.shape[0], images.shape[1], patch_size, patch_size)
        return _MatchedProjection.apply(data, kern, ws, p, patch_stride, padding, local)

    if local:
        return Side(images, project, n, (L,), fused_equal_pp=fused_equal_pp)
    return Side(images, project, n * L, project_any_order=lambda data, theta: project(data, theta, "any"),
                fused_equal_pp=fused_equal_pp)
