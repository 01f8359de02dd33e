"""Run independent tasks in-process, in a local process pool, or on Ray, collecting each task's result or
error: one failing task never stops the others.

``map_tasks(fn, tasks, executor)`` calls ``fn(task)`` for every task and returns one :class:`Outcome` per
task, in the tasks' order. ``fn`` and the tasks must be picklable for ``process`` and ``ray`` (a
module-level function and plain data). Executors:

* ``local`` — in this process, one task after another (the default; easiest to debug).
* ``process`` — a pool of ``workers`` fresh Python processes (``spawn``: no state is inherited from a
  parent that has already started torch threads). A worker that dies (killed, out of memory) fails the
  tasks it had not finished; a worker whose parent dies (killed, even with SIGKILL) exits within a second,
  so no orphan goes on writing into a run folder that a new run may be using.
* ``ray`` — Ray tasks (``pip install 'wganlab[ray]'``). With ``ray_address`` it joins that cluster,
  else it starts a local Ray with ``workers`` CPUs (all when None) and shuts it down afterwards; a Ray
  already initialised by the caller is used as it is. The driver's ``wganlab`` package is shipped to
  the workers (Ray's ``py_modules``), so they run the same code. Each task asks for one CPU.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from wganlab.errors import ConfigError

EXECUTORS = ("local", "process", "ray")


@dataclass
class Outcome:
    """What one task gave: ``value`` when ``ok``, else ``error`` (``"Type: message"``) and its traceback."""

    ok: bool
    value: Any = None
    error: str = ""
    traceback: str = ""


def run_captured(fn: Callable, task) -> Outcome:
    """``fn(task)`` as an :class:`Outcome`; an exception becomes a failed outcome instead of propagating."""
    try:
        return Outcome(True, fn(task))
    except Exception as e:
        return Outcome(False, error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())


def map_tasks(fn: Callable, tasks: Sequence, executor: str = "local", *, ray_address: str | None = None,
              workers: int | None = None) -> list[Outcome]:
    """One :class:`Outcome` per task, in order, running ``fn(task)`` on ``executor`` (see module docs)."""
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if ray_address is not None and executor != "ray":
        raise ConfigError("ray_address needs executor 'ray'")
    tasks = list(tasks)
    if not tasks:
        return []
    if executor == "local":
        return [run_captured(fn, t) for t in tasks]
    if executor == "process":
        return _map_processes(fn, tasks, workers or min(len(tasks), os.cpu_count() or 1))
    return _map_ray(fn, tasks, ray_address, workers)


#: seconds between a pool worker's checks that its parent is alive
PARENT_POLL = 0.5


def _exit_with_parent(parent: int) -> None:
    """Pool initializer: a daemon thread ends this worker at once when its parent process ``parent`` is gone
    (the worker is then re-parented, so ``os.getppid()`` changes)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _map_processes(fn: Callable, tasks: list, workers: int) -> list[Outcome]:
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_exit_with_parent, initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(run_captured, fn, t) for t in tasks]
        return [_result_or_failure(f.result) for f in futures]


def _result_or_failure(get: Callable[[], Outcome]) -> Outcome:
    """``get()``, or a failed outcome when the worker running the task was lost."""
    try:
        return get()
    except Exception as e:  # BrokenProcessPool, Ray's WorkerCrashedError, ...
        return Outcome(False, error=f"{type(e).__name__}: worker lost ({e})", traceback=traceback.format_exc())


def _map_ray(fn: Callable, tasks: list, ray_address: str | None, workers: int | None) -> list[Outcome]:
    try:
        import ray
    except ImportError:
        raise ConfigError("executor 'ray' needs Ray: pip install 'wganlab[ray]'") from None
    import wganlab

    started = not ray.is_initialized()
    if started:
        ray.init(address=ray_address, num_cpus=None if ray_address else workers, include_dashboard=False,
                 runtime_env={"py_modules": [wganlab]}, log_to_driver=False)
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(run_captured)
        refs = [remote.remote(fn, t) for t in tasks]
        return [_result_or_failure(lambda r=r: ray.get(r)) for r in refs]
    finally:
        if started:
            ray.shutdown()
