"""The metric registry: name -> distance between two point/image sets.

One table shared by ``wganlab distance``, the training loop's tracking and the experiments, so a
number called ``w1`` means the same thing everywhere. Each metric takes ``(x, y, **options)`` and
returns a dict with at least ``value``; :func:`compute` validates the options and adds ``metric``.

Conventions: ``w1``/``w2`` are exact (certified) Wasserstein distances between the flattened sets in
the input's pixel scale (with ``gap`` and ``solver``); ``swd`` is the sliced W1 (mean over projections); the
patch metrics work on images ``N x C x H x W``; ``sinkhorn`` is the debiased Sinkhorn divergence with
Euclidean ground cost. Weights are ``a`` (of ``x``) and ``b`` (of ``y``). An approximate metric says what it
is: the sliced ones their ``n_projections`` and ``seed``, ``sinkhorn`` its ``eps``, ``iterations``,
``marginal_error`` and ``converged``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from wganlab.config import renamed_key_error
from wganlab.errors import InputError
from wganlab.memory import check_memory


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[..., dict]
    description: str
    options: dict  # option name -> default
    needs_images: bool = False
    prepare: Callable[..., object] | None = None  # (y, **options) -> a reusable form of a fixed set y
    memory: Callable[[int, int, int], float] | None = None  # (n, m, d) -> bytes it needs at least


METRICS: dict[str, Metric] = {}


def register_metric(name: str, description: str, needs_images: bool = False, prepare=None, memory=None, **options):
    """Decorator: register ``fn(x, y, **options) -> dict`` under ``name`` with option defaults; ``prepare``
    (optional) turns a fixed ``y`` into a target ``fn`` accepts in its place (see :func:`target`); ``memory``
    (optional) bounds from below the bytes it needs for ``n`` and ``m`` points in dimension ``d``, checked
    against the memory available before the work."""

    def wrap(fn):
        METRICS[name] = Metric(name, fn, description, dict(options), needs_images, prepare, memory)
        return fn

    return wrap


def get_metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise InputError(f"unknown metric {name!r}; choose one of {', '.join(METRICS)}") from None


def _checked(name: str, options: dict) -> Metric:
    """The metric ``name``; an option it does not take is an error (it would be silently ignored otherwise)."""
    metric = get_metric(name)
    unknown = sorted(set(options) - set(metric.options))
    for key in unknown:
        if (err := renamed_key_error(key, metric.options)) is not None:
            raise err
    if unknown:
        takes = ", ".join(metric.options) or "no options"
        raise InputError(f"option(s) {', '.join(unknown)} do not apply to metric {name!r} "
                         f"(it takes: {takes})")
    return metric


def _need_images(metric: Metric, label: str, s) -> None:
    if metric.needs_images and getattr(s, "ndim", 0) != 4:
        raise InputError(f"metric {metric.name!r} needs images N x C x H x W; {label} has shape "
                         f"{tuple(getattr(s, 'shape', ()))}")


@dataclass(frozen=True)
class Target:
    """A fixed set prepared once (:func:`target`) for repeated :func:`compute` calls of one metric."""

    name: str
    options: dict
    value: object


def target(name: str, y, **options) -> Target:
    """``y`` prepared for repeated ``compute(name, x, target)`` calls with these ``options``: the sliced and
    patch metrics project and sort ``y`` once, the exact ones make its float32 copy for the solver once (same
    values as the plain calls); the others keep ``y``."""
    metric = _checked(name, options)
    _need_images(metric, "y", y)
    opts = {**metric.options, **options}
    return Target(name, opts, metric.prepare(y, **opts) if metric.prepare else y)


def compute(name: str, x, y, **options) -> dict:
    """Evaluate metric ``name`` between sets ``x`` and ``y`` (or a :func:`target` made for this metric and
    these options); options not given take their defaults."""
    metric = _checked(name, options)
    opts = {**metric.options, **options}
    _need_images(metric, "x", x)
    if isinstance(y, Target):
        if (y.name, y.options) != (name, opts):
            raise InputError(f"the target was prepared for metric {y.name!r} with {y.options}, not for "
                             f"{name!r} with {opts}")
        y = y.value
    else:
        _need_images(metric, "y", y)
        sx, sy = tuple(getattr(x, "shape", ())), tuple(getattr(y, "shape", ()))
        if metric.memory is not None and sx and sy:
            n, m, d = sx[0], sy[0], math.prod(sx[1:])
            check_memory(metric.memory(n, m, d), f"metric {name!r} between {n:,} and {m:,} points of dimension {d:,}")
    return {"metric": name, **metric.fn(x, y, **opts)}


def _exact_memory(n: int, m: int, d: int) -> float:
    """A lower bound of the exact engine's memory: float64 copies of both sets, and for each point its
    potential and tens of arcs."""
    return (n + m) * (16 * d + 256)


def _exact_target(y, a, b):
    from wganlab.ot.exact import prepare_points

    return prepare_points(y)


@register_metric("w1", "exact Wasserstein-1 (Euclidean, certified optimal)", prepare=_exact_target,
                 memory=_exact_memory, a=None, b=None)
def _w1(x, y, a, b):
    from wganlab.ot.exact import wasserstein

    r = wasserstein(x, y, p=1, a=a, b=b)
    return {"value": r.value, "gap": r.gap, "solver": r.solver}


@register_metric("w2", "exact Wasserstein-2 (Euclidean, certified optimal)", prepare=_exact_target,
                 memory=_exact_memory, a=None, b=None)
def _w2(x, y, a, b):
    from wganlab.ot.exact import wasserstein

    r = wasserstein(x, y, p=2, a=a, b=b)
    return {"value": r.value, "gap": r.gap, "solver": r.solver}


def _swd_target(y, n_projections, seed):
    from wganlab.ot.sliced import SortedProjections

    return SortedProjections(y, n_projections, seed=seed)


def _patch_target(local: bool):
    def prepare(y, patch_size, patch_stride, n_projections, seed):
        from wganlab.ot.patches import patch_target

        return patch_target(y, patch_size, patch_stride, n_projections, local=local, seed=seed)

    return prepare


@register_metric("swd", "sliced Wasserstein-1 between the flattened sets", prepare=_swd_target, n_projections=128,
                 seed=0)
def _swd(x, y, n_projections, seed):
    from wganlab.ot.sliced import sliced_wasserstein

    return {"value": float(sliced_wasserstein(x, y, n_projections=n_projections, seed=seed)),
            "n_projections": n_projections, "seed": seed}


@register_metric("patch-swd", "SWD between all patches of the two image sets", needs_images=True,
                 prepare=_patch_target(local=False), patch_size=7, patch_stride=1, n_projections=128, seed=0)
def _patch_swd(x, y, patch_size, patch_stride, n_projections, seed):
    from wganlab.ot.patches import patch_swd

    return {"value": float(patch_swd(x, y, patch_size, patch_stride, n_projections=n_projections, seed=seed)),
            "n_projections": n_projections, "seed": seed}


@register_metric("patch-swd-local", "mean over patch locations of the per-location patch SWD",
                 needs_images=True, prepare=_patch_target(local=True), patch_size=7, patch_stride=1, n_projections=128,
                 seed=0)
def _patch_swd_local(x, y, patch_size, patch_stride, n_projections, seed):
    from wganlab.ot.patches import patch_swd_local

    return {"value": float(patch_swd_local(x, y, patch_size, patch_stride, n_projections=n_projections, seed=seed)),
            "n_projections": n_projections, "seed": seed}


@register_metric("sinkhorn", "debiased Sinkhorn divergence S_eps, Euclidean cost", eps=1.0,
                 a=None, b=None)
def _sinkhorn(x, y, eps, a, b):
    from wganlab.ot.sinkhorn import sinkhorn_divergence_terms

    terms = sinkhorn_divergence_terms(x, y, eps, a=a, b=b)
    return {"value": float(terms.value), **terms.report()}
