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

from typing import NamedTuple

import torch
import torch.nn.functional as F

from wganlab.checks import as_tensor, positive_int
from wganlab.errors import InputError
from wganlab.ot.patch_conv import patch_grid, patch_side
from wganlab.ot.sliced import SortedProjections, check_p, check_target_tensor, get_projections, sliced_distance

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
    side = patch_side(y, patch_size, patch_stride, padding, local)
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
        return patch_side(x, patch_size, patch_stride, padding, local), y, y.projections
    y = _as_images(y, "y").to(device=x.device, dtype=x.dtype)
    if x.shape[1] != y.shape[1]:
        raise InputError(f"x has {x.shape[1]} channels but y has {y.shape[1]}")
    if local and x.shape[2:] != y.shape[2:]:
        raise InputError("location-specific patch SWD needs images of the same size, got "
                         f"{tuple(x.shape[2:])} and {tuple(y.shape[2:])}")
    d = x.shape[1] * patch_size * patch_size
    theta = get_projections(d, n_projections, seed, generator, projections, x.device, x.dtype)
    return (patch_side(x, patch_size, patch_stride, padding, local),
            patch_side(y, patch_size, patch_stride, padding, local), theta)


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

