"""Run manual runs on threads of the current process (the admin's "Run now").

A web request must not wait for a job, and a cluster may not be running, so each
run gets a thread here that calls ``execute_run`` at once. The run row is
created before the thread starts, so if this process dies first, the run is still
``pending`` and the scheduler's re-dispatch picks it up; ``Run.start`` lets only
one of them execute it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

from django.db import connections

from runner.execution.executor import execute_run

logger = logging.getLogger(__name__)

_threads: set[threading.Thread] = set()
_lock = threading.Lock()


def execute_in_background(run_ids: Iterable[int]) -> list[threading.Thread]:
    """Start one daemon thread per run that executes it; return the threads."""
    threads = []
    for run_id in run_ids:
        thread = threading.Thread(
            target=_execute, args=(run_id,), name=f"manual-run-{run_id}", daemon=True
        )
        with _lock:
            _threads.add(thread)
        thread.start()
        threads.append(thread)
    return threads


def _execute(run_id: int) -> None:
    try:
        execute_run(run_id)
    except Exception:  # a thread's exception would otherwise vanish
        logger.exception("manual run %s failed in the runner", run_id)
    finally:
        connections.close_all()
        with _lock:
            _threads.discard(threading.current_thread())


def wait_for_background_runs(timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for every background run to end; True if all did.

    For a clean shutdown of the process that started them (and for tests).
    """
    deadline = time.monotonic() + timeout_s
    with _lock:
        threads = list(_threads)
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return not any(thread.is_alive() for thread in threads)
