"""Running experiments as tasks: one experiment into its folder, many on an executor, and the numeric
aggregate over seeds. ``reproduce`` and ``sweep`` both stand on this module (neither imports the other).

A task is a plain dict (picklable for process and Ray executors): ``experiment``, ``preset``,
``overrides`` (``{key: text}``), ``seed`` (None: the preset's), ``folder``, ``label`` and optionally
``threads``, ``data_root``, ``device``, ``progress`` and ``expected_seconds`` (longest tasks start first).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
import traceback
from pathlib import Path

from wganlab.config import to_dict
from wganlab.executors import map_tasks
from wganlab.experiments import Context, get_experiment
from wganlab.runs import atomic_write_bytes, read_json, write_json


def run_experiment(name: str, preset: str, folder: Path, *, overrides: dict | None = None,
                   data_root: str | None = None, seed: int | None = None, device: str = "auto",
                   progress: bool = True) -> dict:
    """Run one experiment into ``folder``; returns (and writes) its ``result.json`` content.

    A failure of the experiment (an exception, a full disk) is recorded as ``status: failed`` with its
    error; bad settings (an unknown key, a wrong type) raise before anything is written."""
    exp = get_experiment(name)
    over = dict(overrides or {})
    fields = {f.name for f in dataclasses.fields(exp.config)}
    if seed is not None and "seed" in fields:
        over["seed"] = str(seed)
    if "device" in fields:
        over.setdefault("device", device)
    cfg = exp.make_config(preset, over)
    result = {"experiment": name, "title": exp.title, "source": exp.source, "preset": preset}
    ctx = Context(folder, preset=preset, data_root=data_root, device=device, seed=seed or 0, progress=progress)
    if getattr(cfg, "note", ""):  # a preset's remark, e.g. which data set stands in for the paper's
        ctx.note(cfg.note, kind="stand-in")
    t0 = time.time()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in ("result.json", "error.txt"):  # a rerun is not done until it writes a new result
            (folder / stale).unlink(missing_ok=True)
        write_json(folder / "config.json", {"experiment": name, "preset": preset, "config": to_dict(cfg)})
        result["measurements"] = exp.run(cfg, ctx)  # kept even when a claim function then fails
        result.update(status="done", claims=exp.evaluate(result["measurements"]))
    except Exception as e:  # recorded, shown in the report; the other experiments go on
        result.setdefault("measurements", {})
        result.update(status="failed", error=f"{type(e).__name__}: {e}", claims=[])
        try:
            atomic_write_bytes(folder / "error.txt", traceback.format_exc().encode())
        except OSError:  # e.g. the disk is full: the error still reaches the caller in the result
            pass
    result.update(seconds=time.time() - t0, notes=ctx.notes, figures=ctx.figures)
    write_json(folder / "result.json", result)
    return result


def run_task(task: dict) -> dict:
    """One task (see the module docs): the experiment's result (also written to ``task["folder"]``)."""
    from wganlab.memory import keep_freed_memory, tensors_on_huge_pages
    from wganlab.runtime import set_threads

    keep_freed_memory()
    tensors_on_huge_pages()
    set_threads(task.get("threads"))
    print(f"[{task['label']}] running ({task['preset']})", flush=True)
    r = run_experiment(task["experiment"], task["preset"], Path(task["folder"]), overrides=task["overrides"],
                       data_root=task.get("data_root"), seed=task["seed"], device=task.get("device", "auto"),
                       progress=task.get("progress", False))
    _log_end(task, r, print)
    return r


def _log_end(task: dict, r: dict, log) -> None:
    took = f" in {r['seconds']:.1f} s" if "seconds" in r else ""
    log(f"[{task['label']}] {r['status']}{took}" + (f": {r.get('error')}" if r["status"] != "done" else ""))


def _done_earlier(folder: Path) -> dict | None:
    """The ``result.json`` in ``folder`` when it says ``done`` (None when missing, unreadable or not done)."""
    try:
        r = read_json(folder / "result.json")
    except (OSError, ValueError):
        return None
    return r if isinstance(r, dict) and r.get("status") == "done" else None


def run_tasks(tasks: list[dict], *, resume: bool = False, executor: str = "local", ray_address: str | None = None,
              workers: int | None = None, log=print) -> list[dict]:
    """Run ``tasks`` (dicts for :func:`run_task`) on ``executor``, those with the largest
    ``"expected_seconds"`` first (a pool then ends sooner); returns one result per task, in ``tasks``' order. With
    ``resume``, a task whose ``result.json`` says ``done`` is kept, not rerun. A task that raised or whose
    worker died is returned as ``{"status": "failed", "error": ...}`` (also written to its folder when the
    disk allows); one failing task never stops the others."""
    results: list[dict | None] = [None] * len(tasks)
    todo = []
    for i, t in enumerate(tasks):
        earlier = _done_earlier(Path(t["folder"])) if resume else None
        if earlier is not None:
            results[i] = earlier
            log(f"[{t['label']}] done earlier, kept")
        else:
            todo.append(i)
    todo.sort(key=lambda i: -tasks[i].get("expected_seconds", 0.0))  # the longest start first
    if todo:
        log(f"running {len(todo)} task(s) on executor {executor!r}")
    outcomes = map_tasks(run_task, [tasks[i] for i in todo], executor, ray_address=ray_address, workers=workers)
    for i, out in zip(todo, outcomes, strict=True):
        t = tasks[i]
        if out.ok:  # its end was logged by the task itself, as it happened
            results[i] = out.value
        else:  # the task itself failed outside run_experiment's own error capture (e.g. a lost worker)
            results[i] = {"experiment": t["experiment"], "status": "failed", "error": out.error, "measurements": {}}
            try:
                write_json(Path(t["folder"]) / "result.json", results[i])
            except OSError as e:
                results[i]["error"] += f" (and its result.json could not be written: {e.strerror or e})"
            _log_end(t, results[i], log)
    return results


def numeric_leaves(obj, prefix: str = "") -> dict[str, float]:
    """Every int/float scalar in a nested dict as ``{"a.b": value}`` (lists, strings and booleans skipped)."""
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(numeric_leaves(v, f"{prefix}{k}."))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out[prefix[:-1]] = float(obj)
    return out


def aggregate(results: list[dict]) -> dict[str, dict]:
    """Mean, sample standard deviation (None for n < 2) and n of every numeric scalar measurement over the
    ``done`` results; non-finite values are left out of the statistics."""
    values: dict[str, list[float]] = {}
    for r in results:
        if r.get("status") == "done":
            for k, v in numeric_leaves(r.get("measurements", {})).items():
                values.setdefault(k, [])
                if math.isfinite(v):
                    values[k].append(v)
    return {k: {"mean": statistics.fmean(v) if v else None, "std": statistics.stdev(v) if len(v) > 1 else None,
                "n": len(v)} for k, v in values.items()}
