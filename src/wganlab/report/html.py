"""The HTML report of a ``reproduce`` run: one self-contained page (images beside it, no network).

First a table of every claim (experiment, paper, claim, paper's number, our number, verdict), then one
section per experiment with its figures, notes, run time and resolved config, and a legend naming each
paper cited by number. Rebuilt from the run folder's files alone (no experiment module, no torch), so it
works for finished and interrupted runs alike (``wganlab report RUN_DIR``). :func:`claims_markdown` puts the
claims of several runs (e.g. the quick and medium presets) side by side (``wganlab report --claims DIR ...``).
A run folder may hold ``discussion.json``, written by a person after looking at the run: ``{"EXPERIMENT:CLAIM":
"why we believe it does (not) hold, with the number"}``; each sentence is shown beside that claim's verdict.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from wganlab.errors import InputError
from wganlab.runs import atomic_write_bytes, read_json, read_jsonl

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;width:100%;font-size:0.9em;margin:0.5em 0}
td,th{border:1px solid #ccc;padding:4px 6px;vertical-align:top;text-align:left}
th{background:#f3f3f3} .holds{background:#e3f6e3} .fails{background:#fbe3e3} .na{background:#f1f1f1}
.failed{color:#a00} figure{display:inline-block;margin:0.5em;max-width:520px;vertical-align:top}
figure img{max-width:100%;border:1px solid #ddd} figcaption{font-size:0.85em;color:#555}
pre{background:#f7f7f7;padding:0.5em;overflow:auto;font-size:0.8em} .note{color:#8a5a00}
.why{margin:0.3em 0 0;font-size:0.85em}
"""

_CLASS = {"holds": "holds", "does not hold": "fails", "not comparable": "na"}

#: the papers' numbers (the files under shared/papers) as the claims cite them
PAPERS = {
    "000": "Elnekave & Weiss, Do WGANs succeed because they minimize the Wasserstein distance? Lessons from "
           "discrete generators, ICLR 2025",
    "001": "Stanczuk, Etmann, Kreusser & Schönlieb, Wasserstein GANs work because they fail (to approximate the "
           "Wasserstein distance)",
    "002": "Laschos, Tinapp & Obermayer, Training generative networks with arbitrary optimal transport costs",
    "003": "Elnekave & Weiss, ICLR 2025 (the published abstract of 000)",
    "004": "Mallasto, Montúfar & Gerolin, How well do WGANs estimate the Wasserstein metric?",
}


def _e(x) -> str:
    return html.escape(str(x))


def _read_result(path: Path, name: str) -> dict:
    """An experiment's ``result.json``, or a ``failed`` row saying why it cannot be read."""
    try:
        r = read_json(path)
    except (OSError, InputError) as e:
        return {"experiment": name, "status": "failed", "error": f"unreadable result.json: {e}", "claims": []}
    problem = "not a result.json of wganlab" if not isinstance(r, dict) else _malformed(r)
    if problem:
        return {"experiment": name, "status": "failed", "error": f"{path}: {problem}", "claims": []}
    return {**r, "experiment": name}


def _scalar(v) -> bool:
    return v is None or isinstance(v, str | int | float)


def _malformed(r: dict) -> str | None:
    """What is wrong with the shape of a result.json's fields that the report reads (None when nothing)."""
    fields = {"status": lambda v: isinstance(v, str),
              "title": _scalar, "source": _scalar, "error": _scalar,
              "seconds": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
              "claims": lambda v: isinstance(v, list) and all(
                  isinstance(c, dict) and all(map(_scalar, c.values())) for c in v),
              "figures": lambda v: isinstance(v, list) and all(
                  isinstance(f, dict) and isinstance(f.get("file"), str) and _scalar(f.get("caption")) for f in v),
              "notes": lambda v: isinstance(v, list) and all(
                  _scalar(n) or (isinstance(n, dict) and _scalar(n.get("text"))) for n in v)}
    bad = [k for k, ok in fields.items() if (k in r or k == "status") and not ok(r.get(k))]
    return f"malformed result.json: field(s) {', '.join(bad)} of the wrong type" if bad else None


def _results(folder: Path, asked: list[str]) -> list[dict]:
    """Every experiment the run asked for (in the order asked) or holds a folder of (after, by name)."""
    present = sorted(p.parent.name for p in folder.glob("*/config.json"))
    out = []
    for name in dict.fromkeys([*asked, *present]):
        sub = folder / name
        if (sub / "result.json").is_file():
            out.append(_read_result(sub / "result.json", name))
        elif sub.is_dir():
            out.append({"experiment": name, "status": "interrupted", "claims": [], "figures": []})
        else:
            out.append({"experiment": name, "status": "not run", "claims": [], "figures": []})
    return out


