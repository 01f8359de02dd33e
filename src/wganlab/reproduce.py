"""``wganlab reproduce``: run experiments by name into one folder and build the report.

Layout: ``<out>/config.json`` (what was asked), ``<out>/sessions.jsonl`` (a ``start`` and an ``end`` line per
invocation, first or ``--resume``: commit, time, machine, load, and at the end the seconds it took), then one
sub-folder per experiment holding its
``config.json`` (written first), its plots, grids and tables, and ``result.json`` (status, seconds,
measurements, claim verdicts, notes), written last and atomically. An interrupted run resumes with
``resume=True``: experiments whose ``result.json`` says ``done`` are not rerun. A failing experiment
is recorded as ``failed`` with its error and the others go on.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from wganlab.errors import ConfigError
from wganlab.experiments import EXPERIMENTS, get_experiment
from wganlab.runner import aggregate, run_tasks
from wganlab.runs import append_jsonl, check_output_folder, new_run_dir, read_json, write_json
from wganlab.runtime import provenance, resolve_device


def reproduce(names: list[str] | None = None, preset: str = "quick", *, out: str | Path | None = None,
              runs_root: str | Path = "runs", resume: bool = False, data_root: str | None = None,
              seed: int | None = None, device: str = "auto", overrides: dict[str, dict] | None = None,
              progress: bool = True, repeats: int = 1, executor: str = "auto", ray_address: str | None = None,
              workers: int | None = None, threads: int | None = None) -> Path:
    """Run ``names`` (all experiments when None) with ``preset`` and write ``report.html``; returns the folder.

    Experiments are tasks of :func:`wganlab.runner.run_tasks` on ``executor``. With ``repeats`` > 1 every
    experiment that has a seed also runs with the next ``repeats - 1`` seeds into
    ``<name>/repeats/seed-<s>/``; the mean, std and n of its numeric measurements over all its seeds go to
    ``<name>/repeats.json`` and a note in the report.
    """
    names = list(names or EXPERIMENTS)
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"experiment(s) named more than once: {', '.join(twice)}")
    overrides = overrides or {}
    unknown = set(overrides) - set(names)
    if unknown:
        raise ConfigError(f"overrides given for experiments not being run: {', '.join(sorted(unknown))}")
    if repeats < 1:
        raise ConfigError(f"repeats must be >= 1, got {repeats}")
    resolve_device(device)
    configs = {name: get_experiment(name).make_config(preset, overrides.get(name)) for name in names}
    if out is None:  # every setting is checked: only now is a run folder made
        if resume:
            raise ConfigError("resume needs out: the folder of the run to continue")
        folder = new_run_dir(runs_root, f"reproduce-{preset}")
    else:
        folder = check_output_folder(out)
    if not (resume and (folder / "config.json").is_file()):
        write_json(folder / "config.json", {"experiments": names, "preset": preset, "seed": seed,
                                            "device": device, "data_root": data_root, "repeats": repeats})
    tasks, seeds = [], {}
    for name, cfg in configs.items():
        exp = get_experiment(name)
        first = seed if seed is not None else getattr(cfg, "seed", 0)
        seeds[name] = [first] + (list(range(first + 1, first + repeats)) if hasattr(cfg, "seed") else [])
        for k, s in enumerate(seeds[name]):
            tasks.append({"experiment": name, "preset": preset, "overrides": overrides.get(name),
                          "seed": seed if k == 0 else s, "data_root": data_root, "device": device,
                          "progress": progress, "label": name if k == 0 else f"{name} seed {s}",
                          "expected_seconds": exp.quick_seconds if preset == "quick" else 0.0,
                          "folder": str(folder / name if k == 0 else folder / name / "repeats" / f"seed-{s}")})
    executor, workers, threads = _parallelism(executor, workers, threads, len(tasks), device)
    for t in tasks:
        t.update(threads=threads, progress=progress and workers == 1)
    append_jsonl(folder / "sessions.jsonl", {"event": "start", "resume": resume, "executor": executor,
                                             "workers": workers, "threads": threads, **provenance(device)})
    t0 = time.perf_counter()
    results = run_tasks(tasks, resume=resume, executor=executor, ray_address=ray_address, workers=workers)
    append_jsonl(folder / "sessions.jsonl", {"event": "end", "seconds": round(time.perf_counter() - t0, 1),
                                             "done": sum(r["status"] == "done" for r in results),
                                             "tasks": len(results), **provenance(device)})
    if repeats > 1:
        at = 0
        for name in names:
            mine, at = results[at:at + len(seeds[name])], at + len(seeds[name])
            _write_repeats(folder / name, seeds[name], mine, aggregate(mine))
    from wganlab.report.html import build_report

    build_report(folder)
    return folder


def unfinished(folder: str | Path) -> list[str]:
    """The experiments of the reproduce run in ``folder`` that did not end ``done`` (failed, interrupted or
    never run), from its files."""
    asked = read_json(Path(folder) / "config.json").get("experiments", [])
    out = []
    for name in asked:
        path = Path(folder) / name / "result.json"
        try:
            ok = path.is_file() and read_json(path).get("status") == "done"
        except (OSError, ValueError, AttributeError):
            ok = False
        if not ok:
            out.append(name)
    return out


def _parallelism(executor: str, workers: int | None, threads: int | None, n_tasks: int,
                 device: str) -> tuple[str, int, int | None]:
    """``(executor, workers, torch threads per task)``. ``auto``: on the CPU, a process pool with one
    worker per core (at most one per task) and the cores shared out as threads; on a GPU, or with one
    core or one task, in this process."""
    cores = os.cpu_count() or 1
    if executor == "auto":
        on_gpu = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
        workers = workers or min(cores, n_tasks)
        executor = "process" if workers > 1 and not on_gpu else "local"
    workers = 1 if executor == "local" else (workers or min(cores, n_tasks))
    if threads is None and executor == "process":
        threads = max(1, cores // workers)
    return executor, workers, threads


def _write_repeats(folder: Path, seeds: list[int], results: list[dict], stats: dict) -> None:
    """``repeats.json`` and a note in the experiment's ``result.json`` with the spread over seeds."""
    done = sum(r["status"] == "done" for r in results)
    write_json(folder / "repeats.json", {"seeds": seeds, "done": done, "stats": stats})
    main = read_json(folder / "result.json")
    if len(seeds) == 1:
        note = "no repeats: this experiment has no seed setting"
    else:
        shown = "; ".join(f"{k} = {v['mean']:.4g} ± {v['std'] if v['std'] is not None else float('nan'):.2g}"
                          for k, v in list(stats.items())[:6] if v["mean"] is not None)
        note = (f"over {done} of {len(seeds)} seeds ({seeds[0]}..{seeds[-1]}), mean ± sample std: {shown} "
                f"(all measurements in repeats.json)")
    kept = [n for n in main.get("notes", []) if not (isinstance(n, dict) and n.get("kind") == "repeats")]
    main["notes"] = [*kept, {"kind": "repeats", "text": note}]
    write_json(folder / "result.json", main)
