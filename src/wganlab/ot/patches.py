"""Patch distances between image sets: patch SWD, location-specific patch SWD, multi-scale patch SWD.

Elnekave & Weiss ("In defense of Wasserstein", sections 3-5, appendix D):

* **patch SWD** — the sliced Wasserstein distance between the set of *all* ``S x S`` patches of all images
  of ``x`` and the set of all patches of all images of ``y`` (the distance a CNN-GAP critic sees, Theorem
  2). Their reported metric: 16x16 patches, stride 8, 128 projections on 64x64 images.
* **location-specific patch SWD** — the mean over the ``L`` patch locations of the SWD between the patches
  of ``x`` at location ``l`` and those of ``y`` at location ``l`` (the distances a CNN-FC critic bounds,
  Theorem 4).
* **multi-scale patch SWD** — the patch SWD at every level of an image pyramid (appendix D).

Conventions: images are ``(N, C, H, W)`` (or ``(N, H, W)``, one channel) in their own pixel scale; a patch
is the vector of its ``C * S * S`` pixels in ``(channel, row, column)`` order (``torch.nn.functional.unfold``
order); the projections are unit vectors in that space, so values are in pixel units, not normalised by
the patch size. The two sets may have different numbers of images (64 generated vs 10,000 training): the
1-D distances are exact quantile matchings (:mod:`wganlab.ot.sliced`), with no tiling of the smaller set
(tiling, as the reference code does, gives the same value when the sizes divide).

Computation: the patches are never extracted; their projections are a convolution of the images with the
projection vectors as kernels (``<theta, P_l x>`` is the correlation of ``x`` with ``theta`` at location
``l``). Chunked over projections so that at most ``max_elements`` projected patch values (summed over both
sets) exist at a time; gradients flow to the images of both sets (first order).
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import torch
import torch.nn.functional as F

from wganlab.checks import as_tensor, positive_int
from wganlab.errors import InputError
from wganlab.ot.sliced import Side, SortedProjections, check_p, check_target_tensor, get_projections, sliced_distance

#: projections per convolution call (one call per group keeps every projection bit-identical however the
#: projections are chunked; CPU convolutions also slow down past ~16 output channels)
CONV_GROUP = 16
#: projected values one convolution call may produce when no gradient is needed (images are chunked)
IMAGE_CHUNK_ELEMENTS = 1 << 22
#: output channels below which a float32 CPU convolution (oneDNN) costs about as much per call as with this many:
#: smaller groups are convolved at ``s x s`` output phases at once, ``s`` the least power of two reaching it
#: (:func:`_correlation_blocks`; one thread, 64x64 images, 16x16 kernels, 2 projections: 80 us per projection and
#: image directly, 23 us at s = 2, 10.5 us at s = 4; odd ``s`` measured slower)
PHASE_CHANNELS = 12

__all__ = [
    "MultiscalePatchSWD",
    "extract_patches",
    "fold_patches",
    "image_pyramid",
    "multiscale_patch_swd",
    "multiscale_patch_target",
    "patch_grid",
    "patch_swd",
    "patch_swd_local",
    "patch_target",
]


def _as_images(x, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    t = as_tensor(x, name, dtype)
    if t.ndim == 3:
        t = t[:, None]
    if t.ndim != 4:
        raise InputError(f"{name}: expected images (N, C, H, W) or (N, H, W), got shape {tuple(t.shape)}")
    return t


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


def extract_patches(x, patch_size: int, patch_stride: int = 1, padding: int = 0) -> torch.Tensor:
    """All ``patch_size x patch_size`` patches of every image: ``(N, C, H, W) -> (N, L, C * patch_size * patch_size)``.

    Locations in row-major order (``l = row * cols + col``), patch entries in ``(channel, row, column)``
    order; zero padding. Differentiable.

    >>> extract_patches(torch.arange(9.0).reshape(1, 1, 3, 3), 2)[0, 3]  # bottom-right 2x2 patch
    tensor([4., 5., 7., 8.])
    """
    x = _as_images(x, "x")
    patch_grid(x.shape[2], x.shape[3], patch_size, patch_stride, padding)
    return F.unfold(x, patch_size, padding=padding, stride=patch_stride).transpose(1, 2)


def fold_patches(patches, image_size: tuple[int, int], patch_size: int, patch_stride: int = 1,
                 padding: int = 0) -> torch.Tensor:
    """Images from their patches ``(N, L, C * patch_size * patch_size) -> (N, C, H, W)``: each pixel is the mean of
    the patch entries that cover it (0 where no patch does). Inverse of :func:`extract_patches`."""
    t = as_tensor(patches, "patches")
    if t.ndim != 3:
        raise InputError(f"patches: expected (N, L, C*patch_size*patch_size), got shape {tuple(t.shape)}")
    h, w = image_size
    rows, cols = patch_grid(h, w, patch_size, patch_stride, padding)
    if t.shape[1] != rows * cols or t.shape[2] % (patch_size * patch_size):
        raise InputError(f"patches of shape {tuple(t.shape)} do not match a {h}x{w} image with "
                         f"{patch_size}x{patch_size} "
                         f"patches, stride {patch_stride}, padding {padding} ({rows * cols} locations)")
    cols_t = t.transpose(1, 2)
    total = F.fold(cols_t, (h, w), patch_size, padding=padding, stride=patch_stride)
    count = F.fold(torch.ones_like(cols_t[:1]), (h, w), patch_size, padding=padding, stride=patch_stride)
    return torch.where(count > 0, total / count.clamp_min(1), torch.zeros_like(total))


def _correlation_blocks(images: torch.Tensor, kern: torch.Tensor, patch_stride: int, padding: int, rows: int,
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


def _project_values(images: torch.Tensor, kern: torch.Tensor, patch_stride: int, padding: int,
                    layout: str) -> torch.Tensor:
    """The projections of :func:`_project` without gradient: the images are convolved in chunks written
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
            blocks = _correlation_blocks(images[i:i + step], kern[g:g + CONV_GROUP], patch_stride, padding, rows, cols)
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
    """:func:`_project_values` with a backward of ONE convolution over all ``k`` projections (the forward
    convolves groups of ``CONV_GROUP`` so that values do not depend on the chunking; a backward per group ran
    ~3x slower: 16x16 kernels, 128 projections, 64 images of 64x64)."""

    @staticmethod
    def forward(ctx, images, kern, patch_stride, padding, local):
        ctx.save_for_backward(images, kern)
        ctx.conf = patch_stride, padding, local
        return _project_values(images, kern, patch_stride, padding, "local" if local else "images")

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


