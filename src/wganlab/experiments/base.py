"""What an experiment is: a typed config with ``quick``, ``medium`` and ``paper`` presets, a run function
that writes its files into a folder and returns measurements, and the paper's claims it checks, as data.

A claim's verdict is *computed* from the measurements (an ordering, a ratio, a crossover, a tolerance),
never written by hand: when our run contradicts the paper, the report says so.

Missing measurements and bugs are kept apart: :meth:`Experiment.evaluate` hands each claim the
measurements as :class:`Measurements`, whose lookup of a missing top-level key raises
:class:`NotMeasured`; only that makes a claim "not comparable". Any other exception inside a claim
function (a TypeError, a misspelt nested key, a division by zero) propagates: tests fail on it, and a
real run records the experiment as ``failed`` with the error (and the claim's name) in ``error.txt`` and
on the report, never as a quiet "not comparable".
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from wganlab.config import PRESET_NAMES
from wganlab.errors import ConfigError
from wganlab.runs import write_json
from wganlab.runtime import resolve_device

HOLDS, FAILS, NA = "holds", "does not hold", "not comparable"


class NotMeasured(KeyError):
    """A claim asked for a measurement this run did not take."""


class Measurements(dict):
    """An experiment's measurements; a missing top-level key raises :class:`NotMeasured` (nested values are
    plain containers, so a misspelt nested key raises an ordinary KeyError)."""

    def __missing__(self, key):
        raise NotMeasured(key)


@dataclass
class Verdict:
    ours: str  # our number(s), formatted for the report
    status: str  # HOLDS | FAILS | NA
    note: str = ""


@dataclass(frozen=True)
class Claim:
    key: str
    statement: str  # the paper's claim, in words
    source: str  # paper and figure/table, e.g. "001 Fig. 3"
    paper_value: str  # the paper's number ("" when it gives none)
    evaluate: Callable[[dict], Verdict]


@dataclass
class Context:
    """Where and how an experiment runs; helpers to write its files."""

    dir: Path
    preset: str = "quick"  # a paper preset never falls back to another data set (common.load_data)
    data_root: str | None = None
    device: str = "auto"
    seed: int = 0
    progress: bool = True
    notes: list[dict] = field(default_factory=list)  # {"kind", "text"}: kind "remark", or "repeats" (reproduce's)
    figures: list[dict] = field(default_factory=list)  # {"file", "caption"} in report order

    @property
    def torch_device(self) -> torch.device:
        """Where the experiment's own models and tensors go: ``device`` resolved (``auto``: CUDA when present)."""
        return resolve_device(self.device)

    def figure(self, file: str, caption: str) -> str:
        """Show ``file`` (already written in ``dir``) in the report with ``caption``."""
        self.figures.append({"file": file, "caption": caption})
        return file

    def note(self, text: str, kind: str = "remark") -> None:
        """A visible remark for the report (e.g. a dataset fallback)."""
        self.notes.append({"kind": kind, "text": text})

    def path(self, name: str) -> Path:
        return self.dir / name

    def save_grid(self, name: str, images: torch.Tensor, caption: str, nrow: int = 8) -> str:
        """An image grid in the report."""
        from wganlab.images import enlarge, save_image_grid

        save_image_grid(enlarge(images.detach().cpu()), self.path(name), nrow=nrow)
        return self.figure(name, caption)

    def save_table(self, name: str, rows: list[dict]) -> str:
        """``name.csv`` and ``name.json`` with the same rows (the numbers behind a plot)."""
        write_json(self.path(f"{name}.json"), rows)
        keys = list(dict.fromkeys(k for r in rows for k in r))
        with open(self.path(f"{name}.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)
        return f"{name}.csv"


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    source: str  # the paper figures/tables it reproduces
    config: type  # a dataclass; its defaults are the quick preset unless presets say otherwise
    presets: dict[str, dict]
    run: Callable[[Any, Context], dict]  # -> measurements (JSON-able); files go to ctx.dir
    claims: tuple[Claim, ...]
    description: str = ""
    # measured times, each experiment on one core of an idle 2-core machine running two at once (quick: the run
    # in results/quick, 2026-12-03, Intel Xeon; medium: 2026-12-02, the machine of those days); quick runs the
    # longest first
    quick_seconds: float = 0.0
    medium_seconds: float = 0.0
    # the paper preset's time, on which device, and whether measured (results/paper on the CPU; scripts/gpu_check.sh
    # on an H200, each loop's first seconds extrapolated by scripts/time_presets.py) or estimated
    paper_time: str = ""

    def make_config(self, preset: str, overrides: dict | None = None):
        from wganlab.config import resolve

        if preset not in self.presets:
            known = "" if preset in PRESET_NAMES else f" (presets are {', '.join(PRESET_NAMES)})"
            raise ConfigError(f"experiment {self.name!r} has no preset {preset!r}{known}; choose one of "
                              f"{', '.join(self.presets)}")
        return resolve(self.config, self.presets, preset, overrides=overrides or {})

    def evaluate(self, measurements: dict) -> list[dict]:
        """Every claim with our verdict. A claim that asks for a top-level measurement this run did not take
        is 'not comparable'; any other exception in a claim function propagates (see the module docstring)."""
        out = []
        m = Measurements(measurements)
        for c in self.claims:
            try:
                v = c.evaluate(m)
            except NotMeasured as e:
                v = Verdict("-", NA, f"not measured in this run: {e.args[0]!r}")
            except Exception as e:
                e.add_note(f"in claim {c.key!r} of experiment {self.name!r}")
                raise
            out.append({"key": c.key, "statement": c.statement, "source": c.source,
                        "paper_value": c.paper_value, **dataclasses.asdict(v)})
        return out


EXPERIMENTS: dict[str, Experiment] = {}


def register(exp: Experiment) -> Experiment:
    if exp.name in EXPERIMENTS:
        raise ValueError(f"experiment {exp.name!r} registered twice")
    EXPERIMENTS[exp.name] = exp
    return exp


def get_experiment(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise ConfigError(f"unknown experiment {name!r}; choose from: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def verdict(ok: bool, ours: str, note: str = "") -> Verdict:
    return Verdict(ours, HOLDS if ok else FAILS, note)
