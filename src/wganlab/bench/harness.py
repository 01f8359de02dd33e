"""Running the bench: each case in its own child process under a memory limit, rows collected, the report
written (JSON and markdown, atomically).

By default each case runs in a child process (``python -m wganlab.bench``) with an address-space limit
(``RLIMIT_AS``, default 85 % of the memory available when the bench starts), so a case too large for the
machine ends as a row with status ``out of memory`` instead of pushing the machine into swap; every row
says the peak memory of each side (:mod:`wganlab.bench.timing`). Before a case, small calls of the exact
solvers load their compiled kernels, a one-time cost no case times. Speed is measured here only; tests
assert values and certificates, never times.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from wganlab.bench import train_cases  # noqa: F401  (registers the train-* cases)
from wganlab.bench.baselines import pot_w1
from wganlab.bench.cases import CASES, describe_sizes, resolve_sizes
from wganlab.bench.render import COLUMNS, markdown
from wganlab.bench.timing import PairedTimer
from wganlab.errors import BadInput, ConfigError, WganlabError
from wganlab.memory import keep_freed_memory, proc_kb, tensors_on_huge_pages


def machine() -> dict:
    """The facts a timing needs next to it: CPU, cores, memory, load, library versions."""
    import ot
    import torch

    from wganlab.ot.sliced.kernels import sort_choice
    from wganlab.runtime import cpu_model

    total = proc_kb("/proc/meminfo", "MemTotal")
    memory = None if total is None else round(total / 2**20, 1)
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "memory_gib": memory,
            "load_avg": [round(v, 2) for v in os.getloadavg()], "python": platform.python_version(),
            "torch": torch.__version__, "numpy": np.__version__, "pot": ot.__version__, "sliced_sort": sort_choice(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


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
    from wganlab.ot.exact import blocks

    g = torch.Generator().manual_seed(0)
    y = torch.rand(400, 16, generator=g)
    y8 = torch.randint(0, 256, (400, 16), generator=g) / 127.5 - 1  # 8-bit data: the grid bounds' kernels
    for m in (8, 400):
        wasserstein(y[:m], y, engine="sparse")
        wasserstein(y8[:m], y8, engine="sparse")
        pot_w1(y[:m], y)
    ot_means(y, 8, n_iter=1, ot_steps=1, engine="sparse")
    blocks.smallest_per_column(np.zeros(1, dtype=np.int64), np.zeros(1), 1, 1)  # pricing's: they may not reach it


def run_case(name: str, sizes: dict, repeat: int = 1, data_root: str | None = None) -> list[dict]:
    """Rows of one case run in this process. A case that runs out of memory or fails gives one row with
    that status; bad input (e.g. a missing dataset) is raised."""
    try:
        _warm_up()
        rows = CASES[name].run(PairedTimer(repeat, data_root), **sizes)
    except BadInput:
        raise
    except Exception as e:  # a failed computation (an uncertified solve, ...): a row; the other cases still run
        status = "out of memory" if _out_of_memory(e) else "error"
        return [_failed_row(name, sizes, status, f"{type(e).__name__}: {e}".splitlines()[0])]
    return [_full_row(name, sizes, {"status": "ok", **r}) for r in rows]


def _mem_limit_bytes(gib: float | None) -> int | None:
    if gib is not None:
        return int(gib * 2**30)
    avail = proc_kb("/proc/meminfo", "MemAvailable")
    return None if avail is None else int(0.85 * avail * 1024)


def _run_isolated(name: str, sizes: dict, repeat: int, data_root, threads: int | None,
                  mem_limit: int | None) -> list[dict]:
    """:func:`run_case` in a child process under an address-space limit of ``mem_limit`` bytes."""
    src = str(Path(__file__).resolve().parents[2])  # this copy of wganlab, whatever the installed one
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


def child() -> None:
    """Entry point of an isolated case: a JSON job on stdin, ``{"rows": [...]}`` as the last stdout line."""
    job = json.loads(sys.stdin.read())
    keep_freed_memory()
    tensors_on_huge_pages()
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
