"""Workers inside the test process: dispatched runs go to a real run pool via run_task."""

from __future__ import annotations

import queue
import threading
import time

from django.db import connections, transaction

from runner import pool, worker_state
from runner.tasks import run_task

# Ceiling for the pool to finish its runs; normally a fraction of a second.
SETTLE_S = 30


class InlineWorkers:
    """Stands in for the broker and a worker process: each dispatched run id, once the
    dispatching transaction commits, is handed to ``run_task`` by one feeder thread (as
    django-q2's worker loop does), so a task blocked on a full pool blocks only it."""

    def __init__(self) -> None:
        self.dispatched: list[int] = []
        self._tasks: queue.Queue[int | None] = queue.Queue()
        self._feeder = threading.Thread(target=self._feed, name="inline-worker", daemon=True)
        self._feeder.start()

    def __call__(self, run_ids) -> int:
        ids = list(run_ids)
        self.dispatched.extend(ids)
        transaction.on_commit(lambda: [self._tasks.put(run_id) for run_id in ids])
        return len(ids)

    def settle(self, timeout_s: float = SETTLE_S) -> bool:
        """Wait until every task was taken and the pool holds no run; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._tasks.all_tasks_done:
            while self._tasks.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._tasks.all_tasks_done.wait(left)
        if pool._pool is None:  # nothing reached a pool (every run was skipped before)
            return True
        return pool.current(lambda: None).wait_idle(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        pool.close_current(SETTLE_S)
        self._tasks.put(None)
        self._feeder.join(SETTLE_S)
        pool._pool = None
        worker_state.STOPPING.clear()

    def _feed(self) -> None:
        try:
            for run_id in iter(self._tasks.get, None):
                try:
                    run_task(run_id)
                finally:
                    self._tasks.task_done()
        finally:
            connections.close_all()
