"""Paired timing of one case's two sides in one process: best-of-``repeat`` seconds and peak memory.

``wganlab_peak_mb`` / ``baseline_peak_mb`` are the peak resident memory (RSS) of the process during that
side's computation, above the RSS just before it. Linux only: the kernel's high-water mark ``VmHWM`` is
reset through ``/proc/self/clear_refs`` before each side, so C allocations of numpy, torch and POT are seen
(``tracemalloc`` would miss them); ``None`` where the kernel does not allow the reset.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from wganlab.memory import proc_kb, release_freed_memory

#: the real image set every case uses (pixels in [-1, 1])
DATASET = "fashion-mnist"


def _reset_peak() -> int | None:
    """Give freed heap memory back, reset the kernel's peak-RSS mark; return the current RSS in kB (None where
    not possible)."""
    gc.collect()
    release_freed_memory()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    return proc_kb("/proc/self/status", "VmRSS")


def _measure(fn: Callable, *args):
    """``(result, seconds, peak MB above the RSS before the call or None)`` of one call ``fn(*args)``."""
    base = _reset_peak()
    t0 = time.perf_counter()
    out = fn(*args)
    dt = time.perf_counter() - t0
    hwm = proc_kb("/proc/self/status", "VmHWM") if base is not None else None
    return out, dt, (None if hwm is None else max(hwm - base, 0) / 1024)


class PairedTimer:
    """What a case needs: its input images and paired timing (``repeat`` alternations of the two sides,
    best time of each kept)."""

    def __init__(self, repeat: int = 1, data_root: str | None = None):
        self.repeat, self.data_root = repeat, data_root

    def images(self, split: str, n: int, seed: int = 0, size: int | None = None):
        """``n`` images of :data:`DATASET` ``(n, 1, H, W)`` (28x28, or ``size`` x ``size`` resized), float32
        in [-1, 1] (a seeded subset)."""
        from wganlab import data

        spec = f"{DATASET}:{split}:n={n}:seed={seed}" + (f":size={size}" if size else "")
        return data.load(spec, self.data_root).x

    def time(self, ours: Callable, base: Callable | None = None, fresh: Callable | None = None) -> dict:
        """Run ``ours`` (and ``base``) ``repeat`` times, alternating: results, best times, peaks. With
        ``fresh``, each side is called as ``side(fresh())``, ``fresh`` (a new starting state) untimed."""
        res: dict = {"ours": None, "base": None, "ours_s": None, "base_s": None,
                     "ours_mb": None, "base_mb": None}
        for _ in range(self.repeat):
            for side, fn in (("ours", ours), ("base", base)):
                if fn is None:
                    continue
                out, dt, mb = _measure(fn, *(() if fresh is None else (fresh(),)))
                res[side] = out
                res[f"{side}_s"] = dt if res[f"{side}_s"] is None else min(res[f"{side}_s"], dt)
                if mb is not None:
                    res[f"{side}_mb"] = max(res[f"{side}_mb"] or 0.0, mb)
        return res


def timed_row(t: dict, size: str, value_diff=None, gap_rel=None, **extra) -> dict:
    """A table row from :meth:`PairedTimer.time`'s result ``t`` (ratio = baseline s / wganlab s)."""
    ratio = t["base_s"] / t["ours_s"] if t["base_s"] is not None and t["ours_s"] > 0 else None
    return {"size": size, "baseline_s": t["base_s"], "wganlab_s": t["ours_s"], "ratio": ratio,
            "value_diff": value_diff, "gap_rel": gap_rel, "wganlab_peak_mb": t["ours_mb"],
            "baseline_peak_mb": t["base_mb"], **extra}


def rel_diff(ours, base) -> float:
    """Largest ``|ours - base| / |base|`` over paired values."""
    a, b = np.asarray(ours, dtype=np.float64), np.asarray(base, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))