def _project(images: torch.Tensor, theta: torch.Tensor, patch_size: int, patch_stride: int, padding: int,
             layout: str) -> torch.Tensor:
    """``<theta_k, P_l x_n>`` for every projection, location and image (a convolution), laid out as
    :func:`_project_values` says; differentiable with respect to ``images`` and ``theta`` (and then image-major
    for layout ``"any"``)."""
    kern = theta.reshape(theta.shape[0], images.shape[1], patch_size, patch_size)
    if torch.is_grad_enabled() and (images.requires_grad or theta.requires_grad):
        return _Projection.apply(images, kern, patch_stride, padding, layout == "local")
    return _project_values(images, kern, patch_stride, padding, layout)


def _patch_side(images: torch.Tensor, patch_size: int, patch_stride: int, padding: int, local: bool) -> Side:
    n = images.shape[0]
    rows, cols = patch_grid(images.shape[2], images.shape[3], patch_size, patch_stride, padding)
    L = rows * cols

    def project(data, theta, layout="local" if local else "images"):
        return _project(data, theta, patch_size, patch_stride, padding, layout)
    if local:
        return Side(images, project, n, (L,))
    return Side(images, project, n * L, project_any_order=lambda data, theta: project(data, theta, "any"))


def _meta(images: torch.Tensor, patch_size, patch_stride, padding, local) -> dict:
    m = {"kind": "patches-local" if local else "patches", "channels": images.shape[1], "patch_size": patch_size,
         "patch_stride": patch_stride, "padding": padding}
    if local:
        m["image_size"] = tuple(images.shape[2:])
    return m


