"""``wganlab sweep``: an experiment over the cross product of config values and seeds, each (cell, seed) an
independent task on an executor (:mod:`wganlab.executors`), aggregated into one table and plot.

Grid syntax: ``key=v1,v2,...`` (values typed by the experiment's config, as ``--set`` values are). A
tuple-valued key separates a value's items with ``|``: ``channels=16|16,32|32`` is the two values
``(16, 16)`` and ``(32, 32)``.

Layout of ``<out>``: ``sweep.json`` (what was asked), ``cells/<cell-id>/seed-<s>/`` (one
:func:`wganlab.reproduce.run_experiment` folder per task, its ``result.json`` written last), and the
aggregate: ``summary.json``, ``summary.csv``, ``summary.md`` and ``sweep-<metric>.png``. For every cell,
every numeric scalar measurement (nested keys joined with ``.``) gets its mean, sample standard deviation
(None with fewer than two seeds) and count over the seeds that finished. A failed task is listed with its
error and does not stop the others; ``resume=True`` reruns only the tasks without a ``done`` result.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import math
import statistics
import typing
from pathlib import Path

from wganlab.config import to_dict
from wganlab.errors import ConfigError
from wganlab.executors import map_tasks
from wganlab.experiments import get_experiment
from wganlab.runs import atomic_write, atomic_write_bytes, check_output_folder, read_json, slug, write_json


def parse_grid(name: str, preset: str, pairs: list[str], fixed: dict[str, str] | None = None) -> dict[str, list]:
    """``["key=v1,v2", ...]`` as ``{key: [typed values]}``, each value checked against the experiment's
    config (with the ``fixed`` overrides applied); a bad key or value raises :class:`ConfigError`."""
    exp = get_experiment(name)
    hints = typing.get_type_hints(exp.config)
    grid: dict[str, list] = {}
    for pair in pairs:
        key, eq, text = pair.partition("=")
        key = key.strip()
        if not eq or not key or not text.strip():
            raise ConfigError(f"--grid {pair!r}: expected key=value1,value2,...")
        if key in grid:
            raise ConfigError(f"--grid {key} given twice")
        if key in (fixed or {}):
            raise ConfigError(f"{key} is both in --grid and in --set")
        is_tuple = typing.get_origin(hints.get(key)) is tuple
        values = []
        for item in text.split(","):
            item = item.strip().replace("|", ",") if is_tuple else item.strip()
            cfg = exp.make_config(preset, {**(fixed or {}), key: item})
            values.append(to_dict(cfg)[key])
        grid[key] = values
    return grid


def value_text(value) -> str:
    """A grid value as the user writes it (tuple items joined with ``|``)."""
    return "|".join(str(v) for v in value) if isinstance(value, list) else str(value)


def cell_id(params: dict) -> str:
    """The folder name of a cell, e.g. ``steps-20-hidden-16`` (``base`` for an empty grid)."""
    return slug("-".join(f"{k}-{value_text(v)}" for k, v in params.items())) if params else "base"


def cells(grid: dict[str, list]) -> list[dict]:
    """The cross product of the grid, in the order the keys and values were given."""
    return [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]


def run_task(task: dict) -> dict:
    """One (cell, seed): the experiment's result (also written to ``task["folder"]/result.json``)."""
    from wganlab.reproduce import run_experiment
    from wganlab.runtime import set_threads

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


def run_tasks(tasks: list[dict], *, resume: bool = False, executor: str = "local", ray_address: str | None = None,
              workers: int | None = None, log=print) -> list[dict]:
    """Run ``tasks`` (dicts for :func:`run_task`) on ``executor``, those with the largest
    ``"expected_seconds"`` first (a pool then ends sooner); returns one result per task, in ``tasks``' order. With
    ``resume``, a task whose ``result.json`` says ``done`` is kept, not rerun. A task that raised or whose
    worker died is returned as ``{"status": "failed", "error": ...}`` (also written to its folder)."""
    results: list[dict | None] = [None] * len(tasks)
    todo = []
    for i, t in enumerate(tasks):
        done = Path(t["folder"]) / "result.json"
        if resume and done.is_file() and read_json(done).get("status") == "done":
            results[i] = read_json(done)
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
            write_json(Path(t["folder"]) / "result.json", results[i])
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


