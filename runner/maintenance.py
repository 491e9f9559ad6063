"""Housekeeping for the scheduler's loop: old runs, expired state, finished queue items.

Every task deletes (or releases) one small batch per call and each statement is
its own short transaction, so SQLite's single write lock is never held for long
and a fire waiting behind it waits for one batch at most. ``run_maintenance``
lets the tasks take turns until its time budget is spent; whatever is left is
picked up by the next call, because every batch selects rows that are still
due. The scheduler calls it every ``RUNNER.state_cleanup_interval_ms``,
and again on its next tick while ``MaintenanceReport.more`` says work is left.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings

from queues.maintenance import prune_finished_items, reclaim_expired_leases
from runner.models import ACTIVE_RUN_STATUSES, Run
from statestore.maintenance import purge_expired_state

# Rows per statement: small enough that one batch takes milliseconds on SQLite.
BATCH_SIZE = 500

# A task does one batch at ``now`` of at most ``batch_size`` rows; returns how many changed.
Task = Callable[[datetime, int], int]


@dataclass
class MaintenanceReport:
    """What one ``run_maintenance`` call did, and whether work is left for the next."""

    changed: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    longest_batch_s: float = 0.0
    elapsed_s: float = 0.0
    more: bool = False

    @property
    def total(self) -> int:
        """Rows changed by every task together."""
        return sum(self.changed.values())

    def record(self, task: str, changed: int, took_s: float) -> None:
        """Account for one batch of ``task``."""
        self.changed[task] = self.changed.get(task, 0) + changed
        self.batches += 1
        self.longest_batch_s = max(self.longest_batch_s, took_s)


def prune_runs(now: datetime, batch_size: int = BATCH_SIZE) -> int:
    """Delete up to ``batch_size`` finished runs older than the retention; return how many.

    Pending and running runs are never deleted, however old. The oldest go first.
    """
    cutoff = now - timedelta(days=settings.RUNNER.run_retention_days)
    old = Run.objects.filter(finished_at__lt=cutoff).exclude(status__in=ACTIVE_RUN_STATUSES)
    # Ordering by finished_at steers both databases onto the runs_finished_at index.
    ids = list(old.order_by("finished_at").values_list("id", flat=True)[:batch_size])
    if not ids:
        return 0
    return old.filter(id__in=ids).delete()[0]


def maintenance_tasks() -> dict[str, Task]:
    """The housekeeping tasks, by name; state and queue ones belong to their apps."""
    return {
        "runs": prune_runs,
        "state": purge_expired_state,
        "queue_leases": reclaim_expired_leases,
        "queue_items": prune_finished_items,
    }


def run_maintenance(
    now: datetime, budget_s: float, *, batch_size: int = BATCH_SIZE
) -> MaintenanceReport:
    """Do housekeeping due at ``now`` in batches until ``budget_s`` seconds are spent.

    Tasks take turns, one batch each, so a large backlog in one table does not
    starve the others; a task is done when a batch finds nothing. The budget is
    checked after every batch that changed rows, so a call overruns it by one
    batch at most, and always does at least one. Which task goes first moves on
    with each second of ``now``, so even calls with room for one batch reach
    every task. ``more`` in the report says work was left. Database errors
    propagate to the caller.
    """
    started = time.monotonic()
    report = MaintenanceReport()
    turns = deque(maintenance_tasks().items())
    turns.rotate(-int(now.timestamp()))
    while turns:
        name, task = turns.popleft()
        began = time.monotonic()
        changed = task(now, batch_size)
        report.record(name, changed, time.monotonic() - began)
        if not changed:
            continue  # a lookup that found nothing is cheap: it spends no budget
        turns.append((name, task))
        if time.monotonic() - started >= budget_s:
            break
    report.more = bool(turns)
    report.elapsed_s = time.monotonic() - started
    return report