def _note_text(note) -> str:
    """A note's text: ``{"kind", "text"}``, or a plain string in run folders written before notes had kinds."""
    return note.get("text", "") if isinstance(note, dict) else str(note)


def _legend(results: list[dict]) -> str:
    """The papers cited by number in this report, named."""
    cited = set()
    for r in results:
        for text in [r.get("source", ""), *(c.get("source", "") for c in r.get("claims", []))]:
            cited.update(re.findall(r"\b(\d{3})\b", str(text)))
    items = [f"<li><b>{_e(k)}</b> = {_e(v)}</li>" for k, v in PAPERS.items() if k in cited]
    return "<h2>Papers</h2><ul>" + "".join(items) + "</ul>" if items else ""


def _run_results(folder: Path) -> tuple[dict, list[dict]]:
    """A reproduce run's top-level ``config.json`` and its experiments' results (see :func:`_results`)."""
    if not folder.is_dir():
        raise InputError(f"{folder}: no such run folder")
    top = read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    if not isinstance(top, dict):
        raise InputError(f"{folder / 'config.json'}: not the config.json of a reproduce run")
    asked = top.get("experiments") or []
    if not isinstance(asked, list) or not all(isinstance(n, str) for n in asked):
        raise InputError(f"{folder / 'config.json'}: 'experiments' is not a list of names")
    results = _results(folder, asked)
    if not results:
        raise InputError(f"{folder}: no experiment results found (is this a reproduce run folder?)")
    return top, results


DISCUSSION = "discussion.json"


def _discussion(folder: Path, results: list[dict]) -> dict[str, str]:
    """The run's ``discussion.json`` (``{"experiment:claim": text}``; empty when absent); a key that names no
    claim of the run is an error, so a sentence cannot outlive the claim it explains."""
    path = folder / DISCUSSION
    if not path.is_file():
        return {}
    d = read_json(path)
    if not isinstance(d, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in d.items()):
        raise InputError(f"{path}: expected an object of \"experiment:claim\": \"text\" strings")
    known = {f"{r['experiment']}:{c.get('key', '?')}" for r in results for c in r.get("claims", [])}
    unknown = sorted(set(d) - known)
    if unknown:
        raise InputError(f"{path}: no claim {unknown[0]!r} in this run (keys are experiment:claim, e.g. "
                         f"{min(known) if known else 'blur-vs-real:patch-prefers-real'!r})")
    return d


def _sessions(folder: Path) -> str:
    """One line per invocation that worked on the run, from ``sessions.jsonl`` (commit, machine, time, load)."""
    def load(row: dict) -> str:
        return _e(" ".join(map(str, row.get("load", []))))

    items, open_item = [], False
    for row in read_jsonl(folder / "sessions.jsonl"):
        if not isinstance(row, dict):
            continue
        if row.get("event") == "start":
            items.append(f"{'resumed' if row.get('resume') else 'started'} {_e(row.get('time', '?'))} at commit "
                         f"<code>{_e(row.get('commit', '?'))}</code> on {_e(row.get('machine', '?'))} "
                         f"({_e(row.get('device', '?'))}, torch {_e(row.get('torch', '?'))}, "
                         f"{_e(row.get('workers', '?'))} worker(s) x {_e(row.get('threads') or 'default')} "
                         f"thread(s)), load {load(row)}")
            open_item = True
        elif row.get("event") == "end" and open_item:
            items[-1] += (f"; ended {_e(row.get('time', '?'))} after {_e(row.get('seconds', '?'))} s, "
                          f"{_e(row.get('done', '?'))} of {_e(row.get('tasks', '?'))} task(s) done, load {load(row)}")
            open_item = False
    return "<p>Sessions:</p><ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>" if items else ""


