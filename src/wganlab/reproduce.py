"""``wganlab reproduce``: run experiments by name into one folder and build the report.

Layout: ``<out>/config.json`` (what was asked), then one sub-folder per experiment holding its
``config.json`` (written first), its plots, grids and tables, and ``result.json`` (status, seconds,
measurements, claim verdicts, notes), written last and atomically. An interrupted run resumes with
``resume=True``: experiments whose ``result.json`` says ``done`` are not rerun. A failing experiment
is recorded as ``failed`` with its error and the others go on.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from pathlib import Path

from wganlab.config import to_dict
from wganlab.errors import ConfigError
from wganlab.experiments import EXPERIMENTS, Context, get_experiment
from wganlab.runs import check_output_folder, new_run_dir, read_json, write_json


def run_experiment(name: str, preset: str, folder: Path, *, overrides: dict | None = None,
                   data_root: str | None = None, seed: int | None = None, device: str = "auto",
                   progress: bool = True) -> dict:
    """Run one experiment into ``folder``; returns (and writes) its ``result.json`` content."""
    exp = get_experiment(name)
    over = dict(overrides or {})
    fields = {f.name for f in dataclasses.fields(exp.config)}
    if seed is not None and "seed" in fields:
        over["seed"] = str(seed)
    if "device" in fields:
        over.setdefault("device", device)
    cfg = exp.make_config(preset, over)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "config.json", {"experiment": name, "preset": preset, "config": to_dict(cfg)})
    ctx = Context(folder, data_root=data_root, device=device, seed=seed or 0, progress=progress)
    t0 = time.time()
    result = {"experiment": name, "title": exp.title, "source": exp.source, "preset": preset}
    try:
        measurements = exp.run(cfg, ctx)
        result.update(status="done", measurements=measurements, claims=exp.evaluate(measurements))
    except Exception as e:  # recorded, shown in the report; the other experiments go on
        (folder / "error.txt").write_text(traceback.format_exc())
        result.update(status="failed", error=f"{type(e).__name__}: {e}", measurements={}, claims=[])
    result.update(seconds=time.time() - t0, notes=ctx.notes, figures=ctx.figures)
    write_json(folder / "result.json", result)
    return result


def reproduce(names: list[str] | None = None, preset: str = "quick", *, out: str | Path | None = None,
              runs_root: str | Path = "runs", resume: bool = False, data_root: str | None = None,
              seed: int | None = None, device: str = "auto", overrides: dict[str, dict] | None = None,
              progress: bool = True) -> Path:
    """Run ``names`` (all experiments when None) with ``preset`` and write ``report.html``; returns the folder."""
    names = list(names or EXPERIMENTS)
    for n in names:
        get_experiment(n)
    unknown = set(overrides or {}) - set(names)
    if unknown:
        raise ConfigError(f"overrides given for experiments not being run: {', '.join(sorted(unknown))}")
    if out is None:
        if resume:
            raise ConfigError("--resume needs --out: the folder of the run to continue")
        folder = new_run_dir(runs_root, f"reproduce-{preset}")
    else:
        folder = check_output_folder(out)
    if not (resume and (folder / "config.json").is_file()):
        write_json(folder / "config.json", {"experiments": names, "preset": preset, "seed": seed,
                                            "device": device, "data_root": data_root})
    for name in names:
        done = folder / name / "result.json"
        if resume and done.is_file() and read_json(done).get("status") == "done":
            print(f"[{name}] done earlier, kept")
            continue
        print(f"[{name}] running ({preset})", flush=True)
        r = run_experiment(name, preset, folder / name, overrides=(overrides or {}).get(name),
                           data_root=data_root, seed=seed, device=device, progress=progress)
        print(f"[{name}] {r['status']} in {r['seconds']:.1f} s", flush=True)
    from wganlab.report.html import build_report

    build_report(folder)
    return folder
