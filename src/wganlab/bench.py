"""``wganlab bench``: each wganlab computation against a plain baseline, timed in the same process.

Every case loads its data, then runs wganlab and its baseline on the same inputs, alternating them
``repeat`` times (best time of each kept), and returns rows with the columns of :data:`COLUMNS` (before it,
small calls of the exact solvers load their compiled kernels, a one-time cost no case times):

* ``ratio`` = baseline time / wganlab time (above 1: wganlab is faster);
* ``value_diff`` = ``|wganlab - baseline| / |baseline|``, the largest over the values the row compares;
* ``gap_rel`` = the certificate of wganlab's exact solution (relative duality gap, :class:`OTResult`);
* ``wganlab_peak_mb`` / ``baseline_peak_mb`` = the peak resident memory (RSS) of the process during that
  side's computation, above the RSS just before it. Linux only: the kernel's high-water mark ``VmHWM`` is
  reset through ``/proc/self/clear_refs`` before each side, so C allocations of numpy, torch and POT are
  seen (``tracemalloc`` would miss them). ``None`` where the kernel does not allow the reset.

By default each case runs in its own child process with an address-space limit (``RLIMIT_AS``, default
85 % of the memory available when the bench starts), so a case too large for the machine ends as a row
with status ``out of memory`` instead of pushing the machine into swap. Speed is measured here only;
tests assert values and certificates, never times.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wganlab.errors import BadInput, ConfigError, WganlabError

#: (key, header) of every row, in table order
COLUMNS = [
    ("case", "case"), ("size", "size"), ("baseline", "baseline"), ("baseline_s", "baseline s"),
    ("wganlab_s", "wganlab s"), ("ratio", "ratio"), ("value_diff", "value diff"), ("gap_rel", "gap (rel)"),
    ("wganlab_peak_mb", "wganlab peak MB"), ("baseline_peak_mb", "baseline peak MB"), ("status", "status"),
]
#: the real image set every case uses (d = 784, pixels in [-1, 1])
DATASET = "fashion-mnist"


@dataclass(frozen=True)
class Case:
    """A benchmark: ``run(ctx, **sizes) -> rows``; ``sizes`` are the defaults, ``full`` the paper sizes."""

    name: str
    description: str
    baseline: str
    run: Callable[..., list[dict]]
    sizes: dict
    full: dict


CASES: dict[str, Case] = {}


def register_case(name: str, description: str, baseline: str, full: dict, **sizes):
    """Decorator: register ``fn(ctx, **sizes) -> list of rows`` as case ``name``."""

    def wrap(fn):
        CASES[name] = Case(name, description, baseline, fn, dict(sizes), {**sizes, **full})
        return fn

    return wrap


# ----------------------------------------------------------------------------------------------------------
# measuring


def _proc_kb(path: str, field: str) -> int | None:
    """A ``Field:  value kB`` entry of ``/proc/meminfo`` or ``/proc/self/status`` (None where absent)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> int | None:
    """Reset the kernel's peak-RSS mark; return the current RSS in kB (None where not possible)."""
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    return _proc_kb("/proc/self/status", "VmRSS")


def _measure(fn: Callable):
    """``(result, seconds, peak MB above the RSS before the call or None)`` of one call of ``fn``."""
    base = _reset_peak()
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    hwm = _proc_kb("/proc/self/status", "VmHWM") if base is not None else None
    return out, dt, (None if hwm is None else max(hwm - base, 0) / 1024)


class Context:
    """What a case needs: data loading and paired timing (``repeat`` alternations, best time kept)."""

    def __init__(self, repeat: int = 1, data_root: str | None = None):
        self.repeat, self.data_root = repeat, data_root

    def images(self, split: str, n: int, seed: int = 0):
        """``n`` Fashion-MNIST images ``(n, 1, 28, 28)``, float32 in [-1, 1] (a seeded subset)."""
        from wganlab import data

        return data.load(f"{DATASET}:{split}:n={n}:seed={seed}", self.data_root).x

    def time(self, ours: Callable, base: Callable | None = None) -> dict:
        """Run ``ours`` (and ``base``) ``repeat`` times, alternating: results, best times, peaks."""
        res: dict = {"ours": None, "base": None, "ours_s": None, "base_s": None,
                     "ours_mb": None, "base_mb": None}
        for _ in range(self.repeat):
            for side, fn in (("ours", ours), ("base", base)):
                if fn is None:
                    continue
                out, dt, mb = _measure(fn)
                res[side] = out
                res[f"{side}_s"] = dt if res[f"{side}_s"] is None else min(res[f"{side}_s"], dt)
                if mb is not None:
                    res[f"{side}_mb"] = max(res[f"{side}_mb"] or 0.0, mb)
        return res


