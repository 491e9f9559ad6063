"""The ``runscheduler`` loop: the clock, the liveness checks, maintenance and the workers.

One thread does everything in turn, waking for the earliest thing due; fires come
first in every cycle. A stop signal only sets an event, and every sleep is a wait
on that event, so a stop is noticed at once. In-process workers are a django-q2
cluster in child processes (``runner.cluster``); a stop gives their running jobs
the shutdown grace, then ends them and records how they ended.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections
from django.utils import timezone

from runner import cluster as runner_cluster
from runner.execution.executor import worker_name
from runner.execution.inline_files import prepare_worker_host
from runner.liveness import Liveness, check_interval
from runner.maintenance import run_maintenance
from runner.models import SchedulerHeartbeat
from runner.scheduler import Scheduler

logger = logging.getLogger(__name__)

# The loop looks at the clock at least this often, whatever is planned.
MAX_SLEEP = timedelta(seconds=1)
# Maintenance gets at most this long per cycle, and only when no dispatch is due
# sooner than that plus a margin: it must never make a fire late.
MAINTENANCE_BUDGET = timedelta(milliseconds=500)
MAINTENANCE_MARGIN = timedelta(milliseconds=50)
# Start-up waits for an unreachable database, retrying at most this far apart.
MAX_START_RETRY_S = 30.0
# A cluster whose sentinel died is started again, at most this many times.
MAX_CLUSTER_RESTARTS = 3


class Daemon:
    """Runs the scheduler until told to stop; ``cycle`` is one pass of the loop."""

    def __init__(self, workers: bool = True, clock: Callable[[], datetime] = timezone.now):
        self.workers = workers
        self.clock = clock
        self.stopping = threading.Event()
        self.scheduler = Scheduler()
        self.liveness = Liveness()
        self.cluster: runner_cluster.RunnerCluster | None = None
        self._cluster_restarts = 0
        self._next_reconcile: datetime | None = None
        self._next_check: datetime | None = None
        self._next_maintenance: datetime | None = None
        self._next_beat: datetime | None = None
        self.identity = worker_name()
        self.started_at: datetime | None = None

    def request_stop(self, signum: int | None = None, frame: object = None) -> None:
        """Signal handler: stop firing and wind down (only sets a flag)."""
        self.stopping.set()

    def run(self, once: bool = False) -> int:
        """Run until a stop signal (or one cycle with ``once``); return the exit status."""
        previous = {n: signal.signal(n, self.request_stop) for n in runner_cluster.STOP_SIGNALS}
        try:
            prepare_worker_host()
            if self.workers and not once:
                self.cluster = runner_cluster.start_cluster(self.request_stop)
            return self._loop(once)
        finally:
            runner_cluster.stop_cluster(self.cluster)
            if self.started_at is not None:
                self._guarded(SchedulerHeartbeat.stopped, self.identity)
            connections.close_all()
            for number, handler in previous.items():
                signal.signal(number, handler)
            logger.info("runscheduler stopped")

    def _loop(self, once: bool) -> int:
        self._start_when_the_database_answers()
        while not self.stopping.is_set():
            now = self.clock()
            self.cycle(now)
            if once:
                break
            if not self._cluster_healthy():
                return 1
            self.stopping.wait(self.sleep_for(self.clock()))
        return 0

    def _start_when_the_database_answers(self) -> None:
        delay = 1.0
        while not self.stopping.is_set():
            try:
                self.start(self.clock())
                return
            except DatabaseError:
                logger.exception("cannot start: the database does not answer; again in %g s", delay)
                close_old_connections()
                self.stopping.wait(delay)
                delay = min(delay * 2, MAX_START_RETRY_S)

    def start(self, now: datetime) -> None:
        """Recover what a previous life left behind, then plan every job."""
        logger.info(
            "runscheduler starting: %s, lead %s ms",
            "with workers" if self.cluster else "clock only",
            settings.RUNNER.dispatch_lead_ms,
        )
        self.liveness.check(now)
        self.scheduler.start(now)
        self.started_at = now
        self._next_beat = now
        self._next_reconcile = now + _ms(settings.RUNNER.reconcile_interval_ms)
        self._next_check = now + check_interval()
        self._next_maintenance = now

    def cycle(self, now: datetime) -> bool:
        """One pass: due fires first, then whatever else is due. True if any found work."""
        close_old_connections()
        found = self._guarded(self.scheduler.fire_due, now)
        if now >= self._next_reconcile:
            self._next_reconcile = now + _ms(settings.RUNNER.reconcile_interval_ms)
            if self._guarded(self.scheduler.reconcile, now):
                found = True
                found |= self._guarded(self.scheduler.fire_due, now)
        if now >= self._next_check:
            self._next_check = now + check_interval()
            found |= self._guarded(self.liveness.check, now)
        if now >= self._next_maintenance:
            found |= self._maintain(now)
        if now >= self._next_beat:
            # What /api/status and runner_status read: this scheduler's uptime and liveness.
            self._next_beat = now + _ms(settings.RUNNER.heartbeat_interval_ms)
            self._guarded(SchedulerHeartbeat.beat, self.identity, self.started_at, now)
        return found

    def sleep_for(self, now: datetime) -> float:
        """Seconds until the next thing is due (at most ``MAX_SLEEP``)."""
        wake = now + MAX_SLEEP
        for moment in (
            self.scheduler.next_dispatch_at(),
            self._next_reconcile,
            self._next_check,
            self._next_maintenance,
            self._next_beat,
        ):
            if moment is not None and moment < wake:
                wake = moment
        return max(0.0, (wake - now).total_seconds())

    def _maintain(self, now: datetime) -> bool:
        """Housekeeping in small batches, within what the next fire leaves free."""
        budget = MAINTENANCE_BUDGET
        next_dispatch = self.scheduler.next_dispatch_at()
        if next_dispatch is not None:
            budget = min(budget, next_dispatch - now - MAINTENANCE_MARGIN)
        if budget <= timedelta(0):
            return False  # a fire is due first; try again next cycle
        report = self._guarded(run_maintenance, now, budget.total_seconds())
        more = bool(report and report.more)
        interval = _ms(settings.RUNNER.state_cleanup_interval_ms)
        self._next_maintenance = now if more else now + interval
        return bool(report and report.total)

    def _cluster_healthy(self) -> bool:
        """Restart the workers if their sentinel died; False after too many restarts."""
        if not self.workers or runner_cluster.sentinel_alive(self.cluster):
            return True
        if self._cluster_restarts >= MAX_CLUSTER_RESTARTS:
            logger.critical("the worker cluster keeps dying; runscheduler exits")
            return False
        self._cluster_restarts += 1
        logger.critical("the worker cluster died; starting it again")
        runner_cluster.stop_cluster(self.cluster, timeout_s=1.0)
        self.cluster = runner_cluster.start_cluster(self.request_stop)
        return True

    def _guarded(self, work: Callable, *args):
        """Run one unit of work; an error is logged and the loop carries on."""
        began = time.monotonic()
        try:
            return work(*args)
        except Exception:
            logger.exception("%s failed; carrying on", getattr(work, "__name__", work))
            return False
        finally:
            took = time.monotonic() - began
            if took > 0.5:
                logger.warning("%s took %.2f s", getattr(work, "__name__", work), took)


def _ms(value: int) -> timedelta:
    return timedelta(milliseconds=value)