def patch_target(y, patch_size: int, patch_stride: int = 1, n_projections: int = 128, *, padding: int = 0,
                 local: bool = False, seed: int | None = 0, generator: torch.Generator | None = None,
                 projections=None, max_elements: int | None = None, device=None,
                 dtype: torch.dtype | None = None) -> SortedProjections:
    """Project and sort the patches of a fixed image set once, for repeated :func:`patch_swd` (or, with
    ``local=True``, :func:`patch_swd_local`) calls with the same projections: pass the result as ``y``.

    Memory: ``n_projections * N * L`` values (10,000 images of 28x28, 7x7 patches at stride 1, 128
    projections: 2.5 GB in float32; 64x64 images, 16x16 patches at stride 8: 250 MB).
    """
    y = _as_images(y, "y", dtype)
    if device is not None:
        y = y.to(device)
    y = y.detach()
    d = y.shape[1] * patch_size * patch_size
    theta = get_projections(d, n_projections, seed, generator, projections, y.device, y.dtype)
    side = _patch_side(y, patch_size, patch_stride, padding, local)
    return SortedProjections.from_side(side, theta, max_elements, _meta(y, patch_size, patch_stride, padding, local))


def _prepare(x, y, patch_size, patch_stride, padding, local, n_projections, seed, generator, projections):
    x = _as_images(x, "x")
    if isinstance(y, SortedProjections):
        want = _meta(x, patch_size, patch_stride, padding, local)
        if projections is not None:
            raise InputError("y is a precomputed target: its own projections are used")
        if y.meta != want:
            raise InputError(f"the target was built for {y.meta}, but this call needs {want}")
        check_target_tensor(y, x)
        return _patch_side(x, patch_size, patch_stride, padding, local), y, y.projections
    y = _as_images(y, "y").to(device=x.device, dtype=x.dtype)
    if x.shape[1] != y.shape[1]:
        raise InputError(f"x has {x.shape[1]} channels but y has {y.shape[1]}")
    if local and x.shape[2:] != y.shape[2:]:
        raise InputError("location-specific patch SWD needs images of the same size, got "
                         f"{tuple(x.shape[2:])} and {tuple(y.shape[2:])}")
    d = x.shape[1] * patch_size * patch_size
    theta = get_projections(d, n_projections, seed, generator, projections, x.device, x.dtype)
    return (_patch_side(x, patch_size, patch_stride, padding, local),
            _patch_side(y, patch_size, patch_stride, padding, local), theta)


def patch_swd(x, y, patch_size: int, patch_stride: int = 1, n_projections: int = 128, p: float = 1, *, padding: int = 0,
              seed: int | None = 0, generator: torch.Generator | None = None, projections=None,
              max_elements: int | None = None) -> torch.Tensor:
    """Patch SWD: ``SW_p`` between all ``patch_size x patch_size`` patches of all images of ``x`` and of ``y``.

    ``(mean_theta W_p^p(theta . patches(x), theta . patches(y)))^(1/p)`` with uniform weights over the
    ``N_x * L_x`` and ``N_y * L_y`` patches (the images may differ in number and in size).

    Args:
        x: images ``(N, C, H, W)``; the result is differentiable with respect to them.
        y: images ``(M, C, H', W')``, or a target from :func:`patch_target` (same patch_size, patch_stride, padding).
        patch_size, patch_stride, padding: the patches (zero padding).
        n_projections, seed, generator, projections: directions in patch space (``C * patch_size * patch_size``),
            as in :func:`wganlab.ot.sliced.sliced_wasserstein`.
        p: order ``>= 1``; max_elements: projected values per chunk.

    Returns:
        a 0-d tensor in ``x``'s dtype and on its device.
    """
    p = check_p(p)
    xs, ys, theta = _prepare(x, y, patch_size, patch_stride, padding, False, n_projections, seed, generator,
                             projections)
    return sliced_distance(xs, ys, theta, p, max_elements)


