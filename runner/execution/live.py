"""The running runs of this process: one thread keeps their rows alive and current.

Every run this process executes is registered here while it works (``holding``).
One thread per process, instead of one per run, writes for all of them at once,
in one conditional UPDATE per tick and worker name (``Run.beat_many``):

- the heartbeat (``heartbeat_at``) of each run whose ``heartbeatIntervalMs`` came
  round, proving its worker alive to the liveness check; and
- the current bounded stdout/stderr tails of each script run whose output changed
  since its last write, at most about once a second (``LIVE_OUTPUT_EVERY_S``), so a
  run page shows what a running script prints (issue 15). The script itself never
  waits for this: its pipes are read by its own supervisor, which only holds a lock
  while it appends to the tails.

A run the statement did not change is no longer this worker's (the liveness check
finished it, or another worker took it over): its cancel flag is set, so the job is
ended, as the per-run heartbeat thread this replaces did. A run shorter than a tick
costs nothing here, and while no run is registered the thread sleeps and holds no
database connection.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from runner.execution.output import LiveTails
from runner.models import Run

logger = logging.getLogger(__name__)

# How often a running run's output tails are written at most, in seconds.
LIVE_OUTPUT_EVERY_S = 1.0
# The most runs one statement names (SQLite's old limit is 999 parameters, and a
# run with tails takes four).
_CHUNK = 200


@dataclass(eq=False)
class _Entry:
    run_id: int
    worker: str
    cancel: threading.Event
    next_beat: float
    next_output: float
    output: Callable[[], LiveTails] | None = None
    written_seen: int = 0


class LiveRuns:
    """The runs this process is executing, and the thread that writes for them."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._entries: dict[int, _Entry] = {}
        self._thread: threading.Thread | None = None

    @contextmanager
    def holding(self, run: Run, cancel: threading.Event) -> Iterator[None]:
        """Keep ``run`` (running for ``run.worker``) alive while the block runs; set
        ``cancel`` if the run stops being ours meanwhile."""
        now = self._clock()
        entry = _Entry(
            run_id=run.pk,
            worker=run.worker,
            cancel=cancel,
            next_beat=now + _heartbeat_s(),
            next_output=now + LIVE_OUTPUT_EVERY_S,
        )
        with self._lock:
            self._entries[run.pk] = entry
            self._ensure_thread()
            self._changed.notify()
        try:
            yield
        finally:
            with self._lock:
                if self._entries.get(run.pk) is entry:
                    del self._entries[run.pk]

    def watch_output(self, run_id: int, output: Callable[[], LiveTails]) -> None:
        """Write ``output()``'s tails to run ``run_id`` while it is held here."""
        with self._lock:
            entry = self._entries.get(run_id)
            if entry is not None:
                entry.output = output

    def tick(self) -> None:
        """Write what is due now: heartbeats and changed tails, one statement a worker."""
        now = self._clock()
        with self._lock:
            entries = list(self._entries.values())
        due: dict[str, list[tuple[_Entry, LiveTails | None]]] = {}
        for entry in entries:
            tails = self._changed_tails(entry, now)
            if tails is not None or now >= entry.next_beat:
                due.setdefault(entry.worker, []).append((entry, tails))
        for worker, items in due.items():
            for start in range(0, len(items), _CHUNK):
                self._write(worker, items[start : start + _CHUNK], now)

    def _changed_tails(self, entry: _Entry, now: float) -> LiveTails | None:
        if entry.output is None or now < entry.next_output:
            return None
        tails = entry.output()
        return tails if tails.seen != entry.written_seen else None

    def _write(self, worker: str, items: list[tuple[_Entry, LiveTails | None]], now: float) -> None:
        tails = {e.run_id: (t.stdout, t.stderr) for e, t in items if t is not None}
        try:
            close_old_connections()
            kept = Run.beat_many(worker, [e.run_id for e, _ in items], timezone.now(), tails)
        except Exception:
            logger.exception("heartbeat of %d runs failed; retrying", len(items))
            return
        for entry, written in items:
            entry.next_beat = now + _heartbeat_s()
            if written is not None:
                entry.written_seen = written.seen
                entry.next_output = now + LIVE_OUTPUT_EVERY_S
            if entry.run_id not in kept and self._still_held(entry):
                logger.warning("run %s is no longer held by this worker; ending it", entry.run_id)
                entry.cancel.set()

    def _still_held(self, entry: _Entry) -> bool:
        with self._lock:
            return self._entries.get(entry.run_id) is entry

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="run-heartbeats", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._lock:
                idle = not self._entries
            if idle:
                connection.close()  # hold no connection while idle (nor a test database)
                with self._lock:
                    while not self._entries:
                        self._changed.wait()
            time.sleep(_tick_s())
            try:
                self.tick()
            except Exception:  # the thread must outlive any one tick
                logger.exception("the run heartbeat tick failed; retrying")


def _heartbeat_s() -> float:
    return settings.RUNNER.heartbeat_interval_ms / 1000


def _tick_s() -> float:
    return min(LIVE_OUTPUT_EVERY_S, _heartbeat_s())


_live: tuple[int, LiveRuns] | None = None
_live_lock = threading.Lock()


def current() -> LiveRuns:
    """This process's ``LiveRuns`` (a forked child makes its own)."""
    global _live
    with _live_lock:
        if _live is None or _live[0] != os.getpid():
            _live = (os.getpid(), LiveRuns())
        return _live[1]
