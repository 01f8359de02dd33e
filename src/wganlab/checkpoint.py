"""Checkpoints: a dict of tensors and plain values, written atomically with a checksum and loaded with
``torch.load(weights_only=True)`` (never unpickling arbitrary objects).

File layout: the ``torch.save`` payload followed by its 32-byte SHA-256 digest. ``save`` keeps the
previous checkpoint as ``<name>.prev``; ``load_latest`` verifies the digest and falls back to the
previous checkpoint when the newest is torn or corrupt, saying so.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
from pathlib import Path

import torch

from wganlab.runs import atomic_write_bytes

FORMAT_VERSION = 1
_DIGEST = 32


def save(path: str | Path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically, keeping the previous checkpoint as ``path.prev``."""
    path = Path(path)
    buf = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, **state}, buf)
    payload = buf.getvalue()
    if path.exists():
        os.replace(path, path.with_name(path.name + ".prev"))
    atomic_write_bytes(path, payload + hashlib.sha256(payload).digest())


def load(path: str | Path) -> dict | None:
    """The checkpoint at ``path`` if its checksum and payload are valid, else None."""
    path = Path(path)
    if not path.is_file():
        return None
    data = path.read_bytes()
    payload, digest = data[:-_DIGEST], data[-_DIGEST:]
    if len(data) <= _DIGEST or hashlib.sha256(payload).digest() != digest:
        return None
    try:
        return torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")
    except Exception:  # unreadable despite a matching digest: treat as missing
        return None


def load_latest(path: str | Path) -> dict | None:
    """The newest valid checkpoint at ``path`` or ``path.prev`` (None when neither is valid), saying on
    stderr which one is used when the newest is torn, corrupt or missing."""
    path = Path(path)
    prev = path.with_name(path.name + ".prev")
    state = load(path)
    if state is not None:
        return state
    state = load(prev)
    if state is not None:
        print(f"wganlab: checkpoint {path} is {'torn or corrupt' if path.exists() else 'missing'}; using the "
              f"previous one ({prev.name}, step {state.get('step')})", file=sys.stderr)
    elif path.exists() or prev.exists():
        print(f"wganlab: checkpoints {path.name} and {prev.name} in {path.parent} are both torn, corrupt or "
              "missing; the run restarts from step 0", file=sys.stderr)
    return state
