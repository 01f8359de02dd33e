"""Memory: what this process may still allocate, and the refusal, before allocating, of work that needs more.

Light on purpose (no torch): a bench case's child process imports it before its memory limit is set.
"""

from __future__ import annotations

import ctypes
import os
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


#: PyTorch's own switch (read once, at the process's first CPU tensor): its CPU tensors of 2 MB and more are
#: aligned to pages and advised onto transparent huge pages
TORCH_HUGE_PAGES = "THP_MEM_ALLOC_ENABLE"
_THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def tensors_on_huge_pages() -> bool:
    """Process-wide, before the first CPU tensor: let torch's allocator put tensors of 2 MB and more on transparent
    huge pages (``THP_MEM_ALLOC_ENABLE=1``; numpy advises its large arrays so by itself), so that the first touch
    of a fresh buffer costs one zero-filling fault per 2 MB instead of per 4 KB (one thread here, the direct
    patch step's cold call, ~200 MB of fresh buffers: 0.67 -> 0.60 s). True where set: the kernel offers huge
    pages (``madvise`` or ``always``) and the variable was not set already (a user's value is kept). torch reads
    it at its first CPU allocation: a later call changes nothing. The CLI, its workers and bench cases call it."""
    try:
        offered = "[never]" not in _THP_MODE.read_text()
    except OSError:
        return False
    if not offered or TORCH_HUGE_PAGES in os.environ:
        return False
    os.environ[TORCH_HUGE_PAGES] = "1"
    return True


def release_freed_memory() -> None:
    """Give the heap's free memory back to the system (glibc's ``malloc_trim``; nothing elsewhere): before a
    peak-memory measurement, so that memory freed earlier is not reused unseen."""
    trim = _libc_function("malloc_trim")
    if trim is not None:
        trim(0)
