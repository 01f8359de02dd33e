"""The house: one runner below reproduce and sweep (no import circle), one experiment list, a report rebuilt
from the run folder's files alone (no torch, no experiment module), notes with a kind, library messages in
parameter names."""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from wganlab.errors import ConfigError, InputError

SRC = Path(__file__).resolve().parents[1] / "src" / "wganlab"


def _imports(path: Path) -> set[str]:
    """The wganlab modules a file imports (at any depth of the file)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("wganlab"):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("wganlab"))
    return out


def test_reproduce_and_sweep_stand_on_the_runner_not_on_each_other():
    rep, swp, run = (_imports(SRC / f"{m}.py") for m in ("reproduce", "sweep", "runner"))
    assert "wganlab.sweep" not in rep and "wganlab.reproduce" not in swp
    assert "wganlab.runner" in rep and "wganlab.runner" in swp
    assert not run & {"wganlab.reproduce", "wganlab.sweep", "wganlab.cli"}


def test_the_experiment_list_is_one_list_in_catalogue_order():
    from wganlab.experiments import _MODULES, CATALOGUE, EXPERIMENTS

    assert list(EXPERIMENTS) == list(CATALOGUE) and len(CATALOGUE) == len(_MODULES) >= 13
    modules = [e.run.__module__.rsplit(".", 1)[1] for e in EXPERIMENTS.values()]
    assert modules == list(_MODULES)  # registered in the list's order, nothing re-sorted afterwards


def _write_run(folder: Path) -> None:
    """A reproduce run folder as reproduce leaves it: one done experiment, one failed, one never started."""
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(
        {"experiments": ["zeta", "alpha", "never"], "preset": "medium", "seed": None}))
    for name, status in (("zeta", "done"), ("alpha", "failed")):
        (folder / name).mkdir()
        (folder / name / "config.json").write_text(json.dumps({"experiment": name, "config": {"steps": 3}}))
        result = {"experiment": name, "title": f"title of {name}", "source": "000 Fig. 3, 004 Table 1",
                  "status": status, "seconds": 1.5, "figures": [],
                  "notes": [{"kind": "remark", "text": f"remark of {name}"}, "an old plain-string note"],
                  "claims": [{"key": "k", "statement": "W1 falls", "source": "001 Fig. 8", "paper_value": "1.0",
                              "ours": "0.9", "status": "holds", "note": ""}] if status == "done" else [],
                  **({"error": "NotOptimalError: duality gap 0.1"} if status == "failed" else {})}
        (folder / name / "result.json").write_text(json.dumps(result))


_REBUILD = """
import sys
from wganlab.cli import main
assert main(["report", sys.argv[1]]) == 0
heavy = sorted(m for m in sys.modules if m == "torch" or m.startswith(("torch.", "wganlab.experiments",
                                                                       "matplotlib")))
