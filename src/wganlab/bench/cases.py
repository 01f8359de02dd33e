"""The bench's case registry and its exact-OT, patch-SWD and OT-Means cases (the training cases are in
:mod:`wganlab.bench.train_cases`).

Every case loads its data, then runs wganlab and its baseline on the same inputs with
:class:`~wganlab.bench.timing.PairedTimer`, and returns rows: ``ratio`` = baseline time / wganlab time
(above 1: wganlab is faster); ``value_diff`` = ``|wganlab - baseline| / |baseline|``, the largest over the
values the row compares; ``gap_rel`` = the certificate of wganlab's exact solution (relative duality gap).
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Callable
from dataclasses import dataclass

from wganlab.bench.baselines import plain_ot_means, plain_patch_swd, plain_patch_swd_local, pot_w1
from wganlab.bench.timing import PairedTimer, rel_diff, timed_row
from wganlab.config import renamed_key_error
from wganlab.errors import ConfigError
from wganlab.memory import proc_kb


@dataclass(frozen=True)
class Case:
    """A benchmark: ``run(ctx, **sizes) -> rows``; ``sizes`` are the defaults, ``full`` the paper sizes;
    ``in_default``: part of the default selection (``--full`` and named selections take any case)."""

    name: str
    description: str
    baseline: str
    run: Callable[..., list[dict]]
    sizes: dict
    full: dict
    in_default: bool = True


CASES: dict[str, Case] = {}


def register_case(name: str, description: str, baseline: str, full: dict, in_default: bool = True, **sizes):
    """Decorator: register ``fn(ctx, **sizes) -> list of rows`` as case ``name``."""

    def wrap(fn):
        CASES[name] = Case(name, description, baseline, fn, dict(sizes), {**sizes, **full}, in_default)
        return fn

    return wrap


def _matching(name: str) -> list[str]:
    """``[name]``, or the cases a name with ``*`` matches (in registry order)."""
    if "*" not in name:
        return [name]
    hits = [c for c in CASES if fnmatch.fnmatchcase(c, name)]
    if not hits:
        raise ConfigError(f"no bench case matches {name!r}; choose from {', '.join(CASES)}")
    return hits


def describe_sizes(sizes: dict) -> str:
    """``key=value`` pairs as ``--set`` takes them (lists comma-separated)."""
    return " ".join(f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in sizes.items())


def resolve_sizes(names: list[str] | None, full: bool = False,
                  overrides: dict[str, dict[str, str]] | None = None) -> dict[str, dict]:
    """Case name -> sizes: defaults (or ``full``), then ``overrides`` ``{case: {key: "text"}}`` parsed as
    positive integers (a comma-separated list where the size is a list). No ``names``: the default
    selection, or every case with ``full``; a name with ``*`` selects every case it matches (``train-*``)."""
    names = list(names or [c.name for c in CASES.values() if full or c.in_default])
    names = [c for name in names for c in _matching(name)]
    for name in [*names, *(overrides or {})]:
        if name not in CASES:
            raise ConfigError(f"unknown bench case {name!r}; choose from {', '.join(CASES)}")
    out = {name: dict(CASES[name].full if full else CASES[name].sizes) for name in names}
    for name, kv in (overrides or {}).items():
        if name not in out:
            raise ConfigError(f"--set {name}.*: case {name!r} is not selected")
        for key, text in kv.items():
            if key not in out[name]:
                if (err := renamed_key_error(key, out[name])) is not None:
                    raise err
                raise ConfigError(f"case {name!r} has no size {key!r}; it takes: {', '.join(out[name])}")
            parts = text.split(",") if isinstance(out[name][key], tuple) else [text]
            if not all(p.strip().isdigit() and int(p) > 0 for p in parts):
                raise ConfigError(f"{name}.{key}={text!r}: expected positive integer(s)")
            values = tuple(int(p) for p in parts)
            out[name][key] = values if isinstance(out[name][key], tuple) else values[0]
    return out



# ----------------------------------------------------------------------------------------------------------
# the cases


def _exact_row(ctx: PairedTimer, x, y, baseline: bool = True, a=None, b=None, label: str = "") -> dict:
    from wganlab.ot import wasserstein

    t = ctx.time(lambda: wasserstein(x, y, a=a, b=b), (lambda: pot_w1(x, y, a, b)) if baseline else None)
    res = t["ours"]
    diff = rel_diff(res.value, t["base"]) if baseline else None
    gemm, kind = _distance_pass_seconds(ctx, x, y)
    side = f" ({x.shape[-2]}x{x.shape[-1]})" if x.ndim == 4 and x.shape[-1] != 28 else ""
    what = "int8 grid bounds (8-bit data)" if kind == "grid" else "float32 distances (GEMM and lower bounds)"
    return timed_row(t, f"{len(x)} x {len(y)}{side}{label}", diff, res.gap_rel, value=res.value, gemm_s=gemm,
                     note=f"{res.solver}; the {what} of every pair alone, once: {gemm:.3g} s, "
                          f"{100 * gemm / t['ours_s']:.0f} % of wganlab's solve")


def _distance_pass_seconds(ctx: PairedTimer, x, y) -> tuple[float, str]:
    """``(best seconds, kind)`` of the sparse engine's bounds for every pair of ``x``, ``y``, each block computed
    once: the integer bounds of :mod:`wganlab.ot.exact.grid` where both sets lie on a grid of 256 levels, else the
    float32 distance blocks (GEMM and rigorous lower bounds): the arithmetic a solve that checks every pair cannot
    avoid."""
    from wganlab.ot.exact import blocks, grid, points

    Y = points.Points(y.reshape(len(y), -1).numpy())
    xs = x.reshape(len(x), -1).numpy()
    on_grid = grid.distances(xs, Y, squared=False) is not None

    def every_block():
        dist = grid.distances(xs, Y, squared=False) if on_grid else \
            blocks.Distances(points.Points(xs, Y.mu), Y, squared=False)
        dist.cache = None
        for _ in dist.blocks():
            pass

    return ctx.time(every_block)["ours_s"], "grid" if on_grid else "float32"


@register_case("w1-square", "exact W1 between M = N = n Fashion-MNIST images at each side length of sides "
               "(28: d = 784; 64: the authors' d = 4,096): test vs train, two seeded training subsets above 10,000",
               "POT ot.dist + ot.emd2", full={"n": 10_000, "sides": (28, 64)}, n=2_000, sides=(28,))
def _w1_square(ctx: PairedTimer, n: int, sides: tuple) -> list[dict]:
    return [_exact_row(ctx, ctx.images("test", n, size=_resized(s)) if n <= 10_000 else
                       ctx.images("train", n, seed=1, size=_resized(s)), ctx.images("train", n, size=_resized(s)))
            for s in sides]


@register_case("w1-batch", "exact W1 between M = m test images and N = each of ns training images, at each "
               "side length of sides", "POT ot.dist + ot.emd2", full={"ns": (10_000, 60_000), "sides": (28, 64)},
               m=64, ns=(10_000,), sides=(28,))
def _w1_batch(ctx: PairedTimer, m: int, ns: tuple, sides: tuple) -> list[dict]:
    return [_exact_row(ctx, ctx.images("test", m, size=_resized(s)), ctx.images("train", n, size=_resized(s)))
            for s in sides for n in ns]


def _resized(side: int) -> int | None:
    """The ``size`` argument of :meth:`PairedTimer.images` for a side length (None: Fashion-MNIST's own 28)."""
    return None if side == 28 else side


@register_case("w1-weighted", "exact W1 between two seeded samples of n points of a Gaussian in d = 10 (float32), each "
               "point weighted by a uniform draw from [0.5, 1.5] (normalised), and by draws from Dirichlet(0.5) (far "
               "from uniform: engine='auto' runs POT)", "POT ot.dist + ot.emd2", full={"n": 5_000}, n=2_000)
def _w1_weighted(ctx: PairedTimer, n: int) -> list[dict]:
    import numpy as np
    import torch

    r = np.random.default_rng(1)
    x, y = (torch.from_numpy(r.normal(size=(n, 10)).astype(np.float32)) for _ in range(2))
    a, b = (w / w.sum() for w in r.uniform(0.5, 1.5, size=(2, n)))
    skewed = r.dirichlet(np.full(n, 0.5), size=2)
    return [_exact_row(ctx, x, y, a=a, b=b), _exact_row(ctx, x, y, a=skewed[0], b=skewed[1], label=", Dirichlet(0.5)")]


@register_case("w1-large", "exact W1 between two sets of n training images (seeded subsets) at each side length "
               "of sides, wganlab only", "POT (not run)", full={"n": 50_000, "sides": (28, 64)}, n=3_000, sides=(28,))
def _w1_large(ctx: PairedTimer, n: int, sides: tuple) -> list[dict]:
    need = 16 * n * n  # float64 cost matrix + float64 plan
    total = (proc_kb("/proc/meminfo", "MemTotal") or 0) * 1024
    verdict = "out of memory here" if need > total else "fits here, not run"
    rows = [_exact_row(ctx, ctx.images("train", n, seed=1, size=_resized(s)),
                       ctx.images("train", n, seed=2, size=_resized(s)), baseline=False) for s in sides]
    return [{**row, "note": f"POT needs 16 n^2 bytes = {need / 1e9:.3g} GB for the dense cost and plan "
                            f"({verdict}); {row['note']}"} for row in rows]


def low_dimensional_points(kind: str, n: int, seed: int, shift: float = 0.0):
    """``n`` points in R^5 (a fixed rotation) of intrinsic dimension 1 or 2: ``circle`` (the unit circle),
    ``plane`` (the unit square), ``line+SIZE`` such as ``line+1e-3`` (the unit interval plus Gaussian noise of
    that size in the 4 other coordinates; 1e-3 and 1e-6 are above / below the spacing of 11,000 points);
    ``gauss10``: Gaussians in d = 10, the generic data of the comparison. ``shift``: added to the first
    coordinate (along the line) before the rotation."""
    import numpy as np

    r = np.random.default_rng(seed)
    if kind == "gauss10":
        z = r.normal(size=(n, 10))
        z[:, 0] += shift
        return z
    z = np.zeros((n, 5))
    if kind == "circle":
        t = r.uniform(0, 2 * np.pi, n)
        z[:, 0], z[:, 1] = np.cos(t), np.sin(t)
    elif kind == "plane":
        z[:, :2] = r.uniform(size=(n, 2))
    else:
        z[:, 0] = r.uniform(size=n)
        z[:, 1:] = float(kind.split("+")[1]) * r.normal(size=(n, 4))
    z[:, 0] += shift
    return z @ np.linalg.qr(np.random.default_rng(0).normal(size=(5, 5)))[0].T


#: the data sets of ``w1-low-dim``: (kind of :func:`low_dimensional_points`, shift of the second sample)
LOW_DIM_SETS = (("circle", 0.0), ("plane", 0.0), ("line+1e-3", 0.0), ("line+1e-6", 0.0), ("line+1e-6", 0.3),
                ("line+1e-4", 0.3), ("line+1e-2", 0.3), ("line+1e-1", 0.3), ("gauss10", 10.0))


@register_case("w1-low-dim", "exact W1 and W2 between two samples of n points of a curve or a plane in R^5, and "
               "of sets far apart, against the same solve on Gaussian samples in d = 10 (generic data of the same "
               "size)", "wganlab on Gaussians in d = 10", full={"n": 11_000}, in_default=False, n=4_000)
def _w1_low_dim(ctx: PairedTimer, n: int) -> list[dict]:
    from wganlab.ot import wasserstein

    gx, gy = low_dimensional_points("gauss10", n, 1), low_dimensional_points("gauss10", n, 2)
    rows = []
    for kind, shift in LOW_DIM_SETS:
        x, y = low_dimensional_points(kind, n, 1), low_dimensional_points(kind, n, 2, shift)
        name = f"{kind} shifted by {shift:g}" if shift else kind
        for p in (1, 2):
            t = ctx.time(functools.partial(wasserstein, x, y, p=p), functools.partial(wasserstein, gx, gy, p=p))
            res = t["ours"]
            rows.append(timed_row(t, f"{name}, {n} x {n}, p = {p}", None, res.gap_rel, value=res.value,
                                  note=f"{name} p = {p}: {res.solver}, prices {res.info.get('prices', '-')}, "
                                       f"{res.info.get('rounds', '-')} pricing rounds"))
    return rows


def _patch_setup(ctx: PairedTimer, n: int, batches: int, n_projections: int):
    from wganlab.ot.sliced import random_projections

    y = ctx.images("train", n)
    xs = [ctx.images("test", 64, seed=i) for i in range(batches)]
    return y, xs, random_projections(49, n_projections, seed=0)


@register_case("patch-swd", "patch SW1 between 64 images and n images: all 7x7 patches at stride 1",
               "plain torch (unfold, project, sort)", full={"n": 10_000}, n=1_000, n_projections=128)
def _patch_swd(ctx: PairedTimer, n: int, n_projections: int) -> list[dict]:
    from wganlab.ot.patches import patch_swd

    y, (x,), theta = _patch_setup(ctx, n, 1, n_projections)
    t = ctx.time(lambda: float(patch_swd(x, y, 7, 1, projections=theta)),
                 lambda: plain_patch_swd(x, y, theta, 7, 1))
    return [timed_row(t, f"64 x {n} images, {n_projections} proj.", rel_diff(t["ours"], t["base"]), value=t["ours"])]


def _patch_batches(ctx: PairedTimer, n: int, batches: int, baseline_batches: int, n_projections: int,
                   grad: bool) -> list[dict]:
    """Patch SW1 (and with ``grad`` its gradient with respect to the batch) of ``batches`` batches of 64
    against the same ``n`` images: wganlab sorts the target once, the baseline redoes it per batch."""
    import torch

    from wganlab.ot.patches import patch_swd, patch_target

    y, xs, theta = _patch_setup(ctx, n, batches, n_projections)
    nb = min(batches, baseline_batches)

    def ours():
        target = patch_target(y, 7, 1, projections=theta)
        out = []
        for x in xs:
            xg = x.clone().requires_grad_(grad)
            v = patch_swd(xg, target, 7, 1)
            out.append((float(v.detach()), torch.autograd.grad(v, xg)[0] if grad else None))
        return out

    def base():
        out = []
        for x in xs[:nb]:
            xg = x.clone().requires_grad_(grad)
            out.append((plain_patch_swd(xg, y, theta, 7, 1), xg.grad))
        return out

    t = ctx.time(ours, base)
    ours_out, base_out = t["ours"][:nb], t["base"]
    t = {**t, "ours_s": t["ours_s"] / batches, "base_s": t["base_s"] / nb}
    note = (f"seconds per batch; wganlab builds the sorted target once (included); baseline timed on {nb} "
            "batch(es)")
    if grad:
        gdiff = max(float((a[1] - b[1]).norm() / b[1].norm()) for a, b in zip(ours_out, base_out, strict=True))
        note += (f"; value and gradient with respect to the batch; gradients differ by {gdiff:.1e} (relative "
                 "L2: tied projections, e.g. of flat background patches, have no unique gradient)")
    return [timed_row(t, f"{batches} x 64 vs {n} images", rel_diff([a[0] for a in ours_out],
                                                               [b[0] for b in base_out]), note=note)]


register_case("patch-swd-reuse", "patch SW1 of `batches` batches of 64 images against the same n images: "
              "time per batch", "plain torch, target redone per batch",
              full={"n": 10_000, "batches": 10, "baseline_batches": 3}, n=1_000, batches=5, baseline_batches=5,
              n_projections=128)(functools.partial(_patch_batches, grad=False))
register_case("patch-swd-train", "patch SW1 and its gradient for `batches` batches of 64 images against the "
              "same n images (a generator step's work): time per batch", "plain torch + autograd, target "
              "redone per batch", full={"n": 10_000, "batches": 10, "baseline_batches": 2}, n=1_000, batches=3,
              baseline_batches=3, n_projections=128)(functools.partial(_patch_batches, grad=True))


#: the authors' code on this machine, 64x64 Fashion-MNIST against N = 10,000 images (REFERENCE.md, idle
#: machine): seconds of their patch SWD, location-specific patch SWD and direct-descent step
AUTHORS_PATCH_S = {"patch": (13.0, 16.0), "local": (4.5, 4.5), "direct": (5.9, 5.9)}


#: the authors' code on this machine: seconds per OT-Means outer iteration (5 exact solves + Weiszfeld steps),
#: 64 centroids, 64x64 Fashion-MNIST, N = 10,000 (REFERENCE.md, idle machine)
AUTHORS_OT_MEANS_S = (1.9, 2.5)


@register_case("patch-swd-64", "the authors' patch metrics on 64x64 images: patch SW1 and location-specific "
               "patch SW1 of 64 images against n (16x16 patches, stride 8, 128 projections, nothing reused), "
               "and the direct-descent step (16x16 patches at stride 1, value and gradient) of 64 images "
               "against a batch of 64 and against all n", "plain torch (unfold, project, sort); none against "
               "all n", full={"n": 10_000}, in_default=False, n=1_000, n_projections=128)
def _patch_swd_64(ctx: PairedTimer, n: int, n_projections: int) -> list[dict]:
    import torch

    from wganlab.ot.patches import patch_swd, patch_swd_local
    from wganlab.ot.sliced import random_projections

    y, x, batch = ctx.images("train", n, size=64), ctx.images("test", 64, size=64), ctx.images("test", 64, 1, 64)
    theta = random_projections(256, n_projections, seed=0)
    rows = []
    for key, ours, base in (("patch", patch_swd, plain_patch_swd), ("local", patch_swd_local, plain_patch_swd_local)):
        t = ctx.time(lambda ours=ours: float(ours(x, y, 16, 8, projections=theta)),
                     lambda base=base: base(x, y, theta, 16, 8))
        label = "patch SW1" if key == "patch" else "location-specific patch SW1"
        rows.append(timed_row(t, f"{label}, 64 vs {n}", rel_diff(t["ours"], t["base"]), value=t["ours"],
                              note=_authors_note(key, t["ours_s"], n)))

    def step(target, max_elements=None):
        xg = x.clone().requires_grad_(True)
        v = patch_swd(xg, target, 16, 1, projections=theta, max_elements=max_elements)
        return float(v.detach()), torch.autograd.grad(v, xg)[0]

    def plain_step():
        xg = x.clone().requires_grad_(True)
        return plain_patch_swd(xg, batch, theta, 16, 1), xg.grad

    t = ctx.time(functools.partial(step, batch), plain_step)
    gdiff = float((t["ours"][1] - t["base"][1]).norm() / t["base"][1].norm())
    rows.append(timed_row(t, "direct step, 64 vs 64", rel_diff(t["ours"][0], t["base"][0]), value=t["ours"][0],
                          note=f"{_authors_note('direct', t['ours_s'], 10_000)}; gradients differ by {gdiff:.1e} "
                               "(relative L2)"))
    for max_elements in (None, BIG_CHUNK):
        t = ctx.time(functools.partial(step, y, max_elements))
        chunk = "default max_elements" if max_elements is None else f"max_elements = 2^{max_elements.bit_length() - 1}"
        rows.append(timed_row(t, f"direct step, 64 vs {n} ({chunk})", value=t["ours"][0],
                              note="stride 1 against every image (the authors' code cannot hold these patches in 24 "
                                   "GiB); max_elements bounds the projected values of one pass: per pass, 2^26 "
                                   "holds 2 projections at n = 10,000, 2^28 holds 11 (groups of fewer than 12 are "
                                   "convolved at 4 or 16 output phases per call)"))
    return rows


#: a larger chunk of projected values for the direct step against all images (the peak memory it costs is the row's)
BIG_CHUNK = 1 << 28


def _authors_note(key: str, seconds: float, n: int) -> str:
    lo, hi = AUTHORS_PATCH_S[key]
    theirs = f"{lo:g} s" if lo == hi else f"{lo:g}-{hi:g} s"
    if n != 10_000:
        return f"the authors' code: {theirs} here at n = 10,000 (REFERENCE.md; not comparable at n = {n})"
    speedup = f"{lo / seconds:.1f}x" if lo == hi else f"{lo / seconds:.1f}-{hi / seconds:.1f}x"
    return f"the authors' code: {theirs} here (REFERENCE.md, idle machine): wganlab {speedup} faster"


@register_case("ot-means", "OT-Means: m centroids fitted to n training images, iters x (exact plan + one "
               "Weiszfeld step), at each side length of sides", "POT ot.emd + numpy Weiszfeld",
               full={"n": 10_000, "sides": (28, 64)}, m=64, n=2_000, iters=20, sides=(28,))
def _ot_means(ctx: PairedTimer, m: int, n: int, iters: int, sides: tuple, inner: int = 1) -> list[dict]:
    """OT-Means rows; ``inner`` > 1: ``iters`` outer iterations of ``inner`` updates each (the authors' protocol),
    timed per outer iteration as well."""
    import torch

    from wganlab.ot import ot_means

    rows = []
    for side in sides:
        y = ctx.images("train", n, size=_resized(side))
        init = 0.5 * torch.randn(m, y[0].numel(), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        t = ctx.time(functools.partial(lambda y, init: ot_means(y, m, n_iter=iters, ot_steps=inner, weiszfeld_steps=1,
                                                                init=init).w1_trace, y, init),
                     functools.partial(plain_ot_means, y, init, iters * inner))
        note = "value diff: largest over the W1 traces"
        if inner > 1:
            lo, hi = AUTHORS_OT_MEANS_S
            per = t["ours_s"] / iters
            note += (f"; {per:.3g} s per outer iteration ({inner} exact plans and Weiszfeld steps; the authors' code: "
                     f"{lo:g}-{hi:g} s here at 64x64, n = 10,000 (REFERENCE.md, idle machine)"
                     + (f": wganlab {lo / per:.1f}-{hi / per:.1f}x faster)" if (side, n) == (64, 10_000) else ")"))
        label = f"{iters} iterations" if inner == 1 else f"{iters} outer x {inner}"
        rows.append(timed_row(t, f"{m} x {n} ({side}x{side}), {label}", rel_diff(t["ours"], t["base"]),
                              value=t["ours"][-1], note=note))
    return rows


register_case("ot-means-authors", "OT-Means at the authors' protocol: m centroids fitted to n training images at "
              "64x64, iters outer iterations of inner x (exact plan + one Weiszfeld step), time per outer iteration",
              "POT ot.emd + numpy Weiszfeld", full={"n": 10_000}, in_default=False, m=64, n=2_000, iters=10,
              inner=5, sides=(64,))(_ot_means)
