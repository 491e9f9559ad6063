"""What a worker process knows about itself: whether it is stopping, which runs it holds.

Each forked cluster process has its own copy. The cluster's signal handler and
child guard (``runner.cluster``) set ``STOPPING``; the run pool (``runner.pool``)
counts the runs it accepted and registers the cancellation of each run it executes,
so that the guard can end those runs when the shutdown grace runs out, and an
orphaned worker knows when it holds nothing any more.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from runner.execution.scripts import Cancellation

STOPPING = threading.Event()

_lock = threading.Lock()
_current: set[Cancellation] = set()
_accepted = 0


@contextmanager
def holding(cancel: Cancellation) -> Iterator[Cancellation]:
    """Register ``cancel`` as the cancellation of a run this process is executing."""
    with _lock:
        _current.add(cancel)
    try:
        yield cancel
    finally:
        with _lock:
            _current.discard(cancel)


def accept() -> None:
    """Count a run this process took and has not yet finished or handed back."""
    global _accepted
    with _lock:
        _accepted += 1


def release() -> None:
    """The run counted by ``accept`` is finished or handed back."""
    global _accepted
    with _lock:
        _accepted = max(0, _accepted - 1)


def accepted() -> int:
    """How many runs this process holds (waiting for their instant or executing)."""
    with _lock:
        return _accepted


def busy() -> bool:
    """True while this process holds a run, executing or waiting."""
    with _lock:
        return bool(_current) or _accepted > 0


def cancel_current(reason: str) -> bool:
    """End every run this process is executing, recording ``reason``; False when idle."""
    with _lock:
        current = list(_current)
    for cancel in current:
        cancel.cancel(reason)
    return bool(current)