assert not heavy, f"rebuilding the report imported {heavy[:5]}"
"""


def test_report_is_rebuilt_from_the_files_alone(tmp_path):
    run = tmp_path / "run"
    _write_run(run)
    proc = subprocess.run([sys.executable, "-c", _REBUILD, str(run)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    page = (run / "report.html").read_text()
    # sections in the order the run asked for them, not sorted or taken from a registry
    assert page.index("id='zeta'") < page.index("id='alpha'") < page.index("id='never'")
    assert "not run" in page and "NotOptimalError: duality gap 0.1" in page and "<b>medium</b>" in page
    assert "remark of zeta" in page and "an old plain-string note" in page
    # the legend names every paper cited by number, and only those
    for name in ("Elnekave &amp; Weiss", "ICLR 2025", "Stanczuk", "Mallasto"):
        assert name in page
    assert "Laschos" not in page


def test_report_of_a_garbage_result_is_an_error_row_not_a_traceback(tmp_path):
    from wganlab.report.html import build_report

    run = tmp_path / "run"
    _write_run(run)
    (run / "zeta" / "result.json").write_bytes(b"\x00\xffnot json")
    (run / "alpha" / "result.json").write_text("[1, 2]")
    page = build_report(run).read_text()
    assert "unreadable result.json" in page and "not a result.json of wganlab" in page


def test_report_shows_the_discussion_beside_its_claim_and_refuses_a_stale_key(tmp_path):
    from wganlab.report.html import build_report

    run = tmp_path / "run"
    _write_run(run)
    (run / "discussion.json").write_text(json.dumps({"zeta:k": "scale: 0.9 < 1.0 <at 1% of the steps>"}))
    page = build_report(run).read_text()
    row = page[page.index("W1 falls"):page.index("</tr>", page.index("W1 falls"))]
    assert "Why: scale: 0.9 &lt; 1.0 &lt;at 1% of the steps&gt;" in row  # beside its claim, escaped
    (run / "discussion.json").write_text(json.dumps({"zeta:k": "ok", "alpha:gone": "a claim no run has"}))
    with pytest.raises(InputError, match="no claim 'alpha:gone'"):
        build_report(run)
    (run / "discussion.json").write_text(json.dumps(["not", "an", "object"]))
    with pytest.raises(InputError, match="experiment:claim"):
        build_report(run)


def test_report_cli_refuses_a_garbage_config_in_one_line(tmp_path, capsys):
    from wganlab.cli import main

    run = tmp_path / "run"
    _write_run(run)
    (run / "config.json").write_text("{oops")
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert "not a readable JSON file" in err and err.count("\n") == 1


def test_library_messages_name_parameters_not_cli_flags(tmp_path):
    from wganlab.executors import map_tasks
    from wganlab.reproduce import reproduce

    with pytest.raises(ConfigError) as e:
        reproduce(["mean-vs-real-dimension"], resume=True, out=None, progress=False)
    assert "--" not in str(e.value) and "resume needs out" in str(e.value)
    with pytest.raises(ConfigError) as e:
        map_tasks(abs, [1], "local", ray_address="1.2.3.4:1")
    assert "--" not in str(e.value)
    for module in ("reproduce", "sweep", "executors", "runtime", "runner"):
        text = (SRC / f"{module}.py").read_text()
        messages = [n.value for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Constant)
                    and isinstance(n.value, str)]
        flags = [m for m in messages if re.search(r"(^|\s|\()--[a-z]", m) and "\n" not in m]
        assert not flags, f"{module}.py speaks in CLI flags: {flags}"


def test_claims_table_puts_runs_side_by_side(tmp_path, capsys):
    from wganlab.cli import main

    medium, quick = tmp_path / "medium", tmp_path / "quick"
    _write_run(medium)
    _write_run(quick)
    q = json.loads((quick / "config.json").read_text())
    (quick / "config.json").write_text(json.dumps({**q, "preset": "quick"}))
    r = json.loads((quick / "zeta" / "result.json").read_text())
    r["claims"][0].update(ours="2|3", status="does not hold")
    (quick / "zeta" / "result.json").write_text(json.dumps(r))
    assert main(["report", "--claims", str(quick), str(medium)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| experiment | claim | paper | paper's number | quick | medium |"
    assert lines[2] == "| zeta | W1 falls | 001 Fig. 8 | 1.0 | 2\\|3 (does not hold) | 0.9 (holds) |"
    assert len(lines) == 3  # the failed and the never-run experiments have no claims


def test_a_presets_note_reaches_the_report_as_a_stand_in(tmp_path, monkeypatch):
    import dataclasses

    from wganlab.experiments import base
    from wganlab.runner import run_experiment

    @dataclasses.dataclass
    class Cfg:
        note: str = ""

    exp = base.Experiment("toy", "toy", "000 Fig. 1", Cfg, {"quick": {}, "medium": {"note": "digits stand in"}},
                          lambda cfg, ctx: {"x": 1}, ())
    monkeypatch.setitem(base.EXPERIMENTS, "toy", exp)
    assert run_experiment("toy", "quick", tmp_path / "q")["notes"] == []
    medium = run_experiment("toy", "medium", tmp_path / "m")
    assert medium["status"] == "done" and medium["notes"] == [{"kind": "stand-in", "text": "digits stand in"}]


def test_every_reproduce_session_records_its_commit_machine_and_time_and_the_report_shows_them(tmp_path):
    from wganlab.reproduce import reproduce
    from wganlab.runs import read_jsonl
    from wganlab.runtime import cpu_model

    out = tmp_path / "run"
    reproduce(["mean-vs-real-dimension"], out=out, progress=False, executor="local",
              overrides={"mean-vs-real-dimension": {"dims": (2, 20), "repeats": 2}})
    reproduce(["mean-vs-real-dimension"], out=out, resume=True, progress=False, executor="local",
              overrides={"mean-vs-real-dimension": {"dims": (2, 20), "repeats": 2}})
    rows = read_jsonl(out / "sessions.jsonl")
    assert [r["event"] for r in rows] == ["start", "end", "start", "end"]
    assert [r["resume"] for r in rows[::2]] == [False, True] and [r["done"] for r in rows[1::2]] == [1, 1]
    git = subprocess.run(["git", "-C", str(Path(__file__).parent), "rev-parse", "--short=10", "HEAD"],
                         capture_output=True, text=True)
    for r in rows:
        assert r["commit"].startswith(git.stdout.strip() or "wganlab ") and r["time"].endswith("UTC")
        assert f", {cpu_model()}, " in r["machine"] and r["machine"].endswith(f"{os.cpu_count()} cores")
        assert len(r["load"]) == 3 and r["torch"] == __import__("torch").__version__
    assert rows[1]["seconds"] >= 0
    page = (out / "report.html").read_text()
    assert page.count("<li>started ") == 1 and page.count("<li>resumed ") == 1 and "1 of 1 task(s) done" in page
