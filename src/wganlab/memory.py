"""Memory: what this process may still allocate, and the refusal, before allocating, of work that needs more.

Light on purpose (no torch): a bench case's child process imports it before its memory limit is set.
"""

from __future__ import annotations

import resource
from pathlib import Path

from wganlab.errors import InputError


def proc_kb(path: str, field: str) -> int | None:
    """A ``Field:  value kB`` entry of ``/proc/meminfo`` or ``/proc/self/status`` (None where absent)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def memory_available() -> int | None:
    """Bytes this process may allocate at most: the system's available memory (``MemAvailable``), lowered to the
    address-space limit (``ulimit -v``) when one is set; None where neither is known."""
    kb = proc_kb("/proc/meminfo", "MemAvailable")
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    known = [b for b in (None if kb is None else kb * 1024, None if limit == resource.RLIM_INFINITY else limit)
             if b is not None]
    return min(known) if known else None


def check_memory(nbytes: float, what: str) -> None:
    """Refuse, before allocating, ``what`` (its sizes named) when it needs more than :func:`memory_available`:
    a one-line :class:`InputError`."""
    avail = memory_available()
    if avail is not None and nbytes > avail:
        raise InputError(f"{what}: about {nbytes / 2**30:,.1f} GiB of memory needed, more than the "
                         f"{avail / 2**30:,.1f} GiB available")
