"""The layout of ``wganlab.ot`` (issue 13): no private name crosses a file, no file much over ~450 lines,
and the public import paths the README shows keep working."""

import ast
from pathlib import Path

import wganlab.ot

OT = Path(wganlab.ot.__file__).parent


def _sources():
    return sorted(OT.rglob("*.py"))


def test_no_private_name_is_imported_across_files():
    crossing = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.module == "__future__":
                    continue
                mods = (node.module or "").split(".")
                names = [a.name for a in node.names]
                if any(m.startswith("_") for m in mods) or any(n.startswith("_") for n in names):
                    crossing.append(f"{path.relative_to(OT)}: from {node.module} import {', '.join(names)}")
            elif isinstance(node, ast.Import):
                crossing += [f"{path.relative_to(OT)}: import {a.name}" for a in node.names
                             if any(part.startswith("_") for part in a.name.split("."))]
    assert crossing == []


def test_no_file_is_much_over_450_lines():
    long = {str(p.relative_to(OT)): n for p in _sources() if (n := len(p.read_text().splitlines())) > 480}
    assert long == {}


def test_public_import_paths_of_the_readme():
    from wganlab.ot import ot_means, transport, wasserstein
    from wganlab.ot.patches import patch_swd, patch_swd_local
    from wganlab.ot.sinkhorn import sinkhorn_divergence

    assert all(callable(f) for f in (ot_means, transport, wasserstein, patch_swd, patch_swd_local,
                                     sinkhorn_divergence))
