"""Discriminator-free optimisation: move M free images straight down a Wasserstein distance.

* :func:`wganlab.ot.otmeans.ot_means` minimises the exact image W1 (re-exported here);
* :func:`patch_swd_descent` minimises the patch SWD (or the location-specific patch SWD) by gradient
  descent on the pixels (Elnekave & Weiss section 3, third column of Fig. 3);
* :func:`multiscale_descent` runs OT-Means for the global structure, then patch-SWD descent over an image
  pyramid from coarse to fine (section 5, Fig. 6, appendix D; the schedule follows the authors' GPDM:
  scale factor 0.85, Adam lr 0.01, 300 steps per level, 7x7 patches — defaults here are smaller).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from wganlab.checks import as_tensor
from wganlab.errors import InputError
from wganlab.ot.otmeans import ot_means
from wganlab.ot.patches import image_pyramid, patch_swd, patch_swd_local


@dataclass
class DescentResult:
    images: torch.Tensor  # (M, C, H, W), detached
    trace: list[dict] = field(default_factory=list)  # {"level", "size", "step", "value"} per logged step


def _check_images(x, name: str) -> torch.Tensor:
    x = as_tensor(x, name)
    if x.ndim != 4:
        raise InputError(f"{name}: expected images N x C x H x W, got shape {tuple(x.shape)}")
    return x


def patch_swd_descent(target, init, *, patch_size: int = 7, patch_stride: int = 1, steps: int = 300, lr: float = 0.01,
                      n_projections: int = 128, local: bool = False, target_batch: int | None = None, seed: int = 0,
                      log_every: int = 10, level: int = 0, progress: bool = False) -> DescentResult:
    """Adam on the pixels of ``init (M, C, H, W)`` to minimise ``patch_swd(images, target)`` (or the
    location-specific ``patch_swd_local`` when ``local``). New random projections every step (seeded),
    so the descent sees the whole patch distribution rather than 128 fixed directions; ``target_batch``
    compares each step with a random subset of that many target images (a stochastic estimate of the
    same distance, much cheaper for large targets). The logged value is that step's."""
    target = _check_images(target, "target")
    x = _check_images(init, "init").detach().clone().to(target.device).requires_grad_(True)
    if x.shape[1:] != target.shape[1:]:
        raise InputError(f"init images {tuple(x.shape[1:])} and target images {tuple(target.shape[1:])} differ")
    metric = patch_swd_local if local else patch_swd
    opt = torch.optim.Adam([x], lr=lr)
    g = torch.Generator().manual_seed(seed)
    trace = []
    for step in tqdm(range(steps + 1), desc=f"patch-SWD level {level}", disable=None if progress else True):
        y = target
        if target_batch is not None and target_batch < len(target):
            y = target[torch.randperm(len(target), generator=g)[:target_batch].to(target.device)]
        loss = metric(x, y, patch_size, patch_stride, n_projections=n_projections, seed=seed * 1_000_003 + step)
        if step % log_every == 0 or step == steps:
            trace.append({"level": level, "size": x.shape[-1], "step": step, "value": float(loss.detach())})
        if step == steps:
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return DescentResult(x.detach(), trace)


def multiscale_descent(target, m: int, *, init=None, patch_size: int = 7, patch_stride: int = 1, scale: float = 0.85,
                       min_side: int | None = None, steps_per_level: int = 100, lr: float = 0.01,
                       n_projections: int = 128, target_batch: int | None = None, otmeans_iters: int = 5,
                       otmeans_ot_steps: int = 2, seed: int = 0, progress: bool = False) -> DescentResult:
    """OT-Means (M centroids: global structure), then patch-SWD descent at every level of an image pyramid
    (:func:`wganlab.ot.patches.image_pyramid`, sides ``H * scale^k`` down to ``min_side``, default
    ``2 * patch_size + 1``) from coarse to fine, each level starting from the upsampled result of the previous
    one. ``init`` replaces the OT-Means start."""
    target = _check_images(target, "target")
    if init is None:
        init = ot_means(target, m, n_iter=otmeans_iters, ot_steps=otmeans_ot_steps, seed=seed).centroids
    x = _check_images(init, "init").to(target.device, target.dtype)
    pyramid = image_pyramid(target, scale, min_size=min_side or min(target.shape[-1], 2 * patch_size + 1))
    trace: list[dict] = []
    for level, y in enumerate(reversed(pyramid)):
        x = F.interpolate(x, size=y.shape[2:], mode="bilinear", antialias=True, align_corners=False)
        res = patch_swd_descent(y, x, patch_size=patch_size, patch_stride=patch_stride, steps=steps_per_level, lr=lr,
                                n_projections=n_projections, target_batch=target_batch, seed=seed + level,
                                level=level, progress=progress)
        x = res.images
        trace += res.trace
    return DescentResult(x, trace)


__all__ = ["DescentResult", "multiscale_descent", "ot_means", "patch_swd_descent"]
