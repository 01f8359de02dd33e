"""Time a preset's first seconds and extrapolate its whole time: the measurement behind `wganlab list`'s
paper-preset times.

    python scripts/time_presets.py OUT.jsonl NAME [--seconds S] [reproduce's options ...]
    python scripts/time_presets.py --summary OUT.jsonl

The first form runs ``wganlab reproduce NAME`` in this process with every training loop cut after ``S``
seconds of its own steps (default 5): a ``Trainer`` (its steps and, apart, its tracked measurements) and each
progress loop of :func:`wganlab.experiments.common.fit_critic` and :func:`wganlab.direct.patch_swd_descent`.
Everything outside those loops (data, OT-Means, exact W1 evaluations, claims) runs in full. Each cut loop
appends one JSON line to ``OUT.jsonl`` (a ``Trainer`` then runs its last step, which logs the row its
experiment reads): the loop, its steps (``total``), the steps timed (``done``), the seconds of its first step
(set-up, kernels' tuning) and of the later ones, and its measurements' seconds. At the end a line
``{"loop": "(whole run)", "seconds": ...}`` gives the wall time of the cut run (``status`` "stopped", and a
traceback of where it was, when ``timeout`` ended it first). The extrapolated time of a loop is
``first + (total - 1) * later / (done - 1) + measures * fastest_measure``, with one measurement at step 0 and
one every ``track_every`` steps (the fastest of the run's measurements: the first includes compiling); the
run's other work is the cut run's wall time less its loops' time. Each loop synchronises the device before it
reads the clock. ``--summary`` prints that extrapolation per experiment.
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import sys
import time
from pathlib import Path

import torch

import wganlab.direct as direct
import wganlab.experiments.common as common
from wganlab import cli
from wganlab.train import Trainer


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class Recorder:
    def __init__(self, out: Path, experiment: str, seconds: float):
        self.out, self.experiment, self.seconds = out, experiment, seconds

    def write(self, row: dict) -> None:
        with self.out.open("a") as f:
            f.write(json.dumps({"experiment": self.experiment, **row}) + "\n")

    def cut_iterable(self, iterable, desc: str = "", **_kw):
        """Yield from ``iterable`` until ``seconds`` of steps after the first have passed, then its last item
        (untimed), so that what the loop does at its last step (a log row, a break) still happens."""
        items = list(iterable)
        total, done, t0, first, later = len(items), 0, time.perf_counter(), 0.0, 0.0
        for item in items:
            yield item
            done += 1
            _sync()
            now = time.perf_counter()
            if done == 1:
                first, t1 = now - t0, now
            else:
                later = now - t1
            if later >= self.seconds:
                break
        self.write({"loop": desc, "kind": "loop", "total": total, "done": done, "first_s": first, "later_s": later})
        if done < total:
            yield items[-1]


def install(rec: Recorder):
    """Cut every Trainer and progress loop after ``rec.seconds`` of its later steps; returns the function that
    puts everything back."""
    iteration, measure, tqdm = Trainer.iteration, Trainer.measure, common.tqdm

    def timing(trainer) -> dict:
        if not hasattr(trainer, "_timing"):
            trainer._timing = {"measures": [], "done": 0, "first_s": 0.0, "later_s": 0.0}
        return trainer._timing

    def timed_measure(self):
        _sync()
        t0 = time.perf_counter()
        out = measure(self)
        _sync()
        timing(self)["measures"].append(time.perf_counter() - t0)
        return out

    def cut_iteration(self, *a, **kw):
        tm = timing(self)
        if tm.get("cut"):  # the last step, untimed: it logs the final row that the experiment reads
            return iteration(self, *a, **kw)
        t0 = time.perf_counter()
        out = iteration(self, *a, **kw)
        _sync()
        tm["first_s" if tm["done"] == 0 else "later_s"] += time.perf_counter() - t0
        tm["done"] += 1
        if tm["later_s"] >= rec.seconds or self.step + 1 >= self.cfg.steps:
            rec.write({"loop": self.run_dir.name, "kind": "train", "total": self.cfg.steps, "done": tm["done"],
                       "first_s": tm["first_s"], "later_s": tm["later_s"], "track_every": self.cfg.track_every,
                       "measures_s": list(tm["measures"])})
            tm["cut"] = True
            self.step = max(self.step, self.cfg.steps - 2)  # after the loop's own increment, one step is left
        return out

    def undo():
        Trainer.iteration, Trainer.measure = iteration, measure
        common.tqdm = direct.tqdm = tqdm

    Trainer.iteration, Trainer.measure = cut_iteration, timed_measure
    common.tqdm = direct.tqdm = rec.cut_iterable
    return undo


def extrapolate(rows: list[dict]) -> dict[str, dict]:
    """Per experiment: ``loops``, the uncut loops' seconds (see the module docs), ``other``, the seconds of
    the work outside them, and ``stopped``, whether the cut run was stopped before its end (then ``other``
    counts only what ran, and loops that had not started are missing)."""
    out: dict[str, dict] = {}
    for name in dict.fromkeys(r["experiment"] for r in rows):
        mine = [r for r in rows if r["experiment"] == name]
        loops = [r for r in mine if r["kind"] != "run"]
        measures = [m for r in loops for m in r.get("measures_s", [])]
        fastest = min(measures, default=0.0)  # the first includes compiling and caching
        total, spent = 0.0, 0.0
        for r in loops:
            per_step = r["later_s"] / max(r["done"] - 1, 1)
            n_measures = r["total"] // r["track_every"] + 1 if r["kind"] == "train" else 0
            total += r["first_s"] + (r["total"] - 1) * per_step + n_measures * fastest
            spent += r["first_s"] + r["later_s"] + sum(r.get("measures_s", []))
        run = next((r for r in mine if r["kind"] == "run"), {"seconds": spent, "status": "stopped"})
        out[name] = {"loops": total, "other": run["seconds"] - spent, "stopped": run["status"] == "stopped"}
    return out


def main(argv: list[str]) -> int:
    if argv[:1] == ["--summary"] and len(argv) == 2:
        rows = [json.loads(line) for line in Path(argv[1]).read_text().splitlines() if line.strip()]
        for name, e in extrapolate(rows).items():
            print(f"{name:24s} {(e['loops'] + e['other']) / 3600:8.2f} h: loops {e['loops']:.0f} s, other work "
                  f"{e['other']:.0f} s" + (" (stopped early: other work and loops not started are missing)"
                                           if e["stopped"] else ""))
        return 0
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out, name, rest = Path(argv[0]), argv[1], argv[2:]
    seconds = 5.0
    if "--seconds" in rest:
        i = rest.index("--seconds")
        seconds = float(rest[i + 1])
        rest = rest[:i] + rest[i + 2:]
    rec = Recorder(out, name, seconds)
    t0 = time.perf_counter()

    def stopped(signum, _frame):  # `timeout` ended the cut run: say when and where, for the summary
        rec.write({"loop": "(whole run)", "kind": "run", "seconds": time.perf_counter() - t0, "status": "stopped"})
        faulthandler.dump_traceback()
        os._exit(128 + signum)

    undo, on_term = install(rec), signal.signal(signal.SIGTERM, stopped)
    try:
        status = cli.main(["reproduce", name, "--executor", "local", *rest])
    finally:
        undo()
        signal.signal(signal.SIGTERM, on_term)
    rec.write({"loop": "(whole run)", "kind": "run", "seconds": time.perf_counter() - t0, "status": status})
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