def patch_swd_local(x, y, patch_size: int, patch_stride: int = 1, n_projections: int = 128, p: float = 1, *,
                    padding: int = 0, seed: int | None = 0, generator: torch.Generator | None = None,
                    projections=None, max_elements: int | None = None) -> torch.Tensor:
    """Location-specific patch SWD: ``mean_l SW_p(P_l x, P_l y)`` over the ``L`` patch locations.

    ``SW_p(P_l x, P_l y) = (mean_theta W_p^p(theta . P_l x, theta . P_l y))^(1/p)`` compares the ``N_x``
    patches of ``x`` at location ``l`` with the ``N_y`` patches of ``y`` at the same location; the same
    projections serve every location. ``x`` and ``y`` must have the same image size. Arguments and result
    as in :func:`patch_swd` (a target from ``patch_target(..., local=True)`` may replace ``y``).
    """
    p = check_p(p)
    xs, ys, theta = _prepare(x, y, patch_size, patch_stride, padding, True, n_projections, seed, generator, projections)
    return sliced_distance(xs, ys, theta, p, max_elements)


# ----------------------------------------------------------------------------------------------------------
# multi-scale


def _level_sizes(h: int, w: int, scale: float, levels: int | None, min_size: int) -> list[tuple[int, int]]:
    if not 0 < scale < 1:
        raise InputError(f"scale must be in (0, 1), got {scale}")
    sizes = [(h, w)]
    k = 1
    while levels is None or len(sizes) < levels:
        hk, wk = round(h * scale**k), round(w * scale**k)
        if levels is None and min(hk, wk) < min_size:
            break
        if min(hk, wk) < 1:
            raise InputError(f"level {k} of a {h}x{w} pyramid with scale {scale} has no pixels")
        sizes.append((hk, wk))
        k += 1
    return sizes


def _resize(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[2:]) == tuple(hw):
        return x
    return F.interpolate(x, size=hw, mode="bilinear", antialias=True, align_corners=False)


def image_pyramid(x, scale: float = 0.75, *, levels: int | None = None,
                  min_size: int = 16) -> list[torch.Tensor]:
    """Images at sizes ``round(H * scale^k) x round(W * scale^k)``, finest (``k = 0``, the input) first.

    Every level is resized from the original (antialiased bilinear, ``torch.nn.functional.interpolate``),
    not from the previous level. With ``levels=None`` the pyramid stops before the smaller side drops below
    ``min_size``; otherwise it has exactly ``levels`` levels. Differentiable.
    """
    x = _as_images(x, "x")
    if levels is not None:
        levels = positive_int(levels, "levels")
    sizes = _level_sizes(x.shape[2], x.shape[3], float(scale), levels, positive_int(min_size, "min_size"))
    return [_resize(x, s) for s in sizes]


class MultiscalePatchSWD(NamedTuple):
    """``value`` (0-d tensor: the mean, or sum, of ``per_level``), ``per_level`` (one 0-d tensor per level,
    finest first) and ``sizes`` (the ``(h, w)`` of ``x`` at each level)."""

    value: torch.Tensor
    per_level: list
    sizes: list


