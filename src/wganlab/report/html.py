"""The HTML report of a ``reproduce`` run: one self-contained page (images beside it, no network).

First a table of every claim (experiment, paper, claim, paper's number, our number, verdict), then one
section per experiment with its figures, notes, run time and resolved config. Rebuilt from the files
alone, so it works for finished and interrupted runs alike (``wganlab report RUN_DIR``).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from wganlab.errors import InputError
from wganlab.runs import atomic_write_bytes, read_json

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;width:100%;font-size:0.9em;margin:0.5em 0}
td,th{border:1px solid #ccc;padding:4px 6px;vertical-align:top;text-align:left}
th{background:#f3f3f3} .holds{background:#e3f6e3} .fails{background:#fbe3e3} .na{background:#f1f1f1}
.failed{color:#a00} figure{display:inline-block;margin:0.5em;max-width:520px;vertical-align:top}
figure img{max-width:100%;border:1px solid #ddd} figcaption{font-size:0.85em;color:#555}
pre{background:#f7f7f7;padding:0.5em;overflow:auto;font-size:0.8em} .note{color:#8a5a00}
"""

_CLASS = {"holds": "holds", "does not hold": "fails", "not comparable": "na"}


def _e(x) -> str:
    return html.escape(str(x))


def _results(folder: Path) -> list[dict]:
    """Every experiment the run asked for or holds a folder of, in catalogue order."""
    from wganlab.experiments import EXPERIMENTS

    cfg = read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    present = {p.parent.name for p in folder.glob("*/config.json")}
    wanted = set(cfg.get("experiments") or []) | present
    names = [n for n in EXPERIMENTS if n in wanted] + sorted(wanted - set(EXPERIMENTS))
    out = []
    for name in names:
        sub = folder / name
        if (sub / "result.json").is_file():
            out.append(read_json(sub / "result.json"))
        elif sub.is_dir():
            out.append({"experiment": name, "status": "interrupted", "claims": [], "figures": []})
        else:
            out.append({"experiment": name, "status": "not run", "claims": [], "figures": []})
    return out


def build_report(folder: str | Path) -> Path:
    """Write ``folder/report.html`` from the run's files; returns its path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such run folder")
    top = read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    results = _results(folder)
    if not results:
        raise InputError(f"{folder}: no experiment results found (is this a reproduce run folder?)")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>wganlab report: {_e(folder.name)}</title>"
             f"<style>{_STYLE}</style></head><body>",
             f"<h1>wganlab reproduction report</h1><p>Run <code>{_e(folder.name)}</code>, preset "
             f"<b>{_e(top.get('preset', '?'))}</b>. Each claim's verdict is computed from this run's "
             "measurements.</p>"]
    counts = {}
    rows = []
    for r in results:
        for c in r.get("claims", []):
            counts[c["status"]] = counts.get(c["status"], 0) + 1
            rows.append(f"<tr class='{_CLASS.get(c['status'], 'na')}'><td><a href='#{_e(r['experiment'])}'>"
                        f"{_e(r['experiment'])}</a></td><td>{_e(c['source'])}</td><td>{_e(c['statement'])}</td>"
                        f"<td>{_e(c['paper_value'])}</td><td>{_e(c['ours'])}</td><td><b>{_e(c['status'])}</b>"
                        f"{'<br><small>' + _e(c['note']) + '</small>' if c.get('note') else ''}</td></tr>")
        if r["status"] != "done":
            rows.append(f"<tr class='na'><td>{_e(r['experiment'])}</td><td colspan='5' class='failed'>"
                        f"experiment {_e(r['status'])}{': ' + _e(r.get('error', '')) if r.get('error') else ''}"
                        "</td></tr>")
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    parts.append(f"<h2>Claims ({_e(summary)})</h2><table><tr><th>experiment</th><th>paper</th><th>claim</th>"
                 "<th>paper's number</th><th>our number</th><th>verdict</th></tr>" + "".join(rows) + "</table>")
    for r in results:
        name = r["experiment"]
        parts.append(f"<h2 id='{_e(name)}'>{_e(name)}: {_e(r.get('title', ''))}</h2>"
                     f"<p>Reproduces {_e(r.get('source', ''))}. Status <b class="
                     f"'{'' if r['status'] == 'done' else 'failed'}'>{_e(r['status'])}</b>"
                     + (f", {r['seconds']:.1f} s" if "seconds" in r else "") + ".</p>")
        if r.get("error"):
            parts.append(f"<pre class='failed'>{_e(r['error'])}</pre>")
        for note in r.get("notes", []):
            parts.append(f"<p class='note'>Note: {_e(note)}</p>")
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
