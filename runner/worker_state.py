"""What a worker process knows about itself: whether it is stopping, which run it holds.

Each forked cluster process has its own copy. The cluster's signal handler and
child guard (``runner.cluster``) set ``STOPPING``; the task function
(``runner.tasks``) reads it before claiming a run and registers the run it is
executing, so that the guard can end that run when the shutdown grace runs out.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from runner.execution.scripts import Cancellation

STOPPING = threading.Event()

_lock = threading.Lock()
_current: Cancellation | None = None


@contextmanager
def holding(cancel: Cancellation) -> Iterator[Cancellation]:
    """Register ``cancel`` as the cancellation of the run this process is executing."""
    global _current
    with _lock:
        _current = cancel
    try:
        yield cancel
    finally:
        with _lock:
            _current = None


def busy() -> bool:
    """True while this process is executing a run."""
    with _lock:
        return _current is not None


def cancel_current(reason: str) -> bool:
    """End the run this process is executing, recording ``reason``; False when idle."""
    with _lock:
        current = _current
    if current is None:
        return False
    current.cancel(reason)
    return True
