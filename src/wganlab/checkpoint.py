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
    """The newest valid checkpoint at ``path`` or ``path.prev`` (None when neither is valid)."""
    path = Path(path)
    state = load(path)
    if state is None and path.exists():
        print(f"wganlab: checkpoint {path} is torn or corrupt; using the previous one", file=sys.stderr)
    return state if state is not None else load(path.with_name(path.name + ".prev"))
