"""Run folders and atomic file writes.

A run folder ``<out>/NNNNN-<description>/`` describes itself: ``config.json`` (written first),
``metrics.jsonl`` (one JSON object per line), images, ``summary.json`` / ``summary.txt``. Every file
is written to a temporary name in the same folder and ``os.replace``d, so a killed process never
leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from wganlab.errors import InputError


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file in ``path``'s folder, fsync it, then ``os.replace`` it onto
    ``path``: readers never see a half-written file; on error the temporary file is removed. The file's
    permissions follow the user's umask (``0o666 & ~umask``), like any file the user creates."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def _clean(obj):
    """JSON-safe copy: non-finite floats become strings ("nan", "inf")."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def write_json(path: str | Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(_clean(obj), indent=2) + "\n").encode())


def read_json(path: str | Path):
    """The JSON value in ``path``; a file that is not JSON raises a one-line :class:`InputError`."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not a readable JSON file ({e})") from None


def append_jsonl(path: str | Path, row: dict) -> None:
    """Append one JSON line (flushed and fsynced: a kill loses at most the line being written)."""
    with open(path, "a") as f:
        f.write(json.dumps(_clean(row)) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | Path) -> list[dict]:
    """All complete lines of a JSONL file (a torn last line from a killed writer is skipped)."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def truncate_jsonl(path: str | Path, keep) -> None:
    """Rewrite a JSONL file atomically with only the rows for which ``keep(row)`` is true."""
    rows = [r for r in read_jsonl(path) if keep(r)]
    atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in rows).encode())


SLUG_MAX = 80


def slug(text: str) -> str:
    """``text`` as a file name: runs of other characters than ``A-Za-z0-9._-`` become ``-``; at most
    :data:`SLUG_MAX` characters. Different texts may share a slug: see :func:`unique_slug`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:SLUG_MAX] or "run"


def unique_slug(text: str) -> str:
    """``slug(text)`` when it spells ``text`` exactly, else the slug shortened and followed by ``-`` and 10 hex
    digits of ``text``'s SHA-256, so that different texts never share a folder."""
    s = slug(text)
    if s == text:
        return s
    return f"{s[:SLUG_MAX - 11]}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


#: free space (MiB) an output folder needs before work starts; ``WGANLAB_MIN_FREE_MB`` overrides it
MIN_FREE_MB = 200


def check_output_folder(path: str | Path, min_free_mb: float | None = None) -> Path:
    """Create ``path`` if needed and check, before any work starts, that a file can be written in it and
    that its file system has at least ``min_free_mb`` MiB free (default :data:`MIN_FREE_MB`, or the
    ``WGANLAB_MIN_FREE_MB`` environment variable); raises a one-line :class:`InputError` otherwise."""
    path = Path(path)
    if min_free_mb is None:
        env = os.environ.get("WGANLAB_MIN_FREE_MB", "")
        try:
            min_free_mb = float(env) if env else MIN_FREE_MB
        except ValueError:
            raise InputError(f"WGANLAB_MIN_FREE_MB={env!r} is not a number") from None
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test.")
        try:
            os.write(fd, b"x" * 4096)
        finally:
            os.close(fd)
            os.unlink(probe)
        free_mb = shutil.disk_usage(path).free / 2**20
    except OSError as e:
        raise InputError(f"output folder {path} is not writable: {e.strerror or e}") from None
    if free_mb < min_free_mb:
        raise InputError(f"output folder {path} has {free_mb:.0f} MiB free, less than the {min_free_mb:g} MiB "
                         f"needed (free some space, or set WGANLAB_MIN_FREE_MB)")
    return path


def new_run_dir(out: str | Path, description: str) -> Path:
    """Create ``out/NNNNN-description`` with the next free number; check the folder first
    (:func:`check_output_folder`). Numbers are allocated under an advisory lock on ``out`` itself, so
    processes creating run folders at once each get their own number."""
    out = check_output_folder(out)
    try:
        fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # held for a directory listing and one mkdir
            numbers = [int(m.group(1)) for p in out.iterdir() if (m := re.match(r"(\d{5})-", p.name))]
            run = out / f"{max(numbers, default=-1) + 1:05d}-{slug(description)}"
            run.mkdir()
        finally:
            os.close(fd)
    except OSError as e:
        raise InputError(f"cannot write run folder under {out}: {e.strerror or e}") from None
    return run


@contextlib.contextmanager
def lock_run_dir(run_dir: str | Path) -> Iterator[Path]:
    """Hold an advisory lock (``flock``) on the folder ``run_dir`` for the duration of the block: one writer
    per run folder. A second process gets a one-line :class:`InputError` at once instead of waiting."""
    run_dir = Path(run_dir)
    fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"{run_dir} is in use by another wganlab process (one writer per run folder); "
                             f"wait for it to end") from None
        yield run_dir
    finally:
        os.close(fd)