def multiscale_patch_target(y, patch_size: int, patch_stride: int = 1, n_projections: int = 128, *, scale: float = 0.75,
                            levels: int | None = None, min_size: int | None = None, local: bool = False,
                            padding: int = 0, seed: int | None = 0, generator: torch.Generator | None = None,
                            projections=None, max_elements: int | None = None) -> list[SortedProjections]:
    """One :func:`patch_target` per pyramid level of ``y`` (same projections at every level), for
    :func:`multiscale_patch_swd`; the number of levels is fixed by ``y``'s patch_size (see :func:`image_pyramid`,
    ``min_size`` defaults to ``2 * patch_size``)."""
    y = _as_images(y, "y").detach()
    pyr = image_pyramid(y, scale, levels=levels, min_size=min_size or 2 * patch_size)
    theta = get_projections(y.shape[1] * patch_size * patch_size, n_projections, seed, generator, projections,
                             y.device, y.dtype)
    return [patch_target(yk, patch_size, patch_stride, padding=padding, local=local, projections=theta,
                         max_elements=max_elements) for yk in pyr]


def multiscale_patch_swd(x, y, patch_size: int, patch_stride: int = 1, n_projections: int = 128, p: float = 1, *,
                         scale: float = 0.75, levels: int | None = None, min_size: int | None = None,
                         local: bool = False, reduction: str = "mean", padding: int = 0,
                         seed: int | None = 0, generator: torch.Generator | None = None, projections=None,
                         max_elements: int | None = None) -> MultiscalePatchSWD:
    """Patch SWD at every level of an image pyramid of ``x`` and ``y`` (Elnekave & Weiss, appendix D).

    Level ``k`` resizes both sets by ``scale^k`` (antialiased bilinear, from the original images; see
    :func:`image_pyramid`) and computes :func:`patch_swd` (or :func:`patch_swd_local` when ``local``) with
    the same ``patch_size x patch_size`` patches and the same projections at every level, so coarser levels compare
    larger structures. Levels: ``levels`` of them, or (``levels=None``) as long as ``x``'s smaller side
    is at least ``min_size`` (default ``2 * patch_size``: about two patches wide). ``y`` may be the list returned
    by :func:`multiscale_patch_target` (its length then sets the number of levels).

    Returns:
        :class:`MultiscalePatchSWD` with ``value`` = the **mean** over levels of the per-level patch SWDs
        (``reduction="sum"``: their sum), the per-level values (finest first, differentiable) and the sizes.
    """
    if reduction not in ("mean", "sum"):
        raise InputError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    p = check_p(p)
    x = _as_images(x, "x")
    metric = patch_swd_local if local else patch_swd
    opts = {"padding": padding, "max_elements": max_elements}
    if isinstance(y, (list, tuple)):
        if not y or not all(isinstance(t, SortedProjections) for t in y):
            raise InputError("y must be images or the list returned by multiscale_patch_target")
        if projections is not None:
            raise InputError("y is a list of precomputed targets: their own projections are used")
        sizes = _level_sizes(x.shape[2], x.shape[3], float(scale), len(y), 1)
        targets = list(y)
    else:
        y = _as_images(y, "y").to(device=x.device, dtype=x.dtype)
        sizes = _level_sizes(x.shape[2], x.shape[3], float(scale),
                             None if levels is None else positive_int(levels, "levels"),
                             positive_int(min_size or 2 * patch_size, "min_size"))
        ratio = [(y.shape[2] * s[0] / x.shape[2], y.shape[3] * s[1] / x.shape[3]) for s in sizes]
        targets = [_resize(y, (max(1, round(a)), max(1, round(b)))) for a, b in ratio]
        opts["projections"] = get_projections(x.shape[1] * patch_size * patch_size, n_projections, seed, generator,
                                               projections, x.device, x.dtype)
    per_level = [metric(_resize(x, s), t, patch_size, patch_stride, p=p, **opts)
                 for s, t in zip(sizes, targets, strict=True)]
    total = torch.stack(per_level).sum()
    value = total / len(per_level) if reduction == "mean" else total
    return MultiscalePatchSWD(value, per_level, sizes)

