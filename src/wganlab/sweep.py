"""``wganlab sweep``: an experiment over the cross product of config values and seeds, each (cell, seed) an
independent task on an executor (:mod:`wganlab.executors`), aggregated into one table and plot.

Grid syntax: ``key=v1,v2,...`` (values typed by the experiment's config, as ``--set`` values are). A
tuple-valued key separates a value's items with ``|``: ``channels=16|16,32|32`` is the two values
``(16, 16)`` and ``(32, 32)``.

Layout of ``<out>``: ``sweep.json`` (what was asked), ``cells/<cell-id>/seed-<s>/`` (one
:func:`wganlab.runner.run_experiment` folder per task, its ``result.json`` written last), and the
aggregate: ``summary.json``, ``summary.csv``, ``summary.md`` and ``sweep-<metric>.png``. For every cell,
every numeric scalar measurement (nested keys joined with ``.``) gets its mean, sample standard deviation
(None with fewer than two seeds) and count over the seeds that finished. A failed task is listed with its
error and does not stop the others; ``resume=True`` reruns only the tasks without a ``done`` result.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import typing
from pathlib import Path

from wganlab.config import to_dict
from wganlab.errors import ConfigError
from wganlab.experiments import get_experiment
from wganlab.runner import aggregate, run_tasks
from wganlab.runs import atomic_write, atomic_write_bytes, check_output_folder, read_json, slug, unique_slug, write_json


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
            raise ConfigError(f"grid entry {pair!r}: expected key=value1,value2,...")
        if key in grid:
            raise ConfigError(f"grid key {key!r} given twice")
        if key in (fixed or {}):
            raise ConfigError(f"{key!r} is both a grid key and a fixed value")
        is_tuple = typing.get_origin(hints.get(key)) is tuple
        values, given = [], []
        for item in text.split(","):
            item = item.strip()
            cfg = exp.make_config(preset, {**(fixed or {}), key: item.replace("|", ",") if is_tuple else item})
            value = to_dict(cfg)[key]
            if value in values:  # one cell twice: its tasks would share a folder
                raise ConfigError(f"grid key {key!r}: {item!r} repeats {given[values.index(value)]!r} (both are "
                                  f"{value_text(value)}); give each value once")
            values.append(value)
            given.append(item)
        grid[key] = values
    return grid


def value_text(value) -> str:
    """A grid value as the user writes it (tuple items joined with ``|``)."""
    return "|".join(str(v) for v in value) if isinstance(value, list) else str(value)


def cell_id(params: dict) -> str:
    """The folder name of a cell, e.g. ``steps-20-hidden-16`` (``base`` for an empty grid); a name that had to
    be shortened or changed to be a file name gets a hash suffix, so different cells never share a folder."""
    return unique_slug("-".join(f"{k}-{value_text(v)}" for k, v in params.items())) if params else "base"


def cells(grid: dict[str, list]) -> list[dict]:
    """The cross product of the grid, in the order the keys and values were given."""
    return [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]


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
        raise ConfigError(f"experiment {name!r} has no seed setting; seeds must be 1")
    out = check_output_folder(out)
    asked = {"experiment": name, "preset": preset, "grid": grid, "fixed": dict(fixed or {}), "seeds": seeds,
             "seed": seed, "device": device, "data_root": data_root}
    if resume and (out / "sweep.json").is_file():
        before = read_json(out / "sweep.json")
        if before != asked:
            raise ConfigError(f"{out} holds a different sweep (see its sweep.json); resume it with the same "
                              f"experiment, preset, grid, fixed values, seeds and seed")
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
    run = dict(resume=resume, executor=executor, ray_address=ray_address, workers=workers, log=log)
    # measurements are known only once a task has run: with a metric asked for, the first task runs alone and
    # a metric it did not measure is refused before the others run
    results = run_tasks(tasks[:1], **run) if metric is not None else []
    if results and results[0]["status"] == "done":
        _check_metric(metric, list(aggregate(results)), f"the first task ({tasks[0]['label']})")
    results += run_tasks(tasks[len(results):], **run)
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


def _check_metric(metric: str, names: list[str], where: str) -> None:
    """Raise :class:`ConfigError` unless ``metric`` is one of ``names``, the numeric measurements of ``where``."""
    if metric not in names:
        raise ConfigError(f"metric {metric!r} is not a numeric measurement of {where}; choose from "
                          f"{', '.join(names) or '(none)'}")


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.6g}"


def write_summary(out: Path, summary: dict, metric: str | None = None) -> None:
    """``summary.json``, ``summary.csv`` (one row per cell), ``summary.md`` and ``sweep-<metric>.png``
    (``metric`` None: the first numeric measurement); an unknown ``metric`` raises after the tables are
    written (its names are known only once tasks have finished; :func:`sweep` checks it after its first task)."""
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
    if metric is not None and names:  # the tables above are kept; rerun with resume
        _check_metric(metric, names, "this sweep")
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