def _row(t: dict, size: str, value_diff=None, gap_rel=None, **extra) -> dict:
    ratio = t["base_s"] / t["ours_s"] if t["base_s"] is not None and t["ours_s"] > 0 else None
    return {"size": size, "baseline_s": t["base_s"], "wganlab_s": t["ours_s"], "ratio": ratio,
            "value_diff": value_diff, "gap_rel": gap_rel, "wganlab_peak_mb": t["ours_mb"],
            "baseline_peak_mb": t["base_mb"], **extra}


def _rel_diff(ours, base) -> float:
    """Largest ``|ours - base| / |base|`` over paired values."""
    a, b = np.asarray(ours, dtype=np.float64), np.asarray(base, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


# ----------------------------------------------------------------------------------------------------------
# baselines written out plainly (POT, numpy, torch), independent of wganlab's code


def pot_w1(x, y) -> float:
    """Exact W1 with POT: the dense Euclidean cost matrix and ``ot.emd2`` (float64, uniform weights), with
    an iteration budget large enough to converge; raises if POT does not report optimality."""
    import ot

    xa = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    ya = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    C = ot.dist(xa, ya, metric="euclidean")
    value, log = ot.emd2(ot.unif(len(xa)), ot.unif(len(ya)), C, numItermax=10**10, log=True)
    if log["result_code"] != 1:
        raise RuntimeError(f"POT emd2 did not converge: {log.get('warning')}")
    return float(value)


def plain_patch_swd(x, y, theta, size: int, stride: int = 1, chunk: int = 16) -> float:
    """Patch SW1 written plainly in torch: unfold both image sets into patches, project them on ``theta``
    ``(P, C size^2)``, sort, and integrate ``|F^-1(t) - G^-1(t)|`` exactly over the merged quantile
    breakpoints ``{i/n} U {j/m}`` (each step function read at the middle of every merged piece).

    When ``x`` requires grad, its gradient is accumulated in ``x.grad`` (as ``loss.backward()`` does), by
    autograd through the sort, one chunk of projections at a time."""
    import torch
    import torch.nn.functional as F

    d, P = theta.shape[1], theta.shape[0]
    grad = x.requires_grad
    px = F.unfold(x.detach(), size, stride=stride).transpose(1, 2).reshape(-1, d).requires_grad_(grad)
    py = F.unfold(y, size, stride=stride).transpose(1, 2).reshape(-1, d)
    n, m = len(px), len(py)
    levels = torch.sort(torch.cat([torch.arange(1, n + 1, dtype=torch.float64) / n,
                                   torch.arange(1, m + 1, dtype=torch.float64) / m])).values
    dt = torch.diff(levels, prepend=levels.new_zeros(1))
    mid = levels - dt / 2
    ix, iy = (mid * n).long().clamp_max(n - 1), (mid * m).long().clamp_max(m - 1)
    total = 0.0
    for i in range(0, P, chunk):
        with torch.no_grad():
            qy = torch.sort(theta[i:i + chunk] @ py.T, dim=-1).values
        with torch.set_grad_enabled(grad):
            qx = torch.sort(theta[i:i + chunk] @ px.T, dim=-1).values
            term = ((qx[:, ix] - qy[:, iy]).abs().double() * dt).sum()
        if grad:
            (term / P).backward()
        total += float(term.detach())
    if grad:
        F.unfold(x, size, stride=stride).transpose(1, 2).reshape(-1, d).backward(px.grad)
    return total / P


def plain_ot_means(y, init, n_iter: int) -> list[float]:
    """OT-Means written plainly: per iteration an exact plan (POT ``ot.emd`` on the dense Euclidean cost)
    and one Weiszfeld step per centroid weighted by its plan row; returns the W1 of every solve
    (``n_iter + 1`` values, the last after the final update)."""
    import ot

    Y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    X = np.asarray(init, dtype=np.float64).reshape(len(init), -1).copy()
    a, b = ot.unif(len(X)), ot.unif(len(Y))
    trace = []
    for it in range(n_iter + 1):
        C = ot.dist(X, Y, metric="euclidean")
        P, log = ot.emd(a, b, C, numItermax=10**10, log=True)
        if log["result_code"] != 1:
            raise RuntimeError(f"POT emd did not converge: {log.get('warning')}")
        trace.append(float((P * C).sum()))
        if it == n_iter:
            break
        for j in range(len(X)):
            cols = np.flatnonzero(P[j])
            w = P[j, cols] / np.maximum(C[j, cols], 1e-300)
            X[j] = w @ Y[cols] / w.sum()
    return trace


# ----------------------------------------------------------------------------------------------------------
# the cases


def _exact_row(ctx: Context, x, y, baseline: bool = True) -> dict:
    from wganlab.ot import wasserstein

    t = ctx.time(lambda: wasserstein(x, y), (lambda: pot_w1(x, y)) if baseline else None)
    res = t["ours"]
    diff = _rel_diff(res.value, t["base"]) if baseline else None
    return _row(t, f"{len(x)} x {len(y)}", diff, res.gap_rel, value=res.value)


@register_case("w1-square", "exact W1 between M = N = n Fashion-MNIST images (d = 784): test vs train, "
               "two seeded training subsets above 10,000",
               "POT ot.dist + ot.emd2", full={"n": 10_000}, n=2_000)
def _w1_square(ctx: Context, n: int) -> list[dict]:
    return [_exact_row(ctx, ctx.images("test", n) if n <= 10_000 else ctx.images("train", n, seed=1),
                       ctx.images("train", n))]


@register_case("w1-batch", "exact W1 between M = m test images and N = each of ns training images",
               "POT ot.dist + ot.emd2", full={"ns": (10_000, 60_000)}, m=64, ns=(10_000,))
def _w1_batch(ctx: Context, m: int, ns: tuple) -> list[dict]:
    x = ctx.images("test", m)
    return [_exact_row(ctx, x, ctx.images("train", n)) for n in ns]


@register_case("w1-large", "exact W1 between two sets of n training images (seeded subsets), wganlab only",
               "POT (not run)", full={"n": 50_000}, n=3_000)
def _w1_large(ctx: Context, n: int) -> list[dict]:
    row = _exact_row(ctx, ctx.images("train", n, seed=1), ctx.images("train", n, seed=2), baseline=False)
    need = 16 * n * n  # float64 cost matrix + float64 plan
    total = (_proc_kb("/proc/meminfo", "MemTotal") or 0) * 1024
    verdict = "out of memory here" if need > total else "fits here, not run"
    return [{**row, "note": f"POT needs 16 n^2 bytes = {need / 1e9:.3g} GB for the dense cost and plan "
                            f"({verdict})"}]


def _patch_setup(ctx: Context, n: int, batches: int, projections: int):
    from wganlab.ot.sliced import random_projections

    y = ctx.images("train", n)
    xs = [ctx.images("test", 64, seed=i) for i in range(batches)]
    return y, xs, random_projections(49, projections, seed=0)


@register_case("patch-swd", "patch SW1 between 64 images and n images: all 7x7 patches at stride 1",
               "plain torch (unfold, project, sort)", full={"n": 10_000}, n=1_000, projections=128)
def _patch_swd(ctx: Context, n: int, projections: int) -> list[dict]:
    from wganlab.ot.patches import patch_swd

    y, (x,), theta = _patch_setup(ctx, n, 1, projections)
    t = ctx.time(lambda: float(patch_swd(x, y, 7, 1, projections=theta)),
                 lambda: plain_patch_swd(x, y, theta, 7, 1))
    return [_row(t, f"64 x {n} images, {projections} proj.", _rel_diff(t["ours"], t["base"]), value=t["ours"])]


def _patch_batches(ctx: Context, n: int, batches: int, baseline_batches: int, projections: int,
                   grad: bool) -> list[dict]:
    """Patch SW1 (and with ``grad`` its gradient with respect to the batch) of ``batches`` batches of 64
    against the same ``n`` images: wganlab sorts the target once, the baseline redoes it per batch."""
    import torch

    from wganlab.ot.patches import patch_swd, patch_target

    y, xs, theta = _patch_setup(ctx, n, batches, projections)
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
    return [_row(t, f"{batches} x 64 vs {n} images", _rel_diff([a[0] for a in ours_out],
                                                               [b[0] for b in base_out]), note=note)]


register_case("patch-swd-reuse", "patch SW1 of `batches` batches of 64 images against the same n images: "
              "time per batch", "plain torch, target redone per batch",
              full={"n": 10_000, "batches": 10, "baseline_batches": 3}, n=1_000, batches=5, baseline_batches=5,
              projections=128)(functools.partial(_patch_batches, grad=False))
register_case("patch-swd-train", "patch SW1 and its gradient for `batches` batches of 64 images against the "
              "same n images (a generator step's work): time per batch", "plain torch + autograd, target "
              "redone per batch", full={"n": 10_000, "batches": 10, "baseline_batches": 2}, n=1_000, batches=3,
              baseline_batches=3, projections=128)(functools.partial(_patch_batches, grad=True))


@register_case("ot-means", "OT-Means: m centroids fitted to n training images, iters x (exact plan + one "
               "Weiszfeld step)", "POT ot.emd + numpy Weiszfeld", full={"n": 10_000}, m=64, n=2_000, iters=20)
def _ot_means(ctx: Context, m: int, n: int, iters: int) -> list[dict]:
    import torch

    from wganlab.ot import ot_means

    y = ctx.images("train", n)
    init = 0.5 * torch.randn(m, y[0].numel(), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t = ctx.time(lambda: ot_means(y, m, n_iter=iters, ot_steps=1, weiszfeld_steps=1, init=init).w1_trace,
                 lambda: plain_ot_means(y, init, iters))
    return [_row(t, f"{m} x {n}, {iters} iterations", _rel_diff(t["ours"], t["base"]), value=t["ours"][-1],
                 note="value diff: largest over the W1 traces")]


# ----------------------------------------------------------------------------------------------------------
# running


def describe_sizes(sizes: dict) -> str:
    """``key=value`` pairs as ``--set`` takes them (lists comma-separated)."""
    return " ".join(f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in sizes.items())


def machine() -> dict:
    """The facts a timing needs next to it: CPU, cores, memory, load, library versions."""
    import ot
    import torch

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    total = _proc_kb("/proc/meminfo", "MemTotal")
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": None if total is None else round(total / 2**20, 1),
            "load_avg": [round(v, 2) for v in os.getloadavg()], "python": platform.python_version(),
            "torch": torch.__version__, "numpy": np.__version__, "pot": ot.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def resolve_sizes(names: list[str] | None, full: bool = False,
                  overrides: dict[str, dict[str, str]] | None = None) -> dict[str, dict]:
    """Case name -> sizes: defaults (or ``full``), then ``overrides`` ``{case: {key: "text"}}`` parsed as
    positive integers (a comma-separated list where the size is a list)."""
    names = list(names or CASES)
    for name in [*names, *(overrides or {})]:
        if name not in CASES:
            raise ConfigError(f"unknown bench case {name!r}; choose from {', '.join(CASES)}")
    out = {name: dict(CASES[name].full if full else CASES[name].sizes) for name in names}
    for name, kv in (overrides or {}).items():
        if name not in out:
            raise ConfigError(f"--set {name}.*: case {name!r} is not selected")
        for key, text in kv.items():
            if key not in out[name]:
                raise ConfigError(f"case {name!r} has no size {key!r}; it takes: {', '.join(out[name])}")
            parts = text.split(",") if isinstance(out[name][key], tuple) else [text]
            if not all(p.strip().isdigit() and int(p) > 0 for p in parts):
                raise ConfigError(f"{name}.{key}={text!r}: expected positive integer(s)")
            values = tuple(int(p) for p in parts)
            out[name][key] = values if isinstance(out[name][key], tuple) else values[0]
    return out


def _out_of_memory(e: BaseException) -> bool:
    return isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and "alloc" in str(e).lower())


def _full_row(name: str, sizes: dict, row: dict) -> dict:
    """``row`` with the case's name, baseline and sizes, and every column present (None if unknown)."""
    blank = {k: None for k, _ in COLUMNS}
    return {**blank, "case": name, "baseline": CASES[name].baseline, "sizes": sizes, **row}


def _failed_row(name: str, sizes: dict, status: str, note: str) -> dict:
    return _full_row(name, sizes, {"size": describe_sizes(sizes), "status": status, "note": note[:300]})


def _warm_up() -> None:
    """One small call of each exact solver (float32 points as the cases use, both engine paths, OT-Means)
    so that one-time loading (numba's compiled kernels, first-call set-up) is timed in no case."""
    import torch

    from wganlab.ot import ot_means, wasserstein

    y = torch.rand(400, 16, generator=torch.Generator().manual_seed(0))
    for m in (8, 400):
        wasserstein(y[:m], y, engine="sparse")
        pot_w1(y[:m], y)
    ot_means(y, 8, n_iter=1, ot_steps=1, engine="sparse")


def run_case(name: str, sizes: dict, repeat: int = 1, data_root: str | None = None) -> list[dict]:
    """Rows of one case run in this process. A case that runs out of memory or fails gives one row with
    that status; bad input (e.g. a missing dataset) is raised."""
    try:
        _warm_up()
        rows = CASES[name].run(Context(repeat, data_root), **sizes)
    except BadInput:
        raise
    except Exception as e:  # a failed computation (an uncertified solve, ...): a row; the other cases still run
        status = "out of memory" if _out_of_memory(e) else "error"
        return [_failed_row(name, sizes, status, f"{type(e).__name__}: {e}".splitlines()[0])]
    return [_full_row(name, sizes, {"status": "ok", **r}) for r in rows]


def _mem_limit_bytes(gib: float | None) -> int | None:
    if gib is not None:
        return int(gib * 2**30)
    avail = _proc_kb("/proc/meminfo", "MemAvailable")
    return None if avail is None else int(0.85 * avail * 1024)


def _run_isolated(name: str, sizes: dict, repeat: int, data_root, threads: int | None,
                  mem_limit: int | None) -> list[dict]:
    """:func:`run_case` in a child process under an address-space limit of ``mem_limit`` bytes."""
    src = str(Path(__file__).resolve().parents[1])  # this copy of wganlab, whatever the installed one
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    job = {"name": name, "sizes": sizes, "repeat": repeat, "data_root": data_root, "threads": threads,
           "mem_limit": mem_limit}
    proc = subprocess.run([sys.executable, "-m", "wganlab.bench"], input=json.dumps(job), text=True,
                          capture_output=True, env=env)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and lines:
        reply = json.loads(lines[-1])
        if "fatal" in reply:
            raise WganlabError(reply["fatal"])
        return [{**r, "sizes": sizes} for r in reply["rows"]]
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    status = "out of memory" if proc.returncode in (-9, 137) else "error"
    return [_failed_row(name, sizes, status, f"child process exit code {proc.returncode}: {tail}")]


def _child() -> None:
    """Entry point of an isolated case: a JSON job on stdin, ``{"rows": [...]}`` as the last stdout line."""
    job = json.loads(sys.stdin.read())
    if job["mem_limit"]:
        resource.setrlimit(resource.RLIMIT_AS, (job["mem_limit"], job["mem_limit"]))
    from wganlab.runtime import set_threads

    set_threads(job["threads"])
    sizes = {k: tuple(v) if isinstance(v, list) else v for k, v in job["sizes"].items()}
    try:
        reply = {"rows": run_case(job["name"], sizes, job["repeat"], job["data_root"])}
    except WganlabError as e:
        reply = {"fatal": str(e)}
    print(json.dumps(reply, default=_json_default))


def _json_default(o):
    if isinstance(o, tuple):
        return list(o)
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def run_bench(names: list[str] | None = None, *, full: bool = False, overrides: dict | None = None,
              repeat: int = 1, out: str | Path | None = None, threads: int | None = 1, isolate: bool = True,
              mem_limit_gib: float | None = None, data_root: str | None = None,
              progress: Callable[[str], object] | None = None) -> list[dict]:
    """Run the named cases (default: all) and return their rows; with ``out``, also write ``out`` (JSON:
    machine, settings, rows) and the markdown table beside it (``.md``), atomically.

    ``isolate`` runs each case in a child process under a memory limit (``mem_limit_gib``, default 85 %
    of the memory available now); ``threads`` sets torch's thread count there (None: torch's default).
    """
    from wganlab.runs import atomic_write_bytes
    from wganlab.runtime import set_threads

    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise ConfigError(f"repeat must be a positive integer, got {repeat!r}")
    plan = resolve_sizes(names, full, overrides)
    info = machine()
    limit = _mem_limit_bytes(mem_limit_gib) if isolate else None
    rows: list[dict] = []
    for name, sizes in plan.items():
        if progress:
            progress(f"bench: {name} {describe_sizes(sizes)}")
        if isolate:
            rows += _run_isolated(name, sizes, repeat, data_root, threads, limit)
        else:
            set_threads(threads)
            rows += run_case(name, sizes, repeat, data_root)
    for r in rows:
        if r["status"] == "out of memory" and limit is not None:
            r["note"] = f"{r['note']} (limit of the case's process: {limit / 2**30:.1f} GiB)"
    info["load_avg_end"] = [round(v, 2) for v in os.getloadavg()]
    if out is not None:
        report = {"machine": info, "settings": {"full": full, "repeat": repeat, "threads": threads,
                                                "isolate": isolate, "mem_limit_bytes": limit}, "rows": rows}
        out = Path(out)
        atomic_write_bytes(out, (json.dumps(report, indent=2, default=_json_default) + "\n").encode())
        atomic_write_bytes(out.with_suffix(".md"), markdown(rows, info).encode())
    return rows


# ----------------------------------------------------------------------------------------------------------
# rendering


def _cell(key: str, v) -> str:
    if v is None:
        return "-"
    if key.endswith("_s"):
        return f"{v:.3g}"
    if key == "ratio":
        return f"{v:.3g}x"
    if key in ("value_diff", "gap_rel"):
        return f"{v:.1e}"
    if key.endswith("_mb"):
        return f"{v:,.0f}"
    return str(v)


def _cells(rows: list[dict]) -> list[list[str]]:
    return [[_cell(k, r.get(k)) for k, _ in COLUMNS] for r in rows]


def table(rows: list[dict]) -> str:
    """The rows as an aligned plain-text table (notes listed below it)."""
    grid = [[h for _, h in COLUMNS], *_cells(rows)]
    widths = [max(len(line[i]) for line in grid) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in grid]
    notes = [f"  {r['case']}: {r['note']}" for r in rows if r.get("note")]
    return "\n".join(lines + (["notes:", *notes] if notes else [])) + "\n"


def markdown(rows: list[dict], info: dict) -> str:
    """The rows as a markdown table headed by the machine it ran on (what the README quotes)."""
    head = (f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB; torch {info['torch']}, "
            f"POT {info['pot']}; load average {info['load_avg'][0]} at start, "
            f"{info.get('load_avg_end', ['?'])[0]} at the end; {info['date']}.\n\n")
    lines = ["| " + " | ".join(h for _, h in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in cells) + " |" for cells in _cells(rows)]
    notes = [f"- {r['case']}: {r['note']}" for r in rows if r.get("note")]
    return head + "\n".join(lines) + "\n" + ("\n" + "\n".join(notes) + "\n" if notes else "")


if __name__ == "__main__":
    _child()
