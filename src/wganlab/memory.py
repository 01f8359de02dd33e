"""Memory: what this process may still allocate, and the refusal, before allocating, of work that needs more.

Light on purpose (no torch): a bench case's child process imports it before its memory limit is set.
"""

from __future__ import annotations

import ctypes
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


#: glibc's mallopt parameters
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def _libc_function(name: str):
    try:
        return getattr(ctypes.CDLL(None), name)  # the process's own C library
    except (OSError, AttributeError):
        return None


def keep_freed_memory(limit: int = 1 << 30) -> bool:
    """Process-wide: let glibc's malloc serve allocations below ``limit`` bytes from its heap and keep up to
    ``limit`` freed bytes there for reuse, instead of mapping fresh pages for every large buffer and unmapping them
    when freed (the kernel zero-fills each fresh page: one thread here, a 192 MB float32 buffer took 90 ms to fill
    fresh and 7 ms reused). True where applied (glibc), False elsewhere. The CLI, its workers and bench cases call
    it; a library user may."""
    mallopt = _libc_function("mallopt")
    return mallopt is not None and bool(mallopt(_M_MMAP_THRESHOLD, limit)) and bool(mallopt(_M_TRIM_THRESHOLD, limit))


def release_freed_memory() -> None:
    """Give the heap's free memory back to the system (glibc's ``malloc_trim``; nothing elsewhere): before a
    peak-memory measurement, so that memory freed earlier is not reused unseen."""
    trim = _libc_function("malloc_trim")
    if trim is not None:
        trim(0)