def sweep(name: str, preset: str = "quick", *, grid: dict[str, list] | None = None, seeds: int = 1,
          seed: int = 0, out: str | Path, fixed: dict[str, str] | None = None, resume: bool = False,
          executor: str = "local", ray_address: str | None = None, workers: int | None = None,
          threads: int | None = None, data_root: str | None = None, device: str = "auto",
          metric: str | None = None, log=print) -> dict:
    """Run experiment ``name`` on every cell of ``grid`` (from :func:`parse_grid`) for seeds ``seed`` ..
    ``seed + seeds - 1`` into ``out`` and write the aggregate; returns the ``summary.json`` content."""
    exp = get_experiment(name)
    grid = dict(grid or {})
    if seeds < 1:
        raise ConfigError(f"seeds must be >= 1, got {seeds}")
    has_seed = "seed" in {f.name for f in dataclasses.fields(exp.config)}
    if seeds > 1 and not has_seed:
        raise ConfigError(f"experiment {name!r} has no seed setting; use --seeds 1")
    out = check_output_folder(out)
    asked = {"experiment": name, "preset": preset, "grid": grid, "fixed": dict(fixed or {}), "seeds": seeds,
             "seed": seed, "device": device, "data_root": data_root}
    if resume and (out / "sweep.json").is_file():
        before = read_json(out / "sweep.json")
        if before != asked:
            raise ConfigError(f"{out} holds a different sweep (see its sweep.json); resume it with the same "
                              f"experiment, preset, grid, --set, seeds and seed")
    write_json(out / "sweep.json", asked)
    tasks, cell_rows = [], []
    for params in cells(grid):
        cid = cell_id(params)
        cell_rows.append({"cell": cid, "params": params})
        for s in range(seed, seed + seeds):
            overrides = {**(fixed or {}), **{k: value_text(v).replace("|", ",") for k, v in params.items()}}
            tasks.append({"experiment": name, "preset": preset, "overrides": overrides,
                          "seed": s if has_seed else None, "folder": str(out / "cells" / cid / f"seed-{s}"),
                          "label": f"{cid} seed {s}", "threads": threads, "data_root": data_root, "device": device})
    results = run_tasks(tasks, resume=resume, executor=executor, ray_address=ray_address, workers=workers, log=log)
    for i, row in enumerate(cell_rows):
        mine = results[i * seeds:(i + 1) * seeds]
        row["done"] = sum(r["status"] == "done" for r in mine)
        row["failed"] = [{"seed": seed + j, "error": r.get("error", "")} for j, r in enumerate(mine)
                         if r["status"] != "done"]
        row["stats"] = aggregate(mine)
    summary = {**asked, "cells": cell_rows}
    write_summary(out, summary, metric)
    return summary


def _metrics(summary: dict) -> list[str]:
    return list(dict.fromkeys(k for c in summary["cells"] for k in c["stats"]))


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.6g}"


def write_summary(out: Path, summary: dict, metric: str | None = None) -> None:
    """``summary.json``, ``summary.csv`` (one row per cell), ``summary.md`` and ``sweep-<metric>.png``."""
    write_json(out / "summary.json", summary)
    keys, names = list(summary["grid"]), _metrics(summary)
    def write_csv(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["cell", *keys, "done", "failed",
                        *(f"{m}.{s}" for m in names for s in ("mean", "std", "n"))])
            for c in summary["cells"]:
                stats = [c["stats"].get(m, {}).get(s) for m in names for s in ("mean", "std", "n")]
                w.writerow([c["cell"], *(value_text(c["params"][k]) for k in keys), c["done"], len(c["failed"]),
                            *("" if v is None else v for v in stats)])

    atomic_write(out / "summary.csv", write_csv)
    lines = [f"# sweep of {summary['experiment']} ({summary['preset']}), {summary['seeds']} seed(s) from "
             f"{summary['seed']}", "", "mean ± sample std (n seeds) of every numeric measurement", "",
             "| " + " | ".join([*keys, "done", *names]) + " |", "|" + "---|" * (len(keys) + 1 + len(names))]
    for c in summary["cells"]:
        cols = [value_text(c["params"][k]).replace("|", "\\|") for k in keys]
        cols.append(f"{c['done']}/{c['done'] + len(c['failed'])}")
        for m in names:
            s = c["stats"].get(m)
            cols.append("-" if s is None else f"{_fmt(s['mean'])} ± {_fmt(s['std'])} ({s['n']})")
        lines.append("| " + " | ".join(cols) + " |")
    failures = [f"- {c['cell']} seed {f['seed']}: {f['error']}" for c in summary["cells"] for f in c["failed"]]
    if failures:
        lines += ["", "## failed tasks", "", *failures]
    atomic_write_bytes(out / "summary.md", ("\n".join(lines) + "\n").encode())
    if metric is not None and metric not in names:
        print(f"wganlab: --metric {metric!r} is not a numeric measurement of this sweep; plotting {names[0]!r} "
              f"(choose from {', '.join(names)})" if names else "wganlab: no numeric measurement to plot")
        metric = None
    if names:
        _plot(out, summary, metric or names[0])


def _plot(out: Path, summary: dict, metric: str) -> None:
    """Mean ± std of ``metric`` against the first grid key, one series per value of the other keys."""
    from wganlab.report.plots import bar_plot, line_plot

    keys = list(summary["grid"])
    path = out / f"sweep-{slug(metric)}.png"
    title = f"{summary['experiment']}: {metric}, mean ± std over seeds"
    series: dict[str, tuple[list, list, list]] = {}
    for c in summary["cells"]:
        s = c["stats"].get(metric)
        if s is None or s["mean"] is None:
            continue
        label = ", ".join(f"{k}={value_text(c['params'][k])}" for k in keys[1:]) or metric
        x = value_text(c["params"][keys[0]]) if keys else "base"
        xs, ys, es = series.setdefault(label, ([], [], []))
        xs.append(x)
        ys.append(s["mean"])
        es.append(s["std"] or 0.0)
    if not series:  # no cell measured it
        return
    numeric_x = keys and all(isinstance(v, (int, float)) for v in summary["grid"][keys[0]])
    if numeric_x:
        line_plot(path, {lb: ([float(x) for x in xs], ys) for lb, (xs, ys, _) in series.items()},
                  errors={lb: es for lb, (_, _, es) in series.items()}, xlabel=keys[0], ylabel=metric, title=title)
    else:
        groups = list(dict.fromkeys(x for xs, _, _ in series.values() for x in xs))
        bars = {lb: [ys[xs.index(g)] if g in xs else float("nan") for g in groups]
                for lb, (xs, ys, _) in series.items()}
        errs = {lb: [es[xs.index(g)] if g in xs else 0.0 for g in groups] for lb, (xs, _, es) in series.items()}
        bar_plot(path, groups, bars, errors=errs, ylabel=metric, title=title)