def _md_cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def claims_markdown(folders: list[str | Path]) -> str:
    """One markdown table of every claim: the paper's number, then our number and verdict in each run
    (a column per folder, headed by its preset), in the order the first run lists them."""
    runs = [_run_results(Path(f)) for f in folders]
    rows: dict[tuple[str, str], dict] = {}
    for i, (_, results) in enumerate(runs):
        for r in results:
            for c in r.get("claims", []):
                row = rows.setdefault((r["experiment"], c.get("key", "?")), {"claim": c, "ours": {}})
                row["ours"][i] = f"{c.get('ours', '?')} ({c.get('status', '?')})"
    head = ["experiment", "claim", "paper", "paper's number", *(str(top.get("preset", "?")) for top, _ in runs)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (name, _), row in rows.items():
        c = row["claim"]
        ours = [row["ours"].get(i, "not run") for i in range(len(runs))]
        lines.append("| " + " | ".join(_md_cell(t) for t in [name, c.get("statement", "?"), c.get("source", "?"),
                                                          c.get("paper_value", ""), *ours]) + " |")
    return "\n".join(lines) + "\n"


def build_report(folder: str | Path) -> Path:
    """Write ``folder/report.html`` from the run's files; returns its path."""
    folder = Path(folder)
    top, results = _run_results(folder)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>wganlab report: {_e(folder.name)}</title>"
             f"<style>{_STYLE}</style></head><body>",
             f"<h1>wganlab reproduction report</h1><p>Run <code>{_e(folder.name)}</code>, preset "
             f"<b>{_e(top.get('preset', '?'))}</b>. Each claim's verdict is computed from this run's "
             "measurements.</p>", _sessions(folder)]
    discussion = _discussion(folder, results)
    counts = {}
    rows = []
    for r in results:
        for c in r.get("claims", []):
            why = discussion.get(f"{r['experiment']}:{c.get('key', '?')}")
            c = {**dict.fromkeys(("status", "source", "statement", "paper_value", "ours"), "?"), "note": "", **c}
            counts[c["status"]] = counts.get(c["status"], 0) + 1
            rows.append(f"<tr class='{_CLASS.get(c['status'], 'na')}'><td><a href='#{_e(r['experiment'])}'>"
                        f"{_e(r['experiment'])}</a></td><td>{_e(c['source'])}</td><td>{_e(c['statement'])}</td>"
                        f"<td>{_e(c['paper_value'])}</td><td>{_e(c['ours'])}</td><td><b>{_e(c['status'])}</b>"
                        f"{'<br><small>' + _e(c['note']) + '</small>' if c.get('note') else ''}"
                        f"{'<p class=why>Why: ' + _e(why) + '</p>' if why else ''}</td></tr>")
        if r["status"] != "done":
            rows.append(f"<tr class='na'><td>{_e(r['experiment'])}</td><td colspan='5' class='failed'>"
                        f"experiment {_e(r['status'])}{': ' + _e(r.get('error', '')) if r.get('error') else ''}"
                        "</td></tr>")
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    parts.append(f"<h2>Claims ({_e(summary)})</h2><table><tr><th>experiment</th><th>paper</th><th>claim</th>"
                 "<th>paper's number</th><th>our number</th><th>verdict</th></tr>" + "".join(rows) + "</table>")
    parts.append(_legend(results))
    for r in results:
        name = r["experiment"]
        parts.append(f"<h2 id='{_e(name)}'>{_e(name)}: {_e(r.get('title', ''))}</h2>"
                     f"<p>Reproduces {_e(r.get('source', ''))}. Status <b class="
                     f"'{'' if r['status'] == 'done' else 'failed'}'>{_e(r['status'])}</b>"
                     + (f", {r['seconds']:.1f} s" if "seconds" in r else "") + ".</p>")
        if r.get("error"):
            parts.append(f"<pre class='failed'>{_e(r['error'])}</pre>")
        for note in r.get("notes", []):
            parts.append(f"<p class='note'>Note: {_e(_note_text(note))}</p>")
        for f in r.get("figures", []):
            src = f"{name}/{f['file']}"
            parts.append(f"<figure><a href='{_e(src)}'><img src='{_e(src)}' alt='{_e(f['caption'])}'></a>"
                         f"<figcaption>{_e(f['caption'])}</figcaption></figure>")
        tables = sorted(p.name for p in (folder / name).glob("*.csv")) if (folder / name).is_dir() else []
        if tables:
            parts.append("<p>Numbers: " + ", ".join(f"<a href='{_e(name)}/{_e(t)}'>{_e(t)}</a>" for t in tables)
                         + "</p>")
        cfg_path = folder / name / "config.json"
        if cfg_path.is_file():
            parts.append(f"<details><summary>config</summary><pre>{_e(json.dumps(read_json(cfg_path), indent=2))}"
                         "</pre></details>")
    parts.append("</body></html>\n")
    path = folder / "report.html"
    atomic_write_bytes(path, "\n".join(parts).encode())
    return path
