"""The bench's rows as an aligned text table (the terminal) and as markdown (what the README quotes)."""

from __future__ import annotations

#: (key, header) of every row, in table order
COLUMNS = [
    ("case", "case"), ("size", "size"), ("baseline", "baseline"), ("baseline_s", "baseline s"),
    ("wganlab_s", "wganlab s"), ("ratio", "ratio"), ("value_diff", "value diff"), ("gap_rel", "gap (rel)"),
    ("wganlab_peak_mb", "wganlab peak MB"), ("baseline_peak_mb", "baseline peak MB"), ("status", "status"),
]


def _cell(key: str, v) -> str:
    if v is None:
        return "-"
    if key.endswith("_s"):
        return f"{v:.3g}"
    if key == "ratio":
        return f"{v:.3g}x"
    if key in ("value_diff", "gap_rel"):
        return f"{v:.1e}"
    if key.endswith("_mb"):
        return f"{v:,.0f}"
    return str(v)


def _cells(rows: list[dict]) -> list[list[str]]:
    return [[_cell(k, r.get(k)) for k, _ in COLUMNS] for r in rows]


def table(rows: list[dict]) -> str:
    """The rows as an aligned plain-text table (notes listed below it)."""
    grid = [[h for _, h in COLUMNS], *_cells(rows)]
    widths = [max(len(line[i]) for line in grid) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in grid]
    notes = [f"  {r['case']}: {r['note']}" for r in rows if r.get("note")]
    return "\n".join(lines + (["notes:", *notes] if notes else [])) + "\n"


def markdown(rows: list[dict], info: dict) -> str:
    """The rows as a markdown table headed by the machine it ran on."""
    head = (f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB; torch {info['torch']}, "
            f"POT {info['pot']}; sliced sorts (plain / packed) {info.get('sliced_sort', '?')}; load average "
            f"{info['load_avg'][0]} at start, "
            f"{info.get('load_avg_end', ['?'])[0]} at the end; {info['date']}.\n\n")
    lines = ["| " + " | ".join(h for _, h in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in cells) + " |" for cells in _cells(rows)]
    notes = [f"- {r['case']}: {r['note']}" for r in rows if r.get("note")]
    return head + "\n".join(lines) + "\n" + ("\n" + "\n".join(notes) + "\n" if notes else "")
